//! `recipes-train`: the training job (apps/train.jsonnet). Prints its report as JSON.

#[tokio::main]
async fn main() {
    let run = async {
        let client = kondate_client::Client::from_env()?;
        kondate_example_recipes::jobs::train(&client).await
    };
    match run.await {
        Ok(r) => println!("{}", serde_json::to_string(&r).unwrap_or_default()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
