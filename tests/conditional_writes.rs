//! `Store::put_if` against a real S3 server that enforces preconditions (moto): the
//! primitive the manifest's compare-and-swap and the claims of object-store targets
//! stand on. One test in its own binary, since it sets the process's `AWS_*`
//! environment, which the store reads.

mod common;

use bytes::Bytes;
use zarr_wavfs::store::{Address, Expect, Store, StoreOptions};

#[test]
fn conditional_writes_succeed_once_and_refuse_a_stale_version() {
    let Some(moto) = common::servers::Moto::start() else {
        return;
    };
    moto.create_bucket("lab");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            // SAFETY: the only test of this binary; no other thread reads the environment.
            unsafe { std::env::remove_var(k) };
        }
    }
    for (k, v) in moto.env() {
        // SAFETY: as above.
        unsafe { std::env::set_var(k, v) };
    }
    let store = Store::open(
        &Address::parse("s3://lab/cas").unwrap(),
        &StoreOptions::default(),
    )
    .unwrap();
    let put = |v: &'static str, e: &Expect| store.put_if("k", Bytes::from(v), e).unwrap();
    assert!(put("1", &Expect::Absent), "the first create");
    assert!(!put("2", &Expect::Absent), "a second create must fail");
    let v1 = store.get("k").unwrap().unwrap();
    assert_eq!(&v1.bytes[..], b"1");
    let v1 = v1.version.expect("S3 gives an ETag");
    assert!(
        put("3", &Expect::Version(v1.clone())),
        "an update of the version read"
    );
    assert!(
        !put("4", &Expect::Version(v1)),
        "an update of a stale version must fail"
    );
    assert_eq!(&store.get("k").unwrap().unwrap().bytes[..], b"3");
}
