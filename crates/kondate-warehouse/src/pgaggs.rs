//! `PERCENTILE_DISC(f) WITHIN GROUP (ORDER BY x)`, which DataFusion has not: the first value
//! (in that order, NULLs left out) whose position is at least `f` of the count — the
//! `ceil(f × n)`-th, the first when that is 0 — of the type of `x`, NULL over no values.
//! PostgreSQL's `percentile_disc_final` (src/backend/utils/adt/orderedsetaggs.c) is the
//! reference; Redshift's `APPROXIMATE PERCENTILE_DISC` is answered exactly
//! ([`crate::rsfuncs::without_approximate`]).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::SortOptions;
use arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;

/// Register `percentile_disc` on `ctx`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udaf(AggregateUDF::from(PercentileDisc {
        signature: Signature::any(2, Volatility::Immutable),
    }));
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
