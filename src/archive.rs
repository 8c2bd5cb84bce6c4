//! The archive format (docs/FORMAT.md): a Zarr v3 hierarchy whose groups are folders
//! and recordings. This layer knows Zarr, Ogg pages, the page index and stored
//! checkpoints; it knows nothing of decoding.

pub mod checkpoints;
pub mod completeness;
pub mod index;
pub mod manifest;
pub mod meta;
pub mod ogg;
pub mod opus_head;
pub mod samples;
mod store;
pub mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use crate::store::{Address, Location, Store, StoreError, StoreOptions};

pub use manifest::{Manifest, ManifestUpdater};
pub use meta::{CODECS, RecordingMeta, SampleKind, SourceInfo, parse_utc};
pub use store::{RecordingStore, StreamBytes};

/// Attribute key under which every zarr-wavfs node keeps its metadata.
pub const ATTR_KEY: &str = "zarr_wavfs";
/// The format version this build writes.
pub const FORMAT_VERSION: u64 = 5;
/// The format versions this build reads (docs/FORMAT.md, "Versions").
pub const READ_VERSIONS: [u64; 5] = [1, 2, 3, 4, 5];
/// Directory (inside the archive) where imports build recordings before committing them.
pub const STAGING_DIR: &str = ".zarr-wavfs-staging";

/// Errors of the archive layer. `path` is always the location concerned: a file system
/// path, or a key's URL in a remote store (`s3://bucket/archive/site1/rec/stream/c/0`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ArchiveError {
    #[error("{path}: not a zarr-wavfs archive ({reason})")]
    NotAnArchive { path: Location, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: Location,
        source: Arc<std::io::Error>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: Zarr error: {message}")]
    Zarr { path: Location, message: String },
    #[error("{path}: bad metadata: {message}")]
    Metadata { path: Location, message: String },
    #[error("{path}: damaged: {message}")]
    Damaged { path: Location, message: String },
    #[error("{path}: already exists (use --force to replace it)")]
    Exists { path: Location },
    /// `--force` found something other than a recording at its target ("a folder").
    #[error("{path} is {what}: --force replaces recordings only")]
    NotARecording { path: Location, what: String },
    #[error("{path}: another import is writing it now ({by})")]
    Busy { path: Location, by: String },
    #[error("{path}: no such recording or folder in the archive")]
    NotFound { path: Location },
}

impl ArchiveError {
    pub(crate) fn io(path: impl Into<Location>, e: std::io::Error) -> Self {
        ArchiveError::Io {
            path: path.into(),
            source: Arc::new(e),
        }
    }
    pub(crate) fn zarr(path: impl Into<Location>, e: impl std::fmt::Display) -> Self {
        ArchiveError::Zarr {
            path: path.into(),
            message: e.to_string(),
        }
    }
    pub(crate) fn damaged(path: impl Into<Location>, message: impl Into<String>) -> Self {
        ArchiveError::Damaged {
            path: path.into(),
            message: message.into(),
        }
    }
    pub(crate) fn metadata(path: impl Into<Location>, message: impl Into<String>) -> Self {
        ArchiveError::Metadata {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A recording's archive-relative path with its metadata (or why it is unreadable).
pub type RecordingListing = (String, Result<RecordingMeta, ArchiveError>);

/// How long creating an archive waits for one that another process is creating at the
/// same address to appear, before taking what is there for something else.
const CREATION_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// One node of the archive tree.
#[derive(Debug, Clone)]
// Recordings outnumber folders in any real archive, so boxing the larger variant
// would add an allocation per entry to save space on the few folders.
#[allow(clippy::large_enum_variant)]
pub enum Entry {
    Folder {
        name: String,
        children: Vec<Entry>,
        /// When its group was written.
        modified: SystemTime,
    },
    /// A recording; its metadata may be unreadable, which must not hide its siblings.
    Recording {
        name: String,
        path: String,
        meta: Result<RecordingMeta, ArchiveError>,
        /// When its group was written (committed).
        modified: SystemTime,
        /// Bytes stored of its audio, when the manifest says (see `Archive::audio_bytes`).
        audio_bytes: Option<u64>,
    },
}

impl Entry {
    pub fn name(&self) -> &str {
        match self {
            Entry::Folder { name, .. } | Entry::Recording { name, .. } => name,
        }
    }
}

/// An opened archive: a store holding a zarr-wavfs Zarr v3 hierarchy.
#[derive(Debug, Clone)]
pub struct Archive {
    store: Store,
    /// When the root group was written.
    modified: SystemTime,
}

impl Archive {
    /// Opens an existing archive in a local directory.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, ArchiveError> {
        Self::open_at(
            &Address::Local(root.as_ref().to_path_buf()),
            &StoreOptions::default(),
        )
    }

    /// Opens an existing archive at any address, checking the root group's marker and
    /// format version. This is the first request to a remote store, so wrong
    /// credentials, a missing bucket or an unreachable server fail here.
    pub fn open_at(address: &Address, options: &StoreOptions) -> Result<Self, ArchiveError> {
        Self::open_store(Store::open(address, options)?)
    }

    /// Opens the archive at the root of `store`, checking the root group's marker and
    /// format version.
    pub fn open_store(store: Store) -> Result<Self, ArchiveError> {
        let root = store.location("");
        let (node, modified) = store::read_node(&store, "")?;
        let attrs = match node {
            store::Node::Group(attrs) => attrs,
            store::Node::Missing => {
                // Say which part of a remote address is wrong.
                let reason = match store.is_empty("") {
                    Err(StoreError::NoSuchBucket { .. }) => "no such bucket".into(),
                    Ok(true) if store.local_root().is_none() => {
                        "nothing is stored under this prefix".into()
                    }
                    _ => "no zarr.json".into(),
                };
                return Err(ArchiveError::NotAnArchive { path: root, reason });
            }
            store::Node::Other => {
                return Err(ArchiveError::NotAnArchive {
                    path: root,
                    reason: "zarr.json is not a Zarr v3 group".into(),
                });
            }
        };
        meta::check_archive_marker(&root, &attrs)?;
        Ok(Archive { store, modified })
    }

    /// Creates a new archive in local directory `root` (which must not exist or be an
    /// empty directory), or opens it if it already is one.
    pub fn create_or_open(root: impl AsRef<Path>) -> Result<Self, ArchiveError> {
        Self::create_or_open_at(
            &Address::Local(root.as_ref().to_path_buf()),
            &StoreOptions::default(),
        )
    }

    /// Creates a new archive at `address` (nothing may be stored there yet), or opens
    /// it if it already is one.
    pub fn create_or_open_at(
        address: &Address,
        options: &StoreOptions,
    ) -> Result<Self, ArchiveError> {
        let store = Store::open(address, options)?;
        if store.get("zarr.json")?.is_some() {
            return Self::open_store(store);
        }
        if !store.is_empty("")? {
            // Another import may be creating the archive this moment (its temporary
            // files come before the root's zarr.json): give it time to finish.
            let t = std::time::Instant::now();
            while t.elapsed() < CREATION_WAIT {
                std::thread::sleep(std::time::Duration::from_millis(20));
                if store.get("zarr.json")?.is_some() {
                    return Self::open_store(store);
                }
            }
            return Err(ArchiveError::NotAnArchive {
                path: store.location(""),
                reason: "not empty and has no zarr.json".into(),
            });
        }
        store::write_group(&store, "", meta::archive_attrs())?;
        Self::open_store(store)
    }

    /// The archive's store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Where the archive is, as a user would write it.
    pub fn address(&self) -> Location {
        self.store.location("")
    }

    /// When the archive's root group was written.
    pub fn modified(&self) -> SystemTime {
        self.modified
    }

    /// The location of archive-relative `rel`, for messages.
    pub fn location(&self, rel: &str) -> Location {
        self.store.location(rel)
    }

    /// The whole tree, each folder's entries sorted by name. A local archive is walked
    /// (reading every node's `zarr.json` costs little on a disk, and sees a node edited
    /// by hand); a remote one is read from its manifest when the manifest lists what
    /// the folders hold, and walked otherwise.
    pub fn tree(&self) -> Result<Vec<Entry>, ArchiveError> {
        if self.store.local_root().is_some() {
            return self.walk();
        }
        let at = self.location(manifest::MANIFEST_KEY);
        match Manifest::read(&self.store)? {
            Some(m) if m.matches(&self.store)? => return Ok(m.entries(&self.store)),
            Some(_) => log::warn!("{at}: the manifest is out of date; walking the archive"),
            None if !self.store.is_listable() => {
                return Err(ArchiveError::NotAnArchive {
                    path: self.location(""),
                    reason: format!(
                        "no manifest ({}), and a web server cannot list the archive's \
                         folders: run `zarr-wavfs manifest` on the archive where it can be \
                         written",
                        manifest::MANIFEST_KEY
                    ),
                });
            }
            None => log::info!("{at}: no manifest; walking the archive"),
        }
        self.walk()
    }

    /// The whole tree as stored, found by listing every folder (no manifest).
    pub fn walk(&self) -> Result<Vec<Entry>, ArchiveError> {
        self.list("")
    }

    /// The entries of the folder at `rel` ("" is the root), found by listing the store.
    pub fn list(&self, rel: &str) -> Result<Vec<Entry>, ArchiveError> {
        let names: Vec<String> = self
            .store
            .list_dirs(rel)?
            .into_iter()
            .filter(|n| !n.starts_with('.') && !n.starts_with("__"))
            .collect();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            match store::read_node(&self.store, &path) {
                Ok((store::Node::Group(attrs), modified)) if meta::is_recording(&attrs) => {
                    let meta = RecordingMeta::from_attrs(&self.location(&path), &attrs);
                    out.push(Entry::Recording {
                        name,
                        path,
                        meta,
                        modified,
                        audio_bytes: None,
                    });
                }
                Ok((store::Node::Group(attrs), modified)) if meta::is_folder(&attrs) => {
                    let children = self.list(&path)?;
                    out.push(Entry::Folder {
                        name,
                        children,
                        modified,
                    });
                }
                // A directory without zarr.json, a Zarr array stored beside our groups,
                // or a group written by someone else: not ours to show.
                Ok(_) => {}
                Err(e) => out.push(Entry::Recording {
                    name,
                    path,
                    meta: Err(e),
                    modified: SystemTime::UNIX_EPOCH,
                    audio_bytes: None,
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

    /// The metadata of the node at `path` if it is a recording, `None` if there is no
    /// node or it is not a recording.
    fn recording_meta(&self, path: &str) -> Result<Option<RecordingMeta>, ArchiveError> {
        if path.is_empty() {
            return Ok(None);
        }
        meta_in(&self.store, path)
    }

    /// Opens the recording at archive-relative `path` for reading. A trailing `.wav`
    /// is dropped unless a node has exactly that name (a recording may be called
    /// `take.wav`).
    pub fn recording(&self, path: &str) -> Result<RecordingStore, ArchiveError> {
        let (path, meta) = self.find_recording(path)?;
        if let Some(pinned) = self.store.pin(&path)? {
            // Read again through the pin: the version pinned is the one read.
            let meta = meta_in(&pinned, "")?.ok_or_else(|| ArchiveError::NotFound {
                path: self.location(&path),
            })?;
            return RecordingStore::open(pinned, "", &path, meta);
        }
        RecordingStore::open(self.store.clone(), &path, &path, meta)
    }

    /// The archive-relative path and metadata of the recording `path` names (with or
    /// without a trailing `.wav`, as `recording` takes it).
    pub fn find_recording(&self, path: &str) -> Result<(String, RecordingMeta), ArchiveError> {
        let exact = path.trim_matches('/').to_string();
        let (path, meta) = match self.recording_meta(&exact)? {
            Some(m) => (exact, m),
            None => {
                let path = normalise(&exact);
                match (path != exact)
                    .then(|| self.recording_meta(&path))
                    .transpose()?
                {
                    Some(Some(m)) => (path, m),
                    _ => {
                        return Err(ArchiveError::NotFound {
                            path: self.location(&path),
                        });
                    }
                }
            }
        };
        Ok((path, meta))
    }

    /// Opens the recording at `path` whose metadata the caller listed (from `tree`).
    /// A remote store takes it at its word, saving a round trip per open (the arrays'
    /// shapes and the index digest are still checked against it); a local one reads
    /// it again, so a recording replaced since the listing is noticed.
    pub fn recording_as_listed(
        &self,
        path: &str,
        listed: &RecordingMeta,
    ) -> Result<RecordingStore, ArchiveError> {
        if self.store.local_root().is_some() {
            return self.recording(path);
        }
        RecordingStore::open(self.store.clone(), path, path, listed.clone())
    }

    /// Whether a node (of any kind) exists at archive-relative `path`.
    pub fn exists(&self, path: &str) -> Result<bool, ArchiveError> {
        Ok(!matches!(
            store::read_group_attrs(&self.store, path)?,
            store::Node::Missing
        ))
    }

    /// Bytes stored of a recording's audio (`stream`, or `samples` and its CRCs),
    /// without opening it.
    pub fn audio_bytes(&self, path: &str) -> u64 {
        ["stream", "samples", "chunk_crc32c"]
            .iter()
            .map(|a| self.store.size_prefix(&format!("{path}/{a}")))
            .sum()
    }
}

/// The metadata of the node at `rel` of `store` if it is a recording.
fn meta_in(store: &Store, rel: &str) -> Result<Option<RecordingMeta>, ArchiveError> {
    match store::read_group_attrs(store, rel)? {
        store::Node::Group(attrs) if meta::is_recording(&attrs) => Ok(Some(
            RecordingMeta::from_attrs(&store.location(rel), &attrs)?,
        )),
        _ => Ok(None),
    }
}

/// Archive-relative path without leading/trailing slashes or a `.wav` suffix.
pub fn normalise(path: &str) -> String {
    let p = path.trim_matches('/');
    p.strip_suffix(".wav").unwrap_or(p).to_string()
}
