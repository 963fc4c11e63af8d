//! Conduit pipeline benchmark: the same pipeline, `builtin:generator` → a Kinesis destination,
//! run by the real Conduit binary once with this connector and once with the Go connector
//! (`conduitio-labs/conduit-connector-kinesis` v0.2.0), both writing to the bench endpoint
//! (see `common/endpoint.rs`).
//!
//! Run with `make bench` (`cargo bench --bench conduit`). It needs `.tools/bin/conduit`
//! (installed by `test/setup.sh` where the Go module proxy serves Conduit v0.19.0) and, for
//! the comparison, the Go connector's binary at `.tools/bin/conduit-connector-kinesis-go`
//! (also installed by setup where it is served) or at `$BENCH_GO_CONNECTOR`. What is missing
//! is reported and skipped.
//!
//! Measured for each destination plugin process, between the moment the endpoint has
//! counted the warm-up records and the moment it has counted all of them: CPU seconds per
//! 100k records (utime+stime of the plugin process from /proc), records/s, and the plugin's
//! peak RSS. Conduit itself (generator, pipeline) is measured apart: it is the same for both.
//!
//! Environment knobs: `BENCH_CONDUIT_RECORDS` (default 50000), `BENCH_CONDUIT_WARMUP`
//! (5000), `BENCH_PAYLOAD` (bytes per record, default 1024), `BENCH_GO_CONNECTOR`.

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use common::endpoint::{Endpoint, REGION, STREAM};
use common::env_u64;
use common::procfs::{clock_ticks, proc_ticks, vm_hwm_kib};

const PLUGIN_BINARY: &str = env!("CARGO_BIN_EXE_conduit-connector-kinesis");
/// The target of the issue: this connector's CPU per record at most 0.3× the Go connector's.
const TARGET_CPU_RATIO: f64 = 0.3;
/// Longest wait for the pipeline to write every record.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

fn main() -> ExitCode {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A destination plugin under test.
struct Contender {
    label: &'static str,
    binary: PathBuf,
    /// The plugin reference in the pipeline file.
    plugin: String,
}

struct Measured {
    records: u64,
    secs: f64,
    plugin_cpu_secs: f64,
    conduit_cpu_secs: f64,
    plugin_hwm_kib: Option<u64>,
}

impl Measured {
    fn plugin_cpu_per_100k(&self) -> f64 {
        self.plugin_cpu_secs / self.records as f64 * 100_000.0
    }
}

fn pipeline_yaml(plugin: &str, endpoint: &str, payload: &Path, count: u64) -> String {
    // The same settings for both, each connector's defaults otherwise. (The Go connector
    // v0.2.0 refuses `sdk.batch.size` / `sdk.batch.delay` as unrecognized parameters, so it
    // writes what Conduit hands it, one record at a time.)
    let destination_settings = [
        ("streamName", STREAM.to_string()),
        ("aws.url", endpoint.to_string()),
        ("aws.region", REGION.to_string()),
        ("aws.accessKeyId", "bench".to_string()),
        ("aws.secretAccessKey", "bench".to_string()),
    ];
    let settings: String = destination_settings
        .iter()
        .map(|(k, v)| format!("          {k}: \"{v}\"\n"))
        .collect();
    format!(
        r#"version: "2.2"
pipelines:
  - id: bench
    status: running
    connectors:
      - id: gen
        type: source
        plugin: builtin:generator
        settings:
          format.type: file
          format.options.path: "{payload}"
          operations: create
          recordCount: "{count}"
          rate: "0"
      - id: kinesis
        type: destination
        plugin: "{plugin}"
        settings:
{settings}"#,
        payload = payload.display(),
    )
}

/// Conduit running one pipeline from a directory of its own; stopped when dropped.
struct Conduit {
    child: Child,
    dir: tempfile::TempDir,
}

impl Conduit {
    fn start(conduit: &Path, contender: &Contender, pipeline: &str) -> Result<Conduit, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let connectors = dir.path().join("connectors");
        let pipelines = dir.path().join("pipelines");
        std::fs::create_dir_all(&connectors).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&pipelines).map_err(|e| e.to_string())?;
        std::fs::copy(&contender.binary, connectors.join("destination-plugin"))
            .map_err(|e| format!("copy {}: {e}", contender.binary.display()))?;
        std::fs::write(pipelines.join("bench.yaml"), pipeline).map_err(|e| e.to_string())?;
        let free_port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .map_err(|e| e.to_string())
        };
        let (http, grpc) = (free_port()?, free_port()?);
        let log =
            std::fs::File::create(dir.path().join("conduit.log")).map_err(|e| e.to_string())?;
        let child = Command::new(conduit)
            .current_dir(dir.path())
            .args(["run", "--connectors.path"])
            .arg(&connectors)
            .arg("--pipelines.path")
            .arg(&pipelines)
            .args([
                "--db.type",
                "inmemory",
                "--log.format",
                "json",
                "--log.level",
                "warn",
            ])
            .arg("--api.http.address")
            .arg(format!("127.0.0.1:{http}"))
            .arg("--api.grpc.address")
            .arg(format!("127.0.0.1:{grpc}"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // The Go connector v0.2.0 fails at Configure when AWS_CA_BUNDLE is set ("unable to
            // add custom RootCAs HTTPClient"): its own HTTP client does not take the bundle.
            // The bench endpoint is plain HTTP, so neither connector needs it.
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start {}: {e}", conduit.display()))?;
        Ok(Conduit { child, dir })
    }

    /// The running destination plugin: Conduit's child process started from the copy.
    fn plugin_pid(&self) -> Option<u32> {
        let binary = self.dir.path().join("connectors/destination-plugin");
        let conduit = self.child.id();
        std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .find_map(|entry| {
                let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                let parent: u32 = stat[stat.rfind(')')? + 1..]
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()?;
                let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
                (parent == conduit && exe == binary).then_some(pid)
            })
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("conduit.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Conduit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the pipeline until the endpoint has counted `warmup + records` more entries.
fn measure(
    conduit_binary: &Path,
    contender: &Contender,
    endpoint: &Endpoint,
    payload: &Path,
    warmup: u64,
    records: u64,
    tck: f64,
) -> Result<Measured, String> {
    let start_entries = endpoint.entries();
    let pipeline = pipeline_yaml(&contender.plugin, &endpoint.url, payload, warmup + records);
    let conduit = Conduit::start(conduit_binary, contender, &pipeline)?;
    let started = Instant::now();
    let mut mark: Option<(Instant, u64, u64, u32)> = None;
    loop {
        if started.elapsed() > RUN_TIMEOUT {
            return Err(format!(
                "{}: {} of {} records written within {RUN_TIMEOUT:?}; Conduit log:\n{}",
                contender.label,
                endpoint.entries() - start_entries,
                warmup + records,
                conduit.log_tail()
            ));
        }
        let written = endpoint.entries() - start_entries;
        match mark {
            None if written >= warmup => {
                let pid = conduit
                    .plugin_pid()
                    .ok_or("the destination plugin process was not found")?;
                let plugin = proc_ticks(pid).ok_or("cannot read the plugin's /proc stat")?;
                let own = proc_ticks(conduit.child.id()).ok_or("cannot read Conduit's stat")?;
                mark = Some((Instant::now(), plugin, own, pid));
            }
            Some((at, plugin_before, conduit_before, pid)) if written >= warmup + records => {
                let secs = at.elapsed().as_secs_f64();
                let plugin = proc_ticks(pid).ok_or("the plugin process ended early")?;
                let own = proc_ticks(conduit.child.id()).ok_or("Conduit ended early")?;
                return Ok(Measured {
                    records,
                    secs,
                    plugin_cpu_secs: (plugin - plugin_before) as f64 / tck,
                    conduit_cpu_secs: (own - conduit_before) as f64 / tck,
                    plugin_hwm_kib: vm_hwm_kib(&pid.to_string()),
                });
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn go_connector() -> Result<PathBuf, String> {
    let path = std::env::var_os("BENCH_GO_CONNECTOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools/bin/conduit-connector-kinesis-go"));
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing (test/setup.sh could not install conduitio-labs/conduit-connector-kinesis \
             v0.2.0 from the Go module proxy; BENCH_GO_CONNECTOR may name a binary)",
            path.display()
        ))
    }
}

fn run() -> Result<(), String> {
    let records = env_u64("BENCH_CONDUIT_RECORDS", 50_000).max(1);
    let warmup = env_u64("BENCH_CONDUIT_WARMUP", 5_000);
    let payload_size = env_u64("BENCH_PAYLOAD", 1024) as usize;
    let (tck, _) = clock_ticks();
    let conduit = repo_root().join(".tools/bin/conduit");
    println!("conduit pipeline benchmark: builtin:generator → destination → bench endpoint");
    if !conduit.exists() {
        println!(
            "skipped: {} is missing (test/setup.sh could not install Conduit v0.19.0 here)",
            conduit.display()
        );
        return Ok(());
    }
    println!(
        "records: {warmup} warm-up + {records} measured, {payload_size}-byte raw payloads \
         (generator format.type=file); the same destination settings for both (stream, endpoint, \
         region, static keys), each connector's defaults otherwise"
    );
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let payload = dir.path().join("payload.bin");
    let bytes: Vec<u8> = (0..payload_size).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(&payload, bytes).map_err(|e| e.to_string())?;
    let endpoint = Endpoint::start()?;

    let mut contenders = vec![Contender {
        label: "this connector (Rust)",
        binary: PathBuf::from(PLUGIN_BINARY),
        plugin: format!("standalone:kinesis@v{}", env!("CARGO_PKG_VERSION")),
    }];
    match go_connector() {
        Ok(binary) => contenders.push(Contender {
            label: "Go connector v0.2.0",
            binary,
            plugin: "standalone:kinesis@v0.2.0".into(),
        }),
        Err(why) => println!("Go connector: skipped: {why}"),
    }

    let mut results = Vec::new();
    for contender in &contenders {
        eprintln!("bench: {}", contender.label);
        let result = measure(
            &conduit, contender, &endpoint, &payload, warmup, records, tck,
        );
        results.push((contender.label, result));
    }

    println!();
    println!("| destination | records | records/s | plugin CPU s per 100k | Conduit CPU s per 100k | plugin peak RSS MiB | vs Go connector |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    let go = results
        .iter()
        .find(|(label, _)| label.starts_with("Go"))
        .and_then(|(_, r)| r.as_ref().ok())
        .map(Measured::plugin_cpu_per_100k);
    let mut failures = Vec::new();
    for (label, result) in &results {
        match result {
            Err(e) => {
                println!("| {label} | failed | | | | | |");
                failures.push(e.clone());
            }
            Ok(m) => {
                let vs = match go {
                    Some(go) if !label.starts_with("Go") => {
                        format!("{:.2}× CPU per record", m.plugin_cpu_per_100k() / go)
                    }
                    Some(_) => "1.00×".into(),
                    None => "n/a".into(),
                };
                println!(
                    "| {label} | {} | {:.0} | {:.3} | {:.3} | {} | {vs} |",
                    m.records,
                    m.records as f64 / m.secs,
                    m.plugin_cpu_per_100k(),
                    m.conduit_cpu_secs / m.records as f64 * 100_000.0,
                    m.plugin_hwm_kib
                        .map(|k| format!("{:.1}", k as f64 / 1024.0))
                        .unwrap_or_else(|| "?".into()),
                );
            }
        }
    }
    if let (Some(go), Some(Ok(ours))) = (go, results.first().map(|(_, r)| r)) {
        let ratio = ours.plugin_cpu_per_100k() / go;
        println!();
        println!(
            "target (issue): plugin CPU per record ≤ {TARGET_CPU_RATIO}× the Go connector's: {ratio:.2}× → {}",
            if ratio <= TARGET_CPU_RATIO { "MET" } else { "NOT MET" }
        );
    }
    let stats = &endpoint.stats;
    println!(
        "endpoint: {} PutRecords calls, {} entries",
        stats.put_calls.load(std::sync::atomic::Ordering::Relaxed),
        endpoint.entries()
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}
