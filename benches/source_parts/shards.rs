//! Scenario 4, **shard count**: the plugin reading 1, 64 and 512 bench endpoint shards at once.
//!
//! Every record's position holds every shard's progress, so what a record costs grows with
//! the shard count unless positions stay small and cheap to build. Per shard count this
//! measures CPU per record, position bytes per record and peak RSS of the plugin, pinned to
//! one core (the bench process on the other) when it can. With `SOURCE_BENCH_BEFORE_PLUGIN`
//! naming another build of the plugin (e.g. one built from an older commit), that build is
//! measured in the same rounds, alternating with this one, and the table gives the ratios.
//!
//! Knobs: `SOURCE_BENCH_SHARD_COUNTS` (`1,64,512`), `SOURCE_BENCH_SHARD_RECORDS` (200000
//! measured per round), `SOURCE_BENCH_SHARD_ROUNDS` (3; median round by CPU per record),
//! `SOURCE_BENCH_SHARD_EVENT_RECORDS` (100 records per event), `SOURCE_BENCH_BEFORE_PLUGIN`.
//! The warm-up lasts until every shard has delivered two events (at least 20,000 records),
//! so that every position of the measurement holds all shards.

use super::*;

/// Records each bench endpoint shard can serve: more than any run reads.
const PER_SHARD: u64 = 10_000_000;

struct Build {
    label: String,
    binary: Option<std::path::PathBuf>,
}

struct Cell {
    shards: usize,
    build: usize,
    measured: Result<(Measured, f64), String>,
}

pub(super) fn shard_scale(runtime: &tokio::runtime::Runtime, report: &mut Report, tck: f64) {
    let counts: Vec<usize> = std::env::var("SOURCE_BENCH_SHARD_COUNTS")
        .unwrap_or_else(|_| "1,64,512".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .filter(|&c| (1..=MAX_SHARDS).contains(&c))
        .collect();
    let records = env_u64("SOURCE_BENCH_SHARD_RECORDS", 200_000).max(1);
    let rounds = env_u64("SOURCE_BENCH_SHARD_ROUNDS", 3).clamp(1, 9);
    let per_event = env_u64("SOURCE_BENCH_SHARD_EVENT_RECORDS", 100).clamp(1, 5_000) as usize;
    let mut builds = vec![Build {
        label: "this build".into(),
        binary: None,
    }];
    if let Ok(before) = std::env::var("SOURCE_BENCH_BEFORE_PLUGIN") {
        builds.push(Build {
            label: format!("before ({before})"),
            binary: Some(before.into()),
        });
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let all_cpus = format!("{:#x}", (1u64 << cores.min(63)) - 1);
    let pinned = cores >= 2
        && !env_flag("SOURCE_BENCH_NO_PIN")
        && pin(std::process::id(), &all_cpus).is_ok()
        && pin(std::process::id(), "0x2").is_ok();

    let mut cells = Vec::new();
    for &shards in &counts {
        let endpoint = match Endpoint::start(shards, PER_SHARD, per_event) {
            Ok(e) => e,
            Err(e) => {
                report.errors.push(format!("bench endpoint: {e}"));
                return;
            }
        };
        let warmup = (shards as u64 * per_event as u64 * 2).max(20_000);
        let mut results: Vec<Vec<(Measured, f64)>> = builds.iter().map(|_| Vec::new()).collect();
        let mut errors: Vec<Option<String>> = builds.iter().map(|_| None).collect();
        for round in 1..=rounds {
            for (b, build) in builds.iter().enumerate() {
                eprintln!(
                    "source bench: shards {shards}, round {round}/{rounds}, {}: {warmup} warm-up + {records} records",
                    build.label
                );
                match runtime.block_on(one_run(&endpoint, build, warmup, records, pinned, tck)) {
                    Ok(result) => results[b].push(result),
                    Err(e) => errors[b] = Some(e),
                }
            }
        }
        for (b, runs) in results.into_iter().enumerate() {
            let measured = match errors[b].take() {
                Some(e) => Err(e),
                None => median_run(runs).ok_or_else(|| "no run".to_string()),
            };
            if let Err(e) = &measured {
                report
                    .errors
                    .push(format!("shards {shards}, {}: {e}", builds[b].label));
            }
            cells.push(Cell {
                shards,
                build: b,
                measured,
            });
        }
        drop(endpoint);
    }

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| build | shards | records | records/s | CPU s per 100k | position bytes per record | peak RSS MiB | CPU per record vs 1 shard | CPU per record vs before |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let find = |shards: usize, build: usize| {
        cells
            .iter()
            .find(|c| c.shards == shards && c.build == build)
            .and_then(|c| c.measured.as_ref().ok())
    };
    for cell in &cells {
        let build = &builds[cell.build];
        let Ok((m, position_bytes)) = &cell.measured else {
            let _ = writeln!(
                table,
                "| {} | {} | failed | | | | | | |",
                build.label, cell.shards
            );
            continue;
        };
        let ratio = |other: Option<&(Measured, f64)>| match other {
            Some((o, _)) => format!("{:.2}×", m.cpu_per_100k() / o.cpu_per_100k().max(1e-9)),
            None => "–".into(),
        };
        let vs_one = ratio(find(1, cell.build));
        let vs_before = if cell.build == 0 && builds.len() > 1 {
            ratio(find(cell.shards, 1))
        } else {
            "–".into()
        };
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {:.3} | {} | {} | {vs_one} | {vs_before} |",
            build.label,
            cell.shards,
            thousands(m.records as f64),
            thousands(m.rate()),
            m.cpu_per_100k(),
            thousands(*position_bytes),
            m.rss_mib()
                .map(|r| format!("{r:.1}"))
                .unwrap_or_else(|| "?".into()),
        );
    }
    report.tables.push(format!(
        "shard count ({per_event} records per event, default sdk.batch.size, median of {rounds} rounds by CPU per record{}):\n{table}",
        if pinned { ", plugin pinned to 1 core" } else { ", not pinned" }
    ));
}

fn median_run(mut runs: Vec<(Measured, f64)>) -> Option<(Measured, f64)> {
    runs.sort_by(|a, b| a.0.cpu_per_100k().total_cmp(&b.0.cpu_per_100k()));
    let i = runs.len().saturating_sub(1) / 2;
    runs.into_iter().nth(i)
}

/// One plugin run; the measured window's CPU per record and the mean position size.
async fn one_run(
    endpoint: &Endpoint,
    build: &Build,
    warmup: u64,
    records: u64,
    pinned: bool,
    tck: f64,
) -> Result<(Measured, f64), String> {
    let mut all = connection_settings(&endpoint.url, STREAM);
    all.extend([("readMode", "fanout"), ("consumerName", "bench-shards")]);
    let plan = Plan {
        settings: settings(&all),
        warmup,
        records: Some(records),
        duration: None,
        read_pause: None,
        time_limit: Duration::from_secs(300),
        watch_pid: None,
        pin_mask: pinned.then_some("0x1"),
        binary: build.binary.clone(),
        // Ack requests carry a whole batch of positions (the preview architecture): with
        // version 1 positions at 512 shards that is over Conduit's default 4 MiB.
        extra_env: vec![(
            "CONDUIT_CONNECTOR_MAX_RECEIVE_RECORD_SIZE".into(),
            (256 * 1024 * 1024).to_string(),
        )],
        warmup_shards: 0,
    };
    let mut checker = Checker::Counter {
        next: HashMap::new(),
    };
    let mut problems = Problems::default();
    let driven = run_plugin(&plan, &mut checker, &mut problems, tck).await?;
    if problems.any() {
        // Every shard of the endpoint serves records 0, 1, 2, ...: none may be missing.
        return Err(problems.summary());
    }
    if !driven.complete {
        return Err(format!("only {} records", driven.received));
    }
    let position_bytes = driven.position_bytes as f64 / driven.measured.records.max(1) as f64;
    Ok((driven.measured, position_bytes))
}
