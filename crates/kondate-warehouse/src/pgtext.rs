//! PostgreSQL's COPY text format, read in one pass: re-encoded as UNLOAD CSV rows, or decoded
//! into Arrow record batches for Parquet results.
//!
//! Text format: one row per line, fields separated by tab, `\N` for NULL, backslash escapes
//! for `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, `\v` and octal/hex byte escapes. Hand-written
//! because no crate reads this format from a byte stream; the tests check it against a
//! straightforward reference decoder.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder, Int16Builder,
    Int32Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime};

use crate::WarehouseError;
use crate::unload;

/// Convert complete lines of PostgreSQL COPY text format into UNLOAD CSV rows; returns the
/// number of rows. One pass over each line: runs of ordinary bytes are copied whole, as
/// [`unload::push_field`] does.
pub fn pg_text_to_unload(lines: &[u8], out: &mut Vec<u8>) -> u64 {
    let mut rows = 0;
    out.reserve(lines.len() + lines.len() / 8);
    for line in copy_lines(lines) {
        rows += 1;
        convert_line(line, out);
        out.push(b'\n');
    }
    rows
}

/// The lines of COPY output, each ended by `\n` (which is not part of the line). An empty
/// line is a row too: one empty text column. Bytes after the last `\n`, if any, are a last
/// line.
fn copy_lines(lines: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = lines;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(p) => (&rest[..p], &rest[p + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        Some(line)
    })
}

/// What a byte of a COPY text line means.
const PLAIN: u8 = 0;
const TAB: u8 = 1;
const BACKSLASH: u8 = 2;
/// Needs a backslash in UNLOAD's format ([`unload::ESCAPED`]).
const QUOTE: u8 = 3;
const CLASS: [u8; 256] = {
    let mut t = [PLAIN; 256];
    let mut b = 0;
    while b < 256 {
        if unload::ESCAPED[b] {
            t[b] = QUOTE;
        }
        b += 1;
    }
    t[b'\t' as usize] = TAB;
    t[b'\\' as usize] = BACKSLASH;
    t
};

/// Push one unescaped byte in UNLOAD's form.
#[inline]
fn push_byte(out: &mut Vec<u8>, b: u8) {
    if unload::ESCAPED[b as usize] {
        out.push(b'\\');
    }
    out.push(b);
}

fn convert_line(line: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    loop {
        // A field starts at `i`.
        let rest = &line[i..];
        if rest.starts_with(b"\\N") && matches!(rest.get(2), None | Some(b'\t')) {
            out.extend_from_slice(b"\"\"");
            i += 2;
        } else {
            out.push(b'"');
            let mut run = i;
            while i < line.len() {
                match CLASS[line[i] as usize] {
                    PLAIN => i += 1,
                    TAB => break,
                    QUOTE => {
                        out.extend_from_slice(&line[run..i]);
                        out.push(b'\\');
                        run = i;
                        i += 1;
                    }
                    _ => {
                        out.extend_from_slice(&line[run..i]);
                        let (byte, next) = unescape(line, i + 1);
                        push_byte(out, byte);
                        i = next;
                        run = i;
                    }
                }
            }
            out.extend_from_slice(&line[run..i]);
            out.push(b'"');
        }
        if i >= line.len() {
            return;
        }
        out.push(b',');
        i += 1; // the tab
    }
}

/// Decode the escape whose backslash ends just before `i`: the byte it stands for and where
/// the line goes on.
fn unescape(line: &[u8], i: usize) -> (u8, usize) {
    let Some(&c) = line.get(i) else {
        return (b'\\', i);
    };
    let radix_digits = |radix: u32, from: usize, max: usize| {
        let mut v = 0u32;
        let mut n = 0;
        while n < max {
            match line
                .get(from + n)
                .and_then(|d| (*d as char).to_digit(radix))
            {
                Some(d) => v = v * radix + d,
                None => break,
            }
            n += 1;
        }
        (v as u8, from + n)
    };
    match c {
        b'b' => (0x08, i + 1),
        b'f' => (0x0c, i + 1),
        b'n' => (b'\n', i + 1),
        b'r' => (b'\r', i + 1),
        b't' => (b'\t', i + 1),
        b'v' => (0x0b, i + 1),
        b'0'..=b'7' => radix_digits(8, i, 3),
        b'x' => radix_digits(16, i + 1, 2),
        other => (other, i + 1),
    }
}

/// Split one line into its fields, unescaped: `f(column, value)` is called for each, with
/// `None` for NULL. Returns the number of fields.
fn for_each_field<E>(
    line: &[u8],
    scratch: &mut Vec<u8>,
    mut f: impl FnMut(usize, Option<&[u8]>) -> Result<(), E>,
) -> Result<usize, E> {
    let mut col = 0;
    let mut i = 0;
    loop {
        let rest = &line[i..];
        let end = if rest.starts_with(b"\\N") && matches!(rest.get(2), None | Some(b'\t')) {
            f(col, None)?;
            i + 2
        } else {
            let stop = memchr::memchr2(b'\t', b'\\', rest).map_or(line.len(), |p| i + p);
            if stop == line.len() || line[stop] == b'\t' {
                f(col, Some(&line[i..stop]))?;
                stop
            } else {
                scratch.clear();
                scratch.extend_from_slice(&line[i..stop]);
                let mut j = stop;
                while j < line.len() && line[j] != b'\t' {
                    if line[j] == b'\\' {
                        let (byte, next) = unescape(line, j + 1);
                        scratch.push(byte);
                        j = next;
                    } else {
                        scratch.push(line[j]);
                        j += 1;
                    }
                }
                f(col, Some(scratch))?;
                j
            }
        };
        col += 1;
        if end >= line.len() {
            return Ok(col);
        }
        i = end + 1;
    }
}

/// An Arrow builder for one result column.
enum ColumnBuilder {
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    TimestampTz(TimestampMicrosecondBuilder),
    Text(StringBuilder),
}

fn parse<T: std::str::FromStr>(v: &[u8]) -> Option<T> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

impl ColumnBuilder {
    fn new(t: &DataType) -> Self {
        match t {
            DataType::Int16 => Self::Int16(Int16Builder::new()),
            DataType::Int32 => Self::Int32(Int32Builder::new()),
            DataType::Int64 => Self::Int64(Int64Builder::new()),
            DataType::Float32 => Self::Float32(Float32Builder::new()),
            DataType::Float64 => Self::Float64(Float64Builder::new()),
            DataType::Boolean => Self::Boolean(BooleanBuilder::new()),
            DataType::Date32 => Self::Date(Date32Builder::new()),
            DataType::Timestamp(TimeUnit::Microsecond, None) => {
                Self::Timestamp(TimestampMicrosecondBuilder::new())
            }
            DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) => {
                Self::TimestampTz(TimestampMicrosecondBuilder::new().with_timezone(tz.clone()))
            }
            _ => Self::Text(StringBuilder::new()),
        }
    }

    /// Append one value as PostgreSQL printed it; false when it does not fit the column.
    fn append(&mut self, v: Option<&[u8]>) -> bool {
        let Some(v) = v else {
            match self {
                Self::Int16(b) => b.append_null(),
                Self::Int32(b) => b.append_null(),
                Self::Int64(b) => b.append_null(),
                Self::Float32(b) => b.append_null(),
                Self::Float64(b) => b.append_null(),
                Self::Boolean(b) => b.append_null(),
                Self::Date(b) => b.append_null(),
                Self::Timestamp(b) | Self::TimestampTz(b) => b.append_null(),
                Self::Text(b) => b.append_null(),
            }
            return true;
        };
        fn put<T>(value: Option<T>, mut append: impl FnMut(T)) -> bool {
            value.map(&mut append).is_some()
        }
        match self {
            Self::Int16(b) => put(parse(v), |x| b.append_value(x)),
            Self::Int32(b) => put(parse(v), |x| b.append_value(x)),
            Self::Int64(b) => put(parse(v), |x| b.append_value(x)),
            // Rust's float parser reads PostgreSQL's `Infinity`, `-Infinity` and `NaN`.
            Self::Float32(b) => put(parse(v), |x| b.append_value(x)),
            Self::Float64(b) => put(parse(v), |x| b.append_value(x)),
            Self::Boolean(b) => put(
                match v {
                    b"t" => Some(true),
                    b"f" => Some(false),
                    _ => None,
                },
                |x| b.append_value(x),
            ),
            Self::Date(b) => put(
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()),
                |d| b.append_value(d.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE),
            ),
            Self::Timestamp(b) => put(
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok()),
                |t| b.append_value(t.and_utc().timestamp_micros()),
            ),
            Self::TimestampTz(b) => put(
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z").ok()),
                |t| b.append_value(t.timestamp_micros()),
            ),
            Self::Text(b) => put(std::str::from_utf8(v).ok(), |s| b.append_value(s)),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Int16(b) => Arc::new(b.finish()),
            Self::Int32(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Float32(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Boolean(b) => Arc::new(b.finish()),
            Self::Date(b) => Arc::new(b.finish()),
            Self::Timestamp(b) | Self::TimestampTz(b) => Arc::new(b.finish()),
            Self::Text(b) => Arc::new(b.finish()),
        }
    }
}

/// Decodes lines of COPY text output into record batches of a fixed schema (see
/// [`crate::types::arrow_type_for_postgres`]).
pub struct CopyTextDecoder {
    schema: SchemaRef,
    /// PostgreSQL's name of each column's type, for error messages.
    pg_types: Vec<String>,
    columns: Vec<ColumnBuilder>,
    scratch: Vec<u8>,
}

impl CopyTextDecoder {
    /// A decoder for rows of `schema`, whose columns PostgreSQL types as `pg_types`.
    pub fn new(schema: SchemaRef, pg_types: Vec<String>) -> Self {
        let columns = schema
            .fields()
            .iter()
            .map(|f| ColumnBuilder::new(f.data_type()))
            .collect();
        Self {
            schema,
            pg_types,
            columns,
            scratch: Vec::new(),
        }
    }

    /// Decode complete lines into one batch.
    pub fn decode(&mut self, lines: &[u8]) -> Result<RecordBatch, WarehouseError> {
        let width = self.columns.len();
        for line in copy_lines(lines) {
            let Self {
                columns,
                scratch,
                schema,
                pg_types,
            } = self;
            let fields = for_each_field(line, scratch, |col, value| {
                let Some(builder) = columns.get_mut(col) else {
                    return Err(None);
                };
                if builder.append(value) {
                    Ok(())
                } else {
                    Err(Some((col, value.unwrap_or_default().to_vec())))
                }
            });
            match fields {
                Ok(n) if n == width => {}
                Ok(_) | Err(None) => {
                    return Err(WarehouseError::Engine(format!(
                        "a row of PostgreSQL's COPY output does not have the {width} columns \
                         the statement described: {}",
                        snippet(line)
                    )));
                }
                Err(Some((col, value))) => {
                    let field = &schema.fields()[col];
                    return Err(WarehouseError::Engine(format!(
                        "column `{}` ({}) holds `{}`, which the Parquet column type {} cannot \
                         hold; cast it in the SELECT (for example `{}::text`) or use format=csv",
                        field.name(),
                        pg_types[col].to_lowercase(),
                        snippet(&value),
                        field.data_type(),
                        field.name()
                    )));
                }
            }
        }
        let arrays = self.columns.iter_mut().map(ColumnBuilder::finish).collect();
        RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| WarehouseError::Engine(format!("building a Parquet batch: {e}")))
    }
}

/// At most 80 characters of `bytes`, for an error message.
fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut s: String = text.chars().take(80).collect();
    if text.chars().count() > 80 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unload::push_field;

    #[test]
    fn copy_text_rows_become_unload_csv() {
        let input = b"1\tplain\t\\N\tt\n2\ttab\\there\tline\\nbreak\tf\n3\tq\"uote,comma\tback\\\\slash\t\\101\n";
        let mut out = Vec::new();
        assert_eq!(pg_text_to_unload(input, &mut out), 3);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        assert_eq!(lines[0], "\"1\",\"plain\",\"\",\"t\"\n");
        assert_eq!(lines[1], "\"2\",\"tab\there\",\"line\\\n");
        assert_eq!(lines[2], "break\",\"f\"\n");
        assert_eq!(
            lines[3],
            "\"3\",\"q\\\"uote\\,comma\",\"back\\\\slash\",\"A\"\n"
        );
    }
    /// The obvious, slow decoding: split into fields at tabs that no backslash escapes
    /// (as PostgreSQL's COPY FROM reads them), then decode each field.
    fn reference_fields(line: &[u8]) -> Vec<Option<Vec<u8>>> {
        let mut fields: Vec<&[u8]> = Vec::new();
        let (mut start, mut j) = (0, 0);
        while j < line.len() {
            match line[j] {
                b'\\' => j += 2,
                b'\t' => {
                    fields.push(&line[start..j]);
                    j += 1;
                    start = j;
                }
                _ => j += 1,
            }
        }
        fields.push(&line[start.min(line.len())..]);
        let mut out = Vec::new();
        for raw in fields {
            if raw == b"\\N" {
                out.push(None);
                continue;
            }
            let mut field = Vec::new();
            let mut j = 0;
            while j < raw.len() {
                if raw[j] != b'\\' {
                    field.push(raw[j]);
                    j += 1;
                    continue;
                }
                j += 1;
                let digits = |radix: u32, from: usize, max: usize| {
                    let n = raw[from.min(raw.len())..]
                        .iter()
                        .take(max)
                        .take_while(|d| (**d as char).is_digit(radix))
                        .count();
                    let text = std::str::from_utf8(&raw[from..from + n]).unwrap();
                    (
                        u32::from_str_radix(text, radix).unwrap_or(0) as u8,
                        from + n,
                    )
                };
                let (b, next) = match raw.get(j) {
                    None => (b'\\', j),
                    Some(b'n') => (b'\n', j + 1),
                    Some(b't') => (b'\t', j + 1),
                    Some(b'r') => (b'\r', j + 1),
                    Some(b'b') => (8, j + 1),
                    Some(b'f') => (12, j + 1),
                    Some(b'v') => (11, j + 1),
                    Some(b'0'..=b'7') => digits(8, j, 3),
                    Some(b'x') => digits(16, j + 1, 2),
                    Some(other) => (*other, j + 1),
                };
                field.push(b);
                j = next;
            }
            out.push(Some(field));
        }
        out
    }

    /// The obvious conversion to UNLOAD CSV: decode, then quote each field.
    fn reference(line: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, field) in reference_fields(line).iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_field(&mut out, field.as_deref());
        }
        out.push(b'\n');
        out
    }

    #[test]
    fn an_empty_line_is_a_row_with_one_empty_column() {
        // `COPY (SELECT '') TO STDOUT` prints an empty line per row.
        let mut out = Vec::new();
        assert_eq!(pg_text_to_unload(b"\n\nx\n", &mut out), 3);
        assert_eq!(out, b"\"\"\n\"\"\n\"x\"\n");
    }

    fn decoder(types: &[(&str, &str)]) -> CopyTextDecoder {
        let schema = arrow::datatypes::Schema::new(
            types
                .iter()
                .map(|(name, t)| {
                    arrow::datatypes::Field::new(
                        *name,
                        crate::types::arrow_type_for_postgres(t),
                        true,
                    )
                })
                .collect::<Vec<_>>(),
        );
        CopyTextDecoder::new(
            Arc::new(schema),
            types.iter().map(|(_, t)| t.to_string()).collect(),
        )
    }

    #[test]
    fn copy_text_decodes_into_typed_arrow_columns() {
        use arrow::array::{Array, AsArray};
        use arrow::datatypes::{
            Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
            TimestampMicrosecondType,
        };
        let mut d = decoder(&[
            ("a", "INT2"),
            ("b", "INT4"),
            ("c", "INT8"),
            ("d", "FLOAT4"),
            ("e", "FLOAT8"),
            ("f", "BOOL"),
            ("g", "DATE"),
            ("h", "TIMESTAMP"),
            ("i", "TIMESTAMPTZ"),
            ("j", "TEXT"),
            ("k", "NUMERIC"),
        ]);
        let lines = "1\t2\t3\t1.5\t-Infinity\tt\t1970-01-02\t1970-01-01 00:00:01.25\t\
                     1970-01-01 09:00:00+09\ttab\\there \\\\ \\101\t12.50\n\
                     \\N\t\\N\t\\N\t\\N\tNaN\tf\t\\N\t\\N\t\\N\t\t\\N\n";
        let batch = d.decode(lines.as_bytes()).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(0).as_primitive::<Int16Type>().value(0), 1);
        assert_eq!(batch.column(1).as_primitive::<Int32Type>().value(0), 2);
        assert_eq!(batch.column(2).as_primitive::<Int64Type>().value(0), 3);
        assert_eq!(batch.column(3).as_primitive::<Float32Type>().value(0), 1.5);
        let e = batch.column(4).as_primitive::<Float64Type>();
        assert_eq!(e.value(0), f64::NEG_INFINITY);
        assert!(e.value(1).is_nan());
        let f = batch.column(5).as_boolean();
        assert!(f.value(0) && !f.value(1));
        assert_eq!(batch.column(6).as_primitive::<Date32Type>().value(0), 1);
        let ts = batch.column(7).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_250_000);
        // 09:00 at +09 is midnight UTC.
        let tz = batch.column(8).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(tz.value(0), 0);
        assert_eq!(tz.timezone(), Some("UTC"));
        let j = batch.column(9).as_string::<i32>();
        assert_eq!(j.value(0), "tab\there \\ A");
        // An empty string is not NULL.
        assert!(j.is_valid(1));
        assert_eq!(j.value(1), "");
        assert_eq!(batch.column(10).as_string::<i32>().value(0), "12.50");
        for col in [0, 1, 2, 3, 6, 7, 8, 10] {
            assert!(batch.column(col).is_null(1), "column {col}");
        }
        // The decoder starts a fresh batch each time.
        assert_eq!(
            d.decode(b"\\N\t\\N\t\\N\t\\N\t0\tt\t\\N\t\\N\t\\N\tx\t1\n")
                .unwrap()
                .num_rows(),
            1
        );
    }

    #[test]
    fn a_value_parquet_cannot_hold_names_the_column_and_the_cure() {
        let mut d = decoder(&[("id", "INT8"), ("day", "DATE")]);
        let err = d.decode(b"1\tinfinity\n").unwrap_err().to_string();
        assert!(
            err.contains("column `day` (date) holds `infinity`"),
            "{err}"
        );
        assert!(err.contains("day::text"), "{err}");
        let err = d.decode(b"1\t2024-01-01\textra\n").unwrap_err().to_string();
        assert!(err.contains("2 columns"), "{err}");
    }

    #[test]
    fn one_pass_decoding_matches_the_obvious_one() {
        use rand::{Rng, SeedableRng};
        let alphabet = b"ab,\"\\\t\rNnrtx017fF9 ";
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let len = rng.random_range(1..24);
            let line: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let mut out = Vec::new();
            pg_text_to_unload(&line, &mut out);
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&reference(&line)),
                "{:?}",
                String::from_utf8_lossy(&line)
            );
            let mut fields = Vec::new();
            for_each_field(&line, &mut Vec::new(), |_, v| {
                fields.push(v.map(<[u8]>::to_vec));
                Ok::<(), ()>(())
            })
            .unwrap();
            assert_eq!(fields, reference_fields(&line), "{line:?}");
        }
    }
}
