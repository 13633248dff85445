//! Users, tokens and the audit trail against real SQLite, PostgreSQL and MariaDB (the last
//! two `#[ignore]`d; `.ci/run` runs them with the URLs set).

use std::sync::Arc;
use std::time::Duration;

use kondate_access::{
    Access, AccessError, AuditEntry, AuditFilter, NewTokenRequest, Outcome, Scope, ScopeKind,
    Scopes, Source, TokenKind,
};
use kondate_core::ManualClock;
use kondate_db::Database;

fn scopes(list: &[&str]) -> Scopes {
    Scopes::new(list.iter().map(|s| Scope::parse(s).unwrap()).collect())
}

fn request(name: &str, owner: &str, list: &[&str]) -> NewTokenRequest {
    NewTokenRequest {
        name: name.into(),
        owner: owner.into(),
        scopes: scopes(list),
        expires_in: None,
        created_by: "test".into(),
    }
}

/// A state database of its own: a temporary SQLite file, or a fresh MySQL database or
/// PostgreSQL schema named after `tag`.
async fn database(url: Option<String>, tag: &str) -> (Database, Option<tempfile::TempDir>) {
    match url {
        Some(url) => {
            let url = kondate_db::isolated_test_database(&url, tag).await.unwrap();
            (Database::connect(&url).await.unwrap(), None)
        }
        None => {
            let dir = tempfile::tempdir().unwrap();
            let db = Database::connect(&format!("sqlite://{}/state.db", dir.path().display()))
                .await
                .unwrap();
            (db, Some(dir))
        }
    }
}

async fn access(db: &Database) -> (Access, Arc<ManualClock>) {
    kondate_db::state::migrate(db).await.unwrap();
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    (Access::new(db.clone(), clock.clone()), clock)
}

async fn tokens_never_hold_more_than_their_owner(url: Option<String>) {
    let (db, _dir) = database(url, "acc_owner").await;
    let (a, _) = access(&db).await;
    a.users
        .add("ML@example.com", &["editor".into()], &[], "test")
        .await
        .unwrap();
    // An editor may not give a token what editors do not have.
    let e = a
        .tokens
        .create(request("deleter", "ml@example.com", &["models:delete"]))
        .await
        .unwrap_err();
    assert!(matches!(e, AccessError::Invalid(_)), "{e}");
    assert!(e.to_string().contains("models:delete"), "{e}");
    // A narrower one is fine.
    let t = a
        .tokens
        .create(request(
            "trainer",
            "ml@example.com",
            &["query", "labels:read", "models:write=recipe-*"],
        ))
        .await
        .unwrap();
    let p = a.authenticate("trainer", &t.secret, None).await.unwrap();
    assert!(p.allows(ScopeKind::ModelsWrite, Some("recipe-category")));
    assert!(!p.allows(ScopeKind::ModelsWrite, Some("ingredient")));
    assert!(!p.allows(ScopeKind::ModelsAlias, Some("recipe-category@production")));
    assert_eq!(p.actor(), "token:trainer");
    // Demoting the owner demotes the token at once.
    a.users
        .set("ml@example.com", &["viewer".into()], &[])
        .await
        .unwrap();
    let p = a.authenticate("trainer", &t.secret, None).await.unwrap();
    assert!(!p.allows(ScopeKind::ModelsWrite, Some("recipe-category")));
    assert!(p.allows(ScopeKind::Query, None));
    // Disabling the owner stops the token.
    a.users.disable("ml@example.com").await.unwrap();
    assert!(matches!(
        a.authenticate("trainer", &t.secret, None).await,
        Err(AccessError::Unauthorized)
    ));
    // And nobody unknown owns tokens.
    let e = a
        .tokens
        .create(request("x", "nobody@example.com", &["query"]))
        .await
        .unwrap_err();
    assert!(matches!(e, AccessError::NotFound(_)), "{e}");
}

async fn tokens_expire_rotate_and_list_their_use(url: Option<String>) {
    let (db, _dir) = database(url, "acc_tokens").await;
    let (a, clock) = access(&db).await;
    a.users
        .add("admin@example.com", &["admin".into()], &[], "test")
        .await
        .unwrap();
    let mut req = request("short", "admin@example.com", &["query"]);
    req.expires_in = Some(Duration::from_secs(3600));
    let t = a.tokens.create(req).await.unwrap();
    assert!(t.expires_at.is_some());
    a.authenticate("short", &t.secret, None).await.unwrap();
    let listed = a.tokens.list().await.unwrap();
    let info = listed.iter().find(|i| i.name == "short").unwrap();
    assert_eq!(info.kind, TokenKind::Token);
    assert_eq!(info.owner.as_deref(), Some("admin@example.com"));
    assert_eq!(info.scopes, ["query"]);
    assert!(info.last_used_at.is_some(), "the use is recorded");
    clock.advance(Duration::from_secs(3601));
    assert!(matches!(
        a.authenticate("short", &t.secret, None).await,
        Err(AccessError::Unauthorized)
    ));
    assert!(!a.tokens.list().await.unwrap()[0].enabled);
    // Rotation: the old secret stops at once, the new one works, the scopes stay.
    let long = a
        .tokens
        .create(request(
            "long",
            "admin@example.com",
            &["query", "runs:read"],
        ))
        .await
        .unwrap();
    a.authenticate("long", &long.secret, None).await.unwrap();
    let rotated = a.tokens.rotate("long").await.unwrap();
    assert!(matches!(
        a.authenticate("long", &long.secret, None).await,
        Err(AccessError::Unauthorized)
    ));
    let p = a.authenticate("long", &rotated.secret, None).await.unwrap();
    assert!(p.allows(ScopeKind::RunsRead, Some("train")));
    assert_eq!(rotated.scopes, ["query", "runs:read"]);
    // Run tokens: scoped, expiring, deleted at the end.
    let run = a
        .tokens
        .create_for_run(
            "r1",
            &scopes(&["query", "results:write=recipe_categories"]),
            Duration::from_secs(60),
            "cli:test",
        )
        .await
        .unwrap();
    let p = a.authenticate("run-r1", &run.secret, None).await.unwrap();
    assert_eq!(p.run_id.as_deref(), Some("r1"));
    assert!(p.allows(ScopeKind::ResultsWrite, Some("recipe_categories")));
    assert!(!p.allows(ScopeKind::ResultsWrite, Some("other")));
    assert!(!p.allows(ScopeKind::ModelsAlias, Some("m@production")));
    a.tokens.delete("run-r1").await.unwrap();
    assert!(a.authenticate("run-r1", &run.secret, None).await.is_err());
    // Names of run tokens are kept for runs.
    assert!(
        a.tokens
            .create(request("run-x", "admin@example.com", &["query"]))
            .await
            .is_err()
    );
}

async fn legacy_tokens_keep_exactly_what_they_could_do(url: Option<String>) {
    let (db, _dir) = database(url, "acc_legacy").await;
    kondate_db::state::migrate_up_to(&db, 4).await.unwrap();
    // A token as version 4 made them: bcrypt hash, no kind, no scopes.
    let secret = "0123456789abcdef";
    let hash = bcrypt::hash(secret, 4).unwrap();
    db.execute(
        "INSERT INTO kondate_tokens (name, secret_hash, enabled, created_at) VALUES (?, ?, ?, ?)",
        &[
            "old".into(),
            hash.into(),
            true.into(),
            kondate_db::Value::Int(1),
        ],
    )
    .await
    .unwrap();
    let (a, _) = access(&db).await;
    let info = a.tokens.list().await.unwrap().remove(0);
    assert_eq!(info.kind, TokenKind::Legacy);
    assert_eq!(
        info.scopes.join(" "),
        kondate_db::state::LEGACY_TOKEN_SCOPES
    );
    let p = a.authenticate("old", secret, None).await.unwrap();
    for kind in [
        ScopeKind::Query,
        ScopeKind::LabelsSync,
        ScopeKind::ModelsAlias,
        ScopeKind::ModelsDelete,
        ScopeKind::ResultsPrune,
        ScopeKind::RunsRead,
    ] {
        assert!(p.allows_every(kind), "{kind}: no silent breakage");
    }
    assert!(!p.is_admin(), "no silent widening");
    assert!(!p.allows(ScopeKind::RunsLaunch, Some("train")));
}

async fn the_audit_trail_records_filters_and_masks(url: Option<String>) {
    let (db, _dir) = database(url, "acc_audit").await;
    let (a, clock) = access(&db).await;
    let mut e = AuditEntry::new(
        Source::Api,
        "token:trainer",
        "models.alias.set",
        Some("recipe-category@production"),
    );
    e.params =
        serde_json::json!({"version": 3, "token_secret": "s3cret", "env": {"DB_PASSWORD": "p"}});
    e.status = Some(200);
    e.client = Some("10.0.0.7".into());
    a.audit.record(e).await.unwrap();
    clock.advance(Duration::from_secs(3600));
    let mut e = AuditEntry::new(Source::Cli, "cli:alice", "tokens.create", Some("trainer"));
    e.outcome = Outcome::Invalid;
    e.status = Some(2);
    e.detail = Some("a token cannot have more scopes than its owner".into());
    a.audit.record(e).await.unwrap();
    let all = a.audit.list(&AuditFilter::default()).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].entry.action, "tokens.create", "newest first");
    let alias = &all[1].entry;
    assert_eq!(alias.params["version"], 3);
    assert_eq!(alias.params["token_secret"], "***");
    assert_eq!(alias.params["env"]["DB_PASSWORD"], "***");
    assert_eq!(alias.client.as_deref(), Some("10.0.0.7"));
    let by = |f: AuditFilter| {
        let a = a.clone();
        async move { a.audit.list(&f).await.unwrap().len() }
    };
    assert_eq!(
        by(AuditFilter {
            actor: Some("token:*".into()),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        by(AuditFilter {
            target: Some("recipe-category@*".into()),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        by(AuditFilter {
            outcome: Some(Outcome::Invalid),
            ..Default::default()
        })
        .await,
        1
    );
    let half_hour_ago =
        kondate_access::parse_since("30m", kondate_core::Clock::now(clock.as_ref())).unwrap();
    assert_eq!(
        by(AuditFilter {
            since_ms: Some(half_hour_ago),
            ..Default::default()
        })
        .await,
        1
    );
    // `%` and `_` in a prefix are plain characters.
    assert_eq!(
        by(AuditFilter {
            actor: Some("token%*".into()),
            ..Default::default()
        })
        .await,
        0
    );
}

/// Console sessions: the cookie's secret is kept only hashed; a session reads its user's
/// scopes as they are now (a demoted user loses at once, a disabled one is signed out);
/// it expires; signing out ends it.
async fn sessions_follow_their_user_and_expire(url: Option<String>) {
    let (db, _dir) = database(url, "sessions").await;
    let (access, clock) = access(&db).await;
    access
        .users
        .add("ml@example.com", &["editor".to_string()], &[], "test")
        .await
        .unwrap();
    let s = &access.sessions;
    let new = s
        .create(
            kondate_access::SessionOf::User("ml@example.com".into()),
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    let stored = db
        .fetch_all("SELECT id_hash FROM kondate_sessions", &[])
        .await
        .unwrap();
    let hash = kondate_db::get_string(&stored[0], "id_hash").unwrap();
    assert_ne!(hash, new.secret, "only the secret's hash is kept");
    let found = s.find(&new.secret).await.unwrap().expect("the session");
    assert_eq!(found.csrf, new.session.csrf);
    let p = s.principal(&found).await.unwrap().unwrap();
    assert_eq!(p.actor(), "user:ml@example.com");
    assert!(p.allows(ScopeKind::ModelsAlias, Some("m@production")));

    access
        .users
        .set("ml@example.com", &["viewer".to_string()], &[])
        .await
        .unwrap();
    let p = s.principal(&found).await.unwrap().unwrap();
    assert!(
        !p.allows(ScopeKind::ModelsAlias, Some("m@production")),
        "demoted at once"
    );
    access.users.disable("ml@example.com").await.unwrap();
    assert!(
        s.principal(&found).await.unwrap().is_none(),
        "disabled: signed out"
    );
    access.users.enable("ml@example.com").await.unwrap();

    assert!(s.find("not-a-session").await.unwrap().is_none());
    clock.advance(Duration::from_secs(3601));
    assert!(s.find(&new.secret).await.unwrap().is_none(), "expired");

    let other = s
        .create(
            kondate_access::SessionOf::Local("local-admin".into()),
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    let p = s
        .principal(&s.find(&other.secret).await.unwrap().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(p.is_admin());
    s.end(&other.secret).await.unwrap();
    assert!(s.find(&other.secret).await.unwrap().is_none(), "signed out");

    // A sign-in under way at a provider: taken once, never a session, and it expires.
    let state = s
        .begin_pending(
            "n0nce",
            "v3rifier",
            "/models/m?x=1",
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    assert!(
        s.find(&state).await.unwrap().is_none(),
        "a state is not a session"
    );
    let p = s.take_pending(&state).await.unwrap().expect("pending");
    assert_eq!(
        (p.nonce.as_str(), p.verifier.as_str(), p.next.as_str()),
        ("n0nce", "v3rifier", "/models/m?x=1")
    );
    assert!(
        s.take_pending(&state).await.unwrap().is_none(),
        "served once"
    );
    let state = s
        .begin_pending("n", "v", "//evil.example/", Duration::from_secs(600))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(601));
    assert!(s.take_pending(&state).await.unwrap().is_none(), "expired");
    let state = s
        .begin_pending("n", "v", "//evil.example/", Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(
        s.take_pending(&state).await.unwrap().unwrap().next,
        "/",
        "only this server's pages"
    );
}

#[tokio::test]
async fn sqlite_sessions_follow_their_user_and_expire() {
    sessions_follow_their_user_and_expire(None).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
async fn postgres_sessions_follow_their_user_and_expire() {
    sessions_follow_their_user_and_expire(env_url("KONDATE_TEST_POSTGRES_URL")).await;
}

#[tokio::test]
#[ignore = "needs MariaDB: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
async fn mysql_sessions_follow_their_user_and_expire() {
    sessions_follow_their_user_and_expire(env_url("KONDATE_TEST_MYSQL_URL")).await;
}

#[tokio::test]
async fn sqlite_tokens_never_hold_more_than_their_owner() {
    tokens_never_hold_more_than_their_owner(None).await;
}

#[tokio::test]
async fn sqlite_tokens_expire_rotate_and_list_their_use() {
    tokens_expire_rotate_and_list_their_use(None).await;
}

#[tokio::test]
async fn sqlite_legacy_tokens_keep_exactly_what_they_could_do() {
    legacy_tokens_keep_exactly_what_they_could_do(None).await;
}

#[tokio::test]
async fn sqlite_the_audit_trail_records_filters_and_masks() {
    the_audit_trail_records_filters_and_masks(None).await;
}

fn env_url(var: &str) -> Option<String> {
    Some(std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set; see .ci/run")))
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
async fn postgres_tokens_never_hold_more_than_their_owner() {
    tokens_never_hold_more_than_their_owner(env_url("KONDATE_TEST_POSTGRES_URL")).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
async fn postgres_tokens_expire_rotate_and_list_their_use() {
    tokens_expire_rotate_and_list_their_use(env_url("KONDATE_TEST_POSTGRES_URL")).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
async fn postgres_legacy_tokens_keep_exactly_what_they_could_do() {
    legacy_tokens_keep_exactly_what_they_could_do(env_url("KONDATE_TEST_POSTGRES_URL")).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set KONDATE_TEST_POSTGRES_URL (see .ci/run)"]
async fn postgres_the_audit_trail_records_filters_and_masks() {
    the_audit_trail_records_filters_and_masks(env_url("KONDATE_TEST_POSTGRES_URL")).await;
}

#[tokio::test]
#[ignore = "needs MariaDB: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
async fn mysql_tokens_never_hold_more_than_their_owner() {
    tokens_never_hold_more_than_their_owner(env_url("KONDATE_TEST_MYSQL_URL")).await;
}

#[tokio::test]
#[ignore = "needs MariaDB: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
async fn mysql_tokens_expire_rotate_and_list_their_use() {
    tokens_expire_rotate_and_list_their_use(env_url("KONDATE_TEST_MYSQL_URL")).await;
}

#[tokio::test]
#[ignore = "needs MariaDB: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
async fn mysql_legacy_tokens_keep_exactly_what_they_could_do() {
    legacy_tokens_keep_exactly_what_they_could_do(env_url("KONDATE_TEST_MYSQL_URL")).await;
}

#[tokio::test]
#[ignore = "needs MariaDB: set KONDATE_TEST_MYSQL_URL (see .ci/run)"]
async fn mysql_the_audit_trail_records_filters_and_masks() {
    the_audit_trail_records_filters_and_masks(env_url("KONDATE_TEST_MYSQL_URL")).await;
}
