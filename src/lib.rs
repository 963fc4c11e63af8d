//! Conduit connector for Amazon Kinesis Data Streams.
//!
//! The crate's surface is what the binary needs: [`plugin()`] (the connector as Conduit loads
//! it, served by the generic runtime re-exported as [`mod@plugin`]), the command line
//! ([`cli`]) and the parameter declarations ([`specification`], [`connector_yaml`]).
//! Everything else is internal; `ARCHITECTURE.md` follows a record through the modules:
//! `config` (the Go SDK's validation rules), `spec` (this connector's parameters), `aws`
//! (clients and signed requests), `source` and `destination` (the two sides).

// Internals stay `pub(crate)`, so the compiler shows what nothing uses; the few items the
// repository's tests and benchmarks drive directly are re-exported by `testing`.
#![warn(unreachable_pub)]

mod aws;
pub mod cli;
mod config;
mod connection;
mod destination;
mod outage;
mod source;
mod spec;

/// The generic Conduit plugin runtime this connector is served by.
pub use conduit_plugin_runtime as plugin;
pub use conduit_plugin_runtime::proto;

pub use spec::{connector_yaml, specification, version};

/// The plugin as Conduit loads it.
pub fn plugin() -> plugin::Plugin {
    plugin::Plugin {
        specification: spec::specification(),
        new_source: Box::new(|env| Box::new(source::KinesisSource::new(env))),
        new_destination: Box::new(|env| Box::new(destination::KinesisDestination::new(env))),
    }
}

/// Internals that this repository's integration tests, property tests and benchmarks drive
/// directly. Not an API: it changes with the code, and nothing outside this repository should
/// use it.
#[doc(hidden)]
pub mod testing {
    pub use crate::aws::signed::{
        parse_service_error, HttpVersions, Protocol, ServiceEndpoint, SignedClient,
    };
    pub use crate::aws::{cbor, KinesisConnection};
    pub use crate::cli::input::{read_rows, InputKind, Item};
    pub use crate::config::gosyntax::{
        format_duration, parse_bool, parse_duration, parse_float, parse_int,
    };
    pub use crate::destination::format::RecordFormat;
    pub use crate::destination::key::{explicit_hash_key, KeyStrategy};
    pub use crate::destination::put::{parse_response, EntryFailure};
    pub use crate::destination::schema::{SchemaDecoder, SchemaError};
    pub use crate::destination::template::{
        struct_to_json, suggest_handlebars, RecordTemplate, TemplateError,
    };
    pub use crate::source::deaggregate::{deaggregate, is_aggregated, UserRecord, MAGIC};
    pub use crate::source::eventstream::{encode_message, Message, MessageBuffer};
    pub use crate::source::position::{Position, ShardProgress};
    pub use crate::source::sequence::unpack as unpack_sequence;
    pub use crate::source::subscribe::{parse_event, StartingPoint, Subscriber};
    pub use crate::spec::{destination_params, markdown_table, source_params};
}
