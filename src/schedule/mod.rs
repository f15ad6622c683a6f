//! Scheduling of heavy work: a memory budget with FIFO admission ([`budget`]) in front of a
//! bounded pool of low-priority threads ([`pool`]).
//!
//! # States of a heavy request
//!
//! 1. **Classified** (by the protocols, after parsing and planning, before decoding): its
//!    estimated peak memory in bytes is known.
//! 2. **Admitted at once** when nobody is waiting, the bytes are free in the budget and a pool
//!    slot is free; otherwise **waiting** in one FIFO queue (an async wait: the connection's
//!    task is parked, no thread is held). The queue holds at most `queue_length` requests; a
//!    request that finds it full, or waits longer than `queue_timeout`, is **refused**
//!    ([`Refusal`]; the application answers 503 with `Retry-After`).
//! 3. **Running** on the pool, holding its [`Reservation`] (bytes and a slot).
//! 4. **Done**: the slot and all bytes but those of the output are given back; the output's
//!    bytes stay reserved until the response body has been written and dropped.
//!
//! A request estimated larger than the whole budget reserves the whole budget: it waits until
//! everything admitted before it has finished, then runs alone.
//!
//! The module knows nothing of requests or images (a leaf below every layer that uses it).

pub mod budget;
pub mod pool;

use std::panic::AssertUnwindSafe;
use std::time::Duration;

pub use budget::{Budget, Refusal, Reservation};
pub use pool::Pool;

/// What the scheduler is built from (the application maps the configuration to it).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Bytes of estimated memory that admitted heavy work may hold at once; 0: no bound.
    pub budget_bytes: u64,
    /// Threads of the heavy pool, and so heavy requests running at once.
    pub threads: usize,
    /// Steps of niceness the pool's threads add to the process's.
    pub nice: i32,
    /// Heavy requests that may wait for admission at once.
    pub queue_length: usize,
    /// The longest wait for admission.
    pub queue_timeout: Duration,
}

/// The budget and the pool together.
#[derive(Debug)]
pub struct Scheduler {
    budget: Budget,
    pool: Pool,
}

/// A heavy job that ran: its outcome (or its panic) and the reservation it held.
pub struct Done<R> {
    pub outcome: std::thread::Result<R>,
    pub reservation: Reservation,
}

impl Scheduler {
    pub fn new(settings: Settings) -> Scheduler {
        let threads = settings.threads.max(1);
        Scheduler {
            budget: Budget::new(
                settings.budget_bytes,
                threads,
                settings.queue_length,
                settings.queue_timeout,
            ),
            pool: Pool::new(threads, settings.nice),
        }
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// Run `work` on the pool once `bytes` are admitted. The future may be dropped at any
    /// point (the client went away): while waiting, the place in the queue is given up; once
    /// running, the work finishes and then gives its reservation back.
    pub async fn run<R: Send + 'static>(
        &self,
        bytes: u64,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Result<Done<R>, Refusal> {
        let reservation = self.budget.reserve(bytes).await?;
        let done = self
            .pool
            .run(move || {
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(work));
                Done {
                    outcome,
                    reservation,
                }
            })
            .await;
        // The pool catches the work's panic itself; a lost job (a pool thread gone) is a panic
        // without a reservation to return, which the caller answers like any panic.
        Ok(done.unwrap_or_else(|panic| Done {
            outcome: Err(panic),
            reservation: Reservation::none(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheduler(budget: u64, threads: usize) -> Scheduler {
        Scheduler::new(Settings {
            budget_bytes: budget,
            threads,
            nice: pool::DEFAULT_NICE,
            queue_length: 16,
            queue_timeout: Duration::from_secs(5),
        })
    }

    #[tokio::test]
    async fn work_runs_on_the_pool_and_gives_its_bytes_back() {
        let s = scheduler(1 << 20, 2);
        let done = s
            .run(4096, || std::thread::current().name().map(str::to_string))
            .await
            .unwrap();
        let name = done.outcome.unwrap().unwrap_or_default();
        assert!(name.starts_with(pool::THREAD_NAME), "{name}");
        assert_eq!(done.reservation.bytes(), 4096);
        assert_eq!(s.budget().available_bytes(), Some((1 << 20) - 4096));
        drop(done.reservation);
        assert_eq!(s.budget().available_bytes(), Some(1 << 20));
    }

    #[tokio::test]
    async fn a_panic_is_an_outcome_and_the_reservation_is_released() {
        let s = scheduler(1 << 20, 1);
        let done = s.run(8192, || -> u32 { panic!("boom") }).await.unwrap();
        assert!(done.outcome.is_err());
        drop(done.reservation);
        assert_eq!(s.budget().available_bytes(), Some(1 << 20));
        // The pool still works.
        let done = s.run(8192, || 7).await.unwrap();
        assert_eq!(done.outcome.unwrap(), 7);
    }

    #[tokio::test]
    async fn abandoned_running_work_releases_when_it_ends() {
        let s = std::sync::Arc::new(scheduler(1 << 20, 1));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (finish_tx, finish_rx) = std::sync::mpsc::channel::<()>();
        let task = {
            let s = s.clone();
            tokio::spawn(async move {
                s.run(1 << 19, move || {
                    started_tx.send(()).unwrap();
                    finish_rx.recv().ok();
                })
                .await
                .map(|_| ())
            })
        };
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
            .await
            .unwrap();
        task.abort();
        let _ = task.await;
        // Still running: its bytes are held.
        assert_eq!(s.budget().available_bytes(), Some(1 << 19));
        finish_tx.send(()).unwrap();
        for _ in 0..500 {
            if s.budget().available_bytes() == Some(1 << 20) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the reservation of abandoned work was not released");
    }
}
