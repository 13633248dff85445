//! Rows for a result table from CSV: a header naming every declared column (in any order),
//! each cell typed by its column. Every problem names the line and the column; a duplicate
//! key names both lines. Nothing is written until every row is good.

use std::collections::HashMap;
use std::io::Read;

use kondate_db::Value;

use crate::ResultsError;
use crate::declaration::{ResultTable, ResultType};

fn cell(ty: ResultType, raw: &str) -> Result<Value, String> {
    let s = raw.trim();
    match ty {
        ResultType::String => Ok(Value::Text(raw.to_string())),
        ResultType::Integer => s
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| format!("`{s}` is not an integer")),
        ResultType::Float => match s.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::Float(f)),
            _ => Err(format!("`{s}` is not a finite number")),
        },
        ResultType::Boolean => match s.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Value::Bool(true)),
            "false" | "0" => Ok(Value::Bool(false)),
            _ => Err(format!("`{s}` is not a boolean (true/false, 1/0)")),
        },
        ResultType::Date => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(|d| Value::Text(d.format("%Y-%m-%d").to_string()))
            .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD)")),
    }
}

/// The NULL of an empty cell of column `c`, or why it may not be empty.
fn empty(decl: &ResultTable, c: &crate::declaration::ResultColumn) -> Result<Value, String> {
    if c.nullable {
        return Ok(Value::NullOf(c.ty.column_type(false)));
    }
    let why = if decl.key.contains(&c.name) {
        "it is part of the key"
    } else {
        "the column is declared nullable = false"
    };
    Err(format!("column `{}`: empty, but {why}", c.name))
}

/// Refuses a key seen before in the same write — in the same file or an earlier one —
/// naming where it was first. This is the one thing a write keeps for every row, so it is
/// kept small: a 128-bit digest of the key (SHA-256, truncated; two different keys sharing
/// one is beyond any real chance) and where it was seen, packed in 8 bytes.
#[derive(Default)]
struct SeenKeys {
    /// Key digest → the number of the file it was first seen in (the top 16 bits) and its
    /// line or row there (the low 48).
    seen: HashMap<[u8; 16], u64>,
    /// The files of the write so far: name, and what positions count ("line" for CSV and
    /// JSON lines, "row" for Parquet). The same file may be given twice.
    files: Vec<(String, &'static str)>,
}

const POSITION_BITS: u32 = 48;

impl SeenKeys {
    /// The next file of the write begins.
    fn next_file(&mut self, source: &str, unit: &'static str) -> Result<(), ResultsError> {
        if self.files.len() >= 1 << (64 - POSITION_BITS) {
            return Err(ResultsError::Input(format!(
                "{source}: a write reads at most {} files; merge some of them",
                1u64 << (64 - POSITION_BITS)
            )));
        }
        self.files.push((source.to_string(), unit));
        Ok(())
    }

    /// The digest of `row`'s key: each value with its kind and length, so that no two
    /// different keys are the same bytes.
    fn digest(decl: &ResultTable, row: &[Value]) -> [u8; 16] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for &k in &decl.key_indices() {
            match &row[k] {
                Value::Int(i) => {
                    h.update([1]);
                    h.update(i.to_le_bytes());
                }
                Value::Text(t) => {
                    h.update([2]);
                    h.update((t.len() as u64).to_le_bytes());
                    h.update(t.as_bytes());
                }
                Value::Bool(b) => h.update([3, u8::from(*b)]),
                Value::Float(f) => {
                    h.update([4]);
                    h.update(f.to_bits().to_le_bytes());
                }
                Value::Null | Value::NullOf(_) => h.update([5]),
            }
        }
        let mut out = [0u8; 16];
        out.copy_from_slice(&h.finalize()[..16]);
        out
    }

    /// Record `row`'s key, seen at `at` (line or row) of the current file.
    fn check(&mut self, decl: &ResultTable, row: &[Value], at: u64) -> Result<(), String> {
        let file = self.files.len().saturating_sub(1);
        let here = ((file as u64) << POSITION_BITS) | (at & ((1 << POSITION_BITS) - 1));
        let Some(first) = self.seen.insert(Self::digest(decl, row), here) else {
            return Ok(());
        };
        let (first_file, first_at) = (
            (first >> POSITION_BITS) as usize,
            first & ((1 << POSITION_BITS) - 1),
        );
        let shown: Vec<String> = decl
            .key_indices()
            .iter()
            .map(|&k| format!("{}={}", decl.columns[k].name, show(&row[k])))
            .collect();
        let shown = shown.join(", ");
        let unit = self.files.get(file).map_or("line", |f| f.1);
        Err(if first_file == file {
            format!(
                "{unit} {at} repeats the key ({shown}) of {unit} {first_at}; a write holds each \
                 key once"
            )
        } else {
            let (first_source, first_unit) = &self.files[first_file];
            format!(
                "{unit} {at}: the key ({shown}) also appears in an earlier file \
                 ({first_source}, {first_unit} {first_at}); a write holds each key once"
            )
        })
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Text(t) => t.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Float(f) => f.to_string(),
        _ => String::new(),
    }
}

/// Read every row of CSV `input` (named `source` in messages), values in the
/// declaration's column order. An empty cell is NULL, refused in key and non-nullable
/// columns.
pub fn read_csv(
    decl: &ResultTable,
    input: impl Read,
    source: &str,
) -> Result<Vec<Vec<Value>>, ResultsError> {
    collect(|emit| read_csv_into(decl, input, source, &mut SeenKeys::default(), emit))
}

/// Where a reader hands each good row.
type Emit<'a> = dyn FnMut(Vec<Value>) -> Result<(), ResultsError> + 'a;

/// Every row a reader emits, in a vector.
fn collect(
    read: impl FnOnce(&mut Emit<'_>) -> Result<(), ResultsError>,
) -> Result<Vec<Vec<Value>>, ResultsError> {
    let mut rows = Vec::new();
    read(&mut |r| {
        rows.push(r);
        Ok(())
    })?;
    Ok(rows)
}

fn read_csv_into(
    decl: &ResultTable,
    input: impl Read,
    source: &str,
    seen: &mut SeenKeys,
    emit: &mut Emit<'_>,
) -> Result<(), ResultsError> {
    seen.next_file(source, "line")?;
    let bad = |m: String| ResultsError::Input(format!("{source}: {m}"));
    let mut r = csv::ReaderBuilder::new().flexible(false).from_reader(input);
    let header = r
        .headers()
        .map_err(|e| bad(format!("cannot read the header: {e}")))?
        .clone();
    let mut index = Vec::with_capacity(decl.columns.len());
    for c in &decl.columns {
        let i = header
            .iter()
            .position(|h| h.trim() == c.name)
            .ok_or_else(|| {
                bad(format!(
                    "the header has no column `{}` (declared in {}); columns: {}",
                    c.name,
                    decl.path.display(),
                    header.iter().collect::<Vec<_>>().join(", ")
                ))
            })?;
        index.push(i);
    }
    if let Some(extra) = header
        .iter()
        .find(|h| !decl.columns.iter().any(|c| c.name == h.trim()))
    {
        return Err(bad(format!(
            "column `{extra}` is not declared in {}; declare it or drop it from the file",
            decl.path.display()
        )));
    }
    for rec in r.records() {
        let rec = rec.map_err(|e| bad(e.to_string()))?;
        let line = rec.position().map_or(0, |p| p.line());
        let at = |m: String| bad(format!("line {line}, {m}"));
        let mut row = Vec::with_capacity(decl.columns.len());
        for (c, &i) in decl.columns.iter().zip(&index) {
            let raw = rec.get(i).unwrap_or("");
            let blank = if c.ty == ResultType::String {
                raw.is_empty()
            } else {
                raw.trim().is_empty()
            };
            let v = if blank {
                empty(decl, c).map_err(at)?
            } else {
                cell(c.ty, raw).map_err(|m| at(format!("column `{}`: {m}", c.name)))?
            };
            row.push(v);
        }
        seen.check(decl, &row, line).map_err(bad)?;
        emit(row)?;
    }
    Ok(())
}

/// A JSON value as a cell of a column of type `ty`.
fn json_cell(ty: ResultType, v: &serde_json::Value) -> Result<Value, String> {
    use serde_json::Value as J;
    match (ty, v) {
        (ResultType::Integer, J::Number(n)) => n
            .as_i64()
            .map(Value::Int)
            .ok_or_else(|| format!("{n} is not an integer")),
        (ResultType::Float, J::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Value::Float)
            .ok_or_else(|| format!("{n} is not a finite number")),
        (ResultType::Boolean, J::Bool(b)) => Ok(Value::Bool(*b)),
        (ResultType::String, J::String(s)) => Ok(Value::Text(s.clone())),
        (ResultType::Date, J::String(s)) => cell(ResultType::Date, s),
        (ty, other) => Err(format!("{other} is not a {}", ty.as_str())),
    }
}

/// Read JSON lines (one object per line, keys = declared columns; a missing key or
/// `null` is NULL), values in the declaration's column order.
pub fn read_jsonl(
    decl: &ResultTable,
    input: impl std::io::BufRead,
    source: &str,
) -> Result<Vec<Vec<Value>>, ResultsError> {
    collect(|emit| read_jsonl_into(decl, input, source, &mut SeenKeys::default(), emit))
}

fn read_jsonl_into(
    decl: &ResultTable,
    input: impl std::io::BufRead,
    source: &str,
    seen: &mut SeenKeys,
    emit: &mut Emit<'_>,
) -> Result<(), ResultsError> {
    seen.next_file(source, "line")?;
    let bad = |m: String| ResultsError::Input(format!("{source}: {m}"));
    for (n, text) in input.lines().enumerate() {
        let line = n as u64 + 1;
        let text = text.map_err(|e| bad(format!("line {line}: {e}")))?;
        if text.trim().is_empty() {
            continue;
        }
        let at = |m: String| bad(format!("line {line}, {m}"));
        let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
            .map_err(|e| bad(format!("line {line}: not a JSON object: {e}")))?;
        if let Some(extra) = obj
            .keys()
            .find(|k| !decl.columns.iter().any(|c| &c.name == *k))
        {
            return Err(at(format!(
                "key `{extra}` is not a declared column of {}",
                decl.path.display()
            )));
        }
        let mut row = Vec::with_capacity(decl.columns.len());
        for c in &decl.columns {
            let v = match obj.get(&c.name) {
                None | Some(serde_json::Value::Null) => empty(decl, c).map_err(at)?,
                Some(v) => {
                    json_cell(c.ty, v).map_err(|m| at(format!("column `{}`: {m}", c.name)))?
                }
            };
            row.push(v);
        }
        seen.check(decl, &row, line).map_err(bad)?;
        emit(row)?;
    }
    Ok(())
}

/// Read the rows of one write from `paths` — CSV (`.csv`), JSON lines (`.jsonl`,
/// `.ndjson`, `.json`) or Parquet (`.parquet`), by extension — in order. A key may appear
/// once in the whole write.
pub fn read_files(
    decl: &ResultTable,
    paths: &[std::path::PathBuf],
) -> Result<Vec<Vec<Value>>, ResultsError> {
    let mut seen = SeenKeys::default();
    collect(|emit| {
        for path in paths {
            read_path(decl, path, &mut seen, emit)?;
        }
        Ok(())
    })
}

/// As [`read_files`], handing the rows to `send` in batches of `batch_rows` (the last may
/// be smaller), so that memory holds a batch and the keys seen, never the whole write. An
/// error from `send` (the writer stopped) ends the reading.
pub fn read_files_batched(
    decl: &ResultTable,
    paths: &[std::path::PathBuf],
    batch_rows: usize,
    send: &mut dyn FnMut(Vec<Vec<Value>>) -> Result<(), ResultsError>,
) -> Result<(), ResultsError> {
    let batch_rows = batch_rows.max(1);
    let mut seen = SeenKeys::default();
    let mut batch = Vec::with_capacity(batch_rows);
    for path in paths {
        read_path(decl, path, &mut seen, &mut |r| {
            batch.push(r);
            if batch.len() >= batch_rows {
                send(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(batch_rows),
                ))?;
            }
            Ok(())
        })?;
    }
    if !batch.is_empty() {
        send(batch)?;
    }
    Ok(())
}

/// Read one file of a write, by its extension.
fn read_path(
    decl: &ResultTable,
    path: &std::path::Path,
    seen: &mut SeenKeys,
    emit: &mut Emit<'_>,
) -> Result<(), ResultsError> {
    let source = path.display().to_string();
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if !matches!(ext, "csv" | "jsonl" | "ndjson" | "json" | "parquet") {
        return Err(ResultsError::Input(format!(
            "{source}: write rows as CSV (.csv), JSON lines (.jsonl, .ndjson) or Parquet \
             (.parquet)"
        )));
    }
    let file =
        std::fs::File::open(path).map_err(|e| ResultsError::Input(format!("{source}: {e}")))?;
    match ext {
        "csv" => read_csv_into(decl, std::io::BufReader::new(file), &source, seen, emit),
        "parquet" => read_parquet_into(decl, file, &source, seen, emit),
        _ => read_jsonl_into(decl, std::io::BufReader::new(file), &source, seen, emit),
    }
}

/// One Arrow value as a cell of a column of type `ty`; None for a null.
fn arrow_cell(
    ty: ResultType,
    array: &dyn arrow_array::Array,
    row: usize,
) -> Result<Option<Value>, String> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    use arrow_schema::DataType as D;
    if array.is_null(row) {
        return Ok(None);
    }
    let int = |v: i64| Ok(Some(Value::Int(v)));
    let v = match (ty, array.data_type()) {
        (ResultType::Integer, D::Int8) => {
            return int(array.as_primitive::<Int8Type>().value(row).into());
        }
        (ResultType::Integer, D::Int16) => {
            return int(array.as_primitive::<Int16Type>().value(row).into());
        }
        (ResultType::Integer, D::Int32) => {
            return int(array.as_primitive::<Int32Type>().value(row).into());
        }
        (ResultType::Integer, D::Int64) => {
            return int(array.as_primitive::<Int64Type>().value(row));
        }
        (ResultType::Integer, D::UInt8) => {
            return int(array.as_primitive::<UInt8Type>().value(row).into());
        }
        (ResultType::Integer, D::UInt16) => {
            return int(array.as_primitive::<UInt16Type>().value(row).into());
        }
        (ResultType::Integer, D::UInt32) => {
            return int(array.as_primitive::<UInt32Type>().value(row).into());
        }
        (ResultType::Integer, D::UInt64) => {
            let v = array.as_primitive::<UInt64Type>().value(row);
            return i64::try_from(v)
                .map(|v| Some(Value::Int(v)))
                .map_err(|_| format!("{v} is too large for an integer column"));
        }
        (ResultType::Float, D::Float32) => {
            f64::from(array.as_primitive::<Float32Type>().value(row))
        }
        (ResultType::Float, D::Float64) => array.as_primitive::<Float64Type>().value(row),
        (ResultType::Boolean, D::Boolean) => {
            return Ok(Some(Value::Bool(array.as_boolean().value(row))));
        }
        (ResultType::String, D::Utf8) => {
            return Ok(Some(Value::Text(
                array.as_string::<i32>().value(row).to_string(),
            )));
        }
        (ResultType::String, D::LargeUtf8) => {
            return Ok(Some(Value::Text(
                array.as_string::<i64>().value(row).to_string(),
            )));
        }
        (ResultType::String, D::Utf8View) => {
            return Ok(Some(Value::Text(
                array.as_string_view().value(row).to_string(),
            )));
        }
        (ResultType::Date, D::Date32) => {
            let days = array.as_primitive::<Date32Type>().value(row);
            let d = chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163)
                .ok_or_else(|| format!("day {days} is out of range"))?;
            return Ok(Some(Value::Text(d.format("%Y-%m-%d").to_string())));
        }
        (ty, other) => {
            return Err(format!(
                "Parquet type {other} cannot fill a {} column",
                ty.as_str()
            ));
        }
    };
    if v.is_finite() {
        Ok(Some(Value::Float(v)))
    } else {
        Err(format!("{v} is not a finite number"))
    }
}

/// Read a Parquet file: columns by name (an undeclared column is an error), row numbers
/// (from 1) in messages, batches of 8,192 rows so memory stays bounded by the batch plus
/// the rows kept.
pub fn read_parquet(
    decl: &ResultTable,
    file: std::fs::File,
    source: &str,
) -> Result<Vec<Vec<Value>>, ResultsError> {
    collect(|emit| read_parquet_into(decl, file, source, &mut SeenKeys::default(), emit))
}

fn read_parquet_into(
    decl: &ResultTable,
    file: std::fs::File,
    source: &str,
    seen: &mut SeenKeys,
    emit: &mut Emit<'_>,
) -> Result<(), ResultsError> {
    seen.next_file(source, "row")?;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let bad = |m: String| ResultsError::Input(format!("{source}: {m}"));
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| bad(format!("not a readable Parquet file: {e}")))?;
    let schema = builder.schema().clone();
    if let Some(extra) = schema
        .fields()
        .iter()
        .find(|f| !decl.columns.iter().any(|c| &c.name == f.name()))
    {
        return Err(bad(format!(
            "column `{}` is not declared in {}; declare it or drop it from the file",
            extra.name(),
            decl.path.display()
        )));
    }
    let mut index = Vec::with_capacity(decl.columns.len());
    for c in &decl.columns {
        index.push(schema.index_of(&c.name).map_err(|_| {
            bad(format!(
                "the file has no column `{}` (declared in {})",
                c.name,
                decl.path.display()
            ))
        })?);
    }
    let reader = builder
        .with_batch_size(8192)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let mut n = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| bad(e.to_string()))?;
        for r in 0..batch.num_rows() {
            n += 1;
            let at = |m: String| bad(format!("row {n}, {m}"));
            let mut row = Vec::with_capacity(decl.columns.len());
            for (c, &i) in decl.columns.iter().zip(&index) {
                let v = match arrow_cell(c.ty, batch.column(i).as_ref(), r)
                    .map_err(|m| at(format!("column `{}`: {m}", c.name)))?
                {
                    Some(v) => v,
                    None => empty(decl, c).map_err(at)?,
                };
                row.push(v);
            }
            seen.check(decl, &row, n).map_err(bad)?;
            emit(row)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn decl() -> ResultTable {
        ResultTable::parse(
            "rc",
            Path::new("results/rc.toml"),
            "key = [\"recipe_id\"]\n[columns]\nrecipe_id = { type = \"integer\" }\ncategory = { type = \"string\" }\nscore = { type = \"float\" }\nok = { type = \"boolean\" }\nday = { type = \"date\" }\n",
        )
        .unwrap()
    }

    #[test]
    fn cells_are_typed_in_declaration_order() {
        let rows = read_csv(
            &decl(),
            "score,recipe_id,category,ok,day\n0.5,1,主菜,true,2026-11-27\n,2,,0,\n".as_bytes(),
            "in.csv",
        )
        .unwrap();
        assert_eq!(
            rows[0],
            vec![
                Value::Int(1),
                Value::Text("主菜".into()),
                Value::Float(0.5),
                Value::Bool(true),
                Value::Text("2026-11-27".into())
            ]
        );
        assert_eq!(rows[1][0], Value::Int(2));
        assert!(matches!(rows[1][1], Value::NullOf(_)));
        assert!(matches!(rows[1][2], Value::NullOf(_)));
    }

    fn parquet_file(
        dir: &std::path::Path,
        name: &str,
        columns: Vec<(&str, arrow_array::ArrayRef)>,
    ) -> std::fs::File {
        let batch = arrow_array::RecordBatch::try_from_iter(columns).unwrap();
        let path = dir.join(name);
        let mut w = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(&path).unwrap(),
            batch.schema(),
            None,
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        std::fs::File::open(path).unwrap()
    }

    #[test]
    fn parquet_columns_are_read_by_name_and_typed() {
        use arrow_array::{BooleanArray, Date32Array, Float64Array, Int32Array, StringArray};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let d = decl();
        let good = parquet_file(
            dir.path(),
            "good.parquet",
            vec![
                (
                    "score",
                    Arc::new(Float64Array::from(vec![Some(0.5), None])) as _,
                ),
                ("recipe_id", Arc::new(Int32Array::from(vec![1, 2])) as _),
                (
                    "category",
                    Arc::new(StringArray::from(vec![Some("主菜"), None])) as _,
                ),
                ("ok", Arc::new(BooleanArray::from(vec![true, false])) as _),
                ("day", Arc::new(Date32Array::from(vec![20_419, 0])) as _),
            ],
        );
        let rows = read_parquet(&d, good, "good.parquet").unwrap();
        assert_eq!(rows[0][0], Value::Int(1));
        assert_eq!(rows[0][1], Value::Text("主菜".into()));
        assert_eq!(rows[0][2], Value::Float(0.5));
        assert_eq!(rows[0][3], Value::Bool(true));
        assert_eq!(rows[0][4], Value::Text("2025-11-27".into()));
        assert_eq!(rows[1][4], Value::Text("1970-01-01".into()));
        assert!(matches!(rows[1][2], Value::NullOf(_)));

        let wrong = parquet_file(
            dir.path(),
            "wrong.parquet",
            vec![
                ("recipe_id", Arc::new(Int32Array::from(vec![1])) as _),
                ("category", Arc::new(StringArray::from(vec!["a"])) as _),
                ("score", Arc::new(StringArray::from(vec!["high"])) as _),
                ("ok", Arc::new(BooleanArray::from(vec![true])) as _),
                ("day", Arc::new(Date32Array::from(vec![0])) as _),
            ],
        );
        let e = read_parquet(&d, wrong, "wrong.parquet")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "wrong.parquet: row 1, column `score`: Parquet type Utf8 cannot fill a float column"
            ),
            "{e}"
        );
        let dup = parquet_file(
            dir.path(),
            "dup.parquet",
            vec![
                (
                    "recipe_id",
                    Arc::new(Int32Array::from(vec![Some(7), Some(7)])) as _,
                ),
                ("category", Arc::new(StringArray::from(vec!["a", "b"])) as _),
                ("score", Arc::new(Float64Array::from(vec![0.1, 0.2])) as _),
                ("ok", Arc::new(BooleanArray::from(vec![true, true])) as _),
                ("day", Arc::new(Date32Array::from(vec![0, 0])) as _),
            ],
        );
        let e = read_parquet(&d, dup, "dup.parquet")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("row 2 repeats the key (recipe_id=7) of row 1"),
            "{e}"
        );
    }

    #[test]
    fn a_write_of_several_files_holds_each_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = decl();
        let a = dir.path().join("a.csv");
        let b = dir.path().join("b.jsonl");
        std::fs::write(
            &a,
            "recipe_id,category,score,ok,day\n1,a,0.1,true,2026-01-01\n",
        )
        .unwrap();
        std::fs::write(&b, "{\"recipe_id\": 2}\n{\"recipe_id\": 1}\n").unwrap();
        let e = read_files(&d, &[a.clone(), b.clone()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("b.jsonl: line 2: the key (recipe_id=1) also appears in an earlier file"),
            "{e}"
        );
        assert!(e.contains("a.csv, line 2)"), "{e}");
        assert_eq!(read_files(&d, &[b]).unwrap().len(), 2);
        let e = read_files(&d, &[dir.path().join("x.txt")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.txt: "), "{e}");
        std::fs::write(dir.path().join("x.txt"), "").unwrap();
        let e = read_files(&d, &[dir.path().join("x.txt")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("write rows as CSV (.csv), JSON lines"), "{e}");
    }

    #[test]
    fn json_lines_are_typed_and_checked() {
        let d = decl();
        let rows = read_jsonl(
            &d,
            "{\"recipe_id\": 1, \"category\": \"主菜\", \"score\": 0.5, \"ok\": true, \"day\": \"2026-11-27\"}\n\n{\"recipe_id\": 2, \"score\": null}\n".as_bytes(),
            "in.jsonl",
        )
        .unwrap();
        assert_eq!(rows[0][0], Value::Int(1));
        assert_eq!(rows[0][3], Value::Bool(true));
        assert!(matches!(rows[1][1], Value::NullOf(_)));
        let err = |text: &str| {
            read_jsonl(&d, text.as_bytes(), "in.jsonl")
                .unwrap_err()
                .to_string()
        };
        let e = err("{\"recipe_id\": 1.5}\n");
        assert!(
            e.contains("in.jsonl: line 1, column `recipe_id`: 1.5 is not an integer"),
            "{e}"
        );
        let e = err("{\"recipe_id\": 1}\n{\"recipe_id\": 1}\n");
        assert!(
            e.contains("line 2 repeats the key (recipe_id=1) of line 1"),
            "{e}"
        );
        let e = err("{\"category\": \"x\"}\n");
        assert!(
            e.contains("line 1, column `recipe_id`: empty, but it is part of the key"),
            "{e}"
        );
        let e = err("{\"recipe_id\": 1, \"extra\": 2}\n");
        assert!(e.contains("key `extra` is not a declared column"), "{e}");
        let e = err("[1, 2]\n");
        assert!(e.contains("line 1: not a JSON object"), "{e}");
    }

    #[test]
    fn problems_name_the_line_and_column() {
        let d = decl();
        let err = |csv: &str| {
            read_csv(&d, csv.as_bytes(), "in.csv")
                .unwrap_err()
                .to_string()
        };
        let h = "recipe_id,category,score,ok,day\n";
        let e = err(&format!(
            "{h}1,a,0.1,true,2026-01-01\nx,b,0.2,true,2026-01-01\n"
        ));
        assert!(
            e.contains("in.csv: line 3, column `recipe_id`: `x` is not an integer"),
            "{e}"
        );
        let e = err(&format!("{h},a,0.1,true,2026-01-01\n"));
        assert!(
            e.contains("line 2, column `recipe_id`: empty, but it is part of the key"),
            "{e}"
        );
        let e = err(&format!("{h}1,a,NaN,true,2026-01-01\n"));
        assert!(
            e.contains("column `score`: `NaN` is not a finite number"),
            "{e}"
        );
        let e = err(&format!(
            "{h}1,a,0.1,true,2026-01-01\n1,b,0.2,false,2026-01-02\n"
        ));
        assert!(
            e.contains("line 3 repeats the key (recipe_id=1) of line 2"),
            "{e}"
        );
        let e = err("recipe_id,category,score,ok\n1,a,0.1,true\n");
        assert!(e.contains("the header has no column `day`"), "{e}");
        let e = err("recipe_id,category,score,ok,day,extra
1,a,0.1,true,2026-01-01,z
");
        assert!(e.contains("column `extra` is not declared"), "{e}");
        let e = err(&format!("{h}1,a,0.1,maybe,2026-01-01\n"));
        assert!(e.contains("column `ok`: `maybe` is not a boolean"), "{e}");
    }
}
