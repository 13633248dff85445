//! Sending a notice to a destination: a Slack incoming webhook (Block Kit), a generic
//! webhook (JSON signed with HMAC-SHA256), or e-mail over SMTP. What a notice says is
//! decided before ([`crate::notify`]); here it is rendered in each wire format and sent, and
//! a failure is told apart as worth retrying (network, 429, 5xx, a transient SMTP reply) or
//! not (any other 4xx, a permanent SMTP reply, a missing secret).
//!
//! Secrets — the Slack URL, the webhook key, the SMTP password — are read from the
//! environment or a file when sending, and never appear in a message: HTTP errors are
//! stripped of their URL.

use std::time::Duration;

use hmac::{Hmac, Mac};
use kondate_core::config::{Destination, DestinationKind};
use sha2::Sha256;

/// What a notification says, decided when its event is read and stored with it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Notice {
    /// `failed`, `back_to_normal`, `launched`, … (docs/jobs.md#notifications).
    pub kind: String,
    /// One line: `weekly_training failed`.
    pub title: String,
    /// A sentence or two: what happened and what to do.
    pub text: String,
    pub project: String,
    pub job: Option<String>,
    pub instance: Option<i64>,
    /// The instance in the API (`{server.public_url}/v1/instances/ID`).
    pub link: Option<String>,
    /// The step concerned: `L3 execute: make train`.
    pub step: Option<String>,
    /// The step log's last lines (already masked when captured).
    pub log_tail: Vec<String>,
    /// When the event happened (RFC 3339).
    pub at: String,
    /// The event as recorded.
    pub details: serde_json::Value,
}

impl Notice {
    /// Whether the notice is about something that needs a person.
    pub fn is_problem(&self) -> bool {
        is_problem(&self.kind)
    }
}

/// The problem kinds: sent to jobs that notify on `problems` (and on `all`).
pub fn is_problem(kind: &str) -> bool {
    matches!(
        kind,
        "failed"
            | "back_to_normal"
            | "long_running"
            | "still_failing"
            | "worker_lost"
            | "definition_failed"
    )
}

/// How sending failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Worth trying again later.
    Retry(String),
    /// Trying again will not help (bad URL or payload, refused address, missing secret).
    Permanent(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Retry(m) | SendError::Permanent(m) => f.write_str(m),
        }
    }
}

/// The sender: one HTTP client for every webhook.
#[derive(Clone)]
pub struct Sender {
    http: reqwest::Client,
}

impl Default for Sender {
    fn default() -> Self {
        Sender::new()
    }
}

impl Sender {
    pub fn new() -> Sender {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            // A redirect would carry the signed body somewhere the key's owner did not name.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("kondate/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("HTTP client");
        Sender { http }
    }

    /// Send `notice` to destination `name`; `delivery` is its stable id (the same on every
    /// try, so a receiver can drop a repeat).
    pub async fn send(
        &self,
        name: &str,
        dest: &Destination,
        delivery: &str,
        notice: &Notice,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), SendError> {
        match dest.kind {
            DestinationKind::Slack => {
                let url = secret(name, "url", &dest.url_env, &dest.url_file)?;
                let body = serde_json::to_vec(&slack_message(notice)).expect("JSON");
                self.post(&url, body, &[]).await
            }
            DestinationKind::Webhook => {
                let url = match &dest.url {
                    Some(u) => u.clone(),
                    None => secret(name, "url", &dest.url_env, &dest.url_file)?,
                };
                let key = secret(name, "secret", &dest.secret_env, &dest.secret_file)?;
                let body = webhook_body(delivery, notice, now);
                let signature = sign(key.as_bytes(), &body);
                self.post(
                    &url,
                    body,
                    &[
                        ("X-Kondate-Id", delivery),
                        ("X-Kondate-Signature", &signature),
                    ],
                )
                .await
            }
            DestinationKind::Email => send_mail(name, dest, notice).await,
        }
    }

    async fn post(
        &self,
        url: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Result<(), SendError> {
        let mut req = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.map_err(|e| {
            // Without the URL: a Slack webhook URL is the secret itself.
            SendError::Retry(format!("could not reach the endpoint: {}", e.without_url()))
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        let text: String = text.chars().take(200).collect();
        let message = format!("the endpoint answered {status}: {}", text.trim());
        if status.as_u16() == 429 || status.is_server_error() {
            Err(SendError::Retry(message))
        } else {
            Err(SendError::Permanent(message))
        }
    }
}

/// A secret of destination `name`: from the variable `env` names, or the file.
fn secret(
    name: &str,
    what: &str,
    env: &Option<String>,
    file: &Option<std::path::PathBuf>,
) -> Result<String, SendError> {
    let field = format!("notifications.destinations.{name}.{what}");
    match (env, file) {
        (Some(var), _) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            _ => Err(SendError::Permanent(format!(
                "the environment variable {var} ({field}_env) is not set in kondate's \
                 environment; set it where `kondate serve` runs"
            ))),
        },
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            Ok(_) => Err(SendError::Permanent(format!(
                "{} ({field}_file) is empty",
                path.display()
            ))),
            Err(e) => Err(SendError::Permanent(format!(
                "cannot read {} ({field}_file): {e}",
                path.display()
            ))),
        },
        (None, None) => Err(SendError::Permanent(format!("{field} is not configured"))),
    }
}

/// `sha256=` and the HMAC-SHA256 of `body` under `key`, in hex: the `X-Kondate-Signature`.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The generic webhook's body: the notice with its delivery id and the time of this try
/// (signed with it, so a receiver can refuse an old body replayed).
pub fn webhook_body(
    delivery: &str,
    notice: &Notice,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<u8> {
    let body = serde_json::json!({
        "id": delivery,
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "event": notice.kind,
        "title": notice.title,
        "text": notice.text,
        "project": notice.project,
        "job": notice.job,
        "instance": notice.instance,
        "link": notice.link,
        "step": notice.step,
        "log_tail": notice.log_tail,
        "at": notice.at,
        "details": notice.details,
    });
    serde_json::to_vec(&body).expect("JSON")
}

/// Slack's mrkdwn needs `&`, `<` and `>` escaped, everywhere (code blocks too).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters of `text`, cut at a character boundary with `…`.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// The end of `text` within `max` characters (a log's last lines matter most).
fn cut_front(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max {
        return text.to_string();
    }
    let mut s = String::from("…");
    s.extend(text.chars().skip(n - max + 1));
    s
}

fn emoji(kind: &str) -> &'static str {
    match kind {
        "failed" | "worker_lost" | "definition_failed" => ":x:",
        "still_failing" => ":rotating_light:",
        "long_running" => ":hourglass:",
        "back_to_normal" | "finished" => ":white_check_mark:",
        "cancelled" => ":no_entry_sign:",
        _ => ":information_source:",
    }
}

/// The Slack incoming-webhook message: `text` (the fallback shown in notifications) and
/// Block Kit blocks — a header, what happened with the instance's link and the step, the
/// log's last lines, and a context line. Slack's limits are kept: a header's text at most
/// 150 characters, a section's 3,000.
pub fn slack_message(notice: &Notice) -> serde_json::Value {
    let mut summary = escape(&notice.text);
    if let (Some(link), Some(id)) = (&notice.link, notice.instance) {
        summary.push_str(&format!("\n<{}|Instance {id}>", escape(link)));
    }
    if let Some(step) = &notice.step {
        summary.push_str(&format!(" · step `{}`", escape(step)));
    }
    let mut blocks = vec![
        serde_json::json!({
            "type": "header",
            "text": { "type": "plain_text", "text": cut(&notice.title, 150), "emoji": true },
        }),
        serde_json::json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": cut(&summary, 3000) },
        }),
    ];
    if !notice.log_tail.is_empty() {
        let log = escape(&notice.log_tail.join("\n"));
        blocks.push(serde_json::json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": format!("```{}```", cut_front(&log, 2990)) },
        }));
    }
    let mut context = format!("{} · {}", escape(&notice.project), escape(&notice.at));
    if let Some(job) = &notice.job {
        context = format!("job `{}` · {context}", escape(job));
    }
    blocks.push(serde_json::json!({
        "type": "context",
        "elements": [{ "type": "mrkdwn", "text": cut(&context, 3000) }],
    }));
    serde_json::json!({
        "text": format!("{} {}", emoji(&notice.kind), notice.title),
        "blocks": blocks,
    })
}

/// The e-mail: subject `[kondate PROJECT] TITLE`, a plain-text body.
pub fn mail_text(notice: &Notice) -> (String, String) {
    let subject = format!("[kondate {}] {}", notice.project, notice.title);
    let mut body = format!("{}\n\n", notice.text);
    if let Some(link) = &notice.link {
        body.push_str(&format!("Instance: {link}\n"));
    }
    if let Some(step) = &notice.step {
        body.push_str(&format!("Step: {step}\n"));
    }
    body.push_str(&format!("At: {}\n", notice.at));
    if !notice.log_tail.is_empty() {
        body.push_str("\nLast lines of the step's log:\n\n");
        for l in &notice.log_tail {
            body.push_str("    ");
            body.push_str(l);
            body.push('\n');
        }
    }
    (subject, body)
}

async fn send_mail(name: &str, dest: &Destination, notice: &Notice) -> Result<(), SendError> {
    use lettre::message::{Mailbox, header::ContentType};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    let field = |f: &str| format!("notifications.destinations.{name}.{f}");
    let mailbox = |f: &str, v: &str| {
        v.parse::<Mailbox>().map_err(|e| {
            SendError::Permanent(format!("{}: `{v}` is not an e-mail address: {e}", field(f)))
        })
    };
    let (subject, body) = mail_text(notice);
    let mut message = Message::builder()
        .from(mailbox("from", dest.from.as_deref().unwrap_or_default())?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    for to in &dest.to {
        message = message.to(mailbox("to", to)?);
    }
    let message = message
        .body(body)
        .map_err(|e| SendError::Permanent(format!("the message cannot be built: {e}")))?;
    let url = dest.smtp.as_deref().unwrap_or_default();
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map_err(|e| SendError::Permanent(format!("{}: {e}", field("smtp"))))?
        .timeout(Some(Duration::from_secs(30)));
    if let Some(user) = &dest.username {
        let password = match (&dest.password_env, &dest.password_file) {
            (None, None) => String::new(),
            (env, file) => secret(name, "password", env, file)?,
        };
        transport = transport.credentials(Credentials::new(user.clone(), password));
    }
    transport
        .build()
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| {
            let message = format!("the SMTP server refused or could not be reached: {e}");
            if e.is_permanent() {
                SendError::Permanent(message)
            } else {
                SendError::Retry(message)
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice() -> Notice {
        Notice {
            kind: "failed".into(),
            title: "weekly_training failed".into(),
            text: "Step L3 failed: exit code 2 <see log> & retry".into(),
            project: "recipes".into(),
            job: Some("weekly_training".into()),
            instance: Some(12),
            link: Some("http://127.0.0.1:7878/v1/instances/12".into()),
            step: Some("L3 execute: make train".into()),
            log_tail: vec!["out epoch 1".into(), "err boom <oops>".into()],
            at: "2026-12-01T03:00:00.000Z".into(),
            details: serde_json::json!({"job": "weekly_training", "instance": 12}),
        }
    }

    #[test]
    fn the_signature_is_rfc_4231s_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn slack_blocks_escape_text_and_keep_slacks_limits() {
        let mut n = notice();
        n.title = "t".repeat(400);
        n.log_tail = (0..2000).map(|i| format!("line {i}")).collect();
        let m = slack_message(&n);
        let blocks = m["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(
            blocks[0]["text"]["text"].as_str().unwrap().chars().count(),
            150
        );
        let section = blocks[1]["text"]["text"].as_str().unwrap();
        assert!(section.contains("&lt;see log&gt; &amp; retry"), "{section}");
        assert!(
            section.contains("<http://127.0.0.1:7878/v1/instances/12|Instance 12>"),
            "{section}"
        );
        assert!(
            section.contains("step `L3 execute: make train`"),
            "{section}"
        );
        let log = blocks[2]["text"]["text"].as_str().unwrap();
        assert!(log.chars().count() <= 3000, "{}", log.len());
        assert!(
            log.starts_with("```…") && log.ends_with("line 1999```"),
            "{log}"
        );
        assert!(m["text"].as_str().unwrap().starts_with(":x: "));
        assert_eq!(blocks.last().unwrap()["type"], "context");
    }

    #[test]
    fn the_webhook_body_carries_id_timestamp_and_event() {
        let now = chrono::DateTime::from_timestamp_millis(1_764_558_000_000).unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(&webhook_body("41", &notice(), now)).unwrap();
        assert_eq!(body["id"], "41");
        assert_eq!(body["event"], "failed");
        assert_eq!(body["timestamp"], "2025-12-01T03:00:00.000Z");
        assert_eq!(body["log_tail"][1], "err boom <oops>");
    }

    #[test]
    fn mail_has_the_title_as_subject_and_the_log_in_the_body() {
        let (subject, body) = mail_text(&notice());
        assert_eq!(subject, "[kondate recipes] weekly_training failed");
        assert!(body.contains("Step: L3 execute: make train"));
        assert!(body.contains("    err boom <oops>\n"));
    }

    #[test]
    fn a_missing_secret_says_which_variable_and_field() {
        let e = secret(
            "ops",
            "url",
            &Some("KONDATE_TEST_NO_SUCH_VAR".into()),
            &None,
        )
        .unwrap_err();
        let SendError::Permanent(m) = e else {
            panic!("{e:?}")
        };
        assert!(
            m.contains("KONDATE_TEST_NO_SUCH_VAR")
                && m.contains("notifications.destinations.ops.url_env"),
            "{m}"
        );
    }
}
