#!/usr/bin/env bash
# Runs the whole test suite on the CPU (flex) backend, debug build with optimised dependencies.
#
# Every build of this project's binaries for tests goes through `cargo test --workspace`, so
# that they all share one feature unification: `cargo build -p genecompass-trainer` alone
# unifies features differently and rebuilds some 130 crates (11 minutes on a cold 2-core
# machine). The server's job tests and the browser tests reuse the binaries built here.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/genecompass-target}"
cargo test --workspace --no-run
export GENECOMPASS_TRAINER_BIN="$CARGO_TARGET_DIR/debug/genecompass-train"
cargo test --workspace --no-fail-fast
