//! The coordinator with the engine, an in-memory stream and an in-memory lease table, in
//! paused time: sharing, handover at Teardown, checkpoints of acked records only, fencing
//! without the table, parents before children across workers, `LATEST` pinned before it is
//! read.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::memory::MemoryTable;
use super::table::Checkpoint;
use super::LeaseConfig;
use crate::plugin::Record;
use crate::source::engine::{Engine, EngineConfig};
use crate::source::fake::{Call, FakeStream};
use crate::source::reader::Mode;
use crate::source::settings::{now_epoch_millis, InitialPosition};
use crate::source::subscribe::StartingPoint;

const LEASE: Duration = Duration::from_secs(3);

fn engine(fake: &FakeStream, table: &Arc<MemoryTable>, worker: &str) -> Engine {
    engine_with(fake, table, worker, polling(), InitialPosition::TrimHorizon)
}

fn polling() -> Mode {
    Mode::Polling {
        interval: Duration::from_millis(200),
        limit: 100,
    }
}

fn fan_out() -> Mode {
    Mode::FanOut {
        consumer_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/c:1".into(),
        renew_after: Duration::from_secs(240),
        idle_timeout: Duration::from_secs(30),
    }
}

fn engine_with(
    fake: &FakeStream,
    table: &Arc<MemoryTable>,
    worker: &str,
    mode: Mode,
    initial: InitialPosition,
) -> Engine {
    Engine::start_coordinated(
        EngineConfig {
            api: Arc::new(fake.clone()),
            stream_name: "fake-stream".into(),
            mode,
            initial,
            deaggregate: true,
            unwrap_opencdc: false,
            buffer_size: 64,
            batch_size: 64,
            batch_delay: Duration::ZERO,
            discovery_interval: Duration::from_secs(1),
            lag_log_interval: Duration::ZERO,
        },
        table.clone(),
        LeaseConfig {
            worker_id: worker.into(),
            lease_duration: LEASE,
            checkpoint_interval: Duration::from_secs(1),
            initial,
            discovery_interval: Duration::from_secs(1),
        },
    )
}

fn data(record: &Record) -> String {
    match record
        .payload
        .as_ref()
        .and_then(|p| p.after.as_ref())
        .and_then(|d| d.data.as_ref())
    {
        Some(crate::plugin::proto::opencdc::v1::data::Data::RawData(bytes)) => {
            String::from_utf8(bytes.to_vec()).unwrap()
        }
        other => panic!("raw data expected, got {other:?}"),
    }
}

/// Everything `engine` delivers within `time` (virtual), acked as it comes when `ack`.
async fn read_for(engine: &Engine, time: Duration, ack: bool) -> Vec<Record> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + time;
    while let Ok(Ok(records)) = tokio::time::timeout_at(deadline, engine.read()).await {
        if ack {
            engine.ack(
                &records
                    .iter()
                    .map(|r| r.position.clone())
                    .collect::<Vec<_>>(),
            );
        }
        out.extend(records);
    }
    out
}

fn owners(table: &MemoryTable) -> BTreeMap<String, Option<String>> {
    table
        .snapshot()
        .into_iter()
        .map(|l| (l.key, l.owner))
        .collect()
}

fn four_shards() -> FakeStream {
    let fake = FakeStream::default();
    for i in 0..4 {
        fake.add_shard(&format!("s{i}"), &[]);
    }
    fake
}

#[tokio::test(start_paused = true)]
async fn two_workers_share_the_shards_and_a_teardown_hands_over_without_repeats() {
    let fake = four_shards();
    let table = Arc::new(MemoryTable::default());
    let a = engine(&fake, &table, "a");
    let b = engine(&fake, &table, "b");
    for i in 0..4 {
        for n in 0..3 {
            fake.put(&format!("s{i}"), &format!("s{i}-{n}"));
        }
    }
    let (from_a, from_b) =
        tokio::join!(read_for(&a, LEASE * 3, true), read_for(&b, LEASE * 3, true));
    let counts = owners(&table)
        .into_values()
        .fold(BTreeMap::new(), |mut m, o| {
            *m.entry(o).or_insert(0) += 1;
            m
        });
    assert_eq!(
        counts.values().copied().collect::<Vec<_>>(),
        vec![2, 2],
        "{counts:?}"
    );
    assert_eq!(from_a.len() + from_b.len(), 12);

    // a stops; b takes its shards at once (released, not expired) after a's last record.
    a.shutdown(Duration::from_secs(5)).await;
    drop(a);
    assert!(table
        .snapshot()
        .iter()
        .all(|l| l.owner.as_deref() != Some("a")));
    for i in 0..4 {
        fake.put(&format!("s{i}"), &format!("s{i}-new"));
    }
    let more = read_for(&b, LEASE, true).await;
    let mut got: Vec<String> = more.iter().map(data).collect();
    got.sort();
    assert_eq!(got, vec!["s0-new", "s1-new", "s2-new", "s3-new"]);
    assert!(owners(&table).values().all(|o| o.as_deref() == Some("b")));
}

#[tokio::test(start_paused = true)]
async fn only_acknowledged_records_are_checkpointed() {
    let fake = FakeStream::default();
    fake.add_shard("s0", &[]);
    let table = Arc::new(MemoryTable::default());
    let a = engine(&fake, &table, "a");
    let sequences: Vec<String> = (0..5).map(|n| fake.put("s0", &format!("r{n}"))).collect();
    let records = read_for(&a, LEASE, false).await;
    assert_eq!(records.len(), 5);
    a.ack(&[records[0].position.clone(), records[1].position.clone()]);
    tokio::time::sleep(LEASE).await;
    assert_eq!(
        table.get("s0").unwrap().checkpoint,
        Checkpoint::Sequence {
            sequence: sequences[1].clone(),
            sub_sequence: 0
        }
    );
    // The next owner starts after the last acked record.
    a.shutdown(Duration::from_secs(5)).await;
    drop(a);
    let b = engine(&fake, &table, "b");
    let again: Vec<String> = read_for(&b, LEASE, true).await.iter().map(data).collect();
    assert_eq!(again, vec!["r2", "r3", "r4"]);
}

#[tokio::test(start_paused = true)]
async fn a_worker_cut_off_from_the_table_stops_emitting_before_its_lease_can_be_taken() {
    let fake = FakeStream::default();
    fake.add_shard("s0", &[]);
    let table = Arc::new(MemoryTable::default());
    let a = engine(&fake, &table, "a");
    fake.put("s0", "before");
    assert_eq!(read_for(&a, LEASE, true).await.len(), 1);
    table.unreachable.store(true, Ordering::SeqCst);
    let cut_off = tokio::time::Instant::now();
    // Records keep arriving; a emits them only while its last renewal is recent.
    let mut last_emitted = None;
    for n in 0..20 {
        fake.put("s0", &format!("during-{n}"));
        if !read_for(&a, Duration::from_millis(300), true)
            .await
            .is_empty()
        {
            last_emitted = Some(tokio::time::Instant::now());
        }
    }
    let last = last_emitted.expect("some records were emitted right after the cut");
    assert!(
        last.duration_since(cut_off) < LEASE,
        "emitted {:?} after the cut, past the lease duration",
        last.duration_since(cut_off)
    );
    fake.put("s0", "after");
    assert!(read_for(&a, LEASE, true).await.is_empty());
}

/// A worker whose own renewal was carried out after it gave up waiting sees a conflict and
/// hands the lease over, but nobody stole it: the lease is still its own and it takes it
/// again at once. Finishing that handover later must not end the new ownership.
#[tokio::test(start_paused = true)]
async fn retaking_a_lease_while_its_handover_is_pending_keeps_reading_it() {
    let fake = FakeStream::default();
    fake.add_shard("s0", &[]);
    let table = Arc::new(MemoryTable::default());
    let a = engine(&fake, &table, "a");
    fake.put("s0", "acked");
    assert_eq!(read_for(&a, LEASE, true).await.len(), 1);
    // In flight (not acked) when the conflict comes: the handover waits for its deadline.
    fake.put("s0", "in-flight");
    assert_eq!(
        read_for(&a, Duration::from_millis(500), false).await.len(),
        1
    );
    table.apply_late_renewal("s0");
    let mut delivered: Vec<String> = read_for(&a, LEASE, true).await.iter().map(data).collect();
    for n in 0..3 {
        fake.put("s0", &format!("after-{n}"));
        delivered.extend(read_for(&a, LEASE, true).await.iter().map(data));
    }
    assert_eq!(table.get("s0").unwrap().owner.as_deref(), Some("a"));
    for n in 0..3 {
        let want = format!("after-{n}");
        assert!(
            delivered.contains(&want),
            "{want} not delivered: {delivered:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_child_is_read_only_after_its_parent_is_at_shard_end_whoever_reads_it() {
    let fake = FakeStream::default();
    fake.add_shard("p", &[]);
    fake.put("p", "p-0");
    fake.reshard(&["p"], "c");
    fake.put("c", "c-0");
    let table = Arc::new(MemoryTable::default());
    let a = engine(&fake, &table, "a");
    let b = engine(&fake, &table, "b");
    let (from_a, from_b) =
        tokio::join!(read_for(&a, LEASE * 4, true), read_for(&b, LEASE * 4, true));
    let mut all: Vec<(String, String)> = from_a
        .iter()
        .chain(&from_b)
        .map(|r| {
            (
                data(r),
                r.metadata.get("kinesis.shardId").unwrap_or("").to_owned(),
            )
        })
        .collect();
    all.sort();
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(table.get("p").unwrap().checkpoint, Checkpoint::ShardEnd);
    assert_eq!(
        table.get("p").unwrap().children,
        vec!["c".to_string()],
        "{:#?}",
        table.snapshot()
    );
    assert_eq!(table.get("c").unwrap().parents, vec!["p".to_string()]);
}

/// The first owner of a `LATEST` shard dies before anything it read was acknowledged (so
/// before any record checkpoint): the next owner still reads everything written since the
/// first one started, not from its own "now".
async fn latest_survives_a_crash_before_the_first_checkpoint(mode: Mode) {
    let fake = FakeStream::default();
    fake.add_shard("s0", &[]);
    let long_ago = now_epoch_millis() - 60_000;
    fake.put_arrived("s0", "old", Some(long_ago));
    let table = Arc::new(MemoryTable::default());
    let before = now_epoch_millis();
    let a = engine_with(&fake, &table, "a", mode.clone(), InitialPosition::Latest);
    // Shorter than a fan-out heartbeat: an empty event's continuation would be checkpointed.
    assert!(read_for(&a, Duration::from_millis(500), false)
        .await
        .is_empty());
    let lease = table.get("s0").unwrap();
    assert_eq!(lease.owner.as_deref(), Some("a"));
    let pinned = lease.checkpoint.timestamp().expect("LATEST pinned");
    assert_eq!(lease.checkpoint.text(), "AT_TIMESTAMP");
    assert!(
        pinned <= before && pinned > long_ago,
        "pinned at {pinned}, started at {before}"
    );

    let written: Vec<String> = (0..5).map(|n| format!("r{n}")).collect();
    for data in &written {
        fake.put("s0", data);
    }
    let seen: Vec<String> = read_for(&a, LEASE, false).await.iter().map(data).collect();
    assert_eq!(
        seen, written,
        "a reads from where it pinned, without the old record"
    );
    // No ack came, so no record checkpoint: the pin is what the next owner finds.
    assert_eq!(table.get("s0").unwrap().checkpoint, lease.checkpoint);
    drop(a);

    let b = engine_with(&fake, &table, "b", mode, InitialPosition::Latest);
    let again: Vec<String> = read_for(&b, LEASE * 4, true)
        .await
        .iter()
        .map(data)
        .collect();
    assert_eq!(again, written);
    assert_eq!(table.get("s0").unwrap().owner.as_deref(), Some("b"));
    assert!(matches!(
        table.get("s0").unwrap().checkpoint,
        Checkpoint::Sequence { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn polling_latest_survives_a_crash_before_the_first_checkpoint() {
    latest_survives_a_crash_before_the_first_checkpoint(polling()).await;
}

#[tokio::test(start_paused = true)]
async fn fan_out_latest_survives_a_crash_before_the_first_checkpoint() {
    // The continuation of an event is checkpointed only when nothing of the shard waits for
    // an ack, so the first event's records left LATEST in place as well.
    latest_survives_a_crash_before_the_first_checkpoint(fan_out()).await;
}

#[tokio::test(start_paused = true)]
async fn latest_on_an_idle_shard_survives_a_graceful_stop() {
    // Nothing to acknowledge, so no record checkpoint: a stop and a later start must still
    // read what was written in between.
    let fake = FakeStream::default();
    fake.add_shard("s0", &[]);
    let table = Arc::new(MemoryTable::default());
    let a = engine_with(&fake, &table, "a", polling(), InitialPosition::Latest);
    assert!(read_for(&a, LEASE, true).await.is_empty());
    a.shutdown(Duration::from_secs(5)).await;
    drop(a);
    let lease = table.get("s0").unwrap();
    assert_eq!(lease.owner, None);
    assert!(lease.checkpoint.timestamp().is_some(), "{lease:?}");
    fake.put("s0", "while-stopped");
    let b = engine_with(&fake, &table, "b", polling(), InitialPosition::Latest);
    let got: Vec<String> = read_for(&b, LEASE, true).await.iter().map(data).collect();
    assert_eq!(got, vec!["while-stopped"]);
}

#[tokio::test(start_paused = true)]
async fn a_latest_shard_is_not_read_until_its_pin_is_written() {
    let fake = FakeStream::default();
    fake.add_shard("s0", &[]);
    let table = Arc::new(MemoryTable::default());
    table.checkpoints_fail.store(true, Ordering::SeqCst);
    let a = engine_with(&fake, &table, "a", polling(), InitialPosition::Latest);
    fake.put("s0", "r0");
    assert!(read_for(&a, LEASE, true).await.is_empty());
    let lease = table.get("s0").unwrap();
    assert_eq!(lease.owner.as_deref(), Some("a"), "held, renewed, not read");
    assert_eq!(lease.checkpoint, Checkpoint::Latest);
    assert!(
        !fake
            .calls()
            .iter()
            .any(|c| matches!(c, Call::ShardIterator { .. })),
        "no reader started before the pin"
    );
    table.checkpoints_fail.store(false, Ordering::SeqCst);
    fake.put("s0", "r1");
    let got: Vec<String> = read_for(&a, LEASE, true).await.iter().map(data).collect();
    assert_eq!(got, vec!["r0", "r1"], "both are within the pin's margin");
    assert!(fake.calls().iter().all(|c| matches!(
        c,
        Call::ShardIterator {
            start: StartingPoint::AtTimestamp(_),
            ..
        }
    )));
    assert!(matches!(
        table.get("s0").unwrap().checkpoint,
        Checkpoint::Sequence { .. }
    ));
}
