//! The HTTP API (docs/router.md): files, directory listings, health, targets, metrics.
//!
//! Reads (GET, HEAD, listings) are idempotent: when the best target fails they are
//! retried on the next-ranked one. Writes and deletes go to the best target only and
//! answer 503 when it fails, because a retry elsewhere could apply them twice; the client
//! decides.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use super::backend::{BackendError, Client, EntryKind, Stat};
use super::metrics::Metrics;
use super::path::{FilePath, PathError, TEMP_PREFIX};
use super::pool::{Pool, Target, TargetView};
use super::stats::StatsSnapshot;
use super::transfer::{self, Budget, Source, WriteError};

#[derive(Debug, Clone)]
pub struct AppState {
    pub pool: Arc<Pool>,
    pub budget: Budget,
    pub metrics: Arc<Metrics>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/targets", get(targets))
        .route("/metrics", get(metrics))
        .route("/files/{*path}", axum::routing::any(files))
        .route("/dirs", get(dirs))
        .route("/dirs/", get(dirs))
        .route("/dirs/{*path}", get(dirs))
        .fallback(|| async {
            problem(
                StatusCode::NOT_FOUND,
                "no such endpoint; see docs/router.md",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// A JSON error body: `{"error": "..."}`.
fn problem(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, axum::Json(json!({ "error": message.to_string() }))).into_response()
}

async fn count_requests(
    State(state): State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method().clone();
    let _inflight = state.metrics.request_started();
    let response = next.run(request).await;
    state.metrics.request_finished(&method, response.status());
    response
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

/// The still-encoded path after the route prefix, from the raw URI (axum's extractor
/// would decode it first, and decoding twice is how `%252e%252e` tricks work).
fn raw_path<'a>(request_path: &'a str, prefix: &str) -> &'a str {
    request_path.strip_prefix(prefix).unwrap_or("")
}

fn bad_path(e: PathError) -> Response {
    problem(StatusCode::BAD_REQUEST, format!("invalid path: {e}"))
}

fn status_of(e: &BackendError) -> StatusCode {
    match e {
        BackendError::NotFound => StatusCode::NOT_FOUND,
        BackendError::Exists
        | BackendError::IsADirectory
        | BackendError::NotAFile
        | BackendError::NotADirectory
        | BackendError::NotEmpty => StatusCode::CONFLICT,
        BackendError::PermissionDenied => StatusCode::FORBIDDEN,
        BackendError::NoSpace => StatusCode::INSUFFICIENT_STORAGE,
        BackendError::StaleCursor => StatusCode::GONE,
        BackendError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        BackendError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        BackendError::Failed(_) => StatusCode::BAD_GATEWAY,
    }
}

fn backend_problem(path: &FilePath, e: &BackendError) -> Response {
    let mut response = problem(status_of(e), format!("{path}: {e}"));
    if e.is_target_failure() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn no_target() -> Response {
    let mut response = problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "no mount target is available",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

/// Runs an idempotent operation on the best target, then the next ones while targets
/// fail. Returns the target that answered.
async fn with_retries<T, F, Fut>(
    state: &AppState,
    path: &FilePath,
    op: F,
) -> Result<(Arc<Target>, Arc<Client>, T), Response>
where
    F: Fn(Arc<Client>) -> Fut,
    Fut: Future<Output = Result<T, BackendError>>,
{
    let ranked = state.pool.ranked(path.as_str());
    if ranked.is_empty() {
        return Err(no_target());
    }
    let mut last = None;
    for (target, client) in ranked {
        match target.call(op(client.clone())).await {
            Ok(value) => return Ok((target, client, value)),
            Err(e) if e.is_target_failure() => {
                state.pool.report(&target, &client, &e);
                last = Some(e);
            }
            Err(e) => return Err(backend_problem(path, &e)),
        }
    }
    Err(match last {
        Some(e) => backend_problem(path, &e),
        None => no_target(),
    })
}

async fn files(State(state): State<AppState>, request: Request) -> Response {
    let path = match FilePath::file_from_url(raw_path(request.uri().path(), "/files/")) {
        Ok(p) => p,
        Err(e) => return bad_path(e),
    };
    match *request.method() {
        Method::GET | Method::HEAD => {
            get_file(
                &state,
                &path,
                request.method() == Method::HEAD,
                request.headers(),
            )
            .await
        }
        Method::PUT => put_file(&state, &path, request).await,
        Method::DELETE => delete_file(&state, &path).await,
        _ => {
            let mut r = problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "files support GET, HEAD, PUT and DELETE",
            );
            r.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, PUT, DELETE"),
            );
            r
        }
    }
}

async fn get_file(state: &AppState, path: &FilePath, head: bool, headers: &HeaderMap) -> Response {
    // One round trip: the open brings the stat (HEAD needs only the stat).
    let opened = with_retries(state, path, |client| async move {
        if head {
            let stat = client.stat(path).await?;
            if stat.kind == EntryKind::Dir {
                return Err(BackendError::IsADirectory);
            }
            return Ok((stat, None));
        }
        let (handle, stat) = client.open_read(path).await?;
        Ok((stat, Some(handle)))
    })
    .await;
    let (target, client, (stat, handle)) = match opened {
        Ok(v) => v,
        Err(r) => return r,
    };
    // Range applies to GET only (RFC 9110), and If-Range (an ETag or a date) keeps a
    // resumed download from mixing a replaced file's bytes with the old ones.
    let tag = etag(&stat);
    let date = httpdate::fmt_http_date(modified(&stat));
    let unchanged = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.to_str().is_ok_and(|v| v == tag || v == date));
    let requested = if head || !unchanged {
        None
    } else {
        headers.get(header::RANGE)
    };
    let range = match parse_range(requested, stat.size) {
        Ok(r) => r,
        Err(()) => {
            if let Some(h) = &handle {
                client.close(h).await;
            }
            let mut r = problem(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("{path} has {} bytes", stat.size),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", stat.size)) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let (start, end) = range.unwrap_or((0, stat.size));
    let mut builder = Response::builder()
        .status(if range.is_some() {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        })
        .header(header::CONTENT_LENGTH, end - start)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ETAG, etag(&stat))
        .header(
            header::LAST_MODIFIED,
            httpdate::fmt_http_date(modified(&stat)),
        )
        .header("x-efs-router-target", target.spec.address.as_str());
    if range.is_some() {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{}", end.saturating_sub(1), stat.size),
        );
    }
    let body = match handle {
        Some(handle) if start < end => Body::from_stream(transfer::read_stream(
            state.pool.clone(),
            state.budget.clone(),
            path.clone(),
            stat,
            Source {
                target,
                client,
                handle: Arc::new(handle),
            },
            start,
            end,
        )),
        Some(handle) => {
            client.close(&handle).await;
            Body::empty()
        }
        None => Body::empty(),
    };
    builder
        .body(body)
        .unwrap_or_else(|e| problem(StatusCode::INTERNAL_SERVER_ERROR, e))
}

fn etag(stat: &Stat) -> String {
    format!(
        "\"{:x}-{:x}-{:x}.{:x}\"",
        stat.file_id, stat.size, stat.modified.0, stat.modified.1
    )
}

/// The last instant an HTTP date can name (9999-12-31T23:59:59Z); httpdate panics past it
/// and a file's mtime is whatever its writer set.
const LAST_HTTP_DATE: u64 = 253_402_300_799;

fn modified(stat: &Stat) -> SystemTime {
    SystemTime::UNIX_EPOCH
        + std::time::Duration::new(
            stat.modified.0.min(LAST_HTTP_DATE),
            stat.modified.1.min(999_999_999),
        )
}

/// One `bytes=` range, as `[start, end)`. `Ok(None)`: serve the whole file (no header,
/// or one we do not honour, such as several ranges: RFC 9110 lets a server ignore
/// Range). `Err`: the range cannot be satisfied (416).
fn parse_range(value: Option<&HeaderValue>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        // The last N bytes.
        let Ok(n) = last.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || size == 0 {
            return Err(());
        }
        (size - n.min(size), size)
    } else {
        let Ok(start) = first.parse::<u64>() else {
            return Ok(None);
        };
        let end = if last.is_empty() {
            size
        } else {
            match last.parse::<u64>() {
                Ok(l) if l >= start => l.saturating_add(1).min(size),
                _ => return Ok(None),
            }
        };
        if start >= size {
            return Err(());
        }
        (start, end)
    };
    Ok(Some(range))
}

async fn put_file(state: &AppState, path: &FilePath, request: Request) -> Response {
    let Some((target, client)) = state.pool.ranked(path.as_str()).into_iter().next() else {
        return no_target();
    };
    let content_length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let stream = request.into_body().into_data_stream();
    // Its own task: hyper drops this handler when the client disconnects, and the upload
    // must still remove its temporary file and close its NFS open.
    let upload = {
        let (budget, target, client, path) = (
            state.budget.clone(),
            target.clone(),
            client.clone(),
            path.clone(),
        );
        tokio::spawn(async move {
            transfer::write_file(&budget, &target, &client, &path, content_length, stream).await
        })
    };
    let result = match upload.await {
        Ok(result) => result,
        Err(e) => Err(WriteError::Body(format!("the upload task failed: {e}"))),
    };
    match result {
        Ok(size) => (
            StatusCode::CREATED,
            [("x-efs-router-target", target.spec.address.clone())],
            axum::Json(json!({ "path": path.to_string(), "size": size })),
        )
            .into_response(),
        Err(WriteError::Backend(e)) => {
            state.pool.report(&target, &client, &e);
            backend_problem(path, &e)
        }
        Err(e @ WriteError::Body(_)) => problem(StatusCode::BAD_REQUEST, format!("{path}: {e}")),
    }
}

async fn delete_file(state: &AppState, path: &FilePath) -> Response {
    let Some((target, client)) = state.pool.ranked(path.as_str()).into_iter().next() else {
        return no_target();
    };
    let result = async {
        if target.call(client.stat(path)).await?.kind == EntryKind::Dir {
            return Err(BackendError::IsADirectory);
        }
        target.call(client.remove(path)).await
    }
    .await;
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            state.pool.report(&target, &client, &e);
            backend_problem(path, &e)
        }
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    cursor: Option<String>,
    limit: Option<usize>,
}

/// Entries per page when the client does not say, and the most it may ask for.
const DEFAULT_PAGE: usize = 1000;
const MAX_PAGE: usize = 10_000;

async fn dirs(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
    request: Request,
) -> Response {
    let raw = raw_path(request.uri().path(), "/dirs");
    let path = match FilePath::from_url(raw) {
        Ok(p) => p,
        Err(e) => return bad_path(e),
    };
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return problem(
            StatusCode::BAD_REQUEST,
            format!("limit must be 1 to {MAX_PAGE}"),
        );
    }
    let cursor = query.cursor.as_deref();
    // A directory's pages route by the directory's path, so they come from one target.
    let dir = &path;
    match with_retries(&state, dir, |client| async move {
        client.list(dir, cursor, limit).await
    })
    .await
    {
        Ok((target, _, page)) => {
            let entries: Vec<_> = page
                .entries
                .into_iter()
                .filter(|e| !e.name.starts_with(TEMP_PREFIX))
                .collect();
            (
                [("x-efs-router-target", target.spec.address.clone())],
                axum::Json(json!({ "path": path.to_string(), "entries": entries, "next_cursor": page.next })),
            )
                .into_response()
        }
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
        parse_range(Some(&HeaderValue::from_str(v).unwrap()), size)
    }

    #[test]
    fn dates_past_year_9999_do_not_panic() {
        let stat = Stat {
            kind: EntryKind::File,
            size: 1,
            modified: (300_000_000_000, 5),
            file_id: 1,
        };
        assert_eq!(
            httpdate::fmt_http_date(modified(&stat)),
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), Ok(None));
        assert_eq!(range("bytes=0-4", 10), Ok(Some((0, 5))));
        assert_eq!(range("bytes=5-", 10), Ok(Some((5, 10))));
        assert_eq!(range("bytes=-3", 10), Ok(Some((7, 10))));
        assert_eq!(range("bytes=-30", 10), Ok(Some((0, 10))));
        assert_eq!(range("bytes=8-100", 10), Ok(Some((8, 10))));
        assert_eq!(range("bytes=10-", 10), Err(()));
        assert_eq!(range("bytes=-0", 10), Err(()));
        assert_eq!(range("bytes=0-", 0), Err(()));
        // Ignored, whole file served.
        assert_eq!(range("bytes=0-1,3-4", 10), Ok(None));
        assert_eq!(range("bytes=5-2", 10), Ok(None));
        assert_eq!(range("items=0-1", 10), Ok(None));
        assert_eq!(range("bytes=x-", 10), Ok(None));
    }
}
