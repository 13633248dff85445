//! `recipes-infer`: the inference job (apps/infer.jsonnet). Prints its report as JSON.

fn main() {
    kondate_example_recipes::run_job(
        |c| async move { kondate_example_recipes::jobs::infer(&c).await },
    );
}
