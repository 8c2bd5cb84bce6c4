//! `import`: WAV and Ogg Opus files into an archive, each recording committed atomically.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::archive::ManifestUpdater;
use crate::archive::index::{self, PageIndex};
use crate::archive::opus_head::MAX_FAMILY1_CHANNELS;
use crate::archive::samples::{Samples, chunk_frames_for};
use crate::archive::writer::{StagedRecording, check_replaceable, clean_stale_staging};
use crate::archive::{Archive, ArchiveError, RecordingMeta, SampleKind, SourceInfo};
use crate::codec::CodecError;
use crate::codec::flac::{self, FlacEncoder, FlacError};
use crate::codec::opus::{CheckpointsAt, OggOpusEncoder, write_checkpoints};
use crate::fs::shown_name;
use crate::input::{self, Block, InputError, InputReader, InputSpec, SampleKind as InKind};
use crate::store::Location;
use crate::wav::{SampleFormat, WavLayout};
use parking_lot::Mutex;

mod progress;
pub use progress::Progress;
use progress::{JobProgress, Pass};

/// Rates Opus encodes natively.
pub const OPUS_RATES: [u32; 5] = [8000, 12000, 16000, 24000, 48000];

/// The Opus rate a recording at `rate` is stored at: the rate itself when Opus supports
/// it, else the smallest Opus rate above it, else 48 kHz. The samples are never
/// resampled, only relabelled (docs/FORMAT.md, "Sample rates").
pub fn stream_rate_for(rate: u32) -> u32 {
    OPUS_RATES
        .iter()
        .copied()
        .find(|&r| r >= rate)
        .unwrap_or(48_000)
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Archive folder to import into ("" for the root).
    pub into: String,
    /// Opus bitrate per channel, bits per second.
    pub bitrate_per_channel: u32,
    /// Checkpoint spacing in seconds of stream time.
    pub checkpoint_interval_secs: f64,
    /// What happens when a recording of the job's name exists.
    pub existing: Existing,
    pub start_time: Option<String>,
    /// How to store the audio; None: FLAC, or PCM for what FLAC cannot hold.
    pub codec: Option<Codec>,
    /// Threads one FLAC encode uses (`import_all` shares the cores among the files).
    pub encoder_threads: usize,
    /// Import what decodes of a damaged lossy input (packets the decoder rejects,
    /// parts of the stream missing) instead of refusing it; a warning names the loss.
    pub accept_damaged: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            into: String::new(),
            bitrate_per_channel: 64_000,
            checkpoint_interval_secs: crate::codec::opus::DEFAULT_CHECKPOINT_INTERVAL_SECS,
            existing: Existing::Refuse,
            start_time: None,
            codec: None,
            encoder_threads: 1,
            accept_damaged: false,
        }
    }
}

/// What an import does with a job whose target exists already (a node that is not a
/// recording, such as a folder, is never replaced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// The job fails: "already exists".
    Refuse,
    /// The recording is replaced (`--force`).
    Replace,
    /// Skipped when the recording's source has the input's size and SHA-256, else
    /// replaced (`--skip-existing`): a partly done import resumes where it stopped.
    SkipUnchanged,
}

/// What an import did with one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new recording.
    Imported,
    /// A recording of that name replaced (`--force`, or a changed source with
    /// `--skip-existing`).
    Replaced,
    /// Left as it was: it holds this very input (`--skip-existing`).
    Unchanged,
}

/// A job done: the recording's metadata (the one that was there, when unchanged).
#[derive(Debug, Clone)]
pub struct Imported {
    pub meta: RecordingMeta,
    pub outcome: Outcome,
}

/// Why one input could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Read(#[from] InputError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

fn input_err(path: &Path, message: impl Into<String>) -> ImportError {
    ImportError::Input {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// One file to import and the archive path it goes to.
#[derive(Debug, Clone)]
pub struct Job {
    pub input: PathBuf,
    pub target: String,
}

/// Longest file name the mount can show (statfs says so; `cp -r` of a longer one fails).
const NAME_MAX: usize = 255;

/// Expands inputs into jobs: a directory contributes its audio files recursively, its
/// sub-folders becoming folders in the archive. Only regular files are imported (a
/// FIFO or a device would block the import or never end); a directory reached again
/// through a link is not walked twice.
pub fn plan(inputs: &[PathBuf], into: &str) -> Result<Vec<Job>, ImportError> {
    check_into(into)?;
    let mut jobs = Vec::new();
    let mut walked = HashSet::new();
    for input in inputs {
        let md = std::fs::metadata(input).map_err(|e| input_err(input, e.to_string()))?;
        if md.is_dir() {
            let target = join(into, &sanitise(&file_name(input)));
            walk_dir(input, &md, &target, &mut walked, &mut jobs)?;
        } else {
            check_regular(input, &md)?;
            jobs.push(Job {
                input: input.clone(),
                target: join(into, &sanitise(&stem(input))),
            });
        }
    }
    let mut seen = HashSet::new();
    for j in &jobs {
        if !seen.insert(j.target.clone()) {
            return Err(input_err(
                &j.input,
                format!("two inputs would both become \"{}\"", j.target),
            ));
        }
        for (n, part) in j.target.split('/').enumerate() {
            let last = n == j.target.split('/').count() - 1;
            if shown_name(part, last).len() > NAME_MAX {
                return Err(input_err(
                    &j.input,
                    format!(
                        "its archive name \"{part}\" would be shown as a file name longer \
                         than {NAME_MAX} bytes; rename it (or use --into with a shorter folder)"
                    ),
                ));
            }
        }
    }
    Ok(jobs)
}

/// Refuses an `--into` folder path that is not made of names an import would give
/// (empty, `.`, `..`, hidden or reserved parts would put recordings outside the
/// archive or where nothing shows them).
fn check_into(into: &str) -> Result<(), ImportError> {
    if into.is_empty() {
        return Ok(());
    }
    for part in into.split('/') {
        if part.is_empty() || sanitise(part) != part {
            return Err(ImportError::Usage(format!(
                "--into \"{into}\": \"{part}\" cannot be a folder name (folder names are \
                 not empty, not \".\" or \"..\", and do not start with \".\" or \"__\")"
            )));
        }
    }
    Ok(())
}

fn check_regular(path: &Path, md: &std::fs::Metadata) -> Result<(), ImportError> {
    if md.is_file() {
        return Ok(());
    }
    let ft = md.file_type();
    let kind = if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(input_err(
        path,
        format!("{kind}: only regular files are imported"),
    ))
}

fn walk_dir(
    dir: &Path,
    md: &std::fs::Metadata,
    target: &str,
    walked: &mut HashSet<(u64, u64)>,
    jobs: &mut Vec<Job>,
) -> Result<(), ImportError> {
    if !walked.insert((md.dev(), md.ino())) {
        log::warn!(
            "{}: skipped, a link to a folder already imported",
            dir.display()
        );
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| input_err(dir, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        let Ok(md) = std::fs::metadata(&p) else {
            log::warn!("{}: skipped, a broken link", p.display());
            continue;
        };
        if md.is_dir() {
            let target = join(target, &sanitise(&file_name(&p)));
            walk_dir(&p, &md, &target, walked, jobs)?;
        } else if input::is_audio_name(&p) {
            check_regular(&p, &md)?;
            jobs.push(Job {
                input: p.clone(),
                target: join(target, &sanitise(&stem(&p))),
            });
        }
    }
    Ok(())
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn join(a: &str, b: &str) -> String {
    let a = a.trim_matches('/');
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}/{b}")
    }
}

/// A Zarr node name from a file name: no `/`, no leading `.` or `__` (reserved by Zarr),
/// not empty.
pub fn sanitise(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    while s.starts_with('.') || s.starts_with("__") {
        s.replace_range(..1, "_");
        if s.starts_with("__") {
            s.insert(0, 'x');
        }
    }
    if s.is_empty() { "unnamed".into() } else { s }
}

/// Start time from an AudioMoth-style file name `YYYYMMDD_HHMMSS` (UTC), as ISO 8601.
pub fn start_time_from_name(stem: &str) -> Option<String> {
    let b = stem.as_bytes();
    if b.len() < 15 || b[8] != b'_' || !b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| stem[r].parse::<u32>().ok();
    let (mo, d, h, mi, s) = (n(4..6)?, n(6..8)?, n(9..11)?, n(11..13)?, n(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    Some(format!(
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        &stem[0..4],
        mo,
        d,
        h,
        mi,
        s
    ))
}

/// Bytes read from an input per call (hashing, copying).
const READ_BLOCK: usize = 4 << 20;

/// The input's name, size and SHA-256, read in large blocks; with `copy`, every block
/// is also written there, so the copy holds exactly the bytes hashed. The file must not
/// change meanwhile (see [`Unchanged`]).
fn source_info(
    path: &Path,
    mut copy: Option<&mut std::fs::File>,
    reading: Pass,
) -> Result<(SourceInfo, Unchanged), ImportError> {
    let mut f = std::fs::File::open(path).map_err(|e| input_err(path, e.to_string()))?;
    let before = Unchanged::of(path, &f)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; READ_BLOCK];
    let mut size = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(input_err(path, e.to_string())),
        };
        size += n as u64;
        reading.at(size, before.len);
        h.update(&buf[..n]);
        if let Some(out) = copy.as_mut() {
            out.write_all(&buf[..n])
                .map_err(|e| input_err(path, format!("copying it for the import: {e}")))?;
        }
    }
    before.expect(path, &Unchanged::of(path, &f)?, size)?;
    let info = SourceInfo {
        name: file_name(path),
        size,
        sha256: hex::encode(h.finalize()),
    };
    Ok((info, before))
}

/// What an input looked like when it was hashed (size, modification time, inode): an
/// input that changes while it is imported (a recorder still writing it, a copy being
/// cut short) is refused, so a recording's source hash is always that of what was
/// stored.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Unchanged {
    len: u64,
    mtime: (i64, i64),
    inode: (u64, u64),
}

impl Unchanged {
    /// The open file `f` (of `path`, for messages).
    fn of(path: &Path, f: &std::fs::File) -> Result<Self, ImportError> {
        let md = f.metadata().map_err(|e| input_err(path, e.to_string()))?;
        Ok(Self::from_metadata(&md))
    }

    /// The file `path` names now.
    fn at(path: &Path) -> Result<Self, ImportError> {
        let md = std::fs::metadata(path).map_err(|e| input_err(path, e.to_string()))?;
        Ok(Self::from_metadata(&md))
    }

    fn from_metadata(md: &std::fs::Metadata) -> Self {
        Unchanged {
            len: md.len(),
            mtime: (md.mtime(), md.mtime_nsec()),
            inode: (md.dev(), md.ino()),
        }
    }

    /// Fails unless the file is still as it was (`now`) and `read` bytes were read.
    fn expect(&self, path: &Path, now: &Unchanged, read: u64) -> Result<(), ImportError> {
        if *now == *self && read == self.len {
            return Ok(());
        }
        Err(input_err(
            path,
            format!(
                "the file changed while it was being imported ({} bytes when opened, {} \
                 bytes read, {} bytes now{}); import it again once nothing writes to it",
                self.len,
                read,
                now.len,
                if now.inode != self.inode {
                    ", and another file took its name"
                } else {
                    ""
                }
            ),
        ))
    }
}

/// An input whose served WAV file could not be written is refused before anything is
/// encoded: the limits are `WavLayout::new`'s (1 to 255 channels, a positive rate, a
/// byte rate of rate × channels × bytes per sample that fits the header's 32 bits, a
/// file length that fits 64 bits, RF64 above 4 GiB). They are checked for the format a
/// recording is served in by default and for the widest one `--format` can ask for
/// (4 bytes per sample: s32, f32), with room for the metadata chunks served with it.
fn check_servable(spec: &InputSpec, path: &Path) -> Result<(), ImportError> {
    /// More than the chunks a served file can carry (256 KiB kept, `bext`, `fact`).
    const CHUNKS_ROOM: u64 = 1 << 20;
    let natural = SampleFormat::natural_for(stored_kind(spec.kind));
    let frames = spec.frames.unwrap_or(0);
    for format in [natural, SampleFormat::S32] {
        let why = match WavLayout::new(spec.channels, spec.sample_rate, frames, format) {
            Err(e) => e.to_string(),
            Ok(l) if l.file_len() > u64::MAX - CHUNKS_ROOM => {
                format!("a WAV file of {frames} frames would exceed 2^64 bytes")
            }
            Ok(_) => continue,
        };
        let served = if format == natural {
            "as a WAV file".to_string()
        } else {
            format!("as a WAV file with --format {}", format.name())
        };
        return Err(input_err(
            path,
            format!(
                "{} Hz, {} channel{}: cannot be served {served}: {why}",
                spec.sample_rate,
                spec.channels,
                if spec.channels == 1 { "" } else { "s" }
            ),
        ));
    }
    Ok(())
}

/// Refuses (or, with `--accept-damaged`, names in a warning) what a reader had to leave
/// out of a damaged input.
fn check_damage(
    reader: &dyn InputReader,
    path: &Path,
    opts: &ImportOptions,
) -> Result<(), ImportError> {
    let Some(damage) = reader.damage() else {
        return Ok(());
    };
    if !opts.accept_damaged {
        return Err(input_err(
            path,
            format!("{damage}: the file is damaged; --accept-damaged imports what decodes"),
        ));
    }
    log::warn!(
        "{}: damaged, imported without what did not decode: {damage}",
        path.display()
    );
    Ok(())
}

/// How a recording's audio is stored (docs/FORMAT.md, "Codecs").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Lossless, compressed: a FLAC stream with a frame index.
    Flac,
    /// Lossless, the samples themselves in a Zarr array (zstd-compressed chunks).
    Pcm,
    /// Lossy: an Ogg Opus stream with a page index and decoder checkpoints.
    Opus,
}

impl Codec {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "flac" => Some(Codec::Flac),
            "pcm" => Some(Codec::Pcm),
            "opus" => Some(Codec::Opus),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Flac => "flac",
            Codec::Pcm => "pcm",
            Codec::Opus => "opus",
        }
    }
}

/// The codec an input is stored with: the one asked for, else FLAC, or PCM for what FLAC
/// cannot hold (float or 32-bit samples, more than 8 channels, rates above 655,350 Hz):
/// the default must not lose anything. Shapes a codec cannot hold are refused here,
/// before anything is written.
fn choose_codec(asked: Option<Codec>, spec: &InputSpec, path: &Path) -> Result<Codec, ImportError> {
    let flac_fits = matches!(spec.kind, InKind::Int { bits } if FLAC_BITS.contains(&bits))
        && (1..=8).contains(&spec.channels)
        && spec.sample_rate <= 655_350;
    let codec = asked.unwrap_or(if flac_fits { Codec::Flac } else { Codec::Pcm });
    let refuse = |why: String| Err(input_err(path, why));
    if let InKind::Int { bits } = spec.kind
        && !(4..=32).contains(&bits)
    {
        return refuse(format!("{bits}-bit samples: 4 to 32 bits are supported"));
    }
    match codec {
        Codec::Flac => {
            match spec.kind {
                InKind::Float32 => return refuse("FLAC stores integer samples only; this input is 32-bit float (use --codec pcm, or leave --codec out)".into()),
                InKind::Int { bits } if !FLAC_BITS.contains(&bits) => {
                    return refuse(format!("{bits}-bit samples: FLAC is written at 8, 12, 16, 20 or 24 bits here (use --codec pcm, or leave --codec out)"));
                }
                InKind::Int { .. } => {}
            }
            if !(1..=8).contains(&spec.channels) {
                return refuse(format!(
                    "{} channels: FLAC takes 1 to 8 (use --codec pcm)",
                    spec.channels
                ));
            }
            if spec.sample_rate > 655_350 {
                return refuse(format!(
                    "{} Hz: FLAC takes at most 655,350 Hz (use --codec pcm)",
                    spec.sample_rate
                ));
            }
        }
        Codec::Pcm => {
            if spec.channels == 0 || spec.channels > 255 {
                return refuse(format!("{} channels: PCM takes 1 to 255", spec.channels));
            }
        }
        Codec::Opus => {
            let max = u16::from(MAX_FAMILY1_CHANNELS);
            if !(1..=max).contains(&spec.channels) {
                return refuse(format!(
                    "{} channels: Opus recordings take 1 to {max} (Ogg Opus mapping family 1); use --codec pcm (up to 255 channels; --codec flac also stops at 8)",
                    spec.channels
                ));
            }
        }
    }
    Ok(codec)
}

/// Whether the file starts with the FLAC marker.
fn is_flac(path: &Path) -> Result<bool, ImportError> {
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::open(path).map_err(|e| input_err(path, e.to_string()))?;
    Ok(f.read_exact(&mut magic).is_ok() && &magic == b"fLaC")
}

/// Bit depths the FLAC encoder writes.
const FLAC_BITS: [u16; 5] = [8, 12, 16, 20, 24];

/// FLAC from samples: encoded here, then stored like a copied FLAC file.
fn encode_flac(
    reader: &mut dyn InputReader,
    staged: &StagedRecording,
    path: &Path,
    opts: &ImportOptions,
    progress: &JobProgress,
) -> Result<RecordingMeta, ImportError> {
    let spec = reader.spec().clone();
    let InKind::Int { bits } = spec.kind else {
        unreachable!("choose_codec sends only integer input to FLAC")
    };
    let flac = |e: FlacError| input_err(path, format!("FLAC encoder: {e}"));
    // The encoded file goes to disk as it is made (a day of audio is gigabytes), in the
    // staging directory, which the commit (or the drop of `staged`) cleans up.
    let scratch = staged.scratch_dir()?;
    let tmp = scratch.path().join("encoded.flac");
    let file = std::fs::File::create(&tmp).map_err(|e| ArchiveError::io(&tmp, e))?;
    let mut enc = FlacEncoder::to_writer(
        std::io::BufWriter::with_capacity(1 << 20, file),
        spec.channels,
        bits,
        spec.sample_rate,
        opts.encoder_threads,
    )
    .map_err(flac)?;
    let mut frames = 0u64;
    let encoding = progress.pass(HASHED, ENCODED);
    while let Some(block) = reader.read(BLOCK_FRAMES)? {
        let Block::Int(v) = block else {
            unreachable!("integer input yields integer blocks")
        };
        frames += (v.len() / usize::from(spec.channels)) as u64;
        enc.push(&v).map_err(flac)?;
        encoding.at(frames, spec.frames.unwrap_or(0));
    }
    check_frames(path, &spec, frames)?;
    check_damage(reader, path, opts)?;
    drop(enc.finish_into().map_err(flac)?);
    store_flac(&map(&tmp)?, staged, path, progress.pass(ENCODED, 1.0))
}

/// Shares of a job's work (fractions of it done at the end of each pass), from what
/// each pass costs: hashing the input is cheap, libFLAC's encode costs about 2.5 times
/// the full decode that checks what it wrote, and a copied FLAC file costs its check.
const HASHED: f64 = 0.05;
const ENCODED: f64 = 0.75;
const COPIED: f64 = 0.1;

/// A file this import wrote into its scratch directory, mapped into memory rather than
/// read: a FLAC file may be far larger than the memory an import should take. Only such
/// private files are mapped, never an input: a mapped file that another process
/// truncates kills the reader with SIGBUS when it touches the pages that went.
fn map(path: &Path) -> Result<memmap2::Mmap, ImportError> {
    let file = std::fs::File::open(path).map_err(|e| input_err(path, e.to_string()))?;
    // SAFETY: the mapping is read-only, of a file in this import's own scratch
    // directory, which nothing else writes or truncates (the staging clean-up leaves
    // the scratch directories of running processes alone).
    unsafe { memmap2::Mmap::map(&file) }.map_err(|e| input_err(path, e.to_string()))
}

/// A FLAC input kept as it is: copied into the scratch directory in large blocks and
/// hashed on the way (one read of the input), then stored from the copy, so what is
/// scanned, checked and stored is exactly what was hashed whatever happens to the input
/// meanwhile.
fn copy_flac(
    path: &Path,
    staged: &StagedRecording,
    progress: &JobProgress,
) -> Result<(RecordingMeta, Option<InputSpec>, SourceInfo), ImportError> {
    let scratch = staged.scratch_dir()?;
    let copy = scratch.path().join("input.flac");
    let mut out = std::fs::File::create(&copy).map_err(|e| ArchiveError::io(&copy, e))?;
    let (source, _) = source_info(path, Some(&mut out), progress.pass(0.0, COPIED))?;
    drop(out);
    let found = input::open(&copy).ok().map(|r| r.spec().clone());
    if let Some(spec) = &found {
        check_servable(spec, path)?;
    }
    let meta = store_flac(&map(&copy)?, staged, path, progress.pass(COPIED, 1.0))?;
    Ok((meta, found, source))
}

/// Stores a complete FLAC file with its frame index, after checking that it decodes to
/// the audio its STREAMINFO MD5 describes (when set; our encoder always sets it): the
/// archive must not keep a FLAC file that does not give back what it promises.
fn store_flac(
    bytes: &[u8],
    staged: &StagedRecording,
    path: &Path,
    checking: Pass,
) -> Result<RecordingMeta, ImportError> {
    let layout = flac::scan(bytes).map_err(|e| input_err(path, format!("FLAC: {e}")))?;
    let info = &layout.info;
    // Without an MD5 there is nothing to compare a decode with: the frames' CRCs, checked
    // by the scan, are the check (`verify` still decodes everything).
    if info.md5 != [0; 16] {
        let read = |r: std::ops::Range<u64>| {
            checking.at(r.end, bytes.len() as u64);
            Ok(bytes[r.start as usize..r.end as usize].to_vec())
        };
        flac::check_audio(info, &layout.frames, &read)
            .map_err(|e| input_err(path, format!("FLAC: {e}")))?;
    }
    let frames = layout.frames.iter().map(|f| u64::from(f.samples)).sum();
    let rows = flac::index_rows(&layout.frames);
    staged.write_stream(bytes)?;
    staged.write_index_rows(&rows)?;
    let spec = InputSpec {
        sample_rate: info.sample_rate,
        channels: info.channels,
        kind: InKind::Int {
            bits: info.bits_per_sample,
        },
        frames: Some(frames),
        container: "flac",
        lossy: false,
        start_time: None,
        chunks: Vec::new(),
        dropped: Vec::new(),
    };
    Ok(RecordingMeta {
        stream_bytes: bytes.len() as u64,
        index_rows: rows.len() as u64,
        index_sha256: index::digest_rows(rows),
        ..base_meta(Codec::Flac, &spec, frames)
    })
}

/// The sample kind a recording keeps for input samples of `kind`.
fn stored_kind(kind: InKind) -> SampleKind {
    match kind {
        InKind::Int { bits } => SampleKind::Int(bits),
        InKind::Float32 => SampleKind::F32,
    }
}

/// Frames read per block from an input.
const BLOCK_FRAMES: usize = 1 << 16;

/// Fields every recording has; the codec paths add their own.
fn base_meta(codec: Codec, spec: &InputSpec, frames: u64) -> RecordingMeta {
    RecordingMeta {
        kind: "recording".into(),
        format_version: crate::archive::FORMAT_VERSION,
        codec: codec.name().into(),
        channels: spec.channels,
        frames,
        sample_rate: spec.sample_rate,
        original_sample_rate: spec.sample_rate,
        sample_format: stored_kind(spec.kind).name(),
        pre_skip: 0,
        start_time: None,
        source: None,
        stream_bytes: 0,
        index_rows: 0,
        index_sha256: String::new(),
        chunks: Vec::new(),
        meta_sha256: String::new(),
    }
}

/// Checks that an input delivered the frames its header promised.
fn check_frames(path: &Path, spec: &InputSpec, frames: u64) -> Result<(), ImportError> {
    match spec.frames {
        Some(want) if want != frames => Err(input_err(
            path,
            format!("truncated input: header promises {want} frames, file holds {frames}"),
        )),
        _ if frames == 0 => Err(input_err(path, "empty recording: no audio frames")),
        _ => Ok(()),
    }
}

/// PCM: the samples go into the `samples` array as they are.
fn store_pcm(
    reader: &mut dyn InputReader,
    staged: &StagedRecording,
    path: &Path,
    opts: &ImportOptions,
    progress: &JobProgress,
) -> Result<RecordingMeta, ImportError> {
    let spec = reader.spec().clone();
    let kind = stored_kind(spec.kind);
    let storing = progress.pass(HASHED, 1.0);
    let chunk = chunk_frames_for(spec.sample_rate, spec.channels, kind);
    let mut w = staged.samples_writer(kind, spec.channels, chunk)?;
    let mut frames = 0u64;
    while let Some(block) = reader.read(BLOCK_FRAMES)? {
        frames += (block.len() / usize::from(spec.channels)) as u64;
        w.push(&to_samples(block, kind))?;
        storing.at(frames, spec.frames.unwrap_or(0));
    }
    let frames = w.finish()?;
    check_frames(path, &spec, frames)?;
    check_damage(reader, path, opts)?;
    Ok(base_meta(Codec::Pcm, &spec, frames))
}

/// An input block in the stored sample type.
fn to_samples(block: Block, kind: SampleKind) -> Samples {
    match (block, kind) {
        (Block::Int(v), SampleKind::Int(..=16)) => {
            Samples::I16(v.into_iter().map(|s| s as i16).collect())
        }
        (Block::Int(v), _) => Samples::I32(v),
        (Block::Float(v), _) => Samples::F32(v),
    }
}

/// Opus: the input encoded to an Ogg Opus stream, then stored like a copied one.
fn encode_opus(
    reader: &mut dyn InputReader,
    path: &Path,
    opts: &ImportOptions,
    progress: &JobProgress,
) -> Result<OggOpus, ImportError> {
    let spec = reader.spec().clone();
    let stream_rate = stream_rate_for(spec.sample_rate);
    let bitrate = opts.bitrate_per_channel * u32::from(spec.channels);
    let serial = u32::from_le_bytes(
        Sha256::digest(path.to_string_lossy().as_bytes())[..4]
            .try_into()
            .expect("4 bytes"),
    );
    let at = Location::from(path);
    let opus = |e| ImportError::Codec(CodecError::opus(&at)(e));
    let mut enc = OggOpusEncoder::new(stream_rate, spec.channels, bitrate, serial).map_err(opus)?;
    let encoding = progress.pass(HASHED, ENCODED);
    let mut frames = 0u64;
    while let Some(block) = reader.read(BLOCK_FRAMES)? {
        frames += (block.len() / usize::from(spec.channels)) as u64;
        encoding.at(frames, spec.frames.unwrap_or(0));
        let f: Vec<f32> = match block {
            Block::Float(v) => v,
            Block::Int(v) => {
                let bits = match spec.kind {
                    InKind::Int { bits } => bits,
                    InKind::Float32 => 32,
                };
                let scale = 1.0 / (1u64 << (bits - 1)) as f32;
                v.into_iter().map(|s| s as f32 * scale).collect()
            }
        };
        enc.push(&f).map_err(opus)?;
    }
    let (bytes, frames) = enc.finish().map_err(opus)?;
    check_frames(path, &spec, frames)?;
    check_damage(reader, path, opts)?;
    Ok(OggOpus {
        bytes,
        frames,
        stream_rate,
        original_rate: spec.sample_rate,
    })
}

/// An encoded or copied Ogg Opus stream, ready to be stored.
struct OggOpus {
    bytes: Vec<u8>,
    frames: u64,
    stream_rate: u32,
    original_rate: u32,
}

/// An Ogg Opus file as it is, with its source information (of the bytes read, which
/// are the bytes stored). `scan` checks its OpusHead: mapping family 0 (1–2 channels)
/// or 1 (1–8, Vorbis order, as opusenc writes 3–8 channels).
fn copy_ogg_opus(path: &Path) -> Result<(OggOpus, SourceInfo), ImportError> {
    let mut f = std::fs::File::open(path).map_err(|e| input_err(path, e.to_string()))?;
    let before = Unchanged::of(path, &f)?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .map_err(|e| input_err(path, e.to_string()))?;
    before.expect(path, &Unchanged::of(path, &f)?, bytes.len() as u64)?;
    let source = SourceInfo {
        name: file_name(path),
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
    };
    let layout = index::scan(&bytes, 48_000).map_err(|e| input_err(path, e.to_string()))?;
    let frames = (layout.final_granule - i64::from(layout.head.pre_skip)) as u64;
    if frames == 0 {
        return Err(input_err(path, "empty recording: no audio frames"));
    }
    let opus = OggOpus {
        bytes,
        frames,
        stream_rate: 48_000,
        original_rate: 48_000,
    };
    Ok((opus, source))
}

/// Stores an Ogg Opus stream with its page index and checkpoints.
fn store_opus(
    p: OggOpus,
    staged: &StagedRecording,
    path: &Path,
    opts: &ImportOptions,
) -> Result<RecordingMeta, ImportError> {
    let layout = index::scan(&p.bytes, p.stream_rate)
        .map_err(|e| input_err(path, format!("encoded stream failed its own check: {e}")))?;
    staged.write_stream(&p.bytes)?;
    staged.write_index(&layout.rows)?;
    let meta = RecordingMeta {
        kind: "recording".into(),
        format_version: crate::archive::FORMAT_VERSION,
        codec: "opus".into(),
        channels: u16::from(layout.head.channels()),
        frames: p.frames,
        sample_rate: p.stream_rate,
        original_sample_rate: p.original_rate,
        sample_format: SampleKind::Int(16).name(),
        pre_skip: u32::from(layout.head.pre_skip),
        start_time: None,
        source: None,
        stream_bytes: p.bytes.len() as u64,
        index_rows: layout.rows.len() as u64,
        index_sha256: index::digest(&layout.rows),
        chunks: Vec::new(),
        meta_sha256: String::new(),
    };
    let mapping = layout.head.mapping;
    let index = PageIndex::new(layout.rows, meta.stream_bytes);
    let interval = (opts.checkpoint_interval_secs * f64::from(p.stream_rate))
        .round()
        .max(1.0) as u64;
    write_checkpoints(
        &p.bytes,
        &index,
        &meta,
        &mapping,
        &Location::from(path),
        CheckpointsAt {
            store: staged.store(),
            rel: &format!("{}/checkpoints", staged.rel()),
        },
        interval,
    )?;
    Ok(meta)
}

/// Imports one file. Nothing is visible in the archive unless this returns Ok.
pub fn import_one(
    archive: &Archive,
    job: &Job,
    opts: &ImportOptions,
) -> Result<Imported, ImportError> {
    import_tracked(archive, job, opts, &JobProgress::untracked())
}

fn import_tracked(
    archive: &Archive,
    job: &Job,
    opts: &ImportOptions,
    progress: &JobProgress,
) -> Result<Imported, ImportError> {
    let path = &job.input;
    let mut outcome = Outcome::Imported;
    if archive.exists(&job.target)? {
        match opts.existing {
            Existing::Refuse => {
                return Err(ArchiveError::Exists {
                    path: archive.location(&job.target),
                }
                .into());
            }
            Existing::Replace => {}
            Existing::SkipUnchanged => {
                if let Some(meta) = holding_this_input(archive, job, progress)? {
                    return Ok(Imported {
                        meta,
                        outcome: Outcome::Unchanged,
                    });
                }
            }
        }
        // Recordings are replaced, never folders or foreign nodes (the commit checks
        // again what it swapped out).
        check_replaceable(archive, &job.target)?;
        outcome = Outcome::Replaced;
    }
    let staged = StagedRecording::new(archive, &job.target)?;
    // A FLAC input kept as FLAC is copied byte for byte, only indexed.
    let keep_flac = is_flac(path)? && opts.codec.is_none_or(|c| c == Codec::Flac);
    let (mut meta, found, source) = if keep_flac {
        copy_flac(path, &staged, progress)?
    } else {
        let opened = Unchanged::at(path)?;
        match input::open(path) {
            Err(InputError::OggOpus { .. }) => {
                if let Some(c) = opts.codec.filter(|&c| c != Codec::Opus) {
                    return Err(input_err(
                        path,
                        format!(
                            "an Ogg Opus input is stored as it is (codec opus), not as {}: it is lossy already",
                            c.name()
                        ),
                    ));
                }
                let (opus, source) = copy_ogg_opus(path)?;
                (store_opus(opus, &staged, path, opts)?, None, source)
            }
            Err(e) => return Err(e.into()),
            Ok(mut reader) => {
                let spec = reader.spec().clone();
                check_servable(&spec, path)?;
                let codec = choose_codec(opts.codec, &spec, path)?;
                // Hashed, then decoded: the file must be the one opened, and the
                // same at the end.
                let (source, hashed) = source_info(path, None, progress.pass(0.0, HASHED))?;
                opened.expect(path, &hashed, hashed.len)?;
                let r = reader.as_mut();
                let meta = match codec {
                    Codec::Pcm => store_pcm(r, &staged, path, opts, progress)?,
                    Codec::Opus => {
                        store_opus(encode_opus(r, path, opts, progress)?, &staged, path, opts)?
                    }
                    Codec::Flac => encode_flac(r, &staged, path, opts, progress)?,
                };
                hashed.expect(path, &Unchanged::at(path)?, hashed.len)?;
                (meta, Some(spec), source)
            }
        }
    };
    let (found_start, chunks, dropped) = found
        .map(|s| (s.start_time, s.chunks, s.dropped))
        .unwrap_or_default();
    if !dropped.is_empty() {
        log::warn!("{}: not kept: {}", path.display(), dropped.join("; "));
    }
    meta.chunks = chunks;
    meta.start_time = opts
        .start_time
        .clone()
        .or(found_start)
        .or_else(|| start_time_from_name(&stem(path)));
    meta.source = Some(source);
    staged.commit(&meta, outcome == Outcome::Replaced)?;
    Ok(Imported { meta, outcome })
}

/// For `--skip-existing`: the metadata of the recording at the job's target when its
/// source is this input (same size and SHA-256), None when the input differs (it is
/// then imported again). What cannot be compared is an error, not a replacement: a
/// node that is not a recording, a recording without a source, unreadable metadata.
fn holding_this_input(
    archive: &Archive,
    job: &Job,
    progress: &JobProgress,
) -> Result<Option<RecordingMeta>, ImportError> {
    let at = archive.location(&job.target);
    let cannot = |why: String| {
        input_err(
            &job.input,
            format!("--skip-existing cannot tell whether {at} holds it: {why}"),
        )
    };
    let (_, meta) = match check_replaceable(archive, &job.target) {
        Ok(()) => archive
            .find_recording(&job.target)
            .map_err(|e| cannot(e.to_string()))?,
        Err(ArchiveError::NotARecording { what, .. }) => {
            return Err(cannot(format!("that is {what}, not a recording")));
        }
        Err(e) => return Err(cannot(e.to_string())),
    };
    let Some(stored) = &meta.source else {
        return Err(cannot("the recording names no source file".into()));
    };
    let size = std::fs::metadata(&job.input)
        .map_err(|e| input_err(&job.input, e.to_string()))?
        .len();
    if size != stored.size {
        return Ok(None);
    }
    let (source, _) = source_info(&job.input, None, progress.pass(0.0, HASHED))?;
    Ok((source.sha256 == stored.sha256).then_some(meta))
}

/// Imports all jobs, as many at once as there are cores, largest first (so the run
/// does not end waiting on one big file started late); a file larger than its share
/// of what is left to start is encoded on every core. `progress` follows the bytes of input;
/// `done` is called after each job with its outcome. The results are in job order.
pub fn import_all(
    archive: &Archive,
    jobs: &[Job],
    opts: &ImportOptions,
    progress: &Progress,
    done: &(dyn Fn(&Job, &Result<Imported, ImportError>) + Sync),
) -> Result<Vec<Result<Imported, ImportError>>, ImportError> {
    if !archive.store().is_writable() {
        return Err(ArchiveError::from(crate::store::StoreError::ReadOnly {
            at: archive.location(""),
        })
        .into());
    }
    clean_stale_staging(archive);
    let manifest = Mutex::new(ManifestUpdater::start(archive));
    let sizes: Vec<u64> = jobs
        .iter()
        .map(|j| std::fs::metadata(&j.input).map_or(0, |m| m.len()))
        .collect();
    progress.add_total(sizes.iter().sum());
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));
    let cores = rayon::current_num_threads();
    let left = std::sync::atomic::AtomicU64::new(sizes.iter().sum());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Result<Imported, ImportError>>>> =
        jobs.iter().map(|_| Mutex::new(None)).collect();
    let work = || {
        use std::sync::atomic::Ordering::Relaxed;
        while let Some(&i) = order.get(next.fetch_add(1, Relaxed)) {
            let (job, size) = (&jobs[i], sizes[i]);
            let others = left.fetch_sub(size, Relaxed) - size;
            let opts = ImportOptions {
                encoder_threads: if size.saturating_mul(cores as u64) > others + size {
                    cores
                } else {
                    1
                },
                ..opts.clone()
            };
            let tracked = progress.job(size);
            let r = import_tracked(archive, job, &opts, &tracked).and_then(|imported| {
                if imported.outcome != Outcome::Unchanged {
                    let audio_bytes = archive.audio_bytes(&job.target);
                    manifest
                        .lock()
                        .committed(&job.target, &imported.meta, audio_bytes)?;
                }
                Ok(imported)
            });
            tracked.finish();
            done(job, &r);
            *results[i].lock() = Some(r);
        }
    };
    // Workers on rayon's pool: a worker out of jobs helps the others' parallel checks.
    rayon::scope(|s| {
        for _ in 0..cores.min(jobs.len()) {
            s.spawn(|_| work());
        }
    });
    manifest.into_inner().flush()?;
    Ok(results
        .into_iter()
        .map(|r| r.into_inner().expect("every job ran"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_map_to_the_next_opus_rate_without_resampling() {
        assert_eq!(stream_rate_for(8000), 8000);
        assert_eq!(stream_rate_for(11025), 12000);
        assert_eq!(stream_rate_for(22050), 24000);
        assert_eq!(stream_rate_for(44100), 48000);
        assert_eq!(stream_rate_for(250_000), 48000);
        assert_eq!(stream_rate_for(384_000), 48000);
    }

    #[test]
    fn names_are_made_safe() {
        assert_eq!(sanitise("a/b"), "a_b");
        assert_eq!(sanitise(".hidden"), "_hidden");
        assert_eq!(sanitise("__x"), "x__x");
        assert_eq!(sanitise(""), "unnamed");
        assert_eq!(sanitise("20250601_040000"), "20250601_040000");
    }

    #[test]
    fn audiomoth_names_give_start_times() {
        assert_eq!(
            start_time_from_name("20250601_040000").as_deref(),
            Some("2025-06-01T04:00:00Z")
        );
        assert_eq!(start_time_from_name("20251301_040000"), None);
        assert_eq!(start_time_from_name("recording"), None);
    }
}
