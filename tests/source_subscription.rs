//! Subscription lifetime: Kinesis ends every SubscribeToShard after 300 s. This file holds the
//! long test (about five and a half minutes) on its own.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use conduit_connector_kinesis::proto::opencdc::v1::data;
use support::kinesis_local::{unique_stream_name, KinesisLocal};
use support::source::RunningSource;

fn payload(record: &conduit_connector_kinesis::proto::opencdc::v1::Record) -> String {
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

/// Records keep flowing across the server ending the subscription at 300 s (renewal left to
/// Kinesis) and across proactive renewals every 10 s: nothing lost, nothing repeated.
#[tokio::test]
async fn subscriptions_are_renewed_without_gaps() {
    let kl = KinesisLocal::start().await;
    let client = kl.client().await;
    let mut sources = Vec::new();
    for renew_after in ["10m", "10s"] {
        let stream = unique_stream_name("renew");
        kl.create_stream(&stream, 2).await;
        let settings: Vec<(String, String)> = vec![
            ("aws.url".into(), kl.endpoint.clone()),
            ("aws.region".into(), "us-east-1".into()),
            ("aws.accessKeyId".into(), "test".into()),
            ("aws.secretAccessKey".into(), "test".into()),
            ("streamName".into(), stream.clone()),
            ("subscription.renewAfter".into(), renew_after.into()),
        ];
        let refs: Vec<(&str, &str)> = settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        sources.push((stream, RunningSource::start(&refs, None).await));
    }

    // One record per stream every 10 s for 330 s: past the server's 300 s end.
    let mut written = 0;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(330) {
        for (stream, _) in &sources {
            client
                .put_record()
                .stream_name(stream)
                .partition_key(format!("k{}", written % 4))
                .data(Blob::new(format!("r{written}").into_bytes()))
                .send()
                .await
                .expect("PutRecord");
        }
        written += 1;
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    for (stream, mut source) in sources {
        let records = source.records(written, Duration::from_secs(60)).await;
        let extra = source.drain(Duration::from_secs(5)).await;
        assert!(
            extra.is_empty(),
            "{stream}: {} repeated records",
            extra.len()
        );
        let got: HashSet<String> = records.iter().map(payload).collect();
        let expected: HashSet<String> = (0..written).map(|i| format!("r{i}")).collect();
        assert_eq!(got, expected, "{stream}");
        source.teardown().await;
    }
}
