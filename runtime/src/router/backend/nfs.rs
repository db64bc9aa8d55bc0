//! The `nfs` backend: one `nfs-rs` NFSv4.1 mount (one TCP connection, one session) per
//! target, shared by every request to it.
//!
//! This file is the only one that touches `nfs-rs`, so an upgrade of that young crate is
//! checked here and by the ganesha tests (see ../shared/notes/nfs.md for what it does).
//! What we rely on:
//! - after a lost connection it gives up within ~500 ms and a mount never recovers from
//!   a server restart: the pool drops the client and mounts again;
//! - writes are UNSTABLE and become durable only with `commit_write_batch`, which checks
//!   the server's write verifiers (a server that rebooted between write and commit is
//!   reported, never silently accepted).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nfs_rs::{DirectoryCookie, Mount, Nfs4ErrorCode, NfsError, OPEN_READ};

use super::{BackendError, DirEntry, EntryKind, ListPage, Result, Stat, WriteAck};
use crate::router::path::FilePath;

/// How to reach the export on each target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfsOptions {
    /// The exported path: `/` on EFS.
    pub export: String,
    pub port: u16,
}

/// The `nfs-rs` URL for a target: NFSv4.1 as EFS requires, the port given directly
/// (EFS runs no portmapper), and an unprivileged source port (`noresvport`, as
/// amazon-efs-utils mounts EFS; a Fargate task cannot bind ports below 1024 anyway).
pub fn nfs_url(address: &str, options: &NfsOptions) -> String {
    let export = options.export.trim_start_matches('/');
    format!(
        "nfs://{address}/{export}?version=4.1&noresvport=true&nfsport={}",
        options.port
    )
}

#[derive(Debug)]
pub struct NfsClient {
    mount: Arc<dyn Mount>,
    timeout: Duration,
}

#[derive(Debug)]
pub struct NfsHandle {
    fh: Bytes,
    /// For a created file: its directory's handle and its name, so publishing it is
    /// one RENAME instead of two lookups and a RENAME.
    created_in: Option<(Bytes, String)>,
}

/// NFS type codes (ftype3 / nfs_ftype4 agree on these).
const NF_REG: u32 = 1;
const NF_DIR: u32 = 2;
const NF_LNK: u32 = 5;

impl NfsClient {
    pub async fn connect(address: &str, options: &NfsOptions, timeout: Duration) -> Result<Self> {
        let url = nfs_url(address, options);
        let mount = tokio::time::timeout(timeout, nfs_rs::parse_url_and_mount(&url))
            .await
            .map_err(|_| BackendError::Timeout(timeout))?
            .map_err(|e| match map(e) {
                // At mount time every failure means this target is not usable.
                BackendError::NotFound => {
                    BackendError::Unavailable(format!("export {} not found", options.export))
                }
                e if e.is_target_failure() => e,
                e => BackendError::Unavailable(e.to_string()),
            })?;
        Ok(NfsClient {
            mount: Arc::from(mount),
            timeout,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn chunk_size(&self) -> usize {
        // The server's limits, capped by nfs-rs at 4 MiB; EFS and ganesha offer 1 MiB.
        self.mount
            .get_max_read_size()
            .min(self.mount.get_max_write_size())
            .max(4096) as usize
    }

    pub async fn probe(&self) -> Result<()> {
        self.mount.null().await.map_err(map)
    }

    pub async fn stat(&self, path: &FilePath) -> Result<Stat> {
        let obj = self.mount.lookup_path(path.as_str()).await.map_err(map)?;
        match obj.attr {
            Some(attr) => Ok(stat(&attr)),
            None => self
                .mount
                .getattr(obj.fh)
                .await
                .map(|a| stat(&a))
                .map_err(map),
        }
    }

    pub async fn open_read(&self, path: &FilePath) -> Result<(super::Handle, Stat)> {
        let obj = self
            .mount
            .open_path(path.as_str(), OPEN_READ)
            .await
            .map_err(map)?;
        let stat = match &obj.attr {
            Some(attr) => stat(attr),
            None => match self.mount.getattr(obj.fh.clone()).await {
                Ok(a) => stat(&a),
                Err(e) => {
                    // Opened but unusable: release the open before reporting.
                    let _ = self.mount.close(obj.fh).await;
                    return Err(map(e));
                }
            },
        };
        let handle = NfsHandle {
            fh: obj.fh,
            created_in: None,
        };
        Ok((super::Handle::Nfs(handle), stat))
    }

    pub async fn read(&self, h: &NfsHandle, offset: u64, len: usize) -> Result<Bytes> {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        self.mount
            .read(h.fh.clone(), offset, len)
            .await
            .map_err(map)
    }

    pub async fn create(&self, path: &FilePath) -> Result<super::Handle> {
        let dir = self
            .mount
            .lookup_path(path.parent().as_str())
            .await
            .map_err(map)?;
        let obj = self
            .mount
            .create(dir.fh.clone(), path.name(), Some(0o644))
            .await
            .map_err(map)?;
        Ok(super::Handle::Nfs(NfsHandle {
            fh: obj.fh,
            created_in: Some((dir.fh, path.name().to_string())),
        }))
    }

    /// Writes all of `data`, continuing after short writes.
    pub async fn write(&self, h: &NfsHandle, offset: u64, mut data: Bytes) -> Result<WriteAck> {
        let mut outcomes = Vec::with_capacity(1);
        let mut at = offset;
        while !data.is_empty() {
            let outcome = self
                .mount
                .write(h.fh.clone(), at, data.clone())
                .await
                .map_err(map)?;
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
        Ok(WriteAck::Nfs(outcomes))
    }

    pub async fn commit(&self, h: &NfsHandle, acks: Vec<WriteAck>) -> Result<()> {
        let outcomes: Vec<nfs_rs::WriteOutcome> = acks
            .into_iter()
            .flat_map(|a| match a {
                WriteAck::Nfs(o) => o,
                WriteAck::Local => Vec::new(),
            })
            .collect();
        let committed = if outcomes.is_empty() {
            Ok(())
        } else {
            // (0, 0) covers the whole file.
            self.mount
                .commit_write_batch(h.fh.clone(), 0, 0, &outcomes)
                .await
                .map_err(map)
        };
        let closed = self.close(h).await;
        committed.and(closed)
    }

    pub async fn close(&self, h: &NfsHandle) -> Result<()> {
        self.mount.close(h.fh.clone()).await.map_err(map)
    }

    pub async fn mkdir(&self, path: &FilePath) -> Result<()> {
        self.mount
            .mkdir_path(path.as_str(), 0o755)
            .await
            .map(|_| ())
            .map_err(map)
    }

    pub async fn publish(&self, h: &NfsHandle, to: &FilePath) -> Result<()> {
        let Some((dir, name)) = &h.created_in else {
            return Err(BackendError::Failed(
                "only a created file can be published".into(),
            ));
        };
        self.mount
            .rename(dir.clone(), name, dir.clone(), to.name())
            .await
            .map_err(map)
    }

    pub async fn remove(&self, path: &FilePath) -> Result<()> {
        self.mount.remove_path(path.as_str()).await.map_err(map)
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
        let dir_fh = if dir.is_root() {
            self.mount.getfh().await
        } else {
            let obj = self.mount.lookup_path(dir.as_str()).await.map_err(map)?;
            if obj.attr.as_ref().is_some_and(|a| a.type_ != NF_DIR) {
                return Err(BackendError::NotADirectory);
            }
            obj.fh
        };
        let (mut position, mut skip) = match cursor {
            Some(c) => decode_cursor(c).ok_or(BackendError::StaleCursor)?,
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
            let page = self
                .mount
                .readdirplus_page(dir_fh.clone(), position)
                .await
                .map_err(map)?;
            let available = page.entries.len().saturating_sub(skip);
            let wanted = limit - entries.len();
            for e in page.entries.iter().skip(skip).take(wanted) {
                let (kind, size) = match &e.attr {
                    Some(a) if kind(a.type_) == EntryKind::File => (EntryKind::File, a.filesize),
                    Some(a) => (kind(a.type_), 0),
                    None => (EntryKind::Other, 0),
                };
                entries.push(DirEntry {
                    name: e.file_name.clone(),
                    kind,
                    size,
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

    pub async fn unmount(&self) -> Result<()> {
        self.mount.umount().await.map_err(map)
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
    fn url_names_version_port_and_export() {
        let o = NfsOptions {
            export: "/".into(),
            port: 2049,
        };
        assert_eq!(
            nfs_url("10.0.1.100", &o),
            "nfs://10.0.1.100/?version=4.1&noresvport=true&nfsport=2049"
        );
        let o = NfsOptions {
            export: "/export".into(),
            port: 12049,
        };
        assert_eq!(
            nfs_url("127.0.0.2", &o),
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
