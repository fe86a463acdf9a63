#!/usr/bin/env bash
# MRKD on CLIVE (RESULTS.md, "MRKD (issue 5)"). Usage: experiments/mrkd/clive.sh [OUT] [extra options]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-runs/mrkd/clive}; shift || true
export NORMIQA_EFFICIENTNET_LITE0=${NORMIQA_EFFICIENTNET_LITE0:-.venv/efficientnet-lite0.pth}
exec ${NORMIQA:-./target/release/normiqa} distill --config experiments/mrkd/clive.toml --out "$OUT" "$@"
