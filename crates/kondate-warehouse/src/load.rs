//! Loading Parquet files into a PostgreSQL or Redshift warehouse table: the statements
//! (create, replace, append, merge by key) and, for PostgreSQL, the Arrow → `COPY` text
//! encoding. Redshift's statements are generated here and unit-tested exactly; no Redshift
//! runs here.

use std::fmt::Write as _;
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Schema,
    TimeUnit, TimestampMillisecondType,
};

use crate::{LoadOptions, TableName, WarehouseError};

/// What a load does to the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadMode {
    /// The table holds exactly the input afterwards.
    Replace,
    /// The input is added to the table.
    Append,
    /// Rows whose key occurs in the input are replaced, the others kept.
    Merge(Vec<String>),
}

impl LoadMode {
    pub fn of(opts: &LoadOptions) -> LoadMode {
        match (&opts.merge_key, opts.append) {
            (Some(k), _) => LoadMode::Merge(k.clone()),
            (None, true) => LoadMode::Append,
            (None, false) => LoadMode::Replace,
        }
    }
}

/// Which SQL dialect the statements are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Redshift,
}

/// Quote a column or table name for PostgreSQL and Redshift: the one place a name goes into
/// a warehouse statement. Names are checked first (letters, digits, `_`), so no quote can
/// occur inside.
pub fn quote_ident(name: &str) -> Result<String, WarehouseError> {
    kondate_core::names::validate_name("column name", name)?;
    Ok(format!("\"{name}\""))
}

/// `"schema"."table"`.
pub fn quote_table(t: &TableName) -> Result<String, WarehouseError> {
    Ok(format!(
        "{}.{}",
        quote_ident(&t.schema)?,
        quote_ident(&t.table)?
    ))
}

/// The column type for an Arrow type, or why it cannot be loaded.
pub fn sql_type(
    dialect: Dialect,
    field: &str,
    t: &DataType,
) -> Result<&'static str, WarehouseError> {
    Ok(match (dialect, t) {
        (_, DataType::Int16) => "SMALLINT",
        (_, DataType::Int32) => "INTEGER",
        (_, DataType::Int64) => "BIGINT",
        (_, DataType::Float32) => "REAL",
        (_, DataType::Float64) => "DOUBLE PRECISION",
        (_, DataType::Boolean) => "BOOLEAN",
        (_, DataType::Date32) => "DATE",
        (_, DataType::Timestamp(TimeUnit::Millisecond, None)) => "TIMESTAMP",
        (_, DataType::Timestamp(TimeUnit::Millisecond, Some(_))) => "TIMESTAMPTZ",
        (Dialect::Postgres, DataType::Utf8 | DataType::LargeUtf8) => "TEXT",
        // Redshift's longest text; TEXT there would be VARCHAR(256).
        (Dialect::Redshift, DataType::Utf8 | DataType::LargeUtf8) => "VARCHAR(65535)",
        (_, other) => {
            return Err(WarehouseError::Unsupported(format!(
                "column `{field}` has type {other}, which kondate does not load into a \
                 PostgreSQL or Redshift warehouse (integers, floats, text, booleans, dates and \
                 millisecond timestamps are loaded)"
            )));
        }
    })
}

/// `CREATE TABLE IF NOT EXISTS` for the schema.
pub fn create_sql(
    dialect: Dialect,
    table: &TableName,
    schema: &Schema,
) -> Result<String, WarehouseError> {
    Ok(format!(
        "CREATE TABLE IF NOT EXISTS {} ({})",
        quote_table(table)?,
        column_defs(dialect, schema)?
    ))
}

/// `"name" TYPE, …` for the schema's columns.
fn column_defs(dialect: Dialect, schema: &Schema) -> Result<String, WarehouseError> {
    Ok(schema
        .fields()
        .iter()
        .map(|f| {
            Ok(format!(
                "{} {}",
                quote_ident(f.name())?,
                sql_type(dialect, f.name(), f.data_type())?
            ))
        })
        .collect::<Result<Vec<_>, WarehouseError>>()?
        .join(", "))
}

/// The staging table a merge loads into before it changes the table.
pub const STAGE: &str = "kondate_load_stage";

/// After the input is in the stage: delete the table's rows the stage replaces, insert
/// the stage.
pub fn merge_sql(
    table: &TableName,
    schema: &Schema,
    key: &[String],
) -> Result<Vec<String>, WarehouseError> {
    let t = quote_table(table)?;
    if key.is_empty() {
        return Err(WarehouseError::Unsupported(
            "a merge needs at least one key column".into(),
        ));
    }
    for k in key {
        if schema.field_with_name(k).is_err() {
            return Err(WarehouseError::Unsupported(format!(
                "merge key `{k}` is not a column of the input"
            )));
        }
    }
    let on = key
        .iter()
        .map(|k| quote_ident(k).map(|q| format!("{t}.{q} = {STAGE}.{q}")))
        .collect::<Result<Vec<_>, _>>()?
        .join(" AND ");
    let cols = column_list(schema)?;
    Ok(vec![
        format!("DELETE FROM {t} USING {STAGE} WHERE {on}"),
        format!("INSERT INTO {t} ({cols}) SELECT {cols} FROM {STAGE}"),
    ])
}

/// The input's columns, quoted and comma-separated.
pub fn column_list(schema: &Schema) -> Result<String, WarehouseError> {
    Ok(schema
        .fields()
        .iter()
        .map(|f| quote_ident(f.name()))
        .collect::<Result<Vec<_>, _>>()?
        .join(", "))
}

/// Every statement of a Redshift load of the Parquet files under `s3_prefix` (a folder
/// URL ending in `/`), in one transaction. Redshift's `COPY … FORMAT AS PARQUET` takes
/// the files' columns in order and allows no column list, so the input goes into a
/// temporary stage shaped like the input, and from there into the table by name.
pub fn redshift_load_sql(
    table: &TableName,
    schema: &Schema,
    s3_prefix: &str,
    iam_role: &str,
    mode: &LoadMode,
) -> Result<Vec<String>, WarehouseError> {
    use crate::redshift::quote_literal;
    let t = quote_table(table)?;
    let cols = column_list(schema)?;
    let mut sql = vec![
        "BEGIN".to_string(),
        format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote_ident(&table.schema)?
        ),
        create_sql(Dialect::Redshift, table, schema)?,
        format!(
            "CREATE TEMP TABLE {STAGE} ({})",
            column_defs(Dialect::Redshift, schema)?
        ),
        format!(
            "COPY {STAGE} FROM {} IAM_ROLE {} FORMAT AS PARQUET",
            quote_literal(s3_prefix),
            quote_literal(iam_role)
        ),
    ];
    match mode {
        // DELETE, not TRUNCATE: Redshift's TRUNCATE commits the transaction.
        LoadMode::Replace => {
            sql.push(format!("DELETE FROM {t}"));
            sql.push(format!(
                "INSERT INTO {t} ({cols}) SELECT {cols} FROM {STAGE}"
            ));
        }
        LoadMode::Append => {
            sql.push(format!(
                "INSERT INTO {t} ({cols}) SELECT {cols} FROM {STAGE}"
            ));
        }
        LoadMode::Merge(key) => sql.extend(merge_sql(table, schema, key)?),
    }
    sql.push(format!("DROP TABLE {STAGE}"));
    sql.push("COMMIT".to_string());
    Ok(sql)
}

/// The one file a PostgreSQL or Redshift load takes (`warehouse` names it in the message).
pub fn single_file<'a>(
    files: &'a [std::path::PathBuf],
    warehouse: &str,
) -> Result<&'a Path, WarehouseError> {
    match files {
        [file] => Ok(file),
        _ => Err(WarehouseError::Unsupported(format!(
            "a {warehouse} warehouse loads one Parquet file at a time, and {} were given; load \
             them one by one with --append (or --merge-key), or combine them into one file",
            files.len()
        ))),
    }
}

/// Read the Arrow schema of a Parquet file, and check that it can be loaded.
pub fn parquet_schema(path: &Path, dialect: Dialect) -> Result<Schema, WarehouseError> {
    let file = std::fs::File::open(path).map_err(|e| WarehouseError::Input {
        file: path.display().to_string(),
        message: format!("cannot open: {e}"),
    })?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| WarehouseError::Input {
            file: path.display().to_string(),
            message: format!("not a readable Parquet file: {e}"),
        })?;
    let schema = builder.schema().as_ref().clone();
    for f in schema.fields() {
        sql_type(dialect, f.name(), f.data_type()).map_err(|e| WarehouseError::Input {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
    }
    Ok(schema)
}

/// Append one batch to `out` in PostgreSQL's `COPY` text format: tab-separated, `\N` for
/// NULL, backslash escapes for backslash, tab, newline and carriage return. Hand-written
/// because no crate encodes Arrow to `COPY` text; the types are those [`sql_type`] accepts.
pub fn encode_copy_text(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), WarehouseError> {
    use kondate_core::pgcopy;
    let mut text = String::new();
    for row in 0..batch.num_rows() {
        for (i, col) in batch.columns().iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            if col.is_null(row) {
                out.extend_from_slice(pgcopy::NULL);
                continue;
            }
            text.clear();
            match col.data_type() {
                DataType::Int16 => write!(text, "{}", col.as_primitive::<Int16Type>().value(row)),
                DataType::Int32 => write!(text, "{}", col.as_primitive::<Int32Type>().value(row)),
                DataType::Int64 => write!(text, "{}", col.as_primitive::<Int64Type>().value(row)),
                DataType::Float32 => {
                    pgcopy::push_float(out, col.as_primitive::<Float32Type>().value(row) as f64);
                    continue;
                }
                DataType::Float64 => {
                    pgcopy::push_float(out, col.as_primitive::<Float64Type>().value(row));
                    continue;
                }
                DataType::Boolean => {
                    out.push(if col.as_boolean().value(row) {
                        b't'
                    } else {
                        b'f'
                    });
                    continue;
                }
                DataType::Date32 => {
                    let days = col.as_primitive::<Date32Type>().value(row);
                    let d = chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163)
                        .ok_or_else(|| out_of_range(batch, i, row))?;
                    write!(text, "{}", d.format("%Y-%m-%d"))
                }
                DataType::Timestamp(TimeUnit::Millisecond, tz) => {
                    let ms = col.as_primitive::<TimestampMillisecondType>().value(row);
                    let t = chrono::DateTime::from_timestamp_millis(ms)
                        .ok_or_else(|| out_of_range(batch, i, row))?;
                    let suffix = if tz.is_some() { "+00" } else { "" };
                    write!(text, "{}{suffix}", t.format("%Y-%m-%d %H:%M:%S%.3f"))
                }
                DataType::Utf8 => {
                    pgcopy::push_text(out, col.as_string::<i32>().value(row));
                    continue;
                }
                DataType::LargeUtf8 => {
                    pgcopy::push_text(out, col.as_string::<i64>().value(row));
                    continue;
                }
                other => {
                    return Err(WarehouseError::Unsupported(format!(
                        "column `{}` has type {other}, which cannot be loaded",
                        batch.schema().field(i).name()
                    )));
                }
            }
            .expect("writing to a String cannot fail");
            out.extend_from_slice(text.as_bytes());
        }
        out.push(b'\n');
    }
    Ok(())
}

fn out_of_range(batch: &RecordBatch, col: usize, row: usize) -> WarehouseError {
    WarehouseError::Unsupported(format!(
        "column `{}`, row {}: the value is outside the range PostgreSQL can hold",
        batch.schema().field(col).name(),
        row + 1
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        BooleanArray, Date32Array, Float64Array, Int64Array, StringArray, TimestampMillisecondArray,
    };
    use arrow::datatypes::Field;

    use super::*;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("recipe_id", DataType::Int64, false),
            Field::new("category", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
            Field::new(
                "updated_at",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
        ])
    }

    #[test]
    fn redshift_merge_statements_are_exact() {
        let t = TableName::parse("results.recipe_categories").unwrap();
        let sql = redshift_load_sql(
            &t,
            &schema(),
            "s3://bucket/kondate/loads/20261127-ab/",
            "arn:aws:iam::123456789012:role/load",
            &LoadMode::Merge(vec!["recipe_id".into()]),
        )
        .unwrap();
        assert_eq!(
            sql,
            [
                "BEGIN",
                "CREATE SCHEMA IF NOT EXISTS \"results\"",
                "CREATE TABLE IF NOT EXISTS \"results\".\"recipe_categories\" (\"recipe_id\" BIGINT, \"category\" VARCHAR(65535), \"score\" DOUBLE PRECISION, \"updated_at\" TIMESTAMPTZ)",
                "CREATE TEMP TABLE kondate_load_stage (\"recipe_id\" BIGINT, \"category\" VARCHAR(65535), \"score\" DOUBLE PRECISION, \"updated_at\" TIMESTAMPTZ)",
                "COPY kondate_load_stage FROM 's3://bucket/kondate/loads/20261127-ab/' IAM_ROLE 'arn:aws:iam::123456789012:role/load' FORMAT AS PARQUET",
                "DELETE FROM \"results\".\"recipe_categories\" USING kondate_load_stage WHERE \"results\".\"recipe_categories\".\"recipe_id\" = kondate_load_stage.\"recipe_id\"",
                "INSERT INTO \"results\".\"recipe_categories\" (\"recipe_id\", \"category\", \"score\", \"updated_at\") SELECT \"recipe_id\", \"category\", \"score\", \"updated_at\" FROM kondate_load_stage",
                "DROP TABLE kondate_load_stage",
                "COMMIT",
            ]
        );
    }

    #[test]
    fn redshift_replace_deletes_inside_the_transaction() {
        let t = TableName::parse("recipe_categories").unwrap();
        let sql =
            redshift_load_sql(&t, &schema(), "s3://b/p/", "role'x", &LoadMode::Replace).unwrap();
        assert!(sql.contains(&"DELETE FROM \"public\".\"recipe_categories\"".to_string()));
        assert!(!sql.iter().any(|s| s.contains("TRUNCATE")));
        // The role is a quoted literal, its quote doubled.
        assert!(
            sql[4].ends_with("IAM_ROLE 'role''x' FORMAT AS PARQUET"),
            "{}",
            sql[4]
        );
        assert_eq!(sql.first().unwrap(), "BEGIN");
        assert_eq!(sql.last().unwrap(), "COMMIT");
    }

    #[test]
    fn a_load_takes_one_file_and_says_how_to_load_more() {
        let two = [std::path::PathBuf::from("a.parquet"), "b.parquet".into()];
        let e = single_file(&two, "Redshift").unwrap_err().to_string();
        assert!(
            e.contains("a Redshift warehouse loads one Parquet file at a time, and 2"),
            "{e}"
        );
        assert!(e.contains("--append"), "{e}");
        assert_eq!(
            single_file(&two[..1], "PostgreSQL").unwrap(),
            Path::new("a.parquet")
        );
    }

    #[test]
    fn a_merge_key_must_be_a_column() {
        let t = TableName::parse("x").unwrap();
        let e = merge_sql(&t, &schema(), &["nope".into()]).unwrap_err();
        assert!(e.to_string().contains("merge key `nope`"), "{e}");
        let e = merge_sql(&t, &schema(), &[]).unwrap_err();
        assert!(e.to_string().contains("at least one key"), "{e}");
    }

    #[test]
    fn copy_text_escapes_and_spells_values_as_postgres_reads_them() {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("i", DataType::Int64, true),
                Field::new("s", DataType::Utf8, true),
                Field::new("f", DataType::Float64, true),
                Field::new("b", DataType::Boolean, true),
                Field::new("d", DataType::Date32, true),
                Field::new(
                    "t",
                    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                    true,
                ),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![Some(-7), None])),
                Arc::new(StringArray::from(vec![Some("a\tb\\c\nd\re 醤油"), None])),
                Arc::new(Float64Array::from(vec![Some(0.1), Some(f64::NAN)])),
                Arc::new(BooleanArray::from(vec![Some(true), Some(false)])),
                Arc::new(Date32Array::from(vec![Some(20_419), None])),
                Arc::new(
                    TimestampMillisecondArray::from(vec![Some(1_764_230_400_123), None])
                        .with_timezone("UTC"),
                ),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        encode_copy_text(&batch, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "-7\ta\\tb\\\\c\\nd\\re 醤油\t0.1\tt\t2025-11-27\t2025-11-27 08:00:00.123+00\n\
             \\N\t\\N\tNaN\tf\t\\N\t\\N\n"
        );
    }
}
