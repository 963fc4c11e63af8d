//! Soak: Kinesis → Kinesis through this connector (source and destination) in the real
//! Conduit, for a long run with faults injected, checking that nothing is lost and that the
//! plugin processes neither grow nor leak.
//!
//! Run with `make soak` (or `cargo bench --bench soak`); not part of `make test`. Needs
//! `.tools/bin/conduit` (prints `SKIPPED: Conduit not installed` and exits 0 without it) and
//! kinesis-local (`test/setup.sh`).
//!
//! Set-up, all on loopback:
//! * two kinesis-local servers, one holding the input stream, one the output stream (each is a
//!   single-threaded JavaScript server; splitting the load keeps both ahead of the rate);
//! * a producer writing numbered records (`soak-<id>`, several partition keys) straight into
//!   the input stream at `SOAK_RATE` records/s, retrying failed entries until they are stored;
//! * the pipeline `kinesis source (fan-out, default settings) → kinesis destination` in
//!   Conduit; the destination writes `sdk.record.format: raw`, so each output record's data is
//!   the input record's data;
//! * the source reads through the outage proxy (`tests/support/outage_proxy.rs`): every
//!   `SOAK_OUTAGE_EVERY` every connection is cut and new ones are refused for 5, 8 or 10 s;
//! * the destination writes through the fault proxy (`tests/support/fault_proxy.rs`): a share
//!   of entries (`SOAK_THROTTLE_ENTRIES`, default 5 %) fails with
//!   ProvisionedThroughputExceededException, and every `SOAK_THROTTLE_EVERY_CALL`-th PutRecords
//!   call is throttled whole;
//! * one reshard of the input stream (UpdateShardCount to twice the shards) at
//!   `SOAK_RESHARD_AT` (default half-way), sent to kinesis-local directly.
//!
//! Subscriptions are renewed by the source before their 5-minute end (4 m 30 s by default). An
//! outage ends every subscription and the next one starts its own 4 m 30 s, so outages come
//! every 5 minutes: the default 15 minutes then see the input's first shards renewed at 4:30
//! and, after the reshard at 7:30 and the outage at 10:00, its new shards renewed at ~14:40.
//! Renewals are counted from the plugin's debug log lines (Conduit runs at `SOAK_LOG_LEVEL`,
//! default `debug`).
//!
//! At the end: the producer stops, the pipeline gets at most `SOAK_DRAIN_TIMEOUT` to deliver
//! everything, then both streams are read whole. The report (stdout, also written to
//! `target/soak/report.md`) has records in/out, lost (exit code 1 when not 0), repeated, the
//! RSS and open file descriptors of both plugin processes sampled every `SOAK_SAMPLE_EVERY`
//! (per minute: min/median/max) with a flatness verdict, and the log line counts by level.
//!
//! The rate is bounded by kinesis-local, not by the connector: its PutRecords gets slower as a
//! stream grows, whatever the batch size (measured on the 2-core development machine with
//! 500-entry calls of 100 bytes: ~1,000 records/s into a fresh stream, ~120/s once a 2-shard
//! stream holds 15,000 records, ~150/s once a 16-shard stream holds 37,000). A 15-minute run
//! therefore keeps each stream to a few tens of thousands of records: the default rate is 30
//! records/s (27,000 records in 15 minutes) into 8 shards.
//!
//! Knobs: `SOAK_DURATION` (default `15m`; `90s`, `1h`, `2m30s` or plain seconds), `SOAK_RATE`
//! (30), `SOAK_SHARDS` (input shards, 8), `SOAK_OUTPUT_SHARDS` (8), `SOAK_KEYS` (partition
//! keys, 64), `SOAK_RECORD_BYTES` (100), `SOAK_SAMPLE_EVERY` (15s), `SOAK_OUTAGE_EVERY` (5m,
//! at most a third of the duration), `SOAK_THROTTLE_ENTRIES` (0.05),
//! `SOAK_THROTTLE_EVERY_CALL` (25), `SOAK_RESHARD_AT` (half the duration), `SOAK_DRAIN_TIMEOUT`
//! (5m), `SOAK_LOG_LEVEL` (debug), `SOAK_REPORT` (report path).

#[allow(dead_code)]
#[path = "common/mod.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ScalingType};
use common::env_u64;
use support::conduit::{destination, pipeline_yaml, source, Conduit, ConduitHome, Db};
use support::destination::read_all;
use support::fault_proxy::{CallFault, CallRule, EntryError, EntryRule, FaultProxy};
use support::kinesis_local::KinesisLocal;
use support::outage_proxy::OutageProxy;

const PLUGIN: &str = "standalone:kinesis";
const PIPELINE: &str = "soak";
const SOURCE_ID: &str = "kinesis-in";
const DESTINATION_ID: &str = "kinesis-out";
const INPUT_STREAM: &str = "soak-in";
const OUTPUT_STREAM: &str = "soak-out";
const RECORD_PREFIX: &str = "soak-";
/// How long the pipeline may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// After everything is delivered: how long to keep watching for late repeats.
const SETTLE: Duration = Duration::from_secs(10);
/// Outage lengths, used in turn.
const OUTAGES: [Duration; 3] = [
    Duration::from_secs(5),
    Duration::from_secs(8),
    Duration::from_secs(10),
];
/// RSS verdict: last-third median at most this much above the first-third median.
const RSS_TOLERANCE: f64 = 0.20;
/// Open file descriptors verdict: last-third median at most this many above the first third's.
const FD_TOLERANCE: f64 = 3.0;

fn main() -> std::process::ExitCode {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let conduit = repo_root().join(".tools/bin/conduit");
    if !conduit.exists() {
        println!(
            "SKIPPED: Conduit not installed ({} is missing; test/setup.sh installs Conduit \
             v0.19.0 where the Go module proxy serves it)",
            conduit.display()
        );
        return std::process::ExitCode::SUCCESS;
    }
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("soak: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(&conduit, settings)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("soak: FAILED: records were lost");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("soak: FAILED: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// -------------------------------------------------------------------------------------------
// Settings
// -------------------------------------------------------------------------------------------

struct Settings {
    duration: Duration,
    rate: u64,
    shards: i32,
    output_shards: i32,
    keys: u64,
    record_bytes: usize,
    sample_every: Duration,
    outage_every: Duration,
    throttle_entries: f64,
    throttle_every_call: u64,
    reshard_at: Duration,
    drain_timeout: Duration,
    log_level: String,
    report: PathBuf,
}

/// `15m`, `90s`, `1h30m`, `500ms` or plain seconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return (secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        if digits == 0 {
            return None;
        }
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        total += Duration::from_secs_f64(value * unit);
        rest = &rest[unit_len..];
    }
    Some(total)
}

fn env_duration(name: &str, default: Duration) -> Result<Duration, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => parse_duration(&v)
            .ok_or_else(|| format!("{name}={v:?} is not a duration (e.g. 90s, 15m)")),
        _ => Ok(default),
    }
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        let duration = env_duration("SOAK_DURATION", Duration::from_secs(15 * 60))?;
        if duration < Duration::from_secs(10) {
            return Err("SOAK_DURATION must be at least 10s".into());
        }
        let outage_every = env_duration("SOAK_OUTAGE_EVERY", Duration::from_secs(300))?
            .min(duration / 3)
            .max(Duration::from_secs(1));
        Ok(Settings {
            duration,
            rate: env_u64("SOAK_RATE", 30).max(1),
            shards: env_u64("SOAK_SHARDS", 8).clamp(1, 20) as i32,
            output_shards: env_u64("SOAK_OUTPUT_SHARDS", 8).clamp(1, 20) as i32,
            keys: env_u64("SOAK_KEYS", 64).max(1),
            record_bytes: env_u64("SOAK_RECORD_BYTES", 100).clamp(32, 100_000) as usize,
            sample_every: env_duration("SOAK_SAMPLE_EVERY", Duration::from_secs(15))?
                .max(Duration::from_secs(1)),
            outage_every,
            throttle_entries: env_f64("SOAK_THROTTLE_ENTRIES", 0.05).clamp(0.0, 0.5),
            throttle_every_call: env_u64("SOAK_THROTTLE_EVERY_CALL", 25),
            reshard_at: env_duration("SOAK_RESHARD_AT", duration / 2)?,
            drain_timeout: env_duration("SOAK_DRAIN_TIMEOUT", Duration::from_secs(300))?,
            log_level: std::env::var("SOAK_LOG_LEVEL").unwrap_or_else(|_| "debug".into()),
            report: std::env::var_os("SOAK_REPORT")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join("target/soak/report.md")),
        })
    }
}

// -------------------------------------------------------------------------------------------
// Producer
// -------------------------------------------------------------------------------------------

fn record_data(id: u64, key: &str, size: usize) -> Vec<u8> {
    let mut data = format!("{RECORD_PREFIX}{id:010} {key} ").into_bytes();
    data.resize(size.max(data.len()), b'.');
    data
}

/// The id of a record the producer wrote, from its data.
fn record_id(data: &[u8]) -> Option<u64> {
    let rest = data.strip_prefix(RECORD_PREFIX.as_bytes())?;
    std::str::from_utf8(rest.get(..10)?).ok()?.parse().ok()
}

#[derive(Default)]
struct ProducerStats {
    /// Records Kinesis accepted (ids 0..stored are all stored).
    stored: AtomicU64,
    calls: AtomicU64,
    failed_calls: AtomicU64,
    failed_entries: AtomicU64,
}

/// Writes records `0, 1, 2, ...` at `rate` per second until `stop`; every id below
/// `stats.stored` was accepted by Kinesis (failed entries are retried before moving on).
async fn produce(
    client: aws_sdk_kinesis::Client,
    settings: Arc<Settings>,
    stop: Arc<AtomicBool>,
    stats: Arc<ProducerStats>,
) {
    let started = Instant::now();
    let mut next = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * settings.rate as f64) as u64;
        while next < due && !stop.load(Ordering::Relaxed) {
            let end = due.min(next + 500);
            let mut pending: Vec<u64> = (next..end).collect();
            while !pending.is_empty() {
                let entries: Vec<PutRecordsRequestEntry> = pending
                    .iter()
                    .map(|&id| {
                        let key = format!("pk-{:02}", id % settings.keys);
                        PutRecordsRequestEntry::builder()
                            .partition_key(&key)
                            .data(Blob::new(record_data(id, &key, settings.record_bytes)))
                            .build()
                            .expect("entry")
                    })
                    .collect();
                stats.calls.fetch_add(1, Ordering::Relaxed);
                match client
                    .put_records()
                    .stream_name(INPUT_STREAM)
                    .set_records(Some(entries))
                    .send()
                    .await
                {
                    Ok(out) => {
                        let failed: Vec<u64> = out
                            .records
                            .iter()
                            .zip(&pending)
                            .filter(|(r, _)| r.error_code.is_some())
                            .map(|(_, &id)| id)
                            .collect();
                        stats
                            .failed_entries
                            .fetch_add(failed.len() as u64, Ordering::Relaxed);
                        pending = failed;
                    }
                    Err(e) => {
                        stats.failed_calls.fetch_add(1, Ordering::Relaxed);
                        eprintln!(
                            "soak: producer: PutRecords failed (retrying): {}",
                            aws_sdk_kinesis::error::DisplayErrorContext(e)
                        );
                    }
                }
                if !pending.is_empty() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            next = end;
            stats.stored.store(next, Ordering::Relaxed);
        }
    }
}

// -------------------------------------------------------------------------------------------
// Sampling /proc
// -------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Role {
    Source,
    Destination,
    Conduit,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Role::Source => "source plugin",
            Role::Destination => "destination plugin",
            Role::Conduit => "Conduit",
        }
    }
}

#[derive(Clone, Debug)]
struct ProcSample {
    role: Role,
    pid: u32,
    rss_kib: u64,
    fds: u64,
    threads: u64,
}

#[derive(Clone, Debug)]
struct Sample {
    /// Seconds since the producer started.
    at: f64,
    produced: u64,
    /// Entries the destination got written (repeats included).
    written: u64,
    procs: Vec<ProcSample>,
}

fn status_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(name))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn proc_sample(role: Role, pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(ProcSample {
        role,
        pid,
        rss_kib: status_field(&status, "VmRSS:")?,
        fds,
        threads: status_field(&status, "Threads:").unwrap_or(0),
    })
}

/// `CONDUIT_CONNECTOR_ID` of a process (`<pipeline>:<connector>`).
fn connector_id(pid: u32) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ.split(|&b| b == 0).find_map(|var| {
        var.strip_prefix(b"CONDUIT_CONNECTOR_ID=")
            .map(|v| String::from_utf8_lossy(v).into_owned())
    })
}

fn sample_processes(conduit_pid: u32, plugin_pids: &[u32]) -> Vec<ProcSample> {
    let mut out = Vec::new();
    for &pid in plugin_pids {
        let role = match connector_id(pid).as_deref() {
            Some(id) if id == format!("{PIPELINE}:{SOURCE_ID}") => Role::Source,
            Some(id) if id == format!("{PIPELINE}:{DESTINATION_ID}") => Role::Destination,
            _ => continue,
        };
        out.extend(proc_sample(role, pid));
    }
    out.extend(proc_sample(Role::Conduit, conduit_pid));
    out.sort_by_key(|p| (p.role, p.pid));
    out
}

/// Entries the fault proxy saw written to the output stream, and the distinct ids among them.
fn written_ids(proxy: &FaultProxy) -> (u64, HashSet<u64>) {
    let mut total = 0;
    let mut ids = HashSet::new();
    for call in proxy.put_records_calls() {
        for entry in call.entries.iter().filter(|e| e.written()) {
            total += 1;
            ids.extend(record_id(&entry.data));
        }
    }
    (total, ids)
}

// -------------------------------------------------------------------------------------------
// The run
// -------------------------------------------------------------------------------------------

type Events = Arc<Mutex<Vec<(f64, String)>>>;

fn note(events: &Events, started: Instant, what: String) {
    let at = started.elapsed().as_secs_f64();
    eprintln!("soak: [{}] {what}", clock(at));
    events.lock().unwrap().push((at, what));
}

fn clock(secs: f64) -> String {
    let secs = secs.max(0.0) as u64;
    format!("{:02}:{:02}", secs / 60, secs % 60)
}

fn git_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(repo_root())
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{commit} (with uncommitted changes)")
    } else {
        commit
    }
}

async fn run(conduit_binary: &Path, settings: Settings) -> Result<bool, String> {
    let settings = Arc::new(settings);
    let commit = git_commit();
    eprintln!(
        "soak: {} at {} records/s, commit {commit}",
        humanize(settings.duration),
        settings.rate
    );

    let input = KinesisLocal::start().await;
    let output = KinesisLocal::start().await;
    input.create_stream(INPUT_STREAM, settings.shards).await;
    output
        .create_stream(OUTPUT_STREAM, settings.output_shards)
        .await;

    let outage = Arc::new(OutageProxy::start(&input.endpoint).await);
    let faults = FaultProxy::start(&output.endpoint).await;
    if settings.throttle_entries > 0.0 {
        // At most 3 failures per record, below the destination's 10 attempts.
        faults.add_entry_rule(EntryRule::random(
            settings.throttle_entries,
            3,
            EntryError::Throughput,
        ));
    }
    if settings.throttle_every_call > 0 {
        faults.add_call_rule(CallRule::every(
            settings.throttle_every_call,
            CallFault::Throttle,
        ));
    }

    let aws = |url: &str| -> Vec<(&'static str, String)> {
        vec![
            ("aws.url", url.to_string()),
            ("aws.region", "us-east-1".into()),
            ("aws.accessKeyId", "test".into()),
            ("aws.secretAccessKey", "test".into()),
        ]
    };
    let mut source_settings = aws(&outage.url);
    source_settings.push(("streamName", INPUT_STREAM.into()));
    let mut destination_settings = aws(&faults.url);
    destination_settings.push(("streamName", OUTPUT_STREAM.into()));
    destination_settings.push(("sdk.record.format", "raw".into()));
    let source_refs: Vec<(&str, &str)> = source_settings
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    let destination_refs: Vec<(&str, &str)> = destination_settings
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    let yaml = pipeline_yaml(
        PIPELINE,
        &[
            source(SOURCE_ID, PLUGIN, &source_refs),
            destination(DESTINATION_ID, PLUGIN, &destination_refs),
        ],
    );
    let home = ConduitHome::new(&[("soak.yaml", yaml)]);
    let conduit = Conduit::start(
        conduit_binary,
        &home,
        Db::InMemory,
        &["--log.level", &settings.log_level],
    );
    conduit.wait_for_status(PIPELINE, "STATUS_RUNNING", START_TIMEOUT);
    let conduit_pid = conduit_pid(&conduit).ok_or("Conduit's process was not found")?;

    // --- producing, with faults on a timeline ------------------------------------------
    let started = Instant::now();
    let events: Events = Arc::default();
    note(
        &events,
        started,
        format!(
            "pipeline running; producing {} records/s into {} shards",
            settings.rate, settings.shards
        ),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(ProducerStats::default());
    let producer = tokio::spawn(produce(
        input.client().await,
        settings.clone(),
        stop.clone(),
        stats.clone(),
    ));

    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let sampling = Arc::new(AtomicBool::new(true));
    let faults = Arc::new(faults);
    let sampler = {
        let samples = samples.clone();
        let sampling = sampling.clone();
        let stats = stats.clone();
        let faults = faults.clone();
        let every = settings.sample_every;
        let plugin_pids = move || {
            support::conduit::child_pids(conduit_pid)
                .into_iter()
                .filter(|pid| {
                    std::fs::read_link(format!("/proc/{pid}/exe"))
                        .ok()
                        .and_then(|exe| exe.file_name().map(|n| n.to_string_lossy().into_owned()))
                        .is_some_and(|name| name.starts_with("conduit-connector-kinesis"))
                })
                .collect::<Vec<u32>>()
        };
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while sampling.load(Ordering::Relaxed) {
                tick.tick().await;
                let procs = sample_processes(conduit_pid, &plugin_pids());
                let (written, _) = written_ids(&faults);
                let sample = Sample {
                    at: started.elapsed().as_secs_f64(),
                    produced: stats.stored.load(Ordering::Relaxed),
                    written,
                    procs,
                };
                let summary: Vec<String> = sample
                    .procs
                    .iter()
                    .map(|p| {
                        format!(
                            "{} {} RSS {:.1} MiB fds {}",
                            p.role.label(),
                            p.pid,
                            p.rss_kib as f64 / 1024.0,
                            p.fds
                        )
                    })
                    .collect();
                eprintln!(
                    "soak: [{}] produced {} written {} | {}",
                    clock(sample.at),
                    sample.produced,
                    sample.written,
                    summary.join(" | ")
                );
                samples.lock().unwrap().push(sample);
            }
        })
    };

    // The timeline: outages every `outage_every` (not in the last 20 s), one reshard.
    let mut timeline: Vec<(Duration, Option<Duration>)> = Vec::new();
    let mut at = settings.outage_every;
    let mut n = 0;
    while at + Duration::from_secs(20) < settings.duration {
        timeline.push((at, Some(OUTAGES[n % OUTAGES.len()])));
        at += settings.outage_every;
        n += 1;
    }
    if settings.reshard_at < settings.duration {
        timeline.push((settings.reshard_at, None));
    }
    timeline.sort_by_key(|(at, _)| *at);
    let input_client = input.client().await;
    for (at, what) in timeline {
        tokio::time::sleep_until(tokio::time::Instant::from_std(started + at)).await;
        match what {
            Some(length) => {
                note(
                    &events,
                    started,
                    format!(
                        "outage: source connections cut, refused for {} s",
                        length.as_secs()
                    ),
                );
                let _ = outage.outage(length).await;
                note(
                    &events,
                    started,
                    "outage over: proxy listening again".into(),
                );
            }
            None => {
                let target = settings.shards * 2;
                match input_client
                    .update_shard_count()
                    .stream_name(INPUT_STREAM)
                    .target_shard_count(target)
                    .scaling_type(ScalingType::UniformScaling)
                    .send()
                    .await
                {
                    Ok(_) => {
                        note(
                            &events,
                            started,
                            format!(
                                "reshard: UpdateShardCount {} → {target} on the input stream",
                                settings.shards
                            ),
                        );
                        input.wait_stream_active(INPUT_STREAM).await;
                        note(
                            &events,
                            started,
                            "reshard: input stream ACTIVE again".into(),
                        );
                    }
                    Err(e) => note(
                        &events,
                        started,
                        format!(
                            "reshard FAILED: {}",
                            aws_sdk_kinesis::error::DisplayErrorContext(e)
                        ),
                    ),
                }
            }
        }
    }
    tokio::time::sleep_until(tokio::time::Instant::from_std(started + settings.duration)).await;
    stop.store(true, Ordering::Relaxed);
    producer.await.map_err(|e| format!("producer: {e}"))?;
    let produced = stats.stored.load(Ordering::Relaxed);
    let production_secs = started.elapsed().as_secs_f64();
    note(
        &events,
        started,
        format!(
            "producer stopped: {produced} records stored ({:.0}/s achieved)",
            produced as f64 / production_secs
        ),
    );

    // --- draining ------------------------------------------------------------------------
    let drain_started = Instant::now();
    // (when, distinct ids written so far): shows whether a drain that timed out was still
    // making progress (slow) or had stopped (records skipped).
    let mut progress: Vec<(Instant, usize)> = Vec::new();
    let drained = loop {
        let (_, ids) = written_ids(&faults);
        progress.push((Instant::now(), ids.len()));
        let missing = (0..produced).filter(|id| !ids.contains(id)).count();
        if missing == 0 {
            break true;
        }
        if drain_started.elapsed() > settings.drain_timeout {
            break false;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let drain_secs = drain_started.elapsed().as_secs_f64();
    let last_minute_progress = progress.last().map(|&(at, n)| {
        let before = progress
            .iter()
            .rev()
            .find(|(t, _)| at.duration_since(*t) >= Duration::from_secs(60))
            .or(progress.first())
            .map(|&(_, m)| m)
            .unwrap_or(0);
        n - before
    });
    note(
        &events,
        started,
        if drained {
            format!("drained: every record written to the output after {drain_secs:.0} s")
        } else {
            format!("NOT drained within {}", humanize(settings.drain_timeout))
        },
    );
    tokio::time::sleep(SETTLE).await;
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let samples = samples.lock().unwrap().clone();
    let log = conduit.log_entries();

    // --- reading both streams whole ------------------------------------------------------
    let input_records = read_all(&input.client().await, INPUT_STREAM).await;
    let output_records = read_all(&output.client().await, OUTPUT_STREAM).await;
    let mut in_counts: HashMap<u64, u64> = HashMap::new();
    for r in &input_records {
        if let Some(id) = record_id(&r.data) {
            *in_counts.entry(id).or_default() += 1;
        }
    }
    let mut out_counts: HashMap<u64, u64> = HashMap::new();
    let mut foreign = 0u64;
    for r in &output_records {
        match record_id(&r.data) {
            Some(id) => *out_counts.entry(id).or_default() += 1,
            None => foreign += 1,
        }
    }
    let lost: Vec<u64> = (0..produced)
        .filter(|id| !out_counts.contains_key(id))
        .collect();
    let repeated_records: u64 = out_counts.values().map(|&n| n.saturating_sub(1)).sum();
    let repeated_ids = out_counts.values().filter(|&&n| n > 1).count();
    let input_repeats: u64 = in_counts.values().map(|&n| n.saturating_sub(1)).sum();
    let unknown = out_counts.keys().filter(|&&id| id >= produced).count();

    let shards_after = input
        .client()
        .await
        .list_shards()
        .stream_name(INPUT_STREAM)
        .send()
        .await
        .map(|o| o.shards.unwrap_or_default().len())
        .unwrap_or(0);

    // --- Conduit ends ------------------------------------------------------------------
    let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        conduit.terminate(Duration::from_secs(60))
    }));
    let conduit_exit = match stopped {
        Ok(status) => format!("Conduit stopped with SIGTERM: {status}"),
        Err(_) => "Conduit did not stop within 60 s of SIGTERM (killed)".into(),
    };

    // --- report --------------------------------------------------------------------------
    let mut r = String::new();
    let _ = writeln!(
        r,
        "# Soak: Kinesis → Kinesis through the connector in Conduit\n"
    );
    let _ = writeln!(
        r,
        "- command: `SOAK_DURATION={} SOAK_RATE={} cargo bench --bench soak` (what `make soak` runs)",
        humanize(settings.duration),
        settings.rate
    );
    let _ = writeln!(r, "- git commit: {commit}");
    let _ = writeln!(
        r,
        "- Conduit: {} (`--log.level {}`), plugin {PLUGIN}@v{} (release build)",
        conduit_version(conduit_binary),
        settings.log_level,
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        r,
        "- pipeline: kinesis source (readMode fanout, defaults: renewAfter 4m30s) on `{INPUT_STREAM}` ({} shards, resharded to {}; {shards_after} shards listed at the end) through the outage proxy → kinesis destination (`sdk.record.format: raw`) on `{OUTPUT_STREAM}` ({} shards) through the fault proxy",
        settings.shards,
        settings.shards * 2,
        settings.output_shards
    );
    let _ = writeln!(
        r,
        "- faults: {:.0} % of PutRecords entries ProvisionedThroughputExceeded (at most 3 times per record), every {}th PutRecords call throttled whole; source connections cut and refused every {} for 5/8/10 s; one UpdateShardCount at {}",
        settings.throttle_entries * 100.0,
        settings.throttle_every_call,
        humanize(settings.outage_every),
        clock(settings.reshard_at.as_secs_f64())
    );
    let _ = writeln!(
        r,
        "- records: {} bytes, {} partition keys, two kinesis-local 0.6.2 servers (input, output)\n",
        settings.record_bytes, settings.keys
    );

    let _ = writeln!(r, "## Timeline\n");
    let _ = writeln!(r, "| at (mm:ss) | event |\n|---|---|");
    for (at, what) in events.lock().unwrap().iter() {
        let _ = writeln!(r, "| {} | {what} |", clock(*at));
    }

    let calls = faults.put_records_calls();
    let call_faults = calls.iter().filter(|c| c.fault.is_some()).count();
    let entry_faults = calls
        .iter()
        .flat_map(|c| c.entries.iter())
        .filter(|e| matches!(e.fate, support::fault_proxy::Fate::Failed(_)))
        .count();
    let _ = writeln!(r, "\n## Records\n");
    let _ = writeln!(r, "| measure | value |\n|---|---:|");
    let _ = writeln!(
        r,
        "| records in (stored by the producer, ids 0..{produced}) | {produced} |"
    );
    let _ = writeln!(
        r,
        "| records in the input stream (read back) | {} ({} distinct ids, {input_repeats} producer repeats) |",
        input_records.len(),
        in_counts.len()
    );
    let _ = writeln!(
        r,
        "| records out (output stream, read back) | {} |",
        output_records.len()
    );
    let _ = writeln!(r, "| distinct ids out | {} |", out_counts.len());
    let _ = writeln!(
        r,
        "| **lost** (ids never in the output) | **{}** |",
        lost.len()
    );
    let _ = writeln!(
        r,
        "| repeated (extra copies in the output) | {repeated_records} (over {repeated_ids} ids) |"
    );
    let _ = writeln!(
        r,
        "| unexpected records out (unknown id or data) | {} |",
        unknown as u64 + foreign
    );
    let _ = writeln!(
        r,
        "| drain after the producer stopped | {} |",
        if drained {
            format!("{drain_secs:.0} s")
        } else {
            format!("not complete after {drain_secs:.0} s")
        }
    );
    let _ = writeln!(
        r,
        "| producer: PutRecords calls / failed calls / failed entries | {} / {} / {} |",
        stats.calls.load(Ordering::Relaxed),
        stats.failed_calls.load(Ordering::Relaxed),
        stats.failed_entries.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        r,
        "| destination: PutRecords calls / throttled whole / entries throttled | {} / {call_faults} / {entry_faults} |",
        calls.len()
    );
    if !drained {
        let _ = writeln!(
            r,
            "| new ids written out in the last 60 s of the drain | {} (not 0: the pipeline was still delivering, slowly, when the wait ended) |",
            last_minute_progress.unwrap_or(0)
        );
    }
    if !lost.is_empty() {
        let _ = writeln!(
            r,
            "\nlost ids span {}..={} ({} ids)",
            lost[0],
            lost[lost.len() - 1],
            lost.len()
        );
        let shown: Vec<String> = lost.iter().take(20).map(u64::to_string).collect();
        let _ = writeln!(r, "\nlost ids (first 20): {}", shown.join(", "));
    }

    r.push_str(&resource_report(&samples, settings.duration));
    r.push_str(&log_report(&log));
    let _ = writeln!(r, "\n{conduit_exit}.");

    println!("{r}");
    if let Some(parent) = settings.report.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    match std::fs::write(&settings.report, &r) {
        Ok(()) => eprintln!("soak: report written to {}", settings.report.display()),
        Err(e) => eprintln!("soak: could not write {}: {e}", settings.report.display()),
    }
    Ok(lost.is_empty())
}

fn conduit_pid(conduit: &Conduit) -> Option<u32> {
    // The process whose stdout is this Conduit's log file.
    let log = conduit.log.canonicalize().ok()?;
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stdout = std::fs::read_link(format!("/proc/{pid}/fd/1")).ok()?;
            (stdout == log).then_some(pid)
        })
}

fn conduit_version(binary: &Path) -> String {
    std::process::Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "conduit (version unknown)".into())
}

fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}

// -------------------------------------------------------------------------------------------
// Resource and log reports
// -------------------------------------------------------------------------------------------

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn min_med_max(values: &[f64], digits: usize) -> String {
    if values.is_empty() {
        return "–".into();
    }
    let mut sorted = values.to_vec();
    let med = median(&mut sorted);
    format!(
        "{:.d$} / {:.d$} / {:.d$}",
        sorted[0],
        med,
        sorted[sorted.len() - 1],
        d = digits
    )
}

fn resource_report(samples: &[Sample], duration: Duration) -> String {
    let mut r = String::new();
    let roles = [Role::Source, Role::Destination, Role::Conduit];
    let of = |role: Role| -> Vec<(f64, &ProcSample)> {
        samples
            .iter()
            .flat_map(|s| {
                s.procs
                    .iter()
                    .filter(move |p| p.role == role)
                    .map(move |p| (s.at, p))
            })
            .collect()
    };
    let _ = writeln!(
        r,
        "\n## Resources (sampled every {} s, {} samples)\n",
        samples
            .windows(2)
            .map(|w| w[1].at - w[0].at)
            .next()
            .map(|d| format!("{d:.0}"))
            .unwrap_or_else(|| "?".into()),
        samples.len()
    );
    let _ = writeln!(
        r,
        "Per minute of the run, min / median / max. RSS in MiB (VmRSS), fds = open file descriptors.\n"
    );
    let _ = writeln!(
        r,
        "| minute | produced | written out | source RSS | source fds | destination RSS | destination fds | Conduit RSS | Conduit fds |"
    );
    let _ = writeln!(r, "|---:|---:|---:|---|---|---|---|---|---|");
    let minutes = samples.iter().map(|s| s.at as u64 / 60).max().unwrap_or(0);
    for minute in 0..=minutes {
        let in_minute: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.at as u64 / 60 == minute)
            .collect();
        let Some(last) = in_minute.last() else {
            continue;
        };
        let mut cells = vec![
            minute.to_string(),
            last.produced.to_string(),
            last.written.to_string(),
        ];
        for role in roles {
            let procs: Vec<&ProcSample> = in_minute
                .iter()
                .flat_map(|s| s.procs.iter().filter(|p| p.role == role))
                .collect();
            let rss: Vec<f64> = procs.iter().map(|p| p.rss_kib as f64 / 1024.0).collect();
            let fds: Vec<f64> = procs.iter().map(|p| p.fds as f64).collect();
            cells.push(min_med_max(&rss, 1));
            cells.push(min_med_max(&fds, 0));
        }
        let _ = writeln!(r, "| {} |", cells.join(" | "));
    }

    // Flatness: after a warm-up, first third against last third.
    let warmup = (duration.as_secs_f64() / 6.0).min(60.0);
    let _ = writeln!(
        r,
        "\nFlatness (samples after the first {warmup:.0} s; median of the last third against the first third; RSS within {:.0} %, fds within +{FD_TOLERANCE:.0}):\n",
        RSS_TOLERANCE * 100.0
    );
    let _ = writeln!(
        r,
        "| process | pids seen | threads (max) | RSS first → last third (MiB) | RSS verdict | fds first → last third | fds verdict |"
    );
    let _ = writeln!(r, "|---|---|---:|---|---|---|---|");
    for role in roles {
        let all = of(role);
        let mut pids: Vec<u32> = all.iter().map(|(_, p)| p.pid).collect();
        pids.dedup();
        let mut unique = pids.clone();
        unique.sort_unstable();
        unique.dedup();
        let threads = all.iter().map(|(_, p)| p.threads).max().unwrap_or(0);
        let after: Vec<&ProcSample> = all
            .iter()
            .filter(|(at, _)| *at >= warmup)
            .map(|(_, p)| *p)
            .collect();
        let third = after.len() / 3;
        let pid_text = if unique.len() == 1 {
            unique[0].to_string()
        } else {
            format!(
                "{} ({} processes: restarted)",
                unique
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                unique.len()
            )
        };
        if third == 0 {
            let _ = writeln!(
                r,
                "| {} | {pid_text} | {threads} | too few samples | – | – | – |",
                role.label()
            );
            continue;
        }
        let first = &after[..third];
        let last = &after[after.len() - third..];
        let med = |set: &[&ProcSample], f: &dyn Fn(&ProcSample) -> f64| {
            let mut v: Vec<f64> = set.iter().map(|p| f(p)).collect();
            median(&mut v)
        };
        let rss = |p: &ProcSample| p.rss_kib as f64 / 1024.0;
        let fds = |p: &ProcSample| p.fds as f64;
        let (rss_first, rss_last) = (med(first, &rss), med(last, &rss));
        let (fds_first, fds_last) = (med(first, &fds), med(last, &fds));
        let rss_change = rss_last / rss_first - 1.0;
        let rss_verdict = if rss_change <= RSS_TOLERANCE {
            format!("flat ({:+.0} %)", rss_change * 100.0)
        } else {
            format!("**GROWING** ({:+.0} %)", rss_change * 100.0)
        };
        let fds_verdict = if fds_last <= fds_first + FD_TOLERANCE {
            format!("flat ({:+.0})", fds_last - fds_first)
        } else {
            format!("**GROWING** ({:+.0})", fds_last - fds_first)
        };
        let _ = writeln!(
            r,
            "| {} | {pid_text} | {threads} | {rss_first:.1} → {rss_last:.1} | {rss_verdict} | {fds_first:.0} → {fds_last:.0} | {fds_verdict} |",
            role.label()
        );
    }
    r
}

/// Counts of Conduit's log lines by origin (Conduit itself, or a connector) and level, the
/// most frequent warnings and errors, and the source's subscription lines.
fn log_report(log: &[serde_json::Value]) -> String {
    let mut r = String::new();
    let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut levels: Vec<String> = Vec::new();
    let mut messages: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for entry in log {
        let level = entry["level"].as_str().unwrap_or("?").to_string();
        // Conduit tags the lines it reads from a plugin's stderr with this component.
        let origin = if entry["component"] == "plugin.standalone" {
            match entry["connector_id"].as_str() {
                Some(id) => format!("connector {id}"),
                None => "connector (no id)".to_string(),
            }
        } else {
            "Conduit".to_string()
        };
        if !levels.contains(&level) {
            levels.push(level.clone());
        }
        *counts
            .entry(origin.clone())
            .or_default()
            .entry(level.clone())
            .or_default() += 1;
        let message = entry["message"].as_str().unwrap_or("").to_string();
        *messages.entry((origin, level, message)).or_default() += 1;
    }
    let order = ["trace", "debug", "info", "warn", "error", "fatal", "panic"];
    levels.sort_by_key(|l| order.iter().position(|o| o == l).unwrap_or(order.len()));
    let _ = writeln!(
        r,
        "\n## Log lines during the run (Conduit's log, by origin and level)\n"
    );
    let _ = writeln!(r, "| origin | {} | total |", levels.join(" | "));
    let _ = writeln!(r, "|---|{}---:|", "---:|".repeat(levels.len()));
    for (origin, by_level) in &counts {
        let cells: Vec<String> = levels
            .iter()
            .map(|l| by_level.get(l).copied().unwrap_or(0).to_string())
            .collect();
        let total: u64 = by_level.values().sum();
        let _ = writeln!(r, "| {origin} | {} | {total} |", cells.join(" | "));
    }

    let subscription_lines = [
        "subscribed",
        "renewing subscription before its 5-minute end",
        "subscription idle; resubscribing",
        "subscription failed; resubscribing",
        "SubscribeToShard failed; retrying",
        "shard read to its end",
        "starting shard reader",
    ];
    let _ = writeln!(
        r,
        "\nSource shard readers (the source plugin's log messages; renewals and subscriptions are debug lines):\n"
    );
    let _ = writeln!(r, "| message | count |\n|---|---:|");
    for wanted in subscription_lines {
        let n: u64 = messages
            .iter()
            .filter(|((origin, _, m), _)| origin.starts_with("connector") && m == wanted)
            .map(|(_, n)| n)
            .sum();
        let _ = writeln!(r, "| {wanted} | {n} |");
    }

    let mut loud: Vec<(&(String, String, String), &u64)> = messages
        .iter()
        .filter(|((_, level, _), _)| matches!(level.as_str(), "warn" | "error" | "fatal" | "panic"))
        .collect();
    loud.sort_by(|a, b| b.1.cmp(a.1));
    if !loud.is_empty() {
        let _ = writeln!(r, "\nMost frequent warnings and errors:\n");
        let _ = writeln!(
            r,
            "| origin | level | message | count |\n|---|---|---|---:|"
        );
        for ((origin, level, message), n) in loud.into_iter().take(10) {
            let message: String = message.chars().take(140).collect();
            let _ = writeln!(
                r,
                "| {origin} | {level} | {} | {n} |",
                message.replace('|', "\\|")
            );
        }
    }
    r
}
