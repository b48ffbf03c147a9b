#!/usr/bin/env bash
# Training-throughput benchmark: `genecompass-train pretrain` vs a PyTorch peer
# (bench/train/peer_train.py), Small shape, same weights, same cells, same objective, CPU, same
# run. The peer runs twice: the official way (padded to 2048, ID head on every position) and
# with the Rust trainer's dynamic padding and masked-only heads.
#
# Env: WORK (/tmp/gcbench), VENV (/tmp/benchenv/venv, needs torch + transformers + safetensors),
#      THREADS (2), CELLS (16), BATCH (4). Weights and cells come from bench/inference (shape small).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="${WORK:-/tmp/gcbench}"
VENV="${VENV:-/tmp/benchenv/venv}"
THREADS="${THREADS:-2}"
CELLS="${CELLS:-16}"
BATCH="${BATCH:-4}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/genecompass-target}"
H5AD="$ROOT/../shared/data/h5ad"
PY="$VENV/bin/python"
mkdir -p "$WORK"
(cd "$ROOT" && cargo build --release -p genecompass-trainer --bin genecompass-train --example bench_gen_model) >&2
BIN="$CARGO_TARGET_DIR/release/genecompass-train"
GEN="$CARGO_TARGET_DIR/release/examples/bench_gen_model"
model="$WORK/model_small"
[ -f "$model/model.safetensors" ] || RAYON_NUM_THREADS="$THREADS" "$GEN" small "$model" >&2
cells="$WORK/train_cells_$CELLS.safetensors"
[ -f "$cells" ] || "$PY" "$ROOT/bench/inference/gen_cells.py" "$cells" "$CELLS" 3 \
  "$H5AD/baron_mouse_pancreas_822.h5ad" "$H5AD/wu2020_tcells_200.h5ad" >&2

echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "versions: $(rustc --version), burn 0.22.1 (flex), $("$PY" -c 'import torch; print("torch", torch.__version__)')"

# Rust: two epochs; the second (a full pass over every cell, after warm-up) is timed from the
# per-step throughput the trainer reports.
run="$WORK/train_run"
rm -rf "$run"
RAYON_NUM_THREADS="$THREADS" /usr/bin/time -f '%M' -o "$WORK/rust.rss" "$BIN" pretrain --checkpoint "$model" \
  --data "$cells" --epochs 2 --batch-size "$BATCH" --lr 1e-5 --max-genes 2048 --warmup-steps 1 \
  --seed 1 --output "$run" > "$WORK/rust.jsonl" 2> "$WORK/rust.err"
"$PY" - "$WORK/rust.jsonl" "$CELLS" "$BATCH" "$(cat "$WORK/rust.rss")" <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"event":"step"' in l.replace(" ", "")]
n, b = int(sys.argv[2]), int(sys.argv[3])
per_epoch = -(-n // b)
second = steps[per_epoch:2 * per_epoch]
sizes = [min(b, n - i * b) for i in range(per_epoch)]
secs = sum(sz / s["cells_per_s"] for sz, s in zip(sorted(sizes), second))
print(json.dumps({"side": "rust", "mode": "dynamic", "cells": n, "seconds": secs,
                  "cells_per_s": n / secs, "batch_size": b, "peak_rss_kib": int(sys.argv[4])}))
PY
for mode in dynamic official; do
  out=$(/usr/bin/time -f '%M' -o "$WORK/peer_$mode.rss" "$PY" "$HERE/peer_train.py" "$model" "$cells" \
    --mode "$mode" --batch-size "$BATCH" --threads "$THREADS")
  "$PY" -c 'import json, sys; d = json.loads(sys.argv[1]); d["peak_rss_kib"] = int(sys.argv[2]); print(json.dumps(d))' \
    "$out" "$(cat "$WORK/peer_$mode.rss")"
done
