//! `debezium/json`: a Kafka Connect envelope as the Go SDK's `DebeziumConverter` writes it.

use std::io::Write as _;

use prost_types::value::Kind;

use super::go_json::{
    for_each_field, sorted_metadata, write_base64, write_go_string, write_string_object,
    write_struct,
};
use super::json_parser::{normalize_go, write_json_members, Json, Member, Numbers, Parser};
use super::{metadata_nanos, non_empty, METADATA_READ_AT};
use crate::proto::opencdc::v1::{data, Data, Operation, Record};

/// `DebeziumConverter.getStructuredData`: what before/after become.
enum DebeziumData<'a> {
    Nil,
    Struct(&'a prost_types::Struct),
    Parsed(Vec<Member<'a>>),
    /// Raw data that is not a JSON object, under the raw data key.
    Hoisted(&'a [u8]),
}

impl<'a> DebeziumData<'a> {
    fn of(d: Option<&'a Data>) -> Self {
        match non_empty(d) {
            None => DebeziumData::Nil,
            Some(data::Data::StructuredData(s)) => DebeziumData::Struct(s),
            Some(data::Data::RawData(bytes)) => match Parser::parse(bytes, Numbers::Go) {
                // json.Unmarshal of `null` into a map leaves it nil.
                Ok(Json::Null) => DebeziumData::Nil,
                Ok(mut object @ Json::Object(_)) => match (normalize_go(&mut object), object) {
                    (true, Json::Object(members)) => DebeziumData::Parsed(members),
                    _ => DebeziumData::Hoisted(bytes),
                },
                _ => DebeziumData::Hoisted(bytes),
            },
        }
    }

    fn is_nil(&self) -> bool {
        matches!(self, DebeziumData::Nil)
    }

    /// `,"fields":[…]` of the struct schema (nothing when there are no fields).
    fn write_schema_fields(&self, out: &mut Vec<u8>, raw_data_key: &str) {
        match self {
            DebeziumData::Nil => {}
            DebeziumData::Struct(s) => write_struct_schema_fields(out, s),
            DebeziumData::Parsed(members) => write_json_schema_fields(out, members),
            DebeziumData::Hoisted(_) => {
                out.extend_from_slice(b",\"fields\":[");
                schema_open(out, "bytes", true);
                schema_close(out, raw_data_key.as_bytes());
                out.push(b']');
            }
        }
    }

    fn write_payload(&self, out: &mut Vec<u8>, raw_data_key: &str) {
        match self {
            DebeziumData::Nil => out.extend_from_slice(b"null"),
            DebeziumData::Struct(s) => write_struct(out, s),
            DebeziumData::Parsed(members) => {
                out.push(b'{');
                write_json_members(out, members, &[], true);
                out.push(b'}');
            }
            DebeziumData::Hoisted(bytes) => {
                out.push(b'{');
                write_go_string(out, raw_data_key.as_bytes());
                out.push(b':');
                write_base64(out, bytes);
                out.push(b'}');
            }
        }
    }
}

/// `{"type":"…"` and `,"optional":true` of a `kafkaconnect.Schema`.
fn schema_open(out: &mut Vec<u8>, kind: &str, optional: bool) {
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.push(b'"');
    if optional {
        out.extend_from_slice(b",\"optional\":true");
    }
}

/// `,"field":"…"` (omitted when empty, `omitempty`) and the closing brace.
fn schema_close(out: &mut Vec<u8>, field: &[u8]) {
    if !field.is_empty() {
        out.extend_from_slice(b",\"field\":");
        write_go_string(out, field);
    }
    out.push(b'}');
}

/// `kafkaconnect.Reflect` of a structpb value after `AsInterface`.
fn write_value_schema(out: &mut Vec<u8>, v: &prost_types::Value, field: &[u8]) {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => schema_open(out, "string", true),
        Some(Kind::NumberValue(n)) if n.is_finite() => schema_open(out, "double", false),
        Some(Kind::StringValue(s)) if crate::destination::exact::exact_integer(s).is_some() => {
            schema_open(out, "int64", false)
        }
        Some(Kind::NumberValue(_)) | Some(Kind::StringValue(_)) => {
            schema_open(out, "string", false)
        }
        Some(Kind::BoolValue(_)) => schema_open(out, "boolean", false),
        Some(Kind::StructValue(s)) => {
            schema_open(out, "struct", true);
            write_struct_schema_fields(out, s);
        }
        Some(Kind::ListValue(list)) => {
            schema_open(out, "array", true);
            out.extend_from_slice(b",\"items\":");
            match list.values.first() {
                Some(first) => write_value_schema(out, first, b""),
                None => {
                    schema_open(out, "string", true);
                    schema_close(out, b"");
                }
            }
        }
    }
    schema_close(out, field);
}

fn write_struct_schema_fields(out: &mut Vec<u8>, s: &prost_types::Struct) {
    if s.fields.is_empty() {
        return;
    }
    out.extend_from_slice(b",\"fields\":[");
    let mut first = true;
    for_each_field(s, |k, v| {
        if !first {
            out.push(b',');
        }
        first = false;
        write_value_schema(out, v, k.as_bytes());
    });
    out.push(b']');
}

/// `kafkaconnect.Reflect` of a value decoded by `json.Unmarshal` (after [`normalize_go`]).
fn write_json_schema(out: &mut Vec<u8>, v: &Json<'_>, field: &[u8]) {
    match v {
        Json::Null => schema_open(out, "string", true),
        Json::Bool(_) => schema_open(out, "boolean", false),
        Json::Number(_) | Json::Float(_) => schema_open(out, "double", false),
        Json::String(_) => schema_open(out, "string", false),
        Json::Array(items) => {
            schema_open(out, "array", true);
            out.extend_from_slice(b",\"items\":");
            match items.first() {
                Some(first) => write_json_schema(out, first, b""),
                None => {
                    schema_open(out, "string", true);
                    schema_close(out, b"");
                }
            }
        }
        Json::Object(members) => {
            schema_open(out, "struct", true);
            write_json_schema_fields(out, members);
        }
    }
    schema_close(out, field);
}

fn write_json_schema_fields(out: &mut Vec<u8>, members: &[Member<'_>]) {
    if members.is_empty() {
        return;
    }
    out.extend_from_slice(b",\"fields\":[");
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_schema(out, v, k);
    }
    out.push(b']');
}

/// The fixed tail of the envelope schema: `op`, `ts_ms` and `transaction`.
const DEBEZIUM_SCHEMA_TAIL: &[u8] = br#"{"type":"string","field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},{"type":"struct","optional":true,"fields":[{"type":"string","field":"id"},{"type":"int64","field":"total_order"},{"type":"int64","field":"data_collection_order"}],"field":"transaction"}"#;

pub(super) fn write_debezium(
    out: &mut Vec<u8>,
    r: &Record,
    schema_name: Option<&str>,
    raw_data_key: &str,
) {
    let payload = r.payload.as_ref();
    let before = DebeziumData::of(payload.and_then(|p| p.before.as_ref()));
    let after = DebeziumData::of(payload.and_then(|p| p.after.as_ref()));
    let metadata = sorted_metadata(&r.metadata);

    out.extend_from_slice(b"{\"schema\":{\"type\":\"struct\"");
    if let Some(name) = schema_name.filter(|n| !n.is_empty()) {
        out.extend_from_slice(b",\"name\":");
        write_go_string(out, name.as_bytes());
    }
    out.extend_from_slice(b",\"fields\":[");
    // Before takes its schema from after when it is nil, and the other way round.
    schema_open(out, "struct", true);
    if before.is_nil() { &after } else { &before }.write_schema_fields(out, raw_data_key);
    schema_close(out, b"before");
    out.push(b',');
    schema_open(out, "struct", true);
    if after.is_nil() { &before } else { &after }.write_schema_fields(out, raw_data_key);
    schema_close(out, b"after");
    out.push(b',');
    schema_open(out, "struct", true);
    if !metadata.is_empty() {
        out.extend_from_slice(b",\"fields\":[");
        for (i, (k, _)) in metadata.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            schema_open(out, "string", false);
            schema_close(out, k.as_bytes());
        }
        out.push(b']');
    }
    schema_close(out, b"source");
    out.push(b',');
    out.extend_from_slice(DEBEZIUM_SCHEMA_TAIL);
    out.extend_from_slice(b"]},\"payload\":{\"before\":");
    before.write_payload(out, raw_data_key);
    out.extend_from_slice(b",\"after\":");
    after.write_payload(out, raw_data_key);
    out.extend_from_slice(b",\"source\":");
    if metadata.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        write_string_object(out, metadata.iter().copied());
    }
    out.extend_from_slice(b",\"op\":");
    out.extend_from_slice(match Operation::try_from(r.operation) {
        Ok(Operation::Create) => b"\"c\"",
        Ok(Operation::Update) => b"\"u\"",
        Ok(Operation::Delete) => b"\"d\"",
        Ok(Operation::Snapshot) => b"\"r\"",
        _ => b"\"\"",
    });
    // Metadata.GetReadAt → time.Unix(0, ns).UnixMilli(); `ts_ms` is omitempty.
    let read_at_ms = metadata_nanos(r, METADATA_READ_AT)
        .map(|ns| ns.div_euclid(1_000_000))
        .unwrap_or(0);
    if read_at_ms != 0 {
        let _ = write!(out, ",\"ts_ms\":{read_at_ms}");
    }
    out.extend_from_slice(b",\"transaction\":null}}");
}

#[cfg(test)]
mod tests {
    use crate::destination::format::testing::*;

    const SCHEMA_TAIL: &str = r#"{"type":"string","field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},{"type":"struct","optional":true,"fields":[{"type":"string","field":"id"},{"type":"int64","field":"total_order"},{"type":"int64","field":"data_collection_order"}],"field":"transaction"}"#;

    fn debezium(options: &str) -> RecordFormat {
        RecordFormat::from_settings("debezium/json", options).unwrap()
    }

    /// Mirrors conduit-connector-sdk v0.14.2 `record_serializer_test.go:
    /// TestDebeziumConverter_Structured`. Upstream's `"bar": 123` is a Go int (`int64`
    /// schema); over the wire it is a double.
    #[test]
    fn debezium_structured_matches_upstream() {
        let r = record(
            b"foo",
            Operation::Update,
            &[("conduit.source.plugin.name", "example")],
            raw(b"bar"),
            structured(vec![("bar", num(123.0))]),
            structured(vec![("foo", text("bar")), ("baz", text("qux"))]),
        );
        let want = format!(
            r#"{{"schema":{{"type":"struct","name":"custom.name","fields":[{{"type":"struct","optional":true,"fields":[{{"type":"double","field":"bar"}}],"field":"before"}},{{"type":"struct","optional":true,"fields":[{{"type":"string","field":"baz"}},{{"type":"string","field":"foo"}}],"field":"after"}},{{"type":"struct","optional":true,"fields":[{{"type":"string","field":"conduit.source.plugin.name"}}],"field":"source"}},{SCHEMA_TAIL}]}},"payload":{{"before":{{"bar":123}},"after":{{"baz":"qux","foo":"bar"}},"source":{{"conduit.source.plugin.name":"example"}},"op":"u","transaction":null}}}}"#
        );
        assert_eq!(
            encode(&debezium("debezium.schema.name=custom.name"), &r),
            want
        );
    }

    /// Mirrors conduit-connector-sdk v0.14.2 `record_serializer_test.go:
    /// TestDebeziumConverter_RawData`: raw data that is not JSON is hoisted under
    /// `opencdc.rawData`, and a nil after takes its schema from before.
    #[test]
    fn debezium_raw_data_matches_upstream() {
        let r = record(
            b"foo",
            Operation::Create,
            &[("conduit.source.plugin.name", "example")],
            raw(b"bar"),
            raw(b"foo"),
            None,
        );
        let want = format!(
            r#"{{"schema":{{"type":"struct","fields":[{{"type":"struct","optional":true,"fields":[{{"type":"bytes","optional":true,"field":"opencdc.rawData"}}],"field":"before"}},{{"type":"struct","optional":true,"fields":[{{"type":"bytes","optional":true,"field":"opencdc.rawData"}}],"field":"after"}},{{"type":"struct","optional":true,"fields":[{{"type":"string","field":"conduit.source.plugin.name"}}],"field":"source"}},{SCHEMA_TAIL}]}},"payload":{{"before":{{"opencdc.rawData":"Zm9v"}},"after":null,"source":{{"conduit.source.plugin.name":"example"}},"op":"c","transaction":null}}}}"#
        );
        assert_eq!(encode(&debezium(""), &r), want);
    }

    #[test]
    fn debezium_parses_raw_json_objects_like_go() {
        let r = record(
            b"1",
            Operation::Snapshot,
            &[("opencdc.readAt", "1795341600123456789")],
            None,
            None,
            raw(
                br#" {"name":"x<y", "id": 10, "f": 1.0e2, "big": 12345678901234567890,
                "tags":["a"], "n":null, "o":{"z":[], "a":true}, "id": 11} "#,
            ),
        );
        let want = format!(
            r#"{{"schema":{{"type":"struct","fields":[{{"type":"struct","optional":true,"fields":[{{"type":"double","field":"big"}},{{"type":"double","field":"f"}},{{"type":"double","field":"id"}},{{"type":"string","optional":true,"field":"n"}},{{"type":"string","field":"name"}},{{"type":"struct","optional":true,"fields":[{{"type":"boolean","field":"a"}},{{"type":"array","optional":true,"items":{{"type":"string","optional":true}},"field":"z"}}],"field":"o"}},{{"type":"array","optional":true,"items":{{"type":"string"}},"field":"tags"}}],"field":"before"}},{{"type":"struct","optional":true,"fields":[{{"type":"double","field":"big"}},{{"type":"double","field":"f"}},{{"type":"double","field":"id"}},{{"type":"string","optional":true,"field":"n"}},{{"type":"string","field":"name"}},{{"type":"struct","optional":true,"fields":[{{"type":"boolean","field":"a"}},{{"type":"array","optional":true,"items":{{"type":"string","optional":true}},"field":"z"}}],"field":"o"}},{{"type":"array","optional":true,"items":{{"type":"string"}},"field":"tags"}}],"field":"after"}},{{"type":"struct","optional":true,"fields":[{{"type":"string","field":"opencdc.readAt"}}],"field":"source"}},{SCHEMA_TAIL}]}},"payload":{{"before":null,"after":{{"big":12345678901234567000,"f":100,"id":11,"n":null,"name":"x\u003cy","o":{{"a":true,"z":[]}},"tags":["a"]}},"source":{{"opencdc.readAt":"1795341600123456789"}},"op":"r","ts_ms":1795341600123,"transaction":null}}}}"#
        );
        assert_eq!(encode(&debezium(""), &r), want);
    }

    #[test]
    fn debezium_decodes_raw_json_like_goccy() {
        // goccy keeps invalid UTF-8 (written as \ufffd) and raw control characters, and
        // reads numbers through strconv.ParseFloat (`01`, `1.`, `-.5`). Checked against
        // the Go SDK's output for the same record.
        let r = record(
            b"1",
            Operation::Create,
            &[],
            None,
            None,
            raw(b"{\"bad\":\"\xff\",\"c\":\"a\x01b\",\"n\":01,\"m\":1.,\"o\":-.5,\"x\":\"\\udc00\\ud83d\\ude00\"}"),
        );
        let json = encode(&debezium(""), &r);
        assert!(
            json.contains(
                "\"after\":{\"bad\":\"\\ufffd\",\"c\":\"a\\u0001b\",\"m\":1,\"n\":1,\"o\":-0.5,\"x\":\"\u{FFFD}\u{1F600}\"}"
            ),
            "{json}"
        );
        // NUL inside a string is the end of the input for goccy: not JSON, so hoisted.
        let r = record(
            b"1",
            Operation::Create,
            &[],
            None,
            None,
            raw(b"{\"z\":\"\x00\"}"),
        );
        assert!(encode(&debezium(""), &r).contains(r#""after":{"opencdc.rawData":"eyJ6IjoiACJ9"}"#));
    }

    #[test]
    fn debezium_edge_cases() {
        // Raw `null` is a nil map in Go; arrays, numbers out of float64 range and non-JSON
        // are hoisted under the configured key; no metadata means a null source.
        let format = debezium("debezium.rawData.key=raw, debezium.schema.name=");
        let r = record(
            b"1",
            Operation::Delete,
            &[],
            None,
            raw(b"null"),
            raw(b"[1,2]"),
        );
        let json = encode(&format, &r);
        assert!(
            json.ends_with(
                r#""payload":{"before":null,"after":{"raw":"WzEsMl0="},"source":null,"op":"d","transaction":null}}"#
            ),
            "{json}"
        );
        assert!(json.starts_with(r#"{"schema":{"type":"struct","fields":[{"type":"struct","optional":true,"fields":[{"type":"bytes","optional":true,"field":"raw"}],"field":"before"}"#), "{json}");
        assert!(
            json.contains(r#"{"type":"struct","optional":true,"field":"source"}"#),
            "{json}"
        );
        let r = record(
            b"1",
            Operation::Create,
            &[],
            None,
            None,
            raw(br#"{"a":1e400}"#),
        );
        assert!(encode(&format, &r).contains(r#""after":{"raw":"eyJhIjoxZTQwMH0="}"#));

        // Neither before nor after: empty struct schemas; unknown operation: empty op.
        let mut r = record(
            b"1",
            Operation::Create,
            &[("opencdc.readAt", "0")],
            None,
            None,
            None,
        );
        r.operation = 0;
        let want = format!(
            r#"{{"schema":{{"type":"struct","fields":[{{"type":"struct","optional":true,"field":"before"}},{{"type":"struct","optional":true,"field":"after"}},{{"type":"struct","optional":true,"fields":[{{"type":"string","field":"opencdc.readAt"}}],"field":"source"}},{SCHEMA_TAIL}]}},"payload":{{"before":null,"after":null,"source":{{"opencdc.readAt":"0"}},"op":"","transaction":null}}}}"#
        );
        assert_eq!(encode(&debezium(""), &r), want);

        // Structured NaN is the string "NaN" in Go (structpb), so its schema is a string.
        let r = record(
            b"1",
            Operation::Create,
            &[],
            None,
            None,
            structured(vec![("x", num(f64::NAN)), ("l", list(vec![num(1.0)]))]),
        );
        let json = encode(&debezium(""), &r);
        assert!(json.contains(r#"{"type":"struct","optional":true,"fields":[{"type":"array","optional":true,"items":{"type":"double"},"field":"l"},{"type":"string","field":"x"}],"field":"after"}"#), "{json}");
        assert!(json.contains(r#""after":{"l":[1],"x":"NaN"}"#), "{json}");
    }
}
