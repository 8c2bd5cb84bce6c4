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

/// The names of what the staging area holds (replaced or removed recordings wait
/// there while open).
fn staged(arch: &Path) -> Vec<String> {
    std::fs::read_dir(arch.join(".zarr-wavfs-staging"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_type().unwrap().is_dir())
                .map(|e| e.file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// Opens `path`, reads its first `head` bytes, runs `change`, then reads the rest
/// through the same handle.
fn read_across(path: &Path, head: usize, change: impl FnOnce()) -> Vec<u8> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    let mut out = vec![0u8; head];
    f.read_exact(&mut out).unwrap();
    change();
    // Long enough for a refresh to have happened, so the reads below go to a tree
    // that no longer lists what this handle reads.
    std::thread::sleep(Duration::from_millis(500));
    f.read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("reading on after the change: {e}"));
    out
}

#[test]
fn a_handle_open_across_import_force_reads_the_old_bytes_and_new_opens_the_new() {
    if !fuse_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch.zarr");
    let old_wav = dir.path().join("take.wav");
    common::write_wav(&old_wav, 48_000, 1, 16, false, 48_000 * 8);
    import(&arch, &old_wav, &[]);
    let old = extract(&arch, "take", dir.path());
    let new_dir = dir.path().join("new");
    std::fs::create_dir_all(&new_dir).unwrap();
    let new_wav = new_dir.join("take.wav");
    common::write_wav(&new_wav, 48_000, 2, 16, false, 48_000 * 5);

    let m = Mount::start(&arch, dir.path(), "mnt", &["-o", "refresh=1"]);
    let file = m.path("take.wav");
    let got = read_across(&file, 4096, || import(&arch, &new_wav, &["--force"]));
    assert!(
        got == old,
        "a handle opened before the re-import read {} bytes that are not the old \
         recording's {}",
        got.len(),
        old.len()
    );
    let new = extract(&arch, "take", dir.path());
    assert_ne!(new.len(), old.len());
    wait_for("stat to show the new size", LOCAL_BOUND, || {
        std::fs::metadata(&file).unwrap().len() == new.len() as u64
    });
    assert!(
        std::fs::read(&file).unwrap() == new,
        "a new open reads the new recording"
    );
    // Closed, the old version goes from the staging area (the daemon lets go of it
    // at its next refresh, then removes it).
    wait_for(
        "the replaced recording to be removed",
        Duration::from_secs(10),
        || staged(&arch).is_empty(),
    );
}

#[test]
fn rm_of_an_open_recording_lets_the_handle_read_to_its_end() {
    if !fuse_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch.zarr");
    let wavs = inputs(dir.path(), 2);
    let long = dir.path().join("long.wav");
    common::write_wav(&long, 48_000, 1, 16, false, 48_000 * 8);
    for w in [&wavs[0], &wavs[1], &long] {
        import(&arch, w, &["--into", "site1"]);
    }
    let want = extract(&arch, "site1/long", dir.path());
    let m = Mount::start(&arch, dir.path(), "mnt", &["-o", "refresh=1"]);
    let file = m.path("site1/long.wav");
    let got = read_across(&file, 4096, || {
        let o = run(&[&"rm", &arch, &"site1/long.wav", &"site1/rec000"]);
        assert!(o.status.success(), "rm: {}", stderr(&o));
        let out = common::stdout(&o);
        assert!(
            out.contains("removed site1/long") && out.contains("removed site1/rec000"),
            "{out}"
        );
    });
    assert!(got == want, "the open handle read other bytes after rm");
    wait_for("the removed names to go", LOCAL_BOUND, || {
        !file.exists() && !m.path("site1/rec000.wav").exists()
    });
    assert!(m.path("site1/rec001.wav").exists());
    wait_for(
        "the removed recordings' data to go",
        Duration::from_secs(10),
        || staged(&arch).is_empty(),
    );
    // Gone from the archive and its manifest alike; removing again is an error.
    let o = run(&[&"ls", &arch]);
    assert!(
        !common::stdout(&o).contains("long"),
        "{}",
        common::stdout(&o)
    );
    let manifest = std::fs::read_to_string(arch.join(".zarr-wavfs-manifest.json")).unwrap();
    assert!(!manifest.contains("site1/long") && manifest.contains("site1/rec001"));
    let o = run(&[&"rm", &arch, &"site1/long"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("no such recording"), "{}", stderr(&o));
}

/// The recordings an archive's manifest lists.
fn manifest_recordings(arch: &Path) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(arch.join(".zarr-wavfs-manifest.json")).unwrap())
            .unwrap();
    let mut paths: Vec<String> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n.get("recording").is_some())
        .map(|n| n["path"].as_str().unwrap().to_string())
        .collect();
    paths.sort();
    paths
}

#[test]
fn concurrent_imports_and_rm_lose_no_recording_and_no_manifest_update() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch.zarr");
    let wavs = inputs(dir.path(), 30);
    // Ten to remove while two other processes import ten each.
    for w in &wavs[..10] {
        import(&arch, w, &["--into", "old"]);
    }
    let spawn = |args: Vec<std::ffi::OsString>| {
        std::process::Command::new(common::bin())
            .args(args)
            .output()
            .unwrap()
    };
    let batch = |from: usize, into: &str| -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = vec!["import".into(), arch.clone().into()];
        a.extend(wavs[from..from + 10].iter().map(|w| w.clone().into()));
        a.extend(["--into".into(), into.into()]);
        a
    };
    let (a, b, r) = std::thread::scope(|s| {
        let a = s.spawn(|| spawn(batch(10, "team_a")));
        let b = s.spawn(|| spawn(batch(20, "team_b")));
        let r = s.spawn(|| {
            let mut args: Vec<std::ffi::OsString> = vec!["rm".into(), arch.clone().into()];
            args.extend((0..10).map(|i| format!("old/rec{i:03}").into()));
            spawn(args)
        });
        (a.join().unwrap(), b.join().unwrap(), r.join().unwrap())
    });
    for (what, o) in [("import a", &a), ("import b", &b), ("rm", &r)] {
        assert!(o.status.success(), "{what}: {}", stderr(o));
    }
    let mut want: Vec<String> = (10..30)
        .map(|i| format!("team_{}/rec{i:03}", if i < 20 { "a" } else { "b" }))
        .collect();
    want.sort();
    assert_eq!(
        manifest_recordings(&arch),
        want,
        "the manifest lost an update"
    );
    let o = run(&[&"ls", &arch]);
    let listed = common::stdout(&o);
    for i in 0..30 {
        let name = format!("rec{i:03}.wav");
        assert_eq!(listed.contains(&name), i >= 10, "{name} in ls: {listed}");
    }
    let o = run(&[&"verify", &arch]);
    assert!(o.status.success(), "{}", common::stdout(&o));
}

#[test]
fn two_imports_of_one_name_at_once_one_wins_the_other_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch.zarr");
    let wavs = inputs(dir.path(), 1);
    import(
        &arch,
        &inputs(&dir.path().join("seed"), 1)[0],
        &["--into", "seed"],
    );
    let outs: Vec<std::process::Output> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    std::process::Command::new(common::bin())
                        .args(["import".as_ref(), arch.as_os_str(), wavs[0].as_os_str()])
                        .output()
                        .unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(ok, 1, "{:?}", outs.iter().map(stderr).collect::<Vec<_>>());
    let loser = outs.iter().find(|o| !o.status.success()).unwrap();
    assert!(stderr(loser).contains("exists"), "{}", stderr(loser));
    assert_eq!(manifest_recordings(&arch), ["rec000", "seed/rec000"]);
    let o = run(&[&"verify", &arch]);
    assert!(o.status.success(), "{}", common::stdout(&o));
}

#[test]
fn ls_since_lists_what_was_committed_after_a_time_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch.zarr");
    let wavs = inputs(dir.path(), 3);
    import(&arch, &wavs[0], &["--into", "site1"]);
    // Commit times have the file system's resolution: keep the steps apart.
    std::thread::sleep(Duration::from_millis(50));
    let mark = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    std::thread::sleep(Duration::from_millis(50));
    import(&arch, &wavs[2], &["--into", "site2"]);
    import(&arch, &wavs[1], &["--into", "site1"]);
    let o = run(&[&"ls", &arch, &"--since", &format!("{mark:.3}")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(common::stdout(&o), "site2/rec002\nsite1/rec001\n");
    let o = run(&[&"ls", &arch, &"--since", &"2000-01-01T00:00:00Z"]);
    assert_eq!(common::stdout(&o).lines().count(), 3);
    let o = run(&[&"ls", &arch, &"--since", &"yesterday"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("expected a UTC time"), "{}", stderr(&o));
}

/// The binary with `moto`'s settings (and none of this process's `AWS_*`).
fn zw_s3(
    moto: &common::servers::Moto,
    args: &[&dyn AsRef<std::ffi::OsStr>],
) -> std::process::Command {
    let mut c = std::process::Command::new(common::bin());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.envs(moto.env()).env("RUST_LOG", "warn");
    for a in args {
        c.arg(a);
    }
    c
}

#[test]
fn s3_writers_at_once_lose_no_manifest_update_and_one_name_has_one_winner() {
    let Some(moto) = common::servers::Moto::start() else {
        return;
    };
    moto.create_bucket("lab");
    let dir = tempfile::tempdir().unwrap();
    let wavs = inputs(dir.path(), 24);
    let arch = "s3://lab/live.zarr";
    let o = zw_s3(
        &moto,
        &[
            &"import", &arch, &wavs[0], &wavs[1], &wavs[2], &wavs[3], &"--into", &"old",
        ],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    // Three writers at once: two imports of ten each and an rm of two.
    let batch = |from: usize, into: &str| {
        let mut args: Vec<std::ffi::OsString> = vec!["import".into(), arch.into()];
        args.extend(wavs[from..from + 10].iter().map(|w| w.clone().into()));
        args.extend(["--into".into(), into.into()]);
        args
    };
    let run_args = |args: Vec<std::ffi::OsString>| {
        let refs: Vec<&dyn AsRef<std::ffi::OsStr>> = args
            .iter()
            .map(|a| a as &dyn AsRef<std::ffi::OsStr>)
            .collect();
        zw_s3(&moto, &refs).output().unwrap()
    };
    let outs = std::thread::scope(|s| {
        let a = s.spawn(|| run_args(batch(4, "team_a")));
        let b = s.spawn(|| run_args(batch(14, "team_b")));
        let r = s.spawn(|| {
            run_args(vec![
                "rm".into(),
                arch.into(),
                "old/rec000".into(),
                "old/rec001".into(),
            ])
        });
        [a.join().unwrap(), b.join().unwrap(), r.join().unwrap()]
    });
    for o in &outs {
        assert!(o.status.success(), "{}", stderr(o));
    }
    // The manifest lists exactly what the store holds (a lost update would leave it out
    // of date, and readers would walk instead), and `ls` shows it.
    let o = zw_s3(&moto, &[&"-v", &"ls", &arch]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("out of date") && !stderr(&o).contains("no manifest"),
        "the manifest lost an update: {}",
        stderr(&o)
    );
    let listed = common::stdout(&o);
    for i in 0..24 {
        let name = format!("rec{i:03}.wav");
        assert_eq!(listed.contains(&name), i >= 2, "{name} in ls: {listed}");
    }

    // Two imports of one new name at once: one commits, the other says why not.
    let same = dir.path().join("same");
    std::fs::create_dir_all(&same).unwrap();
    let one = same.join("rec100.wav");
    common::write_wav(&one, 16_000, 1, 16, false, 16_000 * 3);
    let outs = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| s.spawn(|| zw_s3(&moto, &[&"import", &arch, &one]).output().unwrap()))
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    let ok = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(ok, 1, "{:?}", outs.iter().map(stderr).collect::<Vec<_>>());
    let loser = stderr(outs.iter().find(|o| !o.status.success()).unwrap());
    assert!(
        loser.contains("already exists") || loser.contains("another import is writing it"),
        "{loser}"
    );
    let o = zw_s3(&moto, &[&"verify", &arch]).output().unwrap();
    assert!(o.status.success(), "{}", common::stdout(&o));
}

#[test]
fn serve_of_an_s3_archive_follows_it_every_refresh() {
    let Some(moto) = common::servers::Moto::start() else {
        return;
    };
    moto.create_bucket("lab");
    let dir = tempfile::tempdir().unwrap();
    let wavs = inputs(dir.path(), 2);
    let arch = "s3://lab/follow.zarr";
    let o = zw_s3(&moto, &[&"import", &arch, &wavs[0]])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let env: Vec<(&str, String)> = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::start_with(std::ffi::OsStr::new(arch), &["--refresh", "1"], &env);
    let listing = || -> String {
        ureq::get(&server.url("/"))
            .header("Accept", "application/json")
            .call()
            .map(|mut r| r.body_mut().read_to_string().unwrap())
            .unwrap_or_default()
    };
    assert!(listing().contains("rec000.wav") && !listing().contains("rec001"));
    let o = zw_s3(&moto, &[&"import", &arch, &wavs[1]])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    wait_for(
        "the new recording in the listing",
        Duration::from_secs(5),
        || listing().contains("rec001.wav"),
    );
    let o = zw_s3(&moto, &[&"rm", &arch, &"rec000"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    wait_for(
        "the removed recording to go",
        Duration::from_secs(5),
        || !listing().contains("rec000.wav"),
    );
}

/// Where the concurrency checks run: a local directory, or a bucket of moto's S3.
enum Place<'a> {
    Local(PathBuf),
    S3(&'a common::servers::Moto, String),
}

impl Place<'_> {
    fn archive(&self) -> std::ffi::OsString {
        match self {
            Place::Local(p) => p.clone().into(),
            Place::S3(_, url) => url.into(),
        }
    }

    fn command(&self, args: &[std::ffi::OsString]) -> std::process::Command {
        let refs: Vec<&dyn AsRef<std::ffi::OsStr>> = args
            .iter()
            .map(|a| a as &dyn AsRef<std::ffi::OsStr>)
            .collect();
        match self {
            Place::Local(_) => {
                let mut c = std::process::Command::new(common::bin());
                c.args(args);
                c
            }
            Place::S3(moto, _) => zw_s3(moto, &refs),
        }
    }

    /// `-v COMMAND ARCHIVE ARGS...` (the log says whether the manifest was used).
    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut a: Vec<std::ffi::OsString> = vec!["-v".into(), args[0].into(), self.archive()];
        a.extend(args[1..].iter().map(|s| s.into()));
        self.command(&a).output().unwrap()
    }
}

/// Four importers of `per` recordings each at once, two of which also import the same
/// `shared` names; then again with one importer killed half-way. Every recording committed
/// is there and whole, each same-name race has one winner and a loser that says why,
/// and a later import cleans up after the killed one.
fn four_importers_at_once(place: &Place, dir: &Path, per: usize, shared: usize) {
    let wavs = inputs(dir, per);
    let batch = |team: &str| -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = vec!["import".into(), place.archive()];
        a.extend(wavs.iter().map(|w| w.clone().into()));
        a.extend(["--into".into(), team.into()]);
        a
    };
    let shared_batch = || -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = vec!["import".into(), place.archive()];
        a.extend(wavs[..shared].iter().map(|w| w.clone().into()));
        a.extend(["--into".into(), "shared".into()]);
        a
    };
    let outs = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let team = format!("team{i}");
                let args = batch(&team);
                s.spawn(move || {
                    let own = place.command(&args).output().unwrap();
                    // Importers 2 and 3 race for the same names too.
                    let shared = (i >= 2).then(|| place.command(&shared_batch()).output().unwrap());
                    (own, shared)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    for (own, _) in &outs {
        assert!(own.status.success(), "{}", stderr(own));
    }
    // Each shared name went to exactly one of the two; the other said why not.
    let lost: usize = outs
        .iter()
        .filter_map(|(_, s)| s.as_ref())
        .map(|o| {
            let e = stderr(o);
            e.lines()
                .filter(|l| {
                    l.contains("already exists") || l.contains("another import is writing it")
                })
                .count()
        })
        .sum();
    assert_eq!(lost, shared, "each shared name has one loser");
    for o in outs.iter().filter_map(|(_, s)| s.as_ref()) {
        let lost_some =
            stderr(o).contains("already exists") || stderr(o).contains("another import");
        assert_eq!(
            !o.status.success(),
            lost_some,
            "a loser exits non-zero: {}",
            stderr(o)
        );
    }
    let o = place.run(&["ls"]);
    let listed = common::stdout(&o);
    assert!(
        !stderr(&o).contains("out of date"),
        "the manifest lost an update: {}",
        stderr(&o)
    );
    let count = listed.lines().filter(|l| l.contains(".wav")).count();
    assert_eq!(count, 4 * per + shared, "{listed}");
    let o = place.run(&["verify"]);
    assert!(o.status.success(), "{}", common::stdout(&o));

    // Again, into new folders, with one importer killed half-way.
    let mut children: Vec<std::process::Child> = (0..4)
        .map(|i| {
            place
                .command(&batch(&format!("again{i}")))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    children[0].kill().unwrap();
    for c in &mut children {
        c.wait().unwrap();
    }
    let o = place.run(&["ls"]);
    let listed = common::stdout(&o);
    for i in 1..4 {
        let folder = listed
            .split(&format!("again{i}/\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("again{i} missing: {listed}"));
        let n = folder.lines().take_while(|l| l.starts_with("  ")).count();
        assert_eq!(n, per, "again{i}: {listed}");
    }
    let o = place.run(&["verify"]);
    assert!(o.status.success(), "after a kill: {}", common::stdout(&o));
    // A later import removes what the killed one left. A server may still carry out
    // a write the killed client had sent (an object store then shows an object after
    // the client is gone), so the later import comes a moment later.
    std::thread::sleep(Duration::from_secs(1));
    let o = place.run(&["import", wavs[0].to_str().unwrap(), "--into", "later"]);
    assert!(o.status.success(), "{}", stderr(&o));
    if let Place::Local(arch) = place {
        assert_eq!(
            staged(arch),
            Vec::<String>::new(),
            "leftovers after a later import"
        );
    }
    let o = place.run(&["verify"]);
    assert!(
        !common::stdout(&o).contains("leftover"),
        "{}",
        common::stdout(&o)
    );
}

#[test]
fn four_importers_at_once_locally() {
    let dir = tempfile::tempdir().unwrap();
    four_importers_at_once(
        &Place::Local(dir.path().join("arch.zarr")),
        dir.path(),
        25,
        10,
    );
}

#[test]
fn four_importers_at_once_on_s3() {
    let Some(moto) = common::servers::Moto::start() else {
        return;
    };
    moto.create_bucket("lab");
    let dir = tempfile::tempdir().unwrap();
    // moto answers slowly (about 50 ms a request, and a commit takes dozens): fewer.
    let place = Place::S3(&moto, "s3://lab/four.zarr".into());
    four_importers_at_once(&place, dir.path(), 6, 3);
}
