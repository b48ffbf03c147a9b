#!/usr/bin/env bash
# UMAP benchmark and native/wasm determinism check. Builds core's tasks/umap.rs (through this
# standalone crate: thiserror is its only dependency) in release, natively and for
# wasm32-unknown-unknown, then
#   1. times synthetic blobs (10 Gaussian blobs, cosine, default options) natively;
#   2. runs the same layouts in node's WebAssembly and checks the output bits hash the same;
#   3. the wasm time of each case (the SIZES last) is printed beside its hash.
#
#   bash bench/umap/run.sh                 # SIZES="822x256 10000x256"
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gc-umap-bench}"
SIZES="${SIZES:-822x256 10000x256}"
cd "$HERE"
cargo build --offline --release >&2
cargo build --offline --release --lib --target wasm32-unknown-unknown >&2
B="$CARGO_TARGET_DIR/release/umap-bench"
W="$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/umap_bench.wasm"
echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load $(cut -d' ' -f1-3 /proc/loadavg)"
for s in $SIZES; do "$B" "${s%x*}" "${s#*x}"; done
# Hash cases: n dim seed metric(0 cos, 1 euc) epochs(0 = default).
CASES="300 20 7 0 0;300 20 7 1 0;500 64 3 0 100;50 8 1 1 0;900 256 42 0 50"
for s in $SIZES; do CASES="$CASES;${s%x*} ${s#*x} 42 0 0"; done
fail=0
IFS=';'
for c in $CASES; do
  IFS=' ' read -r n d seed m e <<<"$c"
  nat=$("$B" 0 "$n" "$d" "$seed" "$m" "$e")
  was=$(node -e '
    const [w, n, d, seed, m, e] = process.argv.slice(1);
    const instance = new WebAssembly.Instance(new WebAssembly.Module(require("fs").readFileSync(w)), {});
    const t = performance.now();
    const h = instance.exports.umap_hash(+n, +d, BigInt(seed), +m, +e);
    console.log(BigInt.asUintN(64, h).toString(16).padStart(16, "0") + " " + ((performance.now() - t) / 1000).toFixed(2));
  ' "$W" "$n" "$d" "$seed" "$m" "$e")
  same=$([ "$nat" = "${was% *}" ] && echo same || { fail=1; echo DIFFERENT; })
  echo "n $n dim $d seed $seed metric $m epochs $e: native $nat, wasm ${was% *} (${was#* } s in node): $same"
done
IFS=' '
exit $fail
