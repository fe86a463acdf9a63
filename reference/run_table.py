#!/usr/bin/env python3
"""Markdown table of normiqa run directories (run.json) or PyTorch reference result JSONs.

  python reference/run_table.py runs/A runs/B reference/results/x.json ...
  python reference/run_table.py --val-curve runs/A reference/results/x.json   # val SROCC/PLCC per epoch
"""
import json
import os
import sys

def val_curve(p):
    """[(val SROCC, val PLCC)] of the fused head per epoch."""
    if os.path.isdir(p):
        out = []
        for line in open(os.path.join(p, "log.jsonl")):
            e = json.loads(line)
            if e.get("event") == "epoch" and e.get("val"):
                out.append((e["val"][2]["srocc"], e["val"][2]["plcc"]))
        return out
    return [(e["val"]["fused"]["srocc"], e["val"]["fused"]["plcc"]) for e in json.load(open(p))["epochs"]]


if sys.argv[1] == "--val-curve":
    runs = sys.argv[2:]
    curves = [val_curve(p) for p in runs]
    print("| epoch | " + " | ".join("`%s` val SROCC / PLCC" % p for p in runs) + " |")
    print("|---|" + "---|" * len(runs))
    for i in range(max(len(c) for c in curves)):
        print("| %d | " % (i + 1) + " | ".join("%.4f / %.4f" % c[i] if i < len(c) else "" for c in curves) + " |")
    sys.exit(0)

print("| run | implementation | epochs | best epoch | test SROCC | PLCC | KROCC | RMSE | train s/epoch |")
print("|---|---|---|---|---|---|---|---|---|")
for p in sys.argv[1:]:
    if os.path.isdir(p):
        d = json.load(open(os.path.join(p, "run.json")))
        t = d["test"][2]
        c = d["config"]
        print("| `%s` | normiqa | %d | %d | %.4f | %.4f | %.4f | %.3f | %.1f |" % (p, c["epochs"], d["best_epoch"], t["srocc"], t["plcc"], t["krocc"], t["rmse"], d["timings"]["seconds_per_epoch"]))
    else:
        d = json.load(open(p))
        t = d["test"]["fused"]
        n = len(d["epochs"])
        print("| `%s` | PyTorch %s | %d | %d | %.4f | %.4f | %.4f | %.3f | %.1f |" % (p, d.get("torch", ""), n, d["best_epoch"], t["srocc"], t["plcc"], t["krocc"], t["rmse"], sum(e["seconds"] for e in d["epochs"]) / max(n, 1)))
