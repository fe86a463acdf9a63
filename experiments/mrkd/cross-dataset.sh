#!/usr/bin/env bash
# Table 6: train on the synthetic Kodak dataset, test on CLIVE (cross columns of results.md).
# Usage: experiments/mrkd/cross-dataset.sh [OUT] [extra options]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-runs/mrkd/cross-kodak-to-clive}; shift || true
exec ${NORMIQA:-./target/release/normiqa} distill --config experiments/mrkd/cross-dataset.toml --out "$OUT" "$@"
