//! Reading import inputs: any supported file as blocks of interleaved samples.

use std::path::{Path, PathBuf};

/// What an input's samples are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// Signed integers of this many bits, right-justified in i32.
    Int {
        bits: u16,
    },
    Float32,
}

/// An input's shape, known once it is opened.
#[derive(Debug, Clone)]
pub struct InputSpec {
    pub sample_rate: u32,
    pub channels: u16,
    pub kind: SampleKind,
    /// Frames promised by the header, when known.
    pub frames: Option<u64>,
    pub container: &'static str,
    /// The input is itself lossy (its samples are a decode).
    pub lossy: bool,
    /// Start time found inside the file, ISO 8601 UTC.
    pub start_time: Option<String>,
}

/// Interleaved samples, whole frames.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Int(Vec<i32>),
    Float(Vec<f32>),
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: an Ogg Opus file")]
    OggOpus { path: PathBuf },
}

pub trait InputReader: Send {
    fn spec(&self) -> &InputSpec;
    /// The next block of at most `max_frames` frames; None at the end.
    fn read(&mut self, max_frames: usize) -> Result<Option<Block>, InputError>;
}

/// Whether `import` picks up a file of this name when walking a directory.
pub fn is_audio_name(p: &Path) -> bool {
    let ext = p
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    matches!(ext.as_str(), "wav" | "wave" | "opus" | "ogg")
}

/// Opens an input by its content.
pub fn open(path: &Path) -> Result<Box<dyn InputReader>, InputError> {
    let bad = |message: String| InputError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let mut magic = [0u8; 4];
    std::io::Read::read_exact(
        &mut std::fs::File::open(path).map_err(|e| bad(e.to_string()))?,
        &mut magic,
    )
    .map_err(|_| bad("too short to be an audio file".into()))?;
    match &magic {
        b"RIFF" => {}
        b"OggS" => return Err(InputError::OggOpus { path: path.into() }),
        _ => return Err(bad("not a WAV or Ogg Opus file".into())),
    }
    let r = hound::WavReader::open(path).map_err(|e| bad(format!("invalid WAV: {e}")))?;
    let s = r.spec();
    let spec = InputSpec {
        sample_rate: s.sample_rate,
        channels: s.channels,
        kind: match s.sample_format {
            hound::SampleFormat::Int => SampleKind::Int {
                bits: s.bits_per_sample,
            },
            hound::SampleFormat::Float => SampleKind::Float32,
        },
        frames: Some(u64::from(r.duration())),
        container: "wav",
        lossy: false,
        start_time: None,
    };
    Ok(Box::new(WavInput {
        path: path.into(),
        r,
        spec,
        done: 0,
    }))
}

struct WavInput {
    path: PathBuf,
    r: hound::WavReader<std::io::BufReader<std::fs::File>>,
    spec: InputSpec,
    done: u64,
}

impl InputReader for WavInput {
    fn spec(&self) -> &InputSpec {
        &self.spec
    }

    fn read(&mut self, max_frames: usize) -> Result<Option<Block>, InputError> {
        let ch = usize::from(self.spec.channels);
        let total = self.spec.frames.unwrap_or(0);
        let n = (total - self.done).min(max_frames as u64) as usize * ch;
        if n == 0 {
            return Ok(None);
        }
        let bad = |e: hound::Error| InputError::Invalid {
            path: self.path.clone(),
            message: format!(
                "truncated or unreadable WAV data (header promises {total} frames): {e}"
            ),
        };
        let block = match self.spec.kind {
            SampleKind::Int { .. } => Block::Int(
                self.r
                    .samples::<i32>()
                    .take(n)
                    .collect::<Result<_, _>>()
                    .map_err(bad)?,
            ),
            SampleKind::Float32 => Block::Float(
                self.r
                    .samples::<f32>()
                    .take(n)
                    .collect::<Result<_, _>>()
                    .map_err(bad)?,
            ),
        };
        let got = match &block {
            Block::Int(v) => v.len(),
            Block::Float(v) => v.len(),
        };
        if got < n {
            return Err(InputError::Invalid {
                path: self.path.clone(),
                message: format!(
                    "truncated WAV: header promises {total} frames, file holds {}",
                    self.done + (got / ch) as u64
                ),
            });
        }
        self.done += (n / ch) as u64;
        Ok(Some(block))
    }
}
