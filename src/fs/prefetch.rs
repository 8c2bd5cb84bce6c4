//! Sequential-read detection for one open file: which spans to decode ahead.
//!
//! A read that starts where the previous one ended (give or take `SLACK`: the kernel's
//! readahead sends several requests at once and they may arrive out of order) continues
//! a run. Once a run has two reads, the spans after the one being read are prefetched;
//! the window doubles each time the reader moves into a new span (it kept up with the
//! prefetch) up to a maximum, and a seek ends the run and the window. A random reader
//! therefore never causes prefetch. Once the window is requested, more spans are asked
//! for only when the reader has used half of it: they come in batches of half a
//! window, which the engine decodes as runs restoring one checkpoint each instead of
//! one per span.
//!
//! Spans a run has passed by more than `SLACK` are handed back ("drop-behind"): the
//! kernel keeps the bytes it was served in its page cache (`FOPEN_KEEP_CACHE`), so
//! keeping their samples decoded as well would only fill the span cache with fresh
//! memory, page fault by page fault, and push out spans random readers need.

use std::ops::Range;

/// How far a read may start from the previous read's end and still count as sequential.
const SLACK: u64 = 4 << 20;

#[derive(Debug, Default)]
pub struct SequentialDetector {
    /// End offset of the latest read in the run.
    next: u64,
    /// Reads in the current run.
    run: u32,
    /// Span the reader was in at the latest read.
    span: usize,
    /// Spans ahead of the reader to keep decoded.
    window: usize,
    /// Spans below this were already requested in this run.
    requested: usize,
    /// Spans below this were passed (or precede the run's start) and handed back.
    released: usize,
}

/// What to do after a read: decode `prefetch` ahead, drop `passed` from the cache.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Advice {
    pub prefetch: Range<usize>,
    pub passed: Range<usize>,
}

impl SequentialDetector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a read of `offset..offset + len` whose last frame lies in span
    /// `last_span` (`None` for a read of header bytes only), in a file of `span_count`
    /// spans of about `span_bytes` bytes each. Advises the spans to prefetch now, at
    /// most `max_window` ahead, and the spans the run has passed.
    pub fn on_read(
        &mut self,
        offset: u64,
        len: u64,
        last_span: Option<usize>,
        span_count: usize,
        max_window: usize,
        span_bytes: u64,
    ) -> Advice {
        let sequential = self.run > 0 && offset.abs_diff(self.next) <= SLACK;
        if !sequential {
            *self = SequentialDetector::default();
        }
        self.run += 1;
        self.next = self.next.max(offset + len);
        let Some(span) = last_span else {
            return Advice::default();
        };
        if self.run < 2 {
            self.span = span;
            // The run has not read the spans before its first read.
            self.released = span;
            return Advice::default();
        }
        if self.window == 0 {
            self.window = 1;
        } else if span > self.span {
            self.window = (self.window * 2).min(max_window);
        }
        self.span = self.span.max(span);
        Advice {
            prefetch: self.ahead(span_count),
            passed: self.passed(span_bytes),
        }
    }

    /// The spans to request now: the window past the reader's span, in batches.
    fn ahead(&mut self, span_count: usize) -> Range<usize> {
        if self.requested.saturating_sub(self.span + 1) > self.window / 2 {
            return 0..0;
        }
        let start = (self.span + 1).max(self.requested);
        let end = (self.span + 1 + self.window).min(span_count);
        if start >= end {
            return 0..0;
        }
        self.requested = end;
        start..end
    }

    /// The spans newly passed: more than `SLACK` behind the reader's span, so no read
    /// of this run arriving out of order still needs them.
    fn passed(&mut self, span_bytes: u64) -> Range<usize> {
        let keep = SLACK.div_ceil(span_bytes.max(1)) as usize + 1;
        let end = self.span.saturating_sub(keep);
        if end <= self.released {
            return 0..0;
        }
        let passed = self.released..end;
        self.released = end;
        passed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: u64 = 128 << 10;
    /// Span size of the tests that count reads per span (10 reads each).
    const SPAN_BYTES: u64 = 10 * READ;

    #[test]
    fn a_sequential_reader_gets_a_growing_window_then_batches() {
        let mut d = SequentialDetector::new();
        // 10 reads per span; spans 0..100.
        let mut got = Vec::new();
        for i in 0..120u64 {
            let span = (i / 10) as usize;
            got.push(
                d.on_read(i * READ, READ, Some(span), 100, 8, SPAN_BYTES)
                    .prefetch,
            );
        }
        assert_eq!(got[0], 0..0, "one read is not a run yet");
        assert_eq!(got[1], 1..2);
        assert_eq!(got[10], 2..4, "window doubled on entering span 1");
        assert_eq!(got[20], 4..7);
        assert_eq!(got[30], 7..12);
        assert_eq!(got[40], 0..0, "capped: 8 ahead of span 4 already requested");
        assert_eq!(got[70], 12..16, "half the window used: a batch of 4");
        assert_eq!(got[110], 16..20);
        let all: Vec<usize> = got.into_iter().flatten().collect();
        assert_eq!(all, (1..20).collect::<Vec<_>>(), "each span once, in order");
    }

    #[test]
    fn random_reads_never_prefetch() {
        let mut d = SequentialDetector::new();
        let offsets = [900u64 << 20, 10 << 20, 500 << 20, 0, 300 << 20, 700 << 20];
        for (i, &o) in offsets.iter().enumerate() {
            assert_eq!(
                d.on_read(o, 4096, Some(i * 7), 100, 8, SPAN_BYTES).prefetch,
                0..0
            );
        }
    }

    #[test]
    fn a_seek_ends_the_run_and_the_window() {
        let mut d = SequentialDetector::new();
        d.on_read(0, READ, Some(0), 100, 8, SPAN_BYTES);
        assert_eq!(
            d.on_read(READ, READ, Some(0), 100, 8, SPAN_BYTES).prefetch,
            1..2
        );
        assert_eq!(
            d.on_read(1 << 30, READ, Some(50), 100, 8, SPAN_BYTES)
                .prefetch,
            0..0
        );
        assert_eq!(
            d.on_read((1 << 30) + READ, READ, Some(50), 100, 8, SPAN_BYTES)
                .prefetch,
            51..52
        );
    }

    #[test]
    fn header_reads_and_the_last_span_are_harmless() {
        let mut d = SequentialDetector::new();
        assert_eq!(d.on_read(0, 44, None, 3, 8, SPAN_BYTES).prefetch, 0..0);
        assert_eq!(
            d.on_read(44, READ, Some(2), 3, 8, SPAN_BYTES).prefetch,
            0..0
        );
        assert_eq!(
            d.on_read(44 + READ, READ, Some(2), 3, 8, SPAN_BYTES)
                .prefetch,
            0..0
        );
    }

    #[test]
    fn a_sequential_reader_hands_back_the_spans_it_passed() {
        let mut d = SequentialDetector::new();
        // SLACK (4 MiB) is 3.2 spans of 1.25 MiB: 4 + 1 spans stay behind the reader.
        let mut passed = Vec::new();
        for i in 0..200u64 {
            let span = (i / 10) as usize;
            let advice = d.on_read(i * READ, READ, Some(span), 100, 8, SPAN_BYTES);
            passed.extend(advice.passed.clone());
            if !advice.passed.is_empty() {
                assert_eq!(
                    advice.passed.end + 5,
                    span,
                    "released right as span {span} began"
                );
            }
        }
        assert_eq!(
            passed,
            (0..14).collect::<Vec<_>>(),
            "each passed span once, in order"
        );
    }

    #[test]
    fn a_run_starting_mid_file_hands_back_only_what_it_read() {
        let mut d = SequentialDetector::new();
        let start = 50 * SPAN_BYTES;
        let mut passed = Vec::new();
        for i in 0..100u64 {
            let span = 50 + (i / 10) as usize;
            passed.extend(
                d.on_read(start + i * READ, READ, Some(span), 100, 8, SPAN_BYTES)
                    .passed,
            );
        }
        assert_eq!(passed, (50..54).collect::<Vec<_>>());
    }

    #[test]
    fn random_reads_hand_back_nothing() {
        let mut d = SequentialDetector::new();
        for (i, o) in [0u64, 900 << 20, 10 << 20, 500 << 20, 0, 300 << 20]
            .into_iter()
            .enumerate()
        {
            let advice = d.on_read(o, 4096, Some(i * 7), 100, 8, SPAN_BYTES);
            assert_eq!(advice, Advice::default());
        }
    }
}
