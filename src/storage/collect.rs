//! The fetch loop that keeps storage latency off the workers.
//!
//! A request's synchronous work runs inside [`serve`] with a [`Collector`] installed on the
//! thread (and carried into the region code's parallel tasks by [`Scope`]). A remote read,
//! `stat` or listing that the caches cannot answer records a [`Want`] there and fails at once
//! with [`StorageErrorKind::Pending`]. When the pass ends, `serve` fetches every recorded want
//! concurrently on the storage runtime, awaiting it (the worker runs other connections
//! meanwhile), and runs the work again. The pass that records nothing is the answer.
//!
//! A pass that recorded a want may have produced anything (an error, or a result built around
//! a swallowed failure): it is thrown away, and nothing it built is cached (the caches ask
//! [`pending`] before storing). A fetch that fails is remembered for the rest of the request,
//! so the next pass gets that failure instead of the same want again. After [`MAX_ROUNDS`]
//! passes, the work runs once more without a collector: what it still misses is read with
//! blocking calls (counted in the log), so every request ends. (The loop itself is
//! `remote::serve`, next to the fetches it awaits.)
//!
//! The blocks fetched for a request are kept in its collector until it ends, besides the
//! shared block cache: the next pass finds them even when other requests have pushed them out
//! of that cache (a small `IIPSRV_STORAGE_CACHE_SIZE`, or none, under many clients).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::error::{StorageError, StorageErrorKind};
use super::object::Object;

/// Passes with fetches in between before the work reads the rest with blocking calls.
pub const MAX_ROUNDS: usize = 8;

/// Something a pass needs from storage.
#[derive(Debug, Clone)]
pub(crate) enum Want {
    /// An object's description (HEAD).
    Head(String),
    /// A directory listing.
    List(String),
    /// Blocks `first..=last` of an object at its version.
    Blocks {
        object: Arc<Object>,
        first: u64,
        last: u64,
    },
}

/// What a failure is remembered under for the rest of the request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum FailureKey {
    Head(String),
    List(String),
    Object(String, u64),
}

impl Want {
    pub(crate) fn failure_key(&self) -> FailureKey {
        match self {
            Want::Head(k) => FailureKey::Head(k.clone()),
            Want::List(d) => FailureKey::List(d.clone()),
            Want::Blocks { object, .. } => {
                FailureKey::Object(object.key.to_string(), object.version_tag)
            }
        }
    }
}

/// A block of an object: its key, version tag and block number.
pub(crate) type BlockKey = (Arc<str>, u64, u64);

/// One request's wants, failures and the blocks fetched for it.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    wants: Mutex<Vec<Want>>,
    failures: Mutex<HashMap<FailureKey, StorageError>>,
    blocks: Mutex<HashMap<BlockKey, Bytes>>,
}

impl Collector {
    /// Record `want`; the caller then fails with [`Self::pending`].
    pub(crate) fn want(&self, want: Want) -> StorageError {
        let e = StorageError::new(StorageErrorKind::Pending, format!("{want:?}"));
        self.wants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(want);
        e
    }

    /// A failure remembered for `key` in this request.
    pub(crate) fn failure(&self, key: &FailureKey) -> Option<StorageError> {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    pub(crate) fn fail(&self, key: FailureKey, e: StorageError) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, e);
    }

    /// Keep a block fetched for this request until it ends.
    pub(crate) fn keep(&self, key: BlockKey, block: Bytes) {
        self.blocks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, block);
    }

    /// A block fetched for this request.
    pub(crate) fn kept(&self, key: &BlockKey) -> Option<Bytes> {
        self.blocks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    pub(crate) fn take_wants(&self) -> Vec<Want> {
        std::mem::take(&mut *self.wants.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn has_wants(&self) -> bool {
        !self
            .wants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Collector>>> = const { RefCell::new(None) };
}

/// The collector of the pass running on this thread, if any.
pub(crate) fn current() -> Option<Arc<Collector>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Whether the pass running on this thread has recorded a want: its results are thrown away,
/// so nothing it built may be cached.
pub fn pending() -> bool {
    current().is_some_and(|c| c.has_wants())
}

/// The pass's collector, to carry into other threads (the parallel tasks of a region).
#[derive(Debug, Clone)]
pub struct Scope(Option<Arc<Collector>>);

/// This thread's scope.
pub fn scope() -> Scope {
    Scope(current())
}

impl Scope {
    /// The scope of a request's collector.
    pub(crate) fn of(collector: Arc<Collector>) -> Scope {
        Scope(Some(collector))
    }

    /// Run `f` with this scope's collector installed on the current thread.
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<Arc<Collector>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                CURRENT.with(|c| *c.borrow_mut() = previous);
            }
        }
        let previous = CURRENT.with(|c| c.replace(self.0.clone()));
        let _restore = Restore(previous);
        f()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_install_and_restore_the_collector() {
        assert!(current().is_none());
        let c = Arc::new(Collector::default());
        let scope = Scope(Some(c.clone()));
        scope.enter(|| {
            assert!(current().is_some());
            assert!(!pending());
            let _ = c.want(Want::Head("k".into()));
            assert!(pending());
            // Carried into another thread.
            let inner = super::scope();
            std::thread::scope(|s| {
                s.spawn(|| {
                    assert!(current().is_none());
                    inner.enter(|| assert!(pending()));
                    assert!(current().is_none());
                });
            });
        });
        assert!(current().is_none());
        assert_eq!(c.take_wants().len(), 1);
    }
}
