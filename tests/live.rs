//! Live archives: recordings imported while an archive is mounted or served show
//! there without a remount, and a reader never sees a half-written recording.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::mount::{Mount, fuse_available};
use common::serve::Server;
use common::{run, stderr};

/// How soon a recording committed to a local archive shows (issue 18: 2 s).
const LOCAL_BOUND: Duration = Duration::from_secs(2);

fn import(arch: &Path, wav: &Path, extra: &[&str]) {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"import", &arch, &wav];
    for a in extra {
        args.push(a);
    }
    let o = run(&args);
    assert!(o.status.success(), "import failed: {}", stderr(&o));
}

fn extract(arch: &Path, rec: &str, dir: &Path) -> Vec<u8> {
    let out = dir.join("extracted.wav");
    let o = run(&[&"extract", &arch, &rec, &"-o", &out]);
    assert!(o.status.success(), "extract {rec}: {}", stderr(&o));
    std::fs::read(out).unwrap()
}

/// `n` short WAV inputs of different lengths, `in/rec000.wav`...
fn inputs(dir: &Path, n: usize) -> Vec<PathBuf> {
    let d = dir.join("in");
    std::fs::create_dir_all(&d).unwrap();
    (0..n)
        .map(|i| {
            let p = d.join(format!("rec{i:03}.wav"));
            common::write_wav(&p, 16_000, 1, 16, false, 4_000 + 97 * i as u64);
            p
        })
        .collect()
}

fn wait_for(what: &str, bound: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < bound,
            "{what} did not happen within {bound:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    t.elapsed()
}

#[test]
fn imports_while_mounted_show_within_two_seconds_and_never_half_written() {
    if !fuse_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch.zarr");
    let wavs = inputs(dir.path(), 50);
    import(&arch, &wavs[0], &["--into", "site1"]);
    let m = Mount::start(&arch, dir.path(), "mnt", &[]);
    let folder = m.path("site1");

    // A reader lists the folder over and over during the imports; every name it ever
    // sees must open and read whole, at the size `stat` gave.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, folder) = (stop.clone(), folder.clone());
        std::thread::spawn(move || {
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            while !stop.load(Ordering::Relaxed) {
                for e in std::fs::read_dir(&folder).unwrap() {
                    let e = e.unwrap();
                    let name = e.file_name().into_string().unwrap();
                    let len = e.metadata().unwrap().len();
                    let bytes = std::fs::read(e.path())
                        .unwrap_or_else(|err| panic!("{name} was listed but reads {err}"));
                    assert_eq!(bytes.len() as u64, len, "{name}: read and stat differ");
                    *seen.entry(name).or_default() += 1;
                }
            }
            seen
        })
    };

    let mut slowest = Duration::ZERO;
    for wav in &wavs[1..] {
        import(&arch, wav, &["--into", "site1"]);
        let name = wav.file_name().unwrap();
        let shown = folder.join(name);
        let took = wait_for(
            &format!("{} showing in the mount", shown.display()),
            LOCAL_BOUND,
            || {
                std::fs::read_dir(&folder)
                    .unwrap()
                    .any(|e| e.unwrap().file_name() == name)
            },
        );
        slowest = slowest.max(took);
    }
    stop.store(true, Ordering::Relaxed);
    let seen = reader.join().expect("the reader saw a broken recording");
    eprintln!(
        "slowest import to show: {slowest:?}; the reader saw {} names",
        seen.len()
    );
    assert!(seen.len() > 1, "the reader saw no import: {seen:?}");

    // Every recording reads as `extract` writes it.
    for (i, wav) in wavs.iter().enumerate().step_by(7) {
        let stem = wav.file_stem().unwrap().to_str().unwrap();
        let want = extract(&arch, &format!("site1/{stem}"), dir.path());
        let got = std::fs::read(folder.join(format!("{stem}.wav"))).unwrap();
        assert!(got == want, "recording {i} differs from extract");
    }
    let log = m.log();
    assert!(log.contains("the archive changed"), "{log}");
}

#[test]
fn a_new_folder_and_its_recordings_show_and_stat_refreshes() {
    if !fuse_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch.zarr");
    let wavs = inputs(dir.path(), 2);
    import(&arch, &wavs[0], &[]);
    let m = Mount::start(&arch, dir.path(), "mnt", &[]);
    // The kernel has the root's entries and attributes now.
    let before = std::fs::metadata(m.path("")).unwrap().nlink();
    assert!(!m.path("site2").exists());
    import(&arch, &wavs[1], &["--into", "site2/north"]);
    let file = m.path("site2/north/rec001.wav");
    wait_for("a recording in a new folder", LOCAL_BOUND, || file.exists());
    let want = extract(&arch, "site2/north/rec001", dir.path());
    assert_eq!(std::fs::read(&file).unwrap(), want);
    assert_eq!(
        std::fs::metadata(m.path("")).unwrap().nlink(),
        before + 1,
        "the root's link count counts the new folder"
    );
}

#[test]
fn refresh_zero_keeps_the_tree_as_mounted() {
    if !fuse_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch.zarr");
    let wavs = inputs(dir.path(), 2);
    import(&arch, &wavs[0], &[]);
    let m = Mount::start(&arch, dir.path(), "mnt", &["-o", "refresh=0"]);
    import(&arch, &wavs[1], &[]);
    std::thread::sleep(LOCAL_BOUND);
    assert!(m.path("rec000.wav").exists());
    assert!(!m.path("rec001.wav").exists(), "refresh=0 must not follow");
}

#[test]
fn serve_lists_recordings_imported_after_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch.zarr");
    let wavs = inputs(dir.path(), 2);
    import(&arch, &wavs[0], &["--into", "site1"]);
    let server = Server::start(&arch, &[]);
    let listed = |url: &str| -> String {
        ureq::get(url)
            .header("Accept", "application/json")
            .call()
            .map(|mut r| r.body_mut().read_to_string().unwrap())
            .unwrap_or_default()
    };
    assert!(!listed(&server.url("/site1/")).contains("rec001"));
    import(&arch, &wavs[1], &["--into", "site1"]);
    wait_for("the new recording in the listing", LOCAL_BOUND, || {
        listed(&server.url("/site1/")).contains("rec001.wav")
    });
    let want = extract(&arch, "site1/rec001", dir.path());
    let got = ureq::get(&server.url("/site1/rec001.wav"))
        .call()
        .unwrap()
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .unwrap();
    assert!(got == want, "served bytes differ from extract");
}
