//! The lossless codecs (FLAC, PCM) lose nothing: every test input's samples come back
//! bit for bit through `extract` and through a real mount, in the input's own bit depth,
//! and any byte range of the served file equals the same slice of the whole file.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use common::mount::{Mount, fuse_available};
use common::{run, stderr};
use proptest::prelude::*;
use zarr_wavfs::archive::Archive;
use zarr_wavfs::engine::Engine;
use zarr_wavfs::wav_file::{WavFile, served_format};

/// The lossless codecs under test.
const CODECS: [&str; 2] = ["flac", "pcm"];

/// (name, rate, channels, bits, float, frames): every shape the issue lists, with
/// lengths that are not a multiple of any chunk or block size.
const SHAPES: [(&str, u32, u16, u16, bool, u64); 9] = [
    ("m16_8k", 8_000, 1, 16, false, 8_000 * 7 + 3),
    ("s16_44k", 44_100, 2, 16, false, 44_100 * 5 + 11),
    ("s24_44k", 44_100, 2, 24, false, 44_100 * 4 + 1),
    ("c6_24_48k", 48_000, 6, 24, false, 48_000 * 2 + 7),
    ("c8_16_48k", 48_000, 8, 16, false, 48_000 + 5),
    ("bat16_384k", 384_000, 1, 16, false, 384_000 * 3 + 9),
    ("bat24_384k", 384_000, 1, 24, false, 384_000 * 2 + 1),
    ("one_frame", 48_000, 2, 16, false, 1),
    ("f32_48k", 48_000, 2, 32, true, 48_000 * 3 + 2),
];

struct Fixture {
    dir: PathBuf,
    arch: PathBuf,
}

/// Every shape imported with every lossless codec it fits (FLAC holds integers only),
/// in another process, into folders named after the codecs.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let arch = dir.join("arch");
        for (name, rate, ch, bits, float, frames) in SHAPES {
            common::write_wav(
                &dir.join(format!("{name}.wav")),
                rate,
                ch,
                bits,
                float,
                frames,
            );
        }
        for codec in CODECS {
            let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
                vec![&"import", &arch, &"--codec", &codec, &"--into", &codec];
            let inputs: Vec<PathBuf> = SHAPES
                .iter()
                .filter(|s| codec != "flac" || !s.4)
                .map(|s| dir.join(format!("{}.wav", s.0)))
                .collect();
            for p in &inputs {
                args.push(p);
            }
            let o = run(&args);
            assert!(o.status.success(), "import --codec {codec}: {}", stderr(&o));
        }
        Fixture { dir, arch }
    })
}

fn recordings() -> Vec<(&'static str, &'static str)> {
    CODECS
        .iter()
        .flat_map(|&c| {
            SHAPES
                .iter()
                .filter(move |s| c != "flac" || !s.4)
                .map(move |s| (c, s.0))
        })
        .collect()
}

/// The bytes of a WAV file's `data` chunk (RIFF or RF64), found by walking its chunks.
fn data_chunk(wav: &[u8]) -> &[u8] {
    assert!(wav.len() >= 12 && (&wav[..4] == b"RIFF" || &wav[..4] == b"RF64"));
    let mut at = 12;
    let mut ds64_data = None;
    while at + 8 <= wav.len() {
        let id = &wav[at..at + 4];
        let size = u32::from_le_bytes(wav[at + 4..at + 8].try_into().unwrap()) as usize;
        if id == b"ds64" {
            ds64_data = Some(u64::from_le_bytes(
                wav[at + 16..at + 24].try_into().unwrap(),
            ));
        }
        if id == b"data" {
            let len = match (size, ds64_data) {
                (0xFFFF_FFFF, Some(n)) => n as usize,
                _ => size,
            };
            return &wav[at + 8..at + 8 + len];
        }
        at += 8 + size + size % 2;
    }
    panic!("no data chunk");
}

/// `fmt ` fields: (format tag, channels, rate, bits per sample).
fn fmt_of(wav: &[u8]) -> (u16, u16, u32, u16) {
    let at = wav.windows(4).position(|w| w == b"fmt ").unwrap() + 8;
    let u16_at = |i: usize| u16::from_le_bytes([wav[at + i], wav[at + i + 1]]);
    (
        u16_at(0),
        u16_at(2),
        u32::from_le_bytes(wav[at + 4..at + 8].try_into().unwrap()),
        u16_at(14),
    )
}

fn extract(f: &Fixture, rec: &str) -> Vec<u8> {
    // a name of its own per call: tests run in parallel and may extract the same one
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = f.dir.join(format!("{}.{n}.out.wav", rec.replace('/', "_")));
    let o = run(&[&"extract", &f.arch, &rec, &"-o", &out]);
    assert!(o.status.success(), "extract {rec}: {}", stderr(&o));
    let bytes = std::fs::read(&out).unwrap();
    std::fs::remove_file(out).unwrap();
    bytes
}

#[test]
fn extract_gives_back_every_sample_in_the_source_bit_depth() {
    let f = fixture();
    for (codec, name) in recordings() {
        let src = std::fs::read(f.dir.join(format!("{name}.wav"))).unwrap();
        let got = extract(f, &format!("{codec}/{name}"));
        let (s, g) = (fmt_of(&src), fmt_of(&got));
        assert_eq!((s.1, s.2, s.3), (g.1, g.2, g.3), "{codec}/{name}: shape");
        assert!(
            data_chunk(&got) == data_chunk(&src),
            "{codec}/{name}: samples differ"
        );
    }
}

#[test]
fn the_mount_serves_the_same_bytes_as_extract() {
    if !fuse_available() {
        return;
    }
    let f = fixture();
    let m = Mount::start(&f.arch, &f.dir, "mnt", &[]);
    for (codec, name) in recordings() {
        let rec = format!("{codec}/{name}");
        let served = std::fs::read(m.path(&format!("{rec}.wav"))).unwrap();
        let src = std::fs::read(f.dir.join(format!("{name}.wav"))).unwrap();
        assert!(
            served == extract(f, &rec),
            "{rec}: mount differs from extract"
        );
        assert!(
            data_chunk(&served) == data_chunk(&src),
            "{rec}: samples differ"
        );
    }
}

#[test]
fn ls_and_info_show_codec_and_compression() {
    let f = fixture();
    let o = run(&[&"ls", &f.arch]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ls = common::stdout(&o);
    for codec in CODECS {
        let line = ls
            .lines()
            .find(|l| l.contains("s24_44k.wav") && l.contains(codec))
            .unwrap_or_else(|| panic!("no {codec} line for s24_44k in {ls}"));
        assert!(line.contains("int24") && line.contains("stored"), "{line}");
    }
    let o = run(&[&"info", &f.arch, &"pcm/f32_48k"]);
    let info = common::stdout(&o);
    assert!(info.contains("codec:                pcm"), "{info}");
    assert!(info.contains("sample format:        float32"), "{info}");
}

/// Reads through the library's `WavFile`, the reader under both extract and the mount.
fn wav_file(f: &Fixture, rec: &str) -> WavFile {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    let engine = ENGINE.get_or_init(|| Engine::new(8 << 20));
    let archive = Archive::open(&f.arch).unwrap();
    let r = engine.open(&archive, rec).unwrap();
    let format = served_format(None, r.meta());
    WavFile::whole(r, format, None).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any byte range of any lossless recording equals the same slice of the whole file.
    #[test]
    fn any_byte_range_equals_the_slice_of_the_whole_file(
        which in 0usize..64,
        at in 0.0f64..1.0,
        len in 1u64..300_000,
    ) {
        let f = fixture();
        let recs = recordings();
        let (codec, name) = recs[which % recs.len()];
        let rec = format!("{codec}/{name}");
        let whole = whole_file(f, &rec);
        let file = wav_file(f, &rec);
        let offset = (at * (whole.len() as f64 + 100.0)) as u64;
        let mut got = Vec::new();
        file.read_at(offset, len, &mut got).unwrap();
        let a = (offset as usize).min(whole.len());
        let b = (offset + len).min(whole.len() as u64) as usize;
        prop_assert!(got == whole[a..b], "{} at {}+{}", rec, offset, len);
    }
}

/// The whole served file, once per recording.
fn whole_file(f: &Fixture, rec: &str) -> Vec<u8> {
    static CACHE: OnceLock<std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>> =
        OnceLock::new();
    let mut c = CACHE.get_or_init(Default::default).lock().unwrap();
    c.entry(rec.to_string())
        .or_insert_with(|| extract(f, rec))
        .clone()
}

/// zarr-python reads a PCM recording's `samples` array directly and gets the source's
/// numbers (as soundfile reads them from the source WAV).
#[test]
fn zarr_python_reads_pcm_samples_as_the_source_holds_them() {
    let f = fixture();
    if !common::python_has("zarr, soundfile, numpy") {
        return;
    }
    let script = r#"
import sys, zarr, numpy as np, soundfile as sf
arch, dir = sys.argv[1], sys.argv[2]
g = zarr.open_group(arch, mode="r")
for spec in sys.argv[3:]:
    name, bits, is_float = spec.split(":")
    a = g[f"pcm/{name}/samples"]
    got = a[:]
    if is_float == "1":
        want, _ = sf.read(f"{dir}/{name}.wav", dtype="float32", always_2d=True)
    else:
        raw, _ = sf.read(f"{dir}/{name}.wav", dtype="int32", always_2d=True)
        want = raw >> (32 - int(bits))
    assert got.shape == want.shape, (name, got.shape, want.shape)
    assert np.array_equal(got, want), name
    print(name, a.dtype, a.shape)
"#;
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", script]).arg(&f.arch).arg(&f.dir);
    for (name, _, _, bits, float, _) in SHAPES {
        cmd.arg(format!("{name}:{bits}:{}", u8::from(float)));
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().count(),
        SHAPES.len()
    );
}

/// A FLAC input is stored byte for byte (only indexed) by default, and serves the samples
/// the reference decoder (`flac -d`) gives.
#[test]
fn a_flac_input_is_copied_byte_for_byte_and_serves_its_samples() {
    let f = fixture();
    let dir = f.dir.join("flac_copy");
    std::fs::create_dir_all(&dir).unwrap();
    let flac_file = dir.join("in.flac");
    let o = std::process::Command::new("flac")
        .args(["-s", "-f", "-5", "-o"])
        .arg(&flac_file)
        .arg(f.dir.join("s24_44k.wav"))
        .output()
        .expect("the flac tool (scripts/setup.sh installs it)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let arch = dir.join("arch");
    let o = run(&[&"import", &arch, &flac_file]);
    assert!(o.status.success(), "{}", stderr(&o));
    let archive = Archive::open(&arch).unwrap();
    let rec = archive.recording("in").unwrap();
    assert_eq!(rec.meta().codec, "flac");
    let stored = zarr_wavfs::archive::StreamBytes::read(&rec, 0..rec.meta().stream_bytes).unwrap();
    assert!(
        stored == std::fs::read(&flac_file).unwrap(),
        "stream differs from the input file"
    );
    let o = run(&[&"extract", &arch, &"in", &"-o", &dir.join("out.wav")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = std::process::Command::new("flac")
        .args(["-s", "-d", "-f", "-o"])
        .arg(dir.join("ref.wav"))
        .arg(&flac_file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (got, want) = (
        std::fs::read(dir.join("out.wav")).unwrap(),
        std::fs::read(dir.join("ref.wav")).unwrap(),
    );
    assert!(
        data_chunk(&got) == data_chunk(&want),
        "samples differ from flac -d"
    );
}

/// A damaged FLAC frame: `verify` names the frame; through the mount, reads of the span
/// holding it fail with EIO while the rest of the file (and other files) read fine.
#[test]
fn a_corrupt_flac_frame_gives_eio_for_its_span_only() {
    let f = fixture();
    let dir = f.dir.join("flac_damage");
    std::fs::create_dir_all(&dir).unwrap();
    let arch = dir.join("arch");
    let src = f.dir.join("s16_44k.wav");
    let o = run(&[&"import", &arch, &src, &f.dir.join("m16_8k.wav")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let archive = Archive::open(&arch).unwrap();
    let rec = archive.recording("s16_44k").unwrap();
    let rows = rec.read_index_rows().unwrap();
    // flip a byte in the middle of frame 20 (stream chunk 0: streams here are < 1 MiB)
    let frame = rows[20];
    let chunk = arch.join("s16_44k/stream/c/0");
    let mut bytes = std::fs::read(&chunk).unwrap();
    let at = (frame[0] + frame[1] / 2) as usize;
    bytes[at] ^= 0x10;
    std::fs::write(&chunk, bytes).unwrap();

    let o = run(&[&"verify", &arch]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("frame 20") || common::stdout(&o).contains("frame 20"),
        "verify does not name frame 20: {} {}",
        stderr(&o),
        common::stdout(&o)
    );

    if !fuse_available() {
        return;
    }
    let m = Mount::start(&arch, &dir, "mnt", &[]);
    let file = std::fs::File::open(m.path("s16_44k.wav")).unwrap();
    use std::os::unix::fs::FileExt;
    let header = 44u64;
    let mut buf = vec![0u8; 4096];
    // the damaged frame's samples
    let bad = header + frame[2] as u64 * 4;
    let e = file.read_at(&mut buf, bad).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    // the first and last samples, in other spans, read fine and equal the source
    let src_bytes = std::fs::read(&src).unwrap();
    let src_data = data_chunk(&src_bytes);
    file.read_exact_at(&mut buf, header).unwrap();
    assert!(buf == src_data[..4096]);
    let len = std::fs::metadata(m.path("s16_44k.wav")).unwrap().len();
    file.read_exact_at(&mut buf, len - 4096).unwrap();
    assert!(buf == src_data[src_data.len() - 4096..]);
    // and the other recording is whole
    let other = std::fs::read(m.path("m16_8k.wav")).unwrap();
    let other_src = std::fs::read(f.dir.join("m16_8k.wav")).unwrap();
    assert!(data_chunk(&other) == data_chunk(&other_src));
    assert!(
        m.log().contains("s16_44k"),
        "the damage is not logged with its path: {}",
        m.log()
    );
}

/// A recording whose WAV data exceeds 4 GiB (8 channels × 24 bits × 384 kHz × 470 s of
/// silence with a tone in the last second, made cheaply as FLAC) is served as RF64 with
/// its exact size, and its last second reads correctly through the mount, with soundfile
/// (libsndfile) as well as with plain reads.
#[test]
fn a_recording_over_4_gib_is_served_as_rf64() {
    use zarr_wavfs::codec::flac::synth::{silent_flac_with_tail_tone, tail_tone_sample};
    if !fuse_available() {
        return;
    }
    let (ch, bits, rate) = (8u16, 24u16, 384_000u32);
    let frames = u64::from(rate) * 470;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.flac");
    std::fs::write(&input, silent_flac_with_tail_tone(ch, bits, rate, frames)).unwrap();
    let arch = dir.path().join("arch");
    let o = run(&[&"import", &arch, &input]);
    assert!(o.status.success(), "{}", stderr(&o));

    let m = Mount::start(&arch, dir.path(), "mnt", &[]);
    let path = m.path("big.wav");
    let data_len = frames * u64::from(ch) * 3;
    assert!(data_len > u64::from(u32::MAX));
    // RF64 with ds64 and the 40-byte extensible fmt: 104 header bytes
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 104 + data_len);
    let file = std::fs::File::open(&path).unwrap();
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 104];
    file.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(&head[..4], b"RF64");
    assert_eq!(
        u64::from_le_bytes(head[28..36].try_into().unwrap()),
        data_len
    );
    // the last second, read directly and compared sample by sample
    let last = u64::from(rate);
    let mut tail = vec![0u8; (last * u64::from(ch) * 3) as usize];
    let at = 104 + data_len - tail.len() as u64;
    file.read_exact_at(&mut tail, at).unwrap();
    let start = frames - last;
    for (i, s) in tail.chunks_exact(3).enumerate() {
        let (f, c) = (
            start + i as u64 / u64::from(ch),
            (i % usize::from(ch)) as u16,
        );
        let got = i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8;
        assert_eq!(
            got,
            tail_tone_sample(bits, rate, frames, f, c),
            "frame {f} ch {c}"
        );
    }
    assert!(tail.iter().any(|&b| b != 0), "the tone is missing");
    // and libsndfile reads the same last second through its RF64 support
    let script = r#"
import sys, soundfile as sf, numpy as np
path, frames, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
info = sf.info(path)
assert info.frames == frames and info.samplerate == rate and info.channels == 8, info
d, _ = sf.read(path, start=frames - rate, dtype="int32")
print(int(np.abs(d >> 8).max()), d.shape[0])
"#;
    let o = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .arg(frames.to_string())
        .arg(rate.to_string())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let peak: i64 = out.split_whitespace().next().unwrap().parse().unwrap();
    assert!(peak > 1 << 20, "soundfile read no tone: {out}");
    assert!(out.trim().ends_with(&rate.to_string()), "{out}");
}

/// Real clients read the mounted lossless files with their own shape: sox and ffprobe
/// (24-bit, 6 channels, 384 kHz) and soundfile (the samples themselves).
#[test]
fn sox_ffprobe_and_soundfile_read_mounted_lossless_files() {
    if !fuse_available() {
        return;
    }
    let f = fixture();
    let m = Mount::start(&f.arch, &f.dir, "mnt_clients", &[]);
    let tool = |cmd: &str, args: &[&str], file: &std::path::Path| -> String {
        let o = std::process::Command::new(cmd)
            .args(args)
            .arg(file)
            .output()
            .unwrap_or_else(|e| panic!("{cmd}: {e} (scripts/setup.sh installs it)"));
        assert!(
            o.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    for (name, rate, ch, bits, _, frames) in SHAPES.iter().filter(|s| !s.4) {
        let file = m.path(&format!("flac/{name}.wav"));
        assert_eq!(tool("soxi", &["-r"], &file), rate.to_string(), "{name}");
        assert_eq!(tool("soxi", &["-c"], &file), ch.to_string(), "{name}");
        assert_eq!(tool("soxi", &["-b"], &file), bits.to_string(), "{name}");
        assert_eq!(tool("soxi", &["-s"], &file), frames.to_string(), "{name}");
        let probe = tool(
            "ffprobe",
            &[
                "-v",
                "error",
                "-show_entries",
                "stream=sample_rate,channels,bits_per_sample,duration_ts",
                "-of",
                "default=noprint_wrappers=1",
            ],
            &file,
        );
        for want in [
            format!("sample_rate={rate}"),
            format!("channels={ch}"),
            format!("bits_per_sample={bits}"),
            format!("duration_ts={frames}"),
        ] {
            assert!(
                probe.lines().any(|l| l == want),
                "{name}: {want} not in {probe}"
            );
        }
    }
    let script = r#"
import sys, soundfile as sf, numpy as np
for served, source in zip(sys.argv[1::2], sys.argv[2::2]):
    a, ra = sf.read(served, dtype="int32")
    b, rb = sf.read(source, dtype="int32")
    assert ra == rb and np.array_equal(a, b), served
"#;
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", script]);
    for (name, ..) in SHAPES {
        cmd.arg(m.path(&format!("pcm/{name}.wav")))
            .arg(f.dir.join(format!("{name}.wav")));
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Shapes a codec cannot hold are refused before anything is written, with the limit in
/// the message; left to choose, import picks a codec that holds them (PCM).
#[test]
fn unsupported_shapes_are_refused_and_the_default_still_stores_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let arch = d.join("arch");
    common::write_wav(&d.join("c9.wav"), 48_000, 9, 16, false, 4_800);
    common::write_wav(&d.join("i32.wav"), 48_000, 1, 32, false, 4_800);
    common::write_wav(&d.join("f32.wav"), 48_000, 1, 32, true, 4_800);
    for (file, codec, needle) in [
        ("c9.wav", "opus", "9 channels"),
        ("c9.wav", "flac", "FLAC takes 1 to 8"),
        ("f32.wav", "flac", "integer"),
        ("i32.wav", "flac", "32-bit"),
    ] {
        let o = run(&[&"import", &arch, &d.join(file), &"--codec", &codec]);
        common::assert_clean_failure(&o, needle);
    }
    common::assert_no_recordings(&arch);
    let o = run(&[
        &"import",
        &arch,
        &d.join("c9.wav"),
        &d.join("i32.wav"),
        &d.join("f32.wav"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let archive = Archive::open(&arch).unwrap();
    for (rec, format) in [("c9", "int16"), ("i32", "int32"), ("f32", "float32")] {
        let m = archive.recording(rec).unwrap().meta().clone();
        assert_eq!(
            (m.codec.as_str(), m.sample_format.as_str()),
            ("pcm", format)
        );
    }
}

/// Lossy inputs (MP3, Ogg Vorbis) are decoded (symphonia) and kept as float PCM, so the
/// archive holds exactly what the decoder gave; length and shape survive.
#[test]
fn mp3_and_vorbis_inputs_are_decoded_and_kept_as_float_pcm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, args) in [
        ("mp3.mp3", &["-c:a", "libmp3lame", "-b:a", "128k"][..]),
        ("vorbis.ogg", &["-c:a", "libvorbis", "-q:a", "4"][..]),
    ] {
        let o = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi"])
            .args([
                "-i",
                "sine=frequency=440:duration=3:sample_rate=44100",
                "-ac",
                "2",
            ])
            .args(args)
            .arg(d.join(name))
            .output()
            .expect("ffmpeg (scripts/setup.sh installs it)");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let arch = d.join("arch");
    let o = run(&[&"import", &arch, &d.join("mp3.mp3"), &d.join("vorbis.ogg")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let archive = Archive::open(&arch).unwrap();
    for rec in ["mp3", "vorbis"] {
        let m = archive.recording(rec).unwrap().meta().clone();
        assert_eq!(
            (m.codec.as_str(), m.sample_format.as_str()),
            ("pcm", "float32")
        );
        assert_eq!((m.channels, m.original_sample_rate), (2, 44_100));
        // 3 s exactly: MP3 encoder delay and padding are trimmed (LAME tag)
        assert_eq!(m.frames, 132_300, "{rec}");
    }
    let o = run(&[&"extract", &arch, &"mp3", &"-o", &d.join("mp3.wav")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let wav = std::fs::read(d.join("mp3.wav")).unwrap();
    assert_eq!(fmt_of(&wav).3, 32);
}

/// 8-bit samples (stored right-justified as int8 values) are served at full 16-bit
/// scale, as every WAV reader maps 8-bit: sample × 256, through both lossless codecs.
#[test]
fn eight_bit_recordings_are_served_at_full_scale() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = d.join("u8.wav");
    common::write_wav(&src, 8_000, 2, 8, false, 8_000 * 2 + 3);
    let want: Vec<i16> = hound::WavReader::open(&src)
        .unwrap()
        .samples::<i32>()
        .map(|s| (s.unwrap() << 8) as i16)
        .collect();
    assert!(
        want.iter().any(|&s| s.unsigned_abs() > 8_000),
        "test signal too quiet"
    );
    let arch = d.join("arch");
    for codec in ["flac", "pcm"] {
        let o = run(&[
            &"import", &arch, &src, &"--codec", &codec, &"--into", &codec,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = d.join(format!("{codec}.wav"));
        let o = run(&[&"extract", &arch, &format!("{codec}/u8"), &"-o", &out]);
        assert!(o.status.success(), "{}", stderr(&o));
        let got: Vec<i16> = hound::WavReader::open(&out)
            .unwrap()
            .samples::<i16>()
            .map(Result::unwrap)
            .collect();
        assert!(
            got == want,
            "{codec}: 8-bit samples not served at full scale"
        );
    }
}
