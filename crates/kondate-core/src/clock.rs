//! One clock for everything time-based (expiry, timestamps), so tests can move time.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock stopped at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    /// Move the clock forward.
    pub fn advance(&self, by: std::time::Duration) {
        let mut t = self.0.lock().expect("clock lock");
        *t += chrono::Duration::from_std(by).expect("duration in range");
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}

/// A clock that starts at a given time and runs `rate` times faster than the wall clock;
/// for tests of schedules across real processes (thousands of slots in seconds).
#[derive(Debug)]
pub struct ScaledClock {
    start: DateTime<Utc>,
    real_start: std::time::Instant,
    rate: f64,
}

/// The variable that gives `kondate serve`'s scheduler a [`ScaledClock`] for its slots:
/// `START@RATE`, e.g. `2026-06-01T00:00:00Z@36000` (kondate's own tests only; nothing else
/// — heartbeats, expiry, logs — follows it).
pub const SCHEDULER_CLOCK_VAR: &str = "KONDATE_TEST_SCHEDULER_CLOCK";

impl ScaledClock {
    pub fn new(start: DateTime<Utc>, rate: f64) -> Self {
        Self {
            start,
            real_start: std::time::Instant::now(),
            rate,
        }
    }

    /// From `START@RATE`; None when the text is not that.
    pub fn parse(text: &str) -> Option<Self> {
        let (start, rate) = text.split_once('@')?;
        let start = DateTime::parse_from_rfc3339(start.trim())
            .ok()?
            .with_timezone(&Utc);
        let rate: f64 = rate.trim().parse().ok()?;
        (rate.is_finite() && rate > 0.0).then(|| Self::new(start, rate))
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> DateTime<Utc> {
        let ms = self.real_start.elapsed().as_secs_f64() * self.rate * 1000.0;
        self.start + chrono::Duration::milliseconds(ms as i64)
    }
}

/// Milliseconds since the epoch (as the state tables store times) as RFC 3339 in UTC with
/// milliseconds, e.g. `2026-11-27T05:17:05.123Z`.
pub fn ms_to_rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
