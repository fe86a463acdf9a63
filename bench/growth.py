#!/usr/bin/env python3
"""How normiqa's cost grows: `predict` throughput and peak memory by image size, batch and
precision; frozen-feature extraction of the 3,000-image synthetic set; peak memory of `train`,
`predict` and `serve`. Writes bench/last_growth.json and the plot bench/growth.png.

  python bench/growth.py [--quick] [--synth runs/synth/kodak24] [--normiqa target/release/normiqa]

- predict: the first --files CLIVE photos (default 48) with `--resize S S` (S = 224, 500, 1024),
  `--batch-size B` (1, 4, 16) and `--precision fp32|bf16`; images/s over the whole process (load
  included) and its peak resident memory (the kernel's maxrss of the child).
- features: `normiqa train` on the synthetic set (`normiqa synth --references
  ../shared/data/kodak24 --out runs/synth/kodak24`; skipped when it is missing), frozen cached
  Lite0, one epoch, an empty feature cache: the extraction time it logs and the run's peak memory.
- train: the same command on CLIVE (1,162 photos, exp 0): peak memory.
- serve: `normiqa serve` on a free port, --files photos posted one by one; its peak memory
  (VmHWM) read before it is stopped.
Needs only the Python standard library, and matplotlib for the plot (./run setup-full).
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLIVE = os.path.join(ROOT, "..", "shared", "data", "clive")
MODEL = os.path.join(ROOT, "models", "clive-efficientnet-lite0")


def timed(cmd, env=None):
    """Runs cmd; returns (seconds, peak RSS in MiB, stderr text)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, **(env or {})))
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    s = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{err[-2000:]}")
    return s, ru.ru_maxrss / 1024.0, err


def photos(tmp, n):
    d = os.path.join(tmp, "photos")
    os.makedirs(d, exist_ok=True)
    names = sorted(os.listdir(os.path.join(CLIVE, "images")))[:n]
    for f in names:
        os.symlink(os.path.abspath(os.path.join(CLIVE, "images", f)), os.path.join(d, f))
    return d, [os.path.join(d, f) for f in names]


def predict_grid(exe, d, n, sizes, batches, precisions, tmp):
    rows = []
    for prec in precisions:
        for size in sizes:
            for b in batches:
                out = os.path.join(tmp, "p.csv")
                s, rss, _ = timed([exe, "predict", d, "--resize", str(size), str(size), "--batch-size", str(b),
                                   "--precision", prec, "--device", "cpu", "--model", MODEL, "-o", out])
                os.remove(out)
                r = {"precision": prec, "size": size, "batch": b, "images": n, "seconds": s,
                     "images_per_s": n / s, "peak_rss_mib": rss}
                print(f"[growth] predict {prec} {size}px batch {b}: {n / s:.1f} images/s, {rss:.0f} MiB",
                      file=sys.stderr, flush=True)
                rows.append(r)
    return rows


def train_run(exe, args, tmp, name):
    cache = os.path.join(tmp, f"cache-{name}")
    out = os.path.join(tmp, f"run-{name}")
    s, rss, err = timed([exe, "train", *args, "--ft-lr-ratio", "0", "--frozen-mode", "cached", "--epochs", "1",
                         "--device", "cpu", "--out", out], env={"NORMIQA_FEATURE_CACHE": cache})
    m = re.search(r"computed .* features of (\d+) images in ([0-9.]+) s", err)
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    r = {"what": name, "seconds": s, "peak_rss_mib": rss}
    if m:
        r.update(feature_images=int(m.group(1)), feature_seconds=float(m.group(2)),
                 feature_ms_per_image=1000 * float(m.group(2)) / int(m.group(1)))
    print(f"[growth] train {name}: {r}", file=sys.stderr, flush=True)
    return r


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_peak(exe, files):
    port = free_port()
    p = subprocess.Popen([exe, "serve", "--bind", f"127.0.0.1:{port}", "--device", "cpu", "--model", MODEL],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        t0 = time.perf_counter()
        for f in files:
            with open(f, "rb") as fh:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/score", data=fh.read(), method="POST")
                urllib.request.urlopen(req, timeout=60).read()
        s = time.perf_counter() - t0
        status = open(f"/proc/{p.pid}/status").read()
        hwm = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024.0
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
    r = {"what": "serve", "requests": len(files), "seconds": s, "peak_rss_mib": hwm}
    print(f"[growth] serve: {r}", file=sys.stderr, flush=True)
    return r


def plot(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    grid = res["predict"]
    for prec, style in (("fp32", "-"), ("bf16", "--")):
        for b, color in zip(sorted({r["batch"] for r in grid}), ("C0", "C1", "C2")):
            pts = sorted((r["size"], r["images_per_s"], r["peak_rss_mib"]) for r in grid
                         if r["precision"] == prec and r["batch"] == b)
            if not pts:
                continue
            xs = [p[0] for p in pts]
            axes[0].plot(xs, [p[1] for p in pts], style, color=color, marker="o", label=f"{prec}, batch {b}")
            axes[1].plot(xs, [p[2] for p in pts], style, color=color, marker="o", label=f"{prec}, batch {b}")
    for ax, title, unit in ((axes[0], "predict throughput", "images/s (log)"),
                            (axes[1], "predict peak memory", "MiB (log)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks([224, 500, 1024], ["224", "500", "1024"])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        lo, hi = ax.get_ylim()
        ax.set_yticks([t for t in (5, 10, 20, 40, 80, 160, 250, 500, 1000, 2000, 4000, 8000) if lo <= t <= hi])
        ax.set_xlabel("image side (px)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.legend(fontsize=7)
    procs = res["processes"]
    axes[2].bar([p["what"] for p in procs], [p["peak_rss_mib"] for p in procs], color="C3")
    for i, p in enumerate(procs):
        axes[2].text(i, p["peak_rss_mib"], f"{p['peak_rss_mib']:.0f}", ha="center", va="bottom", fontsize=8)
    axes[2].tick_params(axis="x", labelrotation=12, labelsize=8)
    axes[2].set_ylabel("peak resident memory (MiB)")
    axes[2].set_title("peak memory per command")
    fig.suptitle(f"normiqa cost growth ({res['machine']}, {res['date']})", fontsize=9)
    fig.tight_layout()
    tmp = path + ".partial.png"
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="8 photos, sizes 224 and 500, batches 1 and 4")
    ap.add_argument("--files", type=int, default=48)
    ap.add_argument("--synth", default=os.path.join(ROOT, "runs", "synth", "kodak24"))
    ap.add_argument("--normiqa", default=os.path.join(ROOT, "target", "release", "normiqa"))
    ap.add_argument("--skip-train", action="store_true", help="only predict and serve")
    ap.add_argument("--plot-only", action="store_true", help="redraw bench/growth.png from bench/last_growth.json")
    args = ap.parse_args()
    if args.plot_only:
        return plot(json.load(open(os.path.join(HERE, "last_growth.json"))), os.path.join(HERE, "growth.png"))
    n = 8 if args.quick else args.files
    sizes, batches = ([224, 500], [1, 4]) if args.quick else ([224, 500, 1024], [1, 4, 16])
    res = {"machine": f"{os.cpu_count()} cores", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with tempfile.TemporaryDirectory() as tmp:
        d, files = photos(tmp, n)
        res["predict"] = predict_grid(args.normiqa, d, n, sizes, batches, ["fp32", "bf16"], tmp)
        procs = []
        s, rss, _ = timed([args.normiqa, "predict", d, "--device", "cpu", "--model", MODEL,
                           "-o", os.path.join(tmp, "p.csv")])
        procs.append({"what": f"predict ({n} photos)", "seconds": s, "peak_rss_mib": rss})
        procs.append(serve_peak(args.normiqa, files))
        if not args.skip_train:
            procs.append(train_run(args.normiqa, ["--dataset", "clive", "--root", CLIVE], tmp, "train (CLIVE)"))
            labels = os.path.join(args.synth, "labels.csv")
            if os.path.exists(labels):
                res["features_synth"] = train_run(
                    args.normiqa, ["--dataset", "csv", "--labels", labels, "--images", args.synth, "--mos-column", "score",
                                   "--split", "by-reference"], tmp, "train (synthetic 3,000)")
                procs.append(res["features_synth"])
            else:
                print(f"[growth] {labels} missing: no synthetic-set measurement", file=sys.stderr)
        res["processes"] = procs
    res["loadavg_at_end"] = open("/proc/loadavg").read().split()[:3]
    out = os.path.join(HERE, "last_growth.json")
    with open(out + ".partial", "w") as f:
        json.dump(res, f, indent=1)
    os.replace(out + ".partial", out)
    try:
        plot(res, os.path.join(HERE, "growth.png"))
    except ImportError:
        print("[growth] matplotlib missing (./run setup-full): no plot", file=sys.stderr)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
