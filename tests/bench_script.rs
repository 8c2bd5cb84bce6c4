//! Runs the benchmark script of issue 5 at toy sizes, `scripts/bench.sh --quick`, against
//! this build's binary, so that `cargo test --all-targets` keeps the script working. No
//! timing is asserted: only that the script exits 0 and writes a report with its tables,
//! its remote section (scripts/bench/remote.sh) included.
//!
//! Needs what the script needs: /dev/fuse and fusermount3, python3 with numpy and scipy,
//! opusenc (scripts/setup.sh installs them all). Without them the test says so and
//! passes, except under CI (`CI` set), where it must run (as tests/mount.rs does).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The script has its own cleanup (it unmounts on exit); this only stops a hung run.
const TIMEOUT: Duration = Duration::from_secs(600);

fn missing_prerequisites() -> Vec<&'static str> {
    let ok = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut missing = Vec::new();
    if !Path::new("/dev/fuse").exists() {
        missing.push("/dev/fuse");
    }
    if !ok("fusermount3", &["--version"]) {
        missing.push("fusermount3");
    }
    if !ok("opusenc", &["--version"]) {
        missing.push("opusenc");
    }
    if !ok("python3", &["-c", "import numpy, scipy"]) {
        missing.push("python3 with numpy and scipy");
    }
    missing
}

fn tail(text: &str, lines: usize) -> String {
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

#[test]
fn quick_benchmark_runs_and_writes_its_report() {
    let missing = missing_prerequisites();
    if !missing.is_empty() {
        assert!(
            std::env::var_os("CI").is_none(),
            "missing in CI: {missing:?} (scripts/setup.sh installs them)"
        );
        eprintln!(
            "SKIPPED: {} missing; benchmark script not run",
            missing.join(", ")
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench.md");
    let log = dir.path().join("bench.log");
    let started = Instant::now();
    let mut child = Command::new("bash")
        .arg(root.join("scripts/bench.sh"))
        .args([
            "--quick",
            "--bin",
            env!("CARGO_BIN_EXE_zarr-wavfs"),
            "--out",
        ])
        .arg(&out)
        .arg("--work")
        .arg(dir.path().join("work"))
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.path().join("bench.stdout")).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > TIMEOUT {
            // SIGTERM, so that the script's trap unmounts what it mounted.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    let status = status.unwrap_or_else(|| {
        panic!(
            "bench.sh --quick still running after {TIMEOUT:?}; log:\n{}",
            tail(&log, 40)
        )
    });
    assert!(
        status.success(),
        "bench.sh --quick failed ({status}); log:\n{}",
        tail(&log, 40)
    );
    eprintln!(
        "bench.sh --quick finished in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let report = std::fs::read_to_string(&out).expect("no report written");
    for header in [
        "# Benchmarks",
        "| recording | duration | WAV served | .opus | stream identical | index + checkpoints | import |",
        "| figure | ours | ffmpegfs | opusdec → disk | ffmpeg → disk | tmpfs | limit | ours/ffmpegfs | ours/decode-to-disk | ours/limit |",
        "| target | measured | met? |",
        "| core-seconds during one cold `cat` |",
        "## Commands",
    ] {
        assert!(
            report.contains(header),
            "report lacks {header:?}:\n{report}"
        );
    }
    // Every section of the table was measured for our mount (figures, not timings).
    for row in [
        "| cold sequential `cat`, s |",
        "| bytes served / st_size |",
        "| cold 4 KiB read p99 (pread), ms |",
        "| warm 4 KiB read p99, µs |",
        "| 4 readers ÷ 1 reader (throughput) |",
        "| `ls -lR` of a fresh mount,",
    ] {
        assert!(report.contains(row), "report lacks {row:?}:\n{report}");
    }
    // scripts/bench/remote.sh's section: measured wherever s3s-fs runs, and so always in
    // CI (scripts/setup.sh installs it); elsewhere it may only say why it is not.
    let remote = report
        .split_once("## Remote archives (S3)")
        .unwrap_or_else(|| panic!("report lacks the remote section:\n{report}"))
        .1;
    if remote.trim_start().starts_with("Not measured:") {
        assert!(
            std::env::var_os("CI").is_none(),
            "remote section not measured in CI:\n{remote}"
        );
        eprintln!("remote section not measured: {}", tail(remote, 3));
    } else {
        for row in [
            "| cold `cat` of the whole WAV, s |",
            "| requests per mount |",
            "| requests per cold `cat` (after the mount) |",
        ] {
            assert!(
                remote.contains(row),
                "remote section lacks {row:?}:\n{remote}"
            );
        }
    }
    // The profile of a cold sequential read, or the note saying why there is none.
    assert!(
        report.contains("| where the samples fell |")
            || report.contains("perf missing or not permitted"),
        "report has neither the profile nor a note on perf:\n{report}"
    );
}
