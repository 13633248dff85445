//! `diff`, `sync`, `history` and `export` over a label set's source, its table in the service
//! database, and its snapshots in the object store.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use kondate_core::Clock;
use kondate_db::{Database, Session};
use kondate_store::Store;
use serde::Serialize;

use crate::LabelsError;
use crate::cells::LabelValue;
use crate::current::{Columns, Current};
use crate::definition::{LabelSet, LabelType};
use crate::diff::{Diff, diff};
use crate::snapshot;
use crate::source::Grid;
use crate::table::{self, Revision, SetState};
use crate::validate::{Invalid, Validated, validate};

/// Where label sets are written: the service database, the object store for snapshots, and
/// optionally the state database for `labels.changed` events.
#[derive(Debug, Clone)]
pub struct Labels {
    pub service: Database,
    pub store: Store,
    pub state: Option<Database>,
    pub clock: Arc<dyn Clock>,
}

/// How to sync.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Compute and report, write nothing.
    pub dry_run: bool,
    /// Leave invalid rows out instead of refusing the whole sync.
    pub skip_invalid: bool,
    /// Apply a changed definition to the table.
    pub migrate: bool,
    /// Compare with the table even when the source's fingerprint has not changed.
    pub force: bool,
    /// Who runs the sync (a user or a token name), recorded in the history.
    pub actor: String,
}

/// A label set as `labels list` and `GET /v1/labels` show it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub name: String,
    pub table: String,
    pub key: Vec<String>,
    /// A one-line description of the source.
    pub source: String,
    pub columns: Vec<crate::definition::ColumnDef>,
    /// The current revision; `None` before the first sync.
    pub revision: Option<i64>,
    pub fingerprint: Option<String>,
    /// Where the definition is: a file, or a section of `kondate.toml`.
    pub definition: String,
}

/// What a sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A new revision was written.
    Applied,
    /// The source has the fingerprint of the last sync: nothing was compared or written.
    Unchanged,
    /// The source changed but the table already holds the same rows: no new revision.
    NoChanges,
    /// `--dry-run`: the difference was computed, nothing was written.
    DryRun,
}

/// The report of a diff or sync.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub name: String,
    /// The key columns, naming the parts of every `key` in `diff`.
    pub key: Vec<String>,
    pub outcome: Outcome,
    /// The revision the table holds afterwards (0 before the first sync).
    pub revision: i64,
    pub fingerprint: String,
    /// Valid rows in the source.
    pub rows: usize,
    pub diff: Diff,
    /// Rows deleted plus rows inserted in the table.
    pub rows_written: u64,
    /// Invalid rows left out (with `skip_invalid`), or found by `diff`.
    pub invalid: Vec<Invalid>,
    pub empty_rows: usize,
    /// Sheet columns with values but no header, which were ignored.
    pub unnamed_columns: Vec<String>,
    /// The definition changes `--migrate` applied (or `diff` found).
    pub migration: Vec<String>,
    pub snapshot_key: Option<String>,
    /// Milliseconds spent in each phase of an applied sync (validate, lock, read_current,
    /// diff, sort, write, commit), for whoever wonders where the time went.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timings_ms: Vec<(String, u64)>,
}

/// Wall-clock time per phase.
struct Phases {
    last: std::time::Instant,
    laps: Vec<(String, u64)>,
}

impl Phases {
    fn start() -> Self {
        Self {
            last: std::time::Instant::now(),
            laps: Vec::new(),
        }
    }

    fn lap(&mut self, name: &str) {
        let now = std::time::Instant::now();
        self.laps
            .push((name.to_string(), (now - self.last).as_millis() as u64));
        self.last = now;
    }

    fn done(self) -> Vec<(String, u64)> {
        self.laps
    }
}

/// The differences between two definitions that change the table or what is valid.
pub fn definition_changes(old: &LabelSet, new: &LabelSet) -> Vec<String> {
    let mut out = Vec::new();
    if old.table != new.table {
        out.push(format!("table `{}` → `{}`", old.table, new.table));
    }
    if old.key != new.key {
        out.push(format!(
            "key [{}] → [{}]",
            old.key.join(", "),
            new.key.join(", ")
        ));
    }
    for c in &new.columns {
        let Some(o) = old.columns.iter().find(|o| o.name == c.name) else {
            out.push(format!("new column `{}` ({})", c.name, c.ty.as_str()));
            continue;
        };
        if o.ty != c.ty {
            out.push(format!(
                "column `{}`: type {} → {}",
                c.name,
                o.ty.as_str(),
                c.ty.as_str()
            ));
        }
        let added: Vec<&String> = c.values.iter().filter(|v| !o.values.contains(v)).collect();
        let removed: Vec<&String> = o.values.iter().filter(|v| !c.values.contains(v)).collect();
        if c.ty == LabelType::Enum && o.ty == LabelType::Enum {
            if !added.is_empty() {
                out.push(format!(
                    "column `{}`: new enum value(s) {}",
                    c.name,
                    quoted(&added)
                ));
            }
            if !removed.is_empty() {
                out.push(format!(
                    "column `{}`: enum value(s) {} removed",
                    c.name,
                    quoted(&removed)
                ));
            }
        }
        if o.required != c.required {
            out.push(format!(
                "column `{}` is now {}",
                c.name,
                if c.required { "required" } else { "optional" }
            ));
        }
        if o.role != c.role {
            out.push(format!(
                "column `{}`: role {:?} → {:?}",
                c.name, o.role, c.role
            ));
        }
    }
    for o in &old.columns {
        if !new.columns.iter().any(|c| c.name == o.name) {
            out.push(format!("column `{}` removed", o.name));
        }
    }
    out
}

fn quoted(v: &[&String]) -> String {
    v.iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How many rows of the table use enum values the new definition no longer allows, per
/// column: the part of a definition change that would otherwise lose data silently.
fn removed_values_in_use(old: &LabelSet, new: &LabelSet, rows: &Current) -> Vec<String> {
    let mut out = Vec::new();
    for (i, o) in old.columns.iter().enumerate() {
        let Some(c) = new.columns.iter().find(|c| c.name == o.name) else {
            continue;
        };
        if o.ty != LabelType::Enum {
            continue;
        }
        let n = (0..rows.len())
            .filter(|&r| matches!(rows.value(r, i), LabelValue::Text(t) if !c.values.contains(&t)))
            .count();
        if n > 0 {
            out.push(format!(
                "{n} row(s) of the table still hold a value of `{}` that is no longer allowed",
                o.name
            ));
        }
    }
    out
}

impl Labels {
    /// Labels written to `service`, snapshots to `store`, on the system clock, without
    /// events.
    pub fn new(service: Database, store: Store) -> Labels {
        Labels {
            service,
            store,
            state: None,
            clock: Arc::new(kondate_core::SystemClock),
        }
    }

    /// Open what the configuration names: the service database, the store, and the state
    /// database (migrated) for events.
    pub async fn open(config: &kondate_core::Config) -> Result<Labels, LabelsError> {
        let service = Database::connect(&config.service.url).await?;
        let state = Database::connect(&config.state.url).await?;
        kondate_db::state::migrate(&state).await?;
        let store = Store::open(&config.store, &config.public_url())?;
        Ok(Labels {
            state: Some(state),
            ..Labels::new(service, store)
        })
    }

    /// The revision and fingerprint of `name` in the service database (`None` before its
    /// first sync).
    pub async fn current(&self, name: &str) -> Result<Option<SetState>, LabelsError> {
        Ok(table::read_state(&self.service, name)
            .await?
            .filter(|s| s.revision > 0))
    }

    /// The project's label sets with their current revision and fingerprint.
    pub async fn list(&self, project: &kondate_core::Project) -> Result<Vec<Listed>, LabelsError> {
        let mut out = Vec::new();
        for set in crate::load_all(project)? {
            let current = self.current(&set.name).await?;
            out.push(Listed {
                source: set.source.describe(),
                revision: current.as_ref().map(|c| c.revision),
                fingerprint: current.map(|c| c.fingerprint),
                name: set.name,
                table: set.table,
                key: set.key,
                columns: set.columns,
                definition: set.origin,
            });
        }
        Ok(out)
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// Compare `grid` with the table; writes nothing. Invalid rows are reported, not fatal.
    pub async fn diff(&self, set: &LabelSet, grid: &Grid) -> Result<SyncReport, LabelsError> {
        let fingerprint = grid.fingerprint(&set.to_json());
        let validated = validate(set, grid)?;
        self.compare(set, fingerprint, validated).await
    }

    /// [`Labels::diff`] of rows already validated.
    async fn compare(
        &self,
        set: &LabelSet,
        fingerprint: String,
        validated: Validated,
    ) -> Result<SyncReport, LabelsError> {
        let state = table::read_state(&self.service, &set.name).await?;
        let old = match &state {
            Some(s) if s.revision > 0 && s.definition != set.to_json() => {
                Some(previous_definition(s)?)
            }
            _ => None,
        };
        let migration = old
            .as_ref()
            .map(|o| definition_changes(o, set))
            .unwrap_or_default();
        // A changed definition is only reported: the old table may not even have the new
        // columns, and `--migrate` rewrites every row anyway.
        let d = if migration.is_empty() {
            let current = table::read_rows(&self.service, set).await?;
            diff(set, Current::Rows(current), &validated.rows)
        } else {
            Diff::default()
        };
        Ok(report(
            set,
            Outcome::DryRun,
            state.map_or(0, |s| s.revision),
            fingerprint,
            validated,
            d,
            migration,
        ))
    }

    /// Validate `grid`, and apply the difference to the table in one transaction together
    /// with a new revision and its snapshot.
    pub async fn sync(
        &self,
        set: &LabelSet,
        grid: &Grid,
        opts: &SyncOptions,
    ) -> Result<SyncReport, LabelsError> {
        let mut phases = Phases::start();
        let definition = set.to_json();
        let fingerprint = grid.fingerprint(&definition);
        let validated = validate(set, grid)?;
        phases.lap("validate");
        if !validated.invalid.is_empty() && !opts.skip_invalid {
            return Err(LabelsError::InvalidRows {
                name: set.name.clone(),
                rows: validated.invalid_rows.len(),
                total: validated.rows.len() + validated.invalid_rows.len(),
                invalid: validated.invalid,
            });
        }
        if opts.dry_run {
            return self.compare(set, fingerprint, validated).await;
        }
        let db = &self.service;
        table::ensure_meta(db).await?;
        let known = table::ensure_set_row(db, set, self.now_ms()).await?;
        // The table is created before the transaction, unless the definition changed (then
        // `--migrate` rebuilds it): MySQL commits at every DDL statement, which would end
        // the transaction and its lock.
        if known.is_none_or(|s| s.revision == 0 || s.definition == definition) {
            table::ensure_table(db, set).await?;
        }
        let mut tx = db.begin().await?;
        let state = table::lock_state(&mut tx, &set.name, self.now_ms()).await?;
        phases.lap("lock");
        if state.revision > 0 && state.fingerprint == fingerprint && !opts.force {
            return Ok(report(
                set,
                Outcome::Unchanged,
                state.revision,
                fingerprint,
                validated,
                Diff::default(),
                Vec::new(),
            ));
        }
        let old = if state.revision > 0 && state.definition != definition {
            Some(previous_definition(&state)?)
        } else {
            None
        };
        let migration = old
            .as_ref()
            .map(|o| definition_changes(o, set))
            .unwrap_or_default();
        let revision = state.revision + 1;
        let snapshot_key = snapshot::key(&set.name, revision, &fingerprint);
        let mut rows: Vec<&[LabelValue]> =
            validated.rows.iter().map(|r| r.values.as_slice()).collect();
        let keys = set.key_indices();
        rows.sort_unstable_by(|a, b| crate::key::cmp_rows(a, b, &keys));
        // The snapshot is encoded on another core while the table is read, diffed and
        // written; it is stored before the commit, so a committed revision always has one.
        let batch = snapshot::to_batch(set, &rows)?;
        let encoding = tokio::task::spawn_blocking(move || snapshot::encode_parquet(&batch));
        phases.lap("sort");
        let existing_table = old.as_ref().map_or(&set.table, |o| &o.table);
        let exists = db.table_exists(existing_table).await?;
        let current = match (&old, exists) {
            (_, false) => Current::Rows(Vec::new()),
            (Some(o), true) => Current::Rows(table::read_rows_tx(&mut tx, o).await?),
            (None, true) if state.revision > 0 && !opts.force => {
                self.current_rows(&mut tx, set, state.revision).await?
            }
            (None, true) => Current::Rows(table::read_rows_tx(&mut tx, set).await?),
        };
        phases.lap("read_current");
        if old.is_none() && !exists {
            // Dropped by hand since the check above: create it again, with all rows.
            tx.execute(&table::create_table_sql(db, set, &set.table)?, &[])
                .await?;
        }
        if !migration.is_empty() && !opts.migrate {
            let mut changes = migration;
            if let Some(o) = &old {
                changes.extend(removed_values_in_use(o, set, &current));
            }
            return Err(LabelsError::DefinitionChanged {
                name: set.name.clone(),
                revision: state.revision,
                changes,
            });
        }
        let rebuild = !migration.is_empty();
        let d = if migration.is_empty() {
            diff(set, current, &validated.rows)
        } else {
            // A changed definition rebuilds the table: every row is written.
            let mut d = diff(set, Current::Rows(Vec::new()), &validated.rows);
            d.removed = Vec::new();
            d
        };
        if d.is_empty() && migration.is_empty() {
            // Same rows: remember the fingerprint so the next sync stops early.
            tx.execute(
                "UPDATE kondate_label_sets SET fingerprint = ? WHERE name = ?",
                &[
                    kondate_db::Value::from(fingerprint.as_str()),
                    kondate_db::Value::from(set.name.as_str()),
                ],
            )
            .await?;
            tx.commit().await?;
            return Ok(report(
                set,
                Outcome::NoChanges,
                state.revision,
                fingerprint,
                validated,
                d,
                Vec::new(),
            ));
        }
        phases.lap("diff");
        let written = if rebuild {
            let drop = exists.then_some(existing_table.as_str());
            rebuild_table(&mut tx, set, drop, &rows).await?
        } else {
            let mut gone: Vec<Vec<LabelValue>> = d.removed.clone();
            gone.extend(d.changed.iter().map(|c| c.key.clone()));
            let deleted = table::delete_keys(&mut tx, set, &gone).await?;
            let fresh: Vec<&[LabelValue]> = d
                .added
                .iter()
                .map(|a| a.values.as_slice())
                .chain(d.changed.iter().map(|c| c.values.as_slice()))
                .collect();
            deleted + table::insert_rows(&mut tx, set, &set.table, fresh.into_iter()).await?
        };
        let parquet = encoding.await.map_err(|e| LabelsError::Snapshot {
            key: snapshot_key.clone(),
            message: e.to_string(),
        })??;
        self.store.put(&snapshot_key, parquet.into()).await?;
        kondate_core::failpoint("labels.after_snapshot");
        phases.lap("write");
        let rev = Revision {
            revision,
            created_at: self.now_ms(),
            actor: opts.actor.clone(),
            fingerprint: fingerprint.clone(),
            rows_total: validated.rows.len() as i64,
            added: d.added.len() as i64,
            changed: d.changed.len() as i64,
            removed: d.removed.len() as i64,
            skipped_invalid: validated.invalid_rows.len() as i64,
            snapshot_key: snapshot_key.clone(),
            migration: (!migration.is_empty()).then(|| migration.join("; ")),
        };
        table::insert_revision(&mut tx, &set.name, &rev, &definition).await?;
        tx.execute(
            "UPDATE kondate_label_sets SET revision = ?, fingerprint = ?, definition = ?, \
             table_name = ? WHERE name = ?",
            &[
                kondate_db::Value::Int(revision),
                kondate_db::Value::from(fingerprint.as_str()),
                kondate_db::Value::from(definition.as_str()),
                kondate_db::Value::from(set.table.as_str()),
                kondate_db::Value::from(set.name.as_str()),
            ],
        )
        .await?;
        kondate_core::failpoint("labels.before_commit");
        tx.commit().await?;
        phases.lap("commit");
        tracing::info!(
            label_set = %set.name,
            revision,
            added = rev.added,
            changed = rev.changed,
            removed = rev.removed,
            "label set synced"
        );
        self.record_event(&set.name, revision).await;
        let mut r = report(
            set,
            Outcome::Applied,
            revision,
            fingerprint,
            validated,
            d,
            migration,
        );
        r.rows_written = written;
        r.snapshot_key = Some(snapshot_key);
        r.timings_ms = phases.done();
        Ok(r)
    }

    /// The rows the table holds at `revision`: its snapshot, when the table still has the
    /// snapshot's number of rows (a cheap check that nobody added or deleted rows by hand;
    /// `--force` compares with the table itself); otherwise the table.
    async fn current_rows(
        &self,
        tx: &mut kondate_db::Tx,
        set: &LabelSet,
        revision: i64,
    ) -> Result<Current, LabelsError> {
        if let Some(key) = table::snapshot_key_tx(tx, &set.name, revision).await? {
            let from_snapshot = match snapshot::read(&self.store, &key).await {
                Ok(batches) => Columns::from_batches(set, &batches),
                Err(e) => Err(e),
            };
            match from_snapshot {
                Ok(cols) => {
                    let cols = Current::Columns(cols);
                    if cols.len() as i64 == table::count_tx(tx, set).await? {
                        return Ok(cols);
                    }
                    tracing::warn!(
                        label_set = %set.name,
                        revision,
                        "the table's row count differs from its last snapshot (edited by \
                         hand?); comparing with the table"
                    );
                }
                Err(e) => tracing::warn!(
                    label_set = %set.name,
                    revision,
                    error = %e,
                    "the last snapshot cannot be read; comparing with the table"
                ),
            }
        }
        Ok(Current::Rows(table::read_rows_tx(tx, set).await?))
    }

    /// Record `labels.changed` in the state database. The revision is already committed, so
    /// a failure here is logged, not returned: the history is the source of truth.
    async fn record_event(&self, name: &str, revision: i64) {
        let Some(state) = &self.state else {
            return;
        };
        let payload = serde_json::json!({"label_set": name, "revision": revision}).to_string();
        if let Err(e) = kondate_db::state::record_event(
            state,
            "labels.changed",
            &format!("{name}@{revision}"),
            &payload,
            self.now_ms(),
        )
        .await
        {
            tracing::warn!(error = %e, label_set = name, revision, "could not record labels.changed");
        }
    }

    /// The revisions of `name`, oldest first.
    pub async fn history(&self, name: &str) -> Result<Vec<Revision>, LabelsError> {
        Ok(table::revisions(&self.service, name).await?)
    }

    /// What revision `revision` of `set` changed: its rows against the revision before it
    /// (an empty set for the first), compared by key as a sync compares, with at most
    /// `limit` rows of each kind (added with all their cells, changed with the cells that
    /// changed, removed by key). Both revisions are read under `set`'s current definition:
    /// a revision whose columns differ (a migration) cannot be compared, and says so.
    pub async fn revision_diff(
        &self,
        set: &LabelSet,
        revision: i64,
        limit: usize,
    ) -> Result<RevisionDiff, LabelsError> {
        let all = self.history(&set.name).await?;
        let at =
            all.iter()
                .position(|r| r.revision == revision)
                .ok_or(LabelsError::NoSuchRevision {
                    name: set.name.clone(),
                    revision,
                })?;
        let columns = |key: &str, batches: &[RecordBatch]| {
            Columns::from_batches(set, batches).map_err(|_| LabelsError::Snapshot {
                key: key.to_string(),
                message: format!(
                    "its columns are not those of the current definition of label set {} (a \
                     migration changed them), so it cannot be compared; export both \
                     revisions to compare them",
                    set.name
                ),
            })
        };
        let rev = &all[at];
        let now = columns(
            &rev.snapshot_key,
            &snapshot::read(&self.store, &rev.snapshot_key).await?,
        )?;
        let previous = match at.checked_sub(1).map(|i| &all[i]) {
            Some(p) => {
                let batches = snapshot::read(&self.store, &p.snapshot_key).await?;
                Current::Columns(columns(&p.snapshot_key, &batches)?)
            }
            None => Current::Rows(Vec::new()),
        };
        let now = Current::Columns(now);
        let width = set.columns.len();
        let rows: Vec<crate::validate::Row> = (0..now.len())
            .map(|i| crate::validate::Row {
                line: i + 1,
                values: (0..width).map(|c| now.value(i, c)).collect(),
            })
            .collect();
        let d = diff(set, previous, &rows);
        let truncated = d.added.len() > limit || d.changed.len() > limit || d.removed.len() > limit;
        Ok(RevisionDiff {
            revision,
            previous: at.checked_sub(1).map(|i| all[i].revision),
            columns: set.columns.iter().map(|c| c.name.clone()).collect(),
            key_columns: set
                .key_indices()
                .iter()
                .map(|&k| set.columns[k].name.clone())
                .collect(),
            added_total: d.added.len(),
            changed_total: d.changed.len(),
            removed_total: d.removed.len(),
            unchanged: d.unchanged,
            added: d.added.into_iter().take(limit).map(|a| a.values).collect(),
            changed: d.changed.into_iter().take(limit).collect(),
            removed: d.removed.into_iter().take(limit).collect(),
            truncated,
        })
    }

    /// The rows of revision `revision` (the latest when `None`), exactly as they were, with
    /// their schema (also for a revision without rows).
    pub async fn export(
        &self,
        set: &LabelSet,
        revision: Option<i64>,
    ) -> Result<(Revision, Vec<RecordBatch>, SchemaRef), LabelsError> {
        let all = self.history(&set.name).await?;
        let rev = match revision {
            Some(n) => all.into_iter().find(|r| r.revision == n),
            None => all.into_iter().last(),
        }
        .ok_or(LabelsError::NoSuchRevision {
            name: set.name.clone(),
            revision: revision.unwrap_or(0),
        })?;
        let batches = snapshot::read(&self.store, &rev.snapshot_key).await?;
        let schema = batches
            .first()
            .map(|b| b.schema())
            .unwrap_or_else(|| snapshot::schema(set));
        Ok((rev, batches, schema))
    }
}

/// What one revision changed ([`Labels::revision_diff`]).
#[derive(Debug, Clone, Serialize)]
pub struct RevisionDiff {
    pub revision: i64,
    /// The revision compared with (None for the first).
    pub previous: Option<i64>,
    pub columns: Vec<String>,
    pub key_columns: Vec<String>,
    /// Added rows, every cell in `columns` order.
    pub added: Vec<Vec<LabelValue>>,
    pub changed: Vec<crate::Changed>,
    /// Keys of removed rows, in `key_columns` order.
    pub removed: Vec<Vec<LabelValue>>,
    pub added_total: usize,
    pub changed_total: usize,
    pub removed_total: usize,
    pub unchanged: usize,
    /// Whether a list was cut at the limit.
    pub truncated: bool,
}

fn previous_definition(state: &SetState) -> Result<LabelSet, LabelsError> {
    serde_json::from_str(&state.definition).map_err(|e| LabelsError::Definition {
        origin: "kondate_label_sets".into(),
        field: "definition".into(),
        message: format!("the stored definition is unreadable: {e}"),
    })
}

/// Replace the table with one of the new definition holding `rows`: create it under a
/// temporary name, fill it, drop the old one and rename. PostgreSQL and SQLite do all of it
/// inside the transaction; MySQL commits implicitly at each DDL statement (documented).
async fn rebuild_table(
    tx: &mut kondate_db::Tx,
    set: &LabelSet,
    old_table: Option<&str>,
    rows: &[&[LabelValue]],
) -> Result<u64, LabelsError> {
    let db = tx.db().clone();
    // kondate_ names are reserved for kondate, so this cannot be a user's table.
    let tmp = format!("kondate_new_{}", &table_hash(&set.table)[..16]);
    tx.execute(&format!("DROP TABLE IF EXISTS {}", db.ident(&tmp)?), &[])
        .await?;
    tx.execute(&table::create_table_sql(&db, set, &tmp)?, &[])
        .await?;
    let inserted = table::insert_rows(tx, set, &tmp, rows.iter().copied()).await?;
    if let Some(old) = old_table {
        tx.execute(&format!("DROP TABLE {}", db.ident(old)?), &[])
            .await?;
    }
    tx.execute(
        &format!(
            "ALTER TABLE {} RENAME TO {}",
            db.ident(&tmp)?,
            db.ident(&set.table)?
        ),
        &[],
    )
    .await?;
    Ok(inserted)
}

fn table_hash(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

fn report(
    set: &LabelSet,
    outcome: Outcome,
    revision: i64,
    fingerprint: String,
    v: Validated,
    diff: Diff,
    migration: Vec<String>,
) -> SyncReport {
    SyncReport {
        name: set.name.clone(),
        key: set.key.clone(),
        outcome,
        revision,
        fingerprint,
        rows: v.rows.len(),
        diff,
        rows_written: 0,
        invalid: v.invalid,
        empty_rows: v.empty_rows,
        unnamed_columns: v.unnamed_columns,
        migration,
        snapshot_key: None,
        timings_ms: Vec::new(),
    }
}
