//! Writing KPL aggregated records (the format `crate::source::deaggregate` reads, described
//! there): magic, a protobuf `AggregatedRecord`, the MD5 of the protobuf bytes.
//!
//! The protobuf is written by hand into one buffer as user records are added, so adding a
//! record costs one copy of its data and no second pass. Protobuf parsers must accept fields
//! in any order, and repeated fields keep their order among themselves, so a partition key
//! (or explicit hash key) table entry is written right before the first record that uses it:
//! the tables come out interleaved with the records instead of first. The KCL, aws-kinesis-agg
//! and this connector's source all read that (`tests/aggregation.rs` checks aws-kinesis-agg).
//! Keys are deduplicated within an aggregate, as the KPL does.

use std::collections::HashMap;

use md5::{Digest, Md5};

use crate::source::deaggregate::MAGIC;

const DIGEST_LEN: usize = 16;
/// Field 1 (`partition_key_table`), field 2 (`explicit_hash_key_table`) and field 3
/// (`records`) of `AggregatedRecord`, all length-delimited.
const PARTITION_KEY_TABLE: u8 = 1 << 3 | 2;
const EXPLICIT_HASH_KEY_TABLE: u8 = 2 << 3 | 2;
const RECORDS: u8 = 3 << 3 | 2;
/// `Record`: field 1 and 2 varints, field 3 length-delimited.
const RECORD_PARTITION_KEY_INDEX: u8 = 1 << 3;
const RECORD_EXPLICIT_HASH_KEY_INDEX: u8 = 2 << 3;
const RECORD_DATA: u8 = 3 << 3 | 2;

/// Bytes of `value` as a protobuf varint.
pub fn varint_len(value: u64) -> usize {
    // 1 byte per started group of 7 bits; 0 takes one byte.
    (64 - (value | 1).leading_zeros()).div_ceil(7) as usize
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Bytes a length-delimited field of `len` bytes takes, tag included.
fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// One aggregate being built. Its [`size`](AggregateBuilder::size) is always the exact size
/// [`finish`](AggregateBuilder::finish) will return.
#[derive(Debug)]
pub struct AggregateBuilder {
    buffer: Vec<u8>,
    partition_keys: KeyTable,
    explicit_hash_keys: KeyTable,
    records: usize,
}

/// Indexes of the keys already in a table. Deduplication only saves bytes, so a lookup that
/// misses (the table is full) just writes the key again.
#[derive(Debug, Default)]
struct KeyTable {
    indexes: HashMap<Box<str>, u64>,
    len: u64,
}

/// Most distinct keys remembered per table: bounds the map on aggregates of many small
/// records with unique keys.
const MAX_REMEMBERED_KEYS: usize = 4096;

impl KeyTable {
    /// The key's index and whether it is new (its table entry must be written).
    fn index(&mut self, key: &str) -> (u64, bool) {
        if let Some(&index) = self.indexes.get(key) {
            return (index, false);
        }
        let index = self.len;
        self.len += 1;
        if self.indexes.len() < MAX_REMEMBERED_KEYS {
            self.indexes.insert(key.into(), index);
        }
        (index, true)
    }

    fn peek(&self, key: &str) -> Option<u64> {
        self.indexes.get(key).copied()
    }
}

impl Default for AggregateBuilder {
    fn default() -> Self {
        AggregateBuilder::new()
    }
}

impl AggregateBuilder {
    pub fn new() -> Self {
        let mut buffer = Vec::with_capacity(1024);
        buffer.extend_from_slice(&MAGIC);
        AggregateBuilder {
            buffer,
            partition_keys: KeyTable::default(),
            explicit_hash_keys: KeyTable::default(),
            records: 0,
        }
    }

    /// User records added so far.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Size of the finished aggregate (magic, protobuf, digest) as it stands.
    pub fn size(&self) -> usize {
        self.buffer.len() + DIGEST_LEN
    }

    /// Size of the finished aggregate if this user record were added.
    pub fn size_with(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data: &[u8],
    ) -> usize {
        let mut grow = 0;
        let pk_index = match self.partition_keys.peek(partition_key) {
            Some(index) => index,
            None => {
                grow += field_len(partition_key.len());
                self.partition_keys.len
            }
        };
        let ehk_index = explicit_hash_key.map(|key| match self.explicit_hash_keys.peek(key) {
            Some(index) => index,
            None => {
                grow += field_len(key.len());
                self.explicit_hash_keys.len
            }
        });
        grow += field_len(record_len(pk_index, ehk_index, data.len()));
        self.size() + grow
    }

    /// Size of an aggregate holding only this user record.
    pub fn size_alone(partition_key: &str, explicit_hash_key: Option<&str>, data: &[u8]) -> usize {
        MAGIC.len()
            + field_len(partition_key.len())
            + explicit_hash_key.map_or(0, |key| field_len(key.len()))
            + field_len(record_len(0, explicit_hash_key.map(|_| 0), data.len()))
            + DIGEST_LEN
    }

    pub fn add(&mut self, partition_key: &str, explicit_hash_key: Option<&str>, data: &[u8]) {
        let (pk_index, new_pk) = self.partition_keys.index(partition_key);
        if new_pk {
            self.buffer.push(PARTITION_KEY_TABLE);
            put_varint(&mut self.buffer, partition_key.len() as u64);
            self.buffer.extend_from_slice(partition_key.as_bytes());
        }
        let ehk_index = explicit_hash_key.map(|key| {
            let (index, new) = self.explicit_hash_keys.index(key);
            if new {
                self.buffer.push(EXPLICIT_HASH_KEY_TABLE);
                put_varint(&mut self.buffer, key.len() as u64);
                self.buffer.extend_from_slice(key.as_bytes());
            }
            index
        });
        self.buffer.reserve(data.len() + 16);
        self.buffer.push(RECORDS);
        put_varint(
            &mut self.buffer,
            record_len(pk_index, ehk_index, data.len()) as u64,
        );
        self.buffer.push(RECORD_PARTITION_KEY_INDEX);
        put_varint(&mut self.buffer, pk_index);
        if let Some(index) = ehk_index {
            self.buffer.push(RECORD_EXPLICIT_HASH_KEY_INDEX);
            put_varint(&mut self.buffer, index);
        }
        self.buffer.push(RECORD_DATA);
        put_varint(&mut self.buffer, data.len() as u64);
        self.buffer.extend_from_slice(data);
        self.records += 1;
    }

    /// The aggregated record's data.
    pub fn finish(mut self) -> Vec<u8> {
        let digest = Md5::digest(&self.buffer[MAGIC.len()..]);
        self.buffer.extend_from_slice(&digest);
        self.buffer
    }
}

/// Bytes of one `Record` message (without its own tag and length).
fn record_len(pk_index: u64, ehk_index: Option<u64>, data_len: usize) -> usize {
    1 + varint_len(pk_index)
        + ehk_index.map_or(0, |index| 1 + varint_len(index))
        + field_len(data_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::deaggregate::{decode_aggregate, UserRecord};

    fn user(pk: &str, ehk: Option<&str>, data: &[u8], sub: u64) -> UserRecord {
        UserRecord {
            partition_key: pk.into(),
            explicit_hash_key: ehk.map(str::to_string),
            data: data.to_vec(),
            sub_sequence: Some(sub),
        }
    }

    #[test]
    fn varint_lengths() {
        for (value, len) in [
            (0u64, 1),
            (1, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
        ] {
            assert_eq!(varint_len(value), len, "{value}");
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), len, "{value}");
        }
        assert_eq!(varint_len(u64::MAX), 10);
    }

    #[test]
    fn one_record_is_the_bytes_the_format_prescribes() {
        let mut builder = AggregateBuilder::new();
        builder.add("k", None, b"hi");
        let blob = builder.finish();
        let body = [
            0x0A, 1, b'k', // partition_key_table: "k"
            0x1A, 6, // records: one Record of 6 bytes
            0x08, 0, // partition_key_index 0
            0x1A, 2, b'h', b'i', // data
        ];
        assert_eq!(&blob[..4], &MAGIC);
        assert_eq!(&blob[4..4 + body.len()], &body);
        assert_eq!(&blob[4 + body.len()..], Md5::digest(body).as_slice());
    }

    #[test]
    fn the_source_reads_back_every_record_in_order_with_its_keys() {
        let mut builder = AggregateBuilder::new();
        let big = vec![7u8; 300];
        let records = [
            ("alpha", None, b"one".as_slice()),
            ("beta", Some("42"), b"two"),
            ("alpha", Some("42"), b""),
            (
                "gamma",
                Some("340282366920938463463374607431768211455"),
                &big,
            ),
            ("beta", None, b"five"),
        ];
        for (pk, ehk, data) in records {
            let expected = builder.size_with(pk, ehk, data);
            builder.add(pk, ehk, data);
            assert_eq!(builder.size(), expected, "size_with predicts the size");
        }
        assert_eq!(builder.records(), 5);
        let size = builder.size();
        let blob = builder.finish();
        assert_eq!(blob.len(), size);
        let decoded = decode_aggregate(&blob).expect("a valid aggregate");
        let expected: Vec<UserRecord> = records
            .iter()
            .zip(0..)
            .map(|((pk, ehk, data), sub)| user(pk, *ehk, data, sub))
            .collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn repeated_keys_are_written_once() {
        let mut once = AggregateBuilder::new();
        once.add("same-key", Some("7"), b"a");
        let single = once.size();
        once.add("same-key", Some("7"), b"a");
        // The second record adds only its Record message: tag, length, 2+2+3 bytes.
        assert_eq!(once.size() - single, 2 + 7);
    }

    #[test]
    fn size_alone_matches_an_aggregate_of_one() {
        for (pk, ehk, data) in [
            ("k", None, vec![0u8; 0]),
            ("a-longer-partition-key", Some("123456789"), vec![1u8; 200]),
            ("k", None, vec![2u8; 70_000]),
        ] {
            let mut builder = AggregateBuilder::new();
            builder.add(pk, ehk, &data);
            assert_eq!(AggregateBuilder::size_alone(pk, ehk, &data), builder.size());
            assert_eq!(
                AggregateBuilder::new().size_with(pk, ehk, &data),
                builder.size()
            );
        }
    }

    #[test]
    fn many_unique_keys_beyond_the_remembered_ones_still_decode() {
        let mut builder = AggregateBuilder::new();
        let n = MAX_REMEMBERED_KEYS + 10;
        for i in 0..n {
            builder.add(&format!("k{i}"), None, &[i as u8]);
        }
        // A key seen before but past the remembered ones is written again: still correct.
        builder.add(&format!("k{}", n - 1), None, b"again");
        let decoded = decode_aggregate(&builder.finish()).unwrap();
        assert_eq!(decoded.len(), n + 1);
        assert_eq!(decoded[n].partition_key, format!("k{}", n - 1));
        assert_eq!(decoded[n].data, b"again");
        assert_eq!(decoded[5].partition_key, "k5");
    }
}
