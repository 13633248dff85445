//! The reference recipe project's jobs, written against `kondate-client` only — what an ML
//! engineer copies to start their own:
//!
//! - [`jobs::train`]: the latest revision of the `recipe_category` labels joined with the
//!   recipes' text (title, description, ingredient names normalised by the
//!   `ingredient_names` sheet) read through the query API; character n-gram features
//!   ([`features`]) and a softmax linear classifier ([`model`]) trained on 80% of the
//!   labelled recipes and measured on the other 20% (accuracy, macro-F1, and the
//!   majority-class baseline); pushed to the registry with its metrics and label lineage,
//!   and aliased `production`.
//! - [`jobs::infer`]: the `production` model over every recipe, written to the
//!   `recipe_categories` result table with the `ResultsWriter`.
//!
//! Run as apps (`apps/*.jsonnet`), they get the server's URL and a token for their run in
//! the environment (`Client::from_env`).

pub mod features;
pub mod jobs;
pub mod model;

/// The `main` of the job binaries: run `job` with a client from the environment, print its
/// report as JSON, exit 1 with the error otherwise.
pub fn run_job<R, F>(job: impl FnOnce(kondate_client::Client) -> F)
where
    R: serde::Serialize,
    F: std::future::Future<Output = Result<R, kondate_client::ClientError>>,
{
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let result = runtime.block_on(async {
        let client = kondate_client::Client::from_env()?;
        job(client).await
    });
    match result {
        Ok(r) => println!("{}", serde_json::to_string(&r).unwrap_or_default()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
