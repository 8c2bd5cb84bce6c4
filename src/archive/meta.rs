//! Node attributes: the `zarr_wavfs` object in each group's `zarr.json` (docs/FORMAT.md).

use crate::chunks::{self, Chunk};
use crate::store::Location;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{ATTR_KEY, ArchiveError, FORMAT_VERSION, READ_VERSIONS};

type Attrs = Map<String, Value>;

/// Where a recording came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// File name of the imported input (no directories).
    pub name: String,
    pub size: u64,
    /// SHA-256 of the input file, lower-case hex.
    pub sha256: String,
}

/// What a recording's samples are: its `sample_format` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// Signed integers of this many bits (4 to 32), stored right-justified.
    Int(u16),
    /// 32-bit IEEE float, full scale ±1.0.
    F32,
}

impl SampleKind {
    /// Parses `int4` … `int32` and `float32`.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "float32" {
            return Some(SampleKind::F32);
        }
        let bits: u16 = s.strip_prefix("int")?.parse().ok()?;
        (4..=32).contains(&bits).then_some(SampleKind::Int(bits))
    }

    /// The attribute value: `int16`, `int24`, `float32`, …
    pub fn name(self) -> String {
        match self {
            SampleKind::Int(bits) => format!("int{bits}"),
            SampleKind::F32 => "float32".into(),
        }
    }
}

fn default_sample_format() -> String {
    "int16".into()
}

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// The codecs a recording's audio can be stored with.
pub const CODECS: [&str; 3] = ["flac", "pcm", "opus"];

/// A recording's metadata, exactly as stored. Fields that belong to some codecs only
/// are omitted (and read as zero or empty) for the others; docs/FORMAT.md lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingMeta {
    pub kind: String,
    pub format_version: u64,
    /// How the audio is stored: "flac", "pcm" or "opus".
    pub codec: String,
    pub channels: u16,
    /// Exact number of sample frames the user sees.
    pub frames: u64,
    /// Rate the stored audio runs at. For Opus the decoder's rate (8000, 12000, 16000,
    /// 24000 or 48000); for the lossless codecs the recording's own rate.
    pub sample_rate: u32,
    /// Rate the user sees; differs from `sample_rate` when Opus samples were relabelled.
    pub original_sample_rate: u32,
    /// The decoded samples: "int16" (always for Opus), "int24", "float32", ...
    #[serde(default = "default_sample_format")]
    pub sample_format: String,
    /// Ogg Opus pre-skip, in 48 kHz samples (as in the OpusHead header). Opus only.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pre_skip: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceInfo>,
    /// Length of `stream` in bytes (Opus and FLAC).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stream_bytes: u64,
    /// Number of rows of `index` (Opus: pages; FLAC: frames). Format version 1 called
    /// it `index_pages`.
    #[serde(default, alias = "index_pages", skip_serializing_if = "is_zero")]
    pub index_rows: u64,
    /// SHA-256 of `index`, its rows in order as little-endian i64 (Opus and FLAC).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub index_sha256: String,
    /// Chunks of the source file kept byte for byte, in order (format version 4;
    /// docs/FORMAT.md, "Kept chunks").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<Chunk>,
    /// SHA-256 of the other fields (format version 5; see [`RecordingMeta::digest`]).
    /// Every read depends on them: one flipped bit in `sample_format` or `frames` would
    /// otherwise serve other samples without an error.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub meta_sha256: String,
}

impl RecordingMeta {
    /// Parses and checks a recording's attributes; `dir` labels errors.
    pub fn from_attrs(dir: &Location, attrs: &Attrs) -> Result<Self, ArchiveError> {
        let v = attrs
            .get(ATTR_KEY)
            .ok_or_else(|| ArchiveError::metadata(dir, format!("no \"{ATTR_KEY}\" attribute")))?;
        let m: RecordingMeta = serde_json::from_value(v.clone())
            .map_err(|e| ArchiveError::metadata(dir, format!("recording attributes: {e}")))?;
        m.validate(dir)?;
        Ok(m)
    }

    /// SHA-256 (lower-case hex) of the metadata as this type writes it as JSON, with
    /// `meta_sha256` left out: the fields in declaration order, defaults omitted
    /// (docs/FORMAT.md, "Metadata digest").
    pub fn digest(&self) -> String {
        let unsealed = RecordingMeta {
            meta_sha256: String::new(),
            ..self.clone()
        };
        hex::encode(Sha256::digest(
            serde_json::to_vec(&unsealed).expect("serialisable"),
        ))
    }

    /// The metadata as it is written: with its digest.
    pub fn sealed(&self) -> RecordingMeta {
        RecordingMeta {
            meta_sha256: self.digest(),
            ..self.clone()
        }
    }

    /// Checks the metadata as readers do; `dir` labels errors. Writers check what they
    /// write (`sealed()`) too, so nothing is committed that readers would refuse.
    pub fn validate(&self, dir: &Location) -> Result<(), ArchiveError> {
        let bad = |msg: String| Err(ArchiveError::metadata(dir, msg));
        // First, so that a damaged field is reported as damage, whichever it is
        // (format_version included: a digest is checked whatever the version says).
        if !self.meta_sha256.is_empty() && self.meta_sha256 != self.digest() {
            return Err(ArchiveError::damaged(
                dir,
                "recording metadata does not match its meta_sha256",
            ));
        }
        if !READ_VERSIONS.contains(&self.format_version) {
            return bad(format!(
                "format_version {} is not supported (this build reads {READ_VERSIONS:?})",
                self.format_version
            ));
        }
        if self.format_version >= 5 && self.meta_sha256.is_empty() {
            return bad("meta_sha256 is missing (format version 5 requires it)".into());
        }
        let Some(kind) = SampleKind::parse(&self.sample_format) else {
            return bad(format!(
                "sample_format \"{}\" is not known",
                self.sample_format
            ));
        };
        if let Err(e) = chunks::validate(&self.chunks) {
            return bad(e);
        }
        if self.original_sample_rate == 0 || self.sample_rate == 0 {
            return bad("a sample rate is 0".into());
        }
        let stream = self.stream_bytes > 0 && self.index_rows > 0 && !self.index_sha256.is_empty();
        match self.codec.as_str() {
            "opus" => {
                let max = u16::from(super::opus_head::MAX_FAMILY1_CHANNELS);
                if !(1..=max).contains(&self.channels) {
                    return bad(format!(
                        "channels = {} (Opus recordings have 1 to {max})",
                        self.channels
                    ));
                }
                if ![8000, 12000, 16000, 24000, 48000].contains(&self.sample_rate) {
                    return bad(format!(
                        "sample_rate = {} is not an Opus decoding rate",
                        self.sample_rate
                    ));
                }
                if !self.pre_skip.is_multiple_of(48_000 / self.sample_rate) {
                    return bad(format!(
                        "pre_skip {} is not a whole number of {} Hz samples",
                        self.pre_skip, self.sample_rate
                    ));
                }
                if kind != SampleKind::Int(16) {
                    return bad("Opus recordings decode to int16".into());
                }
                if !stream {
                    return bad("stream_bytes, index_rows and index_sha256 are required".into());
                }
            }
            "flac" => {
                if !(1..=8).contains(&self.channels) {
                    return bad(format!("channels = {} (FLAC has 1 to 8)", self.channels));
                }
                if !matches!(kind, SampleKind::Int(4..=32)) {
                    return bad("FLAC recordings hold integers".into());
                }
                if self.sample_rate != self.original_sample_rate || self.sample_rate > 655_350 {
                    return bad(format!("sample_rate = {} for FLAC", self.sample_rate));
                }
                if !stream {
                    return bad("stream_bytes, index_rows and index_sha256 are required".into());
                }
            }
            "pcm" => {
                if self.channels == 0 || self.channels > 255 {
                    return bad(format!("channels = {} (PCM has 1 to 255)", self.channels));
                }
                if self.sample_rate != self.original_sample_rate {
                    return bad("sample_rate and original_sample_rate differ".into());
                }
            }
            other => return bad(format!("codec \"{other}\" is not supported")),
        }
        if self.format_version == 1 && self.codec != "opus" {
            return bad("format version 1 has only the opus codec".into());
        }
        Ok(())
    }

    /// What the decoded samples are.
    pub fn sample_kind(&self) -> SampleKind {
        SampleKind::parse(&self.sample_format).unwrap_or(SampleKind::Int(16))
    }

    /// Factor from stream samples to 48 kHz granule units.
    pub fn granule_factor(&self) -> u64 {
        u64::from(48_000 / self.sample_rate)
    }

    /// Pre-skip in decoder output samples (at `sample_rate`).
    pub fn pre_skip_samples(&self) -> u64 {
        u64::from(self.pre_skip) / self.granule_factor()
    }

    /// The start time as a point in time, if it is set and well formed.
    pub fn start_system_time(&self) -> Option<std::time::SystemTime> {
        parse_utc(self.start_time.as_deref()?)
    }

    /// Duration in seconds as the user sees it.
    pub fn duration_secs(&self) -> f64 {
        self.frames as f64 / f64::from(self.original_sample_rate)
    }

    /// The `zarr_wavfs` attribute as written: sealed with its digest.
    pub fn to_attrs(&self) -> Attrs {
        let mut m = Attrs::new();
        m.insert(
            ATTR_KEY.into(),
            serde_json::to_value(self.sealed()).expect("serialisable"),
        );
        m
    }
}

/// Parses an ISO 8601 UTC time `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+00:00)`, the form
/// `start_time` is stored in (docs/FORMAT.md). Years before 1970 are refused.
pub fn parse_utc(s: &str) -> Option<std::time::SystemTime> {
    let body = s.strip_suffix('Z').or_else(|| s.strip_suffix("+00:00"))?;
    let (date, time) = body.split_once('T')?;
    let num = |t: &str, len: usize| -> Option<u64> {
        (t.len() == len && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok())?
    };
    let mut d = date.split('-');
    let (y, mo, da) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
    let (hms, frac) = match time.split_once('.') {
        Some((hms, f)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => (hms, f),
        Some(_) => return None,
        None => (time, ""),
    };
    let mut t = hms.split(':');
    let (h, mi, se) = (num(t.next()?, 2)?, num(t.next()?, 2)?, num(t.next()?, 2)?);
    if d.next().is_some() || t.next().is_some() || y < 1970 {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || da == 0 || da > month_days[mo as usize - 1] {
        return None;
    }
    if h > 23 || mi > 59 || se > 59 {
        return None;
    }
    let days_before_year: u64 = (1970..y)
        .map(|yy| {
            if (yy % 4 == 0 && yy % 100 != 0) || yy % 400 == 0 {
                366
            } else {
                365
            }
        })
        .sum();
    let days = days_before_year + month_days[..mo as usize - 1].iter().sum::<u64>() + da - 1;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se;
    let nanos: u32 = format!("{:0<9}", &frac[..frac.len().min(9)]).parse().ok()?;
    Some(std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos))
}

/// The date `days` days after 1970-01-01, as (year, month, day) (proleptic Gregorian;
/// Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + u64::from(m <= 2), m, d)
}

fn kind(attrs: &Attrs) -> Option<&str> {
    attrs.get(ATTR_KEY)?.get("kind")?.as_str()
}

pub fn is_recording(attrs: &Attrs) -> bool {
    kind(attrs) == Some("recording")
}

/// Folders are groups marked as such, or any plain Zarr group without our marker.
pub fn is_folder(attrs: &Attrs) -> bool {
    match kind(attrs) {
        Some(k) => k == "folder",
        None => !attrs.contains_key(ATTR_KEY),
    }
}

pub fn archive_attrs() -> Attrs {
    let mut m = Attrs::new();
    m.insert(
        ATTR_KEY.into(),
        json!({"kind": "archive", "format_version": FORMAT_VERSION}),
    );
    m
}

pub fn folder_attrs() -> Attrs {
    let mut m = Attrs::new();
    m.insert(ATTR_KEY.into(), json!({"kind": "folder"}));
    m
}

pub fn check_archive_marker(root: &Location, attrs: &Attrs) -> Result<(), ArchiveError> {
    let not = |reason: String| {
        Err(ArchiveError::NotAnArchive {
            path: root.clone(),
            reason,
        })
    };
    let Some(v) = attrs.get(ATTR_KEY) else {
        return not(format!("root group has no \"{ATTR_KEY}\" attribute"));
    };
    if v.get("kind").and_then(Value::as_str) != Some("archive") {
        return not("root group is not marked as an archive".into());
    }
    match v.get("format_version").and_then(Value::as_u64) {
        Some(v) if READ_VERSIONS.contains(&v) => Ok(()),
        Some(other) => not(format!(
            "format_version {other} is not supported (this build reads {READ_VERSIONS:?})"
        )),
        None => not("root group has no format_version".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::{RecordingMeta, parse_utc};
    use crate::store::Location;
    use serde_json::{Value, json};

    fn pcm_attrs() -> serde_json::Map<String, Value> {
        let meta: RecordingMeta = serde_json::from_value(json!({
            "kind": "recording", "format_version": 5, "codec": "pcm", "channels": 2,
            "frames": 48000, "sample_rate": 48000, "original_sample_rate": 48000,
            "sample_format": "int16", "start_time": "2025-06-01T04:00:00Z"
        }))
        .unwrap();
        meta.to_attrs()
    }

    fn read(attrs: &serde_json::Map<String, Value>) -> Result<RecordingMeta, String> {
        RecordingMeta::from_attrs(&Location::from(std::path::Path::new("/a/rec")), attrs)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_digest_covers_every_field_and_the_version() {
        let attrs = pcm_attrs();
        assert!(read(&attrs).is_ok());
        for (field, value) in [
            ("sample_format", json!("int12")),
            ("frames", json!(48001)),
            ("format_version", json!(4)),
            ("start_time", json!("2025-06-01T04:00:01Z")),
            ("channels", json!(1)),
        ] {
            let mut a = attrs.clone();
            a["zarr_wavfs"][field] = value;
            let e = read(&a).unwrap_err();
            assert!(e.contains("does not match its meta_sha256"), "{field}: {e}");
        }
        // Fields another tool added mean nothing to a read and are not covered.
        let mut a = attrs.clone();
        a["zarr_wavfs"]["comment"] = json!("added later");
        assert!(read(&a).is_ok());
    }

    #[test]
    fn version_5_requires_the_digest_and_older_versions_do_not() {
        let mut a = pcm_attrs();
        a["zarr_wavfs"]
            .as_object_mut()
            .unwrap()
            .remove("meta_sha256");
        let e = read(&a).unwrap_err();
        assert!(e.contains("meta_sha256 is missing"), "{e}");
        a["zarr_wavfs"]["format_version"] = json!(4);
        assert!(read(&a).is_ok());
    }
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn civil_dates_invert_parse_utc() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2000-02-29T12:00:00Z",
            "2025-06-01T04:00:00Z",
            "2100-03-01T00:00:00Z",
        ] {
            let secs = parse_utc(s)
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let (y, m, d) = super::civil_from_days(secs / 86_400);
            assert_eq!(format!("{y:04}-{m:02}-{d:02}"), s[..10]);
        }
    }

    #[test]
    fn parses_utc_times() {
        let t = |s| parse_utc(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap());
        assert_eq!(t("1970-01-01T00:00:00Z"), Some(Duration::ZERO));
        // `date -u -d 2025-06-01T04:00:00Z +%s`
        assert_eq!(
            t("2025-06-01T04:00:00Z"),
            Some(Duration::from_secs(1_748_750_400))
        );
        assert_eq!(
            t("2024-02-29T23:59:59+00:00"),
            Some(Duration::from_secs(1_709_251_199))
        );
        assert_eq!(
            t("2025-06-01T04:00:00.25Z"),
            Some(Duration::new(1_748_750_400, 250_000_000))
        );
        for bad in [
            "2025-06-01T04:00:00",
            "2025-02-29T00:00:00Z",
            "2025-06-01 04:00:00Z",
            "2025-13-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2025-06-01T04:00:00.Z",
            "2025-06-01T24:00:00Z",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }
}
