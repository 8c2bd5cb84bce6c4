//! S3-compatible buckets and plain web servers as stores, over the `object_store`
//! crate (async) behind a synchronous adapter of our own: one GET per read (bounded
//! and suffix ranges sent as they are, no HEAD before), every operation bounded in
//! time, and a read-ahead of the ranges a sequential reader will want next.
//!
//! The adapter owns one tokio runtime for the process and blocks the calling thread
//! (a FUSE worker, a rayon thread, the CLI) on it; it is never called from inside the
//! runtime.

use std::collections::VecDeque;
use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, GetResult, ObjectStore, ObjectStoreExt,
    PutMode, PutOptions, PutPayload, RetryConfig, UpdateVersion,
};
use parking_lot::Mutex;
use tokio::sync::watch;
use zarrs::storage::byte_range::{ByteRange, ByteRangeIterator};
use zarrs::storage::{
    Bytes as ZBytes, ListableStorageTraits, MaybeBytes, MaybeBytesIterator, OffsetBytesIterator,
    ReadableStorageTraits, ReadableWritableListableStorage, StorageError, StoreKey, StoreKeys,
    StoreKeysPrefixes, StorePrefix, WritableStorageTraits,
};

use super::address::{Address, RemoteOptions};
use super::{Expect, Location, Object, StoreError, StoreOptions};

/// Folder listings asked for at once.
const LISTINGS_IN_FLIGHT: usize = 32;
/// Read-ahead ranges kept at most, and their total bytes.
const READ_AHEAD_ENTRIES: usize = 64;
const READ_AHEAD_BYTES: u64 = 64 << 20;
/// Prefetched objects kept at most, and for how long: the reads of its key in that
/// time take it from there (an open, a checkpoint shard read in parts), later ones ask
/// the store again, as the object may have changed.
const PREFETCH_ENTRIES: usize = 64;
const PREFETCH_TTL: Duration = Duration::from_secs(10);

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("zarr-wavfs-store")
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

#[derive(Debug)]
pub(super) struct RemoteStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Arc<dyn ObjectStore>,
    /// Key prefix of the archive in the bucket or below the URL, "" or ending in "/".
    prefix: String,
    /// What a key's location starts with: `s3://bucket/prefix` or the URL.
    base: String,
    timeout: Duration,
    writable: bool,
    listable: bool,
    requests: AtomicU64,
    read_ahead: Mutex<VecDeque<Ahead>>,
    prefetched: Mutex<VecDeque<Prefetched>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStore")
            .field("base", &self.base)
            .finish()
    }
}

/// A whole object being fetched (or fetched) before it is asked for; `Ok(None)`: there
/// is none.
struct Prefetched {
    key: String,
    at: Instant,
    result: watch::Receiver<Option<Result<Option<Object>, StoreError>>>,
}

/// A range being fetched (or fetched) ahead of its reader.
struct Ahead {
    key: String,
    range: Range<u64>,
    result: watch::Receiver<Option<Result<Bytes, StoreError>>>,
}

impl RemoteStore {
    pub(super) fn open(address: &Address, options: &StoreOptions) -> Result<Self, StoreError> {
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 4,
            retry_timeout: options.timeout,
        };
        let client_options = |allow_http: bool| {
            ClientOptions::new()
                .with_allow_http(allow_http)
                .with_connect_timeout(Duration::from_secs(5).min(options.timeout))
                .with_timeout(options.timeout)
        };
        let (client, prefix, base, writable, listable): (Arc<dyn ObjectStore>, _, _, _, _) =
            match address {
                Address::S3 { bucket, prefix } => {
                    let builder = s3_builder(bucket, &options.remote)?;
                    // Plain http only to an endpoint given as such (from wherever).
                    let allow_http = builder
                        .get_config_value(&object_store::aws::AmazonS3ConfigKey::Endpoint)
                        .is_some_and(|e| e.starts_with("http://"));
                    let s3 = builder
                        .with_client_options(client_options(allow_http))
                        .with_retry(retry)
                        .build()
                        .map_err(|e| StoreError::Config(format!("s3://{bucket}: {e}")))?;
                    let base = if prefix.is_empty() {
                        format!("s3://{bucket}")
                    } else {
                        format!("s3://{bucket}/{prefix}")
                    };
                    (Arc::new(s3), prefix.clone(), base, true, true)
                }
                Address::Http(url) => {
                    let store = object_store::http::HttpBuilder::new()
                        .with_url(url.clone())
                        .with_client_options(client_options(true))
                        .with_retry(retry)
                        .build()
                        .map_err(|e| StoreError::Config(format!("{url}: {e}")))?;
                    (Arc::new(store), String::new(), url.clone(), false, false)
                }
                Address::Local(_) => unreachable!("local addresses open a LocalStore"),
            };
        Ok(Self::with_client(
            client, &prefix, base, writable, listable, options,
        ))
    }

    /// The store over `client`, the archive at `prefix` ("" or without slashes at the
    /// ends) in it, its keys shown below `base`.
    pub(super) fn with_client(
        client: Arc<dyn ObjectStore>,
        prefix: &str,
        base: String,
        writable: bool,
        listable: bool,
        options: &StoreOptions,
    ) -> Self {
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        RemoteStore {
            inner: Arc::new(Inner {
                client,
                prefix,
                base,
                timeout: options.timeout,
                writable,
                listable,
                requests: AtomicU64::new(0),
                read_ahead: Mutex::new(VecDeque::new()),
                prefetched: Mutex::new(VecDeque::new()),
            }),
        }
    }

    pub(super) fn zarr(&self) -> ReadableWritableListableStorage {
        self.inner.clone()
    }

    pub(super) fn location(&self, rel: &str) -> Location {
        Location(self.inner.base.clone()).join(rel)
    }

    pub(super) fn is_writable(&self) -> bool {
        self.inner.writable
    }

    pub(super) fn is_listable(&self) -> bool {
        self.inner.listable
    }

    pub(super) fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    pub(super) fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        self.inner.get_object(key)
    }

    /// Starts fetching the whole objects `keys` concurrently in the background.
    pub(super) fn prefetch(&self, keys: &[String]) {
        let i = &self.inner;
        let mut table = i.prefetched.lock();
        table.retain(|p| p.at.elapsed() < PREFETCH_TTL);
        for key in keys {
            if table.iter().any(|p| &p.key == key) {
                continue;
            }
            let (tx, rx) = watch::channel(None);
            table.push_back(Prefetched {
                key: key.clone(),
                at: Instant::now(),
                result: rx,
            });
            if table.len() > PREFETCH_ENTRIES {
                table.pop_front();
            }
            let inner = self.inner.clone();
            let key = key.clone();
            i.count();
            runtime().spawn(async move {
                let got = match inner.bounded(&key, inner.fetch_object(&key)).await {
                    Ok(o) => Ok(Some(o)),
                    Err(StoreError::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                };
                let _ = tx.send(Some(got));
            });
        }
    }

    pub(super) fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        self.inner.put(key, bytes)
    }

    pub(super) fn put_if(
        &self,
        key: &str,
        bytes: Bytes,
        expect: &Expect,
    ) -> Result<(), StoreError> {
        self.inner.put_if(key, bytes, expect)
    }

    pub(super) fn forget(&self, rel: &str) {
        self.inner.forget_prefetched(rel);
    }

    pub(super) fn list_dirs(&self, rel: &str) -> Result<Vec<String>, StoreError> {
        self.list_dirs_many(&[rel]).pop().expect("one listing")
    }

    pub(super) fn list_dirs_many<'a>(
        &self,
        rels: &[&'a str],
    ) -> Vec<Result<Vec<String>, StoreError>> {
        let i = &self.inner;
        if let Err(e) = self.require_listing(rels.first().copied().unwrap_or("")) {
            return rels.iter().map(|_| Err(e.clone())).collect();
        }
        let one = |rel: &'a str| {
            let dir = i.path(rel);
            i.count();
            async move {
                let list = i
                    .bounded(rel, i.client.list_with_delimiter(Some(&dir)))
                    .await?;
                let mut names: Vec<String> = list
                    .common_prefixes
                    .iter()
                    .filter_map(|p| p.filename().map(str::to_string))
                    .collect();
                names.sort();
                Ok(names)
            }
        };
        runtime().block_on(
            futures::stream::iter(rels.iter().map(|r| one(r)))
                .buffered(LISTINGS_IN_FLIGHT)
                .collect(),
        )
    }

    pub(super) fn erase_prefix(&self, rel: &str) -> Result<(), StoreError> {
        self.inner.erase_rel(rel)
    }

    pub(super) fn erase(&self, key: &str) -> Result<(), StoreError> {
        let i = &self.inner;
        if !i.writable {
            return Err(StoreError::ReadOnly {
                at: self.location(key),
            });
        }
        let path = i.path(key);
        i.forget_prefetched(key);
        i.count();
        match i.run(key, i.client.delete(&path)) {
            Ok(()) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(super) fn copy_prefix(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let i = &self.inner;
        if !i.writable {
            return Err(StoreError::ReadOnly {
                at: self.location(to),
            });
        }
        let (src, dst) = (
            i.path(from),
            format!("{}{}/", i.prefix, to.trim_matches('/')),
        );
        let src_prefix = format!("{}/", src.as_ref());
        i.forget_prefetched(to);
        i.count();
        let objects = i.run(from, i.client.list(Some(&src)).try_collect::<Vec<_>>())?;
        for _ in &objects {
            i.count();
        }
        // Each copy is bounded on its own: a recording may be thousands of objects.
        runtime().block_on(
            futures::stream::iter(objects.into_iter().map(|m| {
                let rest = m
                    .location
                    .as_ref()
                    .strip_prefix(&src_prefix)
                    .unwrap_or_default()
                    .to_string();
                let target = ObjectPath::from(format!("{dst}{rest}"));
                async move { i.bounded(to, i.client.copy(&m.location, &target)).await }
            }))
            .buffer_unordered(8)
            .try_for_each(|_| async { Ok(()) }),
        )
    }

    /// `Unsupported` for a store that cannot list (a web server).
    fn require_listing(&self, rel: &str) -> Result<(), StoreError> {
        if self.inner.listable {
            Ok(())
        } else {
            Err(StoreError::Unsupported {
                at: self.location(rel),
                message: "a web server cannot list its files".into(),
            })
        }
    }

    pub(super) fn is_empty(&self, rel: &str) -> Result<bool, StoreError> {
        let i = &self.inner;
        self.require_listing(rel)?;
        let dir = i.path(rel);
        i.count();
        let first = i.run(rel, async {
            i.client.list(Some(&dir)).next().await.transpose()
        })?;
        Ok(first.is_none())
    }

    pub(super) fn size_prefix(&self, rel: &str) -> u64 {
        let i = &self.inner;
        if !i.listable {
            return 0;
        }
        let dir = i.path(rel);
        i.count();
        i.run(rel, async {
            i.client
                .list(Some(&dir))
                .try_fold(0u64, |n, m| async move { Ok(n + m.size) })
                .await
        })
        .unwrap_or(0)
    }

    /// Starts fetching `range` of `key` in the background; a later read of a range
    /// inside it takes the bytes from there instead of asking the store again.
    pub(super) fn will_need(&self, key: &str, range: Range<u64>) {
        let i = &self.inner;
        if range.is_empty() {
            return;
        }
        let mut ahead = i.read_ahead.lock();
        if ahead
            .iter()
            .any(|a| a.key == key && a.range.start <= range.start && range.end <= a.range.end)
        {
            return;
        }
        let (tx, rx) = watch::channel(None);
        ahead.push_back(Ahead {
            key: key.to_string(),
            range: range.clone(),
            result: rx,
        });
        while ahead.len() > READ_AHEAD_ENTRIES
            || ahead
                .iter()
                .map(|a| a.range.end - a.range.start)
                .sum::<u64>()
                > READ_AHEAD_BYTES
        {
            ahead.pop_front();
        }
        drop(ahead);
        let inner = self.inner.clone();
        let key = key.to_string();
        i.count();
        runtime().spawn(async move {
            let got = inner
                .bounded(&key, inner.fetch(&key, GetRange::Bounded(range)))
                .await;
            let _ = tx.send(Some(got));
        });
    }
}

impl Inner {
    fn path(&self, key: &str) -> ObjectPath {
        ObjectPath::from(format!("{}{}", self.prefix, key.trim_matches('/')))
    }

    fn location(&self, key: &str) -> Location {
        Location(self.base.clone()).join(key)
    }

    fn count(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// `fut` bounded by the store's timeout, its errors named by `key`.
    async fn bounded<T>(
        &self,
        key: &str,
        fut: impl Future<Output = object_store::Result<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(|e| self.error(key, e)),
            Err(_) => Err(StoreError::Unavailable {
                at: self.location(key),
                message: format!("no answer within {} s", self.timeout.as_secs_f64()),
            }),
        }
    }

    fn run<T>(
        &self,
        key: &str,
        fut: impl Future<Output = object_store::Result<T>>,
    ) -> Result<T, StoreError> {
        runtime().block_on(self.bounded(key, fut))
    }

    fn error(&self, key: &str, e: object_store::Error) -> StoreError {
        let at = self.location(key);
        match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound { at },
            object_store::Error::Precondition { .. }
            | object_store::Error::AlreadyExists { .. } => StoreError::Conflict { at },
            object_store::Error::PermissionDenied { source, .. }
            | object_store::Error::Unauthenticated { source, .. } => StoreError::Denied {
                at,
                message: first_line(&source.to_string()),
            },
            // object_store reports S3's 404 on a listing as a generic error.
            object_store::Error::Generic { source, .. }
                if source.to_string().contains("<Code>NoSuchBucket</Code>") =>
            {
                StoreError::NoSuchBucket { at }
            }
            object_store::Error::Generic { source, .. } => StoreError::Unavailable {
                at,
                message: first_line(&source.to_string()),
            },
            other => StoreError::Other {
                at,
                message: first_line(&other.to_string()),
            },
        }
    }

    async fn fetch_object(&self, key: &str) -> object_store::Result<Object> {
        let r = self
            .client
            .get_opts(&self.path(key), GetOptions::default())
            .await?;
        let modified = r.meta.last_modified.into();
        let version = r.meta.e_tag.clone();
        let want = 0..r.meta.size;
        Ok(Object {
            bytes: whole_body(r, want).await?,
            modified,
            version,
        })
    }

    /// The whole object at `key` (`None`: there is none), prefetched or read now.
    fn get_object(&self, key: &str) -> Result<Option<Object>, StoreError> {
        if let Some(got) = self.prefetched(key) {
            return Ok(got);
        }
        self.count();
        match self.run(key, self.fetch_object(key)) {
            Ok(o) => Ok(Some(o)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The object prefetched for `key` (waiting for it if it is still on its way);
    /// `None` when none was lately or that failed (the caller then asks the store).
    fn prefetched(&self, key: &str) -> Option<Option<Object>> {
        let mut rx = {
            let table = self.prefetched.lock();
            table
                .iter()
                .find(|p| p.key == key && p.at.elapsed() < PREFETCH_TTL)?
                .result
                .clone()
        };
        runtime()
            .block_on(async {
                tokio::time::timeout(self.timeout, rx.wait_for(Option::is_some))
                    .await
                    .ok()?
                    .ok()
                    .and_then(|v| v.clone())
            })?
            .ok()
    }

    async fn fetch(&self, key: &str, range: GetRange) -> object_store::Result<Bytes> {
        let opts = GetOptions {
            range: Some(range.clone()),
            ..GetOptions::default()
        };
        let r = self.client.get_opts(&self.path(key), opts).await?;
        let want = match range {
            GetRange::Bounded(b) => b.start..b.end.min(r.meta.size),
            _ => r.range.clone(),
        };
        whole_body(r, want).await
    }

    /// The bytes of `range` if a read-ahead holds them (waiting for it if it is still
    /// on its way); `None` when none does or it failed (the caller then asks again).
    fn take_read_ahead(&self, key: &str, range: &Range<u64>) -> Option<Bytes> {
        let mut rx = {
            let ahead = self.read_ahead.lock();
            ahead
                .iter()
                .find(|a| a.key == key && a.range.start <= range.start && range.end <= a.range.end)
                .map(|a| (a.range.start, a.result.clone()))?
        };
        let got = runtime()
            .block_on(async {
                tokio::time::timeout(self.timeout, rx.1.wait_for(Option::is_some))
                    .await
                    .ok()?
                    .ok()
                    .and_then(|v| v.clone())
            })?
            .ok()?;
        let (a, b) = ((range.start - rx.0) as usize, (range.end - rx.0) as usize);
        (b <= got.len()).then(|| got.slice(a..b))
    }

    fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        if !self.writable {
            return Err(StoreError::ReadOnly {
                at: self.location(key),
            });
        }
        let path = self.path(key);
        self.forget_prefetched(key);
        self.count();
        self.run(key, self.client.put(&path, PutPayload::from(bytes)))
            .map(drop)
    }

    /// `put`, if the object is as `expect` says (`Conflict` otherwise).
    fn put_if(&self, key: &str, bytes: Bytes, expect: &Expect) -> Result<(), StoreError> {
        if !self.writable {
            return Err(StoreError::ReadOnly {
                at: self.location(key),
            });
        }
        let mode = match expect {
            Expect::Absent => PutMode::Create,
            Expect::Version(v) => PutMode::Update(UpdateVersion {
                e_tag: Some(v.clone()),
                version: None,
            }),
        };
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        let path = self.path(key);
        self.forget_prefetched(key);
        self.count();
        self.run(
            key,
            self.client.put_opts(&path, PutPayload::from(bytes), opts),
        )
        .map(drop)
    }

    /// Drops what was prefetched or read ahead of `rel` and the keys below it, which
    /// this process is about to change (or another process changed).
    fn forget_prefetched(&self, rel: &str) {
        let rel = rel.trim_matches('/');
        let below = |key: &str| {
            rel.is_empty()
                || key == rel
                || key.strip_prefix(rel).is_some_and(|r| r.starts_with('/'))
        };
        self.prefetched.lock().retain(|p| !below(&p.key));
        self.read_ahead.lock().retain(|a| !below(&a.key));
    }

    fn erase_rel(&self, rel: &str) -> Result<(), StoreError> {
        if !self.writable {
            return Err(StoreError::ReadOnly {
                at: self.location(rel),
            });
        }
        let dir = self.path(rel);
        self.forget_prefetched(rel);
        self.count();
        self.run(rel, async {
            let keys = self.client.list(Some(&dir)).map_ok(|m| m.location).boxed();
            self.client
                .delete_stream(keys)
                .try_for_each(|_| async { Ok(()) })
                .await
        })
    }

    fn storage_error(e: StoreError) -> StorageError {
        StorageError::Other(e.to_string())
    }

    fn read_ranges(
        &self,
        key: &str,
        ranges: Vec<ByteRange>,
    ) -> Result<Option<Vec<Bytes>>, StoreError> {
        if let Some(object) = self.prefetched(key) {
            let Some(object) = object else {
                return Ok(None);
            };
            let len = object.bytes.len() as u64;
            let within: Option<Vec<Bytes>> = ranges
                .iter()
                .map(|r| {
                    let (a, b) = match *r {
                        ByteRange::FromStart(off, Some(n)) => (off, off + n),
                        ByteRange::FromStart(off, None) => (off, len),
                        ByteRange::Suffix(n) => (len.saturating_sub(n), len),
                    };
                    (a <= b && b <= len).then(|| object.bytes.slice(a as usize..b as usize))
                })
                .collect();
            if within.is_some() {
                return Ok(within);
            }
        }
        let mut out: Vec<Option<Bytes>> = vec![None; ranges.len()];
        let mut wanted = Vec::new();
        for (n, r) in ranges.iter().enumerate() {
            match *r {
                ByteRange::FromStart(off, Some(len)) => {
                    match self.take_read_ahead(key, &(off..off + len)) {
                        Some(b) => out[n] = Some(b),
                        None => wanted.push((n, GetRange::Bounded(off..off + len))),
                    }
                }
                ByteRange::FromStart(off, None) => wanted.push((n, GetRange::Offset(off))),
                ByteRange::Suffix(len) => wanted.push((n, GetRange::Suffix(len))),
            }
        }
        if !wanted.is_empty() {
            for _ in &wanted {
                self.count();
            }
            let got = runtime().block_on(futures::future::join_all(
                wanted
                    .iter()
                    .map(|(_, r)| self.bounded(key, self.fetch(key, r.clone()))),
            ));
            for ((n, _), g) in wanted.iter().zip(got) {
                match g {
                    Ok(b) => out[*n] = Some(b),
                    Err(StoreError::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(Some(
            out.into_iter()
                .map(|b| b.expect("every range read"))
                .collect(),
        ))
    }
}

/// The body of `r`, if it is exactly the bytes `want` of the object: a server (or a
/// proxy) that answers another range or ends the body early gives an error, not
/// bytes that a reader would take for the ones asked for.
async fn whole_body(r: GetResult, want: Range<u64>) -> object_store::Result<Bytes> {
    let (range, size) = (r.range.clone(), r.meta.size);
    let bytes = r.bytes().await?;
    if range != want || bytes.len() as u64 != want.end - want.start {
        return Err(object_store::Error::Generic {
            store: "zarr-wavfs",
            source: format!(
                "asked for bytes {}..{} of {size}, the answer held {} bytes for {}..{}",
                want.start,
                want.end,
                bytes.len(),
                range.start,
                range.end
            )
            .into(),
        });
    }
    Ok(bytes)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

impl ReadableStorageTraits for Inner {
    fn get(&self, key: &StoreKey) -> Result<MaybeBytes, StorageError> {
        self.get_object(key.as_str())
            .map(|o| o.map(|o| o.bytes))
            .map_err(Self::storage_error)
    }

    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        let got = self
            .read_ranges(key.as_str(), byte_ranges.collect())
            .map_err(Self::storage_error)?;
        Ok(got.map(|v| {
            Box::new(v.into_iter().map(Ok::<ZBytes, StorageError>))
                as Box<dyn Iterator<Item = Result<ZBytes, StorageError>>>
        }))
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        let k = key.as_str();
        let path = self.path(k);
        self.count();
        match self.run(k, self.client.head(&path)) {
            Ok(m) => Ok(Some(m.size)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(Self::storage_error(e)),
        }
    }

    fn supports_get_partial(&self) -> bool {
        true
    }
}

impl WritableStorageTraits for Inner {
    fn set(&self, key: &StoreKey, value: ZBytes) -> Result<(), StorageError> {
        self.put(key.as_str(), value).map_err(Self::storage_error)
    }

    fn set_partial_many(
        &self,
        key: &StoreKey,
        _offset_values: OffsetBytesIterator,
    ) -> Result<(), StorageError> {
        Err(StorageError::Unsupported(format!(
            "{}: objects are written whole",
            self.location(key.as_str())
        )))
    }

    fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
        let k = key.as_str();
        if !self.writable {
            return Err(StorageError::ReadOnly);
        }
        let path = self.path(k);
        self.forget_prefetched(k);
        self.count();
        match self.run(k, self.client.delete(&path)) {
            Ok(()) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(Self::storage_error(e)),
        }
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
        self.erase_rel(prefix.as_str()).map_err(Self::storage_error)
    }

    fn supports_set_partial(&self) -> bool {
        false
    }
}

impl ListableStorageTraits for Inner {
    fn list(&self) -> Result<StoreKeys, StorageError> {
        self.list_prefix(&StorePrefix::root())
    }

    fn list_prefix(&self, prefix: &StorePrefix) -> Result<StoreKeys, StorageError> {
        if !self.listable {
            return Err(StorageError::Unsupported("a web server cannot list".into()));
        }
        let p = prefix.as_str();
        let dir = self.path(p);
        self.count();
        let metas = self
            .run(p, self.client.list(Some(&dir)).try_collect::<Vec<_>>())
            .map_err(Self::storage_error)?;
        let mut keys = Vec::new();
        for m in metas {
            let full = m.location.as_ref();
            let rel = full.strip_prefix(&self.prefix).unwrap_or(full);
            keys.push(StoreKey::new(rel)?);
        }
        keys.sort();
        Ok(keys)
    }

    fn list_dir(&self, prefix: &StorePrefix) -> Result<StoreKeysPrefixes, StorageError> {
        if !self.listable {
            return Err(StorageError::Unsupported("a web server cannot list".into()));
        }
        let p = prefix.as_str();
        let dir = self.path(p);
        self.count();
        let list = self
            .run(p, self.client.list_with_delimiter(Some(&dir)))
            .map_err(Self::storage_error)?;
        let strip = |full: &str| full.strip_prefix(&self.prefix).unwrap_or(full).to_string();
        let mut keys = Vec::new();
        for m in &list.objects {
            keys.push(StoreKey::new(strip(m.location.as_ref()))?);
        }
        let mut prefixes = Vec::new();
        for c in &list.common_prefixes {
            prefixes.push(StorePrefix::new(format!("{}/", strip(c.as_ref())))?);
        }
        keys.sort();
        prefixes.sort();
        Ok(StoreKeysPrefixes::new(keys, prefixes))
    }

    fn size_prefix(&self, prefix: &StorePrefix) -> Result<u64, StorageError> {
        let p = prefix.as_str();
        let dir = self.path(p);
        self.count();
        self.run(p, async {
            self.client
                .list(Some(&dir))
                .try_fold(0u64, |n, m| async move { Ok(n + m.size) })
                .await
        })
        .map_err(Self::storage_error)
    }
}

/// An S3 client configured the way the AWS command line would be: the `AWS_*`
/// environment, then the profile's `~/.aws/credentials` and `~/.aws/config`, then our
/// own options, which win.
fn s3_builder(
    bucket: &str,
    o: &RemoteOptions,
) -> Result<object_store::aws::AmazonS3Builder, StoreError> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey as K};
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let profile = o
        .profile
        .clone()
        .or_else(|| env("AWS_PROFILE"))
        .unwrap_or_else(|| "default".into());
    let home = env("HOME").unwrap_or_default();
    let creds_file =
        env("AWS_SHARED_CREDENTIALS_FILE").unwrap_or_else(|| format!("{home}/.aws/credentials"));
    let config_file = env("AWS_CONFIG_FILE").unwrap_or_else(|| format!("{home}/.aws/config"));
    let creds = ini_section(&creds_file, &profile);
    let config = ini_section(
        &config_file,
        &if profile == "default" {
            profile.clone()
        } else {
            format!("profile {profile}")
        },
    );
    let from = |k: &str| {
        creds
            .iter()
            .chain(config.iter())
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let mut have_key = env("AWS_ACCESS_KEY_ID").is_some();
    if !have_key
        && let (Some(id), Some(secret)) = (from("aws_access_key_id"), from("aws_secret_access_key"))
    {
        b = b.with_access_key_id(id).with_secret_access_key(secret);
        if let Some(t) = from("aws_session_token") {
            b = b.with_token(t);
        }
        have_key = true;
    }
    if env("AWS_REGION").is_none()
        && env("AWS_DEFAULT_REGION").is_none()
        && let Some(r) = from("region")
    {
        b = b.with_region(r);
    }
    if env("AWS_ENDPOINT_URL").is_none()
        && let Some(e) = from("endpoint_url")
    {
        b = b.with_endpoint(e);
    }
    if let Some(e) = &o.endpoint {
        b = b.with_endpoint(e);
    }
    if let Some(r) = &o.region {
        b = b.with_region(r);
    }
    if o.virtual_hosted {
        b = b.with_virtual_hosted_style_request(true);
    }
    if o.anonymous {
        b = b.with_skip_signature(true);
    } else if !have_key
        && env("AWS_WEB_IDENTITY_TOKEN_FILE").is_none()
        && env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_none()
        && env("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_none()
        && b.get_config_value(&K::SkipSignature).as_deref() != Some("true")
    {
        return Err(StoreError::Config(format!(
            "s3://{bucket}: no S3 credentials (set AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY, or a profile in {creds_file}; for a public bucket use \
             --no-sign-request)"
        )));
    }
    Ok(b)
}

/// The `key = value` pairs of `[section]` in an INI file such as `~/.aws/credentials`
/// (keys lower-cased); empty when the file or the section is missing.
fn ini_section(file: &str, section: &str) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
        } else if inside && let Some((k, v)) = line.split_once('=') {
            out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_sections_are_read_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("credentials");
        std::fs::write(
            &f,
            "[default]\naws_access_key_id = A\n# note\n[lab]\nAWS_ACCESS_KEY_ID=B\naws_secret_access_key = S \n",
        )
        .unwrap();
        let f = f.to_str().unwrap();
        assert_eq!(
            ini_section(f, "default"),
            [("aws_access_key_id".into(), "A".into())]
        );
        assert_eq!(
            ini_section(f, "lab"),
            [
                ("aws_access_key_id".into(), "B".into()),
                ("aws_secret_access_key".into(), "S".into())
            ]
        );
        assert!(ini_section(f, "other").is_empty());
        assert!(ini_section("/nonexistent", "default").is_empty());
    }
}
