//! Helpers the benchmarks share.

// Each benchmark includes this module and uses part of it.
#[allow(dead_code)]
pub mod endpoint;
#[allow(dead_code)]
pub mod procfs;
pub mod server;

use std::io::{BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A whole-number setting from the environment, `default` when unset or not a number.
#[allow(dead_code)]
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Pins every thread of a process to the CPUs of `mask` (hex) with `taskset -a -p`.
#[allow(dead_code)]
pub fn pin(pid: u32, mask: &str) -> Result<(), String> {
    let status = Command::new("taskset")
        .args(["-a", "-p", mask, &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("taskset: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("taskset -a -p {mask} {pid} failed ({status})"))
    }
}

/// Waits at most `limit` for a baseline child (stdout piped) and returns the four numbers of
/// its `BASELINE_RESULT` line: records, seconds, CPU ticks, peak RSS in KiB.
#[allow(dead_code)]
pub fn baseline_result(mut child: Child, limit: Duration) -> Result<[f64; 4], String> {
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stdout).read_to_string(&mut text);
        let _ = tx.send(text);
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "the baseline child did not finish within {} s",
                limit.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
    if !status.success() {
        return Err(format!("the baseline child failed ({status})"));
    }
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("BASELINE_RESULT "))
        .ok_or_else(|| format!("no result line from the baseline child: {text:?}"))?;
    let numbers: Vec<f64> = line
        .split_whitespace()
        .map(|v| {
            v.parse::<f64>()
                .map_err(|_| format!("bad result line {line:?}"))
        })
        .collect::<Result<_, _>>()?;
    numbers
        .try_into()
        .map_err(|_| format!("bad result line {line:?}"))
}
