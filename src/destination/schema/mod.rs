//! Decoding of schema-encoded records (the destination side of `sdk.schema.extract.*`).
//!
//! Conduit's Go sources, with the SDK defaults, do not send structured keys and payloads as
//! structured data: the SDK extracts an Avro schema, registers it with Conduit's schema
//! service, sends the data as a plain Avro binary datum (`raw_data`, no header, no schema
//! fingerprint) and names the schema in the record metadata:
//! `opencdc.payload.schema.subject` / `opencdc.payload.schema.version` for `payload.before`
//! and `payload.after`, `opencdc.key.schema.subject` / `opencdc.key.schema.version` for the key.
//!
//! [`SchemaDecoder`] is the counterpart of the Go SDK's `DestinationWithSchemaExtraction`
//! middleware (`conduit-connector-sdk@v0.14.2: destination_middleware.go`): it fetches the
//! schema with `connutils.v1.SchemaService/GetSchema` (authenticated with the
//! `conduit-connector-token` metadata header), caches it per (subject, version), decodes the
//! datum and replaces the raw bytes with structured data.
//!
//! # How Avro values become structured data
//!
//! The Go SDK decodes into `opencdc.StructuredData` with hamba/avro (v2.28.0) and the
//! `conduit-commons@v0.6.0` union resolver; a Go destination then typically serializes the record
//! with `encoding/json`. This module produces the `google.protobuf.Value` that renders to the
//! same JSON:
//!
//! | Avro | Go value after decoding | here |
//! | --- | --- | --- |
//! | `null` | `nil` | null |
//! | `boolean` | `bool` | bool |
//! | `int`, `long` | `int`, `int64` | number (exact up to 2^53) |
//! | `float` | `float32` | number, the shortest decimal of the `float32` (`1.1`, not `1.100000023841858`), as Go's JSON encoder writes it |
//! | `double` | `float64` | number |
//! | `string`, `enum`, `uuid` | `string` | string |
//! | `bytes` | `[]byte` | base64 string (standard alphabet, padded) |
//! | `fixed` | `[N]byte` | list of byte numbers |
//! | `record`, `map` | `map[string]any` | struct |
//! | `array` | `[]any` | list |
//! | union | the branch's value | the branch's value |
//! | `date`, `timestamp-millis`, `timestamp-micros` | `time.Time` (UTC) | RFC 3339 string with nanoseconds, trailing zeros trimmed (`2024-05-01T10:11:12.5Z`) |
//! | `local-timestamp-millis`/`-micros` | `time.Time` in the process's zone | as above, with `Z` |
//! | `time-millis`, `time-micros` | `time.Duration` | number of **nanoseconds** |
//! | `timestamp-nanos`, `local-timestamp-nanos` | `int64` (hamba v2.28 does not know them) | number |
//! | `duration` (fixed 12) | `avro.LogicalDuration` | `{"Months": m, "Days": d, "Milliseconds": ms}` |
//! | `decimal` (bytes or fixed) | `*big.Rat` | exact decimal string with the schema's scale (`"12.34"`) |
//!
//! Deviations from the Go SDK:
//! * `decimal`: Go's JSON encoding of `*big.Rat` is a fraction (`"617/50"`); this writes `"12.34"`.
//!   (apache-avro's own `big-decimal` logical type, unknown to hamba, also becomes a string.)
//! * Unions always unwrap to the branch value. hamba/avro leaves some unions (those with a
//!   record/enum/fixed/array/map branch and more than two branches, outside the paths
//!   conduit-commons' resolver fixes up) as a one-entry map `{"<type name>": value}`.
//! * `long` values beyond ±2^53 do not fit a protobuf `Value` number (a double); they are kept
//!   exact (see [`super::exact`]) and written digit for digit, as Go writes its `int64`.
//!   `NaN`/`±Inf` stay numbers (Go's JSON encoder fails on them).
//! * Local timestamps render with `Z` (Go uses the offset of the Conduit process's zone; the same
//!   when Conduit runs in UTC). Timestamps outside years 0–9999 (which Go's JSON encoder rejects)
//!   stay numbers.
//! * Empty `raw_data` is left untouched. Conduit turns an absent key/before/after into empty raw
//!   data (`pkg/connector/source.go sanitizeRecord`), so e.g. `payload.before` of a create
//!   record arrives empty; hamba/avro decodes that to a map of nils or fails, depending on the
//!   field types.
//! * Truncated datums: both libraries are lenient in places (hamba/avro accepts an end of input
//!   at some value boundaries and leaves the remaining fields nil; apache-avro decodes a
//!   truncated string or bytes value as null); other truncations are an error here. Trailing
//!   bytes after the datum are ignored by both.
//! * Successful look-ups are cached for the life of the decoder (a subject+version is
//!   immutable); failures are not cached, the next record retries. The Go SDK caches both for 15
//!   minutes (`schema/cached.go`).
//! * A record is updated only when all its parts decoded; the Go SDK may leave a record
//!   half-decoded when it returns an error.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use apache_avro::schema::{Name, ResolvedSchema};
use apache_avro::types::Value as AvroValue;
use apache_avro::Schema as AvroSchema;
use base64::Engine as _;
use prost_types::value::Kind;
use tonic::transport::{Channel, Endpoint};

use crate::proto::connutils::v1::schema_service_client::SchemaServiceClient;
use crate::proto::connutils::v1::GetSchemaRequest;
use crate::proto::opencdc::v1::{data, Data, Record};
use crate::proto::schema::v1::schema::Type as SchemaType;

pub const METADATA_KEY_SCHEMA_SUBJECT: &str = "opencdc.key.schema.subject";
pub const METADATA_KEY_SCHEMA_VERSION: &str = "opencdc.key.schema.version";
pub const METADATA_PAYLOAD_SCHEMA_SUBJECT: &str = "opencdc.payload.schema.subject";
pub const METADATA_PAYLOAD_SCHEMA_VERSION: &str = "opencdc.payload.schema.version";
/// gRPC metadata entry that carries `CONDUIT_CONNECTOR_TOKEN`
/// (`conduit-connector-protocol@v0.9.5: pconnutils/internal/metadata.go`).
pub const TOKEN_METADATA_KEY: &str = "conduit-connector-token";

/// Messages Conduit's schema service answers with (`pconnutils/errors.go`).
const MSG_SUBJECT_NOT_FOUND: &str = "schema subject not found";
const MSG_VERSION_NOT_FOUND: &str = "schema version not found";
const MSG_INVALID_TOKEN: &str = "invalid token";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Which part of a record a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Key,
    Payload,
}

impl Part {
    fn parameter(self) -> &'static str {
        match self {
            Part::Key => "sdk.schema.extract.key.enabled",
            Part::Payload => "sdk.schema.extract.payload.enabled",
        }
    }

    /// The part's schema subject and version as the record's metadata names them (an empty
    /// value counts as none).
    fn schema_names(self, record: &Record) -> (Option<&str>, Option<&str>) {
        let (subject_key, version_key) = self.metadata_keys();
        let named = |key| record.metadata.get(key).filter(|v| !v.is_empty());
        (named(subject_key), named(version_key))
    }

    fn metadata_keys(self) -> (&'static str, &'static str) {
        match self {
            Part::Key => (METADATA_KEY_SCHEMA_SUBJECT, METADATA_KEY_SCHEMA_VERSION),
            Part::Payload => (
                METADATA_PAYLOAD_SCHEMA_SUBJECT,
                METADATA_PAYLOAD_SCHEMA_VERSION,
            ),
        }
    }

    /// What a user can do about a failure.
    fn hint(self) -> String {
        format!(
            "to skip decoding, set `{}: false` on this destination (it then writes the Avro \
             bytes as they are) or on the source (it then sends structured data)",
            self.parameter()
        )
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Key => "key",
            Part::Payload => "payload",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "the record's {part} schema version {value:?} (metadata {key}) is not an integer; {}",
        part.hint()
    )]
    InvalidVersion {
        part: Part,
        key: &'static str,
        value: String,
    },
    #[error(
        "cannot fetch {part} schema subject {subject:?} version {version}: Conduit did not \
         pass the address of its schema service (CONDUIT_CONNECTOR_UTILITIES_GRPC_TARGET); {}",
        part.hint()
    )]
    NoService {
        part: Part,
        subject: String,
        version: i32,
    },
    #[error(
        "cannot fetch {part} schema subject {subject:?} version {version}: the schema service \
         address {target:?} (CONDUIT_CONNECTOR_UTILITIES_GRPC_TARGET) is not usable: {reason}; {}",
        part.hint()
    )]
    InvalidTarget {
        part: Part,
        subject: String,
        version: i32,
        target: String,
        reason: String,
    },
    #[error(
        "cannot reach Conduit's schema service at {target} to fetch {part} schema subject \
         {subject:?} version {version}: {message}; {}",
        part.hint()
    )]
    Unavailable {
        part: Part,
        subject: String,
        version: i32,
        target: String,
        message: String,
    },
    #[error(
        "Conduit's schema service does not know the {part} schema subject {subject:?} \
         (version {version}): schema subject not found; {}",
        part.hint()
    )]
    SubjectNotFound {
        part: Part,
        subject: String,
        version: i32,
    },
    #[error(
        "Conduit's schema service has no version {version} of the {part} schema subject \
         {subject:?}: schema version not found; {}",
        part.hint()
    )]
    VersionNotFound {
        part: Part,
        subject: String,
        version: i32,
    },
    #[error(
        "Conduit's schema service rejected this connector's token (CONDUIT_CONNECTOR_TOKEN) when \
         fetching {part} schema subject {subject:?} version {version}: the plugin must be \
         started by the Conduit instance that serves the schemas; {}",
        part.hint()
    )]
    InvalidToken {
        part: Part,
        subject: String,
        version: i32,
    },
    #[error(
        "fetching {part} schema subject {subject:?} version {version} from Conduit's schema \
         service failed ({code:?}): {message}; {}",
        part.hint()
    )]
    Service {
        part: Part,
        subject: String,
        version: i32,
        code: tonic::Code,
        message: String,
    },
    #[error(
        "{part} schema subject {subject:?} version {version} cannot be used: {reason}; {}",
        part.hint()
    )]
    InvalidSchema {
        part: Part,
        subject: String,
        version: i32,
        reason: String,
    },
    #[error(
        "could not decode {field} with schema subject {subject:?} version {version}: {reason}; {}",
        part.hint()
    )]
    Decode {
        part: Part,
        /// `key`, `payload.before` or `payload.after`.
        field: &'static str,
        subject: String,
        version: i32,
        reason: String,
    },
}

impl SchemaError {
    /// The record part whose schema failed.
    pub fn part(&self) -> Part {
        match self {
            SchemaError::InvalidVersion { part, .. }
            | SchemaError::NoService { part, .. }
            | SchemaError::InvalidTarget { part, .. }
            | SchemaError::Unavailable { part, .. }
            | SchemaError::SubjectNotFound { part, .. }
            | SchemaError::VersionNotFound { part, .. }
            | SchemaError::InvalidToken { part, .. }
            | SchemaError::Service { part, .. }
            | SchemaError::InvalidSchema { part, .. }
            | SchemaError::Decode { part, .. } => *part,
        }
    }

    /// The schema subject, when the metadata named one.
    pub fn subject(&self) -> Option<&str> {
        match self {
            SchemaError::InvalidVersion { .. } => None,
            SchemaError::NoService { subject, .. }
            | SchemaError::InvalidTarget { subject, .. }
            | SchemaError::Unavailable { subject, .. }
            | SchemaError::SubjectNotFound { subject, .. }
            | SchemaError::VersionNotFound { subject, .. }
            | SchemaError::InvalidToken { subject, .. }
            | SchemaError::Service { subject, .. }
            | SchemaError::InvalidSchema { subject, .. }
            | SchemaError::Decode { subject, .. } => Some(subject),
        }
    }

    /// The schema version, when the metadata named a valid one.
    pub fn version(&self) -> Option<i32> {
        match self {
            SchemaError::InvalidVersion { .. } => None,
            SchemaError::NoService { version, .. }
            | SchemaError::InvalidTarget { version, .. }
            | SchemaError::Unavailable { version, .. }
            | SchemaError::SubjectNotFound { version, .. }
            | SchemaError::VersionNotFound { version, .. }
            | SchemaError::InvalidToken { version, .. }
            | SchemaError::Service { version, .. }
            | SchemaError::InvalidSchema { version, .. }
            | SchemaError::Decode { version, .. } => Some(*version),
        }
    }
}

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

/// A fetched and parsed schema.
struct CachedSchema {
    schema: AvroSchema,
    /// Named types, to follow references while converting.
    names: HashMap<Name, AvroSchema>,
}

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
pub fn grpc_uri(target: &str) -> Result<String, String> {
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

fn parse_schema(bytes: &[u8]) -> Result<CachedSchema, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("schema text is not UTF-8: {e}"))?;
    let schema = AvroSchema::parse_str(text).map_err(|e| format!("invalid Avro schema: {e}"))?;
    match &schema {
        AvroSchema::Record(_) | AvroSchema::Map(_) | AvroSchema::Union(_) => {}
        other => {
            return Err(format!(
                "an Avro {} cannot be decoded into structured data (expected a record or map)",
                schema_kind(other)
            ))
        }
    }
    let names = ResolvedSchema::try_from(&schema)
        .map_err(|e| format!("invalid Avro schema: {e}"))?
        .get_names()
        .iter()
        .map(|(name, schema)| (name.clone(), (*schema).clone()))
        .collect();
    Ok(CachedSchema { schema, names })
}

fn schema_kind(schema: &AvroSchema) -> String {
    let kind: apache_avro::schema::SchemaKind = schema.into();
    format!("{kind:?}").to_lowercase()
}

/// Decodes one Avro binary datum (no header) into structured data.
fn decode_datum(bytes: &[u8], schema: &CachedSchema) -> Result<prost_types::Struct, String> {
    let mut reader = bytes;
    let value = apache_avro::from_avro_datum(&schema.schema, &mut reader, None)
        .map_err(|e| e.to_string())?;
    match avro_to_proto(value, Some(&schema.schema), &schema.names).kind {
        Some(Kind::StructValue(structure)) => Ok(structure),
        _ => Err("the datum is not a record or map".to_string()),
    }
}

/// Converts a decoded Avro value to a protobuf value the way Conduit's Go SDK represents it
/// (see the module documentation). `schema` is the value's schema, for decimal scales.
pub(crate) fn avro_to_proto(
    value: AvroValue,
    schema: Option<&AvroSchema>,
    names: &HashMap<Name, AvroSchema>,
) -> prost_types::Value {
    let schema = match schema {
        Some(AvroSchema::Ref { name }) => names.get(name),
        other => other,
    };
    let kind = match value {
        AvroValue::Null => Kind::NullValue(0),
        AvroValue::Boolean(b) => Kind::BoolValue(b),
        AvroValue::Int(i) => Kind::NumberValue(i.into()),
        AvroValue::Long(i) | AvroValue::TimestampNanos(i) | AvroValue::LocalTimestampNanos(i) => {
            super::exact::integer_kind(i)
        }
        AvroValue::Float(f) => Kind::NumberValue(float32_as_go_json(f)),
        AvroValue::Double(f) => Kind::NumberValue(f),
        AvroValue::Bytes(bytes) => {
            Kind::StringValue(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        AvroValue::String(s) | AvroValue::Enum(_, s) => Kind::StringValue(s),
        AvroValue::Uuid(u) => Kind::StringValue(u.hyphenated().to_string()),
        AvroValue::Fixed(_, bytes) => Kind::ListValue(prost_types::ListValue {
            values: bytes.into_iter().map(|b| number(b.into())).collect(),
        }),
        AvroValue::Union(index, inner) => {
            let branch = match schema {
                Some(AvroSchema::Union(union)) => union.variants().get(index as usize),
                _ => None,
            };
            return avro_to_proto(*inner, branch, names);
        }
        AvroValue::Array(items) => {
            let item_schema = match schema {
                Some(AvroSchema::Array(array)) => Some(&*array.items),
                _ => None,
            };
            Kind::ListValue(prost_types::ListValue {
                values: items
                    .into_iter()
                    .map(|v| avro_to_proto(v, item_schema, names))
                    .collect(),
            })
        }
        AvroValue::Map(entries) => {
            let value_schema = match schema {
                Some(AvroSchema::Map(map)) => Some(&*map.types),
                _ => None,
            };
            Kind::StructValue(prost_types::Struct {
                fields: entries
                    .into_iter()
                    .map(|(k, v)| (k, avro_to_proto(v, value_schema, names)))
                    .collect(),
            })
        }
        AvroValue::Record(fields) => {
            let field_schemas: HashMap<&str, &AvroSchema> = match schema {
                Some(AvroSchema::Record(record)) => record
                    .fields
                    .iter()
                    .map(|f| (f.name.as_str(), &f.schema))
                    .collect(),
                _ => HashMap::new(),
            };
            let fields: BTreeMap<String, prost_types::Value> = fields
                .into_iter()
                .map(|(name, v)| {
                    let s = field_schemas.get(name.as_str()).copied();
                    let converted = avro_to_proto(v, s, names);
                    (name, converted)
                })
                .collect();
            Kind::StructValue(prost_types::Struct { fields })
        }
        AvroValue::Date(days) => {
            timestamp_kind(i128::from(days) * 86_400 * 1_000_000_000, days.into())
        }
        AvroValue::TimestampMillis(ms) | AvroValue::LocalTimestampMillis(ms) => {
            timestamp_kind(i128::from(ms) * 1_000_000, ms as f64)
        }
        AvroValue::TimestampMicros(us) | AvroValue::LocalTimestampMicros(us) => {
            timestamp_kind(i128::from(us) * 1_000, us as f64)
        }
        // time.Duration: nanoseconds.
        AvroValue::TimeMillis(ms) => Kind::NumberValue(f64::from(ms) * 1e6),
        AvroValue::TimeMicros(us) => Kind::NumberValue(us as f64 * 1e3),
        AvroValue::Duration(d) => Kind::StructValue(prost_types::Struct {
            fields: BTreeMap::from([
                ("Months".to_string(), number(u32::from(d.months()).into())),
                ("Days".to_string(), number(u32::from(d.days()).into())),
                (
                    "Milliseconds".to_string(),
                    number(u32::from(d.millis()).into()),
                ),
            ]),
        }),
        AvroValue::Decimal(decimal) => {
            let scale = match schema {
                Some(AvroSchema::Decimal(d)) => d.scale,
                _ => 0,
            };
            let bytes: Vec<u8> = Vec::try_from(&decimal).unwrap_or_default();
            Kind::StringValue(decimal_string(&bytes, scale))
        }
        AvroValue::BigDecimal(big) => Kind::StringValue(big.to_string()),
    };
    prost_types::Value { kind: Some(kind) }
}

fn number(n: f64) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::NumberValue(n)),
    }
}

/// Go's JSON encoder writes a `float32` with the shortest decimal that round-trips as a
/// `float32`; widening the bits to `f64` would print `1.100000023841858` for `1.1`.
fn float32_as_go_json(f: f32) -> f64 {
    if !f.is_finite() {
        return f64::from(f);
    }
    format!("{f}").parse::<f64>().unwrap_or(f64::from(f))
}

/// A timestamp as Go's `time.Time` JSON form (RFC 3339 with trimmed nanoseconds, UTC); the raw
/// number when outside years 0–9999 (Go's encoder refuses those).
fn timestamp_kind(unix_nanos: i128, raw: f64) -> Kind {
    match rfc3339_nano(unix_nanos) {
        Some(s) => Kind::StringValue(s),
        None => Kind::NumberValue(raw),
    }
}

/// Go's `time.RFC3339Nano` layout for a UTC instant.
pub(crate) fn rfc3339_nano(unix_nanos: i128) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(unix_nanos).ok()?;
    if !(0..=9999).contains(&t.year()) {
        return None;
    }
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let nanos = t.nanosecond();
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        s.push('.');
        s.push_str(fraction.trim_end_matches('0'));
    }
    s.push('Z');
    Some(s)
}

/// The exact decimal text of a two's-complement big-endian unscaled value with `scale`
/// fraction digits.
pub(crate) fn decimal_string(bytes: &[u8], scale: usize) -> String {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    // Magnitude, big-endian.
    let mut magnitude: Vec<u8> = if negative {
        // Two's complement: invert and add one.
        let mut m: Vec<u8> = bytes.iter().map(|b| !b).collect();
        for byte in m.iter_mut().rev() {
            let (v, carry) = byte.overflowing_add(1);
            *byte = v;
            if !carry {
                break;
            }
        }
        m
    } else {
        bytes.to_vec()
    };
    // Repeated division by 10.
    let mut digits = Vec::new();
    while magnitude.iter().any(|&b| b != 0) {
        let mut remainder: u16 = 0;
        for byte in magnitude.iter_mut() {
            let current = (remainder << 8) | u16::from(*byte);
            *byte = (current / 10) as u8;
            remainder = current % 10;
        }
        digits.push(b'0' + remainder as u8);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    while digits.len() <= scale {
        digits.push(b'0');
    }
    digits.reverse();
    let digits = String::from_utf8(digits).unwrap_or_default();
    let (int_part, frac_part) = digits.split_at(digits.len() - scale);
    let mut out = String::new();
    if negative && digits.bytes().any(|b| b != b'0') {
        out.push('-');
    }
    out.push_str(int_part);
    if scale > 0 {
        out.push('.');
        out.push_str(frac_part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Record as AvroRecord;

    fn names_of(schema: &AvroSchema) -> HashMap<Name, AvroSchema> {
        ResolvedSchema::try_from(schema)
            .unwrap()
            .get_names()
            .iter()
            .map(|(n, s)| (n.clone(), (*s).clone()))
            .collect()
    }

    fn json(value: &prost_types::Value) -> serde_json::Value {
        crate::destination::template::proto_value_to_json(value)
    }

    /// Encodes `value` with `schema_text`, decodes it back through the module and returns
    /// the JSON rendering.
    fn round_trip(schema_text: &str, value: AvroValue) -> serde_json::Value {
        let parsed = parse_schema(schema_text.as_bytes()).unwrap();
        let bytes = apache_avro::to_avro_datum(&parsed.schema, value).unwrap();
        let structure = decode_datum(&bytes, &parsed).unwrap();
        json(&prost_types::Value {
            kind: Some(Kind::StructValue(structure)),
        })
    }

    #[test]
    fn primitives_and_nested_records() {
        let text = r#"{"type":"record","name":"record","fields":[
            {"name":"id","type":"long"},
            {"name":"small","type":"int"},
            {"name":"name","type":"string"},
            {"name":"trial","type":"boolean"},
            {"name":"score","type":"double"},
            {"name":"ratio","type":"float"},
            {"name":"nothing","type":"null"},
            {"name":"blob","type":"bytes"},
            {"name":"address","type":{"type":"record","name":"record.address","fields":[
                {"name":"city","type":"string"},{"name":"zip","type":"int"}]}}
        ]}"#;
        let schema = parse_schema(text.as_bytes()).unwrap().schema;
        let address_schema = match &schema {
            AvroSchema::Record(r) => r.fields[8].schema.clone(),
            _ => unreachable!(),
        };
        let mut address = AvroRecord::new(&address_schema).unwrap();
        address.put("city", "Berlin");
        address.put("zip", 10115);
        let mut record = AvroRecord::new(&schema).unwrap();
        record.put("id", 4_503_599_627_370_497i64);
        record.put("small", -7);
        record.put("name", "Ada");
        record.put("trial", true);
        record.put("score", 12.5f64);
        record.put("ratio", 1.1f32);
        record.put("nothing", AvroValue::Null);
        record.put("blob", AvroValue::Bytes(vec![0, 1, 2, 250]));
        record.put("address", address);
        assert_eq!(
            round_trip(text, record.into()),
            serde_json::json!({
                "id": 4_503_599_627_370_497i64,
                "small": -7,
                "name": "Ada",
                "trial": true,
                "score": 12.5,
                "ratio": 1.1,
                "nothing": null,
                "blob": "AAEC+g==",
                "address": {"city": "Berlin", "zip": 10115}
            })
        );
    }

    #[test]
    fn unions_arrays_maps_enums_fixed() {
        let text = r#"{"type":"record","name":"record","fields":[
            {"name":"maybe","type":["null","string"]},
            {"name":"missing","type":["null","string"]},
            {"name":"multi","type":["null","long","string",{"type":"array","items":"int"}]},
            {"name":"tags","type":{"type":"array","items":["null","string","long"]}},
            {"name":"attrs","type":{"type":"map","values":["null","double","string"]}},
            {"name":"color","type":{"type":"enum","name":"Color","symbols":["RED","GREEN"]}},
            {"name":"hash","type":{"type":"fixed","name":"Hash","size":3}},
            {"name":"other","type":"Hash"},
            {"name":"child","type":["null",{"type":"record","name":"Child","fields":[{"name":"n","type":"int"}]}]}
        ]}"#;
        let schema = parse_schema(text.as_bytes()).unwrap().schema;
        let fields = match &schema {
            AvroSchema::Record(r) => r.fields.clone(),
            _ => unreachable!(),
        };
        let record = AvroValue::Record(vec![
            (
                "maybe".into(),
                AvroValue::Union(1, Box::new(AvroValue::String("x".into()))),
            ),
            (
                "missing".into(),
                AvroValue::Union(0, Box::new(AvroValue::Null)),
            ),
            (
                "multi".into(),
                AvroValue::Union(
                    3,
                    Box::new(AvroValue::Array(vec![AvroValue::Int(1), AvroValue::Int(2)])),
                ),
            ),
            (
                "tags".into(),
                AvroValue::Array(vec![
                    AvroValue::Union(1, Box::new(AvroValue::String("a".into()))),
                    AvroValue::Union(2, Box::new(AvroValue::Long(3))),
                    AvroValue::Union(0, Box::new(AvroValue::Null)),
                ]),
            ),
            (
                "attrs".into(),
                AvroValue::Map(HashMap::from([
                    (
                        "pi".to_string(),
                        AvroValue::Union(1, Box::new(AvroValue::Double(3.25))),
                    ),
                    (
                        "s".to_string(),
                        AvroValue::Union(2, Box::new(AvroValue::String("t".into()))),
                    ),
                ])),
            ),
            ("color".into(), AvroValue::Enum(1, "GREEN".into())),
            ("hash".into(), AvroValue::Fixed(3, vec![1, 2, 255])),
            ("other".into(), AvroValue::Fixed(3, vec![0, 0, 7])),
            (
                "child".into(),
                AvroValue::Union(
                    1,
                    Box::new(AvroValue::Record(vec![("n".into(), AvroValue::Int(4))])),
                ),
            ),
        ]);
        assert!(record.validate(&schema), "{fields:?}");
        assert_eq!(
            round_trip(text, record),
            serde_json::json!({
                "maybe": "x",
                "missing": null,
                "multi": [1, 2],
                "tags": ["a", 3, null],
                "attrs": {"pi": 3.25, "s": "t"},
                "color": "GREEN",
                "hash": [1, 2, 255],
                "other": [0, 0, 7],
                "child": {"n": 4}
            })
        );
    }

    #[test]
    fn logical_types_follow_go_json() {
        let text = r#"{"type":"record","name":"record","fields":[
            {"name":"day","type":{"type":"int","logicalType":"date"}},
            {"name":"ms","type":{"type":"long","logicalType":"timestamp-millis"}},
            {"name":"us","type":{"type":"long","logicalType":"timestamp-micros"}},
            {"name":"local","type":{"type":"long","logicalType":"local-timestamp-micros"}},
            {"name":"ns","type":{"type":"long","logicalType":"timestamp-nanos"}},
            {"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
            {"name":"tu","type":{"type":"long","logicalType":"time-micros"}},
            {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
            {"name":"debt","type":{"type":"fixed","name":"Debt","size":4,"logicalType":"decimal","precision":8,"scale":3}},
            {"name":"id","type":{"type":"string","logicalType":"uuid"}},
            {"name":"span","type":{"type":"fixed","name":"Span","size":12,"logicalType":"duration"}}
        ]}"#;
        let record = AvroValue::Record(vec![
            ("day".into(), AvroValue::Date(19_844)),
            ("ms".into(), AvroValue::TimestampMillis(1_714_558_272_500)),
            (
                "us".into(),
                AvroValue::TimestampMicros(1_714_558_272_123_456),
            ),
            (
                "local".into(),
                AvroValue::LocalTimestampMicros(1_714_558_272_000_000),
            ),
            ("ns".into(), AvroValue::TimestampNanos(5)),
            ("tm".into(), AvroValue::TimeMillis(1_500)),
            ("tu".into(), AvroValue::TimeMicros(2)),
            (
                "price".into(),
                AvroValue::Decimal(apache_avro::Decimal::from(1234i32.to_be_bytes())),
            ),
            (
                "debt".into(),
                AvroValue::Decimal(apache_avro::Decimal::from((-5i32).to_be_bytes())),
            ),
            (
                "id".into(),
                AvroValue::Uuid(
                    apache_avro::Uuid::parse_str("550e8400-e29b-41d4-a716-446655440000").unwrap(),
                ),
            ),
            (
                "span".into(),
                AvroValue::Duration(apache_avro::Duration::new(
                    apache_avro::Months::new(1),
                    apache_avro::Days::new(2),
                    apache_avro::Millis::new(3),
                )),
            ),
        ]);
        assert_eq!(
            round_trip(text, record),
            serde_json::json!({
                "day": "2024-05-01T00:00:00Z",
                "ms": "2024-05-01T10:11:12.5Z",
                "us": "2024-05-01T10:11:12.123456Z",
                "local": "2024-05-01T10:11:12Z",
                "ns": 5,
                "tm": 1_500_000_000i64,
                "tu": 2_000,
                "price": "12.34",
                "debt": "-0.005",
                "id": "550e8400-e29b-41d4-a716-446655440000",
                "span": {"Months": 1, "Days": 2, "Milliseconds": 3}
            })
        );
    }

    #[test]
    fn top_level_map_and_named_references() {
        let text = r#"{"type":"map","values":{"type":"record","name":"Item","fields":[
            {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":1}},
            {"name":"next","type":["null","Item"]}]}}"#;
        let item = |price: i32, next: AvroValue| {
            AvroValue::Record(vec![
                (
                    "price".into(),
                    AvroValue::Decimal(apache_avro::Decimal::from(price.to_be_bytes())),
                ),
                ("next".into(), next),
            ])
        };
        let nested = item(
            15,
            AvroValue::Union(
                1,
                Box::new(item(-25, AvroValue::Union(0, Box::new(AvroValue::Null)))),
            ),
        );
        let value = AvroValue::Map(HashMap::from([("a".to_string(), nested)]));
        assert_eq!(
            round_trip(text, value),
            serde_json::json!({"a": {"price": "1.5", "next": {"price": "-2.5", "next": null}}})
        );
    }

    #[test]
    fn rejects_schemas_that_cannot_become_structured_data() {
        let err = parse_schema(br#""string""#).err().unwrap();
        assert!(err.contains("string"), "{err}");
        let err = parse_schema(b"{not json").err().unwrap();
        assert!(err.contains("invalid Avro schema"), "{err}");
    }

    #[test]
    fn truncated_datum_is_an_error() {
        let parsed = parse_schema(
            br#"{"type":"record","name":"r","fields":[{"name":"a","type":"long"},{"name":"b","type":"long"}]}"#,
        )
        .unwrap();
        assert!(decode_datum(&[2], &parsed).is_err());
        // A trailing byte is ignored, as hamba/avro does.
        let value = decode_datum(&[2, 4, 6], &parsed).unwrap();
        assert_eq!(value.fields.len(), 2);
    }

    #[test]
    fn decimal_text() {
        assert_eq!(decimal_string(&[], 0), "0");
        assert_eq!(decimal_string(&[], 2), "0.00");
        assert_eq!(decimal_string(&[0x04, 0xD2], 2), "12.34");
        assert_eq!(decimal_string(&[0x04, 0xD2], 0), "1234");
        assert_eq!(decimal_string(&[0x05], 3), "0.005");
        assert_eq!(decimal_string(&[0xFB], 3), "-0.005");
        assert_eq!(decimal_string(&[0xFF, 0xFF], 1), "-0.1");
        assert_eq!(decimal_string(&[0x80], 0), "-128");
        // 2^72 = 4722366482869645213696
        assert_eq!(
            decimal_string(&[0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0], 4),
            "472236648286964521.3696"
        );
    }

    #[test]
    fn go_time_layout() {
        assert_eq!(rfc3339_nano(0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_nano(-1).unwrap(), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(rfc3339_nano(1_000_000).unwrap(), "1970-01-01T00:00:00.001Z");
        assert!(rfc3339_nano(-62_167_219_200_000_000_001).is_none()); // before year 0
        assert_eq!(
            rfc3339_nano(-62_167_219_200_000_000_000).unwrap(),
            "0000-01-01T00:00:00Z"
        );
    }

    #[test]
    fn float32_uses_the_shortest_decimal() {
        assert_eq!(float32_as_go_json(1.1), 1.1);
        assert_eq!(float32_as_go_json(0.1), 0.1);
        assert_eq!(float32_as_go_json(3.0), 3.0);
        assert!(float32_as_go_json(f32::NAN).is_nan());
    }

    /// Conduit's generator fills `int` fields with 63-bit random numbers; a double would
    /// round them (8340323910550179726 → 8340323910550180000).
    #[test]
    fn longs_beyond_two_to_the_53_stay_exact_in_every_rendering() {
        use crate::proto::opencdc::v1::{data, Change, Data, Record};
        let text = r#"{"type":"record","name":"r","fields":[{"name":"id","type":"long"},{"name":"min","type":"long"}]}"#;
        let parsed = parse_schema(text.as_bytes()).unwrap();
        let mut datum = AvroRecord::new(&parsed.schema).unwrap();
        datum.put("id", 8_340_323_910_550_179_726i64);
        datum.put("min", i64::MIN);
        let bytes = apache_avro::to_avro_datum(&parsed.schema, datum).unwrap();
        let after = decode_datum(&bytes, &parsed).unwrap();
        let record = Record {
            payload: Some(Change {
                before: None,
                after: Some(Data {
                    data: Some(data::Data::StructuredData(after)),
                }),
            }),
            ..Record::default()
        };

        let format = |name: &str| {
            let format = crate::destination::format::RecordFormat::from_settings(name, "")
                .unwrap()
                .encode(&record)
                .unwrap();
            String::from_utf8(format).unwrap()
        };
        let opencdc = format("opencdc/json");
        assert!(
            opencdc.contains(r#""after":{"id":8340323910550179726,"min":-9223372036854775808}"#),
            "{opencdc}"
        );
        let debezium = format("debezium/json");
        assert!(
            debezium.contains(r#""id":8340323910550179726"#)
                && debezium.contains(r#"{"type":"int64","field":"id"}"#),
            "{debezium}"
        );
        let key = crate::destination::key::fields_key(&record, &["id".to_string()]);
        assert_eq!(key, "8340323910550179726");
        let template =
            crate::destination::template::RecordTemplate::compile("id-{{Payload.After.id}}")
                .unwrap();
        assert_eq!(template.render(&record).unwrap(), "id-8340323910550179726");
    }

    #[test]
    fn conversion_without_a_schema_still_works() {
        let v = avro_to_proto(
            AvroValue::Union(0, Box::new(AvroValue::Long(4))),
            None,
            &HashMap::new(),
        );
        assert_eq!(json(&v), serde_json::json!(4));
        let names = names_of(&AvroSchema::parse_str(r#""int""#).unwrap());
        assert!(names.is_empty());
    }

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
