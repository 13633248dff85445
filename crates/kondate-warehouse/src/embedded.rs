//! The embedded warehouse: DataFusion over Parquet files in the object store.
//!
//! A table `schema.table` is the set of Parquet files listed in its table manifest,
//! `warehouse/<schema>/<table>/_table.json`; each load writes its files into a folder of
//! its own (`…/<table>/<load id>/part-NNN.parquet`). A load writes new files first and then replaces
//! the manifest in one `put`, so readers see the old table or the new one, and a load that
//! is killed half-way leaves the old table intact (its stray files are never listed).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{
    CsvReadOptions, DataFrame, JsonReadOptions, ParquetReadOptions, SessionConfig, SessionContext,
};
use futures::StreamExt;
use kondate_core::WarehouseKind;
use kondate_store::{Store, StoreError};
use parquet::arrow::AsyncArrowWriter;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::types::redshift_type_for_arrow;
use crate::unload::{self, Column, CsvPartWriter, PartInfo, ResultFormat, push_field};
use crate::{
    InputFormat, LoadOptions, LoadReport, TableInfo, TableName, UnloadOutput, UnloadRequest,
    Warehouse, WarehouseError,
};

/// Object-key folder holding every table.
const ROOT: &str = "warehouse";
/// URL under which the store is registered with DataFusion.
const STORE_URL: &str = "kondate://store/";

/// The table manifest: the files that make up the table, and what they hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TableManifest {
    files: Vec<String>,
    rows: u64,
    bytes: u64,
    columns: Vec<Column>,
    /// `name:arrow-type` pairs, to refuse an append whose schema differs.
    arrow_schema: Vec<(String, String)>,
    loaded_at: String,
}

/// DataFusion over Parquet tables in the object store.
#[derive(Debug, Clone)]
pub struct EmbeddedWarehouse {
    store: Store,
}

fn engine(e: impl std::fmt::Display) -> WarehouseError {
    WarehouseError::Engine(e.to_string())
}

fn table_prefix(t: &TableName) -> String {
    format!("{ROOT}/{}/{}", t.schema, t.table)
}

fn manifest_key(t: &TableName) -> String {
    format!("{}/_table.json", table_prefix(t))
}

fn schema_signature(schema: &Schema) -> Vec<(String, String)> {
    schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect()
}

impl EmbeddedWarehouse {
    /// A warehouse whose tables live in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    async fn manifests(&self) -> Result<Vec<(TableName, TableManifest)>, WarehouseError> {
        let mut out = Vec::new();
        for meta in self.store.list(ROOT).await? {
            let key = meta.location.as_ref();
            let parts: Vec<&str> = key.split('/').collect();
            if let [_, schema, table, "_table.json"] = parts.as_slice() {
                let name = TableName {
                    schema: schema.to_string(),
                    table: table.to_string(),
                };
                let m = self.read_manifest(&name).await?;
                if let Some(m) = m {
                    out.push((name, m));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn read_manifest(&self, t: &TableName) -> Result<Option<TableManifest>, WarehouseError> {
        match self.store.get(&manifest_key(t)).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                WarehouseError::Engine(format!(
                    "table manifest {} is damaged ({e}); reload the table",
                    manifest_key(t)
                ))
            }),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn base_context(&self, partitions: usize) -> SessionContext {
        let config = SessionConfig::new()
            .with_target_partitions(partitions.max(1))
            .with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        let url = url::Url::parse(STORE_URL).expect("static URL");
        ctx.register_object_store(&url, self.store.object_store());
        ctx
    }

    /// A session that sees every table as it is now (tables loaded by another process
    /// included).
    pub async fn context(&self, partitions: usize) -> Result<SessionContext, WarehouseError> {
        let ctx = self.base_context(partitions);
        let catalog = ctx.catalog("datafusion").expect("default catalog exists");
        for (name, manifest) in self.manifests().await? {
            if catalog.schema(&name.schema).is_none() {
                catalog
                    .register_schema(
                        &name.schema,
                        Arc::new(datafusion::catalog::MemorySchemaProvider::new()),
                    )
                    .map_err(engine)?;
            }
            // Each load writes its files into a folder of its own, and the table is the set of
            // load folders its manifest names. Folders rather than files because listing a
            // single-file "prefix" finds nothing on S3-like stores.
            let mut folders: Vec<&str> = manifest
                .files
                .iter()
                .filter_map(|f| f.rsplit_once('/').map(|(dir, _)| dir))
                .collect();
            folders.sort_unstable();
            folders.dedup();
            let urls = folders
                .iter()
                .map(|f| ListingTableUrl::parse(format!("{STORE_URL}{f}/")))
                .collect::<Result<Vec<_>, _>>()
                .map_err(engine)?;
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet");
            let config = ListingTableConfig::new_with_multi_paths(urls)
                .with_listing_options(options)
                .infer_schema(&ctx.state())
                .await
                .map_err(engine)?;
            let table = ListingTable::try_new(config).map_err(engine)?;
            ctx.register_table(
                datafusion::common::TableReference::partial(
                    name.schema.as_str(),
                    name.table.as_str(),
                ),
                Arc::new(table),
            )
            .map_err(engine)?;
        }
        Ok(ctx)
    }

    async fn read_inputs(
        &self,
        ctx: &SessionContext,
        files: &[PathBuf],
        opts: &LoadOptions,
    ) -> Result<DataFrame, WarehouseError> {
        if files.is_empty() {
            return Err(WarehouseError::Input {
                file: "(none)".into(),
                message: "no input files given".into(),
            });
        }
        let mut format = opts.format;
        let mut paths = Vec::new();
        for f in files {
            let display = f.display().to_string();
            let abs = std::fs::canonicalize(f).map_err(|e| WarehouseError::Input {
                file: display.clone(),
                message: format!("cannot open: {e}"),
            })?;
            if !abs.is_file() {
                return Err(WarehouseError::Input {
                    file: display,
                    message: "is not a file".into(),
                });
            }
            let guessed = guess_format(&abs).ok_or_else(|| WarehouseError::Input {
                file: display.clone(),
                message: "unknown format: name it .csv, .parquet, .jsonl or .ndjson, or pass \
                          --format"
                    .into(),
            });
            let this = match (opts.format, guessed) {
                (Some(f), _) => f,
                (None, Ok(g)) => g,
                (None, Err(e)) => return Err(e),
            };
            if let Some(prev) = format
                && prev != this
            {
                return Err(WarehouseError::Input {
                    file: display,
                    message: "all files of one load must have the same format".into(),
                });
            }
            format = Some(this);
            paths.push(abs.display().to_string());
        }
        let schema = opts.schema.as_deref().map(parse_schema).transpose()?;
        // DataFusion filters the given paths by extension: use the files' own.
        let ext = paths[0].rsplit_once('.').map(|(_, e)| format!(".{e}"));
        let res = match format.expect("at least one file") {
            InputFormat::Csv => {
                let mut o = CsvReadOptions::new()
                    .has_header(true)
                    .schema_infer_max_records(100_000);
                if let Some(ext) = &ext {
                    o = o.file_extension(ext);
                }
                if let Some(s) = &schema {
                    o = o.schema(s);
                }
                ctx.read_csv(paths.clone(), o).await
            }
            InputFormat::Parquet => {
                let mut o = ParquetReadOptions::default();
                if let Some(ext) = &ext {
                    o = o.file_extension(ext);
                }
                if let Some(s) = &schema {
                    o = o.schema(s);
                }
                ctx.read_parquet(paths.clone(), o).await
            }
            InputFormat::JsonLines => {
                let mut o = JsonReadOptions::default().schema_infer_max_records(100_000);
                if let Some(ext) = &ext {
                    o = o.file_extension(ext);
                }
                if let Some(s) = &schema {
                    o = o.schema(s);
                }
                ctx.read_json(paths.clone(), o).await
            }
        };
        res.map_err(|e| WarehouseError::Input {
            file: paths.join(", "),
            message: e.to_string(),
        })
    }
}

fn guess_format(p: &std::path::Path) -> Option<InputFormat> {
    let name = p.file_name()?.to_string_lossy().to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    if name.ends_with(".csv") {
        Some(InputFormat::Csv)
    } else if name.ends_with(".parquet") || name.ends_with(".pq") {
        Some(InputFormat::Parquet)
    } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") || name.ends_with(".json") {
        Some(InputFormat::JsonLines)
    } else {
        None
    }
}

/// Parse `name:type,name:type` into an Arrow schema.
pub fn parse_schema(spec: &str) -> Result<Schema, WarehouseError> {
    let bad = |m: String| WarehouseError::Input {
        file: "--schema".into(),
        message: m,
    };
    let mut fields = Vec::new();
    for (i, item) in spec.split(',').enumerate() {
        let (name, ty) = item
            .trim()
            .split_once(':')
            .ok_or_else(|| bad(format!("item {} `{item}` is not `name:type`", i + 1)))?;
        let dt = match ty.trim().to_ascii_lowercase().as_str() {
            "int" | "integer" | "int4" => DataType::Int32,
            "bigint" | "int8" | "long" => DataType::Int64,
            "float" | "real" | "float4" => DataType::Float32,
            "double" | "float8" | "double precision" => DataType::Float64,
            "text" | "string" | "varchar" => DataType::Utf8,
            "bool" | "boolean" => DataType::Boolean,
            "date" => DataType::Date32,
            "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, None),
            other => {
                return Err(bad(format!(
                    "column `{name}`: unknown type `{other}`; use int, bigint, float, double, \
                     text, bool, date or timestamp"
                )));
            }
        };
        fields.push(Field::new(name.trim(), dt, true));
    }
    Ok(Schema::new(fields))
}

/// True when the plan's output order is defined by a top-level ORDER BY.
fn is_ordered(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Sort(_) => true,
        LogicalPlan::Projection(p) => is_ordered(&p.input),
        LogicalPlan::Limit(l) => is_ordered(&l.input),
        LogicalPlan::SubqueryAlias(a) => is_ordered(&a.input),
        _ => false,
    }
}

/// Encodes record batches into UNLOAD-style CSV rows.
struct CsvEncoder {
    buf: Vec<u8>,
    scratch: String,
}

const FORMAT: FormatOptions<'static> = FormatOptions::new()
    .with_null("")
    .with_date_format(Some("%Y-%m-%d"))
    .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"))
    .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.f%:z"));

impl CsvEncoder {
    fn new() -> Self {
        Self {
            buf: Vec::with_capacity(1 << 20),
            scratch: String::new(),
        }
    }

    fn encode(&mut self, batch: &RecordBatch) -> Result<(), WarehouseError> {
        enum Col<'a> {
            Str(&'a dyn Array),
            Bool(&'a arrow::array::BooleanArray),
            Other(ArrayFormatter<'a>),
        }
        let cols: Vec<Col> = batch
            .columns()
            .iter()
            .map(|a| {
                Ok(match a.data_type() {
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                        Col::Str(a.as_ref())
                    }
                    DataType::Boolean => Col::Bool(a.as_boolean()),
                    _ => Col::Other(ArrayFormatter::try_new(a.as_ref(), &FORMAT).map_err(engine)?),
                })
            })
            .collect::<Result<_, WarehouseError>>()?;
        for row in 0..batch.num_rows() {
            for (i, col) in cols.iter().enumerate() {
                if i > 0 {
                    self.buf.push(b',');
                }
                match col {
                    Col::Str(a) => {
                        if a.is_null(row) {
                            push_field(&mut self.buf, None);
                        } else {
                            let s = match a.data_type() {
                                DataType::Utf8 => a.as_string::<i32>().value(row),
                                DataType::LargeUtf8 => a.as_string::<i64>().value(row),
                                _ => a.as_string_view().value(row),
                            };
                            push_field(&mut self.buf, Some(s.as_bytes()));
                        }
                    }
                    Col::Bool(a) => {
                        let v = (!a.is_null(row))
                            .then(|| if a.value(row) { &b"t"[..] } else { &b"f"[..] });
                        push_field(&mut self.buf, v);
                    }
                    Col::Other(f) => {
                        if batch.column(i).is_null(row) {
                            push_field(&mut self.buf, None);
                        } else {
                            self.scratch.clear();
                            write!(self.scratch, "{}", f.value(row)).map_err(engine)?;
                            push_field(&mut self.buf, Some(self.scratch.as_bytes()));
                        }
                    }
                }
            }
            self.buf.push(b'\n');
        }
        Ok(())
    }
}

/// One result part being written, in either format.
enum PartSink {
    Csv(CsvPartWriter, CsvEncoder),
    Parquet {
        key: String,
        writer: AsyncArrowWriter<object_store::buffered::BufWriter>,
        rows: u64,
    },
}

fn parquet_err(key: &str) -> impl Fn(parquet::errors::ParquetError) -> WarehouseError + '_ {
    move |e| WarehouseError::Write {
        key: key.to_string(),
        message: e.to_string(),
    }
}

impl PartSink {
    fn open(
        store: &Store,
        key: String,
        format: ResultFormat,
        schema: &SchemaRef,
    ) -> Result<Self, WarehouseError> {
        Ok(match format {
            ResultFormat::Csv => PartSink::Csv(CsvPartWriter::new(store, key)?, CsvEncoder::new()),
            ResultFormat::Parquet => {
                let writer = AsyncArrowWriter::try_new(store.writer(&key)?, schema.clone(), None)
                    .map_err(parquet_err(&key))?;
                PartSink::Parquet {
                    key,
                    writer,
                    rows: 0,
                }
            }
        })
    }

    async fn write(&mut self, batch: &RecordBatch) -> Result<(), WarehouseError> {
        match self {
            PartSink::Csv(w, enc) => {
                enc.buf.clear();
                enc.encode(batch)?;
                w.write_rows(&enc.buf, batch.num_rows() as u64).await
            }
            PartSink::Parquet { key, writer, rows } => {
                *rows += batch.num_rows() as u64;
                writer.write(batch).await.map_err(parquet_err(key))
            }
        }
    }

    async fn finish(self, store: &Store) -> Result<PartInfo, WarehouseError> {
        match self {
            PartSink::Csv(w, _) => w.finish().await,
            PartSink::Parquet { key, writer, rows } => {
                writer.close().await.map_err(parquet_err(&key))?;
                let size = store.head(&key).await?.size;
                Ok(PartInfo {
                    key,
                    content_length: size,
                    record_count: rows,
                })
            }
        }
    }
}

/// Write the batches arriving on `rx` into part `key`. A part that receives nothing is
/// not written, unless `keep_empty` (so that every result has at least one part).
async fn part_worker(
    store: Store,
    key: String,
    format: ResultFormat,
    schema: SchemaRef,
    mut rx: mpsc::Receiver<RecordBatch>,
    keep_empty: bool,
) -> Result<Option<PartInfo>, WarehouseError> {
    let mut sink: Option<PartSink> = None;
    if keep_empty {
        sink = Some(PartSink::open(&store, key.clone(), format, &schema)?);
    }
    while let Some(batch) = rx.recv().await {
        if sink.is_none() {
            sink = Some(PartSink::open(&store, key.clone(), format, &schema)?);
        }
        sink.as_mut().expect("opened above").write(&batch).await?;
    }
    match sink {
        Some(s) => Ok(Some(s.finish(&store).await?)),
        None => Ok(None),
    }
}

/// Write a whole stream into Parquet part `key` (used by `load`).
async fn write_parquet_part(
    store: Store,
    key: String,
    schema: SchemaRef,
    mut stream: SendableRecordBatchStream,
) -> Result<PartInfo, WarehouseError> {
    let mut sink = PartSink::open(&store, key, ResultFormat::Parquet, &schema)?;
    while let Some(batch) = stream.next().await {
        sink.write(&batch.map_err(engine)?).await?;
    }
    sink.finish(&store).await
}

#[async_trait]
impl Warehouse for EmbeddedWarehouse {
    fn kind(&self) -> WarehouseKind {
        WarehouseKind::Embedded
    }

    async fn unload(&self, req: &UnloadRequest) -> Result<UnloadOutput, WarehouseError> {
        let ctx = self.context(req.parts).await?;
        // Behind the query guard, DataFusion itself refuses DDL, DML and statements.
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = ctx
            .sql_with_options(&req.select, options)
            .await
            .map_err(engine)?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let columns: Vec<Column> = schema
            .fields()
            .iter()
            .map(|f| Column {
                name: f.name().clone(),
                redshift_type: redshift_type_for_arrow(f.data_type()).to_string(),
            })
            .collect();
        // One stream, computed in parallel by DataFusion; its batches are dealt round-robin
        // to the part writers, which encode and compress in parallel. An ordered result goes
        // to a single part so that its order survives.
        let workers = if req.ordered || is_ordered(df.logical_plan()) {
            1
        } else {
            req.parts.max(1)
        };
        let mut stream = df.execute_stream().await.map_err(engine)?;
        // Dropping the JoinSet (on timeout or error) aborts every part writer.
        let mut tasks = JoinSet::new();
        let mut senders = Vec::with_capacity(workers);
        for i in 0..workers {
            let (tx, rx) = mpsc::channel::<RecordBatch>(2);
            senders.push(tx);
            let key = unload::part_key(&req.prefix, i, req.format);
            tasks.spawn(part_worker(
                self.store.clone(),
                key,
                req.format,
                schema.clone(),
                rx,
                i == 0,
            ));
        }
        let mut next = 0;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(engine)?;
            if batch.num_rows() == 0 {
                continue;
            }
            if senders[next].send(batch).await.is_err() {
                break; // that writer failed; its error is collected below
            }
            next = (next + 1) % workers;
        }
        drop(senders);
        let mut parts = Vec::new();
        while let Some(r) = tasks.join_next().await {
            let part =
                r.map_err(|e| WarehouseError::Engine(format!("part writer failed: {e}")))??;
            parts.extend(part);
        }
        unload::write_manifest(&self.store, &req.prefix, parts, columns).await
    }

    async fn tables(&self) -> Result<Vec<TableInfo>, WarehouseError> {
        Ok(self
            .manifests()
            .await?
            .into_iter()
            .map(|(name, m)| TableInfo {
                name: name.to_string(),
                rows: Some(m.rows),
                bytes: Some(m.bytes),
                columns: m.columns,
            })
            .collect())
    }

    async fn load(
        &self,
        table: &TableName,
        files: &[PathBuf],
        opts: &LoadOptions,
    ) -> Result<LoadReport, WarehouseError> {
        let ctx = self.base_context(2);
        let df = self.read_inputs(&ctx, files, opts).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let previous = self.read_manifest(table).await?;
        if opts.append
            && let Some(prev) = &previous
            && prev.arrow_schema != schema_signature(&schema)
        {
            return Err(WarehouseError::Input {
                file: files[0].display().to_string(),
                message: format!(
                    "its columns {:?} differ from table {table}'s {:?}; load without --append \
                     to replace the table",
                    schema_signature(&schema),
                    prev.arrow_schema
                ),
            });
        }
        let load_id = format!(
            "{}-{:08x}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S"),
            rand::random::<u32>()
        );
        let streams = df.execute_stream_partitioned().await.map_err(engine)?;
        let mut tasks = JoinSet::new();
        for (i, stream) in streams.into_iter().enumerate() {
            let key = format!("{}/{load_id}/part-{i:03}.parquet", table_prefix(table));
            tasks.spawn(write_parquet_part(
                self.store.clone(),
                key,
                schema.clone(),
                stream,
            ));
        }
        let mut written = Vec::new();
        let mut failure = None;
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(Ok(p)) => written.push(p),
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(e) => failure = failure.or(Some(engine(e))),
            }
        }
        if let Some(e) = failure {
            for p in &written {
                let _ = self.store.delete(&p.key).await;
            }
            return Err(match e {
                WarehouseError::Engine(m) => WarehouseError::Input {
                    file: files
                        .iter()
                        .map(|f| f.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    message: m,
                },
                e => e,
            });
        }
        written.sort_by(|a, b| a.key.cmp(&b.key));
        let rows: u64 = written.iter().map(|p| p.record_count).sum();
        let mut files_out: Vec<String> = written.iter().map(|p| p.key.clone()).collect();
        let mut bytes: u64 = written.iter().map(|p| p.content_length).sum();
        let mut total_rows = rows;
        let replaced = !opts.append && previous.is_some();
        if opts.append
            && let Some(prev) = &previous
        {
            let mut all = prev.files.clone();
            all.append(&mut files_out);
            files_out = all;
            bytes += prev.bytes;
            total_rows += prev.rows;
        }
        let manifest = TableManifest {
            files: files_out,
            rows: total_rows,
            bytes,
            columns: schema
                .fields()
                .iter()
                .map(|f| Column {
                    name: f.name().clone(),
                    redshift_type: redshift_type_for_arrow(f.data_type()).to_string(),
                })
                .collect(),
            arrow_schema: schema_signature(&schema),
            loaded_at: chrono::Utc::now().to_rfc3339(),
        };
        // The switch: one put of the manifest.
        self.store
            .put(
                &manifest_key(table),
                serde_json::to_vec_pretty(&manifest)
                    .expect("serialises")
                    .into(),
            )
            .await?;
        if replaced && let Some(prev) = previous {
            for f in prev.files {
                self.store.delete(&f).await?;
            }
        }
        Ok(LoadReport {
            table: table.to_string(),
            rows,
            files: files.len(),
            replaced,
        })
    }

    async fn drop_table(&self, table: &TableName) -> Result<bool, WarehouseError> {
        if self.read_manifest(table).await?.is_none() {
            return Ok(false);
        }
        // The manifest goes first, so the table disappears at once; then its files.
        self.store.delete(&manifest_key(table)).await?;
        self.store.delete_prefix(&table_prefix(table)).await?;
        Ok(true)
    }
}
