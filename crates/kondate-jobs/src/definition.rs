//! A job's definition: `jobs/NAME.jsonnet` in the project (Jsonnet, also `.json`, evaluated
//! as app definitions are, with `std.extVar('appId')` the job's name), read into a checked
//! [`JobDefinition`]. Every problem names the file and the field (and for the script, its
//! line and task); an unknown field is an error, so a misspelt `schedule` is not silently a
//! job that never runs.
//!
//! ```jsonnet
//! {
//!   description: 'Weekly training',
//!   script: |||
//!     retry: count=2 sleep_time=60
//!       app: train --epochs 3
//!   |||,
//!   schedules: [{ cron: '0 3 * * 1', time_zone: 'Asia/Tokyo' }],  // or just '0 3 * * 1' (UTC)
//!   suspend_schedules: ['* * 1 1 *'],     // slots in these are skipped (New Year's Day)
//!   catchup: 'latest',                    // none | latest | all (with catchup_max)
//!   prevent_multi: 'working_or_error',    // allow | working_or_error | working | error (or kuroko2's 0–3)
//!   notifications: { on: 'problems', to: ['ml-alerts'] },
//!   owners: ['alice@example.com'],
//!   tags: ['training'],
//!   triggers: ['labels.changed: recipe_category'],
//!   expected_time: '2h',
//! }
//! ```

use std::path::Path;

use chrono_tz::Tz;
use serde_json::{Map, Value};

use crate::JobsError;
use crate::schedule::Cron;
use crate::script::{self, Node};

/// One cron schedule in its zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// As written (after `@` aliases were read), for listings.
    pub expression: String,
    pub cron: Cron,
    pub zone: Tz,
}

impl Schedule {
    /// Whether it fires at `t` (a whole minute), read in its zone.
    pub fn fires_at(&self, t: chrono::DateTime<chrono::Utc>) -> bool {
        self.cron
            .next_after(self.zone, t - chrono::Duration::minutes(1))
            == Some(t)
    }
}

/// What happens to the slots that passed while no scheduler ran (or before it looked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Catchup {
    /// Launch none of them; only a slot that is due now.
    None,
    /// Launch the newest of them once (the default).
    Latest,
    /// Launch each, oldest first, at most `max` (the newest `max`).
    All { max: u32 },
}

/// When a due slot is not launched because an instance of the job is still there
/// (kuroko2's `prevent_multi`, whose numbers 0–3 are read too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreventMulti {
    /// Launch anyway (0).
    Allow,
    /// Not while an instance is WORKING or in ERROR (1, the default).
    WorkingOrError,
    /// Not while one is WORKING (2).
    Working,
    /// Not while one is in ERROR (3).
    Error,
}

/// Which events of the job are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyOn {
    /// Every event: launched, finished, retried, …
    All,
    /// Failures, long runs, reminders, back to normal (the default).
    Problems,
}

/// Where and what the job notifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notifications {
    pub on: NotifyOn,
    /// Destinations named in `kondate.toml`; empty: the configured default.
    pub to: Vec<String>,
}

/// An event that launches the job besides its schedules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A new revision of the label set.
    LabelsChanged(String),
    /// The alias of the model moved to another version.
    ModelAliasMoved { model: String, alias: String },
    /// An instance of the job ended in SUCCESS.
    JobSucceeded(String),
}

/// A checked job definition.
#[derive(Debug, Clone)]
pub struct JobDefinition {
    pub name: String,
    pub description: String,
    /// The script as written, and read.
    pub script: String,
    pub tree: Node,
    pub schedules: Vec<Schedule>,
    pub suspend_schedules: Vec<Schedule>,
    pub suspended: bool,
    pub catchup: Catchup,
    pub prevent_multi: PreventMulti,
    pub notifications: Notifications,
    pub owners: Vec<String>,
    pub tags: Vec<String>,
    pub triggers: Vec<Trigger>,
    /// Minutes an instance is expected to take; longer is reported.
    pub expected_time: Option<u32>,
    /// SHA-256 of the evaluated definition: a new digest is a new script revision.
    pub digest: String,
    /// The evaluated definition, as stored with its revision.
    pub json: Value,
}

impl JobDefinition {
    /// Minutes an instance is expected to take: the definition's `expected_time`, else the
    /// script's first `expected_time:` task (kuroko2 writes it there).
    pub fn expected_minutes(&self) -> Option<u32> {
        fn in_tree(n: &crate::Node) -> Option<u32> {
            if let crate::Task::ExpectedTime(m) = n.task {
                return Some(m);
            }
            n.children.iter().find_map(in_tree)
        }
        self.expected_time.or_else(|| in_tree(&self.tree))
    }
}

const FIELDS: &[&str] = &[
    "name",
    "description",
    "script",
    "schedules",
    "suspend_schedules",
    "suspended",
    "catchup",
    "catchup_max",
    "prevent_multi",
    "notifications",
    "owners",
    "tags",
    "triggers",
    "expected_time",
];

/// The slots `catchup: 'all'` launches at most, unless `catchup_max` says otherwise.
pub const DEFAULT_CATCHUP_MAX: u32 = 24;

/// The job files of a project's `jobs/` folder, sorted.
pub fn files(dir: &Path) -> Result<Vec<std::path::PathBuf>, JobsError> {
    kondate_core::project::definition_files(dir, &["jsonnet", "json"]).map_err(|e| JobsError::Io {
        path: dir.display().to_string(),
        source: e,
    })
}

/// The name of the job defined at `path`: the file's stem.
pub fn name_of(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string()
}

/// A job's name and its definition, or why it did not load.
pub type Named = (String, Result<JobDefinition, JobsError>);

/// Every definition of the `jobs/` folder `dir`, by name: loaded, or why not.
pub fn load_dir(dir: &Path) -> Result<Vec<Named>, JobsError> {
    Ok(files(dir)?
        .iter()
        .map(|path| (name_of(path), load(path)))
        .collect())
}

/// Evaluate and check the definition at `path`; the job's name is the file's stem.
pub fn load(path: &Path) -> Result<JobDefinition, JobsError> {
    let file = path.display().to_string();
    let name = name_of(path);
    kondate_core::names::validate_name("job name", &name).map_err(|e| JobsError::Definition {
        location: file.clone(),
        message: format!("{e} (the job's name is its file's name)"),
    })?;
    let json = kondate_apps::evaluate_definition(path, &name, false).map_err(|e| match e {
        kondate_apps::AppsError::Definition { location, message } => {
            JobsError::Definition { location, message }
        }
        other => JobsError::Definition {
            location: file.clone(),
            message: other.to_string(),
        },
    })?;
    from_json(&file, &name, json)
}

/// The name of the built-in job that syncs the catalog (`catalog.nightly` in kondate.toml).
pub const CATALOG_NIGHTLY: &str = "catalog_nightly";

/// Every job: the definitions in `root/jobs`, each loaded or its error, then the jobs
/// kondate defines itself from its configuration (docs/jobs.md#built-in-jobs) — unless the
/// project has a file of the same name, which takes their place.
pub fn load_project(root: &Path, config: &kondate_core::Config) -> Result<Vec<Named>, JobsError> {
    let mut all = load_dir(&root.join("jobs"))?;
    for built in built_in(config) {
        if !all.iter().any(|(name, _)| *name == built.0) {
            all.push(built);
        }
    }
    Ok(all)
}

/// The project's jobs that load (those that do not are left out: `kondate jobs check`
/// reports them), for what shows which jobs write what.
pub fn loading(root: &Path, config: &kondate_core::Config) -> Vec<JobDefinition> {
    load_project(root, config)
        .map(|all| all.into_iter().filter_map(|(_, d)| d.ok()).collect())
        .unwrap_or_default()
}

/// The jobs kondate defines itself: `catalog_nightly` (`catalog_sync: all` on the cron of
/// `catalog.nightly`, none when that is "").
pub fn built_in(config: &kondate_core::Config) -> Vec<Named> {
    let c = &config.catalog;
    if c.nightly.trim().is_empty() {
        return Vec::new();
    }
    let json = serde_json::json!({
        "description": "Built in: syncs every catalog source (catalog.nightly in kondate.toml; \
                        \"\" turns it off, jobs/catalog_nightly.jsonnet replaces it)",
        "script": "catalog_sync: all\n",
        "schedules": [{ "cron": c.nightly, "time_zone": c.nightly_time_zone }],
        "catchup": "latest",
        "tags": ["catalog", "built-in"],
    });
    vec![(
        CATALOG_NIGHTLY.to_string(),
        from_json("kondate.toml [catalog] nightly", CATALOG_NIGHTLY, json),
    )]
}

/// Check an evaluated definition of job `name` from `file`.
pub fn from_json(file: &str, name: &str, json: Value) -> Result<JobDefinition, JobsError> {
    let fail = |field: &str, message: String| JobsError::Definition {
        location: format!("{file}: field `{field}`"),
        message,
    };
    let Value::Object(map) = &json else {
        return Err(JobsError::Definition {
            location: file.to_string(),
            message: format!(
                "a job definition is an object ({{ script: …, schedules: […] }}), not {}",
                kind(&json)
            ),
        });
    };
    if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(fail(
            unknown,
            format!(
                "is not a job field{}; the fields are {}",
                suggestion(unknown),
                FIELDS.join(", ")
            ),
        ));
    }
    if let Some(written) = string(map, "name", &fail)?
        && written != name
    {
        return Err(fail(
            "name",
            format!(
                "says `{written}` but the file names the job `{name}`; rename the file or \
                 remove the field"
            ),
        ));
    }
    let script = string(map, "script", &fail)?.ok_or_else(|| {
        fail(
            "script",
            "is missing: what the job runs, e.g. `execute: make train`".into(),
        )
    })?;
    let tree = script::parse(&script).map_err(|e| JobsError::Definition {
        location: format!("{file}: field `script`, line {}", e.line),
        message: match &e.task {
            Some(task) => format!("`{task}`: {}", e.message),
            None => e.message.clone(),
        },
    })?;
    let schedules = schedules_of(map, "schedules", &fail)?;
    let suspend_schedules = schedules_of(map, "suspend_schedules", &fail)?;
    let catchup_max = match map.get("catchup_max") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|n| (1..=10_000).contains(n))
                .ok_or_else(|| {
                    fail(
                        "catchup_max",
                        "must be a number of slots from 1 to 10000".into(),
                    )
                })? as u32,
        ),
    };
    let catchup = match string(map, "catchup", &fail)?.as_deref() {
        None | Some("latest") => Catchup::Latest,
        Some("none") => Catchup::None,
        Some("all") => Catchup::All {
            max: catchup_max.unwrap_or(DEFAULT_CATCHUP_MAX),
        },
        Some(other) => {
            return Err(fail(
                "catchup",
                format!("`{other}` is not one of none, latest (the default), all"),
            ));
        }
    };
    if catchup_max.is_some() && !matches!(catchup, Catchup::All { .. }) {
        return Err(fail(
            "catchup_max",
            "applies only with catchup: 'all'; remove it or set catchup to 'all'".into(),
        ));
    }
    let prevent_multi = match map.get("prevent_multi") {
        None | Some(Value::Null) => PreventMulti::WorkingOrError,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => PreventMulti::Allow,
            Some(1) => PreventMulti::WorkingOrError,
            Some(2) => PreventMulti::Working,
            Some(3) => PreventMulti::Error,
            _ => {
                return Err(fail(
                    "prevent_multi",
                    format!("{n} is not one of kuroko2's 0–3"),
                ));
            }
        },
        Some(Value::String(s)) => match s.as_str() {
            "allow" => PreventMulti::Allow,
            "working_or_error" => PreventMulti::WorkingOrError,
            "working" => PreventMulti::Working,
            "error" => PreventMulti::Error,
            other => {
                return Err(fail(
                    "prevent_multi",
                    format!(
                        "`{other}` is not one of allow, working_or_error (the default), \
                         working, error"
                    ),
                ));
            }
        },
        Some(other) => {
            return Err(fail(
                "prevent_multi",
                format!("must be a string or kuroko2's number, not {}", kind(other)),
            ));
        }
    };
    let notifications = match map.get("notifications") {
        None | Some(Value::Null) => Notifications {
            on: NotifyOn::Problems,
            to: Vec::new(),
        },
        Some(Value::Object(n)) => {
            if let Some(k) = n.keys().find(|k| !["on", "to"].contains(&k.as_str())) {
                return Err(fail(
                    &format!("notifications.{k}"),
                    "is not a notifications field; they are `on` and `to`".into(),
                ));
            }
            let on = match n.get("on").map(|v| v.as_str()) {
                None | Some(Some("problems")) => NotifyOn::Problems,
                Some(Some("all")) => NotifyOn::All,
                _ => {
                    return Err(fail(
                        "notifications.on",
                        "must be 'problems' (the default) or 'all'".into(),
                    ));
                }
            };
            let to = names(n.get("to"), "notifications.to", &fail)?;
            Notifications { on, to }
        }
        Some(other) => {
            return Err(fail(
                "notifications",
                format!(
                    "must be an object such as {{ on: 'problems', to: ['ml-alerts'] }}, not {}",
                    kind(other)
                ),
            ));
        }
    };
    let owners = strings(map.get("owners"), "owners", &fail)?;
    if let Some(o) = owners
        .iter()
        .find(|o| !o.contains('@') || o.contains(char::is_whitespace))
    {
        return Err(fail(
            "owners",
            format!("`{o}` is not a user's e-mail address (owners are users, by e-mail)"),
        ));
    }
    let tags = strings(map.get("tags"), "tags", &fail)?;
    let triggers = strings(map.get("triggers"), "triggers", &fail)?
        .iter()
        .map(|t| trigger(t).map_err(|m| fail("triggers", format!("`{t}`: {m}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let expected_time = match map.get("expected_time") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| fail("expected_time", "must be minutes: N, 'Nm' or 'Nh'".into()))?,
        ),
        Some(Value::String(s)) => Some(
            script::minutes(s)
                .ok_or_else(|| fail("expected_time", format!("`{s}`: write N, 'Nm' or 'Nh'")))?,
        ),
        Some(other) => {
            return Err(fail(
                "expected_time",
                format!("must be minutes: N, 'Nm' or 'Nh', not {}", kind(other)),
            ));
        }
    };
    let suspended = match map.get("suspended") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(fail(
                "suspended",
                format!("must be true or false, not {}", kind(other)),
            ));
        }
    };
    let digest = kondate_core::digest::Digest::of(json.to_string().as_bytes()).hex();
    Ok(JobDefinition {
        name: name.to_string(),
        description: string(map, "description", &fail)?.unwrap_or_default(),
        script,
        tree,
        schedules,
        suspend_schedules,
        suspended,
        catchup,
        prevent_multi,
        notifications,
        owners,
        tags,
        triggers,
        expected_time,
        digest,
        json,
    })
}

type Fail<'a> = dyn Fn(&str, String) -> JobsError + 'a;

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// ` (did you mean `x`?)` for a field one or two letters off a known one.
fn suggestion(unknown: &str) -> String {
    FIELDS
        .iter()
        .find(|f| {
            let (a, b) = (unknown.to_lowercase(), f.to_string());
            a.trim_end_matches('s') == b.trim_end_matches('s')
                || a.replace(['-', ' '], "_") == b
                || (a.len() > 3 && (b.starts_with(&a) || a.starts_with(&b)))
        })
        .map(|f| format!(" (did you mean `{f}`?)"))
        .unwrap_or_default()
}

fn string(map: &Map<String, Value>, field: &str, fail: &Fail) -> Result<Option<String>, JobsError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(fail(
            field,
            format!("must be a string, not {}", kind(other)),
        )),
    }
}

fn strings(v: Option<&Value>, field: &str, fail: &Fail) -> Result<Vec<String>, JobsError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                other => Err(fail(
                    &format!("{field}[{i}]"),
                    format!("must be a non-empty string, not {}", kind(other)),
                )),
            })
            .collect(),
        Some(other) => Err(fail(
            field,
            format!("must be a list of strings, not {}", kind(other)),
        )),
    }
}

/// A list of names (destinations, jobs): each checked as a kondate name.
fn names(v: Option<&Value>, field: &str, fail: &Fail) -> Result<Vec<String>, JobsError> {
    let list = strings(v, field, fail)?;
    for n in &list {
        kondate_core::names::validate_name("name", n).map_err(|e| fail(field, e.to_string()))?;
    }
    Ok(list)
}

/// `field`: a list of schedules, each `'cron'` (UTC) or `{ cron: '…', time_zone: 'Zone' }`.
fn schedules_of(
    map: &Map<String, Value>,
    field: &str,
    fail: &Fail,
) -> Result<Vec<Schedule>, JobsError> {
    let items = match map.get(field) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        // One schedule written without the list.
        Some(v @ (Value::String(_) | Value::Object(_))) => vec![v.clone()],
        Some(Value::Array(items)) => items.clone(),
        Some(other) => {
            return Err(fail(
                field,
                format!(
                    "must be a list of cron expressions ('0 3 * * *', or {{ cron: '0 3 * * *', \
                     time_zone: 'Asia/Tokyo' }}), not {}",
                    kind(other)
                ),
            ));
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = format!("{field}[{i}]");
            let (expression, zone) = match item {
                Value::String(s) => (s.clone(), None),
                Value::Object(o) => {
                    if let Some(k) = o.keys().find(|k| !["cron", "time_zone"].contains(&k.as_str()))
                    {
                        return Err(fail(
                            &format!("{at}.{k}"),
                            "is not a schedule field; they are `cron` and `time_zone`".into(),
                        ));
                    }
                    let cron = match o.get("cron") {
                        Some(Value::String(s)) => s.clone(),
                        _ => {
                            return Err(fail(
                                &format!("{at}.cron"),
                                "is missing: a 5-field cron expression such as '0 3 * * *'".into(),
                            ));
                        }
                    };
                    let zone = match o.get("time_zone") {
                        None | Some(Value::Null) => None,
                        Some(Value::String(z)) => Some(z.clone()),
                        Some(other) => {
                            return Err(fail(
                                &format!("{at}.time_zone"),
                                format!("must be an IANA zone name such as 'Asia/Tokyo', not {}", kind(other)),
                            ));
                        }
                    };
                    (cron, zone)
                }
                other => {
                    return Err(fail(
                        &at,
                        format!("must be a cron expression or {{ cron, time_zone }}, not {}", kind(other)),
                    ));
                }
            };
            let cron = Cron::parse(&expression).map_err(|m| fail(&at, m))?;
            let zone = match zone {
                None => Tz::UTC,
                Some(z) => z.parse::<Tz>().map_err(|_| {
                    fail(
                        &format!("{at}.time_zone"),
                        format!("`{z}` is not an IANA time zone (e.g. 'Asia/Tokyo', 'Europe/Berlin', 'UTC')"),
                    )
                })?,
            };
            Ok(Schedule {
                expression: expression.trim().to_string(),
                cron,
                zone,
            })
        })
        .collect()
}

/// `labels.changed: NAME`, `model.alias_moved: NAME@ALIAS`, `job.succeeded: NAME`.
fn trigger(t: &str) -> Result<Trigger, String> {
    let (event, arg) = t
        .split_once(':')
        .map(|(e, a)| (e.trim(), a.trim()))
        .ok_or("write EVENT: NAME — labels.changed: SET, model.alias_moved: MODEL@ALIAS or job.succeeded: JOB")?;
    let name = |n: &str| {
        kondate_core::names::validate_name("name", n)
            .map(|()| n.to_string())
            .map_err(|e| e.to_string())
    };
    match event {
        "labels.changed" => Ok(Trigger::LabelsChanged(name(arg)?)),
        "job.succeeded" => Ok(Trigger::JobSucceeded(name(arg)?)),
        "model.alias_moved" => {
            let (model, alias) = arg
                .split_once('@')
                .ok_or("write model.alias_moved: MODEL@ALIAS (e.g. recipe@production)")?;
            Ok(Trigger::ModelAliasMoved {
                model: name(model)?,
                alias: name(alias)?,
            })
        }
        other => Err(format!(
            "`{other}` is not an event; they are labels.changed, model.alias_moved, job.succeeded"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(v: Value) -> Result<JobDefinition, String> {
        from_json("jobs/train.jsonnet", "train", v).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_definition_reads_every_field() {
        let d = check(json!({
            "name": "train",
            "description": "Weekly training",
            "script": "retry: count=2 sleep_time=60\n  app: train --epochs 3\n",
            "schedules": [{ "cron": "0 3 * * 1", "time_zone": "Asia/Tokyo" }, "@daily"],
            "suspend_schedules": "* * 1 1 *",
            "catchup": "all",
            "catchup_max": 5,
            "prevent_multi": 2,
            "notifications": { "on": "all", "to": ["ml-alerts"] },
            "owners": ["alice@example.com"],
            "tags": ["training"],
            "triggers": [
                "labels.changed: recipe_category",
                "model.alias_moved: recipe@production",
                "job.succeeded:prepare",
            ],
            "expected_time": "2h",
        }))
        .unwrap();
        assert_eq!(d.name, "train");
        assert_eq!(d.schedules.len(), 2);
        assert_eq!(d.schedules[0].zone, chrono_tz::Asia::Tokyo);
        assert_eq!(d.schedules[1].zone, Tz::UTC);
        assert_eq!(d.suspend_schedules.len(), 1);
        assert_eq!(d.catchup, Catchup::All { max: 5 });
        assert_eq!(d.prevent_multi, PreventMulti::Working);
        assert_eq!(d.notifications.on, NotifyOn::All);
        assert_eq!(d.notifications.to, ["ml-alerts"]);
        assert_eq!(
            d.triggers,
            [
                Trigger::LabelsChanged("recipe_category".into()),
                Trigger::ModelAliasMoved {
                    model: "recipe".into(),
                    alias: "production".into()
                },
                Trigger::JobSucceeded("prepare".into()),
            ]
        );
        assert_eq!(d.expected_time, Some(120));
        assert_eq!(d.digest.len(), 64);
        // The defaults.
        let d = check(json!({ "script": "noop:\n" })).unwrap();
        assert_eq!(d.catchup, Catchup::Latest);
        assert_eq!(d.prevent_multi, PreventMulti::WorkingOrError);
        assert_eq!(d.notifications.on, NotifyOn::Problems);
        assert!(d.schedules.is_empty() && !d.suspended && d.expected_time.is_none());
    }

    #[test]
    fn each_mistake_names_its_file_and_field() {
        let cases = [
            (
                json!({ "script": "noop:\n", "schedule": "0 3 * * *" }),
                "jobs/train.jsonnet: field `schedule`: is not a job field (did you mean `schedules`?)",
            ),
            (
                json!({ "script": "noop:\nsequence:\n    execute: x\n  sleep: 1\n" }),
                "jobs/train.jsonnet: field `script`, line 4",
            ),
            (
                json!({ "script": "sleep: soon\n" }),
                "field `script`, line 1: `sleep`",
            ),
            (
                json!({ "script": "noop:\n", "schedules": ["0 25 * * *"] }),
                "field `schedules[0]`: ",
            ),
            (
                json!({ "script": "noop:\n", "schedules": [{ "cron": "0 3 * * *", "time_zone": "Mars/Olympus" }] }),
                "field `schedules[0].time_zone`: `Mars/Olympus` is not an IANA time zone",
            ),
            (
                json!({ "script": "noop:\n", "catchup_max": 3 }),
                "field `catchup_max`: applies only with catchup: 'all'",
            ),
            (
                json!({ "script": "noop:\n", "catchup": "some" }),
                "field `catchup`: `some` is not one of none, latest",
            ),
            (
                json!({ "script": "noop:\n", "prevent_multi": 7 }),
                "field `prevent_multi`: 7 is not one of kuroko2's 0–3",
            ),
            (
                json!({ "script": "noop:\n", "owners": ["alice"] }),
                "field `owners`: `alice` is not a user's e-mail address",
            ),
            (
                json!({ "script": "noop:\n", "triggers": ["model.alias_moved: recipe"] }),
                "field `triggers`: `model.alias_moved: recipe`: write model.alias_moved: MODEL@ALIAS",
            ),
            (
                json!({ "script": "noop:\n", "triggers": ["labels.deleted: x"] }),
                "`labels.deleted` is not an event",
            ),
            (
                json!({ "name": "other", "script": "noop:\n" }),
                "field `name`: says `other` but the file names the job `train`",
            ),
            (json!({ "schedules": [] }), "field `script`: is missing"),
            (
                json!({ "script": "noop:\n", "expected_time": "soon" }),
                "field `expected_time`: `soon`: write N, 'Nm' or 'Nh'",
            ),
            (
                json!({ "script": "noop:\n", "notifications": { "on": "some" } }),
                "field `notifications.on`",
            ),
            (
                json!(["noop"]),
                "jobs/train.jsonnet: a job definition is an object",
            ),
        ];
        for (json, want) in cases {
            let got = check(json.clone())
                .map(|_| ())
                .expect_err(&format!("{json} loads"));
            assert!(got.contains(want), "{json}: got `{got}`, want `{want}`");
        }
    }

    #[test]
    fn a_jsonnet_file_loads_with_its_name_and_a_stable_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nightly.jsonnet");
        std::fs::write(
            &path,
            "local hour = 3;\n{\n  description: 'job ' + std.extVar('appId'),\n  \
             script: |||\n    env: A=1\n    execute: echo $A\n  |||,\n  \
             schedules: ['0 %d * * *' % hour],\n}\n",
        )
        .unwrap();
        let d = load(&path).unwrap();
        assert_eq!(d.name, "nightly");
        assert_eq!(d.description, "job nightly");
        assert_eq!(d.schedules[0].expression, "0 3 * * *");
        assert_eq!(load(&path).unwrap().digest, d.digest);
        std::fs::write(&path, "{ script: 'noop:\\n', schedules: ['0 4 * * *'] }").unwrap();
        assert_ne!(load(&path).unwrap().digest, d.digest);
        // Jsonnet errors keep their position; a bad file name is refused.
        std::fs::write(&path, "{ script: }").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("nightly.jsonnet:1:"), "{e}");
        let bad = dir.path().join("bad name.jsonnet");
        std::fs::write(&bad, "{ script: 'noop:\\n' }").unwrap();
        let e = load(&bad).unwrap_err().to_string();
        assert!(e.contains("the job's name is its file's name"), "{e}");
        assert_eq!(files(dir.path()).unwrap().len(), 2);
    }
}
