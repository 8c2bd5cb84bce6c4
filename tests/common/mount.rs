//! A real FUSE mount of the binary, for the tests that read through the kernel.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether FUSE can be used here. Without /dev/fuse or fusermount3 the tests say so and
/// pass, except under CI (`CI` set), where they must run.
pub fn fuse_available() -> bool {
    let ok = Path::new("/dev/fuse").exists()
        && Command::new("fusermount3")
            .arg("--version")
            .output()
            .is_ok();
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "/dev/fuse or fusermount3 missing in CI (scripts/setup.sh installs fuse3)"
        );
        eprintln!("SKIPPED: no /dev/fuse or fusermount3; FUSE tests not run");
    }
    ok
}

/// A running `zarr-wavfs mount -f`; unmounted (SIGTERM) when dropped.
pub struct Mount {
    pub child: Option<Child>,
    pub mnt: PathBuf,
    pub log: PathBuf,
}

pub fn is_mounted(mnt: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    // `fuse.zarr-wavfs`; plain `fuse` when root mounts without auto_unmount (fuser's
    // direct mount(2) does not set the subtype in the type)
    let mnt = mnt.display().to_string();
    mounts.lines().any(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        f.len() > 2 && f[1] == mnt && (f[2] == "fuse.zarr-wavfs" || f[2] == "fuse")
    })
}

pub fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Mount {
    /// Mounts `arch` on `dir/name` in the foreground, logging to `dir/name.log`, and
    /// returns once the daemon answers.
    pub fn start(arch: &Path, dir: &Path, name: &str, extra: &[&str]) -> Mount {
        let mnt = dir.join(name);
        std::fs::create_dir_all(&mnt).unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(super::bin())
            .arg("mount")
            .arg(arch)
            .arg(&mnt)
            .arg("-f")
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mnt = mnt.canonicalize().unwrap();
        let mut m = Mount {
            child: Some(child),
            mnt,
            log,
        };
        let mnt = m.mnt.clone();
        wait_until("the mount", Duration::from_secs(30), || {
            if let Some(status) = m.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited early ({status}): {}", m.log());
            }
            is_mounted(&mnt)
        });
        // Listed in /proc/mounts is not yet served: wait for the daemon to answer, so a
        // test never kills it half-way through its handshake with fusermount3.
        std::fs::read_dir(&mnt).unwrap().for_each(drop);
        m
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `sig` to the daemon and waits for it to exit.
    pub fn signal(&mut self, sig: i32) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.as_ref().unwrap().id() as i32, sig) };
        self.wait()
    }

    pub fn wait(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let t = Instant::now();
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "daemon did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal(libc::SIGTERM);
        }
        if is_mounted(&self.mnt) {
            let _ = Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(&self.mnt)
                .status();
        }
    }
}

/// Every running fusermount3 with its arguments and open file descriptors, for
/// diagnosing a mount that did not go away.
pub fn fusermount_processes() -> String {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("fusermount") {
            let fds: Vec<String> = std::fs::read_dir(e.path().join("fd"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|f| {
                    let target = std::fs::read_link(f.path()).unwrap_or_default();
                    format!("{}->{}", f.file_name().to_string_lossy(), target.display())
                })
                .collect();
            out.push(format!(
                "{}: {cmd} fds [{}]",
                e.file_name().to_string_lossy(),
                fds.join(", ")
            ));
        }
    }
    if out.is_empty() {
        "no fusermount3 running".into()
    } else {
        out.join("; ")
    }
}
