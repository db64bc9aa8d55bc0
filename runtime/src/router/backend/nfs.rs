//! The `nfs` backend: one `nfs-rs` NFSv4.1 mount (one TCP connection, one session) per
//! target, shared by every request to it.
//!
//! With `--connections-per-target N` a target gets N mounts (N TCP connections, each
//! its own NFS client and session, as EFS sees several clients). Path calls go to the
//! connection with the fewest calls in flight; a file's calls stay on the connection
//! that opened it (its open state lives in that session). A connection that breaks is
//! replaced in the background while the others carry on, and an idempotent call
//! (stat, open for reading, read, list, probe) that met it is retried on another one.
//! `auto` starts with one and adds connections, up to 5, while the target moves
//! 300 MiB/s or more: efs-proxy's rule, since per-connection throughput is what
//! limits one EFS client.
//!
//! This file is the only one that touches `nfs-rs`, so an upgrade of that young crate is
//! checked here and by the ganesha tests.
//! What we rely on:
//! - after a lost connection it gives up within ~500 ms and a mount never recovers from
//!   a server restart: the pool drops the client and mounts again;
//! - writes are UNSTABLE and become durable only with `commit_write_batch`, which checks
//!   the server's write verifiers (a server that rebooted between write and commit is
//!   reported, never silently accepted).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nfs_rs::{DirectoryCookie, Mount, Nfs4ErrorCode, NfsError};

use super::{BackendError, DirEntry, EntryKind, ListPage, Result, Stat, WriteAck};
use crate::router::path::FilePath;
use crate::router::tls::Tls;
use crate::router::tls::forwarder::{Forwarder, Upstream};

/// How to reach the export on each target.
#[derive(Debug, Clone)]
pub struct NfsOptions {
    /// The exported path: `/` on EFS.
    pub export: String,
    pub port: u16,
    /// Encrypt every connection (`--tls`); `None` is clear text.
    pub tls: Option<Tls>,
    pub connections: Connections,
    /// The whole connect's budget (`--connect-timeout`).
    pub connect_timeout: Duration,
    /// The router's own directory (the S3 layer's reserved one). Only the router makes,
    /// renames and removes directories under it, so their handles are kept: creating a
    /// temporary file or a sidecar there skips the LOOKUP of its directory.
    pub private_dir: Option<String>,
}

/// `--connections-per-target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connections {
    Fixed(usize),
    /// Start with one; add one at a time while the target moves `threshold` bytes per
    /// second or more, up to `max`.
    Auto {
        max: usize,
        threshold: u64,
    },
}

impl Connections {
    /// efs-proxy's defaults: 5 connections past 300 MiB/s.
    pub const AUTO: Connections = Connections::Auto {
        max: 5,
        threshold: 300 << 20,
    };

    fn initial(self) -> usize {
        match self {
            Connections::Fixed(n) => n.max(1),
            Connections::Auto { .. } => 1,
        }
    }
}

impl std::str::FromStr for Connections {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "auto" {
            return Ok(Connections::AUTO);
        }
        match s.parse::<usize>() {
            Ok(n) if (1..=16).contains(&n) => Ok(Connections::Fixed(n)),
            _ => Err(format!("{s:?}: expected a number from 1 to 16, or auto")),
        }
    }
}

/// The `nfs-rs` URL for a target: NFSv4.1 as EFS requires, the port given directly
/// (EFS runs no portmapper), and an unprivileged source port (`noresvport`, as
/// amazon-efs-utils mounts EFS; a Fargate task cannot bind ports below 1024 anyway).
pub fn nfs_url(address: &str, export: &str, port: u16) -> String {
    let export = export.trim_start_matches('/');
    format!("nfs://{address}/{export}?version=4.1&noresvport=true&nfsport={port}")
}

/// One connection to the target: a mount, and its TLS forwarder when encrypted.
#[derive(Debug)]
struct Conn {
    mount: Arc<dyn Mount>,
    // Dropped with the connection: closes the loopback listener and the TLS relay.
    _forwarder: Option<Forwarder>,
    inflight: AtomicUsize,
    failed: AtomicBool,
}

/// Counts a call in flight on a connection for as long as it lives.
struct Busy(Arc<Conn>);

impl Busy {
    fn new(conn: &Arc<Conn>) -> Self {
        conn.inflight.fetch_add(1, Ordering::Relaxed);
        Busy(conn.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A failed call: what the layers above see, and whether the connection itself was lost
/// (then it is replaced; other errors, a busy server or one file's state, leave it be).
#[derive(Debug)]
struct Fault {
    error: BackendError,
    lost: bool,
}

/// The connection itself failed (nfs-rs 0.11 wraps a transport failure after a request
/// was sent in an operation outcome, naming whether the call may be repeated).
fn transport_failure(e: &NfsError) -> bool {
    match e {
        NfsError::Io(_) | NfsError::ClientClosed(_) | NfsError::Rpc(_) | NfsError::Xdr(_) => true,
        NfsError::OperationOutcome(o) => transport_failure(&o.source),
        _ => false,
    }
}

impl From<NfsError> for Fault {
    fn from(e: NfsError) -> Self {
        use Nfs4ErrorCode as C;
        let lost = transport_failure(&e)
            || matches!(
                &e,
                NfsError::Nfs4(
                    C::NFS4ERR_BADSESSION
                        | C::NFS4ERR_DEADSESSION
                        | C::NFS4ERR_STALE_CLIENTID
                        | C::NFS4ERR_EXPIRED
                )
            );
        Fault {
            error: map(e),
            lost,
        }
    }
}

impl From<BackendError> for Fault {
    fn from(error: BackendError) -> Self {
        Fault { error, lost: false }
    }
}

fn all_failed() -> BackendError {
    BackendError::Unavailable("every NFS connection to the target failed".into())
}

/// What every connection of a target shares, and what makes new ones.
#[derive(Debug)]
struct Shared {
    address: String,
    options: NfsOptions,
    timeout: Duration,
    conns: RwLock<Vec<Arc<Conn>>>,
    /// Connections the target should have now (auto mode raises it).
    wanted: AtomicUsize,
    /// Bytes moved since `window` began (auto mode's rate).
    moved: AtomicU64,
    window: Mutex<Instant>,
    /// A background loop is dialing up to `wanted`.
    dialing: AtomicBool,
    /// The client was unmounted: no more dialing, and a late dial is undone.
    closed: AtomicBool,
    /// Handles of directories under `options.private_dir`, by path.
    dirs: Mutex<HashMap<String, Bytes>>,
}

/// `path` is `dir` or a path below it.
fn at_or_under(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Directory handles kept at most; past it the cache starts again (multipart uploads
/// make and remove a directory each, so their entries come and go).
const DIR_HANDLES: usize = 1024;

impl Shared {
    fn private(&self, dir: &FilePath) -> bool {
        self.options
            .private_dir
            .as_deref()
            .is_some_and(|p| at_or_under(dir.as_str(), p))
    }

    fn dir_handle(&self, dir: &FilePath) -> Option<Bytes> {
        if !self.private(dir) {
            return None;
        }
        let dirs = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
        dirs.get(dir.as_str()).cloned()
    }

    fn keep_dir_handle(&self, dir: &FilePath, fh: &Bytes) {
        if !self.private(dir) {
            return;
        }
        let mut dirs = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
        if dirs.len() >= DIR_HANDLES {
            dirs.clear();
        }
        dirs.insert(dir.as_str().to_string(), fh.clone());
    }

    /// A path removed or renamed: a directory's handle (and those below it) goes.
    fn forget_dir(&self, path: &FilePath) {
        if !self.private(path) {
            return;
        }
        let mut dirs = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
        let p = path.as_str();
        dirs.retain(|d, _| !at_or_under(d, p));
    }

    fn conns(&self) -> Vec<Arc<Conn>> {
        self.conns.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn live(&self) -> usize {
        self.conns
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|c| !c.failed.load(Ordering::Relaxed))
            .count()
    }

    /// Opens one more connection: TLS first (so a certificate problem is named before
    /// anything else), then the mount through the forwarder.
    async fn dial(&self) -> Result<Conn> {
        let port = self.options.port;
        let (url, forwarder) = match &self.options.tls {
            Some(tls) => {
                // Three quarters of the connect budget for TCP and the handshake
                // together, so a silent handshake (a clear-text server waiting for
                // more) is reported as such before the pool's own connect timeout cuts
                // the whole attempt short.
                let handshake = self.options.connect_timeout.mul_f64(0.75);
                let stream = tls.connect(&self.address, port, handshake).await?;
                let upstream = Upstream {
                    tls: tls.clone(),
                    address: self.address.clone(),
                    port,
                    timeout: self.options.connect_timeout,
                };
                let forwarder = Forwarder::start(upstream, stream).await.map_err(|e| {
                    BackendError::Unavailable(format!("cannot start the TLS forwarder: {e}"))
                })?;
                let local = forwarder.local_addr();
                let url = nfs_url(&local.ip().to_string(), &self.options.export, local.port());
                (url, Some(forwarder))
            }
            None => (nfs_url(&self.address, &self.options.export, port), None),
        };
        let mounted = tokio::time::timeout(self.timeout, nfs_rs::parse_url_and_mount(&url))
            .await
            .map_err(|_| BackendError::Timeout(self.timeout))?;
        let mount = match mounted {
            Ok(mount) => mount,
            Err(e) => {
                let e = match map(e) {
                    // At mount time every failure means this target is not usable.
                    BackendError::NotFound => BackendError::Unavailable(format!(
                        "export {} not found",
                        self.options.export
                    )),
                    e if e.is_target_failure() => e,
                    e => BackendError::Unavailable(e.to_string()),
                };
                return Err(self.explain_clear_text_failure(e).await);
            }
        };
        Ok(Conn {
            mount: Arc::from(mount),
            _forwarder: forwarder,
            inflight: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
        })
    }

    /// A clear-text mount that failed against a server speaking TLS (EFS with a policy
    /// requiring it, or a TLS front) says so, instead of a bare connection reset.
    async fn explain_clear_text_failure(&self, e: BackendError) -> BackendError {
        if self.options.tls.is_some() || !matches!(e, BackendError::Unavailable(_)) {
            return e;
        }
        if crate::router::tls::speaks_tls(&self.address, self.options.port, self.timeout).await {
            BackendError::Unavailable(format!(
                "{e}; the target answers with TLS: run with --tls (and its server name)"
            ))
        } else {
            e
        }
    }

    /// The live connection with the fewest calls in flight.
    fn pick(&self) -> Result<Arc<Conn>> {
        let conns = self.conns.read().unwrap_or_else(|p| p.into_inner());
        conns
            .iter()
            .filter(|c| !c.failed.load(Ordering::Relaxed))
            .min_by_key(|c| c.inflight.load(Ordering::Relaxed))
            .cloned()
            .ok_or_else(all_failed)
    }

    /// `conn` was lost: unless it is the last live one (then the whole target is down
    /// and the pool reconnects it), take it out, close it once its calls end, and dial
    /// a replacement. Returns whether another connection can take over.
    fn retire(self: &Arc<Self>, conn: &Arc<Conn>, error: &BackendError) -> bool {
        if conn.failed.swap(true, Ordering::AcqRel) {
            return self.pick().is_ok();
        }
        if self.pick().is_err() {
            return false;
        }
        tracing::warn!(target = %self.address, %error, "an NFS connection broke; replacing it");
        self.conns
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|c| !Arc::ptr_eq(c, conn));
        let old = conn.clone();
        let timeout = self.timeout;
        tokio::spawn(async move {
            // Calls still on it fail on their own; do not cut them short.
            let deadline = Instant::now() + Duration::from_secs(60);
            while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let _ = tokio::time::timeout(timeout, old.mount.umount()).await;
        });
        self.fill();
        true
    }

    /// Dials in the background, with backoff, until `wanted` connections are live; one
    /// loop at a time, and none after the client is closed.
    fn fill(self: &Arc<Self>) {
        if self.closed.load(Ordering::Acquire) || self.dialing.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(500);
            loop {
                while !me.closed.load(Ordering::Acquire)
                    && me.live() < me.wanted.load(Ordering::Relaxed)
                {
                    match me.dial().await {
                        Ok(conn) => {
                            let conn = Arc::new(conn);
                            if me.closed.load(Ordering::Acquire) {
                                let _ = tokio::time::timeout(me.timeout, conn.mount.umount()).await;
                                break;
                            }
                            let mut conns = me.conns.write().unwrap_or_else(|p| p.into_inner());
                            conns.push(conn);
                            tracing::info!(target = %me.address, connections = conns.len(), "NFS connection added");
                            delay = Duration::from_millis(500);
                        }
                        Err(e) => {
                            tracing::warn!(target = %me.address, error = %e, retry_in = ?delay, "cannot open another NFS connection");
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(Duration::from_secs(30));
                        }
                    }
                }
                me.dialing.store(false, Ordering::Release);
                // A connection lost or a raise of `wanted` after the check above, but
                // before the flag fell, would otherwise wait for the next event.
                if me.closed.load(Ordering::Acquire)
                    || me.live() >= me.wanted.load(Ordering::Relaxed)
                    || me.dialing.swap(true, Ordering::AcqRel)
                {
                    return;
                }
            }
        });
    }

    /// Auto mode: counts `n` bytes and, once a second, wants one more connection if the
    /// last second moved the threshold or more.
    fn moved(self: &Arc<Self>, n: usize) {
        let Connections::Auto { max, threshold } = self.options.connections else {
            return;
        };
        self.moved.fetch_add(n as u64, Ordering::Relaxed);
        let Ok(mut window) = self.window.try_lock() else {
            return;
        };
        let elapsed = window.elapsed();
        if elapsed < Duration::from_secs(1) {
            return;
        }
        *window = Instant::now();
        let rate = self.moved.swap(0, Ordering::Relaxed) as f64 / elapsed.as_secs_f64();
        let wanted = self.wanted.load(Ordering::Relaxed);
        if rate >= threshold as f64 && wanted < max {
            tracing::info!(target = %self.address, mib_per_s = rate / f64::from(1 << 20), connections = wanted + 1, "target busy; adding a connection");
            self.wanted.store(wanted + 1, Ordering::Relaxed);
            self.fill();
        }
    }
}

#[derive(Debug)]
pub struct NfsClient {
    shared: Arc<Shared>,
}

#[derive(Debug)]
pub struct NfsHandle {
    fh: Bytes,
    /// For a created file: its directory's handle and its name, so publishing it is
    /// one RENAME instead of two lookups and a RENAME.
    created_in: Option<(Bytes, String)>,
    /// Opened (a created file, open for writing) and so to be closed; a file looked up
    /// for reading holds no open state.
    opened: bool,
    /// The connection that opened it: its open state lives in that session.
    conn: Arc<Conn>,
}

/// The mode of every file the router creates: readable by every client of the file
/// system, as objects are meant to be.
const FILE_MODE: u32 = 0o644;

/// NFS type codes (ftype3 / nfs_ftype4 agree on these).
const NF_REG: u32 = 1;
const NF_DIR: u32 = 2;
const NF_LNK: u32 = 5;

impl NfsClient {
    pub async fn connect(address: &str, options: &NfsOptions, timeout: Duration) -> Result<Self> {
        let wanted = options.connections.initial();
        let shared = Arc::new(Shared {
            address: address.to_string(),
            options: options.clone(),
            timeout,
            conns: RwLock::new(Vec::new()),
            wanted: AtomicUsize::new(wanted),
            moved: AtomicU64::new(0),
            window: Mutex::new(Instant::now()),
            dialing: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            dirs: Mutex::new(HashMap::new()),
        });
        let dials = (0..wanted).map(|_| shared.dial());
        let mut conns = Vec::with_capacity(wanted);
        let mut first_error = None;
        for result in futures_util::future::join_all(dials).await {
            match result {
                Ok(c) => conns.push(Arc::new(c)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let opened = conns.len();
        *shared.conns.write().unwrap_or_else(|p| p.into_inner()) = conns;
        match first_error {
            Some(e) if opened == 0 => return Err(e),
            Some(e) => {
                // Part of the set: serve with what opened, fill the rest in the background.
                tracing::warn!(target = address, error = %e, opened, wanted, "not every NFS connection opened");
                shared.fill();
            }
            None => {}
        }
        Ok(NfsClient { shared })
    }

    pub fn timeout(&self) -> Duration {
        self.shared.timeout
    }

    /// Live connections now.
    pub fn connections(&self) -> usize {
        self.shared.live()
    }

    pub fn chunk_size(&self) -> usize {
        // The server's limits, capped by nfs-rs at 4 MiB; EFS and ganesha offer 1 MiB.
        match self.shared.pick() {
            Ok(c) => c
                .mount
                .get_max_read_size()
                .min(c.mount.get_max_write_size())
                .max(4096) as usize,
            Err(_) => 1 << 20,
        }
    }

    /// Runs an idempotent call on the least busy connection; if that connection is lost
    /// and another is live, the call is made again there.
    async fn any<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn(Arc<Conn>) -> Fut,
        Fut: Future<Output = std::result::Result<T, Fault>>,
    {
        loop {
            let conn = self.shared.pick()?;
            let busy = Busy::new(&conn);
            let result = call(conn.clone()).await;
            drop(busy);
            match result {
                Ok(v) => return Ok(v),
                Err(f) if f.lost && self.shared.retire(&conn, &f.error) => continue,
                Err(f) => return Err(f.error),
            }
        }
    }

    /// Runs a call that must not be repeated on `conn`. A lost connection is replaced;
    /// while others are live the failure is this call's, not the target's (the pool
    /// would otherwise close every connection of a working target).
    async fn on<T, Fut>(
        &self,
        conn: &Arc<Conn>,
        call: impl FnOnce(Arc<dyn Mount>) -> Fut,
    ) -> Result<T>
    where
        Fut: Future<Output = std::result::Result<T, NfsError>>,
    {
        let _busy = Busy::new(conn);
        match call(conn.mount.clone()).await.map_err(Fault::from) {
            Ok(v) => Ok(v),
            Err(f) if f.lost && self.shared.retire(conn, &f.error) => {
                Err(BackendError::Failed(format!(
                    "the NFS connection carrying this call broke ({}); the target's other connections carry on",
                    f.error
                )))
            }
            Err(f) => Err(f.error),
        }
    }

    /// Every connection answers a NULL call; lost ones are replaced, and the target
    /// fails only when none is left.
    pub async fn probe(&self) -> Result<()> {
        let conns: Vec<Arc<Conn>> = self
            .shared
            .conns()
            .into_iter()
            .filter(|c| !c.failed.load(Ordering::Relaxed))
            .collect();
        let results = futures_util::future::join_all(conns.iter().map(|c| c.mount.null())).await;
        let mut last = None;
        for (conn, result) in conns.iter().zip(results) {
            if let Err(f) = result.map_err(Fault::from)
                && (f.lost || f.error.is_target_failure())
                && !self.shared.retire(conn, &f.error)
            {
                last = Some(f.error);
            }
        }
        match (self.shared.pick(), last) {
            (Ok(_), _) => Ok(()),
            (Err(_), Some(e)) => Err(e),
            (Err(e), None) => Err(e),
        }
    }

    pub async fn stat(&self, path: &FilePath) -> Result<Stat> {
        self.any(|c| async move {
            let obj = c.mount.lookup_path(path.as_str()).await?;
            match obj.attr {
                Some(attr) => Ok(stat(&attr)),
                None => Ok(c.mount.getattr(obj.fh).await.map(|a| stat(&a))?),
            }
        })
        .await
    }

    /// Looks a file up for reading, its attributes in the same round trip. There is no
    /// OPEN: reads use the anonymous stateid, which NFSv4.1 servers accept for READ. An
    /// OPEN per GET would cost two round trips (OPEN, CLOSE), and concurrent GETs of one
    /// file share one open state on a connection: each OPEN moves its sequence on and
    /// the first CLOSE ends it, failing the other GETs' reads (seen with ganesha).
    pub async fn open_read(&self, path: &FilePath) -> Result<(super::Handle, Stat)> {
        let (obj, conn) = self
            .any(|c| async move {
                let obj = c.mount.lookup_path(path.as_str()).await?;
                let attr = match obj.attr {
                    Some(a) => a,
                    None => c.mount.getattr(obj.fh.clone()).await?,
                };
                Ok(((obj.fh, attr), c))
            })
            .await?;
        let (fh, attr) = obj;
        let stat = stat(&attr);
        match stat.kind {
            EntryKind::File => {}
            EntryKind::Dir => return Err(BackendError::IsADirectory),
            _ => return Err(BackendError::NotAFile),
        }
        let handle = NfsHandle {
            fh,
            created_in: None,
            opened: false,
            conn,
        };
        Ok((super::Handle::Nfs(handle), stat))
    }

    /// Reads on the connection that looked the file up; if it was lost, on another one.
    pub async fn read(&self, h: &NfsHandle, offset: u64, len: usize) -> Result<Bytes> {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        let anywhere = || {
            self.any(|c| {
                let fh = h.fh.clone();
                async move { Ok(c.mount.read(fh, offset, len).await?) }
            })
        };
        let result = if h.conn.failed.load(Ordering::Relaxed) {
            anywhere().await
        } else {
            let fh = h.fh.clone();
            let first = self
                .on(&h.conn, |m| async move { m.read(fh, offset, len).await })
                .await;
            match first {
                // The connection broke; reads may be repeated elsewhere.
                Err(BackendError::Failed(_)) if h.conn.failed.load(Ordering::Relaxed) => {
                    anywhere().await
                }
                other => other,
            }
        };
        if let Ok(data) = &result {
            self.shared.moved(data.len());
        }
        result
    }

    /// Creates `path`, open for writing. Its mode is set when it is committed, beside
    /// the COMMIT: nobody sees the file before it is published, and the SETATTR that
    /// nfs-rs would send right after the OPEN would cost a round trip of its own.
    pub async fn create(&self, path: &FilePath) -> Result<super::Handle> {
        // Not retried: a CREATE that reached the server before the connection broke
        // would otherwise meet its own file.
        let conn = self.shared.pick()?;
        let parent = path.parent();
        let shared = &self.shared;
        let (dir, obj) = self
            .on(&conn, |m| async move {
                if let Some(dir) = shared.dir_handle(&parent) {
                    match m.create(dir.clone(), path.name(), None).await {
                        // Removed (by another router task's janitor, say): the server
                        // calls the handle stale, or a directory that is gone: look it
                        // up again. Neither made a file.
                        Err(e) if is_stale(&e) || e.is_not_found() => shared.forget_dir(&parent),
                        other => return other.map(|obj| (dir, obj)),
                    }
                }
                let dir = m.lookup_path(parent.as_str()).await?.fh;
                let obj = m.create(dir.clone(), path.name(), None).await?;
                shared.keep_dir_handle(&parent, &dir);
                Ok((dir, obj))
            })
            .await?;
        Ok(super::Handle::Nfs(NfsHandle {
            fh: obj.fh,
            created_in: Some((dir, path.name().to_string())),
            opened: true,
            conn,
        }))
    }

    /// Writes all of `data`, continuing after short writes.
    pub async fn write(&self, h: &NfsHandle, offset: u64, mut data: Bytes) -> Result<WriteAck> {
        let mut outcomes = Vec::with_capacity(1);
        let mut at = offset;
        let total = data.len();
        while !data.is_empty() {
            let chunk = data.clone();
            let outcome = self
                .on(&h.conn, |m| async move {
                    m.write(h.fh.clone(), at, chunk).await
                })
                .await?;
            let n = outcome.count as usize;
            if n == 0 {
                return Err(BackendError::Failed(
                    "the server accepted no bytes of a write".into(),
                ));
            }
            outcomes.push(outcome);
            at += n as u64;
            data = data.slice(n.min(data.len())..);
        }
        self.shared.moved(total);
        Ok(WriteAck::Nfs(outcomes))
    }

    /// COMMIT and CLOSE at once (COMMIT needs no open state), and with `describe` a
    /// GETATTR beside them: the file's attributes after its last write, without a
    /// round trip of their own.
    pub async fn commit(
        &self,
        h: &NfsHandle,
        acks: Vec<WriteAck>,
        describe: bool,
    ) -> Result<Option<Stat>> {
        let outcomes: Vec<nfs_rs::WriteOutcome> = acks
            .into_iter()
            .flat_map(|a| match a {
                WriteAck::Nfs(o) => o,
                WriteAck::Local => Vec::new(),
            })
            .collect();
        let committed = async {
            if outcomes.is_empty() {
                return Ok(());
            }
            // (0, 0) covers the whole file.
            self.on(&h.conn, |m| async move {
                m.commit_write_batch(h.fh.clone(), 0, 0, &outcomes).await
            })
            .await
        };
        let described = async {
            if !describe {
                return Ok(None);
            }
            self.on(&h.conn, |m| async move { m.getattr(h.fh.clone()).await })
                .await
                .map(|a| Some(stat(&a)))
        };
        let mode = async {
            let set = self
                .on(&h.conn, |m| async move {
                    let fh = h.fh.clone();
                    m.setattr(fh, None, Some(FILE_MODE), None, None, None, None, None)
                        .await
                })
                .await;
            // As nfs-rs treats a failed SETATTR after its OPEN: the data is safe, the
            // mode is the server's default.
            if let Err(e) = set {
                tracing::warn!(error = %e, "setting a new file's mode failed");
            }
        };
        let (committed, closed, described, ()) =
            tokio::join!(committed, self.close(h), described, mode);
        committed.and(closed).and(described)
    }

    pub async fn close(&self, h: &NfsHandle) -> Result<()> {
        if !h.opened {
            return Ok(());
        }
        self.on(&h.conn, |m| async move { m.close(h.fh.clone()).await })
            .await
    }

    pub async fn mkdir(&self, path: &FilePath) -> Result<()> {
        // Not retried: a MKDIR that reached the server would meet itself as Exists.
        self.once(|m| async move { m.mkdir_path(path.as_str(), 0o755).await.map(|_| ()) })
            .await
    }

    /// Renames the file `h` created over `to`, in any directory, replacing what is there.
    pub async fn publish(&self, h: &NfsHandle, to: &FilePath) -> Result<()> {
        let (dir, name) = created_in(h)?;
        self.on(&h.conn, |m| async move {
            let to_dir = lookup_dir(m.as_ref(), &to.parent()).await?;
            m.rename(dir.clone(), name, to_dir, to.name()).await
        })
        .await
    }

    /// Gives the file `h` created the name `to` as well, unless `to` exists (`Exists`):
    /// NFS LINK never replaces, on any server, so this is a no-clobber publish that
    /// holds across every client of the file system. The created name stays.
    pub async fn link(&self, h: &NfsHandle, to: &FilePath) -> Result<()> {
        self.on(&h.conn, |m| async move {
            let to_dir = lookup_dir(m.as_ref(), &to.parent()).await?;
            m.link(h.fh.clone(), to_dir, to.name()).await.map(|_| ())
        })
        .await
    }

    /// Renames `from` over `to` (both paths; `to` is replaced).
    pub async fn rename(&self, from: &FilePath, to: &FilePath) -> Result<()> {
        self.shared.forget_dir(from);
        self.shared.forget_dir(to);
        // Not retried: a RENAME that reached the server would meet its own result.
        self.once(|m| async move {
            let from_dir = lookup_dir(m.as_ref(), &from.parent()).await?;
            let to_dir = lookup_dir(m.as_ref(), &to.parent()).await?;
            m.rename(from_dir, from.name(), to_dir, to.name()).await
        })
        .await
    }

    /// A small file whole (at most `limit` bytes; `Failed` if larger), without an OPEN:
    /// a LOOKUP and a READ with the anonymous stateid.
    pub async fn read_whole(&self, path: &FilePath, limit: usize) -> Result<Bytes> {
        let max = u32::try_from(limit.saturating_add(1)).unwrap_or(u32::MAX);
        let data = self
            .any(|c| async move { Ok(c.mount.read_path(path.as_str(), 0, max).await?) })
            .await?;
        if data.len() > limit {
            return Err(BackendError::Failed(format!(
                "{path} is larger than {limit} bytes"
            )));
        }
        Ok(data)
    }

    pub async fn remove(&self, path: &FilePath) -> Result<()> {
        self.shared.forget_dir(path);
        self.once(|m| async move { m.remove_path(path.as_str()).await })
            .await
    }

    /// Server pages do not end where ours do, so the cursor is the server's position of
    /// a page plus how many of that page's entries were already returned; reading the
    /// same server page again yields the same entries.
    pub async fn list(
        &self,
        dir: &FilePath,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        // Idempotent: a listing whose connection broke is read again on another one
        // (cookies are the server's, valid on any connection to it).
        self.any(|c| async move { list_on(c.mount.as_ref(), dir, cursor, limit).await })
            .await
    }

    /// Ends every connection's session; nothing is dialed after this.
    pub async fn unmount(&self) -> Result<()> {
        self.shared.closed.store(true, Ordering::Release);
        let conns = self.shared.conns();
        let results = futures_util::future::join_all(conns.iter().map(|c| c.mount.umount())).await;
        results.into_iter().try_for_each(|r| r.map_err(map))
    }

    /// Runs a call that must not be repeated on the least busy connection.
    async fn once<T, Fut>(&self, call: impl FnOnce(Arc<dyn Mount>) -> Fut) -> Result<T>
    where
        Fut: Future<Output = std::result::Result<T, NfsError>>,
    {
        let conn = self.shared.pick()?;
        self.on(&conn, call).await
    }
}

fn created_in(h: &NfsHandle) -> Result<(&Bytes, &str)> {
    match &h.created_in {
        Some((dir, name)) => Ok((dir, name)),
        None => Err(BackendError::Failed(
            "only a created file can be published".into(),
        )),
    }
}

/// The handle of a directory (the export root for the empty path).
async fn lookup_dir(mount: &dyn Mount, dir: &FilePath) -> std::result::Result<Bytes, NfsError> {
    if dir.is_root() {
        Ok(mount.getfh().await)
    } else {
        Ok(mount.lookup_path(dir.as_str()).await?.fh)
    }
}

/// One page of `dir` read on one connection.
async fn list_on(
    mount: &dyn Mount,
    dir: &FilePath,
    cursor: Option<&str>,
    limit: usize,
) -> std::result::Result<ListPage, Fault> {
    let dir_fh = if dir.is_root() {
        mount.getfh().await
    } else {
        let obj = mount.lookup_path(dir.as_str()).await?;
        if obj.attr.as_ref().is_some_and(|a| a.type_ != NF_DIR) {
            return Err(BackendError::NotADirectory.into());
        }
        obj.fh
    };
    let (mut position, mut skip) = match cursor {
        Some(c) => decode_cursor(c).ok_or(Fault::from(BackendError::StaleCursor))?,
        None => (
            DirectoryCookie {
                cookie: 0,
                verifier: [0; 8],
            },
            0,
        ),
    };
    let mut entries = Vec::with_capacity(limit.min(1024));
    loop {
        let page = mount.readdirplus_page(dir_fh.clone(), position).await?;
        let available = page.entries.len().saturating_sub(skip);
        let wanted = limit - entries.len();
        for e in page.entries.iter().skip(skip).take(wanted) {
            let stat = match &e.attr {
                Some(a) => stat(a),
                None => Stat {
                    kind: EntryKind::Other,
                    size: 0,
                    modified: (0, 0),
                    file_id: 0,
                },
            };
            entries.push(DirEntry {
                name: e.file_name.clone(),
                stat,
            });
        }
        if available > wanted {
            // Stopped inside this server page: resume in it.
            let next = encode_cursor(position, skip + wanted);
            return Ok(ListPage {
                entries,
                next: Some(next),
            });
        }
        if page.eof {
            return Ok(ListPage {
                entries,
                next: None,
            });
        }
        position = page.next;
        skip = 0;
        if entries.len() == limit {
            return Ok(ListPage {
                entries,
                next: Some(encode_cursor(position, 0)),
            });
        }
    }
}

fn kind(type_: u32) -> EntryKind {
    match type_ {
        NF_REG => EntryKind::File,
        NF_DIR => EntryKind::Dir,
        NF_LNK => EntryKind::Symlink,
        _ => EntryKind::Other,
    }
}

fn stat(a: &nfs_rs::Attr) -> Stat {
    Stat {
        kind: kind(a.type_),
        size: a.filesize,
        modified: (u64::from(a.mtime.seconds), a.mtime.nseconds),
        file_id: a.fileid,
    }
}

fn encode_cursor(position: DirectoryCookie, skip: usize) -> String {
    let verifier: String = position
        .verifier
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("n{:016x}{verifier}{skip:x}", position.cookie)
}

fn decode_cursor(s: &str) -> Option<(DirectoryCookie, usize)> {
    let s = s.strip_prefix('n')?;
    if s.len() < 33 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let cookie = u64::from_str_radix(&s[..16], 16).ok()?;
    let mut verifier = [0u8; 8];
    for (i, b) in verifier.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[16 + 2 * i..18 + 2 * i], 16).ok()?;
    }
    let skip = usize::from_str_radix(&s[32..], 16).ok()?;
    Some((DirectoryCookie { cookie, verifier }, skip))
}

/// The handle names nothing any more (its file or directory was removed).
fn is_stale(e: &NfsError) -> bool {
    matches!(e, NfsError::Nfs4(Nfs4ErrorCode::NFS4ERR_STALE))
}

/// Sorts an `nfs-rs` error into what the router decides on.
fn map(e: NfsError) -> BackendError {
    if e.is_not_found() {
        return BackendError::NotFound;
    }
    if e.is_exist() {
        return BackendError::Exists;
    }
    if e.is_bad_directory_cookie() {
        return BackendError::StaleCursor;
    }
    use Nfs4ErrorCode as C;
    match &e {
        NfsError::Nfs4(code) => match code {
            C::NFS4ERR_NOTDIR => BackendError::NotADirectory,
            C::NFS4ERR_ISDIR => BackendError::IsADirectory,
            // OPEN of a symbolic link: the router does not follow links over NFS.
            C::NFS4ERR_SYMLINK | C::NFS4ERR_WRONG_TYPE => BackendError::NotAFile,
            C::NFS4ERR_NOTEMPTY => BackendError::NotEmpty,
            C::NFS4ERR_ACCESS | C::NFS4ERR_PERM | C::NFS4ERR_ROFS => BackendError::PermissionDenied,
            C::NFS4ERR_NOSPC | C::NFS4ERR_DQUOT => BackendError::NoSpace,
            // The server lost our session or client state (it restarted, or we were
            // silent past the lease): only a new mount recovers.
            C::NFS4ERR_BADSESSION
            | C::NFS4ERR_DEADSESSION
            | C::NFS4ERR_STALE_CLIENTID
            | C::NFS4ERR_EXPIRED
            | C::NFS4ERR_GRACE
            | C::NFS4ERR_FHEXPIRED
            | C::NFS4ERR_SERVERFAULT => BackendError::Unavailable(e.to_string()),
            _ => BackendError::Failed(e.to_string()),
        },
        // No authoritative answer: the transport failed, the server stayed busy past
        // nfs-rs's retries, or the client is closed.
        NfsError::Io(_)
        | NfsError::ServerBusy(_)
        | NfsError::Rpc(_)
        | NfsError::Xdr(_)
        | NfsError::ClientClosed(_)
        | NfsError::ClosedResource(_)
        | NfsError::LostOpenState(_)
        | NfsError::OperationOutcome(_) => BackendError::Unavailable(e.to_string()),
        _ => BackendError::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_paths_are_the_directory_and_what_is_below_it() {
        assert!(at_or_under(".efs-router", ".efs-router"));
        assert!(at_or_under(".efs-router/meta/0a", ".efs-router"));
        assert!(!at_or_under(".efs-router2/tmp", ".efs-router"));
        assert!(!at_or_under("bucket/.efs-router", ".efs-router"));
    }

    #[test]
    fn url_names_version_port_and_export() {
        assert_eq!(
            nfs_url("10.0.1.100", "/", 2049),
            "nfs://10.0.1.100/?version=4.1&noresvport=true&nfsport=2049"
        );
        assert_eq!(
            nfs_url("127.0.0.2", "/export", 12049),
            "nfs://127.0.0.2/export?version=4.1&noresvport=true&nfsport=12049"
        );
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let p = DirectoryCookie {
            cookie: 0xdead_beef_0000_0001,
            verifier: [1, 2, 3, 4, 5, 6, 7, 255],
        };
        let c = encode_cursor(p, 37);
        let (q, skip) = decode_cursor(&c).unwrap();
        assert_eq!((q.cookie, q.verifier, skip), (p.cookie, p.verifier, 37));
        for bad in [
            "",
            "n",
            "x0000000000000001",
            "nzz",
            &c[..20],
            "n00000000000000000000000000000000é",
        ] {
            assert!(decode_cursor(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn errors_are_sorted_by_who_failed() {
        assert_eq!(
            map(NfsError::Nfs4(Nfs4ErrorCode::NFS4ERR_NOENT)),
            BackendError::NotFound
        );
        assert_eq!(
            map(NfsError::Nfs4(Nfs4ErrorCode::NFS4ERR_EXIST)),
            BackendError::Exists
        );
        assert_eq!(
            map(NfsError::Nfs4(Nfs4ErrorCode::NFS4ERR_ISDIR)),
            BackendError::IsADirectory
        );
        assert!(map(NfsError::Nfs4(Nfs4ErrorCode::NFS4ERR_BADSESSION)).is_target_failure());
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(map(NfsError::Io(reset)).is_target_failure());
        assert!(!map(NfsError::Nfs4(Nfs4ErrorCode::NFS4ERR_ACCESS)).is_target_failure());
    }
}
