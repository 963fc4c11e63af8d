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
//!   at some value boundaries and leaves the remaining fields nil; apache-avro decodes a union
//!   cut off before its branch index as null); other truncations, including a string or bytes
//!   value cut off, are an error here. Trailing bytes after the datum are ignored by both.
//! * Hostile datums: lengths and item counts that do not fit in the datum, and values nested
//!   more than 64 levels deep, are an error before apache-avro sees them (see
//!   [`super::avro_bounds`]); hamba/avro has no such limits.
//! * Successful look-ups are cached for the life of the decoder (a subject+version is
//!   immutable); failures are not cached, the next record retries. The Go SDK caches both for 15
//!   minutes (`schema/cached.go`).
//! * A record is updated only when all its parts decoded; the Go SDK may leave a record
//!   half-decoded when it returns an error.

mod avro;
mod client;

use std::fmt;

use crate::proto::opencdc::v1::Record;
pub use client::SchemaDecoder;

pub(crate) const METADATA_KEY_SCHEMA_SUBJECT: &str = "opencdc.key.schema.subject";
pub(crate) const METADATA_KEY_SCHEMA_VERSION: &str = "opencdc.key.schema.version";
pub(crate) const METADATA_PAYLOAD_SCHEMA_SUBJECT: &str = "opencdc.payload.schema.subject";
pub(crate) const METADATA_PAYLOAD_SCHEMA_VERSION: &str = "opencdc.payload.schema.version";
/// gRPC metadata entry that carries `CONDUIT_CONNECTOR_TOKEN`
/// (`conduit-connector-protocol@v0.9.5: pconnutils/internal/metadata.go`).
pub(crate) const TOKEN_METADATA_KEY: &str = "conduit-connector-token";

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
