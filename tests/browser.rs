//! `zarr-wavfs serve`'s folder page in a real browser: headless Chromium (Debian's
//! `chromium`, driven by Playwright for Python with `executable_path`; Playwright's own
//! browser builds are never used) opens the page of a folder, reads the `<audio>`
//! element's duration, seeks it to 80 % and plays from there, opens the spectrogram's
//! `<details>` and loads its image, and saves a screenshot. The browser's own Range
//! requests are checked in the server's access log. The driver is
//! tests/browser/page.py, which reports what it saw as JSON; this file asserts.
//!
//! Without chromium or Playwright the test says so and passes, except under CI (`CI`
//! set), where they must be there (scripts/setup.sh installs both).

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::serve::Server;
use common::{run, stderr};

/// The longest the browser script may take (each of its steps waits 20 s at most).
const BROWSER_LIMIT: Duration = Duration::from_secs(150);

/// The Chromium binary: `$CHROMIUM`, else `chromium` on the PATH. None (skip) when there
/// is none, except under CI.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("CHROMIUM").map(PathBuf::from).or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
                .find(|p| p.is_file())
        })
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is not installed in CI (scripts/setup.sh installs it)"
        );
        eprintln!("SKIPPED: chromium is not installed; run scripts/setup.sh");
    }
    found
}

/// Runs `cmd` to its end or until `limit`, then kills it; its stdout, stderr and status.
fn run_bounded(cmd: &mut Command, limit: Duration) -> (String, String, bool) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let t = Instant::now();
    let ok = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.success();
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let err = err_t.join().unwrap();
            panic!("the browser script ran over {limit:?} and was killed; stderr: {err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (out_t.join().unwrap(), err_t.join().unwrap(), ok)
}

/// The start of each `Range: bytes=a-…` request for `path` in the access log, with the
/// status and bytes sent of its line.
fn ranges_in_log(log: &str, path: &str) -> Vec<(u64, u16, u64)> {
    let needle = format!("\"GET {path}\" range=bytes=");
    log.lines()
        .filter(|l| l.contains("zarr_wavfs::access"))
        .filter_map(|l| {
            let rest = &l[l.find(&needle)? + needle.len()..];
            let (spec, rest) = rest.split_once(' ')?;
            let start = spec.split_once('-')?.0.parse().ok()?;
            let mut words = rest.split_whitespace();
            let status = words.next()?.parse().ok()?;
            let sent = words.next()?.parse().ok()?;
            Some((start, status, sent))
        })
        .collect()
}

fn field<'a>(
    v: &'a serde_json::Value,
    key: &str,
    all: &serde_json::Value,
) -> &'a serde_json::Value {
    v.get(key)
        .unwrap_or_else(|| panic!("the browser script reported no {key:?}: {all:#}"))
}

#[test]
fn folder_page_plays_seeks_and_shows_the_spectrogram_in_chromium() {
    let Some(chromium) = chromium() else { return };
    if !common::python_has("playwright.sync_api") {
        return;
    }

    // 40 s of mono 48 kHz FLAC under an AudioMoth-style name (it has a start time).
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch.zarr");
    let wav = dir.path().join("20250601_040000.wav");
    let frames = 48_000 * 40 + 7;
    common::write_wav(&wav, 48_000, 1, 16, false, frames);
    let o = run(&[
        &"import", &arch, &wav, &"--into", &"site1", &"--codec", &"flac",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let file_len = 44 + 2 * frames; // the served WAV: a 44-byte header, 16-bit mono
    let duration = frames as f64 / 48_000.0;

    let server = Server::start(&arch, &[]);
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("browser-test/page.png");
    let _ = std::fs::remove_file(&shot);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/page.py");
    let (out, err, ok) = run_bounded(
        Command::new("python3")
            .arg(&script)
            .arg(server.url("/site1/"))
            .arg("20250601_040000.wav")
            .arg(&shot)
            .env("CHROMIUM", &chromium),
        BROWSER_LIMIT,
    );
    assert!(ok, "the browser script failed: {err}\n{out}");
    let r: serde_json::Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("the browser script's output is not JSON ({e}): {out}\n{err}"));
    let log = server.log();
    let context = format!("browser: {r:#}\nserver log:\n{log}");
    if let Some(e) = r.get("error") {
        panic!("in the browser, step {e}\n{context}");
    }

    // The page loaded, with one player for the recording.
    assert_eq!(r["status"], 200, "{context}");
    assert_eq!(r["audio_count"], 1, "{context}");

    // The player read the duration from the WAV header (its own Range request).
    let got = field(&r, "duration", &r).as_f64().unwrap();
    assert!(
        (got - duration).abs() < 0.05,
        "<audio> duration {got} s, expected {duration:.3} s\n{context}"
    );

    // Seeking to 80 % lands there, and playing advances from there.
    let target = field(&r, "seek_to", &r).as_f64().unwrap();
    assert!((target - 0.8 * duration).abs() < 0.01, "{context}");
    let after_seek = field(&r, "after_seek", &r).as_f64().unwrap();
    assert!(
        (after_seek - target).abs() < 0.1,
        "currentTime {after_seek} after seeking to {target}\n{context}"
    );
    assert!(r["play_error"].is_null(), "play() failed\n{context}");
    assert!(r["media_error"].is_null(), "media error\n{context}");
    let samples: Vec<f64> = field(&r, "playing_samples", &r)
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(
        samples.iter().all(|&t| t >= target && t <= duration + 0.01),
        "currentTime while playing left [{target}, {duration}]: {samples:?}\n{context}"
    );
    assert!(
        samples.windows(2).all(|w| w[1] >= w[0]) && samples.last() > samples.first(),
        "currentTime did not advance while playing: {samples:?}\n{context}"
    );
    assert!(
        samples[0] >= target + 1.0,
        "played less than 1 s past the seek point: {samples:?}\n{context}"
    );

    // The access log has the browser's Range requests: the first from the start (the
    // header and the duration), and one from the seek point near 80 % of the bytes.
    // Chromium starts its ranges at 32 KiB block boundaries, so the seek's first range
    // may start up to a block before the byte of 80 % of the time.
    let ranges = ranges_in_log(&log, "/site1/20250601_040000.wav");
    assert!(
        ranges.iter().any(|&(s, ..)| s == 0),
        "no Range request from byte 0: {ranges:?}\n{context}"
    );
    let seek_byte = 44 + 2 * (target * 48_000.0) as u64;
    assert!(
        seek_byte > file_len * 8 / 10,
        "80 % of the time is past 80 % of the bytes"
    );
    let near_seek = ranges
        .iter()
        .filter(|&&(s, status, _)| {
            s + (64 << 10) >= seek_byte && s < file_len && (status == 206 || status == 304)
        })
        .count();
    assert!(
        near_seek > 0,
        "no Range request from the seek point (byte {seek_byte} of {file_len}): \
         {ranges:?}\n{context}"
    );
    // Chromium may revalidate bytes it holds already (If-None-Match with a Range): 304.
    assert!(
        ranges
            .iter()
            .all(|&(_, status, _)| status == 206 || status == 304),
        "a Range request was answered other than 206 or 304: {ranges:?}\n{context}"
    );

    // The spectrogram of the first 30 s, in its <details>, loads once that is opened.
    assert_eq!(r["details_open"], true, "{context}");
    assert_eq!(
        r["img_src"], "20250601_040000.png?start=0&end=30.000",
        "{context}"
    );
    let natural = field(&r, "img_natural", &r);
    assert!(
        natural[0].as_u64().unwrap_or(0) > 0 && natural[1].as_u64().unwrap_or(0) > 0,
        "the spectrogram image did not load (natural size {natural})\n{context}"
    );
    assert!(
        log.contains("\"GET /site1/20250601_040000.png?start=0&end=30.000\" range=- 200"),
        "no 200 for the spectrogram in the access log\n{context}"
    );

    assert!(shot.is_file(), "no screenshot at {}", shot.display());
    println!("screenshot: {}", shot.display());
    eprintln!("screenshot: {}", shot.display());
}
