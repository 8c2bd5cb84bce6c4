//! A `zarr-wavfs serve` of the tests: the real binary on a free loopback port.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `serve`, stopped with SIGTERM when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    pub fn start(arch: &Path, extra: &[&str]) -> Server {
        Server::start_with(arch.as_os_str(), extra, &[])
    }

    /// `serve ARCH EXTRA...` with `env` set.
    pub fn start_with(arch: &std::ffi::OsStr, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serve.log");
        let mut child = Command::new(super::bin())
            .args(["-v", "serve"])
            .arg(arch)
            .args(["--listen", "127.0.0.1:0", "--client-timeout", "2"])
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("serving ")
            .unwrap_or_else(|| {
                panic!(
                    "serve did not start: {line:?}; log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .trim_end_matches('/')
            .to_string();
        Server {
            child,
            base,
            log,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn addr(&self) -> String {
        self.base.strip_prefix("http://").unwrap().to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM; the exit status, within `limit`.
    pub fn stop(&mut self, limit: Duration) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                t.elapsed() < limit,
                "serve still running {limit:?} after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A test failed already: just make sure the server goes.
            let _ = self.child.kill();
            let _ = self.child.wait();
            return;
        }
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.stop(Duration::from_secs(10));
        }
        let log = self.log();
        assert!(!log.contains("panicked"), "serve panicked: {log}");
    }
}
