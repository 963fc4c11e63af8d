//! The plugin binary, started as Conduit starts it, over its real gRPC interface (Rust tonic
//! clients). Covers the process contract (handshake, environment checks, stdout/stderr, signals,
//! shutdown) and the connector RPCs that need no data: Specify, Configure, Teardown, lifecycle.
//! Tests that must Open a stream use a private kinesis-local (needs `test/setup.sh`).

mod support;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use conduit_connector_kinesis::proto::config::v1 as pbconfig;
use conduit_connector_kinesis::proto::connector::v2::{
    destination, source, specifier, Specification,
};
use conduit_connector_kinesis::proto::opencdc::v1::{data, Change, Data, Operation, Record};
use regex::Regex;
use serde_json::Value;
use support::kinesis_local::{unique_stream_name, KinesisLocal};
use support::plugin::{config, run_env, startup_scan_env, PluginProcess, MAGIC_COOKIE};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

const TIMESTAMP_PATTERN: &str = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$";

async fn specify(plugin: &PluginProcess) -> Specification {
    plugin
        .specifier()
        .specify(specifier::specify::Request {})
        .await
        .expect("Specify")
        .into_inner()
        .specification
        .expect("Specify sets specification")
}

/// Runs the binary with exactly `env` (plus PATH) and no handshake expectations.
fn run_binary_with_env(env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(support::plugin_binary());
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().expect("spawn plugin binary");
    // A binary that wrongly starts serving would never exit; bound the wait.
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(output) => output.expect("wait for plugin binary"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("the plugin binary kept running although it should have refused to start");
        }
    }
}

/// Parses every stderr line as a JSON object, panicking with the line otherwise.
fn json_lines(stderr: &[String]) -> Vec<Value> {
    stderr
        .iter()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {line:?}"));
            assert!(
                value.is_object(),
                "stderr line is not a JSON object: {line}"
            );
            value
        })
        .collect()
}

fn str_field<'a>(entry: &'a Value, key: &str) -> &'a str {
    entry.get(key).and_then(Value::as_str).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Handshake and environment
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn handshake_is_the_only_stdout_line() {
    let plugin = PluginProcess::start_for_run().await;
    let pattern = Regex::new(r"^1\|2\|tcp\|127\.0\.0\.1:(\d+)\|grpc\n$").unwrap();
    let captures = pattern
        .captures(&plugin.handshake)
        .unwrap_or_else(|| panic!("handshake line {:?}", plugin.handshake));
    let port: u16 = captures[1].parse().expect("port is a u16");
    assert_ne!(port, 0);
    assert_eq!(plugin.address, format!("127.0.0.1:{port}"));
    // Exercise every service once so that anything printed along the way would show up.
    specify(&plugin).await;
    plugin
        .source()
        .configure(source::configure::Request {
            config: config(&[("streamName", "orders")]),
        })
        .await
        .expect("source Configure");
    plugin
        .destination()
        .configure(destination::configure::Request {
            config: config(&[("streamName", "orders")]),
        })
        .await
        .expect("destination Configure");
    let report = plugin.shutdown_report().await;
    assert_eq!(
        report.stdout_after_handshake, "",
        "stdout after the handshake must stay empty"
    );
    assert!(report.status.success(), "exit status {:?}", report.status);
}

#[test]
fn refuses_to_run_without_the_magic_cookie() {
    for cookie in [None, Some("not-the-cookie")] {
        let mut env = vec![("PLUGIN_PROTOCOL_VERSIONS", "1,2")];
        if let Some(value) = cookie {
            env.push((MAGIC_COOKIE.0, value));
        }
        let output = run_binary_with_env(&env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "cookie {cookie:?}: {stderr}");
        assert!(
            output.stdout.is_empty(),
            "cookie {cookie:?}: stdout {:?}",
            String::from_utf8_lossy(&output.stdout)
        );
        assert!(
            stderr.contains("plugin for Conduit"),
            "cookie {cookie:?}: {stderr}"
        );
        assert!(
            stderr.contains("not meant to be executed directly"),
            "cookie {cookie:?}: {stderr}"
        );
        assert!(
            stderr.contains("`standalone:kinesis`") && stderr.contains("--help"),
            "cookie {cookie:?}: {stderr}"
        );
    }
}

#[test]
fn refuses_protocol_versions_without_2() {
    for offered in ["1", "", "3"] {
        let output = run_binary_with_env(&[
            (MAGIC_COOKIE.0, MAGIC_COOKIE.1),
            ("PLUGIN_PROTOCOL_VERSIONS", offered),
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(1),
            "offered {offered:?}: {stderr}"
        );
        assert!(
            output.stdout.is_empty(),
            "offered {offered:?}: stdout {:?}",
            String::from_utf8_lossy(&output.stdout)
        );
        assert!(
            stderr.contains("PLUGIN_PROTOCOL_VERSIONS") && stderr.contains("version 2"),
            "offered {offered:?}: {stderr}"
        );
    }
}

#[tokio::test]
async fn accepts_protocol_versions_in_either_order() {
    for offered in ["1,2", "2,1"] {
        let plugin = PluginProcess::start_with(&[("PLUGIN_PROTOCOL_VERSIONS", offered)]).await;
        assert!(
            plugin.handshake.starts_with("1|2|tcp|"),
            "offered {offered}: {:?}",
            plugin.handshake
        );
        assert_eq!(specify(&plugin).await.name, "kinesis", "offered {offered}");
        let took = plugin.shutdown().await;
        assert!(
            took < Duration::from_secs(1),
            "offered {offered}: exit took {took:?}"
        );
    }
}

#[tokio::test]
async fn startup_scan_specify_then_shutdown_exits_quickly() {
    // No CONDUIT_CONNECTOR_LOG_LEVEL / MAX_RECEIVE_RECORD_SIZE, like Conduit's connector scan.
    let env = startup_scan_env();
    assert!(!env.iter().any(|(k, _)| k == "CONDUIT_CONNECTOR_LOG_LEVEL"
        || k == "CONDUIT_CONNECTOR_MAX_RECEIVE_RECORD_SIZE"));
    let plugin = PluginProcess::start(&env).await;
    let spec = specify(&plugin).await;
    assert_eq!(spec.name, "kinesis");
    assert_eq!(spec.version, format!("v{}", env!("CARGO_PKG_VERSION")));
    assert!(spec.source_params.contains_key("streamName"));
    let report = plugin.shutdown_report().await;
    assert!(
        report.took < Duration::from_secs(1),
        "exit took {:?}",
        report.took
    );
    assert!(report.status.success(), "exit status {:?}", report.status);
    assert_eq!(report.stdout_after_handshake, "");
}

// ---------------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn logs_are_json_lines_go_plugin_understands() {
    let plugin = PluginProcess::start_with(&[("CONDUIT_CONNECTOR_LOG_LEVEL", "debug")]).await;
    plugin
        .source()
        .configure(source::configure::Request {
            config: config(&[("streamName", "orders")]),
        })
        .await
        .expect("Configure");
    let report = plugin.shutdown_report().await;
    let entries = json_lines(&report.stderr);
    assert!(!entries.is_empty(), "no log lines at debug level");
    let timestamp = Regex::new(TIMESTAMP_PATTERN).unwrap();
    for entry in &entries {
        let level = str_field(entry, "@level");
        assert!(
            ["trace", "debug", "info", "warn", "error"].contains(&level),
            "bad @level in {entry}"
        );
        assert!(
            entry.get("@message").is_some_and(Value::is_string),
            "no @message in {entry}"
        );
        assert!(
            timestamp.is_match(str_field(entry, "@timestamp")),
            "@timestamp in {entry}"
        );
    }
    // The runtime's shutdown message is a debug line: proves debug lines do come through here.
    let shutdown = entries
        .iter()
        .find(|e| str_field(e, "@message") == "host asked the plugin to shut down")
        .unwrap_or_else(|| panic!("no shutdown message in {:#?}", report.stderr));
    assert_eq!(str_field(shutdown, "@level"), "debug");
}

#[tokio::test]
async fn info_level_drops_debug_lines() {
    let plugin = PluginProcess::start_with(&[("CONDUIT_CONNECTOR_LOG_LEVEL", "info")]).await;
    plugin
        .source()
        .configure(source::configure::Request {
            config: config(&[("streamName", "orders")]),
        })
        .await
        .expect("Configure");
    specify(&plugin).await;
    let report = plugin.shutdown_report().await;
    for entry in json_lines(&report.stderr) {
        let level = str_field(&entry, "@level");
        assert!(
            level != "debug" && level != "trace",
            "a {level} line at LOG_LEVEL=info: {entry}"
        );
    }
}

#[tokio::test]
async fn startup_scan_transport_crates_do_not_flood_stderr() {
    // No LOG_LEVEL means trace for the connector's own logs; h2/hyper/tonic must stay quiet.
    let plugin = PluginProcess::start(&startup_scan_env()).await;
    specify(&plugin).await;
    let report = plugin.shutdown_report().await;
    let entries = json_lines(&report.stderr);
    assert!(
        entries.len() < 20,
        "{} stderr lines for Specify + Shutdown:\n{}",
        entries.len(),
        report.stderr.join("\n")
    );
    for entry in &entries {
        let target = str_field(entry, "target");
        let level = str_field(entry, "@level");
        let transport = ["h2", "hyper", "tonic", "tower"]
            .iter()
            .any(|t| target == *t || target.starts_with(&format!("{t}::")));
        assert!(
            !(transport && (level == "debug" || level == "trace")),
            "transport {level} line: {entry}"
        );
    }
    // The runtime's own debug lines are there (trace is the default level in the scan).
    assert!(
        entries
            .iter()
            .any(|e| str_field(e, "@message") == "host asked the plugin to shut down"),
        "{:#?}",
        report.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// Specify
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn specify_returns_the_full_specification() {
    let plugin = PluginProcess::start(&startup_scan_env()).await;
    let spec = specify(&plugin).await;
    assert_eq!(spec, conduit_connector_kinesis::specification());

    assert_eq!(spec.name, "kinesis");
    assert_eq!(spec.version, format!("v{}", env!("CARGO_PKG_VERSION")));
    for (field, value) in [
        ("summary", &spec.summary),
        ("description", &spec.description),
        ("author", &spec.author),
    ] {
        assert!(!value.trim().is_empty(), "{field} is empty");
        assert_eq!(value.trim(), value, "{field} has surrounding whitespace");
    }
    let name_pattern = Regex::new(r"^[a-zA-Z0-9.]+$").unwrap();
    for (side, params) in [
        ("source", &spec.source_params),
        ("destination", &spec.destination_params),
    ] {
        assert!(params.contains_key("streamName"), "{side}");
        assert!(params.contains_key("streamARN"), "{side}");
        for (name, param) in params.iter() {
            assert!(name_pattern.is_match(name), "{side} param name {name:?}");
            assert!(
                !param.description.trim().is_empty(),
                "{side} param {name} has no description"
            );
            let ty = pbconfig::parameter::Type::try_from(param.r#type)
                .unwrap_or_else(|_| panic!("{side} param {name}: unknown type {}", param.r#type));
            assert_ne!(
                ty,
                pbconfig::parameter::Type::Unspecified,
                "{side} param {name}"
            );
            for validation in &param.validations {
                let vt =
                    pbconfig::validation::Type::try_from(validation.r#type).unwrap_or_else(|_| {
                        panic!(
                            "{side} param {name}: unknown validation {}",
                            validation.r#type
                        )
                    });
                match vt {
                    pbconfig::validation::Type::Unspecified => {
                        panic!("{side} param {name}: unspecified validation")
                    }
                    pbconfig::validation::Type::Regex => {
                        Regex::new(&validation.value).unwrap_or_else(|e| {
                            panic!("{side} param {name}: regex {:?}: {e}", validation.value)
                        });
                    }
                    pbconfig::validation::Type::GreaterThan
                    | pbconfig::validation::Type::LessThan => {
                        validation.value.parse::<f64>().unwrap_or_else(|e| {
                            panic!("{side} param {name}: bound {:?}: {e}", validation.value)
                        });
                    }
                    _ => {}
                }
            }
        }
    }
    plugin.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Configure, Teardown, lifecycle (both sides)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Side {
    Source,
    Destination,
}

const SIDES: [Side; 2] = [Side::Source, Side::Destination];

async fn configure(
    plugin: &PluginProcess,
    side: Side,
    settings: &[(&str, &str)],
) -> Result<(), tonic::Status> {
    let config = config(settings);
    match side {
        Side::Source => plugin
            .source()
            .configure(source::configure::Request { config })
            .await
            .map(drop),
        Side::Destination => plugin
            .destination()
            .configure(destination::configure::Request { config })
            .await
            .map(drop),
    }
}

async fn teardown(plugin: &PluginProcess, side: Side) -> Result<(), tonic::Status> {
    match side {
        Side::Source => plugin
            .source()
            .teardown(source::teardown::Request {})
            .await
            .map(drop),
        Side::Destination => plugin
            .destination()
            .teardown(destination::teardown::Request {})
            .await
            .map(drop),
    }
}

async fn on_created(
    plugin: &PluginProcess,
    side: Side,
    config: HashMap<String, String>,
) -> Result<(), tonic::Status> {
    match side {
        Side::Source => plugin
            .source()
            .lifecycle_on_created(source::lifecycle::on_created::Request { config })
            .await
            .map(drop),
        Side::Destination => plugin
            .destination()
            .lifecycle_on_created(destination::lifecycle::on_created::Request { config })
            .await
            .map(drop),
    }
}

async fn on_updated(
    plugin: &PluginProcess,
    side: Side,
    config_before: HashMap<String, String>,
    config_after: HashMap<String, String>,
) -> Result<(), tonic::Status> {
    match side {
        Side::Source => plugin
            .source()
            .lifecycle_on_updated(source::lifecycle::on_updated::Request {
                config_before,
                config_after,
            })
            .await
            .map(drop),
        Side::Destination => plugin
            .destination()
            .lifecycle_on_updated(destination::lifecycle::on_updated::Request {
                config_before,
                config_after,
            })
            .await
            .map(drop),
    }
}

async fn on_deleted(
    plugin: &PluginProcess,
    side: Side,
    config: HashMap<String, String>,
) -> Result<(), tonic::Status> {
    match side {
        Side::Source => plugin
            .source()
            .lifecycle_on_deleted(source::lifecycle::on_deleted::Request { config })
            .await
            .map(drop),
        Side::Destination => plugin
            .destination()
            .lifecycle_on_deleted(destination::lifecycle::on_deleted::Request { config })
            .await
            .map(drop),
    }
}

fn assert_config_error(side: Side, result: Result<(), tonic::Status>, wanted: &[&str]) {
    let status = result.expect_err(&format!("{side:?}: Configure should fail ({wanted:?})"));
    assert_eq!(status.code(), Code::InvalidArgument, "{side:?}: {status:?}");
    for text in wanted {
        assert!(
            status.message().contains(text),
            "{side:?}: {:?} does not mention {text:?}",
            status.message()
        );
    }
}

#[tokio::test]
async fn configure_accepts_a_stream_name_and_teardown_is_repeatable() {
    let plugin = PluginProcess::start_for_run().await;
    for side in SIDES {
        configure(&plugin, side, &[("streamName", "orders")])
            .await
            .unwrap_or_else(|e| panic!("{side:?}: {e:?}"));
        teardown(&plugin, side)
            .await
            .unwrap_or_else(|e| panic!("{side:?}: {e:?}"));
        teardown(&plugin, side)
            .await
            .unwrap_or_else(|e| panic!("{side:?} second Teardown: {e:?}"));
    }
    plugin.shutdown().await;
}

#[tokio::test]
async fn teardown_without_configure_is_ok() {
    let plugin = PluginProcess::start_for_run().await;
    for side in SIDES {
        teardown(&plugin, side)
            .await
            .unwrap_or_else(|e| panic!("{side:?}: {e:?}"));
    }
    plugin.shutdown().await;
}

#[tokio::test]
async fn source_configure_requires_a_stream() {
    // The destination is not checked here: its specification lets streamName and streamARN both
    // be empty (each record then goes to the stream named by its opencdc.collection).
    let plugin = PluginProcess::start_for_run().await;
    let side = Side::Source;
    assert_config_error(side, configure(&plugin, side, &[]).await, &["streamName"]);
    assert_config_error(
        side,
        configure(
            &plugin,
            side,
            &[("aws.region", "us-east-1"), ("streamName", "  ")],
        )
        .await,
        &["streamName", "streamARN"],
    );
    teardown(&plugin, side)
        .await
        .unwrap_or_else(|e| panic!("{side:?}: {e:?}"));
    plugin.shutdown().await;
}

#[tokio::test]
async fn configure_rejects_unknown_keys() {
    let plugin = PluginProcess::start_for_run().await;
    for side in SIDES {
        assert_config_error(
            side,
            configure(&plugin, side, &[("streamName", "orders"), ("x", "1")]).await,
            &["unrecognized parameter \"x\""],
        );
        assert_config_error(
            side,
            configure(
                &plugin,
                side,
                &[("streamName", "orders"), ("aws.regoin", "us-east-1")],
            )
            .await,
            &["unrecognized parameter \"aws.regoin\""],
        );
        teardown(&plugin, side)
            .await
            .unwrap_or_else(|e| panic!("{side:?}: {e:?}"));
    }
    plugin.shutdown().await;
}

#[tokio::test]
async fn configure_rejects_invalid_values_naming_the_parameter() {
    let plugin = PluginProcess::start_for_run().await;
    for side in SIDES {
        assert_config_error(
            side,
            configure(
                &plugin,
                side,
                &[("streamName", "orders"), ("aws.url", "localhost")],
            )
            .await,
            &["\"aws.url\"", "localhost"],
        );
        assert_config_error(
            side,
            configure(&plugin, side, &[("streamARN", "arn:aws:kinesis:orders")]).await,
            &["\"streamARN\""],
        );
        assert_config_error(
            side,
            configure(
                &plugin,
                side,
                &[("streamName", "orders"), ("aws.accessKeyId", "AKIA")],
            )
            .await,
            &["aws.secretAccessKey"],
        );
        // A valid configuration is still accepted afterwards.
        configure(
            &plugin,
            side,
            &[("streamName", "orders"), ("aws.url", "http://127.0.0.1:1")],
        )
        .await
        .unwrap_or_else(|e| panic!("{side:?}: {e:?}"));
        teardown(&plugin, side)
            .await
            .unwrap_or_else(|e| panic!("{side:?}: {e:?}"));
    }
    // The source's streamName is a plain stream name with a pattern.
    assert_config_error(
        Side::Source,
        configure(
            &plugin,
            Side::Source,
            &[("streamName", "no spaces allowed")],
        )
        .await,
        &["\"streamName\""],
    );
    plugin.shutdown().await;
}

#[tokio::test]
async fn lifecycle_events_are_answered_on_both_sides() {
    // Lifecycle hooks may talk to Kinesis (e.g. the source deregisters its enhanced fan-out
    // consumer on delete), so the settings point at a real (local) stream.
    let kl = start_kinesis_local().await;
    let stream = unique_stream_name("protocol-lifecycle");
    kl.create_stream(&stream, 1).await;
    let settings = local_settings(&kl, &stream);
    let before = config(&settings);
    let mut after = before.clone();
    after.insert("aws.region".into(), support::kinesis_local::REGION.into());
    after.insert("aws.url".into(), format!("{}/", kl.endpoint));

    // Pipeline start: Configure, then OnCreated or OnUpdated; Teardown at the end.
    let plugin = PluginProcess::start_for_run().await;
    for side in SIDES {
        configure(&plugin, side, &settings)
            .await
            .unwrap_or_else(|e| panic!("{side:?}: {e:?}"));
        on_created(&plugin, side, before.clone())
            .await
            .unwrap_or_else(|e| panic!("{side:?} OnCreated: {e:?}"));
        on_updated(&plugin, side, before.clone(), after.clone())
            .await
            .unwrap_or_else(|e| panic!("{side:?} OnUpdated: {e:?}"));
        teardown(&plugin, side)
            .await
            .unwrap_or_else(|e| panic!("{side:?}: {e:?}"));
    }
    plugin.shutdown().await;

    // Connector deleted: a fresh process gets OnDeleted(last config) without Configure, then
    // Teardown.
    for side in SIDES {
        let plugin = PluginProcess::start_for_run().await;
        on_deleted(&plugin, side, after.clone())
            .await
            .unwrap_or_else(|e| panic!("{side:?} OnDeleted without Configure: {e:?}"));
        teardown(&plugin, side)
            .await
            .unwrap_or_else(|e| panic!("{side:?}: {e:?}"));
        plugin.shutdown().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Signals and shutdown
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn sigint_is_ignored() {
    let mut plugin = PluginProcess::start_for_run().await;
    let pid = plugin.child.id().to_string();
    for _ in 0..2 {
        let status = Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -INT {pid}: {status}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        plugin.child.try_wait().unwrap().is_none(),
        "the plugin exited on SIGINT"
    );
    assert_eq!(specify(&plugin).await.name, "kinesis");
    let took = plugin.shutdown().await;
    assert!(took < Duration::from_secs(1), "exit took {took:?}");
}

/// A private kinesis-local without its artificial delays for creating streams and consumers.
async fn start_kinesis_local() -> KinesisLocal {
    KinesisLocal::start_with_env(&[
        ("CREATE_STREAM_DURATION", "0ms"),
        ("REGISTER_STREAM_CONSUMER_DURATION", "0ms"),
        ("DEREGISTER_STREAM_CONSUMER_DURATION", "0ms"),
    ])
    .await
}

/// Settings that point a connector at `kl`'s stream.
fn local_settings<'a>(kl: &'a KinesisLocal, stream: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("streamName", stream),
        ("aws.url", kl.endpoint.as_str()),
        ("aws.region", support::kinesis_local::REGION),
        ("aws.accessKeyId", support::kinesis_local::ACCESS_KEY_ID),
        (
            "aws.secretAccessKey",
            support::kinesis_local::SECRET_ACCESS_KEY,
        ),
    ]
}

#[tokio::test]
async fn shutdown_exits_quickly_with_a_run_stream_open() {
    let kl = start_kinesis_local().await;
    let stream = unique_stream_name("protocol-shutdown");
    kl.create_stream(&stream, 1).await;

    let plugin = PluginProcess::start_for_run().await;
    let mut client = plugin.source();
    client
        .configure(source::configure::Request {
            config: config(&local_settings(&kl, &stream)),
        })
        .await
        .expect("Configure");
    client
        .open(source::open::Request { position: vec![] })
        .await
        .expect("Open");
    let (acks, ack_rx) = mpsc::channel::<source::run::Request>(4);
    let mut records = client
        .run(ReceiverStream::new(ack_rx))
        .await
        .expect("Run")
        .into_inner();
    // The stream is open and idle (the stream is empty).
    assert!(
        tokio::time::timeout(Duration::from_millis(100), records.message())
            .await
            .is_err(),
        "the Run stream ended or produced a record on an empty stream"
    );

    let report = plugin.shutdown_report().await;
    assert!(
        report.took < Duration::from_millis(1500),
        "exit took {:?} with a Run stream open (go-plugin SIGKILLs after 2 s)",
        report.took
    );
    assert_eq!(report.stdout_after_handshake, "");
    drop(acks);
}

fn destination_record(position: &str, payload_len: usize) -> Record {
    Record {
        position: position.as_bytes().to_vec(),
        operation: Operation::Create as i32,
        metadata: Default::default(),
        key: Some(Data {
            data: Some(data::Data::RawData(b"key".to_vec().into())),
        }),
        payload: Some(Change {
            before: None,
            after: Some(Data {
                data: Some(data::Data::RawData(vec![b'x'; payload_len].into())),
            }),
        }),
    }
}

/// Configure, Open and Run a destination against `kl`'s stream.
async fn destination_run(
    plugin: &PluginProcess,
    kl: &KinesisLocal,
    stream: &str,
) -> (
    mpsc::Sender<destination::run::Request>,
    tonic::Streaming<destination::run::Response>,
) {
    let mut client = plugin.destination();
    client
        .configure(destination::configure::Request {
            config: config(&local_settings(kl, stream)),
        })
        .await
        .expect("Configure");
    client
        .open(destination::open::Request {})
        .await
        .expect("Open");
    let (requests, request_rx) = mpsc::channel::<destination::run::Request>(4);
    let acks = client
        .run(ReceiverStream::new(request_rx))
        .await
        .expect("Run")
        .into_inner();
    (requests, acks)
}

/// Sends one record per request and returns the acked positions (ack or nack alike).
async fn send_and_collect_acks(
    requests: &mpsc::Sender<destination::run::Request>,
    acks: &mut tonic::Streaming<destination::run::Response>,
    records: Vec<Record>,
) -> Vec<Vec<u8>> {
    let count = records.len();
    for record in records {
        requests
            .send(destination::run::Request {
                records: vec![record],
            })
            .await
            .unwrap();
    }
    let mut answered = Vec::new();
    while answered.len() < count {
        let response = tokio::time::timeout(Duration::from_secs(10), acks.message())
            .await
            .expect("no ack within 10 s")
            .expect("the Run stream failed")
            .expect("the Run stream ended");
        answered.extend(response.acks.into_iter().map(|a| a.position));
    }
    answered
}

#[tokio::test]
async fn max_receive_record_size_is_honoured() {
    let kl = start_kinesis_local().await;
    let stream = unique_stream_name("protocol-maxsize");
    kl.create_stream(&stream, 1).await;

    // With the default limit (4 MiB, variable absent) a 4 KiB record is fine: the failure
    // below comes from CONDUIT_CONNECTOR_MAX_RECEIVE_RECORD_SIZE.
    let mut env = run_env();
    env.retain(|(k, _)| k != "CONDUIT_CONNECTOR_MAX_RECEIVE_RECORD_SIZE");
    let plugin = PluginProcess::start(&env).await;
    let (requests, mut acks) = destination_run(&plugin, &kl, &stream).await;
    let answered =
        send_and_collect_acks(&requests, &mut acks, vec![destination_record("big", 4096)]).await;
    assert_eq!(answered, vec![b"big".to_vec()]);
    drop(requests);
    plugin.shutdown().await;

    let plugin =
        PluginProcess::start_with(&[("CONDUIT_CONNECTOR_MAX_RECEIVE_RECORD_SIZE", "2048")]).await;
    let (requests, mut acks) = destination_run(&plugin, &kl, &stream).await;
    // Small records pass and are answered in order (ack or nack; writing is not the point).
    let answered = send_and_collect_acks(
        &requests,
        &mut acks,
        vec![
            destination_record("small-1", 100),
            destination_record("small-2", 100),
        ],
    )
    .await;
    assert_eq!(answered, vec![b"small-1".to_vec(), b"small-2".to_vec()]);

    // A 4 KiB record exceeds the 2 KiB limit: the stream must fail with a size error.
    requests
        .send(destination::run::Request {
            records: vec![destination_record("big", 4096)],
        })
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), acks.message())
        .await
        .expect("the Run stream neither failed nor answered within 10 s");
    match outcome {
        Err(status) => {
            // tonic: OutOfRange "decoded message length too large: found N bytes, the limit
            // is: 2048 bytes" (grpc-go would say ResourceExhausted "larger than max").
            let message = status.message().to_ascii_lowercase();
            assert!(
                matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted)
                    && (message.contains("too large") || message.contains("larger than"))
                    && message.contains("2048"),
                "unexpected status for an oversized record: {status:?}"
            );
        }
        Ok(other) => panic!("an oversized record did not fail the Run stream: {other:?}"),
    }
    drop(requests);
    plugin.shutdown().await;
}
