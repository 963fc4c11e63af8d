//! The example connector (`examples/memory`) under the real hosts: Conduit v0.19.0 loading it
//! from its connectors directory and running pipelines with it, and go-plugin's client
//! asking for its specification. Both hosts come from `test/setup.sh`; without them these
//! tests print `SKIPPED: ...` and pass.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use conduit_plugin_runtime::proto::config::v1::{parameter, validation};
use conduit_plugin_runtime::proto::connector::v2::{destination, source, specifier};
use prost::Message;
use serde_json::Value;
use support::conduit::{file_records, Conduit, Home};
use support::{b64_decode, poll, tool};

/// Plugin scan, Configure and Open.
const START: Duration = Duration::from_secs(60);
/// Records through a pipeline.
const DELIVERY: Duration = Duration::from_secs(60);
/// After the expected records arrived: how long to watch for extra ones.
const SETTLE: Duration = Duration::from_secs(2);
/// The example's file name in `connectors/`; Conduit logs it as `plugin_name`.
const PLUGIN_FILE: &str = "conduit-plugin-example";
const PLUGIN: &str = "standalone:example";

fn conduit() -> Option<std::path::PathBuf> {
    tool("conduit", "Conduit")
}

/// The example source with `settings` → `builtin:file` writing to `out`.
fn source_to_file(id: &str, settings: &[(&str, &str)], out: &Path) -> String {
    format!(
        r#"  - id: {id}
    status: running
    connectors:
      - id: numbers
        type: source
        plugin: {PLUGIN}
        settings:
{settings}
      - id: file
        type: destination
        plugin: builtin:file
        settings:
          path: {out:?}
          # The example's payloads are raw bytes without a schema.
          sdk.schema.extract.payload.enabled: "false"
          sdk.schema.extract.key.enabled: "false"
"#,
        settings = yaml_settings(settings),
    )
}

/// Settings as YAML lines at the indentation of a connector's `settings:`; values are
/// written as JSON strings, which YAML reads as double-quoted scalars.
fn yaml_settings(settings: &[(&str, &str)]) -> String {
    settings
        .iter()
        .map(|(key, value)| format!("          {key}: {}\n", Value::from(*value)))
        .collect::<String>()
        .trim_end()
        .to_string()
}

fn text(value: &Value) -> String {
    String::from_utf8(b64_decode(
        value
            .as_str()
            .unwrap_or_else(|| panic!("not a base64 string: {value}")),
    ))
    .unwrap()
}

/// Waits until `path` holds `count` records, then `SETTLE` longer for extras.
fn wait_for_records(conduit: &Conduit, path: &Path, count: usize) -> Vec<Value> {
    poll(
        &format!("{count} records in {}", path.display()),
        DELIVERY,
        || (file_records(path).len() >= count).then_some(()),
        || conduit.log_tail(),
    );
    std::thread::sleep(SETTLE);
    file_records(path)
}

/// Checks that `records` are the example's records `numbers`, in order, from connector
/// `connector_id`, with payloads `<prefix><number>`.
fn assert_numbered(records: &[Value], numbers: std::ops::RangeInclusive<u64>, prefix: &str) {
    let positions: Vec<String> = records.iter().map(|r| text(&r["position"])).collect();
    let expected: Vec<String> = numbers.map(|n| n.to_string()).collect();
    assert_eq!(positions, expected, "positions in the file");
    for (record, number) in records.iter().zip(&expected) {
        assert_eq!(record["operation"], "create", "{record}");
        assert_eq!(text(&record["key"]), *number, "{record}");
        assert_eq!(
            text(&record["payload"]["after"]),
            format!("{prefix}{number}"),
            "{record}"
        );
        assert!(record["payload"]["before"].is_null(), "{record}");
        assert!(
            record["metadata"]["opencdc.createdAt"].is_string(),
            "{record}"
        );
    }
}

#[test]
fn conduit_loads_and_runs_the_example() {
    let Some(binary) = conduit() else { return };
    const COUNT: u64 = 20;
    let mut home = Home::new(PLUGIN_FILE);
    let out = home.path().join("out.jsonl");
    let dlq = home.path().join("dlq.jsonl");
    let count = COUNT.to_string();
    home.pipeline(
        "pipelines.yaml",
        &format!(
            r#"version: "2.2"
pipelines:
{to_file}  - id: to-example
    status: running
    # Tolerate one nack in ten: the nacked record goes to this file and the pipeline goes on.
    dead-letter-queue:
      plugin: builtin:file
      settings:
        path: {dlq:?}
        sdk.schema.extract.payload.enabled: "false"
        sdk.schema.extract.key.enabled: "false"
      window-size: 10
      window-nack-threshold: 1
    connectors:
      - id: numbers
        type: source
        plugin: {PLUGIN}
        settings:
          count: "10"
      - id: log
        type: destination
        plugin: {PLUGIN}
        settings:
          failOn: "record-7"
"#,
            to_file = source_to_file("to-file", &[("count", &count), ("prefix", "n-")], &out),
        ),
    );
    let conduit = Conduit::start(&binary, &mut home, false);

    // Loaded from the connectors directory, with the specification it gave.
    let plugins = conduit.wait_for("/v1/connectors/plugins", START, |v| {
        v.as_array().is_some_and(|list| {
            list.iter()
                .any(|p| p["name"] == "standalone:example@v0.1.0")
        })
    });
    let example = plugins
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "standalone:example@v0.1.0")
        .unwrap();
    assert_eq!(example["version"], "v0.1.0", "{example}");
    assert_eq!(
        example["sourceParams"]["count"]["type"], "TYPE_INT",
        "{example}"
    );
    assert_eq!(
        example["sourceParams"]["count"]["default"], "10",
        "{example}"
    );
    assert_eq!(
        example["sourceParams"]["count"]["validations"][0],
        serde_json::json!({"type": "TYPE_GREATER_THAN", "value": "-1"}),
        "{example}"
    );
    assert_eq!(example["sourceParams"]["prefix"]["default"], "record-");
    assert_eq!(
        example["destinationParams"]["failOn"]["type"],
        "TYPE_STRING"
    );

    conduit.wait_for_status("to-file", "STATUS_RUNNING", START);
    conduit.wait_for_status("to-example", "STATUS_RUNNING", START);

    // Source → builtin:file: exactly the records, in order, nothing twice.
    let records = wait_for_records(&conduit, &out, COUNT as usize);
    assert_numbered(&records, 1..=COUNT, "n-");
    for record in &records {
        assert_eq!(
            record["metadata"]["conduit.source.connector.id"], "to-file:numbers",
            "{record}"
        );
    }

    // Source → destination: each record logged at info through Conduit's log, the one
    // matching failOn nacked (warn) and handed to the dead-letter queue.
    let ours = |entry: &Value| {
        entry["connector_id"] == "to-example:log" && entry["plugin_name"] == PLUGIN_FILE
    };
    let written = conduit.wait_for_logs("9 'record written' lines", 9, DELIVERY, |e| {
        ours(e) && e["message"] == "record written"
    });
    let positions: Vec<&str> = written
        .iter()
        .map(|e| e["position"].as_str().unwrap())
        .collect();
    assert_eq!(positions, ["1", "2", "3", "4", "5", "6", "8", "9", "10"]);
    for entry in &written {
        assert_eq!(entry["level"], "info", "{entry}");
        assert_eq!(entry["key"], entry["position"], "{entry}");
        assert_eq!(entry["component"], "plugin.standalone", "{entry}");
    }
    let rejected = conduit.wait_for_logs("the nack's warning", 1, DELIVERY, |e| {
        ours(e) && e["message"] == "record rejected: its payload matches failOn"
    });
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["level"], "warn");
    assert_eq!(rejected[0]["position"], "7");

    let dead = wait_for_records(&conduit, &dlq, 1);
    assert_eq!(dead.len(), 1, "{dead:?}");
    let dead = &dead[0];
    assert_eq!(
        dead["metadata"]["conduit.dlq.nack.error"], r#"payload "record-7" matches failOn"#,
        "{dead}"
    );
    assert_eq!(text(&dead["payload"]["after"]["position"]), "7", "{dead}");
    assert_eq!(
        text(&dead["payload"]["after"]["payload"]["after"]),
        "record-7"
    );

    // One nack is within the window: nothing stopped.
    conduit.wait_for_status("to-example", "STATUS_RUNNING", START);
    conduit.wait_for_status("to-file", "STATUS_RUNNING", START);
    let status = conduit.terminate(Duration::from_secs(30));
    assert!(status.success(), "conduit exited with {status}");
}

#[test]
fn conduit_resumes_the_example_after_the_last_acked_position() {
    let Some(binary) = conduit() else { return };
    let mut home = Home::new(PLUGIN_FILE);
    let out = home.path().join("out.jsonl");
    let pipeline = |count: &str| {
        format!(
            "version: \"2.2\"\npipelines:\n{}",
            source_to_file("resume", &[("count", count)], &out)
        )
    };

    home.pipeline("resume.yaml", &pipeline("5"));
    let first = Conduit::start(&binary, &mut home, true);
    first.wait_for_status("resume", "STATUS_RUNNING", START);
    assert_numbered(&wait_for_records(&first, &out, 5), 1..=5, "record-");
    // A graceful stop: Conduit drains the pipeline and stores the last acked position.
    assert!(first.terminate(Duration::from_secs(30)).success());

    // Five more records allowed: the source continues after record 5 instead of
    // starting over (the file destination appends).
    home.pipeline("resume.yaml", &pipeline("10"));
    let second = Conduit::start(&binary, &mut home, true);
    second.wait_for_status("resume", "STATUS_RUNNING", START);
    let opened = second.wait_for_logs("the source opening", 1, START, |e| {
        e["connector_id"] == "resume:numbers" && e["message"] == "source opened"
    });
    assert_eq!(opened[0]["resume_after"], 5, "{:?}", opened[0]);
    assert_numbered(&wait_for_records(&second, &out, 10), 1..=10, "record-");
    assert!(second.terminate(Duration::from_secs(30)).success());
}

const SPECIFY: &str = "/connector.v2.SpecifierPlugin/Specify";
const SOURCE_CONFIGURE: &str = "/connector.v2.SourcePlugin/Configure";
const SOURCE_OPEN: &str = "/connector.v2.SourcePlugin/Open";
const SOURCE_TEARDOWN: &str = "/connector.v2.SourcePlugin/Teardown";
const DESTINATION_CONFIGURE: &str = "/connector.v2.DestinationPlugin/Configure";

fn config(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn goplugin_host_gets_the_example_specification() {
    let Some(host) = tool("goplugin-host", "goplugin-host") else {
        return;
    };
    let calls = [
        (SPECIFY, specifier::specify::Request {}.encode_to_vec()),
        (
            SOURCE_CONFIGURE,
            source::configure::Request {
                config: config(&[("count", "many")]),
            }
            .encode_to_vec(),
        ),
        (
            DESTINATION_CONFIGURE,
            destination::configure::Request {
                config: config(&[("failOnn", "x")]),
            }
            .encode_to_vec(),
        ),
        (
            SOURCE_CONFIGURE,
            source::configure::Request {
                config: config(&[("count", "3")]),
            }
            .encode_to_vec(),
        ),
        (
            SOURCE_OPEN,
            source::open::Request {
                position: b"not-a-number".to_vec(),
            }
            .encode_to_vec(),
        ),
        (
            SOURCE_TEARDOWN,
            source::teardown::Request {}.encode_to_vec(),
        ),
    ];
    let run = support::goplugin_host::run(
        &host,
        &support::example_binary(),
        support::goplugin_host::RUN_ENV,
        &calls,
    );
    assert!(run.error.is_empty(), "{run:#?}");
    assert_eq!(run.negotiated_version, 2, "{run:#?}");
    assert!(
        run.exited && !run.force_killed,
        "not a graceful exit: {run:#?}"
    );
    let outcome: Vec<(&str, &str, &str)> = run
        .calls
        .iter()
        .map(|c| (c.method.as_str(), c.code.as_str(), c.error.as_str()))
        .collect();
    assert_eq!(
        outcome,
        [
            (SPECIFY, "OK", ""),
            (
                SOURCE_CONFIGURE,
                "InvalidArgument",
                r#"count: "many" is not a whole number"#
            ),
            (
                DESTINATION_CONFIGURE,
                "InvalidArgument",
                r#"unrecognized parameter "failOnn""#
            ),
            (SOURCE_CONFIGURE, "OK", ""),
            (
                SOURCE_OPEN,
                "Internal",
                r#"position "not-a-number" was not written by this source (expected a record number)"#
            ),
            (SOURCE_TEARDOWN, "OK", ""),
        ],
        "{run:#?}"
    );

    let spec = specifier::specify::Response::decode(run.calls[0].response.as_slice())
        .unwrap()
        .specification
        .expect("a specification");
    assert_eq!(spec.name, "example");
    assert_eq!(spec.version, format!("v{}", env!("CARGO_PKG_VERSION")));
    assert!(
        spec.summary.contains("in-memory source"),
        "{}",
        spec.summary
    );
    assert!(!spec.description.is_empty());
    let names = |params: &std::collections::HashMap<String, _>| {
        params
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<String>>()
    };
    assert_eq!(
        names(&spec.source_params),
        ["count", "prefix"].map(String::from).into()
    );
    assert_eq!(
        names(&spec.destination_params),
        ["failOn"].map(String::from).into()
    );
    let count = &spec.source_params["count"];
    assert_eq!(count.r#type, parameter::Type::Int as i32);
    assert_eq!(count.default, "10");
    let validations: BTreeMap<i32, &str> = count
        .validations
        .iter()
        .map(|v| (v.r#type, v.value.as_str()))
        .collect();
    assert_eq!(
        validations,
        BTreeMap::from([
            (validation::Type::GreaterThan as i32, "-1"),
            (validation::Type::LessThan as i32, "1000000001"),
        ])
    );
    for param in spec
        .source_params
        .values()
        .chain(spec.destination_params.values())
    {
        assert!(!param.description.is_empty(), "{param:?}");
    }
}
