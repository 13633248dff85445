//! HMAC-signed, expiring URLs for objects in the local store, which kondate serves itself
//! at `GET /v1/objects/{key}?expires=UNIX&signature=HEX`.
//!
//! The signature is HMAC-SHA256 over `key \n expires`; verification is constant-time
//! (`Mac::verify_slice`) and the expiry is checked against the caller's clock.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::StoreError;

type HmacSha256 = Hmac<Sha256>;

/// Why a signed URL was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("the signed URL expired at {expired_at}; ask the query API for a fresh one")]
    Expired { expired_at: DateTime<Utc> },
    #[error("the URL's signature does not match; use the URL exactly as the API returned it")]
    Mismatch,
    #[error("the URL's `{0}` parameter is missing or malformed")]
    Malformed(&'static str),
    #[error("objects in a cloud store are served by the store itself, not by kondate")]
    NotServedHere,
}

/// Signs and verifies local object URLs.
#[derive(Clone)]
pub struct UrlSigner {
    key: Vec<u8>,
    base: String,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl UrlSigner {
    /// A signer with `key`, producing URLs under `base` (e.g. `http://127.0.0.1:7878`).
    pub fn new(key: Vec<u8>, base: &str) -> Self {
        Self {
            key,
            base: base.trim_end_matches('/').to_string(),
        }
    }

    fn mac(&self, key: &str, expires: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(key.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// A URL for `key` valid until `now + ttl`.
    pub fn sign(&self, key: &str, now: DateTime<Utc>, ttl: Duration) -> String {
        let expires = now.timestamp() + ttl.as_secs() as i64;
        let sig = hex::encode(self.mac(key, expires).finalize().into_bytes());
        let mut url = url::Url::parse(&format!("{}/v1/objects/", self.base))
            .expect("base URL was validated by the configuration");
        url.path_segments_mut()
            .expect("http URLs have path segments")
            .pop_if_empty()
            .extend(key.split('/'));
        url.query_pairs_mut()
            .append_pair("expires", &expires.to_string())
            .append_pair("signature", &sig);
        url.to_string()
    }

    /// Accept the URL parameters only if the signature matches and it has not expired.
    pub fn verify(
        &self,
        key: &str,
        expires: &str,
        signature: &str,
        now: DateTime<Utc>,
    ) -> Result<(), SignatureError> {
        let expires: i64 = expires
            .parse()
            .map_err(|_| SignatureError::Malformed("expires"))?;
        let sig = hex::decode(signature).map_err(|_| SignatureError::Malformed("signature"))?;
        self.mac(key, expires)
            .verify_slice(&sig)
            .map_err(|_| SignatureError::Mismatch)?;
        if now.timestamp() >= expires {
            return Err(SignatureError::Expired {
                expired_at: DateTime::from_timestamp(expires, 0).unwrap_or_default(),
            });
        }
        Ok(())
    }
}

/// The signing key: `KONDATE_SIGNING_KEY` if set, else the key file, created with 32 random
/// bytes (mode 0600) the first time.
pub fn load_or_create_key(file: &Path) -> Result<Vec<u8>, StoreError> {
    if let Ok(k) = std::env::var("KONDATE_SIGNING_KEY") {
        if k.len() < 32 {
            return Err(StoreError::Config(
                "KONDATE_SIGNING_KEY must be at least 32 characters long".into(),
            ));
        }
        return Ok(k.into_bytes());
    }
    match std::fs::read(file) {
        Ok(k) if k.len() >= 32 => return Ok(k),
        Ok(_) => {
            return Err(StoreError::Config(format!(
                "signing key file {} is shorter than 32 bytes; delete it to have a new one made",
                file.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(StoreError::Config(format!(
                "cannot read signing key file {}: {e}",
                file.display()
            )));
        }
    }
    let key: [u8; 32] = rand::random();
    let text = hex::encode(key);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Config(format!("cannot create {}: {e}", dir.display())))?;
    }
    // Written under a temporary name, then hard-linked into place: the link never replaces
    // a file, so when several processes start at once exactly one key wins, and the others
    // read it complete.
    let tmp = file.with_extension(format!("tmp-{:016x}", rand::random::<u64>()));
    let written =
        write_private(&tmp, text.as_bytes()).and_then(|()| std::fs::hard_link(&tmp, file));
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok(text.into_bytes()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read(file).map_err(|e| {
                StoreError::Config(format!(
                    "cannot read signing key file {}: {e}",
                    file.display()
                ))
            })
        }
        Err(e) => Err(StoreError::Config(format!(
            "cannot write signing key file {}: {e}",
            file.display()
        ))),
    }
}

fn write_private(file: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(file)?;
    f.write_all(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_starting_at_once_share_one_key() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("k/signing.key");
        let keys: Vec<Vec<u8>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_create_key(&file).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| k == &keys[0] && k.len() == 64));
        assert_eq!(std::fs::read(&file).unwrap(), keys[0]);
    }

    #[test]
    fn tampered_signature_is_rejected() {
        let s = UrlSigner::new(b"k".repeat(32), "http://h");
        let now = Utc::now();
        let url = s.sign("a/b", now, Duration::from_secs(10));
        let q: std::collections::HashMap<_, _> = url::Url::parse(&url)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
        let mut sig = q["signature"].clone();
        sig.replace_range(0..1, if sig.starts_with('0') { "1" } else { "0" });
        assert!(matches!(
            s.verify("a/b", &q["expires"], &sig, now),
            Err(SignatureError::Mismatch)
        ));
        // Moving the expiry forward breaks the signature too.
        let later = (q["expires"].parse::<i64>().unwrap() + 3600).to_string();
        assert!(matches!(
            s.verify("a/b", &later, &q["signature"], now),
            Err(SignatureError::Mismatch)
        ));
        assert!(matches!(
            s.verify("a/b", "x", &q["signature"], now),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("sub/signing.key");
        let k1 = load_or_create_key(&f).unwrap();
        let k2 = load_or_create_key(&f).unwrap();
        assert_eq!(k1, k2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
