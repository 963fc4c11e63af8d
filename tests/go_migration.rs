//! Pipelines that ran the Go Kinesis connector (conduitio-labs/conduit-connector-kinesis v0.2.0)
//! move over without edits (issue #15 item 4):
//!
//! * the source resumes from the Go connector's JSON position (kinesis-local, over gRPC);
//! * Go-syntax `partitionKeyTemplate`s give the Go connector's partition keys, checked record by
//!   record against the Go connector itself in the real Conduit.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use conduit_connector_kinesis::proto::opencdc::v1::{data, Record};
use support::conduit::{destination, pipeline_yaml, source, Conduit, ConduitHome, Db};
use support::destination::read_all;
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
    let decoded = conduit_connector_kinesis::testing::Position::decode(position)
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

// ---------------------------------------------------------------------------------------------
// Partition keys: the Go connector and this one side by side in the real Conduit

/// This connector and the Go connector: both plugins are named `kinesis`.
const OURS: &str = concat!("standalone:kinesis@v", env!("CARGO_PKG_VERSION"));
const GO: &str = "standalone:kinesis@v0.2.0";

/// Records per pipeline (over all of the generator's collections).
const RECORDS: usize = 60;

/// `.tools/bin/conduit` and the Go connector's binary (built from its v0.2.0 tag by
/// test/setup.sh), or `None` after printing `SKIPPED: Conduit not installed`.
fn conduit_and_go_connector() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let tools = support::repo_root().join(".tools/bin");
    let (conduit, go) = (
        tools.join("conduit"),
        tools.join("conduit-connector-kinesis-go"),
    );
    let missing: Vec<String> = [&conduit, &go]
        .into_iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        Some((conduit, go))
    } else {
        eprintln!(
            "SKIPPED: Conduit not installed ({} missing)",
            missing.join(", ")
        );
        None
    }
}

/// Each stored record's position (the join key: both connectors write the record as
/// `opencdc/json`, the generator gives every record its own position) → its partition key.
fn keys_by_position(stored: &[support::destination::Stored]) -> BTreeMap<String, String> {
    stored
        .iter()
        .map(|r| {
            let json: serde_json::Value = serde_json::from_slice(&r.data).unwrap_or_else(|e| {
                panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&r.data))
            });
            let position = json["position"].as_str().expect("position").to_string();
            (position, r.partition_key.clone())
        })
        .collect()
}

#[tokio::test]
async fn go_partition_key_templates_give_the_go_connectors_keys() {
    let Some((binary, go_binary)) = conduit_and_go_connector() else {
        return;
    };
    let kl = KinesisLocal::start().await;
    let client = kl.client().await;
    // Two collections: structured payloads {id: int, name: string} and raw payloads; the
    // generator's keys are raw words. Schemas are off so that payloads reach both destinations
    // as Conduit's protobuf Struct (numbers are float64 in Go; see destination/README.md for
    // Avro-decoded integers).
    let count = RECORDS.to_string();
    let generator = |structured_only: bool| {
        let mut settings = vec![
            ("collections.users.format.type", "structured"),
            ("collections.users.format.options.id", "int"),
            ("collections.users.format.options.name", "string"),
            ("collections.users.operations", "create,update,snapshot"),
            ("recordCount", count.as_str()),
            ("rate", "200"),
            ("sdk.schema.extract.payload.enabled", "false"),
            ("sdk.schema.extract.key.enabled", "false"),
        ];
        if !structured_only {
            settings.extend([
                ("collections.events.format.type", "raw"),
                ("collections.events.format.options.id", "int"),
                ("collections.events.operations", "create"),
            ]);
        }
        settings
    };
    let cases = [
        ("key", "{{ .Key }}", false),
        ("id", "{{ .Payload.After.id }}", true),
        (
            "collection",
            r#"{{ index .Metadata "opencdc.collection" }}-{{- .Operation -}} -{{ .Key }}"#,
            false,
        ),
    ];
    let mut pipelines = Vec::new();
    let mut streams = Vec::new();
    for (name, template, structured_only) in cases {
        let go_stream = unique_stream_name(&format!("go-{name}"));
        let our_stream = unique_stream_name(&format!("ours-{name}"));
        kl.create_stream(&go_stream, 1).await;
        kl.create_stream(&our_stream, 1).await;
        let settings = |stream: &str| -> Vec<(String, String)> {
            [
                ("streamName", stream),
                ("aws.url", kl.endpoint.as_str()),
                ("aws.region", "us-east-1"),
                ("aws.accessKeyId", "test"),
                ("aws.secretAccessKey", "test"),
                ("partitionKeyTemplate", template),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
        };
        let go_settings = settings(&go_stream);
        let our_settings = settings(&our_stream);
        let go_refs: Vec<(&str, &str)> = go_settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let our_refs: Vec<(&str, &str)> = our_settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let generator = generator(structured_only);
        // One source, two destinations: both get the same records.
        let yaml = pipeline_yaml(
            name,
            &[
                source("gen", "builtin:generator", &generator),
                destination("go", GO, &go_refs),
                destination("ours", OURS, &our_refs),
            ],
        );
        pipelines.push((format!("{name}.yaml"), yaml));
        streams.push((name, template, go_stream, our_stream, RECORDS));
    }
    let pipelines: Vec<(&str, String)> = pipelines
        .iter()
        .map(|(n, y)| (n.as_str(), y.clone()))
        .collect();
    let home = ConduitHome::new(&pipelines);
    std::fs::copy(
        &go_binary,
        home.connectors().join("conduit-connector-kinesis-go"),
    )
    .expect("copy the Go connector into connectors/");
    let conduit = Conduit::start_without(&binary, &home, Db::InMemory, &[], &["AWS_CA_BUNDLE"]);

    for (name, template, go_stream, our_stream, expected) in &streams {
        let deadline = Instant::now() + Duration::from_secs(120);
        let (go, ours) = loop {
            let go = read_all(&client, go_stream).await;
            let ours = read_all(&client, our_stream).await;
            if go.len() >= *expected && ours.len() >= *expected {
                break (go, ours);
            }
            assert!(
                Instant::now() < deadline,
                "{name}: {} records through the Go connector, {} through ours, {expected} \
                 expected\n{}",
                go.len(),
                ours.len(),
                conduit.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let go = keys_by_position(&go);
        let ours = keys_by_position(&ours);
        assert_eq!(
            go.len(),
            *expected,
            "{name}: records through the Go connector"
        );
        assert_eq!(ours.len(), *expected, "{name}: records through ours");
        let mut differ = Vec::new();
        for (position, go_key) in &go {
            let our_key = ours
                .get(position)
                .unwrap_or_else(|| panic!("{name}: ours lacks the record at {position}"));
            if our_key != go_key {
                differ.push((position.clone(), go_key.clone(), our_key.clone()));
            }
        }
        assert!(
            differ.is_empty(),
            "{name} ({template}): {} of {} keys differ, e.g. {:?}",
            differ.len(),
            go.len(),
            &differ[..differ.len().min(3)]
        );
        if *name == "collection" {
            // Both collections (structured and raw) and several operations went through.
            let kinds: BTreeSet<String> = go
                .values()
                .map(|k| k.split("-[").next().unwrap().to_string())
                .collect();
            assert!(
                kinds.iter().any(|k| k.starts_with("events-"))
                    && kinds.iter().any(|k| k.starts_with("users-"))
                    && kinds.len() >= 3,
                "{kinds:?}"
            );
        }
        let sample: Vec<&String> = go.values().take(2).collect();
        eprintln!("{name} ({template}): {expected} keys identical, e.g. {sample:?}");
    }

    // One info line with the translation per destination of ours.
    let translated: Vec<serde_json::Value> = conduit
        .log_entries()
        .into_iter()
        .filter(|e| {
            e.to_string()
                .contains("is a Go template; it renders as the Handlebars")
        })
        .collect();
    assert_eq!(translated.len(), streams.len(), "{translated:#?}");
    drop(conduit);
}
