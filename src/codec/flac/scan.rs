//! Indexing a FLAC file: metadata, then every frame's position, without decoding audio.

use super::checksum::crc16;
use super::header::{FrameHeader, STREAMINFO_LEN, parse_frame_header, parse_streaminfo};
use super::{FlacError, FlacLayout, FrameEntry, FrameProblem, StreamInfo, VorbisComment};

const STREAMINFO: u8 = 0;
const VORBIS_COMMENT: u8 = 4;

/// Parses the `fLaC` marker and metadata (STREAMINFO first; VORBIS_COMMENT parsed;
/// others skipped), then walks every frame to the end of `bytes` and returns where each
/// one is.
///
/// Frame ends are not stored in FLAC, so a frame ends at the next header that parses
/// (CRC-8), continues the numbering, and makes the CRC-16 of the frame before it
/// come out right; anything else that looks like a sync code is frame data. Every
/// frame must agree with STREAMINFO, the frames must be contiguous from sample 0, only
/// the last frame of a fixed-blocksize stream may be shorter than the maximum block
/// size, and when STREAMINFO knows the total sample count the frames must hold exactly
/// that many. Nothing may follow the last frame (no ID3 tags).
pub fn scan(bytes: &[u8]) -> Result<FlacLayout, FlacError> {
    let (info, vorbis_comment, audio_offset) = parse_metadata(bytes)?;
    let frames = scan_frames(bytes, audio_offset, &info)?;
    let found = frames
        .last()
        .map_or(0, |f| f.first_sample + u64::from(f.samples));
    if info.total_samples != 0 && found != info.total_samples {
        return Err(FlacError::TotalSamples {
            expected: info.total_samples,
            found,
        });
    }
    Ok(FlacLayout {
        info,
        vorbis_comment,
        audio_offset: audio_offset as u64,
        frames,
    })
}

type Metadata = (StreamInfo, Option<VorbisComment>, usize);

/// The STREAMINFO of a stream whose metadata blocks are all in `head` (the bytes before
/// the first frame), checked as [`scan`] checks it.
pub fn stream_info(head: &[u8]) -> Result<StreamInfo, FlacError> {
    parse_metadata(head).map(|(info, _, _)| info)
}

fn parse_metadata(bytes: &[u8]) -> Result<Metadata, FlacError> {
    if !bytes.starts_with(b"fLaC") {
        return Err(FlacError::NotFlac);
    }
    let mut block = Block::read(bytes, 4)?;
    if block.kind != STREAMINFO {
        return Err(block.error("the first block is not STREAMINFO".into()));
    }
    let body: &[u8; STREAMINFO_LEN] = (block.body.try_into())
        .map_err(|_| block.error(format!("STREAMINFO is {} bytes, not 34", block.body.len())))?;
    let info = check_streaminfo(parse_streaminfo(body).info).map_err(|e| block.error(e))?;
    let mut vorbis_comment = None;
    while !block.last {
        block = Block::read(bytes, block.end)?;
        match block.kind {
            STREAMINFO => return Err(block.error("a second STREAMINFO".into())),
            VORBIS_COMMENT if vorbis_comment.is_some() => {
                return Err(block.error("a second VORBIS_COMMENT".into()));
            }
            VORBIS_COMMENT => {
                vorbis_comment =
                    Some(parse_vorbis_comment(block.body).map_err(|e| block.error(e))?);
            }
            127 => return Err(block.error("invalid block type 127".into())),
            _ => {}
        }
    }
    if !(4..=24).contains(&info.bits_per_sample) {
        return Err(FlacError::Unsupported(format!(
            "{} bits per sample (4..=24 supported)",
            info.bits_per_sample
        )));
    }
    Ok((info, vorbis_comment, block.end))
}

/// A metadata block.
struct Block<'a> {
    offset: usize,
    last: bool,
    kind: u8,
    body: &'a [u8],
    /// Offset of what follows.
    end: usize,
}

impl<'a> Block<'a> {
    fn read(bytes: &'a [u8], offset: usize) -> Result<Self, FlacError> {
        let err = |problem: String| FlacError::Metadata {
            offset: offset as u64,
            problem,
        };
        let Some(&[flags, a, b, c]) = bytes.get(offset..offset + 4) else {
            return Err(err("truncated block header".into()));
        };
        let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
        let end = offset + 4 + len;
        let body = (bytes.get(offset + 4..end))
            .ok_or_else(|| err(format!("block of {len} bytes runs past the end")))?;
        Ok(Block {
            offset,
            last: flags & 0x80 != 0,
            kind: flags & 0x7F,
            body,
            end,
        })
    }

    fn error(&self, problem: String) -> FlacError {
        FlacError::Metadata {
            offset: self.offset as u64,
            problem,
        }
    }
}

/// Rejects invalid STREAMINFO values.
fn check_streaminfo(info: StreamInfo) -> Result<StreamInfo, String> {
    if info.sample_rate == 0 {
        return Err("sample rate 0".into());
    }
    if info.max_block_size < 16 || info.min_block_size > info.max_block_size {
        return Err(format!(
            "block sizes {}..={} (the maximum must be at least 16 and not below the minimum)",
            info.min_block_size, info.max_block_size
        ));
    }
    if info.bits_per_sample < 4 {
        return Err(format!("{} bits per sample", info.bits_per_sample));
    }
    Ok(info)
}

fn parse_vorbis_comment(body: &[u8]) -> Result<VorbisComment, String> {
    let mut r = LeReader(body);
    let vendor = r.string("vendor string")?;
    let count = r.u32("comment count")?;
    // Every comment takes at least 4 bytes: a damaged count fails here, not in a loop.
    if count > r.0.len() / 4 {
        return Err(format!("VORBIS_COMMENT: {count} comments cannot fit"));
    }
    let comments = (0..count)
        .map(|_| r.string("comment"))
        .collect::<Result<_, _>>()?;
    Ok(VorbisComment { vendor, comments })
}

/// Cursor over VORBIS_COMMENT's little-endian fields.
struct LeReader<'a>(&'a [u8]);

impl LeReader<'_> {
    fn u32(&mut self, what: &str) -> Result<usize, String> {
        let (b, rest) = self
            .0
            .split_first_chunk::<4>()
            .ok_or_else(|| format!("VORBIS_COMMENT: {what} truncated"))?;
        self.0 = rest;
        Ok(u32::from_le_bytes(*b) as usize)
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        let len = self.u32(what)?;
        if len > self.0.len() {
            return Err(format!("VORBIS_COMMENT: {what} runs past the block"));
        }
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8(s.to_vec()).map_err(|_| format!("VORBIS_COMMENT: {what} is not UTF-8"))
    }
}

/// Walks the frames from `start` to the end of `bytes`.
fn scan_frames(
    bytes: &[u8],
    start: usize,
    info: &StreamInfo,
) -> Result<Vec<FrameEntry>, FlacError> {
    let mut frames: Vec<FrameEntry> = Vec::new();
    let mut pos = start;
    let mut next_sample = 0u64;
    let frame_err = |index: usize, offset: usize, problem| FlacError::Frame {
        index: index as u64,
        offset: offset as u64,
        problem,
    };
    if pos >= bytes.len() {
        return Err(FlacError::NoFrames);
    }
    let (mut header, mut header_len) =
        parse_frame_header(&bytes[pos..]).map_err(|p| frame_err(0, pos, p))?;
    let variable = header.variable;
    check_frame(&header, info, variable, 0, 0).map_err(|p| frame_err(0, pos, p))?;
    loop {
        let index = frames.len();
        let after = next_sample + u64::from(header.block_size);
        let fits = |next: &FrameHeader| check_frame(next, info, variable, index + 1, after);
        let end = find_frame_end(bytes, pos, header_len, fits).map_err(|e| match e {
            EndError::NoEnd => frame_err(index, pos, FrameProblem::NoEnd),
            EndError::Misfit { at, problem } => frame_err(index + 1, at, problem),
        })?;
        frames.push(FrameEntry {
            offset: pos as u64,
            len: (end.at - pos) as u64,
            first_sample: next_sample,
            samples: header.block_size,
        });
        next_sample = after;
        let Some((next_header, next_len)) = end.next else {
            return Ok(frames);
        };
        // A following frame makes this one not the last: it must be full-sized.
        if !variable && header.block_size != u32::from(info.max_block_size) {
            return Err(frame_err(
                index,
                pos,
                FrameProblem::ShortBlock {
                    expected: info.max_block_size.into(),
                    found: header.block_size.into(),
                },
            ));
        }
        (pos, header, header_len) = (end.at, next_header, next_len);
    }
}

/// Checks that a frame header agrees with STREAMINFO and continues the frames before it.
fn check_frame(
    header: &FrameHeader,
    info: &StreamInfo,
    variable: bool,
    index: usize,
    next_sample: u64,
) -> Result<(), FrameProblem> {
    if header.variable != variable {
        return Err(FrameProblem::BlockingChanged);
    }
    header.check(info)?;
    if variable && header.number != next_sample {
        return Err(FrameProblem::SampleNumber {
            expected: next_sample,
            found: header.number,
        });
    }
    if !variable && header.number != index as u64 {
        return Err(FrameProblem::FrameNumber {
            expected: index as u64,
            found: header.number,
        });
    }
    Ok(())
}

/// Where a frame ends, and the header of the frame that follows (none at end of file).
struct FrameEnd {
    at: usize,
    next: Option<(FrameHeader, usize)>,
}

/// Why a frame's end was not found.
enum EndError {
    /// Nothing after the frame closes it with a correct CRC-16.
    NoEnd,
    /// A frame boundary (valid header, correct CRC-16 before it) whose header does not
    /// continue the stream.
    Misfit { at: usize, problem: FrameProblem },
}

/// Finds the end of the frame at `start`: the first following header that parses, closes
/// the frame with a correct CRC-16 and `fits` (continues the stream); else the end of
/// `bytes` if the CRC-16 over everything left is correct.
///
/// The CRC-16 test alone cannot tell where a frame ends: with no final XOR, the CRC
/// "restarts" after every intact frame, so it also holds at any later frame boundary
/// and at the end of the file. That is why a boundary whose header does not fit is an
/// error (a gap or a misnumbered frame) rather than frame data.
fn find_frame_end(
    bytes: &[u8],
    start: usize,
    header_len: usize,
    fits: impl Fn(&FrameHeader) -> Result<(), FrameProblem>,
) -> Result<FrameEnd, EndError> {
    // The CRC is carried along the search so false sync codes cost no re-hashing.
    let mut crc = 0u16;
    let mut crc_to = start;
    let mut from = start + header_len;
    let mut misfit = None;
    while let Some(at) = find_sync(bytes, from) {
        from = at + 1;
        let Ok((next, next_len)) = parse_frame_header(&bytes[at..]) else {
            continue;
        };
        crc = crc16(crc, &bytes[crc_to..at]);
        crc_to = at;
        if crc != 0 {
            log::debug!("FLAC scan: header-like bytes at {at} inside the frame at {start}");
            continue;
        }
        match fits(&next) {
            Ok(()) => {
                return Ok(FrameEnd {
                    at,
                    next: Some((next, next_len)),
                });
            }
            Err(problem) => {
                misfit.get_or_insert(EndError::Misfit { at, problem });
            }
        }
    }
    if let Some(misfit) = misfit {
        return Err(misfit);
    }
    if crc16(crc, &bytes[crc_to..]) != 0 {
        return Err(EndError::NoEnd);
    }
    Ok(FrameEnd {
        at: bytes.len(),
        next: None,
    })
}

/// Position of the next frame sync code (`0xFF, 0xF8 | 0xF9`) at or after `from`.
fn find_sync(bytes: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let at = from + find_ff(bytes.get(from..)?)?;
        match bytes.get(at + 1) {
            Some(&b) if b & 0xFE == 0xF8 => return Some(at),
            Some(_) => from = at + 1,
            None => return None,
        }
    }
}

/// Index of the first 0xFF byte, eight bytes per step (a `memchr` for one value).
fn find_ff(bytes: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let (chunks, rest) = bytes.as_chunks::<8>();
    for (i, c) in chunks.iter().enumerate() {
        // 0xFF bytes are the zero bytes of the complement; the lowest flagged byte of
        // the classic zero-byte test is exact (only bytes above it can be false hits).
        let x = !u64::from_le_bytes(*c);
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(i * 8 + (found.trailing_zeros() / 8) as usize);
        }
    }
    let tail = chunks.len() * 8;
    rest.iter().position(|&b| b == 0xFF).map(|i| tail + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_ff_finds_the_first_ff_everywhere() {
        for len in 0..40 {
            for at in 0..=len {
                let mut v = vec![0xFEu8; len];
                if at < len {
                    v[at] = 0xFF;
                    // Later 0xFF bytes must not confuse it, nor the 0xFE filler (whose
                    // complement 0x01 borrows in the zero-byte test).
                    for b in v.iter_mut().skip(at + 1).step_by(3) {
                        *b = 0xFF;
                    }
                }
                let want = (at < len).then_some(at);
                assert_eq!(find_ff(&v), want, "len {len} at {at}");
            }
        }
    }

    #[test]
    fn find_sync_needs_the_second_byte() {
        let v = [0, 0xFF, 0xFF, 0xF9, 0xFF, 0xFA, 0xFF, 0xF8, 0xFF];
        assert_eq!(find_sync(&v, 0), Some(2));
        assert_eq!(find_sync(&v, 3), Some(6));
        assert_eq!(find_sync(&v, 7), None);
    }
}
