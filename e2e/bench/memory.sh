#!/usr/bin/env bash
# Browser memory benchmark: the annotate page's worker memory on files from 2 MB to 1 GB (Baron,
# and h5ad files synthesised from it by bench/tokenize/reference.py). The worker reads the file
# slice by slice and classifies it chunk by chunk, so its memory should not follow the file size.
#
#   bash e2e/bench/memory.sh              # Baron, 100 MB and 1 GB
#   SIZES="1e8" bash e2e/bench/memory.sh
#
# Env: WORK (/tmp/gc-browser-memory), SIZES ("1e8 1e9": bytes of the synthesised files).
# Needs python3 with anndata and scipy for the synthesis (else a venv in WORK).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="${WORK:-/tmp/gc-browser-memory}"
SIZES="${SIZES:-1e8 1e9}"
BARON="$ROOT/../shared/data/h5ad/baron_mouse_pancreas_822.h5ad"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/genecompass-target}"
[ -f "$BARON" ] || { echo "error: $BARON missing: ../shared must sit beside the checkout" >&2; exit 1; }
mkdir -p "$WORK"
cd "$ROOT"

echo "== build: server and trainer (release), browser bundle" >&2
cargo build --release -p genecompass-trainer -p genecompass-server --bin genecompass-train --bin genecompass >&2
bash scripts/build-web.sh >&2
[ -d e2e/node_modules ] || (cd e2e && npm ci --no-audit --no-fund >&2)
BIN="$CARGO_TARGET_DIR/release"

FILES=("$BARON")
for size in $SIZES; do
  out="$WORK/synth_$size.h5ad"
  if [ ! -f "$out" ]; then
    PY=python3
    if ! python3 -c 'import anndata, scipy' 2>/dev/null; then
      PY="$WORK/venv/bin/python"
      [ -x "$PY" ] || { python3 -m venv "$WORK/venv" && "$PY" -m pip install -q anndata scipy >&2; }
    fi
    echo "== synthesising $out" >&2
    "$PY" "$ROOT/bench/tokenize/reference.py" synth "$out" "$BARON" --target-bytes "$size" >&2
  fi
  FILES+=("$out")
done

GENECOMPASS_BIN="$BIN/genecompass" GENECOMPASS_TRAIN_BIN="$BIN/genecompass-train" \
  node "$HERE/memory.mjs" "${FILES[@]}"
