//! `ls` and `info`.

use std::fmt::Write as _;

use crate::archive::completeness::{Completeness, completeness};
use crate::archive::{Archive, ArchiveError, Entry, RecordingMeta, StreamBytes as _};
use crate::codec::opus::current_fingerprint;
use crate::wav_file::{layout_for, served_format};

/// "1:02:03.5" style duration.
pub fn format_duration(secs: f64) -> String {
    let t = secs.max(0.0);
    let h = (t / 3600.0) as u64;
    let m = ((t - h as f64 * 3600.0) / 60.0) as u64;
    let s = t - h as f64 * 3600.0 - m as f64 * 60.0;
    if h > 0 {
        format!("{h}:{m:02}:{s:06.3}")
    } else {
        format!("{m}:{s:06.3}")
    }
}

pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Size of the WAV file served for `m` in its own sample format.
fn wav_size(m: &RecordingMeta) -> u64 {
    layout_for(m, 0..m.frames, served_format(None, m), None).map_or(0, |l| l.file_len())
}

/// "4.2 MiB stored, 57.1%": the audio's bytes on disk, and their share of the samples'
/// own size (frames × channels × bytes of the served format).
fn stored(bytes: Option<u64>, m: &RecordingMeta) -> String {
    let Some(bytes) = bytes else {
        return "stored size unknown: the store cannot list".into();
    };
    let raw = m.frames as f64 * f64::from(m.channels) * f64::from(served_format(None, m).bytes());
    format!(
        "{} stored, {:.1}%",
        format_bytes(bytes),
        100.0 * bytes as f64 / raw.max(1.0)
    )
}

/// `name` as `ls` and `info` print it, so that no name can start a line of its own or
/// send the terminal an escape sequence: a backslash becomes `\\`; newline, tab and
/// carriage return become `\n`, `\t`, `\r`; any other control character becomes
/// `\xHH` (below U+0080) or `\u{HHHH}` (U+0080 to U+009F). Nothing else changes, and
/// the escaping is one-to-one (a printed `\` always starts an escape).
pub fn escape_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() && c.is_ascii() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// The archive-relative paths of the recordings committed after `since`, oldest
/// first (`ls --since`, for scripts that process what is new).
pub fn committed_since(
    archive: &Archive,
    since: std::time::SystemTime,
) -> Result<Vec<String>, ArchiveError> {
    fn collect(
        entries: Vec<Entry>,
        since: std::time::SystemTime,
        out: &mut Vec<(std::time::SystemTime, String)>,
    ) {
        for e in entries {
            match e {
                Entry::Folder { children, .. } => collect(children, since, out),
                Entry::Recording { path, modified, .. } if modified > since => {
                    out.push((modified, path));
                }
                Entry::Recording { .. } => {}
            }
        }
    }
    let mut found = Vec::new();
    collect(archive.tree()?, since, &mut found);
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// The archive tree, one line per node, names escaped (`escape_name`). Returns the text
/// and whether any recording is unreadable or missing: a recording the manifest lists
/// that is not in the tree (deleted, or its `zarr.json` damaged) gets a warning on
/// stderr, since it has no place in the tree to be shown at.
pub fn ls(archive: &Archive) -> Result<(String, bool), ArchiveError> {
    let mut out = String::new();
    let mut broken = false;
    fn walk(
        archive: &Archive,
        entries: &[Entry],
        depth: usize,
        out: &mut String,
        broken: &mut bool,
    ) {
        for e in entries {
            let pad = "  ".repeat(depth);
            match e {
                Entry::Folder { name, children, .. } => {
                    let _ = writeln!(out, "{pad}{}/", escape_name(name));
                    walk(archive, children, depth + 1, out, broken);
                }
                Entry::Recording {
                    name,
                    path,
                    meta: Ok(m),
                    audio_bytes,
                    ..
                } => {
                    // From the manifest, else listed (a web server cannot list).
                    let audio_bytes = audio_bytes.or_else(|| {
                        archive
                            .store()
                            .is_listable()
                            .then(|| archive.audio_bytes(path))
                    });
                    let _ = writeln!(
                        out,
                        "{pad}{}.wav  {}  {} Hz  {} ch  {}  {}  {} ({})",
                        escape_name(name),
                        format_duration(m.duration_secs()),
                        m.original_sample_rate,
                        m.channels,
                        m.sample_format,
                        m.codec,
                        format_bytes(wav_size(m)),
                        stored(audio_bytes, m)
                    );
                }
                Entry::Recording {
                    name, meta: Err(e), ..
                } => {
                    *broken = true;
                    let _ = writeln!(
                        out,
                        "{pad}{}  UNREADABLE: {}",
                        escape_name(name),
                        escape_name(&e.to_string())
                    );
                }
            }
        }
    }
    let tree = archive.tree()?;
    walk(archive, &tree, 0, &mut out, &mut broken);
    // Where the manifest cannot tell (none, or stale), `verify` says so; `ls` does not.
    match completeness(archive, &tree) {
        Ok(Completeness::Checked(missing)) => {
            for m in &missing {
                log::warn!(
                    "{}: {}",
                    escape_name(&archive.location(&m.path).to_string()),
                    escape_name(&m.problem)
                );
            }
            broken |= !missing.is_empty();
        }
        Ok(Completeness::Unchecked(_)) => {}
        Err(e) => log::warn!(
            "could not check that every recording is listed: {}",
            escape_name(&e.to_string())
        ),
    }
    Ok((out, broken))
}

/// Everything known about one recording.
pub fn info(archive: &Archive, path: &str) -> Result<String, ArchiveError> {
    let rec = archive.recording(path)?;
    let m = rec.meta();
    let mut o = String::new();
    let _ = writeln!(o, "recording:            {}", escape_name(rec.path()));
    let _ = writeln!(o, "codec:                {}", m.codec);
    let _ = writeln!(o, "channels:             {}", m.channels);
    let _ = writeln!(o, "frames:               {}", m.frames);
    let _ = writeln!(
        o,
        "duration:             {} ({:.3} s)",
        format_duration(m.duration_secs()),
        m.duration_secs()
    );
    let _ = writeln!(o, "sample rate (shown):  {} Hz", m.original_sample_rate);
    let _ = writeln!(
        o,
        "sample rate (stream): {} Hz{}",
        m.sample_rate,
        if m.sample_rate != m.original_sample_rate {
            "  (samples reinterpreted, not resampled)"
        } else {
            ""
        }
    );
    let _ = writeln!(o, "sample format:        {}", m.sample_format);
    if m.codec == "opus" {
        let _ = writeln!(o, "pre-skip:             {} (48 kHz units)", m.pre_skip);
    }
    let _ = writeln!(
        o,
        "start time:           {}",
        m.start_time.as_deref().unwrap_or("-")
    );
    if let Some(s) = &m.source {
        let _ = writeln!(
            o,
            "source:               {} ({} bytes, sha256 {})",
            escape_name(&s.name),
            s.size,
            s.sha256
        );
    }
    let _ = writeln!(o, "WAV size served:      {} bytes", wav_size(m));
    if !m.chunks.is_empty() {
        let names: Vec<String> = m
            .chunks
            .iter()
            .map(|c| {
                format!(
                    "{} ({} bytes)",
                    escape_name(&c.id.to_string()),
                    c.body.len()
                )
            })
            .collect();
        let _ = writeln!(o, "kept chunks:          {}", names.join(", "));
        for (k, v) in m.chunks.iter().flat_map(crate::chunks::fields::fields) {
            let _ = writeln!(o, "  {}: {}", escape_name(&k), escape_name(&v));
        }
    }
    let (audio, index, ckpt) = rec.disk_usage();
    let _ = writeln!(
        o,
        "audio on disk:        {}",
        stored(rec.store().is_listable().then_some(audio), m)
    );
    if m.codec == "pcm" {
        match rec.samples() {
            Ok(r) => {
                let _ = writeln!(
                    o,
                    "samples:              {} chunks of {} frames ({:.2} s)",
                    m.frames.div_ceil(r.chunk_frames()),
                    r.chunk_frames(),
                    r.chunk_frames() as f64 / f64::from(m.sample_rate)
                );
            }
            Err(e) => {
                let _ = writeln!(o, "samples:              unreadable: {e}");
            }
        }
        return Ok(o);
    }
    let _ = writeln!(
        o,
        "stream:               {} bytes ({:.1} kbit/s)",
        m.stream_bytes,
        m.stream_bytes as f64 * 8.0 / m.duration_secs().max(1e-9) / 1000.0
    );
    let _ = writeln!(
        o,
        "index:                {} {}, {} on disk",
        m.index_rows,
        if m.codec == "opus" { "pages" } else { "frames" },
        format_bytes(index)
    );
    // Touch the first byte so a missing stream shows up here too.
    if let Err(e) = rec.read(0..1) {
        let _ = writeln!(o, "stream:               unreadable: {e}");
    }
    if m.codec != "opus" {
        return Ok(o);
    }
    match rec.read_checkpoints() {
        Ok(Some(c)) => {
            let current = rec
                .read_opus_head()
                .is_ok_and(|h| c.fingerprint == current_fingerprint(&h.mapping));
            let _ = writeln!(
                o,
                "checkpoints:          {} every {:.1} s, {} on disk ({:.2}% of stream){}",
                c.rows.len(),
                c.interval as f64 / f64::from(m.sample_rate),
                format_bytes(ckpt),
                100.0 * ckpt as f64 / audio.max(1) as f64,
                if current {
                    ""
                } else {
                    "  [made by another libopus build: rebuilt in memory on use]"
                }
            );
            let _ = writeln!(
                o,
                "checkpoint decoder:   {} ({}, arch {})",
                c.fingerprint.libopus, c.fingerprint.target, c.fingerprint.arch
            );
        }
        Ok(None) => {
            let _ = writeln!(o, "checkpoints:          none (rebuilt in memory on use)");
        }
        Err(e) => {
            let _ = writeln!(o, "checkpoints:          unreadable: {e}");
        }
    }
    Ok(o)
}
