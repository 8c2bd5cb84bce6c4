//! Opus recordings: decoding spans from checkpoints, making checkpoints, and encoding.
//!
//! A span runs from one checkpoint to the next. To decode span `j` the decoder state
//! saved just before its first packet is restored and only that span's packets are
//! decoded, so every span is bit-identical to the same samples of one sequential
//! decode: the state *is* the sequential decoder at that point.

mod channel_order;
mod decoder;
mod encode;
mod encoder;
mod fingerprint;
mod libopus;
mod source;

pub use decoder::Decoder;
pub use encode::OggOpusEncoder;
pub use fingerprint::{current_fingerprint, portable_states_work};
pub use libopus::OpusError;
pub use source::{OpusSource, build_checkpoints, plan_checkpoints, write_checkpoints};

/// Default checkpoint spacing in seconds of stream time (see docs/FORMAT.md).
pub const DEFAULT_CHECKPOINT_INTERVAL_SECS: f64 = 12.0;
