//! The output of a query, exactly as Redshift `UNLOAD … gzip delimiter ',' escape addquotes
//! manifest verbose` writes it: gzip CSV parts named `<prefix><slice>_part_00.gz` and a
//! `<prefix>manifest` JSON; or Parquet parts (`format=parquet`, our extension).

use std::io::Write;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use flate2::Compression;
use flate2::write::GzEncoder;
use kondate_store::Store;
use object_store::buffered::BufWriter;
use parquet::arrow::AsyncArrowWriter;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::WarehouseError;

/// File name stem of result parts, as the seed system's UNLOAD used it.
pub const RESULT_STEM: &str = "result.csv.";

/// Output format of a query's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultFormat {
    Csv,
    Parquet,
}

impl ResultFormat {
    /// The name used in the API and the state database.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultFormat::Csv => "csv",
            ResultFormat::Parquet => "parquet",
        }
    }

    /// Parse the API's `format` parameter.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "csv" | "" => Some(ResultFormat::Csv),
            "parquet" => Some(ResultFormat::Parquet),
            _ => None,
        }
    }
}

/// One result column: its name and Redshift base type name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub redshift_type: String,
}

/// What a caller asks a warehouse to run.
#[derive(Debug, Clone)]
pub struct UnloadRequest {
    /// The SELECT, already checked read-only and with placeholders filled.
    pub select: String,
    /// Object-key prefix for this result, e.g. `queries/42/`.
    pub prefix: String,
    pub format: ResultFormat,
    /// Parts to write in parallel (1 when the result is ordered).
    pub parts: usize,
    /// gzip level of CSV parts (0–9).
    pub gzip_level: u32,
    /// True when the SELECT has a top-level ORDER BY: the order must survive, so one part.
    pub ordered: bool,
    /// Longest the statement may run.
    pub statement_timeout: std::time::Duration,
}

/// Where a finished result lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnloadOutput {
    /// Object keys of the data parts, in reading order.
    pub data_files: Vec<String>,
    /// Object key of the manifest.
    pub manifest_key: String,
    pub record_count: u64,
    pub columns: Vec<Column>,
}

/// The `manifest verbose` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub entries: Vec<ManifestEntry>,
    pub schema: ManifestSchema,
    pub meta: ManifestMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub url: String,
    pub meta: ManifestMeta,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestMeta {
    pub content_length: u64,
    pub record_count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestSchema {
    pub elements: Vec<ManifestElement>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestElement {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: ManifestType,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestType {
    pub base: String,
}

/// Object key of part `slice` under `prefix`.
pub fn part_key(prefix: &str, slice: usize, format: ResultFormat) -> String {
    match format {
        ResultFormat::Csv => format!("{prefix}{RESULT_STEM}{slice:04}_part_00.gz"),
        ResultFormat::Parquet => format!("{prefix}{RESULT_STEM}{slice:04}_part_00.parquet"),
    }
}

/// Object key of the manifest under `prefix`.
pub fn manifest_key(prefix: &str) -> String {
    format!("{prefix}{RESULT_STEM}manifest")
}

/// Bytes that UNLOAD's `escape` option writes with a backslash before them.
pub(crate) const ESCAPED: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'\n' as usize] = true;
    t[b'\r' as usize] = true;
    t[b',' as usize] = true;
    t
};

/// Append one field in UNLOAD's `escape addquotes` form: wrapped in `"`, with a backslash
/// before `"`, `\`, line feed, carriage return and the delimiter. NULL is written as `""`,
/// as Redshift does (NULL and the empty string look alike in this format).
#[inline]
pub fn push_field(out: &mut Vec<u8>, value: Option<&[u8]>) {
    out.push(b'"');
    if let Some(v) = value {
        // One pass: runs without special bytes are copied whole.
        out.reserve(v.len() + 1);
        let mut run = 0;
        for (i, &b) in v.iter().enumerate() {
            if ESCAPED[b as usize] {
                out.extend_from_slice(&v[run..i]);
                out.push(b'\\');
                run = i;
            }
        }
        out.extend_from_slice(&v[run..]);
    }
    out.push(b'"');
}

/// Writes one gzip CSV part to the store as rows arrive, flushing compressed bytes as it goes
/// so memory stays flat. The object only becomes visible when [`CsvPartWriter::finish`] runs.
pub struct CsvPartWriter {
    key: String,
    gz: GzEncoder<Vec<u8>>,
    out: BufWriter,
    written: u64,
    rows: u64,
}

/// A finished part.
#[derive(Debug, Clone)]
pub struct PartInfo {
    pub key: String,
    pub content_length: u64,
    pub record_count: u64,
}

/// Compressed bytes buffered before they are handed to the store writer.
const FLUSH_BYTES: usize = 1 << 20;

impl CsvPartWriter {
    /// Start part `key`, compressed at `gzip_level` (0–9; 0 stores the text uncompressed
    /// inside the gzip framing, which every gzip reader still reads).
    pub fn new(store: &Store, key: String, gzip_level: u32) -> Result<Self, WarehouseError> {
        let out = store.writer(&key)?;
        Ok(Self {
            key,
            gz: GzEncoder::new(
                Vec::with_capacity(FLUSH_BYTES * 2),
                Compression::new(gzip_level.min(9)),
            ),
            out,
            written: 0,
            rows: 0,
        })
    }

    /// Add already-encoded CSV rows (each ending in `\n`).
    pub async fn write_rows(&mut self, encoded: &[u8], rows: u64) -> Result<(), WarehouseError> {
        self.gz.write_all(encoded).map_err(|e| self.io_err(e))?;
        self.rows += rows;
        if self.gz.get_ref().len() >= FLUSH_BYTES {
            let chunk = std::mem::take(self.gz.get_mut());
            self.push(&chunk).await?;
            *self.gz.get_mut() = chunk;
            self.gz.get_mut().clear();
        }
        Ok(())
    }

    async fn push(&mut self, chunk: &[u8]) -> Result<(), WarehouseError> {
        self.out
            .write_all(chunk)
            .await
            .map_err(|e| self.io_err(e))?;
        self.written += chunk.len() as u64;
        Ok(())
    }

    fn io_err(&self, e: std::io::Error) -> WarehouseError {
        WarehouseError::Write {
            key: self.key.clone(),
            message: e.to_string(),
        }
    }

    /// Finish the gzip stream and commit the object.
    pub async fn finish(mut self) -> Result<PartInfo, WarehouseError> {
        let gz = std::mem::replace(
            &mut self.gz,
            GzEncoder::new(Vec::new(), Compression::fast()),
        );
        let rest = gz.finish().map_err(|e| self.io_err(e))?;
        self.push(&rest).await?;
        self.out.shutdown().await.map_err(|e| self.io_err(e))?;
        Ok(PartInfo {
            key: self.key,
            content_length: self.written,
            record_count: self.rows,
        })
    }
}

/// Writes one Parquet part as record batches arrive (the writer flushes each row group as it
/// fills, so memory stays bounded). The object only becomes visible when
/// [`ParquetPartWriter::finish`] runs.
pub struct ParquetPartWriter {
    key: String,
    writer: AsyncArrowWriter<BufWriter>,
    rows: u64,
}

impl ParquetPartWriter {
    /// Start part `key` with columns `schema`.
    pub fn new(store: &Store, key: String, schema: SchemaRef) -> Result<Self, WarehouseError> {
        let writer = AsyncArrowWriter::try_new(store.writer(&key)?, schema, None).map_err(|e| {
            WarehouseError::Write {
                key: key.clone(),
                message: e.to_string(),
            }
        })?;
        Ok(Self {
            key,
            writer,
            rows: 0,
        })
    }

    fn err(&self, e: parquet::errors::ParquetError) -> WarehouseError {
        WarehouseError::Write {
            key: self.key.clone(),
            message: e.to_string(),
        }
    }

    /// Add a batch of rows.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<(), WarehouseError> {
        self.rows += batch.num_rows() as u64;
        match self.writer.write(batch).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Write the footer and commit the object.
    pub async fn finish(mut self, store: &Store) -> Result<PartInfo, WarehouseError> {
        if let Err(e) = self.writer.finish().await {
            return Err(self.err(e));
        }
        let size = store.head(&self.key).await?.size;
        Ok(PartInfo {
            key: self.key,
            content_length: size,
            record_count: self.rows,
        })
    }
}

/// Write the manifest for finished parts and return the overall output.
pub async fn write_manifest(
    store: &Store,
    prefix: &str,
    mut parts: Vec<PartInfo>,
    columns: Vec<Column>,
) -> Result<UnloadOutput, WarehouseError> {
    parts.sort_by(|a, b| a.key.cmp(&b.key));
    let base = store.url().trim_end_matches('/').to_string();
    let manifest = Manifest {
        entries: parts
            .iter()
            .map(|p| ManifestEntry {
                url: format!("{base}/{}", p.key),
                meta: ManifestMeta {
                    content_length: p.content_length,
                    record_count: p.record_count,
                },
            })
            .collect(),
        schema: ManifestSchema {
            elements: columns
                .iter()
                .map(|c| ManifestElement {
                    name: c.name.clone(),
                    type_: ManifestType {
                        base: c.redshift_type.clone(),
                    },
                })
                .collect(),
        },
        meta: ManifestMeta {
            content_length: parts.iter().map(|p| p.content_length).sum(),
            record_count: parts.iter().map(|p| p.record_count).sum(),
        },
        author: Some(serde_json::json!({"name": "kondate", "version": env!("CARGO_PKG_VERSION")})),
    };
    let key = manifest_key(prefix);
    let body = serde_json::to_vec(&manifest).expect("manifest serialises");
    store.put(&key, body.into()).await?;
    Ok(UnloadOutput {
        record_count: manifest.meta.record_count,
        data_files: parts.into_iter().map(|p| p.key).collect(),
        manifest_key: key,
        columns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(v: Option<&str>) -> String {
        let mut out = Vec::new();
        push_field(&mut out, v.map(str::as_bytes));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fields_are_quoted_and_escaped_like_unload() {
        let cases = [
            (Some("plain"), r#""plain""#),
            (Some(""), r#""""#),
            (None, r#""""#),
            (Some(r#"say "hi""#), r#""say \"hi\"""#),
            (Some(r"back\slash"), r#""back\\slash""#),
            (Some("a,b"), r#""a\,b""#),
            (Some("line\nbreak"), "\"line\\\nbreak\""),
            (Some("cr\rlf"), "\"cr\\\rlf\""),
            (Some("醤油 大さじ1"), "\"醤油 大さじ1\""),
        ];
        for (input, want) in cases {
            assert_eq!(field(input), want, "{input:?}");
        }
    }

    #[test]
    fn part_and_manifest_names_follow_unload() {
        assert_eq!(
            part_key("queries/7/", 1, ResultFormat::Csv),
            "queries/7/result.csv.0001_part_00.gz"
        );
        assert_eq!(manifest_key("queries/7/"), "queries/7/result.csv.manifest");
    }
}
