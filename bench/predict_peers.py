#!/usr/bin/env python3
"""`normiqa predict` against the strongest CPU peers, on identical files, in one run.

Every peer scores the same N CLIVE photos (the first N names, sorted) with the same network
(LinearityIQA on an ImageNet EfficientNet-Lite0, batch 1, native size), decode and model load
included, with the same number of threads. Rounds alternate the peers (A B C ... A B C ...), so
that a slow minute of the machine hits every peer; each peer's throughput is the median over the
rounds, with the spread (min-max).

Peers:
  normiqa-fp32 / -bf16 / -int8  the `normiqa predict` command (whole process: start, model load,
                                decode, scoring, writing the CSV), --precision fp32 / bf16 / int8
  torch-naive                   PIL decode then an eager forward per file (no_grad): the
                                reference demo's loop
  torch-tuned                   PIL decode in a worker thread (prefetch), channels-last,
                                inference_mode, TorchScript traced + frozen +
                                optimize_for_inference (one graph per image size), fp32
  torch-bf16                    torch-tuned's decode and layout with the model and input in bf16
                                (eager: frozen TorchScript does not keep bf16 weights)
  ort-fp32                      ONNX Runtime (CPU provider, all graph optimisations, intra-op
                                threads = --threads, sequential), PIL decode in a worker thread
  ort-int8                      the same on the ONNX model quantised by ONNX Runtime's static
                                quantiser (QDQ, per-channel int8 weights, uint8 activations
                                calibrated on 16 CLIVE photos outside the timed files): what int8
                                gives on this CPU (speed only)
The shipped default model, an ensemble of three (LinearityIQA on EfficientNet-Lite0, -Lite1 and
-Lite2, the score the mean of the three), against the same three networks in ONNX Runtime:
  normiqa-ens-fp32 / -bf16 / -int8   `normiqa predict --model models/clive-efficientnet-lite012`
  ort-ens-fp32                  three ONNX Runtime sessions (as ort-fp32), each photo decoded
                                once and scored by all three, the mean of their outputs

Python peers are timed from before their model is built (the interpreter and `import torch` are
not counted); normiqa's time is the whole process, so ratios err against normiqa.

  python bench/predict_peers.py run [--files 200] [--rounds 3] [--threads 2] [--quick]
      → bench/last_predict_peers.json, and a Markdown table on stdout
  python bench/predict_peers.py peer --peer NAME --dir DIR   (one peer, prints JSON)
"""
import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "reference"))
import linearity_iqa as L  # noqa: E402
from effnet_lite import load_lite0  # noqa: E402

CACHE = os.path.join(HERE, ".cache")
ONNX_FP32 = os.path.join(CACHE, "linearity-lite0.onnx")
ONNX_INT8 = os.path.join(CACHE, "linearity-lite0-int8.onnx")
PEERS = ["normiqa-fp32", "normiqa-bf16", "normiqa-int8", "torch-naive", "torch-tuned", "torch-bf16", "ort-fp32",
         "ort-int8", "normiqa-ens-fp32", "normiqa-ens-bf16", "normiqa-ens-int8", "ort-ens-fp32"]
# The default set: the single-model peers (the ensemble ones on request: --peers).
SINGLE = PEERS[:8]
ONNX_LITE = {v: os.path.join(CACHE, f"linearity-lite{v}.onnx") for v in (1, 2)} | {0: ONNX_FP32}
MEAN = np.array(L.MEAN, dtype=np.float32).reshape(1, 3, 1, 1)
STD = np.array(L.STD, dtype=np.float32).reshape(1, 3, 1, 1)


def model(variant=0):
    torch.manual_seed(0)
    if variant == 0:
        return L.LinearityIQA(load_lite0(L.DEFAULT_WEIGHTS)).eval()
    arch = f"efficientnet-lite{variant}"
    return L.LinearityIQA(L.load_lite(L.default_weights(arch), arch)).eval()


class Fused(torch.nn.Module):
    """The prediction head's output only (what predict reports)."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)[-1]


def gmac(size=500):
    """Multiply-accumulates (10^9) of one forward at size x size: every convolution and linear
    layer (what runs on the FMA units; BatchNorm, activations and pooling are not counted)."""
    m, total = model(), [0]

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total[0] += out.numel() * k
        elif isinstance(mod, torch.nn.Linear):
            total[0] += out.numel() * mod.in_features

    for mod in m.modules():
        mod.register_forward_hook(hook)
    with torch.no_grad():
        m(torch.randn(1, 3, size, size))
    return total[0] / 1e9


def decode(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)


def prefetch(files, depth=4):
    """Decoded images from a worker thread (PIL releases the GIL while decoding)."""
    q = queue.Queue(maxsize=depth)

    def work():
        for f in files:
            q.put(decode(f))
        q.put(None)

    threading.Thread(target=work, daemon=True).start()
    while (im := q.get()) is not None:
        yield im


def nchw(im):
    """HxWx3 uint8 → 1x3xHxW normalised float32 array."""
    x = im.astype(np.float32)[None].transpose(0, 3, 1, 2) / 255.0
    return np.ascontiguousarray((x - MEAN) / STD)


def peer_torch_naive(files):
    m = model()
    with torch.no_grad():
        return [float(m(L.to_input([decode(f)]))[-1]) for f in files]


def peer_torch_tuned(files):
    m = Fused(model()).eval().to(memory_format=torch.channels_last)
    graphs = {}
    out = []
    with torch.inference_mode():
        for im in prefetch(files):
            x = L.to_input([im]).contiguous(memory_format=torch.channels_last)
            g = graphs.get(x.shape)
            if g is None:  # the "same" padding is computed from the size: one graph per size
                with torch.no_grad():
                    g = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(m, x)))
                graphs[x.shape] = g
            out.append(float(g(x)))
    return out


def peer_torch_bf16(files):
    m = Fused(model()).eval().to(torch.bfloat16).to(memory_format=torch.channels_last)
    with torch.inference_mode():
        return [float(m(L.to_input([im]).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)))
                for im in prefetch(files)]


def ort_session(path, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def peer_ort(path, files, threads):
    s = ort_session(path, threads)
    return [float(s.run(None, {"x": nchw(im)})[0].reshape(-1)[0]) for im in prefetch(files)]


def peer_ort_ensemble(files, threads):
    sessions = [ort_session(ONNX_LITE[v], threads) for v in (0, 1, 2)]
    out = []
    for im in prefetch(files):
        x = {"x": nchw(im)}
        out.append(sum(float(s.run(None, x)[0].reshape(-1)[0]) for s in sessions) / 3)
    return out


def export_onnx(net, path):
    x = torch.randn(1, 3, 500, 500)
    tmp = path + ".partial"
    torch.onnx.export(Fused(net).eval(), (x,), tmp, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {2: "h", 3: "w"}}, opset_version=17, dynamo=False)
    os.replace(tmp, path)


def export(calibration):
    """The ONNX files (once; bench/.cache is not committed)."""
    os.makedirs(CACHE, exist_ok=True)
    for v, path in ONNX_LITE.items():
        if not os.path.exists(path):
            export_onnx(model(v), path)
    if not os.path.exists(ONNX_INT8):
        from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                              quantize_static)
        from onnxruntime.quantization.shape_inference import quant_pre_process

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.it = iter([{"x": nchw(decode(f))} for f in calibration])

            def get_next(self):
                return next(self.it, None)

        pre = ONNX_FP32 + ".pre.onnx"
        quant_pre_process(ONNX_FP32, pre)
        tmp = ONNX_INT8 + ".partial"
        quantize_static(pre, tmp, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        os.replace(tmp, ONNX_INT8)
        os.remove(pre)


def run_peer(name, d, threads):
    torch.set_num_threads(threads)
    files = [os.path.join(d, f) for f in sorted(os.listdir(d))]
    t0 = time.perf_counter()
    fn = {"torch-naive": lambda: peer_torch_naive(files),
          "torch-tuned": lambda: peer_torch_tuned(files),
          "torch-bf16": lambda: peer_torch_bf16(files),
          "ort-fp32": lambda: peer_ort(ONNX_FP32, files, threads),
          "ort-int8": lambda: peer_ort(ONNX_INT8, files, threads),
          "ort-ens-fp32": lambda: peer_ort_ensemble(files, threads)}[name]
    scores = fn()
    s = time.perf_counter() - t0
    return {"peer": name, "images": len(scores), "seconds": s, "images_per_s": len(scores) / s}


def run_normiqa(exe, precision, d, threads, model="clive-efficientnet-lite0"):
    out = os.path.join(d + "-out", f"scores-{model}-{precision}.csv")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if os.path.exists(out):
        os.remove(out)
    env = dict(os.environ, RUST_LOG="warn")
    t0 = time.perf_counter()
    subprocess.run([exe, "predict", d, "--precision", precision, "--device", "cpu",
                    "--threads", str(threads),
                    "--model", os.path.join(ROOT, "models", model), "-o", out],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    s = time.perf_counter() - t0
    # rows: lines that are neither the header nor the record line (`# {...}`)
    with open(out) as f:
        n = sum(1 for line in f if line.strip() and not line.startswith("#")) - 1
    ens = "ens-" if model.endswith("lite012") else ""
    return {"peer": f"normiqa-{ens}{precision}", "images": n, "seconds": s, "images_per_s": n / s}


def one(name, d, args):
    if name.startswith("normiqa-ens-"):
        return run_normiqa(args.normiqa, name.rsplit("-", 1)[1], d, args.threads,
                           "clive-efficientnet-lite012")
    if name.startswith("normiqa-"):
        return run_normiqa(args.normiqa, name.split("-", 1)[1], d, args.threads)
    # a fresh process per peer and round: no warm caches carried from one peer to the next
    r = subprocess.run([sys.executable, __file__, "peer", "--peer", name, "--dir", d,
                        "--threads", str(args.threads)], check=True, capture_output=True, text=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main_run(args):
    names = sorted(os.listdir(os.path.join(args.data, "images")))
    n = 20 if args.quick else args.files
    export([os.path.join(args.data, "images", f) for f in names[-16:]])
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "photos")
        os.makedirs(d)
        for f in names[:n]:
            os.symlink(os.path.abspath(os.path.join(args.data, "images", f)), os.path.join(d, f))
        runs = {p: [] for p in args.peers}
        for r in range(1 if args.quick else args.rounds):
            for p in args.peers:
                res = one(p, d, args)
                print(f"[peers] round {r + 1}: {p}: {res['images_per_s']:.1f} images/s", file=sys.stderr, flush=True)
                runs[p].append(res)
    summary = {}
    for p, rs in runs.items():
        v = [x["images_per_s"] for x in rs]
        summary[p] = {"median_images_per_s": statistics.median(v), "min": min(v), "max": max(v), "runs": rs}
    out = {"files": n, "threads": args.threads, "gmac_per_500px_image": gmac(500), "rounds": len(next(iter(runs.values()))),
           "torch": torch.__version__, "onnxruntime": __import__("onnxruntime").__version__,
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "loadavg_at_end": open("/proc/loadavg").read().split()[:3], "peers": summary}
    tmp = os.path.join(HERE, "last_predict_peers.json.partial")
    with open(tmp, "w") as f:
        json.dump(out, f, indent=1)
    os.replace(tmp, os.path.join(HERE, "last_predict_peers.json"))
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16") if f in flags]
    out["cpu"] = {"model": cpu, "flags": isa, "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA"),
                  "ATEN_CPU_CAPABILITY": os.environ.get("ATEN_CPU_CAPABILITY")}
    print(f"CPU: {cpu} ({' '.join(isa)}); ONEDNN_MAX_CPU_ISA={out['cpu']['ONEDNN_MAX_CPU_ISA']}, "
          f"ATEN_CPU_CAPABILITY={out['cpu']['ATEN_CPU_CAPABILITY']}")
    ort = summary.get("ort-fp32", {}).get("median_images_per_s")
    ort_ens = summary.get("ort-ens-fp32", {}).get("median_images_per_s")
    print(f"| peer ({n} CLIVE files, {args.threads} threads, median of {out['rounds']} alternating rounds) "
          "| images/s (min-max) | / ONNX Runtime fp32 of the same network(s) |")
    print("|---|---|---|")
    for p, s in summary.items():
        base = ort_ens if "ens" in p else ort
        ratio = "%.2fx" % (s["median_images_per_s"] / base) if base else "-"
        print(f"| {p} | {s['median_images_per_s']:.1f} ({s['min']:.1f}-{s['max']:.1f}) | {ratio} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--files", type=int, default=200)
    r.add_argument("--rounds", type=int, default=3)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--quick", action="store_true", help="20 files, one round")
    r.add_argument("--data", default=L.DEFAULT_DATA)
    r.add_argument("--normiqa", default=os.path.join(ROOT, "target", "release", "normiqa"))
    r.add_argument("--peers", nargs="+", default=SINGLE, choices=PEERS)
    p = sub.add_parser("peer")
    p.add_argument("--peer", required=True, choices=[x for x in PEERS if not x.startswith("normiqa-")])
    p.add_argument("--dir", required=True)
    p.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.cmd == "run":
        main_run(args)
    else:
        print(json.dumps(run_peer(args.peer, args.dir, args.threads)))


if __name__ == "__main__":
    main()
