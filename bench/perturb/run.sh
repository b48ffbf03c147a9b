#!/usr/bin/env bash
# Perturbation throughput of `genecompass-train perturb` on CPU for a Small-shaped random model
# (6 layers, H 256, 4 heads, FFN 512, V 50,558, K 768), against the number of genes perturbed.
# Weights and cells go under $WORK (never in the repository); prints a markdown table.
#
# Env: WORK (/tmp/gcbench), VENV (/tmp/benchenv/venv: numpy, h5py, safetensors), THREADS (2),
#      CELLS (8), GENES ("1 2 4 8": genes perturbed per run, one at a time), BATCH (4),
#      OVER (4: genes of the extra over-expression run; empty to skip), BIN (a prebuilt binary),
#      REGEN=1 to rebuild the data.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="${WORK:-/tmp/gcbench}"
VENV="${VENV:-/tmp/benchenv/venv}"
THREADS="${THREADS:-2}"
CELLS="${CELLS:-8}"
GENES="${GENES:-1 2 4 8}"
BATCH="${BATCH:-4}"
OVER="${OVER-4}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/genecompass-target}"
H5AD="$ROOT/../shared/data/h5ad"
mkdir -p "$WORK"

if [ -z "${BIN:-}" ]; then
  echo "== build (release)" >&2
  (cd "$ROOT" && cargo build --release -p genecompass-trainer --bin genecompass-train --example bench_gen_model) >&2
  BIN="$CARGO_TARGET_DIR/release/genecompass-train"
fi
GEN="${GEN:-$CARGO_TARGET_DIR/release/examples/bench_gen_model}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import h5py, safetensors, numpy" 2>/dev/null; then
  echo "== venv $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q numpy h5py safetensors >&2
fi
PY="$VENV/bin/python"

model="$WORK/model_small"
if [ "${REGEN:-0}" = 1 ] || [ ! -f "$model/model.safetensors" ]; then
  RAYON_NUM_THREADS="$THREADS" "$GEN" small "$model" >&2
fi
max=0
for g in $GENES $OVER; do [ "$g" -gt "$max" ] && max="$g"; done
cells="$WORK/perturb_cells_${CELLS}_${max}.safetensors"
dict="$WORK/perturb_token_dict.json"
if [ "${REGEN:-0}" = 1 ] || [ ! -f "$cells" ] || [ ! -f "$dict" ]; then
  "$PY" "$HERE/gen_cells.py" "$cells" "$dict" "$CELLS" 3 "$max" \
    "$H5AD/baron_mouse_pancreas_822.h5ad" "$H5AD/wu2020_tcells_200.h5ad" >&2
fi

genes_list() { seq 2 $((1 + $1)) | awk '{printf "%sENSG%011d", (NR>1?",":""), $1}'; }

echo "# Perturbation benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load average $(cut -d' ' -f1-3 /proc/loadavg); threads: $THREADS"
echo "model: Small (6 layers, H 256, 4 heads, FFN 512, V 50558, K 768), random weights; $CELLS cells, batch size $BATCH, attention mask on, embedding folded when the run pushes more tokens than the vocabulary (the CLI default)"
echo
echo "| mode | genes | perturbed cells | originals | embedding | s (CLI) | perturbations/s | peak RSS MiB |"
echo "|---|---:|---:|---:|---|---:|---:|---:|"
run() {
  local mode="$1" g="$2" extra="${3:-}"
  local out="$WORK/perturb_out_${mode}_$g"
  local err="$WORK/perturb_${mode}_$g.err"
  RAYON_NUM_THREADS="$THREADS" /usr/bin/time -v "$BIN" perturb --model "$model" --cells "$cells" \
    --token-dict "$dict" --genes "$(genes_list "$g")" --mode "$mode" $extra \
    --batch-size "$BATCH" --output "$out" > /dev/null 2> "$err"
  local line rss
  line="$(grep '^perturbed ' "$err")"
  rss="$(awk -F': ' '/Maximum resident set size/{printf "%.0f", $2/1024}' "$err")"
  echo "$line" | sed -E "s/.*: ([0-9]+) perturbed cells \+ ([0-9]+) originals in ([0-9.]+)s \(([0-9.]+) perturbations\/s, ([a-z]+) embedding\).*/| $mode | $g | \1 | \2 | \5 | \3 | \4 | $rss |/"
}
for g in $GENES; do run delete "$g"; done
if [ -n "$OVER" ]; then run overexpress "$OVER"; fi
