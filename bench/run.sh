#!/usr/bin/env bash
# normiqa vs its peers, in the same run: train step, batch-1 predict, one CLIVE frozen-backbone
# epoch (decode + features + heads) against PyTorch; `predict` on 200 CLIVE files against naive
# PyTorch, tuned PyTorch (fp32 TorchScript frozen + optimised, bf16) and ONNX Runtime (fp32, int8)
# in alternating rounds (bench/predict_peers.py); how cost grows with image size, batch and
# precision, with a plot (bench/growth.py). Needs ./run setup-full (PyTorch, ONNX Runtime,
# matplotlib importable).
#   bench/run.sh [--quick]      → bench/last_run.{json,md}, bench/last_predict_peers.json,
#                                 bench/last_growth.json, bench/growth.png
# PY=/path/to/python overrides the interpreter (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=${1:-}
export LIBTORCH="$PWD/.venv/libtorch" LIBTORCH_CXX11_ABI=1 NORMIQA_EFFICIENTNET_LITE0="$PWD/.venv/efficientnet-lite0.pth"
cargo build --release --quiet --example bench
cargo build --release --quiet
RS=target/release/examples/bench
PY=${PY:-.venv/bin/python}
out=bench/last_run.json
echo "{" > $out
# Tuned PyTorch for the train step: the same jemalloc configuration as normiqa's (src/lib.rs),
# preloaded (Debian: libjemalloc2), when the library is installed.
JE=$(ldconfig -p 2>/dev/null | awk '/libjemalloc.so.2/ {print $NF; exit}')
for what in train predict predict-files epoch; do
  echo "[bench] $what: normiqa" >&2
  r=$($RS --what $what $QUICK)
  echo "[bench] $what: pytorch" >&2
  t=$($PY bench/bench_torch.py --what $what $QUICK --threads 2 2>/dev/null)
  j=null
  if [ "$what" = train ] && [ -n "$JE" ]; then
    echo "[bench] $what: pytorch + jemalloc" >&2
    j=$(LD_PRELOAD=$JE MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1 $PY bench/bench_torch.py --what $what $QUICK --threads 2 2>/dev/null)
  fi
  printf '"%s": {"normiqa": %s, "pytorch": %s, "pytorch_jemalloc": %s},\n' "$what" "$r" "$t" "$j" >> $out
done
printf '"machine": "%s", "date": "%s", "loadavg_at_end": "%s"}\n' "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(date -u +%FT%TZ)" "$(cut -d' ' -f1-3 /proc/loadavg)" >> $out
$PY - "$out" <<'PY' | tee bench/last_run.md
import json, sys
d = json.load(open(sys.argv[1]))
rows = []
def row(name, rs, pt, unit="s"):
    rows.append("| %s | %.3f %s | %.3f %s | %.2fx |" % (name, rs, unit, pt, unit, pt / rs))
tr = d["train"]; rs = tr["normiqa"]["train_step_s"]; pt = {x["arch"]: x["median_s"] for x in tr["pytorch"]["train_step"]}
row("train step, ResNet-18 LinearityIQA, batch 8, %d px" % tr["normiqa"]["size"], rs["resnet18"], pt["resnet18"])
row("train step, EfficientNet-Lite0 LinearityIQA, batch 8, %d px" % tr["normiqa"]["size"], rs["efficientnet-lite0"], pt["efficientnet_lite0"])
if tr.get("pytorch_jemalloc"):
    pj = {x["arch"]: x["median_s"] for x in tr["pytorch_jemalloc"]["train_step"]}
    row("train step, ResNet-18, vs PyTorch + jemalloc (tuned)", rs["resnet18"], pj["resnet18"])
    row("train step, EfficientNet-Lite0, vs PyTorch + jemalloc (tuned)", rs["efficientnet-lite0"], pj["efficientnet_lite0"])
ph = {x["arch"]: x["phases_median_s"] for x in tr["pytorch"]["train_step"]}
for arch, parch in (("resnet18", "resnet18"), ("efficientnet-lite0", "efficientnet_lite0")):
    for k in ("forward", "backward", "optimizer"):
        row("  %s: %s" % (arch, k), tr["normiqa"]["train_phases_s"][arch][k], ph[parch][k])
pr = d["predict"]; rs = pr["normiqa"]["predict_b1_s"]; pt = {x["arch"]: x["median_s"] for x in pr["pytorch"]["predict_b1"]}
row("predict batch 1, ResNet-18, 500 px", rs["resnet18"], pt["resnet18"])
row("predict batch 1, EfficientNet-Lite0, 500 px", rs["efficientnet-lite0"], pt["efficientnet_lite0"])
pf = d["predict-files"]; r = pf["normiqa"]["predict_files"]; p = pf["pytorch"]["predict_files"]
rows.append("| predict throughput, %d CLIVE files (decode + Lite0 model, load included for normiqa) | %.1f images/s | %.1f images/s | %.2fx |" % (r["images"], r["images_per_s"], p["images_per_s"], r["images_per_s"] / p["images_per_s"]))
ep = d["epoch"]; r = ep["normiqa"]["clive_epoch"]; p = ep["pytorch"]["clive_frozen_epoch"]
row("CLIVE epoch: decode %d images" % r["images"], r["decode_s"], p["decode_s"])
row("CLIVE epoch: pooled features (Lite0, eval, batch %d)" % r["eval_batch_size"], r["features_s"], p["features_s"])
row("CLIVE epoch: head training (87 steps)", r["heads_epoch_s"], p["head_epoch_s"])
row("CLIVE epoch: total (decode + features + heads + val)", r["total_s"], p["total_s"])
print("| what | normiqa | PyTorch %s | speed-up (PyTorch time / normiqa time) |" % ep["pytorch"]["torch"])
print("|---|---|---|---|")
print("\n".join(rows))
print("\nmachine: %s; %s; load average at the end %s; normiqa threads %s, PyTorch threads %s" % (d["machine"], d["date"], d["loadavg_at_end"], tr["normiqa"]["threads"], tr["pytorch"]["threads"]))
PY
echo "[bench] predict against its peers (alternating rounds)" >&2
$PY bench/predict_peers.py run $QUICK | tee -a bench/last_run.md
echo "[bench] cost growth" >&2
$PY bench/growth.py $QUICK > /dev/null
