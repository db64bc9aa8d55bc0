//! The admin listener (docs/router.md): `/health`, `/targets`, `/metrics`. No S3
//! credentials: it is on loopback by default, where the container health check and an
//! operator's `curl` inside the task reach it, and nothing outside the task does.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::metrics::Metrics;
use super::pool::{Pool, TargetView};
use super::stats::StatsSnapshot;

#[derive(Debug, Clone)]
pub struct AppState {
    pub pool: Arc<Pool>,
    pub metrics: Arc<Metrics>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/targets", get(targets))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            problem(
                StatusCode::NOT_FOUND,
                "no such endpoint: /health, /targets, /metrics (see docs/router.md)",
            )
        })
        .with_state(state)
}

/// A JSON error body: `{"error": "..."}`.
fn problem(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, axum::Json(json!({ "error": message.to_string() }))).into_response()
}

async fn health(State(state): State<AppState>) -> Response {
    let targets = state.pool.targets();
    let up = targets.iter().filter(|t| t.client().is_some()).count();
    let status = if up > 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(json!({ "status": if up > 0 { "ok" } else { "unavailable" }, "up": up, "targets": targets.len() })))
        .into_response()
}

/// One target in `/targets`: where it is, its state, and what it has carried.
#[derive(serde::Serialize)]
struct TargetReport {
    #[serde(flatten)]
    view: TargetView,
    #[serde(flatten)]
    stats: StatsSnapshot,
    latency_ms: Latency,
}

#[derive(serde::Serialize)]
struct Latency {
    mean: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
}

async fn targets(State(state): State<AppState>) -> Response {
    let list: Vec<TargetReport> = state
        .pool
        .targets()
        .iter()
        .map(|t| {
            let stats = t.stats.snapshot();
            TargetReport {
                view: t.view(),
                latency_ms: Latency {
                    mean: stats.mean_ms(),
                    p50: stats.quantile_ms(0.5),
                    p99: stats.quantile_ms(0.99),
                },
                stats,
            }
        })
        .collect();
    let crossing = list.iter().filter(|t| t.view.cross_az == Some(true));
    let (bytes, operations) = crossing.fold((0, 0), |(b, o), t| {
        (
            b + t.stats.bytes_read + t.stats.bytes_written,
            o + t.stats.operations,
        )
    });
    let routing = state.pool.routing();
    axum::Json(json!({
        "zone": routing.zone,
        "routing": routing.mode,
        "cross_az": { "bytes": bytes, "operations": operations },
        "targets": list,
    }))
    .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.render() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}
