//! Reading `import` inputs: WAV (RIFF, RF64, BW64, Wave64), FLAC, and through symphonia
//! MP3, Ogg Vorbis, AAC (ADTS or MP4) and ALAC (MP4), recognised by content, not by name.
//!
//! Every reader streams: memory stays bounded whatever the file size. Samples come
//! interleaved, frame after frame; integers as `i32` in the signed range of their bit depth
//! (8-bit WAV, unsigned on disk, comes out as byte − 128), floats as `f32`.
//!
//! # Start time
//!
//! `InputSpec::start_time` comes from metadata inside the file. Rules, tried in this order;
//! the first that yields a valid time wins, and a field that is missing, malformed or
//! names an impossible date (month 13, 30 February, 24:00:00) is passed over, never an
//! error:
//!
//! WAV, RF64, BW64 and Wave64:
//! 1. BWF `bext` chunk (EBU Tech 3285): OriginationDate `yyyy-mm-dd` and OriginationTime
//!    `hh:mm:ss`, both required. Any single non-digit separator is accepted (the standard
//!    recommends `-` `_` `:` space `.`). BWF defines this as local time without a zone; it
//!    is taken as UTC. TimeReference (samples since midnight) is ignored: recorders fill it
//!    from timecode that need not match the wall clock.
//! 2. AudioMoth comment (LIST/INFO `ICMT` chunk) `Recorded at hh:mm:ss[.mmm] dd/mm/yyyy
//!    (UTC[±h[:mm]]) ...`: the firmware writes local time followed by its zone, so the zone
//!    offset is subtracted to get UTC (`(UTC+1)` 05:00 is 04:00Z, `(UTC-0:30)` 03:30 is
//!    04:00Z). Milliseconds (AudioMoth Live) are dropped.
//! 3. GUANO metadata (`guan` chunk, written by AudioMoth and many bat detectors) line
//!    `Timestamp:yyyy-mm-ddThh:mm:ss[.f][Z|±hh:mm]`: an offset is applied; a time without
//!    one is taken as UTC.
//!
//! FLAC, Ogg Vorbis, MP3 and MP4 tags:
//! 1. Any tag whose text is an AudioMoth comment (rule 2 above; ffmpeg carries `ICMT` over
//!    as COMMENT or DESCRIPTION).
//! 2. A `DATE` (Vorbis comment) or `TDRC` (ID3v2 recording time) tag with a full date and
//!    time, `yyyy-mm-ddThh:mm:ss` (a space instead of `T` is accepted) with an optional
//!    zone as in rule 3; a date alone is not enough.
//!
//! All times come out as ISO 8601 UTC `yyyy-mm-ddThh:mm:ssZ`, to the second (fractions are
//! dropped, not rounded).

mod compressed;
mod flac;
mod start_time;
mod wav;

#[cfg(test)]
mod tests;

use std::fs::File;

use crate::chunks::Chunk;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// How samples are represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// Integers in `-2^(bits-1) .. 2^(bits-1)`, `bits` in 1..=32, delivered as `Block::Int`.
    Int { bits: u16 },
    /// Delivered as `Block::Float`; nominal full scale is ±1.0.
    Float32,
}

/// What an input holds, known once it is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    pub sample_rate: u32,
    pub channels: u16,
    pub kind: SampleKind,
    /// Frames promised by the header when known (WAV data size, FLAC total samples); the
    /// reader fails if the file holds fewer. None for the lossy formats, whose length is
    /// whatever the decode gives.
    pub frames: Option<u64>,
    /// "wav", "rf64", "bw64", "w64", "flac", "mp3", "vorbis", "aac", "alac".
    pub container: &'static str,
    /// True when the input is itself lossy (MP3, Vorbis, AAC): the samples are a decode.
    pub lossy: bool,
    /// Recording start time, ISO 8601 UTC `YYYY-MM-DDTHH:MM:SSZ`, from metadata inside the
    /// file (rules in the module documentation).
    pub start_time: Option<String>,
    /// Metadata chunks kept byte for byte (WAV family), in the file's order.
    pub chunks: Vec<Chunk>,
    /// What the file holds that is not kept (a chunk over the size limits), for the
    /// import's warning.
    pub dropped: Vec<String>,
}

/// Interleaved samples of whole frames, in the kind the spec names.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Int(Vec<i32>),
    Float(Vec<f32>),
}

impl Block {
    /// Samples in the block (frames × channels).
    pub fn len(&self) -> usize {
        match self {
            Block::Int(v) => v.len(),
            Block::Float(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An opened input, read front to back.
pub trait InputReader: Send {
    fn spec(&self) -> &InputSpec;
    /// The next block of at least one and at most `max_frames` frames (0 counts as 1);
    /// a block may be shorter than asked even before the end. Ok(None) at the end. A file
    /// that ends before the frames its header promises is an error
    /// ([`InputError::Truncated`]); after an error the reader should not be used again.
    fn read(&mut self, max_frames: usize) -> Result<Option<Block>, InputError>;
    /// What the reader left out to go on so far (a lossy decoder's undecodable packets,
    /// audio missing from the stream), for a message such as "1 packet could not be
    /// decoded (at 1.02 s)"; None when nothing was lost. Complete once `read` has
    /// returned Ok(None). The importer refuses such a file unless told otherwise.
    fn damage(&self) -> Option<String> {
        None
    }
}

/// Why an input cannot be read. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The content matches no supported format.
    #[error("{}: not a supported audio file ({detail})", path.display())]
    Unrecognised { path: PathBuf, detail: String },
    /// An Ogg Opus stream: this layer does not decode it; the importer copies it as is.
    #[error("{}: Ogg Opus, which is imported by copying, not decoding", path.display())]
    OggOpus { path: PathBuf },
    /// A recognised format whose content breaks its rules.
    #[error("{}: invalid {format} file: {message}", path.display())]
    Malformed {
        path: PathBuf,
        format: &'static str,
        message: String,
    },
    /// Valid, but a variant this program does not read.
    #[error("{}: unsupported {format} file: {message}", path.display())]
    Unsupported {
        path: PathBuf,
        format: &'static str,
        message: String,
    },
    #[error("{}: truncated: header promises {promised} frames, file holds {held}", path.display())]
    Truncated {
        path: PathBuf,
        promised: u64,
        held: u64,
    },
    /// The codec library failed (or panicked) on the content.
    #[error("{}: {format} decoding failed: {message}", path.display())]
    Decode {
        path: PathBuf,
        format: &'static str,
        message: String,
    },
}

impl InputError {
    /// The file the error is about (every message starts with it too).
    pub fn path(&self) -> &Path {
        match self {
            InputError::Io { path, .. }
            | InputError::Unrecognised { path, .. }
            | InputError::OggOpus { path }
            | InputError::Malformed { path, .. }
            | InputError::Unsupported { path, .. }
            | InputError::Truncated { path, .. }
            | InputError::Decode { path, .. } => path,
        }
    }

    fn io(path: &Path, source: std::io::Error) -> Self {
        InputError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn malformed(path: &Path, format: &'static str, message: impl Into<String>) -> Self {
        InputError::Malformed {
            path: path.to_path_buf(),
            format,
            message: message.into(),
        }
    }

    fn unsupported(path: &Path, format: &'static str, message: impl Into<String>) -> Self {
        InputError::Unsupported {
            path: path.to_path_buf(),
            format,
            message: message.into(),
        }
    }

    fn decode(path: &Path, format: &'static str, message: impl Into<String>) -> Self {
        InputError::Decode {
            path: path.to_path_buf(),
            format,
            message: message.into(),
        }
    }
}

/// File name extensions [`is_audio_name`] accepts: the formats [`open`] reads, plus `opus`
/// (and Ogg Opus in `ogg`/`oga`), which the importer copies.
pub const AUDIO_EXTENSIONS: &[&str] = &[
    "wav", "wave", "bwf", "rf64", "bw64", "w64", "flac", "mp3", "ogg", "oga", "opus", "m4a", "aac",
];

/// Whether a file name looks like an input `import` should pick up when walking a
/// directory (by extension, case-insensitive; see [`AUDIO_EXTENSIONS`]). Names only
/// filter directory walks: [`open`] decides by content.
pub fn is_audio_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| AUDIO_EXTENSIONS.iter().any(|a| a.eq_ignore_ascii_case(e)))
}

/// Opens any supported input by content (magic bytes), not by extension. An Ogg stream
/// whose first packet is `OpusHead` gives [`InputError::OggOpus`] so the caller can route
/// it to the Opus importer.
pub fn open(path: &Path) -> Result<Box<dyn InputReader>, InputError> {
    let file = File::open(path).map_err(|e| InputError::io(path, e))?;
    let mut r = BufReader::with_capacity(1 << 16, file);
    let head = read_head(&mut r, 512).map_err(|e| InputError::io(path, e))?;
    if let Some(layout) = wav::Layout::sniff(&head) {
        return Ok(Box::new(wav::WavReader::open(path, r, layout)?));
    }
    // Taggers sometimes put an ID3v2 tag before FLAC as well as before MP3.
    let start = id3v2_len(&head).unwrap_or(0);
    let after_tag;
    let magic: &[u8] = if start == 0 {
        &head
    } else {
        r.seek(SeekFrom::Start(start))
            .map_err(|e| InputError::io(path, e))?;
        after_tag = read_head(&mut r, 16).map_err(|e| InputError::io(path, e))?;
        &after_tag
    };
    if magic.starts_with(b"fLaC") {
        r.seek(SeekFrom::Start(start))
            .map_err(|e| InputError::io(path, e))?;
        return Ok(Box::new(flac::FlacReader::open(path, r.into_inner())?));
    }
    if start == 0 && magic.starts_with(b"OggS") && ogg_first_packet_is_opus(&head) {
        return Err(InputError::OggOpus {
            path: path.to_path_buf(),
        });
    }
    let ogg = start == 0 && magic.starts_with(b"OggS");
    let mpeg_sync = magic.len() >= 2 && magic[0] == 0xFF && magic[1] & 0xE0 == 0xE0;
    let mp4 = start == 0 && magic.get(4..8) == Some(b"ftyp");
    if ogg || mpeg_sync || mp4 {
        // symphonia reads from the start of the file, ID3v2 tag included.
        let file = r.into_inner();
        return Ok(Box::new(compressed::CompressedReader::open(path, file)?));
    }
    Err(InputError::Unrecognised {
        path: path.to_path_buf(),
        detail: describe_magic(&head),
    })
}

/// Up to `n` bytes from the current position (fewer only at the end of the file).
fn read_head(r: &mut impl Read, n: usize) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// Total length of an ID3v2 tag at the start of `head` (header, body, footer).
fn id3v2_len(head: &[u8]) -> Option<u64> {
    let h = head.get(..10)?;
    if &h[..3] != b"ID3" || h[6..10].iter().any(|b| b & 0x80 != 0) {
        return None;
    }
    let body = h[6..10].iter().fold(0u64, |v, &b| (v << 7) | u64::from(b));
    let footer = if h[5] & 0x10 != 0 { 10 } else { 0 };
    Some(10 + body + footer)
}

/// Whether the first packet of the Ogg stream starting `head` begins with "OpusHead".
/// The first page holds only the identification header, so its first segment suffices.
fn ogg_first_packet_is_opus(head: &[u8]) -> bool {
    let Some(&nsegs) = head.get(26) else {
        return false;
    };
    let body = 27 + usize::from(nsegs);
    head.get(body..body + 8) == Some(b"OpusHead")
}

fn describe_magic(head: &[u8]) -> String {
    if head.is_empty() {
        return "the file is empty".into();
    }
    let shown: String = head
        .iter()
        .take(4)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect();
    format!("starts with \"{shown}\"")
}

/// Runs a codec library call, turning a panic into an error: the libraries are fuzzed but
/// not proven panic-free, and one bad file must not take down an import of many.
fn guard<T>(
    path: &Path,
    format: &'static str,
    f: impl FnOnce() -> Result<T, InputError>,
) -> Result<T, InputError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(InputError::decode(
            path,
            format,
            format!("the decoder crashed on this content ({what})"),
        ))
    })
}
