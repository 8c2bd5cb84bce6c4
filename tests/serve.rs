//! `zarr-wavfs serve` end to end: the real binary on a free loopback port, read by an
//! HTTP client, by raw sockets (slow and stalled clients, traversal attempts) and by
//! the tools users have (ffprobe, ffmpeg, Python's urllib and soundfile). The oracle of
//! every body is `extract` of the same recording.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::serve::Server;
use common::{Lcg, run, stderr};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

/// A response: status, headers (lower-case names), body.
struct Got {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn request(agent: &ureq::Agent, method: &str, url: &str, headers: &[(&str, &str)]) -> Got {
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = agent.run(req.body(()).unwrap()).unwrap();
    let body = resp
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .unwrap();
    Got {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body,
    }
}

fn get(agent: &ureq::Agent, url: &str, headers: &[(&str, &str)]) -> Got {
    request(agent, "GET", url, headers)
}

/// An archive with a 40 s mono 48 kHz FLAC recording with a start time (site1), a 24-bit
/// stereo one, and an Opus one in a folder whose name needs escaping.
fn archive() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch.zarr");
    let mono = dir.path().join("20250601_040000.wav");
    common::write_wav(&mono, 48_000, 1, 16, false, 48_000 * 40 + 7);
    let stereo = dir.path().join("stereo24.wav");
    common::write_wav(&stereo, 44_100, 2, 24, false, 44_100 * 5 + 3);
    for (input, into, codec) in [
        (&mono, "site1", "flac"),
        (&stereo, "site1", "flac"),
        (&mono, "site 2", "opus"),
    ] {
        let o = run(&[
            &"import", &arch, input, &"--into", &into, &"--codec", &codec,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    (dir, arch)
}

/// `extract` of `rec` with extra arguments, the oracle.
fn extract(arch: &Path, rec: &str, extra: &[&str]) -> Vec<u8> {
    let mut c = Command::new(common::bin());
    c.arg("extract")
        .arg(arch)
        .arg(rec)
        .args(["-o", "-"])
        .args(extra);
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    o.stdout
}

const RECORDINGS: [(&str, &str); 3] = [
    ("site1/20250601_040000", "/site1/20250601_040000.wav"),
    ("site1/stereo24", "/site1/stereo24.wav"),
    ("site 2/20250601_040000", "/site%202/20250601_040000.wav"),
];

#[test]
fn whole_files_and_random_ranges_equal_extract() {
    let (_dir, arch) = archive();
    let server = Server::start(&arch, &[]);
    let agent = agent();
    let mut rng = Lcg(7);
    for (rec, url) in RECORDINGS {
        let oracle = extract(&arch, rec, &[]);
        let len = oracle.len() as u64;
        let whole = get(&agent, &server.url(url), &[]);
        assert_eq!(whole.status, 200, "{url}");
        assert!(
            whole.body == oracle,
            "{url}: whole GET differs from extract"
        );
        assert_eq!(whole.header("content-type"), Some("audio/wav"));
        assert_eq!(whole.header("accept-ranges"), Some("bytes"));
        assert_eq!(
            whole.header("content-length"),
            Some(len.to_string().as_str())
        );
        let head = request(&agent, "HEAD", &server.url(url), &[]);
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(
            head.header("content-length"),
            Some(len.to_string().as_str())
        );
        assert_eq!(head.header("etag"), whole.header("etag"));
        for i in 0..170 {
            // Every form, with starts in the header, across the header/data boundary,
            // anywhere, and past the end.
            let a = match i % 4 {
                0 => rng.below(200),
                1 => 20 + rng.below(200),
                2 => rng.below(len),
                _ => len - rng.below(300).min(len),
            };
            let size = 1 << rng.below(20);
            let (spec, expect) = match i % 3 {
                0 => {
                    let b = a + rng.below(size);
                    (
                        format!("bytes={a}-{b}"),
                        (a < len).then(|| a..(b + 1).min(len)),
                    )
                }
                1 => (format!("bytes={a}-"), (a < len).then_some(a..len)),
                _ => {
                    let n = 1 + rng.below(size);
                    (format!("bytes=-{n}"), Some(len - n.min(len)..len))
                }
            };
            let got = get(&agent, &server.url(url), &[("Range", &spec)]);
            match expect {
                Some(r) => {
                    assert_eq!(got.status, 206, "{url} {spec}");
                    assert_eq!(
                        got.header("content-range"),
                        Some(format!("bytes {}-{}/{len}", r.start, r.end - 1).as_str()),
                        "{url} {spec}"
                    );
                    let want = &oracle[r.start as usize..r.end as usize];
                    assert!(
                        got.body == want,
                        "{url} {spec}: bytes differ from the oracle"
                    );
                }
                None => {
                    assert_eq!(got.status, 416, "{url} {spec}");
                    assert_eq!(
                        got.header("content-range"),
                        Some(format!("bytes */{len}").as_str())
                    );
                }
            }
        }
    }
    let log = server.log();
    assert!(
        log.contains("\"GET /site1/stereo24.wav\" range=bytes=") && log.contains(" 206 "),
        "access log lines missing: {log}"
    );
}

#[test]
fn segments_equal_extract_of_the_same_span() {
    let (_dir, arch) = archive();
    let server = Server::start(&arch, &[]);
    let agent = agent();
    for (query, args) in [
        ("start=12.5&end=20", vec!["--start", "12.5", "--end", "20"]),
        ("start=00:00:03.25", vec!["--start", "00:00:03.25"]),
        (
            "end=48000f&format=f32",
            vec!["--end", "48000f", "--format", "f32"],
        ),
        ("start=39&end=99", vec!["--start", "39", "--end", "99"]),
    ] {
        for (rec, url) in RECORDINGS {
            if rec.contains("stereo")
                && (query.starts_with("start=39") || query.starts_with("start=12"))
            {
                continue; // 5 s long
            }
            let got = get(&agent, &server.url(&format!("{url}?{query}")), &[]);
            assert_eq!(
                got.status,
                200,
                "{url}?{query}: {}",
                String::from_utf8_lossy(&got.body)
            );
            assert!(
                got.body == extract(&arch, rec, &args),
                "{url}?{query} differs from extract"
            );
            // A range of a segment is a range of that segment's file.
            let part = get(
                &agent,
                &server.url(&format!("{url}?{query}")),
                &[("Range", "bytes=40-1000")],
            );
            assert_eq!(part.status, 206);
            assert!(part.body == got.body[40..1001]);
        }
    }
    for (query, reason) in [
        ("start=x", "start: bad time"),
        ("start=20&end=10", "end must be after start"),
        ("start=41", "past the end"),
        ("format=u8", "format"),
        ("speed=2", "unknown parameter"),
    ] {
        let got = get(
            &agent,
            &server.url(&format!("/site1/20250601_040000.wav?{query}")),
            &[],
        );
        assert_eq!(got.status, 400, "{query}");
        let text = String::from_utf8_lossy(&got.body);
        assert!(
            text.contains(reason) && text.lines().count() == 1,
            "{query}: {text}"
        );
    }
}

#[test]
fn validators_conditionals_methods_and_listings() {
    let (dir, arch) = archive();
    let url = "/site1/20250601_040000.wav";
    let (etag, last_modified) = {
        let server = Server::start(&arch, &[]);
        let agent = agent();
        let first = request(&agent, "HEAD", &server.url(url), &[]);
        let etag = first.header("etag").unwrap().to_string();
        assert!(
            etag.starts_with('"') && etag.ends_with('"'),
            "strong: {etag}"
        );
        let lm = first.header("last-modified").unwrap().to_string();
        assert!(httpdate::parse_http_date(&lm).is_ok(), "{lm}");
        // The same recording in another format, or a segment, is another representation.
        let seg = request(&agent, "HEAD", &server.url(&format!("{url}?start=1")), &[]);
        assert_ne!(seg.header("etag").unwrap(), etag);

        let hit = get(&agent, &server.url(url), &[("If-None-Match", &etag)]);
        assert_eq!(hit.status, 304);
        assert!(hit.body.is_empty());
        assert_eq!(hit.header("etag"), Some(etag.as_str()));
        let miss = get(&agent, &server.url(url), &[("If-None-Match", "\"other\"")]);
        assert_eq!(miss.status, 200);
        let since = get(&agent, &server.url(url), &[("If-Modified-Since", &lm)]);
        assert_eq!(since.status, 304);

        let ok = get(
            &agent,
            &server.url(url),
            &[("Range", "bytes=0-9"), ("If-Range", &etag)],
        );
        assert_eq!(ok.status, 206);
        let stale = get(
            &agent,
            &server.url(url),
            &[("Range", "bytes=0-9"), ("If-Range", "\"old\"")],
        );
        assert_eq!(stale.status, 200, "a stale If-Range gets the whole file");
        assert_eq!(stale.body.len(), miss.body.len());
        let multi = get(&agent, &server.url(url), &[("Range", "bytes=0-9,20-29")]);
        assert_eq!(
            multi.status, 200,
            "several ranges are answered with the whole file"
        );

        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let r = request(&agent, method, &server.url(url), &[]);
            assert_eq!(r.status, 405, "{method}");
            assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
        }
        let opt = request(&agent, "OPTIONS", &server.url(url), &[]);
        assert_eq!(opt.status, 204);
        // CORS is off unless asked for.
        let r = get(
            &agent,
            &server.url(url),
            &[("Origin", "http://example.org")],
        );
        assert!(r.header("access-control-allow-origin").is_none());

        assert_eq!(get(&agent, &server.url("/nope.wav"), &[]).status, 404);
        assert_eq!(get(&agent, &server.url("/site1/nope.wav"), &[]).status, 404);
        assert_eq!(
            get(&agent, &server.url(&format!("{url}/")), &[]).status,
            404
        );
        let redirect = get(&agent, &server.url("/site%202"), &[]);
        assert_eq!(redirect.status, 301);
        assert_eq!(redirect.header("location"), Some("/site%202/"));

        let json = get(
            &agent,
            &server.url("/site1/"),
            &[("Accept", "application/json")],
        );
        assert_eq!(json.status, 200);
        assert_eq!(json.header("content-type"), Some("application/json"));
        let v: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
        let recs = v["recordings"].as_array().unwrap();
        assert_eq!(recs.len(), 2);
        let r = recs
            .iter()
            .find(|r| r["name"] == "20250601_040000.wav")
            .unwrap();
        assert_eq!(r["sample_rate"], 48_000);
        assert_eq!(r["channels"], 1);
        assert_eq!(r["frames"], 48_000 * 40 + 7);
        assert_eq!(r["codec"], "flac");
        assert_eq!(r["start_time"], "2025-06-01T04:00:00Z");
        assert_eq!(r["size"], miss.body.len());
        let root: serde_json::Value = serde_json::from_slice(
            &get(&agent, &server.url("/"), &[("Accept", "application/json")]).body,
        )
        .unwrap();
        let hrefs: Vec<&str> = root["folders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["href"].as_str().unwrap())
            .collect();
        assert_eq!(hrefs, ["site%202/", "site1/"]);

        let html = get(
            &agent,
            &server.url("/site%202/"),
            &[("Accept", "text/html")],
        );
        assert_eq!(
            html.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        let page = String::from_utf8(html.body).unwrap();
        assert!(page.contains("<audio controls preload=metadata src=\"20250601_040000.wav\">"));
        assert!(page.contains("0:40.000"), "duration shown: {page}");
        (etag, lm)
    };
    // A re-import gives new validators.
    std::thread::sleep(Duration::from_millis(1100));
    let input = dir.path().join("20250601_040000.wav");
    let o = run(&[&"import", &arch, &input, &"--into", &"site1", &"--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let server = Server::start(&arch, &[]);
    let again = request(&agent(), "HEAD", &server.url(url), &[]);
    assert_ne!(again.header("etag"), Some(etag.as_str()));
    assert_ne!(again.header("last-modified"), Some(last_modified.as_str()));
    let r = get(&agent(), &server.url(url), &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 200, "the old tag no longer matches");
}

#[test]
fn cors_only_for_the_given_origin() {
    let (_dir, arch) = archive();
    let server = Server::start(&arch, &["--cors", "http://notebook.example"]);
    let agent = agent();
    let url = server.url("/site1/20250601_040000.wav");
    let ok = get(
        &agent,
        &url,
        &[
            ("Origin", "http://notebook.example"),
            ("Range", "bytes=0-3"),
        ],
    );
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("http://notebook.example")
    );
    assert!(
        ok.header("access-control-expose-headers")
            .unwrap()
            .contains("Content-Range")
    );
    let other = get(&agent, &url, &[("Origin", "http://evil.example")]);
    assert!(other.header("access-control-allow-origin").is_none());
    let preflight = request(
        &agent,
        "OPTIONS",
        &url,
        &[
            ("Origin", "http://notebook.example"),
            ("Access-Control-Request-Headers", "range"),
        ],
    );
    assert_eq!(preflight.status, 204);
    assert!(
        preflight
            .header("access-control-allow-headers")
            .unwrap()
            .contains("Range")
    );
}

/// Sends `raw` on a new connection and returns the status line of the answer.
fn raw_status(addr: &str, raw: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line.trim().to_string()
}

#[test]
fn paths_never_leave_the_tree() {
    let (_dir, arch) = archive();
    let server = Server::start(&arch, &[]);
    // A file beside the archive that a traversal would reach.
    std::fs::write(arch.parent().unwrap().join("secret.wav"), b"secret").unwrap();
    for path in [
        "/../secret.wav",
        "/site1/../../secret.wav",
        "/%2e%2e/secret.wav",
        "/%2E%2E%2Fsecret.wav",
        "/site1%2F..%2F..%2Fsecret.wav",
        "/site1/%00.wav",
        "/site1//20250601_040000.wav",
        "/./site1/20250601_040000.wav",
        "/.zarr-wavfs-manifest.json",
        "/zarr.json",
        "/site1/20250601_040000/zarr.json",
    ] {
        let status = raw_status(
            &server.addr(),
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
        assert!(
            status.starts_with("HTTP/1.1 404") || status.starts_with("HTTP/1.1 400"),
            "{path}: {status}"
        );
    }
}

#[test]
fn slow_stalled_and_many_clients() {
    let (_dir, arch) = archive();
    let server = Server::start(&arch, &["--cache-size", "16MiB"]);
    let url = "/site1/20250601_040000.wav";
    // Headers one byte at a time, slower than the client time-out (2 s) allows in
    // total: the server closes the connection instead of waiting.
    let slow = {
        let addr = server.addr();
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            let t = Instant::now();
            for b in format!("GET {url} HTTP/1.1\r\nHost: x\r\n\r\n").bytes() {
                if s.write_all(&[b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(300));
                if t.elapsed() > Duration::from_secs(20) {
                    panic!("the slow client was never cut off");
                }
            }
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
            (t.elapsed(), rest)
        })
    };
    // A client that asks for a whole file (7.7 MB, more than the socket buffers hold)
    // and never reads it.
    let stalled_url = format!("{url}?format=f32");
    let mut stalled = TcpStream::connect(server.addr()).unwrap();
    stalled
        .write_all(format!("GET {stalled_url} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    // Meanwhile 64 clients stream and seek at once, and every byte is right.
    let oracle = std::sync::Arc::new(extract(&arch, "site1/20250601_040000", &[]));
    let clients: Vec<_> = (0..64)
        .map(|i| {
            let (base, oracle) = (server.base.clone(), oracle.clone());
            std::thread::spawn(move || {
                let agent = agent();
                let mut rng = Lcg(i);
                if i % 4 == 0 {
                    let g = get(&agent, &format!("{base}{url}"), &[]);
                    assert!(g.body == *oracle, "client {i}: whole file differs");
                } else {
                    for _ in 0..8 {
                        let a = rng.below(oracle.len() as u64);
                        let b = (a + rng.below(200_000)).min(oracle.len() as u64 - 1);
                        let g = get(
                            &agent,
                            &format!("{base}{url}"),
                            &[("Range", &format!("bytes={a}-{b}"))],
                        );
                        assert!(
                            g.body == oracle[a as usize..=b as usize],
                            "client {i}: range differs"
                        );
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let (took, rest) = slow.join().unwrap();
    assert!(took < Duration::from_secs(20), "slow client held {took:?}");
    let answer = String::from_utf8_lossy(&rest);
    assert!(
        !answer.contains("200 OK"),
        "a request that never completed was answered: {answer}"
    );
    // The stalled client's response is given up once its writes stall past the
    // time-out: its access-log line (written when a response ends) shows it cut short,
    // and the connection is closed.
    let full = extract(&arch, "site1/20250601_040000", &["--format", "f32"]).len() as u64;
    let needle = format!("\"GET {stalled_url}\" range=- 200 ");
    common::mount::wait_until(
        "the stalled response to be cut",
        Duration::from_secs(20),
        || server.log().contains(&needle),
    );
    let log = server.log();
    let line = log.lines().find(|l| l.contains(&needle)).unwrap();
    let sent: u64 = line
        .split(&needle)
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        sent < full,
        "the stalled client was sent everything: {line}"
    );
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let r = stalled.read_to_end(&mut got);
    assert!(
        r.is_ok()
            || r.as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the stalled connection was not closed: {r:?}"
    );
    assert!(
        (got.len() as u64) < full,
        "a stalled client got the whole file"
    );
}

#[test]
fn sigterm_stops_the_server_during_a_response() {
    let (_dir, arch) = archive();
    let mut server = Server::start(&arch, &[]);
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.write_all(b"GET /site%202/20250601_040000.wav HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 512];
    s.read_exact(&mut first).unwrap();
    let status = server.stop(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}: {}", server.log());
    assert!(server.log().contains("stopping"), "{}", server.log());
}

#[test]
fn real_clients_read_it() {
    let (_dir, arch) = archive();
    let server = Server::start(&arch, &[]);
    let url = server.url("/site1/20250601_040000.wav");
    let o = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=sample_rate,channels,duration_ts",
            "-of",
            "csv=p=0",
        ])
        .arg(&url)
        .output()
        .expect("ffprobe (scripts/setup.sh installs ffmpeg)");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "48000,1,1920007");
    // ffmpeg seeks with a Range request; the 5 s it decodes from 30 s are the oracle's.
    let o = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", "30", "-i"])
        .arg(&url)
        .args(["-t", "5", "-f", "s16le", "-"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let oracle = extract(
        &arch,
        "site1/20250601_040000",
        &["--start", "30", "--end", "35"],
    );
    let data = &oracle[oracle.len() - 5 * 48_000 * 2..];
    assert!(o.stdout == data, "ffmpeg's seek read other samples");
    assert!(
        server.log().contains("range=bytes="),
        "ffmpeg did not use a Range request: {}",
        server.log()
    );
    if common::python_has("soundfile, numpy") {
        let script = format!(
            "import io, urllib.request, soundfile\n\
             d = urllib.request.urlopen('{url}?start=2&end=3.5&format=f32').read()\n\
             x, sr = soundfile.read(io.BytesIO(d), dtype='float32')\n\
             assert sr == 48000 and x.shape == (72000,), (sr, x.shape)\n\
             r = urllib.request.Request('{url}', headers={{'Range': 'bytes=-100'}})\n\
             assert len(urllib.request.urlopen(r).read()) == 100\n\
             print('ok')\n"
        );
        let o = Command::new("python3")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let extracted = extract(
            &arch,
            "site1/20250601_040000",
            &["--start", "2", "--end", "3.5", "--format", "f32"],
        );
        let served = get(&agent(), &format!("{url}?start=2&end=3.5&format=f32"), &[]);
        assert!(served.body == extracted);
    }
}

#[test]
fn an_archive_in_a_bucket_serves_the_local_bytes() {
    let (dir, arch) = archive();
    let s3 = common::servers::S3Server::start(&dir.path().join("s3"));
    s3.create_bucket("lab");
    let o = Command::new("cp")
        .arg("-a")
        .arg(&arch)
        .arg(s3.data_dir.join("lab/arch"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let nowhere = "/nonexistent/aws";
    let env = [
        ("AWS_ACCESS_KEY_ID", s3.access_key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", s3.secret_key.as_str()),
        ("AWS_ENDPOINT_URL", s3.endpoint.as_str()),
        ("AWS_REGION", s3.region.as_str()),
        ("AWS_SHARED_CREDENTIALS_FILE", nowhere),
        ("AWS_CONFIG_FILE", nowhere),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let remote = Server::start_with("s3://lab/arch".as_ref(), &[], &env);
    let local = Server::start(&arch, &[]);
    let agent = agent();
    let listing =
        |s: &Server| get(&agent, &s.url("/site1/"), &[("Accept", "application/json")]).body;
    assert!(listing(&remote) == listing(&local));
    let mut rng = Lcg(3);
    for (_, url) in RECORDINGS {
        let whole = get(&agent, &local.url(url), &[]).body;
        assert!(get(&agent, &remote.url(url), &[]).body == whole, "{url}");
        for _ in 0..20 {
            let a = rng.below(whole.len() as u64);
            let spec = format!("bytes={a}-{}", a + rng.below(300_000));
            let got = get(&agent, &remote.url(url), &[("Range", &spec)]);
            assert_eq!(got.status, 206);
            assert!(
                got.body == get(&agent, &local.url(url), &[("Range", &spec)]).body,
                "{url} {spec}"
            );
        }
        let seg = format!("{url}?start=1.5&end=3");
        assert!(
            get(&agent, &remote.url(&seg), &[]).body == get(&agent, &local.url(&seg), &[]).body
        );
    }
    // The store stops answering: a recording not read before fails with a server error
    // within the store's time-out (503 when the failing read was the store's own, 500
    // when it came through the Zarr library, which keeps only its message), never with
    // other bytes, and reads once the store is back.
    let faulty = Server::start_with("s3://lab/arch".as_ref(), &["--timeout", "3"], &env);
    let url = faulty.url("/site1/stereo24.wav?start=4&end=5");
    s3.pause();
    let t = Instant::now();
    let failed = get(&agent, &url, &[]);
    let took = t.elapsed();
    s3.resume();
    assert!(
        failed.status == 503 || failed.status == 500,
        "{}: {}",
        failed.status,
        String::from_utf8_lossy(&failed.body)
    );
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert!(
        faulty.log().contains("s3://lab/arch/site1/stereo24"),
        "{}",
        faulty.log()
    );
    let again = get(&agent, &url, &[]);
    assert_eq!(again.status, 200);
    assert!(again.body == get(&agent, &local.url("/site1/stereo24.wav?start=4&end=5"), &[]).body);
}

#[test]
fn spectrograms_of_segments() {
    let (_dir, arch) = archive();
    let server = Server::start(&arch, &[]);
    let agent = agent();
    let size = |body: &[u8]| {
        let d = png::Decoder::new(std::io::Cursor::new(body.to_vec()));
        let r = d.read_info().unwrap();
        (r.info().width, r.info().height)
    };
    let a = get(
        &agent,
        &server.url("/site1/20250601_040000.png?start=2&end=7.5"),
        &[],
    );
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("content-type"), Some("image/png"));
    let (w, h) = size(&a.body);
    assert!(w > 1000 && h > 300, "{w}x{h}: the plot area plus axes");
    // Another segment is another image; the same one is the same bytes and validator.
    let b = get(
        &agent,
        &server.url("/site%202/20250601_040000.png?start=30"),
        &[],
    );
    assert_eq!(b.status, 200);
    assert!(b.body != a.body);
    let again = get(
        &agent,
        &server.url("/site1/20250601_040000.png?start=2&end=7.5"),
        &[],
    );
    assert!(again.body == a.body);
    let tag = a.header("etag").unwrap();
    let cached = get(
        &agent,
        &server.url("/site1/20250601_040000.png?start=2&end=7.5"),
        &[("If-None-Match", tag)],
    );
    assert_eq!(cached.status, 304);
    for bad in ["?format=s16", "?start=50", "?start=3&end=2", "?width=9"] {
        let r = get(
            &agent,
            &server.url(&format!("/site1/20250601_040000.png{bad}")),
            &[],
        );
        assert_eq!(r.status, 400, "{bad}");
    }
    assert_eq!(
        get(&agent, &server.url("/site1/nothing.png"), &[]).status,
        404
    );
    // The folder page shows the first 30 s of each recording.
    let page = String::from_utf8(get(&agent, &server.url("/site1/"), &[]).body).unwrap();
    assert!(
        page.contains("src=\"20250601_040000.png?start=0&amp;end=30.000\""),
        "{page}"
    );
}
