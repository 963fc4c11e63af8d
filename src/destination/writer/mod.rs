//! Writing prepared records with PutRecords.
//!
//! One preparer task turns records into entries (stream, partition key, data) in the order
//! they were handed over, then routes each to one of `concurrency` lanes by its stream and
//! partition key. A lane batches what is waiting (up to 500 entries / 5 MiB, one entry per
//! key with strict ordering), sends one PutRecords call at a time and retries only the entries
//! that failed before it starts the next call, so records of one key are never reordered.

mod aggregating;
#[cfg(test)]
mod aggregation_tests;
mod catalog;
mod error;
mod health;
mod lane;
mod outcome;
mod prepare;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kinesis::Client;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use super::aggregate::pack::UserRecord;
use super::batch::{BatchEntry, BatchLimits};
use super::key::KeyStrategy;
use super::put::{PutEntry, PutRecordsClient, PutRecordsSender};
use super::rate::RateLimiter;
use super::retry::RetryPolicy;
use super::settings::{AggregationSettings, CreateMode, DestinationSettings, StreamTarget};
use super::template::RecordTemplate;
use crate::aws::signed::Protocol;
use crate::aws::{KinesisConnection, StreamRef};
use crate::plugin::{Record, WriteOutcome};
use aggregating::{Predicted, SdkShardLister, ShardDirectory, ShardLister};
use catalog::StreamCatalog;
pub(crate) use catalog::StreamInfo;
pub(crate) use error::{RecordError, SeamError};
use health::CallHealth;
use lane::Lane;
use outcome::{Group, GroupOutcomes, OutcomeSlot};
use prepare::prepare_loop;
pub(crate) use prepare::prepare_record;
#[cfg(test)]
pub(crate) use prepare::PreparedRecord;

/// Kinesis' default record size limit (data plus partition key).
pub(crate) const DEFAULT_MAX_RECORD_SIZE: usize = 1024 * 1024;

/// Turns a record into the bytes written to Kinesis.
pub(crate) trait Encode: Send + Sync + 'static {
    fn encode(&self, record: &Record) -> Result<Vec<u8>, SeamError>;
}

/// Rewrites a record before it is written (schema decoding).
#[async_trait]
pub(crate) trait Decode: Send + Sync + 'static {
    /// False when `decode` would leave the record as it is (and could not fail), so the
    /// writer need not await it.
    fn applies_to(&self, _record: &Record) -> bool {
        true
    }

    async fn decode(&self, record: &mut Record) -> Result<(), SeamError>;
}

/// Everything the writer needs besides the client.
pub(crate) struct WriterConfig {
    pub target: StreamTarget,
    pub partition_key: KeyStrategy,
    pub explicit_hash_key: Option<RecordTemplate>,
    pub encoder: Arc<dyn Encode>,
    pub decoder: Option<Arc<dyn Decode>>,
    pub auto_create: Option<CreateMode>,
    pub max_record_size: Option<usize>,
    pub concurrency: usize,
    /// How PutRecords calls are encoded.
    pub protocol: Protocol,
    pub limits: BatchLimits,
    pub batch_delay: Duration,
    pub retry: RetryPolicy,
    pub rate: Option<RateLimiter>,
    /// `aggregation.*`: KPL aggregation per predicted shard; `None` writes records as they are.
    pub aggregation: Option<AggregationSettings>,
}

impl WriterConfig {
    /// The writer configuration `settings` call for, encoding with `encoder` and (when
    /// schema decoding is on) decoding with `decoder`. The one place the destination and the
    /// CLI's `produce` build it.
    pub(crate) fn from_settings(
        settings: &DestinationSettings,
        encoder: Arc<dyn Encode>,
        decoder: Option<Arc<dyn Decode>>,
    ) -> WriterConfig {
        WriterConfig {
            target: settings.target.clone(),
            partition_key: settings.partition_key.clone(),
            explicit_hash_key: settings.explicit_hash_key.clone(),
            encoder,
            decoder,
            auto_create: settings.auto_create,
            max_record_size: settings.max_record_size,
            concurrency: settings.concurrency,
            protocol: settings.protocol,
            limits: BatchLimits {
                max_entries: settings.batch_size,
                strict_ordering: settings.strict_ordering,
                ..BatchLimits::default()
            },
            batch_delay: settings.batch_delay,
            retry: settings.retry,
            rate: RateLimiter::new(settings.rate_per_second, settings.rate_burst),
            aggregation: settings.aggregation.map(|mut aggregation| {
                // An aggregate never exceeds a configured record size limit either.
                if let Some(limit) = settings.max_record_size {
                    aggregation.max_bytes = aggregation.max_bytes.min(limit);
                }
                aggregation
            }),
        }
    }
}

/// A record ready for PutRecords.
struct Entry {
    stream: Arc<StreamRef>,
    stream_key: Arc<str>,
    partition_key: String,
    /// `batch::key_hash` of stream and partition key: lane choice and call ordering.
    key_hash: u64,
    hash_key: Option<String>,
    data: Vec<u8>,
    position: Vec<u8>,
    outcome: OutcomeSlot,
}

impl BatchEntry for Entry {
    fn stream(&self) -> &str {
        &self.stream_key
    }

    fn partition_key(&self) -> &str {
        &self.partition_key
    }

    fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }

    fn key_hash(&self) -> u64 {
        self.key_hash
    }
}

impl UserRecord for Entry {
    fn stream(&self) -> &str {
        &self.stream_key
    }

    fn partition_key(&self) -> &str {
        &self.partition_key
    }

    fn explicit_hash_key(&self) -> Option<&str> {
        self.hash_key.as_deref()
    }

    fn data(&self) -> &[u8] {
        &self.data
    }

    fn key_hash(&self) -> u64 {
        self.key_hash
    }
}

/// One Kinesis record of a call, as the lane writes and retries it: a record as it is
/// ([`Entry`]) or an aggregate of records.
trait WriteUnit: PutEntry + Send + Sync + Sized + 'static {
    fn stream(&self) -> &Arc<StreamRef>;
    /// Bytes Kinesis counts against its record limit: data plus partition key.
    fn size(&self) -> usize;
    /// Conduit records it holds.
    fn user_records(&self) -> usize;
    /// Acks (or nacks) every record it holds.
    fn resolve(self, outcome: WriteOutcome);
    /// Nacks every record it holds with the error `error` makes of the record's position.
    fn fail(self, error: impl Fn(Vec<u8>) -> RecordError);
    /// For an aggregate: the shard it was packed for, to check where Kinesis put it.
    fn predicted(&self) -> Option<&Predicted> {
        None
    }
}

impl WriteUnit for Entry {
    fn stream(&self) -> &Arc<StreamRef> {
        &self.stream
    }

    fn size(&self) -> usize {
        BatchEntry::size(self)
    }

    fn user_records(&self) -> usize {
        1
    }

    fn resolve(self, outcome: WriteOutcome) {
        self.outcome.resolve(outcome);
    }

    fn fail(mut self, error: impl Fn(Vec<u8>) -> RecordError) {
        let position = std::mem::take(&mut self.position);
        self.outcome.resolve(Err(error(position).to_string()));
    }
}

/// The running writer. Dropping it stops the tasks.
pub(crate) struct Writer {
    groups: mpsc::UnboundedSender<Group>,
    backlog: Arc<Backlog>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Writer {
    /// A writer on `connection`: PutRecords sent by hand, stream descriptions and creation
    /// through its SDK client.
    pub(crate) fn connect(
        connection: KinesisConnection,
        config: WriterConfig,
        known: Vec<(StreamRef, StreamInfo)>,
    ) -> Result<Writer, String> {
        let put = PutRecordsClient::new(
            &connection.sdk_config,
            connection.endpoint_override,
            config.protocol,
        )?;
        Ok(Writer::start(connection.client, put, config, known))
    }

    /// `client` describes and creates streams; `put` sends the PutRecords calls.
    pub(crate) fn start(
        client: Client,
        put: impl PutRecordsSender,
        config: WriterConfig,
        known: Vec<(StreamRef, StreamInfo)>,
    ) -> Writer {
        let lister = SdkShardLister(client.clone());
        Writer::start_with_lister(client, put, config, known, lister)
    }

    /// [`Writer::start`] with the shard listings for aggregation from `lister`.
    fn start_with_lister(
        client: Client,
        put: impl PutRecordsSender,
        config: WriterConfig,
        known: Vec<(StreamRef, StreamInfo)>,
        lister: impl ShardLister,
    ) -> Writer {
        let config = Arc::new(config);
        let shards = Arc::new(ShardDirectory::new(Arc::new(lister)));
        let catalog = Arc::new(StreamCatalog::new(
            client.clone(),
            config.auto_create,
            config.max_record_size,
        ));
        for (stream, info) in known {
            catalog.insert(&stream, info);
        }
        let backlog = Arc::new(Backlog::default());
        let health = Arc::new(CallHealth::default());
        let put = Arc::new(put);
        let mut tasks = Vec::new();
        let mut lanes = Vec::new();
        for _ in 0..config.concurrency.max(1) {
            let (tx, rx) = mpsc::channel::<Vec<Entry>>(LANE_QUEUE_CHUNKS);
            lanes.push(tx);
            let lane = Lane {
                put: put.clone(),
                config: config.clone(),
                catalog: catalog.clone(),
                backlog: backlog.clone(),
                health: health.clone(),
                shards: shards.clone(),
                waiting: rx,
                deferred: VecDeque::new(),
            };
            tasks.push(tokio::spawn(lane.run()));
        }
        let (groups, group_rx) = mpsc::unbounded_channel();
        tasks.push(tokio::spawn(prepare_loop(
            config,
            group_rx,
            lanes,
            backlog.clone(),
        )));
        Writer {
            groups,
            backlog,
            tasks,
        }
    }

    /// Hands records over (in call order) and returns the receiver of their outcomes, one
    /// per record in the same order, sent once all are known.
    pub(crate) fn submit(&self, records: Vec<Record>) -> oneshot::Receiver<Vec<WriteOutcome>> {
        let (outcomes, receiver) = GroupOutcomes::open(records.len());
        self.backlog.add(records.len());
        if let Err(mpsc::error::SendError(group)) = self.groups.send(Group { records, outcomes }) {
            self.backlog.remove(group.records.len());
            for outcome in group.outcomes {
                outcome.resolve(Err("the destination is shutting down".into()));
            }
        }
        receiver
    }
}

/// Chunks of entries a lane may have queued before the preparer waits for it.
const LANE_QUEUE_CHUNKS: usize = 4;

/// Records handed over but not yet routed to a lane. While there are some, a lane with a
/// partial batch waits for more instead of sending a small call: per-call costs (signing,
/// HTTP, the response) dominate when calls carry a few dozen entries.
#[derive(Default)]
struct Backlog {
    unrouted: AtomicUsize,
    drained: Notify,
}

impl Backlog {
    fn add(&self, records: usize) {
        self.unrouted.fetch_add(records, Ordering::AcqRel);
    }

    fn remove(&self, records: usize) {
        if self.unrouted.fetch_sub(records, Ordering::AcqRel) == records {
            self.drained.notify_waiters();
        }
    }

    fn is_drained(&self) -> bool {
        self.unrouted.load(Ordering::Acquire) == 0
    }
}

impl PutEntry for Entry {
    fn data(&self) -> &[u8] {
        &self.data
    }

    fn partition_key(&self) -> &str {
        &self.partition_key
    }

    fn explicit_hash_key(&self) -> Option<&str> {
        self.hash_key.as_deref()
    }
}
