//! The file system without a front end: the inode tree with its file names and sizes,
//! the open files with their per-reader prefetch policy, and the one error type.
//! `fuse` adapts it to the kernel and `serve` to HTTP; tests can drive it directly.

mod error;
mod filesystem;
mod follow;
mod names;
mod prefetch;
mod tree;
mod workers;

pub use error::FsError;
pub use filesystem::{FileSystem, FsOptions, OpenFile};
pub use follow::{follow, refresh_interval};
pub use names::shown_name;
pub use prefetch::SequentialDetector;
pub use tree::{Changes, FileInfo, Ino, Node, NodeKind, ROOT, Tree};
pub use workers::{Workers, guarded};
