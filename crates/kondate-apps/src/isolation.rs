//! Keeping a local run away from kondate's own secrets: the project's `.kondate/` folder
//! holds the state database (token hashes, run records), the signing key of download URLs
//! and the local object store. A run reaches kondate through its API with the token made
//! for it; it has no business reading those files.
//!
//! Where the kernel supports Landlock (Linux 5.13+), the run is started under a ruleset
//! that allows everything except `.kondate/`: Landlock can only allow, so the rules allow
//! full access beneath every entry of every folder on the way from `/` to the project —
//! except the next folder on that way, and at the end `.kondate` itself — and only listing
//! of those folders. Symbolic links among the entries get no rule (one could point into
//! `.kondate/`; what they point to is reached through its own rule). Entries made after the
//! run starts in those folders are not reachable; a run works in a folder of its own, and
//! its `TMPDIR` is there too.
//!
//! Where Landlock is not available the run starts without it, and its log says so.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr,
};

/// The newest Landlock ABI kondate knows; older kernels get what they support.
const ABI_WANTED: ABI = ABI::V5;

/// A ruleset ready to be applied to a child, or why there is none.
pub struct Sandbox {
    ruleset: Option<RulesetCreated>,
    /// What the run's log says about its isolation.
    pub description: String,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

/// Whether this kernel can keep a run away from `.kondate/` (for `kondate apps show`).
pub fn available() -> Result<(), String> {
    match Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(ABI::V1))
    {
        Ok(r) => r
            .create()
            .map(|_| ())
            .map_err(|e| format!("Landlock is not usable here ({e})")),
        Err(e) => Err(format!("Landlock is not available on this kernel ({e})")),
    }
}

/// What `kondate apps show` says about isolation.
pub fn describe(protected: &Path) -> String {
    match available() {
        Ok(()) => format!(
            "Landlock: the run cannot read or write {}",
            protected.display()
        ),
        Err(why) => format!("none: {why}; the run can read {}", protected.display()),
    }
}

/// The folders from `/` down to `protected`'s parent, and `protected`.
fn way_to(protected: &Path) -> Vec<PathBuf> {
    let mut way: Vec<PathBuf> = protected
        .ancestors()
        .skip(1)
        .map(Path::to_path_buf)
        .collect();
    way.reverse();
    way
}

/// Paths to allow fully and paths to allow listing only, keeping `protected` out.
fn plan(protected: &Path, also: &[&Path]) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut full = Vec::new();
    let mut list_only = Vec::new();
    for dir in way_to(protected) {
        list_only.push(dir.clone());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // The next folder on the way (or `protected` itself) is handled below it.
            if protected.starts_with(&path) {
                continue;
            }
            match entry.file_type() {
                Ok(t) if t.is_symlink() => continue,
                Ok(_) => full.push(path),
                Err(_) => continue,
            }
        }
    }
    for p in also {
        if !p.starts_with(protected) {
            full.push(p.to_path_buf());
        }
    }
    (full, list_only)
}

fn rules(
    paths: &[PathBuf],
    access: landlock::BitFlags<AccessFs>,
) -> impl Iterator<Item = PathBeneath<PathFd>> + '_ {
    paths
        .iter()
        .filter_map(move |p| PathFd::new(p).ok().map(|fd| PathBeneath::new(fd, access)))
}

/// A sandbox that keeps a run out of `protected` (its working folder `work` stays
/// reachable even if it were on the way); `None` ruleset where Landlock is not available.
pub fn prepare(protected: &Path, work: &Path) -> Sandbox {
    let protected = protected
        .canonicalize()
        .unwrap_or_else(|_| protected.to_path_buf());
    let work = work.canonicalize().unwrap_or_else(|_| work.to_path_buf());
    if let Err(why) = available() {
        return Sandbox {
            ruleset: None,
            description: format!(
                "kondate: no isolation: {why}; the run can read {}",
                protected.display()
            ),
        };
    }
    let all = AccessFs::from_all(ABI_WANTED);
    let (full, list_only) = plan(&protected, &[&work]);
    let built = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(rules(&full, all).map(Ok::<_, landlock::RulesetError>)))
        .and_then(|r| {
            r.add_rules(
                rules(&list_only, AccessFs::ReadDir.into()).map(Ok::<_, landlock::RulesetError>),
            )
        });
    match built {
        Ok(ruleset) => Sandbox {
            ruleset: Some(ruleset),
            description: format!(
                "kondate: isolated with Landlock: the run cannot read or write {}",
                protected.display()
            ),
        },
        Err(e) => Sandbox {
            ruleset: None,
            description: format!(
                "kondate: no isolation: building the Landlock ruleset failed ({e}); the run can read {}",
                protected.display()
            ),
        },
    }
}

impl Sandbox {
    /// Apply the ruleset in the child between fork and exec.
    pub fn install(self, command: &mut Command) {
        let Some(ruleset) = self.ruleset else {
            return;
        };
        let mut ruleset = Some(ruleset);
        // SAFETY: restrict_self makes only the prctl(PR_SET_NO_NEW_PRIVS) and
        // landlock_restrict_self system calls and builds a plain status value; it does not
        // allocate or take locks, so it is safe between fork and exec.
        unsafe {
            command.pre_exec(move || match ruleset.take() {
                Some(r) => r
                    .restrict_self()
                    .map(|_| ())
                    .map_err(|e| std::io::Error::other(e.to_string())),
                None => Ok(()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_allows_everything_but_the_protected_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let project = root.join("project");
        std::fs::create_dir_all(project.join(".kondate")).unwrap();
        std::fs::create_dir_all(project.join("labels")).unwrap();
        std::fs::write(project.join("kondate.toml"), "").unwrap();
        std::os::unix::fs::symlink(project.join(".kondate"), project.join("sneaky")).unwrap();
        std::fs::create_dir_all(root.join("other")).unwrap();
        let protected = project.join(".kondate");
        let (full, list_only) = plan(&protected, &[]);
        assert!(full.contains(&project.join("labels")));
        assert!(full.contains(&project.join("kondate.toml")));
        assert!(full.contains(&root.join("other")));
        assert!(!full.iter().any(|p| p.starts_with(&protected)), "{full:?}");
        assert!(
            !full.contains(&project.join("sneaky")),
            "symbolic links get no rule"
        );
        assert!(
            !full.contains(&project),
            "the project folder itself: listing only"
        );
        assert!(list_only.contains(&project) && list_only.contains(&PathBuf::from("/")));
    }
}
