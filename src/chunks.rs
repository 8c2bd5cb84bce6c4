//! Metadata chunks a recording came with (`LIST`, `bext`, `guan`, `iXML`, `cue `, …), kept
//! at import byte for byte and served again between `fmt ` and `data` (docs/FORMAT.md,
//! "Kept chunks").
//!
//! They are stored in the recording's metadata, so the mounted tree knows every served
//! file's exact size without reading anything else; the limits below keep that metadata
//! small whatever an input holds.

pub mod fields;
pub mod info;
pub mod served;

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest body of one kept chunk; a bigger one is dropped at import, with a warning.
pub const MAX_CHUNK_BYTES: usize = 64 << 10;
/// Largest total of the kept chunks of one recording, as they take space in a RIFF file
/// (headers and pad bytes counted, so that many empty chunks cannot bloat it either).
pub const MAX_RECORDING_CHUNK_BYTES: usize = 256 << 10;

/// A RIFF chunk id: four printable ASCII bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkId(pub [u8; 4]);

impl ChunkId {
    pub const BEXT: ChunkId = ChunkId(*b"bext");
    pub const CUE: ChunkId = ChunkId(*b"cue ");
    pub const FACT: ChunkId = ChunkId(*b"fact");
    pub const GUANO: ChunkId = ChunkId(*b"guan");
    pub const LIST: ChunkId = ChunkId(*b"LIST");
    pub const SMPL: ChunkId = ChunkId(*b"smpl");

    /// Chunks that describe the file's structure or are padding: never kept, because the
    /// served file writes its own (`fmt `, `data`, `ds64`) or they hold nothing.
    pub fn is_structural(self) -> bool {
        matches!(
            &self.0,
            b"fmt " | b"data" | b"ds64" | b"JUNK" | b"junk" | b"PAD " | b"FLLR" | b"RIFF" | b"RF64"
        )
    }

    pub fn is_printable(self) -> bool {
        self.0.iter().all(|&c| (0x20..0x7F).contains(&c))
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// One chunk: its id and its body (without the 8-byte header and the pad byte).
#[derive(Clone, PartialEq, Eq)]
pub struct Chunk {
    pub id: ChunkId,
    pub body: Vec<u8>,
}

impl fmt::Debug for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} ({} bytes)", self.id, self.body.len())
    }
}

impl Chunk {
    pub fn new(id: ChunkId, body: Vec<u8>) -> Self {
        Chunk { id, body }
    }

    /// Bytes the chunk takes in a RIFF file: header, body and the pad byte of an odd body.
    pub fn riff_len(&self) -> u64 {
        8 + self.body.len() as u64 + (self.body.len() as u64 & 1)
    }

    /// Appends the chunk as RIFF writes it.
    pub fn push(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&(self.body.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.body);
        if self.body.len() % 2 == 1 {
            out.push(0);
        }
    }
}

/// How a chunk is stored in the recording's metadata: `{"id": "LIST", "data": BASE64}`.
#[derive(Serialize, Deserialize)]
struct StoredChunk {
    id: String,
    data: String,
}

impl Serialize for Chunk {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        StoredChunk {
            id: self.id.to_string(),
            data: BASE64.encode(&self.body),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Chunk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let c = StoredChunk::deserialize(d)?;
        let id: [u8; 4] =
            c.id.as_bytes()
                .try_into()
                .map_err(|_| D::Error::custom(format!("chunk id {:?} is not 4 bytes", c.id)))?;
        let body = BASE64
            .decode(c.data.as_bytes())
            .map_err(|e| D::Error::custom(format!("chunk {:?}: {e}", c.id)))?;
        Ok(Chunk::new(ChunkId(id), body))
    }
}

/// Checks kept chunks as readers do: printable ids, none structural, within the limits.
pub fn validate(chunks: &[Chunk]) -> Result<(), String> {
    let mut total = 0u64;
    for c in chunks {
        if !c.id.is_printable() || c.id.is_structural() {
            return Err(format!("chunk {:?} cannot be a kept chunk", c.id));
        }
        if c.body.len() > MAX_CHUNK_BYTES {
            return Err(format!(
                "chunk {:?} holds {} bytes, over the limit of {MAX_CHUNK_BYTES}",
                c.id,
                c.body.len()
            ));
        }
        total += c.riff_len();
    }
    if total > MAX_RECORDING_CHUNK_BYTES as u64 {
        return Err(format!(
            "kept chunks hold {total} bytes, over the limit of {MAX_RECORDING_CHUNK_BYTES}"
        ));
    }
    Ok(())
}

/// Collects an input's chunks at import, applying the limits: what does not fit is named
/// in `dropped` (for the import's warning) instead of kept.
#[derive(Debug, Default)]
pub struct Collector {
    pub kept: Vec<Chunk>,
    pub dropped: Vec<String>,
    total: u64,
}

impl Collector {
    /// Whether a chunk `id` of `size` bytes would be kept; if not, it is recorded as
    /// dropped (structural chunks silently: they are not metadata).
    pub fn wants(&mut self, id: ChunkId, size: u64) -> bool {
        if id.is_structural() {
            return false;
        }
        let why = if !id.is_printable() {
            Some("its id is not text".to_string())
        } else if size > MAX_CHUNK_BYTES as u64 {
            Some(format!("over the {MAX_CHUNK_BYTES}-byte limit per chunk"))
        } else if self.total + 8 + size + (size & 1) > MAX_RECORDING_CHUNK_BYTES as u64 {
            Some(format!(
                "over the {MAX_RECORDING_CHUNK_BYTES}-byte limit per recording"
            ))
        } else {
            None
        };
        match why {
            Some(why) => {
                self.dropped
                    .push(format!("chunk {id:?} of {size} bytes ({why})"));
                false
            }
            None => true,
        }
    }

    /// Keeps a chunk `wants` accepted.
    pub fn keep(&mut self, chunk: Chunk) {
        self.total += chunk.riff_len();
        self.kept.push(chunk);
    }

    /// Keeps a chunk already in memory if [`Collector::wants`] it.
    pub fn offer(&mut self, chunk: Chunk) {
        if self.wants(chunk.id, chunk.body.len() as u64) {
            self.keep(chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_round_trips() {
        let c = vec![
            Chunk::new(ChunkId::LIST, b"INFOICMT\x03\0\0\0abc\0".to_vec()),
            Chunk::new(ChunkId(*b"iXML"), Vec::new()),
        ];
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"[{"id":"LIST","data":"SU5GT0lDTVQDAAAAYWJjAA=="},{"id":"iXML","data":""}]"#
        );
        let back: Vec<Chunk> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        assert!(serde_json::from_str::<Vec<Chunk>>(r#"[{"id":"LIS","data":""}]"#).is_err());
        assert!(serde_json::from_str::<Vec<Chunk>>(r#"[{"id":"LIST","data":"@@"}]"#).is_err());
    }

    #[test]
    fn riff_form_pads_odd_bodies() {
        let mut out = Vec::new();
        let c = Chunk::new(ChunkId::GUANO, b"abc".to_vec());
        c.push(&mut out);
        assert_eq!(out, b"guan\x03\0\0\0abc\0");
        assert_eq!(c.riff_len(), out.len() as u64);
    }

    #[test]
    fn limits_drop_and_name() {
        let mut col = Collector::default();
        assert!(!col.wants(ChunkId(*b"JUNK"), 10));
        assert!(col.wants(ChunkId::LIST, 100));
        col.keep(Chunk::new(ChunkId::LIST, vec![0; 100]));
        assert!(!col.wants(ChunkId(*b"id3 "), MAX_CHUNK_BYTES as u64 + 1));
        assert!(!col.wants(ChunkId([0, 1, 2, 3]), 4));
        for _ in 0..(MAX_RECORDING_CHUNK_BYTES / MAX_CHUNK_BYTES - 1) {
            assert!(col.wants(ChunkId(*b"iXML"), MAX_CHUNK_BYTES as u64));
            col.keep(Chunk::new(ChunkId(*b"iXML"), vec![0; MAX_CHUNK_BYTES]));
        }
        assert!(!col.wants(ChunkId(*b"iXML"), MAX_CHUNK_BYTES as u64));
        assert_eq!(col.dropped.len(), 3, "{:?}", col.dropped);
        assert!(col.dropped[0].contains("\"id3 \""));
        assert!(validate(&col.kept).is_ok());
        let mut too_many = col.kept.clone();
        too_many.push(Chunk::new(ChunkId(*b"iXML"), vec![0; MAX_CHUNK_BYTES]));
        assert!(validate(&too_many).is_err());
        assert!(validate(&[Chunk::new(ChunkId(*b"fmt "), vec![])]).is_err());
        // Empty chunks count with their headers.
        let mut col = Collector::default();
        let mut n = 0;
        while col.wants(ChunkId(*b"note"), 0) {
            col.keep(Chunk::new(ChunkId(*b"note"), Vec::new()));
            n += 1;
        }
        assert_eq!(n, MAX_RECORDING_CHUNK_BYTES / 8);
        assert!(validate(&col.kept).is_ok());
    }
}
