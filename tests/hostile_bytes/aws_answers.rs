//! AWS answers decoded by hand: CBOR items (`aws::cbor`), PutRecords answers in CBOR and JSON
//! (`destination::put::parse_response`) and error answers (`aws::signed::parse_service_error`).
//! GetRecords, ListShards and the other calls go through the AWS SDK's own decoders.

use std::borrow::Cow;

use conduit_connector_kinesis::testing::cbor::{self, Value, Writer};
use conduit_connector_kinesis::testing::{parse_response, EntryFailure};
use conduit_connector_kinesis::testing::{parse_service_error, Protocol};
use proptest::prelude::*;

use super::common::*;

/// The values our writer can write, as the reader gives them back.
fn value() -> impl Strategy<Value = Value<'static>> {
    let leaf = prop_oneof![
        any::<u64>().prop_map(Value::Unsigned),
        ".{0,20}".prop_map(|s| Value::Text(Cow::Owned(s))),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| Value::Bytes(Cow::Owned(b))),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (".{0,8}".prop_map(|s| Value::Text(Cow::Owned(s))), inner),
                0..6
            )
            .prop_map(Value::Map),
        ]
    })
}

fn write(writer: &mut Writer<'_>, value: &Value<'_>) {
    match value {
        Value::Unsigned(n) => writer.unsigned(*n),
        Value::Text(t) => writer.text(t),
        Value::Bytes(b) => writer.bytes(b),
        Value::Array(items) => {
            writer.array(items.len());
            for item in items {
                write(writer, item);
            }
        }
        Value::Map(entries) => {
            writer.map(entries.len());
            for (k, v) in entries {
                write(writer, k);
                write(writer, v);
            }
        }
        other => unreachable!("not generated: {other:?}"),
    }
}

fn encode(value: &Value<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut Writer(&mut out), value);
    out
}

fn check_cbor(bytes: &[u8]) {
    match bounded("CBOR", bytes.len(), || cbor::decode(bytes)) {
        Ok(_) => {}
        Err(e) => names_one_of(&e.to_string(), &["CBOR"]),
    }
}

/// A PutRecords answer: per entry, `None` (written) or an error code and message.
fn results() -> impl Strategy<Value = Vec<Option<(String, String)>>> {
    prop::collection::vec(proptest::option::of(("[A-Za-z]{1,30}", ".{0,30}")), 0..12)
}

fn cbor_answer(results: &[Option<(String, String)>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = Writer(&mut out);
    w.map(2);
    w.text("FailedRecordCount");
    w.unsigned(results.iter().filter(|r| r.is_some()).count() as u64);
    w.text("Records");
    w.array(results.len());
    for result in results {
        match result {
            None => {
                w.map(2);
                w.text("SequenceNumber");
                w.text("49590338271490256608559692538361571095921575989136588898");
                w.text("ShardId");
                w.text("shardId-000000000001");
            }
            Some((code, message)) => {
                w.map(2);
                w.text("ErrorCode");
                w.text(code);
                w.text("ErrorMessage");
                w.text(message);
            }
        }
    }
    out
}

fn json_answer(results: &[Option<(String, String)>]) -> Vec<u8> {
    let records: Vec<_> = results
        .iter()
        .map(|r| match r {
            None => serde_json::json!({"SequenceNumber": "1", "ShardId": "shardId-000000000001"}),
            Some((code, message)) => {
                serde_json::json!({"ErrorCode": code, "ErrorMessage": message})
            }
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"FailedRecordCount": 0, "Records": records})).unwrap()
}

fn expected(results: &[Option<(String, String)>]) -> Vec<Option<EntryFailure>> {
    results
        .iter()
        .map(|r| {
            r.as_ref().map(|(code, message)| EntryFailure {
                code: code.clone(),
                message: message.clone(),
            })
        })
        .collect()
}

fn check_put(protocol: Protocol, bytes: &[u8], entries: usize) {
    if let Err(message) = bounded("PutRecords", bytes.len(), || {
        parse_response(protocol, bytes, entries)
    }) {
        names_one_of(&message, &["PutRecords"]);
    }
}

fn check_service_error(protocol: Protocol, bytes: &[u8]) {
    let error = bounded("service error", bytes.len(), || {
        parse_service_error(400, None, protocol, bytes)
    });
    assert!(!error.message.is_empty());
    if let Some(code) = &error.code {
        assert!(!code.is_empty());
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn cbor_round_trip(value in value()) {
        let bytes = encode(&value);
        prop_assert_eq!(cbor::decode(&bytes).unwrap(), value);
    }

    #[test]
    fn cbor_arbitrary_bytes(bytes in junk()) {
        check_cbor(&bytes);
    }

    #[test]
    fn cbor_mutated(value in value(), edits in edits()) {
        check_cbor(&mutate(&encode(&value), &edits));
    }

    #[test]
    fn put_records_answers_round_trip(results in results()) {
        let want = expected(&results);
        prop_assert_eq!(parse_response(Protocol::Cbor, &cbor_answer(&results), results.len()).unwrap(), want.clone());
        prop_assert_eq!(parse_response(Protocol::Json, &json_answer(&results), results.len()).unwrap(), want);
    }

    #[test]
    fn put_records_arbitrary_bytes(bytes in junk(), entries in 0usize..4) {
        check_put(Protocol::Cbor, &bytes, entries);
        check_put(Protocol::Json, &bytes, entries);
    }

    #[test]
    fn put_records_mutated(results in results(), edits in edits()) {
        check_put(Protocol::Cbor, &mutate(&cbor_answer(&results), &edits), results.len());
        check_put(Protocol::Json, &mutate(&json_answer(&results), &edits), results.len());
    }

    #[test]
    fn service_errors_never_panic(bytes in junk(), code in "[A-Za-z#:.]{0,30}", message in ".{0,30}", edits in edits()) {
        check_service_error(Protocol::Cbor, &bytes);
        check_service_error(Protocol::Json, &bytes);
        let mut valid = Vec::new();
        let mut w = Writer(&mut valid);
        w.map(2);
        w.text("__type");
        w.text(&code);
        w.text("message");
        w.text(&message);
        check_service_error(Protocol::Cbor, &mutate(&valid, &edits));
        let json = serde_json::to_vec(&serde_json::json!({"__type": code, "message": message})).unwrap();
        check_service_error(Protocol::Json, &mutate(&json, &edits));
    }
}

#[test]
fn corpus_replays() {
    for (name, bytes) in corpus("cbor") {
        println!("CBOR corpus {name}");
        check_cbor(&bytes);
        check_put(Protocol::Cbor, &bytes, 1);
        check_service_error(Protocol::Cbor, &bytes);
    }
    for (name, bytes) in corpus("put_records_json") {
        println!("PutRecords JSON corpus {name}");
        check_put(Protocol::Json, &bytes, 1);
        check_service_error(Protocol::Json, &bytes);
    }
}

#[test]
fn huge_cbor_lengths_are_errors() {
    // Byte string, text, array and map heads declaring 2^64-1 items or bytes.
    for major in [2u8, 3, 4, 5] {
        let mut bytes = vec![(major << 5) | 27];
        bytes.extend(u64::MAX.to_be_bytes());
        let err = bounded("CBOR", bytes.len(), || cbor::decode(&bytes)).unwrap_err();
        names_one_of(&err.to_string(), &["CBOR"]);
        check_put(Protocol::Cbor, &bytes, 0);
    }
    // Nesting without end.
    let deep = vec![0x81; 100_000];
    names_one_of(&cbor::decode(&deep).unwrap_err().to_string(), &["CBOR"]);
    check_put(Protocol::Cbor, &deep, 0);
    let mut records = vec![0xA1, 0x67];
    records.extend(b"Records");
    records.extend([0x9F; 50_000]);
    check_put(Protocol::Cbor, &records, 0);
}
