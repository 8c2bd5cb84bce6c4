//! zarr-wavfs: Zarr audio archives served as WAV files.
//!
//! Layers, each depending only on the ones before it (docs/ARCHITECTURE.md):
//! - [`archive`]: the on-disk format (Zarr v3 groups, Ogg stream, page index, checkpoints);
//! - [`codec`]: decoders that turn a recording into independently decodable spans;
//! - [`engine`]: frame ranges → samples through a shared LRU cache of spans;
//! - [`wav`]: the exact bytes of the served WAV file;
//! - front ends: [`import`], [`ops`] (the CLI's commands), and the binary.

pub mod archive;
pub mod codec;
pub mod engine;
pub mod import;
pub mod ops;
pub mod wav;

pub use archive::Archive;
pub use engine::{Engine, Recording};
