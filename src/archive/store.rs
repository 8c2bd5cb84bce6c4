//! Zarr access for one archive: group attributes, and a recording's arrays.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zarrs::array::Array;
use zarrs::filesystem::FilesystemStore;
use zarrs::group::{Group, GroupBuilder};

use super::checkpoints::StoredCheckpoints;
use super::index::{self, PageIndex, PageRow};
use super::ogg::{PacketAssembler, page_len, parse_page};
use super::opus_head::OpusHead;
use super::samples::SamplesReader;
use super::{ArchiveError, RecordingMeta};

type Attrs = serde_json::Map<String, serde_json::Value>;

fn zarr_path(rel: &str) -> String {
    format!("/{rel}")
}

fn open_store(root: &Path) -> Result<Arc<FilesystemStore>, ArchiveError> {
    Ok(Arc::new(
        FilesystemStore::new(root).map_err(|e| ArchiveError::zarr(root, e))?,
    ))
}

/// The attributes of the group at archive-relative `rel`.
pub(crate) fn read_group_attrs(root: &Path, rel: &str) -> Result<Attrs, ArchiveError> {
    let dir = root.join(rel);
    // Read zarr.json ourselves first so a missing or unreadable file is an I/O error
    // naming the file, not a generic Zarr one.
    std::fs::metadata(dir.join("zarr.json"))
        .map_err(|e| ArchiveError::io(dir.join("zarr.json"), e))?;
    let store = open_store(root)?;
    let group = Group::open(store, &zarr_path(rel)).map_err(|e| ArchiveError::zarr(&dir, e))?;
    Ok(group.attributes().clone())
}

/// Whether the node at `rel` is a Zarr array (its `zarr.json` says `node_type: array`).
pub(crate) fn is_array(root: &Path, rel: &str) -> bool {
    std::fs::read(root.join(rel).join("zarr.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v.get("node_type").and_then(|t| t.as_str()) == Some("array"))
}

/// Writes a group's `zarr.json` at `dir/rel` by writing a sibling temporary file and
/// renaming it over, so a reader never sees a half-written file.
pub(crate) fn write_group_atomically(
    root: &Path,
    rel: &str,
    attrs: Attrs,
) -> Result<(), ArchiveError> {
    let dir = root.join(rel);
    let tmp =
        root.join(super::STAGING_DIR)
            .join(format!("group-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&tmp).map_err(|e| ArchiveError::io(&tmp, e))?;
    let store = open_store(&tmp)?;
    GroupBuilder::new()
        .attributes(attrs)
        .build(store, "/")
        .map_err(|e| ArchiveError::zarr(&dir, e))?
        .store_metadata()
        .map_err(|e| ArchiveError::zarr(&dir, e))?;
    std::fs::create_dir_all(&dir).map_err(|e| ArchiveError::io(&dir, e))?;
    let res = std::fs::rename(tmp.join("zarr.json"), dir.join("zarr.json"))
        .map_err(|e| ArchiveError::io(&dir, e));
    let _ = std::fs::remove_dir_all(&tmp);
    res
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
pub(crate) fn dir_size(dir: &Path) -> u64 {
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

/// Random access to the bytes of a recording's `stream` array.
pub trait StreamBytes: Send + Sync {
    fn read(&self, range: Range<u64>) -> Result<Vec<u8>, ArchiveError>;

    /// Hints that `range` will be read soon, so the system can start reading it from
    /// disk now, in the background. Only a hint: nothing is checked or reported.
    fn will_need(&self, _range: Range<u64>) {}
}

impl StreamBytes for Vec<u8> {
    fn read(&self, range: Range<u64>) -> Result<Vec<u8>, ArchiveError> {
        let len = self.len() as u64;
        Ok(self[range.start.min(len) as usize..range.end.min(len) as usize].to_vec())
    }
}

/// A recording opened for reading: metadata plus handles on its arrays.
pub struct RecordingStore {
    root: PathBuf,
    path: String,
    meta: RecordingMeta,
    store: Arc<FilesystemStore>,
    /// The `stream` array (Opus and FLAC; PCM recordings have none).
    stream: Option<Array<FilesystemStore>>,
}

impl RecordingStore {
    pub(crate) fn open(root: &Path, path: &str, meta: RecordingMeta) -> Result<Self, ArchiveError> {
        let store = open_store(root)?;
        let dir = root.join(path);
        let stream = if meta.codec == "pcm" {
            None
        } else {
            let stream = Array::open(store.clone(), &zarr_path(&format!("{path}/stream")))
                .map_err(|e| ArchiveError::zarr(dir.join("stream"), e))?;
            if stream.shape() != [meta.stream_bytes] {
                return Err(ArchiveError::damaged(
                    dir.join("stream"),
                    format!(
                        "stream has shape {:?}, metadata says {} bytes",
                        stream.shape(),
                        meta.stream_bytes
                    ),
                ));
            }
            Some(stream)
        };
        Ok(RecordingStore {
            root: root.to_path_buf(),
            path: path.to_string(),
            meta,
            store,
            stream,
        })
    }

    pub fn meta(&self) -> &RecordingMeta {
        &self.meta
    }

    /// Archive-relative path of the recording.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// File system directory of the recording.
    pub fn dir(&self) -> PathBuf {
        self.root.join(&self.path)
    }

    /// The rows of `index`, checked against the shape and digest in the metadata.
    pub fn read_index_rows(&self) -> Result<Vec<[i64; 4]>, ArchiveError> {
        let dir = self.dir().join("index");
        let n = self.meta.index_rows;
        let array = Array::open(
            self.store.clone(),
            &zarr_path(&format!("{}/index", self.path)),
        )
        .map_err(|e| ArchiveError::zarr(&dir, e))?;
        if array.shape() != [n, 4] {
            return Err(ArchiveError::damaged(
                &dir,
                format!("index has shape {:?}, expected [{n}, 4]", array.shape()),
            ));
        }
        let v: Vec<i64> = array
            .retrieve_array_subset(&[0..n, 0..4])
            .map_err(|e| ArchiveError::zarr(&dir, e))?;
        let rows: Vec<[i64; 4]> = v
            .chunks_exact(4)
            .map(|c| c.try_into().expect("chunks of 4"))
            .collect();
        if index::digest_rows(rows.iter().copied()) != self.meta.index_sha256 {
            return Err(ArchiveError::damaged(
                &dir,
                "index does not match its SHA-256 in the recording's metadata",
            ));
        }
        Ok(rows)
    }

    /// The page index of an Opus recording, checked against the metadata.
    pub fn read_index(&self) -> Result<PageIndex, ArchiveError> {
        let rows: Vec<PageRow> = self
            .read_index_rows()?
            .iter()
            .map(|r| PageRow::from_i64(r))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                ArchiveError::damaged(self.dir().join("index"), "negative value in index")
            })?;
        Ok(PageIndex::new(rows, self.meta.stream_bytes))
    }

    /// The OpusHead of an Opus recording: the first packet, alone on the stream's first
    /// page (RFC 7845 §3), read without the rest of the stream. Decoders need its
    /// channel mapping, which the metadata does not repeat.
    pub fn read_opus_head(&self) -> Result<OpusHead, ArchiveError> {
        let path = self.dir().join("stream");
        let header = self.read(0..27 + 255)?;
        let len = page_len(&header)
            .ok_or_else(|| ArchiveError::damaged(&path, "stream ends inside its first page"))?;
        let bytes = self.read(0..len as u64)?;
        let page =
            parse_page(&bytes, 0).map_err(|e| ArchiveError::damaged(&path, e.to_string()))?;
        let mut first = None;
        let Ok(()) = PacketAssembler::new().push::<std::convert::Infallible>(&page, |p| {
            first.get_or_insert_with(|| p.to_vec());
            Ok(())
        });
        let packet = first.ok_or_else(|| {
            ArchiveError::damaged(&path, "no packet ends on the first page (OpusHead)")
        })?;
        OpusHead::parse(&packet).map_err(|e| ArchiveError::damaged(&path, e.to_string()))
    }

    /// The `samples` array of a PCM recording.
    pub fn samples(&self) -> Result<SamplesReader, ArchiveError> {
        let m = &self.meta;
        SamplesReader::open(
            self.store.clone(),
            &self.dir(),
            &self.path,
            m.sample_kind(),
            m.frames,
            m.channels,
        )
    }

    /// The stored checkpoints, if any.
    pub fn read_checkpoints(&self) -> Result<Option<StoredCheckpoints>, ArchiveError> {
        StoredCheckpoints::load(&self.store, &self.root, &self.path)
    }

    /// Bytes used on disk by each part: (audio, index, checkpoints). The audio is
    /// `stream`, or `samples` and its CRCs for PCM.
    pub fn disk_usage(&self) -> (u64, u64, u64) {
        let d = self.dir();
        (
            dir_size(&d.join("stream"))
                + dir_size(&d.join("samples"))
                + dir_size(&d.join("chunk_crc32c")),
            dir_size(&d.join("index")),
            dir_size(&d.join("checkpoints")),
        )
    }
}

impl StreamBytes for RecordingStore {
    // `[a..b]` is a one-dimensional array subset here, not a mistaken range literal.
    #[allow(clippy::single_range_in_vec_init)]
    fn read(&self, range: Range<u64>) -> Result<Vec<u8>, ArchiveError> {
        let end = range.end.min(self.meta.stream_bytes);
        if range.start >= end {
            return Ok(Vec::new());
        }
        let Some(stream) = &self.stream else {
            return Ok(Vec::new());
        };
        stream
            .retrieve_array_subset(&[range.start..end])
            .map_err(|e| ArchiveError::zarr(self.dir().join("stream"), e))
    }

    /// `posix_fadvise(WILLNEED)` on the parts of the chunk files that hold `range`.
    /// zarrs opens a chunk file for every read, so the kernel's readahead, which
    /// follows one open file, never sees the reads as sequential: without the hint a
    /// sequential reader waits on a small synchronous disk read for every span. The
    /// offsets assume the stream's plain `bytes` codec (docs/FORMAT.md); for any other
    /// layout the hint is merely imprecise.
    fn will_need(&self, range: Range<u64>) {
        let end = range.end.min(self.meta.stream_bytes);
        let Some(stream) = &self.stream else {
            return;
        };
        let Ok(shape) = stream.chunk_shape(&[0]) else {
            return;
        };
        let width = shape[0].get();
        let mut at = range.start;
        while at < end {
            let chunk = at / width;
            let (lo, hi) = (chunk * width, ((chunk + 1) * width).min(end));
            let path = self.store.key_to_fspath(&stream.chunk_key(&[chunk]));
            if let Ok(file) = std::fs::File::open(path) {
                use std::os::fd::AsRawFd;
                // SAFETY: a valid open descriptor; fadvise only schedules reads.
                unsafe {
                    libc::posix_fadvise(
                        file.as_raw_fd(),
                        (at - lo) as libc::off_t,
                        (hi - at) as libc::off_t,
                        libc::POSIX_FADV_WILLNEED,
                    );
                }
            }
            at = hi;
        }
    }
}
