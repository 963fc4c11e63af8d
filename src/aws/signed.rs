//! Kinesis data-plane calls as hand-built, SigV4-signed HTTP requests.
//!
//! The two calls on the connector's hot paths, PutRecords (destination) and SubscribeToShard
//! (source), are sent by hand: the SDK's generic (de)serializers copy every blob into
//! intermediate types and scan JSON byte by byte, which at 100k+ records/s cost more CPU
//! than everything else the connector does. What stays the SDK's: the signer
//! (`aws-sigv4`), the endpoint resolver (so `aws.url`, `AWS_ENDPOINT_URL_KINESIS`, FIPS,
//! dual-stack and account endpoints for ARNs behave exactly as with the SDK client) and the
//! credentials provider chain. Everything else (describe, list, register) still goes
//! through the SDK client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
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
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use super::StreamRef;

const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const CBOR_CONTENT_TYPE: &str = "application/x-amz-cbor-1.1";
const JSON10_CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// The SDK's default connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);
/// Credentials are refreshed this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// Which HTTP versions a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersions {
    /// HTTP/1.1 on a pool of connections (PutRecords: calls are independent).
    Http1,
    /// HTTP/2 when TLS negotiates it (AWS requires it for SubscribeToShard), else HTTP/1.1
    /// (plain-HTTP endpoints such as a local emulator).
    Negotiated,
}

/// How a call's input and output are encoded. Both are AWS's protocols for Kinesis, with the
/// same members; CBOR carries blobs as raw bytes instead of base64 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// AWS JSON 1.1.
    Json,
    /// AWS CBOR 1.1 (RFC 8949 items, see [`super::cbor`]).
    Cbor,
}

impl Protocol {
    pub fn content_type(self) -> &'static str {
        match self {
            Protocol::Json => JSON_CONTENT_TYPE,
            Protocol::Cbor => CBOR_CONTENT_TYPE,
        }
    }

    /// The protocol of an answer, by its `content-type` (JSON unless it says CBOR: error
    /// pages of proxies and load balancers are not CBOR either).
    pub fn of_response(headers: &http::HeaderMap) -> Protocol {
        let is_cbor = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(CBOR_CONTENT_TYPE));
        if is_cbor {
            Protocol::Cbor
        } else {
            Protocol::Json
        }
    }
}

/// What a call is about; data calls on an ARN go to the account's own endpoint.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Resource<'a> {
    Stream(&'a StreamRef),
    Consumer(&'a str),
}

impl Resource<'_> {
    fn cache_key(&self) -> String {
        match self {
            Resource::Stream(stream) => stream.arn.clone().unwrap_or_default(),
            Resource::Consumer(arn) => format!("consumer:{arn}"),
        }
    }
}

/// Why a request got no answer from the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFailure {
    /// The request could not be built or signed (credentials, configuration).
    Local,
    /// No answer: connection refused or lost, credentials provider unreachable.
    Transport,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    pub failure: RequestFailure,
    pub message: String,
}

/// An error answer of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    pub status: u16,
    pub code: Option<String>,
    pub message: String,
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

impl<'a> ErrorShape<'a> {
    fn read(protocol: Protocol, body: &'a [u8]) -> ErrorShape<'a> {
        match protocol {
            Protocol::Json => serde_json::from_slice(body).unwrap_or_default(),
            Protocol::Cbor => {
                let Ok(value) = super::cbor::decode(body) else {
                    return ErrorShape::default();
                };
                let text = |name: &str| {
                    value
                        .get(name)
                        .and_then(|v| v.as_str())
                        .map(|v| std::borrow::Cow::Owned(v.to_string()))
                };
                ErrorShape {
                    kind: text("__type"),
                    code: text("code"),
                    message: text("message").or_else(|| text("Message")),
                }
            }
        }
    }
}

/// Reads an AWS JSON or CBOR error answer: the code from `x-amzn-ErrorType` or the body's
/// `__type` / `code` (without namespace or suffix), the message from `message` / `Message`.
pub fn parse_service_error(
    status: u16,
    error_type_header: Option<&str>,
    protocol: Protocol,
    body: &[u8],
) -> ServiceError {
    let shape = ErrorShape::read(protocol, body);
    let code = error_type_header
        .or(shape.code.as_deref())
        .or(shape.kind.as_deref())
        .map(sanitize_error_code)
        .filter(|code| !code.is_empty())
        .map(str::to_string);
    // An empty message says nothing: fall back to what the status and body tell.
    let message = match shape.message.filter(|message| !message.trim().is_empty()) {
        Some(message) => message.into_owned(),
        None if body.is_empty() => format!("HTTP status {status}"),
        None if protocol == Protocol::Cbor => {
            format!("HTTP status {status} ({} bytes of CBOR)", body.len())
        }
        None => format!(
            "HTTP status {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(512)])
        ),
    };
    ServiceError {
        status,
        code,
        message,
    }
}

/// `aws.protocoltests#FooError:http://internal` → `FooError`.
fn sanitize_error_code(raw: &str) -> &str {
    let without_suffix = raw.split(':').next().unwrap_or(raw);
    without_suffix.rsplit('#').next().unwrap_or(without_suffix)
}

/// Where and how requests for one resource are signed and sent.
#[derive(Debug)]
struct Endpoint {
    uri: http::Uri,
    host: String,
    signing_region: String,
    signing_name: String,
}

/// An endpoint of a service other than Kinesis (DynamoDB for the source's lease table).
#[derive(Debug)]
pub struct ServiceEndpoint(Endpoint);

impl ServiceEndpoint {
    /// `url` signed for `signing_name` in `region`.
    pub fn new(url: &str, region: &str, signing_name: &str) -> Result<Self, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a valid URL: {e}"))?;
        let host = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .ok_or_else(|| format!("{url:?} has no host"))?;
        Ok(ServiceEndpoint(Endpoint {
            uri,
            host,
            signing_region: region.to_string(),
            signing_name: signing_name.to_string(),
        }))
    }

    pub fn url(&self) -> String {
        self.0.uri.to_string()
    }
}

/// Signs and sends Kinesis calls. Cheap to share.
pub struct SignedClient {
    http: HttpClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    credentials: CredentialCache,
    region: String,
    endpoint_override: Option<String>,
    use_fips: bool,
    use_dual_stack: bool,
    endpoints: StdMutex<HashMap<String, Arc<Endpoint>>>,
    user_agent: String,
}

impl std::fmt::Debug for SignedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedClient")
            .field("region", &self.region)
            .field("endpoint_override", &self.endpoint_override)
            .finish_non_exhaustive()
    }
}

impl SignedClient {
    /// A client for the region, credentials and endpoint settings of `sdk_config`;
    /// `endpoint_override` as resolved for Kinesis (`aws.url`, or the SDK's configured one).
    pub fn new(
        sdk_config: &SdkConfig,
        endpoint_override: Option<String>,
        versions: HttpVersions,
    ) -> Result<Self, String> {
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
            .https_or_http();
        let https = match versions {
            HttpVersions::Http1 => https.enable_http1().wrap_connector(connector),
            HttpVersions::Negotiated => https.enable_all_versions().wrap_connector(connector),
        };
        let http = HttpClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(20))
            .build(https);
        Ok(SignedClient {
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

    /// Signs `body`, the input of `operation` (e.g. `PutRecords`) on `resource` encoded in
    /// `protocol`, and sends it; the answer's body is left to the caller to read.
    pub(crate) async fn send(
        &self,
        operation: &'static str,
        resource: Resource<'_>,
        protocol: Protocol,
        body: Vec<u8>,
    ) -> Result<http::Response<Incoming>, RequestError> {
        let endpoint = self.endpoint(resource).await?;
        let credentials = self.credentials.get().await?;
        let request = self.signed_request(operation, &endpoint, protocol, credentials, body)?;
        self.http.request(request).await.map_err(|e| RequestError {
            failure: RequestFailure::Transport,
            message: describe_transport_error(operation, &e),
        })
    }

    /// Reads an error answer (status, `x-amzn-ErrorType`, body). After an expired or
    /// revoked credential, the next request signs with freshly loaded credentials.
    pub(crate) fn service_error(&self, parts: &http::response::Parts, body: &[u8]) -> ServiceError {
        let error_type = parts
            .headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok());
        let error = parse_service_error(
            parts.status.as_u16(),
            error_type,
            Protocol::of_response(&parts.headers),
            body,
        );
        if error
            .code
            .as_deref()
            .is_some_and(super::is_credential_error_code)
        {
            self.credentials.invalidate();
        }
        error
    }

    /// Signs and sends `body`, the AWS JSON 1.0 input of `target` (e.g.
    /// `DynamoDB_20120810.Scan`), to another service's `endpoint` with this client's
    /// credentials and region.
    pub async fn send_json10(
        &self,
        endpoint: &ServiceEndpoint,
        target: &'static str,
        body: Vec<u8>,
    ) -> Result<http::Response<Incoming>, RequestError> {
        let credentials = self.credentials.get().await?;
        let request = self.signed_request_for(
            target,
            target,
            JSON10_CONTENT_TYPE,
            &endpoint.0,
            credentials,
            body,
        )?;
        self.http.request(request).await.map_err(|e| RequestError {
            failure: RequestFailure::Transport,
            message: describe_transport_error(target, &e),
        })
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    fn signed_request(
        &self,
        operation: &'static str,
        endpoint: &Endpoint,
        protocol: Protocol,
        credentials: Credentials,
        body: Vec<u8>,
    ) -> Result<http::Request<Full<Bytes>>, RequestError> {
        let target = format!("Kinesis_20131202.{operation}");
        self.signed_request_for(
            operation,
            &target,
            protocol.content_type(),
            endpoint,
            credentials,
            body,
        )
    }

    fn signed_request_for(
        &self,
        operation: &str,
        target: &str,
        content_type: &str,
        endpoint: &Endpoint,
        credentials: Credentials,
        body: Vec<u8>,
    ) -> Result<http::Request<Full<Bytes>>, RequestError> {
        let local = |message: String| RequestError {
            failure: RequestFailure::Local,
            message,
        };
        let content_length = body.len().to_string();
        let headers = [
            ("content-type", content_type),
            ("x-amz-target", target),
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
            .map_err(|e| local(format!("could not sign {operation}: {e}")))?
            .into();
        let signable = aws_sigv4::http_request::SignableRequest::new(
            "POST",
            endpoint.uri.to_string(),
            headers.iter().copied(),
            aws_sigv4::http_request::SignableBody::Bytes(&body),
        )
        .map_err(|e| local(format!("could not sign {operation}: {e}")))?;
        let (instructions, _signature) = aws_sigv4::http_request::sign(signable, &params)
            .map_err(|e| local(format!("could not sign {operation}: {e}")))?
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
            .map_err(|e| local(format!("could not build the {operation} request: {e}")))?;
        instructions.apply_to_request_http1x(&mut request);
        Ok(request)
    }

    async fn endpoint(&self, resource: Resource<'_>) -> Result<Arc<Endpoint>, RequestError> {
        let key = resource.cache_key();
        if let Some(endpoint) = self.lock_endpoints().get(&key) {
            return Ok(endpoint.clone());
        }
        let endpoint = Arc::new(
            self.resolve(resource)
                .await
                .map_err(|message| RequestError {
                    failure: RequestFailure::Local,
                    message,
                })?,
        );
        self.lock_endpoints().insert(key, endpoint.clone());
        Ok(endpoint)
    }

    fn lock_endpoints(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Endpoint>>> {
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The endpoint the SDK would use for a data call on `resource` (with an ARN, AWS
    /// routes data calls to an account-specific host).
    async fn resolve(&self, resource: Resource<'_>) -> Result<Endpoint, String> {
        let mut params = Params::builder()
            .region(self.region.clone())
            .use_fips(self.use_fips)
            .use_dual_stack(self.use_dual_stack)
            .set_endpoint(self.endpoint_override.clone())
            .operation_type("data");
        params = match resource {
            Resource::Stream(stream) => params.set_stream_arn(stream.arn.clone()),
            Resource::Consumer(arn) => params.consumer_arn(arn),
        };
        let params = params
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

fn describe_transport_error(operation: &str, error: &hyper_util::client::legacy::Error) -> String {
    let mut message = format!("{operation} request failed: {error}");
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
    invalidated: AtomicBool,
}

impl CredentialCache {
    fn new(provider: SharedCredentialsProvider) -> Self {
        CredentialCache {
            provider,
            cached: tokio::sync::Mutex::new(None),
            invalidated: AtomicBool::new(false),
        }
    }

    fn invalidate(&self) {
        self.invalidated.store(true, Ordering::Release);
    }

    async fn get(&self) -> Result<Credentials, RequestError> {
        let mut cached = self.cached.lock().await;
        let invalidated = self.invalidated.swap(false, Ordering::AcqRel);
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

fn credentials_error(error: CredentialsError) -> RequestError {
    // Timeouts and provider failures (STS or SSO unreachable for a moment) are worth
    // retrying; missing or invalid configuration is not.
    let failure = match &error {
        CredentialsError::ProviderTimedOut(_) | CredentialsError::ProviderError(_) => {
            RequestFailure::Transport
        }
        _ => RequestFailure::Local,
    };
    RequestError {
        failure,
        message: format!(
            "could not load AWS credentials: {}",
            aws_smithy_types::error::display::DisplayErrorContext(&error)
        ),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_empty_error_message_falls_back_to_the_status_and_body() {
        let body = br#"{"__type":"ValidationException","message":" "}"#;
        let error = parse_service_error(400, None, Protocol::Json, body);
        assert_eq!(error.code.as_deref(), Some("ValidationException"));
        assert!(
            error.message.starts_with("HTTP status 400: "),
            "{}",
            error.message
        );
    }

    use super::*;

    #[test]
    fn errors_carry_a_clean_code_and_the_message() {
        let body = br#"{"__type":"com.amazonaws.kinesis.v20131202#ResourceNotFoundException","message":"Stream x not found"}"#;
        let error = parse_service_error(400, None, Protocol::Json, body);
        assert_eq!(error.code.as_deref(), Some("ResourceNotFoundException"));
        assert_eq!(error.message, "Stream x not found");
        assert_eq!(error.status, 400);

        let error = parse_service_error(
            400,
            Some("ProvisionedThroughputExceededException:http://internal.amazon.com/"),
            Protocol::Json,
            br#"{"Message":"Rate exceeded"}"#,
        );
        assert_eq!(
            error.code.as_deref(),
            Some("ProvisionedThroughputExceededException")
        );
        assert_eq!(error.message, "Rate exceeded");

        let error = parse_service_error(503, None, Protocol::Json, b"");
        assert_eq!(error.code, None);
        assert_eq!(error.message, "HTTP status 503");
        let error = parse_service_error(502, None, Protocol::Json, b"Bad Gateway");
        assert_eq!(error.message, "HTTP status 502: Bad Gateway");
    }

    #[test]
    fn cbor_error_answers_carry_code_and_message() {
        let mut body = Vec::new();
        let mut writer = super::super::cbor::Writer(&mut body);
        writer.map(2);
        writer.text("__type");
        writer.text("com.amazonaws.kinesis.v20131202#ResourceNotFoundException");
        writer.text("message");
        writer.text("Stream x not found");
        let error = parse_service_error(400, None, Protocol::Cbor, &body);
        assert_eq!(error.code.as_deref(), Some("ResourceNotFoundException"));
        assert_eq!(error.message, "Stream x not found");
        // Not CBOR after all: status and size, not binary noise.
        let error = parse_service_error(500, None, Protocol::Cbor, &[0xff, 0x00]);
        assert_eq!(error.code, None);
        assert_eq!(error.message, "HTTP status 500 (2 bytes of CBOR)");
    }

    #[test]
    fn answers_are_cbor_only_when_they_say_so() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(Protocol::of_response(&headers), Protocol::Json);
        headers.insert(
            "content-type",
            "application/x-amz-cbor-1.1".parse().unwrap(),
        );
        assert_eq!(Protocol::of_response(&headers), Protocol::Cbor);
        headers.insert("content-type", "text/html".parse().unwrap());
        assert_eq!(Protocol::of_response(&headers), Protocol::Json);
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

    fn client(url: Option<&str>) -> SignedClient {
        let sdk = SdkConfig::builder()
            .region(aws_types::region::Region::new("eu-west-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::for_tests()))
            .build();
        SignedClient::new(&sdk, url.map(str::to_string), HttpVersions::Http1).unwrap()
    }

    #[tokio::test]
    async fn arns_resolve_to_the_account_data_endpoint_and_overrides_win() {
        let arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/orders";
        let by_arn = StreamRef {
            name: "orders".into(),
            arn: Some(arn.into()),
        };
        let by_name = StreamRef {
            name: "orders".into(),
            arn: None,
        };
        let endpoint = client(None)
            .resolve(Resource::Stream(&by_arn))
            .await
            .unwrap();
        assert_eq!(
            endpoint.uri.to_string(),
            "https://123456789012.data-kinesis.eu-west-1.amazonaws.com/"
        );
        assert_eq!(endpoint.signing_region, "eu-west-1");
        assert_eq!(endpoint.signing_name, "kinesis");
        let endpoint = client(None)
            .resolve(Resource::Stream(&by_name))
            .await
            .unwrap();
        assert_eq!(endpoint.host, "kinesis.eu-west-1.amazonaws.com");
        let consumer =
            "arn:aws:kinesis:eu-west-1:210987654321:stream/orders/consumer/reader:1700000000";
        let endpoint = client(None)
            .resolve(Resource::Consumer(consumer))
            .await
            .unwrap();
        assert_eq!(
            endpoint.host,
            "210987654321.data-kinesis.eu-west-1.amazonaws.com"
        );
        let endpoint = client(Some("http://127.0.0.1:4567"))
            .resolve(Resource::Stream(&by_arn))
            .await
            .unwrap();
        assert_eq!(endpoint.host, "127.0.0.1:4567");
    }

    #[test]
    fn debug_output_names_no_credentials() {
        let shown = format!("{:?}", client(Some("http://127.0.0.1:1")));
        assert!(shown.contains("eu-west-1"), "{shown}");
        let credentials = Credentials::for_tests();
        assert!(!shown.contains(credentials.access_key_id()), "{shown}");
        assert!(!shown.contains(credentials.secret_access_key()), "{shown}");
    }
}
