//! The plugin binary, started as Conduit starts it, over its real gRPC interface.

mod support;

use conduit_connector_kinesis::proto::connector::v2::{source, specifier};
use support::plugin::{config, PluginProcess};

#[tokio::test]
async fn specify_then_shutdown_exits_quickly() {
    let plugin = PluginProcess::start(&support::plugin::startup_scan_env()).await;
    let spec = plugin
        .specifier()
        .specify(specifier::specify::Request {})
        .await
        .unwrap()
        .into_inner()
        .specification
        .unwrap();
    assert_eq!(spec.name, "kinesis");
    assert_eq!(spec.version, format!("v{}", env!("CARGO_PKG_VERSION")));
    assert!(spec.source_params.contains_key("streamName"));
    let took = plugin.shutdown().await;
    assert!(took.as_millis() < 1000, "exit took {took:?}");
}

#[tokio::test]
async fn configure_rejects_unknown_key() {
    let plugin = PluginProcess::start_for_run().await;
    let err = plugin
        .source()
        .configure(source::configure::Request {
            config: config(&[("streamName", "orders"), ("aws.regoin", "us-east-1")]),
        })
        .await
        .unwrap_err();
    assert!(
        err.message()
            .contains("unrecognized parameter \"aws.regoin\""),
        "{}",
        err.message()
    );
    plugin
        .source()
        .teardown(source::teardown::Request {})
        .await
        .unwrap();
}
