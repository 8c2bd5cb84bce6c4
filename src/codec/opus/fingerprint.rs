//! The fingerprint of the running libopus build: stored checkpoints are restored only
//! into a decoder with an equal fingerprint.
//!
//! Besides version, sizes, target and CPU dispatch level, it holds the hash of a
//! self-test: a fixed packet sequence (`selftest.bin`, SILK, hybrid and CELT packets)
//! decoded with an export/import of the state half-way. A build whose portable states
//! do not round-trip exactly gets a failing self-test, so no stored checkpoint matches it
//! and states are always rebuilt from the stream instead.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::libopus::{self, Decoder};
use crate::archive::checkpoints::Fingerprint;

/// Packets of the self-test: each as a u16 little-endian length and the packet bytes.
const SELFTEST: &[u8] = include_bytes!("selftest.bin");

fn selftest_packets() -> Vec<&'static [u8]> {
    let mut out = Vec::new();
    let mut rest = SELFTEST;
    while rest.len() >= 2 {
        let n = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        out.push(&rest[2..2 + n]);
        rest = &rest[2 + n..];
    }
    out
}

/// Decodes the self-test packets straight through and with a portable save/restore in
/// the middle; returns the hash of the output, or `None` when the two differ.
fn selftest(channels: u16) -> Option<String> {
    let packets = selftest_packets();
    let run = |restore_at: Option<usize>| -> Option<Vec<i16>> {
        let mut dec = Decoder::new(48_000, channels).ok()?;
        let mut out = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            if Some(i) == restore_at {
                let image = dec.export_state().ok()?;
                dec = Decoder::new(48_000, channels).ok()?;
                dec.import_state(&image).ok()?;
            }
            dec.decode(p, &mut out).ok()?;
        }
        Some(out)
    };
    let straight = run(None)?;
    let restored = run(Some(packets.len() / 2))?;
    if straight != restored {
        return None;
    }
    let mut h = Sha256::new();
    for s in straight {
        h.update(s.to_le_bytes());
    }
    Some(hex::encode(&h.finalize()[..16]))
}

/// The running build's fingerprint for decoders of `channels` channels.
pub fn current_fingerprint(channels: u16) -> Fingerprint {
    static CACHE: OnceLock<[Fingerprint; 2]> = OnceLock::new();
    let make = |ch: u16| Fingerprint {
        libopus: libopus::version(),
        state_size: libopus::state_size(ch) as u64,
        silk_state_size: libopus::silk_state_size() as u64,
        target: format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
        arch: i64::from(libopus::arch()),
        selftest: match (libopus::layout_ok(), selftest(ch)) {
            (true, Some(h)) => h,
            _ => "failed".into(),
        },
    };
    CACHE.get_or_init(|| [make(1), make(2)])[usize::from(channels.clamp(1, 2)) - 1].clone()
}

/// Whether checkpoints made by this build can be stored at all.
pub fn portable_states_work(channels: u16) -> bool {
    current_fingerprint(channels).selftest != "failed"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_test_passes_and_covers_several_modes() {
        assert!(portable_states_work(1));
        assert!(portable_states_work(2));
        let packets = selftest_packets();
        assert!(packets.len() >= 60);
        // TOC configs 0-11 are SILK, 12-15 hybrid, 16-31 CELT: all three must occur.
        let modes: std::collections::BTreeSet<u8> = packets
            .iter()
            .map(|p| match p[0] >> 3 {
                0..=11 => 0,
                12..=15 => 1,
                _ => 2,
            })
            .collect();
        assert_eq!(
            modes.len(),
            3,
            "self-test packets must exercise SILK, hybrid and CELT"
        );
    }

    /// Regenerates `selftest.bin`: run with `cargo test regenerate_selftest -- --ignored`
    /// only when the self-test itself must change (it changes every fingerprint).
    #[test]
    #[ignore]
    fn regenerate_selftest_packets() {
        use super::super::libopus::Encoder;
        // Stereo sweep plus noise; 12, 32 and 96 kbit/s make libopus pick SILK, hybrid and CELT.
        let mut seed = 1u32;
        let mut encoders: Vec<Encoder> = [12_000, 32_000, 96_000]
            .iter()
            .map(|&b| Encoder::new(48_000, 2, b).unwrap())
            .collect();
        let mut out = Vec::new();
        for k in 0..90usize {
            let pcm: Vec<f32> = (0..960 * 2)
                .map(|i| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let t = (k * 960 + i / 2) as f32 / 48_000.0;
                    let noise = (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                    0.4 * (2.0 * std::f32::consts::PI * (200.0 + 3000.0 * t) * t).sin()
                        + 0.1 * noise
                })
                .collect();
            let packet = encoders[(k / 10) % 3].encode(&pcm).unwrap();
            out.extend_from_slice(&(packet.len() as u16).to_le_bytes());
            out.extend_from_slice(&packet);
        }
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/src/codec/opus/selftest.bin"),
            out,
        )
        .unwrap();
    }

    #[test]
    fn fingerprints_differ_by_channel_count() {
        assert_ne!(current_fingerprint(1), current_fingerprint(2));
        assert_eq!(current_fingerprint(1), current_fingerprint(1));
    }
}
