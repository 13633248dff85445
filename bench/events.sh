# The benchmark table shared by bench/query-throughput.sh and bench/fidelity.sh, sourced by
# both: `make_events PG_URL SCHEMA ROWS` creates SCHEMA.events in PostgreSQL (ids, a
# 65-character text, a double, an int, a timestamp; about 100 bytes a row as CSV), and
# EVENTS_LOAD_SCHEMA is its `kondate warehouse load --schema`.
EVENTS_LOAD_SCHEMA='id:bigint,body:text,amount:double,category:int,at:timestamp'
make_events() {
  psql "$1" -q -v ON_ERROR_STOP=1 <<SQL
DROP SCHEMA IF EXISTS $2 CASCADE;
CREATE SCHEMA $2;
CREATE TABLE $2.events AS
  SELECT g::bigint AS id,
         md5(g::text) || ' ' || md5((g * 7)::text) AS body,
         ((g % 100000) * 1.25)::double precision AS amount,
         (g % 97)::int AS category,
         timestamp '2024-01-01' + g * interval '1 second' AS at
  FROM generate_series(1, $3) g;
ANALYZE $2.events;
SQL
}
