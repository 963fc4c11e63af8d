//! Packing user records into the Kinesis records of one PutRecords call: one aggregate per
//! predicted shard at a time, records too large to share alone. Pure logic, no I/O.
//!
//! Order per partition key: an aggregate is written or failed as a whole, so the records of
//! one key inside it keep their order. Across the entries of one call they would not: with
//! strict ordering, a key therefore sits in only one entry per call. A record of a key whose
//! aggregate has closed in this call (full), or that would go to another entry than the one
//! holding its key (another shard, alone), waits for the next call, and so does every later
//! record of that key ([`Packed::Deferred`]).

use std::collections::{HashMap, HashSet};

use super::encode::AggregateBuilder;
use super::Prehashed;
use crate::destination::batch::{MAX_ENTRIES, MAX_REQUEST_BYTES};

/// What packing needs to know about a user record.
pub(crate) trait UserRecord {
    fn stream(&self) -> &str;
    fn partition_key(&self) -> &str;
    fn explicit_hash_key(&self) -> Option<&str>;
    fn data(&self) -> &[u8];
    /// Identifies the record's (stream, partition key), as `batch::key_hash` does.
    fn key_hash(&self) -> u64;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PackLimits {
    /// Largest aggregate: data plus the aggregate's partition key.
    pub max_bytes: usize,
    /// Most user records per aggregate.
    pub max_records: usize,
    pub strict_ordering: bool,
    /// Kinesis records per call.
    pub max_entries: usize,
    /// Bytes per call.
    pub max_call_bytes: usize,
}

impl Default for PackLimits {
    fn default() -> Self {
        PackLimits {
            max_bytes: 51_200,
            max_records: 1000,
            strict_ordering: true,
            max_entries: MAX_ENTRIES,
            max_call_bytes: MAX_REQUEST_BYTES,
        }
    }
}

/// What happened to an offered record (as [`crate::destination::batch::Offer`]).
#[derive(Debug, PartialEq)]
pub(crate) enum Packed<R> {
    Added,
    Deferred(R),
    Full(R),
}

/// One Kinesis record of the call.
#[derive(Debug)]
pub(crate) enum Outgoing<R> {
    /// The aggregate of `records`, for shard `shard` of the map packing used.
    Aggregate {
        shard: usize,
        data: Vec<u8>,
        records: Vec<R>,
    },
    /// A record sent as it is.
    Alone(R),
}

#[derive(Debug)]
struct Open<R> {
    builder: AggregateBuilder,
    records: Vec<R>,
}

impl<R: UserRecord> Open<R> {
    /// Kinesis size of the aggregate: data plus its partition key (its first record's).
    fn size(&self) -> usize {
        self.builder.size() + self.records.first().map_or(0, |r| r.partition_key().len())
    }
}

type KeySet = HashSet<u64, Prehashed>;

/// Most bytes an aggregate's buffer reserves up front.
const INITIAL_CAPACITY: usize = 64 * 1024;

/// The records of one call in the making.
#[derive(Debug)]
pub(crate) struct CallPacker<R> {
    limits: PackLimits,
    stream: Option<String>,
    /// Open aggregates by shard index.
    open: HashMap<usize, Open<R>, Prehashed>,
    done: Vec<Outgoing<R>>,
    bytes: usize,
    /// Strict ordering: the shard of the open aggregate holding each key.
    open_keys: HashMap<u64, usize, Prehashed>,
    /// Strict ordering: keys in entries of this call that take no more records.
    closed_keys: KeySet,
    /// Keys deferred to a later call: all their later records follow.
    blocked: KeySet,
}

impl<R: UserRecord> CallPacker<R> {
    pub(crate) fn new(limits: PackLimits) -> Self {
        CallPacker {
            limits,
            stream: None,
            open: HashMap::default(),
            done: Vec::new(),
            bytes: 0,
            open_keys: HashMap::default(),
            closed_keys: KeySet::default(),
            blocked: KeySet::default(),
        }
    }

    /// Kinesis records in the call so far (open aggregates count).
    pub(crate) fn entries(&self) -> usize {
        self.done.len() + self.open.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries() == 0
    }

    pub(crate) fn is_full(&self) -> bool {
        self.entries() >= self.limits.max_entries || self.bytes >= self.limits.max_call_bytes
    }

    /// Adds `record`, to be aggregated for shard `shard` (`None`: its shard is unknown, so it
    /// goes alone).
    pub(crate) fn offer(&mut self, record: R, shard: Option<usize>) -> Packed<R> {
        let key = record.key_hash();
        if self.blocked.contains(&key) {
            return Packed::Deferred(record);
        }
        if self.stream.as_deref().is_some_and(|s| s != record.stream()) {
            self.blocked.insert(key);
            return Packed::Deferred(record);
        }
        let alone_size = AggregateBuilder::size_alone(
            record.partition_key(),
            record.explicit_hash_key(),
            record.data(),
        ) + record.partition_key().len();
        let shard = shard.filter(|_| alone_size <= self.limits.max_bytes);
        if self.limits.strict_ordering {
            if self.closed_keys.contains(&key) {
                return self.defer(record);
            }
            if let Some(&holding) = self.open_keys.get(&key) {
                if Some(holding) != shard {
                    self.close(holding);
                    return self.defer(record);
                }
            }
        }
        let Some(shard) = shard else {
            return self.add_alone(record);
        };
        if let Some(open) = self.open.get_mut(&shard) {
            let grown = open.builder.size_with(
                record.partition_key(),
                key,
                record.explicit_hash_key(),
                record.data(),
            ) + open.records[0].partition_key().len();
            if open.records.len() < self.limits.max_records && grown <= self.limits.max_bytes {
                let grow = grown - open.size();
                if self.bytes + grow > self.limits.max_call_bytes {
                    return Packed::Full(record);
                }
                open.builder.add(
                    record.partition_key(),
                    key,
                    record.explicit_hash_key(),
                    record.data(),
                );
                open.records.push(record);
                self.bytes += grow;
                if self.limits.strict_ordering {
                    self.open_keys.insert(key, shard);
                }
                return Packed::Added;
            }
            self.close(shard);
            if self.limits.strict_ordering && self.closed_keys.contains(&key) {
                return self.defer(record);
            }
        }
        if self.room_for(alone_size).is_err() {
            return Packed::Full(record);
        }
        // Room for a full aggregate at once (up to a bound: a buffer per open shard and lane).
        let mut builder =
            AggregateBuilder::with_capacity(self.limits.max_bytes.min(INITIAL_CAPACITY));
        builder.add(
            record.partition_key(),
            key,
            record.explicit_hash_key(),
            record.data(),
        );
        self.note_stream(&record);
        self.bytes += alone_size;
        if self.limits.strict_ordering {
            self.open_keys.insert(key, shard);
        }
        self.open.insert(
            shard,
            Open {
                builder,
                records: vec![record],
            },
        );
        Packed::Added
    }

    /// The call's Kinesis records: closed ones first, then the open aggregates by shard.
    pub(crate) fn finish(mut self) -> Vec<Outgoing<R>> {
        let mut shards: Vec<usize> = self.open.keys().copied().collect();
        shards.sort_unstable();
        for shard in shards {
            self.close(shard);
        }
        self.done
    }

    fn defer(&mut self, record: R) -> Packed<R> {
        self.blocked.insert(record.key_hash());
        Packed::Deferred(record)
    }

    fn room_for(&self, size: usize) -> Result<(), ()> {
        let full = self.entries() >= self.limits.max_entries
            || (!self.is_empty() && self.bytes + size > self.limits.max_call_bytes);
        if full {
            Err(())
        } else {
            Ok(())
        }
    }

    fn note_stream(&mut self, record: &R) {
        if self.stream.is_none() {
            self.stream = Some(record.stream().to_string());
        }
    }

    fn add_alone(&mut self, record: R) -> Packed<R> {
        let size = record.data().len() + record.partition_key().len();
        if self.room_for(size).is_err() {
            return Packed::Full(record);
        }
        self.note_stream(&record);
        self.bytes += size;
        if self.limits.strict_ordering {
            self.closed_keys.insert(record.key_hash());
        }
        self.done.push(Outgoing::Alone(record));
        Packed::Added
    }

    /// Ends the open aggregate of `shard`: it stays in the call but takes no more records.
    fn close(&mut self, shard: usize) {
        let Some(open) = self.open.remove(&shard) else {
            return;
        };
        if self.limits.strict_ordering {
            for record in &open.records {
                let key = record.key_hash();
                self.open_keys.remove(&key);
                self.closed_keys.insert(key);
            }
        }
        self.done.push(Outgoing::Aggregate {
            shard,
            data: open.builder.finish(),
            records: open.records,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::batch::key_hash;
    use crate::source::deaggregate::decode_aggregate;

    #[derive(Debug, Clone, PartialEq)]
    struct R {
        stream: &'static str,
        key: String,
        data: Vec<u8>,
    }

    impl UserRecord for R {
        fn stream(&self) -> &str {
            self.stream
        }
        fn partition_key(&self) -> &str {
            &self.key
        }
        fn explicit_hash_key(&self) -> Option<&str> {
            None
        }
        fn data(&self) -> &[u8] {
            &self.data
        }
        fn key_hash(&self) -> u64 {
            key_hash(self.stream, &self.key)
        }
    }

    fn r(key: &str, data: &str) -> R {
        R {
            stream: "s",
            key: key.into(),
            data: data.as_bytes().to_vec(),
        }
    }

    /// Packs records (with their shards) into calls as a lane would: deferred and full records
    /// go to the next call, in order. Each call as (shard or alone, data of its records).
    fn plan(
        records: Vec<(R, Option<usize>)>,
        limits: PackLimits,
    ) -> Vec<Vec<(Option<usize>, Vec<String>)>> {
        let mut calls = Vec::new();
        let mut waiting = records;
        while !waiting.is_empty() {
            let mut packer = CallPacker::new(limits);
            let mut later = Vec::new();
            let mut full = false;
            for (record, shard) in waiting {
                if full {
                    later.push((record, shard));
                    continue;
                }
                match packer.offer(record, shard) {
                    Packed::Added => {}
                    Packed::Deferred(record) => later.push((record, shard)),
                    Packed::Full(record) => {
                        full = true;
                        later.push((record, shard));
                    }
                }
            }
            let call = packer
                .finish()
                .into_iter()
                .map(|out| match out {
                    Outgoing::Aggregate {
                        shard,
                        data,
                        records,
                    } => {
                        let decoded = decode_aggregate(&data).unwrap();
                        assert_eq!(decoded.len(), records.len());
                        for (user, record) in decoded.iter().zip(&records) {
                            assert_eq!(user.data, record.data);
                            assert_eq!(user.partition_key, record.key);
                        }
                        let data = records
                            .iter()
                            .map(|r| String::from_utf8(r.data.clone()).unwrap());
                        (Some(shard), data.collect())
                    }
                    Outgoing::Alone(record) => {
                        (None, vec![String::from_utf8(record.data).unwrap()])
                    }
                })
                .collect();
            calls.push(call);
            waiting = later;
        }
        calls
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn records_of_a_shard_share_one_aggregate() {
        let records = vec![
            (r("a", "1"), Some(0)),
            (r("b", "2"), Some(1)),
            (r("c", "3"), Some(0)),
            (r("a", "4"), Some(0)),
        ];
        let calls = plan(records, PackLimits::default());
        assert_eq!(
            calls,
            vec![vec![
                (Some(0), strings(&["1", "3", "4"])),
                (Some(1), strings(&["2"])),
            ]]
        );
    }

    #[test]
    fn a_full_aggregate_closes_and_its_keys_wait_for_the_next_call() {
        let limits = PackLimits {
            max_records: 2,
            ..PackLimits::default()
        };
        let records = vec![
            (r("a", "1"), Some(0)),
            (r("b", "2"), Some(0)),
            (r("c", "3"), Some(0)), // a new aggregate for shard 0
            (r("a", "4"), Some(0)), // key a is in the closed one: next call
            (r("d", "5"), Some(0)),
            (r("a", "6"), Some(0)), // behind 4
        ];
        let calls = plan(records.clone(), limits);
        assert_eq!(
            calls,
            vec![
                vec![
                    (Some(0), strings(&["1", "2"])),
                    (Some(0), strings(&["3", "5"]))
                ],
                vec![(Some(0), strings(&["4", "6"]))],
            ]
        );
        // Without strict ordering, nothing waits.
        let relaxed = PackLimits {
            strict_ordering: false,
            ..limits
        };
        let calls = plan(records, relaxed);
        assert_eq!(calls.len(), 1);
        let flat: Vec<String> = calls[0].iter().flat_map(|(_, d)| d.clone()).collect();
        assert_eq!(flat.len(), 6);
    }

    #[test]
    fn a_record_too_large_to_share_goes_alone_after_its_keys_earlier_records() {
        let limits = PackLimits {
            max_bytes: 100,
            ..PackLimits::default()
        };
        let big = "x".repeat(200);
        let records = vec![
            (r("a", "1"), Some(0)),
            (r("a", &big), Some(0)),
            (r("b", "3"), Some(0)),
            (r("c", &big), Some(0)),
        ];
        let calls = plan(records, limits);
        assert_eq!(
            calls,
            vec![
                vec![
                    (Some(0), strings(&["1"])),
                    (None, vec![big.clone()]),
                    (Some(0), strings(&["3"])),
                ],
                vec![(None, vec![big.clone()])],
            ]
        );
    }

    #[test]
    fn a_record_of_unknown_shard_goes_alone() {
        let calls = plan(
            vec![(r("a", "1"), None), (r("b", "2"), Some(3))],
            PackLimits::default(),
        );
        assert_eq!(
            calls,
            vec![vec![(None, strings(&["1"])), (Some(3), strings(&["2"]))]]
        );
    }

    #[test]
    fn aggregates_never_exceed_max_bytes_and_calls_their_limits() {
        let limits = PackLimits {
            max_bytes: 1000,
            max_entries: 3,
            max_call_bytes: 2500,
            strict_ordering: false,
            ..PackLimits::default()
        };
        let records: Vec<_> = (0..200)
            .map(|i| (r(&format!("k{i}"), &"d".repeat(50)), Some(i % 2)))
            .collect();
        let mut packer = CallPacker::new(limits);
        let mut added = 0;
        for (record, shard) in records {
            match packer.offer(record, shard) {
                Packed::Added => added += 1,
                Packed::Deferred(_) => panic!("nothing is deferred without strict ordering"),
                Packed::Full(_) => break,
            }
        }
        let call = packer.finish();
        assert!(call.len() <= 3);
        let mut total = 0;
        let mut records = 0;
        for out in &call {
            let Outgoing::Aggregate {
                data, records: r, ..
            } = out
            else {
                panic!("all records fit an aggregate")
            };
            let size = data.len() + r[0].key.len();
            assert!(size <= 1000, "{size}");
            total += size;
            records += r.len();
        }
        assert!(total <= 2500, "{total}");
        assert_eq!(records, added);
    }

    #[test]
    fn another_stream_waits_for_its_own_call() {
        let mut other = r("a", "2");
        other.stream = "t";
        let calls = plan(
            vec![(r("a", "1"), Some(0)), (other, Some(0))],
            PackLimits::default(),
        );
        assert_eq!(calls.len(), 2);
    }

    #[test]
    fn a_key_moving_to_another_shard_closes_its_aggregate_and_waits() {
        // The same partition key with different explicit hash keys lands on two shards.
        let calls = plan(
            vec![
                (r("a", "1"), Some(0)),
                (r("a", "2"), Some(1)),
                (r("b", "3"), Some(0)),
            ],
            PackLimits::default(),
        );
        assert_eq!(
            calls,
            vec![
                vec![(Some(0), strings(&["1"])), (Some(0), strings(&["3"]))],
                vec![(Some(1), strings(&["2"]))],
            ]
        );
    }
}
