//! zarr-wavfs: Zarr audio archives served as WAV files.
//!
//! Layers, each depending only on the ones before it (docs/ARCHITECTURE.md):
//! - [`store`]: where an archive's bytes live (a local directory, S3, a web server);
//! - [`archive`]: the on-disk format (Zarr v3 groups, Ogg stream, page index, checkpoints);
//! - [`codec`]: decoders that turn a recording into independently decodable spans;
//! - [`engine`]: frame ranges → samples through a shared LRU cache of spans;
//! - [`wav`] and [`wav_file`]: the exact bytes of the served WAV file, at any offset;
//! - [`fs`]: the mounted tree (inodes, names, sizes) and the prefetch policy;
//! - front ends: [`fuse`] and [`mount`] (the FUSE daemon), [`import`], [`ops`] (the
//!   CLI's other commands), and the binary.

pub mod archive;
pub mod chunks;
pub mod codec;
pub mod engine;
pub mod fs;
pub mod fuse;
#[doc(hidden)]
pub mod fuzzing;
pub mod import;
pub mod input;
mod le;
pub mod mount;
pub mod ops;
pub mod serve;
pub mod store;
pub mod syslog;
#[cfg(test)]
mod test_support;
pub mod wav;
pub mod wav_file;

pub use archive::Archive;
pub use engine::{Engine, Recording};
