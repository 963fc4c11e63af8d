//! PutRecords as one hand-built, SigV4-signed HTTP request.
//!
//! The AWS SDK builds a PutRecords call through layers of generic machinery: the entries are
//! copied into SDK types, serialized through a schema walker that base64-encodes each blob
//! into a temporary string, and every result is deserialized into owned structures. At
//! 100k+ records/s that machinery cost more CPU than everything else the destination does.
//! Here the body is written straight from the prepared entries (base64 into the body
//! buffer), signed with the SDK's own signer (`aws-sigv4`) for the endpoint the SDK's own
//! resolver picks, sent over a pooled HTTP/1.1 connection, and the response is read with
//! borrowed strings. Everything else (describe, create) still goes through the SDK client.
//!
//! The body encoder and the response / error parsers are pure functions, tested below.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_kinesis::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_types::Document;
use aws_types::SdkConfig;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use super::retry::CallFailure;
use crate::aws::StreamRef;

const TARGET: &str = "Kinesis_20131202.PutRecords";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// A call that has not answered in this time is treated as a lost connection (and retried).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// The SDK's default connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);
/// Credentials are refreshed this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// What the body encoder needs of an entry.
pub trait PutEntry {
    fn data(&self) -> &[u8];
    fn partition_key(&self) -> &str;
    fn explicit_hash_key(&self) -> Option<&str>;
}

/// Writes the PutRecords request body (AWS JSON 1.1) for `entries` into `body`.
pub fn encode_body<E: PutEntry>(stream: &StreamRef, entries: &[E], body: &mut Vec<u8>) {
    let estimate: usize = entries
        .iter()
        .map(|e| e.data().len() * 4 / 3 + e.partition_key().len() + 64)
        .sum();
    body.reserve(estimate + 128);
    body.extend_from_slice(b"{\"Records\":[");
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"Data\":\"");
        base64_simd::STANDARD.encode_append(entry.data(), body);
        body.extend_from_slice(b"\",\"PartitionKey\":");
        write_json_string(body, entry.partition_key());
        if let Some(hash_key) = entry.explicit_hash_key() {
            body.extend_from_slice(b",\"ExplicitHashKey\":");
            write_json_string(body, hash_key);
        }
        body.push(b'}');
    }
    body.extend_from_slice(b"]");
    match &stream.arn {
        Some(arn) => {
            body.extend_from_slice(b",\"StreamARN\":");
            write_json_string(body, arn);
        }
        None => {
            body.extend_from_slice(b",\"StreamName\":");
            write_json_string(body, &stream.name);
        }
    }
    body.push(b'}');
}

fn write_json_string(body: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *body, text).expect("writing JSON to a Vec cannot fail");
}

/// Why one entry was not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFailure {
    pub code: String,
    pub message: String,
}

/// One result per entry, in request order: `None` when the entry was written.
pub type EntryResults = Vec<Option<EntryFailure>>;

#[derive(Deserialize)]
struct OutputShape<'a> {
    #[serde(rename = "Records", borrow, default)]
    records: Vec<ResultShape<'a>>,
}

#[derive(Deserialize)]
struct ResultShape<'a> {
    #[serde(rename = "ErrorCode", borrow, default)]
    error_code: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "ErrorMessage", borrow, default)]
    error_message: Option<std::borrow::Cow<'a, str>>,
}

/// Reads a successful PutRecords response. An answer that does not carry one result per
/// entry is an error (the whole call is retried).
pub fn parse_response(body: &[u8], entries: usize) -> Result<EntryResults, String> {
    let output: OutputShape<'_> = serde_json::from_slice(body)
        .map_err(|e| format!("PutRecords answered something that is not its response: {e}"))?;
    if output.records.len() != entries {
        return Err(format!(
            "PutRecords answered {} results for {entries} entries",
            output.records.len()
        ));
    }
    Ok(output
        .records
        .into_iter()
        .map(|result| {
            result
                .error_code
                .filter(|code| !code.is_empty())
                .map(|code| EntryFailure {
                    code: code.into_owned(),
                    message: result.error_message.unwrap_or_default().into_owned(),
                })
        })
        .collect())
}

/// A PutRecords call that failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub failure: CallFailure,
    pub code: Option<String>,
    pub message: String,
}

impl CallError {
    fn transport(message: String) -> CallError {
        CallError {
            failure: CallFailure::Transport,
            code: None,
            message,
        }
    }
}

#[derive(Deserialize, Default)]
struct ErrorShape<'a> {
    #[serde(rename = "__type", borrow, default)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "code", borrow, default)]
    code: Option<std::borrow::Cow<'a, str>>,
    #[serde(alias = "Message", borrow, default)]
    message: Option<std::borrow::Cow<'a, str>>,
}

/// Reads an AWS JSON error answer: the code from `x-amzn-ErrorType` or the body's `__type`
/// / `code` (without namespace or suffix), the message from `message` / `Message`.
pub fn parse_error(status: u16, error_type_header: Option<&str>, body: &[u8]) -> CallError {
    let shape: ErrorShape<'_> = serde_json::from_slice(body).unwrap_or_default();
    let code = error_type_header
        .or(shape.code.as_deref())
        .or(shape.kind.as_deref())
        .map(sanitize_error_code)
        .filter(|code| !code.is_empty())
        .map(str::to_string);
    let message = match shape.message {
        Some(message) => message.into_owned(),
        None if body.is_empty() => format!("HTTP status {status}"),
        None => format!(
            "HTTP status {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(512)])
        ),
    };
    CallError {
        failure: CallFailure::Service { status },
        code,
        message,
    }
}

/// `aws.protocoltests#FooError:http://internal` → `FooError`.
fn sanitize_error_code(raw: &str) -> &str {
    let without_suffix = raw.split(':').next().unwrap_or(raw);
    without_suffix.rsplit('#').next().unwrap_or(without_suffix)
}

/// Where and how requests for one stream are signed and sent.
#[derive(Debug)]
struct Endpoint {
    uri: http::Uri,
    host: String,
    signing_region: String,
    signing_name: String,
}

/// Sends PutRecords calls. Cheap to share between lanes.
pub struct PutRecordsClient {
    http: HttpClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    credentials: CredentialCache,
    region: String,
    endpoint_override: Option<String>,
    use_fips: bool,
    use_dual_stack: bool,
    endpoints: StdMutex<HashMap<String, Arc<Endpoint>>>,
    user_agent: String,
}

impl PutRecordsClient {
    /// A client for the region, credentials and endpoint settings of `sdk_config`;
    /// `endpoint_override` as resolved for Kinesis (`aws.url`, or the SDK's configured one).
    pub fn new(sdk_config: &SdkConfig, endpoint_override: Option<String>) -> Result<Self, String> {
        let region = sdk_config
            .region()
            .map(|r| r.to_string())
            .ok_or("no AWS region is configured: set aws.region")?;
        let provider = sdk_config
            .credentials_provider()
            .ok_or("no AWS credentials provider is configured")?;
        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| format!("could not load the system's TLS root certificates: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = HttpClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(20))
            .build(https);
        Ok(PutRecordsClient {
            http,
            credentials: CredentialCache::new(provider),
            region,
            endpoint_override,
            use_fips: sdk_config.use_fips().unwrap_or(false),
            use_dual_stack: sdk_config.use_dual_stack().unwrap_or(false),
            endpoints: StdMutex::new(HashMap::new()),
            user_agent: format!("conduit-connector-kinesis/{}", env!("CARGO_PKG_VERSION")),
        })
    }

    /// One PutRecords call for `entries` (at most 500, within 5 MiB) to `stream`.
    pub async fn put_records<E: PutEntry>(
        &self,
        stream: &StreamRef,
        entries: &[E],
    ) -> Result<EntryResults, CallError> {
        let endpoint = self.endpoint(stream).await?;
        let mut body = Vec::new();
        encode_body(stream, entries, &mut body);
        let credentials = self.credentials.get().await?;
        let request = self.signed_request(&endpoint, credentials, body)?;
        let response = tokio::time::timeout(CALL_TIMEOUT, async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| CallError::transport(describe_transport_error(&e)))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| {
                    CallError::transport(format!("the PutRecords response was cut off: {e}"))
                })?
                .to_bytes();
            Ok::<_, CallError>((parts, body))
        })
        .await
        .map_err(|_| {
            CallError::transport(format!(
                "PutRecords did not answer within {}s",
                CALL_TIMEOUT.as_secs()
            ))
        })?;
        let (parts, body) = response?;
        if parts.status.is_success() {
            return parse_response(&body, entries.len()).map_err(CallError::transport);
        }
        let error_type = parts
            .headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok());
        let error = parse_error(parts.status.as_u16(), error_type, &body);
        if error
            .code
            .as_deref()
            .is_some_and(crate::aws::is_credential_error_code)
        {
            // Expired or revoked: the retry signs with freshly loaded credentials.
            self.credentials.invalidate();
        }
        Err(error)
    }

    fn signed_request(
        &self,
        endpoint: &Endpoint,
        credentials: Credentials,
        body: Vec<u8>,
    ) -> Result<http::Request<Full<Bytes>>, CallError> {
        let local = |message: String| CallError {
            failure: CallFailure::Local,
            code: None,
            message,
        };
        let content_length = body.len().to_string();
        let headers = [
            ("content-type", CONTENT_TYPE),
            ("x-amz-target", TARGET),
            ("host", endpoint.host.as_str()),
            ("content-length", content_length.as_str()),
        ];
        let identity = Identity::from(credentials);
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&endpoint.signing_region)
            .name(&endpoint.signing_name)
            .time(SystemTime::now())
            .settings(aws_sigv4::http_request::SigningSettings::default())
            .build()
            .map_err(|e| local(format!("could not sign PutRecords: {e}")))?
            .into();
        let signable = aws_sigv4::http_request::SignableRequest::new(
            "POST",
            endpoint.uri.to_string(),
            headers.iter().copied(),
            aws_sigv4::http_request::SignableBody::Bytes(&body),
        )
        .map_err(|e| local(format!("could not sign PutRecords: {e}")))?;
        let (instructions, _signature) = aws_sigv4::http_request::sign(signable, &params)
            .map_err(|e| local(format!("could not sign PutRecords: {e}")))?
            .into_parts();
        let mut builder = http::Request::builder()
            .method(http::Method::POST)
            .uri(endpoint.uri.clone())
            .header("user-agent", &self.user_agent);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let mut request = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| local(format!("could not build the PutRecords request: {e}")))?;
        instructions.apply_to_request_http1x(&mut request);
        Ok(request)
    }

    async fn endpoint(&self, stream: &StreamRef) -> Result<Arc<Endpoint>, CallError> {
        let key = stream.arn.clone().unwrap_or_default();
        if let Some(endpoint) = self.lock_endpoints().get(&key) {
            return Ok(endpoint.clone());
        }
        let endpoint = Arc::new(self.resolve(stream).await.map_err(|message| CallError {
            failure: CallFailure::Local,
            code: None,
            message,
        })?);
        self.lock_endpoints().insert(key, endpoint.clone());
        Ok(endpoint)
    }

    fn lock_endpoints(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Endpoint>>> {
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The endpoint the SDK would use for PutRecords on `stream` (with a stream ARN, AWS
    /// routes data calls to an account-specific host).
    async fn resolve(&self, stream: &StreamRef) -> Result<Endpoint, String> {
        let params = Params::builder()
            .region(self.region.clone())
            .use_fips(self.use_fips)
            .use_dual_stack(self.use_dual_stack)
            .set_endpoint(self.endpoint_override.clone())
            .operation_type("data")
            .set_stream_arn(stream.arn.clone())
            .build()
            .map_err(|e| format!("could not resolve the Kinesis endpoint: {e}"))?;
        let resolved = DefaultResolver::new()
            .resolve_endpoint(&params)
            .await
            .map_err(|e| format!("could not resolve the Kinesis endpoint: {e}"))?;
        let uri: http::Uri = resolved.url().parse().map_err(|e| {
            format!(
                "the Kinesis endpoint {:?} is not a valid URL: {e}",
                resolved.url()
            )
        })?;
        let host = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .ok_or_else(|| format!("the Kinesis endpoint {:?} has no host", resolved.url()))?;
        let (signing_region, signing_name) =
            signing_scope(resolved.properties().get("authSchemes"));
        Ok(Endpoint {
            uri,
            host,
            signing_region: signing_region.unwrap_or_else(|| self.region.clone()),
            signing_name: signing_name.unwrap_or_else(|| "kinesis".to_string()),
        })
    }
}

/// The SigV4 region and service name an endpoint asks for, when it does.
fn signing_scope(auth_schemes: Option<&Document>) -> (Option<String>, Option<String>) {
    let Some(Document::Array(schemes)) = auth_schemes else {
        return (None, None);
    };
    for scheme in schemes {
        let Document::Object(scheme) = scheme else {
            continue;
        };
        if !matches!(scheme.get("name"), Some(Document::String(name)) if name == "sigv4") {
            continue;
        }
        let text = |key: &str| match scheme.get(key) {
            Some(Document::String(value)) => Some(value.clone()),
            _ => None,
        };
        return (text("signingRegion"), text("signingName"));
    }
    (None, None)
}

fn describe_transport_error(error: &hyper_util::client::legacy::Error) -> String {
    let mut message = format!("PutRecords request failed: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Credentials loaded once and reused until shortly before they expire (the SDK does the
/// same with its identity cache).
struct CredentialCache {
    provider: SharedCredentialsProvider,
    cached: tokio::sync::Mutex<Option<Credentials>>,
    invalidated: std::sync::atomic::AtomicBool,
}

impl CredentialCache {
    fn new(provider: SharedCredentialsProvider) -> Self {
        CredentialCache {
            provider,
            cached: tokio::sync::Mutex::new(None),
            invalidated: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn invalidate(&self) {
        self.invalidated
            .store(true, std::sync::atomic::Ordering::Release);
    }

    async fn get(&self) -> Result<Credentials, CallError> {
        let mut cached = self.cached.lock().await;
        let invalidated = self
            .invalidated
            .swap(false, std::sync::atomic::Ordering::AcqRel);
        if let Some(credentials) = cached.as_ref().filter(|_| !invalidated) {
            let fresh = credentials
                .expiry()
                .is_none_or(|expiry| expiry > SystemTime::now() + REFRESH_BEFORE_EXPIRY);
            if fresh {
                return Ok(credentials.clone());
            }
        }
        let loaded = self
            .provider
            .provide_credentials()
            .await
            .map_err(credentials_error)?;
        *cached = Some(loaded.clone());
        Ok(loaded)
    }
}

fn credentials_error(error: CredentialsError) -> CallError {
    // Timeouts and provider failures (STS or SSO unreachable for a moment) are worth
    // retrying; missing or invalid configuration is not.
    let failure = match &error {
        CredentialsError::ProviderTimedOut(_) | CredentialsError::ProviderError(_) => {
            CallFailure::Transport
        }
        _ => CallFailure::Local,
    };
    CallError {
        failure,
        code: None,
        message: format!(
            "could not load AWS credentials: {}",
            aws_smithy_types::error::display::DisplayErrorContext(&error)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct E(&'static [u8], &'static str, Option<&'static str>);

    impl PutEntry for E {
        fn data(&self) -> &[u8] {
            self.0
        }
        fn partition_key(&self) -> &str {
            self.1
        }
        fn explicit_hash_key(&self) -> Option<&str> {
            self.2
        }
    }

    fn stream(name: &str, arn: Option<&str>) -> StreamRef {
        StreamRef {
            name: name.into(),
            arn: arn.map(str::to_string),
        }
    }

    #[test]
    fn body_is_the_aws_json_put_records_input() {
        let entries = [
            E(b"hello", "k\"1\u{e9}\n", None),
            E(&[0, 255, 1], "k2", Some("42")),
        ];
        let mut body = Vec::new();
        encode_body(&stream("orders", None), &entries, &mut body);
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "Records": [
                    {"Data": "aGVsbG8=", "PartitionKey": "k\"1\u{e9}\n"},
                    {"Data": "AP8B", "PartitionKey": "k2", "ExplicitHashKey": "42"},
                ],
                "StreamName": "orders",
            })
        );
        let mut body = Vec::new();
        let arn = "arn:aws:kinesis:us-east-1:123456789012:stream/orders";
        encode_body(&stream("orders", Some(arn)), &entries[..1], &mut body);
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["StreamARN"], arn);
        assert!(parsed.get("StreamName").is_none());
    }

    #[test]
    fn response_results_line_up_with_entries() {
        let body = br#"{"FailedRecordCount":1,"Records":[
            {"SequenceNumber":"1","ShardId":"shardId-000000000000"},
            {"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded for shard"},
            {"SequenceNumber":"2","ShardId":"shardId-000000000001","ErrorCode":""}
        ],"EncryptionType":"NONE"}"#;
        let results = parse_response(body, 3).unwrap();
        assert_eq!(
            results,
            vec![
                None,
                Some(EntryFailure {
                    code: "ProvisionedThroughputExceededException".into(),
                    message: "Rate exceeded for shard".into()
                }),
                None
            ]
        );
        let error = parse_response(body, 4).unwrap_err();
        assert!(error.contains("3 results for 4 entries"), "{error}");
        assert!(parse_response(b"<html>", 1).is_err());
        // Escaped text in messages is decoded.
        let body = br#"{"Records":[{"ErrorCode":"InternalFailure","ErrorMessage":"a \"b\""}]}"#;
        assert_eq!(
            parse_response(body, 1).unwrap()[0]
                .as_ref()
                .unwrap()
                .message,
            "a \"b\""
        );
    }

    #[test]
    fn errors_carry_a_clean_code_and_the_message() {
        let body = br#"{"__type":"com.amazonaws.kinesis.v20131202#ResourceNotFoundException","message":"Stream x not found"}"#;
        let error = parse_error(400, None, body);
        assert_eq!(error.code.as_deref(), Some("ResourceNotFoundException"));
        assert_eq!(error.message, "Stream x not found");
        assert_eq!(error.failure, CallFailure::Service { status: 400 });

        let error = parse_error(
            400,
            Some("ProvisionedThroughputExceededException:http://internal.amazon.com/"),
            br#"{"Message":"Rate exceeded"}"#,
        );
        assert_eq!(
            error.code.as_deref(),
            Some("ProvisionedThroughputExceededException")
        );
        assert_eq!(error.message, "Rate exceeded");

        let error = parse_error(503, None, b"");
        assert_eq!(error.code, None);
        assert_eq!(error.message, "HTTP status 503");
        let error = parse_error(502, None, b"Bad Gateway");
        assert_eq!(error.message, "HTTP status 502: Bad Gateway");
    }

    #[test]
    fn signing_scope_comes_from_the_sigv4_auth_scheme() {
        let scheme = |name: &str, region: &str| {
            Document::Object(
                [
                    ("name".to_string(), Document::String(name.into())),
                    ("signingRegion".to_string(), Document::String(region.into())),
                    (
                        "signingName".to_string(),
                        Document::String("kinesis".into()),
                    ),
                ]
                .into_iter()
                .collect(),
            )
        };
        let schemes = Document::Array(vec![
            scheme("sigv4a", "*"),
            scheme("sigv4", "us-gov-west-1"),
        ]);
        assert_eq!(
            signing_scope(Some(&schemes)),
            (Some("us-gov-west-1".into()), Some("kinesis".into()))
        );
        assert_eq!(signing_scope(None), (None, None));
    }

    #[tokio::test]
    async fn stream_arns_resolve_to_the_account_data_endpoint_and_overrides_win() {
        let config = |url: Option<&str>| {
            let sdk = SdkConfig::builder()
                .region(aws_types::region::Region::new("eu-west-1"))
                .credentials_provider(SharedCredentialsProvider::new(Credentials::for_tests()))
                .build();
            PutRecordsClient::new(&sdk, url.map(str::to_string)).unwrap()
        };
        let arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/orders";
        let endpoint = config(None)
            .resolve(&stream("orders", Some(arn)))
            .await
            .unwrap();
        assert_eq!(
            endpoint.uri.to_string(),
            "https://123456789012.data-kinesis.eu-west-1.amazonaws.com/"
        );
        assert_eq!(endpoint.signing_region, "eu-west-1");
        assert_eq!(endpoint.signing_name, "kinesis");
        let endpoint = config(None).resolve(&stream("orders", None)).await.unwrap();
        assert_eq!(endpoint.host, "kinesis.eu-west-1.amazonaws.com");
        let endpoint = config(Some("http://127.0.0.1:4567"))
            .resolve(&stream("orders", Some(arn)))
            .await
            .unwrap();
        assert_eq!(endpoint.host, "127.0.0.1:4567");
    }
}
