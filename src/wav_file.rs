//! A recording (or a frame range of one) as the bytes of its WAV file, readable at any
//! offset. `extract` and the mount both read through here, so they serve the same bytes.

use std::ops::Range;

use crate::archive::RecordingMeta;
use crate::archive::meta::civil_from_days;
use crate::chunks::served::{self, Bext, Context};
use crate::codec::CodecError;
use crate::engine::Recording;
use crate::wav::{SampleFormat, WavError, WavLayout};

/// The format a recording is served in: `choice` if given, else the one that keeps
/// every sample exactly ([`SampleFormat::natural_for`] its sample kind).
pub fn served_format(choice: Option<SampleFormat>, meta: &RecordingMeta) -> SampleFormat {
    choice.unwrap_or_else(|| SampleFormat::natural_for(meta.sample_kind()))
}

/// The time-expanded view (`--time-expansion N`): recordings recorded above `above` Hz are
/// served with the header's rate divided by `factor` (rounded, at least 1 Hz) and the same
/// samples, so that players play them `factor` times slower, as bat detectors' time
/// expansion does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeExpansion {
    pub factor: u32,
    pub above: u32,
}

/// The default threshold of the time-expanded view: ultrasonic recordings only.
pub const DEFAULT_TIME_EXPANSION_ABOVE: u32 = 96_000;

impl TimeExpansion {
    /// The factor applied to the recording `meta` describes, if any.
    pub fn factor_for(view: Option<TimeExpansion>, meta: &RecordingMeta) -> Option<u32> {
        view.filter(|t| t.factor > 1 && meta.original_sample_rate > t.above)
            .map(|t| t.factor)
    }

    /// The header rate of a recording at `rate` expanded by `factor`.
    pub fn rate(rate: u32, factor: u32) -> u32 {
        let f = u64::from(factor.max(1));
        ((u64::from(rate) + f / 2) / f).max(1) as u32
    }
}

/// The layout of the WAV file of frames `frames` of the recording `meta` describes: its
/// shape, a `bext` chunk with the first frame's time when the start time is known, and
/// the chunks the recording came with; time-expanded by `expansion` if given.
pub fn layout_for(
    meta: &RecordingMeta,
    frames: Range<u64>,
    format: SampleFormat,
    expansion: Option<u32>,
) -> Result<WavLayout, WavError> {
    let n = frames.end.saturating_sub(frames.start);
    let rate = match expansion {
        Some(f) => TimeExpansion::rate(meta.original_sample_rate, f),
        None => meta.original_sample_rate,
    };
    let layout = WavLayout::new(meta.channels, rate, n, format)?;
    let ctx = Context {
        first: frames.start,
        frames: n,
        total: meta.frames,
        bext: bext_for(meta, frames.start, expansion),
        time_expansion: expansion,
    };
    Ok(layout.with_chunks(served::served(&meta.chunks, &ctx)))
}

/// The `bext` chunk of a file starting at frame `first`: the date and time of that
/// frame (UTC, whole seconds) and its exact position in samples since that midnight
/// (samples at the recording's true rate, also in a time-expanded file, whose description
/// says the factor and the true rate).
fn bext_for(meta: &RecordingMeta, first: u64, expansion: Option<u32>) -> Option<Bext> {
    let start = meta
        .start_system_time()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    let rate = u64::from(meta.original_sample_rate);
    let day = start.as_secs() / 86_400;
    // Checked: `first` comes from metadata, which may claim any frame count.
    let since_midnight = ((start.as_secs() % 86_400) * rate
        + (u64::from(start.subsec_nanos()) * rate).div_ceil(1_000_000_000))
    .checked_add(first)?;
    let per_day = 86_400 * rate;
    let (day, at) = (day + since_midnight / per_day, since_midnight % per_day);
    let (y, m, d) = civil_from_days(day);
    let secs = at / rate;
    Some(Bext {
        description: {
            let mut d = meta.source.as_ref().map_or_else(String::new, |s| {
                format!("source: {}, sha256 {}", s.name, s.sha256)
            });
            if let Some(f) = expansion {
                d = format!("time expansion {f}, true rate {rate} Hz; {d}");
            }
            d
        },
        date: format!("{y:04}-{m:02}-{d:02}"),
        time: format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
        time_reference: at,
    })
}

pub struct WavFile {
    rec: Recording,
    layout: WavLayout,
    header: Vec<u8>,
    /// Recording frame at the start of the data chunk.
    first: u64,
    expansion: Option<u32>,
}

impl WavFile {
    /// The WAV file of frames `frames` of `rec` (clamped to the recording), time-expanded
    /// by `expansion` if given.
    pub fn new(
        rec: Recording,
        frames: Range<u64>,
        format: SampleFormat,
        expansion: Option<u32>,
    ) -> Result<Self, WavError> {
        let end = frames.end.min(rec.frames());
        let first = frames.start.min(end);
        let layout = layout_for(rec.meta(), first..end, format, expansion)?;
        let header = layout.header();
        Ok(WavFile {
            rec,
            layout,
            header,
            first,
            expansion,
        })
    }

    /// The WAV file of the whole recording: the file the mount serves.
    pub fn whole(
        rec: Recording,
        format: SampleFormat,
        expansion: Option<u32>,
    ) -> Result<Self, WavError> {
        let frames = rec.frames();
        Self::new(rec, 0..frames, format, expansion)
    }

    /// The same file over `rec`, another opening of the same recording.
    pub fn reopened(&self, rec: Recording) -> Result<Self, WavError> {
        let frames = self.first..self.first + self.layout.frames;
        Self::new(rec, frames, self.layout.format, self.expansion)
    }

    /// The time-expansion factor the file is served with.
    pub fn expansion(&self) -> Option<u32> {
        self.expansion
    }

    pub fn recording(&self) -> &Recording {
        &self.rec
    }

    pub fn layout(&self) -> &WavLayout {
        &self.layout
    }

    pub fn len(&self) -> u64 {
        self.layout.file_len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The span holding the last frame a read of `offset..offset + len` touches, if it
    /// touches any sample.
    pub fn last_span(&self, offset: u64, len: u64) -> Option<usize> {
        let plan = self.layout.map_read(offset, len);
        (!plan.frames.is_empty()).then(|| self.rec.span_of(self.first + plan.frames.end - 1))
    }

    /// Appends the bytes at `offset..offset + len` to `out` (fewer at the end of the
    /// file, none past it).
    pub fn read_at(&self, offset: u64, len: u64, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let plan = self.layout.map_read(offset, len);
        let h = &plan.header;
        out.extend_from_slice(&self.header[h.start as usize..h.end as usize]);
        if plan.data_bytes > 0 {
            let n = plan.frames.end - plan.frames.start;
            let at = out.len();
            let got = self.rec.read_encoded(
                self.first + plan.frames.start,
                n,
                self.layout.format,
                out,
            )?;
            if got as u64 != n {
                return Err(CodecError::Damaged {
                    path: Default::default(),
                    message: format!("{got} of {n} frames decoded"),
                });
            }
            // Keep exactly the bytes asked for: drop the part of the first frame before
            // `offset` and whatever of the last frame lies past the read.
            let skip = plan.skip as usize;
            out.copy_within(at + skip..at + skip + plan.data_bytes as usize, at);
            out.truncate(at + plan.data_bytes as usize);
        }
        out.resize(out.len() + plan.pad as usize, 0);
        Ok(())
    }
}
