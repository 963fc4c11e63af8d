//! Which shard a record lands on, predicted from the open shards' hash key ranges as Kinesis
//! places records: the explicit hash key when there is one, else the MD5 of the partition key
//! read as a 128-bit big-endian number.

use std::sync::Arc;

use md5::{Digest, Md5};

/// One open shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShardRange {
    pub id: Arc<str>,
    pub start: u128,
    pub end: u128,
}

/// The open shards of a stream, by hash key range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShardMap {
    /// Sorted by `start`; ranges do not overlap.
    shards: Vec<ShardRange>,
    /// `start` of each shard in decimal: the explicit hash key that puts an aggregate there.
    start_keys: Vec<Arc<str>>,
    /// One shard holds the whole hash key range: every record lands there, no hash needed.
    whole_range: bool,
}

/// Why a listing is no usable map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ShardMapError {
    #[error("the stream lists no open shard")]
    NoOpenShard,
    #[error("shard {id} has a hash key range that is not two decimals from 0 to 2^128-1 ({start:?}..{end:?})")]
    BadRange {
        id: String,
        start: String,
        end: String,
    },
    #[error("the hash key ranges of shards {first} and {second} overlap")]
    Overlap { first: String, second: String },
}

impl ShardMap {
    /// The map of the open shards listed as (id, starting hash key, ending hash key).
    pub(crate) fn from_listing<'a>(
        open_shards: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    ) -> Result<ShardMap, ShardMapError> {
        let mut shards = Vec::new();
        for (id, start, end) in open_shards {
            let bad = || ShardMapError::BadRange {
                id: id.to_string(),
                start: start.to_string(),
                end: end.to_string(),
            };
            let start_value: u128 = start.parse().map_err(|_| bad())?;
            let end_value: u128 = end.parse().map_err(|_| bad())?;
            if end_value < start_value {
                return Err(bad());
            }
            shards.push(ShardRange {
                id: Arc::from(id),
                start: start_value,
                end: end_value,
            });
        }
        if shards.is_empty() {
            return Err(ShardMapError::NoOpenShard);
        }
        shards.sort_by_key(|shard| shard.start);
        for pair in shards.windows(2) {
            if pair[1].start <= pair[0].end {
                return Err(ShardMapError::Overlap {
                    first: pair[0].id.to_string(),
                    second: pair[1].id.to_string(),
                });
            }
        }
        let start_keys = shards
            .iter()
            .map(|shard| Arc::from(shard.start.to_string()))
            .collect();
        let whole_range = shards.len() == 1 && shards[0].start == 0 && shards[0].end == u128::MAX;
        Ok(ShardMap {
            shards,
            start_keys,
            whole_range,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.len()
    }

    pub(crate) fn shard(&self, index: usize) -> &ShardRange {
        &self.shards[index]
    }

    /// The explicit hash key that puts a record on shard `index`: its range's start.
    pub(crate) fn start_key(&self, index: usize) -> &Arc<str> {
        &self.start_keys[index]
    }

    /// Index of the shard whose range holds `hash`; `None` in a gap between ranges (a
    /// listing taken in the middle of a reshard).
    pub(crate) fn shard_of(&self, hash: u128) -> Option<usize> {
        let after = self.shards.partition_point(|shard| shard.start <= hash);
        let index = after.checked_sub(1)?;
        (hash <= self.shards[index].end).then_some(index)
    }

    /// Index of the shard a record with these keys lands on.
    pub(crate) fn predict(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
    ) -> Option<usize> {
        if self.whole_range {
            // The writer only sends valid explicit hash keys, all of which are in range.
            return Some(0);
        }
        self.shard_of(hash_key_of(partition_key, explicit_hash_key)?)
    }
}

/// The 128-bit hash key Kinesis places a record by; `None` for an explicit hash key that is
/// not a decimal up to 2^128-1 (the writer never sends such a key).
pub(crate) fn hash_key_of(partition_key: &str, explicit_hash_key: Option<&str>) -> Option<u128> {
    match explicit_hash_key {
        Some(key) => key.parse().ok(),
        None => Some(u128::from_be_bytes(
            Md5::digest(partition_key.as_bytes()).into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: &str = "340282366920938463463374607431768211455";
    const HALF: &str = "170141183460469231731687303715884105727";
    const HALF_PLUS_ONE: &str = "170141183460469231731687303715884105728";

    fn two_shards() -> ShardMap {
        // Listed out of order on purpose.
        ShardMap::from_listing([
            ("shardId-000000000001", HALF_PLUS_ONE, MAX),
            ("shardId-000000000000", "0", HALF),
        ])
        .unwrap()
    }

    #[test]
    fn hashes_are_md5_of_the_partition_key_big_endian() {
        // MD5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(
            hash_key_of("a", None),
            Some(0x0cc175b9c0f1b6a831c399e269772661)
        );
        assert_eq!(hash_key_of("a", Some("42")), Some(42));
        assert_eq!(hash_key_of("a", Some(MAX)), Some(u128::MAX));
        assert_eq!(hash_key_of("a", Some("x")), None);
    }

    #[test]
    fn predicts_the_shard_whose_range_holds_the_hash() {
        let map = two_shards();
        assert_eq!(map.len(), 2);
        assert_eq!(&*map.shard(0).id, "shardId-000000000000");
        assert_eq!(map.shard_of(0), Some(0));
        assert_eq!(map.shard_of(u128::MAX / 2), Some(0));
        assert_eq!(map.shard_of(u128::MAX / 2 + 1), Some(1));
        assert_eq!(map.shard_of(u128::MAX), Some(1));
        // MD5("a") starts with 0x0c: the lower half.
        assert_eq!(map.predict("a", None), Some(0));
        assert_eq!(map.predict("a", Some(MAX)), Some(1));
        assert_eq!(&**map.start_key(1), HALF_PLUS_ONE);
        // The start key of a shard predicts that shard.
        for index in 0..map.len() {
            assert_eq!(map.predict("any", Some(map.start_key(index))), Some(index));
        }
    }

    #[test]
    fn one_shard_over_the_whole_range_takes_everything() {
        let map = ShardMap::from_listing([("only", "0", MAX)]).unwrap();
        assert_eq!(map.predict("any", None), Some(0));
        assert_eq!(map.predict("any", Some("12")), Some(0));
        // One shard over part of the range (a listing mid-reshard) still checks.
        let part = ShardMap::from_listing([("half", "0", HALF)]).unwrap();
        assert_eq!(part.predict("a", Some(MAX)), None);
    }

    #[test]
    fn gaps_predict_nothing() {
        let map = ShardMap::from_listing([("a", "10", "20"), ("b", "30", "40")]).unwrap();
        assert_eq!(map.shard_of(5), None);
        assert_eq!(map.shard_of(25), None);
        assert_eq!(map.shard_of(41), None);
        assert_eq!(map.shard_of(30), Some(1));
    }

    #[test]
    fn bad_listings_are_errors() {
        assert_eq!(
            ShardMap::from_listing([]).unwrap_err(),
            ShardMapError::NoOpenShard
        );
        assert!(matches!(
            ShardMap::from_listing([("a", "x", "1")]),
            Err(ShardMapError::BadRange { .. })
        ));
        assert!(matches!(
            ShardMap::from_listing([("a", "5", "1")]),
            Err(ShardMapError::BadRange { .. })
        ));
        assert!(matches!(
            ShardMap::from_listing([("a", "0", "10"), ("b", "10", "20")]),
            Err(ShardMapError::Overlap { .. })
        ));
    }
}
