//! Immutable Parquet snapshots of a label set, one per revision, in the object store: what a
//! training run that says "labels NAME@12" reads, forever the same.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, RecordBatch,
    StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use kondate_store::Store;

use crate::LabelsError;
use crate::cells::{self, LabelValue};
use crate::definition::{LabelSet, LabelType};

/// Object key of revision `revision`'s snapshot. The fingerprint in the name keeps a
/// snapshot written by a sync that never committed from being taken for a committed one.
pub fn key(set: &str, revision: i64, fingerprint: &str) -> String {
    format!(
        "labels/{set}/{revision:06}-{}.parquet",
        &fingerprint[..fingerprint.len().min(12)]
    )
}

/// The Arrow schema of a label set's snapshot.
pub fn schema(set: &LabelSet) -> SchemaRef {
    Arc::new(Schema::new(
        set.columns
            .iter()
            .map(|c| {
                let t = match c.ty {
                    LabelType::Integer => DataType::Int64,
                    LabelType::Float => DataType::Float64,
                    LabelType::Boolean => DataType::Boolean,
                    LabelType::Date => DataType::Date32,
                    LabelType::String | LabelType::Enum => DataType::Utf8,
                };
                Field::new(&c.name, t, !c.required)
            })
            .collect::<Vec<_>>(),
    ))
}

/// Rows (values in definition order) as one record batch.
pub fn to_batch(set: &LabelSet, rows: &[&[LabelValue]]) -> Result<RecordBatch, LabelsError> {
    let schema = schema(set);
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(set.columns.len());
    for (i, c) in set.columns.iter().enumerate() {
        let column = rows.iter().map(|r| &r[i]);
        let array: ArrayRef = match c.ty {
            LabelType::Integer => {
                let mut b = Int64Builder::with_capacity(rows.len());
                column.for_each(|v| match v {
                    LabelValue::Int(x) => b.append_value(*x),
                    _ => b.append_null(),
                });
                Arc::new(b.finish())
            }
            LabelType::Float => {
                let mut b = Float64Builder::with_capacity(rows.len());
                column.for_each(|v| match v {
                    LabelValue::Float(x) => b.append_value(*x),
                    _ => b.append_null(),
                });
                Arc::new(b.finish())
            }
            LabelType::Boolean => {
                let mut b = BooleanBuilder::with_capacity(rows.len());
                column.for_each(|v| match v {
                    LabelValue::Bool(x) => b.append_value(*x),
                    _ => b.append_null(),
                });
                Arc::new(b.finish())
            }
            LabelType::Date => {
                let mut b = Date32Builder::with_capacity(rows.len());
                column.for_each(|v| match v {
                    LabelValue::Date(d) => b.append_value(cells::epoch_days(*d)),
                    _ => b.append_null(),
                });
                Arc::new(b.finish())
            }
            LabelType::String | LabelType::Enum => {
                let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 8);
                column.for_each(|v| match v {
                    LabelValue::Text(t) => b.append_value(t),
                    _ => b.append_null(),
                });
                Arc::new(b.finish())
            }
        };
        arrays.push(array);
    }
    RecordBatch::try_new(schema, arrays).map_err(|e| LabelsError::Snapshot {
        key: set.name.clone(),
        message: e.to_string(),
    })
}

/// A snapshot file: `batch` as zstd-compressed Parquet.
pub fn encode_parquet(batch: &RecordBatch) -> Result<Vec<u8>, LabelsError> {
    let err = |e: parquet::errors::ParquetError| LabelsError::Snapshot {
        key: "(encoding)".into(),
        message: e.to_string(),
    };
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    let mut buf = Vec::new();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).map_err(err)?;
    w.write(batch).map_err(err)?;
    w.close().map_err(err)?;
    Ok(buf)
}

/// Read a snapshot back as record batches.
pub async fn read(store: &Store, key: &str) -> Result<Vec<RecordBatch>, LabelsError> {
    let bytes = store.get(key).await?;
    let err = |message: String| LabelsError::Snapshot {
        key: key.to_string(),
        message,
    };
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| err(e.to_string()))?
        .build()
        .map_err(|e| err(e.to_string()))?
        .map(|b| b.map_err(|e| err(e.to_string())))
        .collect()
}

/// Output formats of `labels export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Parquet,
}

/// Encode `batches` as a CSV (with a header row) or Parquet file.
pub fn encode(
    format: ExportFormat,
    batches: &[RecordBatch],
    schema: SchemaRef,
) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    match format {
        ExportFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut buf);
            for b in batches {
                w.write(b).map_err(|e| e.to_string())?;
            }
            if batches.is_empty() {
                // The header alone, so an empty revision is still a readable CSV.
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                drop(w);
                buf.extend_from_slice(names.join(",").as_bytes());
                buf.push(b'\n');
            }
        }
        ExportFormat::Parquet => {
            let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, schema, None)
                .map_err(|e| e.to_string())?;
            for b in batches {
                w.write(b).map_err(|e| e.to_string())?;
            }
            w.close().map_err(|e| e.to_string())?;
        }
    }
    Ok(buf)
}

/// Write `batches` to `path` in `format`, via a temporary file renamed into place, so a
/// failed export never leaves a half-written file behind.
pub fn write_file(
    path: &std::path::Path,
    format: ExportFormat,
    batches: &[RecordBatch],
    schema: SchemaRef,
) -> Result<(), LabelsError> {
    let io = |e: std::io::Error| LabelsError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let bytes = encode(format, batches, schema).map_err(|m| io(std::io::Error::other(m)))?;
    let tmp = path.with_extension("partial");
    if let Err(e) = std::fs::write(&tmp, bytes) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    std::fs::rename(&tmp, path).map_err(io)
}
