//! The FUSE mount, for real: the binary mounts an archive and the tests read it through
//! the kernel, with std, threads, and the clients users have (sox, ffprobe, Python).
//!
//! Needs /dev/fuse and fusermount3 (scripts/setup.sh installs fuse3). Without them the
//! tests say so and pass, except under CI (`CI` set), where they must run.

mod common;

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Lcg;
use common::mount::{Mount, fuse_available, is_mounted, wait_until};
use common::{run, stderr};
use zarr_wavfs::archive::Archive;
use zarr_wavfs::wav::{SampleFormat, encode_i16};
use zarr_wavfs::wav_file::layout_for;

/// An archive with three recordings of different shapes, in a temp dir.
struct Fixture {
    dir: tempfile::TempDir,
    arch: PathBuf,
}

/// (archive path, rate, channels, seconds)
const RECORDINGS: [(&str, u32, u16, f64); 4] = [
    ("20250601_040000", 48_000, 1, 20.3),
    ("site3/stereo", 44_100, 2, 7.1),
    ("site3/narrow", 16_000, 1, 3.0),
    ("site3/surround", 48_000, 6, 4.2),
];

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let arch = dir.path().join("arch");
        for (path, rate, ch, secs) in RECORDINGS {
            let (folder, name) = path.rsplit_once('/').unwrap_or(("", path));
            let wav = dir.path().join(format!("{name}.wav"));
            common::write_wav(&wav, rate, ch, 16, false, (f64::from(rate) * secs) as u64);
            import_opus(&arch, &wav, folder);
        }
        Fixture { dir, arch }
    }

    /// The exact file the mount must serve: header from the layout, samples from one
    /// sequential decode (not through the engine), plus the pad byte.
    fn oracle(&self, rec: &str) -> Vec<u8> {
        let archive = Archive::open(&self.arch).unwrap();
        let samples = common::sequential_decode(&archive, rec);
        let m = archive.recording(rec).unwrap().meta().clone();
        let layout = layout_for(&m, 0..m.frames, SampleFormat::S16, None).unwrap();
        let mut out = layout.header();
        encode_i16(&samples, SampleFormat::S16, &mut out);
        out.resize(layout.file_len() as usize, 0);
        out
    }

    fn extract(&self, rec: &str) -> Vec<u8> {
        let o = run(&[&"extract", &self.arch, &rec, &"-o", &"-"]);
        assert!(o.status.success(), "{}", stderr(&o));
        o.stdout
    }
}

/// Imports `wav` into `arch` as Opus, into folder `into` ("" for the top), with a
/// checkpoint every 2 s.
fn import_opus(arch: &Path, wav: &Path, into: &str) {
    let o = run(&[
        &"import",
        &arch,
        &wav,
        &"--codec",
        &"opus",
        &"--into",
        &into,
        &"--checkpoint-interval",
        &"2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn read_all(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    File::open(path)?.read_to_end(&mut v)?;
    Ok(v)
}

#[test]
fn tree_stat_and_whole_files_match_extract_and_the_oracle() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new();
    let m = Mount::start(&fx.arch, fx.dir.path(), "mnt", &[]);
    let names = |p: &Path| -> HashSet<String> {
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    };
    assert_eq!(
        names(&m.mnt),
        HashSet::from(["20250601_040000.wav".into(), "site3".into()])
    );
    assert_eq!(
        names(&m.path("site3")),
        HashSet::from([
            "stereo.wav".into(),
            "narrow.wav".into(),
            "surround.wav".into()
        ])
    );
    let dir = std::fs::metadata(m.path("site3")).unwrap();
    assert!(dir.is_dir());
    assert_eq!(dir.mode() & 0o7777, 0o555);
    for (rec, ..) in RECORDINGS {
        let p = m.path(&format!("{rec}.wav"));
        let md = std::fs::metadata(&p).unwrap();
        let oracle = fx.oracle(rec);
        assert_eq!(md.len(), oracle.len() as u64, "{rec}: st_size");
        assert_eq!(md.mode() & 0o7777, 0o444);
        assert_eq!(md.blocks(), md.len().div_ceil(512));
        assert_eq!(md.uid(), unsafe { libc::geteuid() });
        assert_eq!(
            std::fs::metadata(&p).unwrap().ino(),
            md.ino(),
            "stable inode"
        );
        let served = read_all(&p).unwrap();
        assert!(
            served == oracle,
            "{rec}: served bytes differ from the oracle"
        );
        assert!(
            served == fx.extract(rec),
            "{rec}: served bytes differ from extract"
        );
    }
    // An AudioMoth-style name gives the recording's start time as mtime.
    let md = std::fs::metadata(m.path("20250601_040000.wav")).unwrap();
    assert_eq!(md.mtime(), 1_748_750_400);
    assert!(std::fs::metadata(m.path("nope.wav")).is_err());
}

#[test]
fn sixteen_threads_of_random_reads_equal_the_oracle() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new();
    let m = Mount::start(&fx.arch, fx.dir.path(), "mnt", &["--cache-size", "4MiB"]);
    let oracles: Vec<(PathBuf, Vec<u8>)> = RECORDINGS
        .iter()
        .map(|(rec, ..)| (m.path(&format!("{rec}.wav")), fx.oracle(rec)))
        .collect();
    std::thread::scope(|s| {
        for t in 0..16u64 {
            let oracles = &oracles;
            s.spawn(move || {
                let mut rng = Lcg(t * 7919 + 1);
                for i in 0..40 {
                    let (path, oracle) = &oracles[rng.below(oracles.len() as u64) as usize];
                    let len = oracle.len() as u64;
                    // lengths from 1 byte to 1 MiB, log-uniform
                    let want = 1u64 << rng.below(21);
                    let want = want + rng.below(want);
                    let offset = match i % 4 {
                        0 => rng.below(100),                      // header and across it
                        1 => len.saturating_sub(rng.below(3000)), // the end and past it
                        _ => rng.below(len + 100),
                    };
                    // Direct I/O sends every read to the daemon at its exact offset;
                    // the others go through the page cache and kernel readahead.
                    let direct = t % 2 == 0;
                    let f = std::fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(if direct { libc::O_DIRECT } else { 0 })
                        .open(path)
                        .unwrap();
                    let mut buf = vec![0u8; want as usize];
                    let mut got = 0;
                    while got < buf.len() {
                        let n = f.read_at(&mut buf[got..], offset + got as u64).unwrap();
                        if n == 0 {
                            break;
                        }
                        got += n;
                    }
                    let start = offset.min(len) as usize;
                    let end = (offset + want).min(len) as usize;
                    assert_eq!(got, end - start, "{path:?} at {offset} (+{want})");
                    assert!(
                        buf[..got] == oracle[start..end],
                        "{path:?}: bytes at {offset} (+{want}) differ from the oracle"
                    );
                }
            });
        }
    });
}

/// Runs a client; `None` (test skipped) when the tool is missing outside CI.
fn client(cmd: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Option<String> {
    let mut c = Command::new(cmd);
    for a in args {
        c.arg(a);
    }
    match c.output() {
        Ok(o) => {
            assert!(
                o.status.success(),
                "{cmd} failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            Some(String::from_utf8_lossy(&o.stdout).into_owned())
        }
        Err(_) => {
            assert!(std::env::var_os("CI").is_none(), "{cmd} missing in CI");
            eprintln!("SKIPPED: {cmd} not installed");
            None
        }
    }
}

#[test]
fn sox_ffprobe_and_python_read_the_mounted_files() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new();
    let m = Mount::start(&fx.arch, fx.dir.path(), "mnt", &[]);
    let stereo = m.path("site3/stereo.wav");
    let frames = (44_100.0 * 7.1) as u64;
    if let Some(out) = client("soxi", &[&stereo]) {
        assert!(out.contains("Channels       : 2"), "{out}");
        assert!(out.contains("Sample Rate    : 44100"), "{out}");
        assert!(out.contains(&format!("= {frames} samples")), "{out}");
    }
    if let Some(out) = client("sox", &[&stereo, &"-n", &"stat"]) {
        // sox prints its statistics on stderr; success means it read to the end.
        let _ = out;
    }
    if let Some(out) = client(
        "ffprobe",
        &[
            &"-v",
            &"error",
            &"-show_entries",
            &"stream=sample_rate,channels,duration_ts",
            &"-of",
            &"default=noprint_wrappers=1",
            &stereo,
        ],
    ) {
        assert!(out.contains("sample_rate=44100"), "{out}");
        assert!(out.contains("channels=2"), "{out}");
        assert!(out.contains(&format!("duration_ts={frames}")), "{out}");
    }
    // Python: wave, soundfile, scipy, mmap and numpy.memmap against extract's file.
    let reference = fx.dir.path().join("ref.wav");
    std::fs::write(&reference, fx.extract("site3/stereo")).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/mount_clients.py");
    let strict = if std::env::var_os("CI").is_some() {
        "--strict"
    } else {
        "--lenient"
    };
    if let Some(out) = client("python3", &[&script, &stereo, &reference, &strict]) {
        assert!(out.contains("wave ok"), "{out}");
        assert!(out.contains("mmap ok"), "{out}");
        eprintln!("{out}");
    }
}

#[test]
fn writes_fail_with_erofs() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new();
    let m = Mount::start(&fx.arch, fx.dir.path(), "mnt", &[]);
    let f = m.path("20250601_040000.wav");
    let erofs = |r: std::io::Result<()>, what: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{what}: {e}");
    };
    erofs(
        std::fs::OpenOptions::new().write(true).open(&f).map(drop),
        "open for writing",
    );
    erofs(
        std::fs::OpenOptions::new().append(true).open(&f).map(drop),
        "open for appending",
    );
    erofs(std::fs::write(m.path("new.wav"), b"x"), "create");
    erofs(std::fs::create_dir(m.path("d")), "mkdir");
    erofs(std::fs::rename(&f, m.path("x.wav")), "rename");
    erofs(std::fs::remove_file(&f), "unlink");
    erofs(std::fs::remove_dir(m.path("site3")), "rmdir");
    erofs(
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o644)),
        "chmod",
    );
    erofs(std::os::unix::fs::symlink("x", m.path("l")), "symlink");
    let c = std::ffi::CString::new(f.as_os_str().as_encoded_bytes()).unwrap();
    let rc = unsafe { libc::setxattr(c.as_ptr(), c"user.x".as_ptr(), b"1".as_ptr().cast(), 1, 0) };
    assert_eq!(rc, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EROFS),
        "setxattr"
    );
    let rc = unsafe { libc::truncate(c.as_ptr(), 0) };
    assert_eq!(rc, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EROFS),
        "truncate"
    );
    // and the file is unchanged
    assert!(read_all(&f).unwrap() == fx.oracle("20250601_040000"));
}

#[test]
fn sigterm_unmounts_and_exits_zero_and_sigkill_leaves_no_mount() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new();
    let mut m = Mount::start(&fx.arch, fx.dir.path(), "term", &[]);
    let status = m.signal(libc::SIGTERM);
    assert!(status.success(), "SIGTERM: {status}; log: {}", m.log());
    assert!(!is_mounted(&m.mnt), "still mounted after SIGTERM");

    // With a file open, SIGTERM detaches the mount at once (like `umount -l`); the
    // open file keeps reading and the daemon exits 0 when it is closed.
    let mut m = Mount::start(&fx.arch, fx.dir.path(), "busy", &[]);
    let f = File::open(m.path("site3/narrow.wav")).unwrap();
    let pid = m.child.as_ref().unwrap().id() as i32;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_until("the lazy unmount", Duration::from_secs(10), || {
        !is_mounted(&m.mnt)
    });
    let mut head = [0u8; 44];
    f.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(&head[..4], b"RIFF");
    drop(f);
    let status = m.wait();
    assert!(
        status.success(),
        "SIGTERM while busy: {status}; log: {}",
        m.log()
    );

    // Without auto_unmount too (a plain umount fails while a file is open).
    let mut m = Mount::start(&fx.arch, fx.dir.path(), "busy2", &["-o", "noauto_unmount"]);
    let f = File::open(m.path("site3/narrow.wav")).unwrap();
    let pid = m.child.as_ref().unwrap().id() as i32;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_until("the lazy unmount", Duration::from_secs(10), || {
        !is_mounted(&m.mnt)
    });
    drop(f);
    let status = m.wait();
    assert!(
        status.success(),
        "noauto_unmount SIGTERM: {status}; log: {}",
        m.log()
    );

    // auto_unmount: fusermount3 notices the daemon's death (its socket to the daemon
    // closes) and unmounts, but only if opening the mount's root then fails with
    // ENOTCONN. The dying daemon closes that socket before its /dev/fuse descriptors
    // (lower numbers close first); when fusermount3 looks in between, the connection
    // is not yet aborted, the open does not fail with ENOTCONN, and fusermount3 exits
    // leaving a dead mount (seen twice in loaded full runs: no fusermount3 left, still
    // mounted). That race is fusermount3's (libfuse 3.14), so it gets three tries; a
    // daemon whose auto_unmount does not work fails all three.
    let mut left = Vec::new();
    for attempt in 0..3 {
        let mut m = Mount::start(&fx.arch, fx.dir.path(), &format!("kill{attempt}"), &[]);
        m.signal(libc::SIGKILL);
        let t = std::time::Instant::now();
        while is_mounted(&m.mnt) && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !is_mounted(&m.mnt) {
            return;
        }
        left.push(format!(
            "attempt {attempt}: still mounted after 30 s; processes: {}; log: {}",
            common::mount::fusermount_processes(),
            m.log()
        ));
    }
    panic!("auto_unmount did not happen: {left:#?}");
}

#[test]
fn fusermount_and_umount_end_the_daemon_cleanly() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new();
    for (name, cmd) in [("fm", vec!["fusermount3", "-u"]), ("um", vec!["umount"])] {
        if cmd[0] == "umount" && unsafe { libc::geteuid() } != 0 {
            continue;
        }
        let mut m = Mount::start(&fx.arch, fx.dir.path(), name, &[]);
        let st = Command::new(cmd[0])
            .args(&cmd[1..])
            .arg(&m.mnt)
            .status()
            .unwrap();
        assert!(st.success(), "{cmd:?}");
        let status = m.wait();
        assert!(status.success(), "{cmd:?}: exit {status}; log: {}", m.log());
    }
}

#[test]
fn detached_mount_returns_when_ready_and_reports_errors() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new();
    let mnt = fx.dir.path().join("bg");
    std::fs::create_dir(&mnt).unwrap();
    let log = fx.dir.path().join("bg.log");
    let o = Command::new(common::bin())
        .arg("mount")
        .arg(&fx.arch)
        .arg(&mnt)
        .arg("--log")
        .arg(&log)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // ready when the command returns: no waiting
    let mnt = mnt.canonicalize().unwrap();
    assert!(is_mounted(&mnt));
    assert!(mnt.join("site3/narrow.wav").exists());
    assert!(read_all(&mnt.join("site3/narrow.wav")).unwrap() == fx.oracle("site3/narrow"));
    let st = Command::new("fusermount3")
        .arg("-u")
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("mounted on")
    );

    // errors, before and after detaching, reach the terminal with a non-zero exit
    let not_archive = fx.dir.path().join("bg"); // an empty directory
    let o = run(&[&"mount", &not_archive, &mnt]);
    common::assert_clean_failure(&o, "zarr.json");
    assert_eq!(stderr(&o).matches("error").count(), 1, "{}", stderr(&o));
    let o = run(&[&"mount", &fx.arch, &fx.dir.path().join("missing")]);
    common::assert_clean_failure(&o, "missing");
    let o = run(&[&"mount", &fx.arch, &mnt, &"-o", &"bogus"]);
    common::assert_clean_failure(&o, "bogus");
    assert!(!is_mounted(&mnt));
}

/// Flips one byte in the middle of the largest chunk file under `dir`.
fn damage(dir: &Path) {
    let mut files: Vec<PathBuf> = walk(dir)
        .into_iter()
        .filter(|p| p.file_name().unwrap() != "zarr.json")
        .collect();
    files.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let f = files.pop().expect("a chunk file");
    let mut b = std::fs::read(&f).unwrap();
    let i = b.len() / 2;
    b[i] ^= 0x5A;
    std::fs::write(&f, b).unwrap();
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn a_corrupt_recording_gives_eio_while_the_others_read_fine() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new();
    let oracle = fx.oracle("20250601_040000");
    damage(&fx.arch.join("20250601_040000/stream"));
    // A recording whose attributes are unreadable is listed but cannot be opened.
    let attrs = fx.arch.join("site3/narrow/zarr.json");
    std::fs::write(&attrs, b"{ not json").unwrap();
    let m = Mount::start(&fx.arch, fx.dir.path(), "mnt", &[]);

    let bad = m.path("20250601_040000.wav");
    // stat needs no decoding: the size is still exact
    assert_eq!(std::fs::metadata(&bad).unwrap().len(), oracle.len() as u64);
    let e = read_all(&bad).expect_err("reading past the damage");
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    // the start, before the damaged page, still reads correctly
    let f = File::open(&bad).unwrap();
    let mut head = vec![0u8; 4096];
    f.read_exact_at(&mut head, 0).unwrap();
    assert!(head == oracle[..4096]);

    assert!(m.path("site3/narrow.wav").exists());
    let e = File::open(m.path("site3/narrow.wav")).expect_err("unreadable attributes");
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");

    // the healthy recording reads fine, and the daemon lives on
    assert!(read_all(&m.path("site3/stereo.wav")).unwrap() == fx.oracle("site3/stereo"));
    let e = read_all(&bad).expect_err("still damaged");
    assert_eq!(e.raw_os_error(), Some(libc::EIO));
    let log = m.log();
    let lines = |needle: &str| {
        log.lines()
            .filter(|l| l.contains("ERROR") && l.contains(needle))
            .count()
    };
    assert_eq!(
        lines("20250601_040000"),
        1,
        "logged once, with the path: {log}"
    );
    assert_eq!(lines("site3/narrow"), 1, "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_sequential_reader_leaves_the_span_cache_nearly_empty() {
    if !fuse_available() {
        return;
    }
    // 4 minutes of mono: 23 MB of WAV in spans of 2 s (192 KB), far more than the
    // spans kept within the 4 MiB slack behind a sequential reader.
    let dir = tempfile::tempdir().unwrap();
    let (arch, wav) = (dir.path().join("arch"), dir.path().join("long.wav"));
    common::write_wav(&wav, 48_000, 1, 16, false, 48_000 * 240);
    import_opus(&arch, &wav, "");
    let m = Mount::start(&arch, dir.path(), "mnt", &[]);
    let served = read_all(&m.path("long.wav")).unwrap();
    let o = run(&[&"extract", &arch, &"long", &"-o", &"-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(served == o.stdout, "the bytes served equal extract's");
    let mut m = m;
    assert!(m.signal(libc::SIGTERM).success());
    let log = m.log();
    let held: usize = log
        .lines()
        .find_map(|l| l.split("span cache held ").nth(1))
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no cache size at exit in the log:\n{log}"));
    // The passed spans went back; what is left is the slack behind the end (4 MiB).
    assert!(
        held < served.len() / 3,
        "span cache held {held} bytes of a {}-byte file after one sequential read",
        served.len()
    );
}

#[test]
fn archive_files_vanishing_while_mounted_give_eio_then_recover() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new();
    // a cache too small for any span: every read decodes from the archive's files
    let m = Mount::start(&fx.arch, fx.dir.path(), "mnt", &["--cache-size", "16KiB"]);
    let oracle = fx.oracle("site3/stereo");
    let direct_read = || -> std::io::Result<Vec<u8>> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(m.path("site3/stereo.wav"))?;
        let mut v = vec![0u8; oracle.len()];
        let mut got = 0;
        while got < v.len() {
            match f.read_at(&mut v[got..], got as u64)? {
                0 => break,
                n => got += n,
            }
        }
        v.truncate(got);
        Ok(v)
    };
    assert!(direct_read().unwrap() == oracle);
    // The audio array's files, not the recording's directory: an open recording
    // follows its directory wherever it is moved (a replaced one is read to its end).
    let rec = fx.arch.join("site3/stereo");
    let audio = ["stream", "samples"]
        .iter()
        .map(|a| rec.join(a))
        .find(|p| p.is_dir())
        .unwrap();
    let away = fx.dir.path().join("audio.away");
    std::fs::rename(&audio, &away).unwrap();
    let e = direct_read().expect_err("the recording's files are gone");
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    std::fs::rename(&away, &audio).unwrap();
    assert!(direct_read().unwrap() == oracle, "errors are not cached");
    assert!(read_all(&m.path("site3/narrow.wav")).unwrap() == fx.oracle("site3/narrow"));
}

#[test]
fn readdir_lists_ten_thousand_recordings_exactly_once() {
    if !fuse_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch");
    let wav = dir.path().join("seed.wav");
    common::write_wav(&wav, 8_000, 1, 16, false, 800);
    let o = run(&[
        &"import", &"--codec", &"opus", &arch, &wav, &"--into", &"many",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Copies of one recording, made with hard links: 10,000 recordings in one folder.
    let seed = arch.join("many/seed");
    let files: Vec<PathBuf> = walk(&seed)
        .into_iter()
        .map(|p| p.strip_prefix(&seed).unwrap().to_path_buf())
        .collect();
    let mut expected = HashSet::new();
    for i in 0..10_000 {
        let name = format!("r{i:05}");
        let d = arch.join("many").join(&name);
        for f in &files {
            std::fs::create_dir_all(d.join(f).parent().unwrap()).unwrap();
            std::fs::hard_link(seed.join(f), d.join(f)).unwrap();
        }
        expected.insert(format!("{name}.wav"));
    }
    expected.insert("seed.wav".into());
    let fx = Fixture { dir, arch };
    let m = Mount::start(&fx.arch, fx.dir.path(), "mnt", &[]);
    for pass in 0..2 {
        let mut seen = HashSet::new();
        for e in std::fs::read_dir(m.path("many")).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            assert!(
                seen.insert(name.clone()),
                "pass {pass}: {name} listed twice"
            );
        }
        assert_eq!(seen.len(), expected.len(), "pass {pass}");
        assert!(seen == expected, "pass {pass}: names differ");
    }
    let md = std::fs::metadata(m.path("many/r09999.wav")).unwrap();
    assert_eq!(md.len(), 44 + 800 * 2);
}

#[test]
fn mount_8_and_fstab_style_calls_work() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new();
    let mnt = fx.dir.path().join("m8");
    std::fs::create_dir(&mnt).unwrap();
    // `mount -t fuse.zarr-wavfs SRC MNT -o OPTS` runs `zarr-wavfs SRC MNT -o OPTS`
    // through mount.fuse3, which looks the program up in a fixed system PATH; the
    // `-t fuse PROGRAM#SRC` form names it by path and runs it the same way.
    let log = fx.dir.path().join("m8.log");
    let opts = format!("ro,cache_size=32MiB,log={}", log.display());
    if unsafe { libc::geteuid() } == 0 {
        let source = format!("{}#{}", common::bin().display(), fx.arch.display());
        let o = Command::new("mount")
            .args(["-t", "fuse", &source])
            .arg(&mnt)
            .args(["-o", &opts])
            .output()
            .unwrap();
        assert!(o.status.success(), "mount -t fuse: {}", stderr(&o));
    } else {
        // Only root may mount(8) without an fstab entry: call the binary the way
        // mount.fuse3 would.
        let o = Command::new(common::bin())
            .arg(&fx.arch)
            .arg(&mnt)
            .args(["-o", &opts])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let mnt = mnt.canonicalize().unwrap();
    assert!(is_mounted(&mnt));
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("cache 32 MiB"),
        "options reach the daemon: {log}"
    );
    assert!(read_all(&mnt.join("site3/narrow.wav")).unwrap() == fx.oracle("site3/narrow"));
    let st = Command::new("fusermount3")
        .arg("-u")
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn a_recording_named_like_a_wav_file_serves_its_own_bytes() {
    if !fuse_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch");
    // Inputs `take.wav` and `take.wav.wav` become recordings `take` and `take.wav`.
    let a = dir.path().join("take.wav");
    common::write_wav(&a, 16_000, 1, 16, false, 16_000 * 2);
    let b = dir.path().join("take.wav.wav");
    common::write_wav(&b, 24_000, 2, 16, false, 24_000 * 3);
    let o = run(&[&"import", &"--codec", &"opus", &arch, &a, &b]);
    assert!(o.status.success(), "{}", stderr(&o));
    let fx = Fixture { dir, arch };
    let m = Mount::start(&fx.arch, fx.dir.path(), "mnt", &[]);
    for (rec, shown) in [("take", "take.wav"), ("take.wav", "take.wav.wav")] {
        let oracle = fx.oracle(rec);
        assert_eq!(
            std::fs::metadata(m.path(shown)).unwrap().len(),
            oracle.len() as u64
        );
        assert!(
            read_all(&m.path(shown)).unwrap() == oracle,
            "{shown} serves {rec}"
        );
        assert!(fx.extract(rec) == oracle, "extract {rec}");
    }
}
