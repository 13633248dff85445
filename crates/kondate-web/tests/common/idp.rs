//! A local OpenID Connect provider for the console's sign-in tests, speaking the protocol's
//! documented wire format (OpenID Connect Discovery 1.0, RFC 6749 code grant with RFC 7636
//! PKCE, RFC 7517 keys): discovery, an authorization endpoint that signs in whoever the
//! test says, a token endpoint that checks the client, the code and its verifier, and the
//! keys. Its ID tokens are signed RS256 with the test key of the labels crate's fixtures;
//! `Mint` makes it send a wrong audience, an expired token or a bad signature.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "kondate-console";
pub const CLIENT_SECRET: &str = "idp-test-secret";

/// How the next ID token is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mint {
    Good,
    WrongAudience,
    Expired,
    BadSignature,
}

/// Who signs in next, and how the token is made.
#[derive(Debug, Clone)]
pub struct Next {
    pub email: String,
    pub hd: Option<String>,
    pub mint: Mint,
}

/// What a code was issued for: the client's redirect_uri, the nonce, the PKCE challenge,
/// and who signs in.
#[derive(Clone)]
struct Issued {
    redirect_uri: String,
    nonce: String,
    challenge: String,
    who: Next,
}

#[derive(Clone)]
struct Idp {
    base: String,
    key: Arc<ring::signature::RsaKeyPair>,
    jwk: Value,
    next: Arc<Mutex<Next>>,
    codes: Arc<Mutex<HashMap<String, Issued>>>,
}

pub struct LocalIdp {
    pub issuer: String,
    next: Arc<Mutex<Next>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl LocalIdp {
    /// Sign `email` in next, with a token made as `mint` says.
    pub fn next(&self, email: &str, hd: Option<&str>, mint: Mint) {
        *self.next.lock().unwrap() = Next {
            email: email.into(),
            hd: hd.map(str::to_string),
            mint,
        };
    }
}

/// The test RSA key (PKCS#8 DER) and its modulus and exponent.
fn test_key() -> (ring::signature::RsaKeyPair, Vec<u8>, Vec<u8>) {
    let json: Value = serde_json::from_str(include_str!(
        "../../../kondate-labels/tests/fixtures/service-account.json"
    ))
    .unwrap();
    let der = kondate_labels::sheets::pem_pkcs8(json["private_key"].as_str().unwrap()).unwrap();
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
    // The public key is DER: SEQUENCE { INTEGER n, INTEGER e } (short or long lengths).
    let public = ring::signature::KeyPair::public_key(&pair)
        .as_ref()
        .to_vec();
    let mut at = 0;
    let read_len = |bytes: &[u8], at: &mut usize| -> usize {
        let first = bytes[*at] as usize;
        *at += 1;
        if first < 0x80 {
            return first;
        }
        let mut n = 0;
        for _ in 0..(first & 0x7f) {
            n = n << 8 | bytes[*at] as usize;
            *at += 1;
        }
        n
    };
    assert_eq!(public[at], 0x30);
    at += 1;
    read_len(&public, &mut at);
    let integer = |at: &mut usize| {
        assert_eq!(public[*at], 0x02);
        *at += 1;
        let len = read_len(&public, at);
        let mut v = public[*at..*at + len].to_vec();
        *at += len;
        while v.len() > 1 && v[0] == 0 {
            v.remove(0);
        }
        v
    };
    let n = integer(&mut at);
    let e = integer(&mut at);
    (pair, n, e)
}

/// Start the provider on a loopback port.
pub async fn start() -> LocalIdp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (key, n, e) = test_key();
    let next = Arc::new(Mutex::new(Next {
        email: "nobody@example.com".into(),
        hd: None,
        mint: Mint::Good,
    }));
    let idp = Idp {
        base: base.clone(),
        key: Arc::new(key),
        jwk: json!({"kty": "RSA", "kid": "idp-1", "alg": "RS256", "use": "sig",
                    "n": B64.encode(n), "e": B64.encode(e)}),
        next: next.clone(),
        codes: Arc::default(),
    };
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .with_state(idp);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    LocalIdp {
        issuer: base,
        next,
        _stop: tx,
    }
}

async fn discovery(State(idp): State<Idp>) -> Response {
    axum::Json(json!({
        "issuer": idp.base,
        "authorization_endpoint": format!("{}/authorize", idp.base),
        "token_endpoint": format!("{}/token", idp.base),
        "jwks_uri": format!("{}/jwks", idp.base),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
    }))
    .into_response()
}

async fn jwks(State(idp): State<Idp>) -> Response {
    axum::Json(json!({ "keys": [idp.jwk] })).into_response()
}

/// Signs in whoever `next` says at once (no page), back to the client with a code.
async fn authorize(State(idp): State<Idp>, Query(q): Query<HashMap<String, String>>) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("response_type") != "code"
        || get("client_id") != CLIENT_ID
        || get("code_challenge_method") != "S256"
        || get("code_challenge").is_empty()
        || !get("scope").split(' ').any(|s| s == "openid")
    {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    let code = hex_code();
    let who = idp.next.lock().unwrap().clone();
    idp.codes.lock().unwrap().insert(
        code.clone(),
        Issued {
            redirect_uri: get("redirect_uri"),
            nonce: get("nonce"),
            challenge: get("code_challenge"),
            who,
        },
    );
    let mut back = url::Url::parse(&get("redirect_uri")).unwrap();
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &get("state"));
    Redirect::to(back.as_str()).into_response()
}

fn hex_code() -> String {
    (0..16)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

fn token_error(error: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": error, "error_description": format!("{error} (local IdP)")})),
    )
        .into_response()
}

async fn token(
    State(idp): State<Idp>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    // client_secret_basic.
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    if basic.as_deref() != Some(&format!("{CLIENT_ID}:{CLIENT_SECRET}")) {
        return token_error("invalid_client");
    }
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    if get("grant_type") != "authorization_code" {
        return token_error("unsupported_grant_type");
    }
    let Some(Issued {
        redirect_uri,
        nonce,
        challenge,
        who,
    }) = idp.codes.lock().unwrap().remove(&get("code"))
    else {
        return token_error("invalid_grant");
    };
    let verified = B64.encode(Sha256::digest(get("code_verifier").as_bytes())) == challenge;
    if redirect_uri != get("redirect_uri") || !verified {
        return token_error("invalid_grant");
    }
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": idp.base, "sub": format!("sub-{}", who.email), "aud": CLIENT_ID,
        "iat": now, "exp": now + 3600, "nonce": nonce,
        "email": who.email, "email_verified": true,
    });
    if let Some(hd) = &who.hd {
        claims["hd"] = json!(hd);
    }
    match who.mint {
        Mint::WrongAudience => claims["aud"] = json!("someone-else"),
        Mint::Expired => {
            claims["iat"] = json!(now - 7200);
            claims["exp"] = json!(now - 3600);
        }
        _ => {}
    }
    let header = json!({"alg": "RS256", "kid": "idp-1", "typ": "JWT"});
    let message = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let mut sig = vec![0; idp.key.public().modulus_len()];
    idp.key
        .sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            message.as_bytes(),
            &mut sig,
        )
        .unwrap();
    if who.mint == Mint::BadSignature {
        sig[10] ^= 0xff;
    }
    axum::Json(json!({
        "access_token": "at-not-used", "token_type": "Bearer", "expires_in": 3600,
        "id_token": format!("{message}.{}", B64.encode(sig)),
    }))
    .into_response()
}
