//! Aggregates as PostgreSQL computes them:
//!
//! - `PERCENTILE_DISC(f) WITHIN GROUP (ORDER BY x)`, which DataFusion has not: the first
//!   value (in that order, NULLs left out) whose position is at least `f` of the count — the
//!   `ceil(f × n)`-th, the first when that is 0 — of the type of `x`, NULL over no values.
//!   PostgreSQL's `percentile_disc_final` (src/backend/utils/adt/orderedsetaggs.c) is the
//!   reference; Redshift's `APPROXIMATE PERCENTILE_DISC` is answered exactly
//!   ([`crate::rsfuncs::without_approximate`]).
//! - The statistics of `double precision` values — `var_pop`, `var_samp` (`variance`),
//!   `stddev_pop`, `stddev_samp` (`stddev`), `covar_pop`, `covar_samp`, `corr` and the
//!   `regr_*` family — with PostgreSQL's Youngs-Cramer sums (`float8_accum`,
//!   `float8_regr_accum` and their combine and final functions in
//!   src/backend/utils/adt/float.c), so the last digits agree with PostgreSQL's where the
//!   engine's own algorithm rounds differently. A pair with a NULL is left out, as there.
//! - `sum` and `avg` of floats over a sliding window frame (`ROWS BETWEEN 1 PRECEDING AND
//!   1 FOLLOWING`): the engine takes the rows leaving the frame back out of a running sum,
//!   so once a large value (1e20) has passed through, the small ones that follow are lost
//!   (an average of 0.7 came out 0); PostgreSQL sums each frame again, and so does kondate
//!   ([`Resummed`]). Everything else about them is the engine's.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::SortOptions;
use arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::expr::{AggregateFunctionParams, WindowFunctionParams};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;

/// Register this module's aggregates on `ctx`, in place of the engine's of those names.
pub fn register(ctx: &SessionContext) {
    for name in ["sum", "avg"] {
        if let Ok(inner) = ctx.udaf(name) {
            ctx.register_udaf(AggregateUDF::from(Resummed {
                average: name == "avg",
                inner,
            }));
        }
    }
    ctx.register_udaf(AggregateUDF::from(PercentileDisc {
        signature: Signature::any(2, Volatility::Immutable),
    }));
    for stat in [
        Stat::VarPop,
        Stat::VarSamp,
        Stat::StddevPop,
        Stat::StddevSamp,
        Stat::CovarPop,
        Stat::CovarSamp,
        Stat::Corr,
        Stat::RegrSlope,
        Stat::RegrIntercept,
        Stat::RegrR2,
        Stat::RegrSxx,
        Stat::RegrSyy,
        Stat::RegrSxy,
        Stat::RegrAvgX,
        Stat::RegrAvgY,
    ] {
        let (name, aliases, two) = stat.describe();
        ctx.register_udaf(AggregateUDF::from(FloatStat {
            stat,
            name,
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            signature: Signature::any(if two { 2 } else { 1 }, Volatility::Immutable),
        }));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Stat {
    VarPop,
    VarSamp,
    StddevPop,
    StddevSamp,
    CovarPop,
    CovarSamp,
    Corr,
    RegrSlope,
    RegrIntercept,
    RegrR2,
    RegrSxx,
    RegrSyy,
    RegrSxy,
    RegrAvgX,
    RegrAvgY,
}

impl Stat {
    /// Name, aliases, and whether it takes a pair (Y, X).
    fn describe(self) -> (&'static str, &'static [&'static str], bool) {
        match self {
            Stat::VarPop => ("var_pop", &[], false),
            Stat::VarSamp => ("var_samp", &["variance", "var"], false),
            Stat::StddevPop => ("stddev_pop", &[], false),
            Stat::StddevSamp => ("stddev_samp", &["stddev"], false),
            Stat::CovarPop => ("covar_pop", &[], true),
            Stat::CovarSamp => ("covar_samp", &["covar"], true),
            Stat::Corr => ("corr", &[], true),
            Stat::RegrSlope => ("regr_slope", &[], true),
            Stat::RegrIntercept => ("regr_intercept", &[], true),
            Stat::RegrR2 => ("regr_r2", &[], true),
            Stat::RegrSxx => ("regr_sxx", &[], true),
            Stat::RegrSyy => ("regr_syy", &[], true),
            Stat::RegrSxy => ("regr_sxy", &[], true),
            Stat::RegrAvgX => ("regr_avgx", &[], true),
            Stat::RegrAvgY => ("regr_avgy", &[], true),
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct FloatStat {
    stat: Stat,
    name: &'static str,
    aliases: Vec<String>,
    signature: Signature,
}

impl FloatStat {
    /// The argument's scale when this is a variance or standard deviation of an integer or
    /// a `numeric`, which PostgreSQL computes as a `numeric` ([`crate::pgvariance`]).
    fn exact(&self, arg: Option<&DataType>) -> Option<i32> {
        crate::pgvariance::Kind::of(self.name)?;
        crate::pgvariance::exact_scale(arg?)
    }

    fn numeric_kind(&self, args: &AccumulatorArgs) -> Option<crate::pgvariance::Kind> {
        let arg = args.expr_fields.first().map(|f| f.data_type());
        self.exact(arg)?;
        crate::pgvariance::Kind::of(self.name)
    }
}

impl AggregateUDFImpl for FloatStat {
    fn name(&self) -> &str {
        self.name
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        for (i, t) in args.iter().enumerate() {
            if !t.is_numeric() && *t != DataType::Null {
                return plan_err!("{}: argument {} is a {t}, not a number", self.name, i + 1);
            }
        }
        if self.exact(args.first()).is_some() {
            return Ok(crate::pgvariance::result_type(&args[0]));
        }
        Ok(DataType::Float64)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        if self
            .exact(args.input_fields.first().map(|f| f.data_type()))
            .is_some()
        {
            return Ok(crate::pgvariance::state_fields(&args));
        }
        Ok(["n", "sx", "sxx", "sy", "syy", "sxy"]
            .iter()
            .map(|k| {
                Arc::new(Field::new(
                    format!("{}[{k}]", args.name),
                    DataType::Float64,
                    true,
                ))
            })
            .collect())
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if let Some(kind) = self.numeric_kind(&args) {
            return crate::pgvariance::accumulator(kind, args.expr_fields[0].data_type(), false);
        }
        Ok(Box::new(Moments {
            stat: self.stat,
            pair: args.exprs.len() == 2,
            m: [0.0; 6],
        }))
    }

    /// A frame that slides (`ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING`): PostgreSQL sums
    /// each frame's rows again, as [`Frame`] does; taking the leaving rows back out of the
    /// sums instead loses every digit once a large value has passed through.
    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        // Exact sums take leaving rows back out exactly.
        if let Some(kind) = self.numeric_kind(&args) {
            return crate::pgvariance::accumulator(kind, args.expr_fields[0].data_type(), false);
        }
        Ok(Box::new(Frame {
            stat: self.stat,
            pair: args.exprs.len() == 2,
            rows: std::collections::VecDeque::new(),
        }))
    }
}

/// The rows of a sliding window frame, summed again for each result.
#[derive(Debug)]
struct Frame {
    stat: Stat,
    pair: bool,
    rows: std::collections::VecDeque<(f64, f64)>,
}

impl Frame {
    fn moments(&self) -> Result<Moments> {
        let mut m = Moments {
            stat: self.stat,
            pair: self.pair,
            m: [0.0; 6],
        };
        for (x, y) in &self.rows {
            m.add(*x, *y)?;
        }
        Ok(m)
    }
}

impl Accumulator for Frame {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        rows(self.pair, values, |x, y| {
            self.rows.push_back((x, y));
            Ok(())
        })
    }

    /// The rows leaving the frame are its oldest, in order (NULL pairs were never kept).
    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        rows(self.pair, values, |_, _| {
            self.rows.pop_front();
            Ok(())
        })
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.moments()?.state()
    }

    fn merge_batch(&mut self, _: &[ArrayRef]) -> Result<()> {
        exec_err!("a sliding window frame's statistics are not merged")
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.moments()?.evaluate()
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.rows.capacity() * std::mem::size_of::<(f64, f64)>()
    }
}

/// PostgreSQL's transition values: N, Sx, Sxx, Sy, Syy, Sxy (X is the only or the second
/// argument, Y the first).
#[derive(Debug)]
struct Moments {
    stat: Stat,
    pair: bool,
    m: [f64; 6],
}

fn floats(a: &ArrayRef) -> Result<ArrayRef> {
    Ok(arrow::compute::cast(a, &DataType::Float64)?)
}

impl Moments {
    /// `float8_regr_accum` (`float8_accum` where there is no Y): one value in.
    fn add(&mut self, x: f64, y: f64) -> Result<()> {
        let [n0, sx0, sxx, sy0, syy, sxy] = self.m;
        let n = n0 + 1.0;
        let (sx, sy) = (sx0 + x, sy0 + y);
        let (mut sxx, mut syy, mut sxy) = (sxx, syy, sxy);
        if n0 > 0.0 {
            let tx = x * n - sx;
            let ty = y * n - sy;
            if self.pair {
                let scale = 1.0 / (n * n0);
                sxx += tx * tx * scale;
                syy += ty * ty * scale;
                sxy += tx * ty * scale;
            } else {
                // float8_accum divides where float8_regr_accum multiplies by the inverse:
                // the last digit differs.
                sxx += tx * tx / (n * n0);
            }
            // Only finite inputs that give an infinite sum overflow; an infinite input
            // makes the sums of squares NaN.
            if sx.is_infinite() || sxx.is_infinite() {
                if sx0.is_finite() && x.is_finite() {
                    return exec_err!("value out of range: overflow");
                }
                sxx = f64::NAN;
                sxy = f64::NAN;
            }
            if sy.is_infinite() || syy.is_infinite() {
                if sy0.is_finite() && y.is_finite() {
                    return exec_err!("value out of range: overflow");
                }
                syy = f64::NAN;
                sxy = f64::NAN;
            }
        } else {
            if !x.is_finite() {
                sxx = f64::NAN;
                sxy = f64::NAN;
            }
            if !y.is_finite() {
                syy = f64::NAN;
                sxy = f64::NAN;
            }
        }
        self.m = [n, sx, sxx, sy, syy, sxy];
        Ok(())
    }
}

/// Each row's (X, Y) — X the only or the second argument — rows with a NULL left out.
fn rows(pair: bool, values: &[ArrayRef], mut f: impl FnMut(f64, f64) -> Result<()>) -> Result<()> {
    let (x, y) = if pair {
        (floats(&values[1])?, Some(floats(&values[0])?))
    } else {
        (floats(&values[0])?, None)
    };
    let x = x.as_primitive::<arrow::datatypes::Float64Type>();
    let y = y
        .as_ref()
        .map(|y| y.as_primitive::<arrow::datatypes::Float64Type>());
    for i in 0..x.len() {
        if x.is_null(i) || y.is_some_and(|y| y.is_null(i)) {
            continue;
        }
        f(x.value(i), y.map_or(0.0, |y| y.value(i)))?;
    }
    Ok(())
}

impl Accumulator for Moments {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        rows(self.pair, values, |x, y| self.add(x, y))
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(self
            .m
            .iter()
            .map(|v| ScalarValue::Float64(Some(*v)))
            .collect())
    }

    /// `float8_regr_combine`.
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let cols: Vec<_> = states
            .iter()
            .map(|s| s.as_primitive::<arrow::datatypes::Float64Type>())
            .collect();
        for i in 0..cols[0].len() {
            if cols.iter().any(|c| c.is_null(i)) {
                continue;
            }
            let other: [f64; 6] = std::array::from_fn(|k| cols[k].value(i));
            let [n1, sx1, sxx1, sy1, syy1, sxy1] = self.m;
            let [n2, sx2, sxx2, sy2, syy2, sxy2] = other;
            if n2 == 0.0 {
                continue;
            }
            if n1 == 0.0 {
                self.m = other;
                continue;
            }
            let n = n1 + n2;
            let t1 = sx1 / n1 - sx2 / n2;
            let t2 = sy1 / n1 - sy2 / n2;
            self.m = [
                n,
                sx1 + sx2,
                sxx1 + sxx2 + n1 * n2 * t1 * t1 / n,
                sy1 + sy2,
                syy1 + syy2 + n1 * n2 * t2 * t2 / n,
                sxy1 + sxy2 + n1 * n2 * t1 * t2 / n,
            ];
        }
        Ok(())
    }

    /// The final functions (`float8_var_pop`, `float8_corr`, `float8_regr_slope`, …).
    fn evaluate(&mut self) -> Result<ScalarValue> {
        let [n, sx, sxx, sy, syy, sxy] = self.m;
        let v = match self.stat {
            Stat::VarPop => (n > 0.0).then(|| sxx / n),
            Stat::VarSamp => (n > 1.0).then(|| sxx / (n - 1.0)),
            Stat::StddevPop => (n > 0.0).then(|| (sxx / n).sqrt()),
            Stat::StddevSamp => (n > 1.0).then(|| (sxx / (n - 1.0)).sqrt()),
            Stat::CovarPop => (n > 0.0).then(|| sxy / n),
            Stat::CovarSamp => (n > 1.0).then(|| sxy / (n - 1.0)),
            Stat::Corr => (n >= 1.0 && sxx != 0.0 && syy != 0.0).then(|| sxy / (sxx * syy).sqrt()),
            Stat::RegrSlope => (n >= 1.0 && sxx != 0.0).then(|| sxy / sxx),
            Stat::RegrIntercept => (n >= 1.0 && sxx != 0.0).then(|| (sy - sx * sxy / sxx) / n),
            Stat::RegrR2 => (n >= 1.0 && sxx != 0.0).then(|| {
                if syy == 0.0 {
                    1.0
                } else {
                    (sxy * sxy) / (sxx * syy)
                }
            }),
            Stat::RegrSxx => (n >= 1.0).then_some(sxx),
            Stat::RegrSyy => (n >= 1.0).then_some(syy),
            Stat::RegrSxy => (n >= 1.0).then_some(sxy),
            Stat::RegrAvgX => (n >= 1.0).then(|| sx / n),
            Stat::RegrAvgY => (n >= 1.0).then(|| sy / n),
        };
        Ok(ScalarValue::Float64(v))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PercentileDisc {
    signature: Signature,
}

/// The fraction, which must be a constant between 0 and 1.
fn fraction(expr: &Arc<dyn PhysicalExpr>) -> Result<f64> {
    let batch = RecordBatch::new_empty(Arc::new(Schema::empty()));
    let value = match expr.evaluate(&batch) {
        Ok(datafusion::logical_expr::ColumnarValue::Scalar(v)) => v,
        _ => return plan_err!("PERCENTILE_DISC: the fraction must be a constant"),
    };
    let f = match value.cast_to(&DataType::Float64)? {
        ScalarValue::Float64(Some(f)) => f,
        _ => return plan_err!("PERCENTILE_DISC: the fraction must not be NULL"),
    };
    if !(0.0..=1.0).contains(&f) {
        return plan_err!("percentile value {f} is not between 0 and 1");
    }
    Ok(f)
}

impl AggregateUDFImpl for PercentileDisc {
    fn name(&self) -> &str {
        "percentile_disc"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    fn supports_within_group_clause(&self) -> bool {
        true
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let item = Field::new_list_field(args.input_fields[0].data_type().clone(), true);
        Ok(vec![Arc::new(Field::new(
            format!("{}[values]", args.name),
            DataType::List(Arc::new(item)),
            true,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let [_, f] = args.exprs else {
            return plan_err!(
                "PERCENTILE_DISC takes one fraction; write PERCENTILE_DISC(fraction) WITHIN \
                 GROUP (ORDER BY x)"
            );
        };
        let descending = match args.order_bys {
            [] => false,
            [one] => one.options.descending,
            _ => return plan_err!("PERCENTILE_DISC orders by one expression"),
        };
        Ok(Box::new(Values {
            fraction: fraction(f)?,
            descending,
            data_type: args.expr_fields[0].data_type().clone(),
            parts: Vec::new(),
        }))
    }
}

/// Every non-NULL value seen, sorted once at the end.
#[derive(Debug)]
struct Values {
    fraction: f64,
    descending: bool,
    data_type: DataType,
    parts: Vec<ArrayRef>,
}

impl Values {
    fn all(&self) -> Result<ArrayRef> {
        if self.parts.is_empty() {
            return Ok(arrow::array::new_empty_array(&self.data_type));
        }
        let parts: Vec<&dyn Array> = self.parts.iter().map(|a| a.as_ref()).collect();
        Ok(arrow::compute::concat(&parts)?)
    }

    fn push(&mut self, values: &ArrayRef) -> Result<()> {
        let values = if values.null_count() > 0 {
            let present = arrow::compute::is_not_null(values)?;
            arrow::compute::filter(values, &present)?
        } else {
            values.clone()
        };
        if !values.is_empty() {
            self.parts.push(values);
        }
        Ok(())
    }
}

impl Accumulator for Values {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.push(&values[0])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for i in 0..lists.len() {
            if !lists.is_null(i) {
                self.push(&lists.value(i))?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let all = self.all()?;
        Ok(vec![ScalarValue::List(Arc::new(
            datafusion::common::utils::SingleRowListArrayBuilder::new(all).build_list_array(),
        ))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let all = self.all()?;
        let n = all.len();
        if n == 0 {
            return ScalarValue::try_from(&self.data_type);
        }
        let wanted = (self.fraction * n as f64).ceil() as usize;
        let k = wanted.clamp(1, n);
        let order = arrow::compute::sort_to_indices(
            &all,
            Some(SortOptions {
                descending: self.descending,
                nulls_first: false,
            }),
            Some(k),
        )?;
        let Some(at) = order.values().get(k - 1) else {
            return exec_err!("PERCENTILE_DISC: position {k} of {n} values");
        };
        ScalarValue::try_from_array(&all, *at as usize)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .parts
                .iter()
                .map(|a| a.get_array_memory_size())
                .sum::<usize>()
    }
}

/// The engine's `sum` or `avg`, except over a sliding window frame of floats (see the
/// module), and `avg` of a `numeric` (integers are made `numeric` before planning): the
/// sum over the count rounded as PostgreSQL's `numeric` division rounds it
/// ([`crate::pgnumeric`]), where the engine's cuts it at 4 more places than the argument's.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Resummed {
    average: bool,
    inner: Arc<AggregateUDF>,
}

impl Resummed {
    /// How this `avg` finishes, when it is an `avg` of a `numeric`.
    fn numeric_average(&self, arg: &DataType) -> Option<AverageType> {
        match arg {
            DataType::Decimal128(p, s) if self.average && *s >= 0 => {
                match crate::pgnumeric::average_type(*p, *s) {
                    DataType::Decimal128(precision, out_scale) => Some(AverageType {
                        scale: *s,
                        precision,
                        out_scale,
                    }),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// An `avg` of a `numeric` in progress: the sum (at the argument's scale) and the count.
#[derive(Debug, Clone, Copy, Default)]
struct Sum {
    sum: i128,
    count: i64,
}

impl Sum {
    /// Add `x` counted as `n` rows (-1 to take a row back out of a sliding frame).
    fn add(&mut self, x: i128, n: i64) -> Result<()> {
        let Some(sum) = self.sum.checked_add(x) else {
            return exec_err!(
                "numeric value out of range in avg: the sum has more than 38 digits; cast the argument to double precision"
            );
        };
        self.sum = sum;
        self.count += n;
        Ok(())
    }
}

/// The argument's scale and the result's type of an `avg` of a `numeric`.
#[derive(Debug, Clone, Copy)]
struct AverageType {
    scale: i8,
    precision: u8,
    out_scale: i8,
}

impl AverageType {
    fn out(&self) -> DataType {
        DataType::Decimal128(self.precision, self.out_scale)
    }

    /// The sum over the count, rounded as PostgreSQL's numeric division rounds; None for
    /// no rows.
    fn finish(&self, s: Sum) -> Result<Option<i128>> {
        if s.count == 0 {
            return Ok(None);
        }
        crate::pgnumeric::divide(
            s.sum,
            i32::from(self.scale),
            i128::from(s.count),
            0,
            i32::from(self.out_scale),
        )
        .map(Some)
    }

    /// Partial states as the engine passes them between stages: sums, counts.
    fn state(&self, sums: impl IntoIterator<Item = Sum>) -> Result<Vec<ArrayRef>> {
        let (sums, counts): (Vec<i128>, Vec<i64>) =
            sums.into_iter().map(|s| (s.sum, s.count)).unzip();
        Ok(vec![
            Arc::new(
                arrow::array::Decimal128Array::from(sums)
                    .with_precision_and_scale(38, self.scale)?,
            ),
            Arc::new(arrow::array::Int64Array::from(counts)),
        ])
    }

    fn state_fields(&self, name: &str) -> Vec<FieldRef> {
        vec![
            Arc::new(Field::new(
                format!("{name}[sum]"),
                DataType::Decimal128(38, self.scale),
                true,
            )),
            Arc::new(Field::new(format!("{name}[count]"), DataType::Int64, true)),
        ]
    }
}

fn decimals(a: &ArrayRef) -> &arrow::array::Decimal128Array {
    a.as_primitive::<arrow::datatypes::Decimal128Type>()
}

fn counts(a: &ArrayRef) -> &arrow::array::Int64Array {
    a.as_primitive::<arrow::datatypes::Int64Type>()
}

/// `avg` of a `numeric`, one group (plain aggregates and window frames).
#[derive(Debug)]
struct NumericAverage {
    ty: AverageType,
    acc: Sum,
}

impl NumericAverage {
    fn add(&mut self, values: &ArrayRef, n: i64) -> Result<()> {
        for x in decimals(values).iter().flatten() {
            self.acc.add(if n > 0 { x } else { -x }, n)?;
        }
        Ok(())
    }
}

impl Accumulator for NumericAverage {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], 1)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], -1)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Decimal128(Some(self.acc.sum), 38, self.ty.scale),
            ScalarValue::Int64(Some(self.acc.count)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for (sum, count) in decimals(&states[0]).iter().zip(counts(&states[1])) {
            self.acc.add(sum.unwrap_or(0), count.unwrap_or(0))?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let v = self.ty.finish(self.acc)?;
        Ok(ScalarValue::Decimal128(
            v,
            self.ty.precision,
            self.ty.out_scale,
        ))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

/// [`NumericAverage`] for every group at once (what `GROUP BY` uses: one accumulator per
/// group would be slower by far with many groups).
#[derive(Debug)]
struct NumericAverages {
    ty: AverageType,
    groups: Vec<Sum>,
}

/// Whether row `i` passes `filter` (a `FILTER (WHERE …)` clause), if any.
fn passes(filter: Option<&arrow::array::BooleanArray>, i: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(i) && f.value(i))
}

impl datafusion::logical_expr::GroupsAccumulator for NumericAverages {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&arrow::array::BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize(total_num_groups, Sum::default());
        let v = decimals(&values[0]);
        for (i, &g) in group_indices.iter().enumerate() {
            if !v.is_null(i) && passes(opt_filter, i) {
                self.groups[g].add(v.value(i), 1)?;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: datafusion::logical_expr::EmitTo) -> Result<ArrayRef> {
        let groups = emit_to.take_needed(&mut self.groups);
        let mut b = arrow::array::Decimal128Builder::with_capacity(groups.len());
        for s in groups {
            b.append_option(self.ty.finish(s)?);
        }
        Ok(Arc::new(b.finish().with_precision_and_scale(
            self.ty.precision,
            self.ty.out_scale,
        )?))
    }

    fn state(&mut self, emit_to: datafusion::logical_expr::EmitTo) -> Result<Vec<ArrayRef>> {
        self.ty.state(emit_to.take_needed(&mut self.groups))
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize(total_num_groups, Sum::default());
        let (sums, counts) = (decimals(&values[0]), counts(&values[1]));
        for (i, &g) in group_indices.iter().enumerate() {
            self.groups[g].add(sums.value(i), counts.value(i))?;
        }
        Ok(())
    }

    /// Each row as a group's state of its own: its value (0 for NULL or filtered out) and a
    /// count of 1 or 0.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&arrow::array::BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let v = decimals(&values[0]);
        self.ty.state((0..v.len()).map(|i| {
            if !v.is_null(i) && passes(opt_filter, i) {
                Sum {
                    sum: v.value(i),
                    count: 1,
                }
            } else {
                Sum::default()
            }
        }))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.groups.capacity() * std::mem::size_of::<Sum>()
    }
}

impl AggregateUDFImpl for Resummed {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, params: &AggregateFunctionParams) -> Result<String> {
        self.inner.inner().schema_name(params)
    }

    fn human_display(&self, params: &AggregateFunctionParams) -> Result<String> {
        self.inner.inner().human_display(params)
    }

    fn window_function_schema_name(&self, params: &WindowFunctionParams) -> Result<String> {
        self.inner.inner().window_function_schema_name(params)
    }

    fn display_name(&self, params: &AggregateFunctionParams) -> Result<String> {
        self.inner.inner().display_name(params)
    }

    fn window_function_display_name(&self, params: &WindowFunctionParams) -> Result<String> {
        self.inner.inner().window_function_display_name(params)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        if let Some(ty) = args.first().and_then(|a| self.numeric_average(a)) {
            return Ok(ty.out());
        }
        self.inner.inner().return_type(args)
    }

    fn return_field(&self, args: &[FieldRef]) -> Result<FieldRef> {
        if let Some(ty) = args
            .first()
            .and_then(|a| self.numeric_average(a.data_type()))
        {
            return Ok(Arc::new(Field::new(self.name(), ty.out(), true)));
        }
        self.inner.inner().return_field(args)
    }

    fn is_nullable(&self) -> bool {
        self.inner.inner().is_nullable()
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if !args.is_distinct
            && let Some(ty) = self.numeric_average(args.expr_fields[0].data_type())
        {
            return Ok(Box::new(NumericAverage {
                ty,
                acc: Sum::default(),
            }));
        }
        self.inner.inner().accumulator(args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        if !args.is_distinct
            && let Some(ty) = self.numeric_average(args.input_fields[0].data_type())
        {
            return Ok(ty.state_fields(args.name));
        }
        self.inner.inner().state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        if self
            .numeric_average(args.expr_fields[0].data_type())
            .is_some()
        {
            return !args.is_distinct;
        }
        self.inner.inner().groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn datafusion::logical_expr::GroupsAccumulator>> {
        if let Some(ty) = self.numeric_average(args.expr_fields[0].data_type()) {
            return Ok(Box::new(NumericAverages {
                ty,
                groups: Vec::new(),
            }));
        }
        self.inner.inner().create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if !args.is_distinct
            && self
                .numeric_average(args.expr_fields[0].data_type())
                .is_some()
        {
            return self.accumulator(args);
        }
        if args.is_distinct || !args.expr_fields[0].data_type().is_floating() {
            return self.inner.inner().create_sliding_accumulator(args);
        }
        Ok(Box::new(FloatFrame {
            average: self.average,
            out: args.return_field.data_type().clone(),
            rows: std::collections::VecDeque::new(),
        }))
    }

    fn order_sensitivity(&self) -> datafusion::logical_expr::utils::AggregateOrderSensitivity {
        self.inner.inner().order_sensitivity()
    }

    fn simplify(
        &self,
    ) -> Option<datafusion::logical_expr::function::AggregateFunctionSimplification> {
        self.inner.inner().simplify()
    }

    /// The same either way round (as the engine's): this function, not the engine's.
    fn reverse_expr(&self) -> datafusion::logical_expr::ReversedUDAF {
        datafusion::logical_expr::ReversedUDAF::Identical
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.inner().coerce_types(args)
    }

    fn is_descending(&self) -> Option<bool> {
        self.inner.inner().is_descending()
    }

    fn value_from_stats(
        &self,
        args: &datafusion::logical_expr::StatisticsArgs,
    ) -> Option<ScalarValue> {
        self.inner.inner().value_from_stats(args)
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        self.inner.inner().default_value(data_type)
    }

    fn supports_null_handling_clause(&self) -> bool {
        self.inner.inner().supports_null_handling_clause()
    }

    fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
        self.inner.inner().documentation()
    }

    fn set_monotonicity(&self, data_type: &DataType) -> datafusion::logical_expr::SetMonotonicity {
        self.inner.inner().set_monotonicity(data_type)
    }
}

/// A sliding frame's floats, summed again in order for each result (`float8pl`, and the
/// sum over the count for `avg`).
#[derive(Debug)]
struct FloatFrame {
    average: bool,
    out: DataType,
    rows: std::collections::VecDeque<f64>,
}

impl Accumulator for FloatFrame {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        rows(false, values, |x, _| {
            self.rows.push_back(x);
            Ok(())
        })
    }

    /// The rows leaving the frame are its oldest, in order (NULLs were never kept).
    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        rows(false, values, |_, _| {
            self.rows.pop_front();
            Ok(())
        })
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        exec_err!("a sliding window frame's sum has no partial state")
    }

    fn merge_batch(&mut self, _: &[ArrayRef]) -> Result<()> {
        exec_err!("a sliding window frame's sum is not merged")
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.rows.is_empty() {
            return ScalarValue::try_from(&self.out);
        }
        let sum: f64 = self.rows.iter().fold(0.0, |a, x| a + x);
        let v = if self.average {
            sum / self.rows.len() as f64
        } else {
            sum
        };
        ScalarValue::Float64(Some(v)).cast_to(&self.out)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.rows.capacity() * std::mem::size_of::<f64>()
    }
}
