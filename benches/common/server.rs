//! A loopback TCP server on a thread and current-thread tokio runtime of its own: a bench
//! endpoint then costs the process under test little on a 2-core machine, and its own CPU
//! can be read apart from the benchmark's (`/proc/<pid>/task/<tid>/stat`).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpStream;

use super::procfs::stat_ticks;

pub struct LoopbackServer {
    pub addr: SocketAddr,
    thread_stat: Option<PathBuf>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LoopbackServer {
    /// Listens on 127.0.0.1 (any free port) and runs `serve(socket, n)` for the n-th accepted
    /// connection (from 0), with TCP_NODELAY set, until the server is dropped.
    pub fn start<F, Fut>(serve: F) -> Result<LoopbackServer, String>
    where
        F: Fn(TcpStream, u64) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (stat_tx, stat_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, mut shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bench-endpoint".into())
            .spawn(move || {
                let _ = stat_tx.send(
                    std::fs::read_link("/proc/thread-self")
                        .ok()
                        .map(|p| Path::new("/proc").join(p).join("stat")),
                );
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        eprintln!("bench endpoint: no runtime: {e}");
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            eprintln!("bench endpoint: {e}");
                            return;
                        }
                    };
                    let mut accepted_connections = 0u64;
                    loop {
                        tokio::select! {
                            _ = &mut shutdown_rx => break,
                            accepted = listener.accept() => {
                                let Ok((socket, _)) = accepted else { continue };
                                let _ = socket.set_nodelay(true);
                                tokio::spawn(serve(socket, accepted_connections));
                                accepted_connections += 1;
                            }
                        }
                    }
                });
                // Dropping the runtime drops the open connections' tasks.
            })
            .map_err(|e| format!("spawn endpoint thread: {e}"))?;
        let thread_stat = stat_rx.recv_timeout(Duration::from_secs(5)).ok().flatten();
        Ok(LoopbackServer {
            addr,
            thread_stat,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        })
    }

    /// CPU ticks of the server's thread so far.
    pub fn ticks(&self) -> Option<u64> {
        self.thread_stat.as_deref().and_then(stat_ticks)
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
