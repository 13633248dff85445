//! `var_pop`, `var_samp` (`variance`), `stddev_pop` and `stddev_samp` (`stddev`) of integers
//! and `numeric`s as PostgreSQL computes them: a `numeric` — the engine's, and the float
//! statistics of [`crate::pgaggs`], are `double precision` — from exact sums: the variance
//! is `(N·Σx² − (Σx)²) / (N·(N−1))` (`N·N` for the population's), divided at PostgreSQL's
//! scale for that quotient, and the standard deviation its square root at the same scale
//! (`numeric_stddev_internal` in src/backend/utils/adt/numeric.c; the integer variants,
//! `numeric_poly_*`, end in the same). NULL over no rows, and the sample's over one row.
//!
//! The column keeps 20 places where the argument's largest values leave room (fewer for a
//! wide `numeric`, at least 16, and twice the argument's when that is more): a result with
//! more digits before the point than are left fails the query, saying to cast the argument
//! to double precision; one needing more places (a variance below 10^-4) is rounded. Each value's display scale — the places
//! PostgreSQL prints — is what [`VarianceScale`], the same sums ending in the scale, gives
//! [`crate::pgscale`].

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Decimal128Type, Decimal256Type, Field, FieldRef, i256};
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

use crate::pgnumeric::{as_decimal, division_scale_wide, pow10, round_div};

/// The places the result column keeps, at least.
const PLACES: i32 = 20;

/// Which statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kind {
    pub sample: bool,
    pub stddev: bool,
}

impl Kind {
    /// The statistic an aggregate of that name computes, if it is one of these.
    pub fn of(name: &str) -> Option<Kind> {
        let (sample, stddev) = match name {
            "var_pop" => (false, false),
            "var_samp" | "variance" | "var" => (true, false),
            "stddev_pop" => (false, true),
            "stddev_samp" | "stddev" => (true, true),
            _ => return None,
        };
        Some(Kind { sample, stddev })
    }

    fn name(self) -> &'static str {
        match (self.sample, self.stddev) {
            (false, false) => "var_pop",
            (true, false) => "var_samp",
            (false, true) => "stddev_pop",
            (true, true) => "stddev_samp",
        }
    }
}

/// The argument's scale, when these statistics of it are a `numeric` (an integer or a
/// decimal argument).
pub fn exact_scale(arg: &DataType) -> Option<i32> {
    as_decimal(arg)
        .map(|(_, s)| i32::from(s))
        .filter(|s| *s >= 0)
}

/// The result's type for an argument of type `arg` (an exact number): 20 places where the
/// variance of the argument's largest values leaves room for them (integers are taken to
/// spread less than 10^9, so a larger variance fails the query), at least 16 and twice the
/// argument's.
pub fn result_type(arg: &DataType) -> DataType {
    let places = match arg {
        DataType::Decimal128(p, s) => {
            let whole = 2 * (i32::from(*p) - i32::from(*s));
            (38 - whole).clamp(16, PLACES).max(2 * i32::from(*s))
        }
        _ => PLACES,
    };
    DataType::Decimal128(38, places.min(38) as i8)
}

pub fn state_fields(args: &StateFieldsArgs) -> Vec<FieldRef> {
    [("n", DataType::Int64), ("sx", SUM), ("sxx", SUM)]
        .into_iter()
        .map(|(k, t)| Arc::new(Field::new(format!("{}[{k}]", args.name), t, true)))
        .collect()
}

/// The sums' state type: the digits of a wide decimal.
const SUM: DataType = DataType::Decimal256(76, 0);

/// The accumulator for `kind` of an argument of type `arg`; `scale_only` ends in the
/// result's display scale instead of its value.
pub fn accumulator(kind: Kind, arg: &DataType, scale_only: bool) -> Result<Box<dyn Accumulator>> {
    let Some(scale) = exact_scale(arg) else {
        return exec_err!("{}: {arg} is not an exact number", kind.name());
    };
    Ok(Box::new(Sums {
        kind,
        scale,
        out_scale: match result_type(arg) {
            DataType::Decimal128(_, s) => i32::from(s),
            _ => PLACES,
        },
        scale_only,
        n: 0,
        sx: i256::ZERO,
        sxx: i256::ZERO,
    }))
}

/// Exact sums of the values (at the argument's scale) and of their squares (at twice it).
#[derive(Debug)]
struct Sums {
    kind: Kind,
    scale: i32,
    out_scale: i32,
    scale_only: bool,
    n: i64,
    sx: i256,
    sxx: i256,
}

impl Sums {
    fn out_of_range<T>(&self) -> Result<T> {
        exec_err!(
            "numeric value out of range in {}: the sums have more than 76 digits; cast the \
             argument to double precision",
            self.kind.name()
        )
    }

    /// Add (`sign` 1) or take out (-1) each value of `values`.
    fn apply(&mut self, values: &ArrayRef, sign: i64) -> Result<()> {
        let values = match values.data_type() {
            DataType::Decimal128(..) => values.clone(),
            _ => cast(values, &DataType::Decimal128(38, 0))?,
        };
        let values = values.as_primitive::<Decimal128Type>();
        for v in values.iter().flatten() {
            let v = i256::from_i128(v);
            let (Some(sq), Some(n)) = (v.checked_mul(v), self.n.checked_add(sign)) else {
                return self.out_of_range();
            };
            let (sx, sxx) = if sign > 0 {
                (self.sx.checked_add(v), self.sxx.checked_add(sq))
            } else {
                (self.sx.checked_sub(v), self.sxx.checked_sub(sq))
            };
            let (Some(sx), Some(sxx)) = (sx, sxx) else {
                return self.out_of_range();
            };
            (self.n, self.sx, self.sxx) = (n, sx, sxx);
        }
        Ok(())
    }

    /// The result's digits at its display scale, and that scale; None for NULL.
    fn result(&self) -> Result<Option<(i256, i32)>> {
        if self.n == 0 || (self.kind.sample && self.n == 1) {
            return Ok(None);
        }
        let n = i256::from_i128(i128::from(self.n));
        let wide = |v: Option<i256>| v.map_or_else(|| self.out_of_range(), Ok);
        // N·Σx² − (Σx)², at twice the argument's scale.
        let num = wide(
            n.checked_mul(self.sxx)
                .zip(self.sx.checked_mul(self.sx))
                .and_then(|(a, b)| a.checked_sub(b)),
        )?;
        if num <= i256::ZERO {
            return Ok(Some((i256::ZERO, 0)));
        }
        let den = if self.kind.sample {
            n.wrapping_mul(n.wrapping_sub(i256::ONE))
        } else {
            n.wrapping_mul(n)
        };
        let s2 = 2 * self.scale;
        let rscale = division_scale_wide((num, s2, s2), (den, 0, 0));
        // variance · 10^rscale = num · 10^(rscale − s2) / den.
        let shift = rscale - s2;
        let variance = if shift >= 0 {
            wide(pow10(shift as u32).and_then(|p| num.checked_mul(p)))
                .and_then(|num| wide(round_div(num, den)))?
        } else {
            let den = wide(pow10((-shift) as u32).and_then(|p| den.checked_mul(p)))?;
            wide(round_div(num, den))?
        };
        if !self.kind.stddev {
            return Ok(Some((variance, rscale)));
        }
        // √(variance) at rscale places: √(variance · 10^rscale), rounded.
        let x = wide(pow10(rscale as u32).and_then(|p| variance.checked_mul(p)))?;
        Ok(Some((rounded_sqrt(x), rscale)))
    }
}

/// `√x` rounded to the nearest integer, for `x ≥ 0`. Hand-written: Arrow's `i256` has no
/// square root; Newton's iteration from above, in integers, ends at the floor.
fn rounded_sqrt(x: i256) -> i256 {
    if x <= i256::ZERO {
        return i256::ZERO;
    }
    let bits = 256 - x.leading_zeros();
    // 2^ceil(bits/2) ≥ √x.
    let mut r = i256::ONE.wrapping_mul(i256::from_i128(2).wrapping_pow(bits.div_ceil(2)));
    loop {
        let next = r
            .wrapping_add(x.wrapping_div(r))
            .wrapping_div(i256::from_i128(2));
        if next >= r {
            break;
        }
        r = next;
    }
    // r = ⌊√x⌋; round up when x − r² > r (that is, √x ≥ r + ½).
    if x.wrapping_sub(r.wrapping_mul(r)) > r {
        r.wrapping_add(i256::ONE)
    } else {
        r
    }
}

impl Accumulator for Sums {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.apply(&values[0], 1)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.apply(&values[0], -1)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Int64(Some(self.n)),
            ScalarValue::Decimal256(Some(self.sx), 76, 0),
            ScalarValue::Decimal256(Some(self.sxx), 76, 0),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let n = states[0].as_primitive::<arrow::datatypes::Int64Type>();
        let (sx, sxx) = (
            states[1].as_primitive::<Decimal256Type>(),
            states[2].as_primitive::<Decimal256Type>(),
        );
        for i in 0..n.len() {
            if n.is_null(i) {
                continue;
            }
            let merged = (
                self.n.checked_add(n.value(i)),
                self.sx.checked_add(sx.value(i)),
                self.sxx.checked_add(sxx.value(i)),
            );
            let (Some(a), Some(b), Some(c)) = merged else {
                return self.out_of_range();
            };
            (self.n, self.sx, self.sxx) = (a, b, c);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let result = self.result()?;
        if self.scale_only {
            return Ok(ScalarValue::Int32(result.map(|(_, s)| s)));
        }
        let out = i128::from(self.out_scale as i8);
        let Some((v, s)) = result else {
            return Ok(ScalarValue::Decimal128(None, 38, out as i8));
        };
        // At the column's places: more places are zeros, fewer are rounded.
        let at = if s <= self.out_scale {
            pow10((self.out_scale - s) as u32).and_then(|p| v.checked_mul(p))
        } else {
            pow10((s - self.out_scale) as u32).and_then(|p| round_div(v, p))
        };
        match at
            .and_then(|v| v.to_i128())
            .filter(|v| v.unsigned_abs() < 10u128.pow(38))
        {
            Some(v) => Ok(ScalarValue::Decimal128(Some(v), 38, out as i8)),
            None => exec_err!(
                "numeric value out of range in {}: the result has more than {} digits before \
                 the point; cast the argument to double precision",
                self.kind.name(),
                38 - self.out_scale
            ),
        }
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

/// The display scale of each result of `var_pop`/`var_samp`/`stddev_pop`/`stddev_samp` of
/// an exact number: its companion in [`crate::pgscale`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct VarianceScale {
    kind: Kind,
    name: String,
    signature: Signature,
}

/// The scale aggregate for the statistic named `name`, if it is one of these.
pub fn scale_udaf(name: &str) -> Option<Arc<AggregateUDF>> {
    let kind = Kind::of(name)?;
    Some(Arc::new(AggregateUDF::from(VarianceScale {
        kind,
        name: format!("kondate_{}_scale", kind.name()),
        signature: Signature::any(1, Volatility::Immutable),
    })))
}

impl AggregateUDFImpl for VarianceScale {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(state_fields(&args))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        accumulator(self.kind, args.expr_fields[0].data_type(), true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(kind: Kind, values: &[i128], scale: i8) -> Option<(i256, i32)> {
        let mut s = Sums {
            kind,
            scale: i32::from(scale),
            out_scale: 20,
            scale_only: false,
            n: 0,
            sx: i256::ZERO,
            sxx: i256::ZERO,
        };
        let array: ArrayRef = Arc::new(
            arrow::array::Decimal128Array::from(values.to_vec())
                .with_precision_and_scale(38, scale)
                .unwrap(),
        );
        s.update_batch(&[array]).unwrap();
        s.result().unwrap()
    }

    #[test]
    fn variance_and_stddev_follow_postgresql() {
        let samp = Kind {
            sample: true,
            stddev: false,
        };
        let pop_sd = Kind {
            sample: false,
            stddev: true,
        };
        // var_samp(10, 0, 5, -3) = 32.6666666666666667 (PostgreSQL).
        let (v, s) = stat(samp, &[10, 0, 5, -3], 0).unwrap();
        assert_eq!((v.as_i128(), s), (326_666_666_666_666_667, 16));
        // stddev_pop(10, 0, 5, 3, 7) = 3.4058772731852802.
        let (v, s) = stat(pop_sd, &[10, 0, 5, 3, 7], 0).unwrap();
        assert_eq!((v.as_i128(), s), (34_058_772_731_852_802, 16));
        // One row: the sample's is NULL, the population's 0.
        assert!(stat(samp, &[7], 0).is_none());
        assert_eq!(
            stat(
                Kind {
                    sample: false,
                    stddev: false
                },
                &[7],
                0
            )
            .unwrap()
            .0,
            i256::ZERO
        );
    }

    #[test]
    fn square_roots_round_to_nearest() {
        let r = |x: i128| rounded_sqrt(i256::from_i128(x)).as_i128();
        assert_eq!(r(0), 0);
        assert_eq!(r(1), 1);
        assert_eq!(r(2), 1);
        assert_eq!(r(3), 2);
        assert_eq!(r(16), 4);
        assert_eq!(r(20), 4);
        assert_eq!(r(21), 5);
        assert_eq!(r(10i128.pow(36)), 10i128.pow(18));
    }
}
