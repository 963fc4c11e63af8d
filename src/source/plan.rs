//! What the engine does after each shard listing, decided without I/O: which shards to start
//! reading and where, which to count as finished without reading them, and which the position
//! forgets. [`super::lineage`] has the rules; the [`Planner`] keeps the state they apply to
//! (what is finished, what the position holds, what is being read, the first listing).

use std::collections::BTreeSet;

use super::lineage::{self, ShardInfo, StartAt};
use super::position::{Position, ShardProgress};
use super::reader::StartFrom;
use super::settings::InitialPosition;

/// One thing to do after a listing, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Count the shard as read to its end without reading it, and say so in the position
    /// (with LATEST, the shards already closed at the first start).
    Skip(String),
    /// The shard, finished, is no longer listed (past retention): the position forgets it.
    Forget(String),
    /// Start reading the shard.
    Start { shard: String, from: StartFrom },
}

/// The engine's view of the shards between listings.
#[derive(Debug)]
pub(crate) struct Planner {
    initial: InitialPosition,
    /// When the pipeline started, for LATEST shards of the first listing that start later.
    opened_at_ms: i64,
    /// Started without a position.
    fresh_start: bool,
    /// On a fresh start, the shards of the first listing.
    first_listing: Option<BTreeSet<String>>,
    finished: BTreeSet<String>,
    /// The progress of every shard, as the position would resume it.
    position: Position,
    /// Shards with a reader.
    reading: BTreeSet<String>,
}

impl Planner {
    /// A planner resuming `position` (empty on a first start); `opened_at_ms` is now, in
    /// milliseconds since the epoch.
    pub(crate) fn new(position: Position, initial: InitialPosition, opened_at_ms: i64) -> Self {
        let (finished, _) = lineage::split_progress(&position);
        Planner {
            initial,
            opened_at_ms,
            fresh_start: position.shards.is_empty(),
            first_listing: None,
            finished,
            position,
            reading: BTreeSet::new(),
        }
    }

    /// What to do after the listing `shards` (complete: every page). Every [`Action::Start`]
    /// counts as a running reader from now on.
    pub(crate) fn plan(&mut self, shards: &[ShardInfo]) -> Vec<Action> {
        let mut actions = Vec::new();
        let first_pass = self.fresh_start && self.first_listing.is_none();
        if first_pass {
            self.first_listing = Some(shards.iter().map(|s| s.id.clone()).collect());
            if self.initial == InitialPosition::Latest {
                // Nothing new can reach a closed shard: skip it so its children start at
                // LATEST right away.
                for shard in shards.iter().filter(|s| s.closed) {
                    self.mark_finished(&shard.id);
                    actions.push(Action::Skip(shard.id.clone()));
                }
            }
        }
        for id in lineage::expired(shards, &self.position) {
            if self.position.shards.get(&id) == Some(&ShardProgress::Finished) {
                self.position.shards.remove(&id);
                actions.push(Action::Forget(id));
            }
        }
        let fresh: std::collections::HashMap<String, StartAt> = lineage::to_start(
            shards,
            &self.finished,
            &self.reading,
            self.first_listing.as_ref(),
        )
        .into_iter()
        .collect();
        for id in lineage::readable(shards, &self.finished) {
            if self.reading.contains(&id) {
                continue;
            }
            let from = match (self.position.shards.get(&id), fresh.get(&id)) {
                (Some(progress), _) => StartFrom::Resume(progress.clone()),
                // LATEST means "from when the pipeline started": a shard of the first listing
                // that can only start later starts at that time.
                (None, Some(StartAt::Initial)) => match self.initial {
                    InitialPosition::Latest if !first_pass => {
                        StartFrom::Initial(InitialPosition::AtTimestamp(self.opened_at_ms))
                    }
                    initial => StartFrom::Initial(initial),
                },
                (None, _) => StartFrom::TrimHorizon,
            };
            self.reading.insert(id.clone());
            actions.push(Action::Start { shard: id, from });
        }
        actions
    }

    /// A reader read `shard` to its end: its children may start at the next plan.
    pub(crate) fn finished(&mut self, shard: &str) {
        self.reading.remove(shard);
        self.mark_finished(shard);
    }

    fn mark_finished(&mut self, shard: &str) {
        self.finished.insert(shard.to_owned());
        self.position
            .shards
            .insert(shard.to_owned(), ShardProgress::Finished);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENED: i64 = 1_700_000_000_000;

    fn shard(id: &str, parents: &[&str], closed: bool) -> ShardInfo {
        ShardInfo {
            id: id.to_owned(),
            parent: parents.first().map(|p| (*p).to_owned()),
            adjacent_parent: parents.get(1).map(|p| (*p).to_owned()),
            closed,
        }
    }

    fn start(id: &str, from: StartFrom) -> Action {
        Action::Start {
            shard: id.to_owned(),
            from,
        }
    }

    fn after(sequence: &str) -> ShardProgress {
        ShardProgress::After {
            sequence: sequence.to_owned(),
            sub_sequence: None,
        }
    }

    fn fresh(initial: InitialPosition) -> Planner {
        Planner::new(Position::new("s"), initial, OPENED)
    }

    const TRIM: StartFrom = StartFrom::Initial(InitialPosition::TrimHorizon);

    #[test]
    fn parents_before_children_of_a_split() {
        let shards = [
            shard("p", &[], true),
            shard("c1", &["p"], false),
            shard("c2", &["p"], false),
        ];
        let mut planner = fresh(InitialPosition::TrimHorizon);
        assert_eq!(planner.plan(&shards), vec![start("p", TRIM)]);
        // Nothing new while the parent is read.
        assert_eq!(planner.plan(&shards), vec![]);
        planner.finished("p");
        assert_eq!(
            planner.plan(&shards),
            vec![start("c1", TRIM), start("c2", TRIM)]
        );
        assert_eq!(planner.plan(&shards), vec![]);
    }

    #[test]
    fn a_merge_waits_for_both_parents() {
        let shards = [
            shard("a", &[], true),
            shard("b", &[], true),
            shard("m", &["a", "b"], false),
        ];
        let mut planner = fresh(InitialPosition::TrimHorizon);
        assert_eq!(
            planner.plan(&shards),
            vec![start("a", TRIM), start("b", TRIM)]
        );
        planner.finished("b");
        assert_eq!(planner.plan(&shards), vec![]);
        planner.finished("a");
        assert_eq!(planner.plan(&shards), vec![start("m", TRIM)]);
    }

    #[test]
    fn a_resumed_position_skips_finished_shards_and_resumes_the_rest() {
        let shards = [
            shard("p", &[], true),
            shard("c1", &["p"], false),
            shard("c2", &["p"], false),
            shard("q", &[], false),
        ];
        let mut position = Position::new("s");
        position.shards.insert("p".into(), ShardProgress::Finished);
        position.shards.insert("c1".into(), after("17"));
        let mut planner = Planner::new(position, InitialPosition::Latest, OPENED);
        // A closed shard at SHARD_END is not read again; shards without progress are new to
        // the pipeline and start at their oldest record, whatever the initial position.
        assert_eq!(
            planner.plan(&shards),
            vec![
                start("c1", StartFrom::Resume(after("17"))),
                start("c2", StartFrom::TrimHorizon),
                start("q", StartFrom::TrimHorizon),
            ]
        );
    }

    #[test]
    fn a_closed_shard_in_progress_resumes_and_holds_its_children() {
        let shards = [shard("p", &[], true), shard("c", &["p"], false)];
        let mut position = Position::new("s");
        position.shards.insert("p".into(), after("9"));
        let mut planner = Planner::new(position, InitialPosition::TrimHorizon, OPENED);
        assert_eq!(
            planner.plan(&shards),
            vec![start("p", StartFrom::Resume(after("9")))]
        );
        planner.finished("p");
        assert_eq!(
            planner.plan(&shards),
            vec![start("c", StartFrom::TrimHorizon)]
        );
    }

    #[test]
    fn latest_skips_closed_shards_at_the_first_start() {
        let shards = [
            shard("old", &[], true),
            shard("c1", &["old"], false),
            shard("c2", &["old"], true),
            shard("g", &["c2"], false),
        ];
        let mut planner = fresh(InitialPosition::Latest);
        let latest = StartFrom::Initial(InitialPosition::Latest);
        assert_eq!(
            planner.plan(&shards),
            vec![
                Action::Skip("old".into()),
                Action::Skip("c2".into()),
                start("c1", latest.clone()),
                start("g", latest),
            ]
        );
    }

    #[test]
    fn new_shards_after_a_reshard_start_at_their_oldest_record() {
        let before = [shard("p", &[], false), shard("q", &[], true)];
        let mut planner = fresh(InitialPosition::Latest);
        assert_eq!(
            planner.plan(&before),
            vec![
                Action::Skip("q".into()),
                start("p", StartFrom::Initial(InitialPosition::Latest)),
            ]
        );
        // p splits after the start: its children hold only records written since.
        let after_split = [
            shard("p", &[], true),
            shard("q", &[], true),
            shard("p1", &["p"], false),
            shard("p2", &["p"], false),
        ];
        assert_eq!(planner.plan(&after_split), vec![]);
        planner.finished("p");
        assert_eq!(
            planner.plan(&after_split),
            vec![
                start("p1", StartFrom::TrimHorizon),
                start("p2", StartFrom::TrimHorizon),
            ]
        );
    }

    #[test]
    fn latest_shards_of_the_first_listing_started_later_start_at_the_opening_time() {
        // kinesis-local may list a closed parent as still open at the first listing; its
        // child of that listing starts once the parent is read, from when the pipeline
        // started.
        let shards = [shard("p", &[], false), shard("c", &["p"], false)];
        let mut planner = fresh(InitialPosition::Latest);
        assert_eq!(
            planner.plan(&shards),
            vec![start("p", StartFrom::Initial(InitialPosition::Latest))]
        );
        planner.finished("p");
        assert_eq!(
            planner.plan(&shards),
            vec![start(
                "c",
                StartFrom::Initial(InitialPosition::AtTimestamp(OPENED))
            )]
        );
    }

    #[test]
    fn finished_shards_past_retention_are_forgotten_once() {
        let mut position = Position::new("s");
        position
            .shards
            .insert("gone".into(), ShardProgress::Finished);
        position.shards.insert("lost".into(), after("3"));
        let shards = [shard("c", &["gone"], false)];
        let mut planner = Planner::new(position, InitialPosition::TrimHorizon, OPENED);
        assert_eq!(
            planner.plan(&shards),
            vec![
                Action::Forget("gone".into()),
                start("c", StartFrom::TrimHorizon),
            ]
        );
        // A shard with progress that is no longer listed keeps its progress.
        assert_eq!(planner.plan(&shards), vec![]);
        assert!(planner.position.shards.contains_key("lost"));
    }
}
