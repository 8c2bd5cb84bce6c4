//! The chunks of a served WAV file: the kept ones, byte for byte, except where the served
//! file must differ (docs/FORMAT.md, "Kept chunks", lists the rules):
//! - `bext` carries the archive's start time (OriginationDate, OriginationTime and
//!   TimeReference of the file's first frame), merged into the source's own `bext` when it
//!   had one, its other fields kept; without a known start time a source `bext` is kept
//!   and only its TimeReference moves with the first frame;
//! - in a file of part of a recording, `cue ` points and `smpl` loops are moved to the
//!   part's frame numbers and those outside it dropped, with the `LIST`/`adtl` labels,
//!   notes and texts of dropped cue points;
//! - `fact` says the served frame count;
//! - in a time-expanded file, GUANO's `TE` field says the factor.
//!
//! A chunk too short or malformed for its rule is served as it was kept.

use std::collections::HashSet;

use super::{Chunk, ChunkId};
use crate::le::u32_at;

/// What the served file is of its recording.
#[derive(Debug, Clone)]
pub struct Context {
    /// Recording frame at the start of the served data.
    pub first: u64,
    /// Frames served.
    pub frames: u64,
    /// Frames of the whole recording.
    pub total: u64,
    /// The start-time fields of the file's `bext`, when the start time is known.
    pub bext: Option<Bext>,
    /// The time-expansion factor of the served file, if it is time-expanded.
    pub time_expansion: Option<u32>,
}

impl Context {
    fn is_part(&self) -> bool {
        self.first != 0 || self.frames != self.total
    }

    /// Whether recording frame `f` is inside the served part (its end included: a marker
    /// may sit right after the last frame).
    fn holds(&self, f: u64) -> bool {
        f >= self.first && f - self.first <= self.frames
    }
}

/// A Broadcast Wave `bext` chunk (EBU Tech 3285, version 1): when the recording started,
/// and where it came from.
///
/// Written alone (the source had no `bext`) it is 602 bytes of body: Description (256),
/// Originator (32, `zarr-wavfs`), OriginatorReference (32, empty), OriginationDate (10,
/// `yyyy-mm-dd`), OriginationTime (8, `hh:mm:ss`), TimeReference (u64 as two u32: the
/// first sample's position in samples since that day's midnight), Version (u16 = 1), UMID
/// (64, zero), and 190 reserved zero bytes; no CodingHistory. Text fields are ASCII
/// (anything else becomes `?`), zero-padded, cut to their size. The date and time are
/// UTC; EBU specifies local time without a zone, and an archive has no local zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bext {
    pub description: String,
    /// `yyyy-mm-dd`.
    pub date: String,
    /// `hh:mm:ss`.
    pub time: String,
    pub time_reference: u64,
}

/// Body size of a `bext` chunk without CodingHistory.
pub const BEXT_LEN: usize = 602;
/// Where OriginationDate starts; OriginationTime and TimeReference follow it.
const BEXT_DATE_AT: usize = 320;
const BEXT_TIME_REFERENCE_AT: usize = 338;
/// End of the fields up to Version.
const BEXT_VERSION_END: usize = 348;

fn text(h: &mut [u8], s: &str) {
    let mut b = s
        .chars()
        .map(|c| {
            if c.is_ascii() && c != '\0' {
                c as u8
            } else {
                b'?'
            }
        })
        .chain(std::iter::repeat(0));
    for x in h.iter_mut() {
        *x = b.next().unwrap_or(0);
    }
}

impl Bext {
    /// The chunk written when the source had none.
    pub fn chunk(&self) -> Chunk {
        let mut b = vec![0u8; BEXT_LEN];
        text(&mut b[..256], &self.description);
        text(&mut b[256..288], "zarr-wavfs");
        b[346..348].copy_from_slice(&1u16.to_le_bytes());
        self.write_time(&mut b);
        Chunk::new(ChunkId::BEXT, b)
    }

    /// Writes the date, time and TimeReference into a `bext` body of at least 348 bytes.
    fn write_time(&self, b: &mut [u8]) {
        text(&mut b[BEXT_DATE_AT..BEXT_DATE_AT + 10], &self.date);
        text(
            &mut b[BEXT_DATE_AT + 10..BEXT_TIME_REFERENCE_AT],
            &self.time,
        );
        b[BEXT_TIME_REFERENCE_AT..BEXT_TIME_REFERENCE_AT + 8]
            .copy_from_slice(&self.time_reference.to_le_bytes());
    }
}

/// The chunks to write between `fmt ` and `data`.
pub fn served(kept: &[Chunk], ctx: &Context) -> Vec<Chunk> {
    let mut out = Vec::with_capacity(kept.len() + 1);
    let has_bext = kept.iter().any(|c| c.id == ChunkId::BEXT);
    if let (Some(b), false) = (&ctx.bext, has_bext) {
        out.push(b.chunk());
    }
    let mut dropped_cues = HashSet::new();
    let mut seen_bext = false;
    for c in kept {
        let mut c = c.clone();
        match c.id {
            ChunkId::BEXT if !seen_bext => {
                seen_bext = true;
                merge_bext(&mut c.body, ctx);
            }
            ChunkId::CUE if ctx.is_part() => move_cues(&mut c.body, ctx, &mut dropped_cues),
            ChunkId::SMPL if ctx.is_part() => move_loops(&mut c.body, ctx),
            ChunkId::FACT if c.body.len() >= 4 => {
                let n = u32::try_from(ctx.frames).unwrap_or(u32::MAX);
                c.body[..4].copy_from_slice(&n.to_le_bytes());
            }
            ChunkId::GUANO => {
                if let Some(f) = ctx.time_expansion {
                    set_guano_te(&mut c.body, f);
                }
            }
            _ => {}
        }
        out.push(c);
    }
    if !dropped_cues.is_empty() {
        for c in &mut out {
            if c.id == ChunkId::LIST && c.body.starts_with(b"adtl") {
                drop_labels(&mut c.body, &dropped_cues);
            }
        }
    }
    out
}

fn put_u32(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 4].copy_from_slice(&u32::try_from(v).unwrap_or(u32::MAX).to_le_bytes());
}

fn merge_bext(body: &mut Vec<u8>, ctx: &Context) {
    match &ctx.bext {
        Some(b) => {
            if body.len() < BEXT_VERSION_END {
                body.resize(BEXT_LEN, 0);
            }
            b.write_time(body);
        }
        None if body.len() >= BEXT_VERSION_END && ctx.first > 0 => {
            let at = BEXT_TIME_REFERENCE_AT;
            let t = u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
            body[at..at + 8].copy_from_slice(&t.wrapping_add(ctx.first).to_le_bytes());
        }
        None => {}
    }
}

/// Sets GUANO's `TE` field: the first `TE:` line is replaced, or one is added after the
/// last line (before trailing NUL or space padding).
fn set_guano_te(body: &mut Vec<u8>, factor: u32) {
    let text = String::from_utf8_lossy(body).into_owned();
    let line = format!("TE: {factor}");
    let mut lines: Vec<&str> = text
        .trim_end_matches(|c: char| c == '\0' || c.is_whitespace())
        .split('\n')
        .collect();
    match lines.iter_mut().find(|l| l.trim_start().starts_with("TE:")) {
        Some(l) => *l = &line,
        None => lines.push(&line),
    }
    *body = format!("{}\n", lines.join("\n")).into_bytes();
}

/// `cue `: u32 count, then per point: id, position, fccChunk, chunkStart, blockStart,
/// sampleOffset (u32 each).
fn move_cues(body: &mut Vec<u8>, ctx: &Context, dropped: &mut HashSet<u32>) {
    let Some(n) = u32_at(body, 0) else { return };
    let n = n as usize;
    if body.len() < 4 + 24 * n {
        return;
    }
    let mut kept = Vec::with_capacity(body.len());
    kept.extend_from_slice(&body[..4]);
    let mut count = 0u64;
    for p in body[4..4 + 24 * n].chunks_exact(24) {
        let id = u32_at(p, 0).unwrap_or(0);
        let offset = u64::from(u32_at(p, 20).unwrap_or(0));
        if !ctx.holds(offset) {
            dropped.insert(id);
            continue;
        }
        let mut p = p.to_vec();
        let position = u64::from(u32_at(&p, 4).unwrap_or(0));
        put_u32(&mut p, 4, position.saturating_sub(ctx.first));
        put_u32(&mut p, 20, offset - ctx.first);
        kept.extend_from_slice(&p);
        count += 1;
    }
    kept.extend_from_slice(&body[4 + 24 * n..]);
    put_u32(&mut kept, 0, count);
    *body = kept;
}

/// `smpl`: 36 bytes of fields (the loop count at 28), then loops of 24 bytes: id, type,
/// start, end (the last frame, included), fraction, play count; then sampler data.
fn move_loops(body: &mut Vec<u8>, ctx: &Context) {
    let Some(n) = u32_at(body, 28) else { return };
    let n = n as usize;
    if body.len() < 36 + 24 * n {
        return;
    }
    let mut kept = body[..36].to_vec();
    let mut count = 0u64;
    for l in body[36..36 + 24 * n].chunks_exact(24) {
        let start = u64::from(u32_at(l, 8).unwrap_or(0));
        let end = u64::from(u32_at(l, 12).unwrap_or(0));
        if !(ctx.holds(start) && ctx.holds(end) && end - ctx.first < ctx.frames) {
            continue;
        }
        let mut l = l.to_vec();
        put_u32(&mut l, 8, start - ctx.first);
        put_u32(&mut l, 12, end - ctx.first);
        kept.extend_from_slice(&l);
        count += 1;
    }
    kept.extend_from_slice(&body[36 + 24 * n..]);
    put_u32(&mut kept, 28, count);
    *body = kept;
}

/// `LIST`/`adtl`: sub-chunks `labl`, `note` and `ltxt` name their cue point first.
fn drop_labels(body: &mut Vec<u8>, dropped: &HashSet<u32>) {
    let mut out = body[..4].to_vec();
    let mut at = 4;
    while at + 8 <= body.len() {
        let size = u32_at(body, at + 4).unwrap_or(0) as usize;
        let end = (at + 8).saturating_add(size);
        if end > body.len() {
            break; // a malformed list: the rest is kept as it was
        }
        let padded = (end + (size & 1)).min(body.len());
        let cue = u32_at(body, at + 8);
        let labels_cue = matches!(&body[at..at + 4], b"labl" | b"note" | b"ltxt");
        if !(labels_cue && cue.is_some_and(|c| dropped.contains(&c))) {
            out.extend_from_slice(&body[at..padded]);
        }
        at = padded;
    }
    out.extend_from_slice(&body[at.min(body.len())..]);
    *body = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cue(points: &[(u32, u32)]) -> Chunk {
        let mut b = (points.len() as u32).to_le_bytes().to_vec();
        for &(id, at) in points {
            for v in [id, at] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.extend_from_slice(b"data");
            b.extend_from_slice(&[0; 8]);
            b.extend_from_slice(&at.to_le_bytes());
        }
        Chunk::new(ChunkId::CUE, b)
    }

    fn adtl(labels: &[(u32, &str)]) -> Chunk {
        let mut b = b"adtl".to_vec();
        for &(id, text) in labels {
            let mut body = id.to_le_bytes().to_vec();
            body.extend_from_slice(text.as_bytes());
            body.push(0);
            Chunk::new(ChunkId(*b"labl"), body).push(&mut b);
        }
        Chunk::new(ChunkId::LIST, b)
    }

    fn ctx(first: u64, frames: u64, total: u64) -> Context {
        Context {
            first,
            frames,
            total,
            bext: None,
            time_expansion: None,
        }
    }

    fn bext() -> Bext {
        Bext {
            description: "ours".into(),
            date: "2025-06-01".into(),
            time: "04:00:05".into(),
            time_reference: 691_440_000,
        }
    }

    #[test]
    fn whole_file_keeps_everything_as_it_was() {
        let kept = vec![
            cue(&[(1, 10), (2, 5000)]),
            adtl(&[(1, "a"), (2, "bb")]),
            Chunk::new(ChunkId(*b"iXML"), b"<BWFXML/>".to_vec()),
        ];
        assert_eq!(served(&kept, &ctx(0, 100, 100)), kept);
    }

    #[test]
    fn a_part_moves_cues_and_drops_their_labels() {
        let kept = vec![
            cue(&[(1, 10), (2, 50), (3, 90)]),
            adtl(&[(1, "a"), (2, "bb"), (3, "c")]),
        ];
        let out = served(&kept, &ctx(40, 20, 100));
        assert_eq!(out, vec![cue(&[(2, 10)]), adtl(&[(2, "bb")])]);
        // The end of the part is a valid marker position.
        assert_eq!(served(&kept, &ctx(0, 10, 100))[0], cue(&[(1, 10)]));
    }

    #[test]
    fn bext_is_merged_into_the_sources() {
        let mut src = vec![7u8; 700];
        src[..4].copy_from_slice(b"desc");
        let kept = vec![
            Chunk::new(ChunkId::LIST, b"INFO".to_vec()),
            Chunk::new(ChunkId::BEXT, src.clone()),
        ];
        let mut c = ctx(0, 1, 1);
        c.bext = Some(bext());
        let out = served(&kept, &c);
        assert_eq!(out.len(), 2);
        let b = &out[1].body;
        assert_eq!(b.len(), 700);
        assert_eq!(&b[..320], &src[..320]);
        assert_eq!(&b[320..338], b"2025-06-0104:00:05");
        assert_eq!(
            u64::from_le_bytes(b[338..346].try_into().unwrap()),
            691_440_000
        );
        assert_eq!(&b[346..], &src[346..]);
        // Without a source bext ours comes first, 602 bytes.
        let out = served(&kept[..1], &c);
        assert_eq!(out[0].id, ChunkId::BEXT);
        assert_eq!(out[0].body.len(), BEXT_LEN);
        assert_eq!(&out[0].body[256..266], b"zarr-wavfs");
    }

    #[test]
    fn time_reference_moves_without_a_start_time() {
        let mut src = vec![0u8; 602];
        src[338..346].copy_from_slice(&1000u64.to_le_bytes());
        let out = served(&[Chunk::new(ChunkId::BEXT, src)], &ctx(48, 10, 100));
        assert_eq!(
            u64::from_le_bytes(out[0].body[338..346].try_into().unwrap()),
            1048
        );
    }

    #[test]
    fn fact_and_smpl() {
        let mut smpl = vec![0u8; 36];
        smpl[28..32].copy_from_slice(&2u32.to_le_bytes());
        for (start, end) in [(10u32, 19u32), (50, 59)] {
            let mut l = vec![0u8; 24];
            l[8..12].copy_from_slice(&start.to_le_bytes());
            l[12..16].copy_from_slice(&end.to_le_bytes());
            smpl.extend_from_slice(&l);
        }
        let kept = vec![
            Chunk::new(ChunkId::FACT, 999u32.to_le_bytes().to_vec()),
            Chunk::new(ChunkId::SMPL, smpl),
        ];
        let out = served(&kept, &ctx(45, 20, 100));
        assert_eq!(out[0].body, 20u32.to_le_bytes());
        let s = &out[1].body;
        assert_eq!(s.len(), 60);
        assert_eq!(u32_at(s, 28), Some(1));
        assert_eq!((u32_at(s, 36 + 8), u32_at(s, 36 + 12)), (Some(5), Some(14)));
    }

    #[test]
    fn guano_te_is_set() {
        let kept = vec![
            Chunk::new(
                ChunkId::GUANO,
                b"GUANO|Version: 1.0\nTE: 1\nMake: X\n\0".to_vec(),
            ),
            Chunk::new(ChunkId::GUANO, b"GUANO|Version: 1.0\nMake: X".to_vec()),
        ];
        assert_eq!(served(&kept, &ctx(0, 1, 1)), kept);
        let mut c = ctx(0, 1, 1);
        c.time_expansion = Some(10);
        let out = served(&kept, &c);
        assert_eq!(out[0].body, b"GUANO|Version: 1.0\nTE: 10\nMake: X\n");
        assert_eq!(out[1].body, b"GUANO|Version: 1.0\nMake: X\nTE: 10\n");
    }

    #[test]
    fn malformed_chunks_are_served_as_kept() {
        let kept = vec![
            Chunk::new(ChunkId::CUE, vec![5, 0, 0, 0, 1]),
            Chunk::new(ChunkId::SMPL, vec![1, 2]),
            Chunk::new(ChunkId::FACT, vec![1]),
        ];
        assert_eq!(served(&kept, &ctx(3, 4, 10)), kept);
    }
}
