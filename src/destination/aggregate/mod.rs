//! KPL aggregation on write (`aggregation.*`): many small user records in one Kinesis record,
//! per predicted shard. Pure logic; the writer's lanes use it (`writer/aggregating.rs`).
//!
//! * [`encode`]: the aggregate format, written by hand (magic, protobuf, MD5).
//! * [`shards`]: which shard a record lands on, from the stream's hash key ranges.
//! * [`pack`]: which user records share an aggregate in a call, keeping per-key order.

pub(crate) mod encode;
pub(crate) mod pack;
pub(crate) mod shards;

/// Kinesis' largest record: the limit of `aggregation.maxBytes`.
pub(crate) const MAX_AGGREGATE_BYTES: usize = 1024 * 1024;
/// The KPL's default aggregate size.
pub(crate) const DEFAULT_MAX_BYTES: usize = 51_200;

/// A hasher for keys that are hashes already (`batch::key_hash` values): it uses them as
/// they are instead of hashing them again.
#[derive(Default)]
pub(crate) struct PrehashedHasher(u64);

impl std::hash::Hasher for PrehashedHasher {
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

pub(crate) type Prehashed = std::hash::BuildHasherDefault<PrehashedHasher>;
