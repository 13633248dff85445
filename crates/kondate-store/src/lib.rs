//! kondate-store: the object store every durable blob lives in (query results, warehouse
//! tables, later models), and the signed, expiring URLs clients download them from.
//!
//! Backed by the `object_store` crate: a local folder by default, or S3 (and S3-compatible
//! servers), GCS and Azure, all chosen by URL. Cloud stores hand out their own presigned
//! URLs; for the local folder kondate serves the object itself at an HMAC-signed URL
//! (see [`signing`]).

mod cas;
mod signing;

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use futures::stream::BoxStream;
use kondate_core::config::StoreSection;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::buffered::BufWriter;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::signer::Signer;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};

pub use cas::Progress;
pub use signing::{SignatureError, UrlSigner};

/// Errors from the object store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid object key `{key}`: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("object `{key}` not found in the store")]
    NotFound { key: String },
    #[error("object store {op} of `{key}` failed: {source}")]
    Backend {
        op: &'static str,
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("store configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error(
        "the bytes of object `{key}` have SHA-256 {actual}, not the expected {expected}: the \
         object is corrupt, or the upload was altered or incomplete"
    )]
    DigestMismatch {
        key: String,
        expected: kondate_core::digest::Digest,
        actual: kondate_core::digest::Digest,
    },
    #[error("object `{key}` has {actual} bytes, not the expected {expected}")]
    SizeMismatch {
        key: String,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Which kind of store backs kondate; decides how URLs are signed.
#[derive(Clone)]
enum Backend {
    Local {
        root: PathBuf,
        signer: UrlSigner,
    },
    Cloud {
        signer: Arc<dyn Signer>,
        prefix: Path,
    },
}

/// A handle to the configured object store, scoped to its prefix.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    backend: Backend,
    /// The URL the store was opened from, for messages and as DataFusion's registration key.
    url: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("url", &self.url).finish()
    }
}

impl Store {
    /// Open the store a configuration names; `public_url` is where this server is reached,
    /// used for the local store's signed URLs.
    pub fn open(cfg: &StoreSection, public_url: &str) -> Result<Store, StoreError> {
        let url = cfg.url.trim();
        let cloud = |scheme: &str| url.starts_with(&format!("{scheme}://"));
        if cloud("s3") || cloud("gs") || cloud("az") || cloud("abfs") {
            let parsed = url::Url::parse(url)
                .map_err(|e| StoreError::Config(format!("`{url}` is not a URL: {e}")))?;
            let bucket = parsed.host_str().unwrap_or_default().to_string();
            if bucket.is_empty() {
                return Err(StoreError::Config(format!(
                    "`{url}` names no bucket; use s3://bucket/prefix"
                )));
            }
            let prefix = Path::from(parsed.path().trim_matches('/'));
            let (store, signer): (Arc<dyn ObjectStore>, Arc<dyn Signer>) = if cloud("s3") {
                let mut b = AmazonS3Builder::from_env().with_bucket_name(&bucket);
                if let Some(endpoint) = &cfg.endpoint {
                    b = b.with_endpoint(endpoint);
                }
                if let Some(region) = &cfg.region {
                    b = b.with_region(region);
                }
                let s = Arc::new(
                    b.with_allow_http(cfg.allow_http)
                        .build()
                        .map_err(|e| StoreError::Config(format!("S3 `{url}`: {e}")))?,
                );
                (s.clone(), s)
            } else if cloud("gs") {
                let s = Arc::new(
                    GoogleCloudStorageBuilder::from_env()
                        .with_bucket_name(&bucket)
                        .build()
                        .map_err(|e| StoreError::Config(format!("GCS `{url}`: {e}")))?,
                );
                (s.clone(), s)
            } else {
                let s = Arc::new(
                    MicrosoftAzureBuilder::from_env()
                        .with_container_name(&bucket)
                        .build()
                        .map_err(|e| StoreError::Config(format!("Azure `{url}`: {e}")))?,
                );
                (s.clone(), s)
            };
            let inner: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
                store
            } else {
                Arc::new(PrefixStore::new(store, prefix.clone()))
            };
            return Ok(Store {
                inner,
                backend: Backend::Cloud { signer, prefix },
                url: url.to_string(),
            });
        }
        let root = PathBuf::from(url.strip_prefix("file://").unwrap_or(url));
        let key = signing::load_or_create_key(FsPath::new(&cfg.signing_key_file))?;
        Store::local(&root, UrlSigner::new(key, public_url))
    }

    /// A store in a local folder (created if missing).
    pub fn local(root: &FsPath, signer: UrlSigner) -> Result<Store, StoreError> {
        std::fs::create_dir_all(root).map_err(|e| {
            StoreError::Config(format!(
                "cannot create store folder {}: {e}",
                root.display()
            ))
        })?;
        let fs = LocalFileSystem::new_with_prefix(root)
            .map_err(|e| StoreError::Config(format!("store folder {}: {e}", root.display())))?
            .with_automatic_cleanup(true);
        Ok(Store {
            inner: Arc::new(fs),
            backend: Backend::Local {
                root: root.to_path_buf(),
                signer,
            },
            url: format!("file://{}", root.display()),
        })
    }

    /// The underlying `object_store`, scoped to the configured prefix (for DataFusion).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.inner.clone()
    }

    /// Where the store lives, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// True for the local-folder store, whose objects kondate serves itself.
    pub fn is_local(&self) -> bool {
        matches!(self.backend, Backend::Local { .. })
    }

    /// The local folder, when the store is one.
    pub fn local_root(&self) -> Option<&FsPath> {
        match &self.backend {
            Backend::Local { root, .. } => Some(root),
            Backend::Cloud { .. } => None,
        }
    }

    /// Write a whole object at once (atomic: readers see the old or the new object).
    pub async fn put(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        let path = object_path(key)?;
        self.inner
            .put(&path, PutPayload::from(data))
            .await
            .map_err(|e| backend("put", key, e))?;
        Ok(())
    }

    /// Create `key` only if it does not exist yet: true when this call created it, false
    /// when it was already there (atomic on the local store; on S3, GCS and Azure through
    /// their conditional writes).
    pub async fn put_new(&self, key: &str, data: Bytes) -> Result<bool, StoreError> {
        let path = object_path(key)?;
        let opts = object_store::PutOptions {
            mode: object_store::PutMode::Create,
            ..Default::default()
        };
        match self
            .inner
            .put_opts(&path, PutPayload::from(data), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(backend("put", key, e)),
        }
    }

    /// A streaming writer (multipart upload on cloud stores); the object appears on
    /// `shutdown`, never half-written.
    pub fn writer(&self, key: &str) -> Result<BufWriter, StoreError> {
        Ok(BufWriter::new(self.inner.clone(), object_path(key)?))
    }

    /// Read a whole object.
    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let path = object_path(key)?;
        let r = self
            .inner
            .get(&path)
            .await
            .map_err(|e| not_found_or(key, "get", e))?;
        r.bytes().await.map_err(|e| backend("get", key, e))
    }

    /// Stream an object: its size and its bytes.
    pub async fn get_stream(
        &self,
        key: &str,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes, StoreError>>), StoreError> {
        let path = object_path(key)?;
        let r = self
            .inner
            .get(&path)
            .await
            .map_err(|e| not_found_or(key, "get", e))?;
        let size = r.meta.size;
        let owned = key.to_string();
        if let object_store::GetResultPayload::File(file, _) = r.payload {
            // A local file is read in 1 MiB chunks: object_store's own stream reads 8 KiB
            // at a time, each on a blocking-pool task, which made serving result parts
            // from the local store slower than writing them.
            use tokio::io::AsyncReadExt;
            let file = tokio::fs::File::from_std(file).take(size);
            let stream =
                tokio_util::io::ReaderStream::with_capacity(file, 1 << 20).map_err(move |e| {
                    let e = object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source: Box::new(e),
                    };
                    backend("read", &owned, e)
                });
            return Ok((size, Box::pin(stream)));
        }
        let stream = r.into_stream().map_err(move |e| backend("read", &owned, e));
        Ok((size, Box::pin(stream)))
    }

    /// Metadata of an object.
    pub async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        let path = object_path(key)?;
        self.inner
            .head(&path)
            .await
            .map_err(|e| not_found_or(key, "head", e))
    }

    /// Every object under a prefix (a folder-like key ending without `/`).
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let path = object_path(prefix)?;
        self.inner
            .list(Some(&path))
            .try_collect()
            .await
            .map_err(|e| backend("list", prefix, e))
    }

    /// Delete one object; a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = object_path(key)?;
        match self.inner.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend("delete", key, e)),
        }
    }

    /// Delete every object under a prefix; returns how many were deleted.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, StoreError> {
        let objects = self.list(prefix).await?;
        for o in &objects {
            self.delete(o.location.as_ref()).await?;
        }
        if let Backend::Local { root, .. } = &self.backend {
            // Leave no empty folders behind in the local store.
            let _ = std::fs::remove_dir_all(root.join(prefix));
        }
        Ok(objects.len())
    }

    /// A URL anyone can GET the object from until `now + ttl`, without other credentials.
    pub async fn signed_url(
        &self,
        key: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<String, StoreError> {
        let path = object_path(key)?;
        match &self.backend {
            Backend::Local { signer, .. } => Ok(signer.sign(path.as_ref(), now, ttl)),
            Backend::Cloud { signer, prefix } => {
                let full = if prefix.as_ref().is_empty() {
                    path
                } else {
                    Path::from(format!("{}/{}", prefix.as_ref(), path.as_ref()))
                };
                let url = signer
                    .signed_url(http::Method::GET, &full, ttl)
                    .await
                    .map_err(|e| backend("sign", key, e))?;
                Ok(url.to_string())
            }
        }
    }

    /// Check a local signed URL's parameters (constant-time, expiry enforced).
    pub fn verify_signature(
        &self,
        key: &str,
        expires: &str,
        signature: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Local { signer, .. } => Ok(signer.verify(key, expires, signature, now)?),
            Backend::Cloud { .. } => Err(SignatureError::NotServedHere.into()),
        }
    }
}

/// Validate an object key and turn it into an `object_store` path: relative, no `..` or
/// `.` segments, no empty segments, no backslashes or control characters.
pub fn object_path(key: &str) -> Result<Path, StoreError> {
    let bad = |reason| StoreError::InvalidKey {
        key: key.to_string(),
        reason,
    };
    if key.is_empty() {
        return Err(bad("it is empty"));
    }
    if key.starts_with('/') {
        return Err(bad("it must not start with `/`"));
    }
    if key.contains('\\') || key.chars().any(char::is_control) {
        return Err(bad("backslashes and control characters are not allowed"));
    }
    let trimmed = key.trim_end_matches('/');
    if trimmed
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(bad("empty, `.` and `..` segments are not allowed"));
    }
    Path::parse(trimmed).map_err(|_| bad("it is not a valid object path"))
}

fn backend(op: &'static str, key: &str, source: object_store::Error) -> StoreError {
    StoreError::Backend {
        op,
        key: key.to_string(),
        source,
    }
}

fn not_found_or(key: &str, op: &'static str, e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::NotFound { .. } => StoreError::NotFound {
            key: key.to_string(),
        },
        e => backend(op, key, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &FsPath) -> Store {
        Store::local(dir, UrlSigner::new(vec![7; 32], "http://127.0.0.1:7878")).unwrap()
    }

    #[test]
    fn keys_that_escape_the_store_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a/./b",
            "a\\b",
            "a\nb",
        ] {
            assert!(object_path(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            object_path("queries/1/result.csv.0000_part_00.gz")
                .unwrap()
                .as_ref(),
            "queries/1/result.csv.0000_part_00.gz"
        );
    }

    #[tokio::test]
    async fn put_get_list_delete_roundtrip() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        s.put("q/1/a", Bytes::from_static(b"hello")).await.unwrap();
        s.put("q/1/b", Bytes::from_static(b"world")).await.unwrap();
        assert_eq!(s.get("q/1/a").await.unwrap(), Bytes::from_static(b"hello"));
        assert_eq!(s.list("q/1").await.unwrap().len(), 2);
        assert_eq!(s.delete_prefix("q/1").await.unwrap(), 2);
        assert!(matches!(
            s.get("q/1/a").await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(!tmp.path().join("q/1").exists());
    }

    #[tokio::test]
    async fn local_signed_url_verifies_and_expires() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        let now = Utc::now();
        let url = s
            .signed_url("q/1/a", Duration::from_secs(60), now)
            .await
            .unwrap();
        let parsed = url::Url::parse(&url).unwrap();
        assert!(parsed.path().ends_with("/v1/objects/q/1/a"), "{url}");
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        let (exp, sig) = (&q["expires"], &q["signature"]);
        s.verify_signature("q/1/a", exp, sig, now).unwrap();
        assert!(
            s.verify_signature("q/1/b", exp, sig, now).is_err(),
            "other key"
        );
        let later = now + chrono::Duration::seconds(61);
        assert!(matches!(
            s.verify_signature("q/1/a", exp, sig, later),
            Err(StoreError::Signature(SignatureError::Expired { .. }))
        ));
    }
}
