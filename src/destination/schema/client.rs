//! [`SchemaDecoder`]: fetching schemas from Conduit's schema service (gRPC), caching them per
//! (subject, version), and decoding the parts of a record with them.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use super::avro::{decode_datum, parse_schema, CachedSchema};
use super::{Part, SchemaError, TOKEN_METADATA_KEY};
use crate::proto::connutils::v1::schema_service_client::SchemaServiceClient;
use crate::proto::connutils::v1::GetSchemaRequest;
use crate::proto::opencdc::v1::{data, Data, Record};
use crate::proto::schema::v1::schema::Type as SchemaType;

/// Messages Conduit's schema service answers with (`pconnutils/errors.go`).
const MSG_SUBJECT_NOT_FOUND: &str = "schema subject not found";
const MSG_VERSION_NOT_FOUND: &str = "schema version not found";
const MSG_INVALID_TOKEN: &str = "invalid token";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Decodes schema-encoded keys and payloads. Cheap to clone; clones share the connection and
/// the schema cache.
#[derive(Clone)]
pub struct SchemaDecoder {
    inner: Arc<Inner>,
}

struct Inner {
    /// The target as Conduit passed it, for messages.
    target: Option<String>,
    /// `http://host:port`, or why the target is unusable.
    endpoint: Option<Result<Endpoint, String>>,
    channel: OnceLock<Channel>,
    token: Option<String>,
    decode_payload: bool,
    decode_key: bool,
    cache: Mutex<HashMap<(String, i32), SchemaSlot>>,
    warned_key: AtomicBool,
    warned_payload: AtomicBool,
}

/// One (subject, version) in the cache: filled by the first successful fetch; concurrent
/// callers wait for the same fetch.
type SchemaSlot = Arc<tokio::sync::OnceCell<Arc<CachedSchema>>>;

impl fmt::Debug for SchemaDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self.inner.cache.lock().map(|c| c.len()).unwrap_or(0);
        f.debug_struct("SchemaDecoder")
            .field("target", &self.inner.target)
            .field("has_token", &self.inner.token.is_some())
            .field("decode_payload", &self.inner.decode_payload)
            .field("decode_key", &self.inner.decode_key)
            .field("cached_schemas", &cached)
            .finish()
    }
}

impl SchemaDecoder {
    /// `target` is `CONDUIT_CONNECTOR_UTILITIES_GRPC_TARGET` (Go's `net.Addr` form such as
    /// `[::]:43125`), `token` is `CONDUIT_CONNECTOR_TOKEN`. Nothing connects until a record
    /// needs a schema.
    pub fn new(
        target: Option<String>,
        token: Option<String>,
        decode_payload: bool,
        decode_key: bool,
    ) -> Self {
        let target = target.filter(|t| !t.trim().is_empty());
        let endpoint = target.as_deref().map(|t| {
            let uri = grpc_uri(t)?;
            Endpoint::from_shared(uri.clone())
                .map(|e| e.connect_timeout(CONNECT_TIMEOUT).timeout(REQUEST_TIMEOUT))
                .map_err(|e| format!("{uri} is not a valid URI: {e}"))
        });
        SchemaDecoder {
            inner: Arc::new(Inner {
                target,
                endpoint,
                channel: OnceLock::new(),
                token: token.filter(|t| !t.is_empty()),
                decode_payload,
                decode_key,
                cache: Mutex::new(HashMap::new()),
                warned_key: AtomicBool::new(false),
                warned_payload: AtomicBool::new(false),
            }),
        }
    }

    pub fn decodes_payload(&self) -> bool {
        self.inner.decode_payload
    }

    pub fn decodes_key(&self) -> bool {
        self.inner.decode_key
    }

    /// Whether [`SchemaDecoder::decode`] could change the record or fail: an enabled part
    /// names a schema subject or version. Checked first, synchronously, because most
    /// pipelines send records without schemas (raw data), and awaiting the decoder for each
    /// of those costs more than the check. A part without one is warned about once, as
    /// `decode` does.
    pub fn applies_to(&self, record: &Record) -> bool {
        let mut applies = false;
        for (enabled, part) in [
            (self.inner.decode_key, Part::Key),
            (self.inner.decode_payload, Part::Payload),
        ] {
            if !enabled {
                continue;
            }
            match part.schema_names(record) {
                (None, None) => self.warn_once(part),
                _ => applies = true,
            }
        }
        applies
    }

    /// Decodes key / payload.before / payload.after in place when the record carries schema
    /// metadata and the data is (non-empty) raw bytes; leaves everything else untouched.
    /// Schemas are fetched once per (subject, version) and cached (including the parsed
    /// Avro schema). On error the record is left unchanged.
    pub async fn decode(&self, record: &mut Record) -> Result<(), SchemaError> {
        let key = if self.inner.decode_key {
            self.decode_part(record, Part::Key).await?
        } else {
            Vec::new()
        };
        let payload = if self.inner.decode_payload {
            self.decode_part(record, Part::Payload).await?
        } else {
            Vec::new()
        };
        for (field, structure) in key.into_iter().chain(payload) {
            let data = Some(Data {
                data: Some(data::Data::StructuredData(structure)),
            });
            match field {
                "key" => record.key = data,
                "payload.before" => {
                    record.payload.get_or_insert_with(Default::default).before = data
                }
                _ => record.payload.get_or_insert_with(Default::default).after = data,
            }
        }
        Ok(())
    }

    /// Decodes the raw data of one part; returns the replacements.
    async fn decode_part(
        &self,
        record: &Record,
        part: Part,
    ) -> Result<Vec<(&'static str, prost_types::Struct)>, SchemaError> {
        let (subject, version) = part.schema_names(record);
        // Same order as the SDK: an unparsable version fails even without a subject.
        let version = match version {
            Some(v) => Some(v.parse::<i32>().map_err(|_| SchemaError::InvalidVersion {
                part,
                key: part.metadata_keys().1,
                value: v.to_string(),
            })?),
            None => None,
        };
        let (Some(subject), Some(version)) = (subject, version) else {
            self.warn_once(part);
            return Ok(Vec::new());
        };

        let candidates: Vec<(&'static str, &[u8])> = match part {
            Part::Key => vec![("key", raw_bytes(record.key.as_ref()))],
            Part::Payload => {
                let payload = record.payload.as_ref();
                vec![
                    (
                        "payload.before",
                        raw_bytes(payload.and_then(|p| p.before.as_ref())),
                    ),
                    (
                        "payload.after",
                        raw_bytes(payload.and_then(|p| p.after.as_ref())),
                    ),
                ]
            }
        };
        let mut decoded = Vec::new();
        for (field, bytes) in candidates {
            if bytes.is_empty() {
                continue;
            }
            let schema = self.schema(part, subject, version).await?;
            let structure = decode_datum(bytes, &schema).map_err(|reason| SchemaError::Decode {
                part,
                field,
                subject: subject.to_string(),
                version,
                reason,
            })?;
            decoded.push((field, structure));
        }
        Ok(decoded)
    }

    fn warn_once(&self, part: Part) {
        let flag = match part {
            Part::Key => &self.inner.warned_key,
            Part::Payload => &self.inner.warned_payload,
        };
        if !flag.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "record does not have an attached schema for the {part}, consider disabling the \
                 destination schema {part} decoding using \"{}: false\"",
                part.parameter()
            );
        }
    }

    /// The schema for (subject, version), fetched on first use. Concurrent callers share one
    /// request; a failed request is not cached.
    async fn schema(
        &self,
        part: Part,
        subject: &str,
        version: i32,
    ) -> Result<Arc<CachedSchema>, SchemaError> {
        let cell = {
            let mut cache = self
                .inner
                .cache
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            cache
                .entry((subject.to_string(), version))
                .or_default()
                .clone()
        };
        cell.get_or_try_init(|| self.fetch(part, subject, version))
            .await
            .cloned()
    }

    async fn fetch(
        &self,
        part: Part,
        subject: &str,
        version: i32,
    ) -> Result<Arc<CachedSchema>, SchemaError> {
        let inner = &self.inner;
        let target = inner.target.clone().unwrap_or_default();
        let endpoint = match &inner.endpoint {
            None => {
                return Err(SchemaError::NoService {
                    part,
                    subject: subject.to_string(),
                    version,
                })
            }
            Some(Err(reason)) => {
                return Err(SchemaError::InvalidTarget {
                    part,
                    subject: subject.to_string(),
                    version,
                    target,
                    reason: reason.clone(),
                })
            }
            Some(Ok(endpoint)) => endpoint,
        };
        let channel = inner
            .channel
            .get_or_init(|| endpoint.connect_lazy())
            .clone();
        let mut client = SchemaServiceClient::new(channel);
        let mut request = tonic::Request::new(GetSchemaRequest {
            subject: subject.to_string(),
            version,
        });
        if let Some(token) = &inner.token {
            let value = tonic::metadata::MetadataValue::try_from(token.as_str()).map_err(|_| {
                SchemaError::Service {
                    part,
                    subject: subject.to_string(),
                    version,
                    code: tonic::Code::InvalidArgument,
                    message: "CONDUIT_CONNECTOR_TOKEN has characters gRPC metadata cannot carry"
                        .to_string(),
                }
            })?;
            request.metadata_mut().insert(TOKEN_METADATA_KEY, value);
        }
        tracing::debug!(subject, version, "fetching schema from Conduit");
        let response = client
            .get_schema(request)
            .await
            .map_err(|status| self.status_error(status, part, subject, version))?
            .into_inner();
        let invalid = |reason: String| SchemaError::InvalidSchema {
            part,
            subject: subject.to_string(),
            version,
            reason,
        };
        let schema = response
            .schema
            .ok_or_else(|| invalid("the schema service returned no schema".to_string()))?;
        if schema.r#type != SchemaType::Avro as i32 {
            return Err(invalid(format!(
                "schema type {} is not supported, only Avro is",
                SchemaType::try_from(schema.r#type)
                    .map(|t| t.as_str_name().to_string())
                    .unwrap_or_else(|_| schema.r#type.to_string())
            )));
        }
        let parsed = parse_schema(&schema.bytes).map_err(invalid)?;
        tracing::debug!(
            subject,
            version,
            id = schema.id,
            "fetched schema from Conduit"
        );
        Ok(Arc::new(parsed))
    }

    fn status_error(
        &self,
        status: tonic::Status,
        part: Part,
        subject: &str,
        version: i32,
    ) -> SchemaError {
        let subject = subject.to_string();
        let message = redact(status.message(), self.inner.token.as_deref());
        match status.code() {
            _ if status.message() == MSG_SUBJECT_NOT_FOUND => SchemaError::SubjectNotFound {
                part,
                subject,
                version,
            },
            _ if status.message() == MSG_VERSION_NOT_FOUND => SchemaError::VersionNotFound {
                part,
                subject,
                version,
            },
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                SchemaError::InvalidToken {
                    part,
                    subject,
                    version,
                }
            }
            _ if status.message().ends_with(MSG_INVALID_TOKEN) => SchemaError::InvalidToken {
                part,
                subject,
                version,
            },
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => SchemaError::Unavailable {
                part,
                subject,
                version,
                target: self.inner.target.clone().unwrap_or_default(),
                message: transport_message(&status, &message),
            },
            code => SchemaError::Service {
                part,
                subject,
                version,
                code,
                message,
            },
        }
    }
}

/// Bytes of raw data; empty for absent or structured data.
fn raw_bytes(data: Option<&Data>) -> &[u8] {
    match data.and_then(|d| d.data.as_ref()) {
        Some(data::Data::RawData(bytes)) => bytes,
        _ => &[],
    }
}

/// tonic puts the interesting part of a connection failure in the source chain.
fn transport_message(status: &tonic::Status, message: &str) -> String {
    let mut text = message.to_string();
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        let s = err.to_string();
        if !text.contains(&s) {
            text = format!("{text}: {s}");
        }
        source = err.source();
    }
    text
}

/// Removes the connector token from a server message (Conduit's "invalid token" error quotes
/// it, Go-`%q`-escaped).
fn redact(message: &str, token: Option<&str>) -> String {
    let Some(token) = token else {
        return message.to_string();
    };
    let mut secrets = vec![
        token.to_string(),
        token.replace('\\', "\\\\").replace('"', "\\\""),
    ];
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(token) {
        if let Some(serde_json::Value::String(value)) = map.get("value") {
            secrets.push(value.clone());
        }
    }
    let mut out = message.to_string();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret.as_str(), "<redacted>");
    }
    out
}

/// Turns Conduit's `net.Addr` string into a URI tonic can dial: `[::]:43125` →
/// `http://127.0.0.1:43125`, `0.0.0.0:5000` → `http://127.0.0.1:5000`,
/// `127.0.0.1:5000` → `http://127.0.0.1:5000`. gRPC's `dns:///` and `passthrough:///` schemes
/// are stripped; `http://`/`https://` URIs are kept as they are.
///
/// The unspecified IPv6 address maps to `127.0.0.1` too: Go reports `[::]` for its dual-stack
/// wildcard listener, which also accepts IPv4 connections.
pub(crate) fn grpc_uri(target: &str) -> Result<String, String> {
    let target = target.trim();
    if target.starts_with("http://") || target.starts_with("https://") {
        return Ok(target.to_string());
    }
    let address = target
        .strip_prefix("dns:///")
        .or_else(|| target.strip_prefix("passthrough:///"))
        .unwrap_or(target);
    if address.starts_with("unix:") || address.contains("://") {
        return Err(format!(
            "only TCP addresses (host:port) are supported, not {address:?}"
        ));
    }
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("{address:?} is not of the form host:port"))?;
    if port.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("{address:?} has no valid port"));
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let host = match bare {
        "" | "::" | "0.0.0.0" | "0:0:0:0:0:0:0:0" => "127.0.0.1".to_string(),
        h if h.contains(':') => format!("[{h}]"),
        h => h.to_string(),
    };
    Ok(format!("http://{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::schema::{
        METADATA_KEY_SCHEMA_SUBJECT, METADATA_KEY_SCHEMA_VERSION, METADATA_PAYLOAD_SCHEMA_SUBJECT,
    };

    #[test]
    fn target_forms() {
        assert_eq!(grpc_uri("[::]:43125").unwrap(), "http://127.0.0.1:43125");
        assert_eq!(grpc_uri("0.0.0.0:5000").unwrap(), "http://127.0.0.1:5000");
        assert_eq!(grpc_uri(":5000").unwrap(), "http://127.0.0.1:5000");
        assert_eq!(grpc_uri("127.0.0.1:5000").unwrap(), "http://127.0.0.1:5000");
        assert_eq!(grpc_uri("[::1]:5000").unwrap(), "http://[::1]:5000");
        assert_eq!(grpc_uri("localhost:5000").unwrap(), "http://localhost:5000");
        assert_eq!(grpc_uri("dns:///host:1").unwrap(), "http://host:1");
        assert_eq!(grpc_uri("http://x:1").unwrap(), "http://x:1");
        assert!(grpc_uri("unix:///tmp/sock").is_err());
        assert!(grpc_uri("noport").is_err());
        assert!(grpc_uri("host:").is_err());
        assert!(grpc_uri("host:99999").is_err());
    }

    #[test]
    fn token_stays_out_of_debug_and_messages() {
        let token = r#"{"value":"0b4d4c7e-1111-2222-3333-444455556666","connector_id":"p:c"}"#;
        let decoder =
            SchemaDecoder::new(Some("[::]:1".into()), Some(token.to_string()), true, true);
        let debug = format!("{decoder:?}");
        assert!(!debug.contains("0b4d4c7e"), "{debug}");
        assert!(debug.contains("has_token: true"), "{debug}");

        // Conduit: cerrors.Errorf("%q: %w", token, ErrInvalidToken)
        let go_quoted = format!("{token:?}: invalid token");
        for message in [
            go_quoted.as_str(),
            token,
            "value 0b4d4c7e-1111-2222-3333-444455556666",
        ] {
            let redacted = redact(message, Some(token));
            assert!(!redacted.contains("0b4d4c7e"), "{redacted}");
        }
        let err = decoder.status_error(
            tonic::Status::unknown(go_quoted),
            Part::Payload,
            "orders.payload",
            1,
        );
        assert!(matches!(err, SchemaError::InvalidToken { .. }), "{err:?}");
        assert!(!err.to_string().contains("0b4d4c7e"));
    }

    /// `applies_to` lets the writer skip `decode`; it must say false only where `decode`
    /// would succeed without touching the record.
    #[tokio::test]
    async fn applies_to_is_false_only_where_decode_changes_nothing() {
        use crate::proto::opencdc::v1::{Change, Record};
        let raw = |b: &[u8]| {
            Some(Data {
                data: Some(data::Data::RawData(b.to_vec().into())),
            })
        };
        let cases: [&[(&str, &str)]; 6] = [
            &[],
            &[("opencdc.collection", "orders")],
            &[
                (METADATA_PAYLOAD_SCHEMA_SUBJECT, ""),
                (METADATA_KEY_SCHEMA_VERSION, ""),
            ],
            &[(METADATA_PAYLOAD_SCHEMA_SUBJECT, "orders.payload")],
            &[(METADATA_KEY_SCHEMA_VERSION, "not-a-number")],
            &[
                (METADATA_KEY_SCHEMA_SUBJECT, "k"),
                (METADATA_KEY_SCHEMA_VERSION, "1"),
            ],
        ];
        let mut skipped = 0;
        for (decode_payload, decode_key) in [(true, true), (true, false), (false, true)] {
            let decoder = SchemaDecoder::new(None, None, decode_payload, decode_key);
            for metadata in cases {
                let original = Record {
                    metadata: metadata.iter().copied().collect(),
                    key: raw(b"key bytes"),
                    payload: Some(Change {
                        before: None,
                        after: raw(b"payload bytes"),
                    }),
                    ..Default::default()
                };
                if decoder.applies_to(&original) {
                    continue;
                }
                skipped += 1;
                let mut record = original.clone();
                let outcome = decoder.decode(&mut record).await;
                assert!(outcome.is_ok(), "{metadata:?}: {outcome:?}");
                assert_eq!(record, original, "{metadata:?}");
            }
        }
        // Neither part named (3 cases × 3 settings), and only disabled parts named (3).
        assert_eq!(skipped, 12);
    }

    #[test]
    fn error_messages_name_subject_version_and_remedy() {
        let decoder = SchemaDecoder::new(None, None, true, true);
        for (message, expected) in [
            ("schema subject not found", "schema subject not found"),
            ("schema version not found", "schema version not found"),
        ] {
            let err = decoder.status_error(
                tonic::Status::unknown(message),
                Part::Payload,
                "orders.payload",
                3,
            );
            let text = err.to_string();
            assert!(text.contains("\"orders.payload\""), "{text}");
            assert!(text.contains('3'), "{text}");
            assert!(text.contains(expected), "{text}");
            assert!(
                text.contains("sdk.schema.extract.payload.enabled: false"),
                "{text}"
            );
        }
        let err = decoder.status_error(tonic::Status::internal("boom"), Part::Key, "orders.key", 2);
        assert!(matches!(err, SchemaError::Service { .. }));
        assert!(err.to_string().contains("sdk.schema.extract.key.enabled"));
        assert_eq!(err.subject(), Some("orders.key"));
        assert_eq!(err.version(), Some(2));
        assert_eq!(err.part(), Part::Key);
    }
}
