//! `kondate.toml`, its embedded defaults, and `KONDATE_*` environment overrides.
//!
//! Precedence, lowest first: built-in defaults → `kondate.toml` → `KONDATE_SECTION_KEY`
//! environment variables. Secrets (database passwords, signing keys) are never read from
//! `kondate.toml`: a URL with a password there is refused, and keys come from the
//! environment or from a file named in the configuration.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::CoreError;

/// The whole project configuration, with every path already resolved against the project.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub project: ProjectSection,
    pub server: ServerSection,
    pub state: StateSection,
    pub service: ServiceSection,
    pub store: StoreSection,
    pub warehouse: WarehouseSection,
    pub query: QuerySection,
    pub jobs: JobsSection,
    pub notifications: NotificationsSection,
    pub catalog: CatalogSection,
    pub console: ConsoleSection,
    /// Label sets declared inline as `[labels.NAME]` (the same keys as `labels/NAME.toml`);
    /// parsed by kondate-labels.
    pub labels: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectSection {
    /// A human name for the project, shown in reports.
    pub name: String,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Address `kondate serve` listens on.
    pub listen: String,
    /// Base URL clients use to reach this server; signed object URLs are built on it.
    /// Defaults to `http://{listen}`.
    pub public_url: Option<String>,
    /// Where CLI commands send queries; unset means "run in-process".
    pub url: Option<String>,
    /// Longest a client may take to send a request's headers — and longest an idle
    /// keep-alive connection stays open — before it is closed.
    #[serde(with = "human_duration")]
    pub header_timeout: Duration,
    /// Longest wait for the next piece of a request body before the request fails (408).
    #[serde(with = "human_duration")]
    pub body_timeout: Duration,
    /// Largest streamed upload (a model file, a result table's rows), e.g. `64GiB`.
    #[serde(with = "human_size")]
    pub max_upload: u64,
    /// Host names clients may reach this server by, besides `localhost`, IP addresses and
    /// the host of `public_url` (a request naming another is refused: DNS rebinding).
    pub allowed_hosts: Vec<String>,
    /// On SIGTERM, how long the server waits for the queries it runs to finish before it
    /// exits (those still running are then failed by the other processes).
    #[serde(with = "human_duration")]
    pub drain_timeout: Duration,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateSection {
    /// `sqlite://PATH`, `postgres://…` or `mysql://…`. Passwords only via `KONDATE_STATE_URL`.
    pub url: String,
    /// How often a running kondate process tells the state database it is alive.
    #[serde(with = "human_duration")]
    pub heartbeat: Duration,
    /// How long a process may stay silent before the work it owns (queries waiting or
    /// running) counts as lost and is failed by another process.
    #[serde(with = "human_duration")]
    pub lost_after: Duration,
}

/// The service database: the product's own database, where label tables (and later result
/// tables) are written for the product to read.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceSection {
    /// `sqlite://PATH`, `postgres://…` or `mysql://…`. Passwords only via
    /// `KONDATE_SERVICE_URL`.
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// A local folder (`PATH` or `file://PATH`), `s3://bucket/prefix`, `gs://bucket/prefix`
    /// or `az://container/prefix`.
    pub url: String,
    /// Endpoint of an S3-compatible server (MinIO, moto, …).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Allow plain-HTTP endpoints (local S3-compatible servers).
    pub allow_http: bool,
    /// File with the key that signs local object URLs; `KONDATE_SIGNING_KEY` wins over it.
    pub signing_key_file: String,
}

/// Which engine answers queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WarehouseKind {
    Embedded,
    Postgres,
    Redshift,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WarehouseSection {
    #[serde(rename = "type")]
    pub kind: WarehouseKind,
    /// Connection URL for `postgres`/`redshift`. Passwords only via `KONDATE_WAREHOUSE_URL`.
    pub url: Option<String>,
    /// Redshift: the IAM role UNLOAD writes to S3 with.
    pub iam_role: Option<String>,
    /// Redshift: where UNLOAD writes (`s3://bucket/prefix`); defaults to the store URL.
    pub unload_url: Option<String>,
    /// PostgreSQL/Redshift: serve queries even when the warehouse role is a superuser or
    /// may read or write server files, run programs or signal other sessions (refused by
    /// default: docs/security.md).
    pub allow_privileged_role: bool,
    /// Embedded engine: the memory all its queries together may use — a size (`8GiB`) or
    /// a share of the machine (`50%`, the default); a query past it fails with a message.
    pub memory_limit: MemoryLimit,
}

/// By hand for the sections that hold connection URLs: a password given in the
/// environment (`KONDATE_STATE_URL=postgres://u:pw@…`) never reaches a log through `{:?}`.
impl std::fmt::Debug for ServerSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSection")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url.as_deref().map(redact_url))
            .field("url", &self.url.as_deref().map(redact_url))
            .field("header_timeout", &self.header_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("max_upload", &self.max_upload)
            .field("allowed_hosts", &self.allowed_hosts)
            .finish()
    }
}

impl std::fmt::Debug for StateSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateSection")
            .field("url", &redact_url(&self.url))
            .finish()
    }
}

impl std::fmt::Debug for ServiceSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceSection")
            .field("url", &redact_url(&self.url))
            .finish()
    }
}

impl std::fmt::Debug for WarehouseSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarehouseSection")
            .field("kind", &self.kind)
            .field("url", &self.url.as_deref().map(redact_url))
            .field("iam_role", &self.iam_role)
            .field("unload_url", &self.unload_url)
            .field("allow_privileged_role", &self.allow_privileged_role)
            .field("memory_limit", &self.memory_limit)
            .finish()
    }
}

/// A memory budget: bytes, or a share of the machine's memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MemoryLimit {
    Bytes(u64),
    /// Percent of the machine's memory (1–100).
    Share(f64),
}

impl Default for MemoryLimit {
    fn default() -> Self {
        MemoryLimit::Share(50.0)
    }
}

impl MemoryLimit {
    /// The budget on a machine with `machine` bytes of memory.
    pub fn bytes(self, machine: u64) -> u64 {
        match self {
            MemoryLimit::Bytes(b) => b,
            MemoryLimit::Share(p) => ((machine as f64) * p / 100.0) as u64,
        }
    }
}

impl<'de> Deserialize<'de> for MemoryLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(b) if b > 0 => Ok(MemoryLimit::Bytes(b)),
            Raw::Bytes(_) => Err(serde::de::Error::custom(
                "a memory limit must be more than 0",
            )),
            Raw::Text(t) => match t.trim().strip_suffix('%') {
                Some(p) => match p.trim().parse::<f64>() {
                    Ok(p) if p > 0.0 && p <= 100.0 => Ok(MemoryLimit::Share(p)),
                    _ => Err(serde::de::Error::custom(format!(
                        "`{t}`: a share of memory is from 1% to 100%"
                    ))),
                },
                None => human_size::parse(&t)
                    .map(MemoryLimit::Bytes)
                    .map_err(serde::de::Error::custom),
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuerySection {
    /// How long results stay downloadable, e.g. `6h`.
    #[serde(with = "human_duration")]
    pub result_ttl: Duration,
    /// Longest a statement may run before it is cancelled and marked failed.
    #[serde(with = "human_duration")]
    pub statement_timeout: Duration,
    /// Queries one token may run at once.
    pub max_concurrent_per_token: usize,
    /// Queries one token may have waiting; past that a submission is refused with 429.
    pub max_queued_per_token: usize,
    /// Result parts written in parallel.
    pub parts: usize,
    /// gzip level of result parts, 0 (stored, no compression) to 9. Unset: 0 on a local
    /// store, where the reader is on the same disk and CPU is the scarce resource; 1 on a
    /// remote store, where the bytes cross a network.
    pub gzip_level: Option<u32>,
    /// Accept queries without credentials (only sensible on a loopback address).
    pub allow_anonymous: bool,
}

/// The scheduler and its workers (docs/jobs.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsSection {
    /// Whether `kondate serve` runs the scheduler: loads `jobs/` and launches due slots.
    /// Any number of servers may (each slot is launched once).
    pub scheduler: bool,
    /// Workers `kondate serve` runs itself, taking steps of the `default` queue; 0 leaves
    /// the steps to `kondate worker` processes.
    pub workers: usize,
    /// How often the scheduler looks for due slots, and an idle worker for steps.
    #[serde(with = "human_duration")]
    pub poll: Duration,
    /// How often the scheduler reads `jobs/` again (a changed definition is a new revision).
    #[serde(with = "human_duration")]
    pub reload: Duration,
    /// How old a slot may be and still count as due now (`catchup: 'none'`, and a job seen
    /// for the first time).
    #[serde(with = "human_duration")]
    pub grace: Duration,
    /// Finished instances (and their logs and notifications) older than this are removed
    /// by the scheduler, hourly; instances in ERROR are kept.
    #[serde(with = "human_duration")]
    pub retention: Duration,
}

/// The catalog's sources (docs/catalog.md#sources): the two built in (`warehouse`,
/// `service`) take patterns only; any other is a database by URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogSection {
    /// `[catalog.sources.NAME]`.
    pub sources: BTreeMap<String, CatalogSource>,
    /// When the built-in job `catalog_nightly` syncs every source: a cron expression
    /// (`"0 3 * * *"`), or `""` for no such job. A project's own `jobs/catalog_nightly.jsonnet`
    /// takes its place.
    pub nightly: String,
    /// The time zone of `nightly` (an IANA name).
    pub nightly_time_zone: String,
}

impl Default for CatalogSection {
    fn default() -> Self {
        CatalogSection {
            sources: BTreeMap::new(),
            nightly: "0 3 * * *".into(),
            nightly_time_zone: "UTC".into(),
        }
    }
}

/// One catalog source. Its URL is given once: `url` (without a password), `url_env` (the
/// variable that holds it) or `url_file`.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogSource {
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub url_file: Option<PathBuf>,
    /// Only tables whose `schema.table` matches this regular expression.
    pub include: Option<String>,
    /// Leave out tables whose `schema.table` matches any of these regular expressions.
    pub ignore: Vec<String>,
}

impl std::fmt::Debug for CatalogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogSource")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("url_env", &self.url_env)
            .field("url_file", &self.url_file)
            .field("include", &self.include)
            .field("ignore", &self.ignore)
            .finish()
    }
}

/// The web console (docs/console.md).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSection {
    /// Sign-in through an OpenID Connect provider (`[console.oidc]`); without it, only the
    /// local administrator's sign-in on a loopback-only server.
    pub oidc: Option<OidcSection>,
}

/// `[console.oidc]`: sign-in with Google or any standard OpenID Connect provider
/// (discovery, authorization code with PKCE, ID token checked against the provider's keys).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSection {
    /// The issuer (`https://accounts.google.com`); its discovery document is
    /// `ISSUER/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// The variable holding the client secret (never kondate.toml itself).
    pub client_secret_env: Option<String>,
    /// Or the file holding it.
    pub client_secret_file: Option<PathBuf>,
    /// Only people whose verified e-mail is in one of these domains — and, when the token
    /// carries Google's `hd` claim, whose `hd` is one of them. Empty: any verified e-mail.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// The role of a person who is not yet a user at their first sign-in (`viewer`,
    /// `models=editor`); unset: they are refused until an admin adds them.
    pub default_role: Option<String>,
    /// The provider's name on the sign-in button.
    #[serde(default = "default_oidc_name")]
    pub name: String,
}

fn default_oidc_name() -> String {
    "single sign-on".into()
}

impl std::fmt::Debug for OidcSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSection")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret_env", &self.client_secret_env)
            .field("client_secret_file", &self.client_secret_file)
            .field("allowed_domains", &self.allowed_domains)
            .field("default_role", &self.default_role)
            .finish()
    }
}

impl OidcSection {
    /// The client secret, from the variable or the file the configuration names.
    pub fn client_secret(&self) -> Result<String, CoreError> {
        let bad = |message: String| CoreError::Config {
            location: "console.oidc".into(),
            message,
        };
        let secret = match (&self.client_secret_env, &self.client_secret_file) {
            (Some(var), None) => std::env::var(var).map_err(|_| {
                bad(format!(
                    "client_secret_env names {var}, which is not set in kondate's environment"
                ))
            })?,
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| bad(format!("client_secret_file {}: {e}", path.display())))?,
            _ => {
                return Err(bad(
                    "give the client secret once: client_secret_env = \"VARIABLE\" or \
                     client_secret_file = \"PATH\""
                        .into(),
                ));
            }
        };
        let secret = secret.trim().to_string();
        if secret.is_empty() {
            return Err(bad("the client secret is empty".into()));
        }
        Ok(secret)
    }
}

/// The catalog's built-in sources: the configured warehouse and service database.
pub const BUILT_IN_CATALOG_SOURCES: [&str; 2] = ["warehouse", "service"];

impl CatalogSource {
    /// The source's URL, from where the configuration says it is (an extra source only).
    pub fn url(&self, name: &str) -> Result<String, CoreError> {
        let field = format!("catalog.sources.{name}");
        let bad = |message: String| CoreError::Config {
            location: field.clone(),
            message,
        };
        match (&self.url, &self.url_env, &self.url_file) {
            (Some(u), _, _) => Ok(u.clone()),
            (None, Some(var), _) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
                _ => Err(bad(format!(
                    "url_env names {var}, which is not set in kondate's environment; set it \
                     to the database's URL (postgres://…, mysql://…, sqlite://…)"
                ))),
            },
            (None, None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
                Ok(_) => Err(bad(format!("url_file {} is empty", path.display()))),
                Err(e) => Err(bad(format!("url_file {}: {e}", path.display()))),
            },
            (None, None, None) => Err(bad(
                "has no URL: set url_env = \"VARIABLE\" (or url_file, or url without a \
                 password)"
                    .into(),
            )),
        }
    }
}

/// Where the scheduler's notifications go (docs/jobs.md#notifications).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsSection {
    /// Destinations of every job whose definition names none, and of label and model
    /// events; in the environment a comma-separated list.
    #[serde(deserialize_with = "names_list")]
    pub default: Vec<String>,
    /// Send label and model events (a label set changed, a model pushed or its alias
    /// moved) to the default destinations.
    pub label_and_model_events: bool,
    /// How often an instance that stays in ERROR is brought up again ("still failing").
    #[serde(with = "human_duration")]
    pub remind_every: Duration,
    /// Tries of a notification that cannot be sent, with backoff between them.
    pub attempts: u32,
    /// Last lines of a failed step's log that a notification shows.
    pub log_lines: usize,
    /// The destinations, by name: `[notifications.destinations.NAME]`.
    pub destinations: BTreeMap<String, Destination>,
}

impl Default for NotificationsSection {
    fn default() -> Self {
        Self {
            default: Vec::new(),
            label_and_model_events: true,
            remind_every: Duration::from_secs(24 * 3600),
            attempts: 8,
            log_lines: 20,
            destinations: BTreeMap::new(),
        }
    }
}

/// What a destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationKind {
    /// A Slack incoming webhook (Block Kit).
    Slack,
    /// Any HTTP endpoint: JSON signed with HMAC-SHA256.
    Webhook,
    /// E-mail over SMTP.
    Email,
}

/// One notification destination. Secrets (a Slack webhook URL, a webhook's signing key, an
/// SMTP password) come from the environment (`*_env`: a variable's name) or a file
/// (`*_file`), never from kondate.toml itself.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    #[serde(rename = "type")]
    pub kind: DestinationKind,
    /// Webhook: the URL (not secret). Slack's URLs are secrets: `url_env` or `url_file`.
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub url_file: Option<PathBuf>,
    /// Webhook: the HMAC key.
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
    /// E-mail: `smtp://host:port` (plain), `smtp://host:587?tls=required` (STARTTLS) or
    /// `smtps://host:465` (TLS).
    pub smtp: Option<String>,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names where secrets live, never a secret (an inline webhook URL is not one).
        f.debug_struct("Destination")
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("url_env", &self.url_env)
            .field("url_file", &self.url_file)
            .field("secret_env", &self.secret_env)
            .field("smtp", &self.smtp.as_deref().map(redact_url))
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

/// A list of names, written as a TOML array or (from the environment) `a,b`.
fn names_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Names {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Names::deserialize(d)? {
        Names::List(v) => v,
        Names::Text(t) => t
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    })
}

impl Default for JobsSection {
    fn default() -> Self {
        Self {
            scheduler: true,
            workers: 1,
            poll: Duration::from_secs(2),
            reload: Duration::from_secs(30),
            grace: Duration::from_secs(60),
            retention: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

impl Default for ProjectSection {
    fn default() -> Self {
        Self {
            name: "kondate".into(),
        }
    }
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7878".into(),
            public_url: None,
            url: None,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            max_upload: 64 << 30,
            allowed_hosts: Vec::new(),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for StateSection {
    fn default() -> Self {
        Self {
            url: "sqlite://.kondate/state.db".into(),
            heartbeat: Duration::from_secs(10),
            lost_after: Duration::from_secs(60),
        }
    }
}

impl Default for ServiceSection {
    fn default() -> Self {
        Self {
            url: "sqlite://.kondate/service.db".into(),
        }
    }
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            url: ".kondate/store".into(),
            endpoint: None,
            region: None,
            allow_http: false,
            signing_key_file: ".kondate/signing.key".into(),
        }
    }
}

impl Default for WarehouseSection {
    fn default() -> Self {
        Self {
            kind: WarehouseKind::Embedded,
            url: None,
            iam_role: None,
            unload_url: None,
            allow_privileged_role: false,
            memory_limit: MemoryLimit::default(),
        }
    }
}

impl Default for QuerySection {
    fn default() -> Self {
        Self {
            result_ttl: Duration::from_secs(6 * 3600),
            statement_timeout: Duration::from_secs(30 * 60),
            max_concurrent_per_token: 4,
            max_queued_per_token: 32,
            parts: 4,
            gzip_level: None,
            allow_anonymous: false,
        }
    }
}

/// Top-level sections, used to split `KONDATE_SECTION_KEY` into section and key.
const SECTIONS: &[&str] = &[
    "project",
    "server",
    "state",
    "service",
    "store",
    "warehouse",
    "query",
    "jobs",
    "notifications",
    "catalog",
];

/// `KONDATE_*` variables that kondate reads outside the configuration (the client's
/// endpoint and credentials, logging, the signing key, the project folder, the run
/// contract of an app run — docs/apps.md — for kondate commands inside a run). A server's
/// environment often holds them too, so they are skipped silently rather than reported
/// as unknown settings.
pub const NON_SETTING_VARS: &[&str] = &[
    "KONDATE_PROJECT",
    "KONDATE_LOG",
    "KONDATE_LOG_FORMAT",
    "KONDATE_SIGNING_KEY",
    "KONDATE_TOKEN",
    "KONDATE_TOKEN_SECRET",
    "KONDATE_ENDPOINT",
    "KONDATE_URL",
    "KONDATE_RUN_ID",
    "KONDATE_APP",
    "KONDATE_ATTEMPT",
    "KONDATE_CPUS",
    // The contract of a job's step (docs/jobs.md), for kondate commands inside a step.
    "KONDATE_JOB",
    "KONDATE_INSTANCE_ID",
    "KONDATE_SCHEDULED_AT",
    "KONDATE_STEP",
    "KONDATE_PARALLEL_FORK_INDEX",
    "KONDATE_PARALLEL_FORK_SIZE",
    crate::FAILPOINT_VAR,
];

impl Config {
    /// Load `kondate.toml` text (may be empty) plus environment overrides.
    ///
    /// `file` only names the source in error messages. Relative paths stay relative:
    /// [`Config::resolve_paths`] anchors them to the project.
    pub fn from_sources(
        text: &str,
        file: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, CoreError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| CoreError::Config {
            location: file.display().to_string(),
            message: e.to_string(),
        })?;
        reject_secrets_in_file(&table, file)?;
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("KONDATE_") else {
                continue;
            };
            // KONDATE_TEST_* configure kondate's own test suite.
            if NON_SETTING_VARS.contains(&name.as_str()) || rest.starts_with("TEST_") {
                continue;
            }
            let lower = rest.to_ascii_lowercase();
            let Some((section, key)) = SECTIONS.iter().find_map(|s| {
                lower
                    .strip_prefix(s)
                    .and_then(|k| k.strip_prefix('_'))
                    .map(|k| (*s, k.to_string()))
            }) else {
                // Not KONDATE_<SECTION>_…: some other tool's variable, or a typo in the
                // section; say so, but do not fail on it.
                tracing::warn!(
                    variable = %name,
                    "ignoring environment variable: settings are KONDATE_<SECTION>_<KEY> with \
                     SECTION one of {}",
                    SECTIONS.join(", ")
                );
                continue;
            };
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(section_table) = entry else {
                return Err(CoreError::Config {
                    location: file.display().to_string(),
                    message: format!("`{section}` must be a table"),
                });
            };
            section_table.insert(key, env_value(&value));
        }
        let config: Config =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| CoreError::Config {
                    location: format!("{} (or a KONDATE_* variable)", file.display()),
                    message: e.to_string(),
                })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), CoreError> {
        let bad = |field: &str, message: String| CoreError::Config {
            location: field.to_string(),
            message,
        };
        let listen = self.listen_addr()?;
        if self.query.allow_anonymous && !listen.ip().is_loopback() {
            return Err(bad(
                "query.allow_anonymous",
                format!(
                    "is only allowed when server.listen is a loopback address (127.0.0.1 or \
                     [::1]), not `{listen}`: anyone who could reach the server could query \
                     without a token. Give clients tokens (`kondate tokens create`) instead"
                ),
            ));
        }
        for host in &self.server.allowed_hosts {
            if host.is_empty() || host.contains(['/', ' ', '@']) {
                return Err(bad(
                    "server.allowed_hosts",
                    format!("`{host}` is not a host name; write names like kondate.example.com"),
                ));
            }
        }
        if self.query.parts == 0 || self.query.parts > 64 {
            return Err(bad("query.parts", "must be between 1 and 64".into()));
        }
        if self.query.gzip_level.is_some_and(|l| l > 9) {
            return Err(bad("query.gzip_level", "must be between 0 and 9".into()));
        }
        if self.query.max_concurrent_per_token == 0 {
            return Err(bad(
                "query.max_concurrent_per_token",
                "must be at least 1".into(),
            ));
        }
        if self.query.result_ttl < Duration::from_secs(1) {
            return Err(bad("query.result_ttl", "must be at least 1s".into()));
        }
        match self.warehouse.kind {
            WarehouseKind::Embedded => {}
            WarehouseKind::Postgres | WarehouseKind::Redshift => {
                if self.warehouse.url.is_none() {
                    return Err(bad(
                        "warehouse.url",
                        "is required for this warehouse type; set KONDATE_WAREHOUSE_URL \
                         (e.g. postgres://user:password@host:5432/db)"
                            .into(),
                    ));
                }
            }
        }
        if self.warehouse.kind == WarehouseKind::Redshift && self.warehouse.iam_role.is_none() {
            return Err(bad(
                "warehouse.iam_role",
                "is required for Redshift: UNLOAD writes to S3 with this role".into(),
            ));
        }
        self.validate_notifications()?;
        self.validate_console()?;
        self.validate_catalog()
    }

    fn validate_console(&self) -> Result<(), CoreError> {
        let Some(o) = &self.console.oidc else {
            return Ok(());
        };
        let bad = |field: &str, message: String| CoreError::Config {
            location: format!("console.oidc.{field}"),
            message,
        };
        let local = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
            .iter()
            .any(|p| {
                o.issuer
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
            });
        let https = o.issuer.starts_with("https://") && o.issuer.len() > 8;
        if !https && !local {
            return Err(bad(
                "issuer",
                format!(
                    "`{}` must be an https:// URL (http only for a provider on loopback)",
                    o.issuer
                ),
            ));
        }
        if o.client_id.trim().is_empty() {
            return Err(bad(
                "client_id",
                "is required: the client id the provider gave".into(),
            ));
        }
        if o.client_secret_env.is_some() == o.client_secret_file.is_some() {
            return Err(bad(
                "client_secret_env",
                "give the client secret once: client_secret_env = \"VARIABLE\" or \
                 client_secret_file = \"PATH\" (never the secret itself)"
                    .into(),
            ));
        }
        for d in &o.allowed_domains {
            if d.is_empty() || d.contains(['@', '/', ' ']) {
                return Err(bad(
                    "allowed_domains",
                    format!("`{d}` is not a domain; write domains like example.com"),
                ));
            }
        }
        if self.server.public_url.is_none() {
            return Err(bad(
                "issuer",
                "sign-in through a provider needs server.public_url (the provider sends people \
                 back to PUBLIC_URL/signin/oidc/callback; register that address with it)"
                    .into(),
            ));
        }
        Ok(())
    }

    fn validate_catalog(&self) -> Result<(), CoreError> {
        for (name, src) in &self.catalog.sources {
            let bad = |field: &str, message: String| CoreError::Config {
                location: format!("catalog.sources.{name}{field}"),
                message,
            };
            if name.is_empty()
                || name.len() > 63
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            {
                return Err(bad(
                    "",
                    "a source's name is 1 to 63 of a-z, 0-9, `_` and `-` (it is part of every \
                     object's name and URL)"
                        .into(),
                ));
            }
            let given = [
                src.url.is_some(),
                src.url_env.is_some(),
                src.url_file.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if BUILT_IN_CATALOG_SOURCES.contains(&name.as_str()) {
                if given > 0 {
                    return Err(bad(
                        ".url",
                        format!(
                            "`{name}` is the configured {} and takes no URL (only include and \
                             ignore); name another database's source differently",
                            if name == "warehouse" {
                                "warehouse"
                            } else {
                                "service database"
                            }
                        ),
                    ));
                }
                continue;
            }
            match given {
                0 => {
                    return Err(bad(
                        ".url",
                        "is required: set url_env = \"VARIABLE\" (the variable holding the \
                         database's URL), url_file, or url without a password"
                            .into(),
                    ));
                }
                1 => {}
                _ => {
                    return Err(bad(
                        ".url",
                        "is given twice; keep one of url, url_env and url_file".into(),
                    ));
                }
            }
            if let Some(u) = &src.url {
                if url_has_password(u) {
                    return Err(bad(
                        ".url",
                        "contains a password; secrets never go in kondate.toml — set url_env = \
                         \"VARIABLE\" (or url_file) instead"
                            .into(),
                    ));
                }
                if !["postgres://", "postgresql://", "mysql://", "sqlite:"]
                    .iter()
                    .any(|p| u.starts_with(p))
                {
                    return Err(bad(
                        ".url",
                        format!(
                            "`{}` is not a database URL kondate reads: postgres://, mysql:// or \
                             sqlite://",
                            redact_url(u)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_notifications(&self) -> Result<(), CoreError> {
        let n = &self.notifications;
        let bad = |field: String, message: String| CoreError::Config {
            location: format!("notifications.{field}"),
            message,
        };
        for name in &n.default {
            if !n.destinations.contains_key(name) {
                return Err(bad(
                    "default".into(),
                    format!(
                        "names `{name}`, which is not a destination; add \
                         [notifications.destinations.{name}] (known: {})",
                        known(n.destinations.keys())
                    ),
                ));
            }
        }
        if n.attempts == 0 {
            return Err(bad("attempts".into(), "must be at least 1".into()));
        }
        for (name, d) in &n.destinations {
            crate::names::validate_name("destination", name)
                .map_err(|e| bad(format!("destinations.{name}"), e.to_string()))?;
            let field = |f: &str| format!("destinations.{name}.{f}");
            let one_of = |label: &str, set: &[bool]| -> Result<(), CoreError> {
                match set.iter().filter(|b| **b).count() {
                    1 => Ok(()),
                    0 => Err(bad(
                        field(label),
                        format!("is required: set {label}_env (a variable's name) or {label}_file"),
                    )),
                    _ => Err(bad(
                        field(label),
                        format!("is given twice; keep one of {label}_env and {label}_file"),
                    )),
                }
            };
            let unused = |fields: &[(&str, bool)]| -> Result<(), CoreError> {
                match fields.iter().find(|(_, set)| *set) {
                    Some((f, _)) => Err(bad(
                        field(f),
                        format!("does not apply to a {:?} destination", d.kind).to_lowercase(),
                    )),
                    None => Ok(()),
                }
            };
            match d.kind {
                DestinationKind::Slack => {
                    if d.url.is_some() {
                        return Err(bad(
                            field("url"),
                            "is a secret for Slack (anyone with it can post); secrets never go in \
                             kondate.toml — set url_env = \"VARIABLE\" or url_file instead"
                                .into(),
                        ));
                    }
                    one_of("url", &[d.url_env.is_some(), d.url_file.is_some()])?;
                    unused(&[
                        ("secret_env", d.secret_env.is_some()),
                        ("secret_file", d.secret_file.is_some()),
                        ("smtp", d.smtp.is_some()),
                        ("from", d.from.is_some()),
                        ("to", !d.to.is_empty()),
                    ])?;
                }
                DestinationKind::Webhook => {
                    match [d.url.is_some(), d.url_env.is_some(), d.url_file.is_some()]
                        .iter()
                        .filter(|b| **b)
                        .count()
                    {
                        1 => {}
                        0 => return Err(bad(field("url"), "is required".into())),
                        _ => {
                            return Err(bad(
                                field("url"),
                                "is given twice; keep one of url, url_env and url_file".into(),
                            ));
                        }
                    }
                    if let Some(u) = &d.url
                        && !(u.starts_with("http://") || u.starts_with("https://"))
                    {
                        return Err(bad(field("url"), format!("`{u}` is not an http(s) URL")));
                    }
                    one_of("secret", &[d.secret_env.is_some(), d.secret_file.is_some()])?;
                    unused(&[
                        ("smtp", d.smtp.is_some()),
                        ("from", d.from.is_some()),
                        ("to", !d.to.is_empty()),
                    ])?;
                }
                DestinationKind::Email => {
                    let Some(smtp) = &d.smtp else {
                        return Err(bad(
                            field("smtp"),
                            "is required: smtp://host:25, smtp://host:587?tls=required or \
                             smtps://host:465"
                                .into(),
                        ));
                    };
                    if !(smtp.starts_with("smtp://") || smtp.starts_with("smtps://")) {
                        return Err(bad(
                            field("smtp"),
                            format!("`{}` is not an smtp:// or smtps:// URL", redact_url(smtp)),
                        ));
                    }
                    if url_has_password(smtp) {
                        return Err(bad(
                            field("smtp"),
                            "contains a password; secrets never go in kondate.toml — set \
                             username here and password_env or password_file"
                                .into(),
                        ));
                    }
                    if d.from.is_none() {
                        return Err(bad(
                            field("from"),
                            "is required (the sender's address)".into(),
                        ));
                    }
                    if d.to.is_empty() {
                        return Err(bad(
                            field("to"),
                            "is required: one or more addresses".into(),
                        ));
                    }
                    if d.password_env.is_some() && d.password_file.is_some() {
                        return Err(bad(
                            field("password"),
                            "is given twice; keep one of password_env and password_file".into(),
                        ));
                    }
                    unused(&[
                        ("url", d.url.is_some()),
                        ("url_env", d.url_env.is_some()),
                        ("url_file", d.url_file.is_some()),
                        ("secret_env", d.secret_env.is_some()),
                        ("secret_file", d.secret_file.is_some()),
                    ])?;
                }
            }
        }
        Ok(())
    }

    /// The parsed listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, CoreError> {
        self.server.listen.parse().map_err(|_| CoreError::Config {
            location: "server.listen".into(),
            message: format!(
                "`{}` is not an address like 127.0.0.1:7878",
                self.server.listen
            ),
        })
    }

    /// The base URL under which this server is reachable.
    pub fn public_url(&self) -> String {
        self.server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.server.listen))
            .trim_end_matches('/')
            .to_string()
    }

    /// Anchor relative local paths (SQLite file, store folder, key file) at `root`.
    pub fn resolve_paths(&mut self, root: &Path) {
        for url in [&mut self.state.url, &mut self.service.url] {
            if let Some(path) = url.strip_prefix("sqlite://")
                && !path.starts_with('/')
                && !path.starts_with(":memory:")
            {
                *url = format!("sqlite://{}", root.join(path).display());
            }
        }
        for src in self.catalog.sources.values_mut() {
            if let Some(file) = &mut src.url_file
                && file.is_relative()
            {
                *file = root.join(&*file);
            }
        }
        if let Some(file) = self
            .console
            .oidc
            .as_mut()
            .and_then(|o| o.client_secret_file.as_mut())
            && file.is_relative()
        {
            *file = root.join(&*file);
        }
        for d in self.notifications.destinations.values_mut() {
            for file in [&mut d.url_file, &mut d.secret_file, &mut d.password_file]
                .into_iter()
                .flatten()
            {
                if file.is_relative() {
                    *file = root.join(&*file);
                }
            }
        }
        if !self.store.url.contains("://") && !self.store.url.starts_with('/') {
            self.store.url = root.join(&self.store.url).display().to_string();
        }
        if !self.store.signing_key_file.starts_with('/') {
            self.store.signing_key_file = root
                .join(&self.store.signing_key_file)
                .display()
                .to_string();
        }
    }
}

/// `a, b, c` for a message.
fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.is_empty() {
        "none yet".into()
    } else {
        v.join(", ")
    }
}

/// An environment value as TOML when it parses as a scalar (`4`, `true`), else a string.
fn env_value(raw: &str) -> toml::Value {
    match toml::from_str::<BTreeMap<String, toml::Value>>(&format!("v = {raw}")) {
        Ok(mut m) => match m.remove("v") {
            Some(
                v @ (toml::Value::Integer(_) | toml::Value::Boolean(_) | toml::Value::Float(_)),
            ) => v,
            _ => toml::Value::String(raw.to_string()),
        },
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// Connection URLs in `kondate.toml` must not carry a password.
fn reject_secrets_in_file(table: &toml::Table, file: &Path) -> Result<(), CoreError> {
    for (section, env) in [
        ("state", "KONDATE_STATE_URL"),
        ("service", "KONDATE_SERVICE_URL"),
        ("warehouse", "KONDATE_WAREHOUSE_URL"),
    ] {
        let url = table
            .get(section)
            .and_then(|s| s.get("url"))
            .and_then(|u| u.as_str());
        if let Some(url) = url
            && url_has_password(url)
        {
            return Err(CoreError::Config {
                location: format!("{} [{section}] url", file.display()),
                message: format!(
                    "contains a password; secrets never go in kondate.toml — remove it and set \
                     {env} in the environment instead"
                ),
            });
        }
    }
    Ok(())
}

/// Query-string parameters of a connection URL whose values are secrets (PostgreSQL and
/// MySQL drivers both read a password from `?password=`).
const SECRET_URL_PARAMS: &[&str] = &["password", "sslpassword", "pass", "pwd"];

fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SECRET_URL_PARAMS.contains(&n.as_str())
}

/// True when the URL carries a non-empty password: `scheme://user:password@host…`, or a
/// `password=` (`sslpassword=`, …) parameter in its query string.
pub fn url_has_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let in_userinfo = match authority.rsplit_once('@') {
        Some((userinfo, _)) => userinfo.split_once(':').is_some_and(|(_, p)| !p.is_empty()),
        None => false,
    };
    let in_query = url.split_once('?').is_some_and(|(_, q)| {
        q.split(['&', '#'])
            .filter_map(|kv| kv.split_once('='))
            .any(|(k, v)| is_secret_param(k) && !v.is_empty())
    });
    in_userinfo || in_query
}

/// The URL with any password replaced by `***` — in the userinfo and in the query string —
/// for logs and messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) if is_secret_param(k) && !v.is_empty() => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

mod human_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(s) => Ok(Duration::from_secs(s)),
            Raw::Text(t) => humantime::parse_duration(&t).map_err(|e| {
                serde::de::Error::custom(format!(
                    "`{t}` is not a duration like 90s, 30m or 6h: {e}"
                ))
            }),
        }
    }
}

/// Sizes written as people write them: `64GiB`, `512MiB`, `1.5GB`, `4096` (bytes).
pub mod human_size {
    use serde::{Deserialize, Deserializer};

    /// Parse `text` into bytes.
    pub fn parse(text: &str) -> Result<u64, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let n: f64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a size; write e.g. 512MiB, 64GiB or 4096"))?;
        let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "k" | "kb" => 1e3,
            "kib" => 1024.0,
            "m" | "mb" => 1e6,
            "mib" => 1024.0 * 1024.0,
            "g" | "gb" => 1e9,
            "gib" => 1024.0 * 1024.0 * 1024.0,
            "t" | "tb" => 1e12,
            "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            other => {
                return Err(format!(
                    "`{other}` in `{text}` is not a size unit; use B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB)"
                ));
            }
        };
        let bytes = n * factor;
        if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
            return Err(format!("`{text}` is not a usable size"));
        }
        Ok(bytes as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(b) if b > 0 => Ok(b),
            Raw::Bytes(_) => Err(serde::de::Error::custom("a size must be more than 0 bytes")),
            Raw::Text(t) => parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_written() {
        assert_eq!(human_size::parse("64GiB").unwrap(), 64 << 30);
        assert_eq!(human_size::parse("512 MiB").unwrap(), 512 << 20);
        assert_eq!(human_size::parse("1.5GB").unwrap(), 1_500_000_000);
        assert_eq!(human_size::parse("4096").unwrap(), 4096);
        assert!(
            human_size::parse("12 parsecs")
                .unwrap_err()
                .contains("not a size unit")
        );
        assert!(human_size::parse("lots").is_err());
        assert!(human_size::parse("0").is_err());
        let c = load(
            "[server]\nmax_upload = \"2GiB\"\nbody_timeout = \"5s\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.server.max_upload, 2 << 30);
        assert_eq!(c.server.body_timeout, Duration::from_secs(5));
        let c = load("[warehouse]\nmemory_limit = \"25%\"\n", &[]).unwrap();
        assert_eq!(c.warehouse.memory_limit.bytes(8 << 30), 2 << 30);
        let c = load("", &[("KONDATE_WAREHOUSE_MEMORY_LIMIT", "512MiB")]).unwrap();
        assert_eq!(c.warehouse.memory_limit, MemoryLimit::Bytes(512 << 20));
        assert!(load("[warehouse]\nmemory_limit = \"150%\"\n", &[]).is_err());
        let e = load("[server]\nmax_upload = \"2 GiBs\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("size unit"), "{e}");
    }

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, CoreError> {
        Config::from_sources(
            text,
            Path::new("kondate.toml"),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn catalog_sources_are_checked() {
        let c = load(
            "[catalog.sources.warehouse]\nignore = ['^tmp\\.']\n[catalog.sources.legacy]\nurl_env = 'LEGACY_URL'\ninclude = '^public\\.'\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.catalog.sources["warehouse"].ignore, ["^tmp\\."]);
        assert_eq!(
            c.catalog.sources["legacy"].url_env.as_deref(),
            Some("LEGACY_URL")
        );
        let err = |text: &str| load(text, &[]).unwrap_err().to_string();
        let e = err("[catalog.sources.legacy]\nurl = 'postgres://u:hunter2@h/db'\n");
        assert!(
            e.contains("catalog.sources.legacy.url") && e.contains("url_env"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        let e = err("[catalog.sources.legacy]\ninclude = 'x'\n");
        assert!(e.contains("is required"), "{e}");
        let e = err("[catalog.sources.service]\nurl = 'sqlite://x.db'\n");
        assert!(e.contains("takes no URL"), "{e}");
        let e = err("[catalog.sources.'Bad Name']\nurl = 'sqlite://x.db'\n");
        assert!(e.contains("a-z, 0-9"), "{e}");
        let e = err("[catalog.sources.x]\nurl = 'http://x'\n");
        assert!(e.contains("not a database URL"), "{e}");
        let e = err("[catalog.sources.x]\nurl = 'sqlite://x.db'\nurl_env = 'X'\n");
        assert!(e.contains("given twice"), "{e}");
        let e = err("[catalog.sources.x]\nurl = 'sqlite://x.db'\nignored = ['a']\n");
        assert!(e.contains("ignored"), "{e}");
    }

    #[test]
    fn the_consoles_provider_is_checked() {
        let ok = "[server]\npublic_url = 'https://k.example.com'\n[console.oidc]\n\
                  issuer = 'https://accounts.google.com'\nclient_id = 'c'\n\
                  client_secret_env = 'OIDC_SECRET'\nallowed_domains = ['example.com']\n";
        let c = load(ok, &[]).unwrap();
        let o = c.console.oidc.as_ref().unwrap();
        assert_eq!(
            (o.name.as_str(), o.default_role.as_deref()),
            ("single sign-on", None)
        );
        let err = |text: &str| load(text, &[]).unwrap_err().to_string();
        let e = err(&ok.replace("[server]\npublic_url = 'https://k.example.com'\n", ""));
        assert!(e.contains("public_url"), "{e}");
        let e = err(&ok.replace("https://accounts.google.com", "http://idp.example.com"));
        assert!(e.contains("https://"), "{e}");
        // http only on loopback (a provider in a test, or beside the server).
        load(
            &ok.replace("https://accounts.google.com", "http://127.0.0.1:9000"),
            &[],
        )
        .unwrap();
        let e = err(&ok.replace("client_secret_env = 'OIDC_SECRET'\n", ""));
        assert!(
            e.contains("client_secret_env") && e.contains("never the secret"),
            "{e}"
        );
        let e = err(&ok.replace("['example.com']", "['@example.com']"));
        assert!(e.contains("allowed_domains"), "{e}");
        let e = err(&format!("{ok}client_secret = 'hunter2'\n"));
        assert!(
            e.contains("client_secret"),
            "an unknown key (a secret in the file) is refused: {e}"
        );
    }

    #[test]
    fn empty_file_gives_embedded_defaults() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:7878");
        assert_eq!(c.warehouse.kind, WarehouseKind::Embedded);
        assert_eq!(c.state.url, "sqlite://.kondate/state.db");
        assert_eq!(c.query.result_ttl, Duration::from_secs(21600));
    }

    #[test]
    fn environment_overrides_file() {
        let c = load(
            "[server]\nlisten = \"127.0.0.1:1\"\n[query]\nparts = 2\n",
            &[
                ("KONDATE_SERVER_LISTEN", "127.0.0.2:9000"),
                ("KONDATE_QUERY_PARTS", "8"),
                ("KONDATE_QUERY_RESULT_TTL", "2h"),
                ("KONDATE_QUERY_ALLOW_ANONYMOUS", "true"),
                ("KONDATE_LOG", "debug"),
                ("PATH", "/bin"),
            ],
        )
        .unwrap();
        assert_eq!(c.server.listen, "127.0.0.2:9000");
        assert_eq!(c.query.parts, 8);
        assert_eq!(c.query.result_ttl, Duration::from_secs(7200));
        assert!(c.query.allow_anonymous);
    }

    #[test]
    fn debug_never_shows_a_password_from_the_environment() {
        let c = load(
            "[warehouse]\ntype = \"postgres\"\n",
            &[
                ("KONDATE_STATE_URL", "postgres://k:state-pw-1@db/state"),
                (
                    "KONDATE_SERVICE_URL",
                    "mysql://k@db/app?password=service-pw-2",
                ),
                ("KONDATE_WAREHOUSE_URL", "postgres://k:warehouse-pw-3@dw/w"),
            ],
        )
        .unwrap();
        let shown = format!("{c:?}");
        for pw in ["state-pw-1", "service-pw-2", "warehouse-pw-3"] {
            assert!(!shown.contains(pw), "{pw} in {shown}");
        }
        assert!(shown.contains("postgres://k:***@db/state"), "{shown}");
    }

    #[test]
    fn anonymous_queries_are_refused_off_loopback() {
        for listen in ["0.0.0.0:7878", "192.168.1.5:7878", "[::]:7878"] {
            let e = load(
                "[query]\nallow_anonymous = true\n",
                &[("KONDATE_SERVER_LISTEN", listen)],
            )
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("query.allow_anonymous") && e.contains("loopback"),
                "{e}"
            );
        }
        for listen in ["127.0.0.1:7878", "[::1]:7878"] {
            load(
                "[query]\nallow_anonymous = true\n",
                &[("KONDATE_SERVER_LISTEN", listen)],
            )
            .unwrap();
        }
    }

    #[test]
    fn gzip_level_is_unset_by_default_and_bounded() {
        assert_eq!(load("", &[]).unwrap().query.gzip_level, None);
        let c = load("", &[("KONDATE_QUERY_GZIP_LEVEL", "1")]).unwrap();
        assert_eq!(c.query.gzip_level, Some(1));
        let err = load("[query]\ngzip_level = 12\n", &[]).unwrap_err();
        assert!(
            err.to_string().contains("query.gzip_level") && err.to_string().contains("0 and 9"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_in_a_known_section_is_an_error_naming_it() {
        let err = load("", &[("KONDATE_SERVER_LISTN", "x")]).unwrap_err();
        assert!(err.to_string().contains("listn"), "{err}");
    }

    #[test]
    fn variables_outside_the_sections_are_ignored() {
        let c = load(
            "",
            &[
                ("KONDATE_BIN", "/usr/bin/kondate"),
                ("KONDATE_SERVR_LISTEN", "x"),
            ],
        )
        .unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:7878");
    }

    #[test]
    fn unknown_key_in_file_is_an_error() {
        let err = load("[query]\nprats = 3\n", &[]).unwrap_err();
        assert!(err.to_string().contains("prats"), "{err}");
    }

    #[test]
    fn password_in_file_is_refused_but_allowed_from_env() {
        let err = load(
            "[warehouse]\ntype = \"postgres\"\nurl = \"postgres://u:hunter2pw@h/db\"\n",
            &[],
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("KONDATE_WAREHOUSE_URL"), "{msg}");
        assert!(
            !msg.contains("hunter2pw"),
            "the message must not echo the secret: {msg}"
        );
        let c = load(
            "[warehouse]\ntype = \"postgres\"\n",
            &[("KONDATE_WAREHOUSE_URL", "postgres://u:hunter2pw@h/db")],
        )
        .unwrap();
        assert_eq!(
            c.warehouse.url.as_deref(),
            Some("postgres://u:hunter2pw@h/db")
        );
    }

    #[test]
    fn postgres_warehouse_requires_url() {
        let err = load("[warehouse]\ntype = \"postgres\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("warehouse.url"), "{err}");
    }

    #[test]
    fn bad_duration_names_the_value() {
        let err = load("[query]\nresult_ttl = \"soon\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("soon"), "{err}");
    }

    #[test]
    fn redaction_hides_password_only() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db?x=1"),
            "postgres://u:***@h:5432/db?x=1"
        );
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
        assert!(url_has_password("mysql://root:pw@127.0.0.1/test"));
        // A password in the query string is a password too.
        assert!(url_has_password(
            "postgres://u@h/db?sslmode=require&password=hunter2"
        ));
        assert!(url_has_password("mysql://root@h/test?PASSWORD=x"));
        assert!(!url_has_password("postgres://u@h/db?password="));
        assert_eq!(
            redact_url("postgres://u@h/db?sslmode=require&password=hunter2&application_name=k"),
            "postgres://u@h/db?sslmode=require&password=***&application_name=k"
        );
        assert_eq!(
            redact_url("postgres://u:pw@h/db?password=pw2"),
            "postgres://u:***@h/db?password=***"
        );
        assert!(!url_has_password("mysql://root@127.0.0.1/test"));
        assert!(!url_has_password("mysql://root:@127.0.0.1/test"));
    }

    #[test]
    fn relative_paths_resolve_against_project() {
        let mut c = load("", &[]).unwrap();
        c.resolve_paths(Path::new("/p"));
        assert_eq!(c.state.url, "sqlite:///p/.kondate/state.db");
        assert_eq!(c.store.url, "/p/.kondate/store");
        assert_eq!(c.store.signing_key_file, "/p/.kondate/signing.key");
    }

    const DESTINATIONS: &str = r#"
        [notifications]
        default = ["oncall"]
        [notifications.destinations.oncall]
        type = "slack"
        url_env = "KONDATE_SLACK_URL"
        [notifications.destinations.hook]
        type = "webhook"
        url = "https://hooks.example.com/kondate"
        secret_file = "secrets/hook.key"
        [notifications.destinations.mail]
        type = "email"
        smtp = "smtp://mail.example.com:587?tls=required"
        username = "kondate"
        password_env = "KONDATE_SMTP_PASSWORD"
        from = "kondate@example.com"
        to = ["ml@example.com"]
    "#;

    #[test]
    fn notification_destinations_load_and_the_default_comes_from_the_environment() {
        let mut c = load(DESTINATIONS, &[]).unwrap();
        assert_eq!(c.notifications.default, ["oncall"]);
        assert_eq!(c.notifications.destinations.len(), 3);
        assert_eq!(
            c.notifications.destinations["mail"].kind,
            DestinationKind::Email
        );
        c.resolve_paths(Path::new("/p"));
        assert_eq!(
            c.notifications.destinations["hook"].secret_file,
            Some(PathBuf::from("/p/secrets/hook.key"))
        );
        let c = load(
            DESTINATIONS,
            &[("KONDATE_NOTIFICATIONS_DEFAULT", "hook, mail")],
        )
        .unwrap();
        assert_eq!(c.notifications.default, ["hook", "mail"]);
    }

    #[test]
    fn notification_destinations_are_checked_and_keep_secrets_out_of_the_file() {
        let err = |text: &str| load(text, &[]).unwrap_err().to_string();
        let e = err("[notifications]\ndefault = ['nope']\n");
        assert!(
            e.contains("notifications.default") && e.contains("`nope`"),
            "{e}"
        );
        let e = err(
            "[notifications.destinations.s]\ntype = 'slack'\nurl = 'https://hooks.slack.com/services/T/B/x'\n",
        );
        assert!(
            e.contains("destinations.s.url") && e.contains("url_env"),
            "{e}"
        );
        let e = err("[notifications.destinations.s]\ntype = 'slack'\n");
        assert!(e.contains("is required: set url_env"), "{e}");
        let e = err("[notifications.destinations.w]\ntype = 'webhook'\nurl = 'https://x'\n");
        assert!(
            e.contains("destinations.w.secret") && e.contains("secret_env"),
            "{e}"
        );
        let e = err(
            "[notifications.destinations.m]\ntype = 'email'\nsmtp = 'smtp://u:pw@mail:25'\nfrom = 'a@b'\nto = ['c@d']\n",
        );
        assert!(
            e.contains("contains a password") && !e.contains("pw@"),
            "{e}"
        );
        let e = err(
            "[notifications.destinations.m]\ntype = 'email'\nsmtp = 'smtp://mail:25'\nfrom = 'a@b'\n",
        );
        assert!(e.contains("destinations.m.to"), "{e}");
        let e = err("[notifications.destinations.x]\ntype = 'pager'\n");
        assert!(e.contains("pager"), "{e}");
        let e = err("[notifications.destinations.'a b']\ntype = 'slack'\nurl_env = 'X'\n");
        assert!(e.contains("a b"), "{e}");
    }
}
