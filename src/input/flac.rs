//! FLAC through claxon, decoded frame by frame.
//!
//! claxon 0.4 reads 8, 12, 16, 20 and 24 bits per sample (the bit depths a FLAC frame
//! header can name before FLAC 1.4), 1 to 8 channels, and any sample rate STREAMINFO can
//! hold up to 655,350 Hz. It does not read 32-bit FLAC (FLAC 1.4's reserved-code depth):
//! such files are refused when opened, with that reason. STREAMINFO's total sample count
//! gives `frames` (0 means unknown, None). Vorbis comments that have a RIFF INFO
//! counterpart become the recording's `LIST`/`INFO` chunk (`chunks::info`).

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::chunks::Collector;
use crate::chunks::info::from_vorbis_comments;

use super::{Block, InputError, InputReader, InputSpec, SampleKind, guard, start_time};

const FORMAT: &str = "flac";

pub(super) struct FlacReader {
    path: PathBuf,
    reader: claxon::FlacReader<File>,
    spec: InputSpec,
    /// The decoded FLAC frame being handed out, channel after channel.
    block: claxon::Block,
    /// Frames of `block` already handed out.
    pos: u32,
    /// Bits per sample from STREAMINFO, which every sample must fit.
    bits: u32,
    decoded: u64,
}

impl FlacReader {
    /// Opens the FLAC stream at `file`'s current position.
    pub(super) fn open(path: &Path, file: File) -> Result<Self, InputError> {
        let options = claxon::FlacReaderOptions {
            metadata_only: false,
            read_vorbis_comment: true,
        };
        let reader = guard(path, FORMAT, || {
            claxon::FlacReader::new_ext(file, options).map_err(|e| claxon_error(path, e, None, 0))
        })?;
        let info = reader.streaminfo();
        if info.bits_per_sample > 24 {
            return Err(InputError::unsupported(
                path,
                FORMAT,
                format!(
                    "{}-bit samples (the FLAC decoder, claxon 0.4, reads up to 24 bits)",
                    info.bits_per_sample
                ),
            ));
        }
        let tags: Vec<(&str, &str)> = reader.tags().collect();
        let mut kept = Collector::default();
        if let Some(list) = from_vorbis_comments(tags.iter().copied()) {
            kept.offer(list);
        }
        let spec = InputSpec {
            sample_rate: info.sample_rate,
            channels: info.channels as u16,
            kind: SampleKind::Int {
                bits: info.bits_per_sample as u16,
            },
            frames: info.samples.filter(|&n| n > 0),
            container: FORMAT,
            lossy: false,
            start_time: start_time::from_tags(tags.into_iter()),
            chunks: kept.kept,
            dropped: kept.dropped,
        };
        Ok(FlacReader {
            path: path.to_path_buf(),
            reader,
            spec,
            block: claxon::Block::empty(),
            pos: 0,
            bits: info.bits_per_sample,
            decoded: 0,
        })
    }

    /// Decodes the next FLAC frame into `self.block`; false at the end of the stream.
    fn next_block(&mut self) -> Result<bool, InputError> {
        let buffer = std::mem::replace(&mut self.block, claxon::Block::empty()).into_buffer();
        let (path, promised, decoded) = (&self.path, self.spec.frames, self.decoded);
        let reader = &mut self.reader;
        let next = guard(path, FORMAT, || {
            reader
                .blocks()
                .read_next_or_eof(buffer)
                .map_err(|e| claxon_error(path, e, promised, decoded))
        })?;
        let Some(block) = next else {
            return Ok(false);
        };
        if block.channels() != u32::from(self.spec.channels) {
            return Err(InputError::malformed(
                path,
                FORMAT,
                format!(
                    "frame at sample {} has {} channels, STREAMINFO says {}",
                    decoded,
                    block.channels(),
                    self.spec.channels
                ),
            ));
        }
        self.block = block;
        self.pos = 0;
        Ok(true)
    }
}

impl InputReader for FlacReader {
    fn spec(&self) -> &InputSpec {
        &self.spec
    }

    fn read(&mut self, max_frames: usize) -> Result<Option<Block>, InputError> {
        while self.pos >= self.block.duration() {
            if !self.next_block()? {
                return match self.spec.frames {
                    Some(promised) if promised > self.decoded => Err(InputError::Truncated {
                        path: self.path.clone(),
                        promised,
                        held: self.decoded,
                    }),
                    Some(promised) if promised < self.decoded => Err(InputError::malformed(
                        &self.path,
                        FORMAT,
                        format!(
                            "holds {} frames, more than the {promised} STREAMINFO promises",
                            self.decoded
                        ),
                    )),
                    _ => Ok(None),
                };
            }
        }
        let start = self.pos as usize;
        let n = (self.block.duration() - self.pos)
            .min(u32::try_from(max_frames.max(1)).unwrap_or(u32::MAX));
        let end = start + n as usize;
        let channels: Vec<&[i32]> = (0..self.block.channels())
            .map(|ch| &self.block.channel(ch)[start..end])
            .collect();
        let mut out = Vec::with_capacity(n as usize * channels.len());
        for f in 0..n as usize {
            out.extend(channels.iter().map(|c| c[f]));
        }
        // A frame header may claim a deeper bit depth than STREAMINFO; such samples would
        // break the range promise of `SampleKind::Int`.
        let bits = self.bits;
        let sh = 32 - bits;
        if out.iter().any(|&s| (s << sh) >> sh != s) {
            return Err(InputError::malformed(
                &self.path,
                FORMAT,
                format!(
                    "samples near frame {} exceed the {bits} bits STREAMINFO declares",
                    self.decoded
                ),
            ));
        }
        self.pos += n;
        self.decoded += u64::from(n);
        Ok(Some(Block::Int(out)))
    }
}

fn claxon_error(path: &Path, e: claxon::Error, promised: Option<u64>, decoded: u64) -> InputError {
    match e {
        claxon::Error::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            match promised {
                Some(promised) => InputError::Truncated {
                    path: path.to_path_buf(),
                    promised,
                    held: decoded,
                },
                None => InputError::malformed(
                    path,
                    FORMAT,
                    "the file ends early, in the middle of a header or frame",
                ),
            }
        }
        claxon::Error::IoError(e) => InputError::io(path, e),
        claxon::Error::FormatError(m) => {
            InputError::malformed(path, FORMAT, format!("{m} (after {decoded} frames)"))
        }
        claxon::Error::Unsupported(m) => InputError::unsupported(path, FORMAT, m),
    }
}
