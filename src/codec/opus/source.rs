//! An Opus recording as spans: checkpoint planning, span decoding, and the fallback
//! when stored checkpoints cannot be used.

use crate::store::{Location, Store};
use std::sync::Arc;

use parking_lot::Mutex;

use super::decoder::{Decoder, MAX_PACKET_SAMPLES};
use super::fingerprint::{current_fingerprint, portable_states_work};
use crate::archive::checkpoints::{
    CheckpointWriter, Encoding, MAX_WARMUP_PACKETS, StoredCheckpoints, StoredState,
};
use crate::archive::index::PageIndex;
use crate::archive::ogg::{PacketAssembler, parse_page};
use crate::archive::opus_head::ChannelMapping;
use crate::archive::{RecordingMeta, RecordingStore, StreamBytes};
use crate::codec::{CodecError, SampleKind, Samples, SpanSource};

/// Checkpoint positions for a stream: (packet, sample) pairs, one at the start of the
/// first page that begins at or after each multiple of `interval` samples. Positions lie
/// strictly inside the audible part (after pre-skip, before the end), so every span is
/// non-empty.
pub fn plan_checkpoints(index: &PageIndex, meta: &RecordingMeta, interval: u64) -> Vec<(u64, u64)> {
    let lo = meta.pre_skip_samples();
    let hi = lo + meta.frames;
    let mut out = Vec::new();
    let mut next = interval.max(1);
    for k in 1..index.rows().len() {
        let (p, s) = (index.packets_before(k), index.samples_before(k));
        if s >= next && s > lo && s < hi && out.last().is_none_or(|&(lp, _)| p > lp) {
            out.push((p, s));
            next = (s / interval.max(1) + 1) * interval.max(1);
        }
    }
    out
}

/// A stream's packets: its bytes, its index, and its path for errors.
#[derive(Clone, Copy)]
pub struct Packets<'a> {
    pub stream: &'a dyn StreamBytes,
    pub index: &'a PageIndex,
    pub path: &'a Location,
}

/// The first and last index rows of the pages holding packets `from..to` (`from < to`).
fn pages_holding(index: &PageIndex, from: u64, to: u64) -> (usize, usize) {
    (
        index.first_page_for_packet(from),
        index.page_ending_packet(to - 1),
    )
}

/// Packet source for one span: reads the pages holding packets `from..to` and hands
/// each packet to `f`, checking every page against the index.
fn for_each_packet(
    packets: Packets,
    from: u64,
    to: u64,
    mut f: impl FnMut(&[u8]) -> Result<(), CodecError>,
) -> Result<(), CodecError> {
    let Packets {
        stream,
        index,
        path,
    } = packets;
    if from >= to {
        return Ok(());
    }
    let (first, last) = pages_holding(index, from, to);
    let range = index.byte_range(first, last);
    let bytes = stream.read(range.clone())?;
    if bytes.len() as u64 != range.end - range.start {
        return Err(damaged(
            path,
            format!("stream ends before byte {}", range.end),
        ));
    }
    let mut asm = PacketAssembler::new();
    let mut pos = 0usize;
    let mut number = index.packets_before(first);
    for k in first..=last {
        let row = index.rows()[k];
        let at = range.start + pos as u64;
        if at != row.offset {
            return Err(damaged(
                path,
                format!(
                    "index says page {k} starts at byte {}, stream has one at {at}",
                    row.offset
                ),
            ));
        }
        let page = parse_page(&bytes[pos..], at).map_err(|source| CodecError::Ogg {
            path: path.clone(),
            source,
        })?;
        if page.granule != row.granule
            || index.packets_before(k) + page.packets_completed() != row.packets_done
        {
            return Err(damaged(
                path,
                format!("page at byte {at} does not match index row {k}"),
            ));
        }
        if k == first && page.continued() {
            // The assembler drops this page's leading fragment: that packet is not ours.
            number += 1;
        }
        asm.push::<CodecError>(&page, |packet| {
            if (from..to).contains(&number) {
                f(packet)?;
            }
            number += 1;
            Ok(())
        })?;
        pos += page.len;
    }
    Ok(())
}

fn damaged(path: &Location, message: String) -> CodecError {
    CodecError::Damaged {
        path: path.clone(),
        message,
    }
}

/// Decodes packets `from..to` with `dec`, appending to `out`; checks their length.
fn decode_packets(
    dec: &mut Decoder,
    packets: Packets,
    from: u64,
    to: u64,
    out: &mut Vec<i16>,
) -> Result<(), CodecError> {
    for_each_packet(packets, from, to, |packet| {
        dec.decode(packet, out)
            .map(drop)
            .map_err(CodecError::opus(packets.path))
    })
}

/// Decodes the whole stream once, calling `at_stop(p, decoder)` with the decoder just
/// before packet `p` for each of `stops` (ascending packet numbers). Used by import,
/// `zarr-wavfs index` and `verify`.
pub fn build_checkpoints(
    stream: &dyn StreamBytes,
    index: &PageIndex,
    meta: &RecordingMeta,
    mapping: &ChannelMapping,
    path: &Location,
    stops: &[u64],
    mut at_stop: impl FnMut(u64, &Decoder) -> Result<(), CodecError>,
) -> Result<(), CodecError> {
    let mut dec = Decoder::new(meta.sample_rate, mapping).map_err(CodecError::opus(path))?;
    let packets = Packets {
        stream,
        index,
        path,
    };
    let mut scratch = Vec::new();
    let mut next = 0usize;
    let total = index.total_packets();
    let mut done = 0u64;
    // Decode in page-sized steps between checkpoints to keep `scratch` small.
    while done < total {
        let stop = stops.get(next).copied().unwrap_or(total);
        let mut p = done;
        while p < stop {
            let step_end = (p + 256).min(stop);
            scratch.clear();
            decode_packets(&mut dec, packets, p, step_end, &mut scratch)?;
            p = step_end;
        }
        done = stop;
        if next < stops.len() {
            at_stop(stop, &dec)?;
            next += 1;
        }
    }
    Ok(())
}

/// Samples of audio a seed's warm-up should cover: enough for the packets to rewrite
/// CELT's 2,168-sample history, after which the state reached nearly always equals the
/// true one bit for bit (measured on 2 h of 64 kbit/s mono: warm-ups of 3 packets of
/// 20 ms left 6 of 600 states different in a few bits, 10 packets none). The residual
/// corrects what differs; each packet of warm-up costs decoding time at every restore.
const WARMUP_SAMPLES: u64 = 3_840;

/// Packets of warm-up before each seeded checkpoint: `WARMUP_SAMPLES` worth at the
/// stream's mean packet duration, at least 4.
fn warmup_packets(index: &PageIndex) -> u64 {
    let per_packet = index.total_samples() / index.total_packets().max(1);
    WARMUP_SAMPLES
        .div_ceil(per_packet.max(1))
        .clamp(4, MAX_WARMUP_PACKETS)
}

/// Decodes packets `from..to` starting from the portable state `seed`; the decoder
/// reached is the reconstruction a seeded checkpoint's residual corrects.
fn warm_up(
    seed: &[u8],
    rate: u32,
    mapping: &ChannelMapping,
    packets: Packets,
    from: u64,
    to: u64,
) -> Result<Decoder, CodecError> {
    let opus = CodecError::opus(packets.path);
    let mut dec = Decoder::new(rate, mapping).map_err(&opus)?;
    dec.import_state(seed).map_err(&opus)?;
    let mut scratch = Vec::new();
    decode_packets(&mut dec, packets, from, to, &mut scratch)?;
    Ok(dec)
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// Checkpoint `j` of `stored` as a live decoder: a full state imported, or a seeded
/// one warmed up and corrected; either way checked against its digest first.
pub fn restore_checkpoint(
    stored: &StoredCheckpoints,
    j: usize,
    rate: u32,
    mapping: &ChannelMapping,
    packets: Packets,
) -> Result<Decoder, CodecError> {
    let opus = CodecError::opus(packets.path);
    let image = match stored.state(j)? {
        StoredState::Full(image) => image,
        StoredState::Seeded {
            seed,
            residual,
            from_packet,
        } => {
            let to = stored.rows[j].packet;
            let warm = warm_up(&seed, rate, mapping, packets, from_packet, to)?;
            let image = xor(&warm.export_state().map_err(&opus)?, &residual);
            stored.check(j, &image)?;
            image
        }
    };
    let mut dec = Decoder::new(rate, mapping).map_err(&opus)?;
    dec.import_state(&image).map_err(&opus)?;
    Ok(dec)
}

/// Writes seeded checkpoints for a stream of channel layout `mapping` at `rel` in `store` (a
/// `checkpoints` group).
pub fn write_checkpoints(
    stream: &dyn StreamBytes,
    index: &PageIndex,
    meta: &RecordingMeta,
    mapping: &ChannelMapping,
    path: &Location,
    at: CheckpointsAt,
    interval: u64,
) -> Result<usize, CodecError> {
    let warmup = warmup_packets(index);
    let target = CheckpointTarget {
        store: at.store,
        rel: at.rel,
        interval,
        warmup,
    };
    write_seeded(stream, index, meta, mapping, path, &target)
}

/// Where checkpoints are written: a `checkpoints` group at archive-relative `rel`.
#[derive(Clone, Copy)]
pub struct CheckpointsAt<'a> {
    pub store: &'a Store,
    pub rel: &'a str,
}

/// Where and how `write_seeded` stores checkpoints.
struct CheckpointTarget<'a> {
    store: &'a Store,
    rel: &'a str,
    interval: u64,
    warmup: u64,
}

fn write_seeded(
    stream: &dyn StreamBytes,
    index: &PageIndex,
    meta: &RecordingMeta,
    mapping: &ChannelMapping,
    path: &Location,
    target: &CheckpointTarget,
) -> Result<usize, CodecError> {
    let CheckpointTarget {
        store,
        rel,
        interval,
        warmup,
    } = *target;
    if !portable_states_work(mapping) {
        return Err(damaged(
            path,
            "this libopus build fails the checkpoint self-test; refusing to store checkpoints"
                .into(),
        ));
    }
    let opus = CodecError::opus(path);
    let packets = Packets {
        stream,
        index,
        path,
    };
    let fp = current_fingerprint(mapping);
    let plan = plan_checkpoints(index, meta, interval);
    let mut w = CheckpointWriter::create(store, rel, &fp, interval, warmup, plan.clone())?;
    // One decode of the whole stream stops at every seed and every checkpoint. The
    // seed of checkpoint i is taken `warmup` packets before it; with close spacing it
    // can precede earlier checkpoints, so seeds wait in a queue.
    let seed_at = |i: usize| plan[i].0.saturating_sub(warmup);
    let mut stops: Vec<u64> = (0..plan.len())
        .flat_map(|i| [seed_at(i), plan[i].0])
        .collect();
    stops.sort_unstable();
    stops.dedup();
    let mut seeds = std::collections::VecDeque::new();
    let (mut si, mut ci) = (0usize, 0usize);
    build_checkpoints(stream, index, meta, mapping, path, &stops, |p, dec| {
        while si < plan.len() && seed_at(si) == p {
            seeds.push_back(dec.seed_image().map_err(&opus)?);
            si += 1;
        }
        while ci < plan.len() && plan[ci].0 == p {
            let seed = seeds.pop_front().expect("a seed precedes its checkpoint");
            let state = dec.export_state().map_err(&opus)?;
            let warm = warm_up(&seed, meta.sample_rate, mapping, packets, seed_at(ci), p)?;
            let residual = xor(&state, &warm.export_state().map_err(&opus)?);
            w.push(&state, &seed, &residual)?;
            ci += 1;
        }
        Ok(())
    })?;
    w.finish()?;
    Ok(plan.len())
}

/// Where the decoder state for each span comes from.
enum States {
    /// Stored checkpoints made by this very decoder build.
    Stored(Arc<StoredCheckpoints>),
    /// Rebuilt in memory by decoding from the start; `None` until first needed.
    Memory(Vec<Option<Arc<Decoder>>>),
}

/// An Opus recording opened for decoding.
pub struct OpusSource {
    store: Arc<RecordingStore>,
    index: PageIndex,
    meta: RecordingMeta,
    /// The OpusHead's channel layout, which every decoder is made with.
    mapping: ChannelMapping,
    path: Location,
    /// (packet, sample) at the start of spans 1..; span 0 starts at packet 0.
    positions: Vec<(u64, u64)>,
    starts: Vec<u64>,
    states: Mutex<States>,
}

/// Where each span starts (audible frames) given checkpoints at `positions` (packet,
/// decoder sample): the first span at 0, one more at each checkpoint. Positions that
/// are out of order or outside the stream are damage.
pub fn span_starts(
    positions: &[(u64, u64)],
    index: &PageIndex,
    meta: &RecordingMeta,
    path: &Location,
) -> Result<Vec<u64>, CodecError> {
    let lo = meta.pre_skip_samples();
    let end = lo + meta.frames;
    let mut starts = vec![0u64];
    for (i, &(p, s)) in positions.iter().enumerate() {
        let ok = s > lo
            && s < end
            && p < index.total_packets()
            && i.checked_sub(1)
                .is_none_or(|h| positions[h].0 < p && positions[h].1 < s);
        if !ok {
            return Err(damaged(
                path,
                format!("checkpoint {i} position ({p}, {s}) is impossible"),
            ));
        }
        starts.push(s - lo);
    }
    Ok(starts)
}

impl OpusSource {
    /// Opens a recording: reads and verifies its index, and decides whether its stored
    /// checkpoints can be used (fingerprint equal to the running decoder's) or must be
    /// rebuilt in memory (with a warning).
    pub fn open(store: Arc<RecordingStore>) -> Result<Self, CodecError> {
        let meta = store.meta().clone();
        let path = store.dir();
        let index = store.read_index()?;
        let head = store.read_opus_head()?;
        let mapping = head.mapping;
        // The metadata repeats what the stream says; recordings older than the metadata
        // digest (format version 5) are held to the stream here.
        if u16::from(mapping.channels()) != meta.channels {
            return Err(damaged(
                &path,
                format!(
                    "metadata says {} channels, the OpusHead {}",
                    meta.channels,
                    mapping.channels()
                ),
            ));
        }
        if u32::from(head.pre_skip) != meta.pre_skip {
            return Err(damaged(
                &path,
                format!(
                    "metadata says a pre-skip of {}, the OpusHead {}",
                    meta.pre_skip, head.pre_skip
                ),
            ));
        }
        let end = u64::from(meta.pre_skip) + meta.frames * meta.granule_factor();
        if index.final_granule() != Some(end) || end > index.total_samples() * meta.granule_factor()
        {
            return Err(damaged(
                &path,
                format!(
                    "metadata says {} frames after a pre-skip of {}, the stream ends at granule position {:?}",
                    meta.frames,
                    meta.pre_skip,
                    index.final_granule()
                ),
            ));
        }
        let stored = match store.read_checkpoints() {
            // A build whose self-test fails never trusts stored states, even ones whose
            // fingerprint (including the "failed" self-test) equals its own.
            Ok(Some(c))
                if c.fingerprint == current_fingerprint(&mapping)
                    && portable_states_work(&mapping) =>
            {
                Some(c)
            }
            Ok(Some(_)) => {
                log::warn!(
                    "{}: checkpoints were made by a different libopus build; rebuilding them in memory (run `zarr-wavfs index` to store new ones)",
                    path
                );
                None
            }
            Ok(None) => {
                log::warn!("{}: no checkpoints stored; rebuilding them in memory", path);
                None
            }
            Err(e) => {
                log::warn!("{e}; rebuilding checkpoints in memory");
                None
            }
        };
        let positions: Vec<(u64, u64)> = match &stored {
            Some(c) => c.positions(),
            None => plan_checkpoints(
                &index,
                &meta,
                (super::DEFAULT_CHECKPOINT_INTERVAL_SECS * f64::from(meta.sample_rate)) as u64,
            ),
        };
        let starts = span_starts(&positions, &index, &meta, &path)?;
        let states = match stored {
            Some(c) => States::Stored(Arc::new(c)),
            None => States::Memory(vec![None; positions.len()]),
        };
        Ok(OpusSource {
            store,
            index,
            meta,
            mapping,
            path,
            positions,
            starts,
            states: Mutex::new(states),
        })
    }

    /// Whether spans come from stored checkpoints (false: rebuilt in memory).
    pub fn uses_stored_checkpoints(&self) -> bool {
        matches!(*self.states.lock(), States::Stored(_))
    }

    /// This recording's packets.
    fn packets(&self) -> Packets<'_> {
        Packets {
            stream: &*self.store,
            index: &self.index,
            path: &self.path,
        }
    }

    fn fresh(&self) -> Result<Decoder, CodecError> {
        Decoder::new(self.meta.sample_rate, &self.mapping).map_err(CodecError::opus(&self.path))
    }

    /// First packet of span `j`.
    fn packet_of_span(&self, j: usize) -> u64 {
        if j == 0 { 0 } else { self.positions[j - 1].0 }
    }

    /// The packets of spans `spans` (non-empty).
    fn packets_of(&self, spans: std::ops::Range<usize>) -> std::ops::Range<u64> {
        let end = self
            .positions
            .get(spans.end - 1)
            .map_or(self.index.total_packets(), |&(p, _)| p);
        self.packet_of_span(spans.start)..end
    }

    /// The decoder state at the start of span `j`.
    ///
    /// The `states` lock is never held while reading the archive or decoding: zarrs
    /// runs parts of a read as rayon jobs, and rayon threads (prefetch) may be waiting
    /// for this very lock, which would deadlock. Two threads rebuilding the same states
    /// in memory may therefore duplicate work; the states they store are identical.
    fn state_for(&self, j: usize) -> Result<Decoder, CodecError> {
        if j == 0 {
            return self.fresh();
        }
        let stored = match &*self.states.lock() {
            States::Stored(c) => Some(c.clone()),
            States::Memory(_) => None,
        };
        if let Some(c) = stored {
            if let (Encoding::Seeded { warmup_packets }, Some(row)) =
                (c.encoding, c.rows.get(j - 1))
            {
                // The warm-up's pages, then span j's, are read one after the other: ask
                // for both at once (one round trip to a remote store, not two).
                let from = row.packet.saturating_sub(warmup_packets);
                let (first, last) = pages_holding(&self.index, from, self.packets_of(j..j + 1).end);
                self.store.will_read(self.index.byte_range(first, last));
            }
            let loaded = restore_checkpoint(
                &c,
                j - 1,
                self.meta.sample_rate,
                &self.mapping,
                self.packets(),
            );
            match loaded {
                Ok(d) => return Ok(d),
                Err(e) => {
                    // A damaged snapshot must not give different audio: rebuild from the stream.
                    log::warn!("{e}; rebuilding this recording's checkpoints in memory");
                    let mut states = self.states.lock();
                    if matches!(*states, States::Stored(_)) {
                        *states = States::Memory(vec![None; self.positions.len()]);
                    }
                }
            }
        }
        // Decode forward from the nearest earlier known state, keeping each state passed.
        let (mut dec, mut at) = {
            let states = self.states.lock();
            let States::Memory(memo) = &*states else {
                unreachable!("only ever switched from Stored to Memory")
            };
            if let Some(d) = &memo[j - 1] {
                return Ok(Decoder::clone(d));
            }
            match (0..j - 1)
                .rev()
                .find_map(|i| memo[i].as_ref().map(|d| (i + 1, d)))
            {
                Some((span, d)) => (Decoder::clone(d), span),
                None => (self.fresh()?, 0),
            }
        };
        let mut scratch = Vec::new();
        while at < j {
            scratch.clear();
            decode_packets(
                &mut dec,
                self.packets(),
                self.packet_of_span(at),
                self.packet_of_span(at + 1),
                &mut scratch,
            )?;
            at += 1;
            if let States::Memory(memo) = &mut *self.states.lock() {
                memo[at - 1] = Some(Arc::new(dec.clone()));
            }
        }
        Ok(dec)
    }

    /// Decodes span `j` with `dec`, the decoder at the span's start (left at its end).
    fn decode_span_from(
        &self,
        dec: &mut Decoder,
        j: usize,
        buffer: Samples,
    ) -> Result<Samples, CodecError> {
        let packets = self.packets_of(j..j + 1);
        let first_sample = if j == 0 { 0 } else { self.positions[j - 1].1 };
        let end_sample = self
            .positions
            .get(j)
            .map_or(self.index.total_samples(), |&(_, s)| s);
        let ch = usize::from(self.meta.channels);
        // Room for one packet more than the span: `Decoder::decode` reserves a whole
        // maximal packet before each packet, and must not double the buffer at the last.
        let mut out = match buffer {
            Samples::I16(v) => v,
            _ => Vec::new(),
        };
        out.reserve_exact((end_sample - first_sample) as usize * ch + MAX_PACKET_SAMPLES * ch);
        decode_packets(dec, self.packets(), packets.start, packets.end, &mut out)?;
        if out.len() as u64 != (end_sample - first_sample) * ch as u64 {
            return Err(damaged(
                &self.path,
                format!(
                    "span {j} decoded to {} samples, index says {}",
                    out.len() / ch,
                    end_sample - first_sample
                ),
            ));
        }
        // Keep only the audible frames: drop pre-skip before, end padding after.
        let lo = self.meta.pre_skip_samples();
        let r = self.span_range(j);
        let (a, b) = (
            (r.start + lo - first_sample) as usize * ch,
            (r.end + lo - first_sample) as usize * ch,
        );
        out.truncate(b);
        out.drain(..a);
        Ok(Samples::I16(out))
    }
}

impl SpanSource for OpusSource {
    fn channels(&self) -> u16 {
        self.meta.channels
    }

    fn frames(&self) -> u64 {
        self.meta.frames
    }

    fn span_starts(&self) -> &[u64] {
        &self.starts
    }

    fn kind(&self) -> SampleKind {
        SampleKind::Int(16)
    }

    fn decode_span(&self, j: usize, buffer: Samples) -> Result<Samples, CodecError> {
        self.decode_span_from(&mut self.state_for(j)?, j, buffer)
    }

    fn will_need(&self, spans: std::ops::Range<usize>) {
        if spans.is_empty() {
            return;
        }
        let packets = self.packets_of(spans);
        if !packets.is_empty() {
            let (first, last) = pages_holding(&self.index, packets.start, packets.end);
            self.store.will_need(self.index.byte_range(first, last));
        }
    }

    fn decode_run(
        &self,
        spans: std::ops::Range<usize>,
        buffer: &mut dyn FnMut() -> Samples,
        emit: &mut dyn FnMut(usize, Result<Samples, CodecError>),
    ) {
        // The decoder at the start of span j, once a span before it decoded: decoding a
        // span leaves it exactly at the next checkpoint. After an error the next span
        // restores its own checkpoint.
        let mut next: Option<Decoder> = None;
        for j in spans {
            let result = match next.take() {
                Some(dec) => Ok(dec),
                None => self.state_for(j),
            }
            .and_then(|mut dec| {
                let samples = self.decode_span_from(&mut dec, j, buffer())?;
                next = Some(dec);
                Ok(samples)
            });
            emit(j, result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Archive;
    use crate::archive::checkpoints::Encoding;
    use crate::import::Codec;

    /// A 20 s mono Opus recording (a sweep in noise) with checkpoints every 2 s.
    fn recording(dir: &std::path::Path) -> (Archive, RecordingStore) {
        crate::test_support::recording(dir, 20, Codec::Opus)
    }

    /// The true decoder state before each of `packets`, from one sequential decode.
    fn sequential_states(store: &RecordingStore, packets: &[u64]) -> Vec<Vec<u8>> {
        let index = store.read_index().unwrap();
        let mapping = store.read_opus_head().unwrap().mapping;
        let mut out = Vec::new();
        build_checkpoints(
            store,
            &index,
            store.meta(),
            &mapping,
            &store.dir(),
            packets,
            |_, d| {
                out.push(d.export_state().unwrap());
                Ok(())
            },
        )
        .unwrap();
        out
    }

    /// Every stored state of `store`, restored, equals the sequential decoder's.
    fn assert_every_state_restores(store: &RecordingStore, stored: &StoredCheckpoints) {
        let packets: Vec<u64> = stored.rows.iter().map(|r| r.packet).collect();
        let truth = sequential_states(store, &packets);
        let index = store.read_index().unwrap();
        let mapping = store.read_opus_head().unwrap().mapping;
        let dir = store.dir();
        let packets = Packets {
            stream: store,
            index: &index,
            path: &dir,
        };
        for (j, want) in truth.iter().enumerate() {
            let got = restore_checkpoint(stored, j, 48_000, &mapping, packets).unwrap();
            assert!(
                &got.export_state().unwrap() == want,
                "checkpoint {j} differs"
            );
        }
    }

    #[test]
    fn a_run_decodes_the_same_spans_as_each_span_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let (_archive, store) = recording(tmp.path());
        let src = OpusSource::open(Arc::new(store)).unwrap();
        let n = src.span_starts().len();
        assert!(n >= 9, "{n} spans");
        let alone: Vec<Samples> = (0..n)
            .map(|j| src.decode_span(j, Samples::I16(Vec::new())).unwrap())
            .collect();
        // From the start, and from a restored checkpoint in the middle.
        for from in [0, 3] {
            let mut got = Vec::new();
            src.decode_run(from..n, &mut || Samples::I16(Vec::new()), &mut |j, r| {
                got.push((j, r.unwrap()))
            });
            assert_eq!(got.len(), n - from);
            for (j, samples) in got {
                assert!(samples == alone[j], "span {j} of a run from {from} differs");
            }
        }
    }

    #[test]
    fn will_need_starts_reading_the_spans_pages() {
        let tmp = tempfile::tempdir().unwrap();
        let (_archive, store) = recording(tmp.path());
        let chunk = store.local_dir().unwrap().join("stream/c/0");
        let src = OpusSource::open(Arc::new(store)).unwrap();
        assert!(src.span_starts().len() >= 9);
        // The pages of spans 4 and 5, and one well past them.
        let first = src.index.first_page_for_packet(src.packet_of_span(4));
        let last = src.index.page_ending_packet(src.positions[5].0 - 1);
        let rows = src.index.rows().len();
        let far = src.index.byte_range(rows - 1, rows - 1).start;
        crate::test_support::assert_hint_reads(
            &chunk,
            src.index.byte_range(first, last),
            far,
            || src.will_need(4..6),
        );
    }

    #[test]
    fn seeded_states_restore_exactly_and_take_under_a_kibibyte() {
        let tmp = tempfile::tempdir().unwrap();
        let (_archive, store) = recording(tmp.path());
        let stored = store.read_checkpoints().unwrap().unwrap();
        assert_eq!(stored.encoding, Encoding::Seeded { warmup_packets: 4 });
        assert!(stored.rows.len() >= 9, "{} checkpoints", stored.rows.len());
        assert_every_state_restores(&store, &stored);
        // A full mono state compresses to about 8 KB; a seed without its history and a
        // residual of (nearly) zeros to a few hundred bytes.
        let per_state = stored.disk_bytes() / stored.rows.len() as u64;
        assert!(per_state < 1024, "{per_state} bytes per checkpoint on disk");
    }

    #[test]
    fn residuals_correct_a_warm_up_too_short_to_converge() {
        let tmp = tempfile::tempdir().unwrap();
        let (_archive, store) = recording(tmp.path());
        let rel = store.key("checkpoints");
        store.store().erase_prefix(&rel).unwrap();
        let index = store.read_index().unwrap();
        let mapping = store.read_opus_head().unwrap().mapping;
        // One packet of warm-up never rewrites CELT's whole history: every residual is
        // non-zero, and restoring must still give the true states.
        let target = CheckpointTarget {
            store: store.store(),
            rel: &rel,
            interval: 96_000,
            warmup: 1,
        };
        write_seeded(
            &store,
            &index,
            store.meta(),
            &mapping,
            &store.dir(),
            &target,
        )
        .unwrap();
        let stored = store.read_checkpoints().unwrap().unwrap();
        assert_eq!(stored.encoding, Encoding::Seeded { warmup_packets: 1 });
        for j in 0..stored.rows.len() {
            let Ok(StoredState::Seeded { residual, .. }) = stored.state(j) else {
                panic!("checkpoint {j} is not seeded")
            };
            assert!(
                residual.iter().any(|&b| b != 0),
                "checkpoint {j}: zero residual"
            );
        }
        assert_every_state_restores(&store, &stored);
    }
}
