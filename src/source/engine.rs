//! The running source: shard discovery and one reader per readable shard, feeding one bounded
//! channel from which `read` builds records and positions.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

use super::api::ShardApi;
use super::health::ReadHealth;
use super::lag::{self, LagBoard};
use super::lease::{Coordinator, LeaseConfig, LeaseTable};
use super::lineage;
use super::plan::{Action, Planner};
use super::position::{Position, PositionEncoder, ShardProgress};
use super::reader::{self, ClosedShards, Mode, ReaderContext, ReaderEnd, ShardEvent};
use super::records::to_opencdc;
use super::settings::InitialPosition;
use crate::plugin::Record;

/// Most encoded bytes of records in one batch. A batch is one gRPC message to Conduit, and
/// Conduit's preview architecture acks it with one request carrying all its positions, which
/// our own server receives under `CONDUIT_CONNECTOR_MAX_RECEIVE_RECORD_SIZE` (4 MiB by
/// default). With hundreds of shards a standalone position takes kilobytes: 1,000 records at
/// 512 shards were 6 MB of positions. Half the default limit leaves room for the request's
/// framing and for a limit set lower than the default by half.
pub(crate) const BATCH_BYTES: usize = 2 * 1024 * 1024;

pub(crate) struct EngineConfig {
    /// Where the shards are read.
    pub api: Arc<dyn ShardApi>,
    /// The stream's name, for positions and records.
    pub stream_name: String,
    pub mode: Mode,
    pub initial: InitialPosition,
    pub deaggregate: bool,
    pub unwrap_opencdc: bool,
    pub buffer_size: usize,
    pub batch_size: usize,
    pub batch_delay: Duration,
    pub discovery_interval: Duration,
    /// How often the read lag is logged; zero: never.
    pub lag_log_interval: Duration,
}

pub(crate) struct Engine {
    stream_name: String,
    unwrap_opencdc: bool,
    batch_size: usize,
    batch_delay: Duration,
    events: Mutex<mpsc::Receiver<ShardEvent>>,
    encoder: std::sync::Mutex<PositionEncoder>,
    /// Without coordination: the task that lists shards and runs the readers.
    coordinator: Option<JoinHandle<()>>,
    /// With lease coordination (`coordination=dynamodb`): this instance's share of the shards.
    leases: Option<Coordinator>,
    lag: LagBoard,
    lag_reporter: Option<JoinHandle<()>>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(coordinator) = &self.coordinator {
            coordinator.abort();
        }
        if let Some(reporter) = &self.lag_reporter {
            reporter.abort();
        }
    }
}

impl Engine {
    pub(crate) fn start(config: EngineConfig, position: Position) -> Engine {
        let (mut engine, context) = Self::prepare(&config, &position);
        engine.coordinator = Some(tokio::spawn(coordinate(
            context,
            config.mode,
            config.initial,
            config.discovery_interval,
            position,
        )));
        engine
    }

    /// Reads only the shards whose leases this instance holds in `table`
    /// (`coordination=dynamodb`, see [`super::lease`]); the table is the source of truth for
    /// where each shard resumes, and record positions name their shard only.
    pub(crate) fn start_coordinated(
        config: EngineConfig,
        table: Arc<dyn LeaseTable>,
        lease_config: LeaseConfig,
    ) -> Engine {
        let position = Position::new(config.stream_name.clone());
        let (mut engine, context) = Self::prepare(&config, &position);
        engine.leases = Some(Coordinator::start(
            table,
            lease_config,
            context,
            config.mode,
        ));
        engine
    }

    fn prepare(config: &EngineConfig, position: &Position) -> (Engine, Arc<ReaderContext>) {
        let (events_tx, events_rx) = mpsc::channel(config.buffer_size.max(1));
        let encoder = PositionEncoder::new(&config.stream_name, position);
        let context = Arc::new(ReaderContext {
            api: config.api.clone(),
            deaggregate: config.deaggregate,
            events: events_tx,
            closed: Arc::new(RwLock::new(HashMap::new())),
            health: ReadHealth::default(),
            lag: LagBoard::default(),
        });
        let lag = context.lag.clone();
        let lag_reporter = (!config.lag_log_interval.is_zero()).then(|| {
            tokio::spawn(lag::report(
                lag.clone(),
                config.stream_name.clone(),
                config.lag_log_interval,
            ))
        });
        let engine = Engine {
            stream_name: config.stream_name.clone(),
            unwrap_opencdc: config.unwrap_opencdc,
            batch_size: config.batch_size.max(1),
            batch_delay: config.batch_delay,
            events: Mutex::new(events_rx),
            encoder: std::sync::Mutex::new(encoder),
            coordinator: None,
            leases: None,
            lag,
            lag_reporter,
        };
        (engine, context)
    }

    /// Conduit acknowledged these records. Only lease coordination needs to know (its
    /// checkpoints); otherwise positions are self-contained.
    pub(crate) fn ack(&self, positions: &[Vec<u8>]) {
        if let Some(leases) = &self.leases {
            leases.ack(positions);
        }
    }

    /// Stops reading for good: with lease coordination, writes the final checkpoints and
    /// releases the leases (waiting at most `timeout`).
    pub(crate) async fn shutdown(&self, timeout: Duration) {
        if let Some(leases) = &self.leases {
            leases.shutdown(timeout).await;
        }
    }

    /// The readers' lag, kept current while the engine runs.
    pub(crate) fn lag_board(&self) -> LagBoard {
        self.lag.clone()
    }

    /// Waits for at least one record and returns up to the batch size. Cancel-safe in the
    /// sense the runtime needs: records taken but not returned are simply not delivered (and
    /// are read again after a restart, since no position covering them was sent).
    pub(crate) async fn read(&self) -> Result<Vec<Record>, String> {
        let mut events = self.events.lock().await;
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let deadline = tokio::time::Instant::now() + self.batch_delay;
        while records.len() < self.batch_size && bytes < BATCH_BYTES {
            let event = if records.is_empty() {
                match events.recv().await {
                    Some(event) => event,
                    None => return Err("the shard readers stopped".into()),
                }
            } else {
                match events.try_recv() {
                    Ok(event) => event,
                    Err(_) if self.batch_delay.is_zero() => break,
                    Err(_) => match tokio::time::timeout_at(deadline, events.recv()).await {
                        Ok(Some(event)) => event,
                        _ => break,
                    },
                }
            };
            if let Some(record) = self.apply(event) {
                bytes += prost::Message::encoded_len(&record);
                records.push(record);
            }
        }
        Ok(records)
    }

    /// Folds one event into the position; a record event becomes an OpenCDC record.
    fn apply(&self, event: ShardEvent) -> Option<Record> {
        if let Some(leases) = &self.leases {
            return self.apply_leased(leases, event);
        }
        let mut encoder = self.encoder.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            ShardEvent::Record { shard, record } => {
                let progress = ShardProgress::After {
                    sequence: record.sequence.clone(),
                    sub_sequence: if record.last_of_record {
                        None
                    } else {
                        record.sub_sequence
                    },
                };
                encoder.update(&shard, progress);
                let position = encoder.encode();
                Some(to_opencdc(
                    &self.stream_name,
                    &shard,
                    record,
                    position,
                    self.unwrap_opencdc,
                ))
            }
            ShardEvent::Progress { shard, sequence } => {
                encoder.update(
                    &shard,
                    ShardProgress::After {
                        sequence,
                        sub_sequence: None,
                    },
                );
                None
            }
            ShardEvent::Finished { shard } => {
                encoder.update(&shard, ShardProgress::Finished);
                None
            }
            ShardEvent::Forget { shard } => {
                encoder.remove(&shard);
                None
            }
        }
    }
}

impl Engine {
    /// [`Engine::apply`] under lease coordination: records of shards this instance no longer
    /// holds are dropped, and each position names only its record.
    fn apply_leased(&self, leases: &Coordinator, event: ShardEvent) -> Option<Record> {
        match event {
            ShardEvent::Record { shard, record } => {
                let position = leases.position_for(&shard, &record)?;
                Some(to_opencdc(
                    &self.stream_name,
                    &shard,
                    record,
                    position,
                    self.unwrap_opencdc,
                ))
            }
            ShardEvent::Progress { shard, sequence } => {
                leases.progressed(&shard, &sequence);
                None
            }
            ShardEvent::Finished { shard } => {
                leases.finished(&shard);
                None
            }
            // Sent by the coordinator after a lost shard's reader stopped.
            ShardEvent::Forget { shard } => {
                leases.drained(&shard);
                None
            }
        }
    }
}

/// Lists shards, does what the [`Planner`] says (starting readers for readable shards,
/// parents before children) and reacts to finished shards, until aborted.
async fn coordinate(
    context: Arc<ReaderContext>,
    mode: Mode,
    initial: InitialPosition,
    discovery_interval: Duration,
    position: Position,
) {
    let opened_at_ms = super::settings::now_epoch_millis();
    let mut planner = Planner::new(position, initial, opened_at_ms);
    let mut running = ReaderGuard(HashMap::new());
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    loop {
        match context.api.list_shards().await {
            Ok(shards) => {
                update_closed(&context.closed, &shards);
                for action in planner.plan(&shards) {
                    match action {
                        Action::Skip(shard) => {
                            let shard = Arc::from(shard.as_str());
                            let _ = context.events.send(ShardEvent::Finished { shard }).await;
                        }
                        Action::Forget(shard) => {
                            let shard = Arc::from(shard.as_str());
                            let _ = context.events.send(ShardEvent::Forget { shard }).await;
                        }
                        Action::Start { shard, from } => {
                            tracing::debug!(%shard, start = ?from, "starting shard reader");
                            let context = context.clone();
                            let mode = mode.clone();
                            let done = done_tx.clone();
                            let id = shard.clone();
                            running.0.insert(
                                shard,
                                tokio::spawn(async move {
                                    let end = reader::run(context, mode, id.clone(), from).await;
                                    if end.finished() {
                                        let _ = done.send(id);
                                    }
                                    end
                                }),
                            );
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(
                %error,
                retry_in_ms = discovery_interval.as_millis() as u64,
                "listing shards failed; retrying at the next discovery"
            ),
        }
        // Wait for a shard to finish (its children may now be readable) or the next discovery.
        tokio::select! {
            Some(shard) = done_rx.recv() => {
                let mut done = vec![shard];
                while let Ok(shard) = done_rx.try_recv() {
                    done.push(shard);
                }
                for shard in done {
                    running.0.remove(&shard);
                    planner.finished(&shard);
                }
            }
            _ = tokio::time::sleep(discovery_interval) => {}
        }
    }
}

fn update_closed(closed: &ClosedShards, shards: &[lineage::ShardInfo]) {
    if let Ok(mut map) = closed.write() {
        map.clear();
        map.extend(shards.iter().map(|s| (s.id.clone(), s.closed)));
    }
}

/// The running readers; aborted with the coordinator, which owns them.
impl Drop for ReaderGuard {
    fn drop(&mut self) {
        for handle in self.0.values() {
            handle.abort();
        }
    }
}

struct ReaderGuard(HashMap<String, JoinHandle<ReaderEnd>>);
