//! The `dir` backend (a local directory per target) and the file side of the `kernel`
//! backend (a kernel NFS mount is a local directory too).
//!
//! File calls block, so each runs on tokio's blocking pool. Every name is resolved from
//! a descriptor of the root held open, never from a path checked first and opened after
//! (another client of the same file system could swap a directory for a link in
//! between, and the router, root on an EC2 host, would follow it out). `openat2` with
//! `RESOLVE_BENEATH` does the resolution in the kernel: a link that stays under the root
//! is followed like any other name, one that leads out (absolute, or `..` past the
//! root) is refused. Kernels without `openat2` (before 5.6) walk one name at a time with
//! `O_NOFOLLOW` instead, which refuses every link. Names about to be created, renamed or
//! removed are never followed: the call works on the name in its (confined) directory.

use std::fs::File;
use std::io::{self, ErrorKind};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

use super::kernel::KernelMount;
use super::{BackendError, DirEntry, EntryKind, Handle, ListPage, Result, Stat, WriteAck};
use crate::router::path::FilePath;

/// Read and write size for local files: large enough that the per-call overhead (a
/// blocking-pool hop) is noise, small enough to bound memory per request.
pub const CHUNK: usize = 1 << 20;

#[derive(Debug)]
pub struct LocalClient {
    root: Arc<Root>,
    timeout: Duration,
    /// Set for the kernel backend: unmounted on shutdown.
    mount: Option<KernelMount>,
}

#[derive(Debug)]
pub struct LocalHandle {
    file: Arc<File>,
    /// For a created file: its name under the root, for publishing.
    created_at: Option<FilePath>,
}

/// The root directory, held open: every name is resolved from it.
#[derive(Debug)]
struct Root {
    fd: OwnedFd,
    path: PathBuf,
    /// `openat2` is missing (ENOSYS): walk name by name.
    walk: AtomicBool,
}

const LEADS_OUT: &str = "a symbolic link leads outside the root";

impl Root {
    /// Opens `path` (relative to the root; empty is the root) with `flags`, following
    /// only links that stay under the root.
    fn open(&self, path: &str, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        let path = if path.is_empty() { "." } else { path };
        let flags = flags | OFlags::CLOEXEC;
        if !self.walk.load(Ordering::Relaxed) {
            let how = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
            match rustix::fs::openat2(&self.fd, path, flags, mode, how) {
                Err(rustix::io::Errno::NOSYS) => {
                    tracing::warn!(
                        "this kernel has no openat2 (Linux 5.6+): paths are walked name by name and every symbolic link is refused"
                    );
                    self.walk.store(true, Ordering::Relaxed);
                }
                Err(rustix::io::Errno::XDEV) => {
                    return Err(io::Error::new(ErrorKind::PermissionDenied, LEADS_OUT));
                }
                // Past the kernel's limit of 40 links: treated as a way out, too.
                Err(rustix::io::Errno::LOOP) => {
                    return Err(io::Error::new(ErrorKind::PermissionDenied, LEADS_OUT));
                }
                other => return other.map_err(io::Error::from),
            }
        }
        self.walk_open(path, flags, mode)
    }

    /// `open` without `openat2`: each directory on the way with `O_NOFOLLOW`, so no link
    /// is followed anywhere.
    fn walk_open(&self, path: &str, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        let names: Vec<&str> = path
            .split('/')
            .filter(|n| !n.is_empty() && *n != ".")
            .collect();
        if names.contains(&"..") {
            return Err(io::Error::new(ErrorKind::PermissionDenied, LEADS_OUT));
        }
        let Some((last, dirs)) = names.split_last() else {
            return rustix::fs::openat(&self.fd, ".", flags, mode).map_err(io::Error::from);
        };
        let step = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut dir: Option<OwnedFd> = None;
        for name in dirs {
            dir = Some(open_unfollowed(
                dir.as_ref().unwrap_or(&self.fd),
                name,
                step,
                Mode::empty(),
            )?);
        }
        open_unfollowed(dir.as_ref().unwrap_or(&self.fd), last, flags, mode)
    }

    /// The directory `path` is in (confined), and its last name, which is not followed.
    fn parent(&self, path: &FilePath) -> io::Result<(OwnedFd, String)> {
        let dir = self.open(
            path.parent().as_str(),
            OFlags::PATH | OFlags::DIRECTORY,
            Mode::empty(),
        )?;
        Ok((dir, path.name().to_string()))
    }

    /// Creates (or truncates) `path` for writing; its directory must exist.
    fn create(&self, path: &FilePath) -> io::Result<File> {
        let (dir, name) = self.parent(path)?;
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = open_unfollowed(&dir, &name, flags, Mode::from_raw_mode(0o644))?;
        Ok(File::from(fd))
    }
}

/// Opens one name in `at` without following it: a link there is refused as a way out
/// (`O_NOFOLLOW` reports it as ELOOP, as ENOTDIR with `O_DIRECTORY`, and not at all
/// with `O_PATH`, which opens the link itself).
fn open_unfollowed(at: &OwnedFd, name: &str, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
    let is_link = || {
        rustix::fs::statat(at, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
    };
    match rustix::fs::openat(at, name, flags | OFlags::NOFOLLOW, mode) {
        Err(rustix::io::Errno::LOOP) => Err(io::Error::new(ErrorKind::PermissionDenied, LEADS_OUT)),
        Err(rustix::io::Errno::NOTDIR) if is_link() => {
            Err(io::Error::new(ErrorKind::PermissionDenied, LEADS_OUT))
        }
        Err(e) => Err(e.into()),
        Ok(fd)
            if flags.contains(OFlags::PATH)
                && FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode)
                    == FileType::Symlink =>
        {
            Err(io::Error::new(ErrorKind::PermissionDenied, LEADS_OUT))
        }
        Ok(fd) => Ok(fd),
    }
}

impl LocalClient {
    /// A client over an existing directory.
    pub async fn open(root: &Path, timeout: Duration, mount: Option<KernelMount>) -> Result<Self> {
        let path = root.to_path_buf();
        let opened = blocking(timeout, move || {
            let fd = rustix::fs::open(
                &path,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            Ok(Root {
                fd,
                path,
                walk: AtomicBool::new(false),
            })
        })
        .await
        .map_err(|e| BackendError::Unavailable(format!("{}: {e}", root.display())))?;
        Ok(LocalClient {
            root: Arc::new(opened),
            timeout,
            mount,
        })
    }

    /// Resolves every path name by name, as on a kernel without `openat2` (tests).
    #[cfg(test)]
    fn walking(self) -> Self {
        self.root.walk.store(true, Ordering::Relaxed);
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub async fn probe(&self) -> Result<()> {
        let root = self.root.clone();
        blocking(self.timeout, move || {
            // Through the path, not the descriptor: a mount that went away or was
            // replaced must show.
            std::fs::metadata(&root.path).map(|_| ())
        })
        .await
        .map_err(|e| BackendError::Unavailable(e.to_string()))
    }

    pub async fn stat(&self, path: &FilePath) -> Result<Stat> {
        let (root, path) = (self.root.clone(), path.clone());
        blocking(self.timeout, move || {
            let fd = root.open(path.as_str(), OFlags::PATH, Mode::empty())?;
            Ok(stat(&rustix::fs::fstat(&fd)?))
        })
        .await
    }

    pub async fn open_read(&self, path: &FilePath) -> Result<(Handle, Stat)> {
        let (root, path) = (self.root.clone(), path.clone());
        let (file, st) = blocking(self.timeout, move || {
            // Non-blocking open: a FIFO would otherwise block the call until its timeout
            // and get the whole target marked down. Regular files ignore the flag.
            let fd = root.open(
                path.as_str(),
                OFlags::RDONLY | OFlags::NONBLOCK,
                Mode::empty(),
            )?;
            let st = rustix::fs::fstat(&fd)?;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => Ok((File::from(fd), stat(&st))),
                FileType::Directory => Err(io::Error::from(ErrorKind::IsADirectory)),
                _ => Err(io::Error::other(NOT_A_FILE)),
            }
        })
        .await?;
        Ok((
            Handle::Local(LocalHandle {
                file: Arc::new(file),
                created_at: None,
            }),
            st,
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
        let (root, at) = (self.root.clone(), path.clone());
        let file = blocking(self.timeout, move || root.create(&at)).await?;
        Ok(Handle::Local(LocalHandle {
            file: Arc::new(file),
            created_at: Some(path.clone()),
        }))
    }

    /// Create, write, `fsync` (and `fstat`) in one trip to the blocking pool.
    pub async fn create_whole(
        &self,
        path: &FilePath,
        data: Bytes,
        describe: bool,
    ) -> Result<(Handle, Option<Stat>)> {
        let (root, at) = (self.root.clone(), path.clone());
        let (file, st) = blocking(self.timeout, move || {
            let file = root.create(&at)?;
            file.write_all_at(&data, 0)?;
            let st = sync(&file, describe)?;
            Ok((file, st))
        })
        .await?;
        let handle = Handle::Local(LocalHandle {
            file: Arc::new(file),
            created_at: Some(path.clone()),
        });
        Ok((handle, st))
    }

    pub async fn write(&self, h: &LocalHandle, offset: u64, data: Bytes) -> Result<WriteAck> {
        let file = h.file.clone();
        blocking(self.timeout, move || file.write_all_at(&data, offset)).await?;
        Ok(WriteAck::Local)
    }

    /// `fsync`, and with `describe` the file's attributes in the same trip to the
    /// blocking pool.
    pub async fn commit(&self, h: &LocalHandle, describe: bool) -> Result<Option<Stat>> {
        let file = h.file.clone();
        blocking(self.timeout, move || sync(&file, describe)).await
    }

    pub async fn mkdir(&self, path: &FilePath) -> Result<()> {
        let (root, path) = (self.root.clone(), path.clone());
        blocking(self.timeout, move || {
            let (dir, name) = root.parent(&path)?;
            Ok(rustix::fs::mkdirat(
                &dir,
                name.as_str(),
                Mode::from_raw_mode(0o755),
            )?)
        })
        .await
    }

    pub async fn publish(&self, h: &LocalHandle, to: &FilePath) -> Result<()> {
        self.rename(&created_at(h)?, to).await
    }

    pub async fn link(&self, h: &LocalHandle, to: &FilePath) -> Result<()> {
        let (root, from, to) = (self.root.clone(), created_at(h)?, to.clone());
        blocking(self.timeout, move || {
            let (from_dir, from_name) = root.parent(&from)?;
            let (to_dir, to_name) = root.parent(&to)?;
            Ok(rustix::fs::linkat(
                &from_dir,
                from_name.as_str(),
                &to_dir,
                to_name.as_str(),
                AtFlags::empty(),
            )?)
        })
        .await
    }

    pub async fn rename(&self, from: &FilePath, to: &FilePath) -> Result<()> {
        let (root, from, to) = (self.root.clone(), from.clone(), to.clone());
        blocking(self.timeout, move || {
            let (from_dir, from_name) = root.parent(&from)?;
            let (to_dir, to_name) = root.parent(&to)?;
            Ok(rustix::fs::renameat(
                &from_dir,
                from_name.as_str(),
                &to_dir,
                to_name.as_str(),
            )?)
        })
        .await
    }

    pub async fn read_whole(&self, path: &FilePath, limit: usize) -> Result<Bytes> {
        let (root, path) = (self.root.clone(), path.clone());
        blocking(self.timeout, move || {
            let fd = root.open(
                path.as_str(),
                OFlags::RDONLY | OFlags::NONBLOCK,
                Mode::empty(),
            )?;
            let file = File::from(fd);
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
        let (root, path) = (self.root.clone(), path.clone());
        blocking(self.timeout, move || {
            let (dir, name) = root.parent(&path)?;
            let st = rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)?;
            let flags = match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => AtFlags::REMOVEDIR,
                _ => AtFlags::empty(),
            };
            Ok(rustix::fs::unlinkat(&dir, name.as_str(), flags)?)
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
        let (root, dir) = (self.root.clone(), dir.clone());
        blocking(self.timeout, move || {
            let fd = root.open(
                dir.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY,
                Mode::empty(),
            )?;
            let mut names: Vec<String> = Vec::new();
            for entry in rustix::fs::Dir::read_from(&fd)? {
                let entry = entry?;
                let Ok(name) = entry.file_name().to_str() else {
                    continue;
                };
                if name == "." || name == ".." || after.as_deref().is_some_and(|a| name <= a) {
                    continue;
                }
                names.push(name.to_string());
            }
            names.sort();
            let more = names.len() > limit;
            names.truncate(limit);
            let mut entries = Vec::with_capacity(names.len());
            for name in names {
                // What the entry is, not what a link points at.
                let Ok(st) = rustix::fs::statat(&fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                else {
                    continue;
                };
                entries.push(DirEntry {
                    name,
                    stat: stat(&st),
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
}

fn created_at(h: &LocalHandle) -> Result<FilePath> {
    h.created_at
        .clone()
        .ok_or_else(|| BackendError::Failed("only a created file can be published".into()))
}

/// `fsync`, then the file's attributes when asked (in the same blocking call).
fn sync(file: &File, describe: bool) -> io::Result<Option<Stat>> {
    file.sync_all()?;
    if !describe {
        return Ok(None);
    }
    Ok(Some(stat(&rustix::fs::fstat(file)?)))
}

fn stat(st: &rustix::fs::Stat) -> Stat {
    Stat {
        kind: kind(FileType::from_raw_mode(st.st_mode)),
        size: u64::try_from(st.st_size).unwrap_or(0),
        modified: (
            u64::try_from(st.st_mtime).unwrap_or(0),
            u32::try_from(st.st_mtime_nsec).unwrap_or(0),
        ),
        file_id: st.st_ino,
    }
}

fn kind(t: FileType) -> EntryKind {
    match t {
        FileType::RegularFile => EntryKind::File,
        FileType::Directory => EntryKind::Dir,
        FileType::Symlink => EntryKind::Symlink,
        _ => EntryKind::Other,
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
    use std::fs;

    use super::*;

    fn client(dir: &Path) -> LocalClient {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(LocalClient::open(dir, Duration::from_secs(5), None))
            .unwrap()
    }

    /// Links out of the root are refused; one that stays inside is an ordinary name
    /// with `openat2`, and refused too when walking name by name (kernels before 5.6).
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn symlinks_out_of_the_root_are_refused() {
        for walking in [false, true] {
            let outside = tempfile::tempdir().unwrap();
            fs::write(outside.path().join("secret"), b"s").unwrap();
            let root = tempfile::tempdir().unwrap();
            std::os::unix::fs::symlink(outside.path(), root.path().join("out")).unwrap();
            std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("s"))
                .unwrap();
            std::os::unix::fs::symlink("../../..", root.path().join("up")).unwrap();
            fs::write(root.path().join("inside"), b"i").unwrap();
            std::os::unix::fs::symlink("inside", root.path().join("alias")).unwrap();
            let mut c = LocalClient::open(root.path(), Duration::from_secs(5), None)
                .await
                .unwrap();
            if walking {
                c = c.walking();
            }

            let p = |s: &str| FilePath::parse(s).unwrap();
            assert_eq!(c.stat(&p("s")).await, Err(BackendError::PermissionDenied));
            assert!(c.open_read(&p("out/secret")).await.is_err());
            assert!(c.read_whole(&p("s"), 10).await.is_err());
            assert_eq!(
                c.create(&p("out/new")).await.err(),
                Some(BackendError::PermissionDenied)
            );
            assert!(c.mkdir(&p("up/made")).await.is_err());
            assert!(!outside.path().join("new").exists());
            assert_eq!(
                c.list(&p("out"), None, 10).await,
                Err(BackendError::PermissionDenied)
            );
            // Creating over a link replaces nothing outside: the link's target is kept.
            assert!(c.create(&p("s")).await.is_err());
            assert_eq!(fs::read(outside.path().join("secret")).unwrap(), b"s");
            // Removing a link removes the link, never what it points at.
            c.remove(&p("out")).await.unwrap();
            assert!(outside.path().join("secret").exists());
            let alias = c.stat(&p("alias")).await.map(|s| s.size);
            if walking {
                assert_eq!(alias, Err(BackendError::PermissionDenied));
            } else {
                // A link that stays inside is an ordinary name.
                assert_eq!(alias, Ok(1));
            }
        }
    }

    /// Another client of the same file system swaps a directory for a link out of the
    /// root, over and over, while the router creates and reads through it. Resolution
    /// from the root's descriptor never lets a call out. (Checking the path first and
    /// opening it after, as this backend once did, escapes within a few hundred tries.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_directory_swapped_for_a_link_mid_call_never_leads_out() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), b"outside").unwrap();
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("d")).unwrap();
        fs::write(root.path().join("d/secret"), b"inside").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("swap")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = std::thread::spawn({
            let (dir, stop) = (root.path().to_path_buf(), stop.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    rustix::fs::renameat_with(
                        rustix::fs::CWD,
                        dir.join("d"),
                        rustix::fs::CWD,
                        dir.join("swap"),
                        rustix::fs::RenameFlags::EXCHANGE,
                    )
                    .unwrap();
                }
            }
        });
        let c = LocalClient::open(root.path(), Duration::from_secs(5), None)
            .await
            .unwrap();
        let secret = FilePath::parse("d/secret").unwrap();
        let mut inside_reads = 0;
        for i in 0..3000 {
            let new = FilePath::parse(&format!("d/new-{i}")).unwrap();
            let _ = c.create(&new).await;
            if let Ok(data) = c.read_whole(&secret, 100).await {
                assert_eq!(&data[..], b"inside", "a read left the root");
                inside_reads += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
        let escaped: Vec<_> = fs::read_dir(outside.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "secret")
            .collect();
        assert!(
            escaped.is_empty(),
            "files created outside the root: {escaped:?}"
        );
        assert!(
            inside_reads > 0,
            "the swap never let a read through: the test proves nothing"
        );
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
