//! `produce STREAM FILE`: writes CSV or JSON-lines rows to a stream with the destination's
//! writer (batching, retries of failed entries, partition keys, record formats).
//!
//! Each valid row becomes an OpenCDC record whose `payload.after` is the row as raw JSON (or
//! the raw bytes for `--format raw`) and whose key holds the `--partition-key` fields; the
//! destination's `raw` or `row/json` format and its `partitionKeyFields` key strategy then do
//! exactly what they do in a pipeline.

use std::collections::HashMap;
use std::io::Read;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::args::{flag, optional, value, OptSpec, Parsed};
use super::common::{
    connection_params, fail, in_option_terms, init_logging, parse_command, per_second, rate_text,
    runtime, seconds, usage_error, Counters, JsonLine, Output, OutputError, Progress,
};
use super::input::{read_rows, InputKind, Item, Row};
use crate::aws;
use crate::destination::batch::MAX_ENTRIES;
use crate::destination::format::{
    RecordFormat, ROW_DEFAULT_OP_TIMESTAMP_FIELD, ROW_DEFAULT_OP_TYPE_FIELD,
};
use crate::destination::settings::{DestinationSettings, StreamTarget};
use crate::destination::writer::{
    prepare_record, StreamInfo, Writer, WriterConfig, DEFAULT_MAX_RECORD_SIZE,
};
use crate::plugin::{Record, WriteOutcome};
use crate::proto::opencdc::v1::{data, Change, Data, Operation};
use crate::spec::*;

pub(crate) const HELP: &str = "\
Write CSV or JSON-lines rows to a Kinesis stream with the connector's destination writer.

Usage: conduit-connector-kinesis produce [OPTIONS] STREAM FILE

  STREAM    stream name or stream ARN
  FILE      input file; - reads standard input (then --input is required)

Input:
  --input csv|jsonl       input syntax (default: by extension: .csv; .jsonl, .ndjson, .json)
                          csv:   RFC 4180 with a header row; quoted fields may hold commas,
                                 quotes (\"\") and newlines. Each row becomes one JSON object
                                 keyed by the header. Values are strings unless the header
                                 types the column: id:integer, price:number, active:boolean,
                                 attrs:json (name:string is the default). An empty typed cell
                                 is null.
                          jsonl: one JSON object per line; blank lines are ignored.
  --max-records N         stop after N valid rows

Records:
  --format json|raw       json (default): the row as one compact JSON object (fields in input
                          order, numbers as written).
                          raw: the value of --raw-field (strings as their text, other values
                          as JSON), or without --raw-field the row's own text: the JSON line
                          exactly as in the file, or the CSV record (re-quoted as needed).
  --raw-field FIELD       with --format raw: send only this field
  --partition-key F[,F]   partition key from these fields (values joined with |); default: a
                          random key per record. A row without the field gets a random key
                          (with a warning).
  --op-type[=FIELD]       add the operation as FIELD (default op_type), like change-data
                          agents do (the destination's row/json format)
  --op-timestamp[=FIELD]  add the current time as FIELD (default op_timestamp), RFC 3339 UTC
                          with microseconds (row/json format)
  --operation OP          the operation --op-type writes: create (default), update, delete,
                          snapshot

Sending:
  --batch-size N          most records per PutRecords call, 1 to 500 (default 500). A call
                          carries at most one record per partition key, so a retried record
                          is never overtaken by a later one of its key
  --rate R                most records per second (e.g. 50 or 0.5)
  --dry-run               send nothing: print what would be sent, one JSON line per record
                          ({\"line\",\"stream\",\"partitionKey\",\"data\"} or \"dataBase64\" for
                          binary data); needs no AWS access
  --progress              report progress on stderr once a second (default: only when stderr
                          is a terminal)
  -v, --verbose           log more of the connector's work on stderr (-vv: debug)

Malformed rows (a CSV row with the wrong number of fields, a cell that does not match its
column type, a line that is not a JSON object) are reported on stderr with their line number;
the valid rows are still sent, and the command then exits with status 1. So does a record
Kinesis rejects. Usage errors exit with 2, Ctrl-C stops reading (records in flight are
awaited for up to 5 seconds) and exits with 130.

";

const OPTIONS: &[OptSpec] = &[
    value("input"),
    value("max-records"),
    value("format"),
    value("raw-field"),
    value("partition-key"),
    optional("op-type"),
    optional("op-timestamp"),
    value("operation"),
    value("batch-size"),
    value("rate"),
    flag("dry-run"),
    flag("progress"),
];

/// The batch delay of the writer: long enough for a call to fill up to --batch-size from the
/// reader, short enough not to be noticed.
const BATCH_DELAY: &str = "50ms";
/// Outcomes awaited at most at once; reading pauses beyond this.
const MAX_IN_FLIGHT: usize = 4 * MAX_ENTRIES;
/// How long in-flight records are awaited after Ctrl-C.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Raw,
}

#[derive(Debug)]
struct Options {
    file: String,
    kind: InputKind,
    max_records: Option<u64>,
    format: Format,
    raw_field: Option<String>,
    partition_key: Vec<String>,
    op_type: Option<String>,
    op_timestamp: Option<String>,
    operation: Operation,
    batch_size: usize,
    rate: Option<f64>,
    dry_run: bool,
    progress: bool,
    params: HashMap<String, String>,
}

pub fn run(arguments: &[String]) -> ExitCode {
    let (parsed, options) = match parse_command("produce", arguments, OPTIONS, HELP, options) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let config = match writer_setup(&options) {
        Ok(config) => config,
        Err(e) => return usage_error("produce", e),
    };
    init_logging(parsed.verbosity);
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => return fail(e),
    };
    let code = runtime.block_on(produce(options, config));
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

fn options(parsed: &Parsed) -> Result<Options, String> {
    let [stream, file] = parsed.positionals.as_slice() else {
        return Err(format!(
            "expected STREAM and FILE, got {} argument{}",
            parsed.positionals.len(),
            if parsed.positionals.len() == 1 {
                ""
            } else {
                "s"
            }
        ));
    };
    let kind = match parsed.value("input") {
        Some(v) => {
            InputKind::from_option(v).ok_or_else(|| format!("--input {v:?} is not csv or jsonl"))?
        }
        None if file == "-" => {
            return Err("reading standard input (-) needs --input csv or --input jsonl".into())
        }
        None => InputKind::from_path(file).ok_or_else(|| {
            format!(
                "cannot tell the syntax of {file:?} from its extension (.csv, .jsonl, .ndjson, \
                 .json): pass --input csv or --input jsonl"
            )
        })?,
    };
    let format = match parsed.value("format").unwrap_or("json") {
        "json" => Format::Json,
        "raw" => Format::Raw,
        other => return Err(format!("--format {other:?} is not json or raw")),
    };
    let raw_field = parsed.value("raw-field").map(str::to_string);
    if raw_field.is_some() && format != Format::Raw {
        return Err("--raw-field only applies to --format raw".into());
    }
    let field_option = |name: &str, default: &str| -> Result<Option<String>, String> {
        if !parsed.has(name) {
            return Ok(None);
        }
        let field = parsed.value(name).unwrap_or(default);
        if field.is_empty() || field.contains([',', '=']) {
            return Err(format!(
                "--{name}={field:?}: give a field name without ',' or '='"
            ));
        }
        Ok(Some(field.to_string()))
    };
    let op_type = field_option("op-type", ROW_DEFAULT_OP_TYPE_FIELD)?;
    let op_timestamp = field_option("op-timestamp", ROW_DEFAULT_OP_TIMESTAMP_FIELD)?;
    if (op_type.is_some() || op_timestamp.is_some()) && format == Format::Raw {
        return Err(
            "--op-type and --op-timestamp add fields to JSON rows: use --format json".into(),
        );
    }
    let operation = match parsed.value("operation") {
        None => Operation::Create,
        Some(_) if op_type.is_none() => {
            return Err("--operation is what --op-type writes: add --op-type".into())
        }
        Some("create") => Operation::Create,
        Some("update") => Operation::Update,
        Some("delete") => Operation::Delete,
        Some("snapshot") => Operation::Snapshot,
        Some(other) => {
            return Err(format!(
                "--operation {other:?} is not create, update, delete or snapshot"
            ))
        }
    };
    let partition_key: Vec<String> = match parsed.value("partition-key") {
        None => Vec::new(),
        Some(list) => {
            let fields: Vec<String> = list
                .split(',')
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty())
                .collect();
            if fields.is_empty() {
                return Err("--partition-key names no field".into());
            }
            fields
        }
    };
    let batch_size = parsed
        .parsed("batch-size", "a whole number from 1 to 500", |s| {
            s.parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_ENTRIES).contains(n))
        })?
        .unwrap_or(MAX_ENTRIES);
    let rate = parsed.parsed("rate", "a positive number of records per second", |s| {
        s.parse::<f64>().ok().filter(|r| r.is_finite() && *r > 0.0)
    })?;
    let max_records = parsed.parsed("max-records", "a whole number", |s| s.parse::<u64>().ok())?;
    Ok(Options {
        file: file.clone(),
        kind,
        max_records,
        format,
        raw_field,
        partition_key,
        op_type,
        op_timestamp,
        operation,
        batch_size,
        rate,
        dry_run: parsed.has("dry-run"),
        progress: parsed.has("progress"),
        params: connection_params(stream, parsed)?,
    })
}

/// The destination's settings for these options (the parameters a pipeline would set), and
/// the writer configuration the destination would build from them.
fn writer_setup(options: &Options) -> Result<(DestinationSettings, WriterConfig), String> {
    let mut raw = options.params.clone();
    let mut set = |name: &str, value: String| raw.insert(name.to_string(), value);
    set(SDK_BATCH_SIZE, options.batch_size.to_string());
    set(SDK_BATCH_DELAY, BATCH_DELAY.to_string());
    if let Some(rate) = options.rate {
        set(SDK_RATE_PER_SECOND, rate.to_string());
    }
    if !options.partition_key.is_empty() {
        set(PARTITION_KEY_FIELDS, options.partition_key.join(","));
    }
    if options.op_type.is_some() || options.op_timestamp.is_some() {
        set(SDK_RECORD_FORMAT, "row/json".into());
        set(
            SDK_RECORD_FORMAT_OPTIONS,
            format!(
                "op.type.field={},op.timestamp.field={}",
                options.op_type.as_deref().unwrap_or(""),
                options.op_timestamp.as_deref().unwrap_or("")
            ),
        );
    } else {
        set(SDK_RECORD_FORMAT, "raw".into());
    }
    set(SDK_SCHEMA_EXTRACT_PAYLOAD, "false".into());
    set(SDK_SCHEMA_EXTRACT_KEY, "false".into());

    let message = |e: crate::config::ConfigError| in_option_terms(&e.to_string());
    let values = crate::config::validate(destination_params(), &raw).map_err(message)?;
    let settings = DestinationSettings::from_values(&values).map_err(message)?;
    let format =
        RecordFormat::from_settings(&settings.format, &settings.format_options).map_err(message)?;
    let config = WriterConfig {
        // produce writes to one existing stream, and its rows are not schema-encoded.
        auto_create: None,
        ..WriterConfig::from_settings(&settings, Arc::new(format), None)
    };
    Ok((settings, config))
}

/// What each row becomes, and the rows without a partition key seen so far.
struct Encoder<'a> {
    options: &'a Options,
    source: String,
    keyless: u64,
}

impl Encoder<'_> {
    fn record(&mut self, row: Row) -> Result<Record, String> {
        let data = match (self.options.format, &self.options.raw_field) {
            (Format::Json, _) => row.json.into_bytes(),
            (Format::Raw, None) => row.raw,
            (Format::Raw, Some(field)) => match row.fields.get(field) {
                None | Some(Value::Null) => {
                    return Err(format!("the row has no field {field:?} (--raw-field)"))
                }
                Some(Value::String(text)) => text.clone().into_bytes(),
                Some(other) => other.to_string().into_bytes(),
            },
        };
        let key = if self.options.partition_key.is_empty() {
            None
        } else {
            let fields: std::collections::BTreeMap<String, prost_types::Value> = self
                .options
                .partition_key
                .iter()
                .filter_map(|f| row.fields.get(f).map(|v| (f.clone(), to_proto(v))))
                .collect();
            let has_key = self.options.partition_key.iter().any(|f| {
                row.fields
                    .get(f)
                    .is_some_and(|v| !matches!(v, Value::Null) && v != "")
            });
            if !has_key {
                self.keyless += 1;
                if self.keyless == 1 {
                    eprintln!(
                        "warning: line {} of {}: no value for --partition-key {}; such rows get a \
                         random partition key",
                        row.line,
                        self.source,
                        self.options.partition_key.join(",")
                    );
                }
            }
            Some(Data {
                data: Some(data::Data::StructuredData(prost_types::Struct { fields })),
            })
        };
        Ok(Record {
            position: format!("{} line {}", self.source, row.line).into_bytes(),
            operation: self.options.operation as i32,
            metadata: Default::default(),
            key,
            payload: Some(Change {
                before: None,
                after: Some(Data {
                    data: Some(data::Data::RawData(data.into())),
                }),
            }),
        })
    }
}

fn to_proto(value: &Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(to_proto).collect(),
        }),
        Value::Object(fields) => Kind::StructValue(prost_types::Struct {
            fields: fields
                .iter()
                .map(|(k, v)| (k.clone(), to_proto(v)))
                .collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

fn open_input(file: &str) -> Result<Box<dyn Read + Send>, String> {
    if file == "-" {
        return Ok(Box::new(std::io::stdin()));
    }
    std::fs::File::open(file)
        .map(|f| Box::new(f) as Box<dyn Read + Send>)
        .map_err(|e| format!("cannot open {file:?}: {e}"))
}

/// Counts of one run, for the summary and the exit status.
#[derive(Default)]
struct Tally {
    malformed: u64,
    fatal: bool,
    interrupted: bool,
}

fn report_malformed(source: &str, tally: &mut Tally, line: u64, message: &str) {
    tally.malformed += 1;
    eprintln!("error: line {line} of {source}: {message}");
}

async fn produce(
    options: Options,
    (settings, config): (DestinationSettings, WriterConfig),
) -> ExitCode {
    let input = match open_input(&options.file) {
        Ok(input) => input,
        Err(e) => return fail(e),
    };
    let source = if options.file == "-" {
        "stdin".to_string()
    } else {
        options.file.clone()
    };
    let (items_tx, items) = mpsc::channel::<Item>(1024);
    let (kind, max) = (options.kind, options.max_records);
    // A plain thread: a blocking read of stdin must not hold up the runtime's shutdown.
    std::thread::spawn(move || {
        read_rows(input, kind, max, |item| {
            items_tx.blocking_send(item).is_ok()
        })
    });
    let encoder = Encoder {
        options: &options,
        source,
        keyless: 0,
    };
    if options.dry_run {
        dry_run(encoder, &config, items).await
    } else {
        send(encoder, &settings, config, items).await
    }
}

async fn dry_run(
    mut encoder: Encoder<'_>,
    config: &WriterConfig,
    mut items: mpsc::Receiver<Item>,
) -> ExitCode {
    let mut out = Output::new();
    let mut tally = Tally::default();
    let mut encoded = 0u64;
    while let Some(item) = items.recv().await {
        let row = match item {
            Item::Row(row) => row,
            Item::Malformed(e) => {
                report_malformed(&encoder.source, &mut tally, e.line, &e.message);
                continue;
            }
            Item::Fatal(e) => {
                eprintln!("error: {}: {e}", encoder.source);
                tally.fatal = true;
                break;
            }
        };
        let line = row.line;
        let prepared = encoder
            .record(row)
            .and_then(|record| prepare_record(config, &record).map_err(|e| e.to_string()));
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(e) => {
                report_malformed(&encoder.source, &mut tally, line, &e);
                continue;
            }
        };
        let size = prepared.data.len() + prepared.partition_key.len();
        if size > DEFAULT_MAX_RECORD_SIZE {
            eprintln!(
                "warning: line {line} of {}: the record is {size} bytes (data plus partition key), \
                 over Kinesis' default limit of {DEFAULT_MAX_RECORD_SIZE} bytes",
                encoder.source
            );
        }
        let json = JsonLine::new()
            .json("line", &line.to_string())
            .string("stream", &prepared.stream.name)
            .string("partitionKey", &prepared.partition_key)
            .data(&prepared.data)
            .finish();
        match out.line(&json) {
            Ok(()) => encoded += 1,
            Err(OutputError::Closed) => return ExitCode::SUCCESS,
            Err(OutputError::Failed(e)) => return fail(e),
        }
    }
    if let Err(OutputError::Failed(e)) = out.flush() {
        return fail(e);
    }
    eprintln!(
        "produce --dry-run: {encoded} record{} encoded, nothing sent{}",
        plural(encoded),
        problems(&tally, 0)
    );
    exit_status(&tally, 0)
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn problems(tally: &Tally, failed: u64) -> String {
    let mut text = String::new();
    if tally.malformed > 0 {
        text.push_str(&format!(
            "; {} malformed row{} not sent (reported above)",
            tally.malformed,
            plural(tally.malformed)
        ));
    }
    if failed > 0 {
        text.push_str(&format!(
            "; {failed} record{} failed (reported above)",
            plural(failed)
        ));
    }
    if tally.fatal {
        text.push_str("; the input could not be read to its end");
    }
    if tally.interrupted {
        text.push_str("; interrupted");
    }
    text
}

fn exit_status(tally: &Tally, failed: u64) -> ExitCode {
    if tally.interrupted {
        ExitCode::from(130)
    } else if tally.malformed > 0 || failed > 0 || tally.fatal {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Counts (and reports) the outcomes of `count` records submitted together.
async fn settle(count: usize, receiver: oneshot::Receiver<Vec<WriteOutcome>>, counters: &Counters) {
    match receiver.await {
        Ok(outcomes) => {
            for outcome in outcomes {
                match outcome {
                    Ok(()) => counters.done.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("error: {e}");
                        counters.failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }
        Err(_) => {
            counters.failed.fetch_add(count as u64, Ordering::Relaxed);
            eprintln!(
                "error: the writer stopped before {count} record{} were written",
                plural(count as u64)
            );
        }
    }
}

async fn send(
    mut encoder: Encoder<'_>,
    settings: &DestinationSettings,
    config: WriterConfig,
    mut items: mpsc::Receiver<Item>,
) -> ExitCode {
    let StreamTarget::Fixed(stream) = &settings.target else {
        return fail("the stream is not a fixed stream");
    };
    let connection = match aws::connect_kinesis(&settings.aws).await {
        Ok(connection) => connection,
        Err(e) => return fail(in_option_terms(&e.to_string())),
    };
    let endpoint = connection.describe_endpoint();
    let summary = match aws::describe_stream(&connection.client, stream, &endpoint).await {
        Ok(summary) => summary,
        Err(e) => return fail(in_option_terms(&e.to_string())),
    };
    tracing::info!(stream = %summary.name, status = %summary.status, open_shards = summary.open_shards, %endpoint, "connected");
    let info = StreamInfo::new(settings.max_record_size, summary.max_record_size_kib);
    let batch_size = config.limits.max_entries;
    let writer = match Writer::connect(connection, config, vec![(stream.clone(), info)]) {
        Ok(writer) => writer,
        Err(e) => return fail(e),
    };

    let counters = Arc::new(Counters::default());
    let progress = Progress::start(
        encoder.options.progress,
        counters.clone(),
        |sent, failed, rate| format!("produce: {sent} sent, {failed} failed, {}", rate_text(rate)),
    );
    // Outcomes are awaited in order by their own task, so counts and errors show up as soon
    // as they are known; at most MAX_IN_FLIGHT records are outstanding (reading waits beyond
    // that), in chunks of at most batch_size.
    type Outcomes = (usize, oneshot::Receiver<Vec<WriteOutcome>>);
    let (outcomes_tx, mut outcomes) =
        mpsc::channel::<Outcomes>((MAX_IN_FLIGHT / batch_size.max(1)).max(1));
    let settler = {
        let counters = counters.clone();
        tokio::spawn(async move {
            while let Some((count, outcome)) = outcomes.recv().await {
                settle(count, outcome, &counters).await;
            }
        })
    };
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut submitted = 0u64;
    let mut chunk: Vec<Record> = Vec::with_capacity(batch_size);
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    'reading: loop {
        let item = tokio::select! {
            biased;
            _ = &mut interrupt => { tally.interrupted = true; break; }
            item = items.recv() => item,
        };
        let last = match item {
            None => true,
            Some(Item::Row(row)) => {
                let line = row.line;
                match encoder.record(row) {
                    Ok(record) => chunk.push(record),
                    Err(e) => report_malformed(&encoder.source, &mut tally, line, &e),
                }
                false
            }
            Some(Item::Malformed(e)) => {
                report_malformed(&encoder.source, &mut tally, e.line, &e.message);
                false
            }
            Some(Item::Fatal(e)) => {
                eprintln!("error: {}: {e}", encoder.source);
                tally.fatal = true;
                true
            }
        };
        if !chunk.is_empty() && (last || chunk.len() >= batch_size || items.is_empty()) {
            let count = chunk.len();
            let outcome = writer.submit(std::mem::take(&mut chunk));
            submitted += count as u64;
            tokio::select! {
                biased;
                _ = &mut interrupt => { tally.interrupted = true; break 'reading; }
                _ = outcomes_tx.send((count, outcome)) => {}
            }
        }
        if last {
            break;
        }
    }
    drop(outcomes_tx);
    let settled = if tally.interrupted {
        tokio::time::timeout(INTERRUPT_GRACE, settler).await.is_ok()
    } else {
        let _ = settler.await;
        true
    };
    let abandoned = if settled {
        0
    } else {
        submitted.saturating_sub(
            counters.done.load(Ordering::Relaxed) + counters.failed.load(Ordering::Relaxed),
        )
    };
    drop(writer);
    progress.stop();
    let elapsed = started.elapsed();
    let sent = counters.done.load(Ordering::Relaxed);
    let failed = counters.failed.load(Ordering::Relaxed);
    if encoder.keyless > 1 {
        eprintln!(
            "warning: {} rows had no value for --partition-key and got random partition keys",
            encoder.keyless
        );
    }
    if abandoned > 0 {
        eprintln!(
            "warning: interrupted with {abandoned} record{} not confirmed; they may or may not \
             have been written",
            plural(abandoned)
        );
    }
    eprintln!(
        "produce: sent {sent} record{} to stream {:?} in {} ({}){}",
        plural(sent),
        summary.name,
        seconds(elapsed),
        rate_text(per_second(sent, elapsed)),
        problems(&tally, failed)
    );
    exit_status(&tally, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options_for(args: &[&str]) -> Result<Options, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        options(&super::super::common::parse_arguments(&args, OPTIONS)?)
    }

    fn row(json: &str) -> Row {
        let Value::Object(fields) = serde_json::from_str(json).unwrap() else {
            panic!()
        };
        Row {
            line: 7,
            json: json.to_string(),
            fields,
            raw: format!(" {json} ").into_bytes(),
        }
    }

    fn prepared(
        args: &[&str],
        json: &str,
    ) -> Result<crate::destination::writer::PreparedRecord, String> {
        let options = options_for(args)?;
        let (_, config) = writer_setup(&options)?;
        let mut encoder = Encoder {
            options: &options,
            source: "in.jsonl".into(),
            keyless: 0,
        };
        let record = encoder.record(row(json))?;
        assert_eq!(record.position, b"in.jsonl line 7");
        prepare_record(&config, &record).map_err(|e| e.to_string())
    }

    #[test]
    fn option_rules() {
        let o = options_for(&["s", "a.csv"]).unwrap();
        assert_eq!(
            (o.kind, o.format, o.batch_size),
            (InputKind::Csv, Format::Json, 500)
        );
        let e = options_for(&["s", "-"]).unwrap_err();
        assert!(e.contains("--input"), "{e}");
        let e = options_for(&["s", "a.txt"]).unwrap_err();
        assert!(e.contains("--input"), "{e}");
        let e = options_for(&["s", "a.csv", "--batch-size", "501"]).unwrap_err();
        assert!(e.contains("--batch-size"), "{e}");
        let e = options_for(&["s", "a.csv", "--rate", "0"]).unwrap_err();
        assert!(e.contains("--rate"), "{e}");
        let e = options_for(&["s", "a.csv", "--format", "raw", "--op-type"]).unwrap_err();
        assert!(e.contains("--format json"), "{e}");
        let e = options_for(&["s", "a.csv", "--raw-field", "x"]).unwrap_err();
        assert!(e.contains("--format raw"), "{e}");
        let e = options_for(&["s", "a.csv", "--operation", "delete"]).unwrap_err();
        assert!(e.contains("--op-type"), "{e}");
        let e = options_for(&["bad name", "a.csv"]).unwrap_err();
        assert!(e.contains("stream name"), "{e}");
        let e = options_for(&["s"]).unwrap_err();
        assert!(e.contains("STREAM and FILE"), "{e}");
        let o = options_for(&[
            "s",
            "-",
            "--input",
            "jsonl",
            "--op-type=kind",
            "--op-timestamp",
        ])
        .unwrap();
        assert_eq!(o.op_type.as_deref(), Some("kind"));
        assert_eq!(o.op_timestamp.as_deref(), Some("op_timestamp"));
    }

    #[test]
    fn records_as_the_destination_writes_them() {
        let p = prepared(
            &["s", "a.jsonl", "--partition-key", "id"],
            r#"{"id":7,"b":"x"}"#,
        )
        .unwrap();
        assert_eq!(p.partition_key, "7");
        assert_eq!(p.data, br#"{"id":7,"b":"x"}"#);
        assert_eq!(p.stream.name, "s");
        let p = prepared(
            &["s", "a.jsonl", "--partition-key", "t, id"],
            r#"{"id":7,"t":"acme"}"#,
        )
        .unwrap();
        assert_eq!(p.partition_key, "acme|7");
        // No key: random.
        let a = prepared(&["s", "a.jsonl"], r#"{"id":7}"#).unwrap();
        assert_eq!(a.partition_key.len(), 32);
        // Raw: the line as it is, or one field.
        let p = prepared(&["s", "a.jsonl", "--format", "raw"], r#"{"id":7}"#).unwrap();
        assert_eq!(p.data, br#" {"id":7} "#);
        let p = prepared(
            &["s", "a.jsonl", "--format", "raw", "--raw-field", "msg"],
            r#"{"msg":"hello"}"#,
        )
        .unwrap();
        assert_eq!(p.data, b"hello");
        let e = prepared(
            &["s", "a.jsonl", "--format", "raw", "--raw-field", "nope"],
            r#"{"msg":"hello"}"#,
        )
        .unwrap_err();
        assert!(e.contains("no field \"nope\""), "{e}");
        // row/json: the operation and the time come first.
        let p = prepared(
            &[
                "s",
                "a.jsonl",
                "--op-type",
                "--operation",
                "delete",
                "--op-timestamp=ts",
            ],
            r#"{"id":7,"b":1.50}"#,
        )
        .unwrap();
        let text = String::from_utf8(p.data).unwrap();
        assert!(text.starts_with(r#"{"op_type":"delete","ts":""#), "{text}");
        assert!(text.ends_with(r#"Z","id":7,"b":1.50}"#), "{text}");
        let p = prepared(&["s", "a.jsonl", "--op-type"], r#"{"id":7}"#).unwrap();
        assert_eq!(p.data, br#"{"op_type":"create","id":7}"#);
    }
}
