//! PostgreSQL's display scale, value by value, on the embedded warehouse.
//!
//! A PostgreSQL `numeric` value carries a display scale of its own: `7.0 / 2` is
//! `3.5000000000000000` and `1 / 3.0` is `0.33333333333333333333` (16 significant digits at
//! least, so the places depend on the operands' magnitudes: `select_div_scale`), an `avg` of
//! integers likewise group by group, `1.5` in a `UNION ALL` with a `numeric(12,2)` column stays
//! `1.5`, and `least(0, 2.5)` is `0`. An Arrow decimal column has one scale for all its values,
//! so its text had as many places as the column's widest value needed.
//!
//! Here a statement's plan, before it is analysed (while each cast in it is one the statement
//! wrote), is given a *companion* for each exact-number result column: PostgreSQL's display
//! scale of each value, as an `integer` expression built from the same expression — `+`, `-`
//! and `%` take the larger operand's scale, `*` the sum, `/` PostgreSQL's division scale of
//! the operands' values ([`DivisionScale`]), `avg` that of its `sum` over its `count`, `CASE`,
//! `coalesce`, `least`/`greatest` and `nullif` the scale of the value they pick, a variance
//! or standard deviation the scale of its final division ([`crate::pgvariance`]), a cast to
//! `numeric(p,s)` or `round(x, s)` the scale `s`, a literal the places it was written with —
//! `min`/`max` that of the value they pick — carried up through projections, filters, sorts,
//! limits, subqueries and CTEs, `UNION ALL`, `DISTINCT`, aggregates and window functions.
//! A column whose values all have one scale gets that constant and no companion. When the
//! result is written ([`Shown`]), each decimal column is printed value by value at its display
//! scale and the companions are dropped.
//!
//! A value is never cut: one with digits past its display scale (PostgreSQL would have
//! rounded it earlier: an average of quotients) is printed at its column's scale. Not
//! followed — printed at the column's scale, as before — are quotients computed inside a
//! join's inputs (the join's own columns keep constant scales), `VALUES` lists, `min`/`max`
//! over a window, and a `numeric` made from a float or from text.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, Int32Builder, RecordBatch, StringBuilder,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Decimal128Type, Int32Type, Schema, SchemaRef};
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::error::Result;
use datafusion::execution::SessionState;
use datafusion::logical_expr::expr::{AggregateFunction, Case, ScalarFunction, WindowFunction};
use datafusion::logical_expr::{
    Aggregate, AggregateUDF, BinaryExpr, ColumnarValue, Distinct, Expr, ExprSchemable, Filter,
    JoinType, Limit, LogicalPlan, Operator, Projection, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Sort, SortExpr, SubqueryAlias, Union, Volatility, Window,
    WindowFunctionDefinition, lit,
};

/// Where a result column's display scales are: a companion column of the plan, or one
/// scale for every value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Column(usize),
    Const(i32),
}

/// `plan` with a companion column (after its own columns) for each column whose display
/// scale varies, and, for each of its own columns, where its scales are (None: the column's
/// type says).
pub fn with_display_scales(
    plan: LogicalPlan,
    state: &SessionState,
) -> Result<(LogicalPlan, Vec<Option<Scale>>)> {
    let functions = state.aggregate_functions();
    let mut r = Rewriter {
        next: 0,
        division_scale: Arc::new(ScalarUDF::from(DivisionScale::new())),
        greatest: datafusion::functions::core::greatest(),
        sum: functions
            .get("sum")
            .cloned()
            .unwrap_or_else(datafusion::functions_aggregate::sum::sum_udaf),
        count: datafusion::functions_aggregate::count::count_udaf(),
        max: datafusion::functions_aggregate::min_max::max_udaf(),
        first_value: datafusion::functions_aggregate::first_last::first_value_udaf(),
    };
    r.node(plan)
}

struct Rewriter {
    next: usize,
    division_scale: Arc<ScalarUDF>,
    greatest: Arc<ScalarUDF>,
    sum: Arc<AggregateUDF>,
    count: Arc<AggregateUDF>,
    max: Arc<AggregateUDF>,
    first_value: Arc<AggregateUDF>,
}

/// A type whose values have a display scale (integers have 0).
fn is_exact(t: Option<DataType>) -> bool {
    t.is_some_and(|t| t.is_integer() || matches!(t, DataType::Decimal128(..) | DataType::Null))
}

/// The one display scale every value of type `t` has, if it has one.
fn type_scale(t: &DataType) -> Option<i32> {
    match t {
        DataType::Decimal128(_, s) => Some(i32::from(*s).max(0)),
        t if t.is_integer() || *t == DataType::Null => Some(0),
        _ => None,
    }
}

fn as_const(e: &Expr) -> Option<i32> {
    match e {
        Expr::Literal(ScalarValue::Int32(Some(c)), _) => Some(*c),
        _ => None,
    }
}

/// Field `i` of `schema` as a column reference.
fn column(schema: &DFSchema, i: usize) -> Expr {
    Expr::Column(Column::from(schema.qualified_field(i)))
}

fn scale_expr(schema: &DFSchema, s: Scale) -> Expr {
    match s {
        Scale::Column(i) => column(schema, i),
        Scale::Const(c) => lit(c),
    }
}

fn aggregate(f: &Arc<AggregateUDF>, arg: Expr, distinct: bool, filter: Option<Box<Expr>>) -> Expr {
    Expr::AggregateFunction(AggregateFunction::new_udf(
        f.clone(),
        vec![arg],
        distinct,
        filter,
        vec![],
        None,
    ))
}

/// The aggregates a display scale is followed through, by name.
fn followed(name: &str) -> Option<&'static str> {
    match name {
        "sum" => Some("sum"),
        "avg" | "mean" => Some("avg"),
        "min" => Some("min"),
        "max" => Some("max"),
        _ => None,
    }
}

impl Rewriter {
    fn name(&mut self) -> String {
        self.next += 1;
        format!("__kondate_scale_{}", self.next)
    }

    fn node(&mut self, plan: LogicalPlan) -> Result<(LogicalPlan, Vec<Option<Scale>>)> {
        let n = plan.schema().fields().len();
        Ok(match plan {
            LogicalPlan::Projection(p) => self.projection(p)?,
            LogicalPlan::Filter(f) => {
                let (input, map) = self.node(Arc::unwrap_or_clone(f.input))?;
                let plan = Filter::try_new(f.predicate, Arc::new(input))?;
                (LogicalPlan::Filter(plan), map)
            }
            LogicalPlan::Sort(s) => {
                let (input, map) = self.node(Arc::unwrap_or_clone(s.input))?;
                let plan = Sort {
                    expr: s.expr,
                    input: Arc::new(input),
                    fetch: s.fetch,
                };
                (LogicalPlan::Sort(plan), map)
            }
            LogicalPlan::Limit(l) => {
                let (input, map) = self.node(Arc::unwrap_or_clone(l.input))?;
                let plan = Limit {
                    skip: l.skip,
                    fetch: l.fetch,
                    input: Arc::new(input),
                };
                (LogicalPlan::Limit(plan), map)
            }
            LogicalPlan::SubqueryAlias(a) => {
                let (input, map) = self.node(Arc::unwrap_or_clone(a.input))?;
                let plan = SubqueryAlias::try_new(Arc::new(input), a.alias)?;
                (LogicalPlan::SubqueryAlias(plan), map)
            }
            LogicalPlan::Union(u) => self.union(u)?,
            LogicalPlan::Aggregate(a) => self.aggregate(a)?,
            LogicalPlan::Window(w) => self.window(w)?,
            // A table's columns have their types' scales (analysis does not change them).
            LogicalPlan::TableScan(t) => {
                let map = (t.projected_schema.fields().iter())
                    .map(|f| type_scale(f.data_type()).map(Scale::Const))
                    .collect();
                (LogicalPlan::TableScan(t), map)
            }
            // Values pass through these unchanged: the constant scales below are kept, the
            // companions are not carried (the inputs stay as they are).
            LogicalPlan::Join(j) => {
                let (left, right) = (self.constants(&j.left)?, self.constants(&j.right)?);
                let map = match j.join_type {
                    JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => left,
                    JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => right,
                    _ => left.into_iter().chain(right).collect(),
                };
                let map = if map.len() == n { map } else { vec![None; n] };
                (LogicalPlan::Join(j), map)
            }
            LogicalPlan::Distinct(Distinct::All(input)) => self.distinct(input)?,
            // Anything else: its columns' scales are not known (each is printed at its
            // column's scale).
            other => (other, vec![None; n]),
        })
    }

    /// `SELECT DISTINCT`: equal values are one row whatever their scales, as on PostgreSQL
    /// (which shows one of them): grouped by the values, each companion the largest scale.
    fn distinct(&mut self, input: Arc<LogicalPlan>) -> Result<(LogicalPlan, Vec<Option<Scale>>)> {
        let n = input.schema().fields().len();
        let (input, in_map) = self.node(Arc::unwrap_or_clone(input))?;
        if !in_map.iter().any(|s| matches!(s, Some(Scale::Column(_)))) {
            return Ok((
                LogicalPlan::Distinct(Distinct::All(Arc::new(input))),
                in_map,
            ));
        }
        let schema = Arc::clone(input.schema());
        let group: Vec<Expr> = (0..n).map(|i| column(&schema, i)).collect();
        let mut aggr = Vec::new();
        let mut map = in_map;
        for s in map.iter_mut() {
            if let Some(Scale::Column(c)) = *s {
                let name = self.name();
                aggr.push(aggregate(&self.max, column(&schema, c), false, None).alias(name));
                *s = Some(Scale::Column(n + aggr.len() - 1));
            }
        }
        let plan = Aggregate::try_new(Arc::new(input), group, aggr)?;
        Ok((LogicalPlan::Aggregate(plan), map))
    }

    /// The constant scales of `plan`'s columns, which stays as it is.
    fn constants(&mut self, plan: &LogicalPlan) -> Result<Vec<Option<Scale>>> {
        let (_, map) = self.node(plan.clone())?;
        Ok(map
            .into_iter()
            .map(|s| s.filter(|s| matches!(s, Scale::Const(_))))
            .collect())
    }

    /// A projection's expressions, then a companion for each whose scale varies.
    fn projection(&mut self, p: Projection) -> Result<(LogicalPlan, Vec<Option<Scale>>)> {
        let (input, in_map) = self.node(Arc::unwrap_or_clone(p.input))?;
        let schema = Arc::clone(input.schema());
        let mut exprs = p.expr;
        let n = exprs.len();
        let mut map = Vec::with_capacity(n);
        let mut extra = Vec::new();
        // Every expression is looked at: before analysis an `avg` of integers is typed a
        // float, which it is not once analysed (`pgsemantics`); a float's scale is None.
        for e in exprs.iter() {
            map.push(match self.dscale(e, &schema, &in_map) {
                None => None,
                Some(d) => match as_const(&d) {
                    Some(c) => Some(Scale::Const(c)),
                    None => {
                        let name = self.name();
                        extra.push(d.alias(name));
                        Some(Scale::Column(n + extra.len() - 1))
                    }
                },
            });
        }
        exprs.extend(extra);
        let plan = Projection::try_new(exprs, Arc::new(input))?;
        Ok((LogicalPlan::Projection(plan), map))
    }

    /// `UNION ALL`: each input gets the same companions (its own scales, or the constant
    /// its column's type has) for the columns whose scales differ from input to input or
    /// from value to value.
    fn union(&mut self, u: Union) -> Result<(LogicalPlan, Vec<Option<Scale>>)> {
        let n = u.schema.fields().len();
        let mut inputs = Vec::with_capacity(u.inputs.len());
        for input in u.inputs {
            inputs.push(self.node(Arc::unwrap_or_clone(input))?);
        }
        // Each input's scale of column j: a constant, a companion, or unknown (None).
        let scale_of = |(_, map): &(LogicalPlan, Vec<Option<Scale>>), j: usize| map[j];
        let mut map = vec![None; n];
        let mut companions = Vec::new();
        for (j, m) in map.iter_mut().enumerate() {
            let scales: Vec<Option<Scale>> = inputs.iter().map(|i| scale_of(i, j)).collect();
            match scales.first().copied().flatten() {
                Some(Scale::Const(c)) if scales.iter().all(|s| *s == Some(Scale::Const(c))) => {
                    *m = Some(Scale::Const(c));
                }
                _ if scales.iter().any(|s| s.is_some()) => {
                    *m = Some(Scale::Column(n + companions.len()));
                    companions.push((j, self.name()));
                }
                _ => {}
            }
        }
        let mut plans = Vec::with_capacity(inputs.len());
        for (plan, own) in inputs {
            if companions.is_empty() {
                plans.push(Arc::new(plan));
                continue;
            }
            let schema = Arc::clone(plan.schema());
            let mut exprs: Vec<Expr> = (0..n).map(|i| column(&schema, i)).collect();
            for (j, name) in &companions {
                let d = match own[*j] {
                    Some(s) => scale_expr(&schema, s),
                    None => lit(ScalarValue::Int32(None)),
                };
                exprs.push(d.alias(name));
            }
            let plan = Projection::try_new(exprs, Arc::new(plan))?;
            plans.push(Arc::new(LogicalPlan::Projection(plan)));
        }
        let plan = Union::try_new_with_loose_types(plans)?;
        Ok((LogicalPlan::Union(plan), map))
    }

    /// The scales of `name(x)`, an aggregate over rows whose `x` has scales `dx`: for `avg`,
    /// the aggregates to add (`sum`, `count`, maybe `max` of `dx`, made by `make` with the
    /// aggregate's DISTINCT and FILTER) and the scale over their results.
    fn aggregate_scale(
        &mut self,
        name: &str,
        x: &Expr,
        dx: Expr,
        make: &dyn Fn(&Arc<AggregateUDF>, Expr, bool) -> Expr,
        added: &mut Vec<Expr>,
    ) -> Option<Result<Expr, i32>> {
        // A variance or standard deviation: its own sums end in the scale.
        if let Some(udaf) = crate::pgvariance::scale_udaf(name) {
            let alias = self.name();
            added.push(make(&udaf, x.clone(), true).alias(&alias));
            return Some(Ok(Expr::Column(Column::new_unqualified(alias))));
        }
        let dx_const = as_const(&dx);
        match (followed(name)?, dx_const) {
            (_, Some(c)) if name != "avg" && name != "mean" => Some(Err(c)),
            ("sum", None) => {
                let m = self.name();
                added.push(make(&self.max, dx, false).alias(&m));
                Some(Ok(Expr::Column(Column::new_unqualified(m))))
            }
            ("avg", _) => {
                let (s, c) = (self.name(), self.name());
                added.push(make(&self.sum, x.clone(), true).alias(&s));
                added.push(make(&self.count, x.clone(), true).alias(&c));
                let d = match dx_const {
                    Some(c) => lit(c),
                    None => {
                        let m = self.name();
                        added.push(make(&self.max, dx, false).alias(&m));
                        Expr::Column(Column::new_unqualified(m))
                    }
                };
                Some(Ok(Expr::ScalarFunction(ScalarFunction::new_udf(
                    self.division_scale.clone(),
                    vec![
                        Expr::Column(Column::new_unqualified(s)),
                        Expr::Column(Column::new_unqualified(c)),
                        d,
                        lit(0),
                    ],
                ))))
            }
            _ => None,
        }
    }

    fn aggregate(&mut self, a: Aggregate) -> Result<(LogicalPlan, Vec<Option<Scale>>)> {
        let n = a.schema.fields().len();
        let first = n - a.aggr_expr.len();
        let (input, in_map) = self.node(Arc::unwrap_or_clone(a.input))?;
        let schema = Arc::clone(input.schema());
        let mut map = vec![None; n];
        let mut added = Vec::new();
        let mut scales = Vec::new();
        let grouping_sets = a
            .group_expr
            .iter()
            .any(|g| matches!(g, Expr::GroupingSet(_)));
        if !grouping_sets {
            // A group's key is one of its rows' values (PostgreSQL shows the first's).
            for (i, g) in a.group_expr.iter().enumerate() {
                if let Some(c) = self.dscale(g, &schema, &in_map).as_ref().and_then(as_const) {
                    map[i] = Some(Scale::Const(c));
                }
            }
        }
        for (i, e) in a.aggr_expr.iter().enumerate() {
            let Expr::AggregateFunction(f) = e.clone().unalias() else {
                continue;
            };
            let [x] = f.params.args.as_slice() else {
                continue;
            };
            if grouping_sets || !is_exact(x.get_type(&schema).ok()) {
                continue;
            }
            let Some(dx) = self.dscale(x, &schema, &in_map) else {
                continue;
            };
            let (distinct, filter) = (f.params.distinct, f.params.filter.clone());
            // min and max of values whose scales vary: the scale of the value picked.
            let name = f.func.name();
            if (name == "min" || name == "max") && as_const(&dx).is_none() {
                let alias = self.name();
                let picked = Expr::AggregateFunction(AggregateFunction::new_udf(
                    self.first_value.clone(),
                    vec![dx],
                    false,
                    filter,
                    vec![SortExpr::new(x.clone(), name == "min", false)],
                    None,
                ));
                added.push(picked.alias(&alias));
                scales.push((first + i, Expr::Column(Column::new_unqualified(alias))));
                continue;
            }
            let make = |udaf: &Arc<AggregateUDF>, arg: Expr, keep_distinct: bool| {
                aggregate(udaf, arg, keep_distinct && distinct, filter.clone())
            };
            match self.aggregate_scale(f.func.name(), x, dx, &make, &mut added) {
                Some(Err(c)) => map[first + i] = Some(Scale::Const(c)),
                Some(Ok(d)) => scales.push((first + i, d)),
                None => {}
            }
        }
        let mut aggr_expr = a.aggr_expr;
        aggr_expr.extend(added);
        let plan = LogicalPlan::Aggregate(Aggregate::try_new(
            Arc::new(input),
            a.group_expr,
            aggr_expr,
        )?);
        if scales.is_empty() {
            return Ok((plan, map));
        }
        let outer = Arc::clone(plan.schema());
        let mut exprs: Vec<Expr> = (0..n).map(|i| column(&outer, i)).collect();
        for (k, (j, d)) in scales.into_iter().enumerate() {
            let name = self.name();
            exprs.push(d.alias(name));
            map[j] = Some(Scale::Column(n + k));
        }
        let plan = Projection::try_new(exprs, Arc::new(plan))?;
        Ok((LogicalPlan::Projection(plan), map))
    }

    fn window(&mut self, w: Window) -> Result<(LogicalPlan, Vec<Option<Scale>>)> {
        let n = w.schema.fields().len();
        let in_n_before = w.input.schema().fields().len();
        let (input, in_map) = self.node(Arc::unwrap_or_clone(w.input))?;
        let schema = Arc::clone(input.schema());
        let in_n = schema.fields().len();
        let m = w.window_expr.len();
        let mut map: Vec<Option<Scale>> = vec![None; n];
        let mut added = Vec::new();
        let mut scales = Vec::new();
        for (i, e) in w.window_expr.iter().enumerate() {
            let Expr::WindowFunction(f) = e.clone().unalias() else {
                continue;
            };
            let WindowFunctionDefinition::AggregateUDF(udaf) = &f.fun else {
                continue;
            };
            let [x] = f.params.args.as_slice() else {
                continue;
            };
            if !is_exact(x.get_type(&schema).ok()) {
                continue;
            }
            let Some(dx) = self.dscale(x, &schema, &in_map) else {
                continue;
            };
            let params = f.params.clone();
            let make = |g: &Arc<AggregateUDF>, arg: Expr, keep_distinct: bool| {
                let mut p = params.clone();
                p.args = vec![arg];
                p.distinct = keep_distinct && params.distinct;
                Expr::WindowFunction(Box::new(WindowFunction {
                    fun: WindowFunctionDefinition::AggregateUDF(g.clone()),
                    params: p,
                }))
            };
            match self.aggregate_scale(udaf.name(), x, dx, &make, &mut added) {
                Some(Err(c)) => map[in_n_before + i] = Some(Scale::Const(c)),
                Some(Ok(d)) => scales.push((in_n_before + i, d)),
                None => {}
            }
        }
        let carried = in_map.iter().any(|s| matches!(s, Some(Scale::Column(_))));
        let mut window_expr = w.window_expr;
        window_expr.extend(added);
        let plan = LogicalPlan::Window(Window::try_new(window_expr, Arc::new(input))?);
        if scales.is_empty() && !carried && in_n == in_n_before && m == window_count(&plan) {
            map[..in_n_before].copy_from_slice(&in_map[..in_n_before]);
            return Ok((plan, map));
        }
        // Lay the columns out as before (the input's own, then the window functions'),
        // followed by the companions.
        let outer = Arc::clone(plan.schema());
        let mut exprs: Vec<Expr> = (0..in_n_before)
            .map(|i| column(&outer, i))
            .chain((0..m).map(|i| column(&outer, in_n + i)))
            .collect();
        for (j, s) in in_map.iter().enumerate() {
            map[j] = match s {
                Some(Scale::Column(c)) => {
                    exprs.push(column(&outer, *c));
                    Some(Scale::Column(exprs.len() - 1))
                }
                other => *other,
            };
        }
        for (j, d) in scales {
            let name = self.name();
            exprs.push(d.alias(name));
            map[j] = Some(Scale::Column(exprs.len() - 1));
        }
        let plan = Projection::try_new(exprs, Arc::new(plan))?;
        Ok((LogicalPlan::Projection(plan), map))
    }

    /// PostgreSQL's display scale of each value of `e` (an expression over `schema`, whose
    /// columns' scales `map` says), as an `integer` expression; None where it is not
    /// followed (see the module).
    fn dscale(&self, e: &Expr, schema: &DFSchema, map: &[Option<Scale>]) -> Option<Expr> {
        let d = |e: &Expr| self.dscale(e, schema, map);
        match e {
            Expr::Alias(a) => d(&a.expr),
            Expr::Column(c) => {
                let i = schema.index_of_column(c).ok()?;
                map.get(i).copied().flatten().map(|s| scale_expr(schema, s))
            }
            Expr::Literal(v, _) => match v {
                ScalarValue::Decimal128(_, _, s) => Some(lit(i32::from(*s).max(0))),
                v if v.is_null() || v.data_type().is_integer() => Some(lit(0)),
                _ => None,
            },
            Expr::Cast(c) => type_scale(c.field.data_type()).map(lit),
            Expr::TryCast(c) => type_scale(c.field.data_type()).map(lit),
            Expr::Negative(x) => d(x),
            Expr::BinaryExpr(b) => {
                let t = e.get_type(schema).ok()?;
                if t.is_integer() {
                    return Some(lit(0));
                }
                if !matches!(t, DataType::Decimal128(..)) {
                    return None;
                }
                let (l, r) = (d(&b.left)?, d(&b.right)?);
                match (b.op, as_const(&l), as_const(&r)) {
                    (Operator::Plus | Operator::Minus | Operator::Modulo, Some(l), Some(r)) => {
                        Some(lit(l.max(r)))
                    }
                    (Operator::Plus | Operator::Minus | Operator::Modulo, _, _) => {
                        Some(Expr::ScalarFunction(ScalarFunction::new_udf(
                            self.greatest.clone(),
                            vec![l, r],
                        )))
                    }
                    (Operator::Multiply, Some(l), Some(r)) => Some(lit(l + r)),
                    (Operator::Multiply, _, _) => Some(Expr::BinaryExpr(BinaryExpr::new(
                        Box::new(l),
                        Operator::Plus,
                        Box::new(r),
                    ))),
                    (Operator::Divide, _, _) => {
                        Some(Expr::ScalarFunction(ScalarFunction::new_udf(
                            self.division_scale.clone(),
                            vec![(*b.left).clone(), (*b.right).clone(), l, r],
                        )))
                    }
                    _ => None,
                }
            }
            Expr::Case(c) => {
                let mut when_then = Vec::with_capacity(c.when_then_expr.len());
                for (w, t) in &c.when_then_expr {
                    when_then.push((w.clone(), Box::new(d(t)?)));
                }
                let else_expr = match &c.else_expr {
                    Some(x) => Some(Box::new(d(x)?)),
                    None => None,
                };
                Some(case_of(c.expr.clone(), when_then, else_expr))
            }
            Expr::ScalarFunction(f) => {
                let args = &f.args;
                match f.name() {
                    "kondate_numeric" | "abs" | "nullif" if !args.is_empty() => d(&args[0]),
                    "coalesce" => {
                        let mut when_then = Vec::with_capacity(args.len());
                        for a in args {
                            when_then.push((Box::new(a.clone().is_not_null()), Box::new(d(a)?)));
                        }
                        Some(case_of(None, when_then, None))
                    }
                    "least" | "greatest" => {
                        let mut when_then = Vec::with_capacity(args.len());
                        for a in args {
                            when_then.push((Box::new(a.clone().eq(e.clone())), Box::new(d(a)?)));
                        }
                        Some(case_of(None, when_then, None))
                    }
                    "round" | "trunc" if is_exact(args.first()?.get_type(schema).ok()) => {
                        match args.get(1) {
                            None => Some(lit(0)),
                            Some(Expr::Literal(v, _)) => {
                                let places = v.cast_to(&DataType::Int32).ok()?;
                                let ScalarValue::Int32(Some(places)) = places else {
                                    return None;
                                };
                                Some(lit(places.max(0)))
                            }
                            Some(_) => None,
                        }
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

fn window_count(plan: &LogicalPlan) -> usize {
    match plan {
        LogicalPlan::Window(w) => w.window_expr.len(),
        _ => 0,
    }
}

/// `CASE`, or the constant every branch has.
fn case_of(
    expr: Option<Box<Expr>>,
    when_then: Vec<(Box<Expr>, Box<Expr>)>,
    else_expr: Option<Box<Expr>>,
) -> Expr {
    let mut branches = when_then
        .iter()
        .map(|(_, t)| t.as_ref())
        .chain(else_expr.as_deref());
    if let Some(first) = branches.next().and_then(as_const)
        && branches.all(|b| as_const(b) == Some(first))
    {
        return lit(first);
    }
    Expr::Case(Case {
        expr,
        when_then_expr: when_then,
        else_expr,
    })
}

/// `kondate_division_scale(l, r, dl, dr)`: PostgreSQL's display scale of `l / r`, for
/// integer or decimal `l` and `r` whose display scales are `dl` and `dr`; NULL where either
/// is NULL, `r` is zero, or an operand is not an exact number.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DivisionScale {
    signature: Signature,
}

impl DivisionScale {
    pub fn new() -> DivisionScale {
        DivisionScale {
            signature: Signature::any(4, Volatility::Immutable),
        }
    }
}

/// An exact-number array as (values at `scale` places, `scale`), integers at 0 places.
fn exact_values(a: &ArrayRef) -> Option<(ArrayRef, i32)> {
    match a.data_type() {
        DataType::Decimal128(_, s) if *s >= 0 => Some((a.clone(), i32::from(*s))),
        t if t.is_integer() => cast(a, &DataType::Decimal128(38, 0)).ok().map(|a| (a, 0)),
        _ => None,
    }
}

impl ScalarUDFImpl for DivisionScale {
    fn name(&self) -> &str {
        "kondate_division_scale"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays = args
            .args
            .iter()
            .map(|a| a.clone().into_array(n))
            .collect::<Result<Vec<_>>>()?;
        let (Some((l, sl)), Some((r, sr))) = (exact_values(&arrays[0]), exact_values(&arrays[1]))
        else {
            return Ok(ColumnarValue::Scalar(ScalarValue::Int32(None)));
        };
        let dl = cast(&arrays[2], &DataType::Int32)?;
        let dr = cast(&arrays[3], &DataType::Int32)?;
        let (l, r) = (
            l.as_primitive::<Decimal128Type>(),
            r.as_primitive::<Decimal128Type>(),
        );
        let (dl, dr) = (
            dl.as_primitive::<Int32Type>(),
            dr.as_primitive::<Int32Type>(),
        );
        let mut out = Int32Builder::with_capacity(n);
        for i in 0..n {
            if l.is_null(i) || r.is_null(i) || r.value(i) == 0 {
                out.append_null();
                continue;
            }
            let (a, b) = (l.value(i), r.value(i));
            let da = if dl.is_null(i) { sl } else { dl.value(i) };
            let db = if dr.is_null(i) { sr } else { dr.value(i) };
            out.append_value(crate::pgnumeric::division_scale((a, sl, da), (b, sr, db)));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// A result's own columns, decimals printed at their values' display scales, without the
/// companions.
#[derive(Debug)]
pub struct Shown {
    /// The result's own columns, as the engine typed them.
    engine: Schema,
    /// The same columns as written (a re-scaled decimal is its text).
    written: SchemaRef,
    /// Each re-scaled column: (its index, its scale as stored, where its display scales are).
    rescaled: Vec<(usize, i32, Scale)>,
    /// Whether batches need reshaping (companions to drop or columns to re-scale).
    reshape: bool,
}

impl Shown {
    pub fn new(engine: &Schema, scales: &[Option<Scale>]) -> Shown {
        let visible = scales.len().min(engine.fields().len());
        let mut rescaled = Vec::new();
        let mut written = Vec::with_capacity(visible);
        for (i, f) in engine.fields().iter().take(visible).enumerate() {
            let stored = match f.data_type() {
                DataType::Decimal128(_, s) if *s > 0 => Some(i32::from(*s)),
                _ => None,
            };
            match (stored, scales[i]) {
                (Some(s), Some(Scale::Const(c))) if c < s => rescaled.push((i, s, Scale::Const(c))),
                (Some(s), Some(Scale::Column(c))) => rescaled.push((i, s, Scale::Column(c))),
                _ => {
                    written.push(f.as_ref().clone());
                    continue;
                }
            }
            written.push(f.as_ref().clone().with_data_type(DataType::Utf8));
        }
        let own = Schema::new_with_metadata(
            engine.fields()[..visible].to_vec(),
            engine.metadata().clone(),
        );
        Shown {
            reshape: visible < engine.fields().len() || !rescaled.is_empty(),
            engine: own,
            written: Arc::new(Schema::new_with_metadata(
                written,
                engine.metadata().clone(),
            )),
            rescaled,
        }
    }

    /// The result's own columns, as the engine typed them (for its names and types).
    pub fn engine(&self) -> &Schema {
        &self.engine
    }

    /// The result's own columns as written.
    pub fn written(&self) -> &Schema {
        &self.written
    }

    /// `batch`'s own columns, re-scaled decimals as their text.
    pub fn apply(&self, batch: RecordBatch) -> Result<RecordBatch> {
        if !self.reshape {
            return Ok(batch);
        }
        let mut columns: Vec<ArrayRef> = batch.columns()[..self.engine.fields().len()].to_vec();
        for &(i, stored, scale) in &self.rescaled {
            let places: Option<&Int32Array> = match scale {
                Scale::Column(c) => batch.column(c).as_primitive_opt::<Int32Type>(),
                Scale::Const(_) => None,
            };
            let constant = match scale {
                Scale::Const(c) => c,
                Scale::Column(_) => stored,
            };
            let values = batch.column(i).as_primitive::<Decimal128Type>();
            let mut out = StringBuilder::with_capacity(values.len(), values.len() * 8);
            let mut text = String::new();
            for row in 0..values.len() {
                if values.is_null(row) {
                    out.append_null();
                    continue;
                }
                let want = match places {
                    Some(p) if !p.is_null(row) => p.value(row),
                    Some(_) => stored,
                    None => constant,
                };
                text.clear();
                push_decimal(&mut text, values.value(row), stored, want);
                out.append_value(&text);
            }
            columns[i] = Arc::new(out.finish());
        }
        Ok(RecordBatch::try_new(self.written.clone(), columns)?)
    }
}

/// Append `v`, stored at `stored` places, as PostgreSQL prints it at `want` places — or at
/// `stored` places when `want` is not fewer, or when the digits past `want` are not all
/// zeros (a value is never cut).
fn push_decimal(out: &mut String, v: i128, stored: i32, want: i32) {
    use std::fmt::Write as _;
    let mut places = stored;
    let mut m = v.unsigned_abs();
    if (0..stored).contains(&want) {
        let drop = 10u128.pow((stored - want) as u32);
        if m.is_multiple_of(drop) {
            m /= drop;
            places = want;
        }
    }
    if v < 0 {
        out.push('-');
    }
    if places == 0 {
        let _ = write!(out, "{m}");
        return;
    }
    let unit = 10u128.pow(places as u32);
    let _ = write!(
        out,
        "{}.{:0width$}",
        m / unit,
        m % unit,
        width = places as usize
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: i128, stored: i32, want: i32) -> String {
        let mut s = String::new();
        push_decimal(&mut s, v, stored, want);
        s
    }

    #[test]
    fn decimals_print_at_their_display_scale_and_are_never_cut() {
        assert_eq!(text(35_000, 4, 1), "3.5");
        assert_eq!(text(35_000, 4, 2), "3.50");
        assert_eq!(text(-5_000, 4, 0), "-0.5000");
        assert_eq!(text(-5_000, 4, 3), "-0.500");
        assert_eq!(text(0, 4, 0), "0");
        assert_eq!(text(0, 4, 9), "0.0000");
        assert_eq!(text(12_345, 4, 2), "1.2345");
        assert_eq!(text(7, 0, 0), "7");
    }

    #[test]
    fn division_scale_is_postgresqls() {
        use crate::pgnumeric::division_scale;
        // 7.0 / 2 = 3.5000000000000000; 1 / 3.0 = 0.33333333333333333333; 1.0 / 1 has 20.
        assert_eq!(division_scale((70, 1, 1), (2, 0, 0)), 16);
        assert_eq!(division_scale((1, 0, 0), (30, 1, 1)), 20);
        assert_eq!(division_scale((10, 1, 1), (1, 0, 0)), 20);
        // 123456 / 2: the quotient has two base-10000 digits before the point.
        assert_eq!(division_scale((123_456, 0, 0), (2, 0, 0)), 12);
        // An operand's display scale larger than that wins.
        assert_eq!(division_scale((1, 0, 0), (3, 0, 24)), 24);
    }
}
