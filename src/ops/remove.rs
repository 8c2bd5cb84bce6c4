//! `rm`: removing recordings, each in one atomic step, and the manifest after them.

use crate::archive::writer::{clean_stale_staging, remove_recording};
use crate::archive::{Archive, ArchiveError, ManifestUpdater};

/// Removes the recordings `paths` name, each on its own (one that fails does not stop
/// the others); `done` is called with each outcome, the archive-relative path removed
/// or why not. The manifest is updated once at the end; its failure is the error.
pub fn remove(
    archive: &Archive,
    paths: &[String],
    mut done: impl FnMut(&str, &Result<String, ArchiveError>),
) -> Result<(), ArchiveError> {
    clean_stale_staging(archive);
    let mut manifest = ManifestUpdater::start(archive);
    for p in paths {
        let r = remove_recording(archive, p);
        if let Ok(path) = &r {
            manifest.removed(path)?;
        }
        done(p, &r);
    }
    manifest.flush()
}
