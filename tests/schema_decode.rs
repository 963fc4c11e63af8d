//! Decoding of schema-encoded records against an in-process fake of Conduit's
//! `connutils.v1.SchemaService` (token check and error messages as Conduit v0.19.0 answers them).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use apache_avro::types::Value as AvroValue;
use apache_avro::Schema as AvroSchema;
use conduit_connector_kinesis::proto::connutils::v1::schema_service_server::{
    SchemaService, SchemaServiceServer,
};
use conduit_connector_kinesis::proto::connutils::v1::{
    CreateSchemaRequest, CreateSchemaResponse, GetSchemaRequest, GetSchemaResponse,
};
use conduit_connector_kinesis::proto::opencdc::v1::{data, Change, Data, Operation, Record};
use conduit_connector_kinesis::proto::schema::v1::{schema::Type as SchemaType, Schema};
use conduit_connector_kinesis::testing::struct_to_json;
use conduit_connector_kinesis::testing::{SchemaDecoder, SchemaError};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// What Conduit hands the plugin in CONDUIT_CONNECTOR_TOKEN.
const TOKEN: &str =
    r#"{"value":"6f1c2d3e-aaaa-bbbb-cccc-0123456789ab","connector_id":"pipe:kinesis"}"#;

/// The schema Conduit's Go SDK extracts from a generator-like structured payload
/// (`conduit-commons@v0.6.0: schema/avro/extractor.go`: StructuredData → record "record",
/// Go int → long, time.Time → timestamp-micros, nested StructuredData → record
/// "record.<field>", pointer → nullable union; fields sorted by name).
const PAYLOAD_SCHEMA: &str = r#"{
  "type": "record",
  "name": "record",
  "fields": [
    {"name": "address", "type": {"type": "record", "name": "record.address", "fields": [
      {"name": "city", "type": "string"},
      {"name": "zip", "type": "long"}
    ]}},
    {"name": "createdAt", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "id", "type": "long"},
    {"name": "name", "type": "string"},
    {"name": "note", "type": ["string", "null"]},
    {"name": "quantity", "type": "int"},
    {"name": "score", "type": "double"},
    {"name": "trial", "type": "boolean"}
  ]
}"#;

const KEY_SCHEMA: &str =
    r#"{"type":"record","name":"record","fields":[{"name":"id","type":"long"}]}"#;

// -- fake schema service ------------------------------------------------------------------

#[derive(Clone, Default)]
struct FakeSchemaService {
    token: String,
    schemas: Arc<Mutex<HashMap<String, HashMap<i32, String>>>>,
    calls: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl SchemaService for FakeSchemaService {
    async fn create_schema(
        &self,
        _request: Request<CreateSchemaRequest>,
    ) -> Result<Response<CreateSchemaResponse>, Status> {
        Err(Status::unimplemented("not used by destinations"))
    }

    async fn get_schema(
        &self,
        request: Request<GetSchemaRequest>,
    ) -> Result<Response<GetSchemaResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let token = request
            .metadata()
            .get("conduit-connector-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if token != self.token {
            // Conduit: cerrors.Errorf("%q: %w", token, ErrInvalidToken), a plain Go error, so
            // gRPC code Unknown.
            return Err(Status::unknown(format!("{token:?}: invalid token")));
        }
        let request = request.into_inner();
        let schemas = self.schemas.lock().unwrap();
        let versions = schemas
            .get(&request.subject)
            .ok_or_else(|| Status::unknown("schema subject not found"))?;
        let text = versions
            .get(&request.version)
            .ok_or_else(|| Status::unknown("schema version not found"))?;
        Ok(Response::new(GetSchemaResponse {
            schema: Some(Schema {
                subject: request.subject,
                version: request.version,
                id: 7,
                r#type: SchemaType::Avro as i32,
                bytes: text.clone().into_bytes(),
            }),
        }))
    }
}

struct Fake {
    addr: SocketAddr,
    service: FakeSchemaService,
}

impl Fake {
    async fn start() -> Fake {
        let service = FakeSchemaService {
            token: TOKEN.to_string(),
            ..Default::default()
        };
        service.register("orders.payload", 1, PAYLOAD_SCHEMA);
        service.register("orders.key", 1, KEY_SCHEMA);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = SchemaServiceServer::new(service.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(server)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        Fake { addr, service }
    }

    fn calls(&self) -> usize {
        self.service.calls.load(Ordering::SeqCst)
    }

    fn decoder(&self, decode_payload: bool, decode_key: bool) -> SchemaDecoder {
        SchemaDecoder::new(
            Some(self.addr.to_string()),
            Some(TOKEN.to_string()),
            decode_payload,
            decode_key,
        )
    }
}

impl FakeSchemaService {
    fn register(&self, subject: &str, version: i32, text: &str) {
        self.schemas
            .lock()
            .unwrap()
            .entry(subject.to_string())
            .or_default()
            .insert(version, text.to_string());
    }
}

// -- records ------------------------------------------------------------------------------

fn raw(bytes: Vec<u8>) -> Option<Data> {
    Some(Data {
        data: Some(data::Data::RawData(bytes.into())),
    })
}

fn payload_datum(id: i64) -> Vec<u8> {
    let schema = AvroSchema::parse_str(PAYLOAD_SCHEMA).unwrap();
    let value = AvroValue::Record(vec![
        (
            "address".into(),
            AvroValue::Record(vec![
                ("city".into(), AvroValue::String("Lisbon".into())),
                ("zip".into(), AvroValue::Long(1100)),
            ]),
        ),
        (
            "createdAt".into(),
            AvroValue::TimestampMicros(1_714_558_272_123_456),
        ),
        ("id".into(), AvroValue::Long(id)),
        ("name".into(), AvroValue::String("widget".into())),
        (
            "note".into(),
            AvroValue::Union(1, Box::new(AvroValue::Null)),
        ),
        ("quantity".into(), AvroValue::Int(3)),
        ("score".into(), AvroValue::Double(0.75)),
        ("trial".into(), AvroValue::Boolean(true)),
    ]);
    apache_avro::to_avro_datum(&schema, value).unwrap()
}

fn key_datum(id: i64) -> Vec<u8> {
    let schema = AvroSchema::parse_str(KEY_SCHEMA).unwrap();
    apache_avro::to_avro_datum(
        &schema,
        AvroValue::Record(vec![("id".into(), AvroValue::Long(id))]),
    )
    .unwrap()
}

fn expected_payload(id: i64) -> serde_json::Value {
    json!({
        "address": {"city": "Lisbon", "zip": 1100},
        "createdAt": "2024-05-01T10:11:12.123456Z",
        "id": id,
        "name": "widget",
        "note": null,
        "quantity": 3,
        "score": 0.75,
        "trial": true
    })
}

/// A create record the way a Go source with default `sdk.schema.extract.*` delivers it after
/// Conduit's sanitizing (absent `before` becomes empty raw data).
fn encoded_record(id: i64) -> Record {
    let metadata = std::collections::BTreeMap::from([
        (
            "opencdc.payload.schema.subject".to_string(),
            "orders.payload".to_string(),
        ),
        (
            "opencdc.payload.schema.version".to_string(),
            "1".to_string(),
        ),
        (
            "opencdc.key.schema.subject".to_string(),
            "orders.key".to_string(),
        ),
        ("opencdc.key.schema.version".to_string(), "1".to_string()),
        ("opencdc.collection".to_string(), "orders".to_string()),
    ]);
    Record {
        position: format!("pos-{id}").into_bytes(),
        operation: Operation::Create as i32,
        metadata: metadata.into(),
        key: raw(key_datum(id)),
        payload: Some(Change {
            before: raw(Vec::new()),
            after: raw(payload_datum(id)),
        }),
    }
}

fn structured_json(data: Option<&Data>) -> serde_json::Value {
    match data.and_then(|d| d.data.as_ref()) {
        Some(data::Data::StructuredData(s)) => struct_to_json(s),
        other => panic!("expected structured data, got {other:?}"),
    }
}

fn after(record: &Record) -> Option<&Data> {
    record.payload.as_ref().and_then(|p| p.after.as_ref())
}

fn before(record: &Record) -> Option<&Data> {
    record.payload.as_ref().and_then(|p| p.before.as_ref())
}

// -- tests --------------------------------------------------------------------------------

#[tokio::test]
async fn decodes_payload_and_key() {
    let fake = Fake::start().await;
    let decoder = fake.decoder(true, true);
    let mut record = encoded_record(42);
    let original = record.clone();
    decoder.decode(&mut record).await.unwrap();

    assert_eq!(structured_json(after(&record)), expected_payload(42));
    assert_eq!(structured_json(record.key.as_ref()), json!({"id": 42}));
    // Empty raw `before` (Conduit's stand-in for "absent") is left alone.
    assert_eq!(before(&record), raw(Vec::new()).as_ref());
    assert_eq!(record.metadata, original.metadata);
    assert_eq!(record.position, original.position);
    assert_eq!(fake.calls(), 2); // one per subject
}

#[tokio::test]
async fn decodes_before_of_an_update() {
    let fake = Fake::start().await;
    let decoder = fake.decoder(true, false);
    let mut record = encoded_record(1);
    record.operation = Operation::Update as i32;
    record.payload.as_mut().unwrap().before = raw(payload_datum(0));
    decoder.decode(&mut record).await.unwrap();
    assert_eq!(structured_json(before(&record)), expected_payload(0));
    assert_eq!(structured_json(after(&record)), expected_payload(1));
    // decode_key = false: the key stays raw.
    assert_eq!(record.key, raw(key_datum(1)));
}

#[tokio::test]
async fn record_without_schema_metadata_is_untouched() {
    let fake = Fake::start().await;
    let decoder = fake.decoder(true, true);
    let mut record = encoded_record(5);
    record.metadata.clear();
    let original = record.clone();
    for _ in 0..3 {
        // Warns once, never fails.
        decoder.decode(&mut record).await.unwrap();
    }
    assert_eq!(record, original);

    // Only a subject (no version) counts as absent too, like the Go SDK.
    let mut record = encoded_record(5);
    record.metadata.remove("opencdc.payload.schema.version");
    let original = record.clone();
    decoder.decode(&mut record).await.unwrap();
    assert_eq!(after(&record), after(&original));
    assert_eq!(structured_json(record.key.as_ref()), json!({"id": 5}));
}

#[tokio::test]
async fn structured_data_is_untouched_and_needs_no_schema() {
    let fake = Fake::start().await;
    let decoder = fake.decoder(true, true);
    let structure = prost_types::Struct {
        fields: [(
            "id".to_string(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::NumberValue(1.0)),
            },
        )]
        .into(),
    };
    let mut record = encoded_record(1);
    let structured = Some(Data {
        data: Some(data::Data::StructuredData(structure)),
    });
    record.key = structured.clone();
    record.payload = Some(Change {
        before: None,
        after: structured.clone(),
    });
    let original = record.clone();
    decoder.decode(&mut record).await.unwrap();
    assert_eq!(record, original);
    assert_eq!(fake.calls(), 0);
}

#[tokio::test]
async fn disabled_payload_decoding_leaves_the_payload_raw() {
    let fake = Fake::start().await;
    let decoder = fake.decoder(false, true);
    let mut record = encoded_record(9);
    decoder.decode(&mut record).await.unwrap();
    assert_eq!(after(&record), raw(payload_datum(9)).as_ref());
    assert_eq!(structured_json(record.key.as_ref()), json!({"id": 9}));
    assert_eq!(fake.calls(), 1);

    let decoder = fake.decoder(false, false);
    let mut record = encoded_record(9);
    let original = record.clone();
    decoder.decode(&mut record).await.unwrap();
    assert_eq!(record, original);
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
async fn wrong_token_is_an_error_without_the_token() {
    let fake = Fake::start().await;
    let decoder = SchemaDecoder::new(
        Some(fake.addr.to_string()),
        Some(r#"{"value":"wrong-token-value","connector_id":"x"}"#.to_string()),
        true,
        false,
    );
    let mut record = encoded_record(1);
    let original = record.clone();
    let err = decoder.decode(&mut record).await.unwrap_err();
    assert!(matches!(err, SchemaError::InvalidToken { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("\"orders.payload\""), "{text}");
    assert!(text.contains("version 1"), "{text}");
    assert!(text.contains("CONDUIT_CONNECTOR_TOKEN"), "{text}");
    assert!(!text.contains("wrong-token-value"), "{text}");
    assert!(!format!("{err:?}").contains("wrong-token-value"));
    assert!(!format!("{decoder:?}").contains("wrong-token-value"));
    assert_eq!(record, original, "a failed record is left unchanged");

    // No token at all: Conduit sees no header and rejects the call the same way.
    let decoder = SchemaDecoder::new(Some(fake.addr.to_string()), None, true, false);
    let err = decoder.decode(&mut encoded_record(1)).await.unwrap_err();
    assert!(matches!(err, SchemaError::InvalidToken { .. }), "{err:?}");
}

#[tokio::test]
async fn unknown_subject_or_version_names_them() {
    let fake = Fake::start().await;
    let decoder = fake.decoder(true, true);

    let mut record = encoded_record(1);
    record
        .metadata
        .insert("opencdc.payload.schema.subject", "nope.payload");
    let err = decoder.decode(&mut record).await.unwrap_err();
    assert!(
        matches!(err, SchemaError::SubjectNotFound { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("\"nope.payload\""), "{text}");
    assert!(text.contains("version 1"), "{text}");
    assert!(text.contains("schema subject not found"), "{text}");
    assert!(
        text.contains("sdk.schema.extract.payload.enabled: false"),
        "{text}"
    );

    let mut record = encoded_record(1);
    record.metadata.insert("opencdc.key.schema.version", "4");
    let err = decoder.decode(&mut record).await.unwrap_err();
    assert!(
        matches!(err, SchemaError::VersionNotFound { .. }),
        "{err:?}"
    );
    assert_eq!(err.subject(), Some("orders.key"));
    assert_eq!(err.version(), Some(4));
    let text = err.to_string();
    assert!(text.contains("version 4"), "{text}");
    assert!(text.contains("\"orders.key\""), "{text}");
    assert!(
        text.contains("sdk.schema.extract.key.enabled: false"),
        "{text}"
    );

    let mut record = encoded_record(1);
    record
        .metadata
        .insert("opencdc.payload.schema.version", "one");
    let err = decoder.decode(&mut record).await.unwrap_err();
    assert!(matches!(err, SchemaError::InvalidVersion { .. }), "{err:?}");
    assert!(err.to_string().contains("\"one\""));
}

#[tokio::test]
async fn failures_are_not_cached() {
    let fake = Fake::start().await;
    let decoder = fake.decoder(true, false);
    let mut record = encoded_record(1);
    record
        .metadata
        .insert("opencdc.payload.schema.version", "2");
    assert!(decoder.decode(&mut record.clone()).await.is_err());
    fake.service.register("orders.payload", 2, PAYLOAD_SCHEMA);
    decoder.decode(&mut record).await.unwrap();
    assert_eq!(structured_json(after(&record)), expected_payload(1));
    assert_eq!(fake.calls(), 2);
}

#[tokio::test]
async fn undecodable_datum_names_the_field() {
    let fake = Fake::start().await;
    let decoder = fake.decoder(true, true);
    let mut record = encoded_record(1);
    // Not Avro for this schema: a JSON document.
    record.payload.as_mut().unwrap().after = raw(br#"{"id":1}"#.to_vec());
    let original = record.clone();
    let err = decoder.decode(&mut record).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            SchemaError::Decode {
                field: "payload.after",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(text.contains("payload.after"), "{text}");
    assert!(text.contains("\"orders.payload\""), "{text}");
    // The key decoded fine, but the record is left as it was.
    assert_eq!(record, original);
}

#[tokio::test]
async fn schema_is_fetched_once_for_many_records() {
    let fake = Fake::start().await;
    let decoder = fake.decoder(true, false);
    for id in 0..50 {
        let mut record = encoded_record(id);
        decoder.decode(&mut record).await.unwrap();
        assert_eq!(structured_json(after(&record)), expected_payload(id));
    }
    assert_eq!(fake.calls(), 1);

    // Concurrent first use shares one request; clones share the cache.
    let fresh = fake.decoder(true, true);
    let tasks: Vec<_> = (0..20)
        .map(|id| {
            let decoder = fresh.clone();
            tokio::spawn(async move {
                let mut record = encoded_record(id);
                decoder.decode(&mut record).await.map(|_| record)
            })
        })
        .collect();
    for task in tasks {
        let record = task.await.unwrap().unwrap();
        assert!(matches!(
            after(&record).and_then(|d| d.data.as_ref()),
            Some(data::Data::StructuredData(_))
        ));
    }
    assert_eq!(fake.calls(), 3); // + payload and key schema once each
}

#[tokio::test]
async fn go_listener_address_forms_work() {
    let fake = Fake::start().await;
    let port = fake.addr.port();
    for target in [format!("[::]:{port}"), format!("0.0.0.0:{port}")] {
        let decoder = SchemaDecoder::new(Some(target.clone()), Some(TOKEN.into()), true, true);
        let mut record = encoded_record(3);
        decoder
            .decode(&mut record)
            .await
            .unwrap_or_else(|e| panic!("{target}: {e}"));
        assert_eq!(structured_json(after(&record)), expected_payload(3));
    }
}

#[tokio::test]
async fn missing_or_unreachable_service() {
    // No target: only records that need a schema fail.
    let decoder = SchemaDecoder::new(None, Some(TOKEN.into()), true, true);
    let mut plain = encoded_record(1);
    plain.metadata.clear();
    decoder.decode(&mut plain).await.unwrap();
    let err = decoder.decode(&mut encoded_record(1)).await.unwrap_err();
    assert!(matches!(err, SchemaError::NoService { .. }), "{err:?}");
    assert!(err
        .to_string()
        .contains("CONDUIT_CONNECTOR_UTILITIES_GRPC_TARGET"));

    // Nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let decoder = SchemaDecoder::new(Some(format!("[::]:{port}")), Some(TOKEN.into()), true, true);
    let err = decoder.decode(&mut encoded_record(1)).await.unwrap_err();
    assert!(matches!(err, SchemaError::Unavailable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("[::]:{port}")), "{text}");
    assert!(text.contains("\"orders.key\""), "{text}");
}
