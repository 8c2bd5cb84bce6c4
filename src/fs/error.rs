//! The one error type of the file-system core. Front ends translate it: `fuse` to an
//! errno, `serve` to an HTTP status, each in one function.

use crate::codec::CodecError;
use crate::wav::WavError;

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("no such file or folder")]
    NotFound,
    #[error("is a folder")]
    IsDir,
    #[error("not a folder")]
    NotDir,
    /// A recording listed in the archive whose metadata could not be read or served.
    #[error("recording {path}: {message}")]
    Unservable { path: String, message: String },
    /// The recording was replaced in the archive after the tree was read.
    #[error("recording {path}: changed since the archive was opened; reopen to see it")]
    Changed { path: String },
    #[error("recording {path}: {source}")]
    Layout { path: String, source: WavError },
    #[error("recording {path}: {source}")]
    Codec { path: String, source: CodecError },
    /// A worker panicked serving the request (logged where it happened).
    #[error("internal error")]
    Internal,
}

impl FsError {
    /// Whether retrying later may succeed: the store did not answer (time-out, refused
    /// connection, server error), as opposed to data that is missing or damaged.
    pub fn is_transient(&self) -> bool {
        use crate::archive::ArchiveError;
        use crate::store::StoreError;
        matches!(
            self,
            FsError::Codec {
                source: CodecError::Archive(ArchiveError::Store(StoreError::Unavailable { .. })),
                ..
            }
        )
    }
}
