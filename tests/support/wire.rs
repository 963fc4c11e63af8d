//! AWS CBOR bodies (`application/x-amz-cbor-1.1`) seen as AWS JSON, for fakes and proxies
//! that inspect what the destination sends. Decoded and encoded with `ciborium`, an
//! implementation independent of the connector's own.
//!
//! Blobs become base64 strings, as AWS JSON 1.1 carries them, so one `serde_json::Value`
//! describes a body in either protocol.

use base64::Engine;
use serde_json::Value;

pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
pub const CBOR_CONTENT_TYPE: &str = "application/x-amz-cbor-1.1";

pub fn is_cbor(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|v| v.trim().eq_ignore_ascii_case(CBOR_CONTENT_TYPE))
}

/// A CBOR body as the JSON value AWS JSON 1.1 would carry (`None`: not CBOR).
pub fn cbor_to_json(body: &[u8]) -> Option<Value> {
    let value: ciborium::Value = ciborium::from_reader(body).ok()?;
    Some(to_json(value))
}

fn to_json(value: ciborium::Value) -> Value {
    use ciborium::Value as C;
    match value {
        C::Integer(i) => serde_json::json!(i128::from(i)),
        C::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        C::Float(f) => serde_json::json!(f),
        C::Text(t) => Value::String(t),
        C::Bool(b) => Value::Bool(b),
        C::Null => Value::Null,
        C::Tag(_, inner) => to_json(*inner),
        C::Array(items) => Value::Array(items.into_iter().map(to_json).collect()),
        C::Map(entries) => Value::Object(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        C::Text(t) => t,
                        other => format!("{other:?}"),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// A JSON answer (no blobs in it) as the CBOR answer of the same shape.
pub fn json_to_cbor(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("CBOR into a Vec");
    out
}

/// A PutRecords request body as JSON, whichever protocol it came in.
pub fn put_records_body(content_type: Option<&str>, body: &[u8]) -> Value {
    if is_cbor(content_type) {
        cbor_to_json(body).expect("a CBOR PutRecords body")
    } else {
        serde_json::from_slice(body).expect("a JSON PutRecords body")
    }
}
