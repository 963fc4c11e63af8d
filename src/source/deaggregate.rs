//! Splitting KPL aggregated records into user records.
//!
//! Producers that use the Kinesis Producer Library (or `aws-kinesis-agg` and friends) pack
//! several user records into one Kinesis record (KPL `aggregation-format.md`):
//!
//! ```text
//! F3 89 9A C2 | protobuf AggregatedRecord | MD5 of the protobuf bytes (16 bytes)
//!
//! message AggregatedRecord {             // proto2
//!   repeated string partition_key_table     = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records                 = 3;
//! }
//! message Record {
//!   required uint64 partition_key_index     = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes  data                    = 3;
//!   repeated Tag    tags                    = 4;
//! }
//! message Tag { required string key = 1; optional string value = 2; }
//! ```
//!
//! The key tables are zero-based arrays that several records may index. Each user record's
//! sub-sequence number is its index in `records`, as the KCL numbers them.
//!
//! Like the KCL (`AggregatorUtil.deaggregate`), a blob is an ordinary record unless it has the
//! magic, at least one byte of protobuf, and a matching MD5. Unlike the KCL, which keeps the
//! user records decoded before a bad key index and drops the rest, anything wrong with a blob
//! that passed the MD5 check — a protobuf that does not decode (including non-UTF-8 keys), a
//! key index outside its table — makes the whole blob one ordinary record, so no byte is ever
//! dropped. An aggregate with zero user records yields nothing. Tags are decoded and ignored
//! (the KPL never writes them). User records are not filtered by the shard's hash key range.

use md5::{Digest, Md5};
use prost::Message;

/// The first four bytes of an aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;

/// One user record: the record a producer put.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Vec<u8>,
    /// Index within the aggregate; `None` for a plain record.
    pub sub_sequence: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AggregatedRecord {
    #[prost(string, repeated, tag = "1")]
    partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    records: Vec<Record>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Record {
    #[prost(uint64, required, tag = "1")]
    partition_key_index: u64,
    #[prost(uint64, optional, tag = "2")]
    explicit_hash_key_index: Option<u64>,
    #[prost(bytes = "vec", required, tag = "3")]
    data: Vec<u8>,
    #[prost(message, repeated, tag = "4")]
    tags: Vec<Tag>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Tag {
    #[prost(string, required, tag = "1")]
    key: String,
    #[prost(string, optional, tag = "2")]
    value: Option<String>,
}

/// Whether `data` starts with the aggregation magic. It may still be an ordinary record (bad
/// MD5, undecodable); [`deaggregate`] decides.
pub fn is_aggregated(data: &[u8]) -> bool {
    data.starts_with(&MAGIC)
}

/// Splits a Kinesis record's data (with its own partition key) into user records: the user
/// records of a valid aggregate in order, with sub-sequence numbers `0, 1, ...`, or else the
/// record itself as one plain user record (`sub_sequence: None`, no explicit hash key: Kinesis
/// does not return a record's explicit hash key).
pub fn deaggregate(partition_key: &str, data: &[u8]) -> Vec<UserRecord> {
    match decode_aggregate(data) {
        Some(records) => records,
        None => vec![UserRecord {
            partition_key: partition_key.to_owned(),
            explicit_hash_key: None,
            data: data.to_vec(),
            sub_sequence: None,
        }],
    }
}

/// The user records of a valid aggregate, `None` if `data` is not one (checked by its magic
/// number first, so plain records cost nothing).
pub(crate) fn decode_aggregate(data: &[u8]) -> Option<Vec<UserRecord>> {
    if !is_aggregated(data) || data.len() <= MAGIC.len() + DIGEST_LEN {
        return None;
    }
    let (body, digest) = data[MAGIC.len()..].split_at(data.len() - MAGIC.len() - DIGEST_LEN);
    if Md5::digest(body).as_slice() != digest {
        return None;
    }
    let aggregate = AggregatedRecord::decode(body).ok()?;

    let key = |table: &[String], index: u64| {
        usize::try_from(index)
            .ok()
            .and_then(|i| table.get(i))
            .cloned()
    };
    let AggregatedRecord {
        partition_key_table,
        explicit_hash_key_table,
        records,
    } = aggregate;
    records
        .into_iter()
        .zip(0u64..)
        .map(|(record, sub)| {
            let partition_key = key(&partition_key_table, record.partition_key_index)?;
            let explicit_hash_key = match record.explicit_hash_key_index {
                Some(index) => Some(key(&explicit_hash_key_table, index)?),
                None => None,
            };
            Some(UserRecord {
                partition_key,
                explicit_hash_key,
                data: record.data,
                sub_sequence: Some(sub),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an aggregated blob the way the KPL does.
    fn build(aggregate: &AggregatedRecord) -> Vec<u8> {
        seal(&aggregate.encode_to_vec())
    }

    fn seal(body: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(body);
        out.extend_from_slice(&Md5::digest(body));
        out
    }

    fn record(pk: u64, ehk: Option<u64>, data: &[u8]) -> Record {
        Record {
            partition_key_index: pk,
            explicit_hash_key_index: ehk,
            data: data.to_vec(),
            tags: Vec::new(),
        }
    }

    fn plain(pk: &str, data: &[u8]) -> Vec<UserRecord> {
        vec![UserRecord {
            partition_key: pk.to_owned(),
            explicit_hash_key: None,
            data: data.to_vec(),
            sub_sequence: None,
        }]
    }

    fn user(pk: &str, ehk: Option<&str>, data: &[u8], sub: u64) -> UserRecord {
        UserRecord {
            partition_key: pk.to_owned(),
            explicit_hash_key: ehk.map(str::to_owned),
            data: data.to_vec(),
            sub_sequence: Some(sub),
        }
    }

    #[test]
    fn valid_aggregate() {
        let blob = build(&AggregatedRecord {
            partition_key_table: vec!["alpha".into(), "beta".into()],
            explicit_hash_key_table: vec![],
            records: vec![
                record(0, None, b"one"),
                record(1, None, b"two"),
                record(0, None, b""),
            ],
        });
        assert!(is_aggregated(&blob));
        assert_eq!(
            deaggregate("outer", &blob),
            vec![
                user("alpha", None, b"one", 0),
                user("beta", None, b"two", 1),
                user("alpha", None, b"", 2),
            ]
        );
    }

    #[test]
    fn shared_keys_and_explicit_hash_keys() {
        let blob = build(&AggregatedRecord {
            partition_key_table: vec!["k0".into(), "k1".into(), "ключ".into()],
            explicit_hash_key_table: vec![
                "0".into(),
                "340282366920938463463374607431768211455".into(),
            ],
            records: vec![
                record(2, Some(1), &[0, 1, 2, 255]),
                record(0, None, b"a"),
                record(2, Some(0), b"b"),
                record(1, Some(1), b"c"),
                record(2, None, b"d"),
            ],
        });
        let max = "340282366920938463463374607431768211455";
        assert_eq!(
            deaggregate("outer", &blob),
            vec![
                user("ключ", Some(max), &[0, 1, 2, 255], 0),
                user("k0", None, b"a", 1),
                user("ключ", Some("0"), b"b", 2),
                user("k1", Some(max), b"c", 3),
                user("ключ", None, b"d", 4),
            ]
        );
    }

    #[test]
    fn tags_are_ignored() {
        let mut r = record(0, None, b"x");
        r.tags = vec![
            Tag {
                key: "k".into(),
                value: Some("v".into()),
            },
            Tag {
                key: "only-key".into(),
                value: None,
            },
        ];
        let blob = build(&AggregatedRecord {
            partition_key_table: vec!["pk".into()],
            explicit_hash_key_table: vec![],
            records: vec![r],
        });
        assert_eq!(deaggregate("outer", &blob), vec![user("pk", None, b"x", 0)]);
    }

    #[test]
    fn bad_md5_is_a_plain_record() {
        let mut blob = build(&AggregatedRecord {
            partition_key_table: vec!["pk".into()],
            explicit_hash_key_table: vec![],
            records: vec![record(0, None, b"x")],
        });
        let last = blob.len() - 1;
        blob[last] ^= 0x01;
        assert!(is_aggregated(&blob));
        assert_eq!(deaggregate("outer", &blob), plain("outer", &blob));
    }

    #[test]
    fn empty_aggregate_yields_nothing() {
        // Key tables but no records: a valid aggregate of zero user records.
        let blob = build(&AggregatedRecord {
            partition_key_table: vec!["pk".into()],
            explicit_hash_key_table: vec![],
            records: vec![],
        });
        assert_eq!(deaggregate("outer", &blob), Vec::<UserRecord>::new());
        // A zero-length protobuf is not an aggregate (as in the KCL).
        let empty_body = seal(&[]);
        assert_eq!(empty_body.len(), 20);
        assert_eq!(
            deaggregate("outer", &empty_body),
            plain("outer", &empty_body)
        );
    }

    #[test]
    fn out_of_range_indexes_are_plain_records() {
        for records in [
            vec![record(0, None, b"ok"), record(1, None, b"bad pk")],
            vec![record(0, Some(1), b"bad ehk")],
            vec![record(0, Some(0), b"no ehk table")],
            vec![record(u64::MAX, None, b"huge")],
        ] {
            let blob = build(&AggregatedRecord {
                partition_key_table: vec!["pk".into()],
                explicit_hash_key_table: if records[0].data == b"bad ehk" {
                    vec!["1".into()]
                } else {
                    vec![]
                },
                records,
            });
            assert_eq!(deaggregate("outer", &blob), plain("outer", &blob));
        }
    }

    #[test]
    fn undecodable_protobuf_is_a_plain_record() {
        // Valid MD5 over bytes that are not an AggregatedRecord.
        for body in [
            &[0x0A, 0x05, b'a'][..],         // truncated string
            &[0x0A, 0x02, 0xC3, 0x28],       // invalid UTF-8 partition key
            &[0x1A, 0x03, 0x08, 0x80, 0x80], // truncated varint inside a record
            &[0x07],                         // wire type 7
            &[
                0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            ],
        ] {
            let blob = seal(body);
            assert_eq!(
                deaggregate("outer", &blob),
                plain("outer", &blob),
                "{body:?}"
            );
        }
    }

    #[test]
    fn short_and_plain_inputs() {
        for data in [
            &b""[..],
            &MAGIC[..3],
            &MAGIC[..],
            &[0xF3, 0x89, 0x9A, 0xC2, 1, 2, 3],
            b"{\"json\": true}",
        ] {
            assert_eq!(deaggregate("pk", data), plain("pk", data));
        }
        assert!(!is_aggregated(b""));
        assert!(!is_aggregated(&MAGIC[..3]));
        assert!(is_aggregated(&MAGIC));
        // Exactly magic + 16 bytes of digest: no protobuf, ordinary record.
        let mut twenty = MAGIC.to_vec();
        twenty.extend([0u8; 16]);
        assert_eq!(deaggregate("pk", &twenty), plain("pk", &twenty));
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // A newer producer might add fields; they must not break decoding.
        let mut body = AggregatedRecord {
            partition_key_table: vec!["pk".into()],
            explicit_hash_key_table: vec![],
            records: vec![record(0, None, b"x")],
        }
        .encode_to_vec();
        body.extend([0x28, 0x01]); // field 5, varint 1
        assert_eq!(
            deaggregate("outer", &seal(&body)),
            vec![user("pk", None, b"x", 0)]
        );
    }

    #[test]
    fn many_records() {
        let n = 5000u64;
        let aggregate = AggregatedRecord {
            partition_key_table: (0..10).map(|i| format!("key-{i}")).collect(),
            explicit_hash_key_table: vec![],
            records: (0..n)
                .map(|i| record(i % 10, None, i.to_string().as_bytes()))
                .collect(),
        };
        let out = deaggregate("outer", &build(&aggregate));
        assert_eq!(out.len(), n as usize);
        for (i, r) in out.iter().enumerate() {
            assert_eq!(r.sub_sequence, Some(i as u64));
            assert_eq!(r.partition_key, format!("key-{}", i % 10));
            assert_eq!(r.data, i.to_string().into_bytes());
        }
    }
}
