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
pub use source::{
    CheckpointsAt, OpusSource, Packets, build_checkpoints, plan_checkpoints, restore_checkpoint,
    span_starts, write_checkpoints,
};

/// Default checkpoint spacing in seconds of stream time (see docs/FORMAT.md). A cold
/// read decodes up to this much audio; seeded checkpoints cost about 400 bytes each
/// (mono), 1.6% of a 64 kbit/s stream at this spacing. Measured on 2 h of mono
/// through the mount (cold 4 KiB reads, p99): 8.8 ms at 2 s, 11.2 ms at 4 s,
/// 16.9 ms at 6 s, 27.9 ms at 12 s; stereo 10.0 ms at 2 s, 19.1 ms at 4 s.
pub const DEFAULT_CHECKPOINT_INTERVAL_SECS: f64 = 3.0;
