//! The typed environment configuration. Every key is documented in docs/configuration.md;
//! keep the two in step. Built-in defaults live here; `environments/defaults.yaml` layers
//! the project's own defaults over them and `<env>.yaml` layers over that.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
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
    /// Containers that run in the router's task and reach the file system through it.
    #[serde(default)]
    pub applications: Vec<Application>,
    #[serde(default)]
    pub logs: Logs,
    #[serde(default)]
    pub alarms: Alarms,
    #[serde(default)]
    pub release: Release,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub termination_protection: bool,
    /// A role CloudFormation assumes to create, change and delete the stack's resources
    /// (its service role). The person or pipeline running the deployer then needs no
    /// rights of their own on IAM, EFS, ECS or Lambda: `iam:PassRole` on this role and
    /// the CloudFormation calls suffice.
    #[serde(default)]
    pub cloudformation_role_arn: Option<String>,
    /// Name of the SSM parameter holding the mount-target list.
    /// Default `/<project>/<env>/mount-targets`.
    #[serde(default)]
    pub ssm_parameter_name: Option<String>,
}

impl EnvironmentConfig {
    /// The router's task: CPU units and MiB, the router's share plus every application's.
    pub fn task_size(&self) -> (u32, u32) {
        self.applications.iter().fold(
            (self.service.cpu, self.service.memory),
            |(cpu, memory), a| (cpu.saturating_add(a.cpu), memory.saturating_add(a.memory)),
        )
    }
}

fn default_project() -> String {
    "efs-autoscaler".to_string()
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityZone {
    pub name: String,
    pub private_subnet_cidr: String,
    /// Only with `network.egress: nat`: the public subnet holding the NAT gateway.
    #[serde(default)]
    pub public_subnet_cidr: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
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

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Egress {
    VpcEndpoints,
    Nat,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NatGateways {
    Single,
    PerAz,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
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

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub enum PerformanceMode {
    #[serde(rename = "generalPurpose")]
    GeneralPurpose,
    #[serde(rename = "maxIO")]
    MaxIo,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ThroughputMode {
    Bursting,
    Provisioned,
    Elastic,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeletionPolicy {
    Retain,
    Delete,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
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
    /// AWS X-Ray active tracing of the function's invocations.
    pub tracing: bool,
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
            tracing: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
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

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ScalingPolicy {
    /// Desired targets = ceil(count / threshold), bounded by the zones.
    PerTarget,
    /// The original design: one more target per run while count > threshold.
    Seed,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Service {
    /// Tasks at creation; auto scaling moves the count between its bounds afterwards.
    pub desired_count: u32,
    /// The router container's CPU units (256 = 0.25 vCPU). The task's CPU is this plus
    /// every application's, and must be a Fargate CPU value.
    pub cpu: u32,
    /// The router container's memory, MiB. The task's memory is this plus every
    /// application's, and must be valid for the task's CPU.
    pub memory: u32,
    /// Who reaches the router's S3 API: `task` (containers in its task, on loopback) or
    /// `vpc` (the security groups in `clients`, at a DNS name in the VPC).
    pub expose: Expose,
    /// With `expose: vpc`: security group ids allowed to reach the router's port.
    pub clients: Vec<String>,
    /// With `expose: vpc`: the private DNS namespace the router is registered in
    /// (Cloud Map). Default `<stack>.internal`.
    pub namespace: Option<String>,
    /// With `expose: vpc`: a Secrets Manager secret holding the router's TLS certificate
    /// chain and private key (JSON keys `certificate` and `private_key`, PEM).
    pub tls_certificate_secret_arn: Option<String>,
    /// With `expose: vpc`: serve plain HTTP instead of TLS. SigV4 still authenticates
    /// every request and signs its headers, but bodies cross the VPC readable.
    pub allow_plaintext: bool,
    pub autoscaling: Autoscaling,
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

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ConnectionsPerTarget {
    Fixed(u8),
    Auto(AutoKeyword),
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
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
            expose: Expose::Task,
            clients: Vec::new(),
            namespace: None,
            tls_certificate_secret_arn: None,
            allow_plaintext: false,
            autoscaling: Autoscaling::default(),
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

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Expose {
    Task,
    Vpc,
}

/// ECS service auto scaling: target tracking on the tasks' average CPU.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Autoscaling {
    pub enabled: bool,
    pub min_tasks: u32,
    pub max_tasks: u32,
    /// The average CPU utilisation, percent, scaling keeps the service at.
    pub cpu_target_percent: u8,
    /// Seconds after a scale-in before the next one: tasks drain in the meantime.
    pub scale_in_cooldown_seconds: u32,
    pub scale_out_cooldown_seconds: u32,
}

impl Default for Autoscaling {
    fn default() -> Self {
        Autoscaling {
            enabled: true,
            min_tasks: 2,
            max_tasks: 6,
            cpu_target_percent: 60,
            scale_in_cooldown_seconds: 300,
            scale_out_cooldown_seconds: 60,
        }
    }
}

/// A container in the router's task.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// Container name: letters, digits, `-` and `_`; not `router`.
    pub name: String,
    /// Image reference (`registry/repository:tag` or `…@sha256:<digest>`).
    pub image: String,
    /// Replaces the image's entry point; empty keeps it.
    #[serde(default)]
    pub entry_point: Vec<String>,
    /// Replaces the image's command; empty keeps it.
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Variable name → Secrets Manager secret or SSM parameter ARN (a secret's JSON key
    /// as `arn:…:secret:name:key::`).
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// CPU units, added to the task's.
    pub cpu: u32,
    /// Memory, MiB (the container's hard limit), added to the task's.
    pub memory: u32,
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    /// Whether the task stops when this container stops.
    #[serde(default = "yes")]
    pub essential: bool,
    /// A read-only root file system (the default); `false` for an image that writes
    /// outside its volumes.
    #[serde(default = "yes")]
    pub readonly_root_filesystem: bool,
    /// Which variables carry the router's key pair: `aws` (`AWS_ACCESS_KEY_ID`, …: every
    /// SDK uses it with no code change) or `router` (`ROUTER_ACCESS_KEY_ID`, …: for an
    /// application that also calls AWS with the task role).
    #[serde(default)]
    pub s3_credentials: S3Credentials,
}

fn yes() -> bool {
    true
}

#[derive(
    Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum S3Credentials {
    #[default]
    Aws,
    Router,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortMapping {
    pub container_port: u16,
    #[serde(default)]
    pub protocol: Protocol,
}

#[derive(
    Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// As ECS takes it: `[CMD, …]` or `[CMD-SHELL, "…"]`.
    pub command: Vec<String>,
    #[serde(default = "health_interval")]
    pub interval_seconds: u32,
    #[serde(default = "health_timeout")]
    pub timeout_seconds: u32,
    #[serde(default = "health_retries")]
    pub retries: u32,
    #[serde(default)]
    pub start_period_seconds: u32,
}

fn health_interval() -> u32 {
    30
}
fn health_timeout() -> u32 {
    5
}
fn health_retries() -> u32 {
    3
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
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

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Logs {
    pub retention_days: u32,
}

impl Default for Logs {
    fn default() -> Self {
        Logs { retention_days: 30 }
    }
}

/// Releases `deployer up` records (`deployer rollback` goes back through them).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Release {
    /// Releases kept: their scaler versions and router task definitions stay, older
    /// ones are deleted after each `up`.
    pub keep: u32,
    /// How a new scaler version takes over its alias.
    pub scaler_rollout: Rollout,
    /// With `canary`: the share of runs the new version gets first, in percent.
    pub canary_percent: u32,
    /// With `canary`: how long the new version runs beside the old one, watched by the
    /// scaler's error alarm, before it takes every run.
    pub canary_minutes: u32,
}

impl Default for Release {
    fn default() -> Self {
        Release {
            keep: 5,
            scaler_rollout: Rollout::AllAtOnce,
            canary_percent: 50,
            canary_minutes: 30,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Rollout {
    /// The alias moves to the new version when the stack update reaches it.
    AllAtOnce,
    /// CodeDeploy moves `canary_percent` of the runs first, watches the error alarm for
    /// `canary_minutes`, then moves the rest, or moves the alias back on an alarm.
    Canary,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Alarms {
    /// Addresses subscribed to the critical topic (each confirms by e-mail).
    pub email_subscriptions: Vec<String>,
    /// Addresses subscribed to the warning topic.
    pub warning_email_subscriptions: Vec<String>,
}
