#!/usr/bin/env bash
# The main job. Until the trainer lands it checks every shipped reference
# vector with `plstm verify` and runs the 2D core benchmark at a small size.
set -euo pipefail
build=${1:-build}
ref=${PLSTM_REFERENCE_DIR:-../shared/reference}
for f in "$ref"/core1d_*.safetensors "$ref"/core2d_*.safetensors; do
  "$build/plstm" verify "$f"
done
