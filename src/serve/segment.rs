//! The query of a recording's URL: `?start=12.5&end=20&format=s16`, a segment cut on
//! the server, with times in the forms `extract` takes.

use std::ops::Range;

use crate::archive::RecordingMeta;
use crate::ops::{TimeSpec, parse_time};
use crate::wav::SampleFormat;

/// What a query asks of a recording.
#[derive(Debug, Default, PartialEq)]
pub struct Query {
    pub start: Option<TimeSpec>,
    pub end: Option<TimeSpec>,
    pub format: Option<SampleFormat>,
}

/// A resolved segment: frames of the recording and the format to serve them in.
#[derive(Debug, PartialEq)]
pub struct Segment {
    pub frames: Range<u64>,
    pub format: Option<SampleFormat>,
}

impl Query {
    /// Parses a query string; an unknown or repeated parameter, or a bad value, is an
    /// error with a one-line reason.
    pub fn parse(query: Option<&str>) -> Result<Query, String> {
        let mut q = Query::default();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let time = |v: &str| parse_time(v).map_err(|e| format!("{k}: {e}"));
            match &*k {
                "start" if q.start.is_none() => q.start = Some(time(&v)?),
                "end" if q.end.is_none() => q.end = Some(time(&v)?),
                "format" if q.format.is_none() => {
                    q.format = Some(SampleFormat::parse(&v).ok_or_else(|| {
                        format!("format: \"{v}\" is not one of s16, s24, s32, f32")
                    })?)
                }
                "start" | "end" | "format" => return Err(format!("{k} given twice")),
                _ => return Err(format!("unknown parameter \"{k}\" (start, end, format)")),
            }
        }
        Ok(q)
    }

    pub fn is_empty(&self) -> bool {
        *self == Query::default()
    }

    /// The frames of `meta`'s recording the query names: start defaults to its
    /// beginning and end to its end (an end past it is clamped, as by `extract`).
    pub fn frames(&self, meta: &RecordingMeta) -> Result<Range<u64>, String> {
        let rate = meta.original_sample_rate;
        let start = self.start.map_or(0, |t| t.to_frame(rate));
        let end = self
            .end
            .map_or(meta.frames, |t| t.to_frame(rate).min(meta.frames));
        if start >= meta.frames {
            return Err(format!(
                "start is at or past the end of the recording ({} frames, {:.3} s)",
                meta.frames,
                meta.duration_secs()
            ));
        }
        if end <= start {
            return Err("end must be after start".into());
        }
        Ok(start..end)
    }

    /// The segment to serve, or None for the whole file.
    pub fn segment(&self, meta: &RecordingMeta) -> Result<Option<Segment>, String> {
        if self.is_empty() {
            return Ok(None);
        }
        Ok(Some(Segment {
            frames: self.frames(meta)?,
            format: self.format,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_and_their_errors() {
        let q = Query::parse(Some("start=12.5&end=00:00:20&format=s16")).unwrap();
        assert_eq!(q.start, Some(TimeSpec::Seconds(12.5)));
        assert_eq!(q.end, Some(TimeSpec::Seconds(20.0)));
        assert_eq!(q.format, Some(SampleFormat::S16));
        assert_eq!(
            Query::parse(Some("start=48000f")).unwrap().start,
            Some(TimeSpec::Frames(48000))
        );
        assert!(Query::parse(None).unwrap().is_empty());
        assert!(
            Query::parse(Some("start=x"))
                .unwrap_err()
                .starts_with("start: ")
        );
        assert!(Query::parse(Some("format=u8")).is_err());
        assert!(Query::parse(Some("start=1&start=2")).is_err());
        assert!(
            Query::parse(Some("foo=1"))
                .unwrap_err()
                .contains("unknown parameter")
        );
    }
}
