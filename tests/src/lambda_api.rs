//! A local stand-in for the Lambda Runtime API (the HTTP interface Lambda offers a
//! custom runtime): hands out queued events on `/next`, records what the function posts
//! back. Enough to run a `provided.al2023` bootstrap on this machine exactly as Lambda
//! drives it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Notify;

use crate::HarnessError;

/// What the function posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// `response`, `error` or `init-error`.
    pub kind: &'static str,
    pub request_id: Option<String>,
    pub error_type: Option<String>,
    pub body: String,
}

#[derive(Default)]
struct Shared {
    events: Mutex<VecDeque<(String, String)>>,
    posted: Mutex<Vec<Posted>>,
    changed: Notify,
}

#[derive(Debug)]
pub struct FakeRuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FakeRuntimeApi {
    /// Serves on a free loopback port until dropped.
    pub async fn start() -> Result<Self, HarnessError> {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| HarnessError::Io {
                what: "binding the fake Runtime API".into(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| HarnessError::Io {
            what: "reading the fake Runtime API's address".into(),
            source,
        })?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeRuntimeApi {
            addr,
            shared,
            server,
        })
    }

    /// `host:port`, as Lambda sets `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Queues an invocation.
    pub fn push_event(&self, request_id: &str, payload: &serde_json::Value) {
        lock(&self.shared.events).push_back((request_id.to_string(), payload.to_string()));
        self.shared.changed.notify_waiters();
    }

    /// Waits for the next post, up to `timeout`.
    pub async fn wait_post(&self, timeout: Duration) -> Option<Posted> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            if let Some(p) = {
                let mut posted = lock(&self.shared.posted);
                (!posted.is_empty()).then(|| posted.remove(0))
            } {
                return Some(p);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

impl Drop for FakeRuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    // Like Lambda, `/next` blocks until there is an event.
    loop {
        let notified = shared.changed.notified();
        if let Some((id, payload)) = lock(&shared.events).pop_front() {
            let deadline = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                + Duration::from_secs(120);
            let mut headers = HeaderMap::new();
            let mut set = |name: &'static str, value: String| {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.insert(name, v);
                }
            };
            set("lambda-runtime-aws-request-id", id);
            set(
                "lambda-runtime-deadline-ms",
                deadline.as_millis().to_string(),
            );
            set(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:ap-northeast-1:123456789012:function:efs-scaler".into(),
            );
            set(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000".into(),
            );
            set("content-type", "application/json".into());
            return (StatusCode::OK, headers, payload).into_response();
        }
        notified.await;
    }
}

fn record(shared: &Shared, posted: Posted) -> StatusCode {
    lock(&shared.posted).push(posted);
    shared.changed.notify_waiters();
    StatusCode::ACCEPTED
}

fn error_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    record(
        &shared,
        Posted {
            kind: "response",
            request_id: Some(id),
            error_type: None,
            body: String::from_utf8_lossy(&body).into_owned(),
        },
    )
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    record(
        &shared,
        Posted {
            kind: "error",
            request_id: Some(id),
            error_type: error_type(&headers),
            body: String::from_utf8_lossy(&body).into_owned(),
        },
    )
}

async fn init_error(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    record(
        &shared,
        Posted {
            kind: "init-error",
            request_id: None,
            error_type: error_type(&headers),
            body: String::from_utf8_lossy(&body).into_owned(),
        },
    )
}
