//! Open connections, counted until their task ends, so that shutdown can wait until every
//! response has been written and flushed to its socket, not only computed.
//!
//! The accept loop ([`crate::server`]) takes a [`ConnectionGuard`] for each accepted connection
//! before its task is spawned, and the task holds it until it has written its last response,
//! flushed it and closed the socket. On SIGTERM the process waits for [`Connections::wait_closed`] (bounded by
//! `IIPSRV_SHUTDOWN_TIMEOUT`) before the runtime, and with it every task, is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;
use tokio::time::Instant;

/// The counter shared by the accept loops and the shutdown.
#[derive(Debug, Clone, Default)]
pub struct Connections {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    open: AtomicUsize,
    closed: Notify,
}

/// Counts one connection as open until dropped.
#[derive(Debug)]
pub(crate) struct ConnectionGuard {
    inner: Arc<Inner>,
}

impl Connections {
    pub fn new() -> Connections {
        Connections::default()
    }

    /// Count a connection as open until the guard is dropped.
    pub(crate) fn open(&self) -> ConnectionGuard {
        self.inner.open.fetch_add(1, Ordering::AcqRel);
        ConnectionGuard {
            inner: self.inner.clone(),
        }
    }

    /// Connections open now.
    pub fn count(&self) -> usize {
        self.inner.open.load(Ordering::Acquire)
    }

    /// Wait until no connection is open, or until `deadline`. Returns whether all closed.
    pub async fn wait_closed(&self, deadline: Instant) -> bool {
        loop {
            let closed = self.inner.closed.notified();
            if self.count() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, closed).await.is_err() {
                return self.count() == 0;
            }
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.inner.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.closed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn waits_for_the_last_guard() {
        let c = Connections::new();
        let (a, b) = (c.open(), c.open());
        assert_eq!(c.count(), 2);
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(!c.wait_closed(soon).await, "two still open");
        drop(a);
        let waiter = tokio::spawn({
            let c = c.clone();
            async move {
                c.wait_closed(Instant::now() + Duration::from_secs(60))
                    .await
            }
        });
        tokio::task::yield_now().await;
        drop(b);
        assert!(waiter.await.unwrap());
        assert_eq!(c.count(), 0);
    }
}
