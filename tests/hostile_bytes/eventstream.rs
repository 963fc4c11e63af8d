//! AWS event-stream frames of SubscribeToShard (`source::eventstream`) and the JSON event
//! they carry (`source::subscribe::parse_event`).

use conduit_connector_kinesis::testing::parse_event;
use conduit_connector_kinesis::testing::{encode_message, Message, MessageBuffer};
use proptest::prelude::*;
use proptest::sample::Index;

use super::common::*;

/// Pushes `wire` in pieces cut at `cuts` and collects messages until an error or the end.
fn feed(wire: &[u8], cuts: &[Index]) -> Result<Vec<Message>, String> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
    points.push(0);
    points.push(wire.len());
    points.sort_unstable();
    let mut buffer = MessageBuffer::default();
    let mut out = Vec::new();
    for pair in points.windows(2) {
        buffer.push(&wire[pair[0]..pair[1]]);
        loop {
            match buffer.next_message() {
                Ok(Some(message)) => out.push(message),
                Ok(None) => break,
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    assert!(buffer.pending_len() <= wire.len());
    Ok(out)
}

fn check(wire: &[u8], cuts: &[Index]) {
    if let Err(message) = bounded("event stream", wire.len(), || feed(wire, cuts)) {
        names_one_of(&message, &["event stream"]);
    }
}

fn header_value() -> impl Strategy<Value = String> {
    ".{0,30}"
}

fn frame() -> impl Strategy<Value = (Vec<(String, String)>, Vec<u8>)> {
    (
        prop::collection::vec(
            (
                prop_oneof![
                    Just(":message-type".to_string()),
                    Just(":event-type".to_string()),
                    Just(":exception-type".to_string()),
                    Just(":content-type".to_string()),
                    "[a-z:-]{1,20}",
                ],
                header_value(),
            ),
            0..5,
        ),
        prop::collection::vec(any::<u8>(), 0..200),
    )
}

fn encode(headers: &[(String, String)], payload: &[u8]) -> Vec<u8> {
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    encode_message(&pairs, payload)
}

fn event_payload() -> impl Strategy<Value = serde_json::Value> {
    (
        prop::collection::vec(
            (
                "[1-9][0-9]{0,55}",
                prop::collection::vec(any::<u8>(), 0..40),
                ".{0,10}",
                proptest::option::of(0u32..2_000_000_000),
            ),
            0..4,
        ),
        proptest::option::of("[1-9][0-9]{0,55}"),
        prop::collection::vec("shardId-[0-9]{12}", 0..3),
    )
        .prop_map(|(records, continuation, children)| {
            use base64::Engine as _;
            let records: Vec<_> = records
                .into_iter()
                .map(|(seq, data, key, arrival)| {
                    serde_json::json!({
                        "SequenceNumber": seq,
                        "Data": base64::engine::general_purpose::STANDARD.encode(data),
                        "PartitionKey": key,
                        "ApproximateArrivalTimestamp": arrival.map(f64::from),
                    })
                })
                .collect();
            let children: Vec<_> = children
                .into_iter()
                .map(
                    |id| serde_json::json!({"ShardId": id, "ParentShards": [], "HashKeyRange": {}}),
                )
                .collect();
            serde_json::json!({
                "Records": records,
                "ContinuationSequenceNumber": continuation,
                "ChildShards": children,
                "MillisBehindLatest": 0,
            })
        })
}

fn check_event(payload: &[u8]) {
    if let Err(message) = bounded("SubscribeToShard event", payload.len(), || {
        parse_event(payload)
    }) {
        names_one_of(&message, &["SubscribeToShard event"]);
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn frames_round_trip((headers, payload) in frame(), cuts in prop::collection::vec(any::<Index>(), 0..4)) {
        let wire = encode(&headers, &payload);
        let messages = feed(&wire, &cuts).unwrap();
        prop_assert_eq!(messages.len(), 1);
        let message = &messages[0];
        prop_assert_eq!(&message.payload[..], &payload[..]);
        // The last value of each classifying header is kept.
        let last = |name: &str| headers.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        prop_assert_eq!(message.message_type.clone(), last(":message-type"));
        prop_assert_eq!(message.event_type.clone(), last(":event-type"));
        prop_assert_eq!(message.exception_type.clone(), last(":exception-type"));
    }

    #[test]
    fn arbitrary_bytes(bytes in junk(), cuts in prop::collection::vec(any::<Index>(), 0..3)) {
        check(&bytes, &cuts);
    }

    #[test]
    fn mutated_frames((headers, payload) in frame(), edits in edits(), cuts in prop::collection::vec(any::<Index>(), 0..3)) {
        let mut wire = encode(&headers, &payload);
        wire.extend(encode(&[], b"second"));
        check(&mutate(&wire, &edits), &cuts);
    }

    #[test]
    fn mutated_frames_with_fixed_checksums((headers, payload) in frame(), edits in edits()) {
        // Checksums recomputed after the edit, so the header parser sees the damage.
        let wire = encode(&headers, &payload);
        let mut bad = mutate(&wire, &edits);
        if bad.len() >= 16 {
            let total = bad.len() as u32;
            bad[0..4].copy_from_slice(&total.to_be_bytes());
            let headers_len = u32::from_be_bytes(bad[4..8].try_into().unwrap()).min(total - 16);
            bad[4..8].copy_from_slice(&headers_len.to_be_bytes());
            let prelude = crc32fast::hash(&bad[0..8]);
            bad[8..12].copy_from_slice(&prelude.to_be_bytes());
            let end = bad.len() - 4;
            let crc = crc32fast::hash(&bad[..end]);
            bad[end..].copy_from_slice(&crc.to_be_bytes());
        }
        check(&bad, &[]);
    }

    #[test]
    fn events_round_trip(event in event_payload()) {
        let bytes = serde_json::to_vec(&event).unwrap();
        let parsed = parse_event(&bytes).unwrap();
        let records = event["Records"].as_array().unwrap();
        prop_assert_eq!(parsed.records.len(), records.len());
        for (got, sent) in parsed.records.iter().zip(records) {
            use base64::Engine as _;
            prop_assert_eq!(&got.sequence, sent["SequenceNumber"].as_str().unwrap());
            prop_assert_eq!(
                &got.data,
                &base64::engine::general_purpose::STANDARD.decode(sent["Data"].as_str().unwrap()).unwrap()
            );
            prop_assert_eq!(&got.partition_key, sent["PartitionKey"].as_str().unwrap());
        }
        prop_assert_eq!(parsed.continuation.as_deref(), event["ContinuationSequenceNumber"].as_str());
        prop_assert_eq!(parsed.child_shards.len(), event["ChildShards"].as_array().unwrap().len());
    }

    #[test]
    fn arbitrary_event_payloads(bytes in junk()) {
        check_event(&bytes);
    }

    #[test]
    fn mutated_event_payloads(event in event_payload(), edits in edits()) {
        check_event(&mutate(&serde_json::to_vec(&event).unwrap(), &edits));
    }
}

#[test]
fn corpus_replays() {
    for (name, bytes) in corpus("eventstream") {
        println!("event stream corpus {name}");
        check(&bytes, &[]);
    }
    for (name, bytes) in corpus("subscribe_event") {
        println!("SubscribeToShard event corpus {name}");
        check_event(&bytes);
    }
}

#[test]
fn a_4_gib_prelude_is_an_error_not_an_allocation() {
    for total in [u32::MAX, 0x8000_0000, 17 * 1024 * 1024] {
        let mut prelude = total.to_be_bytes().to_vec();
        prelude.extend(0u32.to_be_bytes());
        let crc = crc32fast::hash(&prelude);
        prelude.extend(crc.to_be_bytes());
        let message = bounded("event stream", prelude.len(), || feed(&prelude, &[])).unwrap_err();
        names_one_of(&message, &["event stream"]);
        assert!(message.contains(&total.to_string()), "{message}");
    }
    // The largest valid length: waits for the bytes without reserving them.
    let total = 16 * 1024 * 1024u32;
    let mut prelude = total.to_be_bytes().to_vec();
    prelude.extend(0u32.to_be_bytes());
    let crc = crc32fast::hash(&prelude);
    prelude.extend(crc.to_be_bytes());
    let messages = bounded("event stream", prelude.len(), || feed(&prelude, &[])).unwrap();
    assert!(messages.is_empty());
}
