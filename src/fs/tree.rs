//! The mounted tree: every folder and recording of the archive as an inode, built once
//! at mount time. Inode numbers are positions in that table, so they stay the same for
//! the life of the mount; recordings added to the archive later appear after a remount.

use std::collections::HashMap;
use std::time::SystemTime;

use crate::archive::{Archive, ArchiveError, Entry, RecordingMeta};
use crate::wav::{SampleFormat, WavLayout};
use crate::wav_file::{TimeExpansion, layout_for, served_format};

use super::names::{shown_name, shown_recording_name};

/// Inode number; the root is 1.
pub type Ino = u64;
pub const ROOT: Ino = 1;

#[derive(Debug)]
pub struct Node {
    pub parent: Ino,
    /// Name shown in the mount (see `names`).
    pub name: String,
    pub mtime: SystemTime,
    pub kind: NodeKind,
}

#[derive(Debug)]
pub enum NodeKind {
    Dir {
        children: Vec<Ino>,
        subdirs: u32,
    },
    /// A recording; `file` says why it cannot be served when its metadata is unreadable.
    File {
        path: String,
        file: Result<Box<FileInfo>, String>,
    },
}

#[derive(Debug, Clone)]
pub struct FileInfo {
    pub meta: RecordingMeta,
    pub layout: WavLayout,
    /// When the recording was committed to the archive (its metadata object's time).
    pub committed: SystemTime,
}

#[derive(Debug)]
pub struct Tree {
    /// `nodes[ino - 1]`.
    nodes: Vec<Node>,
    by_name: HashMap<(Ino, String), Ino>,
}

impl Tree {
    /// Reads the archive's folders and recordings' metadata (no audio is decoded).
    pub fn build(
        archive: &Archive,
        format: Option<SampleFormat>,
        expansion: Option<TimeExpansion>,
    ) -> Result<Tree, ArchiveError> {
        let root_mtime = archive.modified();
        let mut tree = Tree {
            nodes: vec![Node {
                parent: ROOT,
                name: String::new(),
                mtime: root_mtime,
                kind: NodeKind::Dir {
                    children: Vec::new(),
                    subdirs: 0,
                },
            }],
            by_name: HashMap::new(),
        };
        let entries = archive.tree()?;
        tree.add_entries(ROOT, "", entries, format, expansion);
        Ok(tree)
    }

    fn add_entries(
        &mut self,
        parent: Ino,
        parent_path: &str,
        entries: Vec<Entry>,
        format: Option<SampleFormat>,
        expansion: Option<TimeExpansion>,
    ) {
        for e in entries {
            let is_recording = matches!(e, Entry::Recording { .. });
            let factor = match &e {
                Entry::Recording { meta: Ok(m), .. } => TimeExpansion::factor_for(expansion, m),
                _ => None,
            };
            let name = if is_recording {
                shown_recording_name(e.name(), expansion.is_some(), factor)
            } else {
                shown_name(e.name(), false)
            };
            let path = if parent_path.is_empty() {
                e.name().to_string()
            } else {
                format!("{parent_path}/{}", e.name())
            };
            let ino = self.nodes.len() as Ino + 1;
            let (kind, children, mtime) = match e {
                Entry::Folder {
                    children, modified, ..
                } => {
                    let kind = NodeKind::Dir {
                        children: Vec::new(),
                        subdirs: 0,
                    };
                    (kind, Some(children), modified)
                }
                Entry::Recording { meta, modified, .. } => {
                    let file = meta.map_err(|e| e.to_string()).and_then(|meta| {
                        let format = served_format(format, &meta);
                        let layout = layout_for(&meta, 0..meta.frames, format, factor)
                            .map_err(|e| e.to_string())?;
                        Ok(Box::new(FileInfo {
                            meta,
                            layout,
                            committed: modified,
                        }))
                    });
                    let mtime = file
                        .as_ref()
                        .ok()
                        .and_then(|f| f.meta.start_system_time())
                        .unwrap_or(modified);
                    (
                        NodeKind::File {
                            path: path.clone(),
                            file,
                        },
                        None,
                        mtime,
                    )
                }
            };
            self.nodes.push(Node {
                parent,
                name: name.clone(),
                mtime,
                kind,
            });
            self.by_name.insert((parent, name), ino);
            if let NodeKind::Dir { children, subdirs } = &mut self.nodes[parent as usize - 1].kind {
                children.push(ino);
                *subdirs += u32::from(!is_recording);
            }
            if let Some(grandchildren) = children {
                self.add_entries(ino, &path, grandchildren, format, expansion);
            }
        }
    }

    /// The metadata of every servable recording.
    pub fn metas(&self) -> impl Iterator<Item = &RecordingMeta> {
        self.nodes.iter().filter_map(|n| match &n.kind {
            NodeKind::File { file: Ok(f), .. } => Some(&f.meta),
            _ => None,
        })
    }

    pub fn get(&self, ino: Ino) -> Option<&Node> {
        self.nodes.get(usize::try_from(ino).ok()?.checked_sub(1)?)
    }

    pub fn lookup(&self, parent: Ino, name: &str) -> Option<Ino> {
        self.by_name.get(&(parent, name.to_string())).copied()
    }

    /// Number of inodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Total size of all served files.
    pub fn total_bytes(&self) -> u64 {
        self.nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::File { file: Ok(f), .. } => Some(f.layout.file_len()),
                _ => None,
            })
            .sum()
    }
}
