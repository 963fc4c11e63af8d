//! A TCP proxy on 127.0.0.1 that can take the server "down": every open connection is cut and
//! new ones are refused (the port is closed) for a while, then it listens on the same port
//! again. kinesis-local keeps no state across a restart, so this stands in for a Kinesis
//! endpoint that fails and comes back. Bytes pass unchanged, so it works for every call,
//! SubscribeToShard's long-lived event stream included.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;

pub struct OutageProxy {
    pub url: String,
    address: SocketAddr,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    acceptor: Option<JoinHandle<()>>,
    connections: Vec<JoinHandle<()>>,
    accepted: usize,
}

impl OutageProxy {
    /// Proxies to `upstream` (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> OutageProxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("upstream address 127.0.0.1:PORT");
        let listener = listen(SocketAddr::from(([127, 0, 0, 1], 0)));
        let address = listener.local_addr().unwrap();
        let proxy = OutageProxy {
            url: format!("http://{address}"),
            address,
            upstream,
            state: Arc::default(),
        };
        proxy.accept_on(listener);
        proxy
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.state.lock().unwrap().accepted
    }

    /// Cuts every connection and refuses new ones until `up` is called.
    pub fn down(&self) {
        let mut state = self.state.lock().unwrap();
        if let Some(acceptor) = state.acceptor.take() {
            acceptor.abort();
        }
        for connection in state.connections.drain(..) {
            connection.abort();
        }
    }

    /// Listens on the same port again.
    pub fn up(&self) {
        self.accept_on(listen(self.address));
    }

    /// `down`, then `up` after `outage`, in the background.
    pub fn outage(self: &Arc<Self>, outage: Duration) -> JoinHandle<()> {
        self.down();
        let proxy = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(outage).await;
            proxy.up();
        })
    }

    fn accept_on(&self, listener: tokio::net::TcpListener) {
        let state = self.state.clone();
        let upstream = self.upstream;
        let acceptor = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let connection = tokio::spawn(pump(client, upstream));
                let mut state = state.lock().unwrap();
                state.accepted += 1;
                state.connections.retain(|c| !c.is_finished());
                state.connections.push(connection);
            }
        });
        self.state.lock().unwrap().acceptor = Some(acceptor);
    }
}

impl Drop for OutageProxy {
    fn drop(&mut self) {
        self.down();
    }
}

/// A listener that can take over the port it had before (SO_REUSEADDR: the cut connections
/// leave sockets in TIME_WAIT).
fn listen(address: SocketAddr) -> tokio::net::TcpListener {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket
        .bind(address)
        .unwrap_or_else(|e| panic!("bind {address}: {e}"));
    socket.listen(128).expect("listen")
}

async fn pump(mut client: TcpStream, upstream: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    // Dropping both streams when the task is aborted is what cuts the connection.
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
