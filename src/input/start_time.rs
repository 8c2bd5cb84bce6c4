//! Recording start times from metadata inside input files; the rules are in the
//! documentation of the `input` module.

/// A validated civil date and time, seconds resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DateTime {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl DateTime {
    /// Validates the fields: an impossible date or time gives None.
    fn new(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> Option<Self> {
        let valid = (1..=9999).contains(&year)
            && (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && hour < 24
            && minute < 60
            && second < 60;
        valid.then_some(DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }

    /// This local time at `offset_minutes` east of UTC, converted to UTC.
    fn minus_offset(self, offset_minutes: i64) -> Option<Self> {
        let secs = days_from_civil(self.year, self.month, self.day) * 86_400
            + i64::from(self.hour * 3600 + self.minute * 60 + self.second)
            - offset_minutes * 60;
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let s = secs.rem_euclid(86_400) as u32;
        DateTime::new(year, month, day, s / 3600, s / 60 % 60, s % 60)
    }

    fn iso(self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (H. Hinnant's algorithm, proleptic Gregorian calendar).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A cursor over ASCII text for the small fixed grammars below.
struct Cursor<'a> {
    s: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(s: &'a [u8]) -> Self {
        Cursor { s }
    }

    /// Exactly `n` ASCII digits.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let (head, rest) = self.s.split_at_checked(n)?;
        if !head.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.s = rest;
        Some(head.iter().fold(0, |v, d| v * 10 + u32::from(d - b'0')))
    }

    /// One to `max` ASCII digits.
    fn digits_upto(&mut self, max: usize) -> Option<u32> {
        let n = self
            .s
            .iter()
            .take(max)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if n == 0 { None } else { self.digits(n) }
    }

    fn byte(&mut self, b: u8) -> bool {
        self.take_if(|c| c == b).is_some()
    }

    /// Exactly the bytes of `s`.
    fn lit(&mut self, s: &[u8]) -> Option<()> {
        s.iter().all(|&b| self.byte(b)).then_some(())
    }

    fn take_if(&mut self, f: impl Fn(u8) -> bool) -> Option<u8> {
        let (&c, rest) = self.s.split_first()?;
        f(c).then(|| {
            self.s = rest;
            c
        })
    }

    fn skip_fraction(&mut self) {
        if self.byte(b'.') {
            while self.take_if(|c| c.is_ascii_digit()).is_some() {}
        }
    }

    /// A zone offset `±h[h][[:]mm]`, in minutes east of UTC.
    fn offset(&mut self) -> Option<i64> {
        let sign = match self.take_if(|c| c == b'+' || c == b'-')? {
            b'-' => -1,
            _ => 1,
        };
        let hours = self.digits_upto(2)?;
        let minutes = if self.byte(b':') {
            self.digits(2)?
        } else {
            self.digits(2).unwrap_or(0)
        };
        (hours <= 14 && minutes < 60).then(|| sign * i64::from(hours * 60 + minutes))
    }
}

fn sep(c: u8) -> bool {
    !c.is_ascii_digit()
}

/// Rule 1: BWF OriginationDate (10 bytes) and OriginationTime (8 bytes).
pub(super) fn from_bext(date: &[u8], time: &[u8]) -> Option<String> {
    let mut d = Cursor::new(date);
    let year = d.digits(4)?;
    d.take_if(sep)?;
    let month = d.digits(2)?;
    d.take_if(sep)?;
    let day = d.digits(2)?;
    let mut t = Cursor::new(time);
    let hour = t.digits(2)?;
    t.take_if(sep)?;
    let minute = t.digits(2)?;
    t.take_if(sep)?;
    let second = t.digits(2)?;
    DateTime::new(i64::from(year), month, day, hour, minute, second).map(DateTime::iso)
}

/// Rule 2: an AudioMoth comment, `Recorded at hh:mm:ss[.mmm] dd/mm/yyyy (UTC[±h[:mm]])`.
pub(super) fn from_audiomoth(comment: &str) -> Option<String> {
    let rest = comment.trim_start().strip_prefix("Recorded at ")?;
    let mut c = Cursor::new(rest.as_bytes());
    let hour = c.digits(2)?;
    c.lit(b":")?;
    let minute = c.digits(2)?;
    c.lit(b":")?;
    let second = c.digits(2)?;
    c.skip_fraction();
    c.lit(b" ")?;
    let day = c.digits(2)?;
    c.lit(b"/")?;
    let month = c.digits(2)?;
    c.lit(b"/")?;
    let year = c.digits(4)?;
    c.lit(b" (UTC")?;
    let offset = if c.byte(b')') {
        0
    } else {
        let o = c.offset()?;
        c.lit(b")")?;
        o
    };
    DateTime::new(i64::from(year), month, day, hour, minute, second)?
        .minus_offset(offset)
        .map(DateTime::iso)
}

/// ISO 8601 `yyyy-mm-dd[T ]hh:mm:ss[.f][Z|±hh[:]mm]`, the whole string (after trimming).
pub(super) fn from_iso(text: &str) -> Option<String> {
    let mut c = Cursor::new(text.trim().as_bytes());
    let year = c.digits(4)?;
    c.lit(b"-")?;
    let month = c.digits(2)?;
    c.lit(b"-")?;
    let day = c.digits(2)?;
    c.take_if(|b| b == b'T' || b == b't' || b == b' ')?;
    let hour = c.digits(2)?;
    c.lit(b":")?;
    let minute = c.digits(2)?;
    c.lit(b":")?;
    let second = c.digits(2)?;
    c.skip_fraction();
    let offset = if c.s.is_empty() || c.byte(b'Z') || c.byte(b'z') {
        0
    } else {
        c.offset()?
    };
    if !c.s.is_empty() {
        return None;
    }
    DateTime::new(i64::from(year), month, day, hour, minute, second)?
        .minus_offset(offset)
        .map(DateTime::iso)
}

/// Rule 3: the `Timestamp` field of GUANO metadata (`key:value` lines).
pub(super) fn from_guano(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix("Timestamp:"))
        .and_then(from_iso)
}

/// The tag rules, over (key, text) pairs in file order.
pub(super) fn from_tags<'a>(
    tags: impl Iterator<Item = (&'a str, &'a str)> + Clone,
) -> Option<String> {
    tags.clone()
        .find_map(|(_, v)| from_audiomoth(v))
        .or_else(|| {
            tags.filter(|(k, _)| k.eq_ignore_ascii_case("DATE") || k.eq_ignore_ascii_case("TDRC"))
                .find_map(|(_, v)| from_iso(v))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bext_dates_with_any_separator() {
        let t = Some("2025-06-01T04:00:00Z".to_string());
        assert_eq!(from_bext(b"2025-06-01", b"04:00:00"), t);
        assert_eq!(from_bext(b"2025:06:01", b"04-00-00"), t);
        assert_eq!(from_bext(b"2025/06/01", b"04.00.00"), t);
        assert_eq!(from_bext(b"2025_06_01", b"04 00 00"), t);
        assert_eq!(from_bext(b"2025-13-01", b"04:00:00"), None);
        assert_eq!(from_bext(b"2025-02-29", b"04:00:00"), None);
        assert_eq!(
            from_bext(b"2024-02-29", b"04:00:00").as_deref(),
            Some("2024-02-29T04:00:00Z")
        );
        assert_eq!(from_bext(b"2025-06-01", b"24:00:00"), None);
        assert_eq!(from_bext(b"2025-06-01", b"\0\0\0\0\0\0\0\0"), None);
        assert_eq!(from_bext(b"\0\0\0\0\0\0\0\0\0\0", b"04:00:00"), None);
        assert_eq!(from_bext(b"", b""), None);
    }

    #[test]
    fn audiomoth_comments_in_all_firmware_variants() {
        let tail = " by AudioMoth 24F319055FDF2D6A at medium gain while battery was greater than 4.9V and temperature was 21.3C.";
        let first = format!("Recorded at 04:00:00 01/06/2025 (UTC){tail}");
        let cases: [(&str, Option<&str>); 13] = [
            (&first, Some("2025-06-01T04:00:00Z")),
            (
                "Recorded at 05:00:00 01/06/2025 (UTC+1) during deployment X",
                Some("2025-06-01T04:00:00Z"),
            ),
            (
                "Recorded at 23:00:00 31/05/2025 (UTC-5) by AudioMoth",
                Some("2025-06-01T04:00:00Z"),
            ),
            (
                "Recorded at 09:30:00 01/06/2025 (UTC+5:30) by AudioMoth",
                Some("2025-06-01T04:00:00Z"),
            ),
            (
                "Recorded at 03:30:00 01/06/2025 (UTC-0:30) by AudioMoth",
                Some("2025-06-01T04:00:00Z"),
            ),
            (
                "Recorded at 00:30:00 01/01/2026 (UTC+12) by AudioMoth",
                Some("2025-12-31T12:30:00Z"),
            ),
            (
                "Recorded at 04:00:00.250 01/06/2025 (UTC) by AudioMoth Live using X.",
                Some("2025-06-01T04:00:00Z"),
            ),
            ("Recorded at 04:00:00 30/02/2025 (UTC) by AudioMoth", None),
            ("Recorded at 04:00:00 01/13/2025 (UTC) by AudioMoth", None),
            ("Recorded at 04:00:00 01/06/2025 (UTC+99) by", None),
            ("Recorded at 04:00:00 01/06/2025 (GMT) by", None),
            ("Recorded at 4:00:00 01/06/2025 (UTC)", None),
            ("Something else", None),
        ];
        for (comment, want) in cases {
            assert_eq!(from_audiomoth(comment).as_deref(), want, "{comment}");
        }
    }

    #[test]
    fn iso_and_guano_timestamps() {
        for (iso, want) in [
            ("2025-06-01T04:00:00", Some("2025-06-01T04:00:00Z")),
            ("2025-06-01 04:00:00Z", Some("2025-06-01T04:00:00Z")),
            (
                "2025-06-01T06:00:00.123+02:00",
                Some("2025-06-01T04:00:00Z"),
            ),
            ("2025-06-01T00:00:00-0400", Some("2025-06-01T04:00:00Z")),
            ("2025-06-01", None),
            ("2025", None),
            ("2025-06-01T04:00:00 junk", None),
        ] {
            assert_eq!(from_iso(iso).as_deref(), want, "{iso}");
        }
        let guano = "GUANO|Version:1.0\nMake:Open Acoustic Devices\nTimestamp:2025-06-01T05:00:00+01:00\nLoc Position:1 2\n";
        assert_eq!(from_guano(guano).as_deref(), Some("2025-06-01T04:00:00Z"));
        assert_eq!(from_guano("GUANO|Version:1.0\n"), None);
    }

    #[test]
    fn tags_prefer_audiomoth_then_full_dates() {
        let tags = [
            ("DATE", "2025-06-01"),
            (
                "comment",
                "Recorded at 04:00:00 01/06/2025 (UTC) by AudioMoth",
            ),
        ];
        assert_eq!(
            from_tags(tags.iter().copied()).as_deref(),
            Some("2025-06-01T04:00:00Z")
        );
        let tags = [("ARTIST", "x"), ("date", "2025-06-01T04:00:00Z")];
        assert_eq!(
            from_tags(tags.iter().copied()).as_deref(),
            Some("2025-06-01T04:00:00Z")
        );
        let tags = [("TITLE", "2025-06-01T04:00:00Z"), ("DATE", "2025")];
        assert_eq!(from_tags(tags.iter().copied()), None);
    }

    #[test]
    fn calendar_round_trips() {
        for days in (-800_000..800_000).step_by(37) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in ".{0,80}", b in proptest::collection::vec(proptest::num::u8::ANY, 0..20)) {
            let _ = from_audiomoth(&s);
            let _ = from_iso(&s);
            let _ = from_guano(&s);
            let _ = from_bext(&b, &b);
            let _ = from_audiomoth(&format!("Recorded at {s}"));
        }
    }
}
