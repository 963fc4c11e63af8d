//! Lease decisions without I/O: which leases count as expired, which to take or steal in a
//! round, which new shards get a lease and where it starts, and whether a shard's parents
//! are done so it may be read.
//!
//! * **Expiry** is judged as KCL does, by the local clock: a lease whose `leaseCounter` has
//!   not changed for the lease duration since this worker first saw that value is expired
//!   (its owner stopped renewing). Clocks of different machines are never compared. A lease
//!   without owner (released at a graceful stop) is free at once.
//! * **Balance** is by count, as in KCL 2: the live workers are those owning a lease that is
//!   not expired, plus this one; each aims at `ceil(leases / workers)`. A worker below that
//!   takes free or expired leases, at most `max_takes` per round or a sixteenth of the leases
//!   if that is more (a lone worker owns 512 shards after 16 rounds, not 256); when there are
//!   none and the
//!   most loaded worker holds at least 2 more than this one, it steals one of that worker's.
//!   Finished leases (`SHARD_END`) are not work and do not count.
//! * Candidates are tried in an order that differs per worker (a hash of worker and shard),
//!   so workers starting together rarely race for the same lease.
//! * **`LATEST` is pinned** before it is read ([`pin_latest`]): Kinesis' `LATEST` means "from
//!   whenever the iterator is made", so a shard that moved to another worker before its first
//!   checkpoint would start again at the new owner's "now" and skip what came in between.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use tokio::time::Instant;

use super::super::lineage::ShardInfo;
use super::super::settings::InitialPosition;
use super::table::{Checkpoint, Lease};

/// A shard of the listing with its hash key range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListedShard {
    pub info: ShardInfo,
    pub hash_range: Option<(String, String)>,
}

/// When this worker last saw each lease's counter change.
#[derive(Debug, Default)]
pub(crate) struct Observations {
    seen: HashMap<String, (u64, Instant)>,
}

impl Observations {
    /// Records a table snapshot taken at `now`.
    pub(crate) fn update(&mut self, leases: &[Lease], now: Instant) {
        let mut seen = HashMap::with_capacity(leases.len());
        for lease in leases {
            let since = match self.seen.get(&lease.key) {
                Some(&(counter, since)) if counter == lease.counter => since,
                _ => now,
            };
            seen.insert(lease.key.clone(), (lease.counter, since));
        }
        self.seen = seen;
    }

    /// The leases that another worker may take now: without owner, or not renewed within
    /// `duration` of local time.
    pub(crate) fn expired(
        &self,
        leases: &[Lease],
        now: Instant,
        duration: Duration,
    ) -> BTreeSet<String> {
        leases
            .iter()
            .filter(|lease| {
                lease.owner.is_none()
                    || self
                        .seen
                        .get(&lease.key)
                        .is_some_and(|&(_, since)| now.saturating_duration_since(since) >= duration)
            })
            .map(|lease| lease.key.clone())
            .collect()
    }
}

/// What to try in one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Claim {
    /// A free or expired lease: its owner, if any, already stopped.
    Take(Lease),
    /// A live worker's lease: its owner stops at its next renewal, so reading waits a lease
    /// duration.
    Steal(Lease),
}

/// A worker may take `1 / TAKE_SHARE_DIVISOR` of the leases per round when that is more than
/// `max_takes`: with few leases, workers starting together still share them out by twos; with
/// hundreds, a lone worker (or the first of several) is not left reading a few shards for
/// minutes while the others wait unowned.
const TAKE_SHARE_DIVISOR: usize = 16;

/// One round's inputs.
pub(crate) struct Round<'a> {
    pub leases: &'a [Lease],
    pub me: &'a str,
    /// The leases this worker holds (by its own bookkeeping).
    pub mine: &'a BTreeSet<String>,
    /// From [`Observations::expired`].
    pub expired: &'a BTreeSet<String>,
    /// Shards not to claim now (still draining from an earlier ownership).
    pub excluded: &'a BTreeSet<String>,
    pub max_takes: usize,
}

fn spread(me: &str, key: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (me, key).hash(&mut hasher);
    hasher.finish()
}

/// The leases to take or steal this round (what `candidates` gives when no race is lost).
#[cfg(test)]
pub(crate) fn claims(round: &Round<'_>) -> Vec<Claim> {
    let (candidates, wanted) = candidates(round);
    candidates.into_iter().take(wanted).collect()
}

/// Every lease worth trying this round in the order to try them, and how many of them to
/// get: when another worker wins a race for one, the next is tried in the same round.
pub(crate) fn candidates(round: &Round<'_>) -> (Vec<Claim>, usize) {
    let active: Vec<&Lease> = round
        .leases
        .iter()
        .filter(|lease| lease.checkpoint != Checkpoint::ShardEnd)
        .collect();
    let owner_of = |lease: &Lease| -> Option<String> {
        if round.mine.contains(&lease.key) {
            return Some(round.me.to_owned());
        }
        match &lease.owner {
            Some(owner) if owner != round.me && !round.expired.contains(&lease.key) => {
                Some(owner.clone())
            }
            _ => None,
        }
    };
    let mut counts: BTreeMap<String, Vec<&Lease>> = BTreeMap::new();
    counts.entry(round.me.to_owned()).or_default();
    let mut available = Vec::new();
    for lease in &active {
        match owner_of(lease) {
            Some(owner) => counts.entry(owner).or_default().push(lease),
            None if !round.excluded.contains(&lease.key) => available.push(*lease),
            None => {}
        }
    }
    let target = active.len().div_ceil(counts.len());
    let mine = counts[round.me].len();
    if mine >= target {
        return (Vec::new(), 0);
    }
    available.sort_by_key(|lease| spread(round.me, &lease.key));
    if !available.is_empty() {
        let per_round = round
            .max_takes
            .max(active.len() / TAKE_SHARE_DIVISOR)
            .max(1);
        let wanted = (target - mine).min(per_round);
        return (
            available
                .into_iter()
                .map(|lease| Claim::Take(lease.clone()))
                .collect(),
            wanted,
        );
    }
    let most_loaded = counts
        .iter()
        .filter(|(owner, _)| owner.as_str() != round.me)
        .max_by(|a, b| a.1.len().cmp(&b.1.len()).then_with(|| b.0.cmp(a.0)));
    let steal = match most_loaded {
        Some((_, leases)) if leases.len() >= mine + 2 => leases
            .iter()
            .filter(|lease| !round.excluded.contains(&lease.key))
            .min_by_key(|lease| spread(round.me, &lease.key))
            .map(|lease| vec![Claim::Steal((*lease).clone())])
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    (steal, 1)
}

/// Leases for the listed shards that have none. `tracked`: the shards with a lease before
/// this round. A shard whose parent is tracked was opened by a reshard while the pipeline
/// read its parent, so all of it is new: `TRIM_HORIZON`. Any other shard starts at the
/// initial position; with `latest`, a shard that is already closed has nothing new to give
/// and starts as `SHARD_END` (see [`super::super::lineage`] for why).
pub(crate) fn new_leases(
    shards: &[ListedShard],
    tracked: &BTreeSet<String>,
    initial: InitialPosition,
) -> Vec<Lease> {
    let mut out = Vec::new();
    for shard in shards {
        let info = &shard.info;
        if tracked.contains(&info.id) {
            continue;
        }
        let parents: Vec<String> = info
            .parent
            .iter()
            .chain(info.adjacent_parent.iter())
            .cloned()
            .collect();
        let checkpoint = if parents.iter().any(|p| tracked.contains(p)) {
            Checkpoint::TrimHorizon
        } else {
            match initial {
                InitialPosition::TrimHorizon => Checkpoint::TrimHorizon,
                InitialPosition::Latest if info.closed => Checkpoint::ShardEnd,
                InitialPosition::Latest => Checkpoint::Latest,
                // The configured timestamp: the item names only the sentinel, as KCL's.
                InitialPosition::AtTimestamp(_) => Checkpoint::AtTimestamp { millis: None },
            }
        };
        out.push(Lease::new(
            info.id.clone(),
            checkpoint,
            parents,
            shard.hash_range.clone(),
        ));
    }
    out
}

/// How far before this worker's clock a pinned `LATEST` starts. Kinesis stamps records with
/// its own clock (`ApproximateArrivalTimestamp`) and `AT_TIMESTAMP` compares with that, so a
/// worker clock ahead of Kinesis' would pin a time that has not come yet for Kinesis, and the
/// records arriving until then would be skipped by every owner. Reading from this much
/// earlier keeps every record written after the reader started as long as the worker's clock
/// is not ahead by more than this (NTP keeps hosts within milliseconds; SigV4 itself refuses
/// requests from clocks more than 5 minutes off); the price is that a first start at `latest`
/// also delivers what arrived in these seconds before it.
pub(crate) const LATEST_PIN_MARGIN: Duration = Duration::from_secs(5);

/// The checkpoint a `LATEST` lease gets before its first owner reads it: `AT_TIMESTAMP` at
/// `now_ms` (this worker's wall clock, epoch milliseconds) less [`LATEST_PIN_MARGIN`]. That
/// owner and every later one read from this same time, until a record's checkpoint replaces
/// it, so no record written after the first owner started is skipped by a later one.
pub(crate) fn pin_latest(now_ms: i64) -> Checkpoint {
    Checkpoint::AtTimestamp {
        millis: Some(now_ms.saturating_sub(LATEST_PIN_MARGIN.as_millis() as i64)),
    }
}

/// Whether `lease`'s shard may be read: every parent's lease is at `SHARD_END`, or the
/// parent has no lease and is no longer listed (expired past retention).
pub(crate) fn parents_done(
    lease: &Lease,
    leases: &HashMap<&str, &Lease>,
    listed: &BTreeSet<&str>,
) -> bool {
    lease
        .parents
        .iter()
        .all(|parent| match leases.get(parent.as_str()) {
            Some(parent) => parent.checkpoint == Checkpoint::ShardEnd,
            None => !listed.contains(parent.as_str()),
        })
}

/// The children of `shard` in a listing, for `childShardIds`.
pub(crate) fn children(shards: &[ListedShard], shard: &str) -> Vec<String> {
    let mut out: Vec<String> = shards
        .iter()
        .filter(|s| {
            s.info.parent.as_deref() == Some(shard)
                || s.info.adjacent_parent.as_deref() == Some(shard)
        })
        .map(|s| s.info.id.clone())
        .collect();
    out.sort();
    out
}

/// Until when a worker may emit records of a lease it renewed with a request sent at
/// `sent_at`: another worker sees the new counter no earlier than that and waits a whole
/// lease duration after it, so stopping a tenth of the duration earlier leaves room for
/// records already handed to the runtime.
pub(crate) fn valid_until(sent_at: Instant, lease_duration: Duration) -> Instant {
    sent_at + lease_duration - lease_duration / 10
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(key: &str, owner: Option<&str>, counter: u64) -> Lease {
        Lease {
            owner: owner.map(str::to_owned),
            counter,
            ..Lease::new(key, Checkpoint::TrimHorizon, Vec::new(), None)
        }
    }

    fn shards(n: usize, owner: impl Fn(usize) -> Option<&'static str>) -> Vec<Lease> {
        (0..n)
            .map(|i| lease(&format!("shardId-{i:012}"), owner(i), 1))
            .collect()
    }

    fn keys(claims: &[Claim]) -> Vec<String> {
        claims
            .iter()
            .map(|c| match c {
                Claim::Take(l) | Claim::Steal(l) => l.key.clone(),
            })
            .collect()
    }

    fn round<'a>(
        leases: &'a [Lease],
        me: &'a str,
        mine: &'a BTreeSet<String>,
        expired: &'a BTreeSet<String>,
    ) -> Round<'a> {
        static NONE: BTreeSet<String> = BTreeSet::new();
        Round {
            leases,
            me,
            mine,
            expired,
            excluded: &NONE,
            max_takes: 2,
        }
    }

    #[test]
    fn a_lone_worker_takes_a_few_free_leases_per_round() {
        let leases = shards(12, |_| None);
        let expired: BTreeSet<String> = leases.iter().map(|l| l.key.clone()).collect();
        let claims = claims(&round(&leases, "a", &BTreeSet::new(), &expired));
        assert_eq!(claims.len(), 2);
        assert!(claims.iter().all(|c| matches!(c, Claim::Take(_))));
        // Another worker tries other leases first.
        let other = super::claims(&round(&leases, "b", &BTreeSet::new(), &expired));
        assert_ne!(keys(&claims), keys(&other));
    }

    #[test]
    fn with_hundreds_of_free_leases_a_worker_takes_a_sixteenth_per_round() {
        let leases = shards(512, |_| None);
        let expired: BTreeSet<String> = leases.iter().map(|l| l.key.clone()).collect();
        let claims = claims(&round(&leases, "a", &BTreeSet::new(), &expired));
        assert_eq!(claims.len(), 32);
        // Only what is free: with b owning all but 12, a takes those 12 (and then steals one
        // per round, as before).
        let leases = shards(512, |i| (i >= 12).then_some("b"));
        let free: BTreeSet<String> = leases[..12].iter().map(|l| l.key.clone()).collect();
        let claims = super::claims(&round(&leases, "a", &BTreeSet::new(), &free));
        assert_eq!(claims.len(), 12);
    }

    #[test]
    fn workers_stop_taking_at_their_share() {
        // a holds 4, b 4, c 2, and 2 are free: c takes them; a (at its share of 4) does not.
        let leases = shards(12, |i| match i {
            0..=3 => Some("a"),
            4..=7 => Some("b"),
            8..=9 => Some("c"),
            _ => None,
        });
        let free: BTreeSet<String> = leases[10..].iter().map(|l| l.key.clone()).collect();
        let a_mine: BTreeSet<String> = leases[..4].iter().map(|l| l.key.clone()).collect();
        assert!(claims(&round(&leases, "a", &a_mine, &free)).is_empty());
        let c_mine: BTreeSet<String> = leases[8..10].iter().map(|l| l.key.clone()).collect();
        let c = claims(&round(&leases, "c", &c_mine, &free));
        assert_eq!(keys(&c).len(), 2);
        assert!(c
            .iter()
            .all(|claim| matches!(claim, Claim::Take(l) if l.owner.is_none())));
    }

    #[test]
    fn a_newcomer_steals_one_from_the_most_loaded_when_nothing_is_free() {
        let leases = shards(12, |i| match i {
            0..=5 => Some("a"),
            _ => Some("b"),
        });
        let none = BTreeSet::new();
        let c = claims(&round(&leases, "c", &none, &none));
        assert_eq!(c.len(), 1);
        assert!(
            matches!(&c[0], Claim::Steal(l) if l.owner.as_deref() == Some("a") || l.owner.as_deref() == Some("b"))
        );
        // Counts differing by one are balanced enough.
        let leases = shards(13, |i| match i {
            0..=4 => Some("a"),
            5..=8 => Some("b"),
            _ => Some("c"),
        });
        let c_mine: BTreeSet<String> = leases[9..].iter().map(|l| l.key.clone()).collect();
        assert!(claims(&round(&leases, "c", &c_mine, &none)).is_empty());
    }

    #[test]
    fn expired_leases_of_a_dead_worker_are_taken_not_stolen() {
        let leases = shards(12, |i| match i {
            0..=3 => Some("a"),
            4..=7 => Some("b"),
            _ => Some("dead"),
        });
        let expired: BTreeSet<String> = leases[8..].iter().map(|l| l.key.clone()).collect();
        let a_mine: BTreeSet<String> = leases[..4].iter().map(|l| l.key.clone()).collect();
        // Two live workers now: the target is 6.
        let a = claims(&round(&leases, "a", &a_mine, &expired));
        assert_eq!(keys(&a).len(), 2);
        assert!(a
            .iter()
            .all(|c| matches!(c, Claim::Take(l) if l.owner.as_deref() == Some("dead"))));
    }

    #[test]
    fn finished_and_draining_leases_are_not_claimed() {
        let mut leases = shards(2, |_| None);
        leases[0].checkpoint = Checkpoint::ShardEnd;
        let expired: BTreeSet<String> = leases.iter().map(|l| l.key.clone()).collect();
        let excluded: BTreeSet<String> = [leases[1].key.clone()].into();
        let none = BTreeSet::new();
        let round = Round {
            excluded: &excluded,
            ..round(&leases, "a", &none, &expired)
        };
        assert!(claims(&round).is_empty());
    }

    #[test]
    fn expiry_counts_from_when_the_counter_was_last_seen_to_change() {
        let start = Instant::now();
        let duration = Duration::from_secs(3);
        let mut observed = Observations::default();
        let mut leases = vec![lease("s1", Some("b"), 5), lease("s2", None, 1)];
        observed.update(&leases, start);
        // A released lease is free at once; an owned one not before the duration passed.
        assert_eq!(
            observed.expired(&leases, start, duration),
            ["s2".to_string()].into()
        );
        let later = start + Duration::from_secs(2);
        leases[0].counter = 6;
        observed.update(&leases, later);
        assert!(!observed
            .expired(&leases, start + Duration::from_secs(4), duration)
            .contains("s1"));
        assert!(observed
            .expired(&leases, later + duration, duration)
            .contains("s1"));
    }

    fn listed(id: &str, parents: &[&str], closed: bool) -> ListedShard {
        ListedShard {
            info: ShardInfo {
                id: id.into(),
                parent: parents.first().map(|p| p.to_string()),
                adjacent_parent: parents.get(1).map(|p| p.to_string()),
                closed,
            },
            hash_range: Some(("0".into(), "9".into())),
        }
    }

    #[test]
    fn new_shards_start_at_the_initial_position_unless_their_parent_was_tracked() {
        let shards = [
            listed("p", &[], true),
            listed("c1", &["p"], false),
            listed("x", &[], false),
        ];
        let fresh = new_leases(&shards, &BTreeSet::new(), InitialPosition::Latest);
        let by_key: HashMap<&str, &Checkpoint> = fresh
            .iter()
            .map(|l| (l.key.as_str(), &l.checkpoint))
            .collect();
        assert_eq!(by_key["p"], &Checkpoint::ShardEnd);
        assert_eq!(by_key["c1"], &Checkpoint::Latest);
        assert_eq!(fresh[1].parents, vec!["p".to_string()]);
        assert_eq!(fresh[1].hash_range, Some(("0".into(), "9".into())));
        let tracked: BTreeSet<String> = ["p".to_string(), "x".to_string()].into();
        let later = new_leases(&shards, &tracked, InitialPosition::Latest);
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].checkpoint, Checkpoint::TrimHorizon);
    }

    #[test]
    fn latest_is_pinned_a_margin_before_the_worker_s_clock() {
        let now = 1_800_000_000_000;
        let pinned = pin_latest(now);
        assert_eq!(
            pinned,
            Checkpoint::AtTimestamp {
                millis: Some(now - 5_000)
            }
        );
        // KCL's sentinel, with the time beside it.
        assert_eq!(pinned.text(), "AT_TIMESTAMP");
        assert_eq!(pinned.timestamp(), Some(now - 5_000));
        assert_eq!(pinned.sub_sequence(), 0);
        assert_eq!(pinned.progress(), None);
        assert_eq!(pin_latest(1_000).timestamp(), Some(-4_000));
        // A lease for startPosition=at_timestamp names only the sentinel (the configured
        // timestamp), as KCL's do.
        let at = new_leases(
            &[listed("x", &[], false)],
            &BTreeSet::new(),
            InitialPosition::AtTimestamp(now),
        );
        assert_eq!(at[0].checkpoint, Checkpoint::AtTimestamp { millis: None });
    }

    #[test]
    fn checkpoint_timestamps_count_only_with_the_at_timestamp_sentinel() {
        assert_eq!(
            Checkpoint::parse("AT_TIMESTAMP", 0, Some(7)),
            Some(Checkpoint::AtTimestamp { millis: Some(7) })
        );
        assert_eq!(
            Checkpoint::parse("AT_TIMESTAMP", 0, None),
            Some(Checkpoint::AtTimestamp { millis: None })
        );
        // Left behind by a writer that does not know the attribute.
        assert_eq!(
            Checkpoint::parse("LATEST", 0, Some(7)),
            Some(Checkpoint::Latest)
        );
        assert_eq!(
            Checkpoint::parse("12345", 2, Some(7)),
            Some(Checkpoint::Sequence {
                sequence: "12345".into(),
                sub_sequence: 2
            })
        );
        assert_eq!(Checkpoint::Latest.timestamp(), None);
    }

    #[test]
    fn children_wait_for_every_parent_at_shard_end() {
        let mut a = lease("a", Some("w1"), 1);
        let b = lease("b", Some("w2"), 1);
        let merged = Lease::new(
            "m",
            Checkpoint::TrimHorizon,
            vec!["a".into(), "b".into()],
            None,
        );
        let listed: BTreeSet<&str> = ["a", "b", "m"].into();
        let table = |a: &Lease| -> bool {
            let map: HashMap<&str, &Lease> = [("a", a), ("b", &b)].into();
            parents_done(&merged, &map, &listed)
        };
        assert!(!table(&a));
        a.checkpoint = Checkpoint::ShardEnd;
        assert!(!table(&a), "b is not finished");
        // A parent without lease that is no longer listed expired: done.
        let map: HashMap<&str, &Lease> = [("a", &a)].into();
        let only_m: BTreeSet<&str> = ["m"].into();
        assert!(parents_done(&merged, &map, &only_m));
        assert!(
            !parents_done(&merged, &map, &listed),
            "b is listed and has no lease yet"
        );
    }
}
