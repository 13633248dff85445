//! The tables kondate writes document themselves: what kondate knows of a label table (its
//! label set, the sheet it comes from, its latest revision and that revision's diff, the
//! models that learned from it), a result table (the apps and jobs that write it, their
//! schedules and owners, its last writes with the model version of their rows, and whether
//! it is fresh or late for its schedule), a result table's warehouse copy (its last export
//! and the jobs that make it), and a model (the label revisions each version learned from
//! and the tables it wrote) — from the project's definitions and what kondate recorded.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use kondate_core::clock::ms_to_rfc3339;
use kondate_jobs::{JobDefinition, Node, Task};
use serde::Serialize;

use crate::CatalogError;

/// What a page is built from: the project, its state, its jobs (as the scheduler would run
/// them: `kondate_jobs::definition::load_project`) and the time.
pub struct Context<'a> {
    pub project: &'a kondate_core::Project,
    pub labels: &'a kondate_labels::Labels,
    pub models: &'a kondate_models::Models,
    pub results: &'a kondate_results::Results,
    pub jobs: &'a [JobDefinition],
    pub now: DateTime<Utc>,
    /// Each app with the result tables its runs may write, read once per context (a page
    /// about many tables evaluates each app's definition once).
    app_results: std::sync::OnceLock<Vec<(String, Vec<String>)>>,
    /// The project's label sets with their current revisions, read once per context.
    label_sets: tokio::sync::OnceCell<Vec<kondate_labels::Listed>>,
}

impl<'a> Context<'a> {
    pub fn new(
        project: &'a kondate_core::Project,
        labels: &'a kondate_labels::Labels,
        models: &'a kondate_models::Models,
        results: &'a kondate_results::Results,
        jobs: &'a [JobDefinition],
        now: DateTime<Utc>,
    ) -> Context<'a> {
        Context {
            project,
            labels,
            models,
            results,
            jobs,
            now,
            app_results: std::sync::OnceLock::new(),
            label_sets: tokio::sync::OnceCell::new(),
        }
    }
}

/// What kondate knows of a table it writes.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Written {
    LabelTable(LabelTable),
    ResultTable(ResultTable),
    WarehouseCopy(WarehouseCopy),
}

/// A label set's table in the service database.
#[derive(Debug, Clone, Serialize)]
pub struct LabelTable {
    pub label_set: String,
    /// Where its rows come from (the sheet, a file), as `kondate labels list` says it.
    pub source: String,
    /// The file (or section of kondate.toml) that defines the label set.
    pub definition: String,
    /// The current revision; None before the first sync.
    pub revision: Option<LabelRevision>,
    /// The jobs that sync it, with their schedules.
    pub jobs: Vec<WriterJob>,
    /// The model versions whose lineage names a revision of it (`model@version`).
    pub learned_by: Vec<Learned>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LabelRevision {
    pub revision: i64,
    pub synced_at: String,
    pub synced_by: String,
    pub rows: i64,
    /// The diff against the revision before.
    pub added: i64,
    pub changed: i64,
    pub removed: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Learned {
    pub model: String,
    pub version: i64,
    pub revision: Option<i64>,
}

/// A result table in the service database.
#[derive(Debug, Clone, Serialize)]
pub struct ResultTable {
    pub result: String,
    /// Its declaration (`results/NAME.toml`).
    pub declaration: String,
    pub key: Vec<String>,
    pub warehouse_table: String,
    /// The apps whose runs may write it (their definitions' `kondate.results`).
    pub apps: Vec<String>,
    /// The jobs that run those apps (or run a job that does), with their schedules.
    pub jobs: Vec<WriterJob>,
    /// The owners of those jobs.
    pub owners: Vec<String>,
    /// The latest writes, newest first.
    pub writes: Vec<Write>,
    /// The model version of the latest write's rows (`name@version`), when it said one.
    pub model: Option<String>,
    pub freshness: Freshness,
}

/// A result table's copy in the warehouse.
#[derive(Debug, Clone, Serialize)]
pub struct WarehouseCopy {
    pub result: String,
    /// The service database's table it copies.
    pub service_table: String,
    /// The jobs that export it (`results_export:`), with their schedules.
    pub jobs: Vec<WriterJob>,
    pub owners: Vec<String>,
    pub last_export: Option<Export>,
    pub freshness: Freshness,
}

#[derive(Debug, Clone, Serialize)]
pub struct Export {
    pub exported_at: String,
    pub rows: i64,
}

/// A job that writes a table, and how.
#[derive(Debug, Clone, Serialize)]
pub struct WriterJob {
    pub job: String,
    /// `app: NAME`, `sub_process: JOB`, `labels_sync: SET` or `results_export: NAME`.
    pub via: String,
    pub schedules: Vec<Schedule>,
    /// The next fire time (RFC 3339, UTC); None for a job without schedules.
    pub next: Option<String>,
    pub owners: Vec<String>,
    /// Suspended by its definition.
    pub suspended: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    pub cron: String,
    pub time_zone: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Write {
    pub written_at: String,
    pub rows: i64,
    pub pruned: i64,
    /// `name@version`, when the write said which model version made its rows.
    pub model: Option<String>,
    pub run_id: Option<String>,
}

/// Whether a table was written when its schedule says it should have been.
#[derive(Debug, Clone, Serialize)]
pub struct Freshness {
    /// `fresh`, `late` (past its schedule), `never_written` or `unscheduled` (no scheduled
    /// job writes it).
    pub status: &'static str,
    /// The latest a next write is expected: the first scheduled slot after the last write
    /// plus the job's expected time (an hour when it declares none).
    pub due_by: Option<String>,
    /// The job whose slot sets `due_by`.
    pub job: Option<String>,
    /// One line for a person.
    pub message: String,
}

/// A model's page: each version with the label revisions it learned from and the tables
/// it wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ModelPage {
    pub model: String,
    pub aliases: BTreeMap<String, i64>,
    pub versions: Vec<ModelVersion>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelVersion {
    pub version: i64,
    pub created_at: String,
    pub created_by: String,
    pub aliases: Vec<String>,
    pub metrics: BTreeMap<String, f64>,
    /// The label revisions it learned from, with the table each set lives in.
    pub labels: Vec<LearnedFrom>,
    /// The result tables it wrote, with the latest of its writes to each.
    pub wrote: Vec<WroteTo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LearnedFrom {
    pub label_set: String,
    pub revision: Option<i64>,
    /// `service.TABLE`, when the label set is still declared.
    pub table: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WroteTo {
    pub result: String,
    pub table: String,
    pub rows: i64,
    pub written_at: String,
}

/// The writes of each result table a page reads (newest first).
const WRITES: usize = 10;
/// How many writes per result table the model page looks through for a model's.
const MODEL_WRITES: usize = 1000;
/// How late a write may be after its slot when the job declares no expected time.
const DEFAULT_GRACE_MINUTES: i64 = 60;

fn err(what: &str, e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Invalid(format!("{what}: {e}"))
}

/// Whether `(schema, table)` of a catalog source is the table `declared` (bare, or
/// `schema.table`).
fn same_table(schema: &str, table: &str, declared: &str) -> bool {
    match declared.split_once('.') {
        Some((s, t)) => s == schema && t == table,
        None => declared == table,
    }
}

impl Context<'_> {
    /// `path` relative to the project's folder, when it is in it.
    fn in_project(&self, path: &str) -> String {
        std::path::Path::new(path)
            .strip_prefix(&self.project.root)
            .map_or_else(|_| path.to_string(), |p| p.display().to_string())
    }

    async fn label_sets(&self) -> Result<&[kondate_labels::Listed], CatalogError> {
        self.label_sets
            .get_or_try_init(|| async {
                self.labels
                    .list(self.project)
                    .await
                    .map_err(|e| err("label sets", e))
            })
            .await
            .map(Vec::as_slice)
    }

    fn writer_jobs(&self, hit: &dyn Fn(&Task) -> Option<String>) -> Vec<WriterJob> {
        writer_jobs(self.jobs, self.now, hit)
    }

    /// Whether a table last written at `last_ms` (None: never) is late for the schedules
    /// of `writers`.
    fn freshness(&self, writers: &[WriterJob], last_ms: Option<i64>, what: &str) -> Freshness {
        freshness(self.jobs, writers, last_ms, self.now, what)
    }

    /// What kondate knows of table `schema.table` of catalog source `source`, when it is a
    /// table kondate writes.
    pub async fn about(
        &self,
        source: &str,
        schema: &str,
        table: &str,
    ) -> Result<Option<Written>, CatalogError> {
        match source {
            "service" => {
                let sets = self.label_sets().await?;
                if let Some(set) = sets.iter().find(|s| same_table(schema, table, &s.table)) {
                    return self.label_table(set.clone()).await.map(Some);
                }
                let decls = self
                    .results
                    .declarations()
                    .map_err(|e| err("result tables", e))?;
                match decls
                    .into_iter()
                    .find(|d| same_table(schema, table, &d.table))
                {
                    Some(d) => self.result_table(d).await.map(Some),
                    None => Ok(None),
                }
            }
            "warehouse" => {
                let decls = self
                    .results
                    .declarations()
                    .map_err(|e| err("result tables", e))?;
                match decls
                    .into_iter()
                    .find(|d| same_table(schema, table, &d.warehouse_table))
                {
                    Some(d) => self.warehouse_copy(d).await.map(Some),
                    None => Ok(None),
                }
            }
            _ => Ok(None),
        }
    }

    async fn label_table(&self, set: kondate_labels::Listed) -> Result<Written, CatalogError> {
        let revision = self
            .labels
            .history(&set.name)
            .await
            .map_err(|e| err("label revisions", e))?
            .pop()
            .map(|r| LabelRevision {
                revision: r.revision,
                synced_at: ms_to_rfc3339(r.created_at),
                synced_by: r.actor,
                rows: r.rows_total,
                added: r.added,
                changed: r.changed,
                removed: r.removed,
            });
        let name = set.name.clone();
        let jobs = self.writer_jobs(&|t| match t {
            Task::LabelsSync(s) if *s == name => Some(format!("labels_sync: {s}")),
            _ => None,
        });
        let mut learned_by = Vec::new();
        for m in self.models.list().await.map_err(|e| err("models", e))? {
            for v in self
                .models
                .versions(&m.name)
                .await
                .map_err(|e| err("model versions", e))?
            {
                for l in v.lineage.labels.iter().filter(|l| l.name == set.name) {
                    learned_by.push(Learned {
                        model: m.name.clone(),
                        version: v.version,
                        revision: l.revision,
                    });
                }
            }
        }
        Ok(Written::LabelTable(LabelTable {
            label_set: set.name,
            source: set.source,
            definition: self.in_project(&set.definition),
            revision,
            jobs,
            learned_by,
        }))
    }

    /// The apps whose definitions let their runs write result `name`. An app whose
    /// definition does not load is left out (`kondate apps check` reports it).
    fn writer_apps(&self, name: &str) -> Vec<String> {
        let all = self.app_results.get_or_init(|| {
            let apps = kondate_apps::Apps::new(self.project.root.join("apps"));
            apps.names()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|a| {
                    let d = apps.load(&a, false).ok()?;
                    Some((a, d.access.results))
                })
                .collect()
        });
        all.iter()
            .filter(|(_, results)| results.iter().any(|r| r == name))
            .map(|(a, _)| a.clone())
            .collect()
    }

    async fn result_table(
        &self,
        decl: kondate_results::ResultTable,
    ) -> Result<Written, CatalogError> {
        let apps = self.writer_apps(&decl.name);
        let jobs = self.writer_jobs(&|t| match t {
            Task::App { name, .. } if apps.contains(name) => Some(format!("app: {name}")),
            _ => None,
        });
        let log = self
            .results
            .writes(&decl.name, WRITES)
            .await
            .map_err(|e| err("result writes", e))?;
        let last_ms = log.first().map(|w| w.written_at_ms);
        let writes: Vec<Write> = log
            .into_iter()
            .map(|w| Write {
                written_at: ms_to_rfc3339(w.written_at_ms),
                rows: w.rows,
                pruned: w.pruned,
                model: w
                    .model_name
                    .zip(w.model_version)
                    .map(|(m, v)| format!("{m}@{v}")),
                run_id: w.run_id,
            })
            .collect();
        let freshness = self.freshness(&jobs, last_ms, "written");
        Ok(Written::ResultTable(ResultTable {
            model: writes.first().and_then(|w| w.model.clone()),
            owners: owners(&jobs),
            result: decl.name,
            declaration: self.in_project(&decl.path.display().to_string()),
            key: decl.key,
            warehouse_table: decl.warehouse_table,
            apps,
            jobs,
            writes,
            freshness,
        }))
    }

    async fn warehouse_copy(
        &self,
        decl: kondate_results::ResultTable,
    ) -> Result<Written, CatalogError> {
        let name = decl.name.clone();
        let jobs = self.writer_jobs(&|t| match t {
            Task::ResultsExport(r) if *r == name => Some(format!("results_export: {r}")),
            _ => None,
        });
        let last = self
            .results
            .last_export(&decl.name)
            .await
            .map_err(|e| err("result exports", e))?;
        let freshness = self.freshness(&jobs, last.as_ref().map(|e| e.exported_at_ms), "exported");
        Ok(Written::WarehouseCopy(WarehouseCopy {
            owners: owners(&jobs),
            result: decl.name,
            service_table: decl.table,
            jobs,
            last_export: last.map(|e| Export {
                exported_at: ms_to_rfc3339(e.exported_at_ms),
                rows: e.rows,
            }),
            freshness,
        }))
    }

    /// Model `name`'s page.
    pub async fn model_page(&self, name: &str) -> Result<ModelPage, CatalogError> {
        let versions = self.models.versions(name).await.map_err(|e| match e {
            kondate_models::ModelsError::NoSuchModel { .. } => {
                CatalogError::NotFound(format!("model:{name}"))
            }
            e => err("model versions", e),
        })?;
        let aliases = self
            .models
            .list()
            .await
            .map_err(|e| err("models", e))?
            .into_iter()
            .find(|m| m.name == name)
            .map(|m| m.aliases)
            .unwrap_or_default();
        let sets: BTreeMap<&str, &str> = self
            .label_sets()
            .await?
            .iter()
            .map(|s| (s.name.as_str(), s.table.as_str()))
            .collect();
        // (version) → result → (table, rows, at) of the latest write.
        let mut wrote: BTreeMap<i64, BTreeMap<String, WroteTo>> = BTreeMap::new();
        for d in self
            .results
            .declarations()
            .map_err(|e| err("result tables", e))?
        {
            for w in self
                .results
                .writes(&d.name, MODEL_WRITES)
                .await
                .map_err(|e| err("result writes", e))?
            {
                if let (Some(m), Some(v)) = (&w.model_name, w.model_version)
                    && m == name
                {
                    // Newest first: the first seen of a (version, table) is its latest.
                    wrote
                        .entry(v)
                        .or_default()
                        .entry(d.name.clone())
                        .or_insert_with(|| WroteTo {
                            result: d.name.clone(),
                            table: format!("service.{}", d.table),
                            rows: w.rows,
                            written_at: ms_to_rfc3339(w.written_at_ms),
                        });
                }
            }
        }
        Ok(ModelPage {
            model: name.to_string(),
            aliases,
            versions: versions
                .into_iter()
                .rev()
                .map(|v| ModelVersion {
                    labels: v
                        .lineage
                        .labels
                        .iter()
                        .map(|l| LearnedFrom {
                            label_set: l.name.clone(),
                            revision: l.revision,
                            table: sets.get(l.name.as_str()).map(|t| format!("service.{t}")),
                        })
                        .collect(),
                    wrote: wrote
                        .remove(&v.version)
                        .map(|m| m.into_values().collect())
                        .unwrap_or_default(),
                    version: v.version,
                    created_at: v.created_at,
                    created_by: v.created_by,
                    aliases: v.aliases,
                    metrics: v.metrics,
                })
                .collect(),
        })
    }
}

impl Written {
    /// What of it a caller may see, given which label sets and models (by name) they may
    /// read: a label table's section only with its label set; models only where readable.
    pub fn readable(
        self,
        label_set: &dyn Fn(&str) -> bool,
        model: &dyn Fn(&str) -> bool,
    ) -> Option<Written> {
        let model_ref = |m: &Option<String>| {
            m.as_deref()
                .filter(|m| model(m.rsplit_once('@').map_or(m, |(n, _)| n)))
                .map(str::to_string)
        };
        match self {
            Written::LabelTable(mut t) => {
                if !label_set(&t.label_set) {
                    return None;
                }
                t.learned_by.retain(|l| model(&l.model));
                Some(Written::LabelTable(t))
            }
            Written::ResultTable(mut t) => {
                t.model = model_ref(&t.model);
                for w in &mut t.writes {
                    w.model = model_ref(&w.model);
                }
                Some(Written::ResultTable(t))
            }
            w @ Written::WarehouseCopy(_) => Some(w),
        }
    }
}

impl ModelPage {
    /// Leave out the label sets a caller may not read.
    pub fn retain_readable(&mut self, label_set: &dyn Fn(&str) -> bool) {
        for v in &mut self.versions {
            v.labels.retain(|l| label_set(&l.label_set));
        }
    }
}

/// The jobs whose scripts `hit` matches, and the jobs that run those as a
/// `sub_process:` (to any depth), each with how it writes.
fn writer_jobs(
    jobs: &[JobDefinition],
    now: DateTime<Utc>,
    hit: &dyn Fn(&Task) -> Option<String>,
) -> Vec<WriterJob> {
    let mut via: BTreeMap<String, String> = BTreeMap::new();
    for j in jobs {
        if let Some(how) = first_hit(&j.tree, hit) {
            via.insert(j.name.clone(), how);
        }
    }
    // Jobs that run a writing job: to a fixed point (a cycle cannot run, but must not
    // loop here either).
    loop {
        let before = via.len();
        for j in jobs {
            if via.contains_key(&j.name) {
                continue;
            }
            let callee = first_hit(&j.tree, &|t| match t {
                Task::SubProcess(name) if via.contains_key(name) => {
                    Some(format!("sub_process: {name}"))
                }
                _ => None,
            });
            if let Some(how) = callee {
                via.insert(j.name.clone(), how);
            }
        }
        if via.len() == before {
            break;
        }
    }
    jobs.iter()
        .filter_map(|j| {
            let how = via.get(&j.name)?;
            Some(WriterJob {
                job: j.name.clone(),
                via: how.clone(),
                schedules: j
                    .schedules
                    .iter()
                    .map(|s| Schedule {
                        cron: s.expression.clone(),
                        time_zone: s.zone.name().to_string(),
                    })
                    .collect(),
                next: kondate_jobs::plan::next_slots(j, now, 1)
                    .first()
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                owners: j.owners.clone(),
                suspended: j.suspended,
            })
        })
        .collect()
}

/// Whether a table last written at `last_ms` (None: never) is late at `now` for the
/// schedules of the `writers` among `jobs`.
fn freshness(
    jobs: &[JobDefinition],
    writers: &[WriterJob],
    last_ms: Option<i64>,
    now: DateTime<Utc>,
    what: &str,
) -> Freshness {
    let scheduled: Vec<&JobDefinition> = jobs
        .iter()
        .filter(|j| {
            !j.schedules.is_empty() && !j.suspended && writers.iter().any(|w| w.job == j.name)
        })
        .collect();
    let Some(last_ms) = last_ms else {
        return Freshness {
            status: "never_written",
            due_by: None,
            job: None,
            message: match scheduled.first() {
                Some(j) => format!("never {what} yet; job {} runs it", j.name),
                None => format!("never {what} yet, and no scheduled job writes it"),
            },
        };
    };
    let last = DateTime::from_timestamp_millis(last_ms).unwrap_or_default();
    let last_text = ms_to_rfc3339(last_ms);
    // The earliest deadline among the scheduled writers: the first slot after the
    // last write, plus what the job may take.
    let due = scheduled
        .iter()
        .filter_map(|j| {
            let slot = *kondate_jobs::plan::next_slots(j, last, 1).first()?;
            let grace = j
                .expected_minutes()
                .map_or(DEFAULT_GRACE_MINUTES, i64::from);
            Some((slot + chrono::Duration::minutes(grace), j.name.clone()))
        })
        .min();
    match due {
        None => Freshness {
            status: "unscheduled",
            due_by: None,
            job: None,
            message: format!("last {what} {last_text}; no scheduled job writes it"),
        },
        Some((due, job)) => {
            let due_text = due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            if now > due {
                let late = now - due;
                Freshness {
                    status: "late",
                    due_by: Some(due_text.clone()),
                    job: Some(job.clone()),
                    message: format!(
                        "LATE: last {what} {last_text}; job {job} should have {what} it again by \
                         {due_text} ({} ago) — `kondate jobs show {job}` shows its instances",
                        human(late)
                    ),
                }
            } else {
                Freshness {
                    status: "fresh",
                    due_by: Some(due_text.clone()),
                    job: Some(job.clone()),
                    message: format!(
                        "fresh: last {what} {last_text}; next by {due_text} (job {job})"
                    ),
                }
            }
        }
    }
}

/// The first task of `node` (in script order) that `hit` matches, as `hit` describes it.
fn first_hit(node: &Node, hit: &dyn Fn(&Task) -> Option<String>) -> Option<String> {
    hit(&node.task).or_else(|| node.children.iter().find_map(|c| first_hit(c, hit)))
}

fn owners(jobs: &[WriterJob]) -> Vec<String> {
    jobs.iter()
        .flat_map(|j| j.owners.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// A duration as a person reads it: `3 days 4 h`, `1 day 0 h`, `2 h 5 min`, `12 min`.
fn human(d: chrono::Duration) -> String {
    let m = d.num_minutes().max(0);
    match (m / 1440, (m % 1440) / 60, m % 60) {
        (0, 0, min) => format!("{min} min"),
        (0, h, min) => format!("{h} h {min} min"),
        (1, h, _) => format!("1 day {h} h"),
        (days, h, _) => format!("{days} days {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_table_matches_bare_or_qualified() {
        assert!(same_table("main", "recipe_categories", "recipe_categories"));
        assert!(same_table("results", "x", "results.x"));
        assert!(!same_table("public", "x", "results.x"));
        assert!(!same_table("results", "y", "results.x"));
    }

    fn job(name: &str, json: serde_json::Value) -> JobDefinition {
        kondate_jobs::definition::from_json("test", name, json).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn writes_score(t: &Task) -> Option<String> {
        match t {
            Task::App { name, .. } if name == "score" => Some(format!("app: {name}")),
            _ => None,
        }
    }

    #[test]
    fn writer_jobs_are_found_in_scripts_and_through_sub_processes() {
        let jobs = [
            job(
                "daily",
                serde_json::json!({
                    "script": "env: A=1\n  fork:\n    app: other\n    app: score\n",
                    "schedules": [{"cron": "0 5 * * *", "time_zone": "Asia/Tokyo"}],
                    "owners": ["ml@example.com"],
                }),
            ),
            job(
                "weekly",
                serde_json::json!({"script": "sub_process: daily\n"}),
            ),
            job(
                "outer",
                serde_json::json!({"script": "sub_process: weekly\n"}),
            ),
            job("unrelated", serde_json::json!({"script": "app: other\n"})),
        ];
        let now = at("2026-12-02T00:00:00Z");
        let found = writer_jobs(&jobs, now, &writes_score);
        let names: Vec<(&str, &str)> = found
            .iter()
            .map(|w| (w.job.as_str(), w.via.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("daily", "app: score"),
                ("weekly", "sub_process: daily"),
                ("outer", "sub_process: weekly")
            ]
        );
        assert_eq!(found[0].owners, ["ml@example.com"]);
        assert_eq!(found[0].schedules[0].time_zone, "Asia/Tokyo");
        assert_eq!(found[0].next.as_deref(), Some("2026-12-02T20:00:00Z"));
        assert_eq!(found[1].next, None, "no schedule, no next time");
    }

    #[test]
    fn freshness_follows_the_writing_jobs_schedule() {
        // 05:00 in Tokyo (20:00 UTC) daily, expected to take 30 minutes.
        let jobs = [job(
            "daily",
            serde_json::json!({
                "script": "app: score\n",
                "schedules": [{"cron": "0 5 * * *", "time_zone": "Asia/Tokyo"}],
                "expected_time": "30m",
            }),
        )];
        let writers = writer_jobs(&jobs, at("2026-12-02T00:00:00Z"), &writes_score);
        let written = at("2026-12-01T20:03:00Z").timestamp_millis();

        let f = freshness(
            &jobs,
            &writers,
            Some(written),
            at("2026-12-02T20:29:00Z"),
            "written",
        );
        assert_eq!(f.status, "fresh", "{}", f.message);
        assert_eq!(f.due_by.as_deref(), Some("2026-12-02T20:30:00Z"));
        assert_eq!(f.job.as_deref(), Some("daily"));

        let f = freshness(
            &jobs,
            &writers,
            Some(written),
            at("2026-12-03T22:45:00Z"),
            "written",
        );
        assert_eq!(f.status, "late");
        assert!(
            f.message
                .starts_with("LATE: last written 2026-12-01T20:03:00.000Z")
                && f.message.contains(
                    "job daily should have written it again by 2026-12-02T20:30:00Z (1 day 2 h ago)"
                ),
            "{}",
            f.message
        );

        let f = freshness(&jobs, &writers, None, at("2026-12-03T00:00:00Z"), "written");
        assert_eq!(f.status, "never_written");
        assert!(f.message.contains("job daily"), "{}", f.message);

        // Without a schedule (or suspended), nothing is late.
        let hand = [job(
            "by_hand",
            serde_json::json!({"script": "app: score\n"}),
        )];
        let w = writer_jobs(&hand, at("2026-12-02T00:00:00Z"), &writes_score);
        let f = freshness(
            &hand,
            &w,
            Some(written),
            at("2027-01-01T00:00:00Z"),
            "written",
        );
        assert_eq!(f.status, "unscheduled", "{}", f.message);
        let off = [job(
            "daily",
            serde_json::json!({"script": "app: score\n", "schedules": ["0 5 * * *"], "suspended": true}),
        )];
        let w = writer_jobs(&off, at("2026-12-02T00:00:00Z"), &writes_score);
        let f = freshness(
            &off,
            &w,
            Some(written),
            at("2027-01-01T00:00:00Z"),
            "written",
        );
        assert_eq!(f.status, "unscheduled", "{}", f.message);
    }

    #[test]
    fn durations_read_as_a_person_says_them() {
        assert_eq!(human(chrono::Duration::minutes(12)), "12 min");
        assert_eq!(human(chrono::Duration::minutes(125)), "2 h 5 min");
        assert_eq!(
            human(chrono::Duration::minutes(3 * 1440 + 250)),
            "3 days 4 h"
        );
    }
}
