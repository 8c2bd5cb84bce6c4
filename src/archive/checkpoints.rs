//! Stored decoder checkpoints (docs/FORMAT.md, "checkpoints"): portable decoder-state
//! snapshots taken just before given packets, with the fingerprint of the decoder build
//! that made them and a digest per snapshot.
//!
//! This layer stores and verifies bytes; making and restoring states is the codec's job.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use zarrs::array::{Array, ArrayBuilder, codec::ZstdCodec, data_type};
use zarrs::filesystem::FilesystemStore;
use zarrs::group::GroupBuilder;

use super::{ATTR_KEY, ArchiveError};

/// The decoder build a set of states belongs to; states are only restored when every
/// field equals the running decoder's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// `opus_get_version_string()`.
    pub libopus: String,
    /// `opus_decoder_get_size(channels)`.
    pub state_size: u64,
    /// `sizeof(silk_decoder_state)` as compiled.
    pub silk_state_size: u64,
    /// CPU architecture and OS of the build.
    pub target: String,
    /// libopus's run-time CPU dispatch level.
    pub arch: i64,
    /// Hash of a fixed decode with a save/restore in the middle.
    pub selftest: String,
    /// The multistream layout (channel mapping family 1) the states were made for.
    /// Absent for single-stream decoders (family 0), so mono and stereo fingerprints
    /// are those of format version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<MultistreamLayout>,
}

/// A multistream decoder's layout as in its OpusHead. Different layouts can have states
/// of equal size (the size depends on the stream counts only), so the fingerprint
/// names the layout itself: a state never restores into another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultistreamLayout {
    pub family: u8,
    pub streams: u8,
    pub coupled_streams: u8,
    /// The OpusHead's channel mapping table, one entry per output channel.
    pub mapping: Vec<u8>,
}

/// Where one checkpoint sits in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointRow {
    /// Index of the audio packet the state precedes.
    pub packet: u64,
    /// Decoder output samples before that packet (pre-skip included).
    pub sample: u64,
    /// SHA-256 over packet (u64 LE), sample (u64 LE) and the state bytes.
    pub digest: [u8; 32],
}

pub fn state_digest(packet: u64, sample: u64, state: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(packet.to_le_bytes());
    h.update(sample.to_le_bytes());
    h.update(state);
    h.finalize().into()
}

/// Snapshots per shard file: a shard holds this many zstd-compressed states.
const STATES_PER_SHARD: u64 = 64;
const ZSTD_LEVEL: i32 = 9;

fn zarr_path(rel: &str, leaf: &str) -> String {
    if rel.is_empty() {
        format!("/{leaf}")
    } else {
        format!("/{rel}/{leaf}")
    }
}

/// The checkpoints of one recording as stored.
pub struct StoredCheckpoints {
    pub fingerprint: Fingerprint,
    /// Nominal spacing in decoder output samples.
    pub interval: u64,
    pub rows: Vec<CheckpointRow>,
    states: Option<Array<FilesystemStore>>,
    dir: PathBuf,
}

impl StoredCheckpoints {
    /// Reads the table of the `checkpoints` group under `rel` (a recording path);
    /// `Ok(None)` when the recording has none.
    pub fn load(
        store: &Arc<FilesystemStore>,
        root: &Path,
        rel: &str,
    ) -> Result<Option<Self>, ArchiveError> {
        let dir = root.join(rel).join("checkpoints");
        if !dir.join("zarr.json").exists() {
            return Ok(None);
        }
        let group = zarrs::group::Group::open(store.clone(), &zarr_path(rel, "checkpoints"))
            .map_err(|e| ArchiveError::zarr(&dir, e))?;
        let a = group
            .attributes()
            .get(ATTR_KEY)
            .ok_or_else(|| ArchiveError::metadata(&dir, "no zarr_wavfs attribute"))?;
        let fingerprint: Fingerprint =
            serde_json::from_value(a.get("fingerprint").cloned().unwrap_or_default())
                .map_err(|e| ArchiveError::metadata(&dir, format!("fingerprint: {e}")))?;
        let interval = a.get("interval").and_then(|v| v.as_u64()).unwrap_or(0);
        let count = a
            .get("count")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| ArchiveError::metadata(&dir, "no count"))?;
        if count == 0 {
            return Ok(Some(StoredCheckpoints {
                fingerprint,
                interval,
                rows: Vec::new(),
                states: None,
                dir,
            }));
        }
        let open = |leaf: &str| {
            Array::open(
                store.clone(),
                &zarr_path(rel, &format!("checkpoints/{leaf}")),
            )
            .map_err(|e| ArchiveError::zarr(dir.join(leaf), e))
        };
        let positions = open("positions")?;
        let digests = open("digests")?;
        let states = open("states")?;
        if positions.shape() != [count, 2]
            || digests.shape() != [count, 32]
            || states.shape() != [count, fingerprint.state_size]
        {
            return Err(ArchiveError::damaged(
                &dir,
                "array shapes do not match the checkpoint count",
            ));
        }
        let pos: Vec<i64> = positions
            .retrieve_array_subset(&[0..count, 0..2])
            .map_err(|e| ArchiveError::zarr(dir.join("positions"), e))?;
        let dig: Vec<u8> = digests
            .retrieve_array_subset(&[0..count, 0..32])
            .map_err(|e| ArchiveError::zarr(dir.join("digests"), e))?;
        let rows = pos
            .chunks_exact(2)
            .zip(dig.chunks_exact(32))
            .map(|(p, d)| CheckpointRow {
                packet: p[0] as u64,
                sample: p[1] as u64,
                digest: d.try_into().expect("32 bytes"),
            })
            .collect();
        Ok(Some(StoredCheckpoints {
            fingerprint,
            interval,
            rows,
            states: Some(states),
            dir,
        }))
    }

    /// The portable state of checkpoint `j`, verified against its digest.
    pub fn state(&self, j: usize) -> Result<Vec<u8>, ArchiveError> {
        let row = self
            .rows
            .get(j)
            .ok_or_else(|| ArchiveError::damaged(&self.dir, format!("no checkpoint {j}")))?;
        let states = self.states.as_ref().expect("rows imply states");
        let size = self.fingerprint.state_size;
        let j = j as u64;
        let bytes: Vec<u8> = states
            .retrieve_array_subset(&[j..j + 1, 0..size])
            .map_err(|e| ArchiveError::zarr(self.dir.join("states"), e))?;
        if state_digest(row.packet, row.sample, &bytes) != row.digest {
            return Err(ArchiveError::damaged(
                &self.dir,
                format!("checkpoint {j} does not match its digest"),
            ));
        }
        Ok(bytes)
    }

    /// Total bytes the checkpoints group occupies on disk.
    pub fn disk_bytes(&self) -> u64 {
        super::store::dir_size(&self.dir)
    }
}

/// Writes a `checkpoints` group into the Zarr hierarchy rooted at `dir` (the group itself
/// is `dir`), state by state, so a long recording never holds all states in memory.
pub struct CheckpointWriter {
    store: Arc<FilesystemStore>,
    dir: PathBuf,
    rows: Vec<(u64, u64)>,
    digests: Vec<u8>,
    pending: Vec<u8>,
    written: u64,
    state_size: u64,
    states: Option<Array<FilesystemStore>>,
}

impl CheckpointWriter {
    /// `rows` are the (packet, sample) positions that `push` will be called for, in order.
    pub fn create(
        dir: &Path,
        fingerprint: &Fingerprint,
        interval: u64,
        rows: Vec<(u64, u64)>,
    ) -> Result<Self, ArchiveError> {
        std::fs::create_dir_all(dir).map_err(|e| ArchiveError::io(dir, e))?;
        let store = Arc::new(FilesystemStore::new(dir).map_err(|e| ArchiveError::zarr(dir, e))?);
        let count = rows.len() as u64;
        let mut attrs = serde_json::Map::new();
        attrs.insert(
            ATTR_KEY.into(),
            json!({"kind": "checkpoints", "fingerprint": fingerprint, "interval": interval, "count": count}),
        );
        GroupBuilder::new()
            .attributes(attrs)
            .build(store.clone(), "/")
            .and_then(|g| g.store_metadata().map_err(Into::into))
            .map_err(|e| ArchiveError::zarr(dir, e))?;
        let state_size = fingerprint.state_size;
        let mut w = CheckpointWriter {
            store,
            dir: dir.to_path_buf(),
            rows,
            digests: Vec::new(),
            pending: Vec::new(),
            written: 0,
            state_size,
            states: None,
        };
        if count > 0 {
            let zstd = Arc::new(ZstdCodec::new(ZSTD_LEVEL, false));
            let states = ArrayBuilder::new(
                vec![count, state_size],
                vec![STATES_PER_SHARD, state_size],
                data_type::uint8(),
                0u8,
            )
            .subchunk_shape(vec![1, state_size])
            .bytes_to_bytes_codecs(vec![zstd])
            .build(w.store.clone(), "/states")
            .map_err(|e| ArchiveError::zarr(dir, e))?;
            states
                .store_metadata()
                .map_err(|e| ArchiveError::zarr(dir, e))?;
            w.states = Some(states);
        }
        Ok(w)
    }

    /// Adds the state for the next row.
    pub fn push(&mut self, state: &[u8]) -> Result<(), ArchiveError> {
        let i = (self.written + self.pending.len() as u64 / self.state_size) as usize;
        let (packet, sample) = *self.rows.get(i).ok_or_else(|| {
            ArchiveError::damaged(&self.dir, "more checkpoint states than planned")
        })?;
        if state.len() as u64 != self.state_size {
            return Err(ArchiveError::damaged(
                &self.dir,
                "checkpoint state has the wrong size",
            ));
        }
        self.digests
            .extend_from_slice(&state_digest(packet, sample, state));
        self.pending.extend_from_slice(state);
        if self.pending.len() as u64 == STATES_PER_SHARD * self.state_size {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ArchiveError> {
        let n = self.pending.len() as u64 / self.state_size;
        if n == 0 {
            return Ok(());
        }
        let states = self
            .states
            .as_ref()
            .expect("states array exists when rows do");
        let (a, b) = (self.written, self.written + n);
        states
            .store_array_subset(
                &[a..b, 0..self.state_size],
                std::mem::take(&mut self.pending),
            )
            .map_err(|e| ArchiveError::zarr(self.dir.join("states"), e))?;
        self.written = b;
        Ok(())
    }

    /// Writes the remaining states and the position and digest tables.
    pub fn finish(mut self) -> Result<(), ArchiveError> {
        self.flush()?;
        let count = self.rows.len() as u64;
        if self.written != count {
            return Err(ArchiveError::damaged(
                &self.dir,
                format!("{} of {count} checkpoint states written", self.written),
            ));
        }
        if count == 0 {
            return Ok(());
        }
        let zstd = || {
            Arc::new(ZstdCodec::new(ZSTD_LEVEL, false))
                as Arc<dyn zarrs::array::BytesToBytesCodecTraits>
        };
        let positions: Vec<i64> = self
            .rows
            .iter()
            .flat_map(|&(p, s)| [p as i64, s as i64])
            .collect();
        let pa = ArrayBuilder::new(vec![count, 2], vec![count, 2], data_type::int64(), 0i64)
            .bytes_to_bytes_codecs(vec![zstd()])
            .build(self.store.clone(), "/positions")
            .map_err(|e| ArchiveError::zarr(&self.dir, e))?;
        pa.store_metadata()
            .map_err(|e| ArchiveError::zarr(&self.dir, e))?;
        pa.store_chunk(&[0, 0], positions)
            .map_err(|e| ArchiveError::zarr(&self.dir, e))?;
        let da = ArrayBuilder::new(vec![count, 32], vec![count, 32], data_type::uint8(), 0u8)
            .build(self.store.clone(), "/digests")
            .map_err(|e| ArchiveError::zarr(&self.dir, e))?;
        da.store_metadata()
            .map_err(|e| ArchiveError::zarr(&self.dir, e))?;
        da.store_chunk(&[0, 0], std::mem::take(&mut self.digests))
            .map_err(|e| ArchiveError::zarr(&self.dir, e))?;
        Ok(())
    }
}
