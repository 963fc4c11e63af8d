#![deny(missing_docs)]
//! A runtime for [Conduit](https://conduit.io) standalone connector plugins written in Rust.
//!
//! Conduit runs a standalone connector as a child process through hashicorp/go-plugin and
//! talks to it over gRPC (connector protocol v2). This crate is that process's side: it checks
//! the environment go-plugin and Conduit set ([`env`](mod@env)), prints the handshake line, serves the
//! specifier, source and destination services plus go-plugin's controller, stdio and broker
//! services on loopback, logs through `tracing` in the JSON shape go-plugin hands on to
//! Conduit's log ([`logging`]), and drives a connector through the [`Source`] and
//! [`Destination`] traits. It knows nothing about what a connector reads or writes.
//!
//! # Writing a connector
//!
//! Implement [`Connector`] (settings, teardown, lifecycle events) and [`Source`] and/or
//! [`Destination`] on top of it, describe the parameters in a
//! [`Specification`](proto::connector::v2::Specification) and call [`serve`] from `main`.
//! A complete, copyable connector is in `examples/memory` of this crate (binary
//! `conduit-plugin-example`): an in-memory source that resumes after the last acknowledged
//! position and a destination that logs records and nacks some of them.
//!
//! ```no_run
//! use async_trait::async_trait;
//! use conduit_plugin_runtime::proto::connector::v2::Specification;
//! use conduit_plugin_runtime::{
//!     serve, BoxError, Connector, Destination, Plugin, RawConfig, Record, Source, WriteFuture,
//! };
//!
//! /// A source with nothing to read.
//! struct Idle;
//!
//! #[async_trait]
//! impl Connector for Idle {
//!     async fn configure(&mut self, _config: &RawConfig) -> Result<(), BoxError> {
//!         Ok(())
//!     }
//!     async fn teardown(&mut self) -> Result<(), BoxError> {
//!         Ok(())
//!     }
//! }
//!
//! #[async_trait]
//! impl Source for Idle {
//!     async fn open(&mut self, _after: Option<Vec<u8>>) -> Result<(), BoxError> {
//!         Ok(())
//!     }
//!     async fn read(&self) -> Result<Vec<Record>, BoxError> {
//!         std::future::pending().await // waits until the runtime drops it at Stop
//!     }
//!     async fn ack(&self, _positions: Vec<Vec<u8>>) -> Result<(), BoxError> {
//!         Ok(())
//!     }
//! }
//!
//! /// A destination that drops every record and acks it; it takes any settings.
//! struct Discard;
//!
//! #[async_trait]
//! impl Connector for Discard {
//!     async fn configure(&mut self, _config: &RawConfig) -> Result<(), BoxError> {
//!         Ok(())
//!     }
//!     async fn teardown(&mut self) -> Result<(), BoxError> {
//!         Ok(())
//!     }
//! }
//!
//! #[async_trait]
//! impl Destination for Discard {
//!     async fn open(&mut self) -> Result<(), BoxError> {
//!         Ok(())
//!     }
//!     fn write(&self, records: Vec<Record>) -> WriteFuture {
//!         let outcomes = records.iter().map(|_| Ok(())).collect();
//!         Box::pin(async move { Ok(outcomes) })
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     let plugin = Plugin {
//!         specification: Specification {
//!             name: "discard".into(), // pipelines say `plugin: standalone:discard`
//!             version: "v0.1.0".into(),
//!             summary: "Reads nothing, writes nowhere".into(),
//!             ..Default::default()
//!         },
//!         new_source: Box::new(|_env| Box::new(Idle)),
//!         new_destination: Box::new(|_env| Box::new(Discard)),
//!     };
//!     match serve(plugin).await {
//!         Ok(()) => std::process::ExitCode::SUCCESS,
//!         Err(error) => {
//!             eprintln!("{error}"); // e.g. started by hand, not by Conduit
//!             std::process::ExitCode::FAILURE
//!         }
//!     }
//! }
//! ```
//!
//! Put the binary into Conduit's connectors directory (`--connectors.path`); Conduit runs
//! every file there at start-up to ask for its specification and lists it under
//! `GET /v1/connectors/plugins` as `standalone:<name>@<version>`.
//!
//! Never write to stdout: its first line is the handshake, and go-plugin discards the rest.
//! Log with `tracing` instead; [`serve`] installs the logger.
//!
//! # The lifecycle Conduit drives
//!
//! Each of these is a fresh process, ended by go-plugin's `Shutdown` call (see below):
//!
//! 1. **Start-up scan** of the connectors directory: `Specify` only.
//! 2. **Validating** a connector created or changed through the API: `configure`, `teardown`.
//! 3. **Running a source**: `configure`; `lifecycle_on_created` on the first run or
//!    `lifecycle_on_updated` when the settings changed; `open` with the last position Conduit
//!    stored (`None` on a first start; continue *after* it); then the Run stream: the runtime
//!    calls [`Source::read`] in a loop and sends what it returns, and passes acknowledgements
//!    to [`Source::ack`] concurrently, in the order the records were read, once Conduit has
//!    stored their positions. On Stop the runtime drops the pending `read` (so it must be
//!    cancel-safe) and answers with the last position it sent; acks keep arriving until
//!    Conduit closes the stream; then `teardown`. Positions must be unique and non-empty.
//! 4. **Running a destination**: `configure`, a lifecycle call as above, `open`, then
//!    [`Destination::write`] for each group of records Conduit sends (one record each with
//!    Conduit's default pipeline architecture). The runtime acks every record exactly once, in
//!    the order received, with its [`WriteOutcome`]: `Err(reason)` is a nack, which Conduit
//!    hands to the pipeline's dead-letter queue (the default one stops the pipeline). On Stop
//!    it waits until the last record Conduit sent has been acked; then `teardown`.
//! 5. **Deleting** a connector that has run: `lifecycle_on_deleted` without `configure`, then
//!    `teardown`.
//!
//! `teardown` may come in any state (after a failed `configure` or `open`, without `open`,
//! twice). An error from `configure` reaches Conduit as `InvalidArgument`, any other as
//! `Internal`; Conduit shows only the message, which is the error with its chain of sources
//! (`outer: cause: root cause`). An error from `read`, `ack` or a whole `write` ends the Run
//! stream and makes Conduit restart the pipeline.
//!
//! # Flow control
//!
//! * Source: at most four `read` results wait in the runtime to be sent. When Conduit reads
//!   more slowly than the source produces, HTTP/2 flow control holds the sending back and
//!   `read` is not called again until there is room: a source is asked for more only when
//!   Conduit can take it.
//! * Destination: the runtime hands records to `write` as they arrive and awaits the
//!   returned futures in order. At most 4096 groups may be handed over and not yet acked;
//!   beyond that it stops reading from Conduit, which pushes back on Conduit through HTTP/2.
//!   A destination that batches can therefore start writes before earlier ones finish.
//! * HTTP/2 windows are sized so that many small messages (Conduit sends each ack and each
//!   record in its own frame) cannot exhaust h2's budget for small DATA frames while the
//!   connector is slow: 1 MiB per stream, the largest connection window, at most 16 streams.
//!   Memory stays bounded by streams × stream window.
//!
//! # Shutdown and host death
//!
//! * go-plugin ends a plugin with the `GRPCController/Shutdown` call, then waits up to 2 s
//!   for the process to exit before killing it. The runtime answers, stops the server, gives
//!   open calls 300 ms to finish and returns from [`serve`]; `main` should then exit promptly
//!   (with a hand-built tokio runtime, `shutdown_timeout` of ~100 ms, as the example does).
//! * SIGINT is ignored: Ctrl-C in a terminal reaches the whole process group, and Conduit
//!   drains its pipelines and shuts its plugins down itself.
//! * If the host dies without shutting the plugin down (SIGKILL, crash), the plugin notices
//!   within 200 ms (it polls its parent process id) and [`serve`] returns `Ok` **without**
//!   `Stop` or `teardown`: nothing is left to receive records or acks, and exiting closes
//!   every connection. Don't rely on `teardown` for correctness: records not acknowledged
//!   are read again from the stored position on the next run.
//!
//! # Modules
//!
//! [`connector`] holds the traits, [`record`] the OpenCDC record, [`proto`] the generated
//! protocol types, [`env`](mod@env) the environment contract and [`logging`] the log format.

pub mod codec;
pub mod connector;
pub mod env;
pub mod logging;
pub mod proto;
pub mod record;

mod destination;
mod hostservices;
mod serve;
mod shared_calls;
mod source;
mod status;

pub use connector::{
    BoxError, Connector, Destination, RawConfig, Source, WriteFuture, WriteOutcome,
};
pub use record::{Metadata, Record};
pub use serve::{serve, serve_on, Factory, Plugin, ServeError};
