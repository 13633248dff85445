//! PostgreSQL's `numeric` division on the embedded warehouse — of `numeric` operands, and
//! the sum over the count of `avg` (`pgaggs`).
//!
//! The engine divides decimals at a small fixed scale and cuts the rest off (`1 / 3.0` was
//! `0.3333`, `amount / 3` was `4.166666`): a wrong answer, not a rounding. PostgreSQL rounds
//! each quotient (half away from zero) to a scale of its own, chosen for at least 16
//! significant digits (`select_div_scale` in src/backend/utils/adt/numeric.c): 16 places
//! minus four per base-10000 digit the quotient is expected to have before the point, at
//! least the operands' scales. Here each quotient is rounded exactly there, so it equals
//! PostgreSQL's; it is stored at one scale for the whole column (Arrow's decimals have no
//! per-value scale), so its text can have more trailing zeros than PostgreSQL's
//! (`7.0 / 2` is `3.50000000000000000000`, `3.5000000000000000` there). A quotient that
//! needs more places than the column holds (below 10^-4 or so) is rounded at the
//! column's scale.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Decimal128Builder};
use arrow::datatypes::{DataType, Decimal128Type, i256};
use datafusion::common::exec_err;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// The places a quotient column keeps, at most.
const QUOTIENT_SCALE: i32 = 20;
/// PostgreSQL's `NUMERIC_MIN_SIG_DIGITS`.
const MIN_SIG_DIGITS: i32 = 16;

/// An exact number's type as a decimal's (precision, scale): an integer has no places and
/// as many digits as its largest value.
pub fn as_decimal(t: &DataType) -> Option<(u8, i8)> {
    Some(match t {
        DataType::Decimal128(p, s) => (*p, *s),
        DataType::Int8 | DataType::UInt8 => (3, 0),
        DataType::Int16 | DataType::UInt16 => (5, 0),
        DataType::Int32 | DataType::UInt32 => (10, 0),
        DataType::Int64 => (19, 0),
        DataType::UInt64 => (20, 0),
        _ => return None,
    })
}

/// The type of `l / r` where one operand is a decimal and the other a decimal or an
/// integer (PostgreSQL's `numeric` division), or None when this division does not apply
/// (integers only, a float, a negative scale).
pub fn quotient_type(l: &DataType, r: &DataType) -> Option<DataType> {
    if !matches!(l, DataType::Decimal128(..)) && !matches!(r, DataType::Decimal128(..)) {
        return None;
    }
    let ((p1, s1), (_, s2)) = (as_decimal(l)?, as_decimal(r)?);
    if s1 < 0 || s2 < 0 {
        return None;
    }
    let (s1, s2) = (i32::from(s1), i32::from(s2));
    // The most digits the quotient can have before the point: the dividend's, and one
    // more per place of the divisor (dividing by 0.01 multiplies by 100).
    let int_digits = i32::from(p1) - s1 + s2;
    let least = s1.max(s2);
    let scale = QUOTIENT_SCALE
        .max(least)
        .min((38 - int_digits).max(least))
        .min(38);
    Some(DataType::Decimal128(38, scale as i8))
}

/// The type of `avg` of a `Decimal128(p, s)`: a quotient no longer before the point than
/// the argument, at 20 places where that fits (at least the argument's).
pub fn average_type(p: u8, s: i8) -> DataType {
    let int_digits = i32::from(p) - i32::from(s);
    let scale = QUOTIENT_SCALE
        .min(38 - int_digits)
        .max(i32::from(s))
        .min(38);
    DataType::Decimal128(38, scale as i8)
}

/// `l / r` for `numeric` operands, as PostgreSQL computes it (see the module's doc).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NumericDiv {
    signature: Signature,
}

impl NumericDiv {
    pub fn new() -> NumericDiv {
        NumericDiv {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for NumericDiv {
    fn name(&self) -> &str {
        "kondate_numeric_div"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match quotient_type(&args[0], &args[1]) {
            Some(t) => Ok(t),
            None => exec_err!("numeric division of {} by {}", args[0], args[1]),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        // An integer operand as a decimal without places.
        let exact = |a: &ColumnarValue| -> Result<ArrayRef> {
            let a = a.clone().into_array(n)?;
            match as_decimal(a.data_type()) {
                Some((p, s)) if !matches!(a.data_type(), DataType::Decimal128(..)) => {
                    Ok(arrow::compute::cast(&a, &DataType::Decimal128(p, s))?)
                }
                _ => Ok(a),
            }
        };
        let (l, r) = (exact(&args.args[0])?, exact(&args.args[1])?);
        let (DataType::Decimal128(_, s1), DataType::Decimal128(_, s2)) =
            (l.data_type(), r.data_type())
        else {
            return exec_err!("numeric division of {} by {}", l.data_type(), r.data_type());
        };
        let Some(DataType::Decimal128(_, scale)) = quotient_type(l.data_type(), r.data_type())
        else {
            return exec_err!("numeric division of {} by {}", l.data_type(), r.data_type());
        };
        let (s1, s2, scale) = (i32::from(*s1), i32::from(*s2), i32::from(scale));
        let (lv, rv) = (
            l.as_primitive::<Decimal128Type>(),
            r.as_primitive::<Decimal128Type>(),
        );
        let mut out = Decimal128Builder::with_capacity(n);
        for i in 0..n {
            if lv.is_null(i) || rv.is_null(i) {
                out.append_null();
                continue;
            }
            out.append_value(divide(lv.value(i), s1, rv.value(i), s2, scale)?);
        }
        let array: ArrayRef = Arc::new(out.finish().with_precision_and_scale(38, scale as i8)?);
        Ok(ColumnarValue::Array(array))
    }
}

/// The base-10000 weight of `v` at `scale` places (0 for the group of units, -1 for the
/// first four places) and the value of that leading group; (0, 0) for zero. What
/// PostgreSQL's `select_div_scale` reads from its base-10000 digits.
fn weight_and_first_group(v: i256, scale: i32) -> (i32, i256) {
    let Some(a) = v.checked_abs().filter(|a| *a != i256::ZERO) else {
        return (0, i256::ZERO);
    };
    let digits = a.ilog10() as i32 + 1;
    // 10^e <= |v| < 10^(e+1).
    let e = digits - scale - 1;
    let weight = e.div_euclid(4);
    // The leading group: |v| / 10000^weight, cut.
    let k = scale + 4 * weight;
    let first = if k >= 0 {
        a.wrapping_div(i256::from_i128(10).wrapping_pow(k as u32))
    } else {
        a.wrapping_mul(i256::from_i128(10).wrapping_pow((-k) as u32))
    };
    (weight, first)
}

/// PostgreSQL's result scale for `a / b` (`select_div_scale`), each operand's display
/// scale taken to be its scale.
fn result_scale(a: i128, s1: i32, b: i128, s2: i32) -> i32 {
    division_scale((a, s1, s1), (b, s2, s2))
}

/// PostgreSQL's result scale for `a / b` (`select_div_scale`), each operand given as
/// (value, the places that value is stored at, its display scale): at least 16 significant
/// digits — 16 places minus four per base-10000 digit the quotient is expected to have
/// before the point — and at least either operand's display scale.
pub fn division_scale((a, s1, d1): (i128, i32, i32), (b, s2, d2): (i128, i32, i32)) -> i32 {
    division_scale_wide((i256::from_i128(a), s1, d1), (i256::from_i128(b), s2, d2))
}

/// [`division_scale`] of wide values.
pub fn division_scale_wide((a, s1, d1): (i256, i32, i32), (b, s2, d2): (i256, i32, i32)) -> i32 {
    let (w1, f1) = weight_and_first_group(a, s1);
    let (w2, f2) = weight_and_first_group(b, s2);
    let mut qweight = w1 - w2;
    if f1 <= f2 {
        qweight -= 1;
    }
    (MIN_SIG_DIGITS - qweight * 4)
        .max(d1)
        .max(d2)
        .clamp(0, 1000)
}

pub fn pow10(k: u32) -> Option<i256> {
    i256::from_i128(10).checked_pow(k)
}

/// `num / den` rounded half away from zero, as PostgreSQL rounds a `numeric`; None when
/// `den` is zero or the quotient does not fit.
pub fn round_div(num: i256, den: i256) -> Option<i256> {
    let (mut q, rem) = (num.checked_div(den)?, num.checked_rem(den)?);
    // Half away from zero: |2 rem| >= |den|.
    let twice = rem
        .checked_abs()
        .and_then(|r| r.checked_mul(i256::from_i128(2)));
    if twice.zip(den.checked_abs()).is_some_and(|(t, d)| t >= d) {
        let away = if num.is_negative() != den.is_negative() {
            i256::MINUS_ONE
        } else {
            i256::ONE
        };
        q = q.checked_add(away)?;
    }
    Some(q)
}

/// `a / 10^s1` divided by `b / 10^s2`, rounded half away from zero at PostgreSQL's scale
/// (at most `scale`), as a value at `scale` places.
pub fn divide(a: i128, s1: i32, b: i128, s2: i32, scale: i32) -> Result<i128> {
    if b == 0 {
        return exec_err!("division by zero");
    }
    let places = result_scale(a, s1, b, s2).min(scale);
    let out_of_range = || {
        exec_err!(
            "numeric value out of range in a division: the quotient of {a}e-{s1} by {b}e-{s2} \
             has more than 38 digits at {scale} places; cast an operand to double precision"
        )
    };
    // quotient * 10^places = a * 10^(places + s2 - s1) / b.
    let shift = places + s2 - s1;
    let (mut num, mut den) = (i256::from_i128(a), i256::from_i128(b));
    if shift >= 0 {
        let Some(n) = pow10(shift as u32).and_then(|p| num.checked_mul(p)) else {
            return out_of_range();
        };
        num = n;
    } else {
        let Some(d) = pow10((-shift) as u32).and_then(|p| den.checked_mul(p)) else {
            return out_of_range();
        };
        den = d;
    }
    let Some(q) = round_div(num, den) else {
        return out_of_range();
    };
    let Some(v) = pow10((scale - places) as u32)
        .and_then(|p| q.checked_mul(p))
        .and_then(|v| v.to_i128())
        .filter(|v| v.unsigned_abs() < 10u128.pow(38))
    else {
        return out_of_range();
    };
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a` (unscaled at `sa` places) / `b` as text at the column's scale.
    fn div(a: i128, sa: i32, b: i128, sb: i32) -> String {
        let t = quotient_type(
            &DataType::Decimal128(15, sa as i8),
            &DataType::Decimal128(15, sb as i8),
        )
        .unwrap();
        let DataType::Decimal128(_, s) = t else {
            unreachable!()
        };
        let v = divide(a, sa, b, sb, i32::from(s)).unwrap();
        arrow::array::Decimal128Array::from(vec![v])
            .with_precision_and_scale(38, s)
            .unwrap()
            .value_as_string(0)
    }

    #[test]
    fn quotients_round_where_postgresql_rounds() {
        // PostgreSQL: 1 / 3.0 = 0.33333333333333333333 (20 places).
        assert_eq!(div(1, 0, 30, 1), "0.33333333333333333333");
        // 2 / 3.0 = 0.66666666666666666667: rounded, not cut.
        assert_eq!(div(2, 0, 30, 1), "0.66666666666666666667");
        // 7.0 / 2 = 3.5000000000000000 there: the same value.
        assert_eq!(div(70, 1, 2, 0), "3.50000000000000000000");
        // 12.50 / 3 = 4.1666666666666667 (16 places), kept at 20 with zeros.
        assert_eq!(div(1250, 2, 3, 0), "4.16666666666666670000");
        // -0.01 / 3 = -0.00333333333333333333 (20 places); half away from zero.
        assert_eq!(div(-1, 2, 3, 0), "-0.00333333333333333333");
        assert_eq!(div(-2, 0, 3, 0), "-0.66666666666666666667");
        // 9999999999.99 / 3 = 3333333333.33000000 (8 places).
        assert_eq!(
            div(999999999999, 2, 3, 0),
            "3333333333.33000000000000000000"
        );
        // 5 / 5: the leading groups are equal, so PostgreSQL expects a smaller quotient
        // and keeps 20 places.
        assert_eq!(div(5, 0, 5, 0), "1.00000000000000000000");
        assert_eq!(div(0, 0, 5, 0), "0.00000000000000000000");
    }

    #[test]
    fn the_scale_follows_select_div_scale() {
        assert_eq!(result_scale(10, 0, 4, 0), 16);
        assert_eq!(result_scale(1, 0, 30, 1), 20);
        assert_eq!(result_scale(65538000, 1, 10, 0), 12);
        assert_eq!(result_scale(999999999999, 2, 3, 0), 8);
        assert_eq!(result_scale(0, 0, 7, 0), 20);
        let w = |v: i128, s| {
            let (w, f) = weight_and_first_group(i256::from_i128(v), s);
            (w, f.as_i128())
        };
        assert_eq!(w(123456789, 0), (2, 1));
        assert_eq!(w(5, 1), (-1, 5000));
        assert_eq!(w(1, 5), (-2, 1000));
        assert_eq!(w(-20, 0), (0, 20));
    }

    #[test]
    fn division_by_zero_and_overflow_fail() {
        assert!(
            divide(1, 0, 0, 0, 20)
                .unwrap_err()
                .to_string()
                .contains("division by zero")
        );
        let big = 10i128.pow(37);
        let e = divide(big, 0, 1, 20, 20).unwrap_err().to_string();
        assert!(
            e.contains("out of range") && e.contains("double precision"),
            "{e}"
        );
    }
}

/// The type of `x::numeric` (no precision): PostgreSQL keeps the value's own scale, so an
/// integer is `numeric` without places and a decimal keeps its places (`1::numeric` is `1`,
/// `123.4500::numeric` is `123.4500`); the engine's `numeric` would be `numeric(38,10)`
/// everywhere. The precision is what the value can have, no more: a quotient's places are
/// what its 38 digits leave over after the dividend's (an integer made `numeric(38,0)` left
/// none, and `qty::numeric / 7` was cut to a whole number). Values without a fixed scale
/// (floats, text) are read at 10 places, as before.
pub fn unconstrained_type(from: &DataType) -> DataType {
    match (from, as_decimal(from)) {
        (DataType::Boolean | DataType::Null, _) => DataType::Decimal128(1, 0),
        (_, Some((p, s))) if s >= 0 => DataType::Decimal128(p, s),
        _ => DataType::Decimal128(38, 10),
    }
}

/// `x::numeric` without a precision: a cast to [`unconstrained_type`]. The statement's
/// casts are rewritten to it before planning (`rsfuncs`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToNumeric {
    signature: Signature,
}

impl ToNumeric {
    pub fn new() -> ToNumeric {
        ToNumeric {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ToNumeric {
    fn name(&self) -> &str {
        "kondate_numeric"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(unconstrained_type(&args[0]))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let to = unconstrained_type(&args.args[0].data_type());
        // The engine's own cast (the one `CAST(x AS numeric(38, s))` would run).
        args.args[0].cast_to(&to, None)
    }
}
