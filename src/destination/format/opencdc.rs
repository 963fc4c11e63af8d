//! `opencdc/json`: the whole record as Conduit's Go code serializes it.

use std::io::Write as _;

use super::go_json::{
    in_go_order, sorted_metadata, write_base64, write_string_object, write_struct, Metadata,
};
use crate::proto::opencdc::v1::{data, Data, Operation, Record};

pub(super) fn write_opencdc(out: &mut Vec<u8>, r: &Record) {
    out.extend_from_slice(b"{\"position\":");
    if r.position.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        write_base64(out, &r.position);
    }
    out.extend_from_slice(b",\"operation\":");
    write_operation(out, r.operation);
    out.extend_from_slice(b",\"metadata\":");
    write_metadata(out, &r.metadata);
    out.extend_from_slice(b",\"key\":");
    write_data(out, r.key.as_ref());
    out.extend_from_slice(b",\"payload\":{\"before\":");
    let payload = r.payload.as_ref();
    write_data(out, payload.and_then(|p| p.before.as_ref()));
    out.extend_from_slice(b",\"after\":");
    write_data(out, payload.and_then(|p| p.after.as_ref()));
    out.extend_from_slice(b"}}");
}

/// `opencdc.Operation.MarshalText`.
fn write_operation(out: &mut Vec<u8>, operation: i32) {
    match Operation::try_from(operation) {
        Ok(Operation::Create) => out.extend_from_slice(b"\"create\""),
        Ok(Operation::Update) => out.extend_from_slice(b"\"update\""),
        Ok(Operation::Delete) => out.extend_from_slice(b"\"delete\""),
        Ok(Operation::Snapshot) => out.extend_from_slice(b"\"snapshot\""),
        _ => {
            let _ = write!(out, "\"Operation({operation})\"");
        }
    }
}

/// `opencdc.Metadata`; `null` when empty (a nil map after protobuf-go).
fn write_metadata(out: &mut Vec<u8>, metadata: &Metadata) {
    if metadata.is_empty() {
        out.extend_from_slice(b"null");
        return;
    }
    if in_go_order(metadata) {
        write_string_object(out, metadata.iter());
    } else {
        write_string_object(out, sorted_metadata(metadata).into_iter());
    }
}

/// `opencdc.Data`: raw data as base64, structured data as an object, nothing as `null`.
fn write_data(out: &mut Vec<u8>, d: Option<&Data>) {
    match d.and_then(|d| d.data.as_ref()) {
        None => out.extend_from_slice(b"null"),
        Some(data::Data::RawData(bytes)) => write_base64(out, bytes),
        Some(data::Data::StructuredData(s)) => write_struct(out, s),
    }
}

#[cfg(test)]
mod tests {
    use super::super::go_json::write_struct;
    use crate::destination::format::testing::*;

    /// Mirrors conduit-commons v0.6.0 `opencdc/record_test.go: TestRecord_Bytes` and
    /// conduit-connector-sdk v0.14.2 `record_serializer_test.go: TestJSONEncoder`.
    #[test]
    fn opencdc_json_matches_upstream_record_bytes() {
        let r = record(
            b"foo",
            Operation::Create,
            &[("conduit.source.plugin.name", "example")],
            raw(b"bar"),
            None,
            structured(vec![("foo", text("bar")), ("baz", text("qux"))]),
        );
        assert_eq!(
            opencdc(&r),
            r#"{"position":"Zm9v","operation":"create","metadata":{"conduit.source.plugin.name":"example"},"key":"YmFy","payload":{"before":null,"after":{"baz":"qux","foo":"bar"}}}"#
        );
    }

    /// Mirrors conduit-commons v0.6.0 `opencdc/serializer_test.go: TestJSONSerializer`
    /// ("default") and `opencdc/json_test.go: TestRecord_JSON`. Upstream's `float32(1.2)`
    /// is a Go-native value; over the wire every number is a double, so 1.2 here.
    #[test]
    fn opencdc_json_matches_upstream_serializer() {
        let r = record(
            b"standing",
            Operation::Update,
            &[("foo", "bar")],
            raw(b"padlock-key"),
            raw(b"yellow"),
            structured(vec![
                ("bool", boolean(true)),
                ("int", num(1.0)),
                ("int32", num(1.0)),
                ("int64", num(1.0)),
                ("float32", num(1.2)),
                ("float64", num(1.2)),
                ("string", text("orange")),
            ]),
        );
        assert_eq!(
            opencdc(&r),
            r#"{"position":"c3RhbmRpbmc=","operation":"update","metadata":{"foo":"bar"},"key":"cGFkbG9jay1rZXk=","payload":{"before":"eWVsbG93","after":{"bool":true,"float32":1.2,"float64":1.2,"int":1,"int32":1,"int64":1,"string":"orange"}}}"#
        );
    }

    #[test]
    fn opencdc_json_empty_and_missing_parts() {
        // Empty metadata is a nil map in Go, an empty position a nil slice; a Data without
        // a oneof and a missing payload are nil; empty raw data is "".
        let r = Record {
            position: Vec::new(),
            operation: Operation::Delete as i32,
            metadata: Default::default(),
            key: raw(b""),
            payload: None,
        };
        assert_eq!(
            opencdc(&r),
            r#"{"position":null,"operation":"delete","metadata":null,"key":"","payload":{"before":null,"after":null}}"#
        );
        let r = record(
            b"\x00\xff<>",
            Operation::Snapshot,
            &[],
            Some(Data { data: None }),
            raw(b""),
            structured(vec![]),
        );
        assert_eq!(
            opencdc(&r),
            r#"{"position":"AP88Pg==","operation":"snapshot","metadata":null,"key":null,"payload":{"before":"","after":{}}}"#
        );
    }

    #[test]
    fn opencdc_json_operations() {
        for (op, name) in [
            (1, "\"create\""),
            (2, "\"update\""),
            (3, "\"delete\""),
            (4, "\"snapshot\""),
            (0, "\"Operation(0)\""),
            (7, "\"Operation(7)\""),
            (-2, "\"Operation(-2)\""),
        ] {
            let mut r = record(b"p", Operation::Create, &[], None, None, None);
            r.operation = op;
            let json = opencdc(&r);
            assert!(
                json.contains(&format!(r#""operation":{name},"#)),
                "{op}: {json}"
            );
        }
    }

    #[test]
    fn opencdc_json_nested_structured_payload() {
        let r = record(
            b"1",
            Operation::Update,
            &[
                ("opencdc.readAt", "1700000000000000000"),
                ("opencdc.collection", "orders"),
            ],
            structured(vec![("id", num(7.0))]),
            None,
            structured(vec![
                (
                    "nested",
                    nested(vec![
                        ("z", num(1.0)),
                        (
                            "a",
                            list(vec![
                                num(1.0),
                                text("x"),
                                null(),
                                boolean(true),
                                nested(vec![("k", boolean(false))]),
                            ]),
                        ),
                        ("e", nested(vec![])),
                        ("none", prost_types::Value { kind: None }),
                    ]),
                ),
                ("list", list(vec![])),
                ("price", num(19.99)),
                ("text", text("Tom & Jerry <3")),
            ]),
        );
        assert_eq!(
            opencdc(&r),
            r#"{"position":"MQ==","operation":"update","metadata":{"opencdc.collection":"orders","opencdc.readAt":"1700000000000000000"},"key":{"id":7},"payload":{"before":null,"after":{"list":[],"nested":{"a":[1,"x",null,true,{"k":false}],"e":{},"none":null,"z":1},"price":19.99,"text":"Tom \u0026 Jerry \u003c3"}}}"#
        );
    }

    #[test]
    fn map_keys_sort_by_their_encoded_form() {
        // goccy compares `"key",` byte strings: `<` is `\u003c` (after `Z`, before `a`), and
        // `"a"` sorts after `"a b"` and `"a!"` because `"` (0x22) > ` ` and `!`.
        let keys = ["a", "a b", "a!", "<", "Z", "b", "A", "a\"", "ab"];
        let want = r#"{"A":0,"Z":0,"\u003c":0,"a b":0,"a!":0,"a":0,"a\"":0,"ab":0,"b":0}"#;
        let s = object(keys.iter().map(|k| (*k, num(0.0))).collect());
        let mut out = Vec::new();
        write_struct(&mut out, &s);
        assert_eq!(String::from_utf8(out).unwrap(), want);

        let metadata: Vec<(&str, &str)> = keys.iter().map(|k| (*k, "0")).collect();
        let r = record(b"p", Operation::Create, &metadata, None, None, None);
        let json = opencdc(&r);
        assert!(
            json.contains(&want.replace(":0", ":\"0\"")),
            "metadata order: {json}"
        );
    }
}
