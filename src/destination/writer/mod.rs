//! Writing prepared records with PutRecords.
//!
//! One preparer task turns records into entries (stream, partition key, data) in the order
//! they were handed over, then routes each to one of `concurrency` lanes by its stream and
//! partition key. A lane batches what is waiting (up to 500 entries / 5 MiB, one entry per
//! key with strict ordering), sends one PutRecords call at a time and retries only the entries
//! that failed before it starts the next call, so records of one key are never reordered.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_kinesis::types::{StreamMode, StreamModeDetails};
use aws_sdk_kinesis::Client;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use super::batch::{Batch, BatchEntry, BatchLimits, Offer, MAX_REQUEST_BYTES};
use super::key::{explicit_hash_key, random_partition_key, KeyStrategy};
use super::put::{CallError, PutEntry, PutRecordsClient};
use super::rate::RateLimiter;
use super::retry::{call_verdict, entry_verdict, CallVerdict, EntryVerdict, RetryPolicy};
use super::settings::{stream_ref_from_rendered, CreateMode, StreamTarget};
use super::template::RecordTemplate;
use crate::aws::signed::Protocol;
use crate::aws::{KinesisConnection, StreamRef};
use crate::plugin::{Record, WriteOutcome};

/// Kinesis' default record size limit (data plus partition key).
pub const DEFAULT_MAX_RECORD_SIZE: usize = 1024 * 1024;
const COLLECTION: &str = "opencdc.collection";

/// Turns a record into the bytes written to Kinesis.
pub trait Encode: Send + Sync + 'static {
    fn encode(&self, record: &Record) -> Result<Vec<u8>, String>;
}

/// Rewrites a record before it is written (schema decoding).
#[async_trait]
pub trait Decode: Send + Sync + 'static {
    /// False when `decode` would leave the record as it is (and could not fail), so the
    /// writer need not await it.
    fn applies_to(&self, _record: &Record) -> bool {
        true
    }

    async fn decode(&self, record: &mut Record) -> Result<(), String>;
}

/// Everything the writer needs besides the client.
pub struct WriterConfig {
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

impl Entry {
    fn resolve(self, outcome: WriteOutcome) {
        self.outcome.resolve(outcome);
    }
}

struct Group {
    records: Vec<Record>,
    outcomes: Vec<OutcomeSlot>,
}

/// The outcomes of one handed-over group, filled in by the lanes in any order and sent on
/// when the last is in: one channel per group rather than one per record.
struct GroupOutcomes {
    outcomes: Vec<Option<WriteOutcome>>,
    missing: usize,
    done: Option<oneshot::Sender<Vec<WriteOutcome>>>,
}

type SharedOutcomes = Arc<StdMutex<GroupOutcomes>>;

impl GroupOutcomes {
    /// One slot per record and the receiver of all their outcomes, in record order.
    fn open(records: usize) -> (Vec<OutcomeSlot>, oneshot::Receiver<Vec<WriteOutcome>>) {
        let (done, receiver) = oneshot::channel();
        let mut outcomes = GroupOutcomes {
            outcomes: (0..records).map(|_| None).collect(),
            missing: records,
            done: Some(done),
        };
        if records == 0 {
            outcomes.finish();
        }
        let group: SharedOutcomes = Arc::new(StdMutex::new(outcomes));
        let slots = (0..records)
            .map(|index| OutcomeSlot {
                group: Some(group.clone()),
                index,
            })
            .collect();
        (slots, receiver)
    }

    fn fill(&mut self, index: usize, outcome: WriteOutcome) {
        if self.outcomes[index].is_none() {
            self.outcomes[index] = Some(outcome);
            self.missing -= 1;
            if self.missing == 0 {
                self.finish();
            }
        }
    }

    fn finish(&mut self) {
        let outcomes = std::mem::take(&mut self.outcomes)
            .into_iter()
            .map(|o| o.expect("every outcome is in"))
            .collect();
        if let Some(done) = self.done.take() {
            // The receiver is gone only when the pipeline was torn down; nothing to tell then.
            let _ = done.send(outcomes);
        }
    }
}

/// Where one record's outcome goes. Dropped without an outcome (the writer stopped), it
/// reports that the record was not written, so its group still completes.
struct OutcomeSlot {
    group: Option<SharedOutcomes>,
    index: usize,
}

impl OutcomeSlot {
    fn resolve(mut self, outcome: WriteOutcome) {
        self.fill(outcome);
    }

    fn fill(&mut self, outcome: WriteOutcome) {
        if let Some(group) = self.group.take() {
            group
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .fill(self.index, outcome);
        }
    }
}

impl Drop for OutcomeSlot {
    fn drop(&mut self) {
        if self.group.is_some() {
            self.fill(Err(
                "the destination stopped before writing the record".into()
            ));
        }
    }
}

/// The running writer. Dropping it stops the tasks.
pub struct Writer {
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
    pub fn connect(
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

    /// `client` describes and creates streams; `put` writes.
    pub fn start(
        client: Client,
        put: PutRecordsClient,
        config: WriterConfig,
        known: Vec<(StreamRef, StreamInfo)>,
    ) -> Writer {
        let config = Arc::new(config);
        let catalog = Arc::new(StreamCatalog::new(
            client.clone(),
            config.auto_create,
            config.max_record_size,
        ));
        for (stream, info) in known {
            catalog.insert(&stream, info);
        }
        let backlog = Arc::new(Backlog::default());
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
    pub fn submit(&self, records: Vec<Record>) -> oneshot::Receiver<Vec<WriteOutcome>> {
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

/// How long a partial call waits for records still being prepared.
const FILL_WAIT: Duration = Duration::from_millis(50);

/// How long a lane with a call in the making waits for more entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    SendNow,
    /// Wait for entries until then (`None`: no call in the making, wait for entries).
    Until(Option<tokio::time::Instant>),
}

/// The deadlines of one call in the making, each set when its wait begins.
#[derive(Debug, Default)]
struct CallDeadlines {
    /// `sdk.batch.delay`: once everything handed over is prepared.
    delay: Option<tokio::time::Instant>,
    /// [`FILL_WAIT`]: while records handed over together are still being prepared, but not
    /// for long, since a preparer held up by another lane (throttled, retrying) must not hold
    /// this one.
    fill: Option<tokio::time::Instant>,
}

impl CallDeadlines {
    fn next(
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

async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
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

/// How a position is named in messages: as text when it is text.
pub fn describe_position(position: &[u8]) -> String {
    match std::str::from_utf8(position) {
        Ok(text) if !text.chars().any(char::is_control) => format!("{text:?}"),
        _ => {
            use base64::Engine;
            format!(
                "base64:{}",
                base64::engine::general_purpose::STANDARD.encode(position)
            )
        }
    }
}

async fn prepare_loop(
    config: Arc<WriterConfig>,
    mut groups: mpsc::UnboundedReceiver<Group>,
    lanes: Vec<mpsc::Sender<Vec<Entry>>>,
    backlog: Arc<Backlog>,
) {
    let mut fixed: Option<(Arc<StreamRef>, Arc<str>)> = None;
    // Entries routed to a lane but not yet queued to it: they go out with the group's end,
    // when a call's worth has gathered, or (while the lane is busy) with a later group.
    let mut staged: Vec<Vec<Entry>> = lanes.iter().map(|_| Vec::new()).collect();
    while let Some(group) = groups.recv().await {
        let size = group.records.len();
        for (mut record, outcome) in group.records.into_iter().zip(group.outcomes) {
            if let Some(decoder) = config.decoder.as_ref().filter(|d| d.applies_to(&record)) {
                if let Err(e) = decoder.decode(&mut record).await {
                    outcome.resolve(Err(format!(
                        "record at position {}: {e}",
                        describe_position(&record.position)
                    )));
                    continue;
                }
            }
            match prepare(&config, &record, &mut fixed) {
                Ok((stream, stream_key, partition_key, hash_key, data)) => {
                    let key_hash = super::batch::key_hash(&stream_key, &partition_key);
                    let lane = (key_hash % lanes.len() as u64) as usize;
                    staged[lane].push(Entry {
                        stream,
                        stream_key,
                        partition_key,
                        key_hash,
                        hash_key,
                        data,
                        position: std::mem::take(&mut record.position),
                        outcome,
                    });
                    if staged[lane].len() >= super::batch::MAX_ENTRIES {
                        queue(&lanes[lane], std::mem::take(&mut staged[lane])).await;
                    }
                }
                Err(reason) => {
                    outcome.resolve(Err(format!(
                        "record at position {}: {reason}",
                        describe_position(&record.position)
                    )));
                }
            }
        }
        let more_waiting = !groups.is_empty();
        for (lane, entries) in lanes.iter().zip(staged.iter_mut()) {
            if entries.is_empty() {
                continue;
            }
            if more_waiting {
                // A busy lane keeps collecting here rather than holding up the other lanes.
                match lane.try_send(std::mem::take(entries)) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(chunk)) => *entries = chunk,
                    Err(mpsc::error::TrySendError::Closed(chunk)) => shut_down(chunk),
                }
            } else {
                queue(lane, std::mem::take(entries)).await;
            }
        }
        backlog.remove(size);
    }
}

async fn queue(lane: &mpsc::Sender<Vec<Entry>>, chunk: Vec<Entry>) {
    if let Err(mpsc::error::SendError(chunk)) = lane.send(chunk).await {
        shut_down(chunk);
    }
}

fn shut_down(entries: Vec<Entry>) {
    for entry in entries {
        entry.resolve(Err("the destination is shutting down".into()));
    }
}

type Prepared = (Arc<StreamRef>, Arc<str>, String, Option<String>, Vec<u8>);

/// What the writer would send for one record, without sending it (the CLI's `produce
/// --dry-run`). Schema decoding (`config.decoder`) is not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedRecord {
    pub stream: StreamRef,
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Vec<u8>,
}

/// Routes, keys and encodes a record exactly as the writer does before PutRecords.
pub fn prepare_record(config: &WriterConfig, record: &Record) -> Result<PreparedRecord, String> {
    let (stream, _, partition_key, explicit_hash_key, data) = prepare(config, record, &mut None)?;
    Ok(PreparedRecord {
        stream: Arc::unwrap_or_clone(stream),
        partition_key,
        explicit_hash_key,
        data,
    })
}

fn prepare(
    config: &WriterConfig,
    record: &Record,
    fixed: &mut Option<(Arc<StreamRef>, Arc<str>)>,
) -> Result<Prepared, String> {
    let (stream, stream_key) = match &config.target {
        StreamTarget::Fixed(stream) => fixed
            .get_or_insert_with(|| (Arc::new(stream.clone()), stream_key_of(stream)))
            .clone(),
        StreamTarget::Template(template) => {
            let rendered = template
                .render(record)
                .map_err(|e| format!("the stream template {e}"))?;
            let stream = stream_ref_from_rendered(&rendered)?;
            let key = stream_key_of(&stream);
            (Arc::new(stream), key)
        }
        StreamTarget::Collection => {
            let name = record.metadata.get(COLLECTION).unwrap_or("");
            if name.is_empty() {
                return Err(
                    "the record has no opencdc.collection metadata and neither streamName nor \
                     streamARN is configured, so there is no stream to write it to"
                        .into(),
                );
            }
            let stream = stream_ref_from_rendered(name).map_err(|_| {
                format!("its opencdc.collection {name:?} is not a valid Kinesis stream name")
            })?;
            let key = stream_key_of(&stream);
            (Arc::new(stream), key)
        }
    };
    let partition_key = match config
        .partition_key
        .derive(record)
        .map_err(|e| e.to_string())?
    {
        Some(key) => key,
        None => {
            tracing::debug!(
                position = %describe_position(&record.position),
                "empty partition key; using a random one"
            );
            random_partition_key()
        }
    };
    let hash_key = match &config.explicit_hash_key {
        Some(template) => explicit_hash_key(template, record).map_err(|e| e.to_string())?,
        None => None,
    };
    let data = config.encoder.encode(record)?;
    Ok((stream, stream_key, partition_key, hash_key, data))
}

fn stream_key_of(stream: &StreamRef) -> Arc<str> {
    Arc::from(stream.arn.as_deref().unwrap_or(&stream.name))
}

/// What the writer knows about a stream.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    pub max_record_size: usize,
}

impl StreamInfo {
    /// The configured record size limit, else the stream's `MaxRecordSizeInKiB`, else 1 MiB.
    pub fn new(configured_max: Option<usize>, reported_max_kib: Option<i32>) -> StreamInfo {
        let reported = reported_max_kib
            .filter(|&k| k > 0)
            .map(|k| k as usize * 1024);
        StreamInfo {
            max_record_size: configured_max
                .or(reported)
                .unwrap_or(DEFAULT_MAX_RECORD_SIZE),
        }
    }
}

/// Stream descriptions (and creation), cached per stream.
struct StreamCatalog {
    client: Client,
    auto_create: Option<CreateMode>,
    max_record_size: Option<usize>,
    known: StdMutex<HashMap<String, StreamInfo>>,
}

impl StreamCatalog {
    fn new(
        client: Client,
        auto_create: Option<CreateMode>,
        max_record_size: Option<usize>,
    ) -> Self {
        StreamCatalog {
            client,
            auto_create,
            max_record_size,
            known: StdMutex::new(HashMap::new()),
        }
    }

    fn insert(&self, stream: &StreamRef, info: StreamInfo) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(stream_key_of(stream).to_string(), info);
    }

    fn forget(&self, stream: &StreamRef) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(stream_key_of(stream).as_ref());
    }

    async fn info(&self, stream: &StreamRef) -> Result<StreamInfo, String> {
        let key = stream_key_of(stream);
        if let Some(info) = self
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key.as_ref())
        {
            return Ok(info.clone());
        }
        let info = match self.describe(stream).await {
            Ok(info) => info,
            Err(Missing) => match self.auto_create {
                Some(mode) => self.create(stream, mode).await?,
                None => {
                    return Err(format!(
                        "stream {:?} does not exist: create it, or set auto.create.streams=true to have the \
                         connector create missing streams",
                        stream.name
                    ))
                }
            },
        }?;
        self.insert(stream, info.clone());
        Ok(info)
    }

    fn info_from(&self, max_kib: Option<i32>) -> StreamInfo {
        StreamInfo::new(self.max_record_size, max_kib)
    }

    async fn describe(&self, stream: &StreamRef) -> Result<Result<StreamInfo, String>, Missing> {
        let mut request = self.client.describe_stream_summary();
        request = match &stream.arn {
            Some(arn) => request.stream_arn(arn),
            None => request.stream_name(&stream.name),
        };
        match request.send().await {
            Ok(response) => Ok(Ok(self.info_from(
                response
                    .stream_description_summary
                    .and_then(|d| d.max_record_size_in_kib),
            ))),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Err(Missing),
            Err(e) => Ok(Err(format!(
                "could not describe stream {:?}: {}",
                stream.name,
                DisplayErrorContext(&e)
            ))),
        }
    }

    async fn create(
        &self,
        stream: &StreamRef,
        mode: CreateMode,
    ) -> Result<Result<StreamInfo, String>, String> {
        let mut request = self.client.create_stream().stream_name(&stream.name);
        request = match mode {
            CreateMode::OnDemand => request.stream_mode_details(
                StreamModeDetails::builder()
                    .stream_mode(StreamMode::OnDemand)
                    .build()
                    .map_err(|e| e.to_string())?,
            ),
            CreateMode::Provisioned { shards } => request.shard_count(shards),
        };
        match request.send().await {
            Ok(_) => tracing::info!(stream = %stream.name, ?mode, "created stream"),
            // Another lane (or another pipeline) is creating it: wait for it below.
            Err(e) if e.code() == Some("ResourceInUseException") => {}
            Err(e) => {
                return Err(format!(
                    "could not create stream {:?}: {}",
                    stream.name,
                    DisplayErrorContext(&e)
                ))
            }
        }
        for _ in 0..300 {
            let mut request = self.client.describe_stream_summary();
            request = request.stream_name(&stream.name);
            if let Ok(response) = request.send().await {
                if let Some(summary) = response.stream_description_summary {
                    if summary.stream_status.as_str() == "ACTIVE" {
                        return Ok(Ok(self.info_from(summary.max_record_size_in_kib)));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!(
            "stream {:?} did not become ACTIVE within a minute of creating it",
            stream.name
        ))
    }
}

/// The stream does not exist.
struct Missing;

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

struct Lane {
    put: Arc<PutRecordsClient>,
    config: Arc<WriterConfig>,
    catalog: Arc<StreamCatalog>,
    backlog: Arc<Backlog>,
    waiting: mpsc::Receiver<Vec<Entry>>,
    /// Entries that belong to a later call, in arrival order.
    deferred: VecDeque<Entry>,
}

impl Lane {
    async fn run(mut self) {
        while let Some(batch) = self.next_batch().await {
            self.write(batch).await;
        }
    }

    fn limits(&self) -> BatchLimits {
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
            let drained = self.backlog.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            match self.waiting.try_recv() {
                Ok(chunk) => {
                    chunk.into_iter().for_each(|entry| gathering.offer(entry));
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            let wait = deadlines.next(
                !gathering.batch.is_empty(),
                self.backlog.is_drained(),
                self.config.batch_delay,
                tokio::time::Instant::now(),
            );
            let deadline = match wait {
                Wait::SendNow => break,
                Wait::Until(deadline) => deadline,
            };
            tokio::select! {
                chunk = self.waiting.recv() => match chunk {
                    Some(chunk) => chunk.into_iter().for_each(|entry| gathering.offer(entry)),
                    None => closed = true,
                },
                _ = &mut drained => {}
                _ = sleep_until_some(deadline) => break,
            }
        }
        if closed && gathering.batch.is_empty() {
            return None;
        }
        self.deferred = gathering.later;
        Some(gathering.batch)
    }

    async fn write(&self, batch: Batch<Entry>) {
        let entries = batch.into_entries();
        let Some(first) = entries.first() else { return };
        let stream = first.stream.clone();
        let info = match self.catalog.info(&stream).await {
            Ok(info) => info,
            Err(reason) => {
                for entry in entries {
                    let position = describe_position(&entry.position);
                    entry.resolve(Err(format!("record at position {position}: {reason}")));
                }
                return;
            }
        };
        let mut pending = Vec::with_capacity(entries.len());
        for entry in entries {
            let size = entry.size();
            if size > info.max_record_size {
                let position = describe_position(&entry.position);
                entry.resolve(Err(format!(
                    "record at position {position} is {size} bytes (data plus partition key), over the \
                     limit of {} bytes of stream {:?}: shrink it (for example with a processor), raise the \
                     stream's MaxRecordSizeInKiB, or route it elsewhere",
                    info.max_record_size, stream.name
                )));
            } else {
                pending.push(entry);
            }
        }
        if let Some(rate) = &self.config.rate {
            if !pending.is_empty() {
                rate.acquire(pending.len()).await;
            }
        }
        self.put_with_retries(&stream, pending).await;
    }

    async fn put_with_retries(&self, stream: &StreamRef, mut pending: Vec<Entry>) {
        let policy = self.config.retry;
        let mut attempts = 0;
        while !pending.is_empty() {
            attempts += 1;
            let (retry, last_error) = self.put_once(stream, pending).await;
            pending = retry;
            if pending.is_empty() {
                return;
            }
            if !policy.may_retry(attempts) {
                let reason = last_error.unwrap_or_else(|| "unknown error".into());
                for entry in pending {
                    let position = describe_position(&entry.position);
                    entry.resolve(Err(format!(
                        "record at position {position} was not written to stream {:?} after {attempts} \
                         attempts: {reason}",
                        stream.name
                    )));
                }
                return;
            }
            let wait = policy.backoff(attempts);
            tracing::debug!(
                stream = %stream.name,
                entries = pending.len(),
                attempt = attempts,
                wait_ms = wait.as_millis() as u64,
                error = last_error.as_deref().unwrap_or(""),
                "retrying PutRecords entries"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One PutRecords call. Resolves written and rejected entries; returns those to retry and
    /// the error that made them fail.
    async fn put_once(
        &self,
        stream: &StreamRef,
        entries: Vec<Entry>,
    ) -> (Vec<Entry>, Option<String>) {
        debug_assert!(
            entries.iter().map(Entry::size).sum::<usize>() <= MAX_REQUEST_BYTES
                || entries.len() == 1
        );
        match self.put.put_records(stream, &entries).await {
            Ok(results) => {
                let mut retry = Vec::new();
                let mut last_error = None;
                for (entry, result) in entries.into_iter().zip(results) {
                    let verdict = match &result {
                        None => EntryVerdict::Written,
                        Some(failure) => entry_verdict(Some(&failure.code), Some(&failure.message)),
                    };
                    match verdict {
                        EntryVerdict::Written => entry.resolve(Ok(())),
                        EntryVerdict::Retry { code, message } => {
                            last_error = Some(format!("{code}: {message}"));
                            retry.push(entry);
                        }
                        EntryVerdict::Reject { code, message } => {
                            let position = describe_position(&entry.position);
                            entry.resolve(Err(format!(
                                "record at position {position} was rejected by stream {:?}: {code}: {message}",
                                stream.name
                            )));
                        }
                    }
                }
                (retry, last_error)
            }
            Err(CallError {
                failure,
                code,
                message,
            }) => {
                let reason = match &code {
                    Some(code) => format!("{code}: {message}"),
                    None => message,
                };
                match call_verdict(failure, code.as_deref()) {
                    CallVerdict::RetryAll => (entries, Some(reason)),
                    CallVerdict::StreamMissing => {
                        self.catalog.forget(stream);
                        for entry in entries {
                            let position = describe_position(&entry.position);
                            entry.resolve(Err(format!(
                                "record at position {position}: stream {:?} does not exist ({reason})",
                                stream.name
                            )));
                        }
                        (Vec::new(), None)
                    }
                    CallVerdict::RejectAll => {
                        for entry in entries {
                            let position = describe_position(&entry.position);
                            entry.resolve(Err(format!(
                                "record at position {position} was not written to stream {:?}: {reason}",
                                stream.name
                            )));
                        }
                        (Vec::new(), None)
                    }
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_outcomes_arrive_in_record_order_once_all_are_in() {
        let (mut slots, mut receiver) = GroupOutcomes::open(3);
        let third = slots.pop().unwrap();
        let second = slots.pop().unwrap();
        let first = slots.pop().unwrap();
        third.resolve(Err("three".into()));
        first.resolve(Ok(()));
        assert!(receiver.try_recv().is_err(), "one outcome is still missing");
        second.resolve(Ok(()));
        assert_eq!(
            receiver.try_recv().unwrap(),
            vec![Ok(()), Ok(()), Err("three".to_string())]
        );
    }

    #[test]
    fn a_dropped_slot_reports_its_record_as_not_written() {
        let (mut slots, mut receiver) = GroupOutcomes::open(2);
        slots.remove(0).resolve(Ok(()));
        drop(slots);
        let outcomes = receiver.try_recv().unwrap();
        assert_eq!(outcomes[0], Ok(()));
        assert!(outcomes[1]
            .as_ref()
            .unwrap_err()
            .contains("stopped before writing"));
    }

    #[test]
    fn an_empty_group_is_complete_at_once() {
        let (slots, mut receiver) = GroupOutcomes::open(0);
        assert!(slots.is_empty());
        assert_eq!(receiver.try_recv().unwrap(), Vec::<WriteOutcome>::new());
    }

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
