//! PutRecords as one hand-built, SigV4-signed HTTP request (see [`crate::aws::signed`]).
//!
//! The body is written straight from the prepared entries (base64 into the body buffer) and
//! the response is read with borrowed strings. The body encoder and the response parser are
//! pure functions, tested below.

use std::time::Duration;

use http_body_util::BodyExt;
use serde::Deserialize;

use super::retry::CallFailure;
use crate::aws::signed::{
    HttpVersions, RequestError, RequestFailure, Resource, ServiceError, SignedClient,
};
use crate::aws::StreamRef;

/// A call that has not answered in this time is treated as a lost connection (and retried).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// What the body encoder needs of an entry.
pub trait PutEntry {
    fn data(&self) -> &[u8];
    fn partition_key(&self) -> &str;
    fn explicit_hash_key(&self) -> Option<&str>;
}

/// Writes the PutRecords request body (AWS JSON 1.1) for `entries` into `body`.
pub fn encode_body<E: PutEntry>(stream: &StreamRef, entries: &[E], body: &mut Vec<u8>) {
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFailure {
    pub code: String,
    pub message: String,
}

/// One result per entry, in request order: `None` when the entry was written.
pub type EntryResults = Vec<Option<EntryFailure>>;

#[derive(Deserialize)]
struct OutputShape<'a> {
    #[serde(rename = "Records", borrow, default)]
    records: Vec<ResultShape<'a>>,
}

#[derive(Deserialize)]
struct ResultShape<'a> {
    #[serde(rename = "ErrorCode", borrow, default)]
    error_code: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "ErrorMessage", borrow, default)]
    error_message: Option<std::borrow::Cow<'a, str>>,
}

/// Reads a successful PutRecords response. An answer that does not carry one result per
/// entry is an error (the whole call is retried).
pub fn parse_response(body: &[u8], entries: usize) -> Result<EntryResults, String> {
    let output: OutputShape<'_> = serde_json::from_slice(body)
        .map_err(|e| format!("PutRecords answered something that is not its response: {e}"))?;
    if output.records.len() != entries {
        return Err(format!(
            "PutRecords answered {} results for {entries} entries",
            output.records.len()
        ));
    }
    Ok(output
        .records
        .into_iter()
        .map(|result| {
            result
                .error_code
                .filter(|code| !code.is_empty())
                .map(|code| EntryFailure {
                    code: code.into_owned(),
                    message: result.error_message.unwrap_or_default().into_owned(),
                })
        })
        .collect())
}

/// A PutRecords call that failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub failure: CallFailure,
    pub code: Option<String>,
    pub message: String,
}

impl CallError {
    fn transport(message: String) -> CallError {
        CallError {
            failure: CallFailure::Transport,
            code: None,
            message,
        }
    }
}

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

/// Sends PutRecords calls. Cheap to share between lanes.
pub struct PutRecordsClient {
    client: SignedClient,
}

impl PutRecordsClient {
    /// A client for the region, credentials and endpoint settings of `sdk_config`;
    /// `endpoint_override` as resolved for Kinesis (`aws.url`, or the SDK's configured one).
    pub fn new(
        sdk_config: &aws_types::SdkConfig,
        endpoint_override: Option<String>,
    ) -> Result<Self, String> {
        Ok(PutRecordsClient {
            client: SignedClient::new(sdk_config, endpoint_override, HttpVersions::Http1)?,
        })
    }

    /// One PutRecords call for `entries` (at most 500, within 5 MiB) to `stream`.
    pub async fn put_records<E: PutEntry>(
        &self,
        stream: &StreamRef,
        entries: &[E],
    ) -> Result<EntryResults, CallError> {
        let mut body = Vec::new();
        encode_body(stream, entries, &mut body);
        let response = tokio::time::timeout(CALL_TIMEOUT, async {
            let response = self
                .client
                .send("PutRecords", Resource::Stream(stream), body)
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
            return parse_response(&body, entries.len()).map_err(CallError::transport);
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
        encode_body(&stream("orders", None), &entries, &mut body);
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
        encode_body(&stream("orders", Some(arn)), &entries[..1], &mut body);
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["StreamARN"], arn);
        assert!(parsed.get("StreamName").is_none());
    }

    #[test]
    fn response_results_line_up_with_entries() {
        let body = br#"{"FailedRecordCount":1,"Records":[
            {"SequenceNumber":"1","ShardId":"shardId-000000000000"},
            {"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded for shard"},
            {"SequenceNumber":"2","ShardId":"shardId-000000000001","ErrorCode":""}
        ],"EncryptionType":"NONE"}"#;
        let results = parse_response(body, 3).unwrap();
        assert_eq!(
            results,
            vec![
                None,
                Some(EntryFailure {
                    code: "ProvisionedThroughputExceededException".into(),
                    message: "Rate exceeded for shard".into()
                }),
                None
            ]
        );
        let error = parse_response(body, 4).unwrap_err();
        assert!(error.contains("3 results for 4 entries"), "{error}");
        assert!(parse_response(b"<html>", 1).is_err());
        // Escaped text in messages is decoded.
        let body = br#"{"Records":[{"ErrorCode":"InternalFailure","ErrorMessage":"a \"b\""}]}"#;
        assert_eq!(
            parse_response(body, 1).unwrap()[0]
                .as_ref()
                .unwrap()
                .message,
            "a \"b\""
        );
    }

    #[test]
    fn error_answers_become_service_call_errors() {
        // Code and message extraction is tested in aws::signed; here only the mapping.
        let body = br#"{"__type":"com.amazonaws.kinesis.v20131202#ResourceNotFoundException","message":"Stream x not found"}"#;
        let error = call_error(crate::aws::signed::parse_service_error(400, None, body));
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
