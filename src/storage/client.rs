//! The `object_store` calls the remote store makes (HEAD, ranged GET, listing), each bounded
//! by a deadline, with their errors classified ([`StorageErrorKind`]) and credentials
//! redacted from any message.

use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};

use super::Result;
use super::error::{StorageError, StorageErrorKind, classify};
use super::object::Object;

/// The `object_store` client with the longest time a call may take, retries included (a
/// guard against a connection that never answers; the client's own timeouts end calls first).
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) limit: Duration,
    /// A plain HTTP server lists directories only if it speaks WebDAV (`PROPFIND`); one that
    /// refuses has no image sequences rather than failing every missing image.
    pub(crate) listing_optional: bool,
}

/// A storage error from an `object_store` one (the detail is for the log only).
pub(crate) fn storage_error(e: object_store::Error, what: &str) -> StorageError {
    StorageError::new(classify(&e), what.to_string()).because(e)
}

impl Client {
    async fn guarded<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(StorageError::new(
                StorageErrorKind::Timeout,
                what.to_string(),
            )),
        }
    }

    /// HEAD: the object's description, `None` when it does not exist.
    pub(crate) async fn head(&self, key: String) -> Result<Option<Arc<Object>>> {
        tracing::debug!("Storage :: HEAD {key}");
        let what = format!("HEAD {key}");
        let store = &self.store;
        self.guarded(&what, async {
            let path = object_store::path::Path::parse(&key)
                .map_err(|e| storage_error(e.into(), &what))?;
            match store.head(&path).await {
                Ok(meta) => Ok(Some(Arc::new(describe(path, &meta)))),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(storage_error(e, &what)),
            }
        })
        .await
    }
}

fn describe(key: object_store::path::Path, meta: &object_store::ObjectMeta) -> Object {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match (&meta.e_tag, &meta.version) {
        (Some(tag), _) => tag.hash(&mut h),
        (None, Some(v)) => v.hash(&mut h),
        (None, None) => (meta.size, meta.last_modified.timestamp()).hash(&mut h),
    }
    let tag = h.finish();
    let secs = meta.last_modified.timestamp().max(0) as u64;
    let modified = SystemTime::UNIX_EPOCH
        + Duration::from_secs(secs)
        + Duration::from_nanos(tag % 1_000_000_000);
    Object {
        key,
        len: meta.size,
        etag: meta.e_tag.clone(),
        version_tag: tag,
        modified,
    }
}

impl Client {
    /// A ranged GET of one version: `If-Match` its ETag; the body must be the whole range.
    pub(crate) async fn get_range(&self, object: &Object, range: Range<u64>) -> Result<Bytes> {
        let store = &self.store;
        tracing::debug!(
            "Storage :: GET {} bytes {}-{}",
            object.key,
            range.start,
            range.end.saturating_sub(1)
        );
        let what = format!("GET {} {}..{}", object.key, range.start, range.end);
        self.guarded(&what, async {
            let options = GetOptions {
                range: Some(GetRange::Bounded(range.clone())),
                if_match: object.etag.clone(),
                ..GetOptions::default()
            };
            let result = store
                .get_opts(&object.key, options)
                .await
                .map_err(|e| storage_error(e, &what))?;
            if result.meta.size != object.len {
                return Err(StorageError::new(
                    StorageErrorKind::Changed,
                    format!("{what}: the object is now {} bytes", result.meta.size),
                ));
            }
            // Storage answered, then the body broke off (a short body): a bad answer, unless
            // it stalled until the timeout.
            let bytes = result.bytes().await.map_err(|e| {
                let mut e = storage_error(e, &what);
                if e.kind != StorageErrorKind::Timeout {
                    e.kind = StorageErrorKind::BadResponse;
                }
                e
            })?;
            if bytes.len() as u64 != range.end - range.start {
                return Err(StorageError::new(
                    StorageErrorKind::BadResponse,
                    format!("{what}: {} bytes in the answer", bytes.len()),
                ));
            }
            Ok(bytes)
        })
        .await
    }

    /// The names directly inside a directory (`""` = the root).
    pub(crate) async fn list(&self, dir: String) -> Result<Vec<Vec<u8>>> {
        tracing::debug!("Storage :: LIST {dir}/");
        let what = format!("LIST {dir}/");
        let store = &self.store;
        self.guarded(&what, async {
            let prefix = if dir.is_empty() {
                None
            } else {
                Some(
                    object_store::path::Path::parse(&dir)
                        .map_err(|e| storage_error(e.into(), &what))?,
                )
            };
            let listed = match store.list_with_delimiter(prefix.as_ref()).await {
                Ok(listed) => listed,
                Err(e) => {
                    let e = storage_error(e, &what);
                    if self.listing_optional && e.kind == StorageErrorKind::BadResponse {
                        tracing::debug!("Storage :: no listing (not a WebDAV server): {e}");
                        return Ok(Vec::new());
                    }
                    return Err(e);
                }
            };
            Ok(listed
                .objects
                .iter()
                .filter_map(|o| o.location.filename().map(|n| n.as_bytes().to_vec()))
                .collect())
        })
        .await
    }
}

/// Remove anything that looks like a credential from a client library's message.
pub(crate) fn redact(message: &str) -> String {
    let secrets: Vec<String> = [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ACCESS_KEY_ID",
    ]
    .iter()
    .filter_map(|v| std::env::var(v).ok())
    .filter(|s| s.len() >= 4)
    .collect();
    let mut out = message.to_string();
    for s in secrets {
        out = out.replace(&s, "[redacted]");
    }
    out
}
