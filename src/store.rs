//! The storage layer: where an archive's bytes live. One [`Store`] gives the archive
//! layer the same operations whatever the place: a directory on a local disk
//! ([`local`], zarrs' `FilesystemStore`), an S3-compatible bucket or a plain web server
//! ([`remote`], the `object_store` crate behind a synchronous adapter of our own).
//! zarrs reads and writes arrays through [`Store::zarr`]; the archive layer's own
//! reads (metadata, the manifest) and its commit steps go through the methods here.
//!
//! Keys are archive-relative (`site1/rec/stream/c/0`); [`Store::location`] turns one
//! into the address shown in errors and logs (`s3://bucket/prefix/site1/rec/...`, or a
//! file system path).

pub mod address;
mod local;
mod remote;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use zarrs::storage::ReadableWritableListableStorage;

pub use address::{Address, RemoteOptions};
use local::LocalStore;
pub(crate) use local::{process_running, unique};
use remote::RemoteStore;

/// Where something is in a store, as a user would type it: a file system path or a
/// URL (`s3://bucket/prefix/key`). Errors of the archive layer name one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location(String);

impl Location {
    /// The location of `rel` below this one.
    pub fn join(&self, rel: &str) -> Location {
        let rel = rel.trim_matches('/');
        if rel.is_empty() {
            return self.clone();
        }
        Location(format!("{}/{rel}", self.0.trim_end_matches('/')))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Self {
        Location(p.display().to_string())
    }
}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Self {
        Location::from(p.as_path())
    }
}

impl From<&PathBuf> for Location {
    fn from(p: &PathBuf) -> Self {
        Location::from(p.as_path())
    }
}

impl From<&Location> for Location {
    fn from(l: &Location) -> Self {
        l.clone()
    }
}

impl From<&str> for Location {
    fn from(s: &str) -> Self {
        Location(s.to_string())
    }
}

impl From<String> for Location {
    fn from(s: String) -> Self {
        Location(s)
    }
}

/// Errors of the storage layer. `at` names the key (or the store) concerned.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("{at}: not found")]
    NotFound { at: Location },
    #[error("{at}: no such bucket")]
    NoSuchBucket { at: Location },
    #[error("{at}: access denied ({message})")]
    Denied { at: Location, message: String },
    #[error("{at}: store unavailable ({message})")]
    Unavailable { at: Location, message: String },
    /// A conditional write found the object other than expected (another writer
    /// changed or created it first).
    #[error("{at}: changed by another writer meanwhile")]
    Conflict { at: Location },
    #[error("{at}: the store is read-only (an HTTP server)")]
    ReadOnly { at: Location },
    #[error("{at}: {message}")]
    Unsupported { at: Location, message: String },
    #[error("{at}: {source}")]
    Io {
        at: Location,
        source: Arc<std::io::Error>,
    },
    #[error("{at}: {message}")]
    Other { at: Location, message: String },
    #[error("{0}")]
    Config(String),
}

impl StoreError {
    pub(crate) fn io(at: impl Into<Location>, e: std::io::Error) -> Self {
        StoreError::Io {
            at: at.into(),
            source: Arc::new(e),
        }
    }
}

/// An object read whole, with when it was last written.
#[derive(Clone)]
pub struct Object {
    pub bytes: Bytes,
    pub modified: SystemTime,
    /// The version a conditional write can name (an object store's ETag; `None`
    /// locally, where writers lock instead).
    pub version: Option<String>,
}

/// What a conditional write ([`Store::put_if`]) expects to replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// No object at the key.
    Absent,
    /// The object of this version.
    Version(String),
}

/// Settings of remote stores that are not part of an address.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Bound on one operation, retries included: a store that stops answering gives an
    /// error after this long, never a read that hangs.
    pub timeout: Duration,
    pub remote: RemoteOptions,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            timeout: Duration::from_secs(30),
            remote: RemoteOptions::default(),
        }
    }
}

#[derive(Debug)]
enum Backend {
    Local(LocalStore),
    Remote(RemoteStore),
}

/// An archive's store. Cheap to clone: clones share the backend (and its connections).
#[derive(Clone)]
pub struct Store {
    backend: Arc<Backend>,
    zarr: ReadableWritableListableStorage,
}

impl Store {
    /// Opens the store at `address`. Nothing is read yet: a remote store's credentials
    /// and reachability are checked by the first request (opening the archive).
    pub fn open(address: &Address, options: &StoreOptions) -> Result<Store, StoreError> {
        let backend = match address {
            Address::Local(root) => Backend::Local(LocalStore::new(root)?),
            remote => Backend::Remote(RemoteStore::open(remote, options)?),
        };
        let backend = Arc::new(backend);
        let zarr: ReadableWritableListableStorage = match &*backend {
            Backend::Local(l) => l.zarr(),
            Backend::Remote(r) => r.zarr(),
        };
        Ok(Store { backend, zarr })
    }

    /// The archive at the root of any `object_store` client (a cloud store of its own
    /// kind, an in-memory one, or one of a test's that injects faults), its keys shown
    /// as `base/KEY` in messages. It is written and listed like an S3 bucket.
    pub fn from_object_store(
        client: Arc<dyn object_store::ObjectStore>,
        base: &str,
        options: &StoreOptions,
    ) -> Store {
        let remote = RemoteStore::with_client(client, "", base.to_string(), true, true, options);
        let zarr = remote.zarr();
        Store {
            backend: Arc::new(Backend::Remote(remote)),
            zarr,
        }
    }

    /// The storage zarrs reads and writes arrays and groups through (node paths are
    /// archive-relative with a leading `/`).
    pub fn zarr(&self) -> ReadableWritableListableStorage {
        self.zarr.clone()
    }

    /// Where archive-relative `rel` is, for messages.
    pub fn location(&self, rel: &str) -> Location {
        match &*self.backend {
            Backend::Local(l) => l.location(rel),
            Backend::Remote(r) => r.location(rel),
        }
    }

    /// The archive's root directory when the store is a local one. Local-only steps
    /// (the atomic rename of a staged recording, read-ahead hints to the kernel) use it.
    pub fn local_root(&self) -> Option<&Path> {
        match &*self.backend {
            Backend::Local(l) => Some(l.root()),
            Backend::Remote(_) => None,
        }
    }

    /// Whether the store can be written (plain HTTP servers cannot).
    pub fn is_writable(&self) -> bool {
        match &*self.backend {
            Backend::Local(_) => true,
            Backend::Remote(r) => r.is_writable(),
        }
    }

    /// The object at `key`, or `None` when there is none.
    pub fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        match &*self.backend {
            Backend::Local(l) => l.get(key),
            Backend::Remote(r) => r.get(key),
        }
    }

    /// Writes the object at `key` so that a reader sees either the old or the whole
    /// new value, never a part.
    pub fn put_atomic(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Local(l) => l.put_atomic(key, &bytes),
            Backend::Remote(r) => r.put(key, bytes),
        }
    }

    /// Writes the object at `key` as `put_atomic` does, if what is there is what
    /// `expect` says (S3's `If-None-Match: *` / `If-Match`); `false` when another
    /// writer got there first. Local stores write unconditionally: their writers
    /// serialise with `lock_local`. A server that ignores the conditions (some
    /// S3-compatible ones do) writes unconditionally too.
    pub fn put_if(&self, key: &str, bytes: Bytes, expect: &Expect) -> Result<bool, StoreError> {
        match &*self.backend {
            Backend::Local(l) => l.put_atomic(key, &bytes).map(|()| true),
            Backend::Remote(r) => match r.put_if(key, bytes, expect) {
                Err(StoreError::Conflict { .. }) => Ok(false),
                other => other.map(|()| true),
            },
        }
    }

    /// The names of the "directories" directly below `rel` (key prefixes, for object
    /// stores), sorted. A plain HTTP server cannot list: `Unsupported`.
    pub fn list_dirs(&self, rel: &str) -> Result<Vec<String>, StoreError> {
        match &*self.backend {
            Backend::Local(l) => l.list_dirs(rel),
            Backend::Remote(r) => r.list_dirs(rel),
        }
    }

    /// `list_dirs` of each of `rels`, in order; a remote store lists them concurrently
    /// (a mount checks every folder of its manifest this way).
    pub fn list_dirs_many(&self, rels: &[&str]) -> Vec<Result<Vec<String>, StoreError>> {
        match &*self.backend {
            Backend::Local(l) => rels.iter().map(|r| l.list_dirs(r)).collect(),
            Backend::Remote(r) => r.list_dirs_many(rels),
        }
    }

    /// Whether nothing is stored below `rel` (a local directory that does not exist
    /// counts as empty). A store that cannot list: `Unsupported`.
    pub fn is_empty(&self, rel: &str) -> Result<bool, StoreError> {
        match &*self.backend {
            Backend::Local(l) => l.is_empty(rel),
            Backend::Remote(r) => r.is_empty(rel),
        }
    }

    /// Whether the store can list its keys.
    pub fn is_listable(&self) -> bool {
        match &*self.backend {
            Backend::Local(_) => true,
            Backend::Remote(r) => r.is_listable(),
        }
    }

    /// Removes the object `key` (nothing when there is none).
    pub fn erase(&self, key: &str) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Local(l) => l.erase(key),
            Backend::Remote(r) => r.erase(key),
        }
    }

    /// Removes every key below `rel`.
    pub fn erase_prefix(&self, rel: &str) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Local(l) => l.erase_prefix(rel),
            Backend::Remote(r) => r.erase_prefix(rel),
        }
    }

    /// The recording (or any directory) at `rel` as a store of its own that reaches
    /// this version of it even after another process replaces or removes it, until
    /// dropped: local stores only (see `LocalStore::pin`); `None` for remote ones,
    /// which are read through the archive's store.
    pub fn pin(&self, rel: &str) -> Result<Option<Store>, StoreError> {
        let Backend::Local(l) = &*self.backend else {
            return Ok(None);
        };
        Ok(l.pin(rel)?.map(|pinned| {
            let zarr = pinned.zarr();
            Store {
                backend: Arc::new(Backend::Local(pinned)),
                zarr,
            }
        }))
    }

    /// Forgets what was fetched ahead of `rel` and the keys below it (a remote store's
    /// prefetched objects and read-ahead ranges), because another process changed
    /// them: later reads ask the store.
    pub fn forget(&self, rel: &str) {
        if let Backend::Remote(r) = &*self.backend {
            r.forget(rel);
        }
    }

    /// Removes the temporary files that writers of this machine which were killed
    /// mid-write left (local stores; an object store's writes leave none).
    pub fn clean_stale_temp_files(&self) {
        if let Backend::Local(l) = &*self.backend {
            l.clean_stale_temp_files();
        }
    }

    /// Takes the exclusive lock of the file `key` of a local store (made if missing),
    /// held until the returned file is dropped, or by the kernel until its holder
    /// exits. Remote stores have none: `None`.
    pub fn lock_local(&self, key: &str) -> Result<Option<std::fs::File>, StoreError> {
        match &*self.backend {
            Backend::Local(l) => l.lock(key).map(Some),
            Backend::Remote(_) => Ok(None),
        }
    }

    /// Removes every key below `rel`, unless it is a local directory that a reader
    /// has pinned: then it stays and `false` is returned (its remover, or a later
    /// import's clean-up, removes it once no reader holds it).
    pub fn erase_unless_pinned(&self, rel: &str) -> Result<bool, StoreError> {
        match &*self.backend {
            Backend::Local(l) => l.erase_unless_pinned(rel),
            Backend::Remote(r) => r.erase_prefix(rel).map(|()| true),
        }
    }

    /// Copies every key below `from` to the same key below `to` (object stores, where
    /// the copy happens in the server; local stores rename whole directories instead).
    pub fn copy_prefix(&self, from: &str, to: &str) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Local(l) => Err(StoreError::Unsupported {
                at: l.location(from),
                message: "copy is an object-store operation".into(),
            }),
            Backend::Remote(r) => r.copy_prefix(from, to),
        }
    }

    /// A scratch directory on the local disk for an import's temporary files, removed
    /// when dropped: inside the archive for a local one (same file system, so a day of
    /// encoded audio does not land in a small /tmp), in the system's temporary
    /// directory otherwise.
    pub fn scratch_dir(&self) -> Result<tempfile::TempDir, StoreError> {
        let dir = match &*self.backend {
            Backend::Local(l) => l.root().join(local::TMP_DIR),
            Backend::Remote(_) => std::env::temp_dir(),
        };
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        tempfile::Builder::new()
            // With the process id, where the staging area's clean-up looks for it
            // (another import's must not remove it while this one runs).
            .prefix(&format!("scratch-{}-", std::process::id()))
            .tempdir_in(&dir)
            .map_err(|e| StoreError::io(&dir, e))
    }

    /// Bytes stored below `rel` (0 when the store cannot list).
    pub fn size_prefix(&self, rel: &str) -> u64 {
        match &*self.backend {
            Backend::Local(l) => l.size_prefix(rel),
            Backend::Remote(r) => r.size_prefix(rel),
        }
    }

    /// Starts reading the whole objects `keys` at once (remote stores; nothing
    /// locally); the reads of each in the next few seconds, whole or in ranges, by
    /// `get` or by zarrs, take it from there. For objects that do not depend on each
    /// other: one round trip for all.
    pub fn prefetch(&self, keys: &[String]) {
        if let Backend::Remote(r) = &*self.backend {
            r.prefetch(keys);
        }
    }

    /// Hints that `range` of the object `key` will be read soon. Only a hint.
    pub fn will_need(&self, key: &str, range: Range<u64>) {
        match &*self.backend {
            Backend::Local(l) => l.will_need(key, range),
            Backend::Remote(r) => r.will_need(key, range),
        }
    }

    /// Makes the staged directory `from` appear at `to` in one step (local stores
    /// only): fails with `Exists` when `to` exists, unless `replace`, which swaps the
    /// two (the old node is then at `from`).
    pub(crate) fn publish_local(
        &self,
        from: &str,
        to: &str,
        replace: bool,
    ) -> Result<Published, StoreError> {
        match &*self.backend {
            Backend::Local(l) => l.publish(from, to, replace),
            Backend::Remote(r) => Err(StoreError::Unsupported {
                at: r.location(to),
                message: "rename is a local-store operation".into(),
            }),
        }
    }

    /// Requests made so far (remote stores; 0 locally): for tests and benchmarks.
    pub fn requests(&self) -> u64 {
        match &*self.backend {
            Backend::Local(_) => 0,
            Backend::Remote(r) => r.requests(),
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.backend.fmt(f)
    }
}

/// What [`Store::publish_local`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Published {
    /// `to` did not exist; the staged node is there now.
    New,
    /// `to` existed and was swapped with the staged node, which now holds the old one.
    Replaced,
    /// `to` existed and `replace` was not asked.
    Exists,
}
