//! Helpers shared by the integration tests (`mod support;` from a file in `tests/`).
//!
//! * [`kinesis_local`]: a throw-away kinesis-local server (kinesis-mock) on loopback.
//! * [`goplugin_host`]: runs the plugin binary through `.tools/bin/goplugin-host`, which
//!   launches it with hashicorp/go-plugin exactly like Conduit v0.19.0 does.
//! * [`conduit`]: the real Conduit binary in a temporary home (`.tools/bin/conduit`).
//! * [`capture_server`]: a loopback HTTP/1.1 server that records requests and answers canned
//!   responses (fake AWS endpoints).
//! * [`wire`]: AWS CBOR bodies seen as AWS JSON (for fakes and the fault proxy).
//!
//! The first two need `test/setup.sh` (or `make test`) to have run first.
#![allow(dead_code)]

pub mod capture_server;
pub mod conduit;
pub mod destination;
pub mod dynamodb_local;
pub mod fault_proxy;
pub mod goplugin_host;
pub mod kinesis_local;
pub mod outage_proxy;
pub mod plugin;
pub mod sigv4;
pub mod source;
pub mod wire;

use std::net::TcpListener;
use std::path::PathBuf;

/// Root of the repository (the crate's manifest directory).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The connector plugin binary cargo built for this test run.
pub fn plugin_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_conduit-connector-kinesis"))
}

/// A currently free TCP port on 127.0.0.1 (bound, then released; racy by nature).
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct free TCP ports on 127.0.0.1: all are bound at the same time, then released.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    let mut ports = [0u16; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr().expect("local_addr").port();
    }
    ports
}

/// Whether process `pid` has exited (gone, or a zombie nobody has reaped yet).
pub fn process_exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S ...": the state follows the last ')' (comm may contain spaces).
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(false),
    }
}

/// Waits up to `limit` for process `pid` to exit; returns how long it took, or `None`.
pub fn wait_for_exit(pid: u32, limit: std::time::Duration) -> Option<std::time::Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if process_exited(pid) {
            return Some(start.elapsed());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    None
}

/// SIGKILLs process `pid` if it still runs (cleanup after a failed test).
pub fn kill_process(pid: u32) {
    if pid > 0 && !process_exited(pid) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}
