//! Moving file contents between HTTP bodies and targets: pipelined, bounded in memory,
//! and (for reads) carried over to another target when one fails mid-stream.
//!
//! Throughput over NFS needs several calls in flight per stream (one 1 MiB call at a
//! time leaves the link idle for a round trip per MiB); memory needs a cap however many
//! streams run. Both come from one [`Budget`]: every chunk in flight holds its size in
//! permits of a process-wide semaphore, and each stream has at most [`DEPTH`] chunks in
//! flight. One stream alone gets full depth; many streams share the budget fairly (the
//! semaphore is first come, first served) and RSS stays bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;

use futures_util::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::{JoinError, JoinHandle};

use super::backend::{BackendError, Client, Handle, Stat, WriteAck};
use super::path::FilePath;
use super::pool::{Pool, Target};

/// Chunks in flight per stream.
pub const DEPTH: usize = 8;

/// The bytes all streams together may hold in flight.
///
/// A stream that holds nothing waits its turn for what it needs (first come, first
/// served), so every stream makes progress. A stream that already holds some takes more
/// only while a quarter of the budget would stay free: a stream whose client stopped
/// reading keeps at most what it took while there was room, and a new stream always
/// finds budget to start. What stalled streams still hold goes back when their
/// connections time out (`router::deadlines`).
#[derive(Debug, Clone)]
pub struct Budget {
    inner: Arc<BudgetInner>,
}

#[derive(Debug)]
struct BudgetInner {
    permits: Arc<Semaphore>,
    bytes: usize,
    reserve: usize,
    /// Streams waiting for budget right now.
    waiting: AtomicUsize,
    /// When budget was last handed out, in ms since `epoch`.
    granted_ms: AtomicU64,
    epoch: Instant,
}

impl Budget {
    pub fn new(bytes: usize) -> Self {
        Budget {
            inner: Arc::new(BudgetInner {
                permits: Arc::new(Semaphore::new(bytes)),
                bytes,
                reserve: bytes / 4,
                waiting: AtomicUsize::new(0),
                granted_ms: AtomicU64::new(0),
                epoch: Instant::now(),
            }),
        }
    }

    /// A chunk larger than the whole budget would wait forever: cap it.
    fn permits_for(&self, n: usize) -> u32 {
        u32::try_from(n.min(self.inner.bytes)).unwrap_or(u32::MAX)
    }

    fn granted(&self) {
        let ms = u64::try_from(self.inner.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.inner.granted_ms.store(ms, AtomicOrdering::Relaxed);
    }

    /// Waits for `n` bytes of budget: for a stream that holds none.
    async fn take(&self, n: usize) -> OwnedSemaphorePermit {
        let permits = self.permits_for(n);
        if let Ok(permit) = self.inner.permits.clone().try_acquire_many_owned(permits) {
            self.granted();
            return permit;
        }
        self.inner.waiting.fetch_add(1, AtomicOrdering::Relaxed);
        let acquired = self.inner.permits.clone().acquire_many_owned(permits).await;
        self.inner.waiting.fetch_sub(1, AtomicOrdering::Relaxed);
        self.granted();
        match acquired {
            Ok(permit) => permit,
            // The semaphore is never closed.
            Err(_) => unreachable!("the transfer budget semaphore was closed"),
        }
    }

    /// `n` more bytes for a stream that already holds some, if a quarter of the budget
    /// stays free after.
    fn take_more(&self, n: usize) -> Option<OwnedSemaphorePermit> {
        let permits = self.permits_for(n);
        if self.inner.permits.available_permits() < permits as usize + self.inner.reserve {
            return None;
        }
        let permit = self
            .inner
            .permits
            .clone()
            .try_acquire_many_owned(permits)
            .ok()?;
        self.granted();
        Some(permit)
    }

    /// How long streams have been waiting with no budget handed to anyone: `None` when
    /// none waits. Transfers that progress hand budget out all the time; a long time
    /// here means every byte of it is held by streams that do not move.
    pub fn starved_for(&self) -> Option<Duration> {
        if self.inner.waiting.load(AtomicOrdering::Relaxed) == 0 {
            return None;
        }
        let granted = Duration::from_millis(self.inner.granted_ms.load(AtomicOrdering::Relaxed));
        Some(self.inner.epoch.elapsed().saturating_sub(granted))
    }
}

/// Bytes whose budget permit is released when the last reference is dropped, wherever
/// that happens (in hyper, after the frame is written).
fn with_permit(data: Bytes, permit: OwnedSemaphorePermit) -> Bytes {
    struct Held {
        data: Bytes,
        _permit: OwnedSemaphorePermit,
    }
    impl AsRef<[u8]> for Held {
        fn as_ref(&self) -> &[u8] {
            &self.data
        }
    }
    Bytes::from_owner(Held {
        data,
        _permit: permit,
    })
}

/// Where a read is served from.
#[derive(Debug, Clone)]
pub struct Source {
    pub target: Arc<Target>,
    pub client: Arc<Client>,
    pub handle: Arc<Handle>,
}

/// Streams `[start, end)` of a file opened on `source`, whose stat was `stat`. When the
/// target fails, the stream continues from the first unsent byte on the next target that
/// has the same file (same file id and size), so a client sees no error for a failure the
/// router can hide.
pub fn read_stream(
    pool: Arc<Pool>,
    budget: Budget,
    path: FilePath,
    stat: Stat,
    source: Source,
    start: u64,
    end: u64,
) -> ReadStream {
    // Each chunk carries its permit inside (see `with_permit`), so the budget covers it
    // until hyper has written it out and freed it.
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        let mut source = source;
        let mut next = start;
        let mut tried = vec![source.target.spec.key.clone()];
        'sources: loop {
            let chunk = source.client.chunk_size() as u64;
            let mut inflight = Tasks::default();
            let mut issued = next;
            loop {
                while inflight.len() < DEPTH && issued < end {
                    let len = (end - issued).min(chunk) as usize;
                    // Completed reads keep their permits until they are sent, so a
                    // stream waits for budget only when it holds none: otherwise every
                    // stream could hold permits while waiting for more.
                    let permit = if inflight.is_empty() {
                        budget.take(len).await
                    } else {
                        match budget.take_more(len) {
                            Some(permit) => permit,
                            None => break,
                        }
                    };
                    let (s, at) = (source.clone(), issued);
                    inflight.push(tokio::spawn(async move {
                        let data = s.target.call(s.client.read(&s.handle, at, len)).await;
                        (data, len, permit)
                    }));
                    issued += len as u64;
                }
                let Some(done) = inflight.next().await else {
                    break 'sources;
                };
                let (result, len, permit) = match done {
                    Ok(done) => done,
                    Err(e) => {
                        tracing::warn!(%path, error = %e, "a read task failed");
                        let e = std::io::Error::other(format!("a read task failed: {e}"));
                        let _ = tx.send(Err(e)).await;
                        break 'sources;
                    }
                };
                // NFS lets a server answer a READ with fewer bytes than asked for, not only
                // at the end of the file: the rest of the chunk is read before it is sent.
                let result = match result {
                    Ok(data) if data.len() < len && !data.is_empty() => {
                        rest_of_chunk(&source, data, next, len).await
                    }
                    other => other,
                };
                match result {
                    Ok(data) if data.len() == len => {
                        source.target.stats.add_read(data.len());
                        next += len as u64;
                        if tx.send(Ok(with_permit(data, permit))).await.is_err() {
                            break 'sources; // The client went away.
                        }
                    }
                    Ok(data) => {
                        // The file shrank under us: what was promised cannot be sent.
                        let e = format!(
                            "{path} changed while being read ({} bytes short at {next})",
                            len - data.len()
                        );
                        tracing::warn!(%path, error = %e, "a read was cut short");
                        let _ = tx.send(Err(std::io::Error::other(e))).await;
                        break 'sources;
                    }
                    Err(e) if e.is_target_failure() => {
                        pool.report(&source.target, &source.client, &e);
                        drop(inflight); // the reads still running there finish unheard
                        source.client.close(&source.handle).await;
                        match failover(&pool, &path, &stat, &mut tried).await {
                            Some(s) => {
                                tracing::info!(%path, from = %tried[tried.len() - 2], to = %s.target.spec.address, offset = next, "read continues on another target");
                                source = s;
                                continue 'sources;
                            }
                            None => {
                                let _ = tx.send(Err(std::io::Error::other(e))).await;
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%path, offset = next, error = %e, "a read failed; the response is cut short");
                        let _ = tx.send(Err(std::io::Error::other(e))).await;
                        break 'sources;
                    }
                }
            }
        }
        source.client.close(&source.handle).await;
    });
    ReadStream(rx)
}

/// A read's chunks, in order, as the reading task sends them.
#[derive(Debug)]
pub struct ReadStream(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl Stream for ReadStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// Completes a chunk of `len` bytes at `at` whose READ returned only `first`: reads on
/// until it is whole or the file ends (then it comes back short, as the file shrank).
async fn rest_of_chunk(
    source: &Source,
    first: Bytes,
    at: u64,
    len: usize,
) -> Result<Bytes, BackendError> {
    let mut whole = BytesMut::with_capacity(len);
    whole.extend_from_slice(&first);
    while whole.len() < len {
        let more = source
            .target
            .call(
                source
                    .client
                    .read(&source.handle, at + whole.len() as u64, len - whole.len()),
            )
            .await?;
        if more.is_empty() {
            break;
        }
        whole.extend_from_slice(&more);
    }
    Ok(whole.freeze())
}

/// The next-ranked target not yet tried that has the same file open for reading.
async fn failover(
    pool: &Arc<Pool>,
    path: &FilePath,
    stat: &Stat,
    tried: &mut Vec<String>,
) -> Option<Source> {
    for (target, client) in pool.ranked(path.as_str()) {
        if tried.contains(&target.spec.key) {
            continue;
        }
        tried.push(target.spec.key.clone());
        match target.call(client.open_read(path)).await {
            Ok((handle, now)) if now.file_id == stat.file_id && now.size == stat.size => {
                return Some(Source {
                    target,
                    client,
                    handle: Arc::new(handle),
                });
            }
            Ok((handle, _)) => client.close(&handle).await,
            Err(e) => pool.report(&target, &client, &e),
        }
    }
    None
}

/// Why an upload failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Backend(#[from] BackendError),
    #[error("the request body ended early: {0}")]
    Body(String),
}

/// A body written and committed under a temporary name, not yet visible under its
/// final one.
#[derive(Debug)]
pub struct Staged {
    pub handle: Handle,
    pub temp: FilePath,
    pub size: u64,
    /// The file after its last write, when [`stage`] was asked to `describe` it.
    pub stat: Option<Stat>,
}

/// Writes `body` to a new file at `temp` (its directory made when missing) and commits
/// it; `observe` sees every byte in order (digests). Publishing it is the caller's: a
/// rename or link of [`Staged::handle`], which readers see all at once. A failed upload
/// leaves nothing behind. With `describe`, the staged file's attributes come back too
/// (its id names a sidecar), fetched beside the commit.
#[allow(clippy::too_many_arguments)]
pub async fn stage<S, E>(
    budget: &Budget,
    target: &Arc<Target>,
    client: &Arc<Client>,
    temp: &FilePath,
    content_length: Option<u64>,
    body: S,
    observe: &mut (dyn FnMut(&Bytes) + Send),
    describe: bool,
) -> Result<Staged, WriteError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    if let Some(n) = content_length
        && n <= WHOLE_MAX as u64
    {
        return stage_whole(
            budget, target, client, temp, n as usize, body, observe, describe,
        )
        .await;
    }
    let handle = with_parents(target, client, temp, || target.call(client.create(temp))).await?;
    let handle = Arc::new(handle);
    let written = write_body(
        budget,
        target,
        client,
        &handle,
        content_length,
        body,
        observe,
    )
    .await;
    let finished = match written {
        Ok((size, acks)) => target
            .call(client.commit(&handle, acks, describe))
            .await
            .map(|stat| (size, stat))
            .map_err(WriteError::from),
        Err(e) => {
            client.close(&handle).await;
            Err(e)
        }
    };
    match finished {
        Ok((size, stat)) => match Arc::try_unwrap(handle) {
            Ok(handle) => Ok(Staged {
                handle,
                temp: temp.clone(),
                size,
                stat,
            }),
            // Every write task has finished by now; a handle still shared is a bug.
            Err(_) => {
                discard(target, client, temp).await;
                Err(BackendError::Failed("an upload's file handle is still in use".into()).into())
            }
        },
        Err(e) => {
            discard(target, client, temp).await;
            Err(e)
        }
    }
}

/// Bodies up to this size are received whole, then written in one call (sidecars, small
/// objects): on the `dir` backend that is one trip to the blocking pool instead of four.
const WHOLE_MAX: usize = 64 << 10;

/// [`stage`] for a small body of a declared length: received first, then created,
/// written, committed (and described) by [`Client::create_whole`].
#[allow(clippy::too_many_arguments)]
async fn stage_whole<S, E>(
    budget: &Budget,
    target: &Arc<Target>,
    client: &Arc<Client>,
    temp: &FilePath,
    declared: usize,
    mut body: S,
    observe: &mut (dyn FnMut(&Bytes) + Send),
    describe: bool,
) -> Result<Staged, WriteError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    // Budget is taken once the bytes are here, as for larger bodies: a client trickling
    // a small body holds no more than a connection's read buffer meanwhile.
    let mut data = BytesMut::with_capacity(declared);
    while let Some(frame) = body.next().await {
        let frame = frame.map_err(|e| WriteError::Body(e.to_string()))?;
        if data.len() + frame.len() > declared {
            // More than declared (the HTTP layer does not let that happen).
            return Err(WriteError::Body(format!(
                "the body is longer than its declared {declared} bytes"
            )));
        }
        data.extend_from_slice(&frame);
    }
    let permit = budget.take(data.len()).await;
    let data = with_permit(data.freeze(), permit);
    observe(&data);
    let size = data.len() as u64;
    target.stats.add_written(data.len());
    let created = with_parents(target, client, temp, || {
        target.call(client.create_whole(temp, data.clone(), describe))
    })
    .await;
    match created {
        Ok((handle, stat)) => Ok(Staged {
            handle,
            temp: temp.clone(),
            size,
            stat,
        }),
        Err(e) => {
            discard(target, client, temp).await;
            Err(e.into())
        }
    }
}

/// Removes a temporary file, best effort: one left by a dead target stays under the
/// reserved directory, where no client sees it, until the janitor removes it by age.
pub async fn discard(target: &Target, client: &Client, temp: &FilePath) {
    if let Err(e) = target.call(client.remove(temp)).await
        && e != BackendError::NotFound
    {
        tracing::warn!(temp = %temp, error = %e, "could not remove a temporary file");
    }
}

async fn write_body<S, E>(
    budget: &Budget,
    target: &Arc<Target>,
    client: &Arc<Client>,
    handle: &Arc<Handle>,
    content_length: Option<u64>,
    mut body: S,
    observe: &mut (dyn FnMut(&Bytes) + Send),
) -> Result<(u64, Vec<WriteAck>), WriteError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let chunk = client.chunk_size();
    let mut acks = Vec::new();
    // Dropped on any early return: the writes still running stop.
    let mut inflight = Tasks::default();
    // Bytes that arrived and have no budget yet (a slice of a body frame, no copy).
    let mut arrived = Bytes::new();
    // The chunk being filled, and the budget for the bytes in it: budget is taken only
    // for bytes that arrived, so a client trickling its body holds next to none.
    let mut filling: Option<(BytesMut, OwnedSemaphorePermit)> = None;
    let mut offset = 0u64;
    let mut ended = false;
    let mut write = |data: BytesMut,
                     permit: OwnedSemaphorePermit,
                     inflight: &mut Tasks<_>,
                     offset: &mut u64| {
        // The chunk carries its permit: an observer that keeps a reference (a digest
        // thread behind the writes) holds the chunk's budget until it lets go.
        let data = with_permit(data.freeze(), permit);
        observe(&data);
        let at = *offset;
        *offset += data.len() as u64;
        target.stats.add_written(data.len());
        let (target, client, handle) = (target.clone(), client.clone(), handle.clone());
        inflight.push(tokio::spawn(async move {
            target.call(client.write(&handle, at, data)).await
        }));
    };
    loop {
        if inflight.len() >= DEPTH
            && let Some(done) = inflight.next().await
        {
            acks.push(acknowledged(done)?);
        }
        if arrived.is_empty() {
            if ended {
                if let Some((data, permit)) = filling.take() {
                    write(data, permit, &mut inflight, &mut offset);
                }
                break;
            }
            // How long a client may keep the body waiting is the connection's concern
            // (`router::deadlines`), not this loop's.
            match body.next().await {
                Some(Ok(data)) => arrived = data,
                Some(Err(e)) => return Err(WriteError::Body(e.to_string())),
                None => ended = true,
            }
            continue;
        }
        let filled = filling.as_ref().map_or(0, |(data, _)| data.len());
        // One allocation of exactly the chunk (or what is left of a declared length): a
        // growing buffer would double its capacity.
        let size = match content_length {
            Some(total) => chunk.min(
                usize::try_from(total.saturating_sub(offset))
                    .unwrap_or(chunk)
                    .max(filled + 1),
            ),
            None => chunk,
        };
        let n = (size - filled).min(arrived.len());
        let permit = if filling.is_none() && inflight.is_empty() {
            Some(budget.take(n).await)
        } else {
            budget.take_more(n)
        };
        let Some(permit) = permit else {
            // No room while holding some: write what is filled (a short write) or wait
            // for the oldest write, so budget comes back; never hold budget while
            // waiting for more.
            match filling.take() {
                Some((data, held)) => write(data, held, &mut inflight, &mut offset),
                None => {
                    if let Some(done) = inflight.next().await {
                        acks.push(acknowledged(done)?);
                    }
                }
            }
            continue;
        };
        let bytes = arrived.split_to(n);
        let full = match &mut filling {
            Some((data, held)) => {
                data.extend_from_slice(&bytes);
                held.merge(permit);
                data.len() >= size
            }
            None => {
                let mut data = BytesMut::with_capacity(size);
                data.extend_from_slice(&bytes);
                let full = data.len() >= size;
                filling = Some((data, permit));
                full
            }
        };
        if full && let Some((data, permit)) = filling.take() {
            write(data, permit, &mut inflight, &mut offset);
        }
    }
    while let Some(done) = inflight.next().await {
        acks.push(acknowledged(done)?);
    }
    Ok((offset, acks))
}

fn acknowledged(
    done: Result<Result<WriteAck, BackendError>, JoinError>,
) -> Result<WriteAck, WriteError> {
    match done {
        Ok(ack) => Ok(ack?),
        Err(e) => Err(BackendError::Failed(format!("a write task failed: {e}")).into()),
    }
}

/// Chunk tasks in the order they were issued. Each runs on its own, so it progresses
/// while the stream waits for budget, the body or the consumer. Dropping the queue
/// (the stream failed, moved to another target, or its client left) lets the calls still
/// running finish and discards their results: an NFS call cancelled halfway through
/// sending its request would leave a partial RPC frame, and nfs-rs then shuts the whole
/// connection down, failing every other request on it.
#[derive(Debug)]
struct Tasks<T>(VecDeque<JoinHandle<T>>);

impl<T> Default for Tasks<T> {
    fn default() -> Self {
        Tasks(VecDeque::new())
    }
}

impl<T> Tasks<T> {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn push(&mut self, task: JoinHandle<T>) {
        self.0.push_back(task);
    }

    /// The oldest task's result.
    async fn next(&mut self) -> Option<Result<T, JoinError>> {
        Some(self.0.pop_front()?.await)
    }
}

/// Creates the directories above `path`, top down; ones that exist are fine.
/// Runs `create` (of `path`); when its directory is missing, makes the directories and
/// runs it again.
async fn with_parents<T, Fut>(
    target: &Target,
    client: &Client,
    path: &FilePath,
    create: impl Fn() -> Fut,
) -> Result<T, BackendError>
where
    Fut: std::future::Future<Output = Result<T, BackendError>>,
{
    match create().await {
        Err(BackendError::NotFound) => {
            make_parents(target, client, path).await?;
            create().await
        }
        other => other,
    }
}

pub async fn make_parents(
    target: &Target,
    client: &Client,
    path: &FilePath,
) -> Result<(), BackendError> {
    for dir in path.ancestors() {
        match target.call(client.mkdir(&dir)).await {
            Ok(()) | Err(BackendError::Exists) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::router::backend::{BackendKind, NfsOptions};
    use crate::router::pool::{Backoff, Connector, TargetSpec};

    /// A pool of one `dir` target at `root` (the dir backend's chunk is 1 MiB).
    async fn dir_pool(root: &std::path::Path) -> Arc<Pool> {
        let connector = Connector {
            kind: BackendKind::Dir,
            nfs: NfsOptions {
                export: "/".into(),
                port: 2049,
                tls: None,
                connections: crate::router::backend::Connections::Fixed(1),
                connect_timeout: Duration::from_secs(5),
                private_dir: None,
            },
            mount_root: PathBuf::from("/mnt"),
            connect_timeout: Duration::from_secs(5),
            op_timeout: Duration::from_secs(5),
        };
        let backoff = Backoff {
            first: Duration::from_millis(50),
            max: Duration::from_secs(1),
        };
        Pool::start(
            vec![TargetSpec::address_only(root.to_string_lossy())],
            connector,
            backoff,
            crate::router::routing::Routing::default(),
        )
        .await
        .unwrap()
    }

    /// Opens `name` for reading and streams it whole.
    async fn read_whole(pool: &Arc<Pool>, budget: &Budget, name: &str) -> ReadStream {
        let path = FilePath::parse(name).unwrap();
        let (target, client) = pool.ranked(path.as_str()).remove(0);
        let (handle, stat) = client.open_read(&path).await.unwrap();
        let size = stat.size;
        let source = Source {
            target,
            client,
            handle: Arc::new(handle),
        };
        read_stream(pool.clone(), budget.clone(), path, stat, source, 0, size)
    }

    /// Starvation is time with a stream waiting and nothing handed out, not time busy.
    #[tokio::test]
    async fn starvation_is_reported_only_while_nothing_is_handed_out() {
        let budget = Budget::new(1000);
        assert_eq!(budget.starved_for(), None);
        let all = budget.take(1000).await;
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { drop(budget.take(10).await) }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let starved = budget.starved_for().expect("a stream waits");
        assert!(starved >= Duration::from_millis(200), "{starved:?}");
        drop(all);
        waiter.await.unwrap();
        assert_eq!(budget.starved_for(), None);
    }

    /// Downloads whose clients stopped reading keep what they took while there was
    /// room, never the quarter kept free: a download started beside them finishes.
    /// (Before the reserve, two such streams took every byte of a 16 MiB budget and the
    /// third waited until they were dropped.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stalled_downloads_leave_room_for_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        const MIB: usize = 1 << 20;
        let data: Vec<u8> = (0..20 * MIB).map(|i| (i % 249) as u8).collect();
        std::fs::write(dir.path().join("big"), &data).unwrap();
        let pool = dir_pool(dir.path()).await;
        let budget = Budget::new(16 * MIB);
        // Three clients that read nothing: their streams are kept, never polled.
        let mut stalled = Vec::new();
        for _ in 0..3 {
            stalled.push(read_whole(&pool, &budget, "big").await);
        }
        // Give their reads time to take what they can.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let fresh = async {
            let mut stream = read_whole(&pool, &budget, "big").await;
            let mut got = Vec::with_capacity(data.len());
            while let Some(chunk) = stream.next().await {
                got.extend_from_slice(&chunk.unwrap());
            }
            got
        };
        let got = tokio::time::timeout(Duration::from_secs(30), fresh)
            .await
            .expect("a new download waited behind stalled ones");
        assert!(got == data);
        assert!(budget.starved_for().is_none());
        drop(stalled);
    }

    /// A small body of a declared length is received whole and written in one call:
    /// every byte observed in order, missing directories made, the file described; one
    /// longer than declared is refused and leaves nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_body_is_staged_whole() {
        let dir = tempfile::tempdir().unwrap();
        let pool = dir_pool(dir.path()).await;
        let budget = Budget::new(1 << 20);
        let (target, client) = pool.ranked("x").remove(0);
        let frames = [b"hello ".as_slice(), b"world"]
            .map(|f| Ok::<_, std::io::Error>(Bytes::from_static(f)));
        let mut seen = Vec::new();
        let temp = FilePath::parse("new/dir/small").unwrap();
        let staged = stage(
            &budget,
            &target,
            &client,
            &temp,
            Some(11),
            futures_util::stream::iter(frames),
            &mut |d| seen.extend_from_slice(d),
            true,
        )
        .await
        .unwrap();
        assert_eq!(seen, b"hello world");
        assert_eq!(staged.size, 11);
        let on_disk = dir.path().join("new/dir/small");
        assert_eq!(std::fs::read(&on_disk).unwrap(), b"hello world");
        let stat = staged.stat.as_ref().expect("described when asked");
        assert_eq!(
            (stat.size, stat.file_id),
            (11, std::fs::metadata(&on_disk).unwrap().ino())
        );
        client.close(&staged.handle).await;

        let long = FilePath::parse("new/dir/long").unwrap();
        let refused = stage(
            &budget,
            &target,
            &client,
            &long,
            Some(3),
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"four"))]),
            &mut |_| {},
            false,
        )
        .await;
        assert!(matches!(refused, Err(WriteError::Body(_))), "{refused:?}");
        assert!(!dir.path().join("new/dir/long").exists());
    }

    /// Uploads whose clients send a few bytes and then nothing hold budget for those
    /// bytes only: an upload started beside sixteen of them finishes. (Before, each
    /// took a whole chunk of budget ahead of its bytes, and sixteen took it all.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn trickling_uploads_leave_room_for_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        const MIB: usize = 1 << 20;
        let pool = dir_pool(dir.path()).await;
        let budget = Budget::new(16 * MIB);
        let (target, client) = pool.ranked("x").remove(0);
        let mut trickling = Vec::new();
        for i in 0..16 {
            let (budget, target, client) = (budget.clone(), target.clone(), client.clone());
            trickling.push(tokio::spawn(async move {
                let body = futures_util::stream::iter([Ok::<_, std::io::Error>(
                    Bytes::from_static(b"ten bytes!"),
                )])
                .chain(futures_util::stream::pending());
                let temp = FilePath::parse(&format!("t{i}")).unwrap();
                let _ = stage(
                    &budget,
                    &target,
                    &client,
                    &temp,
                    Some(1 << 30),
                    Box::pin(body),
                    &mut |_| {},
                    false,
                )
                .await;
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let data: Vec<u8> = (0..5 * MIB + 7).map(|i| (i % 241) as u8).collect();
        let frames: Vec<Result<Bytes, std::io::Error>> = data
            .chunks(64 << 10)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let temp = FilePath::parse("fresh").unwrap();
        let staged = tokio::time::timeout(
            Duration::from_secs(30),
            stage(
                &budget,
                &target,
                &client,
                &temp,
                Some(data.len() as u64),
                futures_util::stream::iter(frames),
                &mut |_| {},
                true,
            ),
        )
        .await
        .expect("a new upload waited behind trickling ones")
        .unwrap();
        assert_eq!(staged.size, data.len() as u64);
        let stat = staged.stat.as_ref().expect("described when asked");
        assert_eq!(stat.size, data.len() as u64);
        assert_eq!(
            stat.file_id,
            std::fs::metadata(dir.path().join("fresh")).unwrap().ino()
        );
        client.close(&staged.handle).await;
        assert!(std::fs::read(dir.path().join("fresh")).unwrap() == data);
        for t in trickling {
            t.abort();
        }
    }

    /// Many streams over a budget of a few chunks, all consumed at once: every stream
    /// must finish (a stream holding completed chunks while waiting for more budget
    /// deadlocked them all once) and every byte must arrive in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_streams_share_a_small_budget_without_deadlock() {
        let dir = tempfile::tempdir().unwrap();
        const MIB: usize = 1 << 20; // the dir backend's chunk
        let size = 3 * MIB + 12_345;
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        for i in 0..16 {
            std::fs::write(dir.path().join(format!("f{i}")), &data).unwrap();
        }
        let pool = dir_pool(dir.path()).await;
        let budget = Budget::new(2 * MIB);
        let readers = (0..16).map(|i| {
            let (pool, budget) = (pool.clone(), budget.clone());
            async move {
                let path = FilePath::parse(&format!("f{i}")).unwrap();
                let (target, client) = pool.ranked(path.as_str()).remove(0);
                let (handle, stat) = client.open_read(&path).await.unwrap();
                let source = Source {
                    target,
                    client,
                    handle: Arc::new(handle),
                };
                let mut stream = Box::pin(read_stream(
                    pool,
                    budget,
                    path,
                    stat,
                    source,
                    0,
                    size as u64,
                ));
                let mut got = Vec::with_capacity(size);
                while let Some(chunk) = stream.next().await {
                    got.extend_from_slice(&chunk.unwrap());
                }
                got
            }
        });
        let all = tokio::time::timeout(
            Duration::from_secs(30),
            futures_util::future::join_all(readers),
        )
        .await
        .expect("streams deadlocked on the shared budget");
        for got in all {
            assert!(got == data);
        }
    }
}
