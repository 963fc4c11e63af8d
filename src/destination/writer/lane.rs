//! A lane: gathers entries into PutRecords calls, sends one call at a time and retries only
//! the entries that failed before it starts the next call.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::aggregating::ShardDirectory;
use super::catalog::StreamCatalog;
use super::error::RecordError;
use super::health::{CallFailed, CallHealth};
use super::{Backlog, Entry, WriteUnit, WriterConfig};
use crate::aws::StreamRef;
use crate::destination::batch::{Batch, BatchLimits, Offer, MAX_REQUEST_BYTES};
use crate::destination::put::PutRecordsSender;
use crate::destination::retry::{CallVerdict, EntryVerdict};

/// How long a partial call waits for records still being prepared.
const FILL_WAIT: Duration = Duration::from_millis(50);

/// How long a lane with a call in the making waits for more entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    SendNow,
    /// Wait for entries until then (`None`: no call in the making, wait for entries).
    Until(Option<tokio::time::Instant>),
}

/// The deadlines of one call in the making, each set when its wait begins.
#[derive(Debug, Default)]
pub(super) struct CallDeadlines {
    /// `sdk.batch.delay`: once everything handed over is prepared.
    delay: Option<tokio::time::Instant>,
    /// [`FILL_WAIT`]: while records handed over together are still being prepared, but not
    /// for long, since a preparer held up by another lane (throttled, retrying) must not hold
    /// this one.
    fill: Option<tokio::time::Instant>,
}

impl CallDeadlines {
    pub(super) fn next(
        &mut self,
        has_entries: bool,
        backlog_drained: bool,
        batch_delay: Duration,
        now: tokio::time::Instant,
    ) -> Wait {
        if !has_entries {
            return Wait::Until(None);
        }
        if !backlog_drained {
            return Wait::Until(Some(*self.fill.get_or_insert(now + FILL_WAIT)));
        }
        if batch_delay.is_zero() {
            return Wait::SendNow;
        }
        Wait::Until(Some(*self.delay.get_or_insert(now + batch_delay)))
    }
}

/// What [`Lane::next_arrival`] waited for.
pub(super) enum Arrival {
    Chunk(Vec<Entry>),
    SendNow,
    Closed,
}

async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A call being collected and the entries that must wait for a later one, in order.
struct Gathering {
    batch: Batch<Entry>,
    later: VecDeque<Entry>,
    full: bool,
}

impl Gathering {
    fn offer(&mut self, entry: Entry) {
        if self.full {
            self.later.push_back(entry);
            return;
        }
        match self.batch.offer(entry) {
            Offer::Added => {}
            Offer::Deferred(entry) => self.later.push_back(entry),
            Offer::Full(entry) => {
                self.later.push_back(entry);
                self.full = true;
            }
        }
    }
}

/// `S` sends the calls: Kinesis, or an in-memory fake in tests.
pub(super) struct Lane<S> {
    pub(super) put: Arc<S>,
    pub(super) config: Arc<WriterConfig>,
    pub(super) catalog: Arc<StreamCatalog>,
    pub(super) backlog: Arc<Backlog>,
    pub(super) health: Arc<CallHealth>,
    /// Shard maps of the streams, for aggregation.
    pub(super) shards: Arc<ShardDirectory>,
    pub(super) waiting: mpsc::Receiver<Vec<Entry>>,
    /// Entries that belong to a later call, in arrival order.
    pub(super) deferred: VecDeque<Entry>,
}

impl<S: PutRecordsSender> Lane<S> {
    pub(super) async fn run(mut self) {
        if let Some(aggregation) = self.config.aggregation {
            while let Some(call) = self.next_aggregated_call(aggregation).await {
                self.write(call).await;
            }
            return;
        }
        while let Some(batch) = self.next_batch().await {
            self.write(batch.into_entries()).await;
        }
    }

    pub(super) fn limits(&self) -> BatchLimits {
        let mut limits = self.config.limits;
        if let Some(rate) = &self.config.rate {
            limits.max_entries = limits.max_entries.min(rate.burst().max(1));
        }
        limits
    }

    /// Collects the next call: deferred entries first, then what is queued, then more for as
    /// long as the preparer still has records to route (so calls fill up under load), then
    /// (with sdk.batch.delay) whatever arrives before the delay ends. `None` once the lane is
    /// closed and empty.
    async fn next_batch(&mut self) -> Option<Batch<Entry>> {
        let mut gathering = Gathering {
            batch: Batch::new(self.limits()),
            later: VecDeque::new(),
            full: false,
        };
        for entry in std::mem::take(&mut self.deferred) {
            gathering.offer(entry);
        }
        let mut closed = false;
        let mut deadlines = CallDeadlines::default();
        while !gathering.full && !gathering.batch.is_full() {
            let gathered_some = !gathering.batch.is_empty();
            let delay = self.config.batch_delay;
            match self
                .next_arrival(&mut deadlines, gathered_some, delay)
                .await
            {
                Arrival::Chunk(chunk) => chunk.into_iter().for_each(|entry| gathering.offer(entry)),
                Arrival::SendNow => break,
                Arrival::Closed => {
                    closed = true;
                    break;
                }
            }
        }
        if closed && gathering.batch.is_empty() {
            return None;
        }
        self.deferred = gathering.later;
        Some(gathering.batch)
    }

    /// Waits for the next chunk of entries for the call in the making, or for the moment to
    /// send it (`gathered_some`: it holds entries already), per [`CallDeadlines`].
    pub(super) async fn next_arrival(
        &mut self,
        deadlines: &mut CallDeadlines,
        gathered_some: bool,
        delay: Duration,
    ) -> Arrival {
        loop {
            // Registered before the backlog is looked at, so a drain in between still wakes us.
            let drained = self.backlog.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            match self.waiting.try_recv() {
                Ok(chunk) => return Arrival::Chunk(chunk),
                Err(mpsc::error::TryRecvError::Disconnected) => return Arrival::Closed,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            let wait = deadlines.next(
                gathered_some,
                self.backlog.is_drained(),
                delay,
                tokio::time::Instant::now(),
            );
            let deadline = match wait {
                Wait::SendNow => return Arrival::SendNow,
                Wait::Until(deadline) => deadline,
            };
            tokio::select! {
                chunk = self.waiting.recv() => return chunk.map_or(Arrival::Closed, Arrival::Chunk),
                _ = &mut drained => {}
                _ = sleep_until_some(deadline) => return Arrival::SendNow,
            }
        }
    }

    /// Writes one call's Kinesis records (all of one stream).
    pub(super) async fn write<U: WriteUnit>(&self, entries: Vec<U>) {
        let Some(first) = entries.first() else { return };
        let stream = first.stream().clone();
        let info = match self.catalog.info(&stream).await {
            Ok(info) => info,
            Err(reason) => {
                for entry in entries {
                    entry.fail(|position| RecordError::StreamUnavailable {
                        position,
                        reason: reason.clone(),
                    });
                }
                return;
            }
        };
        let mut pending = Vec::with_capacity(entries.len());
        for entry in entries {
            let size = entry.size();
            if size > info.max_record_size {
                let aggregate = entry.predicted().is_some();
                entry.fail(|position| {
                    let (limit, stream) = (info.max_record_size, stream.name.clone());
                    if aggregate {
                        RecordError::AggregateTooLarge {
                            position,
                            size,
                            limit,
                            stream,
                        }
                    } else {
                        RecordError::TooLarge {
                            position,
                            size,
                            limit,
                            stream,
                        }
                    }
                });
            } else {
                pending.push(entry);
            }
        }
        if let Some(rate) = &self.config.rate {
            // Counted in user records; an aggregate may hold more than one burst.
            let mut records: usize = pending.iter().map(U::user_records).sum();
            while records > 0 {
                let now = records.min(rate.burst().max(1));
                rate.acquire(now).await;
                records -= now;
            }
        }
        self.put_with_retries(&stream, pending).await;
    }

    /// Sends `pending` until every entry is written or resolved otherwise. Attempts Kinesis
    /// answers with a retriable error count against `retry.maxAttempts`; calls that get no
    /// answer at all do not (see [`CallVerdict::RetryUntilReachable`]) and are retried with
    /// the same capped backoff until the endpoint answers or the destination stops.
    async fn put_with_retries<U: WriteUnit>(&self, stream: &StreamRef, mut pending: Vec<U>) {
        let policy = self.config.retry;
        let mut answered_failures = 0;
        let mut unanswered_in_a_row = 0;
        while !pending.is_empty() {
            let entries = pending.len();
            let (retry, cause) = self.put_once(stream, pending).await;
            pending = retry;
            let Some(cause) = cause else {
                self.health.succeeded();
                return;
            };
            let wait = match cause.kind {
                RetryKind::Unanswered => {
                    unanswered_in_a_row += 1;
                    policy.backoff(unanswered_in_a_row)
                }
                RetryKind::Entries | RetryKind::Call => {
                    unanswered_in_a_row = 0;
                    answered_failures += 1;
                    if !policy.may_retry(answered_failures) {
                        self.exhausted(stream, pending, answered_failures, cause.reason);
                        return;
                    }
                    policy.backoff(answered_failures)
                }
            };
            if cause.kind == RetryKind::Entries {
                // The call itself went through: the endpoint is fine, some shards are busy.
                self.health.succeeded();
                tracing::debug!(
                    stream = %stream.name,
                    entries = pending.len(),
                    attempt = answered_failures,
                    wait_ms = wait.as_millis() as u64,
                    error = cause.reason,
                    "retrying PutRecords entries"
                );
            } else {
                self.health.failed(&CallFailed {
                    stream: &stream.name,
                    entries,
                    answered: cause.kind == RetryKind::Call,
                    reason: &cause.reason,
                    retry_in: wait,
                });
            }
            tokio::time::sleep(wait).await;
        }
    }

    fn exhausted<U: WriteUnit>(
        &self,
        stream: &StreamRef,
        entries: Vec<U>,
        attempts: u32,
        reason: String,
    ) {
        for entry in entries {
            entry.fail(|position| RecordError::RetriesExhausted {
                position,
                stream: stream.name.clone(),
                attempts,
                reason: reason.clone(),
            });
        }
    }

    /// One PutRecords call. Resolves written and rejected entries; returns those to retry and
    /// why they failed (`None`: nothing to retry).
    async fn put_once<U: WriteUnit>(
        &self,
        stream: &StreamRef,
        entries: Vec<U>,
    ) -> (Vec<U>, Option<RetryCause>) {
        debug_assert!(
            entries.iter().map(U::size).sum::<usize>() <= MAX_REQUEST_BYTES || entries.len() == 1
        );
        match self.put.put_records(stream, &entries).await {
            Ok(answer) => {
                let mut retry = Vec::new();
                let mut last_error = None;
                let shards = answer.shards.into_iter().chain(std::iter::repeat(None));
                for ((entry, result), shard) in entries.into_iter().zip(answer.results).zip(shards)
                {
                    let verdict = match &result {
                        None => EntryVerdict::Written,
                        Some(failure) => failure.verdict(),
                    };
                    match verdict {
                        EntryVerdict::Written => {
                            if let (Some(placed), Some(predicted)) = (shard, entry.predicted()) {
                                self.shards.check_placement(stream, predicted, &placed);
                            }
                            entry.resolve(Ok(()))
                        }
                        EntryVerdict::Retry { code, message } => {
                            last_error = Some(format!("{code}: {message}"));
                            retry.push(entry);
                        }
                        EntryVerdict::Reject { code, message } => {
                            entry.fail(|position| RecordError::Rejected {
                                position,
                                stream: stream.name.clone(),
                                code: code.clone(),
                                message: message.clone(),
                            });
                        }
                    }
                }
                let cause = last_error.map(|reason| RetryCause {
                    kind: RetryKind::Entries,
                    reason,
                });
                (retry, cause)
            }
            Err(error) => {
                let reason = error.reason();
                match error.verdict() {
                    CallVerdict::RetryAll => {
                        let kind = RetryKind::Call;
                        (entries, Some(RetryCause { kind, reason }))
                    }
                    CallVerdict::RetryUntilReachable => {
                        let kind = RetryKind::Unanswered;
                        (entries, Some(RetryCause { kind, reason }))
                    }
                    CallVerdict::StreamMissing => {
                        self.catalog.forget(stream);
                        for entry in entries {
                            entry.fail(|position| RecordError::StreamMissing {
                                position,
                                stream: stream.name.clone(),
                                reason: reason.clone(),
                            });
                        }
                        (Vec::new(), None)
                    }
                    CallVerdict::RejectAll => {
                        for entry in entries {
                            entry.fail(|position| RecordError::CallRejected {
                                position,
                                stream: stream.name.clone(),
                                reason: reason.clone(),
                            });
                        }
                        (Vec::new(), None)
                    }
                }
            }
        }
    }
}

/// How the entries a call hands back failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetryKind {
    /// Kinesis answered the call and failed some entries (throttled shards).
    Entries,
    /// Kinesis answered the call with a retriable error.
    Call,
    /// The call got no answer.
    Unanswered,
}

struct RetryCause {
    kind: RetryKind,
    reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_call_waits_for_preparation_at_most_the_fill_bound() {
        let start = tokio::time::Instant::now();
        let mut deadlines = CallDeadlines::default();
        let delay = Duration::from_secs(5);
        // Nothing gathered yet: wait for entries without a deadline.
        assert_eq!(
            deadlines.next(false, false, delay, start),
            Wait::Until(None)
        );
        // Records still being prepared: wait, but only FILL_WAIT from the first wait, however
        // often the lane wakes up meanwhile and however long sdk.batch.delay is.
        let bound = Wait::Until(Some(start + FILL_WAIT));
        assert_eq!(deadlines.next(true, false, delay, start), bound);
        let later = start + FILL_WAIT / 2;
        assert_eq!(deadlines.next(true, false, delay, later), bound);
    }

    #[test]
    fn once_everything_is_prepared_the_batch_delay_decides() {
        let start = tokio::time::Instant::now();
        let mut deadlines = CallDeadlines::default();
        assert_eq!(
            deadlines.next(true, true, Duration::ZERO, start),
            Wait::SendNow
        );
        let delay = Duration::from_millis(300);
        let mut deadlines = CallDeadlines::default();
        let expected = Wait::Until(Some(start + delay));
        assert_eq!(deadlines.next(true, true, delay, start), expected);
        assert_eq!(
            deadlines.next(true, true, delay, start + Duration::from_millis(200)),
            expected,
            "the delay counts from the first wait, not from each wake-up"
        );
    }
}
