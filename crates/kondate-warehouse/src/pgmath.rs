//! PostgreSQL's and Redshift's numeric functions that DataFusion has not, or answers
//! differently, as functions of the embedded engine:
//!
//! - `trunc(x [, n])`: of a `numeric`, the value cut (toward zero) to `n` places (0 when
//!   left out), typed with that scale (`trunc(2.789::numeric, 2)` is `2.78`,
//!   `trunc(2.7, 3)` is `2.700`); of a float or integer, a `double precision`; of a date or
//!   timestamp, Redshift's `TRUNC(timestamp)`: the date.
//! - `ceil(x)`/`ceiling(x)` and `floor(x)`: of a `numeric`, a `numeric` without places
//!   (one more digit, so `ceil(9999999999.99::numeric(12,2))` is `10000000000`, where the
//!   engine's overflows); else a `double precision`.
//! - `gcd(a, b)` and `lcm(a, b)`: an `integer` of `integer`s (the engine's are `bigint`),
//!   "integer out of range" where the answer does not fit.
//! - `div(a, b)`: the integer quotient, cut toward zero, a `numeric`.
//! - `sign(x)`: -1, 0 or 1, a `numeric` for a `numeric`, else a `double precision`.
//! - `width_bucket(x, low, high, count)`: PostgreSQL's bucket number, an `integer`.
//! - `to_hex(x)`: hexadecimal digits; a negative `integer` in 32-bit two's complement, a
//!   negative `bigint` in 64-bit, as PostgreSQL writes them (the engine's own writes every
//!   negative value in 64 bits).
//! - `strtol(text, base)`: Redshift's conversion of digits in `base` (2 to 36) to a
//!   `bigint`.
//!
//! Each registers under PostgreSQL's name, in place of the engine's function of that name.
//! PostgreSQL's source (src/backend/utils/adt/numeric.c, float.c, varlena.c) is the
//! reference for their edge cases and messages.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Builder, Float64Builder, Int32Builder, Int64Builder,
    StringBuilder,
};
use arrow::compute::CastOptions;
use arrow::datatypes::{
    DataType, Decimal128Type, Field, FieldRef, Float64Type, Int32Type, Int64Type,
};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::prelude::SessionContext;

/// Register this module's functions on `ctx` (replacing the engine's `trunc`, `to_hex`).
pub fn register(ctx: &SessionContext) {
    for kind in [
        Kind::Trunc,
        Kind::Ceil,
        Kind::Floor,
        Kind::Gcd,
        Kind::Lcm,
        Kind::Div,
        Kind::Sign,
        Kind::WidthBucket,
        Kind::ToHex,
        Kind::StrToL,
    ] {
        ctx.register_udf(ScalarUDF::from(MathFn {
            kind,
            signature: Signature::variadic_any(Volatility::Immutable),
        }));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Trunc,
    Ceil,
    Floor,
    Gcd,
    Lcm,
    Div,
    Sign,
    WidthBucket,
    ToHex,
    StrToL,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct MathFn {
    kind: Kind,
    signature: Signature,
}

/// A cast that fails on a value the target cannot hold, where the engine's default cast
/// would give NULL: a silently missing value is a wrong answer.
fn cast_strict(a: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    Ok(arrow::compute::cast_with_options(a, to, &options)?)
}

fn is_temporal(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)
    )
}

fn is_number(t: &DataType) -> bool {
    t.is_numeric() || matches!(t, DataType::Null)
}

/// 10^k as an i128, for k up to 38.
fn pow10(k: u32) -> Result<i128> {
    10i128
        .checked_pow(k)
        .map_or_else(|| exec_err!("numeric value out of range"), Ok)
}

/// `v` (at `from` places) at `to` places, cut toward zero; `places` < 0 also zeroes the
/// digits left of the point (`trunc(1234.5, -2)` is 1200).
fn rescale(v: i128, from: i8, to: i8, places: i64) -> Result<i128> {
    let cut = if places < i64::from(from) {
        let drop = u32::try_from(i64::from(from) - places.max(-38)).unwrap_or(u32::MAX);
        if drop > 38 {
            0
        } else {
            let p = pow10(drop)?;
            let kept = v / p;
            // Back to `from` places with the cut digits zero.
            kept.checked_mul(p)
                .map_or_else(|| exec_err!("trunc: numeric value out of range"), Ok)?
        }
    } else {
        v
    };
    if to >= from {
        cut.checked_mul(pow10(u32::from((to - from) as u8))?)
            .map_or_else(|| exec_err!("trunc: numeric value out of range"), Ok)
    } else {
        Ok(cut / pow10(u32::from((from - to) as u8))?)
    }
}

impl MathFn {
    fn arity(&self) -> (usize, usize, &'static str) {
        match self.kind {
            Kind::Trunc => (1, 2, "trunc"),
            Kind::Ceil => (1, 1, "ceil"),
            Kind::Floor => (1, 1, "floor"),
            Kind::Gcd => (2, 2, "gcd"),
            Kind::Lcm => (2, 2, "lcm"),
            Kind::Div => (2, 2, "div"),
            Kind::Sign => (1, 1, "sign"),
            Kind::WidthBucket => (4, 4, "width_bucket"),
            Kind::ToHex => (1, 1, "to_hex"),
            Kind::StrToL => (2, 2, "strtol"),
        }
    }

    fn result_type(&self, args: &[DataType], scalars: &[Option<&ScalarValue>]) -> Result<DataType> {
        let (min, max, name) = self.arity();
        check_count(name, args, min, max)?;
        let numeric = |i: usize| expect_number(name, args, i);
        Ok(match self.kind {
            Kind::Trunc => {
                if is_temporal(&args[0]) {
                    if args.len() == 2 {
                        return plan_err!(
                            "trunc(timestamp) takes no second argument; use date_trunc('unit', x) \
                             to cut a timestamp to a unit"
                        );
                    }
                    return Ok(DataType::Date32);
                }
                numeric(0)?;
                if args.len() == 2 {
                    numeric(1)?;
                }
                match &args[0] {
                    DataType::Decimal128(p, s)
                    | DataType::Decimal32(p, s)
                    | DataType::Decimal64(p, s)
                    | DataType::Decimal256(p, s) => {
                        let places = match scalars.get(1) {
                            None => 0,
                            Some(Some(v)) => places_of(v)?,
                            Some(None) => {
                                return plan_err!(
                                    "trunc(numeric, places): the number of places must be a \
                                     constant on the embedded warehouse"
                                );
                            }
                        };
                        let to = places.clamp(0, 38) as i8;
                        let whole = (i64::from(*p) - i64::from(*s)).max(1);
                        let precision = (whole + i64::from(to)).clamp(1, 38) as u8;
                        DataType::Decimal128(precision, to)
                    }
                    _ => DataType::Float64,
                }
            }
            Kind::Ceil | Kind::Floor => {
                numeric(0)?;
                match &args[0] {
                    DataType::Decimal128(p, s)
                    | DataType::Decimal32(p, s)
                    | DataType::Decimal64(p, s)
                    | DataType::Decimal256(p, s) => {
                        let whole = i64::from(*p) - i64::from(*s) + 1;
                        DataType::Decimal128(whole.clamp(1, 38) as u8, 0)
                    }
                    _ => DataType::Float64,
                }
            }
            Kind::Gcd | Kind::Lcm => {
                for (i, t) in args.iter().enumerate() {
                    if !t.is_integer() && *t != DataType::Null {
                        return plan_err!("{name}: argument {} is a {t}, not an integer", i + 1);
                    }
                }
                let wide = args
                    .iter()
                    .any(|t| matches!(t, DataType::Int64 | DataType::UInt32 | DataType::UInt64));
                if wide {
                    DataType::Int64
                } else {
                    DataType::Int32
                }
            }
            Kind::Div => {
                numeric(0)?;
                numeric(1)?;
                DataType::Decimal128(38, 0)
            }
            Kind::Sign => {
                numeric(0)?;
                if matches!(
                    args[0],
                    DataType::Decimal128(..)
                        | DataType::Decimal32(..)
                        | DataType::Decimal64(..)
                        | DataType::Decimal256(..)
                ) {
                    DataType::Decimal128(1, 0)
                } else {
                    DataType::Float64
                }
            }
            Kind::WidthBucket => {
                for i in 0..4 {
                    numeric(i)?;
                }
                DataType::Int32
            }
            Kind::ToHex => {
                if !args[0].is_integer() && !matches!(args[0], DataType::Null) {
                    return plan_err!("to_hex takes an integer or bigint, not a {}", args[0]);
                }
                DataType::Utf8
            }
            Kind::StrToL => {
                numeric(1)?;
                DataType::Int64
            }
        })
    }
}

/// That `name` has between `min` and `max` arguments (a plan error saying so otherwise).
pub(crate) fn check_count(name: &str, args: &[DataType], min: usize, max: usize) -> Result<()> {
    if (min..=max).contains(&args.len()) {
        return Ok(());
    }
    let count = if min == max {
        format!("{min}")
    } else {
        format!("{min} or {max}")
    };
    plan_err!("{name} takes {count} arguments, not {}", args.len())
}

/// That argument `i` of `name` is a number (or NULL).
pub(crate) fn expect_number(name: &str, args: &[DataType], i: usize) -> Result<()> {
    if is_number(&args[i]) {
        Ok(())
    } else {
        plan_err!(
            "{name}: argument {} is a {}, not a number; cast it, as in {name}(x::numeric)",
            i + 1,
            args[i]
        )
    }
}

/// The integer value of a constant `places` argument.
fn places_of(v: &ScalarValue) -> Result<i64> {
    if v.is_null() {
        return Ok(0);
    }
    match v.cast_to(&DataType::Int64)? {
        ScalarValue::Int64(Some(k)) => Ok(k),
        other => plan_err!("trunc: {other} is not a number of places"),
    }
}

impl ScalarUDFImpl for MathFn {
    fn name(&self) -> &str {
        self.arity().2
    }

    fn aliases(&self) -> &[String] {
        static CEILING: std::sync::LazyLock<Vec<String>> =
            std::sync::LazyLock::new(|| vec!["ceiling".to_string()]);
        match self.kind {
            Kind::Ceil => &CEILING,
            _ => &[],
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        self.result_type(args, &[])
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let t = self.result_type(&types, args.scalar_arguments)?;
        Ok(Arc::new(Field::new(self.name(), t, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let out_type = args.return_field.data_type().clone();
        let cols: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.clone().into_array(n))
            .collect::<Result<_>>()?;
        let out: ArrayRef = match self.kind {
            Kind::Trunc => trunc(&cols, &out_type)?,
            Kind::Ceil | Kind::Floor => ceil_floor(&cols[0], &out_type, self.kind == Kind::Ceil)?,
            Kind::Gcd | Kind::Lcm => gcd_lcm(&cols, &out_type, self.kind == Kind::Gcd)?,
            Kind::Div => div(&cols)?,
            Kind::Sign => sign(&cols[0], &out_type)?,
            Kind::WidthBucket => width_bucket(&cols)?,
            Kind::ToHex => to_hex(&cols[0])?,
            Kind::StrToL => strtol(&cols)?,
        };
        Ok(ColumnarValue::Array(out))
    }
}

fn trunc(cols: &[ArrayRef], out_type: &DataType) -> Result<ArrayRef> {
    let x = &cols[0];
    match out_type {
        DataType::Date32 => cast_strict(x, &DataType::Date32),
        DataType::Decimal128(p, to) => {
            let from = decimal_scale(x.data_type());
            let x = cast_strict(x, &DataType::Decimal128(38, from))?;
            let x = x.as_primitive::<Decimal128Type>();
            let places = match cols.get(1) {
                Some(c) => {
                    let c = cast_strict(c, &DataType::Int64)?;
                    let c = c.as_primitive::<Int64Type>();
                    if c.is_empty() || c.is_null(0) {
                        0
                    } else {
                        c.value(0)
                    }
                }
                None => 0,
            };
            let mut out = Decimal128Builder::with_capacity(x.len());
            for v in x.iter() {
                match v {
                    Some(v) => out.append_value(rescale(v, from, *to, places)?),
                    None => out.append_null(),
                }
            }
            Ok(Arc::new(out.finish().with_precision_and_scale(*p, *to)?))
        }
        _ => {
            let x = cast_strict(x, &DataType::Float64)?;
            let x = x.as_primitive::<Float64Type>();
            let places = match cols.get(1) {
                Some(c) => Some(cast_strict(c, &DataType::Int64)?),
                None => None,
            };
            let places = places.as_ref().map(|c| c.as_primitive::<Int64Type>());
            let mut out = Float64Builder::with_capacity(x.len());
            for i in 0..x.len() {
                let k = match places {
                    Some(p) if p.is_null(i) => {
                        out.append_null();
                        continue;
                    }
                    Some(p) => p.value(i),
                    None => 0,
                };
                if x.is_null(i) {
                    out.append_null();
                    continue;
                }
                let v = x.value(i);
                out.append_value(if k == 0 {
                    v.trunc()
                } else {
                    let m = 10f64.powi(k.clamp(-308, 308) as i32);
                    (v * m).trunc() / m
                });
            }
            Ok(Arc::new(out.finish()))
        }
    }
}

fn decimal_scale(t: &DataType) -> i8 {
    match t {
        DataType::Decimal32(_, s)
        | DataType::Decimal64(_, s)
        | DataType::Decimal128(_, s)
        | DataType::Decimal256(_, s) => *s,
        _ => 0,
    }
}

fn ceil_floor(x: &ArrayRef, out_type: &DataType, up: bool) -> Result<ArrayRef> {
    if let DataType::Decimal128(p, _) = out_type {
        let scale = decimal_scale(x.data_type());
        let x = cast_strict(x, &DataType::Decimal128(38, scale))?;
        let x = x.as_primitive::<Decimal128Type>();
        let unit = pow10(u32::try_from(scale.max(0)).unwrap_or(0))?;
        let mut out = Decimal128Builder::with_capacity(x.len());
        for v in x.iter() {
            match v {
                Some(v) => {
                    let q = v.div_euclid(unit);
                    let r = v.rem_euclid(unit);
                    out.append_value(if up && r != 0 { q + 1 } else { q });
                }
                None => out.append_null(),
            }
        }
        return Ok(Arc::new(out.finish().with_precision_and_scale(*p, 0)?));
    }
    let x = cast_strict(x, &DataType::Float64)?;
    let x = x.as_primitive::<Float64Type>();
    let out: arrow::array::Float64Array = x
        .iter()
        .map(|v| v.map(|v| if up { v.ceil() } else { v.floor() }))
        .collect();
    Ok(Arc::new(out))
}

/// PostgreSQL's `int4gcd`/`int8gcd` and `lcm`: never negative, and an error where the
/// answer does not fit the type (`gcd(-2147483648, 0)`).
fn gcd_lcm(cols: &[ArrayRef], out_type: &DataType, gcd: bool) -> Result<ArrayRef> {
    let a = cast_strict(&cols[0], &DataType::Int64)?;
    let b = cast_strict(&cols[1], &DataType::Int64)?;
    let (a, b) = (a.as_primitive::<Int64Type>(), b.as_primitive::<Int64Type>());
    let limit = if *out_type == DataType::Int32 {
        i128::from(i32::MAX)
    } else {
        i128::from(i64::MAX)
    };
    let mut out = Int64Builder::with_capacity(a.len());
    for (a, b) in a.iter().zip(b.iter()) {
        let (Some(a), Some(b)) = (a, b) else {
            out.append_null();
            continue;
        };
        let (mut x, mut y) = (i128::from(a).abs(), i128::from(b).abs());
        while y != 0 {
            (x, y) = (y, x % y);
        }
        let v = if gcd {
            x
        } else if a == 0 || b == 0 {
            0
        } else {
            (i128::from(a) / x * i128::from(b)).abs()
        };
        if v > limit {
            return exec_err!("integer out of range");
        }
        out.append_value(v as i64);
    }
    cast_strict(&(Arc::new(out.finish()) as ArrayRef), out_type)
}

fn div(cols: &[ArrayRef]) -> Result<ArrayRef> {
    // Both at ten places: the quotient of the scaled integers is the quotient of the values.
    let as_decimal = DataType::Decimal128(38, 10);
    let a = cast_strict(&cols[0], &as_decimal)?;
    let b = cast_strict(&cols[1], &as_decimal)?;
    let (a, b) = (
        a.as_primitive::<Decimal128Type>(),
        b.as_primitive::<Decimal128Type>(),
    );
    let mut out = Decimal128Builder::with_capacity(a.len());
    for (a, b) in a.iter().zip(b.iter()) {
        match (a, b) {
            (Some(_), Some(0)) => return exec_err!("division by zero"),
            (Some(a), Some(b)) => out.append_value(a / b),
            _ => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish().with_precision_and_scale(38, 0)?))
}

fn sign(x: &ArrayRef, out_type: &DataType) -> Result<ArrayRef> {
    if matches!(out_type, DataType::Decimal128(..)) {
        let scale = decimal_scale(x.data_type());
        let x = cast_strict(x, &DataType::Decimal128(38, scale))?;
        let x = x.as_primitive::<Decimal128Type>();
        let mut out = Decimal128Builder::with_capacity(x.len());
        for v in x.iter() {
            match v {
                Some(v) => out.append_value(v.signum()),
                None => out.append_null(),
            }
        }
        return Ok(Arc::new(out.finish().with_precision_and_scale(1, 0)?));
    }
    let x = cast_strict(x, &DataType::Float64)?;
    let x = x.as_primitive::<Float64Type>();
    let mut out = Float64Builder::with_capacity(x.len());
    for v in x.iter() {
        match v {
            // PostgreSQL's float8_sign: 1 above zero, -1 below, else 0 (NaN too), where
            // Rust's signum says 1 for 0.
            Some(v) => out.append_value(if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                0.0
            }),
            None => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// PostgreSQL's `width_bucket_float8`: bucket 0 below the range, `count + 1` at or above
/// its end; bounds may be given high to low.
fn width_bucket(cols: &[ArrayRef]) -> Result<ArrayRef> {
    let f: Vec<ArrayRef> = cols[..3]
        .iter()
        .map(|c| cast_strict(c, &DataType::Float64))
        .collect::<Result<_>>()?;
    let (x, lo, hi) = (
        f[0].as_primitive::<Float64Type>(),
        f[1].as_primitive::<Float64Type>(),
        f[2].as_primitive::<Float64Type>(),
    );
    let count = cast_strict(&cols[3], &DataType::Int32)?;
    let count = count.as_primitive::<Int32Type>();
    let mut out = Int32Builder::with_capacity(x.len());
    for i in 0..x.len() {
        if x.is_null(i) || lo.is_null(i) || hi.is_null(i) || count.is_null(i) {
            out.append_null();
            continue;
        }
        let (v, b1, b2, c) = (x.value(i), lo.value(i), hi.value(i), count.value(i));
        if c <= 0 {
            return exec_err!("width_bucket: count must be greater than zero");
        }
        if v.is_nan() || b1.is_nan() || b2.is_nan() {
            return exec_err!("width_bucket: operand, lower bound, and upper bound cannot be NaN");
        }
        if !b1.is_finite() || !b2.is_finite() {
            return exec_err!("width_bucket: lower and upper bounds must be finite");
        }
        let bucket = |offset: f64, width: f64| -> i32 {
            // The quotient may round to 1.0; the bucket is then the last one.
            let r = (f64::from(c) * (offset / width)) as i32;
            r.min(c - 1) + 1
        };
        let r = if b1 < b2 {
            if v < b1 {
                0
            } else if v >= b2 {
                c.checked_add(1)
                    .map_or_else(|| exec_err!("integer out of range"), Ok)?
            } else {
                bucket(v - b1, b2 - b1)
            }
        } else if b1 > b2 {
            if v > b1 {
                0
            } else if v <= b2 {
                c.checked_add(1)
                    .map_or_else(|| exec_err!("integer out of range"), Ok)?
            } else {
                bucket(b1 - v, b1 - b2)
            }
        } else {
            return exec_err!("width_bucket: lower bound cannot equal upper bound");
        };
        out.append_value(r);
    }
    Ok(Arc::new(out.finish()))
}

fn to_hex(x: &ArrayRef) -> Result<ArrayRef> {
    let wide = matches!(x.data_type(), DataType::Int64 | DataType::UInt64);
    let mut out = StringBuilder::with_capacity(x.len(), x.len() * 8);
    if wide {
        let x = cast_strict(x, &DataType::Int64)?;
        for v in x.as_primitive::<Int64Type>().iter() {
            match v {
                Some(v) => out.append_value(format!("{:x}", v as u64)),
                None => out.append_null(),
            }
        }
    } else {
        // smallint and integer are an `integer` to PostgreSQL's to_hex: 32 bits.
        let x = cast_strict(x, &DataType::Int32)?;
        for v in x.as_primitive::<Int32Type>().iter() {
            match v {
                Some(v) => out.append_value(format!("{:x}", v as u32)),
                None => out.append_null(),
            }
        }
    }
    Ok(Arc::new(out.finish()))
}

/// Redshift's STRTOL: optional blanks and sign, an optional `0x` before base-16 digits, then
/// digits of `base`; text that is not such a number is an error naming it.
fn strtol(cols: &[ArrayRef]) -> Result<ArrayRef> {
    let s = cast_strict(&cols[0], &DataType::Utf8)?;
    let s = s.as_string::<i32>();
    let base = cast_strict(&cols[1], &DataType::Int64)?;
    let base = base.as_primitive::<Int64Type>();
    let mut out = Int64Builder::with_capacity(s.len());
    for i in 0..s.len() {
        if s.is_null(i) || base.is_null(i) {
            out.append_null();
            continue;
        }
        let b = base.value(i);
        if !(2..=36).contains(&b) {
            return exec_err!("strtol: base {b} is not between 2 and 36");
        }
        let text = s.value(i).trim();
        let (negative, digits) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let digits = if b == 16 {
            digits
                .strip_prefix("0x")
                .or_else(|| digits.strip_prefix("0X"))
                .unwrap_or(digits)
        } else {
            digits
        };
        let parsed = u64::from_str_radix(digits, b as u32).ok().and_then(|v| {
            if negative {
                0i64.checked_sub_unsigned(v)
            } else {
                i64::try_from(v).ok()
            }
        });
        match parsed {
            Some(v) if !digits.is_empty() => out.append_value(v),
            _ => {
                return exec_err!(
                    "strtol: `{}` is not a number in base {b} that fits a bigint",
                    s.value(i)
                );
            }
        }
    }
    Ok(Arc::new(out.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescaling_cuts_toward_zero() {
        // 2.789 at 3 places to 2 places; -2.7 to 0; 1234.5 to -2 places (1200).
        assert_eq!(rescale(2789, 3, 2, 2).unwrap(), 278);
        assert_eq!(rescale(-27, 1, 0, 0).unwrap(), -2);
        assert_eq!(rescale(12345, 1, 0, -2).unwrap(), 1200);
        assert_eq!(rescale(27, 1, 3, 3).unwrap(), 2700);
    }
}
