#!/usr/bin/env python3
"""Ensembles over paired splits: the mean of several settings' test predictions (each run's
`predictions_test.csv`, column `predicted_mos`: k·ŷ+b, the MOS scale) scored per split, as an
ensemble folder (ensemble.toml, src/infer/ensemble.rs) of those runs would score it.

  python3 bench/ensemble_splits.py runs/ttest-clive-lite012 backbone=lite0 backbone=lite1 backbone=lite2

Settings are run folder names without `<pair>=K` (bench/also_table.py's rule). Every subset of
two or more settings is scored; paired t-tests (scipy.stats.ttest_rel, two-sided) compare each
row's test SROCC / PLCC with the first setting's over the splits all of them finished.
"""
import argparse
import csv
import itertools
import os
import sys

import numpy as np
from scipy.stats import pearsonr, spearmanr, ttest_rel

sys.path.insert(0, os.path.dirname(__file__))
from also_table import split_name  # noqa: E402


def predictions(run):
    with open(os.path.join(run, "predictions_test.csv")) as f:
        return {r["image"]: (float(r["mos"]), float(r["predicted_mos"])) for r in csv.DictReader(f)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("settings", nargs="+")
    ap.add_argument("--pair", default="exp_id")
    a = ap.parse_args()
    runs = {}
    for name in sorted(os.listdir(a.dir)):
        setting, value = split_name(name, a.pair)
        if setting in a.settings and value is not None and os.path.exists(os.path.join(a.dir, name, "predictions_test.csv")):
            runs.setdefault(value, {})[setting] = predictions(os.path.join(a.dir, name))
    splits = sorted(k for k, by in runs.items() if all(s in by for s in a.settings))
    if len(splits) < 2:
        sys.exit(f"{a.dir}: fewer than two values of {a.pair} have all of {a.settings}")
    rows = [(s,) for s in a.settings]
    rows += [c for n in range(2, len(a.settings) + 1) for c in itertools.combinations(a.settings, n)]
    score = {}
    for combo in rows:
        sr, pl = [], []
        for k in splits:
            by = runs[k]
            images = sorted(by[combo[0]])
            for s in combo:
                if sorted(by[s]) != images:
                    sys.exit(f"{a.pair}={k}: {s} and {combo[0]} scored other test images")
            mos = np.array([by[combo[0]][i][0] for i in images])
            mean = np.mean([[by[s][i][1] for i in images] for s in combo], axis=0)
            sr.append(spearmanr(mos, mean)[0])
            pl.append(pearsonr(mos, mean)[0])
        score[combo] = (np.array(sr), np.array(pl))
    base = score[rows[0]]
    print(f"{len(splits)} values of {a.pair} ({a.pair} = {', '.join(map(str, splits))}); Δ and p against {a.settings[0]}")
    print()
    print("| members | test SROCC | test PLCC | Δ SROCC | p (SROCC) | Δ PLCC | p (PLCC) | higher SROCC on |")
    print("|---|---|---|---|---|---|---|---|")
    for combo in rows:
        sr, pl = score[combo]
        cells = [" + ".join(combo), f"{sr.mean():.4f} ± {sr.std(ddof=1):.4f}", f"{pl.mean():.4f} ± {pl.std(ddof=1):.4f}"]
        if combo == rows[0]:
            cells += ["", "", "", "", ""]
        else:
            cells += [f"{np.mean(sr - base[0]):+.4f}", f"{ttest_rel(sr, base[0]).pvalue:.2g}",
                      f"{np.mean(pl - base[1]):+.4f}", f"{ttest_rel(pl, base[1]).pvalue:.2g}",
                      f"{int(np.sum(sr > base[0]))} of {len(splits)}"]
        print("| " + " | ".join(cells) + " |")
    print()
    print("Per split, test SROCC:")
    print()
    print("| " + a.pair + " | " + " | ".join(" + ".join(c) for c in rows) + " |")
    print("|---" * (len(rows) + 1) + "|")
    for j, k in enumerate(splits):
        print(f"| {k} | " + " | ".join(f"{score[c][0][j]:.4f}" for c in rows) + " |")


if __name__ == "__main__":
    main()
