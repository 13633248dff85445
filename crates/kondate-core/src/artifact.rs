//! What a model version is made of — a file or a folder of files, each with its size and
//! digest — and how a version is named (`NAME`, `NAME@3`, `NAME@production`). Shared by the
//! registry and the client, so both walk folders and check paths the same way.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::digest::Digest;
use crate::names::validate_name;

/// Whether a version was pushed from one file or from a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    File,
    Directory,
}

/// One file of a version: its path inside the version (`/`-separated; for a single-file
/// version, the file's name), size and digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub digest: Digest,
}

/// The longest path inside a version, in bytes.
pub const MAX_PATH: usize = 1024;
/// The most files one version may hold.
pub const MAX_FILES: usize = 100_000;

/// Check a path inside a version: relative, `/`-separated, no empty, `.` or `..` segments,
/// no backslashes or control characters, at most [`MAX_PATH`] bytes. Such a path can be
/// joined to a destination folder without leaving it.
pub fn validate_path(path: &str) -> Result<(), CoreError> {
    let reason = if path.is_empty() {
        Some("it is empty")
    } else if path.len() > MAX_PATH {
        Some("it is longer than 1024 bytes")
    } else if path.starts_with('/') {
        Some("it is absolute")
    } else if path.contains('\\') || path.chars().any(char::is_control) {
        Some("backslashes and control characters are not allowed")
    } else if path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        Some("empty, `.` and `..` segments are not allowed")
    } else {
        None
    };
    match reason {
        Some(r) => Err(CoreError::InvalidName {
            what: "file path",
            value: path.chars().take(200).collect(),
            reason: r.to_string(),
        }),
        None => Ok(()),
    }
}

/// Check a version's file list: valid paths, no duplicates, and no file that is also a
/// folder of another (`a` and `a/b`); sorted by path afterwards.
pub fn validate_files(layout: Layout, files: &mut [FileEntry]) -> Result<(), CoreError> {
    let invalid = |value: String, reason: String| CoreError::InvalidName {
        what: "file list",
        value,
        reason,
    };
    if files.is_empty() {
        return Err(invalid(
            String::new(),
            "a version holds at least one file".into(),
        ));
    }
    if files.len() > MAX_FILES {
        return Err(invalid(
            format!("{} files", files.len()),
            format!("a version holds at most {MAX_FILES} files; pack them into an archive"),
        ));
    }
    if layout == Layout::File && files.len() != 1 {
        return Err(invalid(
            format!("{} files", files.len()),
            "a single-file version holds exactly one file".into(),
        ));
    }
    for f in files.iter() {
        validate_path(&f.path)?;
        if layout == Layout::File && f.path.contains('/') {
            return Err(invalid(
                f.path.clone(),
                "a single-file version's file has a name, not a path".into(),
            ));
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    for w in files.windows(2) {
        if w[0].path == w[1].path {
            return Err(invalid(w[0].path.clone(), "the path occurs twice".into()));
        }
        if w[1].path.starts_with(&w[0].path) && w[1].path.as_bytes()[w[0].path.len()] == b'/' {
            return Err(invalid(
                w[0].path.clone(),
                format!("it is a file and also the folder of `{}`", w[1].path),
            ));
        }
    }
    Ok(())
}

/// The digest of a version's content: SHA-256 over `digest size path` lines of its files
/// sorted by path. Two versions with the same files have the same content digest.
pub fn content_digest(layout: Layout, files: &[FileEntry]) -> Digest {
    let mut h = crate::digest::Hasher::default();
    h.update(match layout {
        Layout::File => b"file\n",
        Layout::Directory => b"directory\n",
    });
    for f in files {
        h.update(format!("{} {} {}\n", f.digest, f.size, f.path).as_bytes());
    }
    h.finish()
}

/// A file found on disk for a push: where it is and the path it gets in the version.
#[derive(Debug, Clone)]
pub struct LocalFile {
    pub path: String,
    pub source: PathBuf,
    pub size: u64,
}

/// The files under `root` (a file, or a folder walked recursively) with their paths in the
/// version, sorted. Symbolic links to files are followed; a link to a folder, a socket or
/// a device is an error that names it, as is an empty folder.
pub fn collect_files(root: &Path) -> Result<(Layout, Vec<LocalFile>), CoreError> {
    let meta = std::fs::metadata(root).map_err(|e| CoreError::io(root, e))?;
    if meta.is_file() {
        let name = root
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| CoreError::InvalidName {
                what: "file name",
                value: root.display().to_string(),
                reason: "it is not UTF-8".into(),
            })?
            .to_string();
        validate_path(&name)?;
        return Ok((
            Layout::File,
            vec![LocalFile {
                path: name,
                source: root.to_path_buf(),
                size: meta.len(),
            }],
        ));
    }
    if !meta.is_dir() {
        return Err(CoreError::InvalidName {
            what: "model path",
            value: root.display().to_string(),
            reason: "it is neither a file nor a folder".into(),
        });
    }
    let mut out = Vec::new();
    walk(root, "", &mut out)?;
    if out.is_empty() {
        return Err(CoreError::InvalidName {
            what: "model folder",
            value: root.display().to_string(),
            reason: "it holds no files".into(),
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((Layout::Directory, out))
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<LocalFile>) -> Result<(), CoreError> {
    let entries = std::fs::read_dir(dir).map_err(|e| CoreError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| CoreError::io(dir, e))?;
        let source = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(CoreError::InvalidName {
                what: "file name",
                value: source.display().to_string(),
                reason: "it is not UTF-8; rename it".into(),
            });
        };
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        validate_path(&path)?;
        let link = entry
            .file_type()
            .map_err(|e| CoreError::io(&source, e))?
            .is_symlink();
        let meta = std::fs::metadata(&source).map_err(|e| CoreError::io(&source, e))?;
        if meta.is_file() {
            out.push(LocalFile {
                path,
                source,
                size: meta.len(),
            });
            if out.len() > MAX_FILES {
                return Err(CoreError::InvalidName {
                    what: "model folder",
                    value: dir.display().to_string(),
                    reason: format!(
                        "it holds more than {MAX_FILES} files; pack them into an archive"
                    ),
                });
            }
        } else if meta.is_dir() && !link {
            walk(&source, &path, out)?;
        } else {
            return Err(CoreError::InvalidName {
                what: "model file",
                value: source.display().to_string(),
                reason: if meta.is_dir() {
                    "it is a symbolic link to a folder; copy the folder in or push it on its own"
                        .into()
                } else {
                    "it is not a regular file (a socket, a pipe or a device)".into()
                },
            });
        }
    }
    Ok(())
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_none())
}

/// Where a pull of a version writes, given the destination the user named: a single-file
/// version into an existing folder (or a path written as one, `out/`) keeps its file name;
/// otherwise `dest` itself. An existing, non-empty target is refused unless `force`.
pub fn pull_target(
    layout: Layout,
    first_file: &str,
    dest: &Path,
    force: bool,
) -> Result<PathBuf, CoreError> {
    let target = match layout {
        Layout::File if dest.is_dir() || dest.as_os_str().to_string_lossy().ends_with('/') => {
            dest.join(first_file)
        }
        Layout::File => dest.to_path_buf(),
        Layout::Directory if dest.is_file() => {
            return Err(CoreError::InvalidName {
                what: "destination",
                value: dest.display().to_string(),
                reason: "it is a file, and this version is a folder; name a folder".into(),
            });
        }
        Layout::Directory => dest.to_path_buf(),
    };
    if target.exists() && !force && !is_empty_dir(&target) {
        return Err(CoreError::InvalidName {
            what: "destination",
            value: target.display().to_string(),
            reason: "it exists; pass --force to replace it".into(),
        });
    }
    Ok(target)
}

/// A fresh path beside `target` (same folder, so the final rename is atomic) to write a
/// pull into before it replaces `target`; the folder is created.
pub fn staging_beside(target: &Path) -> Result<PathBuf, CoreError> {
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| CoreError::io(parent, e))?;
    let base = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("model");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    Ok(parent.join(format!(
        ".{base}.kondate-partial-{}-{nanos:08x}",
        std::process::id()
    )))
}

/// Remove a staging file or folder after a failed pull.
pub fn discard(staging: &Path) {
    if staging.is_dir() {
        let _ = std::fs::remove_dir_all(staging);
    } else {
        let _ = std::fs::remove_file(staging);
    }
}

/// Move `staging` to `target`, replacing what is there: a file by rename(2), which is
/// atomic; a folder by moving the old one aside first and removing it only once the new
/// one is in place (put back if that fails).
pub fn replace(staging: &Path, target: &Path) -> std::io::Result<()> {
    if !target.exists() || (target.is_file() && staging.is_file()) {
        return std::fs::rename(staging, target);
    }
    let aside = target.with_file_name(format!(
        ".{}.kondate-old-{}",
        target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("model"),
        std::process::id()
    ));
    std::fs::rename(target, &aside)?;
    if let Err(e) = std::fs::rename(staging, target) {
        let _ = std::fs::rename(&aside, target);
        return Err(e);
    }
    discard(&aside);
    Ok(())
}

/// Which version of a model a reference means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `NAME` or `NAME@latest`: the highest version that exists.
    Latest,
    /// `NAME@3`.
    Version(i64),
    /// `NAME@production`.
    Alias(String),
}

/// A reference to a model version: `NAME`, `NAME@N`, `NAME@ALIAS` or `NAME@latest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    pub name: String,
    pub selector: Selector,
}

impl ModelRef {
    /// Parse and validate a reference.
    pub fn parse(s: &str) -> Result<ModelRef, CoreError> {
        let (name, sel) = match s.split_once('@') {
            Some((n, sel)) => (n, Some(sel)),
            None => (s, None),
        };
        validate_name("model name", name)?;
        let selector = match sel {
            None | Some("latest") => Selector::Latest,
            Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                match v.parse::<i64>() {
                    Ok(n) if n >= 1 => Selector::Version(n),
                    _ => {
                        return Err(CoreError::InvalidName {
                            what: "model version",
                            value: s.to_string(),
                            reason: "versions are numbered from 1".into(),
                        });
                    }
                }
            }
            Some(alias) => {
                validate_alias(alias)?;
                Selector::Alias(alias.to_string())
            }
        };
        Ok(ModelRef {
            name: name.to_string(),
            selector,
        })
    }
}

impl std::fmt::Display for ModelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.selector {
            Selector::Latest => write!(f, "{}", self.name),
            Selector::Version(n) => write!(f, "{}@{n}", self.name),
            Selector::Alias(a) => write!(f, "{}@{a}", self.name),
        }
    }
}

/// Check an alias name: a name as [`validate_name`] accepts, other than `latest`, which
/// always means the highest version.
pub fn validate_alias(alias: &str) -> Result<(), CoreError> {
    validate_name("alias", alias)?;
    if alias == "latest" {
        return Err(CoreError::InvalidName {
            what: "alias",
            value: alias.into(),
            reason: "`latest` always means the highest version; choose another name".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> FileEntry {
        FileEntry {
            path: path.into(),
            size: 1,
            digest: Digest::of(path.as_bytes()),
        }
    }

    #[test]
    fn refs_parse() {
        let r = ModelRef::parse("clf@production").unwrap();
        assert_eq!(r.selector, Selector::Alias("production".into()));
        assert_eq!(
            ModelRef::parse("clf@3").unwrap().selector,
            Selector::Version(3)
        );
        assert_eq!(ModelRef::parse("clf").unwrap().selector, Selector::Latest);
        assert_eq!(ModelRef::parse("clf@latest").unwrap().to_string(), "clf");
        for bad in [
            "",
            "../x@1",
            "a/b",
            "clf@0",
            "clf@",
            "clf@a/b",
            "clf@99999999999999999999",
        ] {
            assert!(ModelRef::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(validate_alias("latest").is_err());
    }

    #[test]
    fn paths_that_leave_the_destination_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a\\b",
            "a\0b",
        ] {
            assert!(validate_path(bad).is_err(), "{bad:?} accepted");
        }
        validate_path("weights/layer-1.bin").unwrap();
    }

    #[test]
    fn file_lists_are_checked_and_sorted() {
        let mut ok = vec![entry("b"), entry("a/x")];
        validate_files(Layout::Directory, &mut ok).unwrap();
        assert_eq!(ok[0].path, "a/x");
        let mut dup = vec![entry("a"), entry("a")];
        assert!(validate_files(Layout::Directory, &mut dup).is_err());
        let mut clash = vec![entry("a"), entry("a/b")];
        assert!(validate_files(Layout::Directory, &mut clash).is_err());
        let mut two = vec![entry("a"), entry("b")];
        assert!(validate_files(Layout::File, &mut two).is_err());
        assert!(validate_files(Layout::File, &mut []).is_err());
    }

    #[test]
    fn pull_targets_follow_the_destination() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("models");
        std::fs::create_dir(&dir).unwrap();
        let t = pull_target(Layout::File, "w.bin", &dir, false).unwrap();
        assert_eq!(t, dir.join("w.bin"), "into an existing folder, by name");
        let slash = PathBuf::from(format!("{}/new/", tmp.path().display()));
        assert_eq!(
            pull_target(Layout::File, "w.bin", &slash, false).unwrap(),
            slash.join("w.bin")
        );
        let file = tmp.path().join("f.bin");
        std::fs::write(&file, b"x").unwrap();
        let err = pull_target(Layout::Directory, "a", &file, true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a file") && err.contains("f.bin"), "{err}");
        let err = pull_target(Layout::File, "w.bin", &file, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--force"), "{err}");
        assert_eq!(
            pull_target(Layout::File, "w.bin", &file, true).unwrap(),
            file
        );
        // An empty folder may always be filled.
        assert_eq!(
            pull_target(Layout::Directory, "a", &dir, false).unwrap(),
            dir
        );
    }

    #[test]
    fn replace_swaps_a_folder_and_leaves_nothing_aside() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("m");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("old"), b"old").unwrap();
        let staging = staging_beside(&target).unwrap();
        std::fs::create_dir(&staging).unwrap();
        std::fs::write(staging.join("new"), b"new").unwrap();
        replace(&staging, &target).unwrap();
        assert!(target.join("new").exists() && !target.join("old").exists());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn folders_are_walked_and_oddities_named() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("m/sub")).unwrap();
        std::fs::write(tmp.path().join("m/a.bin"), b"a").unwrap();
        std::fs::write(tmp.path().join("m/sub/b.json"), b"{}").unwrap();
        let (layout, files) = collect_files(&tmp.path().join("m")).unwrap();
        assert_eq!(layout, Layout::Directory);
        let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a.bin", "sub/b.json"]);
        let (layout, files) = collect_files(&tmp.path().join("m/a.bin")).unwrap();
        assert_eq!((layout, files[0].path.as_str()), (Layout::File, "a.bin"));
        std::fs::create_dir(tmp.path().join("empty")).unwrap();
        let err = collect_files(&tmp.path().join("empty"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds no files"), "{err}");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(tmp.path().join("m/sub"), tmp.path().join("m/link"))
                .unwrap();
            let err = collect_files(&tmp.path().join("m"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("symbolic link to a folder"), "{err}");
        }
        assert!(collect_files(&tmp.path().join("missing")).is_err());
    }
}
