//! Shard lineage: parents are read to their end before their children.
//!
//! Resharding closes shards and opens children: `SplitShard` gives one parent two children,
//! `MergeShards` gives two parents (`ParentShardId` and `AdjacentParentShardId`) one child,
//! `UpdateShardCount` does a series of both. Records of one partition key move from the parent
//! to a child at the reshard, so reading a child before its parents are read to their end
//! breaks per-key order (kinesis-notes.md §2). The functions here decide, from a `ListShards`
//! listing and what the position says, which shards may be read now and where they start.
//!
//! A parent that is not in the listing has expired past the stream's retention: its records
//! are gone, and it counts as finished. Every function returns shard ids sorted, so the outcome
//! does not depend on the order of the listing.
//!
//! # Where a shard without progress starts ([`StartAt`])
//!
//! * Resuming from a position (`first_listing: None` in [`to_start`]): a shard without
//!   progress has not been read by this pipeline; it was opened by a reshard after the
//!   pipeline started (or its parents finished since), so all of it is new to the pipeline:
//!   [`StartAt::TrimHorizon`].
//! * First start without a position: the shards of that first listing start at the
//!   configured initial position ([`StartAt::Initial`]) — **all** of them, children of
//!   closed parents included, once the parents are finished. Starting only the roots at the
//!   initial position and their children at TRIM_HORIZON would be wrong for LATEST and
//!   AT_TIMESTAMP: after a reshard within the retention period the closed parent yields
//!   nothing at LATEST and its open children would then replay everything since the reshard.
//!   With an initial position of TRIM_HORIZON both rules agree. Shards that appear in later
//!   listings (reshards after the first start) start at TRIM_HORIZON.
//!
//! With LATEST, the caller should also treat the shards that are already closed in the first
//! listing as finished (they only hold records from before the start), so every open shard
//! starts at once instead of after its closed ancestors were opened and found empty.
//!
//! A shard should get a progress entry in the position as soon as the reader knows where it
//! is — e.g. from the `ContinuationSequenceNumber` of an empty `SubscribeToShard` event —
//! otherwise a restart before its first record restarts it at TRIM_HORIZON (with LATEST or
//! AT_TIMESTAMP that replays records from before the pipeline's start).

use std::collections::BTreeSet;

use super::position::{Position, ShardProgress};

/// One shard of a `ListShards` listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShardInfo {
    pub id: String,
    pub parent: Option<String>,
    pub adjacent_parent: Option<String>,
    /// Has an `EndingSequenceNumber`: no new records will arrive.
    pub closed: bool,
}

impl ShardInfo {
    fn parents(&self) -> impl Iterator<Item = &str> {
        self.parent
            .as_deref()
            .into_iter()
            .chain(self.adjacent_parent.as_deref())
    }
}

/// Where a shard that has no progress yet starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartAt {
    /// At its oldest record: a shard opened by a reshard after the pipeline started, whose
    /// parents are all finished (or expired).
    TrimHorizon,
    /// At the connector's configured initial position (TRIM_HORIZON, LATEST, AT_TIMESTAMP): a
    /// shard of the first listing when the pipeline started without a position.
    Initial,
}

/// Shards that may be read now: not finished, and every parent is finished or unknown (a
/// parent missing from `shards` has expired past retention and counts as finished). Sorted by
/// id, without duplicates. Includes shards that are already being read.
pub(crate) fn readable(shards: &[ShardInfo], finished: &BTreeSet<String>) -> Vec<String> {
    let listed: BTreeSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
    let parent_done = |parent: &str| finished.contains(parent) || !listed.contains(parent);
    let mut out: Vec<String> = shards
        .iter()
        .filter(|s| !finished.contains(&s.id) && s.parents().all(parent_done))
        .map(|s| s.id.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Shards to start now and where: the [`readable`] shards that are not in `in_progress`
/// (shards with [`ShardProgress::After`] in the position, which resume from it, and shards the
/// caller is already reading).
///
/// `first_listing`: on a first start without a position, the ids of the shards listed at that
/// start; they start at [`StartAt::Initial`] (now or once their parents are finished). `None`
/// when the pipeline resumed from a position. Every other shard starts at
/// [`StartAt::TrimHorizon`]. See the module docs for why. Sorted by id.
pub(crate) fn to_start(
    shards: &[ShardInfo],
    finished: &BTreeSet<String>,
    in_progress: &BTreeSet<String>,
    first_listing: Option<&BTreeSet<String>>,
) -> Vec<(String, StartAt)> {
    readable(shards, finished)
        .into_iter()
        .filter(|id| !in_progress.contains(id))
        .map(|id| {
            let at = if first_listing.is_some_and(|first| first.contains(&id)) {
                StartAt::Initial
            } else {
                StartAt::TrimHorizon
            };
            (id, at)
        })
        .collect()
}

/// The finished shards and the shards with progress ([`ShardProgress::After`]) of a position,
/// as [`readable`] and [`to_start`] take them.
pub(crate) fn split_progress(position: &Position) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut finished = BTreeSet::new();
    let mut in_progress = BTreeSet::new();
    for (id, progress) in &position.shards {
        match progress {
            ShardProgress::Finished => finished.insert(id.clone()),
            ShardProgress::After { .. } => in_progress.insert(id.clone()),
        };
    }
    (finished, in_progress)
}

/// Shards of the position that are no longer listed: they expired past the stream's
/// retention, and the position can forget them (a child treats an unlisted parent as
/// finished anyway). Only meaningful with a complete listing (every `ListShards` page, no
/// shard filter). Sorted by id.
pub(crate) fn expired(shards: &[ShardInfo], position: &Position) -> Vec<String> {
    let listed: BTreeSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
    position
        .shards
        .keys()
        .filter(|id| !listed.contains(id.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::seq::SliceRandom;
    use rand::SeedableRng;

    fn shard(id: &str, parent: Option<&str>, adjacent: Option<&str>, closed: bool) -> ShardInfo {
        ShardInfo {
            id: id.to_owned(),
            parent: parent.map(str::to_owned),
            adjacent_parent: adjacent.map(str::to_owned),
            closed,
        }
    }

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Reads the stream like a source would: start every readable shard, read closed shards to
    /// their end, repeat. Returns the order in which shards were started.
    fn drain(shards: &[ShardInfo]) -> Vec<String> {
        let mut finished = BTreeSet::new();
        let mut started: Vec<String> = Vec::new();
        loop {
            let now = readable(shards, &finished);
            let new: Vec<String> = now
                .iter()
                .filter(|id| !started.contains(id))
                .cloned()
                .collect();
            started.extend(new);
            let closing: Vec<String> = now
                .iter()
                .filter(|id| shards.iter().any(|s| &&s.id == id && s.closed))
                .cloned()
                .collect();
            if closing.is_empty() {
                return started;
            }
            finished.extend(closing);
        }
    }

    fn assert_parents_first(shards: &[ShardInfo], order: &[String]) {
        let pos = |id: &str| order.iter().position(|s| s == id);
        for s in shards {
            let me = pos(&s.id).unwrap_or_else(|| panic!("{} never started", s.id));
            for p in s.parents() {
                if let Some(pp) = pos(p) {
                    assert!(pp < me, "{p} must start before its child {}", s.id);
                }
            }
        }
    }

    #[test]
    fn split_reads_parent_then_both_children() {
        let shards = [
            shard("shardId-000000000000", None, None, true),
            shard(
                "shardId-000000000001",
                Some("shardId-000000000000"),
                None,
                false,
            ),
            shard(
                "shardId-000000000002",
                Some("shardId-000000000000"),
                None,
                false,
            ),
        ];
        assert_eq!(
            readable(&shards, &BTreeSet::new()),
            ids(&["shardId-000000000000"])
        );
        assert_eq!(
            readable(&shards, &set(&["shardId-000000000000"])),
            ids(&["shardId-000000000001", "shardId-000000000002"])
        );
    }

    #[test]
    fn merge_waits_for_both_parents() {
        let shards = [
            shard("a", None, None, true),
            shard("b", None, None, true),
            shard("m", Some("a"), Some("b"), false),
        ];
        assert_eq!(readable(&shards, &set(&[])), ids(&["a", "b"]));
        assert_eq!(readable(&shards, &set(&["a"])), ids(&["b"]));
        assert_eq!(readable(&shards, &set(&["b"])), ids(&["a"]));
        assert_eq!(readable(&shards, &set(&["a", "b"])), ids(&["m"]));
    }

    #[test]
    fn chains_of_reshards() {
        // 0 splits into 1 and 2; 1 and 2 merge into 3; an UpdateShardCount-like fan-out
        // splits 3 into 4 and 5, then 4 into 6 and 7, and merges 5 and 7 into 8.
        let shards = [
            shard("s0", None, None, true),
            shard("s1", Some("s0"), None, true),
            shard("s2", Some("s0"), None, true),
            shard("s3", Some("s1"), Some("s2"), true),
            shard("s4", Some("s3"), None, true),
            shard("s5", Some("s3"), None, true),
            shard("s6", Some("s4"), None, false),
            shard("s7", Some("s4"), None, true),
            shard("s8", Some("s5"), Some("s7"), false),
        ];
        let order = drain(&shards);
        assert_parents_first(&shards, &order);
        assert_eq!(
            order,
            ids(&["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"])
        );

        // Step by step around the merge of s5 and s7.
        let done = set(&["s0", "s1", "s2", "s3", "s4"]);
        assert_eq!(readable(&shards, &done), ids(&["s5", "s6", "s7"]));
        let done = set(&["s0", "s1", "s2", "s3", "s4", "s5"]);
        assert_eq!(readable(&shards, &done), ids(&["s6", "s7"]));
        let done = set(&["s0", "s1", "s2", "s3", "s4", "s5", "s7"]);
        assert_eq!(readable(&shards, &done), ids(&["s6", "s8"]));
    }

    #[test]
    fn expired_parents_count_as_finished() {
        // s0 and s1 are past retention: only their children are listed.
        let shards = [
            shard("s2", Some("s0"), None, false),
            shard("s3", Some("s0"), None, true),
            shard("s4", Some("s1"), Some("s3"), false),
        ];
        assert_eq!(readable(&shards, &set(&[])), ids(&["s2", "s3"]));
        // A merge with one expired parent still waits for the listed one.
        assert_eq!(readable(&shards, &set(&["s3"])), ids(&["s2", "s4"]));

        let mut position = Position::new("s");
        position.shards.insert("s0".into(), ShardProgress::Finished);
        position.shards.insert(
            "s2".into(),
            ShardProgress::After {
                sequence: "5".into(),
                sub_sequence: None,
            },
        );
        assert_eq!(expired(&shards, &position), ids(&["s0"]));
    }

    #[test]
    fn finished_shards_are_not_readable() {
        let shards = [shard("a", None, None, true), shard("b", None, None, false)];
        assert_eq!(readable(&shards, &set(&["a"])), ids(&["b"]));
        assert_eq!(readable(&shards, &set(&["a", "b"])), Vec::<String>::new());
    }

    #[test]
    fn order_does_not_depend_on_the_listing() {
        let mut shards = vec![
            shard("s0", None, None, true),
            shard("s1", Some("s0"), None, false),
            shard("s2", Some("s0"), None, false),
            shard("t0", None, None, false),
            shard("t1", None, None, true),
            shard("t2", Some("t1"), Some("t0"), false),
            shard("u", None, None, false),
        ];
        let finished = set(&["s0", "t1"]);
        let expected = readable(&shards, &finished);
        assert_eq!(expected, ids(&["s1", "s2", "t0", "u"]));
        let expected_drain = drain(&shards);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..50 {
            shards.shuffle(&mut rng);
            assert_eq!(readable(&shards, &finished), expected);
            assert_eq!(drain(&shards), expected_drain);
        }
        // Duplicates from overlapping pages do not duplicate the answer.
        let mut doubled = shards.clone();
        doubled.extend(shards.iter().cloned());
        assert_eq!(readable(&doubled, &finished), expected);
    }

    #[test]
    fn first_start_uses_the_initial_position_for_the_whole_first_listing() {
        let shards = [
            shard("p", None, None, true),
            shard("c1", Some("p"), None, false),
            shard("c2", Some("p"), None, false),
        ];
        let first = set(&["p", "c1", "c2"]);
        let none = BTreeSet::new();
        assert_eq!(
            to_start(&shards, &none, &none, Some(&first)),
            vec![("p".to_owned(), StartAt::Initial)]
        );
        // The children of the first listing wait for their parent, then start at the initial
        // position too.
        assert_eq!(
            to_start(&shards, &set(&["p"]), &none, Some(&first)),
            vec![
                ("c1".to_owned(), StartAt::Initial),
                ("c2".to_owned(), StartAt::Initial)
            ]
        );
        // A shard being read is not started again.
        assert_eq!(
            to_start(&shards, &set(&["p"]), &set(&["c1"]), Some(&first)),
            vec![("c2".to_owned(), StartAt::Initial)]
        );

        // A later reshard: c2 splits into c3 and c4, which were not in the first listing.
        let later = [
            shard("p", None, None, true),
            shard("c1", Some("p"), None, false),
            shard("c2", Some("p"), None, true),
            shard("c3", Some("c2"), None, false),
            shard("c4", Some("c2"), None, false),
        ];
        assert_eq!(
            to_start(&later, &set(&["p", "c2"]), &set(&["c1"]), Some(&first)),
            vec![
                ("c3".to_owned(), StartAt::TrimHorizon),
                ("c4".to_owned(), StartAt::TrimHorizon)
            ]
        );
    }

    #[test]
    fn resume_starts_new_shards_at_trim_horizon() {
        let shards = [
            shard("p", None, None, true),
            shard("c1", Some("p"), None, false),
            shard("c2", Some("p"), None, false),
            shard("q", None, None, false),
        ];
        let mut position = Position::new("s");
        position.shards.insert("p".into(), ShardProgress::Finished);
        position.shards.insert(
            "c1".into(),
            ShardProgress::After {
                sequence: "49656955519473916467716018592383429564417383584367116290".into(),
                sub_sequence: Some(3),
            },
        );
        let (finished, in_progress) = split_progress(&position);
        assert_eq!(finished, set(&["p"]));
        assert_eq!(in_progress, set(&["c1"]));
        assert_eq!(
            to_start(&shards, &finished, &in_progress, None),
            vec![
                ("c2".to_owned(), StartAt::TrimHorizon),
                ("q".to_owned(), StartAt::TrimHorizon)
            ]
        );
        assert_eq!(expired(&shards, &position), Vec::<String>::new());
    }

    #[test]
    fn parent_in_progress_blocks_children() {
        let shards = [
            shard("p", None, None, true),
            shard("c", Some("p"), None, false),
        ];
        let in_progress = set(&["p"]);
        assert_eq!(
            to_start(&shards, &BTreeSet::new(), &in_progress, None),
            Vec::<(String, StartAt)>::new()
        );
    }
}
