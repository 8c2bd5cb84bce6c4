//! PCM recordings: the samples are stored as they are (docs/FORMAT.md, "`samples`"), so
//! a span is one chunk of the `samples` array, read and checked on its own.

use std::sync::Arc;

use crate::archive::RecordingStore;
use crate::archive::samples::SamplesReader;
use crate::codec::{CodecError, SampleKind, Samples, SpanSource};

pub struct PcmSource {
    store: Arc<RecordingStore>,
    reader: SamplesReader,
    starts: Vec<u64>,
}

impl PcmSource {
    pub fn open(store: Arc<RecordingStore>) -> Result<Self, CodecError> {
        let reader = store.samples()?;
        let frames = store.meta().frames;
        let starts = (0..frames.div_ceil(reader.chunk_frames()))
            .map(|j| j * reader.chunk_frames())
            .collect();
        Ok(PcmSource {
            store,
            reader,
            starts,
        })
    }
}

impl SpanSource for PcmSource {
    fn channels(&self) -> u16 {
        self.store.meta().channels
    }

    fn kind(&self) -> SampleKind {
        self.store.meta().sample_kind()
    }

    fn frames(&self) -> u64 {
        self.store.meta().frames
    }

    fn span_starts(&self) -> &[u64] {
        &self.starts
    }

    /// zarrs allocates the chunk's buffer itself; `_buffer` is not used.
    fn decode_span(&self, j: usize, _buffer: Samples) -> Result<Samples, CodecError> {
        Ok(self.reader.read_chunk(j as u64)?)
    }
}
