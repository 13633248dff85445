//! Content-addressed objects: a blob is stored under a key derived from its SHA-256, written
//! once, and read back only through a check of that digest.
//!
//! Two ways in, both streaming with flat memory:
//! - [`Store::stage_file`] then [`Store::promote`], for a file on this machine whose digest
//!   is not known yet. On the local store this is one pass: the file is copied into a
//!   staging folder inside the store while it is hashed, then hard-linked to its key (an
//!   atomic create-if-absent). On a cloud store the file is hashed first and then uploaded
//!   (multipart) straight to its key, checked against that digest again on the way, because
//!   cloud stores cannot rename a multi-gigabyte object cheaply.
//! - [`Store::put_verified`], for bytes that arrive with a claimed digest (an HTTP upload):
//!   written while hashed; on a mismatch the write is aborted and nothing appears.
//!
//! And one way out: [`Store::get_verified`] writes a blob to a file, hashing what it writes,
//! and fails naming the key if the bytes do not match.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use kondate_core::digest::{Digest, Hasher, copy_file_hashing, create_rw, hash_reader};
use tokio::io::AsyncWriteExt;

use crate::{Backend, Store, StoreError, backend, object_path};

/// Called with the number of bytes of each chunk copied.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// The staging folder of the local store, inside its root so that a hard link into place is
/// always on the same file system.
const STAGING: &str = "_staging";
/// Multipart part size on cloud stores (S3 needs at least 5 MiB), and parts in flight: at
/// most 32 MiB of a blob is buffered, whatever its size.
const PART: usize = 8 << 20;
const PARTS_IN_FLIGHT: usize = 4;

/// A file read into the store (or hashed, on a cloud store) but not yet under its key.
/// Dropping it removes what was staged.
#[derive(Debug)]
pub struct Staged {
    pub digest: Digest,
    pub size: u64,
    state: StagedState,
}

#[derive(Debug)]
enum StagedState {
    /// A copy in the local store's staging folder.
    Copy(PathBuf),
    /// The source file, to be uploaded by `promote`.
    Source(PathBuf),
    Done,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let StagedState::Copy(p) = &self.state {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn io_err(path: &Path, e: io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source: e,
    }
}

fn staging_name() -> String {
    format!("{}-{:016x}.part", std::process::id(), rand::random::<u64>())
}

/// Move a staged file to `target` unless a file is there already (a hard link never
/// replaces one: create-if-absent, atomically); the staged file is removed either way.
fn link_into_place(file: &Path, target: &Path) -> Result<bool, StoreError> {
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    let created = match std::fs::hard_link(file, target) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => {
            let _ = std::fs::remove_file(file);
            return Err(io_err(target, e));
        }
    };
    std::fs::remove_file(file).map_err(|e| io_err(file, e))?;
    Ok(created)
}

/// Complete a multipart upload when everything went in (the object appears), or abort it
/// (nothing appears; a leftover part is a bucket lifecycle rule's to remove).
async fn finish_upload(
    mut writer: object_store::buffered::BufWriter,
    key: &str,
    outcome: Result<(), StoreError>,
) -> Result<(), StoreError> {
    use tokio::io::AsyncWriteExt;
    match outcome {
        Ok(()) => writer.shutdown().await.map_err(|e| StoreError::Io {
            path: key.to_string(),
            source: e,
        }),
        Err(e) => {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(key, error = %abort, "could not abort a multipart upload");
            }
            Err(e)
        }
    }
}

/// Check bytes read or written under `key` against the size and digest they should have.
fn verify(
    key: &str,
    digest: Digest,
    size: u64,
    actual: Digest,
    actual_size: u64,
) -> Result<(), StoreError> {
    if actual_size != size {
        return Err(StoreError::SizeMismatch {
            key: key.to_string(),
            expected: size,
            actual: actual_size,
        });
    }
    if actual != digest {
        return Err(StoreError::DigestMismatch {
            key: key.to_string(),
            expected: digest,
            actual,
        });
    }
    Ok(())
}

impl Store {
    fn staging_dir(&self) -> Option<PathBuf> {
        match &self.backend {
            Backend::Local { root, .. } => Some(root.join(STAGING)),
            Backend::Cloud { .. } => None,
        }
    }

    fn local_file(&self, key: &str) -> Result<Option<PathBuf>, StoreError> {
        let path = object_path(key)?;
        Ok(match &self.backend {
            Backend::Local { root, .. } => Some(root.join(path.as_ref())),
            Backend::Cloud { .. } => None,
        })
    }

    /// Read `source` into the store (see the module documentation): afterwards its digest
    /// and size are known and [`Store::promote`] puts it under a key.
    pub async fn stage_file(
        &self,
        source: &Path,
        progress: Progress,
    ) -> Result<Staged, StoreError> {
        let source = source.to_path_buf();
        let staging = self.staging_dir();
        tokio::task::spawn_blocking(move || -> Result<Staged, StoreError> {
            let mut input = std::fs::File::open(&source).map_err(|e| io_err(&source, e))?;
            if input.metadata().map_err(|e| io_err(&source, e))?.is_dir() {
                return Err(io_err(&source, io::Error::other("is a folder, not a file")));
            }
            let mut tick = |n| progress(n);
            match staging {
                Some(dir) => {
                    std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
                    let file = dir.join(staging_name());
                    let out = create_rw(&file).map_err(|e| io_err(&file, e))?;
                    // From here on the staged copy is removed if anything fails.
                    let mut staged = Staged {
                        digest: Digest::of(b""),
                        size: 0,
                        state: StagedState::Copy(file.clone()),
                    };
                    // No fsync, as object_store's LocalFileSystem does none: the local store
                    // trusts the OS to write back, and every read checks the digest, so a
                    // file torn by a power cut is caught at pull, never served silently.
                    let (digest, size) = copy_file_hashing(&input, &out, &mut tick)
                        .map_err(|e| io_err(&source, e))?;
                    staged.digest = digest;
                    staged.size = size;
                    Ok(staged)
                }
                None => {
                    let (digest, size) =
                        hash_reader(&mut input, &mut tick).map_err(|e| io_err(&source, e))?;
                    Ok(Staged {
                        digest,
                        size,
                        state: StagedState::Source(source),
                    })
                }
            }
        })
        .await
        .map_err(|e| StoreError::Config(format!("staging task failed: {e}")))?
    }

    /// Put a staged file under `key` unless an object is there already (content-addressed
    /// keys hold the same bytes, so the first one stays). True when this call created it.
    pub async fn promote(
        &self,
        mut staged: Staged,
        key: &str,
        progress: Progress,
    ) -> Result<bool, StoreError> {
        let state = std::mem::replace(&mut staged.state, StagedState::Done);
        match state {
            StagedState::Copy(file) => {
                let target = self
                    .local_file(key)?
                    .expect("a staged copy means a local store");
                tokio::task::spawn_blocking(move || link_into_place(&file, &target))
                    .await
                    .map_err(|e| StoreError::Config(format!("promote task failed: {e}")))?
            }
            StagedState::Source(source) => {
                if let Ok(meta) = self.head(key).await
                    && meta.size == staged.size
                {
                    return Ok(false);
                }
                let file = tokio::fs::File::open(&source)
                    .await
                    .map_err(|e| io_err(&source, e))?;
                let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20)
                    .inspect(move |c| {
                        if let Ok(c) = c {
                            progress(c.len() as u64)
                        }
                    })
                    .boxed();
                self.put_verified(key, staged.digest, staged.size, stream)
                    .await
                    .map_err(|e| match e {
                        StoreError::DigestMismatch { .. } | StoreError::SizeMismatch { .. } => {
                            StoreError::Io {
                                path: source.display().to_string(),
                                source: io::Error::other(
                                    "the file changed while it was being pushed; push it again",
                                ),
                            }
                        }
                        e => e,
                    })
            }
            StagedState::Done => Err(StoreError::Config(
                "a staged file was promoted twice".into(),
            )),
        }
    }

    /// Write `body` under `key` if its bytes have `digest` and `size`; on a mismatch (or a
    /// body that fails half-way) nothing appears under `key`. True when this call created
    /// the object, false when it was there already.
    pub async fn put_verified(
        &self,
        key: &str,
        digest: Digest,
        size: u64,
        mut body: BoxStream<'_, Result<Bytes, io::Error>>,
    ) -> Result<bool, StoreError> {
        let path = object_path(key)?;
        let mut hasher = Hasher::default();
        let mut written = 0u64;
        let check =
            |written: u64, hasher: Hasher| verify(key, digest, size, hasher.finish(), written);
        if let Some(dir) = self.staging_dir() {
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| io_err(&dir, e))?;
            let file = dir.join(staging_name());
            let staged = Staged {
                digest,
                size,
                state: StagedState::Copy(file.clone()),
            };
            let mut out = tokio::fs::File::create(&file)
                .await
                .map_err(|e| io_err(&file, e))?;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| io_err(Path::new(key), e))?;
                written += chunk.len() as u64;
                if written > size {
                    break;
                }
                hasher.update(&chunk);
                out.write_all(&chunk).await.map_err(|e| io_err(&file, e))?;
            }
            out.flush().await.map_err(|e| io_err(&file, e))?;
            drop(out);
            check(written, hasher)?;
            let target = self.local_file(key)?.expect("a local store");
            let mut staged = staged;
            staged.state = StagedState::Done;
            return tokio::task::spawn_blocking(move || link_into_place(&file, &target))
                .await
                .map_err(|e| StoreError::Config(format!("promote task failed: {e}")))?;
        }
        let mut writer =
            object_store::buffered::BufWriter::with_capacity(self.inner.clone(), path, PART)
                .with_max_concurrency(PARTS_IN_FLIGHT);
        let outcome = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| io_err(Path::new(key), e))?;
                written += chunk.len() as u64;
                if written > size {
                    break;
                }
                hasher.update(&chunk);
                writer
                    .put(chunk)
                    .await
                    .map_err(|e| backend("upload", key, e))?;
            }
            check(written, hasher)
        }
        .await;
        finish_upload(writer, key, outcome).await?;
        Ok(true)
    }

    /// Store the file at `path` under `key` (not content-addressed: a log, an export),
    /// replacing what is there; the object appears whole or not at all. On the local store
    /// with `consume`, the file is moved into place (a rename, no copy, when both are on one
    /// file system); otherwise it is copied (local) or uploaded in parts with at most
    /// `PARTS_IN_FLIGHT × PART` bytes buffered (cloud). Returns the bytes stored.
    pub async fn put_file(&self, key: &str, path: &Path, consume: bool) -> Result<u64, StoreError> {
        let object = object_path(key)?;
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| io_err(path, e))?
            .len();
        if let Some(target) = self.local_file(key)? {
            let staging = self.staging_dir().expect("a local store");
            let source = path.to_path_buf();
            return tokio::task::spawn_blocking(move || -> Result<u64, StoreError> {
                if let Some(dir) = target.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
                }
                if consume && std::fs::rename(&source, &target).is_ok() {
                    return Ok(size);
                }
                std::fs::create_dir_all(&staging).map_err(|e| io_err(&staging, e))?;
                let tmp = staging.join(staging_name());
                let copied = std::fs::copy(&source, &tmp)
                    .and_then(|_| std::fs::rename(&tmp, &target))
                    .map_err(|e| io_err(&target, e));
                if copied.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                } else if consume {
                    let _ = std::fs::remove_file(&source);
                }
                copied.map(|()| size)
            })
            .await
            .map_err(|e| StoreError::Config(format!("store task failed: {e}")))?;
        }
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| io_err(path, e))?;
        let mut body = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
        let mut writer =
            object_store::buffered::BufWriter::with_capacity(self.inner.clone(), object, PART)
                .with_max_concurrency(PARTS_IN_FLIGHT);
        let outcome = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| io_err(path, e))?;
                writer
                    .put(chunk)
                    .await
                    .map_err(|e| backend("upload", key, e))?;
            }
            Ok::<(), StoreError>(())
        }
        .await;
        finish_upload(writer, key, outcome).await?;
        if consume {
            let _ = tokio::fs::remove_file(path).await;
        }
        Ok(size)
    }

    /// Write the object `key` to the file `dest` (created or truncated), checking that its
    /// bytes have `digest` and `size`; on a mismatch the error names the key, and the caller
    /// discards `dest`.
    pub async fn get_verified(
        &self,
        key: &str,
        digest: Digest,
        size: u64,
        dest: &Path,
        progress: Progress,
    ) -> Result<(), StoreError> {
        let check =
            |actual_size: u64, actual: Digest| verify(key, digest, size, actual, actual_size);
        if let Some(src) = self.local_file(key)? {
            let dest = dest.to_path_buf();
            let owned = key.to_string();
            let (actual, n) =
                tokio::task::spawn_blocking(move || -> Result<(Digest, u64), StoreError> {
                    let input = std::fs::File::open(&src).map_err(|e| match e.kind() {
                        io::ErrorKind::NotFound => StoreError::NotFound { key: owned },
                        _ => io_err(&src, e),
                    })?;
                    let out = create_rw(&dest).map_err(|e| io_err(&dest, e))?;
                    let mut tick = |n| progress(n);
                    copy_file_hashing(&input, &out, &mut tick).map_err(|e| io_err(&dest, e))
                })
                .await
                .map_err(|e| StoreError::Config(format!("download task failed: {e}")))??;
            return check(n, actual);
        }
        let (_, mut stream) = self.get_stream(key).await?;
        let mut out = tokio::fs::File::create(dest)
            .await
            .map_err(|e| io_err(dest, e))?;
        let mut hasher = Hasher::default();
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            n += chunk.len() as u64;
            out.write_all(&chunk).await.map_err(|e| io_err(dest, e))?;
            progress(chunk.len() as u64);
        }
        out.flush().await.map_err(|e| io_err(dest, e))?;
        check(n, hasher.finish())
    }

    /// Remove staged files older than `before` that a killed process left in the local
    /// store's staging folder (cloud stores keep unfinished multipart uploads out of sight;
    /// a bucket lifecycle rule removes them). Returns how many and their bytes; with
    /// `apply` false, only counts.
    pub fn clean_staging(
        &self,
        before: SystemTime,
        apply: bool,
    ) -> Result<(usize, u64), StoreError> {
        let Some(dir) = self.staging_dir() else {
            return Ok((0, 0));
        };
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, 0)),
            Err(e) => return Err(io_err(&dir, e)),
        };
        let (mut n, mut bytes) = (0, 0);
        for entry in entries {
            let entry = entry.map_err(|e| io_err(&dir, e))?;
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() || meta.modified().map_or(true, |m| m > before) {
                continue;
            }
            if apply {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err(&entry.path(), e)),
                }
            }
            n += 1;
            bytes += meta.len();
        }
        Ok((n, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UrlSigner;

    fn store(dir: &Path) -> Store {
        Store::local(dir, UrlSigner::new(vec![7; 32], "http://127.0.0.1:7878")).unwrap()
    }

    fn quiet() -> Progress {
        Arc::new(|_| {})
    }

    #[tokio::test]
    async fn staged_files_land_once_under_their_key() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(&tmp.path().join("store"));
        let src = tmp.path().join("model.bin");
        std::fs::write(&src, b"weights").unwrap();
        let staged = s.stage_file(&src, quiet()).await.unwrap();
        assert_eq!(staged.digest, Digest::of(b"weights"));
        let key = format!("blobs/{}", staged.digest.hex());
        assert!(s.promote(staged, &key, quiet()).await.unwrap());
        let again = s.stage_file(&src, quiet()).await.unwrap();
        assert!(
            !s.promote(again, &key, quiet()).await.unwrap(),
            "second copy kept"
        );
        assert_eq!(s.get(&key).await.unwrap(), Bytes::from_static(b"weights"));
        // Nothing left in staging, and a dropped staging copy is removed.
        let dropped = s.stage_file(&src, quiet()).await.unwrap();
        drop(dropped);
        assert_eq!(
            std::fs::read_dir(tmp.path().join("store/_staging"))
                .unwrap()
                .count(),
            0
        );

        let dest = tmp.path().join("out.bin");
        s.get_verified(&key, Digest::of(b"weights"), 7, &dest, quiet())
            .await
            .unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"weights");
    }

    #[tokio::test]
    async fn a_wrong_digest_writes_nothing_and_a_corrupt_blob_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(&tmp.path().join("store"));
        let body = futures::stream::iter([Ok(Bytes::from_static(b"abc"))]).boxed();
        let err = s
            .put_verified("blobs/x", Digest::of(b"abd"), 3, body)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
        let body = futures::stream::iter([Ok(Bytes::from_static(b"abcd"))]).boxed();
        let err = s
            .put_verified("blobs/x", Digest::of(b"abc"), 3, body)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::SizeMismatch { .. }), "{err}");
        assert!(matches!(
            s.head("blobs/x").await,
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(
            s.clean_staging(SystemTime::now() + std::time::Duration::from_secs(1), false)
                .unwrap()
                .0,
            0
        );

        let body = futures::stream::iter([Ok(Bytes::from_static(b"abc"))]).boxed();
        assert!(
            s.put_verified("blobs/x", Digest::of(b"abc"), 3, body)
                .await
                .unwrap()
        );
        std::fs::write(tmp.path().join("store/blobs/x"), b"abX").unwrap();
        let err = s
            .get_verified(
                "blobs/x",
                Digest::of(b"abc"),
                3,
                &tmp.path().join("o"),
                quiet(),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("blobs/x"), "{err}");
    }

    #[tokio::test]
    async fn leftovers_in_staging_are_cleaned_by_age() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(&tmp.path().join("store"));
        std::fs::create_dir_all(tmp.path().join("store/_staging")).unwrap();
        std::fs::write(tmp.path().join("store/_staging/1-dead.part"), b"half").unwrap();
        let past = SystemTime::now() - std::time::Duration::from_secs(3600);
        assert_eq!(
            s.clean_staging(past, true).unwrap(),
            (0, 0),
            "young files stay"
        );
        let later = SystemTime::now() + std::time::Duration::from_secs(1);
        assert_eq!(s.clean_staging(later, false).unwrap(), (1, 4));
        assert_eq!(s.clean_staging(later, true).unwrap(), (1, 4));
        assert_eq!(s.clean_staging(later, true).unwrap(), (0, 0));
    }
}
