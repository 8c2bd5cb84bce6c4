//! The fuzz targets' corpora, replayed on stable (CI has no budget for nightly fuzz
//! builds): every file of `fuzz/corpus/TARGET/` and `fuzz/regressions/TARGET/` goes
//! through `zarr_wavfs::fuzzing::TARGET`, whose property must hold. A directory named
//! after no target, or an empty one, fails the test, as does a target without a corpus.
//!
//! `write_project_seeds` (ignored; `fuzz/make_corpus.sh` runs it) writes the seeds that
//! come from the project's own writers: recording metadata and a manifest of an archive
//! made by importing small inputs.

use std::path::{Path, PathBuf};

use zarr_wavfs::fuzzing::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The regular files in `dir`, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn every_corpus_and_regression_input_keeps_its_property() {
    let root = fuzz_dir();
    for (name, _) in TARGETS {
        assert!(
            root.join("corpus").join(name).is_dir(),
            "target {name} has no fuzz/corpus/{name}/"
        );
    }
    let mut failed = Vec::new();
    let mut replayed = 0;
    for kind in ["corpus", "regressions"] {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join(kind))
            .unwrap_or_else(|e| panic!("fuzz/{kind}: {e}"))
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for dir in dirs {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let Some((_, check)) = TARGETS.iter().find(|(t, _)| *t == name) else {
                panic!("fuzz/{kind}/{name}: no zarr_wavfs::fuzzing::{name}");
            };
            let inputs = files(&dir);
            assert!(!inputs.is_empty(), "fuzz/{kind}/{name}/ is empty");
            for input in inputs {
                let data = std::fs::read(&input).expect("reading an input");
                let result = std::panic::catch_unwind(|| check(&data));
                if result.is_err() {
                    failed.push(input.display().to_string());
                }
                replayed += 1;
            }
        }
    }
    println!("replayed {replayed} inputs");
    assert!(
        failed.is_empty(),
        "{} of {replayed} inputs break their property (messages above):\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// Writes `fuzz/corpus/recording_meta/project-*.json` and
/// `fuzz/corpus/manifest/project-archive.json` from an archive that imports the inputs
/// in `$ZW_SEED_INPUTS` (a directory; `fuzz/make_corpus.sh` makes it) with every codec.
#[test]
#[ignore = "writes seed files; run by fuzz/make_corpus.sh"]
fn write_project_seeds() {
    use zarr_wavfs::Archive;
    use zarr_wavfs::archive::{ATTR_KEY, Manifest};
    use zarr_wavfs::import::{Codec, ImportOptions, Job, import_one};

    let inputs = PathBuf::from(std::env::var("ZW_SEED_INPUTS").expect("ZW_SEED_INPUTS"));
    let tmp = tempfile::tempdir().unwrap();
    let archive = Archive::create_or_open(tmp.path().join("archive")).unwrap();
    let corpus = fuzz_dir().join("corpus");
    let mut n = 0;
    for input in files(&inputs) {
        let stem = input.file_stem().unwrap().to_string_lossy().into_owned();
        for codec in [Codec::Flac, Codec::Pcm, Codec::Opus] {
            let target = format!("site/{stem}-{codec:?}").to_lowercase();
            let job = Job {
                input: input.clone(),
                target: target.clone(),
            };
            let opts = ImportOptions {
                codec: Some(codec),
                ..ImportOptions::default()
            };
            let Ok(zarr_wavfs::import::Imported { meta, .. }) = import_one(&archive, &job, &opts)
            else {
                continue; // e.g. float samples, which FLAC cannot hold
            };
            let attrs = meta.to_attrs();
            let json = serde_json::to_vec_pretty(&attrs[ATTR_KEY]).unwrap();
            let out = corpus.join(format!("recording_meta/project-{stem}-{codec:?}.json"));
            std::fs::write(out, json).unwrap();
            n += 1;
        }
    }
    assert!(n > 0, "nothing imported from {}", inputs.display());
    let manifest = Manifest::from_entries(&archive.walk().unwrap());
    manifest.write(archive.store()).unwrap();
    let bytes = std::fs::read(
        tmp.path()
            .join("archive")
            .join(zarr_wavfs::archive::manifest::MANIFEST_KEY),
    )
    .unwrap();
    std::fs::write(corpus.join("manifest/project-archive.json"), bytes).unwrap();
}
