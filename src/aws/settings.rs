//! AWS settings shared by both sides, parsed from validated parameters without any I/O.

use std::fmt;

use crate::config::{ConfigError, Values};
use crate::spec::*;

/// A secret string: its value never appears in `Debug` or `Display` output.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StaticKeys {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AssumeRole {
    pub role_arn: String,
    pub external_id: Option<String>,
    pub session_name: String,
}

/// Where requests go and with which identity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct AwsSettings {
    /// Explicit region; `None` defers to the environment and profile.
    pub region: Option<String>,
    pub static_keys: Option<StaticKeys>,
    pub profile: Option<String>,
    pub assume_role: Option<AssumeRole>,
    pub endpoint_url: Option<String>,
}

/// The stream a connector is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamRef {
    pub name: String,
    pub arn: Option<String>,
}

impl fmt::Display for StreamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.arn {
            Some(arn) => write!(f, "{arn}"),
            None => write!(f, "{}", self.name),
        }
    }
}

/// Parts of a Kinesis stream ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamArn {
    pub region: String,
    pub account: String,
    pub name: String,
}

pub(crate) fn parse_stream_arn(arn: &str) -> Option<StreamArn> {
    let mut parts = arn.splitn(6, ':');
    let (
        Some("arn"),
        Some(_partition),
        Some("kinesis"),
        Some(region),
        Some(account),
        Some(resource),
    ) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    )
    else {
        return None;
    };
    let name = resource.strip_prefix("stream/")?;
    if region.is_empty() || account.is_empty() || name.is_empty() || name.contains('/') {
        return None;
    }
    Some(StreamArn {
        region: region.into(),
        account: account.into(),
        name: name.into(),
    })
}

impl AwsSettings {
    /// Reads the `aws.*` parameters, checking the rules that span several of them.
    /// `stream_region` is the region named by streamARN, if any.
    pub(crate) fn from_values(
        values: &Values,
        stream_region: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let mut errors = Vec::new();
        let region = match (values.str(AWS_REGION), stream_region) {
            (Some(region), Some(arn_region)) if region != arn_region => {
                errors.push(ConfigError::invalid(
                    AWS_REGION,
                    format!(
                        "is {region:?} but streamARN names region {arn_region:?}; set aws.region to \
                         {arn_region:?} or leave it empty"
                    ),
                ));
                None
            }
            (Some(region), _) => Some(region.to_string()),
            (None, arn_region) => arn_region.map(str::to_string),
        };

        let static_keys = match (
            values.str(AWS_ACCESS_KEY_ID),
            values.str(AWS_SECRET_ACCESS_KEY),
            values.str(AWS_SESSION_TOKEN),
        ) {
            (Some(id), Some(secret), token) => Some(StaticKeys {
                access_key_id: id.to_string(),
                secret_access_key: Secret::new(secret),
                session_token: token.map(Secret::new),
            }),
            (Some(_), None, _) => {
                errors.push(ConfigError::invalid(
                    AWS_SECRET_ACCESS_KEY,
                    "is required when aws.accessKeyId is set (or remove aws.accessKeyId to use the \
                     default credential chain)",
                ));
                None
            }
            (None, Some(_), _) => {
                errors.push(ConfigError::invalid(
                    AWS_ACCESS_KEY_ID,
                    "is required when aws.secretAccessKey is set",
                ));
                None
            }
            (None, None, Some(_)) => {
                errors.push(ConfigError::invalid(
                    AWS_SESSION_TOKEN,
                    "needs aws.accessKeyId and aws.secretAccessKey (a session token belongs to static \
                     temporary credentials)",
                ));
                None
            }
            (None, None, None) => None,
        };

        let assume_role = match values.str(AWS_ASSUME_ROLE_ARN) {
            Some(arn) => Some(AssumeRole {
                role_arn: arn.to_string(),
                external_id: values.str(AWS_ASSUME_ROLE_EXTERNAL_ID).map(str::to_string),
                session_name: values
                    .str(AWS_ASSUME_ROLE_SESSION_NAME)
                    .unwrap_or(DEFAULT_SESSION_NAME)
                    .to_string(),
            }),
            None => {
                if values.str(AWS_ASSUME_ROLE_EXTERNAL_ID).is_some() {
                    errors.push(ConfigError::invalid(
                        AWS_ASSUME_ROLE_EXTERNAL_ID,
                        "is only used with aws.assumeRoleArn, which is empty",
                    ));
                }
                None
            }
        };

        match ConfigError::from_many(errors) {
            Some(error) => Err(error),
            None => Ok(AwsSettings {
                region,
                static_keys,
                profile: values.str(AWS_PROFILE).map(str::to_string),
                assume_role,
                endpoint_url: values
                    .str(AWS_URL)
                    .map(|u| u.trim_end_matches('/').to_string()),
            }),
        }
    }
}

impl StreamRef {
    /// Reads streamName / streamARN: at least one, and they must agree.
    pub(crate) fn from_values(values: &Values) -> Result<Self, ConfigError> {
        let name = values.str(STREAM_NAME);
        let arn = values.str(STREAM_ARN);
        match (name, arn) {
            (None, None) => Err(ConfigError::invalid(
                STREAM_NAME,
                "either streamName or streamARN is required: name the Kinesis stream to use",
            )),
            (name, Some(arn)) => {
                let parsed = parse_stream_arn(arn).ok_or_else(|| {
                    ConfigError::invalid(
                        STREAM_ARN,
                        format!("{arn:?} is not a Kinesis stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)"),
                    )
                })?;
                if let Some(name) = name {
                    if name != parsed.name {
                        return Err(ConfigError::invalid(
                            STREAM_NAME,
                            format!(
                                "is {name:?} but streamARN names the stream {:?}; set only one of them, \
                                 or make them agree",
                                parsed.name
                            ),
                        ));
                    }
                }
                Ok(StreamRef {
                    name: parsed.name,
                    arn: Some(arn.to_string()),
                })
            }
            (Some(name), None) => Ok(StreamRef {
                name: name.to_string(),
                arn: None,
            }),
        }
    }

    pub(crate) fn region(&self) -> Option<String> {
        self.arn
            .as_deref()
            .and_then(parse_stream_arn)
            .map(|a| a.region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn values(pairs: &[(&str, &str)]) -> Result<Values, ConfigError> {
        let raw: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        crate::config::validate(crate::spec::source_params(), &raw)
    }

    const ARN: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/orders";

    #[test]
    fn parses_arns() {
        let arn = parse_stream_arn(ARN).unwrap();
        assert_eq!(arn.region, "eu-west-1");
        assert_eq!(arn.name, "orders");
        assert_eq!(arn.account, "123456789012");
        assert!(parse_stream_arn("arn:aws:kinesis:eu-west-1:123456789012:orders").is_none());
        assert!(parse_stream_arn("arn:aws:s3:::bucket").is_none());
    }

    #[test]
    fn stream_name_or_arn_required_and_consistent() {
        let err = StreamRef::from_values(&values(&[]).unwrap()).unwrap_err();
        assert!(
            err.to_string()
                .contains("either streamName or streamARN is required"),
            "{err}"
        );

        let by_name = StreamRef::from_values(&values(&[(STREAM_NAME, "orders")]).unwrap()).unwrap();
        assert_eq!(by_name.name, "orders");
        assert_eq!(by_name.region(), None);

        let both =
            StreamRef::from_values(&values(&[(STREAM_NAME, "orders"), (STREAM_ARN, ARN)]).unwrap())
                .unwrap();
        assert_eq!(both.arn.as_deref(), Some(ARN));
        assert_eq!(both.region().as_deref(), Some("eu-west-1"));

        let err = StreamRef::from_values(
            &values(&[(STREAM_NAME, "payments"), (STREAM_ARN, ARN)]).unwrap(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("\"payments\" but streamARN names the stream \"orders\""),
            "{err}"
        );
    }

    #[test]
    fn bad_arn_is_rejected_by_the_spec_pattern() {
        let err = values(&[(STREAM_ARN, "arn:aws:kinesis:eu-west-1:1:stream/x")]).unwrap_err();
        assert!(
            err.to_string().starts_with("parameter \"streamARN\""),
            "{err}"
        );
    }

    #[test]
    fn region_from_parameter_or_arn() {
        let v = values(&[(STREAM_ARN, ARN)]).unwrap();
        let s = AwsSettings::from_values(&v, Some("eu-west-1")).unwrap();
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
        let v = values(&[(AWS_REGION, "us-east-1"), (STREAM_ARN, ARN)]).unwrap();
        let err = AwsSettings::from_values(&v, Some("eu-west-1")).unwrap_err();
        assert!(
            err.to_string()
                .contains("streamARN names region \"eu-west-1\""),
            "{err}"
        );
    }

    #[test]
    fn static_keys_come_in_pairs() {
        let v = values(&[(AWS_ACCESS_KEY_ID, "AKID")]).unwrap();
        let err = AwsSettings::from_values(&v, None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("parameter \"aws.secretAccessKey\": is required"),
            "{err}"
        );
        let v = values(&[(AWS_SECRET_ACCESS_KEY, "s3cr3t")]).unwrap();
        let err = AwsSettings::from_values(&v, None).unwrap_err();
        assert!(
            err.to_string().starts_with("parameter \"aws.accessKeyId\""),
            "{err}"
        );
        assert!(!err.to_string().contains("s3cr3t"));
        let v = values(&[(AWS_SESSION_TOKEN, "tok")]).unwrap();
        assert!(AwsSettings::from_values(&v, None).is_err());
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let v = values(&[
            (AWS_ACCESS_KEY_ID, "AKIDEXAMPLE"),
            (AWS_SECRET_ACCESS_KEY, "wJalrXUtnFEMI-very-secret"),
            (AWS_SESSION_TOKEN, "session-token-secret"),
        ])
        .unwrap();
        let s = AwsSettings::from_values(&v, None).unwrap();
        let debug = format!("{s:?} {v:?}");
        assert!(
            !debug.contains("very-secret") && !debug.contains("session-token-secret"),
            "{debug}"
        );
        assert!(debug.contains("AKIDEXAMPLE"));
        assert_eq!(
            s.static_keys.unwrap().secret_access_key.expose(),
            "wJalrXUtnFEMI-very-secret"
        );
    }

    #[test]
    fn assume_role_settings() {
        let v = values(&[
            (AWS_ASSUME_ROLE_ARN, "arn:aws:iam::123456789012:role/reader"),
            (AWS_ASSUME_ROLE_EXTERNAL_ID, "ext"),
        ])
        .unwrap();
        let s = AwsSettings::from_values(&v, None).unwrap();
        let role = s.assume_role.unwrap();
        assert_eq!(role.session_name, DEFAULT_SESSION_NAME);
        assert_eq!(role.external_id.as_deref(), Some("ext"));
        let v = values(&[(AWS_ASSUME_ROLE_EXTERNAL_ID, "ext")]).unwrap();
        assert!(AwsSettings::from_values(&v, None).is_err());
        let err = values(&[(AWS_ASSUME_ROLE_ARN, "reader")]).unwrap_err();
        assert!(err.to_string().contains("aws.assumeRoleArn"), "{err}");
    }

    #[test]
    fn endpoint_must_be_a_url() {
        let err = values(&[(AWS_URL, "localhost:4567")]).unwrap_err();
        assert!(err.to_string().contains("aws.url"), "{err}");
        let v = values(&[(AWS_URL, "http://127.0.0.1:4567/")]).unwrap();
        let s = AwsSettings::from_values(&v, None).unwrap();
        assert_eq!(s.endpoint_url.as_deref(), Some("http://127.0.0.1:4567"));
    }
}
