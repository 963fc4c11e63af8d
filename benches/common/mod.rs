//! Helpers the benchmarks share.

// Each benchmark includes this module and uses part of it.
#[allow(dead_code)]
pub mod endpoint;
#[allow(dead_code)]
pub mod procfs;

use std::process::{Command, Stdio};

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
