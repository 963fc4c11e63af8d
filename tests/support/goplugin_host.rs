//! Runs the plugin through `.tools/bin/goplugin-host` (test/goplugin-host), which starts it
//! with hashicorp/go-plugin v1.8.0 configured like Conduit v0.19.0's connector-protocol
//! client (magic cookie, VersionedPlugins {1,2}, gRPC only, `cmd.Env` = the given vars, then
//! the host environment, then go-plugin's own), dispenses one plugin, performs unary calls
//! with raw protobuf bytes and kills the client (GRPCController/Shutdown, ≤2 s wait, SIGKILL).
//!
//! Requests/responses are protobuf-encoded by the test (e.g. with the crate's prost types).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// Environment Conduit v0.19.0 gives a plugin during its startup scan of the connectors
/// directory (`registry.go loadSpecifications`): no LOG_LEVEL, no MAX_RECEIVE_RECORD_SIZE.
/// The utilities target is normally Conduit's own listener (`[::]:PORT`); this one is a
/// closed loopback port.
pub const STARTUP_SCAN_ENV: &[(&str, &str)] = &[
    ("CONDUIT_CONNECTOR_UTILITIES_GRPC_TARGET", "127.0.0.1:1"),
    ("CONDUIT_CONNECTOR_TOKEN", "irrelevant-token"),
    ("CONDUIT_CONNECTOR_ID", "load-specifications"),
];

/// Environment Conduit v0.19.0 gives a plugin that runs a connector (`registry.go NewDispenser`).
pub const RUN_ENV: &[(&str, &str)] = &[
    ("CONDUIT_CONNECTOR_UTILITIES_GRPC_TARGET", "127.0.0.1:1"),
    (
        "CONDUIT_CONNECTOR_TOKEN",
        r#"{"value":"00000000-0000-0000-0000-000000000000","connector_id":"pipeline:connector"}"#,
    ),
    ("CONDUIT_CONNECTOR_ID", "pipeline:connector"),
    ("CONDUIT_CONNECTOR_LOG_LEVEL", "trace"),
    ("CONDUIT_CONNECTOR_MAX_RECEIVE_RECORD_SIZE", "4194304"),
];

pub const SPECIFY: &str = "/connector.v2.SpecifierPlugin/Specify";

#[derive(Debug, Clone)]
pub struct HostCall {
    pub method: String,
    /// Raw protobuf response (empty when `code != "OK"`).
    pub response: Vec<u8>,
    /// gRPC status message, empty on success.
    pub error: String,
    /// gRPC code name as grpc-go prints it: "OK", "Unimplemented", "InvalidArgument", ...
    pub code: String,
    pub ms: f64,
}

impl HostCall {
    pub fn is_ok(&self) -> bool {
        self.code == "OK"
    }
}

#[derive(Debug, Clone)]
pub struct HostRun {
    /// App protocol version go-plugin negotiated (0 if the handshake failed).
    pub negotiated_version: i64,
    /// "grpc" on success.
    pub protocol: String,
    pub plugin_pid: u32,
    pub calls: Vec<HostCall>,
    /// client.Start(): process spawn until the handshake line was parsed.
    pub start_ms: f64,
    /// client.Client(): gRPC dial + stdio/broker setup.
    pub connect_ms: f64,
    /// client.Kill(): Shutdown RPC, wait for exit (≤2 s), SIGKILL if needed.
    pub kill_ms: f64,
    /// go-plugin saw the process exit.
    pub exited: bool,
    /// go-plugin logged "plugin failed to exit gracefully" (it then SIGKILLed the plugin).
    pub force_killed: bool,
    /// Start/connect/dispense error (empty if none).
    pub error: String,
    /// Every line go-plugin's hclog logger (JSON, trace level) produced; plugin stderr lines
    /// appear with "@module" = the plugin's file name.
    pub host_log: Vec<Value>,
    /// The plugin's raw stderr as go-plugin read it.
    pub plugin_stderr: String,
    /// Data received over plugin.GRPCStdio (Conduit sends it to its logger).
    pub stdio_stdout: String,
    pub stdio_stderr: String,
    /// Exit code of goplugin-host itself (non-zero when start/handshake/dispense failed).
    pub host_exit_code: Option<i32>,
    /// goplugin-host's own stderr.
    pub host_stderr: String,
    /// hclog module name under which go-plugin logs the plugin's stderr (file name).
    pub plugin_module: String,
}

impl HostRun {
    /// Host log entries that came from the plugin's stderr (logger named after the binary).
    pub fn plugin_log(&self) -> Vec<&Value> {
        let module = self.plugin_module.as_str();
        self.host_log
            .iter()
            .filter(|e| e.get("@module").and_then(Value::as_str) == Some(module))
            .collect()
    }

    /// Host log entries with the given "@message".
    pub fn host_log_messages(&self, message: &str) -> Vec<&Value> {
        self.host_log
            .iter()
            .filter(|e| e.get("@message").and_then(Value::as_str) == Some(message))
            .collect()
    }

    /// Panics with the whole run when the start failed or any call did not return OK.
    pub fn assert_ok(&self) -> &Self {
        let bad_call = self.calls.iter().find(|c| !c.is_ok());
        if !self.error.is_empty() || bad_call.is_some() {
            panic!("goplugin-host run failed: {self:#?}");
        }
        self
    }
}

#[derive(Debug, Clone)]
pub struct HostOptions<'a> {
    pub plugin: &'a Path,
    pub env: &'a [(&'a str, &'a str)],
    /// "specifier" (default), "source" or "destination".
    pub dispense: &'a str,
    pub calls: &'a [(&'a str, Vec<u8>)],
    /// Only start, dispense and kill (no script read).
    pub no_script: bool,
    /// Deadline of each call (None = goplugin-host default 30 s; Some(0) = none, like Conduit).
    pub call_timeout_ms: Option<u64>,
    /// go-plugin StartTimeout (None = 1 minute, like Conduit).
    pub start_timeout_ms: Option<u64>,
}

impl<'a> HostOptions<'a> {
    pub fn new(plugin: &'a Path) -> Self {
        HostOptions {
            plugin,
            env: &[],
            dispense: "specifier",
            calls: &[],
            no_script: false,
            call_timeout_ms: None,
            start_timeout_ms: None,
        }
    }
}

/// `.tools/bin/goplugin-host`; panics if `test/setup.sh` has not built it.
pub fn host_binary() -> PathBuf {
    let bin = super::repo_root().join(".tools/bin/goplugin-host");
    if !bin.is_file() {
        panic!(
            "{} is missing: run test/setup.sh (or make test) first",
            bin.display()
        );
    }
    bin
}

/// Starts `plugin` like Conduit does with `env` as its `CONDUIT_CONNECTOR_*` variables,
/// dispenses `dispense`, performs `calls` (method path, protobuf request) and kills it.
/// Does not panic when the plugin fails to start: check `HostRun::error`.
pub fn run_host(
    plugin: &Path,
    env: &[(&str, &str)],
    dispense: &str,
    calls: &[(&str, Vec<u8>)],
) -> HostRun {
    run_host_with(&HostOptions {
        env,
        dispense,
        calls,
        ..HostOptions::new(plugin)
    })
}

/// `run_host` on a blocking thread, for async tests that also serve something in-process.
pub async fn run_host_async(
    plugin: PathBuf,
    env: Vec<(String, String)>,
    dispense: String,
    calls: Vec<(String, Vec<u8>)>,
) -> HostRun {
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let calls: Vec<(&str, Vec<u8>)> =
            calls.iter().map(|(m, b)| (m.as_str(), b.clone())).collect();
        run_host(&plugin, &env, &dispense, &calls)
    })
    .await
    .expect("goplugin-host thread panicked")
}

pub fn run_host_with(opts: &HostOptions<'_>) -> HostRun {
    let host = host_binary();
    let mut cmd = Command::new(&host);
    cmd.arg("-plugin")
        .arg(opts.plugin)
        .arg("-dispense")
        .arg(opts.dispense);
    for (k, v) in opts.env {
        cmd.arg("-env").arg(format!("{k}={v}"));
    }
    if opts.no_script {
        cmd.arg("-no-script");
    }
    if let Some(ms) = opts.call_timeout_ms {
        cmd.arg("-call-timeout").arg(format!("{ms}ms"));
    }
    if let Some(ms) = opts.start_timeout_ms {
        cmd.arg("-start-timeout").arg(format!("{ms}ms"));
    }
    // The plugin inherits the host's environment (go-plugin appends os.Environ()).
    cmd.env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let script = serde_json::json!({
        "calls": opts.calls.iter().map(|(method, req)| serde_json::json!({
            "method": method,
            "request_b64": b64_encode(req),
        })).collect::<Vec<_>>(),
    });

    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", host.display()));
    {
        let mut stdin = child.stdin.take().expect("stdin");
        if !opts.no_script {
            stdin
                .write_all(&serde_json::to_vec(&script).unwrap())
                .expect("write script to goplugin-host");
        }
        // dropping stdin closes it
    }
    let out = child.wait_with_output().expect("wait for goplugin-host");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let host_stderr = String::from_utf8_lossy(&out.stderr).into_owned();

    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "goplugin-host printed no JSON result ({e}); exit {:?}\nstdout:\n{stdout}\nstderr:\n{host_stderr}",
            out.status.code()
        )
    });

    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let f = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or_default();
    let calls = v
        .get("calls")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|c| {
                    let cs = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
                    HostCall {
                        method: cs("method").to_string(),
                        response: b64_decode(cs("response_b64"))
                            .expect("goplugin-host response_b64 is valid base64"),
                        error: cs("error").to_string(),
                        code: cs("code").to_string(),
                        ms: c.get("ms").and_then(Value::as_f64).unwrap_or_default(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();

    let plugin_module = opts
        .plugin
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();

    HostRun {
        negotiated_version: v
            .get("negotiated_version")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        protocol: s("protocol"),
        plugin_pid: v.get("plugin_pid").and_then(Value::as_u64).unwrap_or(0) as u32,
        calls,
        start_ms: f("start_ms"),
        connect_ms: f("connect_ms"),
        kill_ms: f("kill_ms"),
        exited: v.get("exited").and_then(Value::as_bool).unwrap_or(false),
        force_killed: v
            .get("force_killed")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        error: s("error"),
        host_log: v
            .get("host_log")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        plugin_stderr: s("plugin_stderr"),
        stdio_stdout: s("stdio_stdout"),
        stdio_stderr: s("stdio_stderr"),
        host_exit_code: out.status.code(),
        host_stderr,
        plugin_module,
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (Go's `base64.StdEncoding`).
pub fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(B64[(n >> 18) as usize & 63] as char);
        out.push(B64[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            B64[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            B64[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// Decodes standard base64 (padding optional, no whitespace).
pub fn b64_decode(s: &str) -> Result<Vec<u8>, String> {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let bytes = s.trim_end_matches('=').as_bytes();
    if bytes.len() % 4 == 1 {
        return Err(format!("bad base64 length {}", s.len()));
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = val(c).ok_or_else(|| format!("bad base64 byte {c:#04x}"))?;
            n |= v << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    Ok(out)
}

/// A goplugin-host started with `-hold`: it launched the plugin, made its calls and now waits
/// to be killed, like a Conduit that dies mid-pipeline.
pub struct HeldHost {
    pub host: std::process::Child,
    pub plugin_pid: u32,
}

impl Drop for HeldHost {
    fn drop(&mut self) {
        let _ = self.host.kill();
        let _ = self.host.wait();
        // Never leave a plugin behind, even when the test failed.
        super::kill_process(self.plugin_pid);
    }
}

/// Starts the plugin through goplugin-host with `-hold` and returns once the calls are done.
pub fn start_held_host(
    plugin: &Path,
    env: &[(&str, &str)],
    dispense: &str,
    calls: &[(&str, Vec<u8>)],
) -> HeldHost {
    use std::io::BufRead;
    let host = host_binary();
    let mut cmd = Command::new(&host);
    cmd.arg("-plugin")
        .arg(plugin)
        .arg("-dispense")
        .arg(dispense)
        .arg("-hold");
    for (k, v) in env {
        cmd.arg("-env").arg(format!("{k}={v}"));
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", host.display()));
    let script = serde_json::json!({
        "calls": calls.iter().map(|(method, req)| serde_json::json!({
            "method": method,
            "request_b64": b64_encode(req),
        })).collect::<Vec<_>>(),
    });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&serde_json::to_vec(&script).unwrap())
        .expect("write script to goplugin-host");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read goplugin-host's held line");
    let held: Value = serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("goplugin-host did not hold ({e}): {line:?}"));
    let plugin_pid = held["plugin_pid"].as_u64().unwrap_or(0) as u32;
    assert!(
        plugin_pid > 0,
        "goplugin-host reported no plugin pid: {line}"
    );
    HeldHost {
        host: child,
        plugin_pid,
    }
}
