#!/usr/bin/env python3
"""Multi-dataset runs of an experiment: the main dataset's test metrics and each `also`
dataset's held-out test SROCC (run.json `also`), mean ± sd per setting over the paired key.

  python3 bench/also_table.py runs/multi-dataset-clive-synth [--pair exp_id]
  python3 bench/also_table.py runs/multi-dataset-clive-synth --only 0   # one split, run by run

Settings are the run folder names without `<pair>=K` (wherever it stands in the name).
Paired t-tests (scipy.stats.ttest_rel, two-sided) compare each setting's main test SROCC with the first setting's (sorted by name,
or the one given with --baseline).
"""
import argparse
import json
import os
import re

import numpy as np
from scipy.stats import ttest_rel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--pair", default="exp_id")
    ap.add_argument("--baseline", default=None)
    ap.add_argument("--only", type=int, default=None, help="one value of the paired key: a row per run")
    a = ap.parse_args()
    if a.only is not None:
        return one_split(a)
    runs = {}
    for name in sorted(os.listdir(a.dir)):
        f = os.path.join(a.dir, name, "run.json")
        setting, value = split_name(name, a.pair)
        if value is None or not os.path.exists(f):
            continue
        r = json.load(open(f))
        also = [x["test"][-1]["srocc"] if x.get("test") else float("nan") for x in r.get("also", [])]
        runs.setdefault(setting, {})[value] = (r["test"][-1]["srocc"], r["test"][-1]["plcc"], also)
    base = a.baseline or sorted(runs)[0]
    print(f"| setting | runs | test SROCC | test PLCC | held-out SROCC of the other dataset | Δ SROCC vs {base} (paired) | p |")
    print("|---|---|---|---|---|---|---|")
    for s, by in runs.items():
        keys = sorted(by)
        sr = np.array([by[k][0] for k in keys])
        pl = np.array([by[k][1] for k in keys])
        al = np.array([by[k][2][0] if by[k][2] else np.nan for k in keys])
        also = "—" if np.all(np.isnan(al)) else f"{np.nanmean(al):.4f} ± {np.nanstd(al, ddof=1) if len(al) > 1 else 0:.4f}"
        common = [k for k in keys if k in runs[base]]
        if s != base and len(common) > 1:
            x = np.array([by[k][0] for k in common])
            y = np.array([runs[base][k][0] for k in common])
            d, p = f"{np.mean(x - y):+.4f} ({len(common)} pairs)", f"{ttest_rel(x, y).pvalue:.4f}"
        else:
            d, p = "", ""
        sd = lambda v: np.std(v, ddof=1) if len(v) > 1 else 0.0
        print(f"| {s} | {len(keys)} | {sr.mean():.4f} ± {sd(sr):.4f} | {pl.mean():.4f} ± {sd(pl):.4f} | {also} | {d} | {p} |")


def split_name(name, pair):
    """(the run name without `<pair>=K`, K), wherever the key stands in the name; K is None when
    the name has no such key."""
    m = re.search(rf"(?:^|_){pair}=(\d+)(?=_|$)", name)
    if not m:
        return name, None
    rest = (name[: m.start()] + "_" + name[m.end():]).strip("_")
    return rest, int(m.group(1))


def one_split(a):
    print("| setting | best epoch | val SROCC | test SROCC | test PLCC | held-out SROCC of the other dataset |")
    print("|---|---|---|---|---|---|")
    for name in sorted(os.listdir(a.dir)):
        f = os.path.join(a.dir, name, "run.json")
        setting, value = split_name(name, a.pair)
        if value != a.only or not os.path.exists(f):
            continue
        r = json.load(open(f))
        also = r.get("also", [])
        held = f"{also[0]['test'][-1]['srocc']:.4f}" if also and also[0].get("test") else "—"
        print(f"| {setting} | {r['best_epoch']} | {r['val'][-1]['srocc']:.4f} | {r['test'][-1]['srocc']:.4f} | {r['test'][-1]['plcc']:.4f} | {held} |")


if __name__ == "__main__":
    main()
