//! `connector.v2.DestinationPlugin`: drives a [`Destination`] over the protocol.
//!
//! Every record is acked exactly once, in the order received. Stop(last_position) returns
//! once the record with that position has been acked (or the Run stream has ended).

use std::pin::Pin;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use futures::Stream;
use tokio::sync::{mpsc, watch, RwLock};
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status, Streaming};

use super::connector::{error_chain, Destination, WriteFuture};
use super::shared_calls;
use super::status::internal;
use crate::proto::connector::v2::destination;
use crate::proto::connector::v2::destination::run::response::Ack;
use crate::proto::connector::v2::destination_plugin_server::DestinationPlugin;

const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Groups handed to the destination and not yet acked, before Run stops reading from Conduit.
const MAX_PENDING_GROUPS: usize = 4096;

type Shared = shared_calls::Shared<dyn Destination>;
type AckStream = Pin<Box<dyn Stream<Item = Result<destination::run::Response, Status>> + Send>>;

/// Progress of the current Run stream, watched by Stop.
#[derive(Debug, Clone, Default, PartialEq)]
struct Progress {
    last_acked: Option<Vec<u8>>,
    ended: bool,
}

pub struct DestinationService {
    connector: Shared,
    run: StdMutex<Option<RunState>>,
}

struct RunState {
    receiver: JoinHandle<()>,
    acker: JoinHandle<()>,
    progress: watch::Receiver<Progress>,
}

impl RunState {
    fn abort(self) {
        self.receiver.abort();
        self.acker.abort();
    }
}

impl DestinationService {
    pub fn new(connector: Box<dyn Destination>) -> Self {
        DestinationService {
            connector: Arc::new(RwLock::new(connector)),
            run: StdMutex::new(None),
        }
    }
}

#[tonic::async_trait]
impl DestinationPlugin for DestinationService {
    async fn configure(
        &self,
        request: Request<destination::configure::Request>,
    ) -> Result<Response<destination::configure::Response>, Status> {
        shared_calls::configure(&self.connector, &request.into_inner().config).await?;
        Ok(Response::new(destination::configure::Response {}))
    }

    async fn open(
        &self,
        _request: Request<destination::open::Request>,
    ) -> Result<Response<destination::open::Response>, Status> {
        self.connector
            .write()
            .await
            .open()
            .await
            .map_err(|e| internal(&e))?;
        Ok(Response::new(destination::open::Response {}))
    }

    type RunStream = AckStream;

    async fn run(
        &self,
        request: Request<Streaming<destination::run::Request>>,
    ) -> Result<Response<Self::RunStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel::<Result<destination::run::Response, Status>>(16);
        let (progress_tx, progress_rx) = watch::channel(Progress::default());
        // A failed inbound stream (e.g. a record over the receive size limit) travels through
        // the same queue as an `Err`, so Conduit gets the acks before it and then that status.
        let (pending_tx, mut pending_rx) =
            mpsc::channel::<Result<(Vec<Vec<u8>>, WriteFuture), Status>>(MAX_PENDING_GROUPS);
        let connector = self.connector.clone();

        // Hands records to the destination as they arrive; the bounded queue of pending groups
        // pushes back on Conduit (through HTTP/2 flow control) when writing falls behind.
        let receiver = tokio::spawn(async move {
            loop {
                let request = match inbound.message().await {
                    Ok(Some(request)) => request,
                    Ok(None) => break,
                    Err(status) => {
                        let _ = pending_tx.send(Err(status)).await;
                        break;
                    }
                };
                if request.records.is_empty() {
                    continue;
                }
                let positions: Vec<Vec<u8>> =
                    request.records.iter().map(|r| r.position.clone()).collect();
                let written = connector.read().await.write(request.records);
                if pending_tx.send(Ok((positions, written))).await.is_err() {
                    break;
                }
            }
        });

        // Acks each group in the order it was handed over.
        let acker = tokio::spawn(async move {
            while let Some(pending) = pending_rx.recv().await {
                let (positions, written) = match pending {
                    Ok(pending) => pending,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        break;
                    }
                };
                let acks = match written.await {
                    Ok(outcomes) if outcomes.len() == positions.len() => positions
                        .into_iter()
                        .zip(outcomes)
                        .map(|(position, outcome)| Ack {
                            position,
                            error: outcome.err().unwrap_or_default(),
                        })
                        .collect::<Vec<_>>(),
                    Ok(outcomes) => {
                        let message = format!(
                            "internal error: the destination reported {} outcomes for {} records",
                            outcomes.len(),
                            positions.len()
                        );
                        let _ = tx.send(Err(Status::internal(message))).await;
                        break;
                    }
                    Err(error) => {
                        tracing::error!(error = %error_chain(error.as_ref()), "write failed");
                        let _ = tx.send(Err(internal(&error))).await;
                        break;
                    }
                };
                let last = acks.last().map(|a| a.position.clone());
                if tx
                    .send(Ok(destination::run::Response { acks }))
                    .await
                    .is_err()
                {
                    break;
                }
                progress_tx.send_modify(|p| p.last_acked = last);
            }
            progress_tx.send_modify(|p| p.ended = true);
        });

        let previous = self
            .run
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(RunState {
                receiver,
                acker,
                progress: progress_rx,
            });
        if let Some(old) = previous {
            old.abort();
        }
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn stop(
        &self,
        request: Request<destination::stop::Request>,
    ) -> Result<Response<destination::stop::Response>, Status> {
        let last_position = request.into_inner().last_position;
        let progress = self
            .run
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|run| run.progress.clone());
        let (Some(mut progress), false) = (progress, last_position.is_empty()) else {
            return Ok(Response::new(destination::stop::Response {}));
        };
        let reached = tokio::time::timeout(
            STOP_TIMEOUT,
            progress
                .wait_for(|p| p.ended || p.last_acked.as_deref() == Some(last_position.as_slice())),
        )
        .await;
        match reached {
            Ok(_) => Ok(Response::new(destination::stop::Response {})),
            Err(_) => Err(Status::deadline_exceeded(
                "the destination did not write the last record within 60s of Stop",
            )),
        }
    }

    async fn teardown(
        &self,
        _request: Request<destination::teardown::Request>,
    ) -> Result<Response<destination::teardown::Response>, Status> {
        if let Some(run) = self.run.lock().unwrap_or_else(|e| e.into_inner()).take() {
            run.abort();
        }
        shared_calls::teardown(&self.connector).await?;
        Ok(Response::new(destination::teardown::Response {}))
    }

    async fn lifecycle_on_created(
        &self,
        request: Request<destination::lifecycle::on_created::Request>,
    ) -> Result<Response<destination::lifecycle::on_created::Response>, Status> {
        shared_calls::on_created(&self.connector, &request.into_inner().config).await?;
        Ok(Response::new(
            destination::lifecycle::on_created::Response {},
        ))
    }

    async fn lifecycle_on_updated(
        &self,
        request: Request<destination::lifecycle::on_updated::Request>,
    ) -> Result<Response<destination::lifecycle::on_updated::Response>, Status> {
        let request = request.into_inner();
        shared_calls::on_updated(
            &self.connector,
            &request.config_before,
            &request.config_after,
        )
        .await?;
        Ok(Response::new(
            destination::lifecycle::on_updated::Response {},
        ))
    }

    async fn lifecycle_on_deleted(
        &self,
        request: Request<destination::lifecycle::on_deleted::Request>,
    ) -> Result<Response<destination::lifecycle::on_deleted::Response>, Status> {
        shared_calls::on_deleted(&self.connector, &request.into_inner().config).await?;
        Ok(Response::new(
            destination::lifecycle::on_deleted::Response {},
        ))
    }
}
