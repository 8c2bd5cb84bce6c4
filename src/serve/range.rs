//! The `Range` header (RFC 9110 §14): which bytes of a representation of `len` bytes a
//! request asks for.

use std::ops::Range;

#[derive(Debug, PartialEq, Eq)]
pub enum Requested {
    /// No usable range: the whole representation, 200. Also the answer to a request of
    /// several ranges (RFC 9110 lets a server ignore `Range`; one 200 is simpler for
    /// clients than multipart/byteranges and no audio client asks for several).
    Whole,
    /// One satisfiable range: 206.
    Part(Range<u64>),
    /// A well-formed range no byte of the representation satisfies: 416.
    Unsatisfiable,
}

/// Interprets the value of a `Range` header for a representation of `len` bytes. A
/// header that is not a byte range set (another unit, bad syntax) is ignored, as the
/// RFC requires.
pub fn parse(header: &str, len: u64) -> Requested {
    let Some(set) = header.trim().strip_prefix("bytes=") else {
        return Requested::Whole;
    };
    let specs: Vec<&str> = set.split(',').map(str::trim).collect();
    let [one] = specs[..] else {
        return Requested::Whole;
    };
    match spec(one, len) {
        None => Requested::Whole,
        Some(None) => Requested::Unsatisfiable,
        Some(Some(r)) => Requested::Part(r),
    }
}

/// One range spec: None if malformed, Some(None) if unsatisfiable.
fn spec(s: &str, len: u64) -> Option<Option<Range<u64>>> {
    let (first, last) = s.split_once('-')?;
    let num = |t: &str| -> Option<u64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    if first.is_empty() {
        // Suffix: the last `n` bytes.
        let n = num(last)?;
        return Some((n > 0 && len > 0).then(|| len - n.min(len)..len));
    }
    let a = num(first)?;
    let end = if last.is_empty() {
        len
    } else {
        let b = num(last)?;
        if b < a {
            return None;
        }
        b.saturating_add(1).min(len)
    };
    Some((a < len).then_some(a..end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms_and_their_edges() {
        assert_eq!(parse("bytes=0-99", 1000), Requested::Part(0..100));
        assert_eq!(parse("bytes=990-2000", 1000), Requested::Part(990..1000));
        assert_eq!(parse("bytes=500-", 1000), Requested::Part(500..1000));
        assert_eq!(parse("bytes=-100", 1000), Requested::Part(900..1000));
        assert_eq!(parse("bytes=-5000", 1000), Requested::Part(0..1000));
        assert_eq!(parse("bytes=999-999", 1000), Requested::Part(999..1000));
        assert_eq!(parse("bytes=1000-", 1000), Requested::Unsatisfiable);
        assert_eq!(parse("bytes=-0", 1000), Requested::Unsatisfiable);
        assert_eq!(parse("bytes=0-", 0), Requested::Unsatisfiable);
        assert_eq!(parse("bytes=-1", 0), Requested::Unsatisfiable);
    }

    #[test]
    fn what_is_ignored() {
        assert_eq!(parse("items=0-9", 1000), Requested::Whole);
        assert_eq!(parse("bytes=9-0", 1000), Requested::Whole);
        assert_eq!(parse("bytes=a-b", 1000), Requested::Whole);
        assert_eq!(parse("bytes=+1-2", 1000), Requested::Whole);
        assert_eq!(parse("bytes=0-1,5-6", 1000), Requested::Whole);
        assert_eq!(parse("bytes=", 1000), Requested::Whole);
    }
}
