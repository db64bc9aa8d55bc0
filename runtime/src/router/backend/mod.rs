//! How the router reaches one mount target: a [`Client`] per target, over one of three
//! backends.
//!
//! - `nfs`: a userspace NFSv4.1 client (`nfs-rs`) to the target's IP. The only one that
//!   works on Fargate, which cannot call `mount(2)` (docs/architecture.md).
//! - `kernel`: the kernel's NFS client, mounted at `/mnt/efs-N` with the EFS mount
//!   options, then used as local files. For EC2 hosts and privileged containers.
//! - `dir`: local directories, for development and tests.
//!
//! The client exposes the few primitives the router needs (stat, read and write at an
//! offset, create, rename, remove, list a page) and bounds every call with the
//! operation timeout, so a frozen server costs a request its timeout, never a hang.
//! Errors say whether the *target* failed (mark it down, try the next one) or the
//! request did (not found, exists, ...), which is all the layers above decide on.

mod kernel;
mod local;
mod nfs;

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

pub use kernel::{KernelMount, mount_options};
pub use local::LocalClient;
pub use nfs::{Connections, NfsClient, NfsOptions, nfs_url};

use super::path::FilePath;

/// Entries per call when a whole directory is read over NFS.
const LIST_BATCH: usize = 16_384;

/// Which backend, from `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Nfs,
    Kernel,
    Dir,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    Exists,
    #[error("is a directory")]
    IsADirectory,
    #[error("not a regular file (a symbolic link, device or FIFO)")]
    NotAFile,
    #[error("a parent is not a directory")]
    NotADirectory,
    #[error("directory not empty")]
    NotEmpty,
    #[error("permission denied by the file system")]
    PermissionDenied,
    #[error("no space left (or quota exceeded) on the file system")]
    NoSpace,
    #[error("the listing cursor is no longer valid; start the listing again")]
    StaleCursor,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The target cannot be reached or its connection broke.
    #[error("target unavailable: {0}")]
    Unavailable(String),
    /// The target answered with an error that is not the request's fault.
    #[error("file system error: {0}")]
    Failed(String),
}

impl BackendError {
    /// A failure of the target itself: mark it down and use another one.
    pub fn is_target_failure(&self) -> bool {
        matches!(
            self,
            BackendError::Timeout(_) | BackendError::Unavailable(_)
        )
    }
}

pub type Result<T> = std::result::Result<T, BackendError>;

/// What a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub kind: EntryKind,
    pub size: u64,
    /// Seconds and nanoseconds since the epoch.
    pub modified: (u64, u32),
    /// The file's identity on the file system (inode / NFS fileid): a read that moves to
    /// another target mid-stream checks it is still reading the same file.
    pub file_id: u64,
}

/// One name in a directory, with its attributes (READDIRPLUS brings them in the same
/// round trip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub stat: Stat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    pub entries: Vec<DirEntry>,
    /// Opaque; pass back to continue. `None` at the end.
    pub next: Option<String>,
}

/// A file open for reading or writing on one target.
#[derive(Debug)]
pub enum Handle {
    Nfs(nfs::NfsHandle),
    Local(local::LocalHandle),
}

/// The server's acknowledgement of one write, kept until the file is committed.
#[derive(Debug)]
pub enum WriteAck {
    Nfs(Vec<nfs_rs::WriteOutcome>),
    Local,
}

/// A connected target.
#[derive(Debug)]
pub enum Client {
    Nfs(NfsClient),
    Local(LocalClient),
}

/// Runs a backend call under the operation timeout.
async fn bounded<T>(timeout: Duration, call: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or(Err(BackendError::Timeout(timeout)))
}

macro_rules! dispatch {
    ($self:ident, $c:ident => $call:expr) => {
        match $self {
            Client::Nfs($c) => bounded($c.timeout(), $call).await,
            Client::Local($c) => bounded($c.timeout(), $call).await,
        }
    };
}

impl Client {
    /// The largest read or write one call should carry.
    pub fn chunk_size(&self) -> usize {
        match self {
            Client::Nfs(c) => c.chunk_size(),
            Client::Local(_) => local::CHUNK,
        }
    }

    /// A cheap round trip proving the target answers.
    pub async fn probe(&self) -> Result<()> {
        dispatch!(self, c => c.probe())
    }

    pub async fn stat(&self, path: &FilePath) -> Result<Stat> {
        dispatch!(self, c => c.stat(path))
    }

    /// Opens a file for reading; the stat comes in the same round trip.
    pub async fn open_read(&self, path: &FilePath) -> Result<(Handle, Stat)> {
        dispatch!(self, c => c.open_read(path))
    }

    pub async fn read(&self, handle: &Handle, offset: u64, len: usize) -> Result<Bytes> {
        match (self, handle) {
            (Client::Nfs(c), Handle::Nfs(h)) => bounded(c.timeout(), c.read(h, offset, len)).await,
            (Client::Local(c), Handle::Local(h)) => {
                bounded(c.timeout(), c.read(h, offset, len)).await
            }
            _ => Err(mismatch()),
        }
    }

    /// Creates (or truncates) `path` for writing; its directory must exist.
    pub async fn create(&self, path: &FilePath) -> Result<Handle> {
        dispatch!(self, c => c.create(path))
    }

    pub async fn write(&self, handle: &Handle, offset: u64, data: Bytes) -> Result<WriteAck> {
        match (self, handle) {
            (Client::Nfs(c), Handle::Nfs(h)) => {
                bounded(c.timeout(), c.write(h, offset, data)).await
            }
            (Client::Local(c), Handle::Local(h)) => {
                bounded(c.timeout(), c.write(h, offset, data)).await
            }
            _ => Err(mismatch()),
        }
    }

    /// Creates (or truncates) `path` holding `data`, durable and closed, in as few calls
    /// as the backend allows (the `dir` backend: one); with `describe`, the file's
    /// attributes too. The handle publishes it.
    pub async fn create_whole(
        &self,
        path: &FilePath,
        data: Bytes,
        describe: bool,
    ) -> Result<(Handle, Option<Stat>)> {
        match self {
            Client::Local(c) => bounded(c.timeout(), c.create_whole(path, data, describe)).await,
            Client::Nfs(_) => {
                let handle = self.create(path).await?;
                let ack = match self.write(&handle, 0, data).await {
                    Ok(ack) => ack,
                    Err(e) => {
                        self.close(&handle).await;
                        return Err(e);
                    }
                };
                let stat = self.commit(&handle, vec![ack], describe).await?;
                Ok((handle, stat))
            }
        }
    }

    /// Makes every acknowledged write durable and closes the file; with `describe`, also
    /// returns the file's attributes after its last write (NFS asks for them beside the
    /// COMMIT, not after it).
    pub async fn commit(
        &self,
        handle: &Handle,
        acks: Vec<WriteAck>,
        describe: bool,
    ) -> Result<Option<Stat>> {
        match (self, handle) {
            (Client::Nfs(c), Handle::Nfs(h)) => {
                bounded(c.timeout(), c.commit(h, acks, describe)).await
            }
            (Client::Local(c), Handle::Local(h)) => {
                bounded(c.timeout(), c.commit(h, describe)).await
            }
            _ => Err(mismatch()),
        }
    }

    /// Releases a handle without committing (reads, and abandoned writes).
    pub async fn close(&self, handle: &Handle) {
        let result = match (self, handle) {
            (Client::Nfs(c), Handle::Nfs(h)) => bounded(c.timeout(), c.close(h)).await,
            (Client::Local(_), Handle::Local(_)) => Ok(()),
            _ => Err(mismatch()),
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "closing a file handle failed");
        }
    }

    /// Creates one directory; `Exists` when it (or a file of that name) is already there.
    pub async fn mkdir(&self, path: &FilePath) -> Result<()> {
        dispatch!(self, c => c.mkdir(path))
    }

    /// Renames the file `handle` created over `to`, in any directory, replacing what is
    /// there atomically: a reader sees the old file or the new one.
    pub async fn publish(&self, handle: &Handle, to: &FilePath) -> Result<()> {
        match (self, handle) {
            (Client::Nfs(c), Handle::Nfs(h)) => bounded(c.timeout(), c.publish(h, to)).await,
            (Client::Local(c), Handle::Local(h)) => bounded(c.timeout(), c.publish(h, to)).await,
            _ => Err(mismatch()),
        }
    }

    /// Gives the file `handle` created the name `to` too, failing with `Exists` when `to`
    /// exists (a hard link never replaces); the created name stays, to be removed.
    pub async fn link(&self, handle: &Handle, to: &FilePath) -> Result<()> {
        match (self, handle) {
            (Client::Nfs(c), Handle::Nfs(h)) => bounded(c.timeout(), c.link(h, to)).await,
            (Client::Local(c), Handle::Local(h)) => bounded(c.timeout(), c.link(h, to)).await,
            _ => Err(mismatch()),
        }
    }

    /// Renames `from` over `to`.
    pub async fn rename(&self, from: &FilePath, to: &FilePath) -> Result<()> {
        dispatch!(self, c => c.rename(from, to))
    }

    /// A small file's whole content; `Failed` when it has more than `limit` bytes.
    pub async fn read_whole(&self, path: &FilePath, limit: usize) -> Result<Bytes> {
        dispatch!(self, c => c.read_whole(path, limit))
    }

    /// Removes a file (or an empty directory).
    pub async fn remove(&self, path: &FilePath) -> Result<()> {
        dispatch!(self, c => c.remove(path))
    }

    /// One page of at most `limit` entries of `dir`, from `cursor`.
    pub async fn list(
        &self,
        dir: &FilePath,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        dispatch!(self, c => c.list(dir, cursor, limit))
    }

    /// Every entry of `dir`, in no particular order. Each server page is one call under
    /// the operation timeout (a huge directory takes many, none of them long); a local
    /// directory is read in one pass.
    pub async fn list_all(&self, dir: &FilePath) -> Result<Vec<DirEntry>> {
        match self {
            Client::Local(c) => bounded(c.timeout(), c.list(dir, None, usize::MAX))
                .await
                .map(|page| page.entries),
            Client::Nfs(c) => {
                let mut all = Vec::new();
                let mut cursor: Option<String> = None;
                loop {
                    let page =
                        bounded(c.timeout(), c.list(dir, cursor.as_deref(), LIST_BATCH)).await?;
                    all.extend(page.entries);
                    match page.next {
                        Some(next) => cursor = Some(next),
                        None => return Ok(all),
                    }
                }
            }
        }
    }

    /// Ends the session with the target: NFS destroys its session and client id, a
    /// kernel mount is unmounted.
    pub async fn shutdown(&self) {
        let result: Result<()> = dispatch!(self, c => c.unmount());
        if let Err(e) = result {
            tracing::warn!(error = %e, "unmounting a target failed");
        }
    }
}

fn mismatch() -> BackendError {
    // A handle is only ever used with the client that made it; reaching this is a bug.
    BackendError::Failed("a file handle was used with another target's client".into())
}
