//! kondate-client: the Rust client of the kondate query API (Queuery-compatible).
//!
//! Submit a SELECT, wait for it, then stream typed rows or Arrow record batches. Result
//! parts are downloaded several at a time and decoded as they arrive, so memory stays flat
//! whatever the result size: at most `concurrency` parts are in flight, each buffering a
//! bounded number of rows.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kondate_client::ClientError> {
//! use futures::StreamExt;
//! let client = kondate_client::Client::from_env()?;
//! let result = client.query("SELECT id, title FROM recipes.recipes WHERE id < ?", &["100"]).await?;
//! let mut rows = result.rows();
//! while let Some(row) = rows.next().await {
//!     println!("{:?}", row?);
//! }
//! # Ok(()) }
//! ```

pub mod arrow;
mod decode;
pub mod labels;
pub mod models;
pub mod results;

use std::time::Duration;

use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;

pub use decode::{ColumnInfo, Kind, Row, Value};

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("request to {url} failed: {message}")]
    Http { url: String, message: String },
    #[error("the server answered {status}: {message}")]
    Api { status: u16, message: String },
    #[error("query {id} failed: {message}")]
    QueryFailed { id: i64, message: String },
    #[error("query {id} did not finish within {waited:?}")]
    Timeout { id: i64, waited: Duration },
    #[error("{part}, row {row}: {message}")]
    Decode {
        part: String,
        row: u64,
        message: String,
    },
    #[error("{file}: {message}")]
    Corrupt { file: String, message: String },
    #[error("building Arrow batches: {0}")]
    Arrow(String),
}

/// A query as the API reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct QueryResponse {
    pub id: i64,
    pub status: String,
    #[serde(default)]
    pub data_file_urls: Vec<String>,
    pub error: Option<String>,
    #[serde(default)]
    pub manifest_file_url: Option<String>,
}

/// The `manifest verbose` document (the parts of it the client reads).
#[derive(Debug, Clone, Deserialize)]
struct Manifest {
    schema: ManifestSchema,
    meta: ManifestMeta,
}

#[derive(Debug, Clone, Deserialize)]
struct ManifestSchema {
    elements: Vec<ManifestElement>,
}

#[derive(Debug, Clone, Deserialize)]
struct ManifestElement {
    name: String,
    #[serde(rename = "type")]
    type_: ManifestType,
}

#[derive(Debug, Clone, Deserialize)]
struct ManifestType {
    base: String,
}

#[derive(Debug, Clone, Deserialize)]
struct ManifestMeta {
    record_count: u64,
}

/// A client of one kondate (or Queuery) server.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    auth: Option<(String, String)>,
    /// Longest to wait for a query.
    pub timeout: Duration,
    /// Parts downloaded at once.
    pub concurrency: usize,
}

/// By hand, so that the token's secret never reaches a log through `{:?}`.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .field("token", &self.auth.as_ref().map(|(t, _)| t))
            .field("secret", &self.auth.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

fn http_err(url: &str, e: reqwest::Error) -> ClientError {
    ClientError::Http {
        url: url.to_string(),
        message: e.to_string(),
    }
}

impl Client {
    /// A client of `endpoint` (e.g. `http://127.0.0.1:7878`), with a token and its secret.
    pub fn new(endpoint: &str, token: Option<(&str, &str)>) -> Result<Client, ClientError> {
        url::Url::parse(endpoint)
            .map_err(|e| ClientError::Config(format!("endpoint `{endpoint}` is not a URL: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Config(e.to_string()))?;
        Ok(Client {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            auth: token.map(|(t, s)| (t.to_string(), s.to_string())),
            timeout: Duration::from_secs(3600),
            concurrency: 4,
        })
    }

    /// From `KONDATE_ENDPOINT`/`KONDATE_TOKEN`/`KONDATE_TOKEN_SECRET`, falling back to the
    /// Queuery client's `QUEUERY_ENDPOINT`/`QUEUERY_TOKEN`/`QUEUERY_TOKEN_SECRET`.
    pub fn from_env() -> Result<Client, ClientError> {
        let var = |a: &str, b: &str| std::env::var(a).or_else(|_| std::env::var(b)).ok();
        let endpoint = var("KONDATE_ENDPOINT", "QUEUERY_ENDPOINT").ok_or_else(|| {
            ClientError::Config(
                "set KONDATE_ENDPOINT (or QUEUERY_ENDPOINT) to the server's URL".into(),
            )
        })?;
        let token = var("KONDATE_TOKEN", "QUEUERY_TOKEN");
        let secret = var("KONDATE_TOKEN_SECRET", "QUEUERY_TOKEN_SECRET");
        match (&token, &secret) {
            (Some(t), Some(s)) => Client::new(&endpoint, Some((t, s))),
            (None, None) => Client::new(&endpoint, None),
            _ => Err(ClientError::Config(
                "set both KONDATE_TOKEN and KONDATE_TOKEN_SECRET, or neither".into(),
            )),
        }
    }

    fn authed(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Some((t, s)) => rb.basic_auth(t, Some(s)),
            None => rb,
        }
    }

    async fn api<T: serde::de::DeserializeOwned>(
        &self,
        rb: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<T, ClientError> {
        let resp = self.authed(rb).send().await.map_err(|e| http_err(url, e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| http_err(url, e))?;
        if !status.is_success() {
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or(text);
            return Err(ClientError::Api {
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_str(&text).map_err(|e| ClientError::Http {
            url: url.to_string(),
            message: format!("unexpected response body: {e}"),
        })
    }

    /// Submit a SELECT with values for its `?` placeholders; `format` is `csv` or `parquet`.
    pub async fn submit(
        &self,
        sql: &str,
        values: &[&str],
        format: &str,
    ) -> Result<QueryResponse, ClientError> {
        let url = format!("{}/v1/queries", self.endpoint);
        let mut form: Vec<(&str, &str)> =
            vec![("q", sql), ("enable_metadata", "true"), ("format", format)];
        form.extend(values.iter().map(|v| ("values[]", *v)));
        self.api(self.http.post(&url).form(&form), &url).await
    }

    /// The current state of query `id`, with its manifest URL.
    pub async fn status(&self, id: i64) -> Result<QueryResponse, ClientError> {
        let url = format!(
            "{}/v1/queries/{id}?fields=__default__,manifest_file_url",
            self.endpoint
        );
        self.api(self.http.get(&url), &url).await
    }

    /// Poll until query `id` finishes (backing off from 50 ms to 2 s).
    pub async fn wait(&self, id: i64) -> Result<QueryResponse, ClientError> {
        let start = std::time::Instant::now();
        let mut delay = Duration::from_millis(50);
        loop {
            let r = self.status(id).await?;
            match r.status.as_str() {
                "success" => return Ok(r),
                "failed" => {
                    return Err(ClientError::QueryFailed {
                        id,
                        message: r.error.unwrap_or_else(|| "no reason given".into()),
                    });
                }
                _ => {}
            }
            if start.elapsed() >= self.timeout {
                return Err(ClientError::Timeout {
                    id,
                    waited: start.elapsed(),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// Submit, wait, and return the result ready to stream.
    pub async fn query(&self, sql: &str, values: &[&str]) -> Result<ResultSet, ClientError> {
        let r = self.submit(sql, values, "csv").await?;
        let done = self.wait(r.id).await?;
        self.result(done).await
    }

    /// The result of a finished query.
    pub async fn result(&self, done: QueryResponse) -> Result<ResultSet, ClientError> {
        let (columns, record_count) = match &done.manifest_file_url {
            Some(url) => {
                let m: Manifest = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| http_err(url, e))?
                    .json()
                    .await
                    .map_err(|e| http_err(url, e))?;
                (
                    m.schema
                        .elements
                        .into_iter()
                        .map(|e| ColumnInfo {
                            name: e.name,
                            redshift_type: e.type_.base,
                        })
                        .collect(),
                    Some(m.meta.record_count),
                )
            }
            None => (Vec::new(), None),
        };
        let http = self.http.clone();
        let sources: Vec<PartSource> = done
            .data_file_urls
            .iter()
            .map(|url| {
                let http = http.clone();
                let name = part_name(url);
                let url = url.clone();
                let open: PartOpener = Box::new(move || {
                    Box::pin(async move {
                        let resp = http
                            .get(&url)
                            .send()
                            .await
                            .and_then(|r| r.error_for_status())
                            .map_err(|e| http_err(&url, e))?;
                        let stream = resp.bytes_stream().map_err(std::io::Error::other);
                        Ok(Box::pin(stream) as ByteStream)
                    })
                });
                PartSource { name, open }
            })
            .collect();
        Ok(ResultSet {
            id: done.id,
            columns,
            record_count,
            parts: sources,
            concurrency: self.concurrency,
        })
    }
}

/// Part names in errors leave out the signature.
fn part_name(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}

/// A stream of a part's raw (gzip) bytes.
pub type ByteStream = BoxStream<'static, Result<bytes::Bytes, std::io::Error>>;
/// Opens one part when its turn comes.
pub type PartOpener = Box<
    dyn FnOnce() -> futures::future::BoxFuture<'static, Result<ByteStream, ClientError>> + Send,
>;

/// One result part, opened lazily.
pub struct PartSource {
    /// Names the part in errors.
    pub name: String,
    pub open: PartOpener,
}

/// A finished query's result, ready to stream.
pub struct ResultSet {
    pub id: i64,
    /// Columns from the manifest (empty when the server sent none).
    pub columns: Vec<ColumnInfo>,
    /// Total rows according to the manifest.
    pub record_count: Option<u64>,
    parts: Vec<PartSource>,
    concurrency: usize,
}

/// Rows decoded before they are handed over as one chunk (one channel message per chunk,
/// not per row).
const ROWS_PER_CHUNK: usize = 1024;
/// Chunks buffered per part being decoded.
const CHUNKS_PER_PART_BUFFER: usize = 4;

impl ResultSet {
    /// A result read from arbitrary part sources (e.g. straight from an object store).
    pub fn from_parts(
        id: i64,
        columns: Vec<ColumnInfo>,
        record_count: Option<u64>,
        parts: Vec<PartSource>,
    ) -> Self {
        Self {
            id,
            columns,
            record_count,
            parts,
            concurrency: 4,
        }
    }

    /// The cast each column gets.
    pub fn kinds(&self) -> Vec<Kind> {
        self.columns
            .iter()
            .map(|c| Kind::for_redshift(&c.redshift_type))
            .collect()
    }

    /// Every row, in part order. Up to `concurrency` parts download and decode at once, each
    /// into a bounded buffer, so memory is bounded whatever the result size.
    pub fn rows(self) -> BoxStream<'static, Result<Row, ClientError>> {
        let kinds = self.kinds();
        self.decode_parts(CHUNKS_PER_PART_BUFFER, move |reader, name, tx| {
            let mut chunk = Vec::with_capacity(ROWS_PER_CHUNK);
            let result = decode::decode_part(reader, &kinds, name, |row| {
                chunk.push(row);
                if chunk.len() < ROWS_PER_CHUNK {
                    return true;
                }
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(ROWS_PER_CHUNK));
                tx.blocking_send(Ok(full)).is_ok()
            });
            // Rows read before an error are still handed over, then the error.
            if !chunk.is_empty() {
                let _ = tx.blocking_send(Ok(chunk));
            }
            result
        })
        .map_ok(|rows| futures::stream::iter(rows.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }

    /// Decode every part with `decode` on a blocking thread, each into a channel holding
    /// `buffer` items, up to `concurrency` parts at once; items come out in part order.
    /// `decode` gets the part's (gzip) bytes, its name for errors, and the channel; its
    /// error is sent after whatever it sent.
    pub(crate) fn decode_parts<T, D>(
        self,
        buffer: usize,
        decode: D,
    ) -> BoxStream<'static, Result<T, ClientError>>
    where
        T: Send + 'static,
        D: Fn(PartReader, &str, &mpsc::Sender<Result<T, ClientError>>) -> Result<(), ClientError>
            + Send
            + Sync
            + 'static,
    {
        let decode = std::sync::Arc::new(decode);
        let per_part = self.parts.into_iter().map(move |part| {
            let decode = decode.clone();
            async move {
                let stream = (part.open)().await?;
                let (tx, rx) = mpsc::channel(buffer.max(1));
                let name = part.name;
                tokio::task::spawn_blocking(move || {
                    let reader = tokio_util::io::SyncIoBridge::new(
                        tokio_util::io::StreamReader::new(stream),
                    );
                    if let Err(e) = decode(reader, &name, &tx) {
                        let _ = tx.blocking_send(Err(e));
                    }
                });
                Ok::<_, ClientError>(rx)
            }
        });
        futures::stream::iter(per_part)
            .buffered(self.concurrency.max(1))
            .flat_map(|r| match r {
                Ok(mut rx) => futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed(),
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            })
            .boxed()
    }
}

/// A part's raw bytes, readable on a blocking thread.
pub(crate) type PartReader =
    tokio_util::io::SyncIoBridge<tokio_util::io::StreamReader<ByteStream, bytes::Bytes>>;

#[cfg(test)]
mod debug_tests {
    #[test]
    fn a_clients_debug_never_shows_its_secret() {
        let c = super::Client::new("http://127.0.0.1:1", Some(("job", "s3cret-value-42"))).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret-value-42"), "{shown}");
        assert!(shown.contains("job"));
    }
}
