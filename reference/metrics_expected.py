#!/usr/bin/env python3
"""Expected values for normiqa-core's metrics tests, computed with numpy + scipy.

Writes crates/normiqa-core/tests/data/metrics_expected.json (deterministic:
fixed seeds, values stored with repr() round-trip precision).

    python3 -m venv /tmp/venv-metrics && /tmp/venv-metrics/bin/pip install numpy scipy
    /tmp/venv-metrics/bin/python reference/metrics_expected.py

"mapped" mirrors LinearityIQA's IQAPerformance (status='train', mapping=True):
k, b from least squares (scipy.stats.linregress, cross-checked with
numpy.linalg.lstsq), then every criterion between MOS and k*pred + b.

"logistic4" / "logistic5": pyiqa's fit_curve (pyiqa/metrics/correlation_coefficient.py, VQEG
4-parameter logistic and DBCNN's 5-parameter one, same starting points), i.e.
scipy.optimize.curve_fit (Levenberg-Marquardt), then PLCC and RMSE (without pyiqa's +1e-8 under
the square root) of the fitted curve against MOS; also the parameters and the sum of squares.
"""
import json
import os
import platform
import sys

import numpy as np
import scipy
from scipy import stats
from scipy.optimize import curve_fit

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates",
                   "normiqa-core", "tests", "data", "metrics_expected.json")


def criteria(p, y):
    return {
        "srocc": float(stats.spearmanr(p, y)[0]),
        "plcc": float(stats.pearsonr(p, y)[0]),
        "krocc": float(stats.kendalltau(p, y)[0]),  # default: tau-b
        "rmse": float(np.sqrt(np.mean((p - y) ** 2))),
    }


def logistic_4params(x, beta1, beta2, beta3, beta4):
    return (beta1 - beta2) / (1 + np.exp(-(x - beta3) / beta4)) + beta2


def logistic_5params(x, beta1, beta2, beta3, beta4, beta5):
    logistic_part = 0.5 - 1.0 / (1 + np.exp(beta2 * (x - beta3)))
    return beta1 * logistic_part + beta4 * x + beta5


def logistic(pred, mos):
    """pyiqa fit_curve for both curves."""
    out = {}
    inits = {
        "logistic4": (logistic_4params, [np.max(mos), np.min(mos), np.mean(pred), np.std(pred) / 4.0]),
        "logistic5": (logistic_5params, [10, 0, np.mean(mos), 0.1, 0.1]),
    }
    for name, (f, p0) in inits.items():
        with np.errstate(over="ignore"):
            betas, _ = curve_fit(f, pred, mos, p0=p0, maxfev=100000)
            yhat = f(pred, *betas)
        out[name] = {
            "params": [float(b) for b in betas],
            "plcc": float(stats.pearsonr(yhat, mos)[0]),
            "rmse": float(np.sqrt(np.mean((yhat - mos) ** 2))),
            "sse": float(np.sum((yhat - mos) ** 2)),
        }
    return out


def case(name, pred, mos):
    pred = np.asarray(pred, dtype=np.float64)
    mos = np.asarray(mos, dtype=np.float64)
    lr = stats.linregress(pred, mos)
    k, b = float(lr.slope), float(lr.intercept)
    h = np.linalg.lstsq(np.stack([pred, np.ones_like(pred)], 1), mos, rcond=None)[0]
    assert np.allclose([k, b], h, rtol=1e-10, atol=1e-12), (name, k, b, h)
    return {
        "name": name,
        "n": int(pred.size),
        "pred": pred.tolist(),
        "mos": mos.tolist(),
        "raw": criteria(pred, mos),
        "k": k,
        "b": b,
        "mapped": criteria(k * pred + b, mos),
        "logistic": logistic(pred, mos),
    }


def ttest_case(name, a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    r = stats.ttest_rel(a, b)
    return {
        "name": name,
        "a": a.tolist(),
        "b": b.tolist(),
        "t": float(r.statistic),
        "df": float(r.df),
        "p_two_sided": float(r.pvalue),
        "mean_diff": float(np.mean(a - b)),
    }


def main():
    rng = np.random.default_rng(20200712)  # fixed seed
    cases = []

    # Small, hand-checkable, ties in both.
    cases.append(case("small_ties",
                      [1.0, 2.0, 2.0, 3.0, 5.0, 5.0, 5.0, 8.0, 9.0, 10.0],
                      [2.0, 1.0, 3.0, 3.0, 4.0, 6.0, 4.0, 9.0, 7.0, 9.0]))

    # n = 50, many ties: predictions rounded to 1 decimal, MOS to integers.
    x = rng.uniform(0, 1, 50)
    cases.append(case("n50_ties",
                      np.round(x, 1),
                      np.round(1 + 4 * x ** 1.5 + rng.normal(0, 0.4, 50))))

    # n = 1000, continuous predictions, MOS nonlinear in pred + noise,
    # MOS rounded to 2 decimals (some ties).
    x = rng.normal(0, 1, 1000)
    cases.append(case("n1000_nonlinear",
                      x,
                      np.round(50 + 20 * np.tanh(0.8 * x) + rng.normal(0, 6, 1000), 2)))

    # n = 1000, negative correlation, predictions on a coarse grid (heavy ties).
    x = rng.uniform(0, 100, 1000)
    cases.append(case("n1000_inverse_ties",
                      np.floor(x / 5) * 5,
                      -0.03 * x + 4 + rng.normal(0, 0.5, 1000)))

    ttests = [
        # Two losses' test SROCC over 10 splits.
        ttest_case("splits10",
                   0.90 + 0.02 * rng.standard_normal(10),
                   0.89 + 0.02 * rng.standard_normal(10)),
        ttest_case("n50_negative",
                   rng.normal(0, 1, 50),
                   rng.normal(0.3, 1, 50)),
        ttest_case("small_hand", [1.0, 2.0, 3.0, 4.0], [0.5, 2.5, 2.0, 3.0]),
    ]

    # drawn after the t-tests so that their values stay as before
    # n = 200, a clearly sigmoid relation (where the logistic mappings matter)
    x = rng.uniform(0, 1, 200)
    cases.append(case("n200_sigmoid", x,
                      20 + 60 / (1 + np.exp(-(x - 0.5) / 0.08)) + rng.normal(0, 3, 200)))

    out = {
        "provenance": {
            "script": "reference/metrics_expected.py",
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "seed": 20200712,
            "notes": "spearmanr, pearsonr, kendalltau (tau-b), sqrt(mean((p-y)^2)), "
                     "linregress slope/intercept (checked vs numpy lstsq), ttest_rel; "
                     "'mapped' = criteria of k*pred+b vs mos as LinearityIQA IQAPerformance",
        },
        "cases": cases,
        "ttests": ttests,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.normpath(OUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
