//! Kinesis carries records between pipelines unchanged: the destination writes OpenCDC JSON,
//! a source with unwrapOpenCDC turns it back into the original records.

mod support;

use std::time::Duration;

use conduit_connector_kinesis::proto::opencdc::v1::{Change, Operation, Record};
use support::destination::{raw, structured, RunningDestination};
use support::kinesis_local::{unique_stream_name, KinesisLocal};
use support::source::RunningSource;

#[tokio::test]
async fn records_survive_a_round_trip_through_a_stream() {
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("carry");
    kl.create_stream(&stream, 2).await;
    let common: Vec<(&str, &str)> = vec![
        ("aws.url", kl.endpoint.as_str()),
        ("aws.region", "us-east-1"),
        ("aws.accessKeyId", "test"),
        ("aws.secretAccessKey", "test"),
        ("streamName", stream.as_str()),
    ];

    let originals: Vec<Record> = (0..20)
        .map(|i| Record {
            position: format!("upstream-{i}").into_bytes(),
            operation: [Operation::Create, Operation::Update, Operation::Delete, Operation::Snapshot][i % 4] as i32,
            metadata: [
                ("opencdc.collection".to_string(), "users".to_string()),
                ("trace".to_string(), format!("t-{i} <&>")),
                ("empty".to_string(), String::new()),
            ]
            .into(),
            key: if i % 2 == 0 {
                raw(format!("user-{i}").as_bytes())
            } else {
                structured(serde_json::json!({"id": i, "region": "eu"}))
            },
            payload: Some(Change {
                before: if i % 4 == 1 { structured(serde_json::json!({"name": "old", "age": 1.5})) } else { None },
                after: if i % 4 == 2 { None } else { structured(serde_json::json!({"name": format!("n{i}"), "tags": ["a", "b"], "nested": {"x": null}})) },
            }),
        })
        .collect();

    let mut dest = RunningDestination::start(&common).await;
    dest.send_each(&originals).await;
    let acks = dest.acks(originals.len()).await;
    assert!(acks.iter().all(|a| a.error.is_empty()), "{acks:?}");
    dest.teardown().await;

    let mut with_unwrap = common.clone();
    with_unwrap.push(("unwrapOpenCDC", "true"));
    with_unwrap.push(("readMode", "polling"));
    with_unwrap.push(("polling.interval", "200ms"));
    let mut source = RunningSource::start(&with_unwrap, None).await;
    let mut received = source
        .records(originals.len(), Duration::from_secs(60))
        .await;
    source.teardown().await;

    // Shards interleave; compare by the original position carried in the payload's record.
    received.sort_by_key(|r| r.metadata["trace"].to_string());
    let mut expected = originals.clone();
    expected.sort_by_key(|r| r.metadata["trace"].to_string());
    for (got, want) in received.iter().zip(&expected) {
        assert_ne!(
            got.position, want.position,
            "the source gives its own positions"
        );
        assert_eq!(got.operation, want.operation);
        assert_eq!(got.metadata, want.metadata);
        assert_eq!(got.key, want.key);
        assert_eq!(got.payload, want.payload);
    }
}
