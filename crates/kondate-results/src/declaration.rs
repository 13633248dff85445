//! Result-table declarations: `results/NAME.toml`.
//!
//! ```toml
//! table = "recipe_categories"
//! key = ["recipe_id"]
//! database = "service"          # the service database (the only one for now)
//! publish = "upsert"            # or "swap": the new rows replace the table at once
//! warehouse_table = "results.recipe_categories"   # where `kondate results export` copies it
//! [columns]
//! recipe_id = { type = "integer" }
//! category  = { type = "string" }
//! score     = { type = "float" }
//! ```

use std::path::{Path, PathBuf};

use kondate_db::ColumnType;
use serde::{Deserialize, Serialize};

use crate::ResultsError;

/// Columns kondate adds to every result table and fills itself.
pub const MAINTAINED: &[&str] = &["model_name", "model_version", "run_id", "updated_at"];

/// The type of a declared column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultType {
    Integer,
    Float,
    String,
    Boolean,
    Date,
}

impl ResultType {
    pub fn as_str(self) -> &'static str {
        match self {
            ResultType::Integer => "integer",
            ResultType::Float => "float",
            ResultType::String => "string",
            ResultType::Boolean => "boolean",
            ResultType::Date => "date",
        }
    }

    /// The column type in the database; key strings must be indexable (MySQL).
    pub fn column_type(self, is_key: bool) -> ColumnType {
        match self {
            ResultType::Integer => ColumnType::Integer,
            ResultType::Float => ColumnType::Float,
            ResultType::Boolean => ColumnType::Boolean,
            ResultType::Date => ColumnType::Date,
            ResultType::String if is_key => ColumnType::ShortText,
            ResultType::String => ColumnType::Text,
        }
    }
}

/// One declared column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResultColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ResultType,
    /// Whether a row may leave it empty (key columns never may).
    pub nullable: bool,
}

/// A checked declaration.
#[derive(Debug, Clone, Serialize)]
pub struct ResultTable {
    pub name: String,
    pub path: PathBuf,
    pub table: String,
    pub key: Vec<String>,
    pub database: String,
    pub columns: Vec<ResultColumn>,
    /// How writes become visible by default (`publish = "upsert" | "swap"`).
    pub publish: crate::table::Publish,
    /// The warehouse table `kondate results export` copies it to, `[schema.]table`
    /// (default: the table's name, in the warehouse's default schema).
    pub warehouse_table: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    #[serde(rename = "type")]
    ty: ResultType,
    #[serde(default = "yes")]
    nullable: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    table: Option<String>,
    key: Vec<String>,
    database: Option<String>,
    #[serde(default)]
    publish: crate::table::Publish,
    warehouse_table: Option<String>,
    columns: toml::Table,
}

impl ResultTable {
    /// Parse the declaration `text` of result table `name` (from `path`, for messages).
    /// Columns keep the order they are written in.
    pub fn parse(name: &str, path: &Path, text: &str) -> Result<ResultTable, ResultsError> {
        let fail = |message: String| ResultsError::Declaration {
            location: path.display().to_string(),
            message,
        };
        kondate_core::names::validate_name("result table name", name)?;
        let raw: Raw = toml::from_str(text).map_err(|e| fail(e.to_string()))?;
        let table = raw.table.unwrap_or_else(|| name.to_string());
        kondate_core::names::validate_name("table", &table)
            .map_err(|e| fail(format!("table: {e}")))?;
        // Room for the swap's `__new` and `__old` tables (identifiers: at most 63).
        if table.len() > 56 {
            return Err(fail(format!(
                "table: `{table}` is {} characters long; result tables take at most 56",
                table.len()
            )));
        }
        let warehouse_table = raw.warehouse_table.unwrap_or_else(|| table.clone());
        let parts: Vec<&str> = warehouse_table.split('.').collect();
        if parts.len() > 2 {
            return Err(fail(format!(
                "warehouse_table: `{warehouse_table}` has more than one `.`; write TABLE or \
                 SCHEMA.TABLE"
            )));
        }
        for p in parts {
            kondate_core::names::validate_name("warehouse table", p)
                .map_err(|e| fail(format!("warehouse_table: {e}")))?;
        }
        let database = raw.database.unwrap_or_else(|| "service".into());
        if database != "service" {
            return Err(fail(format!(
                "database: `{database}` is not a database kondate knows; result tables go to \
                 the service database (`service`, the default; [service] url in kondate.toml)"
            )));
        }
        if raw.columns.is_empty() {
            return Err(fail("[columns] declares no column".into()));
        }
        let mut columns = Vec::new();
        for (col, spec) in &raw.columns {
            kondate_core::names::validate_name("column", col)
                .map_err(|e| fail(format!("columns.{col}: {e}")))?;
            if MAINTAINED.contains(&col.as_str()) {
                return Err(fail(format!(
                    "columns.{col}: kondate adds and fills `{col}` itself ({}); remove it",
                    MAINTAINED.join(", ")
                )));
            }
            let c: RawColumn = spec.clone().try_into().map_err(|e| {
                fail(format!(
                    "columns.{col}: {e} (write e.g. {col} = {{ type = \"float\" }}; types: \
                     integer, float, string, boolean, date)"
                ))
            })?;
            columns.push(ResultColumn {
                name: col.clone(),
                ty: c.ty,
                nullable: c.nullable,
            });
        }
        if raw.key.is_empty() {
            return Err(fail(
                "key: name the column(s) that identify a row, e.g. key = [\"recipe_id\"]".into(),
            ));
        }
        let mut seen = Vec::new();
        for k in &raw.key {
            let Some(c) = columns.iter_mut().find(|c| &c.name == k) else {
                return Err(fail(format!("key: `{k}` is not a declared column")));
            };
            if seen.contains(k) {
                return Err(fail(format!("key: `{k}` is named twice")));
            }
            if c.ty == ResultType::Float {
                return Err(fail(format!(
                    "key: `{k}` is a float, which cannot identify a row reliably; use an \
                     integer or a string"
                )));
            }
            c.nullable = false;
            seen.push(k.clone());
        }
        Ok(ResultTable {
            name: name.to_string(),
            path: path.to_path_buf(),
            table,
            key: raw.key,
            database,
            columns,
            publish: raw.publish,
            warehouse_table,
        })
    }

    /// Load `results/NAME.toml` of the project at `root`.
    pub fn load(root: &Path, name: &str) -> Result<ResultTable, ResultsError> {
        kondate_core::names::validate_name("result table name", name)?;
        let dir = root.join("results");
        let path = dir.join(format!("{name}.toml"));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ResultsError::NoSuchTable {
                    name: name.to_string(),
                    dir: dir.display().to_string(),
                });
            }
            Err(e) => {
                return Err(ResultsError::Io {
                    path: path.display().to_string(),
                    source: e,
                });
            }
        };
        ResultTable::parse(name, &path, &text)
    }

    /// Every declaration in `root/results`, sorted by name.
    pub fn load_all(root: &Path) -> Result<Vec<ResultTable>, ResultsError> {
        let dir = root.join("results");
        let files = kondate_core::project::definition_files(&dir, &["toml"]).map_err(|e| {
            ResultsError::Io {
                path: dir.display().to_string(),
                source: e,
            }
        })?;
        files
            .iter()
            .filter_map(|p| p.file_stem().and_then(|s| s.to_str()))
            .map(|name| ResultTable::load(root, name))
            .collect()
    }

    /// Index of each key column in `columns`.
    pub fn key_indices(&self) -> Vec<usize> {
        self.key
            .iter()
            .map(|k| {
                self.columns
                    .iter()
                    .position(|c| &c.name == k)
                    .expect("checked key")
            })
            .collect()
    }

    /// A fingerprint of what shapes the table (name, key, columns and types): a changed
    /// declaration is noticed before anything is written.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let shape = serde_json::json!({
            "table": self.table,
            "key": self.key,
            "columns": self.columns,
        });
        hex::encode(Sha256::digest(shape.to_string().as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ResultTable, ResultsError> {
        ResultTable::parse(
            "recipe_categories",
            Path::new("results/recipe_categories.toml"),
            text,
        )
    }

    #[test]
    fn the_issue_example_parses_in_order() {
        let t = parse(
            "table = \"recipe_categories\"\nkey = [\"recipe_id\"]\ndatabase = \"service\"\n[columns]\nrecipe_id = { type = \"integer\" }\ncategory  = { type = \"string\" }\nscore     = { type = \"float\" }\n",
        )
        .unwrap();
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["recipe_id", "category", "score"]);
        assert!(!t.columns[0].nullable && t.columns[1].nullable);
        assert_eq!(t.key_indices(), [0]);
        assert_eq!(t.fingerprint().len(), 64);
    }

    #[test]
    fn mistakes_name_the_file_and_field() {
        let cases = [
            (
                "key = []\n[columns]\na = { type = \"integer\" }\n",
                "key: name the column",
            ),
            (
                "key = [\"b\"]\n[columns]\na = { type = \"integer\" }\n",
                "key: `b` is not a declared column",
            ),
            (
                "key = [\"a\"]\n[columns]\na = { type = \"float\" }\n",
                "is a float",
            ),
            (
                "key = [\"a\"]\n[columns]\na = { type = \"decimal\" }\n",
                "columns.a: unknown variant",
            ),
            (
                "key = [\"a\"]\n[columns]\na = { type = \"integer\" }\nrun_id = { type = \"string\" }\n",
                "kondate adds and fills `run_id`",
            ),
            (
                "key = [\"a\"]\ndatabase = \"warehouse\"\n[columns]\na = { type = \"integer\" }\n",
                "database: `warehouse`",
            ),
            (
                "key = [\"a\"]\ntabel = \"x\"\n[columns]\na = { type = \"integer\" }\n",
                "unknown field `tabel`",
            ),
            (
                "key = [\"a\"]\n[columns]\n\"a b\" = { type = \"integer\" }\n",
                "columns.a b",
            ),
            (
                "key = [\"a\"]\nwarehouse_table = \"a.b.c\"\n[columns]\na = { type = \"integer\" }\n",
                "warehouse_table: `a.b.c` has more than one",
            ),
            (
                "key = [\"a\"]\nwarehouse_table = \"x.drop table\"\n[columns]\na = { type = \"integer\" }\n",
                "warehouse_table: ",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.starts_with("results/recipe_categories.toml: "), "{e}");
            assert!(e.contains(want), "{want:?} not in {e}");
        }
    }
}
