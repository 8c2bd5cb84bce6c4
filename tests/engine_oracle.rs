//! The engine's central property: any (start, count) read equals the same slice of one
//! sequential decode of the whole stream, for every recording shape and every codec
//! (for the lossless ones the oracle is the source WAV itself).

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use zarr_wavfs::archive::Archive;
use zarr_wavfs::codec::opus::OpusSource;
use zarr_wavfs::codec::{Samples, SpanSource};
use zarr_wavfs::engine::Engine;
use zarr_wavfs::import::{Codec, ImportOptions, Job, import_one};

struct Fixture {
    archive: Archive,
    /// (recording path, oracle samples, channels)
    recs: Vec<(String, Vec<i16>, u16)>,
}

/// Recordings of different lengths, rates and channel counts, with a 2 s checkpoint
/// spacing so each has many spans. Imported once in another process (the CLI), so every
/// checkpoint read here was written by a different process.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        // The last three are multistream (mapping family 1): 5.1, 7.1 and 3 channels.
        let shapes: [(&str, u32, u16, u64); 7] = [
            ("mono48", 48_000, 1, 48_000 * 23 + 17),
            ("stereo44", 44_100, 2, 44_100 * 13 + 5),
            ("mono16", 16_000, 1, 16_000 * 9 + 3),
            ("bat250", 250_000, 1, 250_000 * 3 + 1),
            ("surround51", 48_000, 6, 48_000 * 9 + 11),
            ("octo16", 16_000, 8, 16_000 * 7 + 3),
            ("three44", 44_100, 3, 44_100 * 5 + 1),
        ];
        let mut inputs: Vec<PathBuf> = Vec::new();
        for (name, rate, ch, frames) in shapes {
            let p = dir.join(format!("{name}.wav"));
            common::write_wav(&p, rate, ch, 16, false, frames);
            inputs.push(p);
        }
        let arch = dir.join("arch");
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
            &"import",
            &arch,
            &"--codec",
            &"opus",
            &"--checkpoint-interval",
            &"2",
        ];
        for p in &inputs {
            args.push(p);
        }
        let o = common::run(&args);
        assert!(o.status.success(), "import failed: {}", common::stderr(&o));
        for codec in ["flac", "pcm"] {
            let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
                vec![&"import", &arch, &"--codec", &codec, &"--into", &codec];
            for p in &inputs {
                args.push(p);
            }
            let o = common::run(&args);
            assert!(o.status.success(), "import failed: {}", common::stderr(&o));
        }
        let archive = Archive::open(&arch).unwrap();
        let mut recs: Vec<(String, Vec<i16>, u16)> = shapes
            .iter()
            .map(|(name, _, ch, _)| {
                (
                    name.to_string(),
                    common::sequential_decode(&archive, name),
                    *ch,
                )
            })
            .collect();
        for codec in ["flac", "pcm"] {
            for ((name, _, ch, _), input) in shapes.iter().zip(&inputs) {
                let source: Vec<i16> = hound::WavReader::open(input)
                    .unwrap()
                    .samples::<i16>()
                    .map(Result::unwrap)
                    .collect();
                recs.push((format!("{codec}/{name}"), source, *ch));
            }
        }
        Fixture { archive, recs }
    })
}

fn check_range(
    engine: &Engine,
    archive: &Archive,
    rec: &str,
    oracle: &[i16],
    ch: u16,
    start: u64,
    count: u64,
) {
    let r = engine.open(archive, rec).unwrap();
    assert!(
        r.span_count() > 1 || r.frames() < 100_000,
        "{rec}: expected several spans"
    );
    let ch = usize::from(ch);
    let mut buf = vec![0i16; count as usize * ch];
    let n = r.read_frames(start, &mut buf).unwrap();
    let frames = oracle.len() / ch;
    let expect_n = (start.min(frames as u64)..(start + count).min(frames as u64)).count();
    assert_eq!(n, expect_n, "{rec}: frames read at {start}+{count}");
    let s = start as usize * ch;
    assert_eq!(
        &buf[..n * ch],
        &oracle[s..s + n * ch],
        "{rec}: samples differ at {start}+{count}"
    );
}

#[test]
fn edge_ranges_equal_the_sequential_decode() {
    let f = fixture();
    for (rec, oracle, ch) in &f.recs {
        // a fresh engine per recording: every read below starts cold
        let engine = Engine::new(64 << 20);
        let r = engine.open(&f.archive, rec).unwrap();
        let frames = r.frames();
        assert_eq!(frames as usize, oracle.len() / usize::from(*ch));
        let mut cases = vec![
            (0, 1),
            (frames - 1, 1),
            (0, frames),
            (frames - 1, 10),
            (frames, 5),
        ];
        // around every span boundary: the last frame before, the first after, and across
        for j in 1..r.span_count() {
            let start = (0..frames).find(|&x| r.span_of(x) == j).unwrap_or(frames);
            cases.extend([(start - 1, 1), (start, 1), (start - 3, 7)]);
        }
        for (s, c) in cases {
            check_range(&engine, &f.archive, rec, oracle, *ch, s, c);
        }
    }
}

#[test]
fn whole_recordings_read_in_one_call_and_in_reverse_span_order() {
    let f = fixture();
    for (rec, oracle, ch) in &f.recs {
        let engine = Engine::new(1 << 30);
        let r = engine.open(&f.archive, rec).unwrap();
        let ch = usize::from(*ch);
        // reverse order: every span is decoded from its own checkpoint, never carried over
        let mut all = vec![0i16; oracle.len()];
        for j in (0..r.span_count()).rev() {
            let start = (0..r.frames()).find(|&x| r.span_of(x) == j).unwrap();
            let end = (start..r.frames())
                .find(|&x| r.span_of(x) != j)
                .unwrap_or(r.frames());
            let s = start as usize * ch;
            r.read_frames(start, &mut all[s..end as usize * ch])
                .unwrap();
        }
        assert!(
            all == *oracle,
            "{rec}: reverse-order read differs from the sequential decode"
        );
    }
}

#[test]
fn every_stored_state_restores_bit_exactly_in_this_process() {
    // The fixture's states were written by the import process. Each span decoded from
    // its own stored state must equal the oracle, and no import of a state may fail (a
    // failure would switch the source to rebuilding states in memory).
    let f = fixture();
    for (rec, oracle, ch) in &f.recs {
        let store = f.archive.recording(rec).unwrap();
        if store.meta().codec != "opus" {
            continue;
        }
        let src = OpusSource::open(std::sync::Arc::new(store)).unwrap();
        assert!(
            src.uses_stored_checkpoints(),
            "{rec}: stored states not used"
        );
        let ch = usize::from(*ch);
        for j in (0..src.span_starts().len()).rev() {
            let r = src.span_range(j);
            let Samples::I16(s) = src.decode_span(j, Samples::I16(Vec::new())).unwrap() else {
                panic!("{rec}: Opus decodes to i16")
            };
            assert!(
                s == oracle[r.start as usize * ch..r.end as usize * ch],
                "{rec}: span {j} differs"
            );
        }
        assert!(
            src.uses_stored_checkpoints(),
            "{rec}: a stored state was refused"
        );
    }
}

fn small_cache_engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    // 1 MiB: spans are evicted constantly, so most reads are cold
    E.get_or_init(|| Engine::new(1 << 20))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]
    #[test]
    fn any_range_equals_the_sequential_decode(which in 0usize..1024, start_frac in 0.0f64..1.0, count in prop_oneof![1u64..50, 1u64..200_000]) {
        let f = fixture();
        let (rec, oracle, ch) = &f.recs[which % f.recs.len()];
        let frames = (oracle.len() / usize::from(*ch)) as u64;
        let start = (start_frac * frames as f64) as u64;
        check_range(small_cache_engine(), &f.archive, rec, oracle, *ch, start, count);
    }
}

#[test]
fn concurrent_readers_get_identical_bytes() {
    let f = fixture();
    let (rec, oracle, ch) = &f.recs[0];
    let engine = std::sync::Arc::new(Engine::new(4 << 20));
    let r = engine.open(&f.archive, rec).unwrap();
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let r = r.clone();
            s.spawn(move || {
                let ch = usize::from(*ch);
                let frames = (oracle.len() / ch) as u64;
                let mut seed = t * 7919 + 1;
                for _ in 0..40 {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let start = (seed >> 33) % frames;
                    let count = 1 + (seed >> 13) % 30_000;
                    let mut buf = vec![0i16; count as usize * ch];
                    let n = r.read_frames(start, &mut buf).unwrap();
                    let s = start as usize * ch;
                    assert_eq!(&buf[..n * ch], &oracle[s..s + n * ch]);
                }
            });
        }
    });
}

#[test]
fn f32_reads_are_the_i16_samples_scaled() {
    let f = fixture();
    let (rec, oracle, _) = &f.recs[1];
    let engine = Engine::new(8 << 20);
    let r = engine.open(&f.archive, rec).unwrap();
    let mut buf = vec![0f32; 2 * 5000];
    let n = r.read_frames_f32(40_000, &mut buf).unwrap();
    assert_eq!(n, 5000);
    for (i, v) in buf.iter().enumerate() {
        assert_eq!(*v, f32::from(oracle[80_000 + i]) / 32768.0);
    }
}

#[test]
fn ultrasonic_and_44k1_keep_frame_count_and_show_their_rate() {
    let f = fixture();
    let bat = f.archive.recording("bat250").unwrap();
    assert_eq!(bat.meta().frames, 250_000 * 3 + 1);
    assert_eq!(bat.meta().original_sample_rate, 250_000);
    assert_eq!(bat.meta().sample_rate, 48_000);
    let cd = f.archive.recording("stereo44").unwrap();
    assert_eq!(cd.meta().frames, 44_100 * 13 + 5);
    assert_eq!(cd.meta().original_sample_rate, 44_100);
    let m16 = f.archive.recording("mono16").unwrap();
    assert_eq!(
        (m16.meta().sample_rate, m16.meta().original_sample_rate),
        (16_000, 16_000)
    );
}

/// Imports in this process with the library API (used by the damage tests).
pub fn import_lib(dir: &Path, name: &str, secs: u64) -> Archive {
    let wav = dir.join(format!("{name}.wav"));
    common::write_wav(&wav, 48_000, 1, 16, false, 48_000 * secs);
    let archive = Archive::create_or_open(dir.join("arch")).unwrap();
    let opts = ImportOptions {
        checkpoint_interval_secs: 2.0,
        codec: Some(Codec::Opus),
        ..ImportOptions::default()
    };
    import_one(
        &archive,
        &Job {
            input: wav,
            target: name.into(),
        },
        &opts,
    )
    .unwrap();
    archive
}

#[test]
fn library_import_matches_the_oracle_too() {
    let dir = tempfile::tempdir().unwrap();
    let archive = import_lib(dir.path(), "lib", 7);
    let oracle = common::sequential_decode(&archive, "lib");
    let engine = Engine::new(16 << 20);
    let r = engine.open(&archive, "lib").unwrap();
    let mut all = vec![0i16; oracle.len()];
    r.read_frames(0, &mut all).unwrap();
    assert!(all == oracle);
}
