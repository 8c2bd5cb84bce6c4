//! `import --skip-existing`: an interrupted import of a folder resumes, unchanged inputs
//! are left alone, changed ones are imported again; and the progress counts.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{assert_clean_failure, run, stderr, stdout, write_wav};
use zarr_wavfs::archive::Archive;

/// How many of the job lines of an import's stderr start with `what`.
fn count(out: &std::process::Output, what: &str) -> usize {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with(&format!("{what} ")))
        .count()
}

fn recordings(arch: &Path) -> Vec<String> {
    match Archive::open(arch) {
        Ok(a) => a.recordings().map_or(Vec::new(), |r| {
            r.into_iter().map(|(p, _)| p).collect::<Vec<_>>()
        }),
        Err(_) => Vec::new(),
    }
}

/// The samples of a WAV file (ours, or one written by the tests).
fn samples(path: &Path) -> Vec<i32> {
    hound::WavReader::open(path)
        .unwrap()
        .samples::<i32>()
        .map(Result::unwrap)
        .collect()
}

fn extracted(arch: &Path, rec: &str, dir: &Path) -> Vec<i32> {
    let out = dir.join(format!("{}.out.wav", rec.replace('/', "_")));
    let o = run(&[&"extract", &arch, &rec, &"-o", &out]);
    assert!(o.status.success(), "{}", stderr(&o));
    samples(&out)
}

#[test]
fn an_interrupted_import_resumes_and_changed_files_are_imported_again() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("site");
    std::fs::create_dir(&src).unwrap();
    let inputs: Vec<PathBuf> = (0..16)
        .map(|i| {
            let p = src.join(format!("r{i:02}.wav"));
            write_wav(&p, 48_000, 2, 16, false, 48_000 * (20 + i));
            p
        })
        .collect();
    let arch = dir.path().join("a.zarr");

    // Killed once a few recordings are in, half-way through the folder.
    let mut child = std::process::Command::new(common::bin())
        .arg("import")
        .arg(&arch)
        .arg(&src)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while recordings(&arch).len() < 3 && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    assert!(
        !child.wait().unwrap().success(),
        "the import finished before it could be interrupted"
    );
    let before = recordings(&arch).len();
    assert!((3..16).contains(&before), "{before} recordings");

    let o = run(&[&"import", &"--skip-existing", &arch, &src]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(count(&o, "unchanged"), before, "{}", stderr(&o));
    assert_eq!(count(&o, "imported"), 16 - before, "{}", stderr(&o));
    assert_eq!(recordings(&arch).len(), 16);
    let v = run(&[&"verify", &arch]);
    assert!(v.status.success(), "{}", stdout(&v));
    let staging = arch.join(".zarr-wavfs-staging");
    let left: Vec<_> = std::fs::read_dir(&staging)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter()
            .all(|n| !n.to_string_lossy().starts_with("rec-")),
        "staging leftovers: {left:?}"
    );
    for (i, input) in inputs.iter().enumerate() {
        assert_eq!(
            extracted(&arch, &format!("site/r{i:02}"), dir.path()),
            samples(input),
            "site/r{i:02}"
        );
    }

    // One input changed in place (same size, one sample), one rewritten longer.
    let same_size = &inputs[3];
    let mut bytes = std::fs::read(same_size).unwrap();
    let at = bytes.len() - 2;
    bytes[at] ^= 0x40;
    std::fs::write(same_size, &bytes).unwrap();
    write_wav(&inputs[9], 48_000, 2, 16, false, 48_000 * 40);
    let o = run(&[&"import", &"--skip-existing", &arch, &src]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(count(&o, "replaced"), 2, "{}", stderr(&o));
    assert_eq!(count(&o, "unchanged"), 14, "{}", stderr(&o));
    for i in [3, 9] {
        assert_eq!(
            extracted(&arch, &format!("site/r{i:02}"), dir.path()),
            samples(&inputs[i]),
            "site/r{i:02} after its change"
        );
    }
    let v = run(&[&"verify", &arch]);
    assert!(v.status.success(), "{}", stdout(&v));

    // Nothing changed: nothing is written.
    let manifest = arch.join(".zarr-wavfs-manifest.json");
    let written = std::fs::metadata(&manifest).unwrap().modified().unwrap();
    let o = run(&[&"import", &"--skip-existing", &arch, &src]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(count(&o, "unchanged"), 16, "{}", stderr(&o));
    assert_eq!(
        std::fs::metadata(&manifest).unwrap().modified().unwrap(),
        written
    );
}

#[test]
fn skip_existing_never_replaces_a_folder_and_excludes_force() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir(&site).unwrap();
    common::short_wav(&site, "a.wav");
    let arch = dir.path().join("a.zarr");
    assert!(run(&[&"import", &arch, &site]).status.success());
    // A file whose recording would take the folder's name.
    let file = common::short_wav(dir.path(), "site.wav");
    let o = run(&[&"import", &"--skip-existing", &arch, &file]);
    assert_clean_failure(&o, "that is a folder, not a recording");
    assert_eq!(recordings(&arch), vec!["site/a".to_string()]);
    let o = run(&[&"import", &"--skip-existing", &"--force", &arch, &file]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
}
