//! The `dir` backend (a local directory per target) and the file side of the `kernel`
//! backend (a kernel NFS mount is a local directory too).
//!
//! File calls block, so each runs on tokio's blocking pool. Symlinks are a way out of the
//! root (a link on EFS to `/etc` would otherwise be followed on the router's host), so
//! every path is resolved and must stay under the root; a link that stays inside is
//! followed like any other name.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::kernel::KernelMount;
use super::{BackendError, DirEntry, EntryKind, Handle, ListPage, Result, Stat, WriteAck};
use crate::router::path::FilePath;

/// Read and write size for local files: large enough that the per-call overhead (a
/// blocking-pool hop) is noise, small enough to bound memory per request.
pub const CHUNK: usize = 1 << 20;

#[derive(Debug)]
pub struct LocalClient {
    root: PathBuf,
    timeout: Duration,
    /// Set for the kernel backend: unmounted on shutdown.
    mount: Option<KernelMount>,
}

#[derive(Debug)]
pub struct LocalHandle {
    file: Arc<File>,
    /// For a created file: where it is (already confined), for publishing.
    created_at: Option<PathBuf>,
}

impl LocalClient {
    /// A client over an existing directory.
    pub async fn open(root: &Path, timeout: Duration, mount: Option<KernelMount>) -> Result<Self> {
        let dir = root.to_path_buf();
        let root = blocking(timeout, move || {
            let root = fs::canonicalize(&dir)?;
            if !fs::metadata(&root)?.is_dir() {
                return Err(io::Error::new(ErrorKind::NotADirectory, "not a directory"));
            }
            Ok(root)
        })
        .await
        .map_err(|e| BackendError::Unavailable(format!("{}: {e}", root.display())))?;
        Ok(LocalClient {
            root,
            timeout,
            mount,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub async fn probe(&self) -> Result<()> {
        let root = self.root.clone();
        blocking(self.timeout, move || fs::metadata(&root).map(|_| ()))
            .await
            .map_err(|e| BackendError::Unavailable(e.to_string()))
    }

    pub async fn stat(&self, path: &FilePath) -> Result<Stat> {
        let full = self.confined(path, Resolve::Whole);
        let m = blocking(self.timeout, move || fs::metadata(full.resolve()?)).await?;
        Ok(stat(&m))
    }

    pub async fn open_read(&self, path: &FilePath) -> Result<(Handle, Stat)> {
        let full = self.confined(path, Resolve::Whole);
        let (file, m) = blocking(self.timeout, move || {
            // Non-blocking open: a FIFO would otherwise block the call until its timeout
            // and get the whole target marked down. Regular files ignore the flag.
            let file = OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_NONBLOCK)
                .open(full.resolve()?)?;
            let m = file.metadata()?;
            if m.is_dir() {
                return Err(io::Error::from(ErrorKind::IsADirectory));
            }
            if !m.is_file() {
                return Err(io::Error::other(NOT_A_FILE));
            }
            Ok((file, m))
        })
        .await?;
        Ok((
            Handle::Local(LocalHandle {
                file: Arc::new(file),
                created_at: None,
            }),
            stat(&m),
        ))
    }

    pub async fn read(&self, h: &LocalHandle, offset: u64, len: usize) -> Result<Bytes> {
        let file = h.file.clone();
        blocking(self.timeout, move || {
            let mut buf = vec![0u8; len];
            let mut filled = 0;
            while filled < len {
                match file.read_at(&mut buf[filled..], offset + filled as u64)? {
                    0 => break,
                    n => filled += n,
                }
            }
            buf.truncate(filled);
            Ok(Bytes::from(buf))
        })
        .await
    }

    pub async fn create(&self, path: &FilePath) -> Result<Handle> {
        let full = self.confined(path, Resolve::Parent);
        let (file, at) = blocking(self.timeout, move || {
            let at = full.resolve()?;
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .open(&at)?;
            Ok((file, at))
        })
        .await?;
        Ok(Handle::Local(LocalHandle {
            file: Arc::new(file),
            created_at: Some(at),
        }))
    }

    pub async fn write(&self, h: &LocalHandle, offset: u64, data: Bytes) -> Result<WriteAck> {
        let file = h.file.clone();
        blocking(self.timeout, move || file.write_all_at(&data, offset)).await?;
        Ok(WriteAck::Local)
    }

    pub async fn commit(&self, h: &LocalHandle) -> Result<()> {
        let file = h.file.clone();
        blocking(self.timeout, move || file.sync_all()).await
    }

    pub async fn mkdir(&self, path: &FilePath) -> Result<()> {
        let full = self.confined(path, Resolve::Parent);
        blocking(self.timeout, move || fs::create_dir(full.resolve()?)).await
    }

    pub async fn publish(&self, h: &LocalHandle, to: &FilePath) -> Result<()> {
        let from = created_at(h)?;
        let to = self.confined(to, Resolve::Parent);
        blocking(self.timeout, move || fs::rename(&from, to.resolve()?)).await
    }

    pub async fn link(&self, h: &LocalHandle, to: &FilePath) -> Result<()> {
        let from = created_at(h)?;
        let to = self.confined(to, Resolve::Parent);
        blocking(self.timeout, move || fs::hard_link(&from, to.resolve()?)).await
    }

    pub async fn rename(&self, from: &FilePath, to: &FilePath) -> Result<()> {
        let from = self.confined(from, Resolve::Parent);
        let to = self.confined(to, Resolve::Parent);
        blocking(self.timeout, move || {
            fs::rename(from.resolve()?, to.resolve()?)
        })
        .await
    }

    pub async fn read_whole(&self, path: &FilePath, limit: usize) -> Result<Bytes> {
        let full = self.confined(path, Resolve::Whole);
        blocking(self.timeout, move || {
            let file = OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_NONBLOCK)
                .open(full.resolve()?)?;
            let mut data = Vec::new();
            std::io::Read::read_to_end(
                &mut std::io::Read::take(&file, limit as u64 + 1),
                &mut data,
            )?;
            if data.len() > limit {
                return Err(io::Error::other(format!("larger than {limit} bytes")));
            }
            Ok(Bytes::from(data))
        })
        .await
    }

    pub async fn remove(&self, path: &FilePath) -> Result<()> {
        let full = self.confined(path, Resolve::Parent);
        blocking(self.timeout, move || {
            let full = full.resolve()?;
            if fs::symlink_metadata(&full)?.is_dir() {
                fs::remove_dir(&full)
            } else {
                fs::remove_file(&full)
            }
        })
        .await
    }

    /// Pages in name order; the cursor is the last name returned. Every page reads the
    /// whole directory (a local directory has no stable position to resume from), which
    /// is fine for development and for the kernel backend's usual directory sizes.
    pub async fn list(
        &self,
        dir: &FilePath,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        let after = match cursor {
            Some(c) => Some(decode_cursor(c).ok_or(BackendError::StaleCursor)?),
            None => None,
        };
        let full = self.confined(dir, Resolve::Whole);
        blocking(self.timeout, move || {
            let full = full.resolve()?;
            let mut names: Vec<(String, fs::DirEntry)> = fs::read_dir(&full)?
                .filter_map(|e| e.ok())
                .filter_map(|e| Some((e.file_name().into_string().ok()?, e)))
                .filter(|(name, _)| after.as_ref().is_none_or(|a| name > a))
                .collect();
            names.sort_by(|a, b| a.0.cmp(&b.0));
            let more = names.len() > limit;
            names.truncate(limit);
            let mut entries = Vec::with_capacity(names.len());
            for (name, e) in names {
                let Ok(m) = e.metadata() else { continue };
                entries.push(DirEntry {
                    name,
                    stat: stat(&m),
                });
            }
            let next = match (more, entries.last()) {
                (true, Some(last)) => Some(encode_cursor(&last.name)),
                _ => None,
            };
            Ok(ListPage { entries, next })
        })
        .await
    }

    pub async fn unmount(&self) -> Result<()> {
        match &self.mount {
            Some(m) => m.unmount().await,
            None => Ok(()),
        }
    }

    /// `path` under the root, to be resolved inside the blocking call (no extra hop).
    fn confined(&self, path: &FilePath, how: Resolve) -> Confined {
        Confined {
            root: self.root.clone(),
            full: self.root.join(path.as_str()),
            how,
        }
    }
}

/// A path to check before use: after symlinks are resolved it must stay under the root,
/// all of it, or (for names about to be created, renamed or removed, whose last name is
/// not followed) its directory.
#[derive(Debug)]
struct Confined {
    root: PathBuf,
    full: PathBuf,
    how: Resolve,
}

impl Confined {
    fn resolve(self) -> io::Result<PathBuf> {
        let resolved = match self.how {
            Resolve::Whole => fs::canonicalize(&self.full)?,
            Resolve::Parent => {
                let dir = fs::canonicalize(self.full.parent().unwrap_or(&self.root))?;
                match self.full.file_name() {
                    Some(name) => dir.join(name),
                    None => dir,
                }
            }
        };
        if !resolved.starts_with(&self.root) {
            return Err(io::Error::new(
                ErrorKind::PermissionDenied,
                "a symbolic link leads outside the root",
            ));
        }
        Ok(resolved)
    }
}

#[derive(Debug, Clone, Copy)]
enum Resolve {
    Whole,
    Parent,
}

fn created_at(h: &LocalHandle) -> Result<PathBuf> {
    h.created_at
        .clone()
        .ok_or_else(|| BackendError::Failed("only a created file can be published".into()))
}

fn stat(m: &fs::Metadata) -> Stat {
    Stat {
        kind: kind(&m.file_type()),
        size: m.len(),
        modified: (
            u64::try_from(m.mtime()).unwrap_or(0),
            u32::try_from(m.mtime_nsec()).unwrap_or(0),
        ),
        file_id: m.ino(),
    }
}

fn kind(t: &fs::FileType) -> EntryKind {
    if t.is_file() {
        EntryKind::File
    } else if t.is_dir() {
        EntryKind::Dir
    } else if t.is_symlink() {
        EntryKind::Symlink
    } else {
        EntryKind::Other
    }
}

fn encode_cursor(name: &str) -> String {
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    format!("l{hex}")
}

fn decode_cursor(s: &str) -> Option<String> {
    let hex = s.strip_prefix('l')?;
    if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// Runs a blocking file call on the blocking pool under the timeout. A call stuck in
/// the kernel (a hard NFS mount whose server froze) keeps its thread, but the request
/// gets its answer.
async fn blocking<T: Send + 'static>(
    timeout: Duration,
    call: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(call)).await {
        Err(_) => Err(BackendError::Timeout(timeout)),
        Ok(Err(join)) => Err(BackendError::Failed(format!("file call panicked: {join}"))),
        Ok(Ok(result)) => result.map_err(map),
    }
}

/// Marks an `io::Error` as "not a regular file" on its way out of a blocking call.
const NOT_A_FILE: &str = "not a regular file";

fn map(e: io::Error) -> BackendError {
    if e.kind() == ErrorKind::Other && e.to_string() == NOT_A_FILE {
        return BackendError::NotAFile;
    }
    match e.kind() {
        ErrorKind::NotFound => BackendError::NotFound,
        ErrorKind::AlreadyExists => BackendError::Exists,
        ErrorKind::IsADirectory => BackendError::IsADirectory,
        ErrorKind::NotADirectory => BackendError::NotADirectory,
        ErrorKind::DirectoryNotEmpty => BackendError::NotEmpty,
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
            BackendError::PermissionDenied
        }
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => BackendError::NoSpace,
        // ESTALE, ENOTCONN, EIO from a kernel NFS mount: the target, not the request.
        ErrorKind::StaleNetworkFileHandle | ErrorKind::NotConnected | ErrorKind::TimedOut => {
            BackendError::Unavailable(e.to_string())
        }
        _ if e.raw_os_error() == Some(nix::libc::EIO) => BackendError::Unavailable(e.to_string()),
        _ => BackendError::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(dir: &Path) -> LocalClient {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(LocalClient::open(dir, Duration::from_secs(5), None))
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn symlinks_out_of_the_root_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"s").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("out")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("s")).unwrap();
        fs::write(root.path().join("inside"), b"i").unwrap();
        std::os::unix::fs::symlink("inside", root.path().join("alias")).unwrap();
        let c = LocalClient::open(root.path(), Duration::from_secs(5), None)
            .await
            .unwrap();

        let p = |s: &str| FilePath::parse(s).unwrap();
        assert_eq!(c.stat(&p("s")).await, Err(BackendError::PermissionDenied));
        assert!(c.open_read(&p("out/secret")).await.is_err());
        assert_eq!(
            c.create(&p("out/new")).await.err(),
            Some(BackendError::PermissionDenied)
        );
        assert!(!outside.path().join("new").exists());
        assert_eq!(
            c.list(&p("out"), None, 10).await,
            Err(BackendError::PermissionDenied)
        );
        // A link that stays inside is an ordinary name.
        assert_eq!(c.stat(&p("alias")).await.map(|s| s.size), Ok(1));
    }

    /// A FIFO would block a plain open until the call timed out and the target was
    /// marked down; it is refused at once as not a regular file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_fifo_is_refused_at_once() {
        let root = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(
            &root.path().join("pipe"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let c = LocalClient::open(root.path(), Duration::from_secs(5), None)
            .await
            .unwrap();
        let err = c.open_read(&FilePath::parse("pipe").unwrap()).await.err();
        assert_eq!(err, Some(BackendError::NotAFile));
    }

    #[test]
    fn listing_pages_in_name_order_with_a_cursor() {
        let root = tempfile::tempdir().unwrap();
        for name in ["c", "a", "é", "b"] {
            fs::write(root.path().join(name), name).unwrap();
        }
        fs::create_dir(root.path().join("d")).unwrap();
        let c = client(root.path());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut names = Vec::new();
        let mut cursor = None;
        loop {
            let page = rt
                .block_on(c.list(&FilePath::parse("").unwrap(), cursor.as_deref(), 2))
                .unwrap();
            assert!(page.entries.len() <= 2);
            names.extend(page.entries.iter().map(|e| (e.name.clone(), e.stat.kind)));
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        let expected: Vec<(String, EntryKind)> = [
            ("a", EntryKind::File),
            ("b", EntryKind::File),
            ("c", EntryKind::File),
            ("d", EntryKind::Dir),
            ("é", EntryKind::File),
        ]
        .iter()
        .map(|(n, k)| (n.to_string(), *k))
        .collect();
        assert_eq!(names, expected);
        assert_eq!(decode_cursor(&encode_cursor("é/x")).as_deref(), Some("é/x"));
        assert_eq!(decode_cursor("lzz"), None);
    }
}
