//! Many small `Run` request messages while the connector is slow: the connection must stay up.
//!
//! Conduit (grpc-go) sends every ack batch and every record batch as its own gRPC message, and
//! grpc-go puts each message in its own HTTP/2 DATA frame. h2 charges each received DATA frame
//! under 256 bytes against a per-connection budget until the application reads it, and answers
//! with GOAWAY `ENHANCE_YOUR_CALM` ("too_many_data_frames") when the budget runs out. These tests
//! drive the server with a raw h2 client so that each message is exactly one frame, as from
//! Conduit, while the source's `ack` or the destination's `write` is held back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use conduit_plugin_runtime::env::{
    PluginEnv, MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE, PROTOCOL_VERSIONS,
};
use conduit_plugin_runtime::proto::connector::v2::{destination, source, Specification};
use conduit_plugin_runtime::{
    serve_on, BoxError, Connector, Destination, Plugin, RawConfig, Record, Source, WriteFuture,
};
use prost::Message;
use tokio::sync::{watch, Semaphore};

/// More messages than the default budget (half of hyper's 1 MiB connection window) allows
/// unread at ~150 bytes of charge each, and fewer than one stream window holds, so that the
/// client never waits for flow control.
const MESSAGES: usize = 8_000;
/// How long the connector is held back while the messages arrive.
const HOLD: Duration = Duration::from_millis(1_500);
const DEADLINE: Duration = Duration::from_secs(30);

/// A source that never produces records and whose `ack` waits for a permit per call.
struct SlowAcker {
    permits: Arc<Semaphore>,
    acked: Arc<Mutex<Vec<Vec<u8>>>>,
}

#[async_trait]
impl Connector for SlowAcker {
    async fn configure(&mut self, _: &RawConfig) -> Result<(), BoxError> {
        Ok(())
    }

    async fn teardown(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

#[async_trait]
impl Source for SlowAcker {
    async fn open(&mut self, _: Option<Vec<u8>>) -> Result<(), BoxError> {
        Ok(())
    }

    async fn read(&self) -> Result<Vec<Record>, BoxError> {
        futures::future::pending().await
    }

    async fn ack(&self, positions: Vec<Vec<u8>>) -> Result<(), BoxError> {
        self.permits.acquire().await?.forget();
        self.acked.lock().unwrap().extend(positions);
        Ok(())
    }
}

/// A destination whose writes finish only once the gate opens.
struct GatedWriter {
    gate: watch::Receiver<bool>,
    handed_over: Arc<AtomicUsize>,
}

#[async_trait]
impl Connector for GatedWriter {
    async fn configure(&mut self, _: &RawConfig) -> Result<(), BoxError> {
        Ok(())
    }

    async fn teardown(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

#[async_trait]
impl Destination for GatedWriter {
    async fn open(&mut self) -> Result<(), BoxError> {
        Ok(())
    }

    fn write(&self, records: Vec<Record>) -> WriteFuture {
        self.handed_over.fetch_add(records.len(), Ordering::SeqCst);
        let mut gate = self.gate.clone();
        Box::pin(async move {
            gate.wait_for(|open| *open).await?;
            Ok(vec![Ok(()); records.len()])
        })
    }
}

struct Served {
    address: std::net::SocketAddr,
    _shutdown: watch::Sender<bool>,
}

async fn serve(source: SlowAcker, destination: GatedWriter) -> Served {
    let vars = HashMap::from([
        (MAGIC_COOKIE_KEY.to_string(), MAGIC_COOKIE_VALUE.to_string()),
        (PROTOCOL_VERSIONS.to_string(), "2".to_string()),
    ]);
    let env = PluginEnv::from_lookup(|key| vars.get(key).cloned()).expect("plugin env");
    let source = Mutex::new(Some(Box::new(source) as Box<dyn Source>));
    let destination = Mutex::new(Some(Box::new(destination) as Box<dyn Destination>));
    let plugin = Plugin {
        specification: Specification::default(),
        new_source: Box::new(move |_| source.lock().unwrap().take().expect("one source")),
        new_destination: Box::new(move |_| destination.lock().unwrap().take().expect("one")),
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let address = listener.local_addr().unwrap();
    let (shutdown, _) = watch::channel(false);
    tokio::spawn(serve_on(listener, plugin, env, shutdown.clone()));
    Served {
        address,
        _shutdown: shutdown,
    }
}

/// A raw HTTP/2 connection; the returned task ends with the connection's error, if any.
async fn connect(
    address: std::net::SocketAddr,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    (client, tokio::spawn(connection))
}

/// Opens a gRPC bidirectional stream on `path`.
async fn open_stream(
    client: &mut h2::client::SendRequest<Bytes>,
    address: std::net::SocketAddr,
    path: &str,
) -> (h2::SendStream<Bytes>, h2::RecvStream) {
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{address}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let mut ready = client.clone().ready().await.unwrap();
    let (response, send) = ready.send_request(request, false).unwrap();
    *client = ready;
    let response = tokio::time::timeout(DEADLINE, response)
        .await
        .expect("response headers")
        .expect("stream accepted");
    assert_eq!(response.status(), 200);
    (send, response.into_body())
}

/// One gRPC message (5-byte prefix + protobuf) = one DATA frame, as grpc-go sends it.
fn frame(message: &impl Message) -> Bytes {
    let mut buffer = BytesMut::with_capacity(5 + message.encoded_len());
    buffer.put_u8(0);
    buffer.put_u32(message.encoded_len() as u32);
    message.encode(&mut buffer).unwrap();
    buffer.freeze()
}

/// Sends each message as its own DATA frame, waiting for flow-control capacity. Returns how
/// many were sent before the stream failed, if it did.
async fn send_each(
    send: &mut h2::SendStream<Bytes>,
    frames: impl Iterator<Item = Bytes>,
) -> Result<usize, String> {
    let mut sent = 0;
    for bytes in frames {
        send.reserve_capacity(bytes.len());
        while send.capacity() < bytes.len() {
            let granted =
                tokio::time::timeout(DEADLINE, std::future::poll_fn(|cx| send.poll_capacity(cx)))
                    .await
                    .map_err(|_| format!("no flow-control capacity after {sent} messages"))?;
            match granted {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("stream failed after {sent} messages: {e}")),
                None => return Err(format!("stream closed after {sent} messages")),
            }
        }
        send.send_data(bytes, false)
            .map_err(|e| format!("sending failed after {sent} messages: {e}"))?;
        sent += 1;
    }
    Ok(sent)
}

/// Fails the test with the connection's own error when sending did not get through.
async fn expect_sent(
    sent: Result<usize, String>,
    connection: tokio::task::JoinHandle<Result<(), h2::Error>>,
) -> tokio::task::JoinHandle<Result<(), h2::Error>> {
    match sent {
        Ok(count) => {
            assert_eq!(count, MESSAGES);
            connection
        }
        Err(error) => {
            let ended = tokio::time::timeout(Duration::from_secs(2), connection).await;
            panic!("{error}; the connection ended with {ended:?}");
        }
    }
}

fn position(i: usize) -> Vec<u8> {
    // About the size of a Kinesis source position for a few shards.
    format!("{i:08}-{}", "p".repeat(90)).into_bytes()
}

fn assert_connection_alive(connection: &tokio::task::JoinHandle<Result<(), h2::Error>>) {
    assert!(
        !connection.is_finished(),
        "the server closed the connection (GOAWAY) under many small messages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_ack_messages_while_ack_is_slow_keep_the_connection() {
    let permits = Arc::new(Semaphore::new(0));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let (_gate, gate_rx) = watch::channel(false);
    let served = serve(
        SlowAcker {
            permits: permits.clone(),
            acked: acked.clone(),
        },
        GatedWriter {
            gate: gate_rx,
            handed_over: Arc::default(),
        },
    )
    .await;
    let (mut client, connection) = connect(served.address).await;
    let (mut send, _records) = open_stream(
        &mut client,
        served.address,
        "/connector.v2.SourcePlugin/Run",
    )
    .await;

    let requests = (0..MESSAGES).map(|i| {
        frame(&source::run::Request {
            ack_positions: vec![position(i)],
        })
    });
    let sent = send_each(&mut send, requests).await;
    let connection = expect_sent(sent, connection).await;
    tokio::time::sleep(HOLD).await;
    assert_connection_alive(&connection);

    permits.add_permits(MESSAGES);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while acked.lock().unwrap().len() < MESSAGES {
        assert_connection_alive(&connection);
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {MESSAGES} acks reached the source",
            acked.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked, (0..MESSAGES).map(position).collect::<Vec<_>>());
    assert_connection_alive(&connection);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_record_messages_while_writes_are_held_keep_the_connection() {
    let (gate, gate_rx) = watch::channel(false);
    let handed_over = Arc::new(AtomicUsize::new(0));
    let served = serve(
        SlowAcker {
            permits: Arc::new(Semaphore::new(0)),
            acked: Arc::default(),
        },
        GatedWriter {
            gate: gate_rx,
            handed_over: handed_over.clone(),
        },
    )
    .await;
    let (mut client, connection) = connect(served.address).await;
    let (mut send, mut acks) = open_stream(
        &mut client,
        served.address,
        "/connector.v2.DestinationPlugin/Run",
    )
    .await;

    let requests = (0..MESSAGES).map(|i| {
        frame(&destination::run::Request {
            records: vec![Record {
                position: format!("{i}").into_bytes(),
                ..Record::default()
            }],
        })
    });
    let sent = send_each(&mut send, requests).await;
    let connection = expect_sent(sent, connection).await;
    tokio::time::sleep(HOLD).await;
    assert_connection_alive(&connection);

    gate.send_replace(true);
    let mut received = Vec::new();
    let mut buffer = BytesMut::new();
    while received.len() < MESSAGES {
        let chunk = tokio::time::timeout(DEADLINE, acks.data())
            .await
            .unwrap_or_else(|_| panic!("only {} of {MESSAGES} acks arrived", received.len()))
            .unwrap_or_else(|| panic!("ack stream ended after {} acks", received.len()))
            .unwrap_or_else(|e| panic!("ack stream failed after {} acks: {e}", received.len()));
        let _ = acks.flow_control().release_capacity(chunk.len());
        buffer.extend_from_slice(&chunk);
        while buffer.len() >= 5 {
            let length = u32::from_be_bytes(buffer[1..5].try_into().unwrap()) as usize;
            if buffer.len() < 5 + length {
                break;
            }
            buffer.advance(5);
            let message = buffer.split_to(length);
            let response = destination::run::Response::decode(message).expect("an ack response");
            for ack in response.acks {
                assert!(ack.error.is_empty(), "unexpected nack: {}", ack.error);
                received.push(String::from_utf8(ack.position).unwrap());
            }
        }
    }
    let expected: Vec<String> = (0..MESSAGES).map(|i| i.to_string()).collect();
    assert_eq!(received, expected);
    assert_eq!(handed_over.load(Ordering::SeqCst), MESSAGES);
    assert_connection_alive(&connection);
}
