//! App definitions: `apps/NAME.jsonnet` (or `.json`, `.yml`, `.yaml`) in Hako's format.
//!
//! The evaluated JSON is checked field by field: a wrong type is an error naming the file,
//! the line where the field is written and the field's path; an unknown field is a warning
//! (Hako ignores unknown fields too, so a typo would otherwise go unnoticed); fields that
//! only matter on ECS are accepted, kept for `render`, and listed as ignored by the local
//! runner.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{AppsError, jsonnet, providers};

/// File extensions of definitions, in the order they are preferred when two files share a
/// name.
pub const EXTENSIONS: &[&str] = &["jsonnet", "json", "yml", "yaml"];

/// Where a definition runs when `kondate apps run` is asked to run it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedulerKind {
    Local,
    Docker,
    Ecs,
    Kubernetes,
}

impl SchedulerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SchedulerKind::Local => "local",
            SchedulerKind::Docker => "docker",
            SchedulerKind::Ecs => "ecs",
            SchedulerKind::Kubernetes => "kubernetes",
        }
    }
}

/// A secret environment variable: its value comes from `value_from` when the app starts
/// (`env:NAME`, `file:PATH`, or an AWS ARN that only ECS can read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Secret {
    pub name: String,
    pub value_from: String,
}

/// A volume mounted into a container (ECS and Docker; the local runner has no volumes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountPoint {
    pub source_volume: String,
    pub container_path: String,
    pub read_only: bool,
}

/// One container: `app` or a sidecar.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Container {
    /// `image:tag`, or a sidecar's `image_tag`; None when only a command is given.
    pub image: Option<String>,
    pub command: Option<Vec<String>>,
    pub entry_point: Option<Vec<String>>,
    /// ECS CPU units (1024 = one vCPU).
    pub cpu: Option<u64>,
    /// Hard memory limit, MiB.
    pub memory: Option<u64>,
    /// Soft memory limit (reservation), MiB.
    pub memory_reservation: Option<u64>,
    pub env: BTreeMap<String, String>,
    pub secrets: Vec<Secret>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub mount_points: Vec<MountPoint>,
    /// Other Hako container fields (port mappings, log configuration, …), kept as written
    /// for the ECS rendering.
    pub extra: Map<String, Value>,
}

/// Something about a definition the user should know: an unknown field, or a field the
/// local runner does not use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// `file:line` when the field could be found in the source, else the file.
    pub location: String,
    /// The field's path, e.g. `app.port_mappings`.
    pub field: String,
    pub kind: NoteKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    /// Not a field kondate or Hako knows: probably a typo.
    Unknown,
    /// Meaningful on ECS (and kept for `render`), not used by the local runner.
    IgnoredLocally,
}

/// An evaluated, checked definition.
#[derive(Debug, Clone, Serialize)]
pub struct AppDefinition {
    pub name: String,
    pub path: PathBuf,
    pub scheduler: SchedulerKind,
    /// The scheduler's own settings (everything but `type`), as written.
    pub scheduler_settings: Map<String, Value>,
    pub app: Container,
    pub sidecars: BTreeMap<String, Container>,
    pub volumes: Map<String, Value>,
    pub scripts: Vec<Value>,
    /// kondate's addition: stop the run after this long (SIGTERM, then SIGKILL).
    #[serde(with = "opt_secs")]
    pub timeout: Option<Duration>,
    /// kondate's addition: run again this many times after a failure.
    pub retries: u32,
    /// kondate's addition (the `kondate` key): what the run's token may do beyond reading.
    pub access: RunAccess,
    pub notes: Vec<Note>,
    /// The evaluated definition as JSON (secrets appear only as their `value_from`).
    pub evaluated: Value,
}

mod opt_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }
}

const TOP_LEVEL: &[&str] = &[
    "scheduler",
    "app",
    "sidecars",
    "additional_containers",
    "volumes",
    "scripts",
    "timeout",
    "retries",
    "kondate",
];

/// What an app's run token may do, from the definition's `kondate` key:
///
/// ```jsonnet
/// kondate: {
///   models: ['recipe-category'],      // models it pushes: models:write on each
///   results: ['recipe_categories'],   // result tables it writes: results:write on each
///   scopes: ['models:alias=recipe-category@production'],  // anything more
/// }
/// ```
///
/// Every run may also query and read labels and models; nothing else unless declared.
///
/// `plain_env: ['GREETING']` names the `-e K=V` variables whose values are not secret:
/// every other `-e` value is stored masked and masked in the run's log.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RunAccess {
    pub models: Vec<String>,
    pub results: Vec<String>,
    pub scopes: Vec<String>,
    pub plain_env: Vec<String>,
}

/// What every run may do.
pub const RUN_BASE_SCOPES: &[&str] = &["query", "labels:read", "models:read"];

impl RunAccess {
    /// The run token's scopes: the base, models:write and results:write on what it names,
    /// and the extra scopes.
    pub fn scopes(&self) -> Vec<String> {
        let mut out: Vec<String> = RUN_BASE_SCOPES.iter().map(|s| s.to_string()).collect();
        out.extend(self.models.iter().map(|m| format!("models:write={m}")));
        out.extend(self.results.iter().map(|t| format!("results:write={t}")));
        out.extend(self.scopes.iter().cloned());
        out
    }
}

/// Hako container fields that matter only in a container scheduler.
const CONTAINER_ONLY_FIELDS: &[&str] = &[
    "user",
    "mount_points",
    "port_mappings",
    "links",
    "essential",
    "log_configuration",
    "health_check",
    "ulimits",
    "linux_parameters",
    "docker_labels",
    "depends_on",
    "volumes_from",
    "privileged",
    "readonly_root_filesystem",
    "docker_security_options",
    "system_controls",
    "extra_hosts",
    "repository_credentials",
    "firelens_configuration",
];

/// Hako's ECS scheduler settings.
const ECS_SETTINGS: &[&str] = &[
    "region",
    "cluster",
    "desired_count",
    "role",
    "task_role_arn",
    "execution_role_arn",
    "elb",
    "elb_v2",
    "network_mode",
    "dynamic_port_mapping",
    "health_check_grace_period_seconds",
    "autoscaling",
    "autoscaling_group_for_oneshot",
    "autoscaling_topic_for_oneshot",
    "oneshot_notification_prefix",
    "deployment_configuration",
    "placement_constraints",
    "placement_strategy",
    "scheduling_strategy",
    "cpu",
    "memory",
    "requires_compatibilities",
    "launch_type",
    "capacity_provider_strategy",
    "platform_version",
    "network_configuration",
    "service_discovery",
    "tags",
];

/// kondate's Kubernetes settings (docs/apps.md).
const KUBERNETES_SETTINGS: &[&str] = &[
    "namespace",
    "service_account_name",
    "secret_name",
    "node_selector",
    "image_pull_secrets",
    "ttl_seconds_after_finished",
];

/// kondate's Docker settings (docs/apps.md).
const DOCKER_SETTINGS: &[&str] = &["network", "docker"];

/// The apps of a project: the `apps/` folder.
#[derive(Debug, Clone)]
pub struct Apps {
    pub dir: PathBuf,
}

impl Apps {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Apps { dir: dir.into() }
    }

    /// The names of the apps (file stems), sorted.
    pub fn names(&self) -> Result<Vec<String>, AppsError> {
        let files = kondate_core::project::definition_files(&self.dir, EXTENSIONS)
            .map_err(|e| AppsError::io(&self.dir, e))?;
        let mut names: Vec<String> = files
            .iter()
            .filter_map(|p| p.file_stem().and_then(|s| s.to_str()))
            .map(str::to_string)
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// The definition file of app `name`.
    pub fn path_of(&self, name: &str) -> Result<PathBuf, AppsError> {
        kondate_core::names::validate_name("app name", name)?;
        EXTENSIONS
            .iter()
            .map(|ext| self.dir.join(format!("{name}.{ext}")))
            .find(|p| p.is_file())
            .ok_or_else(|| AppsError::NoSuchApp {
                name: name.to_string(),
                dir: self.dir.display().to_string(),
            })
    }

    /// Evaluate and check app `name`. With `expand`, env providers give their values;
    /// without, they give `${KEY}` placeholders (after checking that the key exists).
    pub fn load(&self, name: &str, expand: bool) -> Result<AppDefinition, AppsError> {
        let path = self.path_of(name)?;
        load_file(&path, name, expand)
    }
}

/// Evaluate and check the definition at `path` as app `name`.
pub fn load_file(path: &Path, name: &str, expand: bool) -> Result<AppDefinition, AppsError> {
    kondate_core::names::validate_name("app name", name)?;
    let evaluated = jsonnet::evaluate(path, name, expand)?;
    let source = std::fs::read(path).unwrap_or_default();
    let mut cx = Checker {
        path,
        source: &source,
        notes: Vec::new(),
    };
    let root = cx.object(&evaluated, "")?;
    for key in root.keys() {
        if !TOP_LEVEL.contains(&key.as_str()) {
            cx.note(
                key,
                NoteKind::Unknown,
                "not a Hako or kondate field; it is ignored",
            );
        }
    }
    let (scheduler, scheduler_settings) = cx.scheduler(root.get("scheduler"))?;
    let app_value = root.get("app").ok_or_else(|| {
        cx.error(
            "app",
            "the definition has no `app`; add app: { command: [...] } (or image: ...)",
        )
    })?;
    let app = cx.container(app_value, "app", true, scheduler)?;
    if scheduler != SchedulerKind::Docker && app.command.is_none() && app.entry_point.is_none() {
        cx.note(
            "app.command",
            NoteKind::IgnoredLocally,
            "no command: the local runner needs `app.command` (or `-- CMD` on `kondate apps run`)",
        );
    }
    let mut sidecars = BTreeMap::new();
    for field in ["sidecars", "additional_containers"] {
        if let Some(v) = root.get(field) {
            for (name, c) in cx.object(v, field)? {
                let path = format!("{field}.{name}");
                sidecars.insert(name.clone(), cx.container(c, &path, false, scheduler)?);
            }
            if scheduler != SchedulerKind::Docker {
                cx.note(
                    field,
                    NoteKind::IgnoredLocally,
                    "sidecars run only on ECS, Kubernetes or Docker; the local runner starts the app alone",
                );
            }
        }
    }
    let volumes = match root.get("volumes") {
        Some(v) => cx.object(v, "volumes")?.clone(),
        None => Map::new(),
    };
    let scripts = match root.get("scripts") {
        Some(Value::Array(items)) => {
            cx.note(
                "scripts",
                NoteKind::IgnoredLocally,
                "Hako's deploy scripts (nginx front, log groups, …) are kept but not run by kondate",
            );
            items.clone()
        }
        Some(_) => return Err(cx.error("scripts", "must be an array")),
        None => Vec::new(),
    };
    let timeout = match root.get("timeout") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(s) if s > 0.0 && s.is_finite() => Some(Duration::from_secs_f64(s)),
            _ => return Err(cx.error("timeout", "must be a positive number of seconds")),
        },
        Some(Value::String(s)) => Some(humantime::parse_duration(s).map_err(|e| {
            cx.error(
                "timeout",
                &format!("`{s}` is not a duration ({e}); write e.g. '90s', '30m' or '2h'"),
            )
        })?),
        Some(_) => {
            return Err(cx.error(
                "timeout",
                "must be a duration like '2h' or a number of seconds",
            ));
        }
    };
    let retries = match root.get("retries") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_u64() {
            Some(n) if n <= 100 => n as u32,
            _ => return Err(cx.error("retries", "must be a whole number from 0 to 100")),
        },
    };
    let access = match root.get("kondate") {
        None | Some(Value::Null) => RunAccess::default(),
        Some(v) => cx.run_access(v)?,
    };
    Ok(AppDefinition {
        name: name.to_string(),
        path: path.to_path_buf(),
        scheduler,
        scheduler_settings,
        app,
        sidecars,
        volumes,
        scripts,
        timeout,
        retries,
        access,
        notes: cx.notes,
        evaluated,
    })
}

struct Checker<'a> {
    path: &'a Path,
    source: &'a [u8],
    notes: Vec<Note>,
}

impl Checker<'_> {
    /// The `kondate` key: names and scopes, each checked where it is written.
    fn run_access(&mut self, v: &Value) -> Result<RunAccess, AppsError> {
        let obj = self.object(v, "kondate")?.clone();
        let mut access = RunAccess::default();
        for (key, value) in &obj {
            let field = format!("kondate.{key}");
            let items: Vec<String> = match value {
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        item.as_str().map(str::to_string).ok_or_else(|| {
                            self.error(&field, &format!("item {} must be a string", i + 1))
                        })
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(self.error(&field, "must be an array of strings")),
            };
            let (kind, target): (&str, &mut Vec<String>) = match key.as_str() {
                "models" => ("models:write", &mut access.models),
                "results" => ("results:write", &mut access.results),
                "scopes" => ("", &mut access.scopes),
                "plain_env" => {
                    for item in items {
                        if item.is_empty() || item.contains('=') {
                            return Err(
                                self.error(&field, &format!("`{item}` is not a variable name"))
                            );
                        }
                        access.plain_env.push(item);
                    }
                    continue;
                }
                _ => {
                    self.note(
                        &field,
                        NoteKind::Unknown,
                        "not a kondate field (models, results, scopes, plain_env); it is ignored",
                    );
                    continue;
                }
            };
            for item in items {
                let text = if kind.is_empty() {
                    item.clone()
                } else {
                    format!("{kind}={item}")
                };
                let scope = kondate_access::Scope::parse(&text)
                    .map_err(|e| self.error(&field, &format!("`{item}`: {e}")))?;
                if scope.kind == kondate_access::ScopeKind::Admin {
                    return Err(self.error(
                        &field,
                        "a run's token cannot be admin; name the scopes the job needs",
                    ));
                }
                target.push(item);
            }
        }
        Ok(access)
    }

    fn location(&self, field: &str) -> String {
        match find_field_line(self.source, field) {
            Some(line) => format!("{}:{line}", self.path.display()),
            None => self.path.display().to_string(),
        }
    }

    fn error(&self, field: &str, message: &str) -> AppsError {
        AppsError::Definition {
            location: self.location(field),
            message: if field.is_empty() {
                message.to_string()
            } else {
                format!("{field}: {message}")
            },
        }
    }

    fn note(&mut self, field: &str, kind: NoteKind, message: &str) {
        self.notes.push(Note {
            location: self.location(field),
            field: field.to_string(),
            kind,
            message: message.to_string(),
        });
    }

    fn object<'v>(&self, v: &'v Value, field: &str) -> Result<&'v Map<String, Value>, AppsError> {
        v.as_object()
            .ok_or_else(|| self.error(field, &format!("must be an object, not {}", type_name(v))))
    }

    fn string(&self, v: &Value, field: &str) -> Result<String, AppsError> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| self.error(field, &format!("must be a string, not {}", type_name(v))))
    }

    fn count(&self, v: &Value, field: &str, what: &str) -> Result<u64, AppsError> {
        v.as_u64().ok_or_else(|| {
            self.error(
                field,
                &format!("must be a whole number of {what}, not {}", show(v)),
            )
        })
    }

    fn argv(&self, v: &Value, field: &str) -> Result<Vec<String>, AppsError> {
        match v {
            // Our addition: a string is a shell command line.
            Value::String(s) => Ok(vec!["/bin/sh".into(), "-c".into(), s.clone()]),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.string(item, &format!("{field}[{i}]")))
                .collect(),
            other => Err(self.error(
                field,
                &format!(
                    "must be an array of strings (or one shell command line), not {}",
                    type_name(other)
                ),
            )),
        }
    }

    fn scheduler(
        &mut self,
        v: Option<&Value>,
    ) -> Result<(SchedulerKind, Map<String, Value>), AppsError> {
        let Some(v) = v else {
            return Ok((SchedulerKind::Local, Map::new()));
        };
        let mut settings = self.object(v, "scheduler")?.clone();
        let kind = match settings.remove("type") {
            None => SchedulerKind::Local,
            Some(t) => match self.string(&t, "scheduler.type")?.as_str() {
                "local" => SchedulerKind::Local,
                "docker" => SchedulerKind::Docker,
                "ecs" => SchedulerKind::Ecs,
                "kubernetes" => SchedulerKind::Kubernetes,
                other => {
                    return Err(self.error(
                        "scheduler.type",
                        &format!(
                            "`{other}` is not a scheduler kondate knows; use local, docker, ecs or kubernetes"
                        ),
                    ));
                }
            },
        };
        for key in settings.keys() {
            let field = format!("scheduler.{key}");
            let known_ecs = ECS_SETTINGS.contains(&key.as_str());
            let known_k8s = KUBERNETES_SETTINGS.contains(&key.as_str());
            let known_docker = DOCKER_SETTINGS.contains(&key.as_str());
            let known_here = match kind {
                SchedulerKind::Ecs => known_ecs,
                SchedulerKind::Kubernetes => known_k8s,
                SchedulerKind::Docker => known_docker,
                SchedulerKind::Local => false,
            };
            if known_here {
                continue;
            }
            if known_ecs || known_k8s || known_docker {
                self.note(
                    &field,
                    NoteKind::IgnoredLocally,
                    &format!(
                        "a setting of another scheduler; kept for `render`, not used by the {} scheduler",
                        kind.as_str()
                    ),
                );
            } else {
                self.note(
                    &field,
                    NoteKind::Unknown,
                    &format!(
                        "not a setting of the {} scheduler; it is ignored",
                        kind.as_str()
                    ),
                );
            }
        }
        Ok((kind, settings))
    }

    fn container(
        &mut self,
        v: &Value,
        path: &str,
        is_app: bool,
        scheduler: SchedulerKind,
    ) -> Result<Container, AppsError> {
        let obj = self.object(v, path)?;
        let mut c = Container::default();
        let f = |name: &str| format!("{path}.{name}");
        for (key, value) in obj {
            let field = f(key);
            match key.as_str() {
                "image" | "tag" => {}
                "image_tag" => c.image = Some(self.string(value, &field)?),
                "command" => c.command = Some(self.argv(value, &field)?),
                "entry_point" => c.entry_point = Some(self.argv(value, &field)?),
                "cpu" => c.cpu = Some(self.count(value, &field, "CPU units (1024 = 1 vCPU)")?),
                "memory" => c.memory = Some(self.count(value, &field, "MiB")?),
                "memory_reservation" => {
                    c.memory_reservation = Some(self.count(value, &field, "MiB")?)
                }
                "env" => c.env = self.env(value, &field)?,
                "secrets" => c.secrets = self.secrets(value, &field)?,
                "working_dir" => c.working_dir = Some(self.string(value, &field)?),
                "user" => {
                    c.user = Some(self.string(value, &field)?);
                    c.extra.insert(key.clone(), value.clone());
                }
                "mount_points" => {
                    c.mount_points = self.mount_points(value, &field)?;
                    c.extra.insert(key.clone(), value.clone());
                }
                k if CONTAINER_ONLY_FIELDS.contains(&k) => {
                    c.extra.insert(key.clone(), value.clone());
                }
                _ => self.note(
                    &field,
                    NoteKind::Unknown,
                    "not a Hako container field; it is ignored",
                ),
            }
            if scheduler != SchedulerKind::Docker
                && is_app
                && CONTAINER_ONLY_FIELDS.contains(&key.as_str())
            {
                self.note(
                    &field,
                    NoteKind::IgnoredLocally,
                    "used on ECS, Kubernetes or Docker; the local runner ignores it",
                );
            }
        }
        if let Some(image) = obj.get("image") {
            let image = self.string(image, &f("image"))?;
            let tag = match obj.get("tag") {
                Some(t) => self.string(t, &f("tag"))?,
                None => "latest".into(),
            };
            c.image = Some(format!("{image}:{tag}"));
            if scheduler != SchedulerKind::Docker && is_app {
                self.note(
                    &f("image"),
                    NoteKind::IgnoredLocally,
                    "the local runner runs `command` on this machine, not in the image",
                );
            }
        } else if obj.contains_key("tag") {
            return Err(self.error(&f("tag"), "a tag without an image; add `image`"));
        }
        if c.image.is_none() && c.command.is_none() && c.entry_point.is_none() {
            return Err(self.error(
                path,
                "needs an `image` (to run in a container) or a `command` (to run on this machine)",
            ));
        }
        if let (Some(hard), Some(soft)) = (c.memory, c.memory_reservation)
            && soft > hard
        {
            return Err(self.error(
                &f("memory_reservation"),
                &format!("{soft} MiB is more than the hard limit `memory` ({hard} MiB)"),
            ));
        }
        Ok(c)
    }

    fn env(&mut self, v: &Value, field: &str) -> Result<BTreeMap<String, String>, AppsError> {
        let obj = self.object(v, field)?;
        let mut env = BTreeMap::new();
        let mut providers = Vec::new();
        for (key, value) in obj {
            let f = format!("{field}.{key}");
            if key == "$providers" {
                providers = self.providers(value, &f)?;
                continue;
            }
            validate_env_name(key).map_err(|m| self.error(&f, &m))?;
            let s = value.as_str().ok_or_else(|| {
                self.error(
                    &f,
                    &format!(
                        "must be a string, not {} (environment values are strings; write '{}')",
                        type_name(value),
                        show(value).trim_matches('"')
                    ),
                )
            })?;
            env.insert(key.clone(), s.to_string());
        }
        if !providers.is_empty() {
            self.expand(&mut env, &providers, field)?;
        }
        Ok(env)
    }

    /// Hako's older `$providers` list: `#{NAME}` in env values is replaced by the first
    /// provider that has NAME.
    fn providers(&self, v: &Value, field: &str) -> Result<Vec<Map<String, Value>>, AppsError> {
        let items = v
            .as_array()
            .ok_or_else(|| self.error(field, "must be an array of providers"))?;
        items
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let obj = self.object(p, &format!("{field}[{i}]"))?;
                if !obj.get("type").is_some_and(Value::is_string) {
                    return Err(self.error(
                        &format!("{field}[{i}].type"),
                        "must name a provider: file or yaml",
                    ));
                }
                Ok(obj.clone())
            })
            .collect()
    }

    fn expand(
        &self,
        env: &mut BTreeMap<String, String>,
        providers: &[Map<String, Value>],
        field: &str,
    ) -> Result<(), AppsError> {
        let root = self.path.parent().unwrap_or(Path::new("."));
        for (key, value) in env.iter_mut() {
            let f = format!("{field}.{key}");
            let mut out = String::new();
            let mut rest = value.as_str();
            while let Some(start) = rest.find("#{") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after
                    .find('}')
                    .ok_or_else(|| self.error(&f, "`#{` without a closing `}`"))?;
                let var = &after[..end];
                if var.is_empty() {
                    return Err(self.error(&f, "empty interpolation `#{}`"));
                }
                let mut found = None;
                let mut last_err = String::new();
                for p in providers {
                    let kind = p["type"].as_str().unwrap_or_default();
                    let options = Value::Object(p.clone()).to_string();
                    match providers::provide(kind, root, &options, var) {
                        Ok(v) => {
                            found = Some(v);
                            break;
                        }
                        Err(e) => last_err = e,
                    }
                }
                let v = found.ok_or_else(|| {
                    self.error(&f, &format!("cannot resolve `#{{{var}}}`: {last_err}"))
                })?;
                out.push_str(&v);
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            *value = out;
        }
        Ok(())
    }

    fn secrets(&self, v: &Value, field: &str) -> Result<Vec<Secret>, AppsError> {
        let items = v
            .as_array()
            .ok_or_else(|| self.error(field, "must be an array of {name, value_from} objects"))?;
        let mut out: Vec<Secret> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let f = format!("{field}[{i}]");
            let obj = self.object(item, &f)?;
            let name = self.string(
                obj.get("name")
                    .ok_or_else(|| self.error(&format!("{f}.name"), "is missing"))?,
                &format!("{f}.name"),
            )?;
            validate_env_name(&name).map_err(|m| self.error(&format!("{f}.name"), &m))?;
            let value_from = self.string(
                obj.get("value_from")
                    .ok_or_else(|| self.error(&format!("{f}.value_from"), "is missing"))?,
                &format!("{f}.value_from"),
            )?;
            crate::secrets::check_source(&value_from)
                .map_err(|m| self.error(&format!("{f}.value_from"), &m))?;
            if out.iter().any(|s| s.name == name) {
                return Err(self.error(&format!("{f}.name"), &format!("`{name}` is given twice")));
            }
            out.push(Secret { name, value_from });
        }
        Ok(out)
    }

    fn mount_points(&self, v: &Value, field: &str) -> Result<Vec<MountPoint>, AppsError> {
        let items = v
            .as_array()
            .ok_or_else(|| self.error(field, "must be an array"))?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let f = format!("{field}[{i}]");
                let obj = self.object(item, &f)?;
                let get = |k: &str| {
                    obj.get(k)
                        .ok_or_else(|| self.error(&format!("{f}.{k}"), "is missing"))
                        .and_then(|v| self.string(v, &format!("{f}.{k}")))
                };
                Ok(MountPoint {
                    source_volume: get("source_volume")?,
                    container_path: get("container_path")?,
                    read_only: obj
                        .get("read_only")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                })
            })
            .collect()
    }
}

/// Environment variable names: letters, digits and `_`, not starting with a digit.
pub fn validate_env_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid environment variable name; use letters, digits and `_`"
        ))
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

/// The line where the field at dotted `path` is written, found by looking for each part
/// of the path as an object key (`name:`, `'name':`, `"name":`) after the previous one.
/// A heuristic — Jsonnet fields can be computed — so None when not found.
pub(crate) fn find_field_line(source: &[u8], path: &str) -> Option<usize> {
    let text = std::str::from_utf8(source).ok()?;
    let mut from = 0;
    let mut found = None;
    for part in path.split('.') {
        let part = part.split('[').next().unwrap_or(part);
        if part.is_empty() {
            continue;
        }
        let at = find_key(&text[from..], part)? + from;
        found = Some(at);
        from = at + part.len();
    }
    found.map(|at| jsonnet::line_col(source, at).0)
}

fn find_key(text: &str, key: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(i) = text[start..].find(key) {
        let at = start + i;
        let end = at + key.len();
        let before = if at == 0 { b' ' } else { bytes[at - 1] };
        let quoted = (before == b'\'' || before == b'"') && bytes.get(end) == Some(&before);
        let ident_ok = !(before.is_ascii_alphanumeric() || before == b'_');
        let after = if quoted { end + 1 } else { end };
        let rest = text[after..].trim_start_matches([' ', '\t']);
        let colon = rest.starts_with(':') || rest.starts_with("+:");
        let after_ok = bytes
            .get(end)
            .is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'_'));
        if (quoted || (ident_ok && after_ok)) && colon {
            return Some(at);
        }
        start = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_lines_are_found_along_the_path() {
        let src = b"{\n  scheduler: { type: 'ecs' },\n  app: {\n    image: 'x',\n    env: {\n      'PORT': 3000,\n    },\n  },\n}\n";
        assert_eq!(find_field_line(src, "app"), Some(3));
        assert_eq!(find_field_line(src, "app.env.PORT"), Some(6));
        assert_eq!(find_field_line(src, "scheduler.type"), Some(2));
        assert_eq!(find_field_line(src, "app.nothing"), None);
    }

    #[test]
    fn env_names_are_checked() {
        assert!(validate_env_name("PORT_1").is_ok());
        assert!(validate_env_name("1PORT").is_err());
        assert!(validate_env_name("A-B").is_err());
        assert!(validate_env_name("").is_err());
    }
}
