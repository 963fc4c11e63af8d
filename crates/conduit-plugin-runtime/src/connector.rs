//! The interfaces a connector implements. They follow the shape of the Go SDK's `Source` and
//! `Destination` interfaces, made async and `Result`-based. The runtime drives them over the
//! Conduit protocol and knows nothing about what a connector reads or writes.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;

pub use super::record::Record;

/// Any error a connector returns; Conduit shows its message (with its sources) to the user.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The raw settings from the pipeline (`map<string,string>` on the wire).
pub type RawConfig = HashMap<String, String>;

/// Renders an error and its chain of sources as one line: `outer: cause: root cause`.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// What Conduit asks of every connector, source or destination: settings, teardown and the
/// lifecycle events of the connector's life in Conduit. [`Source`] and [`Destination`] build on
/// it, so the runtime drives both sides' common calls the same way.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// Validates and stores the settings. No I/O should be needed to reject bad settings.
    async fn configure(&mut self, config: &RawConfig) -> Result<(), BoxError>;

    /// Releases every resource. Called in any state, possibly more than once. For a
    /// destination, the runtime first ends the Run stream and drops write futures that are
    /// still pending (after a normal Stop, Conduit has already received every ack).
    async fn teardown(&mut self) -> Result<(), BoxError>;

    /// Called after `configure` and before `open` the first time this connector runs, e.g. to
    /// create what it needs upstream. The default does nothing. An error aborts the start.
    async fn lifecycle_on_created(&mut self, _config: &RawConfig) -> Result<(), BoxError> {
        Ok(())
    }

    /// Called after `configure` and before `open` when the settings differ from the last
    /// run's. The default does nothing. An error aborts the start.
    async fn lifecycle_on_updated(
        &mut self,
        _before: &RawConfig,
        _after: &RawConfig,
    ) -> Result<(), BoxError> {
        Ok(())
    }

    /// Called without `configure`: the connector was deleted from Conduit, e.g. to remove
    /// what `lifecycle_on_created` made. Gets the last settings it ran with. The default does
    /// nothing.
    async fn lifecycle_on_deleted(&mut self, _config: &RawConfig) -> Result<(), BoxError> {
        Ok(())
    }
}

/// A source produces records with unique, non-empty positions and learns through `ack` which of
/// them Conduit has durably processed.
///
/// `read` and `ack` take `&self` because the runtime calls them concurrently; the other methods
/// get exclusive access.
#[async_trait]
pub trait Source: Connector {
    /// Prepares reading, resuming right after `position` (`None` on a first start).
    async fn open(&mut self, position: Option<Vec<u8>>) -> Result<(), BoxError>;

    /// Waits for the next records and returns at least one.
    ///
    /// Must be cancel-safe: the runtime drops the future when the pipeline stops, and records
    /// not yet returned must not be considered delivered.
    async fn read(&self) -> Result<Vec<Record>, BoxError>;

    /// Conduit has processed these records (in the order they were read).
    async fn ack(&self, positions: Vec<Vec<u8>>) -> Result<(), BoxError>;
}

/// The outcome for one record: `Ok` acks it, `Err(reason)` nacks it with that reason.
pub type WriteOutcome = Result<(), String>;

/// Resolves when a handed-over group of records is written: one outcome per record, in order.
/// An `Err` of the whole future is fatal and stops the pipeline; a record that cannot be
/// written is reported in its outcome instead, so Conduit's dead-letter queue decides.
pub type WriteFuture =
    Pin<Box<dyn Future<Output = Result<Vec<WriteOutcome>, BoxError>> + Send + 'static>>;

/// A destination writes records and reports an outcome for each, in order.
#[async_trait]
pub trait Destination: Connector {
    /// Prepares writing (connections, clients). Called once, after `configure`.
    async fn open(&mut self) -> Result<(), BoxError>;

    /// Hands records over for writing. They count as handed over when this returns, in call
    /// order, so a destination can keep per-key order while several groups are in flight. The
    /// runtime awaits the futures in call order and acks accordingly.
    fn write(&self, records: Vec<Record>) -> WriteFuture;
}
