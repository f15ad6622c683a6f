//! A histogram of durations over fixed buckets, recorded with relaxed atomic adds.
//!
//! Each observation adds 1 to the first bucket whose upper bound it does not exceed (or to the
//! overflow bucket), and its nanoseconds to the sum. A scrape reads the buckets one by one; the
//! count it reports is the sum of the buckets it read, so `_count` always equals the `+Inf`
//! bucket even while requests are being recorded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The most buckets a histogram has, the overflow (`+Inf`) bucket included.
pub(super) const MAX_BUCKETS: usize = 16;

/// Durations by bucket.
pub(crate) struct Histogram {
    /// Upper bounds in nanoseconds, ascending; at most `MAX_BUCKETS - 1`.
    bounds_ns: &'static [u64],
    /// Observations per bucket (not cumulative); index `bounds_ns.len()` is the overflow.
    buckets: [AtomicU64; MAX_BUCKETS],
    sum_ns: AtomicU64,
}

/// What a scrape reads: (upper bound in seconds, observations in that bucket alone) with the
/// `+Inf` bucket last, the sum in seconds and the count.
pub(crate) struct Read {
    pub buckets: Vec<(f64, u64)>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl Histogram {
    pub(super) const fn new(bounds_ns: &'static [u64]) -> Histogram {
        assert!(bounds_ns.len() < MAX_BUCKETS);
        Histogram {
            bounds_ns,
            buckets: [const { AtomicU64::new(0) }; MAX_BUCKETS],
            sum_ns: AtomicU64::new(0),
        }
    }

    /// Record one duration.
    pub(crate) fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = self
            .bounds_ns
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(self.bounds_ns.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The current values.
    pub(crate) fn read(&self) -> Read {
        let mut buckets = Vec::with_capacity(self.bounds_ns.len() + 1);
        let mut count = 0;
        for (i, bucket) in self.buckets[..=self.bounds_ns.len()].iter().enumerate() {
            let n = bucket.load(Ordering::Relaxed);
            count += n;
            let bound = self
                .bounds_ns
                .get(i)
                .map_or(f64::INFINITY, |&b| b as f64 / 1e9);
            buckets.push((bound, n));
        }
        Read {
            buckets,
            sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        static BOUNDS: &[u64] = &[1_000, 10_000];
        let h = Histogram::new(BOUNDS);
        h.observe(Duration::from_nanos(1_000));
        h.observe(Duration::from_nanos(1_001));
        h.observe(Duration::from_nanos(10_000));
        h.observe(Duration::from_secs(1));
        let r = h.read();
        assert_eq!(
            r.buckets,
            vec![(0.000_001, 1), (0.000_01, 2), (f64::INFINITY, 1)]
        );
        assert_eq!(r.count, 4);
        assert!((r.sum_seconds - 1.000_012_001).abs() < 1e-12);
    }
}
