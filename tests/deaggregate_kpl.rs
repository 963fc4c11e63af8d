//! Deaggregation against an independent KPL aggregator: PyPI's `aws-kinesis-agg`, driven by
//! `test/kpl/aggregate.py` in the virtualenv `test/setup.sh` creates (`.tools/kpl-venv`).
//!
//! Every user record that goes into the Python aggregator must come back out of
//! `source::deaggregate` exactly: partition key, explicit hash key, data, and sub-sequence
//! numbers `0, 1, ...` per aggregated record.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use conduit_connector_kinesis::testing::{deaggregate, is_aggregated, UserRecord};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Input {
    partition_key: String,
    explicit_hash_key: Option<String>,
    data_b64: String,
}

#[derive(Debug, Deserialize)]
struct Aggregated {
    partition_key: String,
    explicit_hash_key: Option<String>,
    data_b64: String,
    user_records: usize,
}

struct Blob {
    partition_key: String,
    explicit_hash_key: Option<String>,
    data: Vec<u8>,
    user_records: usize,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the Python aggregator over `records`.
fn aggregate_with_python(records: &[UserRecord], max_size: Option<usize>) -> Vec<Blob> {
    let python = repo_root().join(".tools/kpl-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run test/setup.sh (or make test) first",
        python.display()
    );
    let mut cmd = Command::new(&python);
    cmd.arg(repo_root().join("test/kpl/aggregate.py"));
    if let Some(max) = max_size {
        cmd.arg("--max-size").arg(max.to_string());
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", python.display()));

    let mut input = Vec::new();
    for r in records {
        let line = Input {
            partition_key: r.partition_key.clone(),
            explicit_hash_key: r.explicit_hash_key.clone(),
            data_b64: BASE64.encode(&r.data),
        };
        serde_json::to_writer(&mut input, &line).unwrap();
        input.push(b'\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("aggregate.py");
    writer.join().unwrap().expect("writing to aggregate.py");
    assert!(
        output.status.success(),
        "aggregate.py failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );

    String::from_utf8(output.stdout)
        .expect("UTF-8 output")
        .lines()
        .map(|line| {
            let a: Aggregated = serde_json::from_str(line).expect(line);
            Blob {
                partition_key: a.partition_key,
                explicit_hash_key: a.explicit_hash_key,
                data: BASE64.decode(&a.data_b64).expect("base64"),
                user_records: a.user_records,
            }
        })
        .collect()
}

/// Deaggregates every blob and checks the user records against `records`.
fn check_round_trip(records: &[UserRecord], blobs: &[Blob]) {
    let mut out: Vec<UserRecord> = Vec::new();
    for (i, blob) in blobs.iter().enumerate() {
        assert!(is_aggregated(&blob.data), "blob {i} lacks the magic");
        let users = deaggregate(&blob.partition_key, &blob.data);
        assert_eq!(users.len(), blob.user_records, "user records in blob {i}");
        let subs: Vec<Option<u64>> = users.iter().map(|u| u.sub_sequence).collect();
        let expected: Vec<Option<u64>> = (0..users.len() as u64).map(Some).collect();
        assert_eq!(subs, expected, "sub-sequence numbers of blob {i}");
        // aws-kinesis-agg gives the aggregate the keys of its first user record.
        assert_eq!(users[0].partition_key, blob.partition_key, "blob {i}");
        assert_eq!(
            users[0].explicit_hash_key, blob.explicit_hash_key,
            "blob {i}"
        );
        out.extend(users);
    }
    assert_eq!(out.len(), records.len());
    for (i, (got, want)) in out.iter().zip(records).enumerate() {
        assert_eq!(got.partition_key, want.partition_key, "user record {i}");
        assert_eq!(
            got.explicit_hash_key, want.explicit_hash_key,
            "user record {i}"
        );
        assert_eq!(got.data, want.data, "user record {i}");
    }
}

fn user(partition_key: &str, explicit_hash_key: Option<&str>, data: &[u8]) -> UserRecord {
    UserRecord {
        partition_key: partition_key.to_owned(),
        explicit_hash_key: explicit_hash_key.map(str::to_owned),
        data: data.to_vec(),
        sub_sequence: None,
    }
}

/// A mix of shared and unique partition keys (ASCII, non-ASCII, 256 characters), explicit hash
/// keys (shared, unique, the extremes of the hash range) and data (empty, binary, a few KiB).
fn random_records(rng: &mut StdRng, n: usize) -> Vec<UserRecord> {
    let shared_keys = ["orders", "users", "ключ", "キー", "k"];
    let shared_hash_keys = ["0", "170141183460469231731687303715884105728"];
    (0..n)
        .map(|i| {
            let partition_key = match rng.random_range(0..6) {
                0 => format!("unique-{i}"),
                1 => "p".repeat(256),
                2 => format!("{}-ü-{}", "x".repeat(rng.random_range(0..50)), i % 7),
                _ => shared_keys[rng.random_range(0..shared_keys.len())].to_owned(),
            };
            let explicit_hash_key = match rng.random_range(0..5) {
                0 => Some(shared_hash_keys[rng.random_range(0..2)].to_owned()),
                1 => Some(rng.random::<u128>().to_string()),
                2 => Some(u128::MAX.to_string()),
                _ => None,
            };
            let len = match rng.random_range(0..5) {
                0 => 0,
                1 => rng.random_range(1000..4000),
                _ => rng.random_range(1..200),
            };
            let data: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            UserRecord {
                partition_key,
                explicit_hash_key,
                data,
                sub_sequence: None,
            }
        })
        .collect()
}

#[test]
fn python_aggregates_come_back_exactly() {
    let mut rng = StdRng::seed_from_u64(2024);
    let records = random_records(&mut rng, 400);
    let blobs = aggregate_with_python(&records, None);
    assert_eq!(blobs.len(), 1, "400 small records fit into one aggregate");
    check_round_trip(&records, &blobs);
}

#[test]
fn python_aggregates_split_across_many_records() {
    let mut rng = StdRng::seed_from_u64(7);
    let records = random_records(&mut rng, 600);
    let blobs = aggregate_with_python(&records, Some(16 * 1024));
    assert!(blobs.len() > 20, "only {} aggregates", blobs.len());
    assert!(blobs.iter().all(|b| b.data.len() <= 16 * 1024));
    check_round_trip(&records, &blobs);
}

#[test]
fn python_single_and_tiny_records() {
    for records in [
        vec![user("only", None, b"one record")],
        vec![user("only", Some("42"), b"")],
        vec![
            user("a", None, b""),
            user("a", None, b""),
            user("b", Some("1"), b"\0"),
            user("a", Some("1"), b"\xff"),
        ],
    ] {
        let blobs = aggregate_with_python(&records, None);
        check_round_trip(&records, &blobs);
    }
}

#[test]
fn python_aggregate_with_broken_checksum_is_one_plain_record() {
    let records = vec![user("a", None, b"x"), user("b", None, b"y")];
    let mut blobs = aggregate_with_python(&records, None);
    assert_eq!(blobs.len(), 1);
    let blob = &mut blobs[0];
    let last = blob.data.len() - 1;
    blob.data[last] ^= 0x80;
    assert_eq!(
        deaggregate("outer-key", &blob.data),
        vec![UserRecord {
            partition_key: "outer-key".to_owned(),
            explicit_hash_key: None,
            data: blob.data.clone(),
            sub_sequence: None,
        }]
    );
}
