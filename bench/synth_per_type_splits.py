#!/usr/bin/env python3
# Per-type SROCC/PLCC of the 5 reference-disjoint Kodak runs of RESULTS.md ("Synthetic distortions"),
# from their predictions_test.csv; run from the folder holding kodak24/ and runs/ (numpy, scipy).
import csv, json, numpy as np
from scipy.stats import spearmanr, pearsonr
lab = {r["image"]: r for r in csv.DictReader(open("kodak24/labels.csv"))}
runs = ["runs/kodak24-fused-e30"] + [f"runs/kodak24-fused-e30-exp{e}" for e in range(1, 5)]
per = {}; overall = []
for r in runs:
    P = list(csv.DictReader(open(r + "/predictions_test.csv")))
    a = [float(p["predicted_mos"]) for p in P]; b = [float(p["mos"]) for p in P]
    overall.append((spearmanr(a, b)[0], pearsonr(a, b)[0], sorted({lab[p['image']]['reference'].split('/')[1][:-4] for p in P})))
    g = {}
    for p in P:
        g.setdefault(lab[p["image"]]["distortion"], ([], []))
        g[lab[p["image"]]["distortion"]][0].append(float(p["predicted_mos"])); g[lab[p["image"]]["distortion"]][1].append(float(p["mos"]))
    for d, (x, y) in g.items():
        per.setdefault(d, []).append((spearmanr(x, y)[0], pearsonr(x, y)[0]))
for i, (s, p, refs) in enumerate(overall): print(f"| {i} | {', '.join(refs)} | {s:.4f} | {p:.4f} |")
o = np.array([(s, p) for s, p, _ in overall]); print(f"mean {o[:,0].mean():.4f} ± {o[:,0].std(ddof=1):.4f}  plcc {o[:,1].mean():.4f} ± {o[:,1].std(ddof=1):.4f}")
rows = sorted(per.items(), key=lambda kv: np.mean([v[0] for v in kv[1]]))
for d, v in rows:
    v = np.array(v); print(f"| {d} | {v[:,0].mean():.3f} ± {v[:,0].std(ddof=1):.3f} | {v[:,1].mean():.3f} | {v[:,0].min():.3f} | {v[:,0].max():.3f} |")
