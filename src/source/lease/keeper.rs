//! The keeper task of [`super::coordinator`]: one loop that renews the held leases, writes
//! checkpoints, reads the table and takes or steals this round's share, hands stolen leases
//! over, releases finished ones, and starts a reader for each held lease whose shard may be
//! read (pinning a `LATEST` checkpoint to a time first). All table writes of a worker happen
//! here, one at a time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::super::reader::{self, Mode, ReaderContext, ReaderEnd, ShardEvent};
use super::super::settings::now_epoch_millis;
use super::coordinator::{lock, start_from, LeaseConfig, SharedTracks, Track};
use super::decide::{self, Claim, ListedShard, Observations, Round};
use super::table::{Checkpoint, CheckpointWrite, Lease, LeaseError, LeaseTable};
use crate::outage::FailureStreak;

/// How many free or expired leases a worker takes per round, so that workers starting
/// together share them instead of the first taking all.
const MAX_TAKES_PER_ROUND: usize = 2;

/// A lease this worker holds.
struct Held {
    lease: Lease,
    counter: u64,
    valid_until: Instant,
    /// A stolen lease is read only after its old owner has surely stopped.
    start_after: Instant,
    written: Checkpoint,
    reader: Option<JoinHandle<ReaderEnd>>,
    /// Stolen: reading waits until the previous owner handed over (or `start_after`).
    awaiting_handoff: bool,
}

/// A lease another instance stole from this one, whose final checkpoint is still to write.
struct HandOff {
    /// Write what is acknowledged by then, even if records are still in flight.
    deadline: Instant,
    written: Checkpoint,
}

pub(super) struct Keeper {
    table: Arc<dyn LeaseTable>,
    config: LeaseConfig,
    context: Arc<ReaderContext>,
    mode: Mode,
    tracks: SharedTracks,
    listing: watch::Receiver<Option<Arc<Vec<ListedShard>>>>,
    held: BTreeMap<String, Held>,
    observations: Observations,
    /// The table as last scanned.
    snapshot: Vec<Lease>,
    table_failures: FailureStreak,
    handoffs: BTreeMap<String, HandOff>,
    /// Since when each shard's `SHARD_END` has waited for a listing that names its children.
    ended_since: HashMap<String, Instant>,
}

impl Keeper {
    pub(super) fn new(
        table: Arc<dyn LeaseTable>,
        config: LeaseConfig,
        context: Arc<ReaderContext>,
        mode: Mode,
        tracks: SharedTracks,
        listing: watch::Receiver<Option<Arc<Vec<ListedShard>>>>,
    ) -> Keeper {
        Keeper {
            table,
            config,
            context,
            mode,
            tracks,
            listing,
            held: BTreeMap::new(),
            observations: Observations::default(),
            snapshot: Vec::new(),
            table_failures: FailureStreak::default(),
            handoffs: BTreeMap::new(),
            ended_since: HashMap::new(),
        }
    }

    pub(super) async fn run(mut self, mut shutdown: mpsc::Receiver<oneshot::Sender<()>>) {
        let renew_interval = self.config.renew_interval();
        let scan_interval = self.config.scan_interval();
        let tick = scan_interval
            .min(self.config.checkpoint_interval)
            .max(Duration::from_millis(50));
        let start = Instant::now();
        let (mut next_renew, mut next_scan) = (start, start);
        let mut next_checkpoint = start + self.config.checkpoint_interval;
        loop {
            let now = Instant::now();
            self.fence(now);
            self.hand_off(now, false).await;
            if now >= next_renew {
                next_renew = now + renew_interval;
                self.renew().await;
            }
            if now >= next_checkpoint {
                next_checkpoint = now + self.config.checkpoint_interval;
                self.write_checkpoints().await;
            }
            if now >= next_scan {
                next_scan = now + scan_interval;
                self.scan().await;
            }
            self.start_readers().await;
            tokio::select! {
                biased;
                done = shutdown.recv() => {
                    self.release_all().await;
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
                _ = tokio::time::sleep(tick) => {}
            }
        }
    }

    fn me(&self) -> &str {
        &self.config.worker_id
    }

    fn table_failed(&mut self, what: &'static str, error: &LeaseError) {
        match self.table_failures.failed(Instant::now()) {
            Some(report) => tracing::warn!(
                %error,
                attempt = report.attempt,
                failing_for_s = crate::outage::seconds(report.failing_for),
                "{what} failed; retrying"
            ),
            None => tracing::debug!(%error, "{what} failed; retrying"),
        }
    }

    fn table_succeeded(&mut self) {
        if let Some(recovery) = self.table_failures.succeeded(Instant::now()) {
            tracing::info!(
                failed_attempts = recovery.failed_attempts,
                failing_for_s = crate::outage::seconds(recovery.failing_for),
                "the lease table answers again"
            );
        }
    }

    /// Gives up leases whose last renewal is too old to emit safely.
    fn fence(&mut self, now: Instant) {
        let stale: Vec<String> = self
            .held
            .iter()
            .filter(|(_, held)| now >= held.valid_until)
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            self.lose(&key, "not renewed within the lease duration", false);
        }
    }

    /// Stops reading a shard whose lease this worker no longer holds. `hand_off`: the table
    /// refused a write, maybe because another instance stole the lease; then this one still
    /// writes the final checkpoint once the records it emitted are acknowledged.
    fn lose(&mut self, key: &str, reason: &str, hand_off: bool) {
        let mut written = None;
        if let Some(held) = self.held.remove(key) {
            if let Some(reader) = held.reader {
                reader.abort();
            }
            written = Some(held.written);
        }
        {
            let mut tracks = lock(&self.tracks);
            if let Some(track) = tracks.shards.get_mut(key) {
                track.emitting = false;
                track.handing_off = hand_off;
            }
            tracks.draining.insert(key.to_owned());
        }
        if let (true, Some(written)) = (hand_off, written) {
            let deadline = Instant::now() + self.config.lease_duration / 2;
            self.handoffs
                .insert(key.to_owned(), HandOff { deadline, written });
        }
        let events = self.context.events.clone();
        let shard: Arc<str> = Arc::from(key);
        tokio::spawn(async move {
            let _ = events.send(ShardEvent::Forget { shard }).await;
        });
        if hand_off {
            // Usually rebalancing: another instance took the lease over.
            tracing::info!(shard = %key, reason, "lease lost; this instance stopped reading the shard");
        } else {
            tracing::warn!(shard = %key, reason, "lease lost; this instance stopped reading the shard");
        }
    }

    async fn renew(&mut self) {
        let keys: Vec<(String, u64)> = self
            .held
            .iter()
            .map(|(key, held)| (key.clone(), held.counter))
            .collect();
        for (key, counter) in keys {
            let sent = Instant::now();
            match self.table.renew(&key, self.me(), counter).await {
                Ok(next) => {
                    self.table_succeeded();
                    let valid_until = decide::valid_until(sent, self.config.lease_duration);
                    if let Some(held) = self.held.get_mut(&key) {
                        held.counter = next;
                        held.valid_until = valid_until;
                    }
                    if let Some(track) = lock(&self.tracks).shards.get_mut(&key) {
                        track.valid_until = valid_until;
                    }
                }
                Err(LeaseError::Conflict { .. }) => {
                    self.lose(&key, "another instance took the lease", true)
                }
                Err(error) => self.table_failed("renewing a lease", &error),
            }
        }
    }

    /// Writes each shard's checkpoint that acknowledgements moved; a shard at `SHARD_END`
    /// is released, as it has nothing more to read.
    async fn write_checkpoints(&mut self) {
        let due: Vec<(String, u64, Checkpoint)> = {
            let tracks = lock(&self.tracks);
            self.held
                .iter()
                .filter_map(|(key, held)| {
                    let allowed = tracks.shards.get(key)?.allowed.clone()?;
                    (allowed != held.written).then(|| (key.clone(), held.counter, allowed))
                })
                .collect()
        };
        let listing = self.listing.borrow().clone();
        for (key, counter, checkpoint) in due {
            let children = match (&checkpoint, &listing) {
                (Checkpoint::ShardEnd, Some(shards)) => decide::children(shards, &key),
                _ => Vec::new(),
            };
            // A closed shard has children; the listing may not show them yet (it is
            // refreshed every discovery interval). Wait a few intervals for childShardIds.
            if checkpoint == Checkpoint::ShardEnd && children.is_empty() {
                let since = *self
                    .ended_since
                    .entry(key.clone())
                    .or_insert_with(Instant::now);
                if since.elapsed() < self.config.discovery_interval * 3 {
                    continue;
                }
            }
            self.ended_since.remove(&key);
            match self
                .table
                .checkpoint(CheckpointWrite {
                    key: &key,
                    owner: self.me(),
                    counter,
                    checkpoint: &checkpoint,
                    children: &children,
                })
                .await
            {
                Ok(()) => {
                    self.table_succeeded();
                    tracing::debug!(shard = %key, checkpoint = checkpoint.text(), "checkpoint written");
                    let finished = checkpoint == Checkpoint::ShardEnd;
                    if let Some(held) = self.held.get_mut(&key) {
                        held.written = checkpoint;
                    }
                    if finished {
                        self.release(&key).await;
                    }
                }
                Err(LeaseError::Conflict { .. }) => {
                    self.lose(&key, "another instance took the lease", true)
                }
                Err(error) => self.table_failed("writing a checkpoint", &error),
            }
        }
    }

    /// Writes the final checkpoint of stolen leases whose emitted records are all
    /// acknowledged (or whose deadline passed; `now_or_never` at Teardown) and clears
    /// `checkpointOwner`, so the new owner starts right after it.
    async fn hand_off(&mut self, now: Instant, now_or_never: bool) {
        let ready: Vec<(String, Option<Checkpoint>)> = {
            let tracks = lock(&self.tracks);
            self.handoffs
                .iter()
                .filter_map(|(key, hand_off)| {
                    let track = tracks.shards.get(key);
                    let settled = track.is_none_or(Track::nothing_in_flight);
                    if !(settled || now_or_never || now >= hand_off.deadline) {
                        return None;
                    }
                    let checkpoint = track
                        .and_then(|t| t.allowed.clone())
                        .filter(|c| *c != hand_off.written);
                    Some((key.clone(), checkpoint))
                })
                .collect()
        };
        for (key, checkpoint) in ready {
            match self
                .table
                .hand_off(&key, self.me(), checkpoint.as_ref())
                .await
            {
                Ok(()) => tracing::info!(
                    shard = %key,
                    checkpoint = checkpoint.as_ref().map(Checkpoint::text).unwrap_or("unchanged"),
                    "lease handed over to the instance that took it"
                ),
                // Taken after expiry, not stolen: nobody waits for this checkpoint.
                Err(LeaseError::Conflict { .. }) => {}
                Err(error) => {
                    self.table_failed("handing a lease over", &error);
                    if !now_or_never
                        && now < self.handoffs[&key].deadline + self.config.lease_duration
                    {
                        continue;
                    }
                }
            }
            self.handoffs.remove(&key);
            let mut tracks = lock(&self.tracks);
            let draining = tracks.draining.contains(&key);
            // Only the track of the ownership handed over: `scan` does not claim a shard
            // whose handover is pending, but a live ownership's track must never go here.
            if let Some(track) = tracks.shards.get_mut(&key).filter(|t| !t.emitting) {
                track.handing_off = false;
                if !draining {
                    tracks.shards.remove(&key);
                }
            }
        }
    }

    /// Releases one held lease (its checkpoint is written).
    async fn release(&mut self, key: &str) {
        let Some(held) = self.held.remove(key) else {
            return;
        };
        if let Some(reader) = held.reader {
            reader.abort();
        }
        lock(&self.tracks).shards.remove(key);
        match self.table.release(key, self.me(), held.counter).await {
            Ok(()) => tracing::info!(
                shard = %key,
                checkpoint = held.written.text(),
                "lease released"
            ),
            Err(error) => tracing::warn!(
                shard = %key,
                %error,
                "releasing the lease failed; another instance takes it once it expires"
            ),
        }
    }

    /// At Teardown: readers stop, the last acknowledged checkpoints are written and every
    /// lease is released.
    async fn release_all(&mut self) {
        {
            let mut tracks = lock(&self.tracks);
            for (key, held) in self.held.iter_mut() {
                if let Some(reader) = held.reader.take() {
                    reader.abort();
                }
                if let Some(track) = tracks.shards.get_mut(key) {
                    track.emitting = false;
                }
            }
        }
        self.write_checkpoints().await;
        self.hand_off(Instant::now(), true).await;
        let keys: Vec<String> = self.held.keys().cloned().collect();
        for key in keys {
            self.release(&key).await;
        }
    }

    /// Reads the table, adds leases for new shards, and takes or steals this round's share.
    async fn scan(&mut self) {
        let mut leases = match self.table.list().await {
            Ok(leases) => leases,
            Err(error) => return self.table_failed("reading the lease table", &error),
        };
        self.table_succeeded();
        let listing = self.listing.borrow().clone();
        if let Some(shards) = &listing {
            let tracked: BTreeSet<String> = leases.iter().map(|l| l.key.clone()).collect();
            let new = decide::new_leases(shards, &tracked, self.config.initial);
            if !new.is_empty() {
                for lease in &new {
                    if let Err(error) = self.table.create(lease).await {
                        return self.table_failed("adding a lease", &error);
                    }
                }
                tracing::info!(new_leases = new.len(), "leases added for new shards");
                match self.table.list().await {
                    Ok(again) => leases = again,
                    Err(error) => return self.table_failed("reading the lease table", &error),
                }
            }
        }
        let now = Instant::now();
        self.observations.update(&leases, now);
        let expired = self
            .observations
            .expired(&leases, now, self.config.lease_duration);
        let mine: BTreeSet<String> = self.held.keys().cloned().collect();
        // Not claimed again yet: shards whose records of an earlier ownership may still be
        // in the engine's channel, and shards whose handover is still to write (the
        // conflict that started it may have been this worker's own renewal, carried out
        // after it gave up waiting, so the lease is still its own and free to take).
        let mut excluded = lock(&self.tracks).draining.clone();
        excluded.extend(self.handoffs.keys().cloned());
        let (candidates, wanted) = decide::candidates(&Round {
            leases: &leases,
            me: self.me(),
            mine: &mine,
            expired: &expired,
            excluded: &excluded,
            max_takes: MAX_TAKES_PER_ROUND,
        });
        let mut taken = 0;
        for claim in candidates {
            if taken >= wanted {
                break;
            }
            let (lease, stolen) = match claim {
                Claim::Take(lease) => (lease, false),
                Claim::Steal(lease) => (lease, true),
            };
            let sent = Instant::now();
            match self.table.take(&lease, self.me(), stolen).await {
                Ok(counter) => {
                    taken += 1;
                    tracing::info!(
                        shard = %lease.key,
                        previous_owner = lease.owner.as_deref().unwrap_or(""),
                        stolen,
                        "lease taken"
                    );
                    let start_after = if stolen {
                        sent + self.config.lease_duration
                    } else {
                        sent
                    };
                    self.held.insert(
                        lease.key.clone(),
                        Held {
                            written: lease.checkpoint.clone(),
                            lease,
                            counter,
                            valid_until: decide::valid_until(sent, self.config.lease_duration),
                            start_after,
                            reader: None,
                            awaiting_handoff: stolen,
                        },
                    );
                }
                Err(LeaseError::Conflict { .. }) => {
                    tracing::debug!(shard = %lease.key, "another instance took the lease first")
                }
                Err(error) => self.table_failed("taking a lease", &error),
            }
        }
        if taken > 0 {
            // The checkpoints as they are now that nobody else can move them.
            if let Ok(again) = self.table.list().await {
                leases = again;
            }
        }
        let now = Instant::now();
        let mut fallbacks = Vec::new();
        for lease in &leases {
            let Some(held) = self.held.get_mut(&lease.key) else {
                continue;
            };
            if held.reader.is_some()
                || lease.owner.as_deref() != Some(self.config.worker_id.as_str())
            {
                continue;
            }
            if lease.checkpoint_owner.is_none() || !held.awaiting_handoff {
                held.written = lease.checkpoint.clone();
                held.lease = lease.clone();
                held.awaiting_handoff = false;
            } else if now >= held.start_after {
                fallbacks.push((lease.key.clone(), held.counter, lease.checkpoint.clone()));
            }
        }
        // The previous owner did not hand over within a lease duration: it has stopped
        // emitting by now; take the checkpoint over (which also fences its late writes).
        for (key, counter, checkpoint) in fallbacks {
            match self
                .table
                .checkpoint(CheckpointWrite {
                    key: &key,
                    owner: self.me(),
                    counter,
                    checkpoint: &checkpoint,
                    children: &[],
                })
                .await
            {
                Ok(()) => {
                    if let Some(held) = self.held.get_mut(&key) {
                        held.written = checkpoint;
                        held.awaiting_handoff = false;
                    }
                }
                Err(LeaseError::Conflict { .. }) => {
                    self.lose(&key, "another instance took the lease", false)
                }
                Err(error) => self.table_failed("writing a checkpoint", &error),
            }
        }
        self.snapshot = leases;
        self.finish_ended().await;
    }

    /// Held leases found at `SHARD_END` (handed over so by a previous owner) have nothing
    /// to read: write their children and release them.
    async fn finish_ended(&mut self) {
        let ended: Vec<(String, u64)> = self
            .held
            .iter()
            .filter(|(_, held)| held.reader.is_none() && held.written == Checkpoint::ShardEnd)
            .map(|(key, held)| (key.clone(), held.counter))
            .collect();
        let listing = self.listing.borrow().clone();
        for (key, counter) in ended {
            let children = listing
                .as_ref()
                .map(|shards| decide::children(shards, &key))
                .unwrap_or_default();
            let written = self
                .table
                .checkpoint(CheckpointWrite {
                    key: &key,
                    owner: self.me(),
                    counter,
                    checkpoint: &Checkpoint::ShardEnd,
                    children: &children,
                })
                .await;
            match written {
                Ok(()) => self.release(&key).await,
                Err(LeaseError::Conflict { .. }) => {
                    self.lose(&key, "another instance took the lease", false)
                }
                Err(error) => self.table_failed("writing a checkpoint", &error),
            }
        }
    }

    /// Starts a reader for every held lease whose shard may be read now, pinning `LATEST`
    /// first ([`Keeper::pin_latest`]).
    async fn start_readers(&mut self) {
        let ready = self.ready_to_read();
        for key in &ready {
            if self.held.get(key).map(|h| &h.written) == Some(&Checkpoint::Latest)
                && !self.pin_latest(key).await
            {
                // The table is failing: the other pins can wait for the next tick rather
                // than hold up renewals a call timeout each.
                break;
            }
        }
        let mut tracks = lock(&self.tracks);
        for key in ready {
            let Some(held) = self.held.get_mut(&key) else {
                continue; // lost while pinning
            };
            // Not pinned (the write failed): read nothing rather than Kinesis' "now", which
            // would not be where the next owner starts. Tried again at the next tick.
            if held.written == Checkpoint::Latest {
                continue;
            }
            let from = start_from(&held.written, self.config.initial);
            tracing::debug!(shard = %key, checkpoint = held.written.text(), "starting shard reader");
            tracks.shards.insert(
                key.clone(),
                Track {
                    emitting: true,
                    valid_until: held.valid_until,
                    floor: held.written.progress(),
                    last_emitted: None,
                    acked: None,
                    end_seen: false,
                    allowed: None,
                    handing_off: false,
                },
            );
            let context = self.context.clone();
            let mode = self.mode.clone();
            held.reader = Some(tokio::spawn(reader::run(context, mode, key, from)));
        }
    }

    /// The held leases without a reader whose shard may be read now.
    fn ready_to_read(&self) -> Vec<String> {
        let Some(listing) = self.listing.borrow().clone() else {
            return Vec::new();
        };
        let listed: BTreeSet<&str> = listing.iter().map(|s| s.info.id.as_str()).collect();
        let by_key: HashMap<&str, &Lease> =
            self.snapshot.iter().map(|l| (l.key.as_str(), l)).collect();
        let tracks = lock(&self.tracks);
        self.held
            .iter()
            .filter(|(key, held)| {
                held.reader.is_none()
                    && !held.awaiting_handoff
                    && held.written != Checkpoint::ShardEnd
                    && !tracks.draining.contains(*key)
                    && decide::parents_done(&held.lease, &by_key, &listed)
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Replaces a held lease's `LATEST` with the time this worker starts reading it
    /// ([`decide::pin_latest`]), conditional on the lease as every checkpoint write, so that
    /// whoever reads the shard next starts from the same time and not from its own "now".
    /// On failure nothing is read: a refused write means the lease is gone, any other is
    /// tried again at the next tick. Returns whether the table answered.
    async fn pin_latest(&mut self, key: &str) -> bool {
        let Some(counter) = self.held.get(key).map(|h| h.counter) else {
            return true;
        };
        let checkpoint = decide::pin_latest(now_epoch_millis());
        let written = self
            .table
            .checkpoint(CheckpointWrite {
                key,
                owner: self.me(),
                counter,
                checkpoint: &checkpoint,
                children: &[],
            })
            .await;
        match written {
            Ok(()) => {
                self.table_succeeded();
                tracing::info!(
                    shard = %key,
                    checkpoint_timestamp_ms = checkpoint.timestamp().unwrap_or_default(),
                    "LATEST pinned: the shard is read from this time by this and every later owner"
                );
                if let Some(held) = self.held.get_mut(key) {
                    held.written = checkpoint;
                }
                true
            }
            Err(LeaseError::Conflict { .. }) => {
                self.lose(key, "another instance took the lease", true);
                true
            }
            Err(error) => {
                self.table_failed("pinning a LATEST checkpoint", &error);
                false
            }
        }
    }
}
