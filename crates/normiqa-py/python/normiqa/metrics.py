"""IQA criteria (SROCC, PLCC, KROCC, RMSE), the linear and logistic mappings, the paired t-test:
the f64 Rust code behind ``normiqa metrics``, ``normiqa test`` and the reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _normiqa

ArrayLike = Union[Sequence[float], np.ndarray]


def _floats(x: ArrayLike) -> List[float]:
    return np.asarray(x, dtype=np.float64).ravel().tolist()


def srocc(pred: ArrayLike, mos: ArrayLike) -> float:
    """Spearman rank-order correlation (ties get average ranks)."""
    return _normiqa.srocc(_floats(pred), _floats(mos))


def plcc(pred: ArrayLike, mos: ArrayLike) -> float:
    """Pearson linear correlation."""
    return _normiqa.plcc(_floats(pred), _floats(mos))


def krocc(pred: ArrayLike, mos: ArrayLike) -> float:
    """Kendall rank-order correlation (tau-b)."""
    return _normiqa.krocc(_floats(pred), _floats(mos))


def rmse(pred: ArrayLike, mos: ArrayLike) -> float:
    """Root mean squared error."""
    return _normiqa.rmse(_floats(pred), _floats(mos))


def fit_linear(pred: ArrayLike, mos: ArrayLike) -> Tuple[float, float]:
    """The least-squares mapping ``mos ≈ k·pred + b`` (Norm-in-Norm eq. 17): ``(k, b)``."""
    return _normiqa.fit_linear(_floats(pred), _floats(mos))


def evaluate(
    pred: ArrayLike, mos: ArrayLike, mapping: Union[None, str, Tuple[float, float]] = None
) -> Dict[str, float]:
    """``{"srocc", "plcc", "krocc", "rmse", "n"}`` of the predictions against MOS.

    ``mapping``: None (raw predictions), ``"linear"`` (fit k, b on these data, as the
    reference's IQAPerformance in train mode) or a fitted ``(k, b)`` (its test mode)."""
    p, m = _floats(pred), _floats(mos)
    if mapping == "linear":
        mapping = _normiqa.fit_linear(p, m)
    elif isinstance(mapping, str):
        raise ValueError(f"mapping={mapping!r}: expected None, 'linear' or (k, b)")
    return _normiqa.evaluate(p, m, mapping)


@dataclass(frozen=True)
class LogisticFit:
    """A fitted logistic curve; calling it maps predictions onto the MOS scale."""

    curve: str
    params: Tuple[float, ...]
    plcc: float
    rmse: float
    iterations: int

    def __call__(self, pred: ArrayLike) -> np.ndarray:
        return np.asarray(_normiqa.logistic_apply(self.curve, list(self.params), _floats(pred)))


def fit_logistic(pred: ArrayLike, mos: ArrayLike, curve: str = "logistic4") -> LogisticFit:
    """Fits the VQEG logistic mapping (``logistic4`` or ``logistic5``, pyiqa's starting
    points, Levenberg–Marquardt); its ``plcc`` and ``rmse`` are those of the mapped
    predictions (as pyiqa's ``calculate_plcc(..., fit_scale=...)``)."""
    params, p, r, it = _normiqa.fit_logistic(curve, _floats(pred), _floats(mos))
    return LogisticFit(curve, tuple(params), p, r, it)


@dataclass(frozen=True)
class TTest:
    """A paired t-test: ``t = mean(d) / (sd(d) / sqrt(n))``, ``df = n - 1``, two-sided ``p``."""

    t: float
    df: float
    p: float
    mean_diff: float


def paired_t_test(a: ArrayLike, b: ArrayLike) -> TTest:
    """Paired t-test of ``mean(a - b) = 0``, as ``scipy.stats.ttest_rel(a, b)`` (e.g. two
    losses over the same splits)."""
    return TTest(*_normiqa.paired_t_test(_floats(a), _floats(b)))
