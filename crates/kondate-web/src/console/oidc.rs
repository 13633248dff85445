//! Sign-in through an OpenID Connect provider (`[console.oidc]`; Google or any standard
//! provider): discovery, the authorization code flow with PKCE (RFC 7636, S256), and the ID
//! token checked here — its signature against the provider's published keys (RS256 or
//! ES256, with ring), its issuer, audience, expiry and nonce, a verified e-mail, and the
//! allowed domains (`hd` too, when the provider sends it). A person becomes one of the users
//! of the access rules by e-mail; an unknown person gets the configured default role, or is
//! refused.
//!
//! (Hand-written over reqwest and ring rather than an OpenID Connect crate: the flow is a
//! few documented requests, and the crates for it bring their own HTTP and crypto stacks —
//! several minutes of clean build — for what these two already in the build do.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use kondate_core::config::OidcSection;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

/// How long discovery and keys are kept before they are fetched again (a key not among
/// them makes them be fetched at once).
const CACHE_FOR: Duration = Duration::from_secs(3600);
/// Clock difference allowed between the provider and this server.
const LEEWAY_SECS: i64 = 60;
/// How long a person has at the provider to sign in.
pub const PENDING_FOR: Duration = Duration::from_secs(600);

/// The provider's discovery document (the fields used here).
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
}

/// One published key (RFC 7517).
#[derive(Debug, Clone, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub alg: Option<String>,
    #[serde(default)]
    pub n: Option<String>,
    #[serde(default)]
    pub e: Option<String>,
    #[serde(default)]
    pub crv: Option<String>,
    #[serde(default)]
    pub x: Option<String>,
    #[serde(default)]
    pub y: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// What an ID token must say.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    pub allowed_domains: &'a [String],
    pub now_secs: i64,
}

/// Why a sign-in was refused: shown to the person, and recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

fn refused(m: impl Into<String>) -> Refused {
    Refused(m.into())
}

/// The PKCE code challenge of `verifier` (S256).
pub fn challenge(verifier: &str) -> String {
    B64.encode(Sha256::digest(verifier.as_bytes()))
}

/// A random URL-safe token of `bytes` random bytes.
pub fn random_token(bytes: usize) -> String {
    let v: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    B64.encode(v)
}

fn decode(part: &str, what: &str) -> Result<Vec<u8>, Refused> {
    B64.decode(part.trim_end_matches('='))
        .map_err(|_| refused(format!("the ID token's {what} is not base64url")))
}

/// Check `token` (a compact JWS) against `keys` and `expect`; answers the person's e-mail.
pub fn verify_id_token(token: &str, keys: &Jwks, expect: &Expect) -> Result<String, Refused> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header_b64, payload_b64, signature_b64] = parts[..] else {
        return Err(refused("the ID token is not a signed JWT (three parts)"));
    };
    let header: Value = serde_json::from_slice(&decode(header_b64, "header")?)
        .map_err(|_| refused("the ID token's header is not JSON"))?;
    let alg = header["alg"].as_str().unwrap_or_default();
    let kid = header["kid"].as_str();
    let (kty, algorithm): (&str, &'static dyn ring::signature::VerificationAlgorithm) = match alg {
        "RS256" => ("RSA", &ring::signature::RSA_PKCS1_2048_8192_SHA256),
        "ES256" => ("EC", &ring::signature::ECDSA_P256_SHA256_FIXED),
        other => {
            return Err(refused(format!(
                "the ID token is signed with `{other}`; kondate accepts RS256 and ES256"
            )));
        }
    };
    let candidates: Vec<&Jwk> = keys
        .keys
        .iter()
        .filter(|k| k.kty == kty && k.alg.as_deref().is_none_or(|a| a == alg))
        .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
        .collect();
    if candidates.is_empty() {
        return Err(refused(format!(
            "none of the provider's keys is the ID token's (kid {})",
            kid.unwrap_or("none")
        )));
    }
    let message = format!("{header_b64}.{payload_b64}");
    let signature = decode(signature_b64, "signature")?;
    let verified = candidates.iter().any(|k| {
        let public: Vec<u8> = match kty {
            "RSA" => {
                let (Some(n), Some(e)) = (&k.n, &k.e) else {
                    return false;
                };
                let (Ok(n), Ok(e)) = (B64.decode(n), B64.decode(e)) else {
                    return false;
                };
                return ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
                    .verify(
                        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                        message.as_bytes(),
                        &signature,
                    )
                    .is_ok();
            }
            _ => {
                let (Some("P-256"), Some(x), Some(y)) = (k.crv.as_deref(), &k.x, &k.y) else {
                    return false;
                };
                let (Ok(x), Ok(y)) = (B64.decode(x), B64.decode(y)) else {
                    return false;
                };
                [vec![4u8], x, y].concat()
            }
        };
        ring::signature::UnparsedPublicKey::new(algorithm, public)
            .verify(message.as_bytes(), &signature)
            .is_ok()
    });
    if !verified {
        return Err(refused(
            "the ID token's signature does not verify with the provider's keys",
        ));
    }
    let claims: Value = serde_json::from_slice(&decode(payload_b64, "payload")?)
        .map_err(|_| refused("the ID token's claims are not JSON"))?;
    check_claims(&claims, expect)
}

/// The claims' checks (OpenID Connect Core §3.1.3.7), then the e-mail's.
fn check_claims(c: &Value, expect: &Expect) -> Result<String, Refused> {
    if c["iss"].as_str() != Some(expect.issuer) {
        return Err(refused(format!(
            "the ID token is from `{}`, not the configured provider `{}`",
            c["iss"].as_str().unwrap_or("?"),
            expect.issuer
        )));
    }
    let audiences: Vec<&str> = match &c["aud"] {
        Value::String(a) => vec![a.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&expect.client_id) {
        return Err(refused(
            "the ID token was issued to another application (its audience is not this \
             console's client id)",
        ));
    }
    if audiences.len() > 1 && c["azp"].as_str() != Some(expect.client_id) {
        return Err(refused(
            "the ID token names several audiences but was not issued to this console (azp)",
        ));
    }
    let exp = c["exp"]
        .as_i64()
        .ok_or_else(|| refused("the ID token has no expiry"))?;
    if exp + LEEWAY_SECS < expect.now_secs {
        return Err(refused(
            "the ID token has expired: sign in again (if this repeats, check this server's clock)",
        ));
    }
    if c["iat"]
        .as_i64()
        .is_some_and(|iat| iat > expect.now_secs + LEEWAY_SECS)
    {
        return Err(refused(
            "the ID token is issued in the future: check this server's clock",
        ));
    }
    if c["nonce"].as_str() != Some(expect.nonce) {
        return Err(refused(
            "the ID token does not answer this sign-in (its nonce differs): sign in again",
        ));
    }
    let email = c["email"]
        .as_str()
        .filter(|e| e.contains('@'))
        .ok_or_else(|| {
            refused("the provider sent no e-mail address: allow the `email` scope for kondate")
        })?
        .to_ascii_lowercase();
    let verified = match &c["email_verified"] {
        Value::Bool(b) => *b,
        // Some providers send it as a string.
        Value::String(s) => s == "true",
        Value::Null => true,
        _ => false,
    };
    if !verified {
        return Err(refused(format!(
            "the provider has not verified the e-mail address {email}"
        )));
    }
    if !expect.allowed_domains.is_empty() {
        let domain = email.rsplit('@').next().unwrap_or_default();
        let allowed = |d: &str| {
            expect
                .allowed_domains
                .iter()
                .any(|a| a.eq_ignore_ascii_case(d))
        };
        if !allowed(domain) {
            return Err(refused(format!(
                "{email} is not in a domain allowed to sign in here ({})",
                expect.allowed_domains.join(", ")
            )));
        }
        if let Some(hd) = c["hd"].as_str()
            && !allowed(hd)
        {
            return Err(refused(format!(
                "{email} belongs to the organisation {hd}, which may not sign in here"
            )));
        }
    }
    Ok(email)
}

/// The provider, as this server talks to it: its configuration, client secret, and the
/// discovery document and keys, cached.
#[derive(Clone)]
pub struct Provider {
    pub config: OidcSection,
    secret: String,
    /// Where the provider sends people back: `PUBLIC_URL/signin/oidc/callback`.
    pub redirect_uri: String,
    http: reqwest::Client,
    cache: Arc<Mutex<Cache>>,
}

#[derive(Default)]
struct Cache {
    discovery: Option<(Discovery, Instant)>,
    keys: Option<(Jwks, Instant)>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("config", &self.config)
            .field("redirect_uri", &self.redirect_uri)
            .finish()
    }
}

impl Provider {
    /// The provider of `config`, with its client secret read now (an error names the
    /// setting to fix).
    pub fn new(
        config: &OidcSection,
        public_url: &str,
    ) -> Result<Provider, kondate_core::CoreError> {
        Ok(Provider {
            secret: config.client_secret()?,
            config: config.clone(),
            redirect_uri: format!("{}/signin/oidc/callback", public_url.trim_end_matches('/')),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| kondate_core::CoreError::Config {
                    location: "console.oidc".into(),
                    message: format!("the HTTP client could not start: {e}"),
                })?,
            cache: Arc::default(),
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        what: &str,
    ) -> Result<T, Refused> {
        let unreachable = |e: String| {
            tracing::warn!(url, error = %e, "the sign-in provider could not be read");
            refused(format!(
                "the sign-in provider's {what} could not be read ({e}); try again later"
            ))
        };
        let res = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        if !res.status().is_success() {
            return Err(unreachable(format!("HTTP {}", res.status())));
        }
        res.json().await.map_err(|e| unreachable(e.to_string()))
    }

    /// The discovery document (cached); its issuer must be the configured one.
    pub async fn discovery(&self) -> Result<Discovery, Refused> {
        if let Some((d, at)) = &self.cache.lock().await.discovery
            && at.elapsed() < CACHE_FOR
        {
            return Ok(d.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let d: Discovery = self.get_json(&url, "discovery document").await?;
        if d.issuer.trim_end_matches('/') != self.config.issuer.trim_end_matches('/') {
            return Err(refused(format!(
                "the provider's discovery document names the issuer `{}`, not the configured \
                 `{}`",
                d.issuer, self.config.issuer
            )));
        }
        self.cache.lock().await.discovery = Some((d.clone(), Instant::now()));
        Ok(d)
    }

    /// The provider's keys: cached, or fetched anew when `fresh`.
    async fn keys(&self, d: &Discovery, fresh: bool) -> Result<Jwks, Refused> {
        if !fresh
            && let Some((k, at)) = &self.cache.lock().await.keys
            && at.elapsed() < CACHE_FOR
        {
            return Ok(k.clone());
        }
        let k: Jwks = self.get_json(&d.jwks_uri, "keys").await?;
        self.cache.lock().await.keys = Some((k.clone(), Instant::now()));
        Ok(k)
    }

    /// Where to send a person to sign in.
    pub fn authorization_url(
        &self,
        d: &Discovery,
        state: &str,
        nonce: &str,
        verifier: &str,
    ) -> String {
        let mut url = url::Url::parse(&d.authorization_endpoint)
            .unwrap_or_else(|_| url::Url::parse("http://invalid/").expect("a URL"));
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.config.client_id)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("scope", "openid email profile")
                .append_pair("state", state)
                .append_pair("nonce", nonce)
                .append_pair("code_challenge", &challenge(verifier))
                .append_pair("code_challenge_method", "S256");
            // Google shows only that organisation's accounts (a hint; the token is checked).
            if let [domain] = &self.config.allowed_domains[..] {
                q.append_pair("hd", domain);
            }
        }
        url.to_string()
    }

    /// Exchange `code` for the ID token and check it; answers the person's e-mail.
    pub async fn finish(
        &self,
        code: &str,
        verifier: &str,
        nonce: &str,
        now_secs: i64,
    ) -> Result<String, Refused> {
        let d = self.discovery().await?;
        let res = self
            .http
            .post(&d.token_endpoint)
            // client_secret_basic (RFC 6749 §2.3.1): id and secret form-encoded, then Basic.
            .basic_auth(
                form_encode(&self.config.client_id),
                Some(form_encode(&self.secret)),
            )
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.redirect_uri),
                ("code_verifier", verifier),
                ("client_id", &self.config.client_id),
            ])
            .send()
            .await
            .map_err(|e| refused(format!("the sign-in provider could not be reached: {e}")))?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(refused(format!(
                "the sign-in provider refused the sign-in: {}",
                body["error_description"]
                    .as_str()
                    .or(body["error"].as_str())
                    .unwrap_or(status.as_str())
            )));
        }
        let token = body["id_token"]
            .as_str()
            .ok_or_else(|| refused("the sign-in provider sent no ID token"))?;
        let expect = Expect {
            issuer: &d.issuer,
            client_id: &self.config.client_id,
            nonce,
            allowed_domains: &self.config.allowed_domains,
            now_secs,
        };
        let keys = self.keys(&d, false).await?;
        match verify_id_token(token, &keys, &expect) {
            // A key the cached set lacks: the provider may have rotated; fetch once more.
            Err(e) if e.0.starts_with("none of the provider's keys") => {
                let keys = self.keys(&d, true).await?;
                verify_id_token(token, &keys, &expect)
            }
            other => other,
        }
    }
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ------------------------------------------------------------------ the console's routes

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use kondate_access::{AuditEntry, Outcome, SessionOf, Source};

use super::{SESSION_TTL, cookie, same_secret, sentence, session_cookie, signin_view};
use crate::AppState;

/// The cookie that ties a sign-in's return to the browser that started it.
const STATE_COOKIE: &str = "kondate_oidc";

fn state_cookie(state: &AppState, value: &str, max_age: Duration) -> HeaderValue {
    let secure = if super::over_https(state) {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{STATE_COOKIE}={value}; Path=/signin/oidc; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        max_age.as_secs()
    ))
    .expect("a cookie of ASCII")
}

#[derive(Deserialize)]
pub(super) struct StartParams {
    next: Option<String>,
}

/// `GET /signin/oidc?next=PATH`: off to the provider, with a new state, nonce and PKCE
/// verifier (kept server-side, hashed, for ten minutes).
pub(super) async fn start(State(state): State<AppState>, Query(p): Query<StartParams>) -> Response {
    let Some(provider) = state.oidc.as_ref() else {
        return signin_view(
            &state,
            Some("Sign-in through a provider is not configured on this server ([console.oidc])."),
            None,
            StatusCode::NOT_FOUND,
        );
    };
    let d = match provider.discovery().await {
        Ok(d) => d,
        Err(e) => return signin_view(&state, Some(&e.0), None, StatusCode::BAD_GATEWAY),
    };
    let (nonce, verifier) = (random_token(16), random_token(32));
    let next = p.next.unwrap_or_else(|| "/".into());
    let pending = state
        .access
        .sessions
        .begin_pending(&nonce, &verifier, &next, PENDING_FOR)
        .await;
    let st = match pending {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "a sign-in could not be started");
            return signin_view(
                &state,
                Some("The sign-in could not be started; the server's log says why."),
                None,
                StatusCode::INTERNAL_SERVER_ERROR,
            );
        }
    };
    let mut res =
        Redirect::to(&provider.authorization_url(&d, &st, &nonce, &verifier)).into_response();
    res.headers_mut()
        .append(header::SET_COOKIE, state_cookie(&state, &st, PENDING_FOR));
    res
}

#[derive(Deserialize)]
pub(super) struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /signin/oidc/callback?code=&state=`: the provider's answer. The state must be the
/// one this browser started with and still pending; the code is exchanged with the
/// verifier; the ID token checked; the person found among the users (or added with the
/// default role) — or refused, and recorded either way.
pub(super) async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<CallbackParams>,
) -> Response {
    let Some(provider) = state.oidc.as_ref() else {
        return signin_view(
            &state,
            Some("Sign-in through a provider is not configured."),
            None,
            StatusCode::NOT_FOUND,
        );
    };
    let refuse = |actor: &str, why: String| {
        let state = state.clone();
        let actor = actor.to_string();
        async move {
            let mut e = AuditEntry::new(Source::Console, &actor, "console.signin", None);
            e.outcome = Outcome::Denied;
            e.status = Some(403);
            e.params = serde_json::json!({"via": "oidc"});
            e.detail = Some(why.clone());
            state.access.audit.record_or_log(e).await;
            let mut res = signin_view(&state, Some(&sentence(&why)), None, StatusCode::FORBIDDEN);
            res.headers_mut()
                .append(header::SET_COOKIE, state_cookie(&state, "", Duration::ZERO));
            res
        }
    };
    if let Some(error) = p.error {
        let why = format!(
            "The provider did not sign you in: {}",
            p.error_description.unwrap_or(error)
        );
        return refuse("anonymous", why).await;
    }
    let (Some(code), Some(st)) = (p.code, p.state) else {
        return refuse(
            "anonymous",
            "The provider's answer has no code or state".into(),
        )
        .await;
    };
    let bound = cookie(&headers, STATE_COOKIE).is_some_and(|c| same_secret(&c, &st));
    if !bound {
        return refuse(
            "anonymous",
            "This sign-in did not start in this browser (or took longer than ten minutes): sign in again".into(),
        )
        .await;
    }
    let pending = match state.access.sessions.take_pending(&st).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return refuse(
                "anonymous",
                "This sign-in has expired or was used already: sign in again".into(),
            )
            .await;
        }
        Err(e) => {
            tracing::error!(error = %e, "a pending sign-in could not be read");
            return refuse(
                "anonymous",
                "The sign-in could not be read; the server's log says why".into(),
            )
            .await;
        }
    };
    let now = state.service.clock().now().timestamp();
    let email = match provider
        .finish(&code, &pending.verifier, &pending.nonce, now)
        .await
    {
        Ok(e) => e,
        Err(e) => return refuse("anonymous", e.0).await,
    };
    let actor = format!("user:{email}");
    let users = &state.access.users;
    let user = match users.get(&email).await {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(error = %e, "reading a user failed");
            return refuse(
                &actor,
                "The sign-in could not be completed; the server's log says why".into(),
            )
            .await;
        }
    };
    match (user, &provider.config.default_role) {
        (Some(u), _) if !u.enabled => {
            return refuse(&actor, format!("{email} is disabled here: ask an admin")).await;
        }
        (Some(_), _) => {}
        (None, Some(role)) => {
            if let Err(e) = users
                .add(&email, std::slice::from_ref(role), &[], "oidc")
                .await
            {
                tracing::error!(error = %e, "adding a user at first sign-in failed");
                return refuse(&actor, format!("{email} could not be added: {e}")).await;
            }
        }
        (None, None) => {
            return refuse(
                &actor,
                format!(
                    "{email} is not a user here yet: ask an admin to add you (`kondate users add {email} --role viewer`)"
                ),
            )
            .await;
        }
    }
    let session = match state
        .access
        .sessions
        .create(SessionOf::User(email.clone()), SESSION_TTL)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "a console session could not be started");
            return refuse(
                &actor,
                "The session could not be started; the server's log says why".into(),
            )
            .await;
        }
    };
    let mut e = AuditEntry::new(Source::Console, &actor, "console.signin", None);
    e.status = Some(303);
    e.params = serde_json::json!({"via": "oidc"});
    state.access.audit.record_or_log(e).await;
    let mut res = Redirect::to(&pending.next).into_response();
    let h = res.headers_mut();
    h.append(
        header::SET_COOKIE,
        session_cookie(&state, &session.secret, SESSION_TTL),
    );
    h.append(header::SET_COOKIE, state_cookie(&state, "", Duration::ZERO));
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    fn es256() -> (EcdsaKeyPair, Jwks) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let public = pair.public_key().as_ref();
        let jwks = Jwks {
            keys: vec![Jwk {
                kty: "EC".into(),
                kid: Some("k1".into()),
                alg: Some("ES256".into()),
                n: None,
                e: None,
                crv: Some("P-256".into()),
                x: Some(B64.encode(&public[1..33])),
                y: Some(B64.encode(&public[33..65])),
            }],
        };
        (pair, jwks)
    }

    fn sign(pair: &EcdsaKeyPair, header: Value, claims: Value) -> String {
        let m = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = pair
            .sign(&ring::rand::SystemRandom::new(), m.as_bytes())
            .unwrap();
        format!("{m}.{}", B64.encode(sig.as_ref()))
    }

    fn claims() -> Value {
        serde_json::json!({
            "iss": "https://idp.example", "aud": "console", "exp": 2_000, "iat": 1_000,
            "nonce": "n1", "email": "Ana@Example.com", "email_verified": true,
        })
    }

    fn expect(domains: &[String]) -> Expect<'_> {
        Expect {
            issuer: "https://idp.example",
            client_id: "console",
            nonce: "n1",
            allowed_domains: domains,
            now_secs: 1_500,
        }
    }

    #[test]
    fn an_es256_token_verifies_and_every_bad_claim_is_refused() {
        let (pair, jwks) = es256();
        let header = serde_json::json!({"alg": "ES256", "kid": "k1"});
        let domains = vec!["example.com".to_string()];
        let ok = sign(&pair, header.clone(), claims());
        assert_eq!(
            verify_id_token(&ok, &jwks, &expect(&domains)).unwrap(),
            "ana@example.com"
        );

        let refused_with = |c: Value, what: &str| {
            let t = sign(&pair, header.clone(), c);
            let e = verify_id_token(&t, &jwks, &expect(&domains)).unwrap_err();
            assert!(e.0.contains(what), "{what}: {e}");
        };
        let with = |k: &str, v: Value| {
            let mut c = claims();
            c[k] = v;
            c
        };
        refused_with(
            with("iss", "https://evil.example".into()),
            "not the configured provider",
        );
        refused_with(with("aud", "other".into()), "another application");
        refused_with(with("aud", serde_json::json!(["console", "x"])), "azp");
        refused_with(with("exp", 1_000.into()), "expired");
        refused_with(with("iat", 9_000.into()), "future");
        refused_with(with("nonce", "n2".into()), "nonce");
        refused_with(with("email_verified", false.into()), "not verified");
        refused_with(with("email", "ana@elsewhere.org".into()), "not in a domain");
        refused_with(
            with("hd", "elsewhere.org".into()),
            "organisation elsewhere.org",
        );

        // A signature by another key, a tampered payload, an unsigned token.
        let (other, _) = es256();
        let forged = sign(&other, header.clone(), claims());
        assert!(
            verify_id_token(&forged, &jwks, &expect(&domains))
                .unwrap_err()
                .0
                .contains("signature")
        );
        let mut parts: Vec<String> = ok.split('.').map(str::to_string).collect();
        parts[1] = B64.encode(with("email", "boss@example.com".into()).to_string());
        let tampered = parts.join(".");
        assert!(
            verify_id_token(&tampered, &jwks, &expect(&domains))
                .unwrap_err()
                .0
                .contains("signature")
        );
        let none = format!(
            "{}.{}.",
            B64.encode(r#"{"alg":"none"}"#),
            B64.encode(claims().to_string())
        );
        assert!(
            verify_id_token(&none, &jwks, &expect(&domains))
                .unwrap_err()
                .0
                .contains("`none`")
        );
        let unknown = sign(
            &pair,
            serde_json::json!({"alg": "ES256", "kid": "k9"}),
            claims(),
        );
        assert!(
            verify_id_token(&unknown, &jwks, &expect(&domains))
                .unwrap_err()
                .0
                .contains("none of the provider's keys")
        );
    }

    #[test]
    fn the_pkce_challenge_is_rfc_7636s() {
        // RFC 7636 appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
