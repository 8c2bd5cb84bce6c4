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
use crate::store::{Expect, Store};

/// Key of the manifest, relative to the archive's root.
pub const MANIFEST_KEY: &str = ".zarr-wavfs-manifest.json";
/// The manifest version this build writes and reads.
pub const MANIFEST_VERSION: u64 = 1;
/// The lock file writers of a local archive's manifest take (docs/FORMAT.md).
pub const MANIFEST_LOCK_KEY: &str = ".zarr-wavfs-manifest.lock";
/// Conditional writes of the manifest tried before giving up (another writer won each).
const MAX_WRITE_ATTEMPTS: u32 = 20;
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
        Ok(Self::read_versioned(store)?.0)
    }

    /// `read`, and what a conditional write replacing the object must expect.
    fn read_versioned(store: &Store) -> Result<(Option<Manifest>, Expect), ArchiveError> {
        let Some(obj) = store.get(MANIFEST_KEY)? else {
            return Ok((None, Expect::Absent));
        };
        let expect = obj.version.clone().map_or(Expect::Absent, Expect::Version);
        Ok((Self::parse(store, &obj.bytes), expect))
    }

    fn parse(store: &Store, bytes: &[u8]) -> Option<Manifest> {
        match serde_json::from_slice::<File>(bytes) {
            Ok(f) if f.zarr_wavfs_manifest == MANIFEST_VERSION => {
                if let Some(bad) = f.nodes.iter().find(|n| !is_node_path(&n.path)) {
                    log::warn!(
                        "{}: the manifest lists {:?}, which is no archive path; ignoring it",
                        store.location(MANIFEST_KEY),
                        bad.path
                    );
                    return None;
                }
                Some(Manifest {
                    nodes: f.nodes.into_iter().map(|n| (n.path.clone(), n)).collect(),
                })
            }
            Ok(f) => {
                log::warn!(
                    "{}: manifest version {} is not {MANIFEST_VERSION}; ignoring it",
                    store.location(MANIFEST_KEY),
                    f.zarr_wavfs_manifest
                );
                None
            }
            Err(e) => {
                log::warn!(
                    "{}: unreadable manifest ({e}); ignoring it",
                    store.location(MANIFEST_KEY)
                );
                None
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

    /// Removes the node at `path` and everything below it.
    fn remove(&mut self, path: &str) {
        let below = format!("{path}/");
        self.nodes
            .retain(|k, _| k.as_str() != path && !k.starts_with(&below));
    }

    /// Takes the sizes `other` gives of the same recordings (a walk has none).
    fn take_sizes(&mut self, other: &Manifest) {
        for (k, n) in &mut self.nodes {
            if let Some(o) = other.nodes.get(k)
                && n.audio_bytes.is_none()
                && n.recording == o.recording
            {
                n.audio_bytes = o.audio_bytes;
            }
        }
    }

    /// Keeps listing the recordings of `before` that this manifest (a walk) does not
    /// have, with the folders on their way: they were lost behind the archive's back
    /// (deleted, or their `zarr.json` damaged), and `ls`, `verify` and a mount report
    /// them from the manifest until `zarr-wavfs manifest` accepts the loss.
    fn keep_lost(&mut self, before: &Manifest) {
        for (k, n) in &before.nodes {
            if n.recording.is_none() || self.nodes.contains_key(k) {
                continue;
            }
            self.nodes.insert(k.clone(), n.clone());
            let mut at = k.as_str();
            while let Some((parent, _)) = at.rsplit_once('/') {
                if let Some(f) = before.nodes.get(parent) {
                    self.nodes
                        .entry(parent.to_string())
                        .or_insert_with(|| f.clone());
                }
                at = parent;
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
        store.put_atomic(MANIFEST_KEY, self.to_bytes())?;
        Ok(())
    }

    fn to_bytes(&self) -> bytes::Bytes {
        let f = File {
            zarr_wavfs_manifest: MANIFEST_VERSION,
            nodes: self.nodes.values().cloned().collect(),
        };
        serde_json::to_vec(&f).expect("manifest serialises").into()
    }
}

/// How long to wait before conditional write `attempt` + 1: growing, and different
/// for each writer (from the clock's nanoseconds), so writers that collided do not
/// collide again.
fn retry_pause(attempt: u32) -> Duration {
    let jitter = u64::from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()),
    ) % 50;
    Duration::from_millis(u64::from(attempt.min(10)) * 20 + jitter)
}

/// Whether `path` is an archive-relative path as writers list them: names joined by
/// single slashes, none empty, `.` or `..`. Any other path would misplace the tree read
/// from the manifest (an empty one is its own child, so building the tree never ends) or
/// name something outside the archive.
fn is_node_path(path: &str) -> bool {
    path.split('/')
        .all(|n| !n.is_empty() && n != "." && n != "..")
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// The manifest kept up to date by an import or a removal. Each change is noted, and
/// applied to the manifest as stored (read again each time) at most once a second and
/// at the end: so two writers at once each add their own changes and undo none of the
/// other's. Locally the read-change-write runs under an exclusive lock
/// (`MANIFEST_LOCK_KEY`, `flock`: released by the kernel if its holder dies, so there
/// is no stale lock). When what is stored then does not match the folders' listings
/// (another tool wrote the archive, or a writer's commit is not in the manifest yet),
/// the archive is walked instead. In an object store there is no lock: the write is
/// conditional on the manifest being the one read (`If-Match`, or `If-None-Match: *`
/// when there was none), and is done again from a fresh read when another writer got
/// there first.
pub struct ManifestUpdater {
    archive: super::Archive,
    pending: Vec<Change>,
    last_write: Option<Instant>,
}

enum Change {
    Put(String, Node),
    Remove(String),
}

impl ManifestUpdater {
    pub fn start(archive: &super::Archive) -> Self {
        ManifestUpdater {
            archive: archive.clone(),
            pending: Vec::new(),
            last_write: None,
        }
    }

    /// Records a committed recording and the bytes its audio takes; rewrites the
    /// manifest when due.
    pub fn committed(
        &mut self,
        path: &str,
        meta: &RecordingMeta,
        audio_bytes: u64,
    ) -> Result<(), ArchiveError> {
        let mut one = Manifest::default();
        one.recording(path, meta, SystemTime::now(), Some(audio_bytes));
        self.pending
            .extend(one.nodes.into_iter().map(|(k, n)| Change::Put(k, n)));
        self.due()
    }

    /// Records the removal of the recording at `path`; rewrites the manifest when due.
    pub fn removed(&mut self, path: &str) -> Result<(), ArchiveError> {
        self.pending.push(Change::Remove(path.to_string()));
        self.due()
    }

    fn due(&mut self) -> Result<(), ArchiveError> {
        if self.last_write.is_none_or(|t| t.elapsed() >= REWRITE_EVERY) {
            self.flush()?;
        }
        Ok(())
    }

    /// Applies what changed since the last write to the manifest as stored.
    pub fn flush(&mut self) -> Result<(), ArchiveError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let store = self.archive.store();
        for attempt in 1.. {
            let _lock = store.lock_local(MANIFEST_LOCK_KEY)?;
            let (stored, expect) = Manifest::read_versioned(store)?;
            let m = self.applied(stored)?;
            if store.put_if(MANIFEST_KEY, m.to_bytes(), &expect)? {
                break;
            }
            if attempt == MAX_WRITE_ATTEMPTS {
                return Err(crate::store::StoreError::Conflict {
                    at: store.location(MANIFEST_KEY),
                }
                .into());
            }
            log::debug!(
                "{}: another writer changed it first; again (attempt {attempt})",
                store.location(MANIFEST_KEY)
            );
            std::thread::sleep(retry_pause(attempt));
        }
        self.last_write = Some(Instant::now());
        self.pending.clear();
        Ok(())
    }

    /// The manifest `stored` with this writer's changes, or a walk where it does not
    /// match the folders' listings.
    fn applied(&self, stored: Option<Manifest>) -> Result<Manifest, ArchiveError> {
        let store = self.archive.store();
        let walk = stored.is_none();
        let mut m = stored.unwrap_or_default();
        for c in &self.pending {
            match c {
                // A folder already listed keeps its time.
                Change::Put(k, n) if n.recording.is_none() => {
                    m.nodes.entry(k.clone()).or_insert_with(|| n.clone());
                }
                Change::Put(k, n) => {
                    m.nodes.insert(k.clone(), n.clone());
                }
                Change::Remove(k) => m.remove(k),
            }
        }
        if walk || !m.matches(store)? {
            let mut walked = Manifest::from_entries(&self.archive.walk()?);
            walked.take_sizes(&m);
            walked.keep_lost(&m);
            m = walked;
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::writer::remove_recording;
    use crate::import::{Codec, ImportOptions, Job, import_one};

    fn listed(store: &Store) -> Vec<String> {
        let m = Manifest::read(store).unwrap().expect("a manifest");
        m.nodes
            .values()
            .filter(|n| n.recording.is_some())
            .map(|n| n.path.clone())
            .collect()
    }

    #[test]
    fn a_manifest_listing_a_path_that_is_no_archive_path_is_not_used() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(
            &crate::store::Address::Local(tmp.path().to_path_buf()),
            &Default::default(),
        )
        .unwrap();
        let manifest = |path: &str| {
            let f = serde_json::json!({"zarr_wavfs_manifest": 1, "nodes": [
                {"path": "a", "modified_ns": 1}, {"path": path, "modified_ns": 2}]});
            serde_json::to_vec(&f).unwrap()
        };
        for bad in ["", "a/", "/a", "a//b", "a/./b", "../b", "a/.."] {
            assert!(Manifest::parse(&store, &manifest(bad)).is_none(), "{bad:?}");
        }
        let m = Manifest::parse(&store, &manifest("a/b.c")).expect("a good path");
        assert_eq!(m.children("a"), ["b.c"]);
    }

    #[test]
    fn two_writers_each_apply_their_own_changes_and_undo_none_of_the_other() {
        let tmp = tempfile::tempdir().unwrap();
        let (archive, _) = crate::test_support::recording(tmp.path(), 1, Codec::Pcm);
        let add = |name: &str| {
            let job = Job {
                input: tmp.path().join("in.wav"),
                target: name.into(),
            };
            let opts = ImportOptions {
                codec: Some(Codec::Pcm),
                ..ImportOptions::default()
            };
            import_one(&archive, &job, &opts).unwrap().meta
        };
        let meta = add("s");
        let mut first = ManifestUpdater::start(&archive);
        first.committed("s", &meta, 1).unwrap();
        assert_eq!(listed(archive.store()), ["r", "s"], "a walk, then s");

        // A writer that started before another removed `r` must not bring it back,
        // and the remover must not drop what the first added meanwhile.
        let mut adder = ManifestUpdater::start(&archive);
        let mut remover = ManifestUpdater::start(&archive);
        remove_recording(&archive, "r").unwrap();
        remover.removed("r").unwrap();
        let meta = add("t");
        adder.committed("t", &meta, 2).unwrap();
        adder.flush().unwrap();
        remover.flush().unwrap();
        assert_eq!(listed(archive.store()), ["s", "t"]);
        let m = Manifest::read(archive.store()).unwrap().unwrap();
        assert_eq!(
            m.nodes["t"].audio_bytes,
            Some(2),
            "the sizes given are kept"
        );
        assert!(m.matches(archive.store()).unwrap());
    }
}
