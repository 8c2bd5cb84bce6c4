//! A fixed pool of threads running queued jobs (opens and reads).
//!
//! Plain threads rather than a rayon pool: the engine's prefetch uses `rayon::spawn`,
//! which from inside a rayon pool would queue decodes ahead of the reads waiting there.
//! From these threads it goes to rayon's global pool, one decode per core.

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

    /// Queues `job`; the caller must catch its panics (see `fuse::guarded`).
    pub fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        // Sending fails only once every worker has exited, i.e. never while `self` lives.
        let _ = self.tx.send(Box::new(job));
    }
}
