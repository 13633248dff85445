//! PostgreSQL as the warehouse: the SELECT runs inside a READ ONLY transaction as
//! `COPY (…) TO STDOUT`, and the rows are re-encoded into UNLOAD-format gzip CSV parts (or
//! decoded into Parquet parts) by parallel workers. Redshift speaks the same protocol, so the tests use this path as its
//! stand-in.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use futures::StreamExt;
use kondate_core::WarehouseKind;
use kondate_store::Store;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{
    AssertSqlSafe, Column as _, Connection, Executor, Row, SqlSafeStr, Statement, TypeInfo,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::pgsession::{self, Engine};
use crate::pgtext::{CopyTextDecoder, pg_text_to_unload};
use crate::types::{arrow_type_for_postgres, redshift_type_for_postgres};
use crate::unload::{self, Column, CsvPartWriter, ParquetPartWriter, ResultFormat};
use crate::{
    LoadOptions, LoadReport, TableInfo, TableName, UnloadOutput, UnloadRequest, Warehouse,
    WarehouseError,
};

/// A PostgreSQL warehouse.
#[derive(Debug, Clone)]
pub struct PostgresWarehouse {
    pool: PgPool,
    store: Store,
}

/// Bytes of COPY output handed to one worker at a time.
const CHUNK: usize = 1 << 20;

pub(crate) fn pg_error(e: sqlx::Error, timeout: std::time::Duration) -> WarehouseError {
    if let sqlx::Error::Database(db) = &e
        && db.code().as_deref() == Some("57014")
    {
        return WarehouseError::Timeout(timeout);
    }
    match e {
        sqlx::Error::Database(db) => WarehouseError::Engine(db.message().to_string()),
        e => WarehouseError::Engine(e.to_string()),
    }
}

impl PostgresWarehouse {
    /// Connect to the warehouse database, refusing a superuser or privileged role unless
    /// `allow_privileged_role` (see `pgsession`).
    pub async fn connect(
        url: &str,
        store: Store,
        allow_privileged_role: bool,
    ) -> Result<Self, WarehouseError> {
        let pool = pgsession::connect(url, Engine::Postgres, 8, "the PostgreSQL warehouse").await?;
        pgsession::check_role(&pool, Engine::Postgres, allow_privileged_role).await?;
        Ok(Self { pool, store })
    }
}

async fn csv_worker(
    store: Store,
    key: String,
    gzip_level: u32,
    mut rx: mpsc::Receiver<BytesMut>,
) -> Result<unload::PartInfo, WarehouseError> {
    let mut w = CsvPartWriter::new(&store, key, gzip_level)?;
    let mut buf = Vec::with_capacity(CHUNK * 2);
    while let Some(lines) = rx.recv().await {
        buf.clear();
        let rows = pg_text_to_unload(&lines, &mut buf);
        w.write_rows(&buf, rows).await?;
    }
    w.finish().await
}

async fn parquet_worker(
    store: Store,
    key: String,
    schema: SchemaRef,
    pg_types: Vec<String>,
    mut rx: mpsc::Receiver<BytesMut>,
) -> Result<unload::PartInfo, WarehouseError> {
    let mut w = ParquetPartWriter::new(&store, key, schema.clone())?;
    let mut decoder = CopyTextDecoder::new(schema, pg_types);
    while let Some(lines) = rx.recv().await {
        w.write(&decoder.decode(&lines)?).await?;
    }
    w.finish(&store).await
}

impl PostgresWarehouse {
    /// [`Warehouse::unload`] on one connection, in a READ ONLY transaction.
    async fn unload_on(
        &self,
        conn: &mut PgConnection,
        req: &UnloadRequest,
    ) -> Result<UnloadOutput, WarehouseError> {
        let t = req.statement_timeout;
        let mut tx = conn.begin().await.map_err(|e| pg_error(e, t))?;

        // Defence in depth behind the SQL guard: the database itself refuses writes.
        for s in [
            "SET TRANSACTION READ ONLY".to_string(),
            format!("SET LOCAL statement_timeout = {}", t.as_millis().max(1)),
            "SET LOCAL TimeZone = 'UTC'".to_string(),
            "SET LOCAL DateStyle = 'ISO, YMD'".to_string(),
        ] {
            tx.execute(AssertSqlSafe(s))
                .await
                .map_err(|e| pg_error(e, t))?;
        }
        let stmt = (&mut *tx)
            .prepare(AssertSqlSafe(req.select.clone()).into_sql_str())
            .await
            .map_err(|e| pg_error(e, t))?;
        let pg_types: Vec<String> = stmt
            .columns()
            .iter()
            .map(|c| c.type_info().name().to_string())
            .collect();
        let columns: Vec<Column> = stmt
            .columns()
            .iter()
            .zip(&pg_types)
            .map(|(c, t)| Column {
                name: c.name().to_string(),
                redshift_type: redshift_type_for_postgres(t).to_string(),
            })
            .collect();
        let schema: SchemaRef = Arc::new(Schema::new(
            columns
                .iter()
                .zip(&pg_types)
                .map(|(c, t)| Field::new(&c.name, arrow_type_for_postgres(t), true))
                .collect::<Vec<_>>(),
        ));
        if req.format == ResultFormat::Parquet && columns.is_empty() {
            return Err(WarehouseError::Unsupported(
                "a result without columns cannot be written as Parquet; select at least one \
                 column or use format=csv"
                    .into(),
            ));
        }
        let parts = if req.ordered { 1 } else { req.parts.max(1) };
        let mut tasks = JoinSet::new();
        let mut senders = Vec::new();
        for i in 0..parts {
            let (tx_chunk, rx) = mpsc::channel::<BytesMut>(2);
            senders.push(tx_chunk);
            let key = unload::part_key(&req.prefix, i, req.format);
            match req.format {
                ResultFormat::Csv => {
                    tasks.spawn(csv_worker(self.store.clone(), key, req.gzip_level, rx))
                }
                ResultFormat::Parquet => tasks.spawn(parquet_worker(
                    self.store.clone(),
                    key,
                    schema.clone(),
                    pg_types.clone(),
                    rx,
                )),
            };
        }
        let copy = format!("COPY (\n{}\n) TO STDOUT", req.select);
        let mut stream = tx
            .copy_out_raw(copy.as_str())
            .await
            .map_err(|e| pg_error(e, t))?;
        let mut pending = BytesMut::with_capacity(CHUNK * 2);
        let mut next = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| pg_error(e, t))?;
            pending.extend_from_slice(&chunk);
            if pending.len() >= CHUNK
                && let Some(cut) = pending.iter().rposition(|b| *b == b'\n')
            {
                let lines = pending.split_to(cut + 1);
                if senders[next].send(lines).await.is_err() {
                    break; // the worker failed; its error is reported below
                }
                next = (next + 1) % senders.len();
            }
        }
        drop(stream);
        if pending.has_remaining() {
            let _ = senders[next].send(pending).await;
        }
        drop(senders);
        tx.commit().await.map_err(|e| pg_error(e, t))?;
        let mut out = Vec::new();
        while let Some(r) = tasks.join_next().await {
            out.push(r.map_err(|e| WarehouseError::Engine(format!("part writer failed: {e}")))??);
        }
        unload::write_manifest(&self.store, &req.prefix, out, columns).await
    }
}

#[async_trait]
impl Warehouse for PostgresWarehouse {
    fn kind(&self) -> WarehouseKind {
        WarehouseKind::Postgres
    }

    async fn unload(&self, req: &UnloadRequest) -> Result<UnloadOutput, WarehouseError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| pg_error(e, req.statement_timeout))?;
        let out = self.unload_on(&mut conn, req).await;
        pgsession::close_if_failed(&mut conn, &out);
        out
    }

    async fn tables(&self) -> Result<Vec<TableInfo>, WarehouseError> {
        let t = std::time::Duration::from_secs(30);
        let rows = sqlx::query(
            "SELECT c.table_schema || '.' || c.table_name AS name, c.column_name, c.udt_name
             FROM information_schema.columns c
             JOIN information_schema.tables t
               ON t.table_schema = c.table_schema AND t.table_name = c.table_name
             WHERE c.table_schema NOT IN ('pg_catalog', 'information_schema')
             ORDER BY 1, c.ordinal_position",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| pg_error(e, t))?;
        let mut out: Vec<TableInfo> = Vec::new();
        for r in rows {
            let name: String = r.get("name");
            let col = Column {
                name: r.get("column_name"),
                redshift_type: redshift_type_for_postgres(&r.get::<String, _>("udt_name"))
                    .to_string(),
            };
            match out.last_mut() {
                Some(t) if t.name == name => t.columns.push(col),
                _ => out.push(TableInfo {
                    name,
                    rows: None,
                    bytes: None,
                    columns: vec![col],
                }),
            }
        }
        Ok(out)
    }

    async fn load(
        &self,
        table: &TableName,
        files: &[PathBuf],
        opts: &LoadOptions,
    ) -> Result<LoadReport, WarehouseError> {
        use crate::load::{self, Dialect, LoadMode};
        let file = load::single_file(files, "PostgreSQL")?;
        if !matches!(opts.format, None | Some(crate::InputFormat::Parquet))
            || file.extension().is_none_or(|e| e != "parquet")
        {
            return Err(WarehouseError::Input {
                file: file.display().to_string(),
                message: "a PostgreSQL warehouse loads Parquet files (.parquet); for CSV use \
                          psql's \\copy"
                    .into(),
            });
        }
        let schema = load::parquet_schema(file, Dialect::Postgres)?;
        let mode = LoadMode::of(opts);
        let none = std::time::Duration::ZERO;
        let mut conn = self.pool.acquire().await.map_err(|e| pg_error(e, none))?;
        let out = load_on(&mut conn, table, file, &schema, &mode).await;
        pgsession::close_if_failed(&mut conn, &out);
        let rows = out?;
        Ok(LoadReport {
            table: table.to_string(),
            rows,
            files: 1,
            replaced: mode == LoadMode::Replace,
        })
    }

    async fn drop_table(&self, _table: &TableName) -> Result<bool, WarehouseError> {
        Err(WarehouseError::Unsupported(
            "kondate never drops tables in a PostgreSQL or Redshift warehouse; use psql".into(),
        ))
    }
}

/// [`Warehouse::load`]'s statements on one connection, in one transaction; the rows copied.
async fn load_on(
    conn: &mut PgConnection,
    table: &TableName,
    file: &std::path::Path,
    schema: &arrow::datatypes::Schema,
    mode: &crate::load::LoadMode,
) -> Result<u64, WarehouseError> {
    use crate::load::{self, Dialect, LoadMode, STAGE};
    let none = std::time::Duration::ZERO;
    let t = load::quote_table(table)?;
    let cols = load::column_list(schema)?;
    let mut tx = conn.begin().await.map_err(|e| pg_error(e, none))?;
    let mut before = vec![
        format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            load::quote_ident(&table.schema)?
        ),
        load::create_sql(Dialect::Postgres, table, schema)?,
    ];
    let target = match &mode {
        LoadMode::Replace => {
            before.push(format!("DELETE FROM {t}"));
            t.clone()
        }
        LoadMode::Append => t.clone(),
        LoadMode::Merge(_) => {
            before.push(format!(
                "CREATE TEMP TABLE {STAGE} (LIKE {t}) ON COMMIT DROP"
            ));
            STAGE.to_string()
        }
    };
    let after = match &mode {
        LoadMode::Merge(key) => load::merge_sql(table, schema, key)?,
        _ => Vec::new(),
    };
    for sql in before {
        tx.execute(AssertSqlSafe(sql))
            .await
            .map_err(|e| pg_error(e, none))?;
    }
    let rows = copy_parquet(&mut tx, file, &format!("COPY {target} ({cols}) FROM STDIN")).await?;
    for sql in after {
        tx.execute(AssertSqlSafe(sql))
            .await
            .map_err(|e| pg_error(e, none))?;
    }
    tx.commit().await.map_err(|e| pg_error(e, none))?;
    Ok(rows)
}

/// Stream the rows of a Parquet file through `copy` (a `COPY … FROM STDIN`), in batches;
/// returns the rows sent.
async fn copy_parquet(
    conn: &mut sqlx::PgConnection,
    file: &std::path::Path,
    copy: &str,
) -> Result<u64, WarehouseError> {
    let none = std::time::Duration::ZERO;
    let input = |e: &dyn std::fmt::Display| WarehouseError::Input {
        file: file.display().to_string(),
        message: e.to_string(),
    };
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(file).map_err(|e| input(&e))?,
    )
    .and_then(|b| b.with_batch_size(8192).build())
    .map_err(|e| input(&e))?;
    let mut sink = conn
        .copy_in_raw(copy)
        .await
        .map_err(|e| pg_error(e, none))?;
    let mut rows = 0u64;
    let mut buf = Vec::with_capacity(CHUNK);
    for batch in reader {
        let batch = batch.map_err(|e| input(&e))?;
        rows += batch.num_rows() as u64;
        crate::load::encode_copy_text(&batch, &mut buf)?;
        if buf.len() >= CHUNK {
            sink.send(std::mem::take(&mut buf))
                .await
                .map_err(|e| pg_error(e, none))?;
        }
    }
    if !buf.is_empty() {
        sink.send(buf).await.map_err(|e| pg_error(e, none))?;
    }
    sink.finish().await.map_err(|e| pg_error(e, none))?;
    Ok(rows)
}
