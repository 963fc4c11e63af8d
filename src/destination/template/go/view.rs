//! The typed view: the record as Go sees it, stored in the Handlebars context.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::{Fields, BYTES_TAG};
use crate::proto::opencdc::v1::{data, Data, Record};

/// The record as Go sees it, with only `fields` filled in (see the module docs).
pub(crate) fn view(record: &Record, fields: Fields) -> Value {
    let mut root = Map::new();
    if fields.contains("Position") {
        let position = if record.position.is_empty() {
            Value::Null // a nil Position: Go prints <nil>
        } else {
            bytes_value(&record.position)
        };
        root.insert("Position".into(), position);
    }
    if fields.contains("Operation") {
        root.insert("Operation".into(), Value::from(record.operation));
    }
    if fields.contains("Metadata") {
        let metadata = record
            .metadata
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(v)))
            .collect();
        root.insert("Metadata".into(), Value::Object(metadata));
    }
    if fields.contains("Key") {
        root.insert("Key".into(), data_value(record.key.as_ref()));
    }
    if fields.contains("Payload") {
        let payload = record.payload.as_ref();
        let mut change = Map::new();
        change.insert(
            "Before".into(),
            data_value(payload.and_then(|p| p.before.as_ref())),
        );
        change.insert(
            "After".into(),
            data_value(payload.and_then(|p| p.after.as_ref())),
        );
        root.insert("Payload".into(), Value::Object(change));
    }
    Value::Object(root)
}

pub(super) fn bytes_value(bytes: &[u8]) -> Value {
    let mut text = String::with_capacity(BYTES_TAG.len() + bytes.len() * 2);
    text.push_str(BYTES_TAG);
    for b in bytes {
        let _ = write!(text, "{b:02x}");
    }
    Value::String(text)
}

pub(super) fn tagged_bytes(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix(BYTES_TAG)?;
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

pub(super) fn data_value(data: Option<&Data>) -> Value {
    match data.and_then(|d| d.data.as_ref()) {
        None => Value::Null,
        Some(data::Data::RawData(bytes)) => bytes_value(bytes),
        Some(data::Data::StructuredData(s)) => struct_value(s),
    }
}

pub(super) fn struct_value(structure: &prost_types::Struct) -> Value {
    Value::Object(
        structure
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), proto_value(v)))
            .collect(),
    )
}

/// A protobuf `Value` as Go's `structpb.Value.AsInterface` gives it.
pub(super) fn proto_value(value: &prost_types::Value) -> Value {
    use prost_types::value::Kind;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::NumberValue(n)) => match serde_json::Number::from_f64(*n) {
            Some(number) => Value::Number(number),
            // AsInterface turns what JSON cannot hold into these strings.
            None if n.is_nan() => Value::from("NaN"),
            None if *n > 0.0 => Value::from("Infinity"),
            None => Value::from("-Infinity"),
        },
        Some(Kind::StringValue(s)) => Value::from(s.as_str()),
        Some(Kind::BoolValue(b)) => Value::from(*b),
        Some(Kind::StructValue(s)) => struct_value(s),
        Some(Kind::ListValue(list)) => Value::Array(list.values.iter().map(proto_value).collect()),
    }
}
