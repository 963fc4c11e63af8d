//! Source positions handed back by Conduit (`source::position`): this connector's binary ones
//! and, at Open, the Go connector's JSON ones (`decode_saved`).

use std::collections::BTreeMap;

use conduit_connector_kinesis::testing::{Position, ShardProgress};
use proptest::prelude::*;

use super::common::*;

fn sequence() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_string()),
        "[1-9][0-9]{0,55}",
        "[1-9][0-9]{100,128}",
    ]
}

fn shard_id() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..1_000_000_000_000).prop_map(|n| format!("shardId-{n:012}")),
        "[a-zA-Z0-9_-]{1,40}",
        ".{1,8}",
    ]
}

fn progress() -> impl Strategy<Value = ShardProgress> {
    prop_oneof![
        Just(ShardProgress::Finished),
        (sequence(), proptest::option::of(any::<u64>())).prop_map(|(sequence, sub_sequence)| {
            ShardProgress::After {
                sequence,
                sub_sequence,
            }
        }),
    ]
}

pub fn position() -> impl Strategy<Value = Position> {
    (
        ".{0,20}",
        prop::collection::btree_map(shard_id(), progress(), 0..8),
    )
        .prop_map(|(stream, shards): (String, BTreeMap<_, _>)| Position { stream, shards })
}

/// Decodes `bytes`: a position that re-encodes to exactly `bytes`, or an error naming the
/// position.
fn check(bytes: &[u8]) {
    let result = bounded("position", bytes.len(), || {
        Position::decode_versioned(bytes)
    });
    match result {
        Ok((position, version)) => assert_eq!(
            if version == 1 {
                position.encode_v1()
            } else {
                position.encode()
            },
            bytes,
            "decode accepts only canonical bytes (format version {version})"
        ),
        Err(e) => names_one_of(&e.to_string(), &["position"]),
    }
    if let Err(e) = Position::decode_for_stream(bytes, "orders") {
        names_one_of(&e.to_string(), &["position"]);
    }
    // What Open reads: also the Go connector's JSON positions.
    if let Err(e) = bounded("position", bytes.len(), || {
        Position::decode_saved(bytes, "orders")
    }) {
        names_one_of(&e.to_string(), &["position"]);
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn round_trip(position in position()) {
        let bytes = position.encode();
        prop_assert_eq!(Position::decode(&bytes).unwrap(), position);
    }

    #[test]
    fn arbitrary_bytes(bytes in junk()) {
        check(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_the_version_byte(mut bytes in junk(), v2 in any::<bool>()) {
        bytes.insert(0, if v2 { 0xA2 } else { 0xA1 });
        check(&bytes);
    }

    #[test]
    fn mutated_positions(position in position(), edits in edits()) {
        check(&mutate(&position.encode(), &edits));
    }

    #[test]
    fn mutated_version_1_positions(position in position(), edits in edits()) {
        check(&mutate(&position.encode_v1(), &edits));
    }

    #[test]
    fn round_trip_version_1(position in position()) {
        let bytes = position.encode_v1();
        prop_assert_eq!(Position::decode(&bytes).unwrap(), position);
    }
}

#[test]
fn corpus_replays() {
    for (name, bytes) in corpus("position") {
        println!("position corpus {name}");
        check(&bytes);
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn json_shaped_positions(sequence in "[0-9a-z\"]{0,60}", shard in ".{0,40}", extra in "[ ,:{}\"a-z0-9]{0,20}") {
        let json = format!(r#"{{"sequenceNumber":"{sequence}","shardId":"{shard}"{extra}}}"#);
        check(json.as_bytes());
    }
}

#[test]
fn go_connector_json_position_is_refused_by_decode() {
    let go = br#"{"sequenceNumber":"49590338271490256608559692538361571095921575989136588898","shardId":"shardId-000000000000"}"#;
    let message = Position::decode(go).unwrap_err().to_string();
    names_one_of(&message, &["source position"]);
    assert!(
        message.contains("reset the pipeline's position"),
        "{message}"
    );
}

#[test]
fn huge_declared_lengths_are_errors() {
    // Stream name of 2^63 bytes, shard count of 2^64-1, a shard id of 2^60 bytes.
    let mut name = vec![0xA1];
    put_varint(&mut name, 1 << 63);
    let mut count = vec![0xA1, 0];
    put_varint(&mut count, u64::MAX);
    let mut id = vec![0xA1, 0, 1];
    put_varint(&mut id, (1 << 60) | 1);
    let mut id_v2 = vec![0xA2, 0, 1];
    put_varint(&mut id_v2, (1 << 59) | 1);
    for bytes in [name, count, id, id_v2] {
        let err = bounded("position", bytes.len(), || Position::decode(&bytes)).unwrap_err();
        names_one_of(&err.to_string(), &["source position"]);
    }
}
