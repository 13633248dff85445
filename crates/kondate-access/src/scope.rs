//! Scopes: what a principal may do, by area and action, optionally narrowed to names.
//!
//! Written `area:action` or `area:action=PATTERN` (`models:write=recipe-*`), or `admin`.
//! A pattern is matched against the name of what is acted on — a label set, a model, a
//! result table, an app — with `*` standing for any run of characters. For `models:alias`
//! the name is `MODEL@ALIAS`; a pattern without `@` matches the model with any alias.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::AccessError;

/// The kinds of scope, by area and action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScopeKind {
    /// Submit read-only queries and read their results.
    Query,
    LabelsRead,
    LabelsSync,
    ModelsRead,
    /// Push new versions (and upload their files).
    ModelsWrite,
    /// Move or remove an alias.
    ModelsAlias,
    /// Delete versions and collect unreferenced files.
    ModelsDelete,
    ResultsWrite,
    /// Delete rows a write did not touch (`--prune`).
    ResultsPrune,
    RunsRead,
    RunsLaunch,
    CatalogEdit,
    JobsRead,
    JobsLaunch,
    JobsOperate,
    /// Users, tokens, the audit trail — and everything else.
    Admin,
}

/// Every kind, in the order they are documented.
pub const ALL_KINDS: &[ScopeKind] = &[
    ScopeKind::Query,
    ScopeKind::LabelsRead,
    ScopeKind::LabelsSync,
    ScopeKind::ModelsRead,
    ScopeKind::ModelsWrite,
    ScopeKind::ModelsAlias,
    ScopeKind::ModelsDelete,
    ScopeKind::ResultsWrite,
    ScopeKind::ResultsPrune,
    ScopeKind::RunsRead,
    ScopeKind::RunsLaunch,
    ScopeKind::CatalogEdit,
    ScopeKind::JobsRead,
    ScopeKind::JobsLaunch,
    ScopeKind::JobsOperate,
    ScopeKind::Admin,
];

impl ScopeKind {
    /// As written: `models:alias`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Query => "query",
            ScopeKind::LabelsRead => "labels:read",
            ScopeKind::LabelsSync => "labels:sync",
            ScopeKind::ModelsRead => "models:read",
            ScopeKind::ModelsWrite => "models:write",
            ScopeKind::ModelsAlias => "models:alias",
            ScopeKind::ModelsDelete => "models:delete",
            ScopeKind::ResultsWrite => "results:write",
            ScopeKind::ResultsPrune => "results:prune",
            ScopeKind::RunsRead => "runs:read",
            ScopeKind::RunsLaunch => "runs:launch",
            ScopeKind::CatalogEdit => "catalog:edit",
            ScopeKind::JobsRead => "jobs:read",
            ScopeKind::JobsLaunch => "jobs:launch",
            ScopeKind::JobsOperate => "jobs:operate",
            ScopeKind::Admin => "admin",
        }
    }

    /// The area: `models` for `models:alias`.
    pub fn area(self) -> &'static str {
        self.as_str().split(':').next().unwrap_or("admin")
    }

    /// What it allows, in a few words (for `--help` and the docs).
    pub fn describe(self) -> &'static str {
        match self {
            ScopeKind::Query => "submit read-only queries and download their results",
            ScopeKind::LabelsRead => "list label sets, their revisions and exports",
            ScopeKind::LabelsSync => "sync a label set from its source",
            ScopeKind::ModelsRead => "list, show and pull models",
            ScopeKind::ModelsWrite => "push new model versions",
            ScopeKind::ModelsAlias => "move or remove a model alias (pattern on MODEL@ALIAS)",
            ScopeKind::ModelsDelete => "delete model versions and collect unreferenced files",
            ScopeKind::ResultsWrite => "write rows into a result table",
            ScopeKind::ResultsPrune => "delete the rows a write did not touch",
            ScopeKind::RunsRead => "list app runs and read their logs",
            ScopeKind::RunsLaunch => "launch app runs",
            ScopeKind::CatalogEdit => "edit catalog descriptions",
            ScopeKind::JobsRead => "read jobs, their instances and logs",
            ScopeKind::JobsLaunch => "launch a job now",
            ScopeKind::JobsOperate => "retry, skip and cancel a job's instances",
            ScopeKind::Admin => "users, tokens, the audit trail, and everything else",
        }
    }

    fn parse(s: &str) -> Option<ScopeKind> {
        ALL_KINDS.iter().copied().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ScopeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One scope: a kind, for every name or for the names matching a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    pub kind: ScopeKind,
    /// `None`: every name.
    pub pattern: Option<String>,
}

impl Scope {
    /// `kind` on every name.
    pub fn all(kind: ScopeKind) -> Scope {
        Scope {
            kind,
            pattern: None,
        }
    }

    /// `kind` on the names matching `pattern`.
    pub fn on(kind: ScopeKind, pattern: &str) -> Scope {
        Scope {
            kind,
            pattern: Some(pattern.to_string()),
        }
    }

    /// Parse `area:action[=PATTERN]` or `admin`.
    pub fn parse(s: &str) -> Result<Scope, AccessError> {
        let s = s.trim();
        let (kind, pattern) = match s.split_once('=') {
            Some((k, p)) => (k.trim(), Some(p.trim())),
            None => (s, None),
        };
        let kind = ScopeKind::parse(kind).ok_or_else(|| {
            AccessError::Invalid(format!(
                "unknown scope `{kind}`; scopes are: {}",
                ALL_KINDS
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let pattern = match pattern {
            None | Some("*") => None,
            Some("") => {
                return Err(AccessError::Invalid(format!(
                    "scope `{s}` has an empty pattern; write `{kind}` for every name or `{kind}=NAME*`"
                )));
            }
            Some(p) => {
                if kind == ScopeKind::Admin {
                    return Err(AccessError::Invalid(
                        "`admin` cannot be narrowed to names".into(),
                    ));
                }
                if let Some(bad) = p
                    .chars()
                    .find(|c| !(c.is_alphanumeric() || matches!(c, '*' | '-' | '_' | '.' | '@')))
                {
                    return Err(AccessError::Invalid(format!(
                        "scope pattern `{p}` may hold letters, digits, `-`, `_`, `.`, `@` and `*`, not `{bad}`"
                    )));
                }
                Some(p.to_string())
            }
        };
        Ok(Scope { kind, pattern })
    }

    /// Whether this scope lets its holder do `kind` to `target` (`None`: an operation on no
    /// particular name — every scope of the kind allows it, patterns or not).
    pub fn allows(&self, kind: ScopeKind, target: Option<&str>) -> bool {
        if self.kind == ScopeKind::Admin {
            return true;
        }
        if self.kind != kind {
            return false;
        }
        match (self.normalized_pattern(), target) {
            (None, _) | (_, None) => true,
            (Some(p), Some(t)) => glob_match(p.as_bytes(), t.as_bytes()),
        }
    }

    /// The pattern as matched: for `models:alias`, a pattern on the model alone (`recipe-*`)
    /// stands for every alias of the matching models (`recipe-*@*`).
    fn normalized_pattern(&self) -> Option<std::borrow::Cow<'_, str>> {
        let p = self.pattern.as_deref()?;
        Some(if self.kind == ScopeKind::ModelsAlias && !p.contains('@') {
            format!("{p}@*").into()
        } else {
            p.into()
        })
    }

    /// Whether this scope lets its holder do `kind` to every name (gc, listings that are
    /// not filtered).
    pub fn allows_every(&self, kind: ScopeKind) -> bool {
        self.kind == ScopeKind::Admin || (self.kind == kind && self.pattern.is_none())
    }

    /// Whether everything `inner` allows, this scope allows too (a token's scopes must be
    /// covered by its owner's).
    pub fn covers(&self, inner: &Scope) -> bool {
        if self.kind == ScopeKind::Admin {
            return true;
        }
        if self.kind != inner.kind {
            return false;
        }
        match (self.normalized_pattern(), inner.normalized_pattern()) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(o), Some(i)) => glob_covers(o.as_bytes(), i.as_bytes()),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pattern {
            None => f.write_str(self.kind.as_str()),
            Some(p) => write!(f, "{}={p}", self.kind),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Scope::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `*` matches any run of characters (hand-written: a one-wildcard glob does not justify a
/// dependency, and the `covers` check below needs the same rules).
fn glob_match(p: &[u8], t: &[u8]) -> bool {
    // Classic two-pointer wildcard match with backtracking to the last star.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Whether every name `inner` matches is matched by `outer`: an inner `*` can only be
/// absorbed by an outer `*`.
fn glob_covers(outer: &[u8], inner: &[u8]) -> bool {
    match outer.split_first() {
        None => inner.is_empty(),
        Some((b'*', rest)) => {
            glob_covers(rest, inner) || (!inner.is_empty() && glob_covers(outer, &inner[1..]))
        }
        Some((c, rest)) => match inner.split_first() {
            Some((d, irest)) if *d != b'*' && c == d => glob_covers(rest, irest),
            _ => false,
        },
    }
}

/// A set of scopes; what a principal holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// From a list, sorted and without duplicates.
    pub fn new(mut scopes: Vec<Scope>) -> Scopes {
        scopes.sort();
        scopes.dedup();
        Scopes(scopes)
    }

    /// Parse a space-separated list (as stored).
    pub fn parse_list(s: &str) -> Result<Scopes, AccessError> {
        Ok(Scopes::new(
            s.split_whitespace()
                .map(Scope::parse)
                .collect::<Result<_, _>>()?,
        ))
    }

    /// Space-separated, as stored.
    pub fn to_list(&self) -> String {
        self.0
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_admin(&self) -> bool {
        self.0.iter().any(|s| s.kind == ScopeKind::Admin)
    }

    /// Whether any scope allows `kind` on `target`.
    pub fn allows(&self, kind: ScopeKind, target: Option<&str>) -> bool {
        self.0.iter().any(|s| s.allows(kind, target))
    }

    /// Whether any scope allows `kind` on every name.
    pub fn allows_every(&self, kind: ScopeKind) -> bool {
        self.0.iter().any(|s| s.allows_every(kind))
    }

    /// Whether some scope allows `kind` on at least some names.
    pub fn has_kind(&self, kind: ScopeKind) -> bool {
        self.0
            .iter()
            .any(|s| s.kind == kind || s.kind == ScopeKind::Admin)
    }

    /// Whether `scope` is covered by one of these.
    pub fn covers(&self, scope: &Scope) -> bool {
        self.0.iter().any(|s| s.covers(scope))
    }

    /// The scopes of `self` that `other` does not cover.
    pub fn not_covered_by<'a>(&'a self, other: &'a Scopes) -> impl Iterator<Item = &'a Scope> {
        self.0.iter().filter(move |s| !other.covers(s))
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("(none)")
        } else {
            f.write_str(&self.to_list())
        }
    }
}

impl Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// A named bundle of scopes given to people: `viewer`, `editor`, `admin`; optionally for
/// one area only (`models=editor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Viewer,
    Editor,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    /// The scopes of the role, in every area.
    pub fn scopes(self) -> Vec<Scope> {
        use ScopeKind::*;
        let kinds: Vec<ScopeKind> = match self {
            Role::Viewer => vec![Query, LabelsRead, ModelsRead, RunsRead, JobsRead],
            // Everything but deleting models and administration.
            Role::Editor => ALL_KINDS
                .iter()
                .copied()
                .filter(|k| !matches!(k, ModelsDelete | Admin))
                .collect(),
            Role::Admin => vec![Admin],
        };
        kinds.into_iter().map(Scope::all).collect()
    }
}

/// Expand role specs (`editor`, `models=editor`, `labels=viewer`) into scopes.
pub fn expand_roles(specs: &[String]) -> Result<Vec<Scope>, AccessError> {
    let mut out = Vec::new();
    for spec in specs {
        let (area, role) = match spec.split_once('=') {
            Some((a, r)) => (Some(a.trim()), r.trim()),
            None => (None, spec.trim()),
        };
        let role = match role {
            "viewer" => Role::Viewer,
            "editor" => Role::Editor,
            "admin" => Role::Admin,
            other => {
                return Err(AccessError::Invalid(format!(
                    "unknown role `{other}`; roles are viewer, editor and admin, for every area \
                     or one (`models=editor`)"
                )));
            }
        };
        let scopes = role.scopes();
        match area {
            None => out.extend(scopes),
            Some(area) => {
                const AREAS: &[&str] = &[
                    "query", "labels", "models", "results", "runs", "catalog", "jobs",
                ];
                if !AREAS.contains(&area) {
                    return Err(AccessError::Invalid(format!(
                        "unknown area `{area}` in role `{spec}`; areas are {}",
                        AREAS.join(", ")
                    )));
                }
                if role == Role::Admin {
                    return Err(AccessError::Invalid(format!(
                        "`{spec}`: admin is for every area; give `{area}=editor` or `admin`"
                    )));
                }
                // Editors of an area may also delete in it.
                let mut area_scopes: Vec<Scope> = scopes
                    .into_iter()
                    .filter(|s| s.kind.area() == area)
                    .collect();
                if role == Role::Editor && area == "models" {
                    area_scopes.push(Scope::all(ScopeKind::ModelsDelete));
                }
                out.extend(area_scopes);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Scope {
        Scope::parse(x).unwrap()
    }

    #[test]
    fn scopes_parse_and_print_as_written() {
        for text in [
            "query",
            "labels:read",
            "models:write=recipe-*",
            "models:alias=recipe-category@production",
            "results:write=recipe_categories",
            "admin",
            "jobs:operate",
        ] {
            assert_eq!(s(text).to_string(), text);
        }
        // `=*` is every name.
        assert_eq!(s("models:read=*"), Scope::all(ScopeKind::ModelsRead));
    }

    #[test]
    fn bad_scopes_are_refused_with_what_to_write() {
        for (text, says) in [
            ("models:push", "unknown scope `models:push`"),
            ("models:write=", "empty pattern"),
            ("admin=x", "cannot be narrowed"),
            ("models:write=a/b", "not `/`"),
            ("models:write=a b", "not ` `"),
        ] {
            let e = Scope::parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn patterns_match_names_with_stars() {
        let cases = [
            ("models:write=recipe-*", "recipe-category", true),
            ("models:write=recipe-*", "recipe-", true),
            ("models:write=recipe-*", "ingredient", false),
            ("models:write=*-category", "recipe-category", true),
            ("models:write=r*e*y", "recipe-category", true),
            ("models:write=r*e*x", "recipe-category", false),
            ("models:write=exact", "exact", true),
            ("models:write=exact", "exactly", false),
            ("models:write", "anything", true),
        ];
        for (scope, target, want) in cases {
            assert_eq!(
                s(scope).allows(ScopeKind::ModelsWrite, Some(target)),
                want,
                "{scope} on {target}"
            );
        }
    }

    #[test]
    fn a_scope_allows_only_its_own_kind_except_admin() {
        assert!(!s("models:read").allows(ScopeKind::ModelsWrite, Some("m")));
        assert!(!s("models:write").allows(ScopeKind::ModelsAlias, Some("m@production")));
        assert!(s("admin").allows(ScopeKind::ModelsDelete, Some("m")));
        assert!(s("admin").allows_every(ScopeKind::ModelsDelete));
        assert!(!s("models:delete=m*").allows_every(ScopeKind::ModelsDelete));
        assert!(s("models:delete").allows_every(ScopeKind::ModelsDelete));
    }

    #[test]
    fn alias_scopes_match_model_and_alias() {
        let prod = s("models:alias=recipe-category@production");
        assert!(prod.allows(ScopeKind::ModelsAlias, Some("recipe-category@production")));
        assert!(!prod.allows(ScopeKind::ModelsAlias, Some("recipe-category@staging")));
        assert!(!prod.allows(ScopeKind::ModelsAlias, Some("other@production")));
        let any = s("models:alias=recipe-*");
        assert!(any.allows(ScopeKind::ModelsAlias, Some("recipe-category@production")));
        assert!(!any.allows(ScopeKind::ModelsAlias, Some("other@production")));
    }

    #[test]
    fn covering_is_containment_of_the_names_matched() {
        let cases = [
            ("models:write", "models:write=recipe-*", true),
            ("models:write=recipe-*", "models:write", false),
            (
                "models:write=recipe-*",
                "models:write=recipe-category",
                true,
            ),
            ("models:write=recipe-*", "models:write=recipe-c*", true),
            ("models:write=recipe-c*", "models:write=recipe-*", false),
            ("models:write=*", "models:write=x", true),
            ("models:write=a*b", "models:write=a*b", true),
            ("models:write=a*b", "models:write=a*", false),
            ("models:write=*b", "models:write=a*b", true),
            ("models:read", "models:write", false),
            ("admin", "models:delete", true),
            ("models:delete", "admin", false),
            (
                "models:alias=recipe-*",
                "models:alias=recipe-x@production",
                true,
            ),
            (
                "models:alias=recipe-x@production",
                "models:alias=recipe-x",
                false,
            ),
            (
                "models:alias=recipe-x@production",
                "models:alias=recipe-x@production",
                true,
            ),
        ];
        for (outer, inner, want) in cases {
            assert_eq!(s(outer).covers(&s(inner)), want, "{outer} covers {inner}");
        }
    }

    #[test]
    fn roles_expand_to_documented_scopes() {
        let viewer = Scopes::new(expand_roles(&["viewer".into()]).unwrap());
        assert!(viewer.allows(ScopeKind::Query, None));
        assert!(!viewer.allows(ScopeKind::ModelsWrite, Some("m")));
        let editor = Scopes::new(expand_roles(&["editor".into()]).unwrap());
        assert!(editor.allows(ScopeKind::ModelsAlias, Some("m@production")));
        assert!(!editor.allows(ScopeKind::ModelsDelete, Some("m")));
        assert!(!editor.is_admin());
        let models_editor =
            Scopes::new(expand_roles(&["models=editor".into(), "labels=viewer".into()]).unwrap());
        assert!(models_editor.allows(ScopeKind::ModelsDelete, Some("m")));
        assert!(models_editor.allows(ScopeKind::LabelsRead, Some("l")));
        assert!(!models_editor.allows(ScopeKind::LabelsSync, Some("l")));
        assert!(!models_editor.allows(ScopeKind::Query, None));
        assert!(
            expand_roles(&["owner".into()])
                .unwrap_err()
                .to_string()
                .contains("unknown role")
        );
        assert!(expand_roles(&["models=admin".into()]).is_err());
        assert!(expand_roles(&["recipes=editor".into()]).is_err());
    }

    #[test]
    fn the_legacy_set_is_every_scope_but_admin_that_existed_before() {
        let legacy = Scopes::parse_list(kondate_db::state::LEGACY_TOKEN_SCOPES).unwrap();
        assert_eq!(legacy.to_list(), kondate_db::state::LEGACY_TOKEN_SCOPES);
        assert!(!legacy.is_admin());
        // Launching runs, the catalog and the scheduler did not exist over HTTP before.
        for k in [
            ScopeKind::RunsLaunch,
            ScopeKind::CatalogEdit,
            ScopeKind::JobsLaunch,
        ] {
            assert!(!legacy.has_kind(k), "{k}");
        }
    }

    #[test]
    fn stored_lists_round_trip() {
        let list = Scopes::parse_list("query  models:write=recipe-*\tlabels:read query").unwrap();
        assert_eq!(list.to_list(), "query labels:read models:write=recipe-*");
        assert_eq!(Scopes::parse_list(&list.to_list()).unwrap(), list);
    }
}
