//! A failure-injecting object store: an `object_store` client over an in-memory copy
//! of an archive that, by a seeded schedule, answers reads with errors, vanished keys,
//! short or corrupted bodies, an older version of the object, or no answer for longer
//! than the store's timeout. The archive is read through the product's own remote
//! store (`Store::from_object_store`), so everything above the wire is the real code.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use parking_lot::Mutex;

/// What an injected fault does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The server fails (a 503).
    Error,
    /// The key is not there (a 404 for an object that exists).
    Vanished,
    /// The body ends early.
    Short,
    /// One bit of the body is flipped.
    Corrupt,
    /// The object as it was in the older archive (when it had one at that key).
    Stale,
    /// No answer for `Schedule::delay`, longer than the store's timeout.
    Delay,
}

pub const ALL_FAULTS: [Fault; 6] = [
    Fault::Error,
    Fault::Vanished,
    Fault::Short,
    Fault::Corrupt,
    Fault::Stale,
    Fault::Delay,
];

/// Which requests fail and how: each request's fate is a function of the seed, its
/// key and range, and how many times that key and range were asked for, so a schedule
/// replays the same way whatever order concurrent requests come in.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub seed: u64,
    /// Chance of a fault per request, in thousandths.
    pub per_mille: u32,
    pub kinds: Vec<Fault>,
    pub delay: Duration,
    /// At most this many `Delay` faults (each costs the test a timeout).
    pub max_delays: u32,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The in-memory archive `dir` (every file below it, at its relative path).
pub fn load_dir(dir: &Path) -> Arc<InMemory> {
    let store = InMemory::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_str().unwrap().to_string();
                let bytes = std::fs::read(&p).unwrap();
                rt.block_on(store.put(&ObjectPath::from(rel), bytes.into()))
                    .unwrap();
            }
        }
    }
    Arc::new(store)
}

/// The failure-injecting client over `current`, serving `older`'s objects for
/// `Stale` faults.
pub struct Faulty {
    current: Arc<InMemory>,
    older: Arc<InMemory>,
    schedule: Schedule,
    on: AtomicBool,
    asked: Mutex<HashMap<String, u64>>,
    delays: AtomicU32,
    injected: Mutex<HashMap<Fault, u64>>,
}

impl Faulty {
    pub fn new(current: Arc<InMemory>, older: Arc<InMemory>, schedule: Schedule) -> Self {
        Faulty {
            current,
            older,
            schedule,
            on: AtomicBool::new(true),
            asked: Mutex::new(HashMap::new()),
            delays: AtomicU32::new(0),
            injected: Mutex::new(HashMap::new()),
        }
    }

    /// Stops (or resumes) injecting faults.
    pub fn set_faults(&self, on: bool) {
        self.on.store(on, Ordering::SeqCst);
    }

    /// How many faults of each kind were injected.
    pub fn injected(&self) -> HashMap<Fault, u64> {
        self.injected.lock().clone()
    }

    /// The fault for this request, if any; the second value drives its details.
    fn decide(&self, what: &str) -> Option<(Fault, u64)> {
        if !self.on.load(Ordering::SeqCst) || self.schedule.kinds.is_empty() {
            return None;
        }
        let n = {
            let mut asked = self.asked.lock();
            let n = asked.entry(what.to_string()).or_default();
            *n += 1;
            *n
        };
        let r = splitmix(self.schedule.seed ^ splitmix(hash_str(what) ^ n));
        if r % 1000 >= u64::from(self.schedule.per_mille) {
            return None;
        }
        let r2 = splitmix(r);
        let kinds = &self.schedule.kinds;
        let mut fault = kinds[(r2 % kinds.len() as u64) as usize];
        if fault == Fault::Delay
            && self.delays.fetch_add(1, Ordering::SeqCst) >= self.schedule.max_delays
        {
            fault = Fault::Error;
        }
        *self.injected.lock().entry(fault).or_default() += 1;
        Some((fault, splitmix(r2)))
    }

    fn injected_error(location: &ObjectPath) -> object_store::Error {
        object_store::Error::Generic {
            store: "faulty",
            source: format!("injected 503 for {location}").into(),
        }
    }
}

impl fmt::Display for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty(seed {})", self.schedule.seed)
    }
}

impl fmt::Debug for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.current.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.current.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let what = format!("GET {location} {:?}", options.range);
        let Some((fault, detail)) = self.decide(&what) else {
            return self.current.get_opts(location, options).await;
        };
        match fault {
            Fault::Error => Err(Self::injected_error(location)),
            Fault::Vanished => Err(object_store::Error::NotFound {
                path: location.to_string(),
                source: "injected 404".into(),
            }),
            Fault::Delay => {
                tokio::time::sleep(self.schedule.delay).await;
                self.current.get_opts(location, options).await
            }
            Fault::Stale => match self.older.get_opts(location, options.clone()).await {
                Err(object_store::Error::NotFound { .. }) => {
                    self.current.get_opts(location, options).await
                }
                other => other,
            },
            Fault::Short | Fault::Corrupt => {
                let r = self.current.get_opts(location, options).await?;
                let (meta, range, attributes) =
                    (r.meta.clone(), r.range.clone(), r.attributes.clone());
                let mut body = r.bytes().await?.to_vec();
                if !body.is_empty() {
                    let at = (detail % body.len() as u64) as usize;
                    if fault == Fault::Short {
                        body.truncate(at);
                    } else {
                        body[at] ^= 1 << ((detail >> 32) % 8);
                    }
                }
                let body = Bytes::from(body);
                // The range and size still say the whole answer.
                Ok(GetResult {
                    payload: GetResultPayload::Stream(
                        futures::stream::once(async { Ok(body) }).boxed(),
                    ),
                    meta,
                    range,
                    attributes,
                    extensions: Default::default(),
                })
            }
        }
    }

    async fn get_ranges(
        &self,
        location: &ObjectPath,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let mut out = Vec::with_capacity(ranges.len());
        for r in ranges {
            out.push(self.get_range(location, r.clone()).await?);
        }
        Ok(out)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.current.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.current.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        let what = format!("LIST {prefix:?}");
        if let Some((Fault::Error | Fault::Delay | Fault::Vanished, _)) = self.decide(&what) {
            return Err(Self::injected_error(&prefix.cloned().unwrap_or_default()));
        }
        self.current.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.current.copy_opts(from, to, options).await
    }
}
