//! Captured output: a run's stdout and stderr, line by line, each line stamped with the time
//! it was read and its stream, secrets masked.
//!
//! The log is text, one line per output line: `2026-11-27T05:17:05.123Z out hello` (`out`
//! or `err`), easy to grep and to stream. Lines are read in large chunks and every line of
//! a chunk shares the chunk's timestamp (they arrived together), so stamping costs one clock
//! read per chunk, not per line; a line longer than [`MAX_LINE`] is cut there, so memory
//! stays flat whatever the process writes.

use std::io::{self, Read, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::secrets::Masker;

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn tag(self) -> &'static [u8] {
        match self {
            Stream::Stdout => b"out",
            Stream::Stderr => b"err",
        }
    }
}

/// Longest line kept whole; longer lines are split.
pub const MAX_LINE: usize = 1 << 20;
const READ_CHUNK: usize = 256 << 10;

/// Receives each chunk of complete, masked lines as the process writes them (to show a run
/// live).
pub type LiveSink = dyn Fn(Stream, &[u8]) + Send + Sync;

/// The log being written: both streams go through one writer, a chunk at a time.
pub struct LogWriter {
    out: Mutex<Box<dyn Write + Send>>,
    bytes: AtomicU64,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl LogWriter {
    pub fn new(out: Box<dyn Write + Send>) -> LogWriter {
        LogWriter {
            out: Mutex::new(out),
            bytes: AtomicU64::new(0),
        }
    }

    /// Bytes of output captured (the process's, without stamps).
    #[cfg(test)]
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Write a line of kondate's own (why a run stopped, …) into the log.
    pub fn note(&self, stream: Stream, text: &str) -> io::Result<()> {
        let mut buf = Vec::new();
        stamp(&mut buf, &now_stamp(), stream, text.as_bytes());
        let mut out = self.out.lock().expect("log lock");
        out.write_all(&buf)?;
        out.flush()
    }

    pub fn flush(&self) -> io::Result<()> {
        self.out.lock().expect("log lock").flush()
    }
}

fn now_stamp() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn stamp(buf: &mut Vec<u8>, ts: &str, stream: Stream, line: &[u8]) {
    buf.extend_from_slice(ts.as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(stream.tag());
    buf.push(b' ');
    buf.extend_from_slice(line);
    buf.push(b'\n');
}

/// Read `input` to its end, writing every line to `log` (and `live`). Returns when the
/// stream closes; an error reading it ends the capture with that error.
pub fn capture(
    mut input: impl Read,
    stream: Stream,
    log: &LogWriter,
    masker: &Masker,
    live: Option<&LiveSink>,
) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK * 2);
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK * 2);
    loop {
        let start = buf.len();
        buf.resize(start + READ_CHUNK, 0);
        let n = loop {
            match input.read(&mut buf[start..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    buf.truncate(start);
                    flush_lines(&buf, stream, log, masker, live, &mut out)?;
                    return Err(e);
                }
            }
        };
        buf.truncate(start + n);
        if n == 0 {
            flush_lines(&buf, stream, log, masker, live, &mut out)?;
            log.flush()?;
            return Ok(());
        }
        // Everything up to the last newline is complete lines; a partial line waits for
        // the next read unless it is already too long. Then it is cut, but the last
        // `longest secret - 1` bytes wait for the next read: a secret straddling the cut
        // is then wholly in the next piece, and masked there.
        let complete = match memchr::memrchr(b'\n', &buf[start..]) {
            Some(i) => start + i + 1,
            None if buf.len() >= MAX_LINE => {
                buf.len() - masker.longest().saturating_sub(1).min(buf.len())
            }
            None => continue,
        };
        flush_lines(&buf[..complete], stream, log, masker, live, &mut out)?;
        buf.drain(..complete);
    }
}

fn flush_lines(
    data: &[u8],
    stream: Stream,
    log: &LogWriter,
    masker: &Masker,
    live: Option<&LiveSink>,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let masked;
    let data = if !masker.is_empty() && masker.hits(data) {
        masked = masker.mask(data);
        &masked[..]
    } else {
        data
    };
    let ts = now_stamp();
    out.clear();
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    for piece in body.split(|&b| b == b'\n') {
        for line in piece
            .chunks(MAX_LINE)
            .chain((piece.is_empty()).then_some(&[][..]))
        {
            stamp(out, &ts, stream, line.strip_suffix(b"\r").unwrap_or(line));
        }
    }
    {
        let mut w = log.out.lock().expect("log lock");
        w.write_all(out)?;
    }
    log.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
    if let Some(live) = live {
        live(stream, data);
    }
    Ok(())
}

/// One line of a stored log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    pub time: String,
    pub stream: Stream,
    pub text: String,
}

/// Parse a stored log line (without its newline); None for a line not in the format.
pub fn parse_line(line: &[u8]) -> Option<LogLine> {
    let mut parts = line.splitn(3, |&b| b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?.to_string();
    let stream = match parts.next()? {
        b"out" => Stream::Stdout,
        b"err" => Stream::Stderr,
        _ => return None,
    };
    let text = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    Some(LogLine { time, stream, text })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Reads in tiny pieces, to split lines across reads.
    struct Dribble<'a>(&'a [u8]);
    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(3).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn run(input: &[u8], masker: &Masker) -> Vec<LogLine> {
        let sink = Shared::default();
        let log = LogWriter::new(Box::new(sink.clone()));
        capture(Dribble(input), Stream::Stderr, &log, masker, None).unwrap();
        let data = sink.0.lock().unwrap().clone();
        data.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| parse_line(l).unwrap())
            .collect()
    }

    #[test]
    fn lines_split_across_reads_are_joined_and_stamped() {
        let lines = run(
            b"hello world\r\n\nsecond line\nno newline at end",
            &Masker::default(),
        );
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            ["hello world", "", "second line", "no newline at end"]
        );
        assert!(lines.iter().all(|l| l.stream == Stream::Stderr));
        assert!(
            lines[0].time.ends_with('Z') && lines[0].time.len() == 24,
            "{}",
            lines[0].time
        );
    }

    #[test]
    fn secrets_are_masked_even_when_split_across_reads() {
        let m = Masker::new(["hunter2!"]);
        let lines = run(b"password is hunter2! ok\nhunter2!\n", &m);
        assert_eq!(lines[0].text, "password is ******** ok");
        assert_eq!(lines[1].text, "********");
    }

    #[test]
    fn a_secret_across_the_cut_of_a_long_line_is_still_masked() {
        // A progress bar redrawn with `\r` never ends its line: it is cut at MAX_LINE, and
        // the secret sits across that cut.
        let m = Masker::new(["s3cret-token-value"]);
        let mut input = vec![b'.'; MAX_LINE - 6];
        input.extend_from_slice(b"s3cret-token-value and more\n");
        let sink = Shared::default();
        let log = LogWriter::new(Box::new(sink.clone()));
        // Reads of 64 KiB: the buffer reaches MAX_LINE exactly with the secret's first
        // six bytes in it.
        struct Pieces<'a>(&'a [u8]);
        impl Read for Pieces<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(64 << 10).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        capture(Pieces(&input), Stream::Stdout, &log, &m, None).unwrap();
        let data = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(!data.contains("s3cret"), "the secret leaked across the cut");
        assert!(!data.contains("-token-value"), "part of the secret leaked");
        assert!(data.contains("******** and more"));
    }

    #[test]
    fn very_long_lines_are_cut() {
        let long = vec![b'x'; MAX_LINE + 10];
        let sink = Shared::default();
        let log = LogWriter::new(Box::new(sink.clone()));
        capture(&long[..], Stream::Stdout, &log, &Masker::default(), None).unwrap();
        let data = sink.0.lock().unwrap().clone();
        let lines: Vec<_> = data
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(log.bytes(), (MAX_LINE + 10) as u64);
    }
}
