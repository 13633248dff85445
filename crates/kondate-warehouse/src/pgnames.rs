//! Output column names as PostgreSQL and Redshift give them, for the embedded engine.
//!
//! DataFusion names an unaliased select item after its whole expression (`s.t.id` for
//! `id::text`, `nvl(s.t.name,Utf8("x"))`), where PostgreSQL follows `FigureColname`
//! (src/backend/parser/parse_target.c): a column reference is named after the column, also
//! through casts; a cast of anything else after the type; a function call, aggregate or
//! window function after the function; `CASE` is `case`; anything else `?column?`. Before
//! planning, every unaliased item of every `SELECT` of the statement gets that name as its
//! alias, so subqueries can be referred to by the names PostgreSQL would give them.
//!
//! PostgreSQL also allows two output columns of the same name (`SELECT 1, 1`), which
//! DataFusion refuses. Within one `SELECT`, a repeated name is aliased with a suffix the
//! engine can tell apart; the statement's own output names (returned by [`rename`]) are
//! then put back on the result's schema.

use datafusion::sql::sqlparser::ast::{
    AccessExpr, DataType, Expr, Ident, Query, SelectItem, SetExpr, Statement, VisitMut, VisitorMut,
};
use std::ops::ControlFlow;

/// PostgreSQL's name for an expression without an alias, and how sure it is: 2 for a
/// column or function name, 1 for a type or keyword name, 0 for `?column?` (a cast prefers
/// its argument's name only when that is a 2).
fn figure(expr: &Expr) -> (String, u8) {
    let ident = |i: &Ident| {
        if i.quote_style.is_some() {
            i.value.clone()
        } else {
            i.value.to_lowercase()
        }
    };
    match expr {
        Expr::Identifier(i) => (ident(i), 2),
        Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(i) => (ident(i), 2),
            None => ("?column?".into(), 0),
        },
        Expr::Nested(inner) => figure(inner),
        Expr::Cast {
            expr, data_type, ..
        } => {
            let inner = figure(expr);
            if inner.1 > 1 {
                inner
            } else {
                (type_name(data_type), 1)
            }
        }
        Expr::TypedString(t) => (type_name(&t.data_type), 1),
        Expr::Interval(_) => ("interval".into(), 1),
        Expr::Function(f) => match f.name.0.last().and_then(|p| p.as_ident()) {
            Some(i) => (ident(i), 2),
            None => ("?column?".into(), 0),
        },
        // PostgreSQL names a CASE after its ELSE when that is a column or function.
        Expr::Case { else_result, .. } => match else_result.as_deref().map(figure) {
            Some((name, 2)) => (name, 2),
            _ => ("case".into(), 1),
        },
        Expr::Exists { .. } => ("exists".into(), 2),
        Expr::Array(_) => ("array".into(), 2),
        Expr::Extract { .. } => ("extract".into(), 2),
        Expr::Substring {
            shorthand: true, ..
        } => ("substr".into(), 2),
        Expr::Substring { .. } => ("substring".into(), 2),
        Expr::Position { .. } => ("position".into(), 2),
        Expr::Overlay { .. } => ("overlay".into(), 2),
        Expr::Trim { .. } => ("btrim".into(), 2),
        Expr::Ceil { .. } => ("ceil".into(), 2),
        Expr::Floor { .. } => ("floor".into(), 2),
        Expr::AtTimeZone { .. } => ("timezone".into(), 2),
        // A subscript is named after what it subscripts; a field access after the field.
        Expr::CompoundFieldAccess { root, access_chain } => match access_chain.last() {
            Some(AccessExpr::Dot(Expr::Identifier(i))) => (ident(i), 2),
            _ => figure(root),
        },
        Expr::Subquery(q) => first_output_name(q).map_or(("?column?".into(), 0), |n| (n, 2)),
        _ => ("?column?".into(), 0),
    }
}

/// The name of the first output column of a subquery, as PostgreSQL names a scalar
/// subquery's result.
fn first_output_name(q: &Query) -> Option<String> {
    let SetExpr::Select(select) = q.body.as_ref() else {
        return None;
    };
    match select.projection.first()? {
        SelectItem::UnnamedExpr(e) => {
            let (name, strength) = figure(e);
            (strength > 0).then_some(name)
        }
        SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
        _ => None,
    }
}

/// PostgreSQL's internal name of a type, as a cast's column is named (`int4` for `int`).
fn type_name(t: &DataType) -> String {
    use DataType as D;
    match t {
        D::Int(_) | D::Integer(_) | D::Int4(_) => "int4".into(),
        D::BigInt(_) | D::Int8(_) => "int8".into(),
        D::SmallInt(_) | D::Int2(_) => "int2".into(),
        D::Text | D::String(_) => "text".into(),
        D::Varchar(_) | D::CharacterVarying(_) => "varchar".into(),
        D::Char(_) | D::Character(_) => "bpchar".into(),
        D::Numeric(_) | D::Decimal(_) | D::Dec(_) => "numeric".into(),
        D::Real | D::Float4 => "float4".into(),
        D::Double(_) | D::DoublePrecision | D::Float8 | D::Float(_) => "float8".into(),
        D::Boolean | D::Bool => "bool".into(),
        D::Date => "date".into(),
        D::Timestamp(_, tz) => match tz {
            datafusion::sql::sqlparser::ast::TimezoneInfo::WithTimeZone
            | datafusion::sql::sqlparser::ast::TimezoneInfo::Tz => "timestamptz".into(),
            _ => "timestamp".into(),
        },
        D::Time(_, _) => "time".into(),
        D::Interval { .. } => "interval".into(),
        D::JSON => "json".into(),
        D::JSONB => "jsonb".into(),
        other => other.to_string().to_lowercase(),
    }
}

/// What an alias must not collide with: a repeated name is told apart by this suffix and
/// its number, and the suffix is removed from the result's names.
const REPEAT: &str = "\u{1f}";

/// `candidate`, or else `name` told apart by the suffix and the first number from 2 that
/// `taken` does not hold.
fn unique(name: &str, mut candidate: String, taken: &[String]) -> String {
    let mut n = 1;
    while taken.contains(&candidate) {
        n += 1;
        candidate = format!("{name}{REPEAT}{n}");
    }
    candidate
}

/// Name every unaliased item of every `SELECT` in `stmt` as PostgreSQL would.
struct Namer;

impl VisitorMut for Namer {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let sorted_by = qualified_sort_names(query);
        name_set_expr(&mut query.body, &sorted_by);
        ControlFlow::Continue(())
    }
}

/// The column names the query's ORDER BY reaches only through a table (`ORDER BY t.id`),
/// never bare. Such a reference means the table's column on PostgreSQL, which the engine
/// adds beside the select items; an item named `id` that is not that column (`id::text`)
/// would then make `id` ambiguous to the engine, so it is given a name told apart.
fn qualified_sort_names(query: &Query) -> Vec<String> {
    use datafusion::sql::sqlparser::ast::{OrderByKind, visit_expressions};
    let Some(order_by) = &query.order_by else {
        return Vec::new();
    };
    let OrderByKind::Expressions(exprs) = &order_by.kind else {
        return Vec::new();
    };
    let (mut qualified, mut bare) = (Vec::new(), Vec::new());
    for o in exprs {
        let _ = visit_expressions(&o.expr, |e| {
            match e {
                Expr::CompoundIdentifier(parts) if parts.len() > 1 => {
                    qualified.push(figure(e).0);
                }
                Expr::Identifier(_) => bare.push(figure(e).0),
                _ => {}
            }
            ControlFlow::<()>::Continue(())
        });
    }
    qualified.retain(|n| !bare.contains(n));
    qualified
}

fn name_set_expr(body: &mut SetExpr, sorted_by: &[String]) {
    match body {
        SetExpr::Select(select) => {
            let mut taken: Vec<String> = Vec::new();
            // `*` brings names this cannot see without the tables: an unaliased item beside
            // it is told apart from all of them (`SELECT *, id` has two columns `id`).
            let starred = select.projection.iter().any(|i| {
                matches!(
                    i,
                    SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
                )
            });
            for item in &mut select.projection {
                let (expr, name, first) = match item {
                    SelectItem::UnnamedExpr(expr) => {
                        let (name, _) = figure(expr);
                        let column =
                            matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
                        let first = if starred || (!column && sorted_by.contains(&name)) {
                            format!("{name}{REPEAT}1")
                        } else {
                            name.clone()
                        };
                        (expr.clone(), name, first)
                    }
                    // Two items may also be given one alias.
                    SelectItem::ExprWithAlias { expr, alias } => {
                        (expr.clone(), alias.value.clone(), alias.value.clone())
                    }
                    _ => continue,
                };
                let alias = unique(&name, first, &taken);
                let as_written =
                    matches!(item, SelectItem::ExprWithAlias { alias: a, .. } if a.value == alias);
                if !as_written {
                    *item = SelectItem::ExprWithAlias {
                        expr,
                        alias: Ident::with_quote('"', alias.clone()),
                    };
                }
                taken.push(alias);
            }
        }
        // A set operation's ORDER BY can name only its output columns.
        SetExpr::SetOperation { left, right, .. } => {
            name_set_expr(left, &[]);
            name_set_expr(right, &[]);
        }
        SetExpr::Query(q) => name_set_expr(&mut q.body, &[]),
        _ => {}
    }
}

/// Give the unaliased select items of `stmt` PostgreSQL's names (see the module).
pub fn name_outputs(stmt: &mut Statement) {
    let _ = stmt.visit(&mut Namer);
}

/// A result column's name as the statement gave it: the suffix that told a repeated name
/// apart removed.
pub fn rename(engine_name: &str) -> &str {
    engine_name
        .split_once(REPEAT)
        .map_or(engine_name, |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn names(sql: &str) -> String {
        let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        name_outputs(&mut stmt);
        stmt.to_string()
    }

    #[test]
    fn unaliased_items_get_postgresqls_names() {
        assert_eq!(
            names(
                "SELECT id::text, ID, \"Mixed\", nvl(name, 'x'), 1, CAST('2' AS int), x + 1 FROM s.t"
            ),
            "SELECT id::TEXT AS \"id\", ID AS \"id\u{1f}2\", \"Mixed\" AS \"Mixed\", \
             nvl(name, 'x') AS \"nvl\", 1 AS \"?column?\", CAST('2' AS INT) AS \"int4\", \
             x + 1 AS \"?column?\u{1f}2\" FROM s.t"
        );
        assert_eq!(
            names(
                "SELECT a FROM (SELECT t.a::text, count(*) FROM t GROUP BY 1) s UNION SELECT CASE WHEN 1 = 1 THEN 'y' END"
            ),
            "SELECT a AS \"a\" FROM (SELECT t.a::TEXT AS \"a\", count(*) AS \"count\" FROM t \
             GROUP BY 1) s UNION SELECT CASE WHEN 1 = 1 THEN 'y' END AS \"case\""
        );
        assert_eq!(
            names("SELECT *, id, t.* FROM t"),
            "SELECT *, id AS \"id\u{1f}1\", t.* FROM t"
        );
        // ORDER BY t.id means the table's column: the text item named id is told apart
        // (not when the ORDER BY also says bare id, which means the output column).
        assert_eq!(
            names("SELECT id::text, t.id FROM t ORDER BY t.id"),
            "SELECT id::TEXT AS \"id\u{1f}1\", t.id AS \"id\" FROM t ORDER BY t.id"
        );
        assert_eq!(
            names("SELECT id::text FROM t ORDER BY id, t.id"),
            "SELECT id::TEXT AS \"id\" FROM t ORDER BY id, t.id"
        );
        assert_eq!(rename("?column?\u{1f}2"), "?column?");
        assert_eq!(rename("id"), "id");
    }
}
