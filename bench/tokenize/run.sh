#!/usr/bin/env bash
# Tokenization benchmark: `genecompass-train tokenize` (release) vs the same steps in Python
# (bench/tokenize/reference.py: anndata + scanpy + numpy), on the largest real count files of
# shared/data and on a ~1 GB h5ad synthesised from them into /tmp (stored plain, and the same
# cells gzip-compressed as most published h5ad files are). Reports cells/s and peak RSS
# (/usr/bin/time -v) of both, measured in the same run.
#
# Both tools write their outputs to the same memory-backed directory (FAST_OUT, /dev/shm by
# default): the ratios compare the tokenizers, not this VM's disk, whose fsync'd writes ran
# from 359 MB/s to 1.6 GB/s within a minute (`dd ... conv=fdatasync`, 2026-11-28). Rust
# fsyncs its output and Python does not, so on a disk the same tool pays the disk and the other
# does not. One more Rust run per input writes the ragged layout to disk (WORK) and fsyncs it,
# the cost a user with a disk like this one sees; it is compared with Python's run in memory,
# which only understates that ratio (Python on a disk is no faster).
#
#   bash bench/tokenize/run.sh            # all inputs
#   SKIP_SYNTH=1 bash bench/tokenize/run.sh
#   REPS=5 bash bench/tokenize/run.sh   # runs per input (median reported; default 3)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DATA="${GC_SHARED_DATA:-$ROOT/../shared/data}"
WORK="${BENCH_WORK:-/tmp/gc-bench-tokenize}"
VENV="${BENCH_VENV:-/tmp/gc-bench-venv}"
FAST="${FAST_OUT:-/dev/shm/gc-bench-tokenize}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/genecompass-target}"
mkdir -p "$WORK" "$FAST"
# Python's padded 1 GB output and the Rust padded one are 4.8 GB each (one at a time).
if [ "$(df -Pk "$FAST" | awk 'NR == 2 {print $4}')" -lt $((6 * 1024 * 1024)) ]; then
  echo "FAST_OUT=$FAST has under 6 GiB free: writing the measured outputs to $WORK instead" >&2
  FAST="$WORK"
fi

echo "== build (release)" >&2
(cd "$ROOT" && cargo build --release -p genecompass-trainer --bin genecompass-train >&2)
BIN="$CARGO_TARGET_DIR/release/genecompass-train"

if [ ! -x "$VENV/bin/python" ]; then
  echo "== venv $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip >&2
  "$VENV/bin/pip" install -q anndata scanpy numpy safetensors >&2
fi
PY="$VENV/bin/python"

SYNTH="$WORK/synth_1gb.h5ad"
SYNTH_GZ="$WORK/synth_1gb_gzip.h5ad"
for f in "$SYNTH" "$SYNTH_GZ"; do
  if [ -z "${SKIP_SYNTH:-}" ] && [ ! -f "$f" ]; then
    echo "== synthesising $f" >&2
    "$PY" "$HERE/reference.py" synth "$f" "$DATA/h5ad/baron_mouse_pancreas_822.h5ad" --target-bytes 1e9 \
      $([ "$f" = "$SYNTH_GZ" ] && echo --gzip) >&2
  fi
done

# name|file|species
INPUTS=(
  "baron_mouse_pancreas_822|$DATA/h5ad/baron_mouse_pancreas_822.h5ad|mouse"
  "wu2020_tcells_200|$DATA/h5ad/wu2020_tcells_200.h5ad|human"
  "mouse_brain_10k_1000genes|$DATA/h5ad/mouse_brain_10k_1000genes.h5ad|mouse"
)
[ -z "${SKIP_SYNTH:-}" ] && INPUTS+=("synth_1gb (baron x Poisson)|$SYNTH|mouse"
  "synth_1gb_gzip (the same, gzip)|$SYNTH_GZ|mouse")

# peak RSS (MiB) and wall seconds from a /usr/bin/time -v log
rss() { awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$1"; }
wall() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; printf "%.2f", s}' "$1"; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m)"
echo
# timed OUT REPS CMD...: runs CMD (writing OUT.safetensors) REPS times (after a `sync`, so that no run pays for the
# previous one's writeback; the padded 1 GB output is 4.8 GB) and keeps the stdout and the
# /usr/bin/time -v log of the run with the median wall time as OUT.log and OUT.time.
timed() {
  local out=$1 reps=$2 i
  shift 2
  for i in $(seq "$reps"); do
    # Each run writes a fresh file (replacing one means deleting it inside the timed run).
    rm -f "$out.safetensors"
    sync
    /usr/bin/time -v "$@" >"$out.log.$i" 2>"$out.time.$i" || { cat "$out.log.$i" "$out.time.$i" >&2; exit 1; }
  done
  i=$(for r in $(seq "$reps"); do echo "$(wall "$out.time.$r") $r"; done | sort -n | awk -v m=$(((reps + 1) / 2)) 'NR == m {print $2}')
  mv "$out.log.$i" "$out.log"
  mv "$out.time.$i" "$out.time"
  rm -f "$out".log.[0-9]* "$out".time.[0-9]*
}

echo "outputs: $FAST (measured runs), $WORK (Rust ragged on disk, fsync'd)"
echo
echo "| input | cells | size | runs | Rust s ragged / padded / ragged on disk | Rust cells/s (ragged) | Rust peak MiB ragged / padded | Python s (padded) | Python cells/s | Python peak MiB | Rust ÷ Python cells/s: ragged / padded / ragged on disk | cells kept R / Py |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for spec in "${INPUTS[@]}"; do
  IFS='|' read -r name file species <<<"$spec"
  base="$(basename "$file" .h5ad)"
  out="$FAST/$base"
  # Medians of REPS runs (default 3) for the ragged Rust output and for Python; the padded
  # Rust output (4.8 GB on the 1 GB files, as Python's) and the ragged output on disk run once
  # on the 1 GB files. The disk run goes last: after writing GBs this disk writes more slowly
  # for a while.
  reps=${REPS:-3}
  preps=$reps
  [[ "$name" == synth* ]] && preps=1
  timed "$out.ragged" "$reps" "$BIN" tokenize "$file" --output "$out.ragged.safetensors" --build-vocab \
    --layout ragged --species "$species"
  timed "$out.py" "$reps" "$PY" "$HERE/reference.py" tokenize "$file" --token-dict "$out.ragged.token_dict.json" \
    --species "$species" --output "$out.py.safetensors"
  rm -f "$out.py.safetensors"
  timed "$out.rust" "$preps" "$BIN" tokenize "$file" --output "$out.rust.safetensors" --build-vocab \
    --species "$species"
  rm -f "$out.rust.safetensors"
  disk="$WORK/$base.disk"
  timed "$disk" 1 "$BIN" tokenize "$file" --output "$disk.safetensors" --build-vocab \
    --layout ragged --species "$species"
  cells=$(awk -F': *' '/cells in:/ {print $2; exit}' "$out.rust.log")
  kept_r=$(awk '/written:/ {print $2; exit}' "$out.rust.log")
  kept_p=$("$PY" -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["cells_out"])' "$out.py.log")
  size=$(du -h "$file" | cut -f1)
  rs=$(wall "$out.rust.time"); rr=$(wall "$out.ragged.time"); rd=$(wall "$disk.time"); ps=$(wall "$out.py.time")
  printf '| %s | %s | %s | %s/%s | %s / %s / %s | %.0f | %s / %s | %s | %.0f | %s | %.1f× / %.1f× / %.1f× | %s / %s |\n' "$name" "$cells" "$size" \
    "$reps" "$preps" "$rr" "$rs" "$rd" "$(echo "$cells / $rr" | bc -l)" "$(rss "$out.ragged.time")" "$(rss "$out.rust.time")" \
    "$ps" "$(echo "$cells / $ps" | bc -l)" "$(rss "$out.py.time")" "$(echo "$ps / $rr" | bc -l)" \
    "$(echo "$ps / $rs" | bc -l)" "$(echo "$ps / $rd" | bc -l)" "$kept_r" "$kept_p"
  rm -f "$out.rust.safetensors" "$out.ragged.safetensors" "$out.py.safetensors" "$disk.safetensors"
done
echo
echo "Times are wall clock of the whole process (Python includes interpreter and imports; its log has"
echo "seconds_after_import). Logs: $FAST and $WORK"
