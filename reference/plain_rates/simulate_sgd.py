# docs/plain-regressor-rates.md. Usage: python reference/plain_rates/simulate_sgd.py .normiqa-cache ../shared/data/clive/mos.csv
# The plain model's training on cached Lite0 features, in numpy: Linear(1280,1), MSE on z-scored
# MOS, SGD momentum 0.9 (PyTorch form), batch 16, cosine per epoch over 30 epochs, 80/20 split.
import glob, csv, sys, math
import numpy as np
from safetensors.numpy import load_file
f = load_file(glob.glob(sys.argv[1] + "/features-*.safetensors")[0])["f7"].astype(np.float64)
mos = np.array([float(r["mos"]) for r in csv.DictReader(open(sys.argv[2]))])
assert len(mos) == len(f)
def srcc(a, b):
    ra, rb = a.argsort().argsort(), b.argsort().argsort()
    return np.corrcoef(ra, rb)[0, 1]
def run(x, lr, seed, mom=0.9, epochs=30, bs=16):
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x)); ntr = int(0.8 * len(x)); tr, te = idx[:ntr], idx[ntr:]
    y = (mos - mos[tr].mean()) / mos[tr].std()
    d = x.shape[1]; b0 = 1 / math.sqrt(d)
    w = rng.uniform(-b0, b0, d); b = rng.uniform(-b0, b0); vw = np.zeros(d); vb = 0.0
    for ep in range(epochs):
        eta = 0.5 * lr * (1 + math.cos(math.pi * ep / epochs))
        order = rng.permutation(tr)
        for s in range(0, len(order) - bs + 1, bs):
            j = order[s:s + bs]; r = x[j] @ w + b - y[j]
            gw = 2 * x[j].T @ r / len(j); gb = 2 * r.mean()
            vw = mom * vw + gw; vb = mom * vb + gb; w -= eta * vw; b -= eta * vb
            if not np.isfinite(w).all() or np.abs(w).max() > 1e12:
                return float("nan"), float("inf")
    p = x[te] @ w + b
    return srcc(p, y[te]), np.abs(w).max()
mu, sd = f.mean(0), f.std(0) + 1e-6
feats = {"raw": f, "centred": f - mu, "standardised": (f - mu) / sd, "scaled_E||x||2=1": f / np.sqrt((f ** 2).sum(1).mean())}
print("lr      " + "  ".join(f"{k:>22}" for k in feats))
for lr in [0.001, 0.01, 0.02, 0.05, 0.1, 0.3, 1.0]:
    cells = []
    for k, x in feats.items():
        res = [run(x, lr, s) for s in range(3)]
        s = [r[0] for r in res]
        cells.append(f"{np.nanmean(s) if not all(np.isnan(s)) else float('nan'):.3f} (max|w| {max(r[1] for r in res):.1e})")
    print(f"{lr:<7} " + "  ".join(f"{c:>22}" for c in cells))
