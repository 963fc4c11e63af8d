//! Lease coordination (`coordination=dynamodb`): several source instances running the same
//! pipeline share a stream's shards through leases in a DynamoDB table, one item per shard
//! with KCL's lease schema ([`dynamo`]), so each shard is read by one instance at a time and
//! a shard moves to another instance when its reader dies or the instances rebalance.
//!
//! * [`table`]: the [`LeaseTable`] seam (with [`memory`], an in-memory table for tests) and
//!   [`dynamo`], the DynamoDB table through the connector's signed HTTP client.
//! * [`decide`]: the decisions without I/O (expiry, balance, new leases, parents first).
//! * [`coordinator`]: what the engine asks per record and per ack; `keeper.rs`, the task
//!   that renews, takes, checkpoints and releases leases and starts the readers.
//! * [`position`]: the small position of a record in this mode.
//!
//! # Conduit's position and the lease table
//!
//! Without coordination, Conduit's position is the whole truth: it covers every shard. With
//! coordination, each instance reads only some shards and they move between instances, so
//! one instance's Conduit position cannot say where every shard resumes. The lease table is
//! the source of truth instead: each item's `checkpoint` is the last record of its shard
//! that the instance holding it saw acknowledged by Conduit. A record's position in this
//! mode names only that record (shard, sequence number, sub-sequence; at most 64 bytes):
//! Conduit still acks records by it, and the ack is what lets the checkpoint move. The
//! position Conduit hands to `Open` is not used to resume (a restarted instance takes
//! whatever leases are free and starts each at its checkpoint); it is only logged.
//!
//! What the guarantees rest on: a graceful stop (Stop, then Teardown) writes the last acked
//! checkpoint of every held shard and releases its leases, so the next owner continues right
//! after it with no repeats. A crash repeats what was acked or in flight since the last
//! checkpoint (at most `checkpointInterval` of reading per moved shard). Nothing is lost:
//! checkpoints only move past records Conduit acknowledged, and a `LATEST` lease is pinned to
//! a time before its first owner reads it ([`decide::pin_latest`]), so a shard that moves
//! before its first record checkpoint is read from there again, not from a later "latest".

pub(crate) mod coordinator;
pub(crate) mod decide;
pub(crate) mod dynamo;
mod keeper;
#[cfg(test)]
pub(crate) mod memory;
pub(crate) mod position;
pub(crate) mod table;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub(crate) use coordinator::{Coordinator, LeaseConfig};
pub(crate) use table::LeaseTable;

use crate::config::{ConfigError, Values};
use crate::spec::*;

/// The `coordination.*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CoordinationSettings {
    /// Every instance reads every shard.
    None,
    DynamoDb(DynamoSettings),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DynamoSettings {
    /// `None` derives it from the connector ID ([`derived_table_name`]).
    pub table: Option<String>,
    /// `None`: [`default_worker_id`].
    pub worker_id: Option<String>,
    pub lease_duration: Duration,
    pub checkpoint_interval: Duration,
    /// `coordination.url`.
    pub url: Option<String>,
}

const MIN_LEASE_DURATION: Duration = Duration::from_secs(1);
const MIN_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

impl CoordinationSettings {
    /// Parses the `coordination.*` values, adding what is wrong to `errors`.
    pub(crate) fn from_values(
        values: &Values,
        errors: &mut Vec<ConfigError>,
    ) -> CoordinationSettings {
        let text = |name: &str| {
            values
                .str(name)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let duration = |name: &str, default: Duration| {
            values
                .duration(name)
                .and_then(|d| d.to_std())
                .unwrap_or(default)
        };
        if values.str(COORDINATION).unwrap_or("none") != "dynamodb" {
            for name in [COORDINATION_TABLE, COORDINATION_WORKER_ID, COORDINATION_URL] {
                if text(name).is_some() {
                    errors.push(ConfigError::invalid(
                        name,
                        "is only used with coordination=dynamodb",
                    ));
                }
            }
            return CoordinationSettings::None;
        }
        let lease_duration = duration(COORDINATION_LEASE_DURATION, Duration::from_secs(10));
        if lease_duration < MIN_LEASE_DURATION {
            errors.push(ConfigError::invalid(
                COORDINATION_LEASE_DURATION,
                "must be at least 1s (leases are renewed every third of it)",
            ));
        }
        let checkpoint_interval =
            duration(COORDINATION_CHECKPOINT_INTERVAL, Duration::from_secs(1));
        if checkpoint_interval < MIN_CHECKPOINT_INTERVAL {
            errors.push(ConfigError::invalid(
                COORDINATION_CHECKPOINT_INTERVAL,
                "must be at least 100ms (each checkpoint is a DynamoDB write per shard)",
            ));
        }
        CoordinationSettings::DynamoDb(DynamoSettings {
            table: text(COORDINATION_TABLE),
            worker_id: text(COORDINATION_WORKER_ID),
            lease_duration,
            checkpoint_interval,
            url: text(COORDINATION_URL),
        })
    }
}

/// The lease table of a connector: stable across restarts and the same on every instance
/// running the pipeline (Conduit gives a pipeline's connector the same ID everywhere).
pub(crate) fn derived_table_name(connector_id: Option<&str>) -> String {
    let mut name = format!(
        "{}-leases",
        super::settings::derived_consumer_name(connector_id)
    );
    name.truncate(255);
    name
}

/// The host name and a random suffix: unique per process start, readable in the table.
pub(crate) fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "conduit".into());
    format!("{host}-{:08x}", rand::random::<u32>())
}
