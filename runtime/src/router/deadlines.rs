//! How long a client may keep the router waiting, and how many may connect at once.
//!
//! Every byte a transfer holds comes from the shared budget (`transfer::Budget`), so a
//! client that stops reading a download, or stops sending an upload, must lose its
//! connection after a while, or a few such clients would hold the budget and stop every
//! other transfer. The limits, each on its own clock:
//!
//! - request head: hyper's header read timeout (`http1_builder`), which also closes
//!   keep-alive connections idle that long;
//! - request body: [`IdleBody`], no new bytes for [`BODY_IDLE`] fails the body;
//! - response: [`Stalls`], a write the client has not let through for [`WRITE_STALL`]
//!   fails the connection, which frees what its stream holds;
//! - connections: [`ConnectionCap`], at most so many at once, with file descriptors kept
//!   in reserve for the NFS and TLS connections to the targets.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// A request body that sends nothing for this long fails: the client is gone or stuck.
pub const BODY_IDLE: Duration = Duration::from_secs(30);

/// A response the client does not read for this long fails its connection.
pub const WRITE_STALL: Duration = Duration::from_secs(30);

/// A timer armed while something waits on the client and disarmed by progress.
#[derive(Debug)]
struct Stall {
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Stall {
    fn new(limit: Duration) -> Self {
        Stall { limit, timer: None }
    }

    /// After a poll that made progress.
    fn progressed(&mut self) {
        self.timer = None;
    }

    /// After a poll that is pending: whether the client has kept us waiting too long.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let limit = self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        timer.as_mut().poll(cx).is_ready()
    }
}

/// A request body whose frames must keep coming: [`BODY_IDLE`] without one fails it
/// (the handler sees a body error and answers, or the upload is discarded). The clock
/// runs only while the body is being waited for, so a handler busy elsewhere does not
/// count against the client.
#[derive(Debug)]
pub struct IdleBody<B> {
    inner: B,
    stall: Stall,
}

impl<B> IdleBody<B> {
    pub fn new(inner: B, limit: Duration) -> Self {
        IdleBody {
            inner,
            stall: Stall::new(limit),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError<E> {
    #[error("the client sent no data for {0} s")]
    Idle(u64),
    #[error(transparent)]
    Inner(E),
}

impl<B> http_body::Body for IdleBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = BodyError<B::Error>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.stall.progressed();
                Poll::Ready(frame.map(|f| f.map_err(BodyError::Inner)))
            }
            Poll::Pending if this.stall.expired(cx) => {
                Poll::Ready(Some(Err(BodyError::Idle(this.stall.limit.as_secs()))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A connection whose writes must drain: a write (or flush) the client has not let
/// through for the limit fails with `TimedOut`, and hyper drops the connection with
/// everything its response held. Reads pass through untouched: their limits are the
/// header timeout and [`IdleBody`].
#[derive(Debug)]
pub struct Stalls<T> {
    inner: T,
    stall: Stall,
}

impl<T> Stalls<T> {
    pub fn new(inner: T, limit: Duration) -> Self {
        Stalls {
            inner,
            stall: Stall::new(limit),
        }
    }

    fn check<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Ready(r) => {
                self.stall.progressed();
                Poll::Ready(r)
            }
            Poll::Pending if self.stall.expired(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client read nothing for {} s",
                    self.stall.limit.as_secs()
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Stalls<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Stalls<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.check(cx, polled)
    }
}

/// File descriptors kept for everything that is not a client connection: the NFS
/// connections to the targets and their TLS forwarders, reconnects, open files, logs.
pub const DESCRIPTORS_RESERVED: u64 = 256;

/// At most so many client connections at once. At the cap the router stops accepting
/// (new connections wait in the kernel's backlog) instead of running out of file
/// descriptors, which would also stop NFS and TLS reconnects.
#[derive(Debug, Clone)]
pub struct ConnectionCap {
    permits: Arc<Semaphore>,
    pub limit: usize,
}

impl ConnectionCap {
    /// `wanted`, lowered to what the descriptor limit leaves after the reserve. The soft
    /// limit is raised to the hard one first (Fargate's is 65535; a shell's is often
    /// 1024).
    pub fn new(wanted: usize) -> Self {
        let limit = match raise_descriptor_limit() {
            Ok(fds) => {
                let room =
                    usize::try_from(fds.saturating_sub(DESCRIPTORS_RESERVED)).unwrap_or(usize::MAX);
                if room < wanted {
                    tracing::warn!(
                        wanted,
                        allowed = room,
                        descriptors = fds,
                        "the open file limit allows fewer client connections than asked for"
                    );
                }
                wanted.min(room).max(1)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the open file limit; the connection cap is not checked against it");
                wanted
            }
        };
        ConnectionCap {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    /// A place for one connection, held until the connection ends.
    pub async fn admit(&self) -> OwnedSemaphorePermit {
        match self.permits.clone().acquire_owned().await {
            Ok(permit) => permit,
            // The semaphore is never closed.
            Err(_) => unreachable!("the connection cap semaphore was closed"),
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.limit - self.permits.available_permits()
    }
}

/// Raises the soft open-file limit to the hard one; returns the limit now in force.
fn raise_descriptor_limit() -> Result<u64, nix::Error> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
        return Ok(hard);
    }
    Ok(soft)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;
    use tokio::sync::mpsc;

    /// A body whose frames are what the test sends.
    fn body() -> (
        mpsc::Sender<Bytes>,
        impl http_body::Body<Data = Bytes, Error = io::Error> + Unpin,
    ) {
        let (tx, rx) = mpsc::channel::<Bytes>(1);
        let frames = futures_util::stream::unfold(rx, |mut rx| async move {
            let data = rx.recv().await?;
            Some((Ok(http_body::Frame::data(data)), rx))
        });
        (tx, http_body_util::StreamBody::new(Box::pin(frames)))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_sending_fails_after_the_limit() {
        let (tx, body) = body();
        let mut body = IdleBody::new(body, Duration::from_secs(30));
        tx.send(Bytes::from_static(b"first")).await.unwrap();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"first"));
        // Nothing more is sent: paused time runs ahead to the limit.
        let started = tokio::time::Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(matches!(err, BodyError::Idle(30)), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_keeps_sending_never_times_out() {
        let (tx, body) = body();
        let mut body = IdleBody::new(body, Duration::from_secs(30));
        tokio::spawn(async move {
            // 20 s between frames, 100 s in all: longer than the limit, never idle that long.
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                if tx.send(Bytes::from_static(b"x")).await.is_err() {
                    return;
                }
            }
        });
        let mut got = 0;
        while let Some(frame) = body.frame().await {
            got += frame.unwrap().into_data().unwrap().len();
        }
        assert_eq!(got, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_peer_never_reads_fails_the_connection() {
        // A pipe of 64 bytes whose other end is never read.
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut conn = Stalls::new(ours, Duration::from_secs(30));
        conn.write_all(&[0u8; 64]).await.unwrap();
        let err = conn.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_not_cut_off() {
        use tokio::io::AsyncReadExt;
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut conn = Stalls::new(ours, Duration::from_secs(30));
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let mut total = 0;
            while total < 64 * 10 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                total += theirs.read(&mut buf).await.unwrap();
            }
            total
        });
        for _ in 0..10 {
            conn.write_all(&[1u8; 64]).await.unwrap();
        }
        assert_eq!(reader.await.unwrap(), 640);
    }

    #[tokio::test]
    async fn the_cap_admits_no_more_than_its_limit() {
        let cap = ConnectionCap::new(2);
        let a = cap.admit().await;
        let _b = cap.admit().await;
        assert_eq!(cap.open(), 2);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), cap.admit())
                .await
                .is_err(),
            "a third connection was admitted"
        );
        drop(a);
        let _c = cap.admit().await;
        assert_eq!(cap.open(), 2);
    }
}
