//! The kinesis connector's parameters and specification, declared once. Everything else that
//! lists parameters (Specify, validation, `connector.yaml`, the README tables) derives from here.

use std::collections::HashMap;

use serde::Serialize;

use crate::config::{Param, ParamType, Validation};
use crate::proto::config::v1 as pb;
use crate::proto::connector::v2::Specification;

mod destination;
mod source;

pub(crate) use destination::*;
pub(crate) use source::*;

pub(crate) const NAME: &str = "kinesis";
pub(crate) const SUMMARY: &str = "Amazon Kinesis Data Streams source and destination.";
pub(crate) const DESCRIPTION: &str = "Reads a Kinesis data stream through enhanced fan-out with a position per \
shard that survives restarts and resharding, and writes records with PutRecords within Kinesis limits, \
retrying only failed entries. Accepts the parameter names of conduitio-labs/conduit-connector-kinesis.";
pub(crate) const AUTHOR: &str = "conduit-connector-kinesis developers";

pub fn version() -> String {
    format!("v{}", env!("CARGO_PKG_VERSION"))
}

// Parameter names shared by both sides. The first six are the Go connector's names.
pub(crate) const AWS_REGION: &str = "aws.region";
pub(crate) const AWS_ACCESS_KEY_ID: &str = "aws.accessKeyId";
pub(crate) const AWS_SECRET_ACCESS_KEY: &str = "aws.secretAccessKey";
pub(crate) const AWS_URL: &str = "aws.url";
pub(crate) const STREAM_NAME: &str = "streamName";
pub(crate) const STREAM_ARN: &str = "streamARN";
pub(crate) const AWS_SESSION_TOKEN: &str = "aws.sessionToken";
pub(crate) const AWS_PROFILE: &str = "aws.profile";
pub(crate) const AWS_ASSUME_ROLE_ARN: &str = "aws.assumeRoleArn";
pub(crate) const AWS_ASSUME_ROLE_EXTERNAL_ID: &str = "aws.assumeRoleExternalId";
pub(crate) const AWS_ASSUME_ROLE_SESSION_NAME: &str = "aws.assumeRoleSessionName";

/// Kinesis stream names: 1 to 128 of these characters.
pub(crate) const STREAM_NAME_PATTERN: &str = "^[a-zA-Z0-9_.-]{1,128}$";
pub(crate) const STREAM_ARN_PATTERN: &str =
    "^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:[0-9]{12}:stream/[a-zA-Z0-9_.-]{1,128}$";
pub(crate) const ROLE_ARN_PATTERN: &str =
    "^arn:aws[a-z-]*:iam::[0-9]{12}:role/[a-zA-Z0-9_+=,.@/-]{1,512}$";
pub(crate) const SESSION_NAME_PATTERN: &str = "^[a-zA-Z0-9_+=,.@-]{2,64}$";
pub(crate) const DEFAULT_SESSION_NAME: &str = "conduit-connector-kinesis";

fn aws_params() -> Vec<Param> {
    vec![
        Param::new(
            AWS_REGION,
            ParamType::String,
            "AWS region of the stream, e.g. us-east-1. When empty, the region comes from streamARN, \
             then AWS_REGION / AWS_DEFAULT_REGION, then the selected profile.",
        ),
        Param::new(
            AWS_ACCESS_KEY_ID,
            ParamType::String,
            "Static access key ID (with aws.secretAccessKey). When empty, credentials come from \
             aws.profile or the default AWS credential chain (environment, shared files, web identity, \
             container or instance role).",
        ),
        Param::new(
            AWS_SECRET_ACCESS_KEY,
            ParamType::String,
            "Static secret access key, required together with aws.accessKeyId. Never logged.",
        )
        .secret(),
        Param::new(
            AWS_SESSION_TOKEN,
            ParamType::String,
            "Session token for temporary static credentials (with aws.accessKeyId). Never logged.",
        )
        .secret(),
        Param::new(
            AWS_PROFILE,
            ParamType::String,
            "Named profile from the shared AWS config and credentials files; used for credentials and \
             region unless static keys or aws.region are set.",
        ),
        Param::new(
            AWS_ASSUME_ROLE_ARN,
            ParamType::String,
            "IAM role to assume with STS, using the credentials resolved above as the source identity.",
        )
        .validations(&[Validation::Regex(ROLE_ARN_PATTERN)]),
        Param::new(
            AWS_ASSUME_ROLE_EXTERNAL_ID,
            ParamType::String,
            "External ID passed to STS when assuming aws.assumeRoleArn.",
        ),
        Param::new(
            AWS_ASSUME_ROLE_SESSION_NAME,
            ParamType::String,
            "Session name used when assuming aws.assumeRoleArn.",
        )
        .default(DEFAULT_SESSION_NAME)
        .validations(&[Validation::Regex(SESSION_NAME_PATTERN)]),
        Param::new(
            AWS_URL,
            ParamType::String,
            "Endpoint override for Kinesis, e.g. http://127.0.0.1:4567 for a local Kinesis-compatible \
             server or a VPC endpoint URL. Empty uses the regional AWS endpoint.",
        )
        .validations(&[Validation::Regex("^https?://[^\\s]+$")]),
    ]
}

fn stream_params() -> Vec<Param> {
    vec![
        Param::new(
            STREAM_NAME,
            ParamType::String,
            "Name of the Kinesis stream. Either streamName or streamARN is required; when both are set \
             they must name the same stream.",
        )
        .validations(&[Validation::Regex(STREAM_NAME_PATTERN)]),
        Param::new(
            STREAM_ARN,
            ParamType::String,
            "ARN of the Kinesis stream, e.g. arn:aws:kinesis:us-east-1:123456789012:stream/orders. \
             Its region is used when aws.region is empty.",
        )
        .validations(&[Validation::Regex(STREAM_ARN_PATTERN)]),
    ]
}

pub fn source_params() -> &'static [Param] {
    &SOURCE_PARAMS
}

pub fn destination_params() -> &'static [Param] {
    &DESTINATION_PARAMS
}

fn to_proto(params: &[Param]) -> HashMap<String, pb::Parameter> {
    params
        .iter()
        .map(|p| {
            let validations = p
                .validations
                .iter()
                .map(|v| {
                    let (_, value) = v.yaml();
                    let r#type = match v {
                        Validation::Required => pb::validation::Type::Required,
                        Validation::GreaterThan(_) => pb::validation::Type::GreaterThan,
                        Validation::LessThan(_) => pb::validation::Type::LessThan,
                        Validation::Inclusion(_) => pb::validation::Type::Inclusion,
                        Validation::Exclusion(_) => pb::validation::Type::Exclusion,
                        Validation::Regex(_) => pb::validation::Type::Regex,
                    };
                    pb::Validation {
                        r#type: r#type as i32,
                        value,
                    }
                })
                .collect();
            let r#type = match p.ty {
                ParamType::String => pb::parameter::Type::String,
                ParamType::Int => pb::parameter::Type::Int,
                ParamType::Float => pb::parameter::Type::Float,
                ParamType::Bool => pb::parameter::Type::Bool,
                ParamType::File => pb::parameter::Type::File,
                ParamType::Duration => pb::parameter::Type::Duration,
            };
            (
                p.name.to_string(),
                pb::Parameter {
                    default: p.default.to_string(),
                    description: p.description.to_string(),
                    r#type: r#type as i32,
                    validations,
                },
            )
        })
        .collect()
}

/// The specification Conduit receives from `Specify`.
pub fn specification() -> Specification {
    Specification {
        name: NAME.into(),
        summary: SUMMARY.into(),
        description: DESCRIPTION.into(),
        version: version(),
        author: AUTHOR.into(),
        destination_params: to_proto(destination_params()),
        source_params: to_proto(source_params()),
    }
}

#[derive(Serialize)]
struct YamlDocument {
    version: &'static str,
    specification: YamlSpecification,
}

#[derive(Serialize)]
struct YamlSpecification {
    name: &'static str,
    summary: &'static str,
    description: &'static str,
    version: String,
    author: &'static str,
    source: YamlSide,
    destination: YamlSide,
}

#[derive(Serialize)]
struct YamlSide {
    parameters: Vec<YamlParameter>,
}

#[derive(Serialize)]
struct YamlParameter {
    name: &'static str,
    description: &'static str,
    #[serde(rename = "type")]
    ty: &'static str,
    default: &'static str,
    validations: Vec<YamlValidation>,
}

#[derive(Serialize)]
struct YamlValidation {
    #[serde(rename = "type")]
    ty: &'static str,
    value: String,
}

fn yaml_side(params: &[Param]) -> YamlSide {
    YamlSide {
        parameters: params
            .iter()
            .map(|p| YamlParameter {
                name: p.name,
                description: p.description,
                ty: p.ty.yaml_name(),
                default: p.default,
                validations: p
                    .validations
                    .iter()
                    .map(|v| {
                        let (ty, value) = v.yaml();
                        YamlValidation { ty, value }
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The `connector.yaml` document (format of the Go SDK's `specgen`), as `specs` prints it.
pub fn connector_yaml() -> String {
    let document = YamlDocument {
        version: "1.0",
        specification: YamlSpecification {
            name: NAME,
            summary: SUMMARY,
            description: DESCRIPTION,
            version: version(),
            author: AUTHOR,
            source: yaml_side(source_params()),
            destination: yaml_side(destination_params()),
        },
    };
    serde_yaml::to_string(&document).expect("the specification always serializes")
}

/// A Markdown table of one side's parameters, for the README.
pub fn markdown_table(params: &[Param]) -> String {
    let mut out = String::from("| Name | Type | Default | Description |\n|---|---|---|---|\n");
    for p in params {
        let required = if p.is_required() { " (required)" } else { "" };
        let default = if p.default.is_empty() {
            String::new()
        } else {
            format!("`{}`", p.default)
        };
        let mut description = p.description.replace('|', "\\|");
        for v in p.validations {
            match v {
                Validation::Inclusion(list) => {
                    description.push_str(&format!(" One of: `{}`.", list.join("`, `")))
                }
                Validation::Regex(re) => description.push_str(&format!(" Must match `{re}`.")),
                Validation::GreaterThan(n) => description.push_str(&format!(
                    " Greater than {}.",
                    crate::config::format_number(*n)
                )),
                Validation::LessThan(n) => description
                    .push_str(&format!(" Less than {}.", crate::config::format_number(*n))),
                Validation::Exclusion(list) => {
                    description.push_str(&format!(" Not one of: `{}`.", list.join("`, `")))
                }
                Validation::Required => {}
            }
        }
        out.push_str(&format!(
            "| `{}`{} | {} | {} | {} |\n",
            p.name,
            required,
            p.ty.yaml_name(),
            default,
            description
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_version_meet_conduit_rules() {
        let spec = specification();
        let version_pattern =
            regex::Regex::new(r"^v\d+(\.\d+)?(\.\d+)?(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
                .unwrap();
        assert!(version_pattern.is_match(&spec.version), "{}", spec.version);
        for text in [
            &spec.name,
            &spec.summary,
            &spec.description,
            &spec.version,
            &spec.author,
        ] {
            assert!(!text.is_empty());
            assert_eq!(text.trim(), text.as_str());
        }
        let name_pattern = regex::Regex::new(r"^[a-zA-Z0-9.]+$").unwrap();
        for (name, param) in spec
            .source_params
            .iter()
            .chain(spec.destination_params.iter())
        {
            assert!(name_pattern.is_match(name), "{name}");
            assert!(!param.description.is_empty(), "{name} has no description");
        }
    }

    #[test]
    fn accepts_go_connector_parameter_names() {
        for name in [
            AWS_REGION,
            AWS_ACCESS_KEY_ID,
            AWS_SECRET_ACCESS_KEY,
            AWS_URL,
            STREAM_NAME,
            STREAM_ARN,
        ] {
            assert!(
                source_params().iter().any(|p| p.name == name),
                "source lacks {name}"
            );
            assert!(
                destination_params().iter().any(|p| p.name == name),
                "destination lacks {name}"
            );
        }
    }

    #[test]
    fn parameter_names_are_unique() {
        for params in [source_params(), destination_params()] {
            let mut names: Vec<_> = params.iter().map(|p| p.name).collect();
            names.sort();
            let before = names.len();
            names.dedup();
            assert_eq!(before, names.len());
        }
    }

    #[test]
    fn regexes_compile_and_defaults_validate() {
        for params in [source_params(), destination_params()] {
            for p in params {
                for v in p.validations {
                    if let Validation::Regex(re) = v {
                        regex::Regex::new(re).unwrap_or_else(|e| panic!("{}: {e}", p.name));
                        // RE2 has no look-around or backreferences; keep patterns to the common subset.
                        assert!(
                            !re.contains("(?=") && !re.contains("(?!") && !re.contains("(?<"),
                            "{re}"
                        );
                    }
                }
            }
            let empty = HashMap::new();
            // Defaults alone must pass every parameter's own checks.
            for p in params {
                if !p.default.is_empty() {
                    let values =
                        crate::config::validate(Box::leak(vec![*p].into_boxed_slice()), &empty);
                    assert!(values.is_ok(), "default of {} fails: {values:?}", p.name);
                }
            }
        }
    }

    #[test]
    fn yaml_lists_every_parameter_with_its_type() {
        let yaml: serde_yaml::Value = serde_yaml::from_str(&connector_yaml()).unwrap();
        assert_eq!(yaml["version"], "1.0");
        assert_eq!(yaml["specification"]["name"], NAME);
        let params = yaml["specification"]["source"]["parameters"]
            .as_sequence()
            .unwrap();
        assert_eq!(params.len(), source_params().len());
        let arn = params.iter().find(|p| p["name"] == STREAM_ARN).unwrap();
        assert_eq!(arn["type"], "string");
        assert_eq!(arn["validations"][0]["type"], "regex");
    }
}
