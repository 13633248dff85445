//! Secrets: where their values come from, and masking them in captured output.
//!
//! `value_from` is `env:NAME` (kondate's own environment), `file:PATH` (a file, relative to
//! the definition's folder; one trailing newline is dropped), or anything else, which is an
//! AWS reference (an SSM parameter or Secrets Manager ARN) that only ECS can read and that
//! the ECS rendering passes through. Values are never logged, shown, stored or put in an
//! error message; the local runner masks them in the run's output.

use std::path::Path;

use memchr::memmem;

use crate::AppsError;
use crate::definition::{Secret, validate_env_name};

/// Shortest secret value that is masked: masking a one- or two-character value would
/// blank out ordinary output, and such a value protects nothing anyway.
pub const MIN_MASKED_LEN: usize = 4;

/// The text that replaces a secret value in captured output.
pub const MASK: &str = "********";

/// Check the form of a `value_from` (not whether the value exists).
pub fn check_source(value_from: &str) -> Result<(), String> {
    if let Some(name) = value_from.strip_prefix("env:") {
        return validate_env_name(name);
    }
    if let Some(path) = value_from.strip_prefix("file:") {
        if path.is_empty() {
            return Err("`file:` needs a path, e.g. file:/run/secrets/db_password".into());
        }
        return Ok(());
    }
    if value_from.trim().is_empty() {
        return Err("is empty; write env:NAME, file:PATH or an AWS ARN".into());
    }
    Ok(())
}

/// Read every secret's value for a run on this machine. `base` is the definition's folder
/// (for relative `file:` paths); `lookup` reads kondate's own environment.
pub fn resolve(
    secrets: &[Secret],
    base: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, AppsError> {
    let mut out = Vec::with_capacity(secrets.len());
    for s in secrets {
        let value = if let Some(var) = s.value_from.strip_prefix("env:") {
            lookup(var).ok_or_else(|| {
                AppsError::Secret(format!(
                    "secret `{}`: the environment variable {var} is not set where kondate runs; \
                     export it (or point value_from at a file with file:PATH)",
                    s.name
                ))
            })?
        } else if let Some(path) = s.value_from.strip_prefix("file:") {
            let full = base.join(path);
            let mut v = std::fs::read_to_string(&full).map_err(|e| {
                AppsError::Secret(format!(
                    "secret `{}`: cannot read {}: {e}",
                    s.name,
                    full.display()
                ))
            })?;
            if v.ends_with('\n') {
                v.pop();
                if v.ends_with('\r') {
                    v.pop();
                }
            }
            v
        } else {
            return Err(AppsError::Secret(format!(
                "secret `{}` comes from AWS (`{}`), which only ECS can read; for runs on this \
                 machine give it as env:NAME or file:PATH (e.g. in a local variant of the \
                 definition)",
                s.name, s.value_from
            )));
        };
        out.push((s.name.clone(), value));
    }
    Ok(out)
}

/// Replaces secret values in output with [`MASK`].
#[derive(Clone, Default)]
pub struct Masker {
    finders: Vec<memmem::Finder<'static>>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Masker({} values)", self.finders.len())
    }
}

impl Masker {
    /// A masker for these values; values shorter than [`MIN_MASKED_LEN`] are left out
    /// (see there). Longer values are tried first, so a secret containing another is
    /// masked whole.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Masker {
        let mut values: Vec<&str> = values
            .into_iter()
            .filter(|v| v.len() >= MIN_MASKED_LEN)
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Masker {
            finders: values
                .into_iter()
                .map(|v| memmem::Finder::new(v.as_bytes()).into_owned())
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.finders.is_empty()
    }

    /// The length of the longest value masked (0 when none).
    pub fn longest(&self) -> usize {
        self.finders
            .iter()
            .map(|f| f.needle().len())
            .max()
            .unwrap_or(0)
    }

    /// True when `data` contains any secret value.
    pub fn hits(&self, data: &[u8]) -> bool {
        self.finders.iter().any(|f| f.find(data).is_some())
    }

    /// `data` with every secret value replaced.
    pub fn mask(&self, data: &[u8]) -> Vec<u8> {
        let mut cur = data.to_vec();
        for f in &self.finders {
            if f.find(&cur).is_none() {
                continue;
            }
            let mut out = Vec::with_capacity(cur.len());
            let mut last = 0;
            for at in f.find_iter(&cur) {
                if at < last {
                    continue;
                }
                out.extend_from_slice(&cur[last..at]);
                out.extend_from_slice(MASK.as_bytes());
                last = at + f.needle().len();
            }
            out.extend_from_slice(&cur[last..]);
            cur = out;
        }
        cur
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_masked_longest_first_and_short_ones_left() {
        let m = Masker::new(["hunter2-long", "hunter2", "ab"]);
        assert_eq!(
            m.mask(b"pw=hunter2-long and hunter2, ab"),
            b"pw=******** and ********, ab".to_vec()
        );
        assert!(m.hits(b"xx hunter2"));
        assert!(!m.hits(b"ab"));
        assert!(Masker::new(["abc"]).is_empty());
    }

    #[test]
    fn sources_resolve_from_env_and_files_and_refuse_aws_locally() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
        let secrets = vec![
            Secret {
                name: "A".into(),
                value_from: "env:KONDATE_TEST_A".into(),
            },
            Secret {
                name: "B".into(),
                value_from: "file:pw".into(),
            },
        ];
        let lookup = |k: &str| (k == "KONDATE_TEST_A").then(|| "from-env".to_string());
        let got = resolve(&secrets, dir.path(), &lookup).unwrap();
        assert_eq!(
            got,
            vec![
                ("A".to_string(), "from-env".to_string()),
                ("B".to_string(), "s3cret".to_string())
            ]
        );
        let missing = resolve(&secrets, dir.path(), &|_| None).unwrap_err();
        assert!(
            missing.to_string().contains("KONDATE_TEST_A is not set"),
            "{missing}"
        );
        let aws = vec![Secret {
            name: "DB".into(),
            value_from: "arn:aws:ssm:us-east-1:1:parameter/db".into(),
        }];
        let e = resolve(&aws, dir.path(), &lookup).unwrap_err();
        assert!(e.to_string().contains("only ECS can read"), "{e}");
        assert!(check_source("env:1X").is_err());
        assert!(check_source("file:").is_err());
        assert!(check_source("arn:aws:secretsmanager:x").is_ok());
    }
}
