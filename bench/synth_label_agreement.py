#!/usr/bin/env python3
# Usage: python3 bench/synth_label_agreement.py OUT/fr_scores.csv   (numpy, scipy; see RESULTS.md)
# Extra statistics of fr_scores.csv (written by `normiqa synth --fr-report`): per-type agreement of
# each higher-is-better label with -level, pooled over references and within each reference.
import csv, sys, numpy as np
from scipy.stats import spearmanr
rows = list(csv.DictReader(open(sys.argv[1])))
def lab(r):
    p, s, m, g = (float(r[k]) for k in ("psnr", "ssim", "ms_ssim", "gmsd"))
    return {"psnr": p, "ssim": s, "ms-ssim": m, "1-gmsd": 1 - g, "fused": 0.5 * (s + 1 - g)}
names = ["psnr", "ssim", "ms-ssim", "1-gmsd", "fused"]
types = sorted({r["distortion"] for r in rows}, key=lambda t: [r["distortion"] for r in rows].index(t))
pooled = {n: [] for n in names}; within = {n: [] for n in names}
for t in types:
    sel = [r for r in rows if r["distortion"] == t]
    lv = [-int(r["level"]) for r in sel]
    for n in names:
        pooled[n].append(spearmanr([lab(r)[n] for r in sel], lv)[0])
        refs = sorted({r["reference"] for r in sel})
        w = []
        for ref in refs:
            s2 = [r for r in sel if r["reference"] == ref]
            x = [lab(r)[n] for r in s2]
            w.append(spearmanr(x, [-int(r["level"]) for r in s2])[0] if np.std(x) > 0 else np.nan)
        within[n].append(np.nanmean(w))
print("| statistic | " + " | ".join(names) + " |"); print("|---" * (len(names) + 1) + "|")
for title, d in [("pooled SROCC, mean of 25 types", pooled), ("within-reference SROCC, mean of 25 types", within)]:
    print(f"| {title} | " + " | ".join(f"{np.mean(d[n]):.4f}" for n in names) + " |")
print("| pooled, median of types | " + " | ".join(f"{np.median(pooled[n]):.4f}" for n in names) + " |")
print("| pooled, types >= 0.90 | " + " | ".join(str(sum(v >= 0.9 for v in pooled[n])) for n in names) + " |")
excl = [i for i, t in enumerate(types) if t not in ("mean_shift", "contrast_change")]
print("| pooled, mean without mean_shift/contrast_change | " + " | ".join(f"{np.mean([pooled[n][i] for i in excl]):.4f}" for n in names) + " |")
print("| pooled, min without mean_shift/contrast_change | " + " | ".join(f"{np.min([pooled[n][i] for i in excl]):.4f}" for n in names) + " |")
print("| within-reference, mean without those two | " + " | ".join(f"{np.mean([within[n][i] for i in excl]):.4f}" for n in names) + " |")
