//! Import holes an adversarial run found (issue 19), each closed and kept closed here:
//! `--force` replacing a folder another import made meanwhile, first imports into a new
//! archive failing each other, inputs whose WAV cannot be served, a FLAC input
//! truncated while it is read (SIGBUS through a mapping), and damaged lossy inputs
//! losing audio with exit 0.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{assert_clean_failure, assert_no_recordings, run, run_bounded, stderr, stdout};
use sha2::{Digest, Sha256};
use zarr_wavfs::archive::{Archive, StreamBytes};

const LIMIT: Duration = Duration::from_secs(120);

fn tool(name: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) {
    let mut c = Command::new(name);
    for a in args {
        c.arg(a);
    }
    let o = c
        .output()
        .unwrap_or_else(|e| panic!("{name} must be installed (scripts/setup.sh): {e}"));
    assert!(o.status.success(), "{name}: {}", stderr(&o));
}

/// The recordings `ls` lists, as the lines naming them.
fn listed(arch: &Path) -> Vec<String> {
    let o = run(&[&"ls", &arch]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .filter(|l| l.contains(".wav"))
        .map(|l| l.trim().to_string())
        .collect()
}

// 1. `--force` replaces recordings only.

#[test]
fn force_never_replaces_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch");
    let a = common::short_wav(dir.path(), "a.wav");
    let o = run(&[&"import", &arch, &a, &"--into", &"x"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A file whose stem names the folder, forced at the root.
    let x = common::short_wav(dir.path(), "x.wav");
    let o = run_bounded(&[&"import", &arch, &x, &"--force"], LIMIT);
    assert_clean_failure(&o, "is a folder: --force replaces recordings only");
    assert!(stderr(&o).contains("arch/x"), "{}", stderr(&o));
    let l = listed(&arch);
    assert_eq!(l.len(), 1, "{l:?}");
    assert!(l[0].starts_with("a.wav"), "{l:?}");
    let o = run(&[&"verify", &arch]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A recording is still replaced.
    let o = run(&[&"import", &arch, &a, &"--into", &"x", &"--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The race of the issue: `--force` of recording `x` while `--into x` makes folder `x`.
/// Whatever the order, no committed recording is lost while its import says it
/// succeeded.
#[test]
fn force_racing_an_import_into_that_name_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.wav");
    common::write_wav(&x, 8_000, 1, 16, false, 80_000);
    let inner: Vec<PathBuf> = (0..4)
        .map(|i| common::short_wav(dir.path(), &format!("in{i}.wav")))
        .collect();
    for round in 0..4 {
        let arch = dir.path().join(format!("arch{round}"));
        let o = run(&[&"import", &arch, &x]);
        assert!(o.status.success(), "{}", stderr(&o));
        // `rm` the recording so that the folder can be made, while --force replaces it.
        let o = run(&[&"rm", &arch, &"x"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let force = spawn(&[&"import", &arch, &x, &"--force"]);
        let mut into: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"import", &arch];
        for p in &inner {
            into.push(p);
        }
        into.extend([&"--into" as &dyn AsRef<std::ffi::OsStr>, &"x"]);
        let into = spawn(&into);
        let (force, into) = (wait(force), wait(into));
        let l = listed(&arch);
        if into.status.success() {
            // The folder's recordings are all there.
            for i in 0..4 {
                assert!(
                    l.iter().any(|r| r.starts_with(&format!("in{i}.wav"))),
                    "round {round}: {l:?}; force: {}",
                    stderr(&force)
                );
            }
        }
        if force.status.success() && !into.status.success() {
            assert!(
                l.iter().any(|r| r.starts_with("x.wav")),
                "round {round}: {l:?}"
            );
        }
        assert!(
            !(force.status.success() && into.status.success()),
            "round {round}: both succeeded: {l:?}"
        );
        let o = run(&[&"verify", &arch]);
        assert!(o.status.success(), "round {round}: {}", stderr(&o));
    }
}

fn spawn(args: &[&dyn AsRef<std::ffi::OsStr>]) -> std::process::Child {
    let mut c = Command::new(common::bin());
    for a in args {
        c.arg(a);
    }
    c.env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait(child: std::process::Child) -> std::process::Output {
    child.wait_with_output().unwrap()
}

// 2. First imports into a new archive, at once.

#[test]
fn first_imports_into_a_new_archive_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let inputs: Vec<PathBuf> = (0..8)
        .map(|i| common::short_wav(dir.path(), &format!("in{i}.wav")))
        .collect();
    for round in 0..4 {
        let arch = dir.path().join(format!("new{round}")).join("arch");
        let barrier = std::sync::Barrier::new(inputs.len());
        let outs: Vec<std::process::Output> = std::thread::scope(|s| {
            let handles: Vec<_> = inputs
                .iter()
                .map(|input| {
                    let (arch, barrier) = (&arch, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        run_bounded(&[&"import", arch, input], LIMIT)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for o in &outs {
            assert!(o.status.success(), "round {round}: {}", stderr(o));
        }
        assert_eq!(listed(&arch).len(), inputs.len(), "round {round}");
    }
}

/// The cause: the first creator's fsync of the root `zarr.json`'s temporary file took
/// longer than the others waited for it (2 s) on a busy disk. Slowed down on purpose
/// here (strace delays its first fsync by 3 s), a second import must still succeed.
#[test]
fn a_slow_first_creator_does_not_fail_the_second() {
    let traced = Command::new("strace")
        .args(["-f", "-o", "/dev/null", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !traced {
        eprintln!("SKIPPED: strace cannot trace here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        common::short_wav(dir.path(), "a.wav"),
        common::short_wav(dir.path(), "b.wav"),
    );
    let arch = dir.path().join("arch");
    let slow = Command::new("strace")
        .args(["-f", "-o", "/dev/null", "-e", "trace=fsync"])
        .args(["-e", "inject=fsync:delay_enter=3000000:when=1"])
        .arg(common::bin())
        .arg("import")
        .arg(&arch)
        .arg(&a)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Until the first has made the directory and its staging area.
    let t = std::time::Instant::now();
    while !arch.join(".zarr-wavfs-staging").exists() && t.elapsed() < LIMIT {
        std::thread::sleep(Duration::from_millis(5));
    }
    let o = run_bounded(&[&"import", &arch, &b], LIMIT);
    assert!(o.status.success(), "{}", stderr(&o));
    let slow = wait(slow);
    assert!(slow.status.success(), "{}", stderr(&slow));
    assert_eq!(listed(&arch).len(), 2);
}

// 3. Shapes the served WAV cannot describe.

/// A 16-byte `fmt ` PCM WAV of `frames` frames of zero samples, the header saying
/// `rate` Hz whatever it is.
fn hand_made_wav(path: &Path, rate: u32, channels: u16, bits: u16, frames: u32) {
    let block = u32::from(channels) * u32::from(bits / 8);
    let data = frames * block;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&rate.wrapping_mul(block).to_le_bytes());
    b.extend_from_slice(&(block as u16).to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data.to_le_bytes());
    b.resize(b.len() + data as usize, 0);
    std::fs::write(path, b).unwrap();
}

#[test]
fn inputs_whose_wav_cannot_be_served_are_refused_before_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch");
    let cases: [(&str, u32, u16, u16, &str); 3] = [
        // The rate of the issue: imported and verified, then no extract, 0-byte file.
        (
            "max_rate.wav",
            u32::MAX,
            1,
            16,
            "4294967295 Hz, 1 channel: cannot be served",
        ),
        // Rate × channels × bytes overflows 32 bits in the natural format.
        (
            "wide.wav",
            200_000_000,
            8,
            32,
            "200000000 Hz, 8 channels: cannot be served",
        ),
        // Fits as 16-bit, not as --format s32 (4 bytes per sample).
        (
            "s32.wav",
            1 << 30,
            1,
            16,
            "cannot be served as a WAV file with --format s32",
        ),
    ];
    for (name, rate, channels, bits, needle) in cases {
        let input = dir.path().join(name);
        hand_made_wav(&input, rate, channels, bits, 16);
        for codec in ["flac", "pcm", "opus"] {
            let o = run_bounded(&[&"import", &arch, &input, &"--codec", &codec], LIMIT);
            assert_clean_failure(&o, needle);
            assert_clean_failure(&o, name);
            assert!(
                stderr(&o).contains("does not fit in 32 bits"),
                "{}",
                stderr(&o)
            );
            // One line for the file (and the summary).
            let errors = stderr(&o).lines().filter(|l| l.contains(name)).count();
            assert_eq!(errors, 1, "{}", stderr(&o));
        }
        assert_no_recordings(&arch);
        // Nothing encoded was left behind either.
        if let Ok(staged) = std::fs::read_dir(arch.join(".zarr-wavfs-staging")) {
            let left: Vec<_> = staged
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .collect();
            assert!(left.is_empty(), "{left:?}");
        }
    }
    // The largest rate that is served in every format still imports and extracts.
    let input = dir.path().join("fast.wav");
    hand_made_wav(&input, (1 << 30) - 1, 1, 16, 16);
    let o = run_bounded(&[&"import", &arch, &input, &"--codec", &"pcm"], LIMIT);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.path().join("fast.out.wav");
    let o = run_bounded(&[&"extract", &arch, &"fast", &"-o", &out], LIMIT);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 44 + 32);
}

// 4. A FLAC input truncated while it is imported.

#[test]
fn a_flac_input_truncated_during_import_is_an_error_not_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("noise.flac");
    tool(
        "sox",
        &[
            &"-n",
            &"-r",
            &"48000",
            &"-c",
            &"1",
            &"-b",
            &"16",
            &original,
            &"synth",
            &"60",
            &"whitenoise",
            &"vol",
            &"0.5",
        ],
    );
    let bytes = std::fs::read(&original).unwrap();
    let sha = hex::encode(Sha256::digest(&bytes));
    let (mut failed, mut succeeded) = (0, 0);
    for (i, delay_ms) in [0u64, 2, 10, 30, 60, 120, 250, 500, 1000]
        .into_iter()
        .enumerate()
    {
        let input = dir.path().join(format!("cut{i}.flac"));
        std::fs::write(&input, &bytes).unwrap();
        let arch = dir.path().join(format!("arch{i}"));
        let child = spawn(&[&"import", &arch, &input]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&input)
            .unwrap();
        f.set_len(bytes.len() as u64 / 3).unwrap();
        drop(f);
        let o = wait(child);
        assert!(
            o.status.signal().is_none(),
            "delay {delay_ms} ms: killed by signal {:?}; {}",
            o.status.signal(),
            stderr(&o)
        );
        if o.status.success() {
            // It read the whole file before the cut: what it stored is what it hashed.
            succeeded += 1;
            let a = Archive::open(&arch).unwrap();
            let rec = a.recording(&format!("cut{i}")).unwrap();
            let m = rec.meta().clone();
            let source = m.source.clone().unwrap();
            assert_eq!(
                (source.size, source.sha256.as_str()),
                (bytes.len() as u64, sha.as_str())
            );
            assert_eq!(
                rec.read(0..m.stream_bytes).unwrap(),
                bytes,
                "delay {delay_ms} ms"
            );
        } else {
            failed += 1;
            assert_clean_failure(&o, &format!("cut{i}.flac"));
            assert_no_recordings(&arch);
        }
    }
    eprintln!("{failed} imports noticed the cut, {succeeded} had read the file before");
}

/// The other inputs are read through the file (never mapped) and held to what was
/// hashed too: a WAV that changes between the hash and the decode is refused.
#[test]
fn an_input_changed_after_it_was_hashed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("long.wav");
    common::write_wav(&input, 48_000, 2, 16, false, 48_000 * 60);
    let len = std::fs::metadata(&input).unwrap().len();
    let mut noticed = false;
    for (i, delay_ms) in [50u64, 150, 400].into_iter().enumerate() {
        let arch = dir.path().join(format!("arch{i}"));
        let child = spawn(&[&"import", &arch, &input, &"--codec", &"pcm"]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        // The same length, other bytes in the middle: only the file's times tell.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&input)
            .unwrap();
        std::os::unix::fs::FileExt::write_at(&f, &[0x55; 4096], len / 2).unwrap();
        drop(f);
        let o = wait(child);
        assert!(o.status.signal().is_none(), "{}", stderr(&o));
        if !o.status.success() {
            noticed = true;
            assert_clean_failure(&o, "the file changed while it was being imported");
            assert_no_recordings(&arch);
        } else {
            // Hashed after the write: the source hash is the file's as it is now.
            let a = Archive::open(&arch).unwrap();
            let m = a.recording("long").unwrap().meta().clone();
            let now = hex::encode(Sha256::digest(std::fs::read(&input).unwrap()));
            assert_eq!(m.source.unwrap().sha256, now);
        }
    }
    assert!(
        noticed,
        "no change was noticed (the imports were too fast?)"
    );
}

// 5. Damaged lossy inputs.

fn vorbis(dir: &Path) -> PathBuf {
    let out = dir.join("tone.ogg");
    tool(
        "ffmpeg",
        &[
            &"-hide_banner",
            &"-loglevel",
            &"error",
            &"-y",
            &"-f",
            &"lavfi",
            &"-i",
            &"sine=frequency=440:duration=5:sample_rate=44100",
            &"-c:a",
            &"libvorbis",
            &out,
        ],
    );
    out
}

#[test]
fn a_damaged_vorbis_file_is_refused_unless_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let good = vorbis(dir.path());
    let arch = dir.path().join("arch");
    let o = run_bounded(&[&"import", &arch, &good], LIMIT);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("damaged"), "{}", stderr(&o));

    // One byte flipped in the middle of the audio.
    let mut bytes = std::fs::read(&good).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    let bad = dir.path().join("x.ogg");
    std::fs::write(&bad, &bytes).unwrap();
    let arch2 = dir.path().join("arch2");
    let o = run_bounded(&[&"import", &arch2, &bad], LIMIT);
    assert_clean_failure(
        &o,
        "the file is damaged; --accept-damaged imports what decodes",
    );
    let line = stderr(&o)
        .lines()
        .find(|l| l.contains("damaged"))
        .unwrap()
        .to_string();
    assert!(line.contains("x.ogg: "), "{line}");
    assert!(line.contains("Ogg page fails its CRC"), "{line}");
    assert!(line.contains("s of audio lost"), "{line}");
    assert_no_recordings(&arch2);

    let o = run_bounded(&[&"import", &arch2, &bad, &"--accept-damaged"], LIMIT);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("x.ogg: damaged, imported without what did not decode"),
        "{}",
        stderr(&o)
    );
    let l = listed(&arch2);
    assert_eq!(l.len(), 1, "{l:?}");
    // Shorter than the 5 s of the source, by what was lost.
    assert!(l[0].starts_with("x.wav  0:0"), "{l:?}");
    assert!(!l[0].starts_with("x.wav  0:05"), "{l:?}");

    // The flag is documented.
    let help = stdout(&run(&[&"import", &"--help"]));
    assert!(help.contains("--accept-damaged"), "{help}");
}

#[test]
fn a_vorbis_file_cut_short_is_damaged_too() {
    let dir = tempfile::tempdir().unwrap();
    let good = vorbis(dir.path());
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.ogg");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let arch = dir.path().join("arch");
    let o = run_bounded(&[&"import", &arch, &cut], LIMIT);
    assert_clean_failure(&o, "cut.ogg: the last Ogg page is cut short");
    assert_no_recordings(&arch);
}
