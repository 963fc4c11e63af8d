//! The plugin binary started through the real hashicorp/go-plugin v1.8.0 client, configured
//! like Conduit v0.19.0 (`.tools/bin/goplugin-host`, built by `test/setup.sh`).

mod support;

use std::time::Instant;

use conduit_connector_kinesis::proto::connector::v2::{destination, source, specifier};
use prost::Message;
use serde_json::Value;
use support::goplugin_host::{
    run_host, run_host_with, HostOptions, HostRun, RUN_ENV, SPECIFY, STARTUP_SCAN_ENV,
};
use support::plugin::config;

const SOURCE_CONFIGURE: &str = "/connector.v2.SourcePlugin/Configure";
const SOURCE_TEARDOWN: &str = "/connector.v2.SourcePlugin/Teardown";
const DESTINATION_CONFIGURE: &str = "/connector.v2.DestinationPlugin/Configure";
const DESTINATION_TEARDOWN: &str = "/connector.v2.DestinationPlugin/Teardown";

const SHUTDOWN_MESSAGE: &str = "host asked the plugin to shut down";

fn plugin() -> std::path::PathBuf {
    support::plugin_binary()
}

fn field<'a>(entry: &'a Value, key: &str) -> &'a str {
    entry.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Asserts go-plugin's Kill found a plugin that exits by itself, promptly.
fn assert_graceful_exit(run: &HostRun) {
    assert!(
        run.exited,
        "go-plugin did not see the plugin exit: {run:#?}"
    );
    assert!(
        !run.force_killed,
        "go-plugin had to SIGKILL the plugin: {run:#?}"
    );
    assert!(
        run.host_log_messages("plugin failed to exit gracefully")
            .is_empty(),
        "{run:#?}"
    );
    assert!(
        run.kill_ms < 1000.0,
        "Kill took {} ms: {run:#?}",
        run.kill_ms
    );
}

/// Plugin log entries as go-plugin re-logged them, with sanity checks that every one was
/// parsed as JSON (not a raw JSON text logged as the message).
fn plugin_entries(run: &HostRun) -> Vec<&Value> {
    let entries = run.plugin_log();
    assert!(
        !entries.is_empty(),
        "go-plugin logged nothing from the plugin's stderr; stderr was:\n{}",
        run.plugin_stderr
    );
    for entry in &entries {
        let message = field(entry, "@message");
        assert!(
            !message.trim_start().starts_with('{'),
            "go-plugin logged a plugin line as raw text (not parsed as JSON): {entry}"
        );
        assert!(
            !message.contains("\"@level\""),
            "go-plugin logged a plugin line as raw text: {entry}"
        );
    }
    entries
}

#[test]
fn startup_scan_specify_and_quick_kill() {
    let started = Instant::now();
    let run = run_host(
        &plugin(),
        STARTUP_SCAN_ENV,
        "specifier",
        &[(SPECIFY, vec![])],
    );
    let wall = started.elapsed();
    run.assert_ok();
    assert_eq!(run.negotiated_version, 2, "{run:#?}");
    assert_eq!(run.protocol, "grpc", "{run:#?}");
    assert_ne!(run.plugin_pid, 0);
    assert_graceful_exit(&run);
    assert!(
        run.start_ms + run.connect_ms + run.kill_ms < 1000.0,
        "start {} + connect {} + kill {} ms (Conduit scans plugins one by one)",
        run.start_ms,
        run.connect_ms,
        run.kill_ms
    );
    assert!(
        wall.as_millis() < 3000,
        "the whole goplugin-host run took {wall:?}"
    );

    let response = specifier::specify::Response::decode(run.calls[0].response.as_slice())
        .expect("Specify response decodes");
    assert_eq!(
        response.specification,
        Some(conduit_connector_kinesis::specification())
    );
    // Nothing reached go-plugin's stdout channel either.
    assert_eq!(run.stdio_stdout, "", "{run:#?}");
}

#[test]
fn go_plugin_parses_plugin_logs_as_json_in_the_startup_scan() {
    // No CONDUIT_CONNECTOR_LOG_LEVEL: the plugin logs everything, Conduit filters.
    let run = run_host(
        &plugin(),
        STARTUP_SCAN_ENV,
        "specifier",
        &[(SPECIFY, vec![])],
    );
    run.assert_ok();
    let entries = plugin_entries(&run);
    let shutdown = entries
        .iter()
        .find(|e| field(e, "@message") == SHUTDOWN_MESSAGE)
        .unwrap_or_else(|| panic!("no {SHUTDOWN_MESSAGE:?} in {entries:#?}"));
    assert_eq!(field(shutdown, "@level"), "debug", "{shutdown}");
    // Fields of the plugin's JSON line become hclog fields.
    let starting = entries
        .iter()
        .find(|e| field(e, "@message") == "plugin starting")
        .unwrap_or_else(|| panic!("no \"plugin starting\" in {entries:#?}"));
    assert_eq!(field(starting, "connector_id"), "load-specifications");
    assert_eq!(field(starting, "@level"), "debug");
}

#[test]
fn go_plugin_keeps_plugin_log_levels_at_debug_level() {
    let env: Vec<(&str, &str)> = RUN_ENV
        .iter()
        .map(|&(k, v)| {
            if k == "CONDUIT_CONNECTOR_LOG_LEVEL" {
                (k, "debug")
            } else {
                (k, v)
            }
        })
        .collect();
    let bad_config = config(&[("streamName", "orders"), ("x", "1")]);
    let run = run_host(
        &plugin(),
        &env,
        "source",
        &[(
            SOURCE_CONFIGURE,
            source::configure::Request { config: bad_config }.encode_to_vec(),
        )],
    );
    assert!(run.error.is_empty(), "{run:#?}");
    assert_graceful_exit(&run);
    let entries = plugin_entries(&run);
    let shutdown = entries
        .iter()
        .find(|e| field(e, "@message") == SHUTDOWN_MESSAGE)
        .unwrap_or_else(|| panic!("no {SHUTDOWN_MESSAGE:?} in {entries:#?}"));
    assert_eq!(field(shutdown, "@level"), "debug", "{shutdown}");
    for entry in &entries {
        assert_ne!(
            field(entry, "@level"),
            "trace",
            "trace line at debug: {entry}"
        );
    }
}

#[test]
fn configure_error_text_propagates_through_go_plugin() {
    let bad_config = config(&[("streamName", "orders"), ("x", "1")]);
    let run = run_host(
        &plugin(),
        RUN_ENV,
        "source",
        &[
            (
                SOURCE_CONFIGURE,
                source::configure::Request { config: bad_config }.encode_to_vec(),
            ),
            (
                SOURCE_TEARDOWN,
                source::teardown::Request {}.encode_to_vec(),
            ),
        ],
    );
    assert!(run.error.is_empty(), "{run:#?}");
    assert_eq!(run.calls.len(), 2, "{run:#?}");
    let configure = &run.calls[0];
    assert_eq!(configure.code, "InvalidArgument", "{configure:#?}");
    assert!(
        configure.error.contains("unrecognized parameter \"x\""),
        "{configure:#?}"
    );
    assert!(
        run.calls[1].is_ok(),
        "Teardown after a failed Configure: {run:#?}"
    );
    assert_graceful_exit(&run);
}

#[test]
fn destination_configure_then_teardown_through_go_plugin() {
    // Conduit validates a new connector with exactly this sequence.
    let run = run_host_with(&HostOptions {
        env: RUN_ENV,
        dispense: "destination",
        calls: &[
            (
                DESTINATION_CONFIGURE,
                destination::configure::Request {
                    config: config(&[("streamName", "orders")]),
                }
                .encode_to_vec(),
            ),
            (
                DESTINATION_TEARDOWN,
                destination::teardown::Request {}.encode_to_vec(),
            ),
        ],
        // Conduit sets no deadline on these calls.
        call_timeout_ms: Some(0),
        ..HostOptions::new(&plugin())
    });
    run.assert_ok();
    assert_eq!(run.negotiated_version, 2);
    assert_eq!(run.calls.len(), 2);
    assert_graceful_exit(&run);
}

/// Conduit killed with SIGKILL (no Shutdown, no Teardown): the plugin must not outlive it, or it
/// keeps its Kinesis subscriptions and blocks the restarted pipeline's (issue #13).
#[test]
fn plugin_exits_by_itself_soon_after_its_host_is_killed() {
    use support::goplugin_host::start_held_host;
    let mut held = start_held_host(
        &plugin(),
        RUN_ENV,
        "source",
        &[(SPECIFY, specifier::specify::Request {}.encode_to_vec())],
    );
    let pid = held.plugin_pid;
    assert!(!support::process_exited(pid), "the plugin is not running");
    held.host.kill().expect("SIGKILL goplugin-host");
    held.host.wait().expect("reap goplugin-host");
    let exited = support::wait_for_exit(pid, std::time::Duration::from_secs(2));
    assert!(
        exited.is_some(),
        "plugin {pid} still runs 2 s after its host was killed"
    );
}
