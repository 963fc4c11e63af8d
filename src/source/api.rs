//! What the source asks of Kinesis to read shards ([`ShardApi`]), and its AWS implementation
//! ([`AwsShards`]): the SDK client for ListShards, GetShardIterator and GetRecords, the
//! signed client of [`super::subscribe`] for SubscribeToShard.
//!
//! The engine and its readers see only the trait, so tests can read shards of an in-memory
//! stream instead. Calls are per page or per subscription, never per record.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::Client;
use futures::stream::BoxStream;

use super::lineage::ShardInfo;
use super::records::FetchedRecord;
use super::subscribe::{StartingPoint, SubscribeError, Subscriber, SubscriptionEvent};
use crate::aws::StreamRef;

/// A failed call; `code` is the AWS error code (`ExpiredIteratorException`, ...) when the
/// service gave one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct ApiError {
    pub code: Option<String>,
    pub message: String,
}

/// One GetRecords answer.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct RecordsPage {
    pub records: Vec<FetchedRecord>,
    /// `None` when the shard is closed and was read to its end.
    pub next_iterator: Option<String>,
    pub millis_behind_latest: Option<i64>,
}

/// The events of one subscription until it ends: the stream ends when the service ended the
/// subscription (after its five minutes, or after the last event of a closed shard); an
/// error ends it too.
pub(crate) type EventStream = BoxStream<'static, Result<SubscriptionEvent, SubscribeError>>;

/// A shard's hash key range, when known.
pub(crate) type HashRange = Option<(String, String)>;

/// Reading the shards of one stream.
#[async_trait]
pub(crate) trait ShardApi: Send + Sync + 'static {
    /// Every shard of the stream (every ListShards page).
    async fn list_shards(&self) -> Result<Vec<ShardInfo>, ApiError>;

    /// Every shard with its hash key range (`StartingHashKey`, `EndingHashKey`), for lease
    /// items; the default knows no ranges.
    async fn list_shards_with_ranges(&self) -> Result<Vec<(ShardInfo, HashRange)>, ApiError> {
        Ok(self
            .list_shards()
            .await?
            .into_iter()
            .map(|shard| (shard, None))
            .collect())
    }

    /// A shard iterator starting at `start`; `None` when there is none to give (a closed
    /// shard with nothing left).
    async fn shard_iterator(
        &self,
        shard: &str,
        start: &StartingPoint,
    ) -> Result<Option<String>, ApiError>;

    /// Up to `limit` records from `iterator`.
    async fn get_records(&self, iterator: &str, limit: i32) -> Result<RecordsPage, ApiError>;

    /// Subscribes `consumer_arn` to `shard` from `start`; the answer must begin within
    /// `timeout`.
    async fn subscribe(
        &self,
        consumer_arn: &str,
        shard: &str,
        start: &StartingPoint,
        timeout: Duration,
    ) -> Result<EventStream, SubscribeError>;
}

/// Shards of a Kinesis stream, read through AWS.
#[derive(Debug)]
pub(crate) struct AwsShards {
    client: Client,
    stream: StreamRef,
    /// Built for enhanced fan-out only.
    subscriber: Option<Subscriber>,
}

impl AwsShards {
    pub(crate) fn new(client: Client, stream: StreamRef, subscriber: Option<Subscriber>) -> Self {
        AwsShards {
            client,
            stream,
            subscriber,
        }
    }
}

fn sdk_error<E, R>(error: &aws_sdk_kinesis::error::SdkError<E, R>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    ApiError {
        code: error.code().map(str::to_owned),
        message: DisplayErrorContext(error).to_string(),
    }
}

#[async_trait]
impl ShardApi for AwsShards {
    async fn list_shards(&self) -> Result<Vec<ShardInfo>, ApiError> {
        Ok(self
            .list_shards_with_ranges()
            .await?
            .into_iter()
            .map(|(shard, _)| shard)
            .collect())
    }

    async fn list_shards_with_ranges(&self) -> Result<Vec<(ShardInfo, HashRange)>, ApiError> {
        let mut shards = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let mut request = self.client.list_shards();
            request = match &next_token {
                // With a token, the stream must not be named again.
                Some(token) => request.next_token(token),
                None => match &self.stream.arn {
                    Some(arn) => request.stream_arn(arn),
                    None => request.stream_name(&self.stream.name),
                },
            };
            let page = request.send().await.map_err(|e| ApiError {
                code: e.code().map(str::to_owned),
                message: format!(
                    "ListShards on stream {:?} failed: {}",
                    self.stream.name,
                    DisplayErrorContext(&e)
                ),
            })?;
            for shard in page.shards.unwrap_or_default() {
                let range = shard
                    .hash_key_range
                    .as_ref()
                    .map(|r| (r.starting_hash_key.clone(), r.ending_hash_key.clone()));
                shards.push((
                    ShardInfo {
                        closed: shard
                            .sequence_number_range
                            .as_ref()
                            .and_then(|r| r.ending_sequence_number.as_ref())
                            .is_some(),
                        id: shard.shard_id,
                        parent: shard.parent_shard_id,
                        adjacent_parent: shard.adjacent_parent_shard_id,
                    },
                    range,
                ));
            }
            match page.next_token {
                Some(token) if !token.is_empty() => next_token = Some(token),
                _ => return Ok(shards),
            }
        }
    }

    async fn shard_iterator(
        &self,
        shard: &str,
        start: &StartingPoint,
    ) -> Result<Option<String>, ApiError> {
        let (kind, sequence, timestamp) = match start {
            StartingPoint::TrimHorizon => (ShardIteratorType::TrimHorizon, None, None),
            StartingPoint::Latest => (ShardIteratorType::Latest, None, None),
            StartingPoint::AtTimestamp(ms) => (
                ShardIteratorType::AtTimestamp,
                None,
                Some(DateTime::from_millis(*ms)),
            ),
            StartingPoint::AtSequence(sequence) => (
                ShardIteratorType::AtSequenceNumber,
                Some(sequence.clone()),
                None,
            ),
            StartingPoint::AfterSequence(sequence) => (
                ShardIteratorType::AfterSequenceNumber,
                Some(sequence.clone()),
                None,
            ),
        };
        let mut request = self
            .client
            .get_shard_iterator()
            .shard_id(shard)
            .shard_iterator_type(kind)
            .set_starting_sequence_number(sequence)
            .set_timestamp(timestamp);
        request = match &self.stream.arn {
            Some(arn) => request.stream_arn(arn),
            None => request.stream_name(&self.stream.name),
        };
        let output = request.send().await.map_err(|e| sdk_error(&e))?;
        Ok(output.shard_iterator)
    }

    async fn get_records(&self, iterator: &str, limit: i32) -> Result<RecordsPage, ApiError> {
        let page = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(limit)
            .send()
            .await
            .map_err(|e| sdk_error(&e))?;
        Ok(RecordsPage {
            records: page.records.into_iter().map(FetchedRecord::from).collect(),
            next_iterator: page.next_shard_iterator,
            millis_behind_latest: page.millis_behind_latest,
        })
    }

    async fn subscribe(
        &self,
        consumer_arn: &str,
        shard: &str,
        start: &StartingPoint,
        timeout: Duration,
    ) -> Result<EventStream, SubscribeError> {
        let Some(subscriber) = &self.subscriber else {
            return Err(SubscribeError {
                code: None,
                message: "this source reads by polling: it has no SubscribeToShard client".into(),
            });
        };
        let subscription = subscriber
            .subscribe(consumer_arn, shard, start, timeout)
            .await?;
        Ok(Box::pin(subscription.into_events()))
    }
}
