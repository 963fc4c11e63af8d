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

pub(crate) use crate::destination::batch::Prehashed;
