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
}

impl SequentialDetector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a read of `offset..offset + len` whose last frame lies in span
    /// `last_span` (`None` for a read of header bytes only) and returns the spans to
    /// prefetch now, at most `max_window` ahead, below `span_count`.
    pub fn on_read(
        &mut self,
        offset: u64,
        len: u64,
        last_span: Option<usize>,
        span_count: usize,
        max_window: usize,
    ) -> Range<usize> {
        let sequential = self.run > 0 && offset.abs_diff(self.next) <= SLACK;
        if !sequential {
            *self = SequentialDetector::default();
        }
        self.run += 1;
        self.next = self.next.max(offset + len);
        let Some(span) = last_span else {
            return 0..0;
        };
        if self.run < 2 {
            self.span = span;
            return 0..0;
        }
        if self.window == 0 {
            self.window = 1;
        } else if span > self.span {
            self.window = (self.window * 2).min(max_window);
        }
        self.span = self.span.max(span);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: u64 = 128 << 10;

    #[test]
    fn a_sequential_reader_gets_a_growing_window_then_batches() {
        let mut d = SequentialDetector::new();
        // 10 reads per span; spans 0..100.
        let mut got = Vec::new();
        for i in 0..120u64 {
            let span = (i / 10) as usize;
            got.push(d.on_read(i * READ, READ, Some(span), 100, 8));
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
            assert_eq!(d.on_read(o, 4096, Some(i * 7), 100, 8), 0..0);
        }
    }

    #[test]
    fn a_seek_ends_the_run_and_the_window() {
        let mut d = SequentialDetector::new();
        d.on_read(0, READ, Some(0), 100, 8);
        assert_eq!(d.on_read(READ, READ, Some(0), 100, 8), 1..2);
        assert_eq!(d.on_read(1 << 30, READ, Some(50), 100, 8), 0..0);
        assert_eq!(d.on_read((1 << 30) + READ, READ, Some(50), 100, 8), 51..52);
    }

    #[test]
    fn header_reads_and_the_last_span_are_harmless() {
        let mut d = SequentialDetector::new();
        assert_eq!(d.on_read(0, 44, None, 3, 8), 0..0);
        assert_eq!(d.on_read(44, READ, Some(2), 3, 8), 0..0);
        assert_eq!(d.on_read(44 + READ, READ, Some(2), 3, 8), 0..0);
    }
}
