//! `recipes-train`: the training job (apps/train.jsonnet). Prints its report as JSON.

fn main() {
    kondate_example_recipes::run_job(
        |c| async move { kondate_example_recipes::jobs::train(&c).await },
    );
}
