//! Building AWS clients from [`AwsSettings`] and the start-up check of the stream.

pub mod cbor;
pub(crate) mod settings;
pub(crate) mod signed;

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::Client;
use aws_types::SdkConfig;

pub(crate) use settings::{AwsSettings, StreamRef};

const PROVIDER_NAME: &str = "conduit-connector-kinesis";

/// Failures talking to AWS, each saying which of the usual causes it is.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AwsError {
    #[error(
        "no AWS region is configured: set aws.region (or streamARN), or AWS_REGION in the environment, \
         or a region in the selected profile"
    )]
    NoRegion,
    #[error(
        "stream {stream:?} was not found in region {region} at {endpoint}: create it, or check \
         streamName/streamARN, aws.region and aws.url"
    )]
    StreamNotFound {
        stream: String,
        region: String,
        endpoint: String,
    },
    #[error(
        "AWS rejected the credentials for stream {stream:?} ({code}: {message}): check aws.accessKeyId / \
         aws.secretAccessKey / aws.sessionToken, aws.profile or aws.assumeRoleArn and the IAM permissions \
         (kinesis:DescribeStreamSummary and the reading/writing actions)"
    )]
    BadCredentials {
        stream: String,
        code: String,
        message: String,
    },
    #[error(
        "no AWS credentials could be loaded ({detail}): set aws.accessKeyId and aws.secretAccessKey, \
         aws.profile, or configure the default credential chain (AWS_ACCESS_KEY_ID, shared credentials \
         file, web identity, container or instance role)"
    )]
    NoCredentials { detail: String },
    #[error("could not reach the Kinesis endpoint {endpoint} ({detail}): check aws.url, aws.region and the network")]
    Unreachable { endpoint: String, detail: String },
    #[error("could not set up the HTTPS client for Kinesis: {detail}")]
    HttpClient { detail: String },
    #[error("Kinesis {operation} on stream {stream:?} failed: {detail}")]
    Other {
        operation: &'static str,
        stream: String,
        detail: String,
    },
}

/// Resolves region and credentials into an SDK configuration. The endpoint override is not
/// part of it: it applies to Kinesis only, not to STS.
pub(crate) async fn load_sdk_config(settings: &AwsSettings) -> Result<SdkConfig, AwsError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(keys) = &settings.static_keys {
        loader = loader.credentials_provider(Credentials::new(
            keys.access_key_id.clone(),
            keys.secret_access_key.expose().to_string(),
            keys.session_token.as_ref().map(|t| t.expose().to_string()),
            None,
            PROVIDER_NAME,
        ));
    }
    let base = loader.load().await;
    if base.region().is_none() {
        return Err(AwsError::NoRegion);
    }
    let Some(role) = &settings.assume_role else {
        return Ok(base);
    };
    let mut builder = aws_config::sts::AssumeRoleProvider::builder(role.role_arn.clone())
        .session_name(role.session_name.clone())
        .configure(&base);
    if let Some(external_id) = &role.external_id {
        builder = builder.external_id(external_id.clone());
    }
    let provider = builder.build().await;
    Ok(base
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build())
}

/// A Kinesis client and what it was built from.
pub struct KinesisConnection {
    pub client: Client,
    pub sdk_config: SdkConfig,
    /// The endpoint Kinesis calls go to when it is not AWS's own: `aws.url`, else one set
    /// for Kinesis in the environment or profile (`AWS_ENDPOINT_URL_KINESIS`, ...).
    pub endpoint_override: Option<String>,
}

impl KinesisConnection {
    /// The endpoint Kinesis calls go to, for messages: the override wherever it came from
    /// (`aws.url`, `AWS_ENDPOINT_URL_KINESIS`, a profile), else the region's AWS endpoint.
    pub fn describe_endpoint(&self) -> String {
        match &self.endpoint_override {
            Some(url) => url.clone(),
            None => {
                let region = self
                    .sdk_config
                    .region()
                    .map(|r| r.to_string())
                    .unwrap_or_default();
                format!("https://kinesis.{region}.amazonaws.com")
            }
        }
    }
}

/// Resolves the settings and builds a Kinesis client with the endpoint override applied.
pub(crate) async fn connect_kinesis(settings: &AwsSettings) -> Result<KinesisConnection, AwsError> {
    let sdk_config = load_sdk_config(settings).await?;
    let endpoint_override = settings.endpoint_url.clone().or_else(|| {
        // What aws_sdk_kinesis::config::Builder::from(&SdkConfig) looks at.
        let key = aws_types::service_config::ServiceConfigKey::builder()
            .service_id("Kinesis")
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .expect("all fields are set");
        sdk_config
            .service_config()
            .and_then(|config| config.load_config(key))
            .or_else(|| sdk_config.endpoint_url().map(str::to_string))
    });
    let mut builder = aws_sdk_kinesis::config::Builder::from(&sdk_config);
    if let Some(url) = &endpoint_override {
        builder = builder.endpoint_url(url.clone());
    }
    Ok(KinesisConnection {
        client: Client::from_conf(builder.build()),
        sdk_config,
        endpoint_override,
    })
}

/// What the start-up check learned about the stream.
#[derive(Debug, Clone)]
pub(crate) struct StreamSummary {
    pub name: String,
    pub arn: String,
    pub status: String,
    pub open_shards: i32,
    /// `MaxRecordSizeInKiB` when the server reports it.
    pub max_record_size_kib: Option<i32>,
}

/// Checks that the stream exists and the credentials work (DescribeStreamSummary).
pub(crate) async fn describe_stream(
    client: &Client,
    stream: &StreamRef,
    endpoint: &str,
) -> Result<StreamSummary, AwsError> {
    let mut request = client.describe_stream_summary();
    request = match &stream.arn {
        Some(arn) => request.stream_arn(arn),
        None => request.stream_name(&stream.name),
    };
    let response = request
        .send()
        .await
        .map_err(|e| classify(e, "DescribeStreamSummary", stream, client, endpoint))?;
    let Some(description) = response.stream_description_summary else {
        return Err(AwsError::Other {
            operation: "DescribeStreamSummary",
            stream: stream.to_string(),
            detail: "the response has no stream description".into(),
        });
    };
    Ok(StreamSummary {
        name: description.stream_name,
        arn: description.stream_arn,
        status: description.stream_status.as_str().to_string(),
        open_shards: description.open_shard_count,
        max_record_size_kib: description.max_record_size_in_kib,
    })
}

/// Checks that the endpoint answers and accepts the credentials (ListStreams, one result),
/// for destinations whose streams are only known per record.
pub(crate) async fn check_access(client: &Client, endpoint: &str) -> Result<(), AwsError> {
    let stream = StreamRef {
        name: "(any)".into(),
        arn: None,
    };
    client
        .list_streams()
        .limit(1)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| classify(e, "ListStreams", &stream, client, endpoint))
}

const CREDENTIAL_ERROR_CODES: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "IncompleteSignature",
    "AccessDeniedException",
    "AccessDenied",
    "ExpiredTokenException",
    "ExpiredToken",
    "InvalidClientTokenId",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "SignatureDoesNotMatch",
];

/// Whether an AWS error code means the request's credentials were rejected.
pub(crate) fn is_credential_error_code(code: &str) -> bool {
    CREDENTIAL_ERROR_CODES.contains(&code)
}

/// Maps an SDK error onto the cause a user can act on.
pub(crate) fn classify<E, R>(
    error: SdkError<E, R>,
    operation: &'static str,
    stream: &StreamRef,
    client: &Client,
    endpoint: &str,
) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let detail = DisplayErrorContext(&error).to_string();
    let code = error.code().map(str::to_string);
    match (&error, code.as_deref()) {
        (_, Some("ResourceNotFoundException")) => AwsError::StreamNotFound {
            stream: stream.to_string(),
            region: client
                .config()
                .region()
                .map(|r| r.to_string())
                .unwrap_or_default(),
            endpoint: endpoint.to_string(),
        },
        (_, Some(code)) if CREDENTIAL_ERROR_CODES.contains(&code) => AwsError::BadCredentials {
            stream: stream.to_string(),
            code: code.to_string(),
            message: error.message().unwrap_or_default().to_string(),
        },
        _ if is_credentials_failure(&detail) => AwsError::NoCredentials {
            // The provider chain lists why each provider failed on lines of their own.
            detail: cause_chain(&error),
        },
        (SdkError::DispatchFailure(_) | SdkError::TimeoutError(_), _) => AwsError::Unreachable {
            endpoint: endpoint.to_string(),
            detail: first_line(&detail),
        },
        _ => AwsError::Other {
            operation,
            stream: stream.to_string(),
            detail: first_line(&detail),
        },
    }
}

fn is_credentials_failure(detail: &str) -> bool {
    let lower = detail.to_ascii_lowercase();
    lower.contains("credentials")
        && (lower.contains("no credentials")
            || lower.contains("failed to load")
            || lower.contains("credentialsnotloaded")
            || lower.contains("could not load credentials")
            || lower.contains("an error occurred while loading credentials")
            || lower.contains("the credential provider was not enabled"))
}

/// The error and its causes as one line (`a: b: c`), without the `Debug` dump that
/// `DisplayErrorContext` appends; lines inside a message are joined with "; ".
fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    let mut out = String::with_capacity(text.len());
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(line);
    }
    out
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(endpoint_override: Option<&str>) -> KinesisConnection {
        let sdk_config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("ap-south-1"))
            .build();
        KinesisConnection {
            client: Client::new(&sdk_config),
            sdk_config,
            endpoint_override: endpoint_override.map(str::to_string),
        }
    }

    #[test]
    fn messages_name_the_endpoint_in_use() {
        // An override from AWS_ENDPOINT_URL_KINESIS or a profile lands in endpoint_override
        // just like aws.url does, and messages must name it.
        assert_eq!(
            connection(Some("http://127.0.0.1:4567")).describe_endpoint(),
            "http://127.0.0.1:4567"
        );
        assert_eq!(
            connection(None).describe_endpoint(),
            "https://kinesis.ap-south-1.amazonaws.com"
        );
    }
}
