//! `efs-router serve` settings: flags, each with an environment variable so the task
//! definition can set them, validated before anything connects.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::backend::{BackendKind, Connections, NfsOptions};
use super::pool::{Backoff, Connector};
use super::routing::{Routing, RoutingMode};
use super::tls::{Tls, TlsSettings};

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to serve the S3 API on.
    #[arg(long, env = "ROUTER_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Address of the admin listener (`/health`, `/targets`, `/metrics`; no S3
    /// credentials, so loopback unless there is a reason).
    #[arg(long, env = "ROUTER_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
    /// An AWS shared-credentials file whose every profile is an accepted S3 key pair
    /// (read again when it changes, for rotation). Beside or instead of
    /// ROUTER_ACCESS_KEY_ID and ROUTER_SECRET_ACCESS_KEY.
    #[arg(long, env = "ROUTER_CREDENTIALS_FILE", value_name = "FILE")]
    pub credentials_file: Option<PathBuf>,
    /// Serve unsigned S3 requests too (local development only: refused unless
    /// --listen is a loopback address).
    #[arg(long, env = "ROUTER_ANONYMOUS", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub anonymous: bool,
    /// Serve the S3 API over TLS, with the PEM certificate chain and key in
    /// LISTEN_TLS_CERTIFICATE and LISTEN_TLS_PRIVATE_KEY (for a listener the VPC reaches).
    #[arg(long, env = "ROUTER_LISTEN_TLS", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub listen_tls: bool,
    /// The domain for virtual-hosted-style requests (`BUCKET.DOMAIN`); path-style
    /// requests work either way.
    #[arg(long, env = "ROUTER_DOMAIN", value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// The largest object one PUT may store, MiB (S3's 5 GiB by default); bodies without
    /// a length are counted as they arrive and stopped past it.
    #[arg(long, env = "ROUTER_MAX_OBJECT_MIB", default_value_t = 5120, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=5120))]
    pub max_object_mib: u64,
    /// Client connections open at once; at the cap new ones wait in the backlog. Lowered
    /// to what the open-file limit allows after descriptors kept for the targets.
    #[arg(long, env = "ROUTER_MAX_CONNECTIONS", default_value_t = 1024, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Listings walked at once; more wait their turn, up to the listing deadline.
    #[arg(long, env = "ROUTER_MAX_LISTINGS", default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub max_listings: u64,
    /// Hours after which an unfinished multipart upload is removed.
    #[arg(long, env = "ROUTER_UPLOAD_MAX_AGE_HOURS", default_value_t = 168, value_name = "HOURS", value_parser = clap::value_parser!(u64).range(1..=87_600))]
    pub upload_max_age_hours: u64,
    /// How to reach the mount targets: `nfs` (userspace NFSv4.1, works on Fargate),
    /// `kernel` (mount(2), needs CAP_SYS_ADMIN), `dir` (local directories).
    #[arg(long, env = "ROUTER_BACKEND", value_enum, default_value = "nfs")]
    pub backend: BackendKind,
    /// A target (an IP or host name for nfs/kernel, a directory for dir); repeat for
    /// several. Overrides the published list and the default list.
    #[arg(long = "target", value_name = "T")]
    pub targets: Vec<String>,
    /// Connect somewhere else than the published list says: `FROM=TO`, comma-separated,
    /// where FROM is an address or a CIDR block and TO an address. The list, its ids and
    /// zones, and routing are unchanged; only the connection goes to TO. For stand-ins of
    /// the mount targets (the local environment maps each zone's subnet to a local NFS
    /// server) and for tunnels. Not set in AWS.
    #[arg(long, env = "ROUTER_ADDRESS_MAP", value_name = "FROM=TO,...", value_parser = super::sources::AddressMap::parse)]
    pub address_map: Option<super::sources::AddressMap>,
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
    /// Encrypt every connection to the targets with TLS (default: on for the nfs
    /// backend). `--tls=false` for NFS servers without TLS.
    #[arg(long, env = "ROUTER_TLS", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub tls: Option<bool>,
    /// PEM file of the CAs to trust instead of Amazon Root CA 1-4.
    #[arg(long, env = "TLS_CA_FILE", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// The name the targets' certificates must carry (default:
    /// FS_ID.efs.REGION.amazonaws.com, from the file system id and region).
    #[arg(long, env = "TLS_SERVER_NAME", value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// Authorize with the task role's credentials, as efs-utils' `iam` mount option
    /// (needs --tls).
    #[arg(long, env = "ROUTER_IAM", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub iam: Option<bool>,
    /// The EFS access point to mount through (its root directory and POSIX user apply).
    #[arg(long, env = "EFS_ACCESS_POINT_ID", value_name = "FSAP_ID")]
    pub access_point: Option<String>,
    /// The file system's id (the TLS server name and the IAM signature name it).
    #[arg(long, env = "EFS_FILE_SYSTEM_ID", value_name = "FS_ID")]
    pub file_system_id: Option<String>,
    /// The file system's region.
    #[arg(long, env = "AWS_REGION", value_name = "REGION")]
    pub region: Option<String>,
    /// TCP connections per target: a number (1-16), or `auto` (start with one, add up
    /// to 5 while a target moves 300 MiB/s or more, as efs-proxy does).
    #[arg(
        long,
        env = "CONNECTIONS_PER_TARGET",
        default_value = "auto",
        value_name = "N|auto"
    )]
    pub connections_per_target: Connections,
    /// This task's availability zone (default: from the ECS task metadata endpoint).
    #[arg(long, env = "ROUTER_AZ", value_name = "ZONE")]
    pub az: Option<String>,
    /// How paths are spread over the targets: `local-first` (the same-zone target, the
    /// others only while it is down), `spread` (every target, most bytes crossing
    /// zones), `weighted` (the same-zone target gets --local-share percent). See
    /// docs/router.md.
    #[arg(
        long,
        env = "ROUTER_ROUTING",
        value_enum,
        default_value = "local-first"
    )]
    pub routing: RoutingMode,
    /// `weighted`: the same-zone target's share of paths, in percent.
    #[arg(long, env = "ROUTER_LOCAL_SHARE", default_value_t = 50, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(1..=99))]
    pub local_share: u8,
    /// Seconds between CloudWatch embedded-metric-format lines on stdout (0: none).
    #[arg(
        long,
        env = "METRICS_INTERVAL",
        default_value_t = 60,
        value_name = "SECONDS"
    )]
    pub metrics_interval: u64,
}

impl ServeArgs {
    /// Problems that need no network to find, all at once.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.anonymous && !self.listen.ip().is_loopback() {
            problems.push(format!(
                "--anonymous serves unsigned requests, so it is refused on {} (reachable from other hosts); listen on 127.0.0.1, or sign requests",
                self.listen
            ));
        }
        if let Some(domain) = &self.domain
            && s3s::host::SingleDomain::new(domain).is_err()
        {
            problems.push(format!("--domain {domain:?} is not a domain name"));
        }
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
        if self.tls_on() {
            if self.backend != BackendKind::Nfs {
                problems.push(format!(
                    "--tls is for the nfs backend; the {:?} backend cannot encrypt (use --tls=false)",
                    self.backend
                ));
            } else if self.server_name().is_none() {
                problems.push(
                    "--tls needs the name to check the targets' certificates against: set \
                     EFS_FILE_SYSTEM_ID and AWS_REGION (--file-system-id, --region), or \
                     --tls-server-name, or run with --tls=false for servers without TLS"
                        .to_string(),
                );
            }
        }
        if self.iam_on() {
            if !self.tls_on() {
                problems.push("--iam needs --tls (EFS reads the authorization from the TLS client certificate)".into());
            }
            if self.file_system_id.is_none() || self.region.is_none() {
                problems.push(
                    "--iam needs the file system id and region (EFS_FILE_SYSTEM_ID, AWS_REGION)"
                        .into(),
                );
            }
        }
        if self.access_point.is_some() && !self.tls_on() {
            problems.push("--access-point needs --tls (EFS reads the access point from the TLS client certificate)".into());
        }
        if self.access_point.is_some() && self.file_system_id.is_none() {
            problems.push("--access-point needs the file system id (EFS_FILE_SYSTEM_ID), which the client certificate names".into());
        }
        if let Some(ap) = &self.access_point
            && !ap.starts_with("fsap-")
        {
            problems.push(format!(
                "--access-point {ap:?} is not an access point id (fsap-...)"
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// TLS is on unless turned off, for the nfs backend; off for the others unless asked
    /// (then validation refuses it).
    pub fn tls_on(&self) -> bool {
        self.tls.unwrap_or(self.backend == BackendKind::Nfs)
    }

    pub fn iam_on(&self) -> bool {
        self.iam.unwrap_or(false)
    }

    /// The name the targets' certificates are checked against.
    pub fn server_name(&self) -> Option<String> {
        self.tls_server_name.clone().or_else(|| {
            Some(super::tls::efs_server_name(
                self.file_system_id.as_deref()?,
                self.region.as_deref()?,
            ))
        })
    }

    /// The TLS client, with the IAM or access-point certificate when asked for; `None`
    /// in clear text.
    pub async fn tls_client(&self) -> Result<Option<Tls>, String> {
        if !self.tls_on() {
            return Ok(None);
        }
        let settings = TlsSettings {
            server_name: self.server_name().unwrap_or_default(),
            ca_file: self.tls_ca.clone(),
        };
        let identity = if self.iam_on() || self.access_point.is_some() {
            let credentials = if self.iam_on() {
                let config = crate::aws::sdk_config().await;
                Some(config.credentials_provider().ok_or_else(|| {
                    "--iam: the AWS SDK found no credentials provider".to_string()
                })?)
            } else {
                None
            };
            let identity = super::tls::iam::ClientIdentity::new(
                super::tls::iam::IdentitySettings {
                    file_system_id: self.file_system_id.clone().unwrap_or_default(),
                    region: self.region.clone().unwrap_or_default(),
                    access_point_id: self.access_point.clone(),
                    common_name: host_name(),
                },
                credentials,
            )
            .await
            .map_err(|e| e.to_string())?;
            identity.spawn_renewal();
            let resolver: std::sync::Arc<dyn rustls::client::ResolvesClientCert> = identity;
            Some(resolver)
        } else {
            None
        };
        Tls::new(&settings, identity)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    pub fn connector(&self, tls: Option<Tls>) -> Connector {
        Connector {
            kind: self.backend,
            nfs: NfsOptions {
                export: self.export.clone(),
                port: self.nfs_port,
                tls,
                connections: self.connections_per_target,
                connect_timeout: Duration::from_secs(self.connect_timeout),
                private_dir: Some(super::s3::names::RESERVED.to_string()),
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

    pub fn routing(&self, zone: Option<String>) -> Routing {
        Routing {
            mode: self.routing,
            zone,
            local_share: f64::from(self.local_share) / 100.0,
        }
    }

    pub fn backoff(&self) -> Backoff {
        Backoff {
            first: Duration::from_millis(250),
            max: Duration::from_secs(15),
        }
    }
}

/// This host's name, as efs-utils puts it in the certificate (a Fargate task's is its
/// ENI's private DNS name).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "efs-router".to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn problems(args: &[&str]) -> Result<(), String> {
        let cli = Cli::try_parse_from(
            ["efs-router", "--backend", "dir", "--target", "/srv"]
                .iter()
                .chain(args),
        )
        .unwrap();
        cli.serve.validate()
    }

    #[test]
    fn unsigned_access_only_on_loopback() {
        assert!(problems(&["--anonymous", "--listen", "127.0.0.1:8080"]).is_ok());
        assert!(problems(&["--anonymous", "--listen", "[::1]:8080"]).is_ok());
        for wide in ["0.0.0.0:8080", "10.0.1.5:8080", "[::]:8080"] {
            let e = problems(&["--anonymous", "--listen", wide]).unwrap_err();
            assert!(
                e.contains("--anonymous serves unsigned requests"),
                "{wide}: {e}"
            );
        }
        // Signed requests on any address are fine.
        assert!(problems(&["--listen", "0.0.0.0:8080"]).is_ok());
    }

    #[test]
    fn a_domain_must_be_a_domain() {
        assert!(problems(&["--domain", "s3.internal"]).is_ok());
        assert!(problems(&["--domain", "not a domain"]).is_err());
    }
}
