//! Whether every recording the manifest lists is still in the archive's tree
//! (docs/FORMAT.md, "Manifest"): a recording deleted or damaged behind the archive's
//! back must not vanish silently from `ls`, `verify` or a mount.

use std::collections::HashSet;
use std::time::SystemTime;

use super::manifest::{MANIFEST_KEY, Manifest};
use super::{Archive, ArchiveError, Entry};

/// A recording the manifest lists that is not in the archive's tree.
#[derive(Debug, Clone)]
pub struct Missing {
    /// Archive-relative.
    pub path: String,
    /// What is stored there instead.
    pub problem: String,
}

/// Whether every recording the manifest lists is in a tree (docs/FORMAT.md, "Manifest").
pub enum Completeness {
    /// The manifest could be held to the tree; these of its recordings are not in it.
    Checked(Vec<Missing>),
    /// The manifest cannot tell, for this reason: there is none, it is unreadable, or
    /// it does not list recordings that are stored (it is stale).
    Unchecked(String),
}

/// Holds `tree` (as `Archive::tree` gave it) to the manifest. The manifest lists every
/// recording at each commit of `import` and `rm`; a recording it lists that is not in the
/// tree was lost behind the archive's back (its directory deleted, its `zarr.json`
/// deleted or damaged so that it is no longer a recording's). A manifest that does not
/// list a readable recording of the tree is older than the archive (another tool wrote
/// it, or an import was killed before it rewrote the manifest): then nothing can be
/// told from it.
pub fn completeness(archive: &Archive, tree: &[Entry]) -> Result<Completeness, ArchiveError> {
    fn recordings<'a>(entries: &'a [Entry], out: &mut Vec<(&'a str, bool)>) {
        for e in entries {
            match e {
                Entry::Folder { children, .. } => recordings(children, out),
                Entry::Recording { path, meta, .. } => out.push((path, meta.is_ok())),
            }
        }
    }
    let store = archive.store();
    let Some(manifest) = Manifest::read(store)? else {
        return Ok(Completeness::Unchecked(
            if store.get(MANIFEST_KEY)?.is_none() {
                "there is no manifest (`zarr-wavfs manifest` writes one)"
            } else {
                "the manifest is unreadable or of another version (`zarr-wavfs manifest` rewrites it)"
            }
            .into(),
        ));
    };
    let listed_entries = manifest.entries(store);
    let mut listed = Vec::new();
    recordings(&listed_entries, &mut listed);
    let listed: HashSet<&str> = listed.into_iter().map(|(p, _)| p).collect();
    let mut stored = Vec::new();
    recordings(tree, &mut stored);
    let unlisted: Vec<&str> = stored
        .iter()
        .filter(|(p, readable)| *readable && !listed.contains(p))
        .map(|(p, _)| *p)
        .collect();
    if let Some(first) = unlisted.first() {
        return Ok(Completeness::Unchecked(format!(
            "the manifest does not list {} stored recording(s) ({}{}): written by another \
             tool, or an import was killed before it updated the manifest \
             (`zarr-wavfs manifest` rewrites it)",
            unlisted.len(),
            first,
            if unlisted.len() > 1 { ", ..." } else { "" }
        )));
    }
    let stored: HashSet<&str> = stored.into_iter().map(|(p, _)| p).collect();
    let mut missing: Vec<Missing> = listed
        .into_iter()
        .filter(|p| !stored.contains(p))
        .map(|p| Missing {
            path: p.to_string(),
            problem: what_is_there(archive, p),
        })
        .collect();
    missing.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Completeness::Checked(missing))
}

/// Why the node at `path`, which the manifest lists as a recording, is not one now.
fn what_is_there(archive: &Archive, path: &str) -> String {
    let store = archive.store();
    let says = "listed in the manifest as a recording, but";
    let accept = "(if it is gone for good, `zarr-wavfs manifest` records that)";
    let obj = match store.get(&format!("{path}/zarr.json")) {
        Ok(Some(obj)) => obj,
        Ok(None) if store.is_listable() && !store.is_empty(path).unwrap_or(true) => {
            return format!("{says} its zarr.json is missing {accept}");
        }
        Ok(None) => {
            return format!(
                "{says} nothing is stored at its path: deleted behind the archive's back {accept}"
            );
        }
        Err(e) => return format!("{says} its zarr.json cannot be read: {e}"),
    };
    let v: serde_json::Value = match serde_json::from_slice(&obj.bytes) {
        Ok(v) => v,
        Err(e) => return format!("{says} its zarr.json is not JSON: {e}"),
    };
    if v.get("zarr_format") != Some(&3.into()) || v.get("node_type") != Some(&"group".into()) {
        return format!("{says} its zarr.json is not a Zarr v3 group {accept}");
    }
    match v.pointer(&format!("/attributes/{}/kind", crate::archive::ATTR_KEY)) {
        None => format!(
            "{says} its zarr.json has no {}.kind {accept}",
            crate::archive::ATTR_KEY
        ),
        Some(kind) if kind == "recording" => format!(
            "{says} a folder on its path cannot be read (a damaged zarr.json above it hides it)"
        ),
        Some(kind) => format!("{says} its zarr.json says kind {kind}, not \"recording\" {accept}"),
    }
}

/// `tree` with the recordings the manifest lists that are not in it put back, as
/// unreadable recordings saying what is stored there instead (and the folders on their
/// way, when those went too): a mount then lists them, and opening one fails with that
/// reason. Unchanged when the manifest cannot tell (`Completeness::Unchecked`).
pub fn with_missing(archive: &Archive, mut tree: Vec<Entry>) -> Vec<Entry> {
    let missing = match completeness(archive, &tree) {
        Ok(Completeness::Checked(m)) => m,
        Ok(Completeness::Unchecked(_)) => return tree,
        Err(e) => {
            log::debug!("{}: {e}", archive.location(MANIFEST_KEY));
            return tree;
        }
    };
    for m in missing {
        insert(&mut tree, archive, &m, &m.path);
    }
    tree
}

/// Puts `m` into `entries` at `rest` (its path below them).
fn insert(entries: &mut Vec<Entry>, archive: &Archive, m: &Missing, rest: &str) {
    let (name, below) = match rest.split_once('/') {
        Some((name, below)) => (name, Some(below)),
        None => (rest, None),
    };
    let at = entries.iter().position(|e| e.name() == name);
    match (below, at) {
        (Some(below), Some(i)) => {
            // A folder whose own zarr.json is damaged is listed as an unreadable
            // recording: the manifest knows it is a folder, and what it holds.
            if matches!(&entries[i], Entry::Recording { meta: Err(_), .. }) {
                entries[i] = Entry::Folder {
                    name: name.to_string(),
                    children: Vec::new(),
                    modified: SystemTime::UNIX_EPOCH,
                };
            }
            if let Entry::Folder { children, .. } = &mut entries[i] {
                insert(children, archive, m, below);
            }
        }
        (Some(below), None) => {
            let mut children = Vec::new();
            insert(&mut children, archive, m, below);
            entries.push(Entry::Folder {
                name: name.to_string(),
                children,
                modified: SystemTime::UNIX_EPOCH,
            });
        }
        // A recording group that lost its zarr_wavfs attribute reads as an empty
        // folder (a plain Zarr group is one): the manifest knows better.
        (None, Some(i)) => {
            if matches!(&entries[i], Entry::Folder { children, .. } if children.is_empty()) {
                entries[i] = unreadable(archive, m, name);
            }
        }
        (None, None) => entries.push(unreadable(archive, m, name)),
    }
    entries.sort_by(|a, b| a.name().cmp(b.name()));
}

fn unreadable(archive: &Archive, m: &Missing, name: &str) -> Entry {
    Entry::Recording {
        name: name.to_string(),
        path: m.path.clone(),
        meta: Err(ArchiveError::damaged(archive.location(&m.path), &m.problem)),
        modified: SystemTime::UNIX_EPOCH,
        audio_bytes: None,
    }
}
