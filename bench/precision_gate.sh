#!/usr/bin/env bash
# The accuracy gate of --precision bf16 (issue 13) or int8 (issue 21): the shipped model's CLIVE
# exp-0 test metrics in fp32 and the other precision, then both precisions' scores of all 1,162
# CLIVE photos compared image by image.
#   bench/precision_gate.sh [MODEL_DIR] [bf16|int8]   (default models/clive-efficientnet-lite0 bf16)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/clive-efficientnet-lite0}
P=${2:-bf16}
N=target/release/normiqa
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for p in fp32 "$P"; do
  $N test --model "$MODEL" --precision $p 2>/dev/null
  $N test --model "$MODEL" --set all --precision $p -o "$tmp/all-$p.csv" 2>/dev/null | grep -E "all set|fused "
done
python3 - "$tmp/all-fp32.csv" "$tmp/all-$P.csv" "$P" <<'PY'
import csv, sys
a, b = ({r["image"]: float(r["predicted_mos"]) for r in csv.DictReader(open(f))} for f in sys.argv[1:3])
k = sorted(a)
d = sorted(abs(a[i] - b[i]) for i in k)
def ranks(v):
    o = sorted(range(len(v)), key=v.__getitem__); r = [0] * len(v)
    for n, i in enumerate(o): r[i] = n
    return r
ra, rb = ranks([a[i] for i in k]), ranks([b[i] for i in k])
n = len(k); rho = 1 - 6 * sum((x - y) ** 2 for x, y in zip(ra, rb)) / (n * (n * n - 1))
p = sys.argv[3]
print("%s vs fp32 on %d CLIVE photos (MOS points): mean |diff| %.3f, 99th percentile %.3f, max %.3f; Spearman(fp32, %s) %.5f"
      % (p, n, sum(d) / n, d[int(0.99 * n)], d[-1], p, rho))
PY
