//! The fingerprint of the running libopus build: stored checkpoints are restored only
//! into a decoder with an equal fingerprint.
//!
//! Besides version, sizes, target, CPU dispatch level and (for multistream decoders) the
//! channel layout, it holds the hash of a self-test: a fixed packet sequence
//! (`selftest.bin`, SILK, hybrid and CELT packets) decoded with an export/import of the
//! state half-way. Multistream layouts decode the same packets, one per stream. A build whose portable states
//! do not round-trip exactly gets a failing self-test, so no stored checkpoint matches it
//! and states are always rebuilt from the stream instead.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::decoder::{Decoder, state_size};
use super::libopus;
use crate::archive::checkpoints::{Fingerprint, MultistreamLayout};
use crate::archive::opus_head::ChannelMapping;

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

/// A single-frame (code 0) packet in self-delimiting framing (RFC 6716 appendix B):
/// the frame's length inserted after the TOC byte. `None` for other packet codes.
fn self_delimited(p: &[u8]) -> Option<Vec<u8>> {
    let (&toc, frame) = p.split_first()?;
    if toc & 3 != 0 || frame.len() > 1275 {
        return None;
    }
    let n = frame.len();
    let mut out = vec![toc];
    if n < 252 {
        out.push(n as u8);
    } else {
        let first = 252 + n % 4;
        out.extend([first as u8, ((n - first) / 4) as u8]);
    }
    out.extend_from_slice(frame);
    Some(out)
}

/// The self-test packets for `mapping`: as they are for one stream; for several, packet
/// `i` carries self-test packets `i, i+1, …` as its streams (all but the last
/// self-delimited, RFC 6716 appendix B). `None` if a packet cannot be framed so.
fn packets_for(mapping: &ChannelMapping) -> Option<Vec<Cow<'static, [u8]>>> {
    let single = selftest_packets();
    let streams = usize::from(mapping.streams());
    if mapping.family() == 0 {
        return Some(single.into_iter().map(Cow::Borrowed).collect());
    }
    (0..single.len())
        .map(|i| {
            let mut packet = Vec::new();
            for s in 0..streams - 1 {
                packet.extend(self_delimited(single[(i + s) % single.len()])?);
            }
            packet.extend_from_slice(single[(i + streams - 1) % single.len()]);
            Some(Cow::Owned(packet))
        })
        .collect()
}

/// Decodes the self-test packets straight through and with a portable save/restore in
/// the middle; returns the hash of the output, or `None` when the two differ.
fn selftest(mapping: &ChannelMapping) -> Option<String> {
    let packets = packets_for(mapping)?;
    let run = |restore_at: Option<usize>| -> Option<Vec<i16>> {
        let mut dec = Decoder::new(48_000, mapping).ok()?;
        let mut out = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            if Some(i) == restore_at {
                let image = dec.export_state().ok()?;
                dec = Decoder::new(48_000, mapping).ok()?;
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

fn make(mapping: &ChannelMapping) -> Fingerprint {
    Fingerprint {
        libopus: libopus::version(),
        state_size: state_size(mapping) as u64,
        silk_state_size: libopus::silk_state_size() as u64,
        target: format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
        arch: i64::from(libopus::arch()),
        selftest: match (libopus::layout_ok(), selftest(mapping)) {
            (true, Some(h)) => h,
            _ => "failed".into(),
        },
        layout: (mapping.family() != 0).then(|| MultistreamLayout {
            family: mapping.family(),
            streams: mapping.streams(),
            coupled_streams: mapping.coupled(),
            mapping: mapping.table().to_vec(),
        }),
    }
}

/// The running build's fingerprint for decoders of `mapping`'s layout.
pub fn current_fingerprint(mapping: &ChannelMapping) -> Fingerprint {
    static CACHE: OnceLock<Mutex<HashMap<ChannelMapping, Fingerprint>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(f) = cache.lock().get(mapping) {
        return f.clone();
    }
    // Computed outside the lock: the self-test decodes, and rayon workers share this.
    let f = make(mapping);
    cache.lock().insert(mapping.clone(), f.clone());
    f
}

/// Whether checkpoints made by this build can be stored at all.
pub fn portable_states_work(mapping: &ChannelMapping) -> bool {
    current_fingerprint(mapping).selftest != "failed"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_test_passes_and_covers_several_modes() {
        for ch in 1..=2 {
            assert!(portable_states_work(&ChannelMapping::family0(ch).unwrap()));
        }
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
        use super::super::encoder::Encoder;
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

    fn surround(channels: u16) -> ChannelMapping {
        super::super::encoder::Encoder::new(48_000, channels, 64_000)
            .unwrap()
            .mapping()
            .clone()
    }

    #[test]
    fn multistream_states_round_trip_for_every_surround_layout() {
        // every self-test packet is code 0, so each can be self-delimited
        assert!(selftest_packets().iter().all(|p| p[0] & 3 == 0));
        for ch in 3..=8 {
            let m = surround(ch);
            assert_eq!(m.family(), 1);
            let f = current_fingerprint(&m);
            assert_ne!(f.selftest, "failed", "{ch} channels");
            assert_eq!(f.layout.as_ref().unwrap().mapping, m.table());
        }
        // a family 1 mono or stereo stream is a multistream decoder too
        let stereo = ChannelMapping::family1(1, 1, vec![0, 1]).unwrap();
        assert!(portable_states_work(&stereo));
    }

    #[test]
    fn self_delimiting_framing_writes_one_and_two_byte_lengths() {
        assert_eq!(self_delimited(&[0x78, 1, 2]).unwrap(), [0x78, 2, 1, 2]);
        let mut long = vec![0x78];
        long.extend(std::iter::repeat_n(7u8, 700));
        let d = self_delimited(&long).unwrap();
        assert_eq!(usize::from(d[1]) + 4 * usize::from(d[2]), 700);
        assert_eq!(&d[3..], &long[1..]);
        assert!(self_delimited(&[0x79, 1]).is_none());
        assert!(self_delimited(&[]).is_none());
    }

    #[test]
    fn fingerprints_differ_by_layout() {
        let mono = ChannelMapping::family0(1).unwrap();
        let stereo = ChannelMapping::family0(2).unwrap();
        assert_ne!(current_fingerprint(&mono), current_fingerprint(&stereo));
        assert_eq!(current_fingerprint(&mono), current_fingerprint(&mono));
        assert!(current_fingerprint(&stereo).layout.is_none());
        // equal state sizes, different layouts
        let a = ChannelMapping::family1(2, 1, vec![0, 2, 1]).unwrap();
        let b = ChannelMapping::family1(2, 1, vec![0, 1, 2]).unwrap();
        let (fa, fb) = (current_fingerprint(&a), current_fingerprint(&b));
        assert_eq!(fa.state_size, fb.state_size);
        assert_ne!(fa, fb);
        assert_ne!(
            current_fingerprint(&surround(6)),
            current_fingerprint(&surround(8))
        );
    }

    #[test]
    fn a_state_never_imports_into_another_layout() {
        let a = ChannelMapping::family1(2, 1, vec![0, 2, 1]).unwrap();
        let b = ChannelMapping::family1(2, 1, vec![0, 1, 2]).unwrap();
        let image = Decoder::new(48_000, &a).unwrap().export_state().unwrap();
        assert!(
            Decoder::new(48_000, &b)
                .unwrap()
                .import_state(&image)
                .is_err()
        );
        let c = ChannelMapping::family1(2, 0, vec![0, 1, 0]).unwrap();
        assert!(
            Decoder::new(48_000, &c)
                .unwrap()
                .import_state(&image)
                .is_err()
        );
        let mut other_rate = Decoder::new(24_000, &a).unwrap();
        assert!(other_rate.import_state(&image).is_err());
        let mut same = Decoder::new(48_000, &a).unwrap();
        assert!(same.import_state(&image).is_ok());
    }
}
