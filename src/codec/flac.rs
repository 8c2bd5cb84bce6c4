//! FLAC: indexing a stream's frames without decoding, decoding frame ranges, and encoding.
//!
//! A recording's FLAC stream is used like a list of independently decodable frames:
//! [`scan()`] walks every frame header once (checking CRCs, sample numbering and
//! STREAMINFO) and yields the byte range and sample range of every frame, so any
//! sample range can later be served by [`decode_frames`] on just the frames covering
//! it. [`FlacEncoder`] writes such streams (fixed 4096-sample blocks) with a bounded
//! amount of sample memory.
//!
//! Samples are interleaved `i32`s, each within the signed range of the stream's
//! bits per sample. Decoding supports 4..=24 bits and 1..=8 channels; encoding
//! supports 8, 12, 16, 20 and 24 bits (libFLAC, at the `flac` command's default
//! level 5).

mod checksum;
mod decode;
mod encode;
mod header;
mod scan;
mod source;
#[doc(hidden)]
pub mod synth;
#[cfg(test)]
mod tests;

pub use checksum::AudioMd5;
pub use decode::decode_frames;
pub use encode::{BLOCK_SIZE, FlacEncoder};
/// Frame headers and STREAMINFO as bytes, for `crate::fuzzing`'s round-trip properties.
#[doc(hidden)]
pub(crate) use header::{
    parse_frame_header, parse_streaminfo, write_frame_header, write_streaminfo,
};
pub use scan::{scan, stream_info};
pub use source::{FlacSource, check_audio, frames_from_index, index_rows};

/// STREAMINFO essentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub sample_rate: u32,
    pub channels: u16,
    pub bits_per_sample: u16,
    /// Per channel; 0 = unknown.
    pub total_samples: u64,
    /// MD5 of the decoded audio (see [`AudioMd5`]); all zero = not set.
    pub md5: [u8; 16],
    pub min_block_size: u16,
    pub max_block_size: u16,
}

/// One audio frame of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameEntry {
    /// Byte offset of the frame in the file.
    pub offset: u64,
    /// Length in bytes, header to CRC-16 inclusive.
    pub len: u64,
    /// Stream position (per channel) of the frame's first sample.
    pub first_sample: u64,
    /// Samples per channel in the frame.
    pub samples: u32,
}

/// The VORBIS_COMMENT metadata block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VorbisComment {
    pub vendor: String,
    /// `NAME=value` entries, in stored order.
    pub comments: Vec<String>,
}

/// What [`scan()`] found: the stream's parameters and where every frame is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlacLayout {
    pub info: StreamInfo,
    pub vorbis_comment: Option<VorbisComment>,
    /// Byte offset of the first frame.
    pub audio_offset: u64,
    /// Every frame, in order; at least one; contiguous in samples from 0.
    pub frames: Vec<FrameEntry>,
}

/// What is wrong with a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameProblem {
    #[error("no frame sync code")]
    NoSync,
    #[error("truncated")]
    Truncated,
    #[error("reserved value in the {0}")]
    Reserved(&'static str),
    #[error("invalid frame/sample number coding")]
    BadNumber,
    #[error("header CRC-8 mismatch")]
    HeaderCrc,
    #[error("CRC-16 mismatch")]
    Crc,
    #[error(
        "no valid next frame header, and the CRC-16 up to the end of the file is wrong \
         (damage in this frame or in the next frame's header)"
    )]
    NoEnd,
    #[error("{what} is {found}, STREAMINFO says {expected}")]
    Mismatch {
        what: &'static str,
        found: u64,
        expected: u64,
    },
    #[error("blocking strategy differs from the first frame")]
    BlockingChanged,
    #[error("frame number {found}, expected {expected}")]
    FrameNumber { expected: u64, found: u64 },
    #[error("starts at sample {found}, expected {expected}")]
    SampleNumber { expected: u64, found: u64 },
    #[error(
        "block size {found} differs from STREAMINFO's {expected}, allowed only for the last frame"
    )]
    ShortBlock { expected: u64, found: u64 },
    #[error("ends at sample {end}, beyond the requested end {limit}")]
    TooManySamples { end: u64, limit: u64 },
    #[error("subframes: {0}")]
    Subframe(String),
    #[error("decoded sample {value} is outside the {bits}-bit range")]
    SampleRange { value: i64, bits: u16 },
}

/// Why a FLAC stream could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlacError {
    #[error("not a FLAC stream (no fLaC marker)")]
    NotFlac,
    #[error("metadata block at byte {offset}: {problem}")]
    Metadata { offset: u64, problem: String },
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("the stream has no audio frames")]
    NoFrames,
    /// From [`scan()`]: `index` counts frames from 0, `offset` is in the file.
    #[error("frame {index} at byte {offset}: {problem}")]
    Frame {
        index: u64,
        offset: u64,
        problem: FrameProblem,
    },
    #[error("STREAMINFO says {expected} samples per channel, the frames hold {found}")]
    TotalSamples { expected: u64, found: u64 },
    /// From [`decode_frames`]: the frame that should start at `first_sample`, found at
    /// `offset` bytes into the given frames.
    #[error("frame expected at sample {first_sample} (byte {offset} of the range): {problem}")]
    Decode {
        first_sample: u64,
        offset: u64,
        problem: FrameProblem,
    },
    #[error("the frames hold {found} samples per channel, {expected} were expected")]
    SampleCount { expected: u64, found: u64 },
    #[error("invalid encoder parameters: {0}")]
    Parameter(String),
    #[error("input sample {index} ({value}) is outside the {bits}-bit range")]
    InputRange { index: u64, value: i32, bits: u16 },
    #[error("{samples} input samples are not whole frames of {channels} channels")]
    PartialFrame { samples: u64, channels: u16 },
    #[error("more than 2^36 - 1 samples per channel, which STREAMINFO cannot count")]
    TooLong,
    #[error("encoder: {0}")]
    Encoder(String),
}
