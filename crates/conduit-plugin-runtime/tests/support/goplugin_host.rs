//! `.tools/bin/goplugin-host`: starts a plugin with hashicorp/go-plugin v1.8.0 configured like
//! Conduit v0.19.0, dispenses one plugin, performs unary calls given as a JSON script on
//! stdin (method path + base64 protobuf request), kills the plugin (Shutdown, then SIGKILL
//! after 2 s) and prints one JSON result on stdout.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::{b64_decode, b64_encode};

/// The environment Conduit gives a plugin that runs a connector.
pub const RUN_ENV: &[(&str, &str)] = &[
    ("CONDUIT_CONNECTOR_UTILITIES_GRPC_TARGET", "127.0.0.1:1"),
    (
        "CONDUIT_CONNECTOR_TOKEN",
        r#"{"value":"00000000-0000-0000-0000-000000000000","connector_id":"p:c"}"#,
    ),
    ("CONDUIT_CONNECTOR_ID", "p:c"),
    ("CONDUIT_CONNECTOR_LOG_LEVEL", "info"),
    ("CONDUIT_CONNECTOR_MAX_RECEIVE_RECORD_SIZE", "4194304"),
];

/// One call's outcome.
#[derive(Debug)]
pub struct Call {
    pub method: String,
    /// gRPC code as grpc-go names it: `OK`, `InvalidArgument`, ...
    pub code: String,
    /// Status message (empty on success).
    pub error: String,
    /// Raw protobuf response.
    pub response: Vec<u8>,
}

/// What goplugin-host reported.
#[derive(Debug)]
pub struct Run {
    /// Start, handshake or dispense error; empty when the plugin was served.
    pub error: String,
    pub negotiated_version: i64,
    pub calls: Vec<Call>,
    /// go-plugin saw the process exit after Kill...
    pub exited: bool,
    /// ... but only because it SIGKILLed it.
    pub force_killed: bool,
}

/// Runs `plugin` under `host` with `env`, performing `calls` (method path, request bytes).
pub fn run(host: &Path, plugin: &Path, env: &[(&str, &str)], calls: &[(&str, Vec<u8>)]) -> Run {
    let mut command = Command::new(host);
    command
        .arg("-plugin")
        .arg(plugin)
        .args(["-dispense", "source"]);
    for (key, value) in env {
        command.arg("-env").arg(format!("{key}={value}"));
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start goplugin-host");
    let script = json!({
        "calls": calls
            .iter()
            .map(|(method, request)| json!({"method": method, "request_b64": b64_encode(request)}))
            .collect::<Vec<_>>(),
    });
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(script.to_string().as_bytes())
        .expect("write the script");
    drop(stdin);
    let output = child.wait_with_output().expect("wait for goplugin-host");
    let result: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "goplugin-host printed no JSON ({e}); stderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let text = |value: &Value, key: &str| value[key].as_str().unwrap_or_default().to_string();
    Run {
        error: text(&result, "error"),
        negotiated_version: result["negotiated_version"].as_i64().unwrap_or_default(),
        calls: result["calls"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|call| Call {
                method: text(call, "method"),
                code: text(call, "code"),
                error: text(call, "error"),
                response: b64_decode(call["response_b64"].as_str().unwrap_or_default()),
            })
            .collect(),
        exited: result["exited"].as_bool().unwrap_or_default(),
        force_killed: result["force_killed"].as_bool().unwrap_or_default(),
    }
}
