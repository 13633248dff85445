//! Writing inference output into a result table: [`ResultsWriter`] takes rows or Arrow
//! record batches, spools them to a temporary file (so a write of millions of rows holds
//! none of them in memory), and [`ResultsWriter::commit`] sends them in one request to
//! `POST /v1/results/{name}`, where they are checked against the table's declaration and
//! upserted in one transaction — all of them, or none.
//!
//! ```no_run
//! # async fn demo(batch: arrow_array::RecordBatch) -> Result<(), kondate_client::ClientError> {
//! let client = kondate_client::Client::from_env()?;
//! let mut w = client.results_writer("recipe_categories")?.model("recipe-clf@production");
//! w.push_batch(&batch)?;
//! w.push_row(serde_json::json!({"recipe_id": 7, "category": "主菜", "score": 0.93}))?;
//! let report = w.commit().await?;
//! println!("{} rows written to {}", report.rows, report.table);
//! # Ok(()) }
//! ```

use std::io::Write;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{Client, ClientError};

/// What the server reports of a write.
#[derive(Debug, Clone, Deserialize)]
pub struct WriteReport {
    pub name: String,
    pub table: String,
    /// True when this write created the table.
    pub created: bool,
    /// `upsert` or `swap`.
    pub publish: String,
    pub rows: u64,
    /// Rows removed because the write did not contain their keys (`prune`).
    pub pruned: u64,
}

/// Rows for one result table, sent at [`ResultsWriter::commit`].
pub struct ResultsWriter<'a> {
    client: &'a Client,
    name: String,
    spool: std::io::BufWriter<std::fs::File>,
    file: tempfile::TempPath,
    rows: u64,
    params: Vec<(&'static str, String)>,
}

impl Client {
    /// A writer for result table `name` (declared in the server's `results/NAME.toml`). The
    /// run id defaults to `KONDATE_RUN_ID`, which `kondate apps run` sets.
    pub fn results_writer(&self, name: &str) -> Result<ResultsWriter<'_>, ClientError> {
        kondate_core::names::validate_name("result table name", name)
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let file = tempfile::Builder::new()
            .prefix("kondate-results-")
            .suffix(".jsonl")
            .tempfile()
            .map_err(|e| ClientError::Config(format!("cannot create a temporary file: {e}")))?;
        let (f, path) = file.into_parts();
        let mut params = Vec::new();
        if let Ok(run) = std::env::var("KONDATE_RUN_ID") {
            params.push(("run_id", run));
        }
        Ok(ResultsWriter {
            client: self,
            name: name.to_string(),
            spool: std::io::BufWriter::with_capacity(1 << 20, f),
            file: path,
            rows: 0,
            params,
        })
    }
}

fn set(params: &mut Vec<(&'static str, String)>, key: &'static str, value: String) {
    params.retain(|(k, _)| *k != key);
    params.push((key, value));
}

impl ResultsWriter<'_> {
    /// The model that produced the rows, `NAME[@N|@ALIAS]` (recorded as its version).
    pub fn model(mut self, reference: &str) -> Self {
        set(&mut self.params, "model", reference.to_string());
        self
    }

    /// The run that produced the rows (default: `KONDATE_RUN_ID`).
    pub fn run_id(mut self, run_id: &str) -> Self {
        set(&mut self.params, "run_id", run_id.to_string());
        self
    }

    /// Publish by swapping in a new table whole instead of upserting in place.
    pub fn swap(mut self) -> Self {
        set(&mut self.params, "publish", "swap".into());
        self
    }

    /// Remove the rows whose keys this write does not contain.
    pub fn prune(mut self) -> Self {
        set(&mut self.params, "prune", "true".into());
        self
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Add one row: a JSON object of column → value (numbers, strings, booleans, dates as
    /// `YYYY-MM-DD`, null). Checked against the declaration at [`ResultsWriter::commit`].
    pub fn push_row(&mut self, row: Value) -> Result<(), ClientError> {
        if !row.is_object() {
            return Err(ClientError::Arrow(format!(
                "row {}: a row is a JSON object of column names to values, not {row}",
                self.rows + 1
            )));
        }
        self.spool_line(&row)
    }

    /// Add every row of an Arrow record batch; its columns are named as the declaration's.
    /// Integers, floats, booleans, strings and `Date32` are taken.
    pub fn push_batch(&mut self, batch: &RecordBatch) -> Result<(), ClientError> {
        let schema = batch.schema();
        for f in schema.fields() {
            if !supported(f.data_type()) {
                return Err(ClientError::Arrow(format!(
                    "column `{}` has Arrow type {}; result tables take integers, floats, \
                     booleans, strings and Date32",
                    f.name(),
                    f.data_type()
                )));
            }
        }
        for row in 0..batch.num_rows() {
            let mut obj = Map::with_capacity(batch.num_columns());
            for (f, col) in schema.fields().iter().zip(batch.columns()) {
                let v = cell(col.as_ref(), row).map_err(|m| {
                    ClientError::Arrow(format!(
                        "row {} (column `{}`): {m}",
                        self.rows + 1,
                        f.name()
                    ))
                })?;
                obj.insert(f.name().clone(), v);
            }
            self.spool_line(&Value::Object(obj))?;
        }
        Ok(())
    }

    fn spool_line(&mut self, v: &Value) -> Result<(), ClientError> {
        let io = |e: std::io::Error| ClientError::Config(format!("spooling rows: {e}"));
        serde_json::to_writer(&mut self.spool, v).map_err(|e| io(e.into()))?;
        self.spool.write_all(b"\n").map_err(io)?;
        self.rows += 1;
        Ok(())
    }

    /// Send every row pushed, as one write: upserted all together, or (on any bad row)
    /// none, with the error naming the row and column.
    pub async fn commit(self) -> Result<WriteReport, ClientError> {
        let ResultsWriter {
            client,
            name,
            spool,
            file,
            params,
            ..
        } = self;
        spool
            .into_inner()
            .map_err(|e| ClientError::Config(format!("spooling rows: {e}")))?;
        let f = tokio::fs::File::open(&file)
            .await
            .map_err(|e| ClientError::Config(format!("reading the spooled rows: {e}")))?;
        let len = f
            .metadata()
            .await
            .map_err(|e| ClientError::Config(e.to_string()))?
            .len();
        let url = format!("{}/v1/results/{name}", client.endpoint);
        let body =
            reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(f, 1 << 20));
        let rb = client
            .http
            .post(&url)
            .query(&params)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body);
        let report = client.api(rb, &url).await;
        drop(file);
        report
    }
}

fn supported(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
            | DataType::Boolean
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Date32
            | DataType::Null
    )
}

/// One cell as JSON.
fn cell(a: &dyn Array, row: usize) -> Result<Value, String> {
    if a.is_null(row) {
        return Ok(Value::Null);
    }
    let float = |f: f64| {
        serde_json::Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| format!("{f} cannot be stored; result tables take finite numbers"))
    };
    Ok(match a.data_type() {
        DataType::Int8 => a.as_primitive::<Int8Type>().value(row).into(),
        DataType::Int16 => a.as_primitive::<Int16Type>().value(row).into(),
        DataType::Int32 => a.as_primitive::<Int32Type>().value(row).into(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(row).into(),
        DataType::UInt8 => a.as_primitive::<UInt8Type>().value(row).into(),
        DataType::UInt16 => a.as_primitive::<UInt16Type>().value(row).into(),
        DataType::UInt32 => a.as_primitive::<UInt32Type>().value(row).into(),
        DataType::UInt64 => a.as_primitive::<UInt64Type>().value(row).into(),
        DataType::Float32 => float(a.as_primitive::<Float32Type>().value(row) as f64)?,
        DataType::Float64 => float(a.as_primitive::<Float64Type>().value(row))?,
        DataType::Boolean => a.as_boolean().value(row).into(),
        DataType::Utf8 => a.as_string::<i32>().value(row).into(),
        DataType::LargeUtf8 => a.as_string::<i64>().value(row).into(),
        DataType::Utf8View => a.as_string_view().value(row).into(),
        DataType::Date32 => {
            let days = a.as_primitive::<Date32Type>().value(row);
            chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163)
                .ok_or_else(|| format!("date {days} (days since 1970) is out of range"))?
                .format("%Y-%m-%d")
                .to_string()
                .into()
        }
        other => return Err(format!("type {other} is not taken")),
    })
}
