//! The audit trail: every change made through the API or the CLI, and every refusal, with
//! who, what, on what, with which parameters (never secrets), how it ended and when.
//!
//! Append-only: kondate inserts rows and reads them, and has no statement that updates or
//! deletes one (grant the state database's role no UPDATE or DELETE on `kondate_audit` to
//! make that hold against people too). Refusals (401/403) are recorded at most
//! [`REFUSALS_PER_KEY`] per client and actor per minute and [`REFUSALS_PER_MINUTE`] in all,
//! so a flood cannot fill the database; the next recorded refusal says how many were left
//! out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kondate_core::Clock;
use kondate_core::clock::ms_to_rfc3339;
use kondate_db::{AnyRow, Database, Value, get_i64, get_opt_i64, get_opt_string, get_string};
use serde::Serialize;
use serde_json::json;

use crate::AccessError;

/// Refusals recorded per (client, actor) per minute.
pub const REFUSALS_PER_KEY: u32 = 10;
/// Refusals recorded per minute in all (per process).
pub const REFUSALS_PER_MINUTE: u32 = 300;
const WINDOW: Duration = Duration::from_secs(60);

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// Authenticated, but without the scope (403).
    Denied,
    /// No or wrong credentials (401), or too many failed attempts (429).
    Unauthorized,
    /// Refused as invalid input (4xx other than 401/403).
    Invalid,
    /// Failed while running (5xx, or a CLI failure).
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Invalid => "invalid",
            Outcome::Failed => "failed",
        }
    }

    /// The outcome an HTTP status means.
    pub fn from_status(status: u16) -> Outcome {
        match status {
            200..=399 => Outcome::Ok,
            401 | 429 => Outcome::Unauthorized,
            403 => Outcome::Denied,
            400..=499 => Outcome::Invalid,
            _ => Outcome::Failed,
        }
    }

    /// Whether this is a refusal (rate-limited when recorded).
    pub fn is_refusal(self) -> bool {
        matches!(self, Outcome::Denied | Outcome::Unauthorized)
    }

    /// An outcome as written (`ok`, `denied`, …).
    pub fn parse(s: &str) -> Result<Outcome, AccessError> {
        Ok(match s {
            "ok" => Outcome::Ok,
            "denied" => Outcome::Denied,
            "unauthorized" => Outcome::Unauthorized,
            "invalid" => Outcome::Invalid,
            "failed" => Outcome::Failed,
            other => {
                return Err(AccessError::Invalid(format!(
                    "outcome `{other}` is not one of ok, denied, unauthorized, invalid, failed"
                )));
            }
        })
    }
}

/// A `since` filter as milliseconds since the epoch: an RFC 3339 time, or a duration back
/// from `now` (`24h`, `7d`).
pub fn parse_since(since: &str, now: chrono::DateTime<chrono::Utc>) -> Result<i64, AccessError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(since) {
        return Ok(t.timestamp_millis());
    }
    let back = humantime::parse_duration(since).map_err(|_| {
        AccessError::Invalid(format!(
            "since `{since}` is neither an RFC 3339 time (2026-11-30T09:00:00Z) nor a duration (24h, 7d)"
        ))
    })?;
    Ok(now.timestamp_millis() - back.as_millis() as i64)
}

/// Where the action came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Api,
    Cli,
    /// The web console's pages and forms.
    Console,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Cli => "cli",
            Source::Console => "console",
        }
    }
}

/// One action to record.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// `token:trainer`, `cli:alice`, `user:ml@example.com`, `anonymous`, or for a refused
    /// credential the name it claimed (`token:trainer?`).
    pub actor: String,
    /// `models.alias.set`, `labels.sync`, `tokens.create`, …
    pub action: String,
    /// What it acted on: `recipe-category@production`, a label set, a token.
    pub target: Option<String>,
    /// Parameters, without secrets (values under secret-looking keys are masked anyway).
    pub params: serde_json::Value,
    pub outcome: Outcome,
    /// The HTTP status or the exit code.
    pub status: Option<i64>,
    pub source: Source,
    /// The client's address (API).
    pub client: Option<String>,
    /// An error message, for refusals and failures.
    pub detail: Option<String>,
}

impl AuditEntry {
    /// An entry with no parameters, status, client or detail yet.
    pub fn new(source: Source, actor: &str, action: &str, target: Option<&str>) -> AuditEntry {
        AuditEntry {
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.map(str::to_string),
            params: json!({}),
            outcome: Outcome::Ok,
            status: None,
            source,
            client: None,
            detail: None,
        }
    }
}

/// A recorded action: the entry, its number and when.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub id: i64,
    pub at: String,
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// Which records to list; each given field must match (`actor` and `target` match a prefix
/// when they end in `*`).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub target: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<Outcome>,
    /// Milliseconds since the epoch.
    pub since_ms: Option<i64>,
    /// At most this many, newest first (default 100).
    pub limit: Option<usize>,
}

#[derive(Debug, Default)]
struct RefusalWindows {
    total: (Option<Instant>, u32),
    /// (client, actor) → (window start, recorded, left out)
    by_key: HashMap<(String, String), (Instant, u32, u32)>,
}

/// Records and lists the audit trail.
#[derive(Debug, Clone)]
pub struct Audit {
    db: Database,
    clock: Arc<dyn Clock>,
    refusals: Arc<Mutex<RefusalWindows>>,
}

/// Keys whose values are never recorded.
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "secret",
        "password",
        "passwd",
        "api_key",
        "apikey",
        "credential",
        "private_key",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// Mask the values under secret-looking keys, however deep.
fn scrub(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                if is_secret_key(k) {
                    *val = json!("***");
                } else {
                    scrub(val);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(scrub),
        _ => {}
    }
}

const COLUMNS: &str =
    "id, at, actor, action, target, params, outcome, status, source, client, detail";

fn from_row(r: &AnyRow) -> Result<AuditRecord, AccessError> {
    Ok(AuditRecord {
        id: get_i64(r, "id")?,
        at: ms_to_rfc3339(get_i64(r, "at")?),
        entry: AuditEntry {
            actor: get_string(r, "actor")?,
            action: get_string(r, "action")?,
            target: get_opt_string(r, "target"),
            params: serde_json::from_str(&get_string(r, "params")?).unwrap_or(json!({})),
            outcome: Outcome::parse(&get_string(r, "outcome")?).unwrap_or(Outcome::Failed),
            status: get_opt_i64(r, "status"),
            source: match get_string(r, "source")?.as_str() {
                "cli" => Source::Cli,
                "console" => Source::Console,
                _ => Source::Api,
            },
            client: get_opt_string(r, "client"),
            detail: get_opt_string(r, "detail"),
        },
    })
}

/// Cut `s` to at most `max` bytes on a character boundary (columns have limits).
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

impl Audit {
    pub(crate) fn new(db: Database, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            clock,
            refusals: Arc::default(),
        }
    }

    /// Record `entry` (refusals through the rate limit).
    pub async fn record(&self, mut entry: AuditEntry) -> Result<(), AccessError> {
        if entry.outcome.is_refusal() {
            match self.admit_refusal(&entry) {
                None => return Ok(()),
                Some(0) => {}
                Some(left_out) => {
                    if let serde_json::Value::Object(m) = &mut entry.params {
                        m.insert("refusals_left_out_before".into(), json!(left_out));
                    }
                }
            }
        }
        scrub(&mut entry.params);
        self.db
            .execute(
                "INSERT INTO kondate_audit (at, actor, action, target, params, outcome, status, source, client, detail) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                &[
                    Value::Int(self.clock.now().timestamp_millis()),
                    cut(&entry.actor, 255).into(),
                    cut(&entry.action, 64).into(),
                    entry.target.as_deref().map(|t| cut(t, 255)).into(),
                    entry.params.to_string().into(),
                    entry.outcome.as_str().into(),
                    entry.status.into(),
                    entry.source.as_str().into(),
                    entry.client.as_deref().map(|c| cut(c, 64)).into(),
                    entry.detail.into(),
                ],
            )
            .await?;
        Ok(())
    }

    /// Record `entry`, logging rather than failing when the database does not take it (for
    /// refusals and the end of requests, where the answer is already decided).
    pub async fn record_or_log(&self, entry: AuditEntry) {
        let action = entry.action.clone();
        if let Err(e) = self.record(entry).await {
            tracing::error!(action, error = %e, "could not record an audit entry");
        }
    }

    /// `None` when this refusal is left out; else how many of its key were left out since
    /// the last one recorded.
    fn admit_refusal(&self, e: &AuditEntry) -> Option<u32> {
        let mut guard = self.refusals.lock().expect("audit limiter lock");
        let RefusalWindows { total, by_key } = &mut *guard;
        let now = Instant::now();
        if total.0.is_none_or(|s| now.duration_since(s) >= WINDOW) {
            *total = (Some(now), 0);
        }
        if by_key.len() > 10_000 {
            by_key.retain(|_, (start, _, left_out)| {
                now.duration_since(*start) < WINDOW || *left_out > 0
            });
        }
        let key = (e.client.clone().unwrap_or_default(), e.actor.clone());
        let (start, recorded, left_out) = by_key.entry(key).or_insert((now, 0, 0));
        if now.duration_since(*start) >= WINDOW {
            // A new window; what was left out in the old one is reported with this one.
            *start = now;
            *recorded = 0;
        }
        if *recorded >= REFUSALS_PER_KEY || total.1 >= REFUSALS_PER_MINUTE {
            *left_out += 1;
            return None;
        }
        *recorded += 1;
        total.1 += 1;
        Some(std::mem::take(left_out))
    }

    /// Records matching `filter`, newest first.
    pub async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, AccessError> {
        let mut sql = format!("SELECT {COLUMNS} FROM kondate_audit WHERE 1 = 1");
        let mut params = Vec::new();
        for (col, value) in [("actor", &filter.actor), ("target", &filter.target)] {
            if let Some(v) = value {
                match v.strip_suffix('*') {
                    // A prefix: compared with SUBSTR, not LIKE, so that `%` and `_` in
                    // names are plain characters on every database. The length is a number
                    // kondate counts, written as a literal (PostgreSQL has no SUBSTR with a
                    // BIGINT length, which a bound integer would be).
                    Some(prefix) => {
                        let n = prefix.chars().count();
                        sql.push_str(&format!(" AND SUBSTR({col}, 1, {n}) = ?"));
                        params.push(prefix.into());
                    }
                    None => {
                        sql.push_str(&format!(" AND {col} = ?"));
                        params.push(v.as_str().into());
                    }
                }
            }
        }
        if let Some(a) = &filter.action {
            sql.push_str(" AND action = ?");
            params.push(a.as_str().into());
        }
        if let Some(o) = filter.outcome {
            sql.push_str(" AND outcome = ?");
            params.push(o.as_str().into());
        }
        if let Some(since) = filter.since_ms {
            sql.push_str(" AND at >= ?");
            params.push(Value::Int(since));
        }
        let limit = filter.limit.unwrap_or(100).clamp(1, 10_000);
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
        self.db
            .fetch_all(&sql, &params)
            .await?
            .iter()
            .map(from_row)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_however_deep() {
        let mut v = json!({
            "name": "t",
            "token_secret": "s3cret",
            "env": [{"DB_PASSWORD": "x", "PLAIN": "y"}],
            "nested": {"api_key": "k", "ok": 1}
        });
        scrub(&mut v);
        assert_eq!(
            v,
            json!({
                "name": "t",
                "token_secret": "***",
                "env": [{"DB_PASSWORD": "***", "PLAIN": "y"}],
                "nested": {"api_key": "***", "ok": 1}
            })
        );
    }

    #[test]
    fn outcomes_follow_http_statuses() {
        assert_eq!(Outcome::from_status(201), Outcome::Ok);
        assert_eq!(Outcome::from_status(401), Outcome::Unauthorized);
        assert_eq!(Outcome::from_status(429), Outcome::Unauthorized);
        assert_eq!(Outcome::from_status(403), Outcome::Denied);
        assert_eq!(Outcome::from_status(409), Outcome::Invalid);
        assert_eq!(Outcome::from_status(500), Outcome::Failed);
    }
}
