//! How far behind the tip of each shard the readers are, and its one-line summary.
//!
//! Every GetRecords answer and every SubscribeToShard event carries `MillisBehindLatest`: how
//! far the answer is from the newest record of the shard. Readers put the latest value of their
//! shard on a [`LagBoard`] shared by one source; [`report`] logs a summary of it at an interval
//! (`lagLogInterval`) and `consume --progress` prints the same summary. A shard is on the board
//! from the moment its reader starts ("owned" by this source) until it was read to its end.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The latest `MillisBehindLatest` of every shard being read; `None` until its first answer.
#[derive(Debug, Clone, Default)]
pub(crate) struct LagBoard(Arc<Mutex<BTreeMap<Arc<str>, Option<i64>>>>);

impl LagBoard {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<Arc<str>, Option<i64>>) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A reader started on `shard`.
    pub(crate) fn owned(&self, shard: &Arc<str>) {
        self.with(|board| {
            board.entry(shard.clone()).or_insert(None);
        });
    }

    /// The latest answer for `shard` was `millis` behind the shard's newest record.
    pub(crate) fn behind(&self, shard: &Arc<str>, millis: i64) {
        self.with(|board| match board.get_mut(shard) {
            Some(slot) => *slot = Some(millis),
            None => {
                board.insert(shard.clone(), Some(millis));
            }
        });
    }

    /// The reader of `shard` ended (the shard was read to its end, or reading stopped).
    pub(crate) fn released(&self, shard: &str) {
        self.with(|board| board.remove(shard));
    }

    pub(crate) fn summary(&self) -> LagSummary {
        self.with(|board| summarize(board.iter().map(|(shard, lag)| (&**shard, *lag))))
    }
}

/// The lag of the shards of one source at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct LagSummary {
    /// Shards being read.
    pub shards: usize,
    /// Shards that answered at least once (the statistics are over these).
    pub reporting: usize,
    pub max_ms: Option<i64>,
    /// The lower median.
    pub median_ms: Option<i64>,
    /// The shard with the largest lag (the first in shard order among equals).
    pub furthest: Option<String>,
}

/// Summarises `(shard, latest lag)` pairs.
pub(crate) fn summarize<'a>(lags: impl IntoIterator<Item = (&'a str, Option<i64>)>) -> LagSummary {
    let mut shards = 0;
    let mut known: Vec<i64> = Vec::new();
    let mut furthest: Option<(&str, i64)> = None;
    for (shard, lag) in lags {
        shards += 1;
        let Some(ms) = lag else { continue };
        known.push(ms);
        if furthest.is_none_or(|(_, max)| ms > max) {
            furthest = Some((shard, ms));
        }
    }
    known.sort_unstable();
    LagSummary {
        shards,
        reporting: known.len(),
        max_ms: furthest.map(|(_, ms)| ms),
        median_ms: (!known.is_empty()).then(|| known[(known.len() - 1) / 2]),
        furthest: furthest.map(|(shard, _)| shard.to_owned()),
    }
}

impl fmt::Display for LagSummary {
    /// `lag max 1.5s (shardId-000000000003), median 120ms, 4 shards` — for `consume --progress`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.max_ms, self.median_ms, &self.furthest) {
            (Some(max), Some(median), Some(shard)) => write!(
                f,
                "lag max {} ({shard}), median {}, {} shards",
                millis_text(max),
                millis_text(median),
                self.shards
            ),
            _ => write!(f, "lag unknown yet, {} shards", self.shards),
        }
    }
}

/// `850ms`, `12.3s`, `4m05s`, `2h07m`.
pub(crate) fn millis_text(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// Logs the summary of `board` every `interval` until dropped (the engine aborts it).
pub(crate) async fn report(board: LagBoard, stream: String, interval: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let summary = board.summary();
        tracing::info!(
            stream = %stream,
            shards = summary.shards,
            shards_reporting = summary.reporting,
            max_behind_ms = summary.max_ms,
            median_behind_ms = summary.median_ms,
            furthest_shard = summary.furthest.as_deref().unwrap_or(""),
            "read lag: {summary}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_several_shards() {
        let summary = summarize([
            ("shardId-000000000000", Some(100)),
            ("shardId-000000000001", Some(5_000)),
            ("shardId-000000000002", None),
            ("shardId-000000000003", Some(0)),
            ("shardId-000000000004", Some(5_000)),
            ("shardId-000000000005", Some(250)),
        ]);
        assert_eq!(
            summary,
            LagSummary {
                shards: 6,
                reporting: 5,
                max_ms: Some(5_000),
                median_ms: Some(250),
                furthest: Some("shardId-000000000001".into()),
            }
        );
        assert_eq!(
            summary.to_string(),
            "lag max 5.0s (shardId-000000000001), median 250ms, 6 shards"
        );
    }

    #[test]
    fn median_of_an_even_count_is_the_lower_one() {
        let summary = summarize([
            ("a", Some(4)),
            ("b", Some(1)),
            ("c", Some(3)),
            ("d", Some(2)),
        ]);
        assert_eq!(summary.median_ms, Some(2));
        assert_eq!(summary.max_ms, Some(4));
        assert_eq!(summary.furthest.as_deref(), Some("a"));
    }

    #[test]
    fn nothing_known_yet() {
        let summary = summarize([("a", None)]);
        assert_eq!(summary.shards, 1);
        assert_eq!(summary.max_ms, None);
        assert_eq!(summary.to_string(), "lag unknown yet, 1 shards");
        assert_eq!(summarize([]).to_string(), "lag unknown yet, 0 shards");
    }

    #[test]
    fn board_follows_readers() {
        let board = LagBoard::default();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        board.owned(&a);
        board.owned(&b);
        board.behind(&a, 700);
        assert_eq!(board.summary().shards, 2);
        assert_eq!(board.summary().max_ms, Some(700));
        board.behind(&b, 900);
        assert_eq!(board.summary().furthest.as_deref(), Some("b"));
        board.released("b");
        let summary = board.summary();
        assert_eq!((summary.shards, summary.max_ms), (1, Some(700)));
    }

    #[test]
    fn lag_texts() {
        assert_eq!(millis_text(0), "0ms");
        assert_eq!(millis_text(999), "999ms");
        assert_eq!(millis_text(12_345), "12.3s");
        assert_eq!(millis_text(245_000), "4m05s");
        assert_eq!(millis_text(7_620_000), "2h07m");
        assert_eq!(millis_text(-5), "0ms");
    }
}
