"""normiqa.metrics against independent numpy computations."""

import math

import numpy as np
import pytest

import normiqa
from normiqa import metrics


def ranks(x):
    """Average ranks (ties share the mean of their positions), 1-based."""
    x = np.asarray(x)
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tie = x == v
        r[tie] = r[tie].mean()
    return r


def kendall_tau_b(x, y):
    n = len(x)
    conc = disc = tx = ty = 0
    for i in range(n):
        for j in range(i + 1, n):
            a, b = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            if a == 0 and b == 0:
                continue
            if a == 0:
                tx += 1
            elif b == 0:
                ty += 1
            elif a == b:
                conc += 1
            else:
                disc += 1
    return (conc - disc) / math.sqrt((conc + disc + tx) * (conc + disc + ty))


@pytest.fixture
def data():
    rng = np.random.default_rng(5)
    mos = rng.uniform(0, 100, 60)
    pred = 0.02 * mos + rng.normal(0, 0.3, 60)
    pred[:4] = pred[4]  # ties
    return pred, mos


def test_correlations_and_rmse_match_numpy(data):
    pred, mos = data
    assert metrics.plcc(pred, mos) == pytest.approx(np.corrcoef(pred, mos)[0, 1], abs=1e-12)
    assert metrics.srocc(pred, mos) == pytest.approx(np.corrcoef(ranks(pred), ranks(mos))[0, 1], abs=1e-12)
    assert metrics.krocc(pred, mos) == pytest.approx(kendall_tau_b(pred, mos), abs=1e-12)
    assert metrics.rmse(pred, mos) == pytest.approx(np.sqrt(np.mean((pred - mos) ** 2)), abs=1e-9)


def test_linear_mapping_is_the_least_squares_fit(data):
    pred, mos = data
    k, b = metrics.fit_linear(pred, mos)
    want_k, want_b = np.polyfit(pred, mos, 1)
    assert (k, b) == pytest.approx((want_k, want_b), rel=1e-9)
    ev = metrics.evaluate(pred, mos, mapping="linear")
    assert ev["n"] == 60
    assert ev["rmse"] == pytest.approx(np.sqrt(np.mean((k * pred + b - mos) ** 2)), abs=1e-9)
    assert metrics.evaluate(pred, mos, mapping=(k, b)) == ev
    assert metrics.evaluate(pred, mos)["rmse"] == pytest.approx(metrics.rmse(pred, mos))


def test_logistic_fit_reports_the_criteria_of_its_mapped_predictions(data):
    pred, mos = data
    for curve in ("logistic4", "logistic5"):
        fit = metrics.fit_logistic(pred, mos, curve)
        mapped = fit(pred)
        assert fit.plcc == pytest.approx(np.corrcoef(mapped, mos)[0, 1], abs=1e-12)
        assert fit.rmse == pytest.approx(np.sqrt(np.mean((mapped - mos) ** 2)), abs=1e-9)
        # a least-squares fit maps at least as well as the straight line
        assert fit.rmse <= metrics.evaluate(pred, mos, mapping="linear")["rmse"] + 1e-9
    with pytest.raises(normiqa.NormiqaError, match="logistic3"):
        metrics.fit_logistic(pred, mos, "logistic3")


def test_paired_t_test_matches_its_formula_and_the_cauchy_p_value():
    rng = np.random.default_rng(1)
    a = rng.normal(0.8, 0.02, 10)
    b = a - rng.normal(0.01, 0.01, 10)
    t = metrics.paired_t_test(a, b)
    d = a - b
    assert t.t == pytest.approx(d.mean() / (d.std(ddof=1) / np.sqrt(10)), rel=1e-12)
    assert t.df == 9 and t.mean_diff == pytest.approx(d.mean())
    # df = 1: the t distribution is Cauchy, p = 1 - 2/pi * atan(|t|)
    t2 = metrics.paired_t_test([1.0, 2.0], [0.5, 0.8])
    assert t2.p == pytest.approx(1 - 2 / math.pi * math.atan(abs(t2.t)), abs=1e-12)


def test_bad_inputs_raise_saying_why():
    with pytest.raises(normiqa.NormiqaError, match="length|lengths"):
        metrics.srocc([1, 2, 3], [1, 2])
    with pytest.raises(normiqa.NormiqaError, match="constant|equal"):
        metrics.plcc([1, 1, 1], [1, 2, 3])
