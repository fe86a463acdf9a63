"""The 25 KADID-10k synthetic distortions at levels 1..5 (the code of ``normiqa synth``)."""

from __future__ import annotations

from typing import List, Tuple, Union

import numpy as np

from . import _normiqa

#: (id, name, family) of the 25 types, in KADID-10k order.
TYPES: List[Tuple[int, str, str]] = [tuple(t) for t in _normiqa.distortions()]
#: The 25 names, e.g. "gaussian_blur", "jpeg", "white_noise".
DISTORTIONS: List[str] = [name for _, name, _ in TYPES]


def distort(img: np.ndarray, distortion: Union[str, int], level: int, seed: int = 0) -> np.ndarray:
    """``img`` (HxWx3 uint8 RGB) with ``distortion`` (a name of :data:`DISTORTIONS`, or a
    KADID id 1..25) at ``level`` 1 (mildest) .. 5; the random types (noise, jitter, patches)
    draw from a generator seeded with ``seed``, so a call is deterministic. Returns a new
    array of the same size."""
    a = np.asarray(img)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise _normiqa.NormiqaError(f"img: expected an HxWx3 uint8 RGB array, got dtype {a.dtype} and shape {a.shape}")
    if not 1 <= int(level) <= 5:
        raise _normiqa.NormiqaError(f"level {level}: levels are 1..5")
    return _normiqa.distort(np.ascontiguousarray(a), str(distortion), int(level), int(seed))
