#!/usr/bin/env bash
# GPU checks and benchmarks, on a machine with an NVIDIA GPU, PyTorch and no network.
#
#   bench/gpu/prepare.sh DIR      (here: builds genecompass-train with --features cuda, copies it,
#                                  the reference-tiny fixture and two h5ad files into DIR)
#   bench/gpu/run.sh DIR OUT      (there: writes OUT/parity.md, OUT/inference_*.md, OUT/train.md)
#
# 1. parity: embed/classify on the reference-tiny fixture, CPU and GPU, against the official
#    golden tensors (bench/gpu/parity.py, tolerance 1e-4);
# 2. inference: bench/inference/bench.py on Small and Base shapes, PyTorch peer on the same GPU
#    (padded to 2048, and dynamic padding) vs `genecompass-train embed --backend cuda`, run twice
#    (the first run pays for kernel compilation and autotuning);
# 3. training: `genecompass-train pretrain --backend cuda` vs bench/train/peer_train.py on the GPU.
#
# Steps run in order of importance (parity, Small inference, training, Base inference) and each
# writes its file at once, so a run cut short still returns what finished.
#
# Env: NAME (genecompass-train: which binary of DIR, see prepare.sh), STEPS ("parity small train base"), INFER_MODES (bench.py's --modes, "abce"), BACKEND (cuda; cpu runs the same script on the CPU, to test it), SMALL_CELLS (512),
#      BASE_CELLS (128), TRAIN_CELLS (96), SMALL_BATCH (32), BASE_BATCH (8), TRAIN_BATCH (8),
#      STEP_TIMEOUT (seconds per CLI step, 120; a bench.py call gets three times that), PY (python3 with torch, transformers, safetensors,
#      h5py), WORK (/tmp/gcgpu).
set -uo pipefail
IN="$(cd "$1" && pwd)"
OUT="$(mkdir -p "$2" && cd "$2" && pwd)"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BACKEND="${BACKEND:-cuda}"
PY="${PY:-python3}"
W="${WORK:-/tmp/gcgpu}"
T="${STEP_TIMEOUT:-120}"
STEPS=" ${STEPS:-parity small train base} " INFER_MODES="${INFER_MODES:-abce}"
SMALL_CELLS="${SMALL_CELLS:-512}" BASE_CELLS="${BASE_CELLS:-128}" TRAIN_CELLS="${TRAIN_CELLS:-96}"
SMALL_BATCH="${SMALL_BATCH:-32}" BASE_BATCH="${BASE_BATCH:-8}" TRAIN_BATCH="${TRAIN_BATCH:-8}"
NAME="${NAME:-genecompass-train}"
BIN="$IN/$NAME" GEN="$IN/bench_gen_model" FIX="$IN/reference-tiny"
H5AD=("$IN/h5ad/baron_mouse_pancreas_822.h5ad" "$IN/h5ad/wu2020_tcells_200.h5ad")
mkdir -p "$W"
if [ -f "$IN/$NAME.xz" ]; then
  xz -dc "$IN/$NAME.xz" >"$W/$NAME" && chmod +x "$W/$NAME"
  BIN="$W/$NAME"
fi
export RUST_LOG=warn RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-$(nproc)}"
step() { echo "== $* ($(date -u +%T))" | tee -a "$OUT/log"; }
trap 'step "stopped"' EXIT

# NVRTC (cubecl compiles its kernels at run time) and libcuda are opened with dlopen.
nvrtc="$(ls /usr/local/cuda/lib64/libnvrtc.so* 2>/dev/null | head -1)"
[ -n "$nvrtc" ] || nvrtc="$(find /usr/local /opt /usr/lib -name 'libnvrtc.so*' 2>/dev/null | sort | tail -1)"
[ -n "$nvrtc" ] && export LD_LIBRARY_PATH="$(dirname "$nvrtc")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); backend: $BACKEND; cpu: $(nproc) cores"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  echo "nvrtc: ${nvrtc:-not found}"
  "$PY" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
} | tee "$OUT/env.txt"

wants() { [[ "$STEPS" == *" $1 "* ]]; }

parity() {
  step "parity on the reference-tiny fixture"
  # The CPU path's parity is CI's job (core/tests/parity.rs); here only the GPU's.
  local common=(--backend "$BACKEND" --input "$FIX/inputs.safetensors" --padding stored)
  local log="$OUT/log" b="$BACKEND"
  timeout "$T" "$BIN" embed "${common[@]}" --checkpoint "$FIX" --output "$W/emb_$b.safetensors" >>"$log" 2>&1
  timeout "$T" "$BIN" embed "${common[@]}" --checkpoint "$FIX" --unfolded --output "$W/embu_$b.safetensors" >>"$log" 2>&1
  timeout "$T" "$BIN" embed "${common[@]}" --checkpoint "$FIX" --no-attention-mask \
    --output "$W/embn_$b.safetensors" >>"$log" 2>&1
  timeout "$T" "$BIN" classify "${common[@]}" --checkpoint "$FIX/classifier" --output "$W/cls_$b.safetensors" >>"$log" 2>&1
  timeout "$T" "$BIN" classify "${common[@]}" --checkpoint "$FIX/classifier" --truncate-values false \
    --output "$W/clsf_$b.safetensors" >>"$log" 2>&1
  "$PY" "$HERE/parity.py" "$FIX/outputs.safetensors" "$W" "$b" | tee "$OUT/parity.md"
}

data() {
  step "weights and cells"
  for shape in small base; do
    [ -f "$W/model_$shape/model.safetensors" ] || timeout "$T" "$GEN" "$shape" "$W/model_$shape" >>"$OUT/log" 2>&1
  done
  local gen=("$PY" "$ROOT/bench/inference/gen_cells.py")
  "${gen[@]}" "$W/cells_small.safetensors" "$SMALL_CELLS" 1 "${H5AD[@]}" >>"$OUT/log" 2>&1
  "${gen[@]}" "$W/cells_base.safetensors" "$BASE_CELLS" 2 "${H5AD[@]}" >>"$OUT/log" 2>&1
  "${gen[@]}" "$W/cells_train.safetensors" "$TRAIN_CELLS" 3 "${H5AD[@]}" >>"$OUT/log" 2>&1
}

inference() {  # SHAPE BATCH
  step "inference $1"
  timeout $((3 * T)) "$PY" "$ROOT/bench/inference/bench.py" "$1" "$W/model_$1" "$W/cells_$1.safetensors" \
    "$W/out" "$BIN" --batch-size "$2" --modes "$INFER_MODES" --device "$BACKEND" --threads "$(nproc)" --rounds 1 \
    2>>"$OUT/log" | tee "$OUT/inference_$1.md"
}

training() {
  step "training (Small)"
  rm -rf "$W/train_run"
  timeout "$T" "$BIN" pretrain --backend "$BACKEND" --checkpoint "$W/model_small" \
    --data "$W/cells_train.safetensors" --epochs 2 --batch-size "$TRAIN_BATCH" --lr 1e-5 --max-genes 2048 \
    --warmup-steps 1 --seed 1 --output "$W/train_run" >"$OUT/train_rust.jsonl" 2>>"$OUT/log"
  # The second epoch, timed from the trainer's per-step throughput.
  "$PY" - "$OUT/train_rust.jsonl" "$TRAIN_CELLS" "$TRAIN_BATCH" "$BACKEND" <<'PY' | tee "$OUT/train.jsonl"
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"event":"step"' in l.replace(" ", "")]
n, b = int(sys.argv[2]), int(sys.argv[3])
per_epoch = -(-n // b)
second = steps[per_epoch:2 * per_epoch]
if len(second) < per_epoch:
    sys.exit(f"rust pretrain reported {len(steps)} steps, expected {2 * per_epoch}")
sizes = [min(b, n - i * b) for i in range(per_epoch)]
secs = sum(sz / s["cells_per_s"] for sz, s in zip(sorted(sizes), second))
print(json.dumps({"side": "rust", "mode": "dynamic", "cells": n, "seconds": secs, "cells_per_s": n / secs,
                  "batch_size": b, "last_loss": second[-1].get("loss"), "device": sys.argv[4]}))
PY
  for mode in dynamic official; do
    timeout "$T" "$PY" "$ROOT/bench/train/peer_train.py" "$W/model_small" "$W/cells_train.safetensors" \
      --mode "$mode" --batch-size "$TRAIN_BATCH" --threads "$(nproc)" --device "$BACKEND" 2>>"$OUT/log" \
      | tee -a "$OUT/train.jsonl"
  done
}

if wants parity; then parity; fi
data
if wants small; then inference small "$SMALL_BATCH"; fi
if wants train; then training; fi
if wants base; then inference base "$BASE_BATCH"; fi
