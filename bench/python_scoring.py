#!/usr/bin/env python3
"""Scoring throughput from Python: the normiqa wheel beside pyiqa-style PyTorch scoring of the
same network and beside the `normiqa predict` command, on identical files, in one run.

Every peer scores the same N CLIVE photos (the first N names, sorted) with LinearityIQA on
EfficientNet-Lite0 (models/clive-efficientnet-lite0: batch 1, native size), decode and model
load included, with the same number of threads. Rounds alternate the peers, each in a fresh
process; a peer's throughput is the median over the rounds, with the spread (min-max).

Peers:
  wheel-fp32 / wheel-bf16   normiqa.Model.load(models/clive-efficientnet-lite0).score(paths,
                            precision=...), the installed wheel (workers=0: as predict)
  cli-fp32 / cli-bf16       the `normiqa predict` command (whole process), --precision ...
  pyiqa-style               PyTorch eager, as pyiqa's `metric(path)` loop: PIL decode, to a
                            normalised tensor, forward under no_grad, one image at a time
                            (bench/predict_peers.py's torch-naive: the reference network of
                            reference/linearity_iqa.py with the ImageNet Lite0; its head weights
                            are a seeded random init, which costs the same operations)

Python peers are timed from before their model is built (the interpreter and its imports are
not counted); the CLI's time is the whole process, so ratios err against the CLI.

Needs a Python with the full torch (./run setup-full, or any venv with torch==2.13.0, numpy,
pillow) and the wheel importable in it, e.g. after ./run wheel:
  pip install --no-deps --target target/py/bench target/wheels/normiqa-*.whl
  PYTHONPATH=target/py/bench python bench/python_scoring.py run [--files 60] [--rounds 3]
      → bench/last_python_scoring.json, and a Markdown table on stdout
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODEL = os.path.join(ROOT, "models", "clive-efficientnet-lite0")
PEERS = ["wheel-fp32", "wheel-bf16", "cli-fp32", "cli-bf16", "pyiqa-style"]


def peer_wheel(files, precision):
    import normiqa  # imported here: the PyTorch peer's process must not load it

    t0 = time.perf_counter()
    m = normiqa.Model.load(MODEL, precision=precision)
    scores = m.score(files)
    s = time.perf_counter() - t0
    m.close()
    return len(scores), s, m.path


def peer_pyiqa_style(files, threads):
    import torch

    sys.path.insert(0, HERE)
    import predict_peers  # noqa: E402  (imports torch and the reference network)

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    scores = predict_peers.peer_torch_naive(files)
    return len(scores), time.perf_counter() - t0


def run_cli(exe, precision, d):
    out = os.path.join(d + "-out", f"scores-{precision}.csv")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if os.path.exists(out):
        os.remove(out)
    t0 = time.perf_counter()
    subprocess.run([exe, "predict", d, "--precision", precision, "--device", "cpu", "--model", MODEL, "-o", out],
                   check=True, env=dict(os.environ, RUST_LOG="warn"), stdout=subprocess.DEVNULL)
    s = time.perf_counter() - t0
    n = sum(1 for _ in open(out)) - 1
    return {"peer": f"cli-{precision}", "images": n, "seconds": s, "images_per_s": n / s}


def run_peer(name, d, threads):
    files = [os.path.join(d, f) for f in sorted(os.listdir(d))]
    if name.startswith("wheel-"):
        n, s, _ = peer_wheel(files, name.split("-", 1)[1])
    else:
        n, s = peer_pyiqa_style(files, threads)
    return {"peer": name, "images": n, "seconds": s, "images_per_s": n / s}


def one(name, d, args):
    if name.startswith("cli-"):
        return run_cli(args.normiqa, name.split("-", 1)[1], d)
    r = subprocess.run([sys.executable, __file__, "peer", "--peer", name, "--dir", d, "--threads", str(args.threads)],
                       check=True, capture_output=True, text=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def cpu():
    info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    simd = [f for f in flags if f.startswith(("avx", "amx")) or f in ("fma", "f16c")]
    return fields.get("Model name", "?").strip(), simd


def main_run(args):
    names = sorted(os.listdir(os.path.join(args.data, "images")))[: args.files]
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "photos")
        os.makedirs(d)
        for f in names:
            os.symlink(os.path.abspath(os.path.join(args.data, "images", f)), os.path.join(d, f))
        runs = {p: [] for p in args.peers}
        for r in range(args.rounds):
            for p in args.peers:
                res = one(p, d, args)
                print(f"[python-scoring] round {r + 1}: {p}: {res['images_per_s']:.1f} images/s", file=sys.stderr, flush=True)
                runs[p].append(res)
    summary = {}
    for p, rs in runs.items():
        v = [x["images_per_s"] for x in rs]
        summary[p] = {"median_images_per_s": statistics.median(v), "min": min(v), "max": max(v), "runs": rs}
    model, simd = cpu()
    out = {"files": len(names), "threads": args.threads, "rounds": args.rounds, "cpu": model, "cpu_simd_flags": simd,
           "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "loadavg_at_end": open("/proc/loadavg").read().split()[:3], "peers": summary}
    tmp = os.path.join(HERE, "last_python_scoring.json.partial")
    with open(tmp, "w") as f:
        json.dump(out, f, indent=1)
    os.replace(tmp, os.path.join(HERE, "last_python_scoring.json"))
    base = summary.get("pyiqa-style", {}).get("median_images_per_s")
    print(f"CPU: {model}; SIMD flags: {' '.join(simd)}; {os.cpu_count()} cores; {out['date']}; "
          f"load average at the end {' '.join(out['loadavg_at_end'])}")
    print(f"| peer ({len(names)} CLIVE files, {args.threads} threads, median of {args.rounds} alternating rounds) "
          "| images/s (min-max) | / pyiqa-style PyTorch |")
    print("|---|---|---|")
    for p, s in summary.items():
        ratio = "%.2fx" % (s["median_images_per_s"] / base) if base else "-"
        print(f"| {p} | {s['median_images_per_s']:.1f} ({s['min']:.1f}-{s['max']:.1f}) | {ratio} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--files", type=int, default=60)
    r.add_argument("--rounds", type=int, default=3)
    r.add_argument("--threads", type=int, default=os.cpu_count())
    r.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "clive"))
    r.add_argument("--normiqa", default=os.path.join(ROOT, "target", "release", "normiqa"))
    r.add_argument("--peers", nargs="+", default=PEERS, choices=PEERS)
    p = sub.add_parser("peer")
    p.add_argument("--peer", required=True, choices=[x for x in PEERS if not x.startswith("cli-")])
    p.add_argument("--dir", required=True)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    if args.cmd == "run":
        main_run(args)
    else:
        print(json.dumps(run_peer(args.peer, args.dir, args.threads)))


if __name__ == "__main__":
    main()
