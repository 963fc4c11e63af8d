//! Starts the plugin binary the way Conduit does (same environment variables), reads the
//! handshake line and gives typed gRPC clients for every service.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use conduit_connector_kinesis::proto::connector::v2::destination_plugin_client::DestinationPluginClient;
use conduit_connector_kinesis::proto::connector::v2::source_plugin_client::SourcePluginClient;
use conduit_connector_kinesis::proto::connector::v2::specifier_plugin_client::SpecifierPluginClient;
use conduit_connector_kinesis::proto::plugin::grpc_controller_client::GrpcControllerClient;
use tonic::transport::Channel;

pub const MAGIC_COOKIE: (&str, &str) = (
    "CONDUIT_PLUGIN_MAGIC_COOKIE",
    "204e8e812c3a1bb73b838928c575b42a105dd2e9aa449be481bc4590486df53f",
);

/// What Conduit sets when it runs a connector (validation and pipeline runs).
pub fn run_env() -> Vec<(String, String)> {
    vec![
        pair(MAGIC_COOKIE.0, MAGIC_COOKIE.1),
        pair("PLUGIN_PROTOCOL_VERSIONS", "2,1"),
        pair("PLUGIN_MIN_PORT", "10000"),
        pair("PLUGIN_MAX_PORT", "25000"),
        pair("CONDUIT_CONNECTOR_UTILITIES_GRPC_TARGET", "[::]:1"),
        pair(
            "CONDUIT_CONNECTOR_TOKEN",
            r#"{"value":"3f2a","connector_id":"pipeline:kinesis"}"#,
        ),
        pair("CONDUIT_CONNECTOR_ID", "pipeline:kinesis"),
        pair("CONDUIT_CONNECTOR_LOG_LEVEL", "info"),
        pair("CONDUIT_CONNECTOR_MAX_RECEIVE_RECORD_SIZE", "4194304"),
        pair("AWS_EC2_METADATA_DISABLED", "true"),
    ]
}

/// What Conduit sets for its start-up scan of the connectors directory: no log level and no
/// receive size.
pub fn startup_scan_env() -> Vec<(String, String)> {
    vec![
        pair(MAGIC_COOKIE.0, MAGIC_COOKIE.1),
        pair("PLUGIN_PROTOCOL_VERSIONS", "1,2"),
        pair("PLUGIN_MIN_PORT", "10000"),
        pair("PLUGIN_MAX_PORT", "25000"),
        pair("CONDUIT_CONNECTOR_UTILITIES_GRPC_TARGET", "[::]:1"),
        pair("CONDUIT_CONNECTOR_TOKEN", "irrelevant-token"),
        pair("CONDUIT_CONNECTOR_ID", "load-specifications"),
        pair("AWS_EC2_METADATA_DISABLED", "true"),
    ]
}

pub fn pair(key: &str, value: &str) -> (String, String) {
    (key.to_string(), value.to_string())
}

/// A running plugin process. Killed (SIGKILL) on drop if still alive.
pub struct PluginProcess {
    pub child: Child,
    pub address: String,
    pub channel: Channel,
    /// The first stdout line exactly as read, newline included.
    pub handshake: String,
    stderr: Arc<Mutex<Vec<String>>>,
    stderr_reader: Option<JoinHandle<()>>,
    /// Everything the plugin wrote to stdout after the handshake line.
    stdout_after: Arc<Mutex<String>>,
    stdout_reader: Option<JoinHandle<()>>,
}

/// What [`PluginProcess::shutdown_report`] observed.
#[derive(Debug)]
pub struct ShutdownReport {
    /// From the Shutdown call until the process had exited.
    pub took: Duration,
    pub status: std::process::ExitStatus,
    /// Every stderr line the process wrote, read to the end.
    pub stderr: Vec<String>,
    /// Everything written to stdout after the handshake line, read to the end.
    pub stdout_after_handshake: String,
}

impl PluginProcess {
    /// Starts the plugin with exactly `env` (plus PATH/HOME), so nothing leaks in from the
    /// developer's environment.
    pub async fn start(env: &[(String, String)]) -> PluginProcess {
        Self::start_binary(&super::plugin_binary(), env).await
    }

    /// [`PluginProcess::start`] of another build of the plugin (benchmarks compare builds).
    pub async fn start_binary(binary: &std::path::Path, env: &[(String, String)]) -> PluginProcess {
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "HOME",
                std::env::var("HOME").unwrap_or_else(|_| "/nonexistent".into()),
            )
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn plugin binary");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr_lines.clone();
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let stdout_after = Arc::new(Mutex::new(String::new()));
        let stdout_sink = stdout_after.clone();
        let (line_tx, line_rx) = std::sync::mpsc::channel();
        let stdout_reader = std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let _ = line_tx.send(first);
            // Anything after the handshake would be a protocol violation; keep it for asserts.
            let mut chunk = [0u8; 4096];
            loop {
                match std::io::Read::read(&mut reader, &mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => stdout_sink
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&chunk[..n])),
                }
            }
        });
        let line = line_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("plugin printed no handshake line within 10s");
        let parts: Vec<&str> = line.trim_end_matches('\n').split('|').collect();
        assert_eq!(parts.len(), 5, "handshake line {line:?}");
        assert_eq!(&parts[..3], &["1", "2", "tcp"], "handshake line {line:?}");
        assert_eq!(parts[4], "grpc", "handshake line {line:?}");
        assert!(
            parts[3].starts_with("127.0.0.1:"),
            "handshake line {line:?}"
        );
        let address = parts[3].to_string();
        let channel = Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .expect("connect to the plugin's gRPC server");
        PluginProcess {
            child,
            address,
            channel,
            handshake: line,
            stderr: stderr_lines,
            stderr_reader: Some(stderr_reader),
            stdout_after,
            stdout_reader: Some(stdout_reader),
        }
    }

    pub async fn start_for_run() -> PluginProcess {
        Self::start(&run_env()).await
    }

    /// `run_env()` plus extra variables (later ones win).
    pub async fn start_with(extra: &[(&str, &str)]) -> PluginProcess {
        let mut env = run_env();
        env.extend(extra.iter().map(|(k, v)| pair(k, v)));
        Self::start(&env).await
    }

    pub fn specifier(&self) -> SpecifierPluginClient<Channel> {
        SpecifierPluginClient::new(self.channel.clone())
    }

    pub fn source(&self) -> SourcePluginClient<Channel> {
        SourcePluginClient::new(self.channel.clone())
    }

    pub fn destination(&self) -> DestinationPluginClient<Channel> {
        DestinationPluginClient::new(self.channel.clone())
    }

    pub fn controller(&self) -> GrpcControllerClient<Channel> {
        GrpcControllerClient::new(self.channel.clone())
    }

    /// Stderr lines so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Stdout written after the handshake line so far (must stay empty).
    pub fn stdout_after_handshake(&self) -> String {
        self.stdout_after.lock().unwrap().clone()
    }

    /// Calls Shutdown like go-plugin's Kill and returns how long the process took to exit.
    /// Also asserts that the plugin wrote nothing to stdout after the handshake line.
    pub async fn shutdown(self) -> Duration {
        let report = self.shutdown_report().await;
        assert_eq!(
            report.stdout_after_handshake, "",
            "plugin wrote to stdout after the handshake"
        );
        report.took
    }

    /// Calls Shutdown like go-plugin's Kill, waits (≤ 5 s) for the process to exit and reads
    /// its stdout and stderr to the end.
    pub async fn shutdown_report(mut self) -> ShutdownReport {
        let started = Instant::now();
        self.controller()
            .shutdown(conduit_connector_kinesis::proto::plugin::Empty {})
            .await
            .expect("Shutdown answers");
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "plugin still running 5s after Shutdown"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let took = started.elapsed();
        // The pipes close with the process (it has no children), so both readers end now.
        for reader in [self.stdout_reader.take(), self.stderr_reader.take()]
            .into_iter()
            .flatten()
        {
            let _ = reader.join();
        }
        ShutdownReport {
            took,
            status,
            stderr: self.stderr(),
            stdout_after_handshake: self.stdout_after_handshake(),
        }
    }
}

impl Drop for PluginProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds a `map<string,string>` from pairs.
pub fn config(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
