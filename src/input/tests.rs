//! Input tests. Files made by sox and ffmpeg are compared with an independent decode (sox's
//! raw output) exactly for integer and float formats, and by correlation for lossy ones;
//! files no tool writes (RF64, bext, AudioMoth, broken sizes, odd chunks ...) are made
//! byte by byte here with known samples. sox and ffmpeg must be installed: a missing tool
//! fails the tests, it does not skip them.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

// ---------------------------------------------------------------------------------------
// Tools and helpers

fn run(tool: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {tool} ({e}): the input tests need sox and ffmpeg installed (apt-get install sox ffmpeg)")
    });
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn sox(args: &[&str]) {
    run("sox", args);
}

fn ffmpeg(args: &[&str]) {
    let mut all = vec!["-v", "error", "-y"];
    all.extend_from_slice(args);
    run("ffmpeg", &all);
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// A distinct signal per channel, so that a channel mix-up shows.
fn synth_args(channels: usize, seconds: &str) -> Vec<String> {
    let kinds = [
        "whitenoise",
        "sine 300",
        "pinknoise",
        "square 440",
        "brownnoise",
        "sawtooth 700",
        "tpdfnoise",
        "triangle 900",
    ];
    let mut a = vec!["synth".to_string(), seconds.to_string()];
    for i in 0..channels {
        a.extend(kinds[i % kinds.len()].split(' ').map(String::from));
    }
    a
}

/// `sox -n` with rate, bits, encoding, channels into `out`, then `extra` (effects).
fn sox_synth(out: &Path, rate: u32, bits: u32, encoding: &str, channels: usize, extra: &[&str]) {
    let head = format!("-n -r {rate} -b {bits} -e {encoding} -c {channels}");
    let mut args: Vec<&str> = head.split(' ').collect();
    args.push(s(out));
    let synth = synth_args(channels, "0.2");
    args.extend(synth.iter().map(String::as_str));
    args.extend_from_slice(extra);
    sox(&args);
}

/// sox's own decode of `path` as raw 32-bit little-endian samples of `encoding`.
fn sox_raw(path: &Path, encoding: &str) -> Vec<[u8; 4]> {
    let mut args = vec!["-D", s(path)];
    args.extend(["-t", "raw", "-e", encoding, "-b", "32", "-L", "-"]);
    run("sox", &args).as_chunks::<4>().0.to_vec()
}

/// sox's own decode as signed 32-bit, shifted down to `bits`.
fn sox_ints(path: &Path, bits: u16) -> Vec<i32> {
    sox_raw(path, "signed-integer")
        .into_iter()
        .map(|c| i32::from_le_bytes(c) >> (32 - bits))
        .collect()
}

fn sox_floats(path: &Path) -> Vec<f32> {
    sox_raw(path, "floating-point")
        .into_iter()
        .map(f32::from_le_bytes)
        .collect()
}

/// Reads a whole input in blocks of at most `max` frames, checking the block contract.
fn read_all_with(path: &Path, max: usize) -> Result<(InputSpec, Block), InputError> {
    let mut r = open(path)?;
    let spec = r.spec().clone();
    let ch = usize::from(spec.channels);
    let mut all = match spec.kind {
        SampleKind::Int { .. } => Block::Int(Vec::new()),
        SampleKind::Float32 => Block::Float(Vec::new()),
    };
    while let Some(b) = r.read(max)? {
        assert!(!b.is_empty() && b.len() % ch == 0 && b.len() <= max.max(1) * ch);
        match (&mut all, b) {
            (Block::Int(a), Block::Int(b)) => a.extend(b),
            (Block::Float(a), Block::Float(b)) => a.extend(b),
            _ => panic!("{}: block kind differs from the spec", path.display()),
        }
    }
    if let Some(frames) = spec.frames {
        assert_eq!(all.len() as u64, frames * ch as u64, "{}", path.display());
    }
    Ok((spec, all))
}

fn read_all(path: &Path) -> (InputSpec, Block) {
    read_all_with(path, 4096).unwrap_or_else(|e| panic!("{e}"))
}

fn ints(b: Block) -> Vec<i32> {
    match b {
        Block::Int(v) => v,
        Block::Float(_) => panic!("expected integer samples"),
    }
}

fn floats(b: Block) -> Vec<f32> {
    match b {
        Block::Float(v) => v,
        Block::Int(_) => panic!("expected float samples"),
    }
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

// ---------------------------------------------------------------------------------------
// Byte-level WAV writer

fn chunk(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = id.to_vec();
    v.extend((body.len() as u32).to_le_bytes());
    v.extend(body);
    if body.len() % 2 == 1 {
        v.push(0);
    }
    v
}

fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = chunks.concat();
    let mut v = b"RIFF".to_vec();
    v.extend((body.len() as u32 + 4).to_le_bytes());
    v.extend(b"WAVE");
    v.extend(body);
    v
}

fn fmt_pcm(tag: u16, channels: u16, rate: u32, bits: u16, block_align: u16) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(tag.to_le_bytes());
    v.extend(channels.to_le_bytes());
    v.extend(rate.to_le_bytes());
    v.extend((rate * u32::from(block_align)).to_le_bytes());
    v.extend(block_align.to_le_bytes());
    v.extend(bits.to_le_bytes());
    chunk(b"fmt ", &v)
}

fn fmt_ext(
    channels: u16,
    rate: u32,
    container_bits: u16,
    valid_bits: u16,
    sub_tag: u16,
) -> Vec<u8> {
    let block_align = channels * container_bits / 8;
    let mut v = fmt_pcm(0xFFFE, channels, rate, container_bits, block_align)[8..].to_vec();
    v.extend(22u16.to_le_bytes());
    v.extend(valid_bits.to_le_bytes());
    v.extend(0u32.to_le_bytes());
    v.extend(sub_tag.to_le_bytes());
    v.extend([0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71]);
    chunk(b"fmt ", &v)
}

/// Deterministic samples spanning the whole range of `bits`.
fn noise(n: usize, bits: u16, seed: u64) -> Vec<i32> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 32) as u32 as i32) >> (32 - bits)
        })
        .collect()
}

/// Samples left-justified in `container` bytes, little-endian; 1-byte containers unsigned.
fn pcm(samples: &[i32], bits: u16, container: usize) -> Vec<u8> {
    let shift = container * 8 - usize::from(bits);
    samples
        .iter()
        .flat_map(|&v| {
            let v = v << shift;
            if container == 1 {
                vec![(v + 128) as u8]
            } else {
                v.to_le_bytes()[..container].to_vec()
            }
        })
        .collect()
}

fn bext(date: &str, time: &str) -> Vec<u8> {
    let mut v = vec![0u8; 602];
    v[320..320 + date.len()].copy_from_slice(date.as_bytes());
    v[330..330 + time.len()].copy_from_slice(time.as_bytes());
    chunk(b"bext", &v)
}

fn info_comment(text: &str) -> Vec<u8> {
    let mut body = b"INFO".to_vec();
    body.extend(chunk(b"IART", b"AudioMoth 24F319055FDF2D6A\0"));
    let mut t = text.as_bytes().to_vec();
    t.push(0);
    body.extend(chunk(b"ICMT", &t));
    chunk(b"LIST", &body)
}

/// An RF64 (or BW64) file: ds64 first, data size 0xFFFFFFFF in the data header.
fn rf64(
    magic: &[u8; 4],
    chunks: &[Vec<u8>],
    data: &[u8],
    data_size: u64,
    sample_count: u64,
    table: &[([u8; 4], u64)],
) -> Vec<u8> {
    let before: Vec<u8> = chunks.concat();
    let ds64_len = 8 + 28 + 12 * table.len() as u64;
    let total = 4 + ds64_len + before.len() as u64 + 8 + data_size + data_size % 2;
    let mut ds64 = Vec::new();
    ds64.extend(total.to_le_bytes());
    ds64.extend(data_size.to_le_bytes());
    ds64.extend(sample_count.to_le_bytes());
    ds64.extend((table.len() as u32).to_le_bytes());
    for (id, size) in table {
        ds64.extend(id);
        ds64.extend(size.to_le_bytes());
    }
    let mut v = magic.to_vec();
    v.extend(u32::MAX.to_le_bytes());
    v.extend(b"WAVE");
    v.extend(chunk(b"ds64", &ds64));
    v.extend(before);
    v.extend(b"data");
    v.extend(u32::MAX.to_le_bytes());
    v.extend(data);
    v
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write test file");
    p
}

// ---------------------------------------------------------------------------------------
// WAV written by tools, against sox's decode

#[test]
fn tool_written_wav_matches_sox_exactly() {
    let dir = temp();
    // (rate, bits, encoding, channels)
    let cases: &[(u32, u32, &str, usize)] = &[
        (44_100, 16, "signed-integer", 2),
        (8_000, 24, "signed-integer", 1),
        (48_000, 32, "signed-integer", 6),
        (96_000, 16, "signed-integer", 8),
        (8_000, 8, "unsigned-integer", 1),
        (384_000, 24, "signed-integer", 2),
        (384_000, 32, "floating-point", 2),
        (44_100, 32, "floating-point", 1),
    ];
    for &(rate, bits, enc, ch) in cases {
        let p = dir.path().join(format!("{rate}_{bits}_{enc}_{ch}.wav"));
        sox_synth(&p, rate, bits, enc, ch, &[]);
        let (spec, block) = read_all(&p);
        assert_eq!(
            (spec.sample_rate, spec.channels),
            (rate, ch as u16),
            "{}",
            p.display()
        );
        assert_eq!(spec.container, "wav");
        assert!(!spec.lossy);
        if enc == "floating-point" {
            assert_eq!(spec.kind, SampleKind::Float32);
            assert_eq!(floats(block), sox_floats(&p), "{}", p.display());
        } else {
            assert_eq!(spec.kind, SampleKind::Int { bits: bits as u16 });
            let got = ints(block);
            assert_eq!(got.len(), (rate as usize / 5) * ch);
            assert_eq!(got, sox_ints(&p, bits as u16), "{}", p.display());
        }
    }
}

#[test]
fn block_sizes_do_not_change_the_samples() {
    let dir = temp();
    let p = dir.path().join("b.wav");
    sox_synth(&p, 8_000, 24, "signed-integer", 3, &[]);
    let whole = ints(read_all_with(&p, 1 << 20).unwrap().1);
    for max in [0, 1, 7, 4096] {
        assert_eq!(
            ints(read_all_with(&p, max).unwrap().1),
            whole,
            "max_frames {max}"
        );
    }
}

#[test]
fn wave64_and_float64_and_ffmpeg_wav() {
    let dir = temp();
    let w64 = dir.path().join("a.w64");
    sox_synth(&w64, 44_100, 24, "signed-integer", 2, &[]);
    let (spec, block) = read_all(&w64);
    assert_eq!(spec.container, "w64");
    assert_eq!(ints(block), sox_ints(&w64, 24));

    let f64wav = dir.path().join("f64.wav");
    sox_synth(&f64wav, 48_000, 64, "floating-point", 2, &["vol", "0.5"]);
    let (spec, block) = read_all(&f64wav);
    assert_eq!(spec.kind, SampleKind::Float32);
    let (got, want) = (floats(block), sox_floats(&f64wav));
    assert_eq!(got.len(), want.len());
    assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-6));

    // ffmpeg puts a LIST chunk before data.
    let src = dir.path().join("src.wav");
    sox_synth(&src, 22_050, 16, "signed-integer", 2, &[]);
    let ff = dir.path().join("ff.wav");
    ffmpeg(&["-i", s(&src), "-c:a", "pcm_s16le", s(&ff)]);
    assert_eq!(ints(read_all(&ff).1), sox_ints(&src, 16));
}

#[test]
fn streamed_wav_reads_to_the_end() {
    let dir = temp();
    let src = dir.path().join("src.wav");
    sox_synth(&src, 16_000, 16, "signed-integer", 2, &[]);
    let want = sox_ints(&src, 16);
    // ffmpeg writing to a pipe leaves data and RIFF sizes at 0xFFFFFFFF; sox leaves a large
    // guess (0x7FFFF000).
    let ff = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            s(&src),
            "-c:a",
            "pcm_s16le",
            "-f",
            "wav",
            "-",
        ],
    );
    let sx = run("sox", &[s(&src), "-t", "wav", "-"]);
    for (name, bytes) in [("ff.wav", ff), ("sox.wav", sx)] {
        let p = write(dir.path(), name, &bytes);
        let (spec, block) = read_all(&p);
        assert_eq!(spec.frames, Some(3200), "{name}");
        assert_eq!(ints(block), want, "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// WAV written byte by byte

#[test]
fn chunk_order_padding_and_metadata() {
    let dir = temp();
    let x = noise(2 * 101, 16, 1);
    let data = pcm(&x, 16, 2);
    // An odd chunk before fmt, fmt and a LIST after data.
    let bytes = riff(&[
        chunk(b"junk", b"odd"),
        chunk(b"data", &data),
        fmt_pcm(1, 2, 8_000, 16, 4),
        info_comment(
            "Recorded at 05:00:00 01/06/2025 (UTC+1) by AudioMoth 24F319055FDF2D6A at medium gain while battery was greater than 4.9V and temperature was 21.3C.",
        ),
    ]);
    let p = write(dir.path(), "order.wav", &bytes);
    let (spec, block) = read_all(&p);
    assert_eq!(spec.start_time.as_deref(), Some("2025-06-01T04:00:00Z"));
    assert_eq!(ints(block), x);
    // Padding is not kept; the LIST after the data is, byte for byte.
    assert_eq!(spec.chunks.len(), 1);
    assert_eq!(&spec.chunks[0].id.0, b"LIST");
    assert_eq!(
        spec.chunks[0].body,
        bytes[bytes.len() - spec.chunks[0].body.len()..]
    );
    assert!(spec.dropped.is_empty());

    // A chunk over the limit is named, not kept; one running past the end too.
    let mut bytes = riff(&[
        fmt_pcm(1, 2, 8_000, 16, 4),
        chunk(b"id3 ", &vec![1; crate::chunks::MAX_CHUNK_BYTES + 1]),
        chunk(b"data", &data),
        b"iXML\xff\xff\0\0<x/>".to_vec(),
    ]);
    let n = bytes.len() as u32 - 8;
    bytes[4..8].copy_from_slice(&n.to_le_bytes());
    let p = write(dir.path(), "dropped.wav", &bytes);
    let (spec, _) = read_all(&p);
    assert!(spec.chunks.is_empty());
    assert_eq!(spec.dropped.len(), 2, "{:?}", spec.dropped);
    assert!(spec.dropped[0].starts_with("chunk \"id3 \" of 65537 bytes"));
    assert!(spec.dropped[1].contains("\"iXML\" claiming 65535 bytes"));

    // A writer that left out the pad byte of an odd chunk.
    let mut unpadded = b"junk\x03\0\0\0odd".to_vec();
    unpadded.extend(fmt_pcm(1, 2, 8_000, 16, 4));
    unpadded.extend(chunk(b"data", &data));
    let mut bytes = b"RIFF\0\0\0\0WAVE".to_vec();
    bytes.extend(unpadded);
    let p = write(dir.path(), "unpadded.wav", &bytes);
    assert_eq!(ints(read_all(&p).1), x);

    // 8-bit mono, odd data size, padded, then a chunk after it.
    let y = noise(33, 8, 2);
    let bytes = riff(&[
        fmt_pcm(1, 1, 8_000, 8, 1),
        chunk(b"data", &pcm(&y, 8, 1)),
        chunk(
            b"guan",
            b"GUANO|Version:1.0\nTimestamp:2025-06-01T04:00:00Z\n",
        ),
    ]);
    let p = write(dir.path(), "u8.wav", &bytes);
    let (spec, block) = read_all(&p);
    assert_eq!(spec.kind, SampleKind::Int { bits: 8 });
    assert_eq!(spec.start_time.as_deref(), Some("2025-06-01T04:00:00Z"));
    assert_eq!(ints(block), y);
}

#[test]
fn bext_wins_over_audiomoth_and_takes_any_separator() {
    let dir = temp();
    let data = chunk(b"data", &pcm(&noise(4, 16, 3), 16, 2));
    let am = info_comment("Recorded at 04:00:00 01/06/2025 (UTC) by AudioMoth");
    for (date, time) in [
        ("2024-02-29", "23:59:59"),
        ("2024:02:29", "23-59-59"),
        ("2024/02/29", "23.59.59"),
    ] {
        let p = write(
            dir.path(),
            "bext.wav",
            &riff(&[
                bext(date, time),
                fmt_pcm(1, 1, 8_000, 16, 2),
                am.clone(),
                data.clone(),
            ]),
        );
        assert_eq!(
            read_all(&p).0.start_time.as_deref(),
            Some("2024-02-29T23:59:59Z")
        );
    }
    // An invalid bext date falls through to the AudioMoth comment.
    let p = write(
        dir.path(),
        "bad.wav",
        &riff(&[
            bext("2025-02-30", "04:00:00"),
            fmt_pcm(1, 1, 8_000, 16, 2),
            am,
            data.clone(),
        ]),
    );
    assert_eq!(
        read_all(&p).0.start_time.as_deref(),
        Some("2025-06-01T04:00:00Z")
    );
    // Nothing valid: None, not an error.
    let p = write(
        dir.path(),
        "none.wav",
        &riff(&[
            bext("2025-13-01", "04:00:00"),
            fmt_pcm(1, 1, 8_000, 16, 2),
            data,
        ]),
    );
    assert_eq!(read_all(&p).0.start_time, None);
}

#[test]
fn extensible_valid_bits_are_shifted_down() {
    let dir = temp();
    // 24 valid bits in 32-bit containers, 20 in 24, and plain PCM 12 in 16.
    for (container, valid, ext) in [
        (32u16, 24u16, true),
        (24, 20, true),
        (16, 12, false),
        (32, 32, true),
    ] {
        let x = noise(3 * 50, valid, u64::from(valid));
        let bytes_per = usize::from(container / 8);
        let mut data = pcm(&x, valid, bytes_per);
        // Junk in the pad bits must not leak into the samples.
        if valid < container {
            for frame in data.chunks_mut(bytes_per) {
                frame[0] |= 1;
            }
        }
        let fmt = if ext {
            fmt_ext(3, 48_000, container, valid, 1)
        } else {
            fmt_pcm(1, 3, 48_000, valid, 3 * container / 8)
        };
        let p = write(dir.path(), "ext.wav", &riff(&[fmt, chunk(b"data", &data)]));
        let (spec, block) = read_all(&p);
        assert_eq!(spec.kind, SampleKind::Int { bits: valid });
        assert_eq!(ints(block), x, "{valid} in {container}");
    }
    let f = noise(8, 24, 9)
        .iter()
        .map(|&v| v as f32 / 8e6)
        .collect::<Vec<_>>();
    let data: Vec<u8> = f.iter().flat_map(|v| v.to_le_bytes()).collect();
    let p = write(
        dir.path(),
        "f.wav",
        &riff(&[fmt_ext(2, 8_000, 32, 32, 3), chunk(b"data", &data)]),
    );
    assert_eq!(floats(read_all(&p).1), f);
}

#[test]
fn rf64_and_bw64_with_ds64() {
    let dir = temp();
    let x = noise(2 * 300, 24, 4);
    let data = pcm(&x, 24, 3);
    // A chunk whose size only the ds64 table knows, before bext.
    let mut big = b"big1".to_vec();
    big.extend(u32::MAX.to_le_bytes());
    big.extend([7; 10]);
    for magic in [b"RF64", b"BW64"] {
        let bytes = rf64(
            magic,
            &[
                fmt_pcm(1, 2, 96_000, 24, 6),
                big.clone(),
                bext("2025-06-01", "04:00:00"),
            ],
            &data,
            data.len() as u64,
            300,
            &[(*b"big1", 10)],
        );
        let p = write(dir.path(), "a.rf64", &bytes);
        let (spec, block) = read_all(&p);
        assert_eq!(
            spec.container,
            if magic == b"RF64" { "rf64" } else { "bw64" }
        );
        assert_eq!(spec.frames, Some(300));
        assert_eq!(spec.start_time.as_deref(), Some("2025-06-01T04:00:00Z"));
        assert_eq!(ints(block), x);
    }
}

#[test]
fn rf64_beyond_4_gib_sparse() {
    let dir = temp();
    let data_size: u64 = 5 << 30;
    let bytes = rf64(
        b"RF64",
        &[fmt_pcm(1, 2, 48_000, 16, 4)],
        &[],
        data_size,
        data_size / 4,
        &[],
    );
    let p = write(dir.path(), "big.rf64", &bytes);
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(bytes.len() as u64 + data_size).unwrap();
    let mut r = open(&p).unwrap();
    assert_eq!(r.spec().frames, Some(data_size / 4));
    assert_eq!(r.read(1000).unwrap(), Some(Block::Int(vec![0; 2000])));
}

#[test]
fn broken_sizes() {
    let dir = temp();
    let x = noise(2 * 100, 16, 5);
    let data = pcm(&x, 16, 2);
    let fmt = fmt_pcm(1, 2, 8_000, 16, 4);
    let with_size = |size: u32, payload: &[u8]| {
        let mut b = riff(std::slice::from_ref(&fmt));
        b.extend(b"data");
        b.extend(size.to_le_bytes());
        b.extend(payload);
        b
    };
    // 0xFFFFFFFF and a streaming writer's size guess: read to the end, whole frames only.
    let mut partial = data.clone();
    partial.extend([1, 2, 3]);
    for size in [u32::MAX, 0x7FFF_F000] {
        let p = write(dir.path(), "s.wav", &with_size(size, &partial));
        let (spec, block) = read_all(&p);
        assert_eq!(spec.frames, Some(100));
        assert_eq!(ints(block), x);
    }
    // Any other size past the end: a copy cut short, refused with both counts.
    let p = write(dir.path(), "cut.wav", &with_size(1_000_000, &partial));
    let e = open(&p).err().expect("a truncated copy must not open");
    assert!(
        e.to_string()
            .contains("promises 250000 frames, file holds 100"),
        "{e}"
    );
    // Size 0 in a header never finalised (RIFF size 0 too).
    let mut b = with_size(0, &data);
    b[4..8].copy_from_slice(&0u32.to_le_bytes());
    let p = write(dir.path(), "zero.wav", &b);
    assert_eq!(ints(read_all(&p).1), x);
    // A data chunk ending mid-frame.
    let p = write(dir.path(), "mid.wav", &with_size(398, &data[..398]));
    let e = read_all_with(&p, 64).unwrap_err();
    assert!(e.to_string().contains("ends mid-frame"), "{e}");
    assert!(e.to_string().contains("mid.wav"), "{e}");
    // The file shrinks after opening: truncated, with both counts.
    let p = write(dir.path(), "t.wav", &with_size(data.len() as u32, &data));
    let mut r = open(&p).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(std::fs::metadata(&p).unwrap().len() - 41)
        .unwrap();
    let mut err = None;
    while err.is_none() {
        match r.read(16) {
            Ok(Some(_)) => {}
            Ok(None) => panic!("truncation not noticed"),
            Err(e) => err = Some(e),
        }
    }
    let e = err.unwrap();
    assert!(
        matches!(
            e,
            InputError::Truncated {
                promised: 100,
                held: 89,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("truncated: header promises 100 frames, file holds 89")
    );
}

#[test]
fn refusals_are_clear() {
    let dir = temp();
    let alaw = dir.path().join("alaw.wav");
    sox_synth(&alaw, 8_000, 8, "a-law", 1, &[]);
    let e = open(&alaw).err().unwrap();
    assert!(e.to_string().contains("A-law"), "{e}");

    let data = chunk(b"data", &[0; 8]);
    let cases: &[(&str, Vec<u8>, &str)] = &[
        (
            "nofmt.wav",
            riff(std::slice::from_ref(&data)),
            "no fmt chunk",
        ),
        (
            "nodata.wav",
            riff(&[fmt_pcm(1, 1, 8_000, 16, 2)]),
            "no data chunk",
        ),
        (
            "zero.wav",
            riff(&[fmt_pcm(1, 0, 8_000, 16, 2), data.clone()]),
            "0 channels",
        ),
        (
            "align.wav",
            riff(&[fmt_pcm(1, 2, 8_000, 16, 3), data.clone()]),
            "block align",
        ),
        (
            "bits.wav",
            riff(&[fmt_pcm(1, 1, 8_000, 24, 4), data.clone()]),
            "24 bits",
        ),
        (
            "f16.wav",
            riff(&[fmt_pcm(3, 1, 8_000, 16, 2), data.clone()]),
            "float",
        ),
        ("text.wav", b"hello, world".to_vec(), "starts with \"hell\""),
        ("empty.wav", Vec::new(), "empty"),
    ];
    for (name, bytes, want) in cases {
        let p = write(dir.path(), name, bytes);
        let e = open(&p).err().unwrap_or_else(|| panic!("{name} opened"));
        let msg = e.to_string();
        assert!(msg.contains(want) && msg.contains(name), "{name}: {msg}");
    }
}

// ---------------------------------------------------------------------------------------
// FLAC

#[test]
fn flac_matches_sox_exactly() {
    let dir = temp();
    let cases: &[(u32, u32, usize)] = &[
        (44_100, 16, 2),
        (48_000, 24, 6),
        (8_000, 16, 1),
        (96_000, 16, 8),
        (384_000, 24, 2),
        (8_000, 8, 1),
    ];
    for &(rate, bits, ch) in cases {
        let p = dir.path().join(format!("{rate}_{bits}_{ch}.flac"));
        sox_synth(&p, rate, bits, "signed-integer", ch, &[]);
        let (spec, block) = read_all(&p);
        assert_eq!(spec.container, "flac");
        assert_eq!((spec.sample_rate, spec.channels), (rate, ch as u16));
        assert_eq!(spec.kind, SampleKind::Int { bits: bits as u16 });
        assert_eq!(spec.frames, Some(u64::from(rate) / 5));
        assert_eq!(ints(block), sox_ints(&p, bits as u16), "{}", p.display());
    }
}

/// The 64 bits of STREAMINFO holding rate, channels, depth and total samples.
const STREAMINFO_PACKED: std::ops::Range<usize> = 18..26;

fn patch_streaminfo(bytes: &mut [u8], f: impl Fn(u64) -> u64) {
    let v = u64::from_be_bytes(bytes[STREAMINFO_PACKED].try_into().unwrap());
    bytes[STREAMINFO_PACKED].copy_from_slice(&f(v).to_be_bytes());
}

#[test]
fn flac_header_promises_and_tags() {
    let dir = temp();
    let src = dir.path().join("src.flac");
    sox_synth(&src, 16_000, 16, "signed-integer", 2, &[]);
    let want = sox_ints(&src, 16);
    let bytes = std::fs::read(&src).unwrap();
    let total_mask = (1u64 << 36) - 1;

    let mut unknown = bytes.clone();
    patch_streaminfo(&mut unknown, |v| v & !total_mask);
    let p = write(dir.path(), "unknown.flac", &unknown);
    let (spec, block) = read_all(&p);
    assert_eq!(spec.frames, None);
    assert_eq!(ints(block), want);

    let mut more = bytes.clone();
    patch_streaminfo(&mut more, |v| v + 100);
    let p = write(dir.path(), "more.flac", &more);
    let e = read_all_with(&p, 4096).unwrap_err();
    assert!(
        matches!(
            e,
            InputError::Truncated {
                promised: 3300,
                held: 3200,
                ..
            }
        ),
        "{e}"
    );

    let mut fewer = bytes.clone();
    patch_streaminfo(&mut fewer, |v| v - 100);
    let p = write(dir.path(), "fewer.flac", &fewer);
    let e = read_all_with(&p, 4096).unwrap_err();
    assert!(e.to_string().contains("more than the 3100"), "{e}");

    let cut = write(dir.path(), "cut.flac", &bytes[..bytes.len() * 2 / 3]);
    let e = read_all_with(&cut, 4096).unwrap_err();
    assert!(
        matches!(e, InputError::Truncated { promised: 3200, .. }),
        "{e}"
    );

    let mut deep = bytes.clone();
    patch_streaminfo(&mut deep, |v| v | (31 << 36));
    let p = write(dir.path(), "deep.flac", &deep);
    let e = open(&p).err().unwrap();
    assert!(e.to_string().contains("32-bit samples"), "{e}");

    // An ID3v2 tag before "fLaC".
    let mut id3 = b"ID3\x04\0\0\0\0\0\x0a".to_vec();
    id3.extend([0; 10]);
    id3.extend(&bytes);
    let p = write(dir.path(), "id3.flac", &id3);
    assert_eq!(ints(read_all(&p).1), want);

    let tagged = dir.path().join("tagged.flac");
    ffmpeg(&[
        "-i",
        s(&src),
        "-metadata",
        "comment=Recorded at 23:00:00 31/05/2025 (UTC-5) by AudioMoth 24F319055FDF2D6A",
        s(&tagged),
    ]);
    assert_eq!(
        read_all(&tagged).0.start_time.as_deref(),
        Some("2025-06-01T04:00:00Z")
    );
    let dated = dir.path().join("dated.flac");
    ffmpeg(&[
        "-i",
        s(&src),
        "-metadata",
        "date=2025-06-01T06:00:00+02:00",
        s(&dated),
    ]);
    assert_eq!(
        read_all(&dated).0.start_time.as_deref(),
        Some("2025-06-01T04:00:00Z")
    );
}

// ---------------------------------------------------------------------------------------
// Lossy and symphonia formats

/// Pearson correlation of `a` with `b` shifted by `lag` frames, per channel, worst channel.
fn correlation(a: &[f32], b: &[f32], channels: usize, lag: usize) -> f64 {
    (0..channels)
        .map(|c| {
            let x: Vec<f64> = a
                .iter()
                .skip(lag * channels + c)
                .step_by(channels)
                .map(|&v| f64::from(v))
                .collect();
            let y: Vec<f64> = b
                .iter()
                .skip(c)
                .step_by(channels)
                .map(|&v| f64::from(v))
                .collect();
            let n = x.len().min(y.len()) as f64;
            let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
            let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
            for (p, q) in x.iter().zip(&y) {
                sxy += (p - mx) * (q - my);
                sxx += (p - mx) * (p - mx);
                syy += (q - my) * (q - my);
            }
            sxy / (sxx * syy).sqrt()
        })
        .fold(f64::INFINITY, f64::min)
}

/// The encoder delay left in `decoded`: the lag up to 2048 frames that best aligns a
/// 2048-frame window of the first channel with the source.
fn best_lag(decoded: &[f32], source: &[f32], channels: usize) -> usize {
    let window = |v: &[f32], from: usize| -> Vec<f32> {
        v.iter()
            .skip(from * channels)
            .step_by(channels)
            .take(2048)
            .copied()
            .collect()
    };
    let src = window(source, 4096);
    (0..=2048)
        .max_by(|&a, &b| {
            let dot = |l: usize| -> f32 {
                window(decoded, 4096 + l)
                    .iter()
                    .zip(&src)
                    .map(|(x, y)| x * y)
                    .sum()
            };
            dot(a).total_cmp(&dot(b))
        })
        .unwrap_or(0)
}

#[test]
fn lossy_inputs_decode_close_to_the_source() {
    let dir = temp();
    // (source rate, channels, ffmpeg codec args, extension, container, exact frame count)
    let cases = [
        (44_100, 2, "-c:a libmp3lame -b:a 192k", "mp3", "mp3", true),
        (8_000, 1, "-c:a libmp3lame", "mp3", "mp3", true),
        (48_000, 2, "-c:a libvorbis", "ogg", "vorbis", true),
        (44_100, 2, "-c:a aac -b:a 192k", "m4a", "aac", false),
        (48_000, 1, "-c:a aac", "aac", "aac", false),
    ];
    for (rate, ch, codec, ext, container, exact) in cases {
        let src = dir.path().join(format!("src{rate}_{ch}.wav"));
        let head = format!("-n -r {rate} -b 16 -c {ch}");
        let mut args: Vec<&str> = head.split(' ').collect();
        args.push(s(&src));
        // A rising and a falling sweep: unlike a steady tone, they align at one lag only.
        args.extend(["synth", "1", "sine", "200-2000", "sine", "3000-300"]);
        args.truncate(args.len() - 2 * (2 - ch));
        sox(&args);
        let want: Vec<f32> = sox_floats(&src);
        let out = dir.path().join(format!("out{rate}_{ch}.{ext}"));
        let mut ff = vec!["-i", s(&src)];
        ff.extend(codec.split(' '));
        ff.push(s(&out));
        ffmpeg(&ff);
        let (spec, block) = read_all(&out);
        assert_eq!(
            (spec.container, spec.lossy, spec.kind),
            (container, true, SampleKind::Float32)
        );
        assert_eq!(
            (spec.sample_rate, spec.channels, spec.frames),
            (rate, ch as u16, None)
        );
        let got = floats(block);
        let frames = got.len() / ch;
        let source_frames = rate as usize;
        if exact {
            assert_eq!(frames, source_frames, "{}", out.display());
        } else {
            assert!(
                (source_frames..=source_frames + 2048).contains(&frames),
                "{}: {frames}",
                out.display()
            );
        }
        let lag = if exact { 0 } else { best_lag(&got, &want, ch) };
        let corr = correlation(&got, &want, ch, lag);
        assert!(
            corr > 0.99,
            "{}: correlation {corr} at lag {lag}",
            out.display()
        );
    }
}

#[test]
fn alac_is_lossless_and_tags_give_start_times() {
    let dir = temp();
    let src = dir.path().join("src.wav");
    sox_synth(&src, 44_100, 24, "signed-integer", 2, &[]);
    let alac = dir.path().join("a.m4a");
    ffmpeg(&["-i", s(&src), "-c:a", "alac", s(&alac)]);
    let (spec, block) = read_all(&alac);
    assert_eq!(
        (spec.container, spec.lossy, spec.kind),
        ("alac", false, SampleKind::Int { bits: 24 })
    );
    assert_eq!(ints(block), sox_ints(&src, 24));

    let comment =
        "comment=Recorded at 05:30:00 01/06/2025 (UTC+1:30) by AudioMoth 24F319055FDF2D6A";
    let date = "date=2025-06-01 04:00:00";
    for (name, codec) in [("t.mp3", "libmp3lame"), ("t.ogg", "libvorbis")] {
        for tag in [comment, date] {
            let out = dir.path().join(name);
            ffmpeg(&["-i", s(&src), "-c:a", codec, "-metadata", tag, s(&out)]);
            assert_eq!(
                read_all(&out).0.start_time.as_deref(),
                Some("2025-06-01T04:00:00Z"),
                "{name} {tag}"
            );
        }
    }
}

#[test]
fn ogg_opus_is_routed_not_decoded() {
    let dir = temp();
    let src = dir.path().join("src.wav");
    sox_synth(&src, 48_000, 16, "signed-integer", 1, &[]);
    let opus = dir.path().join("a.ogg");
    ffmpeg(&["-i", s(&src), "-c:a", "libopus", s(&opus)]);
    assert!(matches!(open(&opus), Err(InputError::OggOpus { .. })));
}

#[test]
fn audio_names() {
    for name in [
        "a.wav", "b.WAV", "c.rf64", "d.flac", "e.mp3", "f.ogg", "g.opus", "h.m4a", "i.bwf", "j.w64",
    ] {
        assert!(is_audio_name(Path::new(name)), "{name}");
    }
    for name in ["a.txt", "wav", "b.mp4", "c.wav.part", ".flac"] {
        assert!(!is_audio_name(Path::new(name)), "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// Damaged files: errors, never panics

/// Small valid files of every kind, made once.
fn seeds() -> &'static Vec<(String, Vec<u8>)> {
    static SEEDS: std::sync::OnceLock<Vec<(String, Vec<u8>)>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(|| {
        let dir = temp();
        let src = dir.path().join("src.wav");
        sox_synth(&src, 16_000, 16, "signed-integer", 2, &[]);
        let mut v = vec![(
            "hand.wav".to_string(),
            riff(&[
                bext("2025-06-01", "04:00:00"),
                fmt_ext(2, 8_000, 32, 24, 1),
                info_comment("Recorded at 04:00:00 01/06/2025 (UTC) by AudioMoth"),
                chunk(b"data", &pcm(&noise(64, 24, 7), 24, 4)),
            ]),
        )];
        v.push((
            "a.rf64".into(),
            rf64(
                b"RF64",
                &[fmt_pcm(1, 1, 8_000, 16, 2)],
                &[1; 64],
                64,
                32,
                &[],
            ),
        ));
        let tools: &[(&str, &[&str])] = &[
            ("a.w64", &[]),
            ("a.flac", &[]),
            ("a.mp3", &["-c:a", "libmp3lame"]),
            ("a.ogg", &["-c:a", "libvorbis"]),
            ("a.m4a", &["-c:a", "aac"]),
            ("alac.m4a", &["-c:a", "alac"]),
        ];
        for (name, codec) in tools {
            let out = dir.path().join(name);
            let mut args = vec!["-i", s(&src)];
            args.extend_from_slice(codec);
            args.push(s(&out));
            ffmpeg(&args);
            v.push((name.to_string(), std::fs::read(&out).unwrap()));
        }
        v
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]
    /// Bytes overwritten in the headers (first 600 bytes) and anywhere, and a possible cut.
    #[test]
    fn damaged_files_give_errors_not_panics(
        which in 0usize..8,
        header_flips in proptest::collection::vec((0usize..600, proptest::num::u8::ANY), 0..6),
        body_flips in proptest::collection::vec((proptest::num::usize::ANY, proptest::num::u8::ANY), 0..6),
        cut in proptest::option::of(0usize..20_000),
    ) {
        let seeds = seeds();
        let (name, bytes) = &seeds[which % seeds.len()];
        let mut b = bytes.clone();
        let len = b.len();
        for (at, v) in header_flips.into_iter().chain(body_flips.into_iter().map(|(at, v)| (at % len, v))) {
            if let Some(x) = b.get_mut(at) {
                *x = v;
            }
        }
        if let Some(c) = cut {
            b.truncate(c);
        }
        let dir = temp();
        let p = write(dir.path(), name, &b);
        if let Ok(mut r) = open(&p) {
            let mut samples = 0usize;
            while let Ok(Some(block)) = r.read(1024) {
                samples += block.len();
                if samples > 50_000_000 {
                    break;
                }
            }
        }
    }
}
