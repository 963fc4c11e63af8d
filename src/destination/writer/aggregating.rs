//! The lane's side of `aggregation.*`: gathering a call of aggregates (one per predicted
//! shard at a time, see [`crate::destination::aggregate::pack`]) and the shard maps they are
//! packed by.
//!
//! A map is listed (ListShards, open shards only) on a stream's first call and kept until a
//! written aggregate's `ShardId` differs from the predicted shard — after a reshard, or when
//! the listing was taken mid-change — then listed again before the next call. Records whose
//! shard cannot be predicted (the listing failed, a gap between ranges) go alone, as they
//! would without aggregation.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::Client;

use super::error::RecordError;
use super::lane::{Arrival, CallDeadlines, Lane};
use super::outcome::OutcomeSlot;
use super::prepare::stream_key_of;
use super::{Entry, WriteUnit};
use crate::aws::StreamRef;
use crate::destination::aggregate::pack::{CallPacker, Outgoing, PackLimits, Packed};
use crate::destination::aggregate::shards::ShardMap;
use crate::destination::batch::MAX_REQUEST_BYTES;
use crate::destination::put::{PutEntry, PutRecordsSender};
use crate::destination::settings::AggregationSettings;
use crate::plugin::WriteOutcome;

/// After a failed listing, records of the stream go alone for this long before the next try.
const LISTING_RETRY: Duration = Duration::from_secs(10);

/// Lists a stream's open shards.
#[async_trait]
pub(super) trait ShardLister: Send + Sync + 'static {
    async fn open_shards(&self, stream: &StreamRef) -> Result<ShardMap, String>;
}

/// ListShards through the SDK.
pub(super) struct SdkShardLister(pub(super) Client);

#[async_trait]
impl ShardLister for SdkShardLister {
    async fn open_shards(&self, stream: &StreamRef) -> Result<ShardMap, String> {
        let mut listed = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let mut request = self.0.list_shards();
            request = match (&next_token, &stream.arn) {
                (Some(token), _) => request.next_token(token),
                (None, Some(arn)) => request.stream_arn(arn),
                (None, None) => request.stream_name(&stream.name),
            };
            let page = request
                .send()
                .await
                .map_err(|e| format!("ListShards failed: {}", DisplayErrorContext(e)))?;
            for shard in page.shards() {
                let open = shard
                    .sequence_number_range()
                    .is_none_or(|range| range.ending_sequence_number().is_none());
                if let (true, Some(range)) = (open, shard.hash_key_range()) {
                    listed.push((
                        shard.shard_id().to_string(),
                        range.starting_hash_key().to_string(),
                        range.ending_hash_key().to_string(),
                    ));
                }
            }
            next_token = page.next_token().map(str::to_string);
            if next_token.is_none() {
                break;
            }
        }
        ShardMap::from_listing(
            listed
                .iter()
                .map(|(id, start, end)| (id.as_str(), start.as_str(), end.as_str())),
        )
        .map_err(|e| e.to_string())
    }
}

enum Known {
    Map(Arc<ShardMap>),
    /// The last listing failed; try again after this.
    FailedUntil(tokio::time::Instant),
}

/// The shard maps of the streams written, shared by the lanes.
pub(super) struct ShardDirectory {
    lister: Arc<dyn ShardLister>,
    known: StdMutex<HashMap<Arc<str>, Known>>,
}

impl ShardDirectory {
    pub(super) fn new(lister: Arc<dyn ShardLister>) -> Self {
        ShardDirectory {
            lister,
            known: StdMutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Known>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stream's map, listed now if it is not known; `None` while listing fails.
    pub(super) async fn map(&self, stream: &StreamRef) -> Option<Arc<ShardMap>> {
        let key = stream_key_of(stream);
        match self.lock().get(&key) {
            Some(Known::Map(map)) => return Some(map.clone()),
            Some(Known::FailedUntil(until)) if tokio::time::Instant::now() < *until => return None,
            _ => {}
        }
        match self.lister.open_shards(stream).await {
            Ok(map) => {
                let map = Arc::new(map);
                tracing::debug!(stream = %stream.name, shards = map.len(), "listed the stream's shards for aggregation");
                self.lock().insert(key, Known::Map(map.clone()));
                Some(map)
            }
            Err(reason) => {
                tracing::warn!(
                    stream = %stream.name,
                    error = reason,
                    retry_in_s = LISTING_RETRY.as_secs(),
                    "cannot list the stream's shards, so its records are written without \
                     aggregation until a listing succeeds"
                );
                let until = tokio::time::Instant::now() + LISTING_RETRY;
                self.lock().insert(key, Known::FailedUntil(until));
                None
            }
        }
    }

    /// Kinesis put an aggregate packed by `predicted` on `placed`: when that is another shard,
    /// the map is out of date and the next call lists the shards again.
    pub(super) fn check_placement(&self, stream: &StreamRef, predicted: &Predicted, placed: &str) {
        if *predicted.shard_id == *placed {
            return;
        }
        let key = stream_key_of(stream);
        let mut known = self.lock();
        if let Some(Known::Map(current)) = known.get(&key) {
            if Arc::ptr_eq(current, &predicted.map) {
                tracing::info!(
                    stream = %stream.name,
                    predicted = %predicted.shard_id,
                    placed,
                    "an aggregate landed on another shard than predicted (the stream was \
                     resharded); listing its shards again"
                );
                known.remove(&key);
            }
        }
    }
}

/// The shard an aggregate was packed for, and the map that predicted it.
pub(super) struct Predicted {
    shard_id: Arc<str>,
    map: Arc<ShardMap>,
}

/// The aggregate of some records, written and retried as one Kinesis record.
pub(super) struct Aggregate {
    stream: Arc<StreamRef>,
    /// The first record's partition key; the explicit hash key places it.
    partition_key: String,
    hash_key: Arc<str>,
    predicted: Predicted,
    data: Vec<u8>,
    /// Positions and outcome slots of its records, in order.
    members: Vec<(Vec<u8>, OutcomeSlot)>,
}

/// One Kinesis record of an aggregated call.
pub(super) enum Unit {
    Alone(Entry),
    Aggregate(Aggregate),
}

impl PutEntry for Unit {
    fn data(&self) -> &[u8] {
        match self {
            Unit::Alone(entry) => &entry.data,
            Unit::Aggregate(aggregate) => &aggregate.data,
        }
    }

    fn partition_key(&self) -> &str {
        match self {
            Unit::Alone(entry) => &entry.partition_key,
            Unit::Aggregate(aggregate) => &aggregate.partition_key,
        }
    }

    fn explicit_hash_key(&self) -> Option<&str> {
        match self {
            Unit::Alone(entry) => entry.hash_key.as_deref(),
            Unit::Aggregate(aggregate) => Some(&aggregate.hash_key),
        }
    }
}

impl WriteUnit for Unit {
    fn stream(&self) -> &Arc<StreamRef> {
        match self {
            Unit::Alone(entry) => &entry.stream,
            Unit::Aggregate(aggregate) => &aggregate.stream,
        }
    }

    fn size(&self) -> usize {
        self.data().len() + self.partition_key().len()
    }

    fn user_records(&self) -> usize {
        match self {
            Unit::Alone(_) => 1,
            Unit::Aggregate(aggregate) => aggregate.members.len(),
        }
    }

    fn resolve(self, outcome: WriteOutcome) {
        match self {
            Unit::Alone(entry) => entry.resolve(outcome),
            Unit::Aggregate(aggregate) => {
                for (_, slot) in aggregate.members {
                    slot.resolve(outcome.clone());
                }
            }
        }
    }

    fn fail(self, error: impl Fn(Vec<u8>) -> RecordError) {
        match self {
            Unit::Alone(entry) => entry.fail(error),
            Unit::Aggregate(aggregate) => {
                for (position, slot) in aggregate.members {
                    slot.resolve(Err(error(position).to_string()));
                }
            }
        }
    }

    fn predicted(&self) -> Option<&Predicted> {
        match self {
            Unit::Alone(_) => None,
            Unit::Aggregate(aggregate) => Some(&aggregate.predicted),
        }
    }
}

/// A call being packed, the shard map of its stream and the entries for a later call.
struct Gathering {
    packer: CallPacker<Entry>,
    /// The map of the call's stream (its first entry's), once looked up.
    map: Option<(Arc<str>, Option<Arc<ShardMap>>)>,
    later: VecDeque<Entry>,
    full: bool,
}

impl Gathering {
    async fn offer(&mut self, entry: Entry, shards: &ShardDirectory) {
        if self.full {
            self.later.push_back(entry);
            return;
        }
        if self.map.is_none() {
            let map = shards.map(&entry.stream).await;
            self.map = Some((entry.stream_key.clone(), map));
        }
        let shard = match &self.map {
            Some((stream, Some(map))) if *stream == entry.stream_key => {
                map.predict(&entry.partition_key, entry.hash_key.as_deref())
            }
            _ => None,
        };
        match self.packer.offer(entry, shard) {
            Packed::Added => {}
            Packed::Deferred(entry) => self.later.push_back(entry),
            Packed::Full(entry) => {
                self.later.push_back(entry);
                self.full = true;
            }
        }
    }

    fn into_units(self) -> Vec<Unit> {
        let map = self.map.and_then(|(_, map)| map);
        self.packer
            .finish()
            .into_iter()
            .map(|outgoing| match outgoing {
                Outgoing::Alone(entry) => Unit::Alone(entry),
                Outgoing::Aggregate {
                    shard,
                    data,
                    records,
                } => {
                    let map = map.clone().expect("aggregates are packed by a map");
                    let first = &records[0];
                    Unit::Aggregate(Aggregate {
                        stream: first.stream.clone(),
                        partition_key: first.partition_key.clone(),
                        hash_key: map.start_key(shard).clone(),
                        predicted: Predicted {
                            shard_id: map.shard(shard).id.clone(),
                            map,
                        },
                        data,
                        members: records
                            .into_iter()
                            .map(|entry| (entry.position, entry.outcome))
                            .collect(),
                    })
                }
            })
            .collect()
    }
}

impl<S: PutRecordsSender> Lane<S> {
    /// Collects the next aggregated call, as `next_batch` collects a plain one: deferred
    /// entries first, then what is queued, then more while records are still being prepared,
    /// then (with aggregation.maxDelay or sdk.batch.delay) whatever arrives before the longer
    /// of the two ends, so partly filled aggregates wait that long for more records.
    pub(super) async fn next_aggregated_call(
        &mut self,
        aggregation: AggregationSettings,
    ) -> Option<Vec<Unit>> {
        let limits = self.limits();
        let mut gathering = Gathering {
            packer: CallPacker::new(PackLimits {
                max_bytes: aggregation.max_bytes,
                max_records: aggregation.max_records,
                strict_ordering: limits.strict_ordering,
                max_entries: limits.max_entries,
                max_call_bytes: MAX_REQUEST_BYTES,
            }),
            map: None,
            later: VecDeque::new(),
            full: false,
        };
        for entry in std::mem::take(&mut self.deferred) {
            gathering.offer(entry, &self.shards).await;
        }
        let delay = aggregation.max_delay.max(self.config.batch_delay);
        let mut closed = false;
        let mut deadlines = CallDeadlines::default();
        while !gathering.full && !gathering.packer.is_full() {
            let gathered_some = !gathering.packer.is_empty();
            match self
                .next_arrival(&mut deadlines, gathered_some, delay)
                .await
            {
                Arrival::Chunk(chunk) => {
                    for entry in chunk {
                        gathering.offer(entry, &self.shards).await;
                    }
                }
                Arrival::SendNow => break,
                Arrival::Closed => {
                    closed = true;
                    break;
                }
            }
        }
        if closed && gathering.packer.is_empty() {
            return None;
        }
        self.deferred = std::mem::take(&mut gathering.later);
        Some(gathering.into_units())
    }
}
