//! Frame headers and STREAMINFO, read and written byte-exactly.
//!
//! The frame header is parsed here rather than by a decoder crate because scanning must
//! judge candidate sync codes without decoding, and because frames are re-numbered and
//! re-headed when writing (see `encode` and `synth`).

use super::checksum::crc8;
use super::{FrameProblem, StreamInfo};

/// How a frame codes its channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channels {
    /// `n` channels coded as they are.
    Independent(u16),
    /// Left, then left minus right.
    LeftSide,
    /// Left minus right, then right.
    RightSide,
    /// (left + right) / 2, then left minus right.
    MidSide,
}

impl Channels {
    pub(crate) fn count(self) -> u16 {
        match self {
            Channels::Independent(n) => n,
            Channels::LeftSide | Channels::RightSide | Channels::MidSide => 2,
        }
    }

    fn code(self) -> u8 {
        match self {
            // Independent channels are 1..=8, so `n - 1` fits the 3 bits the caller checked.
            Channels::Independent(n) => (n.saturating_sub(1) & 7) as u8,
            Channels::LeftSide => 8,
            Channels::RightSide => 9,
            Channels::MidSide => 10,
        }
    }
}

/// The fields of a frame header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    /// Variable-blocksize stream: `number` is a sample number, else a frame number.
    pub variable: bool,
    pub number: u64,
    pub block_size: u32,
    /// `None`: "see STREAMINFO".
    pub sample_rate: Option<u32>,
    pub channels: Channels,
    /// `None`: "see STREAMINFO".
    pub bits: Option<u16>,
}

impl FrameHeader {
    /// Whether the header agrees with STREAMINFO (the frame's sequence is checked by callers).
    pub(crate) fn check(&self, info: &StreamInfo) -> Result<(), FrameProblem> {
        let mismatch = |what, found: u64, expected: u64| {
            Err(FrameProblem::Mismatch {
                what,
                found,
                expected,
            })
        };
        if let Some(rate) = self.sample_rate.filter(|&r| r != info.sample_rate) {
            return mismatch("sample rate", rate.into(), info.sample_rate.into());
        }
        if self.channels.count() != info.channels {
            return mismatch(
                "channel count",
                self.channels.count().into(),
                info.channels.into(),
            );
        }
        if let Some(bits) = self.bits.filter(|&b| b != info.bits_per_sample) {
            return mismatch("bits per sample", bits.into(), info.bits_per_sample.into());
        }
        if self.block_size > u32::from(info.max_block_size) {
            return mismatch(
                "block size (at most STREAMINFO's maximum)",
                self.block_size.into(),
                info.max_block_size.into(),
            );
        }
        Ok(())
    }

    /// The stream position of the frame's first sample. Fixed-blocksize frames are
    /// numbered in blocks of STREAMINFO's maximum block size (which `scan` checks).
    pub(crate) fn first_sample(&self, info: &StreamInfo) -> u64 {
        if self.variable {
            self.number
        } else {
            self.number * u64::from(info.max_block_size)
        }
    }
}

/// Parses the frame header at the start of `bytes`; returns it and its length in bytes
/// (CRC-8 included).
pub(crate) fn parse_frame_header(bytes: &[u8]) -> Result<(FrameHeader, usize), FrameProblem> {
    let byte = |i: usize| bytes.get(i).copied().ok_or(FrameProblem::Truncated);
    if byte(0)? != 0xFF || byte(1)? & 0xFE != 0xF8 {
        return Err(FrameProblem::NoSync);
    }
    let variable = byte(1)? & 1 == 1;
    let (bs_code, sr_code) = (byte(2)? >> 4, byte(2)? & 0x0F);
    let (ch_code, bits_code) = (byte(3)? >> 4, (byte(3)? >> 1) & 7);
    if byte(3)? & 1 != 0 {
        return Err(FrameProblem::Reserved("bit after the sample size"));
    }
    let channels = match ch_code {
        0..=7 => Channels::Independent(u16::from(ch_code) + 1),
        8 => Channels::LeftSide,
        9 => Channels::RightSide,
        10 => Channels::MidSide,
        _ => return Err(FrameProblem::Reserved("channel assignment")),
    };
    let bits = match bits_code {
        0 => None,
        1 => Some(8),
        2 => Some(12),
        4 => Some(16),
        5 => Some(20),
        6 => Some(24),
        7 => Some(32),
        _ => return Err(FrameProblem::Reserved("sample size")),
    };

    // The coded number: UTF-8-like, up to 31 bits for frame numbers, 36 for sample numbers.
    let lead = byte(4)?;
    let extra = match lead.leading_ones() {
        0 => 0,
        n @ 2..=6 => n as usize - 1,
        7 if variable => 6,
        _ => return Err(FrameProblem::BadNumber),
    };
    let mut number = u64::from(lead & (0x7F >> extra));
    for i in 0..extra {
        let b = byte(5 + i)?;
        if b & 0xC0 != 0x80 {
            return Err(FrameProblem::BadNumber);
        }
        number = (number << 6) | u64::from(b & 0x3F);
    }
    let mut pos = 5 + extra;

    let mut read = |n: usize| -> Result<u32, FrameProblem> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 8) | u32::from(byte(pos)?);
            pos += 1;
        }
        Ok(v)
    };
    let block_size = match bs_code {
        0 => return Err(FrameProblem::Reserved("block size")),
        1 => 192,
        2..=5 => 576 << (bs_code - 2),
        6 => read(1)? + 1,
        7 => match read(2)? {
            // 65536 cannot be described by STREAMINFO (16 bits) and is forbidden.
            0xFFFF => return Err(FrameProblem::Reserved("block size")),
            v => v + 1,
        },
        _ => 256 << (bs_code - 8),
    };
    let sample_rate = match sr_code {
        0 => None,
        1 => Some(88_200),
        2 => Some(176_400),
        3 => Some(192_000),
        4 => Some(8_000),
        5 => Some(16_000),
        6 => Some(22_050),
        7 => Some(24_000),
        8 => Some(32_000),
        9 => Some(44_100),
        10 => Some(48_000),
        11 => Some(96_000),
        12 => Some(read(1)? * 1000),
        13 => Some(read(2)?),
        14 => Some(read(2)? * 10),
        _ => return Err(FrameProblem::Reserved("sample rate")),
    };
    if byte(pos)? != crc8(&bytes[..pos]) {
        return Err(FrameProblem::HeaderCrc);
    }
    let header = FrameHeader {
        variable,
        number,
        block_size,
        sample_rate,
        channels,
        bits,
    };
    Ok((header, pos + 1))
}

/// Appends the header (CRC-8 included) to `out`. Rates and sizes without a code of
/// their own are written as "see STREAMINFO"; block sizes must be 1..=65535 and
/// `number` must fit its field (31 bits, or 36 bits for variable blocksize).
pub(crate) fn write_frame_header(out: &mut Vec<u8>, h: &FrameHeader) {
    let start = out.len();
    out.extend_from_slice(&[0xFF, 0xF8 | u8::from(h.variable)]);
    let (bs_code, bs_extra): (u8, &[u8]) = match h.block_size {
        192 => (1, &[]),
        576 => (2, &[]),
        1152 => (3, &[]),
        2304 => (4, &[]),
        4608 => (5, &[]),
        256 => (8, &[]),
        512 => (9, &[]),
        1024 => (10, &[]),
        2048 => (11, &[]),
        4096 => (12, &[]),
        8192 => (13, &[]),
        16384 => (14, &[]),
        32768 => (15, &[]),
        n if n <= 256 => (6, &[(n - 1) as u8]),
        n => (7, &((n - 1) as u16).to_be_bytes()),
    };
    // Rates without a code of their own follow the header in kHz, Hz or tens of Hz.
    let (sr_code, sr_extra, sr_len) = match h.sample_rate {
        Some(88_200) => (1, 0, 0),
        Some(176_400) => (2, 0, 0),
        Some(192_000) => (3, 0, 0),
        Some(8_000) => (4, 0, 0),
        Some(16_000) => (5, 0, 0),
        Some(22_050) => (6, 0, 0),
        Some(24_000) => (7, 0, 0),
        Some(32_000) => (8, 0, 0),
        Some(44_100) => (9, 0, 0),
        Some(48_000) => (10, 0, 0),
        Some(96_000) => (11, 0, 0),
        Some(r) if r % 1000 == 0 && r / 1000 <= 0xFF => (12, r / 1000, 1),
        Some(r) if r <= 0xFFFF => (13, r, 2),
        Some(r) if r % 10 == 0 && r / 10 <= 0xFFFF => (14, r / 10, 2),
        _ => (0, 0, 0),
    };
    let bits_code = match h.bits {
        Some(8) => 1,
        Some(12) => 2,
        Some(16) => 4,
        Some(20) => 5,
        Some(24) => 6,
        Some(32) => 7,
        _ => 0,
    };
    out.push((bs_code << 4) | sr_code);
    out.push((h.channels.code() << 4) | (bits_code << 1));
    write_coded_number(out, h.number);
    out.extend_from_slice(bs_extra);
    out.extend_from_slice(&sr_extra.to_be_bytes()[4 - sr_len..]);
    let crc = crc8(&out[start..]);
    out.push(crc);
}

/// FLAC's UTF-8-like number coding (up to 36 bits).
fn write_coded_number(out: &mut Vec<u8>, n: u64) {
    if n < 0x80 {
        out.push(n as u8);
        return;
    }
    // Each continuation byte holds 6 bits; the lead byte holds 6 - extra bits.
    let extra = (1..=6).find(|&k| n < 1u64 << (6 - k + 6 * k)).unwrap_or(6);
    let lead_mark = if extra == 6 {
        0xFE
    } else {
        !(0xFFu8 >> (extra + 1))
    };
    out.push(lead_mark | (n >> (6 * extra)) as u8);
    for i in (0..extra).rev() {
        out.push(0x80 | ((n >> (6 * i)) & 0x3F) as u8);
    }
}

/// Length of STREAMINFO's body.
pub(crate) const STREAMINFO_LEN: usize = 34;

/// STREAMINFO as stored, frame sizes included (they matter only to writers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawStreamInfo {
    pub info: StreamInfo,
    pub min_frame_size: u32,
    pub max_frame_size: u32,
}

pub(crate) fn parse_streaminfo(b: &[u8; STREAMINFO_LEN]) -> RawStreamInfo {
    let be = |range: std::ops::Range<usize>| {
        b[range]
            .iter()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
    };
    // Bytes 10..18: sample rate (20 bits), channels - 1 (3), bits - 1 (5), total (36).
    let packed = be(10..18);
    let mut md5 = [0u8; 16];
    md5.copy_from_slice(&b[18..34]);
    RawStreamInfo {
        info: StreamInfo {
            min_block_size: be(0..2) as u16,
            max_block_size: be(2..4) as u16,
            sample_rate: (packed >> 44) as u32,
            channels: ((packed >> 41) & 7) as u16 + 1,
            bits_per_sample: ((packed >> 36) & 31) as u16 + 1,
            total_samples: packed & ((1 << 36) - 1),
            md5,
        },
        min_frame_size: be(4..7) as u32,
        max_frame_size: be(7..10) as u32,
    }
}

/// STREAMINFO's body. Fields wider than their slots are truncated, so callers validate.
pub(crate) fn write_streaminfo(raw: &RawStreamInfo) -> [u8; STREAMINFO_LEN] {
    let i = &raw.info;
    let mut b = [0u8; STREAMINFO_LEN];
    b[0..2].copy_from_slice(&i.min_block_size.to_be_bytes());
    b[2..4].copy_from_slice(&i.max_block_size.to_be_bytes());
    b[4..7].copy_from_slice(&raw.min_frame_size.to_be_bytes()[1..]);
    b[7..10].copy_from_slice(&raw.max_frame_size.to_be_bytes()[1..]);
    let packed = (u64::from(i.sample_rate & 0xF_FFFF) << 44)
        | (u64::from(i.channels.wrapping_sub(1) & 7) << 41)
        | (u64::from(i.bits_per_sample.wrapping_sub(1) & 31) << 36)
        | (i.total_samples & ((1 << 36) - 1));
    b[10..18].copy_from_slice(&packed.to_be_bytes());
    b[18..34].copy_from_slice(&i.md5);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(variable: bool, number: u64, block_size: u32, rate: Option<u32>) -> FrameHeader {
        FrameHeader {
            variable,
            number,
            block_size,
            sample_rate: rate,
            channels: Channels::MidSide,
            bits: Some(24),
        }
    }

    #[test]
    fn headers_round_trip_through_every_coding() {
        let numbers = [
            0,
            1,
            0x7F,
            0x80,
            0x7FF,
            0x800,
            0xFFFF,
            0x1_0000,
            0x7FFF_FFFF,
        ];
        let sizes = [
            1, 16, 192, 255, 256, 257, 576, 4096, 4607, 4608, 32768, 65535,
        ];
        let rates = [
            None,
            Some(1),
            Some(8_000),
            Some(44_100),
            Some(255_000),
            Some(65_535),
            Some(384_000),
            Some(655_350),
            Some(655_351),
        ];
        for &n in &numbers {
            for &bs in &sizes {
                for &r in &rates {
                    for variable in [false, true] {
                        let h = header(variable, n, bs, r);
                        let mut out = vec![];
                        write_frame_header(&mut out, &h);
                        let (back, len) = parse_frame_header(&out).unwrap();
                        assert_eq!(len, out.len());
                        let mut want = h.clone();
                        if r == Some(655_351) {
                            want.sample_rate = None; // not codable: "see STREAMINFO"
                        }
                        assert_eq!(back, want);
                    }
                }
            }
        }
        // 36-bit sample numbers need the 7-byte coding, only allowed for variable blocksize.
        let h = header(true, (1 << 36) - 1, 4096, None);
        let mut out = vec![];
        write_frame_header(&mut out, &h);
        assert_eq!(parse_frame_header(&out).unwrap().0, h);
        out[1] = 0xF8;
        assert_eq!(parse_frame_header(&out), Err(FrameProblem::BadNumber));
    }

    #[test]
    fn damaged_headers_are_rejected() {
        let mut out = vec![];
        write_frame_header(&mut out, &header(false, 12345, 4096, Some(384_000)));
        for i in 0..out.len() {
            for bit in 0..8 {
                let mut d = out.clone();
                d[i] ^= 1 << bit;
                assert!(parse_frame_header(&d).is_err(), "byte {i} bit {bit}");
            }
            assert_eq!(parse_frame_header(&out[..i]), Err(FrameProblem::Truncated));
        }
    }

    #[test]
    fn streaminfo_round_trips() {
        let raw = RawStreamInfo {
            info: StreamInfo {
                sample_rate: 655_350,
                channels: 8,
                bits_per_sample: 24,
                total_samples: (1 << 36) - 1,
                md5: [7; 16],
                min_block_size: 16,
                max_block_size: 65535,
            },
            min_frame_size: 1,
            max_frame_size: 0xFF_FFFF,
        };
        assert_eq!(parse_streaminfo(&write_streaminfo(&raw)), raw);
    }
}
