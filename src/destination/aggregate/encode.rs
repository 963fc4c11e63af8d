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

use super::Prehashed;
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
pub(crate) fn varint_len(value: u64) -> usize {
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
pub(crate) struct AggregateBuilder {
    buffer: Vec<u8>,
    partition_keys: KeyTable,
    explicit_hash_keys: KeyTable,
    records: usize,
}

/// The keys already in a table, by a hash of the key the caller gives (for partition keys,
/// the writer's key hash, computed once per record anyway). A hit is checked against the key's
/// bytes in the buffer, so a colliding hash only costs the deduplication: the key is written
/// again.
#[derive(Debug, Default)]
struct KeyTable {
    /// Key hash → (index, offset and length of the key's text in the buffer).
    known: HashMap<u64, (u64, usize, usize), Prehashed>,
    len: u64,
}

/// Most distinct keys remembered per table: bounds the map on aggregates of many small
/// records with unique keys.
const MAX_REMEMBERED_KEYS: usize = 4096;

impl KeyTable {
    fn find(&self, hash: u64, key: &str, buffer: &[u8]) -> Option<u64> {
        let &(index, at, len) = self.known.get(&hash)?;
        (buffer.get(at..at + len) == Some(key.as_bytes())).then_some(index)
    }

    /// Notes a key written at `at` in the buffer as the next index, and returns that index.
    fn push(&mut self, hash: u64, at: usize, len: usize) -> u64 {
        let index = self.len;
        self.len += 1;
        if self.known.len() < MAX_REMEMBERED_KEYS {
            self.known.entry(hash).or_insert((index, at, len));
        }
        index
    }
}

/// A hash of an explicit hash key for [`AggregateBuilder`]'s table (FNV-1a).
pub(crate) fn text_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Default for AggregateBuilder {
    fn default() -> Self {
        AggregateBuilder::with_capacity(1024)
    }
}

impl AggregateBuilder {
    /// A builder whose buffer first holds `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let mut buffer = Vec::with_capacity(capacity.max(MAGIC.len() + DIGEST_LEN));
        buffer.extend_from_slice(&MAGIC);
        AggregateBuilder {
            buffer,
            partition_keys: KeyTable::default(),
            explicit_hash_keys: KeyTable::default(),
            records: 0,
        }
    }

    /// User records added so far.
    #[cfg(test)]
    pub(crate) fn records(&self) -> usize {
        self.records
    }

    /// Size of the finished aggregate (magic, protobuf, digest) as it stands.
    pub(crate) fn size(&self) -> usize {
        self.buffer.len() + DIGEST_LEN
    }

    /// Size of the finished aggregate if this user record were added; `key_hash` identifies
    /// the partition key (see [`AggregateBuilder::add`]).
    pub(crate) fn size_with(
        &self,
        partition_key: &str,
        key_hash: u64,
        explicit_hash_key: Option<&str>,
        data: &[u8],
    ) -> usize {
        let mut grow = 0;
        let pk_index = match self
            .partition_keys
            .find(key_hash, partition_key, &self.buffer)
        {
            Some(index) => index,
            None => {
                grow += field_len(partition_key.len());
                self.partition_keys.len
            }
        };
        let ehk_index = explicit_hash_key.map(|key| {
            match self
                .explicit_hash_keys
                .find(text_hash(key), key, &self.buffer)
            {
                Some(index) => index,
                None => {
                    grow += field_len(key.len());
                    self.explicit_hash_keys.len
                }
            }
        });
        grow += field_len(record_len(pk_index, ehk_index, data.len()));
        self.size() + grow
    }

    /// Size of an aggregate holding only this user record.
    pub(crate) fn size_alone(
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data: &[u8],
    ) -> usize {
        MAGIC.len()
            + field_len(partition_key.len())
            + explicit_hash_key.map_or(0, |key| field_len(key.len()))
            + field_len(record_len(0, explicit_hash_key.map(|_| 0), data.len()))
            + DIGEST_LEN
    }

    /// Adds a user record. `key_hash` is any hash of the partition key that equal keys share
    /// (the writer passes its key hash); it only serves to find repeated keys.
    pub(crate) fn add(
        &mut self,
        partition_key: &str,
        key_hash: u64,
        explicit_hash_key: Option<&str>,
        data: &[u8],
    ) {
        let pk_index = match self
            .partition_keys
            .find(key_hash, partition_key, &self.buffer)
        {
            Some(index) => index,
            None => {
                let at = self.write_table_entry(PARTITION_KEY_TABLE, partition_key);
                self.partition_keys.push(key_hash, at, partition_key.len())
            }
        };
        let ehk_index = explicit_hash_key.map(|key| {
            let hash = text_hash(key);
            match self.explicit_hash_keys.find(hash, key, &self.buffer) {
                Some(index) => index,
                None => {
                    let at = self.write_table_entry(EXPLICIT_HASH_KEY_TABLE, key);
                    self.explicit_hash_keys.push(hash, at, key.len())
                }
            }
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

    /// Writes a key table entry; returns where the key's text starts.
    fn write_table_entry(&mut self, tag: u8, key: &str) -> usize {
        self.buffer.push(tag);
        put_varint(&mut self.buffer, key.len() as u64);
        let at = self.buffer.len();
        self.buffer.extend_from_slice(key.as_bytes());
        at
    }

    /// The aggregated record's data.
    pub(crate) fn finish(mut self) -> Vec<u8> {
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

    impl AggregateBuilder {
        fn new() -> Self {
            AggregateBuilder::default()
        }

        fn push(&mut self, pk: &str, ehk: Option<&str>, data: &[u8]) {
            self.add(pk, text_hash(pk), ehk, data);
        }

        fn size_of(&self, pk: &str, ehk: Option<&str>, data: &[u8]) -> usize {
            self.size_with(pk, text_hash(pk), ehk, data)
        }
    }

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
        builder.push("k", None, b"hi");
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
            let expected = builder.size_of(pk, ehk, data);
            builder.push(pk, ehk, data);
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
        once.push("same-key", Some("7"), b"a");
        let single = once.size();
        once.push("same-key", Some("7"), b"a");
        // The second record adds only its Record message: tag, length, 2+2+3 bytes.
        assert_eq!(once.size() - single, 2 + 7);
    }

    #[test]
    fn a_colliding_key_hash_only_costs_deduplication() {
        let mut builder = AggregateBuilder::new();
        builder.add("first", 7, None, b"1");
        builder.add("second", 7, None, b"2");
        builder.add("first", 7, None, b"3");
        let keys: Vec<String> = decode_aggregate(&builder.finish())
            .unwrap()
            .into_iter()
            .map(|u| u.partition_key)
            .collect();
        assert_eq!(keys, ["first", "second", "first"]);
    }

    #[test]
    fn size_alone_matches_an_aggregate_of_one() {
        for (pk, ehk, data) in [
            ("k", None, vec![0u8; 0]),
            ("a-longer-partition-key", Some("123456789"), vec![1u8; 200]),
            ("k", None, vec![2u8; 70_000]),
        ] {
            let mut builder = AggregateBuilder::new();
            builder.push(pk, ehk, &data);
            assert_eq!(AggregateBuilder::size_alone(pk, ehk, &data), builder.size());
            assert_eq!(
                AggregateBuilder::new().size_of(pk, ehk, &data),
                builder.size()
            );
        }
    }

    #[test]
    fn many_unique_keys_beyond_the_remembered_ones_still_decode() {
        let mut builder = AggregateBuilder::new();
        let n = MAX_REMEMBERED_KEYS + 10;
        for i in 0..n {
            builder.push(&format!("k{i}"), None, &[i as u8]);
        }
        // A key seen before but past the remembered ones is written again: still correct.
        builder.push(&format!("k{}", n - 1), None, b"again");
        let decoded = decode_aggregate(&builder.finish()).unwrap();
        assert_eq!(decoded.len(), n + 1);
        assert_eq!(decoded[n].partition_key, format!("k{}", n - 1));
        assert_eq!(decoded[n].data, b"again");
        assert_eq!(decoded[5].partition_key, "k5");
    }
}
