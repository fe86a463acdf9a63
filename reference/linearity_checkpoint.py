#!/usr/bin/env python3
"""Expected scores for `normiqa import-checkpoint --from linearityiqa` (tests/import_checkpoint.rs).

Builds the authors' LinearityIQA `IQAModel` (IQAmodel.py of github.com/lidq92/LinearityIQA,
copied below with two changes: torchvision weights=None instead of pretrained=True, so nothing
is downloaded, and `int` for the removed `np.int`), fills every tensor of its state dict with a
deterministic integer-hash formula (`formula_values`, mirrored in tests/import_checkpoint.rs), and
scores two small lossless PNG images with the rule of the authors' test_demo.py:

    y = model(im.unsqueeze(0)); score = y[-1].item() * k[0] + b[0]

(k[0], b[0] belong to the fused head y[-1]; IQAPerformance maps y[0] with k[1], b[1] and y[1]
with k[2], b[2]: those are written too). A resnet18 checkpoint is ~45 MB, too big to commit, so
the test writes the same checkpoint itself: same names, shapes and formula; this script records
names and shapes of the state dict and the expected scores in
tests/data/import_linearityiqa/expected.json, next to the two images.

    python3 -m venv VENV && VENV/bin/pip install torch==2.13.0 torchvision numpy pillow
    VENV/bin/python reference/linearity_checkpoint.py [--save-checkpoint CKPT.pth]

--save-checkpoint also writes the checkpoint as main.py saves it ({'model', 'optimizer', 'k',
'b'}; the optimizer state after one Adam step), to check the importer on a real torch.save file.
"""
import argparse
import json
import os
import platform
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from PIL import Image
from torchvision import models
from torchvision.transforms.functional import normalize, to_tensor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "import_linearityiqa")
# distinct per index, so that a wrong head <-> (k, b) pairing changes the scores
K = [30.0, -5.0, 7.0]
B = [10.0, 20.0, -30.0]
MASK32 = np.uint64(0xFFFFFFFF)


# ------------------------------------------------ IQAmodel.py (lidq92/LinearityIQA), unchanged but
# for weights=None and int()
def SPSP(x, P=1, method='avg'):
    batch_size = x.size(0)
    map_size = x.size()[-2:]
    pool_features = []
    for p in range(1, P+1):
        pool_size = [int(d / p) for d in map_size]
        if method == 'maxmin':
            M = F.max_pool2d(x, pool_size)
            m = -F.max_pool2d(-x, pool_size)
            pool_features.append(torch.cat((M, m), 1).view(batch_size, -1))  # max & min pooling
        elif method == 'max':
            M = F.max_pool2d(x, pool_size)
            pool_features.append(M.view(batch_size, -1))  # max pooling
        elif method == 'min':
            m = -F.max_pool2d(-x, pool_size)
            pool_features.append(m.view(batch_size, -1))  # min pooling
        elif method == 'avg':
            a = F.avg_pool2d(x, pool_size)
            pool_features.append(a.view(batch_size, -1))  # average pooling
        else:
            m1  = F.avg_pool2d(x, pool_size)
            rm2 = torch.sqrt(F.relu(F.avg_pool2d(torch.pow(x, 2), pool_size) - torch.pow(m1, 2)))
            if method == 'std':
                pool_features.append(rm2.view(batch_size, -1))  # std pooling
            else:
                pool_features.append(torch.cat((m1, rm2), 1).view(batch_size, -1))  # statistical pooling: mean & std
    return torch.cat(pool_features, dim=1)


class IQAModel(nn.Module):
    def __init__(self, arch='resnext101_32x8d', pool='avg', use_bn_end=False, P6=1, P7=1):
        super(IQAModel, self).__init__()
        self.pool = pool
        self.use_bn_end = use_bn_end
        if pool in ['max', 'min', 'avg', 'std']:
            c = 1
        else:
            c = 2
        self.P6 = P6  #
        self.P7 = P7  #
        features = list(models.__dict__[arch](weights=None).children())[:-2]
        if arch == 'alexnet':
            in_features = [256, 256]
            self.id1 = 9
            self.id2 = 12
            features = features[0]
        elif arch == 'vgg16':
            in_features = [512, 512]
            self.id1 = 23
            self.id2 = 30
            features = features[0]
        elif 'res' in arch:
            self.id1 = 6
            self.id2 = 7
            if arch == 'resnet18' or arch == 'resnet34':
                in_features = [256, 512]
            else:
                in_features = [1024, 2048]
        else:
            print('The arch is not implemented!')
        self.features = nn.Sequential(*features)
        self.dr6 = nn.Sequential(nn.Linear(in_features[0] * c * sum([p * p for p in range(1, self.P6+1)]), 1024),
                                 nn.BatchNorm1d(1024),
                                 nn.Linear(1024, 256),
                                 nn.BatchNorm1d(256),
                                 nn.Linear(256, 64),
                                 nn.BatchNorm1d(64), nn.ReLU())
        self.dr7 = nn.Sequential(nn.Linear(in_features[1] * c * sum([p * p for p in range(1, self.P7+1)]), 1024),
                                 nn.BatchNorm1d(1024),
                                 nn.Linear(1024, 256),
                                 nn.BatchNorm1d(256),
                                 nn.Linear(256, 64),
                                 nn.BatchNorm1d(64), nn.ReLU())

        if self.use_bn_end:
            self.regr6 = nn.Sequential(nn.Linear(64, 1), nn.BatchNorm1d(1))
            self.regr7 = nn.Sequential(nn.Linear(64, 1), nn.BatchNorm1d(1))
            self.regression = nn.Sequential(nn.Linear(64 * 2, 1), nn.BatchNorm1d(1))
        else:
            self.regr6 = nn.Linear(64, 1)
            self.regr7 = nn.Linear(64, 1)
            self.regression = nn.Linear(64 * 2, 1)

    def extract_features(self, x):
        f, pq = [], []
        for ii, model in enumerate(self.features):
            x = model(x)
            if ii == self.id1:
                x6 = SPSP(x, P=self.P6, method=self.pool)
                x6 = self.dr6(x6)
                f.append(x6)
                pq.append(self.regr6(x6))
            if ii == self.id2:
                x7 = SPSP(x, P=self.P7, method=self.pool)
                x7 = self.dr7(x7)
                f.append(x7)
                pq.append(self.regr7(x7))

        f = torch.cat(f, dim=1)

        return f, pq

    def forward(self, x):
        f, pq = self.extract_features(x)
        s = self.regression(f)
        pq.append(s)

        return pq
# ------------------------------------------------ end of IQAmodel.py


def fnv1a32(s):
    h = 0x811C9DC5
    for byte in s.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def uniform01(name, n):
    """u_i in [0, 1) for i < n: murmur3's fmix32 of (fnv1a32(name) + i * 0x9E3779B1) mod 2^32,
    divided by 2^32 (exact in f64; identical in Rust)."""
    i = np.arange(n, dtype=np.uint64)
    h = (np.uint64(fnv1a32(name)) + i * np.uint64(0x9E3779B1)) & MASK32
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & MASK32
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & MASK32
    h ^= h >> np.uint64(16)
    return h.astype(np.float64) / 4294967296.0


def formula_values(name, shape):
    """The value of every element of tensor `name` (f64, then stored as f32)."""
    n = int(np.prod(shape)) if len(shape) else 1
    u = uniform01(name, n)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "running_var":
        v = 0.5 + u
    elif leaf == "running_mean":
        v = 0.2 * (2 * u - 1)
    elif leaf == "bias":
        v = 0.1 * (2 * u - 1)
    elif len(shape) == 1:  # BatchNorm weight
        v = 0.8 + 0.4 * u
    else:  # conv / linear weight: U(-a, a), a = sqrt(3 / fan_in)
        fan_in = int(np.prod(shape[1:]))
        v = (2 * u - 1) * np.sqrt(3.0 / fan_in)
    return v.astype(np.float32).reshape(shape)


def fill(model):
    sd = model.state_dict()
    tensors = []
    for name, t in sd.items():
        if name.endswith("num_batches_tracked"):
            t.fill_(7)
            tensors.append({"name": name, "shape": list(t.shape), "dtype": "int64"})
            continue
        t.copy_(torch.from_numpy(formula_values(name, list(t.shape))))
        tensors.append({"name": name, "shape": list(t.shape), "dtype": "float32"})
    return tensors


def test_images():
    """Two small RGB images (deterministic formula), saved as lossless PNG."""
    h, w = 72, 96
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([(x * 255) // (w - 1), (y * 255) // (h - 1), ((x + y) * 97) % 256], -1)
    b = np.stack([(x * y) % 256, 255 - (x * 3) % 256, ((x ^ y) * 13) % 256], -1)
    return {"smooth.png": a.astype(np.uint8), "busy.png": b.astype(np.uint8)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--save-checkpoint", help="also torch.save the checkpoint here")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = IQAModel(arch=args.arch)
    with torch.no_grad():
        tensors = fill(model)
    model.eval()
    os.makedirs(OUT, exist_ok=True)
    scores = []
    for fname, arr in test_images().items():
        path = os.path.join(OUT, fname)
        Image.fromarray(arr).save(path)
        # test_demo.py, without --resize
        im = Image.open(path).convert('RGB')
        im = to_tensor(im)
        im = normalize(im, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
        with torch.no_grad():
            y = model(im.unsqueeze(0))
        scores.append({
            "image": fname,
            "raw": [y[0].item(), y[1].item(), y[2].item()],
            "score": y[-1].item() * K[0] + B[0],  # test_demo.py
            "head6_mapped": y[0].item() * K[1] + B[1],  # IQAPerformance i=1
            "head7_mapped": y[1].item() * K[2] + B[2],  # IQAPerformance i=2
        })
    out = {
        "provenance": {
            "script": "reference/linearity_checkpoint.py",
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "numpy": np.__version__,
            "model": "IQAModel(arch=%r, pool='avg', use_bn_end=False, P6=1, P7=1), weights=None "
                     "then formula_values" % args.arch,
        },
        "arch": args.arch,
        "k": K,
        "b": B,
        "tensors": tensors,
        "scores": scores,
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(json.dumps(scores, indent=1))
    if args.save_checkpoint:
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        model.train()
        x = torch.randn(2, 3, 64, 64)
        sum(p.sum() for p in model(x)).backward()
        opt.step()
        with torch.no_grad():
            fill(model)  # back to the formula (the step moved the weights and BN statistics)
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "k": K, "b": B},
                   args.save_checkpoint)
        print("wrote", args.save_checkpoint, file=sys.stderr)


if __name__ == "__main__":
    main()
