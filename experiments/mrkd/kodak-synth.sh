#!/usr/bin/env bash
# MRKD per distortion type on the synthetic Kodak dataset. Usage: experiments/mrkd/kodak-synth.sh [OUT] [extra options]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-runs/mrkd/kodak-synth}; shift || true
exec ${NORMIQA:-./target/release/normiqa} distill --config experiments/mrkd/kodak-synth.toml --out "$OUT" "$@"
