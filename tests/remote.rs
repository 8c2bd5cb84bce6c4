//! Archives in an S3-compatible bucket, end to end with the real binary: import into
//! s3://, every command reading from there, a FUSE mount of the bucket, a local archive
//! copied into the bucket, the server dying or hanging under a mount, bad credentials
//! and addresses, and an import killed half-way.
//!
//! Each test runs its own s3s-fs (tests/common/servers.rs; scripts/setup.sh installs
//! it) on a port of its own. The S3 settings reach the binary through the environment
//! of each command, as they would from a user's shell; nothing of the test process's
//! own `AWS_*` environment or `~/.aws` leaks in. The mount tests need /dev/fuse and
//! fusermount3 (without them they say so and pass, except under CI).

mod common;

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Lcg;
use common::mount::{Mount, fuse_available, is_mounted, wait_until};
use common::servers::{ConnectionCounter, LoggedRequest, S3Server};
use common::{stderr, stdout};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");

/// The recordings `import_fixture` makes, as (recording, file served by a mount).
const FIXTURE: [(&str, &str); 4] = [
    ("20250601_040000", "20250601_040000.wav"),
    ("stereo_music", "stereo_music.wav"),
    ("sweep", "sweep.wav"),
    ("pcm/stereo_music", "pcm/stereo_music.wav"),
];

/// The binary with `s3`'s endpoint and credentials in its environment (and nothing
/// else of AWS's: the test process's own `AWS_*` variables are removed, and the
/// shared credentials and config files point nowhere). `None`: no S3 settings at all.
fn zw_command(s3: Option<&S3Server>) -> Command {
    let mut c = Command::new(common::bin());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    let nowhere = "/nonexistent/aws";
    c.env(
        "AWS_SHARED_CREDENTIALS_FILE",
        format!("{nowhere}/credentials"),
    )
    .env("AWS_CONFIG_FILE", format!("{nowhere}/config"))
    .env("AWS_EC2_METADATA_DISABLED", "true")
    .env("RUST_LOG", "warn")
    .stdin(Stdio::null());
    if let Some(s3) = s3 {
        c.env("AWS_ACCESS_KEY_ID", &s3.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &s3.secret_key)
            .env("AWS_ENDPOINT_URL", &s3.endpoint)
            .env("AWS_REGION", &s3.region);
    }
    c
}

/// Runs the binary (with `s3`'s settings, if any) and returns its output.
fn zw(s3: Option<&S3Server>, args: &[&dyn AsRef<OsStr>]) -> Output {
    let mut c = zw_command(s3);
    for a in args {
        c.arg(a);
    }
    c.output().unwrap()
}

/// Like `zw`, asserting success; returns stdout.
fn zw_ok(s3: Option<&S3Server>, args: &[&dyn AsRef<OsStr>]) -> Vec<u8> {
    let o = zw(s3, args);
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    assert!(
        o.status.success(),
        "zarr-wavfs {shown:?} failed ({}): {}{}",
        o.status,
        stderr(&o),
        s3.map(|s| format!("\n--- s3s-fs log ---\n{}", s.log()))
            .unwrap_or_default()
    );
    o.stdout
}

/// Runs `c` to its end, which must come within `limit` (else it is killed and the
/// test fails); returns its output and how long it took.
fn run_within(mut c: Command, limit: Duration) -> (Output, Duration) {
    let t = Instant::now();
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = pipe(Box::new(child.stdout.take().unwrap()));
    let err = pipe(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{c:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = t.elapsed();
    let o = Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (o, elapsed)
}

/// Imports the test recordings into `archive` (an s3:// address with `s3`, else a
/// path): the AudioMoth-style WAV and the stereo music as FLAC (the default), the Ogg
/// Opus file as it is, and the stereo music again as PCM in folder `pcm`.
fn import_fixture(s3: Option<&S3Server>, archive: &dyn AsRef<OsStr>) {
    let t = Path::new(TESTDATA);
    zw_ok(
        s3,
        &[
            &"import",
            archive,
            &t.join("20250601_040000.wav"),
            &t.join("stereo_music.wav"),
            &t.join("sweep.opus"),
        ],
    );
    zw_ok(
        s3,
        &[
            &"import",
            archive,
            &t.join("stereo_music.wav"),
            &"--codec",
            &"pcm",
            &"--into",
            &"pcm",
        ],
    );
}

/// A temp dir with a running s3s-fs (data in `DIR/s3`, bucket `lab` created) and the
/// fixture imported into the local archive `DIR/local.zarr`.
struct Setup {
    dir: tempfile::TempDir,
    s3: S3Server,
    local: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let s3 = S3Server::start(&dir.path().join("s3"));
        s3.create_bucket("lab");
        let local = dir.path().join("local.zarr");
        import_fixture(None, &local);
        Setup { dir, s3, local }
    }

    /// `extract` of the whole of `rec` from the local archive: the bytes a remote
    /// archive's extract and mount must give.
    fn oracle(&self, rec: &str) -> Vec<u8> {
        zw_ok(None, &[&"extract", &self.local, &rec, &"-o", &"-"])
    }
}

/// Mounts `archive` from `s3` on `dir/name` in the foreground, logging to
/// `dir/name.log`, with `global` options before the subcommand and `extra` after;
/// returns once the daemon answers (as `Mount::start` does for local archives).
fn mount_s3(
    s3: &S3Server,
    global: &[&str],
    archive: &str,
    dir: &Path,
    name: &str,
    extra: &[&str],
) -> Mount {
    let mnt = dir.join(name);
    std::fs::create_dir_all(&mnt).unwrap();
    let log = dir.join(format!("{name}.log"));
    let child = zw_command(Some(s3))
        .args(global)
        .arg("mount")
        .arg(archive)
        .arg(&mnt)
        .arg("-f")
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut m = Mount {
        child: Some(child),
        mnt: mnt.canonicalize().unwrap(),
        log,
    };
    let mnt = m.mnt.clone();
    wait_until("the mount", Duration::from_secs(30), || {
        if let Some(status) = m.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("daemon exited early ({status}): {}", m.log());
        }
        is_mounted(&mnt)
    });
    std::fs::read_dir(&m.mnt).unwrap().for_each(drop);
    m
}

/// Every regular file below `dir`, as paths relative to it.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        for e in std::fs::read_dir(dir.join(&rel)).into_iter().flatten() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                todo.push(r);
            } else {
                out.push(r);
            }
        }
    }
    out.sort();
    out
}

/// Copies the directory tree `from` to `to` (files only; s3s-fs serves the files
/// below a bucket's directory as its objects).
fn copy_tree(from: &Path, to: &Path) {
    for rel in files_below(from) {
        let dst = to.join(&rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&rel), dst).unwrap();
    }
}

/// Reads `len` bytes at `offset` of `f` (fewer at the end of the file).
fn pread(f: &File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match f.read_at(&mut buf[got..], offset + got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// Opens `path` with O_DIRECT: every read goes to the daemon, none to the page cache.
fn open_direct(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

#[test]
fn import_into_s3_then_every_command_reads_it() {
    let fx = Setup::new();
    let s3 = Some(&fx.s3);
    let remote = "s3://lab/a.zarr";
    import_fixture(s3, &remote);
    // the recordings' objects are in the bucket, under the prefix
    assert!(
        fx.s3
            .data_dir
            .join("lab/a.zarr/stereo_music/zarr.json")
            .is_file()
    );

    let ls = String::from_utf8(zw_ok(s3, &[&"ls", &remote])).unwrap();
    for (_, file) in FIXTURE {
        let name = file.rsplit('/').next().unwrap();
        assert!(ls.contains(name), "ls does not list {file}:\n{ls}");
    }
    assert!(ls.contains("pcm/"), "{ls}");
    let local_ls = String::from_utf8(zw_ok(None, &[&"ls", &fx.local])).unwrap();
    assert_eq!(ls, local_ls, "ls of s3:// and of the local archive");
    for (rec, _) in FIXTURE {
        let info = zw_ok(s3, &[&"info", &remote, &rec]);
        assert_eq!(
            String::from_utf8(info).unwrap(),
            String::from_utf8(zw_ok(None, &[&"info", &fx.local, &rec])).unwrap(),
            "info {rec}"
        );
    }
    let verify = String::from_utf8(zw_ok(s3, &[&"verify", &remote])).unwrap();
    assert!(
        verify.contains("4 recordings checked, 0 errors") && !verify.contains("ERROR"),
        "{verify}"
    );

    for (rec, _) in FIXTURE {
        let whole = zw_ok(s3, &[&"extract", &remote, &rec, &"-o", &"-"]);
        assert!(&whole[..4] == b"RIFF", "{rec}: not a WAV file");
        assert!(
            whole == fx.oracle(rec),
            "{rec}: extract from s3:// differs from the local archive's"
        );
        let range: [&dyn AsRef<OsStr>; 4] = [&"--start", &"1", &"--end", &"2"];
        let mut args: Vec<&dyn AsRef<OsStr>> = vec![&"extract", &remote, &rec, &"-o", &"-"];
        args.extend(range);
        let part = zw_ok(s3, &args);
        args[1] = &fx.local;
        let local_part = zw_ok(None, &args);
        assert!(
            part.len() < whole.len() && &part[..4] == b"RIFF",
            "{rec}: 1..2 s"
        );
        assert!(
            part == local_part,
            "{rec}: extract --start 1 --end 2 differs"
        );
    }
    // extract to a file, too (written under a temporary name, then renamed)
    let out = fx.dir.path().join("sweep.wav");
    zw_ok(s3, &[&"extract", &remote, &"sweep.wav", &"-o", &out]);
    assert!(std::fs::read(&out).unwrap() == fx.oracle("sweep"));
}

#[test]
fn s3_mount_serves_the_local_bytes() {
    if !fuse_available() {
        return;
    }
    let fx = Setup::new();
    import_fixture(Some(&fx.s3), &"s3://lab/a.zarr");
    let mut m = mount_s3(&fx.s3, &[], "s3://lab/a.zarr", fx.dir.path(), "mnt", &[]);
    let served: Vec<String> = files_below(&m.mnt)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut expected: Vec<String> = FIXTURE.iter().map(|(_, f)| f.to_string()).collect();
    expected.sort();
    assert_eq!(served, expected, "the mount's files");

    let oracles: Vec<(PathBuf, Vec<u8>)> = FIXTURE
        .iter()
        .map(|(rec, file)| (m.path(file), fx.oracle(rec)))
        .collect();
    for (path, oracle) in &oracles {
        assert_eq!(
            std::fs::metadata(path).unwrap().len(),
            oracle.len() as u64,
            "{path:?}: st_size"
        );
        assert!(
            std::fs::read(path).unwrap() == *oracle,
            "{path:?}: served bytes differ from the local extract"
        );
    }

    std::thread::scope(|s| {
        for t in 0..8u64 {
            let oracles = &oracles;
            s.spawn(move || {
                let mut rng = Lcg(t * 7919 + 17);
                for i in 0..200 {
                    let (path, oracle) = &oracles[rng.below(oracles.len() as u64) as usize];
                    let len = oracle.len() as u64;
                    // 1 byte to 256 KiB, log-uniform
                    let want = 1u64 << rng.below(18);
                    let want = want + rng.below(want);
                    let offset = match i % 4 {
                        0 => rng.below(100),
                        1 => len.saturating_sub(rng.below(3000)),
                        _ => rng.below(len + 100),
                    };
                    // half of the threads bypass the page cache (every read reaches
                    // the daemon at its own offset), half go through readahead
                    let f = if t % 2 == 0 {
                        open_direct(path).unwrap()
                    } else {
                        File::open(path).unwrap()
                    };
                    let got = pread(&f, offset, want as usize).unwrap();
                    let start = offset.min(len) as usize;
                    let end = (offset + want).min(len) as usize;
                    assert_eq!(got.len(), end - start, "{path:?} at {offset} (+{want})");
                    assert!(
                        got == oracle[start..end],
                        "{path:?}: bytes at {offset} (+{want}) differ from the oracle"
                    );
                }
            });
        }
    });

    let st = Command::new("fusermount3")
        .arg("-u")
        .arg(&m.mnt)
        .status()
        .unwrap();
    assert!(st.success(), "fusermount3 -u");
    let status = m.wait();
    assert!(status.success(), "daemon exit {status}; log: {}", m.log());
    assert!(!is_mounted(&m.mnt));
    let log = m.log();
    assert!(!log.contains("ERROR") && !log.contains("panicked"), "{log}");
}

#[test]
fn a_local_archive_copied_into_the_bucket_mounts_unchanged() {
    let fx = Setup::new();
    copy_tree(&fx.local, &fx.s3.data_dir.join("lab/copied.zarr"));
    let remote = "s3://lab/copied.zarr";
    // the endpoint and region as flags this time (global flags, before and after the
    // subcommand), the credentials still from the environment
    let mut flags = zw_command(Some(&fx.s3));
    flags
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_REGION");
    let o = flags
        .args(["--endpoint-url", &fx.s3.endpoint, "ls", remote])
        .args(["--region", &fx.s3.region])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        String::from_utf8(zw_ok(None, &[&"ls", &fx.local])).unwrap(),
        "ls of the copy in the bucket and of the local archive"
    );
    for (rec, _) in FIXTURE {
        let got = zw_ok(Some(&fx.s3), &[&"extract", &remote, &rec, &"-o", &"-"]);
        assert!(got == fx.oracle(rec), "{rec}: extract of the copy differs");
    }
    let verify = String::from_utf8(zw_ok(Some(&fx.s3), &[&"verify", &remote])).unwrap();
    assert!(
        verify.contains("4 recordings checked, 0 errors"),
        "{verify}"
    );

    if !fuse_available() {
        return;
    }
    let m = mount_s3(&fx.s3, &[], remote, fx.dir.path(), "mnt", &[]);
    for (rec, file) in FIXTURE {
        assert!(
            std::fs::read(m.path(file)).unwrap() == fx.oracle(rec),
            "{file}: served bytes of the copy differ"
        );
    }
}

/// One recording of 60 s (48 kHz mono, 16-bit), imported as FLAC into the local
/// archive and into s3://lab/long.zarr; returns the local extract.
fn long_recording(fx: &Setup) -> Vec<u8> {
    let wav = fx.dir.path().join("long.wav");
    common::write_wav(&wav, 48_000, 1, 16, false, 48_000 * 60);
    zw_ok(None, &[&"import", &fx.local, &wav]);
    zw_ok(Some(&fx.s3), &[&"import", &"s3://lab/long.zarr", &wav]);
    fx.oracle("long")
}

/// Reads `len` bytes at `offset` of the mounted `path` with a fresh O_DIRECT open.
fn read_direct(path: &Path, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    pread(&open_direct(path)?, offset, len)
}

#[test]
fn server_death_gives_eio_within_the_timeout_and_reads_recover() {
    if !fuse_available() {
        return;
    }
    let mut fx = Setup::new();
    let oracle = long_recording(&fx);
    const LEN: usize = 64 << 10;
    // (global flags, mount options: the 3 s timeout one way or the other; seconds into
    // the file to read at; whether the server dies or hangs)
    let rounds: [(&[&str], &[&str], f64, bool); 2] = [
        (&[], &["-o", "timeout=3"], 30.0, true),
        (&["--timeout", "3"], &[], 45.0, false),
    ];
    for (n, (global, extra, secs, dies)) in rounds.into_iter().enumerate() {
        let what = if dies { "killed" } else { "hung" };
        let mut m = mount_s3(
            &fx.s3,
            global,
            "s3://lab/long.zarr",
            fx.dir.path(),
            &format!("mnt{n}"),
            extra,
        );
        let path = m.path("long.wav");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), oracle.len() as u64);
        // The start only: one span decoded, nothing prefetched (a single read is no
        // sequential run); the region read later is far from it.
        let f = open_direct(&path).unwrap();
        assert!(pread(&f, 0, 4096).unwrap() == oracle[..4096]);
        // 64 KiB at `secs` s into the file, 4 KiB-aligned
        let offset = (44 + (secs * 48_000.0) as u64 * 2) & !4095;
        let want = &oracle[offset as usize..offset as usize + LEN];

        if dies {
            fx.s3.kill();
        } else {
            fx.s3.pause();
        }
        let t = Instant::now();
        let e = pread(&f, offset, LEN).expect_err("a read with the server gone");
        let elapsed = t.elapsed();
        assert_eq!(
            e.raw_os_error(),
            Some(libc::EIO),
            "server {what}: {e}; log: {}",
            m.log()
        );
        assert!(
            elapsed < Duration::from_secs(20),
            "server {what}: EIO after {elapsed:?} with a 3 s timeout"
        );
        eprintln!("round {n} (server {what}): EIO after {elapsed:?}");
        // a fresh open fails the same way (nothing was cached: neither the error nor
        // the bytes)
        if let Err(e) = read_direct(&path, offset, LEN) {
            assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
        } else {
            panic!("server {what}: a fresh open read bytes the server never sent");
        }
        // the mount lives on
        assert!(std::fs::metadata(&m.mnt).unwrap().is_dir());
        assert!(is_mounted(&m.mnt));
        assert!(
            m.child.as_mut().unwrap().try_wait().unwrap().is_none(),
            "daemon exited: {}",
            m.log()
        );

        if dies {
            fx.s3.restart();
        } else {
            fx.s3.resume();
        }
        let got = read_direct(&path, offset, LEN)
            .unwrap_or_else(|e| panic!("server back ({what} before): {e}; log: {}", m.log()));
        assert!(got == want, "round {n}: bytes after recovery differ");
        assert!(
            pread(&f, offset, LEN).unwrap() == want,
            "the old handle too"
        );
        // and the rest of the file
        drop(f);
        assert!(
            std::fs::read(&path).unwrap() == oracle,
            "round {n}: whole file"
        );
        assert!(m.signal(libc::SIGTERM).success(), "{}", m.log());
        assert!(!is_mounted(&m.mnt));
        let log = m.log();
        assert!(!log.contains("panicked"), "{log}");
    }
}

/// Asserts a failure reported the way every error is: non-zero exit and exactly one
/// line on stderr, `zarr-wavfs: error: ...`, naming `needle`; within 5 s.
fn assert_one_line_failure(what: &str, o: &Output, elapsed: Duration, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "{what}: succeeded; stderr: {err}");
    assert_eq!(o.status.code(), Some(2), "{what}: exit code; stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: not one line:\n{err}");
    assert!(
        lines[0].starts_with("zarr-wavfs: error: "),
        "{what}: {}",
        lines[0]
    );
    assert!(
        lines[0].to_lowercase().contains(needle),
        "{what}: does not mention {needle:?}: {}",
        lines[0]
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "{what}: took {elapsed:?} to fail"
    );
}

#[test]
fn wrong_credentials_and_missing_bucket_fail_at_once_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(&dir.path().join("s3"));
    s3.create_bucket("lab");
    zw_ok(
        Some(&s3),
        &[
            &"import",
            &"s3://lab/a.zarr",
            &Path::new(TESTDATA).join("sweep.opus"),
        ],
    );
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mnt = mnt.canonicalize().unwrap();
    let fuse = fuse_available();
    let cases: [(&str, &str, bool, &str); 3] = [
        ("wrong secret key", "s3://lab/a.zarr", true, "denied"),
        (
            "missing bucket",
            "s3://nosuchbucket/a.zarr",
            false,
            "nosuchbucket",
        ),
        (
            "missing prefix",
            "s3://lab/nothere.zarr",
            false,
            "nothere.zarr",
        ),
    ];
    for (what, addr, wrong_key, needle) in cases {
        let command = || {
            let mut c = zw_command(Some(&s3));
            // the user's own setting: no RUST_LOG
            c.env_remove("RUST_LOG");
            if wrong_key {
                c.env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
            }
            c
        };
        let mut ls = command();
        ls.args(["ls", addr]);
        let (o, t) = run_within(ls, Duration::from_secs(60));
        assert_one_line_failure(&format!("ls, {what}"), &o, t, needle);
        let mut info = command();
        info.args(["info", addr, "sweep"]);
        let (o, t) = run_within(info, Duration::from_secs(60));
        assert_one_line_failure(&format!("info, {what}"), &o, t, needle);
        if !fuse {
            continue;
        }
        // detached (the usual way) and in the foreground
        for fg in [false, true] {
            let mut mount = command();
            mount.arg("mount").arg(addr).arg(&mnt);
            if fg {
                mount.arg("-f");
            }
            let (o, t) = run_within(mount, Duration::from_secs(60));
            let leftover = is_mounted(&mnt);
            if leftover {
                let _ = Command::new("fusermount3")
                    .args(["-u", "-z"])
                    .arg(&mnt)
                    .status();
            }
            let what = format!("mount (-f: {fg}), {what}");
            if fg {
                // In the foreground the daemon's log is stderr, and it logs the error
                // too: one error line, after (timestamped) log lines only.
                let mut o = o.clone();
                let err = stderr(&o);
                let (log, rest): (Vec<&str>, Vec<&str>) =
                    err.lines().partition(|l| l.starts_with('['));
                assert!(
                    log.iter().all(|l| l.contains(" zarr_wavfs")),
                    "{what}: {err}"
                );
                o.stderr = rest.join("\n").into_bytes();
                assert_one_line_failure(&what, &o, t, needle);
            } else {
                assert_one_line_failure(&what, &o, t, needle);
            }
            assert!(!leftover, "{what}: left a mount behind");
        }
    }
    // the right key still works: the failures were the key's
    assert!(zw_ok(Some(&s3), &[&"ls", &"s3://lab/a.zarr"]).starts_with(b"sweep.wav"));
}

/// Whether any object (file) exists below `dir`.
fn has_objects(dir: &Path) -> bool {
    !files_below(dir).is_empty()
}

#[test]
fn an_interrupted_s3_import_leaves_nothing_visible() {
    let fx = Setup::new();
    let s3 = Some(&fx.s3);
    let remote = "s3://lab/b.zarr";
    let staging = fx.s3.data_dir.join("lab/b.zarr/.zarr-wavfs-staging");
    // 5 minutes of mono: 29 MB of samples, several seconds of import
    let wav = fx.dir.path().join("long.wav");
    common::write_wav(&wav, 48_000, 1, 16, false, 48_000 * 300);
    let import = |codec: &str| {
        zw_command(s3)
            .args(["import", "--codec", codec, remote])
            .arg(&wav)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };

    // Killed while encoding (FLAC goes to a local scratch file first)...
    let mut child = import("flac");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the FLAC import ended within 0.5 s"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // ...and while writing: PCM shards are uploaded as they fill.
    let mut child = import("pcm");
    let t = Instant::now();
    while !has_objects(&staging) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the PCM import ended before anything was seen staged"
        );
        assert!(t.elapsed() < Duration::from_secs(60), "nothing staged");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the PCM import finished before it could be killed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        has_objects(&staging),
        "killed while writing: objects staged"
    );

    let ls = String::from_utf8(zw_ok(s3, &[&"ls", &remote])).unwrap();
    assert!(!ls.contains("long"), "a killed import is listed:\n{ls}");
    let e = zw(s3, &[&"info", &remote, &"long"]);
    assert!(
        !e.status.success(),
        "info of a killed import: {}",
        stdout(&e)
    );
    let verify = zw(s3, &[&"verify", &remote]);
    assert!(
        verify.status.success() && !stdout(&verify).contains("ERROR"),
        "verify after a killed import ({}): {}{}",
        verify.status,
        stdout(&verify),
        stderr(&verify)
    );

    eprintln!("verify after the killed imports:\n{}", stdout(&verify));

    // the same file again, to the end; it removes the leftovers (their process is gone)
    zw_ok(s3, &[&"import", &"--codec", &"pcm", &remote, &wav]);
    zw_ok(None, &[&"import", &"--codec", &"pcm", &fx.local, &wav]);
    assert!(
        !has_objects(&staging),
        "leftovers still staged: {:?}",
        files_below(&staging)
    );
    let ls = String::from_utf8(zw_ok(s3, &[&"ls", &remote])).unwrap();
    assert_eq!(ls.matches("long.wav").count(), 1, "{ls}");
    let got = zw_ok(s3, &[&"extract", &remote, &"long", &"-o", &"-"]);
    assert!(
        got == fx.oracle("long"),
        "extract after the second import differs"
    );
    let verify = zw(s3, &[&"verify", &remote]);
    assert!(
        verify.status.success()
            && stdout(&verify).contains("1 recordings checked, 0 errors")
            && !stdout(&verify).contains("leftovers"),
        "{}",
        stdout(&verify)
    );
}

/// Unmounts `m` and waits for its daemon, which must exit cleanly.
fn unmount(mut m: Mount) {
    let st = Command::new("fusermount3")
        .arg("-u")
        .arg(&m.mnt)
        .status()
        .unwrap();
    assert!(st.success(), "fusermount3 -u {:?}", m.mnt);
    let status = m.wait();
    assert!(status.success(), "daemon exit {status}; log: {}", m.log());
}

#[test]
fn two_daemons_serve_one_bucket_while_a_third_process_imports() {
    if !fuse_available() {
        return;
    }
    let fx = Setup::new();
    import_fixture(Some(&fx.s3), &"s3://lab/a.zarr");
    // Two daemons standing in for two machines, each with its own cache.
    let a = mount_s3(&fx.s3, &[], "s3://lab/a.zarr", fx.dir.path(), "a", &[]);
    let b = mount_s3(&fx.s3, &[], "s3://lab/a.zarr", fx.dir.path(), "b", &[]);
    let long = fx.dir.path().join("long.wav");
    common::write_wav(&long, 48_000, 2, 16, false, 48_000 * 20);
    std::thread::scope(|s| {
        let importer = s.spawn(|| zw_ok(Some(&fx.s3), &[&"import", &"s3://lab/a.zarr", &long]));
        // Both read every file while the import writes into the same bucket.
        for (rec, file) in FIXTURE {
            let oracle = fx.oracle(rec);
            let (x, y) = (
                std::fs::read(a.path(file)).unwrap(),
                std::fs::read(b.path(file)).unwrap(),
            );
            assert!(
                x == oracle && y == oracle,
                "{file}: the two mounts differ from the oracle"
            );
        }
        importer.join().unwrap();
    });
    // The import's staged objects are invisible; after a remount both see the new
    // recording, with the same bytes as the local import of the same file.
    for m in [&a, &b] {
        assert!(!m.path("long.wav").exists(), "seen before the remount");
    }
    unmount(a);
    unmount(b);
    zw_ok(None, &[&"import", &fx.local, &long]);
    let oracle = fx.oracle("long");
    let a = mount_s3(&fx.s3, &[], "s3://lab/a.zarr", fx.dir.path(), "a", &[]);
    let b = mount_s3(&fx.s3, &[], "s3://lab/a.zarr", fx.dir.path(), "b", &[]);
    for m in [&a, &b] {
        assert!(
            std::fs::read(m.path("long.wav")).unwrap() == oracle,
            "{:?}: the new recording differs from the local import",
            m.mnt
        );
    }
    unmount(a);
    unmount(b);
}

#[test]
fn an_archive_on_a_web_server_reads_and_mounts_like_the_local_one() {
    let fx = Setup::new();
    let web = common::servers::Nginx::start(fx.dir.path());
    let url = web.file_url("local.zarr");
    // Over HTTP the tree and the stored sizes come from the manifest the imports wrote.
    assert_eq!(
        String::from_utf8(zw_ok(None, &[&"ls", &url])).unwrap(),
        String::from_utf8(zw_ok(None, &[&"ls", &fx.local])).unwrap()
    );
    for (rec, _) in FIXTURE {
        assert!(
            zw_ok(None, &[&"extract", &url, &rec, &"-o", &"-"]) == fx.oracle(rec),
            "{rec}: extract over HTTP differs"
        );
    }
    let o = zw(None, &[&"verify", &url]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Read-only: an import fails at once, and says why.
    let o = zw(
        None,
        &[&"import", &url, &Path::new(TESTDATA).join("sweep.opus")],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("read-only"), "{}", stderr(&o));
    if fuse_available() {
        let mnt = fx.dir.path().join("web");
        std::fs::create_dir_all(&mnt).unwrap();
        let log = fx.dir.path().join("web.log");
        zw_ok(None, &[&"mount", &url, &mnt, &"--log", &log]);
        let m = Mount {
            child: None,
            mnt: mnt.canonicalize().unwrap(),
            log,
        };
        for (rec, file) in FIXTURE {
            assert!(
                std::fs::read(m.path(file)).unwrap() == fx.oracle(rec),
                "{file}: served over HTTP differs"
            );
        }
        let st = Command::new("fusermount3")
            .arg("-u")
            .arg(&m.mnt)
            .status()
            .unwrap();
        assert!(st.success());
    }
    // Without a manifest a web server's archive cannot be listed: one clear line.
    std::fs::remove_file(fx.local.join(".zarr-wavfs-manifest.json")).unwrap();
    let o = zw(None, &[&"ls", &url]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no manifest") && stderr(&o).lines().count() == 1,
        "{}",
        stderr(&o)
    );
    // `manifest` on the local copy makes it servable again, with the stored sizes the
    // web server cannot list.
    zw_ok(None, &[&"manifest", &fx.local]);
    let listed = String::from_utf8(zw_ok(None, &[&"ls", &url])).unwrap();
    assert!(
        listed.contains(" stored, ") && !listed.contains("stored size unknown"),
        "{listed}"
    );
    let o = zw(None, &[&"manifest", &url]);
    assert!(stderr(&o).contains("cannot list"), "{}", stderr(&o));
}

#[test]
fn credentials_come_from_an_aws_profile_like_the_aws_cli_s() {
    let fx = Setup::new();
    import_fixture(Some(&fx.s3), &"s3://lab/a.zarr");
    let aws = fx.dir.path().join("aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        format!(
            "[default]\naws_access_key_id = nobody\naws_secret_access_key = wrong\n\n\
             [lab]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            fx.s3.access_key, fx.s3.secret_key
        ),
    )
    .unwrap();
    std::fs::write(
        aws.join("config"),
        format!(
            "[profile lab]\nregion = {}\nendpoint_url = {}\n",
            fx.s3.region, fx.s3.endpoint
        ),
    )
    .unwrap();
    let ls = |profile: Option<&str>, flag: bool| {
        // No AWS_* settings at all but the files: what a user with ~/.aws has.
        let mut c = zw_command(None);
        c.env("AWS_SHARED_CREDENTIALS_FILE", aws.join("credentials"))
            .env("AWS_CONFIG_FILE", aws.join("config"));
        match (profile, flag) {
            (Some(p), false) => {
                c.env("AWS_PROFILE", p);
            }
            (Some(p), true) => {
                c.args(["--profile", p, "--endpoint-url", &fx.s3.endpoint]);
            }
            (None, _) => {
                c.args(["--endpoint-url", &fx.s3.endpoint]);
            }
        }
        c.args(["ls", "s3://lab/a.zarr"]).output().unwrap()
    };
    let want = zw_ok(Some(&fx.s3), &[&"ls", &"s3://lab/a.zarr"]);
    for (profile, flag) in [(Some("lab"), false), (Some("lab"), true)] {
        let o = ls(profile, flag);
        assert!(o.status.success(), "{profile:?} {flag}: {}", stderr(&o));
        assert_eq!(o.stdout, want);
    }
    // The default profile's key is wrong: denied, in one line.
    let o = ls(None, false);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("denied"), "{}", stderr(&o));
}

/// One Opus recording of 60 s (48 kHz mono, encoded by the import: a checkpoint every
/// 3 s, all in one shard of `states`) in s3://lab/opus.zarr, as recording `long`.
fn long_opus(fx: &Setup) -> &'static str {
    let wav = fx.dir.path().join("long.wav");
    common::write_wav(&wav, 48_000, 1, 16, false, 48_000 * 60);
    let remote = "s3://lab/opus.zarr";
    zw_ok(
        Some(&fx.s3),
        &[&"import", &remote, &wav, &"--codec", &"opus"],
    );
    remote
}

/// The requests for `recording`'s checkpoint states among `requests`.
fn state_reads<'a>(requests: &'a [LoggedRequest], recording: &str) -> Vec<&'a LoggedRequest> {
    requests
        .iter()
        .filter(|r| {
            r.uri
                .contains(&format!("/{recording}/checkpoints/states/c/"))
        })
        .collect()
}

#[test]
fn checkpoint_shards_are_fetched_whole_not_index_then_state() {
    let fx = Setup::new();
    let remote = long_opus(&fx);
    let group = fx
        .s3
        .data_dir
        .join("lab/opus.zarr/long/checkpoints/zarr.json");
    let group: serde_json::Value = serde_json::from_slice(&std::fs::read(group).unwrap()).unwrap();
    let count = group["attributes"]["zarr_wavfs"]["count"].as_u64().unwrap();
    assert!(count > 10, "{count} checkpoints");
    // verify reads every stored state (all in one shard); a sequential read restores a
    // checkpoint wherever a run of spans starts
    for args in [
        vec!["verify", remote],
        vec!["extract", remote, "long", "-o", "-"],
    ] {
        let mark = fx.s3.log_mark();
        let o = zw_command(Some(&fx.s3)).args(&args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        let requests = fx.s3.requests_since(mark);
        let reads = state_reads(&requests, "long");
        assert!(!reads.is_empty(), "{args:?}: no state read");
        assert!(
            reads.iter().all(|r| r.range.is_none()),
            "{args:?}: states read in ranges (a shard's index, then a state): {reads:#?}"
        );
    }
}

#[test]
fn ls_takes_stored_sizes_from_the_manifest_and_lists_without_them() {
    let fx = Setup::new();
    let s3 = Some(&fx.s3);
    let remote = "s3://lab/a.zarr";
    import_fixture(s3, &remote);
    let listings = |mark| {
        fx.s3
            .requests_since(mark)
            .iter()
            .filter(|r| r.uri.contains("list-type="))
            .count()
    };
    let mark = fx.s3.log_mark();
    let ls = zw_ok(s3, &[&"ls", &remote]);
    // the manifest checked against its two folders' listings (root, pcm), no more
    assert_eq!(
        listings(mark),
        2,
        "listings of ls with sizes in the manifest"
    );

    // the manifest of an older import, without sizes: ls lists each recording's arrays
    let path = fx.s3.data_dir.join("lab/a.zarr/.zarr-wavfs-manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let removed = m["nodes"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .filter_map(|n| n.as_object_mut().unwrap().remove("audio_bytes"))
        .count();
    assert_eq!(removed, FIXTURE.len(), "sizes in the manifest");
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    let mark = fx.s3.log_mark();
    assert_eq!(
        String::from_utf8(zw_ok(s3, &[&"ls", &remote])).unwrap(),
        String::from_utf8(ls).unwrap(),
        "ls with sizes listed and with sizes from the manifest"
    );
    assert_eq!(listings(mark), 2 + 3 * FIXTURE.len());
}

#[test]
fn a_cold_open_fetches_what_it_needs_together_and_the_opus_head_once() {
    let fx = Setup::new();
    let remote = long_opus(&fx);
    // `info` opens the recording (stream, index, OpusHead, checkpoints), through a relay
    // that counts the connections: one per request in flight at a time
    let relay = ConnectionCounter::start(fx.s3.port);
    let mark = fx.s3.log_mark();
    let o = zw_command(Some(&fx.s3))
        .env("AWS_ENDPOINT_URL", &relay.endpoint)
        .args(["info", remote, "long"])
        .output()
        .unwrap();
    assert!(o.status.success(), "info failed: {}", stderr(&o));
    let requests = fx.s3.requests_since(mark);
    let first_bytes = requests
        .iter()
        .filter(|r| r.uri.ends_with("/long/stream/c/0"))
        .count();
    assert_eq!(
        first_bytes, 1,
        "the stream's first page read once: {requests:#?}"
    );
    assert!(
        relay.connections() >= 4,
        "{} connection(s): the open's requests went one after another: {requests:#?}",
        relay.connections()
    );
}

#[test]
fn restoring_a_checkpoint_reads_its_warm_up_and_its_span_in_one_request() {
    let fx = Setup::new();
    let remote = long_opus(&fx);
    // half a second inside one span (checkpoints lie 3 s apart, each within the first
    // second after a multiple of 3 s), restored from the checkpoint before it
    let mark = fx.s3.log_mark();
    let args: [&dyn AsRef<OsStr>; 9] = [
        &"extract", &remote, &"long", &"--start", &"31.5", &"--end", &"32", &"-o", &"-",
    ];
    zw_ok(Some(&fx.s3), &args);
    let requests = fx.s3.requests_since(mark);
    let stream_reads: Vec<&LoggedRequest> = requests
        .iter()
        .filter(|r| r.uri.contains("/long/stream/c/"))
        .filter(|r| {
            !r.range
                .as_deref()
                .is_some_and(|r| r.starts_with("bytes=0-"))
        })
        .collect();
    assert_eq!(
        stream_reads.len(),
        1,
        "stream reads past the head: {stream_reads:#?}"
    );
}

/// An object store cannot keep an old version readable: a handle opened before its
/// recording is re-imported must then give the old bytes or EIO for each read, never
/// other bytes. The new recording has the same shape (same size, same chunk layout),
/// the case where reading its objects at the old offsets would go unnoticed without
/// the checks; one codec with CRCs per chunk (PCM) and one with them per frame (FLAC).
#[test]
fn a_handle_open_across_an_s3_reimport_reads_old_bytes_or_eio_never_others() {
    if !fuse_available() {
        return;
    }
    let fx = Setup::new();
    for codec in ["pcm", "flac"] {
        let old_wav = fx.dir.path().join(format!("{codec}_old/take.wav"));
        let new_wav = fx.dir.path().join(format!("{codec}_new/take.wav"));
        std::fs::create_dir_all(old_wav.parent().unwrap()).unwrap();
        std::fs::create_dir_all(new_wav.parent().unwrap()).unwrap();
        common::write_wav(&old_wav, 48_000, 2, 16, false, 48_000 * 20);
        // The same shape, other samples.
        let mut bytes = std::fs::read(&old_wav).unwrap();
        for b in &mut bytes[44..] {
            *b ^= 0x5a;
        }
        std::fs::write(&new_wav, bytes).unwrap();
        let arch = format!("s3://lab/{codec}.zarr");
        zw_ok(
            Some(&fx.s3),
            &[&"import", &arch, &old_wav, &"--codec", &codec],
        );
        let old = zw_ok(Some(&fx.s3), &[&"extract", &arch, &"take", &"-o", &"-"]);
        let m = mount_s3(
            &fx.s3,
            &[],
            &arch,
            fx.dir.path(),
            &format!("mnt_{codec}"),
            &["--cache-size", "16KiB", "-o", "refresh=1"],
        );
        let path = m.path("take.wav");
        let f = open_direct(&path).unwrap();
        assert!(pread(&f, 0, 4096).unwrap() == old[..4096]);
        zw_ok(
            Some(&fx.s3),
            &[&"import", &arch, &new_wav, &"--codec", &codec, &"--force"],
        );
        let new = zw_ok(Some(&fx.s3), &[&"extract", &arch, &"take", &"-o", &"-"]);
        assert_eq!(new.len(), old.len(), "the same shape");
        assert!(new != old);
        const LEN: usize = 64 << 10;
        let (mut exact, mut eio) = (0, 0);
        for at in (4096..old.len()).step_by(LEN) {
            match pread(&f, at as u64, LEN) {
                Ok(got) => {
                    let want = &old[at..(at + LEN).min(old.len())];
                    assert!(
                        got == want,
                        "{codec}: a read at {at} of a handle opened before the re-import \
                         gave bytes of neither version's place; log: {}",
                        m.log()
                    );
                    exact += 1;
                }
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{codec}: {e}");
                    eio += 1;
                }
            }
        }
        eprintln!("{codec}: {exact} reads gave the old bytes, {eio} EIO");
        assert!(
            eio > 0,
            "{codec}: the old objects are gone, so some reads must fail"
        );
        drop(f);
        // New opens read the new recording (once the refresh has seen it).
        let t = Instant::now();
        while !std::fs::read(&path).is_ok_and(|b| b == new) {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{codec}: a new open did not read the new version: {:?}; log: {}",
                std::fs::read(&path).map(|b| b.len()),
                m.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A mounted S3 archive follows it: a recording imported by another process shows
/// within the refresh interval and reads as `extract` gives it; one removed goes.
#[test]
fn an_s3_mount_shows_imports_and_removals_of_other_processes() {
    if !fuse_available() {
        return;
    }
    let fx = Setup::new();
    let arch = "s3://lab/live.zarr";
    let wav = |name: &str| {
        let p = fx.dir.path().join(format!("{name}.wav"));
        common::write_wav(&p, 48_000, 1, 16, false, 48_000 * 3);
        p
    };
    zw_ok(
        Some(&fx.s3),
        &[&"import", &arch, &wav("first"), &"--into", &"site1"],
    );
    let m = mount_s3(
        &fx.s3,
        &[],
        arch,
        fx.dir.path(),
        "mnt",
        &["-o", "refresh=1"],
    );
    let later = m.path("site1/later.wav");
    assert!(!later.exists());
    zw_ok(
        Some(&fx.s3),
        &[&"import", &arch, &wav("later"), &"--into", &"site1"],
    );
    // A refresh every second, and a commit's few requests: well within 5 s.
    wait_until(
        "the new recording in the mount",
        Duration::from_secs(5),
        || later.exists(),
    );
    let want = zw_ok(
        Some(&fx.s3),
        &[&"extract", &arch, &"site1/later", &"-o", &"-"],
    );
    assert!(
        std::fs::read(&later).unwrap() == want,
        "served bytes differ from extract"
    );
    zw_ok(Some(&fx.s3), &[&"rm", &arch, &"site1/first"]);
    wait_until(
        "the removed recording to go",
        Duration::from_secs(5),
        || !m.path("site1/first.wav").exists(),
    );
    assert!(later.exists());
}
