//! Source benchmark: throughput, CPU per record and peak RSS of the plugin binary as a source.
//!
//! Run with `make bench` (both benchmarks) or `cargo bench --bench source` (a release build).
//!
//! The plugin binary is started with the environment Conduit gives it and driven over gRPC like
//! Conduit: Configure → Open → Run, reading record batches and acking every batch at once (one
//! ack request with all of a batch's positions, as Conduit's preview architecture does), then
//! Stop (reading on until the returned position) → Teardown → Shutdown. Every record is
//! checked: no record may be lost or delivered twice.
//!
//! Scenarios:
//!
//! 1. **kinesis-local drain**: a 4-shard stream pre-filled with AWS SDK PutRecords (500 per
//!    call), drained with `readMode=fanout` and with `readMode=polling`. kinesis-local (a
//!    single-threaded JavaScript server) is the bottleneck here, not the connector.
//! 2. **Flow control**: a slow reader (one batch every [`SLOW_READ_PAUSE`], small batches),
//!    once with the default `bufferSize` and once with 500, against 50 kinesis-local shards
//!    with a few hundred records each, and against 50 bench endpoint shards with a practically
//!    unbounded backlog: peak RSS must not follow the backlog.
//! 3. **Ceiling**: a bench endpoint in this process (its own thread, tokio, loopback HTTP/1.1)
//!    serves just enough of the Kinesis API for fan-out reading: DescribeStreamSummary,
//!    ListShards (one open shard), DescribeStreamConsumer / RegisterStreamConsumer (an ACTIVE
//!    consumer) and SubscribeToShard, answered with an AWS event stream (chunked
//!    `application/vnd.amazon.eventstream`) of pre-encoded events with 1 KiB records, as fast as
//!    the client reads. Per event only the sequence-number digits change; the frame's CRC32 is
//!    updated for those bytes alone (CRC linearity), so the endpoint costs little CPU. The same
//!    run measures a **baseline**: this binary re-executed as a child process that subscribes
//!    with the AWS SDK to the same endpoint and only counts records; the plugin is reported as
//!    ratios of it. Baseline and plugin run in alternating rounds (the table shows the median
//!    round), once as Conduit starts them and once pinned to one core (`taskset`), the bench
//!    process on the other.
//!
//! 4. **Shard count** (`source_parts/shards.rs`): the plugin reading 1, 64 and 512 bench
//!    endpoint shards at once: CPU per record, position bytes per record, peak RSS; with
//!    `SOURCE_BENCH_BEFORE_PLUGIN=<path of another plugin build>` that build too, in the same
//!    rounds, for before/after ratios.
//! 5. **Lease coordination** (`source_parts/leases.rs`): N bench endpoint shards read with
//!    `coordination=none` and with `coordination=dynamodb` (dynalite on loopback behind a
//!    proxy that counts the DynamoDB calls by operation): CPU per record each way and the
//!    DynamoDB calls per minute per shard.
//!
//! Sequence numbers of the bench endpoint are laid out like AWS' ([`seq_bases`]), so shards
//! differ from each other as they do on Kinesis; positions' sizes depend on that.
//!
//! Measured per scenario: records, records/s (wall), CPU seconds per 100k records of the
//! measured process (utime+stime from /proc/<pid>/stat) and its peak RSS (VmHWM).
//!
//! Environment knobs: `SOURCE_BENCH_RECORDS` (ceiling, per round, default 300000),
//! `SOURCE_BENCH_WARMUP` (50000), `SOURCE_BENCH_ROUNDS` (5; the table shows the median round), `SOURCE_BENCH_EVENT_RECORDS` (records per event, 500), `SOURCE_BENCH_ONLY=ceiling|
//! drain|flow|shards|leases` (comma-separated), `SOURCE_BENCH_SKIP_BASELINE=1` (profiling),
//! `SOURCE_BENCH_SKIP_KINESIS_LOCAL=1`, `SOURCE_BENCH_DRAIN_RECORDS` (8000),
//! `SOURCE_BENCH_FLOW_PER_SHARD` (300), `SOURCE_BENCH_FLOW_SECS` (20),
//! `SOURCE_BENCH_FLOW_ENDPOINT_SECS` (10), `SOURCE_BENCH_NO_PIN=1` (no pinned ceiling runs); the shard count
//! scenario's own knobs are in `source_parts/shards.rs`.

#[path = "common/mod.rs"]
mod common;
use common::server::LoopbackServer;
use common::{baseline_result, env_u64, pin};

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::{BehaviorVersion, Region};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    PutRecordsRequestEntry, ShardIteratorType, StartingPosition, SubscribeToShardEventStream,
};
use base64::Engine as _;
use conduit_connector_kinesis::proto::connector::v2::source;
use conduit_connector_kinesis::proto::opencdc::v1::{data, Record};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "source_parts/shards.rs"]
mod shards;

#[path = "source_parts/leases.rs"]
mod leases;

use support::kinesis_local::KinesisLocal;
use support::plugin::PluginProcess;

const REGION: &str = "us-east-1";
const ACCESS_KEY_ID: &str = "bench";
const SECRET_ACCESS_KEY: &str = "bench";
/// The bench endpoint's stream, first shard and account.
const STREAM: &str = "bench";
const SHARD: &str = "shardId-000000000000";
const ACCOUNT: &str = "000000000000";
/// Kinesis record payload size in every scenario.
const RECORD_SIZE: usize = 1024;
/// Sequence numbers of the bench endpoint are laid out like those of Kinesis (see
/// [`seq_base`]); the record's index in its shard is the record counter field, which starts
/// [`SEQ_COUNTER_SHIFT`] bits up. Records of one shard differ in the last
/// [`SEQ_COUNTER_DIGITS`] decimal digits only (checked when the bases are made).
const SEQ_COUNTER_DIGITS: usize = 36;
const SEQ_COUNTER_SHIFT: u32 = 80;
/// The most records a shard serves (the flow-control backlog) and the most shards.
const SEQ_MAX_COUNTER: u64 = 1 << 28;
const MAX_SHARDS: usize = 1024;
/// Longest wait for any single answer (a batch, an RPC, a child step).
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// Slow reader of the flow-control scenario: pause after every batch, and records per batch.
const SLOW_READ_PAUSE: Duration = Duration::from_millis(50);
const SLOW_BATCH_SIZE: &str = "10";
const SMALL_BUFFER: &str = "500";
const TARGET_RECORDS_PER_CORE_SECOND: f64 = 150_000.0;

fn main() -> ExitCode {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--baseline-child") {
        return baseline_child(&args[2..]);
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("source bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

// ---------------------------------------------------------------------------------------------
// CRC32 (IEEE, reflected, polynomial 0xEDB88320), table-based, plus the GF(2) arithmetic that
// updates a CRC when a few bytes of a long message change.

const CRC_POLY: u32 = 0xEDB8_8320;

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ CRC_POLY
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// The CRC register after `bytes`, starting from `crc`, without pre- or post-inversion.
fn crc_update_raw(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        crc = CRC_TABLE[((crc ^ b as u32) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

fn crc32(bytes: &[u8]) -> u32 {
    !crc_update_raw(!0, bytes)
}

/// `a * b mod P` for polynomials in the reflected bit order (zlib's `multmodp`).
fn multmodp(a: u32, mut b: u32) -> u32 {
    let mut m = 1u32 << 31;
    let mut p = 0u32;
    loop {
        if a & m != 0 {
            p ^= b;
            if a & (m - 1) == 0 {
                break;
            }
        }
        m >>= 1;
        b = if b & 1 != 0 {
            (b >> 1) ^ CRC_POLY
        } else {
            b >> 1
        };
    }
    p
}

/// `x^(8 * n) mod P`: what appending `n` zero bytes multiplies a raw CRC register by.
fn x8nmodp(mut n: u64) -> u32 {
    // x^(2^k) mod P for k = 3.. (x^8, x^16, ...), squaring as we go.
    let mut square = 1u32 << (31 - 8); // x^8
    let mut p = 1u32 << 31; // x^0
    while n != 0 {
        if n & 1 != 0 {
            p = multmodp(square, p);
        }
        square = multmodp(square, square);
        n >>= 1;
    }
    p
}

// ---------------------------------------------------------------------------------------------
// AWS event stream framing

/// One message: prelude (total length, headers length, prelude CRC), string headers, payload,
/// message CRC. All integers big-endian.
fn encode_message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut header_bytes = Vec::new();
    for (name, value) in headers {
        header_bytes.push(name.len() as u8);
        header_bytes.extend_from_slice(name.as_bytes());
        header_bytes.push(7); // string
        header_bytes.extend_from_slice(&(value.len() as u16).to_be_bytes());
        header_bytes.extend_from_slice(value.as_bytes());
    }
    let total = 12 + header_bytes.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(header_bytes.len() as u32).to_be_bytes());
    let prelude_crc = crc32(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&header_bytes);
    out.extend_from_slice(payload);
    let message_crc = crc32(&out);
    out.extend_from_slice(&message_crc.to_be_bytes());
    out
}

const EVENT_HEADERS: [(&str, &str); 3] = [
    (":event-type", "SubscribeToShardEvent"),
    (":content-type", "application/json"),
    (":message-type", "event"),
];

/// The first message of a subscription on AWS (the SDK reads it if present).
fn initial_response_message() -> Vec<u8> {
    encode_message(
        &[
            (":event-type", "initial-response"),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        b"{}",
    )
}

/// A shard's sequence number with counter 0, split into the digits all its records share and
/// the value of the rest.
struct SeqBase {
    top: String,
    low: u128,
}

/// Sequence numbers as AWS and kinesis-local write them, in hex: version 2, the shard's
/// creation time (9 digits), the shard index (1), a record counter (16), a byte (2), the
/// arrival time (9), the shard index (8) and 2. 56 decimal digits, like Kinesis'; shards of one
/// stream share the high bytes only, which matters for the size of positions.
fn seq_bases() -> &'static [SeqBase] {
    static BASES: std::sync::OnceLock<Vec<SeqBase>> = std::sync::OnceLock::new();
    BASES.get_or_init(|| {
        let created: u64 = 1_767_225_600;
        (0..MAX_SHARDS)
            .map(|shard| {
                let hex = format!(
                    "02{created:09x}{:x}{:016x}00{:09x}{shard:08x}2",
                    shard % 16,
                    0,
                    created + 60 + (shard as u64 % 7)
                );
                let bytes: Vec<u8> = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                    .collect();
                let text = conduit_connector_kinesis::testing::unpack_sequence(&bytes);
                assert_eq!(text.len(), 56, "{text}");
                let (top, low) = text.split_at(56 - SEQ_COUNTER_DIGITS);
                let base = SeqBase {
                    top: top.to_string(),
                    low: low.parse().expect("digits"),
                };
                let highest = base.low + (u128::from(SEQ_MAX_COUNTER) << SEQ_COUNTER_SHIFT);
                assert!(
                    highest < 10u128.pow(SEQ_COUNTER_DIGITS as u32),
                    "shard {shard}: counters would carry into the shared digits"
                );
                base
            })
            .collect()
    })
}

fn seq(shard: usize, counter: u64) -> String {
    let base = &seq_bases()[shard];
    format!(
        "{}{:0width$}",
        base.top,
        base.low + (u128::from(counter) << SEQ_COUNTER_SHIFT),
        width = SEQ_COUNTER_DIGITS
    )
}

/// The index encoded in a bench endpoint sequence number of `shard`.
fn seq_counter(shard: usize, sequence: &str) -> Option<u64> {
    let base = seq_bases().get(shard)?;
    let low: u128 = sequence.strip_prefix(base.top.as_str())?.parse().ok()?;
    let offset = low.checked_sub(base.low)?;
    (offset & ((1u128 << SEQ_COUNTER_SHIFT) - 1) == 0)
        .then_some((offset >> SEQ_COUNTER_SHIFT) as u64)
}

/// The index of `shardId-000000000123`.
fn shard_index(shard: &str) -> Option<usize> {
    shard.strip_prefix("shardId-")?.parse().ok()
}

fn write_counter_digits(out: &mut [u8], shard: usize, counter: u64) {
    let mut v = seq_bases()[shard].low + (u128::from(counter) << SEQ_COUNTER_SHIFT);
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Deterministic pseudo-random bytes.
fn mix(mut x: u64) -> u64 {
    // splitmix64
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn payload_bytes(seed: u64, size: usize) -> Vec<u8> {
    let mut state = mix(seed + 1);
    let mut bytes = Vec::with_capacity(size + 8);
    while bytes.len() < size {
        state = mix(state);
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(size);
    bytes
}

/// Base64 payloads the events cycle through (record `i` uses `i % len`).
struct Payloads(Vec<String>);

impl Payloads {
    fn new(count: usize) -> Payloads {
        Payloads(
            (0..count as u64)
                .map(|i| {
                    base64::engine::general_purpose::STANDARD.encode(payload_bytes(i, RECORD_SIZE))
                })
                .collect(),
        )
    }
}

/// An event message with records `first..first + n`, and the offsets (in the message) of the
/// counter digits of every sequence number in it, the continuation's last.
fn build_event(payloads: &Payloads, shard: usize, first: u64, n: usize) -> (Vec<u8>, Vec<usize>) {
    let mut json = Vec::with_capacity(n * (RECORD_SIZE * 4 / 3 + 160) + 200);
    let mut digit_offsets = Vec::with_capacity(n + 1);
    json.extend_from_slice(b"{\"Records\":[");
    for i in 0..n as u64 {
        let counter = first + i;
        if i > 0 {
            json.push(b',');
        }
        json.extend_from_slice(b"{\"SequenceNumber\":\"");
        digit_offsets.push(json.len() + 56 - SEQ_COUNTER_DIGITS);
        json.extend_from_slice(seq(shard, counter).as_bytes());
        let _ = write!(
            VecWriter(&mut json),
            "\",\"ApproximateArrivalTimestamp\":1767225600.123,\"Data\":\"{}\",\"PartitionKey\":\"pk-{:06}\"}}",
            payloads.0[(i as usize) % payloads.0.len()],
            i
        );
    }
    json.extend_from_slice(b"],\"ContinuationSequenceNumber\":\"");
    digit_offsets.push(json.len() + 56 - SEQ_COUNTER_DIGITS);
    let last = (first + n as u64).saturating_sub(1);
    json.extend_from_slice(seq(shard, last).as_bytes());
    json.extend_from_slice(b"\",\"MillisBehindLatest\":0}");
    let message = encode_message(&EVENT_HEADERS, &json);
    // The payload starts after the prelude and the headers.
    let headers_len = u32::from_be_bytes(message[4..8].try_into().expect("4 bytes")) as usize;
    let payload_start = 12 + headers_len;
    let offsets = digit_offsets.iter().map(|o| payload_start + o).collect();
    (message, offsets)
}

/// An empty event (what Kinesis sends about once per second when there is nothing new).
fn empty_event(continuation: &str) -> Vec<u8> {
    let json =
        format!("{{\"Records\":[],\"ContinuationSequenceNumber\":\"{continuation}\",\"MillisBehindLatest\":0}}");
    encode_message(&EVENT_HEADERS, json.as_bytes())
}

/// `"<hex length>\r\n" + message + "\r\n"`.
fn chunk(message: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", message.len()).into_bytes();
    out.extend_from_slice(message);
    out.extend_from_slice(b"\r\n");
    out
}

/// A full event, encoded once, whose sequence numbers are rewritten in place for every send.
struct EventTemplate {
    /// The whole HTTP chunk.
    chunk: Vec<u8>,
    /// Where the message starts in `chunk`, and its length.
    message_start: usize,
    message_len: usize,
    /// Per sequence number: absolute offset of its counter digits in `chunk`, the CRC factor
    /// for the bytes after them, and which record it belongs to (the continuation: the last).
    windows: Vec<(usize, u32, u64)>,
    records: u64,
    shard: usize,
}

impl EventTemplate {
    fn new(payloads: &Payloads, shard: usize, n: usize) -> EventTemplate {
        let (message, offsets) = build_event(payloads, shard, 0, n);
        let header_len = format!("{:x}\r\n", message.len()).len();
        let message_len = message.len();
        let chunk = chunk(&message);
        let crc_covered = message_len - 4;
        let windows = offsets
            .iter()
            .enumerate()
            .map(|(i, &o)| {
                let after = crc_covered - (o + SEQ_COUNTER_DIGITS);
                (
                    header_len + o,
                    x8nmodp(after as u64),
                    (i as u64).min(n as u64 - 1),
                )
            })
            .collect();
        EventTemplate {
            chunk,
            message_start: header_len,
            message_len,
            windows,
            records: n as u64,
            shard,
        }
    }

    /// Rewrites the event to carry records `first..first + n` and fixes its CRC.
    fn set_first(&mut self, first: u64) -> &[u8] {
        let mut crc_delta = 0u32;
        let mut digits = [0u8; SEQ_COUNTER_DIGITS];
        let mut delta = [0u8; SEQ_COUNTER_DIGITS];
        for &(offset, factor, index) in &self.windows {
            write_counter_digits(&mut digits, self.shard, first + index);
            let current = &mut self.chunk[offset..offset + SEQ_COUNTER_DIGITS];
            if current == digits {
                continue;
            }
            for ((d, old), new) in delta.iter_mut().zip(current.iter()).zip(digits.iter()) {
                *d = old ^ new;
            }
            current.copy_from_slice(&digits);
            crc_delta ^= multmodp(factor, crc_update_raw(0, &delta));
        }
        let crc_at = self.message_start + self.message_len - 4;
        let old = u32::from_be_bytes(self.chunk[crc_at..crc_at + 4].try_into().expect("4 bytes"));
        self.chunk[crc_at..crc_at + 4].copy_from_slice(&(old ^ crc_delta).to_be_bytes());
        &self.chunk
    }
}

/// Checks the CRC code and the in-place update against full encodings.
fn self_test(payloads: &Payloads, per_event: usize) -> Result<(), String> {
    if crc32(b"123456789") != 0xCBF4_3926 {
        return Err("CRC32 check value mismatch".into());
    }
    for shard in [0, 7, MAX_SHARDS - 1] {
        let mut template = EventTemplate::new(payloads, shard, per_event);
        for first in [1u64, 999, 123_456_789, 500] {
            let patched = template.set_first(first).to_vec();
            let (message, _) = build_event(payloads, shard, first, per_event);
            if patched != chunk(&message) {
                return Err(format!(
                    "the patched event for shard {shard}, first={first} differs from a full encoding"
                ));
            }
            if seq_counter(shard, &seq(shard, first)) != Some(first) {
                return Err(format!(
                    "sequence numbers of shard {shard} do not parse back"
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Bench endpoint

#[derive(Default)]
struct EndpointStats {
    subscriptions: AtomicU64,
    records_sent: AtomicU64,
    events_sent: AtomicU64,
    other_calls: AtomicU64,
    rejected: AtomicU64,
}

struct EndpointShared {
    stats: EndpointStats,
    /// Open shards listed by ListShards; every one serves the same records.
    shards: usize,
    /// Records in each shard: indexes `0..total`.
    total: u64,
    per_event: usize,
    payloads: Payloads,
}

struct Endpoint {
    url: String,
    shared: Arc<EndpointShared>,
    server: LoopbackServer,
}

impl Endpoint {
    fn start(shards: usize, total: u64, per_event: usize) -> Result<Endpoint, String> {
        let payloads = Payloads::new(64);
        self_test(&payloads, per_event)?;
        let shared = Arc::new(EndpointShared {
            stats: EndpointStats::default(),
            shards,
            total,
            per_event,
            payloads,
        });
        let served = shared.clone();
        let server =
            LoopbackServer::start(move |socket, _| serve_connection(socket, served.clone()))?;
        Ok(Endpoint {
            url: format!("http://{}", server.addr),
            shared,
            server,
        })
    }

    fn ticks(&self) -> Option<u64> {
        self.server.ticks()
    }

    fn stats(&self) -> &EndpointStats {
        &self.shared.stats
    }
}

struct Head {
    content_length: usize,
    target: String,
    expect_continue: bool,
    close: bool,
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

fn parse_head(head: &[u8]) -> Result<Head, &'static str> {
    let text = std::str::from_utf8(head).map_err(|_| "request head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    if !lines.next().unwrap_or("").starts_with("POST ") {
        return Err("only POST is served");
    }
    let mut parsed = Head {
        content_length: 0,
        target: String::new(),
        expect_continue: false,
        close: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            parsed.content_length = value.parse().map_err(|_| "bad Content-Length")?;
        } else if name.eq_ignore_ascii_case("x-amz-target") {
            parsed.target = value.to_string();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("chunked request bodies are not served");
        } else if name.eq_ignore_ascii_case("expect") {
            parsed.expect_continue = value.eq_ignore_ascii_case("100-continue");
        } else if name.eq_ignore_ascii_case("connection") {
            parsed.close = value.eq_ignore_ascii_case("close");
        }
    }
    Ok(parsed)
}

/// `fmt::Write` into a byte vector.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn shard_id(i: usize) -> String {
    format!("shardId-{i:012}")
}

fn stream_arn() -> String {
    format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{STREAM}")
}

fn consumer_arn(name: &str) -> String {
    format!("{}/consumer/{name}:1767225600", stream_arn())
}

fn consumer_json(name: &str) -> String {
    format!(
        "{{\"ConsumerName\":\"{name}\",\"ConsumerARN\":\"{}\",\"ConsumerStatus\":\"ACTIVE\",\
         \"ConsumerCreationTimestamp\":1767225600,\"StreamARN\":\"{}\"}}",
        consumer_arn(name),
        stream_arn()
    )
}

/// What a request asks for.
enum Answer {
    /// A JSON response.
    Json(&'static str, String),
    /// An event stream of this shard starting at this record index.
    Subscribe(usize, u64),
}

fn answer(head: &Head, body: &[u8], shared: &EndpointShared) -> Answer {
    let operation = head.target.rsplit('.').next().unwrap_or("");
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |member: &str| {
        request
            .get(member)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let stats = &shared.stats;
    match operation {
        "SubscribeToShard" => {
            stats.subscriptions.fetch_add(1, Ordering::Relaxed);
            let position = request.get("StartingPosition");
            let kind = position
                .and_then(|p| p.get("Type"))
                .and_then(|v| v.as_str())
                .unwrap_or("");
            let shard = shard_index(&text("ShardId"))
                .filter(|&i| i < shared.shards)
                .unwrap_or(0);
            let at = position
                .and_then(|p| p.get("SequenceNumber"))
                .and_then(|v| v.as_str())
                .and_then(|s| seq_counter(shard, s));
            let start = match (kind, at) {
                ("AFTER_SEQUENCE_NUMBER", Some(c)) => c + 1,
                ("AT_SEQUENCE_NUMBER", Some(c)) => c,
                ("LATEST", _) => shared.total,
                _ => 0,
            };
            Answer::Subscribe(shard, start.min(shared.total))
        }
        "DescribeStreamSummary" => {
            stats.other_calls.fetch_add(1, Ordering::Relaxed);
            Answer::Json(
                "200 OK",
                format!(
                    "{{\"StreamDescriptionSummary\":{{\"StreamName\":\"{STREAM}\",\
                     \"StreamARN\":\"{}\",\"StreamStatus\":\"ACTIVE\",\
                     \"StreamModeDetails\":{{\"StreamMode\":\"PROVISIONED\"}},\
                     \"RetentionPeriodHours\":24,\"StreamCreationTimestamp\":1767225600,\
                     \"EnhancedMonitoring\":[{{\"ShardLevelMetrics\":[]}}],\"EncryptionType\":\"NONE\",\
                     \"OpenShardCount\":{},\"ConsumerCount\":1}}}}",
                    stream_arn(),
                    shared.shards
                ),
            )
        }
        "ListShards" => {
            stats.other_calls.fetch_add(1, Ordering::Relaxed);
            // Hash key ranges split 0..2^128 evenly.
            let step = u128::MAX / shared.shards as u128;
            let shards: Vec<String> = (0..shared.shards)
                .map(|i| {
                    let low = step * i as u128 + (i > 0) as u128;
                    let high = if i + 1 == shared.shards {
                        u128::MAX
                    } else {
                        step * (i as u128 + 1)
                    };
                    format!(
                        "{{\"ShardId\":\"{}\",\"HashKeyRange\":{{\"StartingHashKey\":\"{low}\",\
                         \"EndingHashKey\":\"{high}\"}},\
                         \"SequenceNumberRange\":{{\"StartingSequenceNumber\":\"{}\"}}}}",
                        shard_id(i),
                        seq(i, 0)
                    )
                })
                .collect();
            Answer::Json("200 OK", format!("{{\"Shards\":[{}]}}", shards.join(",")))
        }
        "DescribeStreamConsumer" => {
            stats.other_calls.fetch_add(1, Ordering::Relaxed);
            let mut name = text("ConsumerName");
            if name.is_empty() {
                name = text("ConsumerARN")
                    .rsplit("/consumer/")
                    .next()
                    .and_then(|s| s.split(':').next())
                    .unwrap_or("bench")
                    .to_string();
            }
            Answer::Json(
                "200 OK",
                format!("{{\"ConsumerDescription\":{}}}", consumer_json(&name)),
            )
        }
        "RegisterStreamConsumer" => {
            stats.other_calls.fetch_add(1, Ordering::Relaxed);
            Answer::Json(
                "200 OK",
                format!("{{\"Consumer\":{}}}", consumer_json(&text("ConsumerName"))),
            )
        }
        _ => {
            stats.rejected.fetch_add(1, Ordering::Relaxed);
            Answer::Json(
                "400 Bad Request",
                format!(
                    "{{\"__type\":\"UnknownOperationException\",\"message\":\"the bench endpoint does not serve {:?}\"}}",
                    head.target
                ),
            )
        }
    }
}

async fn serve_connection(mut socket: TcpStream, shared: Arc<EndpointShared>) {
    const MAX_HEAD: usize = 64 * 1024;
    const MAX_BODY: usize = 1024 * 1024;
    let mut buf = vec![0u8; 64 * 1024];
    let mut filled = 0usize;
    let mut pending: Option<(usize, Head)> = None;
    let mut continued = false;
    loop {
        loop {
            if pending.is_none() {
                let Some(end) = find_head_end(&buf[..filled.min(MAX_HEAD)]) else {
                    if filled >= MAX_HEAD {
                        shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    break;
                };
                match parse_head(&buf[..end]) {
                    Ok(head) if head.content_length <= MAX_BODY => pending = Some((end + 4, head)),
                    _ => {
                        shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
                        let _ = socket
                            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                            .await;
                        return;
                    }
                }
            }
            let Some((head_len, head)) = &pending else {
                break;
            };
            let total = head_len + head.content_length;
            if total > buf.len() {
                buf.resize(total.next_power_of_two(), 0);
            }
            if filled < total {
                if head.expect_continue && !continued {
                    continued = true;
                    if socket
                        .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                break;
            }
            match answer(head, &buf[*head_len..total], &shared) {
                Answer::Subscribe(shard, start) => {
                    // The connection carries the event stream until the client goes away.
                    stream_events(socket, shard, start, shared).await;
                    return;
                }
                Answer::Json(status, body) => {
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nx-amzn-RequestId: bench\r\n\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(response.as_bytes()).await.is_err() || head.close {
                        return;
                    }
                }
            }
            buf.copy_within(total..filled, 0);
            filled -= total;
            pending = None;
            continued = false;
        }
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match socket.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
    }
}

/// Writes the event stream: the initial response, events with records `start..total` as fast
/// as the socket takes them, then an empty event per second.
async fn stream_events(
    mut socket: TcpStream,
    shard: usize,
    start: u64,
    shared: Arc<EndpointShared>,
) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\n\
                Transfer-Encoding: chunked\r\nx-amzn-RequestId: bench\r\n\r\n";
    let mut first = head.as_bytes().to_vec();
    first.extend_from_slice(&chunk(&initial_response_message()));
    if socket.write_all(&first).await.is_err() {
        return;
    }
    let stats = &shared.stats;
    let mut template = EventTemplate::new(&shared.payloads, shard, shared.per_event);
    let mut next = start;
    while next < shared.total {
        let n = (shared.total - next).min(template.records);
        let written = if n == template.records {
            socket.write_all(template.set_first(next)).await
        } else {
            let (message, _) = build_event(&shared.payloads, shard, next, n as usize);
            socket.write_all(&chunk(&message)).await
        };
        if written.is_err() {
            return;
        }
        next += n;
        stats.records_sent.fetch_add(n, Ordering::Relaxed);
        stats.events_sent.fetch_add(1, Ordering::Relaxed);
    }
    let idle = chunk(&empty_event(&seq(shard, next.saturating_sub(1))));
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if socket.write_all(&idle).await.is_err() {
            return;
        }
        stats.events_sent.fetch_add(1, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// /proc

fn clock_ticks() -> (f64, String) {
    match Command::new("getconf").arg("CLK_TCK").output() {
        Ok(out) if out.status.success() => {
            match String::from_utf8_lossy(&out.stdout).trim().parse::<f64>() {
                Ok(v) if v > 0.0 => (v, format!("{v} (from `getconf CLK_TCK`)")),
                _ => (100.0, "100 (assumed)".into()),
            }
        }
        _ => (100.0, "100 (assumed)".into()),
    }
}

/// utime + stime in clock ticks from a `stat` file.
fn stat_ticks(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn proc_ticks(pid: u32) -> Option<u64> {
    stat_ticks(Path::new(&format!("/proc/{pid}/stat")))
}

/// A `Vm*:` line of /proc/<pid>/status in KiB (VmHWM: peak RSS, VmRSS: current).
fn vm_kib(pid_or_self: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid_or_self}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Checking delivered records

#[derive(Default, Debug)]
struct Problems {
    duplicates: u64,
    lost: u64,
    unknown: u64,
    out_of_order: u64,
    bad_payload: u64,
    examples: Vec<String>,
}

impl Problems {
    fn any(&self) -> bool {
        self.duplicates + self.lost + self.unknown + self.out_of_order + self.bad_payload > 0
    }

    fn note(&mut self, text: String) {
        if self.examples.len() < 5 {
            self.examples.push(text);
        }
    }

    fn summary(&self) -> String {
        format!(
            "{} duplicated, {} lost, {} unknown, {} out of order, {} with a wrong payload; e.g. {}",
            self.duplicates,
            self.lost,
            self.unknown,
            self.out_of_order,
            self.bad_payload,
            self.examples.join("; ")
        )
    }
}

enum Checker {
    /// The bench endpoint: record indexes 0, 1, 2, ... in order on every shard.
    Counter { next: HashMap<String, u64> },
    /// Records written to kinesis-local beforehand, by (shard, sequence number).
    Known {
        expected: Arc<HashSet<(String, String)>>,
        seen: HashSet<(String, String)>,
        last_per_shard: HashMap<String, String>,
    },
}

impl Checker {
    fn known(expected: Arc<HashSet<(String, String)>>) -> Checker {
        Checker::Known {
            expected,
            seen: HashSet::new(),
            last_per_shard: HashMap::new(),
        }
    }

    fn check(&mut self, record: &Record, problems: &mut Problems) {
        let meta = |k: &str| record.metadata.get(k).unwrap_or("");
        let payload_len = record
            .payload
            .as_ref()
            .and_then(|c| c.after.as_ref())
            .and_then(|d| match &d.data {
                Some(data::Data::RawData(b)) => Some(b.len()),
                _ => None,
            });
        if payload_len != Some(RECORD_SIZE) {
            problems.bad_payload += 1;
            problems.note(format!("payload length {payload_len:?}"));
        }
        let sequence = meta("kinesis.sequenceNumber");
        match self {
            Checker::Counter { next } => {
                let shard = meta("kinesis.shardId");
                let next = match next.get_mut(shard) {
                    Some(n) => n,
                    None => next.entry(shard.to_string()).or_default(),
                };
                match shard_index(shard).and_then(|i| seq_counter(i, sequence)) {
                    None => {
                        problems.unknown += 1;
                        problems.note(format!("unknown sequence number {sequence:?}"));
                    }
                    Some(c) if c == *next => *next += 1,
                    Some(c) if c < *next => {
                        problems.duplicates += 1;
                        problems.note(format!("{shard}: record {c} again after {}", *next - 1));
                    }
                    Some(c) => {
                        problems.lost += c - *next;
                        problems.note(format!("{shard}: records {}..{c} skipped", *next));
                        *next = c + 1;
                    }
                }
            }
            Checker::Known {
                expected,
                seen,
                last_per_shard,
            } => {
                let key = (meta("kinesis.shardId").to_string(), sequence.to_string());
                if !expected.contains(&key) {
                    problems.unknown += 1;
                    problems.note(format!("unknown record {key:?}"));
                    return;
                }
                if let Some(last) = last_per_shard.get(&key.0) {
                    let newer = (key.1.len(), key.1.as_str()) > (last.len(), last.as_str());
                    if !newer {
                        problems.out_of_order += 1;
                    }
                }
                last_per_shard.insert(key.0.clone(), key.1.clone());
                if !seen.insert(key) {
                    problems.duplicates += 1;
                    problems.note("a record delivered twice".into());
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Driving the plugin

#[derive(Clone)]
struct Measured {
    records: u64,
    secs: f64,
    cpu_secs: f64,
    hwm_kib: Option<u64>,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.records as f64 / self.secs.max(1e-9)
    }

    fn cpu_per_100k(&self) -> f64 {
        self.cpu_secs / (self.records.max(1) as f64) * 100_000.0
    }

    fn records_per_cpu_second(&self) -> f64 {
        self.records as f64 / self.cpu_secs.max(1e-9)
    }

    fn rss_mib(&self) -> Option<f64> {
        self.hwm_kib.map(|k| k as f64 / 1024.0)
    }
}

struct Plan {
    settings: Vec<(String, String)>,
    /// Records received before the measurement starts (0: it starts when Open returns).
    warmup: u64,
    /// Stop measuring after this many measured records...
    records: Option<u64>,
    /// ...or after this long.
    duration: Option<Duration>,
    /// Pause after each batch (the slow reader).
    read_pause: Option<Duration>,
    /// The whole run (Configure to the end of the measurement) must fit in this.
    time_limit: Duration,
    /// Another process whose CPU time is measured over the same window (kinesis-local).
    watch_pid: Option<u32>,
    /// CPU mask (`taskset`) the plugin's threads are pinned to right after it started.
    pin_mask: Option<&'static str>,
    /// Another build of the plugin than this one's, and variables added to its environment.
    binary: Option<std::path::PathBuf>,
    extra_env: Vec<(String, String)>,
    /// The warm-up also lasts until records of this many shards arrived (lease
    /// coordination takes its shards over several rounds).
    warmup_shards: usize,
}

struct Driven {
    measured: Measured,
    /// Every record received, also before and after the measurement.
    received: u64,
    batches: u64,
    /// (seconds since Open returned, VmRSS KiB), every half second while reading.
    rss_samples: Vec<(f64, u64)>,
    /// CPU seconds of `Plan::watch_pid` during the measurement.
    watch_cpu_secs: Option<f64>,
    open_secs: f64,
    /// Whether the measurement ended because the record count was reached.
    complete: bool,
    /// Bytes of the positions of the measured records.
    position_bytes: u64,
    /// When the measurement started and ended.
    window: (Instant, Instant),
}

async fn run_plugin(
    plan: &Plan,
    checker: &mut Checker,
    problems: &mut Problems,
    tck: f64,
) -> Result<Driven, String> {
    let mut env = support::plugin::run_env();
    env.extend(plan.extra_env.iter().cloned());
    let plugin = match &plan.binary {
        Some(binary) => PluginProcess::start_binary(binary, &env).await,
        None => PluginProcess::start(&env).await,
    };
    if let Some(mask) = plan.pin_mask {
        pin(plugin.child.id(), mask)?;
    }
    let result = drive(&plugin, plan, checker, problems, tck).await;
    let result = result.map_err(|e| {
        let stderr = plugin.stderr();
        let tail = &stderr[stderr.len().saturating_sub(15)..];
        format!("{e}\nplugin stderr (last lines):\n{}", tail.join("\n"))
    });
    shutdown(plugin).await;
    result
}

/// go-plugin's Kill: Shutdown, wait up to 2 s, then SIGKILL (PluginProcess's Drop).
async fn shutdown(mut plugin: PluginProcess) {
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        plugin
            .controller()
            .shutdown(conduit_connector_kinesis::proto::plugin::Empty {}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = plugin.child.try_wait() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn drive(
    plugin: &PluginProcess,
    plan: &Plan,
    checker: &mut Checker,
    problems: &mut Problems,
    tck: f64,
) -> Result<Driven, String> {
    let started = Instant::now();
    let pid = plugin.child.id();
    let mut client = plugin
        .source()
        .max_decoding_message_size(256 * 1024 * 1024)
        .max_encoding_message_size(256 * 1024 * 1024);
    client
        .configure(source::configure::Request {
            config: plan.settings.iter().cloned().collect(),
        })
        .await
        .map_err(|e| format!("Configure: {}", e.message()))?;
    let open_started = Instant::now();
    client
        .open(source::open::Request { position: vec![] })
        .await
        .map_err(|e| format!("Open: {}", e.message()))?;
    let opened = Instant::now();
    let open_secs = (opened - open_started).as_secs_f64();
    let ticks_at_open = proc_ticks(pid).ok_or("cannot read the plugin's /proc stat")?;
    let watch_ticks = || plan.watch_pid.and_then(proc_ticks);
    let watch_at_open = watch_ticks();

    let (acks, rx) = mpsc::channel::<source::run::Request>(1024);
    let mut stream = client
        .run(ReceiverStream::new(rx))
        .await
        .map_err(|e| format!("Run: {}", e.message()))?
        .into_inner();

    let deadline = started + plan.time_limit;
    let mut received = 0u64;
    let mut batches = 0u64;
    let mut position_bytes = 0u64;
    let mut last_position: Vec<u8> = Vec::new();
    // (time, ticks, received) when the measurement started.
    let mut start: Option<(Instant, u64, u64)> =
        (plan.warmup == 0).then_some((opened, ticks_at_open, 0));
    let mut watch_start = if plan.warmup == 0 {
        watch_at_open
    } else {
        None
    };
    let mut end: Option<(Instant, u64, u64)> = None;
    let mut rss_samples = Vec::new();
    let mut next_sample = opened;
    let mut shards_seen: HashSet<String> = HashSet::new();
    let target = plan.records.map(|r| plan.warmup + r);

    while end.is_none() {
        let now = Instant::now();
        let stop_at = match (plan.duration, start) {
            (Some(d), Some((t0, _, _))) => (t0 + d).min(deadline),
            _ => deadline,
        };
        if now >= stop_at {
            break;
        }
        let message = match tokio::time::timeout(stop_at - now, stream.message()).await {
            Err(_) => break,
            Ok(Err(status)) => return Err(format!("the Run stream failed: {status}")),
            Ok(Ok(None)) => return Err(format!("the Run stream ended after {received} records")),
            Ok(Ok(Some(message))) => message,
        };
        if message.records.is_empty() {
            return Err("the source sent an empty batch".into());
        }
        batches += 1;
        let mut positions = Vec::with_capacity(message.records.len());
        for record in &message.records {
            checker.check(record, problems);
            positions.push(record.position.clone());
            if start.is_none() && shards_seen.len() < plan.warmup_shards {
                shards_seen.insert(
                    record
                        .metadata
                        .get("kinesis.shardId")
                        .unwrap_or("")
                        .to_string(),
                );
            }
        }
        if start.is_some() {
            position_bytes += positions.iter().map(|p| p.len() as u64).sum::<u64>();
        }
        received += message.records.len() as u64;
        last_position = positions.last().cloned().unwrap_or_default();
        acks.send(source::run::Request {
            ack_positions: positions,
        })
        .await
        .map_err(|_| "the Run request stream closed".to_string())?;
        if start.is_none() && received >= plan.warmup && shards_seen.len() >= plan.warmup_shards {
            start = Some((Instant::now(), proc_ticks(pid).unwrap_or(0), received));
            watch_start = watch_ticks();
        }
        if let (Some(target), Some(_)) = (target, start) {
            if received >= target {
                end = Some((Instant::now(), proc_ticks(pid).unwrap_or(0), received));
            }
        }
        if Instant::now() >= next_sample {
            if let Some(kib) = vm_kib(&pid.to_string(), "VmRSS:") {
                rss_samples.push((opened.elapsed().as_secs_f64(), kib));
            }
            next_sample += Duration::from_millis(500);
        }
        if let Some(pause) = plan.read_pause {
            tokio::time::sleep(pause).await;
        }
    }
    let complete = end.is_some();
    let end = end.unwrap_or_else(|| (Instant::now(), proc_ticks(pid).unwrap_or(0), received));
    let watch_cpu_secs = match (watch_start, watch_ticks()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / tck),
        _ => None,
    };
    let hwm_kib = vm_kib(&pid.to_string(), "VmHWM:");
    let Some(start) = start else {
        return Err(format!(
            "only {received} records within {:?} (warm-up {})",
            plan.time_limit, plan.warmup
        ));
    };
    let measured = Measured {
        records: end.2 - start.2,
        secs: (end.0 - start.0).as_secs_f64(),
        cpu_secs: end.1.saturating_sub(start.1) as f64 / tck,
        hwm_kib,
    };

    // Conduit's end of a run: Stop, read on until the returned position, ack, Teardown.
    let mut stopper = plugin.source();
    let mut stop = Box::pin(stopper.stop(source::stop::Request {}));
    let mut stop_position: Option<Vec<u8>> = None;
    let drain_deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(p) = &stop_position {
            if p.is_empty() || *p == last_position {
                break;
            }
        }
        tokio::select! {
            result = &mut stop, if stop_position.is_none() => {
                let position = result.map_err(|e| format!("Stop: {}", e.message()))?.into_inner().last_position;
                stop_position = Some(position);
            }
            message = stream.message() => match message {
                Ok(Some(message)) => {
                    let mut positions = Vec::with_capacity(message.records.len());
                    for record in &message.records {
                        checker.check(record, problems);
                        positions.push(record.position.clone());
                    }
                    received += message.records.len() as u64;
                    if let Some(p) = positions.last() {
                        last_position = p.clone();
                    }
                    let _ = acks.send(source::run::Request { ack_positions: positions }).await;
                }
                Ok(None) | Err(_) => break,
            },
            _ = tokio::time::sleep_until(drain_deadline) => {
                return Err("Stop: the position it returned never arrived within 30 s".into());
            }
        }
    }
    drop(acks);
    drop(stream);
    tokio::time::timeout(
        Duration::from_secs(10),
        plugin.source().teardown(source::teardown::Request {}),
    )
    .await
    .map_err(|_| "Teardown took over 10 s".to_string())?
    .map_err(|e| format!("Teardown: {}", e.message()))?;
    Ok(Driven {
        measured,
        received,
        batches,
        rss_samples,
        watch_cpu_secs,
        open_secs,
        complete,
        position_bytes,
        window: (start.0, end.0),
    })
}

fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn connection_settings<'a>(url: &'a str, stream: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("streamName", stream),
        ("aws.url", url),
        ("aws.region", REGION),
        ("aws.accessKeyId", ACCESS_KEY_ID),
        ("aws.secretAccessKey", SECRET_ACCESS_KEY),
    ]
}

// ---------------------------------------------------------------------------------------------
// Baseline: a direct AWS SDK reader in a child process

fn sdk_client(endpoint: &str) -> aws_sdk_kinesis::Client {
    aws_sdk_kinesis::Client::from_conf(
        aws_sdk_kinesis::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(
                ACCESS_KEY_ID,
                SECRET_ACCESS_KEY,
                None,
                None,
                "bench",
            ))
            .endpoint_url(endpoint)
            .retry_config(RetryConfig::disabled())
            .build(),
    )
}

/// `--baseline-child <endpoint> <consumer ARN> <warm-up> <records>`; prints
/// `BASELINE_RESULT <records> <seconds> <cpu ticks> <VmHWM KiB>`.
fn baseline_child(args: &[String]) -> ExitCode {
    let parsed = (|| -> Option<(String, String, u64, u64)> {
        Some((
            args.first()?.clone(),
            args.get(1)?.clone(),
            args.get(2)?.parse().ok()?,
            args.get(3)?.parse().ok()?,
        ))
    })();
    let Some((endpoint, consumer, warmup, records)) = parsed else {
        eprintln!("baseline child: bad arguments {args:?}");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("baseline child: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let client = sdk_client(&endpoint);
        let position = StartingPosition::builder()
            .r#type(ShardIteratorType::TrimHorizon)
            .build()
            .map_err(|e| e.to_string())?;
        let output = tokio::time::timeout(
            STEP_TIMEOUT,
            client
                .subscribe_to_shard()
                .consumer_arn(&consumer)
                .shard_id(SHARD)
                .starting_position(position)
                .send(),
        )
        .await
        .map_err(|_| "SubscribeToShard timed out".to_string())?
        .map_err(|e| {
            format!(
                "SubscribeToShard: {}",
                aws_sdk_kinesis::error::DisplayErrorContext(e)
            )
        })?;
        let mut events = output.event_stream;
        let mut count = 0u64;
        let mut start: Option<(Instant, u64, u64)> = None;
        let self_stat = Path::new("/proc/self/stat");
        loop {
            let event = tokio::time::timeout(STEP_TIMEOUT, events.recv())
                .await
                .map_err(|_| format!("no event within {STEP_TIMEOUT:?} after {count} records"))?
                .map_err(|e| format!("recv: {}", aws_sdk_kinesis::error::DisplayErrorContext(e)))?
                .ok_or_else(|| format!("the event stream ended after {count} records"))?;
            let SubscribeToShardEventStream::SubscribeToShardEvent(event) = event else {
                continue;
            };
            count += event.records.len() as u64;
            // A cheap check that nothing was lost or repeated.
            if let Some(last) = event.records.last() {
                if seq_counter(0, &last.sequence_number) != Some(count - 1) {
                    return Err(format!(
                        "record {} arrived as record number {count}",
                        last.sequence_number
                    ));
                }
            }
            if start.is_none() && count >= warmup {
                start = Some((Instant::now(), stat_ticks(self_stat).unwrap_or(0), count));
            }
            if let Some((t0, ticks0, count0)) = start {
                if count >= warmup + records {
                    let secs = t0.elapsed().as_secs_f64();
                    let ticks = stat_ticks(self_stat).unwrap_or(0) - ticks0;
                    let hwm = vm_kib("self", "VmHWM:").unwrap_or(0);
                    return Ok::<_, String>(format!(
                        "BASELINE_RESULT {} {secs} {ticks} {hwm}",
                        count - count0
                    ));
                }
            }
        }
    });
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("baseline child: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the baseline child and waits (bounded) for its result line.
fn run_baseline(
    endpoint: &str,
    warmup: u64,
    records: u64,
    pin_mask: Option<&str>,
    tck: f64,
) -> Result<Measured, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = Command::new(exe)
        .args([
            "--baseline-child",
            endpoint,
            &consumer_arn("bench-baseline"),
            &warmup.to_string(),
            &records.to_string(),
        ])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn the baseline child: {e}"))?;
    if let Some(mask) = pin_mask {
        if let Err(e) = pin(child.id(), mask) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    }
    let [records, secs, ticks, hwm_kib] = baseline_result(child, Duration::from_secs(300))?;
    Ok(Measured {
        records: records as u64,
        secs,
        cpu_secs: ticks / tck,
        hwm_kib: Some(hwm_kib as u64).filter(|&k| k > 0),
    })
}

// ---------------------------------------------------------------------------------------------
// kinesis-local

fn kinesis_local_installed() -> bool {
    support::repo_root()
        .join("test/kinesis-local/node_modules/kinesis-local/main.js")
        .is_file()
}

/// Writes `count` records of [`RECORD_SIZE`] bytes with PutRecords (500 per call) and returns
/// their (shard, sequence number) and the write rate.
async fn fill_stream(
    endpoint: &str,
    stream: &str,
    count: u64,
) -> Result<(HashSet<(String, String)>, f64), String> {
    let client = sdk_client(endpoint);
    let payloads: Vec<Vec<u8>> = (0..64).map(|i| payload_bytes(i, RECORD_SIZE)).collect();
    let mut written = HashSet::new();
    let started = Instant::now();
    let mut next = 0u64;
    while next < count {
        let end = (next + 500).min(count);
        let entries = (next..end)
            .map(|i| {
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(payloads[(i % 64) as usize].clone()))
                    .partition_key(format!("pk-{:016x}", mix(i)))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = tokio::time::timeout(
            STEP_TIMEOUT,
            client
                .put_records()
                .stream_name(stream)
                .set_records(Some(entries))
                .send(),
        )
        .await
        .map_err(|_| "PutRecords timed out".to_string())?
        .map_err(|e| {
            format!(
                "PutRecords: {}",
                aws_sdk_kinesis::error::DisplayErrorContext(e)
            )
        })?;
        if output.failed_record_count.unwrap_or(0) != 0 {
            return Err(format!(
                "PutRecords: {} entries failed",
                output.failed_record_count.unwrap_or(0)
            ));
        }
        for entry in output.records {
            match (entry.shard_id, entry.sequence_number) {
                (Some(shard), Some(sequence)) => {
                    written.insert((shard, sequence));
                }
                _ => return Err("PutRecords: an entry without shard or sequence number".into()),
            }
        }
        next = end;
    }
    if written.len() as u64 != count {
        return Err(format!(
            "{} distinct records written of {count}",
            written.len()
        ));
    }
    Ok((written, count as f64 / started.elapsed().as_secs_f64()))
}

// ---------------------------------------------------------------------------------------------
// Orchestration

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// VmRSS at about 10%, 40%, 70% and 100% of a run.
fn rss_trend(samples: &[(f64, u64)]) -> String {
    if samples.is_empty() {
        return "?".into();
    }
    [0.1, 0.4, 0.7, 1.0]
        .iter()
        .map(|f| {
            let (t, kib) = samples[((samples.len() - 1) as f64 * f).round() as usize];
            format!("{:.1} MiB at {t:.0} s", kib as f64 / 1024.0)
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

fn thousands(v: f64) -> String {
    let s = (v.round() as u64).to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

struct Row {
    scenario: String,
    result: Result<Measured, String>,
    /// Index of the baseline row this row is compared with.
    baseline: Option<usize>,
    is_baseline: bool,
}

struct Report {
    /// Tables of their own, printed after the main one.
    tables: Vec<String>,
    rows: Vec<Row>,
    notes: Vec<String>,
    /// Records lost or duplicated: the only reason to fail.
    failures: Vec<String>,
    /// Scenarios that could not be measured.
    errors: Vec<String>,
}

impl Report {
    fn push(
        &mut self,
        scenario: String,
        result: Result<Measured, String>,
        baseline: Option<usize>,
    ) -> usize {
        if let Err(e) = &result {
            self.errors.push(format!("{scenario}: {e}"));
        }
        self.rows.push(Row {
            scenario,
            result,
            baseline,
            is_baseline: false,
        });
        self.rows.len() - 1
    }
}

fn run() -> Result<(), String> {
    let records = env_u64("SOURCE_BENCH_RECORDS", 300_000).max(1);
    let warmup = env_u64("SOURCE_BENCH_WARMUP", 50_000);
    let per_event = env_u64("SOURCE_BENCH_EVENT_RECORDS", 500).clamp(1, 5_000) as usize;
    let only = std::env::var("SOURCE_BENCH_ONLY").unwrap_or_default();
    let want = |name: &str| only.is_empty() || only.split(',').any(|o| o.trim() == name);
    let (tck, tck_note) = clock_ticks();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!(
        "source benchmark: plugin {}",
        support::plugin_binary().display()
    );
    println!(
        "machine: {cores} cores; clock ticks per second: {tck_note}; load average at start: {}",
        load_average()
    );
    println!(
        "driver: Configure → Open → Run, one ack request per received batch (all its positions), \
         every record checked for loss, duplication and order; records of {RECORD_SIZE} bytes"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("driver runtime: {e}"))?;
    let mut report = Report {
        tables: Vec::new(),
        rows: Vec::new(),
        notes: Vec::new(),
        failures: Vec::new(),
        errors: Vec::new(),
    };

    if want("ceiling") {
        ceiling(&runtime, &mut report, records, warmup, per_event, tck);
    }
    let skip_kl = env_flag("SOURCE_BENCH_SKIP_KINESIS_LOCAL");
    if (want("drain") || want("flow")) && (skip_kl || !kinesis_local_installed()) {
        println!(
            "kinesis-local scenarios: skipped ({})",
            if skip_kl {
                "SOURCE_BENCH_SKIP_KINESIS_LOCAL=1"
            } else {
                "test/kinesis-local is missing: run `bash test/setup.sh` or `make setup`"
            }
        );
    } else {
        if want("drain") {
            runtime.block_on(drain(&mut report, tck));
        }
        if want("flow") {
            runtime.block_on(flow_kinesis_local(&mut report, tck));
        }
    }
    if want("flow") {
        runtime.block_on(flow_endpoint(&mut report, per_event, tck));
    }
    if want("shards") {
        shards::shard_scale(&runtime, &mut report, tck);
    }
    if want("leases") {
        leases::lease_coordination(&runtime, &mut report, tck);
    }

    // --- report -------------------------------------------------------------------------------
    println!();
    println!("| scenario | records | records/s | CPU s per 100k | peak RSS MiB | vs baseline |");
    println!("|---|---:|---:|---:|---:|---|");
    for row in &report.rows {
        match &row.result {
            Err(e) => println!(
                "| {} | failed | | | | {} |",
                row.scenario,
                e.lines().next().unwrap_or("")
            ),
            Ok(m) => {
                let vs = match row.baseline.map(|i| &report.rows[i].result) {
                    Some(Ok(b)) => format!(
                        "{:.2}× records/s, {:.2}× CPU per record",
                        m.rate() / b.rate(),
                        m.cpu_per_100k() / b.cpu_per_100k().max(1e-9)
                    ),
                    Some(Err(_)) => "baseline failed".into(),
                    None if row.is_baseline => "1.00× (baseline)".into(),
                    None => "–".into(),
                };
                println!(
                    "| {} | {} | {} | {:.3} | {} | {vs} |",
                    row.scenario,
                    thousands(m.records as f64),
                    thousands(m.rate()),
                    m.cpu_per_100k(),
                    m.rss_mib()
                        .map(|r| format!("{r:.1}"))
                        .unwrap_or_else(|| "?".into()),
                );
            }
        }
    }
    for table in &report.tables {
        println!();
        println!("{table}");
    }
    println!();
    for note in &report.notes {
        println!("note: {note}");
    }
    println!(
        "note: load average at the end: {} (other processes on the machine make wall rates noisy; \
         CPU per record is steadier)",
        load_average()
    );
    for error in &report.errors {
        println!("ERROR (not measured): {error}");
    }
    if report.failures.is_empty() {
        println!("\nno record lost or duplicated");
        Ok(())
    } else {
        Err(report.failures.join("\n"))
    }
}

/// The round with the median CPU per record.
fn median(results: &[Measured]) -> Option<Measured> {
    let mut sorted = results.to_vec();
    sorted.sort_by(|a, b| a.cpu_per_100k().total_cmp(&b.cpu_per_100k()));
    sorted.get(sorted.len().saturating_sub(1) / 2).cloned()
}

/// One way of running the ceiling scenario.
struct Variant {
    label: &'static str,
    /// CPU masks for the measured process and for this bench process (driver and endpoint).
    pin: Option<(&'static str, &'static str)>,
    baselines: Vec<Measured>,
    plugins: Vec<Measured>,
    baseline_error: Option<String>,
    plugin_error: Option<String>,
    notes: Vec<String>,
}

/// Scenario 3: the bench endpoint, baseline and plugin, in alternating rounds; as Conduit
/// starts the plugin, and pinned to one core.
fn ceiling(
    runtime: &tokio::runtime::Runtime,
    report: &mut Report,
    records: u64,
    warmup: u64,
    per_event: usize,
    tck: f64,
) {
    let rounds = env_u64("SOURCE_BENCH_ROUNDS", 5).clamp(1, 10);
    let total = warmup + records;
    let endpoint = match Endpoint::start(1, total, per_event) {
        Ok(e) => e,
        Err(e) => {
            report.errors.push(format!("bench endpoint: {e}"));
            return;
        }
    };
    println!(
        "bench endpoint: {} (one shard of {} records, {per_event} per event; frame CRC self-test passed)",
        endpoint.url,
        thousands(total as f64)
    );
    let label = format!("bench endpoint, fanout, {per_event} records/event");
    let skip_baseline = env_flag("SOURCE_BENCH_SKIP_BASELINE");
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mut variants = vec![Variant {
        label: "",
        pin: None,
        baselines: Vec::new(),
        plugins: Vec::new(),
        baseline_error: None,
        plugin_error: None,
        notes: Vec::new(),
    }];
    let all_cpus = format!("{:#x}", (1u64 << cores.min(63)) - 1);
    let can_pin = cores >= 2
        && !env_flag("SOURCE_BENCH_NO_PIN")
        && pin(std::process::id(), &all_cpus).is_ok();
    if can_pin {
        variants.push(Variant {
            label: ", pinned to 1 core",
            pin: Some(("0x1", "0x2")),
            baselines: Vec::new(),
            plugins: Vec::new(),
            baseline_error: None,
            plugin_error: None,
            notes: Vec::new(),
        });
    } else {
        report.notes.push(
            "ceiling: no pinned runs (needs `taskset` and 2 cores, and no SOURCE_BENCH_NO_PIN=1)"
                .into(),
        );
    }

    for round in 1..=rounds {
        for variant in variants.iter_mut() {
            let self_pinned = match variant.pin {
                Some((_, own)) => pin(std::process::id(), own).is_ok(),
                None => false,
            };
            let measured_mask = variant.pin.map(|(m, _)| m);
            let mut line = format!("round {round}{}:", variant.label);
            if !skip_baseline {
                eprintln!(
                    "source bench: round {round}/{rounds}{}: baseline, {label}: {warmup} warm-up + {records} records",
                    variant.label
                );
                let ep_before = endpoint.ticks();
                match run_baseline(&endpoint.url, warmup, records, measured_mask, tck) {
                    Ok(m) => {
                        let endpoint_share = match (ep_before, endpoint.ticks()) {
                            (Some(a), Some(b)) => format!(
                                "{:.0}%",
                                (b - a) as f64 / tck / (m.secs * total as f64 / records as f64)
                                    * 100.0
                            ),
                            _ => "?".into(),
                        };
                        let _ = write!(
                            line,
                            " baseline {} records/s, {} records per CPU-second (bench endpoint thread ~{endpoint_share} \
                             of a core);",
                            thousands(m.rate()),
                            thousands(m.records_per_cpu_second())
                        );
                        variant.baselines.push(m);
                    }
                    Err(e) => {
                        if e.contains("arrived as record number") {
                            report.failures.push(format!("baseline: {e}"));
                        }
                        let _ = write!(line, " baseline failed;");
                        variant.baseline_error = Some(e);
                    }
                }
            }

            eprintln!(
                "source bench: round {round}/{rounds}{}: plugin, {label}: {warmup} warm-up + {records} records",
                variant.label
            );
            let mut conn = connection_settings(&endpoint.url, STREAM);
            conn.extend([("readMode", "fanout"), ("consumerName", "bench-plugin")]);
            let plan = Plan {
                settings: settings(&conn),
                warmup,
                records: Some(records),
                duration: None,
                read_pause: None,
                time_limit: Duration::from_secs(180),
                watch_pid: None,
                pin_mask: measured_mask,
                binary: None,
                extra_env: Vec::new(),
                warmup_shards: 0,
            };
            let mut checker = Checker::Counter {
                next: HashMap::new(),
            };
            let mut problems = Problems::default();
            let ep_before = endpoint.ticks();
            let self_before = stat_ticks(Path::new("/proc/self/stat"));
            let result = runtime.block_on(run_plugin(&plan, &mut checker, &mut problems, tck));
            let ep_after = endpoint.ticks();
            let self_after = stat_ticks(Path::new("/proc/self/stat"));
            match result {
                Ok(d) => {
                    if d.received < total {
                        problems.lost += total - d.received;
                        problems.note(format!(
                            "only {} of {total} records within the time limit",
                            d.received
                        ));
                    }
                    let m = &d.measured;
                    let shares = match (ep_before, ep_after, self_before, self_after) {
                        (Some(a), Some(b), Some(sa), Some(sb)) => {
                            let span = m.secs * total as f64 / records as f64;
                            format!(
                                "bench endpoint thread ~{:.0}%, driver ~{:.0}% of a core",
                                (b - a) as f64 / tck / span * 100.0,
                                ((sb - sa) - (b - a)) as f64 / tck / span * 100.0
                            )
                        }
                        _ => "?".into(),
                    };
                    let _ = write!(
                        line,
                        " plugin {} records/s (wall), {} records per CPU-second (it used {:.0}% of a core; \
                         {shares}), batches of ~{} records, RSS {}",
                        thousands(m.rate()),
                        thousands(m.records_per_cpu_second()),
                        m.cpu_secs / m.secs.max(1e-9) * 100.0,
                        d.received / d.batches.max(1),
                        rss_trend(&d.rss_samples)
                    );
                    if let Some(b) = variant.baselines.last().filter(|_| !skip_baseline) {
                        let _ = write!(
                            line,
                            "; vs this round's baseline: {:.2}× records/s, {:.2}× CPU per record",
                            m.rate() / b.rate(),
                            m.cpu_per_100k() / b.cpu_per_100k().max(1e-9)
                        );
                    }
                    variant.plugins.push(d.measured);
                }
                Err(e) => {
                    let _ = write!(line, " plugin failed");
                    variant.plugin_error = Some(e);
                }
            }
            if problems.any() {
                report.failures.push(format!(
                    "plugin, {label}{}, round {round}: {}",
                    variant.label,
                    problems.summary()
                ));
            }
            if self_pinned {
                let _ = pin(std::process::id(), &all_cpus);
            }
            variant.notes.push(line);
        }
    }

    for variant in variants {
        let baseline_index = if skip_baseline {
            None
        } else {
            let result = median(&variant.baselines).ok_or_else(|| {
                variant
                    .baseline_error
                    .clone()
                    .unwrap_or_else(|| "no baseline round".into())
            });
            let i = report.push(
                format!(
                    "baseline (SDK direct) ← {label}{}, median of {rounds}",
                    variant.label
                ),
                result,
                None,
            );
            report.rows[i].is_baseline = true;
            Some(i)
        };
        let result = median(&variant.plugins).ok_or_else(|| {
            variant
                .plugin_error
                .clone()
                .unwrap_or_else(|| "no plugin round".into())
        });
        if let Ok(m) = &result {
            let (value, what) = if variant.pin.is_some() {
                (m.rate(), "records/s pinned to one core")
            } else {
                (m.records_per_cpu_second(), "records per plugin CPU-second")
            };
            report.notes.push(format!(
                "target (issue): ≥{} records/s of 1 KiB on one core; plugin{}: {} {what} (median round) → {}",
                thousands(TARGET_RECORDS_PER_CORE_SECOND),
                variant.label,
                thousands(value),
                if value >= TARGET_RECORDS_PER_CORE_SECOND {
                    "MET"
                } else {
                    "NOT MET"
                }
            ));
        }
        let best = |v: &[Measured]| {
            v.iter()
                .map(Measured::records_per_cpu_second)
                .fold(0.0f64, f64::max)
        };
        if !variant.plugins.is_empty() {
            report.notes.push(format!(
                "ceiling{}: records per CPU-second over the rounds: plugin {} (best {}), baseline {} (best {}); \
                 best plugin round / best baseline round: {:.2}× CPU per record",
                variant.label,
                variant
                    .plugins
                    .iter()
                    .map(|m| thousands(m.records_per_cpu_second()))
                    .collect::<Vec<_>>()
                    .join(", "),
                thousands(best(&variant.plugins)),
                variant
                    .baselines
                    .iter()
                    .map(|m| thousands(m.records_per_cpu_second()))
                    .collect::<Vec<_>>()
                    .join(", "),
                thousands(best(&variant.baselines)),
                best(&variant.baselines) / best(&variant.plugins).max(1e-9),
            ));
        }
        report.push(
            format!("plugin ← {label}{}, median of {rounds}", variant.label),
            result,
            baseline_index,
        );
        if let Some(e) = variant.plugin_error.filter(|_| !variant.plugins.is_empty()) {
            report.errors.push(format!(
                "plugin, {label}{}: a round failed: {e}",
                variant.label
            ));
        }
        report.notes.extend(variant.notes);
    }
    if can_pin {
        report.notes.push(
            "pinned runs: the measured process (baseline child or plugin, all threads) on CPU 0 with \
             `taskset -a -p 0x1` right after it started, this bench process (driver, endpoint) on CPU 1"
                .into(),
        );
    }
    let stats = endpoint.stats();
    report.notes.push(format!(
        "bench endpoint totals: {} subscriptions, {} events, {} records sent, {} other calls, {} rejected",
        stats.subscriptions.load(Ordering::Relaxed),
        stats.events_sent.load(Ordering::Relaxed),
        thousands(stats.records_sent.load(Ordering::Relaxed) as f64),
        stats.other_calls.load(Ordering::Relaxed),
        stats.rejected.load(Ordering::Relaxed),
    ));
}

/// Scenario 1: a pre-filled 4-shard kinesis-local stream, drained by fan-out and by polling.
async fn drain(report: &mut Report, tck: f64) {
    let count = env_u64("SOURCE_BENCH_DRAIN_RECORDS", 8_000).max(1);
    let kl = KinesisLocal::start().await;
    let stream = "bench-drain";
    kl.create_stream(stream, 4).await;
    eprintln!("source bench: kinesis-local: writing {count} records into 4 shards");
    let (written, write_rate) = match fill_stream(&kl.endpoint, stream, count).await {
        Ok(w) => w,
        Err(e) => {
            report
                .errors
                .push(format!("kinesis-local drain: filling the stream: {e}"));
            return;
        }
    };
    let mut per_shard: HashMap<&str, u64> = HashMap::new();
    for (shard, _) in &written {
        *per_shard.entry(shard.as_str()).or_default() += 1;
    }
    let mut shards: Vec<_> = per_shard.into_iter().collect();
    shards.sort();
    report.notes.push(format!(
        "kinesis-local drain: {count} records written beforehand at {} records/s ({})",
        thousands(write_rate),
        shards
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let written = Arc::new(written);
    let conn = connection_settings(&kl.endpoint, stream);
    let modes: [(&str, Vec<(&str, &str)>); 2] = [
        (
            "fanout",
            vec![("readMode", "fanout"), ("consumerName", "bench-drain")],
        ),
        (
            "polling",
            vec![("readMode", "polling"), ("polling.interval", "200ms")],
        ),
    ];
    for (mode, extra) in modes {
        let label = format!("kinesis-local, 4 shards, readMode={mode}");
        eprintln!("source bench: plugin, {label}: draining {count} records");
        let mut all = conn.clone();
        all.extend(extra);
        let plan = Plan {
            settings: settings(&all),
            warmup: 0,
            records: Some(count),
            duration: None,
            read_pause: None,
            time_limit: Duration::from_secs(90),
            watch_pid: Some(kl.pid()),
            pin_mask: None,
            binary: None,
            extra_env: Vec::new(),
            warmup_shards: 0,
        };
        let mut checker = Checker::known(written.clone());
        let mut problems = Problems::default();
        let result = run_plugin(&plan, &mut checker, &mut problems, tck).await;
        let result = result.map(|d| {
            if d.received < count {
                problems.lost += count - d.received;
                problems.note(format!(
                    "only {} of {count} records within {:?}",
                    d.received, plan.time_limit
                ));
            }
            let secs = d.measured.secs.max(1e-9);
            report.notes.push(format!(
                "{label}: while draining ({:.1} s from Open returning), kinesis-local (node) used {} of a core, \
                 the plugin {:.0}%; Open took {:.2} s{}",
                d.measured.secs,
                d.watch_cpu_secs
                    .map(|c| format!("{:.0}%", c / secs * 100.0))
                    .unwrap_or_else(|| "?".into()),
                d.measured.cpu_secs / secs * 100.0,
                d.open_secs,
                if d.complete { "" } else { " (incomplete)" }
            ));
            d.measured
        });
        if problems.any() {
            report
                .failures
                .push(format!("plugin, {label}: {}", problems.summary()));
        }
        report.push(format!("plugin ← {label}"), result, None);
    }
    report.notes.push(
        "kinesis-local rows measure kinesis-local, not the connector: the single-threaded JavaScript \
         server is the bottleneck (its notes: ~1,000 records/s written, ~3,400/s drained by \
         SubscribeToShard); records/s is from Open returning to the last record"
            .into(),
    );
}

/// Scenario 2a: flow control with 50 kinesis-local shards and a slow reader.
async fn flow_kinesis_local(report: &mut Report, tck: f64) {
    let per_shard = env_u64("SOURCE_BENCH_FLOW_PER_SHARD", 300).max(1);
    let secs = env_u64("SOURCE_BENCH_FLOW_SECS", 20).clamp(2, 60);
    let shards = 50;
    let count = per_shard * shards;
    let kl = KinesisLocal::start_with_env(&[("SHARD_LIMIT", "100")]).await;
    let stream = "bench-flow";
    kl.create_stream(stream, shards as i32).await;
    eprintln!("source bench: kinesis-local: writing {count} records into {shards} shards");
    let (written, write_rate) = match fill_stream(&kl.endpoint, stream, count).await {
        Ok(w) => w,
        Err(e) => {
            report
                .errors
                .push(format!("flow control: filling the stream: {e}"));
            return;
        }
    };
    report.notes.push(format!(
        "flow control, kinesis-local: {} records (~{per_shard} per shard, {} MiB of data) written beforehand \
         at {} records/s; slow reader: one batch every {SLOW_READ_PAUSE:?}, sdk.batch.size={SLOW_BATCH_SIZE} \
         (≤ {} records/s), {secs} s per run",
        thousands(count as f64),
        count * RECORD_SIZE as u64 / (1024 * 1024),
        thousands(write_rate),
        thousands(slow_rate()),
    ));
    let written = Arc::new(written);
    let conn = connection_settings(&kl.endpoint, stream);
    for (buffer, consumer) in [
        (None, "bench-flow-default"),
        (Some(SMALL_BUFFER), "bench-flow-small"),
    ] {
        let label = format!(
            "flow control ← kinesis-local, {shards} shards, slow reader, bufferSize {}",
            buffer.unwrap_or("10000 (default)")
        );
        slow_run(
            report,
            label,
            &conn,
            consumer,
            buffer,
            secs,
            Checker::known(written.clone()),
            Some(count),
            Some(kl.pid()),
            tck,
        )
        .await;
    }
}

/// Scenario 2b: flow control against the bench endpoint, 50 shards with a practically
/// unbounded backlog each.
async fn flow_endpoint(report: &mut Report, per_event: usize, tck: f64) {
    let secs = env_u64("SOURCE_BENCH_FLOW_ENDPOINT_SECS", 10).clamp(2, 60);
    let shards = 50;
    let per_shard = 10_000_000u64;
    let endpoint = match Endpoint::start(shards, per_shard, per_event) {
        Ok(e) => e,
        Err(e) => {
            report.errors.push(format!("bench endpoint: {e}"));
            return;
        }
    };
    report.notes.push(format!(
        "flow control, bench endpoint: {shards} shards with {} records (~{} GiB) each available at once, \
         {per_event} per event; same slow reader, {secs} s per run",
        thousands(per_shard as f64),
        per_shard * RECORD_SIZE as u64 / (1024 * 1024 * 1024),
    ));
    let conn = connection_settings(&endpoint.url, STREAM);
    for (buffer, consumer) in [
        (None, "bench-flow-default"),
        (Some(SMALL_BUFFER), "bench-flow-small"),
    ] {
        let label = format!(
            "flow control ← bench endpoint, {shards} shards, slow reader, bufferSize {}",
            buffer.unwrap_or("10000 (default)")
        );
        slow_run(
            report,
            label,
            &conn,
            consumer,
            buffer,
            secs,
            Checker::Counter {
                next: HashMap::new(),
            },
            None,
            None,
            tck,
        )
        .await;
    }
}

fn slow_rate() -> f64 {
    SLOW_BATCH_SIZE.parse::<f64>().unwrap_or(0.0) * 1000.0 / SLOW_READ_PAUSE.as_millis() as f64
}

/// One slow-reader run of `secs` seconds; only duplicated, unknown or reordered records fail.
#[allow(clippy::too_many_arguments)]
async fn slow_run(
    report: &mut Report,
    label: String,
    conn: &[(&str, &str)],
    consumer: &str,
    buffer: Option<&str>,
    secs: u64,
    mut checker: Checker,
    written: Option<u64>,
    watch_pid: Option<u32>,
    tck: f64,
) {
    eprintln!("source bench: plugin, {label}: {secs} s");
    let mut all = conn.to_vec();
    all.extend([
        ("readMode", "fanout"),
        ("consumerName", consumer),
        ("sdk.batch.size", SLOW_BATCH_SIZE),
    ]);
    if let Some(b) = buffer {
        all.push(("bufferSize", b));
    }
    let plan = Plan {
        settings: settings(&all),
        warmup: 0,
        records: None,
        duration: Some(Duration::from_secs(secs)),
        read_pause: Some(SLOW_READ_PAUSE),
        time_limit: Duration::from_secs(secs + 30),
        watch_pid,
        pin_mask: None,
        binary: None,
        extra_env: Vec::new(),
        warmup_shards: 0,
    };
    let mut problems = Problems::default();
    let result = run_plugin(&plan, &mut checker, &mut problems, tck).await;
    let result = result.map(|d| {
        let backlog = match written {
            Some(w) => format!("≥ {} records", thousands(w.saturating_sub(d.received) as f64)),
            None => "practically unbounded".into(),
        };
        report.notes.push(format!(
            "{label}: {} records delivered in {:.0} s ({} incl. those read after Stop), backlog left {backlog}; \
             plugin CPU {:.0}% of a core{}; RSS {}; peak {}",
            thousands(d.measured.records as f64),
            d.measured.secs,
            thousands(d.received as f64),
            d.measured.cpu_secs / d.measured.secs.max(1e-9) * 100.0,
            d.watch_cpu_secs
                .map(|c| format!(", kinesis-local (node) {:.0}%", c / d.measured.secs.max(1e-9) * 100.0))
                .unwrap_or_default(),
            rss_trend(&d.rss_samples),
            d.measured
                .rss_mib()
                .map(|r| format!("{r:.1} MiB"))
                .unwrap_or_else(|| "?".into()),
        ));
        d.measured
    });
    if problems.duplicates + problems.unknown + problems.out_of_order + problems.bad_payload > 0 {
        report
            .failures
            .push(format!("plugin, {label}: {}", problems.summary()));
    }
    report.push(label, result, None);
}
