//! The writer with `aggregation.*` against the in-memory sender of `tests.rs`: aggregates per
//! predicted shard, acks only once an aggregate is accepted, whole-aggregate retries in key
//! order, new listings after a misplaced aggregate, and the records that go alone.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::aggregating::ShardLister;
use super::tests::*;
use super::*;
use crate::destination::aggregate::shards::ShardMap;

const HALF: &str = "170141183460469231731687303715884105727";
const HALF_PLUS_ONE: &str = "170141183460469231731687303715884105728";
const MAX: &str = "340282366920938463463374607431768211455";

fn two_shards() -> ShardMap {
    ShardMap::from_listing([
        ("shardId-000000000000", "0", HALF),
        ("shardId-000000000001", HALF_PLUS_ONE, MAX),
    ])
    .unwrap()
}

/// Answers listings from a fixed map (or fails), counting them.
struct FakeLister {
    map: Option<ShardMap>,
    listings: Arc<AtomicUsize>,
}

#[async_trait]
impl ShardLister for FakeLister {
    async fn open_shards(&self, _stream: &StreamRef) -> Result<ShardMap, String> {
        self.listings.fetch_add(1, Ordering::SeqCst);
        self.map
            .clone()
            .ok_or_else(|| "ListShards failed: no".to_string())
    }
}

/// The fake answers the shard an aggregate's explicit hash key names, as Kinesis does.
fn placing_by_hash_key(mut fake: FakeSender) -> FakeSender {
    fake.shard_of = Box::new(|hash_key| match hash_key {
        Some(key) if key == HALF_PLUS_ONE => "shardId-000000000001".into(),
        _ => "shardId-000000000000".into(),
    });
    fake
}

fn aggregating(concurrency: usize, max_bytes: usize, max_records: usize) -> WriterConfig {
    WriterConfig {
        aggregation: Some(AggregationSettings {
            max_bytes,
            max_records,
            max_delay: Duration::ZERO,
        }),
        ..config(concurrency, 5)
    }
}

fn start_listing(
    fake: FakeSender,
    config: WriterConfig,
    map: Option<ShardMap>,
    max_record_size: Option<usize>,
) -> (Writer, Arc<AtomicUsize>) {
    let listings = Arc::new(AtomicUsize::new(0));
    let lister = FakeLister {
        map,
        listings: listings.clone(),
    };
    let known = vec![(stream(), StreamInfo::new(max_record_size, None))];
    let writer = Writer::start_with_lister(sdk_client(), fake, config, known, lister);
    (writer, listings)
}

/// A partition key predicted for each of the two shards.
fn key_per_shard() -> [String; 2] {
    let map = two_shards();
    let find = |shard| {
        (0..)
            .map(|i| format!("key-{i}"))
            .find(|key| map.predict(key, None) == Some(shard))
            .unwrap()
    };
    [find(0), find(1)]
}

#[tokio::test]
async fn records_of_a_shard_share_an_aggregate_and_all_are_acked() {
    let [a, b] = key_per_shard();
    let fake = placing_by_hash_key(FakeSender::new(|_, _| None));
    let log = fake.log.clone();
    let (writer, listings) =
        start_listing(fake, aggregating(1, 51_200, 1000), Some(two_shards()), None);
    let outcomes = write(
        &writer,
        records(&[("a1", &a), ("b1", &b), ("a2", &a), ("b2", &b), ("a3", &a)]),
    )
    .await;
    assert_eq!(outcomes, vec![Ok(()); 5]);
    let log = log.lock().unwrap();
    assert_eq!(
        log.calls,
        vec![strings(&["agg(a1,a2,a3)", "agg(b1,b2)"])],
        "one call, one aggregate per shard"
    );
    assert_eq!(log.written, strings(&["a1", "a2", "a3", "b1", "b2"]));
    assert_eq!(listings.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_throttled_aggregate_is_retried_whole_before_later_records_of_its_keys() {
    let [a, b] = key_per_shard();
    // The aggregate holding a1 is throttled twice; the other shard's is written at once.
    let fake = placing_by_hash_key(FakeSender::new(|entry, attempt| {
        (entry.contains("a1") && attempt <= 2).then(throttled)
    }));
    let log = fake.log.clone();
    // Two records per aggregate: a3 cannot join a1 and a2, and must wait for them.
    let (writer, _) = start_listing(fake, aggregating(1, 51_200, 2), Some(two_shards()), None);
    let outcomes = write(
        &writer,
        records(&[("a1", &a), ("b1", &b), ("a2", &a), ("a3", &a), ("b2", &b)]),
    )
    .await;
    assert_eq!(outcomes, vec![Ok(()); 5]);
    let log = log.lock().unwrap();
    assert_eq!(
        log.calls,
        vec![
            strings(&["agg(a1,a2)", "agg(b1,b2)"]),
            strings(&["agg(a1,a2)"]),
            strings(&["agg(a1,a2)"]),
            strings(&["agg(a3)"]),
        ]
    );
    assert_eq!(log.written_of_key('a'), ["a1", "a2", "a3"]);
    assert_eq!(log.written_of_key('b'), ["b1", "b2"]);
}

#[tokio::test]
async fn an_aggregate_on_another_shard_than_predicted_makes_the_next_call_list_again() {
    let [a, _] = key_per_shard();
    let mut fake = FakeSender::new(|_, _| None);
    fake.shard_of = Box::new(|_| "shardId-000000000007".into());
    let (writer, listings) =
        start_listing(fake, aggregating(1, 51_200, 1000), Some(two_shards()), None);
    assert_eq!(write(&writer, records(&[("a1", &a)])).await, vec![Ok(())]);
    assert_eq!(listings.load(Ordering::SeqCst), 1);
    assert_eq!(write(&writer, records(&[("a2", &a)])).await, vec![Ok(())]);
    assert_eq!(
        listings.load(Ordering::SeqCst),
        2,
        "the misplaced aggregate made the second call list the shards again"
    );

    // Placed as predicted: no further listing.
    let fake = placing_by_hash_key(FakeSender::new(|_, _| None));
    let (writer, listings) =
        start_listing(fake, aggregating(1, 51_200, 1000), Some(two_shards()), None);
    for position in ["a1", "a2", "a3"] {
        assert_eq!(
            write(&writer, records(&[(position, &a)])).await,
            vec![Ok(())]
        );
    }
    assert_eq!(listings.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn without_a_shard_listing_records_go_alone() {
    let fake = FakeSender::new(|_, _| None);
    let log = fake.log.clone();
    let (writer, listings) = start_listing(fake, aggregating(1, 51_200, 1000), None, None);
    let outcomes = write(&writer, records(&[("p1", "k1"), ("p2", "k2")])).await;
    assert_eq!(outcomes, vec![Ok(()); 2]);
    assert_eq!(log.lock().unwrap().calls, vec![strings(&["p1", "p2"])]);
    // The failed listing is not repeated for every call.
    write(&writer, records(&[("p3", "k3")])).await;
    assert_eq!(listings.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_record_too_large_to_share_an_aggregate_goes_alone() {
    let [a, b] = key_per_shard();
    let fake = placing_by_hash_key(FakeSender::new(|_, _| None));
    let log = fake.log.clone();
    let (writer, _) = start_listing(fake, aggregating(1, 100, 1000), Some(two_shards()), None);
    let big = "x".repeat(120);
    let outcomes = write(&writer, records(&[("b1", &b), (&big, &a), ("b2", &b)])).await;
    assert_eq!(outcomes, vec![Ok(()); 3]);
    assert_eq!(
        log.lock().unwrap().calls,
        vec![vec![big.clone(), "agg(b1,b2)".to_string()]]
    );
}

#[tokio::test]
async fn an_aggregate_over_the_streams_record_limit_nacks_its_records() {
    let [a, _] = key_per_shard();
    let fake = placing_by_hash_key(FakeSender::new(|_, _| None));
    let log = fake.log.clone();
    // The stream takes 30 bytes; aggregation.maxBytes allows 1000.
    let (writer, _) = start_listing(
        fake,
        aggregating(1, 1000, 1000),
        Some(two_shards()),
        Some(30),
    );
    let outcomes = write(&writer, records(&[("p1", &a), ("p2", &a)])).await;
    for outcome in outcomes {
        let error = outcome.unwrap_err();
        assert!(error.contains("in an aggregate of"), "{error}");
        assert!(
            error.contains("aggregation.maxBytes to at most 30"),
            "{error}"
        );
    }
    assert!(log.lock().unwrap().calls.is_empty());
}
