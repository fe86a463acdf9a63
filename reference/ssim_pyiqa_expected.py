#!/usr/bin/env python3
"""Expected SSIM values from pyiqa for normiqa-core's default SSIM (crates/normiqa-core/tests/fr.rs,
test `ssim_default_matches_pyiqa`).

pyiqa.create_metric('ssim') (test_y_channel=True: YIQ's Y = round(255 (0.299 r + 0.587 g + 0.114 b)),
no automatic downsampling, relu on the contrast-structure map) on every pair below; both sides read
the same lossless PNGs. Pairs: the fixtures of reference/fr_expected.py (rgb_ref.png 201x187,
gray_ref.png 400x390, where ssim.m would downsample by 2) and `normiqa synth` distortions
(gaussian_blur, white_noise, jpeg, contrast_change at level 3) of kodim05 (128x128 crop) and rgb_ref.

    python3 -m venv VENV && VENV/bin/pip install torch==2.13.0 torchvision pyiqa
    VENV/bin/python reference/ssim_pyiqa_expected.py
"""
import json
import os
import platform

import numpy as np
import pyiqa
import torch
from PIL import Image
from torchvision.transforms.functional import to_tensor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIR = os.path.join(ROOT, "crates", "normiqa-core", "tests", "data", "fr")

PAIRS = [
    ("rgb_ref.png", "rgb_noise10.png"),
    ("rgb_ref.png", "rgb_blur.png"),
    ("rgb_ref.png", "rgb_jpeg20.png"),
    ("gray_ref.png", "gray_jpeg20.png"),
    ("gray_ref.png", "gray_noise15.png"),
] + [
    ("synth_%s.png" % ref, "synth_%s_%s_3.png" % (ref, d))
    for ref in ("kodim05", "rgb_ref")
    for d in ("01", "10", "11", "25")
]


def load(name):
    # RGB for every file (gray PNGs become R = G = B, as normiqa's image::open(..).to_rgb8())
    return to_tensor(Image.open(os.path.join(DIR, name)).convert("RGB")).unsqueeze(0)


def main():
    metric = pyiqa.create_metric("ssim", device=torch.device("cpu"), as_loss=False)
    cases = []
    for ref, dist in PAIRS:
        if ref == "synth_rgb_ref.png":
            ref = "rgb_ref.png"
        with torch.no_grad():
            v = metric(load(dist), load(ref)).item()
        cases.append({"reference": ref, "distorted": dist, "ssim_pyiqa": v})
        print("%-22s %-26s %.6f" % (ref, dist, v))
    out = {
        "provenance": {
            "script": "reference/ssim_pyiqa_expected.py",
            "python": platform.python_version(),
            "torch": torch.__version__,
            "pyiqa": pyiqa.__version__,
            "numpy": np.__version__,
            "metric": "pyiqa.create_metric('ssim'): SSIM(downsample=False, test_y_channel=True, "
                      "color_space='yiq'), data_range 255, float64 after the rounded Y",
        },
        "cases": cases,
    }
    with open(os.path.join(DIR, "ssim_pyiqa.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
