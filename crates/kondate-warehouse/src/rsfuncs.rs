//! Redshift's functions that training queries written for Redshift use and the embedded
//! engine does not have, rewritten before planning into SQL of the same meaning:
//!
//! | Redshift | rewritten to |
//! |---|---|
//! | `LEN(s)` | `char_length(s)` |
//! | `DECODE(e, s1, r1, …[, default])` (3 or more arguments) | `CASE WHEN e IS NOT DISTINCT FROM s1 THEN r1 … ELSE default END` (a NULL search value matches a NULL) |
//! | `GETDATE()` | the statement's time, a timestamp without zone, whole seconds |
//! | `SYSDATE` | the statement's time, a timestamp without zone |
//! | `DATEADD(part, n, x)` | `CAST(x AS TIMESTAMP) + INTERVAL 'n part'` (a computed `n`: fixed-length parts only) |
//! | `SELECT TOP n …` | `SELECT … LIMIT n` |
//! | `APPROXIMATE COUNT(DISTINCT x)` | `COUNT(DISTINCT x)`, exact ([`without_approximate`]) |
//! | `DATEDIFF(part, a, b)` | the number of `part` boundaries between `a` and `b` (year, quarter, month, day, hour, minute, second), a `BIGINT` |
//! | `LISTAGG(x[, d]) WITHIN GROUP (ORDER BY …)` | `string_agg(CAST(x AS TEXT), d ORDER BY …)` |
//! | `ISNULL(a, b)` / `CHARINDEX(sub, s)` / `MOD(a, b)` | `coalesce(a, b)` / `strpos(s, sub)` / `a % b` |
//! | `REGEXP_COUNT(…)`, `NTILE(n) OVER (…)` | the engine's, cast to `INTEGER` as Redshift and PostgreSQL type them |
//! | `LAST_DAY(d)` | the last day of `d`'s month, a date |
//! | `EXTRACT(f FROM x)`, `DATE_PART(f, x)` (also Redshift's unquoted `f`) | PostgreSQL's numeric / double precision ([`crate::pgfuncs`]) |
//! | `FETCH FIRST n ROWS ONLY` | `LIMIT n` |
//!
//! `CONVERT_TIMEZONE` becomes two `AT TIME ZONE` steps; that, `JSON_EXTRACT_PATH_TEXT` and
//! `REGEXP_SUBSTR` are functions of their own ([`crate::rsudfs`]).
//!
//! `INTERSECT ALL`, `EXCEPT ALL` and `GROUP BY CUBE`, which the engine answers
//! differently, are refused with a message saying what to write instead.
//!
//! A part these do not know is refused with a message naming it. Redshift's documentation
//! (SQL functions reference: LEN, DECODE, GETDATE, DATEADD, DATEDIFF) is the source.

use datafusion::error::{DataFusionError, Result};
use datafusion::sql::sqlparser::ast::{
    AccessExpr, CastKind, CharacterLength, DataType, ExactNumberInfo, Expr, FunctionArg,
    FunctionArgExpr, FunctionArguments, LimitClause, Query, SetExpr, Statement, Subscript,
    TopQuantity, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// `sql` without Redshift's `APPROXIMATE` before `COUNT(DISTINCT …)` or `PERCENTILE_DISC`,
/// which no other dialect parses; `None` when it has none. The embedded warehouse then
/// answers exactly (an exact count is within any approximation's error); the guard parses
/// this form while Redshift itself receives the statement as written. Only the keyword's
/// own characters (and the blanks after it) are removed, found by the tokenizer, so
/// strings and comments are never touched.
pub fn without_approximate(sql: &str) -> Option<String> {
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Whitespace};
    let dialect = datafusion::sql::sqlparser::dialect::GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .ok()?;
    // Byte offsets of the lines, to turn a token's (line, column) into a position.
    let mut line_starts = vec![0];
    line_starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
    let offset = |line: u64, column: u64| -> Option<usize> {
        let start = *line_starts.get(usize::try_from(line).ok()?.checked_sub(1)?)?;
        let rest = &sql[start..];
        let col = usize::try_from(column).ok()?.checked_sub(1)?;
        Some(start + rest.char_indices().nth(col).map_or(rest.len(), |(b, _)| b))
    };
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let Token::Word(w) = &t.token else { continue };
        if w.quote_style.is_some() || !w.value.eq_ignore_ascii_case("approximate") {
            continue;
        }
        let next = tokens[i + 1..]
            .iter()
            .position(|n| {
                !matches!(
                    n.token,
                    Token::Whitespace(Whitespace::Space | Whitespace::Newline | Whitespace::Tab)
                )
            })
            .map(|k| i + 1 + k);
        let Some(next) = next else { continue };
        let Token::Word(f) = &tokens[next].token else {
            continue;
        };
        if !(f.value.eq_ignore_ascii_case("count")
            || f.value.eq_ignore_ascii_case("percentile_disc"))
        {
            continue;
        }
        let from = offset(t.span.start.line, t.span.start.column)?;
        let to = offset(tokens[next].span.start.line, tokens[next].span.start.column)?;
        cuts.push((from, to));
    }
    if cuts.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(sql.len());
    let mut at = 0;
    for (from, to) in cuts {
        out.push_str(&sql[at..from]);
        at = to;
    }
    out.push_str(&sql[at..]);
    Some(out)
}

/// Rewrite the Redshift functions of `stmt` (see the module).
pub fn rewrite(stmt: &mut Statement) -> Result<()> {
    let mut r = Rewriter;
    match stmt.visit(&mut r) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(e) => Err(e),
    }
}

struct Rewriter;

impl VisitorMut for Rewriter {
    type Break = DataFusionError;

    /// `SELECT TOP n …` is `SELECT … LIMIT n`; so is `FETCH FIRST n ROWS ONLY`.
    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<DataFusionError> {
        if let Err(e) = refuse_counted_set_operations(&query.body) {
            return ControlFlow::Break(e);
        }
        if let Some(fetch) = query.fetch.take() {
            if fetch.percent || fetch.with_ties {
                return ControlFlow::Break(DataFusionError::Plan(
                    "FETCH … PERCENT and FETCH … WITH TIES are not supported by the embedded \
                     warehouse; write FETCH FIRST n ROWS ONLY or LIMIT n"
                        .into(),
                ));
            }
            let n = fetch
                .quantity
                .unwrap_or_else(|| Expr::value(Value::Number("1".into(), false)));
            match query.limit_clause.take() {
                None => {
                    query.limit_clause = Some(LimitClause::LimitOffset {
                        limit: Some(n),
                        offset: None,
                        limit_by: Vec::new(),
                    })
                }
                Some(LimitClause::LimitOffset {
                    limit: None,
                    offset,
                    limit_by,
                }) => {
                    query.limit_clause = Some(LimitClause::LimitOffset {
                        limit: Some(n),
                        offset,
                        limit_by,
                    })
                }
                Some(_) => {
                    return ControlFlow::Break(DataFusionError::Plan(
                        "a SELECT has both FETCH and LIMIT; keep one".into(),
                    ));
                }
            }
        }
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        let Some(top) = select.top.take() else {
            return ControlFlow::Continue(());
        };
        let n = match top.quantity {
            Some(TopQuantity::Constant(n)) if !top.percent && !top.with_ties => {
                Expr::value(Value::Number(n.to_string(), false))
            }
            Some(TopQuantity::Expr(e)) if !top.percent && !top.with_ties => e,
            _ => {
                return ControlFlow::Break(DataFusionError::Plan(
                    "TOP … PERCENT and TOP … WITH TIES are not supported by the embedded \
                     warehouse; write TOP n or LIMIT n"
                        .into(),
                ));
            }
        };
        if query.limit_clause.is_some() {
            return ControlFlow::Break(DataFusionError::Plan(
                "a SELECT has both TOP and LIMIT; keep one".into(),
            ));
        }
        query.limit_clause = Some(LimitClause::LimitOffset {
            limit: Some(n),
            offset: None,
            limit_by: Vec::new(),
        });
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<DataFusionError> {
        match rewritten(expr) {
            Ok(Some(new)) => {
                *expr = new;
                ControlFlow::Continue(())
            }
            Ok(None) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }
}

/// `INTERSECT ALL` and `EXCEPT ALL` keep every row of the left side that has a match (or
/// none) in the engine, where PostgreSQL counts duplicates (`min(m, n)` and `m - n` copies):
/// a different answer, so they are refused.
fn refuse_counted_set_operations(body: &SetExpr) -> Result<()> {
    use datafusion::sql::sqlparser::ast::{SetOperator, SetQuantifier};
    if let SetExpr::SetOperation {
        op,
        set_quantifier,
        left,
        right,
    } = body
    {
        if matches!(
            op,
            SetOperator::Intersect | SetOperator::Except | SetOperator::Minus
        ) && matches!(set_quantifier, SetQuantifier::All)
        {
            return Err(DataFusionError::Plan(format!(
                "{op} ALL is not supported by the embedded warehouse (it would not count \
                 duplicate rows as PostgreSQL does); use {op} (without ALL), or count the rows \
                 per value with GROUP BY and compare the counts"
            )));
        }
        refuse_counted_set_operations(left)?;
        refuse_counted_set_operations(right)?;
    }
    Ok(())
}

fn convert_timezone(from: &str, to: &Expr, ts: &Expr) -> String {
    format!("kondate_at_time_zone(kondate_at_time_zone(CAST({ts} AS TIMESTAMP), {from}), {to})")
}

/// A JSON argument as text: the engine has no json type, and the functions read text.
fn json_text(e: &Expr) -> String {
    match e {
        Expr::Cast {
            expr: inner,
            data_type: DataType::JSON | DataType::JSONB,
            ..
        } => format!("CAST({inner} AS TEXT)"),
        other => other.to_string(),
    }
}

/// `x::json -> k`, `->>`, `#>>` (and chains of them) as functions over text.
fn json_operator(expr: &Expr) -> Option<String> {
    use datafusion::sql::sqlparser::ast::BinaryOperator;
    let Expr::BinaryOp { left, op, right } = expr else {
        return None;
    };
    if !matches!(
        op,
        BinaryOperator::Arrow | BinaryOperator::LongArrow | BinaryOperator::HashLongArrow
    ) {
        return None;
    }
    json_arrow(left, op, right)
}

fn json_arrow(
    left: &Expr,
    op: &datafusion::sql::sqlparser::ast::BinaryOperator,
    right: &Expr,
) -> Option<String> {
    use datafusion::sql::sqlparser::ast::BinaryOperator;
    // The document: a cast to json/jsonb, or an arrow already rewritten.
    let (doc, jsonb) = match left {
        Expr::Cast {
            expr: inner,
            data_type: t @ (DataType::JSON | DataType::JSONB),
            ..
        } => (
            format!("CAST({inner} AS TEXT)"),
            matches!(t, DataType::JSONB),
        ),
        Expr::Function(f) => match f.name.to_string().as_str() {
            "kondate_json_get" => (left.to_string(), false),
            "kondate_jsonb_get" => (left.to_string(), true),
            _ => return None,
        },
        _ => return None,
    };
    Some(match op {
        BinaryOperator::Arrow => {
            let get = if jsonb {
                "kondate_jsonb_get"
            } else {
                "kondate_json_get"
            };
            format!("{get}({doc}, CAST({right} AS TEXT))")
        }
        BinaryOperator::LongArrow => {
            format!("json_extract_path_text({doc}, CAST({right} AS TEXT))")
        }
        _ => {
            // `#>> '{a,b}'`: a path as PostgreSQL's array literal.
            let Expr::Value(v) = right else {
                return None;
            };
            let Value::SingleQuotedString(path) = &v.value else {
                return None;
            };
            let inner = path.trim().strip_prefix('{')?.strip_suffix('}')?;
            let keys: Vec<String> = inner
                .split(',')
                .map(|k| format!("'{}'", k.trim().trim_matches('"').replace('\'', "''")))
                .collect();
            format!("json_extract_path_text({doc}, {})", keys.join(", "))
        }
    })
}

/// `EXTRACT(field FROM x)` as a call of the function for the field's scale
/// ([`crate::pgfuncs::ExtractScale`]); plural and abbreviated field names as PostgreSQL
/// reads them.
fn extract_sql(field: &str, x: &Expr) -> String {
    let f = field.trim_matches('\'').to_lowercase();
    let f = match f.as_str() {
        "years" | "y" | "yr" | "yrs" => "year",
        "months" | "mon" | "mons" => "month",
        "days" | "d" => "day",
        "hours" | "h" | "hr" | "hrs" => "hour",
        "minutes" | "m" | "min" | "mins" => "minute",
        "seconds" | "s" | "sec" | "secs" => "second",
        "milliseconds" | "ms" | "msec" | "msecs" => "millisecond",
        "microseconds" | "us" | "usec" | "usecs" => "microsecond",
        "quarters" | "qtr" => "quarter",
        "weeks" | "w" => "week",
        other => other,
    }
    .to_string();
    let function = crate::pgfuncs::ExtractScale::function_for(&f);
    format!("{function}('{f}', {x})")
}

fn parse(sql: &str) -> Result<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| DataFusionError::Plan(format!("rewriting `{sql}`: {e}")))
}

/// A plain argument list's expressions, or None for anything else (a wildcard, named
/// arguments, `DISTINCT`, clauses).
fn plain_args(args: &FunctionArguments) -> Option<Vec<&Expr>> {
    let FunctionArguments::List(list) = args else {
        return match args {
            FunctionArguments::None => Some(Vec::new()),
            _ => None,
        };
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return None;
    }
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect()
}

/// The date part named by a DATEADD/DATEDIFF argument (`day`, `'day'`, `d`, …), as
/// PostgreSQL's interval and `date_trunc` name it.
fn part(e: &Expr, function: &str) -> Result<&'static str> {
    let name = match e {
        Expr::Identifier(i) => i.value.to_lowercase(),
        Expr::Value(v) => v.to_string().trim_matches('\'').to_lowercase(),
        other => other.to_string().to_lowercase(),
    };
    Ok(match name.as_str() {
        "year" | "years" | "y" | "yr" | "yrs" | "yy" | "yyyy" => "year",
        "quarter" | "quarters" | "qtr" | "qtrs" | "q" => "quarter",
        "month" | "months" | "mon" | "mons" | "mm" => "month",
        "week" | "weeks" | "w" => "week",
        "day" | "days" | "d" | "dd" => "day",
        "hour" | "hours" | "h" | "hh" | "hr" | "hrs" => "hour",
        "minute" | "minutes" | "m" | "mi" | "min" | "mins" => "minute",
        "second" | "seconds" | "s" | "sec" | "secs" => "second",
        other => {
            return Err(DataFusionError::Plan(format!(
                "{function}: date part `{other}` is not supported by the embedded warehouse; \
                 use year, quarter, month, week, day, hour, minute or second"
            )));
        }
    })
}

/// The value of an integer literal (`3`, `-3`), if `e` is one.
fn integer_literal(e: &Expr) -> Option<i64> {
    use datafusion::sql::sqlparser::ast::UnaryOperator;
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => integer_literal(expr).map(|k| -k),
        Expr::Nested(inner) => integer_literal(inner),
        _ => None,
    }
}

/// `2.5::int` (also `CAST(2.5 AS BIGINT)`…) as a cast of the exact decimal.
fn decimal_literal_to_integer(expr: &Expr) -> Option<String> {
    let Expr::Cast {
        expr: inner,
        data_type,
        ..
    } = expr
    else {
        return None;
    };
    if !matches!(
        data_type,
        DataType::Int(_)
            | DataType::Integer(_)
            | DataType::BigInt(_)
            | DataType::SmallInt(_)
            | DataType::Int2(_)
            | DataType::Int4(_)
            | DataType::Int8(_)
    ) {
        return None;
    }
    let Expr::Value(v) = inner.as_ref() else {
        return None;
    };
    let Value::Number(n, _) = &v.value else {
        return None;
    };
    let (whole, fraction) = n.split_once('.')?;
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale = fraction.len();
    let precision = (whole.trim_start_matches('0').len() + scale).clamp(1, 38);
    if scale > precision {
        return None;
    }
    Some(format!(
        "CAST(CAST({n} AS DECIMAL({precision}, {scale})) AS {data_type})"
    ))
}

/// `interval '1 day 02:03:04'`: the clock-time part spelled as hours, minutes and seconds,
/// which the engine's interval reader takes (`-01:30` is minus an hour and a half).
fn interval_with_clock_time(expr: &Expr) -> Option<String> {
    let Expr::Interval(iv) = expr else {
        return None;
    };
    if iv.leading_field.is_some() || iv.last_field.is_some() {
        return None;
    }
    let Expr::Value(v) = iv.value.as_ref() else {
        return None;
    };
    let Value::SingleQuotedString(text) = &v.value else {
        return None;
    };
    let mut changed = false;
    let mut words = Vec::new();
    for word in text.split_whitespace() {
        let (sign, clock) = match word.as_bytes().first() {
            Some(b'-') => ("-", &word[1..]),
            Some(b'+') => ("", &word[1..]),
            _ => ("", word),
        };
        let parts: Vec<&str> = clock.split(':').collect();
        let numeric = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| numeric(p)) {
            words.push(word.to_string());
            continue;
        }
        changed = true;
        for (value, unit) in parts.iter().zip(["hours", "minutes", "seconds"]) {
            words.push(format!("{sign}{value} {unit}"));
        }
    }
    changed.then(|| format!("INTERVAL '{}'", words.join(" ").replace('\'', "''")))
}

/// `a[i][j]`: PostgreSQL's array subscripts as `kondate_array_element` (see `pgfuncs`);
/// slices are refused, and a field access (`x.f`) is left to the engine.
fn array_subscripts(root: &Expr, chain: &[AccessExpr]) -> Result<Option<Expr>> {
    let mut sql = root.to_string();
    for access in chain {
        match access {
            AccessExpr::Subscript(Subscript::Index { index }) => {
                sql = format!("kondate_array_element({sql}, {index})");
            }
            AccessExpr::Subscript(slice @ Subscript::Slice { .. }) => {
                return Err(DataFusionError::Plan(format!(
                    "the array slice {slice} is not supported by the embedded warehouse; take \
                     the elements one by one with a[i]"
                )));
            }
            AccessExpr::Dot(_) => return Ok(None),
        }
    }
    parse(&sql).map(Some)
}

fn rewritten(expr: &Expr) -> Result<Option<Expr>> {
    // The engine's CUBE loses groups when a grouped column holds NULLs.
    if let Expr::Cube(_) = expr {
        return Err(DataFusionError::Plan(
            "GROUP BY CUBE is not supported by the embedded warehouse (it loses groups where \
             a column holds NULL); list the groups with GROUPING SETS ((a, b), (a), (b), ())"
                .into(),
        ));
    }
    // SYSDATE, a keyword in Redshift (a column of that name must be quoted there too).
    if let Expr::Identifier(i) = expr
        && i.quote_style.is_none()
        && i.value.eq_ignore_ascii_case("sysdate")
    {
        return parse("CAST(now() AS TIMESTAMP)").map(Some);
    }
    // EXTRACT is PostgreSQL's numeric; date_part its double precision (both in UTC).
    if let Expr::Extract { field, expr: x, .. } = expr {
        return parse(&extract_sql(&field.to_string(), x)).map(Some);
    }
    if let Expr::Function(f) = expr
        && f.name.to_string().eq_ignore_ascii_case("date_part")
        && let Some([part, x]) = plain_args(&f.args).as_deref()
    {
        let field = match part {
            Expr::Identifier(i) if i.quote_style.is_none() => Some(i.value.clone()),
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        };
        if let Some(field) = field {
            return parse(&format!("CAST({} AS DOUBLE)", extract_sql(&field, x))).map(Some);
        }
    }
    if let Expr::AtTimeZone {
        timestamp,
        time_zone,
    } = expr
    {
        return parse(&format!("kondate_at_time_zone({timestamp}, {time_zone})")).map(Some);
    }
    // COLLATE: the engine compares text by code point, which is collation "C".
    if let Expr::Collate {
        expr: inner,
        collation,
    } = expr
    {
        let name = collation.to_string();
        let bare = name.trim_matches('"');
        if matches!(bare, "C" | "POSIX" | "ucs_basic" | "default") {
            return Ok(Some(Expr::Nested(inner.clone())));
        }
        return Err(DataFusionError::Plan(format!(
            "COLLATE {name} is not supported by the embedded warehouse, which compares text \
             by code point (COLLATE \"C\"); remove the COLLATE clause or write COLLATE \"C\""
        )));
    }
    // A literal with a fraction is a numeric to PostgreSQL, whose cast to an integer rounds
    // half away from zero (`2.5::int` is 3); the engine reads it as a float.
    if let Some(sql) = decimal_literal_to_integer(expr) {
        return parse(&sql).map(Some);
    }
    // `~x`, PostgreSQL's bitwise not, which the engine has not: -1 - x in two's complement.
    if let Expr::UnaryOp {
        op: datafusion::sql::sqlparser::ast::UnaryOperator::BitwiseNot,
        expr: inner,
    } = expr
    {
        return parse(&format!("(-1 - ({inner}))")).map(Some);
    }
    if let Some(sql) = interval_with_clock_time(expr) {
        return parse(&sql).map(Some);
    }
    if let Some(sql) = json_operator(expr) {
        return parse(&sql).map(Some);
    }
    if let Expr::Cast {
        expr: inner,
        data_type:
            DataType::Varchar(Some(len))
            | DataType::CharacterVarying(Some(len))
            | DataType::CharVarying(Some(len)),
        ..
    } = expr
        && let CharacterLength::IntegerLength { length, .. } = len
    {
        // PostgreSQL cuts a value cast to varchar(n) to n characters; the engine ignores n.
        return parse(&format!("left(CAST({inner} AS VARCHAR), {length})")).map(Some);
    }
    if let Expr::Cast {
        kind: CastKind::Cast | CastKind::DoubleColon,
        expr: inner,
        data_type:
            DataType::Numeric(ExactNumberInfo::None)
            | DataType::Decimal(ExactNumberInfo::None)
            | DataType::Dec(ExactNumberInfo::None),
        ..
    } = expr
    {
        // `numeric` without a precision keeps the value's scale on PostgreSQL; the engine
        // would read it as numeric(38,10) (see `pgnumeric::unconstrained_type`).
        return parse(&format!("kondate_numeric({inner})")).map(Some);
    }
    // char(n) pads to n characters, and its trailing spaces do not count when compared or
    // measured: the engine has no such type, and a cut or padded varchar would answer
    // otherwise in one place or another.
    if let Expr::Cast {
        data_type: t @ (DataType::Char(_) | DataType::Character(_)),
        ..
    } = expr
    {
        return Err(DataFusionError::Plan(format!(
            "the type {t} (blank-padded) is not supported by the embedded warehouse; use \
             varchar(n), which cuts to n characters, or rpad(x, n) for the padded text"
        )));
    }
    if let Expr::CompoundFieldAccess { root, access_chain } = expr {
        return array_subscripts(root, access_chain);
    }
    let Expr::Function(f) = expr else {
        return Ok(None);
    };
    let [name] = f.name.0.as_slice() else {
        return Ok(None);
    };
    let Some(name) = name.as_ident() else {
        return Ok(None);
    };
    if name.quote_style.is_some() {
        return Ok(None);
    }
    let lower = name.value.to_lowercase();
    // Functions the engine types bigint where Redshift and PostgreSQL give an integer.
    if matches!(lower.as_str(), "regexp_count" | "ntile") {
        return parse(&format!("CAST({expr} AS INT)")).map(Some);
    }
    if f.over.is_some() || f.filter.is_some() {
        return Ok(None);
    }
    // LISTAGG(x, d) WITHIN GROUP (ORDER BY …), Redshift's string_agg.
    if lower == "listagg" {
        let distinct =
            matches!(&f.args, FunctionArguments::List(l) if l.duplicate_treatment.is_some());
        let mut g = f.clone();
        if let FunctionArguments::List(l) = &mut g.args {
            l.duplicate_treatment = None;
        }
        let Some(args) = plain_args(&g.args) else {
            return Ok(None);
        };
        let order = f
            .within_group
            .iter()
            .map(|o| o.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let order = if order.is_empty() {
            String::new()
        } else {
            format!(" ORDER BY {order}")
        };
        let d = if distinct { "DISTINCT " } else { "" };
        return match args.as_slice() {
            [x] => parse(&format!("string_agg({d}CAST({x} AS TEXT), ''{order})")).map(Some),
            [x, delim] => {
                parse(&format!("string_agg({d}CAST({x} AS TEXT), {delim}{order})")).map(Some)
            }
            _ => Err(DataFusionError::Plan(
                "LISTAGG takes an expression and an optional delimiter".into(),
            )),
        };
    }
    if !f.within_group.is_empty() {
        return Ok(None);
    }
    let Some(args) = plain_args(&f.args) else {
        return Ok(None);
    };
    let sql = match (lower.as_str(), args.as_slice()) {
        // json_extract_path_text(x::json, …): the engine has no json type; the function
        // reads text.
        (
            "json_extract_path_text",
            [
                doc @ Expr::Cast {
                    data_type: DataType::JSON | DataType::JSONB,
                    ..
                },
                rest @ ..,
            ],
        ) => {
            let rest: Vec<String> = rest.iter().map(|e| e.to_string()).collect();
            format!(
                "json_extract_path_text({}, {})",
                json_text(doc),
                rest.join(", ")
            )
        }
        ("json_typeof", [doc]) => format!("kondate_json_typeof({})", json_text(doc)),
        ("json_array_length", [doc]) => {
            format!("CAST(kondate_json_array_length({}) AS INT)", json_text(doc))
        }
        // CONVERT_TIMEZONE(from, to, ts): ts read as wall-clock time in `from`, then that
        // instant's wall-clock time in `to` — two AT TIME ZONE steps (rsudfs).
        ("convert_timezone", [to, ts]) => convert_timezone("'UTC'", to, ts),
        ("convert_timezone", [from, to, ts]) => convert_timezone(&from.to_string(), to, ts),
        ("convert_timezone", _) => {
            return Err(DataFusionError::Plan(format!(
                "CONVERT_TIMEZONE takes ([source zone,] target zone, timestamp), not {} \
                 arguments",
                args.len()
            )));
        }
        // age(x) counts from today's midnight.
        ("age", [x]) => format!("age(CAST(current_date AS TIMESTAMP), {x})"),
        ("isnull", [a, b]) => format!("coalesce({a}, {b})"),
        ("mod", [a, b]) => format!("(({a}) % ({b}))"),
        ("charindex", [sub, s]) => format!("strpos({s}, {sub})"),
        ("last_day", [d]) => format!(
            "CAST(date_trunc('month', CAST({d} AS TIMESTAMP)) + INTERVAL '1 month' - \
             INTERVAL '1 day' AS DATE)"
        ),
        ("len", [s]) => format!("char_length({s})"),
        ("decode", [e, rest @ ..]) if rest.len() >= 2 => {
            let mut case = String::from("CASE");
            for pair in rest.chunks(2) {
                match pair {
                    [search, result] => {
                        case.push_str(&format!(
                            " WHEN ({e}) IS NOT DISTINCT FROM ({search}) THEN {result}"
                        ));
                    }
                    [default] => case.push_str(&format!(" ELSE {default}")),
                    _ => unreachable!("chunks of two"),
                }
            }
            case.push_str(" END");
            case
        }
        ("getdate", []) => "date_trunc('second', CAST(now() AS TIMESTAMP))".to_string(),
        ("dateadd", [p, n, x]) => {
            let unit = part(p, "DATEADD")?;
            let x = format!("CAST({x} AS TIMESTAMP)");
            match (integer_literal(n), unit) {
                (Some(k), "quarter") => format!("({x} + INTERVAL '{} month')", k * 3),
                (Some(k), unit) => format!("({x} + INTERVAL '{k} {unit}')"),
                // A computed count: fixed-length parts as a duration; months have none.
                (None, "week" | "day" | "hour" | "minute" | "second") => {
                    let micros: i64 = match unit {
                        "week" => 604_800_000_000,
                        "day" => 86_400_000_000,
                        "hour" => 3_600_000_000,
                        "minute" => 60_000_000,
                        _ => 1_000_000,
                    };
                    format!(
                        "({x} + arrow_cast(CAST({n} AS BIGINT) * {micros}, 'Duration(Microsecond)'))"
                    )
                }
                (None, unit) => {
                    return Err(DataFusionError::Plan(format!(
                        "DATEADD({unit}, {n}, …): a computed number of {unit}s is not supported \
                         by the embedded warehouse; give the number as a literal"
                    )));
                }
            }
        }
        ("datediff", [p, a, b]) => {
            let unit = part(p, "DATEDIFF")?;
            let ts = |x: &Expr| format!("CAST({x} AS TIMESTAMP)");
            let (a, b) = (ts(a), ts(b));
            let months =
                |x: &str| format!("(date_part('year', {x}) * 12 + date_part('month', {x}))");
            match unit {
                "year" => {
                    format!("CAST(date_part('year', {b}) - date_part('year', {a}) AS BIGINT)")
                }
                "quarter" => format!(
                    "CAST((date_part('year', {b}) * 4 + date_part('quarter', {b})) - \
                     (date_part('year', {a}) * 4 + date_part('quarter', {a})) AS BIGINT)"
                ),
                "month" => format!("CAST({} - {} AS BIGINT)", months(&b), months(&a)),
                "week" => {
                    return Err(DataFusionError::Plan(
                        "DATEDIFF(week, …) is not supported by the embedded warehouse (its week \
                         boundaries differ between engines); use DATEDIFF(day, a, b) / 7"
                            .into(),
                    ));
                }
                unit => {
                    let seconds = match unit {
                        "day" => 86_400,
                        "hour" => 3_600,
                        "minute" => 60,
                        _ => 1,
                    };
                    format!(
                        "CAST((date_part('epoch', date_trunc('{unit}', {b})) - \
                         date_part('epoch', date_trunc('{unit}', {a}))) / {seconds} AS BIGINT)"
                    )
                }
            }
        }
        _ => return Ok(None),
    };
    parse(&sql).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite_sql(sql: &str) -> String {
        let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite(&mut stmt).unwrap();
        stmt.to_string()
    }

    #[test]
    fn redshift_functions_are_rewritten() {
        assert_eq!(rewrite_sql("SELECT LEN(name)"), "SELECT char_length(name)");
        assert_eq!(
            rewrite_sql("SELECT SYSDATE, \"sysdate\" FROM t"),
            "SELECT CAST(now() AS TIMESTAMP), \"sysdate\" FROM t"
        );
        assert_eq!(
            rewrite_sql("SELECT TOP 5 id FROM t ORDER BY id"),
            "SELECT id FROM t ORDER BY id LIMIT 5"
        );
        assert_eq!(
            rewrite_sql("SELECT decode(x, 1, 'a', NULL, 'n', 'z')"),
            "SELECT CASE WHEN (x) IS NOT DISTINCT FROM (1) THEN 'a' WHEN (x) IS NOT DISTINCT \
             FROM (NULL) THEN 'n' ELSE 'z' END"
        );
        // DataFusion's own decode(expression, encoding) is left alone.
        assert_eq!(
            rewrite_sql("SELECT decode(x, 'base64')"),
            "SELECT decode(x, 'base64')"
        );
        assert_eq!(
            rewrite_sql("SELECT dateadd(month, 2, d)"),
            "SELECT (CAST(d AS TIMESTAMP) + INTERVAL '2 month')"
        );
        // What has no equal meaning here is refused, naming it and what to write instead.
        for (sql, says) in [
            ("SELECT datediff(fortnight, a, b)", "date part `fortnight`"),
            ("SELECT datediff(week, a, b)", "DATEDIFF(day, a, b) / 7"),
            (
                "SELECT dateadd(month, n, d)",
                "give the number as a literal",
            ),
            ("SELECT TOP 10 PERCENT id FROM t", "write TOP n or LIMIT n"),
            ("SELECT TOP 3 id FROM t LIMIT 2", "both TOP and LIMIT"),
        ] {
            let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
                .unwrap()
                .remove(0);
            let err = rewrite(&mut stmt).unwrap_err().to_string();
            assert!(err.contains(says), "{sql}: {err}");
        }
    }

    #[test]
    fn approximate_is_taken_off_where_redshift_reads_it_and_nowhere_else() {
        assert_eq!(
            without_approximate("SELECT APPROXIMATE  count(DISTINCT x) FROM t").as_deref(),
            Some("SELECT count(DISTINCT x) FROM t")
        );
        assert_eq!(
            without_approximate(
                "SELECT 'é', approximate\n percentile_disc(0.5) WITHIN GROUP (ORDER BY x) FROM t"
            )
            .as_deref(),
            Some("SELECT 'é', percentile_disc(0.5) WITHIN GROUP (ORDER BY x) FROM t")
        );
        assert_eq!(
            without_approximate("SELECT 'approximate count' FROM t"),
            None
        );
        assert_eq!(without_approximate("SELECT approximate FROM t"), None);
        assert_eq!(
            without_approximate("SELECT \"approximate\" count FROM t"),
            None
        );
    }
}
