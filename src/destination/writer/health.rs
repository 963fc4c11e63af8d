//! How the writer reports PutRecords calls that fail as a whole (an unreachable endpoint,
//! server errors, throttled calls): one streak shared by all lanes, since an outage hits them
//! all at once, reported through [`FailureStreak`] so a minute of failures is a few lines.
//!
//! Per-entry failures inside an answered call (a throttled shard) stay at debug level: they
//! are part of normal operation at a stream's limit.

use std::time::Duration;

use crate::outage::{seconds, FailureReport, Recovery, SharedStreak};

/// One failed call, as the lane saw it.
pub(super) struct CallFailed<'a> {
    pub stream: &'a str,
    pub entries: usize,
    /// False when the call got no answer at all.
    pub answered: bool,
    pub reason: &'a str,
    pub retry_in: Duration,
}

/// The writer's streak of failed calls.
#[derive(Default)]
pub(super) struct CallHealth {
    streak: SharedStreak,
}

impl CallHealth {
    pub(super) fn failed(&self, call: &CallFailed<'_>) {
        match self.streak.failed() {
            Some(report) => warn_failed(call, report),
            None => tracing::debug!(
                stream = call.stream,
                entries = call.entries,
                retry_in_ms = call.retry_in.as_millis() as u64,
                error = call.reason,
                "PutRecords failed again"
            ),
        }
    }

    pub(super) fn succeeded(&self) {
        if let Some(Recovery {
            failed_attempts,
            failing_for,
        }) = self.streak.succeeded()
        {
            tracing::info!(
                failed_attempts,
                failing_for_s = seconds(failing_for),
                "PutRecords succeeds again"
            );
        }
    }
}

fn warn_failed(call: &CallFailed<'_>, report: FailureReport) {
    let message = if call.answered {
        "PutRecords failed; retrying the call's entries"
    } else {
        "Kinesis endpoint unreachable; retrying PutRecords until it answers (records wait, \
         none is nacked for this)"
    };
    tracing::warn!(
        stream = call.stream,
        entries = call.entries,
        attempt = report.attempt,
        retry_in_ms = call.retry_in.as_millis() as u64,
        failing_for_s = seconds(report.failing_for),
        suppressed = report.suppressed,
        error = call.reason,
        "{message}"
    );
}
