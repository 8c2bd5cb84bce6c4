//! The open-file layer both front ends share: the tree, the opened recordings and their
//! span cache, per-handle sequential prefetch, and the one-log-line-per-failure rule.
//! `fuse` and `serve` translate requests into `open`/`read` here and errors into their
//! own codes.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::archive::{Archive, ArchiveError};
use crate::engine::Engine;
use crate::wav::{SampleFormat, WavLayout};
use crate::wav_file::{TimeExpansion, WavFile, served_format};

use super::error::FsError;
use super::prefetch::SequentialDetector;
use super::tree::{Changes, FileInfo, Ino, NodeKind, ROOT, Tree};

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
    /// How often the archive is read again while served (a local one is also watched
    /// for changes); zero: never, the tree stays as it was read at the start.
    pub refresh: Duration,
}

pub struct FileSystem {
    archive: Archive,
    /// The tree as last read; a refresh swaps in a new one, and a request keeps the
    /// one it started with.
    tree: RwLock<Arc<Tree>>,
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
    /// The file's layout, which never changes while it is open.
    layout: WavLayout,
    /// The opened recording behind it; a read that finds it damaged may put a fresh
    /// opening in its place (`FileSystem::read`).
    file: RwLock<Arc<WavFile>>,
    detector: Mutex<SequentialDetector>,
}

impl OpenFile {
    pub fn ino(&self) -> Ino {
        self.ino
    }

    fn new(ino: Ino, file: Arc<WavFile>) -> Self {
        OpenFile {
            ino,
            layout: file.layout().clone(),
            file: RwLock::new(file),
            detector: Mutex::new(SequentialDetector::new()),
        }
    }

    pub fn len(&self) -> u64 {
        self.layout.file_len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn layout(&self) -> &WavLayout {
        &self.layout
    }
}

impl FileSystem {
    /// The file system over `tree` (built from `archive` with `opts.format`).
    pub fn new(archive: Archive, tree: Tree, opts: FsOptions) -> Self {
        log::info!(
            "{}: {} folders and recordings, {} bytes of WAV; cache {} MiB, {}",
            archive.address(),
            tree.listed_count(),
            tree.total_bytes(),
            opts.cache_bytes >> 20,
            opts.format
                .map_or("formats as recorded", SampleFormat::name)
        );
        let engine = Engine::new(opts.cache_bytes);
        engine.prepare(tree.metas());
        FileSystem {
            archive,
            tree: RwLock::new(Arc::new(tree)),
            engine,
            opts,
            files: Mutex::new(HashMap::new()),
            reported: Mutex::new(HashSet::new()),
        }
    }

    /// The tree now.
    pub fn tree(&self) -> Arc<Tree> {
        self.tree.read().clone()
    }

    /// Reads the archive's tree again and swaps it in when it changed (see `Tree` for
    /// what keeps its inode). Whole-recording files no longer listed are forgotten once
    /// no handle uses them.
    pub fn refresh(&self) -> Result<Changes, ArchiveError> {
        let entries = Tree::entries(&self.archive)?;
        // One refresh at a time: two would each start from the same old tree.
        let mut current = self.tree.write();
        let (next, changes) = current.refreshed(entries);
        if !changes.is_empty() {
            self.engine.prepare(next.metas());
            *current = Arc::new(next);
        }
        drop(current);
        // What was fetched ahead of a recording another process replaced is the old
        // version's: new opens must not read it.
        for path in &changes.stale {
            self.archive.store().forget(path);
        }
        let tree = self.tree();
        // An open recording pins its directory (`Store::pin`): let go of the ones no
        // longer listed once no handle reads them, so their space can be freed.
        self.files
            .lock()
            .retain(|&i, f| tree.is_listed(i) || Arc::strong_count(f) > 1);
        if changes.is_empty() {
            return Ok(changes);
        }
        log::info!(
            "{}: the archive changed: {} new or changed nodes, {} names gone or replaced; \
             {} folders and recordings",
            self.archive.address(),
            changes.added,
            changes.gone.len(),
            tree.listed_count()
        );
        Ok(changes)
    }

    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    pub fn options(&self) -> &FsOptions {
        &self.opts
    }

    /// The inode at `names` (shown names, from the root); an empty list is the root.
    pub fn resolve<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Result<Ino, FsError> {
        let tree = self.tree();
        names.into_iter().try_fold(ROOT, |ino, name| {
            match &tree.get(ino).ok_or(FsError::NotFound)?.kind {
                NodeKind::Dir { .. } => tree.lookup(ino, name).ok_or(FsError::NotFound),
                NodeKind::File { .. } => Err(FsError::NotDir),
            }
        })
    }

    /// The recording behind `ino` as listed in the tree, and its archive-relative path.
    pub fn file_info(&self, ino: Ino) -> Result<(String, Arc<FileInfo>), FsError> {
        let tree = self.tree();
        let node = tree.get(ino).ok_or(FsError::NotFound)?;
        match &node.kind {
            NodeKind::Dir { .. } => Err(FsError::IsDir),
            NodeKind::File { file } => match file {
                Ok(info) => Ok((node.path.clone(), info.clone())),
                Err(message) => Err(FsError::Unservable {
                    path: node.path.clone(),
                    message: message.clone(),
                }),
            },
        }
    }

    /// Opens the served WAV file of recording `ino`.
    pub fn open(&self, ino: Ino) -> Result<OpenFile, FsError> {
        let file = self.whole(ino).inspect_err(|e| self.report(ino, e))?;
        Ok(OpenFile::new(ino, file))
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
                    path: self.path_of(ino),
                    source,
                }
            })?;
        Ok(OpenFile::new(ino, Arc::new(file)))
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
        let file = f.file.read().clone();
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
        let start = out.len();
        let Err(source) = file.read_at(offset, len, out) else {
            return Ok(());
        };
        // What looks damaged may be a remote store's passing fault kept in what was
        // read at open (an index, CRCs) or fetched ahead: one more try, on the
        // recording opened afresh, before the read fails.
        if let Some(fresh) = self.reopen(f.ino, &file) {
            out.truncate(start);
            if fresh.read_at(offset, len, out).is_ok() {
                *f.file.write() = fresh;
                return Ok(());
            }
            out.truncate(start);
        }
        let e = FsError::Codec {
            path: self.path_of(f.ino),
            source,
        };
        self.report(f.ino, &e);
        Err(e)
    }

    /// `file` (of inode `ino`) opened again from what the store holds now, forgetting
    /// what was fetched of it before; `None` for a local store (which keeps nothing
    /// fetched) or when the fresh opening fails or is of another version.
    fn reopen(&self, ino: Ino, file: &Arc<WavFile>) -> Option<Arc<WavFile>> {
        let store = self.archive.store();
        if store.local_root().is_some() {
            return None;
        }
        let path = self.tree().get(ino)?.path.clone();
        {
            let mut files = self.files.lock();
            if files
                .get(&ino)
                .is_some_and(|w| w.recording().id() == file.recording().id())
            {
                files.remove(&ino);
            }
        }
        store.forget(&path);
        // The recording's own metadata, read again rather than the listing's: the
        // arrays may be another version's (re-imported since `file` was opened), and
        // that version must not answer for this one. An object store's commit removes
        // the old metadata first and writes the new one last, so equal metadata
        // (source hash included) is the same recording.
        let rec = self.engine.open(&self.archive, &path).ok()?;
        if rec.meta() != file.recording().meta() {
            return None;
        }
        let fresh = file.reopened(rec).ok()?;
        (fresh.layout() == file.layout()).then(|| Arc::new(fresh))
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
                        path: self.path_of(ino),
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

    fn path_of(&self, ino: Ino) -> String {
        self.tree()
            .get(ino)
            .map_or_else(|| "?".into(), |n| n.path.clone())
    }

    /// Logs a failure of inode `ino` (the first time only), and has the store forget
    /// what it fetched ahead of that recording: a damaged or stale answer kept there
    /// must not fail the next try too.
    fn report(&self, ino: Ino, err: &FsError) {
        if matches!(err, FsError::NotFound | FsError::IsDir | FsError::NotDir) {
            return;
        }
        if let Some(node) = self.tree().get(ino) {
            self.archive.store().forget(&node.path);
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
        match self.open_whole(ino, &path, &info) {
            // As in `reopen`: one more try with nothing fetched before.
            Err(FsError::Codec { .. } | FsError::Changed { .. })
                if self.archive.store().local_root().is_none() =>
            {
                self.archive.store().forget(&path);
                self.open_whole(ino, &path, &info)
            }
            other => other,
        }
    }

    fn open_whole(&self, ino: Ino, path: &str, info: &FileInfo) -> Result<Arc<WavFile>, FsError> {
        let path = path.to_string();
        let codec = |source| FsError::Codec {
            path: path.clone(),
            source,
        };
        let rec = self
            .engine
            .open_listed(&self.archive, &path, &info.meta)
            .map_err(codec)?;
        let format = served_format(self.opts.format, &info.meta);
        let expansion = TimeExpansion::factor_for(self.opts.time_expansion, &info.meta);
        let wav = WavFile::whole(rec, format, expansion).map_err(|source| FsError::Layout {
            path: path.clone(),
            source,
        })?;
        // Sizes were answered from the metadata read with the tree; serving anything
        // else (the recording was replaced since) would contradict them.
        if wav.recording().meta() != &info.meta || wav.layout() != &info.layout {
            return Err(FsError::Changed { path: path.clone() });
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
