//! CPU and memory readings from /proc.

use std::path::Path;
use std::process::Command;

pub fn clock_ticks() -> (f64, String) {
    match Command::new("getconf").arg("CLK_TCK").output() {
        Ok(out) if out.status.success() => {
            match String::from_utf8_lossy(&out.stdout).trim().parse::<f64>() {
                Ok(v) if v > 0.0 => (v, format!("{v} (from `getconf CLK_TCK`)")),
                _ => (
                    100.0,
                    "100 (assumed: `getconf CLK_TCK` gave no number)".into(),
                ),
            }
        }
        _ => (
            100.0,
            "100 (assumed: `getconf CLK_TCK` not runnable)".into(),
        ),
    }
}

/// utime + stime in clock ticks from a `stat` file.
pub fn stat_ticks(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

pub fn proc_ticks(pid: u32) -> Option<u64> {
    stat_ticks(Path::new(&format!("/proc/{pid}/stat")))
}

/// VmHWM (peak resident set) in KiB.
pub fn vm_hwm_kib(pid_or_self: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid_or_self}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
