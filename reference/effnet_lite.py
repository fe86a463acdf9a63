"""EfficientNet-Lite0/1/2 in plain PyTorch, matching normiqa's Rust backbone.

- Lite1 and Lite2 scale Lite0's stage table as TensorFlow's efficientnet_lite_builder
  (width, depth): lite1 (1.0, 1.1), lite2 (1.1, 1.2); round_filters (multiples of 8, never
  below 90%), round_repeats (ceil), fix_head_stem: stem 32, head 1280 and the repeats of the
  first and last stage unscaled.

- ReLU6, no squeeze-excitation, BatchNorm eps 1e-3 / momentum 0.01 (PyTorch convention).
- TensorFlow "SAME" padding computed from the actual input size at every forward
  (pad_total = max((ceil(i/s)-1)*s + k - i, 0); pad_before = total//2, the rest after).
- Residual when stride 1 and c_in == c_out; in train mode stochastic depth ("drop connect") at
  rate 0.2 * block_idx / 16 with a per-sample Bernoulli keep mask, x / keep * mask.
- Parameter names follow the lukemelas / efficientnet-lite-pytorch layout so that
  efficientnet-lite0.pth loads with strict=True: _conv_stem, _bn0, _blocks.N.{_expand_conv, _bn0,
  _depthwise_conv, _bn1, _project_conv, _bn2}, _conv_head, _bn1, _fc.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

BN_EPS = 1e-3
BN_MOMENTUM = 0.01
DROP_CONNECT_RATE = 0.2
# (repeats, kernel, stride, expand, c_in, c_out)
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
N_BLOCKS = sum(s[0] for s in STAGES)  # 16
TAP6_BLOCK = 10  # last block of the stride-16 stage (112 channels)
# name: (width, depth) multipliers of TensorFlow's efficientnet_lite_builder
VARIANTS = {
    "efficientnet-lite0": (1.0, 1.0),
    "efficientnet-lite1": (1.0, 1.1),
    "efficientnet-lite2": (1.1, 1.2),
}


def round_filters(c, width):
    scaled = c * width
    new = max(8, int(scaled + 4) // 8 * 8)
    return new + 8 if new < 0.9 * scaled else new


def variant_stages(variant):
    """The stage table of a variant (fix_head_stem: first and last stage repeats unscaled)."""
    width, depth = VARIANTS[variant]
    out = []
    for i, (reps, k, s, e, ci, co) in enumerate(STAGES):
        if 0 < i < len(STAGES) - 1:
            reps = int(math.ceil(reps * depth))
        out.append((reps, k, s, e, round_filters(ci, width), round_filters(co, width)))
    return out


def _bn(c):
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class SameConv2d(nn.Conv2d):
    """Conv2d (no bias) with TF 'SAME' padding computed from the input size at each call."""

    def __init__(self, c_in, c_out, k, stride=1, groups=1):
        super().__init__(c_in, c_out, k, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x):
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph > 0 or pw > 0:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, None, self.stride, 0, self.dilation, self.groups)


def drop_connect(x, rate, training):
    if not training or rate <= 0:
        return x
    keep = 1.0 - rate
    mask = torch.floor(keep + torch.rand([x.shape[0], 1, 1, 1], dtype=x.dtype, device=x.device))
    return x / keep * mask


class MBConv(nn.Module):
    def __init__(self, c_in, c_out, k, stride, expand, drop_rate):
        super().__init__()
        mid = c_in * expand
        self.expand = expand
        if expand != 1:
            self._expand_conv = SameConv2d(c_in, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, k, stride=stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, c_out, 1)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out
        self.drop_rate = drop_rate

    def forward(self, x):
        h = x
        if self.expand != 1:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        if self.residual:
            h = drop_connect(h, self.drop_rate, self.training) + x
        return h


class EfficientNetLite(nn.Module):
    def __init__(self, variant="efficientnet-lite0", num_classes=1000,
                 drop_connect_rate=DROP_CONNECT_RATE):
        super().__init__()
        stages = variant_stages(variant)
        n_blocks = sum(st[0] for st in stages)
        self._conv_stem = SameConv2d(3, 32, 3, stride=2)
        self._bn0 = _bn(32)
        blocks = []
        ends = []
        for reps, k, s, e, ci, co in stages:
            for r in range(reps):
                idx = len(blocks)
                blocks.append(MBConv(ci if r == 0 else co, co, k, s if r == 0 else 1, e,
                                     drop_connect_rate * idx / n_blocks))
            ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self.tap6 = ends[4]  # end of the stride-16 stage
        self.c6 = stages[4][5]
        self._conv_head = SameConv2d(stages[-1][5], 1280, 1)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def forward_taps(self, x):
        """Returns (level-6 map: output of block 10, level-7 map: head output)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        x6 = None
        for i, b in enumerate(self._blocks):
            x = b(x)
            if i == self.tap6:
                x6 = x
        x7 = F.relu6(self._bn1(self._conv_head(x)))
        return x6, x7

    def logits(self, x):
        _, x7 = self.forward_taps(x)
        return self._fc(x7.mean(dim=(2, 3)))


class EfficientNetLite0(EfficientNetLite):
    def __init__(self, num_classes=1000, drop_connect_rate=DROP_CONNECT_RATE):
        super().__init__("efficientnet-lite0", num_classes, drop_connect_rate)


def load_lite0(path, map_location="cpu"):
    return load_lite(path, "efficientnet-lite0", map_location)


def load_lite(path, variant, map_location="cpu"):
    net = EfficientNetLite(variant)
    sd = torch.load(path, map_location=map_location, weights_only=False)
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    net.load_state_dict(sd, strict=True)
    return net
