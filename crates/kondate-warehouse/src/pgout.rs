//! PostgreSQL's text output for the values the embedded engine computes, so that a result
//! reads the same on both: floats as `float8out`/`float4out` print them (shortest exact
//! digits; `1e+21`, `5e-07`, `797`, `NaN`, `Infinity`), intervals in the default
//! `IntervalStyle = postgres` (`1 year 2 mons 3 days 04:05:06`), and the Parquet column
//! types a PostgreSQL result has (integers, floats, booleans, dates and timestamps keep
//! their type; every other value is its text, as [`crate::types::arrow_type_for_postgres`]
//! says).
//!
//! Hand-written: PostgreSQL's formats are its own (ryu gives the digits; the layout, the
//! thresholds and the interval fields follow `src/common/d2s.c`, `f2s.c` and
//! `EncodeInterval` in `src/backend/utils/adt/datetime.c`).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType,
    DurationSecondType, Field, Float32Type, Float64Type, IntervalUnit, Schema, TimeUnit,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// Append `v` as PostgreSQL prints a `double precision`.
pub fn push_float8(out: &mut Vec<u8>, buf: &mut ryu::Buffer, v: f64) {
    if !v.is_finite() {
        return push_special(out, v.is_nan(), v < 0.0);
    }
    push_shortest(out, buf.format_finite(v), 15);
}

/// Append `v` as PostgreSQL prints a `real`.
pub fn push_float4(out: &mut Vec<u8>, buf: &mut ryu::Buffer, v: f32) {
    if !v.is_finite() {
        return push_special(out, v.is_nan(), v < 0.0);
    }
    push_shortest(out, buf.format_finite(v), 6);
}

fn push_special(out: &mut Vec<u8>, nan: bool, negative: bool) {
    out.extend_from_slice(match (nan, negative) {
        (true, _) => b"NaN".as_slice(),
        (false, false) => b"Infinity",
        (false, true) => b"-Infinity",
    });
}

/// Re-lay ryu's shortest digits (`797.0`, `1e21`, `5e-7`, `1.25e-5`) as PostgreSQL does:
/// fixed notation when the decimal exponent is in `-4..fixed_below`, else `d.ddde±XX`.
fn push_shortest(out: &mut Vec<u8>, ryu: &str, fixed_below: i32) {
    let (negative, s) = match ryu.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, ryu),
    };
    let (mantissa, exp) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (s, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // The digits, on the stack (this runs for every float of a result): ryu writes at most
    // 17 significant digits, plus the zeros of a fixed-notation number.
    let mut buf = [0u8; 40];
    let n_all = int.len() + frac.len();
    if n_all > buf.len() {
        out.extend_from_slice(ryu.as_bytes());
        return;
    }
    buf[..int.len()].copy_from_slice(int.as_bytes());
    buf[int.len()..n_all].copy_from_slice(frac.as_bytes());
    // The decimal point sits after `point` digits.
    let mut point = int.len() as i32 + exp;
    let lead = buf[..n_all].iter().take_while(|d| **d == b'0').count();
    point -= lead as i32;
    let mut end = n_all;
    while end > lead && buf[end - 1] == b'0' {
        end -= 1;
    }
    let digits = &buf[lead..end];
    if negative {
        out.push(b'-');
    }
    if digits.is_empty() {
        out.push(b'0');
        return;
    }
    let e10 = point - 1;
    let n = digits.len() as i32;
    if (-4..fixed_below).contains(&e10) {
        if point <= 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-point) as usize));
            out.extend_from_slice(digits);
        } else if point >= n {
            out.extend_from_slice(digits);
            out.extend(std::iter::repeat_n(b'0', (point - n) as usize));
        } else {
            out.extend_from_slice(&digits[..point as usize]);
            out.push(b'.');
            out.extend_from_slice(&digits[point as usize..]);
        }
    } else {
        out.push(digits[0]);
        if n > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if e10 < 0 { b'-' } else { b'+' });
        let a = e10.unsigned_abs();
        if a >= 100 {
            out.push(b'0' + (a / 100) as u8);
        }
        out.push(b'0' + (a / 10 % 10) as u8);
        out.push(b'0' + (a % 10) as u8);
    }
}

/// An interval as PostgreSQL prints it (`IntervalStyle = postgres`): months, days and
/// microseconds, each keeping its own sign.
pub fn interval_text(months: i64, days: i64, micros: i64) -> String {
    let mut out = String::new();
    let (mut is_zero, mut is_before) = (true, false);
    let mut part = |out: &mut String, value: i64, unit: &str| {
        if value == 0 {
            return;
        }
        if !is_zero {
            out.push(' ');
        }
        if is_before && value > 0 {
            out.push('+');
        }
        out.push_str(&format!(
            "{value} {unit}{}",
            if value != 1 { "s" } else { "" }
        ));
        is_before = value < 0;
        is_zero = false;
    };
    part(&mut out, months / 12, "year");
    part(&mut out, months % 12, "mon");
    part(&mut out, days, "day");
    if is_zero || micros != 0 {
        if !is_zero {
            out.push(' ');
        }
        if micros < 0 {
            out.push('-');
        } else if is_before {
            out.push('+');
        }
        let m = micros.unsigned_abs();
        let (hours, rest) = (m / 3_600_000_000, m % 3_600_000_000);
        let (mins, rest) = (rest / 60_000_000, rest % 60_000_000);
        let (secs, frac) = (rest / 1_000_000, rest % 1_000_000);
        out.push_str(&format!("{hours:02}:{mins:02}:{secs:02}"));
        if frac != 0 {
            let f = format!("{frac:06}");
            out.push('.');
            out.push_str(f.trim_end_matches('0'));
        }
    }
    out
}

/// A duration (the difference of two timestamps) as PostgreSQL prints the interval it
/// gives: whole days, then the time of day.
fn duration_text(micros: i64) -> String {
    const DAY: i64 = 86_400_000_000;
    interval_text(0, micros / DAY, micros % DAY)
}

/// True when PostgreSQL's text for values of `t` differs from Arrow's display and
/// [`pg_text`] must make it.
pub fn needs_pg_text(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Interval(_)
            | DataType::Duration(_)
            | DataType::Timestamp(_, Some(_))
            | DataType::List(_)
            | DataType::LargeList(_)
    )
}

/// The elements of an array value as PostgreSQL prints them inside `{…}`: text for each
/// (NULL kept), booleans as `t`/`f`.
fn element_texts(values: &ArrayRef) -> Result<ArrayRef, arrow::error::ArrowError> {
    if needs_pg_text(values.data_type()) {
        return pg_text(values.as_ref());
    }
    if let DataType::Boolean = values.data_type() {
        let b = values.as_boolean();
        return Ok(Arc::new(
            b.iter()
                .map(|v| v.map(|v| if v { "t" } else { "f" }))
                .collect::<arrow::array::StringArray>(),
        ));
    }
    cast(values, &DataType::Utf8)
}

/// PostgreSQL's text of an array (`{1,2}`, `{"a b",NULL}`): an element is quoted when it is
/// empty, `NULL`, or holds a blank, a quote, a backslash, a comma or a brace.
fn array_text(values: &ArrayRef) -> Result<String, arrow::error::ArrowError> {
    let texts = element_texts(values)?;
    let texts = texts.as_string::<i32>();
    let mut out = String::from("{");
    for i in 0..texts.len() {
        if i > 0 {
            out.push(',');
        }
        if texts.is_null(i) {
            out.push_str("NULL");
            continue;
        }
        let v = texts.value(i);
        let quote = v.is_empty()
            || v.eq_ignore_ascii_case("null")
            || v.chars()
                .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_ascii_whitespace());
        if quote {
            out.push('"');
            for c in v.chars() {
                if matches!(c, '"' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        } else {
            out.push_str(v);
        }
    }
    out.push('}');
    Ok(out)
}

/// A timestamp as PostgreSQL prints it: `2024-01-02 03:04:05`, a fraction of a second
/// without trailing zeros, and for a `timestamptz` the session's zone, which is UTC on
/// kondate's sessions (`+00`).
fn timestamp_text(micros: i64, zoned: bool) -> Option<String> {
    let t = chrono::DateTime::from_timestamp_micros(micros)?.naive_utc();
    let mut s = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let frac = micros.rem_euclid(1_000_000);
    if frac != 0 {
        s.push_str(format!(".{frac:06}").trim_end_matches('0'));
    }
    if zoned {
        s.push_str("+00");
    }
    Some(s)
}

/// Arrow's display of values, with PostgreSQL's spellings where they differ.
const DISPLAY: FormatOptions = FormatOptions::new().with_null("");

/// The values of `array` as PostgreSQL's text (NULL stays NULL).
pub fn pg_text(array: &dyn Array) -> Result<ArrayRef, arrow::error::ArrowError> {
    if let DataType::Timestamp(unit, zone) = array.data_type()
        && *unit != TimeUnit::Microsecond
    {
        // PostgreSQL keeps microseconds: one cast, then the text.
        let micros = cast(
            &arrow::array::make_array(array.to_data()),
            &DataType::Timestamp(TimeUnit::Microsecond, zone.clone()),
        )?;
        return pg_text(micros.as_ref());
    }
    let mut b = StringBuilder::with_capacity(array.len(), array.len() * 8);
    let mut bytes = Vec::new();
    let mut ryu = ryu::Buffer::new();
    let per_value = |i: usize, bytes: &mut Vec<u8>, ryu: &mut ryu::Buffer| -> Option<String> {
        bytes.clear();
        Some(match array.data_type() {
            DataType::Float64 => {
                push_float8(bytes, ryu, array.as_primitive::<Float64Type>().value(i));
                String::from_utf8_lossy(bytes).into_owned()
            }
            DataType::Float32 => {
                push_float4(bytes, ryu, array.as_primitive::<Float32Type>().value(i));
                String::from_utf8_lossy(bytes).into_owned()
            }
            DataType::Interval(IntervalUnit::MonthDayNano) => {
                let v = array
                    .as_primitive::<arrow::datatypes::IntervalMonthDayNanoType>()
                    .value(i);
                interval_text(
                    i64::from(v.months),
                    i64::from(v.days),
                    (v.nanoseconds as f64 / 1000.0).round() as i64,
                )
            }
            DataType::Interval(IntervalUnit::DayTime) => {
                let v = array
                    .as_primitive::<arrow::datatypes::IntervalDayTimeType>()
                    .value(i);
                interval_text(0, i64::from(v.days), i64::from(v.milliseconds) * 1000)
            }
            DataType::Interval(IntervalUnit::YearMonth) => {
                let v = array
                    .as_primitive::<arrow::datatypes::IntervalYearMonthType>()
                    .value(i);
                interval_text(i64::from(v), 0, 0)
            }
            DataType::Timestamp(TimeUnit::Microsecond, zone) => timestamp_text(
                array
                    .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                    .value(i),
                zone.is_some(),
            )?,
            DataType::List(_) => array_text(&array.as_list::<i32>().value(i)).ok()?,
            DataType::LargeList(_) => array_text(&array.as_list::<i64>().value(i)).ok()?,
            DataType::Duration(unit) => duration_text(match unit {
                TimeUnit::Second => array
                    .as_primitive::<DurationSecondType>()
                    .value(i)
                    .saturating_mul(1_000_000),
                TimeUnit::Millisecond => array
                    .as_primitive::<DurationMillisecondType>()
                    .value(i)
                    .saturating_mul(1000),
                TimeUnit::Microsecond => array.as_primitive::<DurationMicrosecondType>().value(i),
                TimeUnit::Nanosecond => {
                    array.as_primitive::<DurationNanosecondType>().value(i) / 1000
                }
            }),
            _ => return None,
        })
    };
    let formatter = ArrayFormatter::try_new(array, &DISPLAY)?;
    for i in 0..array.len() {
        if array.is_null(i) {
            b.append_null();
            continue;
        }
        match per_value(i, &mut bytes, &mut ryu) {
            Some(s) => b.append_value(s),
            None => b.append_value(formatter.value(i).to_string()),
        }
    }
    Ok(Arc::new(b.finish()))
}

/// The Parquet column type a PostgreSQL result would have for a column of type `t`.
pub fn parquet_type(t: &DataType) -> DataType {
    match t {
        DataType::Int8 | DataType::UInt8 | DataType::Int16 => DataType::Int16,
        DataType::UInt16 | DataType::Int32 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 | DataType::Int64 => DataType::Int64,
        DataType::Float32 => DataType::Float32,
        DataType::Float64 => DataType::Float64,
        DataType::Boolean => DataType::Boolean,
        DataType::Date32 | DataType::Date64 => DataType::Date32,
        DataType::Timestamp(_, None) => DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::Timestamp(_, Some(_)) => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        _ => DataType::Utf8,
    }
}

/// `schema` with PostgreSQL's Parquet column types ([`parquet_type`]).
pub fn parquet_schema(schema: &Schema) -> Schema {
    Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), parquet_type(f.data_type()), true))
            .collect::<Vec<_>>(),
        schema.metadata().clone(),
    )
}

/// `array` as a column of [`parquet_type`]: a cast, or its PostgreSQL text.
pub fn to_parquet_column(array: &ArrayRef) -> Result<ArrayRef, arrow::error::ArrowError> {
    let want = parquet_type(array.data_type());
    if &want == array.data_type() {
        return Ok(array.clone());
    }
    if want == DataType::Utf8 {
        if needs_pg_text(array.data_type()) {
            return pg_text(array.as_ref());
        }
        return match array.data_type() {
            DataType::Utf8View | DataType::LargeUtf8 | DataType::Decimal128(..) => {
                cast(array, &DataType::Utf8)
            }
            _ => {
                let formatter = ArrayFormatter::try_new(array.as_ref(), &DISPLAY)?;
                let mut b = StringBuilder::with_capacity(array.len(), array.len() * 8);
                for i in 0..array.len() {
                    if array.is_null(i) {
                        b.append_null();
                    } else {
                        b.append_value(formatter.value(i).to_string());
                    }
                }
                Ok(Arc::new(b.finish()))
            }
        };
    }
    cast(array, &want)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f8(v: f64) -> String {
        let mut out = Vec::new();
        push_float8(&mut out, &mut ryu::Buffer::new(), v);
        String::from_utf8(out).unwrap()
    }

    fn f4(v: f32) -> String {
        let mut out = Vec::new();
        push_float4(&mut out, &mut ryu::Buffer::new(), v);
        String::from_utf8(out).unwrap()
    }

    /// Each value beside what PostgreSQL 15 prints for it (`SELECT v::float8`).
    #[test]
    fn floats_print_as_postgresql_prints_them() {
        for (v, pg) in [
            (797.0, "797"),
            (398.5, "398.5"),
            (1e21, "1e+21"),
            (5e-7, "5e-07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e15, "1e+15"),
            (1e14, "100000000000000"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (-0.5, "-0.5"),
            (-0.0, "-0"),
            (0.0, "0"),
            (1.5e300, "1.5e+300"),
            (1e-100, "1e-100"),
            (0.30000000000000004, "0.30000000000000004"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(f8(v), pg, "{v}");
        }
        for (v, pg) in [
            (0.1f32, "0.1"),
            (1.23456, "1.23456"),
            (1e10, "1e+10"),
            (100000.0, "100000"),
            (1000000.0, "1e+06"),
        ] {
            assert_eq!(f4(v), pg, "{v}");
        }
    }

    /// Each beside PostgreSQL 15's `SELECT interval '…'`.
    #[test]
    fn intervals_print_as_postgresql_prints_them() {
        const H: i64 = 3_600_000_000;
        for ((m, d, us), pg) in [
            ((0, 1, 0), "1 day"),
            ((0, 2, 0), "2 days"),
            ((0, 0, H), "01:00:00"),
            ((0, 1, 2 * H + 3 * 60_000_000 + 4_000_000), "1 day 02:03:04"),
            ((14, 0, 0), "1 year 2 mons"),
            ((1, 0, 0), "1 mon"),
            ((0, -1, 0), "-1 days"),
            ((0, 0, 36 * H), "36:00:00"),
            ((0, 0, 1_500_000), "00:00:01.5"),
            ((0, 0, 0), "00:00:00"),
            ((12, 0, 0), "1 year"),
            ((-1, 1, 0), "-1 mons +1 day"),
            ((0, 1, -H), "1 day -01:00:00"),
            ((0, -1, H), "-1 days +01:00:00"),
        ] {
            assert_eq!(interval_text(m, d, us), pg, "{m} {d} {us}");
        }
        assert_eq!(
            duration_text(59 * 86_400_000_000 + 1),
            "59 days 00:00:00.000001"
        );
    }
}
