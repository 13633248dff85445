//! The guard against what PostgreSQL itself reads. For each statement, `EXPLAIN VERBOSE`
//! (which plans without running) shows that PostgreSQL resolves it to a call of a refused
//! function — and the guard must refuse it. Before the guard lexed statements the way
//! PostgreSQL does, these went through.

use kondate_core::WarehouseKind;
use kondate_query::check_read_only;

const ATTACKS: &[(&str, &str)] = &[
    (
        "SELECT U&\"pg\\005fread\\005ffile\"('PG_VERSION')",
        "pg_read_file",
    ),
    (
        "SELECT U&\"pg!005fread!005ffile\" UESCAPE '!' ('PG_VERSION')",
        "pg_read_file",
    ),
    (
        "SELECT ARRAY(SELECT pg_read_file('PG_VERSION'))",
        "pg_read_file",
    ),
    (
        "SELECT (SELECT ARRAY(SELECT set_config('search_path', 'evil', false)))",
        "set_config",
    ),
    (
        "SELECT * FROM pg_stat_activity a, LATERAL (SELECT pg_terminate_backend(a.pid)) x",
        "pg_terminate_backend",
    ),
    (
        "SELECT 'a\\', pg_read_file('PG_VERSION') --'",
        "pg_read_file",
    ),
];

#[tokio::test]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
async fn postgres_reads_these_as_refused_calls_and_the_guard_refuses_them() {
    let url = std::env::var("KONDATE_TEST_POSTGRES_URL").expect("KONDATE_TEST_POSTGRES_URL");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::raw_sql("SET standard_conforming_strings = on")
        .execute(&pool)
        .await
        .unwrap();
    for (sql, function) in ATTACKS {
        let plan: Vec<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN (VERBOSE) {sql}")))
                .fetch_all(&pool)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL does not accept {sql}: {e}"));
        assert!(
            plan.join("\n").contains(function),
            "PostgreSQL does not call {function} in {sql}: {plan:?}"
        );
        let refusal = check_read_only(sql, WarehouseKind::Postgres)
            .expect_err(&format!("the guard let through: {sql}"))
            .0;
        // Refused by name, or (where sqlparser cannot parse the form at all) as invalid.
        assert!(
            refusal.contains(function) || refusal.contains("not valid SQL"),
            "{sql}: {refusal}"
        );
    }
}
