//! How a run of failed calls is reported: the first failure at once, then at most one line per
//! [`REPORT_INTERVAL`] while the failures go on (with the attempt count and how long it has been
//! failing), and one line when a call succeeds again. Pure bookkeeping; the caller logs.
//!
//! A Kinesis endpoint that is down for a minute makes every reader retry every few seconds;
//! logging each attempt of each shard buried the one line that mattered.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// At most one report per this long while failures continue.
pub(crate) const REPORT_INTERVAL: Duration = Duration::from_secs(20);

/// The failures since the last success of one kind of call (e.g. GetRecords on one shard).
#[derive(Debug, Default, Clone)]
pub(crate) struct FailureStreak {
    attempts: u32,
    since: Option<Instant>,
    last_report: Option<Instant>,
    suppressed: u32,
}

/// What to say about a failure that should be reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FailureReport {
    /// Failed attempts in a row, this one included.
    pub attempt: u32,
    /// Since the first failure of the streak.
    pub failing_for: Duration,
    /// Failures not reported since the previous report.
    pub suppressed: u32,
}

/// The streak ended with a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recovery {
    pub failed_attempts: u32,
    pub failing_for: Duration,
}

impl FailureStreak {
    /// Failed attempts in a row so far (0 after a success).
    #[cfg(test)]
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Records a failure at `now`; returns what to report, or `None` to stay quiet (log at
    /// debug level at most).
    pub(crate) fn failed(&mut self, now: Instant) -> Option<FailureReport> {
        self.attempts = self.attempts.saturating_add(1);
        let since = *self.since.get_or_insert(now);
        let due = self
            .last_report
            .is_none_or(|last| now.duration_since(last) >= REPORT_INTERVAL);
        if !due {
            self.suppressed = self.suppressed.saturating_add(1);
            return None;
        }
        self.last_report = Some(now);
        Some(FailureReport {
            attempt: self.attempts,
            failing_for: now.duration_since(since),
            suppressed: std::mem::take(&mut self.suppressed),
        })
    }

    /// Records a success at `now`; returns the streak it ended, if there was one.
    pub(crate) fn succeeded(&mut self, now: Instant) -> Option<Recovery> {
        let since = self.since.take()?;
        let recovery = Recovery {
            failed_attempts: self.attempts,
            failing_for: now.duration_since(since),
        };
        *self = FailureStreak::default();
        Some(recovery)
    }
}

/// A [`FailureStreak`] shared by tasks that fail together (the lanes of a writer, the shard
/// readers of a source): an outage is reported a few times a minute however many tasks
/// there are, and the first success of any of them ends it.
#[derive(Debug, Default)]
pub(crate) struct SharedStreak(Mutex<FailureStreak>);

impl SharedStreak {
    /// See [`FailureStreak::failed`], now.
    pub(crate) fn failed(&self) -> Option<FailureReport> {
        self.lock().failed(Instant::now())
    }

    /// See [`FailureStreak::succeeded`], now. Cheap when nothing failed.
    pub(crate) fn succeeded(&self) -> Option<Recovery> {
        self.lock().succeeded(Instant::now())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FailureStreak> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whole seconds, for log fields.
pub(crate) fn seconds(duration: Duration) -> u64 {
    duration.as_secs_f64().round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_is_reported_then_one_per_interval() {
        let start = Instant::now();
        let mut streak = FailureStreak::default();
        let first = streak.failed(start).expect("first failure reported");
        assert_eq!(first.attempt, 1);
        assert_eq!(first.failing_for, Duration::ZERO);
        let quiet: Vec<_> = (1..10)
            .map(|s| streak.failed(start + Duration::from_secs(s)))
            .collect();
        assert!(quiet.iter().all(Option::is_none), "{quiet:?}");
        let next = streak
            .failed(start + REPORT_INTERVAL + Duration::from_secs(1))
            .expect("reported again after the interval");
        assert_eq!(next.attempt, 11);
        assert_eq!(next.suppressed, 9);
        assert_eq!(next.failing_for, REPORT_INTERVAL + Duration::from_secs(1));
    }

    #[test]
    fn a_success_ends_the_streak_once() {
        let start = Instant::now();
        let mut streak = FailureStreak::default();
        assert_eq!(streak.succeeded(start), None, "nothing to recover from");
        streak.failed(start);
        streak.failed(start + Duration::from_secs(3));
        let recovery = streak.succeeded(start + Duration::from_secs(5)).unwrap();
        assert_eq!(
            recovery,
            Recovery {
                failed_attempts: 2,
                failing_for: Duration::from_secs(5)
            }
        );
        assert_eq!(streak.attempts(), 0);
        assert_eq!(streak.succeeded(start + Duration::from_secs(6)), None);
        let again = streak.failed(start + Duration::from_secs(7)).unwrap();
        assert_eq!(again.attempt, 1, "a new streak starts from scratch");
    }
}
