//! Stored decoder checkpoints (docs/FORMAT.md, "checkpoints"): portable decoder-state
//! snapshots taken just before given packets, with the fingerprint of the decoder build
//! that made them and a digest per snapshot.
//!
//! Two encodings. `full` (format versions 1 and 2) stores each state as it is.
//! `seeded` (version 3) stores a *seed* per checkpoint, the state `warmup_packets`
//! packets earlier with its signal history zeroed, and a *residual*, the true state
//! XOR the state reached by decoding those packets from the seed; the residual is
//! nearly always zero, so a checkpoint takes about 400 bytes instead of 8 KiB.
//!
//! This layer stores bytes and checks digests; making and restoring states is the
//! codec's job.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use zarrs::array::codec::ZstdCodec;
use zarrs::array::{
    Array, ArrayBuilder, ArrayShardedReadableExt, ArrayShardedReadableExtCache, CodecOptions,
    data_type,
};

use super::store::{Node, StoreArray, read_group_attrs, write_group};
use super::{ATTR_KEY, ArchiveError};
use crate::store::{Location, Store};

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
/// Upper bound on `warmup_packets` a reader accepts: a damaged attribute must not make
/// every restore decode minutes of audio.
pub const MAX_WARMUP_PACKETS: u64 = 1000;

/// How the states of a `checkpoints` group are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Each row of `states` is the whole state.
    Full,
    /// Each row of `states` is a seed followed by a residual, both of the state's size;
    /// the seed is the state `warmup_packets` packets before the checkpoint (or at
    /// packet 0), with its signal history zeroed.
    Seeded { warmup_packets: u64 },
}

/// One stored checkpoint as read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredState {
    /// The whole state, already checked against its digest.
    Full(Vec<u8>),
    /// Decode packets `from_packet..` up to the checkpoint's packet from `seed`, XOR
    /// the state reached with `residual`, and check the result with
    /// `StoredCheckpoints::check`.
    Seeded {
        seed: Vec<u8>,
        residual: Vec<u8>,
        from_packet: u64,
    },
}

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
    pub encoding: Encoding,
    pub rows: Vec<CheckpointRow>,
    /// The `states` array and its shard indexes as read so far: each is read once,
    /// not again for every state of its shard.
    states: Option<(StoreArray, ArrayShardedReadableExtCache)>,
    dir: Location,
    store: Store,
    rel: String,
}

/// Bytes per row of `states` for a state of `size` bytes (saturating: a damaged
/// `state_size` then fails the shape check instead of overflowing).
fn row_bytes(encoding: Encoding, size: u64) -> u64 {
    match encoding {
        Encoding::Full => size,
        Encoding::Seeded { .. } => size.saturating_mul(2),
    }
}

impl StoredCheckpoints {
    /// Reads the table of the `checkpoints` group under `rel` (a recording path);
    /// `Ok(None)` when the recording has none.
    pub fn load(store: &Store, rel: &str) -> Result<Option<Self>, ArchiveError> {
        let group_rel = zarr_path(rel, "checkpoints");
        let dir = store.location(&group_rel);
        let attrs = match read_group_attrs(store, &group_rel)? {
            Node::Group(attrs) => attrs,
            Node::Missing => return Ok(None),
            Node::Other => {
                return Err(ArchiveError::damaged(&dir, "checkpoints is not a group"));
            }
        };
        let a = attrs
            .get(ATTR_KEY)
            .ok_or_else(|| ArchiveError::metadata(&dir, "no zarr_wavfs attribute"))?;
        let fingerprint: Fingerprint =
            serde_json::from_value(a.get("fingerprint").cloned().unwrap_or_default())
                .map_err(|e| ArchiveError::metadata(&dir, format!("fingerprint: {e}")))?;
        let interval = a.get("interval").and_then(|v| v.as_u64()).unwrap_or(0);
        let encoding = match a.get("encoding").and_then(|v| v.as_str()) {
            None | Some("full") => Encoding::Full,
            Some("seeded") => match a.get("warmup_packets").and_then(|v| v.as_u64()) {
                Some(w) if (1..=MAX_WARMUP_PACKETS).contains(&w) => {
                    Encoding::Seeded { warmup_packets: w }
                }
                _ => {
                    return Err(ArchiveError::damaged(
                        &dir,
                        format!(
                            "seeded checkpoints need warmup_packets in 1..={MAX_WARMUP_PACKETS}"
                        ),
                    ));
                }
            },
            Some(other) => {
                return Err(ArchiveError::metadata(
                    &dir,
                    format!("unknown checkpoint encoding {other:?}"),
                ));
            }
        };
        let count = a
            .get("count")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| ArchiveError::metadata(&dir, "no count"))?;
        if count == 0 {
            return Ok(Some(StoredCheckpoints {
                fingerprint,
                interval,
                encoding,
                rows: Vec::new(),
                states: None,
                dir,
                store: store.clone(),
                rel: group_rel,
            }));
        }
        let open = |leaf: &str| {
            Array::open(
                store.zarr(),
                &zarr_path(rel, &format!("checkpoints/{leaf}")),
            )
            .map_err(|e| ArchiveError::zarr(dir.join(leaf), e))
        };
        let positions = open("positions")?;
        let digests = open("digests")?;
        let states = open("states")?;
        if positions.shape() != [count, 2]
            || digests.shape() != [count, 32]
            || states.shape() != [count, row_bytes(encoding, fingerprint.state_size)]
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
            encoding,
            rows,
            states: Some({
                let shard_indexes = ArrayShardedReadableExtCache::new(&states);
                (states, shard_indexes)
            }),
            dir,
            store: store.clone(),
            rel: group_rel,
        }))
    }

    /// Checkpoint `j` as stored; a `Full` state is checked against its digest here.
    pub fn state(&self, j: usize) -> Result<StoredState, ArchiveError> {
        let row = self
            .rows
            .get(j)
            .ok_or_else(|| ArchiveError::damaged(&self.dir, format!("no checkpoint {j}")))?;
        let (states, shard_indexes) = self.states.as_ref().expect("rows imply states");
        let size = self.fingerprint.state_size;
        let i = j as u64;
        // A shard is small: a remote store fetches it whole (once in a while), and its
        // index and then the state come from there, not in two requests in a row.
        if let Ok(shape) = states.chunk_shape(&[0, 0]) {
            let shard = i / shape[0].get();
            self.store
                .prefetch(&[states.chunk_key(&[shard, 0]).as_str().to_string()]);
        }
        let mut bytes: Vec<u8> = states
            .retrieve_array_subset_sharded_opt(
                shard_indexes,
                &[i..i + 1, 0..row_bytes(self.encoding, size)],
                &CodecOptions::default(),
            )
            .map_err(|e| ArchiveError::zarr(self.dir.join("states"), e))?;
        match self.encoding {
            Encoding::Full => {
                self.check(j, &bytes)?;
                Ok(StoredState::Full(bytes))
            }
            Encoding::Seeded { warmup_packets } => {
                let residual = bytes.split_off(size as usize);
                Ok(StoredState::Seeded {
                    seed: bytes,
                    residual,
                    from_packet: row.packet.saturating_sub(warmup_packets),
                })
            }
        }
    }

    /// Whether `state` is checkpoint `j`'s state: its digest matches.
    /// Where each checkpoint is: (packet, decoder sample).
    pub fn positions(&self) -> Vec<(u64, u64)> {
        self.rows.iter().map(|r| (r.packet, r.sample)).collect()
    }

    pub fn check(&self, j: usize, state: &[u8]) -> Result<(), ArchiveError> {
        match self.rows.get(j) {
            Some(row) if state_digest(row.packet, row.sample, state) == row.digest => Ok(()),
            _ => Err(ArchiveError::damaged(
                &self.dir,
                format!("checkpoint {j} does not match its digest"),
            )),
        }
    }

    /// Total bytes the checkpoints group occupies in the store.
    pub fn disk_bytes(&self) -> u64 {
        self.store.size_prefix(&self.rel)
    }
}

/// Writes a `checkpoints` group of `seeded` encoding at archive-relative `rel` (the
/// group itself is `rel`), state by state, so a long recording never holds all states
/// in memory.
pub struct CheckpointWriter {
    store: Store,
    rel: String,
    dir: Location,
    rows: Vec<(u64, u64)>,
    digests: Vec<u8>,
    pending: Vec<u8>,
    written: u64,
    state_size: u64,
    states: Option<StoreArray>,
}

impl CheckpointWriter {
    /// `rows` are the (packet, sample) positions that `push` will be called for, in order.
    pub fn create(
        store: &Store,
        rel: &str,
        fingerprint: &Fingerprint,
        interval: u64,
        warmup_packets: u64,
        rows: Vec<(u64, u64)>,
    ) -> Result<Self, ArchiveError> {
        let dir = store.location(rel);
        if !(1..=MAX_WARMUP_PACKETS).contains(&warmup_packets) {
            return Err(ArchiveError::damaged(
                &dir,
                format!("warmup_packets {warmup_packets} outside 1..={MAX_WARMUP_PACKETS}"),
            ));
        }
        let count = rows.len() as u64;
        let mut attrs = serde_json::Map::new();
        attrs.insert(
            ATTR_KEY.into(),
            json!({"kind": "checkpoints", "fingerprint": fingerprint, "interval": interval,
                   "count": count, "encoding": "seeded", "warmup_packets": warmup_packets}),
        );
        write_group(store, rel, attrs)?;
        let state_size = fingerprint.state_size;
        let mut w = CheckpointWriter {
            store: store.clone(),
            rel: rel.to_string(),
            dir: dir.clone(),
            rows,
            digests: Vec::new(),
            pending: Vec::new(),
            written: 0,
            state_size,
            states: None,
        };
        if count > 0 {
            let zstd = Arc::new(ZstdCodec::new(ZSTD_LEVEL, false));
            let row = 2 * state_size;
            let states = ArrayBuilder::new(
                vec![count, row],
                vec![STATES_PER_SHARD, row],
                data_type::uint8(),
                0u8,
            )
            .subchunk_shape(vec![1, row])
            .bytes_to_bytes_codecs(vec![zstd])
            .build(w.store.zarr(), &zarr_path(rel, "states"))
            .map_err(|e| ArchiveError::zarr(&dir, e))?;
            states
                .store_metadata()
                .map_err(|e| ArchiveError::zarr(&dir, e))?;
            w.states = Some(states);
        }
        Ok(w)
    }

    /// Adds the next row: its true `state` (for the digest), and the `seed` and
    /// `residual` stored for it.
    pub fn push(&mut self, state: &[u8], seed: &[u8], residual: &[u8]) -> Result<(), ArchiveError> {
        let i = (self.written + self.pending.len() as u64 / (2 * self.state_size)) as usize;
        let (packet, sample) = *self.rows.get(i).ok_or_else(|| {
            ArchiveError::damaged(&self.dir, "more checkpoint states than planned")
        })?;
        if [state, seed, residual]
            .iter()
            .any(|b| b.len() as u64 != self.state_size)
        {
            return Err(ArchiveError::damaged(
                &self.dir,
                "checkpoint state has the wrong size",
            ));
        }
        self.digests
            .extend_from_slice(&state_digest(packet, sample, state));
        self.pending.extend_from_slice(seed);
        self.pending.extend_from_slice(residual);
        if self.pending.len() as u64 == STATES_PER_SHARD * 2 * self.state_size {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ArchiveError> {
        let n = self.pending.len() as u64 / (2 * self.state_size);
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
                &[a..b, 0..2 * self.state_size],
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
            .build(self.store.zarr(), &zarr_path(&self.rel, "positions"))
            .map_err(|e| ArchiveError::zarr(&self.dir, e))?;
        pa.store_metadata()
            .map_err(|e| ArchiveError::zarr(&self.dir, e))?;
        pa.store_chunk(&[0, 0], positions)
            .map_err(|e| ArchiveError::zarr(&self.dir, e))?;
        let da = ArrayBuilder::new(vec![count, 32], vec![count, 32], data_type::uint8(), 0u8)
            .build(self.store.zarr(), &zarr_path(&self.rel, "digests"))
            .map_err(|e| ArchiveError::zarr(&self.dir, e))?;
        da.store_metadata()
            .map_err(|e| ArchiveError::zarr(&self.dir, e))?;
        da.store_chunk(&[0, 0], std::mem::take(&mut self.digests))
            .map_err(|e| ArchiveError::zarr(&self.dir, e))?;
        Ok(())
    }
}
