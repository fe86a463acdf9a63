#!/usr/bin/env bash
# Score every photo under $PHOTOS with a Slurm job array of 8 tasks (normiqa predict --shard auto:
# the shard is SLURM_ARRAY_TASK_ID counted from SLURM_ARRAY_TASK_MIN in steps of
# SLURM_ARRAY_TASK_STEP, out of SLURM_ARRAY_TASK_COUNT). Each task writes $OUT/scores-<task>.csv;
# a task that is preempted and requeued continues its file (--resume) without scoring anything
# twice.
#   sbatch --export=ALL,PHOTOS=/shared/photos,OUT=/shared/scores docs/cluster/slurm-array.sh
# Then:  awk 'FNR > 1 || NR == 1' /shared/scores/scores-*.csv > all.csv
#SBATCH --job-name=normiqa-score
#SBATCH --array=0-7
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=12:00:00
#SBATCH --requeue
#SBATCH --output=normiqa-score-%A_%a.log
set -euo pipefail
: "${PHOTOS:?set PHOTOS to the folder of photos}" "${OUT:?set OUT to the folder for the scores}"
mkdir -p "$OUT"
export NO_COLOR=1
exec normiqa predict "$PHOTOS" --shard auto --resume --format csv \
  -o "$OUT/scores-$SLURM_ARRAY_TASK_ID.csv"
