//! Several source instances sharing one stream through the DynamoDB lease table
//! (`coordination=dynamodb`): kinesis-local, dynalite and three or four plugin processes,
//! each started as Conduit starts it and driven over gRPC (Configure, Open, Run with acks,
//! Stop, Teardown), with short leases (2 s) so takeovers happen within seconds. Readers use
//! enhanced fan-out (the default); the graceful handover and a `latest` start moved before its
//! first checkpoint also run with polling. The last
//! test runs three real Conduit instances (SKIPPED where `.tools/bin/conduit` is missing).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use conduit_connector_kinesis::proto::opencdc::v1::{data, Record};
use serde_json::Value;
use support::dynamodb_local::DynamoLocal;
use support::kinesis_local::{unique_stream_name, KinesisLocal};
use support::source::RunningSource;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const LEASE: Duration = Duration::from_secs(2);
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);
const KEYS: usize = 48;

struct Harness {
    /// `fanout` (the connector's default) or `polling`.
    read_mode: &'static str,
    kl: KinesisLocal,
    ddb: DynamoLocal,
    stream: String,
    table: String,
}

impl Harness {
    async fn new(shards: i32) -> Harness {
        Self::reading(shards, "fanout").await
    }

    async fn reading(shards: i32, read_mode: &'static str) -> Harness {
        let kl = KinesisLocal::start().await;
        let ddb = DynamoLocal::start().await;
        let stream = unique_stream_name("leases");
        kl.create_stream(&stream, shards).await;
        let table = format!("{stream}-leases");
        Harness {
            read_mode,
            kl,
            ddb,
            stream,
            table,
        }
    }

    fn settings(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let lease = format!("{}ms", LEASE.as_millis());
        let checkpoint = format!("{}ms", CHECKPOINT_INTERVAL.as_millis());
        let mut all: Vec<(String, String)> = [
            ("aws.url", self.kl.endpoint.as_str()),
            ("aws.region", "us-east-1"),
            ("aws.accessKeyId", "test"),
            ("aws.secretAccessKey", "test"),
            ("streamName", self.stream.as_str()),
            ("readMode", self.read_mode),
            ("polling.interval", "200ms"),
            ("shardDiscoveryInterval", "1s"),
            ("coordination", "dynamodb"),
            ("coordination.url", self.ddb.endpoint.as_str()),
            ("coordination.table", self.table.as_str()),
            ("coordination.leaseDuration", lease.as_str()),
            ("coordination.checkpointInterval", checkpoint.as_str()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            all.retain(|(key, _)| key != k);
            all.push((k.to_string(), v.to_string()));
        }
        all
    }

    async fn items(&self) -> Vec<Value> {
        self.ddb.raw_scan(&self.table).await
    }

    /// Owner of every shard's lease that is not finished.
    async fn owners(&self) -> BTreeMap<String, Option<String>> {
        self.items()
            .await
            .iter()
            .filter(|item| item["checkpoint"]["S"] != "SHARD_END")
            .map(|item| {
                (
                    item["leaseKey"]["S"].as_str().unwrap().to_string(),
                    item["leaseOwner"]["S"].as_str().map(str::to_string),
                )
            })
            .collect()
    }

    /// Waits until `done(owners)` holds; returns how long it took.
    async fn wait_for(
        &self,
        limit: Duration,
        what: &str,
        done: impl Fn(&BTreeMap<String, Option<String>>) -> bool,
    ) -> Duration {
        let started = Instant::now();
        loop {
            let owners = self.owners().await;
            if done(&owners) {
                return started.elapsed();
            }
            if started.elapsed() > limit {
                panic!("{what} not within {limit:?}; leases: {owners:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn refs(settings: &[(String, String)]) -> Vec<(&str, &str)> {
    settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// One delivered record.
#[derive(Debug, Clone)]
struct Delivery {
    worker: String,
    shard: String,
    sequence: String,
    payload: String,
    at: Instant,
}

type Log = Arc<Mutex<Vec<Delivery>>>;

fn payload(record: &Record) -> String {
    match record
        .payload
        .as_ref()
        .and_then(|p| p.after.as_ref())
        .and_then(|d| d.data.as_ref())
    {
        Some(data::Data::RawData(bytes)) => String::from_utf8(bytes.to_vec()).unwrap(),
        other => panic!("unexpected payload {other:?}"),
    }
}

/// A source instance that reads and acks everything, recording what it delivered.
struct Instance {
    pid: u32,
    /// While set, the instance takes nothing from the plugin (Conduit being slow).
    paused: Arc<std::sync::atomic::AtomicBool>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

enum Step {
    Batch(Option<Vec<Record>>),
    Stop,
}

impl Instance {
    async fn start(harness: &Harness, worker: &str, log: &Log) -> Instance {
        Self::start_with(harness, worker, log, &[], true).await
    }

    /// With `extra` settings; `ack: false` takes records but never acknowledges them (as
    /// Conduit behind a destination that has not written anything yet), until Stop.
    async fn start_with(
        harness: &Harness,
        worker: &str,
        log: &Log,
        extra: &[(&str, &str)],
        ack: bool,
    ) -> Instance {
        let mut extra = extra.to_vec();
        extra.push(("coordination.workerId", worker));
        let settings = harness.settings(&extra);
        let source = RunningSource::start(&refs(&settings), None).await;
        let pid = source.plugin.child.id();
        let (stop, mut stop_rx) = oneshot::channel();
        let paused = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let pause = paused.clone();
        let log = log.clone();
        let name = worker.to_string();
        let task = tokio::spawn(async move {
            let mut source = source;
            let mut last_received: Vec<u8> = Vec::new();
            let record = |records: &[Record]| {
                let mut log = log.lock().unwrap();
                for r in records {
                    log.push(Delivery {
                        worker: name.clone(),
                        shard: r.metadata["kinesis.shardId"].to_string(),
                        sequence: r.metadata["kinesis.sequenceNumber"].to_string(),
                        payload: payload(r),
                        at: Instant::now(),
                    });
                }
            };
            loop {
                let step = tokio::select! {
                    _ = &mut stop_rx => Step::Stop,
                    _ = tokio::time::sleep(Duration::from_millis(100)),
                        if pause.load(std::sync::atomic::Ordering::SeqCst) => Step::Batch(None),
                    batch = source.next_batch(Duration::from_millis(200)),
                        if !pause.load(std::sync::atomic::Ordering::SeqCst) => Step::Batch(batch),
                };
                match step {
                    Step::Batch(Some(records)) => {
                        record(&records);
                        if let Some(r) = records.last() {
                            last_received = r.position.clone();
                        }
                        if ack {
                            source
                                .ack(records.iter().map(|r| r.position.clone()).collect())
                                .await;
                        }
                    }
                    Step::Batch(None) => {}
                    Step::Stop => {
                        // As Conduit stops a pipeline: Stop, take and ack everything up to the
                        // last position it names, then Teardown.
                        let last = source.stop().await;
                        let mut seen_last = last.is_empty() || last == last_received;
                        while !seen_last {
                            let Some(records) = source.next_batch(Duration::from_secs(5)).await
                            else {
                                break;
                            };
                            seen_last = records.iter().any(|r| r.position == last);
                            record(&records);
                            source
                                .ack(records.iter().map(|r| r.position.clone()).collect())
                                .await;
                        }
                        assert!(seen_last, "Stop named a position that never came");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        source.teardown().await;
                        return;
                    }
                }
            }
        });
        Instance {
            pid,
            paused,
            stop: Some(stop),
            task,
        }
    }

    async fn stop_gracefully(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("graceful stop within 30 s")
            .expect("the instance task");
    }

    fn kill(self) -> Instant {
        support::kill_process(self.pid);
        let killed = Instant::now();
        self.task.abort();
        killed
    }
}

/// Writes records "k<key>:<n>" (n rising per key) in batches until `stop` is set; returns
/// every payload written.
fn produce(
    harness: &Harness,
    per_second: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> JoinHandle<Vec<String>> {
    let client = support::kinesis_local::client_for(&harness.kl.endpoint);
    let stream = harness.stream.clone();
    tokio::spawn(async move {
        let mut written = Vec::new();
        let mut n = 0usize;
        let batch = (per_second / 10).max(1);
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let mut entries = Vec::new();
            let mut payloads = Vec::new();
            for _ in 0..batch {
                let key = format!("k{}", n % KEYS);
                let text = format!("{key}:{n}");
                entries.push(
                    PutRecordsRequestEntry::builder()
                        .partition_key(&key)
                        .data(Blob::new(text.as_bytes().to_vec()))
                        .build()
                        .unwrap(),
                );
                payloads.push(text);
                n += 1;
            }
            let answer = client
                .put_records()
                .stream_name(&stream)
                .set_records(Some(entries))
                .send()
                .await
                .expect("PutRecords");
            assert_eq!(
                answer.failed_record_count,
                Some(0),
                "PutRecords failed entries"
            );
            written.extend(payloads);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        written
    })
}

/// Waits until every written payload was delivered at least once.
async fn wait_delivered(log: &Log, written: &[String], limit: Duration) {
    let started = Instant::now();
    loop {
        let missing: Vec<&String> = {
            let seen: std::collections::HashSet<String> = log
                .lock()
                .unwrap()
                .iter()
                .map(|d| d.payload.clone())
                .collect();
            written.iter().filter(|p| !seen.contains(*p)).collect()
        };
        if missing.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "{} of {} records never delivered, e.g. {:?}",
            missing.len(),
            written.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Payloads delivered more than once, with their deliveries.
fn repeats(log: &Log) -> HashMap<String, Vec<Delivery>> {
    let mut by_payload: HashMap<String, Vec<Delivery>> = HashMap::new();
    for d in log.lock().unwrap().iter() {
        by_payload
            .entry(d.payload.clone())
            .or_default()
            .push(d.clone());
    }
    by_payload.retain(|_, ds| ds.len() > 1);
    by_payload
}

/// Per partition key, the payload numbers rise in delivery order (counting a repeat's
/// first delivery only).
fn check_per_key_order(log: &Log) {
    let mut last: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for d in log.lock().unwrap().iter() {
        if !seen.insert(d.payload.clone()) {
            continue;
        }
        let (key, n) = d.payload.split_once(':').unwrap();
        let n: usize = n.parse().unwrap();
        if let Some(previous) = last.insert(key.to_string(), n) {
            assert!(previous < n, "key {key}: {n} delivered after {previous}");
        }
    }
}

fn balanced(owners: &BTreeMap<String, Option<String>>, workers: &[&str], each: usize) -> bool {
    workers
        .iter()
        .all(|w| owners.values().filter(|o| o.as_deref() == Some(*w)).count() == each)
}

async fn three_instances(harness: &Harness, log: &Log) -> (Vec<Instance>, Duration) {
    let mut instances = Vec::new();
    for worker in ["a", "b", "c"] {
        instances.push(Instance::start(harness, worker, log).await);
    }
    let took = harness
        .wait_for(
            LEASE * 3,
            "three instances holding 4 leases each",
            |owners| balanced(owners, &["a", "b", "c"], 4),
        )
        .await;
    (instances, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_converge_to_four_leases_each_and_read_every_record_once() {
    let harness = Harness::new(12).await;
    let log = Log::default();
    let (instances, took) = three_instances(&harness, &log).await;
    eprintln!("converged to 4/4/4 in {took:?} after the third instance opened");

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = produce(&harness, 100, stop.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = producer.await.unwrap();
    wait_delivered(&log, &written, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(repeats(&log).is_empty(), "repeats: {:?}", repeats(&log));
    // Each shard was read by one instance, and every instance read some.
    let mut readers: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for d in log.lock().unwrap().iter() {
        readers
            .entry(d.shard.clone())
            .or_default()
            .insert(d.worker.clone());
    }
    assert!(readers.values().all(|w| w.len() == 1), "{readers:?}");
    check_per_key_order(&log);
    for instance in instances {
        instance.stop_gracefully().await;
    }
}

// dynalite is stopped (SIGSTOP), not killed: requests sent during the outage are carried out
// when it resumes, after their senders gave up waiting. A worker's own late renewal then makes
// its next write conflict, as if another instance had taken the lease; this test found that
// retaking such a lease while its handover was pending ended the new ownership (one shard
// never read again), fixed in the keeper and covered by the unit test
// `retaking_a_lease_while_its_handover_is_pending_keeps_reading_it`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamodb_outage_longer_than_a_lease_fences_reading_and_loses_nothing() {
    let harness = Harness::new(4).await;
    let log = Log::default();
    let a = Instance::start(&harness, "a", &log).await;
    let b = Instance::start(&harness, "b", &log).await;
    harness
        .wait_for(LEASE * 3, "2 leases each", |owners| {
            balanced(owners, &["a", "b"], 2)
        })
        .await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = produce(&harness, 100, stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;

    // DynamoDB stops answering for two lease durations: no lease can be renewed, so once a
    // lease duration has passed no instance may go on emitting (another could have taken the
    // shards); when it answers again, the shards are owned and read again from checkpoints.
    harness.ddb.freeze(true);
    let frozen = Instant::now();
    tokio::time::sleep(LEASE * 2).await;
    harness.ddb.freeze(false);
    let thawed = Instant::now();
    let fenced_from = frozen + LEASE + Duration::from_millis(500);
    let during: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|d| d.at > fenced_from && d.at < thawed)
        .map(|d| format!("{} on {} by {}", d.payload, d.shard, d.worker))
        .collect();
    assert!(
        during.is_empty(),
        "{} records emitted more than a lease duration into the outage: {:?}",
        during.len(),
        &during[..during.len().min(5)]
    );
    let before_fence = log
        .lock()
        .unwrap()
        .iter()
        .filter(|d| d.at > frozen && d.at <= fenced_from)
        .count();
    eprintln!("{before_fence} records emitted in the outage's first lease duration, none after");
    let owned_again = harness
        .wait_for(
            LEASE * 4,
            "every shard owned again after the outage",
            |owners| {
                owners
                    .values()
                    .all(|o| matches!(o.as_deref(), Some("a" | "b")))
            },
        )
        .await;
    eprintln!("every shard owned again {owned_again:?} after DynamoDB answered again");

    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = producer.await.unwrap();
    wait_delivered(&log, &written, Duration::from_secs(30)).await;
    check_per_key_order(&log);
    a.stop_gracefully().await;
    b.stop_gracefully().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_s_shards_move_within_two_lease_durations_without_loss() {
    let harness = Harness::new(12).await;
    let log = Log::default();
    let (mut instances, _) = three_instances(&harness, &log).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = produce(&harness, 100, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;

    let victim = instances.pop().unwrap();
    let victim_shards: Vec<String> = harness
        .owners()
        .await
        .into_iter()
        .filter(|(_, o)| o.as_deref() == Some("c"))
        .map(|(s, _)| s)
        .collect();
    assert_eq!(victim_shards.len(), 4);
    let killed = victim.kill();
    let moved = harness
        .wait_for(
            LEASE * 2,
            "the killed instance's leases owned again",
            |owners| {
                owners
                    .values()
                    .all(|o| matches!(o.as_deref(), Some("a" | "b")))
            },
        )
        .await;
    eprintln!("the killed instance's 4 leases were owned again after {moved:?}");

    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = producer.await.unwrap();
    wait_delivered(&log, &written, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Repeats only on the moved shards, and only of what the killed instance delivered in
    // the last checkpoint interval before it died (plus the ack's way back).
    let repeats = repeats(&log);
    let slack = Duration::from_millis(400);
    for (text, deliveries) in &repeats {
        let first = &deliveries[0];
        assert_eq!(first.worker, "c", "{text} repeated: {deliveries:?}");
        assert!(victim_shards.contains(&first.shard), "{deliveries:?}");
        assert!(
            killed.duration_since(first.at) <= CHECKPOINT_INTERVAL + slack,
            "{text} was delivered {:?} before the kill and still repeated",
            killed.duration_since(first.at)
        );
    }
    eprintln!(
        "{} of {} records repeated after the kill",
        repeats.len(),
        written.len()
    );
    check_per_key_order(&log);
    for instance in instances {
        instance.stop_gracefully().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_hands_over_without_repeats_and_a_newcomer_takes_its_share() {
    graceful_stop_and_newcomer(Harness::new(12).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_a_graceful_stop_hands_over_without_repeats_and_a_newcomer_takes_its_share() {
    graceful_stop_and_newcomer(Harness::reading(12, "polling").await).await;
}

async fn graceful_stop_and_newcomer(harness: Harness) {
    let log = Log::default();
    let (mut instances, _) = three_instances(&harness, &log).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = produce(&harness, 100, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Every instance is delivering before one leaves.
    let started = Instant::now();
    while ["a", "b", "c"]
        .iter()
        .any(|w| !log.lock().unwrap().iter().any(|d| d.worker == *w))
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not every instance delivered within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let leaving = instances.pop().unwrap();
    let started = Instant::now();
    leaving.stop_gracefully().await;
    // Teardown wrote the last acknowledged record of each shard and released the lease.
    let mut last_of_c: BTreeMap<String, String> = BTreeMap::new();
    for d in log.lock().unwrap().iter().filter(|d| d.worker == "c") {
        last_of_c.insert(d.shard.clone(), d.sequence.clone());
    }
    assert!(!last_of_c.is_empty());
    for item in harness.items().await {
        let shard = item["leaseKey"]["S"].as_str().unwrap();
        if let Some(sequence) = last_of_c.get(shard) {
            assert_ne!(item["leaseOwner"]["S"], "c", "not released: {item}");
            assert_eq!(item["checkpoint"]["S"], sequence.as_str(), "{item}");
        }
    }
    harness
        .wait_for(
            LEASE * 2,
            "the stopped instance's leases owned again",
            |owners| balanced(owners, &["a", "b"], 6),
        )
        .await;
    eprintln!(
        "handed over 4 leases in {:?} (from Stop)",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    let joined = Instant::now();
    instances.push(Instance::start(&harness, "d", &log).await);
    harness
        .wait_for(LEASE * 4, "the newcomer holding its share", |owners| {
            balanced(owners, &["a", "b", "d"], 4)
        })
        .await;
    eprintln!(
        "the fourth instance held 4 leases {:?} after it started",
        joined.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = producer.await.unwrap();
    wait_delivered(&log, &written, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let repeats = repeats(&log);
    assert!(repeats.is_empty(), "{} repeats: {repeats:?}", repeats.len());
    check_per_key_order(&log);
    for instance in instances {
        instance.stop_gracefully().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_latest_moved_before_its_first_checkpoint_loses_nothing() {
    latest_moved_before_its_first_checkpoint(Harness::reading(2, "polling").await).await;
}

/// The fan-out path end to end. kinesis-local's first event of a subscription is usually
/// empty, and its continuation is checkpointed before any record waits for an ack, so this
/// variant mostly finds a sequence checkpoint and passes without the pin as well; the pin
/// under fan-out is shown by the unit test
/// `fan_out_latest_survives_a_crash_before_the_first_checkpoint`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_moved_before_its_first_checkpoint_loses_nothing() {
    latest_moved_before_its_first_checkpoint(Harness::new(2).await).await;
}

/// `startPosition: latest`: the first instance reads every shard but is killed before any
/// record is acknowledged, so before any record checkpoint; the instance that takes the
/// shards over must deliver everything written after the first one started reading (with
/// `LATEST` left in the table it would start at its own "now" and skip all of it).
async fn latest_moved_before_its_first_checkpoint(harness: Harness) {
    let latest = [("startPosition", "latest")];
    let log_a = Log::default();
    let a = Instance::start_with(&harness, "a", &log_a, &latest, false).await;
    harness
        .wait_for(LEASE * 3, "a holding both leases", |owners| {
            owners.len() == 2 && owners.values().all(|o| o.as_deref() == Some("a"))
        })
        .await;
    // The readers start right after the takes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started_reading = std::time::SystemTime::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = produce(&harness, 100, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = producer.await.unwrap();
    // a was reading: it delivered everything (and acknowledged nothing).
    wait_delivered(&log_a, &written, Duration::from_secs(30)).await;
    let items_before_kill = harness.items().await;
    a.kill();

    let log_b = Log::default();
    let b = Instance::start_with(&harness, "b", &log_b, &latest, true).await;
    harness
        .wait_for(LEASE * 3, "b holding both leases", |owners| {
            owners.values().all(|o| o.as_deref() == Some("b"))
        })
        .await;
    wait_delivered(&log_b, &written, Duration::from_secs(30)).await;
    check_per_key_order(&log_b);

    // What b found: a's pin, KCL's AT_TIMESTAMP with the time a started reading (a margin
    // earlier) in checkpointTimestamp; with fan-out, maybe the continuation of an event that
    // came before the records (checkpointed as nothing waited for an ack then).
    let started_ms = started_reading
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for item in &items_before_kill {
        let checkpoint = item["checkpoint"]["S"].as_str().unwrap();
        if harness.read_mode == "fanout" && checkpoint.bytes().all(|b| b.is_ascii_digit()) {
            assert!(item.get("checkpointTimestamp").is_none(), "{item}");
            continue;
        }
        assert_eq!(checkpoint, "AT_TIMESTAMP", "{item}");
        let pinned: i64 = item["checkpointTimestamp"]["N"]
            .as_str()
            .unwrap_or_else(|| panic!("no checkpointTimestamp in {item}"))
            .parse()
            .unwrap();
        assert!(
            pinned <= started_ms && started_ms - pinned < 30_000,
            "pinned at {pinned}, writing started at {started_ms}: {item}"
        );
    }
    b.stop_gracefully().await;
    // b's acknowledged records replaced the pin, and the timestamp went with it.
    for item in harness.items().await {
        let checkpoint = item["checkpoint"]["S"].as_str().unwrap();
        assert!(checkpoint.bytes().all(|b| b.is_ascii_digit()), "{item}");
        assert!(item.get("checkpointTimestamp").is_none(), "{item}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_items_carry_kcl_attribute_names_and_types() {
    let harness = Harness::new(2).await;
    let log = Log::default();
    let instance = Instance::start(&harness, "solo", &log).await;
    harness
        .wait_for(LEASE * 3, "both leases held", |owners| {
            owners.len() == 2 && owners.values().all(|o| o.as_deref() == Some("solo"))
        })
        .await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = produce(&harness, 20, stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = producer.await.unwrap();
    wait_delivered(&log, &written, Duration::from_secs(30)).await;
    tokio::time::sleep(CHECKPOINT_INTERVAL * 3).await;

    let description = harness.ddb.describe(&harness.table).await;
    let table = &description["Table"];
    assert_eq!(
        table["KeySchema"],
        serde_json::json!([{ "AttributeName": "leaseKey", "KeyType": "HASH" }])
    );
    assert_eq!(
        table["BillingModeSummary"]["BillingMode"], "PAY_PER_REQUEST",
        "{description}"
    );
    let items = harness.items().await;
    assert_eq!(items.len(), 2, "{items:#?}");
    for item in &items {
        let object = item.as_object().unwrap();
        let kind = |name: &str| -> &str {
            let value = object
                .get(name)
                .unwrap_or_else(|| panic!("no {name} in {item}"))
                .as_object()
                .unwrap();
            assert_eq!(value.len(), 1, "{name}: {value:?}");
            value.keys().next().unwrap()
        };
        for (name, want) in [
            ("leaseKey", "S"),
            ("leaseOwner", "S"),
            ("leaseCounter", "N"),
            ("checkpoint", "S"),
            ("checkpointSubSequenceNumber", "N"),
            ("ownerSwitchesSinceCheckpoint", "N"),
            ("startingHashKey", "S"),
            ("endingHashKey", "S"),
        ] {
            assert_eq!(kind(name), want, "{name} in {item}");
        }
        assert_eq!(item["leaseOwner"]["S"], "solo");
        // Both shards got records: the checkpoint is a sequence number now.
        let checkpoint = item["checkpoint"]["S"].as_str().unwrap();
        assert!(
            checkpoint.len() > 20 && checkpoint.bytes().all(|b| b.is_ascii_digit()),
            "{item}"
        );
        assert_eq!(item["checkpointSubSequenceNumber"]["N"], "0");
        let allowed: std::collections::BTreeSet<&str> = [
            "leaseKey",
            "leaseOwner",
            "leaseCounter",
            "checkpoint",
            "checkpointSubSequenceNumber",
            "ownerSwitchesSinceCheckpoint",
            "parentShardId",
            "childShardIds",
            "startingHashKey",
            "endingHashKey",
            "checkpointOwner",
        ]
        .into();
        for name in object.keys() {
            assert!(
                allowed.contains(name.as_str()),
                "unexpected attribute {name}"
            );
        }
    }
    instance.stop_gracefully().await;
    // Released at Teardown: no owner, counter raised.
    for item in harness.items().await {
        assert!(item.get("leaseOwner").is_none(), "{item}");
    }
}

async fn open_shards(harness: &Harness) -> Vec<aws_sdk_kinesis::types::Shard> {
    let client = support::kinesis_local::client_for(&harness.kl.endpoint);
    let mut shards: Vec<_> = client
        .list_shards()
        .stream_name(&harness.stream)
        .send()
        .await
        .expect("ListShards")
        .shards
        .unwrap_or_default()
        .into_iter()
        .filter(|s| {
            s.sequence_number_range
                .as_ref()
                .and_then(|r| r.ending_sequence_number.as_ref())
                .is_none()
        })
        .collect();
    shards.sort_by_key(|s| {
        s.hash_key_range
            .as_ref()
            .unwrap()
            .starting_hash_key
            .parse::<u128>()
            .unwrap()
    });
    shards
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_and_merge_while_three_instances_read_lose_nothing_and_keep_key_order() {
    let harness = Harness::new(6).await;
    let client = support::kinesis_local::client_for(&harness.kl.endpoint);
    let log = Log::default();
    let mut instances = Vec::new();
    for worker in ["a", "b", "c"] {
        instances.push(Instance::start(&harness, worker, &log).await);
    }
    harness
        .wait_for(LEASE * 3, "2 leases each", |owners| {
            balanced(owners, &["a", "b", "c"], 2)
        })
        .await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = produce(&harness, 100, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The instance reading the shard to split falls behind: its children must still wait
    // for the parent's SHARD_END, whoever holds them.
    let shards = open_shards(&harness).await;
    let parent_owner = harness.owners().await[&shards[0].shard_id].clone().unwrap();
    let slow = ["a", "b", "c"]
        .iter()
        .position(|w| *w == parent_owner)
        .unwrap();
    instances[slow]
        .paused
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let range = shards[0].hash_key_range.as_ref().unwrap();
    let start: u128 = range.starting_hash_key.parse().unwrap();
    let end: u128 = range.ending_hash_key.parse().unwrap();
    client
        .split_shard()
        .stream_name(&harness.stream)
        .shard_to_split(&shards[0].shard_id)
        .new_starting_hash_key((start + (end - start) / 2).to_string())
        .send()
        .await
        .expect("SplitShard");
    harness.kl.wait_stream_active(&harness.stream).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    instances[slow]
        .paused
        .store(false, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Merge the last two open shards (adjacent by hash range).
    let shards = open_shards(&harness).await;
    let n = shards.len();
    client
        .merge_shards()
        .stream_name(&harness.stream)
        .shard_to_merge(&shards[n - 2].shard_id)
        .adjacent_shard_to_merge(&shards[n - 1].shard_id)
        .send()
        .await
        .expect("MergeShards");
    harness.kl.wait_stream_active(&harness.stream).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = producer.await.unwrap();
    wait_delivered(&log, &written, Duration::from_secs(60)).await;
    check_per_key_order(&log);

    // Parents are at SHARD_END with their children named; children name their parents.
    tokio::time::sleep(CHECKPOINT_INTERVAL * 3).await;
    let items = harness.items().await;
    assert_eq!(
        items.len(),
        9,
        "6 shards, 2 split children, 1 merged child: {items:#?}"
    );
    let ended: Vec<&Value> = items
        .iter()
        .filter(|i| i["checkpoint"]["S"] == "SHARD_END")
        .collect();
    assert_eq!(ended.len(), 3, "{items:#?}");
    for parent in &ended {
        assert!(parent["childShardIds"]["SS"].is_array(), "{parent}");
        assert!(parent.get("leaseOwner").is_none(), "released: {parent}");
    }
    let children: Vec<&Value> = items
        .iter()
        .filter(|i| i.get("parentShardId").is_some())
        .collect();
    assert_eq!(children.len(), 3, "{items:#?}");
    eprintln!(
        "{} records over the split and merge, {} repeated",
        written.len(),
        repeats(&log).len()
    );
    for instance in instances {
        instance.stop_gracefully().await;
    }
}

/// Records in a `builtin:file` output, by `<shard>/<sequence number>`.
fn file_keys(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|r| {
            format!(
                "{}/{}",
                r["metadata"]["kinesis.shardId"].as_str().unwrap_or(""),
                r["metadata"]["kinesis.sequenceNumber"]
                    .as_str()
                    .unwrap_or("")
            )
        })
        .collect()
}

/// Puts `count` records; returns their `<shard>/<sequence number>`.
async fn put_batch(harness: &Harness, from: usize, count: usize) -> Vec<String> {
    let client = support::kinesis_local::client_for(&harness.kl.endpoint);
    let entries: Vec<PutRecordsRequestEntry> = (from..from + count)
        .map(|n| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("k{}", n % KEYS))
                .data(Blob::new(format!("{n}").into_bytes()))
                .build()
                .unwrap()
        })
        .collect();
    let answer = client
        .put_records()
        .stream_name(&harness.stream)
        .set_records(Some(entries))
        .send()
        .await
        .expect("PutRecords");
    answer
        .records
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r.shard_id.as_deref().unwrap(),
                r.sequence_number.as_deref().unwrap()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_real_conduit_instances_share_a_stream_through_the_lease_table() {
    use support::conduit::{self, destination, pipeline_yaml, source, Conduit, ConduitHome, Db};
    let Some(binary) = conduit::binary() else {
        return;
    };
    let harness = Harness::new(12).await;
    let mut sent = put_batch(&harness, 0, 240).await;
    let out = tempfile::tempdir().unwrap();
    let lease = format!("{}ms", LEASE.as_millis());
    let checkpoint = format!("{}ms", CHECKPOINT_INTERVAL.as_millis());
    let mut homes = Vec::new();
    let mut conduits = Vec::new();
    let mut files = Vec::new();
    for i in 0..3 {
        let file = out.path().join(format!("records-{i}.jsonl"));
        // The same pipeline file on every instance but for the output path: the same
        // connector ID, so the derived lease table is shared.
        let settings = [
            ("streamName", harness.stream.as_str()),
            ("aws.url", harness.kl.endpoint.as_str()),
            ("aws.region", "us-east-1"),
            ("aws.accessKeyId", "test"),
            ("aws.secretAccessKey", "test"),
            ("shardDiscoveryInterval", "1s"),
            ("coordination", "dynamodb"),
            ("coordination.url", harness.ddb.endpoint.as_str()),
            ("coordination.leaseDuration", lease.as_str()),
            ("coordination.checkpointInterval", checkpoint.as_str()),
        ];
        let yaml = pipeline_yaml(
            "shared",
            &[
                source("kinesis", "standalone:kinesis", &settings),
                destination("file", "builtin:file", &[("path", file.to_str().unwrap())]),
            ],
        );
        let home = ConduitHome::new(&[("shared.yaml", yaml)]);
        conduits.push(Conduit::start(&binary, &home, Db::Badger, &[]));
        homes.push(home);
        files.push(file);
    }
    for conduit in &conduits {
        conduit.wait_for_status("shared", "STATUS_RUNNING", Duration::from_secs(60));
    }
    let table = "conduit-shared-kinesis-leases";
    let started = Instant::now();
    loop {
        let items = harness.ddb.try_raw_scan(table).await.unwrap_or_default();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for item in &items {
            if let Some(owner) = item["leaseOwner"]["S"].as_str() {
                *counts.entry(owner.to_string()).or_default() += 1;
            }
        }
        if counts.len() == 3 && counts.values().all(|&n| n == 4) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not 4/4/4 within 30 s: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sent.extend(put_batch(&harness, 240, 240).await);
    let started = Instant::now();
    loop {
        let delivered: usize = files.iter().map(|f| file_keys(f).len()).sum();
        if delivered >= sent.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {delivered} of {} records delivered",
            sent.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for conduit in conduits {
        let status = conduit.terminate(Duration::from_secs(60));
        assert!(status.success(), "conduit exited with {status}");
    }
    let mut delivered: Vec<String> = files.iter().flat_map(|f| file_keys(f)).collect();
    let per_instance: Vec<usize> = files.iter().map(|f| file_keys(f).len()).collect();
    delivered.sort();
    let mut expected = sent.clone();
    expected.sort();
    assert_eq!(
        delivered, expected,
        "every record exactly once across the three instances"
    );
    assert!(per_instance.iter().all(|&n| n > 0), "{per_instance:?}");
    // Graceful stops released every lease.
    for item in harness.ddb.raw_scan(table).await {
        assert!(item.get("leaseOwner").is_none(), "{item}");
    }
    eprintln!("records per instance: {per_instance:?}");
}
