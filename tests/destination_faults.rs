//! The destination under PutRecords faults, driven over gRPC exactly as Conduit drives it
//! (Configure → Open → Run → acks → Stop(last position) → Teardown), writing through
//! [`support::fault_proxy`] to kinesis-local and reading back from kinesis-local directly.
//!
//! Kinesis' rules for writers (shared/docs/kinesis-notes.md §3): retry only failed entries,
//! never re-send successes, never let a later record of a partition key overtake a failed one,
//! ack every record exactly once in the order received.
//!
//! Needs `test/setup.sh` (kinesis-local).

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use conduit_connector_kinesis::proto::connector::v2::destination;
use conduit_connector_kinesis::proto::connector::v2::destination::run::response::Ack;
use conduit_connector_kinesis::proto::opencdc::v1::{data, Change, Data, Operation, Record};
use support::fault_proxy::{CallFault, CallRule, EntryError, EntryRule, Fate, FaultProxy};
use support::kinesis_local::{client_for, unique_stream_name, KinesisLocal};
use support::plugin::PluginProcess;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Upper bound for one pipeline run (all acks).
const RUN_TIMEOUT: Duration = Duration::from_secs(40);
const SHARDS: i32 = 4;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// One record the test sends; its data identifies it: `<key>/<n>` (+ an optional marker).
#[derive(Debug, Clone)]
struct Sent {
    position: String,
    key: String,
    /// Number of the record within its key, from 0.
    n: usize,
    data: Vec<u8>,
}

impl Sent {
    fn record(&self) -> Record {
        Record {
            position: self.position.as_bytes().to_vec(),
            operation: Operation::Create as i32,
            metadata: Default::default(),
            key: raw(self.key.as_bytes()),
            payload: Some(Change {
                before: None,
                after: raw(&self.data),
            }),
        }
    }
}

fn raw(bytes: &[u8]) -> Option<Data> {
    Some(Data {
        data: Some(data::Data::RawData(bytes.to_vec().into())),
    })
}

/// Records for `keys` (name, count), interleaved round-robin so every call mixes keys.
fn workload(keys: &[(String, usize)]) -> Vec<Sent> {
    let rounds = keys.iter().map(|(_, c)| *c).max().unwrap_or(0);
    let mut out = Vec::new();
    for n in 0..rounds {
        for (key, count) in keys {
            if n < *count {
                let i = out.len();
                out.push(Sent {
                    position: format!("pos-{i:05}"),
                    key: key.clone(),
                    n,
                    data: format!("{key}/{n:04}").into_bytes(),
                });
            }
        }
    }
    out
}

/// `count` keys `key-0..` with `per_key` records each.
fn uniform_keys(count: usize, per_key: usize) -> Vec<(String, usize)> {
    (0..count).map(|k| (format!("key-{k}"), per_key)).collect()
}

/// Parses `<key>/<nnnn>...` back into (key, n).
fn parse_data(data: &[u8]) -> (String, usize) {
    let text = String::from_utf8_lossy(data);
    let (key, rest) = text
        .split_once('/')
        .unwrap_or_else(|| panic!("unexpected data {text:?}"));
    let n = rest
        .get(..4)
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("unexpected data {text:?}"));
    (key.to_string(), n)
}

struct Env {
    kinesis: KinesisLocal,
    proxy: FaultProxy,
    stream: String,
}

impl Env {
    async fn start(prefix: &str) -> Env {
        let kinesis = KinesisLocal::start().await;
        let stream = unique_stream_name(prefix);
        kinesis.create_stream(&stream, SHARDS).await;
        let proxy = FaultProxy::start(&kinesis.endpoint).await;
        Env {
            kinesis,
            proxy,
            stream,
        }
    }

    /// The destination's configuration: through the proxy, small backoffs, raw format.
    fn config(&self, extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut config: HashMap<String, String> = [
            ("streamName", self.stream.as_str()),
            ("aws.url", self.proxy.url.as_str()),
            ("aws.region", "us-east-1"),
            ("aws.accessKeyId", "test"),
            ("aws.secretAccessKey", "test"),
            ("retry.initialBackoff", "10ms"),
            ("retry.maxBackoff", "100ms"),
            ("sdk.record.format", "raw"),
            ("sdk.schema.extract.payload.enabled", "false"),
            ("sdk.schema.extract.key.enabled", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            config.insert(k.to_string(), v.to_string());
        }
        config
    }

    /// Every record in kinesis-local, each shard in sequence order, read directly (not
    /// through the proxy).
    async fn stored(&self) -> Vec<Stored> {
        read_back(&client_for(&self.kinesis.endpoint), &self.stream).await
    }
}

/// Runs a pipeline: Configure → Open → Run, sends `sent` in Run requests of `group` records
/// (1 = Conduit's default architecture, more = the preview architecture), reads every ack,
/// then Stop(last position) → Teardown → Shutdown. Returns the acks in arrival order.
async fn run_pipeline(config: HashMap<String, String>, sent: &[Sent], group: usize) -> Vec<Ack> {
    let plugin = PluginProcess::start_for_run().await;
    let mut client = plugin.destination();
    client
        .configure(destination::configure::Request { config })
        .await
        .expect("Configure");
    client
        .open(destination::open::Request {})
        .await
        .expect("Open");
    let (requests, request_rx) = mpsc::channel(16);
    let mut responses = client
        .run(ReceiverStream::new(request_rx))
        .await
        .expect("Run")
        .into_inner();
    let groups: Vec<Vec<Record>> = sent
        .chunks(group)
        .map(|chunk| chunk.iter().map(Sent::record).collect())
        .collect();
    // Conduit keeps the stream open until it stops the pipeline: the sender lives on.
    let sender = tokio::spawn(async move {
        for records in groups {
            requests
                .send(destination::run::Request { records })
                .await
                .expect("the Run stream is open");
        }
        requests
    });
    let started = Instant::now();
    let mut acks = Vec::with_capacity(sent.len());
    while acks.len() < sent.len() {
        let left = RUN_TIMEOUT.saturating_sub(started.elapsed());
        let response = tokio::time::timeout(left, responses.message())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {} acks within {RUN_TIMEOUT:?}; plugin stderr:\n{}",
                    acks.len(),
                    sent.len(),
                    plugin.stderr().join("\n")
                )
            })
            .expect("the Run stream failed")
            .expect("the Run stream ended early");
        acks.extend(response.acks);
    }
    let requests = sender.await.expect("sender task");
    let last = sent.last().expect("records").position.as_bytes().to_vec();
    tokio::time::timeout(
        Duration::from_secs(10),
        client.stop(destination::stop::Request {
            last_position: last,
        }),
    )
    .await
    .expect("Stop answers promptly")
    .expect("Stop");
    drop(requests);
    client
        .teardown(destination::teardown::Request {})
        .await
        .expect("Teardown");
    // Nothing more may arrive after the last ack.
    if let Ok(Ok(Some(extra))) =
        tokio::time::timeout(Duration::from_millis(100), responses.message()).await
    {
        assert!(extra.acks.is_empty(), "acks after the last one: {extra:?}");
    }
    plugin.shutdown().await;
    acks
}

/// One record as stored in kinesis-local.
#[derive(Debug, Clone)]
struct Stored {
    shard: String,
    partition_key: String,
    data: Vec<u8>,
}

async fn read_back(client: &aws_sdk_kinesis::Client, stream: &str) -> Vec<Stored> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = client.list_shards();
        request = match &token {
            Some(t) => request.next_token(t),
            None => request.stream_name(stream),
        };
        let page = request.send().await.expect("ListShards");
        shards.extend(page.shards.unwrap_or_default());
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    let mut out = Vec::new();
    for shard in shards {
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(&shard.shard_id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("GetShardIterator")
            .shard_iterator;
        let mut last_sequence: Option<String> = None;
        while let Some(it) = iterator {
            let page = client
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .expect("GetRecords");
            if page.records.is_empty() {
                break;
            }
            for r in page.records {
                // Sequence numbers are 56 digits: compare by (length, text).
                if let Some(last) = &last_sequence {
                    assert!(
                        (r.sequence_number.len(), &r.sequence_number) > (last.len(), last),
                        "GetRecords out of sequence order"
                    );
                }
                last_sequence = Some(r.sequence_number.clone());
                out.push(Stored {
                    shard: shard.shard_id.clone(),
                    partition_key: r.partition_key.unwrap_or_default(),
                    data: r.data.into_inner(),
                });
            }
            iterator = page.next_shard_iterator;
        }
    }
    out
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// The guarantees every scenario checks. `nacked`: positions that must carry an error (and
/// whose records must not be in the stream).
fn check_delivery(
    sent: &[Sent],
    acks: &[Ack],
    stored: &[Stored],
    proxy: &FaultProxy,
    nacked: &HashSet<String>,
) {
    // Acks: every record exactly once, in send order; errors only where expected.
    let got: Vec<String> = acks.iter().map(|a| text(&a.position)).collect();
    let want: Vec<String> = sent.iter().map(|s| s.position.clone()).collect();
    assert_eq!(got.len(), want.len(), "number of acks");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!(
            "ack {i} is for {:?}, expected {:?} (acks must follow the send order)",
            got[i], want[i]
        );
    }
    for (ack, s) in acks.iter().zip(sent) {
        if nacked.contains(&s.position) {
            assert!(!ack.error.is_empty(), "{} must be nacked", s.position);
        } else {
            assert_eq!(ack.error, "", "{} must be acked without error", s.position);
        }
    }

    // kinesis-local: every acked record exactly once, nothing else.
    let mut counts: HashMap<&[u8], usize> = HashMap::new();
    for s in stored {
        *counts.entry(&s.data).or_default() += 1;
    }
    let known: HashSet<&[u8]> = sent.iter().map(|s| s.data.as_slice()).collect();
    let unknown: Vec<String> = counts
        .keys()
        .filter(|d| !known.contains(*d))
        .map(|d| text(d))
        .collect();
    assert!(unknown.is_empty(), "records nobody sent: {unknown:?}");
    let mut lost = Vec::new();
    let mut duplicated = Vec::new();
    let mut nacked_but_stored = Vec::new();
    for s in sent {
        let n = counts.get(s.data.as_slice()).copied().unwrap_or(0);
        if nacked.contains(&s.position) {
            if n != 0 {
                nacked_but_stored.push(text(&s.data));
            }
        } else if n == 0 {
            lost.push(text(&s.data));
        } else if n > 1 {
            duplicated.push(format!("{} x{n}", text(&s.data)));
        }
    }
    assert!(lost.is_empty(), "{} records lost: {lost:?}", lost.len());
    assert!(
        duplicated.is_empty(),
        "{} records duplicated: {duplicated:?}",
        duplicated.len()
    );
    assert!(
        nacked_but_stored.is_empty(),
        "nacked records stored: {nacked_but_stored:?}"
    );

    // Per partition key: one shard, and sequence order = send order.
    let mut by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut shard_of: HashMap<String, String> = HashMap::new();
    for s in stored {
        let (key, n) = parse_data(&s.data);
        assert_eq!(key, s.partition_key, "partition key of {:?}", text(&s.data));
        let shard = shard_of
            .entry(key.clone())
            .or_insert_with(|| s.shard.clone());
        assert_eq!(*shard, s.shard, "key {key} spread over two shards");
        by_key.entry(key).or_default().push(n);
    }
    let mut expected: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for s in sent.iter().filter(|s| !nacked.contains(&s.position)) {
        expected.entry(s.key.clone()).or_default().push(s.n);
    }
    for (key, want) in &expected {
        let got = by_key.get(key).cloned().unwrap_or_default();
        assert_eq!(&got, want, "order of key {key} in kinesis-local");
    }

    // The proxy's view: each record reached kinesis-local (was written) at most once, so a
    // success was never re-sent.
    let mut written: HashMap<Vec<u8>, usize> = HashMap::new();
    for call in proxy.put_records_calls() {
        for entry in call.entries.iter().filter(|e| e.written()) {
            *written.entry(entry.data.clone()).or_default() += 1;
        }
    }
    let resent: Vec<String> = written
        .iter()
        .filter(|(_, &n)| n > 1)
        .map(|(d, n)| format!("{} x{n}", text(d)))
        .collect();
    assert!(
        resent.is_empty(),
        "successful entries sent again: {resent:?}"
    );
}

/// Entries the proxy failed (by entry rules), calls it failed (by call rules).
fn fault_counts(proxy: &FaultProxy) -> (usize, usize) {
    let calls = proxy.put_records_calls();
    let entries = calls
        .iter()
        .flat_map(|c| &c.entries)
        .filter(|e| matches!(e.fate, Fate::Failed(_)))
        .count();
    let faulted = calls.iter().filter(|c| c.fault.is_some()).count();
    (entries, faulted)
}

// ---------------------------------------------------------------------------------------------
// The proxy itself
// ---------------------------------------------------------------------------------------------

/// The proxy answers partial failures in the PutRecords shape and forwards only the rest.
#[tokio::test]
async fn proxy_fails_chosen_entries_and_forwards_the_rest() {
    let env = Env::start("proxy-self").await;
    env.proxy
        .add_entry_rule(EntryRule::marker("#bad", 1, EntryError::InternalFailure));
    env.proxy
        .add_call_rule(CallRule::numbers(&[3], CallFault::Throttle));
    // No SDK retries: every call the test makes is one call the proxy sees.
    let client = client_for(&env.proxy.url);
    let client = aws_sdk_kinesis::Client::from_conf(
        client
            .config()
            .to_builder()
            .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
            .build(),
    );
    let entry = |pk: &str, data: &str| {
        PutRecordsRequestEntry::builder()
            .partition_key(pk)
            .data(Blob::new(data.as_bytes()))
            .build()
            .unwrap()
    };
    let put = |entries: Vec<PutRecordsRequestEntry>| {
        client
            .put_records()
            .stream_name(&env.stream)
            .set_records(Some(entries))
            .send()
    };

    // Call 1: the middle entry fails, the others are stored.
    let out = put(vec![
        entry("a", "a/0000"),
        entry("b", "b/0000#bad"),
        entry("c", "c/0000"),
    ])
    .await
    .expect("PutRecords");
    assert_eq!(out.failed_record_count, Some(1));
    assert_eq!(out.records.len(), 3);
    assert!(out.records[0].sequence_number.is_some() && out.records[0].error_code.is_none());
    assert_eq!(
        out.records[1].error_code.as_deref(),
        Some("InternalFailure")
    );
    assert!(out.records[1].sequence_number.is_none());
    assert!(out.records[2].shard_id.is_some());

    // Call 2: only the marked entry, its second attempt: passes.
    let out = put(vec![entry("b", "b/0000#bad")])
        .await
        .expect("PutRecords");
    assert_eq!(out.failed_record_count, Some(0));

    // Call 3: throttled as a whole.
    let err = put(vec![entry("d", "d/0000")]).await.unwrap_err();
    assert_eq!(
        aws_sdk_kinesis::error::ProvideErrorMetadata::code(&err),
        Some("ProvisionedThroughputExceededException")
    );

    // Everything-fails case is answered without forwarding.
    env.proxy
        .add_entry_rule(EntryRule::marker("#all", u32::MAX, EntryError::Throughput));
    let out = put(vec![entry("e", "e/0000#all"), entry("f", "f/0000#all")])
        .await
        .expect("PutRecords");
    assert_eq!(out.failed_record_count, Some(2));
    assert!(out.records.iter().all(|r| r.error_code()
        == Some("ProvisionedThroughputExceededException")
        && r.error_message()
            .is_some_and(|m| m.contains("Rate exceeded"))));

    let stored: Vec<String> = env.stored().await.iter().map(|s| text(&s.data)).collect();
    let mut stored_sorted = stored.clone();
    stored_sorted.sort();
    assert_eq!(stored_sorted, vec!["a/0000", "b/0000#bad", "c/0000"]);

    let calls = env.proxy.put_records_calls();
    assert_eq!(
        calls.iter().map(|c| c.number).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(calls[0].forwarded().count(), 2);
    assert_eq!(
        calls[0].entries[1].fate,
        Fate::Failed(EntryError::InternalFailure)
    );
    assert_eq!(calls[2].fault, Some(CallFault::Throttle));
    assert_eq!(calls[3].forwarded().count(), 0);
    assert!(env.proxy.operations().iter().all(|op| op == "PutRecords"));
}

// ---------------------------------------------------------------------------------------------
// Partial failures
// ---------------------------------------------------------------------------------------------

async fn partial_failures(group: usize, rules: Vec<EntryRule>, seed: u64) {
    let env = Env::start("partial").await;
    env.proxy.set_seed(seed);
    for rule in rules {
        env.proxy.add_entry_rule(rule);
    }
    let sent = workload(&uniform_keys(10, 20));
    let acks = run_pipeline(env.config(&[]), &sent, group).await;
    let stored = env.stored().await;
    check_delivery(&sent, &acks, &stored, &env.proxy, &HashSet::new());

    let (failed, _) = fault_counts(&env.proxy);
    assert!(
        failed >= sent.len() / 5,
        "the proxy failed only {failed} entries: the test would prove nothing"
    );
    // Retried entries went out again without the ones that had succeeded.
    let calls = env.proxy.put_records_calls();
    let partial = calls
        .iter()
        .filter(|c| c.failed().count() > 0 && c.forwarded().count() > 0)
        .count();
    assert!(partial > 0, "no call mixed failed and written entries");
}

/// 30% of entries throttled, each up to 3 times; records sent one per Run request.
#[tokio::test]
async fn partial_failures_one_record_per_request() {
    partial_failures(
        1,
        vec![EntryRule::random(0.3, 3, EntryError::Throughput)],
        1,
    )
    .await;
}

/// Throttling and internal failures mixed; records sent in Run requests of 25 (preview
/// architecture), so calls carry many entries.
#[tokio::test]
async fn partial_failures_batched_requests() {
    partial_failures(
        25,
        vec![
            EntryRule::random(0.2, 2, EntryError::Throughput),
            EntryRule::random(0.15, 1, EntryError::InternalFailure),
        ],
        2,
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Whole-call failures
// ---------------------------------------------------------------------------------------------

/// The first calls are throttled, answered with 500 and cut off; later every 7th call is cut
/// off. No record is lost or duplicated and order holds.
#[tokio::test]
async fn whole_call_throttling_errors_and_dropped_connections() {
    let env = Env::start("calls").await;
    env.proxy
        .add_call_rule(CallRule::numbers(&[1, 4], CallFault::Throttle));
    env.proxy
        .add_call_rule(CallRule::numbers(&[2, 5], CallFault::InternalError));
    env.proxy
        .add_call_rule(CallRule::numbers(&[3, 6], CallFault::DropConnection));
    env.proxy
        .add_call_rule(CallRule::every(7, CallFault::DropConnection));
    env.proxy
        .add_call_rule(CallRule::every(11, CallFault::Throttle));
    let sent = workload(&uniform_keys(10, 20));
    let acks = run_pipeline(env.config(&[]), &sent, 5).await;
    let stored = env.stored().await;
    check_delivery(&sent, &acks, &stored, &env.proxy, &HashSet::new());

    let calls = env.proxy.put_records_calls();
    let faults: HashSet<CallFault> = calls.iter().filter_map(|c| c.fault).collect();
    assert_eq!(
        faults.len(),
        3,
        "every kind of call fault must have happened: {faults:?}"
    );
    // Every entry of a failed call was written later.
    for call in calls.iter().filter(|c| c.fault.is_some()) {
        for entry in &call.entries {
            assert!(
                calls.iter().filter(|c| c.number > call.number).any(|c| c
                    .entries
                    .iter()
                    .any(|e| e.written() && e.data == entry.data)),
                "{} (in failed call {}) was never written afterwards",
                entry.text(),
                call.number
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Exhausted retries
// ---------------------------------------------------------------------------------------------

/// A record that always fails is nacked after retry.maxAttempts with the AWS error and its
/// position; the others are acked; no later record of its key is sent before its nack.
#[tokio::test]
async fn exhausted_retries_nack_only_the_failed_record() {
    let env = Env::start("exhausted").await;
    env.proxy.add_entry_rule(EntryRule::marker(
        "#poison",
        u32::MAX,
        EntryError::Throughput,
    ));
    let mut sent = workload(&uniform_keys(10, 12));
    let poison_index = sent
        .iter()
        .position(|s| s.key == "key-3" && s.n == 5)
        .unwrap();
    sent[poison_index].data.extend_from_slice(b"#poison");
    let poison = sent[poison_index].clone();

    let acks = run_pipeline(env.config(&[("retry.maxAttempts", "3")]), &sent, 1).await;
    let stored = env.stored().await;
    let nacked = HashSet::from([poison.position.clone()]);
    check_delivery(&sent, &acks, &stored, &env.proxy, &nacked);

    let error = &acks[poison_index].error;
    assert!(
        error.contains("ProvisionedThroughputExceededException"),
        "the nack should carry the AWS error: {error}"
    );
    assert!(
        error.contains(&poison.position),
        "the nack should name the position: {error}"
    );

    let calls = env.proxy.put_records_calls();
    let attempts: Vec<u64> = calls
        .iter()
        .filter(|c| c.entries.iter().any(|e| e.data == poison.data))
        .map(|c| c.number)
        .collect();
    assert_eq!(
        attempts.len(),
        3,
        "retry.maxAttempts=3 means 3 attempts, saw calls {attempts:?}"
    );
    let last_attempt = *attempts.last().unwrap();
    // While the poison record was being retried, no later record of its key went out.
    for call in calls.iter().filter(|c| c.number <= last_attempt) {
        for entry in call.forwarded() {
            let (key, n) = parse_data(&entry.data);
            assert!(
                !(key == poison.key && n > poison.n),
                "{} was sent in call {} while {} was still being retried (until call {last_attempt})",
                entry.text(),
                call.number,
                text(&poison.data)
            );
        }
    }
    // The later records of the key were sent after its nack (and are in the stream).
    assert!(calls
        .iter()
        .filter(|c| c.number > last_attempt)
        .flat_map(|c| c.forwarded())
        .any(|e| parse_data(&e.data) == (poison.key.clone(), poison.n + 1)));
}

// ---------------------------------------------------------------------------------------------
// Strict ordering
// ---------------------------------------------------------------------------------------------

/// With strictOrdering=true no call carries two entries of one key, and a hot key's records
/// arrive in order despite partial failures. Sent in Run requests of 50 so many records of
/// the hot key wait in a lane at once.
#[tokio::test]
async fn strict_ordering_one_entry_per_key_per_call() {
    let env = Env::start("strict").await;
    env.proxy
        .add_entry_rule(EntryRule::random(0.3, 2, EntryError::Throughput));
    let mut keys = vec![("hot".to_string(), 80)];
    keys.extend(uniform_keys(4, 10));
    let mut sent = workload(&keys);
    // Most records of the hot key come in a burst at the end, after the others.
    sent.sort_by_key(|s| s.key == "hot" && s.n >= 10);
    for (i, s) in sent.iter_mut().enumerate() {
        s.position = format!("pos-{i:05}");
    }
    let acks = run_pipeline(env.config(&[("strictOrdering", "true")]), &sent, 50).await;
    let stored = env.stored().await;
    check_delivery(&sent, &acks, &stored, &env.proxy, &HashSet::new());

    let calls = env.proxy.put_records_calls();
    for call in &calls {
        let mut keys = HashSet::new();
        for entry in &call.entries {
            assert!(
                keys.insert(entry.partition_key.as_str()),
                "call {} carries two entries of key {}: {:?}",
                call.number,
                entry.partition_key,
                call.entries.iter().map(|e| e.text()).collect::<Vec<_>>()
            );
        }
    }
    assert!(
        calls.iter().any(|c| c.entries.len() > 1),
        "no call batched several keys"
    );
    let (failed, _) = fault_counts(&env.proxy);
    assert!(failed > 20, "only {failed} entries failed");
}

// ---------------------------------------------------------------------------------------------
// Batching
// ---------------------------------------------------------------------------------------------

/// Records that arrive together go out in full calls: a lane does not send a partial call
/// while the preparer still has records of the same hand-over to route (small calls cost
/// signing, HTTP and a response each, and left throughput at a fraction of what full calls
/// give). One lane, one Run request of 1,800 records: exactly 500 + 500 + 500 + 300.
#[tokio::test]
async fn records_handed_over_together_fill_whole_calls() {
    let env = Env::start("fill").await;
    let sent = workload(&uniform_keys(1_800, 1));
    let acks = run_pipeline(env.config(&[("concurrency", "1")]), &sent, sent.len()).await;
    let stored = env.stored().await;
    check_delivery(&sent, &acks, &stored, &env.proxy, &HashSet::new());
    let sizes: Vec<usize> = env
        .proxy
        .put_records_calls()
        .iter()
        .map(|call| call.entries.len())
        .collect();
    assert_eq!(sizes, vec![500, 500, 500, 300]);
}
