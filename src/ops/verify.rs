//! `verify`: decode everything and check stream, index and checkpoints against each other.

use rayon::prelude::*;

use crate::archive::completeness::{Completeness, completeness};
use crate::archive::index::{self};
use crate::archive::manifest::MANIFEST_KEY;
use crate::archive::{Archive, ArchiveError, Entry, RecordingStore, STAGING_DIR, StreamBytes};
use crate::codec::opus::{
    Packets, build_checkpoints, current_fingerprint, restore_checkpoint, span_starts,
};
use crate::codec::{CodecError, flac};
use crate::store::Location;

/// One thing wrong (or worth knowing) about one recording.
#[derive(Debug, Clone)]
pub struct Problem {
    pub path: String,
    pub message: String,
    /// Errors fail `verify`; notes (e.g. checkpoints from another libopus build) do not.
    pub error: bool,
}

/// Checks every recording; returns what it found, recordings in archive order, then
/// the recordings the manifest lists that are missing, then notes on the archive.
pub fn verify(archive: &Archive) -> Result<Vec<Problem>, ArchiveError> {
    fn flatten<'a>(entries: &'a [Entry], out: &mut Vec<(&'a str, Option<&'a ArchiveError>)>) {
        for e in entries {
            match e {
                Entry::Folder { children, .. } => flatten(children, out),
                Entry::Recording { path, meta, .. } => out.push((path, meta.as_ref().err())),
            }
        }
    }
    let tree = archive.tree()?;
    let mut recs = Vec::new();
    flatten(&tree, &mut recs);
    let mut problems: Vec<Problem> = recs
        .par_iter()
        .flat_map_iter(|(path, err)| match err {
            Some(e) => vec![Problem {
                path: path.to_string(),
                message: e.to_string(),
                error: true,
            }],
            None => verify_one(archive, path),
        })
        .collect();
    match completeness(archive, &tree) {
        Ok(Completeness::Checked(missing)) => {
            problems.extend(missing.into_iter().map(|m| Problem {
                path: m.path,
                message: m.problem,
                error: true,
            }))
        }
        Ok(Completeness::Unchecked(why)) => problems.push(Problem {
            path: MANIFEST_KEY.into(),
            message: format!("could not check that every recording is there: {why}"),
            error: false,
        }),
        Err(e) => problems.push(Problem {
            path: MANIFEST_KEY.into(),
            message: format!("could not check that every recording is there: {e}"),
            error: true,
        }),
    }
    if archive.store().is_listable() && !archive.store().is_empty(STAGING_DIR).unwrap_or(true) {
        problems.push(Problem {
            path: STAGING_DIR.into(),
            message: "leftovers of an interrupted or running import or index (invisible; removed by the next import or index)".into(),
            error: false,
        });
    }
    Ok(problems)
}

fn verify_one(archive: &Archive, path: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut problem = |message: String, error: bool| {
        out.push(Problem {
            path: path.to_string(),
            message,
            error,
        })
    };
    let rec = match archive.recording(path) {
        Ok(r) => r,
        Err(e) => {
            problem(e.to_string(), true);
            return out;
        }
    };
    for l in super::index_cmd::checkpoint_leftovers(archive, path) {
        problem(
            format!(
                "{}: leftover of an interrupted `zarr-wavfs index` ({}; invisible)",
                l.name,
                if l.running {
                    format!("process {} still runs", l.pid)
                } else {
                    format!(
                        "process {} is gone: the next `zarr-wavfs index` removes it",
                        l.pid
                    )
                }
            ),
            false,
        );
    }
    let checked = match rec.meta().codec.as_str() {
        "pcm" => check_pcm(&rec),
        "flac" => check_flac(&rec, &mut problem),
        _ => check_opus(&rec, &mut problem),
    };
    if let Err(e) = checked {
        problem(e.to_string(), true);
    }
    out
}

/// Checks a FLAC recording frame by frame through its index, a batch at a time (a long
/// recording's stream does not fit in memory): the frames tile the stream with nothing
/// between (checked with the index) or after them; STREAMINFO agrees with the metadata; every frame's CRCs,
/// numbering and size hold as it decodes; the audio matches the STREAMINFO MD5.
fn check_flac(
    rec: &RecordingStore,
    problem: &mut dyn FnMut(String, bool),
) -> Result<(), CodecError> {
    let m = rec.meta();
    let stream = rec.dir().join("stream");
    let damaged = |path: &Location, message: String| CodecError::Damaged {
        path: path.clone(),
        message,
    };
    let rows = rec.read_index_rows()?;
    let frames = flac::frames_from_index(&rows, m.stream_bytes, m.frames)
        .map_err(|e| damaged(&rec.dir().join("index"), e))?;
    // frames_from_index checked that the frames follow each other without gaps
    let last = &frames[frames.len() - 1];
    let end = last.offset + last.len;
    if end != m.stream_bytes {
        problem(
            format!(
                "bytes {end}..{} after the last frame belong to no frame",
                m.stream_bytes
            ),
            true,
        );
    }
    let info = flac::stream_info(&rec.read(0..frames[0].offset)?)
        .map_err(|e| damaged(&stream, format!("FLAC header: {e}")))?;
    let kind = crate::archive::SampleKind::Int(info.bits_per_sample);
    if info.channels != m.channels || info.sample_rate != m.sample_rate || kind != m.sample_kind() {
        problem(
            format!(
                "metadata ({} ch, {} Hz, {}) disagrees with STREAMINFO ({} ch, {} Hz, {})",
                m.channels,
                m.sample_rate,
                m.sample_format,
                info.channels,
                info.sample_rate,
                kind.name()
            ),
            true,
        );
    }
    if info.total_samples != 0 && info.total_samples != m.frames {
        problem(
            format!(
                "STREAMINFO says {} samples, the metadata {}",
                info.total_samples, m.frames
            ),
            true,
        );
    }
    if info.md5 == [0; 16] {
        problem(
            "STREAMINFO has no MD5: frames checked by CRC only".into(),
            false,
        );
    }
    let read = |r: std::ops::Range<u64>| rec.read(r).map_err(|e| e.to_string());
    flac::check_audio(&info, &frames, &read).map_err(|e| damaged(&stream, e))
}

/// Reads every chunk of a PCM recording, each checked against its CRC-32C.
fn check_pcm(rec: &RecordingStore) -> Result<(), CodecError> {
    let samples = rec.samples()?;
    let chunks = rec.meta().frames.div_ceil(samples.chunk_frames());
    (0..chunks)
        .into_par_iter()
        .try_for_each(|j| samples.read_chunk(j).map(drop))?;
    Ok(())
}

fn check_opus(
    rec: &RecordingStore,
    problem: &mut dyn FnMut(String, bool),
) -> Result<(), CodecError> {
    let m = rec.meta();
    let dir = rec.dir();
    let index = rec.read_index()?;
    let bytes = rec.read(0..m.stream_bytes)?;
    let layout = index::scan(&bytes, m.sample_rate).map_err(|source| CodecError::Ogg {
        path: dir.join("stream"),
        source,
    })?;
    if layout.rows != index.rows() {
        problem("index does not match the stream's pages".into(), true);
    }
    let frames =
        (layout.final_granule - i64::from(layout.head.pre_skip)) as u64 / m.granule_factor();
    if frames != m.frames
        || u32::from(layout.head.pre_skip) != m.pre_skip
        || u16::from(layout.head.channels()) != m.channels
    {
        problem(
            format!(
                "metadata (frames {}, pre-skip {}, channels {}) disagrees with the stream ({frames}, {}, {})",
                m.frames,
                m.pre_skip,
                m.channels,
                layout.head.pre_skip,
                layout.head.channels()
            ),
            true,
        );
    }
    let stored = match rec.read_checkpoints() {
        // The checks a mount's open makes, before anything indexes by the positions.
        Ok(Some(c)) => match span_starts(&c.positions(), &index, m, &dir) {
            Err(e) => {
                problem(format!("checkpoints damaged: {e}"), true);
                None
            }
            Ok(_) if c.fingerprint == current_fingerprint(&layout.head.mapping) => Some(c),
            Ok(_) => {
                problem(
                    format!(
                        "checkpoints were made by another libopus build ({}, {}); they are rebuilt in memory on use, `zarr-wavfs index` stores new ones",
                        c.fingerprint.libopus, c.fingerprint.target
                    ),
                    false,
                );
                None
            }
        },
        Ok(None) => {
            problem(
                "no checkpoints stored (`zarr-wavfs index` makes them)".into(),
                false,
            );
            None
        }
        Err(e) => {
            problem(format!("checkpoints unreadable: {e}"), true);
            None
        }
    };
    let stops: Vec<u64> = stored
        .as_ref()
        .map_or_else(Vec::new, |c| c.rows.iter().map(|r| r.packet).collect());
    let mut j = 0;
    let mut bad = Vec::new();
    // Decodes the whole stream; at each stored checkpoint, compares the sequential
    // decoder's state with the one restored from the archive.
    let mapping = &layout.head.mapping;
    build_checkpoints(&bytes, &index, m, mapping, &dir, &stops, |_, dec| {
        let c = stored
            .as_ref()
            .expect("no stops without stored checkpoints");
        let packets = Packets {
            stream: &bytes,
            index: &index,
            path: &dir,
        };
        let restored = restore_checkpoint(c, j, m.sample_rate, mapping, packets)
            .and_then(|r| r.export_state().map_err(CodecError::opus(&dir)));
        let ok = match (restored, dec.export_state()) {
            (Ok(s), Ok(d)) => s == d,
            _ => false,
        };
        if !ok {
            bad.push(j);
        }
        j += 1;
        Ok(())
    })?;
    if !bad.is_empty() {
        problem(
            format!(
                "{} checkpoint(s) damaged or different from the stream's decoder state: {:?}",
                bad.len(),
                bad
            ),
            true,
        );
    }
    Ok(())
}
