//! Zarr access for one archive: group attributes, and a recording's arrays, all
//! through the archive's [`Store`].

use std::ops::Range;
use std::time::SystemTime;

use zarrs::array::Array;
use zarrs::storage::ReadableWritableListableStorageTraits;

use super::checkpoints::StoredCheckpoints;
use super::index::{self, PageIndex, PageRow};
use super::ogg::{PacketAssembler, page_len, parse_page};
use super::opus_head::OpusHead;
use super::samples::SamplesReader;
use super::{ArchiveError, RecordingMeta};
use crate::store::{Location, Store};

type Attrs = serde_json::Map<String, serde_json::Value>;

/// How far past a hinted range a remote store's read-ahead reaches: 8 chunks of
/// `stream` keep about 8 MiB in flight, a 20 ms round trip at 3 Gbit/s.
const REMOTE_READ_AHEAD: u64 = 8 << 20;

/// The bytes read for a stream's first page (see `read_opus_head`): the largest page
/// header, 27 bytes and a table of 255 segments.
const OPUS_HEAD_READ: u64 = 27 + 255;

/// The bytes hinted for a FLAC stream's metadata blocks, which `FlacSource::open`
/// reads up to the first frame (STREAMINFO alone as we write them; padding or
/// pictures in a FLAC file imported as it is).
const FLAC_HEAD_READ: u64 = 64 << 10;

/// The objects opening a recording of `codec` at `path` reads, none of which depends
/// on another: array metadata, and the single chunk of the small arrays (keys as
/// written, docs/FORMAT.md; another layout only makes the prefetch miss).
fn open_keys(path: &str, codec: &str) -> Vec<String> {
    let arrays: &[&str] = match codec {
        "pcm" => &["samples/zarr.json", "chunk_crc32c/zarr.json"],
        "flac" => &["stream/zarr.json", "index/zarr.json", "index/c/0/0"],
        _ => &[
            "stream/zarr.json",
            "index/zarr.json",
            "index/c/0/0",
            "checkpoints/zarr.json",
            "checkpoints/positions/zarr.json",
            "checkpoints/positions/c/0/0",
            "checkpoints/digests/zarr.json",
            "checkpoints/digests/c/0/0",
            "checkpoints/states/zarr.json",
        ],
    };
    arrays.iter().map(|a| format!("{path}/{a}")).collect()
}

/// `rel` below `prefix` ("" is the store's root).
fn join_key(prefix: &str, rel: &str) -> String {
    if prefix.is_empty() {
        rel.to_string()
    } else {
        format!("{prefix}/{rel}")
    }
}

/// A zarrs array in any store.
pub(crate) type StoreArray = Array<dyn ReadableWritableListableStorageTraits>;

pub(crate) fn zarr_path(rel: &str) -> String {
    format!("/{}", rel.trim_matches('/'))
}

/// What a `zarr.json` says a node is.
pub(crate) enum Node {
    /// A Zarr v3 group, with its attributes.
    Group(Attrs),
    /// No `zarr.json` there.
    Missing,
    /// An array, or something that is not Zarr v3.
    Other,
}

fn key_of(rel: &str) -> String {
    let rel = rel.trim_matches('/');
    if rel.is_empty() {
        "zarr.json".into()
    } else {
        format!("{rel}/zarr.json")
    }
}

/// The node at archive-relative `rel`, from its `zarr.json` (one read).
pub(crate) fn read_group_attrs(store: &Store, rel: &str) -> Result<Node, ArchiveError> {
    Ok(read_node(store, rel)?.0)
}

/// The node at `rel` and when its `zarr.json` was written (the epoch when missing).
pub(crate) fn read_node(store: &Store, rel: &str) -> Result<(Node, SystemTime), ArchiveError> {
    let key = key_of(rel);
    let Some(obj) = store.get(&key)? else {
        return Ok((Node::Missing, SystemTime::UNIX_EPOCH));
    };
    let v: serde_json::Value = serde_json::from_slice(&obj.bytes)
        .map_err(|e| ArchiveError::zarr(store.location(&key), format!("not JSON: {e}")))?;
    let is = |k: &str, want: serde_json::Value| v.get(k) == Some(&want);
    if !is("zarr_format", 3.into()) || !is("node_type", "group".into()) {
        return Ok((Node::Other, obj.modified));
    }
    let attrs = match v.get("attributes") {
        Some(serde_json::Value::Object(m)) => m.clone(),
        _ => Attrs::new(),
    };
    Ok((Node::Group(attrs), obj.modified))
}

/// The bytes of a group's `zarr.json` with `attrs`.
pub(crate) fn group_json(attrs: Attrs) -> Vec<u8> {
    let meta = zarrs::metadata::v3::GroupMetadataV3::new().with_attributes(attrs);
    serde_json::to_vec_pretty(&meta).expect("group metadata serialises")
}

/// Writes a group's `zarr.json` at `rel` so that a reader never sees a half-written
/// one (a sibling temporary file renamed over it locally; one PUT remotely).
pub(crate) fn write_group(store: &Store, rel: &str, attrs: Attrs) -> Result<(), ArchiveError> {
    store.put_atomic(&key_of(rel), group_json(attrs).into())?;
    Ok(())
}

/// Random access to the bytes of a recording's `stream` array.
pub trait StreamBytes: Send + Sync {
    fn read(&self, range: Range<u64>) -> Result<Vec<u8>, ArchiveError>;

    /// Hints that `range` will be read soon, so the system can start reading it from
    /// disk now, in the background. Only a hint: nothing is checked or reported.
    fn will_need(&self, _range: Range<u64>) {}

    /// Hints that `range` is about to be read in parts, one after another (a warm-up
    /// and the span after it): fetched whole at once, and nothing beyond it (unlike
    /// `will_need`, which a sequential reader gives).
    fn will_read(&self, _range: Range<u64>) {}
}

impl StreamBytes for Vec<u8> {
    fn read(&self, range: Range<u64>) -> Result<Vec<u8>, ArchiveError> {
        let len = self.len() as u64;
        Ok(self[range.start.min(len) as usize..range.end.min(len) as usize].to_vec())
    }
}

/// A recording opened for reading: metadata plus handles on its arrays.
///
/// In a local archive the recording's directory is pinned (see `Store::pin`): its
/// keys are then relative to it (`prefix` is empty), and reads go on reaching this
/// version of the recording after another process replaces or removes it.
pub struct RecordingStore {
    store: Store,
    /// Where the recording's keys start in `store`.
    prefix: String,
    /// Archive-relative path.
    path: String,
    meta: RecordingMeta,
    /// The `stream` array (Opus and FLAC; PCM recordings have none).
    stream: Option<StoreArray>,
}

impl RecordingStore {
    pub(crate) fn open(
        store: Store,
        prefix: &str,
        path: &str,
        meta: RecordingMeta,
    ) -> Result<Self, ArchiveError> {
        let dir = store.location(prefix);
        // A remote store fetches all that opening needs at once, not one after another.
        store.prefetch(&open_keys(prefix, &meta.codec));
        let head = match meta.codec.as_str() {
            "pcm" => 0,
            "flac" => FLAC_HEAD_READ,
            _ => OPUS_HEAD_READ,
        };
        if store.local_root().is_none() && head > 0 {
            store.will_need(
                &join_key(prefix, "stream/c/0"),
                0..head.min(meta.stream_bytes),
            );
        }
        let stream = if meta.codec == "pcm" {
            None
        } else {
            let stream = Array::open(store.zarr(), &zarr_path(&join_key(prefix, "stream")))
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
            store,
            prefix: prefix.to_string(),
            path: path.to_string(),
            meta,
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

    /// Where the recording is (for messages).
    pub fn dir(&self) -> Location {
        self.store.location(&self.prefix)
    }

    /// The store the recording is read from (see `key`).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The key in `store` of `rel` inside the recording (`checkpoints`).
    pub fn key(&self, rel: &str) -> String {
        join_key(&self.prefix, rel)
    }

    /// The recording's directory when the archive is on a local disk.
    pub fn local_dir(&self) -> Option<std::path::PathBuf> {
        self.store.local_root().map(|r| r.join(&self.prefix))
    }

    /// The rows of `index`, checked against the shape and digest in the metadata.
    pub fn read_index_rows(&self) -> Result<Vec<[i64; 4]>, ArchiveError> {
        let dir = self.dir().join("index");
        let n = self.meta.index_rows;
        let array = Array::open(self.store.zarr(), &zarr_path(&self.key("index")))
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
        // A page's largest header and segment table: usually the whole first page,
        // which holds only OpusHead, so one read.
        let mut bytes = self.read(0..OPUS_HEAD_READ)?;
        let len = page_len(&bytes)
            .ok_or_else(|| ArchiveError::damaged(&path, "stream ends inside its first page"))?;
        if len > bytes.len() {
            bytes = self.read(0..len as u64)?;
        }
        let page = parse_page(&bytes[..len.min(bytes.len())], 0)
            .map_err(|e| ArchiveError::damaged(&path, e.to_string()))?;
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
            self.store.zarr(),
            &self.dir(),
            &self.prefix,
            m.sample_kind(),
            m.frames,
            m.channels,
        )
    }

    /// The stored checkpoints, if any.
    pub fn read_checkpoints(&self) -> Result<Option<StoredCheckpoints>, ArchiveError> {
        StoredCheckpoints::load(&self.store, &self.prefix)
    }

    /// Bytes stored of each part: (audio, index, checkpoints). The audio is `stream`,
    /// or `samples` and its CRCs for PCM.
    pub fn disk_usage(&self) -> (u64, u64, u64) {
        let size = |a: &str| self.store.size_prefix(&self.key(a));
        (
            size("stream") + size("samples") + size("chunk_crc32c"),
            size("index"),
            size("checkpoints"),
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

    /// Tells the store which parts of which chunks hold `range`: locally the kernel
    /// starts reading them from disk; a remote store starts fetching them, and, since
    /// only a sequential reader hints, also the whole chunks up to
    /// `REMOTE_READ_AHEAD` bytes past the range, so that enough requests are in
    /// flight to cover the network's bandwidth-delay product. The offsets assume the
    /// stream's plain `bytes` codec (docs/FORMAT.md); for any other layout the hint is
    /// merely imprecise.
    fn will_need(&self, range: Range<u64>) {
        let ahead = if self.store.local_root().is_none() {
            REMOTE_READ_AHEAD
        } else {
            0
        };
        self.hint(range, ahead);
    }

    fn will_read(&self, range: Range<u64>) {
        self.hint(range, 0);
    }
}

impl RecordingStore {
    /// Hints the chunk parts holding `range`, and the whole chunks up to `ahead` bytes
    /// past it.
    fn hint(&self, range: Range<u64>, ahead: u64) {
        let Some(stream) = &self.stream else {
            return;
        };
        let Ok(shape) = stream.chunk_shape(&[0]) else {
            return;
        };
        let width = shape[0].get();
        let end = (range.end + ahead).min(self.meta.stream_bytes);
        let mut at = range.start;
        while at < end {
            let chunk = at / width;
            let (lo, hi) = (chunk * width, ((chunk + 1) * width).min(end));
            let key = stream.chunk_key(&[chunk]);
            let part = if hi > range.end {
                // Beyond what was asked: the whole chunk, one request.
                0..width.min(self.meta.stream_bytes - lo)
            } else {
                at - lo..hi - lo
            };
            self.store.will_need(key.as_str(), part);
            at = hi;
        }
    }
}
