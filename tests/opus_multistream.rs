//! Multichannel Opus (3–8 channels, Ogg Opus mapping family 1) end to end through the
//! binary: channel order kept from input to served WAV, opusdec as an independent
//! oracle, opusenc files copied and served, limits, and `verify`/`index`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{assert_clean_failure, run, stderr, stdout};
use zarr_wavfs::archive::{Archive, StreamBytes};

const RATE: u32 = 48_000;
/// One tone per WAV channel position. Position 3 is the LFE of 5.1, 6.1 and 7.1, which
/// libopus's surround encoder codes as LFE (below 400 Hz only), hence its low tone.
const TONES: [f64; 8] = [440.0, 660.0, 880.0, 110.0, 1320.0, 1540.0, 1760.0, 1980.0];

/// Writes `frames` frames with channel `k` a sine of `tones[k]`.
fn write_tones(path: &Path, tones: &[f64], frames: u64) {
    let spec = hound::WavSpec {
        channels: tones.len() as u16,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..frames {
        let t = i as f64 / f64::from(RATE);
        for f in tones {
            let v = 0.3 * (2.0 * std::f64::consts::PI * f * t).sin();
            w.write_sample((v * 32767.0) as i16).unwrap();
        }
    }
    w.finalize().unwrap();
}

fn read_wav(path: &Path) -> (u16, Vec<i16>) {
    let r = hound::WavReader::open(path).unwrap();
    let ch = r.spec().channels;
    (ch, r.into_samples::<i16>().map(Result::unwrap).collect())
}

/// Channel `k` of interleaved `s` with `ch` channels, as f64.
fn channel(s: &[i16], ch: usize, k: usize) -> Vec<f64> {
    s.iter()
        .skip(k)
        .step_by(ch)
        .map(|&v| f64::from(v))
        .collect()
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mean = |x: &[f64]| x.iter().sum::<f64>() / n as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma) * (x - ma);
        bb += (y - mb) * (y - mb);
    }
    ab / (aa * bb).sqrt().max(1e-9)
}

struct Fixture {
    dir: PathBuf,
    arch: PathBuf,
}

/// One archive, imported by the binary: `tones3` … `tones8` (3 s), `lfe6` (a 1 kHz tone
/// in the LFE position) and `opusenc6` (an opusenc-made 5.1 file, copied).
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let mut inputs = Vec::new();
        for ch in 3..=8 {
            let p = dir.join(format!("tones{ch}.wav"));
            write_tones(&p, &TONES[..ch], u64::from(RATE) * 3 + 7);
            inputs.push(p);
        }
        let lfe = dir.join("lfe6.wav");
        write_tones(
            &lfe,
            &[440.0, 660.0, 880.0, 1000.0, 1320.0, 1540.0],
            u64::from(RATE) * 2,
        );
        inputs.push(lfe);
        let src = dir.join("src6.wav");
        write_tones(&src, &TONES[..6], u64::from(RATE) * 4 + 5);
        let opus = dir.join("opusenc6.opus");
        let o = Command::new("opusenc")
            .args(["--quiet", "--bitrate", "256"])
            .arg(&src)
            .arg(&opus)
            .output()
            .expect("opusenc must be installed (scripts/setup.sh installs opus-tools)");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        inputs.push(opus);
        let arch = dir.join("arch");
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
            &"import",
            &arch,
            &"--codec",
            &"opus",
            &"--checkpoint-interval",
            &"1",
        ];
        for p in &inputs {
            args.push(p);
        }
        let o = run(&args);
        assert!(o.status.success(), "import failed: {}", stderr(&o));
        Fixture { dir, arch }
    })
}

/// Extracts a whole recording in another process, which must restore the stored
/// checkpoints (not rebuild them in memory).
fn extract(arch: &Path, rec: &str, out: &Path) -> (u16, Vec<i16>) {
    let o = run(&[&"extract", &arch, &rec, &"-o", &out]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("rebuilding"), "{rec}: {}", stderr(&o));
    read_wav(out)
}

/// Asserts that channel `k` of `out` correlates with channel `k` of `input` and with
/// no other channel.
fn assert_same_order(name: &str, input: &[i16], out: &[i16], ch: usize) {
    // skip the first 20 ms: the codec's onset
    let skip = 960 * ch;
    for k in 0..ch {
        let o = channel(&out[skip..], ch, k);
        for j in 0..ch {
            let c = correlation(&o, &channel(&input[skip..], ch, j));
            if j == k {
                assert!(
                    c > 0.95,
                    "{name}: channel {k} correlates {c:.3} with its input"
                );
            } else {
                assert!(
                    c.abs() < 0.1,
                    "{name}: channel {k} correlates {c:.3} with input {j}"
                );
            }
        }
    }
}

#[test]
fn every_channel_keeps_its_place_from_3_to_8_channels() {
    let f = fixture();
    let archive = Archive::open(&f.arch).unwrap();
    for ch in 3..=8usize {
        let name = format!("tones{ch}");
        let rec = archive.recording(&name).unwrap();
        assert_eq!(usize::from(rec.meta().channels), ch);
        let head = rec.read_opus_head().unwrap();
        assert_eq!(head.mapping.family(), 1, "{name}: surround mapping");
        let (got_ch, out) = extract(&f.arch, &name, &f.dir.join(format!("{name}.out.wav")));
        assert_eq!(usize::from(got_ch), ch);
        let (_, input) = read_wav(&f.dir.join(format!("{name}.wav")));
        assert_eq!(out.len(), input.len(), "{name}: frame count");
        assert_same_order(&name, &input, &out, ch);
        // the served samples are one sequential decode (checkpoints from another process)
        assert!(out == common::sequential_decode(&archive, &name), "{name}");
    }
}

#[test]
fn every_channel_of_6_keeps_its_full_band() {
    // libopus's surround encoder would code WAV channel 3 of 6, 7 and 8 channels (the LFE
    // of the default speaker layouts) as low-frequency effects and drop a 1 kHz tone
    // there, as opusenc does. Ours uses the same layout without that treatment: a
    // microphone in that position keeps its full band.
    let f = fixture();
    let (_, input) = read_wav(&f.dir.join("lfe6.wav"));
    let (_, out) = extract(&f.arch, "lfe6", &f.dir.join("lfe6.out.wav"));
    let rms = |s: &[f64]| (s.iter().map(|v| v * v).sum::<f64>() / s.len() as f64).sqrt();
    for k in 0..6 {
        let ratio = rms(&channel(&out, 6, k)) / rms(&channel(&input, 6, k));
        assert!(
            ratio > 0.9,
            "channel {k} kept only {ratio:.3} of a 1 kHz tone"
        );
    }
}

#[test]
fn opusdec_of_the_stored_stream_equals_the_served_samples() {
    let f = fixture();
    let archive = Archive::open(&f.arch).unwrap();
    for ch in 3..=8usize {
        let name = format!("tones{ch}");
        let rec = archive.recording(&name).unwrap();
        let opus = f.dir.join(format!("{name}.stored.opus"));
        std::fs::write(&opus, rec.read(0..rec.meta().stream_bytes).unwrap()).unwrap();
        // opusdec writes WAV files in WAV channel order (it permutes from Vorbis order)
        let dec = f.dir.join(format!("{name}.opusdec.wav"));
        common::opusdec(&opus, &dec);
        let (dec_ch, theirs) = read_wav(&dec);
        assert_eq!(usize::from(dec_ch), ch);
        let ours = common::sequential_decode(&archive, &name);
        assert!(theirs == ours, "{name}: opusdec differs from our decode");
        if ch == 6 {
            // raw output stays in the stream's Vorbis order: FL FC FR RL RR LFE
            let raw = f.dir.join("tones6.opusdec.raw");
            common::opusdec(&opus, &raw);
            let raw: Vec<i16> = std::fs::read(&raw)
                .unwrap()
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
            let wav_of_vorbis = [0, 2, 1, 4, 5, 3];
            assert_eq!(raw.len(), ours.len());
            for (r, w) in raw.chunks_exact(6).zip(ours.chunks_exact(6)) {
                for (v, &k) in wav_of_vorbis.iter().enumerate() {
                    assert_eq!(r[v], w[k]);
                }
            }
        }
    }
}

#[test]
fn an_opusenc_surround_file_is_copied_byte_for_byte_and_served() {
    let f = fixture();
    let archive = Archive::open(&f.arch).unwrap();
    let rec = archive.recording("opusenc6").unwrap();
    let opus = f.dir.join("opusenc6.opus");
    let stored = rec.read(0..rec.meta().stream_bytes).unwrap();
    assert!(stored == std::fs::read(&opus).unwrap());
    assert_eq!(rec.meta().channels, 6);
    assert_eq!(rec.meta().frames, u64::from(RATE) * 4 + 5);
    let head = rec.read_opus_head().unwrap();
    assert_eq!(
        (
            head.mapping.family(),
            head.mapping.streams(),
            head.mapping.coupled()
        ),
        (1, 4, 2)
    );
    let (_, served) = extract(&f.arch, "opusenc6", &f.dir.join("opusenc6.out.wav"));
    let dec = f.dir.join("opusenc6.opusdec.wav");
    common::opusdec(&opus, &dec);
    assert!(
        served == read_wav(&dec).1,
        "served WAV differs from opusdec's"
    );
    assert!(served == common::sequential_decode(&archive, "opusenc6"));
    let (_, input) = read_wav(&f.dir.join("src6.wav"));
    assert_same_order("opusenc6", &input, &served, 6);
}

#[test]
fn nine_channels_are_refused_with_the_limit_and_the_alternatives() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("nine.wav");
    write_tones(&wav, &[300.0; 9], 4800);
    let arch = dir.path().join("arch");
    let o = run(&[&"import", &arch, &"--codec", &"opus", &wav]);
    assert_clean_failure(&o, "9 channels");
    let err = stderr(&o);
    assert!(
        err.contains("1 to 8") && err.contains("--codec pcm"),
        "{err}"
    );
    // opusenc writes 9 channels with mapping family 255, which has no channel order
    let opus = dir.path().join("nine.opus");
    let o = Command::new("opusenc")
        .arg("--quiet")
        .arg(&wav)
        .arg(&opus)
        .output()
        .unwrap();
    assert!(o.status.success());
    let o = run(&[&"import", &arch, &opus]);
    assert_clean_failure(&o, "family 255");
    // PCM takes them
    let o = run(&[&"import", &arch, &"--codec", &"pcm", &wav]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Copies a directory tree.
fn copy_tree(from: &Path, to: &Path) {
    let o = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(o.status.success());
}

#[test]
fn verify_compares_multistream_states_and_index_rebuilds_them() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let arch = tmp.path().join("arch");
    copy_tree(&f.arch, &arch);
    let o = run(&[&"verify", &arch]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        !stdout(&o).contains("another libopus build"),
        "{}",
        stdout(&o)
    );
    // a state whose bytes differ is named by verify; the audio stays that of the stream
    let oracle = common::sequential_decode(&Archive::open(&arch).unwrap(), "tones6");
    let shard = arch.join("tones6/checkpoints/states/c/0/0");
    let mut b = std::fs::read(&shard).unwrap();
    let i = b.len() / 3;
    b[i] ^= 0x5A;
    std::fs::write(&shard, b).unwrap();
    let o = run(&[&"verify", &arch]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("ERROR: tones6"), "{}", stdout(&o));
    let out = tmp.path().join("o.wav");
    let o = run(&[&"extract", &arch, &"tones6", &"-o", &out]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        read_wav(&out).1 == oracle,
        "a damaged multistream checkpoint changed the audio"
    );
    // A whole extract need not restore every state (a run of spans decodes on through
    // the later checkpoints), so read a little of each span on its own too: each of
    // these restores the state before its span, and the damaged one is refused (its
    // digest) and rebuilt from the stream.
    let frames = oracle.len() as u64 / 6;
    let mut rebuilt = 0;
    for start in [
        RATE / 4,
        RATE + RATE / 4,
        2 * RATE + RATE / 4,
        frames as u32 - 3,
    ] {
        let start = u64::from(start);
        let end = (start + 4800).min(frames);
        let o = run(&[
            &"extract",
            &arch,
            &"tones6",
            &"--start",
            &format!("{start}f"),
            &"--end",
            &format!("{end}f"),
            &"-o",
            &out,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        rebuilt += usize::from(stderr(&o).contains("rebuilding"));
        assert!(
            read_wav(&out).1 == oracle[start as usize * 6..end as usize * 6],
            "frames {start}..{end} changed by a damaged multistream checkpoint"
        );
    }
    assert_eq!(
        rebuilt, 1,
        "exactly one state is damaged, and it must be noticed"
    );
    // `index` rebuilds the states; then verify passes and extract is unchanged
    let o = run(&[&"index", &arch, &"tones6", &"--checkpoint-interval", &"1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[&"verify", &arch]);
    assert!(o.status.success(), "{}", stdout(&o));
    let (_, again) = extract(&arch, "tones6", &tmp.path().join("p.wav"));
    assert!(again == oracle);
    // a damaged OpusHead page (the decoder's layout) is an error, never a guess
    let chunk = arch.join("tones3/stream/c/0");
    let mut b = std::fs::read(&chunk).unwrap();
    b[40] ^= 0x01;
    std::fs::write(&chunk, b).unwrap();
    let o = run(&[
        &"extract",
        &arch,
        &"tones3",
        &"-o",
        &tmp.path().join("q.wav"),
    ]);
    assert_clean_failure(&o, "CRC");
}
