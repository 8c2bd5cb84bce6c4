//! Test material for other tests: valid FLAC streams of any length, built in
//! milliseconds, so that tests can serve recordings of many GiB of PCM.
//!
//! Frames are written directly rather than encoded: a silent frame is the same bytes
//! for every block but for its header (number, last block's size) and CRC-16, and the
//! tone frames store samples VERBATIM. MD5 is left zero ("unknown"), total samples are
//! set.

use std::sync::LazyLock;

use super::StreamInfo;
use super::checksum::crc16;
use super::encode::{BLOCK_SIZE, check_parameters};
use super::header::{Channels, FrameHeader, RawStreamInfo, write_frame_header, write_streaminfo};

/// Frequency of the tail tone.
const TONE_HZ: u64 = 1000;

/// A FLAC stream of `total_samples` per channel of digital silence.
///
/// # Panics
/// If [`FlacEncoder::new`](super::FlacEncoder::new) would reject the parameters or
/// `total_samples` is 0 or above 2^36 - 1.
pub fn silent_flac(channels: u16, bits: u16, sample_rate: u32, total_samples: u64) -> Vec<u8> {
    build(channels, bits, sample_rate, total_samples, None)
}

/// Like [`silent_flac`], but the last second (the last `sample_rate` samples, or all of
/// them if fewer) is a 1 kHz tone whose values [`tail_tone_sample`] gives.
///
/// # Panics
/// As [`silent_flac`].
pub fn silent_flac_with_tail_tone(
    channels: u16,
    bits: u16,
    sample_rate: u32,
    total_samples: u64,
) -> Vec<u8> {
    let tone_start = total_samples.saturating_sub(sample_rate.into());
    build(channels, bits, sample_rate, total_samples, Some(tone_start))
}

/// Sample `frame` of `channel` in [`silent_flac_with_tail_tone`]'s stream: 0 before the
/// last second, then a half-scale 1 kHz sine (a quarter period later on each further
/// channel, so that swapped channels show).
pub fn tail_tone_sample(
    bits: u16,
    sample_rate: u32,
    total_samples: u64,
    frame: u64,
    channel: u16,
) -> i32 {
    let tone_start = total_samples.saturating_sub(sample_rate.into());
    if frame < tone_start {
        return 0;
    }
    // The phase in 1/1024 periods, in integers: a table look-up per sample keeps
    // writing and checking millions of samples quick even in unoptimised builds.
    let rate = u64::from(sample_rate);
    let cycles = (frame - tone_start) * TONE_HZ % rate;
    let phase = (cycles * 1024 / rate + u64::from(channel) * 256) % 1024;
    let amplitude = f64::from((1u32 << (bits - 1)) - 1) * 0.5;
    (amplitude * SINE[phase as usize]).round() as i32
}

/// One period of a unit sine in 1024 steps.
static SINE: LazyLock<Vec<f64>> = LazyLock::new(|| {
    (0..1024)
        .map(|i| (std::f64::consts::TAU * f64::from(i) / 1024.0).sin())
        .collect()
});

fn build(
    channels: u16,
    bits: u16,
    sample_rate: u32,
    total: u64,
    tone_start: Option<u64>,
) -> Vec<u8> {
    check_parameters(channels, bits, sample_rate).expect("valid FLAC parameters");
    assert!(
        (1..1 << 36).contains(&total),
        "total_samples {total} outside 1..2^36"
    );
    let raw = RawStreamInfo {
        info: StreamInfo {
            sample_rate,
            channels,
            bits_per_sample: bits,
            total_samples: total,
            md5: [0; 16],
            min_block_size: BLOCK_SIZE as u16,
            max_block_size: BLOCK_SIZE as u16,
        },
        // 0: unknown.
        min_frame_size: 0,
        max_frame_size: 0,
    };
    let block = u64::from(BLOCK_SIZE);
    let frames = total.div_ceil(block);
    let first_tone_frame = tone_start.map_or(frames, |s| s / block);
    // Each subframe is CONSTANT 0: a zero type byte and `bits` zero bits, padded to a byte.
    let body_len = (usize::from(channels) * (8 + usize::from(bits))).div_ceil(8);

    let mut out = b"fLaC".to_vec();
    out.extend_from_slice(&[0x80, 0, 0, 34]);
    out.extend_from_slice(&write_streaminfo(&raw));
    out.reserve(first_tone_frame as usize * (body_len + 16));
    for n in 0..frames {
        let first = n * block;
        let header = FrameHeader {
            variable: false,
            number: n,
            block_size: (total - first).min(block) as u32,
            sample_rate: Some(sample_rate),
            channels: Channels::Independent(channels),
            bits: Some(bits),
        };
        let start = out.len();
        write_frame_header(&mut out, &header);
        if n < first_tone_frame {
            out.resize(out.len() + body_len, 0);
        } else {
            let mut w = BitWriter::new(&mut out);
            for c in 0..channels {
                // Subframe header: VERBATIM, no wasted bits.
                w.put(0b0000_0010, 8);
                for f in first..first + u64::from(header.block_size) {
                    let s = tail_tone_sample(bits, sample_rate, total, f, c);
                    w.put(s as u32, bits.into());
                }
            }
            w.finish();
        }
        let crc = crc16(0, &out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    out
}

/// Appends bit fields, most significant bit first, to a byte vector.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    len: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter {
            out,
            acc: 0,
            len: 0,
        }
    }

    /// The low `width` (at most 32) bits of `value`.
    fn put(&mut self, value: u32, width: u32) {
        self.acc = (self.acc << width) | (u64::from(value) & ((1 << width) - 1));
        self.len += width;
        while self.len >= 8 {
            self.len -= 8;
            self.out.push((self.acc >> self.len) as u8);
        }
    }

    /// Pads the last byte with zero bits.
    fn finish(self) {
        if self.len > 0 {
            self.out.push((self.acc << (8 - self.len)) as u8);
        }
    }
}
