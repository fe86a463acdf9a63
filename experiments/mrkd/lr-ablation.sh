#!/usr/bin/env bash
# Table 7: teacher rates 3e-2 ... 7e-1 at a fixed student rate (MRKD student and teacher, final
# epoch, mean ± std over the config's seeds), next to the baseline and URKD (run once).
# Usage: experiments/mrkd/lr-ablation.sh [CONFIG.toml] [OUT] [extra options, e.g. --seeds 1,2,3]
set -euo pipefail
cd "$(dirname "$0")/../.."
CFG=${1:-experiments/mrkd/clive.toml}; OUT=${2:-runs/mrkd/lr-ablation}; shift 2 || shift $# || true
NORMIQA=${NORMIQA:-./target/release/normiqa}
export NORMIQA_EFFICIENTNET_LITE0=${NORMIQA_EFFICIENTNET_LITE0:-.venv/efficientnet-lite0.pth}
RATES=${RATES:-"0.03 0.05 0.1 0.3 0.5 0.7"}
mkdir -p "$OUT"
"$NORMIQA" distill --config "$CFG" --variants baseline,urkd --out "$OUT/reference" "$@"
for lr in $RATES; do
  "$NORMIQA" distill --config "$CFG" --variants mrkd --teacher-lr "$lr" --out "$OUT/teacher-$lr" "$@" \
    || echo "teacher lr $lr failed (diverged?)" >&2
done
row() { jq -r --arg v "$2" --argjson k "$3" --arg name "$4" \
  '.summary[] | select(.variant==$v and .model==$k and .selection=="final") | "| \($name) | \(.lr) | \(.test_srcc.mean*10000|round/10000) ± \(.test_srcc.std*10000|round/10000) | \(.test_plcc.mean*10000|round/10000) ± \(.test_plcc.std*10000|round/10000) |"' "$1"; }
{
  echo "| model | η_max | final SRCC | final PLCC |"
  echo "|---|---|---|---|"
  row "$OUT/reference/results.json" baseline 1 "small-lr model alone (baseline)"
  row "$OUT/reference/results.json" urkd 1 "URKD"
  for lr in $RATES; do
    f="$OUT/teacher-$lr/results.json"
    [ -f "$f" ] || { echo "| MRKD student (teacher $lr) | – | diverged | |"; continue; }
    row "$f" mrkd 1 "MRKD student (teacher lr $lr)"
    row "$f" mrkd 0 "MRKD teacher"
  done
} | tee "$OUT/lr-ablation.md"
