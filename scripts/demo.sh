#!/usr/bin/env bash
# From a fresh machine to a running GeneCompass registry and web app on the embedded defaults:
# builds the binaries (and the browser bundle when its tools are present), trains a small
# cell-type classifier on the bundled demo cells at first start, registers both, and serves.
#
#   bash scripts/demo.sh                  # http://127.0.0.1:8080
#   GENECOMPASS_BIND=0.0.0.0:9000 GENECOMPASS_DATA_DIR=/srv/gc bash scripts/demo.sh
#
# Re-running reuses everything already built, trained and registered.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DATA_DIR="${GENECOMPASS_DATA_DIR:-$ROOT/genecompass-data}"
BIND="${GENECOMPASS_BIND:-127.0.0.1:8080}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$CARGO_TARGET_DIR/release"

if ! command -v cargo >/dev/null; then
  echo "error: cargo not found; install Rust with rustup (https://rustup.rs), then re-run" >&2
  exit 1
fi

echo "== building genecompass (server) and genecompass-train (CLI), release, CPU backend"
cargo build --release --locked -p genecompass-server -p genecompass-trainer

if [ -f web/Cargo.toml ] && [ -f scripts/build-web.sh ]; then
  echo "== building the browser app"
  bash scripts/build-web.sh
fi

mkdir -p "$DATA_DIR/demo"
DEMO_RUN="$DATA_DIR/demo/annotator-run"
if [ ! -f "$DEMO_RUN/model/config.json" ]; then
  echo "== first start: training the demo annotator on demo/baron_mouse_pancreas_822.h5ad"
  echo "   (822 mouse pancreas cells, 13 types; about 2 minutes on 2 CPU cores)"
  rm -rf "$DEMO_RUN"
  "$BIN/genecompass-train" finetune \
    --data demo/baron_mouse_pancreas_822.h5ad --label-column cell_type \
    --config tiny --epochs 12 --batch-size 16 --lr 5e-3 --warmup-steps 20 \
    --max-genes 512 --seed 42 --output "$DEMO_RUN" >"$DATA_DIR/demo/train.log"
  echo "   test metrics (model vs logistic-regression baseline on the same split):"
  python3 - "$DEMO_RUN/metrics.json" <<'PY' 2>/dev/null || true
import json, sys
m = json.load(open(sys.argv[1]))
t, b = m["test"], m["baseline"]["test"]
print(f"   model    accuracy {t['accuracy']:.3f}  macro-F1 {t['macro_f1']:.3f}")
print(f"   baseline accuracy {b['accuracy']:.3f}  macro-F1 {b['macro_f1']:.3f}")
PY
fi

if [ -d web/dist ]; then
  # The browser reads the official layout (model.safetensors); the page lists it by hash.
  WEB_MODEL="$DATA_DIR/demo/annotator-web"
  [ -f "$WEB_MODEL/model.safetensors" ] ||
    "$BIN/genecompass-train" convert --checkpoint "$DEMO_RUN/model" --output "$WEB_MODEL" --format official
  MEDIANS=""
  [ -f "$WEB_MODEL/gene_medians.json" ] && MEDIANS="$WEB_MODEL/gene_medians.json"
  bash scripts/add-web-model.sh web/dist demo-pancreas "Demo: mouse pancreas cell types (tiny, 822 cells)" \
    "$WEB_MODEL" "$WEB_MODEL/token_dict.json" $MEDIANS >/dev/null
fi

CREDS="$DATA_DIR/demo/credentials.txt"
if [ ! -f "$CREDS" ]; then
  echo "== first start: creating user \`demo\` (admin of team \`demo\`) and registering the demo model"
  umask 077
  "$BIN/genecompass" --data-dir "$DATA_DIR" user add demo --team demo --role admin >"$CREDS"
  "$BIN/genecompass" --data-dir "$DATA_DIR" import-checkpoint "$DEMO_RUN/model" \
    --team demo --user demo --name demo-pancreas-annotator --alias production
fi
echo "== sign-in for the web app and the API (also in $CREDS):"
sed 's/^/   /' "$CREDS"
echo "== serving; demo cells to annotate: $ROOT/demo/baron_mouse_pancreas_822.h5ad"
WEB_ARGS=()
[ -d web/dist ] && WEB_ARGS=(--web-dir "$ROOT/web/dist")
exec "$BIN/genecompass" --data-dir "$DATA_DIR" serve --bind "$BIND" "${WEB_ARGS[@]}"
