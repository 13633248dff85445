//! kondate-jobs: scheduled jobs. So far the workflow language a job's `script` is written
//! in — kuroko2's — read into a tree of tasks and checked ([`script`]), and schedules: cron
//! expressions in a time zone, with Vixie cron's rule at clock changes ([`schedule`]). The
//! scheduler, instances, workers and notifications build on them (issue 17).

pub mod schedule;
pub mod script;

pub use schedule::Cron;
pub use script::{Node, ScriptError, Task, parse};
