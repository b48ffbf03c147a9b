# Sourced by .ci/run: starts the services the tests use, exporting their addresses.
# PostgreSQL: a throwaway cluster (the server's API tests run on SQLite and on it).
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
GENECOMPASS_TEST_POSTGRES_URL=$(bash server/tests/start_postgres.sh)
export GENECOMPASS_TEST_POSTGRES_URL
echo "PostgreSQL for tests: $GENECOMPASS_TEST_POSTGRES_URL"
export GENECOMPASS_REQUIRE_POSTGRES=1
# Slurm: a real single-node cluster for the Slurm runner's job test.
source .ci/slurm.sh
export GENECOMPASS_REQUIRE_SLURM=1
