//! The registry: push, resolve, pull, aliases, delete and gc over the state database and the
//! object store.

use kondate_core::clock::ms_to_rfc3339;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use kondate_core::artifact::{self, FileEntry, Layout, ModelRef, Selector};
use kondate_core::digest::Digest;
use kondate_core::names::validate_name;
use kondate_core::{Clock, failpoint};
use kondate_db::{
    Database, DbError, Session, Tx, Value, get_i64, get_opt_i64, get_opt_string, get_string,
};
use kondate_store::Progress;
use kondate_store::{Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::{ModelsError, blob_key};

/// The registry over one state database and one object store.
#[derive(Clone)]
pub struct Models {
    pub db: Database,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    /// Label sets, to check and complete `--labels NAME[@REV]` lineage (optional: without
    /// it, label references are recorded as given).
    pub labels: Option<Arc<dyn LabelRevisions>>,
}

/// Where a push looks up the revisions of the label sets its lineage names. Implemented
/// where the services are assembled (the binary, over `kondate-labels`), so that the
/// registry depends on no other part of the flow.
#[async_trait::async_trait]
pub trait LabelRevisions: Send + Sync {
    /// The revisions of label set `name`, oldest first (empty: none yet, or no such set).
    async fn revisions(&self, name: &str) -> Result<Vec<i64>, String>;
}

impl std::fmt::Debug for Models {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Models")
            .field("store", &self.store)
            .finish()
    }
}

/// A label set a model was trained on, at a revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelRef {
    pub name: String,
    /// `None` when given without `@REV`: the registry fills in the current revision.
    pub revision: Option<i64>,
}

impl LabelRef {
    /// Parse `NAME` or `NAME@REV`.
    pub fn parse(s: &str) -> Result<LabelRef, ModelsError> {
        let (name, rev) = match s.split_once('@') {
            Some((n, r)) => (n, Some(r)),
            None => (s, None),
        };
        validate_name("label set", name)?;
        let revision = rev
            .map(|r| {
                r.parse::<i64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    ModelsError::Invalid(format!(
                        "label reference `{s}`: the revision must be a number from 1; \
                         `kondate labels history {name}` lists them"
                    ))
                })
            })
            .transpose()?;
        Ok(LabelRef {
            name: name.to_string(),
            revision,
        })
    }
}

/// Where a version came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    #[serde(default)]
    pub labels: Vec<LabelRef>,
    /// Query API ids whose results the model was trained on.
    #[serde(default)]
    pub queries: Vec<i64>,
    #[serde(default)]
    pub git_commit: Option<String>,
}

/// What is recorded with a push besides the files.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PushMeta {
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    #[serde(default)]
    pub lineage: Lineage,
    #[serde(default)]
    pub note: Option<String>,
    /// Who pushes (a user or a token), recorded; set by the caller, never by the client.
    #[serde(skip)]
    pub actor: String,
}

/// One version as `show`, `resolve` and the API report it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionInfo {
    pub model: String,
    pub version: i64,
    pub layout: Layout,
    /// SHA-256 over the files' digests, sizes and paths: equal content, equal digest.
    pub content_digest: Digest,
    pub size: u64,
    pub files: Vec<FileEntry>,
    pub metrics: BTreeMap<String, f64>,
    pub params: BTreeMap<String, String>,
    pub lineage: Lineage,
    pub note: Option<String>,
    pub created_by: String,
    pub created_at: String,
    /// Aliases pointing at this version now.
    pub aliases: Vec<String>,
}

/// A model as `list` reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelSummary {
    pub name: String,
    /// The highest version that exists (`None` when every version was deleted).
    pub latest: Option<i64>,
    pub versions: i64,
    pub aliases: BTreeMap<String, i64>,
    pub updated_at: String,
}

/// One move of an alias.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AliasMove {
    pub alias: String,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub moved_by: String,
    pub moved_at: String,
}

/// Whether a blob the caller is about to upload is needed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlobCheck {
    pub digest: Digest,
    pub size: u64,
}

/// How to collect garbage.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Delete; otherwise only report.
    pub apply: bool,
    /// Leave files younger than this alone: a push in flight has uploaded them but not yet
    /// committed its version.
    pub grace: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            apply: false,
            grace: Duration::from_secs(3600),
        }
    }
}

/// What gc found (and, applied, deleted).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GcReport {
    pub applied: bool,
    pub grace_seconds: u64,
    /// Blobs no version references.
    pub blobs: Vec<BlobCheck>,
    /// Their bytes plus the staging leftovers' bytes.
    pub bytes: u64,
    /// Half-written files a killed push left in the local store's staging folder.
    pub staging_files: usize,
    pub staging_bytes: u64,
    /// Files a version references that are missing from the store: damage to look into.
    pub missing: Vec<String>,
}

fn json_err(what: &str, e: serde_json::Error) -> ModelsError {
    ModelsError::Record(format!("{what}: {e}"))
}

fn busy(name: &str) -> impl Fn(DbError) -> ModelsError + '_ {
    move |e| {
        if e.is_lock_timeout() {
            ModelsError::Busy {
                name: name.to_string(),
            }
        } else {
            ModelsError::Db(e)
        }
    }
}

/// Check metrics and the other metadata of a push.
fn validate_meta(meta: &PushMeta) -> Result<(), ModelsError> {
    for (k, v) in &meta.metrics {
        validate_name("metric name", k)?;
        if !v.is_finite() {
            return Err(ModelsError::Invalid(format!(
                "metric `{k}` is {v}; metrics are finite numbers"
            )));
        }
    }
    for (k, v) in &meta.params {
        validate_name("parameter name", k)?;
        if v.len() > 4096 {
            return Err(ModelsError::Invalid(format!(
                "parameter `{k}` is {} bytes long; the limit is 4096",
                v.len()
            )));
        }
    }
    if let Some(sha) = &meta.lineage.git_commit
        && (!(4..=64).contains(&sha.len()) || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(ModelsError::Invalid(format!(
            "git commit `{sha}` is not a commit hash (4 to 64 hex digits)"
        )));
    }
    if meta.note.as_ref().is_some_and(|n| n.len() > 10_000) {
        return Err(ModelsError::Invalid(
            "the note is longer than 10,000 bytes".into(),
        ));
    }
    Ok(())
}

impl Models {
    /// A registry over `db` (migrated) and `store`.
    pub fn new(db: Database, store: Store) -> Models {
        Models {
            db,
            store,
            clock: Arc::new(kondate_core::SystemClock),
            labels: None,
        }
    }

    /// Open what the configuration names: the state database (migrated) and the store.
    /// Label lineage is checked once `labels` is set (the binary sets it).
    pub async fn open(config: &kondate_core::Config) -> Result<Models, ModelsError> {
        let db = Database::connect(&config.state.url).await?;
        kondate_db::state::migrate(&db).await?;
        let store = Store::open(&config.store, &config.public_url())?;
        Ok(Models::new(db, store))
    }

    fn now(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    // ---------------------------------------------------------------- push

    /// Push the file or folder at `path` as a new version of `name`: every file is read
    /// once into the store (content-addressed; a file already there is not written again),
    /// then the version is committed. `progress` gets the bytes read.
    pub async fn push_path(
        &self,
        name: &str,
        path: &Path,
        meta: PushMeta,
        progress: Progress,
    ) -> Result<VersionInfo, ModelsError> {
        validate_name("model name", name)?;
        validate_meta(&meta)?;
        let (layout, local) = artifact::collect_files(path)?;
        let mut files = Vec::with_capacity(local.len());
        for f in &local {
            let staged = self.store.stage_file(&f.source, progress.clone()).await?;
            let (digest, size) = (staged.digest, staged.size);
            // Registered before it is visible under its key: gc never sees an unregistered
            // blob of a push in flight.
            self.touch_blob(digest, size).await?;
            failpoint("models.mid_push");
            self.store
                .promote(staged, &blob_key(&digest), progress.clone())
                .await?;
            files.push(FileEntry {
                path: f.path.clone(),
                size,
                digest,
            });
        }
        failpoint("models.before_commit");
        self.commit(name, layout, files, meta).await
    }

    /// Which of `blobs` the store lacks (an uploader sends only those); the ones present are
    /// marked in use, so gc leaves them alone until the version is committed.
    pub async fn missing_blobs(&self, blobs: &[BlobCheck]) -> Result<Vec<Digest>, ModelsError> {
        let mut missing = Vec::new();
        for b in blobs {
            self.touch_blob(b.digest, b.size).await?;
            match self.store.head(&blob_key(&b.digest)).await {
                Ok(meta) if meta.size == b.size => {}
                Ok(_) | Err(StoreError::NotFound { .. }) => missing.push(b.digest),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(missing)
    }

    /// Store one blob from a stream whose digest and size the uploader claims; it is
    /// checked while written, and on a mismatch nothing is stored. True when it was new.
    pub async fn put_blob(
        &self,
        digest: Digest,
        size: u64,
        body: BoxStream<'_, Result<Bytes, std::io::Error>>,
    ) -> Result<bool, ModelsError> {
        self.touch_blob(digest, size).await?;
        Ok(self
            .store
            .put_verified(&blob_key(&digest), digest, size, body)
            .await?)
    }

    /// A blob's bytes, for downloads (the reader checks the digest).
    pub async fn open_blob(
        &self,
        digest: Digest,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes, StoreError>>), ModelsError> {
        Ok(self.store.get_stream(&blob_key(&digest)).await?)
    }

    /// Register a blob or mark it in use now (gc's grace period counts from here).
    async fn touch_blob(&self, digest: Digest, size: u64) -> Result<(), ModelsError> {
        let now = self.now();
        let d = digest.to_string();
        let touch = "UPDATE kondate_model_blobs SET touched_at = ? WHERE digest = ?";
        if self
            .db
            .execute(touch, &[Value::Int(now), Value::from(d.as_str())])
            .await?
            > 0
        {
            return Ok(());
        }
        let size = i64::try_from(size)
            .map_err(|_| ModelsError::Invalid(format!("blob {d} is too large")))?;
        let inserted = self
            .db
            .execute(
                "INSERT INTO kondate_model_blobs (digest, size, created_at, touched_at) \
                 VALUES (?, ?, ?, ?)",
                &[
                    Value::from(d.as_str()),
                    Value::Int(size),
                    Value::Int(now),
                    Value::Int(now),
                ],
            )
            .await;
        if let Err(e) = inserted {
            // Another push registered it meanwhile: touch that row instead.
            if self
                .db
                .execute(touch, &[Value::Int(now), Value::from(d.as_str())])
                .await?
                == 0
            {
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Record a new version of `name` made of `files`, all already in the store. The
    /// version number is taken under the model's row lock, so concurrent pushes get
    /// distinct numbers; the version, its blob references and the `model.pushed` event
    /// commit together.
    pub async fn commit(
        &self,
        name: &str,
        layout: Layout,
        mut files: Vec<FileEntry>,
        mut meta: PushMeta,
    ) -> Result<VersionInfo, ModelsError> {
        validate_name("model name", name)?;
        validate_meta(&meta)?;
        artifact::validate_files(layout, &mut files)?;
        self.check_lineage(&mut meta.lineage).await?;
        for f in &files {
            match self.store.head(&blob_key(&f.digest)).await {
                Ok(m) if m.size == f.size => {}
                Ok(_) | Err(StoreError::NotFound { .. }) => {
                    return Err(ModelsError::MissingBlob {
                        path: f.path.clone(),
                        digest: f.digest.to_string(),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        let size: u64 = files.iter().map(|f| f.size).sum();
        let content = artifact::content_digest(layout, &files);
        let now = self.now();
        self.ensure_model_row(name, now).await?;
        let mut tx = self.db.begin().await?;
        let version = lock_model(&mut tx, name, now, true)
            .await
            .map_err(busy(name))?;
        let distinct: BTreeSet<Digest> = files.iter().map(|f| f.digest).collect();
        for d in &distinct {
            // gc deletes a blob's row before its file, under this row's lock: if the row is
            // still here, so is the file, and now it is referenced.
            let n = tx
                .execute(
                    "UPDATE kondate_model_blobs SET touched_at = ? WHERE digest = ?",
                    &[Value::Int(now), Value::from(d.to_string())],
                )
                .await
                .map_err(busy(name))?;
            if n == 0 {
                let f = files.iter().find(|f| f.digest == *d).expect("from files");
                return Err(ModelsError::MissingBlob {
                    path: f.path.clone(),
                    digest: d.to_string(),
                });
            }
        }
        let files_json = serde_json::to_string(&files).map_err(|e| json_err("files", e))?;
        let lineage_json =
            serde_json::to_string(&meta.lineage).map_err(|e| json_err("lineage", e))?;
        tx.execute(
            "INSERT INTO kondate_model_versions (model, version, layout, content_digest, size, \
             file_count, files, metrics, params, lineage, note, created_by, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            &[
                Value::from(name),
                Value::Int(version),
                Value::from(layout_str(layout)),
                Value::from(content.to_string()),
                Value::Int(size as i64),
                Value::Int(files.len() as i64),
                Value::from(files_json),
                Value::from(
                    serde_json::to_string(&meta.metrics).map_err(|e| json_err("metrics", e))?,
                ),
                Value::from(
                    serde_json::to_string(&meta.params).map_err(|e| json_err("params", e))?,
                ),
                Value::from(lineage_json),
                Value::from(meta.note.clone()),
                Value::from(meta.actor.as_str()),
                Value::Int(now),
            ],
        )
        .await
        .map_err(busy(name))?;
        let id_row = tx
            .fetch_all(
                "SELECT id FROM kondate_model_versions WHERE model = ? AND version = ?",
                &[Value::from(name), Value::Int(version)],
            )
            .await?;
        let id = get_i64(
            id_row
                .first()
                .ok_or_else(|| DbError::missing_row("reading the new version's id"))?,
            "id",
        )?;
        for d in &distinct {
            tx.execute(
                "INSERT INTO kondate_model_version_blobs (digest, version_id) VALUES (?, ?)",
                &[Value::from(d.to_string()), Value::Int(id)],
            )
            .await?;
        }
        let payload = serde_json::json!({
            "model": name,
            "version": version,
            "content_digest": content,
            "size": size,
            "metrics": meta.metrics,
            "actor": meta.actor,
        });
        kondate_db::state::record_event_tx(
            &mut tx,
            "model.pushed",
            &format!("{name}@{version}"),
            &payload.to_string(),
            now,
        )
        .await?;
        tx.commit().await.map_err(busy(name))?;
        tracing::info!(model = name, version, %content, size, "model version pushed");
        // Everything recorded is at hand: no need to read it back.
        Ok(VersionInfo {
            model: name.to_string(),
            version,
            layout,
            content_digest: content,
            size,
            files,
            metrics: meta.metrics,
            params: meta.params,
            lineage: meta.lineage,
            note: meta.note,
            created_by: meta.actor,
            created_at: ms_to_rfc3339(now),
            aliases: Vec::new(),
        })
    }

    /// Fill in and check label and query lineage.
    async fn check_lineage(&self, lineage: &mut Lineage) -> Result<(), ModelsError> {
        for l in &mut lineage.labels {
            validate_name("label set", &l.name)?;
            let Some(labels) = &self.labels else { continue };
            let history = labels
                .revisions(&l.name)
                .await
                .map_err(ModelsError::Lineage)?;
            match l.revision {
                None => {
                    let last = history.last().ok_or_else(|| {
                        ModelsError::Lineage(format!(
                            "label set `{}` has no revision: check the name (`kondate labels \
                             list`) or run `kondate labels sync {}` first",
                            l.name, l.name
                        ))
                    })?;
                    l.revision = Some(*last);
                }
                Some(r) if !history.contains(&r) => {
                    return Err(ModelsError::Lineage(format!(
                        "label set `{}` has no revision {r}; `kondate labels history {}` \
                         lists them",
                        l.name, l.name
                    )));
                }
                Some(_) => {}
            }
        }
        for q in &lineage.queries {
            match kondate_db::state::query_status(&self.db, *q).await? {
                Some(s) if s == "success" => {}
                Some(s) => {
                    return Err(ModelsError::Lineage(format!(
                        "query {q} is {s}, not successful; a model is trained on a finished \
                         query's result"
                    )));
                }
                None => return Err(ModelsError::Lineage(format!("there is no query {q}"))),
            }
        }
        Ok(())
    }

    async fn ensure_model_row(&self, name: &str, now: i64) -> Result<(), ModelsError> {
        let exists = self
            .db
            .fetch_optional(
                "SELECT last_version FROM kondate_models WHERE name = ?",
                &[Value::from(name)],
            )
            .await?
            .is_some();
        if exists {
            return Ok(());
        }
        let inserted = self
            .db
            .execute(
                "INSERT INTO kondate_models (name, last_version, created_at, updated_at) \
                 VALUES (?, 0, ?, ?)",
                &[Value::from(name), Value::Int(now), Value::Int(now)],
            )
            .await;
        if let Err(e) = inserted {
            // A concurrent first push created it: fine, as long as it is there now.
            let there = self
                .db
                .fetch_optional(
                    "SELECT last_version FROM kondate_models WHERE name = ?",
                    &[Value::from(name)],
                )
                .await?
                .is_some();
            if !there {
                return Err(e.into());
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- read

    /// Every model with its latest version and aliases.
    pub async fn list(&self) -> Result<Vec<ModelSummary>, ModelsError> {
        let rows = self
            .db
            .fetch_all(
                "SELECT m.name AS name, m.updated_at AS updated_at, \
                 (SELECT MAX(v.version) FROM kondate_model_versions v WHERE v.model = m.name) AS latest, \
                 (SELECT COUNT(*) FROM kondate_model_versions v WHERE v.model = m.name) AS n \
                 FROM kondate_models m ORDER BY m.name",
                &[],
            )
            .await?;
        let aliases = self.all_aliases(None).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let name = get_string(&r, "name")?;
            out.push(ModelSummary {
                latest: get_opt_i64(&r, "latest"),
                versions: get_i64(&r, "n")?,
                aliases: aliases.get(&name).cloned().unwrap_or_default(),
                updated_at: ms_to_rfc3339(get_i64(&r, "updated_at")?),
                name,
            });
        }
        Ok(out)
    }

    /// `model → alias → version`, for one model or all.
    async fn all_aliases(
        &self,
        model: Option<&str>,
    ) -> Result<HashMap<String, BTreeMap<String, i64>>, ModelsError> {
        let rows = match model {
            Some(m) => {
                self.db
                    .fetch_all(
                        "SELECT model, alias, version FROM kondate_model_aliases WHERE model = ?",
                        &[Value::from(m)],
                    )
                    .await?
            }
            None => {
                self.db
                    .fetch_all(
                        "SELECT model, alias, version FROM kondate_model_aliases",
                        &[],
                    )
                    .await?
            }
        };
        let mut out: HashMap<String, BTreeMap<String, i64>> = HashMap::new();
        for r in rows {
            out.entry(get_string(&r, "model")?)
                .or_default()
                .insert(get_string(&r, "alias")?, get_i64(&r, "version")?);
        }
        Ok(out)
    }

    /// The versions of `name`, oldest first.
    pub async fn versions(&self, name: &str) -> Result<Vec<VersionInfo>, ModelsError> {
        let mut all = self.recent_versions(name, None, i64::MAX).await?;
        all.reverse();
        Ok(all)
    }

    /// At most `limit` of `name`'s versions below `below` (all when None), newest first: a
    /// page of a model's versions, however many it has.
    pub async fn recent_versions(
        &self,
        name: &str,
        below: Option<i64>,
        limit: i64,
    ) -> Result<Vec<VersionInfo>, ModelsError> {
        validate_name("model name", name)?;
        self.require_model(name).await?;
        let rows = self
            .db
            .fetch_all(
                &format!(
                    "{VERSION_COLUMNS} WHERE model = ? AND version < ? ORDER BY version DESC \
                     LIMIT ?"
                ),
                &[
                    Value::from(name),
                    Value::Int(below.unwrap_or(i64::MAX)),
                    Value::Int(limit.max(0)),
                ],
            )
            .await?;
        let aliases = self.aliases(name).await?;
        rows.iter().map(|r| version_from_row(r, &aliases)).collect()
    }

    /// `name`'s aliases and the versions they point at.
    pub async fn aliases(&self, name: &str) -> Result<BTreeMap<String, i64>, ModelsError> {
        Ok(self
            .all_aliases(Some(name))
            .await?
            .remove(name)
            .unwrap_or_default())
    }

    async fn require_model(&self, name: &str) -> Result<(), ModelsError> {
        let row = self
            .db
            .fetch_optional(
                "SELECT name FROM kondate_models WHERE name = ?",
                &[Value::from(name)],
            )
            .await?;
        match row {
            Some(_) => Ok(()),
            None => Err(ModelsError::NoSuchModel {
                name: name.to_string(),
            }),
        }
    }

    /// The version a reference means.
    pub async fn resolve(&self, r: &ModelRef) -> Result<i64, ModelsError> {
        let not_found = || ModelsError::NoSuchVersion {
            reference: r.to_string(),
            name: r.name.clone(),
        };
        let row = match &r.selector {
            Selector::Latest => self
                .db
                .fetch_optional(
                    "SELECT MAX(version) AS version FROM kondate_model_versions WHERE model = ?",
                    &[Value::from(r.name.as_str())],
                )
                .await?,
            Selector::Version(n) => self
                .db
                .fetch_optional(
                    "SELECT version FROM kondate_model_versions WHERE model = ? AND version = ?",
                    &[Value::from(r.name.as_str()), Value::Int(*n)],
                )
                .await?,
            Selector::Alias(a) => {
                self.db
                    .fetch_optional(
                        "SELECT version FROM kondate_model_aliases WHERE model = ? AND alias = ?",
                        &[Value::from(r.name.as_str()), Value::from(a.as_str())],
                    )
                    .await?
            }
        };
        match row.and_then(|r| get_opt_i64(&r, "version")) {
            Some(v) => Ok(v),
            None => {
                self.require_model(&r.name).await?;
                Err(not_found())
            }
        }
    }

    /// One version, with its files and metadata.
    pub async fn show(&self, r: &ModelRef) -> Result<VersionInfo, ModelsError> {
        let version = self.resolve(r).await?;
        let row = self
            .db
            .fetch_optional(
                &format!("{VERSION_COLUMNS} WHERE model = ? AND version = ?"),
                &[Value::from(r.name.as_str()), Value::Int(version)],
            )
            .await?
            .ok_or_else(|| ModelsError::NoSuchVersion {
                reference: r.to_string(),
                name: r.name.clone(),
            })?;
        let aliases = self.aliases(&r.name).await?;
        version_from_row(&row, &aliases)
    }

    // ---------------------------------------------------------------- pull

    /// Write version `r` to `dest`, checking every file's digest. A single-file version
    /// becomes the file `dest` (or `dest/NAME` when `dest` is a folder); a folder version
    /// becomes the folder `dest`. Everything is written beside `dest` first and moved into
    /// place at the end, so a failure — a corrupt or missing file — leaves `dest` as it was.
    /// An existing `dest` is replaced only with `force` (an empty folder always may be).
    pub async fn pull(
        &self,
        r: &ModelRef,
        dest: &Path,
        force: bool,
        progress: Progress,
    ) -> Result<(VersionInfo, PathBuf), ModelsError> {
        let info = self.show(r).await?;
        let reference = format!("{}@{}", info.model, info.version);
        let store = self.store.clone();
        let target = artifact::pull_target(info.layout, &info.files[0].path, dest, force)?;
        let staging = artifact::staging_beside(&target)?;
        let result = async {
            match info.layout {
                Layout::File => {
                    let f = &info.files[0];
                    fetch_file(&store, &reference, f, &staging, progress.clone()).await?;
                }
                Layout::Directory => {
                    std::fs::create_dir(&staging).map_err(|e| io(&staging, e))?;
                    for f in &info.files {
                        let path = staging.join(&f.path);
                        if let Some(dir) = path.parent() {
                            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
                        }
                        fetch_file(&store, &reference, f, &path, progress.clone()).await?;
                    }
                }
            }
            artifact::replace(&staging, &target).map_err(|e| io(&target, e))
        }
        .await;
        if result.is_err() {
            artifact::discard(&staging);
        }
        result?;
        Ok((info, target))
    }

    // ---------------------------------------------------------------- aliases

    /// Point `alias` of `name` at `version` (or remove it, with `None`), atomically; the
    /// move is kept in the history and recorded as a `model.alias_moved` event. Returns the
    /// move (from = to when nothing changed).
    pub async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: Option<i64>,
        actor: &str,
    ) -> Result<AliasMove, ModelsError> {
        validate_name("model name", name)?;
        artifact::validate_alias(alias)?;
        self.require_model(name).await?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        lock_model(&mut tx, name, now, false)
            .await
            .map_err(busy(name))?;
        if let Some(v) = version {
            let exists = tx
                .fetch_all(
                    "SELECT version FROM kondate_model_versions WHERE model = ? AND version = ?",
                    &[Value::from(name), Value::Int(v)],
                )
                .await?;
            if exists.is_empty() {
                return Err(ModelsError::NoSuchVersion {
                    reference: format!("{name}@{v}"),
                    name: name.to_string(),
                });
            }
        }
        let cur = tx
            .fetch_all(
                "SELECT version FROM kondate_model_aliases WHERE model = ? AND alias = ?",
                &[Value::from(name), Value::from(alias)],
            )
            .await?;
        let from = cur.first().map(|r| get_i64(r, "version")).transpose()?;
        if from.is_none() && version.is_none() {
            return Err(ModelsError::Invalid(format!(
                "model `{name}` has no alias `{alias}` to remove"
            )));
        }
        let mv = AliasMove {
            alias: alias.to_string(),
            from,
            to: version,
            moved_by: actor.to_string(),
            moved_at: ms_to_rfc3339(now),
        };
        if from == version {
            return Ok(mv);
        }
        tx.execute(
            "DELETE FROM kondate_model_aliases WHERE model = ? AND alias = ?",
            &[Value::from(name), Value::from(alias)],
        )
        .await?;
        if let Some(v) = version {
            tx.execute(
                "INSERT INTO kondate_model_aliases (model, alias, version, moved_by, moved_at) \
                 VALUES (?, ?, ?, ?, ?)",
                &[
                    Value::from(name),
                    Value::from(alias),
                    Value::Int(v),
                    Value::from(actor),
                    Value::Int(now),
                ],
            )
            .await?;
        }
        tx.execute(
            "INSERT INTO kondate_model_alias_moves (model, alias, from_version, to_version, \
             moved_by, moved_at) VALUES (?, ?, ?, ?, ?, ?)",
            &[
                Value::from(name),
                Value::from(alias),
                Value::from(from),
                Value::from(version),
                Value::from(actor),
                Value::Int(now),
            ],
        )
        .await?;
        let payload = serde_json::json!({
            "model": name, "alias": alias, "from": from, "to": version, "actor": actor,
        });
        kondate_db::state::record_event_tx(
            &mut tx,
            "model.alias_moved",
            &format!("{name}@{alias}"),
            &payload.to_string(),
            now,
        )
        .await?;
        tx.commit().await.map_err(busy(name))?;
        tracing::info!(model = name, alias, ?from, to = ?version, actor, "alias moved");
        Ok(mv)
    }

    /// Every move of `name`'s aliases, oldest first.
    pub async fn alias_history(&self, name: &str) -> Result<Vec<AliasMove>, ModelsError> {
        let mut moves = self.recent_alias_moves(name, i64::MAX).await?;
        moves.reverse();
        Ok(moves)
    }

    /// The latest `limit` moves of `name`'s aliases, newest first.
    pub async fn recent_alias_moves(
        &self,
        name: &str,
        limit: i64,
    ) -> Result<Vec<AliasMove>, ModelsError> {
        validate_name("model name", name)?;
        self.require_model(name).await?;
        let rows = self
            .db
            .fetch_all(
                "SELECT alias, from_version, to_version, moved_by, moved_at \
                 FROM kondate_model_alias_moves WHERE model = ? ORDER BY id DESC LIMIT ?",
                &[Value::from(name), Value::Int(limit.max(0))],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AliasMove {
                    alias: get_string(r, "alias")?,
                    from: get_opt_i64(r, "from_version"),
                    to: get_opt_i64(r, "to_version"),
                    moved_by: get_string(r, "moved_by")?,
                    moved_at: ms_to_rfc3339(get_i64(r, "moved_at")?),
                })
            })
            .collect()
    }

    // ---------------------------------------------------------------- delete and gc

    /// Delete version `version` of `name` (refused while an alias points to it). Its
    /// number is never reused; its files go with the next gc unless another version
    /// shares them.
    pub async fn delete(&self, name: &str, version: i64, actor: &str) -> Result<(), ModelsError> {
        validate_name("model name", name)?;
        self.require_model(name).await?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        lock_model(&mut tx, name, now, false)
            .await
            .map_err(busy(name))?;
        let row = tx
            .fetch_all(
                "SELECT id FROM kondate_model_versions WHERE model = ? AND version = ?",
                &[Value::from(name), Value::Int(version)],
            )
            .await?;
        let Some(row) = row.first() else {
            return Err(ModelsError::NoSuchVersion {
                reference: format!("{name}@{version}"),
                name: name.to_string(),
            });
        };
        let id = get_i64(row, "id")?;
        let aliases: Vec<String> = tx
            .fetch_all(
                "SELECT alias FROM kondate_model_aliases WHERE model = ? AND version = ? ORDER BY alias",
                &[Value::from(name), Value::Int(version)],
            )
            .await?
            .iter()
            .map(|r| get_string(r, "alias"))
            .collect::<Result<_, _>>()?;
        if !aliases.is_empty() {
            return Err(ModelsError::AliasPointsHere {
                name: name.to_string(),
                version,
                aliases: aliases.join(", "),
            });
        }
        tx.execute(
            "DELETE FROM kondate_model_version_blobs WHERE version_id = ?",
            &[Value::Int(id)],
        )
        .await?;
        tx.execute(
            "DELETE FROM kondate_model_versions WHERE id = ?",
            &[Value::Int(id)],
        )
        .await?;
        let payload = serde_json::json!({"model": name, "version": version, "actor": actor});
        kondate_db::state::record_event_tx(
            &mut tx,
            "model.deleted",
            &format!("{name}@{version}"),
            &payload.to_string(),
            now,
        )
        .await?;
        tx.commit().await.map_err(busy(name))?;
        tracing::info!(model = name, version, actor, "model version deleted");
        Ok(())
    }

    /// Find (and with `apply`, delete) blobs no version references and that nobody touched
    /// within the grace period, files in the store that the registry does not know, and
    /// staging leftovers. Each blob is deleted under its row's lock, so a push committing
    /// at that moment either keeps it or finds it gone and says so — never a version
    /// pointing at a deleted file.
    pub async fn gc(&self, opts: &GcOptions) -> Result<GcReport, ModelsError> {
        let now = self.now();
        let grace_ms = i64::try_from(opts.grace.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now.saturating_sub(grace_ms);
        let cutoff_time = std::time::UNIX_EPOCH + Duration::from_millis(cutoff.max(0) as u64);
        let mut report = GcReport {
            applied: opts.apply,
            grace_seconds: opts.grace.as_secs(),
            ..GcReport::default()
        };
        // Objects are listed before rows are read: a push registers a blob's row before the
        // file appears, so every file listed here has its row visible below.
        let objects = self.store.list(crate::BLOB_PREFIX).await?;
        let known: HashMap<String, bool> = self
            .db
            .fetch_all(
                "SELECT b.digest AS digest, (SELECT COUNT(*) FROM kondate_model_version_blobs v \
                 WHERE v.digest = b.digest) AS refs FROM kondate_model_blobs b",
                &[],
            )
            .await?
            .iter()
            .map(|r| Ok((get_string(r, "digest")?, get_i64(r, "refs")? > 0)))
            .collect::<Result<_, DbError>>()?;
        let mut listed = BTreeSet::new();
        for o in &objects {
            let key = o.location.as_ref();
            let Some(digest) = key
                .rsplit('/')
                .next()
                .and_then(|h| Digest::parse(&format!("sha256:{h}")).ok())
            else {
                continue;
            };
            listed.insert(digest.to_string());
            if known.contains_key(&digest.to_string()) {
                continue;
            }
            // A file no row knows (a restored database, a copied bucket): old enough, it goes.
            if o.last_modified.timestamp_millis() <= cutoff {
                if opts.apply {
                    self.store.delete(key).await?;
                }
                report.bytes += o.size;
                report.blobs.push(BlobCheck {
                    digest,
                    size: o.size,
                });
            }
        }
        for (digest, referenced) in &known {
            if *referenced && !listed.contains(digest) {
                report.missing.push(digest.clone());
            }
        }
        report.missing.sort();
        let candidates = self
            .db
            .fetch_all(
                "SELECT digest, size FROM kondate_model_blobs b WHERE touched_at <= ? AND NOT EXISTS \
                 (SELECT 1 FROM kondate_model_version_blobs v WHERE v.digest = b.digest) \
                 ORDER BY digest",
                &[Value::Int(cutoff)],
            )
            .await?;
        for r in candidates {
            let d = get_string(&r, "digest")?;
            let size = get_i64(&r, "size")?.max(0) as u64;
            let Ok(digest) = Digest::parse(&d) else {
                continue;
            };
            let present = listed.contains(&d);
            if opts.apply {
                let mut tx = self.db.begin().await?;
                let n = tx
                    .execute(
                        "DELETE FROM kondate_model_blobs WHERE digest = ? AND touched_at <= ? AND \
                         NOT EXISTS (SELECT 1 FROM kondate_model_version_blobs v WHERE v.digest = ?)",
                        &[Value::from(d.as_str()), Value::Int(cutoff), Value::from(d.as_str())],
                    )
                    .await?;
                if n == 0 {
                    continue; // touched or referenced meanwhile
                }
                // The file goes while the row's deletion is uncommitted: a push touching the
                // row waits for this transaction, then finds no row and re-uploads.
                self.store.delete(&blob_key(&digest)).await?;
                tx.commit().await?;
            }
            if present {
                report.bytes += size;
                report.blobs.push(BlobCheck { digest, size });
            }
        }
        let (files, bytes) = self.store.clean_staging(cutoff_time, opts.apply)?;
        report.staging_files = files;
        report.staging_bytes = bytes;
        report.bytes += bytes;
        if opts.apply {
            tracing::info!(
                blobs = report.blobs.len(),
                bytes = report.bytes,
                "model gc applied"
            );
        }
        Ok(report)
    }
}

const VERSION_COLUMNS: &str = "SELECT model, version, layout, content_digest, size, files, \
     metrics, params, lineage, note, created_by, created_at FROM kondate_model_versions";

fn layout_str(l: Layout) -> &'static str {
    match l {
        Layout::File => "file",
        Layout::Directory => "directory",
    }
}

fn version_from_row(
    r: &kondate_db::AnyRow,
    aliases: &BTreeMap<String, i64>,
) -> Result<VersionInfo, ModelsError> {
    let version = get_i64(r, "version")?;
    let parse = |col: &str| -> Result<serde_json::Value, ModelsError> {
        let s = get_string(r, col)?;
        serde_json::from_str(&s).map_err(|e| json_err(col, e))
    };
    let layout = match get_string(r, "layout")?.as_str() {
        "file" => Layout::File,
        _ => Layout::Directory,
    };
    Ok(VersionInfo {
        model: get_string(r, "model")?,
        version,
        layout,
        content_digest: Digest::parse(&get_string(r, "content_digest")?)?,
        size: get_i64(r, "size")?.max(0) as u64,
        files: serde_json::from_value(parse("files")?).map_err(|e| json_err("files", e))?,
        metrics: serde_json::from_value(parse("metrics")?).map_err(|e| json_err("metrics", e))?,
        params: serde_json::from_value(parse("params")?).map_err(|e| json_err("params", e))?,
        lineage: serde_json::from_value(parse("lineage")?).map_err(|e| json_err("lineage", e))?,
        note: get_opt_string(r, "note"),
        created_by: get_string(r, "created_by")?,
        created_at: ms_to_rfc3339(get_i64(r, "created_at")?),
        aliases: aliases
            .iter()
            .filter(|(_, v)| **v == version)
            .map(|(a, _)| a.clone())
            .collect(),
    })
}

/// Lock `name`'s row for the transaction (a second push or alias move waits here); with
/// `bump`, take the next version number and return it.
async fn lock_model(tx: &mut Tx, name: &str, now: i64, bump: bool) -> Result<i64, DbError> {
    let sql = if bump {
        "UPDATE kondate_models SET last_version = last_version + 1, updated_at = ? WHERE name = ?"
    } else {
        "UPDATE kondate_models SET updated_at = ? WHERE name = ?"
    };
    tx.execute(sql, &[Value::Int(now), Value::from(name)])
        .await?;
    let rows = tx
        .fetch_all(
            "SELECT last_version FROM kondate_models WHERE name = ?",
            &[Value::from(name)],
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| DbError::missing_row(&format!("locking model `{name}`")))?;
    get_i64(row, "last_version")
}

fn io(path: &Path, e: std::io::Error) -> ModelsError {
    ModelsError::Io {
        path: path.display().to_string(),
        source: e,
    }
}

async fn fetch_file(
    store: &Store,
    reference: &str,
    f: &FileEntry,
    to: &Path,
    progress: Progress,
) -> Result<(), ModelsError> {
    store
        .get_verified(&blob_key(&f.digest), f.digest, f.size, to, progress)
        .await
        .map_err(|source| ModelsError::Corrupt {
            reference: reference.to_string(),
            path: f.path.clone(),
            source: Box::new(source),
        })
}
