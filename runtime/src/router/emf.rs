//! CloudWatch metrics without an agent: every `--metrics-interval` seconds the router
//! prints CloudWatch embedded-metric-format (EMF) lines on stdout, which the task's
//! `awslogs` driver sends to CloudWatch Logs, where they become metrics.
//!
//! EMF gives each dimension one value per line, so one interval is one line for the
//! router as a whole (`FileSystemId`: healthy targets, operations, errors, cross-zone
//! bytes) and one per target (`FileSystemId`, `MountTarget`: operations, errors, bytes,
//! p99 latency), all with the same timestamp. Values are the interval's, not totals.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::pool::{Health, Pool};
use super::stats::StatsSnapshot;
use crate::emf;

/// Per-target counters as last reported, to print differences.
#[derive(Debug, Default)]
pub struct Emitter {
    last: HashMap<String, StatsSnapshot>,
}

fn delta(now: &StatsSnapshot, before: Option<&StatsSnapshot>) -> StatsSnapshot {
    let Some(b) = before else {
        return now.clone();
    };
    StatsSnapshot {
        operations: now.operations.saturating_sub(b.operations),
        errors: now.errors.saturating_sub(b.errors),
        bytes_read: now.bytes_read.saturating_sub(b.bytes_read),
        bytes_written: now.bytes_written.saturating_sub(b.bytes_written),
        latency_sum_us: now.latency_sum_us.saturating_sub(b.latency_sum_us),
        buckets: now
            .buckets
            .iter()
            .zip(b.buckets.iter().chain(std::iter::repeat(&0)))
            .map(|(n, b)| n.saturating_sub(*b))
            .collect(),
    }
}

impl Emitter {
    /// The lines for the interval ending `now`.
    pub fn lines(&mut self, pool: &Pool, file_system: &str, now: SystemTime) -> Vec<String> {
        let targets = pool.targets();
        let mut lines = Vec::with_capacity(targets.len() + 1);
        let (mut operations, mut errors, mut cross_bytes, mut healthy) = (0u64, 0u64, 0u64, 0u64);
        let mut seen = HashMap::with_capacity(targets.len());
        for t in &targets {
            let snapshot = t.stats.snapshot();
            let d = delta(&snapshot, self.last.get(&t.spec.key));
            seen.insert(t.spec.key.clone(), snapshot);
            healthy += u64::from(t.health() == Health::Up);
            operations += d.operations;
            errors += d.errors;
            if t.cross_az == Some(true) {
                cross_bytes += d.bytes_read + d.bytes_written;
            }
            let fields = json!({
                "FileSystemId": file_system,
                "MountTarget": t.spec.mount_target_id.as_deref().unwrap_or(&t.spec.address),
                "AvailabilityZone": t.spec.availability_zone,
                "CrossAz": t.cross_az,
                "TargetOperations": d.operations,
                "TargetErrors": d.errors,
                "TargetBytes": d.bytes_read + d.bytes_written,
                // No calls, no latency: null leaves the metric out of the line.
                "TargetLatencyP99": d.quantile_ms(0.99),
            });
            lines.push(emf::line(
                now,
                &["FileSystemId", "MountTarget"],
                &[
                    ("TargetOperations", "Count"),
                    ("TargetErrors", "Count"),
                    ("TargetBytes", "Bytes"),
                    ("TargetLatencyP99", "Milliseconds"),
                ],
                fields,
            ));
        }
        self.last = seen;
        let router = json!({
            "FileSystemId": file_system,
            "Zone": pool.routing().zone,
            "HealthyTargets": healthy,
            "RouterOperations": operations,
            "RouterErrors": errors,
            "CrossAzBytes": cross_bytes,
        });
        lines.insert(
            0,
            emf::line(
                now,
                &["FileSystemId"],
                &[
                    ("HealthyTargets", "Count"),
                    ("RouterOperations", "Count"),
                    ("RouterErrors", "Count"),
                    ("CrossAzBytes", "Bytes"),
                ],
                router,
            ),
        );
        lines
    }
}

/// Prints the lines every `interval` until the process ends.
pub fn spawn(pool: Arc<Pool>, file_system: String, interval: Duration) {
    tokio::spawn(async move {
        let mut emitter = Emitter::default();
        let mut tick = tokio::time::interval(interval);
        // The first tick is immediate: start the counters there, report from the second.
        tick.tick().await;
        emitter.lines(&pool, &file_system, SystemTime::now());
        loop {
            tick.tick().await;
            let lines = emitter.lines(&pool, &file_system, SystemTime::now());
            // One write per line: each must reach the log driver whole.
            for line in lines {
                println!("{line}");
            }
        }
    });
}

#[cfg(test)]
mod tests;
