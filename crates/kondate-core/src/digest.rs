//! SHA-256 digests, written `sha256:<64 hex digits>` as in OCI registries, and a copy that
//! hashes exactly the bytes it writes.

use std::io::{self, Read, Write};
use std::sync::mpsc;

use sha2::{Digest as _, Sha256};

use crate::CoreError;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Parse `sha256:<64 lowercase hex digits>`.
    pub fn parse(s: &str) -> Result<Digest, CoreError> {
        let bad = |reason: &str| CoreError::InvalidName {
            what: "digest",
            value: s.chars().take(80).collect(),
            reason: format!("{reason}; write it as sha256: followed by 64 lowercase hex digits"),
        };
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| bad("it does not start with `sha256:`"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad("it is not 64 lowercase hex digits"));
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("checked hex");
        }
        Ok(Digest(out))
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest(Sha256::digest(data).into())
    }

    /// The 64 hex digits, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(64);
        for b in self.0 {
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An incremental hasher, for bytes that arrive in pieces (an HTTP body).
#[derive(Default, Clone)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish(self) -> Digest {
        Digest(self.0.finalize().into())
    }
}

/// Chunk size of [`copy_hashing`]: large enough that per-chunk costs vanish, small enough
/// that the few chunks in flight keep memory flat.
pub const CHUNK: usize = 1 << 20;

/// Copy `reader` to `writer` and return the SHA-256 of the bytes written and their count.
/// The digest is computed on a second thread while the next chunk is read and written, so
/// hashing costs no wall time when the copy is slower than SHA-256 (about 2 GB/s with the
/// CPU's SHA extensions). At most four chunks are in flight: memory stays flat whatever
/// the size. `progress` is called with the bytes of each chunk written.
pub fn copy_hashing(
    reader: &mut dyn Read,
    writer: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> io::Result<(Digest, u64)> {
    const IN_FLIGHT: usize = 4;
    std::thread::scope(|s| {
        let (to_hasher, from_copier) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
        let (to_copier, returned) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT + 1);
        let hasher = s.spawn(move || {
            let mut h = Sha256::new();
            for chunk in from_copier {
                h.update(&chunk);
                // The copier may have stopped taking buffers back; that is fine.
                let _ = to_copier.try_send(chunk);
            }
            Digest(h.finalize().into())
        });
        let mut total = 0u64;
        let copied = (|| -> io::Result<()> {
            loop {
                let mut buf = returned.try_recv().unwrap_or_else(|_| vec![0; CHUNK]);
                buf.resize(CHUNK, 0);
                let n = read_full(reader, &mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                buf.truncate(n);
                writer.write_all(&buf)?;
                total += n as u64;
                progress(n as u64);
                if to_hasher.send(buf).is_err() {
                    return Err(io::Error::other("the hashing thread stopped"));
                }
            }
        })();
        drop(to_hasher);
        let digest = hasher
            .join()
            .map_err(|_| io::Error::other("the hashing thread panicked"))?;
        copied?;
        writer.flush()?;
        Ok((digest, total))
    })
}

/// Copy the file `src` to the file `dst` (both positioned at their start) and return the
/// SHA-256 of the bytes now in `dst` and their count — the bytes stored, not the bytes
/// meant to be stored. The copy runs in the kernel (`std::io::copy` between files uses
/// `copy_file_range` on Linux, and falls back to read/write elsewhere), one chunk at a
/// time; a second thread reads back each chunk just written to `dst` (from the page cache)
/// and hashes it while the next chunk is copied. Memory stays at two chunks whatever the
/// size. `progress` is called with the bytes of each chunk copied. `dst` must be open for
/// reading and writing ([`create_rw`]).
pub fn copy_file_hashing(
    src: &std::fs::File,
    dst: &std::fs::File,
    progress: &mut dyn FnMut(u64),
) -> io::Result<(Digest, u64)> {
    use std::os::unix::fs::FileExt;
    const COPY_CHUNK: u64 = 4 * CHUNK as u64;
    let reader = dst.try_clone()?;
    std::thread::scope(|s| {
        // (offset, length) of each chunk copied; a few may wait to be hashed.
        let (to_hasher, copied) = mpsc::sync_channel::<(u64, u64)>(4);
        let hasher = s.spawn(move || -> io::Result<Digest> {
            let mut h = Sha256::new();
            let mut buf = vec![0u8; CHUNK];
            for (start, len) in copied {
                let mut off = start;
                while off < start + len {
                    let n = (start + len - off).min(CHUNK as u64) as usize;
                    reader.read_exact_at(&mut buf[..n], off)?;
                    h.update(&buf[..n]);
                    off += n as u64;
                }
            }
            Ok(Digest(h.finalize().into()))
        });
        let mut total = 0u64;
        let result = (|| -> io::Result<()> {
            let mut from = src;
            let mut to = dst;
            loop {
                let n = io::copy(&mut Read::take(&mut from, COPY_CHUNK), &mut to)?;
                if n == 0 {
                    return Ok(());
                }
                if to_hasher.send((total, n)).is_err() {
                    // The hasher stopped on an error, returned below.
                    return Ok(());
                }
                total += n;
                progress(n);
            }
        })();
        drop(to_hasher);
        let digest = hasher
            .join()
            .map_err(|_| io::Error::other("the hashing thread panicked"))?;
        result?;
        Ok((digest?, total))
    })
}

/// Create (or truncate) `path` open for reading and writing, as [`copy_file_hashing`]
/// needs its destination.
pub fn create_rw(path: &std::path::Path) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// The digest and size of a reader's bytes (a file before it is uploaded).
pub fn hash_reader(
    reader: &mut dyn Read,
    progress: &mut dyn FnMut(u64),
) -> io::Result<(Digest, u64)> {
    copy_hashing(reader, &mut io::sink(), progress)
}

/// Fill `buf` as far as the reader allows; fewer bytes only at the end.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_parses_and_prints() {
        let d = Digest::of(b"abc");
        let s = d.to_string();
        assert_eq!(
            s,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Digest::parse(&s).unwrap(), d);
        for bad in [
            "ba7816bf",
            "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
            "sha256:../../etc/passwd",
            "sha1:abc",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn file_copy_hashes_the_bytes_stored() {
        let dir = tempfile::tempdir().unwrap();
        for size in [0usize, 1, 4 * CHUNK, 9 * CHUNK + 777] {
            let data: Vec<u8> = (0..size).map(|i| (i * 13 % 251) as u8).collect();
            let src = dir.path().join("src");
            let dst = dir.path().join("dst");
            std::fs::write(&src, &data).unwrap();
            let mut seen = 0;
            let (d, n) = copy_file_hashing(
                &std::fs::File::open(&src).unwrap(),
                &create_rw(&dst).unwrap(),
                &mut |k| seen += k,
            )
            .unwrap();
            assert_eq!(n, size as u64);
            assert_eq!(seen, size as u64);
            assert_eq!(d, Digest::of(&data), "size {size}");
            assert_eq!(std::fs::read(&dst).unwrap(), data);
        }
    }

    #[test]
    fn copy_hashes_what_it_writes() {
        // Several chunks and a ragged end.
        let data: Vec<u8> = (0..(3 * CHUNK + 12345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut out = Vec::new();
        let mut seen = 0;
        let (d, n) = copy_hashing(&mut &data[..], &mut out, &mut |k| seen += k).unwrap();
        assert_eq!(out, data);
        assert_eq!(n, data.len() as u64);
        assert_eq!(seen, n);
        assert_eq!(d, Digest::of(&data));
        let (e, _) = hash_reader(&mut &b""[..], &mut |_| {}).unwrap();
        assert_eq!(e, Digest::of(b""));
    }

    #[test]
    fn a_failing_writer_is_an_error() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let data = [1u8; 10];
        let err = copy_hashing(&mut &data[..], &mut Full, &mut |_| {}).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    }
}
