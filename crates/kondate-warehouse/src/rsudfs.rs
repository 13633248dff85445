//! Redshift's text functions that need more than a rewrite ([`crate::rsfuncs`]), as
//! DataFusion functions over text:
//!
//! - `json_extract_path_text(json, key, …)`: the value at the path, as text (a string
//!   without its quotes, a number or `true`/`false` as written, an object or array as
//!   compact JSON); NULL where the path leads nowhere or to a JSON `null`, as on
//!   PostgreSQL. A key that is a number indexes an array. Text that is not JSON is an error
//!   naming the function.
//! - `kondate_json_get(json, key)` and `kondate_jsonb_get(json, key)`: PostgreSQL's `->` on
//!   `json` (the value's text exactly as written) and on `jsonb` (PostgreSQL's normal form:
//!   `", "` and `": "` between items, keys shortest first); the statement rewrite
//!   ([`crate::rsfuncs`]) turns `x::json -> k` into them, and `->>` and `#>>` into
//!   `json_extract_path_text`.
//! - `json_typeof(json)` and `json_array_length(json)` (as `kondate_json_typeof` and
//!   `kondate_json_array_length`, which the statement rewrite calls).
//! - `regexp_substr(text, pattern [, position [, occurrence]])`: the text of the
//!   `occurrence`-th match at or after character `position` (both from 1), or NULL.
//!
//! - `kondate_at_time_zone(x, zone)`: PostgreSQL's `x AT TIME ZONE zone` (the statement
//!   rewrite turns the operator, and Redshift's `CONVERT_TIMEZONE([from,] to, ts)` — two
//!   such steps — into it). A wall-clock time that a clock change skips is read as the
//!   hour after; one it repeats, as standard time (the later instant), as PostgreSQL does.
//!
//! - `md5(text)`: the MD5 digest of the text's UTF-8 bytes, 32 hexadecimal digits.
//! - `quote_ident(text)` and `quote_literal(text)`: PostgreSQL's quoting (an identifier is
//!   quoted unless it is lowercase letters, digits and `_` and not a reserved word; a
//!   literal with a backslash is written `E'…'`).
//!
//! Hand-written because DataFusion has none of these (its `md5` comes with a feature that
//! brings every digest); the regex crate reads patterns (POSIX
//! classes such as `[[:digit:]]` included).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, TimeUnit};
use chrono::TimeZone;
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// Register this module's functions on `ctx`.
pub fn register(ctx: &SessionContext) {
    let text_functions: [(&'static str, usize, usize, RowFn); 9] = [
        (
            "json_extract_path_text",
            2,
            usize::MAX,
            json_extract_path_text,
        ),
        ("kondate_json_get", 2, 2, json_get),
        ("kondate_jsonb_get", 2, 2, jsonb_get),
        ("kondate_json_typeof", 1, 1, json_typeof),
        ("kondate_json_array_length", 1, 1, json_array_length),
        ("regexp_substr", 2, 4, regexp_substr),
        ("md5", 1, 1, md5_hex),
        ("quote_ident", 1, 1, quote_ident),
        ("quote_literal", 1, 1, quote_literal),
    ];
    for (name, min, max, f) in text_functions {
        ctx.register_udf(ScalarUDF::from(TextFn::new(name, min, max, f)));
    }
    ctx.register_udf(ScalarUDF::from(AtTimeZone {
        signature: Signature::any(2, Volatility::Immutable),
    }));
}

/// One row's arguments, each as text (NULL as `None`), to the function's text result.
type RowFn = fn(&[Option<&str>], &mut Cache) -> Result<Option<String>>;

/// A compiled pattern kept between rows (the pattern is nearly always a constant).
#[derive(Default)]
pub struct Cache {
    regex: Option<(String, regex::Regex)>,
}

/// A function of text arguments returning text, row by row. Two are the same function
/// when their names are (each name is registered once).
#[derive(Debug)]
struct TextFn {
    name: &'static str,
    min: usize,
    max: usize,
    f: RowFn,
    signature: Signature,
}

impl PartialEq for TextFn {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for TextFn {}

impl std::hash::Hash for TextFn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl TextFn {
    fn new(name: &'static str, min: usize, max: usize, f: RowFn) -> TextFn {
        TextFn {
            name,
            min,
            max,
            f,
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TextFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        if args.len() < self.min || args.len() > self.max {
            let most = if self.max == usize::MAX {
                "or more".to_string()
            } else {
                format!("to {}", self.max)
            };
            return plan_err!(
                "{} takes {} {most} arguments, not {}",
                self.name,
                self.min,
                args.len()
            );
        }
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let columns: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| {
                let a = a.clone().into_array(n)?;
                Ok(arrow::compute::cast(&a, &DataType::Utf8)?)
            })
            .collect::<Result<_>>()?;
        let strings: Vec<_> = columns.iter().map(|c| c.as_string::<i32>()).collect();
        let mut out = StringBuilder::with_capacity(n, n * 8);
        let mut cache = Cache::default();
        let mut row: Vec<Option<&str>> = Vec::with_capacity(strings.len());
        for i in 0..n {
            row.clear();
            row.extend(strings.iter().map(|s| (!s.is_null(i)).then(|| s.value(i))));
            match (self.f)(&row, &mut cache)? {
                Some(v) => out.append_value(v),
                None => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// The instant that wall-clock time `wall` is in `zone`, as PostgreSQL reads it: a time a
/// clock change skips is read as the hour after; one it repeats, as standard time (the
/// later instant).
fn wall_to_instant(
    zone: chrono_tz::Tz,
    wall: &chrono::NaiveDateTime,
) -> Option<chrono::DateTime<chrono_tz::Tz>> {
    match zone.from_local_datetime(wall) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(_, t) => Some(t),
        chrono::LocalResult::None => {
            match zone.from_local_datetime(&(*wall + chrono::Duration::hours(1))) {
                chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(_, t) => Some(t),
                chrono::LocalResult::None => None,
            }
        }
    }
}

fn zone_named(name: &str) -> Result<chrono_tz::Tz> {
    name.trim().parse::<chrono_tz::Tz>().or_else(|_| {
        exec_err!(
            "AT TIME ZONE / CONVERT_TIMEZONE: `{name}` is not a time zone; use an IANA name \
             such as 'Asia/Tokyo' or 'UTC'"
        )
    })
}

/// `x AT TIME ZONE zone` as PostgreSQL reads it: a `timestamptz` becomes the wall-clock
/// time in `zone` (a timestamp without zone); a timestamp without zone is read as wall-clock
/// time in `zone` and becomes that instant (a `timestamptz`, printed in UTC). The statement
/// rewrite turns the operator into `kondate_at_time_zone(x, zone)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct AtTimeZone {
    signature: Signature,
}

impl ScalarUDFImpl for AtTimeZone {
    fn name(&self) -> &str {
        "kondate_at_time_zone"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(match &args[0] {
            DataType::Timestamp(_, Some(_)) => DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Timestamp(_, None)
            | DataType::Date32
            | DataType::Date64
            | DataType::Utf8
            | DataType::Utf8View
            | DataType::LargeUtf8
            | DataType::Null => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            other => {
                return plan_err!("AT TIME ZONE applies to a timestamp, not a {other}");
            }
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let values = args.args[0].clone().into_array(n)?;
        let zoned = matches!(values.data_type(), DataType::Timestamp(_, Some(_)));
        let micros = arrow::compute::cast(
            &values,
            &DataType::Timestamp(
                TimeUnit::Microsecond,
                if zoned { Some("UTC".into()) } else { None },
            ),
        )?;
        let micros = arrow::compute::cast(&micros, &DataType::Int64)?;
        let micros = micros.as_primitive::<arrow::datatypes::Int64Type>();
        let zones = arrow::compute::cast(&args.args[1].clone().into_array(n)?, &DataType::Utf8)?;
        let zones = zones.as_string::<i32>();
        let mut out = TimestampMicrosecondBuilder::with_capacity(n);
        for i in 0..n {
            if micros.is_null(i) || zones.is_null(i) {
                out.append_null();
                continue;
            }
            let zone = zone_named(zones.value(i))?;
            let Some(at) = chrono::DateTime::from_timestamp_micros(micros.value(i)) else {
                out.append_null();
                continue;
            };
            let v = if zoned {
                at.with_timezone(&zone)
                    .naive_local()
                    .and_utc()
                    .timestamp_micros()
            } else {
                match wall_to_instant(zone, &at.naive_utc()) {
                    Some(t) => t.timestamp_micros(),
                    None => return exec_err!("AT TIME ZONE: {at} does not exist in {zone}"),
                }
            };
            out.append_value(v);
        }
        let array = out.finish();
        Ok(ColumnarValue::Array(if zoned {
            Arc::new(array)
        } else {
            Arc::new(array.with_timezone("UTC"))
        }))
    }
}

fn md5_hex(row: &[Option<&str>], _: &mut Cache) -> Result<Option<String>> {
    use md5::Digest;
    use std::fmt::Write;
    Ok(row[0].map(|s| {
        md5::Md5::digest(s.as_bytes())
            .iter()
            .fold(String::with_capacity(32), |mut out, b| {
                let _ = write!(out, "{b:02x}");
                out
            })
    }))
}

/// PostgreSQL 15's keywords that are not unreserved (`pg_get_keywords()` where
/// `catcode <> 'U'`): `quote_ident` quotes them.
const QUOTED_KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

fn quote_ident(row: &[Option<&str>], _: &mut Cache) -> Result<Option<String>> {
    Ok(row[0].map(|s| {
        let plain = s
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if plain && QUOTED_KEYWORDS.binary_search(&s).is_err() {
            s.to_string()
        } else {
            format!("\"{}\"", s.replace('"', "\"\""))
        }
    }))
}

fn quote_literal(row: &[Option<&str>], _: &mut Cache) -> Result<Option<String>> {
    Ok(row[0].map(|s| {
        let body = s.replace('\'', "''");
        if s.contains('\\') {
            format!("E'{}'", body.replace('\\', "\\\\"))
        } else {
            format!("'{body}'")
        }
    }))
}

fn json_extract_path_text(row: &[Option<&str>], _: &mut Cache) -> Result<Option<String>> {
    let Some(text) = row[0] else {
        return Ok(None);
    };
    let mut value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return exec_err!("json_extract_path_text: the text is not JSON ({e})"),
    };
    for key in &row[1..] {
        let Some(key) = key else {
            return Ok(None);
        };
        let next = match &mut value {
            serde_json::Value::Object(m) => m.remove(*key),
            serde_json::Value::Array(a) => match key.parse::<usize>() {
                Ok(i) if i < a.len() => Some(a.swap_remove(i)),
                _ => None,
            },
            _ => None,
        };
        match next {
            Some(v) => value = v,
            None => return Ok(None),
        }
    }
    Ok(match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}

/// `json -> key`: the member's (or element's) text exactly as the document writes it.
fn json_get(row: &[Option<&str>], _: &mut Cache) -> Result<Option<String>> {
    let (Some(doc), Some(key)) = (row[0], row[1]) else {
        return Ok(None);
    };
    // Validate first: `->` on text that is not JSON is an error, as on PostgreSQL.
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(doc) {
        return exec_err!("->: the text is not JSON ({e})");
    }
    Ok(raw::member(doc, key).map(str::to_string))
}

fn parsed(function: &str, doc: &str) -> Result<serde_json::Value> {
    serde_json::from_str(doc).or_else(|e| exec_err!("{function}: the text is not JSON ({e})"))
}

/// `json_typeof(json)`: `object`, `array`, `string`, `number`, `boolean` or `null`.
fn json_typeof(row: &[Option<&str>], _: &mut Cache) -> Result<Option<String>> {
    let Some(doc) = row[0] else {
        return Ok(None);
    };
    Ok(Some(
        match parsed("json_typeof", doc)? {
            serde_json::Value::Object(_) => "object",
            serde_json::Value::Array(_) => "array",
            serde_json::Value::String(_) => "string",
            serde_json::Value::Number(_) => "number",
            serde_json::Value::Bool(_) => "boolean",
            serde_json::Value::Null => "null",
        }
        .to_string(),
    ))
}

/// `json_array_length(json)`: the number of elements (as text; the rewrite casts it); an
/// error for anything but an array, as on PostgreSQL.
fn json_array_length(row: &[Option<&str>], _: &mut Cache) -> Result<Option<String>> {
    let Some(doc) = row[0] else {
        return Ok(None);
    };
    match parsed("json_array_length", doc)? {
        serde_json::Value::Array(a) => Ok(Some(a.len().to_string())),
        _ => exec_err!("json_array_length: cannot get the array length of a non-array"),
    }
}

/// `jsonb -> key`: the value in PostgreSQL's jsonb text form.
fn jsonb_get(row: &[Option<&str>], _: &mut Cache) -> Result<Option<String>> {
    let (Some(doc), Some(key)) = (row[0], row[1]) else {
        return Ok(None);
    };
    let value: serde_json::Value = match serde_json::from_str(doc) {
        Ok(v) => v,
        Err(e) => return exec_err!("->: the text is not JSON ({e})"),
    };
    let member = match &value {
        serde_json::Value::Object(m) => m.get(key),
        serde_json::Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    };
    Ok(member.map(|v| {
        let mut out = String::new();
        jsonb_text(v, &mut out);
        out
    }))
}

/// PostgreSQL's jsonb output: `, ` and `: ` separators, object keys shortest first (then
/// by bytes), as jsonb stores them.
fn jsonb_text(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                jsonb_text(item, out);
            }
            out.push(']');
        }
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push_str(": ");
                jsonb_text(&m[k], out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Finding a member's text in a JSON document as written (serde_json would re-serialise
/// it). The document is valid JSON (checked before).
mod raw {
    fn ws(s: &[u8], mut i: usize) -> usize {
        while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        i
    }

    /// The end of the string starting at `i` (at its opening quote).
    fn string_end(s: &[u8], mut i: usize) -> usize {
        i += 1;
        while i < s.len() {
            match s[i] {
                b'\\' => i += 2,
                b'"' => return i + 1,
                _ => i += 1,
            }
        }
        i
    }

    /// The end of the value starting at `i`.
    fn value_end(s: &[u8], i: usize) -> usize {
        match s.get(i) {
            Some(b'"') => string_end(s, i),
            Some(b'{' | b'[') => {
                let mut depth = 0;
                let mut j = i;
                while j < s.len() {
                    match s[j] {
                        b'"' => {
                            j = string_end(s, j);
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return j + 1;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                j
            }
            _ => {
                let mut j = i;
                while j < s.len()
                    && !matches!(s[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                {
                    j += 1;
                }
                j
            }
        }
    }

    /// The text of member `key` of the object (or element `key` of the array) `doc`.
    pub fn member<'a>(doc: &'a str, key: &str) -> Option<&'a str> {
        let s = doc.as_bytes();
        let mut i = ws(s, 0);
        let object = match s.get(i) {
            Some(b'{') => true,
            Some(b'[') => false,
            _ => return None,
        };
        let index = if object {
            None
        } else {
            Some(key.parse::<usize>().ok()?)
        };
        i += 1;
        let mut n = 0;
        loop {
            i = ws(s, i);
            if matches!(s.get(i), Some(b'}' | b']') | None) {
                return None;
            }
            let mut name = None;
            if object {
                let end = string_end(s, i);
                name = serde_json::from_str::<String>(&doc[i..end]).ok();
                i = ws(s, end) + 1; // past the colon
                i = ws(s, i);
            }
            let end = value_end(s, i);
            let hit = match (&name, index) {
                (Some(k), _) => k == key,
                (None, Some(want)) => n == want,
                _ => false,
            };
            if hit {
                return Some(&doc[i..end]);
            }
            n += 1;
            i = ws(s, end);
            if s.get(i) == Some(&b',') {
                i += 1;
            }
        }
    }
}

fn regexp_substr(row: &[Option<&str>], cache: &mut Cache) -> Result<Option<String>> {
    let (Some(text), Some(pattern)) = (row[0], row[1]) else {
        return Ok(None);
    };
    let number = |i: usize, what: &str| -> Result<Option<usize>> {
        match row.get(i) {
            None => Ok(Some(1)),
            Some(None) => Ok(None),
            Some(Some(v)) => match v.trim().parse::<usize>() {
                Ok(k) if k >= 1 => Ok(Some(k)),
                _ => exec_err!("regexp_substr: the {what} must be a whole number from 1, not {v}"),
            },
        }
    };
    let (Some(position), Some(occurrence)) = (number(2, "position")?, number(3, "occurrence")?)
    else {
        return Ok(None);
    };
    if cache.regex.as_ref().is_none_or(|(p, _)| p != pattern) {
        let re = match regex::Regex::new(pattern) {
            Ok(r) => r,
            Err(e) => return exec_err!("regexp_substr: the pattern `{pattern}` is invalid: {e}"),
        };
        cache.regex = Some((pattern.to_string(), re));
    }
    let re = &cache.regex.as_ref().expect("set above").1;
    let start = text
        .char_indices()
        .nth(position - 1)
        .map_or(text.len(), |(b, _)| b);
    Ok(re
        .find_iter(&text[start..])
        .nth(occurrence - 1)
        .map(|m| m.as_str().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_follows_postgresql() {
        // quote_ident looks keywords up by binary search.
        assert!(QUOTED_KEYWORDS.windows(2).all(|w| w[0] < w[1]));
        let mut c = Cache::default();
        let q = |f: RowFn, s: &str, c: &mut Cache| f(&[Some(s)], c).unwrap().unwrap();
        // Values checked against PostgreSQL 15.
        assert_eq!(q(quote_ident, "ab", &mut c), "ab");
        assert_eq!(q(quote_ident, "_a1", &mut c), "_a1");
        assert_eq!(q(quote_ident, "Ab", &mut c), "\"Ab\"");
        assert_eq!(q(quote_ident, "select", &mut c), "\"select\"");
        assert_eq!(q(quote_ident, "1a", &mut c), "\"1a\"");
        assert_eq!(q(quote_ident, "x\"y", &mut c), "\"x\"\"y\"");
        assert_eq!(q(quote_literal, "a\\b'c", &mut c), "E'a\\\\b''c'");
        assert_eq!(q(md5_hex, "", &mut c), "d41d8cd98f00b204e9800998ecf8427e");
    }

    fn json(args: &[&str]) -> Option<String> {
        let row: Vec<Option<&str>> = args.iter().map(|a| Some(*a)).collect();
        json_extract_path_text(&row, &mut Cache::default()).unwrap()
    }

    #[test]
    fn json_paths_give_postgresql_text() {
        let doc = r#"{"a":"x","n":1.5,"b":{"c":[10,"y",null,{"d":true}]},"z":null}"#;
        assert_eq!(json(&[doc, "a"]).as_deref(), Some("x"));
        assert_eq!(json(&[doc, "n"]).as_deref(), Some("1.5"));
        assert_eq!(json(&[doc, "b", "c", "1"]).as_deref(), Some("y"));
        assert_eq!(json(&[doc, "b", "c", "0"]).as_deref(), Some("10"));
        assert_eq!(
            json(&[doc, "b", "c", "3"]).as_deref(),
            Some(r#"{"d":true}"#)
        );
        assert_eq!(json(&[doc, "b", "c", "2"]), None);
        assert_eq!(json(&[doc, "z"]), None);
        assert_eq!(json(&[doc, "missing"]), None);
        assert_eq!(json(&[doc, "a", "deeper"]), None);
        let e = json_extract_path_text(&[Some("{not json"), Some("a")], &mut Cache::default())
            .unwrap_err();
        assert!(e.to_string().contains("json_extract_path_text"), "{e}");
    }

    #[test]
    fn arrows_give_postgresql_json_and_jsonb_text() {
        let get = |f: RowFn, doc: &str, key: &str| {
            f(&[Some(doc), Some(key)], &mut Cache::default()).unwrap()
        };
        let doc = r#"{ "b": {"z": 1,  "a": [1, 2]}, "tags":["x" , "y"], "s": "t\"q", "n": null }"#;
        assert_eq!(
            get(json_get, doc, "b").as_deref(),
            Some(r#"{"z": 1,  "a": [1, 2]}"#)
        );
        assert_eq!(
            get(json_get, doc, "tags").as_deref(),
            Some(r#"["x" , "y"]"#)
        );
        assert_eq!(get(json_get, doc, "s").as_deref(), Some(r#""t\"q""#));
        assert_eq!(get(json_get, doc, "n").as_deref(), Some("null"));
        assert_eq!(get(json_get, doc, "missing"), None);
        assert_eq!(
            get(json_get, r#"[10, {"a":1}]"#, "1").as_deref(),
            Some(r#"{"a":1}"#)
        );
        assert_eq!(
            get(jsonb_get, doc, "b").as_deref(),
            Some(r#"{"a": [1, 2], "z": 1}"#)
        );
        assert_eq!(
            get(jsonb_get, doc, "tags").as_deref(),
            Some(r#"["x", "y"]"#)
        );
        assert_eq!(
            get(jsonb_get, r#"{"x":{"bb":1,"a":2,"ccc":3}}"#, "x").as_deref(),
            Some(r#"{"a": 2, "bb": 1, "ccc": 3}"#)
        );
        assert!(json_get(&[Some("{no"), Some("a")], &mut Cache::default()).is_err());
    }

    #[test]
    fn regexp_substr_finds_the_occurrence_from_the_position() {
        let run = |args: &[&str]| {
            let row: Vec<Option<&str>> = args.iter().map(|a| Some(*a)).collect();
            regexp_substr(&row, &mut Cache::default()).unwrap()
        };
        assert_eq!(run(&["濃口, 1L 2L", "[0-9]+L"]).as_deref(), Some("1L"));
        assert_eq!(
            run(&["濃口, 1L 2L", "[0-9]+L", "1", "2"]).as_deref(),
            Some("2L")
        );
        assert_eq!(run(&["濃口, 1L 2L", "[0-9]+L", "6"]).as_deref(), Some("2L"));
        assert_eq!(run(&["abc", "[0-9]"]), None);
        assert!(regexp_substr(&[Some("a"), Some("(")], &mut Cache::default()).is_err());
    }
}
