//! The heavy pool: a dedicated rayon thread pool whose threads run at a lower CPU priority
//! than the runtime's workers (`IIPSRV_HEAVY_NICE` steps of niceness above the process's,
//! [`DEFAULT_NICE`] by default).
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

/// The niceness the pool's threads add to the process's by default: the kernel then gives a
/// busy worker about nine times the CPU share of a busy pool thread (weights 1024 and 110).
/// The same holds against every other process on the machine: on a machine shared with other
/// busy services, a smaller value lets exports keep a fairer share.
pub const DEFAULT_NICE: i32 = 10;

/// The highest niceness.
const MAX_NICE: i32 = 19;

/// Threads that run heavy work.
#[derive(Debug)]
pub struct Pool {
    /// `None` when the threads could not be started: rayon's global pool does the work.
    pool: Option<rayon::ThreadPool>,
}

/// The niceness of the calling thread (Linux: niceness is per thread).
fn thread_nice() -> i32 {
    // SAFETY: plain system calls on the calling thread.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::getpriority(libc::PRIO_PROCESS, tid)
    }
}

/// Set the calling thread's niceness; failure leaves it as it was.
fn set_thread_nice(nice: i32) {
    // SAFETY: plain system calls on the calling thread.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice);
    }
}

impl Pool {
    /// `threads` threads at `nice` steps of niceness above the thread that creates the pool
    /// (0: the same priority as the workers).
    pub fn new(threads: usize, nice: i32) -> Pool {
        let target = (thread_nice() + nice.max(0)).min(MAX_NICE);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("{THREAD_NAME}-{i}"))
            .start_handler(move |_| {
                if nice > 0 {
                    set_thread_nice(target)
                }
            })
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
        let base = thread_nice();
        let pool = Pool::new(1, DEFAULT_NICE);
        let nice = pool.run(thread_nice).await.unwrap();
        assert_eq!(nice, (base + DEFAULT_NICE).min(MAX_NICE));
    }

    #[tokio::test]
    async fn a_niceness_of_zero_keeps_the_priority_of_the_creator() {
        let base = thread_nice();
        let pool = Pool::new(1, 0);
        assert_eq!(pool.run(thread_nice).await.unwrap(), base);
    }

    #[tokio::test]
    async fn a_panic_comes_back_as_an_error() {
        let pool = Pool::new(1, DEFAULT_NICE);
        assert!(pool.run(|| panic!("boom")).await.is_err());
        assert_eq!(pool.run(|| 2 + 2).await.unwrap(), 4);
    }

    #[tokio::test]
    async fn parallel_loops_inside_the_work_use_the_pool() {
        use rayon::prelude::*;
        let pool = Pool::new(2, DEFAULT_NICE);
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
