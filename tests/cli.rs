//! The binary end to end: import → extract across processes, damaged archives, bad
//! inputs, interrupted imports, and outside tools (opusdec, zarr-python).

mod common;

use std::path::{Path, PathBuf};

use common::{assert_clean_failure, run, stderr, stdout};
use zarr_wavfs::archive::{Archive, StreamBytes};

/// A temp dir with an archive holding `rec` (48 kHz mono, `secs` long, 2 s checkpoints).
fn archive_with(secs: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("rec.wav");
    common::write_wav(&wav, 48_000, 1, 16, false, 48_000 * secs + 11);
    let arch = dir.path().join("arch");
    let o = run(&[
        &"import",
        &"--codec",
        &"opus",
        &arch,
        &wav,
        &"--checkpoint-interval",
        &"2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    (dir, arch)
}

fn extract_all(arch: &Path, rec: &str, out: &Path) -> Vec<i16> {
    let o = run(&[&"extract", &arch, &rec, &"-o", &out]);
    assert!(o.status.success(), "{}", stderr(&o));
    hound::WavReader::open(out)
        .unwrap()
        .samples::<i16>()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn extract_in_another_process_equals_the_sequential_decode() {
    let (dir, arch) = archive_with(9);
    let oracle = common::sequential_decode(&Archive::open(&arch).unwrap(), "rec");
    let got = extract_all(&arch, "rec", &dir.path().join("out.wav"));
    assert!(got == oracle);
    // a range, given as seconds and as frames
    let part = dir.path().join("part.wav");
    let o = run(&[
        &"extract", &arch, &"rec.wav", &"--start", &"2.5", &"--end", &"150000f", &"-o", &part,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s: Vec<i16> = hound::WavReader::open(&part)
        .unwrap()
        .samples::<i16>()
        .map(Result::unwrap)
        .collect();
    assert!(s == oracle[120_000..150_000]);
}

#[test]
fn extract_to_stdout_is_the_same_file() {
    let (dir, arch) = archive_with(3);
    let file = dir.path().join("a.wav");
    extract_all(&arch, "rec", &file);
    let o = run(&[&"extract", &arch, &"rec", &"-o", &"-"]);
    assert!(o.status.success());
    assert!(o.stdout == std::fs::read(&file).unwrap());
}

#[test]
fn stored_stream_plays_in_opusdec_with_the_same_frame_count() {
    let (dir, arch) = archive_with(5);
    let archive = Archive::open(&arch).unwrap();
    let rec = archive.recording("rec").unwrap();
    let bytes = rec.read(0..rec.meta().stream_bytes).unwrap();
    let opus = dir.path().join("x.opus");
    std::fs::write(&opus, &bytes).unwrap();
    let out = dir.path().join("dec.wav");
    common::opusdec(&opus, &out);
    let r = hound::WavReader::open(&out).unwrap();
    assert_eq!(u64::from(r.duration()), rec.meta().frames);
}

#[test]
fn ogg_opus_input_is_stored_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("src.wav");
    common::write_wav(&wav, 48_000, 2, 16, false, 48_000 * 4 + 7);
    let opus = dir.path().join("song.opus");
    let o = std::process::Command::new("opusenc")
        .args(["--quiet", "--bitrate", "48"])
        .arg(&wav)
        .arg(&opus)
        .output()
        .expect("opusenc");
    assert!(o.status.success());
    let arch = dir.path().join("arch");
    let o = run(&[&"import", &"--codec", &"opus", &arch, &opus]);
    assert!(o.status.success(), "{}", stderr(&o));
    let archive = Archive::open(&arch).unwrap();
    let rec = archive.recording("song").unwrap();
    let stored = rec.read(0..rec.meta().stream_bytes).unwrap();
    assert!(stored == std::fs::read(&opus).unwrap());
    assert_eq!(rec.meta().frames, 48_000 * 4 + 7);
    let got = extract_all(&arch, "song", &dir.path().join("x.wav"));
    assert!(got == common::sequential_decode(&archive, "song"));
}

/// Rewrites the `zarr_wavfs` attributes of the group at `dir` through `f`.
fn edit_attrs(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("zarr.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut v["attributes"]["zarr_wavfs"]);
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn checkpoints_from_another_decoder_build_are_rebuilt_not_trusted() {
    let (dir, arch) = archive_with(9);
    let oracle = common::sequential_decode(&Archive::open(&arch).unwrap(), "rec");
    edit_attrs(&arch.join("rec/checkpoints"), |a| {
        a["fingerprint"]["arch"] = 99.into()
    });
    let o = run(&[&"extract", &arch, &"rec", &"-o", &dir.path().join("o.wav")]);
    assert!(o.status.success());
    assert!(
        stderr(&o).contains("different libopus build"),
        "{}",
        stderr(&o)
    );
    let got: Vec<i16> = hound::WavReader::open(dir.path().join("o.wav"))
        .unwrap()
        .samples::<i16>()
        .map(Result::unwrap)
        .collect();
    assert!(got == oracle);
    // verify notes it without failing; `index` rebuilds; then the warning is gone
    let o = run(&[&"verify", &arch]);
    assert!(
        o.status.success() && stdout(&o).contains("another libopus build"),
        "{}",
        stdout(&o)
    );
    let o = run(&[&"index", &arch]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[&"extract", &arch, &"rec", &"-o", &dir.path().join("p.wav")]);
    assert!(o.status.success() && !stderr(&o).contains("different libopus build"));
    assert!(
        std::fs::read(dir.path().join("p.wav")).unwrap()
            == std::fs::read(dir.path().join("o.wav")).unwrap()
    );
}

/// Flips one byte in the middle of the first file found under `dir`.
fn flip_byte_in(dir: &Path, frac: f64) -> PathBuf {
    let mut files: Vec<PathBuf> = walk(dir)
        .into_iter()
        .filter(|p| p.file_name().unwrap() != "zarr.json")
        .collect();
    files.sort();
    let f = files.into_iter().next().expect("a chunk file");
    let mut b = std::fs::read(&f).unwrap();
    let i = ((b.len() as f64) * frac) as usize;
    b[i] ^= 0x5A;
    std::fs::write(&f, b).unwrap();
    f
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
fn a_damaged_checkpoint_is_detected_and_the_audio_is_unchanged() {
    let (dir, arch) = archive_with(9);
    let oracle = common::sequential_decode(&Archive::open(&arch).unwrap(), "rec");
    // Early in the shard file: inside the first state's compressed bytes (the shard
    // index at its end also lists the shard's unused rows).
    flip_byte_in(&arch.join("rec/checkpoints/states"), 0.1);
    let o = run(&[&"verify", &arch]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("ERROR: rec"), "{}", stdout(&o));
    let got = extract_all(&arch, "rec", &dir.path().join("o.wav"));
    assert!(got == oracle, "a damaged checkpoint changed the audio");
}

#[test]
fn damaged_stream_bytes_give_an_error_never_different_audio() {
    let (dir, arch) = archive_with(9);
    flip_byte_in(&arch.join("rec/stream"), 0.6);
    let o = run(&[&"extract", &arch, &"rec", &"-o", &dir.path().join("o.wav")]);
    assert_clean_failure(&o, "rec");
    assert!(
        stderr(&o).contains("CRC") || stderr(&o).contains("damaged"),
        "{}",
        stderr(&o)
    );
    assert!(
        !dir.path().join("o.wav").exists(),
        "a failed extract left a file"
    );
    // the undamaged start still reads
    let o = run(&[
        &"extract",
        &arch,
        &"rec",
        &"--end",
        &"1",
        &"-o",
        &dir.path().join("head.wav"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[&"verify", &arch]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn a_damaged_index_is_refused() {
    let (dir, arch) = archive_with(4);
    flip_byte_in(&arch.join("rec/index"), 0.5);
    let o = run(&[&"extract", &arch, &"rec", &"-o", &dir.path().join("o.wav")]);
    assert_clean_failure(&o, "index");
}

#[test]
fn a_truncated_stream_is_an_error_and_other_recordings_still_work() {
    let (dir, arch) = archive_with(4);
    let wav = dir.path().join("other.wav");
    common::write_wav(&wav, 16_000, 1, 16, false, 16_000 * 3);
    assert!(
        run(&[&"import", &"--codec", &"opus", &arch, &wav])
            .status
            .success()
    );
    std::fs::remove_file(arch.join("rec/stream/c/0")).unwrap();
    let o = run(&[&"extract", &arch, &"rec", &"-o", &dir.path().join("o.wav")]);
    assert_clean_failure(&o, "rec");
    let o = run(&[
        &"extract",
        &arch,
        &"other",
        &"-o",
        &dir.path().join("p.wav"),
    ]);
    assert!(o.status.success());
    let o = run(&[&"ls", &arch]);
    assert!(stdout(&o).contains("other.wav") && stdout(&o).contains("rec.wav"));
    let o = run(&[&"verify", &arch]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("ERROR: rec") && !stdout(&o).contains("ERROR: other"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn wrong_or_missing_attributes_name_the_recording_and_do_not_stop_ls() {
    let (dir, arch) = archive_with(2);
    let wav = dir.path().join("ok.wav");
    common::write_wav(&wav, 8_000, 1, 16, false, 8_000);
    assert!(
        run(&[&"import", &"--codec", &"opus", &arch, &wav])
            .status
            .success()
    );
    edit_attrs(&arch.join("rec"), |a| {
        a.as_object_mut().unwrap().remove("frames");
    });
    let o = run(&[&"ls", &arch]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("UNREADABLE")
            && stdout(&o).contains("frames")
            && stdout(&o).contains("ok.wav"),
        "{}",
        stdout(&o)
    );
    let o = run(&[&"info", &arch, &"rec"]);
    assert_clean_failure(&o, "frames");
    edit_attrs(&arch.join("ok"), |a| a["channels"] = 9.into());
    let o = run(&[&"info", &arch, &"ok"]);
    assert_clean_failure(&o, "does not match its meta_sha256");
    // Without the digest (format version 4), the checks of each attribute name it.
    edit_attrs(&arch.join("ok"), |a| {
        a.as_object_mut().unwrap().remove("meta_sha256");
        a["format_version"] = 4.into();
    });
    let o = run(&[&"info", &arch, &"ok"]);
    assert_clean_failure(&o, "channels");
    // a count Opus allows, but not the one the stream's OpusHead declares
    edit_attrs(&arch.join("ok"), |a| a["channels"] = 7.into());
    let o = run(&[&"extract", &arch, &"ok", &"-o", &dir.path().join("x.wav")]);
    assert_clean_failure(&o, "OpusHead");
}

#[test]
fn foreign_zarr_arrays_beside_recordings_are_ignored() {
    let (_dir, arch) = archive_with(1);
    let a = arch.join("notes");
    std::fs::create_dir(&a).unwrap();
    std::fs::write(
        a.join("zarr.json"),
        r#"{"zarr_format": 3, "node_type": "array", "shape": [3], "data_type": "uint8"}"#,
    )
    .unwrap();
    let o = run(&[&"ls", &arch]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(!stdout(&o).contains("notes"), "{}", stdout(&o));
    assert!(stdout(&o).contains("rec.wav"));
}

#[test]
fn bad_inputs_get_one_clear_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let arch = d.join("arch");
    // missing file
    assert_clean_failure(
        &run(&[&"import", &"--codec", &"opus", &arch, &d.join("nope.wav")]),
        "nope.wav",
    );
    // not audio
    std::fs::write(d.join("notes.wav"), b"these are field notes, not audio").unwrap();
    assert_clean_failure(
        &run(&[&"import", &"--codec", &"opus", &arch, &d.join("notes.wav")]),
        "notes.wav",
    );
    // truncated WAV: header promises more frames than the file holds
    common::write_wav(&d.join("full.wav"), 48_000, 1, 16, false, 48_000);
    let b = std::fs::read(d.join("full.wav")).unwrap();
    std::fs::write(d.join("cut.wav"), &b[..b.len() / 2]).unwrap();
    let o = run(&[&"import", &"--codec", &"opus", &arch, &d.join("cut.wav")]);
    assert_clean_failure(&o, "cut.wav");
    assert!(stderr(&o).contains("truncated"), "{}", stderr(&o));
    // empty recording
    common::write_wav(&d.join("empty.wav"), 48_000, 1, 16, false, 0);
    let o = run(&[&"import", &"--codec", &"opus", &arch, &d.join("empty.wav")]);
    assert_clean_failure(&o, "empty.wav");
    assert!(stderr(&o).contains("empty"));
    // nothing failed half-way: no recording appeared
    common::assert_no_recordings(&arch);
    // an archive path that is not an archive
    std::fs::create_dir(d.join("plain")).unwrap();
    std::fs::write(d.join("plain/file.txt"), b"x").unwrap();
    assert_clean_failure(&run(&[&"ls", &d.join("plain")]), "plain");
    assert_clean_failure(
        &run(&[
            &"import",
            &"--codec",
            &"opus",
            &d.join("plain"),
            &d.join("full.wav"),
        ]),
        "plain",
    );
    assert_clean_failure(&run(&[&"ls", &d.join("missing")]), "missing");
    // an unknown recording
    assert!(
        run(&[&"import", &"--codec", &"opus", &arch, &d.join("full.wav")])
            .status
            .success()
    );
    assert_clean_failure(&run(&[&"info", &arch, &"nosuch"]), "nosuch");
}

#[test]
fn importing_onto_an_existing_name_needs_force() {
    let (dir, arch) = archive_with(2);
    let wav = dir.path().join("rec.wav");
    let o = run(&[&"import", &"--codec", &"opus", &arch, &wav]);
    assert_clean_failure(&o, "--force");
    let o = run(&[
        &"import",
        &"--codec",
        &"opus",
        &arch,
        &wav,
        &"--force",
        &"--bitrate",
        &"32k",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[&"verify", &arch]);
    assert!(o.status.success(), "{}", stdout(&o));
}

#[test]
fn an_import_killed_half_way_leaves_a_valid_archive_without_the_recording() {
    let (dir, arch) = archive_with(2);
    let long = dir.path().join("long.wav");
    common::write_wav(&long, 48_000, 2, 16, false, 48_000 * 60 * 20);
    let mut child = std::process::Command::new(common::bin())
        .arg("import")
        .args(["--codec", "opus"])
        .arg(&arch)
        .arg(&long)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // wait until its staging directory exists: the import is under way
    let staging = arch.join(".zarr-wavfs-staging");
    let t0 = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    while std::fs::read_dir(&staging).map_or(true, |mut d| d.next().is_none())
        && t0.elapsed().as_secs() < 60
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the import finished before it could be killed"
    );
    let archive = Archive::open(&arch).unwrap();
    let names: Vec<String> = archive
        .recordings()
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(names, vec!["rec".to_string()]);
    let o = run(&[&"verify", &arch]);
    assert!(o.status.success(), "{}", stdout(&o));
    // the next import cleans the leftovers of the killed one
    let short = dir.path().join("short.wav");
    common::write_wav(&short, 8_000, 1, 16, false, 8_000);
    assert!(
        run(&[&"import", &"--codec", &"opus", &arch, &short])
            .status
            .success()
    );
    assert!(std::fs::read_dir(&staging).unwrap().next().is_none());
}

#[test]
fn directories_import_recursively_as_folders() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("site3");
    std::fs::create_dir_all(src.join("night1")).unwrap();
    common::write_wav(
        &src.join("20250601_040000.WAV"),
        16_000,
        1,
        16,
        false,
        16_000,
    );
    common::write_wav(&src.join("night1/b.wav"), 24_000, 2, 24, false, 24_000);
    common::write_wav(&src.join("night1/c.wav"), 96_000, 1, 32, true, 9_600);
    std::fs::write(src.join("readme.txt"), b"not audio").unwrap();
    let arch = dir.path().join("arch");
    let o = run(&[
        &"import", &"--codec", &"opus", &arch, &src, &"--into", &"lab",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let archive = Archive::open(&arch).unwrap();
    let mut names: Vec<String> = archive
        .recordings()
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "lab/site3/20250601_040000",
            "lab/site3/night1/b",
            "lab/site3/night1/c"
        ]
    );
    let m = archive
        .recording("lab/site3/20250601_040000")
        .unwrap()
        .meta()
        .clone();
    assert_eq!(m.start_time.as_deref(), Some("2025-06-01T04:00:00Z"));
    let c = archive
        .recording("lab/site3/night1/c")
        .unwrap()
        .meta()
        .clone();
    assert_eq!((c.frames, c.original_sample_rate), (9_600, 96_000));
    let o = run(&[&"ls", &arch]);
    assert!(stdout(&o).contains("night1/"), "{}", stdout(&o));
}

#[test]
fn zarr_python_reads_the_same_stream_and_attributes() {
    let (_dir, arch) = archive_with(3);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/zarr_python_check.py");
    if !common::python_has("zarr") {
        return;
    }
    let o = std::process::Command::new("python3")
        .arg(&script)
        .arg(&arch)
        .arg("rec")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let archive = Archive::open(&arch).unwrap();
    let rec = archive.recording("rec").unwrap();
    let bytes = rec.read(0..rec.meta().stream_bytes).unwrap();
    use sha2::Digest;
    assert_eq!(
        v["stream_sha256"].as_str().unwrap(),
        hex::encode(sha2::Sha256::digest(&bytes))
    );
    assert_eq!(v["attrs"]["frames"].as_u64().unwrap(), rec.meta().frames);
    assert_eq!(v["attrs"]["original_sample_rate"].as_u64().unwrap(), 48_000);
}
