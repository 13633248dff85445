//! Reading a label set's revision, as a training job does: the rows exactly as they were
//! at that revision (`GET /v1/labels/{name}/revisions/{n}/export`), so a model records
//! which labels it learnt from and can be rebuilt from them.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kondate_client::ClientError> {
//! let client = kondate_client::Client::from_env()?;
//! let labels = client.labels("recipe_category", None).await?;   // the latest revision
//! let (id, category) = (labels.column("recipe_id")?, labels.column("category")?);
//! for row in &labels.rows {
//!     println!("{:?} → {:?}", row[id], row[category]);
//! }
//! # Ok(()) }
//! ```

use serde::Deserialize;

use crate::{Client, ClientError, http_err};

/// The rows of one revision of a label set.
#[derive(Debug, Clone)]
pub struct LabelRows {
    pub name: String,
    pub revision: i64,
    pub columns: Vec<String>,
    /// Cells in column order; an empty cell is `None`.
    pub rows: Vec<Vec<Option<String>>>,
}

impl LabelRows {
    /// The position of column `name`.
    pub fn column(&self, name: &str) -> Result<usize, ClientError> {
        self.columns.iter().position(|c| c == name).ok_or_else(|| {
            ClientError::Config(format!(
                "label set `{}` has no column `{name}` (it has {})",
                self.name,
                self.columns.join(", ")
            ))
        })
    }
}

#[derive(Deserialize)]
struct History {
    revisions: Vec<RevisionInfo>,
}

#[derive(Deserialize)]
struct RevisionInfo {
    revision: i64,
}

impl Client {
    /// Revision `revision` of label set `name` (the latest when `None`).
    pub async fn labels(
        &self,
        name: &str,
        revision: Option<i64>,
    ) -> Result<LabelRows, ClientError> {
        kondate_core::names::validate_name("label set name", name)
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let revision = match revision {
            Some(r) => r,
            None => {
                let url = format!("{}/v1/labels/{name}/revisions", self.endpoint);
                let h: History = self.api(self.http.get(&url), &url).await?;
                h.revisions.last().map(|r| r.revision).ok_or_else(|| {
                    ClientError::Config(format!(
                        "label set `{name}` has no revision yet; sync it first"
                    ))
                })?
            }
        };
        let url = format!(
            "{}/v1/labels/{name}/revisions/{revision}/export?format=csv",
            self.endpoint
        );
        let resp = self
            .authed(self.http.get(&url))
            .send()
            .await
            .map_err(|e| http_err(&url, e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| http_err(&url, e))?;
        if !status.is_success() {
            return Err(ClientError::Api {
                status: status.as_u16(),
                message: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        let mut reader = csv::Reader::from_reader(body.as_ref());
        let corrupt = |e: csv::Error| ClientError::Corrupt {
            file: url.clone(),
            message: e.to_string(),
        };
        let columns: Vec<String> = reader
            .headers()
            .map_err(corrupt)?
            .iter()
            .map(str::to_string)
            .collect();
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(corrupt)?;
            rows.push(
                record
                    .iter()
                    .map(|c| (!c.is_empty()).then(|| c.to_string()))
                    .collect(),
            );
        }
        Ok(LabelRows {
            name: name.to_string(),
            revision,
            columns,
            rows,
        })
    }
}
