//! The test servers of tests/common/servers.rs themselves, driven with curl: s3s-fs
//! takes a signed PUT, answers a ranged GET, and comes back on its port after a kill;
//! nginx answers byte ranges and suffix ranges with 206.
//!
//! Needs s3s-fs, nginx and curl (scripts/setup.sh installs them).

mod common;

use std::path::Path;
use std::process::Command;

use common::servers::{Nginx, S3Server};

/// Runs curl with `args` plus `url`; returns the HTTP status (0 when there was no
/// response) and the body.
fn curl(args: &[&str], url: &str) -> (u16, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    let o = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-o"])
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl (scripts/setup.sh installs it)");
    let status = String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (status, std::fs::read(&body).unwrap_or_default())
}

/// curl with SigV4 signing with `s3`'s credentials. s3s-fs insists on the
/// x-amz-content-sha256 header, which curl 7.88 (Debian 12) does not add by itself.
fn s3_curl(s3: &S3Server, args: &[&str], url: &str) -> (u16, Vec<u8>) {
    signed_curl(&s3.region, &s3.access_key, &s3.secret_key, args, url)
}

fn signed_curl(region: &str, key: &str, secret: &str, args: &[&str], url: &str) -> (u16, Vec<u8>) {
    let sigv4 = format!("aws:amz:{region}:s3");
    let user = format!("{key}:{secret}");
    let mut all = vec!["--aws-sigv4", &sigv4, "--user", &user];
    all.extend_from_slice(&["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]);
    all.extend_from_slice(args);
    curl(&all, url)
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn s3s_fs_put_ranged_get_kill_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut s3 = S3Server::start(&dir.path().join("data"));
    assert!(
        s3.endpoint.starts_with("http://127.0.0.1:"),
        "{}",
        s3.endpoint
    );
    s3.create_bucket("bkt");

    let data = payload(100_000);
    let src = dir.path().join("src.bin");
    std::fs::write(&src, &data).unwrap();
    let url = s3.url("bkt", "dir/obj.bin");
    let (status, body) = s3_curl(&s3, &["-T", src.to_str().unwrap()], &url);
    assert_eq!(
        status,
        200,
        "PUT: {}\n{}",
        String::from_utf8_lossy(&body),
        s3.log()
    );
    // an object is a plain file under the bucket's directory
    assert_eq!(
        std::fs::read(s3.data_dir.join("bkt/dir/obj.bin")).unwrap(),
        data
    );

    let (status, body) = s3_curl(&s3, &["-r", "1000-1999"], &url);
    assert_eq!(status, 206, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, &data[1000..2000]);
    let (status, body) = s3_curl(&s3, &["-r", "-10"], &url);
    assert_eq!(status, 206);
    assert_eq!(body, &data[data.len() - 10..]);

    // unsigned and wrongly signed requests are refused
    assert_eq!(curl(&[], &url).0, 403);
    let wrong = signed_curl(&s3.region, &s3.access_key, "wrong-secret", &[], &url);
    assert_eq!(wrong.0, 403);

    let endpoint = s3.endpoint.clone();
    s3.kill();
    assert_eq!(s3_curl(&s3, &[], &url).0, 0, "answered after kill");
    s3.restart();
    assert_eq!(s3.endpoint, endpoint);
    let (status, body) = s3_curl(&s3, &[], &url);
    assert_eq!(status, 200, "after restart: {}", s3.log());
    assert_eq!(body, data);
    // twice in a row, connections of the last run still in TIME_WAIT
    s3.restart();
    assert_eq!(s3_curl(&s3, &["-r", "0-0"], &url), (206, vec![data[0]]));
    assert!(s3.log().contains("running at http://127.0.0.1:"));
}

#[test]
fn nginx_serves_ranges() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("sub")).unwrap();
    std::fs::write(root.path().join("sub/f.bin"), b"0123456789").unwrap();
    let nginx = Nginx::start(root.path());
    let url = nginx.file_url("sub/f.bin");

    assert_eq!(curl(&["-r", "2-5"], &url), (206, b"2345".to_vec()));
    assert_eq!(
        curl(&["-H", "Range: bytes=2-5"], &url),
        (206, b"2345".to_vec())
    );
    assert_eq!(curl(&["-r", "-3"], &url), (206, b"789".to_vec()));
    assert_eq!(curl(&["-r", "8-100"], &url), (206, b"89".to_vec()));
    assert_eq!(curl(&[], &url), (200, b"0123456789".to_vec()));
    assert_eq!(curl(&["-r", "20-30"], &url).0, 416);
    assert_eq!(curl(&[], &nginx.file_url("missing")).0, 404);
    // no directory listings
    assert_eq!(curl(&[], &nginx.file_url("sub/")).0, 403);

    let log = nginx.access_log();
    assert_eq!(log.lines().count(), 8, "{log}");
    assert_eq!(
        log.matches("\"GET /sub/f.bin HTTP/1.1\" 206 ").count(),
        4,
        "{log}"
    );
    assert!(Path::new(&nginx.root).join("sub/f.bin").is_file());
}
