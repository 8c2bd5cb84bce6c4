//! The CLI's commands as library functions: `ls`, `info`, `extract`, `verify`, `index`,
//! `manifest`, `rm`, and the benchmark's `decode-limit`.

mod decode_limit;
mod extract;
mod index_cmd;
mod listing;
mod manifest_cmd;
mod remove;
mod verify;

pub use decode_limit::decode_limit;
pub use extract::{TimeSpec, extract, parse_time};
pub use index_cmd::rebuild_checkpoints;
pub use listing::{committed_since, escape_name, format_bytes, format_duration, info, ls};
pub use manifest_cmd::rewrite_manifest;
pub use remove::remove;
pub use verify::{Problem, verify};
