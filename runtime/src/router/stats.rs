//! Per-target counters: operations, errors, bytes, and a latency histogram. Lock-free
//! (atomics), because every backend call updates them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Histogram bucket upper bounds, in microseconds: from EFS's ~250 µs reads to the
/// operation timeout.
pub const BUCKETS_US: [u64; 14] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 10_000_000,
];

#[derive(Debug, Default)]
pub struct TargetStats {
    operations: AtomicU64,
    errors: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    latency_sum_us: AtomicU64,
    /// Non-cumulative counts per bucket; the last slot is +Inf.
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
}

/// A consistent-enough copy for reporting.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    pub operations: u64,
    pub errors: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    #[serde(skip)]
    pub latency_sum_us: u64,
    /// Counts per bucket of [`BUCKETS_US`], then above the last bound.
    #[serde(skip)]
    pub buckets: Vec<u64>,
}

impl TargetStats {
    pub fn record(&self, elapsed: Duration, failed: bool) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.operations.fetch_add(1, Relaxed);
        if failed {
            self.errors.fetch_add(1, Relaxed);
        }
        self.latency_sum_us.fetch_add(us, Relaxed);
        let slot = BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(BUCKETS_US.len());
        self.buckets[slot].fetch_add(1, Relaxed);
    }

    pub fn add_read(&self, n: usize) {
        self.bytes_read.fetch_add(n as u64, Relaxed);
    }

    pub fn add_written(&self, n: usize) {
        self.bytes_written.fetch_add(n as u64, Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            operations: self.operations.load(Relaxed),
            errors: self.errors.load(Relaxed),
            bytes_read: self.bytes_read.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            latency_sum_us: self.latency_sum_us.load(Relaxed),
            buckets: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
        }
    }
}

impl StatsSnapshot {
    /// The bucket bound at or below which `q` of the operations finished (an upper
    /// estimate, as Prometheus' `histogram_quantile` gives), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        let slot = self.buckets.iter().position(|&c| {
            seen += c;
            seen >= rank
        })?;
        let bound = BUCKETS_US
            .get(slot)
            .copied()
            .unwrap_or(BUCKETS_US[BUCKETS_US.len() - 1]);
        Some(bound as f64 / 1000.0)
    }

    pub fn mean_ms(&self) -> Option<f64> {
        let total: u64 = self.buckets.iter().sum();
        (total > 0).then(|| self.latency_sum_us as f64 / total as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_buckets() {
        let s = TargetStats::default();
        assert_eq!(s.snapshot().quantile_ms(0.5), None);
        for _ in 0..98 {
            s.record(Duration::from_micros(300), false);
        }
        s.record(Duration::from_millis(40), true);
        s.record(Duration::from_secs(60), true);
        let snap = s.snapshot();
        assert_eq!((snap.operations, snap.errors), (100, 2));
        assert_eq!(snap.quantile_ms(0.5), Some(0.5));
        assert_eq!(snap.quantile_ms(0.99), Some(50.0));
        assert_eq!(snap.quantile_ms(1.0), Some(10_000.0));
        assert_eq!(snap.buckets.iter().sum::<u64>(), 100);
    }
}
