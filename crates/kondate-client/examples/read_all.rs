//! Benchmark reader: run one query through the API with the Rust client and read every row
//! (or every Arrow batch with `--arrow`), then print `{"rows":…,"seconds":…}` as JSON.
//! Credentials from KONDATE_ENDPOINT/KONDATE_TOKEN/KONDATE_TOKEN_SECRET (or QUEUERY_*).
//!
//! Usage: read_all [--arrow] "SELECT …"

use std::time::Instant;

use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let arrow = args.first().is_some_and(|a| a == "--arrow");
    if arrow {
        args.remove(0);
    }
    let sql = args
        .first()
        .ok_or("usage: read_all [--arrow] \"SELECT …\"")?;
    let client = kondate_client::Client::from_env()?;
    let start = Instant::now();
    let result = client.query(sql, &[]).await?;
    let mut rows = 0u64;
    if arrow {
        let mut batches = result.record_batches(65_536);
        while let Some(b) = batches.next().await {
            rows += b?.num_rows() as u64;
        }
    } else {
        let mut stream = result.rows();
        while let Some(r) = stream.next().await {
            r?;
            rows += 1;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    println!("{{\"rows\":{rows},\"seconds\":{seconds:.3}}}");
    Ok(())
}
