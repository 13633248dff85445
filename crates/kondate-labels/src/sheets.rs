//! Google Sheets API v4: `spreadsheets.values.get` on a range, unformatted values, with a
//! service-account key (a JWT exchanged for an access token) or an API key.
//!
//! Hand-written over reqwest rather than a Google SDK: one GET and one token exchange are
//! all kondate needs, and the SDK crates pull in a large dependency tree. The JWT is
//! signed with `ring`, which the TLS stack already builds.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;

use crate::LabelsError;
use crate::cells::Cell;
use crate::definition::{LabelSet, SourceDef};
use crate::source::Grid;

/// The public API's address; `api_base` in the definition overrides it.
pub const DEFAULT_API_BASE: &str = "https://sheets.googleapis.com";
/// Read-only access to spreadsheets is all a sync needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/spreadsheets.readonly";
/// Attempts for a request answered 429 or 5xx.
const ATTEMPTS: u32 = 5;

/// How the API is called: an API key or a service account's bearer token.
#[derive(Clone)]
pub enum Credentials {
    ApiKey(String),
    ServiceAccount(ServiceAccountKey),
}

/// By hand, so that a key never reaches a log through `{:?}`.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::ApiKey(_) => f.write_str("ApiKey(***)"),
            Credentials::ServiceAccount(k) => f.debug_tuple("ServiceAccount").field(k).finish(),
        }
    }
}

/// The fields of a service-account key file that kondate uses.
#[derive(Clone, Deserialize)]
pub struct ServiceAccountKey {
    pub client_email: String,
    pub private_key: String,
    #[serde(default)]
    pub private_key_id: Option<String>,
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
}

/// By hand: the private key is never shown.
impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key", &"***")
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .finish()
    }
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".into()
}

fn err(origin: &str, message: impl Into<String>) -> LabelsError {
    LabelsError::Source {
        origin: origin.to_string(),
        message: message.into(),
    }
}

/// Read the credentials the definition names: the key file (relative to the project) or the
/// environment variable holding an API key. Neither is ever logged.
pub fn credentials(set: &LabelSet) -> Result<Credentials, LabelsError> {
    let SourceDef::GoogleSheets {
        credentials_file,
        api_key_env,
        api_key_file,
        ..
    } = &set.source
    else {
        unreachable!("called for Google Sheets sources only");
    };
    if let Some(file) = credentials_file {
        let path = set.resolve(file);
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| err(&origin, format!("cannot read the service-account key: {e}")))?;
        let key: ServiceAccountKey = serde_json::from_str(&text).map_err(|e| {
            err(
                &origin,
                format!(
                    "is not a service-account key file ({e}); download a JSON key for the \
                     service account in the Google Cloud console"
                ),
            )
        })?;
        return Ok(Credentials::ServiceAccount(key));
    }
    if let Some(file) = api_key_file {
        let path = set.resolve(file);
        let key = std::fs::read_to_string(&path).map_err(|e| {
            err(
                &path.display().to_string(),
                format!("cannot read the API key: {e}"),
            )
        })?;
        return Ok(Credentials::ApiKey(key.trim().to_string()));
    }
    let var = api_key_env.as_deref().expect("checked by the definition");
    match std::env::var(var) {
        Ok(k) if !k.trim().is_empty() => Ok(Credentials::ApiKey(k.trim().to_string())),
        _ => Err(err(
            &format!("label set {}", set.name),
            format!("needs a Google API key in the environment variable {var}, which is not set"),
        )),
    }
}

/// A signed JWT asserting the service account, for the token endpoint.
pub fn jwt_assertion(key: &ServiceAccountKey, now_secs: i64) -> Result<String, String> {
    let der = pem_pkcs8(&key.private_key)?;
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&der)
        .map_err(|e| format!("the private key is not an RSA PKCS#8 key: {e}"))?;
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = &key.private_key_id {
        header["kid"] = kid.clone().into();
    }
    let claims = serde_json::json!({
        "iss": key.client_email,
        "scope": SCOPE,
        "aud": key.token_uri,
        "iat": now_secs,
        "exp": now_secs + 3600,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| "signing the token request failed".to_string())?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// The DER bytes of a `-----BEGIN PRIVATE KEY-----` block.
pub fn pem_pkcs8(pem: &str) -> Result<Vec<u8>, String> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    if body.is_empty() {
        return Err("`private_key` holds no `BEGIN PRIVATE KEY` block".into());
    }
    STANDARD
        .decode(body)
        .map_err(|e| format!("`private_key` is not valid base64: {e}"))
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
}

#[derive(Deserialize)]
struct ValueRange {
    range: Option<String>,
    #[serde(default)]
    values: Vec<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
}

/// What to tell the user for an error answer.
fn explain(status: u16, body: &str, what: &str) -> String {
    let detail = serde_json::from_str::<ErrorBody>(body)
        .map(|b| format!("{} {}", b.error.status, b.error.message))
        .unwrap_or_else(|_| body.chars().take(200).collect());
    let hint = match status {
        400 => "check `range` (e.g. `Labels!A1:F`)",
        401 => "the credentials were refused; check the key",
        403 => {
            "share the spreadsheet with the service account's e-mail (Viewer is enough), or \
             check that the API key may use the Sheets API"
        }
        404 => "check `spreadsheet_id` (the long id in the sheet's URL)",
        429 => "the API's quota is exhausted; try again later",
        _ => "the API failed",
    };
    format!("{what} answered {status}: {}; {hint}", detail.trim())
}

/// Send `req` (built anew per attempt), retrying 429 and 5xx answers with backoff
/// (`Retry-After` when the server gives one).
async fn send_with_retry(
    build: impl Fn() -> reqwest::RequestBuilder,
    origin: &str,
    what: &str,
) -> Result<String, LabelsError> {
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        let resp = build()
            .send()
            .await
            // Without the URL: it may carry the API key.
            .map_err(|e| err(origin, format!("cannot reach {what}: {}", e.without_url())))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp.text().await.map_err(|e| {
            err(
                origin,
                format!("reading the answer of {what}: {}", e.without_url()),
            )
        })?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let retryable = status == 429 || status >= 500;
        if !retryable || attempt == ATTEMPTS {
            return Err(err(origin, explain(status, &body, what)));
        }
        let wait = retry_after.unwrap_or(delay);
        tracing::warn!(
            status,
            attempt,
            wait_ms = wait.as_millis() as u64,
            "{what} asked to retry"
        );
        tokio::time::sleep(wait).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
    unreachable!("the loop returns on its last attempt")
}

/// The cell of an unformatted value.
fn cell(v: &serde_json::Value) -> Cell {
    match v {
        serde_json::Value::Null => Cell::Empty,
        serde_json::Value::String(s) if s.is_empty() => Cell::Empty,
        serde_json::Value::String(s) if s.starts_with('#') && is_sheet_error(s) => {
            Cell::Error(s.clone())
        }
        serde_json::Value::String(s) => Cell::Text(s.clone()),
        serde_json::Value::Number(n) => Cell::Number(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::Bool(b) => Cell::Bool(*b),
        other => Cell::Text(other.to_string()),
    }
}

/// Google Sheets' error values, which UNFORMATTED_VALUE returns as text.
fn is_sheet_error(s: &str) -> bool {
    matches!(
        s,
        "#N/A" | "#REF!" | "#VALUE!" | "#DIV/0!" | "#NAME?" | "#NUM!" | "#NULL!" | "#ERROR!"
    )
}

/// Where the returned range starts: `Labels!B3:F10` → (row 3, column index 1).
pub fn range_start(range: &str) -> (usize, usize) {
    let cells = range.rsplit('!').next().unwrap_or(range);
    let first = cells.split(':').next().unwrap_or(cells);
    let letters: String = first
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    let digits: String = first[letters.len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    // Not a cell reference (e.g. a bare sheet name, the whole sheet): it starts at A1.
    if letters.len() > 3 || letters.len() + digits.len() != first.len() {
        return (1, 0);
    }
    let col = letters
        .to_ascii_uppercase()
        .bytes()
        .fold(0usize, |acc, b| acc * 26 + (b - b'A' + 1) as usize)
        .saturating_sub(1);
    (digits.parse().unwrap_or(1), col)
}

/// Read the definition's range.
pub async fn read(set: &LabelSet) -> Result<Grid, LabelsError> {
    let SourceDef::GoogleSheets {
        spreadsheet_id,
        range,
        api_base,
        ..
    } = &set.source
    else {
        unreachable!("called for Google Sheets sources only");
    };
    let origin = format!("spreadsheet {spreadsheet_id} range {range}");
    let base = api_base
        .as_deref()
        .unwrap_or(DEFAULT_API_BASE)
        .trim_end_matches('/');
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| err(&origin, e.to_string()))?;
    let mut url = reqwest::Url::parse(&format!("{base}/v4/spreadsheets/"))
        .map_err(|e| err(&origin, format!("`api_base` is not a URL: {e}")))?;
    url.path_segments_mut()
        .map_err(|_| err(&origin, "`api_base` cannot be a base URL"))?
        .pop_if_empty()
        .push(spreadsheet_id)
        .push("values")
        .push(range);
    url.query_pairs_mut()
        .append_pair("majorDimension", "ROWS")
        .append_pair("valueRenderOption", "UNFORMATTED_VALUE")
        .append_pair("dateTimeRenderOption", "SERIAL_NUMBER");
    let body = match credentials(set)? {
        // In the header Google documents for it (`X-Goog-Api-Key`), not in `?key=`: a URL
        // ends up in errors, logs and proxies.
        Credentials::ApiKey(key) => {
            send_with_retry(
                || http.get(url.clone()).header("x-goog-api-key", &key),
                &origin,
                "the Sheets API",
            )
            .await?
        }
        Credentials::ServiceAccount(key) => {
            let now = chrono::Utc::now().timestamp();
            let assertion = jwt_assertion(&key, now).map_err(|m| err(&origin, m))?;
            let form = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ];
            let token = send_with_retry(
                || http.post(&key.token_uri).form(&form),
                &origin,
                "the token endpoint",
            )
            .await?;
            let token: TokenResponse = serde_json::from_str(&token)
                .map_err(|e| err(&origin, format!("the token endpoint's answer: {e}")))?;
            send_with_retry(
                || http.get(url.clone()).bearer_auth(&token.access_token),
                &origin,
                "the Sheets API",
            )
            .await?
        }
    };
    let vr: ValueRange = serde_json::from_str(&body).map_err(|e| {
        err(
            &origin,
            format!("the Sheets API's answer is not a ValueRange: {e}"),
        )
    })?;
    let (first_row, first_col) = range_start(vr.range.as_deref().unwrap_or(range));
    Ok(Grid {
        rows: vr
            .values
            .iter()
            .map(|row| row.iter().map(cell).collect())
            .collect(),
        first_row,
        first_col,
        origin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_start_where_the_a1_notation_says() {
        assert_eq!(range_start("Labels!A1:F"), (1, 0));
        assert_eq!(range_start("'My Sheet'!C5:Z100"), (5, 2));
        assert_eq!(range_start("AB12"), (12, 27));
        assert_eq!(range_start("Sheet1"), (1, 0));
    }

    #[test]
    fn unformatted_values_become_cells() {
        use serde_json::json;
        assert_eq!(cell(&json!("主菜")), Cell::Text("主菜".into()));
        assert_eq!(cell(&json!(45293)), Cell::Number(45293.0));
        assert_eq!(cell(&json!(true)), Cell::Bool(true));
        assert_eq!(cell(&json!("")), Cell::Empty);
        assert_eq!(cell(&json!("#N/A")), Cell::Error("#N/A".into()));
    }

    #[test]
    fn errors_say_what_to_do() {
        let body = r#"{"error":{"code":403,"message":"The caller does not have permission","status":"PERMISSION_DENIED"}}"#;
        let m = explain(403, body, "the Sheets API");
        assert!(
            m.contains("PERMISSION_DENIED The caller does not have permission"),
            "{m}"
        );
        assert!(m.contains("share the spreadsheet"), "{m}");
    }
}
