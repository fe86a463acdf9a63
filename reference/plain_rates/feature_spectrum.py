# Statistics of cached frozen Lite0 features (docs/plain-regressor-rates.md). Usage: python reference/plain_rates/feature_spectrum.py .normiqa-cache
# Spectral analysis of the frozen Lite0 pooled features (level 7, 1280-d) of CLIVE: why a plain
# Linear(1280, 1) trained by SGD (momentum 0.9, batch 16, MSE on z-scored MOS) diverges.
import glob, sys, json
import numpy as np
from safetensors.numpy import load_file

files = sorted(glob.glob(sys.argv[1] + "/features-*.safetensors"))
keys = [open(f.replace(".safetensors", ".key")).read() for f in files]
f = None
for fn, k in zip(files, keys):
    t = load_file(fn)
    print(fn, {n: v.shape for n, v in t.items()}, k.splitlines()[0])
    for n, v in t.items():
        if v.ndim == 2 and v.shape[1] == 1280:
            f = v.astype(np.float64)
assert f is not None
n, d = f.shape
X = np.hstack([f, np.ones((n, 1))])  # the bias as a constant feature
M = X.T @ X / n                       # E[x x^T] (uncentred)
lam = np.linalg.eigvalsh(M)
C = np.cov(f, rowvar=False)
lamc = np.linalg.eigvalsh(C)
mu = f.mean(0)
out = {
    "n": n, "dim": d,
    "feature_mean": float(f.mean()), "feature_min": float(f.min()), "feature_max": float(f.max()),
    "mean_sq_norm_E||x||^2": float((f ** 2).sum(1).mean()),
    "||E x||^2": float(mu @ mu),
    "lambda_max_E[xx^T]": float(lam[-1]),
    "lambda_2_E[xx^T]": float(lam[-2]),
    "lambda_max_cov": float(lamc[-1]),
    "lambda_max_standardised": float(np.linalg.eigvalsh(np.corrcoef(f[:, f.std(0) > 0], rowvar=False))[-1]),
}
beta = 0.9
# MSE mean over the batch: Hessian H = 2 E[x x^T]; heavy-ball stable iff lr < 2(1+beta)/lambda_max(H)
out["lr_limit_full_batch_sgd_momentum0.9"] = 2 * (1 + beta) / (2 * lam[-1])
out["lr_limit_plain_sgd"] = 2 / (2 * lam[-1])
print(json.dumps(out, indent=1))
