#!/usr/bin/env bash
# Runs the whole test suite on the CPU (flex) backend, debug build with optimised dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/genecompass-target}"
cargo test --workspace --no-fail-fast
