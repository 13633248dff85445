//! kondate-jobs: scheduled jobs. So far the workflow language a job's `script` is written
//! in — kuroko2's — read into a tree of tasks and checked ([`script`]); schedules: cron
//! expressions in a time zone, with Vixie cron's rule at clock changes ([`schedule`]); job
//! definitions, `jobs/NAME.jsonnet`, checked with file and field in every message
//! ([`definition`]); and the scheduling pass's arithmetic — which slots are due given when
//! the job was last looked at and its catch-up and suspend rules, on a clock the caller
//! passes ([`plan`]). The scheduler's tables, instances, workers and notifications build on
//! them (issue 17).

pub mod definition;
pub mod deliver;
pub mod engine;
mod error;
pub mod executor;
pub mod metrics;
pub mod notify;
pub mod plan;
pub mod schedule;
pub mod scheduler;
pub mod script;

pub use definition::JobDefinition;
pub use error::JobsError;
pub use executor::{Executor, StepActions, WorkerConfig};
pub use notify::Notifier;
pub use schedule::Cron;
pub use scheduler::{Loaded, PassReport, Scheduler};
pub use script::{Node, ScriptError, Task, parse};
