//! The CLI's commands as library functions: `ls`, `info`, `extract`, `verify`, `index`.

mod extract;
mod index_cmd;
mod listing;
mod verify;

pub use extract::{TimeSpec, extract, parse_time};
pub use index_cmd::rebuild_checkpoints;
pub use listing::{info, ls};
pub use verify::{Problem, verify};
