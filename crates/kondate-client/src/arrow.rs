//! Typed rows into Arrow record batches, one Arrow type per Redshift type.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use futures::stream::{BoxStream, StreamExt};

use crate::decode::{Kind, Row, Value};
use crate::{ClientError, ResultSet};

/// The Arrow schema of a result.
pub fn schema(rs: &ResultSet) -> SchemaRef {
    let fields: Vec<Field> = rs
        .columns
        .iter()
        .map(|c| {
            Field::new(
                &c.name,
                data_type(Kind::for_redshift(&c.redshift_type)),
                true,
            )
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn data_type(k: Kind) -> DataType {
    match k {
        Kind::Int => DataType::Int64,
        Kind::Float => DataType::Float64,
        Kind::Text => DataType::Utf8,
        Kind::Bool => DataType::Boolean,
        Kind::Date => DataType::Date32,
        Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        Kind::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
    }
}

/// Build one batch from rows.
pub fn batch_from_rows(
    schema: &SchemaRef,
    kinds: &[Kind],
    rows: &[Row],
) -> Result<RecordBatch, ClientError> {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(kinds.len());
    for (i, kind) in kinds.iter().enumerate() {
        let cell = |r: &Row| r.get(i).cloned().unwrap_or(Value::Null);
        let array: ArrayRef = match kind {
            Kind::Int => {
                let mut b = Int64Builder::with_capacity(rows.len());
                for r in rows {
                    b.append_option(match cell(r) {
                        Value::Int(v) => Some(v),
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
            Kind::Float => {
                let mut b = Float64Builder::with_capacity(rows.len());
                for r in rows {
                    b.append_option(match cell(r) {
                        Value::Float(v) => Some(v),
                        Value::Int(v) => Some(v as f64),
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
            Kind::Bool => {
                let mut b = BooleanBuilder::with_capacity(rows.len());
                for r in rows {
                    b.append_option(match cell(r) {
                        Value::Bool(v) => Some(v),
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
            Kind::Date => {
                let mut b = Date32Builder::with_capacity(rows.len());
                for r in rows {
                    b.append_option(match cell(r) {
                        Value::Date(d) => Some((d - epoch).num_days() as i32),
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
            Kind::Timestamp => {
                let mut b = TimestampMicrosecondBuilder::with_capacity(rows.len());
                for r in rows {
                    b.append_option(match cell(r) {
                        Value::Timestamp(t) => Some(t.and_utc().timestamp_micros()),
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
            Kind::TimestampTz => {
                let mut b =
                    TimestampMicrosecondBuilder::with_capacity(rows.len()).with_timezone("+00:00");
                for r in rows {
                    b.append_option(match cell(r) {
                        Value::TimestampTz(t) => Some(t.timestamp_micros()),
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
            Kind::Text => {
                let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
                for r in rows {
                    match cell(r) {
                        Value::Text(s) => b.append_value(s),
                        Value::Null => b.append_null(),
                        other => b.append_value(serde_json::to_string(&other).unwrap_or_default()),
                    }
                }
                Arc::new(b.finish())
            }
        };
        columns.push(array);
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| ClientError::Arrow(e.to_string()))
}

impl ResultSet {
    /// The result as Arrow record batches of up to `batch_size` rows.
    pub fn record_batches(
        self,
        batch_size: usize,
    ) -> BoxStream<'static, Result<RecordBatch, ClientError>> {
        let schema = schema(&self);
        let kinds = self.kinds();
        let batch_size = batch_size.max(1);
        self.rows()
            .chunks(batch_size)
            .map(move |chunk| {
                let rows: Vec<Row> = chunk.into_iter().collect::<Result<_, _>>()?;
                batch_from_rows(&schema, &kinds, &rows)
            })
            .boxed()
    }
}
