#!/usr/bin/env bash
# Score every photo under $PHOTOS with a Slurm job array of 8 tasks (normiqa predict --shard
# auto: task SLURM_ARRAY_TASK_ID of the array is one shard of SLURM_ARRAY_TASK_COUNT). Each task
# writes $OUT/scores-<task>.csv; its first line records the model, the options and the shard.
#   sbatch --export=ALL,PHOTOS=/shared/photos,OUT=/shared/scores docs/cluster/slurm-array.sh
#   normiqa merge /shared/scores -o all.csv     # when every task is done (it checks they are)
#
# Variables (sbatch --export=ALL,NAME=value,...):
#   PHOTOS     the photos: a folder (walked recursively), or a file listing paths (required)
#   OUT        the folder of the tasks' score files, on storage every node reaches (required)
#   NORMIQA    the normiqa binary (default: normiqa on PATH, e.g. ~/.local/bin after
#              `./run install`)
#   MODEL      the model folder: a run folder or an ensemble (default: normiqa's shipped model)
#   PRECISION  auto (default: bf16 on CPUs with AVX-512 BF16, else fp32), fp32 or bf16; on a
#              cluster whose nodes differ, give fp32 or bf16: shards of two precisions are
#              refused (by the later tasks and by merge)
#   SHARDS     the job's number of shards: give it when re-submitting some of its tasks (below)
# CPUs: each task asks for --cpus-per-task (2 below; `sbatch --cpus-per-task=8 ...` to change)
# and predict runs exactly that many threads. Memory: scoring 500x500 photos with the shipped
# ensemble peaked at 475 MB (2 threads, bf16); photos of many megapixels need gigabytes at native
# size (predict's --max-side bounds that), hence --mem=8G.
# A task that asks for more than a node has waits: `squeue --me -o '%i %T %r'` gives the reason.
#
# Re-runs: a task requeued after a node failure or preemption (--requeue) resumes its own file.
# A task that failed or was cancelled (scancel) is not requeued: re-submit it alone with the
# job's number of shards, and it resumes its scores-<task>.csv.partial:
#   sbatch --array=2 --export=ALL,PHOTOS=/shared/photos,OUT=/shared/scores,SHARDS=8 docs/cluster/slurm-array.sh
# (Without SHARDS a task submitted alone is an array of one task, shard 0/1: it is refused,
# naming the files of the job's other shards.) With SHARDS, each task's id is its shard: keep
# the array 0-based. The task logs (normiqa-score-<job>_<task>.log) are appended to on requeue.
#SBATCH --job-name=normiqa-score
#SBATCH --array=0-7
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=12:00:00
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=normiqa-score-%A_%a.log
set -euo pipefail
: "${PHOTOS:?set PHOTOS to the folder of photos}" "${OUT:?set OUT to the folder for the scores}"
NORMIQA=${NORMIQA:-normiqa}
if ! command -v "$NORMIQA" >/dev/null 2>&1; then
  echo "normiqa-score: the binary '$NORMIQA' was not found: set NORMIQA to its path" >&2
  exit 2
fi
mkdir -p "$OUT"
export NO_COLOR=1
if [ -n "${SHARDS:-}" ]; then
  export NORMIQA_SHARDS="$SHARDS"
fi
if [ -d "$PHOTOS" ]; then inputs=("$PHOTOS"); else inputs=(--files-from "$PHOTOS"); fi
args=(predict "${inputs[@]}" --shard auto --resume --format csv
  --precision "${PRECISION:-auto}" --threads "${SLURM_CPUS_PER_TASK:-1}"
  -o "$OUT/scores-$SLURM_ARRAY_TASK_ID.csv")
if [ -n "${MODEL:-}" ]; then
  args+=(--model "$MODEL")
fi
echo "normiqa-score: task $SLURM_ARRAY_TASK_ID of job ${SLURM_ARRAY_JOB_ID:-?} on $(hostname)," \
  "start $(( ${SLURM_RESTART_COUNT:-0} + 1 )): $NORMIQA ${args[*]}" >&2
exec "$NORMIQA" "${args[@]}"
