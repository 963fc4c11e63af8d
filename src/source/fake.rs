//! An in-memory stream behind [`ShardApi`], for tests of the engine and its readers: shards
//! with parents, records put and resharding done while a test runs, subscriptions that end
//! after a lifetime, shard iterators that expire. Every GetShardIterator and SubscribeToShard
//! is logged with where it started, so tests can check where readers resumed.
//!
//! Time is tokio's, so tests run with paused time and minutes pass at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::api::{ApiError, EventStream, RecordsPage, ShardApi};
use super::lineage::ShardInfo;
use super::records::FetchedRecord;
use super::sequence;
use super::subscribe::{StartingPoint, SubscribeError, SubscriptionEvent};

/// Records per subscription event.
const EVENT_RECORDS: usize = 10;
/// How often a caught-up subscription sends an empty event (Kinesis: about every 5 s).
const HEARTBEAT: Duration = Duration::from_secs(1);
/// The pause before an event with records: reading a shard takes time, as it does in Kinesis.
const EVENT_PACE: Duration = Duration::from_millis(50);

/// A call that tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    ShardIterator {
        shard: String,
        start: StartingPoint,
    },
    Subscribe {
        shard: String,
        start: StartingPoint,
    },
    /// A GetRecords with an iterator older than the iterator lifetime.
    Expired {
        shard: String,
    },
}

#[derive(Debug)]
struct FakeShard {
    id: String,
    parents: Vec<String>,
    closed: bool,
    children: Vec<String>,
    /// Below every record's sequence number: what an empty event continues from.
    base_sequence: String,
    records: Vec<FetchedRecord>,
}

#[derive(Debug)]
struct State {
    shards: Vec<FakeShard>,
    next_sequence: u64,
    iterators: HashMap<String, (String, usize, Instant)>,
    next_iterator: u64,
    iterator_lifetime: Option<Duration>,
    subscription_lifetime: Duration,
    calls: Vec<Call>,
    /// The latest arrival time given to a record.
    last_arrival: i64,
}

/// The stream; clones share it.
#[derive(Debug, Clone)]
pub(crate) struct FakeStream {
    state: Arc<Mutex<State>>,
}

impl Default for FakeStream {
    fn default() -> Self {
        FakeStream {
            state: Arc::new(Mutex::new(State {
                shards: Vec::new(),
                // Every sequence number has the same number of digits and no leading zero.
                next_sequence: 100_000,
                iterators: HashMap::new(),
                next_iterator: 0,
                iterator_lifetime: None,
                subscription_lifetime: Duration::from_secs(300),
                calls: Vec::new(),
                last_arrival: 0,
            })),
        }
    }
}

impl State {
    fn shard(&self, id: &str) -> Option<&FakeShard> {
        self.shards.iter().find(|s| s.id == id)
    }

    fn shard_mut(&mut self, id: &str) -> &mut FakeShard {
        self.shards
            .iter_mut()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("no shard {id}"))
    }

    fn sequence(&mut self) -> String {
        self.next_sequence += 1;
        self.next_sequence.to_string()
    }

    /// The index of the first record a start point reads.
    fn index(&self, shard: &FakeShard, start: &StartingPoint) -> usize {
        let first = |pred: &dyn Fn(&FetchedRecord) -> bool| {
            shard
                .records
                .iter()
                .position(pred)
                .unwrap_or(shard.records.len())
        };
        match start {
            StartingPoint::TrimHorizon => 0,
            StartingPoint::Latest => shard.records.len(),
            StartingPoint::AtTimestamp(ms) => first(&|r| r.arrival_ms.is_some_and(|a| a >= *ms)),
            StartingPoint::AtSequence(s) => first(&|r| sequence::compare(&r.sequence, s).is_ge()),
            StartingPoint::AfterSequence(s) => {
                first(&|r| sequence::compare(&r.sequence, s).is_gt())
            }
        }
    }

    fn iterator(&mut self, shard: &str, index: usize) -> String {
        self.next_iterator += 1;
        let id = format!("iterator-{}", self.next_iterator);
        self.iterators
            .insert(id.clone(), (shard.to_owned(), index, Instant::now()));
        id
    }
}

impl FakeStream {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an open shard.
    pub(crate) fn add_shard(&self, id: &str, parents: &[&str]) {
        let mut state = self.lock();
        let base_sequence = state.sequence();
        state.shards.push(FakeShard {
            id: id.to_owned(),
            parents: parents.iter().map(|p| (*p).to_owned()).collect(),
            closed: false,
            children: Vec::new(),
            base_sequence,
            records: Vec::new(),
        });
    }

    /// Puts a record with `data` (also its partition key) on an open shard; returns its
    /// sequence number.
    pub(crate) fn put(&self, shard: &str, data: &str) -> String {
        self.put_arrived(shard, data, None)
    }

    /// [`FakeStream::put`] with an arrival time (epoch milliseconds; not before an earlier
    /// record's, as `AT_TIMESTAMP` starts assume). `None`: now by the host's clock, as Kinesis
    /// stamps records by its own (paused tokio time does not move it).
    pub(crate) fn put_arrived(&self, shard: &str, data: &str, arrival: Option<i64>) -> String {
        let mut state = self.lock();
        let sequence = state.sequence();
        let arrival =
            arrival.unwrap_or_else(|| super::settings::now_epoch_millis().max(state.last_arrival));
        state.last_arrival = state.last_arrival.max(arrival);
        let shard = state.shard_mut(shard);
        assert!(!shard.closed, "shard {} is closed", shard.id);
        shard.records.push(FetchedRecord {
            sequence: sequence.clone(),
            partition_key: data.to_owned(),
            data: data.as_bytes().to_vec(),
            arrival_ms: Some(arrival),
            encryption_type: None,
        });
        sequence
    }

    /// Closes `parents` and opens `child`, their child (a split makes two children of one
    /// parent: call it twice; a merge makes one child of two parents).
    pub(crate) fn reshard(&self, parents: &[&str], child: &str) {
        for parent in parents {
            let mut state = self.lock();
            let parent = state.shard_mut(parent);
            parent.closed = true;
            parent.children.push(child.to_owned());
        }
        self.add_shard(child, parents);
    }

    /// Subscriptions end this long after they were made (Kinesis: five minutes).
    pub(crate) fn set_subscription_lifetime(&self, lifetime: Duration) {
        self.lock().subscription_lifetime = lifetime;
    }

    /// Shard iterators expire this long after they were handed out (Kinesis: five minutes).
    pub(crate) fn set_iterator_lifetime(&self, lifetime: Duration) {
        self.lock().iterator_lifetime = Some(lifetime);
    }

    pub(crate) fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The next event of a subscription reading `shard` from record `index`, waiting while
    /// it is caught up; `None` once it is past `ends_at` (or the shard's end was sent).
    async fn next_event(
        &self,
        shard: &str,
        index: &mut usize,
        ends_at: Instant,
    ) -> Option<SubscriptionEvent> {
        let idle_since = Instant::now();
        let mut paced = false;
        loop {
            if Instant::now() >= ends_at {
                return None;
            }
            let pending = {
                let state = self.lock();
                state.shard(shard)?.records.len() > *index
            };
            if pending && !paced {
                paced = true;
                tokio::time::sleep(EVENT_PACE).await;
                continue;
            }
            {
                let state = self.lock();
                let shard = state.shard(shard)?;
                let available = shard.records.len() - *index;
                if available > 0 || shard.closed || idle_since.elapsed() >= HEARTBEAT {
                    let take = available.min(EVENT_RECORDS);
                    let records = shard.records[*index..*index + take].to_vec();
                    *index += take;
                    let at_end = shard.closed && *index == shard.records.len();
                    let continuation = match *index {
                        0 => shard.base_sequence.clone(),
                        n => shard.records[n - 1].sequence.clone(),
                    };
                    let behind = shard.records.len() - *index;
                    return Some(SubscriptionEvent {
                        records,
                        millis_behind_latest: Some(if behind == 0 { 0 } else { 1000 }),
                        continuation: (!at_end).then_some(continuation),
                        child_shards: if at_end {
                            shard.children.clone()
                        } else {
                            Vec::new()
                        },
                    });
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[async_trait]
impl ShardApi for FakeStream {
    async fn list_shards(&self) -> Result<Vec<ShardInfo>, ApiError> {
        Ok(self
            .lock()
            .shards
            .iter()
            .map(|s| ShardInfo {
                id: s.id.clone(),
                parent: s.parents.first().cloned(),
                adjacent_parent: s.parents.get(1).cloned(),
                closed: s.closed,
            })
            .collect())
    }

    async fn shard_iterator(
        &self,
        shard: &str,
        start: &StartingPoint,
    ) -> Result<Option<String>, ApiError> {
        let mut state = self.lock();
        state.calls.push(Call::ShardIterator {
            shard: shard.to_owned(),
            start: start.clone(),
        });
        let Some(found) = state.shard(shard) else {
            return Err(ApiError {
                code: Some("ResourceNotFoundException".into()),
                message: format!("no shard {shard}"),
            });
        };
        let index = state.index(found, start);
        Ok(Some(state.iterator(shard, index)))
    }

    async fn get_records(&self, iterator: &str, limit: i32) -> Result<RecordsPage, ApiError> {
        let mut state = self.lock();
        let Some((shard, index, issued)) = state.iterators.get(iterator).cloned() else {
            return Err(ApiError {
                code: Some("InvalidArgumentException".into()),
                message: format!("unknown iterator {iterator}"),
            });
        };
        if state
            .iterator_lifetime
            .is_some_and(|l| issued.elapsed() > l)
        {
            state.calls.push(Call::Expired { shard });
            return Err(ApiError {
                code: Some("ExpiredIteratorException".into()),
                message: "Iterator expired".into(),
            });
        }
        let found = state.shard(&shard).expect("iterators are of listed shards");
        let end = (index + limit.max(1) as usize).min(found.records.len());
        let records = found.records[index..end].to_vec();
        let at_end = end == found.records.len();
        let closed = found.closed;
        let next_iterator = (!(closed && at_end)).then(|| state.iterator(&shard, end));
        Ok(RecordsPage {
            records,
            next_iterator,
            millis_behind_latest: Some(if at_end { 0 } else { 1000 }),
        })
    }

    async fn subscribe(
        &self,
        _consumer_arn: &str,
        shard: &str,
        start: &StartingPoint,
        _timeout: Duration,
    ) -> Result<EventStream, SubscribeError> {
        let (index, lifetime) = {
            let mut state = self.lock();
            state.calls.push(Call::Subscribe {
                shard: shard.to_owned(),
                start: start.clone(),
            });
            let Some(found) = state.shard(shard) else {
                return Err(SubscribeError {
                    code: Some("ResourceNotFoundException".into()),
                    message: format!("no shard {shard}"),
                });
            };
            (state.index(found, start), state.subscription_lifetime)
        };
        let ends_at = Instant::now() + lifetime;
        let stream = self.clone();
        let shard = shard.to_owned();
        Ok(Box::pin(futures::stream::unfold(
            (index, false),
            move |(mut index, done)| {
                let stream = stream.clone();
                let shard = shard.clone();
                async move {
                    if done {
                        return None;
                    }
                    let event = stream.next_event(&shard, &mut index, ends_at).await?;
                    let last = event.continuation.is_none();
                    Some((Ok(event), (index, last)))
                }
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::Record;
    use crate::proto::opencdc::v1::data;
    use crate::source::engine::{Engine, EngineConfig, BATCH_BYTES};
    use crate::source::position::{Position, ShardProgress};
    use crate::source::reader::Mode;
    use crate::source::records::{META_SEQUENCE, META_SHARD};
    use crate::source::settings::InitialPosition;

    const STREAM: &str = "fake-stream";

    fn fan_out(renew_after: Duration) -> Mode {
        Mode::FanOut {
            consumer_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/c:1".into(),
            renew_after,
            idle_timeout: Duration::from_secs(30),
        }
    }

    fn polling() -> Mode {
        Mode::Polling {
            interval: Duration::from_secs(2),
            limit: 4,
        }
    }

    fn start(fake: &FakeStream, mode: Mode, position: Position) -> Engine {
        Engine::start(
            EngineConfig {
                api: Arc::new(fake.clone()),
                stream_name: STREAM.into(),
                mode,
                initial: InitialPosition::TrimHorizon,
                deaggregate: true,
                unwrap_opencdc: false,
                buffer_size: 16,
                batch_size: 8,
                batch_delay: Duration::ZERO,
                discovery_interval: Duration::from_millis(100),
                lag_log_interval: Duration::ZERO,
            },
            position,
        )
    }

    /// A record as the tests look at it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Read {
        shard: String,
        sequence: String,
        data: String,
        position: Vec<u8>,
    }

    fn read_of(record: &Record) -> Read {
        let meta = |key: &str| record.metadata.get(key).unwrap_or("").to_owned();
        let data = match record
            .payload
            .as_ref()
            .and_then(|p| p.after.as_ref())
            .and_then(|d| d.data.as_ref())
        {
            Some(data::Data::RawData(bytes)) => String::from_utf8(bytes.to_vec()).unwrap(),
            other => panic!("raw data expected, got {other:?}"),
        };
        Read {
            shard: meta(META_SHARD),
            sequence: meta(META_SEQUENCE),
            data,
            position: record.position.clone(),
        }
    }

    /// Reads exactly `n` records (within a virtual hour), then checks that no more come
    /// within a virtual minute.
    async fn read_exactly(engine: &Engine, n: usize) -> Vec<Read> {
        let mut out = Vec::new();
        let reading = async {
            while out.len() < n {
                let records = engine.read().await.expect("the readers run");
                out.extend(records.iter().map(read_of));
            }
        };
        tokio::time::timeout(Duration::from_secs(3600), reading)
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} records came", out.len()));
        let more = tokio::time::timeout(Duration::from_secs(60), engine.read()).await;
        if let Ok(more) = more {
            panic!("records beyond the {n} expected: {more:?}");
        }
        out
    }

    fn data(reads: &[Read]) -> Vec<&str> {
        reads.iter().map(|r| r.data.as_str()).collect()
    }

    fn of_shard<'a>(reads: &'a [Read], shard: &str) -> Vec<&'a str> {
        reads
            .iter()
            .filter(|r| r.shard == shard)
            .map(|r| r.data.as_str())
            .collect()
    }

    /// Where in `reads` the first and the last record of `shard` are.
    fn span(reads: &[Read], shard: &str) -> (usize, usize) {
        let first = reads.iter().position(|r| r.shard == shard).unwrap();
        let last = reads.iter().rposition(|r| r.shard == shard).unwrap();
        (first, last)
    }

    fn put_all(fake: &FakeStream, shard: &str, names: &[&str]) {
        for name in names {
            fake.put(shard, name);
        }
    }

    fn subscriptions(fake: &FakeStream, shard: &str) -> Vec<StartingPoint> {
        fake.calls()
            .into_iter()
            .filter_map(|call| match call {
                Call::Subscribe { shard: s, start } if s == shard => Some(start),
                _ => None,
            })
            .collect()
    }

    /// A split then a merge while the engine reads: every parent is read to its end before
    /// any record of its children, the merged shard waits for both parents, and the final
    /// position has every closed shard finished.
    async fn resharding(mode: Mode) {
        let fake = FakeStream::default();
        fake.add_shard("p", &[]);
        put_all(&fake, "p", &["p1", "p2", "p3"]);
        let engine = start(&fake, mode, Position::new(STREAM));
        let mut reads = read_exactly(&engine, 3).await;

        // Enough left in p that reading it to its end spans several discoveries.
        let rest: Vec<String> = (4..=40).map(|i| format!("p{i}")).collect();
        for name in &rest {
            fake.put("p", name);
        }
        fake.reshard(&["p"], "a");
        fake.reshard(&["p"], "b");
        put_all(&fake, "a", &["a1", "a2"]);
        // Much more in b, so b is read to its end well after a.
        let b: Vec<String> = (1..=30).map(|i| format!("b{i}")).collect();
        for name in &b {
            fake.put("b", name);
        }
        fake.reshard(&["a", "b"], "m");
        put_all(&fake, "m", &["m1", "m2"]);
        reads.extend(read_exactly(&engine, 37 + 2 + 30 + 2).await);

        let p: Vec<String> = (1..=40).map(|i| format!("p{i}")).collect();
        assert_eq!(of_shard(&reads, "p"), p);
        assert_eq!(of_shard(&reads, "a"), ["a1", "a2"]);
        assert_eq!(of_shard(&reads, "b"), b);
        assert_eq!(of_shard(&reads, "m"), ["m1", "m2"]);
        let (_, p_last) = span(&reads, "p");
        let (a_first, a_last) = span(&reads, "a");
        let (b_first, b_last) = span(&reads, "b");
        let (m_first, _) = span(&reads, "m");
        assert!(p_last < a_first && p_last < b_first, "{:?}", data(&reads));
        assert!(a_last < m_first && b_last < m_first, "{:?}", data(&reads));

        let last = Position::decode_for_stream(&reads.last().unwrap().position, STREAM).unwrap();
        for closed in ["p", "a", "b"] {
            assert_eq!(last.shards[closed], ShardProgress::Finished, "{closed}");
        }
        assert!(matches!(last.shards["m"], ShardProgress::After { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn fan_out_reads_parents_to_their_end_before_children() {
        resharding(fan_out(Duration::from_secs(290))).await;
    }

    #[tokio::test(start_paused = true)]
    async fn polling_reads_parents_to_their_end_before_children() {
        resharding(polling()).await;
    }

    /// Records put before, during and after a subscription's end all come once, in order,
    /// whoever ends the subscription.
    async fn renewal(renew_after: Duration, lifetime: Duration) -> FakeStream {
        let fake = FakeStream::default();
        fake.set_subscription_lifetime(lifetime);
        fake.add_shard("s", &[]);
        put_all(&fake, "s", &["r1", "r2", "r3"]);
        let engine = start(&fake, fan_out(renew_after), Position::new(STREAM));
        let mut reads = read_exactly(&engine, 3).await;
        put_all(&fake, "s", &["r4", "r5", "r6"]);
        reads.extend(read_exactly(&engine, 3).await);
        // Past the first subscription's end.
        tokio::time::sleep(Duration::from_secs(400)).await;
        put_all(&fake, "s", &["r7", "r8", "r9"]);
        reads.extend(read_exactly(&engine, 3).await);
        assert_eq!(
            data(&reads),
            ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"]
        );
        fake
    }

    #[tokio::test(start_paused = true)]
    async fn a_subscription_the_service_ends_is_resumed_from_its_continuation() {
        let fake = renewal(Duration::from_secs(3600), Duration::from_secs(300)).await;
        let starts = subscriptions(&fake, "s");
        assert!(starts.len() >= 2, "{starts:?}");
        assert_eq!(starts[0], StartingPoint::TrimHorizon);
        // The first subscription's last continuation was its last record, r6.
        let r6 = (100_001 + 6).to_string();
        assert_eq!(starts[1], StartingPoint::AfterSequence(r6));
    }

    #[tokio::test(start_paused = true)]
    async fn a_subscription_is_renewed_before_the_service_ends_it() {
        let fake = renewal(Duration::from_secs(60), Duration::from_secs(300)).await;
        let starts = subscriptions(&fake, "s");
        // Renewed about every minute over more than seven minutes.
        assert!(starts.len() >= 7, "{starts:?}");
        assert!(starts[1..]
            .iter()
            .all(|s| matches!(s, StartingPoint::AfterSequence(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_iterator_is_replaced_from_the_last_delivered_record() {
        let fake = FakeStream::default();
        // Shorter than the pause between two polls of a caught-up shard.
        fake.set_iterator_lifetime(Duration::from_secs(1));
        fake.add_shard("s", &[]);
        put_all(&fake, "s", &["r1", "r2", "r3", "r4", "r5"]);
        let engine = start(&fake, polling(), Position::new(STREAM));
        let mut reads = read_exactly(&engine, 5).await;
        put_all(&fake, "s", &["r6", "r7"]);
        reads.extend(read_exactly(&engine, 2).await);
        assert_eq!(data(&reads), ["r1", "r2", "r3", "r4", "r5", "r6", "r7"]);

        let calls = fake.calls();
        let expired = calls
            .iter()
            .position(|c| matches!(c, Call::Expired { .. }))
            .expect("an iterator expired");
        assert_eq!(
            calls[expired + 1],
            Call::ShardIterator {
                shard: "s".into(),
                start: StartingPoint::AfterSequence(reads[4].sequence.clone()),
            }
        );
    }

    /// Restarting from the position of any record reads exactly the records after it.
    async fn resumes_after(mode: Mode) {
        let fake = FakeStream::default();
        fake.add_shard("s", &[]);
        fake.add_shard("t", &[]);
        put_all(&fake, "s", &["s1", "s2", "s3", "s4"]);
        put_all(&fake, "t", &["t1", "t2"]);
        let engine = start(&fake, mode.clone(), Position::new(STREAM));
        let all = read_exactly(&engine, 6).await;
        drop(engine);
        for (k, acked) in all.iter().enumerate() {
            let position = Position::decode_for_stream(&acked.position, STREAM).unwrap();
            let engine = start(&fake, mode.clone(), position);
            let rest = &all[k + 1..];
            let again = read_exactly(&engine, rest.len()).await;
            for shard in ["s", "t"] {
                assert_eq!(
                    of_shard(&again, shard),
                    of_shard(rest, shard),
                    "after {}",
                    acked.data
                );
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fan_out_resumes_exactly_after_the_acked_record() {
        resumes_after(fan_out(Duration::from_secs(290))).await;
    }

    #[tokio::test(start_paused = true)]
    async fn polling_resumes_exactly_after_the_acked_record() {
        resumes_after(polling()).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_stops_at_its_byte_budget() {
        // Ten records of about 300 KB encoded (the fake makes the data its partition key too),
        // all buffered before the read: a batch of 8 (the batch size) would be 2.4 MB; the
        // byte budget ends it with the record that passes 2 MiB.
        let fake = FakeStream::default();
        fake.add_shard("s", &[]);
        let big = "x".repeat(100_000);
        for _ in 0..10 {
            fake.put("s", &big);
        }
        let engine = start(&fake, polling(), Position::new(STREAM));
        tokio::time::sleep(Duration::from_secs(10)).await;
        let batch = engine.read().await.unwrap();
        let sizes: Vec<usize> = batch.iter().map(prost::Message::encoded_len).collect();
        let bytes: usize = sizes.iter().sum();
        assert!(batch.len() < 8, "{} records, {bytes} bytes", batch.len());
        assert!(bytes >= BATCH_BYTES, "stopped early at {bytes} bytes");
        assert!(bytes - sizes[sizes.len() - 1] < BATCH_BYTES, "{sizes:?}");
        let rest = engine.read().await.unwrap();
        assert_eq!(batch.len() + rest.len(), 10);
    }
}
