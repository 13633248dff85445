//! Decoding result parts: gzip CSV in Redshift UNLOAD's `escape addquotes` form, cast by the
//! manifest's Redshift type names the way the public `queuery-client` casts them.

use std::io::Read;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

use crate::ClientError;

/// One result column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnInfo {
    pub name: String,
    /// Redshift base type name, e.g. `bigint`, `character varying`.
    pub redshift_type: String,
}

/// How a column's text is cast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Float,
    Text,
    Bool,
    Date,
    Timestamp,
    TimestampTz,
}

impl Kind {
    /// The cast for a Redshift type name; unknown names are kept as text.
    pub fn for_redshift(name: &str) -> Kind {
        match name {
            "smallint" | "integer" | "bigint" => Kind::Int,
            "numeric" | "double precision" | "real" => Kind::Float,
            "boolean" => Kind::Bool,
            "date" => Kind::Date,
            "timestamp without time zone" => Kind::Timestamp,
            "timestamp with time zone" => Kind::TimestampTz,
            _ => Kind::Text,
        }
    }
}

/// A typed value. An empty field is `Null`, as in `queuery-client` (the UNLOAD format cannot
/// tell NULL from the empty string).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
    Date(NaiveDate),
    Timestamp(NaiveDateTime),
    TimestampTz(DateTime<FixedOffset>),
}

/// One result row.
pub type Row = Vec<Value>;

/// Cast one field.
#[cfg(test)]
pub fn cast(text: &str, kind: Kind) -> Result<Value, String> {
    cast_bytes(text.as_bytes(), kind)
}

pub(crate) fn utf8(text: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(text).map_err(|e| format!("not UTF-8: {e}"))
}

/// Cast one field as it was read (escapes already removed).
pub fn cast_bytes(text: &[u8], kind: Kind) -> Result<Value, String> {
    if text.is_empty() {
        return Ok(Value::Null);
    }
    Ok(match kind {
        Kind::Int => Value::Int(parse_int(text)?),
        Kind::Float => Value::Float(parse_float(text)?),
        Kind::Text => Value::Text(utf8(text)?.to_string()),
        Kind::Bool => Value::Bool(parse_bool(text)),
        Kind::Date => Value::Date(parse_date(text)?),
        Kind::Timestamp => Value::Timestamp(parse_timestamp(text)?),
        Kind::TimestampTz => Value::TimestampTz(parse_timestamp_tz(text)?),
    })
}

pub(crate) fn parse_int(text: &[u8]) -> Result<i64, String> {
    // Up to 18 digits cannot overflow an i64: read them directly; anything else (a `+`,
    // 19 digits, a stray byte) goes to the standard parser and its error message.
    let (negative, digits_only) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    if !digits_only.is_empty()
        && digits_only.len() <= 18
        && let Some(v) = digits_only.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    {
        return Ok(if negative { -v } else { v });
    }
    let s = utf8(text)?;
    s.parse()
        .map_err(|e| format!("`{s}` is not an integer: {e}"))
}

pub(crate) fn parse_float(text: &[u8]) -> Result<f64, String> {
    let s = utf8(text)?;
    s.parse().map_err(|e| format!("`{s}` is not a number: {e}"))
}

/// As `queuery-client`: everything but the spellings of false is true.
pub(crate) fn parse_bool(text: &[u8]) -> bool {
    !matches!(
        text,
        b"0" | b"f" | b"F" | b"false" | b"FALSE" | b"off" | b"OFF"
    )
}

/// `n` ASCII digits as a number, or None.
#[inline]
fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// `YYYY-MM-DD` read directly. chrono's `parse_from_str` interprets its format string for
/// every value, which made it the largest cost of decoding a result; anything this does not
/// recognise goes to chrono, so the accepted forms are unchanged.
#[inline]
fn fast_date(b: &[u8]) -> Option<NaiveDate> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    NaiveDate::from_ymd_opt(
        digits(&b[..4])? as i32,
        digits(&b[5..7])?,
        digits(&b[8..10])?,
    )
}

/// `YYYY-MM-DD HH:MM:SS[.fraction]` (or `T` between date and time) read directly; returns
/// the value and whatever follows it (an offset, for `timestamp with time zone`).
#[inline]
fn fast_timestamp(b: &[u8]) -> Option<(NaiveDateTime, &[u8])> {
    if b.len() < 19 || !matches!(b[10], b' ' | b'T') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let date = fast_date(&b[..10])?;
    let (h, m, s) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    let mut rest = &b[19..];
    let mut nanos = 0;
    if let [b'.', tail @ ..] = rest {
        let n = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        nanos = digits(&tail[..n])? * 10u32.pow(9 - n as u32);
        rest = &tail[n..];
    }
    Some((date.and_hms_nano_opt(h, m, s, nanos)?, rest))
}

fn parse_date(text: &[u8]) -> Result<NaiveDate, String> {
    if let Some(d) = fast_date(text) {
        return Ok(d);
    }
    let s = utf8(text)?;
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| format!("`{s}` is not a date: {e}"))
}

fn parse_timestamp(text: &[u8]) -> Result<NaiveDateTime, String> {
    if let Some((t, [])) = fast_timestamp(text) {
        return Ok(t);
    }
    let s = utf8(text)?;
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
        .map_err(|e| format!("`{s}` is not a timestamp: {e}"))
}

fn parse_timestamp_tz(text: &[u8]) -> Result<DateTime<FixedOffset>, String> {
    if let Some((t, offset)) = fast_timestamp(text) {
        // `+HH` (as Redshift and PostgreSQL write it), `+HH:MM`, `+HHMM` or `Z`.
        let seconds = match offset {
            [b'Z'] => Some(0),
            [sign @ (b'+' | b'-'), rest @ ..] => {
                let hm = match rest {
                    [h1, h2] => digits(&[*h1, *h2]).map(|h| h * 3600),
                    [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => digits(&[*h1, *h2])
                        .zip(digits(&[*m1, *m2]))
                        .map(|(h, m)| h * 3600 + m * 60),
                    _ => None,
                };
                hm.map(|v| if *sign == b'-' { -(v as i32) } else { v as i32 })
            }
            _ => None,
        };
        if let Some(tz) = seconds.and_then(FixedOffset::east_opt)
            && let Some(local) = t.and_local_timezone(tz).single()
        {
            return Ok(local);
        }
    }
    let s = utf8(text)?;
    // Redshift and PostgreSQL write `+00`; chrono wants `+00:00`.
    let b = s.as_bytes();
    let short_offset = b.len() > 3
        && matches!(b[b.len() - 3], b'+' | b'-')
        && b[b.len() - 2..].iter().all(u8::is_ascii_digit);
    let fixed = if short_offset {
        format!("{s}:00")
    } else {
        s.to_string()
    };
    DateTime::parse_from_str(&fixed, "%Y-%m-%d %H:%M:%S%.f%:z")
        .or_else(|_| DateTime::parse_from_rfc3339(&fixed))
        .map_err(|e| format!("`{s}` is not a timestamp with time zone: {e}"))
}

/// Receives a part's fields as they are read.
pub trait FieldSink {
    /// Field `col` (0-based) of the current row, escapes removed; empty means NULL.
    fn field(&mut self, col: usize, text: &[u8]) -> Result<(), String>;
    /// The current row is complete. Return false to stop reading.
    fn end_row(&mut self) -> bool;
}

/// Reads records of UNLOAD's `delimiter ',' escape addquotes` text: fields separated by
/// `,`, records by a line feed (or CR LF), each field wrapped in `"` (or not: both are
/// read), and a backslash making the next byte literal. Blank lines are skipped.
///
/// Hand-written rather than the `csv` crate because this one fixed dialect is all a result
/// part can hold, and a scanner built on `memchr` reads it several times faster than the
/// general state machine, which was the largest cost of decoding after gzip (profiled with
/// `bench/query-throughput.sh`).
pub struct UnloadReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
    /// The current record's fields, unescaped and laid end to end.
    text: Vec<u8>,
    /// Where each field of the current record ends in `text`.
    ends: Vec<usize>,
}

/// Outcome of scanning the unread bytes for one record.
enum Scan {
    /// A record, and the bytes it took (terminator included).
    Record(usize),
    /// The bytes end before the record does.
    Incomplete,
}

impl<R: Read> UnloadReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            buf: vec![0; 256 * 1024],
            start: 0,
            end: 0,
            eof: false,
            text: Vec::with_capacity(1024),
            ends: Vec::with_capacity(32),
        }
    }

    /// Field `i` of the current record.
    pub fn field(&self, i: usize) -> &[u8] {
        let from = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[from..self.ends[i]]
    }

    /// Fields in the current record.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Read the next record; false at the end of the input.
    pub fn read_record(&mut self) -> Result<bool, String> {
        loop {
            // Blank lines between records are skipped.
            while self.start < self.end && matches!(self.buf[self.start], b'\n' | b'\r') {
                self.start += 1;
            }
            if self.start == self.end && self.eof {
                return Ok(false);
            }
            if self.start < self.end {
                match self.scan()? {
                    Scan::Record(used) => {
                        self.start += used;
                        return Ok(true);
                    }
                    Scan::Incomplete if self.eof => {
                        return Err("the part ends inside a quoted field".into());
                    }
                    Scan::Incomplete => {}
                }
            }
            self.fill().map_err(|e| format!("reading the part: {e}"))?;
        }
    }

    /// Move unread bytes to the front (growing the buffer when one record fills it) and
    /// read more.
    fn fill(&mut self) -> std::io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn scan(&mut self) -> Result<Scan, String> {
        let data = &self.buf[self.start..self.end];
        self.text.clear();
        self.ends.clear();
        let mut i = 0;
        loop {
            // One field starts at `i`.
            if data.get(i) == Some(&b'"') {
                i += 1;
                loop {
                    let Some(k) = memchr::memchr2(b'"', b'\\', &data[i..]) else {
                        return Ok(Scan::Incomplete);
                    };
                    self.text.extend_from_slice(&data[i..i + k]);
                    i += k;
                    if data[i] == b'"' {
                        i += 1;
                        break;
                    }
                    let Some(&escaped) = data.get(i + 1) else {
                        return Ok(Scan::Incomplete);
                    };
                    self.text.push(escaped);
                    i += 2;
                }
            } else {
                loop {
                    let Some(k) = memchr::memchr3(b',', b'\n', b'\\', &data[i..]) else {
                        if !self.eof {
                            return Ok(Scan::Incomplete);
                        }
                        self.text.extend_from_slice(&data[i..]);
                        i = data.len();
                        break;
                    };
                    self.text.extend_from_slice(&data[i..i + k]);
                    i += k;
                    if data[i] != b'\\' {
                        break;
                    }
                    let Some(&escaped) = data.get(i + 1) else {
                        return Ok(Scan::Incomplete);
                    };
                    self.text.push(escaped);
                    i += 2;
                }
                // A CR before the line feed belongs to the terminator.
                if data.get(i) == Some(&b'\n') && self.text.last() == Some(&b'\r') {
                    self.text.pop();
                }
            }
            self.ends.push(self.text.len());
            match data.get(i) {
                Some(b',') => i += 1,
                Some(b'\n') => return Ok(Scan::Record(i + 1)),
                Some(b'\r') => match data.get(i + 1) {
                    Some(b'\n') => return Ok(Scan::Record(i + 2)),
                    None if !self.eof => return Ok(Scan::Incomplete),
                    _ => return Ok(Scan::Record(i + 1)),
                },
                None if self.eof => return Ok(Scan::Record(i)),
                None => return Ok(Scan::Incomplete),
                Some(&other) => {
                    return Err(format!(
                        "field {} has `{}` after its closing quote; expected `,` or the end of the line",
                        self.ends.len(),
                        char::from(other).escape_default()
                    ));
                }
            }
        }
    }
}

/// Read every row of one gzip CSV part into `sink`; `part` names it in errors, with the row
/// and column. `columns` is the manifest's column count (0 when unknown: any count goes).
/// Stops early (without error) when the sink says so.
pub fn decode_into<R: Read>(
    reader: R,
    columns: usize,
    part: &str,
    sink: &mut impl FieldSink,
) -> Result<(), ClientError> {
    let mut records = UnloadReader::new(flate2::read::MultiGzDecoder::new(reader));
    let mut line = 0u64;
    let err = |row: u64, message: String| ClientError::Decode {
        part: part.to_string(),
        row,
        message,
    };
    loop {
        match records.read_record() {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) => return Err(err(line + 1, e)),
        }
        line += 1;
        if columns != 0 && records.len() != columns {
            return Err(err(
                line,
                format!(
                    "{} fields but the manifest has {columns} columns",
                    records.len()
                ),
            ));
        }
        for i in 0..records.len() {
            sink.field(i, records.field(i))
                .map_err(|message| err(line, format!("column {}: {message}", i + 1)))?;
        }
        if !sink.end_row() {
            return Ok(());
        }
    }
}

/// Builds typed rows.
pub struct RowSink<'k, F: FnMut(Row) -> bool> {
    kinds: &'k [Kind],
    row: Row,
    emit: F,
}

impl<'k, F: FnMut(Row) -> bool> RowSink<'k, F> {
    pub fn new(kinds: &'k [Kind], emit: F) -> Self {
        Self {
            kinds,
            row: Vec::with_capacity(kinds.len()),
            emit,
        }
    }
}

impl<F: FnMut(Row) -> bool> FieldSink for RowSink<'_, F> {
    fn field(&mut self, col: usize, text: &[u8]) -> Result<(), String> {
        let kind = self.kinds.get(col).copied().unwrap_or(Kind::Text);
        self.row.push(cast_bytes(text, kind)?);
        Ok(())
    }

    fn end_row(&mut self) -> bool {
        let row = std::mem::replace(&mut self.row, Vec::with_capacity(self.kinds.len()));
        (self.emit)(row)
    }
}

/// Read every row of one gzip CSV part, calling `row` for each; `part` names it in errors.
/// Stops early (without error) when `row` returns false.
pub fn decode_part<R: Read>(
    reader: R,
    kinds: &[Kind],
    part: &str,
    row: impl FnMut(Row) -> bool,
) -> Result<(), ClientError> {
    decode_into(reader, kinds.len(), part, &mut RowSink::new(kinds, row))
}

// For the Arrow builders (no [`Value`] in between), beside `parse_int`, `parse_float`,
// `parse_bool` and `utf8`.
/// Days since 1970-01-01.
pub(crate) fn date_days(text: &[u8]) -> Result<i32, String> {
    // 719_163 days from 0001-01-01 to 1970-01-01.
    Ok(parse_date(text)?.num_days_from_ce() - 719_163)
}
/// Microseconds since the epoch (UTC for values with an offset).
pub(crate) fn timestamp_micros(text: &[u8], with_tz: bool) -> Result<i64, String> {
    Ok(if with_tz {
        parse_timestamp_tz(text)?.timestamp_micros()
    } else {
        parse_timestamp(text)?.and_utc().timestamp_micros()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(text: &str) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn decodes_unload_escapes_and_casts() {
        let data = gz(
            "\"1\",\"a\\,b \\\"q\\\" \\\\ x\",\"t\",\"2024-01-02 03:04:05.5\",\"\"\n\"2\",\"line\\\nbreak\",\"f\",\"2024-01-02 03:04:05\",\"2.5\"\n",
        );
        let kinds = [
            Kind::Int,
            Kind::Text,
            Kind::Bool,
            Kind::Timestamp,
            Kind::Float,
        ];
        let mut rows = Vec::new();
        decode_part(&data[..], &kinds, "p0", |r| {
            rows.push(r);
            true
        })
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][0], Value::Int(1));
        assert_eq!(rows[0][1], Value::Text("a,b \"q\" \\ x".into()));
        assert_eq!(rows[0][2], Value::Bool(true));
        assert_eq!(rows[0][4], Value::Null);
        assert_eq!(rows[1][1], Value::Text("line\nbreak".into()));
        assert_eq!(rows[1][2], Value::Bool(false));
        assert_eq!(rows[1][4], Value::Float(2.5));
    }

    /// Every record of `text` read through a reader that hands out `step` bytes at a time,
    /// so that records and escapes straddle buffer refills.
    fn records(text: &[u8], step: usize) -> Result<Vec<Vec<String>>, String> {
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = self.1.min(self.0.len()).min(out.len());
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut r = UnloadReader::new(Trickle(text, step));
        r.buf = vec![0; 4]; // tiny, so that the buffer has to grow too
        let mut out = Vec::new();
        while r.read_record()? {
            out.push(
                (0..r.len())
                    .map(|i| String::from_utf8(r.field(i).to_vec()).unwrap())
                    .collect(),
            );
        }
        Ok(out)
    }

    #[test]
    fn reader_handles_quotes_escapes_line_ends_and_refills() {
        let text = "\"1\",\"a\\,b \\\"q\\\" \\\\\",\"\"\r\n\n\"2\",\"line\\\nbreak\",\"x\"\nplain,un\\,quoted,\r\n\"last\",\"no newline\"";
        let want: Vec<Vec<String>> = vec![
            vec!["1".into(), "a,b \"q\" \\".into(), "".into()],
            vec!["2".into(), "line\nbreak".into(), "x".into()],
            vec!["plain".into(), "un,quoted".into(), "".into()],
            vec!["last".into(), "no newline".into()],
        ];
        for step in [1, 2, 3, 7, 1000] {
            assert_eq!(records(text.as_bytes(), step).unwrap(), want, "step {step}");
        }
    }

    #[test]
    fn reader_refuses_broken_records() {
        let err = records(b"\"1\",\"open", 3).unwrap_err();
        assert!(err.contains("ends inside a quoted field"), "{err}");
        let err = records(b"\"1\"x,\"2\"\n", 3).unwrap_err();
        assert!(err.contains("after its closing quote"), "{err}");
    }

    #[test]
    fn bad_value_names_part_row_and_column() {
        let data = gz("\"1\"\n\"x\"\n");
        let err = decode_part(&data[..], &[Kind::Int], "part-7", |_| true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("part-7") && err.contains("row 2") && err.contains("column 1"),
            "{err}"
        );
    }

    #[test]
    fn fast_parsers_agree_with_chrono() {
        let stamps = [
            "2024-01-02 03:04:05",
            "2024-01-02T03:04:05",
            "2024-01-02 03:04:05.5",
            "2024-01-02 03:04:05.123456",
            "2024-01-02 03:04:05.123456789",
            "0001-01-01 00:00:00",
            "9999-12-31 23:59:59.999",
        ];
        for s in stamps {
            let fmt = if s.contains('T') {
                "%Y-%m-%dT%H:%M:%S%.f"
            } else {
                "%Y-%m-%d %H:%M:%S%.f"
            };
            let chrono = NaiveDateTime::parse_from_str(s, fmt).unwrap();
            assert_eq!(
                fast_timestamp(s.as_bytes()).unwrap(),
                (chrono, &b""[..]),
                "{s}"
            );
            assert_eq!(cast(s, Kind::Timestamp), Ok(Value::Timestamp(chrono)));
        }
        for s in [
            "2024-02-30 00:00:00",
            "2024-01-02 24:00:00",
            "2024-01-02 03:04:05.",
        ] {
            assert!(fast_timestamp(s.as_bytes()).is_none(), "{s}");
            assert!(cast(s, Kind::Timestamp).is_err(), "{s}");
        }
        // Forms the fast path leaves to chrono, which accepts them: unpadded fields, more
        // than nine fractional digits (truncated).
        for s in ["2024-1-02 03:04:05", "2024-01-02 03:04:05.1234567890"] {
            assert!(fast_timestamp(s.as_bytes()).is_none(), "{s}");
            let chrono = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap();
            assert_eq!(
                cast(s, Kind::Timestamp),
                Ok(Value::Timestamp(chrono)),
                "{s}"
            );
        }
        for (s, expected) in [
            ("2024-01-02 03:04:05+00", "2024-01-02 03:04:05+00:00"),
            (
                "2024-01-02 03:04:05.25+09:00",
                "2024-01-02 03:04:05.25+09:00",
            ),
            ("2024-01-02 03:04:05-0530", "2024-01-02 03:04:05-05:30"),
            ("2024-01-02T03:04:05Z", "2024-01-02 03:04:05+00:00"),
        ] {
            let want = DateTime::parse_from_str(expected, "%Y-%m-%d %H:%M:%S%.f%:z").unwrap();
            assert_eq!(
                cast(s, Kind::TimestampTz),
                Ok(Value::TimestampTz(want)),
                "{s}"
            );
            assert_eq!(
                cast(s, Kind::TimestampTz).unwrap(),
                Value::TimestampTz(want)
            );
        }
        assert_eq!(
            cast("2024-02-29", Kind::Date),
            Ok(Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()))
        );
        assert!(cast("2023-02-29", Kind::Date).is_err());
        assert_eq!(date_days(b"1970-01-02"), Ok(1));
        assert_eq!(date_days(b"1969-12-31"), Ok(-1));
        assert_eq!(
            timestamp_micros(b"1970-01-01 00:00:01.5", false),
            Ok(1_500_000)
        );
        assert_eq!(timestamp_micros(b"1970-01-01 09:00:00+09", true), Ok(0));
    }

    #[test]
    fn integers_parse_fast_and_slow_alike() {
        for s in [
            "0",
            "-0",
            "7",
            "-42",
            "999999999999999999",
            "-999999999999999999",
        ] {
            assert_eq!(
                parse_int(s.as_bytes()),
                Ok(s.parse::<i64>().unwrap()),
                "{s}"
            );
        }
        for s in ["9223372036854775807", "-9223372036854775808", "+5"] {
            assert_eq!(
                parse_int(s.as_bytes()),
                Ok(s.parse::<i64>().unwrap()),
                "{s}"
            );
        }
        for s in ["9223372036854775808", "-", "1.5", "12a", " 1"] {
            let err = parse_int(s.as_bytes()).unwrap_err();
            assert!(err.contains("is not an integer"), "{s}: {err}");
        }
    }

    #[test]
    fn timestamps_with_short_offsets_parse() {
        assert!(matches!(
            cast("2024-01-02 03:04:05+00", Kind::TimestampTz),
            Ok(Value::TimestampTz(_))
        ));
        assert!(matches!(
            cast("2024-01-02 03:04:05.25+09:00", Kind::TimestampTz),
            Ok(Value::TimestampTz(_))
        ));
    }
}
