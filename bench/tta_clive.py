#!/usr/bin/env python3
"""Test-time views (issue 14, part 4): `normiqa test --tta ...` on trained CLIVE runs, paired over
their splits.

    python3 bench/tta_clive.py runs/ttest-clive-lite012 --out runs/tta-clive
    python3 bench/tta_clive.py models/clive-efficientnet-lite0 --out runs/tta-shipped

Each argument is a run folder (it holds run.json) or a folder of runs (its subfolders matching
--glob, by default the frozen-Lite0 runs of an `experiments/...` sweep: `backbone=lite0_exp_id=*`).
Every run is tested on its own split's test set (`normiqa test --model RUN --json`) once per view
choice; the JSON of each test is kept in --out (a finished one is not run again), with the
scoring time that `test` logs. Then per view choice: test SROCC and PLCC mean ± sd over the runs,
the paired t-test against `none` (scipy.stats.ttest_rel, two-sided), and the scoring time per
image (its mean, and its ratio to `none` on the same run, which is steadier on a shared machine).
Needs scipy (e.g. a venv with numpy/scipy); `target/release/normiqa` built.
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from scipy import stats

# (label, normiqa options)
CHOICES = {
    "none": [],
    "flip": ["--tta", "flip"],
    "five-crop": ["--tta", "five-crop"],
    "ten-crop": ["--tta", "ten-crop"],
    "five-crop@0.5": ["--tta", "five-crop", "--tta-crop-fraction", "0.5"],
    "five-crop@0.875": ["--tta", "five-crop", "--tta-crop-fraction", "0.875"],
}
TIMING = re.compile(r"scored (\d+) images in ([0-9.]+) s")


def runs_of(paths, glob):
    runs = []
    for p in map(Path, paths):
        if (p / "run.json").exists():
            runs.append(p)
        else:
            found = sorted((d for d in p.glob(glob) if (d / "run.json").exists()), key=natural)
            if not found:
                sys.exit(f"{p}: neither a run folder (run.json) nor a folder of runs matching {glob}")
            runs.extend(found)
    return runs


def natural(p):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def test(normiqa, run, choice, out, extra, summary_only=False):
    """The test JSON of `run` under `choice`, with `seconds` and `n_timed` of the scoring (None
    when `summary_only` and not yet tested)."""
    dest = out / f"{run.name}__{choice}.json"
    if dest.exists():
        return json.loads(dest.read_text())
    if summary_only:
        return None
    cmd = [normiqa, "test", "--model", str(run), "--json", *CHOICES[choice], *extra]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    r = json.loads(p.stdout)
    m = TIMING.search(p.stderr)
    if not m:
        sys.exit(f"{' '.join(cmd)}: no scoring time in its log:\n{p.stderr}")
    r["n_timed"], r["seconds"] = int(m.group(1)), float(m.group(2))
    r["wall_seconds"] = time.time() - t0
    tmp = dest.with_suffix(".partial")
    tmp.write_text(json.dumps(r, indent=1))
    tmp.replace(dest)
    return r


def fused(r, key):
    return r["metrics"]["fused"][key] if "fused" in r["metrics"] else list(r["metrics"].values())[-1][key]


def mean_sd(v):
    return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else float("nan"))


def summary(results, runs, choices):
    base = [results[(r.name, "none")] for r in runs]
    lines = [
        f"{len(runs)} run(s): " + ", ".join(r.name for r in runs),
        "",
        "| views | test SROCC (mean ± sd) | ΔSROCC vs none | p (paired t) | test PLCC (mean ± sd) | ΔPLCC | p (paired t) | ms per image | time ÷ none |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in choices:
        rs = [results[(r.name, c)] for r in runs]
        row = [c]
        for key in ("srocc", "plcc"):
            v = [fused(r, key) for r in rs]
            b = [fused(r, key) for r in base]
            m, sd = mean_sd(v)
            row.append(f"{m:.4f} ± {sd:.4f}" if len(v) > 1 else f"{m:.4f}")
            d = statistics.mean(x - y for x, y in zip(v, b))
            if c == "none":
                row += ["", ""]
            elif len(v) > 1:
                row += [f"{d:+.4f}", f"{stats.ttest_rel(v, b).pvalue:.3g}"]
            else:
                row += [f"{d:+.4f}", ""]
        ms = [1e3 * r["seconds"] / r["n_timed"] for r in rs]
        ratio = [r["seconds"] / b["seconds"] for r, b in zip(rs, base)]
        row += [f"{statistics.mean(ms):.0f}", f"{statistics.mean(ratio):.2f}x"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "per run (fused head, test SROCC):", ""]
    lines.append("| run | " + " | ".join(choices) + " |")
    lines.append("|---" * (len(choices) + 1) + "|")
    for r in runs:
        lines.append(f"| {r.name} | " + " | ".join(f"{fused(results[(r.name, c)], 'srocc'):.4f}" for c in choices) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run folders or folders of runs")
    ap.add_argument("--glob", default="backbone=lite0_exp_id=*", help="run subfolders of a folder of runs")
    ap.add_argument("--choices", default="none,flip,five-crop,ten-crop",
                    help="comma-separated, from: " + ", ".join(CHOICES))
    ap.add_argument("--out", required=True, help="folder for each test's JSON and summary.md")
    ap.add_argument("--normiqa", default="target/release/normiqa")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--summary-only", action="store_true",
                    help="test nothing: summarise the runs whose tests are all in --out")
    args = ap.parse_args()
    choices = args.choices.split(",")
    bad = [c for c in choices if c not in CHOICES]
    if bad:
        sys.exit(f"--choices: unknown {', '.join(bad)} (known: {', '.join(CHOICES)})")
    if "none" not in choices:
        choices.insert(0, "none")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = runs_of(args.runs, args.glob)
    extra = ["--device", "cpu", "--precision", args.precision]
    results = {}
    done = []
    for run in runs:  # views interleaved on each run: a slower phase of the machine hits them all
        for c in choices:
            results[(run.name, c)] = r = test(args.normiqa, run, c, out, extra, args.summary_only)
            if r is None:
                break
            print(f"{run.name} {c}: SROCC {fused(r, 'srocc'):.4f} PLCC {fused(r, 'plcc'):.4f} "
                  f"{1e3 * r['seconds'] / r['n_timed']:.0f} ms/image", file=sys.stderr, flush=True)
        else:
            done.append(run)
    if not done:
        sys.exit(f"no run has all of {', '.join(choices)} in {out}")
    text = summary(results, done, choices)
    (out / "summary.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
