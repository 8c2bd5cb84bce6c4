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
//! A packet the decoder rejects is skipped with a warning (the output loses that packet's
//! duration), as media players do; a stream that ends mid-packet ends there.

use std::fs::File;
use std::io::{Seek, SeekFrom};
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
    skipped_packets: u64,
}

impl CompressedReader {
    pub(super) fn open(path: &Path, mut file: File) -> Result<Self, InputError> {
        file.seek(SeekFrom::Start(0))
            .map_err(|e| InputError::io(path, e))?;
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
            skipped_packets: 0,
        };
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
            let decoder = &mut self.decoder;
            let spec = &mut self.spec;
            let (floats, ints) = (&mut self.floats, &mut self.ints);
            let decoded = guard(&path, format, || {
                Ok(match decoder.decode(&packet) {
                    Ok(buf) => Ok(take_samples(buf, spec, floats, ints)),
                    Err(e) => Err(e),
                })
            })?;
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
                    self.skipped_packets += 1;
                    if self.skipped_packets == 1 {
                        log::warn!(
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
        if self.skipped_packets > 1 {
            log::warn!(
                "{}: skipped {} undecodable packets in all",
                self.path.display(),
                self.skipped_packets
            );
        }
        self.floats.clear();
        self.ints.clear();
        self.pos = 0;
        false
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
