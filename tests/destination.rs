//! The destination against kinesis-local, driven over gRPC as Conduit drives it.

mod support;

use std::collections::HashMap;

use conduit_connector_kinesis::proto::opencdc::v1::{Change, Operation, Record};
use support::destination::{raw, raw_record, read_all, structured, RunningDestination};
use support::kinesis_local::{unique_stream_name, KinesisLocal};

fn base(kl: &KinesisLocal, stream: &str) -> Vec<(String, String)> {
    vec![
        ("aws.url".into(), kl.endpoint.clone()),
        ("aws.region".into(), "us-east-1".into()),
        ("aws.accessKeyId".into(), "test".into()),
        ("aws.secretAccessKey".into(), "test".into()),
        ("streamName".into(), stream.into()),
    ]
}

fn settings<'a>(
    base: &'a [(String, String)],
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut all: Vec<(&str, &str)> = base
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .collect();
    all.extend_from_slice(extra);
    all
}

#[tokio::test]
async fn writes_records_with_keys_and_acks_in_order() {
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("dest");
    kl.create_stream(&stream, 2).await;
    let base = base(&kl, &stream);
    let mut dest =
        RunningDestination::start(&settings(&base, &[("sdk.record.format", "raw")])).await;

    let records: Vec<Record> = (0..200)
        .map(|i| {
            raw_record(
                &format!("pos-{i}"),
                &format!("key-{}", i % 7),
                format!("payload-{i}").as_bytes(),
            )
        })
        .collect();
    dest.send_each(&records[..150]).await;
    dest.send_batch(records[150..].to_vec()).await;
    let acks = dest.acks(200).await;
    for (i, ack) in acks.iter().enumerate() {
        assert_eq!(
            ack.position,
            format!("pos-{i}").into_bytes(),
            "ack {i} out of order"
        );
        assert_eq!(ack.error, "", "record {i} nacked");
    }
    dest.stop(b"pos-199").await;
    dest.teardown().await;

    let stored = read_all(&kl.client().await, &stream).await;
    assert_eq!(stored.len(), 200);
    let mut seen: HashMap<String, Vec<usize>> = HashMap::new();
    for s in &stored {
        let text = String::from_utf8(s.data.clone()).unwrap();
        let i: usize = text.strip_prefix("payload-").unwrap().parse().unwrap();
        assert_eq!(s.partition_key, format!("key-{}", i % 7));
        seen.entry(s.partition_key.clone()).or_default().push(i);
    }
    // Per key, sequence order equals send order.
    for (key, order) in seen {
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "order of {key}");
    }
}

#[tokio::test]
async fn oversized_record_is_nacked_and_the_rest_lands() {
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("big");
    kl.create_stream(&stream, 1).await;
    let base = base(&kl, &stream);
    let mut dest =
        RunningDestination::start(&settings(&base, &[("sdk.record.format", "raw")])).await;
    let big = vec![b'x'; 1024 * 1024]; // data alone is 1 MiB; with its key it is over the limit
    let records = vec![
        raw_record("a", "k1", b"small-1"),
        raw_record("b", "k2", &big),
        raw_record("c", "k3", b"small-2"),
    ];
    dest.send_batch(records).await;
    let acks = dest.acks(3).await;
    assert_eq!(acks[0].error, "");
    assert_eq!(acks[2].error, "");
    let error = &acks[1].error;
    assert!(
        error.contains("\"b\"") && error.contains("1048578 bytes") && error.contains("1048576"),
        "{error}"
    );
    dest.teardown().await;
    let stored = read_all(&kl.client().await, &stream).await;
    // Different keys may land in either order.
    let mut data: Vec<_> = stored.iter().map(|s| s.data.clone()).collect();
    data.sort();
    assert_eq!(data, vec![b"small-1".to_vec(), b"small-2".to_vec()]);
}

#[tokio::test]
async fn routes_by_collection_and_by_template_and_creates_streams() {
    let kl = KinesisLocal::start().await;
    let orders = unique_stream_name("orders");
    let users = unique_stream_name("users");
    kl.create_stream(&orders, 1).await;
    let base: Vec<(String, String)> = base(&kl, "")
        .into_iter()
        .filter(|(k, _)| k != "streamName")
        .collect();

    // No streamName: opencdc.collection decides. `users` does not exist yet and is created.
    let mut dest = RunningDestination::start(&settings(
        &base,
        &[
            ("sdk.record.format", "raw"),
            ("auto.create.streams", "true"),
            ("auto.create.mode", "provisioned"),
        ],
    ))
    .await;
    let mut records = Vec::new();
    for (i, collection) in [&orders, &users, &orders].into_iter().enumerate() {
        let mut r = raw_record(&format!("p{i}"), "k", format!("to-{collection}").as_bytes());
        r.metadata.insert("opencdc.collection", collection.clone());
        records.push(r);
    }
    let mut orphan = raw_record("p3", "k", b"nowhere");
    orphan.metadata.clear();
    records.push(orphan);
    dest.send_each(&records).await;
    let acks = dest.acks(4).await;
    assert_eq!(
        acks[..3]
            .iter()
            .map(|a| a.error.as_str())
            .collect::<Vec<_>>(),
        vec!["", "", ""]
    );
    assert!(
        acks[3].error.contains("opencdc.collection"),
        "{}",
        acks[3].error
    );
    dest.teardown().await;
    let client = kl.client().await;
    assert_eq!(read_all(&client, &orders).await.len(), 2);
    assert_eq!(read_all(&client, &users).await.len(), 1);

    // A `prefix-{{...}}` template picks the stream per record; a missing stream without
    // auto-create is nacked with its name.
    let regional = format!("{orders}-eu");
    kl.create_stream(&regional, 1).await;
    let template = format!("{orders}-{{{{Metadata.[region]}}}}");
    let mut dest = RunningDestination::start(&settings(
        &base,
        &[
            ("sdk.record.format", "raw"),
            ("streamName", template.as_str()),
        ],
    ))
    .await;
    let mut a = raw_record("t1", "k", b"templated");
    a.metadata.insert("region", "eu");
    let mut b = raw_record("t2", "k", b"missing");
    b.metadata.insert("region", "us");
    dest.send_each(&[a, b]).await;
    let acks = dest.acks(2).await;
    assert_eq!(acks[0].error, "");
    let missing = format!("\"{orders}-us\" does not exist");
    assert!(
        acks[1].error.contains(&missing) && acks[1].error.contains("auto.create.streams"),
        "{}",
        acks[1].error
    );
    dest.teardown().await;
    assert_eq!(read_all(&client, &regional).await.len(), 1);
}

#[tokio::test]
async fn partition_keys_from_template_fields_and_hash_keys() {
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("keys");
    kl.create_stream(&stream, 2).await;
    let base = base(&kl, &stream);
    let record = |pos: &str, key: serde_json::Value, after: serde_json::Value| Record {
        position: pos.as_bytes().to_vec(),
        operation: Operation::Create as i32,
        metadata: [("opencdc.collection".to_string(), "orders".to_string())].into(),
        key: structured(key),
        payload: Some(Change {
            before: None,
            after: structured(after),
        }),
    };

    let mut dest = RunningDestination::start(&settings(
        &base,
        &[(
            "partitionKeyTemplate",
            "{{lookup Metadata \"opencdc.collection\"}}/{{Payload.After.id}}",
        )],
    ))
    .await;
    dest.send_each(&[record(
        "a",
        serde_json::json!({"id": 1}),
        serde_json::json!({"id": 42, "tenant": "acme"}),
    )])
    .await;
    assert_eq!(dest.acks(1).await[0].error, "");
    dest.teardown().await;

    let mut dest = RunningDestination::start(&settings(
        &base,
        &[
            ("partitionKeyFields", "tenant,id"),
            ("explicitHashKeyTemplate", "{{Payload.After.hash}}"),
        ],
    ))
    .await;
    dest.send_each(&[
        record(
            "b",
            serde_json::json!({}),
            serde_json::json!({"id": 7, "tenant": "acme", "hash": "0"}),
        ),
        record(
            "c",
            serde_json::json!({}),
            serde_json::json!({"id": 8, "tenant": "acme", "hash": "not-a-number"}),
        ),
    ])
    .await;
    let acks = dest.acks(2).await;
    assert_eq!(acks[0].error, "");
    assert!(
        acks[1].error.contains("ExplicitHashKey") && acks[1].error.contains("\"c\""),
        "{}",
        acks[1].error
    );
    dest.teardown().await;

    // The record key, structured: values joined with `|` in field order.
    let mut dest = RunningDestination::start(
        &base
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    )
    .await;
    dest.send_each(&[record(
        "d",
        serde_json::json!({"region": "eu", "id": 5}),
        serde_json::json!({"x": 1}),
    )])
    .await;
    assert_eq!(dest.acks(1).await[0].error, "");
    dest.teardown().await;

    let mut keys: Vec<String> = read_all(&kl.client().await, &stream)
        .await
        .into_iter()
        .map(|s| s.partition_key)
        .collect();
    keys.sort();
    assert_eq!(keys, vec!["5|eu", "acme|7", "orders/42"]);
}

#[tokio::test]
async fn open_reports_a_missing_stream_and_go_templates_fail_configure() {
    let kl = KinesisLocal::start().await;
    let base = base(&kl, "does-not-exist");
    let err = RunningDestination::try_start(&settings(&base, &[]))
        .await
        .err()
        .unwrap();
    assert!(err.contains("\"does-not-exist\" was not found"), "{err}");
    // Go templates beyond the translated subset (tests/go_migration.rs) fail Configure with
    // the Handlebars suggestion.
    let err = RunningDestination::try_start(&settings(
        &base,
        &[("partitionKeyTemplate", "{{ .Key | printf \"%s\" }}")],
    ))
    .await
    .err()
    .unwrap();
    assert!(
        err.starts_with("Configure:") && err.contains("Go template") && err.contains("{{Key"),
        "{err}"
    );
    let _ = raw(b"");
}

/// AWS CBOR (the default) and AWS JSON calls store the same bytes: every byte value in the
/// data, multi-byte partition keys, large and empty-ish records. kinesis-local cannot show
/// which encoding arrived; that `protocol` selects the body's encoding and content type is
/// checked in tests/put_records_requests.rs.
#[tokio::test]
async fn cbor_and_json_protocols_store_the_same_records() {
    let kl = KinesisLocal::start().await;
    let records: Vec<Record> = (0..60)
        .map(|i: usize| {
            let mut data: Vec<u8> = (0..=255u8).cycle().skip(i).take(1 + i * 997).collect();
            data.push(i as u8);
            raw_record(&format!("pos-{i}"), &format!("clé-{i}-ü-\u{1F600}"), &data)
        })
        .collect();
    let mut stored_by_protocol = Vec::new();
    for protocol in ["cbor", "json"] {
        let stream = unique_stream_name(protocol);
        kl.create_stream(&stream, 2).await;
        let base = base(&kl, &stream);
        let mut dest = RunningDestination::start(&settings(
            &base,
            &[("sdk.record.format", "raw"), ("protocol", protocol)],
        ))
        .await;
        dest.send_batch(records.clone()).await;
        let acks = dest.acks(records.len()).await;
        assert!(
            acks.iter().all(|a| a.error.is_empty()),
            "{protocol}: {acks:?}"
        );
        dest.stop(b"pos-59").await;
        dest.teardown().await;
        let mut stored: Vec<(String, Vec<u8>)> = read_all(&kl.client().await, &stream)
            .await
            .into_iter()
            .map(|s| (s.partition_key, s.data))
            .collect();
        stored.sort();
        stored_by_protocol.push(stored);
    }
    let mut expected: Vec<(String, Vec<u8>)> = records
        .iter()
        .map(|r| {
            let key = match r.key.as_ref().and_then(|k| k.data.as_ref()) {
                Some(conduit_connector_kinesis::proto::opencdc::v1::data::Data::RawData(b)) => {
                    String::from_utf8(b.to_vec()).unwrap()
                }
                other => panic!("{other:?}"),
            };
            let after = r.payload.as_ref().and_then(|p| p.after.as_ref());
            let data = match after.and_then(|d| d.data.as_ref()) {
                Some(conduit_connector_kinesis::proto::opencdc::v1::data::Data::RawData(b)) => {
                    b.to_vec()
                }
                other => panic!("{other:?}"),
            };
            (key, data)
        })
        .collect();
    expected.sort();
    assert_eq!(stored_by_protocol[0], expected, "cbor");
    assert_eq!(stored_by_protocol[1], expected, "json");
}
