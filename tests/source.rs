//! The source against kinesis-local, driven over gRPC as Conduit drives it.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use conduit_connector_kinesis::proto::opencdc::v1::{data, Record};
use support::kinesis_local::{unique_stream_name, KinesisLocal};
use support::source::RunningSource;

fn settings(kl: &KinesisLocal, stream: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = vec![
        ("aws.url".into(), kl.endpoint.clone()),
        ("aws.region".into(), "us-east-1".into()),
        ("aws.accessKeyId".into(), "test".into()),
        ("aws.secretAccessKey".into(), "test".into()),
        ("streamName".into(), stream.into()),
        ("shardDiscoveryInterval".into(), "2s".into()),
    ];
    for (k, v) in extra {
        all.retain(|(key, _)| key != k);
        all.push((k.to_string(), v.to_string()));
    }
    all
}

fn refs(settings: &[(String, String)]) -> Vec<(&str, &str)> {
    settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

async fn put(client: &aws_sdk_kinesis::Client, stream: &str, key: &str, data: &str) {
    client
        .put_record()
        .stream_name(stream)
        .partition_key(key)
        .data(Blob::new(data.as_bytes().to_vec()))
        .send()
        .await
        .expect("PutRecord");
}

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

/// Writes `count` records over `keys` keys as "key:index" payloads.
async fn put_numbered(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    from: usize,
    count: usize,
    keys: usize,
) {
    for i in from..from + count {
        let key = format!("k{}", i % keys);
        put(client, stream, &key, &format!("{key}:{i}")).await;
    }
}

fn check_per_key_order(records: &[Record]) {
    let mut last: BTreeMap<String, usize> = BTreeMap::new();
    for r in records {
        let text = payload(r);
        let (key, index) = text.split_once(':').unwrap();
        let index: usize = index.parse().unwrap();
        if let Some(previous) = last.insert(key.to_string(), index) {
            assert!(previous < index, "key {key}: {index} after {previous}");
        }
    }
}

async fn reads_all_shards_then_resumes_exactly(mode: &str) {
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("src");
    kl.create_stream(&stream, 3).await;
    let client = kl.client().await;
    put_numbered(&client, &stream, 0, 60, 6).await;

    let s = settings(
        &kl,
        &stream,
        &[("readMode", mode), ("polling.interval", "200ms")],
    );
    let mut source = RunningSource::start(&refs(&s), None).await;
    let first = source.records(60, Duration::from_secs(60)).await;
    check_per_key_order(&first);
    let payloads: HashSet<String> = first.iter().map(payload).collect();
    assert_eq!(payloads.len(), 60, "duplicates in the first read");
    let shards: HashSet<&str> = first
        .iter()
        .map(|r| &r.metadata["kinesis.shardId"])
        .collect();
    assert!(shards.len() > 1, "records came from {shards:?} only");
    for r in &first {
        assert_eq!(r.metadata["kinesis.streamName"], stream);
        assert_eq!(r.metadata["opencdc.collection"], stream);
        let key = payload(r).split_once(':').unwrap().0.to_string();
        assert_eq!(r.metadata["kinesis.partitionKey"], key);
        assert!(r.metadata["kinesis.sequenceNumber"].len() > 20);
        assert!(
            r.metadata["opencdc.createdAt"].parse::<i128>().unwrap() > 1_600_000_000_000_000_000
        );
        assert!(
            matches!(r.key.as_ref().unwrap().data, Some(data::Data::RawData(ref k)) if k == key.as_bytes())
        );
    }
    let positions: HashSet<&Vec<u8>> = first.iter().map(|r| &r.position).collect();
    assert_eq!(positions.len(), 60, "positions are not unique");

    // Conduit acknowledged the first 25 only; then the pipeline stops.
    let acked = first[24].position.clone();
    source
        .ack(first[..25].iter().map(|r| r.position.clone()).collect())
        .await;
    let last = source.stop().await;
    assert_eq!(
        last, first[59].position,
        "Stop must return the last record sent"
    );
    source.teardown().await;

    // More records arrive while the pipeline is down.
    put_numbered(&client, &stream, 60, 30, 6).await;

    let mut resumed = RunningSource::start(&refs(&s), Some(acked)).await;
    let rest = resumed.records(65, Duration::from_secs(60)).await;
    let extra = resumed.drain(Duration::from_secs(3)).await;
    assert!(
        extra.is_empty(),
        "{} records beyond the unacked remainder",
        extra.len()
    );
    let expected: HashSet<String> = first[25..]
        .iter()
        .map(payload)
        .chain((60..90).map(|i| format!("k{}:{i}", i % 6)))
        .collect();
    let got: Vec<String> = rest.iter().map(payload).collect();
    assert_eq!(got.len(), expected.len());
    assert_eq!(got.iter().cloned().collect::<HashSet<_>>(), expected);
    check_per_key_order(&rest);
    resumed.teardown().await;
}

#[tokio::test]
async fn fanout_reads_every_shard_and_resumes_exactly() {
    reads_all_shards_then_resumes_exactly("fanout").await;
}

#[tokio::test]
async fn polling_reads_every_shard_and_resumes_exactly() {
    reads_all_shards_then_resumes_exactly("polling").await;
}

async fn open_shards(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
) -> Vec<aws_sdk_kinesis::types::Shard> {
    client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap()
        .shards
        .unwrap_or_default()
        .into_iter()
        .filter(|s| {
            s.sequence_number_range
                .as_ref()
                .and_then(|r| r.ending_sequence_number.as_ref())
                .is_none()
        })
        .collect()
}

/// Splits the first open shard in the middle of its hash range and waits for ACTIVE.
async fn split_first_open_shard(kl: &KinesisLocal, client: &aws_sdk_kinesis::Client, stream: &str) {
    let shards = open_shards(client, stream).await;
    kl.split_in_half(stream, &shards[0]).await;
}

async fn resharding_keeps_every_record_in_key_order(mode: &str) {
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("reshard");
    kl.create_stream(&stream, 2).await;
    let client = kl.client().await;
    let keys = 8;
    put_numbered(&client, &stream, 0, 40, keys).await;
    let s = settings(
        &kl,
        &stream,
        &[("readMode", mode), ("polling.interval", "200ms")],
    );
    let mut source = RunningSource::start(&refs(&s), None).await;
    let mut all = source.records(40, Duration::from_secs(60)).await;

    split_first_open_shard(&kl, &client, &stream).await;
    put_numbered(&client, &stream, 40, 40, keys).await;
    all.extend(source.records(40, Duration::from_secs(60)).await);

    // Merge two adjacent open shards.
    let mut shards = open_shards(&client, &stream).await;
    shards.sort_by_key(|s| {
        s.hash_key_range
            .as_ref()
            .unwrap()
            .starting_hash_key
            .parse::<u128>()
            .unwrap()
    });
    client
        .merge_shards()
        .stream_name(&stream)
        .shard_to_merge(&shards[0].shard_id)
        .adjacent_shard_to_merge(&shards[1].shard_id)
        .send()
        .await
        .expect("MergeShards");
    kl.wait_stream_active(&stream).await;
    put_numbered(&client, &stream, 80, 40, keys).await;
    all.extend(source.records(40, Duration::from_secs(60)).await);

    // Scale the whole stream.
    client
        .update_shard_count()
        .stream_name(&stream)
        .target_shard_count(4)
        .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
        .send()
        .await
        .expect("UpdateShardCount");
    kl.wait_stream_active(&stream).await;
    put_numbered(&client, &stream, 120, 40, keys).await;
    all.extend(source.records(40, Duration::from_secs(90)).await);

    let extra = source.drain(Duration::from_secs(3)).await;
    assert!(extra.is_empty(), "{} duplicate records", extra.len());
    let unique: HashSet<String> = all.iter().map(payload).collect();
    assert_eq!(unique.len(), 160);
    check_per_key_order(&all);
    source.teardown().await;
}

#[tokio::test]
async fn fanout_follows_split_merge_and_scaling() {
    resharding_keeps_every_record_in_key_order("fanout").await;
}

#[tokio::test]
async fn polling_follows_split_merge_and_scaling() {
    resharding_keeps_every_record_in_key_order("polling").await;
}

#[tokio::test]
async fn consumer_is_reused_and_deregistered_on_delete() {
    use conduit_connector_kinesis::proto::connector::v2::source;
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("consumer");
    kl.create_stream(&stream, 1).await;
    let client = kl.client().await;
    let arn = client
        .describe_stream_summary()
        .stream_name(&stream)
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap()
        .stream_arn;
    let consumers = || async {
        client
            .list_stream_consumers()
            .stream_arn(&arn)
            .send()
            .await
            .unwrap()
            .consumers
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.consumer_name)
            .collect::<Vec<_>>()
    };
    let s = settings(&kl, &stream, &[]);
    for _ in 0..2 {
        let source = RunningSource::start(&refs(&s), None).await;
        source.teardown().await;
    }
    // Derived from CONDUIT_CONNECTOR_ID (pipeline:kinesis in the harness), registered once.
    assert_eq!(
        consumers().await,
        vec!["conduit-pipeline-kinesis".to_string()]
    );

    // Deleting the connector: OnDeleted arrives without Configure.
    let plugin = support::plugin::PluginProcess::start_for_run().await;
    let map = support::plugin::config(&refs(&s));
    plugin
        .source()
        .lifecycle_on_deleted(source::lifecycle::on_deleted::Request { config: map })
        .await
        .expect("OnDeleted");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !consumers().await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "consumer still registered"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn stop_without_records_is_empty_and_teardown_is_fast() {
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("idle");
    kl.create_stream(&stream, 4).await;
    let s = settings(&kl, &stream, &[]);
    let source = RunningSource::start(&refs(&s), None).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(source.stop().await.is_empty());
    let started = std::time::Instant::now();
    source.teardown().await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "teardown took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_position_from_another_stream_is_refused() {
    let kl = KinesisLocal::start().await;
    let a = unique_stream_name("a");
    let b = unique_stream_name("b");
    kl.create_stream(&a, 1).await;
    kl.create_stream(&b, 1).await;
    let client = kl.client().await;
    put(&client, &a, "k", "x").await;
    let sa = settings(
        &kl,
        &a,
        &[("readMode", "polling"), ("polling.interval", "200ms")],
    );
    let mut source = RunningSource::start(&refs(&sa), None).await;
    let record = source.records(1, Duration::from_secs(30)).await.remove(0);
    source.teardown().await;
    let sb = settings(&kl, &b, &[("readMode", "polling")]);
    let err = RunningSource::try_start(&refs(&sb), Some(record.position))
        .await
        .err()
        .unwrap();
    assert!(err.contains(&a) && err.contains(&b), "{err}");
    let err = RunningSource::try_start(&refs(&sb), Some(b"garbage".to_vec()))
        .await
        .err()
        .unwrap();
    assert!(err.starts_with("Open:"), "{err}");
}

/// All resharding happens before the source starts, so children hold records that must not
/// be delivered before their parents' records.
#[tokio::test]
async fn children_are_read_only_after_their_parents() {
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("lineage");
    kl.create_stream(&stream, 2).await;
    let client = kl.client().await;
    let keys = 8;
    put_numbered(&client, &stream, 0, 40, keys).await;
    split_first_open_shard(&kl, &client, &stream).await;
    put_numbered(&client, &stream, 40, 40, keys).await;
    client
        .update_shard_count()
        .stream_name(&stream)
        .target_shard_count(2)
        .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
        .send()
        .await
        .expect("UpdateShardCount");
    kl.wait_stream_active(&stream).await;
    put_numbered(&client, &stream, 80, 40, keys).await;

    for mode in ["fanout", "polling"] {
        let s = settings(
            &kl,
            &stream,
            &[("readMode", mode), ("polling.interval", "200ms")],
        );
        let mut source = RunningSource::start(&refs(&s), None).await;
        let all = source.records(120, Duration::from_secs(90)).await;
        let extra = source.drain(Duration::from_secs(3)).await;
        assert!(
            extra.is_empty(),
            "{mode}: {} duplicate records",
            extra.len()
        );
        check_per_key_order(&all);
        source.teardown().await;
    }
}

/// Aggregates with the independent Python implementation (aws-kinesis-agg) in .tools/kpl-venv.
fn kpl_aggregate(records: &[(String, String)], max_size: usize) -> Vec<(String, Vec<u8>)> {
    use base64::Engine as _;
    use std::io::Write as _;
    let root = support::repo_root();
    let mut child = std::process::Command::new(root.join(".tools/kpl-venv/bin/python"))
        .arg(root.join("test/kpl/aggregate.py"))
        .args(["--max-size", &max_size.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run test/kpl/aggregate.py (run test/setup.sh first)");
    let mut input = String::new();
    for (key, data) in records {
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        input.push_str(
            &serde_json::json!({"partition_key": key, "explicit_hash_key": null, "data_b64": b64})
                .to_string(),
        );
        input.push('\n');
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let data = base64::engine::general_purpose::STANDARD
                .decode(v["data_b64"].as_str().unwrap())
                .unwrap();
            (v["partition_key"].as_str().unwrap().to_string(), data)
        })
        .collect()
}

#[tokio::test]
async fn kpl_aggregated_records_come_out_as_user_records_and_resume_inside_an_aggregate() {
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("kpl");
    kl.create_stream(&stream, 1).await;
    let client = kl.client().await;
    let users: Vec<(String, String)> = (0..30)
        .map(|i| (format!("user-{}", i % 5), format!("k{}:{i}", i % 5)))
        .collect();
    // Small aggregates: several Kinesis records of several user records each.
    let blobs = kpl_aggregate(&users, 200);
    assert!(blobs.len() > 2, "aggregator made {} records", blobs.len());
    for (key, data) in &blobs {
        client
            .put_record()
            .stream_name(&stream)
            .partition_key(key)
            .data(Blob::new(data.clone()))
            .send()
            .await
            .unwrap();
    }
    let s = settings(&kl, &stream, &[]);
    let mut source = RunningSource::start(&refs(&s), None).await;
    let records = source.records(30, Duration::from_secs(60)).await;
    let got: Vec<String> = records.iter().map(payload).collect();
    let want: Vec<String> = users.iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(got, want, "user records in order");
    for (record, (key, _)) in records.iter().zip(&users) {
        assert_eq!(&record.metadata["kinesis.partitionKey"], key);
        assert!(record.metadata.contains_key("kinesis.subSequenceNumber"));
    }
    // Conduit acked up to the middle of an aggregate; a restart continues inside it.
    let middle = records
        .iter()
        .position(|r| &r.metadata["kinesis.subSequenceNumber"] == "1")
        .expect("an aggregate with at least two user records");
    let acked = records[middle].position.clone();
    source.teardown().await;
    let mut resumed = RunningSource::start(&refs(&s), Some(acked)).await;
    let rest = resumed
        .records(30 - middle - 1, Duration::from_secs(60))
        .await;
    assert!(resumed.drain(Duration::from_secs(3)).await.is_empty());
    let rest: Vec<String> = rest.iter().map(payload).collect();
    assert_eq!(rest, want[middle + 1..].to_vec());
    resumed.teardown().await;

    // With de-aggregation off, the aggregates arrive as they are.
    let s = settings(&kl, &stream, &[("deaggregate", "false")]);
    let mut raw = RunningSource::start(&refs(&s), None).await;
    let whole = raw.records(blobs.len(), Duration::from_secs(60)).await;
    assert!(whole
        .iter()
        .all(|r| !r.metadata.contains_key("kinesis.subSequenceNumber")));
    raw.teardown().await;
}

/// Starting at LATEST while a closed parent exists: the parent is skipped (nothing new can
/// reach it) and its children are read, so new records are delivered and old ones are not.
#[tokio::test]
async fn latest_start_reads_only_new_records_even_after_a_reshard() {
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("latest");
    kl.create_stream(&stream, 1).await;
    let client = kl.client().await;
    put_numbered(&client, &stream, 0, 10, 4).await;
    split_first_open_shard(&kl, &client, &stream).await;
    put_numbered(&client, &stream, 10, 10, 4).await;

    for mode in ["fanout", "polling"] {
        let s = settings(
            &kl,
            &stream,
            &[
                ("startPosition", "latest"),
                ("readMode", mode),
                ("polling.interval", "200ms"),
            ],
        );
        let mut source = RunningSource::start(&refs(&s), None).await;
        // Give every reader time to subscribe before writing.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let from = if mode == "fanout" { 20 } else { 30 };
        put_numbered(&client, &stream, from, 10, 4).await;
        let records = source.records(10, Duration::from_secs(60)).await;
        let extra = source.drain(Duration::from_secs(3)).await;
        assert!(
            extra.is_empty(),
            "{mode}: {} unexpected records",
            extra.len()
        );
        let got: HashSet<String> = records.iter().map(payload).collect();
        let want: HashSet<String> = (from..from + 10)
            .map(|i| format!("k{}:{i}", i % 4))
            .collect();
        assert_eq!(got, want, "{mode}");
        source.teardown().await;
    }
}

#[tokio::test]
async fn read_lag_is_logged_every_lag_log_interval() {
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("lag");
    kl.create_stream(&stream, 2).await;
    let client = kl.client().await;
    put_numbered(&client, &stream, 0, 20, 8).await;
    let s = settings(&kl, &stream, &[("lagLogInterval", "1s")]);
    let mut source = RunningSource::start(&refs(&s), None).await;
    source.records(20, Duration::from_secs(30)).await;

    // After a second or two: one info line for the source with the summary's fields.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let line = loop {
        let found = source.plugin.stderr().into_iter().rev().find_map(|line| {
            let value: serde_json::Value = serde_json::from_str(&line).ok()?;
            let message = value["@message"].as_str()?;
            (message.starts_with("read lag") && value["shards_reporting"] == 2).then_some(value)
        });
        if let Some(value) = found {
            break value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no read lag line with both shards within 10 s; stderr:\n{}",
            source.plugin.stderr().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(line["@level"], "info", "{line}");
    assert_eq!(line["stream"], stream.as_str(), "{line}");
    assert_eq!(line["shards"], 2, "{line}");
    let max = line["max_behind_ms"].as_i64().expect("max_behind_ms");
    let median = line["median_behind_ms"].as_i64().expect("median_behind_ms");
    assert!(0 <= median && median <= max, "{line}");
    let furthest = line["furthest_shard"].as_str().expect("furthest_shard");
    assert!(furthest.starts_with("shardId-"), "{line}");
    let message = line["@message"].as_str().unwrap();
    assert!(
        message.contains("median") && message.contains("2 shards"),
        "{line}"
    );
    source.teardown().await;
}
