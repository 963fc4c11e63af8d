//! Destination settings, parsed from validated parameters without I/O.

use std::time::Duration;

use super::aggregate::{DEFAULT_MAX_BYTES, MAX_AGGREGATE_BYTES};
use super::key::KeyStrategy;
use super::retry::RetryPolicy;
use super::template::{RecordTemplate, TemplateError};
use crate::aws::settings::parse_stream_arn;
use crate::aws::signed::Protocol;
use crate::aws::{AwsSettings, StreamRef};
use crate::config::{ConfigError, Values};
use crate::spec::*;

/// Where each record goes.
#[derive(Debug, Clone)]
pub(crate) enum StreamTarget {
    /// One stream for every record.
    Fixed(StreamRef),
    /// A template rendered per record; the result is a stream name, or an ARN when it starts
    /// with `arn:`.
    Template(RecordTemplate),
    /// The record's `opencdc.collection` metadata names the stream.
    Collection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CreateMode {
    OnDemand,
    Provisioned { shards: i32 },
}

#[derive(Debug, Clone)]
pub(crate) struct DestinationSettings {
    pub aws: AwsSettings,
    pub target: StreamTarget,
    pub partition_key: KeyStrategy,
    pub explicit_hash_key: Option<RecordTemplate>,
    /// `None`: missing streams are an error.
    pub auto_create: Option<CreateMode>,
    /// Explicit override of the stream's record size limit, in bytes.
    pub max_record_size: Option<usize>,
    pub concurrency: usize,
    pub strict_ordering: bool,
    /// How PutRecords calls are encoded.
    pub protocol: Protocol,
    pub retry: RetryPolicy,
    pub batch_size: usize,
    pub batch_delay: Duration,
    pub rate_per_second: f64,
    pub rate_burst: i64,
    pub format: String,
    pub format_options: String,
    pub decode_payload_schema: bool,
    pub decode_key_schema: bool,
    /// `aggregation.*`; `None` when off.
    pub aggregation: Option<AggregationSettings>,
}

/// `aggregation.*` when `aggregation.enabled` is true.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AggregationSettings {
    pub max_bytes: usize,
    pub max_records: usize,
    pub max_delay: Duration,
}

fn template(values: &Values, name: &str) -> Result<Option<RecordTemplate>, ConfigError> {
    values
        .str(name)
        .map(|source| {
            RecordTemplate::compile(source).map_err(|e| ConfigError::invalid(name, e.to_string()))
        })
        .transpose()
}

/// A template that may also be written as the Go connector's Go template: a translated one
/// is logged once, with its Handlebars form.
fn go_compatible_template(
    values: &Values,
    name: &str,
) -> Result<Option<RecordTemplate>, ConfigError> {
    let Some(source) = values.str(name) else {
        return Ok(None);
    };
    let template = RecordTemplate::compile_go(source)
        .map_err(|e| ConfigError::invalid(name, e.to_string()))?;
    if let Some(go) = template.translated_from() {
        tracing::info!(
            parameter = name,
            go,
            handlebars = template.source(),
            "{name} is a Go template; it renders as the Handlebars template {:?}, which prints \
             values as the Go connector does",
            template.source()
        );
    }
    Ok(Some(template))
}

fn stream_target(values: &Values) -> Result<StreamTarget, ConfigError> {
    let name = template(values, STREAM_NAME)?;
    let arn = template(values, STREAM_ARN)?;
    match (name, arn) {
        (None, None) => Ok(StreamTarget::Collection),
        (Some(name), None) if !name.is_literal() => Ok(StreamTarget::Template(name)),
        (None, Some(arn)) if !arn.is_literal() => Ok(StreamTarget::Template(arn)),
        (Some(name), Some(arn)) if !name.is_literal() || !arn.is_literal() => {
            Err(ConfigError::invalid(
                STREAM_NAME,
                "set only one of streamName and streamARN when either is a template",
            ))
        }
        // Both fixed: the shared rules (must agree, valid name and ARN) apply.
        _ => {
            let fixed = StreamRef::from_values(values)?;
            check_stream_name(&fixed.name)?;
            Ok(StreamTarget::Fixed(fixed))
        }
    }
}

fn check_stream_name(name: &str) -> Result<(), ConfigError> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            STREAM_NAME,
            format!("{name:?} is not a Kinesis stream name (1 to 128 of a-z, A-Z, 0-9, _ . -)"),
        ))
    }
}

fn duration(values: &Values, name: &str) -> Result<Duration, ConfigError> {
    values
        .duration(name)
        .unwrap_or(crate::config::gosyntax::GoDuration(0))
        .to_std()
        .ok_or_else(|| ConfigError::invalid(name, "must not be negative"))
}

impl DestinationSettings {
    pub(crate) fn from_values(values: &Values) -> Result<Self, ConfigError> {
        let mut errors = Vec::new();
        let target = stream_target(values).map_err(|e| errors.push(e)).ok();
        let arn_region = match &target {
            Some(StreamTarget::Fixed(stream)) => stream.region(),
            _ => None,
        };
        let aws = AwsSettings::from_values(values, arn_region.as_deref())
            .map_err(|e| errors.push(e))
            .ok();

        let partition_key = match (
            go_compatible_template(values, PARTITION_KEY_TEMPLATE),
            values.str(PARTITION_KEY_FIELDS),
        ) {
            (Err(e), _) => {
                errors.push(e);
                None
            }
            (Ok(Some(t)), _) => Some(KeyStrategy::Template(Box::new(t))),
            (Ok(None), Some(fields)) => {
                let fields: Vec<String> = fields
                    .split(',')
                    .map(|f| f.trim().to_string())
                    .filter(|f| !f.is_empty())
                    .collect();
                if fields.is_empty() {
                    errors.push(ConfigError::invalid(
                        PARTITION_KEY_FIELDS,
                        "lists no field names",
                    ));
                }
                Some(KeyStrategy::Fields(fields))
            }
            (Ok(None), None) => Some(KeyStrategy::RecordKey),
        };
        let explicit_hash_key = template(values, EXPLICIT_HASH_KEY_TEMPLATE)
            .map_err(|e| errors.push(e))
            .ok()
            .flatten();

        let auto_create = values.bool(AUTO_CREATE_STREAMS).unwrap_or(false).then(|| {
            match values.str(AUTO_CREATE_MODE) {
                Some("provisioned") => CreateMode::Provisioned {
                    shards: values
                        .int(AUTO_CREATE_SHARD_COUNT)
                        .unwrap_or(1)
                        .clamp(1, i32::MAX as i64) as i32,
                },
                _ => CreateMode::OnDemand,
            }
        });

        let retry = RetryPolicy {
            max_attempts: values
                .int(RETRY_MAX_ATTEMPTS)
                .unwrap_or(10)
                .clamp(1, u32::MAX as i64) as u32,
            initial_backoff: duration(values, RETRY_INITIAL_BACKOFF)
                .map_err(|e| errors.push(e))
                .unwrap_or_default(),
            max_backoff: duration(values, RETRY_MAX_BACKOFF)
                .map_err(|e| errors.push(e))
                .unwrap_or_default(),
        };
        if retry.max_backoff < retry.initial_backoff {
            errors.push(ConfigError::invalid(
                RETRY_MAX_BACKOFF,
                "must not be shorter than retry.initialBackoff",
            ));
        }
        let batch_delay = duration(values, SDK_BATCH_DELAY)
            .map_err(|e| errors.push(e))
            .unwrap_or_default();
        let aggregation_delay = duration(values, AGGREGATION_MAX_DELAY)
            .map_err(|e| errors.push(e))
            .unwrap_or_default();

        if let Some(e) = ConfigError::from_many(errors) {
            return Err(e);
        }
        let batch_size = match values.int(SDK_BATCH_SIZE).unwrap_or(0) {
            0 => MAX_PUT_RECORDS_ENTRIES as usize,
            n => n as usize,
        };
        Ok(DestinationSettings {
            aws: aws.expect("no errors"),
            target: target.expect("no errors"),
            partition_key: partition_key.expect("no errors"),
            explicit_hash_key,
            auto_create,
            max_record_size: values
                .int(MAX_RECORD_SIZE)
                .filter(|&n| n > 0)
                .map(|n| n as usize),
            concurrency: values.int(CONCURRENCY).unwrap_or(4).max(1) as usize,
            strict_ordering: values.bool(STRICT_ORDERING).unwrap_or(true),
            protocol: match values.str(PROTOCOL) {
                Some("json") => Protocol::Json,
                _ => Protocol::Cbor,
            },
            retry,
            batch_size,
            batch_delay,
            rate_per_second: values.float(SDK_RATE_PER_SECOND).unwrap_or(0.0),
            rate_burst: values.int(SDK_RATE_BURST).unwrap_or(0),
            format: values
                .str(SDK_RECORD_FORMAT)
                .unwrap_or("opencdc/json")
                .to_string(),
            format_options: values
                .str(SDK_RECORD_FORMAT_OPTIONS)
                .unwrap_or("")
                .to_string(),
            decode_payload_schema: values.bool(SDK_SCHEMA_EXTRACT_PAYLOAD).unwrap_or(true),
            decode_key_schema: values.bool(SDK_SCHEMA_EXTRACT_KEY).unwrap_or(true),
            aggregation: values.bool(AGGREGATION_ENABLED).unwrap_or(false).then(|| {
                AggregationSettings {
                    max_bytes: values
                        .int(AGGREGATION_MAX_BYTES)
                        .unwrap_or(DEFAULT_MAX_BYTES as i64)
                        .clamp(1, MAX_AGGREGATE_BYTES as i64)
                        as usize,
                    max_records: values.int(AGGREGATION_MAX_RECORDS).unwrap_or(1000).max(1)
                        as usize,
                    max_delay: aggregation_delay,
                }
            }),
        })
    }
}

/// Why no stream could be chosen for a record.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum RouteError {
    #[error("the stream template {0}")]
    Template(TemplateError),
    #[error("the stream template rendered {0:?}, which is not a Kinesis stream ARN")]
    InvalidArn(String),
    #[error(
        "the stream template rendered {0:?}, which is not a Kinesis stream name (1 to 128 of \
         a-z, A-Z, 0-9, _ . -)"
    )]
    InvalidName(String),
    #[error(
        "the record has no opencdc.collection metadata and neither streamName nor streamARN is \
         configured, so there is no stream to write it to"
    )]
    NoCollection,
    #[error("its opencdc.collection {0:?} is not a valid Kinesis stream name")]
    InvalidCollection(String),
}

/// Resolves a rendered stream reference (name or ARN) into a [`StreamRef`].
pub(crate) fn stream_ref_from_rendered(rendered: &str) -> Result<StreamRef, RouteError> {
    let rendered = rendered.trim();
    if rendered.starts_with("arn:") {
        let parsed = parse_stream_arn(rendered)
            .ok_or_else(|| RouteError::InvalidArn(rendered.to_owned()))?;
        return Ok(StreamRef {
            name: parsed.name,
            arn: Some(rendered.to_string()),
        });
    }
    check_stream_name(rendered).map_err(|_| RouteError::InvalidName(rendered.to_owned()))?;
    Ok(StreamRef {
        name: rendered.to_string(),
        arn: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<DestinationSettings, ConfigError> {
        let raw: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let values = crate::config::validate(crate::spec::destination_params(), &raw)?;
        DestinationSettings::from_values(&values)
    }

    #[test]
    fn defaults() {
        let s = settings(&[(STREAM_NAME, "orders")]).unwrap();
        assert!(matches!(s.target, StreamTarget::Fixed(ref r) if r.name == "orders"));
        assert!(matches!(s.partition_key, KeyStrategy::RecordKey));
        assert_eq!(s.batch_size, 500);
        assert_eq!(s.concurrency, 4);
        assert!(s.strict_ordering);
        assert_eq!(s.retry, RetryPolicy::default());
        assert_eq!(s.format, "opencdc/json");
        assert!(s.auto_create.is_none());
        assert!(s.aggregation.is_none());
    }

    #[test]
    fn aggregation_defaults_and_limits() {
        let s = settings(&[(STREAM_NAME, "orders"), (AGGREGATION_ENABLED, "true")]).unwrap();
        assert_eq!(
            s.aggregation,
            Some(AggregationSettings {
                max_bytes: 51_200,
                max_records: 1000,
                max_delay: Duration::ZERO,
            })
        );
        let s = settings(&[
            (STREAM_NAME, "orders"),
            (AGGREGATION_ENABLED, "true"),
            (AGGREGATION_MAX_BYTES, "1048576"),
            (AGGREGATION_MAX_RECORDS, "10"),
            (AGGREGATION_MAX_DELAY, "250ms"),
        ])
        .unwrap();
        let aggregation = s.aggregation.unwrap();
        assert_eq!(aggregation.max_bytes, 1_048_576);
        assert_eq!(aggregation.max_records, 10);
        assert_eq!(aggregation.max_delay, Duration::from_millis(250));
        // Past the 1 MiB record limit, or nothing at all: an error naming the parameter.
        for bad in ["1048577", "0"] {
            let error = settings(&[(STREAM_NAME, "orders"), (AGGREGATION_MAX_BYTES, bad)])
                .unwrap_err()
                .to_string();
            assert!(error.contains(AGGREGATION_MAX_BYTES), "{error}");
        }
        let error = settings(&[(STREAM_NAME, "orders"), (AGGREGATION_MAX_DELAY, "-1s")])
            .unwrap_err()
            .to_string();
        assert!(error.contains(AGGREGATION_MAX_DELAY), "{error}");
    }

    #[test]
    fn routing_modes() {
        assert!(matches!(
            settings(&[]).unwrap().target,
            StreamTarget::Collection
        ));
        let s = settings(&[(
            STREAM_NAME,
            "events-{{lookup Metadata \"opencdc.collection\"}}",
        )])
        .unwrap();
        assert!(matches!(s.target, StreamTarget::Template(_)));
        let err = settings(&[(STREAM_NAME, "bad name!")]).unwrap_err();
        assert!(
            err.to_string().contains("is not a Kinesis stream name"),
            "{err}"
        );
        let err = settings(&[(STREAM_NAME, "{{ .Metadata.table }}")]).unwrap_err();
        assert!(
            err.to_string().contains("streamName") && err.to_string().contains("Handlebars"),
            "{err}"
        );
    }

    #[test]
    fn key_strategies() {
        let s = settings(&[
            (STREAM_NAME, "s"),
            (PARTITION_KEY_TEMPLATE, "{{Key}}"),
            (PARTITION_KEY_FIELDS, "id"),
        ])
        .unwrap();
        assert!(matches!(s.partition_key, KeyStrategy::Template(_)));
        let s = settings(&[(STREAM_NAME, "s"), (PARTITION_KEY_FIELDS, " tenant , id ")]).unwrap();
        assert!(matches!(s.partition_key, KeyStrategy::Fields(ref f) if f == &["tenant", "id"]));
        // The Go connector's Go templates are translated...
        let s = settings(&[(STREAM_NAME, "s"), (PARTITION_KEY_TEMPLATE, "{{ .Key }}")]).unwrap();
        let KeyStrategy::Template(t) = &s.partition_key else {
            panic!("{:?}", s.partition_key)
        };
        assert_eq!(t.source(), "{{go Key}}");
        assert_eq!(t.translated_from(), Some("{{ .Key }}"));
        // ...within the subset; beyond it they are refused with the Handlebars suggestion.
        let err = settings(&[
            (STREAM_NAME, "s"),
            (PARTITION_KEY_TEMPLATE, "{{ .Key | printf \"%s\" }}"),
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("partitionKeyTemplate") && err.to_string().contains("{{Key"),
            "{err}"
        );
        // Other templates still take Handlebars only.
        let err = settings(&[
            (STREAM_NAME, "s"),
            (EXPLICIT_HASH_KEY_TEMPLATE, "{{ .Key }}"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("{{Key}}"), "{err}");
    }

    #[test]
    fn limits_are_checked() {
        assert!(settings(&[(STREAM_NAME, "s"), (SDK_BATCH_SIZE, "501")]).is_err());
        assert_eq!(
            settings(&[(STREAM_NAME, "s"), (SDK_BATCH_SIZE, "100")])
                .unwrap()
                .batch_size,
            100
        );
        let err = settings(&[
            (STREAM_NAME, "s"),
            (RETRY_INITIAL_BACKOFF, "10s"),
            (RETRY_MAX_BACKOFF, "1s"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("retry.maxBackoff"), "{err}");
        assert!(settings(&[(STREAM_NAME, "s"), (CONCURRENCY, "0")]).is_err());
        let s = settings(&[
            (STREAM_NAME, "s"),
            (AUTO_CREATE_STREAMS, "true"),
            (AUTO_CREATE_MODE, "provisioned"),
            (AUTO_CREATE_SHARD_COUNT, "3"),
        ])
        .unwrap();
        assert_eq!(s.auto_create, Some(CreateMode::Provisioned { shards: 3 }));
    }

    #[test]
    fn rendered_stream_references() {
        assert_eq!(stream_ref_from_rendered("orders").unwrap().name, "orders");
        let arn = stream_ref_from_rendered("arn:aws:kinesis:us-east-1:123456789012:stream/orders")
            .unwrap();
        assert_eq!(arn.name, "orders");
        assert!(stream_ref_from_rendered("").is_err());
        assert!(stream_ref_from_rendered("no spaces").is_err());
    }
}
