//! The model registry from a job: [`Client::push_model`], [`Client::pull_model`] and
//! [`Client::resolve_model`].
//!
//! A push hashes every file first (one read each), asks the server which files it lacks,
//! uploads only those — streamed from disk, never whole in memory — and commits the
//! version. A pull downloads every file beside the destination, checks each against its
//! digest, and moves the result into place only when all are intact.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kondate_client::ClientError> {
//! use kondate_client::models::PushOptions;
//! let client = kondate_client::Client::from_env()?;
//! let mut opts = PushOptions::default();
//! opts.metrics.insert("accuracy".into(), 0.91);
//! opts.labels.push("recipe_category".into());
//! let v = client.push_model("recipe-clf", "out/model".as_ref(), &opts).await?;
//! println!("pushed version {}", v.version);
//! let (prod, path) = client.pull_model("recipe-clf@production", "model".as_ref(), true).await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use kondate_core::artifact::{self, FileEntry, Layout, ModelRef, Selector};
use kondate_core::digest::{Digest, Hasher, hash_reader};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::{Client, ClientError, http_err};

/// What a push records besides the files.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    pub metrics: BTreeMap<String, f64>,
    pub params: BTreeMap<String, String>,
    /// Label sets trained on: `NAME@REV`, or `NAME` for the current revision.
    pub labels: Vec<String>,
    /// Query-API query ids whose results it was trained on.
    pub queries: Vec<i64>,
    pub git_commit: Option<String>,
    pub note: Option<String>,
}

/// A version as the registry reports it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ModelVersion {
    pub model: String,
    pub version: i64,
    pub layout: Layout,
    pub content_digest: Digest,
    pub size: u64,
    pub files: Vec<FileEntry>,
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    #[serde(default)]
    pub lineage: serde_json::Value,
    #[serde(default)]
    pub note: Option<String>,
    pub created_by: String,
    pub created_at: String,
    #[serde(default)]
    pub aliases: Vec<String>,
}

#[derive(Deserialize)]
struct Missing {
    missing: Vec<Digest>,
}

fn invalid(e: impl std::fmt::Display) -> ClientError {
    ClientError::Config(e.to_string())
}

fn io_err(path: &Path, e: std::io::Error) -> ClientError {
    ClientError::Config(format!("{}: {e}", path.display()))
}

impl Client {
    /// The version a reference (`NAME`, `NAME@3`, `NAME@production`) means now.
    pub async fn resolve_model(&self, reference: &str) -> Result<ModelVersion, ClientError> {
        let r = ModelRef::parse(reference).map_err(invalid)?;
        let selector = match &r.selector {
            Selector::Latest => "latest".to_string(),
            Selector::Version(n) => n.to_string(),
            Selector::Alias(a) => a.clone(),
        };
        let url = format!("{}/v1/models/{}/versions/{selector}", self.endpoint, r.name);
        self.api(self.http.get(&url), &url).await
    }

    /// Push the file or folder at `path` as the next version of `name`.
    pub async fn push_model(
        &self,
        name: &str,
        path: &Path,
        opts: &PushOptions,
    ) -> Result<ModelVersion, ClientError> {
        kondate_core::names::validate_name("model name", name).map_err(invalid)?;
        let (layout, local) = artifact::collect_files(path).map_err(invalid)?;
        let mut files = Vec::with_capacity(local.len());
        for f in &local {
            let source = f.source.clone();
            let (digest, size) = tokio::task::spawn_blocking(move || {
                let mut file = std::fs::File::open(&source).map_err(|e| io_err(&source, e))?;
                hash_reader(&mut file, &mut |_| {}).map_err(|e| io_err(&source, e))
            })
            .await
            .map_err(invalid)??;
            files.push((
                f,
                FileEntry {
                    path: f.path.clone(),
                    size,
                    digest,
                },
            ));
        }
        let url = format!("{}/v1/blobs/check", self.endpoint);
        let check: Vec<_> = files
            .iter()
            .map(|(_, e)| serde_json::json!({"digest": e.digest, "size": e.size}))
            .collect();
        let missing: Missing = self
            .api(
                self.http
                    .post(&url)
                    .json(&serde_json::json!({ "blobs": check })),
                &url,
            )
            .await?;
        let mut sent = std::collections::HashSet::new();
        for (local, entry) in &files {
            if !missing.missing.contains(&entry.digest) || !sent.insert(entry.digest) {
                continue;
            }
            let url = format!("{}/v1/blobs/{}", self.endpoint, entry.digest);
            let file = tokio::fs::File::open(&local.source)
                .await
                .map_err(|e| io_err(&local.source, e))?;
            let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
                file,
                1 << 20,
            ));
            let rb = self
                .http
                .put(&url)
                .header(reqwest::header::CONTENT_LENGTH, entry.size)
                .body(body);
            let _: serde_json::Value = self.api(rb, &url).await.map_err(|e| match e {
                ClientError::Api {
                    status: 400,
                    message,
                } => ClientError::Config(format!(
                    "{}: {message} (did the file change while it was pushed?)",
                    local.source.display()
                )),
                e => e,
            })?;
        }
        let labels: Vec<serde_json::Value> = opts
            .labels
            .iter()
            .map(|l| match l.split_once('@') {
                Some((n, r)) => r
                    .parse::<i64>()
                    .map(|r| serde_json::json!({"name": n, "revision": r}))
                    .map_err(|_| {
                        invalid(format!(
                            "label reference `{l}`: the revision is not a number"
                        ))
                    }),
                None => Ok(serde_json::json!({"name": l, "revision": null})),
            })
            .collect::<Result<_, _>>()?;
        let body = serde_json::json!({
            "layout": layout,
            "files": files.iter().map(|(_, e)| e).collect::<Vec<_>>(),
            "metrics": opts.metrics,
            "params": opts.params,
            "lineage": {"labels": labels, "queries": opts.queries, "git_commit": opts.git_commit},
            "note": opts.note,
        });
        let url = format!("{}/v1/models/{name}/versions", self.endpoint);
        self.api(self.http.post(&url).json(&body), &url).await
    }

    /// Point alias `alias` of model `name` at `version` (as `kondate models alias` does);
    /// the move is recorded in the alias's history.
    pub async fn set_model_alias(
        &self,
        name: &str,
        alias: &str,
        version: i64,
    ) -> Result<(), ClientError> {
        kondate_core::names::validate_name("model name", name).map_err(invalid)?;
        kondate_core::names::validate_name("alias", alias).map_err(invalid)?;
        let url = format!("{}/v1/models/{name}/aliases/{alias}", self.endpoint);
        let _: serde_json::Value = self
            .api(
                self.http
                    .put(&url)
                    .json(&serde_json::json!({ "version": version })),
                &url,
            )
            .await?;
        Ok(())
    }

    /// Download version `reference` to `dest` (see `kondate models pull`): every file is
    /// checked against its digest, and `dest` changes only when all arrived intact.
    /// Returns the version and the path written.
    pub async fn pull_model(
        &self,
        reference: &str,
        dest: &Path,
        force: bool,
    ) -> Result<(ModelVersion, PathBuf), ClientError> {
        let v = self.resolve_model(reference).await?;
        let first = v
            .files
            .first()
            .ok_or_else(|| invalid("the version has no files"))?;
        let target = artifact::pull_target(v.layout, &first.path, dest, force).map_err(invalid)?;
        let staging = artifact::staging_beside(&target).map_err(invalid)?;
        let result = async {
            for f in &v.files {
                // The server validated these paths at push; check again before writing.
                artifact::validate_path(&f.path).map_err(invalid)?;
                let to = match v.layout {
                    Layout::File => staging.clone(),
                    Layout::Directory => staging.join(&f.path),
                };
                if let Some(dir) = to.parent() {
                    tokio::fs::create_dir_all(dir)
                        .await
                        .map_err(|e| io_err(dir, e))?;
                }
                self.download_blob(&v, f, &to).await?;
            }
            artifact::replace(&staging, &target).map_err(|e| io_err(&target, e))
        }
        .await;
        if result.is_err() {
            artifact::discard(&staging);
        }
        result?;
        Ok((v, target))
    }

    async fn download_blob(
        &self,
        v: &ModelVersion,
        f: &FileEntry,
        to: &Path,
    ) -> Result<(), ClientError> {
        let url = format!("{}/v1/blobs/{}", self.endpoint, f.digest);
        let resp = self
            .authed(self.http.get(&url))
            .send()
            .await
            .map_err(|e| http_err(&url, e))?;
        if !resp.status().is_success() {
            return Err(ClientError::Api {
                status: resp.status().as_u16(),
                message: format!(
                    "{}@{}: file `{}` could not be downloaded",
                    v.model, v.version, f.path
                ),
            });
        }
        let mut out = tokio::fs::File::create(to)
            .await
            .map_err(|e| io_err(to, e))?;
        let mut hasher = Hasher::default();
        let mut n = 0u64;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| http_err(&url, e))?;
            hasher.update(&chunk);
            n += chunk.len() as u64;
            out.write_all(&chunk).await.map_err(|e| io_err(to, e))?;
        }
        out.flush().await.map_err(|e| io_err(to, e))?;
        let actual = hasher.finish();
        if n != f.size || actual != f.digest {
            return Err(ClientError::Corrupt {
                file: format!("{}@{}: {}", v.model, v.version, f.path),
                message: format!(
                    "corrupt download: {n} bytes with SHA-256 {actual}, expected {} bytes with {}",
                    f.size, f.digest
                ),
            });
        }
        Ok(())
    }
}
