//! Assembling PutRecords batches within Kinesis limits. Pure logic, no I/O.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// Kinesis limits for one PutRecords call.
pub(crate) const MAX_ENTRIES: usize = 500;
pub(crate) const MAX_REQUEST_BYTES: usize = 5 * 1024 * 1024;

/// What the batcher needs to know about an entry.
pub(crate) trait BatchEntry {
    fn stream(&self) -> &str;
    fn partition_key(&self) -> &str;
    /// Bytes counted against the request limit: data plus partition key.
    fn size(&self) -> usize;
    /// [`key_hash`] of the entry's stream and partition key; entries that carry it
    /// precomputed return that.
    fn key_hash(&self) -> u64 {
        key_hash(self.stream(), self.partition_key())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchLimits {
    pub max_entries: usize,
    pub max_bytes: usize,
    /// At most one entry per partition key in a call, so a failed entry is never overtaken by
    /// a later entry of its key within the same call.
    pub strict_ordering: bool,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_entries: MAX_ENTRIES,
            max_bytes: MAX_REQUEST_BYTES,
            strict_ordering: true,
        }
    }
}

/// What happened to an offered entry.
#[derive(Debug, PartialEq)]
pub(crate) enum Offer<E> {
    Added,
    /// Belongs to a later call: another stream, or a key already in this call (strict
    /// ordering) or already deferred (so its order is kept). Later entries may still join.
    Deferred(E),
    /// The call is full; this entry and everything after it wait for the next call.
    Full(E),
}

/// One PutRecords call in the making.
#[derive(Debug)]
pub(crate) struct Batch<E> {
    limits: BatchLimits,
    entries: Vec<E>,
    bytes: usize,
    stream: Option<String>,
    /// Keys in this call and (stream, key) pairs deferred to a later call, by hash: a
    /// collision only defers an entry that could have gone now, it never reorders a key.
    keys: KeySet,
    blocked: KeySet,
}

/// A set of [`key_hash`] values (SipHash outputs already).
type KeySet = HashSet<u64, Prehashed>;

/// A hasher for keys that are hashes already ([`key_hash`] values), or small integers: it uses
/// them as they are instead of hashing them again. The aggregation packer's maps use it too.
#[derive(Default)]
pub(crate) struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64`/`write_usize` are meant; this keeps other input well spread anyway.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }

    fn write_usize(&mut self, value: usize) {
        // Spread small integers (shard indexes) over the high bits hashbrown also uses.
        self.0 = (value as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(crate) type Prehashed = BuildHasherDefault<PrehashedHasher>;

/// Identifies a (stream, partition key) pair for ordering and lane choice. Computed once
/// per entry when it is prepared.
pub(crate) fn key_hash(stream: &str, partition_key: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    stream.hash(&mut hasher);
    partition_key.hash(&mut hasher);
    hasher.finish()
}

impl<E: BatchEntry> Batch<E> {
    pub(crate) fn new(limits: BatchLimits) -> Self {
        Batch {
            limits,
            entries: Vec::new(),
            bytes: 0,
            stream: None,
            keys: KeySet::default(),
            blocked: KeySet::default(),
        }
    }

    pub(crate) fn offer(&mut self, entry: E) -> Offer<E> {
        // One stream per call, so the (stream, key) hash also tells keys of the call apart.
        let key = entry.key_hash();
        if self.blocked.contains(&key) {
            return Offer::Deferred(entry);
        }
        let other_stream = self.stream.as_deref().is_some_and(|s| s != entry.stream());
        let repeated_key = self.limits.strict_ordering && self.keys.contains(&key);
        if other_stream || repeated_key {
            self.blocked.insert(key);
            return Offer::Deferred(entry);
        }
        let full = self.entries.len() >= self.limits.max_entries
            || (!self.entries.is_empty() && self.bytes + entry.size() > self.limits.max_bytes);
        if full {
            return Offer::Full(entry);
        }
        if self.stream.is_none() {
            self.stream = Some(entry.stream().to_string());
        }
        if self.limits.strict_ordering {
            self.keys.insert(key);
        }
        self.bytes += entry.size();
        self.entries.push(entry);
        Offer::Added
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.entries.len() >= self.limits.max_entries || self.bytes >= self.limits.max_bytes
    }

    pub(crate) fn into_entries(self) -> Vec<E> {
        self.entries
    }
}

/// Splits a sequence of entries into calls, in order, as a lane would if all of them were
/// waiting at once. Tests reason about batching with it.
#[cfg(test)]
pub(crate) fn plan<E: BatchEntry>(entries: Vec<E>, limits: BatchLimits) -> Vec<Vec<E>> {
    let mut calls = Vec::new();
    let mut waiting: std::collections::VecDeque<E> = entries.into();
    while !waiting.is_empty() {
        let mut batch = Batch::new(limits);
        let mut later = std::collections::VecDeque::new();
        let mut stopped = false;
        while let Some(entry) = waiting.pop_front() {
            if stopped {
                later.push_back(entry);
                continue;
            }
            match batch.offer(entry) {
                Offer::Added => {}
                Offer::Deferred(entry) => later.push_back(entry),
                Offer::Full(entry) => {
                    later.push_back(entry);
                    stopped = true;
                }
            }
        }
        calls.push(batch.into_entries());
        waiting = later;
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct E {
        stream: &'static str,
        key: String,
        size: usize,
        id: usize,
    }

    impl BatchEntry for E {
        fn stream(&self) -> &str {
            self.stream
        }
        fn partition_key(&self) -> &str {
            &self.key
        }
        fn size(&self) -> usize {
            self.size
        }
    }

    fn entries(n: usize, size: usize) -> Vec<E> {
        (0..n)
            .map(|id| E {
                stream: "s",
                key: format!("k{id}"),
                size,
                id,
            })
            .collect()
    }

    fn ids(calls: &[Vec<E>]) -> Vec<Vec<usize>> {
        calls
            .iter()
            .map(|c| c.iter().map(|e| e.id).collect())
            .collect()
    }

    #[test]
    fn splits_at_500_entries() {
        let calls = plan(entries(1001, 10), BatchLimits::default());
        assert_eq!(
            calls.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![500, 500, 1]
        );
        let calls = plan(entries(500, 10), BatchLimits::default());
        assert_eq!(calls.len(), 1);
    }

    #[test]
    fn splits_at_five_mebibytes_including_the_edge() {
        // Exactly 5 MiB fits in one call.
        let calls = plan(entries(5, 1024 * 1024), BatchLimits::default());
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), vec![5]);
        // One byte more needs a second call.
        let mut six = entries(5, 1024 * 1024);
        six[4].size += 1;
        let calls = plan(six, BatchLimits::default());
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 1]);
        for call in &calls {
            assert!(call.iter().map(|e| e.size).sum::<usize>() <= MAX_REQUEST_BYTES);
        }
    }

    #[test]
    fn an_entry_larger_than_the_limit_still_goes_alone() {
        // Oversized records are rejected before batching; the batcher never loops on one.
        let calls = plan(entries(2, MAX_REQUEST_BYTES + 1), BatchLimits::default());
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 1]);
    }

    #[test]
    fn strict_ordering_puts_one_entry_per_key_per_call_and_keeps_order() {
        let mut list = entries(4, 10);
        list[2].key = "k0".into(); // ids 0 and 2 share a key
        list[3].key = "k0".into(); // and 3
        let calls = plan(list.clone(), BatchLimits::default());
        assert_eq!(ids(&calls), vec![vec![0, 1], vec![2], vec![3]]);
        let relaxed = BatchLimits {
            strict_ordering: false,
            ..BatchLimits::default()
        };
        assert_eq!(ids(&plan(list, relaxed)), vec![vec![0, 1, 2, 3]]);
    }

    #[test]
    fn deferred_keys_keep_their_order_behind_a_full_call() {
        let mut list = entries(4, 10);
        list[1].key = "k0".into();
        list[3].key = "k0".into();
        let limits = BatchLimits {
            max_entries: 2,
            ..BatchLimits::default()
        };
        let calls = plan(list, limits);
        // 1 and 3 share key k0 with 0; 3 must never come before 1.
        let flat: Vec<usize> = ids(&calls).concat();
        let pos = |id| flat.iter().position(|&x| x == id).unwrap();
        assert!(pos(0) < pos(1) && pos(1) < pos(3));
        assert!(calls.iter().all(|c| c.len() <= 2));
    }

    #[test]
    fn one_stream_per_call() {
        let mut list = entries(3, 10);
        list[1].stream = "other";
        let calls = plan(list, BatchLimits::default());
        assert_eq!(ids(&calls), vec![vec![0, 2], vec![1]]);
    }
}
