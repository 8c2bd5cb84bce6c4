//! Holes an adversarial run found in the commands around the data (issue 19): recordings
//! that vanish without a word, names that forge `ls` lines, leftovers of a killed
//! `index`, a second daemon stacked on a live mount, and a SIGTERM that unmounted
//! whatever was at the mount point's old path.

mod common;

use std::path::Path;
use std::time::Duration;

use common::mount::{Mount, fuse_available, is_mounted, wait_until};
use common::{assert_clean_failure, run_bounded, stderr, stdout};

const LIMIT: Duration = Duration::from_secs(60);

fn import(arch: &Path, input: &Path, extra: &[&str]) {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"import", &arch, &input];
    for e in extra {
        args.push(e);
    }
    let o = run_bounded(&args, LIMIT);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Replaces `from` by `to` in the file at `p` (which must contain it).
fn replace_in(p: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(p).unwrap();
    assert!(
        text.contains(from),
        "{}: no {from:?} in {text}",
        p.display()
    );
    std::fs::write(p, text.replacen(from, to, 1)).unwrap();
}

/// `verify`'s stdout and stderr together, and whether it passed.
fn verify(arch: &Path) -> (bool, String) {
    let o = run_bounded(&[&"verify", &arch], LIMIT);
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!all.contains("panicked"), "{all}");
    (o.status.success(), all)
}

/// A damaged or deleted recording `zarr.json`, a deleted recording or folder: each
/// once took the recording out of `ls` and `verify` ("0 errors") without a word.
#[test]
fn recordings_the_manifest_lists_do_not_vanish_silently() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    let input = common::short_wav(dir.path(), "in.wav");
    for (name, into) in [("a", ""), ("b", ""), ("c", ""), ("d", "site/2025")] {
        let renamed = dir.path().join(format!("{name}.wav"));
        std::fs::copy(&input, &renamed).unwrap();
        let mut extra = vec!["--codec", "pcm"];
        if !into.is_empty() {
            extra.extend(["--into", into]);
        }
        import(&base, &renamed, &extra);
    }
    let (ok, all) = verify(&base);
    assert!(ok, "{all}");
    assert!(!all.contains("could not check"), "{all}");

    type Damage = fn(&Path);
    let cases: [(&str, Damage, &str, &str); 7] = [
        (
            "one bit of kind",
            |a| replace_in(&a.join("b/zarr.json"), "\"recording\"", "\"recordhng\""),
            "b",
            "recordhng",
        ),
        (
            "zarr.json deleted",
            |a| std::fs::remove_file(a.join("c/zarr.json")).unwrap(),
            "c",
            "zarr.json is missing",
        ),
        (
            "recording deleted",
            |a| std::fs::remove_dir_all(a.join("a")).unwrap(),
            "a",
            "nothing is stored",
        ),
        (
            "folder deleted",
            |a| std::fs::remove_dir_all(a.join("site")).unwrap(),
            "site/2025/d",
            "nothing is stored",
        ),
        (
            "folder zarr.json damaged",
            |a| {
                std::fs::write(a.join("site/2025/zarr.json"), b"{\"zarr_format\": 3, \"no").unwrap()
            },
            "site/2025/d",
            "a folder on its path cannot be read",
        ),
        (
            "attributes removed",
            |a| {
                let p = a.join("c/zarr.json");
                let mut v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                v.as_object_mut().unwrap().remove("attributes");
                std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
            },
            "c",
            "has no zarr_wavfs.kind",
        ),
        (
            "node_type changed",
            |a| replace_in(&a.join("b/zarr.json"), "\"group\"", "\"array\""),
            "b",
            "not a Zarr v3 group",
        ),
    ];
    for (i, (what, damage, rec, needle)) in cases.into_iter().enumerate() {
        let arch = dir.path().join(format!("case{i}"));
        common::copy_dir(&base, &arch);
        damage(&arch);
        let (ok, all) = verify(&arch);
        assert!(!ok, "{what}: verify passed: {all}");
        let line = all
            .lines()
            .find(|l| l.starts_with(&format!("ERROR: {rec}: ")))
            .unwrap_or_else(|| panic!("{what}: no ERROR line for {rec}: {all}"));
        assert!(line.contains(needle), "{what}: {line}");
        let o = run_bounded(&[&"ls", &arch], LIMIT);
        assert_eq!(o.status.code(), Some(1), "{what}: ls: {}", stdout(&o));
        assert!(
            stderr(&o).contains(rec) && stderr(&o).contains("manifest"),
            "{what}: ls says nothing on stderr: {}",
            stderr(&o)
        );
        // The others are still listed.
        for other in ["a", "b", "c"] {
            if other != rec && !(what == "recording deleted" && other == "a") {
                assert!(
                    stdout(&o).contains(&format!("{other}.wav")),
                    "{}",
                    stdout(&o)
                );
            }
        }
        // A mount lists it, and opening it fails (EIO) instead of the file vanishing.
        if fuse_available() {
            let m = Mount::start(&arch, dir.path(), &format!("mnt{i}"), &[]);
            let file = m.path(&format!("{rec}.wav"));
            assert!(file.exists(), "{what}: {} not in the mount", file.display());
            let e = std::fs::read(&file).expect_err("a missing recording reads");
            assert_eq!(e.raw_os_error(), Some(libc::EIO), "{what}: {e}");
            assert!(m.log().contains(needle), "{what}: {}", m.log());
            for other in ["a", "b", "c"] {
                if other != rec && !(what == "recording deleted" && other == "a") {
                    assert!(std::fs::read(m.path(&format!("{other}.wav"))).is_ok());
                }
            }
        }

        // Another import rewrites the manifest from a walk (it no longer matches the
        // folders): the lost recording stays listed and reported.
        let extra = dir.path().join(format!("extra{i}.wav"));
        std::fs::copy(&input, &extra).unwrap();
        import(&arch, &extra, &["--codec", "pcm"]);
        let (ok, all) = verify(&arch);
        assert!(!ok, "{what}: verify passed after another import: {all}");
        assert!(
            all.lines()
                .any(|l| l.starts_with(&format!("ERROR: {rec}: ")) && l.contains(needle)),
            "{what}: after another import: {all}"
        );

        // `zarr-wavfs manifest` records what is there now: the loss is accepted.
        let o = run_bounded(&[&"manifest", &arch], LIMIT);
        assert!(o.status.success(), "{}", stderr(&o));
        let (ok, all) = verify(&arch);
        if what == "folder zarr.json damaged" {
            // The folder's own damage stays an error.
            assert!(!ok && all.contains("ERROR: site/2025: "), "{what}: {all}");
            continue;
        }
        assert!(ok, "{what}: after `manifest`: {all}");
        let o = run_bounded(&[&"ls", &arch], LIMIT);
        assert!(o.status.success(), "{what}: {}", stderr(&o));
    }

    // Without a manifest, or with one that does not list what is stored, verify says
    // it could not check completeness and passes.
    let arch = dir.path().join("nomanifest");
    common::copy_dir(&base, &arch);
    std::fs::remove_file(arch.join(".zarr-wavfs-manifest.json")).unwrap();
    std::fs::remove_dir_all(arch.join("a")).unwrap();
    let (ok, all) = verify(&arch);
    assert!(ok, "{all}");
    assert!(all.contains("could not check"), "{all}");
    assert!(run_bounded(&[&"ls", &arch], LIMIT).status.success());

    let arch = dir.path().join("stale");
    common::copy_dir(&base, &arch);
    common::copy_dir(&arch.join("a"), &arch.join("copied_by_hand"));
    std::fs::remove_dir_all(arch.join("b")).unwrap();
    let (ok, all) = verify(&arch);
    assert!(ok, "{all}");
    assert!(
        all.contains("could not check") && all.contains("copied_by_hand"),
        "{all}"
    );
}

/// A name can hold a newline: `ls` once printed it raw, and the rest of the name
/// looked like another recording's line.
#[test]
fn ls_and_info_escape_control_characters_and_backslashes_in_names() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch");
    let name = "evil\nforged.wav  9:99.000  1 Hz\t\x1b[31mred\\x";
    let input = common::short_wav(dir.path(), &format!("{name}.wav"));
    import(&arch, &input, &["--codec", "pcm"]);
    let o = run_bounded(&[&"ls", &arch], LIMIT);
    assert!(o.status.success(), "{}", stderr(&o));
    let listed = stdout(&o);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(
        !listed.contains('\x1b') && !listed.contains('\t'),
        "{listed:?}"
    );
    let shown = r"evil\nforged.wav  9:99.000  1 Hz\t\x1b[31mred\\x.wav";
    assert!(listed.starts_with(shown), "{listed:?}");

    let o = run_bounded(&[&"info", &arch, &name], LIMIT);
    assert!(o.status.success(), "{}", stderr(&o));
    let info = stdout(&o);
    assert!(
        !info.contains('\x1b') && !info.contains("\nforged"),
        "{info:?}"
    );
    let rec = r"evil\nforged.wav  9:99.000  1 Hz\t\x1b[31mred\\x";
    assert!(
        info.contains(&format!("recording:            {rec}\n")),
        "{info:?}"
    );
    assert!(
        info.contains(&format!("source:               {rec}.wav (")),
        "{info:?}"
    );

    // `ls --since` (for scripts) and `verify` print paths the same way.
    let o = run_bounded(&[&"ls", &arch, &"--since", &"2000-01-01T00:00:00Z"], LIMIT);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{rec}\n"), "{:?}", stdout(&o));
    std::fs::remove_file(arch.join(name).join("samples/zarr.json")).unwrap();
    let o = run_bounded(&[&"verify", &arch], LIMIT);
    assert!(!o.status.success());
    let out = stdout(&o);
    assert!(
        !out.contains('\x1b') && !out.contains("\nforged"),
        "{out:?}"
    );
    assert!(out.contains(&format!("ERROR: {rec}: ")), "{out:?}");
}

/// A pid that no process has now: one that ran and was reaped.
fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

/// A killed `index` of an older version left `.checkpoints-new-PID` in the
/// recording, and one of this version `checkpoints-PID-…` in the staging directory:
/// `index` removes those whose process is gone, `verify` notes them.
#[test]
fn index_removes_checkpoint_leftovers_of_dead_processes_and_verify_notes_them() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch");
    let input = common::short_wav(dir.path(), "rec.wav");
    import(&arch, &input, &["--codec", "opus"]);
    let dead = dead_pid();
    let old = arch.join(format!("rec/.checkpoints-new-{dead}"));
    std::fs::create_dir_all(old.join("c")).unwrap();
    std::fs::write(old.join("c/0"), b"half a shard").unwrap();
    // one of a process that still runs (this test) stays
    let live = arch.join(format!("rec/.checkpoints-new-{}", std::process::id()));
    std::fs::create_dir_all(&live).unwrap();
    let staged = arch.join(format!(".zarr-wavfs-staging/checkpoints-{dead}-1-0"));
    std::fs::create_dir_all(staged.join("c")).unwrap();

    let (ok, all) = verify(&arch);
    assert!(ok, "leftovers are a note, not an error: {all}");
    assert!(
        all.lines().any(
            |l| l.starts_with("note: rec: ") && l.contains(&format!(".checkpoints-new-{dead}"))
        ),
        "{all}"
    );

    let o = run_bounded(&[&"index", &arch], LIMIT);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!old.exists(), "{} left", old.display());
    assert!(!staged.exists(), "{} left", staged.display());
    assert!(live.exists(), "a running process's directory was removed");
    std::fs::remove_dir(&live).unwrap();
    let (ok, all) = verify(&arch);
    assert!(ok && !all.contains("leftover"), "{all}");
}

/// A second `mount` on a live mount point stacked another daemon over the first.
#[test]
fn mounting_on_a_live_mount_point_is_refused() {
    if !fuse_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch");
    import(&arch, &common::short_wav(dir.path(), "one.wav"), &[]);
    let m = Mount::start(&arch, dir.path(), "mnt", &[]);
    let stacked = |mnt: &Path| {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mnt = mnt.to_str().unwrap().trim_end_matches('/').to_string();
        info.lines()
            .filter(|l| l.split(' ').nth(4) == Some(mnt.as_str()))
            .count()
    };
    assert_eq!(stacked(&m.mnt), 1);
    for fg in [false, true] {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"mount", &arch, &m.mnt];
        if fg {
            args.push(&"-f");
        }
        let o = run_bounded(&args, LIMIT);
        let mounts = stacked(&m.mnt);
        if mounts > 1 {
            let _ = std::process::Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(&m.mnt)
                .status();
        }
        assert_clean_failure(&o, "already a mount point");
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
        assert_eq!(mounts, 1, "a second daemon was stacked on the mount");
    }
    assert!(std::fs::read(m.path("one.wav")).is_ok(), "{}", m.log());
}

/// SIGTERM unmounted by path: after the mount point's parent was renamed and another
/// daemon mounted at the old path, it detached the other daemon's mount.
#[test]
fn sigterm_unmounts_the_daemons_own_mount_not_what_is_at_its_old_path() {
    if !fuse_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (arch_a, arch_b) = (dir.path().join("a.zarr"), dir.path().join("b.zarr"));
    import(&arch_a, &common::short_wav(dir.path(), "one.wav"), &[]);
    import(&arch_b, &common::short_wav(dir.path(), "two.wav"), &[]);
    let p = dir.path().join("p");
    let q = dir.path().join("q");
    let mut a = Mount::start(&arch_a, &p, "m", &[]);
    std::fs::rename(&p, &q).unwrap();
    // A's mount moved with its parent; its Drop must look there.
    a.mnt = q.join("m").canonicalize().unwrap();
    a.log = q.join("m.log");
    assert!(is_mounted(&a.mnt));
    let b = Mount::start(&arch_b, &p, "m", &[]);
    assert!(std::fs::read(b.path("two.wav")).is_ok(), "{}", b.log());
    assert!(std::fs::read(a.path("one.wav")).is_ok());

    let status = a.signal(libc::SIGTERM);
    assert!(status.success(), "A exited with {status}");
    wait_until("A's mount to go", Duration::from_secs(10), || {
        !is_mounted(&a.mnt)
    });
    assert!(is_mounted(&b.mnt), "SIGTERM to A unmounted B");
    assert!(
        std::fs::read(b.path("two.wav")).is_ok(),
        "B does not serve after SIGTERM to A: {}",
        b.log()
    );
    drop(b);
}
