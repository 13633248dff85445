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
