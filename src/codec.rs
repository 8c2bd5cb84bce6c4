//! Codecs: turning a recording's stored stream into samples, span by span.
//!
//! Every codec presents a recording as a list of *spans*, frame ranges that decode
//! independently of each other (for Opus: from one checkpoint to the next). The engine
//! caches and prefetches spans without knowing what codec made them.

pub mod flac;
pub mod opus;
pub mod pcm;

use crate::store::Location;

use crate::archive::ArchiveError;
pub use crate::archive::SampleKind;
use crate::archive::ogg::OggError;
pub use crate::archive::samples::Samples;

/// Why samples could not be produced.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("{path}: {source}")]
    Ogg { path: Location, source: OggError },
    #[error("{path}: {source}")]
    Opus {
        path: Location,
        source: opus::OpusError,
    },
    #[error("{path}: damaged: {message}")]
    Damaged { path: Location, message: String },
    /// The operation does not apply to this recording (e.g. checkpoints of a FLAC one).
    #[error("{path}: {message}")]
    NotApplicable { path: Location, message: String },
}

impl CodecError {
    /// Turns a libopus error about the recording at `path` into a `CodecError`.
    pub fn opus(path: &Location) -> impl Fn(opus::OpusError) -> CodecError + '_ {
        move |source| CodecError::Opus {
            path: path.clone(),
            source,
        }
    }
}

/// A recording's audio as independently decodable spans of interleaved samples.
pub trait SpanSource: Send + Sync {
    fn channels(&self) -> u16;
    /// What the decoded samples are; `decode_span` returns the matching `Samples`
    /// variant (`I16` for integers of up to 16 bits, `I32` above, `F32` for float).
    fn kind(&self) -> SampleKind;
    /// Frames the user sees.
    fn frames(&self) -> u64;
    /// First frame of each span: ascending, starting at 0, each span non-empty.
    /// Span `j` covers `starts[j]..starts[j + 1]` (the last one ends at `frames()`).
    fn span_starts(&self) -> &[u64];
    /// Decodes span `j`: exactly its length × `channels()` samples. `buffer` is an
    /// empty buffer (of any variant) whose allocation the decoder may fill instead of
    /// allocating one.
    fn decode_span(&self, j: usize, buffer: Samples) -> Result<Samples, CodecError>;

    /// Decodes spans `spans` in order, calling `emit(j, result)` as each is done;
    /// `buffer()` gives the empty buffer for the next one (as `decode_span`'s). A source
    /// whose spans follow on in one decoder (Opus) restores a checkpoint for the first
    /// span only and decodes on through the rest, which is also exactly the sequential
    /// decode; by default each span is decoded alone.
    fn decode_run(
        &self,
        spans: std::ops::Range<usize>,
        buffer: &mut dyn FnMut() -> Samples,
        emit: &mut dyn FnMut(usize, Result<Samples, CodecError>),
    ) {
        for j in spans {
            emit(j, self.decode_span(j, buffer()));
        }
    }

    /// Hints that spans `spans` will be decoded soon: the source may start reading
    /// their compressed bytes from disk in the background. By default, nothing.
    fn will_need(&self, _spans: std::ops::Range<usize>) {}

    /// Frame range of span `j`.
    fn span_range(&self, j: usize) -> std::ops::Range<u64> {
        let s = self.span_starts();
        s[j]..s.get(j + 1).copied().unwrap_or(self.frames())
    }

    /// The span containing frame `f` (`f < frames()`).
    fn span_of(&self, f: u64) -> usize {
        self.span_starts().partition_point(|&s| s <= f) - 1
    }
}
