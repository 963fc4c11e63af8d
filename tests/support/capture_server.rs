//! A tiny HTTP/1.1 server on 127.0.0.1 that records every request (method, path, headers,
//! body) and answers each with a canned response chosen by a closure. Built on tokio only.
//!
//! ```ignore
//! let server = support::capture_server::CaptureServer::start(|req| {
//!     CannedResponse::aws_json(200, r#"{"ok":true}"#)
//! })
//! .await;
//! // ... point a client at server.url ...
//! let requests = server.requests();
//! ```
//!
//! Connections are kept alive (HTTP/1.1 default) until the peer closes them. Bodies are read
//! by `Content-Length` or `Transfer-Encoding: chunked`. The server stops when dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct CapturedRequest {
    pub method: String,
    /// The request target, e.g. `/` or `/path?query`.
    pub path: String,
    /// Header names as sent (case kept), in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl CapturedRequest {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as `application/x-www-form-urlencoded`.
    pub fn form(&self) -> HashMap<String, String> {
        self.body_text()
            .split('&')
            .filter(|part| !part.is_empty())
            .map(|part| {
                let (k, v) = part.split_once('=').unwrap_or((part, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }

    /// Everything received, as one string (for "must not contain" checks and messages).
    pub fn dump(&self) -> String {
        let mut out = format!("{} {}\n", self.method, self.path);
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {v}\n"));
        }
        out.push('\n');
        out.push_str(&self.body_text());
        out
    }
}

/// What the server answers.
#[derive(Debug, Clone)]
pub struct CannedResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl CannedResponse {
    pub fn new(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Self {
        CannedResponse {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.into(),
        }
    }

    /// An AWS JSON 1.1 response (`application/x-amz-json-1.1`).
    pub fn aws_json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self::new(
            status,
            &[("Content-Type", "application/x-amz-json-1.1")],
            body,
        )
    }

    /// An XML response (`text/xml`), as AWS query services (STS) send.
    pub fn xml(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self::new(status, &[("Content-Type", "text/xml")], body)
    }
}

type Responder = dyn Fn(&CapturedRequest) -> CannedResponse + Send + Sync + 'static;

pub struct CaptureServer {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub url: String,
    pub port: u16,
    requests: Arc<Mutex<Vec<CapturedRequest>>>,
    task: JoinHandle<()>,
}

impl CaptureServer {
    /// Binds 127.0.0.1 on a free port and serves until dropped.
    pub async fn start<F>(respond: F) -> CaptureServer
    where
        F: Fn(&CapturedRequest) -> CannedResponse + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let respond: Arc<Responder> = Arc::new(respond);
        let log = requests.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                connections.spawn(serve_connection(stream, log.clone(), respond.clone()));
                // Reap finished connection tasks so the set does not grow.
                while connections.try_join_next().is_some() {}
            }
        });
        CaptureServer {
            url: format!("http://127.0.0.1:{port}"),
            port,
            requests,
            task,
        }
    }

    /// All requests received so far, in arrival order.
    pub fn requests(&self) -> Vec<CapturedRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for CaptureServer {
    fn drop(&mut self) {
        // Dropping the JoinSet inside the task aborts the connection tasks too.
        self.task.abort();
    }
}

async fn serve_connection(
    stream: TcpStream,
    log: Arc<Mutex<Vec<CapturedRequest>>>,
    respond: Arc<Responder>,
) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let request = match read_request(&mut reader).await {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => return,
        };
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        log.lock().unwrap().push(request.clone());
        let response = respond(&request);
        if write.write_all(&encode(&response)).await.is_err() {
            return;
        }
        let _ = write.flush().await;
        if close {
            return;
        }
    }
}

/// Reads one request; `Ok(None)` when the peer closed the connection between requests.
async fn read_request<R>(reader: &mut R) -> std::io::Result<Option<CapturedRequest>>
where
    R: AsyncBufReadExt + Unpin,
{
    let mut line = String::new();
    // Tolerate stray empty lines between requests.
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();

    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Err(eof());
        }
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            break;
        }
        if let Some((k, v)) = trimmed.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut request = CapturedRequest {
        method,
        path,
        headers,
        body: Vec::new(),
    };

    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        request.body = read_chunked(reader).await?;
    } else if let Some(len) = request
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        let mut body = vec![0; len];
        reader.read_exact(&mut body).await?;
        request.body = body;
    }
    Ok(Some(request))
}

async fn read_chunked<R>(reader: &mut R) -> std::io::Result<Vec<u8>>
where
    R: AsyncBufReadExt + Unpin,
{
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Err(eof());
        }
        let size_text = line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                line.clear();
                if reader.read_line(&mut line).await? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).await?;
        line.clear();
        reader.read_line(&mut line).await?; // CRLF after the chunk
    }
}

fn encode(response: &CannedResponse) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (k, v) in &response.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", response.body.len()));
    let mut out = head.into_bytes();
    out.extend_from_slice(&response.body);
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

fn eof() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "connection closed mid-request",
    )
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space, `%XX` a byte).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A Kinesis DescribeStreamSummary answer (awsJson1_1 body) for an ACTIVE two-shard stream of
/// account 123456789012, as fake Kinesis endpoints return it.
pub fn describe_stream_summary_body(stream: &str, region: &str) -> String {
    serde_json::json!({
        "StreamDescriptionSummary": {
            "StreamName": stream,
            "StreamARN": format!("arn:aws:kinesis:{region}:123456789012:stream/{stream}"),
            "StreamStatus": "ACTIVE",
            "StreamModeDetails": { "StreamMode": "PROVISIONED" },
            "RetentionPeriodHours": 24,
            "StreamCreationTimestamp": 1_700_000_000.5,
            "EnhancedMonitoring": [],
            "EncryptionType": "NONE",
            "OpenShardCount": 2,
            "ConsumerCount": 0
        }
    })
    .to_string()
}
