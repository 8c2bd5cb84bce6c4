//! WAV family, parsed by hand because hound reads neither RF64 nor `bext`: RIFF/WAVE,
//! RF64 and BW64 (64-bit sizes in `ds64`, EBU Tech 3306 / ITU-R BS.2088) and Sony Wave64.
//!
//! Chunks may come in any order (`fmt ` after `data` too); unknown ones are skipped and
//! odd-sized ones are padded to even size, as RIFF requires. A writer that left out the
//! pad byte is tolerated: when the padded position does not hold a chunk id but the
//! unpadded one does, the unpadded one is used. The first `fmt ` and `data` chunks count.
//! Wave64 files are read the same way; only their `bext`, not their LIST, is looked at.
//!
//! Sample formats (`fmt ` WAVE_FORMAT_PCM, IEEE_FLOAT, or EXTENSIBLE with either
//! SubFormat, Ambisonic B-format included): a sample container is `nBlockAlign /
//! nChannels` bytes. Integer containers are 1 to 4 bytes (1 byte unsigned, the others
//! signed) and hold `wBitsPerSample` bits (EXTENSIBLE: `wValidBitsPerSample`, 0 meaning
//! all) left-justified, as the format specifies. So 12 valid bits in 2 bytes, 20 in 3 or
//! 24 in 4 come out as `Int { bits: 12 | 20 | 24 }`, shifted right, whatever the pad bits
//! hold dropped. `wBitsPerSample` must round up to the container size: 24-bit samples in
//! 4-byte containers need EXTENSIBLE to say so. 32-bit float is passed through; 64-bit
//! float is converted to 32-bit float (a 24-bit mantissa is beyond any recording) with a
//! warning. Compressed WAV encodings (ADPCM, A-law, MPEG ...) are refused.
//!
//! The data size: a `data` chunk whose size is 0xFFFFFFFF (RIFF, or RF64 without `ds64`),
//! 0x7FFFF000 (what sox writes when streaming to a pipe), or 0 in a
//! file whose RIFF size ends at the `data` header although samples follow (a header never
//! finalised), is read to the end of the file in whole frames, a partial last frame
//! dropped; `frames` is set to that and a warning is logged. Any other size larger than
//! the rest of the file is a copy cut short: an error ([`InputError::Truncated`]), since
//! importing it would pass a partial recording off as whole. Otherwise a `data` size that
//! is not a whole number of frames is an error. The `ds64` sample count
//! only draws a warning when it disagrees with the data size.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::chunks::{Chunk, ChunkId, Collector};
use crate::le::{u16_at, u32_at, u64_at};

use super::start_time;

/// The data size sox writes when streaming to a pipe (it cannot seek back to fix it): a
/// placeholder, not a promise. Any other size past the end of the file is.
const SOX_PIPE_SIZE: u64 = 0x7FFF_F000;
use super::{Block, InputError, InputReader, InputSpec, SampleKind};

/// Largest block read at once, so that a huge `max_frames` cannot exhaust memory.
const MAX_BLOCK_BYTES: usize = 8 << 20;
/// Largest metadata chunk (`LIST`, `guan`) read for a start time.
const MAX_META_BYTES: u64 = 1 << 20;

const W64_RIFF: [u8; 16] = guid(
    *b"riff",
    [
        0x2E, 0x91, 0xCF, 0x11, 0xA5, 0xD6, 0x28, 0xDB, 0x04, 0xC1, 0x00, 0x00,
    ],
);
const W64_WAVE: [u8; 16] = guid(*b"wave", W64_SUFFIX);
/// Wave64 names its standard chunks by their RIFF id followed by this.
const W64_SUFFIX: [u8; 12] = [
    0xF3, 0xAC, 0xD3, 0x11, 0x8C, 0xD1, 0x00, 0xC0, 0x4F, 0x8E, 0xDB, 0x8A,
];
/// KSDATAFORMAT_SUBTYPE_PCM / _IEEE_FLOAT after their 2-byte format tag.
const SUBTYPE_SUFFIX: [u8; 14] = [0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71];
/// The Ambisonic B-format SubFormats (PCM and float) after their format tag.
const AMBISONIC_SUFFIX: [u8; 14] = [
    0, 0, 0x21, 0x07, 0xD3, 0x11, 0x86, 0x44, 0xC8, 0xC1, 0xCA, 0, 0, 0,
];

const fn guid(id: [u8; 4], suffix: [u8; 12]) -> [u8; 16] {
    let mut g = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        g[i] = if i < 4 { id[i] } else { suffix[i - 4] };
        i += 1;
    }
    g
}

/// The container variants, which differ in chunk headers and size fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    Riff,
    /// RF64 (`bw64: false`) or BW64, both with a `ds64` chunk first.
    Rf64 {
        bw64: bool,
    },
    W64,
}

impl Layout {
    /// The layout of a file starting with `head`, if it is of the WAV family.
    pub(super) fn sniff(head: &[u8]) -> Option<Self> {
        if head.get(8..12) == Some(b"WAVE") {
            match head.get(..4)? {
                b"RIFF" => return Some(Layout::Riff),
                b"RF64" => return Some(Layout::Rf64 { bw64: false }),
                b"BW64" => return Some(Layout::Rf64 { bw64: true }),
                _ => {}
            }
        }
        (head.get(..16) == Some(&W64_RIFF) && head.get(24..40) == Some(&W64_WAVE))
            .then_some(Layout::W64)
    }

    fn name(self) -> &'static str {
        match self {
            Layout::Riff => "wav",
            Layout::Rf64 { bw64: false } => "rf64",
            Layout::Rf64 { bw64: true } => "bw64",
            Layout::W64 => "w64",
        }
    }

    /// Size of the file header, which is where the first chunk starts.
    fn file_header_len(self) -> u64 {
        if self == Layout::W64 { 40 } else { 12 }
    }

    fn chunk_header_len(self) -> u64 {
        if self == Layout::W64 { 24 } else { 8 }
    }
}

/// How samples are stored in one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    U8,
    I16,
    I24,
    I32,
    F32,
    F64,
}

#[derive(Debug, Clone, Copy)]
struct Format {
    encoding: Encoding,
    /// Right shift that drops the pad bits of left-justified integer samples.
    shift: u32,
    channels: u16,
    sample_rate: u32,
    block_align: usize,
    kind: SampleKind,
}

/// Sizes from the RF64 `ds64` chunk.
#[derive(Debug, Default)]
struct Ds64 {
    riff: u64,
    data: u64,
    sample_count: u64,
    /// Sizes of other chunks whose 32-bit size is 0xFFFFFFFF.
    table: Vec<([u8; 4], u64)>,
}

/// Where the `data` chunk is and what its header says.
#[derive(Debug)]
struct DataChunk {
    offset: u64,
    /// None when the header gives no usable size (0xFFFFFFFF).
    declared: Option<u64>,
    /// Bytes from `offset` to the end of the file.
    available: u64,
    /// The data size when it can be trusted; None means "to the end of the file".
    exact: Option<u64>,
}

/// What the chunk walk found.
#[derive(Default)]
struct Chunks {
    fmt: Option<Vec<u8>>,
    data: Option<DataChunk>,
    ds64: Option<Ds64>,
    bext_time: Option<String>,
    icmt_time: Option<String>,
    guano_time: Option<String>,
    /// The metadata chunks kept for serving, and what was not kept.
    kept: Collector,
    /// A chunk claiming to extend past the end of the file: (id, offset, size).
    overrun: Option<([u8; 4], u64, u64)>,
}

pub(super) struct WavReader {
    path: PathBuf,
    r: BufReader<File>,
    spec: InputSpec,
    format: Format,
    remaining: u64,
    done: u64,
    buf: Vec<u8>,
}

impl WavReader {
    pub(super) fn open(
        path: &Path,
        mut r: BufReader<File>,
        layout: Layout,
    ) -> Result<Self, InputError> {
        let name = layout.name();
        let io = |e| InputError::io(path, e);
        let file_len = r.get_ref().metadata().map_err(io)?.len();
        let chunks = walk(&mut r, layout, file_len).map_err(io)?;
        let fmt_bytes = chunks
            .fmt
            .as_deref()
            .ok_or_else(|| InputError::malformed(path, name, "no fmt chunk"))?;
        let format = parse_fmt(path, name, fmt_bytes)?;
        let Some(data) = &chunks.data else {
            let why = match chunks.overrun {
                Some((id, at, size)) => format!(
                    "no data chunk (chunk \"{}\" at byte {at} claims {size} bytes, past the end of the file)",
                    String::from_utf8_lossy(&id)
                ),
                None => "no data chunk".into(),
            };
            return Err(InputError::malformed(path, name, why));
        };
        let block = format.block_align as u64;
        let frames = match data.exact {
            Some(bytes) => {
                if bytes % block != 0 {
                    return Err(InputError::malformed(
                        path,
                        name,
                        format!(
                            "data chunk of {bytes} bytes ends mid-frame ({block} bytes per frame)"
                        ),
                    ));
                }
                bytes / block
            }
            // A definite size past the end of the file: a copy cut short. Importing
            // what is there would pass a partial recording off as whole.
            None if data
                .declared
                .is_some_and(|d| d > data.available && d != SOX_PIPE_SIZE) =>
            {
                return Err(InputError::Truncated {
                    path: path.to_path_buf(),
                    promised: data.declared.unwrap_or(0) / block,
                    held: data.available / block,
                });
            }
            None => {
                let frames = data.available / block;
                let declared = match data.declared {
                    Some(d) => format!("{d} bytes"),
                    None => "unknown (0xFFFFFFFF)".into(),
                };
                log::warn!(
                    "{}: data size {declared} but {} bytes follow the data header: reading to the end of the file, {frames} frames{}",
                    path.display(),
                    data.available,
                    if data.available % block != 0 {
                        ", the partial last frame dropped"
                    } else {
                        ""
                    }
                );
                frames
            }
        };
        if let Some(ds64) = &chunks.ds64
            && ds64.sample_count != 0
            && ds64.sample_count != frames
        {
            log::warn!(
                "{}: ds64 sample count {} differs from the {frames} frames of the data chunk; using the data chunk",
                path.display(),
                ds64.sample_count
            );
        }
        if format.encoding == Encoding::F64 {
            log::warn!(
                "{}: 64-bit float samples are converted to 32-bit float",
                path.display()
            );
        }
        r.seek(SeekFrom::Start(data.offset)).map_err(io)?;
        let start_time = chunks.bext_time.or(chunks.icmt_time).or(chunks.guano_time);
        let Collector { kept, dropped, .. } = chunks.kept;
        Ok(WavReader {
            path: path.to_path_buf(),
            r,
            spec: InputSpec {
                sample_rate: format.sample_rate,
                channels: format.channels,
                kind: format.kind,
                frames: Some(frames),
                container: name,
                lossy: false,
                start_time,
                chunks: kept,
                dropped,
            },
            format,
            remaining: frames,
            done: 0,
            buf: Vec::new(),
        })
    }
}

impl InputReader for WavReader {
    fn spec(&self) -> &InputSpec {
        &self.spec
    }

    fn read(&mut self, max_frames: usize) -> Result<Option<Block>, InputError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let align = self.format.block_align;
        let n = (max_frames.max(1) as u64)
            .min(self.remaining)
            .min((MAX_BLOCK_BYTES / align).max(1) as u64) as usize;
        self.buf.resize(n * align, 0);
        let got =
            read_full(&mut self.r, &mut self.buf).map_err(|e| InputError::io(&self.path, e))?;
        if got < self.buf.len() {
            return Err(InputError::Truncated {
                path: self.path.clone(),
                promised: self.done + self.remaining,
                held: self.done + (got / align) as u64,
            });
        }
        self.remaining -= n as u64;
        self.done += n as u64;
        Ok(Some(convert(
            self.format.encoding,
            self.format.shift,
            &self.buf,
        )))
    }
}

/// Fills `buf` unless the file ends first; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Samples of whole frames from their little-endian bytes.
fn convert(encoding: Encoding, shift: u32, bytes: &[u8]) -> Block {
    match encoding {
        Encoding::U8 => Block::Int(
            bytes
                .iter()
                .map(|&b| (i32::from(b) - 128) >> shift)
                .collect(),
        ),
        Encoding::I16 => Block::Int(
            bytes
                .as_chunks::<2>()
                .0
                .iter()
                .map(|&c| i32::from(i16::from_le_bytes(c)) >> shift)
                .collect(),
        ),
        Encoding::I24 => Block::Int(
            bytes
                .as_chunks::<3>()
                .0
                .iter()
                .map(|&[a, b, c]| i32::from_le_bytes([0, a, b, c]) >> (8 + shift))
                .collect(),
        ),
        Encoding::I32 => Block::Int(
            bytes
                .as_chunks::<4>()
                .0
                .iter()
                .map(|&c| i32::from_le_bytes(c) >> shift)
                .collect(),
        ),
        Encoding::F32 => Block::Float(
            bytes
                .as_chunks::<4>()
                .0
                .iter()
                .map(|&c| f32::from_le_bytes(c))
                .collect(),
        ),
        Encoding::F64 => Block::Float(
            bytes
                .as_chunks::<8>()
                .0
                .iter()
                .map(|&c| f64::from_le_bytes(c) as f32)
                .collect(),
        ),
    }
}

/// Up to `max` bytes at `offset` (fewer at the end of the file). Seeks relatively, so that
/// a run of small chunks is read from the buffer rather than refilling it for each.
fn read_at(r: &mut BufReader<File>, offset: u64, max: u64) -> std::io::Result<Vec<u8>> {
    let here = r.stream_position()?;
    match i64::try_from(i128::from(offset) - i128::from(here)) {
        Ok(delta) => r.seek_relative(delta)?,
        Err(_) => {
            r.seek(SeekFrom::Start(offset))?;
        }
    }
    let mut v = Vec::new();
    r.by_ref().take(max).read_to_end(&mut v)?;
    Ok(v)
}

fn looks_like_id(b: &[u8]) -> bool {
    b.len() == 4 && b.iter().all(|&c| (0x20..0x7F).contains(&c))
}

/// Walks the chunk list, keeping what the reader needs and the start-time metadata.
fn walk(r: &mut BufReader<File>, layout: Layout, file_len: u64) -> std::io::Result<Chunks> {
    let mut c = Chunks::default();
    let head = read_at(r, 0, layout.file_header_len())?;
    // Where the RIFF header says the file ends (Wave64 sizes include the header).
    let riff_end = match layout {
        Layout::W64 => u64_at(&head, 16).unwrap_or(0),
        _ => u64::from(u32_at(&head, 4).unwrap_or(0)) + 8,
    };
    let hdr = layout.chunk_header_len();
    let mut pos = layout.file_header_len();
    while pos.saturating_add(hdr) <= file_len {
        let h = read_at(r, pos, hdr)?;
        if (h.len() as u64) < hdr {
            break; // the file shrank under us
        }
        let body = pos + hdr;
        // A Wave64 chunk whose GUID is not a RIFF id has no RIFF form to be served in.
        let mut foreign = false;
        let (id, size) = match layout {
            Layout::W64 => {
                let id = (h[4..16] == W64_SUFFIX).then(|| [h[0], h[1], h[2], h[3]]);
                foreign = id.is_none();
                let total = u64_at(&h, 16).unwrap_or(0);
                match total.checked_sub(hdr) {
                    Some(s) => (id.unwrap_or(*b"????"), Some(s)),
                    None => break, // a size smaller than its own header: nothing more to trust
                }
            }
            _ => {
                let id = [h[0], h[1], h[2], h[3]];
                let s32 = u32_at(&h, 4).unwrap_or(0);
                let size = if s32 != u32::MAX {
                    Some(u64::from(s32))
                } else if let (Layout::Rf64 { .. }, Some(ds)) = (layout, &c.ds64) {
                    if &id == b"data" {
                        Some(ds.data)
                    } else {
                        ds.table.iter().find(|(t, _)| *t == id).map(|&(_, s)| s)
                    }
                } else {
                    None
                };
                (id, size)
            }
        };
        match &id {
            b"data" if c.data.is_none() => {
                let available = file_len - body;
                let riff_end = match (layout, &c.ds64) {
                    (Layout::Rf64 { .. }, Some(ds)) => ds.riff.saturating_add(8),
                    _ => riff_end,
                };
                // A zero size where the RIFF size ends at this header: never finalised.
                let unfinalised = size == Some(0) && riff_end <= body && available > 0;
                let exact = size.filter(|&s| s <= available && !unfinalised);
                c.data = Some(DataChunk {
                    offset: body,
                    declared: size,
                    available,
                    exact,
                });
                if exact.is_none() {
                    break; // the data runs to the end of the file
                }
            }
            b"fmt " if c.fmt.is_none() => {
                c.fmt = Some(read_at(r, body, size.unwrap_or(0).min(1024))?)
            }
            b"ds64" if matches!(layout, Layout::Rf64 { .. }) && c.ds64.is_none() => {
                let b = read_at(r, body, size.unwrap_or(0).min(1 << 16))?;
                c.ds64 = Some(parse_ds64(&b));
            }
            b"bext" if c.bext_time.is_none() => {
                // OriginationDate and OriginationTime sit at bytes 320..338.
                let b = read_at(r, body, size.unwrap_or(0).min(338))?;
                c.bext_time = b
                    .get(320..338)
                    .and_then(|dt| start_time::from_bext(&dt[..10], &dt[10..]));
            }
            b"LIST" if c.icmt_time.is_none() && size.is_some_and(|s| s <= MAX_META_BYTES) => {
                let b = read_at(r, body, size.unwrap_or(0))?;
                c.icmt_time = info_comment(&b).and_then(|t| start_time::from_audiomoth(&t));
            }
            b"guan" if c.guano_time.is_none() && size.is_some_and(|s| s <= MAX_META_BYTES) => {
                let b = read_at(r, body, size.unwrap_or(0))?;
                c.guano_time = start_time::from_guano(&String::from_utf8_lossy(&b));
            }
            _ => {}
        }
        if !ChunkId(id).is_structural() {
            let name = ChunkId(id);
            match size {
                None => c
                    .kept
                    .dropped
                    .push(format!("chunk {name:?} of unknown size (0xFFFFFFFF)")),
                Some(size) if body.saturating_add(size) > file_len => c.kept.dropped.push(format!(
                    "chunk {name:?} claiming {size} bytes, past the end of the file"
                )),
                Some(size) if foreign => c.kept.dropped.push(format!(
                    "a Wave64 chunk of {size} bytes with a GUID that is no RIFF id"
                )),
                Some(size) => {
                    if c.kept.wants(name, size) {
                        c.kept.keep(Chunk::new(name, read_at(r, body, size)?));
                    }
                }
            }
        }
        let Some(size) = size else { break };
        let end = body.saturating_add(size);
        if end > file_len {
            c.overrun = Some((id, pos, size));
            break;
        }
        pos = match layout {
            Layout::W64 => end.next_multiple_of(8),
            _ if size % 2 == 1 => {
                let padded = read_at(r, end + 1, 4)?;
                if !looks_like_id(&padded) && looks_like_id(&read_at(r, end, 4)?) {
                    end
                } else {
                    end + 1
                }
            }
            _ => end,
        };
    }
    Ok(c)
}

fn parse_ds64(b: &[u8]) -> Ds64 {
    let n = u32_at(b, 24).unwrap_or(0) as usize;
    let table = (0..n)
        .map_while(|i| {
            let at = 28 + 12 * i;
            let id = *b.get(at..)?.first_chunk::<4>()?;
            Some((id, u64_at(b, at + 4)?))
        })
        .collect();
    Ds64 {
        riff: u64_at(b, 0).unwrap_or(0),
        data: u64_at(b, 8).unwrap_or(0),
        sample_count: u64_at(b, 16).unwrap_or(0),
        table,
    }
}

/// The `ICMT` text of a `LIST` chunk of type `INFO`.
fn info_comment(list: &[u8]) -> Option<String> {
    let (_, text) = crate::chunks::info::entries(list).find(|(id, _)| *id == b"ICMT")?;
    let text = text.split(|&b| b == 0).next().unwrap_or(text);
    Some(String::from_utf8_lossy(text).into_owned())
}

fn format_tag_name(tag: u16) -> String {
    let name = match tag {
        0x0002 => "Microsoft ADPCM",
        0x0006 => "A-law",
        0x0007 => "mu-law",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0050 => "MPEG audio",
        0x0055 => "MPEG layer 3",
        0x0161..=0x0163 => "Windows Media Audio",
        0xF1AC => "FLAC",
        _ => "",
    };
    if name.is_empty() {
        format!("format tag 0x{tag:04X}")
    } else {
        format!("{name} (format tag 0x{tag:04X})")
    }
}

fn parse_fmt(path: &Path, name: &'static str, b: &[u8]) -> Result<Format, InputError> {
    let bad = |m: String| InputError::malformed(path, name, m);
    let unsupported = |m: String| InputError::unsupported(path, name, m);
    let field = |at| {
        u16_at(b, at)
            .ok_or_else(|| bad(format!("fmt chunk of {} bytes, needs at least 16", b.len())))
    };
    let tag = field(0)?;
    let channels = field(2)?;
    let sample_rate = u32_at(b, 4).unwrap_or(0);
    let block_align = field(12)?;
    let bits = field(14)?;
    let (tag, valid) = if tag == 0xFFFE {
        let (Some(valid), Some(sub)) = (u16_at(b, 18), b.get(24..40)) else {
            return Err(bad(format!(
                "WAVE_FORMAT_EXTENSIBLE fmt chunk of {} bytes, needs 40",
                b.len()
            )));
        };
        let suffix = &sub[2..];
        if suffix != SUBTYPE_SUFFIX && suffix != AMBISONIC_SUFFIX {
            let hex: String = sub.iter().map(|x| format!("{x:02x}")).collect();
            return Err(unsupported(format!(
                "WAVE_FORMAT_EXTENSIBLE SubFormat {hex}"
            )));
        }
        let sub_tag = u16::from_le_bytes([sub[0], sub[1]]);
        (sub_tag, if valid == 0 { bits } else { valid })
    } else {
        (tag, bits)
    };
    if channels == 0 {
        return Err(bad("0 channels".into()));
    }
    if sample_rate == 0 {
        return Err(bad("sample rate 0".into()));
    }
    if block_align == 0 || block_align % channels != 0 {
        return Err(bad(format!(
            "block align {block_align} is not a whole number of bytes for each of {channels} channels"
        )));
    }
    let container = block_align / channels;
    let (encoding, kind, shift) = match tag {
        1 => {
            let encoding = match container {
                1 => Encoding::U8,
                2 => Encoding::I16,
                3 => Encoding::I24,
                4 => Encoding::I32,
                _ => {
                    return Err(unsupported(format!(
                        "integer samples of {container} bytes (at most 4)"
                    )));
                }
            };
            if bits.div_ceil(8) != container {
                return Err(bad(format!(
                    "{bits} bits per sample do not fit the {container}-byte samples that block align {block_align} implies"
                )));
            }
            if valid == 0 || valid > bits {
                return Err(bad(format!("{valid} valid bits in {bits}-bit samples")));
            }
            (
                encoding,
                SampleKind::Int { bits: valid },
                u32::from(container * 8 - valid),
            )
        }
        3 => {
            let encoding = match (container, bits) {
                (4, 32) => Encoding::F32,
                (8, 64) => Encoding::F64,
                _ => {
                    return Err(unsupported(format!(
                        "{bits}-bit float samples in {container}-byte containers (32 or 64 bits)"
                    )));
                }
            };
            (encoding, SampleKind::Float32, 0)
        }
        other => return Err(unsupported(format!("encoding {}", format_tag_name(other)))),
    };
    Ok(Format {
        encoding,
        shift,
        channels,
        sample_rate,
        block_align: usize::from(block_align),
        kind,
    })
}
