//! A fixed pool of threads running the front ends' opens and reads, so a cold decode
//! of one file never holds up a warm read of another.
//!
//! Plain threads rather than a rayon pool: the engine's prefetch uses `rayon::spawn`,
//! which from inside a rayon pool would queue decodes ahead of the reads waiting there.
//! From these threads it goes to rayon's global pool, one decode per core.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crossbeam_channel::{Sender, unbounded};

type Job = Box<dyn FnOnce() + Send>;

pub struct Workers {
    tx: Sender<Job>,
}

impl Workers {
    /// Starts `n` (at least 1) threads; they end when the pool is dropped.
    pub fn new(n: usize) -> std::io::Result<Self> {
        let (tx, rx) = unbounded::<Job>();
        for i in 0..n.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("zw-worker-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })?;
        }
        Ok(Workers { tx })
    }

    /// Queues `job`. A panic in it is logged (as an internal error serving `what`) and
    /// the worker goes on; whatever reply the job owned is dropped unsent, which each
    /// front end answers as an error.
    pub fn spawn(&self, what: &'static str, job: impl FnOnce() + Send + 'static) {
        // Sending fails only once every worker has exited, i.e. never while `self` lives.
        let _ = self.tx.send(Box::new(move || guarded(what, job)));
    }
}

/// Runs `f`, logging a panic instead of letting it unwind further.
pub fn guarded(what: &str, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        log::error!("internal error (panic) while serving {what}");
    }
}
