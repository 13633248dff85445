//! Terminal progress and result writers (CSV, JSON lines, Parquet).

use std::io::Write;
use std::path::Path;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kondate_client::{ClientError, ResultSet, Value};

use crate::Failure;

/// True when progress should be drawn: stderr is a terminal and not in CI.
fn interactive() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}

/// A spinner on stderr, hidden in pipes and CI.
pub fn spinner(message: &str) -> ProgressBar {
    let pb = if interactive() {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
    };
    pb.set_message(message.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

/// A row counter bar on stderr, hidden in pipes and CI.
pub fn rows_bar(total: Option<u64>) -> ProgressBar {
    if !interactive() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total.unwrap_or(0));
    pb.set_style(
        ProgressStyle::with_template("{bar:40} {human_pos}/{human_len} rows  {per_sec}  eta {eta}")
            .expect("valid template"),
    );
    pb
}

/// A byte counter bar on stderr, hidden in pipes and CI.
pub fn bytes_bar(total: u64) -> ProgressBar {
    if !interactive() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes}  {bytes_per_sec}  eta {eta}")
            .expect("valid template"),
    );
    pb
}

/// Output formats of `kondate query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RowFormat {
    Csv,
    Jsonl,
    Parquet,
}

fn csv_cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Text(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Date(d) => d.to_string(),
        Value::Timestamp(t) => t.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
        Value::TimestampTz(t) => t.to_rfc3339(),
    }
}

/// Stream a result to `out` (stdout when `None`); returns the rows written.
pub async fn write_result(
    rs: ResultSet,
    format: RowFormat,
    out: Option<&Path>,
) -> Result<u64, Failure> {
    let bar = rows_bar(rs.record_count);
    let names: Vec<String> = rs.columns.iter().map(|c| c.name.clone()).collect();
    let mut n = 0u64;
    match format {
        RowFormat::Parquet => {
            let path = out.ok_or_else(|| Failure::invalid("--format parquet needs --out FILE"))?;
            let schema = kondate_client::arrow::schema(&rs);
            let tmp = path.with_extension("parquet.partial");
            let file =
                std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
            let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None)?;
            let mut batches = rs.record_batches(64 * 1024);
            while let Some(b) = batches.next().await {
                let b = b.map_err(client_failure)?;
                n += b.num_rows() as u64;
                bar.set_position(n);
                w.write(&b)?;
            }
            w.close()?;
            // Only a complete file takes the final name.
            std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        RowFormat::Csv | RowFormat::Jsonl => {
            let (sink, tmp): (Box<dyn Write>, Option<std::path::PathBuf>) = match out {
                Some(p) => {
                    let tmp = p.with_extension("partial");
                    let f = std::fs::File::create(&tmp)
                        .map_err(|e| format!("{}: {e}", tmp.display()))?;
                    (Box::new(std::io::BufWriter::new(f)), Some(tmp))
                }
                None => (
                    Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
                    None,
                ),
            };
            let mut rows = rs.rows();
            if format == RowFormat::Csv {
                let mut w = csv::Writer::from_writer(sink);
                w.write_record(&names)?;
                while let Some(row) = rows.next().await {
                    let row = row.map_err(client_failure)?;
                    w.write_record(row.iter().map(csv_cell))?;
                    n += 1;
                    if n.is_multiple_of(8192) {
                        bar.set_position(n);
                    }
                }
                w.flush()?;
            } else {
                let mut w = sink;
                while let Some(row) = rows.next().await {
                    let row = row.map_err(client_failure)?;
                    // Written by hand to keep the columns in the query's order (a JSON map
                    // would sort them).
                    w.write_all(b"{")?;
                    for (i, (name, v)) in names.iter().zip(row.iter()).enumerate() {
                        if i > 0 {
                            w.write_all(b",")?;
                        }
                        serde_json::to_writer(&mut w, name)?;
                        w.write_all(b":")?;
                        serde_json::to_writer(&mut w, v)?;
                    }
                    w.write_all(b"}")?;
                    w.write_all(b"\n")?;
                    n += 1;
                    if n.is_multiple_of(8192) {
                        bar.set_position(n);
                    }
                }
                w.flush()?;
            }
            if let (Some(tmp), Some(p)) = (tmp, out) {
                std::fs::rename(&tmp, p).map_err(|e| format!("{}: {e}", p.display()))?;
            }
        }
    }
    bar.finish_and_clear();
    Ok(n)
}

/// Map a client error to an exit code.
pub fn client_failure(e: ClientError) -> Failure {
    match e {
        ClientError::QueryFailed { .. } => Failure {
            code: crate::exit::QUERY_FAILED,
            message: e.to_string(),
        },
        ClientError::Api {
            status: 400..=404, ..
        }
        | ClientError::Config(_) => Failure::invalid(e.to_string()),
        e => Failure::from(e),
    }
}

/// Map a query-service error to an exit code: bad input is 2, the rest 1.
pub fn query_failure(e: kondate_query::QueryError) -> Failure {
    match e {
        kondate_query::QueryError::InvalidParameter(_) | kondate_query::QueryError::NotFound(_) => {
            Failure::invalid(e.to_string())
        }
        e => Failure::from(e),
    }
}

/// `failure`, saying which other processes were doing the same work when this one started
/// (whom it waited for, if it did): a "try again" then says who to wait for.
pub fn while_others(mut failure: Failure, others: &[String]) -> Failure {
    if !others.is_empty() {
        failure.message = format!(
            "{} (when this started, {} was doing the same; `kondate processes` shows it)",
            failure.message,
            others.join(", and ")
        );
    }
    failure
}
