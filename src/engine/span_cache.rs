//! An LRU cache of decoded spans bounded in bytes, shared by all recordings.
//!
//! Concurrent misses on the same span are merged: one caller decodes, the others wait
//! for its result, so a burst of readers never decodes a span twice.
//!
//! Evicted or released spans no reader holds any more are kept as spare buffers (a few
//! MiB at most) for the next decode to fill: a fresh buffer of a few hundred KiB is
//! mapped and faulted in page by page, and freeing it unmaps it again, about a
//! twentieth of the daemon's time in a sequential read.

use std::collections::HashMap;
use std::sync::Arc;

use lru::LruCache;
use parking_lot::{Condvar, Mutex};

use crate::codec::{CodecError, Samples};

/// (recording id, span index).
pub type SpanKey = (u64, usize);
pub type Span = Arc<Samples>;

type Outcome = Option<Result<Span, CodecError>>;

/// Bytes of spare buffers kept at most (outside the cache's bound).
const SPARE_BYTES: usize = 8 << 20;

struct InFlight {
    result: Mutex<Outcome>,
    ready: Condvar,
}

impl InFlight {
    fn new() -> Arc<Self> {
        Arc::new(InFlight {
            result: Mutex::new(None),
            ready: Condvar::new(),
        })
    }
}

struct Inner {
    lru: LruCache<SpanKey, Span>,
    bytes: usize,
    inflight: HashMap<SpanKey, Arc<InFlight>>,
    /// Buffers of evicted spans, emptied, for reuse.
    spare: Vec<Samples>,
    spare_bytes: usize,
}

pub struct SpanCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

fn span_bytes(s: &Span) -> usize {
    s.byte_size()
}

impl SpanCache {
    /// A cache holding at most `capacity` bytes of samples.
    pub fn new(capacity: usize) -> Self {
        SpanCache {
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
                inflight: HashMap::new(),
                spare: Vec::new(),
                spare_bytes: 0,
            }),
            capacity,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes of samples held now.
    pub fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }

    /// The cached span, if present (marks it recently used).
    pub fn get(&self, key: SpanKey) -> Option<Span> {
        self.inner.lock().lru.get(&key).cloned()
    }

    /// An empty buffer left by an evicted span, if any, for a decoder to fill.
    pub fn take_spare(&self) -> Option<Samples> {
        let mut inner = self.inner.lock();
        let s = inner.spare.pop()?;
        inner.spare_bytes -= s.byte_size();
        Some(s)
    }

    /// The span for `key`, decoding it with `decode` on a miss.
    pub fn get_or_decode(
        &self,
        key: SpanKey,
        decode: impl FnOnce() -> Result<Samples, CodecError>,
    ) -> Result<Span, CodecError> {
        let flight = {
            let mut inner = self.inner.lock();
            if let Some(s) = inner.lru.get(&key) {
                return Ok(s.clone());
            }
            match inner.inflight.get(&key) {
                Some(f) => Some(f.clone()),
                None => {
                    let f = InFlight::new();
                    inner.inflight.insert(key, f.clone());
                    drop(inner);
                    return self.decode_and_publish(key, f, decode);
                }
            }
        };
        let flight = flight.expect("set above");
        let mut r = flight.result.lock();
        while r.is_none() {
            flight.ready.wait(&mut r);
        }
        r.clone().expect("checked")
    }

    /// Claims each of `keys` that is neither cached nor being decoded: the caller will
    /// decode it and must `publish` the claim. Never waits; for prefetching. A claim
    /// dropped unpublished (a panic in the decoder) publishes an error, so threads
    /// waiting for the span never block forever.
    pub fn claim(self: &Arc<Self>, keys: impl IntoIterator<Item = SpanKey>) -> Vec<Claim> {
        let mut inner = self.inner.lock();
        let mut claims = Vec::new();
        for key in keys {
            if inner.lru.contains(&key) || inner.inflight.contains_key(&key) {
                continue;
            }
            let flight = InFlight::new();
            inner.inflight.insert(key, flight.clone());
            claims.push(Claim {
                cache: self.clone(),
                key,
                flight: Some(flight),
            });
        }
        claims
    }

    fn decode_and_publish(
        &self,
        key: SpanKey,
        flight: Arc<InFlight>,
        decode: impl FnOnce() -> Result<Samples, CodecError>,
    ) -> Result<Span, CodecError> {
        // A panic inside a decoder must not leave waiters blocked forever.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode))
            .unwrap_or_else(|_| Err(panicked()));
        self.publish(key, flight, result)
    }

    /// Caches the outcome of decoding `key` (unless an error) and wakes its waiters.
    fn publish(
        &self,
        key: SpanKey,
        flight: Arc<InFlight>,
        result: Result<Samples, CodecError>,
    ) -> Result<Span, CodecError> {
        let result = result.map(Arc::new);
        {
            let mut inner = self.inner.lock();
            inner.inflight.remove(&key);
            if let Ok(span) = &result {
                self.insert_locked(&mut inner, key, span.clone());
            }
        }
        *flight.result.lock() = Some(result.clone());
        flight.ready.notify_all();
        result
    }

    fn insert_locked(&self, inner: &mut Inner, key: SpanKey, span: Span) {
        let size = span_bytes(&span);
        if size > self.capacity {
            return;
        }
        if let Some(old) = inner.lru.put(key, span) {
            inner.bytes -= span_bytes(&old);
        }
        inner.bytes += size;
        while inner.bytes > self.capacity {
            match inner.lru.pop_lru() {
                Some((_, old)) => {
                    inner.bytes -= span_bytes(&old);
                    keep_spare(inner, old);
                }
                None => break,
            }
        }
    }

    /// Drops the cached spans among `keys` (a decode in flight is left alone), keeping
    /// their buffers as spares where no reader holds them.
    pub fn release(&self, keys: impl IntoIterator<Item = SpanKey>) {
        let mut inner = self.inner.lock();
        for k in keys {
            if let Some(old) = inner.lru.pop(&k) {
                inner.bytes -= span_bytes(&old);
                keep_spare(&mut inner, old);
            }
        }
    }

    /// Drops every span of recording `id`.
    pub fn forget(&self, id: u64) {
        let mut inner = self.inner.lock();
        let keys: Vec<SpanKey> = inner
            .lru
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| k.0 == id)
            .collect();
        for k in keys {
            if let Some(old) = inner.lru.pop(&k) {
                inner.bytes -= span_bytes(&old);
            }
        }
    }
}

fn panicked() -> CodecError {
    CodecError::Damaged {
        path: Default::default(),
        message: "decoder panicked".into(),
    }
}

/// A span the holder has undertaken to decode (see [`SpanCache::claim`]).
pub struct Claim {
    cache: Arc<SpanCache>,
    key: SpanKey,
    /// `None` once published.
    flight: Option<Arc<InFlight>>,
}

impl Claim {
    pub fn key(&self) -> SpanKey {
        self.key
    }

    /// Caches the decoded span (or records the error) and wakes its waiters.
    pub fn publish(mut self, result: Result<Samples, CodecError>) {
        let flight = self.flight.take().expect("a claim is published once");
        if let Err(e) = self.cache.publish(self.key, flight, result) {
            log::debug!("prefetch of span {:?} failed: {e}", self.key);
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(flight) = self.flight.take() {
            let _ = self.cache.publish(self.key, flight, Err(panicked()));
        }
    }
}

/// Keeps the buffer of evicted span `old` as a spare if no reader holds the span and
/// the spares stay within `SPARE_BYTES`.
fn keep_spare(inner: &mut Inner, old: Span) {
    let Ok(mut s) = Arc::try_unwrap(old) else {
        return;
    };
    let size = s.byte_size();
    if inner.spare_bytes + size <= SPARE_BYTES {
        s.clear();
        inner.spare_bytes += size;
        inner.spare.push(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn evicts_least_recently_used_to_stay_within_bytes() {
        let c = SpanCache::new(100);
        for i in 0..4 {
            c.get_or_decode((1, i), || Ok(Samples::I16(vec![0; 20])))
                .unwrap(); // 40 bytes each
        }
        assert!(c.bytes() <= 100);
        assert!(c.get((1, 3)).is_some());
        assert!(c.get((1, 0)).is_none());
    }

    #[test]
    fn evicted_buffers_no_reader_holds_are_reused() {
        let c = SpanCache::new(200); // room for two spans of 80 bytes
        let held = c
            .get_or_decode((1, 0), || Ok(Samples::I16(vec![7; 40])))
            .unwrap();
        c.get_or_decode((1, 1), || Ok(Samples::I16(vec![8; 40])))
            .unwrap();
        assert!(c.take_spare().is_none(), "nothing evicted yet");
        // Each insert evicts the oldest span: (1, 0) is still held by a reader, (1, 1)
        // is not.
        c.get_or_decode((1, 2), || Ok(Samples::I16(vec![9; 40])))
            .unwrap();
        assert!(
            c.take_spare().is_none(),
            "a held span's buffer is not taken from it"
        );
        assert_eq!(*held, Samples::I16(vec![7; 40]));
        c.get_or_decode((1, 3), || Ok(Samples::I16(vec![9; 40])))
            .unwrap();
        let Some(Samples::I16(v)) = c.take_spare() else {
            panic!("the evicted span's buffer should be spare");
        };
        assert!(v.is_empty() && v.capacity() >= 40);
        assert!(c.take_spare().is_none());
    }

    #[test]
    fn released_spans_leave_the_cache_and_their_free_buffers_become_spares() {
        let c = SpanCache::new(1 << 20);
        let held = c
            .get_or_decode((1, 0), || Ok(Samples::I16(vec![7; 40])))
            .unwrap();
        c.get_or_decode((1, 1), || Ok(Samples::I16(vec![8; 40])))
            .unwrap();
        c.get_or_decode((2, 0), || Ok(Samples::I16(vec![9; 40])))
            .unwrap();
        c.release([(1, 0), (1, 1), (1, 5)]);
        assert!(c.get((1, 0)).is_none() && c.get((1, 1)).is_none());
        assert!(c.get((2, 0)).is_some(), "another recording's span stays");
        assert_eq!(c.bytes(), 80);
        assert_eq!(
            *held,
            Samples::I16(vec![7; 40]),
            "a reader keeps what it holds"
        );
        let Some(Samples::I16(v)) = c.take_spare() else {
            panic!("the unheld released span's buffer should be spare");
        };
        assert!(v.is_empty() && v.capacity() >= 40);
        assert!(c.take_spare().is_none(), "the held one is not a spare");
    }

    #[test]
    fn claims_skip_present_spans_and_an_abandoned_claim_wakes_waiters() {
        let c = Arc::new(SpanCache::new(1 << 20));
        c.get_or_decode((1, 0), || Ok(Samples::I16(vec![1])))
            .unwrap();
        let claims = c.claim((0..3).map(|j| (1, j)));
        let keys: Vec<SpanKey> = claims.iter().map(Claim::key).collect();
        assert_eq!(keys, [(1, 1), (1, 2)], "span 0 is cached");
        assert!(c.claim([(1, 1)]).is_empty(), "span 1 is being decoded");
        let waiter = {
            let c = c.clone();
            std::thread::spawn(move || c.get_or_decode((1, 2), || panic!("claimed elsewhere")))
        };
        let mut claims = claims.into_iter();
        claims.next().unwrap().publish(Ok(Samples::I16(vec![2])));
        assert_eq!(*c.get((1, 1)).unwrap(), Samples::I16(vec![2]));
        // Let the waiter block on span 2 (were it late, it would decode it itself: the
        // panic above, also an error).
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(claims); // as a panicking decoder would
        assert!(waiter.join().unwrap().is_err());
        let again = c
            .get_or_decode((1, 2), || Ok(Samples::I16(vec![3])))
            .unwrap();
        assert_eq!(*again, Samples::I16(vec![3]), "the error was not cached");
    }

    #[test]
    fn concurrent_misses_decode_once() {
        let c = Arc::new(SpanCache::new(1 << 20));
        let calls = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (c, calls) = (c.clone(), calls.clone());
                std::thread::spawn(move || {
                    c.get_or_decode((7, 0), || {
                        calls.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        Ok(Samples::I16(vec![1, 2, 3]))
                    })
                    .unwrap()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(*t.join().unwrap(), Samples::I16(vec![1, 2, 3]));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn errors_are_not_cached() {
        let c = SpanCache::new(1000);
        let e = c.get_or_decode((1, 0), || {
            Err(CodecError::Damaged {
                path: "x".into(),
                message: "bad".into(),
            })
        });
        assert!(e.is_err());
        assert_eq!(
            *c.get_or_decode((1, 0), || Ok(Samples::I16(vec![5])))
                .unwrap(),
            Samples::I16(vec![5])
        );
    }
}
