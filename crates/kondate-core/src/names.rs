//! Validation of user-given names that end up in paths, object keys or SQL identifiers.

use crate::CoreError;

/// Check a name used as a path component or identifier: 1–64 characters of
/// `[A-Za-z0-9_-]`, starting with a letter or underscore. No `/`, no `..`, no spaces.
pub fn validate_name(what: &'static str, value: &str) -> Result<(), CoreError> {
    let reason = if value.is_empty() {
        Some("it is empty".to_string())
    } else if value.len() > 64 {
        Some(format!(
            "it is {} characters long; the limit is 64",
            value.len()
        ))
    } else if !value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
    {
        Some("it must start with a letter or `_`".to_string())
    } else {
        value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
            .map(|c| format!("`{c}` is not allowed; use letters, digits, `_` and `-`"))
    };
    match reason {
        Some(reason) => Err(CoreError::InvalidName {
            what,
            value: value.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["recipes", "recipe_category", "_tmp", "a-b", "A1"] {
            validate_name("table", ok).unwrap();
        }
    }

    #[test]
    fn refuses_paths_and_oddities() {
        for bad in [
            "",
            "../etc",
            "a/b",
            "a b",
            "1abc",
            ".hidden",
            "a;drop",
            &"x".repeat(65),
        ] {
            let err = validate_name("table", bad).unwrap_err().to_string();
            assert!(err.contains("invalid table"), "{bad}: {err}");
        }
    }
}
