//! `efs-router serve` settings: flags, each with an environment variable so the task
//! definition can set them, validated before anything connects.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::backend::{BackendKind, NfsOptions};
use super::pool::{Backoff, Connector};

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to serve the HTTP API on.
    #[arg(long, env = "ROUTER_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// How to reach the mount targets: `nfs` (userspace NFSv4.1, works on Fargate),
    /// `kernel` (mount(2), needs CAP_SYS_ADMIN), `dir` (local directories).
    #[arg(long, env = "ROUTER_BACKEND", value_enum, default_value = "nfs")]
    pub backend: BackendKind,
    /// A target (an IP or host name for nfs/kernel, a directory for dir); repeat for
    /// several. Overrides the published list and the default list.
    #[arg(long = "target", value_name = "T")]
    pub targets: Vec<String>,
    /// The SSM parameter holding the published mount-target list.
    #[arg(long, env = "SSM_PARAMETER_NAME", value_name = "NAME")]
    pub parameter: Option<String>,
    /// Comma-separated targets to start with when the parameter cannot be read.
    #[arg(long, env = "DEFAULT_MOUNT_TARGETS", value_name = "LIST")]
    pub default_targets: Option<String>,
    /// The exported path on each target (`/` on EFS).
    #[arg(long, env = "NFS_EXPORT", default_value = "/")]
    pub export: String,
    /// The NFS port on each target.
    #[arg(long, env = "NFS_PORT", default_value_t = 2049)]
    pub nfs_port: u16,
    /// Kernel backend: targets are mounted at DIR/efs-0, DIR/efs-1, ...
    #[arg(long, env = "MOUNT_ROOT", default_value = "/mnt", value_name = "DIR")]
    pub mount_root: PathBuf,
    /// Seconds to wait for one target to connect (start-up waits at most this long).
    #[arg(long, env = "CONNECT_TIMEOUT", default_value_t = 5, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=300))]
    pub connect_timeout: u64,
    /// Seconds any single file-system call may take before its target is marked down.
    #[arg(long, env = "OPERATION_TIMEOUT", default_value_t = 10, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=600))]
    pub operation_timeout: u64,
    /// Seconds between health probes of each target in service.
    #[arg(long, env = "PROBE_INTERVAL", default_value_t = 5, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub probe_interval: u64,
    /// Seconds between reads of the published list (0: never re-read).
    #[arg(
        long,
        env = "LIST_REFRESH",
        default_value_t = 30,
        value_name = "SECONDS"
    )]
    pub refresh: u64,
    /// Seconds to finish in-flight requests after SIGTERM (keep below the task's
    /// stopTimeout, 30 s in our template).
    #[arg(
        long,
        env = "GRACE_PERIOD",
        default_value_t = 25,
        value_name = "SECONDS"
    )]
    pub grace_period: u64,
    /// MiB all transfers together may hold in flight (bounds memory; each stream uses up
    /// to 8 MiB of it when alone).
    #[arg(long, env = "TRANSFER_BUFFER_MIB", default_value_t = 16, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub buffer_mib: u64,
}

impl ServeArgs {
    /// Problems that need no network to find, all at once.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.backend == BackendKind::Dir && self.targets.is_empty() {
            problems.push("the dir backend needs --target DIR (one per target)".to_string());
        }
        if !self.export.starts_with('/') {
            problems.push(format!(
                "--export / NFS_EXPORT {:?} must be an absolute path such as /",
                self.export
            ));
        }
        if self.backend == BackendKind::Kernel && !self.mount_root.is_absolute() {
            problems.push(format!(
                "--mount-root {} must be absolute",
                self.mount_root.display()
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    pub fn connector(&self) -> Connector {
        Connector {
            kind: self.backend,
            nfs: NfsOptions {
                export: self.export.clone(),
                port: self.nfs_port,
            },
            mount_root: self.mount_root.clone(),
            connect_timeout: Duration::from_secs(self.connect_timeout),
            op_timeout: Duration::from_secs(self.operation_timeout),
        }
    }

    /// Bytes all transfers together may hold in flight.
    pub fn transfer_budget(&self) -> usize {
        usize::try_from(self.buffer_mib << 20).unwrap_or(usize::MAX)
    }

    /// Large blocks the process may keep, in use and cached together (see
    /// `router::alloc`): the transfer budget plus room for each NFS connection's 1 MiB
    /// reader.
    pub fn recycling_limit(&self) -> usize {
        self.transfer_budget().saturating_add(8 << 20)
    }

    pub fn backoff(&self) -> Backoff {
        Backoff {
            first: Duration::from_millis(250),
            max: Duration::from_secs(15),
        }
    }
}
