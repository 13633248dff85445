//! PostgreSQL's semantics where DataFusion's silently differ, applied to every planned
//! statement on the embedded warehouse (an analyzer rule, after type coercion, so each
//! expression's type is known):
//!
//! - **Overflow fails the query**: integer `+`, `-`, `*` wrap around in DataFusion; here they
//!   go through Arrow's checked kernels, and the query fails with PostgreSQL's
//!   "integer out of range" — never a wrapped number. A float divided by zero fails with
//!   "division by zero" (DataFusion gives `Infinity`), as on PostgreSQL.
//! - **Casts to integers round**: DataFusion truncates `3.7::int` to 3; PostgreSQL rounds —
//!   half away from zero for `numeric` (`2.5::int` is 3), half to even for floats
//!   (`2.5::float8::int` is 2).
//! - **Values cast to text read as PostgreSQL prints them**: `at::text` is
//!   `2024-01-02 03:04:05`, not `2024-01-02T03:04:05`; `250.0::float8::text` is `250`.
//!
//! - **`sum(bigint)` is `numeric`**, as on PostgreSQL: it cannot overflow (the engine's
//!   `Int64` sum wraps around).
//! - **Dates become timestamps where PostgreSQL's do**: `date + interval` is a timestamp,
//!   `date_trunc('month', date)` a `timestamptz`.
//! - **`round(float)` rounds half to even**, as PostgreSQL's does (`round(2.5::float8)` is 2).
//! - **Integer literals are `integer`** when they fit ([`IntegerLiterals`]).
//! - **Literals with a point or an exponent are `numeric`**, exact (`0.1 + 0.2` is `0.3`);
//!   where a `numeric` meets a float it becomes a float, as on PostgreSQL (the engine would
//!   make the float a decimal: `price < 1e10` failed for a large price).
//!
//! Column names do not change: each rewritten expression keeps its name.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Decimal128Array};
use arrow::datatypes::{DataType, Decimal128Type, Float32Type, Float64Type, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ScalarValue, exec_err};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    BinaryExpr, Cast, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::prelude::SessionContext;

/// `ctx` with the rules added: [`IntegerLiterals`] before the engine's own analyzer rules
/// (type coercion then gives each expression the type PostgreSQL would), [`PgSemantics`]
/// after them (where every expression's type is known).
pub fn with_rules(ctx: SessionContext) -> SessionContext {
    let mut builder = datafusion::execution::SessionStateBuilder::new_from_existing(ctx.state());
    if let Some(analyzer) = builder.analyzer() {
        analyzer.rules.insert(0, Arc::new(IntegerLiterals::new()));
        analyzer.rules.push(Arc::new(PgSemantics::new()));
    }
    SessionContext::new_with_state(builder.build())
}

/// Rewrite every expression of `plan` and of its subqueries' plans with `f` (given the
/// schema of the node's inputs), except in nodes `skip` names; each rewritten expression
/// keeps its output name, and every node's schema is computed again from its inputs, since
/// a rewrite below may have changed a column's type (`SELECT 1` is now an `integer`).
fn rewrite_expressions(
    plan: LogicalPlan,
    skip: impl Fn(&LogicalPlan) -> bool,
    f: impl Fn(Expr, &DFSchema) -> Result<Transformed<Expr>>,
) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|plan| {
        if skip(&plan) {
            return Ok(Transformed::no(plan));
        }
        let schema = merge_schema(&plan.inputs());
        let before = plan.schema().clone();
        let names = NamePreserver::new(&plan);
        let rewritten = plan.map_expressions(|expr| {
            let name = names.save(&expr);
            expr.transform_up(|e| f(e, &schema))
                .map(|t| t.update_data(|e| name.restore(e)))
        })?;
        let transformed = rewritten.transformed;
        let plan = match rewritten.data {
            // A VALUES list keeps the schema it was planned with: plan it again from its
            // rewritten rows (with the planner's own column names, column1…), or its
            // columns would say `bigint` while holding `integer`s.
            // The planner typed each NULL as the type it found (`bigint`); an untyped NULL
            // lets the rows' own types decide again.
            LogicalPlan::Values(v) if transformed => {
                let rows = v
                    .values
                    .into_iter()
                    .map(|row| {
                        row.into_iter()
                            .map(|e| match e {
                                Expr::Literal(n, meta) if n.is_null() => {
                                    Expr::Literal(ScalarValue::Null, meta)
                                }
                                other => other,
                            })
                            .collect()
                    })
                    .collect();
                datafusion::logical_expr::LogicalPlanBuilder::values(rows)?.build()?
            }
            // A union keeps the schema it was planned with, from its inputs' types then: derive
            // it again from the inputs as they are now (`SELECT 1 UNION SELECT 2` is an
            // `integer` column); type coercion then finds the inputs' common type.
            LogicalPlan::Union(u)
                if u.inputs.iter().any(|i| {
                    i.schema().fields().iter().map(|f| f.data_type()).ne(u
                        .schema
                        .fields()
                        .iter()
                        .map(|f| f.data_type()))
                }) =>
            {
                LogicalPlan::Union(datafusion::logical_expr::Union::try_new_with_loose_types(
                    u.inputs,
                )?)
            }
            LogicalPlan::RecursiveQuery(rq) => recursive_query_retyped(rq)?,
            other => other.recompute_schema()?,
        };
        let changed = transformed || plan.schema() != &before;
        Ok(Transformed::new_transformed(plan, changed))
    })
    .map(|t| t.data)
}

/// A recursive query whose non-recursive term a rewrite retyped (`SELECT 1` is now an
/// `integer`): the work table its recursive term reads was planned with the term's old
/// types (`bigint`), so it is given the new ones and the recursive term's schemas are
/// derived again from it (`x + 1` is an `integer` too, as on PostgreSQL).
fn recursive_query_retyped(
    mut rq: datafusion::logical_expr::RecursiveQuery,
) -> Result<LogicalPlan> {
    use datafusion::catalog::cte_worktable::CteWorkTable;
    use datafusion::datasource::{provider_as_source, source_as_provider};
    let anchor: Vec<DataType> = rq
        .static_term
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    let name = rq.name.clone();
    let recursive = Arc::unwrap_or_clone(rq.recursive_term).transform_up(|p| match p {
        LogicalPlan::TableScan(scan) if scan.table_name.table() == name => {
            let provider = source_as_provider(&scan.source).ok();
            let Some(table) = provider
                .as_deref()
                .and_then(|p| p.downcast_ref::<CteWorkTable>())
            else {
                return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
            };
            let old = table.schema();
            if old.fields().len() != anchor.len()
                || old
                    .fields()
                    .iter()
                    .zip(&anchor)
                    .all(|(f, t)| f.data_type() == t)
            {
                return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
            }
            let fields: Vec<arrow::datatypes::Field> = old
                .fields()
                .iter()
                .zip(&anchor)
                .map(|(f, t)| f.as_ref().clone().with_data_type(t.clone()))
                .collect();
            let schema = Arc::new(arrow::datatypes::Schema::new_with_metadata(
                fields,
                old.metadata().clone(),
            ));
            let source = provider_as_source(Arc::new(CteWorkTable::new(&name, schema)));
            let scan = datafusion::logical_expr::logical_plan::TableScanBuilder::new(
                scan.table_name,
                source,
            )
            .with_projection(scan.projection)
            .with_filters(scan.filters)
            .with_fetch(scan.fetch)
            .build()?;
            Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
        }
        other => Ok(Transformed::yes(other.recompute_schema()?)),
    })?;
    rq.recursive_term = Arc::new(recursive.data);
    LogicalPlan::RecursiveQuery(rq).recompute_schema()
}

/// True when `e` is a date, or a date type coercion cast to a timestamp.
fn is_date(e: &Expr, schema: &DFSchema) -> bool {
    let date = |e: &Expr| matches!(e.get_type(schema), Ok(DataType::Date32 | DataType::Date64));
    match e {
        Expr::Cast(c) => date(&c.expr),
        _ => date(e),
    }
}

/// True when `e` is an integer that type coercion made an interval (`date + 1`, which stays
/// a date on PostgreSQL).
fn from_integer(e: &Expr, schema: &DFSchema) -> bool {
    match e {
        Expr::Cast(c) => c
            .expr
            .get_type(schema)
            .is_ok_and(|t| t.is_integer() || from_integer(&c.expr, schema)),
        _ => e.get_type(schema).is_ok_and(|t| t.is_integer()),
    }
}

/// When `operands` mix floats and decimals (`numeric`), cast the decimals to floats, as
/// PostgreSQL does, and say so.
fn floats_where_mixed(operands: Vec<&mut Expr>, schema: &DFSchema) -> bool {
    let decimal = |e: &Expr| {
        matches!(
            e.get_type(schema),
            Ok(DataType::Decimal128(..) | DataType::Decimal256(..))
        )
    };
    let float = |e: &Expr| e.get_type(schema).is_ok_and(|t| t.is_floating());
    if !(operands.iter().any(|e| float(e)) && operands.iter().any(|e| decimal(e))) {
        return false;
    }
    for e in operands {
        if decimal(e) {
            let inner = std::mem::replace(e, Expr::Literal(ScalarValue::Null, None));
            *e = Expr::Cast(Cast::new(Box::new(inner), DataType::Float64));
        }
    }
    true
}

/// Make `e`, when it is an integer literal, a decimal literal of its own digits and no
/// places; say whether it was.
fn literal_as_decimal(e: &mut Expr) -> bool {
    let v = match e {
        Expr::Literal(ScalarValue::Int32(Some(v)), _) => i128::from(*v),
        Expr::Literal(ScalarValue::Int64(Some(v)), _) => i128::from(*v),
        _ => return false,
    };
    let digits = v.unsigned_abs().checked_ilog10().unwrap_or(0) as u8 + 1;
    *e = Expr::Literal(ScalarValue::Decimal128(Some(v), digits, 0), None);
    true
}

/// When `name(args)` is a `sum` of a `bigint` or an `avg` of integers, make its argument
/// `numeric` and say so (both are `numeric` on PostgreSQL).
fn numeric_sum(name: &str, args: &mut [Expr], schema: &DFSchema) -> bool {
    if args.len() != 1 {
        return false;
    }
    let to = match (name, args[0].get_type(schema).ok()) {
        ("sum", Some(DataType::Int64)) => DataType::Decimal128(38, 0),
        ("avg" | "mean", Some(t)) if t.is_integer() => {
            let digits = match t {
                DataType::Int64 | DataType::UInt64 => 20,
                _ => 10,
            };
            DataType::Decimal128(digits, 0)
        }
        _ => return false,
    };
    let arg = std::mem::replace(&mut args[0], Expr::Literal(ScalarValue::Null, None));
    args[0] = Expr::Cast(Cast::new(Box::new(arg), to));
    true
}

/// The rule that runs before type coercion, while each expression still has the type the
/// statement gave it: an integer literal is an `integer` (32 bits) on PostgreSQL when it
/// fits, a `bigint` otherwise (the engine makes every one a `bigint`), so `SELECT 1` is an
/// `integer` column and `2147483647 + 1` is out of range; and `sum(bigint)` is `numeric`.
#[derive(Debug)]
struct IntegerLiterals {
    numeric_div: Arc<ScalarUDF>,
}

impl IntegerLiterals {
    fn new() -> Self {
        IntegerLiterals {
            numeric_div: Arc::new(ScalarUDF::from(crate::pgnumeric::NumericDiv::new())),
        }
    }
}

impl AnalyzerRule for IntegerLiterals {
    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        rewrite_expressions(
            plan,
            |p| matches!(p, LogicalPlan::Limit(_) | LogicalPlan::TableScan(_)),
            |e, schema| match e {
                Expr::Literal(ScalarValue::Int64(Some(v)), meta) if i32::try_from(v).is_ok() => Ok(
                    Transformed::yes(Expr::Literal(ScalarValue::Int32(Some(v as i32)), meta)),
                ),
                // A literal with an exponent (`1e3`) is read with a negative scale; PostgreSQL's
                // `numeric` has none: the same value without places.
                Expr::Literal(ScalarValue::Decimal128(Some(v), p, s), meta) if s < 0 => {
                    let shift = u32::from(s.unsigned_abs());
                    match 10i128.checked_pow(shift).and_then(|m| v.checked_mul(m)) {
                        Some(v) if u32::from(p) + shift <= 38 => {
                            Ok(Transformed::yes(Expr::Literal(
                                ScalarValue::Decimal128(Some(v), p + shift as u8, 0),
                                meta,
                            )))
                        }
                        _ => Ok(Transformed::no(Expr::Literal(
                            ScalarValue::Decimal128(Some(v), p, s),
                            meta,
                        ))),
                    }
                }
                // A numeric meeting a float is a float (PostgreSQL casts numeric to float8
                // there); the engine's coercion would cast the float to a decimal. Also where
                // one type is chosen for several values: CASE's branches, coalesce, greatest,
                // least, nullif.
                Expr::BinaryExpr(mut b) => {
                    let mut changed = floats_where_mixed(vec![&mut *b.left, &mut *b.right], schema);
                    // An integer literal in arithmetic with a decimal is a decimal of its own
                    // digits (`10 * amount` is `numeric(15,2)`, not `numeric(23,2)`): the
                    // engine would widen it to all of an integer's digits, and a quotient
                    // of the result would keep fewer places than PostgreSQL's.
                    if matches!(
                        b.op,
                        Operator::Plus
                            | Operator::Minus
                            | Operator::Multiply
                            | Operator::Divide
                            | Operator::Modulo
                    ) {
                        let decimal =
                            |e: &Expr| matches!(e.get_type(schema), Ok(DataType::Decimal128(..)));
                        if decimal(&b.right) {
                            changed |= literal_as_decimal(&mut b.left);
                        }
                        if decimal(&b.left) {
                            changed |= literal_as_decimal(&mut b.right);
                        }
                    }
                    // A `numeric` quotient is typed as PostgreSQL's before type coercion
                    // chooses the types around it: coalesce, CASE, greatest and comparisons
                    // would otherwise be given the engine's quotient type (6 places) and cut
                    // PostgreSQL's quotient to it.
                    let types = (b.left.get_type(schema), b.right.get_type(schema));
                    if let (Operator::Divide, Ok(l), Ok(r)) = (b.op, &types.0, &types.1)
                        && crate::pgnumeric::quotient_type(l, r).is_some()
                    {
                        return Ok(Transformed::yes(PgSemantics::call(
                            &self.numeric_div,
                            vec![*b.left, *b.right],
                        )));
                    }
                    Ok(Transformed::new_transformed(Expr::BinaryExpr(b), changed))
                }
                Expr::Between(mut b) => {
                    let changed =
                        floats_where_mixed(vec![&mut *b.expr, &mut *b.low, &mut *b.high], schema);
                    Ok(Transformed::new_transformed(Expr::Between(b), changed))
                }
                Expr::InList(mut l) => {
                    let operands = std::iter::once(&mut *l.expr).chain(l.list.iter_mut());
                    let changed = floats_where_mixed(operands.collect(), schema);
                    Ok(Transformed::new_transformed(Expr::InList(l), changed))
                }
                Expr::Case(mut c) => {
                    let branches = c
                        .when_then_expr
                        .iter_mut()
                        .map(|(_, t)| &mut **t)
                        .chain(c.else_expr.as_deref_mut());
                    let changed = floats_where_mixed(branches.collect(), schema);
                    Ok(Transformed::new_transformed(Expr::Case(c), changed))
                }
                Expr::ScalarFunction(mut f)
                    if matches!(
                        f.func.name(),
                        "coalesce" | "greatest" | "least" | "nullif" | "nvl" | "ifnull"
                    ) =>
                {
                    let changed = floats_where_mixed(f.args.iter_mut().collect(), schema);
                    Ok(Transformed::new_transformed(
                        Expr::ScalarFunction(f),
                        changed,
                    ))
                }
                // sum(bigint) is numeric on PostgreSQL (it cannot overflow; the engine's Int64
                // sum wraps around). Before type coercion, the argument's type is still the
                // statement's own (coercion widens sum(integer) to bigint).
                Expr::AggregateFunction(mut f) => {
                    let name = f.func.name().to_string();
                    let changed = numeric_sum(&name, &mut f.params.args, schema);
                    Ok(Transformed::new_transformed(
                        Expr::AggregateFunction(f),
                        changed,
                    ))
                }
                Expr::WindowFunction(mut w) => {
                    let name = w.fun.name().to_string();
                    let changed = numeric_sum(&name, &mut w.params.args, schema);
                    Ok(Transformed::new_transformed(
                        Expr::WindowFunction(w),
                        changed,
                    ))
                }
                other => Ok(Transformed::no(other)),
            },
        )
    }

    fn name(&self) -> &str {
        "kondate_postgresql_integer_literals"
    }
}

#[derive(Debug)]
struct PgSemantics {
    add: Arc<ScalarUDF>,
    sub: Arc<ScalarUDF>,
    mul: Arc<ScalarUDF>,
    div: Arc<ScalarUDF>,
    round: Arc<ScalarUDF>,
    text: Arc<ScalarUDF>,
    numeric_div: Arc<ScalarUDF>,
    to_numeric: Arc<ScalarUDF>,
}

impl PgSemantics {
    fn new() -> Self {
        let f = |op| Arc::new(ScalarUDF::from(PgFn::new(op)));
        PgSemantics {
            add: f(Op::Add),
            sub: f(Op::Sub),
            mul: f(Op::Mul),
            div: f(Op::FloatDiv),
            round: f(Op::RoundForInt),
            text: f(Op::Text),
            numeric_div: Arc::new(ScalarUDF::from(crate::pgnumeric::NumericDiv::new())),
            to_numeric: Arc::new(ScalarUDF::from(crate::pgnumeric::ToNumeric::new())),
        }
    }

    fn call(udf: &Arc<ScalarUDF>, args: Vec<Expr>) -> Expr {
        Expr::ScalarFunction(ScalarFunction::new_udf(udf.clone(), args))
    }

    /// The rewrite of one expression, whose inputs have the types `schema` gives.
    fn rewrite(&self, e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        let type_of = |e: &Expr| e.get_type(schema).ok();
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (lt, rt) = (type_of(&left), type_of(&right));
                // date ± interval is a timestamp on PostgreSQL; the engine keeps a date.
                if matches!(op, Operator::Plus | Operator::Minus)
                    && matches!(lt, Some(DataType::Date32 | DataType::Date64))
                    && matches!(rt, Some(DataType::Interval(_)))
                    && !from_integer(&right, schema)
                {
                    return Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr {
                        left: Box::new(Expr::Cast(Cast::new(
                            left,
                            DataType::Timestamp(TimeUnit::Microsecond, None),
                        ))),
                        op,
                        right,
                    })));
                }
                // Two decimals compared: type coercion cast them to one type, but a rewrite
                // below may have changed one side's (a quotient is `numeric(38,20)` once
                // divided as PostgreSQL divides), and Arrow compares equal types only. Both
                // are compared as wide decimals that hold either exactly.
                if let (Some(DataType::Decimal128(p1, s1)), Some(DataType::Decimal128(p2, s2))) =
                    (&lt, &rt)
                    && (p1, s1) != (p2, s2)
                    && matches!(
                        op,
                        Operator::Eq
                            | Operator::NotEq
                            | Operator::Lt
                            | Operator::LtEq
                            | Operator::Gt
                            | Operator::GtEq
                            | Operator::IsDistinctFrom
                            | Operator::IsNotDistinctFrom
                    )
                {
                    let scale = (*s1).max(*s2);
                    let whole =
                        (i16::from(*p1) - i16::from(*s1)).max(i16::from(*p2) - i16::from(*s2));
                    let precision = (whole + i16::from(scale)).clamp(1, 76) as u8;
                    let wide = DataType::Decimal256(precision, scale);
                    let cast = |e: Box<Expr>| Box::new(Expr::Cast(Cast::new(e, wide.clone())));
                    return Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr {
                        left: cast(left),
                        op,
                        right: cast(right),
                    })));
                }
                // date - date is an integer number of days on PostgreSQL, a bigint here.
                if op == Operator::Minus
                    && matches!(lt, Some(DataType::Date32))
                    && matches!(rt, Some(DataType::Date32))
                {
                    return Ok(Transformed::yes(Expr::Cast(Cast::new(
                        Box::new(Expr::BinaryExpr(BinaryExpr { left, op, right })),
                        DataType::Int32,
                    ))));
                }
                let udf = match (op, &lt, &rt) {
                    (Operator::Plus, Some(l), Some(r)) if l.is_integer() && l == r => &self.add,
                    (Operator::Minus, Some(l), Some(r)) if l.is_integer() && l == r => &self.sub,
                    (Operator::Multiply, Some(l), Some(r)) if l.is_integer() && l == r => &self.mul,
                    (Operator::Divide, Some(l), Some(r)) if l.is_floating() && l == r => &self.div,
                    // numeric / numeric: rounded where PostgreSQL rounds (the engine cuts).
                    (Operator::Divide, Some(l), Some(r))
                        if crate::pgnumeric::quotient_type(l, r).is_some() =>
                    {
                        &self.numeric_div
                    }
                    _ => {
                        return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                            left,
                            op,
                            right,
                        })));
                    }
                };
                Ok(Transformed::yes(Self::call(udf, vec![*left, *right])))
            }
            Expr::Cast(Cast { expr, field }) => {
                let data_type = field.data_type();
                let from = type_of(&expr);
                match &from {
                    Some(f)
                        if data_type.is_integer()
                            && (f.is_floating() || matches!(f, DataType::Decimal128(..))) =>
                    {
                        Ok(Transformed::yes(Expr::Cast(Cast::new_from_field(
                            Box::new(Self::call(&self.round, vec![*expr])),
                            field,
                        ))))
                    }
                    Some(f)
                        if matches!(
                            data_type,
                            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
                        ) && (crate::pgout::needs_pg_text(f)
                            || matches!(f, DataType::Timestamp(..))) =>
                    {
                        Ok(Transformed::yes(Expr::Cast(Cast::new_from_field(
                            Box::new(Self::call(&self.text, vec![*expr])),
                            field,
                        ))))
                    }
                    _ => Ok(Transformed::no(Expr::Cast(Cast { expr, field }))),
                }
            }
            // `x::numeric`: a cast to the type that keeps x's scale.
            Expr::ScalarFunction(f) if f.name() == "kondate_numeric" && f.args.len() == 1 => {
                let arg = f.args.into_iter().next().expect("one argument");
                match type_of(&arg) {
                    Some(t) => {
                        let to = crate::pgnumeric::unconstrained_type(&t);
                        Ok(Transformed::yes(if t == to {
                            arg
                        } else {
                            Expr::Cast(Cast::new(Box::new(arg), to))
                        }))
                    }
                    None => Ok(Transformed::no(Self::call(&self.to_numeric, vec![arg]))),
                }
            }
            // date_trunc of a date: PostgreSQL reads the date as a timestamptz (midnight,
            // in the session's zone, UTC) and gives one.
            Expr::ScalarFunction(mut f)
                if f.name() == "date_trunc" && f.args.len() == 2 && is_date(&f.args[1], schema) =>
            {
                // Type coercion may have cast the date to a timestamp already: take the date.
                let d = match f.args.remove(1) {
                    Expr::Cast(c) if !matches!(type_of(&c.expr), Some(DataType::Timestamp(..))) => {
                        *c.expr
                    }
                    other => other,
                };
                f.args.push(Expr::Cast(Cast::new(
                    Box::new(d),
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                )));
                Ok(Transformed::yes(Expr::ScalarFunction(f)))
            }
            // round(float): PostgreSQL rounds half to even (rint); the engine away from zero.
            Expr::ScalarFunction(f)
                if f.name() == "round"
                    && f.args.len() == 1
                    && type_of(&f.args[0]).is_some_and(|t| t.is_floating()) =>
            {
                let t = type_of(&f.args[0]).expect("checked above");
                let arg = f.args.into_iter().next().expect("one argument");
                Ok(Transformed::yes(Expr::Cast(Cast::new(
                    Box::new(Self::call(&self.round, vec![arg])),
                    if t == DataType::Float32 {
                        DataType::Float32
                    } else {
                        DataType::Float64
                    },
                ))))
            }
            other => Ok(Transformed::no(other)),
        }
    }
}

impl AnalyzerRule for PgSemantics {
    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        rewrite_expressions(
            plan,
            |p| matches!(p, LogicalPlan::TableScan(_)),
            |e, schema| self.rewrite(e, schema),
        )
    }

    fn name(&self) -> &str {
        "kondate_postgresql_semantics"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Add,
    Sub,
    Mul,
    FloatDiv,
    RoundForInt,
    Text,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgFn {
    op: Op,
    signature: Signature,
}

impl PgFn {
    fn new(op: Op) -> PgFn {
        let n = match op {
            Op::RoundForInt | Op::Text => 1,
            _ => 2,
        };
        PgFn {
            op,
            signature: Signature::any(n, Volatility::Immutable),
        }
    }
}

/// PostgreSQL's name for an integer type, in its "out of range" message.
fn pg_integer_name(t: &DataType) -> &'static str {
    match t {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint",
        DataType::Int32 | DataType::UInt16 => "integer",
        _ => "bigint",
    }
}

impl ScalarUDFImpl for PgFn {
    fn name(&self) -> &str {
        match self.op {
            Op::Add => "kondate_checked_add",
            Op::Sub => "kondate_checked_sub",
            Op::Mul => "kondate_checked_mul",
            Op::FloatDiv => "kondate_checked_float_div",
            Op::RoundForInt => "kondate_round_for_int",
            Op::Text => "kondate_pg_text",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(match self.op {
            Op::Text => DataType::Utf8,
            _ => args[0].clone(),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.clone().into_array(n))
            .collect::<Result<_>>()?;
        let out: ArrayRef = match self.op {
            Op::Add | Op::Sub | Op::Mul => {
                use arrow::compute::kernels::numeric;
                let (l, r) = (&arrays[0], &arrays[1]);
                let res = match self.op {
                    Op::Add => numeric::add(l, r),
                    Op::Sub => numeric::sub(l, r),
                    _ => numeric::mul(l, r),
                };
                match res {
                    Ok(a) => a,
                    Err(arrow::error::ArrowError::ArithmeticOverflow(what)) => {
                        return exec_err!(
                            "{} out of range ({what}); cast to a wider type (bigint or \
                             numeric) before the arithmetic",
                            pg_integer_name(l.data_type())
                        );
                    }
                    Err(e) => return Err(DataFusionError::ArrowError(Box::new(e), None)),
                }
            }
            Op::FloatDiv => {
                let r = &arrays[1];
                let zero = match r.data_type() {
                    DataType::Float64 => r
                        .as_primitive::<Float64Type>()
                        .iter()
                        .any(|v| v == Some(0.0)),
                    DataType::Float32 => r
                        .as_primitive::<Float32Type>()
                        .iter()
                        .any(|v| v == Some(0.0)),
                    _ => false,
                };
                if zero {
                    return exec_err!("division by zero");
                }
                arrow::compute::kernels::numeric::div(&arrays[0], r)?
            }
            Op::RoundForInt => {
                let a = &arrays[0];
                match a.data_type() {
                    DataType::Float64 => Arc::new(
                        a.as_primitive::<Float64Type>()
                            .unary::<_, Float64Type>(f64::round_ties_even),
                    ) as ArrayRef,
                    DataType::Float32 => Arc::new(
                        a.as_primitive::<Float32Type>()
                            .unary::<_, Float32Type>(f32::round_ties_even),
                    ),
                    DataType::Decimal128(p, s) => {
                        let unit = 10i128.pow(u32::try_from(*s).unwrap_or(0));
                        let half = unit / 2;
                        let d: Decimal128Array = a.as_primitive::<Decimal128Type>().unary(|v| {
                            if unit <= 1 {
                                return v;
                            }
                            let whole = v / unit;
                            let rest = v % unit;
                            let whole = if rest >= half {
                                whole + 1
                            } else if rest <= -half {
                                whole - 1
                            } else {
                                whole
                            };
                            whole * unit
                        });
                        Arc::new(d.with_precision_and_scale(*p, *s)?)
                    }
                    _ => a.clone(),
                }
            }
            Op::Text => crate::pgout::pg_text(arrays[0].as_ref())?,
        };
        Ok(ColumnarValue::Array(out))
    }
}

#[cfg(test)]
mod tests {
    // The rule is tested through SQL in tests/embedded.rs and the fidelity corpus; here
    // only what SQL cannot reach.
    use super::*;

    #[test]
    fn integer_names_follow_postgresql() {
        assert_eq!(pg_integer_name(&DataType::Int16), "smallint");
        assert_eq!(pg_integer_name(&DataType::Int32), "integer");
        assert_eq!(pg_integer_name(&DataType::Int64), "bigint");
    }
}
