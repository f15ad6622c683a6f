//! The memory budget: byte reservations and running slots, given out in FIFO order.
//!
//! Both are tokio semaphores, which are fair: a waiter at the head of the queue that needs more
//! permits than are free takes what is free and blocks everyone behind it, so a large request
//! is never overtaken by smaller ones (no starvation: a request waits at most for the work
//! admitted before it). Bytes are counted in [`UNIT`]s (a semaphore counts in `u32`).
//!
//! Order of acquisition: bytes, then a slot; both inside one deadline. Dropping the wait (the
//! client went away, or the deadline passed) gives back whatever was taken and leaves the
//! queue.
//!
//! On shutdown ([`Budget::close_at`]) the line keeps moving until the closing instant; then
//! every request still waiting, and every one that arrives later, is refused
//! ([`Refusal::ShuttingDown`]), so that it gets a complete answer before the process exits
//! instead of a connection cut at the shutdown deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

/// Bytes per semaphore permit.
pub const UNIT: u64 = 1024;

/// The largest budget, in units (what a semaphore can count in one `acquire_many`).
const MAX_UNITS: u64 = u32::MAX as u64;

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `queue_length` requests were already waiting.
    QueueFull,
    /// Not admitted within `queue_timeout`.
    Timeout,
    /// Not admitted before admission closed for shutdown.
    ShuttingDown,
}

/// Byte budget, running slots and the waiting line.
#[derive(Debug)]
pub struct Budget {
    /// `None`: no memory bound (slots still apply).
    memory: Option<Arc<Semaphore>>,
    capacity_units: u64,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    timeout: Duration,
    /// When admission closes (shutdown); `None` while serving normally.
    closing: watch::Sender<Option<Instant>>,
}

/// Admitted: bytes of the budget and (while the work runs) a slot. Dropping it gives both back.
#[derive(Debug)]
pub struct Reservation {
    memory: Option<OwnedSemaphorePermit>,
    slot: Option<OwnedSemaphorePermit>,
}

/// Counts a request as waiting until dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn units(bytes: u64) -> u64 {
    bytes.div_ceil(UNIT)
}

impl Budget {
    /// `bytes` of budget (0: unbounded), `slots` running at once, at most `max_waiting`
    /// waiting, each at most `timeout`.
    pub fn new(bytes: u64, slots: usize, max_waiting: usize, timeout: Duration) -> Budget {
        let capacity_units = units(bytes).min(MAX_UNITS);
        Budget {
            memory: (capacity_units > 0).then(|| Arc::new(Semaphore::new(capacity_units as usize))),
            capacity_units,
            slots: Arc::new(Semaphore::new(slots.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting,
            timeout,
            closing: watch::Sender::new(None),
        }
    }

    /// Close admission at `when` (shutdown): requests waiting then, and later ones, are
    /// refused with [`Refusal::ShuttingDown`]. Work already admitted is not affected.
    pub fn close_at(&self, when: Instant) {
        self.closing.send_replace(Some(when));
    }

    /// Whether admission has closed.
    fn closed(&self) -> bool {
        self.closing
            .borrow()
            .is_some_and(|when| when <= Instant::now())
    }

    /// Resolve when admission closes.
    async fn until_closed(&self) {
        let mut rx = self.closing.subscribe();
        loop {
            let when = *rx.borrow_and_update();
            match when {
                Some(when) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(when) => return,
                        // Moved (a second signal): wait for the new instant.
                        _ = rx.changed() => {}
                    }
                }
                // The sender lives as long as the budget, which outlives this wait.
                None => {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }

    /// The budget in bytes (`None`: unbounded).
    pub fn capacity_bytes(&self) -> Option<u64> {
        self.memory.as_ref().map(|_| self.capacity_units * UNIT)
    }

    /// Bytes not reserved now (`None`: unbounded).
    pub fn available_bytes(&self) -> Option<u64> {
        self.memory
            .as_ref()
            .map(|m| m.available_permits() as u64 * UNIT)
    }

    /// Requests waiting for admission now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// The longest wait for admission.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The units a request of `bytes` reserves: at least one, at most the whole budget (a
    /// request larger than the budget runs alone).
    fn units_for(&self, bytes: u64) -> u32 {
        units(bytes).clamp(1, self.capacity_units.max(1)) as u32
    }

    /// Reserve `bytes` and a slot: at once when nobody waits and both are free, otherwise in
    /// line (FIFO), for at most the timeout.
    pub async fn reserve(&self, bytes: u64) -> Result<Reservation, Refusal> {
        let n = self.units_for(bytes);
        if self.closed() {
            return Err(Refusal::ShuttingDown);
        }
        if let Some(r) = self.try_reserve(n) {
            return Ok(r);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::QueueFull);
        }
        let _waiting = Waiting(&self.waiting);
        tokio::select! {
            r = tokio::time::timeout(self.timeout, self.acquire(n)) => r.map_err(|_| Refusal::Timeout),
            _ = self.until_closed() => Err(Refusal::ShuttingDown),
        }
    }

    /// Both at once, or nothing (a semaphore with waiters has no free permits, so this never
    /// overtakes the line).
    fn try_reserve(&self, n: u32) -> Option<Reservation> {
        let memory = match &self.memory {
            Some(m) => Some(m.clone().try_acquire_many_owned(n).ok()?),
            None => None,
        };
        let slot = self.slots.clone().try_acquire_owned().ok()?;
        Some(Reservation {
            memory,
            slot: Some(slot),
        })
    }

    async fn acquire(&self, n: u32) -> Reservation {
        let memory = match &self.memory {
            // The semaphores are never closed.
            Some(m) => m.clone().acquire_many_owned(n).await.ok(),
            None => None,
        };
        let slot = self.slots.clone().acquire_owned().await.ok();
        Reservation { memory, slot }
    }
}

impl Reservation {
    /// A reservation of nothing.
    pub fn none() -> Reservation {
        Reservation {
            memory: None,
            slot: None,
        }
    }

    /// The bytes held.
    pub fn bytes(&self) -> u64 {
        self.memory
            .as_ref()
            .map_or(0, |m| m.num_permits() as u64 * UNIT)
    }

    /// The work is done: give back the slot and all bytes but `keep` (the output, held until
    /// it has been sent).
    pub fn keep_only(&mut self, keep: u64) {
        self.slot = None;
        if let Some(m) = &mut self.memory {
            let held = m.num_permits();
            let keep = (units(keep) as usize).min(held);
            if keep == 0 {
                self.memory = None;
            } else if keep < held {
                drop(m.split(held - keep));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    const MIB: u64 = 1 << 20;

    fn budget(bytes: u64, slots: usize, max_waiting: usize, timeout_ms: u64) -> Arc<Budget> {
        Arc::new(Budget::new(
            bytes,
            slots,
            max_waiting,
            Duration::from_millis(timeout_ms),
        ))
    }

    /// Wait (bounded) until `n` requests are in line.
    async fn until_waiting(b: &Budget, n: usize) {
        for _ in 0..1000 {
            if b.waiting() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("{} waiting, expected {n}", b.waiting());
    }

    #[tokio::test]
    async fn reservations_within_the_budget_are_immediate_and_released_on_drop() {
        let b = budget(10 * MIB, 4, 8, 10_000);
        let r1 = b.reserve(3 * MIB).await.unwrap();
        let r2 = b.reserve(3 * MIB + 1).await.unwrap();
        assert_eq!(r1.bytes(), 3 * MIB);
        assert_eq!(r2.bytes(), 3 * MIB + UNIT);
        assert_eq!(b.available_bytes(), Some(4 * MIB - UNIT));
        drop(r1);
        drop(r2);
        assert_eq!(b.available_bytes(), Some(10 * MIB));
    }

    #[tokio::test]
    async fn a_spent_budget_times_out_and_the_waiter_leaves_the_line() {
        let b = budget(MIB, 4, 8, 50);
        let held = b.reserve(MIB).await.unwrap();
        assert_eq!(b.reserve(1).await.unwrap_err(), Refusal::Timeout);
        assert_eq!(b.waiting(), 0);
        drop(held);
        // Nothing was kept by the refused waiter.
        assert_eq!(b.available_bytes(), Some(MIB));
        assert!(b.reserve(MIB).await.is_ok());
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let b = budget(MIB, 4, 1, 10_000);
        let held = b.reserve(MIB).await.unwrap();
        let waiter = tokio::spawn({
            let b = b.clone();
            async move { b.reserve(MIB).await.map(|r| r.bytes()) }
        });
        until_waiting(&b, 1).await;
        assert_eq!(b.reserve(1).await.unwrap_err(), Refusal::QueueFull);
        drop(held);
        assert_eq!(waiter.await.unwrap(), Ok(MIB));
    }

    #[tokio::test]
    async fn waiters_are_admitted_in_arrival_order_and_small_ones_do_not_overtake() {
        let b = budget(4 * MIB, 8, 16, 10_000);
        let held = b.reserve(3 * MIB).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // A large request first (it cannot fit until `held` goes), then small ones that would
        // fit in the free MiB right away: they must wait behind it.
        for (i, size) in [(0, 4 * MIB), (1, MIB / 2), (2, MIB / 2), (3, MIB)] {
            let (b2, order) = (b.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let r = b2.reserve(size).await.unwrap();
                order.lock().unwrap().push(i);
                // Hold the large one a moment so that the others queue behind it for real.
                if i == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                drop(r);
            }));
            until_waiting(&b, i + 1).await;
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
    }

    #[tokio::test]
    async fn a_request_larger_than_the_budget_runs_alone() {
        let b = budget(MIB, 4, 8, 10_000);
        let small = b.reserve(MIB / 4).await.unwrap();
        let big = tokio::spawn({
            let b = b.clone();
            async move { b.reserve(100 * MIB).await.map(|r| r.bytes()) }
        });
        until_waiting(&b, 1).await;
        drop(small);
        // It held the whole budget, nothing more.
        assert_eq!(big.await.unwrap(), Ok(MIB));
        assert_eq!(b.available_bytes(), Some(MIB));
    }

    #[tokio::test]
    async fn slots_bound_running_work_even_without_a_memory_bound() {
        let b = budget(0, 1, 8, 50);
        assert_eq!(b.capacity_bytes(), None);
        let r = b.reserve(u64::MAX).await.unwrap();
        assert_eq!(b.reserve(1).await.unwrap_err(), Refusal::Timeout);
        drop(r);
        assert!(b.reserve(1).await.is_ok());
    }

    #[tokio::test]
    async fn an_abandoned_wait_gives_its_place_back() {
        let b = budget(MIB, 4, 8, 10_000);
        let held = b.reserve(MIB).await.unwrap();
        let waiter = tokio::spawn({
            let b = b.clone();
            async move { b.reserve(MIB).await.map(|r| r.bytes()) }
        });
        until_waiting(&b, 1).await;
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(b.waiting(), 0);
        drop(held);
        assert_eq!(b.available_bytes(), Some(MIB));
        assert!(b.reserve(MIB).await.is_ok());
    }

    #[tokio::test]
    async fn done_work_keeps_only_its_output_and_frees_its_slot() {
        let b = budget(10 * MIB, 1, 8, 50);
        let mut r = b.reserve(8 * MIB).await.unwrap();
        r.keep_only(MIB);
        assert_eq!(r.bytes(), MIB);
        assert_eq!(b.available_bytes(), Some(9 * MIB));
        // The slot is free for the next job while the output is still held.
        let next = b.reserve(MIB).await.unwrap();
        drop(next);
        r.keep_only(0);
        assert_eq!(r.bytes(), 0);
        assert_eq!(b.available_bytes(), Some(10 * MIB));
    }

    /// A budget of 1 MiB held whole, and a second reservation of 1 MiB waiting for it.
    async fn held_and_waiting() -> (
        Arc<Budget>,
        Reservation,
        tokio::task::JoinHandle<Result<u64, Refusal>>,
    ) {
        let b = budget(MIB, 4, 8, 60_000);
        let held = b.reserve(MIB).await.unwrap();
        let waiter = tokio::spawn({
            let b = b.clone();
            async move { b.reserve(MIB).await.map(|r| r.bytes()) }
        });
        until_waiting(&b, 1).await;
        (b, held, waiter)
    }

    #[tokio::test]
    async fn closing_refuses_the_waiting_and_the_later_but_keeps_the_admitted() {
        let (b, held, waiter) = held_and_waiting().await;
        b.close_at(Instant::now() + Duration::from_millis(20));
        // Refused when admission closes, long before its own timeout.
        assert_eq!(waiter.await.unwrap(), Err(Refusal::ShuttingDown));
        assert_eq!(b.waiting(), 0);
        assert_eq!(b.reserve(1).await.unwrap_err(), Refusal::ShuttingDown);
        // The admitted reservation still holds its bytes until it is dropped.
        assert_eq!(held.bytes(), MIB);
        drop(held);
        assert_eq!(b.available_bytes(), Some(MIB));
    }

    #[tokio::test]
    async fn the_line_keeps_moving_until_admission_closes() {
        let (b, held, waiter) = held_and_waiting().await;
        b.close_at(Instant::now() + Duration::from_secs(60));
        drop(held);
        assert_eq!(waiter.await.unwrap(), Ok(MIB));
    }

    #[test]
    fn a_reservation_is_released_when_its_holder_panics() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let b = budget(MIB, 2, 8, 50);
        let r = rt.block_on(b.reserve(MIB)).unwrap();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _held = r;
            panic!("work failed");
        }));
        assert!(caught.is_err());
        assert_eq!(b.available_bytes(), Some(MIB));
    }
}
