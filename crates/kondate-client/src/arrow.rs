//! Typed rows into Arrow record batches, one Arrow type per Redshift type.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use futures::stream::BoxStream;

use crate::decode::{self, FieldSink, Kind};
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

/// One column being built.
enum Builder {
    Int(Int64Builder),
    Float(Float64Builder),
    Text(StringBuilder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder, bool),
}

impl Builder {
    fn new(kind: Kind, rows: usize) -> Self {
        match kind {
            Kind::Int => Builder::Int(Int64Builder::with_capacity(rows)),
            Kind::Float => Builder::Float(Float64Builder::with_capacity(rows)),
            Kind::Text => Builder::Text(StringBuilder::with_capacity(rows, rows * 16)),
            Kind::Bool => Builder::Bool(BooleanBuilder::with_capacity(rows)),
            Kind::Date => Builder::Date(Date32Builder::with_capacity(rows)),
            Kind::Timestamp => {
                Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(rows), false)
            }
            Kind::TimestampTz => Builder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("+00:00"),
                true,
            ),
        }
    }

    fn append(&mut self, text: &[u8]) -> Result<(), String> {
        if text.is_empty() {
            match self {
                Builder::Int(b) => b.append_null(),
                Builder::Float(b) => b.append_null(),
                Builder::Text(b) => b.append_null(),
                Builder::Bool(b) => b.append_null(),
                Builder::Date(b) => b.append_null(),
                Builder::Timestamp(b, _) => b.append_null(),
            }
            return Ok(());
        }
        match self {
            Builder::Int(b) => b.append_value(decode::parse_int(text)?),
            Builder::Float(b) => b.append_value(decode::parse_float(text)?),
            Builder::Text(b) => b.append_value(decode::utf8(text)?),
            Builder::Bool(b) => b.append_value(decode::parse_bool(text)),
            Builder::Date(b) => b.append_value(decode::date_days(text)?),
            Builder::Timestamp(b, tz) => b.append_value(decode::timestamp_micros(text, *tz)?),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Int(b) => Arc::new(b.finish()),
            Builder::Float(b) => Arc::new(b.finish()),
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Timestamp(b, _) => Arc::new(b.finish()),
        }
    }
}

/// Decodes fields straight into Arrow builders and hands over a batch every `batch_size`
/// rows (and the rest at the end, through [`BatchSink::finish`]).
pub struct BatchSink<F: FnMut(Result<RecordBatch, ClientError>) -> bool> {
    schema: SchemaRef,
    builders: Vec<Builder>,
    rows: usize,
    batch_size: usize,
    emit: F,
}

impl<F: FnMut(Result<RecordBatch, ClientError>) -> bool> BatchSink<F> {
    pub fn new(schema: SchemaRef, kinds: &[Kind], batch_size: usize, emit: F) -> Self {
        let batch_size = batch_size.max(1);
        Self {
            schema,
            builders: kinds.iter().map(|k| Builder::new(*k, batch_size)).collect(),
            rows: 0,
            batch_size,
            emit,
        }
    }

    fn flush(&mut self) -> bool {
        let columns: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        self.rows = 0;
        let batch = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| ClientError::Arrow(e.to_string()));
        (self.emit)(batch)
    }

    /// Hand over the rows not yet sent.
    pub fn finish(mut self) -> bool {
        self.rows == 0 || self.flush()
    }
}

impl<F: FnMut(Result<RecordBatch, ClientError>) -> bool> FieldSink for BatchSink<F> {
    fn field(&mut self, col: usize, text: &[u8]) -> Result<(), String> {
        match self.builders.get_mut(col) {
            Some(b) => b.append(text),
            None => Err(format!("the manifest has {} columns", self.builders.len())),
        }
    }

    fn end_row(&mut self) -> bool {
        self.rows += 1;
        self.rows < self.batch_size || self.flush()
    }
}

impl ResultSet {
    /// The result as Arrow record batches of up to `batch_size` rows, in part order. Each
    /// part is decoded straight into Arrow builders (a batch never spans two parts); up to
    /// `concurrency` parts decode at once, each holding at most two batches.
    pub fn record_batches(
        self,
        batch_size: usize,
    ) -> BoxStream<'static, Result<RecordBatch, ClientError>> {
        let schema = schema(&self);
        let kinds = self.kinds();
        self.decode_parts(1, move |reader, name, tx| {
            let mut sink = BatchSink::new(schema.clone(), &kinds, batch_size, |batch| {
                tx.blocking_send(batch).is_ok()
            });
            decode::decode_into(reader, kinds.len(), name, &mut sink)?;
            sink.finish();
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_cut_at_batch_size_and_nulls_kept() {
        let kinds = [Kind::Int, Kind::Text, Kind::TimestampTz];
        let schema = Arc::new(Schema::new(
            kinds
                .iter()
                .enumerate()
                .map(|(i, k)| Field::new(format!("c{i}"), data_type(*k), true))
                .collect::<Vec<_>>(),
        ));
        let mut batches = Vec::new();
        let mut sink = BatchSink::new(schema, &kinds, 2, |b| {
            batches.push(b.unwrap());
            true
        });
        for (id, name, at) in [
            ("1", "a", "2024-01-01 00:00:00+00"),
            ("", "", ""),
            ("3", "c", "2024-01-01 09:00:00+09"),
        ] {
            sink.field(0, id.as_bytes()).unwrap();
            sink.field(1, name.as_bytes()).unwrap();
            sink.field(2, at.as_bytes()).unwrap();
            sink.end_row();
        }
        assert!(sink.field(3, b"x").is_err());
        sink.finish();
        assert_eq!(
            batches.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
            [2, 1]
        );
        use arrow_array::Array;
        use arrow_array::cast::AsArray;
        use arrow_array::types::{Int64Type, TimestampMicrosecondType};
        assert!(batches[0].column(0).is_null(1));
        assert_eq!(batches[1].column(0).as_primitive::<Int64Type>().value(0), 3);
        let at = batches[0]
            .column(2)
            .as_primitive::<TimestampMicrosecondType>();
        assert_eq!(
            at.value(0),
            batches[1]
                .column(2)
                .as_primitive::<TimestampMicrosecondType>()
                .value(0)
        );
    }
}
