//! Helpers shared by unit tests: a test recording, and the page cache's view of a file.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::archive::{Archive, RecordingStore};
use crate::import::{Codec, ImportOptions, Job, import_one};

/// Imports `secs` seconds of 48 kHz mono 16-bit audio (a rising sweep in noise) as
/// recording "r" of a new archive in `dir`, with checkpoints (Opus) every 2 s.
pub fn recording(dir: &Path, secs: u32, codec: Codec) -> (Archive, RecordingStore) {
    let wav = dir.join("in.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    let mut seed = 7u32;
    for i in 0..48_000 * secs {
        let t = f64::from(i) / 48_000.0;
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let noise = f64::from(seed >> 8) / f64::from(1u32 << 24) - 0.5;
        let tone = (2.0 * std::f64::consts::PI * (200.0 + 400.0 * t) * t).sin();
        w.write_sample((8000.0 * tone + 3000.0 * noise) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
    let archive = Archive::create_or_open(dir.join("a")).unwrap();
    let opts = ImportOptions {
        checkpoint_interval_secs: 2.0,
        codec: Some(codec),
        ..ImportOptions::default()
    };
    let job = Job {
        input: wav,
        target: "r".into(),
    };
    import_one(&archive, &job, &opts).unwrap();
    let store = archive.recording("r").unwrap();
    (archive, store)
}

/// Drops `file`'s pages from the page cache (written back first, so all are clean).
pub fn evict(file: &Path) {
    let f = std::fs::File::open(file).unwrap();
    f.sync_all().unwrap();
    // SAFETY: a valid descriptor; DONTNEED only drops clean cached pages.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise");
}

/// Which 4 KiB pages of `file` are in the page cache (and read).
pub fn resident_pages(file: &Path) -> Vec<bool> {
    let f = std::fs::File::open(file).unwrap();
    // SAFETY: the archive's chunk files are not modified while a test runs.
    let map = unsafe { memmap2::Mmap::map(&f) }.unwrap();
    let mut vec = vec![0u8; map.len().div_ceil(4096)];
    // SAFETY: `map` is a live mapping of `map.len()` bytes; `vec` has a byte per page.
    let rc = unsafe { libc::mincore(map.as_ptr() as *mut _, map.len(), vec.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore");
    vec.into_iter().map(|b| b & 1 == 1).collect()
}

/// Checks that `hint()` reads the pages holding `bytes` of `file` and not page `far`:
/// after evicting the file none of them is resident; after the hint (its reads waited
/// for, up to 10 s) all the wanted pages are, and page `far` still is not.
pub fn assert_hint_reads(file: &Path, bytes: std::ops::Range<u64>, far: u64, hint: impl FnOnce()) {
    let wanted = (bytes.start / 4096) as usize..bytes.end.div_ceil(4096) as usize;
    let far = (far / 4096) as usize;
    assert!(
        far > wanted.end + 1 || far + 1 < wanted.start,
        "{far} {wanted:?}"
    );
    evict(file);
    let before = resident_pages(file);
    assert!(!before[wanted.clone()].iter().any(|&r| r) && !before[far]);
    hint();
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let pages = resident_pages(file);
        if pages[wanted.clone()].iter().all(|&r| r) || Instant::now() > deadline {
            break pages;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(
        after[wanted.clone()].iter().all(|&r| r),
        "{wanted:?} not read"
    );
    assert!(!after[far], "page {far} was not asked for");
}
