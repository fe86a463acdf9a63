#!/usr/bin/env python3
"""PyTorch CPU timings to compare with normiqa's (prints one JSON object).

  (train)   train step (forward + backward + Adam step, whole model trainable, train mode) of the
            LinearityIQA model on ResNet-18 and on EfficientNet-Lite0, batch 8 at --size (500),
            median of N steps after warm-up;
  (predict) batch-1 predict latency (eval, no_grad) of both models at 500x500;
  (predict-files) throughput of scoring N CLIVE files (decode + forward, batch 1), as a user
            scoring photos;
  (epoch)   one CLIVE frozen-backbone epoch: PIL-decode all images (+ the 500x500 resize rule),
            eval-mode pooled-feature extraction (batch 16), 1 epoch of head training on the
            exp-0 training set (cached features, batch 8, Norm-in-Norm p=1 q=2).

    python bench/bench_torch.py [--quick] [--what train|predict|epoch|all] [--size 500|224]
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import linearity_iqa as L  # noqa: E402
from effnet_lite import EfficientNetLite0, load_lite0  # noqa: E402
from resnet18 import ResNet18  # noqa: E402


class Args:  # loss settings for L.total_loss
    loss, p, q, alpha, beta = "norm-in-norm", 1.0, 2.0, (1.0, 0.0), (0.1, 0.1, 1.0)


def build(arch):
    if arch == "resnet18":
        return L.LinearityIQA(ResNet18(), c6=256, c7=512)
    return L.LinearityIQA(EfficientNetLite0(), c6=112, c7=1280)


def timed(fn, warmup, n):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(ts), "min_s": min(ts), "n": n, "warmup": warmup}


def bench_train(arch, size, bs, warmup, n):
    torch.manual_seed(0)
    model = build(arch).train()
    opt = torch.optim.Adam([{"params": list(model.head_parameters())},
                            {"params": list(model.features.parameters()), "lr": 1e-5}], lr=1e-4)
    x = torch.randn(bs, size, size, 3).permute(0, 3, 1, 2)  # as the loader lays out images
    y = torch.rand(bs) * 100

    phases = {"forward": [], "backward": [], "optimizer": []}

    def step():
        t0 = time.perf_counter()
        loss = L.total_loss(Args, model(x), y)
        float(loss.detach())
        t1 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        for k, v in zip(phases, (t1 - t0, t2 - t1, t3 - t2)):
            phases[k].append(v)

    r = timed(step, warmup, n)
    r.update(arch=arch, batch=bs, size=size)
    r["phases_median_s"] = {k: statistics.median(v[warmup:]) for k, v in phases.items()}
    return r


def bench_predict(arch, size, warmup, n):
    torch.manual_seed(0)
    model = build(arch).eval()
    x = torch.randn(1, size, size, 3).permute(0, 3, 1, 2)  # as the loader lays out images

    def once():
        with torch.no_grad():
            model(x)

    r = timed(once, warmup, n)
    r.update(arch=arch, batch=1, size=size)
    return r


def bench_epoch(data, weights, max_images, eval_bs):
    names, mos, orders = L.read_clive(data)
    tr, va, te = L.clive_split(names, orders, 0, max_images)
    used = tr + va + te
    images, decode_s = L.load_images(data, names, used)
    model = L.LinearityIQA(load_lite0(weights))
    for prm in model.features.parameters():
        prm.requires_grad_(False)
    t0 = time.perf_counter()
    f6, f7 = L.extract_features(model, images, used, eval_bs)
    features_s = time.perf_counter() - t0
    pos = {i: k for k, i in enumerate(used)}
    opt = torch.optim.Adam(model.head_parameters(), lr=1e-4)
    y_all = torch.tensor(mos, dtype=torch.float32)
    torch.manual_seed(19920517)
    loader = torch.utils.data.DataLoader(list(range(len(tr))), batch_size=8, shuffle=True, drop_last=True)
    t0 = time.perf_counter()
    model.train()
    steps = 0
    for b in loader:
        chunk = [tr[int(j)] for j in b]
        t = torch.tensor([pos[i] for i in chunk])
        loss = L.total_loss(Args, model.heads(f6[t], f7[t]), y_all[chunk])
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    head_epoch_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    L.predict(model, va, 16, feats=(f6, f7), pos=pos)
    val_s = time.perf_counter() - t0
    return {"n_images": len(used), "n_train": len(tr), "steps": steps, "decode_s": decode_s,
            "decode_ms_per_image": 1000 * decode_s / len(used), "features_s": features_s,
            "features_ms_per_image": 1000 * features_s / len(used), "head_epoch_s": head_epoch_s,
            "val_predict_s": val_s, "total_s": decode_s + features_s + head_epoch_s + val_s}


def bench_predict_files(data, weights, n):
    """Scores the first n CLIVE images (sorted names) as a user would: decode each file (PIL),
    eval forward at batch 1, no_grad -- the reference demo's loop over files."""
    files = sorted(os.listdir(os.path.join(data, "images")))[:n]
    model = L.LinearityIQA(load_lite0(weights)).eval()
    t0 = time.perf_counter()
    scores = []
    with torch.no_grad():
        for f in files:
            im = np.asarray(Image.open(os.path.join(data, "images", f)).convert("RGB"), dtype=np.uint8)
            scores.append(float(model(L.to_input([im]))[-1]))
    s = time.perf_counter() - t0
    return {"images": len(files), "seconds": s, "images_per_s": len(files) / s}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--what", default="all", choices=["train", "predict", "predict-files", "epoch", "all"])
    ap.add_argument("--files", type=int, default=300, help="predict-files: how many CLIVE images (30 with --quick)")
    ap.add_argument("--quick", action="store_true", help="few iterations, 64 images for the epoch")
    ap.add_argument("--size", type=int, default=500, help="train-step image size (500 or 224)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-batch-size", type=int, default=1, help="epoch: feature-extraction batch (normiqa's CPU default is 1)")
    ap.add_argument("--data", default=L.DEFAULT_DATA)
    ap.add_argument("--weights", default=L.DEFAULT_WEIGHTS)
    ap.add_argument("--max-images", type=int, default=None, help="epoch: first N images of split 0")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tw, tn = (1, 2) if args.quick else (1, 5)
    pw, pn = (3, 3) if args.quick else (3, 30)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(),
           "interop_threads": torch.get_num_interop_threads(), "quick": args.quick,
           "cpu": platform.processor() or platform.machine(), "python": platform.python_version()}
    t_all = time.perf_counter()
    if args.what in ("train", "all"):
        out["train_step"] = [bench_train(a, args.size, args.batch_size, tw, tn)
                             for a in ("resnet18", "efficientnet_lite0")]
        print(json.dumps({"train_step": out["train_step"]}), file=sys.stderr, flush=True)
    if args.what in ("predict", "all"):
        out["predict_b1"] = [bench_predict(a, 500, pw, pn) for a in ("resnet18", "efficientnet_lite0")]
        print(json.dumps({"predict_b1": out["predict_b1"]}), file=sys.stderr, flush=True)
    if args.what in ("predict-files", "all"):
        out["predict_files"] = bench_predict_files(args.data, args.weights, 30 if args.quick else args.files)
    if args.what in ("epoch", "all"):
        n = args.max_images or (64 if args.quick else None)
        out["clive_frozen_epoch"] = bench_epoch(args.data, args.weights, n, args.eval_batch_size)
    out["wall_s"] = time.perf_counter() - t_all
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
