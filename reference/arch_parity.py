"""Expected outputs of DBCNN (with its S-CNN), HyperIQA and the plain regressor, computed by
PyTorch implementations written from the reference code, for `tests/arch.rs`.

Every parameter and buffer is filled from a formula both sides implement (`fill` below, keyed by
normiqa's variable name), the input likewise (`fill("input", shape)`), so no weights are
shipped; the outputs and summaries of intermediate tensors go to `reference/arch_parity.json`.

Reference code (copied and adapted; only module names changed to normiqa's variable names, and
no pretrained downloads):
- S-CNN and DBCNN: github.com/zwx8981/DBCNN-PyTorch (`SCNN.py`, `DBCNN.py`, MIT licence,
  (c) 2019 Onionbao) and pyiqa's `pyiqa/archs/dbcnn_arch.py` (github.com/chaofengc/IQA-PyTorch,
  re-implementation by Chaofeng Chen).
- HyperIQA: github.com/SSL92/hyperIQA (`models.py`: HyperNet, TargetNet with grouped
  convolutions, ResNetBackbone's LDA layers) and pyiqa's `pyiqa/archs/hypernet_arch.py`.
When pyiqa (and timm) can be imported, pyiqa's own modules are run on the same weights and
must agree with the copies below (printed, and recorded in the JSON as `pyiqa_checked`).

Environment: full torch and torchvision (`pip install torch==2.13.0 torchvision numpy`,
optionally `pyiqa`); run from the repository root:

    python reference/arch_parity.py [--out reference/arch_parity.json]
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from effnet_lite import EfficientNetLite0  # noqa: E402

M32 = (1 << 32) - 1


# ---------------------------------------------------------------------------------------------
# The fill formula (tests/arch.rs implements the same).


def fnv1a32(s):
    h = 0x811C9DC5
    for b in s.encode():
        h = ((h ^ b) * 0x01000193) & M32
    return h


def uniform(n, k):
    """n values in [-1, 1) from an integer hash of (index, k), exact in any language."""
    x = np.arange(n, dtype=np.uint64) * np.uint64(2654435761) + np.uint64(k * 40503 + 12345)
    x &= np.uint64(M32)
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(2246822519)) & np.uint64(M32)
    x ^= x >> np.uint64(13)
    x = (x * np.uint64(3266489917)) & np.uint64(M32)
    x ^= x >> np.uint64(16)
    return x.astype(np.float64) / 2.0**32 * 2.0 - 1.0


def fill(name, shape):
    n = int(np.prod(shape)) if len(shape) else 1
    u = uniform(n, fnv1a32(name))
    if name.endswith("running_var"):
        v = 1.0 + 0.5 * u
    elif name.endswith("running_mean"):
        v = 0.1 * u
    elif name.endswith("bias"):
        v = 0.05 * u
    elif len(shape) == 1:  # BatchNorm weight
        v = 1.0 + 0.2 * u
    elif name == "input":
        v = 1.5 * u
    else:  # Linear / Conv weight: Kaiming-uniform scale
        fan_in = n // shape[0]
        v = math.sqrt(6.0 / fan_in) * u
    # Rounded to fp32 (the values both sides write), then held in the default dtype (float64
    # here: main() sets it), which represents every fp32 value exactly.
    return torch.from_numpy(v.astype(np.float32)).to(torch.get_default_dtype()).reshape(shape)


def fill_module(module, rename=lambda n: n):
    """Fills every parameter and floating buffer by normiqa's name of it."""
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if t.dtype.is_floating_point:
                t.copy_(fill(rename(name), tuple(t.shape)))


def summary(t):
    v = t.detach().double().flatten()
    idx = torch.arange(v.numel(), dtype=torch.float64)
    return {
        "shape": list(t.shape),
        "first": v[:8].tolist(),
        "sum": v.sum().item(),
        "abs_sum": v.abs().sum().item(),
        "probe": (v * torch.cos(0.1 * idx)).sum().item(),
    }


# ---------------------------------------------------------------------------------------------
# S-CNN and DBCNN (authors' SCNN.py / DBCNN.py, pyiqa's dbcnn_arch.py).


class SCNN(nn.Module):
    def __init__(self, num_class=39):
        super().__init__()
        cfg = [(3, 48, 1), (48, 48, 2), (48, 64, 1), (64, 64, 2), (64, 64, 1), (64, 64, 2),
               (64, 128, 1), (128, 128, 1), (128, 128, 2)]
        layers = []
        for ci, co, s in cfg:
            layers += [nn.Conv2d(ci, co, 3, s, 1), nn.BatchNorm2d(co), nn.ReLU(True)]
        self.features = nn.Sequential(*layers)
        self.pooling = nn.AdaptiveAvgPool2d(1)
        self.projection = nn.Sequential(
            nn.Conv2d(128, 256, 1, 1, 0), nn.BatchNorm2d(256), nn.ReLU(True),
            nn.Conv2d(256, 256, 1, 1, 0), nn.BatchNorm2d(256), nn.ReLU(True))
        self.classifier = nn.Linear(256, num_class)

    def forward(self, X):
        X = self.features(X)
        X = self.pooling(X)
        X = self.projection(X)
        X = X.view(X.size(0), -1)
        return self.classifier(X)


class LastMap(nn.Module):
    """EfficientNet-Lite0 up to its head (the stand-in F-CNN: last stage, 1280 channels)."""

    def __init__(self):
        super().__init__()
        self.net = EfficientNetLite0()

    def forward(self, x):
        return self.net.forward_taps(x)[1]


class DBCNN(nn.Module):
    def __init__(self, fcnn="vgg16"):
        super().__init__()
        if fcnn == "vgg16":
            self.features1 = nn.Sequential(
                *list(torchvision.models.vgg16(weights=None).features.children())[:-1])
            self.c1 = 512
        else:
            self.features1 = LastMap()
            self.c1 = 1280
        self.features2 = SCNN().features
        self.fc = nn.Linear(self.c1 * 128, 1)

    def descriptor(self, X):
        N = X.size()[0]
        X1 = self.features1(X)
        H, W = X1.size()[2], X1.size()[3]
        X2 = self.features2(X)
        if (H != X2.size()[2]) or (W != X2.size()[3]):
            X2 = F.interpolate(X2, (H, W), mode="bilinear", align_corners=True)
        X1 = X1.view(N, self.c1, H * W)
        X2 = X2.view(N, 128, H * W)
        X = torch.bmm(X1, torch.transpose(X2, 1, 2)) / (H * W)  # Bilinear
        X = X.view(N, self.c1 * 128)
        X = torch.sqrt(X + 1e-8)
        return torch.nn.functional.normalize(X)

    def forward(self, X):
        return self.fc(self.descriptor(X))


def dbcnn_rename(name):
    name = name.replace("features1.net.", "backbone.").replace("features1.", "backbone.features.")
    return name.replace("features2.", "scnn.features.")


# ---------------------------------------------------------------------------------------------
# HyperIQA (authors' models.py; backbone and LDA layers moved out of `res`).


class Stages(nn.Module):
    """The four stage maps of torchvision's ResNet-50 or of EfficientNet-Lite0."""

    def __init__(self, backbone):
        super().__init__()
        self.kind = backbone
        if backbone == "resnet50":
            self.net = torchvision.models.resnet50(weights=None)
            self.channels = [256, 512, 1024, 2048]
        else:
            self.net = EfficientNetLite0()
            self.channels = [24, 40, 112, 1280]

    def forward(self, x):
        n = self.net
        if self.kind == "resnet50":
            x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
            out = []
            for layer in [n.layer1, n.layer2, n.layer3, n.layer4]:
                x = layer(x)
                out.append(x)
            return out
        x = F.relu6(n._bn0(n._conv_stem(x)))
        out = []
        for i, b in enumerate(n._blocks):
            x = b(x)
            if i in (2, 4, 10):
                out.append(x)
        out.append(F.relu6(n._bn1(n._conv_head(x))))
        return out


class HyperNet(nn.Module):
    def __init__(self, backbone="resnet50", lda_out_channels=16, hyper_in_channels=112,
                 target_in_size=224, target_fc1_size=112, target_fc2_size=56,
                 target_fc3_size=28, target_fc4_size=14, feature_size=7):
        super().__init__()
        self.hyperInChn = hyper_in_channels
        self.target_in_size = target_in_size
        self.f1, self.f2, self.f3, self.f4 = (target_fc1_size, target_fc2_size,
                                              target_fc3_size, target_fc4_size)
        self.feature_size = feature_size
        self.backbone = Stages(backbone)
        c = self.backbone.channels
        # ResNetBackbone's local distortion aware layers
        self.lda1_pool = nn.Sequential(nn.Conv2d(c[0], 16, 1, 1, 0, bias=False), nn.AvgPool2d(7, 7))
        self.lda1_fc = nn.Linear(16 * 64, lda_out_channels)
        self.lda2_pool = nn.Sequential(nn.Conv2d(c[1], 32, 1, 1, 0, bias=False), nn.AvgPool2d(7, 7))
        self.lda2_fc = nn.Linear(32 * 16, lda_out_channels)
        self.lda3_pool = nn.Sequential(nn.Conv2d(c[2], 64, 1, 1, 0, bias=False), nn.AvgPool2d(7, 7))
        self.lda3_fc = nn.Linear(64 * 4, lda_out_channels)
        self.lda4_pool = nn.AvgPool2d(7, stride=7)
        self.lda4_fc = nn.Linear(c[3], target_in_size - lda_out_channels * 3)

        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.conv1 = nn.Sequential(
            nn.Conv2d(c[3], 1024, 1, padding=(0, 0)), nn.ReLU(inplace=True),
            nn.Conv2d(1024, 512, 1, padding=(0, 0)), nn.ReLU(inplace=True),
            nn.Conv2d(512, self.hyperInChn, 1, padding=(0, 0)), nn.ReLU(inplace=True))
        fs2 = feature_size ** 2
        self.fc1w_conv = nn.Conv2d(self.hyperInChn, int(self.target_in_size * self.f1 / fs2), 3, padding=(1, 1))
        self.fc1b_fc = nn.Linear(self.hyperInChn, self.f1)
        self.fc2w_conv = nn.Conv2d(self.hyperInChn, int(self.f1 * self.f2 / fs2), 3, padding=(1, 1))
        self.fc2b_fc = nn.Linear(self.hyperInChn, self.f2)
        self.fc3w_conv = nn.Conv2d(self.hyperInChn, int(self.f2 * self.f3 / fs2), 3, padding=(1, 1))
        self.fc3b_fc = nn.Linear(self.hyperInChn, self.f3)
        self.fc4w_conv = nn.Conv2d(self.hyperInChn, int(self.f3 * self.f4 / fs2), 3, padding=(1, 1))
        self.fc4b_fc = nn.Linear(self.hyperInChn, self.f4)
        self.fc5w_fc = nn.Linear(self.hyperInChn, self.f4)
        self.fc5b_fc = nn.Linear(self.hyperInChn, 1)

    def res(self, x):
        x1, x2, x3, x4 = self.backbone(x)
        lda_1 = self.lda1_fc(self.lda1_pool(x1).view(x.size(0), -1))
        lda_2 = self.lda2_fc(self.lda2_pool(x2).view(x.size(0), -1))
        lda_3 = self.lda3_fc(self.lda3_pool(x3).view(x.size(0), -1))
        lda_4 = self.lda4_fc(self.lda4_pool(x4).view(x.size(0), -1))
        return {"hyper_in_feat": x4, "target_in_vec": torch.cat((lda_1, lda_2, lda_3, lda_4), 1)}

    def forward(self, img):
        fs = self.feature_size
        res_out = self.res(img)
        out = {"target_in_vec": res_out["target_in_vec"].view(-1, self.target_in_size, 1, 1)}
        h = self.conv1(res_out["hyper_in_feat"]).view(-1, self.hyperInChn, fs, fs)
        p = self.pool(h).squeeze()
        out["target_fc1w"] = self.fc1w_conv(h).view(-1, self.f1, self.target_in_size, 1, 1)
        out["target_fc1b"] = self.fc1b_fc(p).view(-1, self.f1)
        out["target_fc2w"] = self.fc2w_conv(h).view(-1, self.f2, self.f1, 1, 1)
        out["target_fc2b"] = self.fc2b_fc(p).view(-1, self.f2)
        out["target_fc3w"] = self.fc3w_conv(h).view(-1, self.f3, self.f2, 1, 1)
        out["target_fc3b"] = self.fc3b_fc(p).view(-1, self.f3)
        out["target_fc4w"] = self.fc4w_conv(h).view(-1, self.f4, self.f3, 1, 1)
        out["target_fc4b"] = self.fc4b_fc(p).view(-1, self.f4)
        out["target_fc5w"] = self.fc5w_fc(p).view(-1, 1, self.f4, 1, 1)
        out["target_fc5b"] = self.fc5b_fc(p).view(-1, 1)
        return out


class TargetFC(nn.Module):
    def __init__(self, weight, bias):
        super().__init__()
        self.weight = weight
        self.bias = bias

    def forward(self, input_):
        input_re = input_.view(-1, input_.shape[0] * input_.shape[1], input_.shape[2], input_.shape[3])
        weight_re = self.weight.view(self.weight.shape[0] * self.weight.shape[1], self.weight.shape[2],
                                     self.weight.shape[3], self.weight.shape[4])
        bias_re = self.bias.view(self.bias.shape[0] * self.bias.shape[1])
        out = F.conv2d(input=input_re, weight=weight_re, bias=bias_re, groups=self.weight.shape[0])
        return out.view(input_.shape[0], self.weight.shape[1], input_.shape[2], input_.shape[3])


class TargetNet(nn.Module):
    def __init__(self, paras):
        super().__init__()
        self.l1 = nn.Sequential(TargetFC(paras["target_fc1w"], paras["target_fc1b"]), nn.Sigmoid())
        self.l2 = nn.Sequential(TargetFC(paras["target_fc2w"], paras["target_fc2b"]), nn.Sigmoid())
        self.l3 = nn.Sequential(TargetFC(paras["target_fc3w"], paras["target_fc3b"]), nn.Sigmoid())
        self.l4 = nn.Sequential(TargetFC(paras["target_fc4w"], paras["target_fc4b"]), nn.Sigmoid(),
                                TargetFC(paras["target_fc5w"], paras["target_fc5b"]))

    def forward(self, x):
        q = self.l1(x)
        q = self.l2(q)
        q = self.l3(q)
        return self.l4(q).reshape(-1)  # the authors' .squeeze(), kept 1-D for batch 1


def hyper_rename(name):
    return name.replace("backbone.net.", "backbone.")


# ---------------------------------------------------------------------------------------------
# The plain regressor (torchvision ResNet-50, fc → Linear(2048, 1)).


def regressor():
    net = torchvision.models.resnet50(weights=None)
    net.fc = nn.Linear(2048, 1)
    return net


def regressor_rename(name):
    return name if name.startswith("fc.") else "backbone." + name


# ---------------------------------------------------------------------------------------------
# Cross-checks against pyiqa's own modules (when installed).


def pyiqa_check(cases):
    try:
        import timm
        from pyiqa.archs import dbcnn_arch, hypernet_arch
        import pyiqa
    except Exception as e:  # noqa: BLE001
        print(f"pyiqa not importable ({e}); copies not cross-checked")
        return None

    # S-CNN: pyiqa's class, same names.
    s = dbcnn_arch.SCNN().eval()
    fill_module(s)
    x = fill("input", (2, 3, 64, 80))
    diff = (s(x) - cases["scnn"]["model"](x)).abs().max().item()
    print(f"pyiqa SCNN vs copy: max diff {diff:.3g}")
    assert diff < 1e-5

    # DBCNN: pyiqa's forward on a module built without its downloading constructor.
    d = dbcnn_arch.DBCNN.__new__(dbcnn_arch.DBCNN)
    nn.Module.__init__(d)
    d.features1 = nn.Sequential(*list(torchvision.models.vgg16(weights=None).features.children())[:-1])
    d.features2 = dbcnn_arch.SCNN().features
    d.fc = nn.Linear(512 * 128, 1)
    d.default_mean = torch.zeros(1, 3, 1, 1)
    d.default_std = torch.ones(1, 3, 1, 1)
    d.eval()
    fill_module(d, dbcnn_rename)
    x = fill("input", (1, 3, 100, 116))
    diff = (d(x) - cases["dbcnn_vgg16"]["model"](x)).abs().max().item()
    print(f"pyiqa DBCNN vs copy: max diff {diff:.3g}")
    assert diff < 1e-5

    # HyperNet: pyiqa's module with timm's ResNet-50 (no pretrained download).
    orig = timm.create_model
    hypernet_arch.timm.create_model = lambda name, pretrained=False, **kw: orig(name, pretrained=False, **kw)
    try:
        h = hypernet_arch.HyperNet(pretrained=False).eval()
    finally:
        hypernet_arch.timm.create_model = orig

    def rename(n):
        if n.startswith("base_model."):
            return "backbone." + n[len("base_model."):]
        parts = n.split(".")
        if parts[0] == "lda_modules":
            i = int(parts[1])
            if i < 3:
                return f"lda{i + 1}_pool.0.{parts[3]}" if parts[2] == "0" else f"lda{i + 1}_fc.{parts[3]}"
            return f"lda4_fc.{parts[3]}"
        if parts[0] == "fc_w_modules":
            i = int(parts[1])
            return f"fc{i + 1}w_conv.{parts[2]}" if i < 4 else f"fc5w_fc.{parts[3]}"
        if parts[0] == "fc_b_modules":
            return f"fc{int(parts[1]) + 1}b_fc.{parts[3]}"
        return n

    fill_module(h, rename)
    x = fill("input", (2, 3, 224, 224))
    h.default_mean = torch.zeros(1, 3, 1, 1)
    h.default_std = torch.ones(1, 3, 1, 1)
    diff = (h.forward_patch(x).reshape(-1) - cases["hyperiqa_resnet50"]["run"](x)).abs().max().item()
    print(f"pyiqa HyperNet vs copy: max diff {diff:.3g}")
    assert diff < 1e-5
    return pyiqa.__version__


# ---------------------------------------------------------------------------------------------


def hyper_run(model):
    def run(x):
        paras = model(x)
        return TargetNet(paras)(paras["target_in_vec"])
    return run


def hyper_case(backbone, batch, train):
    model = HyperNet(backbone)
    fill_module(model, hyper_rename)
    model.train(train)
    x = fill("input", (batch, 3, 224, 224))
    paras = model(x)
    score = TargetNet(paras)(paras["target_in_vec"])
    return model, {
        "input": [batch, 3, 224, 224],
        "train": train,
        "lda": summary(paras["target_in_vec"].reshape(batch, -1)),
        "target_w1": summary(paras["target_fc1w"].reshape(batch, 112, 224)),
        "target_w5": summary(paras["target_fc5w"].reshape(batch, 1, 14)),
        "target_b1": summary(paras["target_fc1b"]),
        "score": score.tolist(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="reference/arch_parity.json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                    help="the dtype of every parameter, buffer and computation: float64 makes "
                         "the expected values independent of the CPU's fp32 kernels (AVX2 and "
                         "AVX-512 accumulate in different orders); tests/arch.rs runs in float64")
    args = ap.parse_args()
    torch.set_default_dtype(getattr(torch, args.dtype))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    name = "backbone.features.0.weight"
    out = {"torch": torch.__version__, "dtype": args.dtype,
           "fill_check": {"name": name, "fnv1a32": fnv1a32(name), "shape": [64, 3, 3, 3],
                          "first": fill(name, (64, 3, 3, 3)).flatten()[:6].tolist()},
           "cases": {}}
    cases = {}

    with torch.no_grad():
        # S-CNN classifier, eval and train mode (BatchNorm batch statistics).
        m = SCNN()
        fill_module(m)
        x = fill("input", (2, 3, 64, 80))
        m.eval()
        ev = m(x)
        m.train()
        tr = m(x)
        fill_module(m)  # the train-mode pass moved the running statistics
        m.eval()
        cases["scnn"] = {"model": m}
        out["cases"]["scnn"] = {"input": [2, 3, 64, 80], "logits_eval": summary(ev),
                                "logits_train": summary(tr)}

        # DBCNN, VGG-16 (maps 6x7 vs S-CNN 7x8: interpolation) and the Lite0 stand-in.
        for key, fcnn, shape in [("dbcnn_vgg16", "vgg16", (1, 3, 100, 116)),
                                 ("dbcnn_lite0", "lite0", (1, 3, 96, 96))]:
            m = DBCNN(fcnn).eval()
            fill_module(m, dbcnn_rename)
            x = fill("input", shape)
            d = m.descriptor(x)
            cases[key] = {"model": m}
            out["cases"][key] = {
                "input": list(shape),
                "fcnn_map": list(m.features1(x).shape),
                "scnn_map": list(m.features2(x).shape),
                "descriptor": summary(d),
                "score": m.fc(d).reshape(-1).tolist(),
            }

        # HyperIQA, ResNet-50 (eval, and train mode) and the Lite0 stand-in.
        m, res = hyper_case("resnet50", 2, False)
        cases["hyperiqa_resnet50"] = {"run": hyper_run(m)}
        out["cases"]["hyperiqa_resnet50"] = res
        _, res = hyper_case("resnet50", 2, True)
        out["cases"]["hyperiqa_resnet50_train"] = res
        _, res = hyper_case("lite0", 1, False)
        out["cases"]["hyperiqa_lite0"] = res

        # The plain ResNet-50 regressor.
        m = regressor().eval()
        fill_module(m, regressor_rename)
        x = fill("input", (2, 3, 64, 64))
        out["cases"]["regressor_resnet50"] = {"input": [2, 3, 64, 64],
                                              "score": m(x).reshape(-1).tolist()}

        # The batched-matmul target network (pyiqa's) equals the grouped-convolution one.
        out["pyiqa_checked"] = pyiqa_check(cases)

    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
