//! The open-file layer both front ends share: the tree, the opened recordings and their
//! span cache, per-handle sequential prefetch, and the one-log-line-per-failure rule.
//! `fuse` and `serve` translate requests into `open`/`read` here and errors into their
//! own codes.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::archive::Archive;
use crate::engine::Engine;
use crate::wav::{SampleFormat, WavLayout};
use crate::wav_file::{TimeExpansion, WavFile, served_format};

use super::error::FsError;
use super::prefetch::SequentialDetector;
use super::tree::{FileInfo, Ino, Node, NodeKind, ROOT, Tree};

/// Upper bound of the sequential prefetch window, in spans.
const MAX_PREFETCH_SPANS: usize = 16;
/// Opened recordings kept without open handles before unused ones are forgotten.
const MAX_OPEN_RECORDINGS: usize = 256;

/// What every front end serves the same way.
#[derive(Debug, Clone)]
pub struct FsOptions {
    /// Served sample format; None: each recording's own.
    pub format: Option<SampleFormat>,
    /// The time-expanded view, if asked for.
    pub time_expansion: Option<TimeExpansion>,
    pub cache_bytes: usize,
}

pub struct FileSystem {
    archive: Archive,
    tree: Tree,
    engine: Engine,
    opts: FsOptions,
    /// Opened whole-recording files, kept so their spans stay cached between opens.
    files: Mutex<HashMap<Ino, Arc<WavFile>>>,
    /// Inodes whose failure was logged already (each is logged once).
    reported: Mutex<HashSet<Ino>>,
}

/// One open file (a FUSE handle, one HTTP response): the WAV bytes and the state of
/// its reader's sequential-read detection.
pub struct OpenFile {
    ino: Ino,
    file: Arc<WavFile>,
    detector: Mutex<SequentialDetector>,
}

impl OpenFile {
    pub fn ino(&self) -> Ino {
        self.ino
    }

    pub fn len(&self) -> u64 {
        self.file.len()
    }

    pub fn is_empty(&self) -> bool {
        self.file.is_empty()
    }

    pub fn layout(&self) -> &WavLayout {
        self.file.layout()
    }
}

impl FileSystem {
    /// The file system over `tree` (built from `archive` with `opts.format`).
    pub fn new(archive: Archive, tree: Tree, opts: FsOptions) -> Self {
        log::info!(
            "{}: {} folders and recordings, {} bytes of WAV; cache {} MiB, {}",
            archive.address(),
            tree.len() - 1,
            tree.total_bytes(),
            opts.cache_bytes >> 20,
            opts.format
                .map_or("formats as recorded", SampleFormat::name)
        );
        let engine = Engine::new(opts.cache_bytes);
        engine.prepare(tree.metas());
        FileSystem {
            archive,
            tree,
            engine,
            opts,
            files: Mutex::new(HashMap::new()),
            reported: Mutex::new(HashSet::new()),
        }
    }

    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    pub fn options(&self) -> &FsOptions {
        &self.opts
    }

    pub fn node(&self, ino: Ino) -> Result<&Node, FsError> {
        self.tree.get(ino).ok_or(FsError::NotFound)
    }

    /// The inode at `names` (shown names, from the root); an empty list is the root.
    pub fn resolve<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Result<Ino, FsError> {
        names
            .into_iter()
            .try_fold(ROOT, |ino, name| match &self.node(ino)?.kind {
                NodeKind::Dir { .. } => self.tree.lookup(ino, name).ok_or(FsError::NotFound),
                NodeKind::File { .. } => Err(FsError::NotDir),
            })
    }

    /// The recording behind `ino` as listed in the tree.
    pub fn file_info(&self, ino: Ino) -> Result<(&str, &FileInfo), FsError> {
        match &self.node(ino)?.kind {
            NodeKind::Dir { .. } => Err(FsError::IsDir),
            NodeKind::File { path, file } => match file {
                Ok(info) => Ok((path, info)),
                Err(message) => Err(FsError::Unservable {
                    path: path.clone(),
                    message: message.clone(),
                }),
            },
        }
    }

    /// Opens the served WAV file of recording `ino`.
    pub fn open(&self, ino: Ino) -> Result<OpenFile, FsError> {
        let file = self.whole(ino).inspect_err(|e| self.report(ino, e))?;
        Ok(OpenFile {
            ino,
            file,
            detector: Mutex::new(SequentialDetector::new()),
        })
    }

    /// Opens a WAV file of frames `frames` of recording `ino` (clamped to it), in
    /// `format` or the format the whole file is served in.
    pub fn open_segment(
        &self,
        ino: Ino,
        frames: Range<u64>,
        format: Option<SampleFormat>,
    ) -> Result<OpenFile, FsError> {
        let whole = self.whole(ino).inspect_err(|e| self.report(ino, e))?;
        let rec = whole.recording();
        let format = format.unwrap_or(whole.layout().format);
        let file =
            WavFile::new(rec.clone(), frames, format, whole.expansion()).map_err(|source| {
                FsError::Layout {
                    path: self.path_of(ino).to_string(),
                    source,
                }
            })?;
        Ok(OpenFile {
            ino,
            file: Arc::new(file),
            detector: Mutex::new(SequentialDetector::new()),
        })
    }

    /// Appends the bytes at `offset..offset + len` of `f` to `out` (fewer at the end of
    /// the file, none past it), prefetching ahead of a sequential reader.
    pub fn read(
        &self,
        f: &OpenFile,
        offset: u64,
        len: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), FsError> {
        let file = &f.file;
        let rec = file.recording();
        let spans = rec.span_count();
        let span_bytes =
            (rec.frames() * u64::from(rec.channels()) * 2 / spans.max(1) as u64).max(1) as usize;
        // Keep the prefetched spans well inside the cache so they are not evicted
        // before the reader gets to them.
        let max_window = (self.opts.cache_bytes / (4 * span_bytes)).min(MAX_PREFETCH_SPANS);
        let advice = f.detector.lock().on_read(
            offset,
            len,
            file.last_span(offset, len),
            spans,
            max_window,
            span_bytes as u64,
        );
        rec.prefetch(advice.prefetch);
        // Readers keep what they were served (the kernel's page cache, an HTTP client):
        // spans a reader has passed need not stay decoded here too.
        rec.release(advice.passed);
        file.read_at(offset, len, out).map_err(|source| {
            let e = FsError::Codec {
                path: self.path_of(f.ino).to_string(),
                source,
            };
            self.report(f.ino, &e);
            e
        })
    }

    /// Calls `f` with frames `frames` of recording `ino` (clamped to it) as interleaved
    /// f32 samples (±1.0, as the `f32` served format), a bounded chunk at a time, in order.
    pub fn for_each_chunk_f32(
        &self,
        ino: Ino,
        frames: Range<u64>,
        mut f: impl FnMut(&[f32]),
    ) -> Result<(), FsError> {
        const CHUNK_FRAMES: u64 = 1 << 16;
        let whole = self.whole(ino).inspect_err(|e| self.report(ino, e))?;
        let rec = whole.recording();
        let ch = usize::from(rec.channels());
        let end = frames.end.min(rec.frames());
        let mut buf = vec![0f32; CHUNK_FRAMES as usize * ch];
        let mut at = frames.start;
        while at < end {
            let n = (end - at).min(CHUNK_FRAMES) as usize;
            let got = rec
                .read_frames_f32(at, &mut buf[..n * ch])
                .map_err(|source| {
                    let e = FsError::Codec {
                        path: self.path_of(ino).to_string(),
                        source,
                    };
                    self.report(ino, &e);
                    e
                })?;
            if got == 0 {
                break;
            }
            f(&buf[..got * ch]);
            at += got as u64;
        }
        Ok(())
    }

    fn path_of(&self, ino: Ino) -> &str {
        match self.tree.get(ino).map(|n| &n.kind) {
            Some(NodeKind::File { path, .. }) => path,
            _ => "?",
        }
    }

    /// Logs a failure of inode `ino` the first time only.
    fn report(&self, ino: Ino, err: &FsError) {
        if matches!(err, FsError::NotFound | FsError::IsDir | FsError::NotDir) {
            return;
        }
        if self.reported.lock().insert(ino) {
            log::error!("{err}");
        } else {
            log::debug!("{err}");
        }
    }

    /// The whole-recording file behind `ino`, opening it on first use.
    fn whole(&self, ino: Ino) -> Result<Arc<WavFile>, FsError> {
        if let Some(f) = self.files.lock().get(&ino) {
            return Ok(f.clone());
        }
        let (path, info) = self.file_info(ino)?;
        let codec = |source| FsError::Codec {
            path: path.to_string(),
            source,
        };
        let rec = self
            .engine
            .open_listed(&self.archive, path, &info.meta)
            .map_err(codec)?;
        let format = served_format(self.opts.format, &info.meta);
        let expansion = TimeExpansion::factor_for(self.opts.time_expansion, &info.meta);
        let wav = WavFile::whole(rec, format, expansion).map_err(|source| FsError::Layout {
            path: path.to_string(),
            source,
        })?;
        // Sizes were answered from the metadata read with the tree; serving anything
        // else (the recording was replaced since) would contradict them.
        if wav.recording().meta() != &info.meta || wav.layout() != &info.layout {
            return Err(FsError::Changed {
                path: path.to_string(),
            });
        }
        let mut files = self.files.lock();
        let wav = files.entry(ino).or_insert(Arc::new(wav)).clone();
        if files.len() > MAX_OPEN_RECORDINGS {
            // Forget recordings no open file uses, so scanning a huge archive does not
            // keep every index in memory; they are reopened on demand.
            files.retain(|&i, f| i == ino || Arc::strong_count(f) > 1);
        }
        Ok(wav)
    }
}
