#!/usr/bin/env bash
# The short runs behind RESULTS.md's MRKD Tables 6 and 7 (one after another, niced):
#   Table 7: normiqa run experiments/mrkd-table7-clive-short.toml, seed 1 of every variant
#            first, then seed 2, then seed 3 (--only), so that a cut-short run has every rate
#   the synthetic Kodak set: normiqa synth --references ../shared/data/kodak24 --out runs/synth/kodak24
#   Table 6: normiqa distill on experiments/mrkd/table6-*-short.toml (both directions, 2 seeds)
# Usage: experiments/mrkd/tables-6-7-short.sh [seeds of Table 7, default "1 2 3"]   (writes under runs/)
set -uo pipefail
cd "$(dirname "$0")/../.."
N=${NORMIQA:-./target/release/normiqa}
export NORMIQA_EFFICIENTNET_LITE0=${NORMIQA_EFFICIENTNET_LITE0:-.venv/efficientnet-lite0.pth}
t() { local t0=$SECONDS; echo "== $*"; nice -n 10 "$@"; echo "== rc $? in $((SECONDS - t0)) s: $*"; }
# combination i of the file is variant i / 3, seed i % 3 + 1 (9 variants x 3 seeds)
for s in ${1:-1 2 3}; do
  t "$N" run experiments/mrkd-table7-clive-short.toml --only $(seq -s, $((s - 1)) 3 26)
done
[ -f runs/synth/kodak24/labels.csv ] || t "$N" synth --references ../shared/data/kodak24 --out runs/synth/kodak24
t "$N" distill --config experiments/mrkd/table6-kodak-to-clive-short.toml --out runs/mrkd/table6-kodak-to-clive
t "$N" distill --config experiments/mrkd/table6-clive-to-kodak-short.toml --out runs/mrkd/table6-clive-to-kodak
