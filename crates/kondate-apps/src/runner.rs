//! The local runner: an app's command as a child process on this machine.
//!
//! - The child leads its own process group, so a timeout or a forwarded signal reaches
//!   everything it started, and Ctrl-C in the terminal reaches kondate, which decides.
//! - Its environment is exactly what the caller gives (a clean one: see `Runs::start`),
//!   never kondate's own.
//! - The memory limit holds for the run's processes together in a memory cgroup of the
//!   run's own where the machine allows ([`crate::cgroup`]); elsewhere it is an
//!   address-space limit (`RLIMIT_AS`) set in the child before it executes the command,
//!   inherited by everything it starts (each process on its own).
//! - A timeout sends SIGTERM to the group, then SIGKILL after the grace period; a forwarded
//!   signal does the same. When the main process exits, what is left of its group is
//!   killed, as a container stops when its main process ends.
//! - Output is captured line by line on two threads ([`crate::logs::capture`]).
//! - Peak memory: the largest of the main process's own peak (from `wait4`) and the sum of
//!   the group's resident memory sampled every 100 ms.
//!
//! std's `Command` starts the process; the waiting is hand-written (`waitid` + `wait4`)
//! because neither std nor tokio exposes the child's resource usage or lets us kill the
//! group before the main process is reaped (after which its id could be reused).

use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::logs::{LiveSink, LogWriter, Stream, capture};
use crate::secrets::Masker;

/// What to run.
#[derive(Debug, Clone)]
pub struct LocalSpec {
    /// Names the run's memory cgroup.
    pub run_id: String,
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// The complete environment of the process.
    pub env: Vec<(String, String)>,
    /// Memory limit in bytes: the run's memory cgroup where kondate can make one (and
    /// `use_cgroup`), else an address-space limit on each process.
    pub memory_limit: Option<u64>,
    pub use_cgroup: bool,
    pub timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL.
    pub grace: Duration,
    pub masker: Masker,
    /// A folder the run must not reach (the project's `.kondate/`), kept from it with
    /// Landlock where the kernel has it ([`crate::isolation`]).
    pub protect: Option<PathBuf>,
    /// Called with the process's pid as soon as it started (it leads its own process
    /// group), so that the caller can record who it is.
    pub on_start: Option<StartHook>,
}

/// A callback given the pid of a process that just started ([`LocalSpec::on_start`]).
#[derive(Clone)]
pub struct StartHook(pub std::sync::Arc<dyn Fn(u32) + Send + Sync>);

impl StartHook {
    /// A hook that records who the started process is
    /// ([`kondate_core::host::process_identity`]) with `update`, a statement whose two
    /// parameters are the identity and `key` — so that when its supervisor dies, whoever
    /// finds it gone on this host can stop what it left running
    /// ([`kondate_core::host::kill_leftover_group`]).
    pub fn recording(
        db: kondate_db::Database,
        update: &'static str,
        key: kondate_db::Value,
    ) -> StartHook {
        StartHook(std::sync::Arc::new(move |pid| {
            let Some(identity) = kondate_core::host::process_identity(pid) else {
                return;
            };
            let (db, key) = (db.clone(), key.clone());
            tokio::spawn(async move {
                if let Err(e) = db
                    .execute(update, &[kondate_db::Value::Text(identity), key])
                    .await
                {
                    tracing::warn!(error = %e, "could not record a started process");
                }
            });
        }))
    }
}

impl std::fmt::Debug for StartHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StartHook")
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this status.
    Code(i32),
    /// Killed by this signal (not by kondate).
    Signal(i32),
    /// Stopped by kondate after the timeout.
    TimedOut,
    /// Stopped by kondate on this signal (SIGINT/SIGTERM forwarded).
    Cancelled(i32),
    /// Never started: the reason.
    FailedToStart(String),
}

impl Exit {
    /// The exit code kondate passes on, by shell conventions: the child's own status, 128 +
    /// the signal when killed, 124 after a timeout (as `timeout(1)`), 127 when the command
    /// could not start.
    pub fn code(&self) -> i32 {
        match self {
            Exit::Code(c) => *c,
            Exit::Signal(s) | Exit::Cancelled(s) => 128 + s,
            Exit::TimedOut => 124,
            Exit::FailedToStart(_) => 127,
        }
    }
}

/// The result of one local run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub exit: Exit,
    /// The kernel's OOM killer killed a process of the run (cgroup limit reached).
    pub oom_killed: bool,
    /// How the memory limit was enforced: "cgroup v1", "cgroup v2", "RLIMIT_AS", or "none".
    pub memory_enforcement: &'static str,
    pub pid: Option<u32>,
    pub peak_memory_bytes: Option<u64>,
}

/// Find `cmd` as `execvp` would with `path` (the child's PATH), for a clear error before
/// starting.
pub fn find_command(cmd: &str, path: &str, cwd: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if cmd.contains('/') {
        let p = cwd.join(cmd);
        return if !p.exists() {
            Err(format!(
                "command `{cmd}` does not exist (looked in {})",
                cwd.display()
            ))
        } else if !executable(&p) {
            Err(format!(
                "`{cmd}` is not an executable file; chmod +x it or run it through its interpreter"
            ))
        } else {
            Ok(p)
        };
    }
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = cwd.join(dir).join(cmd);
        if executable(&p) {
            return Ok(p);
        }
    }
    Err(format!(
        "command `{cmd}` was not found in the run's PATH ({path}); install it, give its full \
         path, or set PATH in the definition's env"
    ))
}

fn signal_group(pgid: i32, sig: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

/// Sum of resident memory of the processes in group `pgid`, in bytes (Linux /proc).
fn group_rss(pgid: i32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let page = 4096u64;
    let mut total = 0;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command (which may contain spaces) start after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // rest: state(0) ppid(1) pgrp(2) … rss is field 24 of stat = index 21 here.
        if fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid)
            && let Some(rss) = fields.get(21).and_then(|r| r.parse::<u64>().ok())
        {
            total += rss * page;
        }
    }
    total
}

struct Reaped {
    status: i32,
    max_rss_bytes: u64,
}

/// Wait for `pid` to exit, kill what is left of its group while its id is still held (the
/// exited main process is not reaped yet), then reap it with its resource usage.
fn wait_and_reap(pid: i32) -> io::Result<Reaped> {
    // SAFETY: waitid/wait4 write only into the zeroed structs we pass; pid is our child.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        loop {
            let r = libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            );
            if r == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        libc::kill(-pid, libc::SIGKILL);
        let mut status = 0;
        let mut usage: libc::rusage = std::mem::zeroed();
        loop {
            let r = libc::wait4(pid, &mut status, 0, &mut usage);
            if r == pid {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(Reaped {
            status,
            // ru_maxrss is in KiB on Linux.
            max_rss_bytes: usage.ru_maxrss.max(0) as u64 * 1024,
        })
    }
}

/// Run `spec`, capturing its output into `log` (and `live`), until it exits, times out, or
/// `cancel` delivers a signal to forward.
pub async fn run_local(
    spec: LocalSpec,
    log: Arc<LogWriter>,
    live: Option<Arc<LiveSink>>,
    mut cancel: tokio::sync::watch::Receiver<Option<i32>>,
) -> Outcome {
    let failed = |why: String| Outcome {
        exit: Exit::FailedToStart(why),
        oom_killed: false,
        memory_enforcement: "none",
        pid: None,
        peak_memory_bytes: None,
    };
    let Some(cmd) = spec.argv.first() else {
        return failed("no command to run".into());
    };
    if !spec.cwd.is_dir() {
        return failed(format!(
            "the working directory {} does not exist",
            spec.cwd.display()
        ));
    }
    let path = spec
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or("", |(_, v)| v.as_str());
    let program = match find_command(cmd, path, &spec.cwd) {
        Ok(p) => p,
        Err(why) => return failed(why),
    };
    let mut command = Command::new(&program);
    command
        .arg0(cmd)
        .args(&spec.argv[1..])
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let cgroup = spec
        .memory_limit
        .filter(|_| spec.use_cgroup)
        .and_then(|limit| crate::cgroup::RunCgroup::create(&spec.run_id, limit));
    let memory_enforcement = match (&cgroup, spec.memory_limit) {
        (Some(c), _) if c.version == crate::cgroup::Version::V1 => "cgroup v1",
        (Some(_), _) => "cgroup v2",
        (None, Some(_)) => "RLIMIT_AS",
        (None, None) => "none",
    };
    if let Some(limit) = spec.memory_limit {
        let _ = log.note(
            Stream::Stderr,
            &format!(
                "kondate: memory limit {} MiB, enforced by {memory_enforcement}",
                limit >> 20
            ),
        );
    }
    if let Some(protected) = &spec.protect {
        let sandbox = crate::isolation::prepare(protected, &spec.cwd);
        let _ = log.note(Stream::Stderr, &sandbox.description);
        sandbox.install(&mut command);
    }
    if let Some(cg) = &cgroup {
        let fd = cg.procs_fd();
        // SAFETY: join_from_child makes only async-signal-safe calls and does not allocate.
        unsafe {
            command.pre_exec(move || crate::cgroup::join_from_child(fd));
        }
    } else if let Some(limit) = spec.memory_limit {
        // SAFETY: between fork and exec only async-signal-safe calls are allowed;
        // setrlimit is one, and nothing here allocates.
        unsafe {
            command.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: limit as libc::rlim_t,
                    rlim_max: limit as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot start `{cmd}`: {e}")),
    };
    let pid = child.id() as i32;
    if let Some(hook) = &spec.on_start {
        (hook.0)(pid as u32);
    }
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    // The child is reaped by `wait_and_reap`, never through `child`.
    drop(child);

    let (readers_done_tx, mut readers_done) = tokio::sync::mpsc::channel::<()>(2);
    for (pipe, stream) in [
        (
            stdout.map(|p| Box::new(p) as Box<dyn io::Read + Send>),
            Stream::Stdout,
        ),
        (
            stderr.map(|p| Box::new(p) as Box<dyn io::Read + Send>),
            Stream::Stderr,
        ),
    ] {
        let Some(pipe) = pipe else { continue };
        let log = log.clone();
        let live = live.clone();
        let masker = spec.masker.clone();
        let done = readers_done_tx.clone();
        std::thread::Builder::new()
            .name(format!(
                "kondate-run-{}",
                if stream == Stream::Stdout {
                    "out"
                } else {
                    "err"
                }
            ))
            .spawn(move || {
                if let Err(e) = capture(pipe, stream, &log, &masker, live.as_deref()) {
                    tracing::warn!(error = %e, "reading the run's output failed");
                }
                let _ = done.blocking_send(());
            })
            .expect("a thread starts");
    }
    drop(readers_done_tx);

    let (reaped_tx, mut reaped_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kondate-run-wait".into())
        .spawn(move || {
            let _ = reaped_tx.send(wait_and_reap(pid));
        })
        .expect("a thread starts");

    let mut sampled_peak = 0u64;
    let mut sample = tokio::time::interval(Duration::from_millis(100));
    sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let deadline = spec.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut stopping: Option<(Exit, tokio::time::Instant)> = None;
    let mut cancel_open = true;
    let reaped = loop {
        let kill_at = stopping.as_ref().map(|(_, at)| *at);
        tokio::select! {
            r = &mut reaped_rx => break r,
            _ = sample.tick() => {
                sampled_peak = sampled_peak.max(group_rss(pid));
            }
            _ = async { tokio::time::sleep_until(deadline.expect("guarded")).await },
                if deadline.is_some() && stopping.is_none() => {
                let _ = log.note(Stream::Stderr, &format!(
                    "kondate: timeout of {} reached; sending SIGTERM to the run",
                    humantime::format_duration(spec.timeout.unwrap_or_default())));
                signal_group(pid, libc::SIGTERM);
                stopping = Some((Exit::TimedOut, tokio::time::Instant::now() + spec.grace));
            }
            changed = cancel.changed(), if stopping.is_none() && cancel_open => {
                if changed.is_err() {
                    // The sender is gone: nobody can cancel any more.
                    cancel_open = false;
                    continue;
                }
                if let Some(sig) = *cancel.borrow_and_update() {
                    let _ = log.note(Stream::Stderr, &format!(
                        "kondate: signal {sig} received; forwarding it to the run"));
                    signal_group(pid, sig);
                    stopping = Some((Exit::Cancelled(sig), tokio::time::Instant::now() + spec.grace));
                }
            }
            _ = async { tokio::time::sleep_until(kill_at.expect("guarded")).await },
                if kill_at.is_some() => {
                let _ = log.note(Stream::Stderr, &format!(
                    "kondate: the run did not stop within {}; sending SIGKILL",
                    humantime::format_duration(spec.grace)));
                signal_group(pid, libc::SIGKILL);
                // Keep waiting for the reap; no second kill.
                if let Some((_, at)) = stopping.as_mut() {
                    *at = tokio::time::Instant::now() + Duration::from_secs(3600 * 24 * 365);
                }
            }
        }
    };
    // The group is gone (killed by the waiter), and with a cgroup so is every process that
    // left the group; otherwise the pipes close unless such a process still holds them.
    // Give the readers a moment, then stop waiting for them.
    let oom_killed = cgroup.as_ref().is_some_and(|c| c.oom_kills() > 0);
    if let Some(cg) = &cgroup {
        cg.kill_all();
    }
    let readers = async { while readers_done.recv().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), readers)
        .await
        .is_err()
    {
        let _ = log.note(
            Stream::Stderr,
            "kondate: a process outside the run's process group still holds its output; \
             capture stopped",
        );
    }
    let _ = log.flush();
    let (exit, peak) = match reaped {
        Ok(Ok(r)) => {
            let natural = if libc::WIFEXITED(r.status) {
                Exit::Code(libc::WEXITSTATUS(r.status))
            } else if libc::WIFSIGNALED(r.status) {
                Exit::Signal(libc::WTERMSIG(r.status))
            } else {
                Exit::Code(r.status)
            };
            let exit = match stopping {
                Some((why, _)) => why,
                None => natural,
            };
            (exit, Some(sampled_peak.max(r.max_rss_bytes)))
        }
        Ok(Err(e)) => (
            Exit::FailedToStart(format!("waiting for the run failed: {e}")),
            None,
        ),
        Err(_) => (
            Exit::FailedToStart("the waiting thread stopped".into()),
            None,
        ),
    };
    drop(cgroup);
    Outcome {
        exit,
        oom_killed,
        memory_enforcement,
        pid: Some(pid as u32),
        peak_memory_bytes: peak,
    }
}
