//! The archive format (docs/FORMAT.md): a Zarr v3 hierarchy whose groups are folders
//! and recordings. This layer knows Zarr, Ogg pages, the page index and stored
//! checkpoints; it knows nothing of decoding.

pub mod checkpoints;
pub mod index;
pub mod meta;
pub mod ogg;
pub mod opus_head;
pub mod samples;
mod store;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use meta::{CODECS, RecordingMeta, SampleKind, SourceInfo, parse_utc};
pub use store::{RecordingStore, StreamBytes};

/// Attribute key under which every zarr-wavfs node keeps its metadata.
pub const ATTR_KEY: &str = "zarr_wavfs";
/// The format version this build writes.
pub const FORMAT_VERSION: u64 = 3;
/// The format versions this build reads (docs/FORMAT.md, "Versions").
pub const READ_VERSIONS: [u64; 3] = [1, 2, 3];
/// Directory (inside the archive) where imports build recordings before committing them.
pub const STAGING_DIR: &str = ".zarr-wavfs-staging";

/// Errors of the archive layer. `path` is always the file system path concerned.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ArchiveError {
    #[error("{path}: not a zarr-wavfs archive ({reason})")]
    NotAnArchive { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: Arc<std::io::Error>,
    },
    #[error("{path}: Zarr error: {message}")]
    Zarr { path: PathBuf, message: String },
    #[error("{path}: bad metadata: {message}")]
    Metadata { path: PathBuf, message: String },
    #[error("{path}: damaged: {message}")]
    Damaged { path: PathBuf, message: String },
    #[error("{path}: already exists (use --force to replace it)")]
    Exists { path: PathBuf },
    #[error("{path}: no such recording or folder in the archive")]
    NotFound { path: PathBuf },
}

impl ArchiveError {
    pub(crate) fn io(path: impl Into<PathBuf>, e: std::io::Error) -> Self {
        ArchiveError::Io {
            path: path.into(),
            source: Arc::new(e),
        }
    }
    pub(crate) fn zarr(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        ArchiveError::Zarr {
            path: path.into(),
            message: e.to_string(),
        }
    }
    pub(crate) fn damaged(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ArchiveError::Damaged {
            path: path.into(),
            message: message.into(),
        }
    }
    pub(crate) fn metadata(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ArchiveError::Metadata {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A recording's archive-relative path with its metadata (or why it is unreadable).
pub type RecordingListing = (String, Result<RecordingMeta, ArchiveError>);

/// One node of the archive tree.
#[derive(Debug, Clone)]
// Recordings outnumber folders in any real archive, so boxing the larger variant
// would add an allocation per entry to save space on the few folders.
#[allow(clippy::large_enum_variant)]
pub enum Entry {
    Folder {
        name: String,
        children: Vec<Entry>,
    },
    /// A recording; its metadata may be unreadable, which must not hide its siblings.
    Recording {
        name: String,
        path: String,
        meta: Result<RecordingMeta, ArchiveError>,
    },
}

impl Entry {
    pub fn name(&self) -> &str {
        match self {
            Entry::Folder { name, .. } | Entry::Recording { name, .. } => name,
        }
    }
}

/// An opened archive: a root directory holding a zarr-wavfs Zarr v3 group.
#[derive(Debug, Clone)]
pub struct Archive {
    root: PathBuf,
}

impl Archive {
    /// Opens an existing archive, checking the root group's marker and format version.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, ArchiveError> {
        let root = root.as_ref().to_path_buf();
        let md = std::fs::metadata(&root).map_err(|e| ArchiveError::io(&root, e))?;
        if !md.is_dir() {
            return Err(ArchiveError::NotAnArchive {
                path: root,
                reason: "not a directory".into(),
            });
        }
        let attrs = store::read_group_attrs(&root, "").map_err(|e| match e {
            ArchiveError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ArchiveError::NotAnArchive {
                    path: root.clone(),
                    reason: "no zarr.json".into(),
                }
            }
            other => other,
        })?;
        meta::check_archive_marker(&root, &attrs)?;
        Ok(Archive { root })
    }

    /// Creates a new archive at `root` (which must not exist or be an empty directory),
    /// or opens it if it already is one.
    pub fn create_or_open(root: impl AsRef<Path>) -> Result<Self, ArchiveError> {
        let root = root.as_ref();
        if root.join("zarr.json").exists() {
            return Self::open(root);
        }
        if root.exists() {
            let mut it = std::fs::read_dir(root).map_err(|e| ArchiveError::io(root, e))?;
            if it.next().is_some() {
                return Err(ArchiveError::NotAnArchive {
                    path: root.to_path_buf(),
                    reason: "directory is not empty and has no zarr.json".into(),
                });
            }
        }
        std::fs::create_dir_all(root).map_err(|e| ArchiveError::io(root, e))?;
        store::write_group_atomically(root, "", meta::archive_attrs())?;
        Self::open(root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The whole tree, folders first-level sorted by name.
    pub fn tree(&self) -> Result<Vec<Entry>, ArchiveError> {
        self.list("")
    }

    /// The entries of the folder at `rel` ("" is the root).
    pub fn list(&self, rel: &str) -> Result<Vec<Entry>, ArchiveError> {
        let dir = self.root.join(rel);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| ArchiveError::io(&dir, e))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.') && !n.starts_with("__"))
            .filter(|n| dir.join(n).join("zarr.json").exists())
            .collect();
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if store::is_array(&self.root, &path) {
                // A Zarr array someone stored beside our groups: not a node of ours.
                continue;
            }
            match store::read_group_attrs(&self.root, &path) {
                Ok(attrs) if meta::is_recording(&attrs) => {
                    let meta = RecordingMeta::from_attrs(&self.root.join(&path), &attrs);
                    out.push(Entry::Recording { name, path, meta });
                }
                Ok(attrs) if meta::is_folder(&attrs) => {
                    let children = self.list(&path)?;
                    out.push(Entry::Folder { name, children });
                }
                // A Zarr array, or a group written by someone else: not ours to show.
                Ok(_) => {}
                Err(e) => out.push(Entry::Recording {
                    name,
                    path,
                    meta: Err(e),
                }),
            }
        }
        Ok(out)
    }

    /// All recordings, depth first, as archive-relative paths with their metadata.
    pub fn recordings(&self) -> Result<Vec<RecordingListing>, ArchiveError> {
        fn walk(entries: Vec<Entry>, out: &mut Vec<RecordingListing>) {
            for e in entries {
                match e {
                    Entry::Folder { children, .. } => walk(children, out),
                    Entry::Recording { path, meta, .. } => out.push((path, meta)),
                }
            }
        }
        let mut out = Vec::new();
        walk(self.tree()?, &mut out);
        Ok(out)
    }

    /// Opens the recording at archive-relative `path` for reading. A trailing `.wav`
    /// is dropped unless a node has exactly that name (a recording may be called
    /// `take.wav`).
    pub fn recording(&self, path: &str) -> Result<RecordingStore, ArchiveError> {
        let exact = path.trim_matches('/');
        let path = if !exact.is_empty() && self.root.join(exact).join("zarr.json").exists() {
            exact.to_string()
        } else {
            normalise(path)
        };
        let dir = self.root.join(&path);
        if path.is_empty() || !dir.join("zarr.json").exists() {
            return Err(ArchiveError::NotFound { path: dir });
        }
        let attrs = store::read_group_attrs(&self.root, &path)?;
        if !meta::is_recording(&attrs) {
            return Err(ArchiveError::NotFound { path: dir });
        }
        let meta = RecordingMeta::from_attrs(&dir, &attrs)?;
        RecordingStore::open(&self.root, &path, meta)
    }
}

impl Archive {
    /// Bytes on disk of a recording's audio (`stream`, or `samples` and its CRCs),
    /// without opening it.
    pub fn audio_bytes(&self, path: &str) -> u64 {
        let d = self.root.join(path);
        ["stream", "samples", "chunk_crc32c"]
            .iter()
            .map(|a| store::dir_size(&d.join(a)))
            .sum()
    }
}

/// Archive-relative path without leading/trailing slashes or a `.wav` suffix.
pub fn normalise(path: &str) -> String {
    let p = path.trim_matches('/');
    p.strip_suffix(".wav").unwrap_or(p).to_string()
}
