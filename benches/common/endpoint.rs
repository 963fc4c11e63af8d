//! The bench endpoint: a minimal loopback HTTP/1.1 Kinesis server (a [`LoopbackServer`]).
//! It answers DescribeStreamSummary, ListStreams, ListShards (one shard), and PutRecords in AWS JSON 1.1 (by counting `"PartitionKey"` occurrences) or AWS CBOR (by
//! reading the `Records` array's length), without parsing or storing anything, so it costs
//! little next to the process under test on a 2-core machine.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::server::LoopbackServer;

/// The stream the endpoint describes when a call names none it can read.
pub const STREAM: &str = "bench";
pub const REGION: &str = "us-east-1";

#[derive(Default)]
pub struct EndpointStats {
    pub put_calls: AtomicU64,
    pub put_entries: AtomicU64,
    /// PutRecords request body bytes: what SigV4 hashes.
    pub put_body_bytes: AtomicU64,
    /// User records in the PutRecords entries: KPL aggregates count their records (AWS CBOR
    /// bodies only; JSON bodies count one per entry).
    pub put_user_records: AtomicU64,
    /// PUT payload units: per entry, data plus partition key in 25,000-byte units, rounded up
    /// (AWS CBOR bodies only).
    pub put_payload_units: AtomicU64,
    pub other_calls: AtomicU64,
    pub rejected: AtomicU64,
}

pub struct Endpoint {
    pub url: String,
    pub stats: Arc<EndpointStats>,
    server: LoopbackServer,
}

impl Endpoint {
    pub fn start() -> Result<Endpoint, String> {
        let stats = Arc::new(EndpointStats::default());
        let served = stats.clone();
        let server =
            LoopbackServer::start(move |socket, id| serve_connection(socket, served.clone(), id))?;
        Ok(Endpoint {
            url: format!("http://{}", server.addr),
            stats,
            server,
        })
    }

    /// CPU ticks of the endpoint thread so far.
    pub fn ticks(&self) -> Option<u64> {
        self.server.ticks()
    }

    /// PutRecords entries counted so far.
    pub fn entries(&self) -> u64 {
        self.stats.put_entries.load(Ordering::Relaxed)
    }

    /// User records counted so far (see [`EndpointStats::put_user_records`]).
    pub fn user_records(&self) -> u64 {
        self.stats.put_user_records.load(Ordering::Relaxed)
    }

    /// PUT payload units counted so far.
    pub fn payload_units(&self) -> u64 {
        self.stats.put_payload_units.load(Ordering::Relaxed)
    }
}

struct Head {
    content_length: usize,
    target: String,
    /// The body is AWS CBOR (`application/x-amz-cbor-1.1`), and so is the answer.
    cbor: bool,
    expect_continue: bool,
    close: bool,
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

fn parse_head(head: &[u8]) -> Result<Head, &'static str> {
    let text = std::str::from_utf8(head).map_err(|_| "request head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    if !request_line.starts_with("POST ") {
        return Err("only POST is served");
    }
    let mut parsed = Head {
        content_length: 0,
        target: String::new(),
        cbor: false,
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
        } else if name.eq_ignore_ascii_case("content-type") {
            parsed.cbor = value.eq_ignore_ascii_case("application/x-amz-cbor-1.1");
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

/// First `"` in `s`, eight bytes at a time.
fn find_quote(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const QUOTES: u64 = LO * b'"' as u64;
    let mut i = 0;
    while i + 8 <= s.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&s[i..i + 8]);
        let v = u64::from_le_bytes(word) ^ QUOTES;
        let zero = v.wrapping_sub(LO) & !v & HI;
        if zero != 0 {
            return Some(i + (zero.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    s[i..].iter().position(|&b| b == b'"').map(|p| i + p)
}

/// Entries of a PutRecords body: occurrences of the member name `"PartitionKey"`.
fn count_partition_keys(body: &[u8]) -> usize {
    const NEEDLE: &[u8] = b"\"PartitionKey\"";
    let mut count = 0;
    let mut i = 0;
    while let Some(q) = find_quote(&body[i..]) {
        let at = i + q;
        if body[at..].starts_with(NEEDLE) {
            count += 1;
            i = at + NEEDLE.len();
        } else {
            i = at + 1;
        }
    }
    count
}

/// Entries of an AWS CBOR PutRecords body: the length of its `Records` array when the body
/// starts with it (as the connector writes it), else occurrences of the text `PartitionKey`.
fn count_cbor_entries(body: &[u8]) -> usize {
    const RECORDS_FIRST: &[u8] = b"\xa2\x67Records";
    if let Some(rest) = body.strip_prefix(RECORDS_FIRST) {
        let be = |n: usize| {
            rest.get(1..1 + n)
                .map(|b| b.iter().fold(0usize, |acc, &x| acc << 8 | usize::from(x)))
        };
        let length = match rest.first().map(|&b| (b >> 5, b & 0x1f)) {
            Some((4, info @ 0..=23)) => Some(usize::from(info)),
            Some((4, 24)) => be(1),
            Some((4, 25)) => be(2),
            Some((4, 26)) => be(4),
            _ => None,
        };
        if let Some(length) = length {
            return length;
        }
    }
    const NEEDLE: &[u8] = b"\x6cPartitionKey";
    body.windows(NEEDLE.len()).filter(|w| *w == NEEDLE).count()
}

/// Bytes of one PUT payload unit (AWS: "25KB payload chunks"; a 1 MB record is 40 units).
pub const PAYLOAD_UNIT: usize = 25_000;
const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// The argument of a CBOR item head at `at` (definite lengths only): (major, value, next).
fn cbor_head(body: &[u8], at: usize) -> Option<(u8, usize, usize)> {
    let first = *body.get(at)?;
    let (major, info) = (first >> 5, first & 0x1f);
    let be = |n: usize| {
        body.get(at + 1..at + 1 + n)
            .map(|b| b.iter().fold(0usize, |acc, &x| acc << 8 | usize::from(x)))
    };
    match info {
        0..=23 => Some((major, usize::from(info), at + 1)),
        24 => Some((major, be(1)?, at + 2)),
        25 => Some((major, be(2)?, at + 3)),
        26 => Some((major, be(4)?, at + 5)),
        27 => Some((major, be(8)?, at + 9)),
        _ => None,
    }
}

/// User records of a KPL aggregate (its protobuf's `records` fields), or 1 for a plain record.
fn kpl_user_records(data: &[u8]) -> usize {
    if !data.starts_with(&KPL_MAGIC) || data.len() <= KPL_MAGIC.len() + 16 {
        return 1;
    }
    let body = &data[KPL_MAGIC.len()..data.len() - 16];
    let varint = |at: &mut usize| -> Option<usize> {
        let mut value = 0usize;
        for shift in (0..64).step_by(7) {
            let byte = *body.get(*at)?;
            *at += 1;
            value |= usize::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    };
    let mut at = 0;
    let mut records = 0;
    while at < body.len() {
        let Some(tag) = varint(&mut at) else { return 1 };
        match tag & 7 {
            0 => {
                if varint(&mut at).is_none() {
                    return 1;
                }
            }
            2 => {
                let Some(len) = varint(&mut at) else { return 1 };
                at += len;
            }
            _ => return 1,
        }
        if tag >> 3 == 3 {
            records += 1;
        }
    }
    records
}

/// User records and payload units of an AWS CBOR PutRecords body as the connector writes it
/// (definite lengths); `None` for anything else.
fn cbor_entry_stats(body: &[u8]) -> Option<(usize, usize)> {
    const RECORDS_FIRST: &[u8] = b"\xa2\x67Records";
    let rest_at = RECORDS_FIRST.len();
    if !body.starts_with(RECORDS_FIRST) {
        return None;
    }
    let (major, entries, mut at) = cbor_head(body, rest_at)?;
    if major != 4 {
        return None;
    }
    let (mut users, mut units) = (0, 0);
    for _ in 0..entries {
        let (major, members, next) = cbor_head(body, at)?;
        if major != 5 {
            return None;
        }
        at = next;
        let mut size = 0;
        for _ in 0..members {
            let (_, key_len, key_at) = cbor_head(body, at)?;
            let key = body.get(key_at..key_at + key_len)?;
            let (_, value_len, value_at) = cbor_head(body, key_at + key_len)?;
            let value = body.get(value_at..value_at + value_len)?;
            match key {
                b"Data" => {
                    users += kpl_user_records(value);
                    size += value.len();
                }
                b"PartitionKey" => size += value.len(),
                _ => {}
            }
            at = value_at + value_len;
        }
        units += size.div_ceil(PAYLOAD_UNIT).max(1);
    }
    Some((users, units))
}

/// The CBOR PutRecords answer for `n` written entries.
fn cbor_put_records_answer(body_buf: &mut Vec<u8>, n: usize, conn: u64, seq: &mut u64) {
    use conduit_connector_kinesis::testing::cbor::Writer;
    let mut sequence = String::with_capacity(56);
    let mut writer = Writer(body_buf);
    writer.map(2);
    writer.text("FailedRecordCount");
    writer.unsigned(0);
    writer.text("Records");
    writer.array(n);
    for _ in 0..n {
        *seq += 1;
        sequence.clear();
        let _ = write!(sequence, "4960{:04}{:048}", conn % 10_000, *seq);
        writer.map(2);
        writer.text("SequenceNumber");
        writer.text(&sequence);
        writer.text("ShardId");
        writer.text("shardId-000000000000");
    }
}

/// The JSON PutRecords answer for `n` written entries.
fn json_put_records_answer(body_buf: &mut Vec<u8>, n: usize, conn: u64, seq: &mut u64) {
    body_buf.extend_from_slice(b"{\"FailedRecordCount\":0,\"Records\":[");
    for i in 0..n {
        if i > 0 {
            body_buf.push(b',');
        }
        *seq += 1;
        let _ = write!(
            VecWriter(body_buf),
            "{{\"SequenceNumber\":\"4960{:04}{:048}\",\"ShardId\":\"shardId-000000000000\"}}",
            conn % 10_000,
            *seq
        );
    }
    body_buf.extend_from_slice(b"]}");
}

/// The string value of `"member":"..."` in a small JSON body (no escapes expected).
fn json_string<'a>(body: &'a [u8], member: &str) -> Option<&'a str> {
    let needle = format!("\"{member}\":\"");
    let start = body
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())?
        + needle.len();
    let len = find_quote(&body[start..])?;
    std::str::from_utf8(&body[start..start + len]).ok()
}

fn respond(
    out: &mut Vec<u8>,
    body_buf: &mut Vec<u8>,
    head: &Head,
    body: &[u8],
    stats: &EndpointStats,
    conn: u64,
    seq: &mut u64,
) {
    body_buf.clear();
    let operation = head.target.rsplit('.').next().unwrap_or("");
    let status = match operation {
        "PutRecords" => {
            let n = if head.cbor {
                count_cbor_entries(body)
            } else {
                count_partition_keys(body)
            };
            let (users, units) = if head.cbor {
                cbor_entry_stats(body).unwrap_or((n, 0))
            } else {
                (n, 0)
            };
            stats.put_calls.fetch_add(1, Ordering::Relaxed);
            stats.put_entries.fetch_add(n as u64, Ordering::Relaxed);
            stats
                .put_user_records
                .fetch_add(users as u64, Ordering::Relaxed);
            stats
                .put_payload_units
                .fetch_add(units as u64, Ordering::Relaxed);
            stats
                .put_body_bytes
                .fetch_add(body.len() as u64, Ordering::Relaxed);
            if head.cbor {
                cbor_put_records_answer(body_buf, n, conn, seq);
            } else {
                json_put_records_answer(body_buf, n, conn, seq);
            }
            "200 OK"
        }
        "DescribeStreamSummary" => {
            stats.other_calls.fetch_add(1, Ordering::Relaxed);
            let name = json_string(body, "StreamName")
                .or_else(|| json_string(body, "StreamARN").and_then(|arn| arn.rsplit('/').next()))
                .unwrap_or(STREAM);
            let _ = write!(
                VecWriter(body_buf),
                "{{\"StreamDescriptionSummary\":{{\"StreamName\":\"{name}\",\
                 \"StreamARN\":\"arn:aws:kinesis:{REGION}:000000000000:stream/{name}\",\
                 \"StreamStatus\":\"ACTIVE\",\"StreamModeDetails\":{{\"StreamMode\":\"PROVISIONED\"}},\
                 \"RetentionPeriodHours\":24,\"StreamCreationTimestamp\":1767225600,\
                 \"EnhancedMonitoring\":[{{\"ShardLevelMetrics\":[]}}],\"EncryptionType\":\"NONE\",\
                 \"OpenShardCount\":1,\"ConsumerCount\":0}}}}"
            );
            "200 OK"
        }
        "ListShards" => {
            // One shard over the whole hash key range (what aggregation packs by).
            stats.other_calls.fetch_add(1, Ordering::Relaxed);
            let _ = write!(
                VecWriter(body_buf),
                "{{\"Shards\":[{{\"ShardId\":\"shardId-000000000000\",\
                 \"HashKeyRange\":{{\"StartingHashKey\":\"0\",\
                 \"EndingHashKey\":\"340282366920938463463374607431768211455\"}},\
                 \"SequenceNumberRange\":{{\"StartingSequenceNumber\":\"0\"}}}}]}}"
            );
            "200 OK"
        }
        "ListStreams" => {
            stats.other_calls.fetch_add(1, Ordering::Relaxed);
            let _ = write!(
                VecWriter(body_buf),
                "{{\"HasMoreStreams\":false,\"StreamNames\":[\"{STREAM}\"]}}"
            );
            "200 OK"
        }
        _ => {
            stats.rejected.fetch_add(1, Ordering::Relaxed);
            let _ = write!(
                VecWriter(body_buf),
                "{{\"__type\":\"UnknownOperationException\",\"message\":\"the bench endpoint does not serve {:?}\"}}",
                head.target
            );
            "400 Bad Request"
        }
    };
    out.clear();
    let content_type = if head.cbor && operation == "PutRecords" {
        "application/x-amz-cbor-1.1"
    } else {
        "application/x-amz-json-1.1"
    };
    let _ = write!(
        VecWriter(out),
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nx-amzn-RequestId: bench\r\n\r\n",
        body_buf.len()
    );
    out.extend_from_slice(body_buf);
}

/// `fmt::Write` into a byte vector.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

async fn serve_connection(mut socket: TcpStream, stats: Arc<EndpointStats>, conn: u64) {
    const MAX_HEAD: usize = 64 * 1024;
    const MAX_BODY: usize = 64 * 1024 * 1024;
    let mut buf = vec![0u8; 1024 * 1024];
    let mut filled = 0usize;
    let mut out = Vec::with_capacity(64 * 1024);
    let mut body_buf = Vec::with_capacity(64 * 1024);
    let mut seq = 0u64;
    // The parsed head of the request being read: (head length incl. blank line, head).
    let mut pending: Option<(usize, Head)> = None;
    let mut continued = false;
    loop {
        // Serve every complete request in the buffer.
        loop {
            if pending.is_none() {
                let Some(end) = find_head_end(&buf[..filled.min(MAX_HEAD)]) else {
                    if filled >= MAX_HEAD {
                        stats.rejected.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    break;
                };
                match parse_head(&buf[..end]) {
                    Ok(head) if head.content_length <= MAX_BODY => pending = Some((end + 4, head)),
                    _ => {
                        stats.rejected.fetch_add(1, Ordering::Relaxed);
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
            respond(
                &mut out,
                &mut body_buf,
                head,
                &buf[*head_len..total],
                &stats,
                conn,
                &mut seq,
            );
            let close = head.close;
            if socket.write_all(&out).await.is_err() || close {
                return;
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
