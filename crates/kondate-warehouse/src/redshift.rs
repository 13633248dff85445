//! Redshift as the warehouse: the SELECT is wrapped in the same `UNLOAD` statement the seed
//! system generated, Redshift writes the gzip CSV parts and the manifest straight to S3, and
//! kondate reads the manifest back. No Redshift runs here, so the generated SQL and the
//! manifest handling are unit-tested exactly.

use std::path::PathBuf;

use async_trait::async_trait;
use kondate_core::{Config, WarehouseKind};
use kondate_store::Store;
use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, Connection, Executor};

use crate::pgsession::{self, Engine};
use crate::postgres::pg_error;
use crate::unload::{self, Column, Manifest, ResultFormat};
use crate::{
    LoadOptions, LoadReport, TableInfo, TableName, UnloadOutput, UnloadRequest, Warehouse,
    WarehouseError,
};

/// Quote a string literal for Redshift: single quotes doubled, and backslashes doubled
/// because Redshift treats `\` in literals as an escape. The one place kondate builds a
/// Redshift literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// A dollar-quote tag that does not occur in `select`.
pub fn dollar_tag(select: &str) -> String {
    loop {
        let tag = format!("$kondate{:016x}$", rand::random::<u64>());
        if !select.contains(&tag) {
            return tag;
        }
    }
}

/// The UNLOAD statement for `select`, writing under `to` (an `s3://…/result.csv.` prefix).
///
/// CSV is the seed system's statement. Parquet uses `format as parquet`, which Redshift does
/// not allow together with gzip, delimiter, escape or addquotes.
pub fn unload_sql(
    select: &str,
    to: &str,
    iam_role: &str,
    format: ResultFormat,
    manifest: bool,
    tag: &str,
) -> String {
    assert!(
        !select.contains(tag),
        "the dollar tag must not occur in the SELECT"
    );
    let options = match format {
        ResultFormat::Csv => "gzip allowoverwrite delimiter ',' escape addquotes",
        ResultFormat::Parquet => "format as parquet allowoverwrite",
    };
    format!(
        "unload ({tag}{select}{tag}) to {} iam_role {} {options}{}",
        quote_literal(to),
        quote_literal(iam_role),
        if manifest { " manifest verbose" } else { "" }
    )
}

/// Turn the manifest Redshift wrote into our output: data-file URLs (`s3://bucket/key`)
/// become keys relative to the store at `store_url`.
pub fn output_from_manifest(
    manifest: &Manifest,
    store_url: &str,
    manifest_key: String,
) -> Result<UnloadOutput, WarehouseError> {
    let base = format!("{}/", store_url.trim_end_matches('/'));
    let data_files = manifest
        .entries
        .iter()
        .map(|e| {
            e.url
                .strip_prefix(&base)
                .map(str::to_string)
                .ok_or_else(|| {
                    WarehouseError::Engine(format!(
                        "UNLOAD wrote {} outside the configured store {store_url}; set \
                     warehouse.unload_url inside store.url",
                        e.url
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(UnloadOutput {
        data_files,
        manifest_key,
        record_count: manifest.meta.record_count,
        columns: manifest
            .schema
            .elements
            .iter()
            .map(|e| Column {
                name: e.name.clone(),
                redshift_type: e.type_.base.clone(),
            })
            .collect(),
    })
}

/// A Redshift warehouse.
#[derive(Debug, Clone)]
pub struct RedshiftWarehouse {
    pool: PgPool,
    store: Store,
    iam_role: String,
    /// The S3 URL UNLOAD writes under, equal to the store's URL.
    store_url: String,
}

impl RedshiftWarehouse {
    /// Connect to Redshift (PostgreSQL protocol).
    pub async fn connect(config: &Config, store: Store) -> Result<Self, WarehouseError> {
        let url = config.warehouse.url.as_deref().unwrap_or_default();
        let store_url = config
            .warehouse
            .unload_url
            .clone()
            .unwrap_or_else(|| store.url().to_string());
        if !store_url.starts_with("s3://") {
            return Err(WarehouseError::Unsupported(
                "Redshift UNLOAD writes to S3: set store.url to s3://bucket/prefix".into(),
            ));
        }
        let pool = pgsession::connect(url, Engine::Redshift, 4, "Redshift").await?;
        pgsession::check_role(
            &pool,
            Engine::Redshift,
            config.warehouse.allow_privileged_role,
        )
        .await?;
        Ok(Self {
            pool,
            store,
            iam_role: config.warehouse.iam_role.clone().unwrap_or_default(),
            store_url,
        })
    }
}

#[async_trait]
impl Warehouse for RedshiftWarehouse {
    fn kind(&self) -> WarehouseKind {
        WarehouseKind::Redshift
    }

    async fn unload(&self, req: &UnloadRequest) -> Result<UnloadOutput, WarehouseError> {
        let t = req.statement_timeout;
        let to = format!(
            "{}/{}{}",
            self.store_url.trim_end_matches('/'),
            req.prefix,
            unload::RESULT_STEM
        );
        let sql = unload_sql(
            &req.select,
            &to,
            &self.iam_role,
            req.format,
            true,
            &dollar_tag(&req.select),
        );
        let mut conn = self.pool.acquire().await.map_err(|e| pg_error(e, t))?;
        let out = async {
            let mut tx = conn.begin().await.map_err(|e| pg_error(e, t))?;
            tx.execute(AssertSqlSafe(format!(
                "SET statement_timeout TO {}",
                t.as_millis().max(1)
            )))
            .await
            .map_err(|e| pg_error(e, t))?;
            tx.execute(AssertSqlSafe(sql))
                .await
                .map_err(|e| pg_error(e, t))?;
            tx.commit().await.map_err(|e| pg_error(e, t))
        }
        .await;
        pgsession::close_if_failed(&mut conn, &out);
        out?;
        let key = unload::manifest_key(&req.prefix);
        let manifest: Manifest =
            serde_json::from_slice(&self.store.get(&key).await?).map_err(|e| {
                WarehouseError::Engine(format!("the UNLOAD manifest is unreadable: {e}"))
            })?;
        output_from_manifest(&manifest, &self.store_url, key)
    }

    async fn tables(&self) -> Result<Vec<TableInfo>, WarehouseError> {
        Err(WarehouseError::Unsupported(
            "listing Redshift tables is not implemented yet; use SVV_TABLES".into(),
        ))
    }

    /// Stage the Parquet file in S3 (in the store, which Redshift reads) and run the
    /// statements of [`crate::load::redshift_load_sql`] in one transaction; the staged
    /// file is deleted afterwards, loaded or not.
    async fn load(
        &self,
        table: &TableName,
        files: &[PathBuf],
        opts: &LoadOptions,
    ) -> Result<LoadReport, WarehouseError> {
        use crate::load::{self, Dialect, LoadMode};
        let file = load::single_file(files, "Redshift")?;
        let schema = load::parquet_schema(file, Dialect::Redshift)?;
        let mode = LoadMode::of(opts);
        let folder = format!(
            "_kondate/loads/{}-{:08x}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S"),
            rand::random::<u32>()
        );
        self.store
            .put_file(&format!("{folder}/part-000.parquet"), file, false)
            .await?;
        let prefix = format!("{}/{folder}/", self.store_url.trim_end_matches('/'));
        let result = async {
            let none = std::time::Duration::ZERO;
            let mut conn = self.pool.acquire().await.map_err(|e| pg_error(e, none))?;
            for sql in load::redshift_load_sql(table, &schema, &prefix, &self.iam_role, &mode)? {
                if let Err(e) = conn.execute(AssertSqlSafe(sql)).await {
                    let _ = conn.execute("ROLLBACK").await;
                    let failed = Err(pg_error(e, none));
                    pgsession::close_if_failed(&mut conn, &failed);
                    return failed;
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = self.store.delete_prefix(&folder).await {
            tracing::warn!(folder, error = %e, "could not delete a staged load");
        }
        result?;
        let rows = parquet::file::reader::FileReader::metadata(
            &parquet::file::serialized_reader::SerializedFileReader::new(
                std::fs::File::open(file).map_err(|e| WarehouseError::Input {
                    file: file.display().to_string(),
                    message: e.to_string(),
                })?,
            )
            .map_err(|e| WarehouseError::Engine(e.to_string()))?,
        )
        .file_metadata()
        .num_rows() as u64;
        Ok(LoadReport {
            table: table.to_string(),
            rows,
            files: 1,
            replaced: mode == LoadMode::Replace,
        })
    }

    async fn drop_table(&self, _table: &TableName) -> Result<bool, WarehouseError> {
        Err(WarehouseError::Unsupported(
            "kondate never drops tables in a Redshift warehouse".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::123456789012:role/unload";

    #[test]
    fn unload_statement_matches_the_seed_system() {
        let sql = unload_sql(
            "select id, title from recipes where title like '%醤油%'",
            "s3://bucket/kondate/queries/7/result.csv.",
            ROLE,
            ResultFormat::Csv,
            true,
            "$kondate00000000000000aa$",
        );
        assert_eq!(
            sql,
            "unload ($kondate00000000000000aa$select id, title from recipes where title like '%醤油%'$kondate00000000000000aa$) \
             to 's3://bucket/kondate/queries/7/result.csv.' iam_role 'arn:aws:iam::123456789012:role/unload' \
             gzip allowoverwrite delimiter ',' escape addquotes manifest verbose"
        );
        let no_manifest = unload_sql(
            "select 1",
            "s3://b/p.",
            ROLE,
            ResultFormat::Csv,
            false,
            "$t$",
        );
        assert!(no_manifest.ends_with("escape addquotes"), "{no_manifest}");
    }

    #[test]
    fn parquet_unload_uses_format_as_parquet_without_csv_options() {
        let sql = unload_sql(
            "select 1",
            "s3://b/q/result.csv.",
            ROLE,
            ResultFormat::Parquet,
            true,
            "$t$",
        );
        assert_eq!(
            sql,
            "unload ($t$select 1$t$) to 's3://b/q/result.csv.' iam_role \
             'arn:aws:iam::123456789012:role/unload' format as parquet allowoverwrite manifest verbose"
        );
    }

    #[test]
    fn adversarial_select_text_cannot_break_out_of_the_dollar_quotes() {
        let nasty =
            "select '$$) to ''s3://evil/'' --', $kondate$, $kondate0000000000000001$ from t";
        let tag = dollar_tag(nasty);
        assert!(!nasty.contains(&tag));
        let sql = unload_sql(nasty, "s3://b/p.", ROLE, ResultFormat::Csv, true, &tag);
        // The tag opens and closes the SELECT exactly once each.
        assert_eq!(sql.matches(&tag).count(), 2);
        let inner = sql.split(&tag).nth(1).unwrap();
        assert_eq!(inner, nasty);
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(quote_literal("s3://b/it's\\x"), "'s3://b/it''s\\\\x'");
    }

    #[test]
    fn manifest_urls_become_store_keys() {
        let m: Manifest = serde_json::from_str(
            r#"{"entries":[{"url":"s3://b/pre/queries/1/result.csv.0000_part_00.gz","meta":{"content_length":10,"record_count":2}}],
                "schema":{"elements":[{"name":"id","type":{"base":"integer"}}]},
                "meta":{"content_length":10,"record_count":2},"author":{"name":"Amazon Redshift","version":"1.0.0"}}"#,
        )
        .unwrap();
        let out =
            output_from_manifest(&m, "s3://b/pre", "queries/1/result.csv.manifest".into()).unwrap();
        assert_eq!(out.data_files, vec!["queries/1/result.csv.0000_part_00.gz"]);
        assert_eq!(out.record_count, 2);
        assert_eq!(out.columns[0].redshift_type, "integer");
        let err = output_from_manifest(&m, "s3://other", "k".into()).unwrap_err();
        assert!(
            err.to_string().contains("outside the configured store"),
            "{err}"
        );
    }
}
