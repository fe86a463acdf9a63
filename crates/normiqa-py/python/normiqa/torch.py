"""The Norm-in-Norm loss for PyTorch users (needs the full ``torch``: ``pip install torch``).

Why a PyTorch implementation and not the Rust loss on shared tensors: the loss is a dozen
tensor operations, so written in PyTorch it runs on the caller's tensors on any device and
dtype, inside their autograd graph, ``torch.compile`` and AMP included. Handing torch tensors
to the Rust side would need ``libtorch_python`` and the C++ ABI of the exact torch build, and
give nothing in return. It is the same computation as the Rust loss that ``normiqa train``
minimises (src/loss.rs), operation for operation; the package's tests check its value and
gradient against the Rust one (``normiqa._normiqa.norm_in_norm_reference``, f64) to 1e-6.
"""

from __future__ import annotations

from typing import Tuple

import torch

#: The small constant added to the norms before dividing (the reference's).
EPS = 1e-8


def _normalize(x: torch.Tensor, q: float, detach: bool) -> torch.Tensor:
    m = x.mean()
    if detach:
        m = m.detach()
    centred = x - m
    norm = torch.linalg.vector_norm(centred, ord=q)
    if detach:
        norm = norm.detach()
    return centred / (norm + EPS)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    dot = (a * b).sum()
    na = torch.linalg.vector_norm(a, ord=2).clamp_min(1e-8)
    nb = torch.linalg.vector_norm(b, ord=2).clamp_min(1e-8)
    return dot / (na * nb)


def norm_in_norm_scale(p: float, q: float, n: int) -> float:
    """The normalising constant c of eq. (6): ``2^p·N^(1−p/q)`` if p < q, else ``2^p``."""
    return 2.0**p * float(n) ** (1.0 - p / q) if p < q else 2.0**p


def norm_in_norm_loss(
    pred: torch.Tensor,
    mos: torch.Tensor,
    p: float = 1.0,
    q: float = 2.0,
    alpha: Tuple[float, float] = (1.0, 0.0),
    detach: bool = False,
) -> torch.Tensor:
    """Norm-in-Norm loss (Li, Jiang & Jiang, ACM MM 2020), eqs. (1)–(6) and (15).

    ``pred`` and ``mos``: 1-D (or N×1) tensors of one batch. Both are centred and divided by
    the L^q norm of the centred values (Ŝ, S); the loss is ``‖Ŝ − S‖_p^p / c``, mixed with the
    PLCC-scaled form ``‖ρ·Ŝ − S‖_p^p / c`` as ``(a0·l + a1·l′) / (a0 + a1)`` for
    ``alpha = (a0, a1)``. ``detach``: the prediction's mean and norm without gradient (the
    reference's ``--detach``). A batch of one gives 0, still connected to the graph.
    Returns a 0-dim tensor with autograd; p, q ≥ 1.
    """
    if not (p >= 1.0 and q >= 1.0):
        raise ValueError(f"p={p}, q={q}: Norm-in-Norm needs p >= 1 and q >= 1")
    a0, a1 = float(alpha[0]), float(alpha[1])
    if not (a0 >= 0.0 and a1 >= 0.0) or a0 + a1 <= 0.0:
        raise ValueError(f"alpha={alpha}: both must be >= 0 with a positive sum")
    pred = pred.reshape(-1)
    mos = mos.reshape(-1).to(pred.dtype)
    n = pred.shape[0]
    if mos.shape[0] != n:
        raise ValueError(f"predictions have {n} values but the MOS has {mos.shape[0]}")
    zero = pred.sum() * 0.0
    if n < 2:
        return zero
    s_hat = _normalize(pred, q, detach)
    s = _normalize(mos, q, False)
    c = norm_in_norm_scale(p, q, n)

    def term(err: torch.Tensor) -> torch.Tensor:
        return err.abs().pow(p).sum() / c

    total = zero
    if a0 > 0.0:
        total = total + term(s_hat - s) * a0
    if a1 > 0.0:
        total = total + term(s_hat * _cosine(s_hat, s) - s) * a1
    return total / (a0 + a1)
