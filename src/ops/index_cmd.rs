//! `index`: rebuild the stored checkpoints of recordings with the running libopus.

use rayon::prelude::*;

use crate::archive::{Archive, ArchiveError};
use crate::codec::CodecError;
use crate::codec::opus::{CheckpointsAt, write_checkpoints};

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
    // Written beside the recording and swapped in: through the archive's store, not
    // the recording's pinned directory.
    let store = archive.store();
    if store.local_root().is_none() {
        return Err(CodecError::NotApplicable {
            path: rec.dir(),
            message:
                "checkpoints are rebuilt in local archives only (copy it, run index, copy it back)"
                    .into(),
        });
    }
    let index = rec.read_index()?;
    let tmp = format!(
        "{}/{}",
        crate::archive::STAGING_DIR,
        format_args!(
            "checkpoints-{}-{}",
            std::process::id(),
            crate::store::unique()
        )
    );
    let interval = (interval_secs * f64::from(rec.meta().sample_rate))
        .round()
        .max(1.0) as u64;
    let mapping = rec.read_opus_head()?.mapping;
    let written = write_checkpoints(
        &rec,
        &index,
        rec.meta(),
        &mapping,
        &rec.dir(),
        CheckpointsAt { store, rel: &tmp },
        interval,
    )
    .and_then(|n| {
        let target = format!("{}/checkpoints", rec.path());
        store
            .publish_local(&tmp, &target, true)
            .map_err(|e| CodecError::from(ArchiveError::from(e)))?;
        Ok(n)
    });
    // What is at `tmp` now is the old set, or a partial new one after an error.
    let _ = store.erase_prefix(&tmp);
    written
}
