//! Pieces both commands share: AWS options, connector parameters built from options, JSON
//! output lines, stdout handling, progress on stderr, logging and the runtime.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::args::{self, value, OptSpec, Parsed};
use crate::destination::settings::stream_ref_from_rendered;
use crate::spec::{AWS_PROFILE, AWS_REGION, AWS_URL, STREAM_ARN, STREAM_NAME};

/// Exit status for a wrong command line.
pub(crate) const USAGE: u8 = 2;

/// The AWS options both commands take.
pub(crate) const AWS_OPTIONS: &[OptSpec] =
    &[value("region"), value("profile"), value("endpoint-url")];

pub(crate) const AWS_HELP: &str = "\
AWS options:
  --region REGION         AWS region (default: AWS_REGION / AWS_DEFAULT_REGION, the profile, or
                          the region of a stream ARN)
  --profile NAME          shared config/credentials profile
  --endpoint-url URL      Kinesis endpoint, e.g. http://127.0.0.1:4567 for a local server
Credentials come from the default chain: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
AWS_SESSION_TOKEN, the profile, web identity, container or instance roles.
";

/// Connector parameters (as Conduit would pass them) for the stream and the AWS options.
pub(crate) fn connection_params(
    stream: &str,
    parsed: &Parsed,
) -> Result<HashMap<String, String>, String> {
    let stream_ref = stream_ref_from_rendered(stream).map_err(|_| {
        format!(
            "{stream:?} is neither a Kinesis stream name (1 to 128 of a-z, A-Z, 0-9, _ . -) nor a \
             stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)"
        )
    })?;
    let mut params = HashMap::new();
    match stream_ref.arn {
        Some(arn) => params.insert(STREAM_ARN.to_string(), arn),
        None => params.insert(STREAM_NAME.to_string(), stream_ref.name),
    };
    for (option, param) in [
        ("region", AWS_REGION),
        ("profile", AWS_PROFILE),
        ("endpoint-url", AWS_URL),
    ] {
        if let Some(value) = parsed.value(option) {
            params.insert(param.to_string(), value.to_string());
        }
    }
    Ok(params)
}

/// Connector parameter names in a message, as the options that set them.
const PARAMETER_OPTIONS: &[(&str, &str)] = &[
    (
        "aws.accessKeyId / aws.secretAccessKey / aws.sessionToken",
        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN",
    ),
    (
        "set aws.accessKeyId and aws.secretAccessKey, aws.profile",
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, --profile",
    ),
    ("aws.assumeRoleArn", "an assumed role"),
    (
        "set aws.region (or streamARN)",
        "pass --region (or a stream ARN)",
    ),
    ("parameter \"aws.region\"", "--region"),
    ("parameter \"aws.profile\"", "--profile"),
    ("parameter \"aws.url\"", "--endpoint-url"),
    ("parameter \"sdk.batch.size\"", "--batch-size"),
    ("parameter \"sdk.rate.perSecond\"", "--rate"),
    ("parameter \"partitionKeyFields\"", "--partition-key"),
    ("parameter \"consumerName\"", "--consumer-name"),
    ("parameter \"startTimestamp\"", "--timestamp"),
    ("parameter \"startPosition\"", "--from"),
    ("parameter \"readMode\"", "--mode"),
    (
        "parameter \"shardDiscoveryInterval\"",
        "--discovery-interval",
    ),
    ("parameter \"streamName\"", "STREAM"),
    ("parameter \"streamARN\"", "STREAM"),
    ("aws.region", "--region"),
    ("aws.profile", "--profile"),
    ("aws.url", "--endpoint-url"),
    ("streamName/streamARN", "STREAM"),
];

/// Rewrites a connector message (which names Conduit parameters) in terms of the options.
pub(crate) fn in_option_terms(message: &str) -> String {
    let mut text = message.to_string();
    for (parameter, option) in PARAMETER_OPTIONS {
        text = text.replace(parameter, option);
    }
    text
}

/// Prints `error: MESSAGE` and returns the failure status.
pub(crate) fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// Prints a usage error and where to find help; status 2.
pub(crate) fn usage_error(command: &str, message: impl std::fmt::Display) -> ExitCode {
    eprintln!(
        "error: {message}\n\nRun 'conduit-connector-kinesis {command} --help' for the options."
    );
    ExitCode::from(USAGE)
}

/// Parses a command's `options` and the AWS options.
pub(crate) fn parse_arguments(arguments: &[String], options: &[OptSpec]) -> Result<Parsed, String> {
    let specs: Vec<OptSpec> = options.iter().chain(AWS_OPTIONS).copied().collect();
    args::parse(arguments, &specs)
}

/// A command's command line: its options and the AWS options parsed, then read by `read`.
/// `Err` is the exit status to return at once: after printing the help (`--help`), or a
/// usage error.
pub(crate) fn parse_command<T>(
    command: &str,
    arguments: &[String],
    options: &[OptSpec],
    help: &str,
    read: impl FnOnce(&Parsed) -> Result<T, String>,
) -> Result<(Parsed, T), ExitCode> {
    let parsed = parse_arguments(arguments, options).map_err(|e| usage_error(command, e))?;
    if parsed.help {
        print!("{help}{AWS_HELP}");
        return Err(ExitCode::SUCCESS);
    }
    let read = read(&parsed).map_err(|e| usage_error(command, e))?;
    Ok((parsed, read))
}

/// Logs of the connector's own code go to stderr: warnings by default, `-v` info, `-vv` debug.
pub(crate) fn init_logging(verbosity: u8) {
    let level = match verbosity {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .try_init();
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("could not start the async runtime: {e}"))
}

/// One JSON object written field by field, keeping the order the fields are added in.
#[derive(Default)]
pub(crate) struct JsonLine {
    text: String,
}

impl JsonLine {
    pub(crate) fn new() -> Self {
        JsonLine {
            text: String::from("{"),
        }
    }

    fn key(&mut self, key: &str) {
        if self.text.len() > 1 {
            self.text.push(',');
        }
        self.text.push_str(&json_string(key));
        self.text.push(':');
    }

    pub(crate) fn string(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        self.text.push_str(&json_string(value));
        self
    }

    /// Raw JSON (a number, `null`, an object...).
    pub(crate) fn json(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        self.text.push_str(value);
        self
    }

    /// `"data"` as text when the bytes are UTF-8, else `"dataBase64"`.
    pub(crate) fn data(self, bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) => self.string("data", text),
            Err(_) => self.string(
                "dataBase64",
                &base64::engine::general_purpose::STANDARD.encode(bytes),
            ),
        }
    }

    pub(crate) fn finish(mut self) -> String {
        self.text.push('}');
        self.text
    }
}

pub(crate) fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

/// Buffered stdout. A closed pipe (`| head`) is reported as `Closed` so the command can stop
/// quietly.
pub(crate) struct Output {
    out: std::io::BufWriter<std::io::Stdout>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OutputError {
    Closed,
    Failed(String),
}

impl Output {
    pub(crate) fn new() -> Self {
        Output {
            out: std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout()),
        }
    }

    pub(crate) fn line(&mut self, line: &str) -> Result<(), OutputError> {
        self.out
            .write_all(line.as_bytes())
            .and_then(|_| self.out.write_all(b"\n"))
            .map_err(classify)
    }

    pub(crate) fn flush(&mut self) -> Result<(), OutputError> {
        self.out.flush().map_err(classify)
    }
}

impl Default for Output {
    fn default() -> Self {
        Self::new()
    }
}

fn classify(error: std::io::Error) -> OutputError {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        OutputError::Closed
    } else {
        OutputError::Failed(format!("writing to stdout failed: {error}"))
    }
}

/// Counters the progress line reads.
#[derive(Default)]
pub(crate) struct Counters {
    /// The main count (records sent, records printed).
    pub done: AtomicU64,
    pub failed: AtomicU64,
}

/// Progress on stderr at most once per second: on a terminal one line rewritten in place,
/// otherwise (with `--progress`) one line per report.
pub(crate) struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
    terminal: bool,
}

impl Progress {
    /// Reports while the returned value lives, when `forced` or stderr is a terminal.
    /// `describe(done, failed, rate)` makes the text.
    pub(crate) fn start(
        forced: bool,
        counters: Arc<Counters>,
        describe: impl Fn(u64, u64, f64) -> String + Send + 'static,
    ) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        if !forced && !terminal {
            return Progress {
                task: None,
                terminal,
            };
        }
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut ticker = tokio::time::interval_at(
                tokio::time::Instant::now() + Duration::from_secs(1),
                Duration::from_secs(1),
            );
            let mut last = (Instant::now(), 0u64);
            loop {
                ticker.tick().await;
                let done = counters.done.load(Ordering::Relaxed);
                let failed = counters.failed.load(Ordering::Relaxed);
                let now = Instant::now();
                let elapsed = now.duration_since(last.0).as_secs_f64().max(1e-3);
                let rate = (done - last.1) as f64 / elapsed;
                last = (now, done);
                let text = format!(
                    "{} [{:.0}s]",
                    describe(done, failed, rate),
                    started.elapsed().as_secs_f64()
                );
                let mut err = std::io::stderr().lock();
                let _ = if terminal {
                    write!(err, "\r\x1b[K{text}")
                } else {
                    writeln!(err, "{text}")
                };
                let _ = err.flush();
            }
        });
        Progress {
            task: Some(task),
            terminal,
        }
    }

    /// Stops reporting and ends the line on a terminal.
    pub(crate) fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            if self.terminal {
                eprint!("\r\x1b[K");
            }
        }
    }
}

/// `12.3s`
pub(crate) fn seconds(elapsed: Duration) -> String {
    format!("{:.1}s", elapsed.as_secs_f64())
}

/// `83 records/s`, `0.5 records/s`
pub(crate) fn rate_text(rate: f64) -> String {
    if rate < 10.0 {
        format!("{rate:.1} records/s")
    } else {
        format!("{rate:.0} records/s")
    }
}

/// Records per second over `elapsed`.
pub(crate) fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_keep_field_order_and_mark_binary_data() {
        let line = JsonLine::new()
            .string("shard", "shardId-000000000000")
            .json("n", "3")
            .data("héllo \"x\"\n".as_bytes())
            .finish();
        assert_eq!(
            line,
            r#"{"shard":"shardId-000000000000","n":3,"data":"héllo \"x\"\n"}"#
        );
        let line = JsonLine::new().data(&[0xff, 0x00]).finish();
        assert_eq!(line, r#"{"dataBase64":"/wA="}"#);
    }

    #[test]
    fn messages_name_options() {
        let text = in_option_terms(
            "could not reach the Kinesis endpoint x (y): check aws.url, aws.region and the network",
        );
        assert_eq!(
            text,
            "could not reach the Kinesis endpoint x (y): check --endpoint-url, --region and the network"
        );
        assert_eq!(
            in_option_terms("parameter \"sdk.batch.size\": must be less than 501"),
            "--batch-size: must be less than 501"
        );
    }

    #[test]
    fn streams_by_name_or_arn() {
        let parsed = super::super::args::parse(
            &["--region".to_string(), "eu-west-1".to_string()],
            AWS_OPTIONS,
        )
        .unwrap();
        let p = connection_params("orders", &parsed).unwrap();
        assert_eq!(p[STREAM_NAME], "orders");
        assert_eq!(p[AWS_REGION], "eu-west-1");
        let p = connection_params(
            "arn:aws:kinesis:eu-west-1:123456789012:stream/orders",
            &parsed,
        )
        .unwrap();
        assert!(p.contains_key(STREAM_ARN) && !p.contains_key(STREAM_NAME));
        let e = connection_params("no spaces", &parsed).unwrap_err();
        assert!(e.contains("neither a Kinesis stream name"), "{e}");
    }
}
