//! The servers the storage tests read archives from: S3-compatible ones (s3s-fs, and
//! moto for what s3s-fs does not do: conditional writes) and a plain HTTP one (nginx).
//! Each test starts private instances on ports of their own, so tests run in parallel;
//! an instance is killed when dropped.
//!
//! scripts/setup.sh installs them: nginx-light from apt, s3s-fs with `cargo install` into
//! `${ZARR_WAVFS_CACHE:-/var/cache/zarr-wavfs}/s3s-fs-0.14.1` (or set `ZARR_WAVFS_S3S_FS`
//! to the binary), moto's server with pip.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const S3S_FS_VERSION: &str = "0.14.1";
/// How long s3s-fs may take to say it is listening.
const S3_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a restart keeps retrying the old port while the kernel still holds it.
const S3_REBIND_TIMEOUT: Duration = Duration::from_secs(5);
const NGINX: &str = "/usr/sbin/nginx";
const NGINX_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The s3s-fs binary: `$ZARR_WAVFS_S3S_FS`, else the one scripts/setup.sh installs into
/// the cache. Panics when it is not there.
pub fn s3s_fs_bin() -> PathBuf {
    let bin = match std::env::var_os("ZARR_WAVFS_S3S_FS") {
        Some(p) => PathBuf::from(p),
        None => {
            let cache = std::env::var_os("ZARR_WAVFS_CACHE")
                .map_or_else(|| PathBuf::from("/var/cache/zarr-wavfs"), PathBuf::from);
            cache.join(format!("s3s-fs-{S3S_FS_VERSION}/bin/s3s-fs"))
        }
    };
    assert!(
        bin.is_file(),
        "s3s-fs not found at {} (run scripts/setup.sh, which installs it there, or set \
         ZARR_WAVFS_S3S_FS to the binary)",
        bin.display()
    );
    bin
}

/// A port that was free a moment ago (bound to 127.0.0.1:0 and released). Another
/// process may take it before the caller binds it; callers retry on "address in use".
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running s3s-fs serving `data_dir`: bucket `B` is the directory `data_dir/B`, object
/// `B/K` the file `data_dir/B/K`. Requests must be signed (SigV4, any region) with
/// `access_key`/`secret_key`; path-style URLs `{endpoint}/{bucket}/{key}`.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub endpoint: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub access_key: String,
    pub secret_key: String,
    /// The region to sign with (s3s-fs accepts any).
    pub region: String,
    child: Option<Child>,
    /// Everything the server printed (stdout and stderr, all runs), drained by threads.
    log: Arc<Mutex<String>>,
}

impl S3Server {
    /// Starts s3s-fs on a free port of 127.0.0.1 and returns once it listens.
    pub fn start(data_dir: &Path) -> S3Server {
        std::fs::create_dir_all(data_dir).unwrap();
        let mut s = S3Server {
            endpoint: String::new(),
            port: 0,
            data_dir: data_dir.to_path_buf(),
            access_key: "zarr-wavfs-test-key".into(),
            secret_key: "zarr-wavfs-test-secret".into(),
            region: "us-east-1".into(),
            child: None,
            log: Arc::default(),
        };
        if let Err(e) = s.spawn(0) {
            panic!("s3s-fs did not start: {e}\n--- log ---\n{}", s.log());
        }
        s
    }

    /// Creates bucket `name` (s3s-fs's buckets are the directories of its root).
    pub fn create_bucket(&self, name: &str) {
        std::fs::create_dir_all(self.data_dir.join(name)).unwrap();
    }

    /// `{endpoint}/{bucket}/{key}`.
    pub fn url(&self, bucket: &str, key: &str) -> String {
        format!("{}/{bucket}/{key}", self.endpoint)
    }

    /// Everything the server printed so far (all runs).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Where the log ends now; `requests_since` it gives the requests that came after.
    pub fn log_mark(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// The requests the server logged after `mark`, in the order they arrived. Waits
    /// (a few seconds at most) until the log stops growing: the threads that copy it
    /// from the server's pipe may lag behind a client that has already finished.
    pub fn requests_since(&self, mark: usize) -> Vec<LoggedRequest> {
        let t = Instant::now();
        let mut len = self.log_mark();
        while t.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.log_mark();
            if now == len {
                break;
            }
            len = now;
        }
        let log = self.log.lock().unwrap();
        log[mark..]
            .lines()
            .filter_map(LoggedRequest::parse)
            .collect()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL, and waits for the process to be gone. Connections in flight break; the
    /// port is free for `restart`. A no-op when not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the port stays open and the kernel still accepts connections, but no
    /// request is answered until `resume` (a hung server, not a dead one: only a client
    /// timeout ends a request). A no-op when not running.
    pub fn pause(&self) {
        if let Some(child) = &self.child {
            unsafe { libc::kill(child.id() as i32, libc::SIGSTOP) };
        }
    }

    /// SIGCONT after `pause`: the requests that waited are answered now.
    pub fn resume(&self) {
        if let Some(child) = &self.child {
            unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
        }
    }

    /// Starts the server again on the same port, over the same data (killing it first
    /// if it still runs). Retries for a few seconds while the port is still taken.
    pub fn restart(&mut self) {
        self.kill();
        let t = Instant::now();
        loop {
            match self.spawn(self.port) {
                Ok(()) => return,
                Err(e) if t.elapsed() < S3_REBIND_TIMEOUT => {
                    let last = e.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
                    eprintln!("s3s-fs restart on port {}: {last}; retrying", self.port);
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!(
                    "s3s-fs did not restart on port {}: {e}\n--- log ---\n{}",
                    self.port,
                    self.log()
                ),
            }
        }
    }

    /// Runs s3s-fs on `port` (0: any) and waits for its ready line, which (tracing's
    /// pretty format on stdout) reads `... INFO s3s_fs: server is running at
    /// http://127.0.0.1:PORT`. Err when the process exits first (e.g. port in use).
    fn spawn(&mut self, port: u16) -> Result<(), String> {
        let mut child = Command::new(s3s_fs_bin())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", &self.access_key])
            .args(["--secret-key", &self.secret_key])
            .arg(&self.data_dir)
            // s3s::service at debug logs every request as it arrives (`requests_since`).
            .env("RUST_LOG", "info,s3s::service=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", s3s_fs_bin().display()));
        let start = {
            let mut log = self.log.lock().unwrap();
            log.push_str(&format!(
                "--- s3s-fs pid {} (port {port}) ---\n",
                child.id()
            ));
            log.len()
        };
        let drains = [
            drain(child.stdout.take().unwrap(), &self.log),
            drain(child.stderr.take().unwrap(), &self.log),
        ];
        let t = Instant::now();
        loop {
            let found = ready_port(&self.log.lock().unwrap()[start..]);
            if let Some(p) = found {
                assert!(port == 0 || p == port, "s3s-fs listens on {p}, not {port}");
                self.port = p;
                self.endpoint = format!("http://127.0.0.1:{p}");
                self.child = Some(child);
                return Ok(());
            }
            if let Some(status) = child.try_wait().unwrap() {
                // the pipes are at EOF now: take in the last words
                drains.into_iter().for_each(|d| d.join().unwrap());
                let said = self.log.lock().unwrap()[start..].trim().to_string();
                return Err(format!("exited ({status}): {said}"));
            }
            if t.elapsed() > S3_READY_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "s3s-fs not ready after {S3_READY_TIMEOUT:?}\n--- log ---\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One request as s3s-fs logs it at `s3s::service=debug`: `... req: Request { method:
/// GET, uri: /bucket/key, version: ..., headers: {..., "range": "bytes=0-99", ...} }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    /// The URI's path, bucket first (`/lab/a.zarr/rec/stream/c/0`), and its query.
    pub uri: String,
    /// The `Range` header (`bytes=0-99`, `bytes=-1028`), if any.
    pub range: Option<String>,
}

impl LoggedRequest {
    fn parse(line: &str) -> Option<LoggedRequest> {
        let line = strip_ansi(line);
        let rest = line.split_once("req: Request { method: ")?.1;
        let (method, rest) = rest.split_once(", uri: ")?;
        let uri = rest.split([',', ' ']).next()?;
        let range = line
            .split_once("\"range\": \"")
            .and_then(|(_, r)| r.split('"').next())
            .map(str::to_string);
        Some(LoggedRequest {
            method: method.to_string(),
            uri: uri.to_string(),
            range,
        })
    }
}

/// `s` without terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

/// Appends what `from` yields, line by line, to `log` until EOF, in a thread of its own,
/// so that the child never blocks on a full pipe.
fn drain(from: impl Read + Send + 'static, log: &Arc<Mutex<String>>) -> JoinHandle<()> {
    let log = Arc::clone(log);
    std::thread::spawn(move || {
        let mut r = BufReader::new(from);
        let mut line = Vec::new();
        while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            log.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
    })
}

/// The port of the first `running at http://127.0.0.1:PORT` in `log`.
fn ready_port(log: &str) -> Option<u16> {
    const NEEDLE: &str = "running at http://127.0.0.1:";
    let i = log.find(NEEDLE)? + NEEDLE.len();
    let digits: String = log[i..].chars().take_while(char::is_ascii_digit).collect();
    // the line may still be arriving: only a complete number counts
    if !log[i + digits.len()..].starts_with(char::is_whitespace) {
        return None;
    }
    digits.parse().ok()
}

/// A running nginx serving the files under `root` at `url` (static files only, no
/// directory listings; byte ranges, suffix ranges included, answered with 206). Its
/// configuration, logs and temp files live in a temp dir of its own; nothing under /var
/// is touched and no system nginx service is needed.
pub struct Nginx {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    pub port: u16,
    pub root: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Nginx {
    /// Starts nginx on a free port of 127.0.0.1 and returns once it accepts connections.
    pub fn start(root: &Path) -> Nginx {
        assert!(
            Path::new(NGINX).is_file(),
            "{NGINX} not found (scripts/setup.sh installs nginx-light)"
        );
        let root = root.canonicalize().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut last_err = String::new();
        // free_port() may be taken by someone else before nginx binds it: try a few
        for _ in 0..5 {
            let port = free_port();
            let conf = dir.path().join("nginx.conf");
            std::fs::write(&conf, nginx_conf(dir.path(), &root, port)).unwrap();
            let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
            let mut child = Command::new(NGINX)
                .arg("-c")
                .arg(&conf)
                .arg("-p")
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap();
            let t = Instant::now();
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    last_err = format!(
                        "nginx exited ({status}): {}{}",
                        read(&dir.path().join("stderr.log")),
                        read(&dir.path().join("error.log"))
                    );
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Nginx {
                        url: format!("http://127.0.0.1:{port}"),
                        port,
                        root,
                        dir,
                        child: Some(child),
                    };
                }
                if t.elapsed() > NGINX_READY_TIMEOUT {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "nginx not accepting on {port} after {NGINX_READY_TIMEOUT:?}: {}",
                        read(&dir.path().join("error.log"))
                    );
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("nginx did not start: {last_err}");
    }

    /// `{url}/{rel}`.
    pub fn file_url(&self, rel: &str) -> String {
        format!("{}/{rel}", self.url)
    }

    /// The access log so far, one line per request (written as each request ends):
    /// `127.0.0.1 - - [time] "GET /path HTTP/1.1" STATUS BYTES "-" "user agent"`.
    pub fn access_log(&self) -> String {
        read(&self.dir.path().join("access.log"))
    }

    /// The error log so far (notices and up: failed opens of missing files, etc.).
    pub fn error_log(&self) -> String {
        read(&self.dir.path().join("error.log"))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// One process in the foreground (no master, no workers: SIGKILL leaves nothing
/// behind), every path it writes inside `dir`.
fn nginx_conf(dir: &Path, root: &Path, port: u16) -> String {
    let d = dir.display();
    let root = root.display();
    format!(
        r#"daemon off;
master_process off;
pid "{d}/nginx.pid";
lock_file "{d}/nginx.lock";
error_log "{d}/error.log" notice;
events {{
    worker_connections 1024;
}}
http {{
    access_log "{d}/access.log";
    client_body_temp_path "{d}/client_body";
    proxy_temp_path "{d}/proxy";
    fastcgi_temp_path "{d}/fastcgi";
    uwsgi_temp_path "{d}/uwsgi";
    scgi_temp_path "{d}/scgi";
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        root "{root}";
        autoindex off;
        location / {{
        }}
    }}
}}
"#
    )
}

/// A TCP relay to a local port that counts the connections made through it: a client
/// that has requests in flight at once opens a connection for each (HTTP/1.1 keeps one
/// request per connection at a time), one that asks one after another reuses one.
pub struct ConnectionCounter {
    /// `http://127.0.0.1:PORT` of the relay.
    pub endpoint: String,
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl ConnectionCounter {
    /// Relays 127.0.0.1:`to` (its threads live as long as the test process).
    pub fn start(to: u16) -> ConnectionCounter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                    continue;
                };
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                for (mut from, mut into) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut into);
                        let _ = into.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        ConnectionCounter {
            endpoint: format!("http://127.0.0.1:{port}"),
            connections,
        }
    }

    /// Connections made through the relay so far.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A running moto S3 server (in memory; it enforces `If-Match`/`If-None-Match` on
/// writes, answering 412, which s3s-fs does not). Accepts any credentials.
pub struct Moto {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub endpoint: String,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// Starts `moto_server` on a free port; `None` (the test says it is skipped) when it
    /// is not installed, which CI does not allow.
    pub fn start() -> Option<Moto> {
        if Command::new("moto_server").arg("--help").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "moto_server missing in CI (scripts/setup.sh installs it)"
            );
            eprintln!("SKIPPED: no moto_server; conditional-write tests not run");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .spawn()
            .unwrap();
        let m = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
            log,
            _dir: dir,
        };
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < S3_READY_TIMEOUT,
                "moto_server not listening: {}",
                std::fs::read_to_string(&m.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(m)
    }

    /// Creates bucket `name` (moto takes unsigned requests).
    pub fn create_bucket(&self, name: &str) {
        ureq::put(&format!("{}/{name}", self.endpoint))
            .send_empty()
            .unwrap_or_else(|e| panic!("creating bucket {name} in moto: {e}"));
    }

    /// The environment that points the binary at this server (and at nothing else of
    /// AWS's).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "zarr-wavfs-test".into()),
            ("AWS_SECRET_ACCESS_KEY", "zarr-wavfs-test".into()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws/credentials".into(),
            ),
            ("AWS_CONFIG_FILE", "/nonexistent/aws/config".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
