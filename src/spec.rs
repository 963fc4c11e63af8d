//! The kinesis connector's parameters and specification, declared once. Everything else that
//! lists parameters (Specify, validation, `connector.yaml`, the README tables) derives from here.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Serialize;

use crate::config::{Param, ParamType, Validation};
use crate::proto::config::v1 as pb;
use crate::proto::connector::v2::Specification;

pub(crate) const NAME: &str = "kinesis";
pub(crate) const SUMMARY: &str = "Amazon Kinesis Data Streams source and destination.";
pub(crate) const DESCRIPTION: &str = "Reads a Kinesis data stream through enhanced fan-out with a position per \
shard that survives restarts and resharding, and writes records with PutRecords within Kinesis limits, \
retrying only failed entries. Accepts the parameter names of conduitio-labs/conduit-connector-kinesis.";
pub(crate) const AUTHOR: &str = "conduit-connector-kinesis developers";

pub fn version() -> String {
    format!("v{}", env!("CARGO_PKG_VERSION"))
}

// Parameter names shared by both sides. The first six are the Go connector's names.
pub(crate) const AWS_REGION: &str = "aws.region";
pub(crate) const AWS_ACCESS_KEY_ID: &str = "aws.accessKeyId";
pub(crate) const AWS_SECRET_ACCESS_KEY: &str = "aws.secretAccessKey";
pub(crate) const AWS_URL: &str = "aws.url";
pub(crate) const STREAM_NAME: &str = "streamName";
pub(crate) const STREAM_ARN: &str = "streamARN";
pub(crate) const AWS_SESSION_TOKEN: &str = "aws.sessionToken";
pub(crate) const AWS_PROFILE: &str = "aws.profile";
pub(crate) const AWS_ASSUME_ROLE_ARN: &str = "aws.assumeRoleArn";
pub(crate) const AWS_ASSUME_ROLE_EXTERNAL_ID: &str = "aws.assumeRoleExternalId";
pub(crate) const AWS_ASSUME_ROLE_SESSION_NAME: &str = "aws.assumeRoleSessionName";

/// Kinesis stream names: 1 to 128 of these characters.
pub(crate) const STREAM_NAME_PATTERN: &str = "^[a-zA-Z0-9_.-]{1,128}$";
pub(crate) const STREAM_ARN_PATTERN: &str =
    "^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:[0-9]{12}:stream/[a-zA-Z0-9_.-]{1,128}$";
pub(crate) const ROLE_ARN_PATTERN: &str =
    "^arn:aws[a-z-]*:iam::[0-9]{12}:role/[a-zA-Z0-9_+=,.@/-]{1,512}$";
pub(crate) const SESSION_NAME_PATTERN: &str = "^[a-zA-Z0-9_+=,.@-]{2,64}$";
pub(crate) const DEFAULT_SESSION_NAME: &str = "conduit-connector-kinesis";

fn aws_params() -> Vec<Param> {
    vec![
        Param::new(
            AWS_REGION,
            ParamType::String,
            "AWS region of the stream, e.g. us-east-1. When empty, the region comes from streamARN, \
             then AWS_REGION / AWS_DEFAULT_REGION, then the selected profile.",
        ),
        Param::new(
            AWS_ACCESS_KEY_ID,
            ParamType::String,
            "Static access key ID (with aws.secretAccessKey). When empty, credentials come from \
             aws.profile or the default AWS credential chain (environment, shared files, web identity, \
             container or instance role).",
        ),
        Param::new(
            AWS_SECRET_ACCESS_KEY,
            ParamType::String,
            "Static secret access key, required together with aws.accessKeyId. Never logged.",
        )
        .secret(),
        Param::new(
            AWS_SESSION_TOKEN,
            ParamType::String,
            "Session token for temporary static credentials (with aws.accessKeyId). Never logged.",
        )
        .secret(),
        Param::new(
            AWS_PROFILE,
            ParamType::String,
            "Named profile from the shared AWS config and credentials files; used for credentials and \
             region unless static keys or aws.region are set.",
        ),
        Param::new(
            AWS_ASSUME_ROLE_ARN,
            ParamType::String,
            "IAM role to assume with STS, using the credentials resolved above as the source identity.",
        )
        .validations(&[Validation::Regex(ROLE_ARN_PATTERN)]),
        Param::new(
            AWS_ASSUME_ROLE_EXTERNAL_ID,
            ParamType::String,
            "External ID passed to STS when assuming aws.assumeRoleArn.",
        ),
        Param::new(
            AWS_ASSUME_ROLE_SESSION_NAME,
            ParamType::String,
            "Session name used when assuming aws.assumeRoleArn.",
        )
        .default(DEFAULT_SESSION_NAME)
        .validations(&[Validation::Regex(SESSION_NAME_PATTERN)]),
        Param::new(
            AWS_URL,
            ParamType::String,
            "Endpoint override for Kinesis, e.g. http://127.0.0.1:4567 for a local Kinesis-compatible \
             server or a VPC endpoint URL. Empty uses the regional AWS endpoint.",
        )
        .validations(&[Validation::Regex("^https?://[^\\s]+$")]),
    ]
}

fn stream_params() -> Vec<Param> {
    vec![
        Param::new(
            STREAM_NAME,
            ParamType::String,
            "Name of the Kinesis stream. Either streamName or streamARN is required; when both are set \
             they must name the same stream.",
        )
        .validations(&[Validation::Regex(STREAM_NAME_PATTERN)]),
        Param::new(
            STREAM_ARN,
            ParamType::String,
            "ARN of the Kinesis stream, e.g. arn:aws:kinesis:us-east-1:123456789012:stream/orders. \
             Its region is used when aws.region is empty.",
        )
        .validations(&[Validation::Regex(STREAM_ARN_PATTERN)]),
    ]
}

pub(crate) static SOURCE_PARAMS: LazyLock<Vec<Param>> = LazyLock::new(|| {
    [
        stream_params(),
        source_read_params(),
        coordination_params(),
        aws_params(),
    ]
    .concat()
});

// Lease coordination (several instances sharing a stream, src/source/lease/).
pub(crate) const COORDINATION: &str = "coordination";
pub(crate) const COORDINATION_TABLE: &str = "coordination.table";
pub(crate) const COORDINATION_WORKER_ID: &str = "coordination.workerId";
pub(crate) const COORDINATION_LEASE_DURATION: &str = "coordination.leaseDuration";
pub(crate) const COORDINATION_CHECKPOINT_INTERVAL: &str = "coordination.checkpointInterval";
pub(crate) const COORDINATION_URL: &str = "coordination.url";
pub(crate) const COORDINATION_TABLE_PATTERN: &str = "^[a-zA-Z0-9_.-]{3,255}$";

fn coordination_params() -> Vec<Param> {
    vec![
        Param::new(
            COORDINATION,
            ParamType::String,
            "`none`: this instance reads every shard. `dynamodb`: instances running the same pipeline \
             share the shards through leases in a DynamoDB table (KCL's lease schema) and resume from the \
             checkpoints kept there.",
        )
        .default("none")
        .validations(&[Validation::Inclusion(&["none", "dynamodb"])]),
        Param::new(
            COORDINATION_TABLE,
            ParamType::String,
            "coordination=dynamodb: the lease table, created (on-demand capacity) when missing. Empty \
             derives a stable name from the Conduit connector ID, so instances running the same pipeline \
             share one table.",
        )
        .validations(&[Validation::Regex(COORDINATION_TABLE_PATTERN)]),
        Param::new(
            COORDINATION_WORKER_ID,
            ParamType::String,
            "coordination=dynamodb: this instance's name in the lease table (leaseOwner). Empty uses the \
             host name plus a random suffix per process start.",
        ),
        Param::new(
            COORDINATION_LEASE_DURATION,
            ParamType::Duration,
            "coordination=dynamodb: a lease not renewed for this long is taken over by another instance \
             (renewed every third of it; at least 1s).",
        )
        .default("10s"),
        Param::new(
            COORDINATION_CHECKPOINT_INTERVAL,
            ParamType::Duration,
            "coordination=dynamodb: most often a shard's checkpoint (its last record Conduit acknowledged) \
             is written; after a crash at most this much is read again.",
        )
        .default("1s"),
        Param::new(
            COORDINATION_URL,
            ParamType::String,
            "coordination=dynamodb: DynamoDB endpoint to use instead of AWS's (like aws.url for Kinesis).",
        ),
    ]
}

// Source-only parameter names. startFromLatest is the Go connector's.
pub(crate) const START_FROM_LATEST: &str = "startFromLatest";
pub(crate) const START_POSITION: &str = "startPosition";
pub(crate) const START_TIMESTAMP: &str = "startTimestamp";
pub(crate) const READ_MODE: &str = "readMode";
pub(crate) const CONSUMER_NAME: &str = "consumerName";
pub(crate) const CONSUMER_ARN: &str = "consumerARN";
pub(crate) const CONSUMER_DEREGISTER_ON_DELETE: &str = "consumer.deregisterOnDelete";
pub(crate) const POLLING_INTERVAL: &str = "polling.interval";
pub(crate) const POLLING_LIMIT: &str = "polling.limit";
pub(crate) const SHARD_DISCOVERY_INTERVAL: &str = "shardDiscoveryInterval";
pub(crate) const SUBSCRIPTION_RENEW_AFTER: &str = "subscription.renewAfter";
pub(crate) const SUBSCRIPTION_IDLE_TIMEOUT: &str = "subscription.idleTimeout";
pub(crate) const DEAGGREGATE: &str = "deaggregate";
pub(crate) const UNWRAP_OPENCDC: &str = "unwrapOpenCDC";
pub(crate) const BUFFER_SIZE: &str = "bufferSize";
pub(crate) const LAG_LOG_INTERVAL: &str = "lagLogInterval";
pub(crate) const CONSUMER_NAME_PATTERN: &str = "^[a-zA-Z0-9_.-]{1,128}$";
pub(crate) const CONSUMER_ARN_PATTERN: &str =
    "^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:[0-9]{12}:stream/[a-zA-Z0-9_.-]{1,128}/consumer/[a-zA-Z0-9_.-]{1,128}:[0-9]{1,20}$";

fn source_read_params() -> Vec<Param> {
    vec![
        Param::new(
            START_FROM_LATEST,
            ParamType::Bool,
            "On the first start, read only records written from now on (same as startPosition=latest). \
             A restarted pipeline always resumes from its saved position.",
        )
        .default("false"),
        Param::new(
            START_POSITION,
            ParamType::String,
            "Where the first start reads from: `trim_horizon` (the oldest record kept), `latest` (only new \
             records) or `at_timestamp` (records written at or after startTimestamp). Shards created later \
             are always read from their start.",
        )
        .default("trim_horizon")
        .validations(&[Validation::Inclusion(&["trim_horizon", "latest", "at_timestamp"])]),
        Param::new(
            START_TIMESTAMP,
            ParamType::String,
            "RFC 3339 time for startPosition=at_timestamp, e.g. 2026-11-01T00:00:00Z.",
        ),
        Param::new(
            READ_MODE,
            ParamType::String,
            "`fanout`: enhanced fan-out (SubscribeToShard through a registered consumer, 2 MiB/s per shard \
             for this connector alone). `polling`: GetRecords, sharing the shard's 2 MiB/s with other \
             polling readers, no consumer needed.",
        )
        .default("fanout")
        .validations(&[Validation::Inclusion(&["fanout", "polling"])]),
        Param::new(
            CONSUMER_NAME,
            ParamType::String,
            "Enhanced fan-out consumer to use or register. Empty derives a stable name from the Conduit \
             connector ID, so restarts reuse the same consumer.",
        )
        .validations(&[Validation::Regex(CONSUMER_NAME_PATTERN)]),
        Param::new(
            CONSUMER_ARN,
            ParamType::String,
            "ARN of an existing consumer to use as it is (never registered or deregistered by the connector).",
        )
        .validations(&[Validation::Regex(CONSUMER_ARN_PATTERN)]),
        Param::new(
            CONSUMER_DEREGISTER_ON_DELETE,
            ParamType::Bool,
            "Deregister the consumer when the connector is deleted from Conduit (only a consumer chosen by \
             name, never one given by consumerARN).",
        )
        .default("true"),
        Param::new(
            POLLING_INTERVAL,
            ParamType::Duration,
            "polling mode: wait between GetRecords calls on a shard that had nothing new (at least 200ms, \
             Kinesis allows 5 calls per second per shard).",
        )
        .default("1s"),
        Param::new(
            POLLING_LIMIT,
            ParamType::Int,
            "polling mode: most records per GetRecords call.",
        )
        .default("1000")
        .validations(&[Validation::GreaterThan(0.0), Validation::LessThan(10001.0)]),
        Param::new(
            SHARD_DISCOVERY_INTERVAL,
            ParamType::Duration,
            "How often the shard list is refreshed to find new shards after resharding (also refreshed \
             when a shard ends).",
        )
        .default("30s"),
        Param::new(
            SUBSCRIPTION_RENEW_AFTER,
            ParamType::Duration,
            "fanout mode: renew each shard subscription after this long, before Kinesis ends it at 5 \
             minutes (values of 5m or more leave it to Kinesis; the reader then resubscribes right after).",
        )
        .default("4m30s"),
        Param::new(
            SUBSCRIPTION_IDLE_TIMEOUT,
            ParamType::Duration,
            "fanout mode: resubscribe when a subscription delivers no event at all for this long (Kinesis \
             sends one at least every few seconds, even without records).",
        )
        .default("30s"),
        Param::new(
            DEAGGREGATE,
            ParamType::Bool,
            "Split records aggregated by the Kinesis Producer Library into their user records.",
        )
        .default("true"),
        Param::new(
            UNWRAP_OPENCDC,
            ParamType::Bool,
            "Records whose data is an OpenCDC JSON record (as this connector's destination writes by \
             default) become that record again: operation, metadata, key and payload as they were.",
        )
        .default("false"),
        Param::new(
            BUFFER_SIZE,
            ParamType::Int,
            "Most records read ahead of Conduit. When Conduit is slower than Kinesis, reading pauses \
             instead of buffering more.",
        )
        .default("10000")
        .validations(&[Validation::GreaterThan(0.0)]),
        Param::new(
            LAG_LOG_INTERVAL,
            ParamType::Duration,
            "How often one info line reports how far behind the newest records reading is \
             (Kinesis' MillisBehindLatest): the largest and the median lag over the shards read, \
             their count and the shard furthest behind. 0 turns it off.",
        )
        .default("1m"),
        Param::new(
            SDK_BATCH_SIZE,
            ParamType::Int,
            "Most records per batch sent to Conduit. 0 sends what is buffered (up to 1000) at once.",
        )
        .default("0")
        .validations(&[Validation::GreaterThan(-1.0)]),
        Param::new(
            SDK_BATCH_DELAY,
            ParamType::Duration,
            "How long a batch may wait to fill up to sdk.batch.size. 0 sends what is there.",
        )
        .default("0"),
    ]
}

pub(crate) static DESTINATION_PARAMS: LazyLock<Vec<Param>> = LazyLock::new(|| {
    [
        destination_stream_params(),
        destination_write_params(),
        aggregation_params(),
        sdk_destination_params(),
        aws_params(),
    ]
    .concat()
});

// Destination-only parameter names.
pub(crate) const PARTITION_KEY_TEMPLATE: &str = "partitionKeyTemplate";
pub(crate) const PARTITION_KEY_FIELDS: &str = "partitionKeyFields";
pub(crate) const EXPLICIT_HASH_KEY_TEMPLATE: &str = "explicitHashKeyTemplate";
pub(crate) const AUTO_CREATE_STREAMS: &str = "auto.create.streams";
pub(crate) const AUTO_CREATE_MODE: &str = "auto.create.mode";
pub(crate) const AUTO_CREATE_SHARD_COUNT: &str = "auto.create.shardCount";
pub(crate) const MAX_RECORD_SIZE: &str = "maxRecordSize";
pub(crate) const CONCURRENCY: &str = "concurrency";
pub(crate) const STRICT_ORDERING: &str = "strictOrdering";
pub(crate) const PROTOCOL: &str = "protocol";
pub(crate) const RETRY_MAX_ATTEMPTS: &str = "retry.maxAttempts";
pub(crate) const RETRY_INITIAL_BACKOFF: &str = "retry.initialBackoff";
pub(crate) const RETRY_MAX_BACKOFF: &str = "retry.maxBackoff";
pub(crate) const SDK_BATCH_SIZE: &str = "sdk.batch.size";
pub(crate) const SDK_BATCH_DELAY: &str = "sdk.batch.delay";
pub(crate) const SDK_RATE_PER_SECOND: &str = "sdk.rate.perSecond";
pub(crate) const SDK_RATE_BURST: &str = "sdk.rate.burst";
pub(crate) const SDK_RECORD_FORMAT: &str = "sdk.record.format";
pub(crate) const SDK_RECORD_FORMAT_OPTIONS: &str = "sdk.record.format.options";
pub(crate) const SDK_SCHEMA_EXTRACT_PAYLOAD: &str = "sdk.schema.extract.payload.enabled";
pub(crate) const SDK_SCHEMA_EXTRACT_KEY: &str = "sdk.schema.extract.key.enabled";
pub(crate) const AGGREGATION_ENABLED: &str = "aggregation.enabled";
pub(crate) const AGGREGATION_MAX_BYTES: &str = "aggregation.maxBytes";
pub(crate) const AGGREGATION_MAX_RECORDS: &str = "aggregation.maxRecords";
pub(crate) const AGGREGATION_MAX_DELAY: &str = "aggregation.maxDelay";

/// Kinesis accepts at most 500 entries per PutRecords call.
pub(crate) const MAX_PUT_RECORDS_ENTRIES: i64 = 500;

fn destination_stream_params() -> Vec<Param> {
    vec![
        Param::new(
            STREAM_NAME,
            ParamType::String,
            "Stream to write to: a name, or a Handlebars template rendered per record such as \
             `orders-{{lookup Metadata \"opencdc.collection\"}}`. When neither streamName nor streamARN \
             is set, each record goes to the stream named by its `opencdc.collection` metadata.",
        ),
        Param::new(
            STREAM_ARN,
            ParamType::String,
            "ARN of the stream to write to (may also be a template). Its region is used when aws.region \
             is empty. When both streamName and streamARN are fixed values they must name the same stream.",
        ),
    ]
}

fn destination_write_params() -> Vec<Param> {
    vec![
        Param::new(
            PARTITION_KEY_TEMPLATE,
            ParamType::String,
            "Handlebars template for the partition key, over the record: `{{Key}}`, \
             `{{Payload.After.customer_id}}`, `{{lookup Metadata \"opencdc.collection\"}}`, `{{Operation}}`, \
             `{{Position}}`. Takes precedence over partitionKeyFields. The Go connector's Go templates \
             are accepted too (`{{ .Key }}`, `{{ .Payload.After.id }}`, \
             `{{ index .Metadata \"opencdc.collection\" }}`, `{{-`/`-}}`): they are translated to \
             Handlebars that gives the same keys as the Go connector v0.2.0 (values printed with Go's \
             %v: a raw key `abc` as `[97 98 99]`), logged at Configure; other Go templates are \
             rejected with the Handlebars equivalent. Keys are trimmed to 256 characters; an empty key \
             falls back to a random one.",
        ),
        Param::new(
            PARTITION_KEY_FIELDS,
            ParamType::String,
            "Comma-separated fields whose values, joined with `|`, form the partition key (like a \
             composite primary key). Each field is looked up in the structured payload (after, or before \
             for deletes), then in the structured key. When neither this nor partitionKeyTemplate is set, \
             the record key is used (structured keys: field values joined with `|`), else a random key.",
        ),
        Param::new(
            EXPLICIT_HASH_KEY_TEMPLATE,
            ParamType::String,
            "Optional Handlebars template for the ExplicitHashKey (a decimal from 0 to 2^128-1) that picks \
             the shard instead of the partition key's hash. A record whose value is not such a number is \
             nacked.",
        ),
        Param::new(
            AUTO_CREATE_STREAMS,
            ParamType::Bool,
            "Create a missing stream on first use instead of nacking its records.",
        )
        .default("false"),
        Param::new(
            AUTO_CREATE_MODE,
            ParamType::String,
            "Capacity mode of created streams.",
        )
        .default("on-demand")
        .validations(&[Validation::Inclusion(&["on-demand", "provisioned"])]),
        Param::new(
            AUTO_CREATE_SHARD_COUNT,
            ParamType::Int,
            "Shard count of created streams in provisioned mode.",
        )
        .default("1")
        .validations(&[Validation::GreaterThan(0.0)]),
        Param::new(
            MAX_RECORD_SIZE,
            ParamType::Int,
            "Largest record (data plus partition key, in bytes) to send. 0 uses the stream's \
             MaxRecordSizeInKiB when the service reports it, else 1 MiB. Larger records are nacked with \
             their position and size.",
        )
        .default("0")
        .validations(&[Validation::GreaterThan(-1.0)]),
        Param::new(
            CONCURRENCY,
            ParamType::Int,
            "PutRecords calls in flight at once. Records of one partition key always go through the same \
             call sequence, so their order is kept.",
        )
        .default("4")
        .validations(&[Validation::GreaterThan(0.0), Validation::LessThan(257.0)]),
        Param::new(
            STRICT_ORDERING,
            ParamType::Bool,
            "Never put two records of one partition key into the same PutRecords call, so a failed entry \
             can never be overtaken by a later record of its key. Set to false for more throughput on hot \
             keys when order within a key does not matter.",
        )
        .default("true"),
        Param::new(
            PROTOCOL,
            ParamType::String,
            "Encoding of PutRecords calls: `cbor` (AWS's binary protocol for Kinesis, the AWS SDK for \
             Java's default: record data travels as raw bytes instead of base64, so a call has about a \
             quarter fewer bytes to send and sign) or `json` (AWS JSON 1.1, data as base64), \
             for a Kinesis-compatible server that does not accept CBOR.",
        )
        .default("cbor")
        .validations(&[Validation::Inclusion(&["cbor", "json"])]),
        Param::new(
            RETRY_MAX_ATTEMPTS,
            ParamType::Int,
            "Attempts per record for writes Kinesis answers with a retriable error (partial PutRecords \
             failures, throttling, server errors) before the record is nacked with the AWS error. Calls \
             that get no answer (connection refused or lost, timeout) do not count: they are retried \
             with the same backoff until the endpoint answers, and a warning says so.",
        )
        .default("10")
        .validations(&[Validation::GreaterThan(0.0)]),
        Param::new(
            RETRY_INITIAL_BACKOFF,
            ParamType::Duration,
            "Wait before the first retry; doubles on each further attempt. Each wait is drawn between \
             half its value and its value, so that writers retrying together spread out.",
        )
        .default("100ms"),
        Param::new(
            RETRY_MAX_BACKOFF,
            ParamType::Duration,
            "Longest wait between two attempts.",
        )
        .default("5s"),
    ]
}

fn aggregation_params() -> Vec<Param> {
    vec![
        Param::new(
            AGGREGATION_ENABLED,
            ParamType::Bool,
            "Pack many records into one Kinesis record in the KPL aggregation format, per target \
             shard (predicted from the stream's shard hash key ranges), as the Kinesis Producer Library \
             does: far fewer Kinesis records and PUT payload units for small records. Consumers must \
             de-aggregate (the KCL, aws-kinesis-agg and this connector's source do); plain GetRecords \
             readers see the aggregates. Each record keeps its own partition key and explicit hash key.",
        )
        .default("false"),
        Param::new(
            AGGREGATION_MAX_BYTES,
            ParamType::Int,
            "Largest aggregate (data plus partition key, in bytes), as the KPL's AggregationMaxSize. A \
             record too large to share one goes alone, not aggregated. At most 1048576 (1 MiB, the Kinesis \
             record limit).",
        )
        .default("51200")
        .validations(&[Validation::GreaterThan(0.0), Validation::LessThan(1_048_577.0)]),
        Param::new(
            AGGREGATION_MAX_RECORDS,
            ParamType::Int,
            "Most records per aggregate. An aggregate is written, retried and nacked as a whole, so this \
             bounds how many records one failure touches; at the default maxBytes it only binds for \
             records under about 45 bytes, so it costs no reduction for typical records.",
        )
        .default("1000")
        .validations(&[Validation::GreaterThan(0.0)]),
        Param::new(
            AGGREGATION_MAX_DELAY,
            ParamType::Duration,
            "How long a partly filled aggregate may wait for more records. 0: it goes out with the next \
             PutRecords call, as batches do (sdk.batch.delay); longer values fill aggregates better at low \
             rates, at that much latency.",
        )
        .default("0"),
    ]
}

fn sdk_destination_params() -> Vec<Param> {
    vec![
        Param::new(
            SDK_BATCH_SIZE,
            ParamType::Int,
            "Most records per PutRecords call (Kinesis allows 500 and 5 MiB). Records that arrive while a \
             call is in flight are batched together; 0 means 500.",
        )
        .default("0")
        .validations(&[Validation::GreaterThan(-1.0), Validation::LessThan(501.0)]),
        Param::new(
            SDK_BATCH_DELAY,
            ParamType::Duration,
            "How long a call may wait for more records to fill its batch. 0 sends what is there at once.",
        )
        .default("0"),
        Param::new(
            SDK_RATE_PER_SECOND,
            ParamType::Float,
            "Most records written per second (0: unlimited).",
        )
        .default("0")
        .validations(&[Validation::GreaterThan(-1.0)]),
        Param::new(
            SDK_RATE_BURST,
            ParamType::Int,
            "Most records written at once under sdk.rate.perSecond (0: the rate rounded up).",
        )
        .default("0")
        .validations(&[Validation::GreaterThan(-1.0)]),
        Param::new(
            SDK_RECORD_FORMAT,
            ParamType::String,
            "What is written as the Kinesis record data: `opencdc/json` (the whole record as Conduit \
             serializes it), `debezium/json`, `template` (Handlebars from sdk.record.format.options), \
             `raw` (payload.after bytes as they are; structured payloads as JSON) or `row/json` \
             (payload.after as a JSON row plus operation and timestamp fields).",
        )
        .default("opencdc/json")
        .validations(&[Validation::Inclusion(&[
            "opencdc/json",
            "debezium/json",
            "template",
            "raw",
            "row/json",
        ])]),
        Param::new(
            SDK_RECORD_FORMAT_OPTIONS,
            ParamType::String,
            "Options of the format: the Handlebars template for `template`; `k=v,...` otherwise \
             (`debezium.schema.name`, `debezium.rawData.key`; `op.type.field`, `op.timestamp.field`).",
        ),
        Param::new(
            SDK_SCHEMA_EXTRACT_PAYLOAD,
            ParamType::Bool,
            "Decode Avro-encoded payloads that carry `opencdc.payload.schema.*` metadata (what Conduit's \
             Go sources send by default) using Conduit's schema service.",
        )
        .default("true"),
        Param::new(
            SDK_SCHEMA_EXTRACT_KEY,
            ParamType::Bool,
            "Decode Avro-encoded keys that carry `opencdc.key.schema.*` metadata.",
        )
        .default("true"),
    ]
}

pub fn source_params() -> &'static [Param] {
    &SOURCE_PARAMS
}

pub fn destination_params() -> &'static [Param] {
    &DESTINATION_PARAMS
}

fn to_proto(params: &[Param]) -> HashMap<String, pb::Parameter> {
    params
        .iter()
        .map(|p| {
            let validations = p
                .validations
                .iter()
                .map(|v| {
                    let (_, value) = v.yaml();
                    let r#type = match v {
                        Validation::Required => pb::validation::Type::Required,
                        Validation::GreaterThan(_) => pb::validation::Type::GreaterThan,
                        Validation::LessThan(_) => pb::validation::Type::LessThan,
                        Validation::Inclusion(_) => pb::validation::Type::Inclusion,
                        Validation::Exclusion(_) => pb::validation::Type::Exclusion,
                        Validation::Regex(_) => pb::validation::Type::Regex,
                    };
                    pb::Validation {
                        r#type: r#type as i32,
                        value,
                    }
                })
                .collect();
            let r#type = match p.ty {
                ParamType::String => pb::parameter::Type::String,
                ParamType::Int => pb::parameter::Type::Int,
                ParamType::Float => pb::parameter::Type::Float,
                ParamType::Bool => pb::parameter::Type::Bool,
                ParamType::File => pb::parameter::Type::File,
                ParamType::Duration => pb::parameter::Type::Duration,
            };
            (
                p.name.to_string(),
                pb::Parameter {
                    default: p.default.to_string(),
                    description: p.description.to_string(),
                    r#type: r#type as i32,
                    validations,
                },
            )
        })
        .collect()
}

/// The specification Conduit receives from `Specify`.
pub fn specification() -> Specification {
    Specification {
        name: NAME.into(),
        summary: SUMMARY.into(),
        description: DESCRIPTION.into(),
        version: version(),
        author: AUTHOR.into(),
        destination_params: to_proto(destination_params()),
        source_params: to_proto(source_params()),
    }
}

#[derive(Serialize)]
struct YamlDocument {
    version: &'static str,
    specification: YamlSpecification,
}

#[derive(Serialize)]
struct YamlSpecification {
    name: &'static str,
    summary: &'static str,
    description: &'static str,
    version: String,
    author: &'static str,
    source: YamlSide,
    destination: YamlSide,
}

#[derive(Serialize)]
struct YamlSide {
    parameters: Vec<YamlParameter>,
}

#[derive(Serialize)]
struct YamlParameter {
    name: &'static str,
    description: &'static str,
    #[serde(rename = "type")]
    ty: &'static str,
    default: &'static str,
    validations: Vec<YamlValidation>,
}

#[derive(Serialize)]
struct YamlValidation {
    #[serde(rename = "type")]
    ty: &'static str,
    value: String,
}

fn yaml_side(params: &[Param]) -> YamlSide {
    YamlSide {
        parameters: params
            .iter()
            .map(|p| YamlParameter {
                name: p.name,
                description: p.description,
                ty: p.ty.yaml_name(),
                default: p.default,
                validations: p
                    .validations
                    .iter()
                    .map(|v| {
                        let (ty, value) = v.yaml();
                        YamlValidation { ty, value }
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The `connector.yaml` document (format of the Go SDK's `specgen`), as `specs` prints it.
pub fn connector_yaml() -> String {
    let document = YamlDocument {
        version: "1.0",
        specification: YamlSpecification {
            name: NAME,
            summary: SUMMARY,
            description: DESCRIPTION,
            version: version(),
            author: AUTHOR,
            source: yaml_side(source_params()),
            destination: yaml_side(destination_params()),
        },
    };
    serde_yaml::to_string(&document).expect("the specification always serializes")
}

/// A Markdown table of one side's parameters, for the README.
pub fn markdown_table(params: &[Param]) -> String {
    let mut out = String::from("| Name | Type | Default | Description |\n|---|---|---|---|\n");
    for p in params {
        let required = if p.is_required() { " (required)" } else { "" };
        let default = if p.default.is_empty() {
            String::new()
        } else {
            format!("`{}`", p.default)
        };
        let mut description = p.description.replace('|', "\\|");
        for v in p.validations {
            match v {
                Validation::Inclusion(list) => {
                    description.push_str(&format!(" One of: `{}`.", list.join("`, `")))
                }
                Validation::Regex(re) => description.push_str(&format!(" Must match `{re}`.")),
                Validation::GreaterThan(n) => description.push_str(&format!(
                    " Greater than {}.",
                    crate::config::format_number(*n)
                )),
                Validation::LessThan(n) => description
                    .push_str(&format!(" Less than {}.", crate::config::format_number(*n))),
                Validation::Exclusion(list) => {
                    description.push_str(&format!(" Not one of: `{}`.", list.join("`, `")))
                }
                Validation::Required => {}
            }
        }
        out.push_str(&format!(
            "| `{}`{} | {} | {} | {} |\n",
            p.name,
            required,
            p.ty.yaml_name(),
            default,
            description
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_version_meet_conduit_rules() {
        let spec = specification();
        let version_pattern =
            regex::Regex::new(r"^v\d+(\.\d+)?(\.\d+)?(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
                .unwrap();
        assert!(version_pattern.is_match(&spec.version), "{}", spec.version);
        for text in [
            &spec.name,
            &spec.summary,
            &spec.description,
            &spec.version,
            &spec.author,
        ] {
            assert!(!text.is_empty());
            assert_eq!(text.trim(), text.as_str());
        }
        let name_pattern = regex::Regex::new(r"^[a-zA-Z0-9.]+$").unwrap();
        for (name, param) in spec
            .source_params
            .iter()
            .chain(spec.destination_params.iter())
        {
            assert!(name_pattern.is_match(name), "{name}");
            assert!(!param.description.is_empty(), "{name} has no description");
        }
    }

    #[test]
    fn accepts_go_connector_parameter_names() {
        for name in [
            AWS_REGION,
            AWS_ACCESS_KEY_ID,
            AWS_SECRET_ACCESS_KEY,
            AWS_URL,
            STREAM_NAME,
            STREAM_ARN,
        ] {
            assert!(
                source_params().iter().any(|p| p.name == name),
                "source lacks {name}"
            );
            assert!(
                destination_params().iter().any(|p| p.name == name),
                "destination lacks {name}"
            );
        }
    }

    #[test]
    fn parameter_names_are_unique() {
        for params in [source_params(), destination_params()] {
            let mut names: Vec<_> = params.iter().map(|p| p.name).collect();
            names.sort();
            let before = names.len();
            names.dedup();
            assert_eq!(before, names.len());
        }
    }

    #[test]
    fn regexes_compile_and_defaults_validate() {
        for params in [source_params(), destination_params()] {
            for p in params {
                for v in p.validations {
                    if let Validation::Regex(re) = v {
                        regex::Regex::new(re).unwrap_or_else(|e| panic!("{}: {e}", p.name));
                        // RE2 has no look-around or backreferences; keep patterns to the common subset.
                        assert!(
                            !re.contains("(?=") && !re.contains("(?!") && !re.contains("(?<"),
                            "{re}"
                        );
                    }
                }
            }
            let empty = HashMap::new();
            // Defaults alone must pass every parameter's own checks.
            for p in params {
                if !p.default.is_empty() {
                    let values =
                        crate::config::validate(Box::leak(vec![*p].into_boxed_slice()), &empty);
                    assert!(values.is_ok(), "default of {} fails: {values:?}", p.name);
                }
            }
        }
    }

    #[test]
    fn yaml_lists_every_parameter_with_its_type() {
        let yaml: serde_yaml::Value = serde_yaml::from_str(&connector_yaml()).unwrap();
        assert_eq!(yaml["version"], "1.0");
        assert_eq!(yaml["specification"]["name"], NAME);
        let params = yaml["specification"]["source"]["parameters"]
            .as_sequence()
            .unwrap();
        assert_eq!(params.len(), source_params().len());
        let arn = params.iter().find(|p| p["name"] == STREAM_ARN).unwrap();
        assert_eq!(arn["type"], "string");
        assert_eq!(arn["validations"][0]["type"], "regex");
    }
}
