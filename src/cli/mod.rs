//! Command-line entry: plugin mode without arguments, plus small commands for people:
//! `specs`, `version`, and the hand-testing commands `produce` (write CSV / JSON-lines rows
//! with the destination's writer) and `consume` (print records read by the source's engine).

mod args;
mod common;
mod consume;
pub(crate) mod input;
mod produce;

pub use consume::run as run_consume;
pub use produce::run as run_produce;

pub const HELP: &str = "\
conduit-connector-kinesis: Amazon Kinesis Data Streams connector for Conduit

This binary is a Conduit plugin. Conduit starts it itself: copy it into Conduit's connectors
directory (--connectors.path) and reference it in a pipeline as `standalone:kinesis`.
Run without arguments outside Conduit, it refuses to start.

Usage:
  conduit-connector-kinesis            run as a plugin (started by Conduit)
  conduit-connector-kinesis specs      print the connector specification (connector.yaml)
  conduit-connector-kinesis version    print the connector version
  conduit-connector-kinesis produce STREAM FILE
                                       write CSV or JSON-lines rows to a stream (testing by hand)
  conduit-connector-kinesis consume STREAM
                                       print a stream's records as JSON lines (testing by hand)
  conduit-connector-kinesis --help     print this help

Run `conduit-connector-kinesis produce --help` or `consume --help` for their options.
";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Plugin,
    Specs,
    Version,
    Help,
    /// The arguments after `produce`.
    Produce(Vec<String>),
    /// The arguments after `consume`.
    Consume(Vec<String>),
    Unknown(String),
}

pub fn parse(args: &[String]) -> Command {
    match args.first().map(String::as_str) {
        None => Command::Plugin,
        Some("spec" | "specs" | "specification" | "specifications") => Command::Specs,
        Some("version" | "--version" | "-V") => Command::Version,
        Some("help" | "--help" | "-h") => Command::Help,
        Some("produce") => Command::Produce(args[1..].to_vec()),
        Some("consume") => Command::Consume(args[1..].to_vec()),
        Some(other) => Command::Unknown(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse(&args(&[])), Command::Plugin);
        assert_eq!(parse(&args(&["specs"])), Command::Specs);
        assert_eq!(parse(&args(&["version"])), Command::Version);
        assert_eq!(parse(&args(&["--help"])), Command::Help);
        assert_eq!(
            parse(&args(&["produce", "s", "f.csv"])),
            Command::Produce(args(&["s", "f.csv"]))
        );
        assert_eq!(
            parse(&args(&["consume", "--help"])),
            Command::Consume(args(&["--help"]))
        );
        assert_eq!(
            parse(&args(&["frobnicate"])),
            Command::Unknown("frobnicate".into())
        );
    }
}
