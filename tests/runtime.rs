//! The generic plugin runtime (`conduit_connector_kinesis::plugin`) served in-process with
//! small test connectors, driven over gRPC with tonic clients. Ports the relevant cases of
//! Conduit's plugin acceptance suite (`pkg/plugin/connector/acceptance_testing.go`, see
//! shared/docs/conduit-protocol.md §7.2) plus the runtime's own promises: in-order acks,
//! Stop semantics, prompt Teardown.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use conduit_connector_kinesis::plugin::env::{
    PluginEnv, MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE, MAX_RECEIVE_RECORD_SIZE, PROTOCOL_VERSIONS,
};
use conduit_connector_kinesis::plugin::{
    serve_on, BoxError, Connector, Destination, Plugin, RawConfig, Record, Source, WriteFuture,
    WriteOutcome,
};
use conduit_connector_kinesis::proto::connector::v2::destination_plugin_client::DestinationPluginClient;
use conduit_connector_kinesis::proto::connector::v2::source_plugin_client::SourcePluginClient;
use conduit_connector_kinesis::proto::connector::v2::{destination, source, Specification};
use conduit_connector_kinesis::proto::opencdc::v1::{data, Change, Data, Operation};
use prost_types::value::Kind;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

/// Upper bound for anything that should happen "now".
const PROMPTLY: Duration = Duration::from_secs(2);
/// How long a test waits to be reasonably sure something does NOT happen.
const QUIET: Duration = Duration::from_millis(150);

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Lifecycle {
    Created(RawConfig),
    Updated(RawConfig, RawConfig),
    Deleted(RawConfig),
}

/// A gated write waiting for the test: (group index, positions, release).
type Gate = (usize, Vec<Vec<u8>>, Option<oneshot::Sender<()>>);

/// Everything the test connectors saw, shared with the test.
#[derive(Default)]
struct Calls {
    configured: Mutex<Vec<RawConfig>>,
    opened: Mutex<Vec<Option<Vec<u8>>>>,
    acks: Mutex<Vec<Vec<Vec<u8>>>>,
    written: Mutex<Vec<Vec<Record>>>,
    lifecycle: Mutex<Vec<Lifecycle>>,
    teardowns: AtomicUsize,
    /// Completed reads of an endless source (= the next position).
    reads: AtomicU64,
    gates: Mutex<Vec<Gate>>,
    /// Group indexes in the order their write work finished.
    completed: Mutex<Vec<usize>>,
    changed: Notify,
}

impl Calls {
    fn acks(&self) -> Vec<Vec<Vec<u8>>> {
        self.acks.lock().unwrap().clone()
    }

    /// Waits until `check` holds (re-checked whenever a connector records something).
    async fn wait_for(&self, what: &str, check: impl Fn(&Calls) -> bool) {
        let deadline = Instant::now() + PROMPTLY;
        loop {
            let notified = self.changed.notified();
            if check(self) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("timed out waiting for {what}");
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(20)), notified).await;
        }
    }

    /// Releases the gate of write group `index`.
    fn release(&self, index: usize) {
        let mut gates = self.gates.lock().unwrap();
        let gate = gates
            .iter_mut()
            .find(|(i, _, _)| *i == index)
            .unwrap_or_else(|| panic!("no gated write #{index}"));
        gate.2
            .take()
            .expect("gate released twice")
            .send(())
            .unwrap();
    }
}

/// What one `Source::read` call does.
enum ReadStep {
    Records(Vec<Record>),
    Fail(String),
}

enum ReadMode {
    /// Plays the steps, then blocks forever (like a source with no new data).
    Script(Mutex<VecDeque<ReadStep>>),
    /// One record per read, positions "0", "1", ...; each read takes a millisecond. The
    /// payload has the given size.
    Endless(usize),
}

struct TestSource {
    calls: Arc<Calls>,
    mode: ReadMode,
    ack_error: Option<String>,
}

impl TestSource {
    fn script(calls: &Arc<Calls>, steps: Vec<ReadStep>) -> Self {
        TestSource {
            calls: calls.clone(),
            mode: ReadMode::Script(Mutex::new(steps.into())),
            ack_error: None,
        }
    }

    fn idle(calls: &Arc<Calls>) -> Self {
        Self::script(calls, Vec::new())
    }

    fn endless(calls: &Arc<Calls>) -> Self {
        Self::endless_with_payload(calls, 16)
    }

    fn endless_with_payload(calls: &Arc<Calls>, payload_len: usize) -> Self {
        TestSource {
            calls: calls.clone(),
            mode: ReadMode::Endless(payload_len),
            ack_error: None,
        }
    }
}

#[async_trait]
impl Connector for TestSource {
    async fn configure(&mut self, config: &RawConfig) -> Result<(), BoxError> {
        if config.contains_key("invalid") {
            return Err("parameter \"invalid\" is not allowed".into());
        }
        self.calls.configured.lock().unwrap().push(config.clone());
        Ok(())
    }

    async fn teardown(&mut self) -> Result<(), BoxError> {
        self.calls.teardowns.fetch_add(1, Ordering::SeqCst);
        self.calls.changed.notify_waiters();
        Ok(())
    }

    async fn lifecycle_on_created(&mut self, config: &RawConfig) -> Result<(), BoxError> {
        let event = Lifecycle::Created(config.clone());
        self.calls.lifecycle.lock().unwrap().push(event);
        Ok(())
    }

    async fn lifecycle_on_updated(
        &mut self,
        before: &RawConfig,
        after: &RawConfig,
    ) -> Result<(), BoxError> {
        let event = Lifecycle::Updated(before.clone(), after.clone());
        self.calls.lifecycle.lock().unwrap().push(event);
        Ok(())
    }

    async fn lifecycle_on_deleted(&mut self, config: &RawConfig) -> Result<(), BoxError> {
        let event = Lifecycle::Deleted(config.clone());
        self.calls.lifecycle.lock().unwrap().push(event);
        Ok(())
    }
}

#[async_trait]
impl Source for TestSource {
    async fn open(&mut self, position: Option<Vec<u8>>) -> Result<(), BoxError> {
        self.calls.opened.lock().unwrap().push(position);
        Ok(())
    }

    async fn read(&self) -> Result<Vec<Record>, BoxError> {
        match &self.mode {
            ReadMode::Script(steps) => {
                let step = steps.lock().unwrap().pop_front();
                match step {
                    Some(ReadStep::Records(records)) => Ok(records),
                    Some(ReadStep::Fail(message)) => Err(message.into()),
                    None => futures::future::pending().await,
                }
            }
            ReadMode::Endless(payload_len) => {
                // Cancel-safe: the position is taken only once the read completes.
                tokio::time::sleep(Duration::from_millis(1)).await;
                let n = self.calls.reads.fetch_add(1, Ordering::SeqCst);
                let mut record = raw_record(&n.to_string());
                record.payload.as_mut().unwrap().after = raw(&vec![b'x'; *payload_len]);
                Ok(vec![record])
            }
        }
    }

    async fn ack(&self, positions: Vec<Vec<u8>>) -> Result<(), BoxError> {
        self.calls.acks.lock().unwrap().push(positions);
        self.calls.changed.notify_waiters();
        match &self.ack_error {
            Some(message) => Err(message.clone().into()),
            None => Ok(()),
        }
    }
}

enum WriteMode {
    /// Every record is written at once; records whose position is in the map are nacked.
    Immediate(HashMap<Vec<u8>, String>),
    /// Each group is written by a spawned task that waits for the test to release it.
    Gated,
    /// The write future fails as a whole.
    Fail(String),
}

struct TestDestination {
    calls: Arc<Calls>,
    mode: WriteMode,
    groups: AtomicUsize,
}

impl TestDestination {
    fn new(calls: &Arc<Calls>, mode: WriteMode) -> Self {
        TestDestination {
            calls: calls.clone(),
            mode,
            groups: AtomicUsize::new(0),
        }
    }

    fn acking(calls: &Arc<Calls>) -> Self {
        Self::new(calls, WriteMode::Immediate(HashMap::new()))
    }
}

#[async_trait]
impl Connector for TestDestination {
    async fn configure(&mut self, config: &RawConfig) -> Result<(), BoxError> {
        self.calls.configured.lock().unwrap().push(config.clone());
        Ok(())
    }

    async fn teardown(&mut self) -> Result<(), BoxError> {
        self.calls.teardowns.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn lifecycle_on_created(&mut self, config: &RawConfig) -> Result<(), BoxError> {
        let event = Lifecycle::Created(config.clone());
        self.calls.lifecycle.lock().unwrap().push(event);
        Ok(())
    }

    async fn lifecycle_on_updated(
        &mut self,
        before: &RawConfig,
        after: &RawConfig,
    ) -> Result<(), BoxError> {
        let event = Lifecycle::Updated(before.clone(), after.clone());
        self.calls.lifecycle.lock().unwrap().push(event);
        Ok(())
    }

    async fn lifecycle_on_deleted(&mut self, config: &RawConfig) -> Result<(), BoxError> {
        let event = Lifecycle::Deleted(config.clone());
        self.calls.lifecycle.lock().unwrap().push(event);
        Ok(())
    }
}

#[async_trait]
impl Destination for TestDestination {
    async fn open(&mut self) -> Result<(), BoxError> {
        self.calls.opened.lock().unwrap().push(None);
        Ok(())
    }

    fn write(&self, records: Vec<Record>) -> WriteFuture {
        let index = self.groups.fetch_add(1, Ordering::SeqCst);
        let positions: Vec<Vec<u8>> = records.iter().map(|r| r.position.clone()).collect();
        self.calls.written.lock().unwrap().push(records);
        self.calls.changed.notify_waiters();
        match &self.mode {
            WriteMode::Immediate(nacks) => {
                let outcomes: Vec<WriteOutcome> = positions
                    .iter()
                    .map(|p| match nacks.get(p) {
                        Some(reason) => Err(reason.clone()),
                        None => Ok(()),
                    })
                    .collect();
                Box::pin(async move { Ok(outcomes) })
            }
            WriteMode::Fail(message) => {
                let message = message.clone();
                Box::pin(async move { Err(message.into()) })
            }
            WriteMode::Gated => {
                let (release, released) = oneshot::channel();
                let count = positions.len();
                self.calls
                    .gates
                    .lock()
                    .unwrap()
                    .push((index, positions, Some(release)));
                let calls = self.calls.clone();
                // The work runs on its own, so groups can finish in any order.
                let work = tokio::spawn(async move {
                    let _ = released.await;
                    calls.completed.lock().unwrap().push(index);
                    calls.changed.notify_waiters();
                });
                Box::pin(async move {
                    work.await?;
                    Ok(vec![Ok(()); count])
                })
            }
        }
    }
}

/// `serve_on` on 127.0.0.1:0 with one test source and one test destination.
struct Server {
    address: std::net::SocketAddr,
    channel: Channel,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Server {
    async fn start(source: TestSource, destination: TestDestination) -> Server {
        Self::start_with_env(source, destination, &[]).await
    }

    async fn start_with_env(
        source: TestSource,
        destination: TestDestination,
        extra_env: &[(&str, &str)],
    ) -> Server {
        let mut vars: HashMap<String, String> = HashMap::from([
            (MAGIC_COOKIE_KEY.to_string(), MAGIC_COOKIE_VALUE.to_string()),
            (PROTOCOL_VERSIONS.to_string(), "1,2".to_string()),
        ]);
        vars.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let env = PluginEnv::from_lookup(|key| vars.get(key).cloned()).expect("plugin env");

        let source: Mutex<Option<Box<dyn Source>>> = Mutex::new(Some(Box::new(source)));
        let destination: Mutex<Option<Box<dyn Destination>>> =
            Mutex::new(Some(Box::new(destination)));
        let plugin = Plugin {
            specification: Specification {
                name: "test".into(),
                ..Default::default()
            },
            new_source: Box::new(move |_| source.lock().unwrap().take().expect("one source")),
            new_destination: Box::new(move |_| {
                destination.lock().unwrap().take().expect("one destination")
            }),
        };

        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind 127.0.0.1:0");
        let address = listener.local_addr().unwrap();
        let (shutdown, _) = watch::channel(false);
        let task = tokio::spawn(serve_on(listener, plugin, env, shutdown.clone()));
        let channel = Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .expect("connect to the in-process server");
        Server {
            address,
            channel,
            shutdown,
            task,
        }
    }

    fn source(&self) -> SourcePluginClient<Channel> {
        SourcePluginClient::new(self.channel.clone())
    }

    fn destination(&self) -> DestinationPluginClient<Channel> {
        DestinationPluginClient::new(self.channel.clone())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

fn raw(bytes: &[u8]) -> Option<Data> {
    Some(Data {
        data: Some(data::Data::RawData(bytes.to_vec().into())),
    })
}

fn structured(fields: &[(&str, Kind)]) -> Option<Data> {
    Some(Data {
        data: Some(data::Data::StructuredData(prost_types::Struct {
            fields: fields
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        prost_types::Value {
                            kind: Some(v.clone()),
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>(),
        })),
    })
}

fn raw_record(position: &str) -> Record {
    Record {
        position: position.as_bytes().to_vec(),
        operation: Operation::Create as i32,
        metadata: Default::default(),
        key: raw(format!("key-{position}").as_bytes()),
        payload: Some(Change {
            before: None,
            after: raw(format!("payload-{position}").as_bytes()),
        }),
    }
}

/// A record like Conduit's acceptance test sends from a source: metadata with an empty
/// value, `payload.before` unset.
fn source_record(i: usize) -> Record {
    Record {
        position: format!("pos-{i}").into_bytes(),
        operation: Operation::Snapshot as i32,
        metadata: conduit_connector_kinesis::plugin::Metadata::from([
            ("opencdc.collection".to_string(), "orders".to_string()),
            ("empty".to_string(), String::new()),
        ]),
        key: raw(format!("key-{i}").as_bytes()),
        payload: Some(Change {
            before: None,
            after: structured(&[
                ("i", Kind::NumberValue(i as f64)),
                ("name", Kind::StringValue(format!("record {i}"))),
            ]),
        }),
    }
}

fn positions(records: &[Record]) -> Vec<Vec<u8>> {
    records.iter().map(|r| r.position.clone()).collect()
}

fn p(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// The next message of a response stream, or a panic after [`PROMPTLY`].
async fn next<T>(stream: &mut Streaming<T>) -> Result<Option<T>, Status> {
    tokio::time::timeout(PROMPTLY, stream.message())
        .await
        .expect("no message on the stream within 2 s")
}

/// Opens a source Run stream; the returned sender sends ack requests.
async fn source_run(
    server: &Server,
) -> (
    mpsc::Sender<source::run::Request>,
    Streaming<source::run::Response>,
) {
    let (acks, ack_rx) = mpsc::channel(16);
    let records = server
        .source()
        .run(ReceiverStream::new(ack_rx))
        .await
        .expect("source Run")
        .into_inner();
    (acks, records)
}

async fn destination_run(
    server: &Server,
) -> (
    mpsc::Sender<destination::run::Request>,
    Streaming<destination::run::Response>,
) {
    let (requests, request_rx) = mpsc::channel(64);
    let acks = server
        .destination()
        .run(ReceiverStream::new(request_rx))
        .await
        .expect("destination Run")
        .into_inner();
    (requests, acks)
}

fn ack_request(positions: &[&str]) -> source::run::Request {
    source::run::Request {
        ack_positions: positions.iter().map(|s| p(s)).collect(),
    }
}

type Ack = destination::run::response::Ack;

/// Reads acks until `count` have arrived (responses may group them).
async fn read_acks(stream: &mut Streaming<destination::run::Response>, count: usize) -> Vec<Ack> {
    let mut acks = Vec::new();
    while acks.len() < count {
        let response = next(stream)
            .await
            .unwrap_or_else(|s| panic!("Run failed after {} acks: {s:?}", acks.len()))
            .unwrap_or_else(|| panic!("Run ended after {} acks", acks.len()));
        assert!(!response.acks.is_empty(), "empty ack response");
        acks.extend(response.acks);
    }
    assert_eq!(acks.len(), count, "more acks than records: {acks:?}");
    acks
}

// ---------------------------------------------------------------------------------------------
// Source
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn source_configure_and_open_reach_the_connector() {
    let calls = Arc::new(Calls::default());
    let server = Server::start(TestSource::idle(&calls), TestDestination::acking(&calls)).await;
    let mut client = server.source();
    let settings = HashMap::from([
        ("streamName".to_string(), "orders".to_string()),
        ("empty".to_string(), String::new()),
    ]);
    client
        .configure(source::configure::Request {
            config: settings.clone(),
        })
        .await
        .unwrap();
    assert_eq!(*calls.configured.lock().unwrap(), vec![settings]);

    let error = client
        .configure(source::configure::Request {
            config: HashMap::from([("invalid".to_string(), "1".to_string())]),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error
            .message()
            .contains("parameter \"invalid\" is not allowed"),
        "{error:?}"
    );

    // Open_EmptyPosition and Open_WithPosition.
    client
        .open(source::open::Request { position: vec![] })
        .await
        .unwrap();
    client
        .open(source::open::Request {
            position: p("resume-here"),
        })
        .await
        .unwrap();
    assert_eq!(
        *calls.opened.lock().unwrap(),
        vec![None, Some(p("resume-here"))]
    );
}

#[tokio::test]
async fn source_run_success_delivers_records_in_order_and_acks_reach_the_source() {
    let calls = Arc::new(Calls::default());
    let expected: Vec<Record> = (0..10).map(source_record).collect();
    let steps = expected
        .iter()
        .map(|r| ReadStep::Records(vec![r.clone()]))
        .collect();
    let server = Server::start(
        TestSource::script(&calls, steps),
        TestDestination::acking(&calls),
    )
    .await;
    let (acks, mut records) = source_run(&server).await;

    for want in &expected {
        let response = next(&mut records)
            .await
            .expect("Run failed")
            .expect("Run ended");
        assert_eq!(response.records.len(), 1, "one record per read");
        let got = &response.records[0];
        assert_eq!(got, want);
        assert_eq!(got.metadata.get("empty"), Some(""));
        assert!(got.payload.as_ref().unwrap().before.is_none());
    }

    // One position per request (default architecture) and several (preview architecture).
    let groups: Vec<Vec<&str>> = vec![
        vec!["pos-0"],
        vec!["pos-1"],
        vec!["pos-2", "pos-3", "pos-4", "pos-5", "pos-6"],
        vec!["pos-7"],
        vec!["pos-8", "pos-9"],
    ];
    for group in &groups {
        acks.send(ack_request(group)).await.unwrap();
    }
    calls
        .wait_for("5 ack calls", |c| c.acks.lock().unwrap().len() == 5)
        .await;
    let want: Vec<Vec<Vec<u8>>> = groups
        .iter()
        .map(|g| g.iter().map(|s| p(s)).collect())
        .collect();
    assert_eq!(calls.acks(), want);
}

#[tokio::test]
async fn source_run_fail_reaches_the_client() {
    let calls = Arc::new(Calls::default());
    let server = Server::start(
        TestSource::script(
            &calls,
            vec![
                ReadStep::Records(vec![raw_record("first")]),
                ReadStep::Fail("boom".into()),
            ],
        ),
        TestDestination::acking(&calls),
    )
    .await;
    let (_acks, mut records) = source_run(&server).await;
    let first = next(&mut records).await.unwrap().unwrap();
    assert_eq!(positions(&first.records), vec![p("first")]);
    let status = next(&mut records)
        .await
        .expect_err("a read error must fail the Run stream");
    assert!(status.message().contains("boom"), "{status:?}");
    // Nothing follows the error.
    assert!(
        matches!(
            tokio::time::timeout(PROMPTLY, records.message()).await,
            Ok(Ok(None)) | Ok(Err(_))
        ),
        "the stream goes on after the error"
    );
}

#[tokio::test]
async fn source_stop_returns_the_last_sent_position_and_nothing_follows() {
    let calls = Arc::new(Calls::default());
    let server = Server::start(TestSource::endless(&calls), TestDestination::acking(&calls)).await;
    let (acks, mut records) = source_run(&server).await;

    let mut received: Vec<Vec<u8>> = Vec::new();
    while received.len() < 3 {
        let response = next(&mut records).await.unwrap().unwrap();
        received.extend(positions(&response.records));
    }
    let last = server
        .source()
        .stop(source::stop::Request {})
        .await
        .expect("Stop")
        .into_inner()
        .last_position;
    assert!(
        !last.is_empty(),
        "Stop returned an empty position after records were sent"
    );

    // Conduit keeps reading until it sees `last`; it must come, and nothing after it.
    while received.last() != Some(&last) {
        let response = next(&mut records)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("stream ended before the Stop position {last:?}"));
        received.extend(positions(&response.records));
        assert!(
            received.len() < 1000,
            "Stop position {last:?} never arrived"
        );
    }
    let want: Vec<Vec<u8>> = (0..received.len()).map(|n| p(&n.to_string())).collect();
    assert_eq!(received, want, "records lost or reordered around Stop");
    match tokio::time::timeout(QUIET, records.message()).await {
        Err(_) => {}
        Ok(other) => panic!("after the Stop position the stream produced {other:?}"),
    }

    // The stream stays open for acks after Stop.
    let last_text = String::from_utf8(last.clone()).unwrap();
    acks.send(ack_request(&["0", &last_text])).await.unwrap();
    calls
        .wait_for("the ack after Stop", |c| !c.acks.lock().unwrap().is_empty())
        .await;
    assert_eq!(calls.acks(), vec![vec![p("0"), last]]);
}

#[tokio::test]
async fn source_stop_while_the_stream_is_backpressured() {
    // The client stops reading, so the plugin's sends back up and its reader waits on a
    // full stream with a record in hand. Stop must still name the record that goes out last.
    let calls = Arc::new(Calls::default());
    let server = Server::start(
        TestSource::endless_with_payload(&calls, 16 * 1024),
        TestDestination::acking(&calls),
    )
    .await;
    // A small HTTP/2 stream window makes the backpressure reach the plugin after a few records.
    let channel = Channel::from_shared(format!("http://{}", server.address))
        .unwrap()
        .initial_stream_window_size(Some(65_535))
        .connect()
        .await
        .unwrap();
    let (_acks, ack_rx) = mpsc::channel::<source::run::Request>(16);
    let mut records = SourcePluginClient::new(channel)
        .run(ReceiverStream::new(ack_rx))
        .await
        .expect("Run")
        .into_inner();
    let first = next(&mut records).await.unwrap().unwrap();
    assert_eq!(positions(&first.records), vec![p("0")]);

    // Wait until reading has stalled: the reader is blocked sending.
    let mut stalled_at = calls.reads.load(Ordering::SeqCst);
    let deadline = Instant::now() + PROMPTLY;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = calls.reads.load(Ordering::SeqCst);
        if now == stalled_at && now > 1 {
            break;
        }
        stalled_at = now;
        assert!(
            Instant::now() < deadline,
            "the source never stalled ({now} reads)"
        );
    }

    // Conduit reads on while Stop is in flight.
    let collected = Arc::new(Mutex::new(vec![p("0")]));
    let sink = collected.clone();
    let drain = tokio::spawn(async move {
        while let Ok(Some(response)) = records.message().await {
            sink.lock().unwrap().extend(positions(&response.records));
        }
    });
    let last = tokio::time::timeout(PROMPTLY, server.source().stop(source::stop::Request {}))
        .await
        .expect("Stop did not return")
        .expect("Stop")
        .into_inner()
        .last_position;
    let deadline = Instant::now() + PROMPTLY;
    while !collected.lock().unwrap().contains(&last) {
        assert!(
            Instant::now() < deadline,
            "the Stop position {last:?} never arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(QUIET).await;
    let received = collected.lock().unwrap().clone();
    let want: Vec<Vec<u8>> = (0..received.len()).map(|n| p(&n.to_string())).collect();
    assert_eq!(received, want, "records lost or reordered around Stop");
    assert_eq!(
        received.last(),
        Some(&last),
        "records arrived after the Stop position"
    );
    drain.abort();
}

#[tokio::test]
async fn source_stop_without_records_returns_an_empty_position() {
    let calls = Arc::new(Calls::default());
    let server = Server::start(TestSource::idle(&calls), TestDestination::acking(&calls)).await;
    let (acks, mut records) = source_run(&server).await;
    let started = Instant::now();
    let stopped = tokio::time::timeout(PROMPTLY, server.source().stop(source::stop::Request {}))
        .await
        .expect("Stop did not return while read was blocked")
        .expect("Stop")
        .into_inner();
    assert!(stopped.last_position.is_empty(), "{stopped:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    // Acks are still accepted.
    acks.send(ack_request(&["late"])).await.unwrap();
    calls
        .wait_for("the ack after Stop", |c| !c.acks.lock().unwrap().is_empty())
        .await;
    assert_eq!(calls.acks(), vec![vec![p("late")]]);
    assert!(tokio::time::timeout(QUIET, records.message())
        .await
        .is_err());
}

#[tokio::test]
async fn source_stop_before_run_returns_an_empty_position() {
    let calls = Arc::new(Calls::default());
    let server = Server::start(TestSource::endless(&calls), TestDestination::acking(&calls)).await;
    let stopped = server
        .source()
        .stop(source::stop::Request {})
        .await
        .expect("Stop before Run")
        .into_inner();
    assert!(stopped.last_position.is_empty());
}

#[tokio::test]
async fn source_teardown_after_the_client_cancels_the_stream_is_prompt() {
    let calls = Arc::new(Calls::default());
    let server = Server::start(TestSource::idle(&calls), TestDestination::acking(&calls)).await;
    let (acks, records) = source_run(&server).await;
    // StreamRecv_CancelContext: the client goes away while read blocks forever.
    drop(records);
    drop(acks);
    let started = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(1),
        server.source().teardown(source::teardown::Request {}),
    )
    .await
    .expect("Teardown blocked by a read that never returns")
    .expect("Teardown");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(calls.teardowns.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn source_teardown_with_the_stream_still_open_is_prompt_and_ends_it() {
    let calls = Arc::new(Calls::default());
    let server = Server::start(TestSource::idle(&calls), TestDestination::acking(&calls)).await;
    let (_acks, mut records) = source_run(&server).await;
    tokio::time::timeout(
        Duration::from_secs(1),
        server.source().teardown(source::teardown::Request {}),
    )
    .await
    .expect("Teardown blocked by a read that never returns")
    .expect("Teardown");
    assert_eq!(calls.teardowns.load(Ordering::SeqCst), 1);
    // The plugin side of the stream is gone: the client's Recv is released.
    let end = tokio::time::timeout(PROMPTLY, records.message())
        .await
        .expect("Recv still blocked after Teardown");
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
}

#[tokio::test]
async fn source_ack_error_fails_the_stream() {
    let calls = Arc::new(Calls::default());
    let mut source = TestSource::idle(&calls);
    source.ack_error = Some("ack rejected: position unknown".into());
    let server = Server::start(source, TestDestination::acking(&calls)).await;
    let (acks, mut records) = source_run(&server).await;
    acks.send(ack_request(&["x"])).await.unwrap();
    let status = next(&mut records)
        .await
        .expect_err("an ack error must fail the Run stream");
    assert!(
        status.message().contains("ack rejected: position unknown"),
        "{status:?}"
    );
    assert_eq!(calls.acks(), vec![vec![p("x")]]);
}

#[tokio::test]
async fn source_oversized_ack_request_fails_the_stream() {
    // CONDUIT_CONNECTOR_MAX_RECEIVE_RECORD_SIZE applies to the ack stream too; exceeding it must
    // fail the Run stream with the size error rather than end it as if Conduit had closed it.
    let calls = Arc::new(Calls::default());
    let server = Server::start_with_env(
        TestSource::idle(&calls),
        TestDestination::acking(&calls),
        &[(MAX_RECEIVE_RECORD_SIZE, "1024")],
    )
    .await;
    let (acks, mut records) = source_run(&server).await;
    acks.send(ack_request(&["small"])).await.unwrap();
    calls
        .wait_for("the small ack", |c| !c.acks.lock().unwrap().is_empty())
        .await;
    acks.send(source::run::Request {
        ack_positions: vec![vec![b'p'; 2048]],
    })
    .await
    .unwrap();
    let status = next(&mut records)
        .await
        .expect_err("an oversized ack request must fail the Run stream");
    assert!(
        status.message().contains("too large") && status.message().contains("1024"),
        "{status:?}"
    );
    assert_eq!(calls.acks(), vec![vec![p("small")]]);
}

// ---------------------------------------------------------------------------------------------
// Destination
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn destination_run_success_round_trips_the_record() {
    let calls = Arc::new(Calls::default());
    let server = Server::start(TestSource::idle(&calls), TestDestination::acking(&calls)).await;
    let record = Record {
        position: p("pos-update"),
        operation: Operation::Update as i32,
        metadata: conduit_connector_kinesis::plugin::Metadata::from([
            ("opencdc.version".to_string(), "v1".to_string()),
            ("empty".to_string(), String::new()),
        ]),
        key: raw(b"raw key \x00\xff"),
        payload: Some(Change {
            before: structured(&[
                ("id", Kind::NumberValue(1.0)),
                ("name", Kind::StringValue("before".into())),
                ("active", Kind::BoolValue(false)),
                ("nothing", Kind::NullValue(0)),
            ]),
            after: structured(&[
                ("id", Kind::NumberValue(1.0)),
                ("name", Kind::StringValue("after".into())),
                ("active", Kind::BoolValue(true)),
                (
                    "tags",
                    Kind::ListValue(prost_types::ListValue {
                        values: vec![prost_types::Value {
                            kind: Some(Kind::StringValue("a".into())),
                        }],
                    }),
                ),
            ]),
        }),
    };
    let mut client = server.destination();
    client
        .configure(destination::configure::Request {
            config: HashMap::from([("k".to_string(), "v".to_string())]),
        })
        .await
        .unwrap();
    client.open(destination::open::Request {}).await.unwrap();
    let (requests, mut acks) = destination_run(&server).await;
    requests
        .send(destination::run::Request {
            records: vec![record.clone()],
        })
        .await
        .unwrap();
    let got = read_acks(&mut acks, 1).await;
    assert_eq!(
        got,
        vec![Ack {
            position: p("pos-update"),
            error: String::new()
        }]
    );
    assert_eq!(*calls.written.lock().unwrap(), vec![vec![record]]);
    assert_eq!(calls.opened.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn destination_acks_every_record_in_order() {
    let calls = Arc::new(Calls::default());
    let server = Server::start(TestSource::idle(&calls), TestDestination::acking(&calls)).await;
    let (requests, mut acks) = destination_run(&server).await;
    for i in 0..10 {
        requests
            .send(destination::run::Request {
                records: vec![raw_record(&format!("r{i}"))],
            })
            .await
            .unwrap();
    }
    let got = read_acks(&mut acks, 10).await;
    let want: Vec<Ack> = (0..10)
        .map(|i| Ack {
            position: p(&format!("r{i}")),
            error: String::new(),
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        calls.written.lock().unwrap().len(),
        10,
        "one write per request"
    );
}

#[tokio::test]
async fn destination_nack_carries_the_error_at_its_position() {
    let calls = Arc::new(Calls::default());
    let nacks = HashMap::from([
        (p("r3"), "record 3 is not writable".to_string()),
        (p("g-b"), "record g-b is too big".to_string()),
    ]);
    let server = Server::start(
        TestSource::idle(&calls),
        TestDestination::new(&calls, WriteMode::Immediate(nacks)),
    )
    .await;
    let (requests, mut acks) = destination_run(&server).await;
    for i in 0..10 {
        requests
            .send(destination::run::Request {
                records: vec![raw_record(&format!("r{i}"))],
            })
            .await
            .unwrap();
    }
    // A multi-record request with a nack in the middle.
    requests
        .send(destination::run::Request {
            records: vec![raw_record("g-a"), raw_record("g-b"), raw_record("g-c")],
        })
        .await
        .unwrap();
    let got = read_acks(&mut acks, 13).await;
    let mut want: Vec<Ack> = (0..10)
        .map(|i| Ack {
            position: p(&format!("r{i}")),
            error: String::new(),
        })
        .collect();
    want[3].error = "record 3 is not writable".into();
    want.extend(["g-a", "g-b", "g-c"].map(|s| Ack {
        position: p(s),
        error: String::new(),
    }));
    want[11].error = "record g-b is too big".into();
    assert_eq!(got, want);
}

#[tokio::test]
async fn destination_acks_in_receive_order_when_writes_finish_out_of_order() {
    let calls = Arc::new(Calls::default());
    let server = Server::start(
        TestSource::idle(&calls),
        TestDestination::new(&calls, WriteMode::Gated),
    )
    .await;
    let (requests, mut acks) = destination_run(&server).await;
    for i in 0..10 {
        let records = if i == 4 {
            vec![raw_record("r4a"), raw_record("r4b")]
        } else {
            vec![raw_record(&format!("r{i}"))]
        };
        requests
            .send(destination::run::Request { records })
            .await
            .unwrap();
    }
    calls
        .wait_for("10 groups handed over", |c| {
            c.gates.lock().unwrap().len() == 10
        })
        .await;

    // Finish every group except the first, latest first.
    for index in (1..10).rev() {
        calls.release(index);
    }
    calls
        .wait_for("9 groups written", |c| {
            c.completed.lock().unwrap().len() == 9
        })
        .await;
    assert_eq!(
        *calls.completed.lock().unwrap(),
        (1..10).rev().collect::<Vec<_>>(),
        "the writes did not finish out of order; the test proves nothing"
    );
    match tokio::time::timeout(QUIET, acks.message()).await {
        Err(_) => {}
        Ok(other) => panic!("acked before the first record was written: {other:?}"),
    }

    calls.release(0);
    let got: Vec<Vec<u8>> = read_acks(&mut acks, 11)
        .await
        .into_iter()
        .map(|a| {
            assert_eq!(a.error, "");
            a.position
        })
        .collect();
    let want: Vec<Vec<u8>> = [
        "r0", "r1", "r2", "r3", "r4a", "r4b", "r5", "r6", "r7", "r8", "r9",
    ]
    .iter()
    .map(|s| p(s))
    .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn destination_run_fail_reaches_the_client() {
    let calls = Arc::new(Calls::default());
    let server = Server::start(
        TestSource::idle(&calls),
        TestDestination::new(&calls, WriteMode::Fail("disk on fire".into())),
    )
    .await;
    let (requests, mut acks) = destination_run(&server).await;
    requests
        .send(destination::run::Request {
            records: vec![raw_record("r0")],
        })
        .await
        .unwrap();
    let status = next(&mut acks)
        .await
        .expect_err("a failed write must fail the Run stream");
    assert!(status.message().contains("disk on fire"), "{status:?}");
}

#[tokio::test]
async fn destination_stop_waits_for_the_last_ack() {
    let calls = Arc::new(Calls::default());
    let server = Server::start(
        TestSource::idle(&calls),
        TestDestination::new(&calls, WriteMode::Gated),
    )
    .await;
    let (requests, mut acks) = destination_run(&server).await;
    for i in 0..5 {
        requests
            .send(destination::run::Request {
                records: vec![raw_record(&format!("r{i}"))],
            })
            .await
            .unwrap();
    }
    calls
        .wait_for("5 groups handed over", |c| {
            c.gates.lock().unwrap().len() == 5
        })
        .await;

    // Stop with an empty position does not wait for anything.
    tokio::time::timeout(
        Duration::from_millis(500),
        server.destination().stop(destination::stop::Request {
            last_position: vec![],
        }),
    )
    .await
    .expect("Stop(empty) waited")
    .expect("Stop(empty)");

    let mut client = server.destination();
    let mut stop = tokio::spawn(async move {
        client
            .stop(destination::stop::Request {
                last_position: p("r4"),
            })
            .await
    });
    assert!(
        tokio::time::timeout(QUIET, &mut stop).await.is_err(),
        "Stop returned while nothing was written"
    );
    for index in 0..4 {
        calls.release(index);
    }
    let first = read_acks(&mut acks, 4).await;
    assert_eq!(
        first.iter().map(|a| a.position.clone()).collect::<Vec<_>>(),
        vec![p("r0"), p("r1"), p("r2"), p("r3")]
    );
    assert!(
        tokio::time::timeout(QUIET, &mut stop).await.is_err(),
        "Stop returned before the last position was acked"
    );
    calls.release(4);
    tokio::time::timeout(PROMPTLY, &mut stop)
        .await
        .expect("Stop did not return after the last ack")
        .unwrap()
        .expect("Stop");
    // The ack for the Stop position was already on its way when Stop returned.
    let last = tokio::time::timeout(Duration::from_millis(500), acks.message())
        .await
        .expect("the last ack was not sent before Stop returned")
        .unwrap()
        .unwrap();
    assert_eq!(
        last.acks,
        vec![Ack {
            position: p("r4"),
            error: String::new()
        }]
    );
}

#[tokio::test]
async fn destination_oversized_request_fails_the_stream_after_earlier_acks() {
    let calls = Arc::new(Calls::default());
    let server = Server::start_with_env(
        TestSource::idle(&calls),
        TestDestination::new(&calls, WriteMode::Gated),
        &[(MAX_RECEIVE_RECORD_SIZE, "1024")],
    )
    .await;
    let (requests, mut acks) = destination_run(&server).await;
    requests
        .send(destination::run::Request {
            records: vec![raw_record("small")],
        })
        .await
        .unwrap();
    calls
        .wait_for("the small record", |c| c.gates.lock().unwrap().len() == 1)
        .await;
    let mut big = raw_record("big");
    big.payload.as_mut().unwrap().after = raw(&[7u8; 2048]);
    requests
        .send(destination::run::Request { records: vec![big] })
        .await
        .unwrap();
    // The oversized message must not overtake the pending ack of the earlier record.
    assert!(
        tokio::time::timeout(QUIET, acks.message()).await.is_err(),
        "the stream moved on before the first record was written"
    );
    calls.release(0);
    let first = read_acks(&mut acks, 1).await;
    assert_eq!(first[0].position, p("small"));
    let status = next(&mut acks)
        .await
        .expect_err("an oversized request must fail the Run stream");
    assert!(
        status.message().contains("too large") && status.message().contains("1024"),
        "{status:?}"
    );
    assert_eq!(
        calls.written.lock().unwrap().len(),
        1,
        "the big record reached write"
    );
}

// ---------------------------------------------------------------------------------------------
// Both sides
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn teardown_is_idempotent_on_both_sides() {
    let calls = Arc::new(Calls::default());
    let server = Server::start(TestSource::idle(&calls), TestDestination::acking(&calls)).await;
    for _ in 0..2 {
        server
            .source()
            .teardown(source::teardown::Request {})
            .await
            .expect("source Teardown");
    }
    assert_eq!(calls.teardowns.load(Ordering::SeqCst), 2);
    for _ in 0..2 {
        server
            .destination()
            .teardown(destination::teardown::Request {})
            .await
            .expect("destination Teardown");
    }
    assert_eq!(calls.teardowns.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn destination_teardown_with_the_stream_open_is_prompt() {
    let calls = Arc::new(Calls::default());
    let server = Server::start(
        TestSource::idle(&calls),
        TestDestination::new(&calls, WriteMode::Gated),
    )
    .await;
    let (requests, mut acks) = destination_run(&server).await;
    requests
        .send(destination::run::Request {
            records: vec![raw_record("stuck")],
        })
        .await
        .unwrap();
    calls
        .wait_for("the write", |c| c.gates.lock().unwrap().len() == 1)
        .await;
    tokio::time::timeout(
        Duration::from_secs(1),
        server
            .destination()
            .teardown(destination::teardown::Request {}),
    )
    .await
    .expect("Teardown blocked by a write that never finishes")
    .expect("Teardown");
    assert_eq!(calls.teardowns.load(Ordering::SeqCst), 1);
    let end = tokio::time::timeout(PROMPTLY, acks.message())
        .await
        .expect("Recv still blocked after Teardown");
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
}

fn map(pairs: &[(&str, &str)]) -> RawConfig {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn lifecycle_calls_reach_the_connector_with_their_maps() {
    let source_calls = Arc::new(Calls::default());
    let destination_calls = Arc::new(Calls::default());
    let server = Server::start(
        TestSource::idle(&source_calls),
        TestDestination::acking(&destination_calls),
    )
    .await;
    let created = map(&[("streamName", "orders"), ("empty", "")]);
    let before = map(&[("streamName", "orders")]);
    let after = map(&[("streamName", "orders"), ("aws.region", "eu-west-1")]);
    let deleted = map(&[("streamName", "payments")]);

    let mut src = server.source();
    src.lifecycle_on_created(source::lifecycle::on_created::Request {
        config: created.clone(),
    })
    .await
    .unwrap();
    src.lifecycle_on_updated(source::lifecycle::on_updated::Request {
        config_before: before.clone(),
        config_after: after.clone(),
    })
    .await
    .unwrap();
    src.lifecycle_on_deleted(source::lifecycle::on_deleted::Request {
        config: deleted.clone(),
    })
    .await
    .unwrap();

    let mut dst = server.destination();
    dst.lifecycle_on_created(destination::lifecycle::on_created::Request {
        config: created.clone(),
    })
    .await
    .unwrap();
    dst.lifecycle_on_updated(destination::lifecycle::on_updated::Request {
        config_before: before.clone(),
        config_after: after.clone(),
    })
    .await
    .unwrap();
    dst.lifecycle_on_deleted(destination::lifecycle::on_deleted::Request {
        config: deleted.clone(),
    })
    .await
    .unwrap();

    let want = vec![
        Lifecycle::Created(created),
        Lifecycle::Updated(before, after),
        Lifecycle::Deleted(deleted),
    ];
    assert_eq!(*source_calls.lifecycle.lock().unwrap(), want);
    assert_eq!(*destination_calls.lifecycle.lock().unwrap(), want);
    // None of them needed Configure.
    assert!(source_calls.configured.lock().unwrap().is_empty());
    assert!(destination_calls.configured.lock().unwrap().is_empty());
}
