//! MP3, Ogg Vorbis, AAC (ADTS or MP4) and ALAC (MP4), decoded through symphonia.
//!
//! The lossy codecs come out as `Float32` with `lossy: true` and `frames: None`: their
//! length is whatever the decode gives. MP3 is gapless when the file has a LAME/Xing
//! header (every LAME or ffmpeg encode): the encoder delay and padding are trimmed, so the
//! frame count equals the source's. Vorbis is trimmed by its granule positions and is
//! exact too. AAC is not trimmed by symphonia: expect the encoder's priming (usually 1024
//! frames) at the start and up to one packet (1024 frames) of padding at the end. ALAC is
//! lossless: `Int` at the file's bit depth, `lossy: false`.
//!
//! The container's tags that have a RIFF INFO counterpart become the recording's
//! `LIST`/`INFO` chunk (`chunks::info::from_tags`).
//!
//! A packet the decoder rejects is skipped, as media players do, and so is what the
//! demuxer drops (an Ogg page that fails its CRC): the output loses that audio. Both are
//! counted, with the stream time of the first and the duration lost, and reported by
//! [`InputReader::damage`] (the importer refuses such a file unless asked to take what
//! decodes). A gap is seen in the packets' timestamps: a packet that starts later than
//! the previous one ended. A stream that ends mid-packet ends there, with a warning.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use symphonia::core::audio::GenericAudioBufferRef;
use symphonia::core::codecs::audio::AudioDecoder;
use symphonia::core::codecs::audio::well_known::{
    CODEC_ID_AAC, CODEC_ID_ALAC, CODEC_ID_MP3, CODEC_ID_VORBIS,
};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::RawValue;
use symphonia::core::units::TimeBase;

use crate::archive::ogg::crc_update;
use crate::chunks::Collector;
use crate::chunks::info::from_tags;

use super::{Block, InputError, InputReader, InputSpec, SampleKind, guard, start_time};

pub(super) struct CompressedReader {
    path: PathBuf,
    demuxer: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    spec: InputSpec,
    /// Decoded samples not handed out yet: `floats` or `ints` by the spec's kind.
    floats: Vec<f32>,
    ints: Vec<i32>,
    pos: usize,
    lost: Lost,
}

/// What a decode left out: packets the decoder rejected and gaps between packets (the
/// demuxer dropped some), in the track's timestamp units.
#[derive(Debug, Default)]
struct Lost {
    /// Seconds per timestamp unit.
    tick: f64,
    rejected: u64,
    gaps: u64,
    /// Timestamp units lost in all (rejected packets' durations and gaps).
    units: u64,
    /// Stream time of the first loss, in timestamp units.
    first_at: Option<i64>,
    /// Where the last packet ended: the next one should start here.
    next: Option<i64>,
    /// Where the track ends, when the container says so exactly (Ogg: the last page's
    /// granule position; MP4: the sample table), not from an estimate.
    stated_end: Option<i64>,
    /// Timestamp units missing at the end (the track ends before it says).
    short: u64,
    /// What an Ogg file's pages show.
    ogg: Option<OggDamage>,
}

impl Lost {
    /// Takes note of a packet of the track at `pts` with `dur` units of audio, ending at
    /// the latest `span` units after `pts`, decoded or `rejected`.
    fn packet(&mut self, pts: i64, dur: u64, span: u64, rejected: bool) {
        if let Some(next) = self.next
            && pts > next
        {
            self.gaps += 1;
            self.units = self.units.saturating_add(pts.abs_diff(next));
            self.first_at.get_or_insert(next);
        }
        if rejected {
            self.rejected += 1;
            self.units = self.units.saturating_add(dur);
            self.first_at.get_or_insert(pts);
        }
        let end = pts.saturating_add(i64::try_from(span).unwrap_or(i64::MAX));
        self.next = Some(self.next.map_or(end, |n| n.max(end)));
    }

    /// At the end of the stream: a track that ends before its stated end lost its tail
    /// (a damaged page near the end, the file cut short).
    fn end(&mut self) {
        if let (Some(next), Some(end)) = (self.next, self.stated_end)
            && next < end
        {
            self.short = end.abs_diff(next);
            self.units = self.units.saturating_add(self.short);
            self.first_at.get_or_insert(next);
            self.stated_end = None;
        }
    }

    fn describe(&self) -> Option<String> {
        let mut what = Vec::new();
        if self.rejected > 0 {
            what.push(plural(self.rejected, "packet", "packets") + " could not be decoded");
        }
        if self.gaps > 0 {
            what.push(plural(self.gaps, "part", "parts") + " of the stream could not be read");
        }
        if self.short > 0 {
            what.push(format!(
                "the stream ends {:.3} s before its stated length",
                self.short as f64 * self.tick
            ));
        }
        let mut out = what.join(" and ");
        if let Some(first) = self.first_at {
            out += &format!(
                " (at {:.2} s; {:.3} s of audio lost)",
                first as f64 * self.tick,
                self.units as f64 * self.tick
            );
        }
        if let Some(ogg) = self.ogg.as_ref().and_then(OggDamage::describe) {
            if !out.is_empty() {
                out += "; ";
            }
            out += &ogg;
        }
        (!out.is_empty()).then_some(out)
    }
}

/// "1 packet", "2 packets".
fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What an Ogg file's pages show that symphonia's demuxer passes over with a log line
/// only: pages that fail their CRC (dropped whole, with the packets on them), pages
/// missing from a logical stream (gaps in its sequence numbers: a page whose capture
/// pattern is damaged is not even seen as a page), and a last page cut short. Bytes
/// between pages that are not pages are passed over (a tag appended to the file loses
/// no audio). Found by one read of the file before it is decoded; the lost audio's
/// time comes from the packets' timestamps.
#[derive(Debug, Default, PartialEq, Eq)]
struct OggDamage {
    bad_pages: u64,
    missing_pages: u64,
    cut_short: bool,
    /// Byte offset of the first damage.
    first_at: Option<u64>,
}

/// The Ogg capture pattern, which starts every page.
const OGG_CAPTURE: &[u8; 4] = b"OggS";
/// An Ogg page header without its segment table.
const OGG_HEADER: usize = 27;

impl OggDamage {
    /// The damage of the file `f` if it is an Ogg file (by its first bytes), leaving it
    /// at its start either way.
    fn of(f: &mut File) -> std::io::Result<Option<OggDamage>> {
        let mut magic = [0u8; 4];
        let ogg = f.read_exact(&mut magic).is_ok() && &magic == OGG_CAPTURE;
        f.seek(SeekFrom::Start(0))?;
        if !ogg {
            return Ok(None);
        }
        let d = Self::scan(&mut *f)?;
        f.seek(SeekFrom::Start(0))?;
        Ok((d != OggDamage::default()).then_some(d))
    }

    fn scan(r: impl Read) -> std::io::Result<OggDamage> {
        let mut w = Window::new(r);
        let mut d = OggDamage::default();
        let mut sequences = std::collections::HashMap::<u32, u32>::new();
        // After a bad page, the next page's sequence number is one past a page already
        // counted.
        let mut after_bad = false;
        loop {
            w.fill(OGG_HEADER + 255)?;
            let head = w.bytes(OGG_HEADER + 255);
            if head.is_empty() {
                break;
            }
            if !head.starts_with(OGG_CAPTURE) {
                let skip = match head.windows(4).skip(1).position(|x| x == OGG_CAPTURE) {
                    Some(i) => i + 1,
                    None if w.eof => head.len(),
                    // The last three bytes may begin a capture pattern.
                    None => head.len().saturating_sub(3).max(1),
                };
                w.advance(skip);
                continue;
            }
            let segments = head.get(26).map(|&n| usize::from(n));
            let Some(lacing) = segments.and_then(|n| head.get(OGG_HEADER..OGG_HEADER + n)) else {
                d.cut_short = true;
                d.note(w.offset());
                break;
            };
            let len =
                OGG_HEADER + lacing.len() + lacing.iter().map(|&l| usize::from(l)).sum::<usize>();
            w.fill(len)?;
            let page = w.bytes(len);
            if page.len() < len {
                d.cut_short = true;
                d.note(w.offset());
                break;
            }
            let page = &page[..len];
            let stored = u32::from_le_bytes(page[22..26].try_into().expect("4 bytes"));
            let crc = crc_update(crc_update(crc_update(0, &page[..22]), &[0; 4]), &page[26..]);
            if crc != stored {
                d.bad_pages += 1;
                d.note(w.offset());
                after_bad = true;
                w.advance(1);
                continue;
            }
            let serial = u32::from_le_bytes(page[14..18].try_into().expect("4 bytes"));
            let sequence = u32::from_le_bytes(page[18..22].try_into().expect("4 bytes"));
            if let Some(last) = sequences.insert(serial, sequence)
                && sequence > last.saturating_add(1)
                && !after_bad
            {
                d.missing_pages += u64::from(sequence - last - 1);
                d.note(w.offset());
            }
            after_bad = false;
            w.advance(len);
        }
        Ok(d)
    }

    fn note(&mut self, offset: u64) {
        self.first_at.get_or_insert(offset);
    }

    fn describe(&self) -> Option<String> {
        let mut what = Vec::new();
        if self.bad_pages > 0 {
            let (one, many) = ("Ogg page fails its CRC", "Ogg pages fail their CRCs");
            what.push(plural(self.bad_pages, one, many));
        }
        if self.missing_pages > 0 {
            let (one, many) = ("Ogg page is missing", "Ogg pages are missing");
            what.push(plural(self.missing_pages, one, many));
        }
        if self.cut_short {
            what.push("the last Ogg page is cut short".to_string());
        }
        let first = self.first_at?;
        Some(format!("{} (from byte {first})", what.join(", ")))
    }
}

/// The bytes of a reader from a position on, a few pages at a time.
struct Window<R> {
    r: R,
    buf: Vec<u8>,
    /// Where in `buf` the position is.
    at: usize,
    /// File offset of `buf[0]`.
    base: u64,
    eof: bool,
}

impl<R: Read> Window<R> {
    fn new(r: R) -> Self {
        Window {
            r,
            buf: Vec::with_capacity(1 << 17),
            at: 0,
            base: 0,
            eof: false,
        }
    }

    fn offset(&self) -> u64 {
        self.base + self.at as u64
    }

    /// Reads until `n` bytes from the position are held (fewer only at the end of the
    /// file).
    fn fill(&mut self, n: usize) -> std::io::Result<()> {
        if self.buf.len() - self.at < n && !self.eof {
            self.buf.drain(..self.at);
            self.base += self.at as u64;
            self.at = 0;
            let mut chunk = [0u8; 1 << 16];
            while self.buf.len() < n {
                match self.r.read(&mut chunk) {
                    Ok(0) => {
                        self.eof = true;
                        break;
                    }
                    Ok(k) => self.buf.extend_from_slice(&chunk[..k]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Up to `n` of the bytes held from the position.
    fn bytes(&self, n: usize) -> &[u8] {
        &self.buf[self.at..self.buf.len().min(self.at + n)]
    }

    fn advance(&mut self, n: usize) {
        self.at = (self.at + n).min(self.buf.len());
    }
}

impl CompressedReader {
    pub(super) fn open(path: &Path, mut file: File) -> Result<Self, InputError> {
        file.seek(SeekFrom::Start(0))
            .map_err(|e| InputError::io(path, e))?;
        let ogg = OggDamage::of(&mut file).map_err(|e| InputError::io(path, e))?;
        let mss = MediaSourceStream::new(Box::new(file), Default::default());
        let mut demuxer = guard(path, "audio", || {
            symphonia::default::get_probe()
                .probe(&Hint::new(), mss, Default::default(), Default::default())
                .map_err(|e| InputError::Unrecognised {
                    path: path.to_path_buf(),
                    detail: e.to_string(),
                })
        })?;
        let no_track = || {
            InputError::unsupported(
                path,
                "audio",
                "no audio track in a codec this program decodes (MP3, Vorbis, AAC-LC, ALAC)",
            )
        };
        let track = demuxer
            .default_track(TrackType::Audio)
            .ok_or_else(no_track)?;
        let track_id = track.id;
        let time_base = track.time_base;
        let exact_length = matches!(demuxer.format_info().short_name, "ogg" | "isomp4");
        let stated_end = track
            .duration
            .filter(|_| exact_length)
            .and_then(|d| i64::try_from(d.get()).ok())
            .map(|d| track.start_ts.get().saturating_add(d));
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or_else(no_track)?
            .clone();
        let (container, kind, lossy) = match params.codec {
            CODEC_ID_MP3 => ("mp3", SampleKind::Float32, true),
            CODEC_ID_VORBIS => ("vorbis", SampleKind::Float32, true),
            CODEC_ID_AAC => ("aac", SampleKind::Float32, true),
            CODEC_ID_ALAC => {
                let bits = params
                    .extra_data
                    .as_deref()
                    .and_then(alac_bit_depth)
                    .ok_or_else(|| {
                        InputError::malformed(
                            path,
                            "alac",
                            "no valid bit depth in the ALAC configuration",
                        )
                    })?;
                ("alac", SampleKind::Int { bits: bits as u16 }, false)
            }
            _ => return Err(no_track()),
        };
        let decoder = guard(path, container, || {
            symphonia::default::get_codecs()
                .make_audio_decoder(&params, &Default::default())
                .map_err(|e| InputError::unsupported(path, container, e.to_string()))
        })?;
        let (tags, pictures) = container_tags(demuxer.as_mut());
        log::debug!("{}: tags {tags:?}", path.display());
        let start_time = start_time::from_tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut kept = Collector::default();
        if let Some(list) = from_tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
            kept.offer(list);
        }
        // What the recording will not have: the other tracks and embedded pictures.
        for t in demuxer.tracks().iter().filter(|t| t.id != track_id) {
            kept.dropped
                .push(format!("track {} (not the default audio track)", t.id));
        }
        for (media_type, bytes) in pictures {
            kept.dropped.push(format!(
                "an embedded picture ({}, {bytes} bytes)",
                media_type.as_deref().unwrap_or("unknown type")
            ));
        }
        let mut reader = CompressedReader {
            path: path.to_path_buf(),
            demuxer,
            decoder,
            track_id,
            spec: InputSpec {
                sample_rate: params.sample_rate.unwrap_or(0),
                channels: params.channels.as_ref().map_or(0, |c| c.count() as u16),
                kind,
                frames: None,
                container,
                lossy,
                start_time,
                chunks: kept.kept,
                dropped: kept.dropped,
            },
            floats: Vec::new(),
            ints: Vec::new(),
            pos: 0,
            lost: Lost::default(),
        };
        reader.lost.tick = tick(time_base, reader.spec.sample_rate);
        reader.lost.stated_end = stated_end;
        reader.lost.ogg = ogg;
        // The first decoded packet settles the rate and channels, which some containers
        // (ADTS) only know from the stream itself.
        if !reader.decode_next()? && (reader.spec.sample_rate == 0 || reader.spec.channels == 0) {
            return Err(InputError::malformed(path, container, "no audio packets"));
        }
        Ok(reader)
    }

    fn pending(&self) -> usize {
        match self.spec.kind {
            SampleKind::Float32 => self.floats.len(),
            SampleKind::Int { .. } => self.ints.len(),
        }
    }

    /// Decodes packets until one gives samples; false at the end of the stream.
    fn decode_next(&mut self) -> Result<bool, InputError> {
        let (path, format) = (self.path.clone(), self.spec.container);
        loop {
            let demuxer = &mut self.demuxer;
            let packet = match guard(&path, format, || Ok(demuxer.next_packet()))? {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(self.finish()),
                Err(SymphoniaError::IoError(e))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    log::warn!(
                        "{}: the stream ends in the middle of a packet",
                        path.display()
                    );
                    return Ok(self.finish());
                }
                Err(SymphoniaError::ResetRequired) => {
                    return Err(InputError::unsupported(
                        &path,
                        format,
                        "chained streams (the track list changes mid-file)",
                    ));
                }
                Err(e) => return Err(InputError::decode(&path, format, e.to_string())),
            };
            if packet.track_id != self.track_id {
                continue;
            }
            if self.lost.tick == 0.0 {
                // The rate came with the first decoded packet (ADTS).
                self.lost.tick = tick(None, self.spec.sample_rate);
            }
            // Where the packet ends, at the latest: readers differ in whether `dur`
            // counts the frames trimmed (MP3 does, Vorbis does not).
            let (pts, dur) = (packet.pts.get(), packet.dur.get());
            let span = dur
                .saturating_add(packet.trim_start.get())
                .saturating_add(packet.trim_end.get());
            let decoder = &mut self.decoder;
            let spec = &mut self.spec;
            let (floats, ints) = (&mut self.floats, &mut self.ints);
            let decoded = guard(&path, format, || {
                Ok(match decoder.decode(&packet) {
                    Ok(buf) => Ok(take_samples(buf, spec, floats, ints)),
                    Err(e) => Err(e),
                })
            })?;
            let rejected = matches!(decoded, Err(SymphoniaError::DecodeError(_)));
            self.lost.packet(pts, dur, span, rejected);
            match decoded {
                Ok(Ok(0)) => continue,
                Ok(Ok(_)) => {
                    self.pos = 0;
                    return Ok(true);
                }
                Ok(Err(message)) => return Err(InputError::malformed(&path, format, message)),
                // A lossless codec (ALAC) must not lose a packet quietly.
                Err(SymphoniaError::DecodeError(m)) if !self.spec.lossy => {
                    return Err(InputError::decode(&path, format, m.to_string()));
                }
                Err(SymphoniaError::DecodeError(m)) => {
                    if self.lost.rejected == 1 {
                        log::debug!(
                            "{}: skipping a {format} packet the decoder rejects ({m}); later ones are counted",
                            path.display()
                        );
                    }
                }
                Err(e) => return Err(InputError::decode(&path, format, e.to_string())),
            }
        }
    }

    fn finish(&mut self) -> bool {
        self.lost.end();
        self.floats.clear();
        self.ints.clear();
        self.pos = 0;
        false
    }
}

/// Seconds per timestamp unit: the track's time base, else one sample at `rate` (the
/// unit of every codec read here when the container gives none); 0 while unknown.
fn tick(time_base: Option<TimeBase>, rate: u32) -> f64 {
    match time_base {
        Some(tb) => f64::from(tb.numer.get()) / f64::from(tb.denom.get()),
        None if rate > 0 => 1.0 / f64::from(rate),
        None => 0.0,
    }
}

/// Copies a decoded buffer out, in the spec's kind; the samples copied, or why the stream
/// changed shape.
fn take_samples(
    buf: GenericAudioBufferRef<'_>,
    spec: &mut InputSpec,
    floats: &mut Vec<f32>,
    ints: &mut Vec<i32>,
) -> Result<usize, String> {
    let rate = buf.spec().rate();
    let channels = buf.spec().channels().count();
    if spec.sample_rate == 0 || spec.channels == 0 {
        spec.sample_rate = rate;
        spec.channels = u16::try_from(channels).map_err(|_| format!("{channels} channels"))?;
    }
    if rate != spec.sample_rate || channels != usize::from(spec.channels) {
        return Err(format!(
            "the stream changes from {} Hz, {} channels to {rate} Hz, {channels} channels",
            spec.sample_rate, spec.channels
        ));
    }
    match spec.kind {
        SampleKind::Float32 => {
            buf.copy_to_vec_interleaved(floats);
            Ok(floats.len())
        }
        SampleKind::Int { bits } => {
            // symphonia left-justifies integers in i32; shift back to the stated depth.
            buf.copy_to_vec_interleaved(ints);
            let shift = 32 - u32::from(bits);
            ints.iter_mut().for_each(|s| *s >>= shift);
            Ok(ints.len())
        }
    }
}

/// The bit depth in an ALAC magic cookie (ALACSpecificConfig, possibly after `frma` and
/// `alac` atom headers), which symphonia does not pass on.
fn alac_bit_depth(mut cookie: &[u8]) -> Option<u32> {
    for atom in [b"frma", b"alac"] {
        if cookie.get(4..8) == Some(atom) {
            cookie = cookie.get(12..)?;
        }
    }
    let bits = u32::from(*cookie.get(5)?);
    (1..=32).contains(&bits).then_some(bits)
}

/// A container's text tags as (raw key, value).
type Tags = Vec<(String, String)>;
/// Embedded pictures as (media type, bytes).
type Pictures = Vec<(Option<String>, usize)>;

/// The container's text tags (every metadata revision, media and per track), raw keys, and
/// its embedded pictures' media types and sizes.
fn container_tags(demuxer: &mut dyn FormatReader) -> (Tags, Pictures) {
    let mut tags = Tags::new();
    let mut pictures = Vec::new();
    let mut md = demuxer.metadata();
    loop {
        if let Some(rev) = md.current() {
            let all = rev
                .media
                .tags
                .iter()
                .chain(rev.per_track.iter().flat_map(|t| t.metadata.tags.iter()));
            for tag in all {
                if let RawValue::String(v) = &tag.raw.value {
                    tags.push((tag.raw.key.clone(), v.to_string()));
                }
            }
            let visuals = rev
                .media
                .visuals
                .iter()
                .chain(rev.per_track.iter().flat_map(|t| t.metadata.visuals.iter()));
            pictures.extend(visuals.map(|v| (v.media_type.clone(), v.data.len())));
        }
        if md.is_latest() {
            break;
        }
        md.pop();
    }
    (tags, pictures)
}

impl InputReader for CompressedReader {
    fn spec(&self) -> &InputSpec {
        &self.spec
    }

    fn damage(&self) -> Option<String> {
        self.lost.describe()
    }

    fn read(&mut self, max_frames: usize) -> Result<Option<Block>, InputError> {
        if self.pos >= self.pending() && !self.decode_next()? {
            return Ok(None);
        }
        let channels = usize::from(self.spec.channels);
        let n = max_frames
            .max(1)
            .min((self.pending() - self.pos) / channels)
            * channels;
        let range = self.pos..self.pos + n;
        self.pos += n;
        Ok(Some(match self.spec.kind {
            SampleKind::Float32 => Block::Float(self.floats[range].to_vec()),
            SampleKind::Int { .. } => Block::Int(self.ints[range].to_vec()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ogg page of logical stream 7 with sequence number `seq` and `body`.
    fn page(seq: u32, body: &[u8]) -> Vec<u8> {
        let mut p = b"OggS\0\0".to_vec();
        p.extend_from_slice(&(u64::from(seq) * 1000).to_le_bytes());
        p.extend_from_slice(&7u32.to_le_bytes());
        p.extend_from_slice(&seq.to_le_bytes());
        p.extend_from_slice(&[0; 4]);
        let mut lacing = vec![255u8; body.len() / 255];
        lacing.push((body.len() % 255) as u8);
        p.push(lacing.len() as u8);
        p.extend_from_slice(&lacing);
        p.extend_from_slice(body);
        let crc = crc_update(0, &p);
        p[22..26].copy_from_slice(&crc.to_le_bytes());
        p
    }

    fn stream(pages: &[Vec<u8>]) -> Vec<u8> {
        pages.concat()
    }

    fn scan(bytes: &[u8]) -> OggDamage {
        OggDamage::scan(bytes).unwrap()
    }

    #[test]
    fn ogg_pages_show_their_damage() {
        let pages: Vec<Vec<u8>> = (0..6).map(|i| page(i, &vec![i as u8; 700])).collect();
        let good = stream(&pages);
        assert_eq!(scan(&good), OggDamage::default());
        assert_eq!(
            scan(&[good.as_slice(), b"TAG and some bytes appended"].concat()),
            OggDamage::default()
        );

        let mut flipped = good.clone();
        let at = pages[0].len() + pages[1].len() + 400;
        flipped[at] ^= 1;
        let d = scan(&flipped);
        assert_eq!((d.bad_pages, d.missing_pages, d.cut_short), (1, 0, false));
        assert_eq!(d.first_at, Some((pages[0].len() + pages[1].len()) as u64));
        assert!(
            d.describe()
                .unwrap()
                .starts_with("1 Ogg page fails its CRC")
        );

        // A damaged capture pattern: the page is not seen at all.
        let mut hidden = good.clone();
        hidden[pages[0].len()] = b'X';
        let d = scan(&hidden);
        assert_eq!((d.bad_pages, d.missing_pages), (0, 1));

        let mut without = pages.clone();
        without.remove(3);
        without.remove(3);
        assert_eq!(scan(&stream(&without)).missing_pages, 2);

        let cut = &good[..good.len() - 100];
        let d = scan(cut);
        assert!(d.cut_short);
        assert_eq!(
            d.describe().unwrap(),
            format!(
                "the last Ogg page is cut short (from byte {})",
                good.len() - pages[5].len()
            )
        );
        assert!(scan(&good[..good.len() - pages[5].len() + 10]).cut_short);
    }
}
