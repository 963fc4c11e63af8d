//! `connector.v2.SourcePlugin`: drives a [`Source`] over the protocol.
//!
//! Run streams records from `Source::read` to Conduit and acks back into `Source::ack`
//! concurrently. Stop ends reading and answers with the position of the last record that was
//! actually handed to the stream, so Conduit knows when it has seen everything.

use std::pin::Pin;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use futures::Stream;
use tokio::sync::{mpsc, watch, RwLock};
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status, Streaming};

use super::connector::{BoxError, Source};
use super::shared_calls;
use super::status::internal;
use crate::proto::connector::v2::source;
use crate::proto::connector::v2::source_plugin_server::SourcePlugin;

/// How long Stop waits for an in-progress read to finish sending (the Go SDK waits a minute).
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long Teardown lets the Run tasks end by themselves before aborting them.
const TEARDOWN_GRACE: Duration = Duration::from_millis(500);

type Shared = shared_calls::Shared<dyn Source>;

pub struct SourceService {
    connector: Shared,
    run: StdMutex<Option<RunState>>,
}

struct RunState {
    stop: watch::Sender<bool>,
    reader: JoinHandle<()>,
    acker: JoinHandle<()>,
    last_sent: Arc<StdMutex<Option<Vec<u8>>>>,
}

impl SourceService {
    pub fn new(connector: Box<dyn Source>) -> Self {
        SourceService {
            connector: Arc::new(RwLock::new(connector)),
            run: StdMutex::new(None),
        }
    }

    fn take_run(&self) -> Option<RunState> {
        self.run.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

type RecordStream = Pin<Box<dyn Stream<Item = Result<source::run::Response, Status>> + Send>>;

#[tonic::async_trait]
impl SourcePlugin for SourceService {
    async fn configure(
        &self,
        request: Request<source::configure::Request>,
    ) -> Result<Response<source::configure::Response>, Status> {
        shared_calls::configure(&self.connector, &request.into_inner().config).await?;
        Ok(Response::new(source::configure::Response {}))
    }

    async fn open(
        &self,
        request: Request<source::open::Request>,
    ) -> Result<Response<source::open::Response>, Status> {
        let position = request.into_inner().position;
        let position = (!position.is_empty()).then_some(position);
        self.connector
            .write()
            .await
            .open(position)
            .await
            .map_err(|e| internal(&e))?;
        Ok(Response::new(source::open::Response {}))
    }

    type RunStream = RecordStream;

    async fn run(
        &self,
        request: Request<Streaming<source::run::Request>>,
    ) -> Result<Response<Self::RunStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel::<Result<source::run::Response, Status>>(4);
        let (stop_tx, stop_rx) = watch::channel(false);
        let last_sent = Arc::new(StdMutex::new(None));

        let reader = tokio::spawn(read_loop(
            self.connector.clone(),
            tx.clone(),
            stop_rx,
            last_sent.clone(),
        ));

        let connector = self.connector.clone();
        let stop_on_close = stop_tx.clone();
        let acker = tokio::spawn(async move {
            // Ends when Conduit closes or cancels the stream: nothing more will be acked or read.
            loop {
                let request = match inbound.message().await {
                    Ok(Some(request)) => request,
                    Ok(None) => break,
                    Err(status) => {
                        // E.g. an ack request over the receive size limit: report it instead of
                        // ending the stream as if Conduit had closed it.
                        let _ = stop_on_close.send(true);
                        let _ = tx.send(Err(status)).await;
                        break;
                    }
                };
                if request.ack_positions.is_empty() {
                    continue;
                }
                let result = connector.read().await.ack(request.ack_positions).await;
                if let Err(e) = result {
                    tracing::error!(error = %super::connector::error_chain(e.as_ref()), "ack failed");
                    let _ = tx.send(Err(internal(&e))).await;
                    break;
                }
            }
            let _ = stop_on_close.send(true);
        });

        let previous = self
            .run
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(RunState {
                stop: stop_tx,
                reader,
                acker,
                last_sent,
            });
        if let Some(old) = previous {
            abort(old);
        }
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn stop(
        &self,
        _request: Request<source::stop::Request>,
    ) -> Result<Response<source::stop::Response>, Status> {
        let (reader_done, last_sent) = {
            let mut guard = self.run.lock().unwrap_or_else(|e| e.into_inner());
            match guard.as_mut() {
                None => {
                    return Ok(Response::new(source::stop::Response {
                        last_position: Vec::new(),
                    }))
                }
                Some(run) => {
                    let _ = run.stop.send(true);
                    // Swap in a finished handle so the real reader can be awaited outside the lock.
                    let reader = std::mem::replace(&mut run.reader, tokio::spawn(async {}));
                    (reader, run.last_sent.clone())
                }
            }
        };
        if tokio::time::timeout(STOP_TIMEOUT, reader_done)
            .await
            .is_err()
        {
            return Err(Status::deadline_exceeded(
                "the source did not stop reading within 60s; the pipeline needs a force stop",
            ));
        }
        let last_position = last_sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default();
        Ok(Response::new(source::stop::Response { last_position }))
    }

    async fn teardown(
        &self,
        _request: Request<source::teardown::Request>,
    ) -> Result<Response<source::teardown::Response>, Status> {
        if let Some(run) = self.take_run() {
            let _ = run.stop.send(true);
            let mut reader = run.reader;
            if tokio::time::timeout(TEARDOWN_GRACE, &mut reader)
                .await
                .is_err()
            {
                reader.abort();
            }
            // Acks Conduit sent before Teardown still reach the connector (a source that
            // checkpoints them at Teardown needs every one); the acker ends by itself when
            // Conduit closes the stream.
            let mut acker = run.acker;
            if tokio::time::timeout(TEARDOWN_GRACE, &mut acker)
                .await
                .is_err()
            {
                acker.abort();
            }
        }
        shared_calls::teardown(&self.connector).await?;
        Ok(Response::new(source::teardown::Response {}))
    }

    async fn lifecycle_on_created(
        &self,
        request: Request<source::lifecycle::on_created::Request>,
    ) -> Result<Response<source::lifecycle::on_created::Response>, Status> {
        shared_calls::on_created(&self.connector, &request.into_inner().config).await?;
        Ok(Response::new(source::lifecycle::on_created::Response {}))
    }

    async fn lifecycle_on_updated(
        &self,
        request: Request<source::lifecycle::on_updated::Request>,
    ) -> Result<Response<source::lifecycle::on_updated::Response>, Status> {
        let request = request.into_inner();
        shared_calls::on_updated(
            &self.connector,
            &request.config_before,
            &request.config_after,
        )
        .await?;
        Ok(Response::new(source::lifecycle::on_updated::Response {}))
    }

    async fn lifecycle_on_deleted(
        &self,
        request: Request<source::lifecycle::on_deleted::Request>,
    ) -> Result<Response<source::lifecycle::on_deleted::Response>, Status> {
        shared_calls::on_deleted(&self.connector, &request.into_inner().config).await?;
        Ok(Response::new(source::lifecycle::on_deleted::Response {}))
    }
}

fn abort(run: RunState) {
    let _ = run.stop.send(true);
    run.reader.abort();
    run.acker.abort();
}

async fn read_loop(
    connector: Shared,
    tx: mpsc::Sender<Result<source::run::Response, Status>>,
    mut stop: watch::Receiver<bool>,
    last_sent: Arc<StdMutex<Option<Vec<u8>>>>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let records = {
            let guard = connector.read().await;
            tokio::select! {
                biased;
                _ = stop.changed() => return,
                result = guard.read() => result,
            }
        };
        let records = match records {
            Ok(records) if records.is_empty() => continue,
            Ok(records) => records,
            Err(error) => {
                report_read_error(&tx, error).await;
                return;
            }
        };
        let last = records
            .last()
            .map(|r| r.position.clone())
            .unwrap_or_default();
        if tx
            .send(Ok(source::run::Response { records }))
            .await
            .is_err()
        {
            return;
        }
        *last_sent.lock().unwrap_or_else(|e| e.into_inner()) = Some(last);
    }
}

async fn report_read_error(
    tx: &mpsc::Sender<Result<source::run::Response, Status>>,
    error: BoxError,
) {
    tracing::error!(error = %super::connector::error_chain(error.as_ref()), "read failed");
    let _ = tx.send(Err(internal(&error))).await;
}
