#!/usr/bin/env python3
"""Does a model's score fall with the level of common distortions, on photos it never saw?

Issue 14's check of a candidate default model. The photos are outside Kodak and CLIVE: the
public-domain / CC0 colour photos shipped inside two PyPI packages (scikit-image's `astronaut`,
`chelsea`, `coffee`, `rocket`; matplotlib's `grace_hopper`), installed by `./run setup-full`.
Each is distorted at 5 levels by 6 common distortions made here with PIL/numpy (independent of
`normiqa synth`, whose KADID-style distortions a multi-dataset model may have trained on):

  jpeg        PIL JPEG quality 90, 70, 50, 30, 10
  blur        Gaussian blur, radius 0.5, 1, 2, 3, 5 px
  noise       additive Gaussian noise, sigma 5, 10, 20, 35, 50 (8-bit scale), seed 0
  contrast    PIL ImageEnhance.Contrast factor 0.85, 0.7, 0.55, 0.4, 0.25
  downscale   down by 0.8, 0.6, 0.45, 0.3, 0.2 (bicubic), back up to the original size (bicubic)
  darken      pixel values times 0.85, 0.7, 0.55, 0.4, 0.25

Level 0 is the photo itself. Per photo and distortion, the Spearman correlation between level
(0..5) and score is computed: -1 means the score falls strictly with the level. The table gives,
per model and distortion, the mean over photos of -rho and the share of the 5 steps (level
l -> l+1) where the score falls.

Usage (from the repository root, after `cargo build --release`):
  python3 bench/distortion_monotonicity.py --model NAME=RUN_DIR [--model NAME=RUN_DIR ...]
      [--out bench/monotonicity.json]
"""
import argparse
import csv
import io
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter
from scipy.stats import spearmanr

LEVELS = {
    "jpeg": [90, 70, 50, 30, 10],
    "blur": [0.5, 1, 2, 3, 5],
    "noise": [5, 10, 20, 35, 50],
    "contrast": [0.85, 0.7, 0.55, 0.4, 0.25],
    "downscale": [0.8, 0.6, 0.45, 0.3, 0.2],
    "darken": [0.85, 0.7, 0.55, 0.4, 0.25],
}


def photos():
    """(name, path) of the photos inside the installed packages."""
    import matplotlib
    import skimage

    sk = os.path.join(os.path.dirname(skimage.__file__), "data")
    mpl = os.path.join(matplotlib.get_data_path(), "sample_data")
    found = [(n, os.path.join(sk, f)) for n, f in
             [("astronaut", "astronaut.png"), ("chelsea", "chelsea.png"),
              ("coffee", "coffee.png"), ("rocket", "rocket.jpg")]]
    found.append(("grace_hopper", os.path.join(mpl, "grace_hopper.jpg")))
    missing = [p for _, p in found if not os.path.exists(p)]
    if missing:
        sys.exit(f"missing photos {missing}: install scikit-image and matplotlib (./run setup-full)")
    return found


def distort(im, kind, v, seed):
    if kind == "jpeg":
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=v)
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    if kind == "blur":
        return im.filter(ImageFilter.GaussianBlur(radius=v))
    if kind == "noise":
        a = np.asarray(im, dtype=np.float64)
        a = a + np.random.default_rng(seed).normal(0, v, a.shape)
        return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8))
    if kind == "contrast":
        return ImageEnhance.Contrast(im).enhance(v)
    if kind == "downscale":
        w, h = im.size
        small = im.resize((max(1, round(w * v)), max(1, round(h * v))), Image.BICUBIC)
        return small.resize((w, h), Image.BICUBIC)
    if kind == "darken":
        a = np.asarray(im, dtype=np.float64) * v
        return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8))
    raise ValueError(kind)


def make_set(folder):
    """Writes every photo and distortion level as PNG; returns rows (file, photo, kind, level)."""
    rows = []
    for pi, (name, path) in enumerate(photos()):
        im = Image.open(path).convert("RGB")
        f = os.path.join(folder, f"{name}_0.png")
        im.save(f)
        for kind, values in LEVELS.items():
            rows.append((f, name, kind, 0))
            for li, v in enumerate(values, start=1):
                g = os.path.join(folder, f"{name}_{kind}_{li}.png")
                distort(im, kind, v, seed=pi * 100 + li).save(g)
                rows.append((g, name, kind, li))
    return rows


def scores(binary, model, files, precision):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as lst:
        lst.write("\n".join(sorted(set(files))) + "\n")
    out = lst.name + ".csv"
    cmd = [binary, "predict", "--model", model, "--files-from", lst.name, "-o", out,
           "--precision", precision]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        # the first line is normiqa's record of the model and options, a '#' comment
        got = {r["image"]: float(r["score"]) for r in csv.DictReader(l for l in f if not l.startswith("#"))}
    os.unlink(lst.name)
    os.unlink(out)
    return {os.path.realpath(k): v for k, v in got.items()}


def summarise(rows, s):
    table = {}
    for kind in LEVELS:
        rhos, falls = [], []
        for name in sorted({r[1] for r in rows}):
            pts = sorted((r[3], s[os.path.realpath(r[0])]) for r in rows if r[1] == name and r[2] == kind)
            y = [p[1] for p in pts]
            rhos.append(-spearmanr([p[0] for p in pts], y)[0])
            falls.append(float(np.mean([b < a for a, b in zip(y, y[1:])])))
        table[kind] = {"minus_rho": float(np.mean(rhos)), "falls": float(np.mean(falls)),
                       "minus_rho_min": float(np.min(rhos))}
    table["mean"] = {k: float(np.mean([table[t][k] for t in LEVELS])) for k in ("minus_rho", "falls")}
    return table


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="NAME=RUN_DIR")
    ap.add_argument("--binary", default="target/release/normiqa")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--out", default="bench/monotonicity.json")
    a = ap.parse_args()
    models = [m.split("=", 1) for m in a.model]
    with tempfile.TemporaryDirectory() as tmp:
        rows = make_set(tmp)
        result = {name: summarise(rows, scores(a.binary, d, [r[0] for r in rows], a.precision))
                  for name, d in models}
    print(f"photos: {', '.join(n for n, _ in photos())}; 6 distortions x 5 levels; "
          f"cells: mean over photos of -Spearman(level, score) / share of steps where the score falls\n")
    print("| model | " + " | ".join(LEVELS) + " | mean |")
    print("|---|" + "---|" * (len(LEVELS) + 1))
    for name, t in result.items():
        cells = [f"{t[k]['minus_rho']:.3f} / {t[k]['falls']:.2f}" for k in list(LEVELS) + ["mean"]]
        print(f"| {name} | " + " | ".join(cells) + " |")
    tmp_out = a.out + ".tmp"
    with open(tmp_out, "w") as f:
        json.dump({"models": dict(models), "precision": a.precision, "result": result}, f, indent=1)
    os.replace(tmp_out, a.out)


if __name__ == "__main__":
    main()
