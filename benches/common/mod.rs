//! Helpers the benchmarks share.

// Each benchmark includes this module and uses part of it.
#[allow(dead_code)]
pub mod endpoint;
#[allow(dead_code)]
pub mod procfs;
pub mod server;

use std::process::{Command, Stdio};

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
