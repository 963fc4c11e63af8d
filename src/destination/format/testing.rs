//! Records and values for the format tests.

pub(crate) use super::{FormatError, RecordFormat, FORMAT_NAMES};
pub(crate) use crate::proto::opencdc::v1::{data, Change, Data, Operation, Record};
pub(crate) use prost_types::value::Kind;

pub(crate) fn raw(bytes: &[u8]) -> Option<Data> {
    Some(Data {
        data: Some(data::Data::RawData(bytes.to_vec().into())),
    })
}

pub(crate) fn val(kind: Kind) -> prost_types::Value {
    prost_types::Value { kind: Some(kind) }
}

pub(crate) fn num(n: f64) -> prost_types::Value {
    val(Kind::NumberValue(n))
}

pub(crate) fn text(s: &str) -> prost_types::Value {
    val(Kind::StringValue(s.to_string()))
}

pub(crate) fn boolean(b: bool) -> prost_types::Value {
    val(Kind::BoolValue(b))
}

pub(crate) fn null() -> prost_types::Value {
    val(Kind::NullValue(0))
}

pub(crate) fn object(fields: Vec<(&str, prost_types::Value)>) -> prost_types::Struct {
    prost_types::Struct {
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

pub(crate) fn nested(fields: Vec<(&str, prost_types::Value)>) -> prost_types::Value {
    val(Kind::StructValue(object(fields)))
}

pub(crate) fn list(values: Vec<prost_types::Value>) -> prost_types::Value {
    val(Kind::ListValue(prost_types::ListValue { values }))
}

pub(crate) fn structured(fields: Vec<(&str, prost_types::Value)>) -> Option<Data> {
    Some(Data {
        data: Some(data::Data::StructuredData(object(fields))),
    })
}

/// Structured data from `(field, kind)` pairs.
pub(crate) fn structured_kinds(fields: &[(&str, Kind)]) -> Option<Data> {
    let fields = fields.iter().map(|(k, v)| (*k, val(v.clone()))).collect();
    structured(fields)
}

pub(crate) fn record(
    position: &[u8],
    operation: Operation,
    metadata: &[(&str, &str)],
    key: Option<Data>,
    before: Option<Data>,
    after: Option<Data>,
) -> Record {
    Record {
        position: position.to_vec(),
        operation: operation as i32,
        metadata: metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        key,
        payload: Some(Change { before, after }),
    }
}

pub(crate) fn encode(format: &RecordFormat, r: &Record) -> String {
    String::from_utf8(format.encode(r).unwrap()).unwrap()
}

pub(crate) fn opencdc(r: &Record) -> String {
    encode(&RecordFormat::OpenCdcJson, r)
}
