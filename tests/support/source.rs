//! Driving the source over gRPC as Conduit does.

use std::time::Duration;

use conduit_connector_kinesis::proto::connector::v2::source;
use conduit_connector_kinesis::proto::opencdc::v1::Record;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use super::plugin::{config, PluginProcess};

pub struct RunningSource {
    pub plugin: PluginProcess,
    acks: mpsc::Sender<source::run::Request>,
    records: Streaming<source::run::Response>,
    buffered: std::collections::VecDeque<Record>,
}

impl RunningSource {
    /// Configure → Open(position) → Run.
    pub async fn start(settings: &[(&str, &str)], position: Option<Vec<u8>>) -> RunningSource {
        Self::try_start(settings, position)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn try_start(
        settings: &[(&str, &str)],
        position: Option<Vec<u8>>,
    ) -> Result<RunningSource, String> {
        let plugin = PluginProcess::start_for_run().await;
        Self::start_in(plugin, settings, position).await
    }

    pub async fn start_in(
        plugin: PluginProcess,
        settings: &[(&str, &str)],
        position: Option<Vec<u8>>,
    ) -> Result<RunningSource, String> {
        let mut client = plugin.source();
        client
            .configure(source::configure::Request {
                config: config(settings),
            })
            .await
            .map_err(|e| format!("Configure: {}", e.message()))?;
        client
            .open(source::open::Request {
                position: position.unwrap_or_default(),
            })
            .await
            .map_err(|e| format!("Open: {}", e.message()))?;
        let (acks, rx) = mpsc::channel(1024);
        let records = client
            .run(ReceiverStream::new(rx))
            .await
            .map_err(|e| format!("Run: {}", e.message()))?
            .into_inner();
        Ok(RunningSource {
            plugin,
            acks,
            records,
            buffered: Default::default(),
        })
    }

    /// The next `n` records, failing after `timeout`.
    pub async fn records(&mut self, n: usize, timeout: Duration) -> Vec<Record> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if let Some(record) = self.buffered.pop_front() {
                out.push(record);
                continue;
            }
            let next = tokio::time::timeout_at(deadline, self.records.message())
                .await
                .unwrap_or_else(|_| panic!("only {} of {n} records within {timeout:?}", out.len()))
                .expect("run stream failed")
                .expect("run stream ended");
            assert!(!next.records.is_empty(), "the source sent an empty batch");
            self.buffered.extend(next.records);
        }
        out
    }

    /// Records that arrive within `wait` (for asserting that nothing more comes).
    pub async fn drain(&mut self, wait: Duration) -> Vec<Record> {
        let mut out: Vec<Record> = self.buffered.drain(..).collect();
        while let Ok(Ok(Some(next))) = tokio::time::timeout(wait, self.records.message()).await {
            out.extend(next.records);
        }
        out
    }

    /// The next batch, or `None` when none arrives within `wait` (the stream failing or
    /// ending counts as none).
    pub async fn next_batch(&mut self, wait: Duration) -> Option<Vec<Record>> {
        if !self.buffered.is_empty() {
            return Some(self.buffered.drain(..).collect());
        }
        match tokio::time::timeout(wait, self.records.message()).await {
            Ok(Ok(Some(next))) => Some(next.records),
            _ => None,
        }
    }

    pub async fn ack(&self, positions: Vec<Vec<u8>>) {
        self.acks
            .send(source::run::Request {
                ack_positions: positions,
            })
            .await
            .expect("run stream open");
    }

    pub async fn stop(&self) -> Vec<u8> {
        self.plugin
            .source()
            .stop(source::stop::Request {})
            .await
            .expect("Stop")
            .into_inner()
            .last_position
    }

    pub async fn teardown(self) {
        self.plugin
            .source()
            .teardown(source::teardown::Request {})
            .await
            .expect("Teardown");
    }
}
