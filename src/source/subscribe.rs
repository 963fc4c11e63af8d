//! SubscribeToShard, sent and read by hand (see [`crate::aws::signed`] for why): the request
//! body, the events of one subscription, and its errors.
//!
//! Event payloads are parsed with borrowed strings and each record's base64 `Data` is
//! decoded once, straight into the buffer the record keeps; the AWS SDK's event-stream
//! reader copied and scanned every record several times and was most of the source's CPU.

use std::borrow::Cow;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;

use super::eventstream::{Message, MessageBuffer};
use super::records::FetchedRecord;
use crate::aws::signed::{HttpVersions, Protocol, Resource, SignedClient};
use crate::aws::KinesisConnection;

/// Where a subscription starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartingPoint {
    TrimHorizon,
    Latest,
    /// Milliseconds since the epoch.
    AtTimestamp(i64),
    AtSequence(String),
    AfterSequence(String),
}

/// A subscription that could not be made or that failed; `code` is the AWS error code
/// (`ResourceInUseException`, ...) when the service gave one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
pub struct SubscribeError {
    pub code: Option<String>,
    pub message: String,
}

impl SubscribeError {
    fn without_code(message: String) -> Self {
        SubscribeError {
            code: None,
            message,
        }
    }
}

/// What one `SubscribeToShardEvent` carries.
#[derive(Debug, Default, PartialEq)]
pub struct SubscriptionEvent {
    pub records: Vec<FetchedRecord>,
    /// `None` when the shard has ended (its children are in `child_shards`).
    pub continuation: Option<String>,
    pub child_shards: Vec<String>,
    /// How far this event is from the newest record of the shard.
    pub millis_behind_latest: Option<i64>,
}

/// Writes the SubscribeToShard input (AWS JSON 1.1).
pub(crate) fn request_body(consumer_arn: &str, shard: &str, start: &StartingPoint) -> Vec<u8> {
    let position = match start {
        StartingPoint::TrimHorizon => serde_json::json!({"Type": "TRIM_HORIZON"}),
        StartingPoint::Latest => serde_json::json!({"Type": "LATEST"}),
        StartingPoint::AtTimestamp(ms) => {
            // Epoch seconds, as the AWS JSON protocol writes timestamps.
            serde_json::json!({"Type": "AT_TIMESTAMP", "Timestamp": *ms as f64 / 1000.0})
        }
        StartingPoint::AtSequence(sequence) => {
            serde_json::json!({"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": sequence})
        }
        StartingPoint::AfterSequence(sequence) => {
            serde_json::json!({"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": sequence})
        }
    };
    serde_json::to_vec(&serde_json::json!({
        "ConsumerARN": consumer_arn,
        "ShardId": shard,
        "StartingPosition": position,
    }))
    .expect("a JSON value always serializes")
}

#[derive(Deserialize)]
struct EventShape<'a> {
    // Servers write absent lists as null as well as leaving them out.
    #[serde(rename = "Records", borrow, default)]
    records: Option<Vec<RecordShape<'a>>>,
    #[serde(rename = "ContinuationSequenceNumber", borrow, default)]
    continuation: Option<Cow<'a, str>>,
    #[serde(rename = "ChildShards", borrow, default)]
    child_shards: Option<Vec<ChildShape<'a>>>,
    #[serde(rename = "MillisBehindLatest", default)]
    millis_behind_latest: Option<i64>,
}

#[derive(Deserialize)]
struct RecordShape<'a> {
    #[serde(rename = "SequenceNumber", borrow)]
    sequence: Cow<'a, str>,
    #[serde(rename = "Data", borrow)]
    data: Cow<'a, str>,
    #[serde(rename = "PartitionKey", borrow, default)]
    partition_key: Cow<'a, str>,
    #[serde(rename = "ApproximateArrivalTimestamp", default)]
    arrival_seconds: Option<f64>,
    #[serde(rename = "EncryptionType", borrow, default)]
    encryption_type: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ChildShape<'a> {
    #[serde(rename = "ShardId", borrow)]
    shard_id: Cow<'a, str>,
}

/// Reads one `SubscribeToShardEvent` payload.
pub fn parse_event(payload: &[u8]) -> Result<SubscriptionEvent, String> {
    let shape: EventShape<'_> = serde_json::from_slice(payload)
        .map_err(|e| format!("a SubscribeToShard event is not valid JSON of its shape: {e}"))?;
    let shape_records = shape.records.unwrap_or_default();
    let mut records = Vec::with_capacity(shape_records.len());
    for record in shape_records {
        let data = base64_simd::STANDARD
            .decode_to_vec(record.data.as_bytes())
            .map_err(|_| {
                format!(
                    "record {} of a SubscribeToShard event has Data that is not base64",
                    record.sequence
                )
            })?;
        records.push(FetchedRecord {
            sequence: record.sequence.into_owned(),
            partition_key: record.partition_key.into_owned(),
            data,
            arrival_ms: record
                .arrival_seconds
                .map(|seconds| (seconds * 1000.0).round() as i64),
            encryption_type: record.encryption_type.map(Cow::into_owned),
        });
    }
    Ok(SubscriptionEvent {
        records,
        continuation: shape
            .continuation
            .filter(|c| !c.is_empty())
            .map(Cow::into_owned),
        child_shards: shape
            .child_shards
            .unwrap_or_default()
            .into_iter()
            .map(|child| child.shard_id.into_owned())
            .collect(),
        millis_behind_latest: shape.millis_behind_latest,
    })
}

#[derive(Deserialize, Default)]
struct ExceptionShape<'a> {
    #[serde(alias = "Message", borrow, default)]
    message: Option<Cow<'a, str>>,
}

/// What a message of the stream means: an event, nothing (initial response, unknown
/// events), or the error that ends the subscription.
fn classify(message: &Message) -> Result<Option<SubscriptionEvent>, SubscribeError> {
    match message.message_type.as_deref() {
        Some("event") | None => match message.event_type.as_deref() {
            Some("SubscribeToShardEvent") => parse_event(&message.payload)
                .map(Some)
                .map_err(SubscribeError::without_code),
            _ => Ok(None),
        },
        Some("exception") => {
            let shape: ExceptionShape<'_> =
                serde_json::from_slice(&message.payload).unwrap_or_default();
            Err(SubscribeError {
                code: message.exception_type.clone(),
                message: shape
                    .message
                    .map(Cow::into_owned)
                    .unwrap_or_else(|| String::from_utf8_lossy(&message.payload).into_owned()),
            })
        }
        Some(other) => Err(SubscribeError {
            code: message.error_code.clone(),
            message: message
                .error_message
                .clone()
                .unwrap_or_else(|| format!("the event stream sent a message of type {other:?}")),
        }),
    }
}

/// Makes subscriptions; one per source, shared by its shard readers.
#[derive(Debug)]
pub struct Subscriber {
    client: SignedClient,
}

impl Subscriber {
    pub fn new(connection: &KinesisConnection) -> Result<Self, String> {
        Ok(Subscriber {
            client: SignedClient::new(
                &connection.sdk_config,
                connection.endpoint_override.clone(),
                HttpVersions::Negotiated,
            )?,
        })
    }

    /// Subscribes `consumer_arn` to `shard`; the answer's headers must arrive within
    /// `timeout`.
    pub async fn subscribe(
        &self,
        consumer_arn: &str,
        shard: &str,
        start: &StartingPoint,
        timeout: Duration,
    ) -> Result<Subscription, SubscribeError> {
        let body = request_body(consumer_arn, shard, start);
        let sent = tokio::time::timeout(
            timeout,
            self.client.send(
                "SubscribeToShard",
                Resource::Consumer(consumer_arn),
                Protocol::Json,
                body,
            ),
        )
        .await
        .map_err(|_| {
            SubscribeError::without_code(format!(
                "SubscribeToShard did not answer within {}s",
                timeout.as_secs()
            ))
        })?
        .map_err(|e| SubscribeError::without_code(e.message))?;
        let (parts, body) = sent.into_parts();
        if !parts.status.is_success() {
            let answer = tokio::time::timeout(timeout, body.collect())
                .await
                .ok()
                .and_then(Result::ok)
                .map(|collected| collected.to_bytes())
                .unwrap_or_default();
            let error = self.client.service_error(&parts, &answer);
            return Err(SubscribeError {
                code: error.code,
                message: error.message,
            });
        }
        Ok(Subscription {
            body,
            buffer: MessageBuffer::default(),
        })
    }
}

/// One open subscription: its events until the server ends it.
pub struct Subscription {
    body: Incoming,
    buffer: MessageBuffer,
}

impl Subscription {
    /// The next event; `Ok(None)` when the server ended the subscription (after its five
    /// minutes, or when the shard has ended and its last event was sent).
    pub async fn next_event(&mut self) -> Result<Option<SubscriptionEvent>, SubscribeError> {
        loop {
            while let Some(message) = self
                .buffer
                .next_message()
                .map_err(|e| SubscribeError::without_code(e.to_string()))?
            {
                if let Some(event) = classify(&message)? {
                    return Ok(Some(event));
                }
            }
            match self.body.frame().await {
                None if self.buffer.pending_len() == 0 => return Ok(None),
                None => {
                    return Err(SubscribeError::without_code(format!(
                        "the subscription ended in the middle of a message ({} bytes left)",
                        self.buffer.pending_len()
                    )))
                }
                Some(Err(e)) => {
                    return Err(SubscribeError::without_code(format!(
                        "the subscription's connection failed: {e}"
                    )))
                }
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        self.buffer.push(data);
                    }
                }
            }
        }
    }

    /// The events as a stream, which ends where [`Subscription::next_event`] gives `Ok(None)`
    /// or after the first error.
    pub fn into_events(
        self,
    ) -> impl futures::Stream<Item = Result<SubscriptionEvent, SubscribeError>> + Send + 'static
    {
        futures::stream::unfold(Some(self), |subscription| async move {
            let mut subscription = subscription?;
            match subscription.next_event().await {
                Ok(Some(event)) => Some((Ok(event), Some(subscription))),
                Ok(None) => None,
                Err(error) => Some((Err(error), None)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::eventstream::encode_message;
    use super::*;

    #[test]
    fn request_body_is_the_subscribe_to_shard_input() {
        let arn = "arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/c:1";
        let body = |start| {
            serde_json::from_slice::<serde_json::Value>(&request_body(arn, "shardId-1", &start))
                .unwrap()
        };
        assert_eq!(
            body(StartingPoint::AfterSequence("4959".into())),
            serde_json::json!({
                "ConsumerARN": arn,
                "ShardId": "shardId-1",
                "StartingPosition": {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": "4959"},
            })
        );
        assert_eq!(
            body(StartingPoint::AtSequence("7".into()))["StartingPosition"],
            serde_json::json!({"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": "7"})
        );
        assert_eq!(
            body(StartingPoint::TrimHorizon)["StartingPosition"],
            serde_json::json!({"Type": "TRIM_HORIZON"})
        );
        assert_eq!(
            body(StartingPoint::Latest)["StartingPosition"],
            serde_json::json!({"Type": "LATEST"})
        );
        assert_eq!(
            body(StartingPoint::AtTimestamp(1_700_000_000_250))["StartingPosition"],
            serde_json::json!({"Type": "AT_TIMESTAMP", "Timestamp": 1_700_000_000.25})
        );
    }

    #[test]
    fn events_become_records_with_decoded_data() {
        let payload = br#"{"ContinuationSequenceNumber":"49590","MillisBehindLatest":0,
            "Records":[
              {"SequenceNumber":"4958","ApproximateArrivalTimestamp":1700000000.123,
               "Data":"aGVsbG8=","PartitionKey":"k\u00e9","EncryptionType":"NONE"},
              {"SequenceNumber":"4959","Data":"","PartitionKey":"k2"}
            ]}"#;
        let event = parse_event(payload).unwrap();
        assert_eq!(event.continuation.as_deref(), Some("49590"));
        assert_eq!(
            event.records,
            vec![
                FetchedRecord {
                    sequence: "4958".into(),
                    partition_key: "k\u{e9}".into(),
                    data: b"hello".to_vec(),
                    arrival_ms: Some(1_700_000_000_123),
                    encryption_type: Some("NONE".into()),
                },
                FetchedRecord {
                    sequence: "4959".into(),
                    partition_key: "k2".into(),
                    data: Vec::new(),
                    arrival_ms: None,
                    encryption_type: None,
                },
            ]
        );
        assert!(event.child_shards.is_empty());
        // kinesis-local writes absent lists as null.
        let event =
            parse_event(br#"{"ContinuationSequenceNumber":"1","Records":null,"ChildShards":null}"#)
                .unwrap();
        assert!(event.records.is_empty() && event.child_shards.is_empty());

        // The last event of a closed shard: no continuation, its children named.
        let ended = parse_event(
            br#"{"Records":[],"ChildShards":[{"ShardId":"shardId-2","ParentShards":["shardId-1"],
                "HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"9"}}]}"#,
        )
        .unwrap();
        assert_eq!(ended.continuation, None);
        assert_eq!(ended.child_shards, vec!["shardId-2".to_string()]);

        let error =
            parse_event(br#"{"Records":[{"SequenceNumber":"1","Data":"!!"}]}"#).unwrap_err();
        assert!(
            error.contains("record 1") && error.contains("base64"),
            "{error}"
        );
        assert!(parse_event(b"not json").is_err());
    }

    #[test]
    fn messages_classify_into_events_nothing_or_errors() {
        let decode = |wire: Vec<u8>| {
            let mut buffer = MessageBuffer::default();
            buffer.push(&wire);
            classify(&buffer.next_message().unwrap().unwrap())
        };
        let initial = encode_message(
            &[
                (":message-type", "event"),
                (":event-type", "initial-response"),
            ],
            b"{}",
        );
        assert_eq!(decode(initial), Ok(None));
        let event = encode_message(
            &[
                (":message-type", "event"),
                (":event-type", "SubscribeToShardEvent"),
            ],
            br#"{"ContinuationSequenceNumber":"5","Records":[]}"#,
        );
        assert_eq!(
            decode(event).unwrap().unwrap().continuation.as_deref(),
            Some("5")
        );
        let exception = encode_message(
            &[
                (":message-type", "exception"),
                (":exception-type", "ResourceInUseException"),
            ],
            br#"{"message":"Another active subscription exists"}"#,
        );
        let error = decode(exception).unwrap_err();
        assert_eq!(error.code.as_deref(), Some("ResourceInUseException"));
        assert_eq!(
            error.to_string(),
            "ResourceInUseException: Another active subscription exists"
        );
        let failure = encode_message(
            &[
                (":message-type", "error"),
                (":error-code", "InternalFailure"),
                (":error-message", "try again"),
            ],
            b"",
        );
        let error = decode(failure).unwrap_err();
        assert_eq!(error.code.as_deref(), Some("InternalFailure"));
        assert_eq!(error.message, "try again");
    }
}
