//! The sample engine: "frames a..b of recording R" → decoded samples, through a shared
//! LRU cache of spans. Codec-agnostic: it sees recordings only as `SpanSource`s.

mod span_cache;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use span_cache::SpanCache;

use crate::archive::{Archive, RecordingMeta};
use crate::codec::opus::OpusSource;
use crate::codec::{CodecError, SpanSource};

/// Default bound of the span cache.
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;

/// Shared state for reading many recordings: the span cache.
pub struct Engine {
    cache: Arc<SpanCache>,
    next_id: AtomicU64,
}

impl Engine {
    pub fn new(cache_bytes: usize) -> Self {
        Engine {
            cache: Arc::new(SpanCache::new(cache_bytes)),
            next_id: AtomicU64::new(1),
        }
    }

    pub fn cache(&self) -> &SpanCache {
        &self.cache
    }

    /// Opens the recording at archive-relative `path` for reading.
    pub fn open(&self, archive: &Archive, path: &str) -> Result<Recording, CodecError> {
        let store = Arc::new(archive.recording(path)?);
        let meta = store.meta().clone();
        let source: Arc<dyn SpanSource> = Arc::new(OpusSource::open(store)?);
        Ok(self.wrap(meta, source))
    }

    /// Wraps any span source (tests use synthetic ones).
    pub fn wrap(&self, meta: RecordingMeta, source: Arc<dyn SpanSource>) -> Recording {
        Recording {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            meta,
            source,
            cache: self.cache.clone(),
        }
    }
}

/// A recording opened for reading.
#[derive(Clone)]
pub struct Recording {
    id: u64,
    meta: RecordingMeta,
    source: Arc<dyn SpanSource>,
    cache: Arc<SpanCache>,
}

impl Recording {
    pub fn meta(&self) -> &RecordingMeta {
        &self.meta
    }

    pub fn channels(&self) -> u16 {
        self.source.channels()
    }

    pub fn frames(&self) -> u64 {
        self.source.frames()
    }

    pub fn span_count(&self) -> usize {
        self.source.span_starts().len()
    }

    /// Span `j`, from the cache or decoded now.
    pub fn span(&self, j: usize) -> Result<Arc<Vec<i16>>, CodecError> {
        self.cache
            .get_or_decode((self.id, j), || self.source.decode_span(j))
    }

    /// The span containing frame `f`.
    pub fn span_of(&self, f: u64) -> usize {
        self.source.span_of(f)
    }

    /// Fills `out` with interleaved frames starting at frame `start`; returns the number
    /// of frames written (fewer than requested only at the end of the recording).
    pub fn read_frames(&self, start: u64, out: &mut [i16]) -> Result<usize, CodecError> {
        let ch = usize::from(self.channels());
        let want = (out.len() / ch) as u64;
        let end = start.saturating_add(want).min(self.frames());
        if end > start {
            // A read across a span boundary: decode the later spans on other cores
            // while this thread decodes the first.
            let (first, last) = (self.span_of(start), self.span_of(end - 1));
            if last > first {
                self.prefetch(first + 1..last + 1);
            }
        }
        let mut f = start;
        while f < end {
            let j = self.source.span_of(f);
            let r = self.source.span_range(j);
            let span = self.span(j)?;
            let n = (r.end.min(end) - f) as usize;
            let src = (f - r.start) as usize * ch;
            let dst = (f - start) as usize * ch;
            out[dst..dst + n * ch].copy_from_slice(&span[src..src + n * ch]);
            f += n as u64;
        }
        Ok((end.saturating_sub(start)) as usize)
    }

    /// Like `read_frames`, as f32 in -1.0..1.0 (each i16 sample divided by 32768).
    pub fn read_frames_f32(&self, start: u64, out: &mut [f32]) -> Result<usize, CodecError> {
        let mut tmp = vec![0i16; out.len()];
        let n = self.read_frames(start, &mut tmp)?;
        for (o, s) in out.iter_mut().zip(&tmp) {
            *o = f32::from(*s) / 32768.0;
        }
        Ok(n)
    }

    /// Starts decoding spans `spans` on the rayon pool into the cache, without waiting.
    /// Spans cached or being decoded already are skipped (a pool thread must not sit
    /// waiting for another thread's decode).
    pub fn prefetch(&self, spans: std::ops::Range<usize>) {
        for j in spans.take_while(|&j| j < self.span_count()) {
            if self.cache.is_present((self.id, j)) {
                continue;
            }
            let me = self.clone();
            rayon::spawn(move || me.cache.fill((me.id, j), || me.source.decode_span(j)));
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        log::debug!("span cache held {} bytes at exit", self.cache.bytes());
    }
}
