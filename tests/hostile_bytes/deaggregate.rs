//! KPL aggregates (`source::deaggregate`): a blob is either a valid aggregate, split into its
//! user records, or else delivered whole as one plain record. There is no error to report,
//! so the property is: never a panic, never an allocation a length field asked for, and no
//! byte lost.

use conduit_connector_kinesis::testing::{deaggregate, UserRecord, MAGIC};
use md5::{Digest, Md5};
use proptest::prelude::*;

use super::common::*;

#[derive(Debug, Clone)]
struct Aggregate {
    keys: Vec<String>,
    hash_keys: Vec<String>,
    /// (partition key index, explicit hash key index, data)
    records: Vec<(u64, Option<u64>, Vec<u8>)>,
}

fn field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    put_varint(out, (number << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn number(out: &mut Vec<u8>, number: u64, value: u64) {
    put_varint(out, number << 3);
    put_varint(out, value);
}

/// The protobuf `AggregatedRecord`, written the way the KPL writes it.
fn body(aggregate: &Aggregate) -> Vec<u8> {
    let mut out = Vec::new();
    for key in &aggregate.keys {
        field(&mut out, 1, key.as_bytes());
    }
    for key in &aggregate.hash_keys {
        field(&mut out, 2, key.as_bytes());
    }
    for (pk, ehk, data) in &aggregate.records {
        let mut record = Vec::new();
        number(&mut record, 1, *pk);
        if let Some(ehk) = ehk {
            number(&mut record, 2, *ehk);
        }
        field(&mut record, 3, data);
        field(&mut out, 3, &record);
    }
    out
}

fn seal(body: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(body);
    out.extend_from_slice(&Md5::digest(body));
    out
}

fn aggregate() -> impl Strategy<Value = Aggregate> {
    (
        prop::collection::vec(".{0,12}", 1..4),
        prop::collection::vec("[1-9][0-9]{0,38}", 0..3),
    )
        .prop_flat_map(|(keys, hash_keys)| {
            let (nk, nh) = (keys.len() as u64, hash_keys.len() as u64);
            let hash_index = if nh == 0 {
                Just(None).boxed()
            } else {
                proptest::option::of(0..nh).boxed()
            };
            let records = prop::collection::vec(
                (0..nk, hash_index, prop::collection::vec(any::<u8>(), 0..40)),
                1..6,
            );
            (Just(keys), Just(hash_keys), records)
        })
        .prop_map(|(keys, hash_keys, records)| Aggregate {
            keys,
            hash_keys,
            records,
        })
}

fn check(blob: &[u8]) {
    let records = bounded("aggregate", blob.len(), || deaggregate("outer", blob));
    let plain = records.len() == 1 && records[0].sub_sequence.is_none();
    if plain {
        assert_eq!(
            records[0].data, blob,
            "a blob that is not an aggregate is kept whole"
        );
        assert_eq!(records[0].partition_key, "outer");
    } else {
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record.sub_sequence, Some(i as u64));
        }
    }
}

/// Re-seals a mutated body so that the MD5 check passes and the protobuf decoder sees it.
fn check_resealed(body: &[u8]) {
    check(&seal(body));
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn round_trip(aggregate in aggregate()) {
        let records = deaggregate("outer", &seal(&body(&aggregate)));
        let want: Vec<UserRecord> = aggregate
            .records
            .iter()
            .enumerate()
            .map(|(i, (pk, ehk, data))| UserRecord {
                partition_key: aggregate.keys[*pk as usize].clone(),
                explicit_hash_key: ehk.map(|h| aggregate.hash_keys[h as usize].clone()),
                data: data.clone(),
                sub_sequence: Some(i as u64),
            })
            .collect();
        prop_assert_eq!(records, want);
    }

    #[test]
    fn arbitrary_bytes(bytes in junk()) {
        check(&bytes);
        let mut magic = MAGIC.to_vec();
        magic.extend(&bytes);
        check(&magic);
        check_resealed(&bytes);
    }

    #[test]
    fn mutated_aggregates(aggregate in aggregate(), edits in edits()) {
        let body = body(&aggregate);
        // Damage to the sealed blob: the MD5 no longer matches, so it stays one record.
        check(&mutate(&seal(&body), &edits));
        // Damage to the protobuf under a matching MD5.
        check_resealed(&mutate(&body, &edits));
    }
}

#[test]
fn corpus_replays() {
    for (name, bytes) in corpus("deaggregate") {
        println!("aggregate corpus {name}");
        check(&bytes);
        // The corpus holds protobuf bodies too: sealed, they reach the decoder.
        check_resealed(&bytes);
    }
}

#[test]
fn a_4_gib_data_field_is_no_allocation() {
    // Record with a data field declaring 4 GiB, and a key table entry declaring 2^62 bytes.
    for declared in [u64::from(u32::MAX), 1 << 62] {
        let mut record = Vec::new();
        number(&mut record, 1, 0);
        put_varint(&mut record, (3 << 3) | 2);
        put_varint(&mut record, declared);
        record.extend(b"short");
        let mut body = Vec::new();
        field(&mut body, 1, b"key");
        field(&mut body, 3, &record);
        check_resealed(&body);

        let mut table = Vec::new();
        put_varint(&mut table, (1 << 3) | 2);
        put_varint(&mut table, declared);
        check_resealed(&table);
    }
}
