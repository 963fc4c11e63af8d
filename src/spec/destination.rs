//! The destination's parameters: routing, keys, writing, aggregation, the SDK's batching,
//! rate limiting, record format and schema decoding.

use std::sync::LazyLock;

use super::{aws_params, STREAM_ARN, STREAM_NAME};
use crate::config::{Param, ParamType, Validation};

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
