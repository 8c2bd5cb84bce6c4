//! Response bodies: small ones in memory, recordings streamed chunk by chunk from the
//! core as the client takes them, and the access-log line written when a body ends.

use std::net::SocketAddr;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::State;
use crate::fs::{FileSystem, FsError, OpenFile};

pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Bytes read from the core per step of a streamed body: the memory a connection holds
/// besides hyper's write buffer.
pub const CHUNK: u64 = 256 << 10;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Runs `f` on the core's worker threads and waits for it without blocking the server.
pub async fn on_workers<T: Send + 'static>(
    state: &Arc<State>,
    what: &'static str,
    f: impl FnOnce(&FileSystem) -> Result<T, FsError> + Send + 'static,
) -> Result<T, FsError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let s = state.clone();
    state.workers.spawn(what, move || {
        let _ = tx.send(f(&s.fs));
    });
    // The sender is dropped unsent only if `f` panicked (logged by the worker).
    rx.await.unwrap_or(Err(FsError::Internal))
}

/// Reads `len` bytes at `at` of `file` (fewer at its end).
pub async fn read(
    state: &Arc<State>,
    file: &Arc<OpenFile>,
    at: u64,
    len: u64,
) -> Result<Bytes, FsError> {
    let file = file.clone();
    on_workers(state, "read", move |fs| {
        let mut out = Vec::with_capacity(len as usize);
        fs.read(&file, at, len, &mut out)?;
        Ok(Bytes::from(out))
    })
    .await
}

/// The bytes `range` of `file`, of which the first chunk, `first`, was read already (so
/// a failure to start is answered with an error status, not a cut-off 200). A failure
/// later cuts the connection: the client sees a short body, never wrong bytes.
pub fn stream(state: Arc<State>, file: Arc<OpenFile>, range: Range<u64>, first: Bytes) -> Body {
    let at = range.start + first.len() as u64;
    let start = (Some(first), at);
    let chunks = futures::stream::unfold(start, move |(first, at)| {
        let (state, file, end) = (state.clone(), file.clone(), range.end);
        async move {
            if let Some(b) = first {
                return Some((Ok(Frame::data(b)), (None, at)));
            }
            if at >= end {
                return None;
            }
            match read(&state, &file, at, CHUNK.min(end - at)).await {
                Ok(b) if b.is_empty() => None,
                Ok(b) => {
                    let next = at + b.len() as u64;
                    Some((Ok(Frame::data(b)), (None, next)))
                }
                Err(e) => Some((Err(std::io::Error::other(e)), (None, end))),
            }
        }
    });
    StreamBody::new(chunks).boxed_unsync()
}

/// A request as the access log shows it.
pub struct AccessLine {
    pub peer: SocketAddr,
    pub method: http::Method,
    pub target: String,
    pub range: Option<String>,
    pub status: u16,
    pub started: Instant,
}

/// A body that logs its request's line, with the bytes actually sent, when it is done
/// (or dropped: the client went away).
pub struct Logged {
    inner: Body,
    line: AccessLine,
    sent: u64,
    failed: bool,
}

impl Logged {
    pub fn new(inner: Body, line: AccessLine) -> Self {
        Logged {
            inner,
            line,
            sent: 0,
            failed: false,
        }
    }
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(f))) => {
                let n = f.data_ref().map_or(0, |d| d.len() as u64);
                self.sent += n;
            }
            Poll::Ready(Some(Err(_))) => self.failed = true,
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let l = &self.line;
        log::info!(
            target: "zarr_wavfs::access",
            "{} \"{} {}\" range={} {} {} bytes{} {:.1} ms",
            l.peer,
            l.method,
            l.target,
            l.range.as_deref().unwrap_or("-"),
            l.status,
            self.sent,
            if self.failed { " (cut: read failed)" } else { "" },
            l.started.elapsed().as_secs_f64() * 1e3
        );
    }
}
