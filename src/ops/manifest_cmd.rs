//! `manifest`: the archive's manifest rewritten from a walk of the archive.

use crate::archive::{Archive, ArchiveError, Entry, Manifest};

/// Walks `archive` and writes its manifest, with every recording's stored audio size
/// (listed now) so that `ls` need not list them again. Returns the number of recordings.
pub fn rewrite_manifest(archive: &Archive) -> Result<usize, ArchiveError> {
    fn sizes(archive: &Archive, entries: &mut [Entry], n: &mut usize) {
        for e in entries {
            match e {
                Entry::Folder { children, .. } => sizes(archive, children, n),
                Entry::Recording {
                    path, audio_bytes, ..
                } => {
                    *n += 1;
                    *audio_bytes = Some(archive.audio_bytes(path));
                }
            }
        }
    }
    let mut tree = archive.walk()?;
    let mut n = 0;
    sizes(archive, &mut tree, &mut n);
    Manifest::from_entries(&tree).write(archive.store())?;
    Ok(n)
}
