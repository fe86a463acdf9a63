#!/usr/bin/env bash
# Loopback load test of `normiqa serve` beside `normiqa predict` on the same images (CPU).
#   bench/serve.sh [IMAGES] [REQUESTS] [CONCURRENCY] [MAX_BATCH]
# IMAGES: how many files of $IMAGES_DIR (default ../shared/data/clive/images, else the bundled
# sample) in name order; REQUESTS: POST /score requests in all (the images in turn, raw bytes);
# CONCURRENCY: requests in flight; MAX_BATCH: serve --max-batch (0 = automatic: 1 on CPU).
# SERVE_WORKERS=N: serve --workers N (default 0 = automatic).
# Prints predict's throughput, then the load generator's JSON (throughput, p50/p99 latency).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-64}; REQUESTS=${2:-256}; CONCURRENCY=${3:-8}; MAX_BATCH=${4:-0}
IMAGES_DIR=${IMAGES_DIR:-../shared/data/clive/images}
[ -d "$IMAGES_DIR" ] || IMAGES_DIR=assets/clive-sample/images
export LIBTORCH="$PWD/.venv/libtorch" LIBTORCH_CXX11_ABI=1 NORMIQA_EFFICIENTNET_LITE0="$PWD/.venv/efficientnet-lite0.pth"
cargo build --release --quiet --bin normiqa --example serve_load
mapfile -t FILES < <(find "$IMAGES_DIR" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.png' -o -iname '*.bmp' \) | sort | head -n "$N")
[ "${#FILES[@]}" -gt 0 ] || { echo "no images in $IMAGES_DIR" >&2; exit 1; }
TMP=$(mktemp -d)
SERVER=
cleanup() { [ -n "$SERVER" ] && kill -TERM "$SERVER" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

echo "[serve-bench] predict: ${#FILES[@]} files of $IMAGES_DIR, batch 1 (CPU default)" >&2
t0=$(date +%s.%N)
NO_COLOR=1 target/release/normiqa predict --device cpu "${FILES[@]}" -o "$TMP/predict.csv" 2> "$TMP/predict.log"
t1=$(date +%s.%N)
python3 -c "import sys; n=int(sys.argv[1]); w=float(sys.argv[3])-float(sys.argv[2]); print(f'predict: {n} images in {w:.2f} s wall (model loading included): {n/w:.1f} images/s')" "${#FILES[@]}" "$t0" "$t1"
grep -o 'scored.*' "$TMP/predict.log" | sed 's/^/predict (scoring loop only): /'

echo "[serve-bench] serve --max-batch $MAX_BATCH; $REQUESTS requests, $CONCURRENCY in flight" >&2
NO_COLOR=1 target/release/normiqa serve --bind 127.0.0.1:0 --device cpu --max-batch "$MAX_BATCH" --workers "${SERVE_WORKERS:-0}" \
  --queue 256 2> "$TMP/serve.log" &
SERVER=$!
URL=
for _ in $(seq 1 600); do
  URL=$(grep -o 'http://[0-9.:]*' "$TMP/serve.log" | head -n1 || true)
  [ -n "$URL" ] && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$TMP/serve.log" >&2; exit 1; }
  sleep 0.2
done
[ -n "$URL" ] || { echo "serve did not start" >&2; exit 1; }
target/release/examples/serve_load --url "$URL" --requests "$REQUESTS" --concurrency "$CONCURRENCY" \
  --max-seconds 600 "${FILES[@]}"
kill -TERM "$SERVER"; wait "$SERVER"; SERVER=
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average $(cut -d' ' -f1-3 /proc/loadavg)"
