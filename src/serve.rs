//! `serve`: the archive over HTTP/1.1, a thin front end over the `fs` core like `fuse`.
//!
//! hyper serves the connections on a small tokio runtime; every open and read of a
//! recording runs on the core's worker threads (decoding blocks), so a slow cold
//! decode holds one worker, not the server. A response body is produced one chunk at a
//! time as the client takes it: a client that stops reading costs one chunk of memory
//! until the write time-out closes its connection.

mod body;
mod handler;
mod listing;
mod range;
mod segment;
mod spectrogram;
mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Semaphore;

use crate::fs::{FileSystem, Workers};

/// Connections served at once; more wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 1024;
/// How long in-flight responses may go on after SIGINT/SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Worker threads opening and reading recordings.
    pub threads: usize,
    /// `Access-Control-Allow-Origin` to send (`*` or one origin); None: no CORS.
    pub cors: Option<String>,
    /// A request's headers must arrive within this (slow clients are cut off).
    pub header_timeout: Duration,
    /// A write to a client may stall this long before its connection is closed.
    pub write_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("starting the server: {0}")]
    Start(std::io::Error),
}

/// What every request handler shares.
struct State {
    fs: Arc<FileSystem>,
    workers: Workers,
    opts: ServeOptions,
}

/// Serves `fs` until SIGINT or SIGTERM; `ready` is called with the bound address once
/// requests are accepted.
pub fn serve(
    fs: FileSystem,
    opts: ServeOptions,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("zw-http")
        .enable_all()
        .build()
        .map_err(ServeError::Start)?;
    let workers = Workers::new(opts.threads).map_err(ServeError::Start)?;
    let fs = Arc::new(fs);
    // Every request reads the tree as it is then: nothing to tell anyone of a change.
    crate::fs::follow(fs.clone(), |_| {}).map_err(ServeError::Start)?;
    let state = Arc::new(State { fs, workers, opts });
    runtime.block_on(run(state, ready))
}

async fn run(state: Arc<State>, ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    let addr = state.opts.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServeError::Listen { addr, source })?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(ServeError::Start)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(ServeError::Start)?;
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    log::info!(
        "serving {} on http://{bound}/",
        state.fs.archive().address()
    );
    ready(bound);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off, then go on.
                    log::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        };
        let _ = tcp.set_nodelay(true);
        let mut io = tokio_io_timeout::TimeoutStream::new(tcp);
        io.set_write_timeout(Some(state.opts.write_timeout));
        let header_timeout = state.opts.header_timeout;
        let state = state.clone();
        let service = hyper::service::service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, std::convert::Infallible>(handler::handle(state, peer, req).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(Box::pin(io)), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                log::debug!("connection from {peer}: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    log::info!(
        "stopping: in-flight responses have {} s to finish",
        SHUTDOWN_GRACE.as_secs()
    );
    tokio::select! {
        _ = graceful.shutdown() => log::info!("stopped"),
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => log::warn!("stopped; unfinished responses were cut"),
        _ = sigterm.recv() => log::warn!("signal again: stopped; unfinished responses were cut"),
        _ = sigint.recv() => log::warn!("signal again: stopped; unfinished responses were cut"),
    }
    Ok(())
}
