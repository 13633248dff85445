//! A kondate project on disk: finding it, creating it, loading its configuration.

use std::path::{Path, PathBuf};

use crate::{Config, CoreError};

/// The configuration file's name at the project root.
pub const CONFIG_FILE: &str = "kondate.toml";

/// A loaded project: its root folder and resolved configuration.
#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    pub config: Config,
}

const TEMPLATE: &str = r#"# kondate project configuration.
#
# Every setting below is optional: the commented values are the embedded defaults, which keep
# everything under .kondate/ so that nothing needs installing. Any setting can be overridden
# with an environment variable KONDATE_<SECTION>_<KEY>, e.g. KONDATE_SERVER_LISTEN=0.0.0.0:7878.
# Secrets (database passwords, signing keys) never go in this file: use the environment
# (KONDATE_STATE_URL, KONDATE_WAREHOUSE_URL, KONDATE_SIGNING_KEY, AWS_*) or a file.

[project]
name = "{name}"

[server]
# listen = "127.0.0.1:7878"
# public_url = "http://127.0.0.1:7878"   # the address clients use; signed URLs are built on it
# url = "http://127.0.0.1:7878"          # send `kondate query` through this server
# drain_timeout = "30s"                  # on SIGTERM, time for running queries to finish

[state]
# url = "sqlite://.kondate/state.db"     # or postgres://… / mysql://… via KONDATE_STATE_URL
# heartbeat = "10s"                      # how often a running process says it is alive
# lost_after = "1m"                      # silence after which its queries count as lost

[service]
# url = "sqlite://.kondate/service.db"   # the product's database: label tables land here

[store]
# url = ".kondate/store"                 # or s3://bucket/prefix, gs://bucket/prefix, az://container/prefix
# endpoint = "http://127.0.0.1:9000"     # S3-compatible server
# region = "us-east-1"
# allow_http = false
# signing_key_file = ".kondate/signing.key"

[warehouse]
# type = "embedded"                      # "postgres" or "redshift" (url via KONDATE_WAREHOUSE_URL)
# iam_role = "arn:aws:iam::123456789012:role/redshift-unload"   # redshift only

[query]
# result_ttl = "6h"
# statement_timeout = "30m"
# max_concurrent_per_token = 4
# max_queued_per_token = 32
# parts = 4
# allow_anonymous = false

# [jobs]                                 # jobs/NAME.jsonnet, scheduled by `kondate serve`
# scheduler = true
# workers = 1                            # 0: steps run by `kondate worker` processes only
# poll = "2s"

# [notifications]                        # where jobs' failures (and more) are sent
# default = ["oncall"]
# [notifications.destinations.oncall]
# type = "slack"                         # or "webhook" (url, secret_env) or "email" (smtp, from, to)
# url_env = "KONDATE_SLACK_URL"          # Slack's URL is a secret: the variable that holds it

# [catalog]
# nightly = "0 3 * * *"                  # the built-in job catalog_nightly syncs every source; "" for none
# nightly_time_zone = "UTC"
# [catalog.sources.warehouse]            # what `kondate catalog sync` documents (docs/catalog.md)
# ignore = ['^scratch\.']                # regular expressions on schema.table
# [catalog.sources.legacy]               # another database, documented too
# url_env = "LEGACY_DB_URL"              # the variable holding its URL (secrets never go here)
"#;

impl Project {
    /// Create a project in `dir` (created if missing). Refuses to overwrite a `kondate.toml`.
    pub fn init(dir: &Path) -> Result<Project, CoreError> {
        std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
        let config_path = dir.join(CONFIG_FILE);
        if config_path.exists() {
            return Err(CoreError::Config {
                location: config_path.display().to_string(),
                message: "already exists; kondate init never overwrites a project (delete it \
                          first if you really want a fresh one)"
                    .into(),
            });
        }
        let root = std::fs::canonicalize(dir).map_err(|e| CoreError::io(dir, e))?;
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().replace('"', ""))
            .unwrap_or_else(|| "kondate".into());
        for sub in ["apps", "jobs", "labels", "results", ".kondate"] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| CoreError::io(&p, e))?;
        }
        let gitignore = root.join(".gitignore");
        if !gitignore.exists() {
            std::fs::write(&gitignore, ".kondate/\n").map_err(|e| CoreError::io(&gitignore, e))?;
        }
        // Written last and via a temporary file, so a half-initialised folder is never taken
        // for a project.
        let tmp = root.join(".kondate/kondate.toml.tmp");
        std::fs::write(&tmp, TEMPLATE.replace("{name}", &name))
            .map_err(|e| CoreError::io(&tmp, e))?;
        std::fs::rename(&tmp, &config_path).map_err(|e| CoreError::io(&config_path, e))?;
        Project::load(&root, std::env::vars())
    }

    /// Find the project: `explicit` if given, else the nearest folder upwards from `start`
    /// that holds a `kondate.toml`.
    pub fn discover(explicit: Option<&Path>, start: &Path) -> Result<PathBuf, CoreError> {
        if let Some(dir) = explicit {
            if dir.join(CONFIG_FILE).is_file() {
                return Ok(dir.to_path_buf());
            }
            return Err(CoreError::NoProject {
                searched: dir.display().to_string(),
            });
        }
        let mut cur = Some(start);
        while let Some(dir) = cur {
            if dir.join(CONFIG_FILE).is_file() {
                return Ok(dir.to_path_buf());
            }
            cur = dir.parent();
        }
        Err(CoreError::NoProject {
            searched: start.display().to_string(),
        })
    }

    /// Load the project rooted at `root` with the given environment.
    pub fn load(
        root: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Project, CoreError> {
        let root = std::fs::canonicalize(root).map_err(|e| CoreError::io(root, e))?;
        let path = root.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| CoreError::io(&path, e))?;
        let mut config = Config::from_sources(&text, &path, env)?;
        config.resolve_paths(&root);
        Ok(Project { root, config })
    }

    /// The folder for embedded state (`.kondate/`).
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(".kondate")
    }
}

/// The files in `dir` (not below it) whose extension is one of `extensions`, sorted: the
/// definitions of a project folder (`labels/`, `apps/`, `results/`). A missing folder has
/// none.
pub fn definition_files(dir: &Path, extensions: &[&str]) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if extensions.contains(&ext) && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_layout_and_loads_defaults() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("myproj");
        let p = Project::init(&dir).unwrap();
        for sub in ["apps", "jobs", "labels", "results", ".kondate"] {
            assert!(dir.join(sub).is_dir(), "{sub}");
        }
        assert_eq!(p.config.project.name, "myproj");
        assert!(p.config.state.url.ends_with("/myproj/.kondate/state.db"));
    }

    #[test]
    fn init_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        Project::init(tmp.path()).unwrap();
        std::fs::write(tmp.path().join(CONFIG_FILE), "[project]\nname = \"keep\"\n").unwrap();
        let err = Project::init(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        let kept = std::fs::read_to_string(tmp.path().join(CONFIG_FILE)).unwrap();
        assert!(kept.contains("keep"));
    }

    #[test]
    fn discover_walks_up_and_explains_failure() {
        let tmp = tempfile::tempdir().unwrap();
        Project::init(tmp.path()).unwrap();
        let deep = tmp.path().join("apps/x/y");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(Project::discover(None, &deep).unwrap(), tmp.path());
        let other = tempfile::tempdir().unwrap();
        let err = Project::discover(None, other.path()).unwrap_err();
        assert!(err.to_string().contains("kondate init"), "{err}");
    }
}
