//! The lease table as the coordinator sees it: one [`Lease`] item per shard, with KCL's
//! attribute names (see [`super::dynamo`] for the item layout), behind the [`LeaseTable`]
//! trait so the coordination logic runs against an in-memory table in unit tests.
//!
//! Every write that depends on holding a lease is conditional on `leaseOwner` and
//! `leaseCounter` both being what this worker last wrote: a worker that lost a lease can no
//! longer renew it or move its checkpoint ([`LeaseError::Conflict`]).

use async_trait::async_trait;

use super::super::position::ShardProgress;

/// Where the next owner of a shard starts (KCL's `checkpoint` plus
/// `checkpointSubSequenceNumber`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Checkpoint {
    TrimHorizon,
    /// Not read yet; the first owner pins it ([`super::decide::pin_latest`]) before reading.
    Latest,
    /// KCL's `AT_TIMESTAMP` sentinel. `millis` (the `checkpointTimestamp` attribute, epoch
    /// milliseconds, this connector's own): read the records that arrived at or after it; a
    /// `LATEST` lease pinned by its first owner. Without it (an item written by KCL, or a lease
    /// made for `startPosition: at_timestamp`): the configured `startTimestamp`, as in KCL.
    AtTimestamp {
        millis: Option<i64>,
    },
    /// The shard is closed and was read to its end: its children may be read.
    ShardEnd,
    /// After this Kinesis record; `sub_sequence` > 0: after that user record of a KPL
    /// aggregate (the rest of it is still to be read), 0: after the whole record.
    Sequence {
        sequence: String,
        sub_sequence: u64,
    },
}

impl Checkpoint {
    /// The `checkpoint` attribute's text.
    pub(crate) fn text(&self) -> &str {
        match self {
            Checkpoint::TrimHorizon => "TRIM_HORIZON",
            Checkpoint::Latest => "LATEST",
            Checkpoint::AtTimestamp { .. } => "AT_TIMESTAMP",
            Checkpoint::ShardEnd => "SHARD_END",
            Checkpoint::Sequence { sequence, .. } => sequence,
        }
    }

    pub(crate) fn sub_sequence(&self) -> u64 {
        match self {
            Checkpoint::Sequence { sub_sequence, .. } => *sub_sequence,
            _ => 0,
        }
    }

    /// The `checkpointTimestamp` attribute's value (only an `AT_TIMESTAMP` checkpoint has one).
    pub(crate) fn timestamp(&self) -> Option<i64> {
        match self {
            Checkpoint::AtTimestamp { millis } => *millis,
            _ => None,
        }
    }

    /// Reads the three attributes back; `None` for text that is neither a sentinel nor a
    /// sequence number. `timestamp` counts only with `AT_TIMESTAMP` (KCL, writing a sequence
    /// number over it, would leave the attribute behind).
    pub(crate) fn parse(
        text: &str,
        sub_sequence: u64,
        timestamp: Option<i64>,
    ) -> Option<Checkpoint> {
        Some(match text {
            "TRIM_HORIZON" => Checkpoint::TrimHorizon,
            "LATEST" => Checkpoint::Latest,
            "AT_TIMESTAMP" => Checkpoint::AtTimestamp { millis: timestamp },
            "SHARD_END" => Checkpoint::ShardEnd,
            digits if super::super::sequence::is_valid(digits) => Checkpoint::Sequence {
                sequence: digits.to_owned(),
                sub_sequence,
            },
            _ => return None,
        })
    }

    /// The checkpoint after a delivered (and acknowledged) record. `None` for the first user
    /// record of an aggregate (sub-sequence 0 while more follow): KCL's sub-sequence 0 means
    /// the whole record, so that state cannot be written; the older checkpoint stays, which
    /// repeats at most that one user record after a handoff and never loses one.
    pub(crate) fn after(progress: &ShardProgress) -> Option<Checkpoint> {
        match progress {
            ShardProgress::After {
                sequence,
                sub_sequence: None,
            } => Some(Checkpoint::Sequence {
                sequence: sequence.clone(),
                sub_sequence: 0,
            }),
            ShardProgress::After {
                sub_sequence: Some(0),
                ..
            } => None,
            ShardProgress::After {
                sequence,
                sub_sequence: Some(k),
            } => Some(Checkpoint::Sequence {
                sequence: sequence.clone(),
                sub_sequence: *k,
            }),
            ShardProgress::Finished => Some(Checkpoint::ShardEnd),
        }
    }

    /// The reader's resume point for a sequence checkpoint.
    pub(crate) fn progress(&self) -> Option<ShardProgress> {
        match self {
            Checkpoint::Sequence {
                sequence,
                sub_sequence,
            } => Some(ShardProgress::After {
                sequence: sequence.clone(),
                sub_sequence: (*sub_sequence > 0).then_some(*sub_sequence),
            }),
            Checkpoint::ShardEnd => Some(ShardProgress::Finished),
            _ => None,
        }
    }
}

/// One lease item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lease {
    /// `leaseKey`: the shard id.
    pub key: String,
    /// `leaseOwner`: the worker holding it; `None` when released.
    pub owner: Option<String>,
    /// `leaseCounter`: raised by every renewal and take.
    pub counter: u64,
    /// `checkpointOwner` (KCL 3's graceful handoff): the previous owner of a stolen lease,
    /// which writes the final checkpoint and then removes this attribute; the new owner
    /// reads only after that.
    pub checkpoint_owner: Option<String>,
    pub checkpoint: Checkpoint,
    /// `ownerSwitchesSinceCheckpoint`.
    pub owner_switches: u64,
    /// `parentShardId`.
    pub parents: Vec<String>,
    /// `childShardIds` (written with the `SHARD_END` checkpoint).
    pub children: Vec<String>,
    /// `startingHashKey`, `endingHashKey`.
    pub hash_range: Option<(String, String)>,
}

impl Lease {
    /// A new, unowned lease for a shard.
    pub(crate) fn new(
        key: impl Into<String>,
        checkpoint: Checkpoint,
        parents: Vec<String>,
        hash_range: Option<(String, String)>,
    ) -> Lease {
        Lease {
            key: key.into(),
            owner: None,
            counter: 0,
            checkpoint_owner: None,
            checkpoint,
            owner_switches: 0,
            parents,
            children: Vec::new(),
            hash_range,
        }
    }
}

/// Why a table call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LeaseError {
    /// A conditional write found another owner or counter: the lease is not (or no longer)
    /// this worker's.
    #[error("lease {key} changed hands (conditional check failed)")]
    Conflict { key: String },
    /// The table answered with an error or did not answer; worth retrying.
    #[error("{0}")]
    Unavailable(String),
    /// The table cannot be used as configured (permissions, a wrong key schema).
    #[error("{0}")]
    Unusable(String),
}

/// A checkpoint to write: conditional on `owner` holding the lease at `counter`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckpointWrite<'a> {
    pub key: &'a str,
    pub owner: &'a str,
    pub counter: u64,
    pub checkpoint: &'a Checkpoint,
    /// The shard's children, written with `SHARD_END` (empty otherwise).
    pub children: &'a [String],
}

/// The table operations coordination needs.
#[async_trait]
pub(crate) trait LeaseTable: Send + Sync + 'static {
    /// Creates the table when it is missing and waits until it is usable.
    async fn ensure(&self) -> Result<(), LeaseError>;

    /// Every lease (a strongly consistent read of the whole table).
    async fn list(&self) -> Result<Vec<Lease>, LeaseError>;

    /// Writes a new lease unless the shard has one; `false` when it had.
    async fn create(&self, lease: &Lease) -> Result<bool, LeaseError>;

    /// Takes `lease` (as last seen: same counter) for `owner`; returns the new counter. With
    /// `hand_off`, the previous owner becomes `checkpointOwner`: it is alive and writes the
    /// final checkpoint itself ([`LeaseTable::hand_off`]).
    async fn take(&self, lease: &Lease, owner: &str, hand_off: bool) -> Result<u64, LeaseError>;

    /// The previous owner of a stolen lease (`checkpointOwner` = `from`) writes its final
    /// checkpoint, if it has a newer one, and removes `checkpointOwner`.
    async fn hand_off(
        &self,
        key: &str,
        from: &str,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<(), LeaseError>;

    /// Renews a lease `owner` holds at `counter`; returns the new counter.
    async fn renew(&self, key: &str, owner: &str, counter: u64) -> Result<u64, LeaseError>;

    /// Moves the checkpoint of a lease its owner holds at its counter (and removes any
    /// `checkpointOwner`: from now on only this owner writes it).
    async fn checkpoint(&self, write: CheckpointWrite<'_>) -> Result<(), LeaseError>;

    /// Gives a lease up (removes `leaseOwner`, raises the counter) so another worker can
    /// take it at once.
    async fn release(&self, key: &str, owner: &str, counter: u64) -> Result<(), LeaseError>;
}
