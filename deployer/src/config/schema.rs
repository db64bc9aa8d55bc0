//! The typed environment configuration. Every key is documented in docs/configuration.md;
//! keep the two in step. Built-in defaults live here; `environments/defaults.yaml` layers
//! the project's own defaults over them and `<env>.yaml` layers over that.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfig {
    /// Prefix of every resource name.
    #[serde(default = "default_project")]
    pub project: String,
    /// The AWS account the environment lives in (12 digits). Optional only with `endpoint_url`.
    #[serde(default)]
    pub account_id: Option<String>,
    pub region: String,
    /// A local AWS endpoint (moto) for the `local` environment. `AWS_ENDPOINT_URL` overrides it.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Pinned availability zones, in order of preference for new mount targets.
    pub availability_zones: Vec<AvailabilityZone>,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub efs: Efs,
    #[serde(default)]
    pub scaler: Scaler,
    #[serde(default)]
    pub service: Service,
    #[serde(default)]
    pub logs: Logs,
    #[serde(default)]
    pub alarms: Alarms,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub termination_protection: bool,
    /// Name of the SSM parameter holding the mount-target list.
    /// Default `/<project>/<env>/mount-targets`.
    #[serde(default)]
    pub ssm_parameter_name: Option<String>,
}

fn default_project() -> String {
    "efs-autoscaler".to_string()
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityZone {
    pub name: String,
    pub private_subnet_cidr: String,
    /// Only with `network.egress: nat`: the public subnet holding the NAT gateway.
    #[serde(default)]
    pub public_subnet_cidr: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    pub vpc_cidr: String,
    pub egress: Egress,
    /// With `egress: nat`: one NAT gateway for all zones (cheaper) or one per zone (survives
    /// the loss of a zone).
    pub nat_gateways: NatGateways,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            vpc_cidr: "10.0.0.0/16".to_string(),
            egress: Egress::VpcEndpoints,
            nat_gateways: NatGateways::PerAz,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Egress {
    VpcEndpoints,
    Nat,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum NatGateways {
    Single,
    PerAz,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Efs {
    pub performance_mode: PerformanceMode,
    pub throughput_mode: ThroughputMode,
    /// Required with `throughput_mode: provisioned`, MiB/s.
    pub provisioned_throughput_mibps: Option<f64>,
    /// Customer managed KMS key; the AWS managed key for EFS when absent. Always encrypted.
    pub kms_key_arn: Option<String>,
    /// Days without access before a file moves to Infrequent Access; `null` never.
    pub transition_to_ia_days: Option<u32>,
    /// Days before a file moves to Archive (Elastic throughput only); `null` never.
    pub transition_to_archive_days: Option<u32>,
    /// Move a file back to Standard storage on first access.
    pub transition_to_primary_on_access: bool,
    /// AWS Backup's daily backups of the file system.
    pub backup: bool,
    /// `retain` keeps the file system (and its data) when the stack is deleted.
    pub deletion_policy: DeletionPolicy,
    /// Zones that get a mount target with the stack. Default: the first two zones.
    pub initial_mount_target_azs: Option<Vec<String>>,
    /// The file system policy refuses every client that does not use TLS. The router
    /// always mounts with TLS and IAM through its access point; this closes the file
    /// system to anything else.
    pub require_tls: bool,
}

impl Default for Efs {
    fn default() -> Self {
        Efs {
            performance_mode: PerformanceMode::GeneralPurpose,
            throughput_mode: ThroughputMode::Elastic,
            provisioned_throughput_mibps: None,
            kms_key_arn: None,
            transition_to_ia_days: None,
            transition_to_archive_days: None,
            transition_to_primary_on_access: true,
            backup: true,
            deletion_policy: DeletionPolicy::Retain,
            initial_mount_target_azs: None,
            require_tls: true,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub enum PerformanceMode {
    #[serde(rename = "generalPurpose")]
    GeneralPurpose,
    #[serde(rename = "maxIO")]
    MaxIo,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ThroughputMode {
    Bursting,
    Provisioned,
    Elastic,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DeletionPolicy {
    Retain,
    Delete,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Scaler {
    /// Whether the EventBridge schedule is enabled.
    pub enabled: bool,
    /// EventBridge schedule expression: `rate(N unit)` or `cron(6 fields)`.
    pub schedule: String,
    /// Scale out when the file count exceeds this.
    pub file_count_threshold: u64,
    /// Directory to count, relative to the file system root (absolute form, `/` = all).
    pub target_directory: String,
    pub memory_mb: u32,
    pub timeout_seconds: u32,
    /// Must be 1: two concurrent runs could each create a mount target.
    pub reserved_concurrency: u32,
    pub architecture: Architecture,
    pub scaling_policy: ScalingPolicy,
    /// Upper bound on mount targets. Default: one per configured zone.
    pub max_mount_targets: Option<u32>,
}

impl Default for Scaler {
    fn default() -> Self {
        Scaler {
            enabled: true,
            schedule: "rate(5 minutes)".to_string(),
            file_count_threshold: 100_000,
            target_directory: "/".to_string(),
            memory_mb: 1024,
            timeout_seconds: 300,
            reserved_concurrency: 1,
            architecture: Architecture::X86_64,
            scaling_policy: ScalingPolicy::PerTarget,
            max_mount_targets: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub enum Architecture {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
}

impl Architecture {
    /// The name in environment files (and Lambda's).
    pub fn name(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ScalingPolicy {
    /// Desired targets = ceil(count / threshold), bounded by the zones.
    PerTarget,
    /// The original design: one more target per run while count > threshold.
    Seed,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Service {
    pub desired_count: u32,
    /// Fargate CPU units (256 = 0.25 vCPU).
    pub cpu: u32,
    /// Fargate memory, MiB; must be valid for `cpu`.
    pub memory: u32,
    /// Port of the router's S3 API.
    pub port: u16,
    /// Port of the router's admin listener (`/health`, `/targets`, `/metrics`), on the
    /// task's loopback only.
    pub admin_port: u16,
    pub architecture: Architecture,
    pub circuit_breaker: CircuitBreaker,
    pub container_insights: bool,
    /// Seconds after a task starts during which failed container health checks do not
    /// count (the health check's start period; ECS allows 0 to 300).
    pub health_check_grace_seconds: u32,
    /// How the router spreads paths over the mount targets (docs/router.md).
    pub routing: Routing,
    /// `weighted` routing: the same-zone target's share of paths, percent.
    pub local_share_percent: u8,
    /// TCP connections per mount target: `auto` or 1 to 16.
    pub connections_per_target: ConnectionsPerTarget,
    /// Seconds between the router's CloudWatch metric lines.
    pub metrics_interval_seconds: u32,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Routing {
    LocalFirst,
    Spread,
    Weighted,
}

impl Routing {
    pub fn as_str(self) -> &'static str {
        match self {
            Routing::LocalFirst => "local-first",
            Routing::Spread => "spread",
            Routing::Weighted => "weighted",
        }
    }
}

/// `auto`, or a fixed number of connections.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum ConnectionsPerTarget {
    Fixed(u8),
    Auto(AutoKeyword),
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AutoKeyword {
    Auto,
}

impl std::fmt::Display for ConnectionsPerTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectionsPerTarget::Fixed(n) => write!(f, "{n}"),
            ConnectionsPerTarget::Auto(_) => f.write_str("auto"),
        }
    }
}

impl Default for Service {
    fn default() -> Self {
        Service {
            desired_count: 2,
            cpu: 1024,
            memory: 2048,
            port: 8080,
            admin_port: 9090,
            architecture: Architecture::X86_64,
            circuit_breaker: CircuitBreaker::default(),
            container_insights: true,
            health_check_grace_seconds: 30,
            routing: Routing::LocalFirst,
            local_share_percent: 50,
            connections_per_target: ConnectionsPerTarget::Auto(AutoKeyword::Auto),
            metrics_interval_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreaker {
    pub enabled: bool,
    pub rollback: bool,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker {
            enabled: true,
            rollback: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Logs {
    pub retention_days: u32,
}

impl Default for Logs {
    fn default() -> Self {
        Logs { retention_days: 30 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Alarms {
    /// Addresses subscribed to the alarm topic (each confirms by e-mail).
    pub email_subscriptions: Vec<String>,
}
