//! Partition keys and explicit hash keys: derivation from records, trimming and validation.
//! Pure functions, no I/O.

use prost_types::value::Kind;

use super::template::{RecordTemplate, TemplateError};
use crate::proto::opencdc::v1::{data, Operation, Record};

/// Kinesis partition keys are 1 to 256 Unicode characters. The service counts UTF-16 code
/// units (as Java and JavaScript strings do), so trimming by code units is the safe reading:
/// it never exceeds the limit and never splits a character.
pub(crate) const MAX_PARTITION_KEY_UNITS: usize = 256;

/// How a record's partition key is chosen, in order of precedence.
#[derive(Debug, Clone)]
pub enum KeyStrategy {
    Template(Box<RecordTemplate>),
    Fields(Vec<String>),
    RecordKey,
}

/// Why a key could not be derived; the record is nacked with this.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KeyError {
    #[error("partitionKeyTemplate {0}")]
    Template(TemplateError),
    #[error("explicitHashKeyTemplate {0}")]
    HashTemplate(TemplateError),
    #[error(
        "explicitHashKeyTemplate rendered {0:?}, which is not an ExplicitHashKey: it must be a decimal \
         number from 0 to 340282366920938463463374607431768211455 (2^128-1) without leading zeros"
    )]
    InvalidHashKey(String),
}

impl KeyStrategy {
    /// The partition key for a record, already trimmed; `None` when the strategy yields
    /// nothing (the caller then uses a random key).
    pub fn derive(&self, record: &Record) -> Result<Option<String>, KeyError> {
        let key = match self {
            KeyStrategy::Template(template) => {
                template.render(record).map_err(KeyError::Template)?
            }
            KeyStrategy::Fields(fields) => fields_key(record, fields),
            KeyStrategy::RecordKey => record_key(record),
        };
        let trimmed = trim_partition_key(&key);
        Ok((!trimmed.is_empty()).then(|| trimmed.to_string()))
    }
}

/// The longest prefix of `key` that fits Kinesis' partition key limit.
pub(crate) fn trim_partition_key(key: &str) -> &str {
    let mut units = 0;
    for (index, c) in key.char_indices() {
        units += c.len_utf16();
        if units > MAX_PARTITION_KEY_UNITS {
            return &key[..index];
        }
    }
    key
}

/// A random partition key: spreads records without a key evenly over shards.
pub(crate) fn random_partition_key() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The record key: raw bytes as UTF-8 text, structured keys as their values joined with `|`
/// (in field-name order).
pub(crate) fn record_key(record: &Record) -> String {
    match record.key.as_ref().and_then(|k| k.data.as_ref()) {
        None => String::new(),
        Some(data::Data::RawData(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        Some(data::Data::StructuredData(fields)) => fields
            .fields
            .values()
            .map(value_text)
            .collect::<Vec<_>>()
            .join("|"),
    }
}

/// Values of the named fields joined with `|`, looked up in the structured payload (after, or
/// before for deletes), then in the structured key. A missing field contributes an empty part.
pub(crate) fn fields_key(record: &Record, fields: &[String]) -> String {
    let payload = record.payload.as_ref().and_then(|p| {
        let after = structured(p.after.as_ref());
        if after.is_none() || record.operation == Operation::Delete as i32 {
            structured(p.before.as_ref()).or(after)
        } else {
            after
        }
    });
    let key = structured(record.key.as_ref());
    let parts: Vec<String> = fields
        .iter()
        .map(|field| {
            payload
                .and_then(|p| p.fields.get(field))
                .or_else(|| key.and_then(|k| k.fields.get(field)))
                .map(value_text)
                .unwrap_or_default()
        })
        .collect();
    if parts.iter().all(String::is_empty) {
        String::new()
    } else {
        parts.join("|")
    }
}

fn structured(data: Option<&crate::proto::opencdc::v1::Data>) -> Option<&prost_types::Struct> {
    match data.and_then(|d| d.data.as_ref()) {
        Some(data::Data::StructuredData(s)) => Some(s),
        _ => None,
    }
}

/// A scalar as key text: whole numbers without a fraction, strings as they are, nested values
/// as compact JSON.
fn value_text(value: &prost_types::Value) -> String {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => String::new(),
        Some(Kind::StringValue(s)) => super::exact::exact_integer(s).unwrap_or(s).to_string(),
        Some(Kind::BoolValue(b)) => b.to_string(),
        Some(Kind::NumberValue(n)) => {
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                format!("{}", *n as i64)
            } else {
                n.to_string()
            }
        }
        Some(_) => super::template::proto_value_to_json(value).to_string(),
    }
}

/// Renders and validates the explicit hash key. `None` when the template renders empty.
pub fn explicit_hash_key(
    template: &RecordTemplate,
    record: &Record,
) -> Result<Option<String>, KeyError> {
    let rendered = template.render(record).map_err(KeyError::HashTemplate)?;
    let value = rendered.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if is_valid_hash_key(value) {
        Ok(Some(value.to_string()))
    } else {
        Err(KeyError::InvalidHashKey(value.to_string()))
    }
}

/// `0|([1-9]\d{0,38})` and at most 2^128-1.
pub(crate) fn is_valid_hash_key(value: &str) -> bool {
    let digits_ok = value == "0"
        || (value.len() <= 39
            && !value.starts_with('0')
            && value.bytes().all(|b| b.is_ascii_digit()));
    digits_ok && value.parse::<u128>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::format::testing::{raw, structured_kinds as structured_data};
    use crate::proto::opencdc::v1::{Change, Data};

    fn record_with(key: Option<Data>, after: Option<Data>) -> Record {
        Record {
            position: b"p".to_vec(),
            operation: Operation::Create as i32,
            key,
            payload: Some(Change {
                before: None,
                after,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn trims_by_utf16_units_without_splitting_characters() {
        let ascii = "a".repeat(300);
        assert_eq!(trim_partition_key(&ascii).len(), 256);
        // 255 ASCII + a 4-byte character (2 UTF-16 units) would be 257 units: it must go whole.
        let boundary = format!("{}\u{1F600}", "a".repeat(255));
        assert_eq!(trim_partition_key(&boundary), "a".repeat(255));
        // 254 + emoji = 256 units: kept.
        let fits = format!("{}\u{1F600}", "a".repeat(254));
        assert_eq!(trim_partition_key(&fits), fits);
        // Multi-byte BMP characters count one unit each.
        let umlauts = "ü".repeat(300);
        let trimmed = trim_partition_key(&umlauts);
        assert_eq!(trimmed.chars().count(), 256);
        assert_eq!(trimmed.len(), 512);
    }

    #[test]
    fn raw_and_structured_record_keys() {
        let r = record_with(raw(b"customer-7"), None);
        assert_eq!(
            KeyStrategy::RecordKey.derive(&r).unwrap().as_deref(),
            Some("customer-7")
        );
        let r = record_with(
            structured_data(&[
                ("tenant", Kind::StringValue("acme".into())),
                ("id", Kind::NumberValue(42.0)),
            ]),
            None,
        );
        // Field-name order: id, tenant.
        assert_eq!(
            KeyStrategy::RecordKey.derive(&r).unwrap().as_deref(),
            Some("42|acme")
        );
        let r = record_with(raw(b""), None);
        assert_eq!(KeyStrategy::RecordKey.derive(&r).unwrap(), None);
    }

    #[test]
    fn fields_from_payload_then_key() {
        let r = record_with(
            structured_data(&[("tenant", Kind::StringValue("acme".into()))]),
            structured_data(&[
                ("order_id", Kind::NumberValue(7.0)),
                ("line", Kind::NumberValue(2.5)),
            ]),
        );
        let strategy = KeyStrategy::Fields(vec!["order_id".into(), "line".into(), "tenant".into()]);
        assert_eq!(strategy.derive(&r).unwrap().as_deref(), Some("7|2.5|acme"));
        let missing = KeyStrategy::Fields(vec!["nope".into()]);
        assert_eq!(missing.derive(&r).unwrap(), None);
    }

    #[test]
    fn deletes_use_before() {
        let mut r = record_with(None, None);
        r.operation = Operation::Delete as i32;
        r.payload = Some(Change {
            before: structured_data(&[("id", Kind::NumberValue(9.0))]),
            after: None,
        });
        let strategy = KeyStrategy::Fields(vec!["id".into()]);
        assert_eq!(strategy.derive(&r).unwrap().as_deref(), Some("9"));
    }

    #[test]
    fn template_keys_are_trimmed() {
        let t = RecordTemplate::compile("{{Key}}{{Key}}").unwrap();
        let r = record_with(raw("é".repeat(200).as_bytes()), None);
        let key = KeyStrategy::Template(Box::new(t))
            .derive(&r)
            .unwrap()
            .unwrap();
        assert_eq!(key.chars().count(), 256);
    }

    #[test]
    fn random_keys_differ() {
        assert_ne!(random_partition_key(), random_partition_key());
        assert_eq!(random_partition_key().len(), 32);
    }

    #[test]
    fn hash_keys_are_validated() {
        assert!(is_valid_hash_key("0"));
        assert!(is_valid_hash_key("340282366920938463463374607431768211455"));
        assert!(!is_valid_hash_key(
            "340282366920938463463374607431768211456"
        ));
        assert!(!is_valid_hash_key("0123"));
        assert!(!is_valid_hash_key("-1"));
        assert!(!is_valid_hash_key("12a"));
        assert!(!is_valid_hash_key(""));
        let t = RecordTemplate::compile("{{Key}}").unwrap();
        let ok = record_with(raw(b"170141183460469231731687303715884105728"), None);
        assert_eq!(
            explicit_hash_key(&t, &ok).unwrap().as_deref(),
            Some("170141183460469231731687303715884105728")
        );
        let bad = record_with(raw(b"abc"), None);
        let err = explicit_hash_key(&t, &bad).unwrap_err();
        assert!(err.to_string().contains("\"abc\""), "{err}");
        let empty = record_with(None, None);
        assert_eq!(explicit_hash_key(&t, &empty).unwrap(), None);
    }
}
