//! The mounted file system without FUSE: the inode tree with its file names and sizes,
//! and the per-open-file prefetch policy. `fuse` adapts it to the kernel; tests can
//! drive it directly.

mod names;
mod prefetch;
mod tree;

pub use names::shown_name;
pub use prefetch::SequentialDetector;
pub use tree::{FileInfo, Ino, Node, NodeKind, ROOT, Tree};
