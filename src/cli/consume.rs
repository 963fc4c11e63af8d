//! `consume STREAM`: reads every shard with the source's engine (enhanced fan-out or polling,
//! following resharding parents-first, de-aggregating KPL records) and prints one JSON line
//! per record.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::args::{flag, value, OptSpec, Parsed};
use super::common::{
    connection_params, fail, in_option_terms, init_logging, parse_command, per_second, rate_text,
    runtime, seconds, Counters, JsonLine, Output, OutputError, Progress,
};
use crate::config::gosyntax::parse_duration;
use crate::plugin::Record;
use crate::proto::opencdc::v1::data;
use crate::source::consumer;
use crate::source::engine::Engine;
use crate::source::engine_config;
use crate::source::position::Position;
use crate::source::records::{META_PARTITION_KEY, META_SEQUENCE, META_SHARD, META_SUB_SEQUENCE};
use crate::source::settings::{parse_rfc3339_millis, ConsumerChoice, ReadMode, SourceSettings};
use crate::spec::*;

pub(crate) const HELP: &str = "\
Read every shard of a Kinesis stream with the connector's source engine and print one JSON line
per record on stdout:

  {\"shard\":\"shardId-000000000000\",\"sequence\":\"4959...\",\"partitionKey\":\"k1\",
   \"data\":\"...\",\"arrival\":\"2026-01-02T03:04:05.678Z\"}

\"data\" is the record's data as text when it is UTF-8; otherwise the line has \"dataBase64\"
instead. Records aggregated by the Kinesis Producer Library are split into their user records,
which carry \"subSequence\" (their index in the aggregate). Shards are followed through
resharding: a child shard is read only after its parents, so records of one partition key come
in order.

Usage: conduit-connector-kinesis consume [OPTIONS] STREAM

  STREAM    stream name or stream ARN

Options:
  --from trim_horizon|latest|at_timestamp
                          where to start in each shard (default trim_horizon: the oldest
                          record kept)
  --timestamp RFC3339     with at_timestamp (implied when --from is not given), e.g.
                          2026-11-01T00:00:00Z
  --duration D            stop after reading for D (Go syntax: 30s, 1m30s, 2h); default: until
                          Ctrl-C
  --max-records N         stop after N records
  --mode fanout|polling   enhanced fan-out (default) or GetRecords polling
  --consumer-name NAME    fanout: the enhanced fan-out consumer to use, registered when missing
                          and kept for the next run (default conduit-connector-kinesis-cli);
                          runs at the same time need different names
  --deregister            fanout: deregister the consumer when done
  --discovery-interval D  how often the shard list is refreshed to find new shards (default 5s)
  --progress              report progress on stderr once a second: records, rate and how far
                          behind the newest records reading is (largest and median
                          MillisBehindLatest, the shard furthest behind, shards read)
                          (default: only when stderr is a terminal)
  -v, --verbose           log more of the connector's work on stderr (-vv: debug)

Ctrl-C stops cleanly (exit status 0). A summary goes to stderr, never to stdout.

";

const OPTIONS: &[OptSpec] = &[
    value("from"),
    value("timestamp"),
    value("duration"),
    value("max-records"),
    value("mode"),
    value("consumer-name"),
    flag("deregister"),
    value("discovery-interval"),
    flag("progress"),
];

pub(crate) const DEFAULT_CONSUMER_NAME: &str = "conduit-connector-kinesis-cli";
const DEFAULT_DISCOVERY_INTERVAL: &str = "5s";

#[derive(Debug)]
struct Options {
    duration: Option<Duration>,
    max_records: Option<u64>,
    deregister: bool,
    progress: bool,
    settings: SourceSettings,
}

pub fn run(arguments: &[String]) -> ExitCode {
    let (parsed, options) = match parse_command("consume", arguments, OPTIONS, HELP, options) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    init_logging(parsed.verbosity);
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => return fail(e),
    };
    let code = runtime.block_on(consume(options));
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

fn options(parsed: &Parsed) -> Result<Options, String> {
    let [stream] = parsed.positionals.as_slice() else {
        return Err(format!(
            "expected STREAM, got {} arguments",
            parsed.positionals.len()
        ));
    };
    let mut raw = connection_params(stream, parsed)?;
    let mut set = |name: &str, value: &str| raw.insert(name.to_string(), value.to_string());

    let from = match (parsed.value("from"), parsed.value("timestamp")) {
        (None, Some(_)) => "at_timestamp",
        (Some(from @ ("trim_horizon" | "latest")), None) => from,
        (Some(from @ ("trim_horizon" | "latest")), Some(_)) => {
            return Err(format!(
                "--timestamp is only used with --from at_timestamp, not {from}"
            ))
        }
        (Some("at_timestamp"), None) => {
            return Err("--from at_timestamp needs --timestamp (RFC 3339)".into())
        }
        (Some("at_timestamp"), Some(_)) => "at_timestamp",
        (Some(other), _) => {
            return Err(format!(
                "--from {other:?} is not trim_horizon, latest or at_timestamp"
            ))
        }
        (None, None) => "trim_horizon",
    };
    set(START_POSITION, from);
    if let Some(timestamp) = parsed.value("timestamp") {
        if parse_rfc3339_millis(timestamp).is_none() {
            return Err(format!(
                "--timestamp {timestamp:?} is not an RFC 3339 time such as 2026-11-01T00:00:00Z"
            ));
        }
        set(START_TIMESTAMP, timestamp);
    }
    let mode = parsed.value("mode").unwrap_or("fanout");
    match mode {
        "fanout" => {
            set(
                CONSUMER_NAME,
                parsed
                    .value("consumer-name")
                    .unwrap_or(DEFAULT_CONSUMER_NAME),
            );
        }
        "polling" => {
            if parsed.has("consumer-name") || parsed.has("deregister") {
                return Err("--consumer-name and --deregister are for --mode fanout".into());
            }
        }
        other => return Err(format!("--mode {other:?} is not fanout or polling")),
    }
    set(READ_MODE, mode);
    let go_duration = |text: &str| parse_duration(text).and_then(|d| d.to_std());
    let discovery = parsed
        .value("discovery-interval")
        .unwrap_or(DEFAULT_DISCOVERY_INTERVAL);
    if go_duration(discovery).is_none_or(|d| d < Duration::from_secs(1)) {
        return Err(format!(
            "--discovery-interval {discovery:?} is not a duration of at least 1s, such as 5s"
        ));
    }
    set(SHARD_DISCOVERY_INTERVAL, discovery);
    set(DEAGGREGATE, "true");
    set(UNWRAP_OPENCDC, "false");
    let duration = parsed.parsed(
        "duration",
        "a positive duration such as 30s, 1m30s or 2h",
        |s| go_duration(s).filter(|d| !d.is_zero()),
    )?;
    let max_records = parsed.parsed("max-records", "a positive whole number", |s| {
        s.parse::<u64>().ok().filter(|n| *n > 0)
    })?;

    let message = |e: crate::config::ConfigError| in_option_terms(&e.to_string());
    let values = crate::config::validate(source_params(), &raw).map_err(message)?;
    let settings = SourceSettings::from_values(&values).map_err(message)?;
    Ok(Options {
        duration,
        max_records,
        deregister: parsed.has("deregister"),
        progress: parsed.has("progress"),
        settings,
    })
}

/// Why reading ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Duration,
    MaxRecords,
    Interrupted,
    OutputClosed,
}

/// The JSON line for a record the engine returned.
fn record_line(record: &Record) -> String {
    let meta = |key: &str| record.metadata.get(key).unwrap_or("");
    let mut line = JsonLine::new()
        .string("shard", meta(META_SHARD))
        .string("sequence", meta(META_SEQUENCE));
    if let Some(sub) = record.metadata.get(META_SUB_SEQUENCE) {
        line = line.json("subSequence", sub);
    }
    line = line.string("partitionKey", meta(META_PARTITION_KEY));
    let data = match record
        .payload
        .as_ref()
        .and_then(|p| p.after.as_ref())
        .and_then(|d| d.data.as_ref())
    {
        Some(data::Data::RawData(bytes)) => &bytes[..],
        _ => &[],
    };
    line = line.data(data);
    let arrival = record
        .metadata
        .get("opencdc.createdAt")
        .and_then(|nanos| nanos.parse::<i128>().ok())
        .and_then(format_arrival);
    match arrival {
        Some(text) => line.string("arrival", &text),
        None => line.json("arrival", "null"),
    }
    .finish()
}

/// Nanoseconds since the epoch as RFC 3339 UTC with milliseconds.
fn format_arrival(nanos: i128) -> Option<String> {
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    time.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .ok()
}

async fn consume(options: Options) -> ExitCode {
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    let settings = &options.settings;
    let setup = async {
        let (connection, summary) = settings
            .connection
            .open()
            .await
            .map_err(|e| in_option_terms(&e.to_string()))?;
        let config = engine_config(settings, &connection, &summary.arn, DEFAULT_CONSUMER_NAME)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((connection.client, summary, config))
    };
    let (client, summary, config) = tokio::select! {
        result = setup => match result {
            Ok(ready) => ready,
            Err(e) => return fail(e),
        },
        _ = &mut interrupt => {
            eprintln!("consume: interrupted before reading started");
            return ExitCode::SUCCESS;
        }
    };
    // `options` asks for no unwrapping: the lines show the records' own data.
    debug_assert!(!config.unwrap_opencdc);
    let engine = Engine::start(
        config,
        Position::new(settings.connection.stream.name.clone()),
    );

    let counters = Arc::new(Counters::default());
    let lag = engine.lag_board();
    let progress = Progress::start(
        options.progress,
        counters.clone(),
        move |records, _, rate| {
            format!(
                "consume: {records} records, {}, {}",
                rate_text(rate),
                lag.summary()
            )
        },
    );
    let started = Instant::now();
    let deadline = options.duration.map(|d| tokio::time::Instant::now() + d);
    let mut out = Output::new();
    let mut shards: BTreeSet<String> = BTreeSet::new();
    let mut printed = 0u64;
    let mut failure = None;
    let stop = 'reading: loop {
        let until_deadline = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        let records = tokio::select! {
            biased;
            _ = &mut interrupt => break Stop::Interrupted,
            _ = until_deadline => break Stop::Duration,
            records = engine.read() => records,
        };
        let records = match records {
            Ok(records) => records,
            Err(e) => {
                failure = Some(format!("reading stopped: {e}"));
                break Stop::Interrupted;
            }
        };
        for record in &records {
            if options.max_records.is_some_and(|max| printed >= max) {
                break;
            }
            match out.line(&record_line(record)) {
                Ok(()) => {}
                Err(OutputError::Closed) => break 'reading Stop::OutputClosed,
                Err(OutputError::Failed(e)) => {
                    failure = Some(e);
                    break 'reading Stop::OutputClosed;
                }
            }
            printed += 1;
            if let Some(shard) = record.metadata.get(META_SHARD) {
                if !shards.contains(shard) {
                    shards.insert(shard.to_string());
                }
            }
        }
        counters.done.store(printed, Ordering::Relaxed);
        match out.flush() {
            Ok(()) => {}
            Err(OutputError::Closed) => break Stop::OutputClosed,
            Err(OutputError::Failed(e)) => {
                failure = Some(e);
                break Stop::OutputClosed;
            }
        }
        if options.max_records.is_some_and(|max| printed >= max) {
            break Stop::MaxRecords;
        }
    };
    let _ = out.flush();
    drop(engine);
    progress.stop();
    let elapsed = started.elapsed();
    if options.deregister {
        if let ReadMode::FanOut(ConsumerChoice::Named(name)) = &settings.mode {
            let name = name.as_deref().unwrap_or(DEFAULT_CONSUMER_NAME);
            if let Err(e) = consumer::deregister(&client, &summary.arn, name).await {
                eprintln!("warning: {e}");
            }
        }
    }
    let why = match stop {
        Stop::Duration => "the duration ended",
        Stop::MaxRecords => "--max-records reached",
        Stop::Interrupted => "interrupted",
        Stop::OutputClosed => "stdout was closed",
    };
    if let Some(e) = failure {
        return fail(e);
    }
    eprintln!(
        "consume: {printed} record{} from {} shard{} of stream {:?} in {} ({}); stopped: {why}",
        if printed == 1 { "" } else { "s" },
        shards.len(),
        if shards.len() == 1 { "" } else { "s" },
        summary.name,
        seconds(elapsed),
        rate_text(per_second(printed, elapsed)),
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::opencdc::v1::{Change, Data};
    use crate::source::settings::InitialPosition;

    fn options_for(args: &[&str]) -> Result<Options, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        options(&super::super::common::parse_arguments(&args, OPTIONS)?)
    }

    #[test]
    fn option_rules() {
        let o = options_for(&["s"]).unwrap();
        assert_eq!(o.settings.initial, InitialPosition::TrimHorizon);
        assert_eq!(
            o.settings.mode,
            ReadMode::FanOut(ConsumerChoice::Named(Some(DEFAULT_CONSUMER_NAME.into())))
        );
        assert_eq!(o.settings.discovery_interval, Duration::from_secs(5));
        assert!(o.settings.deaggregate);
        let o = options_for(&[
            "s",
            "--timestamp",
            "2026-11-01T00:00:01Z",
            "--duration",
            "1m30s",
        ])
        .unwrap();
        assert_eq!(
            o.settings.initial,
            InitialPosition::AtTimestamp(1_793_491_201_000)
        );
        assert_eq!(o.duration, Some(Duration::from_secs(90)));
        let o = options_for(&["s", "--from", "latest", "--mode", "polling"]).unwrap();
        assert_eq!(o.settings.initial, InitialPosition::Latest);
        assert!(matches!(o.settings.mode, ReadMode::Polling { .. }));
        for (args, wanted) in [
            (&["s", "--from", "at_timestamp"][..], "needs --timestamp"),
            (&["s", "--timestamp", "yesterday"][..], "RFC 3339"),
            (
                &[
                    "s",
                    "--from",
                    "latest",
                    "--timestamp",
                    "2026-11-01T00:00:01Z",
                ][..],
                "only used",
            ),
            (&["s", "--from", "start"][..], "--from"),
            (&["s", "--duration", "30"][..], "--duration"),
            (&["s", "--duration", "0s"][..], "--duration"),
            (
                &["s", "--mode", "polling", "--consumer-name", "x"][..],
                "fanout",
            ),
            (&["s", "--consumer-name", "bad name"][..], "--consumer-name"),
            (
                &["s", "--discovery-interval", "100ms"][..],
                "--discovery-interval",
            ),
            (&["s", "--max-records", "0"][..], "--max-records"),
            (&["s", "t"][..], "expected STREAM"),
        ] {
            let e = options_for(args).unwrap_err();
            assert!(e.contains(wanted), "{args:?}: {e}");
        }
    }

    #[test]
    fn lines_for_records() {
        let mut record = Record {
            metadata: [
                (META_SHARD, "shardId-000000000001"),
                (META_SEQUENCE, "4959"),
                (META_SUB_SEQUENCE, "2"),
                (META_PARTITION_KEY, "k\"1"),
                ("opencdc.createdAt", "1700000000123000000"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            payload: Some(Change {
                before: None,
                after: Some(Data {
                    data: Some(data::Data::RawData(b"{\"a\":1}".to_vec().into())),
                }),
            }),
            ..Default::default()
        };
        assert_eq!(
            record_line(&record),
            r#"{"shard":"shardId-000000000001","sequence":"4959","subSequence":2,"partitionKey":"k\"1","data":"{\"a\":1}","arrival":"2023-11-14T22:13:20.123Z"}"#
        );
        record.metadata.remove(META_SUB_SEQUENCE);
        record.metadata.remove("opencdc.createdAt");
        record.payload = Some(Change {
            before: None,
            after: Some(Data {
                data: Some(data::Data::RawData(vec![0xf3, 0x89].into())),
            }),
        });
        assert_eq!(
            record_line(&record),
            r#"{"shard":"shardId-000000000001","sequence":"4959","partitionKey":"k\"1","dataBase64":"84k=","arrival":null}"#
        );
    }
}
