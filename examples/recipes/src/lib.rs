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
