//! A minimal Conduit connector served by `conduit-plugin-runtime`, meant to be copied.
//!
//! * The **source** emits `count` numbered records (`key` = the number, `payload.after` =
//!   `prefix` followed by the number), then waits. Its position is the record's number, so a
//!   pipeline that restarts continues after the last record Conduit acknowledged.
//! * The **destination** logs each record's position and key at info level and acks it. A
//!   record whose payload equals `failOn` is nacked instead, to show per-record errors
//!   (Conduit hands nacked records to the pipeline's dead-letter queue).
//!
//! Build it, copy the binary into Conduit's connectors directory and reference it in a
//! pipeline as `standalone:example`:
//!
//! ```yaml
//! version: "2.2"
//! pipelines:
//!   - id: example
//!     connectors:
//!       - id: numbers
//!         type: source
//!         plugin: standalone:example
//!         settings:
//!           count: "100"
//!       - id: log
//!         type: destination
//!         plugin: standalone:example
//! ```

mod destination;
mod source;

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use conduit_plugin_runtime::proto::config::v1::{parameter, validation, Parameter, Validation};
use conduit_plugin_runtime::proto::connector::v2::Specification;
use conduit_plugin_runtime::{serve, BoxError, Plugin, RawConfig};

/// The name pipelines use (`standalone:example`); Conduit keys plugins by name and version.
const NAME: &str = "example";

/// Source parameters.
const COUNT: &str = "count";
const PREFIX: &str = "prefix";
/// Destination parameter.
const FAIL_ON: &str = "failOn";

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(serve(plugin()));
    // Do not let leftover tasks delay the exit go-plugin waits for after Shutdown.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Before the handshake (e.g. started by hand): say why, on stderr.
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// What the runtime serves: the specification and one fresh connector of each kind per
/// process (Conduit starts a process per connector).
fn plugin() -> Plugin {
    Plugin {
        specification: specification(),
        new_source: Box::new(|_env| Box::new(source::MemorySource::default())),
        new_destination: Box::new(|_env| Box::new(destination::LogDestination::default())),
    }
}

/// What `Specify` answers. Conduit shows the parameters to users (UI, `connector-plugins
/// describe`); validating the settings is still up to `configure`.
fn specification() -> Specification {
    Specification {
        name: NAME.into(),
        summary: "Example connector: an in-memory source of numbered records and a destination \
                  that logs them"
            .into(),
        description: "Shows how to write a Conduit connector in Rust with \
                      conduit-plugin-runtime. The source emits `count` records and resumes \
                      after the last acknowledged one; the destination logs every record and \
                      nacks those whose payload equals `failOn`."
            .into(),
        // Conduit wants a semantic version with a `v` prefix.
        version: format!("v{}", env!("CARGO_PKG_VERSION")),
        author: "conduit-connector-kinesis developers".into(),
        source_params: HashMap::from([
            (
                COUNT.to_string(),
                param(
                    parameter::Type::Int,
                    "10",
                    "How many records to emit in total (numbered 1 to count); 0 emits none.",
                    &[
                        (validation::Type::GreaterThan, "-1"),
                        (validation::Type::LessThan, "1000000001"),
                    ],
                ),
            ),
            (
                PREFIX.to_string(),
                param(
                    parameter::Type::String,
                    "record-",
                    "Text put before the number in each record's payload.",
                    &[],
                ),
            ),
        ]),
        destination_params: HashMap::from([(
            FAIL_ON.to_string(),
            param(
                parameter::Type::String,
                "",
                "Records whose payload equals this text are nacked instead of acked (empty: \
                 every record is acked).",
                &[],
            ),
        )]),
    }
}

fn param(
    kind: parameter::Type,
    default: &str,
    description: &str,
    validations: &[(validation::Type, &str)],
) -> Parameter {
    Parameter {
        default: default.into(),
        description: description.into(),
        r#type: kind as i32,
        validations: validations
            .iter()
            .map(|(kind, value)| Validation {
                r#type: *kind as i32,
                value: value.to_string(),
            })
            .collect(),
    }
}

/// The settings of one side with the specification's defaults filled in. Like the Go SDK,
/// unknown keys are rejected so that a typo does not go unnoticed.
fn settings(
    config: &RawConfig,
    params: &HashMap<String, Parameter>,
) -> Result<HashMap<String, String>, BoxError> {
    if let Some(unknown) = config.keys().find(|key| !params.contains_key(*key)) {
        return Err(format!("unrecognized parameter {unknown:?}").into());
    }
    Ok(params
        .iter()
        .map(|(name, param)| {
            let value = config
                .get(name)
                .filter(|value| !value.is_empty())
                .unwrap_or(&param.default);
            (name.clone(), value.clone())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specification_describes_every_parameter() {
        let spec = specification();
        assert_eq!(spec.name, NAME);
        assert!(spec.version.starts_with('v'));
        for param in spec
            .source_params
            .values()
            .chain(spec.destination_params.values())
        {
            assert!(!param.description.is_empty());
            assert_ne!(param.r#type, parameter::Type::Unspecified as i32);
        }
    }

    #[test]
    fn settings_apply_defaults_and_reject_unknown_keys() {
        let params = specification().source_params;
        let config = RawConfig::from([(COUNT.to_string(), "3".to_string())]);
        let settings = settings(&config, &params).unwrap();
        assert_eq!(settings[COUNT], "3");
        assert_eq!(settings[PREFIX], "record-");

        let config = RawConfig::from([("cuont".to_string(), "3".to_string())]);
        let error = super::settings(&config, &params).unwrap_err().to_string();
        assert_eq!(error, r#"unrecognized parameter "cuont""#);
    }
}
