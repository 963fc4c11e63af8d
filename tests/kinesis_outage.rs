//! The Kinesis endpoint goes away for 30 s (every connection cut, new ones refused) while a
//! source and a destination run through it (issue #13): both recover by themselves, nothing is
//! lost or repeated, and the logs say what happened without a storm.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use conduit_connector_kinesis::proto::opencdc::v1::{data, Record};
use support::destination::{raw_record, read_all, RunningDestination};
use support::kinesis_local::{unique_stream_name, KinesisLocal};
use support::outage_proxy::OutageProxy;
use support::source::RunningSource;

const OUTAGE: Duration = Duration::from_secs(30);
/// After the endpoint is back: how long recovery may take (at most one capped backoff, plus
/// a subscription or iterator to renew).
const RECOVERY: Duration = Duration::from_secs(30);
/// Log lines the plugin may write about the outage: the first failure, one report per 20 s,
/// a failed shard listing and the recovery, whatever the number of shards or lanes (before
/// reports were shared, the 8-shard fan-out source wrote 6 lines per shard).
const MAX_OUTAGE_LINES: usize = 10;
/// Enough shards that per-shard logging would show.
const SOURCE_SHARDS: i32 = 8;

fn settings<'a>(
    proxy: &'a OutageProxy,
    stream: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut all = vec![
        ("aws.url", proxy.url.as_str()),
        ("aws.region", "us-east-1"),
        ("aws.accessKeyId", "test"),
        ("aws.secretAccessKey", "test"),
        ("streamName", stream),
    ];
    all.extend_from_slice(extra);
    all
}

async fn put_numbered(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    range: std::ops::Range<usize>,
) {
    for i in range {
        client
            .put_record()
            .stream_name(stream)
            .partition_key(format!("k{}", i % 8))
            .data(Blob::new(format!("r{i}").into_bytes()))
            .send()
            .await
            .expect("PutRecord");
    }
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

/// Plugin log lines (JSON) written since line `from`, as (level, message) pairs.
fn lines_since(stderr: &[String], from: usize) -> Vec<(String, String)> {
    stderr[from.min(stderr.len())..]
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .map(|entry| {
            let level = entry["@level"].as_str().unwrap_or_default().to_string();
            (level, entry.to_string())
        })
        .collect()
}

/// The outage's log lines: bounded in number, and they say what is going on.
fn check_outage_logs(what: &str, lines: &[(String, String)]) {
    let all: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    eprintln!(
        "{what}: {} log lines during the outage:\n{}",
        lines.len(),
        all.join("\n")
    );
    assert!(
        lines.len() <= MAX_OUTAGE_LINES,
        "{what}: {} log lines during a {OUTAGE:?} outage (a storm):\n{}",
        lines.len(),
        all.join("\n")
    );
    assert!(
        lines.iter().any(|(level, line)| level == "warn"
            && line.contains("retry")
            && line.contains("\"attempt\":")
            && line.contains("\"retry_in_ms\":")
            && line.contains("\"failing_for_s\":")),
        "{what}: no warning with the retry state during the outage:\n{}",
        all.join("\n")
    );
    assert!(
        lines
            .iter()
            .any(|(level, line)| level == "info" && line.contains("succeeds again")),
        "{what}: no line saying the connector recovered:\n{}",
        all.join("\n")
    );
}

async fn source_survives_an_outage(mode: &str) {
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("outage-src");
    kl.create_stream(&stream, SOURCE_SHARDS).await;
    let client = kl.client().await;
    let proxy = Arc::new(OutageProxy::start(&kl.endpoint).await);
    put_numbered(&client, &stream, 0..50).await;

    let s = settings(
        &proxy,
        &stream,
        &[("readMode", mode), ("polling.interval", "200ms")],
    );
    let mut source = RunningSource::start(&s, None).await;
    let first = source.records(50, Duration::from_secs(60)).await;
    source
        .ack(first.iter().map(|r| r.position.clone()).collect())
        .await;

    let log_start = source.plugin.stderr().len();
    let outage = proxy.outage(OUTAGE);
    // Written straight to the server while the connector cannot reach it.
    put_numbered(&client, &stream, 50..100).await;
    outage.await.unwrap();
    let back = Instant::now();
    let rest = source.records(50, RECOVERY + Duration::from_secs(30)).await;
    eprintln!(
        "{mode}: recovered {:?} after the endpoint came back",
        back.elapsed()
    );
    let extra = source.drain(Duration::from_secs(3)).await;

    let payloads: Vec<String> = first
        .iter()
        .chain(&rest)
        .chain(&extra)
        .map(payload)
        .collect();
    let unique: BTreeSet<&String> = payloads.iter().collect();
    assert_eq!(unique.len(), 100, "records missing: {payloads:?}");
    assert_eq!(payloads.len(), 100, "records repeated: {payloads:?}");
    check_outage_logs(mode, &lines_since(&source.plugin.stderr(), log_start));
    source.teardown().await;
}

#[tokio::test]
async fn fanout_source_recovers_from_an_endpoint_outage() {
    source_survives_an_outage("fanout").await;
}

#[tokio::test]
async fn polling_source_recovers_from_an_endpoint_outage() {
    source_survives_an_outage("polling").await;
}

#[tokio::test]
async fn destination_recovers_from_an_endpoint_outage() {
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("outage-dst");
    kl.create_stream(&stream, 2).await;
    let proxy = Arc::new(OutageProxy::start(&kl.endpoint).await);
    let s = settings(&proxy, &stream, &[("sdk.record.format", "raw")]);
    let mut destination = RunningDestination::start(&s).await;
    let records: Vec<Record> = (0..100)
        .map(|i| {
            raw_record(
                &format!("p{i}"),
                &format!("k{}", i % 8),
                format!("r{i}").as_bytes(),
            )
        })
        .collect();
    destination.send_each(&records[..50]).await;
    let acks = destination.acks(50).await;
    assert!(acks.iter().all(|a| a.error.is_empty()), "{acks:?}");

    let log_start = destination.plugin.stderr().len();
    let outage = proxy.outage(OUTAGE);
    destination.send_each(&records[50..]).await;
    outage.await.unwrap();
    let acks = destination.acks(50).await;
    let nacks: Vec<_> = acks.iter().filter(|a| !a.error.is_empty()).collect();
    assert!(
        nacks.is_empty(),
        "records nacked during the outage: {nacks:?}"
    );
    let positions: Vec<String> = acks
        .iter()
        .map(|a| String::from_utf8(a.position.clone()).unwrap())
        .collect();
    assert_eq!(
        positions,
        (50..100).map(|i| format!("p{i}")).collect::<Vec<_>>()
    );

    let client = kl.client().await;
    let stored = read_all(&client, &stream).await;
    let mut data: Vec<String> = stored
        .iter()
        .map(|s| String::from_utf8(s.data.clone()).unwrap())
        .collect();
    data.sort();
    let mut expected: Vec<String> = (0..100).map(|i| format!("r{i}")).collect();
    expected.sort();
    assert_eq!(data, expected, "every record stored exactly once");
    check_outage_logs(
        "destination",
        &lines_since(&destination.plugin.stderr(), log_start),
    );
    destination.teardown().await;
}
