//! Turning Kinesis records into OpenCDC records.

use base64::Engine as _;

use crate::proto::opencdc::v1::{data, Change, Data, Metadata, Operation, Record};

/// A Kinesis record as a shard returned it (before de-aggregation).
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedRecord {
    pub sequence: String,
    pub partition_key: String,
    pub data: Vec<u8>,
    /// Approximate arrival time, milliseconds since the epoch.
    pub arrival_ms: Option<i64>,
    pub encryption_type: Option<String>,
}

impl From<aws_sdk_kinesis::types::Record> for FetchedRecord {
    fn from(record: aws_sdk_kinesis::types::Record) -> Self {
        FetchedRecord {
            sequence: record.sequence_number,
            partition_key: record.partition_key.unwrap_or_default(),
            data: record.data.into_inner(),
            arrival_ms: record
                .approximate_arrival_timestamp
                .and_then(|t| t.to_millis().ok()),
            encryption_type: record.encryption_type.map(|e| e.as_str().to_string()),
        }
    }
}

/// One user record as read from a shard (after de-aggregation).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReadRecord {
    pub sequence: String,
    /// Index within a KPL aggregate; `None` for a plain record.
    pub sub_sequence: Option<u64>,
    /// The last user record of its Kinesis record (always true for plain records).
    pub last_of_record: bool,
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Vec<u8>,
    /// Approximate arrival time, milliseconds since the epoch.
    pub arrival_ms: Option<i64>,
    pub encryption_type: Option<String>,
}

pub(crate) const META_STREAM: &str = "kinesis.streamName";
pub(crate) const META_SHARD: &str = "kinesis.shardId";
pub(crate) const META_SEQUENCE: &str = "kinesis.sequenceNumber";
pub(crate) const META_SUB_SEQUENCE: &str = "kinesis.subSequenceNumber";
pub(crate) const META_PARTITION_KEY: &str = "kinesis.partitionKey";
pub(crate) const META_EXPLICIT_HASH_KEY: &str = "kinesis.explicitHashKey";
pub(crate) const META_ENCRYPTION: &str = "kinesis.encryptionType";

fn raw(bytes: Vec<u8>) -> Option<Data> {
    Some(Data {
        data: Some(data::Data::RawData(bytes.into())),
    })
}

/// The OpenCDC record for a Kinesis user record.
pub(crate) fn to_opencdc(
    stream: &str,
    shard: &str,
    read: ReadRecord,
    position: Vec<u8>,
    unwrap: bool,
) -> Record {
    if unwrap {
        if let Some(mut record) = parse_opencdc_json(&read.data) {
            record.position = position;
            return record;
        }
    }
    // At most nine entries: ~180 bytes of keys; the stream name twice, the partition key, and
    // at most ~180 bytes of shard id, sequence numbers, hash key, encryption and timestamp.
    let text_bytes = 360 + 2 * stream.len() + read.partition_key.len();
    let mut metadata = Metadata::with_capacity(9, text_bytes);
    metadata.insert(META_STREAM, stream);
    metadata.insert(META_SHARD, shard);
    metadata.insert(META_SEQUENCE, &read.sequence);
    if let Some(sub) = read.sub_sequence {
        metadata.insert(META_SUB_SEQUENCE, sub.to_string());
    }
    metadata.insert(META_PARTITION_KEY, &read.partition_key);
    if let Some(hash_key) = read.explicit_hash_key {
        metadata.insert(META_EXPLICIT_HASH_KEY, hash_key);
    }
    if let Some(encryption) = read.encryption_type {
        metadata.insert(META_ENCRYPTION, encryption);
    }
    metadata.insert("opencdc.collection", stream);
    if let Some(ms) = read.arrival_ms {
        metadata.insert("opencdc.createdAt", (ms as i128 * 1_000_000).to_string());
    }
    Record {
        position,
        operation: Operation::Create as i32,
        metadata,
        key: raw(read.partition_key.into_bytes()),
        payload: Some(Change {
            before: None,
            after: raw(read.data),
        }),
    }
}

/// Reads an OpenCDC JSON record (as Conduit serializes records: raw data in base64, structured
/// data as objects). `None` when the data is not such a record.
pub(crate) fn parse_opencdc_json(bytes: &[u8]) -> Option<Record> {
    if bytes.first() != Some(&b'{') {
        return None;
    }
    let serde_json::Value::Object(object) =
        serde_json::from_slice::<serde_json::Value>(bytes).ok()?
    else {
        return None;
    };
    const FIELDS: [&str; 5] = ["position", "operation", "metadata", "key", "payload"];
    if !object.keys().all(|k| FIELDS.contains(&k.as_str()))
        || !object.contains_key("operation")
        || !object.contains_key("payload")
    {
        return None;
    }
    let operation = match object.get("operation")?.as_str()? {
        "create" => Operation::Create,
        "update" => Operation::Update,
        "delete" => Operation::Delete,
        "snapshot" => Operation::Snapshot,
        _ => return None,
    };
    let metadata = match object.get("metadata") {
        None | Some(serde_json::Value::Null) => Metadata::new(),
        Some(serde_json::Value::Object(map)) => map
            .iter()
            .map(|(k, v)| v.as_str().map(|v| (k, v)))
            .collect::<Option<Metadata>>()?,
        Some(_) => return None,
    };
    let payload = match object.get("payload")? {
        serde_json::Value::Null => None,
        serde_json::Value::Object(change) => Some(Change {
            before: parse_data(change.get("before"))?,
            after: parse_data(change.get("after"))?,
        }),
        _ => return None,
    };
    Some(Record {
        position: Vec::new(),
        operation: operation as i32,
        metadata,
        key: parse_data(object.get("key"))?,
        payload,
    })
}

/// `Some(None)`: absent or null; `None`: not OpenCDC data.
fn parse_data(value: Option<&serde_json::Value>) -> Option<Option<Data>> {
    match value {
        None | Some(serde_json::Value::Null) => Some(None),
        Some(serde_json::Value::String(b64)) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
            Some(raw(bytes))
        }
        Some(serde_json::Value::Object(fields)) => Some(Some(Data {
            data: Some(data::Data::StructuredData(prost_types::Struct {
                fields: fields
                    .iter()
                    .map(|(k, v)| (k.clone(), json_to_proto(v)))
                    .collect(),
            })),
        })),
        Some(_) => None,
    }
}

fn json_to_proto(value: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_to_proto).collect(),
        }),
        serde_json::Value::Object(fields) => Kind::StructValue(prost_types::Struct {
            fields: fields
                .iter()
                .map(|(k, v)| (k.clone(), json_to_proto(v)))
                .collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::format::RecordFormat;

    fn read(data: &[u8]) -> ReadRecord {
        ReadRecord {
            sequence: "49590338271490256608559692538361571095921575989136588898".into(),
            sub_sequence: Some(3),
            last_of_record: false,
            partition_key: "customer-7".into(),
            explicit_hash_key: Some("42".into()),
            data: data.to_vec(),
            arrival_ms: Some(1_700_000_000_123),
            encryption_type: Some("NONE".into()),
        }
    }

    #[test]
    fn metadata_and_payload() {
        let record = to_opencdc(
            "orders",
            "shardId-000000000001",
            read(b"hello"),
            b"pos".to_vec(),
            false,
        );
        assert_eq!(record.operation, Operation::Create as i32);
        assert_eq!(record.position, b"pos");
        assert_eq!(record.key, raw(b"customer-7".to_vec()));
        assert_eq!(record.payload.unwrap().after, raw(b"hello".to_vec()));
        let m = &record.metadata;
        assert_eq!(&m[META_STREAM], "orders");
        assert_eq!(&m["opencdc.collection"], "orders");
        assert_eq!(&m[META_SHARD], "shardId-000000000001");
        assert_eq!(
            &m[META_SEQUENCE],
            "49590338271490256608559692538361571095921575989136588898"
        );
        assert_eq!(&m[META_SUB_SEQUENCE], "3");
        assert_eq!(&m[META_PARTITION_KEY], "customer-7");
        assert_eq!(&m[META_EXPLICIT_HASH_KEY], "42");
        assert_eq!(&m[META_ENCRYPTION], "NONE");
        assert_eq!(&m["opencdc.createdAt"], "1700000000123000000");
    }

    #[test]
    fn unwraps_what_the_destination_writes() {
        let original = Record {
            position: b"src-pos".to_vec(),
            operation: Operation::Update as i32,
            metadata: [
                ("opencdc.collection".to_string(), "users".to_string()),
                ("x".to_string(), "".to_string()),
            ]
            .into(),
            key: raw(b"k\x00\xff".to_vec()),
            payload: Some(Change {
                before: None,
                after: Some(Data {
                    data: Some(data::Data::StructuredData(prost_types::Struct {
                        fields: [(
                            "id".to_string(),
                            prost_types::Value {
                                kind: Some(prost_types::value::Kind::NumberValue(7.0)),
                            },
                        )]
                        .into(),
                    })),
                }),
            }),
        };
        let bytes = RecordFormat::from_settings("opencdc/json", "")
            .unwrap()
            .encode(&original)
            .unwrap();
        let unwrapped = to_opencdc("s", "shard", read(&bytes), b"new-pos".to_vec(), true);
        let mut expected = original.clone();
        expected.position = b"new-pos".to_vec();
        assert_eq!(unwrapped, expected);
        // Data that is not OpenCDC JSON stays a plain Kinesis record.
        let plain = to_opencdc("s", "shard", read(b"{\"id\":1}"), b"p".to_vec(), true);
        assert_eq!(&plain.metadata[META_STREAM], "s");
        let plain = to_opencdc("s", "shard", read(b"not json"), b"p".to_vec(), true);
        assert_eq!(plain.payload.unwrap().after, raw(b"not json".to_vec()));
    }
}
