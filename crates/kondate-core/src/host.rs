//! This machine: its name, and whether a process on it still exists. What tells a process
//! sharing the state database (or a lock) that work on *this* host lost its owner at once,
//! without waiting out a grace period.

/// This machine's name, as the kernel has it (`localhost` when it cannot be read).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether process `pid` exists on this machine (a zombie counts; a pid of another user's
/// process too). Only meaningful for a pid recorded on this host.
pub fn pid_alive(pid: i64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
    pid > 0
        && unsafe {
            libc::kill(pid, 0) == 0
                || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
        }
}

/// Who process `pid` is, for as long as it lives: this host, this boot, the pid and its
/// start time (`HOST/BOOT_ID/PID/START_TICKS`). Two processes never share one: a pid
/// reused later has another start time, another boot another id. None when the process is
/// gone (or /proc cannot be read).
pub fn process_identity(pid: u32) -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let start = stat_fields(pid)?.get(19)?.to_string();
    Some(format!("{}/{}/{pid}/{start}", hostname(), boot.trim()))
}

/// The fields of /proc/PID/stat after the command name (state first), which may hold
/// spaces and parentheses: they start after its last `)`.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// What became of the process `identity` ([`process_identity`]) names, and of its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftover {
    /// It ran on another host: nothing here can say.
    Elsewhere,
    /// It is gone (its group may hold no one else: it led it).
    Gone,
    /// It was still running, leading its own process group, and the group was sent
    /// SIGKILL.
    Killed,
}

impl Leftover {
    /// What to add to the message of the lost work whose process was `identity`: that its
    /// leftover group was killed, or where it may still run; nothing when it is gone.
    pub fn note(self, identity: &str) -> String {
        match self {
            Leftover::Killed => {
                format!("; its process group was still running and has been killed ({identity})")
            }
            Leftover::Elsewhere => {
                format!("; its process group may still be running on its host ({identity})")
            }
            Leftover::Gone => String::new(),
        }
    }
}

/// Stop what is left of a process group whose supervisor died: if the process `identity`
/// names still runs on this host as the leader of its own group, SIGKILL the group. A pid
/// now held by another process (another start time) is left alone.
pub fn kill_leftover_group(identity: &str) -> Leftover {
    let mut parts = identity.rsplitn(3, '/');
    let (Some(start), Some(pid), Some(host_boot)) = (parts.next(), parts.next(), parts.next())
    else {
        return Leftover::Elsewhere;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return Leftover::Elsewhere;
    };
    let Some((host, boot)) = host_boot.split_once('/') else {
        return Leftover::Elsewhere;
    };
    if host != hostname() {
        return Leftover::Elsewhere;
    }
    let this_boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    if boot != this_boot.trim() {
        // This host, an earlier boot: everything it ran is gone.
        return Leftover::Gone;
    }
    let Some(fields) = stat_fields(pid) else {
        return Leftover::Gone;
    };
    // fields: state(0) ppid(1) pgrp(2) … starttime(19).
    let same = fields.get(19).map(String::as_str) == Some(start);
    let leads = fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pid);
    if !same || !leads || fields.first().map(String::as_str) == Some("Z") {
        return Leftover::Gone;
    }
    // SAFETY: kill(2) with a negative pid signals the process group; no memory involved.
    unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
    Leftover::Killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_finished_one_is_not() {
        assert!(pid_alive(i64::from(std::process::id())));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = i64::from(child.id());
        child.wait().unwrap();
        assert!(!pid_alive(pid));
        assert!(!pid_alive(0));
        assert!(!pid_alive(-1));
        assert!(!pid_alive(i64::MAX));
        assert!(!hostname().is_empty());
    }

    #[test]
    fn a_leftover_group_is_killed_only_while_its_leader_is_the_same_process() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .process_group(0)
            .spawn()
            .unwrap();
        let id = process_identity(child.id()).unwrap();
        // Another start time: not this process, left alone.
        let (head, _) = id.rsplit_once('/').unwrap();
        assert_eq!(kill_leftover_group(&format!("{head}/1")), Leftover::Gone);
        assert!(child.try_wait().unwrap().is_none());
        // Another host: nothing to say here; an earlier boot of this one: gone.
        assert_eq!(
            kill_leftover_group(&format!("elsewhere/x/{}/1", child.id())),
            Leftover::Elsewhere
        );
        let (_, rest) = id.split_once('/').unwrap();
        let (_, pid_start) = rest.split_once('/').unwrap();
        assert_eq!(
            kill_leftover_group(&format!("{}/earlier-boot/{pid_start}", hostname())),
            Leftover::Gone
        );
        assert!(child.try_wait().unwrap().is_none());
        assert_eq!(kill_leftover_group(&id), Leftover::Killed);
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert_eq!(kill_leftover_group(&id), Leftover::Gone);
    }
}
