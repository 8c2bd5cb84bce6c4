//! `extract`: a WAV file of a whole recording or a time range. For a whole recording
//! the bytes are exactly those the mount serves.

use std::io::Write;

use crate::engine::Recording;
use crate::wav::SampleFormat;
use crate::wav_file::WavFile;

/// A position given on the command line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TimeSpec {
    Seconds(f64),
    Frames(u64),
}

impl TimeSpec {
    /// The frame this position names at `rate` frames per second (rounded down).
    pub fn to_frame(self, rate: u32) -> u64 {
        match self {
            TimeSpec::Frames(f) => f,
            TimeSpec::Seconds(s) => (s * f64::from(rate) + 1e-9).floor() as u64,
        }
    }
}

/// Parses `12.5` (seconds), `hh:mm:ss.sss` / `mm:ss.sss`, or `48000f` (frames).
pub fn parse_time(s: &str) -> Result<TimeSpec, String> {
    let s = s.trim();
    if let Some(f) = s.strip_suffix('f') {
        return f
            .parse()
            .map(TimeSpec::Frames)
            .map_err(|_| format!("bad frame count \"{s}\""));
    }
    let mut secs = 0.0;
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() > 3 {
        return Err(format!(
            "bad time \"{s}\": expected seconds, mm:ss or hh:mm:ss"
        ));
    }
    for (i, p) in parts.iter().enumerate() {
        let v: f64 = p.parse().map_err(|_| format!("bad time \"{s}\""))?;
        if !v.is_finite() || v < 0.0 || (i > 0 && v >= 60.0) {
            return Err(format!("bad time \"{s}\""));
        }
        secs = secs * 60.0 + v;
    }
    Ok(TimeSpec::Seconds(secs))
}

/// Writes frames `start..end` of `rec` as a WAV file to `out`, through the same
/// [`WavFile`] reader the mount uses.
pub fn extract(
    rec: &Recording,
    start: u64,
    end: u64,
    format: SampleFormat,
    expansion: Option<u32>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let file = WavFile::new(rec.clone(), start..end, format, expansion)?;
    let step = 4 << 20;
    let mut buf = Vec::with_capacity(step as usize);
    let mut offset = 0;
    while offset < file.len() {
        buf.clear();
        file.read_at(offset, step, &mut buf)?;
        out.write_all(&buf)?;
        offset += buf.len() as u64;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_time_forms() {
        assert_eq!(parse_time("12.5").unwrap(), TimeSpec::Seconds(12.5));
        assert_eq!(parse_time("01:02:03.5").unwrap(), TimeSpec::Seconds(3723.5));
        assert_eq!(parse_time("2:03").unwrap(), TimeSpec::Seconds(123.0));
        assert_eq!(parse_time("48000f").unwrap(), TimeSpec::Frames(48000));
        assert!(parse_time("1:60").is_err());
        assert!(parse_time("abc").is_err());
        assert!(parse_time("-1").is_err());
        assert_eq!(TimeSpec::Seconds(1.5).to_frame(250_000), 375_000);
    }
}
