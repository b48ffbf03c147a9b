#!/usr/bin/env bash
# Adds a classifier to the web UI's model list (DIST/models/index.json), with the SHA-256 of
# each file: the page checks downloads against it and caches them under it.
#
#   scripts/add-web-model.sh DIST ID "Display name" MODEL_DIR TOKEN_DICT [MEDIANS]
#
# MODEL_DIR holds config.json and model.safetensors (convert a pytorch_model.bin first with
# `genecompass-train convert`); TOKEN_DICT is the model's token dictionary (.json or .pickle);
# MEDIANS the gene medians it was trained with, if any.
set -euo pipefail
if [ $# -lt 5 ]; then
  sed -n '2,10p' "$0" >&2
  exit 2
fi
DIST=$1 ID=$2 NAME=$3 MODEL=$4 DICT=$5 MEDIANS=${6:-}
case "$ID" in *[!A-Za-z0-9._-]*) echo "error: ID must be [A-Za-z0-9._-]" >&2; exit 2 ;; esac
for f in "$MODEL/config.json" "$MODEL/model.safetensors" "$DICT" ${MEDIANS:+"$MEDIANS"}; do
  [ -f "$f" ] || { echo "error: $f not found" >&2; exit 1; }
done
OUT="$DIST/models/$ID"
mkdir -p "$OUT"
cp "$MODEL/config.json" "$MODEL/model.safetensors" "$OUT/"
cp "$DICT" "$OUT/$(basename "$DICT")"
[ -z "$MEDIANS" ] || cp "$MEDIANS" "$OUT/$(basename "$MEDIANS")"

ref() { # file -> {"url","sha256","size"} relative to models/index.json
  local sha size
  sha=$(sha256sum "$OUT/$1" | cut -d' ' -f1)
  size=$(stat -c %s "$OUT/$1")
  printf '{"url": "%s/%s", "sha256": "%s", "size": %s}' "$ID" "$1" "$sha" "$size"
}
json_escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
{
  printf '{"id": "%s", "name": "%s",\n' "$ID" "$(json_escape "$NAME")"
  printf ' "config": %s,\n' "$(ref config.json)"
  printf ' "weights": %s,\n' "$(ref model.safetensors)"
  printf ' "token_dict": %s' "$(ref "$(basename "$DICT")")"
  [ -z "$MEDIANS" ] || printf ',\n "medians": %s' "$(ref "$(basename "$MEDIANS")")"
  printf '}\n'
} >"$OUT/model.json"

# Rebuild the list from every model folder.
first=1
{
  printf '{"models": [\n'
  for m in "$DIST"/models/*/model.json; do
    [ $first = 1 ] || printf ',\n'
    first=0
    cat "$m"
  done
  printf ']}\n'
} >"$DIST/models/index.json"
echo "added $ID to $DIST/models/index.json"
