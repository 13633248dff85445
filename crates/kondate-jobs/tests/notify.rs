//! Notifications for real: events of instances run by a worker become notices sent to a
//! local HTTP receiver that speaks as Slack's incoming webhooks and a generic webhook do
//! (the signature checked), and to a local SMTP server; a notice the receiver refuses is
//! retried with backoff and recorded; two notifiers reading the same events record each
//! notice once; long runs, reminders and a definition that fails to load are noticed once
//! — on SQLite here, PostgreSQL and MariaDB in CI.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use common::Fixture;
use kondate_core::SystemClock;
use kondate_core::config::{Destination, DestinationKind, NotificationsSection};
use kondate_jobs::executor::{Executor, WorkerConfig};
use kondate_jobs::scheduler::{ERROR, SUCCESS};
use kondate_jobs::{Loaded, Notifier, Scheduler};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Got {
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// A local HTTP receiver: records every POST; answers `fail_first` requests to a path
/// with the status there, then 200 `ok` (as Slack does).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    fail: Arc<Mutex<BTreeMap<String, (u16, usize)>>>,
}

impl Receiver {
    async fn start(&self) -> String {
        use axum::extract::State;
        use axum::http::{HeaderMap, StatusCode, Uri};
        async fn take(
            State(r): State<Receiver>,
            uri: Uri,
            headers: HeaderMap,
            body: axum::body::Bytes,
        ) -> (StatusCode, &'static str) {
            let path = uri.path().to_string();
            r.got.lock().unwrap().push(Got {
                path: path.clone(),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect(),
                body: body.to_vec(),
            });
            let mut fail = r.fail.lock().unwrap();
            if let Some((status, left)) = fail.get_mut(&path)
                && *left > 0
            {
                *left -= 1;
                return (StatusCode::from_u16(*status).unwrap(), "no_service");
            }
            (StatusCode::OK, "ok")
        }
        let app = axum::Router::new()
            .fallback(axum::routing::post(take))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    fn fail(&self, path: &str, status: u16, times: usize) {
        self.fail
            .lock()
            .unwrap()
            .insert(path.to_string(), (status, times));
    }

    fn at(&self, path: &str) -> Vec<Got> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.path == path)
            .cloned()
            .collect()
    }
}

/// A local SMTP server (RFC 5321's exchange, no extensions): every message's DATA.
async fn smtp_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let mails = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let kept = mails.clone();
    tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            let mails = kept.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 localhost ESMTP test\r\n").await.unwrap();
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 localhost\r\n",
                        "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 OK\r\n",
                        "DATA" => {
                            w.write_all(b"354 end with <CRLF>.<CRLF>\r\n")
                                .await
                                .unwrap();
                            let mut data = String::new();
                            loop {
                                line.clear();
                                r.read_line(&mut line).await.unwrap();
                                if line == ".\r\n" {
                                    break;
                                }
                                data.push_str(&line);
                            }
                            mails.lock().unwrap().push(data);
                            b"250 OK queued\r\n"
                        }
                        "QUIT" => {
                            w.write_all(b"221 bye\r\n").await.unwrap();
                            return;
                        }
                        _ => b"502 not implemented\r\n",
                    };
                    w.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (format!("smtp://{addr}"), mails)
}

fn destination(kind: DestinationKind) -> Destination {
    Destination {
        kind,
        url: None,
        url_env: None,
        url_file: None,
        secret_env: None,
        secret_file: None,
        smtp: None,
        username: None,
        password_env: None,
        password_file: None,
        from: None,
        to: Vec::new(),
    }
}

const KEY: &str = "webhook-signing-key";

/// Destinations `slack`, `hook` and `mail` (secrets in files) on the local receivers;
/// `default` the defaults.
fn config(f: &Fixture, http: &str, smtp: &str, default: &[&str]) -> NotificationsSection {
    let file = |name: &str, text: &str| {
        let p = f.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        Some(p)
    };
    let mut slack = destination(DestinationKind::Slack);
    slack.url_file = file("slack-url", &format!("{http}/slack\n"));
    let mut hook = destination(DestinationKind::Webhook);
    hook.url = Some(format!("{http}/hook"));
    hook.secret_file = file("hook-key", KEY);
    let mut mail = destination(DestinationKind::Email);
    mail.smtp = Some(smtp.to_string());
    mail.from = Some("kondate@example.com".into());
    mail.to = vec!["ml@example.com".into()];
    let mut broken = destination(DestinationKind::Webhook);
    broken.url = Some(format!("{http}/broken"));
    broken.secret_file = file("hook-key", KEY);
    NotificationsSection {
        default: default.iter().map(|s| s.to_string()).collect(),
        attempts: 3,
        destinations: [
            ("slack".to_string(), slack),
            ("hook".to_string(), hook),
            ("mail".to_string(), mail),
            ("broken".to_string(), broken),
        ]
        .into(),
        ..NotificationsSection::default()
    }
}

/// A process's view: its scheduler, executor and notifier.
async fn process(f: &Fixture, cfg: &NotificationsSection) -> (Scheduler, Executor, Notifier) {
    let (scheduler, executor) = common::process(f).await;
    let notifier = Notifier::new(
        scheduler.database().clone(),
        scheduler.clone(),
        executor.clone(),
        cfg.clone(),
        "recipes".into(),
        "http://kondate.example:7878/".into(),
    );
    (scheduler, executor, notifier)
}

fn worker(f: &Fixture) -> WorkerConfig {
    common::worker(f, "w")
}

use common::def_with as job;

/// Launch `name` by hand and run it to its end.
async fn run(f: &Fixture, s: &Scheduler, ex: &Executor, name: &str) -> (i64, String) {
    let id = s
        .launch(
            name,
            &[],
            "manual",
            None,
            Some("user:ana@example.com"),
            Utc::now(),
        )
        .await
        .unwrap();
    (id, finish(f, s, ex, id).await)
}

async fn finish(f: &Fixture, s: &Scheduler, ex: &Executor, id: i64) -> String {
    ex.advance(id, Utc::now()).await.unwrap();
    let cfg = worker(f);
    while ex.work_once(&cfg, &SystemClock).await.unwrap() {}
    s.instance(id).await.unwrap().status
}

fn kinds(got: &[Got], field: impl Fn(&serde_json::Value) -> String) -> Vec<String> {
    got.iter()
        .map(|g| field(&serde_json::from_slice(&g.body).unwrap()))
        .collect()
}

async fn failures_reach_slack_a_signed_webhook_and_mail_with_retries(f: Fixture) {
    let receiver = Receiver::default();
    let http = receiver.start().await;
    let (smtp, mails) = smtp_server().await;
    let cfg = config(&f, &http, &smtp, &["slack"]);
    let (s, ex, n) = process(&f, &cfg).await;
    let (_, _, n2) = process(&f, &cfg).await;
    let marker = f.dir.path().join("fixed");
    s.load(
        &[
            job(
                "train",
                &format!(
                    "execute: echo epoch 1; echo 'loss went <NaN> & stopped' >&2; test -f {} || exit 3\n",
                    marker.display()
                ),
                json!({ "notifications": { "on": "all", "to": ["slack", "hook", "mail"] } }),
            ),
            // Problems only, to the default destination.
            job("quiet", "noop:\n", json!({})),
        ],
        Utc::now(),
    )
    .await
    .unwrap();
    // The first pass starts at the newest event: what happened before is not notified.
    assert_eq!(n.enqueue(Utc::now()).await.unwrap(), 0);

    let (id, status) = run(&f, &s, &ex, "train").await;
    assert_eq!(status, ERROR);
    assert_eq!(run(&f, &s, &ex, "quiet").await.1, SUCCESS);
    // Two notifiers read the same events at once: each notice is recorded once.
    let (a, b) = tokio::join!(n.enqueue(Utc::now()), n2.enqueue(Utc::now()));
    assert_eq!(
        a.unwrap() + b.unwrap(),
        6,
        "launched and failed, to three destinations"
    );
    assert_eq!(n.enqueue(Utc::now()).await.unwrap(), 0);

    // Slack refuses the first with a 500: retried after a backoff; the rest are sent.
    receiver.fail("/slack", 500, 1);
    let now = Utc::now();
    let r = n.deliver(now).await.unwrap();
    assert_eq!((r.sent, r.retrying, r.failed), (5, 1, 0), "{r:?}");
    assert_eq!(
        n.deliver(now).await.unwrap().sent,
        0,
        "not due before its backoff"
    );
    let waiting = n.list(Some("pending"), None, 10).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].attempts, 1);
    assert!(
        waiting[0].error.as_deref().unwrap().contains("500"),
        "{waiting:?}"
    );
    let later = now + chrono::Duration::seconds(31);
    assert_eq!(n.deliver(later).await.unwrap().sent, 1);
    let all = n.list(None, Some("train"), 100).await.unwrap();
    assert_eq!(all.len(), 6);
    assert!(all.iter().all(|d| d.status == "sent"), "{all:?}");
    assert_eq!(all.iter().map(|d| d.attempts).max(), Some(2));

    // Slack: Block Kit, the failure's header, the instance's link, the step, the log's end.
    let slack = receiver.at("/slack");
    assert_eq!(slack.len(), 3, "two tries of one, one of the other");
    let failed: serde_json::Value = slack
        .iter()
        .map(|g| serde_json::from_slice::<serde_json::Value>(&g.body).unwrap())
        .find(|m| m["blocks"][0]["text"]["text"] == "train failed")
        .expect("the failure reached Slack");
    assert_eq!(failed["blocks"][0]["type"], "header");
    let section = failed["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(
        section.contains(&format!(
            "<http://kondate.example:7878/v1/instances/{id}|Instance {id}>"
        )) && section.contains("step `L1 execute: echo epoch 1"),
        "{section}"
    );
    let log = failed["blocks"][2]["text"]["text"].as_str().unwrap();
    assert!(
        log.contains("out epoch 1") && log.contains("err loss went &lt;NaN&gt; &amp; stopped"),
        "{log}"
    );
    assert!(failed["text"].as_str().unwrap().contains("train failed"));

    // The webhook: signed body with id and timestamp; the id is the header's.
    let hooks = receiver.at("/hook");
    assert_eq!(
        kinds(&hooks, |b| b["event"].as_str().unwrap().to_string()),
        ["launched", "failed"]
    );
    for h in &hooks {
        assert_eq!(
            h.headers["x-kondate-signature"],
            kondate_jobs::deliver::sign(KEY.as_bytes(), &h.body)
        );
        let body: serde_json::Value = serde_json::from_slice(&h.body).unwrap();
        assert_eq!(body["id"].as_str().unwrap(), h.headers["x-kondate-id"]);
        assert!(DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok());
        assert_eq!(body["job"], "train");
        assert_eq!(body["instance"], id);
    }
    assert_ne!(
        kondate_jobs::deliver::sign(b"another key", &hooks[0].body),
        hooks[0].headers["x-kondate-signature"]
    );

    // Mail: one per notice, the title as subject, the log's last lines in the body.
    let mails = mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 2);
    let failure = mails
        .iter()
        .find(|m| m.contains("Subject: [kondate recipes] train failed"))
        .expect("the failure's mail");
    assert!(failure.contains("To: ml@example.com"), "{failure}");
    assert!(failure.contains("loss went <NaN> & stopped"), "{failure}");

    // Fixed and retried: `retried`, then `back to normal` (a success after a failure).
    std::fs::write(&marker, "").unwrap();
    ex.retry(id, Utc::now()).await.unwrap();
    assert_eq!(finish(&f, &s, &ex, id).await, SUCCESS);
    n.enqueue(Utc::now()).await.unwrap();
    n.deliver(Utc::now()).await.unwrap();
    let hooks = receiver.at("/hook");
    assert_eq!(
        kinds(&hooks, |b| b["event"].as_str().unwrap().to_string()),
        ["launched", "failed", "retried", "back_to_normal"]
    );
    // The next success is plain `finished`; `quiet` (problems only) never notified.
    assert_eq!(run(&f, &s, &ex, "train").await.1, SUCCESS);
    n.enqueue(Utc::now()).await.unwrap();
    n.deliver(Utc::now()).await.unwrap();
    let events = kinds(&receiver.at("/hook"), |b| {
        b["event"].as_str().unwrap().to_string()
    });
    assert_eq!(&events[4..], ["launched", "finished"]);
    assert!(
        receiver
            .at("/slack")
            .iter()
            .all(|g| !String::from_utf8_lossy(&g.body).contains("quiet")),
        "a job on problems sends no launch or finish"
    );
}
on_every_state_database!(
    "n_",
    notices_reach_every_destination,
    failures_reach_slack_a_signed_webhook_and_mail_with_retries
);

async fn long_runs_reminders_and_load_errors_are_noticed_once(f: Fixture) {
    let receiver = Receiver::default();
    let http = receiver.start().await;
    let cfg = config(&f, &http, "smtp://127.0.0.1:1", &["hook"]);
    let (s, ex, n) = process(&f, &cfg).await;
    s.load(
        &[
            // A step no worker takes for a long while: the instance stays WORKING.
            job("slow", "sleep: 1000000\n", json!({ "expected_time": 1 })),
            job("broken", "execute: exit 1\n", json!({})),
        ],
        Utc::now(),
    )
    .await
    .unwrap();
    n.enqueue(Utc::now()).await.unwrap();

    // `slow` works past its expected minute: noticed once, again only an hour later.
    let t0 = Utc::now();
    let slow = s
        .launch("slow", &[], "manual", None, None, t0)
        .await
        .unwrap();
    ex.advance(slow, t0).await.unwrap();
    let min = chrono::Duration::minutes;
    assert_eq!(
        n.watch(t0 + chrono::Duration::seconds(30)).await.unwrap(),
        0
    );
    assert_eq!(n.watch(t0 + min(2)).await.unwrap(), 1);
    assert_eq!(n.watch(t0 + min(3)).await.unwrap(), 0);
    assert_eq!(n.watch(t0 + min(63)).await.unwrap(), 1);

    // `broken` stays in ERROR: a reminder every remind_every (a day), not before.
    let (broken, status) = run(&f, &s, &ex, "broken").await;
    assert_eq!(status, ERROR);
    let day = chrono::Duration::days(1);
    let now = Utc::now();
    assert_eq!(n.watch(now + min(5)).await.unwrap(), 0);
    let (a, b) = tokio::join!(n.watch(now + day + min(1)), n.watch(now + day + min(1)));
    // (slow's hourly notice is due again too; broken's reminder is recorded once of two.)
    assert_eq!(a.unwrap() + b.unwrap(), 2);
    assert_eq!(n.watch(now + day + min(2)).await.unwrap(), 0);

    // A definition that stops loading: noticed once per new error, not at every reload.
    let bad = Loaded::Failed {
        name: "slow".into(),
        error:
            "jobs/slow.jsonnet: field `schedules[0].cron`: `61 * * * *`: minute 61 is out of range"
                .into(),
    };
    for _ in 0..3 {
        s.load(
            &[
                bad.clone_failed(),
                job("broken", "execute: exit 1\n", json!({})),
            ],
            Utc::now(),
        )
        .await
        .unwrap();
    }

    n.enqueue(Utc::now()).await.unwrap();
    let r = n.deliver(Utc::now()).await.unwrap();
    assert_eq!(r.failed, 0, "{r:?}");
    let bodies: Vec<serde_json::Value> = receiver
        .at("/hook")
        .iter()
        .map(|g| serde_json::from_slice(&g.body).unwrap())
        .collect();
    let mut events: Vec<String> = bodies
        .iter()
        .map(|b| {
            format!(
                "{} {}",
                b["event"].as_str().unwrap(),
                b["job"].as_str().unwrap_or("")
            )
        })
        .collect();
    // (The two watchers of one moment may record their events in either order.)
    events.sort();
    assert_eq!(
        events,
        [
            "definition_failed slow",
            "failed broken",
            "long_running slow",
            "long_running slow",
            "long_running slow",
            "still_failing broken",
        ],
        "problems only, each once"
    );
    let of = |event: &str| bodies.iter().find(|b| b["event"] == event).unwrap();
    let text = of("definition_failed")["text"].as_str().unwrap();
    assert!(
        text.contains("minute 61") && text.contains("keeps running"),
        "{text}"
    );
    assert_eq!(of("still_failing")["instance"], broken);
    assert!(
        of("long_running")["text"]
            .as_str()
            .unwrap()
            .contains("expected to take 1 min"),
        "{}",
        of("long_running")
    );
    assert_eq!(s.instance(slow).await.unwrap().status, "working");
}
on_every_state_database!(
    "n_",
    watched_and_load_errors,
    long_runs_reminders_and_load_errors_are_noticed_once
);

/// A destination that refuses for good (4xx), one that keeps failing (5xx) until the tries
/// run out, one kondate.toml does not name and an SMTP server that is not there: each
/// recorded failed with why — and the job they report on is unaffected.
async fn undeliverable_notices_are_recorded_and_never_fail_the_job(f: Fixture) {
    let receiver = Receiver::default();
    let http = receiver.start().await;
    let cfg = config(&f, &http, "smtp://127.0.0.1:1", &["hook"]);
    let (s, ex, n) = process(&f, &cfg).await;
    s.load(
        &[job(
            "train",
            "noop:\n",
            json!({ "notifications": { "on": "all", "to": ["slack", "broken", "nowhere", "mail"] } }),
        )],
        Utc::now(),
    )
    .await
    .unwrap();
    n.enqueue(Utc::now()).await.unwrap();
    receiver.fail("/slack", 404, 100);
    receiver.fail("/broken", 503, 100);
    assert_eq!(run(&f, &s, &ex, "train").await.1, SUCCESS);
    assert_eq!(n.enqueue(Utc::now()).await.unwrap(), 8);
    let mut now = Utc::now();
    for _ in 0..4 {
        n.deliver(now).await.unwrap();
        now += chrono::Duration::hours(2);
    }
    let all = n.list(None, None, 100).await.unwrap();
    assert!(all.iter().all(|d| d.status == "failed"), "{all:#?}");
    let by = |dest: &str| {
        all.iter()
            .filter(|d| d.destination == dest)
            .collect::<Vec<_>>()
    };
    // Slack's 404 is final at once; the 503s are tried `attempts` (3) times.
    assert!(by("slack").iter().all(|d| d.attempts == 1
        && d.error.as_deref().unwrap().contains("404")
        && !d.error.as_deref().unwrap().contains(&http)));
    assert!(by("broken").iter().all(|d| d.attempts == 3));
    assert_eq!(receiver.at("/broken").len(), 6);
    assert!(by("nowhere").iter().all(|d| {
        d.attempts == 0
            && d.error
                .as_deref()
                .unwrap()
                .contains("[notifications.destinations.nowhere]")
    }));
    assert!(by("mail").iter().all(|d| d.attempts == 3));
    assert_eq!(s.instances("train", 10).await.unwrap()[0].status, SUCCESS);
}
on_every_state_database!(
    "n_",
    undeliverable,
    undeliverable_notices_are_recorded_and_never_fail_the_job
);

trait CloneFailed {
    fn clone_failed(&self) -> Loaded;
}

impl CloneFailed for Loaded {
    fn clone_failed(&self) -> Loaded {
        match self {
            Loaded::Failed { name, error } => Loaded::Failed {
                name: name.clone(),
                error: error.clone(),
            },
            Loaded::Ok(d) => Loaded::Ok(d.clone()),
        }
    }
}
