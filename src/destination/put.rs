//! PutRecords as one hand-built, SigV4-signed HTTP request (see [`crate::aws::signed`]).
//!
//! The body is written straight from the prepared entries, in AWS CBOR (data as raw bytes,
//! the default) or AWS JSON 1.1 (data as base64), and the response is read with borrowed
//! strings. The body encoders and the response parsers are pure functions, tested below.

use std::future::Future;
use std::time::Duration;

use http_body_util::BodyExt;
use serde::Deserialize;

use super::retry::{call_verdict, entry_verdict, CallFailure, CallVerdict, EntryVerdict};
use crate::aws::cbor;
use crate::aws::signed::{
    HttpVersions, Protocol, RequestError, RequestFailure, Resource, ServiceError, SignedClient,
};
use crate::aws::StreamRef;

/// A call that has not answered in this time is treated as a lost connection (and retried).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// What the body encoder needs of an entry.
pub(crate) trait PutEntry {
    fn data(&self) -> &[u8];
    fn partition_key(&self) -> &str;
    fn explicit_hash_key(&self) -> Option<&str>;
}

/// Writes the PutRecords request body for `entries` into `body`.
pub(crate) fn encode_body<E: PutEntry>(
    protocol: Protocol,
    stream: &StreamRef,
    entries: &[E],
    body: &mut Vec<u8>,
) {
    match protocol {
        Protocol::Json => encode_json_body(stream, entries, body),
        Protocol::Cbor => encode_cbor_body(stream, entries, body),
    }
}

fn encode_cbor_body<E: PutEntry>(stream: &StreamRef, entries: &[E], body: &mut Vec<u8>) {
    let estimate: usize = entries
        .iter()
        .map(|e| e.data().len() + e.partition_key().len() + 48)
        .sum();
    body.reserve(estimate + 128);
    let mut writer = cbor::Writer(body);
    writer.map(2);
    writer.text("Records");
    writer.array(entries.len());
    for entry in entries {
        let hash_key = entry.explicit_hash_key();
        writer.map(if hash_key.is_some() { 3 } else { 2 });
        writer.text("Data");
        writer.bytes(entry.data());
        writer.text("PartitionKey");
        writer.text(entry.partition_key());
        if let Some(hash_key) = hash_key {
            writer.text("ExplicitHashKey");
            writer.text(hash_key);
        }
    }
    match &stream.arn {
        Some(arn) => {
            writer.text("StreamARN");
            writer.text(arn);
        }
        None => {
            writer.text("StreamName");
            writer.text(&stream.name);
        }
    }
}

fn encode_json_body<E: PutEntry>(stream: &StreamRef, entries: &[E], body: &mut Vec<u8>) {
    let estimate: usize = entries
        .iter()
        .map(|e| e.data().len() * 4 / 3 + e.partition_key().len() + 64)
        .sum();
    body.reserve(estimate + 128);
    body.extend_from_slice(b"{\"Records\":[");
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"Data\":\"");
        base64_simd::STANDARD.encode_append(entry.data(), body);
        body.extend_from_slice(b"\",\"PartitionKey\":");
        write_json_string(body, entry.partition_key());
        if let Some(hash_key) = entry.explicit_hash_key() {
            body.extend_from_slice(b",\"ExplicitHashKey\":");
            write_json_string(body, hash_key);
        }
        body.push(b'}');
    }
    body.extend_from_slice(b"]");
    match &stream.arn {
        Some(arn) => {
            body.extend_from_slice(b",\"StreamARN\":");
            write_json_string(body, arn);
        }
        None => {
            body.extend_from_slice(b",\"StreamName\":");
            write_json_string(body, &stream.name);
        }
    }
    body.push(b'}');
}

fn write_json_string(body: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *body, text).expect("writing JSON to a Vec cannot fail");
}

/// Why one entry was not written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct EntryFailure {
    pub code: String,
    pub message: String,
}

impl EntryFailure {
    /// Whether the entry is worth another attempt (throttled, an internal failure) or rejected.
    pub fn verdict(&self) -> EntryVerdict {
        entry_verdict(Some(&self.code), Some(&self.message))
    }
}

/// One result per entry, in request order: `None` when the entry was written.
pub(crate) type EntryResults = Vec<Option<EntryFailure>>;

/// A successful PutRecords answer: one result per entry and, for written entries, the
/// shard Kinesis put it on (`ShardId`), when the answer says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PutAnswer {
    pub results: EntryResults,
    pub shards: Vec<Option<Box<str>>>,
}

#[derive(Deserialize)]
struct OutputShape<'a> {
    #[serde(rename = "Records", borrow, default)]
    records: Vec<ResultShape<'a>>,
}

#[derive(Deserialize)]
struct ResultShape<'a> {
    #[serde(rename = "ShardId", borrow, default)]
    shard_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "ErrorCode", borrow, default)]
    error_code: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "ErrorMessage", borrow, default)]
    error_message: Option<std::borrow::Cow<'a, str>>,
}

/// Reads a successful PutRecords response. An answer that does not carry one result per
/// entry is an error (the whole call is retried).
pub fn parse_response(
    protocol: Protocol,
    body: &[u8],
    entries: usize,
) -> Result<EntryResults, String> {
    parse_answer(protocol, body, entries).map(|answer| answer.results)
}

/// [`parse_response`] with the shards of the written entries.
pub(crate) fn parse_answer(
    protocol: Protocol,
    body: &[u8],
    entries: usize,
) -> Result<PutAnswer, String> {
    let answer = match protocol {
        Protocol::Json => parse_json_response(body)?,
        Protocol::Cbor => parse_cbor_response(body)?,
    };
    if answer.results.len() != entries {
        return Err(format!(
            "PutRecords answered {} results for {entries} entries",
            answer.results.len()
        ));
    }
    Ok(answer)
}

fn entry_result(code: Option<&str>, message: Option<&str>) -> Option<EntryFailure> {
    code.filter(|code| !code.is_empty())
        .map(|code| EntryFailure {
            code: code.to_string(),
            message: message.unwrap_or_default().to_string(),
        })
}

fn parse_json_response(body: &[u8]) -> Result<PutAnswer, String> {
    let output: OutputShape<'_> = serde_json::from_slice(body)
        .map_err(|e| format!("PutRecords answered something that is not its response: {e}"))?;
    let results = output
        .records
        .iter()
        .map(|result| {
            entry_result(
                result.error_code.as_deref(),
                result.error_message.as_deref(),
            )
        })
        .collect();
    let shards = output
        .records
        .iter()
        .map(|result| result.shard_id.as_deref().map(Box::from))
        .collect();
    Ok(PutAnswer { results, shards })
}

/// Walks the answer with a [`cbor::Cursor`]: only the results' `ErrorCode` and
/// `ErrorMessage` are read, without a tree of every result.
fn parse_cbor_response(body: &[u8]) -> Result<PutAnswer, String> {
    let not_the_response =
        |why: String| format!("PutRecords answered something that is not its response: {why}");
    let cbor_error = |e: cbor::DecodeError| not_the_response(e.to_string());
    let mut cursor = cbor::Cursor::new(body);
    let mut output = cursor.map().map_err(cbor_error)?;
    let mut results = Vec::new();
    let mut shards = Vec::new();
    while cursor.next_in(&mut output) {
        if cursor.text().map_err(cbor_error)?.as_deref() != Some("Records") {
            cursor.skip().map_err(cbor_error)?;
            continue;
        }
        if cursor.null() {
            continue;
        }
        let mut records = cursor
            .array()
            .map_err(|_| not_the_response("Records is not an array".into()))?;
        while cursor.next_in(&mut records) {
            let mut fields = cursor
                .map()
                .map_err(|_| not_the_response("a result is not a map".into()))?;
            let (mut code, mut message, mut shard) = (None, None, None);
            while cursor.next_in(&mut fields) {
                match cursor.text().map_err(cbor_error)?.as_deref() {
                    Some("ErrorCode") => code = cursor.text().map_err(cbor_error)?,
                    Some("ErrorMessage") => message = cursor.text().map_err(cbor_error)?,
                    Some("ShardId") => {
                        shard = cursor.text().map_err(cbor_error)?.as_deref().map(Box::from)
                    }
                    _ => cursor.skip().map_err(cbor_error)?,
                }
            }
            results.push(entry_result(code.as_deref(), message.as_deref()));
            shards.push(shard);
        }
    }
    cursor.finish().map_err(cbor_error)?;
    Ok(PutAnswer { results, shards })
}

/// A PutRecords call that failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallError {
    pub failure: CallFailure,
    pub code: Option<String>,
    pub message: String,
}

impl CallError {
    /// What the failure means for the call's entries: all worth another attempt, the stream
    /// does not exist, or all rejected.
    pub(crate) fn verdict(&self) -> CallVerdict {
        call_verdict(self.failure, self.code.as_deref())
    }

    /// `code: message`, or the message when the failure has no code.
    pub(crate) fn reason(&self) -> String {
        match &self.code {
            Some(code) => format!("{code}: {}", self.message),
            None => self.message.clone(),
        }
    }

    fn transport(message: String) -> CallError {
        CallError {
            failure: CallFailure::Transport,
            code: None,
            message,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason())
    }
}

impl std::error::Error for CallError {}

impl From<RequestError> for CallError {
    fn from(error: RequestError) -> Self {
        CallError {
            failure: match error.failure {
                RequestFailure::Local => CallFailure::Local,
                RequestFailure::Transport => CallFailure::Transport,
            },
            code: None,
            message: error.message,
        }
    }
}

/// An error answer of the service as a failed call.
fn call_error(error: ServiceError) -> CallError {
    CallError {
        failure: CallFailure::Service {
            status: error.status,
        },
        code: error.code,
        message: error.message,
    }
}

/// Sends PutRecords calls: the seam between the writer and the service. [`PutRecordsClient`]
/// sends them to Kinesis; the writer's tests answer them in memory.
pub(crate) trait PutRecordsSender: Send + Sync + 'static {
    /// One PutRecords call for `entries` (at most 500, within 5 MiB) to `stream`: one result
    /// per entry in request order (`None` when written, else why not; see
    /// [`EntryFailure::verdict`]), or why the call failed as a whole (see
    /// [`CallError::verdict`]).
    fn put_records<E: PutEntry + Sync>(
        &self,
        stream: &StreamRef,
        entries: &[E],
    ) -> impl Future<Output = Result<PutAnswer, CallError>> + Send;
}

/// Sends PutRecords calls to Kinesis. Cheap to share between lanes.
pub(crate) struct PutRecordsClient {
    client: SignedClient,
    protocol: Protocol,
}

impl PutRecordsClient {
    /// A client for the region, credentials and endpoint settings of `sdk_config`;
    /// `endpoint_override` as resolved for Kinesis (`aws.url`, or the SDK's configured one).
    pub(crate) fn new(
        sdk_config: &aws_types::SdkConfig,
        endpoint_override: Option<String>,
        protocol: Protocol,
    ) -> Result<Self, String> {
        Ok(PutRecordsClient {
            client: SignedClient::new(sdk_config, endpoint_override, HttpVersions::Http1)?,
            protocol,
        })
    }
}

impl PutRecordsSender for PutRecordsClient {
    async fn put_records<E: PutEntry + Sync>(
        &self,
        stream: &StreamRef,
        entries: &[E],
    ) -> Result<PutAnswer, CallError> {
        let mut body = Vec::new();
        encode_body(self.protocol, stream, entries, &mut body);
        let response = tokio::time::timeout(CALL_TIMEOUT, async {
            let response = self
                .client
                .send("PutRecords", Resource::Stream(stream), self.protocol, body)
                .await?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| {
                    CallError::transport(format!("the PutRecords response was cut off: {e}"))
                })?
                .to_bytes();
            Ok::<_, CallError>((parts, body))
        })
        .await
        .map_err(|_| {
            CallError::transport(format!(
                "PutRecords did not answer within {}s",
                CALL_TIMEOUT.as_secs()
            ))
        })?;
        let (parts, body) = response?;
        if parts.status.is_success() {
            let protocol = Protocol::of_response(&parts.headers);
            return parse_answer(protocol, &body, entries.len()).map_err(CallError::transport);
        }
        Err(call_error(self.client.service_error(&parts, &body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct E(&'static [u8], &'static str, Option<&'static str>);

    impl PutEntry for E {
        fn data(&self) -> &[u8] {
            self.0
        }
        fn partition_key(&self) -> &str {
            self.1
        }
        fn explicit_hash_key(&self) -> Option<&str> {
            self.2
        }
    }

    fn stream(name: &str, arn: Option<&str>) -> StreamRef {
        StreamRef {
            name: name.into(),
            arn: arn.map(str::to_string),
        }
    }

    #[test]
    fn body_is_the_aws_json_put_records_input() {
        let entries = [
            E(b"hello", "k\"1\u{e9}\n", None),
            E(&[0, 255, 1], "k2", Some("42")),
        ];
        let mut body = Vec::new();
        encode_body(Protocol::Json, &stream("orders", None), &entries, &mut body);
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "Records": [
                    {"Data": "aGVsbG8=", "PartitionKey": "k\"1\u{e9}\n"},
                    {"Data": "AP8B", "PartitionKey": "k2", "ExplicitHashKey": "42"},
                ],
                "StreamName": "orders",
            })
        );
        let mut body = Vec::new();
        let arn = "arn:aws:kinesis:us-east-1:123456789012:stream/orders";
        encode_body(
            Protocol::Json,
            &stream("orders", Some(arn)),
            &entries[..1],
            &mut body,
        );
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["StreamARN"], arn);
        assert!(parsed.get("StreamName").is_none());
    }

    /// The results of the response fixtures: the second of three entries throttled.
    fn second_of_three_throttled() -> EntryResults {
        vec![
            None,
            Some(EntryFailure {
                code: "ProvisionedThroughputExceededException".into(),
                message: "Rate exceeded for shard".into(),
            }),
            None,
        ]
    }

    #[test]
    fn response_results_line_up_with_entries() {
        let body = br#"{"FailedRecordCount":1,"Records":[
            {"SequenceNumber":"1","ShardId":"shardId-000000000000"},
            {"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded for shard"},
            {"SequenceNumber":"2","ShardId":"shardId-000000000001","ErrorCode":""}
        ],"EncryptionType":"NONE"}"#;
        let results = parse_response(Protocol::Json, body, 3).unwrap();
        assert_eq!(results, second_of_three_throttled());
        let shards = parse_answer(Protocol::Json, body, 3).unwrap().shards;
        assert_eq!(
            shards,
            vec![
                Some("shardId-000000000000".into()),
                None,
                Some("shardId-000000000001".into())
            ]
        );
        let error = parse_response(Protocol::Json, body, 4).unwrap_err();
        assert!(error.contains("3 results for 4 entries"), "{error}");
        assert!(parse_response(Protocol::Json, b"<html>", 1).is_err());
        // Escaped text in messages is decoded.
        let body = br#"{"Records":[{"ErrorCode":"InternalFailure","ErrorMessage":"a \"b\""}]}"#;
        assert_eq!(
            parse_response(Protocol::Json, body, 1).unwrap()[0]
                .as_ref()
                .unwrap()
                .message,
            "a \"b\""
        );
    }

    /// A CBOR item as ciborium (an independent implementation) reads it.
    fn ciborium_value(bytes: &[u8]) -> ciborium::Value {
        ciborium::from_reader(bytes).expect("well-formed CBOR")
    }

    fn ciborium_bytes(value: &ciborium::Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out).unwrap();
        out
    }

    fn map(entries: Vec<(&str, ciborium::Value)>) -> ciborium::Value {
        ciborium::Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (ciborium::Value::Text(k.into()), v))
                .collect(),
        )
    }

    fn text(s: &str) -> ciborium::Value {
        ciborium::Value::Text(s.into())
    }

    #[test]
    fn cbor_body_carries_data_as_bytes() {
        let big = vec![7u8; 70_000];
        let big: &'static [u8] = Box::leak(big.into_boxed_slice());
        let entries = [
            E(b"hello", "k\"1\u{e9}\n", None),
            E(&[0, 255, 1], "k2", Some("42")),
            E(big, "k3", None),
        ];
        let mut body = Vec::new();
        encode_body(Protocol::Cbor, &stream("orders", None), &entries, &mut body);
        assert_eq!(
            ciborium_value(&body),
            map(vec![
                (
                    "Records",
                    ciborium::Value::Array(vec![
                        map(vec![
                            ("Data", ciborium::Value::Bytes(b"hello".to_vec())),
                            ("PartitionKey", text("k\"1\u{e9}\n")),
                        ]),
                        map(vec![
                            ("Data", ciborium::Value::Bytes(vec![0, 255, 1])),
                            ("PartitionKey", text("k2")),
                            ("ExplicitHashKey", text("42")),
                        ]),
                        map(vec![
                            ("Data", ciborium::Value::Bytes(big.to_vec())),
                            ("PartitionKey", text("k3")),
                        ]),
                    ]),
                ),
                ("StreamName", text("orders")),
            ])
        );
        // Data is not base64: the body is barely larger than data plus keys.
        assert!(body.len() < 70_000 + 5 + 3 + 150, "{}", body.len());

        let mut body = Vec::new();
        let arn = "arn:aws:kinesis:us-east-1:123456789012:stream/orders";
        encode_body(
            Protocol::Cbor,
            &stream("orders", Some(arn)),
            &entries[..1],
            &mut body,
        );
        let value = ciborium_value(&body);
        let members: Vec<_> = value
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(members, vec![text("Records"), text("StreamARN")]);
    }

    #[test]
    fn cbor_response_results_line_up_with_entries() {
        let response = map(vec![
            ("FailedRecordCount", ciborium::Value::Integer(1.into())),
            (
                "Records",
                ciborium::Value::Array(vec![
                    map(vec![
                        ("SequenceNumber", text("1")),
                        ("ShardId", text("shardId-000000000000")),
                    ]),
                    map(vec![
                        ("ErrorCode", text("ProvisionedThroughputExceededException")),
                        ("ErrorMessage", text("Rate exceeded for shard")),
                    ]),
                    map(vec![
                        ("SequenceNumber", text("2")),
                        ("ErrorCode", ciborium::Value::Null),
                        ("ErrorMessage", ciborium::Value::Null),
                    ]),
                ]),
            ),
            ("EncryptionType", text("NONE")),
        ]);
        let body = ciborium_bytes(&response);
        let results = parse_response(Protocol::Cbor, &body, 3).unwrap();
        assert_eq!(results, second_of_three_throttled());
        let shards = parse_answer(Protocol::Cbor, &body, 3).unwrap().shards;
        assert_eq!(
            shards,
            vec![Some("shardId-000000000000".into()), None, None]
        );
        let error = parse_response(Protocol::Cbor, &body, 2).unwrap_err();
        assert!(error.contains("3 results for 2 entries"), "{error}");
        for bad in [
            b"{\"Records\":[]}".as_slice(),
            &ciborium_bytes(&text("Records")),
            &ciborium_bytes(&map(vec![("Records", text("x"))])),
            &ciborium_bytes(&map(vec![(
                "Records",
                ciborium::Value::Array(vec![text("x")]),
            )])),
        ] {
            let error = parse_response(Protocol::Cbor, bad, 0).unwrap_err();
            assert!(error.contains("not its response"), "{error}");
        }
        // A response without results answers no entries.
        let empty = ciborium_bytes(&map(vec![(
            "FailedRecordCount",
            ciborium::Value::Integer(0.into()),
        )]));
        assert_eq!(parse_response(Protocol::Cbor, &empty, 0).unwrap(), vec![]);
    }

    #[test]
    fn error_answers_become_service_call_errors() {
        // Code and message extraction is tested in aws::signed; here only the mapping.
        let body = br#"{"__type":"com.amazonaws.kinesis.v20131202#ResourceNotFoundException","message":"Stream x not found"}"#;
        let error = call_error(crate::aws::signed::parse_service_error(
            400,
            None,
            Protocol::Json,
            body,
        ));
        assert_eq!(error.failure, CallFailure::Service { status: 400 });
        assert_eq!(error.code.as_deref(), Some("ResourceNotFoundException"));
        assert_eq!(error.message, "Stream x not found");
        let local: CallError = RequestError {
            failure: RequestFailure::Local,
            message: "no region".into(),
        }
        .into();
        assert_eq!(local.failure, CallFailure::Local);
    }
}
