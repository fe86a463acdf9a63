#!/usr/bin/env python3
"""normiqa (Rust) vs the PyTorch reference on CLIVE, in one run, over several seeds.

Frozen EfficientNet-Lite0 backbone with cached pooled features (both sides), Norm-in-Norm / MSE /
MAE heads trained for 30 epochs with the reference schedule, CLIVE split exp_id 0. Single runs
differ by more than 0.01 SROCC from seed to seed (best-epoch selection on 232 val images), so the
comparison is between means over seeds.

Implementations:
  rust           normiqa train (its own decoder: jpeg-decoder, libjpeg-like upsampling)
  torch-pil      reference/linearity_iqa.py decoding with PIL (end-to-end comparison)
  torch-rustpix  reference/linearity_iqa.py on normiqa's decoded pixels (`normiqa decode`):
                 like-for-like, identical input pixels

  python reference/compare_clive.py --seeds 1-10 --losses norm-in-norm,mse,mae \
      --impls rust,torch-pil,torch-rustpix --out runs/cmp
Writes OUT/summary.json and OUT/summary.md. Needs `./run setup-full` (PyTorch importable) and a
release build (`./run setup`).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable


def seeds_arg(s):
    if "-" in s:
        a, b = s.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(x) for x in s.split(",")]


def run_rust(loss, seed, out):
    d = os.path.join(out, "rust-%s-%d" % (loss, seed))
    if not os.path.exists(os.path.join(d, "run.json")):
        subprocess.run([os.path.join(ROOT, "target/release/normiqa"), "train", "--dataset", "clive", "--ft-lr-ratio", "0",
                        "--loss", loss, "--p", "1", "--q", "2", "--seed", str(seed), "-e", "30", "--lr", "1e-4",
                        "--device", "cpu", "--out", d], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    info = json.load(open(os.path.join(d, "run.json")))
    val = []
    for line in open(os.path.join(d, "log.jsonl")):
        e = json.loads(line)
        if e["event"] == "epoch":
            val.append(e["val"][2]["plcc"])
    t = info["test"][2]
    return {"srocc": t["srocc"], "plcc": t["plcc"], "krocc": t["krocc"], "rmse": t["rmse"], "best_epoch": info["best_epoch"], "val_plcc": val,
            "seconds": info["timings"]["train_s"]}


def run_torch(loss, seed, out, pixels):
    tag = "torch-rustpix" if pixels else "torch-pil"
    f = os.path.join(out, "%s-%s-%d.json" % (tag, loss, seed))
    if not os.path.exists(f):
        cache = os.path.join(out, "feats_exp0_rustpix.pt" if pixels else "feats_exp0_pil.pt")
        cmd = [PY, os.path.join(ROOT, "reference/linearity_iqa.py"), "--loss", loss, "--p", "1", "--q", "2", "--ft-lr-ratio", "0",
               "--frozen-mode", "cached", "--epochs", "30", "--lr", "1e-4", "--exp-id", "0", "--threads", "1", "--seed", str(seed),
               "--feature-cache", cache, "--out", f]
        if pixels:
            cmd += ["--pixels", pixels]
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    d = json.load(open(f))
    t = d["test"]["fused"]
    return {"srocc": t["srocc"], "plcc": t["plcc"], "krocc": t["krocc"], "rmse": t["rmse"], "best_epoch": d["best_epoch"],
            "val_plcc": [e["val"]["fused"]["plcc"] for e in d["epochs"]], "seconds": sum(e["seconds"] for e in d["epochs"])}


def first_epoch_above(curve, thr):
    for i, v in enumerate(curve):
        if v >= thr:
            return i + 1
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=seeds_arg, default=seeds_arg("1-10"))
    ap.add_argument("--losses", default="norm-in-norm,mse,mae")
    ap.add_argument("--impls", default="rust,torch-pil,torch-rustpix")
    ap.add_argument("--pixels", default=os.path.join(ROOT, "runs/pixels-clive"))
    ap.add_argument("--threshold", type=float, default=0.78, help="val PLCC threshold for epochs-to-threshold")
    ap.add_argument("--out", default=os.path.join(ROOT, "runs/cmp"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    results = {}
    for loss in a.losses.split(","):
        for impl in a.impls.split(","):
            rows = []
            for s in a.seeds:
                t0 = time.time()
                r = run_rust(loss, s, a.out) if impl == "rust" else run_torch(loss, s, a.out, a.pixels if impl == "torch-rustpix" else None)
                rows.append(r)
                print("%-14s %-13s seed %3d  SROCC %.4f PLCC %.4f  best epoch %2d  (%.0f s)" % (impl, loss, s, r["srocc"], r["plcc"], r["best_epoch"], time.time() - t0), flush=True)
            results["%s/%s" % (impl, loss)] = rows
    summary = {"seeds": a.seeds, "threshold": a.threshold, "runs": results, "stats": {}}
    md = ["| implementation | loss | test SROCC mean ± sd | test PLCC mean ± sd | KROCC | RMSE | mean val-PLCC curve: first epoch ≥ %.2f |" % a.threshold,
          "|---|---|---|---|---|---|---|"]
    for key, rows in results.items():
        impl, loss = key.split("/")
        st = {m: (statistics.mean(r[m] for r in rows), statistics.stdev(r[m] for r in rows) if len(rows) > 1 else 0.0) for m in ("srocc", "plcc", "krocc", "rmse")}
        curve = [statistics.mean(c) for c in zip(*[r["val_plcc"] for r in rows])]
        st["mean_val_plcc_curve"] = curve
        st["epochs_to_threshold"] = first_epoch_above(curve, a.threshold)
        summary["stats"][key] = st
        md.append("| %s | %s | %.4f ± %.4f | %.4f ± %.4f | %.4f | %.2f | %s |" % (impl, loss, st["srocc"][0], st["srocc"][1], st["plcc"][0], st["plcc"][1],
                                                                        st["krocc"][0], st["rmse"][0], st["epochs_to_threshold"]))
    # Paired differences (same seed = same split, initialisation seed and batch-order seed).
    pairs = [(x, y) for x in results for y in results if x < y and x.split("/")[1] == y.split("/")[1]]
    if pairs and len(a.seeds) > 1:
        from scipy import stats as sps
        md += ["", "Paired over seeds %s (test SROCC, a − b):" % ",".join(map(str, a.seeds)), "",
               "| a | b | mean(a − b) | sd | t | p (two-sided) | n |", "|---|---|---|---|---|---|---|"]
        summary["paired"] = {}
        for x, y in pairs:
            d = [r["srocc"] - q["srocc"] for r, q in zip(results[x], results[y])]
            t, pv = sps.ttest_rel([r["srocc"] for r in results[x]], [q["srocc"] for q in results[y]])
            summary["paired"]["%s - %s" % (x, y)] = {"mean": statistics.mean(d), "sd": statistics.stdev(d), "t": float(t), "p": float(pv), "n": len(d)}
            md.append("| %s | %s | %+.4f | %.4f | %.2f | %.3f | %d |" % (x, y, statistics.mean(d), statistics.stdev(d), t, pv, len(d)))
    json.dump(summary, open(os.path.join(a.out, "summary.json"), "w"), indent=1)
    open(os.path.join(a.out, "summary.md"), "w").write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
