//! kondate-jobs: scheduled jobs. So far the workflow language a job's `script` is written
//! in — kuroko2's — read into a tree of tasks and checked ([`script`]); the scheduler,
//! instances, workers and notifications build on it (issue 17).

pub mod script;

pub use script::{Node, ScriptError, Task, parse};
