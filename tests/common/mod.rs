//! Shared helpers of the integration tests: synthetic inputs, the sequential-decode
//! oracle, and running the real binary.
#![allow(dead_code)] // each test crate uses a different subset

pub mod faulty;
pub mod mount;
pub mod serve;
pub mod servers;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use zarr_wavfs::archive::index::scan;
use zarr_wavfs::archive::ogg::{PacketAssembler, parse_page};
use zarr_wavfs::archive::{Archive, StreamBytes};
use zarr_wavfs::codec::opus::Decoder;

/// Writes a WAV of `secs` seconds: a rising sweep plus noise, deterministic.
pub fn write_wav(path: &Path, rate: u32, channels: u16, bits: u16, float: bool, frames: u64) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let mut seed = 12345u32;
    for i in 0..frames {
        let t = i as f64 / f64::from(rate);
        for c in 0..channels {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (f64::from(seed >> 8) / f64::from(1u32 << 24)) - 0.5;
            let f = 100.0 + 0.2 * f64::from(rate) * (t / 30.0).fract() + 50.0 * f64::from(c);
            let v = 0.4 * (2.0 * std::f64::consts::PI * f * t).sin() + 0.15 * noise;
            if float {
                w.write_sample(v as f32).unwrap();
            } else {
                let max = f64::from((1u32 << (bits - 1)) - 1);
                w.write_sample((v * max) as i32).unwrap();
            }
        }
    }
    w.finalize().unwrap();
}

/// The oracle: one sequential decode of the whole stream with a fresh decoder, pre-skip
/// dropped and cut to the recording's frames. Independent of the engine's span logic.
pub fn sequential_decode(archive: &Archive, rec: &str) -> Vec<i16> {
    let r = archive.recording(rec).unwrap();
    let m = r.meta().clone();
    let bytes = r.read(0..m.stream_bytes).unwrap();
    // the OpusHead's layout: a multistream decoder for mapping family 1
    let head = scan(&bytes, m.sample_rate).unwrap().head;
    let mut dec = Decoder::new(m.sample_rate, &head.mapping).unwrap();
    let mut out = Vec::new();
    let mut asm = PacketAssembler::new();
    let mut pos = 0;
    let mut n = 0;
    while pos < bytes.len() {
        let page = parse_page(&bytes[pos..], pos as u64).unwrap();
        asm.push::<()>(&page, |p| {
            // the first two packets are the OpusHead and OpusTags headers
            if n >= 2 {
                dec.decode(p, &mut out).unwrap();
            }
            n += 1;
            Ok(())
        })
        .unwrap();
        pos += page.len;
    }
    let ch = usize::from(m.channels);
    let skip = m.pre_skip_samples() as usize * ch;
    out.drain(..skip);
    out.truncate(m.frames as usize * ch);
    assert_eq!(
        out.len(),
        m.frames as usize * ch,
        "stream shorter than its frame count"
    );
    out
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_zarr-wavfs"))
}

/// Runs the binary; returns its output (never panics on a non-zero exit).
pub fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut c = Command::new(bin());
    for a in args {
        c.arg(a);
    }
    c.env("RUST_LOG", "warn").output().unwrap()
}

/// `run`, but a run past `limit` is killed and fails the test as a hang.
pub fn run_bounded(args: &[&dyn AsRef<std::ffi::OsStr>], limit: std::time::Duration) -> Output {
    let mut c = Command::new(bin());
    for a in args {
        c.arg(a);
    }
    let mut child = c
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            child.kill().unwrap();
            let o = child.wait_with_output().unwrap();
            panic!(
                "hung: zarr-wavfs {:?}; stderr: {}",
                args.iter()
                    .map(|a| a.as_ref().to_owned())
                    .collect::<Vec<_>>(),
                stderr(&o)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts a clean failure: non-zero exit, no panic or backtrace, and an error line that
/// names `needle` (usually the offending path).
pub fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "expected failure, got success; stderr: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "panic: {err}"
    );
    assert!(
        err.contains(needle),
        "error does not mention {needle:?}: {err}"
    );
}

/// Whether python3 can import `modules` (comma-separated). Without them the test says so
/// and passes, except under CI (`CI` set), where they must be there.
pub fn python_has(modules: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 cannot import {modules} in CI (scripts/setup.sh installs them)"
        );
        eprintln!("SKIPPED: python3 cannot import {modules}; run scripts/setup.sh");
    }
    ok
}

/// Decodes an Ogg Opus file with opusdec (48 kHz, no dither) to `out`: WAV, or raw when
/// it ends in .raw. An independent decoder to compare ours with.
pub fn opusdec(opus: &Path, out: &Path) {
    let o = Command::new("opusdec")
        .args(["--quiet", "--no-dither", "--rate", "48000"])
        .arg(opus)
        .arg(out)
        .output()
        .expect("opusdec must be installed (scripts/setup.sh installs opus-tools)");
    assert!(
        o.status.success(),
        "opusdec: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A second of 8 kHz mono 16-bit noise at `dir/name`.
pub fn short_wav(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    write_wav(&p, 8_000, 1, 16, false, 8_000);
    p
}

/// `cp -a from to`, replacing `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    let o = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Asserts that nothing failed half-way: the archive at `arch`, if it was created at
/// all, holds no recording.
pub fn assert_no_recordings(arch: &Path) {
    if arch.exists() {
        assert!(
            Archive::open(arch)
                .unwrap()
                .recordings()
                .unwrap()
                .is_empty()
        );
    }
}

/// A small deterministic generator, so failures reproduce.
pub struct Lcg(pub u64);
impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 11
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
