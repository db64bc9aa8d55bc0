//! `/metrics`: Prometheus / OpenMetrics text, encoded by `prometheus-client`.
//!
//! Request counters are ordinary registered metrics. Per-target figures are read at
//! scrape time from the pool (targets come and go with the published list, so they
//! cannot be registered once).

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use axum::http::{Method, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use super::pool::{Health, Pool};
use super::stats::BUCKETS_US;

type Labels = Vec<(String, String)>;

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    inflight: Gauge<i64, AtomicI64>,
}

/// Decrements the in-flight gauge when the request ends, however it ends.
#[derive(Debug)]
pub struct InFlight(Gauge<i64, AtomicI64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    pub fn new(pool: Arc<Pool>) -> Self {
        let mut registry = Registry::with_prefix("efs_router");
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method and status",
            requests.clone(),
        );
        let inflight = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being served",
            inflight.clone(),
        );
        registry.register_collector(Box::new(PoolCollector(pool)));
        Metrics {
            registry,
            requests,
            inflight,
        }
    }

    pub fn request_started(&self) -> InFlight {
        self.inflight.inc();
        InFlight(self.inflight.clone())
    }

    pub fn request_finished(&self, method: &Method, status: StatusCode) {
        self.requests
            .get_or_create(&vec![
                ("method".into(), method_label(method).into()),
                ("status".into(), status.as_u16().to_string()),
            ])
            .inc();
    }

    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

#[derive(Debug)]
struct PoolCollector(Arc<Pool>);

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let targets = self.0.targets();
        let labelled: Vec<(Labels, _, _)> = targets
            .iter()
            .map(|t| {
                let labels = vec![
                    ("target".to_string(), t.spec.address.clone()),
                    (
                        "availability_zone".to_string(),
                        t.spec.availability_zone.clone().unwrap_or_default(),
                    ),
                    (
                        "cross_az".to_string(),
                        t.cross_az
                            .map_or("unknown", |c| if c { "true" } else { "false" })
                            .to_string(),
                    ),
                ];
                (labels, t.health(), t.stats.snapshot())
            })
            .collect();

        let mut up = encoder.encode_descriptor(
            "target_up",
            "1 when the target is in service",
            None,
            MetricType::Gauge,
        )?;
        for (labels, health, _) in &labelled {
            ConstGauge::new(i64::from(*health == Health::Up)).encode(up.encode_family(labels)?)?;
        }
        type Field = fn(&super::stats::StatsSnapshot) -> u64;
        let counters: [(&str, &str, Field); 4] = [
            (
                "target_operations",
                "Backend calls made to the target",
                |s| s.operations,
            ),
            (
                "target_errors",
                "Backend calls that failed because of the target",
                |s| s.errors,
            ),
            ("target_read_bytes", "Bytes read from the target", |s| {
                s.bytes_read
            }),
            ("target_written_bytes", "Bytes written to the target", |s| {
                s.bytes_written
            }),
        ];
        for (name, help, field) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (labels, _, snapshot) in &labelled {
                ConstCounter::new(field(snapshot)).encode(family.encode_family(labels)?)?;
            }
        }
        // The cross-zone totals, so a dashboard needs no label arithmetic.
        let crossing: Vec<_> = targets
            .iter()
            .filter(|t| t.cross_az == Some(true))
            .map(|t| t.stats.snapshot())
            .collect();
        // Gauges: sums over the targets now in the list, which drop when one leaves.
        let cross = encoder.encode_descriptor(
            "cross_az_bytes",
            "Bytes read from or written to the listed targets in another availability zone",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(
            crossing
                .iter()
                .map(|s| s.bytes_read + s.bytes_written)
                .sum::<u64>(),
        )
        .encode(cross)?;
        let cross_ops = encoder.encode_descriptor(
            "cross_az_operations",
            "Backend calls to the listed targets in another availability zone",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(crossing.iter().map(|s| s.operations).sum::<u64>()).encode(cross_ops)?;
        let mut latency = encoder.encode_descriptor(
            "target_latency_seconds",
            "Backend call latency per target",
            None,
            MetricType::Histogram,
        )?;
        for (labels, _, s) in &labelled {
            let buckets: Vec<(f64, u64)> = BUCKETS_US
                .iter()
                .map(|&us| us as f64 / 1e6)
                .chain([f64::INFINITY])
                .zip(s.buckets.iter().copied())
                .collect();
            latency
                .encode_family(labels)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    s.latency_sum_us as f64 / 1e6,
                    s.operations,
                    &buckets,
                    None,
                )?;
        }
        Ok(())
    }
}

/// The method as a label, from a fixed set: a client inventing method names must not
/// grow the metric families (each label set lives as long as the process).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        let labels: std::collections::BTreeSet<&str> = (0..1000)
            .map(|i| method_label(&Method::from_bytes(format!("M{i}").as_bytes()).unwrap()))
            .collect();
        assert_eq!(labels.into_iter().collect::<Vec<_>>(), ["other"]);
        for m in [
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::POST,
            Method::DELETE,
        ] {
            assert_eq!(method_label(&m), m.as_str());
        }
    }
}
