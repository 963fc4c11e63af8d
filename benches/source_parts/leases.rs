//! Scenario 5, **lease coordination**: the plugin reading N bench endpoint shards once with
//! `coordination=none` and once with `coordination=dynamodb` against dynalite on loopback,
//! alternating in the same rounds, the plugin pinned to one core like the shard-count
//! scenario.
//!
//! Rows: CPU per record each way and their ratio, position bytes per record, and the
//! DynamoDB calls per minute per shard by operation. The calls are counted by a small proxy
//! in this process between the plugin and dynalite, which reads each request's
//! `X-Amz-Target` header (and, for `UpdateItem`, which write it is: renewal, checkpoint,
//! take, hand-off or release, from its `UpdateExpression`) and forwards the bytes unchanged.
//! Only calls inside the measured window count, so the rate is the steady state of one
//! instance holding every shard (startup's CreateTable, first scans and takes, and
//! Teardown's releases are left out). The coordination settings are the defaults
//! (`leaseDuration=10s`, `checkpointInterval=1s`) unless the knobs below say otherwise.
//!
//! Knobs: `SOURCE_BENCH_LEASE_SHARDS` (`8,32`), `SOURCE_BENCH_LEASE_SECS` (20 measured
//! seconds per run), `SOURCE_BENCH_LEASE_ROUNDS` (2; median round by CPU per record),
//! `SOURCE_BENCH_LEASE_DURATION` and `SOURCE_BENCH_LEASE_CHECKPOINT_INTERVAL` (plugin
//! duration syntax, e.g. `10s`). The warm-up lasts until every shard delivered records:
//! with coordination one instance takes at most two free leases per table scan (every
//! fifth of the lease duration), so 32 shards take ~32 s at the default lease duration.

use super::*;

use std::collections::BTreeMap;
use std::sync::Mutex;

use support::dynamodb_local::DynamoLocal;

/// Records each bench endpoint shard can serve: more than any run reads.
const PER_SHARD: u64 = 50_000_000;
const PER_EVENT: usize = 100;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Coordination {
    None,
    DynamoDb,
}

impl Coordination {
    fn label(self) -> &'static str {
        match self {
            Coordination::None => "coordination=none",
            Coordination::DynamoDb => "coordination=dynamodb",
        }
    }
}

/// DynamoDB requests seen by the proxy: when, and which operation.
type CallLog = Arc<Mutex<Vec<(Instant, &'static str)>>>;

struct Run {
    measured: Measured,
    position_bytes: f64,
    /// Calls per operation inside the measured window.
    calls: BTreeMap<&'static str, u64>,
    /// Calls of the whole run (startup and Teardown included).
    all_calls: u64,
}

pub(super) fn lease_coordination(runtime: &tokio::runtime::Runtime, report: &mut Report, tck: f64) {
    let dynalite = support::repo_root().join("test/dynamodb-local/node_modules/dynalite/cli.js");
    if !dynalite.is_file() {
        println!("lease coordination scenario: skipped (test/dynamodb-local is missing: run `make setup`)");
        return;
    }
    let counts: Vec<usize> = std::env::var("SOURCE_BENCH_LEASE_SHARDS")
        .unwrap_or_else(|_| "8,32".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .filter(|&c| (1..=MAX_SHARDS).contains(&c))
        .collect();
    let secs = env_u64("SOURCE_BENCH_LEASE_SECS", 20).clamp(5, 600);
    let rounds = env_u64("SOURCE_BENCH_LEASE_ROUNDS", 2).clamp(1, 9);
    let lease_duration =
        std::env::var("SOURCE_BENCH_LEASE_DURATION").unwrap_or_else(|_| "10s".into());
    let checkpoint_interval =
        std::env::var("SOURCE_BENCH_LEASE_CHECKPOINT_INTERVAL").unwrap_or_else(|_| "1s".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let all_cpus = format!("{:#x}", (1u64 << cores.min(63)) - 1);
    let pinned = cores >= 2
        && !env_flag("SOURCE_BENCH_NO_PIN")
        && pin(std::process::id(), &all_cpus).is_ok()
        && pin(std::process::id(), "0x2").is_ok();

    // dynalite inherits this process's CPU mask (the core the plugin is not on).
    let dynamo = runtime.block_on(DynamoLocal::start());
    let calls = CallLog::default();
    let proxy = match counting_proxy(&dynamo.endpoint, calls.clone()) {
        Ok(p) => p,
        Err(e) => {
            report.errors.push(format!("DynamoDB counting proxy: {e}"));
            return;
        }
    };
    let proxy_url = format!("http://{}", proxy.addr);

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| shards | coordination | records | records/s | CPU s per 100k | vs none | position bytes per record | peak RSS MiB | DynamoDB calls in the whole run |"
    );
    let _ = writeln!(table, "|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut calls_table = String::new();
    let _ = writeln!(
        calls_table,
        "| shards | operation | calls in window | calls per minute | per minute per shard |"
    );
    let _ = writeln!(calls_table, "|---:|---|---:|---:|---:|");

    let mut run_number = 0;
    for &shards in &counts {
        let endpoint = match Endpoint::start(shards, PER_SHARD, PER_EVENT) {
            Ok(e) => e,
            Err(e) => {
                report.errors.push(format!("bench endpoint: {e}"));
                return;
            }
        };
        let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
        for round in 1..=rounds {
            for (i, mode) in [Coordination::None, Coordination::DynamoDb]
                .into_iter()
                .enumerate()
            {
                run_number += 1;
                eprintln!(
                    "source bench: leases, {shards} shards, round {round}/{rounds}, {}: {secs} s measured",
                    mode.label()
                );
                let lease = LeaseSettings {
                    url: &proxy_url,
                    table: format!("bench-leases-{run_number}"),
                    lease_duration: &lease_duration,
                    checkpoint_interval: &checkpoint_interval,
                };
                let result = runtime.block_on(one_run(
                    &endpoint,
                    shards,
                    mode,
                    &lease,
                    Duration::from_secs(secs),
                    pinned,
                    tck,
                    &calls,
                ));
                match result {
                    Ok(run) => runs[i].push(run),
                    Err(e) => report
                        .errors
                        .push(format!("leases, {shards} shards, {}: {e}", mode.label())),
                }
            }
        }
        let [none, dynamo_runs] = runs.map(median_run);
        for (mode, run) in [
            (Coordination::None, &none),
            (Coordination::DynamoDb, &dynamo_runs),
        ] {
            let Some(run) = run else {
                let _ = writeln!(
                    table,
                    "| {shards} | {} | failed | | | | | | |",
                    mode.label()
                );
                continue;
            };
            let m = &run.measured;
            let vs = match (&none, mode) {
                (Some(n), Coordination::DynamoDb) => format!(
                    "{:.2}×",
                    m.cpu_per_100k() / n.measured.cpu_per_100k().max(1e-9)
                ),
                _ => "1.00×".into(),
            };
            let _ = writeln!(
                table,
                "| {shards} | {} | {} | {} | {:.3} | {vs} | {:.1} | {} | {} |",
                mode.label(),
                thousands(m.records as f64),
                thousands(m.rate()),
                m.cpu_per_100k(),
                run.position_bytes,
                m.rss_mib()
                    .map(|r| format!("{r:.1}"))
                    .unwrap_or_else(|| "?".into()),
                run.all_calls,
            );
        }
        if let Some(run) = &dynamo_runs {
            let minutes = run.measured.secs / 60.0;
            let total: u64 = run.calls.values().sum();
            for (operation, n) in run.calls.iter().chain([(&"all", &total)]) {
                let _ = writeln!(
                    calls_table,
                    "| {shards} | {operation} | {n} | {:.1} | {:.2} |",
                    *n as f64 / minutes,
                    *n as f64 / minutes / shards as f64
                );
            }
        }
        drop(endpoint);
    }
    drop(proxy);
    drop(dynamo);
    report.tables.push(format!(
        "lease coordination ({PER_EVENT} records per event, {secs} s measured per run, median of {rounds} rounds by CPU per record, \
         leaseDuration={lease_duration}, checkpointInterval={checkpoint_interval}, one instance holding every shard{}):\n{table}\n\
         DynamoDB calls of coordination=dynamodb in the measured window (the median round), counted by a proxy in front of dynalite:\n{calls_table}",
        if pinned { ", plugin pinned to 1 core" } else { ", not pinned" }
    ));
}

struct LeaseSettings<'a> {
    url: &'a str,
    table: String,
    lease_duration: &'a str,
    checkpoint_interval: &'a str,
}

fn median_run(mut runs: Vec<Run>) -> Option<Run> {
    runs.sort_by(|a, b| {
        a.measured
            .cpu_per_100k()
            .total_cmp(&b.measured.cpu_per_100k())
    });
    let i = runs.len().saturating_sub(1) / 2;
    runs.into_iter().nth(i)
}

#[allow(clippy::too_many_arguments)]
async fn one_run(
    endpoint: &Endpoint,
    shards: usize,
    mode: Coordination,
    lease: &LeaseSettings<'_>,
    measure: Duration,
    pinned: bool,
    tck: f64,
    calls: &CallLog,
) -> Result<Run, String> {
    let mut all = connection_settings(&endpoint.url, STREAM);
    all.extend([("readMode", "fanout"), ("consumerName", "bench-leases")]);
    if mode == Coordination::DynamoDb {
        all.extend([
            ("coordination", "dynamodb"),
            ("coordination.url", lease.url),
            ("coordination.table", lease.table.as_str()),
            ("coordination.workerId", "bench"),
            ("coordination.leaseDuration", lease.lease_duration),
            ("coordination.checkpointInterval", lease.checkpoint_interval),
        ]);
    }
    let plan = Plan {
        settings: settings(&all),
        warmup: 20_000,
        records: None,
        duration: Some(measure),
        read_pause: None,
        time_limit: Duration::from_secs(600),
        watch_pid: None,
        pin_mask: pinned.then_some("0x1"),
        binary: None,
        extra_env: vec![(
            "CONDUIT_CONNECTOR_MAX_RECEIVE_RECORD_SIZE".into(),
            (256 * 1024 * 1024).to_string(),
        )],
        warmup_shards: shards,
    };
    let mut checker = Checker::Counter {
        next: HashMap::new(),
    };
    let mut problems = Problems::default();
    let calls_before = calls.lock().unwrap().len();
    let driven = run_plugin(&plan, &mut checker, &mut problems, tck).await?;
    if problems.any() {
        return Err(problems.summary());
    }
    let (from, to) = driven.window;
    let log = calls.lock().unwrap();
    let mut in_window: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (at, operation) in &log[calls_before..] {
        if *at >= from && *at < to {
            *in_window.entry(operation).or_default() += 1;
        }
    }
    Ok(Run {
        position_bytes: driven.position_bytes as f64 / driven.measured.records.max(1) as f64,
        measured: driven.measured,
        calls: in_window,
        all_calls: (log.len() - calls_before) as u64,
    })
}

/// A TCP proxy to `upstream` that logs every DynamoDB request it forwards.
fn counting_proxy(upstream: &str, calls: CallLog) -> Result<LoopbackServer, String> {
    let upstream = upstream
        .strip_prefix("http://")
        .ok_or("dynalite's endpoint is not http://")?
        .to_string();
    LoopbackServer::start(move |client, _| {
        let upstream = upstream.clone();
        let calls = calls.clone();
        async move {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let _ = server.set_nodelay(true);
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            let answers = tokio::spawn(async move {
                let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
            });
            let _ = forward_requests(&mut client_read, &mut server_write, &calls).await;
            answers.abort();
        }
    })
}

/// Copies HTTP/1.1 requests (each with a `Content-Length` body) from `from` to `to`,
/// logging each one's operation.
async fn forward_requests(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    calls: &CallLog,
) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        // One whole request in `buf`, then forward it.
        let (head_end, body_len) = loop {
            if let Some(end) = find_head_end(&buf).map(|at| at + 4) {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                break (
                    end,
                    header(&head, "content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                );
            }
            let n = from.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let total = head_end + body_len;
        while buf.len() < total {
            let n = from.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let operation = classify(
            header(&head, "x-amz-target").unwrap_or(""),
            &buf[head_end..total],
        );
        calls.lock().unwrap().push((Instant::now(), operation));
        to.write_all(&buf[..total]).await?;
        buf.drain(..total);
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// The operation of a DynamoDB request; `UpdateItem` by which lease write it is.
fn classify(target: &str, body: &[u8]) -> &'static str {
    let operation = target.rsplit('.').next().unwrap_or("");
    if operation != "UpdateItem" {
        return match operation {
            "Scan" => "Scan",
            "PutItem" => "PutItem (new lease)",
            "DescribeTable" => "DescribeTable",
            "CreateTable" => "CreateTable",
            _ => "other",
        };
    }
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let update = request["UpdateExpression"].as_str().unwrap_or("");
    let condition = request["ConditionExpression"].as_str().unwrap_or("");
    if condition.contains("checkpointOwner") {
        "UpdateItem (hand-off)"
    } else if update.contains("REMOVE leaseOwner") {
        "UpdateItem (release)"
    } else if update.contains("SET leaseOwner") {
        "UpdateItem (take)"
    } else if update.contains("checkpoint = ") {
        "UpdateItem (checkpoint)"
    } else if update.trim() == "SET leaseCounter = :next" {
        "UpdateItem (renew)"
    } else {
        "UpdateItem (other)"
    }
}
