//! The archive read through a store that fails (tests/common/faulty.rs): errors,
//! vanished keys, short and corrupted bodies, objects of an older archive, answers
//! later than the timeout. Properties, over many seeded schedules, through the file
//! system core and through a real FUSE mount: every read returns exactly the bytes of
//! the archive (or, for a file opened while the store served the older archive, of
//! that one, whole) or an error, never other bytes, never a panic, never later than a
//! bound; once the faults stop every read is exact again.
//!
//! `FAULT_CASES=N` runs more schedules than the default (scripts/faults.sh).

mod common;

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::faulty::{ALL_FAULTS, Fault, Faulty, Schedule, load_dir};
use object_store::memory::InMemory;
use proptest::prelude::*;
use zarr_wavfs::archive::Archive;
use zarr_wavfs::fs::{FileSystem, FsOptions, OpenFile, Tree};
use zarr_wavfs::store::{Store, StoreOptions};

/// The recordings as served, in both archives.
const FILES: [&str; 3] = ["am.wav", "site/music.wav", "sweep.wav"];

/// The store's timeout in these tests, and how long a `Delay` fault holds an answer.
const TIMEOUT: Duration = Duration::from_millis(800);
const DELAY: Duration = Duration::from_millis(1200);
/// No read may take longer (a few timeouts: one read may meet more than one).
const READ_BOUND: Duration = Duration::from_secs(15);

struct Fixture {
    _dir: tempfile::TempDir,
    current: Arc<InMemory>,
    older: Arc<InMemory>,
    /// Each file's bytes in the current archive and in the older one.
    oracle: HashMap<&'static str, [Vec<u8>; 2]>,
}

fn zw(args: &[&dyn AsRef<std::ffi::OsStr>]) {
    let o = common::run(args);
    assert!(o.status.success(), "{}", common::stderr(&o));
}

fn sox(args: &[&dyn AsRef<std::ffi::OsStr>]) {
    let o = std::process::Command::new("sox")
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// An archive of a FLAC, a PCM (in a folder) and an Opus recording, from inputs in
/// `inputs`.
fn make_archive(arch: &Path, inputs: &Path, opus_input: &Path) {
    zw(&[&"import", &arch, &inputs.join("am.wav")]);
    zw(&[
        &"import",
        &arch,
        &inputs.join("music.wav"),
        &"--into",
        &"site",
        &"--codec",
        &"pcm",
    ]);
    zw(&[&"import", &arch, &opus_input, &"--codec", &"opus"]);
}

fn open_fs(store: Store) -> Result<FileSystem, String> {
    open_fs_with_cache(store, 8 << 20)
}

fn open_fs_with_cache(store: Store, cache_bytes: usize) -> Result<FileSystem, String> {
    let archive = Archive::open_store(store).map_err(|e| e.to_string())?;
    let tree = Tree::build(&archive, None, None).map_err(|e| e.to_string())?;
    let options = FsOptions {
        format: None,
        time_expansion: None,
        cache_bytes,
        refresh: Duration::ZERO,
    };
    Ok(FileSystem::new(archive, tree, options))
}

fn open(fs: &FileSystem, path: &str) -> Result<OpenFile, String> {
    let ino = fs.resolve(path.split('/')).map_err(|e| e.to_string())?;
    fs.open(ino).map_err(|e| e.to_string())
}

fn read(fs: &FileSystem, f: &OpenFile, offset: u64, len: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    fs.read(f, offset, len, &mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let td = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        let (new_in, old_in) = (dir.path().join("new"), dir.path().join("old"));
        std::fs::create_dir_all(&new_in).unwrap();
        std::fs::create_dir_all(old_in.join("sweep")).unwrap();
        std::fs::copy(td.join("20250601_040000.wav"), new_in.join("am.wav")).unwrap();
        std::fs::copy(td.join("stereo_music.wav"), new_in.join("music.wav")).unwrap();
        // The older archive: other audio, other lengths, the same names.
        let am = td.join("20250601_040000.wav");
        sox(&[
            &am,
            &old_in.join("am.wav"),
            &"trim",
            &"0",
            &"4",
            &"vol",
            &"0.5",
        ]);
        let music = td.join("stereo_music.wav");
        sox(&[
            &music,
            &old_in.join("music.wav"),
            &"trim",
            &"0",
            &"3",
            &"vol",
            &"-0.7",
        ]);
        let old_sweep = old_in.join("sweep").join("sweep.wav");
        sox(&[&music, &old_sweep, &"trim", &"1", &"2"]);

        let (new_arch, old_arch) = (dir.path().join("new.zarr"), dir.path().join("old.zarr"));
        make_archive(&new_arch, &new_in, &td.join("sweep.opus"));
        make_archive(&old_arch, &old_in, &old_sweep);

        let mut oracle = HashMap::new();
        let fss = [&new_arch, &old_arch].map(|a| {
            open_fs(
                Store::open(
                    &zarr_wavfs::store::Address::Local(a.clone()),
                    &StoreOptions::default(),
                )
                .unwrap(),
            )
            .unwrap()
        });
        for path in FILES {
            let bytes = fss.each_ref().map(|fs| {
                let f = open(fs, path).unwrap();
                read(fs, &f, 0, f.len()).unwrap()
            });
            assert_ne!(bytes[0].len(), bytes[1].len(), "{path}");
            oracle.insert(path, bytes);
        }
        Fixture {
            current: load_dir(&new_arch),
            older: load_dir(&old_arch),
            oracle,
            _dir: dir,
        }
    })
}

fn faulty_store(schedule: Schedule) -> (Arc<Faulty>, Store) {
    let f = fixture();
    let faulty = Arc::new(Faulty::new(f.current.clone(), f.older.clone(), schedule));
    let options = StoreOptions {
        timeout: TIMEOUT,
        ..StoreOptions::default()
    };
    let store = Store::from_object_store(faulty.clone(), "mem://archive", &options);
    (faulty, store)
}

/// Checks `got`, read at `offset` of `path` opened `file_len` bytes long: the same
/// bytes as that version of the file has there.
fn check(path: &str, file_len: u64, offset: u64, len: u64, got: &[u8]) -> Result<(), String> {
    let versions = &fixture().oracle[path];
    let Some(v) = versions.iter().position(|b| b.len() as u64 == file_len) else {
        return Err(format!(
            "{path} opened {file_len} bytes long, no archive's length"
        ));
    };
    let whole = &versions[v];
    let end = (offset + len).min(whole.len() as u64);
    let want = &whole[offset.min(end) as usize..end as usize];
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b);
        return Err(format!(
            "{path} ({}) at {offset}+{len}: {} bytes, expected {}; first difference at {at:?}",
            ["current", "older"][v],
            got.len(),
            want.len()
        ));
    }
    Ok(())
}

/// Totals over the cases run, printed after each case (the last line is the run's):
/// schedules, reads, exact reads, failed reads and opens, faults injected.
static TOTALS: [std::sync::atomic::AtomicU64; 5] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 5];

fn count(totals: [u64; 5]) {
    use std::sync::atomic::Ordering::Relaxed;
    let t: Vec<u64> = TOTALS
        .iter()
        .zip(totals)
        .map(|(a, n)| a.fetch_add(n, Relaxed) + n)
        .collect();
    eprintln!(
        "fault totals: {} schedules, {} reads, {} exact, {} errors, {} faults injected",
        t[0], t[1], t[2], t[3], t[4]
    );
}

fn cases() -> u32 {
    std::env::var("FAULT_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_read_is_exact_or_an_error(
        seed in any::<u64>(),
        per_mille in 1u32..400,
        kinds in proptest::sample::subsequence(ALL_FAULTS.to_vec(), 1..=ALL_FAULTS.len()),
        reads in proptest::collection::vec((0..FILES.len(), 0.0f64..1.0, 1u64..400_000), 16),
    ) {
        let schedule = Schedule { seed, per_mille, kinds, delay: DELAY, max_delays: 2 };
        let (faulty, store) = faulty_store(schedule);
        let (mut exact, mut errors) = (0u64, 0u64);
        let fs = open_fs(store.clone());
        if let Ok(fs) = &fs {
            let mut handles: HashMap<&str, OpenFile> = HashMap::new();
            for &(file, at, len) in &reads {
                let path = FILES[file];
                let t = Instant::now();
                if !handles.contains_key(path) {
                    match open(fs, path) {
                        Ok(f) => { handles.insert(path, f); }
                        Err(_) => { errors += 1; continue; }
                    }
                }
                let f = &handles[path];
                let offset = (at * f.len() as f64) as u64;
                match read(fs, f, offset, len) {
                    Ok(got) => {
                        if let Err(e) = check(path, f.len(), offset, len, &got) {
                            prop_assert!(false, "{e} (faults {:?})", faulty.injected());
                        }
                        exact += 1;
                    }
                    Err(_) => errors += 1,
                }
                prop_assert!(t.elapsed() < READ_BOUND, "a read took {:?}", t.elapsed());
            }
        }
        // The faults stop: a refresh (a mount's periodic one) and every read is exact.
        let injected = faulty.injected().values().sum();
        faulty.set_faults(false);
        let fs = match fs {
            Ok(fs) => {
                fs.refresh().map_err(|e| TestCaseError::fail(e.to_string()))?;
                fs
            }
            Err(_) => open_fs(store).map_err(TestCaseError::fail)?,
        };
        for path in FILES {
            let f = open(&fs, path).map_err(TestCaseError::fail)?;
            let got = read(&fs, &f, 0, f.len()).map_err(TestCaseError::fail)?;
            prop_assert_eq!(f.len() as usize, fixture().oracle[path][0].len(), "{} after the faults", path);
            check(path, f.len(), 0, f.len(), &got).map_err(TestCaseError::fail)?;
        }
        count([1, exact + errors + 3, exact + 3, errors, injected]);
    }
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb << 10
}

#[test]
fn a_mount_over_a_failing_store_gives_exact_bytes_or_eio() {
    if !common::mount::fuse_available() {
        eprintln!("skipped: no FUSE");
        return;
    }
    let f = fixture();
    let schedule = Schedule {
        seed: 7,
        per_mille: 250,
        kinds: vec![
            Fault::Error,
            Fault::Vanished,
            Fault::Short,
            Fault::Corrupt,
            Fault::Stale,
        ],
        delay: DELAY,
        max_delays: 0,
    };
    let (faulty, store) = faulty_store(schedule);
    faulty.set_faults(false);
    // A small span cache, so that reads keep going to the store.
    let fs = Arc::new(open_fs_with_cache(store, 1 << 20).unwrap());
    faulty.set_faults(true);
    let mnt = tempfile::tempdir().unwrap();
    let wav_fs = zarr_wavfs::fuse::WavFs::new(
        fs.clone(),
        zarr_wavfs::fuse::FuseOptions {
            threads: 4,
            uid: unsafe { libc::geteuid() },
            gid: unsafe { libc::getegid() },
        },
    )
    .unwrap();
    let config = {
        let mut c = fuser::Config::default();
        c.mount_options = vec![
            fuser::MountOption::RO,
            fuser::MountOption::FSName("faulty".into()),
        ];
        c.n_threads = Some(2);
        c
    };
    let session = fuser::spawn_mount(wav_fs, mnt.path(), &config).unwrap();
    let root = mnt.path().to_path_buf();

    let (mut exact, mut eio) = (0u64, 0u64);
    let rss_start = rss();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let root = root.clone();
            std::thread::spawn(move || {
                let mut rng = common::Lcg(t + 1);
                let (mut exact, mut eio) = (0u64, 0u64);
                for _ in 0..150 {
                    let path = FILES[rng.below(FILES.len() as u64) as usize];
                    let file = match std::fs::File::open(root.join(path)) {
                        Ok(file) => file,
                        Err(e) => {
                            assert_eq!(e.raw_os_error(), Some(libc::EIO), "open {path}: {e}");
                            eio += 1;
                            continue;
                        }
                    };
                    let len = file.metadata().unwrap().len();
                    let offset = rng.below(len);
                    let mut buf = vec![0; 1 + rng.below(300_000) as usize];
                    // Past the kernel's page cache, to the daemon.
                    unsafe {
                        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED)
                    };
                    let t = Instant::now();
                    match file.read_at(&mut buf, offset) {
                        Ok(n) => {
                            check(path, len, offset, n as u64, &buf[..n]).unwrap();
                            exact += 1;
                        }
                        Err(e) => {
                            assert_eq!(e.raw_os_error(), Some(libc::EIO), "{path}: {e}");
                            eio += 1;
                        }
                    }
                    assert!(t.elapsed() < READ_BOUND, "a read took {:?}", t.elapsed());
                }
                (exact, eio)
            })
        })
        .collect();
    for t in threads {
        let (x, e) = t.join().unwrap();
        exact += x;
        eio += e;
    }
    let grown = rss().saturating_sub(rss_start);
    eprintln!(
        "{exact} exact reads, {eio} EIO; faults {:?}; RSS +{} MiB",
        faulty.injected(),
        grown >> 20
    );
    assert!(eio > 0 && exact > 0, "the schedule should give both");
    assert!(grown < 256 << 20, "memory grew by {} MiB", grown >> 20);

    faulty.set_faults(false);
    fs.refresh().unwrap();
    for path in FILES {
        let got = std::fs::read(root.join(path)).unwrap();
        assert!(got == f.oracle[path][0], "{path} after the faults");
    }
    session.umount_and_join().unwrap();
}
