//! `recipes-normalise`: the ingredient normaliser (apps/normalise.jsonnet). Prints its report as JSON.

fn main() {
    kondate_example_recipes::run_job(|c| async move {
        kondate_example_recipes::jobs::normalise(&c).await
    });
}
