#!/usr/bin/env bash
# Builds what bench/gpu/run.sh needs and copies it into DIR (default .gpu, inside the checkout
# and git-ignored through .git/info/exclude, so that a GPU machine can be sent the folder).
#
# - `--features cuda-nvrtc`: cubecl compiles kernels with NVRTC (CUDA's run-time C++ compiler,
#   present wherever the CUDA toolkit or PyTorch's CUDA wheels are) instead of its LLVM backend.
# - CUDARC_CUDA_VERSION pins the CUDA driver API the binary is built against (13000 = CUDA 13.0,
#   what the GPU machine's driver provides); without nvcc here cudarc assumes its newest.
# - Offline (no route to github.com): cubecl-cuda links LLVM, whose build script downloads a
#   bundle from GitHub. Then the build skips it (DOCS_RS=1) and links stub functions for the
#   LLVM symbols instead; each stub aborts with a message if called. With cuda-nvrtc nothing
#   calls them: LLVM is only reached by cubecl's LLVM compiler, which this build never selects.
#
# Env: FEATURES (cuda-nvrtc), NAME (genecompass-train: the binary's name in DIR), ONLY_BINARY=1
# (add the binary to an existing DIR and leave the rest: to compare two builds in one run).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${1:-$ROOT/.gpu}"
FEATURES="${FEATURES:-cuda-nvrtc}"
NAME="${NAME:-genecompass-train}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/genecompass-target}"
export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13000}"
SHARED="$ROOT/../shared"
BUILD=(cargo rustc --release -p genecompass-trainer --features "$FEATURES" --bin genecompass-train)
cd "$ROOT"
if curl -sfI --max-time 10 https://github.com >/dev/null 2>&1; then
  "${BUILD[@]}"
else
  echo "prepare: github.com unreachable; linking LLVM stubs (see the comment at the top)" >&2
  export DOCS_RS=1
  stubs="$CARGO_TARGET_DIR/llvm-stubs"
  mkdir -p "$stubs"
  "${BUILD[@]}" -- -C link-arg=-Wl,--error-limit=0 >"$stubs/link.log" 2>&1 || true
  grep -o 'undefined symbol: [A-Za-z0-9_]*' "$stubs/link.log" | cut -d' ' -f3 | sort -u >"$stubs/symbols.txt"
  if [ -s "$stubs/symbols.txt" ]; then
    {
      echo '#include <stdio.h>'
      echo '#include <stdlib.h>'
      echo 'static void gc_llvm_missing(const char *f) { fprintf(stderr, "genecompass-train: %s: this build has no LLVM (bench/gpu/prepare.sh offline build); use the NVRTC compiler\n", f); abort(); }'
      while read -r s; do echo "void $s(void) { gc_llvm_missing(\"$s\"); }"; done <"$stubs/symbols.txt"
    } >"$stubs/llvm_stubs.c"
    cc -O2 -c "$stubs/llvm_stubs.c" -o "$stubs/llvm_stubs.o"
    echo "prepare: $(wc -l <"$stubs/symbols.txt") LLVM symbols stubbed" >&2
    "${BUILD[@]}" -- -C link-arg="$stubs/llvm_stubs.o"
  else
    grep -q 'Finished' "$stubs/link.log" || { cat "$stubs/link.log" >&2; exit 1; }
  fi
fi
grep -qx '/.gpu/' "$ROOT/.git/info/exclude" 2>/dev/null || echo '/.gpu/' >>"$ROOT/.git/info/exclude"
if [ "${ONLY_BINARY:-0}" != 1 ]; then rm -rf "$DIR"; fi
mkdir -p "$DIR/h5ad"
cp "$CARGO_TARGET_DIR/release/genecompass-train" "$DIR/$NAME"
strip "$DIR/$NAME"
xz -T2 -6 -f "$DIR/$NAME"  # 71 MB -> 13 MB: the GPU machine is sent at most 64 MiB
if [ "${ONLY_BINARY:-0}" = 1 ]; then du -sh "$DIR"; exit 0; fi
# The weight generator needs no GPU: the default (CPU) build of the example.
env -u DOCS_RS cargo build --release -p genecompass-trainer --example bench_gen_model
cp "$CARGO_TARGET_DIR/release/examples/bench_gen_model" "$DIR/"
cp -r "$SHARED/fixtures/reference-tiny" "$DIR/"
cp "$SHARED/data/h5ad/baron_mouse_pancreas_822.h5ad" "$SHARED/data/h5ad/wu2020_tcells_200.h5ad" "$DIR/h5ad/"
chmod -R u+w "$DIR"
du -sh "$DIR"
