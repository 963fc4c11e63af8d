//! Pipelines that ran the Go Kinesis connector (conduitio-labs/conduit-connector-kinesis v0.2.0)
//! move over without edits (issue #15 item 4):
//!
//! * the source resumes from the Go connector's JSON position (kinesis-local, over gRPC);
//! * Go-syntax `partitionKeyTemplate`s give the Go connector's partition keys, checked record by
//!   record against the Go connector itself in the real Conduit.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use conduit_connector_kinesis::proto::opencdc::v1::{data, Record};
use support::kinesis_local::{unique_stream_name, KinesisLocal};
use support::source::RunningSource;

fn source_settings(kl: &KinesisLocal, stream: &str, mode: &str) -> Vec<(String, String)> {
    [
        ("aws.url", kl.endpoint.as_str()),
        ("aws.region", "us-east-1"),
        ("aws.accessKeyId", "test"),
        ("aws.secretAccessKey", "test"),
        ("streamName", stream),
        ("readMode", mode),
        ("polling.interval", "200ms"),
        ("shardDiscoveryInterval", "2s"),
        // The Go pipeline may have started from LATEST: a migrated position still reads the
        // other shards from their oldest record.
        ("startFromLatest", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
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

/// One record written: its payload, shard and sequence number.
struct Written {
    payload: String,
    shard: String,
    sequence: String,
}

async fn resumes_from_a_go_connector_position(mode: &str) {
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("gopos");
    kl.create_stream(&stream, 3).await;
    let client = kl.client().await;
    let mut written = Vec::new();
    for i in 0..45 {
        let key = format!("k{}", i % 9);
        let payload = format!("{key}:{i}");
        let out = client
            .put_record()
            .stream_name(&stream)
            .partition_key(&key)
            .data(Blob::new(payload.as_bytes().to_vec()))
            .send()
            .await
            .expect("PutRecord");
        written.push(Written {
            payload,
            shard: out.shard_id,
            sequence: out.sequence_number,
        });
    }
    let shards: BTreeSet<&str> = written.iter().map(|w| w.shard.as_str()).collect();
    assert_eq!(shards.len(), 3, "the keys landed on {shards:?} only");

    // The Go connector delivered up to the 3rd record of one shard: its position, as its
    // source writes it (json.Marshal of kinesisPosition).
    let shard = written[0].shard.clone();
    let on_shard: Vec<&Written> = written.iter().filter(|w| w.shard == shard).collect();
    let last = on_shard[2];
    let go_position = format!(
        r#"{{"sequenceNumber":"{}","shardId":"{}"}}"#,
        last.sequence, shard
    );

    let settings = source_settings(&kl, &stream, mode);
    let settings: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut source = RunningSource::start(&settings, Some(go_position.into_bytes())).await;

    // That shard after the sequence number, every other shard from its oldest record.
    let expected: BTreeSet<String> = written
        .iter()
        .filter(|w| w.shard != shard)
        .chain(on_shard[3..].iter().copied())
        .map(|w| w.payload.clone())
        .collect();
    let got = source
        .records(expected.len(), Duration::from_secs(60))
        .await;
    let extra = source.drain(Duration::from_secs(3)).await;
    assert!(
        extra.is_empty(),
        "unexpected records: {:?}",
        extra.iter().map(payload).collect::<Vec<_>>()
    );
    let got_payloads: BTreeSet<String> = got.iter().map(payload).collect();
    assert_eq!(got_payloads.len(), got.len(), "duplicates");
    assert_eq!(got_payloads, expected);

    // Exactly one warning says what happened.
    let stderr = source.plugin.stderr();
    let warnings: Vec<&String> = stderr
        .iter()
        .filter(|line| line.contains("Go Kinesis connector"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr:#?}");
    assert!(
        warnings[0].contains("WARN") || warnings[0].contains("warn"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains(&shard), "{}", warnings[0]);
    assert!(warnings[0].contains("TRIM_HORIZON"), "{}", warnings[0]);

    // The positions it sends now are this connector's, covering every shard.
    let position = &got.last().unwrap().position;
    let decoded = conduit_connector_kinesis::source::position::Position::decode(position)
        .expect("positions after a migration are in this connector's format");
    assert_eq!(decoded.stream, stream);
    source.teardown().await;
}

#[tokio::test]
async fn polling_source_resumes_from_a_go_connector_position() {
    resumes_from_a_go_connector_position("polling").await;
}

#[tokio::test]
async fn fanout_source_resumes_from_a_go_connector_position() {
    resumes_from_a_go_connector_position("fanout").await;
}

#[tokio::test]
async fn an_unusable_go_connector_position_fails_open_and_says_why() {
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("gobad");
    kl.create_stream(&stream, 1).await;
    let settings = source_settings(&kl, &stream, "polling");
    let settings: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let err = RunningSource::try_start(
        &settings,
        Some(br#"{"sequenceNumber":"not-a-number","shardId":"shardId-000000000000"}"#.to_vec()),
    )
    .await
    .err()
    .expect("Open must fail");
    assert!(err.contains("Go Kinesis connector"), "{err}");
    assert!(err.contains("sequenceNumber"), "{err}");
}
