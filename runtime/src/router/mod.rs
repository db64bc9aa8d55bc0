//! The Fargate mount-and-route entrypoint (`efs-router serve`): connects to every mount
//! target, routes each path to one of them by a stable hash, and serves the file system
//! as an S3 endpoint to applications (docs/router.md).
//!
//! - `config`: flags and environment; `sources`: where the target list comes from, and
//!   the watch that follows it;
//! - `backend`: one client per target (nfs, kernel, dir); `pool`: their health and
//!   reconnection; `rendezvous` and `routing`: which target serves a path;
//! - `path`: paths, normalised and confined; `transfer`: streaming bodies and the
//!   memory they may hold; `deadlines`: how long clients may stall, how many connect;
//! - `s3`: the S3 API over the backends; `admin`: `/health`, `/targets`, `/metrics`;
//!   `stats` and `metrics`: what those show;
//! - `alloc`: the allocator policy that keeps transfer buffers warm.

pub mod admin;
pub mod alloc;
pub mod backend;
pub mod config;
pub mod deadlines;
pub mod emf;
pub mod health_check;
pub mod https;
pub mod metrics;
pub mod path;
pub mod pool;
pub mod rendezvous;
pub mod routing;
pub mod s3;
pub mod sources;
pub mod stats;
pub mod tls;
pub mod transfer;
pub mod zone;

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
    #[error(transparent)]
    Keys(#[from] s3::auth::KeysError),
    #[error(
        "no S3 credentials: set ROUTER_ACCESS_KEY_ID and ROUTER_SECRET_ACCESS_KEY, or --credentials-file FILE (or, for local use, --anonymous on a loopback address)"
    )]
    NoKeys,
    #[error(transparent)]
    Https(#[from] https::HttpsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
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
    let address_map = args.address_map.clone().unwrap_or_default();
    if args.address_map.is_some() {
        tracing::warn!(map = ?address_map, "connecting to mapped addresses, not the published ones (--address-map)");
    }
    let (specs, origin) = sources::initial(
        &args.targets,
        parameter,
        args.default_targets.as_deref(),
        args.nfs_port,
        &address_map,
    )
    .await?;
    tracing::info!(backend = ?args.backend, origin = ?origin, targets = specs.len(), "connecting to mount targets");

    let tls = args.tls_client().await.map_err(ServeError::Config)?;
    match &tls {
        Some(tls) => {
            tracing::info!(server_name = tls.server_name(), iam = args.iam_on(), access_point = ?args.access_point, "connections to the targets are encrypted (TLS)")
        }
        None => tracing::warn!("connections to the targets are NOT encrypted (--tls=false)"),
    }
    let learned = zone::learn(
        args.az.as_deref(),
        std::env::var(zone::METADATA_ENV).ok().as_deref(),
    )
    .await;
    match &learned {
        zone::Learned::Failed(e) => {
            tracing::warn!(error = %e, routing = ?args.routing, "cannot learn this task's availability zone; routing spreads over every target")
        }
        zone::Learned::Unknown => tracing::info!(
            "availability zone unknown (not on ECS, no --az); routing spreads over every target"
        ),
        z => tracing::info!(zone = ?z, routing = ?args.routing, "availability zone"),
    }
    let routing = args.routing(learned.zone().map(str::to_string));
    let pool = Pool::start(specs.clone(), args.connector(tls), args.backoff(), routing).await?;
    let up = pool
        .targets()
        .iter()
        .filter(|t| t.client().is_some())
        .count();
    tracing::info!(up, of = specs.len(), "mount targets connected");
    pool.spawn_prober(Duration::from_secs(args.probe_interval));
    match (&args.file_system_id, args.metrics_interval) {
        (_, 0) => {}
        (Some(fs), seconds) => emf::spawn(pool.clone(), fs.clone(), Duration::from_secs(seconds)),
        (None, _) => tracing::info!(
            "no file system id (EFS_FILE_SYSTEM_ID): CloudWatch metric lines are off"
        ),
    }
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
            address_map,
        );
    }

    let var = |name: &str| std::env::var(name).ok();
    let current =
        s3::auth::Keys::env_pair("ROUTER_ACCESS_KEY_ID", "ROUTER_SECRET_ACCESS_KEY", var)?;
    let previous = s3::auth::Keys::env_pair(
        "ROUTER_PREVIOUS_ACCESS_KEY_ID",
        "ROUTER_PREVIOUS_SECRET_ACCESS_KEY",
        var,
    )?;
    // The current pair last: it wins should both carry the same id.
    let keys = s3::auth::Keys::load(
        previous.into_iter().chain(current),
        args.credentials_file.as_deref(),
    )?;
    if keys.is_empty() && !args.anonymous {
        return Err(ServeError::NoKeys);
    }
    if let Some(file) = &args.credentials_file {
        keys.spawn_reload(file.clone(), Duration::from_secs(10));
    }
    let tls = if args.listen_tls {
        Some(https::acceptor(
            std::env::var(https::CERTIFICATE_VARIABLE).ok(),
            std::env::var(https::KEY_VARIABLE).ok(),
        )?)
    } else {
        None
    };
    let listener = bind(args.listen).await?;
    let admin_listener = bind(args.admin_listen).await?;
    let budget = transfer::Budget::new(args.transfer_budget());
    let store = s3::Store::new(
        pool.clone(),
        budget.clone(),
        s3::Limits {
            upload_max_age: Duration::from_secs(args.upload_max_age_hours * 3600),
            max_object: args.max_object_mib << 20,
            listings: usize::try_from(args.max_listings).unwrap_or(usize::MAX),
            ..s3::Limits::default()
        },
        args.region
            .clone()
            .unwrap_or_else(|| "us-east-1".to_string()),
    );
    s3::janitor::spawn(store.clone(), Duration::from_secs(3600));
    let metrics = Arc::new(metrics::Metrics::new(pool.clone()));
    let s3 = s3_service(store, keys.clone(), args.anonymous, args.domain.as_deref())?;
    let admin = admin::router(admin::AppState {
        pool: pool.clone(),
        metrics: metrics.clone(),
        budget,
    });
    let cap =
        deadlines::ConnectionCap::new(usize::try_from(args.max_connections).unwrap_or(usize::MAX));
    // The admin listener is loopback only; a small cap of its own keeps a busy S3 side
    // from locking the health check out, and the other way round.
    let admin_cap = deadlines::ConnectionCap::new(ADMIN_CONNECTIONS);
    tracing::info!(
        listen = %args.listen,
        admin = %args.admin_listen,
        key_pairs = keys.count(),
        anonymous = args.anonymous,
        tls = tls.is_some(),
        max_connections = cap.limit,
        "serving S3"
    );

    let http = http1_builder();
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    // Created once: a signal handler made anew per accepted connection could miss a
    // SIGTERM that arrives between two of them.
    let mut stop = std::pin::pin!(shutdown_signal());
    let signal = loop {
        tokio::select! {
            (place, accepted) = admitted(&cap, &listener) => {
                if let Some(tcp) = accepted_socket(accepted).await {
                    let (s3, metrics) = (s3.clone(), metrics.clone());
                    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        let (s3, metrics) = (s3.clone(), metrics.clone());
                        let request = request.map(|body| {
                            s3s::Body::http_body(deadlines::IdleBody::new(body, deadlines::BODY_IDLE))
                        });
                        async move {
                            let method = request.method().clone();
                            let _inflight = metrics.request_started();
                            // Its own task: hyper drops this future when the client leaves,
                            // and an NFS call cancelled halfway through sending its request
                            // takes its whole connection down (nfs-rs shuts it). The
                            // operation finishes, cleans up, and its answer goes nowhere.
                            let id = format!("{:016X}", rand::random::<u64>());
                            let mut response = tokio::spawn(async move { s3.call(request).await })
                                .await
                                .unwrap_or_else(|e| Err(s3s::HttpError::new(Box::new(e))));
                            if let Ok(r) = &mut response {
                                s3::stamp_request_id(r, &id);
                                metrics.request_finished(&method, r.status());
                            }
                            response
                        }
                    });
                    let tcp = deadlines::Stalls::new(tcp, deadlines::WRITE_STALL);
                    match &tls {
                        None => {
                            let conn = http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
                            spawn_watched(&connections, conn, place);
                        }
                        // The handshake runs in the connection's own task, so a slow or
                        // silent client never holds up the accept loop.
                        Some(acceptor) => {
                            let (acceptor, http, watcher) = (acceptor.clone(), http.clone(), connections.watcher());
                            tokio::spawn(async move {
                                let _place = place;
                                let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                                    Ok(Ok(stream)) => stream,
                                    Ok(Err(e)) => return tracing::debug!(error = %e, "TLS handshake failed"),
                                    Err(_) => return tracing::debug!("TLS handshake timed out"),
                                };
                                let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                                if let Err(e) = watcher.watch(conn).await {
                                    tracing::debug!(error = %e, "HTTPS connection ended with an error");
                                }
                            });
                        }
                    }
                }
            },
            (place, accepted) = admitted(&admin_cap, &admin_listener) => {
                if let Some(tcp) = accepted_socket(accepted).await {
                    let service = hyper_util::service::TowerToHyperService::new(admin.clone());
                    let tcp = deadlines::Stalls::new(tcp, deadlines::WRITE_STALL);
                    let conn = http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
                    spawn_watched(&connections, conn, place);
                }
            },
            signal = &mut stop => break signal,
        }
    };
    tracing::info!(
        signal,
        grace_seconds = args.grace_period,
        "stopping: no new connections, finishing requests in flight"
    );
    drop(listener);
    drop(admin_listener);
    if tokio::time::timeout(
        Duration::from_secs(args.grace_period),
        connections.shutdown(),
    )
    .await
    .is_err()
    {
        tracing::warn!("grace period over; dropping requests still in flight");
    }
    pool.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// The S3 protocol (s3s) over the store: signatures checked against `keys`, unsigned
/// requests only with `anonymous`, virtual-hosted-style requests under `domain`.
fn s3_service(
    store: s3::Store,
    keys: s3::auth::Keys,
    anonymous: bool,
    domain: Option<&str>,
) -> Result<s3s::service::S3Service, ServeError> {
    let mut builder = s3s::service::S3ServiceBuilder::new(store);
    builder.set_auth(keys);
    builder.set_access(s3::auth::Access { anonymous });
    if let Some(domain) = domain {
        let host = s3s::host::SingleDomain::new(domain)
            .map_err(|e| ServeError::Config(format!("--domain {domain:?}: {e}")))?;
        builder.set_host(host);
    }
    Ok(builder.build())
}

/// A socket from `accept`, ready to serve; `None` when accepting failed (after a pause,
/// so running out of file descriptors does not spin; open connections carry on).
async fn accepted_socket(
    accepted: std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)>,
) -> Option<tokio::net::TcpStream> {
    match accepted {
        Ok((tcp, _)) => {
            // No Nagle: a small response's headers and body would otherwise wait for the
            // client's delayed ACK (40 ms per small GET).
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
            Some(tcp)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot accept a connection");
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}

/// Connections the admin listener serves at once.
const ADMIN_CONNECTIONS: usize = 32;

/// The next connection, once the cap has room for it (cancel safe: a place taken for an
/// accept that loses the `select!` goes straight back).
async fn admitted(
    cap: &deadlines::ConnectionCap,
    listener: &tokio::net::TcpListener,
) -> (
    tokio::sync::OwnedSemaphorePermit,
    std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)>,
) {
    let place = cap.admit().await;
    (place, listener.accept().await)
}

/// Serves `conn` on its own task, holding its place under the cap until it ends.
fn spawn_watched<C>(
    connections: &hyper_util::server::graceful::GracefulShutdown,
    conn: C,
    place: tokio::sync::OwnedSemaphorePermit,
) where
    C: hyper_util::server::graceful::GracefulConnection + Send + 'static,
    C::Error: std::fmt::Display,
{
    let conn = connections.watch(conn);
    tokio::spawn(async move {
        let _place = place;
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "HTTP connection ended with an error");
        }
    });
}

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP/1.1 for the application in the same task.
fn http1_builder() -> hyper::server::conn::http1::Builder {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        // A client that opens a connection and sends no complete request head in this
        // time is dropped (slow-header clients would otherwise hold sockets forever).
        .header_read_timeout(Duration::from_secs(30))
        // Each connection's read buffer grows up to this. hyper's default (~400 KiB)
        // times 32 uploading connections was a fifth of the router's memory; 64 KiB
        // reads keep loopback uploads as fast (docs/benchmarks.md#router).
        .max_buf_size(64 << 10);
    http
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
