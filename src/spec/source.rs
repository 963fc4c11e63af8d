//! The source's parameters: reading, lease coordination.

use std::sync::LazyLock;

use super::{aws_params, stream_params, SDK_BATCH_DELAY, SDK_BATCH_SIZE};
use crate::config::{Param, ParamType, Validation};

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
             are always read from their start. With coordination=dynamodb, `latest` is pinned in the lease \
             table as the first reader's clock less 5s (AT_TIMESTAMP), so a shard that moves to another \
             instance never skips records; a few records from just before the start may be delivered, and \
             none is lost unless that clock is more than 5s ahead of Kinesis'.",
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
