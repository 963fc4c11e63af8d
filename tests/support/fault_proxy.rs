//! A fault-injecting HTTP/1.1 proxy on 127.0.0.1 in front of kinesis-local's plain HTTP
//! endpoint. Kinesis servers never throttle (shared/docs/kinesis-notes.md §5), so this is
//! where partial PutRecords failures, throttled calls, server errors and lost connections
//! come from in tests. Built on tokio only.
//!
//! ```ignore
//! let kl = support::kinesis_local::KinesisLocal::start().await;
//! let proxy = FaultProxy::start(&kl.endpoint).await;
//! proxy.add_entry_rule(EntryRule::random(0.3, 3, EntryError::Throughput));
//! proxy.add_call_rule(CallRule::first(2, CallFault::Throttle));
//! // ... point the connector at proxy.url, write, then:
//! let calls = proxy.put_records_calls();
//! ```
//!
//! Every request is forwarded unchanged (Host and signature included: kinesis-local does not
//! check signatures) over a kept-alive upstream connection, except PutRecords
//! (`X-Amz-Target: Kinesis_20131202.PutRecords`), where rules apply. A PutRecords call in
//! AWS CBOR (the destination's default) is handled as its JSON equivalent (see
//! [`super::wire`]): forwarded upstream as JSON and answered in CBOR.
//!
//! * [`CallRule`]: the whole call fails without being forwarded: HTTP 400
//!   `ProvisionedThroughputExceededException`, HTTP 500 `InternalFailure`, or the connection is
//!   closed without an answer. Calls are numbered from 1 in the order they arrive.
//! * [`EntryRule`]: chosen entries fail. They are removed from the forwarded request (so
//!   kinesis-local never stores them) and the answer is merged back into request order, with
//!   `ErrorCode`/`ErrorMessage` on failed entries and `FailedRecordCount` counting them, exactly
//!   the PutRecords response shape. When every entry fails nothing is forwarded. Random
//!   decisions are a function of (seed, rule, data, attempt), so a run is reproducible whatever
//!   the timing of concurrent calls.
//!
//! Every PutRecords call is logged ([`PutRecordsCall`]) with each entry's partition key, data
//! and fate (written with its sequence number, failed by a rule, failed with the call, ...).
//! The proxy stops when dropped.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io;
use std::sync::{Arc, Mutex};

use base64::Engine;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::wire;

const TARGET_PREFIX: &str = "Kinesis_20131202.";
const ACCOUNT: &str = "000000000000";

/// The error a failed entry carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryError {
    /// `ProvisionedThroughputExceededException`
    Throughput,
    /// `InternalFailure`
    InternalFailure,
}

impl EntryError {
    pub fn code(self) -> &'static str {
        match self {
            EntryError::Throughput => "ProvisionedThroughputExceededException",
            EntryError::InternalFailure => "InternalFailure",
        }
    }

    fn message(self, stream: &str) -> String {
        match self {
            EntryError::Throughput => format!(
                "Rate exceeded for shard shardId-000000000000 in stream {stream} under account {ACCOUNT}."
            ),
            EntryError::InternalFailure => "Internal Service Failure".to_string(),
        }
    }
}

#[derive(Debug, Clone)]
enum Matcher {
    Marker(Vec<u8>),
    Random(f64),
}

/// Which PutRecords entries fail, and how.
#[derive(Debug, Clone)]
pub struct EntryRule {
    matcher: Matcher,
    /// Failures of one distinct data blob by this rule, at most.
    max_per_data: u32,
    error: EntryError,
}

impl EntryRule {
    /// Fails an entry whose (decoded) data contains `marker`, for its first `times` attempts
    /// (`u32::MAX`: always).
    pub fn marker(marker: impl AsRef<[u8]>, times: u32, error: EntryError) -> EntryRule {
        EntryRule {
            matcher: Matcher::Marker(marker.as_ref().to_vec()),
            max_per_data: times,
            error,
        }
    }

    /// Fails each entry with `probability`, at most `max_per_data` times per distinct data.
    pub fn random(probability: f64, max_per_data: u32, error: EntryError) -> EntryRule {
        EntryRule {
            matcher: Matcher::Random(probability),
            max_per_data,
            error,
        }
    }
}

/// How a whole PutRecords call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallFault {
    /// HTTP 400, `x-amzn-ErrorType: ProvisionedThroughputExceededException`.
    Throttle,
    /// HTTP 500, `x-amzn-ErrorType: InternalFailure`.
    InternalError,
    /// The request is read, then the connection is closed without an answer.
    DropConnection,
}

#[derive(Debug, Clone)]
enum CallSelector {
    First(u64),
    Every(u64),
    Numbers(Vec<u64>),
}

/// Which PutRecords calls fail as a whole (numbered from 1 in arrival order).
#[derive(Debug, Clone)]
pub struct CallRule {
    selector: CallSelector,
    fault: CallFault,
}

impl CallRule {
    /// The first `n` PutRecords calls.
    pub fn first(n: u64, fault: CallFault) -> CallRule {
        CallRule {
            selector: CallSelector::First(n),
            fault,
        }
    }

    /// Every `k`-th PutRecords call (k, 2k, ...).
    pub fn every(k: u64, fault: CallFault) -> CallRule {
        assert!(k > 0, "every(0) selects nothing");
        CallRule {
            selector: CallSelector::Every(k),
            fault,
        }
    }

    /// The PutRecords calls with these numbers.
    pub fn numbers(numbers: &[u64], fault: CallFault) -> CallRule {
        CallRule {
            selector: CallSelector::Numbers(numbers.to_vec()),
            fault,
        }
    }

    fn selects(&self, number: u64) -> bool {
        match &self.selector {
            CallSelector::First(n) => number <= *n,
            CallSelector::Every(k) => number.is_multiple_of(*k),
            CallSelector::Numbers(list) => list.contains(&number),
        }
    }
}

/// What happened to one PutRecords entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Forwarded and stored by kinesis-local.
    Written {
        shard_id: String,
        sequence_number: String,
    },
    /// Failed by an [`EntryRule`]; not forwarded.
    Failed(EntryError),
    /// Forwarded, but kinesis-local failed this entry.
    Rejected { code: String },
    /// The whole call failed by a [`CallRule`]; not forwarded.
    CallFault(CallFault),
    /// Forwarded, but kinesis-local answered the call with an error (or no usable answer).
    CallError { status: u16 },
}

/// One entry of a PutRecords call.
#[derive(Debug, Clone)]
pub struct SeenEntry {
    pub partition_key: String,
    /// The decoded data.
    pub data: Vec<u8>,
    pub fate: Fate,
}

impl SeenEntry {
    /// Whether the entry was sent on to kinesis-local.
    pub fn forwarded(&self) -> bool {
        matches!(
            self.fate,
            Fate::Written { .. } | Fate::Rejected { .. } | Fate::CallError { .. }
        )
    }

    pub fn written(&self) -> bool {
        matches!(self.fate, Fate::Written { .. })
    }

    /// The data as text (lossy), for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// One PutRecords call as the proxy saw it.
#[derive(Debug, Clone)]
pub struct PutRecordsCall {
    /// 1-based, in the order the calls arrived.
    pub number: u64,
    /// StreamName, or StreamARN when no name was given.
    pub stream: String,
    /// In request order.
    pub entries: Vec<SeenEntry>,
    /// Set when a [`CallRule`] failed the whole call.
    pub fault: Option<CallFault>,
}

impl PutRecordsCall {
    pub fn forwarded(&self) -> impl Iterator<Item = &SeenEntry> {
        self.entries.iter().filter(|e| e.forwarded())
    }

    pub fn failed(&self) -> impl Iterator<Item = &SeenEntry> {
        self.entries.iter().filter(|e| !e.written())
    }
}

#[derive(Default)]
struct State {
    seed: u64,
    entry_rules: Vec<EntryRule>,
    call_rules: Vec<CallRule>,
    put_calls: u64,
    /// PutRecords attempts seen per distinct data (call faults included).
    attempts: HashMap<Vec<u8>, u32>,
    /// Failures per (entry rule index, data).
    failures: HashMap<(usize, Vec<u8>), u32>,
    calls: Vec<PutRecordsCall>,
    /// Operation names of every request, in arrival order.
    operations: Vec<String>,
}

impl State {
    /// Decides an entry's fate before forwarding: `Some(error)` fails it.
    fn decide(&mut self, data: &[u8]) -> Option<EntryError> {
        let attempt = {
            let count = self.attempts.entry(data.to_vec()).or_insert(0);
            *count += 1;
            *count
        };
        for (index, rule) in self.entry_rules.iter().enumerate() {
            let failed = self
                .failures
                .get(&(index, data.to_vec()))
                .copied()
                .unwrap_or(0);
            if failed >= rule.max_per_data {
                continue;
            }
            let hit = match &rule.matcher {
                Matcher::Marker(marker) => contains(data, marker),
                Matcher::Random(probability) => {
                    let mut hasher = DefaultHasher::new();
                    (self.seed, index, data, attempt).hash(&mut hasher);
                    let mut rng = rand::rngs::StdRng::seed_from_u64(hasher.finish());
                    rng.random::<f64>() < *probability
                }
            };
            if hit {
                *self.failures.entry((index, data.to_vec())).or_insert(0) += 1;
                return Some(rule.error);
            }
        }
        None
    }

    fn record_attempts(&mut self, entries: &[(String, Vec<u8>)]) {
        for (_, data) in entries {
            *self.attempts.entry(data.clone()).or_insert(0) += 1;
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The running proxy. Stops accepting (and drops its connections) when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`: give this to the connector as `aws.url`.
    pub url: String,
    pub port: u16,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`http://host:port`, e.g. `KinesisLocal::endpoint`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("the fault proxy forwards to plain http://, not {upstream}"))
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        let state = Arc::new(Mutex::new(State {
            seed: 0x5eed,
            ..State::default()
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let upstream = upstream.clone();
                let state = shared.clone();
                connections.spawn(async move {
                    let _ = serve(client, &upstream, &state).await;
                });
                // Reap finished connections so the set does not grow without bound.
                while connections.try_join_next().is_some() {}
            }
        });
        FaultProxy {
            url: format!("http://127.0.0.1:{port}"),
            port,
            state,
            task,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Seeds the random entry rules (default 0x5eed).
    pub fn set_seed(&self, seed: u64) {
        self.state().seed = seed;
    }

    /// Adds an entry rule; rules are tried in the order added, the first that fails an entry wins.
    pub fn add_entry_rule(&self, rule: EntryRule) {
        self.state().entry_rules.push(rule);
    }

    /// Adds a call rule; the first rule that selects a call decides its fault.
    pub fn add_call_rule(&self, rule: CallRule) {
        self.state().call_rules.push(rule);
    }

    /// Removes every rule (counters and the log are kept).
    pub fn clear_rules(&self) {
        let mut state = self.state();
        state.entry_rules.clear();
        state.call_rules.clear();
    }

    /// Every PutRecords call so far, by call number.
    pub fn put_records_calls(&self) -> Vec<PutRecordsCall> {
        let mut calls = self.state().calls.clone();
        calls.sort_by_key(|c| c.number);
        calls
    }

    /// The operation name (`PutRecords`, `DescribeStreamSummary`, ...) of every request so far.
    pub fn operations(&self) -> Vec<String> {
        self.state().operations.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Message {
    /// Request line or status line, without CRLF.
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }

    fn status(&self) -> u16 {
        self.start
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// Whether the sender asked to close the connection after this message.
    fn closes(&self) -> bool {
        let version_10 = self.start.starts_with("HTTP/1.0") || self.start.ends_with("HTTP/1.0");
        match self.header("connection") {
            Some(v) => v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")),
            None => version_10,
        }
    }

    /// Serialized with a Content-Length body (chunked framing is undone when reading).
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 512);
        out.extend_from_slice(self.start.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (k, v) in &self.headers {
            if k.eq_ignore_ascii_case("content-length")
                || k.eq_ignore_ascii_case("transfer-encoding")
            {
                continue;
            }
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    fn set_body(&mut self, body: Vec<u8>) {
        self.body = body;
    }

    fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
    }

    fn response(status: u16, reason: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Message {
        let mut all = vec![
            (
                "Content-Type".to_string(),
                wire::JSON_CONTENT_TYPE.to_string(),
            ),
            ("x-amzn-RequestId".to_string(), request_id()),
        ];
        all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Message {
            start: format!("HTTP/1.1 {status} {reason}"),
            headers: all,
            body,
        }
    }
}

fn request_id() -> String {
    let n: u128 = rand::random();
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Reads one message; `None` on a clean EOF before its first byte. `response` messages
/// without a length are read to EOF.
async fn read_message<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    response: bool,
) -> io::Result<Option<Message>> {
    let mut line = String::new();
    // Tolerate stray CRLFs between messages (RFC 9112 §2.2).
    let start = loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if !trimmed.is_empty() {
            break trimmed.to_string();
        }
    };
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Err(invalid("EOF inside the header section"));
        }
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            break;
        }
        let (k, v) = trimmed
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line {trimmed:?}")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut message = Message {
        start,
        headers,
        body: Vec::new(),
    };
    let chunked = message
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let status = message.status();
    if response && (status / 100 == 1 || status == 204 || status == 304) {
        return Ok(Some(message));
    }
    if chunked {
        loop {
            line.clear();
            if reader.read_line(&mut line).await? == 0 {
                return Err(invalid("EOF inside a chunked body"));
            }
            let size_text = line.trim().split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| invalid(format!("bad chunk size {size_text:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    if reader.read_line(&mut line).await? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = message.body.len();
            message.body.resize(start + size, 0);
            reader.read_exact(&mut message.body[start..]).await?;
            line.clear();
            reader.read_line(&mut line).await?;
        }
    } else if let Some(length) = message.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| invalid(format!("bad Content-Length {length:?}")))?;
        message.body.resize(length, 0);
        reader.read_exact(&mut message.body).await?;
    } else if response {
        reader.read_to_end(&mut message.body).await?;
        message.headers.push(("Connection".into(), "close".into()));
    }
    Ok(Some(message))
}

/// A kept-alive connection to kinesis-local.
struct Upstream {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

struct Forwarder<'a> {
    address: &'a str,
    connection: Option<Upstream>,
}

impl Forwarder<'_> {
    async fn connect(&mut self) -> io::Result<&mut Upstream> {
        if self.connection.is_none() {
            let stream = TcpStream::connect(self.address).await?;
            let _ = stream.set_nodelay(true);
            let (reader, writer) = stream.into_split();
            self.connection = Some(Upstream {
                reader: BufReader::new(reader),
                writer,
            });
        }
        Ok(self.connection.as_mut().expect("just connected"))
    }

    async fn exchange(&mut self, request: &[u8]) -> io::Result<Message> {
        let upstream = self.connect().await?;
        upstream.writer.write_all(request).await?;
        read_message(&mut upstream.reader, true)
            .await?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "upstream closed"))
    }

    /// Sends a request and reads the answer; a kept-alive connection the server closed
    /// meanwhile is replaced once.
    async fn forward(&mut self, request: &Message) -> io::Result<Message> {
        let bytes = request.to_bytes();
        let reused = self.connection.is_some();
        let response = match self.exchange(&bytes).await {
            Ok(response) => response,
            Err(_) if reused => {
                self.connection = None;
                self.exchange(&bytes).await?
            }
            Err(e) => return Err(e),
        };
        if response.closes() {
            self.connection = None;
        }
        Ok(response)
    }
}

/// What to do with a client's request.
enum Answer {
    Respond(Message),
    Drop,
}

async fn serve(client: TcpStream, upstream: &str, state: &Mutex<State>) -> io::Result<()> {
    let (reader, mut writer) = client.into_split();
    let mut reader = BufReader::new(reader);
    let mut forwarder = Forwarder {
        address: upstream,
        connection: None,
    };
    while let Some(request) = read_message(&mut reader, false).await? {
        let operation = request
            .header("x-amz-target")
            .map(|t| t.strip_prefix(TARGET_PREFIX).unwrap_or(t).to_string())
            .unwrap_or_default();
        state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .operations
            .push(operation.clone());
        let answer = if operation == "PutRecords" {
            put_records(&request, &mut forwarder, state).await?
        } else {
            Answer::Respond(forwarder.forward(&request).await?)
        };
        match answer {
            Answer::Respond(response) => {
                writer.write_all(&response.to_bytes()).await?;
                writer.flush().await?;
                if request.closes() || response.closes() {
                    break;
                }
            }
            Answer::Drop => break,
        }
    }
    let _ = writer.shutdown().await;
    Ok(())
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// PutRecords in either protocol: a CBOR call is handled (and forwarded upstream) as its
/// JSON equivalent, and the answer goes back to the client in CBOR.
async fn put_records(
    request: &Message,
    forwarder: &mut Forwarder<'_>,
    state: &Mutex<State>,
) -> io::Result<Answer> {
    if !wire::is_cbor(request.header("content-type")) {
        return put_records_json(request, forwarder, state).await;
    }
    let Some(body) = wire::cbor_to_json(&request.body) else {
        return Ok(Answer::Respond(forwarder.forward(request).await?));
    };
    let mut as_json = request.clone();
    as_json.set_header("Content-Type", wire::JSON_CONTENT_TYPE);
    as_json.set_body(serde_json::to_vec(&body).expect("json"));
    Ok(match put_records_json(&as_json, forwarder, state).await? {
        Answer::Respond(mut response) => {
            if let Ok(answer) = serde_json::from_slice::<Value>(&response.body) {
                response.set_header("Content-Type", wire::CBOR_CONTENT_TYPE);
                response.set_body(wire::json_to_cbor(&answer));
            }
            Answer::Respond(response)
        }
        Answer::Drop => Answer::Drop,
    })
}

async fn put_records_json(
    request: &Message,
    forwarder: &mut Forwarder<'_>,
    state: &Mutex<State>,
) -> io::Result<Answer> {
    // Anything unexpected is forwarded untouched and logged as nothing.
    let Ok(mut body) = serde_json::from_slice::<Value>(&request.body) else {
        return Ok(Answer::Respond(forwarder.forward(request).await?));
    };
    let Some(records) = body.get("Records").and_then(Value::as_array).cloned() else {
        return Ok(Answer::Respond(forwarder.forward(request).await?));
    };
    let stream = body
        .get("StreamName")
        .or_else(|| body.get("StreamARN"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut entries = Vec::with_capacity(records.len());
    for record in &records {
        let partition_key = record
            .get("PartitionKey")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let data = record
            .get("Data")
            .and_then(Value::as_str)
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
            .unwrap_or_default();
        entries.push((partition_key, data));
    }

    // Decide everything at once, under the lock.
    let (number, call_fault, decisions) = {
        let mut state = lock(state);
        state.put_calls += 1;
        let number = state.put_calls;
        let fault = state
            .call_rules
            .iter()
            .find(|r| r.selects(number))
            .map(|r| r.fault);
        let decisions: Vec<Option<EntryError>> = match fault {
            Some(_) => {
                state.record_attempts(&entries);
                vec![None; entries.len()]
            }
            None => entries.iter().map(|(_, data)| state.decide(data)).collect(),
        };
        (number, fault, decisions)
    };
    let log = |entries: Vec<SeenEntry>, fault: Option<CallFault>| {
        lock(state).calls.push(PutRecordsCall {
            number,
            stream: stream.clone(),
            entries,
            fault,
        });
    };
    let seen = |fate: &dyn Fn(usize) -> Fate| -> Vec<SeenEntry> {
        entries
            .iter()
            .enumerate()
            .map(|(i, (partition_key, data))| SeenEntry {
                partition_key: partition_key.clone(),
                data: data.clone(),
                fate: fate(i),
            })
            .collect()
    };

    if let Some(fault) = call_fault {
        log(seen(&|_| Fate::CallFault(fault)), Some(fault));
        return Ok(match fault {
            CallFault::DropConnection => Answer::Drop,
            CallFault::Throttle => {
                let body = json!({
                    "__type": "ProvisionedThroughputExceededException",
                    "message": format!("Rate exceeded for stream {stream} under account {ACCOUNT}."),
                });
                Answer::Respond(Message::response(
                    400,
                    "Bad Request",
                    &[("x-amzn-ErrorType", "ProvisionedThroughputExceededException")],
                    serde_json::to_vec(&body).expect("json"),
                ))
            }
            CallFault::InternalError => {
                let body =
                    json!({ "__type": "InternalFailure", "message": "Internal service failure." });
                Answer::Respond(Message::response(
                    500,
                    "Internal Server Error",
                    &[("x-amzn-ErrorType", "InternalFailure")],
                    serde_json::to_vec(&body).expect("json"),
                ))
            }
        });
    }

    let failed_entry = |error: EntryError| json!({ "ErrorCode": error.code(), "ErrorMessage": error.message(&stream) });
    let injected = decisions.iter().filter(|d| d.is_some()).count();

    if injected == entries.len() {
        // Nothing to forward: answer as Kinesis would.
        let results: Vec<Value> = decisions
            .iter()
            .map(|d| failed_entry(d.expect("all failed")))
            .collect();
        let body = json!({
            "FailedRecordCount": injected,
            "Records": results,
            "EncryptionType": "NONE",
        });
        log(
            seen(&|i| Fate::Failed(decisions[i].expect("all failed"))),
            None,
        );
        return Ok(Answer::Respond(Message::response(
            200,
            "OK",
            &[],
            serde_json::to_vec(&body).expect("json"),
        )));
    }

    let mut forwarded_request = request.clone();
    if injected > 0 {
        let kept: Vec<Value> = records
            .iter()
            .zip(&decisions)
            .filter(|(_, d)| d.is_none())
            .map(|(r, _)| r.clone())
            .collect();
        body["Records"] = Value::Array(kept);
        forwarded_request.set_body(serde_json::to_vec(&body).expect("json"));
    }
    let mut response = forwarder.forward(&forwarded_request).await?;
    let status = response.status();
    let upstream_body = serde_json::from_slice::<Value>(&response.body).ok();
    let upstream_results = upstream_body
        .as_ref()
        .and_then(|b| b.get("Records"))
        .and_then(Value::as_array)
        .cloned()
        .filter(|r| status == 200 && r.len() == entries.len() - injected);
    let Some(upstream_results) = upstream_results else {
        // An error for the whole call (or an answer we cannot merge): pass it through.
        log(
            seen(&|i| match decisions[i] {
                Some(error) => Fate::Failed(error),
                None => Fate::CallError { status },
            }),
            None,
        );
        return Ok(Answer::Respond(response));
    };

    let mut upstream_results = upstream_results.into_iter();
    let mut merged = Vec::with_capacity(entries.len());
    let mut fates = Vec::with_capacity(entries.len());
    let mut failed_count = 0;
    for decision in &decisions {
        match decision {
            Some(error) => {
                merged.push(failed_entry(*error));
                fates.push(Fate::Failed(*error));
                failed_count += 1;
            }
            None => {
                let result = upstream_results.next().expect("counted above");
                let text = |k: &str| result.get(k).and_then(Value::as_str).map(str::to_string);
                match text("ErrorCode").filter(|c| !c.is_empty()) {
                    Some(code) => {
                        failed_count += 1;
                        fates.push(Fate::Rejected { code });
                    }
                    None => fates.push(Fate::Written {
                        shard_id: text("ShardId").unwrap_or_default(),
                        sequence_number: text("SequenceNumber").unwrap_or_default(),
                    }),
                }
                merged.push(result);
            }
        }
    }
    let mut new_body = upstream_body.expect("parsed above");
    new_body["Records"] = Value::Array(merged);
    new_body["FailedRecordCount"] = json!(failed_count);
    response.set_body(serde_json::to_vec(&new_body).expect("json"));
    log(seen(&|i| fates[i].clone()), None);
    Ok(Answer::Respond(response))
}
