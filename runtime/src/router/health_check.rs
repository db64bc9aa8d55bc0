//! `efs-router health --url URL`: the container health check. The image holds only our
//! binary (no curl), so the binary checks itself: GET the URL, succeed on 200. The same
//! small GET reads the ECS task metadata (`router::zone`).

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;

/// GETs `url` (plain HTTP) and returns the status, within `timeout`.
pub async fn check(url: &str, timeout: Duration) -> Result<u16, String> {
    get(url, timeout).await.map(|(status, _)| status)
}

/// GETs `url` (plain HTTP) and returns the status and body, within `timeout`.
pub async fn get(url: &str, timeout: Duration) -> Result<(u16, bytes::Bytes), String> {
    tokio::time::timeout(timeout, fetch(url))
        .await
        .map_err(|_| format!("{url}: no answer within {timeout:?}"))?
}

async fn fetch(url: &str) -> Result<(u16, bytes::Bytes), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{url}: only http:// URLs are supported"));
    }
    let host = uri.host().ok_or_else(|| format!("{url}: no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    tokio::spawn(connection);
    let request = Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(hyper::header::HOST, host)
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .to_bytes();
    Ok((status, body))
}
