//! The `kernel` backend's mount: each target mounted by the kernel NFS client at
//! `/mnt/efs-N` with the options amazon-efs-utils uses, then read and written as local
//! files (`local.rs`). Needs CAP_SYS_ADMIN and a kernel NFS client: EC2 hosts and
//! privileged containers, never Fargate.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::mount::{MntFlags, MsFlags};

use super::{BackendError, Result};

/// The EFS-recommended options (amazon-efs-utils): NFSv4.1, 1 MiB transfers, a hard
/// mount that retries rather than returning EIO to a writer, 60 s per retry, and an
/// unprivileged source port so a reconnect never waits for a reserved port. `addr=` is
/// what mount.nfs would add after resolving the server; mount(2) needs it.
pub fn mount_options(address: &str) -> String {
    format!(
        "vers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport,addr={address}"
    )
}

#[derive(Debug)]
pub struct KernelMount {
    point: PathBuf,
}

impl KernelMount {
    /// Mounts `address:export` at `point`, creating the directory.
    pub async fn mount(
        address: &str,
        export: &str,
        point: &Path,
        timeout: Duration,
    ) -> Result<Self> {
        let source = format!("{address}:{export}");
        let options = mount_options(address);
        let at = point.to_path_buf();
        let call = tokio::task::spawn_blocking(move || -> std::result::Result<(), String> {
            std::fs::create_dir_all(&at)
                .map_err(|e| format!("cannot create {}: {e}", at.display()))?;
            nix::mount::mount(
                Some(source.as_str()),
                &at,
                Some("nfs4"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(options.as_str()),
            )
            .map_err(|errno| explain(errno, &source, &at))
        });
        let mut call = call;
        match tokio::time::timeout(timeout, &mut call).await {
            Err(_) => {
                // mount(2) cannot be cancelled: if it succeeds after all, undo it, or the
                // next attempt would stack a second mount on this point.
                let at = point.to_path_buf();
                tokio::spawn(async move {
                    if let Ok(Ok(())) = call.await {
                        let undo = tokio::task::spawn_blocking(move || {
                            nix::mount::umount2(&at, MntFlags::MNT_DETACH)
                        });
                        let _ = undo.await;
                    }
                });
                Err(BackendError::Timeout(timeout))
            }
            Ok(Err(join)) => Err(BackendError::Failed(format!("mount call panicked: {join}"))),
            Ok(Ok(Err(message))) => Err(BackendError::Unavailable(message)),
            Ok(Ok(Ok(()))) => Ok(KernelMount {
                point: point.to_path_buf(),
            }),
        }
    }

    pub fn point(&self) -> &Path {
        &self.point
    }

    /// A lazy unmount: never blocks on a dead server, and in-flight calls finish first.
    pub async fn unmount(&self) -> Result<()> {
        let at = self.point.clone();
        tokio::task::spawn_blocking(move || nix::mount::umount2(&at, MntFlags::MNT_DETACH))
            .await
            .map_err(|e| BackendError::Failed(e.to_string()))?
            .map_err(|errno| {
                BackendError::Failed(format!("umount {}: {errno}", self.point.display()))
            })
    }
}

fn explain(errno: nix::errno::Errno, source: &str, at: &Path) -> String {
    use nix::errno::Errno;
    let why = match errno {
        Errno::EPERM => {
            "not permitted: the kernel backend needs CAP_SYS_ADMIN (a privileged container or an EC2 host); on Fargate use --backend nfs"
        }
        Errno::ENODEV => {
            "this kernel has no NFS client (nfs4 file system type unknown); use --backend nfs"
        }
        Errno::ECONNREFUSED => "connection refused by the NFS server",
        Errno::ETIMEDOUT => "the NFS server did not answer",
        _ => errno.desc(),
    };
    format!("mount {source} at {}: {why} ({errno})", at.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_the_efs_ones() {
        assert_eq!(
            mount_options("10.0.1.100"),
            "vers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport,addr=10.0.1.100"
        );
    }

    /// The CI machine's kernel has no NFS client (and containers may not mount), so the real
    /// mount fails; what is checked is that the failure is explained, not a hang or a
    /// bare errno.
    #[tokio::test]
    async fn a_failed_mount_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let point = dir.path().join("efs-0");
        let err = KernelMount::mount("127.0.0.1", "/", &point, Duration::from_secs(10))
            .await
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(err.is_target_failure(), "{text}");
        assert!(text.contains("mount 127.0.0.1:/ at"), "{text}");
        assert!(
            text.contains("--backend nfs") || text.contains("refused"),
            "{text}"
        );
    }
}
