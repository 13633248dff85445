//! Label-set definitions: `labels/NAME.toml` or `[labels.NAME]` in `kondate.toml`.
//!
//! ```toml
//! table = "recipe_category_labels"
//! key = ["recipe_id"]
//! [source]
//! type = "csv"
//! path = "data/recipe_category.csv"
//! [columns]
//! recipe_id = { type = "integer", required = true }
//! category  = { type = "enum", values = ["主菜", "副菜"], required = true }
//! note      = { type = "string", role = "comment" }
//! ```

use std::path::{Path, PathBuf};

use kondate_core::Project;
use serde::{Deserialize, Serialize};

use crate::LabelsError;

/// The type of a label column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelType {
    String,
    Integer,
    Float,
    Boolean,
    Date,
    Enum,
}

impl LabelType {
    /// The name used in definitions and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            LabelType::String => "string",
            LabelType::Integer => "integer",
            LabelType::Float => "float",
            LabelType::Boolean => "boolean",
            LabelType::Date => "date",
            LabelType::Enum => "enum",
        }
    }
}

/// What a column is for: a label, or kept alongside without being one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Label,
    /// Free text the annotators leave for each other.
    Comment,
    /// Who labelled the row.
    Annotator,
}

/// One column of a label set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// The column's name in the table (and, unless `header` says otherwise, in the sheet).
    pub name: String,
    #[serde(rename = "type")]
    pub ty: LabelType,
    pub required: bool,
    /// Allowed values of an `enum` column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    pub role: Role,
    /// The header text in the sheet, when it differs from `name` (e.g. `カテゴリ`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

impl ColumnDef {
    /// The header this column has in the sheet.
    pub fn header(&self) -> &str {
        self.header.as_deref().unwrap_or(&self.name)
    }
}

/// Where a label set's rows come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceDef {
    /// A CSV file.
    Csv {
        path: String,
        /// Text encoding: `utf-8` (default) or any WHATWG label such as `shift_jis`, the
        /// encoding Excel in Japanese uses for CSV.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encoding: Option<String>,
        #[serde(default = "first_row", skip_serializing_if = "is_first_row")]
        header_row: usize,
    },
    /// An Excel (`.xlsx`, `.xls`, `.xlsb`) or LibreOffice (`.ods`) workbook.
    Xlsx {
        path: String,
        /// The sheet's name; the first sheet when unset.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sheet: Option<String>,
        #[serde(default = "first_row", skip_serializing_if = "is_first_row")]
        header_row: usize,
    },
    /// A range of a Google spreadsheet, read with the Sheets API v4.
    GoogleSheets {
        spreadsheet_id: String,
        /// A1 range, e.g. `Labels!A1:F`.
        range: String,
        /// Service-account key file (JSON); relative to the project.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credentials_file: Option<String>,
        /// Name of the environment variable that holds an API key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_key_env: Option<String>,
        /// A file that holds an API key; relative to the project.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_key_file: Option<String>,
        /// Base URL of the Sheets API (tests point it at a local server).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_base: Option<String>,
        #[serde(default = "first_row", skip_serializing_if = "is_first_row")]
        header_row: usize,
    },
}

fn first_row() -> usize {
    1
}

fn is_first_row(n: &usize) -> bool {
    *n == 1
}

impl SourceDef {
    /// The row (1-based, within what the source returns) that holds the headers.
    pub fn header_row(&self) -> usize {
        match self {
            SourceDef::Csv { header_row, .. }
            | SourceDef::Xlsx { header_row, .. }
            | SourceDef::GoogleSheets { header_row, .. } => *header_row,
        }
    }

    /// A short description for listings.
    pub fn describe(&self) -> String {
        match self {
            SourceDef::Csv { path, .. } => format!("csv {path}"),
            SourceDef::Xlsx { path, sheet, .. } => match sheet {
                Some(s) => format!("workbook {path} sheet {s}"),
                None => format!("workbook {path}"),
            },
            SourceDef::GoogleSheets {
                spreadsheet_id,
                range,
                ..
            } => format!("google sheets {spreadsheet_id} {range}"),
        }
    }
}

/// A validated label-set definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelSet {
    pub name: String,
    /// The table in the service database.
    pub table: String,
    pub key: Vec<String>,
    pub source: SourceDef,
    pub columns: Vec<ColumnDef>,
    /// Where the definition was read from, for messages.
    #[serde(skip)]
    pub origin: String,
    /// The project folder that relative source paths start from.
    #[serde(skip)]
    pub root: PathBuf,
}

/// The TOML shape of a column, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    #[serde(rename = "type")]
    ty: LabelType,
    #[serde(default)]
    required: bool,
    values: Option<Vec<String>>,
    #[serde(default)]
    role: Role,
    header: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    table: String,
    key: Vec<String>,
    source: SourceDef,
    columns: toml::Table,
}

/// Table names kondate keeps for itself in the service database.
pub const RESERVED_PREFIX: &str = "kondate_";

fn is_sql_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl LabelSet {
    /// Parse and check one definition. `origin` names it in messages (a file, or
    /// `kondate.toml [labels.NAME]`).
    pub fn parse(
        name: &str,
        value: toml::Value,
        origin: &str,
        root: &Path,
    ) -> Result<LabelSet, LabelsError> {
        let bad = |field: &str, message: String| LabelsError::Definition {
            origin: origin.to_string(),
            field: field.to_string(),
            message,
        };
        kondate_core::names::validate_name("label set name", name)
            .map_err(|e| bad("name", e.to_string()))?;
        let raw: RawDefinition = value
            .try_into()
            .map_err(|e: toml::de::Error| bad("(file)", e.message().to_string()))?;
        if !is_sql_identifier(&raw.table) {
            return Err(bad(
                "table",
                format!(
                    "`{}` is not a table name: use letters, digits and `_`, starting with a \
                     letter",
                    raw.table
                ),
            ));
        }
        if raw.table.to_ascii_lowercase().starts_with(RESERVED_PREFIX) {
            return Err(bad(
                "table",
                format!("names starting with `{RESERVED_PREFIX}` are kondate's own"),
            ));
        }
        let mut columns: Vec<ColumnDef> = Vec::new();
        for (col, spec) in raw.columns {
            let field = format!("columns.{col}");
            if !is_sql_identifier(&col) {
                return Err(bad(
                    &field,
                    "a column name must be letters, digits and `_`, starting with a letter; \
                     put the sheet's header text in `header = \"…\"`"
                        .into(),
                ));
            }
            if columns.iter().any(|c| c.name.eq_ignore_ascii_case(&col)) {
                return Err(bad(&field, "is declared twice (names ignore case)".into()));
            }
            let spec: RawColumn = spec
                .try_into()
                .map_err(|e: toml::de::Error| bad(&field, e.message().to_string()))?;
            let values = match (spec.ty, spec.values) {
                (LabelType::Enum, Some(v)) if !v.is_empty() => {
                    let mut seen = std::collections::HashSet::new();
                    if let Some(dup) = v.iter().find(|x| !seen.insert(x.as_str())) {
                        return Err(bad(&field, format!("enum value `{dup}` is listed twice")));
                    }
                    if v.iter().any(|x| x.trim() != x || x.is_empty()) {
                        return Err(bad(
                            &field,
                            "enum values must be non-empty and have no leading or trailing \
                             spaces"
                                .into(),
                        ));
                    }
                    v
                }
                (LabelType::Enum, _) => {
                    return Err(bad(
                        &field,
                        "an enum column needs `values = [\"…\", …]`, the allowed values".into(),
                    ));
                }
                (_, Some(_)) => {
                    return Err(bad(
                        &field,
                        "`values` only applies to `type = \"enum\"`".into(),
                    ));
                }
                (_, None) => Vec::new(),
            };
            columns.push(ColumnDef {
                name: col,
                ty: spec.ty,
                required: spec.required,
                values,
                role: spec.role,
                header: spec.header.map(|h| crate::cells::trim(&h).to_string()),
            });
        }
        if columns.is_empty() {
            return Err(bad("columns", "declare at least one column".into()));
        }
        for (i, c) in columns.iter().enumerate() {
            if columns[..i].iter().any(|o| o.header() == c.header()) {
                return Err(bad(
                    &format!("columns.{}", c.name),
                    format!("header `{}` is used by two columns", c.header()),
                ));
            }
        }
        if raw.key.is_empty() {
            return Err(bad(
                "key",
                "name the column(s) that identify a row, e.g. key = [\"recipe_id\"]".into(),
            ));
        }
        for (i, k) in raw.key.iter().enumerate() {
            if raw.key[..i].contains(k) {
                return Err(bad("key", format!("`{k}` is listed twice")));
            }
            let Some(c) = columns.iter_mut().find(|c| &c.name == k) else {
                return Err(bad(
                    "key",
                    format!("`{k}` is not one of the declared columns"),
                ));
            };
            if c.ty == LabelType::Float {
                return Err(bad(
                    "key",
                    format!(
                        "`{k}` is a float; a key must compare exactly (integer, string, enum, date or boolean)"
                    ),
                ));
            }
            if c.role != Role::Label {
                return Err(bad(
                    "key",
                    format!(
                        "`{k}` is a {:?} column; a key must be a label column",
                        c.role
                    )
                    .to_lowercase(),
                ));
            }
            // A row without its key cannot be identified.
            c.required = true;
        }
        if raw.source.header_row() == 0 {
            return Err(bad("source.header_row", "rows are numbered from 1".into()));
        }
        if let SourceDef::GoogleSheets {
            credentials_file,
            api_key_env,
            api_key_file,
            ..
        } = &raw.source
        {
            let given = [credentials_file, api_key_env, api_key_file]
                .iter()
                .filter(|c| c.is_some())
                .count();
            if given != 1 {
                return Err(bad(
                    "source",
                    "Google Sheets needs exactly one of `credentials_file` (a service-account \
                     key file), `api_key_env` (the variable holding an API key) or \
                     `api_key_file` (a file holding one)"
                        .into(),
                ));
            }
        }
        Ok(LabelSet {
            name: name.to_string(),
            table: raw.table,
            key: raw.key,
            source: raw.source,
            columns,
            origin: origin.to_string(),
            root: root.to_path_buf(),
        })
    }

    /// Read `path` (a `labels/NAME.toml` file).
    pub fn from_file(path: &Path, root: &Path) -> Result<LabelSet, LabelsError> {
        let origin = path.display().to_string();
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let text = std::fs::read_to_string(path).map_err(|e| LabelsError::Definition {
            origin: origin.clone(),
            field: "(file)".into(),
            message: e.to_string(),
        })?;
        LabelSet::from_toml(&name, &text, &origin, root)
    }

    /// Parse definition text (the content of a `labels/NAME.toml`).
    pub fn from_toml(
        name: &str,
        text: &str,
        origin: &str,
        root: &Path,
    ) -> Result<LabelSet, LabelsError> {
        let value: toml::Table = toml::from_str(text).map_err(|e| LabelsError::Definition {
            origin: origin.to_string(),
            field: "(file)".into(),
            message: e.to_string(),
        })?;
        LabelSet::parse(name, toml::Value::Table(value), origin, root)
    }

    /// Positions of the key columns in `columns`.
    pub fn key_indices(&self) -> Vec<usize> {
        self.key
            .iter()
            .map(|k| {
                self.columns
                    .iter()
                    .position(|c| &c.name == k)
                    .expect("keys are checked to be columns")
            })
            .collect()
    }

    /// A path the definition names, anchored at the project.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }

    /// The definition as canonical JSON, stored with every revision to detect changes.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a definition serialises")
    }
}

/// Every label set of the project: `labels/*.toml`, then `[labels.NAME]` sections of
/// `kondate.toml`, sorted by name. A name declared twice is an error.
pub fn load_all(project: &Project) -> Result<Vec<LabelSet>, LabelsError> {
    let mut sets: Vec<LabelSet> = Vec::new();
    let dir = project.root.join("labels");
    let files =
        kondate_core::project::definition_files(&dir, &["toml"]).map_err(|e| LabelsError::Io {
            path: dir.display().to_string(),
            source: e,
        })?;
    for f in files {
        sets.push(LabelSet::from_file(&f, &project.root)?);
    }
    for (name, value) in &project.config.labels {
        let origin = format!(
            "{} [labels.{name}]",
            project
                .root
                .join(kondate_core::project::CONFIG_FILE)
                .display()
        );
        if let Some(other) = sets.iter().find(|s| &s.name == name) {
            return Err(LabelsError::Definition {
                origin,
                field: "name".into(),
                message: format!("label set `{name}` is also defined in {}", other.origin),
            });
        }
        sets.push(LabelSet::parse(
            name,
            value.clone(),
            &origin,
            &project.root,
        )?);
    }
    sets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(sets)
}

/// The label set called `name`.
pub fn find(project: &Project, name: &str) -> Result<LabelSet, LabelsError> {
    let all = load_all(project)?;
    let names: Vec<String> = all.iter().map(|s| s.name.clone()).collect();
    all.into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| LabelsError::NoSuchSet {
            name: name.to_string(),
            known: if names.is_empty() {
                "none is defined yet; add labels/NAME.toml".into()
            } else {
                names.join(", ")
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LabelSet, LabelsError> {
        let v: toml::Table = toml::from_str(text).unwrap();
        LabelSet::parse(
            "recipe_category",
            toml::Value::Table(v),
            "t.toml",
            Path::new("/p"),
        )
    }

    const GOOD: &str = r#"
        table = "recipe_category_labels"
        key = ["recipe_id"]
        [source]
        type = "csv"
        path = "data/recipe_category.csv"
        [columns]
        recipe_id = { type = "integer", required = true }
        category  = { type = "enum", values = ["主菜", "副菜", "汁物", "主食", "デザート"], required = true }
        note      = { type = "string", role = "comment" }
    "#;

    #[test]
    fn the_documented_example_parses_with_columns_in_file_order() {
        let s = parse(GOOD).unwrap();
        let names: Vec<&str> = s.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["recipe_id", "category", "note"]);
        assert_eq!(s.columns[1].values.len(), 5);
        assert_eq!(s.columns[2].role, Role::Comment);
        assert_eq!(s.key_indices(), [0]);
        assert_eq!(s.resolve("data/x.csv"), Path::new("/p/data/x.csv"));
    }

    #[test]
    fn bad_definitions_name_the_field_and_the_fix() {
        let cases = [
            (
                GOOD.replace("\"recipe_category_labels\"", "\"bad-name\""),
                "table",
                "not a table name",
            ),
            (
                GOOD.replace("\"recipe_category_labels\"", "\"kondate_x\""),
                "table",
                "kondate's own",
            ),
            (
                GOOD.replace("key = [\"recipe_id\"]", "key = [\"nope\"]"),
                "key",
                "not one of the declared columns",
            ),
            (
                GOOD.replace("key = [\"recipe_id\"]", "key = []"),
                "key",
                "identify a row",
            ),
            (
                GOOD.replace("key = [\"recipe_id\"]", "key = [\"note\"]"),
                "key",
                "comment column",
            ),
            (
                GOOD.replace(
                    ", values = [\"主菜\", \"副菜\", \"汁物\", \"主食\", \"デザート\"]",
                    "",
                ),
                "columns.category",
                "needs `values",
            ),
            (
                GOOD.replace("\"主食\"", "\"主菜\""),
                "columns.category",
                "listed twice",
            ),
            (
                GOOD.replace("type = \"string\"", "type = \"text\""),
                "columns.note",
                "unknown variant",
            ),
            (
                GOOD.replace("role = \"comment\"", "rol = \"comment\""),
                "columns.note",
                "unknown field",
            ),
            (
                GOOD.replace(
                    "type = \"csv\"",
                    "type = \"google_sheets\"\nspreadsheet_id = \"x\"\nrange = \"A:B\"",
                ),
                "source",
                "needs exactly one of",
            ),
            (
                GOOD.replace("path = ", "header_row = 0\npath = "),
                "source.header_row",
                "from 1",
            ),
        ];
        for (text, field, needle) in cases {
            let err = parse(&text).unwrap_err();
            let LabelsError::Definition {
                field: f, message, ..
            } = &err
            else {
                panic!("{err}")
            };
            assert!(
                f.starts_with(field) && message.contains(needle),
                "{field}/{needle}: {err}"
            );
            assert!(err.to_string().contains("t.toml"), "{err}");
        }
    }

    #[test]
    fn keys_are_required_and_headers_may_differ_from_names() {
        let s = parse(&GOOD.replace(
            "recipe_id = { type = \"integer\", required = true }",
            "recipe_id = { type = \"integer\", header = \" レシピID \" }",
        ))
        .unwrap();
        assert!(s.columns[0].required);
        assert_eq!(s.columns[0].header(), "レシピID");
    }

    #[test]
    fn sets_come_from_label_files_and_kondate_toml_sections() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("labels")).unwrap();
        std::fs::write(dir.path().join("labels/b_set.toml"), GOOD).unwrap();
        std::fs::write(dir.path().join("labels/notes.txt"), "not a definition").unwrap();
        let mut config = kondate_core::Config::default();
        let inline: toml::Table = toml::from_str(GOOD).unwrap();
        config
            .labels
            .insert("a_set".into(), toml::Value::Table(inline.clone()));
        let project = Project {
            root: dir.path().to_path_buf(),
            config: config.clone(),
        };
        let names: Vec<String> = load_all(&project)
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["a_set", "b_set"]);
        assert_eq!(
            find(&project, "b_set").unwrap().table,
            "recipe_category_labels"
        );
        let err = find(&project, "c_set").unwrap_err().to_string();
        assert!(err.contains("defined: a_set, b_set"), "{err}");
        // The same name in both places is refused.
        config
            .labels
            .insert("b_set".into(), toml::Value::Table(inline));
        let project = Project {
            root: dir.path().to_path_buf(),
            config,
        };
        let err = load_all(&project).unwrap_err().to_string();
        assert!(err.contains("is also defined in"), "{err}");
    }

    #[test]
    fn the_canonical_json_changes_when_the_task_changes() {
        let a = parse(GOOD).unwrap();
        let b = parse(&GOOD.replace("\"デザート\"", "\"デザート\", \"その他\"")).unwrap();
        assert_ne!(a.to_json(), b.to_json());
        assert_eq!(a.to_json(), parse(GOOD).unwrap().to_json());
    }
}
