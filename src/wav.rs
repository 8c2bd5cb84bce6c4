//! The exact bytes of the WAV file that zarr-wavfs serves.
//!
//! Both `extract` and the FUSE mount lay their output out through this
//! module, so the same [`WavLayout`] always produces the same bytes, and a
//! read of any byte range of the file can be answered without materializing
//! the whole file ([`WavLayout::map_read`]).
//!
//! # File layout (part of the product's contract)
//!
//! All integers are little endian. Sizes are exact: nothing is rounded up or
//! reserved for later.
//!
//! * **Plain RIFF** (the normal case):
//!   `RIFF`, the RIFF size (u32, file length − 8), `WAVE`, then the `fmt ` chunk, then
//!   the `bext` chunk when the recording's start time is known and the chunks the
//!   recording came with (`crate::chunks::served`), then the `data` chunk. Nothing else:
//!   in particular no `JUNK`/`ds64` placeholder.
//! * **`fmt `**:
//!   * [`SampleFormat::S16`] with 1 or 2 channels: the 16-byte
//!     `PCMWAVEFORMAT` with `wFormatTag = WAVE_FORMAT_PCM (1)`, the form every
//!     reader understands.
//!   * everything else (more than 2 channels, more than 16 bits, or
//!     float): the 40-byte `WAVEFORMATEXTENSIBLE` with
//!     `wFormatTag = WAVE_FORMAT_EXTENSIBLE (0xFFFE)`, `cbSize = 22`,
//!     `wValidBitsPerSample` = `wBitsPerSample` = the sample's bits,
//!     `dwChannelMask` = ffmpeg's default layout for the channel count (see
//!     [`channel_mask`]; 0, "no speaker assignment", above 8 channels), and
//!     `SubFormat` = `KSDATAFORMAT_SUBTYPE_PCM`
//!     `{00000001-0000-0010-8000-00aa00389b71}` or, for
//!     [`SampleFormat::F32`], `KSDATAFORMAT_SUBTYPE_IEEE_FLOAT`
//!     `{00000003-0000-0010-8000-00aa00389b71}`. Microsoft requires the
//!     extensible form for more than 2 channels or more than 16 bits; using
//!     it for float as well (instead of `WAVE_FORMAT_IEEE_FLOAT`, which would
//!     also want a `fact` chunk) keeps a single non-PCM code path.
//! * **`data`**: frames of interleaved samples, `block_align = channels *
//!   bytes per sample` bytes per frame, encoded by [`encode_i16`]. If the data
//!   length is odd, one zero pad byte follows the data chunk (RIFF chunks are
//!   word aligned). The pad byte is counted in the RIFF size but not in the
//!   `data` chunk size.
//! * **RF64** is used exactly when the plain RIFF size (file length − 8,
//!   computed for the plain layout above) is greater than `0xFFFF_FFFF`, i.e.
//!   does not fit the 32-bit size field. A RIFF size is always even (every
//!   chunk is word aligned), so it never equals `0xFFFF_FFFF`, the RF64
//!   "see `ds64`" marker: the largest plain file has RIFF size `0xFFFF_FFFE`,
//!   and its `data` size is then below 4 GiB − 1 as well. An RF64 file is:
//!   `RF64` `0xFFFF_FFFF` `WAVE`, then `ds64` (size 28: riffSize u64 = file
//!   length − 8, dataSize u64 = data length without pad, sampleCount u64 =
//!   frames, tableLength u32 = 0), then the same `fmt ` chunk, then `data` with
//!   size field `0xFFFF_FFFF`.
//!
//! Header lengths (all bytes before the first sample) are therefore 44 (PCM)
//! or 68 (extensible) for plain RIFF, and 80 or 104 for RF64, plus the chunks (610 for
//! `bext` alone).

use std::ops::Range;

use thiserror::Error;

use crate::archive::SampleKind;
use crate::chunks::Chunk;

const WAVE_FORMAT_PCM: u16 = 0x0001;
const WAVE_FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// `KSDATAFORMAT_SUBTYPE_PCM`, {00000001-0000-0010-8000-00aa00389b71}, in its
/// on-disk (mixed-endian GUID) byte order.
const KSDATAFORMAT_SUBTYPE_PCM: [u8; 16] = [
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];
/// `KSDATAFORMAT_SUBTYPE_IEEE_FLOAT`, {00000003-0000-0010-8000-00aa00389b71}.
const KSDATAFORMAT_SUBTYPE_IEEE_FLOAT: [u8; 16] = [
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

/// Body size of the `fmt ` chunk in `PCMWAVEFORMAT` form.
const FMT_PCM_LEN: u32 = 16;
/// Body size of the `fmt ` chunk in `WAVEFORMATEXTENSIBLE` form.
const FMT_EXTENSIBLE_LEN: u32 = 40;
/// `cbSize`: bytes of `WAVEFORMATEXTENSIBLE` after the `WAVEFORMATEX` part.
const EXTENSIBLE_CB_SIZE: u16 = 22;
/// Body size of the `ds64` chunk (three u64 sizes and an empty table's u32
/// length).
const DS64_LEN: u32 = 28;
/// A chunk header: 4-byte id plus u32 size.
const CHUNK_HEADER_LEN: u64 = 8;
/// `RIFF`/`RF64` id, its size field and the `WAVE` form type.
const RIFF_HEADER_LEN: u64 = 12;
/// What RF64 writes into 32-bit size fields whose real value is in `ds64`.
const RF64_SIZE_MARKER: u32 = u32::MAX;

/// Errors from [`WavLayout::new`].
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum WavError {
    #[error("channel count {0} is out of range (1..=255)")]
    InvalidChannels(u16),
    #[error("sample rate must be greater than 0")]
    ZeroSampleRate,
    #[error(
        "byte rate of {sample_rate} Hz x {block_align} bytes per frame does not fit in 32 bits"
    )]
    ByteRateOverflow { sample_rate: u32, block_align: u64 },
    #[error("a WAV file of {frames} frames x {block_align} bytes would exceed 2^64 bytes")]
    TooLarge { frames: u64, block_align: u64 },
}

/// Sample encoding of the served data chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleFormat {
    /// 16-bit signed integer.
    S16,
    /// 24-bit signed integer, packed in 3 bytes.
    S24,
    /// 32-bit signed integer.
    S32,
    /// 32-bit IEEE float, full scale ±1.0.
    F32,
}

impl SampleFormat {
    /// Bytes per sample (container size).
    pub fn bytes(self) -> u16 {
        match self {
            SampleFormat::S16 => 2,
            SampleFormat::S24 => 3,
            SampleFormat::S32 | SampleFormat::F32 => 4,
        }
    }

    /// Bits per sample; every format uses all bits of its container.
    pub fn bits(self) -> u16 {
        self.bytes() * 8
    }

    /// Parses the names returned by [`SampleFormat::name`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "s16" => Some(SampleFormat::S16),
            "s24" => Some(SampleFormat::S24),
            "s32" => Some(SampleFormat::S32),
            "f32" => Some(SampleFormat::F32),
            _ => None,
        }
    }

    /// Short lowercase name: `s16`, `s24`, `s32` or `f32`.
    pub fn name(self) -> &'static str {
        match self {
            SampleFormat::S16 => "s16",
            SampleFormat::S24 => "s24",
            SampleFormat::S32 => "s32",
            SampleFormat::F32 => "f32",
        }
    }
}

/// `dwChannelMask` for a channel count: ffmpeg's default layout
/// (`av_get_default_channel_layout`, the first entry of its layout table with
/// that many channels), so ffmpeg-based tools see the layout they would have
/// assumed for an unlabelled stream. 0 (no speaker positions) beyond 8.
///
/// | channels | ffmpeg layout | speakers                         |
/// |----------|---------------|----------------------------------|
/// | 1        | mono          | FC                               |
/// | 2        | stereo        | FL FR                            |
/// | 3        | 2.1           | FL FR LFE                        |
/// | 4        | 4.0           | FL FR FC BC                      |
/// | 5        | 5.0 (back)    | FL FR FC BL BR                   |
/// | 6        | 5.1 (back)    | FL FR FC LFE BL BR               |
/// | 7        | 6.1           | FL FR FC LFE BC SL SR            |
/// | 8        | 7.1           | FL FR FC LFE BL BR SL SR         |
pub fn channel_mask(channels: u16) -> u32 {
    match channels {
        1 => 0x4,
        2 => 0x3,
        3 => 0xB,
        4 => 0x107,
        5 => 0x37,
        6 => 0x3F,
        7 => 0x70F,
        8 => 0x63F,
        _ => 0,
    }
}

/// Everything needed to lay out a WAV file.
///
/// Build it with [`WavLayout::new`], which rejects layouts that cannot be
/// written. The fields are public for reading; all methods stay panic-free
/// (saturating) even on a hand-built invalid value, but only validated layouts
/// give meaningful results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WavLayout {
    pub channels: u16,
    pub sample_rate: u32,
    pub frames: u64,
    pub format: SampleFormat,
    /// Chunks between `fmt ` and `data` (`bext`, kept chunks: `chunks::served`).
    pub chunks: Vec<Chunk>,
}

/// How one read of `(offset, len)` bytes of the file maps onto the layout.
///
/// The bytes of the read are, in order: `header()[header]`, then the
/// encoding of frames `frames` with its first `skip` bytes dropped and cut to
/// `data_bytes` bytes, then `pad` zero bytes. Their total is the read clamped
/// to the end of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadPlan {
    /// Byte range inside [`WavLayout::header`]; may be empty.
    pub header: Range<u64>,
    /// Frames touched by the read; empty when `data_bytes` is 0.
    pub frames: Range<u64>,
    /// Bytes to drop from the start of the encoded first frame
    /// (`< block_align`).
    pub skip: u64,
    /// Bytes of sample data to deliver.
    pub data_bytes: u64,
    /// 0 or 1 trailing zero pad byte.
    pub pad: u64,
}

impl WavLayout {
    /// Validates and builds a layout: `channels` must be in `1..=255`,
    /// `sample_rate` positive, the byte rate (`sample_rate * block_align`)
    /// must fit its 32-bit header field, and the file length must fit in u64.
    pub fn new(
        channels: u16,
        sample_rate: u32,
        frames: u64,
        format: SampleFormat,
    ) -> Result<Self, WavError> {
        if !(1..=255).contains(&channels) {
            return Err(WavError::InvalidChannels(channels));
        }
        if sample_rate == 0 {
            return Err(WavError::ZeroSampleRate);
        }
        let layout = WavLayout {
            channels,
            sample_rate,
            frames,
            format,
            chunks: Vec::new(),
        };
        let block_align = layout.block_align();
        if u32::try_from(u64::from(sample_rate) * block_align).is_err() {
            return Err(WavError::ByteRateOverflow {
                sample_rate,
                block_align,
            });
        }
        // The accessors saturate; here make sure they never had to.
        let fits = frames
            .checked_mul(block_align)
            .and_then(|data| data.checked_add(layout.header_len() + data % 2));
        if fits.is_none() {
            return Err(WavError::TooLarge {
                frames,
                block_align,
            });
        }
        Ok(layout)
    }

    /// The same layout with `chunks` between `fmt ` and `data`.
    pub fn with_chunks(mut self, chunks: Vec<Chunk>) -> Self {
        self.chunks = chunks;
        self
    }

    /// Bytes per frame: channels × bytes per sample.
    pub fn block_align(&self) -> u64 {
        u64::from(self.channels) * u64::from(self.format.bytes())
    }

    /// Length of the sample data, without the pad byte.
    pub fn data_len(&self) -> u64 {
        self.frames.saturating_mul(self.block_align())
    }

    /// Length of all bytes before the first sample; equals `header().len()`.
    pub fn header_len(&self) -> u64 {
        let ds64 = if self.is_rf64() {
            CHUNK_HEADER_LEN + u64::from(DS64_LEN)
        } else {
            0
        };
        self.plain_header_len() + ds64
    }

    /// Total file length: header, data and the pad byte if the data length is
    /// odd.
    pub fn file_len(&self) -> u64 {
        self.header_len()
            .saturating_add(self.data_len())
            .saturating_add(self.pad_len())
    }

    /// Whether the file is RF64 rather than plain RIFF (see the module doc).
    pub fn is_rf64(&self) -> bool {
        let plain_riff_size = (self.plain_header_len() - CHUNK_HEADER_LEN)
            .saturating_add(self.data_len())
            .saturating_add(self.pad_len());
        plain_riff_size > u64::from(u32::MAX)
    }

    /// All bytes before the first sample: RIFF/RF64 header, `ds64` (RF64
    /// only), `fmt ` and the `data` chunk header.
    pub fn header(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(104);
        let rf64 = self.is_rf64();
        let riff_size = self.file_len().saturating_sub(CHUNK_HEADER_LEN);
        if rf64 {
            h.extend_from_slice(b"RF64");
            h.extend_from_slice(&RF64_SIZE_MARKER.to_le_bytes());
            h.extend_from_slice(b"WAVE");
            h.extend_from_slice(b"ds64");
            h.extend_from_slice(&DS64_LEN.to_le_bytes());
            h.extend_from_slice(&riff_size.to_le_bytes());
            h.extend_from_slice(&self.data_len().to_le_bytes());
            h.extend_from_slice(&self.frames.to_le_bytes());
            h.extend_from_slice(&0u32.to_le_bytes()); // tableLength
        } else {
            h.extend_from_slice(b"RIFF");
            h.extend_from_slice(&u32_field(riff_size).to_le_bytes());
            h.extend_from_slice(b"WAVE");
        }
        self.push_fmt(&mut h);
        for c in &self.chunks {
            c.push(&mut h);
        }
        h.extend_from_slice(b"data");
        let data_size = if rf64 {
            RF64_SIZE_MARKER
        } else {
            u32_field(self.data_len())
        };
        h.extend_from_slice(&data_size.to_le_bytes());
        h
    }

    /// Splits a read of `len` bytes at `offset` of the file into header
    /// bytes, sample data and pad (see [`ReadPlan`]). The read is clamped to
    /// the end of the file; a read starting at or past the end yields an empty
    /// plan. Never panics, for any `offset` and `len`.
    pub fn map_read(&self, offset: u64, len: u64) -> ReadPlan {
        let header_len = self.header_len();
        let data_len = self.data_len();
        let file_len = self.file_len();
        let start = offset.min(file_len);
        let end = offset.saturating_add(len).min(file_len);

        let header = start.min(header_len)..end.min(header_len);

        // The read relative to the data chunk, clamped to the sample data.
        let data_start = start.saturating_sub(header_len).min(data_len);
        let data_end = end.saturating_sub(header_len).min(data_len);
        let data_bytes = data_end - data_start;
        let (frames, skip) = if data_bytes == 0 {
            (0..0, 0)
        } else {
            // data_len > 0 here, so block_align > 0.
            let block_align = self.block_align();
            let first = data_start / block_align;
            let last = (data_end - 1) / block_align;
            (first..last + 1, data_start % block_align)
        };

        // The pad byte, if any, sits right after the sample data.
        let pad_at = header_len.saturating_add(data_len);
        let pad = u64::from(self.pad_len() == 1 && start <= pad_at && pad_at < end);

        ReadPlan {
            header,
            frames,
            skip,
            data_bytes,
            pad,
        }
    }

    /// Whether `fmt ` must be `WAVEFORMATEXTENSIBLE` (see the module doc).
    fn is_extensible(&self) -> bool {
        self.format != SampleFormat::S16 || self.channels > 2
    }

    fn fmt_len(&self) -> u32 {
        if self.is_extensible() {
            FMT_EXTENSIBLE_LEN
        } else {
            FMT_PCM_LEN
        }
    }

    /// Header length of the plain-RIFF form (without `ds64`).
    fn plain_header_len(&self) -> u64 {
        let chunks: u64 = self.chunks.iter().map(Chunk::riff_len).sum();
        RIFF_HEADER_LEN + CHUNK_HEADER_LEN + u64::from(self.fmt_len()) + chunks + CHUNK_HEADER_LEN
    }

    /// 1 if the data length is odd (RIFF word alignment), else 0.
    fn pad_len(&self) -> u64 {
        self.data_len() % 2
    }

    /// Appends the complete `fmt ` chunk.
    fn push_fmt(&self, h: &mut Vec<u8>) {
        let extensible = self.is_extensible();
        let block_align = self.block_align();
        let byte_rate = u64::from(self.sample_rate).saturating_mul(block_align);
        h.extend_from_slice(b"fmt ");
        h.extend_from_slice(&self.fmt_len().to_le_bytes());
        let tag = if extensible {
            WAVE_FORMAT_EXTENSIBLE
        } else {
            WAVE_FORMAT_PCM
        };
        h.extend_from_slice(&tag.to_le_bytes());
        h.extend_from_slice(&self.channels.to_le_bytes());
        h.extend_from_slice(&self.sample_rate.to_le_bytes());
        h.extend_from_slice(&u32_field(byte_rate).to_le_bytes());
        let block_align = u16::try_from(block_align).unwrap_or(u16::MAX);
        h.extend_from_slice(&block_align.to_le_bytes());
        // wBitsPerSample is the container size; it equals the valid bits for
        // every SampleFormat.
        h.extend_from_slice(&self.format.bits().to_le_bytes());
        if extensible {
            h.extend_from_slice(&EXTENSIBLE_CB_SIZE.to_le_bytes());
            h.extend_from_slice(&self.format.bits().to_le_bytes()); // wValidBitsPerSample
            h.extend_from_slice(&channel_mask(self.channels).to_le_bytes());
            let subformat = if self.format == SampleFormat::F32 {
                KSDATAFORMAT_SUBTYPE_IEEE_FLOAT
            } else {
                KSDATAFORMAT_SUBTYPE_PCM
            };
            h.extend_from_slice(&subformat);
        }
    }
}

/// A size for a 32-bit header field. Validated layouts only call this with
/// values that fit; saturating keeps hand-built invalid layouts panic-free.
fn u32_field(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl SampleFormat {
    /// The format that serves samples of `kind` without loss: 16-bit containers for
    /// integers of up to 16 bits, 24-bit up to 24, 32-bit above; float as float.
    pub fn natural_for(kind: SampleKind) -> Self {
        match kind {
            SampleKind::Int(..=16) => SampleFormat::S16,
            SampleKind::Int(17..=24) => SampleFormat::S24,
            SampleKind::Int(_) => SampleFormat::S32,
            SampleKind::F32 => SampleFormat::F32,
        }
    }
}

/// Appends `f(s)` for each sample, a few thousand at a time: this runs for every byte
/// the mount serves, and pushing sample by sample showed in profiles.
fn extend_mapped<T: Copy, const N: usize>(
    out: &mut Vec<u8>,
    samples: &[T],
    f: impl Fn(T) -> [u8; N],
) {
    const BLOCK: usize = 2048;
    let mut buf = [0u8; BLOCK * 4];
    for chunk in samples.chunks(BLOCK) {
        for (d, &s) in buf.chunks_exact_mut(N).zip(chunk) {
            d.copy_from_slice(&f(s));
        }
        out.extend_from_slice(&buf[..chunk.len() * N]);
    }
}

/// An integer sample of `from` bits moved to `to` bits: shifted left when widening
/// (exact and reversible), arithmetically right when narrowing (truncation, no dither).
fn rescale(s: i32, from: u16, to: u16) -> i32 {
    if to >= from {
        s << (to - from)
    } else {
        s >> (from - to)
    }
}

/// A float sample as a `bits`-bit integer: × 2^(bits−1), rounded, clamped to the
/// range (so +1.0 becomes the largest value); NaN becomes 0.
fn float_to_int(x: f32, bits: u16) -> i32 {
    let full = (1i64 << (bits - 1)) as f64;
    let v = (f64::from(x) * full).round();
    if v.is_nan() {
        0
    } else {
        v.clamp(-full, full - 1.0) as i32
    }
}

/// Encodes interleaved integer samples of `bits` bits (right-justified in the i32)
/// into the data-chunk encoding of `format`, appending to `out`:
///
/// * integer formats: the sample moved to the format's width by [`rescale`]: shifted
///   left to widen (full scale stays full scale, exactly reversible), arithmetic
///   shift right to narrow;
/// * `F32`: `sample / 2^(bits − 1)`, exact up to 24 bits.
pub fn encode_i32(samples: &[i32], bits: u16, format: SampleFormat, out: &mut Vec<u8>) {
    out.reserve(samples.len().saturating_mul(usize::from(format.bytes())));
    match format {
        SampleFormat::S16 => extend_mapped(out, samples, |s| {
            (rescale(s, bits, 16) as i16).to_le_bytes()
        }),
        SampleFormat::S24 => extend_mapped(out, samples, |s| {
            let [a, b, c, _] = rescale(s, bits, 24).to_le_bytes();
            [a, b, c]
        }),
        SampleFormat::S32 => extend_mapped(out, samples, |s| rescale(s, bits, 32).to_le_bytes()),
        SampleFormat::F32 => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            extend_mapped(out, samples, |s| (s as f32 * scale).to_le_bytes())
        }
    }
}

/// Encodes interleaved i16 samples: [`encode_i32`] with 16 bits. So `S24` is
/// `sample << 8` (`0x00, lo, hi`), `S32` is `sample << 16`, `F32` is `sample / 32768`.
pub fn encode_i16(samples: &[i16], format: SampleFormat, out: &mut Vec<u8>) {
    out.reserve(samples.len().saturating_mul(usize::from(format.bytes())));
    match format {
        SampleFormat::S16 => extend_mapped(out, samples, i16::to_le_bytes),
        SampleFormat::S24 => extend_mapped(out, samples, |s| {
            let [lo, hi] = s.to_le_bytes();
            [0, lo, hi]
        }),
        SampleFormat::S32 => extend_mapped(out, samples, |s| (i32::from(s) << 16).to_le_bytes()),
        SampleFormat::F32 => {
            extend_mapped(out, samples, |s| (f32::from(s) / 32768.0).to_le_bytes())
        }
    }
}

/// Encodes interleaved float samples: `F32` bit for bit (NaN payloads included);
/// integer formats through [`float_to_int`].
pub fn encode_f32(samples: &[f32], format: SampleFormat, out: &mut Vec<u8>) {
    out.reserve(samples.len().saturating_mul(usize::from(format.bytes())));
    match format {
        SampleFormat::S16 => {
            extend_mapped(out, samples, |x| (float_to_int(x, 16) as i16).to_le_bytes())
        }
        SampleFormat::S24 => extend_mapped(out, samples, |x| {
            let [a, b, c, _] = float_to_int(x, 24).to_le_bytes();
            [a, b, c]
        }),
        SampleFormat::S32 => extend_mapped(out, samples, |x| float_to_int(x, 32).to_le_bytes()),
        SampleFormat::F32 => extend_mapped(out, samples, f32::to_le_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunks::served::Bext;
    use proptest::prelude::*;
    use std::io::Cursor;

    const ALL_FORMATS: [SampleFormat; 4] = [
        SampleFormat::S16,
        SampleFormat::S24,
        SampleFormat::S32,
        SampleFormat::F32,
    ];

    /// Deterministic, varied interleaved sample values (covering both signs
    /// and the extremes) for sample index `i`.
    fn sample(i: u64) -> i16 {
        match i % 7 {
            0 => i16::MIN,
            1 => i16::MAX,
            _ => (i.wrapping_mul(40_503) >> 3) as u16 as i16,
        }
    }

    fn samples(layout: &WavLayout) -> Vec<i16> {
        let n = layout.frames * u64::from(layout.channels);
        (0..n).map(sample).collect()
    }

    /// The whole file, the slow obvious way.
    fn materialize(layout: &WavLayout) -> Vec<u8> {
        let mut file = layout.header();
        encode_i16(&samples(layout), layout.format, &mut file);
        if layout.data_len() % 2 == 1 {
            file.push(0);
        }
        file
    }

    /// Bytes of a read, assembled from a plan the way a server would.
    fn assemble(layout: &WavLayout, plan: &ReadPlan) -> Vec<u8> {
        let header = layout.header();
        let mut out = header[plan.header.start as usize..plan.header.end as usize].to_vec();
        let channels = u64::from(layout.channels);
        let frame_samples: Vec<i16> = (plan.frames.start * channels..plan.frames.end * channels)
            .map(sample)
            .collect();
        let mut encoded = Vec::new();
        encode_i16(&frame_samples, layout.format, &mut encoded);
        let skip = plan.skip as usize;
        out.extend_from_slice(&encoded[skip..skip + plan.data_bytes as usize]);
        out.extend(std::iter::repeat_n(0u8, plan.pad as usize));
        out
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn format_names_round_trip() {
        for f in ALL_FORMATS {
            assert_eq!(SampleFormat::parse(f.name()), Some(f));
            assert_eq!(f.bits(), f.bytes() * 8);
        }
        assert_eq!(SampleFormat::parse("S16"), None);
        assert_eq!(SampleFormat::parse(""), None);
    }

    #[test]
    fn new_validates() {
        use SampleFormat::*;
        assert_eq!(
            WavLayout::new(0, 48_000, 1, S16),
            Err(WavError::InvalidChannels(0))
        );
        assert_eq!(
            WavLayout::new(256, 48_000, 1, S16),
            Err(WavError::InvalidChannels(256))
        );
        assert!(WavLayout::new(255, 48_000, 1, F32).is_ok());
        assert_eq!(WavLayout::new(1, 0, 1, S16), Err(WavError::ZeroSampleRate));
        assert!(matches!(
            WavLayout::new(255, u32::MAX, 1, F32),
            Err(WavError::ByteRateOverflow { .. })
        ));
        assert!(matches!(
            WavLayout::new(2, 48_000, u64::MAX / 4 + 1, S16),
            Err(WavError::TooLarge { .. })
        ));
        // The largest accepted frame count leaves room for the RF64 header.
        let max = (u64::MAX - 80) / 2;
        let l = WavLayout::new(1, 48_000, max, S16).unwrap();
        assert_eq!(l.file_len(), u64::MAX - 1);
        assert!(WavLayout::new(1, 48_000, max + 1, S16).is_err());
    }

    #[test]
    fn encode_i16_formats() {
        let s = [0i16, 1, -1, i16::MAX, i16::MIN];
        let mut out = Vec::new();
        encode_i16(&s, SampleFormat::S24, &mut out);
        assert_eq!(
            out,
            [
                0, 0, 0, 0, 1, 0, 0, 0xFF, 0xFF, 0, 0xFF, 0x7F, 0, 0x00, 0x80
            ]
        );
        for f in ALL_FORMATS {
            let mut out = Vec::new();
            encode_i16(&s, f, &mut out);
            assert_eq!(out.len(), s.len() * usize::from(f.bytes()));
        }
        let mut out = Vec::new();
        encode_i16(&[i16::MIN], SampleFormat::F32, &mut out);
        assert_eq!(out, (-1.0f32).to_le_bytes());
    }

    #[test]
    fn encode_i32_and_f32_conversions() {
        let mut out = Vec::new();
        // 24-bit values: as S24 bit for bit, as S16 truncated, as S32 shifted left.
        let s = [0x7F_FFFF, -0x80_0000, 0x12_3456, -1];
        encode_i32(&s, 24, SampleFormat::S24, &mut out);
        assert_eq!(
            out,
            [
                0xFF, 0xFF, 0x7F, 0, 0, 0x80, 0x56, 0x34, 0x12, 0xFF, 0xFF, 0xFF
            ]
        );
        out.clear();
        encode_i32(&s, 24, SampleFormat::S16, &mut out);
        let back: Vec<i16> = out
            .chunks(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(back, [0x7FFF, -0x8000, 0x1234, -1]);
        out.clear();
        encode_i32(&s, 24, SampleFormat::S32, &mut out);
        assert_eq!(&out[..4], &0x7FFF_FF00i32.to_le_bytes());
        out.clear();
        encode_i32(&[-0x80_0000, 0x40_0000], 24, SampleFormat::F32, &mut out);
        assert_eq!(out[..4], (-1.0f32).to_le_bytes());
        assert_eq!(out[4..], 0.5f32.to_le_bytes());
        // 16-bit values through encode_i32 equal encode_i16.
        let v: Vec<i16> = (-300..300).map(|i| (i * 109) as i16).collect();
        let wide: Vec<i32> = v.iter().map(|&x| i32::from(x)).collect();
        for f in ALL_FORMATS {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            encode_i16(&v, f, &mut a);
            encode_i32(&wide, 16, f, &mut b);
            assert_eq!(a, b, "{f:?}");
        }
        // Float: F32 is bit for bit; integers round and clamp.
        let x = [1.0f32, -1.0, 0.5, f32::NAN, 2.0, 1.0 / 65536.0];
        out.clear();
        encode_f32(&x, SampleFormat::F32, &mut out);
        let back: Vec<u32> = out
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(back, x.map(f32::to_bits));
        out.clear();
        encode_f32(&x, SampleFormat::S16, &mut out);
        let back: Vec<i16> = out
            .chunks(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(back, [32767, -32768, 16384, 0, 32767, 1]);
        assert_eq!(
            SampleFormat::natural_for(SampleKind::Int(24)),
            SampleFormat::S24
        );
        assert_eq!(
            SampleFormat::natural_for(SampleKind::Int(8)),
            SampleFormat::S16
        );
        assert_eq!(
            SampleFormat::natural_for(SampleKind::F32),
            SampleFormat::F32
        );
    }

    /// Our headers parse with hound, and hound decodes the samples we encode.
    #[test]
    fn hound_reads_header_and_samples() {
        for channels in [1u16, 2, 3, 6, 8, 9] {
            for format in ALL_FORMATS {
                for frames in [0u64, 1, 5, 64] {
                    let layout = WavLayout::new(channels, 44_100, frames, format).unwrap();
                    let file = materialize(&layout);
                    assert_eq!(file.len() as u64, layout.file_len());
                    assert_eq!(layout.header().len() as u64, layout.header_len());
                    assert!(!layout.is_rf64());

                    let reader = hound::WavReader::new(Cursor::new(&file)).unwrap();
                    let spec = reader.spec();
                    assert_eq!(spec.channels, channels);
                    assert_eq!(spec.sample_rate, 44_100);
                    assert_eq!(spec.bits_per_sample, format.bits());
                    assert_eq!(reader.len() as u64, frames * u64::from(channels));
                    let expected = samples(&layout);
                    if format == SampleFormat::F32 {
                        assert_eq!(spec.sample_format, hound::SampleFormat::Float);
                        let got: Vec<f32> = reader.into_samples().map(Result::unwrap).collect();
                        let want: Vec<f32> =
                            expected.iter().map(|&s| f32::from(s) / 32768.0).collect();
                        assert_eq!(got, want);
                    } else {
                        assert_eq!(spec.sample_format, hound::SampleFormat::Int);
                        let shift = format.bits() - 16;
                        let got: Vec<i32> = reader.into_samples().map(Result::unwrap).collect();
                        let want: Vec<i32> =
                            expected.iter().map(|&s| i32::from(s) << shift).collect();
                        assert_eq!(got, want);
                    }
                }
            }
        }
    }

    /// Byte-for-byte equal to what hound writes, except the channel mask
    /// (hound numbers speakers consecutively) and hound's missing pad byte.
    #[test]
    fn header_matches_hound_writer() {
        for channels in [1u16, 2, 6] {
            for format in ALL_FORMATS {
                let layout = WavLayout::new(channels, 48_000, 4, format).unwrap();
                let spec = hound::WavSpec {
                    channels,
                    sample_rate: 48_000,
                    bits_per_sample: format.bits(),
                    sample_format: if format == SampleFormat::F32 {
                        hound::SampleFormat::Float
                    } else {
                        hound::SampleFormat::Int
                    },
                };
                let mut buf = Cursor::new(Vec::new());
                let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
                for s in samples(&layout) {
                    match format {
                        SampleFormat::F32 => w.write_sample(f32::from(s) / 32768.0).unwrap(),
                        f => w.write_sample(i32::from(s) << (f.bits() - 16)).unwrap(),
                    }
                }
                w.finalize().unwrap();
                let mut theirs = buf.into_inner();
                let mut ours = materialize(&layout);
                assert_eq!(ours.len(), theirs.len(), "{channels}ch {format:?}");
                if layout.header_len() == 68 {
                    ours[40..44].fill(0);
                    theirs[40..44].fill(0);
                }
                assert_eq!(ours, theirs, "{channels}ch {format:?}");
            }
        }
    }

    #[test]
    fn fmt_fields() {
        let pcm = WavLayout::new(2, 48_000, 0, SampleFormat::S16).unwrap();
        let h = pcm.header();
        assert_eq!(h.len(), 44);
        assert_eq!(&h[0..4], b"RIFF");
        assert_eq!(u32_at(&h, 4), 36);
        assert_eq!(&h[12..16], b"fmt ");
        assert_eq!(u32_at(&h, 16), 16);
        assert_eq!(&h[20..22], &[1, 0]);
        assert_eq!(u32_at(&h, 28), 192_000);
        assert_eq!(&h[36..40], b"data");

        let ext = WavLayout::new(6, 48_000, 0, SampleFormat::F32).unwrap();
        let h = ext.header();
        assert_eq!(h.len(), 68);
        assert_eq!(u32_at(&h, 16), 40);
        assert_eq!(&h[20..22], &[0xFE, 0xFF]);
        assert_eq!(u32_at(&h, 28), 48_000 * 24);
        assert_eq!(&h[32..34], &[24, 0]); // block align
        assert_eq!(&h[36..38], &[22, 0]); // cbSize
        assert_eq!(&h[38..40], &[32, 0]); // valid bits
        assert_eq!(u32_at(&h, 40), 0x3F);
        assert_eq!(h[44..60], KSDATAFORMAT_SUBTYPE_IEEE_FLOAT);
        assert_eq!(&h[60..64], b"data");

        // Mono and stereo S24 also take the extensible form, with the PCM GUID.
        let s24 = WavLayout::new(1, 8_000, 0, SampleFormat::S24).unwrap();
        let h = s24.header();
        assert_eq!(u32_at(&h, 40), 0x4);
        assert_eq!(h[44..60], KSDATAFORMAT_SUBTYPE_PCM);
        // Pin the contract's speaker masks (ffmpeg defaults), 1..=9 channels.
        let masks: Vec<u32> = (1..=9).map(channel_mask).collect();
        assert_eq!(masks, [0x4, 0x3, 0xB, 0x107, 0x37, 0x3F, 0x70F, 0x63F, 0]);
    }

    #[test]
    fn odd_data_length_is_padded() {
        let layout = WavLayout::new(1, 22_050, 3, SampleFormat::S24).unwrap();
        assert_eq!(layout.data_len(), 9);
        assert_eq!(layout.file_len(), 68 + 9 + 1);
        let file = materialize(&layout);
        assert_eq!(file.len(), 78);
        assert_eq!(file[77], 0);
        // RIFF size counts the pad byte, the data chunk size does not.
        assert_eq!(u32_at(&file, 4), 70);
        assert_eq!(u32_at(&file, 64), 9);
        let plan = layout.map_read(70, 100);
        assert_eq!((plan.data_bytes, plan.pad), (7, 1));
        let plan = layout.map_read(77, 1);
        assert_eq!((plan.header, plan.data_bytes, plan.pad), (68..68, 0, 1));
        let reader = hound::WavReader::new(Cursor::new(&file)).unwrap();
        assert_eq!(reader.len(), 3);

        // Even lengths get no pad.
        let even = WavLayout::new(1, 22_050, 4, SampleFormat::S24).unwrap();
        assert_eq!(even.file_len(), 68 + 12);
    }

    /// Checks an RF64 header against the layout without touching any data.
    fn check_rf64_header(layout: &WavLayout) {
        let h = layout.header();
        assert_eq!(h.len() as u64, layout.header_len());
        assert_eq!(&h[0..4], b"RF64");
        assert_eq!(u32_at(&h, 4), u32::MAX);
        assert_eq!(&h[8..12], b"WAVE");
        assert_eq!(&h[12..16], b"ds64");
        assert_eq!(u32_at(&h, 16), 28);
        assert_eq!(u64_at(&h, 20), layout.file_len() - 8);
        assert_eq!(u64_at(&h, 28), layout.data_len());
        assert_eq!(u64_at(&h, 36), layout.frames);
        assert_eq!(u32_at(&h, 44), 0);
        assert_eq!(&h[48..52], b"fmt ");
        // The fmt chunk is the same as in the plain form.
        let plain = WavLayout {
            frames: 0,
            ..layout.clone()
        }
        .header();
        let fmt_end = 48 + 8 + u32_at(&h, 52) as usize;
        assert_eq!(h[48..fmt_end], plain[12..fmt_end - 36]);
        assert_eq!(&h[fmt_end..fmt_end + 4], b"data");
        assert_eq!(u32_at(&h, fmt_end + 4), u32::MAX);
        assert_eq!(fmt_end + 8, h.len());
    }

    /// Largest frame count that still fits plain RIFF, by the definition in
    /// the module doc (searched, so the test does not share the formula).
    fn max_plain_frames(channels: u16, format: SampleFormat) -> u64 {
        let riff_size = |frames: u64| {
            let l = WavLayout::new(channels, 48_000, frames, format).unwrap();
            let fmt = if format != SampleFormat::S16 || channels > 2 {
                40
            } else {
                16
            };
            4 + 8 + fmt + 8 + l.data_len() + l.data_len() % 2
        };
        let (mut lo, mut hi) = (0u64, 1 << 40);
        while lo + 1 < hi {
            let mid = lo + (hi - lo) / 2;
            if riff_size(mid) <= u64::from(u32::MAX) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }

    #[test]
    fn rf64_boundary() {
        // S16 mono: RIFF size 36 + 2 * frames reaches 0xFFFF_FFFE exactly.
        let exact = (0xFFFF_FFFE - 36) / 2;
        assert_eq!(max_plain_frames(1, SampleFormat::S16), exact);
        let l = WavLayout::new(1, 48_000, exact, SampleFormat::S16).unwrap();
        assert_eq!(u32_at(&l.header(), 4), 0xFFFF_FFFE);

        for (channels, format) in [
            (1, SampleFormat::S16),
            (2, SampleFormat::S16),
            (1, SampleFormat::S24),
            (3, SampleFormat::S24),
            (6, SampleFormat::F32),
            (255, SampleFormat::S32),
        ] {
            let at = max_plain_frames(channels, format);
            let layout = |frames| WavLayout::new(channels, 48_000, frames, format).unwrap();

            for frames in [at - 1, at] {
                let l = layout(frames);
                assert!(!l.is_rf64());
                let h = l.header();
                assert_eq!(&h[0..4], b"RIFF");
                assert_eq!(u64::from(u32_at(&h, 4)), l.file_len() - 8);
                assert_eq!(u64::from(u32_at(&h, h.len() - 4)), l.data_len());
                assert_eq!(
                    l.file_len(),
                    l.header_len() + l.data_len() + l.data_len() % 2
                );
            }
            // The RIFF size is even, so it never reaches the RF64 marker.
            assert!(layout(at).file_len() - 8 <= 0xFFFF_FFFE);

            let above = layout(at + 1);
            assert!(above.is_rf64());
            assert_eq!(
                above.file_len(),
                above.header_len() + above.data_len() + above.data_len() % 2
            );
            assert_eq!(above.header_len(), layout(at).header_len() + 36);
            check_rf64_header(&above);
        }
    }

    #[test]
    fn rf64_large_file() {
        // 6 channels of f32 for 6 hours at 48 kHz: about 24.9 GB.
        let frames = 6 * 3600 * 48_000;
        let l = WavLayout::new(6, 48_000, frames, SampleFormat::F32).unwrap();
        assert!(l.is_rf64());
        assert_eq!(l.header_len(), 104);
        assert_eq!(l.data_len(), frames * 24);
        assert_eq!(l.file_len(), 104 + frames * 24);
        check_rf64_header(&l);

        // Odd data in RF64: pad counted in riffSize, not in dataSize.
        let odd = WavLayout::new(1, 48_000, (1 << 32) + 1, SampleFormat::S24).unwrap();
        assert!(odd.is_rf64());
        assert_eq!(odd.file_len(), 104 + odd.data_len() + 1);
        check_rf64_header(&odd);

        // Reads near the end of a huge file.
        let end = l.file_len();
        let plan = l.map_read(end - 30, 100);
        assert_eq!(plan.header, 104..104);
        assert_eq!(plan.frames, frames - 2..frames);
        assert_eq!((plan.skip, plan.data_bytes, plan.pad), (18, 30, 0));
    }

    #[test]
    fn map_read_past_eof_and_extremes() {
        let l = WavLayout::new(2, 48_000, 10, SampleFormat::S24).unwrap();
        let empty = |p: &ReadPlan| {
            p.header.is_empty() && p.frames.is_empty() && p.data_bytes == 0 && p.pad == 0
        };
        assert!(empty(&l.map_read(l.file_len(), 10)));
        assert!(empty(&l.map_read(u64::MAX, u64::MAX)));
        assert!(empty(&l.map_read(0, 0)));
        assert!(empty(&l.map_read(50, 0)));
        let all = l.map_read(0, u64::MAX);
        assert_eq!(all.header, 0..68);
        assert_eq!((all.frames, all.skip, all.data_bytes), (0..10, 0, 60));
        assert_eq!(assemble(&l, &l.map_read(0, u64::MAX)), materialize(&l));

        // Hand-built invalid layouts must not panic either.
        for bad in [
            WavLayout {
                channels: 0,
                sample_rate: 0,
                frames: u64::MAX,
                format: SampleFormat::F32,
                chunks: Vec::new(),
            },
            WavLayout {
                channels: u16::MAX,
                sample_rate: u32::MAX,
                frames: u64::MAX,
                format: SampleFormat::S24,
                chunks: vec![sample_bext().chunk()],
            },
        ] {
            let _ = bad.header();
            let _ = bad.map_read(u64::MAX - 3, 10);
            let _ = bad.map_read(1000, u64::MAX);
        }
    }

    /// Every (offset, len) of a few small files, odd and even data lengths:
    /// catches off-by-one errors at each boundary that random reads may miss.
    #[test]
    fn map_read_exhaustive_small() {
        for (channels, frames, format) in [
            (1, 3, SampleFormat::S24),
            (3, 1, SampleFormat::S24),
            (2, 2, SampleFormat::S16),
            (3, 2, SampleFormat::F32),
            (1, 0, SampleFormat::S16),
        ] {
            let layout = WavLayout::new(channels, 8_000, frames, format).unwrap();
            let file = materialize(&layout);
            let n = file.len() as u64 + 2;
            for offset in 0..n {
                for len in 0..n {
                    let start = offset.min(file.len() as u64) as usize;
                    let end = (offset + len).min(file.len() as u64) as usize;
                    let plan = layout.map_read(offset, len);
                    assert_eq!(
                        assemble(&layout, &plan),
                        &file[start..end],
                        "{layout:?} offset {offset} len {len}"
                    );
                }
            }
        }
    }

    fn any_format() -> impl Strategy<Value = SampleFormat> {
        prop::sample::select(ALL_FORMATS.to_vec())
    }

    fn sample_bext() -> Bext {
        Bext {
            description: "source: café.wav".into(),
            date: "2025-06-01".into(),
            time: "04:00:00".into(),
            time_reference: 691_200_000 + (5 << 32),
        }
    }

    /// The `bext` chunk sits between `fmt ` and `data`, 602 bytes of fields at their
    /// EBU offsets, and readers that skip it (hound) still find the samples.
    #[test]
    fn bext_chunk_layout() {
        for rf64 in [false, true] {
            let frames = if rf64 { (1 << 32) / 2 } else { 5 };
            let l = WavLayout::new(1, 48_000, frames, SampleFormat::S16)
                .unwrap()
                .with_chunks(vec![sample_bext().chunk()]);
            let h = l.header();
            assert_eq!(h.len() as u64, l.header_len());
            assert_eq!(l.header_len(), if rf64 { 80 + 610 } else { 44 + 610 });
            let at = h.windows(4).position(|w| w == b"bext").unwrap();
            assert_eq!(&h[at - 24..at - 16], b"fmt \x10\0\0\0");
            assert_eq!(u32_at(&h, at + 4), 602);
            let body = &h[at + 8..at + 8 + 602];
            assert_eq!(&body[..16], b"source: caf?.wav");
            assert_eq!(&body[256..266], b"zarr-wavfs");
            assert_eq!(&body[320..330], b"2025-06-01");
            assert_eq!(&body[330..338], b"04:00:00");
            assert_eq!(u64_at(body, 338), 691_200_000 + (5 << 32));
            assert_eq!(u16::from_le_bytes([body[346], body[347]]), 1);
            assert_eq!(&h[at + 610..at + 614], b"data");
        }
        let l = WavLayout::new(2, 44_100, 64, SampleFormat::S24)
            .unwrap()
            .with_chunks(vec![sample_bext().chunk()]);
        let file = materialize(&l);
        let r = hound::WavReader::new(Cursor::new(&file)).unwrap();
        assert_eq!(r.duration(), 64);
    }

    proptest! {
        /// Any read assembled from its plan equals the same slice of the
        /// fully materialized file.
        #[test]
        fn map_read_matches_materialized_file(
            channels in 1u16..=10,
            sample_rate in 1u32..=192_000,
            frames in 0u64..=40,
            format in any_format(),
            bext in any::<bool>(),
            offset in 0u64..1200,
            len in prop_oneof![0u64..1200, Just(u64::MAX)],
        ) {
            let mut layout = WavLayout::new(channels, sample_rate, frames, format).unwrap();
            if bext {
                layout = layout.with_chunks(vec![sample_bext().chunk()]);
            }
            let file = materialize(&layout);
            prop_assert_eq!(file.len() as u64, layout.file_len());
            let plan = layout.map_read(offset, len);
            let start = (offset as usize).min(file.len());
            let end = (offset.saturating_add(len)).min(file.len() as u64) as usize;
            prop_assert!(plan.skip < layout.block_align());
            prop_assert_eq!(assemble(&layout, &plan), &file[start..end]);
        }

        /// For any layout (including RF64 sizes) and any read, the plan stays
        /// within the file and accounts for exactly the clamped read.
        #[test]
        fn map_read_is_consistent(
            channels in 1u16..=255,
            frames in prop_oneof![0u64..1000, 0u64..(1 << 40), Just(u64::MAX / 2048)],
            format in any_format(),
            bext in any::<bool>(),
            offset in any::<u64>(),
            len in any::<u64>(),
        ) {
            let mut layout = WavLayout::new(channels, 8_000, frames, format).unwrap();
            if bext {
                layout = layout.with_chunks(vec![sample_bext().chunk()]);
            }
            let plan = layout.map_read(offset, len);
            let file_len = layout.file_len();
            let want = offset.saturating_add(len).min(file_len) - offset.min(file_len);
            let header = plan.header.end - plan.header.start;
            prop_assert_eq!(header + plan.data_bytes + plan.pad, want);
            prop_assert!(plan.header.end <= layout.header_len());
            prop_assert!(plan.frames.end <= layout.frames);
            let block_align = layout.block_align();
            if plan.data_bytes > 0 {
                let frame_bytes = (plan.frames.end - plan.frames.start) * block_align;
                prop_assert!(plan.skip < block_align);
                prop_assert!(plan.skip + plan.data_bytes <= frame_bytes);
                prop_assert!(frame_bytes - plan.skip - plan.data_bytes < block_align);
            } else {
                prop_assert!(plan.frames.is_empty());
            }
        }
    }
}
