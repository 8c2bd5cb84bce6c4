//! Writing recordings: everything is built in a staging directory inside the archive and
//! becomes visible in one `rename`, so an interrupted import leaves no half recording.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use zarrs::array::{ArrayBuilder, codec::ZstdCodec, data_type};
use zarrs::filesystem::FilesystemStore;
use zarrs::group::GroupBuilder;

use super::index::PageRow;
use super::samples::SamplesWriter;
use super::store::{unique, write_group_atomically};
use super::{Archive, ArchiveError, RecordingMeta, STAGING_DIR, SampleKind, meta};

/// Chunk length of `stream` in bytes (docs/FORMAT.md explains the choice).
pub const STREAM_CHUNK: u64 = 1 << 20;
/// Rows per chunk of `index`.
const INDEX_CHUNK_ROWS: u64 = 65_536;

/// A recording being written. Dropped without `commit`, it is removed.
pub struct StagedRecording {
    archive_root: PathBuf,
    target: String,
    dir: PathBuf,
    store: Arc<FilesystemStore>,
    committed: bool,
}

impl StagedRecording {
    /// Starts a recording that will appear at archive-relative `target`.
    pub fn new(archive: &Archive, target: &str) -> Result<Self, ArchiveError> {
        let root = archive.root().to_path_buf();
        let dir = root
            .join(STAGING_DIR)
            .join(format!("rec-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).map_err(|e| ArchiveError::io(&dir, e))?;
        let store = Arc::new(FilesystemStore::new(&dir).map_err(|e| ArchiveError::zarr(&dir, e))?);
        Ok(StagedRecording {
            archive_root: root,
            target: target.to_string(),
            dir,
            store,
            committed: false,
        })
    }

    /// Directory the recording is staged in (its future `checkpoints` go below it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the complete Ogg stream as the `stream` array.
    pub fn write_stream(&self, bytes: &[u8]) -> Result<(), ArchiveError> {
        let err = |e: &dyn std::fmt::Display| ArchiveError::zarr(self.dir.join("stream"), e);
        // A stream shorter than one chunk gets a chunk of exactly its length, so short
        // recordings do not carry a megabyte of padding each.
        let chunk = STREAM_CHUNK.min(bytes.len().max(1) as u64);
        let array = ArrayBuilder::new(
            vec![bytes.len() as u64],
            vec![chunk],
            data_type::uint8(),
            0u8,
        )
        .build(self.store.clone(), "/stream")
        .map_err(|e| err(&e))?;
        array.store_metadata().map_err(|e| err(&e))?;
        for (i, part) in bytes.chunks(chunk as usize).enumerate() {
            let mut c = part.to_vec();
            // Zarr chunks are always whole; the tail past the array's end is fill.
            c.resize(chunk as usize, 0);
            array.store_chunk(&[i as u64], c).map_err(|e| err(&e))?;
        }
        Ok(())
    }

    /// Starts the `samples` array of a PCM recording.
    pub fn samples_writer(
        &self,
        kind: SampleKind,
        channels: u16,
        chunk_frames: u64,
    ) -> Result<SamplesWriter, ArchiveError> {
        SamplesWriter::create(self.store.clone(), &self.dir, kind, channels, chunk_frames)
    }

    /// Writes an Opus page index as the `index` array.
    pub fn write_index(&self, rows: &[PageRow]) -> Result<(), ArchiveError> {
        let rows: Vec<[i64; 4]> = rows.iter().map(PageRow::to_i64).collect();
        self.write_index_rows(&rows)
    }

    /// Writes `index`: int64 rows of four columns, zstd-compressed.
    pub fn write_index_rows(&self, rows: &[[i64; 4]]) -> Result<(), ArchiveError> {
        let err = |e: &dyn std::fmt::Display| ArchiveError::zarr(self.dir.join("index"), e);
        let n = rows.len() as u64;
        let zstd = Arc::new(ZstdCodec::new(9, false));
        let array = ArrayBuilder::new(
            vec![n, 4],
            vec![INDEX_CHUNK_ROWS.min(n.max(1)), 4],
            data_type::int64(),
            0i64,
        )
        .bytes_to_bytes_codecs(vec![zstd])
        .build(self.store.clone(), "/index")
        .map_err(|e| err(&e))?;
        array.store_metadata().map_err(|e| err(&e))?;
        let flat: Vec<i64> = rows.iter().flatten().copied().collect();
        array
            .store_array_subset(&[0..n, 0..4], flat)
            .map_err(|e| err(&e))?;
        Ok(())
    }

    /// Writes the recording's group metadata and moves it into place.
    ///
    /// Refuses to replace an existing node unless `force`; with `force` the old one is
    /// swapped out atomically (`renameat2(RENAME_EXCHANGE)`) and then deleted.
    pub fn commit(mut self, meta: &RecordingMeta, force: bool) -> Result<(), ArchiveError> {
        meta.validate(&self.archive_root.join(&self.target))?;
        GroupBuilder::new()
            .attributes(meta.to_attrs())
            .build(self.store.clone(), "/")
            .map_err(|e| ArchiveError::zarr(&self.dir, e))?
            .store_metadata()
            .map_err(|e| ArchiveError::zarr(&self.dir, e))?;
        sync_tree(&self.dir)?;
        let target = self.archive_root.join(&self.target);
        ensure_folders(&self.archive_root, &self.target)?;
        match rename_noreplace(&self.dir, &target) {
            Ok(()) => {}
            Err(e)
                if e.raw_os_error() == Some(libc::EEXIST)
                    || e.raw_os_error() == Some(libc::ENOTEMPTY) =>
            {
                if !force {
                    return Err(ArchiveError::Exists { path: target });
                }
                exchange(&self.dir, &target).map_err(|e| ArchiveError::io(&target, e))?;
                // self.dir now holds the replaced node; Drop removes it.
                self.committed = false;
                fsync_dir(target.parent().expect("target has a parent"))?;
                return Ok(());
            }
            Err(e) => return Err(ArchiveError::io(&target, e)),
        }
        self.committed = true;
        fsync_dir(target.parent().expect("target has a parent"))
    }
}

impl Drop for StagedRecording {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Creates the folder groups on the way to `target` (all but its last component).
pub fn ensure_folders(root: &Path, target: &str) -> Result<(), ArchiveError> {
    let parts: Vec<&str> = target.split('/').collect();
    let mut rel = String::new();
    for part in &parts[..parts.len().saturating_sub(1)] {
        if !rel.is_empty() {
            rel.push('/');
        }
        rel.push_str(part);
        let zj = root.join(&rel).join("zarr.json");
        if zj.exists() {
            let attrs = super::store::read_group_attrs(root, &rel)?;
            if !meta::is_folder(&attrs) {
                return Err(ArchiveError::metadata(
                    root.join(&rel),
                    "exists and is not a folder",
                ));
            }
        } else {
            write_group_atomically(root, &rel, meta::folder_attrs())?;
        }
    }
    Ok(())
}

/// Removes staging directories left by imports that were killed (their process is gone).
pub fn clean_stale_staging(archive: &Archive) {
    let staging = archive.root().join(STAGING_DIR);
    let Ok(rd) = std::fs::read_dir(&staging) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').nth(1).and_then(|p| p.parse::<i32>().ok());
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let alive = pid.is_some_and(|p| unsafe { libc::kill(p, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM));
        if !alive {
            log::info!(
                "removing leftover of an interrupted import: {}",
                e.path().display()
            );
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn cpath(p: &Path) -> std::io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
}

fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> std::io::Result<()> {
    let (f, t) = (cpath(from)?, cpath(to)?);
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

/// Renames `from` to `to`, failing with EEXIST if `to` exists.
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    renameat2(from, to, libc::RENAME_NOREPLACE)
}

/// Atomically swaps two existing paths.
pub(crate) fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    renameat2(a, b, libc::RENAME_EXCHANGE)
}

fn fsync_dir(dir: &Path) -> Result<(), ArchiveError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| ArchiveError::io(dir, e))
}

/// Flushes every file and directory under `dir` to disk before it is published.
fn sync_tree(dir: &Path) -> Result<(), ArchiveError> {
    for e in std::fs::read_dir(dir)
        .map_err(|e| ArchiveError::io(dir, e))?
        .flatten()
    {
        let p = e.path();
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            sync_tree(&p)?;
        } else {
            std::fs::File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(|e| ArchiveError::io(&p, e))?;
        }
    }
    fsync_dir(dir)
}
