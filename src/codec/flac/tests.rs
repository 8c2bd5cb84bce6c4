//! Whole-module tests: encode → scan → decode round trips, the reference `flac`
//! command as an independent oracle in both directions, damage, and garbage.

use std::path::Path;
use std::process::Command;

use proptest::prelude::*;

use super::checksum::crc16;
use super::header::{RawStreamInfo, parse_frame_header, write_frame_header, write_streaminfo};
use super::synth::{silent_flac, silent_flac_with_tail_tone, tail_tone_sample};
use super::*;

/// Deterministic xorshift64* generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in -1..1.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// Music-like test audio: tones plus low-passed and white noise, with occasional
/// extreme values so that the ends of the sample range are exercised.
fn signal(channels: u16, bits: u16, frames: usize, seed: u64) -> Vec<i32> {
    let max = (1i64 << (bits - 1)) - 1;
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut low = vec![0f64; channels.into()];
    let mut out = Vec::with_capacity(frames * usize::from(channels));
    for f in 0..frames {
        for (c, low) in low.iter_mut().enumerate() {
            let white = rng.unit();
            *low = 0.98 * *low + 0.02 * white;
            let tone = (f as f64 * 0.013 * (c + 1) as f64).sin();
            let v = (0.3 * tone + 4.0 * *low + 0.02 * white) * max as f64;
            let v = match rng.next() % 4000 {
                0 => max,
                1 => -max - 1,
                _ => (v.round() as i64).clamp(-max - 1, max),
            };
            out.push(v as i32);
        }
    }
    out
}

/// Encodes, pushing in irregular amounts (frames split across calls).
fn encode(channels: u16, bits: u16, rate: u32, samples: &[i32]) -> Vec<u8> {
    encode_on(1, channels, bits, rate, samples)
}

fn encode_on(threads: usize, channels: u16, bits: u16, rate: u32, samples: &[i32]) -> Vec<u8> {
    let mut enc = FlacEncoder::with_threads(channels, bits, rate, threads).unwrap();
    let mut rest = samples;
    let mut step = 1;
    while !rest.is_empty() {
        let n = step.min(rest.len());
        enc.push(&rest[..n]).unwrap();
        rest = &rest[n..];
        step = step * 3 + 1;
    }
    enc.finish().unwrap()
}

fn frame_bytes<'a>(bytes: &'a [u8], frames: &[FrameEntry]) -> &'a [u8] {
    let (a, b) = (frames[0].offset as usize, frames.last().unwrap());
    &bytes[a..(b.offset + b.len) as usize]
}

/// Decodes `frames` (consecutive) of a scanned file.
fn decode(bytes: &[u8], layout: &FlacLayout, frames: &[FrameEntry]) -> Result<Vec<i32>, FlacError> {
    let first = frames[0].first_sample;
    let samples = frames.iter().map(|f| u64::from(f.samples)).sum();
    decode_frames(&layout.info, frame_bytes(bytes, frames), first, samples)
}

fn md5_of(bits: u16, samples: &[i32]) -> [u8; 16] {
    let mut m = AudioMd5::new(bits);
    m.update(samples);
    m.finish()
}

/// Little-endian bytes as `flac --force-raw-format --endian=little --sign=signed` uses.
fn raw_bytes(bits: u16, samples: &[i32]) -> Vec<u8> {
    let n = usize::from(bits).div_ceil(8);
    samples
        .iter()
        .flat_map(|s| s.to_le_bytes()[..n].to_vec())
        .collect()
}

/// Runs the reference `flac` command; fails (does not skip) if it is missing.
fn flac(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new("flac")
        .arg("--silent")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "these tests need the reference `flac` command (Debian package `flac`, \
                 `apt-get install flac`); running it failed: {e}"
            )
        })
}

fn flac_ok(args: &[&str], dir: &Path) {
    let out = flac(args, dir);
    assert!(
        out.status.success(),
        "flac {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `flac -t` accepts the file (and its MD5, if set) and `flac -d` gives exactly
/// `samples` (`flac` writes raw samples of 8, 16 and 24 bits only; for other depths
/// the MD5 check of `flac -t` stands in).
fn check_with_reference_decoder(bytes: &[u8], bits: u16, samples: &[i32]) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.flac"), bytes).unwrap();
    flac_ok(&["-t", "x.flac"], dir.path());
    if ![8, 16, 24].contains(&bits) {
        assert_eq!(scan(bytes).unwrap().info.md5, md5_of(bits, samples));
        return;
    }
    flac_ok(
        &[
            "-d",
            "--force-raw-format",
            "--endian=little",
            "--sign=signed",
            "-o",
            "x.raw",
            "x.flac",
        ],
        dir.path(),
    );
    let raw = std::fs::read(dir.path().join("x.raw")).unwrap();
    assert!(
        raw == raw_bytes(bits, samples),
        "flac -d output differs from the input"
    );
}

/// Encodes `samples` with `flac` (extra options `opts`).
fn reference_encode(
    channels: u16,
    bits: u16,
    rate: u32,
    samples: &[i32],
    opts: &[&str],
) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.raw"), raw_bytes(bits, samples)).unwrap();
    let (c, b, r) = (
        format!("--channels={channels}"),
        format!("--bps={bits}"),
        format!("--sample-rate={rate}"),
    );
    let mut args = vec!["--force-raw-format", "--endian=little", "--sign=signed"];
    args.extend([c.as_str(), b.as_str(), r.as_str()]);
    args.extend(opts);
    args.extend(["-o", "x.flac", "x.raw"]);
    flac_ok(&args, dir.path());
    std::fs::read(dir.path().join("x.flac")).unwrap()
}

/// Round trip with every frame range decoded and checked against the input.
fn round_trip(channels: u16, bits: u16, rate: u32, frames: usize) {
    let what = format!("{channels} ch, {bits} bits, {rate} Hz, {frames} frames");
    let input = signal(channels, bits, frames, frames as u64 + u64::from(rate));
    let bytes = encode(channels, bits, rate, &input);
    let layout = scan(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    let info = &layout.info;
    assert_eq!(
        (
            info.channels,
            info.bits_per_sample,
            info.sample_rate,
            info.total_samples
        ),
        (channels, bits, rate, frames as u64),
        "{what}"
    );
    assert_eq!(info.md5, md5_of(bits, &input), "{what}");
    assert_eq!(layout.frames.len(), frames.div_ceil(4096), "{what}");
    let ch = usize::from(channels);
    let n = layout.frames.len();
    for i in 0..n {
        for j in i + 1..=n {
            let got = decode(&bytes, &layout, &layout.frames[i..j]).unwrap();
            let from = layout.frames[i].first_sample as usize * ch;
            assert!(
                got == input[from..from + got.len()],
                "{what}: frames {i}..{j}"
            );
            let end = &layout.frames[j - 1];
            assert_eq!(
                from + got.len(),
                (end.first_sample + u64::from(end.samples)) as usize * ch
            );
        }
    }
}

#[test]
fn round_trips_16_and_24_bit() {
    for bits in [16, 24] {
        for channels in [1, 2, 6, 8] {
            for (rate, frames) in [(8_000, 1), (44_100, 4095), (384_000, 2 * 4096 + 77)] {
                round_trip(channels, bits, rate, frames);
            }
        }
        round_trip(2, bits, 44_100, 4096);
        round_trip(1, bits, 384_000, 4097);
    }
}

#[test]
fn round_trips_other_bit_depths_and_rates() {
    for bits in [8, 12, 20] {
        round_trip(2, bits, 22_050, 5000);
    }
    // Rates with and without a frame header code of their own.
    for rate in [1, 655_350, 100_001, 255_000, 65_535] {
        round_trip(1, 16, rate, 300);
    }
}

#[test]
fn reference_decoder_agrees_with_our_encoder() {
    for (channels, bits, rate, frames) in [
        (2, 16, 44_100, 3 * 4096 + 1),
        (1, 16, 384_000, 4096 + 5),
        (6, 24, 48_000, 4000),
        (8, 24, 384_000, 2 * 4096 + 9),
        (2, 24, 96_000, 1),
        (2, 8, 8_000, 700),
        (3, 20, 655_350, 500),
    ] {
        let input = signal(channels, bits, frames, 7);
        check_with_reference_decoder(&encode(channels, bits, rate, &input), bits, &input);
    }
}

#[test]
fn every_bit_depth_and_channel_count_passes_the_reference_decoder() {
    // Rates of every kind of frame header coding: a code of their own, kHz, Hz, tens of
    // Hz, none ("see STREAMINFO"); cycled over the shapes.
    let rates = [
        8_000, 22_050, 44_100, 48_000, 96_000, 192_000, 37_000, 1, 65_535, 384_000, 100_001,
        655_350,
    ];
    let mut k = 0;
    for bits in [8, 12, 16, 20, 24] {
        for channels in 1..=8u16 {
            let (rate, frames) = (rates[k % rates.len()], 4096 + 37 * usize::from(channels));
            k += 1;
            let input = signal(channels, bits, frames, k as u64);
            let bytes = encode(channels, bits, rate, &input);
            let info = scan(&bytes).unwrap().info;
            assert_eq!(
                (info.channels, info.bits_per_sample, info.sample_rate),
                (channels, bits, rate)
            );
            check_with_reference_decoder(&bytes, bits, &input);
        }
    }
}

#[test]
fn reference_encoder_output_scans_and_decodes() {
    for (channels, bits, rate, frames, opts) in [
        (2, 16, 44_100, 3 * 4096 + 1000, &["-5"][..]),
        (1, 16, 384_000, 10_000, &["-5"][..]),
        (6, 24, 48_000, 5000, &["-5"][..]),
        (2, 24, 44_100, 1, &["-5"][..]),
        (
            2,
            16,
            44_100,
            9000,
            &["-8", "--blocksize=1152", "-T", "TITLE=Tést"][..],
        ),
        (1, 16, 8_000, 3000, &["-0", "--blocksize=192"][..]),
        (8, 8, 48_000, 5000, &["-5"][..]),
        // A rate without a header code: "see STREAMINFO".
        (1, 16, 100_001, 5000, &["-5", "--lax"][..]),
    ] {
        let what = format!("flac {opts:?}, {channels} ch, {bits} bits, {rate} Hz, {frames} frames");
        let input = signal(channels, bits, frames, 3);
        let bytes = reference_encode(channels, bits, rate, &input, opts);
        let layout = scan(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(layout.info.total_samples, frames as u64, "{what}");
        assert_eq!(layout.info.md5, md5_of(bits, &input), "{what}");
        let comment = layout.vorbis_comment.as_ref().unwrap();
        assert!(comment.vendor.contains("libFLAC"), "{what}");
        assert_eq!(
            comment.comments.contains(&"TITLE=Tést".to_string()),
            opts.len() == 4,
            "{what}"
        );
        let got = decode(&bytes, &layout, &layout.frames).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(got == input, "{what}");
        let mid = layout.frames.len() / 2;
        let got = decode(&bytes, &layout, &layout.frames[mid..]).unwrap();
        let from = layout.frames[mid].first_sample as usize * usize::from(channels);
        assert!(got == input[from..], "{what}");
    }
}

/// One frame holding `samples` (at most a block), numbered `number` (with `variable`, a
/// sample number): encoded as a stream of its own, then re-headed.
fn frame_of(
    channels: u16,
    bits: u16,
    rate: u32,
    samples: &[i32],
    variable: bool,
    number: u64,
) -> Vec<u8> {
    let bytes = encode(channels, bits, rate, samples);
    let layout = scan(&bytes).unwrap();
    assert_eq!(layout.frames.len(), 1);
    let frame = frame_bytes(&bytes, &layout.frames);
    let (mut h, len) = parse_frame_header(frame).unwrap();
    h.variable = variable;
    h.number = number;
    let mut out = Vec::new();
    write_frame_header(&mut out, &h);
    out.extend_from_slice(&frame[len..frame.len() - 2]);
    let crc = crc16(0, &out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// A variable-blocksize stream of irregular blocks, written frame by frame.
fn variable_stream(channels: u16, bits: u16, rate: u32, input: &[i32], sizes: &[usize]) -> Vec<u8> {
    let ch = usize::from(channels);
    let mut frames = Vec::new();
    let mut at = 0;
    for &size in sizes {
        let block = &input[at * ch..(at + size) * ch];
        frames.extend(frame_of(channels, bits, rate, block, true, at as u64));
        at += size;
    }
    assert_eq!(at * ch, input.len());
    let raw = RawStreamInfo {
        info: StreamInfo {
            sample_rate: rate,
            channels,
            bits_per_sample: bits,
            total_samples: at as u64,
            md5: md5_of(bits, input),
            min_block_size: *sizes.iter().min().unwrap() as u16,
            max_block_size: *sizes.iter().max().unwrap() as u16,
        },
        min_frame_size: 0,
        max_frame_size: 0,
    };
    let mut out = b"fLaC".to_vec();
    out.extend_from_slice(&[0x80, 0, 0, 34]);
    out.extend_from_slice(&write_streaminfo(&raw));
    out.extend_from_slice(&frames);
    out
}

#[test]
fn loud_noise_stays_near_pcm_size() {
    // White noise at a quarter of full scale, and loud low-passed noise: an encoder whose
    // Rice parameter search overflows (flacenc's did) codes 24-bit frames of these
    // several times larger than the samples; verbatim subframes must bound them.
    for (channels, bits, low_pass) in [
        (1, 24, false),
        (2, 24, false),
        (2, 24, true),
        (2, 16, false),
    ] {
        let max = ((1i64 << (bits - 1)) - 1) as f64;
        let mut rng = Rng(99);
        let mut low = 0.0;
        let input: Vec<i32> = (0..3 * 4096 * channels)
            .map(|_| {
                let w = rng.unit();
                low = 0.995 * low + 0.005 * w;
                let x = if low_pass {
                    6.0 * low + 0.002 * w
                } else {
                    0.25 * w
                };
                (x * max).round().clamp(-max - 1.0, max) as i32
            })
            .collect();
        let bytes = encode(channels as u16, bits, 48_000, &input);
        let pcm = input.len() * usize::from(bits / 8);
        assert!(
            bytes.len() < pcm + pcm / 50,
            "{channels} ch {bits} bits: {} > {pcm}",
            bytes.len()
        );
        check_with_reference_decoder(&bytes, bits, &input);
    }
}

#[test]
fn variable_blocksize_streams() {
    let sizes = [1000, 4096, 17, 2500, 4096, 1, 300];
    let total: usize = sizes.iter().sum();
    let input = signal(2, 16, total, 11);
    let bytes = variable_stream(2, 16, 48_000, &input, &sizes);
    let layout = scan(&bytes).unwrap();
    let got: Vec<u32> = layout.frames.iter().map(|f| f.samples).collect();
    assert_eq!(got, sizes.map(|s| s as u32));
    for i in 0..sizes.len() {
        for j in i + 1..=sizes.len() {
            let got = decode(&bytes, &layout, &layout.frames[i..j]).unwrap();
            let from = layout.frames[i].first_sample as usize * 2;
            assert!(got == input[from..from + got.len()]);
        }
    }
    check_with_reference_decoder(&bytes, 16, &input);
}

/// Re-heads every frame through `edit` (CRCs recomputed), as a damaged or malicious
/// encoder might write them.
fn reheaded(bytes: &[u8], edit: impl Fn(usize, &mut header::FrameHeader)) -> Vec<u8> {
    let layout = scan(bytes).unwrap();
    let mut out = bytes[..layout.audio_offset as usize].to_vec();
    for (i, f) in layout.frames.iter().enumerate() {
        let frame = &bytes[f.offset as usize..(f.offset + f.len) as usize];
        let (mut h, len) = parse_frame_header(frame).unwrap();
        edit(i, &mut h);
        let start = out.len();
        write_frame_header(&mut out, &h);
        out.extend_from_slice(&frame[len..frame.len() - 2]);
        let crc = crc16(0, &out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    out
}

fn scan_problem(bytes: &[u8]) -> (u64, FrameProblem) {
    match scan(bytes) {
        Err(FlacError::Frame { index, problem, .. }) => (index, problem),
        other => panic!("expected a frame error, got {other:?}"),
    }
}

#[test]
fn inconsistent_streams_are_rejected() {
    let input = signal(2, 16, 3 * 4096 + 10, 5);
    let good = encode(2, 16, 44_100, &input);
    let mismatch = |what| FrameProblem::Mismatch {
        what,
        found: 0,
        expected: 0,
    };
    let kind = |p: FrameProblem| match p {
        FrameProblem::Mismatch { what, .. } => mismatch(what),
        p => p,
    };

    let problem = |bytes: &[u8]| {
        let (index, p) = scan_problem(bytes);
        (index, kind(p))
    };
    let bad = reheaded(&good, |i, h| {
        if i == 2 {
            h.sample_rate = Some(48_000);
        }
    });
    assert_eq!(problem(&bad), (2, mismatch("sample rate")));
    let bad = reheaded(&good, |i, h| {
        if i == 1 {
            h.bits = Some(24);
        }
    });
    assert_eq!(problem(&bad), (1, mismatch("bits per sample")));
    let bad = reheaded(&good, |_, h| h.channels = header::Channels::Independent(3));
    assert_eq!(problem(&bad), (0, mismatch("channel count")));
    // Numbering: a gap, a switch to sample numbers, a wrong first frame.
    let bad = reheaded(&good, |i, h| {
        h.number = if i >= 2 { i as u64 + 1 } else { i as u64 }
    });
    let gap = FrameProblem::FrameNumber {
        expected: 2,
        found: 3,
    };
    assert_eq!(problem(&bad), (2, gap.clone()));
    // Without a total in STREAMINFO too.
    let mut unknown = bad.clone();
    unknown[21] &= 0xF0;
    unknown[22..26].fill(0);
    assert_eq!(problem(&unknown), (2, gap));
    let bad = reheaded(&good, |i, h| {
        if i == 2 {
            h.variable = true;
            h.number = 2 * 4096;
        }
    });
    assert_eq!(problem(&bad), (2, FrameProblem::BlockingChanged));
    let bad = reheaded(&good, |_, h| h.number += 1);
    assert_eq!(
        problem(&bad),
        (
            0,
            FrameProblem::FrameNumber {
                expected: 0,
                found: 1
            }
        )
    );
    // "See STREAMINFO" codes are fine.
    let ok = reheaded(&good, |_, h| {
        h.sample_rate = None;
        h.bits = None;
    });
    assert_eq!(
        decode(&ok, &scan(&ok).unwrap(), &scan(&ok).unwrap().frames).unwrap(),
        input
    );

    // A short block that is not the last.
    let mut frames = frame_of(1, 16, 8000, &[1; 4096], false, 0);
    frames.extend(frame_of(1, 16, 8000, &[2; 100], false, 1));
    frames.extend(frame_of(1, 16, 8000, &[3; 4096], false, 2));
    let mut bytes = good[..42].to_vec();
    bytes[4] |= 0x80; // STREAMINFO the only metadata block
    let raw = RawStreamInfo {
        info: StreamInfo {
            sample_rate: 8000,
            channels: 1,
            bits_per_sample: 16,
            total_samples: 0,
            md5: [0; 16],
            min_block_size: 4096,
            max_block_size: 4096,
        },
        min_frame_size: 0,
        max_frame_size: 0,
    };
    bytes[8..42].copy_from_slice(&write_streaminfo(&raw));
    bytes.extend_from_slice(&frames);
    assert_eq!(
        scan_problem(&bytes),
        (
            1,
            FrameProblem::ShortBlock {
                expected: 4096,
                found: 100
            }
        )
    );

    // STREAMINFO values that are invalid or that decoding does not support.
    let with_info = |edit: &dyn Fn(&mut StreamInfo)| {
        let mut raw = header::parse_streaminfo(good[8..42].try_into().unwrap());
        edit(&mut raw.info);
        let mut bytes = good.clone();
        bytes[8..42].copy_from_slice(&write_streaminfo(&raw));
        scan(&bytes)
    };
    assert!(matches!(
        with_info(&|i| i.bits_per_sample = 32),
        Err(FlacError::Unsupported(_))
    ));
    assert!(matches!(
        with_info(&|i| i.bits_per_sample = 3),
        Err(FlacError::Metadata { .. })
    ));
    assert!(matches!(
        with_info(&|i| i.sample_rate = 0),
        Err(FlacError::Metadata { .. })
    ));
    assert!(matches!(
        with_info(&|i| i.max_block_size = 15),
        Err(FlacError::Metadata { .. })
    ));
    assert!(matches!(
        with_info(&|i| i.min_block_size = 8192),
        Err(FlacError::Metadata { .. })
    ));
    // Frames larger than STREAMINFO's maximum block size.
    assert_eq!(
        with_info(&|i| (i.min_block_size, i.max_block_size) = (16, 4095)).map(|_| ()),
        Err(FlacError::Frame {
            index: 0,
            offset: scan(&good).unwrap().audio_offset,
            problem: FrameProblem::Mismatch {
                what: "block size (at most STREAMINFO's maximum)",
                found: 4096,
                expected: 4095
            }
        })
    );

    // STREAMINFO's total must match; 0 means unknown.
    let mut bad = good.clone();
    bad[25] ^= 1; // lowest byte of total_samples
    assert!(matches!(scan(&bad), Err(FlacError::TotalSamples { .. })));
    let mut unknown = good.clone();
    unknown[21] &= 0xF0;
    unknown[22..26].fill(0);
    assert_eq!(scan(&unknown).unwrap().info.total_samples, 0);

    // Metadata problems.
    assert_eq!(scan(b"RIFF...."), Err(FlacError::NotFlac));
    let audio = scan(&good).unwrap().audio_offset as usize;
    assert!(matches!(scan(&good[..audio]), Err(FlacError::NoFrames)));
    assert!(matches!(scan(&good[..30]), Err(FlacError::Metadata { .. })));
    let mut bad = good.clone();
    bad[4] = 0x84; // first block VORBIS_COMMENT
    assert!(matches!(scan(&bad), Err(FlacError::Metadata { .. })));
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"TAG");
    assert!(matches!(scan(&trailing), Err(FlacError::Frame { .. })));
}

#[test]
fn decode_frames_checks_what_it_is_given() {
    let input = signal(2, 24, 3 * 4096, 9);
    let bytes = encode(2, 24, 48_000, &input);
    let layout = scan(&bytes).unwrap();
    let (info, frames) = (&layout.info, &layout.frames);
    let two = frame_bytes(&bytes, &frames[1..3]);
    assert!(decode_frames(info, two, 4096, 8192).is_ok());
    let err = decode_frames(info, two, 0, 8192).unwrap_err();
    assert!(matches!(
        err,
        FlacError::Decode {
            offset: 0,
            problem: FrameProblem::SampleNumber { .. },
            ..
        }
    ));
    assert!(matches!(
        decode_frames(info, two, 4096, 8000),
        Err(FlacError::Decode {
            problem: FrameProblem::TooManySamples { .. },
            ..
        })
    ));
    assert!(matches!(
        decode_frames(info, two, 4096, 9000),
        Err(FlacError::SampleCount { .. })
    ));
    assert!(matches!(
        decode_frames(info, &two[..two.len() - 1], 4096, 8192),
        Err(FlacError::Decode { .. })
    ));
    // Not starting at a frame.
    assert!(decode_frames(info, &two[1..], 4096, 8192).is_err());
    // Another stream's parameters.
    let other = StreamInfo {
        channels: 1,
        ..info.clone()
    };
    assert!(decode_frames(&other, two, 4096, 8192).is_err());
    assert_eq!(decode_frames(info, &[], 4096, 0), Ok(vec![]));
}

#[test]
fn threads_give_identical_output() {
    for frames in [1, 3 * 4096, 16 * 4096, 40 * 4096 + 5] {
        let input = signal(2, 16, frames, 4);
        let one = encode(2, 16, 44_100, &input);
        for threads in [2, 3] {
            assert!(
                encode_on(threads, 2, 16, 44_100, &input) == one,
                "{frames} frames, {threads} threads"
            );
        }
    }
    assert!(matches!(
        FlacEncoder::with_threads(2, 16, 44_100, 0),
        Err(FlacError::Parameter(_))
    ));
}

#[test]
fn encoder_rejects_bad_parameters_and_input() {
    for (c, b, r) in [
        (0, 16, 44_100),
        (9, 16, 44_100),
        (2, 32, 44_100),
        (2, 10, 44_100),
        (2, 16, 0),
        (2, 16, 655_351),
    ] {
        assert!(
            matches!(FlacEncoder::new(c, b, r), Err(FlacError::Parameter(_))),
            "{c} {b} {r}"
        );
    }
    let mut enc = FlacEncoder::new(2, 16, 44_100).unwrap();
    enc.push(&[1, 2, 3]).unwrap();
    assert_eq!(
        enc.push(&[0, 32768]),
        Err(FlacError::InputRange {
            index: 4,
            value: 32768,
            bits: 16
        })
    );
    assert!(matches!(
        enc.finish(),
        Err(FlacError::PartialFrame { samples: 3, .. })
    ));
    assert_eq!(
        FlacEncoder::new(1, 8, 8000).unwrap().finish(),
        Err(FlacError::NoFrames)
    );
    // The edges of the range are fine.
    let input = [-128, 127, 0, -1];
    let bytes = encode(1, 8, 8000, &input);
    assert_eq!(
        decode(
            &bytes,
            &scan(&bytes).unwrap(),
            &scan(&bytes).unwrap().frames
        )
        .unwrap(),
        input
    );
}

/// A small file for the exhaustive damage tests: two frames of quiet audio.
fn small_file() -> (Vec<i32>, Vec<u8>) {
    let input: Vec<i32> = signal(1, 16, 4096 + 300, 1)
        .iter()
        .map(|s| s / 2048)
        .collect();
    let bytes = encode(1, 16, 8000, &input);
    (input, bytes)
}

#[test]
fn any_damaged_byte_in_a_frame_is_an_error() {
    let (_, bytes) = small_file();
    let layout = scan(&bytes).unwrap();
    for f in &layout.frames {
        let frame = f.offset as usize..(f.offset + f.len) as usize;
        for at in frame.clone() {
            for flip in [0x01, 0x80, 0xFF] {
                let mut bad = bytes.clone();
                bad[at] ^= flip;
                assert!(scan(&bad).is_err(), "scan accepted byte {at} ^ {flip:#x}");
                let got = decode_frames(
                    &layout.info,
                    &bad[frame.clone()],
                    f.first_sample,
                    f.samples.into(),
                );
                assert!(got.is_err(), "decode accepted byte {at} ^ {flip:#x}");
            }
        }
    }
}

#[test]
fn truncation_is_an_error() {
    let (_, bytes) = small_file();
    let layout = scan(&bytes).unwrap();
    for len in 0..bytes.len() {
        assert!(scan(&bytes[..len]).is_err(), "scan accepted {len} bytes");
    }
    let all = frame_bytes(&bytes, &layout.frames);
    let total = layout.info.total_samples;
    for len in 0..all.len() {
        assert!(decode_frames(&layout.info, &all[..len], 0, total).is_err());
    }
}

#[test]
fn synthetic_silence_is_valid_and_fast() {
    for (channels, bits, rate, total) in [
        (2, 16, 8000, 10_000),
        (1, 24, 44_100, 4096),
        (3, 8, 384_000, 1),
    ] {
        let bytes = silent_flac(channels, bits, rate, total);
        let layout = scan(&bytes).unwrap();
        assert_eq!(layout.info.total_samples, total);
        let got = decode(&bytes, &layout, &layout.frames).unwrap();
        assert!(got.len() == total as usize * usize::from(channels) && got.iter().all(|&s| s == 0));
        check_with_reference_decoder(&bytes, bits, &got);

        let bytes = silent_flac_with_tail_tone(channels, bits, rate, total);
        let layout = scan(&bytes).unwrap();
        let want: Vec<i32> = (0..total)
            .flat_map(|f| (0..channels).map(move |c| tail_tone_sample(bits, rate, total, f, c)))
            .collect();
        assert_eq!(decode(&bytes, &layout, &layout.frames).unwrap(), want);
        check_with_reference_decoder(&bytes, bits, &want);
    }

    // More than 4 GiB of PCM: 8 ch × 24 bit × 384 kHz × 470 s.
    let total = 384_000 * 470;
    let started = std::time::Instant::now();
    let bytes = silent_flac_with_tail_tone(8, 24, 384_000, total);
    let built = started.elapsed();
    let layout = scan(&bytes).unwrap();
    let scanned = started.elapsed() - built;
    assert!(total * 8 * 3 > 4 << 30);
    assert_eq!(layout.frames.len() as u64, total.div_ceil(4096));
    eprintln!(
        "silent 4 GiB: {} bytes, built in {built:?}, scanned in {scanned:?}",
        bytes.len()
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.flac"), &bytes).unwrap();
    flac_ok(&["-t", "big.flac"], dir.path());
    let tail = &layout.frames[layout.frames.len() - 100..];
    let got = decode(&bytes, &layout, tail).unwrap();
    let from = tail[0].first_sample;
    for (i, s) in got.iter().enumerate() {
        let (f, c) = (from + i as u64 / 8, (i % 8) as u16);
        assert_eq!(*s, tail_tone_sample(24, 384_000, total, f, c));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn frame_ranges_decode_to_slices_of_the_whole(a in 0usize..1000, b in 0usize..1000) {
        let (input, bytes, layout) = &*SHARED;
        let n = layout.frames.len();
        let (i, j) = (a % n, b % n);
        let (i, j) = (i.min(j), i.max(j) + 1);
        let got = decode(bytes, layout, &layout.frames[i..j]).unwrap();
        let from = layout.frames[i].first_sample as usize * 2;
        prop_assert!(got == input[from..from + got.len()]);
    }

    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = scan(&data);
        let audio = SHARED.2.audio_offset as usize;
        let mut flac = SHARED.1[..audio].to_vec();
        flac.extend_from_slice(&data);
        let _ = scan(&flac);
        let _ = decode_frames(&SHARED.2.info, &data, 0, 4096);
        // Garbage behind a valid frame header.
        let mut frame = SHARED.1[audio..audio + 10].to_vec();
        frame.extend_from_slice(&data);
        let _ = decode_frames(&SHARED.2.info, &frame, 0, 4096);
    }

    #[test]
    fn damage_anywhere_never_gives_wrong_audio(flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4)) {
        let (input, bytes, layout) = &*SHARED;
        let mut bad = bytes.clone();
        let (len, audio) = (bad.len(), layout.audio_offset as usize);
        for &(at, x) in &flips {
            // Half the flips land in the marker and the metadata blocks.
            let at = if at % 2 == 0 { at / 2 % audio } else { at / 2 % len };
            bad[at] ^= x;
        }
        if let Ok(layout) = scan(&bad)
            && let Ok(got) = decode(&bad, &layout, &layout.frames)
        {
            prop_assert!(got == *input);
        }
    }

    #[test]
    fn damaged_frames_are_errors(flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4)) {
        let (_, bytes, layout) = &*SHARED;
        let mut bad = bytes.clone();
        let audio = layout.audio_offset as usize;
        let len = bad.len() - audio;
        for &(at, x) in &flips {
            bad[audio + at % len] ^= x;
        }
        // Flips of one byte may cancel out.
        prop_assume!(bad != *bytes);
        prop_assert!(scan(&bad).is_err());
        let all = frame_bytes(&bad, &layout.frames);
        prop_assert!(decode_frames(&layout.info, all, 0, layout.info.total_samples).is_err());
    }
}

type Shared = (Vec<i32>, Vec<u8>, FlacLayout);

/// One stereo file shared by the property tests (encoded once).
static SHARED: std::sync::LazyLock<Shared> = std::sync::LazyLock::new(|| {
    let input = signal(2, 16, 9 * 4096 + 1234, 2);
    let bytes = encode(2, 16, 44_100, &input);
    let layout = scan(&bytes).unwrap();
    (input, bytes, layout)
});
