//! Conduit connector for Amazon Kinesis Data Streams.
//!
//! [`plugin`] is a generic Conduit plugin runtime; [`config`] validates parameters with the Go
//! SDK's rules; [`spec`] declares this connector's parameters; [`aws`] builds clients;
//! [`source`] and [`destination`] are the two connector sides.

pub mod aws;
pub mod cli;
pub mod config;
pub mod connection;
pub mod destination;
pub mod outage;
pub mod source;
pub mod spec;

/// The generic Conduit plugin runtime this connector is served by.
pub use conduit_plugin_runtime as plugin;
pub use conduit_plugin_runtime::proto;

/// The plugin as Conduit loads it.
pub fn plugin() -> plugin::Plugin {
    plugin::Plugin {
        specification: spec::specification(),
        new_source: Box::new(|env| Box::new(source::KinesisSource::new(env))),
        new_destination: Box::new(|env| Box::new(destination::KinesisDestination::new(env))),
    }
}
