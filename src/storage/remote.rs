//! Objects in a remote store through `object_store`: the client and its runtime, the caches in
//! front of it (descriptions, listings, byte blocks), the fetches a request's passes ask for
//! ([`Remote::fetch`]), and blocking reads for work outside a request's fetch loop.
//!
//! Every call has a timeout (`IIPSRV_STORAGE_TIMEOUT`) and is retried with exponential
//! back-off at most `IIPSRV_STORAGE_RETRIES` times by the client; a read names the version it
//! expects (`If-Match` with the ETag), so bytes of a replaced object are never mixed with the
//! old ones; a body shorter than the range asked for is an error.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::ObjectStore;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use super::client::{Client, redact};
use super::collect::{self, BlockKey, Collector, Scope, Want};
use super::error::{StorageError, StorageErrorKind};
use super::location::{self, Location};
use super::object::Object;
use super::{BLOCK, Blob, HEADER_READ_AHEAD, Meta, Result, Settings};

/// At most this many object descriptions and listings are kept.
const MAX_DESCRIPTIONS: usize = 1 << 16;
/// The longest run of blocks fetched in one GET.
const MAX_RUN_BYTES: u64 = 16 << 20;
/// The key the readiness probe asks for, under the key prefix (it need not exist).
const PROBE_KEY: &str = ".iipsrv-ready";

/// Threads of the storage runtime (network I/O only; decoding never runs there).
const RUNTIME_THREADS: usize = 2;

/// A cached description: the object, or its absence, and when it was fetched.
#[derive(Debug, Clone)]
struct Described {
    object: Option<Arc<Object>>,
    at: Instant,
}

/// A cached listing.
#[derive(Debug, Clone)]
struct Listed {
    names: Arc<Vec<Vec<u8>>>,
    at: Instant,
}

#[derive(Debug, Clone)]
struct ByBytes;

impl Weighter<BlockKey, Bytes> for ByBytes {
    fn weight(&self, key: &BlockKey, block: &Bytes) -> u64 {
        block.len() as u64 + key.0.len() as u64 + 64
    }
}

/// The storage runtime, shut down without waiting when dropped (it may be dropped inside the
/// server's own runtime).
#[derive(Debug)]
struct IoRuntime(Option<tokio::runtime::Runtime>);

impl Drop for IoRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The remote store and its caches.
#[derive(Debug)]
pub(crate) struct Remote {
    client: Client,
    runtime: IoRuntime,
    describe: String,
    settings: Settings,
    descriptions: Cache<String, Described>,
    listings: Cache<String, Listed>,
    blocks: Option<Cache<BlockKey, Bytes, ByBytes>>,
    gets: AtomicU64,
    blocking: AtomicU64,
}

impl Remote {
    pub(crate) fn new(
        location: &Location,
        settings: Settings,
    ) -> std::result::Result<Remote, String> {
        use object_store::{BackoffConfig, ClientConfigKey, ClientOptions, RetryConfig};
        let timeout = Duration::from_millis(settings.timeout_ms.max(1));
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: settings.retries as usize,
            retry_timeout: timeout * (settings.retries + 1),
        };
        let (store, describe): (Arc<dyn ObjectStore>, String) = match location {
            Location::S3 { bucket, .. } => {
                use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey as K};
                let ms = format!("{}ms", timeout.as_millis());
                let connect = format!("{}ms", timeout.as_millis().min(5000));
                let store = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_config(K::Client(ClientConfigKey::Timeout), ms)
                    .with_config(K::Client(ClientConfigKey::ConnectTimeout), connect)
                    .with_retry(retry)
                    .build()
                    .map_err(|e| format!("object storage: {}", redact(&e.to_string())))?;
                (Arc::new(store), format!("s3://{bucket}"))
            }
            Location::Http { root, .. } => {
                use object_store::http::HttpBuilder;
                let options = ClientOptions::new()
                    .with_timeout(timeout)
                    .with_connect_timeout(timeout.min(Duration::from_secs(5)))
                    .with_allow_http(true);
                let store = HttpBuilder::new()
                    .with_url(root.clone())
                    .with_client_options(options)
                    .with_retry(retry)
                    .build()
                    .map_err(|e| format!("object storage: {}", redact(&e.to_string())))?;
                (Arc::new(store), root.trim_end_matches('/').to_string())
            }
            Location::Local => return Err("not a remote location".into()),
        };
        let listing_optional = matches!(location, Location::Http { .. });
        Remote::with_store(store, describe, settings, listing_optional)
    }

    /// The store behind `store` (its calls already bounded by their own timeouts and
    /// retries); `listing_optional`: a store that may not list (plain HTTP).
    fn with_store(
        store: Arc<dyn ObjectStore>,
        describe: String,
        settings: Settings,
        listing_optional: bool,
    ) -> std::result::Result<Remote, String> {
        let timeout = Duration::from_millis(settings.timeout_ms.max(1));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("iipsrv-storage")
            .enable_all()
            .build()
            .map_err(|e| format!("object storage: cannot start its runtime: {e}"))?;
        let blocks = (settings.cache_bytes > 0).then(|| {
            let items = (settings.cache_bytes / BLOCK).clamp(16, 1 << 22) as usize;
            Cache::with_weighter(items, settings.cache_bytes, ByBytes)
        });
        // Each try's timeout, the back-off between tries (at most 2 s each), and a margin.
        let limit = (timeout + Duration::from_secs(2)) * (settings.retries + 1) + timeout;
        Ok(Remote {
            client: Client {
                store,
                limit,
                listing_optional,
            },
            runtime: IoRuntime(Some(runtime)),
            describe,
            settings,
            descriptions: Cache::new(MAX_DESCRIPTIONS),
            listings: Cache::new(MAX_DESCRIPTIONS),
            blocks,
            gets: AtomicU64::new(0),
            blocking: AtomicU64::new(0),
        })
    }

    /// Whether storage answers (readiness): a HEAD of a key that need not exist, under the
    /// key prefix; "no such object" is an answer. The reason names no bucket or endpoint.
    pub(crate) async fn probe(&self, key_prefix: &str) -> std::result::Result<(), String> {
        let (client, key) = (self.client.clone(), format!("{key_prefix}{PROBE_KEY}"));
        let task = self.handle().spawn(async move { client.head(key).await });
        match flatten(task.await) {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("object storage: {:?}", e.kind).to_lowercase()),
        }
    }

    pub(crate) fn describe(&self) -> &str {
        &self.describe
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .0
            .as_ref()
            .expect("the runtime lives as long as the store")
            .handle()
    }

    fn fresh(&self, at: Instant) -> bool {
        at.elapsed() < Duration::from_secs(self.settings.revalidate_secs)
    }

    /// Run `fut` on the storage runtime and wait for it on this thread (moving this worker's
    /// other connections elsewhere first when it is a runtime worker).
    fn block_on<T: Send + 'static>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        use tokio::runtime::{Handle, RuntimeFlavor};
        self.blocking.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("Storage :: blocking read: {what}");
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle().spawn(async move {
            let _ = tx.send(fut.await);
        });
        let wait = move || rx.recv();
        let got = match Handle::try_current() {
            Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        };
        got.unwrap_or_else(|_| {
            Err(StorageError::new(
                StorageErrorKind::Unreachable,
                "the storage runtime stopped",
            ))
        })
    }

    /// A request that fell back to blocking reads.
    pub(crate) fn count_blocking_pass(&self) {
        self.blocking.fetch_add(1, Ordering::Relaxed);
    }

    // ---- descriptions -------------------------------------------------------------------

    fn described(&self, key: &str) -> Option<Option<Arc<Object>>> {
        self.descriptions
            .get(key)
            .filter(|d| self.fresh(d.at))
            .map(|d| d.object)
    }

    /// The object at `key` (a full name), through the description cache.
    fn object(&self, path: &Path) -> Result<Option<Arc<Object>>> {
        let Some(key) = location::object_key(path.as_os_str().as_encoded_bytes()) else {
            return Ok(None);
        };
        let key = key.to_string();
        if let Some(d) = self.described(&key) {
            return Ok(d);
        }
        if let Some(c) = collect::current() {
            let want = Want::Head(key);
            return Err(match c.failure(&want.failure_key()) {
                Some(e) => e,
                None => c.want(want),
            });
        }
        let client = self.client.clone();
        let k = key.clone();
        let object = self.block_on(&format!("HEAD {key}"), async move { client.head(k).await })?;
        self.remember(key, object.clone());
        Ok(object)
    }

    fn remember(&self, key: String, object: Option<Arc<Object>>) {
        self.descriptions.insert(
            key,
            Described {
                object,
                at: Instant::now(),
            },
        );
    }

    pub(crate) fn stat(&self, path: &Path) -> Result<Option<Meta>> {
        Ok(self.object(path)?.map(|o| o.meta()))
    }

    pub(crate) fn open(self: &Arc<Self>, path: &Path, _meta: Option<Meta>) -> Result<RemoteBlob> {
        match self.object(path)? {
            Some(object) => Ok(RemoteBlob {
                remote: self.clone(),
                object,
            }),
            None => Err(StorageError::new(
                StorageErrorKind::NotFound,
                format!("{}: no such object", path.display()),
            )),
        }
    }

    // ---- listings -----------------------------------------------------------------------

    pub(crate) fn list(&self, dir: &Path, max: usize) -> Result<Option<Vec<Vec<u8>>>> {
        let Some(prefix) = location::directory_key(dir.as_os_str().as_encoded_bytes()) else {
            return Ok(None);
        };
        let dir_key = prefix.as_ref().map(|p| p.to_string()).unwrap_or_default();
        if let Some(l) = self.listings.get(&dir_key).filter(|l| self.fresh(l.at)) {
            return Ok(Some(l.names.iter().take(max).cloned().collect()));
        }
        if let Some(c) = collect::current() {
            let want = Want::List(dir_key);
            return Err(match c.failure(&want.failure_key()) {
                Some(e) => e,
                None => c.want(want),
            });
        }
        let client = self.client.clone();
        let d = dir_key.clone();
        let names = self.block_on(
            &format!("LIST {dir_key}"),
            async move { client.list(d).await },
        )?;
        let out = names.iter().take(max).cloned().collect();
        self.listings.insert(
            dir_key,
            Listed {
                names: Arc::new(names),
                at: Instant::now(),
            },
        );
        Ok(Some(out))
    }

    // ---- blocks -------------------------------------------------------------------------

    fn block_key(object: &Object, b: u64) -> BlockKey {
        (Arc::from(object.key.as_ref()), object.version_tag, b)
    }

    /// A block from the request's own fetches, else from the shared cache.
    fn cached_block(&self, object: &Object, b: u64) -> Option<Bytes> {
        let key = Self::block_key(object, b);
        if let Some(block) = collect::current().and_then(|c| c.kept(&key)) {
            return Some(block);
        }
        self.blocks.as_ref()?.get(&key)
    }

    /// Blocks `first..=last` of `object` as one ranged GET, cached block by block.
    fn run_range(object: &Object, first: u64, last: u64) -> Range<u64> {
        first * BLOCK..((last + 1) * BLOCK).min(object.len)
    }

    /// Keep the blocks of a fetched run in the shared cache, and in `request`'s collector.
    fn keep_blocks(&self, object: &Object, first: u64, run: &Bytes, request: Option<&Collector>) {
        let mut b = first;
        let mut at = 0usize;
        while at < run.len() {
            let end = (at + BLOCK as usize).min(run.len());
            let key = Self::block_key(object, b);
            if let Some(c) = request {
                c.keep(key.clone(), run.slice(at..end));
            }
            if let Some(cache) = &self.blocks {
                cache.insert(key, run.slice(at..end));
            }
            at = end;
            b += 1;
        }
    }

    /// Fetch everything a pass recorded, concurrently, and remember the outcome: results in
    /// the caches, failures in the collector (a changed object's description is dropped, so
    /// that the next pass asks again).
    pub(crate) async fn fetch(self: &Arc<Self>, wants: Vec<Want>, collector: &Collector) {
        let mut heads: Vec<String> = Vec::new();
        let mut lists: Vec<String> = Vec::new();
        let mut runs: Vec<(Arc<Object>, u64, u64)> = Vec::new();
        for w in wants {
            match w {
                Want::Head(k) if !heads.contains(&k) => heads.push(k),
                Want::List(d) if !lists.contains(&d) => lists.push(d),
                Want::Blocks {
                    object,
                    first,
                    last,
                } => runs.push((object, first, last)),
                _ => {}
            }
        }
        let runs = coalesce(runs);
        let mut tasks = Vec::new();
        for key in heads {
            let (client, k) = (self.client.clone(), key.clone());
            let task = self
                .handle()
                .spawn(async move { client.head(k).await.map(Fetched::Head) });
            tasks.push((Want::Head(key), task));
        }
        for dir in lists {
            let (client, d) = (self.client.clone(), dir.clone());
            let task = self
                .handle()
                .spawn(async move { client.list(d).await.map(Fetched::List) });
            tasks.push((Want::List(dir), task));
        }
        for (object, first, last) in runs {
            let (client, o) = (self.client.clone(), object.clone());
            let range = Self::run_range(&object, first, last);
            self.gets.fetch_add(1, Ordering::Relaxed);
            let task = self
                .handle()
                .spawn(async move { client.get_range(&o, range).await.map(Fetched::Run) });
            let want = Want::Blocks {
                object,
                first,
                last,
            };
            tasks.push((want, task));
        }
        for (want, task) in tasks {
            match (want, flatten(task.await)) {
                (Want::Head(key), Ok(Fetched::Head(object))) => self.remember(key, object),
                (Want::List(dir), Ok(Fetched::List(names))) => {
                    self.listings.insert(
                        dir,
                        Listed {
                            names: Arc::new(names),
                            at: Instant::now(),
                        },
                    );
                }
                (Want::Blocks { object, first, .. }, Ok(Fetched::Run(run))) => {
                    self.keep_blocks(&object, first, &run, Some(collector));
                }
                (want, Err(e)) => {
                    if e.kind == StorageErrorKind::Changed {
                        if let Want::Blocks { object, .. } = &want {
                            self.descriptions.remove(object.key.as_ref());
                        }
                    }
                    collector.fail(want.failure_key(), e);
                }
                _ => {}
            }
        }
    }

    pub(crate) fn clear_caches(&self) {
        self.descriptions.clear();
        self.listings.clear();
        if let Some(b) = &self.blocks {
            b.clear();
        }
    }
}

enum Fetched {
    Head(Option<Arc<Object>>),
    List(Vec<Vec<u8>>),
    Run(Bytes),
}

fn flatten<T>(r: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    r.unwrap_or_else(|e| {
        Err(StorageError::new(StorageErrorKind::BadResponse, "storage task failed").because(e))
    })
}

/// Merge the runs of each object version that overlap or touch, up to [`MAX_RUN_BYTES`].
fn coalesce(mut runs: Vec<(Arc<Object>, u64, u64)>) -> Vec<(Arc<Object>, u64, u64)> {
    runs.sort_by(|a, b| {
        (a.0.key.as_ref(), a.0.version_tag, a.1).cmp(&(b.0.key.as_ref(), b.0.version_tag, b.1))
    });
    let mut out: Vec<(Arc<Object>, u64, u64)> = Vec::new();
    for (object, first, last) in runs {
        if let Some(prev) = out.last_mut() {
            let same = prev.0.key == object.key && prev.0.version_tag == object.version_tag;
            if same
                && first <= prev.2 + 1
                && (last.max(prev.2) + 1 - prev.1) * BLOCK <= MAX_RUN_BYTES
            {
                prev.2 = prev.2.max(last);
                continue;
            }
        }
        out.push((object, first, last));
    }
    out
}

/// One object at one version, read through the block cache.
#[derive(Debug)]
pub(crate) struct RemoteBlob {
    remote: Arc<Remote>,
    object: Arc<Object>,
}

impl Blob for RemoteBlob {
    fn len(&self) -> u64 {
        self.object.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64, ahead: u64) -> Result<()> {
        let o = &self.object;
        let end = offset.checked_add(buf.len() as u64);
        let Some(end) = end.filter(|&e| e <= o.len) else {
            return Err(StorageError::io(
                std::io::ErrorKind::UnexpectedEof.into(),
                format!(
                    "{}: read of {} bytes at {offset} past the end",
                    o.key,
                    buf.len()
                ),
            ));
        };
        if buf.is_empty() {
            return Ok(());
        }
        let (first, last) = (offset / BLOCK, (end - 1) / BLOCK);
        let blocks: Vec<Option<Bytes>> = (first..=last)
            .map(|b| self.remote.cached_block(o, b))
            .collect();
        let missing = blocks.iter().position(Option::is_none);
        let run = match missing {
            None => None,
            Some(m) => {
                let header = if offset == 0 { HEADER_READ_AHEAD } else { 0 };
                let want_end = end.max(offset.saturating_add(ahead.max(header))).min(o.len);
                let fetch_first = first + m as u64;
                let fetch_last = (want_end - 1) / BLOCK;
                if let Some(c) = collect::current() {
                    let want = Want::Blocks {
                        object: o.clone(),
                        first: fetch_first,
                        last: fetch_last,
                    };
                    return Err(match c.failure(&want.failure_key()) {
                        Some(e) => e,
                        None => c.want(want),
                    });
                }
                let range = Remote::run_range(o, fetch_first, fetch_last);
                let (client, object) = (self.remote.client.clone(), o.clone());
                self.remote.gets.fetch_add(1, Ordering::Relaxed);
                let bytes = self
                    .remote
                    .block_on(&format!("GET {}", o.key), async move {
                        client.get_range(&object, range).await
                    })?;
                self.remote.keep_blocks(o, fetch_first, &bytes, None);
                Some((fetch_first, bytes))
            }
        };
        // Copy block by block, from the cache or from the run just fetched.
        let mut at = 0usize;
        for (i, cached) in blocks.into_iter().enumerate() {
            let b = first + i as u64;
            let block = match (cached, &run) {
                (Some(bytes), _) => bytes,
                (None, Some((run_first, bytes))) => {
                    let start = ((b - run_first) * BLOCK) as usize;
                    let stop = (start + BLOCK as usize).min(bytes.len());
                    bytes.slice(start..stop)
                }
                (None, None) => {
                    return Err(StorageError::new(
                        StorageErrorKind::BadResponse,
                        "a block was neither cached nor fetched",
                    ));
                }
            };
            let block_start = b * BLOCK;
            let from = (offset + at as u64 - block_start) as usize;
            let n = (block.len() - from).min(buf.len() - at);
            buf[at..at + n].copy_from_slice(&block[from..from + n]);
            at += n;
        }
        Ok(())
    }
}

/// One pass of `work` under `collector`: its output, or what it needs from storage.
fn pass<R>(
    collector: &Arc<Collector>,
    round: usize,
    work: &mut impl FnMut() -> R,
) -> Result<R, Vec<Want>> {
    let out = Scope::of(collector.clone()).enter(work);
    let wants = collector.take_wants();
    if wants.is_empty() {
        if round > 1 {
            tracing::debug!("Storage :: answered in pass {round}");
        }
        return Ok(out);
    }
    tracing::debug!("Storage :: pass {round} needs {} fetches", wants.len());
    Err(wants)
}

/// After [`collect::MAX_ROUNDS`] passes: the work once more, reading what it misses with
/// blocking calls.
fn last_pass<R>(remote: &Remote, work: &mut impl FnMut() -> R) -> R {
    tracing::info!(
        "Storage :: a request still missed bytes after {} passes; \
         reading the rest with blocking calls",
        collect::MAX_ROUNDS
    );
    remote.count_blocking_pass();
    work()
}

/// Run `work` until a pass needs nothing from storage, fetching between passes (see
/// `storage::collect`): the fetches are awaited, so the worker serves other connections.
pub(super) async fn serve<R>(remote: &Arc<Remote>, mut work: impl FnMut() -> R) -> R {
    let collector = Arc::new(Collector::default());
    for round in 1..=collect::MAX_ROUNDS {
        match pass(&collector, round, &mut work) {
            Ok(out) => return out,
            Err(wants) => remote.fetch(wants, &collector).await,
        }
    }
    last_pass(remote, &mut work)
}

/// The same for work on a thread that may block (heavy work on its own pool): the thread
/// waits for each round of fetches, which run concurrently on the storage runtime, so that a
/// region's tiles are fetched together instead of one blocking read after another.
pub(super) fn serve_blocking<R>(remote: &Arc<Remote>, mut work: impl FnMut() -> R) -> R {
    let collector = Arc::new(Collector::default());
    for round in 1..=collect::MAX_ROUNDS {
        let wants = match pass(&collector, round, &mut work) {
            Ok(out) => return out,
            Err(wants) => wants,
        };
        let (r, c) = (remote.clone(), collector.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        remote.handle().spawn(async move {
            r.fetch(wants, &c).await;
            let _ = tx.send(());
        });
        // A stopped runtime drops the sender: the next pass finds the same wants, and the
        // last one reads with blocking calls (which fail with their own error).
        let _ = rx.recv();
    }
    last_pass(remote, &mut work)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutPayload};

    /// A remote over an in-memory store holding `key` = `data`, keeping `cache_bytes` of blocks.
    fn remote_with(key: &str, data: &[u8], cache_bytes: u64) -> Arc<Remote> {
        let store = Arc::new(InMemory::new());
        let settings = Settings {
            timeout_ms: 5000,
            retries: 0,
            revalidate_secs: 3600,
            cache_bytes,
        };
        let remote = Remote::with_store(store.clone(), "memory".into(), settings, false).unwrap();
        let path = object_store::path::Path::from(key);
        let put = store.put(&path, PutPayload::from(data.to_vec()));
        remote.handle().block_on(put).unwrap();
        Arc::new(remote)
    }

    #[test]
    fn blocks_fetched_for_a_request_stay_with_it_when_the_shared_cache_cannot_hold_them() {
        // 3 MiB read at once through 1 MiB of block cache: the second pass must find the
        // blocks the first fetched (in its collector), not ask for them again.
        let data: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
        let remote = remote_with("big", &data, 1 << 20);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut passes = 0;
        let got = rt.block_on(serve(&remote, || {
            passes += 1;
            let blob = remote.open(Path::new("big"), None)?;
            let mut buf = vec![0; data.len()];
            blob.read_at(&mut buf, 0, 0)?;
            Ok::<_, StorageError>(buf)
        }));
        assert!(got.unwrap() == data);
        // The description, then the bytes in one GET, then the answer.
        assert_eq!(passes, 3);
        assert_eq!(remote.gets.load(Ordering::Relaxed), 1);
        assert_eq!(remote.blocking.load(Ordering::Relaxed), 0);
    }
}
