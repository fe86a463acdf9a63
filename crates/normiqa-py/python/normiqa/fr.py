"""Full-reference metrics on HxWx3 uint8 RGB numpy arrays (the code of ``normiqa fr``)."""

from __future__ import annotations

import numpy as np

from . import _normiqa


def _rgb(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise _normiqa.NormiqaError(f"{what}: expected an HxWx3 uint8 RGB array, got dtype {a.dtype} and shape {a.shape}")
    return np.ascontiguousarray(a)


def _metric(name: str, reference: np.ndarray, distorted: np.ndarray, ssim_mode: str = "pyiqa") -> float:
    return _normiqa.full_reference(name, _rgb(reference, "reference"), _rgb(distorted, "distorted"), ssim_mode)


def psnr(reference: np.ndarray, distorted: np.ndarray) -> float:
    """PSNR in dB over the RGB channels (peak 255); infinite for identical images."""
    return _metric("psnr", reference, distorted)


def ssim(reference: np.ndarray, distorted: np.ndarray, mode: str = "pyiqa") -> float:
    """SSIM: ``mode="pyiqa"`` (pyiqa's: YIQ luma, no downsampling) or ``"matlab"`` (the
    authors' ssim.m: rgb2gray, automatic downsampling)."""
    return _metric("ssim", reference, distorted, mode)


def ms_ssim(reference: np.ndarray, distorted: np.ndarray) -> float:
    """MS-SSIM (5 scales; images need at least 161 pixels on a side)."""
    return _metric("ms-ssim", reference, distorted)


def gmsd(reference: np.ndarray, distorted: np.ndarray) -> float:
    """GMSD, a distortion measure: 0 for identical images, larger is worse."""
    return _metric("gmsd", reference, distorted)
