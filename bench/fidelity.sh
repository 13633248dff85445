#!/usr/bin/env bash
# What the embedded warehouse's PostgreSQL fidelity costs: the same two queries through
# `kondate query` (in-process: guard, planning, execution, result parts, reading them back)
# with two builds of kondate, alternating, on the same data:
#   - a 10-million-row SELECT (id bigint, 65-character text, double, int, timestamp; as in
#     bench/query-throughput.sh);
#   - a TPC-H-like aggregate over the demo's ingredient lines (`kondate demo`'s
#     recipes.recipe_ingredients joined to recipes.recipes): join, filter, GROUP BY two
#     keys, count, count(DISTINCT), sum, avg, min/max, ORDER BY;
#   - numeric quotients over the 10 million rows: `numeric` division, each value printed at
#     its own display scale (the per-value scales of `pgscale`).
# Prints a Markdown table of the median of ROUNDS runs (and min–max) per build.
#
# Usage: bench/fidelity.sh BEFORE_KONDATE AFTER_KONDATE [ROWS] [ROUNDS]
#   (release builds; e.g. one from the commit before the fidelity work, one from HEAD)
# Needs PostgreSQL at KONDATE_BENCH_PG to generate the 10-million-row table.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/events.sh
BEFORE=$(realpath "$1")
AFTER=$(realpath "$2")
ROWS=${3:-10000000}
ROUNDS=${4:-3}
PG=${KONDATE_BENCH_PG:-postgres://postgres@127.0.0.1:5432/test}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "generating $ROWS rows…" >&2
make_events "$PG" fidbench "$ROWS"
psql "$PG" -q -c "\\copy fidbench.events TO '$WORK/events.csv' CSV HEADER"
psql "$PG" -q -c "DROP SCHEMA fidbench CASCADE"

echo "the demo's project (data, labels, models)…" >&2
"$AFTER" demo "$WORK/proj" > "$WORK/demo.log" 2>&1
( cd "$WORK/proj" && "$AFTER" warehouse load bench.events "$WORK/events.csv" \
    --schema "$EVENTS_LOAD_SCHEMA" >&2 )
rm "$WORK/events.csv"

SELECT_SQL="SELECT id, body, amount, category, at FROM bench.events"
AGG_SQL="SELECT r.servings, i.position % 4 AS slot, count(*) AS lines,
  count(DISTINCT i.name) AS names, sum(r.cook_minutes) AS minutes, avg(r.rating) AS rating,
  min(i.amount) AS least, max(r.published_at) AS latest
  FROM recipes.recipe_ingredients i JOIN recipes.recipes r ON r.id = i.recipe_id
  WHERE r.is_public AND r.published_at < TIMESTAMP '2030-01-01 00:00:00'
  GROUP BY r.servings, i.position % 4 ORDER BY 1, 2"
QUOTIENT_SQL="SELECT id, category / 7.0 AS q, (id % 1000) / 3.0 AS r FROM bench.events"

declare -A TIMES
run() { # build-label binary query-label sql
  local start end
  start=$(date +%s.%N)
  (cd "$WORK/proj" && "$2" query --out "$WORK/out.csv" "$4" >/dev/null)
  end=$(date +%s.%N)
  TIMES["$1|$3"]+="$(echo "$end - $start" | bc -l) "
}
for round in $(seq "$ROUNDS"); do
  echo "round $round…" >&2
  for build in before after; do
    bin=$BEFORE
    [ "$build" = after ] && bin=$AFTER
    run "$build" "$bin" select "$SELECT_SQL"
    run "$build" "$bin" aggregate "$AGG_SQL"
    run "$build" "$bin" quotient "$QUOTIENT_SQL"
  done
done

echo "| query | build | median s | min–max s |"
echo "|---|---|---:|---:|"
for q in select aggregate quotient; do
  for build in before after; do
    sorted=$(echo "${TIMES[$build|$q]}" | tr ' ' '\n' | grep . | sort -n)
    n=$(echo "$sorted" | wc -l)
    median=$(echo "$sorted" | sed -n "$(( (n + 1) / 2 ))p")
    printf '| %s | %s | %.2f | %.2f–%.2f |\n' "$q" "$build" "$median" \
      "$(echo "$sorted" | head -1)" "$(echo "$sorted" | tail -1)"
  done
done
