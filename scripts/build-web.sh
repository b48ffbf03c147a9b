#!/usr/bin/env bash
# Builds the browser UI into web/dist: the genecompass-web crate for wasm32 (release), the JS
# glue from wasm-bindgen-cli (pinned to the wasm-bindgen crate version in Cargo.lock, since glue
# and module must match), and the static files. No trunk/cargo-leptos: two commands suffice.
#
#   scripts/build-web.sh            # build
#   WEB_DIST=/tmp/dist scripts/build-web.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DIST="${WEB_DIST:-$ROOT/web/dist}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

# The version wasm-bindgen-cli must have: the wasm-bindgen crate's, from Cargo.lock.
WB_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ -z "$WB_VERSION" ]; then
  echo "error: no wasm-bindgen in Cargo.lock" >&2
  exit 1
fi
if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $WB_VERSION"; then
  echo "== installing wasm-bindgen-cli $WB_VERSION"
  # --locked first; its lock file has pinned a crate version the registry no longer offers
  # (webpki-roots 1.0.11 for 0.2.130), in which case resolve afresh.
  cargo install --locked wasm-bindgen-cli --version "$WB_VERSION" ||
    cargo install wasm-bindgen-cli --version "$WB_VERSION"
fi
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true

echo "== cargo build -p genecompass-web (wasm32, release)"
cargo build -p genecompass-web --target wasm32-unknown-unknown --release

echo "== wasm-bindgen --target web -> $DIST"
rm -rf "$DIST"
mkdir -p "$DIST"
wasm-bindgen --target web --no-typescript --remove-name-section --out-dir "$DIST" \
  "$TARGET_DIR/wasm32-unknown-unknown/release/genecompass_web.wasm"
cp web/static/index.html web/static/worker.js web/static/style.css "$DIST/"
mkdir -p "$DIST/models"
# An empty model list unless one is added (scripts/add-web-model.sh).
[ -f "$DIST/models/index.json" ] || echo '{"models":[]}' >"$DIST/models/index.json"
size=$(stat -c %s "$DIST/genecompass_web_bg.wasm")
gz=$(gzip -9 -c "$DIST/genecompass_web_bg.wasm" | wc -c)
echo "== done: $DIST (wasm $((size / 1024)) KiB, $((gz / 1024)) KiB gzip'd)"
