//! `decode-limit` (hidden, for scripts/bench.sh): how long one libopus decoder takes to
//! decode an Opus recording straight through, with the stream already in memory and
//! no checkpoints, spans, cache or FUSE. The benchmark's per-core decode limit.

use std::time::{Duration, Instant};

use crate::archive::{Archive, StreamBytes};
use crate::codec::CodecError;
use crate::codec::opus::build_checkpoints;

/// Seconds of the straight decode of recording `path` (the stream read beforehand).
pub fn decode_limit(archive: &Archive, path: &str) -> Result<Duration, CodecError> {
    let rec = archive.recording(path)?;
    let m = rec.meta();
    if m.codec != "opus" {
        return Err(CodecError::NotApplicable {
            path: rec.dir(),
            message: format!("a {} recording; the decode limit is for Opus", m.codec),
        });
    }
    let index = rec.read_index()?;
    let mapping = rec.read_opus_head()?.mapping;
    let bytes = rec.read(0..m.stream_bytes)?;
    let t = Instant::now();
    build_checkpoints(&bytes, &index, m, &mapping, &rec.dir(), &[], |_, _| Ok(()))?;
    Ok(t.elapsed())
}
