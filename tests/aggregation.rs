//! `aggregation.enabled` against kinesis-local, checked by independent readers: what the
//! destination wrote is read back with GetRecords and de-aggregated by PyPI's aws-kinesis-agg
//! (`test/kpl/deaggregate.py` in `.tools/kpl-venv`, from `test/setup.sh`), by this connector's
//! source and by the `consume` command, each of which must give exactly the user records sent:
//! data, partition keys, explicit hash keys and per-key order. Aggregates must sit on the
//! shard their user records hash to, also after a split. A Kinesis → Kinesis round trip with
//! aggregation on both writes keeps every record exactly once.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use conduit_connector_kinesis::proto::opencdc::v1::{Change, Operation, Record};
use md5::{Digest, Md5};
use serde::Deserialize;
use support::destination::{raw, raw_record, read_all, structured, RunningDestination, Stored};
use support::kinesis_local::{unique_stream_name, KinesisLocal};
use support::source::RunningSource;

const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// One user record as sent: partition key, explicit hash key, data.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct User {
    partition_key: String,
    explicit_hash_key: Option<String>,
    data: Vec<u8>,
}

fn common(kl: &KinesisLocal, stream: &str) -> Vec<(&'static str, String)> {
    vec![
        ("aws.url", kl.endpoint.clone()),
        ("aws.region", "us-east-1".into()),
        ("aws.accessKeyId", "test".into()),
        ("aws.secretAccessKey", "test".into()),
        ("streamName", stream.into()),
    ]
}

fn borrowed<'a>(settings: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    settings.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// `n` records from `first` on: 12 partition keys, every fifth record on keys of their own
/// with explicit hash keys (both ends of the hash range), data of varied length and bytes, one
/// record too large to share an aggregate.
fn users(first: usize, n: usize) -> Vec<User> {
    (first..first + n)
        .map(|i| {
            let (partition_key, explicit_hash_key) = if i % 5 == 0 {
                // Each of these keys stays on one shard (a key whose records go to several
                // shards goes through one call per change of shard, see aggregate::pack).
                if i % 10 == 0 {
                    (
                        format!("low-{}", i % 3),
                        Some((i as u128 * 7_919).to_string()),
                    )
                } else {
                    (
                        format!("high-{}", i % 3),
                        Some((u128::MAX - i as u128).to_string()),
                    )
                }
            } else {
                (format!("key-{}", i % 12), None)
            };
            let mut data = format!("record {i} ").into_bytes();
            data.extend((0..(i * 37) % 300).map(|b| (b * 31 + i) as u8));
            if i == first + 7 {
                data.resize(60_000, 0xAB);
            }
            User {
                partition_key,
                explicit_hash_key,
                data,
            }
        })
        .collect()
}

/// Records whose raw key is the partition key and whose `ehk` metadata the explicit hash key
/// template reads.
fn to_records(users: &[User], first: usize) -> Vec<Record> {
    users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let mut record = raw_record(
                &format!("pos-{}", first + i),
                &user.partition_key,
                &user.data,
            );
            if let Some(ehk) = &user.explicit_hash_key {
                record.metadata.insert("ehk", ehk);
            }
            record
        })
        .collect()
}

fn aggregating_destination(kl: &KinesisLocal, stream: &str) -> Vec<(&'static str, String)> {
    let mut settings = common(kl, stream);
    settings.extend([
        ("aggregation.enabled", "true".into()),
        ("sdk.record.format", "raw".into()),
        (
            "explicitHashKeyTemplate",
            r#"{{lookup Metadata "ehk"}}"#.into(),
        ),
    ]);
    settings
}

async fn write_acked(dest: &mut RunningDestination, records: Vec<Record>) {
    let n = records.len();
    dest.send_batch(records).await;
    let acks = dest.acks(n).await;
    assert!(acks.iter().all(|a| a.error.is_empty()), "{acks:?}");
}

/// Records of each key in the order read, for comparing per-key order.
fn by_key(users: &[User]) -> BTreeMap<String, Vec<User>> {
    let mut keys: BTreeMap<String, Vec<User>> = BTreeMap::new();
    for user in users {
        keys.entry(user.partition_key.clone())
            .or_default()
            .push(user.clone());
    }
    keys
}

#[derive(Deserialize)]
struct PythonUser {
    shard: String,
    partition_key: String,
    explicit_hash_key: Option<String>,
    data_b64: String,
}

fn deaggregate_with_python(stored: &[Stored]) -> Vec<(String, User)> {
    let root = support::repo_root();
    let python = root.join(".tools/kpl-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run test/setup.sh (or make test) first",
        python.display()
    );
    let mut child = Command::new(&python)
        .arg(root.join("test/kpl/deaggregate.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start deaggregate.py");
    let mut input = Vec::new();
    for s in stored {
        let line = serde_json::json!({
            "shard": s.shard,
            "sequence": s.sequence,
            "partition_key": s.partition_key,
            "data_b64": BASE64.encode(&s.data),
        });
        serde_json::to_writer(&mut input, &line).unwrap();
        input.push(b'\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("deaggregate.py");
    writer.join().unwrap().expect("writing to deaggregate.py");
    assert!(
        output.status.success(),
        "deaggregate.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let user: PythonUser = serde_json::from_str(line).expect("a JSON line");
            (
                user.shard,
                User {
                    partition_key: user.partition_key,
                    explicit_hash_key: user.explicit_hash_key,
                    data: BASE64.decode(user.data_b64).unwrap(),
                },
            )
        })
        .collect()
}

/// The hash key Kinesis places a user record by.
fn hash_of(user: &User) -> u128 {
    match &user.explicit_hash_key {
        Some(key) => key.parse().unwrap(),
        None => u128::from_be_bytes(Md5::digest(user.partition_key.as_bytes()).into()),
    }
}

async fn shard_ranges(kl: &KinesisLocal, stream: &str) -> HashMap<String, (u128, u128)> {
    let client = kl.client().await;
    let listed = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .expect("ListShards");
    listed
        .shards()
        .iter()
        .map(|shard| {
            let range = shard.hash_key_range().unwrap();
            (
                shard.shard_id().to_string(),
                (
                    range.starting_hash_key().parse().unwrap(),
                    range.ending_hash_key().parse().unwrap(),
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn aggregates_read_back_as_the_exact_user_records_by_aws_kinesis_agg_the_source_and_consume()
{
    let kl = KinesisLocal::start().await;
    let stream = unique_stream_name("agg");
    kl.create_stream(&stream, 2).await;
    let settings = aggregating_destination(&kl, &stream);
    let mut dest = RunningDestination::start(&borrowed(&settings)).await;

    // Before a split: three groups.
    let mut sent = Vec::new();
    for group in 0..3 {
        let first = group * 100;
        let users = users(first, 100);
        write_acked(&mut dest, to_records(&users, first)).await;
        sent.extend(users);
    }
    let stored_before_split = read_all(&kl.client().await, &stream).await.len();

    // Split the first shard; the destination learns of it from the first misplaced aggregate.
    let client = kl.client().await;
    let shards = client
        .list_shards()
        .stream_name(&stream)
        .send()
        .await
        .expect("ListShards")
        .shards
        .unwrap_or_default();
    kl.split_in_half(&stream, &shards[0]).await;
    for group in 3..6 {
        let first = group * 100;
        let users = users(first, 100);
        write_acked(&mut dest, to_records(&users, first)).await;
        sent.extend(users);
    }
    dest.teardown().await;

    let stored = read_all(&kl.client().await, &stream).await;
    let aggregates = stored.iter().filter(|s| s.data.starts_with(&MAGIC)).count();
    // 600 user records; the 6 records of 60 kB go alone.
    assert!(
        aggregates >= 6 && stored.len() <= 80,
        "{} Kinesis records ({aggregates} aggregates) for {} user records",
        stored.len(),
        sent.len()
    );
    assert_eq!(
        stored.len() - aggregates,
        6,
        "only the large records go alone"
    );

    // aws-kinesis-agg: every user record exactly, in per-key order.
    let python = deaggregate_with_python(&stored);
    let python_users: Vec<User> = python.iter().map(|(_, u)| u.clone()).collect();
    let mut sorted_python = python_users.clone();
    sorted_python.sort();
    let mut sorted_sent = sent.clone();
    sorted_sent.sort();
    assert_eq!(
        sorted_python, sorted_sent,
        "aws-kinesis-agg reads exactly the user records"
    );

    // Each user record lies on the shard it hashes to, except in the aggregates packed by the
    // map from before the split (the first call of each lane after it): the group written
    // right after the split, and none later.
    let ranges = shard_ranges(&kl, &stream).await;
    let misplaced: Vec<&User> = python
        .iter()
        .filter(|(shard, user)| {
            let (lo, hi) = ranges[shard];
            let hash = hash_of(user);
            hash < lo || hash > hi
        })
        .map(|(_, user)| user)
        .collect();
    let index_of = |user: &User| -> usize {
        let text = String::from_utf8_lossy(&user.data);
        text.split(' ').nth(1).unwrap().parse().unwrap()
    };
    eprintln!(
        "{} Kinesis records ({} before the split) for {} user records; {} user records on \
         another shard than they hash to",
        stored.len(),
        stored_before_split,
        sent.len(),
        misplaced.len()
    );
    for user in &misplaced {
        let i = index_of(user);
        assert!(
            (300..400).contains(&i),
            "record {i} is on another shard than it hashes to, though written after the \
             destination saw the split"
        );
    }
    assert!(stored_before_split < stored.len());

    // Per-key order: read_all lists the parent before its children, and a misplaced aggregate
    // (the earliest after the split) lands on the lower child, listed first: in that order
    // every key's records are as sent.
    let sent_by_key = by_key(&sent);
    let python_by_key = by_key(&python_users);
    assert_eq!(python_by_key, sent_by_key, "aws-kinesis-agg: per-key order");

    // This connector's source (polling, de-aggregating): the same user records.
    let mut source_settings = common(&kl, &stream);
    source_settings.extend([
        ("readMode", "polling".into()),
        ("polling.interval", "200ms".into()),
    ]);
    let mut source = RunningSource::start(&borrowed(&source_settings), None).await;
    let read = source.records(sent.len(), Duration::from_secs(60)).await;
    let extra = source.drain(Duration::from_secs(2)).await;
    source.teardown().await;
    assert!(extra.is_empty(), "{} records more than sent", extra.len());
    let source_users: Vec<User> = read
        .iter()
        .map(|record| {
            let key = match record.key.as_ref().and_then(|k| k.data.as_ref()) {
                Some(conduit_connector_kinesis::proto::opencdc::v1::data::Data::RawData(b)) => {
                    String::from_utf8(b.to_vec()).unwrap()
                }
                other => panic!("unexpected key {other:?}"),
            };
            let data = match record
                .payload
                .as_ref()
                .and_then(|p| p.after.as_ref())
                .and_then(|d| d.data.as_ref())
            {
                Some(conduit_connector_kinesis::proto::opencdc::v1::data::Data::RawData(b)) => {
                    b.to_vec()
                }
                other => panic!("unexpected payload {other:?}"),
            };
            User {
                partition_key: key,
                explicit_hash_key: record
                    .metadata
                    .get("kinesis.explicitHashKey")
                    .map(str::to_string),
                data,
            }
        })
        .collect();
    let source_by_key = by_key(&source_users);
    assert_eq!(
        source_by_key.keys().collect::<Vec<_>>(),
        sent_by_key.keys().collect::<Vec<_>>()
    );
    for (key, records) in &sent_by_key {
        if misplaced.is_empty() {
            assert_eq!(&source_by_key[key], records, "order of key {key}");
        } else {
            let mut got = source_by_key[key].clone();
            let mut want = records.clone();
            got.sort();
            want.sort();
            assert_eq!(got, want, "records of key {key}");
        }
    }
    // Before the split, every key's records come in the order sent.
    for (key, records) in by_key(&sent[..300]) {
        assert_eq!(
            &source_by_key[&key][..records.len()],
            &records[..],
            "order of key {key} before the split"
        );
    }

    // consume: the same user records, in per-key order before the split.
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(support::plugin_binary())
            .args([
                "consume",
                &stream,
                "--mode",
                "polling",
                "--max-records",
                &sent.len().to_string(),
                "--duration",
                "60s",
                "--endpoint-url",
                &kl.endpoint,
            ])
            .envs(kl.aws_env())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("consume ends")
    .expect("run consume");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let consumed: Vec<User> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            let data = match (value.get("data"), value.get("dataBase64")) {
                (Some(text), _) => text.as_str().unwrap().as_bytes().to_vec(),
                (None, Some(b64)) => BASE64.decode(b64.as_str().unwrap()).unwrap(),
                _ => panic!("no data in {line}"),
            };
            User {
                partition_key: value["partitionKey"].as_str().unwrap().to_string(),
                explicit_hash_key: None,
                data,
            }
        })
        .collect();
    assert_eq!(consumed.len(), sent.len());
    let consumed_by_key = by_key(&consumed);
    for (key, records) in by_key(&sent[..300]) {
        let want: Vec<&[u8]> = records.iter().map(|u| u.data.as_slice()).collect();
        let got: Vec<&[u8]> = consumed_by_key[&key][..records.len()]
            .iter()
            .map(|u| u.data.as_slice())
            .collect();
        assert_eq!(got, want, "consume: order of key {key} before the split");
    }
    let mut consumed_data: Vec<_> = consumed.iter().map(|u| &u.data).collect();
    let mut sent_data: Vec<_> = sent.iter().map(|u| &u.data).collect();
    consumed_data.sort();
    sent_data.sort();
    assert_eq!(consumed_data, sent_data);
}

#[tokio::test]
async fn a_kinesis_to_kinesis_round_trip_with_aggregation_keeps_every_record_once() {
    let kl = KinesisLocal::start().await;
    let first = unique_stream_name("agg-a");
    let second = unique_stream_name("agg-b");
    kl.create_stream(&first, 2).await;
    kl.create_stream(&second, 3).await;

    let originals: Vec<Record> = (0..400)
        .map(|i| Record {
            position: format!("upstream-{i}").into_bytes(),
            operation: [Operation::Create, Operation::Update, Operation::Delete][i % 3] as i32,
            metadata: [("trace".to_string(), format!("t-{i:04}"))].into(),
            key: raw(format!("user-{}", i % 17).as_bytes()),
            payload: Some(Change {
                before: None,
                after: structured(serde_json::json!({"n": i, "text": "x".repeat(i % 90)})),
            }),
        })
        .collect();

    let with = |stream: &str, extra: &[(&'static str, &str)]| {
        let mut settings = common(&kl, stream);
        settings.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        settings
    };
    let aggregate = [("aggregation.enabled", "true")];
    let read = [
        ("unwrapOpenCDC", "true"),
        ("readMode", "polling"),
        ("polling.interval", "200ms"),
    ];

    // Conduit → first stream (aggregated).
    let mut dest = RunningDestination::start(&borrowed(&with(&first, &aggregate))).await;
    write_acked(&mut dest, originals[..200].to_vec()).await;
    write_acked(&mut dest, originals[200..].to_vec()).await;
    dest.teardown().await;
    let stored = read_all(&kl.client().await, &first).await;
    assert!(
        stored.len() <= 16, // two groups, at most one aggregate per lane (4) and shard (2)
        "{} Kinesis records for 400",
        stored.len()
    );

    // First stream → second stream (aggregated again), as a Kinesis → Kinesis pipeline.
    let mut source = RunningSource::start(&borrowed(&with(&first, &read)), None).await;
    let relayed = source
        .records(originals.len(), Duration::from_secs(60))
        .await;
    assert!(source.drain(Duration::from_secs(2)).await.is_empty());
    source.teardown().await;
    let mut dest = RunningDestination::start(&borrowed(&with(&second, &aggregate))).await;
    write_acked(&mut dest, relayed).await;
    dest.teardown().await;

    let mut source = RunningSource::start(&borrowed(&with(&second, &read)), None).await;
    let mut received = source
        .records(originals.len(), Duration::from_secs(60))
        .await;
    let extra = source.drain(Duration::from_secs(2)).await;
    source.teardown().await;
    assert!(extra.is_empty(), "{} records more than sent", extra.len());

    received.sort_by_key(|r| r.metadata["trace"].to_string());
    let traces: Vec<&str> = received.iter().map(|r| &r.metadata["trace"]).collect();
    let expected: Vec<String> = (0..400).map(|i| format!("t-{i:04}")).collect();
    assert_eq!(traces, expected, "every record exactly once");
    for (got, want) in received.iter().zip(&originals) {
        assert_eq!(got.operation, want.operation);
        assert_eq!(got.key, want.key);
        assert_eq!(got.payload, want.payload);
    }
}
