//! Record formats: what the destination writes as the data of a Kinesis record
//! (`sdk.record.format` and `sdk.record.format.options`, see the Go SDK's
//! `DestinationWithRecordFormat`, `conduit-connector-sdk@v0.14.2: destination_middleware.go`,
//! `record_serializer.go`).
//!
//! * `opencdc/json` (default) — byte for byte what a Go connector writes for the same record:
//!   `opencdc.Record` marshalled by `github.com/goccy/go-json` (the SDK's `JSONEncoder`), after
//!   the record went through protobuf-go and `Record.FromProto`. The rules, from the Go source
//!   (`conduit-commons@v0.6.0`, goccy/go-json v0.10.6, protobuf-go v1.36.6):
//!   - fields in struct order `position`, `operation`, `metadata`, `key`,
//!     `payload{before, after}` (`opencdc/record.go`, `opencdc/data.go`);
//!   - `position` is a `[]byte`: standard base64 with padding; an empty position decodes to a
//!     nil slice in protobuf-go (proto3 scalar `bytes`), so it is `null`;
//!   - `operation` uses `MarshalText`: `create`, `update`, `delete`, `snapshot`, and
//!     `Operation(N)` for anything else, `Operation(0)` included (`opencdc/operation.go`,
//!     `operation_string.go`);
//!   - `metadata` is a `map[string]string`: `null` when the record has no metadata (protobuf-go
//!     leaves an empty map nil), else an object;
//!   - `RawData.MarshalJSON` is standard base64 with padding; `null` for nil; a set but empty
//!     `raw_data` is a non-nil empty slice in protobuf-go (oneof bytes), so `""`. A `Data` with
//!     no oneof set, or no `Data`, is `null` (`opencdc/data.go`, `opencdc/proto.go`);
//!   - structured data is `structpb.Struct.AsMap()`: numbers are float64, NaN and ±Inf become
//!     the strings `"NaN"`, `"Infinity"`, `"-Infinity"`, a `Value` without a kind is `null`;
//!   - floats: `strconv.AppendFloat(v, 'f', -1, 64)`, or `'e'` when `|v| < 1e-6 || |v| >= 1e21`.
//!     Unlike `encoding/json`, goccy does not shorten the exponent: `1e-07`, `1e+21`
//!     (`internal/encoder/encoder.go: AppendFloat64`). Whole numbers have no fraction, `-0`;
//!   - strings are HTML-escaped and UTF-8-normalised: `"` `\\` `\n` `\r` `\t` as such, other
//!     bytes below 0x20 and `<` `>` `&` as `\u00XX` (lowercase hex), U+2028/U+2029 as
//!     `\u2028`/`\u2029`, each byte of invalid UTF-8 as `\ufffd`; `/` and DEL are not escaped
//!     (`internal/encoder/string.go: appendNormalizedHTMLString`);
//!   - map keys are sorted by their *encoded* bytes (`"key",` compared with `bytes.Compare`,
//!     `internal/encoder/encoder.go: Mapslice.Less`), so escaped keys sort by their escape
//!     (`<` is `\u003c`, after `Z`) and a key sorts after its extensions by ` ` or `!`
//!     (`"a b"`, `"a!"`, `"a"`).
//!
//!   The SDK's `opencdc/json` converter and encoder ignore options; this one rejects them.
//! * `debezium/json` — the SDK's `DebeziumConverter` + `JSONEncoder` (`record_serializer.go`,
//!   `kafkaconnect/{debezium,reflect,schema}.go`): a Kafka Connect envelope
//!   `{"schema":…,"payload":{"before","after","source","op","ts_ms","transaction"}}`. Raw data
//!   that is a JSON object is parsed (numbers become float64); other raw data is hoisted into
//!   `{"<debezium.rawData.key>": base64}`; `source` is the metadata; `ts_ms` is
//!   `opencdc.readAt` in milliseconds (left out when zero). Differences from Go: Go lists the
//!   schema `fields` of before/after/source in random map order, this lists them in the
//!   payload's key order; numbers are `double` (Go's `int64` only arises for native Go ints,
//!   which never come over the wire). Raw JSON is decoded as goccy's `json.Unmarshal` does
//!   it: invalid UTF-8 is kept (and written as `\ufffd`), raw control characters other than
//!   NUL are accepted, a lone surrogate escape is U+FFFD, numbers are any run of
//!   `0-9 . e E + -` that `strconv.ParseFloat` reads as a finite float64 (`01`, `1.`).
//!   Known remaining differences: goccy nests up to 10000 levels (this parser 512, deeper is
//!   "not JSON" and hoisted) and accepts a few more malformed inputs (e.g. `null` as an
//!   object key).
//! * `template` — the options are a Handlebars template ([`RecordTemplate`]) rendered per
//!   record.
//! * `raw` — `payload.after` as it is: raw bytes unchanged, structured data as compact JSON
//!   (the rules above, which is what `StructuredData.Bytes()` gives in Go).
//! * `row/json` — `payload.after` as a JSON object plus the operation name and a timestamp; see
//!   [`RecordFormat::RowJson`].

mod debezium;
mod go_json;
mod json_parser;
mod opencdc;
mod raw;
mod row;
mod template;
#[cfg(test)]
pub(crate) mod testing;

use std::collections::BTreeMap;

use super::template::RecordTemplate;
use crate::config::ConfigError;
use crate::proto::opencdc::v1::{data, Data, Record};
use crate::spec::{SDK_RECORD_FORMAT, SDK_RECORD_FORMAT_OPTIONS};

/// The accepted values of `sdk.record.format`.
pub(crate) const FORMAT_NAMES: &[&str] = &[
    "opencdc/json",
    "debezium/json",
    "template",
    "raw",
    "row/json",
];

const DEBEZIUM_SCHEMA_NAME: &str = "debezium.schema.name";
const DEBEZIUM_RAW_DATA_KEY: &str = "debezium.rawData.key";
/// The Go SDK's `debeziumDefaultRawDataKey`.
pub(crate) const DEBEZIUM_DEFAULT_RAW_DATA_KEY: &str = "opencdc.rawData";
const ROW_OP_TYPE_FIELD: &str = "op.type.field";
const ROW_OP_TIMESTAMP_FIELD: &str = "op.timestamp.field";
pub(crate) const ROW_DEFAULT_OP_TYPE_FIELD: &str = "op_type";
pub(crate) const ROW_DEFAULT_OP_TIMESTAMP_FIELD: &str = "op_timestamp";

const METADATA_CREATED_AT: &str = "opencdc.createdAt";
const METADATA_READ_AT: &str = "opencdc.readAt";

/// How a record becomes the bytes of a Kinesis record.
#[derive(Debug, Clone)]
pub enum RecordFormat {
    /// The whole record as Conduit's Go code serializes it (`opencdc/json`).
    OpenCdcJson,
    /// A Debezium / Kafka Connect JSON envelope (`debezium/json`).
    DebeziumJson {
        /// `schema.name` of the envelope (`debezium.schema.name`).
        schema_name: Option<String>,
        /// The field that raw, non-JSON data is put under (`debezium.rawData.key`).
        raw_data_key: String,
    },
    /// A Handlebars template rendered per record (`template`).
    Template(RecordTemplate),
    /// `payload.after` as it is (`raw`).
    Raw,
    /// `payload.after` as a flat JSON object plus two fields (`row/json`):
    /// `op_type_field` holds the operation name (`create`, `update`, `delete`, `snapshot`) and
    /// `op_timestamp_field` the record's time as RFC 3339 UTC with microseconds
    /// (`2026-11-22T10:00:00.123456Z`), taken from `opencdc.createdAt`, else `opencdc.readAt`,
    /// else the current time. An empty field name leaves that field out. The two fields come
    /// first; a row field with the same name is dropped (the operation field wins).
    ///
    /// The row is structured `payload.after`, or raw `payload.after` that is a JSON object; a
    /// delete without `payload.after` uses `payload.before`. Structured rows list fields in
    /// the key order of `opencdc/json`; raw JSON rows keep their own field order and number
    /// literals and are written compactly.
    RowJson {
        op_type_field: String,
        op_timestamp_field: String,
    },
}

/// Why a record could not be encoded. The destination nacks such records.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("the record has no {part}, which the {format} format writes")]
    Missing {
        format: &'static str,
        part: &'static str,
    },
    #[error("{part} is not a JSON object ({reason}); the {format} format writes JSON objects")]
    NotAnObject {
        format: &'static str,
        part: &'static str,
        reason: String,
    },
    #[error("the record template (sdk.record.format.options) {0}")]
    Template(#[source] super::template::TemplateError),
}

impl RecordFormat {
    /// From the values of `sdk.record.format` and `sdk.record.format.options`. An empty format
    /// is the default, `opencdc/json`. Options are `k=v,k=v` (keys and values trimmed, empty
    /// items ignored) except for `template`, whose options are the template.
    pub fn from_settings(format: &str, options: &str) -> Result<RecordFormat, ConfigError> {
        match format.trim() {
            "" | "opencdc/json" => {
                no_options("opencdc/json", options)?;
                Ok(RecordFormat::OpenCdcJson)
            }
            "debezium/json" => {
                let opts = parse_options(
                    "debezium/json",
                    options,
                    &[DEBEZIUM_SCHEMA_NAME, DEBEZIUM_RAW_DATA_KEY],
                )?;
                let schema_name = opts
                    .get(DEBEZIUM_SCHEMA_NAME)
                    .filter(|v| !v.is_empty())
                    .map(|v| v.to_string());
                let raw_data_key = opts
                    .get(DEBEZIUM_RAW_DATA_KEY)
                    .filter(|v| !v.is_empty())
                    .unwrap_or(&DEBEZIUM_DEFAULT_RAW_DATA_KEY)
                    .to_string();
                Ok(RecordFormat::DebeziumJson {
                    schema_name,
                    raw_data_key,
                })
            }
            "template" => {
                if options.trim().is_empty() {
                    return Err(ConfigError::invalid(
                        SDK_RECORD_FORMAT_OPTIONS,
                        "the template format needs a Handlebars template here, \
                         e.g. {{Payload.After.id}}",
                    ));
                }
                RecordTemplate::compile(options)
                    .map(RecordFormat::Template)
                    .map_err(|e| {
                        ConfigError::invalid(
                            SDK_RECORD_FORMAT_OPTIONS,
                            format!("the template of the template format {e}"),
                        )
                    })
            }
            "raw" => {
                no_options("raw", options)?;
                Ok(RecordFormat::Raw)
            }
            "row/json" => {
                let opts = parse_options(
                    "row/json",
                    options,
                    &[ROW_OP_TYPE_FIELD, ROW_OP_TIMESTAMP_FIELD],
                )?;
                let op_type_field = opts
                    .get(ROW_OP_TYPE_FIELD)
                    .unwrap_or(&ROW_DEFAULT_OP_TYPE_FIELD)
                    .to_string();
                let op_timestamp_field = opts
                    .get(ROW_OP_TIMESTAMP_FIELD)
                    .unwrap_or(&ROW_DEFAULT_OP_TIMESTAMP_FIELD)
                    .to_string();
                if !op_type_field.is_empty() && op_type_field == op_timestamp_field {
                    return Err(ConfigError::invalid(
                        SDK_RECORD_FORMAT_OPTIONS,
                        format!(
                            "{ROW_OP_TYPE_FIELD} and {ROW_OP_TIMESTAMP_FIELD} are both \
                             {op_type_field:?}; give them different names (or an empty one \
                             to leave a field out)"
                        ),
                    ));
                }
                Ok(RecordFormat::RowJson {
                    op_type_field,
                    op_timestamp_field,
                })
            }
            other => Err(ConfigError::NotIncluded {
                name: SDK_RECORD_FORMAT.to_string(),
                value: other.to_string(),
                allowed: FORMAT_NAMES.join(", "),
            }),
        }
    }

    /// The bytes written to Kinesis for this record.
    pub fn encode(&self, record: &Record) -> Result<Vec<u8>, FormatError> {
        match self {
            RecordFormat::OpenCdcJson => {
                let mut out = Vec::with_capacity(size_hint(record));
                opencdc::write_opencdc(&mut out, record);
                Ok(out)
            }
            RecordFormat::DebeziumJson {
                schema_name,
                raw_data_key,
            } => {
                let mut out = Vec::with_capacity(2 * size_hint(record) + 512);
                debezium::write_debezium(&mut out, record, schema_name.as_deref(), raw_data_key);
                Ok(out)
            }
            RecordFormat::Template(template) => template::encode_template(template, record),
            RecordFormat::Raw => raw::encode_raw(record),
            RecordFormat::RowJson {
                op_type_field,
                op_timestamp_field,
            } => row::encode_row(record, op_type_field, op_timestamp_field),
        }
    }
}

fn no_options(format: &str, options: &str) -> Result<(), ConfigError> {
    if options.trim().is_empty() {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            SDK_RECORD_FORMAT_OPTIONS,
            format!("the {format} format takes no options, got {options:?}"),
        ))
    }
}

/// `k=v,k=v` as the Go SDK splits it (`GenericRecordSerializer.parseFormatOptions`: split on
/// `,`, then on the first `=`; a missing `=` means an empty value; later keys win). Unlike Go,
/// keys and values are trimmed, empty items skipped and unknown keys rejected.
fn parse_options<'a>(
    format: &str,
    options: &'a str,
    accepted: &[&str],
) -> Result<BTreeMap<&'a str, &'a str>, ConfigError> {
    let mut parsed = BTreeMap::new();
    for item in options.split(',') {
        if item.trim().is_empty() {
            continue;
        }
        let (key, value) = item.split_once('=').unwrap_or((item, ""));
        let (key, value) = (key.trim(), value.trim());
        if !accepted.contains(&key) {
            return Err(ConfigError::invalid(
                SDK_RECORD_FORMAT_OPTIONS,
                format!(
                    "unknown option {key:?} for the {format} format; accepted options: {}",
                    accepted.join(", ")
                ),
            ));
        }
        parsed.insert(key, value);
    }
    Ok(parsed)
}

/// The data of a `Data`, with "no data" for an absent `Data`, an unset oneof and empty raw
/// bytes (Conduit turns missing data into empty raw data).
fn non_empty(d: Option<&Data>) -> Option<&data::Data> {
    match d.and_then(|d| d.data.as_ref()) {
        Some(data::Data::RawData(b)) if b.is_empty() => None,
        other => other,
    }
}

fn size_hint(record: &Record) -> usize {
    fn data_hint(d: Option<&Data>) -> usize {
        match d.and_then(|d| d.data.as_ref()) {
            None => 4,
            Some(data::Data::RawData(b)) => b.len() / 3 * 4 + 6,
            Some(data::Data::StructuredData(s)) => 32 + 48 * s.fields.len(),
        }
    }
    let metadata: usize = record
        .metadata
        .iter()
        .map(|(k, v)| k.len() + v.len() + 6)
        .sum();
    let payload = record
        .payload
        .as_ref()
        .map(|p| data_hint(p.before.as_ref()) + data_hint(p.after.as_ref()))
        .unwrap_or(8);
    96 + record.position.len() / 3 * 4 + metadata + data_hint(record.key.as_ref()) + payload
}

/// A metadata value parsed as unix nanoseconds (`strconv.ParseInt(v, 10, 64)`).
fn metadata_nanos(r: &Record, key: &str) -> Option<i64> {
    r.metadata.get(key).and_then(|v| v.parse::<i64>().ok())
}

#[cfg(test)]
mod tests {
    use super::testing::*;

    #[test]
    fn settings() {
        assert!(matches!(
            RecordFormat::from_settings("", "").unwrap(),
            RecordFormat::OpenCdcJson
        ));
        assert!(matches!(
            RecordFormat::from_settings("opencdc/json", "").unwrap(),
            RecordFormat::OpenCdcJson
        ));
        match RecordFormat::from_settings("debezium/json", "").unwrap() {
            RecordFormat::DebeziumJson {
                schema_name,
                raw_data_key,
            } => {
                assert_eq!(schema_name, None);
                assert_eq!(raw_data_key, "opencdc.rawData");
            }
            other => panic!("{other:?}"),
        }
        match RecordFormat::from_settings(
            "debezium/json",
            "debezium.schema.name=my.schema,debezium.rawData.key=data,",
        )
        .unwrap()
        {
            RecordFormat::DebeziumJson {
                schema_name,
                raw_data_key,
            } => {
                assert_eq!(schema_name.as_deref(), Some("my.schema"));
                assert_eq!(raw_data_key, "data");
            }
            other => panic!("{other:?}"),
        }
        match RecordFormat::from_settings("row/json", "").unwrap() {
            RecordFormat::RowJson {
                op_type_field,
                op_timestamp_field,
            } => {
                assert_eq!(op_type_field, "op_type");
                assert_eq!(op_timestamp_field, "op_timestamp");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn settings_errors_name_the_parameter() {
        let err = RecordFormat::from_settings("avro", "").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("\"sdk.record.format\""), "{message}");
        for name in FORMAT_NAMES {
            assert!(message.contains(name), "{message}");
        }

        let err = RecordFormat::from_settings("debezium/json", "debezium.schema=x").unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("\"sdk.record.format.options\""),
            "{message}"
        );
        assert!(message.contains("\"debezium.schema\""), "{message}");
        assert!(
            message.contains("debezium.schema.name, debezium.rawData.key"),
            "{message}"
        );

        let err = RecordFormat::from_settings("row/json", "op.type=x").unwrap_err();
        assert!(
            err.to_string()
                .contains("op.type.field, op.timestamp.field"),
            "{err}"
        );
        let err = RecordFormat::from_settings("row/json", "op.type.field=x,op.timestamp.field=x")
            .unwrap_err();
        assert!(
            err.to_string().contains("sdk.record.format.options"),
            "{err}"
        );

        for format in ["opencdc/json", "raw"] {
            let err = RecordFormat::from_settings(format, "a=b").unwrap_err();
            let message = err.to_string();
            assert!(
                message.contains("\"sdk.record.format.options\""),
                "{message}"
            );
            assert!(message.contains("takes no options"), "{message}");
        }
    }

    #[test]
    fn format_names_match_the_spec() {
        for name in FORMAT_NAMES {
            let options = if *name == "template" { "x" } else { "" };
            assert!(RecordFormat::from_settings(name, options).is_ok(), "{name}");
        }
    }
}
