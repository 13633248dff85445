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

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch,
};
use arrow::buffer::NullBuffer;
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Date32Type, Field, Float64Type, Int64Type, Schema, SchemaRef, TimeUnit,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use chrono::{Datelike, NaiveDate};
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
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::pgout;
use crate::types::redshift_type_for_arrow;
use crate::unload::{
    self, Column, CsvPartWriter, ParquetPartWriter, PartInfo, ResultFormat, push_field,
};
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

/// How long a load or drop waits, by default, for another one on the same table to finish
/// switching its manifest (a switch takes milliseconds; this only matters with many at once).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(60);
/// A lock older than this was left by a process that died while holding it.
const LOCK_STALE: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// Held while a table's manifest is read, changed and written back, so that two loads
/// appending at once both land (each re-reads the manifest inside the lock). Data files are
/// written before the lock is taken: it is held for milliseconds. The lock object says who
/// holds it ([`LockHolder`]), so that a waiter can tell a lock left by a killed process on
/// this host (broken at once) from a live holder, and every message names the holder.
struct TableLock {
    store: Store,
    key: String,
}

/// What a table lock object holds: who took it, and when.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct LockHolder {
    host: String,
    pid: i64,
    /// RFC 3339.
    taken_at: String,
}

impl LockHolder {
    fn describe(&self) -> String {
        format!(
            "process {} on host {}, since {}",
            self.pid, self.host, self.taken_at
        )
    }

    /// Why the holder is provably gone: it ran on this host and its process no longer exists.
    fn gone_here(&self) -> bool {
        self.host == kondate_core::host::hostname() && !kondate_core::host::pid_alive(self.pid)
    }
}

impl TableLock {
    async fn acquire(
        store: &Store,
        table: &TableName,
        wait: std::time::Duration,
    ) -> Result<TableLock, WarehouseError> {
        let key = format!("{}/_table.lock", table_prefix(table));
        let started = std::time::Instant::now();
        let mut delay = std::time::Duration::from_millis(5);
        let me = serde_json::to_vec(&LockHolder {
            host: kondate_core::host::hostname(),
            pid: i64::from(std::process::id()),
            taken_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        })
        .map_err(|e| WarehouseError::Engine(e.to_string()))?;
        loop {
            if store.put_new(&key, me.clone().into()).await? {
                return Ok(TableLock {
                    store: store.clone(),
                    key,
                });
            }
            // Held by a live load (for milliseconds), or left by one that was killed: at once
            // when its process is gone from this host, else once it is older than any live
            // holder keeps it. Two waiters that both find it abandoned could both break it;
            // a killed lock holder and two concurrent loads at once is the only way there.
            let holder = match store.get(&key).await {
                Ok(body) => serde_json::from_slice::<LockHolder>(&body).ok(),
                // Released between the two requests: take it.
                Err(_) => continue,
            };
            let who = holder
                .as_ref()
                .map_or_else(|| "an unknown process".to_string(), LockHolder::describe);
            let stale = match store.head(&key).await {
                Ok(meta) => chrono::Utc::now() - meta.last_modified > LOCK_STALE,
                Err(_) => continue,
            };
            if holder.as_ref().is_some_and(LockHolder::gone_here) || stale {
                tracing::warn!(
                    lock = %key,
                    holder = %who,
                    reason = if stale { "older than 30 s" } else { "its process is gone" },
                    "breaking a table lock left by a killed load"
                );
                store.delete(&key).await?;
                continue;
            }
            if started.elapsed() > wait {
                return Err(WarehouseError::Engine(format!(
                    "table {table} is being changed by another load or drop ({who}), which \
                     has not finished after {wait:?}; try again, or if nothing else is \
                     loading it, delete the object `{key}`"
                )));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_millis(200));
        }
    }

    async fn release(self) -> Result<(), WarehouseError> {
        Ok(self.store.delete(&self.key).await?)
    }
}

/// DataFusion over Parquet tables in the object store.
#[derive(Debug, Clone)]
pub struct EmbeddedWarehouse {
    store: Store,
    lock_wait: std::time::Duration,
    /// Shared by every query, so that together they stay within `memory_limit`.
    runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
    memory_limit: u64,
}

fn engine(e: impl std::fmt::Display) -> WarehouseError {
    let message = e.to_string();
    // DataFusion reports a full memory pool as "Resources exhausted" (wrapped in whatever
    // context the operator adds), so the text is what there is to recognise.
    if message.contains("Resources exhausted") {
        return WarehouseError::Engine(format!(
            "the query needed more memory than the embedded warehouse may use \
             (warehouse.memory_limit): narrow it — filter earlier, fewer groups or a smaller \
             join — or raise the limit. {message}"
        ));
    }
    // A literal beyond what a 38-digit decimal holds (`1.5e300`, which PostgreSQL's numeric
    // reads exactly).
    if message.contains("exceeds the minimum supported scale")
        || message.contains("exceeds the maximum supported precision")
    {
        return WarehouseError::Engine(format!(
            "a number literal has more digits than the embedded warehouse's numeric holds \
             (38): write it as a float, e.g. 1.5e300::float8, or run the query on PostgreSQL \
             or Redshift. {message}"
        ));
    }
    // Arrow's checked decimal division (`1.5 / 0.0`): PostgreSQL's words.
    if message.contains("Divide by zero error") {
        return WarehouseError::Engine(format!("division by zero ({message})"));
    }
    WarehouseError::Engine(message)
}

/// The machine's memory: physical memory, or the cgroup's limit where that is lower.
pub fn machine_memory() -> u64 {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let total = read("/proc/meminfo")
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(4 << 30);
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|p| read(p).and_then(|v| v.trim().parse::<u64>().ok()));
    cgroup.map_or(total, |c| c.min(total))
}

fn runtime_with(limit: u64) -> Arc<datafusion::execution::runtime_env::RuntimeEnv> {
    datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_limit(usize::try_from(limit).unwrap_or(usize::MAX), 1.0)
        .build_arc()
        .expect("a runtime with a memory pool builds")
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
    /// An embedded warehouse on `store`, its queries together within half the machine's
    /// memory ([`EmbeddedWarehouse::with_memory_limit`] sets another budget).
    pub fn new(store: Store) -> Self {
        let limit = kondate_core::config::MemoryLimit::default().bytes(machine_memory());
        Self {
            store,
            lock_wait: LOCK_WAIT,
            runtime: runtime_with(limit),
            memory_limit: limit,
        }
    }

    /// Let all queries together use at most `bytes` (sorts spill to disk first; what cannot
    /// spill fails with a message that names the setting).
    pub fn with_memory_limit(mut self, bytes: u64) -> Self {
        self.runtime = runtime_with(bytes);
        self.memory_limit = bytes;
        self
    }

    /// The memory budget of its queries, in bytes.
    pub fn memory_limit(&self) -> u64 {
        self.memory_limit
    }

    /// Wait at most `wait` for another load or drop of the same table (default 60 s).
    pub fn with_lock_wait(mut self, wait: std::time::Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// Run `work` holding `table`'s lock. Releasing is best effort: a lock that cannot be
    /// deleted goes stale and the next load breaks it.
    async fn under_lock<T>(
        &self,
        table: &TableName,
        work: impl std::future::Future<Output = Result<T, WarehouseError>>,
    ) -> Result<T, WarehouseError> {
        let lock = TableLock::acquire(&self.store, table, self.lock_wait).await?;
        let key = lock.key.clone();
        let result = work.await;
        if let Err(e) = lock.release().await {
            tracing::warn!(lock = %key, error = %e, "could not release a table lock; it goes stale in 30 s");
        }
        result
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
        let mut config = SessionConfig::new()
            .with_target_partitions(partitions.max(1))
            .with_information_schema(true);
        // PostgreSQL's reading of the operators: `^` is a power and `#` an exclusive or
        // (the generic dialect reads `^` as the exclusive or: `2 ^ 10` would be 8).
        config.options_mut().sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
        // A literal with a point or an exponent (`0.1`, `1e-7`) is a `numeric` on PostgreSQL,
        // exact: `0.1 + 0.2` is `0.3`, not the float `0.30000000000000004`.
        config.options_mut().sql_parser.parse_float_as_decimal = true;
        let ctx = crate::pgsemantics::with_rules(SessionContext::new_with_config_rt(
            config,
            self.runtime.clone(),
        ));
        let url = url::Url::parse(STORE_URL).expect("static URL");
        ctx.register_object_store(&url, self.store.object_store());
        crate::pgfuncs::register(&ctx);
        crate::rsudfs::register(&ctx);
        crate::pgmath::register(&ctx);
        crate::pgdates::register(&ctx);
        crate::pgaggs::register(&ctx);
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
            let urls = folder_urls(&manifest)
                .iter()
                .map(ListingTableUrl::parse)
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
    ) -> Result<(DataFrame, InputFormat), WarehouseError> {
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
        let format = format.expect("at least one file");
        let res = match format {
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
                match ctx.read_json(paths.clone(), o).await {
                    // Inferred columns come out sorted by name: put them in the file's order.
                    Ok(df) if schema.is_none() => {
                        let order = json_key_order(&paths, 100_000)?;
                        in_key_order(df, &order)
                    }
                    other => other,
                }
            }
        };
        res.map(|df| (df, format))
            .map_err(|e| WarehouseError::Input {
                file: paths.join(", "),
                message: e.to_string(),
            })
    }
}

/// The keys of the first `max_records` JSON objects of `paths`, in the order they first
/// appear (serde_json's own map sorts them; this visitor sees them as written).
fn json_key_order(paths: &[String], max_records: usize) -> Result<Vec<String>, WarehouseError> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    use std::io::BufRead;

    struct Keys<'a>(
        &'a mut Vec<String>,
        &'a mut std::collections::HashSet<String>,
    );
    impl<'de> Visitor<'de> for Keys<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(k) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                if self.1.insert(k.clone()) {
                    self.0.push(k);
                }
            }
            Ok(())
        }
    }

    let (mut order, mut seen) = (Vec::new(), std::collections::HashSet::new());
    let mut records = 0;
    for path in paths {
        let file = std::fs::File::open(path).map_err(|e| WarehouseError::Input {
            file: path.clone(),
            message: format!("cannot open: {e}"),
        })?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|e| WarehouseError::Input {
                file: path.clone(),
                message: e.to_string(),
            })?;
            if line.trim().is_empty() {
                continue;
            }
            // A line that is not an object is DataFusion's to report, with its position.
            let mut de = serde_json::Deserializer::from_str(&line);
            let _ = (&mut de).deserialize_map(Keys(&mut order, &mut seen));
            records += 1;
            if records >= max_records {
                return Ok(order);
            }
        }
    }
    Ok(order)
}

/// `df`'s columns in `order` (names it does not have are skipped), then any it has that
/// `order` does not name.
fn in_key_order(df: DataFrame, order: &[String]) -> datafusion::error::Result<DataFrame> {
    let fields: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut names: Vec<&str> = order
        .iter()
        .filter(|k| fields.contains(k))
        .map(String::as_str)
        .collect();
    for f in &fields {
        if !names.contains(&f.as_str()) {
            names.push(f);
        }
    }
    df.select_columns(&names)
}

/// The folders of a table's files, as URLs DataFusion reads. Each load writes its files
/// into a folder of its own, and the table is the set of load folders its manifest names.
/// Folders rather than files because listing a single-file "prefix" finds nothing on
/// S3-like stores.
fn folder_urls(manifest: &TableManifest) -> Vec<String> {
    let mut folders: Vec<&str> = manifest
        .files
        .iter()
        .filter_map(|f| f.rsplit_once('/').map(|(dir, _)| dir))
        .collect();
    folders.sort_unstable();
    folders.dedup();
    folders.iter().map(|f| format!("{STORE_URL}{f}/")).collect()
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

/// Parse `name:type,name:type` into an Arrow schema. Types: `smallint`, `int`, `bigint`,
/// `float`, `double`, `numeric(P,S)`, `text`, `bool`, `date`, `timestamp`, `timestamptz`
/// (and their PostgreSQL spellings).
pub fn parse_schema(spec: &str) -> Result<Schema, WarehouseError> {
    let bad = |m: String| WarehouseError::Input {
        file: "--schema".into(),
        message: m,
    };
    let mut fields = Vec::new();
    for (i, item) in split_top_level(spec).into_iter().enumerate() {
        let (name, ty) = item
            .trim()
            .split_once(':')
            .ok_or_else(|| bad(format!("item {} `{item}` is not `name:type`", i + 1)))?;
        let ty = ty.trim().to_ascii_lowercase();
        let dt = match ty.as_str() {
            "smallint" | "int2" => DataType::Int16,
            "int" | "integer" | "int4" => DataType::Int32,
            "bigint" | "int8" | "long" => DataType::Int64,
            "float" | "real" | "float4" => DataType::Float32,
            "double" | "float8" | "double precision" => DataType::Float64,
            "text" | "string" | "varchar" => DataType::Utf8,
            "bool" | "boolean" => DataType::Boolean,
            "date" => DataType::Date32,
            "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, None),
            "timestamptz" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            other => match parse_numeric(other) {
                Some(Ok((p, s))) => DataType::Decimal128(p, s),
                Some(Err(m)) => return Err(bad(format!("column `{}`: {m}", name.trim()))),
                None => {
                    return Err(bad(format!(
                        "column `{}`: unknown type `{other}`; use smallint, int, bigint, float, \
                         double, numeric(P,S), text, bool, date, timestamp or timestamptz",
                        name.trim()
                    )));
                }
            },
        };
        fields.push(Field::new(name.trim(), dt, true));
    }
    Ok(Schema::new(fields))
}

/// `spec` split at the commas outside parentheses (`numeric(10,2)` is one item).
fn split_top_level(spec: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in spec.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&spec[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&spec[start..]);
    items
}

/// `numeric(P,S)` / `decimal(P,S)` / `numeric(P)`: `None` when `ty` is not a numeric type,
/// an error when its precision or scale is out of range.
fn parse_numeric(ty: &str) -> Option<Result<(u8, i8), String>> {
    let args = ty
        .strip_prefix("numeric")
        .or_else(|| ty.strip_prefix("decimal"))?
        .trim()
        .strip_prefix('(')?
        .strip_suffix(')')?;
    let (p, s) = args.split_once(',').unwrap_or((args, "0"));
    let (Ok(p), Ok(s)) = (p.trim().parse::<u8>(), s.trim().parse::<i8>()) else {
        return Some(Err(format!("`{ty}`: precision and scale must be numbers")));
    };
    if !(1..=38).contains(&p) || s < 0 || s as u8 > p {
        return Some(Err(format!(
            "`{ty}`: precision must be 1 to 38 and scale 0 to the precision"
        )));
    }
    Some(Ok((p, s)))
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

/// How one column is written. Integers, floats, dates and time-zone-less timestamps are
/// the bulk of most results, so they get hand-written formatting that produces exactly the
/// bytes of Arrow's `ArrayFormatter` with [`FORMAT`] (a unit test holds the two together)
/// at a fraction of the cost: Arrow's formatter goes through `fmt::Write` and parses the
/// strftime pattern again for every timestamp. Everything else uses `ArrayFormatter`.
enum Col<'a> {
    Str(&'a dyn Array),
    Bool(&'a BooleanArray),
    Int(&'a Int64Array),
    Float(&'a Float64Array),
    Date(&'a Date32Array, ArrayFormatter<'a>),
    /// Values as integers of `unit`, no time zone.
    Timestamp(&'a Int64Array, TimeUnit, ArrayFormatter<'a>),
    Other(ArrayFormatter<'a>),
}

/// Append `v` as `width` zero-padded decimal digits.
#[inline]
fn push_digits(out: &mut Vec<u8>, mut v: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for slot in out[start..].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// `YYYY-MM-DD`, or false when the year needs more than four digits or a sign (left to
/// Arrow's formatter, which writes chrono's `%Y` form for those).
#[inline]
fn push_date(out: &mut Vec<u8>, d: NaiveDate) -> bool {
    let year = d.year();
    if !(0..=9999).contains(&year) {
        return false;
    }
    push_digits(out, year as u32, 4);
    out.push(b'-');
    push_digits(out, d.month(), 2);
    out.push(b'-');
    push_digits(out, d.day(), 2);
    true
}

/// Dates as `YYYY-MM-DD` text, remembering the last day formatted: the rows of a result
/// mostly share their dates with their neighbours, so this skips the calendar arithmetic.
struct DayText {
    days: i64,
    text: Option<[u8; 10]>,
}

impl DayText {
    fn new() -> Self {
        Self {
            days: i64::MIN,
            text: None,
        }
    }

    /// Day `days` after 1970-01-01, or None when its year is outside 0..=9999.
    #[inline]
    fn get(&mut self, days: i64) -> Option<&[u8; 10]> {
        if days != self.days {
            self.days = days;
            // 719_163 days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
            let date = i32::try_from(days + 719_163)
                .ok()
                .and_then(NaiveDate::from_num_days_from_ce_opt);
            self.text = date.and_then(|d| {
                let mut v = Vec::with_capacity(10);
                push_date(&mut v, d).then(|| v.try_into().expect("10 bytes"))
            });
        }
        self.text.as_ref()
    }
}

/// A time-zone-less timestamp, `v` units of `unit` after the epoch, as
/// `YYYY-MM-DD HH:MM:SS` and chrono's `%.f` (nothing for whole seconds, else 3, 6 or 9
/// fractional digits, as few as the value needs). False when the year is out of range.
#[inline]
fn push_timestamp(out: &mut Vec<u8>, days: &mut DayText, v: i64, unit: TimeUnit) -> bool {
    let (per_second, nanos_per_unit) = match unit {
        TimeUnit::Second => (1, 1_000_000_000),
        TimeUnit::Millisecond => (1_000, 1_000_000),
        TimeUnit::Microsecond => (1_000_000, 1_000),
        TimeUnit::Nanosecond => (1_000_000_000, 1),
    };
    let secs = v.div_euclid(per_second);
    let nano = (v.rem_euclid(per_second) * nanos_per_unit) as u32;
    let Some(date) = days.get(secs.div_euclid(86_400)) else {
        return false;
    };
    out.extend_from_slice(date);
    let of_day = secs.rem_euclid(86_400) as u32;
    out.push(b' ');
    push_digits(out, of_day / 3600, 2);
    out.push(b':');
    push_digits(out, of_day / 60 % 60, 2);
    out.push(b':');
    push_digits(out, of_day % 60, 2);
    if nano != 0 {
        // As PostgreSQL prints fractions of a second: without trailing zeros (`.5`).
        out.push(b'.');
        push_digits(out, nano, 9);
        while out.last() == Some(&b'0') {
            out.pop();
        }
    }
    true
}

/// Append a field that never needs escaping (numbers, dates, times).
#[inline]
fn push_plain(out: &mut Vec<u8>, v: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(v);
    out.push(b'"');
}

impl CsvEncoder {
    fn new() -> Self {
        Self {
            buf: Vec::with_capacity(1 << 20),
            scratch: String::new(),
        }
    }

    /// Write value `row` of `f` through Arrow's formatter.
    fn push_formatted(&mut self, f: &ArrayFormatter, row: usize) -> Result<(), WarehouseError> {
        self.scratch.clear();
        write!(self.scratch, "{}", f.value(row)).map_err(engine)?;
        push_field(&mut self.buf, Some(self.scratch.as_bytes()));
        Ok(())
    }

    fn encode(&mut self, batch: &RecordBatch) -> Result<(), WarehouseError> {
        // Narrow integers are widened first (their text is the same); the casts are
        // vectorised and live as long as the batch is encoded.
        let widened: Vec<Option<ArrayRef>> = batch
            .columns()
            .iter()
            .map(|a| match a.data_type() {
                DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32 => cast(a, &DataType::Int64).map(Some).map_err(engine),
                DataType::Timestamp(_, None) => cast(a, &DataType::Int64).map(Some).map_err(engine),
                // PostgreSQL's own text for these (Float64 is written inline below).
                t if pgout::needs_pg_text(t) && *t != DataType::Float64 => {
                    pgout::pg_text(a.as_ref()).map(Some).map_err(engine)
                }
                _ => Ok(None),
            })
            .collect::<Result<_, WarehouseError>>()?;
        let cols: Vec<Col> = batch
            .columns()
            .iter()
            .zip(&widened)
            .map(|(a, w)| {
                let formatter = || ArrayFormatter::try_new(a.as_ref(), &FORMAT).map_err(engine);
                Ok(match (a.data_type(), w) {
                    (DataType::Timestamp(unit, None), Some(w)) => {
                        Col::Timestamp(w.as_primitive::<Int64Type>(), *unit, formatter()?)
                    }
                    (_, Some(w)) if *w.data_type() == DataType::Utf8 => Col::Str(w.as_ref()),
                    (_, Some(w)) => Col::Int(w.as_primitive::<Int64Type>()),
                    (DataType::Int64, None) => Col::Int(a.as_primitive::<Int64Type>()),
                    (DataType::Float64, None) => Col::Float(a.as_primitive::<Float64Type>()),
                    (DataType::Date32, None) => {
                        Col::Date(a.as_primitive::<Date32Type>(), formatter()?)
                    }
                    (DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View, None) => {
                        Col::Str(a.as_ref())
                    }
                    (DataType::Boolean, None) => Col::Bool(a.as_boolean()),
                    _ => Col::Other(formatter()?),
                })
            })
            .collect::<Result<_, WarehouseError>>()?;
        let nulls: Vec<Option<NullBuffer>> =
            batch.columns().iter().map(|a| a.logical_nulls()).collect();
        let mut itoa = itoa::Buffer::new();
        let mut ryu = ryu::Buffer::new();
        let mut days = DayText::new();
        for row in 0..batch.num_rows() {
            for (i, col) in cols.iter().enumerate() {
                if i > 0 {
                    self.buf.push(b',');
                }
                if nulls[i].as_ref().is_some_and(|n| n.is_null(row)) {
                    push_field(&mut self.buf, None);
                    continue;
                }
                match col {
                    Col::Str(a) => {
                        let s = match a.data_type() {
                            DataType::Utf8 => a.as_string::<i32>().value(row),
                            DataType::LargeUtf8 => a.as_string::<i64>().value(row),
                            _ => a.as_string_view().value(row),
                        };
                        push_field(&mut self.buf, Some(s.as_bytes()));
                    }
                    Col::Bool(a) => {
                        let v: &[u8] = if a.value(row) { b"t" } else { b"f" };
                        push_field(&mut self.buf, Some(v));
                    }
                    // Digits, signs, `.`, `e`, `NaN` and `inf` never need escaping.
                    Col::Int(a) => push_plain(&mut self.buf, itoa.format(a.value(row)).as_bytes()),
                    Col::Float(a) => {
                        self.buf.push(b'"');
                        pgout::push_float8(&mut self.buf, &mut ryu, a.value(row));
                        self.buf.push(b'"');
                    }
                    Col::Date(a, f) => match days.get(i64::from(a.value(row))) {
                        Some(d) => push_plain(&mut self.buf, d),
                        None => self.push_formatted(f, row)?,
                    },
                    Col::Timestamp(a, unit, f) => {
                        let mark = self.buf.len();
                        self.buf.push(b'"');
                        if push_timestamp(&mut self.buf, &mut days, a.value(row), *unit) {
                            self.buf.push(b'"');
                        } else {
                            self.buf.truncate(mark);
                            self.push_formatted(f, row)?;
                        }
                    }
                    Col::Other(f) => self.push_formatted(f, row)?,
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
    /// A table's own data: every type kept.
    Parquet(ParquetPartWriter),
    /// A query result: the column types a PostgreSQL result has ([`pgout::parquet_type`]).
    ResultParquet(ParquetPartWriter, SchemaRef),
}

impl PartSink {
    fn open(
        store: &Store,
        key: String,
        format: ResultFormat,
        gzip_level: u32,
        schema: &SchemaRef,
    ) -> Result<Self, WarehouseError> {
        Ok(match format {
            ResultFormat::Csv => PartSink::Csv(
                CsvPartWriter::new(store, key, gzip_level)?,
                CsvEncoder::new(),
            ),
            ResultFormat::Parquet => {
                let pg: SchemaRef = Arc::new(pgout::parquet_schema(schema));
                PartSink::ResultParquet(ParquetPartWriter::new(store, key, pg.clone())?, pg)
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
            PartSink::Parquet(w) => w.write(batch).await,
            PartSink::ResultParquet(w, pg) => {
                let columns = batch
                    .columns()
                    .iter()
                    .map(pgout::to_parquet_column)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(engine)?;
                w.write(&RecordBatch::try_new(pg.clone(), columns).map_err(engine)?)
                    .await
            }
        }
    }

    async fn finish(self, store: &Store) -> Result<PartInfo, WarehouseError> {
        match self {
            PartSink::Csv(w, _) => w.finish().await,
            PartSink::Parquet(w) | PartSink::ResultParquet(w, _) => w.finish(store).await,
        }
    }
}

/// Write the batches arriving on `rx` into part `key`. A part that receives nothing is
/// not written, unless `keep_empty` (so that every result has at least one part).
async fn part_worker(
    store: Store,
    key: String,
    format: ResultFormat,
    gzip_level: u32,
    schema: SchemaRef,
    mut rx: mpsc::Receiver<RecordBatch>,
    keep_empty: bool,
) -> Result<Option<PartInfo>, WarehouseError> {
    let open = || PartSink::open(&store, key.clone(), format, gzip_level, &schema);
    let mut sink: Option<PartSink> = None;
    if keep_empty {
        sink = Some(open()?);
    }
    while let Some(batch) = rx.recv().await {
        if sink.is_none() {
            sink = Some(open()?);
        }
        sink.as_mut().expect("opened above").write(&batch).await?;
    }
    match sink {
        Some(s) => Ok(Some(s.finish(&store).await?)),
        None => Ok(None),
    }
}

/// Plan `sql` as `SessionContext::sql_with_options` does, with PostgreSQL's output names
/// given to the select items first ([`crate::pgnames`]), Redshift's functions rewritten
/// ([`crate::rsfuncs`]), and the values' display scales followed ([`crate::pgscale`]: where
/// each result column's are).
async fn plan_with_pg_names(
    ctx: &SessionContext,
    sql: &str,
    options: SQLOptions,
) -> datafusion::error::Result<(DataFrame, Vec<Option<crate::pgscale::Scale>>)> {
    use datafusion::sql::parser::Statement as DfStatement;
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let sql = crate::rsfuncs::without_approximate(sql).unwrap_or_else(|| sql.to_string());
    let mut statement = state.sql_to_statement(&sql, &dialect)?;
    if let DfStatement::Statement(s) = &mut statement {
        // Names first, from the statement as written (`len(x)` is named `len`).
        crate::pgnames::name_outputs(s);
        crate::rsfuncs::rewrite(s)?;
    }
    let plan = state.statement_to_plan(statement).await?;
    options.verify_plan(&plan)?;
    let (plan, scales) = crate::pgscale::with_display_scales(plan, &state)?;
    Ok((ctx.execute_logical_plan(plan).await?, scales))
}

/// `schema` with each field named as the statement named it (repeats allowed).
fn pg_named(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            f.as_ref()
                .clone()
                .with_name(crate::pgnames::rename(f.name()))
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// Write a whole stream into Parquet part `key` (used by `load`).
async fn write_parquet_part(
    store: Store,
    key: String,
    schema: SchemaRef,
    mut stream: SendableRecordBatchStream,
) -> Result<PartInfo, WarehouseError> {
    let mut sink = PartSink::Parquet(ParquetPartWriter::new(&store, key, schema)?);
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
        let (df, scales) = plan_with_pg_names(&ctx, &req.select, options)
            .await
            .map_err(engine)?;
        let ordered = req.ordered || is_ordered(df.logical_plan());
        let mut stream = df.execute_stream().await.map_err(engine)?;
        // The engine's names with the repeats told apart; the result's as PostgreSQL's. The
        // types are the executed plan's: analysis (type coercion, kondate's own rules) can
        // change what the unanalysed statement said. The companions of display scales are
        // dropped, decimals printed at their values' scales.
        let shown = crate::pgscale::Shown::new(stream.schema().as_ref(), &scales);
        let schema: SchemaRef = Arc::new(pg_named(shown.written()));
        let renamed = shown.written().fields() != schema.fields();
        let columns: Vec<Column> = pg_named(shown.engine())
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
        let workers = if ordered { 1 } else { req.parts.max(1) };
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
                req.gzip_level,
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
            let batch = shown.apply(batch).map_err(engine)?;
            let batch = if renamed {
                RecordBatch::try_new(schema.clone(), batch.columns().to_vec()).map_err(engine)?
            } else {
                batch
            };
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
        let (mut df, format) = self.read_inputs(&ctx, files, opts).await?;
        let previous = self.read_manifest(table).await?;
        // A JSON object's keys have no order of their own: rows added to a table take the
        // table's column order.
        if format == InputFormat::JsonLines
            && opts.schema.is_none()
            && (opts.append || opts.merge_key.is_some())
            && let Some(prev) = &previous
        {
            let order: Vec<String> = prev.arrow_schema.iter().map(|(n, _)| n.clone()).collect();
            df = in_key_order(df, &order).map_err(engine)?;
        }
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        // A merge rewrites the table: the input, plus the rows of the table whose key the
        // input does not have.
        let merged_from = match (&opts.merge_key, &previous) {
            (Some(key), Some(prev)) => {
                if prev.arrow_schema != schema_signature(&schema) {
                    return Err(WarehouseError::Input {
                        file: files[0].display().to_string(),
                        message: format!(
                            "its columns {:?} differ from table {table}'s {:?}; load it whole \
                             (without a merge key) to replace the table",
                            schema_signature(&schema),
                            prev.arrow_schema
                        ),
                    });
                }
                df = merge(&ctx, df, prev, key).await?;
                Some(prev.files.clone())
            }
            _ => None,
        };
        let opts = &LoadOptions {
            append: opts.append && opts.merge_key.is_none(),
            ..opts.clone()
        };
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
        let switch = self.switch_manifest(table, files, opts, &schema, &written, merged_from);
        let result = self.under_lock(table, switch).await;
        // Not switched in (the lock was not had, or the switch failed): the new files are
        // never listed, so they go.
        if result.is_err() {
            for p in &written {
                let _ = self.store.delete(&p.key).await;
            }
        }
        result
    }

    async fn drop_table(&self, table: &TableName) -> Result<bool, WarehouseError> {
        self.under_lock(table, self.drop_locked(table)).await
    }
}

/// `incoming` plus the rows of the table `prev` describes whose `key` columns match no
/// incoming row.
async fn merge(
    ctx: &SessionContext,
    incoming: DataFrame,
    prev: &TableManifest,
    key: &[String],
) -> Result<DataFrame, WarehouseError> {
    let names: Vec<&str> = prev.arrow_schema.iter().map(|(n, _)| n.as_str()).collect();
    if key.is_empty() {
        return Err(WarehouseError::Unsupported(
            "a merge needs at least one key column".into(),
        ));
    }
    for k in key {
        // Quoted into the SQL below: a name with a quote could not be.
        if !names.contains(&k.as_str()) || k.contains('"') {
            return Err(WarehouseError::Unsupported(format!(
                "merge key `{k}` is not a column of the table ({})",
                names.join(", ")
            )));
        }
    }
    let existing = ctx
        .read_parquet(
            folder_urls(prev),
            ParquetReadOptions::default().file_extension(".parquet"),
        )
        .await
        .map_err(engine)?;
    ctx.register_table("kondate_incoming", incoming.clone().into_view())
        .map_err(engine)?;
    ctx.register_table("kondate_existing", existing.into_view())
        .map_err(engine)?;
    let on = key
        .iter()
        .map(|k| format!("i.\"{k}\" = e.\"{k}\""))
        .collect::<Vec<_>>()
        .join(" AND ");
    let kept = ctx
        .sql(&format!(
            "SELECT e.* FROM kondate_existing e WHERE NOT EXISTS \
             (SELECT 1 FROM kondate_incoming i WHERE {on})"
        ))
        .await
        .map_err(engine)?;
    incoming.union(kept).map_err(engine)
}

impl EmbeddedWarehouse {
    /// Under the table lock: re-read the manifest, add or replace files, write it back.
    async fn switch_manifest(
        &self,
        table: &TableName,
        files: &[PathBuf],
        opts: &LoadOptions,
        schema: &SchemaRef,
        written: &[PartInfo],
        merged_from: Option<Vec<String>>,
    ) -> Result<LoadReport, WarehouseError> {
        // Read again inside the lock: another load may have switched it since the check
        // before writing.
        let previous = self.read_manifest(table).await?;
        if let Some(base) = merged_from
            && previous.as_ref().map(|p| &p.files) != Some(&base)
        {
            return Err(WarehouseError::Engine(format!(
                "table {table} was changed by another load while this merge was written; run \
                 it again"
            )));
        }
        if opts.append
            && let Some(prev) = &previous
            && prev.arrow_schema != schema_signature(schema)
        {
            return Err(WarehouseError::Input {
                file: files[0].display().to_string(),
                message: format!(
                    "its columns {:?} differ from table {table}'s {:?}, changed by another load \
                     meanwhile; load without --append to replace the table",
                    schema_signature(schema),
                    prev.arrow_schema
                ),
            });
        }
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
            arrow_schema: schema_signature(schema),
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

    async fn drop_locked(&self, table: &TableName) -> Result<bool, WarehouseError> {
        if self.read_manifest(table).await?.is_none() {
            return Ok(false);
        }
        // The manifest goes first, so the table disappears at once; then its files.
        self.store.delete(&manifest_key(table)).await?;
        self.store.delete_prefix(&table_prefix(table)).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        Date32Array, Float64Array, Int8Array, Int32Array, TimestampMicrosecondArray,
        TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray, UInt16Array,
    };

    /// What Arrow's formatter writes for every row of `array`, field by field.
    /// Arrow's display, with PostgreSQL's spellings where they differ: floats as
    /// `float8out` prints them, fractions of a second without trailing zeros.
    fn reference(array: &ArrayRef) -> Vec<u8> {
        let f = ArrayFormatter::try_new(array.as_ref(), &FORMAT).unwrap();
        let pg = crate::pgout::pg_text(array.as_ref()).unwrap();
        let mut out = Vec::new();
        for row in 0..array.len() {
            let text = match array.data_type() {
                DataType::Float64 => pg.as_string::<i32>().value(row).to_string(),
                DataType::Timestamp(..) if f.value(row).to_string().contains('.') => {
                    f.value(row).to_string().trim_end_matches('0').to_string()
                }
                _ => f.value(row).to_string(),
            };
            push_field(&mut out, (!array.is_null(row)).then_some(text.as_bytes()));
            out.push(b'\n');
        }
        out
    }

    fn encoded(array: ArrayRef) -> (Vec<u8>, Vec<u8>) {
        let batch = RecordBatch::try_from_iter([("c", array.clone())]).unwrap();
        let mut enc = CsvEncoder::new();
        enc.encode(&batch).unwrap();
        (enc.buf, reference(&array))
    }

    #[test]
    fn load_schemas_take_numeric_smallint_and_timestamptz() {
        let s =
            parse_schema("a:numeric(12,2), b:smallint,c:timestamptz,d:decimal(5),e:text").unwrap();
        let types: Vec<DataType> = s.fields().iter().map(|f| f.data_type().clone()).collect();
        assert_eq!(
            types,
            vec![
                DataType::Decimal128(12, 2),
                DataType::Int16,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                DataType::Decimal128(5, 0),
                DataType::Utf8,
            ]
        );
        for (bad, says) in [
            ("a:numeric(40,2)", "precision must be 1 to 38"),
            ("a:numeric(4,5)", "scale 0 to the precision"),
            ("a:numeric(x)", "must be numbers"),
            ("a:money", "unknown type `money`"),
        ] {
            let e = parse_schema(bad).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("column `a`"), "{bad}: {e}");
        }
    }

    #[test]
    fn fast_formatting_matches_arrows_formatter_byte_for_byte() {
        let nanos = [
            i64::MIN,
            -1_000_000_000_000_000_001,
            -1,
            0,
            1,
            1_500,
            1_000_000,
            1_704_067_200_123_456_789,
            1_704_067_200_120_000_000,
            1_704_067_200_123_400_000,
            i64::MAX,
        ];
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(Int8Array::from(vec![
                Some(i8::MIN),
                None,
                Some(0),
                Some(i8::MAX),
            ])),
            Arc::new(UInt16Array::from(vec![0, u16::MAX])),
            Arc::new(Int32Array::from(vec![Some(-7), None, Some(i32::MAX)])),
            Arc::new(Int64Array::from(vec![i64::MIN, -1, 0, 42, i64::MAX])),
            Arc::new(Float64Array::from(vec![
                Some(0.0),
                Some(-0.0),
                Some(1.25),
                Some(1e20),
                Some(1e-7),
                Some(f64::NAN),
                Some(f64::INFINITY),
                Some(f64::NEG_INFINITY),
                None,
                Some(123456.789),
            ])),
            Arc::new(Date32Array::from(vec![
                Some(i32::MIN),
                Some(-719_163),
                Some(-719_164),
                Some(0),
                Some(19_723),
                Some(2_932_896),
                Some(2_932_897),
                None,
                Some(i32::MAX),
            ])),
            Arc::new(TimestampSecondArray::from(vec![
                Some(-62_167_219_200),
                Some(-62_167_219_201),
                Some(0),
                Some(1_704_067_200),
                Some(253_402_300_799),
                Some(253_402_300_800),
                None,
            ])),
            Arc::new(TimestampMillisecondArray::from(vec![
                -1,
                0,
                1,
                1_704_067_200_120,
            ])),
            Arc::new(TimestampMicrosecondArray::from(vec![
                -1,
                0,
                1,
                1_704_067_200_123_456,
                1_704_067_200_100_000,
            ])),
            Arc::new(TimestampNanosecondArray::from(nanos.to_vec())),
        ];
        for array in arrays {
            let (fast, slow) = encoded(array.clone());
            assert_eq!(
                String::from_utf8_lossy(&fast),
                String::from_utf8_lossy(&slow),
                "{}",
                array.data_type()
            );
        }
    }
}
