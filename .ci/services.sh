# Sourced by .ci/run: starts the services the tests use, exporting their addresses.
# PostgreSQL: a throwaway cluster (the server's API tests run on SQLite and on it).
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
pg_started=$(mktemp)
GENECOMPASS_TEST_POSTGRES_URL=$(bash server/tests/start_postgres.sh 2>"$pg_started") \
  || { cat "$pg_started" >&2; exit 1; }
export GENECOMPASS_TEST_POSTGRES_URL
echo "PostgreSQL for tests: $GENECOMPASS_TEST_POSTGRES_URL"
# Stopped and removed when the run ends, pass or fail: on a machine that stays up (a developer's,
# a warm CI runner) each run had left a cluster behind.
pg_dir=$(sed -n 's/^started PostgreSQL in \(\S*\) on port.*/\1/p' "$pg_started")
rm -f "$pg_started"
stop_postgres() {
  if [ -n "${pg_dir:-}" ] && [ -d "$pg_dir/data" ]; then
    local pgbin
    pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    pgbin=${pgbin:-$(dirname "$(command -v pg_ctl)")}
    if [ "$(id -u)" = 0 ]; then
      runuser -u postgres -- "$pgbin/pg_ctl" -D "$pg_dir/data" stop -m fast >/dev/null 2>&1 || true
    else
      "$pgbin/pg_ctl" -D "$pg_dir/data" stop -m fast >/dev/null 2>&1 || true
    fi
    rm -rf "$pg_dir"
  fi
}
trap stop_postgres EXIT
export GENECOMPASS_REQUIRE_POSTGRES=1
# Slurm: a real single-node cluster for the Slurm runner's job test.
source .ci/slurm.sh
export GENECOMPASS_REQUIRE_SLURM=1
# S3: the blob-store tests start moto's standalone S3 server on loopback themselves; make sure
# it is importable (PyPI), in a venv when the system Python lacks it.
if ! python3 -c 'import moto.server' 2>/dev/null; then
  if ! command -v python3 >/dev/null || ! python3 -m venv --help >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
  fi
  python3 -m venv /tmp/gc-moto-venv
  /tmp/gc-moto-venv/bin/pip install -q 'moto[server]==5.2.1'
  export GENECOMPASS_TEST_PYTHON=/tmp/gc-moto-venv/bin/python
fi
