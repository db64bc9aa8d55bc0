//! The mount targets the router uses, their health, and their connections.
//!
//! Each target is Up (has a client), Connecting (first attempt in flight) or Down (its
//! client failed; a background task reconnects with backoff). Routing sees only Up
//! targets. A target is marked down by the first request or probe that sees it fail, and
//! a restarted server comes back into service by itself: nothing needs the router to
//! restart.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use super::backend::{
    BackendError, BackendKind, Client, KernelMount, LocalClient, NfsClient, NfsOptions,
};
use super::routing::Routing;
use super::stats::TargetStats;

/// One mount target as configured: where it is and what to call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// What routing hashes: the mount-target id when known (stable across address
    /// changes and list order), else the address.
    pub key: String,
    /// An IP or host name (nfs, kernel) or a directory (dir).
    pub address: String,
    pub availability_zone: Option<String>,
    pub mount_target_id: Option<String>,
}

impl TargetSpec {
    pub fn address_only(address: impl Into<String>) -> Self {
        let address = address.into();
        TargetSpec {
            key: address.clone(),
            address,
            availability_zone: None,
            mount_target_id: None,
        }
    }
}

/// How to connect to a target.
#[derive(Debug, Clone)]
pub struct Connector {
    pub kind: BackendKind,
    pub nfs: NfsOptions,
    /// Kernel backend: mount points are `<root>/efs-N`.
    pub mount_root: PathBuf,
    pub connect_timeout: Duration,
    pub op_timeout: Duration,
}

impl Connector {
    /// `generation` counts the target's earlier connections: a kernel reconnect mounts
    /// at a fresh point (`efs-N.G`), so unmounting the replaced mount once its last
    /// request ends can never detach the new one.
    pub async fn connect(
        &self,
        spec: &TargetSpec,
        index: usize,
        generation: u64,
    ) -> Result<Client, BackendError> {
        let connecting = async {
            match self.kind {
                BackendKind::Nfs => NfsClient::connect(&spec.address, &self.nfs, self.op_timeout)
                    .await
                    .map(Client::Nfs),
                BackendKind::Dir => LocalClient::open(spec.address.as_ref(), self.op_timeout, None)
                    .await
                    .map(Client::Local),
                BackendKind::Kernel => {
                    let point = match generation {
                        0 => self.mount_root.join(format!("efs-{index}")),
                        g => self.mount_root.join(format!("efs-{index}.{g}")),
                    };
                    let mount = KernelMount::mount(
                        &spec.address,
                        &self.nfs.export,
                        &point,
                        self.connect_timeout,
                    )
                    .await?;
                    let point = mount.point().to_path_buf();
                    LocalClient::open(&point, self.op_timeout, Some(mount))
                        .await
                        .map(Client::Local)
                }
            }
        };
        tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .unwrap_or(Err(BackendError::Timeout(self.connect_timeout)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Connecting,
    Up,
    Down,
}

#[derive(Debug)]
struct State {
    health: Health,
    client: Option<Arc<Client>>,
    since: SystemTime,
    last_error: Option<String>,
    /// Connections made so far; tells a report about an old client from one about
    /// the current.
    connects: u64,
}

impl State {
    fn go_up(&mut self, client: Arc<Client>) {
        self.health = Health::Up;
        self.client = Some(client);
        self.since = SystemTime::now();
        self.connects += 1;
    }
}

#[derive(Debug)]
pub struct Target {
    pub spec: TargetSpec,
    /// N of the kernel backend's `/mnt/efs-N`.
    pub index: usize,
    pub stats: TargetStats,
    /// Whether traffic to it crosses zones (`None`: a zone is unknown).
    pub cross_az: Option<bool>,
    state: Mutex<State>,
    retired: AtomicBool,
}

/// What `/targets` shows of one target.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetView {
    pub address: String,
    pub availability_zone: Option<String>,
    pub mount_target_id: Option<String>,
    pub state: Health,
    /// Seconds since the epoch at the last state change.
    pub since: u64,
    pub last_error: Option<String>,
    pub connects: u64,
    pub cross_az: Option<bool>,
    /// Open NFS connections (nfs backend, while up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<usize>,
}

impl Target {
    pub(crate) fn new(spec: TargetSpec, index: usize, routing: &Routing) -> Self {
        Target {
            cross_az: routing.crosses(spec.availability_zone.as_deref()),
            spec,
            index,
            stats: TargetStats::default(),
            state: Mutex::new(State {
                health: Health::Connecting,
                client: None,
                since: SystemTime::now(),
                last_error: None,
                connects: 0,
            }),
            retired: AtomicBool::new(false),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain data behind; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn client(&self) -> Option<Arc<Client>> {
        let s = self.state();
        (s.health == Health::Up).then(|| s.client.clone()).flatten()
    }

    pub fn health(&self) -> Health {
        self.state().health
    }

    pub fn view(&self) -> TargetView {
        let s = self.state();
        TargetView {
            address: self.spec.address.clone(),
            availability_zone: self.spec.availability_zone.clone(),
            mount_target_id: self.spec.mount_target_id.clone(),
            state: s.health,
            since: s
                .since
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            last_error: s.last_error.clone(),
            connects: s.connects,
            cross_az: self.cross_az,
            connections: match (s.health, s.client.as_deref()) {
                (Health::Up, Some(Client::Nfs(c))) => Some(c.connections()),
                _ => None,
            },
        }
    }

    /// Runs one backend call against this target, counting it.
    pub async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        let started = Instant::now();
        let result = call.await;
        let failed = matches!(&result, Err(e) if e.is_target_failure() || matches!(e, BackendError::Failed(_)));
        self.stats.record(started.elapsed(), failed);
        result
    }

    fn set_up(&self, client: Client) {
        self.adopt(Arc::new(client));
    }

    /// Like `set_up`, unless the target left the list meanwhile (checked under the state
    /// lock, which retiring also takes): then the client comes back to be shut down.
    fn set_up_unless_retired(&self, client: Client) -> Result<(), Client> {
        let mut s = self.state();
        if self.retired.load(Ordering::Acquire) {
            return Err(client);
        }
        s.go_up(Arc::new(client));
        Ok(())
    }

    /// Takes a working client (a new connection, or another target's for the same
    /// address) and goes into service.
    fn adopt(&self, client: Arc<Client>) {
        self.state().go_up(client);
    }

    /// Marks the target down if `client` is still its current one; returns the client
    /// to close, or `None` if another report got there first.
    fn set_down(&self, client: Option<&Arc<Client>>, error: &str) -> Option<Option<Arc<Client>>> {
        let mut s = self.state();
        let current = match (client, &s.client) {
            (Some(reported), Some(current)) => Arc::ptr_eq(reported, current),
            (None, _) => s.health != Health::Down,
            (Some(_), None) => false,
        };
        if !current {
            return None;
        }
        s.health = Health::Down;
        s.since = SystemTime::now();
        s.last_error = Some(error.to_string());
        Some(s.client.take())
    }
}

/// Why the router cannot start (property 8: it starts when at least one target works).
#[derive(Debug, thiserror::Error)]
#[error("no mount target could be reached ({}); the router needs at least one", .0.join("; "))]
pub struct NoTargetReachable(pub Vec<String>);

/// Backoff between reconnect attempts.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    fn delay(&self, attempt: u32) -> Duration {
        let base = self
            .first
            .saturating_mul(1 << attempt.min(16))
            .min(self.max);
        // Full jitter on the upper half: tasks restarted together do not reconnect in step.
        let half = base / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

#[derive(Debug)]
pub struct Pool {
    targets: RwLock<Vec<Arc<Target>>>,
    connector: Connector,
    backoff: Backoff,
    routing: Routing,
    next_index: AtomicUsize,
    stopping: watch::Sender<bool>,
}

/// Connects to every target at once, each bounded by `timeout`, so one black-holed
/// address delays start by at most that timeout however many targets there are.
pub async fn connect_all<T, F, Fut>(
    specs: &[TargetSpec],
    timeout: Duration,
    connect: F,
) -> Vec<Result<T, BackendError>>
where
    F: Fn(usize, TargetSpec) -> Fut,
    Fut: Future<Output = Result<T, BackendError>>,
{
    let attempts = specs.iter().enumerate().map(|(i, spec)| {
        let attempt = connect(i, spec.clone());
        async move {
            tokio::time::timeout(timeout, attempt)
                .await
                .unwrap_or(Err(BackendError::Timeout(timeout)))
        }
    });
    futures_util::future::join_all(attempts).await
}

impl Pool {
    /// Connects to `specs` and returns the pool once at least one target works; the
    /// others keep reconnecting in the background.
    pub async fn start(
        specs: Vec<TargetSpec>,
        connector: Connector,
        backoff: Backoff,
        routing: Routing,
    ) -> Result<Arc<Pool>, NoTargetReachable> {
        let (stopping, _) = watch::channel(false);
        let pool = Arc::new(Pool {
            targets: RwLock::new(Vec::new()),
            next_index: AtomicUsize::new(specs.len()),
            connector,
            backoff,
            routing,
            stopping,
        });
        let results = connect_all(&specs, pool.connector.connect_timeout, |i, spec| {
            let pool = pool.clone();
            async move { pool.connector.connect(&spec, i, 0).await }
        })
        .await;
        let mut failures = Vec::new();
        let mut targets = Vec::new();
        for (i, (spec, result)) in specs.into_iter().zip(results).enumerate() {
            let target = Arc::new(Target::new(spec, i, &pool.routing));
            match result {
                Ok(client) => {
                    tracing::info!(target = %target.spec.address, zone = ?target.spec.availability_zone, "connected to mount target");
                    target.set_up(client);
                }
                Err(e) => {
                    tracing::warn!(target = %target.spec.address, error = %e, "cannot connect to mount target; retrying in the background");
                    failures.push(format!("{}: {e}", target.spec.address));
                    target.set_down(None, &e.to_string());
                }
            }
            targets.push(target);
        }
        if targets.iter().all(|t| t.health() != Health::Up) {
            return Err(NoTargetReachable(failures));
        }
        for t in targets.iter().filter(|t| t.health() == Health::Down) {
            pool.spawn_reconnect(t.clone());
        }
        *pool.write() = targets;
        Ok(pool)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Target>>> {
        self.targets.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<Target>>> {
        self.targets.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn routing(&self) -> &Routing {
        &self.routing
    }

    pub fn targets(&self) -> Vec<Arc<Target>> {
        self.read().clone()
    }

    /// The targets that can serve `path` now, best first, each with its client.
    pub fn ranked(&self, path: &str) -> Vec<(Arc<Target>, Arc<Client>)> {
        let targets = self.read();
        self.routing
            .rank(&targets, path)
            .into_iter()
            .filter_map(|t| t.client().map(|c| (t.clone(), c)))
            .collect()
    }

    /// A call on `client` failed with `error`: if that is the target's fault, take the
    /// target out of routing and reconnect it in the background.
    pub fn report(
        self: &Arc<Self>,
        target: &Arc<Target>,
        client: &Arc<Client>,
        error: &BackendError,
    ) {
        if !error.is_target_failure() {
            return;
        }
        if let Some(old) = target.set_down(Some(client), &error.to_string()) {
            tracing::warn!(target = %target.spec.address, %error, "mount target marked down");
            if let Some(old) = old {
                tokio::spawn(close_when_idle(old));
            }
            self.spawn_reconnect(target.clone());
        }
    }

    fn spawn_reconnect(self: &Arc<Self>, target: Arc<Target>) {
        let pool = self.clone();
        let mut stopping = self.stopping.subscribe();
        tokio::spawn(async move {
            let mut attempt = 0u32;
            loop {
                if target.retired.load(Ordering::Acquire) || *stopping.borrow() {
                    return;
                }
                if target.health() != Health::Connecting || attempt > 0 {
                    let delay = pool.backoff.delay(attempt);
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = stopping.changed() => return,
                    }
                }
                attempt = attempt.saturating_add(1);
                let generation = target.state().connects;
                match pool
                    .connector
                    .connect(&target.spec, target.index, generation)
                    .await
                {
                    Ok(client) => {
                        if *stopping.borrow() {
                            client.shutdown().await;
                            return;
                        }
                        match target.set_up_unless_retired(client) {
                            Ok(()) => {
                                tracing::info!(target = %target.spec.address, attempts = attempt, "mount target back in service")
                            }
                            Err(client) => client.shutdown().await,
                        }
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(target = %target.spec.address, error = %e, "reconnect failed");
                        target.state().last_error = Some(e.to_string());
                    }
                }
            }
        });
    }

    /// Probes every Up target every `interval`, so a target that failed while idle is
    /// taken out of routing (and `/health` stays true) before a request finds it.
    pub fn spawn_prober(self: &Arc<Self>, interval: Duration) {
        let pool = self.clone();
        let mut stopping = self.stopping.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    _ = stopping.changed() => return,
                }
                let checks = pool
                    .targets()
                    .into_iter()
                    .filter_map(|t| t.client().map(|c| (t, c)));
                let probes = checks.map(|(t, c)| {
                    let pool = pool.clone();
                    async move {
                        if let Err(e) = t.call(c.probe()).await {
                            pool.report(&t, &c, &e);
                        }
                    }
                });
                futures_util::future::join_all(probes).await;
            }
        });
    }

    /// Replaces the target set (a new published list): keeps unchanged targets and
    /// their connections, connects new ones in the background, retires the rest once
    /// their in-flight calls end. Routing moves only the paths of added or removed
    /// targets (rendezvous hashing).
    pub fn apply(self: &Arc<Self>, specs: Vec<TargetSpec>) {
        let mut added = Vec::new();
        let mut retired = Vec::new();
        {
            let mut targets = self.write();
            let (keep, gone): (Vec<_>, Vec<_>) =
                targets.drain(..).partition(|t| specs.contains(&t.spec));
            *targets = keep;
            for spec in specs {
                if targets.iter().any(|t| t.spec == spec) {
                    continue;
                }
                let index = self.next_index.fetch_add(1, Ordering::Relaxed);
                let t = Arc::new(Target::new(spec, index, &self.routing));
                // The same address under a new name (the default list's DNS name, now
                // the published list's id): keep its connection, so switching lists
                // never leaves the router with nothing to route to.
                let same_address = gone.iter().find(|g| g.spec.address == t.spec.address);
                match same_address.and_then(|g| g.client()) {
                    Some(client) => {
                        if let Some(g) = same_address {
                            g.state().client = None;
                        }
                        t.adopt(client);
                    }
                    None => added.push(t.clone()),
                }
                targets.push(t);
            }
            retired.extend(gone);
        }
        for t in retired {
            tracing::info!(target = %t.spec.address, "mount target left the list; retiring it");
            t.retired.store(true, Ordering::Release);
            if let Some(Some(client)) = t.set_down(None, "removed from the mount-target list") {
                tokio::spawn(close_when_idle(client));
            }
        }
        for t in added {
            tracing::info!(target = %t.spec.address, zone = ?t.spec.availability_zone, "mount target joined the list; connecting");
            self.spawn_reconnect(t);
        }
    }

    /// Stops background work and ends every session.
    pub async fn close(&self) {
        let _ = self.stopping.send(true);
        let clients: Vec<Arc<Client>> = self
            .targets()
            .iter()
            .filter_map(|t| t.state().client.take())
            .collect();
        futures_util::future::join_all(clients.iter().map(|c| c.shutdown())).await;
    }
}

/// Shuts a replaced client down once no request holds it (or after a minute: a request
/// still holding it by then is stuck on a dead target anyway).
async fn close_when_idle(client: Arc<Client>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Arc::strong_count(&client) > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    client.shutdown().await;
}

#[cfg(test)]
pub(crate) mod tests;
