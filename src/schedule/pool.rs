//! The heavy pool: a dedicated rayon thread pool whose threads run at a lower CPU priority
//! (`nice` [`NICE`]) than the runtime's workers.
//!
//! The workers answer light requests (tiles, metadata, cache hits) inline; the pool's threads
//! take whatever CPU the workers leave idle, so a light request never waits behind a heavy one
//! for a core. The work's own parallel loops (stitching tiles, resizing) run on the same pool
//! (rayon uses the pool of the thread it is called from): one heavy request alone spreads over
//! every pool thread, several share them.

use std::panic::AssertUnwindSafe;

use tokio::sync::oneshot;

/// The name of the pool's threads (with their index).
pub const THREAD_NAME: &str = "iipsrv-heavy";

/// The niceness of the pool's threads: with the workers at 0, the kernel gives a busy worker
/// about nine times the CPU share of a busy pool thread (weights 1024 and 110).
pub const NICE: i32 = 10;

/// Threads that run heavy work.
#[derive(Debug)]
pub struct Pool {
    /// `None` when the threads could not be started: rayon's global pool does the work.
    pool: Option<rayon::ThreadPool>,
}

/// Lower the calling thread's priority (Linux: niceness is per thread).
fn lower_priority() {
    // SAFETY: plain system calls on the calling thread; failure leaves the priority as it was.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, NICE);
    }
}

impl Pool {
    pub fn new(threads: usize) -> Pool {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("{THREAD_NAME}-{i}"))
            .start_handler(|_| lower_priority())
            .build();
        match pool {
            Ok(p) => Pool { pool: Some(p) },
            Err(e) => {
                tracing::error!("Cannot start the heavy-work threads ({e}): using rayon's pool");
                Pool { pool: None }
            }
        }
    }

    /// Run `f` on a pool thread and wait for it without holding the caller's thread. A panic
    /// in `f` is returned as the error.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> std::thread::Result<R> {
        let (tx, rx) = oneshot::channel();
        let job = move || {
            let _ = tx.send(std::panic::catch_unwind(AssertUnwindSafe(f)));
        };
        match &self.pool {
            Some(p) => p.spawn(job),
            None => rayon::spawn(job),
        }
        rx.await
            .unwrap_or_else(|_| Err(Box::new("the heavy-work thread ended")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pool_threads_run_at_a_lower_priority() {
        let pool = Pool::new(1);
        let nice = pool
            .run(|| {
                // SAFETY: reads the calling thread's priority.
                unsafe {
                    *libc::__errno_location() = 0;
                    let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                    libc::getpriority(libc::PRIO_PROCESS, tid)
                }
            })
            .await
            .unwrap();
        // Already at NICE or above when the test runs under a higher niceness.
        assert!(nice >= NICE, "{nice}");
    }

    #[tokio::test]
    async fn a_panic_comes_back_as_an_error() {
        let pool = Pool::new(1);
        assert!(pool.run(|| panic!("boom")).await.is_err());
        assert_eq!(pool.run(|| 2 + 2).await.unwrap(), 4);
    }

    #[tokio::test]
    async fn parallel_loops_inside_the_work_use_the_pool() {
        use rayon::prelude::*;
        let pool = Pool::new(2);
        let names: Vec<String> = pool
            .run(|| {
                (0..64)
                    .into_par_iter()
                    .map(|_| std::thread::current().name().unwrap_or("").to_string())
                    .collect()
            })
            .await
            .unwrap();
        assert!(
            names.iter().all(|n| n.starts_with(THREAD_NAME)),
            "{names:?}"
        );
    }
}
