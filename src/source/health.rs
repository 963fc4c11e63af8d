//! How shard readers report failed Kinesis calls (SubscribeToShard, a subscription that
//! breaks, GetShardIterator, GetRecords): one streak for all readers of a source, since an
//! endpoint outage fails every shard at once. The first failure is a warning, then at most
//! one per [`crate::outage::REPORT_INTERVAL`] with the attempt count, the wait before the next
//! attempt and how long reading has been failing; the first success after a reported
//! failure says that reading works again. A stream of 200 shards does not write 200 lines
//! per attempt.

use std::fmt::Display;
use std::time::Duration;

use crate::outage::{seconds, SharedStreak};

#[derive(Debug, Default)]
pub(crate) struct ReadHealth {
    streak: SharedStreak,
}

impl ReadHealth {
    /// `what` failed on `shard` with `error`; the reader tries again in `retry_in`.
    pub(crate) fn failed(
        &self,
        shard: &str,
        what: &'static str,
        error: &dyn Display,
        retry_in: Duration,
    ) {
        let retry_in_ms = retry_in.as_millis() as u64;
        match self.streak.failed() {
            Some(report) => tracing::warn!(
                shard,
                attempt = report.attempt,
                retry_in_ms,
                failing_for_s = seconds(report.failing_for),
                suppressed = report.suppressed,
                %error,
                "{what}"
            ),
            None => tracing::debug!(shard, retry_in_ms, %error, "{what}"),
        }
    }

    /// A call succeeded: ends the streak, if there was one.
    pub(crate) fn succeeded(&self) {
        if let Some(recovery) = self.streak.succeeded() {
            tracing::info!(
                failed_attempts = recovery.failed_attempts,
                failing_for_s = seconds(recovery.failing_for),
                "reading from Kinesis succeeds again"
            );
        }
    }
}
