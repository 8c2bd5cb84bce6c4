//! An LRU cache of decoded spans bounded in bytes, shared by all recordings.
//!
//! Concurrent misses on the same span are merged: one caller decodes, the others wait
//! for its result, so a burst of readers never decodes a span twice.

use std::collections::HashMap;
use std::sync::Arc;

use lru::LruCache;
use parking_lot::{Condvar, Mutex};

use crate::codec::{CodecError, Samples};

/// (recording id, span index).
pub type SpanKey = (u64, usize);
pub type Span = Arc<Samples>;

type Outcome = Option<Result<Span, CodecError>>;

struct InFlight {
    result: Mutex<Outcome>,
    ready: Condvar,
}

struct Inner {
    lru: LruCache<SpanKey, Span>,
    bytes: usize,
    inflight: HashMap<SpanKey, Arc<InFlight>>,
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

    /// Whether `key` is cached or being decoded now (does not touch the LRU order).
    pub fn is_present(&self, key: SpanKey) -> bool {
        let inner = self.inner.lock();
        inner.lru.contains(&key) || inner.inflight.contains_key(&key)
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
                    let f = Arc::new(InFlight {
                        result: Mutex::new(None),
                        ready: Condvar::new(),
                    });
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

    /// Decodes and caches `key` unless it is cached or being decoded already; never
    /// waits for another thread. For prefetching.
    pub fn fill(&self, key: SpanKey, decode: impl FnOnce() -> Result<Samples, CodecError>) {
        let flight = {
            let mut inner = self.inner.lock();
            if inner.lru.contains(&key) || inner.inflight.contains_key(&key) {
                return;
            }
            let f = Arc::new(InFlight {
                result: Mutex::new(None),
                ready: Condvar::new(),
            });
            inner.inflight.insert(key, f.clone());
            f
        };
        if let Err(e) = self.decode_and_publish(key, flight, decode) {
            log::debug!("prefetch of span {key:?} failed: {e}");
        }
    }

    fn decode_and_publish(
        &self,
        key: SpanKey,
        flight: Arc<InFlight>,
        decode: impl FnOnce() -> Result<Samples, CodecError>,
    ) -> Result<Span, CodecError> {
        // A panic inside a decoder must not leave waiters blocked forever.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode))
            .unwrap_or_else(|_| {
                Err(CodecError::Damaged {
                    path: Default::default(),
                    message: "decoder panicked".into(),
                })
            })
            .map(Arc::new);
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
                Some((_, old)) => inner.bytes -= span_bytes(&old),
                None => break,
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
