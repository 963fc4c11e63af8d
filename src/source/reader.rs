//! Reading one shard, by enhanced fan-out or by polling, into [`ShardEvent`]s.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;

use super::api::{EventStream, ShardApi};

use super::deaggregate::decode_aggregate;
use super::health::ReadHealth;
use super::lag::LagBoard;
use super::position::{Resume, ShardProgress};
use super::records::{FetchedRecord, ReadRecord};
use super::settings::InitialPosition;
use super::subscribe::StartingPoint;

/// What readers tell the source, in the order it happened on each shard.
#[derive(Debug)]
pub(crate) enum ShardEvent {
    Record {
        shard: Arc<str>,
        record: ReadRecord,
    },
    /// Everything up to this sequence number was seen (an enhanced fan-out continuation).
    Progress {
        shard: Arc<str>,
        sequence: String,
    },
    /// The shard is closed and was read to its end.
    Finished {
        shard: Arc<str>,
    },
    /// The shard is no longer listed (expired past retention): forget it.
    Forget {
        shard: Arc<str>,
    },
}

/// Where a reader starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StartFrom {
    Resume(ShardProgress),
    Initial(InitialPosition),
    TrimHorizon,
}

/// Which shards are closed, kept current by the shard discovery.
pub(crate) type ClosedShards = Arc<RwLock<HashMap<String, bool>>>;

/// What every reader of a source shares.
pub(crate) struct ReaderContext {
    pub api: Arc<dyn ShardApi>,
    pub deaggregate: bool,
    pub events: mpsc::Sender<ShardEvent>,
    pub closed: ClosedShards,
    /// Failed calls of all readers, reported together.
    pub health: ReadHealth,
    /// Every reader's latest `MillisBehindLatest`.
    pub lag: LagBoard,
}

impl ReaderContext {
    /// Counts a failed call of `shard`'s reader, reports it through the shared streak and
    /// waits the backoff before the next attempt.
    async fn back_off(
        &self,
        shard: &str,
        what: &'static str,
        error: &(dyn std::fmt::Display + Sync),
        failures: &mut u32,
    ) {
        *failures += 1;
        let wait = backoff(*failures);
        self.health.failed(shard, what, error, wait);
        tokio::time::sleep(wait).await;
    }
}

/// The mode-specific part.
#[derive(Debug, Clone)]
pub(crate) enum Mode {
    FanOut {
        consumer_arn: String,
        renew_after: Duration,
        idle_timeout: Duration,
    },
    Polling {
        interval: Duration,
        limit: i32,
    },
}

/// Why a reader stopped reading its shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReaderEnd {
    /// The shard is closed and was read to its end; `children` when the service named them
    /// (the last event of a subscription does, polling and end probes do not).
    ShardClosed { children: Vec<String> },
    /// A closed shard that expired past the stream's retention while it was read: nothing
    /// is left to read either.
    Expired,
    /// The engine went away (its event channel is closed): nothing more is wanted.
    Stopped,
}

impl ReaderEnd {
    /// Whether the shard is done for good, so its children may be read.
    pub(crate) fn finished(&self) -> bool {
        !matches!(self, ReaderEnd::Stopped)
    }
}

/// The engine's event channel is closed.
#[derive(Debug)]
struct Stopped;

/// How one subscription ended.
#[derive(Debug)]
enum SubscriptionEnd {
    /// Time to renew it, before the service ends it after its five minutes.
    Renew,
    /// Nothing arrived within the idle timeout.
    Idle,
    /// The service ended it (after its five minutes).
    Ended,
    /// It failed (and the backoff was waited).
    Failed,
    /// The reader is done.
    Reader(ReaderEnd),
}

const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How often a closed shard that looks idle is checked for its end (kinesis-local never
/// signals the end of a closed shard on a subscription).
const END_PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// Per-shard reading state shared by both modes.
struct ShardCursor {
    shard: Arc<str>,
    /// The last fully or partly delivered position; drives resubscription.
    progress: Option<ShardProgress>,
    /// Records covered by the progress we resumed from are dropped once.
    skip: Option<ShardProgress>,
    start: StartFrom,
}

impl ShardCursor {
    fn new(shard: Arc<str>, start: StartFrom) -> Self {
        let progress = match &start {
            StartFrom::Resume(p) => Some(p.clone()),
            _ => None,
        };
        ShardCursor {
            shard,
            skip: progress.clone(),
            progress,
            start,
        }
    }

    /// Where reading resumes, by subscription or by shard iterator.
    fn starting_point(&self) -> StartingPoint {
        match self.progress.as_ref().map(ShardProgress::resume) {
            Some(Resume::AfterSequence(sequence)) => {
                StartingPoint::AfterSequence(sequence.to_string())
            }
            Some(Resume::AtSequence { sequence, .. }) => {
                StartingPoint::AtSequence(sequence.to_string())
            }
            // A finished shard is never read; trim horizon is harmless if it happens.
            Some(Resume::Finished) | None => match &self.start {
                StartFrom::Initial(InitialPosition::Latest) => StartingPoint::Latest,
                StartFrom::Initial(InitialPosition::AtTimestamp(ms)) => {
                    StartingPoint::AtTimestamp(*ms)
                }
                _ => StartingPoint::TrimHorizon,
            },
        }
    }

    /// Splits a Kinesis record into events, dropping what the resumed position covers.
    fn records(&mut self, record: FetchedRecord, deaggregate_enabled: bool) -> Vec<ReadRecord> {
        let FetchedRecord {
            sequence,
            partition_key,
            data,
            arrival_ms,
            encryption_type,
        } = record;
        // A plain record (the usual case) is moved through, not copied.
        let users = match deaggregate_enabled
            .then(|| decode_aggregate(&data))
            .flatten()
        {
            Some(users) => users,
            None => vec![super::deaggregate::UserRecord {
                partition_key,
                explicit_hash_key: None,
                data,
                sub_sequence: None,
            }],
        };
        let count = users.len();
        let mut out = Vec::with_capacity(count);
        for (index, user) in users.into_iter().enumerate() {
            if let Some(skip) = &self.skip {
                if skip.covers(&sequence, user.sub_sequence) {
                    continue;
                }
                self.skip = None;
            }
            out.push(ReadRecord {
                sequence: sequence.clone(),
                sub_sequence: user.sub_sequence,
                last_of_record: index + 1 == count,
                partition_key: user.partition_key,
                explicit_hash_key: user.explicit_hash_key,
                data: user.data,
                arrival_ms,
                encryption_type: encryption_type.clone(),
            });
        }
        // The whole Kinesis record is behind us now, even when all of it was skipped.
        self.progress = Some(ShardProgress::After {
            sequence,
            sub_sequence: None,
        });
        out
    }
}

/// Reads a shard until it is finished or the engine goes away ([`ReaderEnd`]), or until the
/// reader is dropped.
pub(crate) async fn run(
    context: Arc<ReaderContext>,
    mode: Mode,
    shard: String,
    start: StartFrom,
) -> ReaderEnd {
    let shard: Arc<str> = Arc::from(shard);
    let mut cursor = ShardCursor::new(shard.clone(), start);
    if matches!(cursor.progress, Some(ShardProgress::Finished)) {
        return ReaderEnd::ShardClosed {
            children: Vec::new(),
        };
    }
    context.lag.owned(&shard);
    let end = read_shard(&context, &mut cursor, mode).await;
    context.lag.released(&shard);
    if end.finished() {
        tracing::info!(shard = %shard, ?end, "shard read to its end");
        let _ = context.events.send(ShardEvent::Finished { shard }).await;
    }
    end
}

async fn read_shard(context: &ReaderContext, cursor: &mut ShardCursor, mode: Mode) -> ReaderEnd {
    match mode {
        Mode::FanOut {
            consumer_arn,
            renew_after,
            idle_timeout,
        } => fan_out(context, cursor, &consumer_arn, renew_after, idle_timeout).await,
        Mode::Polling { interval, limit } => poll(context, cursor, interval, limit).await,
    }
}

async fn send_records(
    context: &ReaderContext,
    cursor: &mut ShardCursor,
    records: Vec<FetchedRecord>,
) -> Result<(), Stopped> {
    for record in records {
        for read in cursor.records(record, context.deaggregate) {
            let event = ShardEvent::Record {
                shard: cursor.shard.clone(),
                record: read,
            };
            context.events.send(event).await.map_err(|_| Stopped)?;
        }
    }
    Ok(())
}

fn backoff(failures: u32) -> Duration {
    let base = Duration::from_millis(500).saturating_mul(1 << failures.min(5));
    base.min(MAX_BACKOFF)
}

fn is_closed(context: &ReaderContext, shard: &str) -> bool {
    context
        .closed
        .read()
        .map(|closed| closed.get(shard).copied().unwrap_or(false))
        .unwrap_or(false)
}

/// Whether a closed shard has nothing after what was delivered: a GetRecords after the last
/// delivered record returns no records and no next iterator.
async fn read_to_end(context: &ReaderContext, cursor: &ShardCursor) -> bool {
    let start = cursor.starting_point();
    if start == StartingPoint::Latest {
        // Nothing was delivered and nothing new can arrive on a closed shard.
        return true;
    }
    let iterator = match context.api.shard_iterator(&cursor.shard, &start).await {
        Ok(Some(iterator)) => iterator,
        Ok(None) => return true,
        Err(_) => return false,
    };
    match context.api.get_records(&iterator, 1).await {
        Ok(page) => page.records.is_empty() && page.next_iterator.is_none(),
        Err(_) => false,
    }
}

async fn fan_out(
    context: &ReaderContext,
    cursor: &mut ShardCursor,
    consumer_arn: &str,
    renew_after: Duration,
    idle_timeout: Duration,
) -> ReaderEnd {
    let mut failures = 0u32;
    loop {
        let start = cursor.starting_point();
        let subscribed = context
            .api
            .subscribe(consumer_arn, &cursor.shard, &start, idle_timeout)
            .await;
        let subscription = match subscribed {
            Ok(subscription) => subscription,
            Err(error) => {
                let what = "SubscribeToShard failed; retrying";
                context
                    .back_off(&cursor.shard, what, &error, &mut failures)
                    .await;
                continue;
            }
        };
        context.health.succeeded();
        tracing::debug!(shard = %cursor.shard, ?start, "subscribed");
        let end = read_subscription(
            context,
            cursor,
            subscription,
            renew_after,
            idle_timeout,
            &mut failures,
        )
        .await;
        match end {
            SubscriptionEnd::Reader(end) => return end,
            SubscriptionEnd::Renew
            | SubscriptionEnd::Idle
            | SubscriptionEnd::Ended
            | SubscriptionEnd::Failed => {}
        }
    }
}

/// Delivers the events of one subscription until it ends.
async fn read_subscription(
    context: &ReaderContext,
    cursor: &mut ShardCursor,
    mut subscription: EventStream,
    renew_after: Duration,
    idle_timeout: Duration,
    failures: &mut u32,
) -> SubscriptionEnd {
    let renew_at = tokio::time::Instant::now() + renew_after;
    let mut last_probe = tokio::time::Instant::now();
    loop {
        let next = tokio::select! {
            _ = tokio::time::sleep_until(renew_at) => {
                tracing::debug!(shard = %cursor.shard, "renewing subscription before its 5-minute end");
                return SubscriptionEnd::Renew;
            }
            next = tokio::time::timeout(idle_timeout, subscription.next()) => next,
        };
        let event = match next {
            Err(_) => {
                let what = "subscription idle; resubscribing";
                let error = format!("nothing arrived in {idle_timeout:?}");
                context
                    .health
                    .failed(&cursor.shard, what, &error, Duration::ZERO);
                return SubscriptionEnd::Idle;
            }
            Ok(None) => return SubscriptionEnd::Ended,
            Ok(Some(Err(error))) => {
                if error.code.as_deref() == Some("ResourceNotFoundException")
                    && is_closed(context, &cursor.shard)
                {
                    // A closed shard that expired meanwhile.
                    return SubscriptionEnd::Reader(ReaderEnd::Expired);
                }
                let what = "subscription failed; resubscribing";
                context
                    .back_off(&cursor.shard, what, &error, failures)
                    .await;
                return SubscriptionEnd::Failed;
            }
            Ok(Some(Ok(event))) => event,
        };
        *failures = 0;
        context.health.succeeded();
        if let Some(ms) = event.millis_behind_latest {
            context.lag.behind(&cursor.shard, ms);
        }
        let had_records = !event.records.is_empty();
        if let Err(Stopped) = send_records(context, cursor, event.records).await {
            return SubscriptionEnd::Reader(ReaderEnd::Stopped);
        }
        let Some(continuation) = event.continuation else {
            // No continuation: the shard has ended (its children are in the event).
            return SubscriptionEnd::Reader(ReaderEnd::ShardClosed {
                children: event.child_shards,
            });
        };
        if !matches!(&cursor.progress, Some(ShardProgress::After { sequence, sub_sequence: None }) if sequence == &continuation)
        {
            cursor.progress = Some(ShardProgress::After {
                sequence: continuation.clone(),
                sub_sequence: None,
            });
            // Only once nothing of a resumed aggregate is pending.
            if cursor.skip.is_none() {
                let progress = ShardEvent::Progress {
                    shard: cursor.shard.clone(),
                    sequence: continuation,
                };
                if context.events.send(progress).await.is_err() {
                    return SubscriptionEnd::Reader(ReaderEnd::Stopped);
                }
            }
        }
        if !had_records
            && last_probe.elapsed() >= END_PROBE_INTERVAL
            && is_closed(context, &cursor.shard)
        {
            last_probe = tokio::time::Instant::now();
            if read_to_end(context, cursor).await {
                return SubscriptionEnd::Reader(ReaderEnd::ShardClosed {
                    children: Vec::new(),
                });
            }
        }
    }
}

async fn poll(
    context: &ReaderContext,
    cursor: &mut ShardCursor,
    interval: Duration,
    limit: i32,
) -> ReaderEnd {
    let mut failures = 0u32;
    let mut iterator: Option<String> = None;
    loop {
        let current = match iterator.take() {
            Some(it) => it,
            None => match context
                .api
                .shard_iterator(&cursor.shard, &cursor.starting_point())
                .await
            {
                Ok(Some(it)) => it,
                // Only a closed shard read to its end has no iterator.
                Ok(None) => {
                    return ReaderEnd::ShardClosed {
                        children: Vec::new(),
                    }
                }
                Err(error) => {
                    let what = "GetShardIterator failed; retrying";
                    context
                        .back_off(&cursor.shard, what, &error, &mut failures)
                        .await;
                    continue;
                }
            },
        };
        match context.api.get_records(&current, limit).await {
            Ok(page) => {
                failures = 0;
                context.health.succeeded();
                if let Some(ms) = page.millis_behind_latest {
                    context.lag.behind(&cursor.shard, ms);
                }
                let empty = page.records.is_empty();
                if let Err(Stopped) = send_records(context, cursor, page.records).await {
                    return ReaderEnd::Stopped;
                }
                match page.next_iterator {
                    None => {
                        return ReaderEnd::ShardClosed {
                            children: Vec::new(),
                        }
                    }
                    Some(next) => iterator = Some(next),
                }
                let caught_up = empty || page.millis_behind_latest == Some(0);
                // At most 5 calls per second per shard; wait longer when there is nothing new.
                let pause = if caught_up {
                    interval
                } else {
                    Duration::from_millis(200)
                };
                tokio::time::sleep(pause).await;
            }
            Err(error) if error.code.as_deref() == Some("ExpiredIteratorException") => {
                // Routine (a slow consumer): get a new iterator, quietly.
                failures += 1;
                tokio::time::sleep(backoff(failures)).await;
            }
            Err(error) => {
                iterator = Some(current);
                let what = "GetRecords failed; retrying";
                context
                    .back_off(&cursor.shard, what, &error, &mut failures)
                    .await;
            }
        }
    }
}
