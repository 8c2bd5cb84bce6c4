//! Release benchmark of the sample engine: storage cost of checkpoints, sequential
//! throughput against a straight libopus decode, and cold and warm random-read latency,
//! for several checkpoint spacings.
//!
//! `cargo bench --bench engine` measures a generated 1-hour recording at spacings 4, 8,
//! 12 and 20 s (a few minutes); `cargo bench --bench engine -- --quick` a 60-s recording
//! at the default spacing (a few seconds), which is also what `cargo test --all-targets`
//! runs (it starts benches without `--bench`), so the benchmark cannot rot. No timing is
//! asserted. Full results are printed as tables and written to
//! `target/bench-engine.json` (quick ones to `target/bench-engine-quick.json`).
//!
//! "Cold" means a fresh `Engine` (empty span cache) and a fresh `Engine::open`; the
//! archive's files are in the OS page cache all the same.

use std::f64::consts::TAU;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde::Serialize;
use zarr_wavfs::archive::ogg::{PacketAssembler, parse_page};
use zarr_wavfs::archive::{Archive, StreamBytes};
use zarr_wavfs::codec::opus::{
    DEFAULT_CHECKPOINT_INTERVAL_SECS, Decoder, OpusError, build_checkpoints, current_fingerprint,
};
use zarr_wavfs::engine::DEFAULT_CACHE_BYTES;
use zarr_wavfs::import::{Codec, ImportOptions, Job, import_one};
use zarr_wavfs::ops::rebuild_checkpoints;
use zarr_wavfs::{Engine, Recording};

const RATE: u32 = 48_000;
const BITRATE: u32 = 64_000;
/// Frames per random read: 4 KiB of mono s16.
const READ_FRAMES: u64 = 2048;
/// Frames per sequential read: 1 MiB of mono s16.
const SEQ_FRAMES: usize = 1 << 19;
const REC: &str = "bench";

struct Config {
    name: &'static str,
    secs: u64,
    spacings: &'static [f64],
    /// Random reads, each cold, then repeated warm.
    reads: usize,
    /// Repetitions of each constructed worst-case read.
    worst_reps: usize,
}

const FULL: Config = Config {
    name: "full",
    secs: 3600,
    spacings: &[4.0, 8.0, 12.0, 20.0],
    reads: 200,
    worst_reps: 21,
};
const QUICK: Config = Config {
    name: "quick",
    secs: 60,
    spacings: &[DEFAULT_CHECKPOINT_INTERVAL_SECS],
    reads: 50,
    worst_reps: 5,
};

/// SplitMix64: a small seeded generator, so every run uses the same audio and offsets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0.0..1.0.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Every 5 s an event, alternately a 1-s exponential sweep from 200 Hz to 16 kHz and a
/// 300-ms 1-kHz tone burst, at -12 dBFS peak with 10-ms fades.
fn event(t: f64) -> f64 {
    let period = (t / 5.0) as u64;
    let u = t - period as f64 * 5.0;
    let (len, cycles) = if period.is_multiple_of(2) {
        let (f0, ratio) = (200.0, 80.0_f64);
        (1.0, f0 / ratio.ln() * (ratio.powf(u) - 1.0))
    } else {
        (0.3, 1000.0 * u)
    };
    if u >= len {
        return 0.0;
    }
    let fade = (u / 0.01).min((len - u) / 0.01).min(1.0);
    0.25 * fade * (TAU * cycles).sin()
}

/// A mono 16-bit WAV: pink noise (Kellet's filter) at about -31 dBFS RMS plus `event`s.
fn write_material(path: &Path, frames: u64) -> anyhow::Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    let mut rng = Rng(0x5EED);
    let mut b = [0.0f64; 3];
    for i in 0..frames {
        let white = 2.0 * rng.unit() - 1.0;
        b[0] = 0.99765 * b[0] + white * 0.099_046;
        b[1] = 0.963 * b[1] + white * 0.296_516_4;
        b[2] = 0.57 * b[2] + white * 1.052_691_3;
        let pink = 0.02 * (b[0] + b[1] + b[2] + white * 0.1848);
        let v = pink + event(i as f64 / f64::from(RATE));
        w.write_sample((v.clamp(-1.0, 1.0) * 32767.0) as i16)?;
    }
    Ok(w.finalize()?)
}

/// The limit: the whole stream read in one piece and decoded straight through by one
/// libopus decoder, as the tests' oracle (`tests/common::sequential_decode`) does it.
fn baseline_decode(archive: &Archive) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let rec = archive.recording(REC)?;
    let m = rec.meta();
    let bytes = rec.read(0..m.stream_bytes)?;
    let mut dec = Decoder::new(m.sample_rate, &rec.read_opus_head()?.mapping)?;
    let (mut asm, mut out, mut pos, mut n) = (PacketAssembler::new(), Vec::new(), 0, 0u64);
    while pos < bytes.len() {
        let page = parse_page(&bytes[pos..], pos as u64)?;
        out.clear();
        asm.push::<OpusError>(&page, |p| {
            // Packets 0 and 1 are the OpusHead and OpusTags headers.
            if n >= 2 {
                dec.decode(p, &mut out)?;
            }
            n += 1;
            Ok(())
        })?;
        pos += page.len;
    }
    Ok(t.elapsed())
}

/// The crate's own sequential decoder (import, `index`, `verify`): `build_checkpoints`
/// with no checkpoints, reading the stream through the index 256 packets at a time.
fn crate_sequential_decode(archive: &Archive) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let rec = archive.recording(REC)?;
    let index = rec.read_index()?;
    let mapping = rec.read_opus_head()?.mapping;
    build_checkpoints(
        &rec,
        &index,
        rec.meta(),
        &mapping,
        &rec.dir(),
        &[],
        |_, _| Ok(()),
    )?;
    Ok(t.elapsed())
}

/// The whole recording through `Recording::read_frames` in 1-MiB reads, cache cold.
fn engine_sequential(archive: &Archive) -> anyhow::Result<Duration> {
    let engine = Engine::new(DEFAULT_CACHE_BYTES);
    let t = Instant::now();
    let rec = engine.open(archive, REC)?;
    let mut buf = vec![0i16; SEQ_FRAMES * usize::from(rec.channels())];
    let mut f = 0;
    while f < rec.frames() {
        f += rec.read_frames(f, &mut buf)? as u64;
    }
    Ok(t.elapsed())
}

fn read_at(rec: &Recording, start: u64) -> anyhow::Result<Duration> {
    let mut buf = vec![0i16; READ_FRAMES as usize * usize::from(rec.channels())];
    let t = Instant::now();
    rec.read_frames(start, &mut buf)?;
    Ok(t.elapsed())
}

/// One read on a fresh engine: (time to open the recording, time of the read).
fn cold_read(archive: &Archive, start: u64) -> anyhow::Result<(Duration, Duration)> {
    let engine = Engine::new(DEFAULT_CACHE_BYTES);
    let t = Instant::now();
    let rec = engine.open(archive, REC)?;
    let opened = t.elapsed();
    Ok((opened, read_at(&rec, start)?))
}

/// The worst cold reads by construction, as frame positions: the end of the longest span
/// that ends at a checkpoint, and the checkpoint between the two adjacent spans longest
/// together. Also checks that the stored checkpoints are the ones the engine restores.
fn worst_positions(archive: &Archive) -> anyhow::Result<(u64, u64)> {
    let rec = archive.recording(REC)?;
    let m = rec.meta();
    let c = rec.read_checkpoints()?.context("no checkpoints stored")?;
    ensure!(
        c.fingerprint == current_fingerprint(&rec.read_opus_head()?.mapping),
        "stored checkpoints would be rebuilt in memory"
    );
    let bounds: Vec<u64> = std::iter::once(0)
        .chain(c.rows.iter().map(|r| r.sample - m.pre_skip_samples()))
        .chain(std::iter::once(m.frames))
        .collect();
    ensure!(bounds.len() >= 4, "fewer than three spans");
    let len = |j: usize| bounds[j + 1] - bounds[j];
    let end = (0..bounds.len() - 2)
        .max_by_key(|&j| len(j))
        .expect("spans");
    let across = (0..bounds.len() - 3)
        .max_by_key(|&j| len(j) + len(j + 1))
        .expect("spans");
    Ok((bounds[end + 1], bounds[across + 1]))
}

/// Value at quantile `q` of `v`, in `unit`s per second (1e3: ms, 1e6: µs).
fn pct(v: &[Duration], q: f64, unit: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort();
    s[((s.len() - 1) as f64 * q).round() as usize].as_secs_f64() * unit
}

#[derive(Serialize)]
struct Timing {
    s: f64,
    x_realtime: f64,
}

impl Timing {
    fn new(d: Duration, secs: f64) -> Self {
        Timing {
            s: d.as_secs_f64(),
            x_realtime: secs / d.as_secs_f64(),
        }
    }
}

/// Everything measured at one checkpoint spacing.
#[derive(Serialize)]
struct Row {
    spacing_s: f64,
    checkpoints: usize,
    /// Time of the `index` rebuild to this spacing (none: as imported).
    rebuild_s: Option<f64>,
    stream_bytes: u64,
    index_bytes: u64,
    checkpoint_bytes: u64,
    /// Index and checkpoints as a percentage of the stream.
    overhead_pct: f64,
    engine_seq: Timing,
    /// Engine sequential time ÷ the libopus baseline's.
    engine_seq_vs_baseline: f64,
    cold_open_p50_ms: f64,
    cold_read_p50_ms: f64,
    cold_read_p99_ms: f64,
    cold_read_max_ms: f64,
    cold_end_of_longest_span_p50_ms: f64,
    cold_across_checkpoint_p50_ms: f64,
    warm_read_p50_us: f64,
    warm_read_p99_us: f64,
}

fn measure_spacing(
    archive: &Archive,
    cfg: &Config,
    spacing: f64,
    offsets: &[u64],
    baseline: Duration,
    rebuild: Option<Duration>,
) -> anyhow::Result<Row> {
    let rec = archive.recording(REC)?;
    let (stream, index, ckpt) = rec.disk_usage();
    let checkpoints = rec.read_checkpoints()?.map_or(0, |c| c.rows.len());

    let seq = engine_sequential(archive)?;
    let (opens, cold): (Vec<_>, Vec<_>) = offsets
        .iter()
        .map(|&s| cold_read(archive, s))
        .collect::<anyhow::Result<_>>()?;
    let (end, boundary) = worst_positions(archive)?;
    let worst = |start: u64| -> anyhow::Result<f64> {
        let v: Vec<Duration> = (0..cfg.worst_reps)
            .map(|_| Ok(cold_read(archive, start)?.1))
            .collect::<anyhow::Result<_>>()?;
        Ok(pct(&v, 0.5, 1e3))
    };
    let engine = Engine::new(DEFAULT_CACHE_BYTES);
    let warm_rec = engine.open(archive, REC)?;
    for &s in offsets {
        read_at(&warm_rec, s)?;
    }
    let warm: Vec<Duration> = offsets
        .iter()
        .map(|&s| read_at(&warm_rec, s))
        .collect::<anyhow::Result<_>>()?;

    Ok(Row {
        spacing_s: spacing,
        checkpoints,
        rebuild_s: rebuild.map(|d| d.as_secs_f64()),
        stream_bytes: stream,
        index_bytes: index,
        checkpoint_bytes: ckpt,
        overhead_pct: 100.0 * (index + ckpt) as f64 / stream as f64,
        engine_seq: Timing::new(seq, rec.meta().duration_secs()),
        engine_seq_vs_baseline: seq.as_secs_f64() / baseline.as_secs_f64(),
        cold_open_p50_ms: pct(&opens, 0.5, 1e3),
        cold_read_p50_ms: pct(&cold, 0.5, 1e3),
        cold_read_p99_ms: pct(&cold, 0.99, 1e3),
        cold_read_max_ms: pct(&cold, 1.0, 1e3),
        cold_end_of_longest_span_p50_ms: worst(end - READ_FRAMES)?,
        cold_across_checkpoint_p50_ms: worst(boundary - READ_FRAMES / 2)?,
        warm_read_p50_us: pct(&warm, 0.5, 1e6),
        warm_read_p99_us: pct(&warm, 0.99, 1e6),
    })
}

#[derive(Serialize)]
struct Report {
    mode: &'static str,
    seconds: u64,
    sample_rate: u32,
    bitrate: u32,
    read_frames: u64,
    random_reads: usize,
    worst_reps: usize,
    generate_s: f64,
    import_spacing_s: f64,
    import_s: f64,
    /// One libopus decoder straight through the stream in memory: the limit.
    baseline_libopus: Timing,
    /// `build_checkpoints` without checkpoints.
    crate_sequential: Timing,
    spacings: Vec<Row>,
}

fn print_report(r: &Report) {
    println!(
        "\nzarr-wavfs engine benchmark ({}): {} s mono {} Hz s16 -> Opus {} kbit/s",
        r.mode,
        r.seconds,
        r.sample_rate,
        r.bitrate / 1000
    );
    println!(
        "material: WAV generated in {:.1} s; imported (encode, index, {} s checkpoints) in {:.1} s",
        r.generate_s, r.import_spacing_s, r.import_s
    );
    for (label, t) in [
        (
            "baseline: libopus straight through (oracle)",
            &r.baseline_libopus,
        ),
        (
            "crate sequential decoder (build_checkpoints)",
            &r.crate_sequential,
        ),
    ] {
        println!(
            "{label:<45} {:>7.2} s {:>6.0}x real time",
            t.s, t.x_realtime
        );
    }
    println!(
        "\n{:>7} {:>6} {:>10} {:>9} {:>9} {:>7} {:>9} | {:>7} {:>7} {:>6}",
        "spacing",
        "ckpts",
        "stream MiB",
        "index KiB",
        "ckpt KiB",
        "ovh %",
        "rebuild s",
        "seq s",
        "seq xRT",
        "/base"
    );
    for row in &r.spacings {
        let rebuild = row.rebuild_s.map_or("-".into(), |s| format!("{s:.1}"));
        println!(
            "{:>6}s {:>6} {:>10.2} {:>9.1} {:>9.1} {:>7.2} {:>9} | {:>7.2} {:>7.0} {:>6.2}",
            row.spacing_s,
            row.checkpoints,
            row.stream_bytes as f64 / 1048576.0,
            row.index_bytes as f64 / 1024.0,
            row.checkpoint_bytes as f64 / 1024.0,
            row.overhead_pct,
            rebuild,
            row.engine_seq.s,
            row.engine_seq.x_realtime,
            row.engine_seq_vs_baseline,
        );
    }
    println!(
        "\n{:>7} | {:>8} | {:>8} {:>8} {:>8} | {:>8} {:>8} | {:>8} {:>8}",
        "", "open ms", "cold ms", "", "", "span end", "across", "warm us", ""
    );
    println!(
        "{:>7} | {:>8} | {:>8} {:>8} {:>8} | {:>8} {:>8} | {:>8} {:>8}",
        "spacing", "p50", "p50", "p99", "max", "p50", "p50", "p50", "p99"
    );
    for row in &r.spacings {
        println!(
            "{:>6}s | {:>8.2} | {:>8.2} {:>8.2} {:>8.2} | {:>8.2} {:>8.2} | {:>8.1} {:>8.1}",
            row.spacing_s,
            row.cold_open_p50_ms,
            row.cold_read_p50_ms,
            row.cold_read_p99_ms,
            row.cold_read_max_ms,
            row.cold_end_of_longest_span_p50_ms,
            row.cold_across_checkpoint_p50_ms,
            row.warm_read_p50_us,
            row.warm_read_p99_us,
        );
    }
    println!(
        "\n{} reads of {} frames at seeded random offsets; cold = fresh Engine and open \
         (open timed apart); span end = a read ending at the end of the longest span, across = \
         one straddling the checkpoint between the longest two adjacent spans (medians of {})",
        r.random_reads, r.read_frames, r.worst_reps
    );
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let cfg = if args.iter().any(|a| a == "--quick") || !args.iter().any(|a| a == "--bench") {
        &QUICK
    } else {
        &FULL
    };
    let dir = tempfile::tempdir()?;
    let wav = dir.path().join(format!("{REC}.wav"));
    let frames = cfg.secs * u64::from(RATE);
    let t = Instant::now();
    write_material(&wav, frames)?;
    let generate = t.elapsed();

    let archive = Archive::create_or_open(dir.path().join("archive"))?;
    let opts = ImportOptions {
        bitrate_per_channel: BITRATE,
        codec: Some(Codec::Opus),
        ..ImportOptions::default()
    };
    let job = Job {
        input: wav.clone(),
        target: REC.into(),
    };
    let t = Instant::now();
    import_one(&archive, &job, &opts)?;
    let import = t.elapsed();
    std::fs::remove_file(&wav)?;

    let secs = cfg.secs as f64;
    let baseline = baseline_decode(&archive)?;
    let crate_seq = crate_sequential_decode(&archive)?;

    let mut rng = Rng(42);
    let offsets: Vec<u64> = (0..cfg.reads)
        .map(|_| rng.next() % (frames - READ_FRAMES))
        .collect();
    let mut current = opts.checkpoint_interval_secs;
    let mut spacings = Vec::new();
    for &spacing in cfg.spacings {
        let mut rebuild = None;
        if spacing != current {
            let t = Instant::now();
            for (_, outcome) in rebuild_checkpoints(&archive, &[REC.into()], spacing)? {
                outcome?;
            }
            rebuild = Some(t.elapsed());
            current = spacing;
        }
        spacings.push(measure_spacing(
            &archive, cfg, spacing, &offsets, baseline, rebuild,
        )?);
    }

    let report = Report {
        mode: cfg.name,
        seconds: cfg.secs,
        sample_rate: RATE,
        bitrate: BITRATE,
        read_frames: READ_FRAMES,
        random_reads: cfg.reads,
        worst_reps: cfg.worst_reps,
        generate_s: generate.as_secs_f64(),
        import_spacing_s: opts.checkpoint_interval_secs,
        import_s: import.as_secs_f64(),
        baseline_libopus: Timing::new(baseline, secs),
        crate_sequential: Timing::new(crate_seq, secs),
        spacings,
    };
    print_report(&report);
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join(if cfg.name == "quick" {
        "target/bench-engine-quick.json"
    } else {
        "target/bench-engine.json"
    });
    std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")?;
    println!("written: {}", out.display());
    Ok(())
}
