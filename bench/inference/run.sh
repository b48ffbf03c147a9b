#!/usr/bin/env bash
# Inference benchmark: PyTorch peer vs genecompass-train embed, same weights, same cells.
# Builds the release binary, creates the Python venv if missing, writes random weights and
# cells under $WORK (never in the repository), runs the four modes per shape, prints tables.
#
# Env: WORK (default /tmp/gcbench), VENV (default /tmp/benchenv/venv), THREADS (2),
#      SMALL_CELLS (48), BASE_CELLS (6), BATCH (8, Small), BASE_BATCH (2: with 6 cells, 8 would be one
#      batch padded to its 2048-gene cell, i.e. no dynamic padding at all), SHAPES ("small base"),
#      ROUNDS (3: the modes run interleaved this many times; medians and per-round ratios),
#      REGEN=1 to rebuild data.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="${WORK:-/tmp/gcbench}"
VENV="${VENV:-/tmp/benchenv/venv}"
THREADS="${THREADS:-2}"
SMALL_CELLS="${SMALL_CELLS:-48}"
BASE_CELLS="${BASE_CELLS:-6}"
BATCH="${BATCH:-8}"
BASE_BATCH="${BASE_BATCH:-2}"
SHAPES="${SHAPES:-small base}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/genecompass-target}"
H5AD="$(cd "$(dirname "$0")/../../.." && pwd)/shared/data/h5ad"
mkdir -p "$WORK"

echo "== build (release)" >&2
(cd "$ROOT" && cargo build --release -p genecompass-trainer --bin genecompass-train --example bench_gen_model) >&2
BIN="$CARGO_TARGET_DIR/release/genecompass-train"
GEN="$CARGO_TARGET_DIR/release/examples/bench_gen_model"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import torch, transformers, h5py, safetensors" 2>/dev/null; then
  echo "== venv $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch transformers numpy h5py safetensors >&2
fi
PY="$VENV/bin/python"

for shape in $SHAPES; do
  model="$WORK/model_$shape"
  if [ "${REGEN:-0}" = 1 ] || [ ! -f "$model/model.safetensors" ]; then
    echo "== weights $shape -> $model" >&2
    RAYON_NUM_THREADS="$THREADS" "$GEN" "$shape" "$model" >&2
  fi
  case "$shape" in small) n="$SMALL_CELLS"; seed=1 ;; *) n="$BASE_CELLS"; seed=2 ;; esac
  cells="$WORK/cells_${shape}_${n}.safetensors"
  if [ "${REGEN:-0}" = 1 ] || [ ! -f "$cells" ]; then
    "$PY" "$HERE/gen_cells.py" "$cells" "$n" "$seed" "$H5AD/baron_mouse_pancreas_822.h5ad" "$H5AD/wu2020_tcells_200.h5ad" >&2
  fi
done

echo "# Inference benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/{print $2}') GiB RAM; threads: $THREADS"
echo "versions: $(rustc --version), burn 0.22.1 (flex CPU backend), $("$PY" -c 'import sys, torch, transformers; print(f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}")')"
for shape in $SHAPES; do
  case "$shape" in small) n="$SMALL_CELLS"; b="$BATCH" ;; *) n="$BASE_CELLS"; b="$BASE_BATCH" ;; esac
  "$PY" "$HERE/bench.py" "$shape" "$WORK/model_$shape" "$WORK/cells_${shape}_${n}.safetensors" "$WORK/out" "$BIN" \
    --batch-size "$b" --threads "$THREADS" --rounds "${ROUNDS:-3}"
done
