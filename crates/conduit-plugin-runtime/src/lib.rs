//! A generic runtime for Conduit standalone connector plugins (protocol v2).
//!
//! It performs go-plugin's handshake, serves the specifier, source and destination services
//! over gRPC on loopback, and drives connectors through the [`Source`] and [`Destination`]
//! traits. Nothing in here knows about Kinesis.

pub mod connector;
pub mod env;
pub mod logging;
pub mod proto;
pub mod record;

mod destination;
mod hostservices;
mod serve;
mod source;
mod status;

pub use connector::{BoxError, Destination, RawConfig, Source, WriteFuture, WriteOutcome};
pub use record::{Metadata, Record};
pub use serve::{serve, serve_on, Factory, Plugin, ServeError};
