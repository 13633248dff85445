//! The read-only guard: a statement reaches the warehouse only if a real SQL parser sees
//! exactly one SELECT (or WITH … SELECT) with nothing in it that writes or has side effects.
//!
//! Refused: DDL and DML anywhere (including data-modifying CTEs), `SELECT … INTO`, row
//! locks (`FOR UPDATE`), a second statement, and functions that read files, write large
//! objects, open connections or change settings.
//!
//! For PostgreSQL and Redshift the statement is also lexed the way the warehouse lexes it
//! ([`crate::pglex`]) and every function call found that way is checked too, so that a
//! form sqlparser reads differently (a Unicode-escaped identifier, a backslash in a string)
//! cannot hide one. PostgreSQL sessions run with `standard_conforming_strings = on`; on
//! Redshift, whose setting kondate does not control, a statement that lexes differently with
//! backslash escapes on and off is refused. The query also runs inside a READ ONLY
//! transaction as a role checked at start not to be a superuser or able to read server
//! files, so the guard is not the only line of defence.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, ObjectName, Query, SetExpr, Statement, TableFactor, Visit, Visitor,
};
use datafusion::sql::sqlparser::dialect::{Dialect, PostgreSqlDialect, RedshiftSqlDialect};
use datafusion::sql::sqlparser::parser::Parser;
use kondate_core::WarehouseKind;

/// Why a statement was refused; the message says what and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// What the guard learned about an accepted statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The statement text, trimmed, without a trailing `;`.
    pub sql: String,
    /// True when the top-level query has an ORDER BY.
    pub ordered: bool,
}

/// Function names refused wherever they appear (lower case; `*` ends a prefix pattern).
const FORBIDDEN_FUNCTIONS: &[&str] = &[
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_*",
    "pg_stat_file",
    "pg_file_*",
    "pg_logdir_ls",
    "lo_*",
    "dblink*",
    "set_config",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_switch_wal",
    "pg_create_*",
    "pg_drop_*",
    "pg_replication_*",
    "pg_logical_*",
    "pg_advisory_*",
    "pg_try_advisory_*",
    "pg_notify",
    "pg_promote",
    "pg_stat_reset*",
    "pg_import_system_collations",
    "pg_backup_*",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_wal_replay_*",
    "pg_sleep*",
    "nextval",
    "setval",
    "query_to_xml*",
    "cursor_to_xml*",
    "query_to_xmlschema",
    "table_to_xml*",
    "schema_to_xml*",
    "database_to_xml*",
    "txid_current",
    "pg_current_xact_id",
];

fn forbidden(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let bare = name.rsplit('.').next().unwrap_or(&name).trim_matches('"');
    FORBIDDEN_FUNCTIONS
        .iter()
        .any(|p| match p.strip_suffix('*') {
            Some(prefix) => bare.starts_with(prefix),
            None => bare == *p,
        })
}

fn dialect(kind: WarehouseKind) -> Box<dyn Dialect> {
    match kind {
        // The embedded engine reads statements as PostgreSQL does (`^`, `#`).
        WarehouseKind::Embedded | WarehouseKind::Postgres => Box::new(PostgreSqlDialect {}),
        WarehouseKind::Redshift => Box::new(RedshiftSqlDialect {}),
    }
}

/// Check that `sql` is a single read-only query for the given warehouse.
pub fn check_read_only(sql: &str, kind: WarehouseKind) -> Result<Checked, Refusal> {
    let trimmed = sql
        .trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    if trimmed.is_empty() {
        return Err(Refusal(
            "the query is empty; send a SELECT statement in `q`".into(),
        ));
    }
    // Redshift's APPROXIMATE (before COUNT(DISTINCT …)) parses in no dialect: the guard
    // reads the statement without it; Redshift receives it as written, and the embedded
    // warehouse takes it off the same way.
    let approximate_off = match kind {
        WarehouseKind::Postgres => None,
        _ => kondate_warehouse::without_approximate(trimmed),
    };
    let parsed = approximate_off.as_deref().unwrap_or(trimmed);
    let statements = Parser::parse_sql(dialect(kind).as_ref(), parsed)
        .map_err(|e| Refusal(format!("the query is not valid SQL: {e}")))?;
    let stmt = match statements.as_slice() {
        [one] => one,
        [] => {
            return Err(Refusal(
                "the query is empty; send a SELECT statement in `q`".into(),
            ));
        }
        many => {
            return Err(Refusal(format!(
                "only one statement is allowed, but the query has {}; send them one at a time",
                many.len()
            )));
        }
    };
    let Statement::Query(query) = stmt else {
        return Err(Refusal(format!(
            "only SELECT queries are allowed, but this is a {} statement",
            statement_kind(stmt)
        )));
    };
    check_query(query)?;
    let mut visitor = SideEffects;
    if let ControlFlow::Break(r) = stmt.visit(&mut visitor) {
        return Err(r);
    }
    check_as_the_warehouse_lexes(parsed, kind)?;
    Ok(Checked {
        sql: trimmed.to_string(),
        ordered: query.order_by.is_some(),
    })
}

/// Walks every expression and table reference for forbidden functions (scalar calls and
/// table functions such as `dblink(…)` in FROM) and for data-modifying subqueries.
struct SideEffects;

fn refuse_function(name: &ObjectName) -> ControlFlow<Refusal> {
    let name = name.to_string();
    if forbidden(&name) {
        return ControlFlow::Break(Refusal(format!(
            "the function `{name}` is not allowed: it has side effects or reaches outside the \
             database"
        )));
    }
    ControlFlow::Continue(())
}

impl Visitor for SideEffects {
    type Break = Refusal;

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<Refusal> {
        if let Expr::Function(f) = e {
            refuse_function(&f.name)?;
        }
        if let Expr::Subquery(q)
        | Expr::Exists { subquery: q, .. }
        | Expr::InSubquery { subquery: q, .. } = e
            && let Err(r) = check_query(q)
        {
            return ControlFlow::Break(r);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<Refusal> {
        match t {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            }
            | TableFactor::Function { name, .. } => refuse_function(name),
            TableFactor::Derived { subquery, .. } => match check_query(subquery) {
                Ok(()) => ControlFlow::Continue(()),
                Err(r) => ControlFlow::Break(r),
            },
            _ => ControlFlow::Continue(()),
        }
    }
}

/// Lex `sql` as PostgreSQL (or Redshift) does and refuse a call of a refused function
/// anywhere, or a statement that cannot be read the same way.
fn check_as_the_warehouse_lexes(sql: &str, kind: WarehouseKind) -> Result<(), Refusal> {
    let unreadable = |e: crate::pglex::LexError| {
        Refusal(format!(
            "the query cannot be read the way the warehouse reads it: {e}; check its quotes and comments"
        ))
    };
    let tokens = match kind {
        WarehouseKind::Embedded => return Ok(()),
        // kondate's PostgreSQL sessions force standard_conforming_strings = on.
        WarehouseKind::Postgres => crate::pglex::tokens(sql, false).map_err(unreadable)?,
        WarehouseKind::Redshift => {
            let standard = crate::pglex::tokens(sql, false).map_err(unreadable)?;
            let escaped = crate::pglex::tokens(sql, true).map_err(unreadable)?;
            if standard != escaped {
                return Err(Refusal(
                    "the query reads differently depending on whether backslashes in strings \
                     are escapes; write a literal backslash as `\\\\` in an E'' string, or \
                     avoid `\\'` in strings"
                        .into(),
                ));
            }
            standard
        }
    };
    for name in crate::pglex::called_functions(&tokens) {
        if forbidden(&name) {
            return Err(Refusal(format!(
                "the function `{name}` is not allowed: it has side effects or reaches outside \
                 the database"
            )));
        }
    }
    Ok(())
}

fn check_query(q: &Query) -> Result<(), Refusal> {
    if let Some(with) = &q.with {
        for cte in &with.cte_tables {
            check_query(&cte.query)
                .map_err(|r| Refusal(format!("in WITH `{}`: {}", cte.alias.name, r.0)))?;
        }
    }
    if !q.locks.is_empty() {
        return Err(Refusal(
            "row locks (FOR UPDATE / FOR SHARE) are not allowed in read-only queries".into(),
        ));
    }
    check_set_expr(&q.body)
}

fn check_set_expr(body: &SetExpr) -> Result<(), Refusal> {
    match body {
        SetExpr::Select(s) => {
            if s.into.is_some() {
                return Err(Refusal(
                    "SELECT … INTO creates a table and is not allowed; remove the INTO clause"
                        .into(),
                ));
            }
            Ok(())
        }
        SetExpr::Query(q) => check_query(q),
        SetExpr::SetOperation { left, right, .. } => {
            check_set_expr(left)?;
            check_set_expr(right)
        }
        SetExpr::Values(_) | SetExpr::Table(_) => Ok(()),
        SetExpr::Insert(_) => Err(Refusal("INSERT is not allowed in read-only queries".into())),
        SetExpr::Update(_) => Err(Refusal("UPDATE is not allowed in read-only queries".into())),
        SetExpr::Delete(_) => Err(Refusal("DELETE is not allowed in read-only queries".into())),
        SetExpr::Merge(_) => Err(Refusal("MERGE is not allowed in read-only queries".into())),
    }
}

fn statement_kind(stmt: &Statement) -> String {
    // The first keywords of the statement's own rendering name its kind (e.g. `DROP TABLE`).
    let text = stmt.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    let first = words
        .first()
        .copied()
        .unwrap_or("unknown")
        .to_ascii_uppercase();
    match first.as_str() {
        "CREATE" | "DROP" | "ALTER" | "TRUNCATE" | "GRANT" | "REVOKE" => {
            format!(
                "{first} {}",
                words.get(1).copied().unwrap_or("").to_ascii_uppercase()
            )
        }
        _ => first,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG: WarehouseKind = WarehouseKind::Postgres;

    #[test]
    fn accepts_read_only_queries() {
        for sql in [
            "SELECT 1",
            "select * from recipes.recipes where id = 3;",
            "WITH a AS (SELECT 1 AS x) SELECT x FROM a",
            "SELECT a FROM t UNION ALL SELECT b FROM u",
            "SELECT count(*) FROM t WHERE id IN (SELECT id FROM u)",
            "SELECT lower(title), now() FROM t -- a comment; DROP TABLE t",
            "VALUES (1), (2)",
            // A table whose name looks like a forbidden function is still a table.
            "SELECT * FROM lo_items JOIN pg_stat_activity_copy USING (id)",
        ] {
            check_read_only(sql, PG).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    #[test]
    fn refuses_with_a_message_naming_what() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("SELEC 1", "not valid SQL"),
            ("DROP TABLE recipes", "DROP TABLE"),
            ("CREATE TABLE x (a int)", "CREATE TABLE"),
            ("DELETE FROM recipes", "DELETE"),
            ("UPDATE recipes SET a = 1", "UPDATE"),
            ("INSERT INTO t VALUES (1)", "INSERT"),
            ("TRUNCATE recipes", "TRUNCATE"),
            ("SELECT 1; SELECT 2", "only one statement"),
            ("SELECT 1; DROP TABLE t", "only one statement"),
            (
                "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
                "DELETE",
            ),
            (
                "WITH u AS (UPDATE t SET a = 1 RETURNING a) SELECT * FROM u",
                "UPDATE",
            ),
            (
                "WITH i AS (INSERT INTO t VALUES (1) RETURNING *) SELECT 1",
                "INSERT",
            ),
            ("SELECT * INTO newtable FROM t", "INTO"),
            ("SELECT * FROM t FOR UPDATE", "row locks"),
            ("COPY t TO '/tmp/x'", "COPY"),
            ("SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
            ("SELECT lo_export(1, '/tmp/x')", "lo_export"),
            (
                "SELECT * FROM dblink('host=evil', 'select 1') AS t(a int)",
                "dblink",
            ),
            ("SELECT set_config('search_path', 'x', false)", "set_config"),
            ("SELECT pg_catalog.pg_read_file('x')", "pg_read_file"),
            (
                "SELECT query_to_xml('delete from t', true, true, '')",
                "query_to_xml",
            ),
            ("SELECT nextval('s')", "nextval"),
            (
                "SELECT * FROM t WHERE EXISTS (SELECT pg_sleep(100))",
                "pg_sleep",
            ),
            ("SELECT (SELECT setval('s', 1))", "setval"),
            ("EXPLAIN ANALYZE DELETE FROM t", "EXPLAIN"),
            ("SET search_path = evil", "SET"),
            ("CALL do_things()", "CALL"),
        ];
        for (sql, needle) in cases {
            let err = check_read_only(sql, PG).expect_err(sql).0;
            assert!(
                err.contains(needle),
                "{sql:?}: `{err}` does not mention `{needle}`"
            );
        }
    }

    /// Forms sqlparser does not read the way PostgreSQL does: each must be refused (before
    /// the lexer was added, each passed the guard or was read as something harmless).
    #[test]
    fn refuses_calls_hidden_from_the_parser() {
        let cases: &[&str] = &[
            // A Unicode-escaped identifier: PostgreSQL reads pg_read_file.
            "SELECT U&\"pg\\005fread\\005ffile\"('/etc/passwd')",
            "SELECT U&\"pg!005fread!005ffile\" UESCAPE '!' ('/etc/passwd')",
            "SELECT * FROM U&\"dblink\"('host=evil', 'select 1') AS t(a int)",
            // A call inside ARRAY(…), a scalar subquery, a lateral function.
            "SELECT ARRAY(SELECT pg_read_file('/etc/passwd'))",
            "SELECT (SELECT ARRAY(SELECT set_config('search_path', 'evil', false)))",
            "SELECT * FROM t, LATERAL (SELECT pg_terminate_backend(pid) FROM t) x",
            // With standard_conforming_strings = on, 'a\' ends the string here.
            "SELECT 'a\\', pg_read_file('/etc/passwd') --'",
        ];
        for sql in cases {
            assert!(
                check_read_only(sql, PG).is_err(),
                "the guard let through: {sql}"
            );
        }
    }

    #[test]
    fn redshift_refuses_statements_that_depend_on_backslash_escapes() {
        let e = check_read_only("SELECT 'a\\', 1 --'", WarehouseKind::Redshift)
            .unwrap_err()
            .0;
        assert!(e.contains("backslashes"), "{e}");
        // A backslash that means the same either way is fine.
        check_read_only(
            "SELECT regexp_substr(title, '[0-9]+') FROM t WHERE title ~ 'a\\.b'",
            WarehouseKind::Redshift,
        )
        .unwrap();
    }

    #[test]
    fn reports_top_level_order() {
        assert!(
            check_read_only("SELECT a FROM t ORDER BY a", PG)
                .unwrap()
                .ordered
        );
        assert!(
            !check_read_only("SELECT a FROM (SELECT a FROM t ORDER BY a) s", PG)
                .unwrap()
                .ordered
        );
    }

    #[test]
    fn strips_trailing_semicolons() {
        assert_eq!(
            check_read_only("  SELECT 1 ;; \n", PG).unwrap().sql,
            "SELECT 1"
        );
    }

    #[test]
    fn embedded_dialect_accepts_generic_sql() {
        check_read_only(
            "SELECT id, title FROM recipes.recipes LIMIT 10",
            WarehouseKind::Embedded,
        )
        .unwrap();
        check_read_only("SELECT 1", WarehouseKind::Redshift).unwrap();
    }

    #[test]
    fn redshift_approximate_passes_the_guard_as_written() {
        let sql = "SELECT APPROXIMATE COUNT(DISTINCT x) FROM t";
        for kind in [WarehouseKind::Redshift, WarehouseKind::Embedded] {
            let checked = check_read_only(sql, kind).unwrap();
            assert_eq!(checked.sql, sql, "{kind:?} receives it as written");
        }
        assert!(check_read_only(sql, WarehouseKind::Postgres).is_err());
        // Not a way around the guard: what follows is checked as usual.
        assert!(
            check_read_only(
                "SELECT APPROXIMATE COUNT(DISTINCT pg_read_file('x')) FROM t",
                WarehouseKind::Redshift
            )
            .is_err()
        );
    }
}
