#!/usr/bin/env bash
# Registry load benchmark: requests/s and latency percentiles of authenticated API reads on
# SQLite and on PostgreSQL, same machine, same run. The server and the load generator
# (server/examples/loadgen.rs, closed loop, one keep-alive connection per client) share the
# machine's cores, so the numbers are a floor for a dedicated server.
#
#   bash bench/server/run.sh            # CONC=32 SECS=10 by default
# Needs ../shared (a dataset to list), curl and PostgreSQL binaries (server/tests/start_postgres.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
CONC=${CONC:-32}
SECS=${SECS:-10}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
cargo build --release -p genecompass-server --bin genecompass --example loadgen >&2
BIN="$CARGO_TARGET_DIR/release/genecompass"
LOAD="$CARGO_TARGET_DIR/release/examples/loadgen"
WORK=$(mktemp -d /tmp/gc-loadbench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

run_db() { # name, extra env for the server
  local name=$1 url=$2 data="$WORK/$1"
  mkdir -p "$data"
  local token
  local dbenv=()
  [ -n "$url" ] && dbenv=(DATABASE_URL="$url")
  token=$(env "${dbenv[@]}" "$BIN" --data-dir "$data" user add bench --team lab --role editor |
    sed -n 's/^API token for `bench` (shown once): //p')
  env "${dbenv[@]}" "$BIN" --data-dir "$data" serve --bind "127.0.0.1:$PORT" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/api/v1/health" >/dev/null 2>&1 && break; sleep 0.1; done
  "$BIN" upload "$ROOT/../shared/data/h5ad/wu2020_tcells_200.h5ad" --server "http://127.0.0.1:$PORT" \
    --token "$token" --name wu --state-dir "$WORK/state" >/dev/null
  for path in health datasets models; do
    local out
    out=$("$LOAD" "http://127.0.0.1:$PORT/api/v1/$path" "$token" "$CONC" "$SECS")
    echo "{\"database\": \"$name\", \"endpoint\": \"/api/v1/$path\", \"result\": $out}"
  done
  local rss
  rss=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")
  echo "{\"database\": \"$name\", \"server_peak_rss_kib\": $rss}"
  if [ "$name" = sqlite ] && [ "${BIG_GIB:-2}" != 0 ]; then
    # Memory while streaming a large upload, both ways. The bytes are zeros, so the registry
    # refuses them as unreadable at the end (422); the streaming and hashing are what is measured.
    truncate -s "${BIG_GIB:-2}G" "$WORK/big.bin"
    local t0 t1
    t0=$(date +%s.%N)
    "$BIN" upload "$WORK/big.bin" --server "http://127.0.0.1:$PORT" --token "$token" --name big \
      --state-dir "$WORK/state" >/dev/null 2>"$WORK/big.err" || true
    t1=$(date +%s.%N)
    grep -q "unreadable\|422" "$WORK/big.err" || { cat "$WORK/big.err" >&2; exit 1; }
    echo "{\"database\": \"$name\", \"upload\": \"chunked (genecompass upload)\", \"gib\": ${BIG_GIB:-2}, \"seconds\": $(echo "$t1 - $t0" | bc), \"server_peak_rss_kib\": $(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")}"
    t0=$(date +%s.%N)
    curl -sS -o /dev/null -H "Authorization: Bearer $token" -X POST -T "$WORK/big.bin" \
      -H 'Content-Type: application/octet-stream' "http://127.0.0.1:$PORT/api/v1/datasets?name=big1" || true
    t1=$(date +%s.%N)
    echo "{\"database\": \"$name\", \"upload\": \"one request (POST /datasets)\", \"gib\": ${BIG_GIB:-2}, \"seconds\": $(echo "$t1 - $t0" | bc), \"server_peak_rss_kib\": $(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")}"
    rm -f "$WORK/big.bin"
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

run_db sqlite ""
# A throwaway cluster (fsync off, as for the tests: the reads measured here do not write).
PG=$(bash server/tests/start_postgres.sh 2>"$WORK/pg.err")
run_db postgres "$PG"
STOP=$(sed -n 's/.*stop with: //p' "$WORK/pg.err")
[ -n "$STOP" ] && eval "$STOP" >/dev/null 2>&1 || true
