//! Compiles `csrc/opus_state.c` against the libopus sources that `audiopus_sys` builds.
//!
//! The shim needs libopus's *internal* headers (the SILK decoder struct, the multistream
//! decoder's `ChannelLayout` header in `src/opus_private.h`), which the
//! library does not install, so it is compiled from the same source tree `audiopus_sys`
//! uses. `audiopus_sys` is pinned to one exact version in Cargo.toml so the headers and
//! the linked library always agree; the checkpoint fingerprint's self-test catches any
//! disagreement at run time anyway.

use std::env;
use std::path::{Path, PathBuf};

const AUDIOPUS_SYS: &str = "audiopus_sys-0.2.2";

fn opus_source_dir() -> PathBuf {
    if let Ok(dir) = env::var("ZARR_WAVFS_OPUS_SRC") {
        return PathBuf::from(dir);
    }
    let cargo_home = env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env::var("HOME").expect("HOME")).join(".cargo"));
    let registry = cargo_home.join("registry").join("src");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&registry)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join(AUDIOPUS_SYS).join("opus"))
        .filter(|p| p.join("silk").join("structs.h").exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "libopus sources of {AUDIOPUS_SYS} not found under {}; set ZARR_WAVFS_OPUS_SRC",
            registry.display()
        )
    })
}

fn main() {
    let opus = opus_source_dir();
    // libopus's CMake build reports "unknown" as its version outside a git checkout, so
    // the fingerprint also names the exact source package it was built from.
    println!("cargo:rustc-env=ZW_OPUS_SOURCE={AUDIOPUS_SYS}");
    println!("cargo:rerun-if-changed=csrc/opus_state.c");
    println!("cargo:rerun-if-env-changed=ZARR_WAVFS_OPUS_SRC");
    let inc = |p: &str| -> PathBuf { Path::new(&opus).join(p) };
    cc::Build::new()
        .file("csrc/opus_state.c")
        .include(&opus)
        .include(inc("include"))
        .include(inc("celt"))
        .include(inc("silk"))
        .include(inc("src"))
        // the same configuration audiopus_sys's CMake build uses on x86_64/aarch64
        .define("OPUS_BUILD", None)
        .define("USE_ALLOCA", None)
        .define("HAVE_LRINTF", None)
        .define("HAVE_LRINT", None)
        .warnings(false)
        .compile("zw_opus_state");
}
