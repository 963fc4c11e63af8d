//! The writer against an in-memory [`PutRecordsSender`]: which entries are retried, the order
//! of a key's records across retries, the order of outcomes when lanes finish out of order, and
//! the nack reasons once retries are exhausted or an error is not worth retrying.

use std::collections::HashMap;
use std::sync::Mutex as StdMutex;

use super::*;
use crate::destination::batch::key_hash;
use crate::destination::put::{CallError, EntryFailure, PutAnswer};
use crate::destination::retry::CallFailure;
use crate::proto::opencdc::v1::{data, Data};

const STREAM: &str = "orders";

/// Writes a record's position as its data, so the fake can tell records apart.
struct PositionAsData;

impl Encode for PositionAsData {
    fn encode(&self, record: &Record) -> Result<Vec<u8>, SeamError> {
        Ok(record.position.clone())
    }
}

/// A record whose data is `position` and whose partition key is `key`.
pub(super) fn record(position: &str, key: &str) -> Record {
    Record {
        position: position.as_bytes().to_vec(),
        key: Some(Data {
            data: Some(data::Data::RawData(key.as_bytes().to_vec().into())),
        }),
        ..Record::default()
    }
}

pub(super) fn config(concurrency: usize, max_attempts: u32) -> WriterConfig {
    WriterConfig {
        target: StreamTarget::Fixed(stream()),
        partition_key: KeyStrategy::RecordKey,
        explicit_hash_key: None,
        encoder: Arc::new(PositionAsData),
        decoder: None,
        auto_create: None,
        max_record_size: None,
        concurrency,
        protocol: Protocol::Cbor,
        limits: BatchLimits::default(),
        batch_delay: Duration::ZERO,
        retry: RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        },
        rate: None,
        aggregation: None,
    }
}

pub(super) fn stream() -> StreamRef {
    StreamRef {
        name: STREAM.into(),
        arn: None,
    }
}

/// The SDK client only describes unknown streams; the tests' stream is known, and the
/// endpoint is a closed local port in case that ever changes.
pub(super) fn sdk_client() -> Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
        .region(aws_sdk_kinesis::config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .build();
    Client::from_conf(config)
}

fn start(fake: FakeSender, config: WriterConfig) -> Writer {
    let known = vec![(stream(), StreamInfo::new(None, None))];
    Writer::start(sdk_client(), fake, config, known)
}

pub(super) async fn write(writer: &Writer, records: Vec<Record>) -> Vec<WriteOutcome> {
    tokio::time::timeout(Duration::from_secs(10), writer.submit(records))
        .await
        .expect("the outcomes arrive")
        .expect("the writer is running")
}

pub(super) fn throttled() -> EntryFailure {
    EntryFailure {
        code: "ProvisionedThroughputExceededException".into(),
        message: "Rate exceeded for shard".into(),
    }
}

fn rejected() -> EntryFailure {
    EntryFailure {
        code: "KMSAccessDeniedException".into(),
        message: "no access to the key".into(),
    }
}

/// What the fake answers for an entry (by data) on its n-th attempt (1-based).
type EntryScript = dyn Fn(&str, u32) -> Option<EntryFailure> + Send + Sync;
/// The ShardId the fake answers for an entry with this explicit hash key.
pub(super) type ShardScript = dyn Fn(Option<&str>) -> String + Send + Sync;
/// What the fake answers for its n-th call (1-based) as a whole; `None`: per-entry results.
type CallScript = dyn Fn(usize) -> Option<CallError> + Send + Sync;

#[derive(Default)]
pub(super) struct Log {
    /// The data of every call's entries, in the order the calls were answered.
    pub(super) calls: Vec<Vec<String>>,
    /// The entries written, in the order they were written.
    pub(super) written: Vec<String>,
}

impl Log {
    /// The entries written whose data starts with `key` (the tests' records are named by
    /// their key's letter), in the order they were written.
    pub(super) fn written_of_key(&self, key: char) -> Vec<&str> {
        self.written
            .iter()
            .map(String::as_str)
            .filter(|e| e.starts_with(key))
            .collect()
    }
}

/// PutRecords answered in memory, from scripts, with every call logged.
pub(super) struct FakeSender {
    entries: Box<EntryScript>,
    calls: Box<CallScript>,
    /// A call carrying this entry is answered only once the notify fires.
    hold: Option<(String, Arc<Notify>)>,
    attempts: StdMutex<HashMap<String, u32>>,
    pub(super) log: Arc<StdMutex<Log>>,
    /// The ShardId answered for an entry with this explicit hash key.
    pub(super) shard_of: Box<ShardScript>,
}

impl FakeSender {
    pub(super) fn new(
        entries: impl Fn(&str, u32) -> Option<EntryFailure> + Send + Sync + 'static,
    ) -> Self {
        FakeSender {
            entries: Box::new(entries),
            calls: Box::new(|_| None),
            hold: None,
            attempts: StdMutex::default(),
            log: Arc::default(),
            shard_of: Box::new(|_| "shardId-000000000000".into()),
        }
    }

    fn failing_calls(
        mut self,
        calls: impl Fn(usize) -> Option<CallError> + Send + Sync + 'static,
    ) -> Self {
        self.calls = Box::new(calls);
        self
    }

    fn holding(mut self, entry: &str, release: Arc<Notify>) -> Self {
        self.hold = Some((entry.to_string(), release));
        self
    }
}

impl PutRecordsSender for FakeSender {
    async fn put_records<E: PutEntry + Sync>(
        &self,
        stream: &StreamRef,
        entries: &[E],
    ) -> Result<PutAnswer, CallError> {
        assert_eq!(stream.name, STREAM);
        let data: Vec<String> = entries.iter().map(|e| entry_name(e.data())).collect();
        if let Some((held, release)) = &self.hold {
            if data.contains(held) {
                release.notified().await;
            }
        }
        let mut log = self.log.lock().unwrap();
        log.calls.push(data.clone());
        if let Some(error) = (self.calls)(log.calls.len()) {
            return Err(error);
        }
        let mut attempts = self.attempts.lock().unwrap();
        let results: Vec<_> = data
            .into_iter()
            .map(|entry| {
                let attempt = attempts.entry(entry.clone()).or_default();
                *attempt += 1;
                let result = (self.entries)(&entry, *attempt);
                if result.is_none() {
                    log.written.extend(user_records(&entry));
                }
                result
            })
            .collect();
        let shards = entries
            .iter()
            .map(|e| Some((self.shard_of)(e.explicit_hash_key()).into()))
            .collect();
        Ok(PutAnswer { results, shards })
    }
}

/// How the fake names an entry: its data as text, or `agg(a,b,...)` for an aggregate of
/// records with data `a`, `b`, ...
pub(super) fn entry_name(data: &[u8]) -> String {
    match crate::source::deaggregate::decode_aggregate(data) {
        Some(users) => {
            let names: Vec<String> = users
                .iter()
                .map(|u| String::from_utf8(u.data.clone()).unwrap())
                .collect();
            format!("agg({})", names.join(","))
        }
        None => String::from_utf8(data.to_vec()).unwrap(),
    }
}

/// The records an entry named by [`entry_name`] holds.
fn user_records(name: &str) -> Vec<String> {
    match name.strip_prefix("agg(").and_then(|n| n.strip_suffix(')')) {
        Some(list) => list.split(',').map(str::to_string).collect(),
        None => vec![name.to_string()],
    }
}

pub(super) fn records(items: &[(&str, &str)]) -> Vec<Record> {
    items.iter().map(|(p, k)| record(p, k)).collect()
}

pub(super) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn only_the_failed_entries_are_retried() {
    let fake = FakeSender::new(|entry, attempt| {
        (attempt == 1 && matches!(entry, "p2" | "p4")).then(throttled)
    });
    let log = fake.log.clone();
    let writer = start(fake, config(1, 5));
    let outcomes = write(
        &writer,
        records(&[("p1", "k1"), ("p2", "k2"), ("p3", "k3"), ("p4", "k4")]),
    )
    .await;
    assert_eq!(outcomes, vec![Ok(()); 4]);
    let log = log.lock().unwrap();
    assert_eq!(
        log.calls,
        vec![strings(&["p1", "p2", "p3", "p4"]), strings(&["p2", "p4"])],
        "the second call carries the two throttled entries only"
    );
    assert_eq!(log.written, strings(&["p1", "p3", "p2", "p4"]));
}

#[tokio::test]
async fn a_key_keeps_its_order_across_retries() {
    // a1 is throttled twice; a2 and a3 (same key) must not be written before it, and no entry
    // that was written is sent again.
    let fake = FakeSender::new(|entry, attempt| (entry == "a1" && attempt <= 2).then(throttled));
    let log = fake.log.clone();
    let writer = start(fake, config(1, 5));
    let outcomes = write(
        &writer,
        records(&[
            ("a1", "a"),
            ("b1", "b"),
            ("a2", "a"),
            ("a3", "a"),
            ("b2", "b"),
        ]),
    )
    .await;
    assert_eq!(outcomes, vec![Ok(()); 5]);
    let log = log.lock().unwrap();
    assert_eq!(log.written_of_key('a'), ["a1", "a2", "a3"]);
    assert_eq!(log.written_of_key('b'), ["b1", "b2"]);
    for entry in ["b1", "a2", "a3", "b2"] {
        let sent = log.calls.iter().flatten().filter(|e| *e == entry).count();
        assert_eq!(sent, 1, "{entry} was sent {sent} times: {:?}", log.calls);
    }
    for call in &log.calls {
        let a = call.iter().filter(|e| e.starts_with('a')).count();
        assert!(a <= 1, "two entries of key a in one call: {call:?}");
    }
}

/// Two partition keys that go to different lanes of two.
fn keys_on_two_lanes() -> (String, String) {
    let lane = |key: &str| key_hash(STREAM, key) % 2;
    let first = "key-0".to_string();
    let second = (1..)
        .map(|i| format!("key-{i}"))
        .find(|key| lane(key) != lane(&first))
        .unwrap();
    (first, second)
}

#[tokio::test]
async fn outcomes_are_in_record_order_when_lanes_finish_out_of_order() {
    let (slow_key, fast_key) = keys_on_two_lanes();
    let release = Arc::new(Notify::new());
    let fake = FakeSender::new(|entry, _| (entry == "fast").then(rejected))
        .holding("slow", release.clone());
    let log = fake.log.clone();
    let writer = start(fake, config(2, 5));
    let mut outcomes = writer.submit(records(&[("slow", &slow_key), ("fast", &fast_key)]));

    // The second record's lane answers first...
    tokio::time::timeout(Duration::from_secs(10), async {
        while log.lock().unwrap().calls.is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the fast lane answers");
    assert_eq!(log.lock().unwrap().calls, vec![strings(&["fast"])]);
    // ...yet nothing is reported before the first record's outcome is known.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(outcomes.try_recv().is_err(), "outcomes before all are in");

    release.notify_one();
    let outcomes = tokio::time::timeout(Duration::from_secs(10), outcomes)
        .await
        .unwrap()
        .unwrap();
    let fast = rejected();
    let expected = RecordError::Rejected {
        position: b"fast".to_vec(),
        stream: STREAM.into(),
        code: fast.code,
        message: fast.message,
    };
    assert_eq!(outcomes, vec![Ok(()), Err(expected.to_string())]);
    assert_eq!(
        log.lock().unwrap().calls,
        vec![strings(&["fast"]), strings(&["slow"])]
    );
}

#[tokio::test]
async fn a_group_completes_on_its_own_while_an_earlier_one_waits() {
    let (slow_key, fast_key) = keys_on_two_lanes();
    let release = Arc::new(Notify::new());
    let fake = FakeSender::new(|_, _| None).holding("slow", release.clone());
    let writer = start(fake, config(2, 5));
    let mut first = writer.submit(records(&[("slow", &slow_key)]));
    let second = write(
        &writer,
        records(&[("fast-1", &fast_key), ("fast-2", &fast_key)]),
    )
    .await;
    assert_eq!(second, vec![Ok(()), Ok(())]);
    assert!(
        first.try_recv().is_err(),
        "the held record is not written yet"
    );
    release.notify_one();
    let first = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, vec![Ok(())]);
}

#[tokio::test]
async fn entries_are_nacked_with_the_last_error_once_retries_are_exhausted() {
    let fake = FakeSender::new(|entry, _| (entry == "p1").then(throttled));
    let log = fake.log.clone();
    let writer = start(fake, config(1, 3));
    let outcomes = write(&writer, records(&[("p1", "k1"), ("p2", "k2")])).await;
    let expected = RecordError::RetriesExhausted {
        position: b"p1".to_vec(),
        stream: STREAM.into(),
        attempts: 3,
        reason: "ProvisionedThroughputExceededException: Rate exceeded for shard".into(),
    };
    assert_eq!(outcomes, vec![Err(expected.to_string()), Ok(())]);
    assert_eq!(
        expected.to_string(),
        "record at position \"p1\" was not written to stream \"orders\" after 3 attempts: \
         ProvisionedThroughputExceededException: Rate exceeded for shard"
    );
    let log = log.lock().unwrap();
    assert_eq!(
        log.calls,
        vec![strings(&["p1", "p2"]), strings(&["p1"]), strings(&["p1"])]
    );
}

#[tokio::test]
async fn calls_that_keep_failing_are_retried_whole_then_nacked() {
    let fake = FakeSender::new(|_, _| None).failing_calls(|_| {
        Some(CallError {
            failure: CallFailure::Service { status: 503 },
            code: None,
            message: "service unavailable".into(),
        })
    });
    let log = fake.log.clone();
    let writer = start(fake, config(1, 2));
    let outcomes = write(&writer, records(&[("p1", "k1"), ("p2", "k2")])).await;
    let nack = |position: &str| {
        Err(RecordError::RetriesExhausted {
            position: position.as_bytes().to_vec(),
            stream: STREAM.into(),
            attempts: 2,
            reason: "service unavailable".into(),
        }
        .to_string())
    };
    assert_eq!(outcomes, vec![nack("p1"), nack("p2")]);
    assert_eq!(log.lock().unwrap().calls.len(), 2);
}

#[tokio::test]
async fn calls_without_an_answer_are_retried_past_max_attempts_until_the_endpoint_answers() {
    // An endpoint away for 6 calls, with retry.maxAttempts 2: nothing is nacked, and a
    // server error after the outage still has the whole attempt budget.
    let outage_calls = 6;
    let fake = FakeSender::new(|_, _| None).failing_calls(move |call| {
        (call <= outage_calls + 1).then(|| {
            if call <= outage_calls {
                CallError {
                    failure: CallFailure::Transport,
                    code: None,
                    message: "connection refused".into(),
                }
            } else {
                CallError {
                    failure: CallFailure::Service { status: 500 },
                    code: Some("InternalFailure".into()),
                    message: "try again".into(),
                }
            }
        })
    });
    let log = fake.log.clone();
    let writer = start(fake, config(1, 2));
    let outcomes = write(&writer, records(&[("p1", "k1"), ("p2", "k2")])).await;
    assert_eq!(outcomes, vec![Ok(()), Ok(())]);
    let log = log.lock().unwrap();
    assert_eq!(log.calls.len(), outage_calls + 2);
    assert_eq!(log.written, strings(&["p1", "p2"]));
}

#[tokio::test]
async fn errors_not_worth_retrying_nack_at_once() {
    // A rejected entry: its call-mates are written, it is not sent again.
    let fake = FakeSender::new(|entry, _| (entry == "p2").then(rejected));
    let log = fake.log.clone();
    let writer = start(fake, config(1, 5));
    let outcomes = write(&writer, records(&[("p1", "k1"), ("p2", "k2")])).await;
    let failure = rejected();
    let expected = RecordError::Rejected {
        position: b"p2".to_vec(),
        stream: STREAM.into(),
        code: failure.code,
        message: failure.message,
    };
    assert_eq!(outcomes, vec![Ok(()), Err(expected.to_string())]);
    assert_eq!(log.lock().unwrap().calls.len(), 1);

    // A call the service refuses (400, not a throttling code): every entry, one attempt.
    let fake = FakeSender::new(|_, _| None).failing_calls(|_| {
        Some(CallError {
            failure: CallFailure::Service { status: 400 },
            code: Some("ValidationException".into()),
            message: "1 validation error detected".into(),
        })
    });
    let log = fake.log.clone();
    let writer = start(fake, config(1, 5));
    let outcomes = write(&writer, records(&[("p1", "k1"), ("p2", "k2")])).await;
    let nack = |position: &str| {
        Err(RecordError::CallRejected {
            position: position.as_bytes().to_vec(),
            stream: STREAM.into(),
            reason: "ValidationException: 1 validation error detected".into(),
        }
        .to_string())
    };
    assert_eq!(outcomes, vec![nack("p1"), nack("p2")]);
    assert_eq!(log.lock().unwrap().calls.len(), 1);
}

/// An encoder that cannot write any record.
struct FailingEncoder;

impl Encode for FailingEncoder {
    fn encode(&self, _record: &Record) -> Result<Vec<u8>, SeamError> {
        Err("the format cannot write this record".into())
    }
}

#[test]
fn a_record_that_cannot_be_prepared_says_at_which_step() {
    use super::error::{KeyError, PrepareError, RouteError};
    use crate::destination::template::RecordTemplate;

    let record = record("p1", "k1");
    let routed_by_collection = WriterConfig {
        target: StreamTarget::Collection,
        ..config(1, 1)
    };
    let error = prepare_record(&routed_by_collection, &record).unwrap_err();
    assert!(
        matches!(error, PrepareError::Route(RouteError::NoCollection)),
        "{error:?}"
    );

    let hash_key_not_a_number = WriterConfig {
        explicit_hash_key: Some(RecordTemplate::compile("not-a-number").unwrap()),
        ..config(1, 1)
    };
    let error = prepare_record(&hash_key_not_a_number, &record).unwrap_err();
    assert!(
        matches!(&error, PrepareError::Key(KeyError::InvalidHashKey(rendered)) if rendered == "not-a-number"),
        "{error:?}"
    );

    let unwritable = WriterConfig {
        encoder: Arc::new(FailingEncoder),
        ..config(1, 1)
    };
    let error = prepare_record(&unwritable, &record).unwrap_err();
    assert!(matches!(error, PrepareError::Format(_)), "{error:?}");
    assert_eq!(
        error.for_record(b"p1".to_vec()).to_string(),
        r#"record at position "p1": the format cannot write this record"#
    );
}
