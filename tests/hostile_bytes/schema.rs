//! Avro payloads and schema-service answers (`destination::schema::SchemaDecoder`), through
//! an in-process fake of Conduit's schema service that answers whatever a test registers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use apache_avro::types::Value as AvroValue;
use apache_avro::Schema as AvroSchema;
use conduit_connector_kinesis::proto::connutils::v1::schema_service_server::{
    SchemaService, SchemaServiceServer,
};
use conduit_connector_kinesis::proto::connutils::v1::{
    CreateSchemaRequest, CreateSchemaResponse, GetSchemaRequest, GetSchemaResponse,
};
use conduit_connector_kinesis::proto::opencdc::v1::{data, Change, Data, Operation, Record};
use conduit_connector_kinesis::proto::schema::v1::Schema;
use conduit_connector_kinesis::testing::struct_to_json;
use conduit_connector_kinesis::testing::SchemaDecoder;
use proptest::prelude::*;
use tokio::runtime::Runtime;

use super::common::*;

#[derive(Clone, Default)]
struct Answers(Arc<Mutex<HashMap<i32, Schema>>>);

#[tonic::async_trait]
impl SchemaService for Answers {
    async fn create_schema(
        &self,
        _: tonic::Request<CreateSchemaRequest>,
    ) -> Result<tonic::Response<CreateSchemaResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("not used"))
    }

    async fn get_schema(
        &self,
        request: tonic::Request<GetSchemaRequest>,
    ) -> Result<tonic::Response<GetSchemaResponse>, tonic::Status> {
        let version = request.into_inner().version;
        let schema = self.0.lock().unwrap().get(&version).cloned();
        Ok(tonic::Response::new(GetSchemaResponse { schema }))
    }
}

struct Service {
    runtime: Runtime,
    answers: Answers,
    address: String,
    next_version: AtomicI32,
}

fn service() -> &'static Service {
    static SERVICE: OnceLock<Service> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let answers = Answers::default();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = SchemaServiceServer::new(answers.clone());
        runtime.spawn(async move {
            tonic::transport::Server::builder()
                .add_service(server)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        Service {
            runtime,
            answers,
            address,
            next_version: AtomicI32::new(1),
        }
    })
}

/// A decoder shared by the tests (its schema cache too: every registration gets a new version).
fn decoder() -> &'static SchemaDecoder {
    static DECODER: OnceLock<SchemaDecoder> = OnceLock::new();
    DECODER.get_or_init(|| SchemaDecoder::new(Some(service().address.clone()), None, true, false))
}

/// Registers a schema answer; returns its version.
fn register(kind: i32, bytes: &[u8]) -> i32 {
    let service = service();
    let version = service.next_version.fetch_add(1, Ordering::SeqCst);
    service.answers.0.lock().unwrap().insert(
        version,
        Schema {
            subject: "hostile".into(),
            version,
            id: version,
            r#type: kind,
            bytes: bytes.to_vec(),
        },
    );
    version
}

fn register_avro(text: &str) -> i32 {
    register(1, text.as_bytes())
}

fn record(version: i32, datum: &[u8]) -> Record {
    let mut metadata = conduit_connector_kinesis::proto::opencdc::v1::Metadata::new();
    metadata.insert("opencdc.payload.schema.subject", "hostile");
    metadata.insert("opencdc.payload.schema.version", version.to_string());
    Record {
        position: b"p".to_vec(),
        operation: Operation::Create as i32,
        metadata,
        key: None,
        payload: Some(Change {
            before: None,
            after: Some(Data {
                data: Some(data::Data::RawData(datum.to_vec().into())),
            }),
        }),
    }
}

/// Decodes `datum` with schema `version`: structured data, or an error that names the schema
/// and the field; the record is unchanged on error.
fn decode(version: i32, datum: &[u8]) -> Result<serde_json::Value, String> {
    decode_checked(version, datum, true)
}

/// [`decode`]; `bound_allocations: false` where a schema answer may make apache-avro panic
/// (caught, but the panic hook may capture a backtrace, which allocates plenty).
fn decode_checked(
    version: i32,
    datum: &[u8],
    bound_allocations: bool,
) -> Result<serde_json::Value, String> {
    let mut rec = record(version, datum);
    let original = rec.clone();
    let mut run = || service().runtime.block_on(decoder().decode(&mut rec));
    let result = if bound_allocations {
        bounded("Avro", datum.len(), run)
    } else {
        run()
    };
    match result {
        Ok(()) => match rec.payload.and_then(|p| p.after).and_then(|d| d.data) {
            Some(data::Data::StructuredData(s)) => Ok(struct_to_json(&s)),
            // Empty raw data is left as it is (Conduit sends absent data so).
            Some(data::Data::RawData(raw)) if raw.is_empty() && datum.is_empty() => {
                Ok(serde_json::Value::Null)
            }
            other => panic!("decoded to {other:?}"),
        },
        Err(e) => {
            let message = e.to_string();
            names_one_of(&message, &["schema"]);
            assert!(message.contains("\"hostile\""), "{message}");
            assert_eq!(rec, original, "a failed decode leaves the record as it was");
            Err(message)
        }
    }
}

/// The schemas hostile datums are decoded with: every kind of value, and recursion.
const SCHEMAS: &[&str] = &[
    r#"{"type":"record","name":"all","fields":[
        {"name":"b","type":"boolean"},{"name":"i","type":"int"},{"name":"l","type":"long"},
        {"name":"f","type":"float"},{"name":"d","type":"double"},{"name":"s","type":"string"},
        {"name":"y","type":"bytes"},{"name":"x","type":{"type":"fixed","name":"x4","size":4}},
        {"name":"e","type":{"type":"enum","name":"e","symbols":["A","B"]}},
        {"name":"u","type":["null","string","long"]},
        {"name":"a","type":{"type":"array","items":"long"}},
        {"name":"m","type":{"type":"map","values":"string"}},
        {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
        {"name":"ts","type":{"type":"long","logicalType":"timestamp-micros"}},
        {"name":"date","type":{"type":"int","logicalType":"date"}},
        {"name":"uuid","type":{"type":"string","logicalType":"uuid"}},
        {"name":"dur","type":{"type":"fixed","name":"d12","size":12,"logicalType":"duration"}}
    ]}"#,
    r#"{"type":"record","name":"node","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","node"]}]}"#,
    r#"{"type":"record","name":"tree","fields":[{"name":"kids","type":{"type":"array","items":"tree"}}]}"#,
    r#"{"type":"record","name":"nulls","fields":[{"name":"n","type":{"type":"array","items":"null"}},{"name":"m","type":{"type":"map","values":{"type":"record","name":"empty","fields":[]}}}]}"#,
    r#"{"type":"map","values":{"type":"array","items":["null","double",{"type":"map","values":"bytes"}]}}"#,
];

fn schema_versions() -> &'static Vec<i32> {
    static VERSIONS: OnceLock<Vec<i32>> = OnceLock::new();
    VERSIONS.get_or_init(|| SCHEMAS.iter().map(|s| register_avro(s)).collect())
}

/// Values of the first schema, with the JSON the decoder must produce for them.
fn all_value() -> impl Strategy<Value = (AvroValue, serde_json::Value)> {
    (
        any::<bool>(),
        any::<i32>(),
        -1_000_000_000_000_000i64..1_000_000_000_000_000,
        ".{0,20}",
        prop::collection::vec(any::<u8>(), 0..20),
        prop::collection::vec(-1_000_000_000_000_000i64..1_000_000_000_000_000, 0..5),
        prop::collection::btree_map("[a-z]{1,5}", ".{0,5}", 0..4),
        proptest::option::of(".{0,5}"),
    )
        .prop_map(|(b, i, l, s, y, a, m, u)| {
            use base64::Engine as _;
            let avro = AvroValue::Record(vec![
                ("b".into(), AvroValue::Boolean(b)),
                ("i".into(), AvroValue::Int(i)),
                ("l".into(), AvroValue::Long(l)),
                ("f".into(), AvroValue::Float(1.5)),
                ("d".into(), AvroValue::Double(-2.25)),
                ("s".into(), AvroValue::String(s.clone())),
                ("y".into(), AvroValue::Bytes(y.clone())),
                ("x".into(), AvroValue::Fixed(4, vec![1, 2, 3, 4])),
                ("e".into(), AvroValue::Enum(1, "B".into())),
                (
                    "u".into(),
                    match &u {
                        None => AvroValue::Union(0, Box::new(AvroValue::Null)),
                        Some(t) => AvroValue::Union(1, Box::new(AvroValue::String(t.clone()))),
                    },
                ),
                (
                    "a".into(),
                    AvroValue::Array(a.iter().map(|n| AvroValue::Long(*n)).collect()),
                ),
                (
                    "m".into(),
                    AvroValue::Map(
                        m.iter()
                            .map(|(k, v)| (k.clone(), AvroValue::String(v.clone())))
                            .collect(),
                    ),
                ),
                (
                    "dec".into(),
                    AvroValue::Decimal(apache_avro::Decimal::from(vec![0x04, 0xD2])),
                ),
                (
                    "ts".into(),
                    AvroValue::TimestampMicros(1_714_558_272_123_456),
                ),
                ("date".into(), AvroValue::Date(1)),
                (
                    "uuid".into(),
                    AvroValue::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap()),
                ),
                (
                    "dur".into(),
                    AvroValue::Duration(apache_avro::Duration::from([
                        1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0,
                    ])),
                ),
            ]);
            let json = serde_json::json!({
                "b": b, "i": i, "l": l, "f": 1.5, "d": -2.25, "s": s,
                "y": base64::engine::general_purpose::STANDARD.encode(&y),
                "x": [1, 2, 3, 4], "e": "B", "u": u, "a": a, "m": m, "dec": "12.34",
                "ts": "2024-05-01T10:11:12.123456Z", "date": "1970-01-02T00:00:00Z",
                "uuid": "67e55044-10b1-426f-9247-bb680e5fe0c8",
                "dur": {"Months": 1, "Days": 2, "Milliseconds": 3},
            });
            (avro, json)
        })
}

fn datum_of(schema_text: &str, value: AvroValue) -> Vec<u8> {
    let schema = AvroSchema::parse_str(schema_text).unwrap();
    apache_avro::to_avro_datum(&schema, value).unwrap()
}

/// Hostile schema texts: JSON of Avro-ish shape with odd names, types and attributes.
fn schema_text() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("r".to_string()),
        Just("1bad".to_string()),
        Just("".to_string()),
        Just("a.b.c".to_string()),
        Just(".x".to_string()),
        Just("x.".to_string()),
        "[a-z0-9.$-]{0,6}",
    ];
    let leaf = prop_oneof![
        prop_oneof![
            Just("null"),
            Just("boolean"),
            Just("int"),
            Just("long"),
            Just("float"),
            Just("double"),
            Just("bytes"),
            Just("string"),
            Just("r"),
            Just("nope"),
        ]
        .prop_map(|t| serde_json::json!(t)),
        (name.clone(), 0i64..20)
            .prop_map(|(n, size)| serde_json::json!({"type": "fixed", "name": n, "size": size})),
        (name.clone(), prop::collection::vec(name.clone(), 0..3)).prop_map(
            |(n, symbols)| serde_json::json!({"type": "enum", "name": n, "symbols": symbols})
        ),
        prop_oneof![
            Just("decimal"),
            Just("uuid"),
            Just("date"),
            Just("duration"),
            Just("timestamp-nanos")
        ]
        .prop_map(
            |l| serde_json::json!({"type": "bytes", "logicalType": l, "precision": 4, "scale": 9})
        ),
    ];
    leaf.prop_recursive(4, 24, 4, move |inner| {
        prop_oneof![
            inner.clone().prop_map(|items| serde_json::json!({"type": "array", "items": items})),
            inner.clone().prop_map(|values| serde_json::json!({"type": "map", "values": values})),
            prop::collection::vec(inner.clone(), 0..3).prop_map(serde_json::Value::Array),
            (
                name.clone(),
                prop::collection::vec((name.clone(), inner, proptest::option::of(Just(serde_json::json!(null)))), 0..3),
                prop::collection::vec(name.clone(), 0..2),
            )
                .prop_map(|(n, fields, aliases)| {
                    let fields: Vec<_> = fields
                        .into_iter()
                        .map(|(f, t, default)| {
                            let mut field = serde_json::json!({"name": f, "type": t, "aliases": aliases.clone()});
                            if let Some(d) = default {
                                field["default"] = d;
                            }
                            field
                        })
                        .collect();
                    serde_json::json!({"type": "record", "name": n, "aliases": aliases, "fields": fields})
                }),
        ]
    })
    .prop_map(|v| v.to_string())
}

/// A hostile schema answer: whatever the outcome, no panic, and an error names the schema.
fn check_schema_answer(kind: i32, bytes: &[u8], datum: &[u8]) {
    let version = register(kind, bytes);
    let _ = decode_checked(version, datum, false);
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn datums_round_trip((value, json) in all_value()) {
        let datum = datum_of(SCHEMAS[0], value);
        prop_assert_eq!(decode(schema_versions()[0], &datum).unwrap(), json);
    }

    #[test]
    fn arbitrary_datums(bytes in junk(), which in 0..SCHEMAS.len()) {
        let _ = decode(schema_versions()[which], &bytes);
    }

    #[test]
    fn mutated_datums((value, _) in all_value(), edits in edits()) {
        let datum = datum_of(SCHEMAS[0], value);
        let _ = decode(schema_versions()[0], &mutate(&datum, &edits));
    }

    #[test]
    fn mutated_recursive_datums(depth in 0usize..40, edits in edits(), which in 1..SCHEMAS.len()) {
        // A linked list / tree `depth` deep, then damaged.
        let mut datum = Vec::new();
        for _ in 0..depth {
            datum.extend([2, 2]); // node: v = 1, next = branch 1 / tree: one kid
        }
        datum.extend([2, 0, 0]);
        let _ = decode(schema_versions()[which], &mutate(&datum, &edits));
    }

    #[test]
    fn hostile_schema_texts(text in schema_text(), datum in junk()) {
        check_schema_answer(1, text.as_bytes(), &datum);
    }

    #[test]
    fn mutated_schema_texts(which in 0..SCHEMAS.len(), edits in edits(), datum in junk()) {
        check_schema_answer(1, &mutate(SCHEMAS[which].as_bytes(), &edits), &datum);
    }

    #[test]
    fn arbitrary_schema_answers(kind in -2i32..4, bytes in junk(), datum in junk()) {
        check_schema_answer(kind, &bytes, &datum);
    }
}

#[test]
fn corpus_replays() {
    // Datums, decoded with every schema above.
    for (name, bytes) in corpus("avro_datum") {
        println!("Avro datum corpus {name}");
        for version in schema_versions() {
            let _ = decode(*version, &bytes);
        }
    }
    // Schema texts, used for a few datums.
    for (name, bytes) in corpus("avro_schema") {
        println!("Avro schema corpus {name}");
        for datum in [&b""[..], &[2, 2, 2, 0], &[0; 32]] {
            check_schema_answer(1, &bytes, datum);
        }
    }
}

#[test]
fn huge_counts_and_lengths_are_errors_not_allocations() {
    let mut declared = Vec::new();
    // 2^28 and 2^62 longs in an array block; a 500 MiB string; 2^40 map entries.
    for count in [1i64 << 28, 1 << 62, 500 << 20, 1 << 40] {
        let mut zigzag = Vec::new();
        put_varint(&mut zigzag, (count as u64) << 1);
        declared.push(zigzag);
    }
    let map_of_arrays = schema_versions()[4];
    let nulls = schema_versions()[3];
    for zigzag in &declared {
        let mut datum = zigzag.clone();
        datum.extend([2, 4, 6]);
        for version in [map_of_arrays, nulls] {
            let message = decode(version, &datum).unwrap_err();
            assert!(message.contains("Avro datum"), "{message}");
        }
    }
    // A string field (of the first schema) declaring 500 MiB.
    let mut datum = vec![1, 2, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    put_varint(&mut datum, (500u64 << 20) << 1);
    let message = decode(schema_versions()[0], &datum).unwrap_err();
    assert!(message.contains("string"), "{message}");
}

#[test]
fn deep_recursion_is_an_error_not_a_stack_overflow() {
    // A linked list 100 000 nodes deep: apache-avro alone recurses until the stack overflows.
    let mut datum = Vec::new();
    for _ in 0..100_000 {
        datum.extend([2, 2]);
    }
    datum.extend([2, 0]);
    let message = decode(schema_versions()[1], &datum).unwrap_err();
    assert!(message.contains("nested"), "{message}");
    // At the limit it decodes (on a test thread's 2 MiB stack, in a debug build): 20 nodes of
    // three levels each (union, reference, record) below the root, and the last null.
    let mut shallow = Vec::new();
    for _ in 0..20 {
        shallow.extend([2, 2]);
    }
    shallow.extend([2, 0]);
    let json = decode(schema_versions()[1], &shallow).unwrap();
    assert_eq!(json["v"], 1);
}
