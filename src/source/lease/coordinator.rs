//! The running coordination of one source instance: a keeper task that renews, takes,
//! checkpoints and releases leases and starts a shard reader for each lease it holds, and
//! the bookkeeping the engine consults for every record ([`Coordinator::position_for`]) and
//! acknowledgement ([`Coordinator::ack`]).
//!
//! # Fencing
//!
//! A record of a shard goes to Conduit only while this worker holds its lease *and* the
//! last successful renewal is recent enough ([`decide::valid_until`]): another worker takes
//! an expired lease only a whole lease duration after it saw the counter change, so this
//! worker has stopped emitting by then even when it cannot reach the table at all. A lease
//! lost to a failed conditional write stops at once. A lost shard's reader is aborted, and
//! its records still buffered in the engine are dropped: the shard is "draining" until a
//! marker sent after the abort ([`ShardEvent::Forget`]) comes out of the engine's channel,
//! and is not claimed again before that, so no record of an old ownership is emitted under a
//! new one. Every table write is conditional on owner and counter, so a worker that lost a
//! lease never writes its checkpoint.
//!
//! # Checkpoints
//!
//! Only what Conduit acknowledged is checkpointed: the last acked record of each shard, at
//! most every `checkpointInterval`, `SHARD_END` once a closed shard's last record is acked.
//! At Teardown (after Stop, when Conduit has acked everything it received) the keeper
//! writes the final checkpoints and releases its leases, so the next owner starts right
//! after them without waiting for expiry and without repeats.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::super::position::ShardProgress;
use super::super::reader::{Mode, ReaderContext, StartFrom};
use super::super::records::ReadRecord;
use super::super::sequence;
use super::super::settings::InitialPosition;
use super::decide::ListedShard;
use super::keeper::Keeper;
use super::position::LeasePosition;
use super::table::{Checkpoint, LeaseTable};

/// How coordination runs.
#[derive(Debug, Clone)]
pub(crate) struct LeaseConfig {
    pub worker_id: String,
    pub lease_duration: Duration,
    pub checkpoint_interval: Duration,
    pub initial: InitialPosition,
    pub discovery_interval: Duration,
}

impl LeaseConfig {
    /// Renewals happen three times per lease duration, as in KCL.
    pub(super) fn renew_interval(&self) -> Duration {
        self.lease_duration / 3
    }

    /// The table is read five times per lease duration: a dead worker's lease is seen
    /// unchanged sooner (expiry counts from when the counter was last seen to change), so
    /// its shards move within about 1.4 lease durations.
    pub(super) fn scan_interval(&self) -> Duration {
        self.lease_duration / 5
    }
}

/// What the engine and the keeper know of one held shard.
#[derive(Debug)]
pub(super) struct Track {
    /// Records of the shard may go to Conduit.
    pub(super) emitting: bool,
    pub(super) valid_until: Instant,
    /// Where this ownership started; acks at or before it are of an earlier one.
    pub(super) floor: Option<ShardProgress>,
    pub(super) last_emitted: Option<ShardProgress>,
    pub(super) acked: Option<ShardProgress>,
    /// The reader read the closed shard to its end.
    pub(super) end_seen: bool,
    /// The checkpoint acknowledged records allow.
    pub(super) allowed: Option<Checkpoint>,
    /// The lease was stolen: acks are still collected for the final checkpoint.
    pub(super) handing_off: bool,
}

impl Track {
    pub(super) fn nothing_in_flight(&self) -> bool {
        self.last_emitted == self.acked
    }
}

#[derive(Debug, Default)]
pub(super) struct Tracks {
    pub(super) shards: HashMap<String, Track>,
    pub(super) draining: BTreeSet<String>,
}

pub(super) type SharedTracks = Arc<Mutex<Tracks>>;

pub(super) fn lock(tracks: &SharedTracks) -> std::sync::MutexGuard<'_, Tracks> {
    tracks.lock().unwrap_or_else(|e| e.into_inner())
}

/// Orders two progress states of one shard (a whole record after its user records).
fn order(a: &ShardProgress, b: &ShardProgress) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (ShardProgress::Finished, ShardProgress::Finished) => Ordering::Equal,
        (ShardProgress::Finished, _) => Ordering::Greater,
        (_, ShardProgress::Finished) => Ordering::Less,
        (
            ShardProgress::After {
                sequence: sa,
                sub_sequence: ka,
            },
            ShardProgress::After {
                sequence: sb,
                sub_sequence: kb,
            },
        ) => sequence::compare(sa, sb).then_with(|| match (ka, kb) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => x.cmp(y),
        }),
    }
}

/// A source instance's share of the stream.
pub(crate) struct Coordinator {
    tracks: SharedTracks,
    shutdown: mpsc::Sender<oneshot::Sender<()>>,
    keeper: JoinHandle<()>,
    lister: JoinHandle<()>,
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.keeper.abort();
        self.lister.abort();
    }
}

impl Coordinator {
    /// Starts listing shards and keeping leases; readers feed `context.events`.
    pub(crate) fn start(
        table: Arc<dyn LeaseTable>,
        config: LeaseConfig,
        context: Arc<ReaderContext>,
        mode: Mode,
    ) -> Coordinator {
        let tracks = SharedTracks::default();
        let (listing_tx, listing_rx) = watch::channel(None);
        let lister = tokio::spawn(list_shards(
            context.clone(),
            config.discovery_interval,
            listing_tx,
        ));
        let (shutdown, shutdown_rx) = mpsc::channel(1);
        tracing::info!(
            worker = %config.worker_id,
            lease_duration_ms = config.lease_duration.as_millis() as u64,
            "sharing the stream's shards through the lease table"
        );
        let keeper = Keeper::new(table, config, context, mode, tracks.clone(), listing_rx);
        Coordinator {
            tracks,
            shutdown,
            keeper: tokio::spawn(keeper.run(shutdown_rx)),
            lister,
        }
    }

    /// The position of a record about to go to Conduit, or `None` when the shard's lease is
    /// not (or no longer safely) held: the record is dropped.
    pub(crate) fn position_for(&self, shard: &str, record: &ReadRecord) -> Option<Vec<u8>> {
        let mut tracks = lock(&self.tracks);
        let track = tracks.shards.get_mut(shard)?;
        if !track.emitting || Instant::now() >= track.valid_until {
            return None;
        }
        let sub_sequence = if record.last_of_record {
            None
        } else {
            record.sub_sequence
        };
        track.last_emitted = Some(ShardProgress::After {
            sequence: record.sequence.clone(),
            sub_sequence,
        });
        Some(LeasePosition::encode(shard, &record.sequence, sub_sequence))
    }

    /// Everything up to `sequence` was seen (an empty fan-out event); checkpointed when no
    /// record of the shard waits for its ack.
    pub(crate) fn progressed(&self, shard: &str, sequence: &str) {
        let mut tracks = lock(&self.tracks);
        let Some(track) = tracks.shards.get_mut(shard) else {
            return;
        };
        if track.emitting && !track.end_seen && track.nothing_in_flight() {
            let progress = ShardProgress::After {
                sequence: sequence.to_owned(),
                sub_sequence: None,
            };
            track.last_emitted = Some(progress.clone());
            track.acked = Some(progress);
            track.allowed = Some(Checkpoint::Sequence {
                sequence: sequence.to_owned(),
                sub_sequence: 0,
            });
        }
    }

    /// The shard was read to its end: `SHARD_END` once its last record is acked.
    pub(crate) fn finished(&self, shard: &str) {
        let mut tracks = lock(&self.tracks);
        if let Some(track) = tracks.shards.get_mut(shard) {
            track.end_seen = true;
            if track.nothing_in_flight() {
                track.allowed = Some(Checkpoint::ShardEnd);
            }
        }
    }

    /// The marker sent after a lost shard's reader stopped came through: nothing of that
    /// ownership is left in the engine's channel.
    pub(crate) fn drained(&self, shard: &str) {
        let mut tracks = lock(&self.tracks);
        tracks.draining.remove(shard);
        if tracks
            .shards
            .get(shard)
            .is_some_and(|t| !t.emitting && !t.handing_off)
        {
            tracks.shards.remove(shard);
        }
    }

    /// Conduit acknowledged these records (in read order).
    pub(crate) fn ack(&self, positions: &[Vec<u8>]) {
        let mut tracks = lock(&self.tracks);
        for bytes in positions {
            let Ok(position) = LeasePosition::decode(bytes) else {
                continue;
            };
            let Some(track) = tracks.shards.get_mut(&position.shard) else {
                continue;
            };
            let (Some(last), progress) = (&track.last_emitted, &position.progress) else {
                continue;
            };
            let after_floor = track
                .floor
                .as_ref()
                .is_none_or(|floor| order(progress, floor).is_gt());
            if !after_floor || order(progress, last).is_gt() {
                continue;
            }
            track.acked = Some(progress.clone());
            if let Some(checkpoint) = Checkpoint::after(progress) {
                track.allowed = Some(checkpoint);
            }
            if track.end_seen && track.nothing_in_flight() {
                track.allowed = Some(Checkpoint::ShardEnd);
            }
        }
    }

    /// Writes the final checkpoints and releases every lease (Teardown). Waits at most
    /// `timeout`.
    pub(crate) async fn shutdown(&self, timeout: Duration) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.shutdown.send(done_tx).await.is_ok()
            && tokio::time::timeout(timeout, done_rx).await.is_err()
        {
            tracing::warn!(
                timeout_ms = timeout.as_millis() as u64,
                "releasing the leases did not finish in time; other instances take them \
                 over once they expire"
            );
        }
    }
}

/// Lists the shards every discovery interval for the keeper (and the readers' view of
/// which shards are closed).
async fn list_shards(
    context: Arc<ReaderContext>,
    interval: Duration,
    listing: watch::Sender<Option<Arc<Vec<ListedShard>>>>,
) {
    loop {
        match context.api.list_shards_with_ranges().await {
            Ok(shards) => {
                if let Ok(mut closed) = context.closed.write() {
                    closed.clear();
                    closed.extend(shards.iter().map(|(s, _)| (s.id.clone(), s.closed)));
                }
                let shards = shards
                    .into_iter()
                    .map(|(info, hash_range)| ListedShard { info, hash_range })
                    .collect();
                if listing.send(Some(Arc::new(shards))).is_err() {
                    return;
                }
            }
            Err(error) => tracing::warn!(
                %error,
                retry_in_ms = interval.as_millis() as u64,
                "listing shards failed; retrying at the next discovery"
            ),
        }
        tokio::time::sleep(interval).await;
    }
}

/// Where a reader starts from a lease's checkpoint.
pub(crate) fn start_from(checkpoint: &Checkpoint, initial: InitialPosition) -> StartFrom {
    match checkpoint {
        Checkpoint::Sequence { .. } | Checkpoint::ShardEnd => StartFrom::Resume(
            checkpoint
                .progress()
                .expect("sequence and SHARD_END checkpoints have a progress"),
        ),
        Checkpoint::TrimHorizon => StartFrom::TrimHorizon,
        // The keeper pins LATEST before starting a reader; this is not reached.
        Checkpoint::Latest => StartFrom::Initial(InitialPosition::Latest),
        Checkpoint::AtTimestamp { millis: Some(ms) } => {
            StartFrom::Initial(InitialPosition::AtTimestamp(*ms))
        }
        Checkpoint::AtTimestamp { millis: None } => match initial {
            at @ InitialPosition::AtTimestamp(_) => StartFrom::Initial(at),
            // The item asks for a timestamp this pipeline was not given: read everything.
            _ => StartFrom::TrimHorizon,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_timestamp_is_read_whatever_the_configured_start() {
        let pinned = Checkpoint::AtTimestamp {
            millis: Some(1_800_000_000_000),
        };
        for initial in [
            InitialPosition::Latest,
            InitialPosition::TrimHorizon,
            InitialPosition::AtTimestamp(5),
        ] {
            assert_eq!(
                start_from(&pinned, initial),
                StartFrom::Initial(InitialPosition::AtTimestamp(1_800_000_000_000))
            );
        }
        // The bare sentinel means the configured startTimestamp (KCL's meaning), else all.
        let bare = Checkpoint::AtTimestamp { millis: None };
        assert_eq!(
            start_from(&bare, InitialPosition::AtTimestamp(5)),
            StartFrom::Initial(InitialPosition::AtTimestamp(5))
        );
        assert_eq!(
            start_from(&bare, InitialPosition::Latest),
            StartFrom::TrimHorizon
        );
    }
}
