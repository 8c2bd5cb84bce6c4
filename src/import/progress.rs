//! How far an import has got, in bytes of input, for a progress display.
//!
//! Each job counts its input's size once, spread over the passes that do its work (the
//! encode, the check of what was stored) by fixed shares, so the rate and the time left
//! a display derives follow the work rather than the reads: a FLAC input is copied in a
//! moment and then decoded in full.

use std::sync::atomic::{AtomicU64, Ordering};

/// Totals of an import run, updated from every worker.
#[derive(Debug, Default)]
pub struct Progress {
    total: AtomicU64,
    done: AtomicU64,
}

impl Progress {
    /// Bytes of input of all the jobs the run has been given.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Bytes of input worked through (a finished job, whatever its outcome, counts its
    /// whole size).
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    pub(super) fn add_total(&self, bytes: u64) {
        self.total.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The share of one job of `size` bytes.
    pub(super) fn job(&self, size: u64) -> JobProgress<'_> {
        JobProgress {
            progress: Some(self),
            size,
            reported: AtomicU64::new(0),
        }
    }
}

/// One job's part of a [`Progress`]; reports only forward, never more than its size.
#[derive(Debug)]
pub(crate) struct JobProgress<'a> {
    progress: Option<&'a Progress>,
    size: u64,
    reported: AtomicU64,
}

impl JobProgress<'_> {
    /// A job nobody watches.
    pub(crate) fn untracked() -> Self {
        JobProgress {
            progress: None,
            size: 0,
            reported: AtomicU64::new(0),
        }
    }

    /// The pass that takes the job from `from` to `to` (fractions of its work).
    pub(crate) fn pass(&self, from: f64, to: f64) -> Pass<'_> {
        Pass {
            job: self,
            from,
            to,
        }
    }

    /// The job is over: all of its size is counted.
    pub(crate) fn finish(&self) {
        self.reach(1.0);
    }

    fn reach(&self, fraction: f64) {
        let Some(progress) = self.progress else {
            return;
        };
        let target = (self.size as f64 * fraction.clamp(0.0, 1.0)) as u64;
        let before = self.reported.fetch_max(target, Ordering::Relaxed);
        if target > before {
            progress.done.fetch_add(target - before, Ordering::Relaxed);
        }
    }
}

/// One pass over a job's data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pass<'a> {
    job: &'a JobProgress<'a>,
    from: f64,
    to: f64,
}

impl Pass<'_> {
    /// `done` of `of` units of this pass are through (nothing when `of` is unknown, 0).
    pub(crate) fn at(&self, done: u64, of: u64) {
        if of > 0 {
            let f = (done as f64 / of as f64).min(1.0);
            self.job.reach(self.from + (self.to - self.from) * f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_add_up_to_the_job_and_never_go_back() {
        let p = Progress::default();
        p.add_total(1000);
        let job = p.job(1000);
        let encode = job.pass(0.0, 0.6);
        let check = job.pass(0.6, 1.0);
        encode.at(1, 2);
        assert_eq!(p.done(), 300);
        encode.at(1, 4);
        assert_eq!(p.done(), 300, "an earlier position does not take it back");
        encode.at(9, 4);
        assert_eq!(p.done(), 600, "a pass stops at its end");
        check.at(1, 4);
        assert_eq!(p.done(), 700);
        check.at(5, 0);
        assert_eq!(p.done(), 700, "an unknown length counts nothing");
        job.finish();
        job.finish();
        assert_eq!((p.done(), p.total()), (1000, 1000));
    }

    #[test]
    fn an_untracked_job_counts_nowhere() {
        let job = JobProgress::untracked();
        job.pass(0.0, 1.0).at(1, 1);
        job.finish();
    }
}
