//! Process-level plugin serving: environment checks, listener, handshake line, shutdown.

use std::io::Write;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Server;

use super::connector::{Destination, Source};
use super::destination::DestinationService;
use super::env::{PluginEnv, APP_PROTOCOL_VERSION, CORE_PROTOCOL_VERSION};
use super::hostservices::{Broker, Controller, Stdio};
use super::source::SourceService;
use crate::proto::connector::v2::destination_plugin_server::DestinationPluginServer;
use crate::proto::connector::v2::source_plugin_server::SourcePluginServer;
use crate::proto::connector::v2::specifier::specify;
use crate::proto::connector::v2::specifier_plugin_server::{
    SpecifierPlugin, SpecifierPluginServer,
};
use crate::proto::connector::v2::Specification;
use crate::proto::plugin::grpc_broker_server::GrpcBrokerServer;
use crate::proto::plugin::grpc_controller_server::GrpcControllerServer;
use crate::proto::plugin::grpc_stdio_server::GrpcStdioServer;

/// How long in-flight calls may finish after Shutdown before the process exits anyway.
/// go-plugin kills the process 2 s after asking it to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(300);

/// HTTP/2 receive limits, chosen against h2's budget for small DATA frames.
///
/// h2 charges every received DATA frame under 256 bytes (256 - its length) to a per-connection
/// budget until the application has read it, and closes the connection with GOAWAY
/// `ENHANCE_YOUR_CALM` ("too_many_data_frames") once the budget is spent. The budget is half the
/// connection window; with hyper's default window (1 MiB) that is 512 KiB. Conduit sends each ack
/// batch and each record batch as its own gRPC message in its own frame (often ~100 bytes), so
/// about 3,500 unread messages, a fraction of one 1 MiB stream window, used to kill the
/// connection whenever the connector was slower than Conduit for a moment.
///
/// What is buffered unread is bounded by the stream window, not the connection window: each
/// stream can hold at most `STREAM_WINDOW` bytes unread. The smallest gRPC frame (a 5-byte
/// message prefix) costs 251, about 50x its size, so one full stream window of such frames
/// costs ~50 MiB of budget. The largest connection window (2^31 - 1) gives a budget of ~1 GiB,
/// enough for `MAX_STREAMS` full windows of the worst frames; memory stays bounded by
/// `MAX_STREAMS` x `STREAM_WINDOW` (16 MiB). A plugin sees few streams at once (Run, Stdio,
/// broker and a short unary call or two).
const CONNECTION_WINDOW: u32 = (1 << 31) - 1;
const STREAM_WINDOW: u32 = 1024 * 1024;
const MAX_STREAMS: u32 = 16;

/// How often the plugin checks that the process that started it is still there.
const HOST_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// Creates the connector instance for this process.
pub type Factory<T> = Box<dyn Fn(&PluginEnv) -> Box<T> + Send + Sync>;

/// What a connector plugin consists of.
pub struct Plugin {
    /// What `Specify` answers: name and version (Conduit's key for the plugin, referenced in
    /// pipelines as `standalone:<name>`), descriptions and the parameters of both sides.
    pub specification: Specification,
    /// Creates the source of this process. Called once per process, at start-up, also when
    /// Conduit only wants the specification or a destination: keep it cheap and do the work
    /// in [`Connector::configure`](crate::Connector::configure) and [`Source::open`].
    pub new_source: Factory<dyn Source>,
    /// Creates the destination of this process; like `new_source`.
    pub new_destination: Factory<dyn Destination>,
}

/// Why [`serve`] could not run the plugin.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The process was not started by a compatible host (nothing was written to stdout).
    #[error(transparent)]
    Handshake(#[from] super::env::HandshakeError),
    /// Binding the loopback listener failed.
    #[error("could not listen on 127.0.0.1: {0}")]
    Listen(std::io::Error),
    /// The handshake line could not be written (stdout closed).
    #[error("could not write the handshake line to stdout: {0}")]
    Stdout(std::io::Error),
    /// The gRPC server stopped with an error.
    #[error("gRPC server failed: {0}")]
    Server(#[from] tonic::transport::Error),
}

struct Specifier(Specification);

#[tonic::async_trait]
impl SpecifierPlugin for Specifier {
    async fn specify(
        &self,
        _request: tonic::Request<specify::Request>,
    ) -> Result<tonic::Response<specify::Response>, tonic::Status> {
        Ok(tonic::Response::new(specify::Response {
            specification: Some(self.0.clone()),
        }))
    }
}

/// Runs the plugin until the host asks it to shut down. Returns an error before printing the
/// handshake when the process was not started by a compatible host.
pub async fn serve(plugin: Plugin) -> Result<(), ServeError> {
    // Read first, so that a host dying during startup is noticed too.
    let host = std::os::unix::process::parent_id();
    let env = PluginEnv::from_process()?;
    super::logging::init(env.log_level);
    ignore_interrupts();

    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(ServeError::Listen)?;
    let address = listener.local_addr().map_err(ServeError::Listen)?;
    tracing::debug!(
        connector_id = env.connector_id.as_deref().unwrap_or(""),
        has_token = env.has_token(),
        max_receive_record_size = env.max_receive_record_size,
        "plugin starting"
    );

    let (shutdown, mut requested) = watch::channel(false);
    let server = tokio::spawn(serve_on(listener, plugin, env, shutdown));
    write_handshake(address).map_err(ServeError::Stdout)?;

    tokio::select! {
        _ = requested.wait_for(|requested| *requested) => {}
        _ = host_exited(host) => {
            // Nobody is left to call Stop or Teardown, and an orphan would keep its
            // connections (e.g. Kinesis subscriptions, one per shard and consumer) open.
            // Exiting closes every socket; what was not acked is read again by the next run.
            tracing::warn!(host_pid = host, "the host process exited without stopping the plugin; exiting");
            return Ok(());
        }
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(Ok(result)) => result?,
        Ok(Err(join_error)) => tracing::warn!(error = %join_error, "server task ended abnormally"),
        Err(_) => tracing::debug!("open streams did not close in time; exiting anyway"),
    }
    Ok(())
}

/// Serves every plugin service on `listener` until `shutdown` turns true, either through the
/// host's Shutdown call or from the caller. Used in-process by tests.
pub async fn serve_on(
    listener: TcpListener,
    plugin: Plugin,
    env: PluginEnv,
    shutdown: watch::Sender<bool>,
) -> Result<(), tonic::transport::Error> {
    let max = env.max_receive_record_size;
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("plugin", tonic_health::ServingStatus::Serving)
        .await;
    let mut stop = shutdown.subscribe();
    let router = Server::builder()
        .initial_connection_window_size(CONNECTION_WINDOW)
        .initial_stream_window_size(STREAM_WINDOW)
        .max_concurrent_streams(MAX_STREAMS)
        .add_service(health_service)
        .add_service(GrpcControllerServer::new(Controller { shutdown }))
        .add_service(GrpcStdioServer::new(Stdio))
        .add_service(GrpcBrokerServer::new(Broker))
        .add_service(SpecifierPluginServer::new(Specifier(plugin.specification)))
        .add_service(
            SourcePluginServer::new(SourceService::new((plugin.new_source)(&env)))
                .max_decoding_message_size(max),
        )
        .add_service(
            DestinationPluginServer::new(DestinationService::new((plugin.new_destination)(&env)))
                .max_decoding_message_size(max),
        );
    // Small messages (acks, read batches) must not sit in Nagle's buffer waiting for the
    // peer's delayed ACK: that stalled the stream for 40 ms at a time. Go (Conduit) sets
    // TCP_NODELAY on its side by default; this is ours.
    let incoming = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |accepted| {
            accepted.inspect(|stream| {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::warn!(error = %e, "could not set TCP_NODELAY on the Conduit connection");
                }
            })
        },
    );
    router
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stop.wait_for(|requested| *requested).await;
        })
        .await
}

/// Resolves once the host (the parent process with pid `host`) has exited, whatever
/// killed it (SIGKILL included) and whoever adopts the plugin afterwards (init, a container's
/// pid 1, a supervisor that is a subreaper).
///
/// Polling `getppid()` is used rather than PR_SET_PDEATHSIG, which fires when the parent
/// *thread* exits (Go starts children from whichever OS thread runs the goroutine, and that
/// thread may end while Conduit lives on), and rather than a pidfd, which needs raw syscalls
/// for no gain at this interval: the call costs well under a microsecond.
async fn host_exited(host: u32) {
    let mut interval = tokio::time::interval(HOST_CHECK_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if std::os::unix::process::parent_id() != host {
            return;
        }
    }
}

/// The one and only line this process writes to stdout.
fn write_handshake(address: std::net::SocketAddr) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|tcp|{address}|grpc"
    )?;
    stdout.flush()
}

/// Ctrl-C in a terminal reaches the whole process group; Conduit drains pipelines on it and
/// then shuts plugins down itself, so the plugin must survive the signal.
fn ignore_interrupts() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
        Ok(mut interrupts) => {
            tokio::spawn(async move {
                while interrupts.recv().await.is_some() {
                    tracing::debug!("ignoring SIGINT; Conduit stops the plugin itself");
                }
            });
        }
        Err(error) => tracing::warn!(%error, "could not install a SIGINT handler"),
    }
}
