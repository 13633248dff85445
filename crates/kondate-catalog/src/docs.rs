//! Descriptions: Markdown about a source, a schema, a table, a column or a glossary keyword,
//! every edit kept as a revision (who, when, the unified diff). An edit names the version it
//! started from; when another edit landed meanwhile it is refused with the diff between the
//! text now and the edit, never applied over it.
//!
//! Descriptions may also live in the project as `docs/NAME.md` files (docs as code): a sync
//! applies a file when its text differs from what was last applied from it, so an edit made
//! in the catalog stays until the file changes.

use std::fmt;

use kondate_db::{Session, Value, opt_i64_at, opt_string_at};
use serde::Serialize;

use crate::sync::now_ms;
use crate::{Catalog, CatalogError};

/// The longest description accepted (bytes).
pub const MAX_BODY: usize = 256 * 1024;

/// What a description is about. Every target has a stable key (in the state database and
/// in URLs): `table/SOURCE/SCHEMA/TABLE`, each part percent-encoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "level", rename_all = "snake_case")]
pub enum Target {
    Source {
        source: String,
    },
    Schema {
        source: String,
        schema: String,
    },
    Table {
        source: String,
        schema: String,
        table: String,
    },
    Column {
        source: String,
        schema: String,
        table: String,
        column: String,
    },
    Keyword {
        name: String,
    },
}

/// `part` with every byte but the unreserved ones (RFC 3986) percent-encoded: safe in a
/// key, a path segment or a URL.
pub fn encode_part(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for b in part.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inverse of [`encode_part`]; None when `part` is not valid percent-encoded UTF-8.
pub fn decode_part(part: &str) -> Option<String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = part.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Target {
    /// The stable key.
    pub fn key(&self) -> String {
        let (level, parts): (&str, Vec<&str>) = match self {
            Target::Source { source } => ("source", vec![source]),
            Target::Schema { source, schema } => ("schema", vec![source, schema]),
            Target::Table {
                source,
                schema,
                table,
            } => ("table", vec![source, schema, table]),
            Target::Column {
                source,
                schema,
                table,
                column,
            } => ("column", vec![source, schema, table, column]),
            Target::Keyword { name } => ("keyword", vec![name]),
        };
        let mut key = level.to_string();
        for p in parts {
            key.push('/');
            key.push_str(&encode_part(p));
        }
        key
    }

    /// The target a key names (None when it is not one).
    pub fn from_key(key: &str) -> Option<Target> {
        let mut it = key.split('/');
        let level = it.next()?;
        let parts: Vec<String> = it.map(decode_part).collect::<Option<_>>()?;
        let p = |i: usize| parts[i].clone();
        Some(match (level, parts.len()) {
            ("source", 1) => Target::Source { source: p(0) },
            ("schema", 2) => Target::Schema {
                source: p(0),
                schema: p(1),
            },
            ("table", 3) => Target::Table {
                source: p(0),
                schema: p(1),
                table: p(2),
            },
            ("column", 4) => Target::Column {
                source: p(0),
                schema: p(1),
                table: p(2),
                column: p(3),
            },
            ("keyword", 1) => Target::Keyword { name: p(0) },
            _ => return None,
        })
    }

    /// The table a table's or column's description belongs to (for a table's page).
    pub fn table_key(source: &str, schema: &str, table: &str) -> String {
        Target::Table {
            source: source.into(),
            schema: schema.into(),
            table: table.into(),
        }
        .key()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Source { source } => write!(f, "source:{source}"),
            Target::Schema { source, schema } => write!(f, "schema:{source}.{schema}"),
            Target::Table {
                source,
                schema,
                table,
            } => write!(f, "{source}.{schema}.{table}"),
            Target::Column {
                source,
                schema,
                table,
                column,
            } => write!(f, "{source}.{schema}.{table}.{column}"),
            Target::Keyword { name } => write!(f, "keyword:{name}"),
        }
    }
}

/// A description as it is now.
#[derive(Debug, Clone, Serialize)]
pub struct Doc {
    pub target: Target,
    pub key: String,
    pub body: String,
    /// Sanitised HTML of `body`, keywords linked.
    pub html: String,
    /// 1 for the first edit; 0 for a target never described.
    pub version: i64,
    pub updated_by: Option<String>,
    pub updated_at_ms: Option<i64>,
    /// The project file the text was last applied from (`docs/recipes.md`).
    pub from_file: Option<String>,
}

/// One edit of a description.
#[derive(Debug, Clone, Serialize)]
pub struct Revision {
    pub version: i64,
    pub principal: String,
    pub at_ms: i64,
    /// Unified diff from the previous version.
    pub diff: String,
    pub from_file: Option<String>,
    pub body: String,
}

/// What an edit did.
#[derive(Debug, Clone, Serialize)]
pub struct Described {
    pub doc: Doc,
    /// False when the text was already this (no revision made).
    pub changed: bool,
    /// Said to the editor: the target is documented from a project file.
    pub warning: Option<String>,
}

/// The unified diff from `before` to `after`, headed by their versions.
pub fn unified_diff(before: &str, after: &str, from: &str, to: &str) -> String {
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(from, to)
        .to_string()
}

/// Checks a keyword's name: what a glossary can link.
pub fn check_keyword(name: &str) -> Result<(), CatalogError> {
    let bad = if name.trim().is_empty() {
        Some("it is empty")
    } else if name.trim() != name {
        Some("it starts or ends with a space")
    } else if name.chars().count() > 100 {
        Some("it is longer than 100 characters")
    } else if name.chars().any(char::is_control) {
        Some("it holds a control character (a line break?)")
    } else {
        None
    };
    match bad {
        Some(why) => Err(CatalogError::Invalid(format!(
            "keyword {name:?} cannot be a glossary keyword: {why}"
        ))),
        None => Ok(()),
    }
}

const DOC_COLUMNS: &str = "target, body, version, updated_by, updated_at, from_file";

impl Catalog {
    /// The description of `target` (version 0 and an empty text when it has none).
    pub async fn doc(&self, target: &Target) -> Result<Doc, CatalogError> {
        let key = target.key();
        let row = self
            .db
            .fetch_optional(
                &format!("SELECT {DOC_COLUMNS} FROM kondate_catalog_docs WHERE target = ?"),
                &[Value::Text(key.clone())],
            )
            .await?;
        let keywords = self.keywords().await?;
        Ok(match row {
            Some(r) => {
                let body = opt_string_at(&r, 1)?.unwrap_or_default();
                Doc {
                    target: target.clone(),
                    key,
                    html: crate::render::render_markdown(&body, &keywords),
                    body,
                    version: opt_i64_at(&r, 2)?.unwrap_or(0),
                    updated_by: opt_string_at(&r, 3)?,
                    updated_at_ms: opt_i64_at(&r, 4)?,
                    from_file: opt_string_at(&r, 5)?,
                }
            }
            None => Doc {
                target: target.clone(),
                key,
                body: String::new(),
                html: String::new(),
                version: 0,
                updated_by: None,
                updated_at_ms: None,
                from_file: None,
            },
        })
    }

    /// The descriptions of `targets` that have one, by key.
    pub async fn docs_of(
        &self,
        targets: &[Target],
    ) -> Result<std::collections::HashMap<String, Doc>, CatalogError> {
        let mut out = std::collections::HashMap::new();
        if targets.is_empty() {
            return Ok(out);
        }
        let keywords = self.keywords().await?;
        let by_key: std::collections::HashMap<String, &Target> =
            targets.iter().map(|t| (t.key(), t)).collect();
        for chunk in targets.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let params: Vec<Value> = chunk.iter().map(|t| Value::Text(t.key())).collect();
            for r in self
                .db
                .fetch_all(
                    &format!(
                        "SELECT {DOC_COLUMNS} FROM kondate_catalog_docs WHERE target IN ({marks}) \
                         AND body <> ''"
                    ),
                    &params,
                )
                .await?
            {
                let key = opt_string_at(&r, 0)?.unwrap_or_default();
                let Some(target) = by_key.get(&key) else {
                    continue;
                };
                let body = opt_string_at(&r, 1)?.unwrap_or_default();
                out.insert(
                    key.clone(),
                    Doc {
                        target: (*target).clone(),
                        key,
                        html: crate::render::render_markdown(&body, &keywords),
                        body,
                        version: opt_i64_at(&r, 2)?.unwrap_or(0),
                        updated_by: opt_string_at(&r, 3)?,
                        updated_at_ms: opt_i64_at(&r, 4)?,
                        from_file: opt_string_at(&r, 5)?,
                    },
                );
            }
        }
        Ok(out)
    }

    /// The glossary's keywords (those with a description).
    pub async fn keywords(&self) -> Result<Vec<String>, CatalogError> {
        let rows = self
            .db
            .fetch_all(
                "SELECT target FROM kondate_catalog_docs WHERE target LIKE 'keyword/%' \
                 AND body <> '' ORDER BY target",
                &[],
            )
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            if let Some(Target::Keyword { name }) =
                opt_string_at(r, 0)?.as_deref().and_then(Target::from_key)
            {
                out.push(name);
            }
        }
        Ok(out)
    }

    /// Set the description of `target` to `body`, as `principal`. `base` is the version the
    /// edit started from (None: whatever is there now — a script's or a file's edit); a
    /// stale base is refused with the diff. `from_file` marks a text applied from the
    /// project's `docs/`.
    pub async fn describe(
        &self,
        target: &Target,
        body: &str,
        base: Option<i64>,
        principal: &str,
        from_file: Option<&str>,
    ) -> Result<Described, CatalogError> {
        if body.len() > MAX_BODY {
            return Err(CatalogError::Invalid(format!(
                "the description of {target} is {} bytes; at most {MAX_BODY} are kept — link to a longer document instead",
                body.len()
            )));
        }
        if let Target::Keyword { name } = target {
            check_keyword(name)?;
        }
        // Text is kept with Unix line ends, so a file edited on Windows diffs cleanly.
        let body = body.replace("\r\n", "\n");
        let current = self.doc(target).await?;
        if let Some(b) = base
            && b != current.version
        {
            return Err(CatalogError::Stale {
                target: target.to_string(),
                base: b,
                current: current.version,
                by: current.updated_by.clone().unwrap_or_default(),
                diff: unified_diff(
                    &current.body,
                    &body,
                    &format!("version {} (now)", current.version),
                    "your edit",
                ),
            });
        }
        let warning = match (&current.from_file, from_file) {
            (Some(file), None) => Some(format!(
                "{target} is documented in the project's {file}: this edit stays until that file changes, then the file's text replaces it; change the file too so that they agree"
            )),
            _ => None,
        };
        if current.body == body && current.version > 0 {
            if from_file.is_some() && current.from_file.as_deref() != from_file {
                self.db
                    .execute(
                        "UPDATE kondate_catalog_docs SET from_file = ? WHERE target = ?",
                        &[
                            Value::Text(from_file.unwrap_or_default().into()),
                            Value::Text(current.key.clone()),
                        ],
                    )
                    .await?;
            }
            let doc = self.doc(target).await?;
            return Ok(Described {
                doc,
                changed: false,
                warning,
            });
        }
        let version = current.version + 1;
        let now = now_ms();
        let diff = unified_diff(
            &current.body,
            &body,
            &format!("version {}", current.version),
            &format!("version {version}"),
        );
        let from = || {
            from_file.map_or(Value::NullOf(kondate_db::ColumnType::Text), |f| {
                Value::Text(f.into())
            })
        };
        let stale = || CatalogError::Stale {
            target: target.to_string(),
            base: current.version,
            current: current.version + 1,
            by: "another editor, at the same moment".into(),
            diff: String::new(),
        };
        let mut tx = self.db.begin().await?;
        let inserted = tx
            .execute(
                "INSERT INTO kondate_catalog_doc_revisions (target, version, body, diff, principal, \
                 from_file, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                &[
                    Value::Text(current.key.clone()),
                    Value::Int(version),
                    Value::Text(body.clone()),
                    Value::Text(diff),
                    Value::Text(principal.into()),
                    from(),
                    Value::Int(now),
                ],
            )
            .await;
        match inserted {
            Err(e) if e.is_unique_violation() => return Err(stale()),
            other => other?,
        };
        let written = if current.version == 0 {
            tx.execute(
                "INSERT INTO kondate_catalog_docs (target, body, version, updated_by, updated_at, \
                 from_file) VALUES (?, ?, ?, ?, ?, ?)",
                &[
                    Value::Text(current.key.clone()),
                    Value::Text(body.clone()),
                    Value::Int(version),
                    Value::Text(principal.into()),
                    Value::Int(now),
                    from(),
                ],
            )
            .await
        } else {
            // A catalog edit keeps the file the text came from, so the warning stays true.
            let keep_file = from_file.or(current.from_file.as_deref());
            tx.execute(
                "UPDATE kondate_catalog_docs SET body = ?, version = ?, updated_by = ?, \
                 updated_at = ?, from_file = ? WHERE target = ? AND version = ?",
                &[
                    Value::Text(body.clone()),
                    Value::Int(version),
                    Value::Text(principal.into()),
                    Value::Int(now),
                    keep_file.map_or(Value::NullOf(kondate_db::ColumnType::Text), |f| {
                        Value::Text(f.into())
                    }),
                    Value::Text(current.key.clone()),
                    Value::Int(current.version),
                ],
            )
            .await
        };
        match written {
            Err(e) if e.is_unique_violation() => return Err(stale()),
            Ok(0) => return Err(stale()),
            other => {
                other?;
            }
        }
        tx.commit().await?;
        tracing::info!(target = %target, version, principal, "catalog description");
        Ok(Described {
            doc: self.doc(target).await?,
            changed: true,
            warning,
        })
    }

    /// Every revision of `target`'s description, newest first.
    pub async fn doc_history(&self, target: &Target) -> Result<Vec<Revision>, CatalogError> {
        let rows = self
            .db
            .fetch_all(
                "SELECT version, principal, created_at, diff, from_file, body \
                 FROM kondate_catalog_doc_revisions WHERE target = ? ORDER BY version DESC",
                &[Value::Text(target.key())],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Revision {
                    version: opt_i64_at(r, 0)?.unwrap_or(0),
                    principal: opt_string_at(r, 1)?.unwrap_or_default(),
                    at_ms: opt_i64_at(r, 2)?.unwrap_or(0),
                    diff: opt_string_at(r, 3)?.unwrap_or_default(),
                    from_file: opt_string_at(r, 4)?,
                    body: opt_string_at(r, 5)?.unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The text last applied from project file `file` to `target` (None: never).
    pub(crate) async fn last_from_file(
        &self,
        target: &Target,
        file: &str,
    ) -> Result<Option<String>, CatalogError> {
        let row = self
            .db
            .fetch_optional(
                "SELECT body FROM kondate_catalog_doc_revisions WHERE target = ? AND from_file = ? \
                 ORDER BY version DESC LIMIT 1",
                &[Value::Text(target.key()), Value::Text(file.into())],
            )
            .await?;
        Ok(match row {
            Some(r) => opt_string_at(&r, 0)?,
            None => None,
        })
    }

    /// Apply the project's description files: each `docs/NAME.md`, NAME as `catalog
    /// describe` takes it (a bare table name applies to every table of that name: a result
    /// table and its warehouse copy), when its text differs from what was last applied from
    /// it. Returns what was applied, and the files that name nothing in the catalog.
    pub async fn apply_doc_files(
        &self,
        files: &[(String, String)],
    ) -> Result<DocFilesReport, CatalogError> {
        let mut report = DocFilesReport::default();
        for (file, text) in files {
            let name = std::path::Path::new(file)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            let targets = match self.resolve_all(name).await {
                Ok(t) if !t.is_empty() => t,
                _ => {
                    report.unmatched.push(file.clone());
                    continue;
                }
            };
            for target in targets {
                if self.last_from_file(&target, file).await?.as_deref() == Some(text.as_str()) {
                    continue;
                }
                let d = self
                    .describe(&target, text, None, &format!("file:{file}"), Some(file))
                    .await?;
                if d.changed {
                    report.applied.push((file.clone(), target.to_string()));
                }
            }
        }
        Ok(report)
    }
}

/// What applying the project's description files did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DocFilesReport {
    /// (file, what it describes) for each description it changed.
    pub applied: Vec<(String, String)>,
    /// Files whose name matches no table or column in the catalog.
    pub unmatched: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_any_name() {
        for t in [
            Target::Table {
                source: "warehouse".into(),
                schema: "results".into(),
                table: "recipe/categories %x".into(),
            },
            Target::Column {
                source: "service".into(),
                schema: "main".into(),
                table: "t".into(),
                column: "カテゴリ".into(),
            },
            Target::Keyword {
                name: "主菜".into(),
            },
            Target::Schema {
                source: "w".into(),
                schema: "".into(),
            },
        ] {
            assert_eq!(Target::from_key(&t.key()), Some(t.clone()), "{}", t.key());
        }
        assert_eq!(
            Target::Table {
                source: "a".into(),
                schema: "b/c".into(),
                table: "d".into()
            }
            .key(),
            "table/a/b%2Fc/d"
        );
        assert_eq!(Target::from_key("table/a/b"), None);
        assert_eq!(Target::from_key("table/a/b/%zz"), None);
    }

    #[test]
    fn diffs_are_unified() {
        let d = unified_diff("a\nb\nc\n", "a\nB\nc\n", "version 1", "version 2");
        assert!(d.starts_with("--- version 1\n+++ version 2\n@@"), "{d}");
        assert!(d.contains("-b\n+B\n"), "{d}");
    }

    #[test]
    fn keyword_names_are_checked() {
        assert!(check_keyword("主菜").is_ok());
        assert!(check_keyword("recipe category").is_ok());
        for bad in ["", " x", "a\nb", &"x".repeat(101)] {
            assert!(check_keyword(bad).is_err(), "{bad:?}");
        }
    }
}
