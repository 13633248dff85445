//! A memory cgroup for one run, where this machine lets kondate make one: the limit then
//! holds for the run's processes together (not each process's address space, as
//! `RLIMIT_AS`), the kernel's OOM killer enforces it, and processes that left the run's
//! process group are still found and killed at the end.
//!
//! cgroup v2 (`memory.max`, `memory.events`) where the unified hierarchy delegates the
//! memory controller to kondate's own cgroup, else cgroup v1's memory controller
//! (`memory.limit_in_bytes`, `memory.oom_control`), else none (the caller falls back to
//! `RLIMIT_AS`). The child joins the cgroup itself, between fork and exec, so nothing it
//! allocates escapes the limit.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// A run's memory cgroup; removed (after killing what is left in it) on drop.
#[derive(Debug)]
pub struct RunCgroup {
    pub dir: PathBuf,
    pub version: Version,
    procs: OwnedFd,
}

/// This process's cgroup folder for the memory controller, and its version.
fn own_memory_cgroup() -> Option<(PathBuf, Version)> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    // v2: "0::/path" on a unified mount with the memory controller available.
    if let Some(path) = text.lines().find_map(|l| l.strip_prefix("0::")) {
        let root = Path::new("/sys/fs/cgroup");
        let controllers =
            std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == "memory") {
            return Some((root.join(path.trim_start_matches('/')), Version::V2));
        }
    }
    // v1: "N:memory:/path".
    let path = text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
        ctrl.split(',').any(|c| c == "memory").then_some(path)
    })?;
    let dir = Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/'));
    dir.join("memory.limit_in_bytes")
        .exists()
        .then_some((dir, Version::V1))
}

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(value.as_bytes())
}

impl RunCgroup {
    /// A cgroup named after the run with `limit` bytes of memory (and no swap), or None
    /// when this machine does not let kondate create one (the reason is logged at debug).
    pub fn create(run_id: &str, limit: u64) -> Option<RunCgroup> {
        let (parent, version) = own_memory_cgroup()?;
        let dir = parent.join(format!("kondate-{run_id}"));
        let made = (|| -> std::io::Result<RunCgroup> {
            std::fs::create_dir(&dir)?;
            let (limit_file, swap_file) = match version {
                Version::V1 => ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"),
                Version::V2 => ("memory.max", "memory.swap.max"),
            };
            write(&dir.join(limit_file), &limit.to_string())?;
            // No swap beyond the limit (v1: memory+swap = memory), where the kernel accounts it.
            let swap = match version {
                Version::V1 => limit.to_string(),
                Version::V2 => "0".to_string(),
            };
            let _ = write(&dir.join(swap_file), &swap);
            let procs = std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))?;
            Ok(RunCgroup {
                dir: dir.clone(),
                version,
                procs: procs.into(),
            })
        })();
        match made {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "no memory cgroup for the run; using RLIMIT_AS");
                let _ = std::fs::remove_dir(&dir);
                None
            }
        }
    }

    /// The file descriptor of `cgroup.procs`, for the child to write its pid into before
    /// it executes the command ([`join_from_child`]).
    pub fn procs_fd(&self) -> i32 {
        self.procs.as_raw_fd()
    }

    /// How many times the kernel's OOM killer killed a process of this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let file = match self.version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Processes still in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// SIGKILL every process left in the cgroup (those that left the process group too).
    pub fn kill_all(&self) {
        for pid in self.pids() {
            // SAFETY: kill(2) only sends a signal.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        // A cgroup can be removed once it is empty; killed processes take a moment to go.
        for _ in 0..50 {
            self.kill_all();
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        tracing::warn!(dir = %self.dir.display(), "could not remove the run's cgroup");
    }
}

/// In the child between fork and exec: write our pid into `cgroup.procs` (`fd`). Only
/// async-signal-safe calls, no allocation.
pub fn join_from_child(fd: i32) -> std::io::Result<()> {
    // SAFETY: getpid and write are async-signal-safe; the buffer is on the stack.
    unsafe {
        let mut pid = libc::getpid() as u64;
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (pid % 10) as u8;
            pid /= 10;
            if pid == 0 {
                break;
            }
        }
        let n = buf.len() - i;
        if libc::write(fd, buf[i..].as_ptr().cast(), n) != n as isize {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// True when runs on this machine get a memory cgroup.
pub fn available() -> bool {
    match RunCgroup::create(&format!("probe-{}", std::process::id()), 1 << 30) {
        Some(c) => {
            drop(c);
            true
        }
        None => false,
    }
}
