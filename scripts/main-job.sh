#!/usr/bin/env bash
# The main job: trains the CPU-sized APE model (preset ape-quick: pLSTM at 96 px
# with a conv stem onto the paper's 12x12 token grid and an auxiliary geometry
# loss; ~15 min on 2 cores) and the ViT baseline of the same size and recipe
# (ape-quick-vit), then prints their test accuracy at the training resolution
# (1x) and at double resolution (2x: the extrapolation test).
#
#   scripts/main-job.sh [BUILD_DIR]
#   PLSTM_RUNS_DIR   where the runs go (default runs/)
#   PLSTM_TRAIN_ARGS extra key=value overrides for both runs (e.g. "steps=200")
#
# A finished run (results.json present) is not trained again; an interrupted
# one is resumed from its last checkpoint.
set -uo pipefail
build=${1:-build}
runs=${PLSTM_RUNS_DIR:-runs}
plstm="$build/plstm"
presets=(ape-quick ape-quick-vit)
status=0

for preset in "${presets[@]}"; do
  out="$runs/$preset"
  if [ -f "$out/results.json" ]; then
    echo "$preset: already finished in $out"
    continue
  fi
  resume=()
  [ -e "$out/latest.safetensors" ] && resume=(--resume)
  # shellcheck disable=SC2086
  if ! "$plstm" train --preset "$preset" --out "$out" "${resume[@]}" ${PLSTM_TRAIN_ARGS:-}; then
    echo "$preset: training failed" >&2
    status=1
  fi
done

# One number from the flat results.json the trainer writes.
get() { sed -n "s/^ *\"$2\": *\([-0-9.eE+]*\).*/\1/p" "$1" 2>/dev/null; }
fmt() { if [ -n "$1" ]; then printf '%.4f' "$1"; else printf -- '-'; fi; }

echo
echo "APE (Arrow Pointing Extrapolation), test accuracy; trained at 1x only"
printf '%-8s %-15s %7s %16s %16s\n' model preset steps "test 1x" "test_ext 2x"
for preset in "${presets[@]}"; do
  r="$runs/$preset/results.json"
  case $preset in *vit*) model=ViT ;; *) model=pLSTM ;; esac
  res1=$(get "$r" resolution); res2=$(get "$r" ext_resolution)
  printf '%-8s %-15s %7s %9s @%3spx %9s @%3spx\n' "$model" "$preset" "$(get "$r" step || true)" \
    "$(fmt "$(get "$r" test_acc)")" "${res1:--}" "$(fmt "$(get "$r" test_ext_acc)")" "${res2:--}"
done
echo "(paper, full size at 192 -> 384 px: pLSTM 0.972 / 0.778, ViT 0.915 / 0.707)"
exit $status
