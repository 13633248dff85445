//! PostgreSQL's and Redshift's date functions that DataFusion has not:
//!
//! - `age(a, b)`: PostgreSQL's symbolic difference, years, months and days counted on the
//!   calendar (`age('2025-01-01', '2024-01-02 03:04:05')` is `11 mons 29 days 20:55:55`), an
//!   interval; the one-argument form (`age(x)`, from today's midnight) is rewritten to it
//!   ([`crate::rsfuncs`]).
//! - `make_timestamp(year, month, day, hour, minute, seconds)`: a timestamp, with
//!   PostgreSQL's "date field value out of range" / "time field value out of range" errors.
//! - `add_months(x, n)` (Redshift): `x` moved by `n` months, keeping the time of day; the
//!   last day of a month goes to the last day of the target month (`2024-02-29` + 1 is
//!   `2024-03-31`), another day past the target month's end to its last day; a timestamp.
//! - `months_between(a, b)` (Redshift): months from `b` to `a`, whole when both are the
//!   same day of the month or both a month's last day, else with the days' difference
//!   over 31 as the fraction; a `double precision`.
//!
//! Timestamps with a zone are read in UTC, the embedded warehouse's session zone.
//! PostgreSQL's `timestamp_age` (src/backend/utils/adt/timestamp.c) and Redshift's SQL
//! reference (ADD_MONTHS, MONTHS_BETWEEN) are the sources.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Builder, IntervalMonthDayNanoBuilder, PrimitiveArray,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{
    DataType, Float64Type, Int32Type, Int64Type, IntervalMonthDayNano, IntervalUnit, TimeUnit,
};
use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// Register this module's functions on `ctx`.
pub fn register(ctx: &SessionContext) {
    for kind in [
        Kind::Age,
        Kind::MakeTimestamp,
        Kind::AddMonths,
        Kind::MonthsBetween,
    ] {
        ctx.register_udf(ScalarUDF::from(DateFn {
            kind,
            signature: Signature::variadic_any(Volatility::Immutable),
        }));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Age,
    MakeTimestamp,
    AddMonths,
    MonthsBetween,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DateFn {
    kind: Kind,
    signature: Signature,
}

impl DateFn {
    fn arity(&self) -> (usize, &'static str) {
        match self.kind {
            Kind::Age => (2, "age"),
            Kind::MakeTimestamp => (6, "make_timestamp"),
            Kind::AddMonths => (2, "add_months"),
            Kind::MonthsBetween => (2, "months_between"),
        }
    }
}

fn is_time_like(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Date32
            | DataType::Date64
            | DataType::Timestamp(_, _)
            | DataType::Utf8
            | DataType::Utf8View
            | DataType::LargeUtf8
            | DataType::Null
    )
}

impl ScalarUDFImpl for DateFn {
    fn name(&self) -> &str {
        self.arity().1
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let (count, name) = self.arity();
        crate::pgmath::check_count(name, args, count, count)?;
        let time_like = |i: usize| -> Result<()> {
            if is_time_like(&args[i]) {
                Ok(())
            } else {
                plan_err!(
                    "{name}: argument {} is a {}, not a date or timestamp",
                    i + 1,
                    args[i]
                )
            }
        };
        let number = |i: usize| crate::pgmath::expect_number(name, args, i);
        Ok(match self.kind {
            Kind::Age => {
                time_like(0)?;
                time_like(1)?;
                DataType::Interval(IntervalUnit::MonthDayNano)
            }
            Kind::MakeTimestamp => {
                for i in 0..6 {
                    number(i)?;
                }
                DataType::Timestamp(TimeUnit::Microsecond, None)
            }
            Kind::AddMonths => {
                time_like(0)?;
                number(1)?;
                DataType::Timestamp(TimeUnit::Microsecond, None)
            }
            Kind::MonthsBetween => {
                time_like(0)?;
                time_like(1)?;
                DataType::Float64
            }
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let cols: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.clone().into_array(n))
            .collect::<Result<_>>()?;
        let out: ArrayRef = match self.kind {
            Kind::Age => {
                let (a, b) = (wall_micros(&cols[0])?, wall_micros(&cols[1])?);
                let mut out = IntervalMonthDayNanoBuilder::with_capacity(n);
                for i in 0..n {
                    match (value(&a, i)?, value(&b, i)?) {
                        (Some(a), Some(b)) => out.append_value(age(&a, &b)),
                        _ => out.append_null(),
                    }
                }
                Arc::new(out.finish())
            }
            Kind::MakeTimestamp => make_timestamp(&cols)?,
            Kind::AddMonths => {
                let x = wall_micros(&cols[0])?;
                let k = arrow::compute::cast(&cols[1], &DataType::Int64)?;
                let k = k.as_primitive::<Int64Type>();
                let mut out = TimestampMicrosecondBuilder::with_capacity(n);
                for i in 0..n {
                    match (value(&x, i)?, (!k.is_null(i)).then(|| k.value(i))) {
                        (Some(x), Some(k)) => {
                            out.append_value(add_months(&x, k)?.and_utc().timestamp_micros())
                        }
                        _ => out.append_null(),
                    }
                }
                Arc::new(out.finish())
            }
            Kind::MonthsBetween => {
                let (a, b) = (wall_micros(&cols[0])?, wall_micros(&cols[1])?);
                let mut out = Float64Builder::with_capacity(n);
                for i in 0..n {
                    match (value(&a, i)?, value(&b, i)?) {
                        (Some(a), Some(b)) => out.append_value(months_between(a.date(), b.date())),
                        _ => out.append_null(),
                    }
                }
                Arc::new(out.finish())
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// A date or timestamp column as microseconds of wall-clock time (a zoned one in UTC).
fn wall_micros(a: &ArrayRef) -> Result<PrimitiveArray<Int64Type>> {
    let zone = match a.data_type() {
        DataType::Timestamp(_, Some(_)) => Some("UTC".into()),
        _ => None,
    };
    let ts = arrow::compute::cast(a, &DataType::Timestamp(TimeUnit::Microsecond, zone))?;
    Ok(arrow::compute::cast(&ts, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

fn value(a: &PrimitiveArray<Int64Type>, i: usize) -> Result<Option<NaiveDateTime>> {
    if a.is_null(i) {
        return Ok(None);
    }
    match chrono::DateTime::from_timestamp_micros(a.value(i)) {
        Some(t) => Ok(Some(t.naive_utc())),
        None => exec_err!("timestamp out of range"),
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (y, m) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.pred_opt())
        .map_or(31, |d| d.day())
}

/// PostgreSQL's `timestamp_age`: field-by-field differences, negative fields borrowed from
/// the next larger one (a day from the month of the earlier argument's calendar).
fn age(a: &NaiveDateTime, b: &NaiveDateTime) -> IntervalMonthDayNano {
    let fields = |t: &NaiveDateTime| {
        [
            i64::from(t.year()),
            i64::from(t.month()),
            i64::from(t.day()),
            i64::from(t.hour()),
            i64::from(t.minute()),
            i64::from(t.second()),
            i64::from(t.nanosecond() / 1_000),
        ]
    };
    let (fa, fb) = (fields(a), fields(b));
    let mut d: Vec<i64> = fa.iter().zip(fb.iter()).map(|(x, y)| x - y).collect();
    let flip = a < b;
    if flip {
        d.iter_mut().for_each(|v| *v = -*v);
    }
    let [year, mon, mday, hour, min, sec, usec] = d.as_mut_slice() else {
        unreachable!("seven fields")
    };
    while *usec < 0 {
        *usec += 1_000_000;
        *sec -= 1;
    }
    while *sec < 0 {
        *sec += 60;
        *min -= 1;
    }
    while *min < 0 {
        *min += 60;
        *hour -= 1;
    }
    while *hour < 0 {
        *hour += 24;
        *mday -= 1;
    }
    while *mday < 0 {
        // PostgreSQL takes the month length of the first argument when it is the earlier,
        // of the second otherwise.
        let t = if flip { a } else { b };
        *mday += i64::from(days_in_month(t.year(), t.month()));
        *mon -= 1;
    }
    while *mon < 0 {
        *mon += 12;
        *year -= 1;
    }
    let sign = if flip { -1 } else { 1 };
    let months = sign * (*year * 12 + *mon);
    let days = sign * *mday;
    let nanos = sign * (((*hour * 60 + *min) * 60 + *sec) * 1_000_000 + *usec) * 1_000;
    IntervalMonthDayNano::new(months as i32, days as i32, nanos)
}

fn is_last_day(d: NaiveDate) -> bool {
    d.day() == days_in_month(d.year(), d.month())
}

fn add_months(x: &NaiveDateTime, k: i64) -> Result<NaiveDateTime> {
    let month0 = i64::from(x.year()) * 12 + i64::from(x.month0()) + k;
    let (year, month) = (month0.div_euclid(12), month0.rem_euclid(12) as u32 + 1);
    let Ok(year) = i32::try_from(year) else {
        return exec_err!("add_months: {x} plus {k} months is out of range");
    };
    let last = days_in_month(year, month);
    let day = if is_last_day(x.date()) {
        last
    } else {
        x.day().min(last)
    };
    match NaiveDate::from_ymd_opt(year, month, day) {
        Some(d) => Ok(d.and_time(x.time())),
        None => exec_err!("add_months: {x} plus {k} months is out of range"),
    }
}

fn months_between(a: NaiveDate, b: NaiveDate) -> f64 {
    let months = (i64::from(a.year()) - i64::from(b.year())) * 12
        + (i64::from(a.month()) - i64::from(b.month()));
    if a.day() == b.day() || (is_last_day(a) && is_last_day(b)) {
        months as f64
    } else {
        months as f64 + (f64::from(a.day()) - f64::from(b.day())) / 31.0
    }
}

fn make_timestamp(cols: &[ArrayRef]) -> Result<ArrayRef> {
    let ints: Vec<ArrayRef> = cols[..5]
        .iter()
        .map(|c| arrow::compute::cast(c, &DataType::Int32))
        .collect::<std::result::Result<_, _>>()?;
    let ints: Vec<&PrimitiveArray<Int32Type>> =
        ints.iter().map(|c| c.as_primitive::<Int32Type>()).collect();
    let secs = arrow::compute::cast(&cols[5], &DataType::Float64)?;
    let secs = secs.as_primitive::<Float64Type>();
    let n = secs.len();
    let mut out = TimestampMicrosecondBuilder::with_capacity(n);
    for i in 0..n {
        if secs.is_null(i) || ints.iter().any(|c| c.is_null(i)) {
            out.append_null();
            continue;
        }
        let [y, mo, d, h, mi] = [0, 1, 2, 3, 4].map(|k| ints[k].value(i));
        let s = secs.value(i);
        // PostgreSQL counts years before 1 as BC: year -1 is 1 BC, chrono's year 0.
        let year = if y < 0 { y + 1 } else { y };
        let date = (y != 0)
            .then(|| NaiveDate::from_ymd_opt(year, mo as u32, d as u32))
            .flatten();
        let Some(date) = date.filter(|_| mo > 0 && d > 0) else {
            return exec_err!("date field value out of range: {y}-{mo:02}-{d:02}");
        };
        // PostgreSQL allows 24:00:00 and a leap second 60, as times after the day's last.
        let micros = (s * 1e6).round();
        let in_range = (0..=24).contains(&h)
            && (0..60).contains(&mi)
            && (0.0..=60.0e6).contains(&micros)
            && (h < 24 || (mi == 0 && micros == 0.0));
        if !in_range {
            return exec_err!("time field value out of range: {h:02}:{mi:02}:{s:02}");
        }
        let start = date.and_hms_opt(0, 0, 0).expect("midnight exists");
        let at = start.and_utc().timestamp_micros()
            + (i64::from(h) * 3600 + i64::from(mi) * 60) * 1_000_000
            + micros as i64;
        out.append_value(at);
    }
    Ok(Arc::new(out.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    #[test]
    fn age_borrows_as_postgresql_does() {
        // Values checked against PostgreSQL 15.
        let a = age(&ts("2025-01-01 00:00:00"), &ts("2024-01-02 03:04:05"));
        assert_eq!(
            (a.months, a.days, a.nanoseconds),
            (11, 29, (20 * 3600 + 55 * 60 + 55) * 1_000_000_000)
        );
        let a = age(&ts("2024-01-31 00:00:00"), &ts("2024-03-01 00:00:00"));
        assert_eq!((a.months, a.days, a.nanoseconds), (-1, -1, 0));
        let a = age(&ts("2024-03-01 00:00:00"), &ts("2024-01-31 00:00:00"));
        assert_eq!((a.months, a.days, a.nanoseconds), (1, 1, 0));
    }

    #[test]
    fn add_months_keeps_month_ends() {
        let at = |s: &str, k: i64| add_months(&ts(s), k).unwrap().to_string();
        assert_eq!(at("2024-02-29 10:00:00", 1), "2024-03-31 10:00:00");
        assert_eq!(at("2024-01-30 00:00:00", 1), "2024-02-29 00:00:00");
        assert_eq!(at("2024-03-15 00:00:00", -3), "2023-12-15 00:00:00");
        assert_eq!(at("2024-12-31 00:00:00", 2), "2025-02-28 00:00:00");
    }

    #[test]
    fn months_between_is_whole_on_the_same_day_or_month_ends() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(months_between(d("2024-03-15"), d("2024-01-15")), 2.0);
        assert_eq!(months_between(d("2024-02-29"), d("2024-01-31")), 1.0);
        assert_eq!(
            months_between(d("2024-02-29"), d("2024-01-01")),
            1.0 + 28.0 / 31.0
        );
    }
}
