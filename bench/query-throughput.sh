#!/usr/bin/env bash
# Query API throughput: SELECT-to-last-row for the Rust client, the public Python
# queuery-client and, as the baseline, psql's \copy, over one table of ROWS rows
# (ids, text, numbers, timestamps; ~110 bytes a row as CSV) held both in the embedded
# warehouse and in PostgreSQL. Prints a Markdown table with rows/s and peak memory.
#
# Usage: bench/query-throughput.sh [ROWS]      (default 10000000)
# Needs: a release build of kondate and of the read_all example
#   cargo build --release -p kondate && cargo build --release -p kondate-client --example read_all
# the Python environment of .ci/run (queuery-client), PostgreSQL at KONDATE_BENCH_PG.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/events.sh
ROWS=${1:-10000000}
TARGET=${CARGO_TARGET_DIR:-target}
KONDATE=$TARGET/release/kondate
READ_ALL=$TARGET/release/examples/read_all
PY=${KONDATE_CI_VENV:-/var/cache/kondate/venv}/bin/python
PG=${KONDATE_BENCH_PG:-postgres://postgres@127.0.0.1:5432/test}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
SQL="SELECT id, body, amount, category, at FROM bench.events"
measure() { # label, command… → "label|rows|seconds|peak MB"
  local label=$1; shift
  local out
  out=$(/usr/bin/time -f '%e %M' -o "$WORK/time" "$@")
  read -r wall kb < "$WORK/time"
  local rows secs
  rows=$(echo "$out" | sed -n 's/.*"rows": *\([0-9]*\).*/\1/p')
  secs=$(echo "$out" | sed -n 's/.*"seconds": *\([0-9.]*\).*/\1/p')
  [ -n "$rows" ] || { rows=$ROWS; secs=$wall; }
  printf '| %s | %s | %.1f | %.0f | %.0f |\n' "$label" "$rows" "$secs" "$(echo "$rows / $secs" | bc -l)" "$(echo "$kb / 1024" | bc -l)"
}

echo "generating $ROWS rows in PostgreSQL…" >&2
make_events "$PG" bench "$ROWS"
psql "$PG" -q -c "\\copy bench.events TO '$WORK/events.csv' CSV HEADER"
echo "CSV: $(du -h "$WORK/events.csv" | cut -f1)" >&2

"$KONDATE" init "$WORK/proj" >/dev/null
( cd "$WORK/proj" && "$KONDATE" warehouse load bench.events "$WORK/events.csv" \
    --schema "$EVENTS_LOAD_SCHEMA" >&2 )
rm "$WORK/events.csv"

serve() { # backend port → starts kondate serve, exports credentials
  local backend=$1 port=$2 env=()
  [ "$backend" = postgres ] && env=(KONDATE_WAREHOUSE_TYPE=postgres KONDATE_WAREHOUSE_URL=$PG)
  # The same embedded warehouse with result parts compressed at gzip level 1 (the default
  # for remote stores; a local store's default is level 0), to show what compression costs.
  [ "$backend" = embedded-gzip1 ] && env=(KONDATE_QUERY_GZIP_LEVEL=1)
  local secret
  secret=$(cd "$WORK/proj" && env "${env[@]}" "$KONDATE" tokens create "bench-$backend" --format json | sed -n 's/.*"secret": "\(.*\)".*/\1/p')
  (cd "$WORK/proj" && exec env "${env[@]}" "$KONDATE" serve --listen "127.0.0.1:$port" 2>"$WORK/serve-$backend.log") &
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  export KONDATE_ENDPOINT=http://127.0.0.1:$port QUEUERY_ENDPOINT=http://127.0.0.1:$port
  export KONDATE_TOKEN=bench-$backend KONDATE_TOKEN_SECRET=$secret QUEUERY_TOKEN=bench-$backend QUEUERY_TOKEN_SECRET=$secret
}

echo "| reader | rows | seconds | rows/s | peak MB |"
echo "|---|---:|---:|---:|---:|"
serve embedded 7801
measure "Rust client, embedded warehouse" "$READ_ALL" "$SQL"
measure "Rust client (Arrow batches), embedded warehouse" "$READ_ALL" --arrow "$SQL"
measure "Python queuery-client, embedded warehouse" "$PY" bench/read_queuery.py "$SQL"
serve embedded-gzip1 7803
measure "Rust client, embedded warehouse, parts at gzip level 1" "$READ_ALL" "$SQL"
serve postgres 7802
measure "Rust client, PostgreSQL warehouse" "$READ_ALL" "$SQL"
measure "Python queuery-client, PostgreSQL warehouse" "$PY" bench/read_queuery.py "$SQL"
measure "baseline: psql \\copy from PostgreSQL" sh -c "psql '$PG' -c '\\copy ($SQL) TO STDOUT' > /dev/null"
