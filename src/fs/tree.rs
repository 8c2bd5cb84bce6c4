//! The mounted tree: every folder and recording of the archive as an inode. A refresh
//! (the archive changed while mounted) makes a new tree from the old one: a node that
//! is still there unchanged keeps its inode; a new, replaced or re-read node gets a
//! new one. Inode numbers are positions in the node table, which only grows, so an
//! inode never changes meaning for the life of the mount, and a recording that was
//! replaced or removed keeps answering `getattr` for the handles still open on it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use crate::archive::{Archive, ArchiveError, Entry, RecordingMeta};
use crate::wav::{SampleFormat, WavLayout};
use crate::wav_file::{TimeExpansion, layout_for, served_format};

use super::names::{shown_name, shown_recording_name};

/// Inode number; the root is 1.
pub type Ino = u64;
pub const ROOT: Ino = 1;

#[derive(Debug, Clone)]
pub struct Node {
    pub parent: Ino,
    /// Name shown in the mount (see `names`).
    pub name: String,
    /// Archive-relative path ("" for the root).
    pub path: String,
    pub mtime: SystemTime,
    pub kind: NodeKind,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    Dir {
        children: Vec<Ino>,
        subdirs: u32,
    },
    /// A recording; `file` says why it cannot be served when its metadata is unreadable.
    File {
        file: Result<Arc<FileInfo>, String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct FileInfo {
    pub meta: RecordingMeta,
    pub layout: WavLayout,
    /// When the recording was committed to the archive (its metadata object's time).
    pub committed: SystemTime,
}

/// What a refresh changed, for front ends that cache what they were told (the kernel
/// keeps entries and attributes).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Names (in their parent folder) that now mean another node, or none.
    pub gone: Vec<(Ino, String)>,
    /// Folders whose listing or attributes changed.
    pub dirs: Vec<Ino>,
    /// Nodes added (new, replaced or re-read ones included).
    pub added: usize,
    /// Archive-relative paths of the recordings replaced or gone.
    pub stale: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.gone.is_empty() && self.dirs.is_empty() && self.added == 0
    }
}

#[derive(Debug, Clone)]
pub struct Tree {
    /// `nodes[ino - 1]`; nodes no longer in the archive stay, unlisted.
    nodes: Vec<Node>,
    /// The listed nodes by (parent, shown name).
    by_name: HashMap<(Ino, String), Ino>,
    format: Option<SampleFormat>,
    expansion: Option<TimeExpansion>,
}

impl Tree {
    /// Reads the archive's folders and recordings' metadata (no audio is decoded).
    pub fn build(
        archive: &Archive,
        format: Option<SampleFormat>,
        expansion: Option<TimeExpansion>,
    ) -> Result<Tree, ArchiveError> {
        let empty = Tree::empty(archive.modified(), format, expansion);
        Ok(empty.refreshed(Self::entries(archive)?).0)
    }

    /// What a mount lists: the archive's tree with the recordings its manifest lists
    /// that went missing put back as unreadable ones (`completeness::with_missing`), so
    /// they fail with a reason instead of vanishing. Locally only: a remote tree comes
    /// from the manifest itself whenever the manifest is up to date.
    pub fn entries(archive: &Archive) -> Result<Vec<Entry>, ArchiveError> {
        let tree = archive.tree()?;
        Ok(if archive.store().local_root().is_some() {
            crate::archive::completeness::with_missing(archive, tree)
        } else {
            tree
        })
    }

    fn empty(
        root_mtime: SystemTime,
        format: Option<SampleFormat>,
        expansion: Option<TimeExpansion>,
    ) -> Tree {
        Tree {
            nodes: vec![Node {
                parent: ROOT,
                name: String::new(),
                path: String::new(),
                mtime: root_mtime,
                kind: NodeKind::Dir {
                    children: Vec::new(),
                    subdirs: 0,
                },
            }],
            by_name: HashMap::new(),
            format,
            expansion,
        }
    }

    /// The tree of the archive now listing `entries`, and what changed from this one.
    pub fn refreshed(&self, entries: Vec<Entry>) -> (Tree, Changes) {
        let mut next = Tree {
            nodes: self.nodes.clone(),
            by_name: HashMap::with_capacity(self.by_name.len()),
            format: self.format,
            expansion: self.expansion,
        };
        let mut changes = Changes::default();
        next.sync_dir(self, ROOT, entries, &mut changes);
        changes.added = next.nodes.len() - self.nodes.len();
        (next, changes)
    }

    /// Makes folder `dir` hold `entries`, reusing the nodes `old` listed there.
    fn sync_dir(&mut self, old: &Tree, dir: Ino, entries: Vec<Entry>, changes: &mut Changes) {
        let dir_path = self.nodes[dir as usize - 1].path.clone();
        let before = match old.get(dir).map(|n| &n.kind) {
            Some(NodeKind::Dir { children, .. }) => children.clone(),
            _ => Vec::new(),
        };
        let mut children = Vec::with_capacity(entries.len());
        let mut subdirs = 0;
        for e in entries {
            let path = if dir_path.is_empty() {
                e.name().to_string()
            } else {
                format!("{dir_path}/{}", e.name())
            };
            let prior = |name: &str| old.by_name.get(&(dir, name.to_string())).copied();
            let (name, ino) = match e {
                Entry::Folder {
                    name,
                    children: entries,
                    modified,
                } => {
                    let name = shown_name(&name, false);
                    let ino = match prior(&name).map(|i| (i, &old.nodes[i as usize - 1])) {
                        Some((
                            i,
                            Node {
                                kind: NodeKind::Dir { .. },
                                ..
                            },
                        )) => {
                            if self.nodes[i as usize - 1].mtime != modified {
                                self.nodes[i as usize - 1].mtime = modified;
                                changes.dirs.push(i);
                            }
                            i
                        }
                        _ => self.push(
                            dir,
                            &name,
                            path,
                            modified,
                            NodeKind::Dir {
                                children: Vec::new(),
                                subdirs: 0,
                            },
                        ),
                    };
                    self.sync_dir(old, ino, entries, changes);
                    subdirs += 1;
                    (name, ino)
                }
                Entry::Recording {
                    name,
                    meta,
                    modified,
                    ..
                } => {
                    let factor = meta
                        .as_ref()
                        .ok()
                        .and_then(|m| TimeExpansion::factor_for(self.expansion, m));
                    let name = shown_recording_name(&name, self.expansion.is_some(), factor);
                    let file = self.file_info(meta, modified, factor);
                    let unchanged = |i: Ino| match &old.nodes[i as usize - 1].kind {
                        NodeKind::File { file: f } => match (f, &file) {
                            (Ok(a), Ok(b)) => a == b,
                            (Err(a), Err(b)) => a == b,
                            _ => false,
                        },
                        NodeKind::Dir { .. } => false,
                    };
                    let ino = match prior(&name) {
                        Some(i) if unchanged(i) => i,
                        _ => {
                            let mtime = file
                                .as_ref()
                                .ok()
                                .and_then(|f| f.meta.start_system_time())
                                .unwrap_or(modified);
                            self.push(dir, &name, path, mtime, NodeKind::File { file })
                        }
                    };
                    (name, ino)
                }
            };
            if let Some(i) = prior(&name).filter(|&i| i != ino) {
                changes.gone.push((dir, name.clone()));
                if matches!(old.nodes[i as usize - 1].kind, NodeKind::File { .. }) {
                    changes.stale.push(old.nodes[i as usize - 1].path.clone());
                }
            }
            self.by_name.insert((dir, name), ino);
            children.push(ino);
        }
        let kept: HashSet<Ino> = children.iter().copied().collect();
        for c in &before {
            if !kept.contains(c) {
                let gone = &old.nodes[*c as usize - 1];
                if !changes.gone.contains(&(dir, gone.name.clone())) {
                    changes.gone.push((dir, gone.name.clone()));
                }
                if !changes.stale.contains(&gone.path) {
                    changes.stale.push(gone.path.clone());
                }
            }
        }
        // A new folder: the kernel has nothing of it to forget.
        if children != before && old.get(dir).is_some() {
            changes.dirs.push(dir);
        }
        self.nodes[dir as usize - 1].kind = NodeKind::Dir { children, subdirs };
    }

    fn push(
        &mut self,
        parent: Ino,
        name: &str,
        path: String,
        mtime: SystemTime,
        kind: NodeKind,
    ) -> Ino {
        self.nodes.push(Node {
            parent,
            name: name.to_string(),
            path,
            mtime,
            kind,
        });
        self.nodes.len() as Ino
    }

    fn file_info(
        &self,
        meta: Result<RecordingMeta, ArchiveError>,
        committed: SystemTime,
        factor: Option<u32>,
    ) -> Result<Arc<FileInfo>, String> {
        let meta = meta.map_err(|e| e.to_string())?;
        let format = served_format(self.format, &meta);
        let layout =
            layout_for(&meta, 0..meta.frames, format, factor).map_err(|e| e.to_string())?;
        Ok(Arc::new(FileInfo {
            meta,
            layout,
            committed,
        }))
    }

    /// The metadata of every servable recording listed.
    pub fn metas(&self) -> impl Iterator<Item = &RecordingMeta> {
        self.listed().filter_map(|n| match &n.kind {
            NodeKind::File { file: Ok(f) } => Some(&f.meta),
            _ => None,
        })
    }

    /// The archive-relative paths of the folders listed (the root is "").
    pub fn folders(&self) -> impl Iterator<Item = &str> {
        self.listed()
            .filter(|n| matches!(n.kind, NodeKind::Dir { .. }))
            .map(|n| n.path.as_str())
    }

    /// Whether `ino` is listed (reachable from the root), not a node left behind by a
    /// refresh.
    pub fn is_listed(&self, ino: Ino) -> bool {
        ino == ROOT
            || self
                .get(ino)
                .is_some_and(|n| self.lookup(n.parent, &n.name) == Some(ino))
    }

    fn listed(&self) -> impl Iterator<Item = &Node> {
        std::iter::once(&self.nodes[0])
            .chain(self.by_name.values().map(|&i| &self.nodes[i as usize - 1]))
    }

    pub fn get(&self, ino: Ino) -> Option<&Node> {
        self.nodes.get(usize::try_from(ino).ok()?.checked_sub(1)?)
    }

    pub fn lookup(&self, parent: Ino, name: &str) -> Option<Ino> {
        self.by_name.get(&(parent, name.to_string())).copied()
    }

    /// Number of listed folders and recordings (the root not counted).
    pub fn listed_count(&self) -> usize {
        self.by_name.len()
    }

    /// Total size of all served files listed.
    pub fn total_bytes(&self) -> u64 {
        self.listed()
            .filter_map(|n| match &n.kind {
                NodeKind::File { file: Ok(f) } => Some(f.layout.file_len()),
                _ => None,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::import::Codec;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn rec(meta: &RecordingMeta, name: &str, committed: u64) -> Entry {
        Entry::Recording {
            name: name.into(),
            path: name.into(),
            meta: Ok(meta.clone()),
            modified: at(committed),
            audio_bytes: None,
        }
    }

    fn folder(name: &str, children: Vec<Entry>) -> Entry {
        Entry::Folder {
            name: name.into(),
            children,
            modified: at(1),
        }
    }

    fn names(t: &Tree, dir: Ino) -> Vec<String> {
        match &t.get(dir).unwrap().kind {
            NodeKind::Dir { children, .. } => children
                .iter()
                .map(|&c| t.get(c).unwrap().name.clone())
                .collect(),
            NodeKind::File { .. } => panic!("not a folder"),
        }
    }

    #[test]
    fn a_refresh_keeps_unchanged_inodes_and_gives_changed_ones_new_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let (_archive, store) = crate::test_support::recording(tmp.path(), 1, Codec::Pcm);
        let meta = store.meta().clone();
        let entries = |with_y: bool, z_committed: u64, extra: bool| {
            let mut a = vec![rec(&meta, "x", 1)];
            if with_y {
                a.push(rec(&meta, "y", 1));
            }
            let mut root = vec![folder("a", a), rec(&meta, "z", z_committed)];
            if extra {
                root.push(folder("b", vec![rec(&meta, "w", 5)]));
            }
            root
        };
        let t0 = Tree::empty(at(0), None, None)
            .refreshed(entries(true, 1, false))
            .0;
        let a = t0.lookup(ROOT, "a").unwrap();
        let (x, y, z) = (
            t0.lookup(a, "x.wav").unwrap(),
            t0.lookup(a, "y.wav").unwrap(),
            t0.lookup(ROOT, "z.wav").unwrap(),
        );
        assert_eq!(t0.get(x).unwrap().path, "a/x");
        assert_eq!(t0.listed_count(), 4);

        // Nothing changed: nothing to tell, the same inodes.
        let (same, changes) = t0.refreshed(entries(true, 1, false));
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(same.lookup(ROOT, "z.wav"), Some(z));

        // y removed, z re-imported (committed later), folder b with w added.
        let (t1, changes) = t0.refreshed(entries(false, 2, true));
        assert_eq!(t1.lookup(ROOT, "a"), Some(a));
        assert_eq!(
            t1.lookup(a, "x.wav"),
            Some(x),
            "an unchanged recording keeps its inode"
        );
        assert_eq!(t1.lookup(a, "y.wav"), None);
        let z1 = t1.lookup(ROOT, "z.wav").unwrap();
        assert!(z1 > y && z1 != z, "a replaced recording is a new inode");
        let b = t1.lookup(ROOT, "b").unwrap();
        assert!(t1.lookup(b, "w.wav").is_some());
        assert_eq!(names(&t1, ROOT), ["a", "z.wav", "b"]);
        assert_eq!(names(&t1, a), ["x.wav"]);
        let mut gone = changes.gone.clone();
        gone.sort();
        assert_eq!(
            gone,
            [(ROOT, "z.wav".to_string()), (a, "y.wav".to_string())]
        );
        let mut dirs = changes.dirs.clone();
        dirs.sort();
        assert_eq!(dirs, [ROOT, a]);
        assert_eq!(changes.added, 3, "z, b and w");
        let mut stale = changes.stale.clone();
        stale.sort();
        assert_eq!(stale, ["a/y", "z"], "the recordings replaced or gone");

        // The old inodes still answer (open handles use them) but are not listed.
        assert!(t1.get(y).is_some() && t1.get(z).is_some());
        assert!(!t1.is_listed(y) && !t1.is_listed(z));
        assert!(t1.is_listed(x) && t1.is_listed(z1) && t1.is_listed(ROOT));
        assert_eq!(t1.metas().count(), 3);
        assert_eq!(
            t1.folders().collect::<std::collections::BTreeSet<_>>(),
            ["", "a", "b"].into()
        );
        // The earlier tree is untouched (a request holding it sees it whole).
        assert_eq!(t0.lookup(a, "y.wav"), Some(y));
        assert_eq!(t0.listed_count(), 4);
    }
}
