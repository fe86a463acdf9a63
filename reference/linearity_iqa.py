#!/usr/bin/env python3
"""PyTorch reference for normiqa: LinearityIQA (Li, Jiang & Jiang, ACM MM 2020) on CLIVE with an
EfficientNet-Lite0 backbone, following the reference code's main.py / IQAmodel.py / IQAloss.py /
IQAperformance.py with ignite and apex removed. Used to check normiqa's numbers and speed.

    python reference/linearity_iqa.py --loss norm-in-norm --p 1 --q 2 --ft-lr-ratio 0 \
        --frozen-mode cached --epochs 30 --lr 1e-4 --exp-id 0 --out runs/ref.json
    python reference/linearity_iqa.py --dump-features features.json

See reference/README.md.
"""
import argparse
import copy
import csv
import json
import math
import os
import platform
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from scipy import stats

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from effnet_lite import EfficientNetLite, EfficientNetLite0, load_lite  # noqa: E402

# paths relative to the checkout (data in ../shared/data next to it, weights in its .venv)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "clive")
DEFAULT_WEIGHTS = os.environ.get(
    "NORMIQA_EFFICIENTNET_LITE0", os.path.join(ROOT, ".venv", "efficientnet-lite0.pth"))


def default_weights(arch):
    """NORMIQA_EFFICIENTNET_LITEN, else .venv/efficientnet-liteN.pth (as normiqa looks them up)."""
    env = "NORMIQA_" + arch.upper().replace("-", "_")
    return os.environ.get(env, os.path.join(ROOT, ".venv", arch + ".pth"))
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
HEAD_NAMES = ("l6", "l7", "fused")  # model outputs [regr6, regr7, regression]
EPS = 1e-8


# ----------------------------------------------------------------------------- data

def read_clive(root):
    """Names and MOS in mos.csv order, and the splits.csv permutations."""
    with open(os.path.join(root, "mos.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    names = [r["image"] for r in rows]
    mos = np.array([float(r["mos"]) for r in rows], dtype=np.float64)
    orders = {}
    with open(os.path.join(root, "splits.csv"), newline="") as f:
        for r in csv.DictReader(f):
            orders[r["image"]] = r
    return names, mos, orders


def clive_split(names, orders, exp_id, max_images=None, train_ratio=0.6, train_val_ratio=0.8):
    """Indices (into names) of train/val/test: sort by order_<exp_id>; first int(0.6 n) train,
    up to int(0.8 n) val, the rest test. --max-images keeps the first N of that order."""
    key = "order_%d" % exp_id
    idx = sorted(range(len(names)), key=lambda i: int(orders[names[i]][key]))
    if max_images:
        idx = idx[:max_images]
    n = len(idx)
    a, b = int(train_ratio * n), int(train_val_ratio * n)
    return idx[:a], idx[a:b], idx[b:]


def decode_pil(path):
    """PIL decode to RGB; CLIVE images that are not 500x500 become 500x500 (PIL bilinear, as
    torchvision's resize on a PIL image)."""
    im = Image.open(path).convert("RGB")
    if im.size != (500, 500):
        im = im.resize((500, 500), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def load_images(root, names, used, pixels_dir=None):
    """uint8 HxWx3 arrays for names[i], i in used (dict index -> array), and the seconds taken."""
    t0 = time.perf_counter()
    out = {}
    if pixels_dir:
        with open(os.path.join(pixels_dir, "pixels.json")) as f:
            meta = json.load(f)
        shape = tuple(meta["shape"])
        arr = np.memmap(os.path.join(pixels_dir, "pixels.u8"), dtype=np.uint8, mode="r", shape=shape)
        pos = {n: k for k, n in enumerate(meta["names"])}
        for i in used:
            if names[i] not in pos:
                raise SystemExit("%s: image %s is not in pixels.json" % (pixels_dir, names[i]))
            out[i] = np.array(arr[pos[names[i]]])
    else:
        for i in used:
            out[i] = decode_pil(os.path.join(root, "images", names[i]))
    return out, time.perf_counter() - t0


def to_input(arrays):
    """List of HxWx3 uint8 -> normalised float tensor Bx3xHxW (to_tensor + normalize)."""
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


# ----------------------------------------------------------------------------- model

def _dr(c_in):
    return nn.Sequential(nn.Linear(c_in, 1024), nn.BatchNorm1d(1024),
                         nn.Linear(1024, 256), nn.BatchNorm1d(256),
                         nn.Linear(256, 64), nn.BatchNorm1d(64), nn.ReLU())


class LinearityIQA(nn.Module):
    """IQAModel with P6 = P7 = 1 and average pooling on an EfficientNet-Lite0 backbone; the
    level-6 tap is block 10 (112 ch), level 7 the head output (1280 ch)."""

    def __init__(self, backbone=None, c6=None, c7=1280):
        super().__init__()
        self.features = backbone if backbone is not None else EfficientNetLite0()
        c6 = c6 if c6 is not None else getattr(self.features, "c6", 112)
        self.dr6, self.dr7 = _dr(c6), _dr(c7)
        self.regr6, self.regr7 = nn.Linear(64, 1), nn.Linear(64, 1)
        self.regression = nn.Linear(128, 1)

    def pooled(self, x):
        x6, x7 = self.features.forward_taps(x)
        return x6.mean(dim=(2, 3)), x7.mean(dim=(2, 3))

    def heads(self, f6, f7):
        h6, h7 = self.dr6(f6), self.dr7(f7)
        return [self.regr6(h6), self.regr7(h7), self.regression(torch.cat([h6, h7], dim=1))]

    def forward(self, x):
        return self.heads(*self.pooled(x))

    def head_parameters(self):
        for m in (self.regression, self.dr6, self.dr7, self.regr6, self.regr7):
            yield from m.parameters()


# ----------------------------------------------------------------------------- loss

def norm_in_norm(y_pred, y, p=1.0, q=2.0, alpha=(1.0, 0.0)):
    """The reference's norm_loss_with_normalization (detach=False, exponent=True)."""
    n = y_pred.size(0)
    if n < 2:
        return F.l1_loss(y_pred, y_pred.detach())
    yp = y_pred - y_pred.mean()
    yp = yp / (EPS + torch.norm(yp, p=q))
    yt = y - y.mean()
    yt = yt / (EPS + torch.norm(yt, p=q))
    scale = 2.0 ** max(1.0, 1.0 / q) * n ** max(0.0, 1.0 / p - 1.0 / q)
    l0 = l1 = 0.0
    if alpha[0] > 0:
        e = yp - yt
        if p < 1:
            e = e + EPS
        l0 = (torch.norm(e, p=p) / scale) ** p
    if alpha[1] > 0:
        rho = F.cosine_similarity(yp, yt)
        e = rho * yp - yt
        if p < 1:
            e = e + EPS
        l1 = (torch.norm(e, p=p) / scale) ** p
    return (alpha[0] * l0 + alpha[1] * l1) / (alpha[0] + alpha[1])


def head_loss(kind, y_pred, y, p, q, alpha):
    if kind == "norm-in-norm":
        return norm_in_norm(y_pred, y, p, q, alpha)
    if kind == "mse":
        return F.mse_loss(y_pred, y)
    if kind == "mae":
        return F.l1_loss(y_pred, y)
    raise ValueError(kind)


def total_loss(args, outs, y):
    """beta-weighted sum over [l6, l7, fused] (the reference adds fused first, then l6, l7)."""
    y = y.view(-1, 1)
    loss = 0.0
    for i in (2, 0, 1):
        if args.beta[i] > 0:
            loss = loss + args.beta[i] * head_loss(args.loss, outs[i], y, args.p, args.q, args.alpha)
    return loss


# ----------------------------------------------------------------------------- metrics

def fit_mapping(pred, y):
    """Least squares y ~ k * pred + b (the reference's normal equations)."""
    a = np.stack([pred, np.ones_like(pred)], axis=1)
    h = np.linalg.inv(a.T @ a) @ (a.T @ y)
    return float(h[0]), float(h[1])


def metrics(pred, y, k=1.0, b=0.0):
    pq = k * pred + b
    return {
        "srocc": float(stats.spearmanr(y, pq)[0]),
        "plcc": float(stats.pearsonr(y, pq)[0]),
        "krocc": float(stats.kendalltau(y, pq)[0]),
        "rmse": float(np.sqrt(np.mean((y - pq) ** 2))),
    }


def head_metrics(outs, y, kb=None):
    kb = kb or [(1.0, 0.0)] * 3
    return {HEAD_NAMES[h]: metrics(outs[:, h], y, *kb[h]) for h in range(3)}


# ----------------------------------------------------------------------------- running

def batches(idx, size):
    return [idx[i:i + size] for i in range(0, len(idx), size)]


@torch.no_grad()
def extract_features(model, images, idx, bs):
    """Eval-mode pooled (level 6, level 7) features of images[i], i in idx."""
    model.features.eval()
    f6, f7 = [], []
    for chunk in batches(idx, bs):
        a, c = model.pooled(to_input([images[i] for i in chunk]))
        f6.append(a)
        f7.append(c)
    return torch.cat(f6), torch.cat(f7)


@torch.no_grad()
def predict(model, idx, bs, images=None, feats=None, pos=None):
    """Eval-mode outputs (len(idx) x 3, numpy) from images or from cached features."""
    model.eval()
    out = []
    for chunk in batches(idx, bs):
        if feats is not None:
            t = torch.tensor([pos[i] for i in chunk])
            o = model.heads(feats[0][t], feats[1][t])
        else:
            o = model(to_input([images[i] for i in chunk]))
        out.append(torch.cat(o, dim=1))
    return torch.cat(out).double().numpy()


def train(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    t_start = time.perf_counter()

    names, mos, orders = read_clive(args.data)
    tr, va, te = clive_split(names, orders, args.exp_id, args.max_images)
    used = tr + va + te
    images, decode_s = load_images(args.data, names, used, args.pixels)
    print("CLIVE exp %d: train %d, val %d, test %d; decoded in %.1f s%s"
          % (args.exp_id, len(tr), len(va), len(te), decode_s, " (from %s)" % args.pixels if args.pixels else ""),
          flush=True)

    backbone = load_lite(args.weights, args.arch) if not args.random_init else EfficientNetLite(args.arch)
    model = LinearityIQA(backbone)
    frozen = args.ft_lr_ratio == 0.0
    if frozen:
        for prm in model.features.parameters():
            prm.requires_grad_(False)
    cached = frozen and args.frozen_mode == "cached"

    feats, pos, features_s = None, None, 0.0
    if cached:
        t0 = time.perf_counter()
        pos = {i: k for k, i in enumerate(used)}
        key = {"names": [names[i] for i in used], "pixels": args.pixels, "weights": args.weights}
        if args.feature_cache and os.path.exists(args.feature_cache):
            saved = torch.load(args.feature_cache)
            if saved["key"] != key:
                raise SystemExit("%s was made for other images/weights; delete it" % args.feature_cache)
            feats = saved["f6"], saved["f7"]
            what = "loaded from %s" % args.feature_cache
        else:
            feats = extract_features(model, images, used, args.eval_batch_size)
            if args.feature_cache:
                torch.save({"key": key, "f6": feats[0], "f7": feats[1]}, args.feature_cache)
            what = "computed"
        features_s = time.perf_counter() - t0
        print("cached eval-mode pooled features of %d images %s in %.1f s" % (len(used), what, features_s),
              flush=True)

    groups = [{"params": list(model.head_parameters())}]
    if not frozen:
        groups.append({"params": list(model.features.parameters()), "lr": args.lr * args.ft_lr_ratio})
    else:  # as the reference: in the optimizer at lr * 0 and without gradients
        groups.append({"params": list(model.features.parameters()), "lr": 0.0})
    opt = torch.optim.Adam(groups, lr=args.lr, weight_decay=args.weight_decay)
    if args.epochs < 3:
        step = args.epochs
    else:
        step = int(args.epochs / (1 + math.log(args.overall_lr_decay) / math.log(args.lr_decay)))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=step, gamma=args.lr_decay)
    # DataLoader(shuffle=True, drop_last=True) over positions in the training set, as the reference.
    loader = torch.utils.data.DataLoader(list(range(len(tr))), batch_size=args.batch_size,
                                         shuffle=True, drop_last=True)
    y_all = torch.tensor(mos, dtype=torch.float32)

    epochs, best, best_state = [], -100.0, None
    best_epoch = -1
    t_train = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        lr = opt.param_groups[0]["lr"]
        model.train()
        losses = []
        for bpos in loader:
            chunk = [tr[int(j)] for j in bpos]
            y = y_all[chunk]
            if cached:
                t = torch.tensor([pos[i] for i in chunk])
                outs = model.heads(feats[0][t], feats[1][t])
            else:
                x = to_input([images[i] for i in chunk])
                if frozen:  # reference mode: backbone in train mode (BN batch stats), no grads
                    with torch.no_grad():
                        f6, f7 = model.pooled(x)
                    outs = model.heads(f6, f7)
                else:
                    outs = model(x)
            loss = total_loss(args, outs, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        val_out = predict(model, va, args.eval_batch_size, images, feats, pos)
        val = head_metrics(val_out, mos[va])
        crit = abs(val["fused"]["srocc"])
        improved = crit > best
        if improved:
            best, best_epoch = crit, epoch
            best_state = copy.deepcopy(model.state_dict())
        sched.step()
        secs = time.perf_counter() - t0
        rec = {"epoch": epoch, "lr": lr, "loss": float(np.mean(losses)), "seconds": secs,
               "val": {h: {"srocc": v["srocc"], "plcc": v["plcc"]} for h, v in val.items()},
               "best": improved}
        epochs.append(rec)
        print("epoch %3d/%d  loss %.5f  val SROCC %.4f PLCC %.4f (l6 %.4f l7 %.4f)  lr %.1e  %.1f s%s"
              % (epoch, args.epochs, rec["loss"], val["fused"]["srocc"], val["fused"]["plcc"],
                 val["l6"]["srocc"], val["l7"]["srocc"], lr, secs, "  *best" if improved else ""), flush=True)
    train_s = time.perf_counter() - t_train

    model.load_state_dict(best_state)
    tr_out = predict(model, tr, args.eval_batch_size, images, feats, pos)
    kb = [fit_mapping(tr_out[:, h], mos[tr]) for h in range(3)]
    te_out = predict(model, te, args.eval_batch_size, images, feats, pos)
    test = head_metrics(te_out, mos[te], kb)
    total_s = time.perf_counter() - t_start
    print("best epoch %d (val |SROCC| %.4f); test fused SROCC %.4f PLCC %.4f KROCC %.4f RMSE %.3f; "
          "l6 SROCC %.4f; l7 SROCC %.4f; total %.1f s"
          % (best_epoch, best, test["fused"]["srocc"], test["fused"]["plcc"], test["fused"]["krocc"],
             test["fused"]["rmse"], test["l6"]["srocc"], test["l7"]["srocc"], total_s), flush=True)

    result = {
        "config": {k: v for k, v in vars(args).items()},
        "lr_decay_step": step,
        "sizes": {"train": len(tr), "val": len(va), "test": len(te)},
        "epochs": epochs,
        "best_epoch": best_epoch,
        "best_val_abs_srocc": best,
        "mapping": {HEAD_NAMES[h]: {"k": kb[h][0], "b": kb[h][1]} for h in range(3)},
        "test": test,
        "train_fit": head_metrics(tr_out, mos[tr], kb),
        "timings": {"decode_s": decode_s, "features_s": features_s, "train_s": train_s,
                    "seconds_per_epoch": train_s / max(args.epochs, 1), "total_s": total_s},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
        print("wrote", args.out)
    return result


@torch.no_grad()
def dump_features(args):
    torch.set_num_threads(args.threads)
    names, _, _ = read_clive(args.data)
    pick = args.dump_names.split(",") if args.dump_names else sorted(names)[:2]
    idx = [names.index(n) for n in pick]
    images, _ = load_images(args.data, names, idx, args.pixels)
    net = load_lite(args.weights, args.arch).eval()
    model = LinearityIQA(net).eval()
    out = {"provenance": "reference/linearity_iqa.py --dump-features (PyTorch %s, %s %s, "
                         "eval mode, full 500x500, ImageNet normalisation, %s decode)"
                         % (torch.__version__, args.arch, os.path.basename(os.path.realpath(args.weights)),
                            "pixels.u8" if args.pixels else "PIL"),
           "images": []}
    for i in idx:
        x = to_input([images[i]])
        f6, f7 = model.pooled(x)
        logits = net._fc(f7)[0]
        top = torch.topk(logits, 5)
        out["images"].append({
            "name": names[i],
            "input_shape": list(x.shape),
            "level6": {"dim": f6.shape[1], "first8": [float(v) for v in f6[0, :8]],
                       "sum": float(f6[0].double().sum())},
            "level7": {"dim": f7.shape[1], "first8": [float(v) for v in f7[0, :8]],
                       "sum": float(f7[0].double().sum())},
            "top5_classes": [int(c) for c in top.indices],
            "top5_logits": [float(v) for v in top.values],
        })
    s = json.dumps(out, indent=1)
    print(s)
    with open(args.dump_features, "w") as f:
        f.write(s + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=DEFAULT_DATA, help="CLIVE root (mos.csv, splits.csv, images/)")
    ap.add_argument("--arch", default="efficientnet-lite0",
                    choices=["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"],
                    help="backbone (with --weights or its default weights file)")
    ap.add_argument("--weights", default=None,
                    help="the backbone's ImageNet .pth (default: NORMIQA_EFFICIENTNET_LITEN, "
                         "else .venv/efficientnet-liteN.pth)")
    ap.add_argument("--random-init", action="store_true", help="random backbone (tests only)")
    ap.add_argument("--loss", default="norm-in-norm", choices=["norm-in-norm", "mse", "mae"])
    ap.add_argument("--p", type=float, default=1.0)
    ap.add_argument("--q", type=float, default=2.0)
    ap.add_argument("--alpha", type=float, nargs=2, default=[1.0, 0.0])
    ap.add_argument("--beta", type=float, nargs=3, default=[0.1, 0.1, 1.0])
    ap.add_argument("--ft-lr-ratio", type=float, default=0.0)
    ap.add_argument("--frozen-mode", default="cached", choices=["cached", "reference"])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--lr-decay", type=float, default=0.1)
    ap.add_argument("--overall-lr-decay", type=float, default=0.01)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--eval-batch-size", type=int, default=16)
    ap.add_argument("--exp-id", type=int, default=0)
    ap.add_argument("--seed", type=int, default=19920517)
    ap.add_argument("--pixels", default=None, help="dir with pixels.u8 + pixels.json (Rust-decoded)")
    ap.add_argument("--max-images", type=int, default=None, help="first N images of the split order")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--feature-cache", default=None, metavar="FILE.pt",
                    help="cached mode: load the pooled features from FILE.pt if present, else save them there")
    ap.add_argument("--out", default=None, help="result JSON")
    ap.add_argument("--dump-features", default=None, metavar="FILE.json",
                    help="write eval-mode pooled features / ImageNet top-5 of 2 images and exit")
    ap.add_argument("--dump-names", default=None, help="comma-separated images for --dump-features "
                    "(default: the first 2 of mos.csv's names sorted)")
    args = ap.parse_args()
    if args.weights is None:
        args.weights = default_weights(args.arch)
    if args.dump_features:
        dump_features(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
