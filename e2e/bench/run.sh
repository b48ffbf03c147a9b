#!/usr/bin/env bash
# Browser inference benchmark: the annotate page on burn's flex CPU backend (wasm, one thread)
# and on WebGPU, beside the native CLI (release; one thread and all cores), for the same
# GeneCompass_Small-shaped classifier and the same real cells. Prints a markdown report.
#
#   bash e2e/bench/run.sh                 # 16 Baron cells (WebGPU under SwiftShader is slow)
#   CELLS=64 SHAPE=tiny bash e2e/bench/run.sh
#
# Env: WORK (/tmp/gc-browser-bench), CELLS (16), SHAPE (small | tiny | base), REGEN=1,
# BACKENDS ("cpu webgpu"; the first is the reference for the others).
# Needs python3 with h5py and numpy to cut the cells out of the h5ad (else a venv in WORK).
# The classifier is a fresh SHAPE model fine-tuned for one epoch on 40 Baron cells (its
# vocabulary is built from the gene tables, so real files tokenize); its weights do not matter
# for speed. Nothing is written in the repository.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="${WORK:-/tmp/gc-browser-bench}"
CELLS="${CELLS:-16}"
SHAPE="${SHAPE:-small}"
BARON="$ROOT/../shared/data/h5ad/baron_mouse_pancreas_822.h5ad"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/genecompass-target}"
[ -f "$BARON" ] || { echo "error: $BARON missing: ../shared must sit beside the checkout" >&2; exit 1; }
mkdir -p "$WORK"
cd "$ROOT"

echo "== build: CLI and server (release), browser bundle" >&2
cargo build --release -p genecompass-trainer -p genecompass-server --bin genecompass-train --bin genecompass >&2
bash scripts/build-web.sh >&2
[ -d e2e/node_modules ] || (cd e2e && npm ci --no-audit --no-fund >&2)
BIN="$CARGO_TARGET_DIR/release"

MODEL="$WORK/model-$SHAPE"
if [ "${REGEN:-0}" = 1 ] || [ ! -f "$MODEL/model.safetensors" ]; then
  echo "== classifier ($SHAPE) -> $MODEL" >&2
  rm -rf "$WORK/run-$SHAPE" "$MODEL"
  "$BIN/genecompass-train" finetune --data "$BARON" --label-column cell_type --config "$SHAPE" \
    --epochs 1 --max-cells 40 --batch-size 8 --seed 1 --output "$WORK/run-$SHAPE" >/dev/null
  "$BIN/genecompass-train" convert --checkpoint "$WORK/run-$SHAPE/model" --output "$MODEL" \
    --format official >&2
fi
TABLE="$WORK/baron_first$CELLS.csv"
if [ ! -f "$TABLE" ]; then
  PY=python3
  if ! python3 -c 'import h5py, numpy' 2>/dev/null; then
    PY="$WORK/venv/bin/python"
    [ -x "$PY" ] || { python3 -m venv "$WORK/venv" && "$PY" -m pip install -q h5py numpy >&2; }
  fi
  "$PY" "$HERE/subset_csv.py" "$BARON" "$CELLS" "$TABLE"
fi

GENECOMPASS_BIN="$BIN/genecompass" GENECOMPASS_TRAIN_BIN="$BIN/genecompass-train" \
  node "$HERE/browser.mjs" "$MODEL" "$TABLE" "$WORK"
