//! The preparer: decodes, routes, keys and encodes records in the order they were handed
//! over, and queues the entries to their lanes.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::error::{describe_position, PrepareError, RecordError, RouteError};
use super::outcome::Group;
use super::{Backlog, Entry, WriteUnit, WriterConfig};
use crate::aws::StreamRef;
use crate::destination::batch::{key_hash, MAX_ENTRIES};
use crate::destination::key::{explicit_hash_key, random_partition_key};
use crate::destination::settings::{stream_ref_from_rendered, StreamTarget};
use crate::plugin::Record;

const COLLECTION: &str = "opencdc.collection";

pub(super) async fn prepare_loop(
    config: Arc<WriterConfig>,
    mut groups: mpsc::UnboundedReceiver<Group>,
    lanes: Vec<mpsc::Sender<Vec<Entry>>>,
    backlog: Arc<Backlog>,
) {
    let mut fixed: Option<(Arc<StreamRef>, Arc<str>)> = None;
    // Entries routed to a lane but not yet queued to it: they go out with the group's end,
    // when a call's worth has gathered, or (while the lane is busy) with a later group.
    let mut staged: Vec<Vec<Entry>> = lanes.iter().map(|_| Vec::new()).collect();
    while let Some(group) = groups.recv().await {
        let size = group.records.len();
        for (mut record, outcome) in group.records.into_iter().zip(group.outcomes) {
            if let Some(decoder) = config.decoder.as_ref().filter(|d| d.applies_to(&record)) {
                if let Err(e) = decoder.decode(&mut record).await {
                    let position = std::mem::take(&mut record.position);
                    let error = RecordError::Schema { position, error: e };
                    outcome.resolve(Err(error.to_string()));
                    continue;
                }
            }
            match prepare(&config, &record, &mut fixed) {
                Ok((stream, stream_key, partition_key, hash_key, data)) => {
                    let key_hash = key_hash(&stream_key, &partition_key);
                    let lane = (key_hash % lanes.len() as u64) as usize;
                    staged[lane].push(Entry {
                        stream,
                        stream_key,
                        partition_key,
                        key_hash,
                        hash_key,
                        data,
                        position: std::mem::take(&mut record.position),
                        outcome,
                    });
                    if staged[lane].len() >= MAX_ENTRIES {
                        queue(&lanes[lane], std::mem::take(&mut staged[lane])).await;
                    }
                }
                Err(error) => {
                    let error = error.for_record(std::mem::take(&mut record.position));
                    outcome.resolve(Err(error.to_string()));
                }
            }
        }
        let more_waiting = !groups.is_empty();
        for (lane, entries) in lanes.iter().zip(staged.iter_mut()) {
            if entries.is_empty() {
                continue;
            }
            if more_waiting {
                // A busy lane keeps collecting here rather than holding up the other lanes.
                match lane.try_send(std::mem::take(entries)) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(chunk)) => *entries = chunk,
                    Err(mpsc::error::TrySendError::Closed(chunk)) => shut_down(chunk),
                }
            } else {
                queue(lane, std::mem::take(entries)).await;
            }
        }
        backlog.remove(size);
    }
}

async fn queue(lane: &mpsc::Sender<Vec<Entry>>, chunk: Vec<Entry>) {
    if let Err(mpsc::error::SendError(chunk)) = lane.send(chunk).await {
        shut_down(chunk);
    }
}

fn shut_down(entries: Vec<Entry>) {
    for entry in entries {
        entry.resolve(Err("the destination is shutting down".into()));
    }
}

type Prepared = (Arc<StreamRef>, Arc<str>, String, Option<String>, Vec<u8>);

/// What the writer would send for one record, without sending it (the CLI's `produce
/// --dry-run`). Schema decoding (`config.decoder`) is not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PreparedRecord {
    pub stream: StreamRef,
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Vec<u8>,
}

/// Routes, keys and encodes a record exactly as the writer does before PutRecords.
pub(crate) fn prepare_record(
    config: &WriterConfig,
    record: &Record,
) -> Result<PreparedRecord, PrepareError> {
    let (stream, _, partition_key, explicit_hash_key, data) = prepare(config, record, &mut None)?;
    Ok(PreparedRecord {
        stream: Arc::unwrap_or_clone(stream),
        partition_key,
        explicit_hash_key,
        data,
    })
}

fn prepare(
    config: &WriterConfig,
    record: &Record,
    fixed: &mut Option<(Arc<StreamRef>, Arc<str>)>,
) -> Result<Prepared, PrepareError> {
    let (stream, stream_key) = match &config.target {
        StreamTarget::Fixed(stream) => fixed
            .get_or_insert_with(|| (Arc::new(stream.clone()), stream_key_of(stream)))
            .clone(),
        StreamTarget::Template(template) => {
            let rendered = template.render(record).map_err(RouteError::Template)?;
            let stream = stream_ref_from_rendered(&rendered)?;
            let key = stream_key_of(&stream);
            (Arc::new(stream), key)
        }
        StreamTarget::Collection => {
            let name = record.metadata.get(COLLECTION).unwrap_or("");
            if name.is_empty() {
                return Err(RouteError::NoCollection.into());
            }
            let stream = stream_ref_from_rendered(name)
                .map_err(|_| RouteError::InvalidCollection(name.to_owned()))?;
            let key = stream_key_of(&stream);
            (Arc::new(stream), key)
        }
    };
    let partition_key = match config.partition_key.derive(record)? {
        Some(key) => key,
        None => {
            tracing::debug!(
                position = %describe_position(&record.position),
                "empty partition key; using a random one"
            );
            random_partition_key()
        }
    };
    let hash_key = match &config.explicit_hash_key {
        Some(template) => explicit_hash_key(template, record)?,
        None => None,
    };
    let data = config
        .encoder
        .encode(record)
        .map_err(PrepareError::Format)?;
    Ok((stream, stream_key, partition_key, hash_key, data))
}

pub(super) fn stream_key_of(stream: &StreamRef) -> Arc<str> {
    Arc::from(stream.arn.as_deref().unwrap_or(&stream.name))
}
