//! Decoding result parts: gzip CSV in Redshift UNLOAD's `escape addquotes` form, cast by the
//! manifest's Redshift type names the way the public `queuery-client` casts them.

use std::io::Read;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
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
pub fn cast(text: &str, kind: Kind) -> Result<Value, String> {
    if text.is_empty() {
        return Ok(Value::Null);
    }
    Ok(match kind {
        Kind::Int => Value::Int(
            text.parse()
                .map_err(|e| format!("`{text}` is not an integer: {e}"))?,
        ),
        Kind::Float => Value::Float(
            text.parse()
                .map_err(|e| format!("`{text}` is not a number: {e}"))?,
        ),
        Kind::Text => Value::Text(text.to_string()),
        Kind::Bool => Value::Bool(!matches!(
            text,
            "0" | "f" | "F" | "false" | "FALSE" | "off" | "OFF"
        )),
        Kind::Date => Value::Date(
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|e| format!("`{text}` is not a date: {e}"))?,
        ),
        Kind::Timestamp => Value::Timestamp(
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f"))
                .map_err(|e| format!("`{text}` is not a timestamp: {e}"))?,
        ),
        Kind::TimestampTz => {
            // Redshift and PostgreSQL write `+00`; chrono wants `+00:00`.
            let b = text.as_bytes();
            let short_offset = b.len() > 3
                && matches!(b[b.len() - 3], b'+' | b'-')
                && b[b.len() - 2..].iter().all(u8::is_ascii_digit);
            let fixed = if short_offset {
                format!("{text}:00")
            } else {
                text.to_string()
            };
            Value::TimestampTz(
                DateTime::parse_from_str(&fixed, "%Y-%m-%d %H:%M:%S%.f%:z")
                    .or_else(|_| DateTime::parse_from_rfc3339(&fixed))
                    .map_err(|e| format!("`{text}` is not a timestamp with time zone: {e}"))?,
            )
        }
    })
}

/// Read every row of one gzip CSV part, calling `row` for each; `part` names it in errors.
/// Stops early (without error) when `row` returns false.
pub fn decode_part<R: Read>(
    reader: R,
    kinds: &[Kind],
    part: &str,
    mut row: impl FnMut(Row) -> bool,
) -> Result<(), ClientError> {
    let gz = flate2::read::MultiGzDecoder::new(reader);
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .escape(Some(b'\\'))
        .double_quote(false)
        .flexible(true)
        .from_reader(gz);
    let mut record = csv::StringRecord::new();
    let mut line = 0u64;
    loop {
        match csv.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) => {
                return Err(ClientError::Decode {
                    part: part.to_string(),
                    row: line + 1,
                    message: e.to_string(),
                });
            }
        }
        line += 1;
        let mut out = Vec::with_capacity(record.len());
        for (i, field) in record.iter().enumerate() {
            let kind = kinds.get(i).copied().unwrap_or(Kind::Text);
            out.push(cast(field, kind).map_err(|message| ClientError::Decode {
                part: part.to_string(),
                row: line,
                message: format!("column {}: {message}", i + 1),
            })?);
        }
        if !kinds.is_empty() && out.len() != kinds.len() {
            return Err(ClientError::Decode {
                part: part.to_string(),
                row: line,
                message: format!(
                    "{} fields but the manifest has {} columns",
                    out.len(),
                    kinds.len()
                ),
            });
        }
        if !row(out) {
            return Ok(());
        }
    }
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
