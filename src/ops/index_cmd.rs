//! `index`: rebuild the stored checkpoints of recordings with the running libopus.

use rayon::prelude::*;

use crate::archive::writer::exchange;
use crate::archive::{Archive, ArchiveError};
use crate::codec::CodecError;
use crate::codec::opus::write_checkpoints;

/// Per recording path: the number of checkpoints written, or why not.
pub type RebuildOutcome = (String, Result<usize, CodecError>);

/// Rebuilds checkpoints of `paths` (all Opus recordings when empty: FLAC and PCM
/// recordings have none) in parallel, each replacing the old set atomically. Returns per
/// recording its outcome (checkpoint count).
pub fn rebuild_checkpoints(
    archive: &Archive,
    paths: &[String],
    interval_secs: f64,
) -> Result<Vec<RebuildOutcome>, ArchiveError> {
    let paths: Vec<String> = if paths.is_empty() {
        archive
            .recordings()?
            .into_iter()
            .filter(|(_, m)| m.as_ref().is_ok_and(|m| m.codec == "opus"))
            .map(|(p, _)| p)
            .collect()
    } else {
        paths.iter().map(|p| crate::archive::normalise(p)).collect()
    };
    Ok(paths
        .into_par_iter()
        .map(|p| {
            let r = rebuild_one(archive, &p, interval_secs);
            (p, r)
        })
        .collect())
}

fn rebuild_one(archive: &Archive, path: &str, interval_secs: f64) -> Result<usize, CodecError> {
    let rec = archive.recording(path)?;
    if rec.meta().codec != "opus" {
        return Err(CodecError::NotApplicable {
            path: rec.dir(),
            message: format!(
                "a {} recording has no checkpoints to rebuild (its frames decode on their own)",
                rec.meta().codec
            ),
        });
    }
    let index = rec.read_index()?;
    let dir = rec.dir();
    let tmp = dir.join(format!(".checkpoints-new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let interval = (interval_secs * f64::from(rec.meta().sample_rate))
        .round()
        .max(1.0) as u64;
    let mapping = rec.read_opus_head()?.mapping;
    let n = write_checkpoints(&rec, &index, rec.meta(), &mapping, &dir, &tmp, interval);
    let n = match n {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let target = dir.join("checkpoints");
    let io = |e| CodecError::from(ArchiveError::io(&target, e));
    if target.exists() {
        exchange(&tmp, &target).map_err(io)?;
        let _ = std::fs::remove_dir_all(&tmp);
    } else {
        std::fs::rename(&tmp, &target).map_err(io)?;
    }
    Ok(n)
}
