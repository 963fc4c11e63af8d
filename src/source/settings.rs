//! Source settings, parsed from validated parameters without I/O.

use std::time::Duration;

use crate::config::{ConfigError, Values};
use crate::connection::Connection;
use crate::spec::*;

/// Where the first start reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InitialPosition {
    TrimHorizon,
    Latest,
    /// Milliseconds since the epoch.
    AtTimestamp(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadMode {
    /// Enhanced fan-out through this consumer.
    FanOut(ConsumerChoice),
    Polling {
        interval: Duration,
        limit: i32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConsumerChoice {
    /// Use (or register) a consumer of this name; `None` derives it from the connector ID.
    Named(Option<String>),
    Arn(String),
}

#[derive(Debug, Clone)]
pub(crate) struct SourceSettings {
    pub connection: Connection,
    pub initial: InitialPosition,
    pub mode: ReadMode,
    pub deregister_on_delete: bool,
    pub discovery_interval: Duration,
    /// Zero: no lag lines.
    pub lag_log_interval: Duration,
    pub renew_after: Duration,
    pub idle_timeout: Duration,
    pub deaggregate: bool,
    pub unwrap_opencdc: bool,
    pub buffer_size: usize,
    pub batch_size: usize,
    pub batch_delay: Duration,
    /// `coordination.*`: whether instances share the shards through a lease table.
    pub coordination: super::lease::CoordinationSettings,
}

/// Kinesis ends every subscription after five minutes.
const SUBSCRIPTION_LIFETIME: Duration = Duration::from_secs(300);

fn duration(values: &Values, name: &str, errors: &mut Vec<ConfigError>) -> Duration {
    match values.duration(name).map(|d| d.to_std()) {
        Some(Some(d)) => d,
        Some(None) => {
            errors.push(ConfigError::invalid(name, "must not be negative"));
            Duration::ZERO
        }
        None => Duration::ZERO,
    }
}

/// Parses an RFC 3339 timestamp into epoch milliseconds.
pub(crate) fn parse_rfc3339_millis(text: &str) -> Option<i64> {
    let parsed =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some(epoch_millis(parsed))
}

/// Now by this host's wall clock, in epoch milliseconds (the unit of `AT_TIMESTAMP` starts).
pub(crate) fn now_epoch_millis() -> i64 {
    epoch_millis(time::OffsetDateTime::now_utc())
}

fn epoch_millis(at: time::OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

impl SourceSettings {
    pub(crate) fn from_values(values: &Values) -> Result<Self, ConfigError> {
        let mut errors = Vec::new();
        let connection = Connection::from_values(values)
            .map_err(|e| errors.push(e))
            .ok();

        let latest_flag = values.bool(START_FROM_LATEST).unwrap_or(false);
        let start = values.str(START_POSITION).unwrap_or("trim_horizon");
        let initial = match (latest_flag, start) {
            (true, "trim_horizon" | "latest") | (false, "latest") => InitialPosition::Latest,
            (true, other) => {
                errors.push(ConfigError::invalid(
                    START_FROM_LATEST,
                    format!("is true but startPosition is {other:?}; set only one of them"),
                ));
                InitialPosition::Latest
            }
            (false, "at_timestamp") => match values.str(START_TIMESTAMP) {
                Some(text) => match parse_rfc3339_millis(text) {
                    Some(ms) => InitialPosition::AtTimestamp(ms),
                    None => {
                        errors.push(ConfigError::invalid(
                            START_TIMESTAMP,
                            format!(
                                "{text:?} is not an RFC 3339 time such as 2026-11-01T00:00:00Z"
                            ),
                        ));
                        InitialPosition::TrimHorizon
                    }
                },
                None => {
                    errors.push(ConfigError::invalid(
                        START_TIMESTAMP,
                        "is required when startPosition is at_timestamp",
                    ));
                    InitialPosition::TrimHorizon
                }
            },
            _ => InitialPosition::TrimHorizon,
        };
        if values.str(START_TIMESTAMP).is_some()
            && !matches!(initial, InitialPosition::AtTimestamp(_))
        {
            errors.push(ConfigError::invalid(
                START_TIMESTAMP,
                "is only used with startPosition=at_timestamp",
            ));
        }

        let mode = match values.str(READ_MODE).unwrap_or("fanout") {
            "polling" => {
                let interval = duration(values, POLLING_INTERVAL, &mut errors);
                if interval < Duration::from_millis(200) {
                    errors.push(ConfigError::invalid(
                        POLLING_INTERVAL,
                        "must be at least 200ms (Kinesis allows 5 GetRecords calls per second per shard)",
                    ));
                }
                ReadMode::Polling {
                    interval,
                    limit: values.int(POLLING_LIMIT).unwrap_or(1000) as i32,
                }
            }
            _ => ReadMode::FanOut(
                match (values.str(CONSUMER_ARN), values.str(CONSUMER_NAME)) {
                    (Some(_), Some(_)) => {
                        errors.push(ConfigError::invalid(
                            CONSUMER_NAME,
                            "set only one of consumerName and consumerARN",
                        ));
                        ConsumerChoice::Named(None)
                    }
                    (Some(arn), None) => ConsumerChoice::Arn(arn.to_string()),
                    (None, name) => ConsumerChoice::Named(name.map(str::to_string)),
                },
            ),
        };

        let renew_after = duration(values, SUBSCRIPTION_RENEW_AFTER, &mut errors);
        if renew_after > 2 * SUBSCRIPTION_LIFETIME || renew_after < Duration::from_secs(10) {
            errors.push(ConfigError::invalid(
                SUBSCRIPTION_RENEW_AFTER,
                "must be between 10s and 10m (Kinesis ends subscriptions after 5 minutes itself)",
            ));
        }
        let idle_timeout = duration(values, SUBSCRIPTION_IDLE_TIMEOUT, &mut errors);
        if idle_timeout < Duration::from_secs(2) {
            errors.push(ConfigError::invalid(
                SUBSCRIPTION_IDLE_TIMEOUT,
                "must be at least 2s",
            ));
        }
        let discovery_interval = duration(values, SHARD_DISCOVERY_INTERVAL, &mut errors);
        if discovery_interval < Duration::from_secs(1) {
            errors.push(ConfigError::invalid(
                SHARD_DISCOVERY_INTERVAL,
                "must be at least 1s",
            ));
        }
        let batch_delay = duration(values, SDK_BATCH_DELAY, &mut errors);
        let coordination = super::lease::CoordinationSettings::from_values(values, &mut errors);
        let lag_log_interval = duration(values, LAG_LOG_INTERVAL, &mut errors);

        if let Some(error) = ConfigError::from_many(errors) {
            return Err(error);
        }
        Ok(SourceSettings {
            connection: connection.expect("no errors"),
            initial,
            mode,
            deregister_on_delete: values.bool(CONSUMER_DEREGISTER_ON_DELETE).unwrap_or(true),
            discovery_interval,
            lag_log_interval,
            renew_after,
            idle_timeout,
            deaggregate: values.bool(DEAGGREGATE).unwrap_or(true),
            unwrap_opencdc: values.bool(UNWRAP_OPENCDC).unwrap_or(false),
            buffer_size: values.int(BUFFER_SIZE).unwrap_or(10_000).max(1) as usize,
            batch_size: match values.int(SDK_BATCH_SIZE).unwrap_or(0) {
                0 => 1000,
                n => n as usize,
            },
            batch_delay,
            coordination,
        })
    }
}

/// A consumer name derived from the Conduit connector ID: stable across restarts of the same
/// connector, distinct between connectors.
pub(crate) fn derived_consumer_name(connector_id: Option<&str>) -> String {
    let id = connector_id.unwrap_or("default");
    let cleaned: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut name = format!("conduit-{cleaned}");
    name.truncate(128);
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<SourceSettings, ConfigError> {
        let mut raw: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        raw.entry(STREAM_NAME.into()).or_insert("orders".into());
        let values = crate::config::validate(crate::spec::source_params(), &raw)?;
        SourceSettings::from_values(&values)
    }

    #[test]
    fn defaults() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.initial, InitialPosition::TrimHorizon);
        assert_eq!(s.mode, ReadMode::FanOut(ConsumerChoice::Named(None)));
        assert_eq!(s.renew_after, Duration::from_secs(270));
        assert!(s.deaggregate && !s.unwrap_opencdc);
        assert_eq!(s.batch_size, 1000);
    }

    #[test]
    fn start_positions() {
        assert_eq!(
            settings(&[(START_FROM_LATEST, "true")]).unwrap().initial,
            InitialPosition::Latest
        );
        assert_eq!(
            settings(&[(START_POSITION, "latest")]).unwrap().initial,
            InitialPosition::Latest
        );
        let s = settings(&[
            (START_POSITION, "at_timestamp"),
            (START_TIMESTAMP, "2026-11-01T00:00:01Z"),
        ])
        .unwrap();
        assert_eq!(s.initial, InitialPosition::AtTimestamp(1_793_491_201_000));
        let err = settings(&[(START_POSITION, "at_timestamp")]).unwrap_err();
        assert!(err.to_string().contains("startTimestamp"), "{err}");
        let err = settings(&[
            (START_POSITION, "at_timestamp"),
            (START_TIMESTAMP, "yesterday"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("RFC 3339"), "{err}");
        let err = settings(&[
            (START_FROM_LATEST, "true"),
            (START_POSITION, "at_timestamp"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("startFromLatest"), "{err}");
    }

    #[test]
    fn modes_and_limits() {
        let s = settings(&[(READ_MODE, "polling")]).unwrap();
        assert_eq!(
            s.mode,
            ReadMode::Polling {
                interval: Duration::from_secs(1),
                limit: 1000
            }
        );
        assert!(settings(&[(READ_MODE, "polling"), (POLLING_INTERVAL, "100ms")]).is_err());
        assert!(settings(&[(SUBSCRIPTION_RENEW_AFTER, "11m")]).is_err());
        assert!(settings(&[(SUBSCRIPTION_RENEW_AFTER, "5s")]).is_err());
        assert!(settings(&[(SUBSCRIPTION_RENEW_AFTER, "6m")]).is_ok());
        assert!(settings(&[
            (CONSUMER_NAME, "a"),
            (
                CONSUMER_ARN,
                "arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/c:1"
            )
        ])
        .is_err());
        let s = settings(&[(
            CONSUMER_ARN,
            "arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/c:1",
        )])
        .unwrap();
        assert!(matches!(s.mode, ReadMode::FanOut(ConsumerChoice::Arn(_))));
    }

    #[test]
    fn consumer_names_are_stable_and_valid() {
        assert_eq!(
            derived_consumer_name(Some("pipeline:kinesis")),
            "conduit-pipeline-kinesis"
        );
        assert_eq!(
            derived_consumer_name(Some("pipeline:kinesis")),
            derived_consumer_name(Some("pipeline:kinesis"))
        );
        let long = derived_consumer_name(Some(&"x".repeat(300)));
        assert_eq!(long.len(), 128);
        let re = regex::Regex::new(CONSUMER_NAME_PATTERN).unwrap();
        assert!(re.is_match(&derived_consumer_name(Some("p id/ü"))));
    }
}
