//! `index`: rebuild the stored checkpoints of recordings with the running libopus.

use rayon::prelude::*;

use crate::archive::{Archive, ArchiveError};
use crate::codec::CodecError;
use crate::codec::opus::{CheckpointsAt, write_checkpoints};

/// Per recording path: the number of checkpoints written, or why not.
pub type RebuildOutcome = (String, Result<usize, CodecError>);

/// What versions before the store layer named the new checkpoints they built inside the
/// recording (`<recording>/.checkpoints-new-<pid>`); a killed `index` left it there.
const OLD_CHECKPOINTS_PREFIX: &str = ".checkpoints-new-";

/// A directory an interrupted `index` left in a recording.
pub(crate) struct Leftover {
    /// Its name in the recording's directory.
    pub name: String,
    /// The process that wrote it, and whether it still runs.
    pub pid: i32,
    pub running: bool,
}

/// The `.checkpoints-new-<pid>` directories in the recording at `path` (local archives
/// only: the versions that wrote them indexed local archives only).
pub(crate) fn checkpoint_leftovers(archive: &Archive, path: &str) -> Vec<Leftover> {
    if archive.store().local_root().is_none() {
        return Vec::new();
    }
    let Ok(names) = archive.store().list_dirs(path) else {
        return Vec::new();
    };
    names
        .into_iter()
        .filter_map(|name| {
            let pid = name
                .strip_prefix(OLD_CHECKPOINTS_PREFIX)?
                .parse::<i32>()
                .ok()?;
            Some(Leftover {
                running: crate::store::process_running(pid),
                name,
                pid,
            })
        })
        .collect()
}

/// Removes what interrupted runs of `index` (and `import`) left whose process no
/// longer runs: `checkpoints-<pid>-…` in the staging directory, and the
/// `.checkpoints-new-<pid>` directories of older versions inside the recordings.
fn clean_leftovers(archive: &Archive, recordings: &[String]) {
    crate::archive::writer::clean_stale_staging(archive);
    for path in recordings {
        for l in checkpoint_leftovers(archive, path) {
            let rel = format!("{path}/{}", l.name);
            if l.running {
                log::info!(
                    "{}: process {} still runs; left as it is",
                    archive.location(&rel),
                    l.pid
                );
            } else if let Err(e) = archive.store().erase_prefix(&rel) {
                log::warn!("removing the leftover of an interrupted index: {e}");
            } else {
                log::info!(
                    "removed the leftover of an interrupted index: {}",
                    archive.location(&rel)
                );
            }
        }
    }
}

/// Rebuilds checkpoints of `paths` (all Opus recordings when empty: FLAC and PCM
/// recordings have none) in parallel, each replacing the old set atomically. Returns per
/// recording its outcome (checkpoint count). In a local archive it first removes what
/// interrupted runs left whose process is gone (`clean_leftovers`).
pub fn rebuild_checkpoints(
    archive: &Archive,
    paths: &[String],
    interval_secs: f64,
) -> Result<Vec<RebuildOutcome>, ArchiveError> {
    let all = if paths.is_empty() {
        Some(archive.recordings()?)
    } else {
        None
    };
    if archive.store().local_root().is_some() && archive.store().is_writable() {
        let every: Vec<String> = match &all {
            Some(all) => all.iter().map(|(p, _)| p.clone()).collect(),
            // Named recordings are rebuilt even where the archive's tree cannot be read.
            None => match archive.recordings() {
                Ok(all) => all.into_iter().map(|(p, _)| p).collect(),
                Err(e) => {
                    log::warn!("not looking for leftovers of interrupted runs: {e}");
                    Vec::new()
                }
            },
        };
        clean_leftovers(archive, &every);
    }
    let paths: Vec<String> = if let Some(all) = all {
        all.into_iter()
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
