//! A local directory as a store: zarrs' `FilesystemStore` for arrays, plus the steps
//! only a file system has (an atomic rename of a whole directory, durable writes,
//! read-ahead hints to the kernel).

use std::ops::Range;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::os::unix::fs::OpenOptionsExt;

use zarrs::filesystem::FilesystemStore;
use zarrs::storage::byte_range::ByteRangeIterator;
use zarrs::storage::{
    Bytes, ListableStorageTraits, MaybeBytesIterator, OffsetBytesIterator, ReadableStorageTraits,
    ReadableWritableListableStorage, StorageError, StoreKey, StoreKeys, StoreKeysPrefixes,
    StorePrefix, WritableStorageTraits,
};

use super::{Location, Object, Published, StoreError};

/// Directory (inside the archive) that holds the temporary files of atomic writes.
pub(super) const TMP_DIR: &str = ".zarr-wavfs-staging";

#[derive(Debug)]
pub(super) struct LocalStore {
    /// Where the files are reached.
    root: PathBuf,
    /// Where messages say they are (the same, except for a pinned directory).
    shown: PathBuf,
    fs: Arc<RegularFiles>,
    /// The pinned directory `root` reaches, with a shared lock held on it (`pin`).
    _pin: Option<OwnedFd>,
}

/// Tries to pin a directory before giving up: it was replaced between being opened
/// and locked that many times in a row.
const PIN_ATTEMPTS: usize = 8;

impl LocalStore {
    pub(super) fn new(root: &Path) -> Result<Self, StoreError> {
        Self::at(root, root, None)
    }

    fn at(root: &Path, shown: &Path, pin: Option<OwnedFd>) -> Result<Self, StoreError> {
        let fs = FilesystemStore::new(root).map_err(|e| StoreError::Other {
            at: shown.into(),
            message: e.to_string(),
        })?;
        Ok(LocalStore {
            root: root.to_path_buf(),
            shown: shown.to_path_buf(),
            fs: Arc::new(RegularFiles(fs)),
            _pin: pin,
        })
    }

    /// The directory `rel` as a store of its own that goes on reaching this directory
    /// after it is renamed (replaced, or removed into the staging area): it is opened,
    /// a shared `flock` is taken on it, and files are reached through
    /// `/proc/self/fd/N`. [`erase_unless_pinned`](Self::erase_unless_pinned) leaves a
    /// directory alone while any process holds such a pin. `None` without /proc.
    /// Each pin holds a descriptor, and a mount may hold hundreds: the first raises the
    /// process's soft limit on open files to its hard limit; past that limit a
    /// recording is read unpinned (with a warning) rather than not at all.
    pub(super) fn pin(&self, rel: &str) -> Result<Option<LocalStore>, StoreError> {
        static RAISE: std::sync::Once = std::sync::Once::new();
        RAISE.call_once(raise_open_file_limit);
        let path = self.path(rel);
        let shown = self.shown.join(rel.trim_matches('/'));
        for _ in 0..PIN_ATTEMPTS {
            let dir = match open_dir(&path) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StoreError::NotFound { at: shown.into() });
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    log::warn!("{}: read unpinned: {e}", shown.display());
                    return Ok(None);
                }
                Err(e) => return Err(StoreError::io(shown, e)),
            };
            // Blocks only while an eraser that holds the directory's exclusive lock
            // deletes it; the check below then sees that it went.
            flock(&dir, libc::LOCK_SH).map_err(|e| StoreError::io(&shown, e))?;
            let now = std::fs::metadata(&path);
            let held = dir.metadata().map_err(|e| StoreError::io(&shown, e))?;
            if now.is_ok_and(|m| m.dev() == held.dev() && m.ino() == held.ino()) {
                let through = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
                if !through.is_dir() {
                    return Ok(None);
                }
                return LocalStore::at(&through, &shown, Some(dir.into())).map(Some);
            }
        }
        Err(StoreError::Other {
            at: shown.into(),
            message: "replaced again and again while being opened".into(),
        })
    }

    /// Removes the temporary files of `put_atomic` (`put-PID-…`) that a process which
    /// no longer runs left in the staging directory (it was killed mid-write).
    pub(super) fn clean_stale_temp_files(&self) {
        let dir = self.root.join(TMP_DIR);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in rd.filter_map(Result::ok) {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix("put-"))
                .and_then(|rest| rest.split('-').next())
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            if e.file_type().is_ok_and(|t| t.is_file()) && !process_running(pid) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Takes the exclusive `flock` of the file `key`, made if missing.
    pub(super) fn lock(&self, key: &str) -> Result<std::fs::File, StoreError> {
        let p = self.path(key);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| StoreError::io(self.location(key), e))?;
        flock(&f, libc::LOCK_EX).map_err(|e| StoreError::io(self.location(key), e))?;
        Ok(f)
    }

    /// Removes the directory `rel` unless a process has it pinned (then it stays,
    /// for a later call, and `false` is returned). Holding its exclusive lock while
    /// deleting keeps a pin from being taken half-way.
    pub(super) fn erase_unless_pinned(&self, rel: &str) -> Result<bool, StoreError> {
        let p = self.path(rel);
        let dir = match open_dir(&p) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(StoreError::io(p, e)),
        };
        match flock(&dir, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => return Ok(false),
            Err(e) => return Err(StoreError::io(p, e)),
        }
        self.erase_prefix(rel)?;
        Ok(true)
    }

    pub(super) fn zarr(&self) -> ReadableWritableListableStorage {
        self.fs.clone()
    }

    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, rel: &str) -> PathBuf {
        let rel = rel.trim_matches('/');
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    pub(super) fn location(&self, rel: &str) -> Location {
        let rel = rel.trim_matches('/');
        Location::from(if rel.is_empty() {
            self.shown.clone()
        } else {
            self.shown.join(rel)
        })
    }

    pub(super) fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        let p = self.path(key);
        let read = || -> std::io::Result<Object> {
            let f = open_regular(&p)?;
            let modified = f.metadata()?.modified()?;
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut &f, &mut bytes)?;
            Ok(Object {
                bytes: bytes.into(),
                modified,
                version: None,
            })
        };
        match read() {
            Ok(o) => Ok(Some(o)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            // A directory where a key was expected: there is no such object.
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => Ok(None),
            Err(e) => Err(StoreError::io(self.location(key), e)),
        }
    }

    /// Writes a sibling temporary file, flushes it and renames it over `key`.
    pub(super) fn put_atomic(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let target = self.path(key);
        let dir = target.parent().expect("a key has a parent").to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let tmp_dir = self.root.join(TMP_DIR);
        std::fs::create_dir_all(&tmp_dir).map_err(|e| StoreError::io(&tmp_dir, e))?;
        let tmp = tmp_dir.join(format!("put-{}-{}", std::process::id(), unique()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &target)?;
            fsync_dir(&dir)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            StoreError::io(&target, e)
        })
    }

    pub(super) fn list_dirs(&self, rel: &str) -> Result<Vec<String>, StoreError> {
        let dir = self.path(rel);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| StoreError::io(&dir, e))?
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Whether the directory `rel` holds nothing but (at the root) the staging
    /// directory: that holds the temporary files of an archive's root `zarr.json` while
    /// another process creates the archive (it comes first, and its fsync may take
    /// seconds on a busy disk), so a directory with nothing else in it is an archive
    /// being created, or one whose creation was interrupted: whoever comes next writes
    /// the same root `zarr.json` (each through its own temporary file renamed into
    /// place) and takes it for theirs, instead of waiting for the other.
    pub(super) fn is_empty(&self, rel: &str) -> Result<bool, StoreError> {
        let dir = self.path(rel);
        let root = rel.trim_matches('/').is_empty();
        match std::fs::read_dir(&dir) {
            Ok(mut it) => Ok(it.all(|e| e.is_ok_and(|e| root && e.file_name() == TMP_DIR))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(StoreError::io(dir, e)),
        }
    }

    pub(super) fn erase(&self, key: &str) -> Result<(), StoreError> {
        let p = self.path(key);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(p, e)),
        }
    }

    pub(super) fn erase_prefix(&self, rel: &str) -> Result<(), StoreError> {
        let p = self.path(rel);
        match std::fs::remove_dir_all(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(p, e)),
        }
    }

    pub(super) fn size_prefix(&self, rel: &str) -> u64 {
        dir_size(&self.path(rel))
    }

    /// `posix_fadvise(WILLNEED)` on the part of the file `key` that holds `range`:
    /// zarrs opens a file for every read, so the kernel's readahead, which follows one
    /// open file, never sees a sequential reader's chunk reads as sequential.
    pub(super) fn will_need(&self, key: &str, range: Range<u64>) {
        if let Ok(file) = open_regular(&self.path(key)) {
            // SAFETY: a valid open descriptor; fadvise only schedules reads.
            unsafe {
                libc::posix_fadvise(
                    file.as_raw_fd(),
                    range.start as libc::off_t,
                    (range.end - range.start) as libc::off_t,
                    libc::POSIX_FADV_WILLNEED,
                );
            }
        }
    }

    /// Flushes `from` to disk, then renames it to `to` without replacing anything, or
    /// with `replace` swaps the two (`renameat2(RENAME_EXCHANGE)`).
    pub(super) fn publish(
        &self,
        from: &str,
        to: &str,
        replace: bool,
    ) -> Result<Published, StoreError> {
        let (from, to) = (self.path(from), self.path(to));
        sync_tree(&from)?;
        let parent = to.parent().expect("a target has a parent").to_path_buf();
        std::fs::create_dir_all(&parent).map_err(|e| StoreError::io(&parent, e))?;
        let done = match renameat2(&from, &to, libc::RENAME_NOREPLACE) {
            Ok(()) => Published::New,
            Err(e)
                if e.raw_os_error() == Some(libc::EEXIST)
                    || e.raw_os_error() == Some(libc::ENOTEMPTY) =>
            {
                if !replace {
                    return Ok(Published::Exists);
                }
                renameat2(&from, &to, libc::RENAME_EXCHANGE).map_err(|e| StoreError::io(&to, e))?;
                Published::Replaced
            }
            Err(e) => return Err(StoreError::io(&to, e)),
        };
        fsync_dir(&parent).map_err(|e| StoreError::io(&parent, e))?;
        Ok(done)
    }
}

/// Raises the soft limit on open files to the hard limit.
/// `path` opened for reading if it is a regular file. Anything else where an object
/// should be is an error (`EISDIR` for a directory) — and never a wait: opening a FIFO
/// would block until a writer came, a device could be read forever.
fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let md = f.metadata()?;
    if md.is_dir() {
        return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
    }
    if !md.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(f)
}

/// The directory `path`, opened to be locked (`ENOTDIR` for anything else, without
/// waiting on a FIFO).
fn open_dir(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NONBLOCK)
        .open(path)
}

/// zarrs' `FilesystemStore`, refusing to read anything but regular files (which it
/// would open and block on or read forever, see `open_regular`).
#[derive(Debug)]
struct RegularFiles(FilesystemStore);

impl RegularFiles {
    fn check(&self, key: &StoreKey) -> Result<(), StorageError> {
        match std::fs::metadata(self.0.key_to_fspath(key)) {
            // The key, not the path: a pinned store's path is /proc/self/fd/N/….
            Ok(md) if !md.is_file() && !md.is_dir() => Err(StorageError::Other(format!(
                "{}: not a regular file",
                key.as_str()
            ))),
            _ => Ok(()),
        }
    }
}

impl ReadableStorageTraits for RegularFiles {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        self.check(key)?;
        self.0.get_partial_many(key, byte_ranges)
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        self.0.size_key(key)
    }

    fn supports_get_partial(&self) -> bool {
        self.0.supports_get_partial()
    }
}

impl WritableStorageTraits for RegularFiles {
    fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
        self.0.set(key, value)
    }

    fn set_partial_many(
        &self,
        key: &StoreKey,
        offset_values: OffsetBytesIterator,
    ) -> Result<(), StorageError> {
        self.0.set_partial_many(key, offset_values)
    }

    fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
        self.0.erase(key)
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
        self.0.erase_prefix(prefix)
    }

    fn supports_set_partial(&self) -> bool {
        self.0.supports_set_partial()
    }
}

impl ListableStorageTraits for RegularFiles {
    fn list(&self) -> Result<StoreKeys, StorageError> {
        self.0.list()
    }

    fn list_prefix(&self, prefix: &StorePrefix) -> Result<StoreKeys, StorageError> {
        self.0.list_prefix(prefix)
    }

    fn list_dir(&self, prefix: &StorePrefix) -> Result<StoreKeysPrefixes, StorageError> {
        self.0.list_dir(prefix)
    }

    fn size_prefix(&self, prefix: &StorePrefix) -> Result<u64, StorageError> {
        self.0.size_prefix(prefix)
    }
}

fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the one struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Whether process `pid` of this machine is running (signal 0 only checks).
pub(crate) fn process_running(pid: i32) -> bool {
    // SAFETY: kill with signal 0 sends nothing.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// `flock(2)` on `f`, retried when interrupted.
fn flock(f: &std::fs::File, op: libc::c_int) -> std::io::Result<()> {
    loop {
        // SAFETY: a valid open descriptor.
        if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A name part that differs between calls and processes.
pub(crate) fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}-{}", t.as_nanos(), N.fetch_add(1, Ordering::Relaxed))
}

/// Bytes used by all files under `dir`.
fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
    };
    let (f, t) = (c(from)?, c(to)?);
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD resolves them as given.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir).and_then(|f| f.sync_all())
}

/// Flushes every file and directory under `dir` to disk before it is published.
fn sync_tree(dir: &Path) -> Result<(), StoreError> {
    for e in std::fs::read_dir(dir)
        .map_err(|e| StoreError::io(dir, e))?
        .flatten()
    {
        let p = e.path();
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            sync_tree(&p)?;
        } else {
            std::fs::File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(|e| StoreError::io(&p, e))?;
        }
    }
    fsync_dir(dir).map_err(|e| StoreError::io(dir, e))
}
