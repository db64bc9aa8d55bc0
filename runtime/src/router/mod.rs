//! The Fargate mount-and-route entrypoint (`efs-router serve`): connects to every mount
//! target, routes each path to one of them by a stable hash, and serves files over HTTP
//! to the application in the same task (docs/router.md).
//!
//! - `config`: flags and environment; `sources`: where the target list comes from, and
//!   the watch that follows it;
//! - `backend`: one client per target (nfs, kernel, dir); `pool`: their health and
//!   reconnection; `rendezvous`: which target serves a path;
//! - `path`: request paths, normalised and confined; `transfer`: streaming bodies;
//!   `api`: the HTTP endpoints; `stats` and `metrics`: what `/targets` and `/metrics` show;
//! - `alloc`: the allocator policy that keeps transfer buffers warm.

pub mod alloc;
pub mod api;
pub mod backend;
pub mod config;
pub mod health_check;
pub mod metrics;
pub mod path;
pub mod pool;
pub mod rendezvous;
pub mod sources;
pub mod stats;
pub mod transfer;

use std::sync::Arc;
use std::time::Duration;

use config::ServeArgs;
use pool::{NoTargetReachable, Pool};
use sources::{Origin, SourceError};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("invalid settings: {0}")]
    Config(String),
    #[error(transparent)]
    Sources(#[from] SourceError),
    #[error(transparent)]
    NoTarget(#[from] NoTargetReachable),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// Runs the router until SIGTERM or SIGINT, then drains and returns.
pub async fn serve(args: ServeArgs) -> Result<(), ServeError> {
    args.validate().map_err(ServeError::Config)?;

    // The SDK is only set up when the published list is used.
    let ssm = match (&args.parameter, args.targets.is_empty()) {
        (Some(_), true) => Some(crate::aws::ssm::Ssm::new(aws_sdk_ssm::Client::new(
            &crate::aws::sdk_config().await,
        ))),
        _ => None,
    };
    let parameter = ssm.as_ref().zip(args.parameter.as_deref());
    let (specs, origin) = sources::initial(
        &args.targets,
        parameter,
        args.default_targets.as_deref(),
        args.nfs_port,
    )
    .await?;
    tracing::info!(backend = ?args.backend, origin = ?origin, targets = specs.len(), "connecting to mount targets");

    let pool = Pool::start(specs.clone(), args.connector(), args.backoff()).await?;
    let up = pool
        .targets()
        .iter()
        .filter(|t| t.client().is_some())
        .count();
    tracing::info!(up, of = specs.len(), "mount targets connected");
    pool.spawn_prober(Duration::from_secs(args.probe_interval));
    if let (Some(ssm), Some(name)) = (ssm, &args.parameter)
        && origin != Origin::Flags
        && args.refresh > 0
    {
        // Started from the default list: the first successful read replaces it.
        let current = if origin == Origin::Parameter {
            specs
        } else {
            Vec::new()
        };
        sources::spawn_watch(
            pool.clone(),
            ssm,
            name.clone(),
            Duration::from_secs(args.refresh),
            current,
        );
    }

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: args.listen,
            source,
        })?;
    let metrics = Arc::new(metrics::Metrics::new(pool.clone()));
    let state = api::AppState {
        pool: pool.clone(),
        budget: transfer::Budget::new(args.transfer_budget()),
        metrics,
    };
    tracing::info!(listen = %args.listen, "serving");

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    // No Nagle: a small response's headers and body would otherwise wait for the
    // client's delayed ACK (40 ms per small GET).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, api::router(state)).with_graceful_shutdown(async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    });
    let mut server = std::pin::pin!(server.into_future());
    let result = tokio::select! {
        r = &mut server => r,
        signal = shutdown_signal() => {
            tracing::info!(signal, grace_seconds = args.grace_period, "stopping: no new connections, finishing requests in flight");
            let _ = stop_tx.send(true);
            match tokio::time::timeout(Duration::from_secs(args.grace_period), &mut server).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!("grace period over; dropping requests still in flight");
                    Ok(())
                }
            }
        }
    };
    pool.close().await;
    tracing::info!("stopped");
    result.map_err(ServeError::Serve)
}

/// SIGTERM (ECS stopping the task) or SIGINT (a terminal).
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        _ => {
            // Without signal handlers the process still ends on SIGTERM, just without
            // draining; say so rather than fail to serve.
            tracing::warn!("cannot install signal handlers; SIGTERM will not drain");
            std::future::pending().await
        }
    }
}
