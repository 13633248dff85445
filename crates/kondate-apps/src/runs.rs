//! Runs: starting an app, recording it in the state database, keeping its log.
//!
//! A run is a row in `kondate_runs` from the moment it is asked for — a definition that does
//! not evaluate, a missing secret or a command that does not exist is a recorded failed
//! run, never a missing or hung one. While it runs, its log is spooled to a local file
//! (so `kondate apps logs --follow` can tail it); when it ends, the log goes to the object
//! store under `runs/RUN_ID.log`, so it survives the machine.

use kondate_core::clock::ms_to_rfc3339;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use kondate_core::Clock;
use kondate_db::{Database, Session, Value, get_i64, get_opt_i64, get_opt_string, get_string};
use kondate_store::Store;
use serde::Serialize;

use crate::AppsError;
use crate::definition::{AppDefinition, Apps, SchedulerKind, validate_env_name};
use crate::logs::{LiveSink, LogWriter, Stream};
use crate::render::{self, Overrides};
use crate::runner::{Exit, LocalSpec, Outcome, run_local};
use crate::secrets::{self, Masker};

/// How a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    /// The kondate process that supervised it is gone without recording an end.
    Lost,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Lost => "lost",
        }
    }

    fn parse(s: &str) -> RunStatus {
        match s {
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "timed_out" => RunStatus::TimedOut,
            "cancelled" => RunStatus::Cancelled,
            "lost" => RunStatus::Lost,
            _ => RunStatus::Failed,
        }
    }

    pub fn is_final(self) -> bool {
        self != RunStatus::Running
    }
}

/// A recorded run.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub id: String,
    pub app: String,
    pub attempt: i64,
    pub status: RunStatus,
    pub runner: String,
    pub command: Vec<String>,
    /// What the run was asked with: `-e` variables and the command override.
    pub params: serde_json::Value,
    pub actor: String,
    pub host: String,
    pub pid: Option<i64>,
    /// The process it started (`HOST/BOOT_ID/PID/START_TICKS`), leading its own process
    /// group.
    pub process: Option<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub exit_code: Option<i64>,
    pub signal: Option<i64>,
    pub peak_memory_bytes: Option<i64>,
    pub log_key: Option<String>,
    pub log_bytes: Option<i64>,
    pub error: Option<String>,
}

/// Issues the run's credentials (the run contract's `KONDATE_URL`, `KONDATE_TOKEN` and
/// `KONDATE_TOKEN_SECRET`).
/// Implemented by the binary with the query API's tokens, so that this crate needs no
/// server parts.
#[async_trait::async_trait]
pub trait Credentials: Send + Sync {
    /// The server address jobs call.
    fn url(&self) -> String;
    /// A token for this run with `scopes` (the definition's, see
    /// [`crate::definition::RunAccess`]), valid for `ttl`: its name and secret (HTTP
    /// Basic).
    async fn issue(
        &self,
        run_id: &str,
        scopes: &[String],
        ttl: Duration,
    ) -> Result<(String, String), String>;
    /// Disable the run's token (the run ended).
    async fn revoke(&self, run_id: &str);
}

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    pub app: String,
    /// `-e K=V`: added to (and overriding) the definition's env.
    pub env: Vec<(String, String)>,
    /// `-- CMD…`: replaces `app.command`.
    pub command: Option<Vec<String>>,
    /// Force a runner (`local` or `docker`); by default docker for `scheduler.type: docker`
    /// and local otherwise.
    pub runner: Option<String>,
    pub actor: String,
}

/// Environment variables of kondate's own passed to every local run: enough for programs
/// to work (find commands, a home, a locale, a temp folder), nothing else.
pub const PASSED_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR",
];

/// Fallback PATH when kondate itself has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Reads a variable of kondate's own environment.
pub type EnvLookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Runs of a project's apps.
#[derive(Clone)]
pub struct Runs {
    pub db: Database,
    pub store: Store,
    pub apps: Apps,
    /// Where local runs start (`app.working_dir` is relative to it): the project root.
    pub root: PathBuf,
    /// Where logs are spooled while a run is live.
    pub spool: PathBuf,
    pub clock: Arc<dyn Clock>,
    pub credentials: Option<Arc<dyn Credentials>>,
    /// SIGTERM → SIGKILL grace period.
    pub grace: Duration,
    /// Reads kondate's own environment (secrets from `env:NAME`, [`PASSED_ENV`]).
    pub lookup: Arc<EnvLookup>,
    /// Enforce memory limits with a cgroup where possible (false: always `RLIMIT_AS`).
    pub use_cgroups: bool,
    /// The registered process ([`kondate_db::processes`]) that supervises the runs started
    /// here; None records the host and pid only.
    pub owner: Option<String>,
    /// How long a supervising process may stay silent before its runs count as lost
    /// (`state.lost_after`).
    pub lost_after: Duration,
}

impl std::fmt::Debug for Runs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runs").field("root", &self.root).finish()
    }
}

/// The working folder of run `id`: outside the project, so that the run's isolation keeps
/// nothing it needs out of reach.
fn run_work_dir(id: &str) -> PathBuf {
    std::env::temp_dir().join(format!("kondate-run-{id}"))
}

use kondate_core::host::{hostname, pid_alive as alive};

/// The object-store key of a run's log.
pub fn log_key(run_id: &str) -> String {
    format!("runs/{run_id}.log")
}

/// Parse `K=V` (a `-e` argument).
pub fn parse_env_arg(arg: &str) -> Result<(String, String), AppsError> {
    let (k, v) = arg
        .split_once('=')
        .ok_or_else(|| AppsError::Invalid(format!("-e `{arg}`: write it as NAME=VALUE")))?;
    validate_env_name(k).map_err(|m| AppsError::Invalid(format!("-e `{arg}`: {m}")))?;
    Ok((k.to_string(), v.to_string()))
}

impl Runs {
    /// The runs of the project at `root` (apps in `root/apps`, logs spooled in
    /// `root/.kondate/runs`), without run tokens; set `credentials` to issue them.
    pub fn new(db: Database, store: Store, root: &Path) -> Runs {
        Runs {
            db,
            store,
            apps: Apps::new(root.join("apps")),
            root: root.to_path_buf(),
            spool: root.join(".kondate").join("runs"),
            clock: Arc::new(kondate_core::SystemClock),
            credentials: None,
            grace: Duration::from_secs(10),
            lookup: Arc::new(|k| std::env::var(k).ok()),
            use_cgroups: true,
            owner: None,
            lost_after: Duration::from_secs(60),
        }
    }

    /// A new run id: the start time and a random suffix (sortable, unique, path-safe).
    fn new_id(&self) -> String {
        let now = self.clock.now();
        format!(
            "{}-{:06x}",
            now.format("%Y%m%dT%H%M%S%3fZ"),
            rand::random::<u32>() & 0xff_ffff
        )
    }

    fn now(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// Run app `req.app` to its end (with its retries), recording every attempt. Output is
    /// passed to `live` as it arrives; a signal sent on `cancel` is forwarded to the run.
    /// Returns the last attempt.
    pub async fn run(
        &self,
        req: &RunRequest,
        live: Option<Arc<LiveSink>>,
        cancel: tokio::sync::watch::Receiver<Option<i32>>,
    ) -> Result<RunInfo, AppsError> {
        kondate_core::names::validate_name("app name", &req.app)?;
        let path = self.apps.path_of(&req.app)?;
        let mut attempt = 1;
        loop {
            let (info, retries) = self
                .attempt(req, &path, attempt, live.clone(), cancel.clone())
                .await?;
            // Retry what ran and failed; not what could not start (it would fail the same
            // way), and not what the user stopped.
            let retry = matches!(info.status, RunStatus::Failed | RunStatus::TimedOut)
                && attempt <= retries
                && info.pid.is_some();
            if !retry {
                return Ok(info);
            }
            if let Some(live) = &live {
                live(
                    Stream::Stderr,
                    format!(
                        "kondate: attempt {attempt} of {} {}; retrying\n",
                        retries + 1,
                        info.status.as_str()
                    )
                    .as_bytes(),
                );
            }
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        req: &RunRequest,
        path: &Path,
        attempt: i64,
        live: Option<Arc<LiveSink>>,
        cancel: tokio::sync::watch::Receiver<Option<i32>>,
    ) -> Result<(RunInfo, i64), AppsError> {
        let id = self.new_id();
        let started = self.now();
        // Evaluate first: its error is the run's error.
        let def = crate::definition::load_file(path, &req.app, true);
        let retries = def.as_ref().map_or(0, |d| d.retries as i64);
        let runner = match (&req.runner, &def) {
            (Some(r), _) => r.clone(),
            (None, Ok(d)) if d.scheduler == SchedulerKind::Docker => "docker".into(),
            _ => "local".into(),
        };
        let command: Vec<String> = match &def {
            Ok(d) => req.command.clone().unwrap_or_else(|| {
                let mut argv = d.app.entry_point.clone().unwrap_or_default();
                argv.extend(d.app.command.clone().unwrap_or_default());
                argv
            }),
            Err(_) => req.command.clone().unwrap_or_default(),
        };
        // `-e` values may be secrets: stored masked unless the definition says the variable
        // is plain (a definition that does not load says nothing is).
        let plain: &[String] = match &def {
            Ok(d) => &d.access.plain_env,
            Err(_) => &[],
        };
        let params = serde_json::json!({
            "env": req.env.iter().map(|(k, v)| {
                let shown = if plain.contains(k) { v.clone() } else { crate::secrets::MASK.to_string() };
                (k.clone(), serde_json::Value::from(shown))
            })
                .collect::<serde_json::Map<_, _>>(),
            "command": req.command,
        });
        self.db
            .execute(
                "INSERT INTO kondate_runs (id, app, attempt, status, runner, command, params, \
                 actor, host, supervisor_pid, started_at, owner) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                &[
                    Value::from(id.as_str()),
                    Value::from(req.app.as_str()),
                    Value::Int(attempt),
                    Value::from("running"),
                    Value::from(runner.as_str()),
                    Value::from(serde_json::to_string(&command).unwrap_or_default()),
                    Value::from(params.to_string()),
                    Value::from(req.actor.as_str()),
                    Value::from(hostname()),
                    Value::Int(std::process::id() as i64),
                    Value::Int(started),
                    Value::from(self.owner.as_deref()),
                ],
            )
            .await?;
        std::fs::create_dir_all(&self.spool).map_err(|e| AppsError::io(&self.spool, e))?;
        let spool = self.spool.join(format!("{id}.log"));
        let file = std::fs::File::create(&spool).map_err(|e| AppsError::io(&spool, e))?;
        // Unbuffered: the capture writes whole chunks of lines at once, and followers
        // (`logs --follow`) see each chunk as soon as it is read.
        let log = Arc::new(LogWriter::new(Box::new(file)));
        let mut token_issued = false;
        let outcome = match def {
            Err(e) => Err(format!("definition: {e}")),
            Ok(def) => {
                let prepared = self
                    .prepare(&def, req, &id, attempt, &runner, &command)
                    .await;
                token_issued = prepared.as_ref().is_ok_and(|(_, t)| *t);
                match prepared {
                    Err(e) => Err(e.to_string()),
                    Ok((mut spec, _)) => {
                        spec.on_start = Some(crate::runner::StartHook::recording(
                            self.db.clone(),
                            "UPDATE kondate_runs SET process = ? WHERE id = ?",
                            Value::from(id.as_str()),
                        ));
                        let o = run_local(spec, log.clone(), live.clone(), cancel).await;
                        let _ = std::fs::remove_dir_all(run_work_dir(&id));
                        Ok((o, def))
                    }
                }
            }
        };
        if token_issued && let Some(c) = &self.credentials {
            c.revoke(&id).await;
        }
        let (status, exit_code, signal, pid, peak, error) = match &outcome {
            Err(e) => {
                let _ = log.note(Stream::Stderr, &format!("kondate: {e}"));
                if let Some(live) = &live {
                    live(Stream::Stderr, format!("kondate: {e}\n").as_bytes());
                }
                (RunStatus::Failed, None, None, None, None, Some(e.clone()))
            }
            Ok((o, def)) => self.judge(o, def),
        };
        if let (Some(e), Ok((o, _))) = (&error, &outcome) {
            let _ = log.note(Stream::Stderr, &format!("kondate: {e}"));
            // A command that never started printed nothing: say why where the user looks.
            if let (Exit::FailedToStart(_), Some(live)) = (&o.exit, &live) {
                live(Stream::Stderr, format!("kondate: {e}\n").as_bytes());
            }
        }
        let _ = log.flush();
        let log_bytes = std::fs::metadata(&spool).map(|m| m.len() as i64).ok();
        drop(log);
        let key = log_key(&id);
        let uploaded = self.upload_log(&spool, &key).await;
        let upload_error = uploaded.as_ref().err().map(|e| e.to_string());
        let error = match (error, upload_error) {
            (e, None) => e,
            (Some(e), Some(u)) => Some(format!("{e}; the log could not be stored: {u}")),
            (None, Some(u)) => Some(format!("the log could not be stored: {u}")),
        };
        let ended = self.now();
        let mut tx = self.db.begin().await?;
        tx.execute(
            "UPDATE kondate_runs SET status = ?, ended_at = ?, exit_code = ?, term_signal = ?, \
             pid = ?, peak_memory_bytes = ?, log_key = ?, log_bytes = ?, error = ? WHERE id = ?",
            &[
                Value::from(status.as_str()),
                Value::Int(ended),
                Value::from(exit_code),
                Value::from(signal),
                Value::from(pid),
                Value::from(peak),
                match uploaded {
                    Ok(()) => Value::from(key.as_str()),
                    Err(_) => Value::from(Option::<String>::None),
                },
                Value::from(log_bytes),
                Value::from(error.clone()),
                Value::from(id.as_str()),
            ],
        )
        .await?;
        let payload = serde_json::json!({
            "run": id, "app": req.app, "attempt": attempt, "status": status.as_str(),
            "exit_code": exit_code,
        });
        kondate_db::state::record_event_tx(
            &mut tx,
            "app.run_finished",
            &req.app,
            &payload.to_string(),
            ended,
        )
        .await?;
        tx.commit().await?;
        Ok((self.get(&id).await?, retries))
    }

    /// Status, exit code, signal, pid, peak memory and error of a finished local run.
    #[allow(clippy::type_complexity)]
    fn judge(
        &self,
        o: &Outcome,
        def: &AppDefinition,
    ) -> (
        RunStatus,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<String>,
    ) {
        let pid = o.pid.map(i64::from);
        let peak = o.peak_memory_bytes.map(|b| b as i64);
        let code = Some(o.exit.code() as i64);
        let memory_hint = |what: String| match def.app.memory {
            Some(mib) if o.oom_killed => format!(
                "{what}: the run's processes together needed more than app.memory ({mib} MiB) \
                 and the kernel killed one; raise app.memory"
            ),
            Some(mib) => format!(
                "{what}; if it ran out of memory, raise app.memory (now {mib} MiB, enforced by \
                 {})",
                o.memory_enforcement
            ),
            None => what,
        };
        match &o.exit {
            Exit::Code(0) => (RunStatus::Succeeded, code, None, pid, peak, None),
            Exit::Code(c) => (
                RunStatus::Failed,
                code,
                None,
                pid,
                peak,
                Some(memory_hint(format!("exited with status {c}"))),
            ),
            Exit::Signal(s) => (
                RunStatus::Failed,
                code,
                Some(*s as i64),
                pid,
                peak,
                Some(memory_hint(format!("killed by signal {s}"))),
            ),
            Exit::TimedOut => (
                RunStatus::TimedOut,
                code,
                None,
                pid,
                peak,
                Some(format!(
                    "stopped after the timeout of {}",
                    humantime::format_duration(def.timeout.unwrap_or_default())
                )),
            ),
            Exit::Cancelled(s) => (
                RunStatus::Cancelled,
                code,
                Some(*s as i64),
                pid,
                peak,
                Some(format!("stopped on signal {s}")),
            ),
            Exit::FailedToStart(why) => {
                (RunStatus::Failed, code, None, pid, None, Some(why.clone()))
            }
        }
    }

    /// The process to start: argv, a clean environment with the run contract and secrets,
    /// limits. The bool says whether a token was issued.
    async fn prepare(
        &self,
        def: &AppDefinition,
        req: &RunRequest,
        id: &str,
        attempt: i64,
        runner: &str,
        command: &[String],
    ) -> Result<(LocalSpec, bool), AppsError> {
        let base = def.path.parent().unwrap_or(Path::new("."));
        let secret_values = secrets::resolve(&def.app.secrets, base, &*self.lookup)?;
        let mut env: Vec<(String, String)> = Vec::new();
        let set = |env: &mut Vec<(String, String)>, k: &str, v: String| {
            env.retain(|(n, _)| n != k);
            env.push((k.to_string(), v));
        };
        for name in PASSED_ENV {
            if let Some(v) = (self.lookup)(name) {
                set(&mut env, name, v);
            }
        }
        if !env.iter().any(|(k, _)| k == "PATH") {
            set(&mut env, "PATH", DEFAULT_PATH.into());
        }
        // Output goes to a pipe, where Python would buffer it until exit: unbuffered, the
        // log and the terminal show it as it happens (the definition can say otherwise).
        set(&mut env, "PYTHONUNBUFFERED", "1".into());
        for (k, v) in &def.app.env {
            set(&mut env, k, v.clone());
        }
        for (k, v) in &req.env {
            set(&mut env, k, v.clone());
        }
        let mut contract = vec![
            ("KONDATE_RUN_ID".to_string(), id.to_string()),
            ("KONDATE_APP".to_string(), def.name.clone()),
            ("KONDATE_ATTEMPT".to_string(), attempt.to_string()),
        ];
        // The CPU share is a hint locally: jobs can size their thread pools by it.
        if let Some(units) = def.app.cpu.filter(|&u| u > 0) {
            contract.push((
                "KONDATE_CPUS".to_string(),
                format!("{}", units as f64 / 1024.0),
            ));
        }
        let mut issued = false;
        if let Some(c) = &self.credentials {
            let ttl =
                def.timeout.unwrap_or(Duration::from_secs(24 * 3600)) + Duration::from_secs(600);
            let (token, secret) = c
                .issue(id, &def.access.scopes(), ttl)
                .await
                .map_err(|e| AppsError::Start(format!("cannot issue the run's token: {e}")))?;
            issued = true;
            let url = c.url();
            // KONDATE_ENDPOINT and QUEUERY_* too: the Rust client and the public
            // queuery-client then work in the job without configuration.
            for (k, v) in [
                ("KONDATE_URL", &url),
                ("KONDATE_ENDPOINT", &url),
                ("KONDATE_TOKEN", &token),
                ("KONDATE_TOKEN_SECRET", &secret),
                ("QUEUERY_ENDPOINT", &url),
                ("QUEUERY_TOKEN", &token),
                ("QUEUERY_TOKEN_SECRET", &secret),
            ] {
                contract.push((k.to_string(), v.clone()));
            }
        }
        let token_value = contract
            .iter()
            .find(|(k, _)| k == "KONDATE_TOKEN_SECRET")
            .map(|(_, v)| v.clone());
        for (k, v) in contract.iter().cloned() {
            set(&mut env, &k, v);
        }
        let masker = Masker::new(
            secret_values
                .iter()
                .map(|(_, v)| v.as_str())
                .chain(token_value.as_deref())
                .chain(
                    req.env
                        .iter()
                        .filter(|(k, _)| !def.access.plain_env.contains(k))
                        .map(|(_, v)| v.as_str()),
                ),
        );
        // A run works in a folder of its own (with its TMPDIR inside), removed when it
        // ends, unless the definition names one in the project.
        let cwd = match &def.app.working_dir {
            Some(wd) => self.root.join(wd),
            None => {
                let work = run_work_dir(id);
                let tmp = work.join("tmp");
                std::fs::create_dir_all(&tmp).map_err(|e| AppsError::io(&tmp, e))?;
                set(&mut env, "TMPDIR", tmp.display().to_string());
                work
            }
        };
        let (argv, memory_limit) = match runner {
            "local" => {
                for (k, v) in secret_values {
                    set(&mut env, &k, v);
                }
                if command.is_empty() {
                    return Err(AppsError::Invalid(format!(
                        "{}: app.command is not set, and the local runner has no image to take \
                         a default command from; add app.command or pass one after `--`",
                        def.path.display()
                    )));
                }
                (
                    command.to_vec(),
                    def.app.memory.map(|mib| mib * 1024 * 1024),
                )
            }
            "docker" => {
                // The docker client gets the secrets (and the contract) in its environment
                // and passes them on by name; values never appear in its arguments.
                let overrides = Overrides {
                    command: req.command.clone(),
                    env: req.env.clone(),
                };
                let names: Vec<String> = contract.iter().map(|(k, _)| k.clone()).collect();
                let argv = render::docker_argv(def, &overrides, &format!("kondate-{id}"), &names)?;
                let docker = argv[0].clone();
                let path = env
                    .iter()
                    .find(|(k, _)| k == "PATH")
                    .map_or("", |(_, v)| v.as_str());
                crate::runner::find_command(&docker, path, &self.root).map_err(|_| {
                    AppsError::Start(format!(
                        "the docker runner needs the `{docker}` command, which is not installed \
                         here (or not in PATH); install Docker, or run with --runner local"
                    ))
                })?;
                for (k, v) in secret_values {
                    set(&mut env, &k, v);
                }
                (argv, None)
            }
            other => {
                return Err(AppsError::Invalid(format!(
                    "runner `{other}` cannot run here; use local or docker (ECS and Kubernetes: \
                     `kondate apps render {} --target {other}`)",
                    def.name
                )));
            }
        };
        Ok((
            LocalSpec {
                run_id: id.to_string(),
                use_cgroup: self.use_cgroups,
                argv,
                cwd,
                env,
                memory_limit,
                timeout: def.timeout,
                grace: self.grace,
                masker,
                protect: (runner == "local").then(|| self.root.join(".kondate")),
                on_start: None,
            },
            issued,
        ))
    }

    /// Move the spooled log into the store (a rename on the local store).
    async fn upload_log(&self, spool: &Path, key: &str) -> Result<(), AppsError> {
        self.store.put_file(key, spool, true).await?;
        Ok(())
    }

    fn row_to_info(&self, r: &kondate_db::AnyRow) -> Result<RunInfo, AppsError> {
        let started = get_i64(r, "started_at")?;
        let ended = get_opt_i64(r, "ended_at");
        Ok(RunInfo {
            id: get_string(r, "id")?,
            app: get_string(r, "app")?,
            attempt: get_i64(r, "attempt")?,
            status: RunStatus::parse(&get_string(r, "status")?),
            runner: get_string(r, "runner")?,
            command: serde_json::from_str(&get_string(r, "command")?).unwrap_or_default(),
            params: serde_json::from_str(&get_string(r, "params")?).unwrap_or_default(),
            actor: get_string(r, "actor")?,
            host: get_string(r, "host")?,
            pid: get_opt_i64(r, "pid"),
            process: get_opt_string(r, "process"),
            started_at: ms_to_rfc3339(started),
            ended_at: ended.map(ms_to_rfc3339),
            duration_ms: ended.map(|e| e - started),
            exit_code: get_opt_i64(r, "exit_code"),
            signal: get_opt_i64(r, "term_signal"),
            peak_memory_bytes: get_opt_i64(r, "peak_memory_bytes"),
            log_key: get_opt_string(r, "log_key"),
            log_bytes: get_opt_i64(r, "log_bytes"),
            error: get_opt_string(r, "error"),
        })
    }

    const COLUMNS: &str = "id, app, attempt, status, runner, command, params, actor, host, \
        supervisor_pid, pid, started_at, ended_at, exit_code, term_signal, peak_memory_bytes, \
        log_key, log_bytes, error, owner, process";

    /// Why the kondate process supervising run row `r` counts as gone, or None while it
    /// lives. A run records its process ([`kondate_db::processes`]): gone when it
    /// deregistered, when it was on this host and its pid has ended, or when it has been
    /// silent past `lost_after` (wherever it ran). A run recorded before processes were
    /// (no owner) is judged by its host and pid, on its own host only.
    async fn supervisor_gone(&self, r: &kondate_db::AnyRow) -> Result<Option<String>, AppsError> {
        let here = hostname();
        let Some(owner) = get_opt_string(r, "owner") else {
            let sup = get_i64(r, "supervisor_pid")?;
            return Ok((get_string(r, "host")? == here && !alive(sup)).then(|| {
                format!(
                    "the kondate process that ran it (pid {sup}) ended without recording the result"
                )
            }));
        };
        if self.owner.as_deref() == Some(owner.as_str()) {
            return Ok(None);
        }
        let p = kondate_db::processes::get(&self.db, &owner).await?;
        // On this host a pid that has ended is proof enough, before lost_after has passed.
        if let Some(p) = p
            .as_ref()
            .filter(|p| p.host == here && p.stopped_at.is_none())
            && !alive(p.pid)
        {
            return Ok(Some(format!(
                "{} ended without recording the result",
                p.describe()
            )));
        }
        Ok(
            kondate_db::processes::gone_reason(&owner, p.as_ref(), self.now(), self.lost_after)
                .map(|why| format!("{why} without recording the result")),
        )
    }

    /// Mark runs whose supervising kondate process is gone as lost ([`Runs::supervisor_gone`]);
    /// where the log spooled so far is on this machine, it is stored as the run's log.
    async fn reconcile(&self, rows: &[kondate_db::AnyRow]) -> Result<bool, AppsError> {
        let mut changed = false;
        for r in rows {
            if get_string(r, "status")? != "running" {
                continue;
            }
            let Some(why) = self.supervisor_gone(r).await? else {
                continue;
            };
            let id = get_string(r, "id")?;
            // What the dead supervisor ran may still run (its own process group): stopped
            // here when it ran on this host.
            let why = match get_opt_string(r, "process") {
                Some(p) => format!(
                    "{why}{}",
                    kondate_core::host::kill_leftover_group(&p).note(&p)
                ),
                None => why,
            };
            let spool = self.spool.join(format!("{id}.log"));
            let key = log_key(&id);
            let (log_key_value, log_bytes, where_log) = if spool.exists() {
                match self.upload_log(&spool, &key).await {
                    Ok(()) => (
                        Value::from(key.as_str()),
                        Value::from(std::fs::metadata(&spool).map(|m| m.len() as i64).ok()),
                        "the log so far is stored with the run".to_string(),
                    ),
                    Err(e) => (
                        Value::from(None::<&str>),
                        Value::from(None::<i64>),
                        format!("the log so far is in {} ({e})", spool.display()),
                    ),
                }
            } else {
                (
                    Value::from(None::<&str>),
                    Value::from(None::<i64>),
                    format!(
                        "the log so far stayed on {} in {}",
                        get_string(r, "host")?,
                        spool.display()
                    ),
                )
            };
            self.db
                .execute(
                    "UPDATE kondate_runs SET status = 'lost', ended_at = ?, error = ?, \
                     log_key = COALESCE(?, log_key), log_bytes = COALESCE(?, log_bytes) \
                     WHERE id = ? AND status = 'running'",
                    &[
                        Value::Int(self.now()),
                        Value::from(format!("{why}; {where_log}")),
                        log_key_value,
                        log_bytes,
                        Value::from(id.as_str()),
                    ],
                )
                .await?;
            changed = true;
        }
        Ok(changed)
    }

    /// One run.
    pub async fn get(&self, id: &str) -> Result<RunInfo, AppsError> {
        let sql = format!("SELECT {} FROM kondate_runs WHERE id = ?", Self::COLUMNS);
        let mut row = self.db.fetch_optional(&sql, &[Value::from(id)]).await?;
        if let Some(r) = &row
            && self.reconcile(std::slice::from_ref(r)).await?
        {
            row = self.db.fetch_optional(&sql, &[Value::from(id)]).await?;
        }
        match row {
            Some(r) => self.row_to_info(&r),
            None => Err(AppsError::NoSuchRun { id: id.to_string() }),
        }
    }

    /// Recent runs, newest first, of one app or all.
    pub async fn list(&self, app: Option<&str>, limit: i64) -> Result<Vec<RunInfo>, AppsError> {
        let (filter, params) = match app {
            Some(a) => ("WHERE app = ? ", vec![Value::from(a)]),
            None => ("", vec![]),
        };
        let sql = format!(
            "SELECT {} FROM kondate_runs {filter}ORDER BY started_at DESC, id DESC LIMIT {}",
            Self::COLUMNS,
            limit.clamp(1, 10_000)
        );
        let mut rows = self.db.fetch_all(&sql, &params).await?;
        if self.reconcile(&rows).await? {
            rows = self.db.fetch_all(&sql, &params).await?;
        }
        rows.iter().map(|r| self.row_to_info(r)).collect()
    }

    /// A run's log from byte `offset`: the live spool file while the run is going, then
    /// (once it has ended) the stored object from where the spool left off, streamed. With
    /// `follow`, the stream waits for new output until the run ends.
    pub fn log_stream(
        &self,
        id: &str,
        offset: u64,
        follow: bool,
    ) -> BoxStream<'static, Result<Bytes, AppsError>> {
        use std::sync::atomic::{AtomicU64, Ordering};
        let offset = Arc::new(AtomicU64::new(offset));
        struct Live {
            runs: Runs,
            id: String,
            offset: Arc<AtomicU64>,
            follow: bool,
        }
        let live = futures::stream::unfold(
            Live {
                runs: self.clone(),
                id: id.to_string(),
                offset: offset.clone(),
                follow,
            },
            |st| async move {
                loop {
                    let info = match st.runs.get(&st.id).await {
                        Ok(i) => i,
                        Err(e) => return Some((Err(e), st)),
                    };
                    if info.log_key.is_some() {
                        return None;
                    }
                    let spool = st.runs.spool.join(format!("{}.log", st.id));
                    let at = st.offset.load(Ordering::Relaxed);
                    if let Ok(chunk) = read_from(&spool, at, 1 << 20)
                        && !chunk.is_empty()
                    {
                        st.offset.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        return Some((Ok(chunk), st));
                    }
                    // Nothing new: done unless following a run that is still going.
                    if !st.follow || info.status.is_final() {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
        );
        let runs = self.clone();
        let id = id.to_string();
        let stored = futures::stream::once(async move {
            let empty = || futures::stream::empty().boxed();
            let info = match runs.get(&id).await {
                Ok(i) => i,
                Err(e) => return futures::stream::once(async { Err(e) }).boxed(),
            };
            let Some(key) = info.log_key else {
                return empty();
            };
            let mut skip = offset.load(Ordering::Relaxed);
            match runs.store.get_stream(&key).await {
                Ok((_, body)) => body
                    .filter_map(move |chunk| {
                        let out = match chunk {
                            Err(e) => Some(Err(AppsError::from(e))),
                            Ok(c) if (c.len() as u64) <= skip => {
                                skip -= c.len() as u64;
                                None
                            }
                            Ok(c) => {
                                let c = c.slice(skip as usize..);
                                skip = 0;
                                Some(Ok(c))
                            }
                        };
                        std::future::ready(out)
                    })
                    .boxed(),
                Err(e) => futures::stream::once(async { Err(AppsError::from(e)) }).boxed(),
            }
        })
        .flatten();
        live.chain(stored).boxed()
    }
}

fn read_from(path: &Path, offset: u64, max: usize) -> std::io::Result<Bytes> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(max);
    f.take(max as u64).read_to_end(&mut buf)?;
    Ok(Bytes::from(buf))
}
