//! PostgreSQL as the warehouse: the SELECT runs inside a READ ONLY transaction as
//! `COPY (…) TO STDOUT`, and the rows are re-encoded into UNLOAD-format gzip CSV parts by
//! parallel workers. Redshift speaks the same protocol, so the tests use this path as its
//! stand-in.

use std::path::PathBuf;

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use futures::StreamExt;
use kondate_core::WarehouseKind;
use kondate_store::Store;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{
    AssertSqlSafe, Column as _, Connection, Executor, Row, SqlSafeStr, Statement, TypeInfo,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::types::redshift_type_for_postgres;
use crate::unload::{self, Column, CsvPartWriter, ResultFormat};
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
    /// Connect to the warehouse database.
    pub async fn connect(url: &str, store: Store) -> Result<Self, WarehouseError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| {
                WarehouseError::Engine(format!(
                    "cannot connect to the PostgreSQL warehouse at {}: {e}",
                    kondate_core::config::redact_url(url)
                ))
            })?;
        Ok(Self { pool, store })
    }
}

/// Convert complete lines of PostgreSQL COPY text format into UNLOAD CSV rows.
///
/// Text format: fields separated by tab, `\N` for NULL, backslash escapes for `\\`, `\b`,
/// `\f`, `\n`, `\r`, `\t`, `\v` and octal/hex byte escapes. One pass over each line: runs of
/// ordinary bytes are copied whole, as [`push_field`] does.
pub fn pg_text_to_unload(lines: &[u8], out: &mut Vec<u8>) -> u64 {
    let mut rows = 0;
    out.reserve(lines.len() + lines.len() / 8);
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', lines).chain(std::iter::once(lines.len()));
    for end in ends {
        let line = &lines[start..end];
        start = end + 1;
        if line.is_empty() {
            continue;
        }
        rows += 1;
        convert_line(line, out);
        out.push(b'\n');
    }
    rows
}

/// What a byte of a COPY text line means.
const PLAIN: u8 = 0;
const TAB: u8 = 1;
const BACKSLASH: u8 = 2;
/// Needs a backslash in UNLOAD's format ([`unload::ESCAPED`]).
const QUOTE: u8 = 3;
const CLASS: [u8; 256] = {
    let mut t = [PLAIN; 256];
    let mut b = 0;
    while b < 256 {
        if unload::ESCAPED[b] {
            t[b] = QUOTE;
        }
        b += 1;
    }
    t[b'\t' as usize] = TAB;
    t[b'\\' as usize] = BACKSLASH;
    t
};

/// Push one unescaped byte in UNLOAD's form.
#[inline]
fn push_byte(out: &mut Vec<u8>, b: u8) {
    if unload::ESCAPED[b as usize] {
        out.push(b'\\');
    }
    out.push(b);
}

fn convert_line(line: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    loop {
        // A field starts at `i`.
        let rest = &line[i..];
        if rest.starts_with(b"\\N") && matches!(rest.get(2), None | Some(b'\t')) {
            out.extend_from_slice(b"\"\"");
            i += 2;
        } else {
            out.push(b'"');
            let mut run = i;
            while i < line.len() {
                match CLASS[line[i] as usize] {
                    PLAIN => i += 1,
                    TAB => break,
                    QUOTE => {
                        out.extend_from_slice(&line[run..i]);
                        out.push(b'\\');
                        run = i;
                        i += 1;
                    }
                    _ => {
                        out.extend_from_slice(&line[run..i]);
                        i = unescape(line, i + 1, out);
                        run = i;
                    }
                }
            }
            out.extend_from_slice(&line[run..i]);
            out.push(b'"');
        }
        if i >= line.len() {
            return;
        }
        out.push(b',');
        i += 1; // the tab
    }
}

/// Decode the escape whose backslash ends just before `i`; returns where the line goes on.
fn unescape(line: &[u8], i: usize, out: &mut Vec<u8>) -> usize {
    let Some(&c) = line.get(i) else {
        push_byte(out, b'\\');
        return i;
    };
    let radix_digits = |radix: u32, from: usize, max: usize| {
        let mut v = 0u32;
        let mut n = 0;
        while n < max {
            match line
                .get(from + n)
                .and_then(|d| (*d as char).to_digit(radix))
            {
                Some(d) => v = v * radix + d,
                None => break,
            }
            n += 1;
        }
        (v as u8, from + n)
    };
    let (byte, next) = match c {
        b'b' => (0x08, i + 1),
        b'f' => (0x0c, i + 1),
        b'n' => (b'\n', i + 1),
        b'r' => (b'\r', i + 1),
        b't' => (b'\t', i + 1),
        b'v' => (0x0b, i + 1),
        b'0'..=b'7' => radix_digits(8, i, 3),
        b'x' => radix_digits(16, i + 1, 2),
        other => (other, i + 1),
    };
    push_byte(out, byte);
    next
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

#[async_trait]
impl Warehouse for PostgresWarehouse {
    fn kind(&self) -> WarehouseKind {
        WarehouseKind::Postgres
    }

    async fn unload(&self, req: &UnloadRequest) -> Result<UnloadOutput, WarehouseError> {
        if req.format == ResultFormat::Parquet {
            return Err(WarehouseError::Unsupported(
                "format=parquet is available on the embedded warehouse only; use format=csv \
                 with PostgreSQL"
                    .into(),
            ));
        }
        let t = req.statement_timeout;
        let mut conn = self.pool.acquire().await.map_err(|e| pg_error(e, t))?;
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
        let columns: Vec<Column> = stmt
            .columns()
            .iter()
            .map(|c| Column {
                name: c.name().to_string(),
                redshift_type: redshift_type_for_postgres(c.type_info().name()).to_string(),
            })
            .collect();
        let parts = if req.ordered { 1 } else { req.parts.max(1) };
        let mut tasks = JoinSet::new();
        let mut senders = Vec::new();
        for i in 0..parts {
            let (tx_chunk, rx) = mpsc::channel::<BytesMut>(2);
            senders.push(tx_chunk);
            tasks.spawn(csv_worker(
                self.store.clone(),
                unload::part_key(&req.prefix, i, req.format),
                req.gzip_level,
                rx,
            ));
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
        _table: &TableName,
        _files: &[PathBuf],
        _opts: &LoadOptions,
    ) -> Result<LoadReport, WarehouseError> {
        Err(WarehouseError::Unsupported(
            "`warehouse load` writes the embedded warehouse only; load a PostgreSQL warehouse \
             with psql's \\copy"
                .into(),
        ))
    }

    async fn drop_table(&self, _table: &TableName) -> Result<bool, WarehouseError> {
        Err(WarehouseError::Unsupported(
            "kondate never drops tables in a PostgreSQL or Redshift warehouse; use psql".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unload::push_field;

    #[test]
    fn copy_text_rows_become_unload_csv() {
        let input = b"1\tplain\t\\N\tt\n2\ttab\\there\tline\\nbreak\tf\n3\tq\"uote,comma\tback\\\\slash\t\\101\n";
        let mut out = Vec::new();
        assert_eq!(pg_text_to_unload(input, &mut out), 3);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        assert_eq!(lines[0], "\"1\",\"plain\",\"\",\"t\"\n");
        assert_eq!(lines[1], "\"2\",\"tab\there\",\"line\\\n");
        assert_eq!(lines[2], "break\",\"f\"\n");
        assert_eq!(
            lines[3],
            "\"3\",\"q\\\"uote\\,comma\",\"back\\\\slash\",\"A\"\n"
        );
    }
    /// The obvious, slow conversion: split into fields at tabs that no backslash escapes
    /// (as PostgreSQL's COPY FROM reads them), decode each field, then quote it.
    fn reference(line: &[u8]) -> Vec<u8> {
        let mut fields: Vec<&[u8]> = Vec::new();
        let (mut start, mut j) = (0, 0);
        while j < line.len() {
            match line[j] {
                b'\\' => j += 2,
                b'\t' => {
                    fields.push(&line[start..j]);
                    j += 1;
                    start = j;
                }
                _ => j += 1,
            }
        }
        fields.push(&line[start.min(line.len())..]);
        let mut out = Vec::new();
        for (i, raw) in fields.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if raw == b"\\N" {
                push_field(&mut out, None);
                continue;
            }
            let mut field = Vec::new();
            let mut j = 0;
            while j < raw.len() {
                if raw[j] != b'\\' {
                    field.push(raw[j]);
                    j += 1;
                    continue;
                }
                j += 1;
                let digits = |radix: u32, from: usize, max: usize| {
                    let n = raw[from.min(raw.len())..]
                        .iter()
                        .take(max)
                        .take_while(|d| (**d as char).is_digit(radix))
                        .count();
                    let text = std::str::from_utf8(&raw[from..from + n]).unwrap();
                    (
                        u32::from_str_radix(text, radix).unwrap_or(0) as u8,
                        from + n,
                    )
                };
                let (b, next) = match raw.get(j) {
                    None => (b'\\', j),
                    Some(b'n') => (b'\n', j + 1),
                    Some(b't') => (b'\t', j + 1),
                    Some(b'r') => (b'\r', j + 1),
                    Some(b'b') => (8, j + 1),
                    Some(b'f') => (12, j + 1),
                    Some(b'v') => (11, j + 1),
                    Some(b'0'..=b'7') => digits(8, j, 3),
                    Some(b'x') => digits(16, j + 1, 2),
                    Some(other) => (*other, j + 1),
                };
                field.push(b);
                j = next;
            }
            push_field(&mut out, Some(&field));
        }
        out.push(b'\n');
        out
    }

    #[test]
    fn one_pass_conversion_matches_the_obvious_one() {
        use rand::{Rng, SeedableRng};
        let alphabet = b"ab,\"\\\t\rNnrtx017fF9 ";
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let len = rng.random_range(1..24);
            let line: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let mut out = Vec::new();
            pg_text_to_unload(&line, &mut out);
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&reference(&line)),
                "{:?}",
                String::from_utf8_lossy(&line)
            );
        }
    }
}
