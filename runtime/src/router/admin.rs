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
use super::transfer::Budget;

/// Budget held by streams that do not move for longer than this fails the health check:
/// the write and body limits (`router::deadlines`) free a stalled client's share in
/// 30 s, so a minute of it means the task cannot serve and should be replaced.
pub const STARVED_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct AppState {
    pub pool: Arc<Pool>,
    pub metrics: Arc<Metrics>,
    pub budget: Budget,
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
    let starved = state.budget.starved_for().filter(|d| *d >= STARVED_LIMIT);
    let (status, word) = match (up, starved) {
        (0, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        (_, Some(_)) => (StatusCode::SERVICE_UNAVAILABLE, "starved"),
        _ => (StatusCode::OK, "ok"),
    };
    let mut body = json!({ "status": word, "up": up, "targets": targets.len() });
    if let Some(d) = starved {
        body["error"] = json!(format!(
            "no transfer has had buffer budget for {} s: every byte of it is held by streams that do not move",
            d.as_secs()
        ));
    }
    (status, axum::Json(body)).into_response()
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
