//! The sample engine: "frames a..b of recording R" → decoded samples, through a shared
//! LRU cache of spans. Codec-agnostic: it sees recordings only as `SpanSource`s.

mod span_cache;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use span_cache::Claim;
pub use span_cache::SpanCache;

use crate::archive::{Archive, RecordingMeta, RecordingStore};
use crate::codec::flac::FlacSource;
use crate::codec::opus::OpusSource;
use crate::codec::pcm::PcmSource;
use crate::codec::{CodecError, SampleKind, Samples, SpanSource};
use crate::wav::{SampleFormat, encode_f32, encode_i16, encode_i32};

/// Default bound of the span cache.
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;

/// Makes glibc allocate every block of 128 KiB or more (decoded spans: 288 KiB for 3 s
/// of mono) with mmap, so an evicted span goes back to the system. By default glibc
/// raises that threshold to the largest block freed so far (up to 32 MiB); spans then
/// come from heap arenas that seldom shrink, and a daemon's resident size drifted to
/// `--cache-size` + 150 MiB (docs/BENCHMARKS.md).
pub fn fixed_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; call before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}

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

    /// Prepares for serving recordings like `metas` before the first read: decides now
    /// (a short self-test decode, see `codec::opus::fingerprint`) whether stored Opus
    /// checkpoints of mono and stereo recordings can be used, so the first open of one
    /// does not wait for it, and the decoder's code is in memory.
    pub fn prepare<'a>(&self, metas: impl IntoIterator<Item = &'a RecordingMeta>) {
        let mut layouts = std::collections::BTreeSet::new();
        for m in metas {
            if m.codec == "opus" && m.channels <= 2 {
                layouts.insert(m.channels as u8);
            }
        }
        for ch in layouts {
            if let Ok(mapping) = crate::archive::opus_head::ChannelMapping::family0(ch) {
                crate::codec::opus::current_fingerprint(&mapping);
            }
        }
    }

    /// Opens the recording at archive-relative `path` for reading.
    pub fn open(&self, archive: &Archive, path: &str) -> Result<Recording, CodecError> {
        self.open_store(archive.recording(path)?)
    }

    /// Opens a recording listed with `meta` (see `Archive::recording_as_listed`).
    pub fn open_listed(
        &self,
        archive: &Archive,
        path: &str,
        meta: &RecordingMeta,
    ) -> Result<Recording, CodecError> {
        self.open_store(archive.recording_as_listed(path, meta)?)
    }

    fn open_store(&self, store: RecordingStore) -> Result<Recording, CodecError> {
        let store = Arc::new(store);
        let meta = store.meta().clone();
        let source: Arc<dyn SpanSource> = match meta.codec.as_str() {
            "pcm" => Arc::new(PcmSource::open(store)?),
            "flac" => Arc::new(FlacSource::open(store)?),
            // "opus": the metadata's validation admits no other codec
            _ => Arc::new(OpusSource::open(store)?),
        };
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

    /// Which opening this is: a recording opened again has another id.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn frames(&self) -> u64 {
        self.source.frames()
    }

    pub fn span_count(&self) -> usize {
        self.source.span_starts().len()
    }

    /// What the decoded samples are.
    pub fn kind(&self) -> SampleKind {
        self.source.kind()
    }

    /// Span `j`, from the cache or decoded now.
    pub fn span(&self, j: usize) -> Result<Arc<Samples>, CodecError> {
        self.cache.get_or_decode((self.id, j), || self.decode(j))
    }

    /// Decodes span `j` into a spare buffer of the cache if there is one.
    fn decode(&self, j: usize) -> Result<Samples, CodecError> {
        self.source.decode_span(j, self.spare_buffer())
    }

    fn spare_buffer(&self) -> Samples {
        let buffer = self.cache.take_spare();
        buffer.unwrap_or_else(|| Samples::empty(self.kind()))
    }

    /// The span containing frame `f`.
    pub fn span_of(&self, f: u64) -> usize {
        self.source.span_of(f)
    }

    /// Calls `visit(span, samples)` for the spans covering frames `start..start + n`
    /// (clamped to the recording), in order, with the sample index range of each span
    /// that falls inside; returns the number of frames covered.
    fn for_each_part(
        &self,
        start: u64,
        n: u64,
        mut visit: impl FnMut(&Samples, std::ops::Range<usize>),
    ) -> Result<usize, CodecError> {
        let ch = usize::from(self.channels());
        let end = start.saturating_add(n).min(self.frames());
        if end <= start {
            return Ok(0);
        }
        // A read across a span boundary: decode the later spans on other cores while
        // this thread decodes the first.
        let (first, last) = (self.span_of(start), self.span_of(end - 1));
        if last > first {
            self.prefetch(first + 1..last + 1);
        }
        let mut f = start;
        while f < end {
            let j = self.source.span_of(f);
            let r = self.source.span_range(j);
            let span = self.span(j)?;
            let len = r.end.min(end) - f;
            let from = (f - r.start) as usize * ch;
            visit(&span, from..from + len as usize * ch);
            f += len;
        }
        Ok((end - start) as usize)
    }

    /// Appends frames `start..start + n` (clamped to the recording) to `out`, encoded
    /// as `format` the way the served WAV file's data chunk holds them; returns the
    /// number of frames written. Encodes straight from the cached spans.
    pub fn read_encoded(
        &self,
        start: u64,
        n: u64,
        format: SampleFormat,
        out: &mut Vec<u8>,
    ) -> Result<usize, CodecError> {
        let kind = self.kind();
        self.for_each_part(start, n, |span, r| encode_part(span, kind, r, format, out))
    }

    /// Fills `out` with interleaved frames starting at frame `start`, as 16-bit
    /// samples (converted as the `s16` served format does); returns the number of
    /// frames written (fewer than requested only at the end of the recording).
    pub fn read_frames(&self, start: u64, out: &mut [i16]) -> Result<usize, CodecError> {
        let ch = usize::from(self.channels());
        let kind = self.kind();
        let (mut at, mut bytes) = (0, Vec::new());
        self.for_each_part(start, (out.len() / ch) as u64, |span, r| {
            let n = r.len();
            if let (Samples::I16(v), SampleKind::Int(16)) = (span, kind) {
                out[at..at + n].copy_from_slice(&v[r]);
            } else {
                bytes.clear();
                encode_part(span, kind, r, SampleFormat::S16, &mut bytes);
                for (o, b) in out[at..at + n].iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = i16::from_le_bytes([b[0], b[1]]);
                }
            }
            at += n;
        })
    }

    /// Like `read_frames`, as f32 full scale ±1.0 (as the `f32` served format).
    pub fn read_frames_f32(&self, start: u64, out: &mut [f32]) -> Result<usize, CodecError> {
        let ch = self.channels() as usize;
        let mut bytes = Vec::with_capacity(out.len() * 4);
        let n = self.read_encoded(
            start,
            (out.len() / ch) as u64,
            SampleFormat::F32,
            &mut bytes,
        )?;
        for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        Ok(n)
    }

    /// Starts decoding spans `spans` on the rayon pool into the cache, without waiting.
    /// Spans cached or being decoded already are skipped (a pool thread must not sit
    /// waiting for another thread's decode). Consecutive spans are cut into one run
    /// per pool thread: a run restores one checkpoint and decodes on through the rest
    /// (`SpanSource::decode_run`), and each span is published as soon as it is done.
    pub fn prefetch(&self, spans: std::ops::Range<usize>) {
        let spans = spans.start..spans.end.min(self.span_count());
        if spans.is_empty() {
            // Most reads ask for nothing: no need to take the cache lock.
            return;
        }
        let claims = self.cache.claim(spans.map(|j| (self.id, j)));
        let threads = rayon::current_num_threads().max(1);
        for mut run in consecutive_runs(claims) {
            let first = run[0].key().1;
            self.source.will_need(first..first + run.len());
            let len = run.len().div_ceil(threads);
            while !run.is_empty() {
                let part: Vec<Claim> = run.drain(..len.min(run.len())).collect();
                let me = self.clone();
                rayon::spawn(move || me.decode_claims(part));
            }
        }
    }

    /// Drops spans `spans` from the cache, their buffers kept for the next decodes
    /// (for spans a sequential reader has passed and will not read again).
    pub fn release(&self, spans: std::ops::Range<usize>) {
        if !spans.is_empty() {
            self.cache.release(spans.map(|j| (self.id, j)));
        }
    }

    /// Decodes claimed consecutive spans as one run and publishes each.
    fn decode_claims(&self, claims: Vec<Claim>) {
        let first = claims[0].key().1;
        let spans = first..first + claims.len();
        let mut claims = claims.into_iter();
        // A panic must not abort the process (rayon's default for spawned jobs); the
        // claims it leaves unpublished publish an error when dropped.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.source
                .decode_run(spans, &mut || self.spare_buffer(), &mut |_, r| {
                    if let Some(claim) = claims.next() {
                        claim.publish(r);
                    }
                })
        }));
    }
}

/// `claims` (in ascending span order) grouped into runs of consecutive spans.
fn consecutive_runs(claims: Vec<Claim>) -> Vec<Vec<Claim>> {
    let mut runs: Vec<Vec<Claim>> = Vec::new();
    for c in claims {
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|p| p.key().1 + 1 == c.key().1) => run.push(c),
            _ => runs.push(vec![c]),
        }
    }
    runs
}

/// Encodes samples `r` of a span as `format`, appending to `out`.
fn encode_part(
    span: &Samples,
    kind: SampleKind,
    r: std::ops::Range<usize>,
    format: SampleFormat,
    out: &mut Vec<u8>,
) {
    match span {
        Samples::I16(v) => match kind {
            // Narrower integers (8, 12 bits) sit right-justified in the i16: widen them
            // to full scale like every other width.
            SampleKind::Int(bits) if bits < 16 => {
                let wide: Vec<i32> = v[r].iter().map(|&s| i32::from(s)).collect();
                encode_i32(&wide, bits, format, out)
            }
            _ => encode_i16(&v[r], format, out),
        },
        Samples::I32(v) => {
            let bits = match kind {
                SampleKind::Int(bits) => bits,
                SampleKind::F32 => 32,
            };
            encode_i32(&v[r], bits, format, out)
        }
        Samples::F32(v) => encode_f32(&v[r], format, out),
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        log::info!("span cache held {} bytes at exit", self.cache.bytes());
    }
}
