//! Decoding a run of consecutive frames.
//!
//! Headers are parsed here (claxon's `FrameReader` cannot take "bits per sample: see
//! STREAMINFO" and misnumbers a fixed-blocksize stream's short last frame); the
//! subframes are decoded by `claxon::subframe`, and the CRC-16 and sample ranges are
//! checked here, so damaged bytes give errors rather than different audio.
//!
//! A frame's length is known only once its subframes are decoded, so the CRC-16 is
//! checked after decoding: claxon's arithmetic on damaged data wraps rather than
//! panics, and the garbage is then rejected.

use std::io::Cursor;

use claxon::input::Bitstream;

use super::checksum::crc16;
use super::header::{Channels, FrameHeader, parse_frame_header};
use super::{FlacError, FrameProblem, StreamInfo};

/// Longest frame decoded (bytes). Real frames are at most a few MB; the cap keeps
/// claxon's count of a run of zero bits (u32) from overflowing on a long run of zero
/// bytes (2^32 bits = 512 MiB).
const MAX_FRAME_LEN: usize = 1 << 28;

/// Output reserved up front at most (samples): a wrong `samples` must not reserve
/// absurd memory; longer outputs grow as frames decode.
const MAX_RESERVE: usize = 1 << 24;

/// Decodes consecutive frames: `bytes` holds exactly whole frames, the first starting at
/// sample `first_sample`, together `samples` samples per channel. Returns exactly
/// `samples * channels` interleaved samples, or an error naming the failing frame.
pub fn decode_frames(
    info: &StreamInfo,
    bytes: &[u8],
    first_sample: u64,
    samples: u64,
) -> Result<Vec<i32>, FlacError> {
    if !(1..=8).contains(&info.channels) || !(4..=24).contains(&info.bits_per_sample) {
        return Err(FlacError::Unsupported(format!(
            "{} channels of {} bits",
            info.channels, info.bits_per_sample
        )));
    }
    let channels = usize::from(info.channels);
    let end_sample = first_sample.saturating_add(samples);
    let reserve = usize::try_from(samples).map_or(MAX_RESERVE, |s| s.saturating_mul(channels));
    let mut out = Vec::with_capacity(reserve.min(MAX_RESERVE));
    let mut planar = Vec::new();
    let (mut pos, mut next) = (0usize, first_sample);
    while pos < bytes.len() {
        let err = |problem| FlacError::Decode {
            first_sample: next,
            offset: pos as u64,
            problem,
        };
        let len = decode_frame(info, &bytes[pos..], next, end_sample, &mut planar).map_err(err)?;
        let block = planar.len() / channels;
        interleave(&planar, block, info.bits_per_sample, &mut out).map_err(err)?;
        pos += len;
        next += block as u64;
    }
    if next != end_sample {
        return Err(FlacError::SampleCount {
            expected: samples,
            found: next - first_sample,
        });
    }
    Ok(out)
}

/// Decodes the frame at the start of `bytes`, which must begin at sample `next` and end
/// by `end_sample`, into `planar` (channel after channel). Returns the frame's length.
fn decode_frame(
    info: &StreamInfo,
    bytes: &[u8],
    next: u64,
    end_sample: u64,
    planar: &mut Vec<i32>,
) -> Result<usize, FrameProblem> {
    let (header, header_len) = parse_frame_header(bytes)?;
    header.check(info)?;
    let start = header.first_sample(info);
    if start != next {
        return Err(FrameProblem::SampleNumber {
            expected: next,
            found: start,
        });
    }
    let end = next + u64::from(header.block_size);
    if end > end_sample {
        return Err(FrameProblem::TooManySamples {
            end,
            limit: end_sample,
        });
    }
    let body = &bytes[header_len..bytes.len().min(MAX_FRAME_LEN)];
    let body_len = decode_subframes(&header, info, body, planar)?;
    let len = header_len + body_len + 2;
    if len > bytes.len() {
        return Err(FrameProblem::Truncated);
    }
    if crc16(0, &bytes[..len]) != 0 {
        return Err(FrameProblem::Crc);
    }
    Ok(len)
}

/// Decodes the subframes into `planar` and undoes stereo decorrelation; returns the
/// number of bytes they took (the last one padded to a byte).
fn decode_subframes(
    header: &FrameHeader,
    info: &StreamInfo,
    body: &[u8],
    planar: &mut Vec<i32>,
) -> Result<usize, FrameProblem> {
    let n = header.block_size as usize;
    let bits = u32::from(info.bits_per_sample);
    planar.clear();
    planar.resize(n * usize::from(header.channels.count()), 0);
    let mut cursor = Cursor::new(body);
    {
        let mut bitstream = Bitstream::new(&mut cursor);
        for (ch, buf) in planar.chunks_exact_mut(n).enumerate() {
            let width = bits + u32::from(header.channels.is_side(ch));
            claxon::subframe::decode(&mut bitstream, width, buf)
                .map_err(|e| FrameProblem::Subframe(e.to_string()))?;
        }
    }
    let (a, b) = planar.split_at_mut(n);
    // In i64 so that damaged values cannot overflow; `interleave` rejects them.
    let pairs = a.iter_mut().zip(b.iter_mut());
    match header.channels {
        Channels::Independent(_) => {}
        Channels::LeftSide => {
            for (l, s) in pairs {
                *s = narrow(i64::from(*l) - i64::from(*s))?;
            }
        }
        Channels::RightSide => {
            for (s, r) in pairs {
                *s = narrow(i64::from(*s) + i64::from(*r))?;
            }
        }
        Channels::MidSide => {
            for (m, s) in pairs {
                let (side, mid) = (i64::from(*s), (i64::from(*m) * 2) | i64::from(*s & 1));
                *m = narrow((mid + side) >> 1)?;
                *s = narrow((mid - side) >> 1)?;
            }
        }
    }
    // The position counts the partly used last byte, which is the frame's padding.
    Ok(cursor.position() as usize)
}

fn narrow(v: i64) -> Result<i32, FrameProblem> {
    i32::try_from(v).map_err(|_| FrameProblem::SampleRange { value: v, bits: 32 })
}

/// Appends `planar` (channel-major, `block` per channel) interleaved to `out`,
/// rejecting samples outside the `bits`-bit range.
fn interleave(
    planar: &[i32],
    block: usize,
    bits: u16,
    out: &mut Vec<i32>,
) -> Result<(), FrameProblem> {
    let (min, max) = (-(1i32 << (bits - 1)), (1i32 << (bits - 1)) - 1);
    if let Some(&bad) = planar.iter().find(|&&s| s < min || s > max) {
        return Err(FrameProblem::SampleRange {
            value: bad.into(),
            bits,
        });
    }
    if block == 0 {
        return Ok(());
    }
    out.reserve(planar.len());
    match planar.len() / block {
        1 => out.extend_from_slice(planar),
        2 => {
            let (l, r) = planar.split_at(block);
            for (&a, &b) in l.iter().zip(r) {
                out.extend_from_slice(&[a, b]);
            }
        }
        channels => {
            for i in 0..block {
                out.extend((0..channels).map(|c| planar[c * block + i]));
            }
        }
    }
    Ok(())
}
