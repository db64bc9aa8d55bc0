//! What the templates see. Decisions live here, in Rust, where they are typed and tested;
//! the templates only place values. Strings reach the templates raw and are written with
//! the `json` helper, so no configured value can break the YAML.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::config::{
    Application, Architecture, DeletionPolicy, Egress, Environment, Expose, ImageRef, NatGateways,
    PerformanceMode, Protocol, S3Credentials, ScalingPolicy, ThroughputMode, logical_id,
};

/// AWS services the scaler and the tasks call, reached through interface endpoints when
/// the environment has no NAT: logical-id part, endpoint service, IAM action prefix (what
/// the endpoint's policy admits), why. S3 (image layers) uses the free gateway endpoint.
const INTERFACE_ENDPOINTS: &[(&str, &str, &str, &str)] = &[
    (
        "ElasticFileSystem",
        "elasticfilesystem",
        "elasticfilesystem",
        "the scaler describes and creates mount targets",
    ),
    (
        "Ssm",
        "ssm",
        "ssm",
        "the scaler writes and the router reads the mount-target list",
    ),
    (
        "Ecs",
        "ecs",
        "ecs",
        "the scaler forces a new deployment of the router service",
    ),
    (
        "EcrApi",
        "ecr.api",
        "ecr",
        "tasks authenticate to the image repository",
    ),
    ("EcrDkr", "ecr.dkr", "ecr", "tasks pull the router image"),
    (
        "SecretsManager",
        "secretsmanager",
        "secretsmanager",
        "tasks receive the router's S3 key pair",
    ),
    (
        "Logs",
        "logs",
        "logs",
        "tasks ship their logs with the awslogs driver",
    ),
];

/// Where the router binary sits in the image (the image contract with `deployer package`).
pub const ROUTER_BINARY: &str = "/usr/local/bin/efs-router";
/// Where Lambda mounts the file system for the scaler.
pub const SCALER_MOUNT_PATH: &str = "/mnt/efs";
/// The router's access point root (templates/partials/storage.yaml.hbs): the router
/// serves this directory, and keeps its private state in it.
pub const ROUTER_ACCESS_POINT_ROOT: &str = "/data";
/// The router's private directory at its root (runtime::router::s3::names::RESERVED;
/// the deployer does not depend on the runtime, so the name is written twice and a test
/// of the rendered template checks them against each other).
pub const ROUTER_STATE_DIRECTORY: &str = ".efs-router";

#[derive(Debug, Serialize)]
pub struct Context {
    pub env: String,
    pub project: String,
    pub stack_name: String,
    pub description: String,
    pub tags: Vec<Tag>,
    pub zones: Vec<Zone>,
    pub network: NetworkCtx,
    pub efs: EfsCtx,
    pub scaler: ScalerCtx,
    pub service: ServiceCtx,
    pub monitoring: MonitoringCtx,
    pub ssm_parameter_name: String,
    /// `Fn::Sub` body of the parameter's ARN (the parameter is not a stack resource).
    pub ssm_parameter_arn: String,
    pub ecr_repository: String,
    /// Comma-separated zones that get a mount target with the stack.
    pub initial_mount_target_zones: String,
    /// The resolved configuration, kept in the template's metadata so `deployer diff`
    /// can compare it with what is deployed.
    pub resolved_config: serde_json::Value,
}

/// The environment's resolved configuration as the template's metadata keeps it.
pub fn resolved_config(env: &Environment) -> serde_json::Value {
    without_nulls(serde_json::to_value(&env.config).unwrap_or_default())
}

/// `value` without null entries: CloudFormation refuses nulls in metadata, and an
/// unset key means its default anyway.
fn without_nulls(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// The bootstrap template's context. The bootstrap stack is shared by every environment
/// of an account and region, so it carries no environment tags.
#[derive(Debug, Serialize)]
pub struct BootstrapContext {
    pub project: String,
    pub tags: Vec<Tag>,
    pub bootstrap: BootstrapCtx,
}

#[derive(Debug, Serialize, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Serialize)]
pub struct Zone {
    pub name: String,
    /// Logical-id suffix: the zone letter, upper case (`ap-northeast-1c` → `C`). Stable when
    /// zones are added or reordered, so no resource is replaced for it.
    pub key: String,
    pub private_cidr: String,
    pub public_cidr: Option<String>,
    pub initial_mount_target: bool,
    /// The zone whose NAT gateway this zone's private subnet routes through.
    pub nat_key: Option<String>,
    pub has_nat_gateway: bool,
}

#[derive(Debug, Serialize)]
pub struct NetworkCtx {
    pub vpc_cidr: String,
    pub nat: bool,
    pub endpoints: bool,
    pub interface_endpoints: Vec<Endpoint>,
}

#[derive(Debug, Serialize)]
pub struct Endpoint {
    pub key: String,
    pub service: String,
    /// The IAM prefix of the service's actions (`ecr` for both ECR endpoints).
    pub actions: String,
    pub why: String,
}

#[derive(Debug, Serialize)]
pub struct EfsCtx {
    pub performance_mode: &'static str,
    pub throughput_mode: &'static str,
    pub provisioned_mibps: Option<f64>,
    pub kms_key_arn: Option<String>,
    pub lifecycle: Vec<serde_json::Value>,
    pub backup: &'static str,
    pub deletion_policy: &'static str,
    pub io_limit_alarm: bool,
    pub require_tls: bool,
}

#[derive(Debug, Serialize)]
pub struct ScalerCtx {
    pub function_name: String,
    pub rule_name: String,
    pub state: &'static str,
    pub schedule: String,
    pub threshold: u64,
    pub target_directory: String,
    pub mount_path: &'static str,
    /// The router's private directory as the scaler sees it, left out of the count.
    pub router_state_directory: String,
    pub memory_mb: u32,
    pub timeout_seconds: u32,
    pub reserved_concurrency: u32,
    pub architecture: &'static str,
    pub scaling_policy: &'static str,
    pub max_mount_targets: u32,
    /// The initial mount targets: the per-target policy never aims below them.
    pub min_mount_targets: usize,
    pub log_group: String,
    /// `Fn::Sub` body of the candidate-subnet JSON the scaler receives.
    pub candidate_subnets: String,
    /// 80 % of the timeout, in milliseconds.
    pub duration_alarm_ms: u64,
    /// The schedule's period in seconds when the scaler runs on a `rate()` of at most a
    /// day: the missed-runs alarm counts invocations per period. `None`: no such alarm
    /// (a disabled scaler, a `cron()` schedule, or periods longer than CloudWatch's).
    pub missed_runs_period: Option<u64>,
    /// X-Ray active tracing (`scaler.tracing`).
    pub tracing: bool,
    /// The alias the schedule, the alarms and `deployer invoke` use.
    pub alias: &'static str,
    /// `release.scaler_rollout: canary`: CodeDeploy moves the alias in two steps.
    pub canary: Option<CanaryCtx>,
    /// A digest of the function's rendered resource (set by the renderer, which renders
    /// the function first): the version's description, so a changed function publishes.
    pub function_digest: String,
}

#[derive(Debug, Serialize)]
pub struct CanaryCtx {
    pub percent: u32,
    pub minutes: u32,
}

#[derive(Debug, Serialize)]
pub struct ServiceCtx {
    pub cluster_name: String,
    /// The name of the secret with the router's key pair (`deployer rotate-credentials`
    /// finds it by this name).
    pub credentials_secret: String,
    pub service_name: String,
    pub family: String,
    pub desired_count: u32,
    /// The task's size: the router's share plus every application's.
    pub cpu: String,
    pub memory: String,
    pub router_cpu: u32,
    pub router_memory: u32,
    pub port: u16,
    pub admin_port: u16,
    /// Where the router's S3 listener binds: the task's loopback, or every interface
    /// when the VPC's clients reach it.
    pub listen: String,
    pub vpc: Option<VpcExposure>,
    pub autoscaling: Option<AutoscalingCtx>,
    pub applications: Vec<AppCtx>,
    /// Resources the execution role reads for the application containers.
    pub pull_repositories: Vec<String>,
    pub secret_arns: Vec<String>,
    pub parameter_arns: Vec<String>,
    pub cpu_architecture: &'static str,
    pub circuit_breaker_enabled: bool,
    pub circuit_breaker_rollback: bool,
    pub container_insights: &'static str,
    pub running_tasks_alarm: bool,
    /// The running-task alarm's threshold: the fewest tasks there should ever be (auto
    /// scaling's minimum, or the fixed count).
    pub min_running_tasks: u32,
    pub health_check_start_seconds: u32,
    pub log_group: String,
    pub binary: &'static str,
    /// `Fn::Sub` body of the per-zone EFS DNS names the router starts with when the SSM list
    /// cannot be read (seed: "start with the initial mount targets").
    pub default_mount_targets: String,
    pub routing: &'static str,
    pub local_share_percent: u8,
    pub connections_per_target: String,
    pub metrics_interval_seconds: u32,
}

/// `service.expose: vpc`: the router at a DNS name, reached by named security groups.
#[derive(Debug, Serialize)]
pub struct VpcExposure {
    pub clients: Vec<ClientGroup>,
    pub namespace: String,
    /// The name clients use: `router.<namespace>`.
    pub dns_name: String,
    /// The secret with the listener's certificate; plain HTTP when absent.
    pub tls_secret_arn: Option<String>,
    pub scheme: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ClientGroup {
    pub id: String,
}

#[derive(Debug, Serialize)]
pub struct AutoscalingCtx {
    pub min_tasks: u32,
    pub max_tasks: u32,
    pub cpu_target_percent: u8,
    pub scale_in_cooldown_seconds: u32,
    pub scale_out_cooldown_seconds: u32,
}

/// An application container, as the task definition takes it.
#[derive(Debug, Serialize)]
pub struct AppCtx {
    pub name: String,
    /// Logical-id part of its resources (its log group).
    pub key: String,
    pub image: String,
    pub entry_point: Vec<String>,
    pub command: Vec<String>,
    pub environment: Vec<NameValue>,
    pub secrets: Vec<NameValue>,
    pub cpu: u32,
    pub memory: u32,
    pub port_mappings: Vec<PortCtx>,
    pub health_check: Option<crate::config::HealthCheck>,
    pub essential: bool,
    pub readonly_root_filesystem: bool,
    pub log_group: String,
    /// The variables the router's key pair is given in.
    pub access_key_variable: &'static str,
    pub secret_key_variable: &'static str,
}

#[derive(Debug, Serialize)]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Serialize)]
pub struct PortCtx {
    pub container_port: u16,
    pub protocol: &'static str,
}

#[derive(Debug, Serialize)]
pub struct MonitoringCtx {
    pub retention_days: u32,
    /// Subscribed to the critical topic, `AlarmTopic`.
    pub emails: Vec<Email>,
    /// Subscribed to the warning topic, `WarningTopic`.
    pub warning_emails: Vec<Email>,
}

fn emails(addresses: &[String]) -> Vec<Email> {
    addresses
        .iter()
        .enumerate()
        .map(|(i, a)| Email {
            key: format!("{}", i + 1),
            address: a.clone(),
        })
        .collect()
}

#[derive(Debug, Serialize)]
pub struct Email {
    pub key: String,
    pub address: String,
}

#[derive(Debug, Serialize)]
pub struct BootstrapCtx {
    pub stack_name: String,
    pub bucket_prefix: String,
    pub ecr_repository: String,
    pub noncurrent_days: u32,
    /// ECR lifecycle policy text: keep the newest images only.
    pub lifecycle_policy: String,
    /// The prefix of the deployed-image tags, which may move.
    pub deployed_tag_prefix: &'static str,
}

/// Images kept in the repository beside the deployed ones; older ones expire.
const KEEP_IMAGES: u32 = 10;
/// The tag prefix of an environment's deployed image (`deployed-prod`), which the
/// lifecycle policy never expires.
pub const DEPLOYED_TAG_PREFIX: &str = "deployed-";
/// A bound no repository reaches (one deployed tag per environment): the rule exists to
/// shield those images from the next one.
const KEEP_DEPLOYED: u32 = 1000;

fn zone_key(region: &str, zone: &str) -> String {
    zone.strip_prefix(region)
        .unwrap_or(zone)
        .to_ascii_uppercase()
}

fn arch(a: Architecture) -> (&'static str, &'static str) {
    match a {
        Architecture::X86_64 => ("x86_64", "X86_64"),
        Architecture::Arm64 => ("arm64", "ARM64"),
    }
}

fn days(n: u32) -> String {
    if n == 1 {
        "AFTER_1_DAY".to_string()
    } else {
        format!("AFTER_{n}_DAYS")
    }
}

/// The ARN a task definition's `valueFrom` names, without a secret's JSON key, version
/// stage and version id: what IAM grants on.
fn secret_resource(value_from: &str) -> String {
    value_from
        .splitn(8, ':')
        .take(7)
        .collect::<Vec<_>>()
        .join(":")
}

fn application(app: &Application, log_group: String) -> AppCtx {
    let image = ImageRef::parse(&app.image).map_or_else(|_| app.image.clone(), |r| r.pinned());
    let (access_key_variable, secret_key_variable) = match app.s3_credentials {
        S3Credentials::Aws => ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
        S3Credentials::Router => ("ROUTER_ACCESS_KEY_ID", "ROUTER_SECRET_ACCESS_KEY"),
    };
    AppCtx {
        name: app.name.clone(),
        key: logical_id(&app.name),
        image,
        entry_point: app.entry_point.clone(),
        command: app.command.clone(),
        environment: app
            .environment
            .iter()
            .map(|(name, value)| NameValue {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        secrets: app
            .secrets
            .iter()
            .map(|(name, value)| NameValue {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        cpu: app.cpu,
        memory: app.memory,
        port_mappings: app
            .port_mappings
            .iter()
            .map(|p| PortCtx {
                container_port: p.container_port,
                protocol: match p.protocol {
                    Protocol::Tcp => "tcp",
                    Protocol::Udp => "udp",
                },
            })
            .collect(),
        health_check: app.health_check.clone(),
        essential: app.essential,
        readonly_root_filesystem: app.readonly_root_filesystem,
        log_group,
        access_key_variable,
        secret_key_variable,
    }
}

impl Context {
    pub fn new(env: &Environment) -> Context {
        let c = &env.config;
        let stack_name = env.stack_name();
        let name = |suffix: &str| format!("{stack_name}-{suffix}");

        let mut tags: Vec<Tag> = c
            .tags
            .iter()
            .map(|(k, v)| Tag {
                key: k.clone(),
                value: v.clone(),
            })
            .collect();
        for (key, value) in [
            ("efs-autoscaler:environment", env.name.as_str()),
            ("efs-autoscaler:stack", stack_name.as_str()),
        ] {
            tags.push(Tag {
                key: key.to_string(),
                value: value.to_string(),
            });
        }

        let initial = env.initial_mount_target_azs();
        let nat = c.network.egress == Egress::Nat;
        let first_key = c
            .availability_zones
            .first()
            .map(|z| zone_key(&c.region, &z.name));
        let zones: Vec<Zone> = c
            .availability_zones
            .iter()
            .enumerate()
            .map(|(i, z)| {
                let key = zone_key(&c.region, &z.name);
                let has_nat_gateway =
                    nat && (c.network.nat_gateways == NatGateways::PerAz || i == 0);
                let nat_key = match (nat, c.network.nat_gateways) {
                    (false, _) => None,
                    (true, NatGateways::PerAz) => Some(key.clone()),
                    (true, NatGateways::Single) => first_key.clone(),
                };
                Zone {
                    name: z.name.clone(),
                    key,
                    private_cidr: z.private_subnet_cidr.clone(),
                    public_cidr: z.public_subnet_cidr.clone(),
                    initial_mount_target: initial.contains(&z.name),
                    nat_key,
                    has_nat_gateway,
                }
            })
            .collect();

        let candidate_subnets = format!(
            "[{}]",
            zones
                .iter()
                .map(|z| format!(
                    r#"{{"availability_zone":"{}","subnet_id":"${{PrivateSubnet{}}}"}}"#,
                    z.name, z.key
                ))
                .collect::<Vec<_>>()
                .join(",")
        );
        let default_mount_targets = zones
            .iter()
            .filter(|z| z.initial_mount_target)
            .map(|z| {
                format!(
                    "{}.${{FileSystem}}.efs.${{AWS::Region}}.${{AWS::URLSuffix}}",
                    z.name
                )
            })
            .collect::<Vec<_>>()
            .join(",");

        let efs = &c.efs;
        let mut lifecycle = Vec::new();
        if let Some(d) = efs.transition_to_ia_days {
            lifecycle.push(serde_json::json!({ "TransitionToIA": days(d) }));
        }
        if let Some(d) = efs.transition_to_archive_days {
            lifecycle.push(serde_json::json!({ "TransitionToArchive": days(d) }));
        }
        if efs.transition_to_primary_on_access {
            lifecycle
                .push(serde_json::json!({ "TransitionToPrimaryStorageClass": "AFTER_1_ACCESS" }));
        }

        let ssm_parameter_name = env.ssm_parameter_name();
        let ecr_repository = env.ecr_repository();
        let (scaler_arch, _) = arch(c.scaler.architecture);
        let (_, service_arch) = arch(c.service.architecture);

        Context {
            env: env.name.clone(),
            project: c.project.clone(),
            stack_name: stack_name.clone(),
            description: format!(
                "EFS mount-target autoscaler ({}, environment {}): VPC, EFS, scaler Lambda, router service on Fargate",
                c.project, env.name
            ),
            tags,
            network: NetworkCtx {
                vpc_cidr: c.network.vpc_cidr.clone(),
                nat,
                endpoints: !nat,
                interface_endpoints: INTERFACE_ENDPOINTS
                    .iter()
                    .map(|(key, service, actions, why)| Endpoint {
                        key: key.to_string(),
                        service: service.to_string(),
                        actions: format!("{actions}:*"),
                        why: why.to_string(),
                    })
                    .collect(),
            },
            efs: EfsCtx {
                performance_mode: match efs.performance_mode {
                    PerformanceMode::GeneralPurpose => "generalPurpose",
                    PerformanceMode::MaxIo => "maxIO",
                },
                throughput_mode: match efs.throughput_mode {
                    ThroughputMode::Bursting => "bursting",
                    ThroughputMode::Provisioned => "provisioned",
                    ThroughputMode::Elastic => "elastic",
                },
                provisioned_mibps: efs.provisioned_throughput_mibps,
                kms_key_arn: efs.kms_key_arn.clone(),
                lifecycle,
                backup: if efs.backup { "ENABLED" } else { "DISABLED" },
                deletion_policy: match efs.deletion_policy {
                    DeletionPolicy::Retain => "Retain",
                    DeletionPolicy::Delete => "Delete",
                },
                // PercentIOLimit exists only in General Purpose mode.
                io_limit_alarm: efs.performance_mode == PerformanceMode::GeneralPurpose,
                require_tls: efs.require_tls,
            },
            scaler: ScalerCtx {
                function_name: name("scaler"),
                rule_name: name("scaler-schedule"),
                state: if c.scaler.enabled {
                    "ENABLED"
                } else {
                    "DISABLED"
                },
                schedule: c.scaler.schedule.clone(),
                threshold: c.scaler.file_count_threshold,
                target_directory: format!(
                    "{SCALER_MOUNT_PATH}{}",
                    c.scaler.target_directory.trim_end_matches('/')
                ),
                mount_path: SCALER_MOUNT_PATH,
                router_state_directory: format!(
                    "{SCALER_MOUNT_PATH}{ROUTER_ACCESS_POINT_ROOT}/{ROUTER_STATE_DIRECTORY}"
                ),
                memory_mb: c.scaler.memory_mb,
                timeout_seconds: c.scaler.timeout_seconds,
                reserved_concurrency: c.scaler.reserved_concurrency,
                architecture: scaler_arch,
                scaling_policy: match c.scaler.scaling_policy {
                    ScalingPolicy::PerTarget => "per-target",
                    ScalingPolicy::Seed => "seed",
                },
                max_mount_targets: env.max_mount_targets(),
                min_mount_targets: initial.len(),
                log_group: format!("/aws/lambda/{}", name("scaler")),
                candidate_subnets,
                duration_alarm_ms: u64::from(c.scaler.timeout_seconds) * 800,
                missed_runs_period: crate::config::schedule::rate_seconds(&c.scaler.schedule)
                    .filter(|p| c.scaler.enabled && *p <= 86_400),
                tracing: c.scaler.tracing,
                alias: crate::config::SCALER_ALIAS,
                canary: (c.release.scaler_rollout == crate::config::Rollout::Canary).then_some(
                    CanaryCtx {
                        percent: c.release.canary_percent,
                        minutes: c.release.canary_minutes,
                    },
                ),
                function_digest: String::new(),
            },
            service: ServiceCtx {
                cluster_name: env.cluster_name(),
                service_name: env.router_service_name(),
                family: env.router_service_name(),
                credentials_secret: env.router_credentials_secret(),
                desired_count: c.service.desired_count,
                cpu: c.task_size().0.to_string(),
                memory: c.task_size().1.to_string(),
                router_cpu: c.service.cpu,
                router_memory: c.service.memory,
                port: c.service.port,
                admin_port: c.service.admin_port,
                listen: match c.service.expose {
                    Expose::Task => format!("127.0.0.1:{}", c.service.port),
                    Expose::Vpc => format!("0.0.0.0:{}", c.service.port),
                },
                vpc: (c.service.expose == Expose::Vpc).then(|| {
                    let namespace = c
                        .service
                        .namespace
                        .clone()
                        .unwrap_or_else(|| format!("{stack_name}.internal"));
                    VpcExposure {
                        clients: c
                            .service
                            .clients
                            .iter()
                            .map(|id| ClientGroup { id: id.clone() })
                            .collect(),
                        dns_name: format!("router.{namespace}"),
                        namespace,
                        tls_secret_arn: c.service.tls_certificate_secret_arn.clone(),
                        scheme: if c.service.tls_certificate_secret_arn.is_some() {
                            "https"
                        } else {
                            "http"
                        },
                    }
                }),
                autoscaling: c.service.autoscaling.enabled.then_some(AutoscalingCtx {
                    min_tasks: c.service.autoscaling.min_tasks,
                    max_tasks: c.service.autoscaling.max_tasks,
                    cpu_target_percent: c.service.autoscaling.cpu_target_percent,
                    scale_in_cooldown_seconds: c.service.autoscaling.scale_in_cooldown_seconds,
                    scale_out_cooldown_seconds: c.service.autoscaling.scale_out_cooldown_seconds,
                }),
                applications: c
                    .applications
                    .iter()
                    .map(|a| application(a, format!("/ecs/{}", name(&format!("app-{}", a.name)))))
                    .collect(),
                // Sorted and each once: the template lists them in a stable order.
                pull_repositories: c
                    .applications
                    .iter()
                    .filter_map(|a| {
                        let image = ImageRef::parse(&a.image).ok()?;
                        let (account, repo) = image.ecr_repository(&c.region)?;
                        Some(format!(
                            "arn:${{AWS::Partition}}:ecr:${{AWS::Region}}:{account}:repository/{repo}"
                        ))
                    })
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                secret_arns: c
                    .applications
                    .iter()
                    .flat_map(|a| a.secrets.values())
                    .filter(|v| v.split(':').nth(2) == Some("secretsmanager"))
                    .chain(c.service.tls_certificate_secret_arn.iter())
                    .map(|v| secret_resource(v))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                parameter_arns: c
                    .applications
                    .iter()
                    .flat_map(|a| a.secrets.values())
                    .filter(|v| v.split(':').nth(2) == Some("ssm"))
                    .cloned()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                cpu_architecture: service_arch,
                circuit_breaker_enabled: c.service.circuit_breaker.enabled,
                circuit_breaker_rollback: c.service.circuit_breaker.rollback,
                container_insights: if c.service.container_insights {
                    "enabled"
                } else {
                    "disabled"
                },
                // RunningTaskCount is a Container Insights metric.
                running_tasks_alarm: c.service.container_insights,
                min_running_tasks: if c.service.autoscaling.enabled {
                    c.service.autoscaling.min_tasks
                } else {
                    c.service.desired_count
                },
                health_check_start_seconds: c.service.health_check_grace_seconds,
                log_group: format!("/ecs/{}", name("router")),
                binary: ROUTER_BINARY,
                default_mount_targets,
                routing: c.service.routing.as_str(),
                local_share_percent: c.service.local_share_percent,
                connections_per_target: c.service.connections_per_target.to_string(),
                metrics_interval_seconds: c.service.metrics_interval_seconds,
            },
            monitoring: MonitoringCtx {
                retention_days: c.logs.retention_days,
                emails: emails(&c.alarms.email_subscriptions),
                warning_emails: emails(&c.alarms.warning_email_subscriptions),
            },
            zones,
            ssm_parameter_arn: format!(
                "arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter{ssm_parameter_name}"
            ),
            ssm_parameter_name,
            initial_mount_target_zones: initial.join(","),
            resolved_config: resolved_config(env),
            ecr_repository,
        }
    }
}

impl BootstrapContext {
    pub fn new(env: &Environment) -> BootstrapContext {
        let c = &env.config;
        let policy = serde_json::json!({
            // An image a rule selects is never expired by a rule of lower priority: the
            // first rule shields every environment's deployed image from the second.
            "rules": [{
                "rulePriority": 1,
                "description": "never expire an image an environment runs",
                "selection": { "tagStatus": "tagged", "tagPrefixList": [DEPLOYED_TAG_PREFIX], "countType": "imageCountMoreThan", "countNumber": KEEP_DEPLOYED },
                "action": { "type": "expire" }
            }, {
                "rulePriority": 2,
                "description": format!("keep the newest {KEEP_IMAGES} other images"),
                "selection": { "tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": KEEP_IMAGES },
                "action": { "type": "expire" }
            }]
        });
        BootstrapContext {
            project: c.project.clone(),
            tags: vec![Tag {
                key: "efs-autoscaler:project".to_string(),
                value: c.project.clone(),
            }],
            bootstrap: BootstrapCtx {
                stack_name: env.bootstrap_stack_name(),
                bucket_prefix: format!("{}-artifacts", c.project),
                ecr_repository: env.ecr_repository(),
                noncurrent_days: 30,
                lifecycle_policy: policy.to_string(),
                deployed_tag_prefix: DEPLOYED_TAG_PREFIX,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// ECR evaluates lifecycle rules by priority, and an image a rule selects is never
    /// expired by a lower one: the deployed images must be selected first.
    #[test]
    fn the_lifecycle_never_reaches_a_deployed_image() {
        let env = crate::config::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../environments"),
            "prod",
        )
        .unwrap();
        let policy: serde_json::Value =
            serde_json::from_str(&BootstrapContext::new(&env).bootstrap.lifecycle_policy).unwrap();
        let rules = policy["rules"].as_array().unwrap();
        assert_eq!(rules[0]["rulePriority"], 1);
        assert_eq!(rules[0]["selection"]["tagStatus"], "tagged");
        assert_eq!(
            rules[0]["selection"]["tagPrefixList"][0],
            DEPLOYED_TAG_PREFIX
        );
        assert!(rules[0]["selection"]["countNumber"].as_u64().unwrap() >= 100);
        assert_eq!(rules[1]["rulePriority"], 2);
        assert_eq!(rules[1]["selection"]["tagStatus"], "any");
    }
}
