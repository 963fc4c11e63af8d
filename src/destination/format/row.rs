//! `row/json`: `payload.after` as a flat JSON object plus the operation and a timestamp (see
//! [`RecordFormat::RowJson`](super::RecordFormat::RowJson)).
use super::go_json::{write_go_string, write_struct_fields};
use super::json_parser::{write_json_members, Json, Numbers, Parser};
use super::{
    metadata_nanos, non_empty, size_hint, FormatError, METADATA_CREATED_AT, METADATA_READ_AT,
};
use crate::destination::rfc3339::{self, Fraction};
use crate::destination::template::operation_name;
use crate::proto::opencdc::v1::{data, Operation, Record};

pub(super) fn encode_row(
    r: &Record,
    op_type_field: &str,
    op_timestamp_field: &str,
) -> Result<Vec<u8>, FormatError> {
    const FORMAT: &str = "row/json";
    let payload = r.payload.as_ref();
    let (part, row) = match non_empty(payload.and_then(|p| p.after.as_ref())) {
        Some(row) => ("payload.after", row),
        None if r.operation == Operation::Delete as i32 => {
            match non_empty(payload.and_then(|p| p.before.as_ref())) {
                Some(row) => ("payload.before", row),
                None => {
                    return Err(FormatError::Missing {
                        format: FORMAT,
                        part: "payload.after (nor, as a delete, payload.before)",
                    })
                }
            }
        }
        None => {
            return Err(FormatError::Missing {
                format: FORMAT,
                part: "payload.after",
            })
        }
    };
    let parsed = match row {
        data::Data::RawData(bytes) => match Parser::parse(bytes, Numbers::Strict) {
            Ok(Json::Object(members)) => Some(members),
            Ok(other) => {
                let kind = match other {
                    Json::Null => "it is null",
                    Json::Bool(_) => "it is a boolean",
                    Json::Number(_) | Json::Float(_) => "it is a number",
                    Json::String(_) => "it is a string",
                    Json::Array(_) => "it is an array",
                    Json::Object(_) => "it is an object",
                };
                return Err(FormatError::NotAnObject {
                    format: FORMAT,
                    part,
                    reason: format!("JSON, but {kind}"),
                });
            }
            Err(e) => {
                return Err(FormatError::NotAnObject {
                    format: FORMAT,
                    part,
                    reason: format!("not JSON: {e}"),
                })
            }
        },
        data::Data::StructuredData(_) => None,
    };

    let mut out = Vec::with_capacity(size_hint(r) + 64);
    out.push(b'{');
    let mut first = true;
    if !op_type_field.is_empty() {
        write_go_string(&mut out, op_type_field.as_bytes());
        out.push(b':');
        write_go_string(&mut out, operation_name(r.operation).as_bytes());
        first = false;
    }
    if !op_timestamp_field.is_empty() {
        if !first {
            out.push(b',');
        }
        write_go_string(&mut out, op_timestamp_field.as_bytes());
        out.push(b':');
        let nanos = metadata_nanos(r, METADATA_CREATED_AT)
            .or_else(|| metadata_nanos(r, METADATA_READ_AT))
            .unwrap_or_else(now_nanos);
        out.push(b'"');
        let written = rfc3339::write_utc(&mut out, i128::from(nanos), Fraction::Micros);
        debug_assert!(written, "every i64 of nanoseconds is within years 0-9999");
        out.push(b'"');
        first = false;
    }
    let skip = [op_type_field, op_timestamp_field];
    let skip: &[&str] = match (op_type_field.is_empty(), op_timestamp_field.is_empty()) {
        (true, true) => &[],
        (false, true) => &skip[..1],
        (true, false) => &skip[1..],
        (false, false) => &skip,
    };
    match (row, parsed) {
        (_, Some(members)) => write_json_members(&mut out, &members, skip, first),
        (data::Data::StructuredData(s), None) => write_struct_fields(&mut out, s, skip, first),
        (data::Data::RawData(_), None) => {}
    }
    out.push(b'}');
    Ok(out)
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::format::testing::*;

    fn row(options: &str) -> RecordFormat {
        RecordFormat::from_settings("row/json", options).unwrap()
    }

    #[test]
    fn row_json_structured() {
        let r = record(
            b"p",
            Operation::Update,
            &[
                ("opencdc.createdAt", "1795341600123456789"),
                ("opencdc.readAt", "1"),
            ],
            None,
            None,
            structured(vec![
                ("id", num(7.0)),
                ("name", text("a&b")),
                ("op_type", text("row value loses")),
            ]),
        );
        assert_eq!(
            encode(&row(""), &r),
            r#"{"op_type":"update","op_timestamp":"2026-11-22T10:00:00.123456Z","id":7,"name":"a\u0026b"}"#
        );
        assert_eq!(
            encode(&row("op.type.field=kind,op.timestamp.field="), &r),
            r#"{"kind":"update","id":7,"name":"a\u0026b","op_type":"row value loses"}"#
        );
        assert_eq!(
            encode(&row("op.type.field=, op.timestamp.field=ts"), &r),
            r#"{"ts":"2026-11-22T10:00:00.123456Z","id":7,"name":"a\u0026b","op_type":"row value loses"}"#
        );
        assert_eq!(
            encode(&row("op.type.field=,op.timestamp.field="), &r),
            r#"{"id":7,"name":"a\u0026b","op_type":"row value loses"}"#
        );
    }

    #[test]
    fn row_json_raw_keeps_order_and_number_literals() {
        let r = record(
            b"p",
            Operation::Create,
            &[("opencdc.readAt", "-1")],
            None,
            None,
            raw(b"{ \"z\": 12345678901234567890, \"a\": [1.50, {\"s\": \"\\u00e9\\n\"}],\n \"op_timestamp\": 0 }"),
        );
        assert_eq!(
            encode(&row(""), &r),
            r#"{"op_type":"create","op_timestamp":"1969-12-31T23:59:59.999999Z","z":12345678901234567890,"a":[1.50,{"s":"é\n"}]}"#
        );
    }

    #[test]
    fn row_json_delete_uses_before() {
        let r = record(
            b"p",
            Operation::Delete,
            &[("opencdc.readAt", "0")],
            None,
            raw(br#"{"id":1}"#),
            raw(b""),
        );
        assert_eq!(
            encode(&row(""), &r),
            r#"{"op_type":"delete","op_timestamp":"1970-01-01T00:00:00.000000Z","id":1}"#
        );
        let r = record(b"p", Operation::Delete, &[], None, None, None);
        let err = row("").encode(&r).unwrap_err();
        assert!(err.to_string().contains("payload.before"), "{err}");
        let r = record(b"p", Operation::Update, &[], None, raw(b"{}"), None);
        let err = row("").encode(&r).unwrap_err();
        assert!(matches!(err, FormatError::Missing { .. }), "{err:?}");
    }

    #[test]
    fn row_json_rejects_raw_that_is_not_an_object() {
        for (payload, reason) in [
            (&b"[1]"[..], "it is an array"),
            (b"plain text", "not JSON"),
            (b"{\"a\":1", "not JSON"),
            (b"{\"a\":1} x", "not JSON"),
            (b"\"s\"", "it is a string"),
        ] {
            let r = record(b"p", Operation::Create, &[], None, None, raw(payload));
            let err = row("").encode(&r).unwrap_err();
            let message = err.to_string();
            assert!(matches!(err, FormatError::NotAnObject { .. }), "{err:?}");
            assert!(message.contains("payload.after"), "{message}");
            assert!(message.contains(reason), "{message}");
        }
    }

    #[test]
    fn row_json_timestamp_falls_back_to_now() {
        let r = record(
            b"p",
            Operation::Create,
            &[("opencdc.createdAt", "not a number")],
            None,
            None,
            raw(b"{}"),
        );
        let json = encode(&row("op.type.field="), &r);
        let pattern =
            regex::Regex::new(r#"^\{"op_timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"\}$"#)
                .unwrap();
        assert!(pattern.is_match(&json), "{json}");
    }
}
