//! PostgreSQL's functions where DataFusion has one of the same name that answers
//! differently: registered over DataFusion's, so the same SQL gives the same answer on the
//! embedded warehouse as on PostgreSQL and Redshift — or fails, naming what is not there.
//!
//! - `to_char(date | timestamp, pattern)` with PostgreSQL's template patterns
//!   (`YYYY-MM-DD HH24:MI:SS`, `Mon`, `Day`, `FM`, `TH`, `"quoted text"` …). DataFusion's own
//!   reads the pattern as a `strftime` string, so a PostgreSQL pattern came back as itself:
//!   the worst kind of wrong answer. `to_char` of a number or an interval is refused with a
//!   message instead.
//!
//! - `to_date(text, pattern)` and `to_timestamp(text, pattern)` reading PostgreSQL's
//!   template patterns (the fields dates and times need; others refused by name).
//!
//! Hand-written: no crate formats PostgreSQL's templates; the rules are from PostgreSQL's
//! documentation (Data Type Formatting Functions, table 9.26 and 9.27) and
//! src/backend/utils/adt/formatting.c.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use chrono::{DateTime, Datelike, NaiveDateTime, Timelike};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// Register every function of this module on `ctx`, over DataFusion's of the same name.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::from(ToChar::new()));
    ctx.register_udf(ScalarUDF::from(crate::pgnumeric::ToNumeric::new()));
    ctx.register_udf(ScalarUDF::from(ArrayElement::new()));
    for scale in [
        ExtractScale::Zero,
        ExtractScale::Three,
        ExtractScale::Six,
        ExtractScale::Epoch,
    ] {
        ctx.register_udf(ScalarUDF::from(Extract {
            scale,
            signature: Signature::any(2, Volatility::Immutable),
        }));
    }
    for (name, date) in [("to_date", true), ("to_timestamp", false)] {
        let engines = datafusion::execution::FunctionRegistry::udf(ctx, name).ok();
        ctx.register_udf(ScalarUDF::from(FromText {
            name,
            date,
            engines,
            signature: Signature::variadic_any(Volatility::Immutable),
        }));
    }
}

/// The scale of PostgreSQL's `EXTRACT` result for a field: `second` has microseconds (6),
/// `millisecond` 3, `epoch` 6 for timestamps and intervals and 0 for dates, the rest 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtractScale {
    Zero,
    Three,
    Six,
    Epoch,
}

impl ExtractScale {
    /// The function the statement rewrite calls for `field`.
    pub fn function_for(field: &str) -> &'static str {
        match field {
            "second" => "kondate_extract6",
            "millisecond" => "kondate_extract3",
            "epoch" => "kondate_extract_epoch",
            _ => "kondate_extract0",
        }
    }
}

/// `EXTRACT(field FROM x)` as PostgreSQL computes it: a `numeric` (the engine's
/// `date_part` gives integers and floats), in UTC for a `timestamptz`. Called by the
/// statement rewrite as `kondate_extractN('field', x)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Extract {
    scale: ExtractScale,
    signature: Signature,
}

impl ScalarUDFImpl for Extract {
    fn name(&self) -> &str {
        match self.scale {
            ExtractScale::Zero => "kondate_extract0",
            ExtractScale::Three => "kondate_extract3",
            ExtractScale::Six => "kondate_extract6",
            ExtractScale::Epoch => "kondate_extract_epoch",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let scale = match (self.scale, &args[1]) {
            (ExtractScale::Zero, _) => 0,
            (ExtractScale::Three, _) => 3,
            (ExtractScale::Epoch, DataType::Date32 | DataType::Date64) => 0,
            _ => 6,
        };
        match &args[1] {
            DataType::Date32
            | DataType::Date64
            | DataType::Timestamp(..)
            | DataType::Duration(_)
            | DataType::Null => Ok(DataType::Decimal128(38, scale)),
            DataType::Interval(_) if self.scale == ExtractScale::Epoch => {
                Ok(DataType::Decimal128(38, scale))
            }
            other => plan_err!(
                "EXTRACT from a {other} is not supported by the embedded warehouse; extract \
                 from a date or a timestamp (or the epoch of an interval)"
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let field = match &args.args[0] {
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(f))) => f.to_lowercase(),
            _ => return plan_err!("EXTRACT: the field must be a name such as year"),
        };
        let values = args.args[1].clone().into_array(n)?;
        let values = match values.data_type() {
            DataType::Interval(_) => arrow::compute::cast(
                &values,
                &DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano),
            )?,
            _ => values,
        };
        let mut out = arrow::array::Decimal128Builder::with_capacity(n);
        // Microseconds since the epoch, or for an interval its epoch directly.
        let (micros, interval): (Option<ArrayRef>, bool) = match values.data_type() {
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => (
                Some(arrow::compute::cast(
                    &arrow::compute::cast(
                        &values,
                        &DataType::Timestamp(TimeUnit::Microsecond, None),
                    )
                    .or_else(|_| {
                        arrow::compute::cast(
                            &values,
                            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                        )
                    })?,
                    &DataType::Int64,
                )?),
                false,
            ),
            DataType::Duration(_) => (
                Some(arrow::compute::cast(
                    &arrow::compute::cast(&values, &DataType::Duration(TimeUnit::Microsecond))?,
                    &DataType::Int64,
                )?),
                true,
            ),
            _ => (None, true),
        };
        let is_date = matches!(values.data_type(), DataType::Date32 | DataType::Date64);
        for i in 0..n {
            if values.is_null(i) {
                out.append_null();
                continue;
            }
            let raw: i128 = if let Some(m) = &micros {
                let us = m.as_primitive::<arrow::datatypes::Int64Type>().value(i);
                if interval {
                    if field != "epoch" {
                        return plan_err!(
                            "EXTRACT({field} FROM interval) is not supported by the embedded \
                             warehouse; extract the epoch and divide"
                        );
                    }
                    i128::from(us)
                } else {
                    extract_field(&field, us, is_date)?
                }
            } else {
                // An interval of months, days and nanoseconds: PostgreSQL's epoch counts a
                // year as 365.25 days and a month as 30.
                let v = values
                    .as_primitive::<arrow::datatypes::IntervalMonthDayNanoType>()
                    .value(i);
                let months = i128::from(v.months);
                let secs_years = (months / 12) * 36525 * 864; // 365.25 days, in seconds
                let secs_months = (months % 12) * 30 * 86_400;
                (secs_years + secs_months + i128::from(v.days) * 86_400) * 1_000_000
                    + i128::from(v.nanoseconds) / 1000
            };
            out.append_value(raw);
        }
        Ok(ColumnarValue::Array(Arc::new(
            out.finish()
                .with_data_type(args.return_field.data_type().clone()),
        )))
    }
}

/// The raw decimal (at the result's scale) of `field` for an instant `us` microseconds
/// after the epoch (UTC).
fn extract_field(field: &str, us: i64, is_date: bool) -> Result<i128> {
    let Some(t) = DateTime::from_timestamp_micros(us).map(|t| t.naive_utc()) else {
        return plan_err!("EXTRACT: the value is out of range");
    };
    let micro_of_minute = i128::from(t.second()) * 1_000_000 + i128::from(us.rem_euclid(1_000_000));
    let year = t.year();
    Ok(match field {
        "year" => year.into(),
        "month" => t.month().into(),
        "day" => t.day().into(),
        "hour" => t.hour().into(),
        "minute" => t.minute().into(),
        // Scale 6 and 3: the raw value is microseconds of the minute either way.
        "second" | "millisecond" => micro_of_minute,
        "microsecond" => micro_of_minute,
        "epoch" if is_date => i128::from(us.div_euclid(1_000_000)),
        "epoch" => i128::from(us),
        "dow" => t.weekday().num_days_from_sunday().into(),
        "isodow" => t.weekday().number_from_monday().into(),
        "doy" => t.ordinal().into(),
        "week" => t.iso_week().week().into(),
        "isoyear" => t.iso_week().year().into(),
        "quarter" => ((t.month() - 1) / 3 + 1).into(),
        "decade" => year.div_euclid(10).into(),
        "century" => (if year > 0 {
            (year + 99) / 100
        } else {
            -((99 - year) / 100)
        })
        .into(),
        "millennium" => (if year > 0 {
            (year + 999) / 1000
        } else {
            -((999 - year) / 1000)
        })
        .into(),
        other => {
            return plan_err!(
                "EXTRACT({other} …) is not supported by the embedded warehouse; use year, \
                 quarter, month, week, day, doy, dow, isodow, hour, minute, second, \
                 millisecond, microsecond, epoch, decade, century or millennium"
            );
        }
    })
}

/// `to_date(text, pattern)` and `to_timestamp(text, pattern)` reading PostgreSQL's
/// template patterns (DataFusion's read `strftime` patterns and failed on PostgreSQL's).
/// With one argument, the engine's own function (ISO text; `to_timestamp(seconds)`).
#[derive(Debug)]
struct FromText {
    name: &'static str,
    /// `to_date` (a date) or `to_timestamp` (a `timestamptz`, read as UTC).
    date: bool,
    engines: Option<Arc<ScalarUDF>>,
    signature: Signature,
}

impl PartialEq for FromText {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for FromText {}

impl std::hash::Hash for FromText {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for FromText {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match (args.len(), &self.engines) {
            (2, _) => Ok(if self.date {
                DataType::Date32
            } else {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }),
            (_, Some(engines)) => engines.inner().return_type(args),
            _ => plan_err!("{} takes (text, pattern)", self.name),
        }
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match (args.len(), &self.engines) {
            (2, _) => Ok(vec![DataType::Utf8, DataType::Utf8]),
            (_, Some(engines)) => engines.inner().coerce_types(args),
            _ => plan_err!("{} takes (text, pattern)", self.name),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if args.args.len() != 2 {
            return match &self.engines {
                Some(engines) => engines.inner().invoke_with_args(args),
                None => plan_err!("{} takes (text, pattern)", self.name),
            };
        }
        let n = args.number_rows;
        let texts = arrow::compute::cast(&args.args[0].clone().into_array(n)?, &DataType::Utf8)?;
        let patterns = arrow::compute::cast(&args.args[1].clone().into_array(n)?, &DataType::Utf8)?;
        let (texts, patterns) = (texts.as_string::<i32>(), patterns.as_string::<i32>());
        let mut days = arrow::array::Date32Builder::with_capacity(n);
        let mut micros = arrow::array::TimestampMicrosecondBuilder::with_capacity(n);
        let mut cached: Option<(String, Vec<Piece>)> = None;
        for i in 0..n {
            if texts.is_null(i) || patterns.is_null(i) {
                days.append_null();
                micros.append_null();
                continue;
            }
            let pattern = patterns.value(i);
            if cached.as_ref().is_none_or(|(p, _)| p != pattern) {
                cached = Some((pattern.to_string(), parse(pattern)));
            }
            let pieces = &cached.as_ref().expect("set above").1;
            let at = read(texts.value(i), pieces).map_err(|e| {
                datafusion::error::DataFusionError::Execution(format!(
                    "{}('{}', '{pattern}'): {e}",
                    self.name,
                    texts.value(i)
                ))
            })?;
            days.append_value(
                (at.date() - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days()
                    as i32,
            );
            micros.append_value(at.and_utc().timestamp_micros());
        }
        let out: ArrayRef = if self.date {
            Arc::new(days.finish())
        } else {
            Arc::new(micros.finish().with_timezone("UTC"))
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// Read `text` by a template, as PostgreSQL's `to_timestamp` does for the fields dates and
/// times need: `YYYY`, `MM`, `DD`, `DDD`, `HH24`, `HH12`/`HH` with `AM`/`PM`, `MI`, `SS`,
/// `MS`, `US`, `Mon`/`Month` (English names, any case), `Dy`/`Day` (read and ignored). A
/// number field reads up to its width of digits; other template characters skip one
/// character of the text; spaces are skipped as PostgreSQL skips them. Values out of range
/// are errors, as on PostgreSQL; a field kondate does not read is refused by name.
fn read(text: &str, pieces: &[Piece]) -> std::result::Result<NaiveDateTime, String> {
    let mut rest = text;
    let (mut year, mut month, mut day, mut doy) =
        (None::<i32>, None::<u32>, None::<u32>, None::<u32>);
    let (mut hour, mut minute, mut second, mut micro) = (0u32, 0u32, 0u32, 0u32);
    let mut pm: Option<bool> = None;
    let mut twelve = false;
    let number = |rest: &mut &str, width: usize, what: &str| -> std::result::Result<u32, String> {
        let r = rest.trim_start_matches(' ');
        let len = r.bytes().take(width).take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return Err(format!("expected a number for {what} at `{r}`"));
        }
        let v = r[..len].parse::<u32>().map_err(|e| e.to_string())?;
        *rest = &r[len..];
        Ok(v)
    };
    let name =
        |rest: &mut &str, names: &[&str], short: bool| -> std::result::Result<usize, String> {
            let r = rest.trim_start_matches(' ');
            for (i, n) in names.iter().enumerate() {
                let n = if short { &n[..3] } else { n };
                if r.len() >= n.len() && r[..n.len()].eq_ignore_ascii_case(n) {
                    *rest = &r[n.len()..];
                    return Ok(i);
                }
            }
            Err(format!("expected a name at `{r}`"))
        };
    for piece in pieces {
        match piece {
            Piece::Text(t) => {
                for c in t.chars() {
                    if c == ' ' {
                        rest = rest.trim_start_matches(' ');
                    } else if let Some(ch) = rest.chars().next() {
                        rest = &rest[ch.len_utf8()..];
                    }
                }
            }
            Piece::Field { field, .. } => match field {
                Field::Yyyy => year = Some(number(&mut rest, 4, "YYYY")? as i32),
                Field::Mm => month = Some(number(&mut rest, 2, "MM")?),
                Field::Dd => day = Some(number(&mut rest, 2, "DD")?),
                Field::Ddd => doy = Some(number(&mut rest, 3, "DDD")?),
                Field::Hh24 => hour = number(&mut rest, 2, "HH24")?,
                Field::Hh12 => {
                    hour = number(&mut rest, 2, "HH12")?;
                    twelve = true;
                }
                Field::Mi => minute = number(&mut rest, 2, "MI")?,
                Field::Ss => second = number(&mut rest, 2, "SS")?,
                // Fractions of a second: the digits read are a fraction (`.25` is 250 ms).
                Field::Ms | Field::Us => {
                    let width = if matches!(field, Field::Ms) { 3 } else { 6 };
                    let before = rest.trim_start_matches(' ').len();
                    let v = number(&mut rest, width, "MS/US")?;
                    let read = (before - rest.len()) as u32;
                    micro = v * 10u32.pow(6 - read);
                }
                Field::Meridiem { .. } => {
                    let r = rest.trim_start_matches(' ');
                    let upper = r.to_ascii_uppercase();
                    let (is_pm, len) = if upper.starts_with("P.M.") {
                        (true, 4)
                    } else if upper.starts_with("A.M.") {
                        (false, 4)
                    } else if upper.starts_with("PM") {
                        (true, 2)
                    } else if upper.starts_with("AM") {
                        (false, 2)
                    } else {
                        return Err(format!("expected AM or PM at `{r}`"));
                    };
                    pm = Some(is_pm);
                    rest = &r[len..];
                }
                Field::Month(_) => month = Some(name(&mut rest, &MONTHS, false)? as u32 + 1),
                Field::Mon(_) => month = Some(name(&mut rest, &MONTHS, true)? as u32 + 1),
                Field::Day(_) => {
                    name(&mut rest, &DAYS, false)?;
                }
                Field::Dy(_) => {
                    name(&mut rest, &DAYS, true)?;
                }
                other => {
                    return Err(format!(
                        "the template field {other:?} is not read by the embedded warehouse; \
                         use YYYY, MM, DD, DDD, HH24, HH12 with AM/PM, MI, SS, MS, US, Mon, Month"
                    ));
                }
            },
        }
    }
    if twelve || pm.is_some() {
        if !(1..=12).contains(&hour) {
            return Err(format!("hour \"{hour}\" is invalid for the 12-hour clock"));
        }
        hour = match (hour, pm.unwrap_or(false)) {
            (12, false) => 0,
            (12, true) => 12,
            (h, true) => h + 12,
            (h, false) => h,
        };
    }
    let year = year.unwrap_or(1);
    let date = match doy {
        Some(d) => chrono::NaiveDate::from_yo_opt(year, d),
        None => chrono::NaiveDate::from_ymd_opt(year, month.unwrap_or(1), day.unwrap_or(1)),
    }
    .ok_or_else(|| "date/time field value out of range".to_string())?;
    let time = chrono::NaiveTime::from_hms_micro_opt(hour, minute, second, micro)
        .ok_or_else(|| "date/time field value out of range".to_string())?;
    Ok(NaiveDateTime::new(date, time))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ToChar {
    signature: Signature,
}

impl ToChar {
    fn new() -> ToChar {
        ToChar {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ToChar {
    fn name(&self) -> &str {
        "to_char"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match (&args[0], &args[1]) {
            (
                DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) | DataType::Null,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null,
            ) => Ok(DataType::Utf8),
            (DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _), other) => {
                plan_err!("to_char: the pattern must be text, not {other}")
            }
            (t, _) if t.is_numeric() => plan_err!(
                "to_char of a number is not supported by the embedded warehouse (it would not \
                 format PostgreSQL's number patterns the way PostgreSQL does): use round(x, n), \
                 a cast to text, or lpad(...) instead"
            ),
            (t, _) => plan_err!(
                "to_char of a {t} is not supported by the embedded warehouse: to_char formats \
                 dates and timestamps here; cast the value to text instead"
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let tz = match args.args[0].data_type() {
            DataType::Timestamp(_, tz) => tz,
            _ => None,
        };
        let values = args.args[0].clone().into_array(n)?;
        let micros = arrow::compute::cast(
            &values,
            &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
        )?;
        let micros = micros.as_primitive::<TimestampMicrosecondType>();
        let patterns: ArrayRef = args.args[1].clone().into_array(n)?;
        let patterns = arrow::compute::cast(&patterns, &DataType::Utf8)?;
        let patterns = patterns.as_string::<i32>();
        // A constant pattern (the usual case) is parsed once.
        let constant = match &args.args[1] {
            ColumnarValue::Scalar(
                ScalarValue::Utf8(Some(p))
                | ScalarValue::LargeUtf8(Some(p))
                | ScalarValue::Utf8View(Some(p)),
            ) => Some(parse(p)),
            _ => None,
        };
        let with_zone = tz.is_some();
        let mut out = StringBuilder::with_capacity(n, n * 16);
        let mut text = String::new();
        for i in 0..n {
            if micros.is_null(i) || patterns.is_null(i) {
                out.append_null();
                continue;
            }
            let Some(at) = DateTime::from_timestamp_micros(micros.value(i)) else {
                out.append_null();
                continue;
            };
            let parsed;
            let pattern = match &constant {
                Some(p) => p,
                None => {
                    parsed = parse(patterns.value(i));
                    &parsed
                }
            };
            text.clear();
            format(&at.naive_utc(), with_zone, pattern, &mut text);
            out.append_value(&text);
        }
        let array: ArrayRef = Arc::new(out.finish());
        Ok(match (&args.args[0], &args.args[1]) {
            (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)) => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?)
            }
            _ => ColumnarValue::Array(array),
        })
    }
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Field {
        field: Field,
        /// `FM`: no padding.
        fill: bool,
        /// `TH` (upper case) or `th`: an ordinal suffix.
        ordinal: Option<bool>,
    },
}

/// How a name field is written: `MONTH`, `Month` or `month`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Case {
    Upper,
    Title,
    Lower,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    Hh24,
    Hh12,
    Mi,
    Ss,
    Ms,
    Us,
    Ssss,
    Meridiem { dots: bool, upper: bool },
    YCommaYyy,
    Yyyy,
    Yyy,
    Yy,
    Y,
    Iyyy,
    Month(Case),
    Mon(Case),
    Mm,
    Day(Case),
    Dy(Case),
    Ddd,
    Dd,
    D,
    Id,
    Ww,
    Iw,
    Q,
    J,
    Tz { upper: bool },
    Of,
}

/// The keywords, longest first where one starts another, with what they mean. Case matters
/// where PostgreSQL's does (names); numeric fields take either case, as in PostgreSQL.
fn keywords() -> &'static [(&'static str, Field)] {
    use Field::*;
    &[
        (
            "A.M.",
            Meridiem {
                dots: true,
                upper: true,
            },
        ),
        (
            "P.M.",
            Meridiem {
                dots: true,
                upper: true,
            },
        ),
        (
            "a.m.",
            Meridiem {
                dots: true,
                upper: false,
            },
        ),
        (
            "p.m.",
            Meridiem {
                dots: true,
                upper: false,
            },
        ),
        (
            "AM",
            Meridiem {
                dots: false,
                upper: true,
            },
        ),
        (
            "PM",
            Meridiem {
                dots: false,
                upper: true,
            },
        ),
        (
            "am",
            Meridiem {
                dots: false,
                upper: false,
            },
        ),
        (
            "pm",
            Meridiem {
                dots: false,
                upper: false,
            },
        ),
        ("Y,YYY", YCommaYyy),
        ("y,yyy", YCommaYyy),
        ("YYYY", Yyyy),
        ("yyyy", Yyyy),
        ("YYY", Yyy),
        ("yyy", Yyy),
        ("YY", Yy),
        ("yy", Yy),
        ("Y", Y),
        ("y", Y),
        ("IYYY", Iyyy),
        ("iyyy", Iyyy),
        ("HH24", Hh24),
        ("hh24", Hh24),
        ("HH12", Hh12),
        ("hh12", Hh12),
        ("HH", Hh12),
        ("hh", Hh12),
        ("MI", Mi),
        ("mi", Mi),
        ("SSSSS", Ssss),
        ("sssss", Ssss),
        ("SSSS", Ssss),
        ("ssss", Ssss),
        ("SS", Ss),
        ("ss", Ss),
        ("MS", Ms),
        ("ms", Ms),
        ("US", Us),
        ("us", Us),
        ("MONTH", Month(Case::Upper)),
        ("Month", Month(Case::Title)),
        ("month", Month(Case::Lower)),
        ("MON", Mon(Case::Upper)),
        ("Mon", Mon(Case::Title)),
        ("mon", Mon(Case::Lower)),
        ("MM", Mm),
        ("mm", Mm),
        ("DAY", Day(Case::Upper)),
        ("Day", Day(Case::Title)),
        ("day", Day(Case::Lower)),
        ("DY", Dy(Case::Upper)),
        ("Dy", Dy(Case::Title)),
        ("dy", Dy(Case::Lower)),
        ("DDD", Ddd),
        ("ddd", Ddd),
        ("DD", Dd),
        ("dd", Dd),
        ("D", D),
        ("d", D),
        ("ID", Id),
        ("id", Id),
        ("WW", Ww),
        ("ww", Ww),
        ("IW", Iw),
        ("iw", Iw),
        ("Q", Q),
        ("q", Q),
        ("J", J),
        ("j", J),
        ("TZ", Tz { upper: true }),
        ("tz", Tz { upper: false }),
        ("OF", Of),
        ("of", Of),
    ]
}

/// Read a template into pieces: keywords (with `FM` before and `TH`/`th` after),
/// double-quoted text (a backslash escapes the next character inside), and any other
/// character as itself.
fn parse(template: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = template;
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, next)) = chars.next() {
                            text.push(next);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => text.push(c),
                }
            }
            rest = &quoted[end.min(quoted.len())..];
            continue;
        }
        let (fill, after_fm) = match rest.strip_prefix("FM").or_else(|| rest.strip_prefix("fm")) {
            Some(r) => (true, r),
            None => (false, rest),
        };
        if let Some((kw, field)) = keywords().iter().find(|(kw, _)| after_fm.starts_with(kw)) {
            if !text.is_empty() {
                out.push(Piece::Text(std::mem::take(&mut text)));
            }
            let mut after = &after_fm[kw.len()..];
            let ordinal = if let Some(r) = after.strip_prefix("TH") {
                after = r;
                Some(true)
            } else if let Some(r) = after.strip_prefix("th") {
                after = r;
                Some(false)
            } else {
                None
            };
            out.push(Piece::Field {
                field: *field,
                fill,
                ordinal,
            });
            rest = after;
            continue;
        }
        let c = rest.chars().next().expect("not empty");
        text.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    out
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn cased(name: &str, case: Case) -> String {
    match case {
        Case::Upper => name.to_uppercase(),
        Case::Title => name.to_string(),
        Case::Lower => name.to_lowercase(),
    }
}

fn ordinal_suffix(n: i64, upper: bool) -> &'static str {
    let s = match (n % 100, n % 10) {
        (11..=13, _) => "th",
        (_, 1) => "st",
        (_, 2) => "nd",
        (_, 3) => "rd",
        _ => "th",
    };
    if upper {
        match s {
            "st" => "ST",
            "nd" => "ND",
            "rd" => "RD",
            _ => "TH",
        }
    } else {
        s
    }
}

/// Write `at` (UTC when `with_zone`) as `pieces` say.
fn format(at: &NaiveDateTime, with_zone: bool, pieces: &[Piece], out: &mut String) {
    use std::fmt::Write;
    for piece in pieces {
        let (field, fill, ordinal) = match piece {
            Piece::Text(t) => {
                out.push_str(t);
                continue;
            }
            Piece::Field {
                field,
                fill,
                ordinal,
            } => (*field, *fill, *ordinal),
        };
        // A number, at least `width` digits unless FM.
        let mut number = |n: i64, width: usize| {
            if fill {
                let _ = write!(out, "{n}");
            } else {
                let _ = write!(out, "{n:0width$}");
            }
            if let Some(upper) = ordinal {
                out.push_str(ordinal_suffix(n, upper));
            }
        };
        let hour12 = match at.hour() % 12 {
            0 => 12,
            h => h,
        };
        match field {
            Field::Hh24 => number(at.hour().into(), 2),
            Field::Hh12 => number(hour12.into(), 2),
            Field::Mi => number(at.minute().into(), 2),
            Field::Ss => number(at.second().into(), 2),
            Field::Ms => number((at.nanosecond() / 1_000_000).into(), 3),
            Field::Us => number((at.nanosecond() / 1_000).into(), 6),
            Field::Ssss => number(at.num_seconds_from_midnight().into(), 1),
            Field::Yyyy => number(at.year().into(), 4),
            Field::Yyy => number((at.year() % 1000).into(), 3),
            Field::Yy => number((at.year() % 100).into(), 2),
            Field::Y => number((at.year() % 10).into(), 1),
            Field::Iyyy => number(at.iso_week().year().into(), 4),
            Field::Mm => number(at.month().into(), 2),
            Field::Dd => number(at.day().into(), 2),
            Field::Ddd => number(at.ordinal().into(), 3),
            Field::D => number((at.weekday().num_days_from_sunday() + 1).into(), 1),
            Field::Id => number(at.weekday().number_from_monday().into(), 1),
            Field::Ww => number(((at.ordinal() - 1) / 7 + 1).into(), 2),
            Field::Iw => number(at.iso_week().week().into(), 2),
            Field::Q => number(((at.month() - 1) / 3 + 1).into(), 1),
            Field::J => number(i64::from(at.date().num_days_from_ce()) + 1_721_425, 1),
            Field::YCommaYyy => {
                let y = at.year();
                let _ = write!(out, "{},{:03}", y / 1000, (y % 1000).abs());
            }
            Field::Meridiem { dots, upper } => {
                let pm = at.hour() >= 12;
                let s = match (pm, dots) {
                    (false, false) => "AM",
                    (true, false) => "PM",
                    (false, true) => "A.M.",
                    (true, true) => "P.M.",
                };
                if upper {
                    out.push_str(s);
                } else {
                    out.push_str(&s.to_lowercase());
                }
            }
            Field::Month(case) => {
                let name = cased(MONTHS[at.month0() as usize], case);
                if fill {
                    out.push_str(&name);
                } else {
                    let _ = write!(out, "{name:<9}");
                }
            }
            Field::Mon(case) => out.push_str(&cased(&MONTHS[at.month0() as usize][..3], case)),
            Field::Day(case) => {
                let name = cased(DAYS[at.weekday().num_days_from_sunday() as usize], case);
                if fill {
                    out.push_str(&name);
                } else {
                    let _ = write!(out, "{name:<9}");
                }
            }
            Field::Dy(case) => out.push_str(&cased(
                &DAYS[at.weekday().num_days_from_sunday() as usize][..3],
                case,
            )),
            // The embedded warehouse's session time zone is UTC; a timestamp without a
            // zone has none, and PostgreSQL prints nothing for it.
            Field::Tz { upper } => {
                if with_zone {
                    out.push_str(if upper { "UTC" } else { "utc" });
                }
            }
            Field::Of => {
                if with_zone {
                    out.push_str("+00");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn templates_read_dates_and_times_as_postgresql_does() {
        let at = |text: &str, pattern: &str| read(text, &parse(pattern)).map(|t| t.to_string());
        assert_eq!(
            at("2024-02-29", "YYYY-MM-DD").unwrap(),
            "2024-02-29 00:00:00"
        );
        assert_eq!(at("20240101", "YYYYMMDD").unwrap(), "2024-01-01 00:00:00");
        assert_eq!(
            at("31/12/2023", "DD/MM/YYYY").unwrap(),
            "2023-12-31 00:00:00"
        );
        assert_eq!(at("2024 060", "YYYY DDD").unwrap(), "2024-02-29 00:00:00");
        assert_eq!(
            at("05 mar 2024", "DD Mon YYYY").unwrap(),
            "2024-03-05 00:00:00"
        );
        assert_eq!(
            at("2024/03/10 12:30:05 AM", "YYYY/MM/DD HH12:MI:SS AM").unwrap(),
            "2024-03-10 00:30:05"
        );
        assert_eq!(
            at("2024-03-10 02:30:00.25", "YYYY-MM-DD HH24:MI:SS.MS").unwrap(),
            "2024-03-10 02:30:00.250"
        );
        assert!(
            at("2024-02-30", "YYYY-MM-DD")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(at("x", "YYYY").unwrap_err().contains("YYYY"));
        assert!(at("2024 5", "YYYY Q").unwrap_err().contains("not read"));
    }

    use super::*;

    fn fmt(at: &str, pattern: &str) -> String {
        let at = NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M:%S%.f").unwrap();
        let mut out = String::new();
        format(&at, false, &parse(pattern), &mut out);
        out
    }

    /// Expected values are PostgreSQL 15's own output for the same calls.
    #[test]
    fn templates_format_as_postgresql_formats_them() {
        let t = "2024-03-09 15:04:05.123456";
        assert_eq!(fmt(t, "YYYY-MM-DD"), "2024-03-09");
        assert_eq!(fmt(t, "YYYY-MM-DD HH24:MI:SS"), "2024-03-09 15:04:05");
        assert_eq!(fmt(t, "HH12:MI AM"), "03:04 PM");
        assert_eq!(fmt(t, "FMHH12:MI a.m."), "3:04 p.m.");
        assert_eq!(fmt(t, "Month DD, YYYY"), "March     09, 2024");
        assert_eq!(fmt(t, "FMMonth FMDDth, YYYY"), "March 9th, 2024");
        assert_eq!(fmt(t, "Dy Mon DD"), "Sat Mar 09");
        assert_eq!(fmt(t, "DAY day Day"), "SATURDAY  saturday  Saturday ");
        assert_eq!(fmt(t, "MS US"), "123 123456");
        assert_eq!(fmt(t, "DDD D ID WW IW Q"), "069 7 6 10 10 1");
        assert_eq!(fmt(t, "\"Quarter\" Q \"of\" YYYY"), "Quarter 1 of 2024");
        assert_eq!(fmt(t, "yyyy/mm/dd"), "2024/03/09");
        assert_eq!(fmt(t, "Y,YYY YYY YY Y"), "2,024 024 24 4");
        assert_eq!(fmt(t, "J"), "2460379");
        assert_eq!(fmt(t, "SSSS"), "54245");
        assert_eq!(fmt("2021-01-01 00:00:00", "IYYY-IW"), "2020-53");
        assert_eq!(fmt("2024-01-01 00:00:00", "DDth DDTH"), "01st 01ST");
        assert_eq!(fmt("2024-01-12 00:00:00", "FMDDth"), "12th");
        assert_eq!(fmt("2024-01-23 12:00:00", "FMDDth HH12 AM"), "23rd 12 PM");
        assert_eq!(fmt("2024-01-23 00:30:00", "HH12:MI am"), "12:30 am");
    }
}

/// `a[i]`, PostgreSQL's array subscript (from 1; NULL outside the array), for the engine's
/// lists (`(regexp_match(note, '[0-9]+'))[1]`). The statement's subscripts are rewritten
/// to it before planning (`rsfuncs`); the engine's own subscript needs its nested-types
/// functions, which this build leaves out for their size.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ArrayElement {
    signature: Signature,
}

impl ArrayElement {
    pub fn new() -> ArrayElement {
        ArrayElement {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ArrayElement {
    fn name(&self) -> &str {
        "kondate_array_element"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match (&args[0], &args[1]) {
            (DataType::List(f) | DataType::LargeList(f), i)
                if i.is_integer() || i == &DataType::Null =>
            {
                Ok(f.data_type().clone())
            }
            (DataType::List(_) | DataType::LargeList(_), i) => {
                plan_err!("an array subscript must be an integer, not {i}")
            }
            (DataType::Null, _) => Ok(DataType::Null),
            (other, _) => plan_err!(
                "a subscript [i] applies to an array, not to a {other}; for text use \
                 substr(x, i, 1), for JSON json_extract_path_text"
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use arrow::array::{OffsetSizeTrait, UInt64Array};
        use arrow::datatypes::Int64Type;
        fn positions<O: OffsetSizeTrait>(
            lists: &arrow::array::GenericListArray<O>,
            index: &arrow::array::PrimitiveArray<Int64Type>,
        ) -> UInt64Array {
            let offsets = lists.value_offsets();
            (0..lists.len())
                .map(|i| {
                    if lists.is_null(i) || index.is_null(i) {
                        return None;
                    }
                    let (start, end) = (offsets[i].as_usize(), offsets[i + 1].as_usize());
                    let k = index.value(i);
                    (k >= 1 && (k as u64) <= (end - start) as u64)
                        .then(|| (start as u64) + (k as u64) - 1)
                })
                .collect()
        }
        let n = args.number_rows;
        let lists = args.args[0].clone().into_array(n)?;
        if lists.data_type() == &DataType::Null {
            return Ok(ColumnarValue::Scalar(ScalarValue::Null));
        }
        let index = args.args[1].clone().into_array(n)?;
        let index = arrow::compute::cast(&index, &DataType::Int64)?;
        let index = index.as_primitive::<Int64Type>();
        let (values, at) = match lists.data_type() {
            DataType::List(_) => {
                let l = lists.as_list::<i32>();
                (l.values().clone(), positions(l, index))
            }
            DataType::LargeList(_) => {
                let l = lists.as_list::<i64>();
                (l.values().clone(), positions(l, index))
            }
            other => return plan_err!("a subscript [i] applies to an array, not to a {other}"),
        };
        Ok(ColumnarValue::Array(arrow::compute::take(
            values.as_ref(),
            &at,
            None,
        )?))
    }
}
