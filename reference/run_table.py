#!/usr/bin/env python3
"""Markdown table of normiqa run directories (run.json) or PyTorch reference result JSONs.

  python reference/run_table.py runs/A runs/B reference/results/x.json ...
"""
import json
import os
import sys

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
