//! Avro datums as structured data: parsing a schema, decoding a datum with it and converting
//! the Avro value as the Go SDK represents it (the table in the [module documentation](super)).

use std::collections::{BTreeMap, HashMap};

use apache_avro::schema::{Name, ResolvedSchema};
use apache_avro::types::Value as AvroValue;
use apache_avro::Schema as AvroSchema;
use base64::Engine as _;
use prost_types::value::Kind;

use crate::destination::rfc3339::{self, Fraction};

/// A fetched and parsed schema.
pub(super) struct CachedSchema {
    pub(super) schema: AvroSchema,
    /// Named types, to follow references while converting.
    pub(super) names: HashMap<Name, AvroSchema>,
}

pub(super) fn parse_schema(bytes: &[u8]) -> Result<CachedSchema, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("schema text is not UTF-8: {e}"))?;
    // apache-avro 0.21 panics on some invalid names (`unwrap` in `Name::parse`) instead of
    // returning an error: a schema the service answers with must not take the plugin down.
    let parsed = std::panic::catch_unwind(|| AvroSchema::parse_str(text)).map_err(|panic| {
        let detail = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("the Avro library panicked");
        format!("invalid Avro schema: {detail}")
    })?;
    let schema = parsed.map_err(|e| format!("invalid Avro schema: {e}"))?;
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
pub(super) fn decode_datum(
    bytes: &[u8],
    schema: &CachedSchema,
) -> Result<prost_types::Struct, String> {
    // apache-avro trusts the datum's lengths and nesting; refuse what would exhaust memory or
    // the stack first.
    crate::destination::avro_bounds::check_datum(bytes, &schema.schema, &schema.names)?;
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
            crate::destination::exact::integer_kind(i)
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
    match rfc3339::utc_string(unix_nanos, Fraction::TrimmedNanos) {
        Some(s) => Kind::StringValue(s),
        None => Kind::NumberValue(raw),
    }
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
}
