#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the server's API tests and prints its URL.
#
#   export GENECOMPASS_TEST_POSTGRES_URL=$(server/tests/start_postgres.sh)
#   cargo test -p genecompass-server
#   pg_ctl -D /tmp/genecompass-pg.XXXX/data stop     # printed on stderr
#
# The cluster lives in a fresh /tmp/genecompass-pg.* folder, listens on 127.0.0.1 on a free
# port with trust authentication (superuser `gc`, which the tests need to CREATE DATABASE),
# and runs with fsync off: test use only. Run as root it drops to the `postgres` user.
set -euo pipefail

pgbin="${PGBIN:-}"
if [[ -z "$pgbin" ]]; then
    pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
fi
if [[ -z "$pgbin" || ! -x "$pgbin/initdb" ]]; then
    if command -v initdb >/dev/null; then
        pgbin=$(dirname "$(command -v initdb)")
    else
        echo "initdb not found: apt-get install -y postgresql (or set PGBIN)" >&2
        exit 1
    fi
fi

# A free port: nothing answers on it.
port="${PGPORT:-}"
if [[ -z "$port" ]]; then
    for _ in $(seq 1 50); do
        candidate=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
            port=$candidate
            break
        fi
    done
fi
[[ -n "$port" ]] || { echo "no free port found" >&2; exit 1; }

dir=$(mktemp -d /tmp/genecompass-pg.XXXXXX)
run=()
if [[ "$(id -u)" == 0 ]]; then
    chown postgres: "$dir"
    run=(runuser -u postgres --)
fi

"${run[@]}" "$pgbin/initdb" -D "$dir/data" -U gc --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
"${run[@]}" "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
"${run[@]}" "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U gc genecompass_test

echo "started PostgreSQL in $dir on port $port; stop with: ${run[*]} $pgbin/pg_ctl -D $dir/data stop" >&2
echo "postgres://gc@127.0.0.1:$port/genecompass_test"
