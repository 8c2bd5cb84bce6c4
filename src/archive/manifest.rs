//! The manifest (docs/FORMAT.md, "Manifest"): one object at the archive's root that
//! lists every folder and recording with the metadata the mounted tree needs, so that
//! opening an archive costs one read instead of one per node (and a web server, which
//! cannot list, can serve an archive at all). Imports rewrite it as they commit; a
//! reader checks it against the folders' listings where the store can list, and walks
//! the hierarchy instead when it is missing or stale (an archive written by another
//! tool or an older version).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::{ATTR_KEY, ArchiveError, Entry, RecordingMeta};
use crate::store::Store;

/// Key of the manifest, relative to the archive's root.
pub const MANIFEST_KEY: &str = ".zarr-wavfs-manifest.json";
/// The manifest version this build writes and reads.
pub const MANIFEST_VERSION: u64 = 1;
/// An import rewrites the manifest at most this often (and once at its end).
const REWRITE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Serialize, Deserialize)]
struct File {
    zarr_wavfs_manifest: u64,
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Node {
    path: String,
    /// When the node's group was written, in nanoseconds since the Unix epoch.
    modified_ns: u64,
    /// The recording's `zarr_wavfs` attribute, as in its `zarr.json`; absent for folders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recording: Option<serde_json::Value>,
    /// Bytes stored of the recording's audio, as `Archive::audio_bytes` lists them; absent
    /// for folders and in manifests of older writers (readers then list the arrays).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    audio_bytes: Option<u64>,
}

/// The archive's nodes by archive-relative path.
#[derive(Debug, Default, Clone)]
pub struct Manifest {
    nodes: BTreeMap<String, Node>,
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn time(ns: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(ns)
}

impl Manifest {
    /// Reads the manifest; `None` when there is none or it is of another version or
    /// unreadable (then the reader walks the hierarchy, with a note in the log).
    pub fn read(store: &Store) -> Result<Option<Manifest>, ArchiveError> {
        let Some(obj) = store.get(MANIFEST_KEY)? else {
            return Ok(None);
        };
        match serde_json::from_slice::<File>(&obj.bytes) {
            Ok(f) if f.zarr_wavfs_manifest == MANIFEST_VERSION => Ok(Some(Manifest {
                nodes: f.nodes.into_iter().map(|n| (n.path.clone(), n)).collect(),
            })),
            Ok(f) => {
                log::warn!(
                    "{}: manifest version {} is not {MANIFEST_VERSION}; ignoring it",
                    store.location(MANIFEST_KEY),
                    f.zarr_wavfs_manifest
                );
                Ok(None)
            }
            Err(e) => {
                log::warn!(
                    "{}: unreadable manifest ({e}); ignoring it",
                    store.location(MANIFEST_KEY)
                );
                Ok(None)
            }
        }
    }

    /// The manifest of a tree as walked.
    pub fn from_entries(entries: &[Entry]) -> Manifest {
        fn add(m: &mut Manifest, parent: &str, entries: &[Entry]) {
            for e in entries {
                let path = join(parent, e.name());
                match e {
                    Entry::Folder {
                        children, modified, ..
                    } => {
                        m.folder(&path, *modified);
                        add(m, &path, children);
                    }
                    // An unreadable recording is left out: a reader that trusts the
                    // manifest would not see it, a walking reader reports it.
                    Entry::Recording {
                        meta: Ok(meta),
                        modified,
                        audio_bytes,
                        ..
                    } => m.recording(&path, meta, *modified, *audio_bytes),
                    Entry::Recording { meta: Err(_), .. } => {}
                }
            }
        }
        let mut m = Manifest::default();
        add(&mut m, "", entries);
        m
    }

    fn folder(&mut self, path: &str, modified: SystemTime) {
        self.nodes.entry(path.to_string()).or_insert(Node {
            path: path.to_string(),
            modified_ns: nanos(modified),
            recording: None,
            audio_bytes: None,
        });
    }

    /// Adds (or replaces) the recording at `path`, and the folders on the way to it.
    pub fn recording(
        &mut self,
        path: &str,
        meta: &RecordingMeta,
        modified: SystemTime,
        audio_bytes: Option<u64>,
    ) {
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            self.folder(&path[..at + i], modified);
            at += i + 1;
        }
        let attrs = meta.to_attrs();
        self.nodes.insert(
            path.to_string(),
            Node {
                path: path.to_string(),
                modified_ns: nanos(modified),
                recording: attrs.get(ATTR_KEY).cloned(),
                audio_bytes,
            },
        );
    }

    /// Takes the nodes of `other` that this one does not have, and the sizes it gives
    /// of the same recordings (a walk, which a local archive's import starts from, has
    /// none).
    fn merge(&mut self, other: Manifest) {
        for (k, v) in other.nodes {
            match self.nodes.get_mut(&k) {
                Some(n) if n.audio_bytes.is_none() && n.recording == v.recording => {
                    n.audio_bytes = v.audio_bytes;
                }
                Some(_) => {}
                None => {
                    self.nodes.insert(k, v);
                }
            }
        }
    }

    /// The names of the children of folder `rel` ("" is the root), sorted.
    fn children(&self, rel: &str) -> Vec<&str> {
        self.nodes
            .keys()
            .filter_map(|p| {
                let rest = if rel.is_empty() {
                    p.as_str()
                } else {
                    p.strip_prefix(rel)?.strip_prefix('/')?
                };
                (!rest.contains('/')).then_some(rest)
            })
            .collect()
    }

    /// Whether the store's folders hold exactly the children this manifest lists
    /// (cheap: one listing per folder, none per recording). Stores that cannot list
    /// are taken at their manifest's word.
    pub fn matches(&self, store: &Store) -> Result<bool, ArchiveError> {
        if !store.is_listable() {
            return Ok(true);
        }
        let folders: Vec<&str> = std::iter::once("")
            .chain(
                self.nodes
                    .values()
                    .filter(|n| n.recording.is_none())
                    .map(|n| n.path.as_str()),
            )
            .collect();
        for (f, listed) in folders.iter().zip(store.list_dirs_many(&folders)) {
            let mut listed: Vec<String> = listed?
                .into_iter()
                .filter(|n| !n.starts_with('.') && !n.starts_with("__"))
                .collect();
            listed.sort();
            if listed != self.children(f) {
                log::info!(
                    "{}: the manifest does not list what is stored there",
                    store.location(f)
                );
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The tree the manifest describes, as `Archive::tree` returns it.
    pub fn entries(&self, store: &Store) -> Vec<Entry> {
        fn build(m: &Manifest, store: &Store, rel: &str) -> Vec<Entry> {
            m.children(rel)
                .into_iter()
                .map(|name| {
                    let path = join(rel, name);
                    let n = &m.nodes[&path];
                    let modified = time(n.modified_ns);
                    match &n.recording {
                        None => Entry::Folder {
                            name: name.to_string(),
                            children: build(m, store, &path),
                            modified,
                        },
                        Some(v) => {
                            let mut attrs = serde_json::Map::new();
                            attrs.insert(ATTR_KEY.into(), v.clone());
                            let meta = RecordingMeta::from_attrs(&store.location(&path), &attrs);
                            Entry::Recording {
                                name: name.to_string(),
                                path,
                                meta,
                                modified,
                                audio_bytes: n.audio_bytes,
                            }
                        }
                    }
                })
                .collect()
        }
        build(self, store, "")
    }

    /// Writes the manifest in one atomic step.
    pub fn write(&self, store: &Store) -> Result<(), ArchiveError> {
        let f = File {
            zarr_wavfs_manifest: MANIFEST_VERSION,
            nodes: self.nodes.values().cloned().collect(),
        };
        let bytes = serde_json::to_vec(&f).expect("manifest serialises");
        store.put_atomic(MANIFEST_KEY, bytes.into())?;
        Ok(())
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// The manifest kept up to date by an import: each commit is added, and the manifest
/// rewritten at most once a second and at the end, merged with what another writer
/// may have stored meanwhile.
pub struct ManifestUpdater {
    store: Store,
    manifest: Manifest,
    last_write: Option<Instant>,
    dirty: bool,
}

impl ManifestUpdater {
    /// Starts from the archive's current tree (its manifest, or a walk).
    pub fn start(archive: &super::Archive) -> Result<Self, ArchiveError> {
        let manifest = Manifest::from_entries(&archive.tree()?);
        Ok(ManifestUpdater {
            store: archive.store().clone(),
            manifest,
            last_write: None,
            dirty: false,
        })
    }

    /// Records a committed recording and the bytes its audio takes; rewrites the
    /// manifest when due.
    pub fn committed(
        &mut self,
        path: &str,
        meta: &RecordingMeta,
        audio_bytes: u64,
    ) -> Result<(), ArchiveError> {
        self.manifest
            .recording(path, meta, SystemTime::now(), Some(audio_bytes));
        self.dirty = true;
        if self.last_write.is_none_or(|t| t.elapsed() >= REWRITE_EVERY) {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the manifest if anything was added since the last write.
    pub fn flush(&mut self) -> Result<(), ArchiveError> {
        if !self.dirty {
            return Ok(());
        }
        if let Some(stored) = Manifest::read(&self.store)? {
            self.manifest.merge(stored);
        }
        self.manifest.write(&self.store)?;
        self.last_write = Some(Instant::now());
        self.dirty = false;
        Ok(())
    }
}
