#!/usr/bin/env bash
# Sharded scoring on a share of the machine: 4 concurrent `predict --shard I/4` processes, each
# given one CPU, against one `predict` process on all the CPUs, on the same photos (issue 21:
# "threads follow the CPUs a process is given"). Three ways of giving a task one CPU:
#   slurm     SLURM_CPUS_PER_TASK=1 and no affinity mask (a Slurm without task affinity)
#   taskset   an affinity mask of one CPU (task I on CPU I mod the CPUs), as Slurm's task/affinity,
#             cgroup cpusets or Kubernetes' static CPU manager do
#   before    SLURM_CPUS_PER_TASK=1 but --threads = every CPU: what normiqa did before the rule
# Prints images/s of each layout and its ratio to one process. Run from the repository root:
#   bench/shards.sh [FILES=200] [MODEL=models/clive-efficientnet-lite0] [PRECISION=fp32]
set -euo pipefail
N=${1:-200}
MODEL=${2:-models/clive-efficientnet-lite0}
PRECISION=${3:-fp32}
EXE=${NORMIQA:-target/release/normiqa}
DATA=${DATA:-../shared/data/clive/images}
CPUS=$(nproc)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/photos"
ls "$DATA" | sort | head -n "$N" | while read -r f; do ln -s "$(realpath "$DATA/$f")" "$tmp/photos/$f"; done

secs() { python3 -c 'import sys,time; print(f"{time.time():.3f}")'; }

one() { # one process, every CPU
  "$EXE" predict "$tmp/photos" --model "$MODEL" --precision "$PRECISION" -o "$tmp/one.csv" 2>/dev/null
}

four() { # $1: slurm | taskset | before
  local pids=() i
  for i in 0 1 2 3; do
    rm -f "$tmp/s$i.csv"
    case "$1" in
      slurm) SLURM_CPUS_PER_TASK=1 "$EXE" predict "$tmp/photos" --shard "$i/4" --model "$MODEL" \
               --precision "$PRECISION" -o "$tmp/s$i.csv" 2>"$tmp/log$i" & ;;
      taskset) taskset -c $((i % CPUS)) "$EXE" predict "$tmp/photos" --shard "$i/4" --model "$MODEL" \
               --precision "$PRECISION" -o "$tmp/s$i.csv" 2>"$tmp/log$i" & ;;
      before) SLURM_CPUS_PER_TASK=1 "$EXE" predict "$tmp/photos" --shard "$i/4" --threads "$CPUS" \
               --model "$MODEL" --precision "$PRECISION" -o "$tmp/s$i.csv" 2>"$tmp/log$i" & ;;
    esac
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  grep -h "thread(s)" "$tmp"/log0 | sed 's/^ *INFO //' >&2
}

rate() { # $1: seconds → images/s
  python3 -c "print(f'{$N / $1:.1f}')"
}

echo "CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $CPUS CPUs; $N photos, $MODEL, $PRECISION"
t0=$(secs); one; t1=$(secs)
base=$(python3 -c "print($t1 - $t0)")
echo "| layout | seconds | images/s | / one process |"
echo "|---|---|---|---|"
echo "| one process, $CPUS CPUs | $(printf %.1f "$base") | $(rate "$base") | 1.00x |"
for how in slurm taskset before; do
  t0=$(secs); four "$how"; t1=$(secs)
  s=$(python3 -c "print($t1 - $t0)")
  echo "| 4 shards, $how | $(printf %.1f "$s") | $(rate "$s") | $(python3 -c "print(f'{$base / $s:.2f}x')") |"
done
