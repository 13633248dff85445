//! Hako's env providers: values for environment variables read from a file beside the
//! definition. `file` reads `KEY=VALUE` lines (`#` starts a comment line); `yaml` reads a
//! YAML mapping whose nested keys are joined with `.` (option `key_sep`) and whose arrays
//! are joined with `,` (option `ary_sep`). Both take the file as `{"path": …}`, relative to
//! the definition's folder.

use std::path::Path;

/// The value of `key` from provider `kind` with `options` (a JSON object, as Hako passes
/// `std.toString({path: …})`). Errors are messages for the user.
pub fn provide(kind: &str, root: &Path, options: &str, key: &str) -> Result<String, String> {
    let options: serde_json::Value = serde_json::from_str(options).map_err(|e| {
        format!("provide.{kind}: the options must be a JSON object like std.toString({{path: 'x.env'}}): {e}")
    })?;
    let path = options
        .get("path")
        .and_then(|p| p.as_str())
        .ok_or_else(|| format!("provide.{kind}: `path` must be set in the options"))?;
    let full = root.join(path);
    let text = std::fs::read_to_string(&full)
        .map_err(|e| format!("provide.{kind}: cannot read {}: {e}", full.display()))?;
    let found = match kind {
        "file" => from_env_file(&text, key),
        "yaml" => {
            let sep = |name: &str, default: &str| {
                options
                    .get(name)
                    .and_then(|v| v.as_str())
                    .unwrap_or(default)
                    .to_string()
            };
            from_yaml(&text, &sep("key_sep", "."), &sep("ary_sep", ","), key)
                .map_err(|e| format!("provide.yaml: {}: {e}", full.display()))?
        }
        other => {
            return Err(format!(
                "unknown env provider `{other}`; kondate has `file` and `yaml`"
            ));
        }
    };
    found.ok_or_else(|| {
        format!(
            "provide.{kind}: no `{key}` in {}; add it there or fix the name",
            full.display()
        )
    })
}

/// `KEY=VALUE` lines; leading blanks ignored, `#` comment lines skipped, the first `=`
/// splits, a line without `=` is ignored (Hako's rules).
fn from_env_file(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim_start();
        if line.starts_with('#') {
            return None;
        }
        let (k, v) = line.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

fn from_yaml(
    text: &str,
    key_sep: &str,
    ary_sep: &str,
    key: &str,
) -> Result<Option<String>, String> {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    if !doc.is_mapping() {
        return Err("the YAML document must be a mapping".into());
    }
    let mut flat = Vec::new();
    flatten(&doc, None, key_sep, ary_sep, &mut flat);
    Ok(flat.into_iter().find(|(k, _)| k == key).map(|(_, v)| v))
}

fn scalar(v: &serde_yaml_ng::Value) -> String {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Null => String::new(),
        Y::Bool(b) => b.to_string(),
        Y::Number(n) => n.to_string(),
        Y::String(s) => s.clone(),
        other => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim_end()
            .to_string(),
    }
}

fn flatten(
    v: &serde_yaml_ng::Value,
    root: Option<&str>,
    key_sep: &str,
    ary_sep: &str,
    out: &mut Vec<(String, String)>,
) {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Mapping(m) => {
            for (k, child) in m {
                let k = scalar(k);
                let name = match root {
                    Some(r) => format!("{r}{key_sep}{k}"),
                    None => k,
                };
                flatten(child, Some(&name), key_sep, ary_sep, out);
            }
        }
        Y::Sequence(items) => {
            let joined: Vec<String> = items.iter().map(scalar).collect();
            out.push((root.unwrap_or("").to_string(), joined.join(ary_sep)));
        }
        other => out.push((root.unwrap_or("").to_string(), scalar(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_follow_hakos_rules() {
        let text = "# comment\n  username=eagletmt\nnoequals\nurl=postgres://u@h/db?a=b\n  # x=1\n";
        assert_eq!(from_env_file(text, "username").as_deref(), Some("eagletmt"));
        assert_eq!(
            from_env_file(text, "url").as_deref(),
            Some("postgres://u@h/db?a=b")
        );
        assert_eq!(from_env_file(text, "x"), None);
        assert_eq!(from_env_file(text, "noequals"), None);
    }

    #[test]
    fn yaml_is_flattened_with_separators() {
        let text = "password: hako\ndb:\n  host: h\n  port: 5432\nhosts: [a, b]\n";
        let get = |k| from_yaml(text, ".", ",", k).unwrap();
        assert_eq!(get("password").as_deref(), Some("hako"));
        assert_eq!(get("db.host").as_deref(), Some("h"));
        assert_eq!(get("db.port").as_deref(), Some("5432"));
        assert_eq!(get("hosts").as_deref(), Some("a,b"));
        assert_eq!(
            from_yaml(text, "_", ";", "db_port").unwrap().as_deref(),
            Some("5432")
        );
        assert!(from_yaml("- a\n", ".", ",", "a").is_err());
    }
}
