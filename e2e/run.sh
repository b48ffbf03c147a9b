#!/usr/bin/env bash
# End-to-end browser tests: builds the web UI, the server and the CLI, installs the npm
# dependencies, then runs e2e/tests/*.test.mjs against headless Chromium.
# Screenshots, the annotation CSV and browser console output land in e2e/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
SECONDS=0
step() { echo "== [$((SECONDS / 60))m$((SECONDS % 60))s] $*"; }

if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  echo "error: no Chromium at ${CHROMIUM:-/usr/bin/chromium}; apt-get install -y chromium (or set CHROMIUM)" >&2
  exit 1
fi
if [ ! -x "${FIREFOX:-/usr/bin/firefox-esr}" ]; then
  echo "error: no Firefox at ${FIREFOX:-/usr/bin/firefox-esr}; apt-get install -y firefox-esr (or set FIREFOX)" >&2
  exit 1
fi
if [ ! -d "$ROOT/../shared/data" ]; then
  echo "error: ../shared (fixtures and real data) must sit beside the checkout" >&2
  exit 1
fi

step "web UI"
bash scripts/build-web.sh
step "server and CLI"
# The binaries of `cargo test --workspace` (no-op after scripts/test.sh): `cargo build -p ...`
# would unify features differently and rebuild some 130 crates.
cargo test --workspace --no-run
step "npm ci"
(cd e2e && npm ci --no-audit --no-fund)
step "browser tests"
rm -rf e2e/artifacts
mkdir -p e2e/artifacts
cd e2e
node --test --test-concurrency=1 tests/
step "done"
