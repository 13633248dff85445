//! The jobs' Prometheus metrics, with the official client (`prometheus-client`).
//!
//! Two kinds: what this process observed — instances ended, their durations, steps' run
//! times, how late launches were, notices sent — as counters and histograms in a
//! process-wide set (each process reports its own; Prometheus sums them), registered into
//! the server's registry by [`register`]; and the shared state as gauges — instances by
//! status, steps waiting and working by queue (the queue depths), jobs, notifications
//! waiting or failed — read from the state database when `/metrics` is scraped
//! ([`Gauges::read`]), the same from whichever server answers.

use std::sync::OnceLock;

use kondate_db::{Database, Value, get_i64, get_string};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::JobsError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobStatus {
    pub job: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabel {
    pub job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueStatus {
    pub queue: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Status {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DestinationOutcome {
    pub destination: String,
    pub outcome: String,
}

/// Seconds: 1 s to about 4.5 days, doubling (a job runs seconds to days).
fn duration_buckets() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        1.0, 2.0, 19,
    ))
}

/// Seconds late: 10 ms to about 80 s, doubling.
fn delay_buckets() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.01, 2.0, 14,
    ))
}

/// What this process observed.
pub struct Observed {
    pub instances_ended: Family<JobStatus, Counter>,
    pub instance_seconds: Family<JobLabel, Histogram, fn() -> Histogram>,
    pub step_seconds: Family<QueueStatus, Histogram, fn() -> Histogram>,
    pub launched: Family<Reason, Counter>,
    pub launch_delay_seconds: Family<Reason, Histogram, fn() -> Histogram>,
    pub notifications: Family<DestinationOutcome, Counter>,
}

/// The process-wide set.
pub fn observed() -> &'static Observed {
    static SET: OnceLock<Observed> = OnceLock::new();
    SET.get_or_init(|| Observed {
        instances_ended: Family::default(),
        instance_seconds: Family::new_with_constructor(duration_buckets),
        step_seconds: Family::new_with_constructor(duration_buckets),
        launched: Family::default(),
        launch_delay_seconds: Family::new_with_constructor(delay_buckets),
        notifications: Family::default(),
    })
}

/// The state database's gauges, set when scraped.
#[derive(Default)]
pub struct Gauges {
    pub instances: Family<Status, Gauge>,
    pub steps: Family<QueueStatus, Gauge>,
    pub jobs: Family<Status, Gauge>,
    pub notifications: Family<Status, Gauge>,
    /// (queue, status) pairs set before.
    seen_queues: std::sync::Mutex<std::collections::BTreeSet<(String, String)>>,
}

/// Register the jobs' metrics (this process's observations and `gauges`) in `registry`.
pub fn register(registry: &mut Registry, gauges: &Gauges) {
    let o = observed();
    registry.register(
        "kondate_job_instances_ended",
        "Instances this process saw end, by job and status (success, error)",
        o.instances_ended.clone(),
    );
    registry.register(
        "kondate_job_instance_duration_seconds",
        "From launch to end, of the instances this process saw end",
        o.instance_seconds.clone(),
    );
    registry.register(
        "kondate_job_step_duration_seconds",
        "Run time of the steps this process's workers ran, by queue and how they ended",
        o.step_seconds.clone(),
    );
    registry.register(
        "kondate_job_launches",
        "Instances this process launched, by reason (schedule, trigger, manual, backfill, sub_process)",
        o.launched.clone(),
    );
    registry.register(
        "kondate_job_launch_delay_seconds",
        "How late this process launched scheduled slots (launch time minus slot time)",
        o.launch_delay_seconds.clone(),
    );
    registry.register(
        "kondate_job_notifications_sent",
        "Notices this process tried to send, by destination and outcome (sent, retrying, failed)",
        o.notifications.clone(),
    );
    registry.register(
        "kondate_job_instances",
        "Instances in the state database by status",
        gauges.instances.clone(),
    );
    registry.register(
        "kondate_job_steps",
        "Steps waiting (pending: the queue's depth) and working, by queue",
        gauges.steps.clone(),
    );
    registry.register(
        "kondate_jobs",
        "Jobs the scheduler knows: scheduled, load_failed (kept on their last good revision), removed",
        gauges.jobs.clone(),
    );
    registry.register(
        "kondate_job_notifications",
        "Notices waiting to be sent (pending) and given up on (failed)",
        gauges.notifications.clone(),
    );
}

impl Gauges {
    /// Set the gauges from the state database.
    pub async fn read(&self, db: &Database) -> Result<(), JobsError> {
        let counts = |sql: &'static str| async move {
            let rows = db.fetch_all(sql, &[]).await?;
            rows.iter()
                .map(|r| Ok((get_string(r, "k")?, get_i64(r, "n")?)))
                .collect::<Result<Vec<(String, i64)>, JobsError>>()
        };
        let instances =
            counts("SELECT status AS k, COUNT(*) AS n FROM kondate_job_instances GROUP BY status")
                .await?;
        let jobs = counts(
            "SELECT CASE WHEN removed_at IS NOT NULL THEN 'removed' \
             WHEN load_error IS NOT NULL THEN 'load_failed' ELSE 'scheduled' END AS k, \
             COUNT(*) AS n FROM kondate_jobs GROUP BY \
             CASE WHEN removed_at IS NOT NULL THEN 'removed' \
             WHEN load_error IS NOT NULL THEN 'load_failed' ELSE 'scheduled' END",
        )
        .await?;
        let notifications = counts(
            "SELECT status AS k, COUNT(*) AS n FROM kondate_notifications \
             WHERE status IN ('pending', 'failed') GROUP BY status",
        )
        .await?;
        let steps = db
            .fetch_all(
                "SELECT queue, status, COUNT(*) AS n FROM kondate_job_steps \
                 WHERE status IN (?, ?) GROUP BY queue, status",
                &[
                    Value::Text(crate::executor::PENDING.into()),
                    Value::Text(crate::scheduler::WORKING.into()),
                ],
            )
            .await?;
        // A status or queue that emptied reads 0 rather than disappearing.
        let set = |family: &Family<Status, Gauge>, rows: Vec<(String, i64)>, known: &[&str]| {
            for k in known {
                family
                    .get_or_create(&Status {
                        status: k.to_string(),
                    })
                    .set(0);
            }
            for (k, n) in rows {
                family.get_or_create(&Status { status: k }).set(n);
            }
        };
        set(
            &self.instances,
            instances,
            &["working", "error", "success", "cancel"],
        );
        set(&self.jobs, jobs, &["scheduled", "load_failed", "removed"]);
        set(&self.notifications, notifications, &["pending", "failed"]);
        // A queue seen before whose steps are all gone reads 0.
        let mut seen = self.seen_queues.lock().expect("queues lock");
        for status in [crate::executor::PENDING, crate::scheduler::WORKING] {
            seen.insert((crate::engine::DEFAULT_QUEUE.to_string(), status.to_string()));
        }
        for (queue, status) in seen.iter() {
            self.steps
                .get_or_create(&QueueStatus {
                    queue: queue.clone(),
                    status: status.clone(),
                })
                .set(0);
        }
        for r in &steps {
            let (queue, status) = (get_string(r, "queue")?, get_string(r, "status")?);
            seen.insert((queue.clone(), status.clone()));
            self.steps
                .get_or_create(&QueueStatus { queue, status })
                .set(get_i64(r, "n")?);
        }
        Ok(())
    }
}
