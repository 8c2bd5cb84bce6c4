//! Holes an adversarial run found (issue 19), each closed and kept closed here: inputs
//! and archive entries that are not regular files, links that loop, `--into` paths that
//! leave the archive or hide recordings, names too long to show.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{assert_clean_failure, run, run_bounded, stderr, stdout};

const LIMIT: Duration = Duration::from_secs(60);

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

fn wav(dir: &Path, name: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    common::write_wav(&p, 8_000, 1, 16, false, 8_000);
    p
}

#[test]
fn into_paths_that_leave_the_archive_or_hide_recordings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = wav(dir.path(), "rec.wav");
    let arch = dir.path().join("a").join("arch");
    for into in ["../../outside", "..", ".hidden", "__x", "a/./b", "a//b", "a/../b", "ok/.x"] {
        let o = run_bounded(&[&"import", &arch, &input, &"--into", &into], LIMIT);
        assert_clean_failure(&o, "cannot be a folder name");
    }
    // Nothing was written anywhere: not outside, not a half-made folder inside.
    assert!(!dir.path().join("outside").exists());
    assert!(!arch.join("a").exists());
    let o = run(&[&"import", &arch, &input, &"--into", &"site/2025"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[&"ls", &arch]);
    let listed = stdout(&o);
    assert!(listed.contains("  2025/\n    rec.wav"), "{listed}");
}

#[test]
fn fifos_devices_and_link_loops_do_not_hang_an_import() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch");
    let fifo = dir.path().join("pipe.wav");
    mkfifo(&fifo);
    let o = run_bounded(&[&"import", &arch, &fifo], LIMIT);
    assert_clean_failure(&o, "a FIFO: only regular files are imported");
    let o = run_bounded(&[&"import", &arch, &"/dev/zero"], LIMIT);
    assert_clean_failure(&o, "a device");

    // A FIFO named like audio inside an input folder.
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    wav(&tree, "a.wav");
    mkfifo(&tree.join("b.wav"));
    let o = run_bounded(&[&"import", &arch, &tree], LIMIT);
    assert_clean_failure(&o, "b.wav: a FIFO");

    // Links back to a folder being walked: each file is imported once.
    let looped = dir.path().join("looped");
    std::fs::create_dir_all(looped.join("sub")).unwrap();
    wav(&looped, "a.wav");
    wav(&looped.join("sub"), "b.wav");
    std::os::unix::fs::symlink(".", looped.join("self")).unwrap();
    std::os::unix::fs::symlink("..", looped.join("sub").join("up")).unwrap();
    let o = run_bounded(&[&"import", &arch, &looped], LIMIT);
    assert!(o.status.success(), "{}", stderr(&o));
    let listed = stdout(&run(&[&"ls", &arch]));
    let recordings = listed.lines().filter(|l| l.contains(".wav")).count();
    assert_eq!(recordings, 2, "{listed}");
}

#[test]
fn a_fifo_inside_an_archive_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch");
    for codec in ["flac", "pcm", "opus"] {
        let input = wav(dir.path(), &format!("{codec}.wav"));
        let o = run(&[&"import", &arch, &input, &"--codec", &codec]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    // Each recording's first chunk of audio becomes a FIFO.
    for (rec, key) in [
        ("flac", "stream/c/0"),
        ("pcm", "samples/c/0/0"),
        ("opus", "stream/c/0"),
    ] {
        let p = arch.join(rec).join(key);
        assert!(p.is_file(), "{}", p.display());
        std::fs::remove_file(&p).unwrap();
        mkfifo(&p);
        let out = dir.path().join(format!("{rec}.out.wav"));
        let o = run_bounded(&[&"extract", &arch, &rec, &"-o", &out], LIMIT);
        assert_clean_failure(&o, "not a regular file");
        let o = run_bounded(&[&"verify", &arch], LIMIT);
        assert!(!o.status.success(), "verify passed with a FIFO in {rec}");
    }
}

#[test]
fn names_too_long_to_show_are_refused_at_import() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch");
    // 100 '%' become 300 bytes shown ("%25" each).
    let input = wav(dir.path(), &format!("{}.wav", "%".repeat(100)));
    let o = run_bounded(&[&"import", &arch, &input], LIMIT);
    assert_clean_failure(&o, "longer than 255 bytes");
}
