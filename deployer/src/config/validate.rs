//! Semantic checks serde cannot express: CIDR arithmetic, zones in the region, Fargate
//! CPU/memory pairs, CloudWatch retention values, schedule expressions, naming limits.
//! Every check reports the key's file and line, the bad value and what is allowed; all
//! problems are collected so one run shows them all.

use std::collections::BTreeSet;

use ipnet::Ipv4Net;

use super::error::{ConfigError, Loc};
use super::schema::{Egress, EnvironmentConfig, Expose, PerformanceMode, Rollout, ThroughputMode};
use super::yaml::{Node, Value};

/// CloudWatch Logs' accepted `RetentionInDays` values.
pub const RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];
/// EFS lifecycle transition periods, in days.
pub const TRANSITION_DAYS: &[u32] = &[1, 7, 14, 30, 60, 90, 180, 270, 365];

/// Valid Fargate memory sizes (MiB) for each CPU value.
pub fn fargate_memory_options(cpu: u32) -> Option<Vec<u32>> {
    let (from, to, step) = match cpu {
        256 => return Some(vec![512, 1024, 2048]),
        512 => (1024, 4096, 1024),
        1024 => (2048, 8192, 1024),
        2048 => (4096, 16384, 1024),
        4096 => (8192, 30720, 1024),
        8192 => (16384, 61440, 4096),
        16384 => (32768, 122880, 8192),
        _ => return None,
    };
    Some((from..=to).step_by(step).collect())
}

/// Finds where a dotted key (`efs.kms_key_arn`, `availability_zones[1].name`) was written;
/// falls back to the nearest enclosing key, or the environment file, when it was not.
#[derive(Debug)]
pub struct Locator<'a> {
    root: &'a Node,
    fallback: Loc,
}

impl<'a> Locator<'a> {
    pub fn new(root: &'a Node, fallback: Loc) -> Self {
        Locator { root, fallback }
    }

    pub fn loc(&self, path: &str) -> Loc {
        let mut node = self.root;
        let mut found = &self.root.loc;
        for segment in path.split('.') {
            let (name, index) = match segment.split_once('[') {
                Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
                None => (segment, None),
            };
            match node.get(name) {
                Some(child) => node = child,
                None => return found.clone(),
            }
            found = &node.loc;
            if let Some(i) = index {
                match &node.value {
                    Value::Seq(items) if i < items.len() => node = &items[i],
                    _ => return found.clone(),
                }
                found = &node.loc;
            }
        }
        if found.file.is_none() {
            self.fallback.clone()
        } else {
            found.clone()
        }
    }
}

#[derive(Debug)]
struct Checker<'a> {
    locator: Locator<'a>,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn fail(&mut self, path: &str, message: String, help: impl Into<String>) {
        let loc = self.locator.loc(path);
        self.errors
            .push(ConfigError::at(&loc, Some(path.to_string()), message).with_help(help));
    }

    fn range(&mut self, path: &str, value: u64, min: u64, max: u64, why: &str) {
        if value < min || value > max {
            self.fail(
                path,
                format!("{value} is out of range"),
                format!("allowed: {min} to {max}; {why}"),
            );
        }
    }
}

pub fn validate(
    env: &str,
    config: &EnvironmentConfig,
    root: &Node,
    fallback: Loc,
) -> Vec<ConfigError> {
    let mut c = Checker {
        locator: Locator::new(root, fallback),
        errors: Vec::new(),
    };
    check_names(&mut c, env, config);
    check_zones_and_network(&mut c, config);
    check_efs(&mut c, config);
    check_scaler(&mut c, config);
    check_service(&mut c, config);
    check_applications(&mut c, config);
    check_operations(&mut c, config);
    c.errors
}

fn check_names(c: &mut Checker<'_>, env: &str, config: &EnvironmentConfig) {
    let p = &config.project;
    let ok = p.len() <= 20
        && p.starts_with(|ch: char| ch.is_ascii_lowercase())
        && p.chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
        && !p.ends_with('-')
        && !p.contains("--");
    if !ok {
        c.fail(
            "project",
            format!("{p:?} is not a valid project name"),
            "1 to 20 characters: lowercase letters, digits and single dashes, starting with a letter (it prefixes bucket, function and stack names)",
        );
    }

    match (&config.account_id, &config.endpoint_url) {
        (Some(id), _) if !(id.len() == 12 && id.chars().all(|ch| ch.is_ascii_digit())) => c.fail(
            "account_id",
            format!("{id:?} is not an AWS account id"),
            "an account id is 12 digits, quoted so YAML keeps leading zeros: account_id: \"012345678901\"",
        ),
        (None, None) => c.fail(
            "account_id",
            format!("environment `{env}` has no account_id"),
            "set account_id (12 digits, quoted); it guards against deploying to the wrong account. Only environments with endpoint_url may omit it",
        ),
        _ => {}
    }

    if let Some(arn) = &config.cloudformation_role_arn {
        match role_account(arn) {
            None => c.fail(
                "cloudformation_role_arn",
                format!("{arn:?} is not an IAM role ARN"),
                "e.g. arn:aws:iam::012345678901:role/cloudformation-deploy (a role that trusts cloudformation.amazonaws.com)",
            ),
            Some(account) if config.account_id.as_deref().is_some_and(|id| id != account) => {
                c.fail(
                    "cloudformation_role_arn",
                    format!(
                        "the role is in account {account}, the environment in {}",
                        config.account_id.as_deref().unwrap_or_default()
                    ),
                    "CloudFormation passes only a role of the stack's own account: name one there",
                )
            }
            Some(_) => {}
        }
    }

    let r = &config.region;
    let region_ok = runtime::model::is_region(r);
    if !region_ok {
        c.fail(
            "region",
            format!("{r:?} is not an AWS region name"),
            "e.g. ap-northeast-1, us-east-1, eu-west-2",
        );
    }

    if let Some(url) = &config.endpoint_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        c.fail(
            "endpoint_url",
            format!("{url:?} is not an http(s) URL"),
            "e.g. http://127.0.0.1:5000",
        );
    }

    if let Some(name) = &config.ssm_parameter_name {
        let segments_ok = name.split('/').skip(1).all(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch))
        });
        let lower = name.to_ascii_lowercase();
        if !name.starts_with('/')
            || !segments_ok
            || name.len() > 1011
            || lower.starts_with("/aws")
            || lower.starts_with("/ssm")
        {
            c.fail(
                "ssm_parameter_name",
                format!("{name:?} is not a usable parameter name"),
                "a path such as /efs-autoscaler/prod/mount-targets: starts with /, segments of letters, digits, _ . -, not under /aws or /ssm",
            );
        }
    }

    for (key, value) in &config.tags {
        let path = format!("tags.{key}");
        let chars_ok = |s: &str| {
            s.chars()
                .all(|ch| ch.is_alphanumeric() || ch.is_whitespace() || "_.:/=+-@".contains(ch))
        };
        if key.is_empty()
            || key.chars().count() > 128
            || key.to_ascii_lowercase().starts_with("aws:")
            || !chars_ok(key)
        {
            c.fail(
                &path,
                format!("tag key {key:?} is not allowed"),
                "1 to 128 letters, digits, spaces or _ . : / = + - @, not starting with aws:",
            );
        }
        if value.chars().count() > 256 || !chars_ok(value) {
            c.fail(
                &path,
                format!("tag value {value:?} is not allowed"),
                "up to 256 letters, digits, spaces or _ . : / = + - @",
            );
        }
    }
    if config.tags.len() > 40 {
        c.fail(
            "tags",
            format!("{} tags", config.tags.len()),
            "at most 40: AWS allows 50 per resource and the deployer adds its own",
        );
    }
}

fn parse_cidr(c: &mut Checker<'_>, path: &str, text: &str) -> Option<Ipv4Net> {
    let net: Ipv4Net = match text.parse() {
        Ok(n) => n,
        Err(_) => {
            c.fail(
                path,
                format!("{text:?} is not an IPv4 CIDR block"),
                "write it as address/prefix, e.g. 10.0.1.0/24",
            );
            return None;
        }
    };
    if net.network() != net.addr() {
        c.fail(
            path,
            format!("{text:?} has host bits set"),
            format!(
                "the block starts at its network address: did you mean {}?",
                net.trunc()
            ),
        );
        return None;
    }
    if !(16..=28).contains(&net.prefix_len()) {
        c.fail(
            path,
            format!("{text:?} has prefix /{}", net.prefix_len()),
            "AWS allows VPC and subnet prefixes from /16 to /28",
        );
        return None;
    }
    Some(net)
}

fn check_zones_and_network(c: &mut Checker<'_>, config: &EnvironmentConfig) {
    let zones = &config.availability_zones;
    if zones.len() < 2 {
        c.fail(
            "availability_zones",
            format!("{} availability zone(s) configured", zones.len()),
            "configure at least 2 zones: mount targets are spread one per zone",
        );
    }
    let mut seen = BTreeSet::new();
    for (i, zone) in zones.iter().enumerate() {
        let path = format!("availability_zones[{i}].name");
        let suffix = zone.name.strip_prefix(config.region.as_str());
        let ok =
            suffix.is_some_and(|s| s.len() == 1 && s.chars().all(|ch| ch.is_ascii_lowercase()));
        if !ok {
            c.fail(
                &path,
                format!(
                    "{:?} is not an availability zone of region {}",
                    zone.name, config.region
                ),
                format!(
                    "zone names are the region plus one letter, e.g. {}a, {}c",
                    config.region, config.region
                ),
            );
        }
        if !seen.insert(zone.name.as_str()) {
            c.fail(
                &path,
                format!("{:?} is listed twice", zone.name),
                "each zone once: EFS allows one mount target per zone",
            );
        }
    }

    let net = &config.network;
    let Some(vpc) = parse_cidr(c, "network.vpc_cidr", &net.vpc_cidr) else {
        return;
    };
    let mut subnets: Vec<(String, Ipv4Net)> = Vec::new();
    for (i, zone) in zones.iter().enumerate() {
        let mut blocks = vec![(
            format!("availability_zones[{i}].private_subnet_cidr"),
            Some(&zone.private_subnet_cidr),
        )];
        let public_path = format!("availability_zones[{i}].public_subnet_cidr");
        match (net.egress, &zone.public_subnet_cidr) {
            (Egress::Nat, None) => c.fail(
                &format!("availability_zones[{i}]"),
                format!("zone {} has no public_subnet_cidr", zone.name),
                "with network.egress: nat every zone needs a public subnet for its NAT gateway; add public_subnet_cidr",
            ),
            (Egress::VpcEndpoints, Some(_)) => c.fail(
                &public_path,
                "public subnets are only created with network.egress: nat".to_string(),
                "remove public_subnet_cidr, or set network.egress: nat",
            ),
            (Egress::Nat, Some(cidr)) => blocks.push((public_path, Some(cidr))),
            (Egress::VpcEndpoints, None) => {}
        }
        for (path, cidr) in blocks {
            let Some(cidr) = cidr else { continue };
            let Some(block) = parse_cidr(c, &path, cidr) else {
                continue;
            };
            if !vpc.contains(&block) {
                c.fail(
                    &path,
                    format!("{block} is outside the VPC {vpc}"),
                    format!("choose a block inside network.vpc_cidr ({vpc})"),
                );
                continue;
            }
            if let Some((other, _)) = subnets
                .iter()
                .find(|(_, b)| b.contains(&block.network()) || block.contains(&b.network()))
            {
                let other = other.clone();
                c.fail(
                    &path,
                    format!("{block} overlaps {other}"),
                    "subnets of one VPC must not overlap",
                );
                continue;
            }
            subnets.push((path, block));
        }
    }
}

fn check_efs(c: &mut Checker<'_>, config: &EnvironmentConfig) {
    let efs = &config.efs;
    match (efs.throughput_mode, efs.provisioned_throughput_mibps) {
        (ThroughputMode::Provisioned, None) => c.fail(
            "efs.provisioned_throughput_mibps",
            "throughput_mode is provisioned but no throughput is set".to_string(),
            "set efs.provisioned_throughput_mibps (1 to 10240), or choose throughput_mode elastic or bursting",
        ),
        (ThroughputMode::Provisioned, Some(t)) if !(1.0..=10240.0).contains(&t) => c.fail(
            "efs.provisioned_throughput_mibps",
            format!("{t} MiB/s is out of range"),
            "allowed: 1 to 10240 MiB/s",
        ),
        (ThroughputMode::Bursting | ThroughputMode::Elastic, Some(_)) => c.fail(
            "efs.provisioned_throughput_mibps",
            "only used with throughput_mode: provisioned".to_string(),
            "remove it, or set efs.throughput_mode: provisioned",
        ),
        _ => {}
    }
    if efs.performance_mode == PerformanceMode::MaxIo
        && efs.throughput_mode == ThroughputMode::Elastic
    {
        c.fail(
            "efs.performance_mode",
            "maxIO cannot be combined with elastic throughput".to_string(),
            "use performance_mode generalPurpose (recommended) or throughput_mode bursting/provisioned",
        );
    }
    if let Some(days) = efs.transition_to_ia_days
        && !TRANSITION_DAYS.contains(&days)
    {
        c.fail(
            "efs.transition_to_ia_days",
            format!("{days} is not an EFS transition period"),
            format!("allowed: {TRANSITION_DAYS:?} or null for never"),
        );
    }
    if let Some(days) = efs.transition_to_archive_days {
        if !TRANSITION_DAYS.contains(&days) {
            c.fail(
                "efs.transition_to_archive_days",
                format!("{days} is not an EFS transition period"),
                format!("allowed: {TRANSITION_DAYS:?} or null for never"),
            );
        } else if efs.throughput_mode != ThroughputMode::Elastic {
            c.fail(
                "efs.transition_to_archive_days",
                "Archive storage needs elastic throughput".to_string(),
                "set efs.throughput_mode: elastic, or remove the archive transition",
            );
        } else if efs.transition_to_ia_days.is_some_and(|ia| ia >= days) {
            c.fail("efs.transition_to_archive_days", format!("{days} days is not after the IA transition"), "files move to Archive after they move to Infrequent Access: choose more days than transition_to_ia_days");
        }
    }
    if let Some(arn) = &efs.kms_key_arn {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let ok = parts.len() == 6
            && parts[0] == "arn"
            && parts[2] == "kms"
            && (parts[5].starts_with("key/") || parts[5].starts_with("alias/"));
        if !ok {
            c.fail(
                "efs.kms_key_arn",
                format!("{arn:?} is not a KMS key ARN"),
                "arn:aws:kms:REGION:ACCOUNT:key/KEY-ID, or null for the AWS managed key",
            );
        }
    }

    let zone_names: Vec<&str> = config
        .availability_zones
        .iter()
        .map(|z| z.name.as_str())
        .collect();
    if let Some(initial) = &efs.initial_mount_target_azs {
        if initial.is_empty() {
            c.fail(
                "efs.initial_mount_target_azs",
                "no initial mount targets".to_string(),
                "list at least one zone; the router needs a mount target to start",
            );
        }
        let mut seen = BTreeSet::new();
        for (i, az) in initial.iter().enumerate() {
            let path = format!("efs.initial_mount_target_azs[{i}]");
            if !zone_names.contains(&az.as_str()) {
                c.fail(
                    &path,
                    format!("{az:?} is not one of the configured zones"),
                    format!("choose from availability_zones: {}", zone_names.join(", ")),
                );
            }
            if !seen.insert(az) {
                c.fail(
                    &path,
                    format!("{az:?} is listed twice"),
                    "EFS allows one mount target per zone",
                );
            }
        }
    }
}

fn check_scaler(c: &mut Checker<'_>, config: &EnvironmentConfig) {
    let s = &config.scaler;
    if let Err(problem) = crate::config::schedule::check(&s.schedule) {
        c.fail("scaler.schedule", format!("{:?}: {problem}", s.schedule), "use rate(5 minutes), rate(1 hour) or cron(0/5 * * * ? *) (six fields: minutes hours day-of-month month day-of-week year)");
    }
    if s.file_count_threshold == 0 {
        c.fail("scaler.file_count_threshold", "0 is not allowed".to_string(), "the scaler adds a mount target when the count exceeds this; use a positive number such as 100000");
    }
    let dir = &s.target_directory;
    if !dir.starts_with('/')
        || dir.split('/').any(|seg| seg == ".." || seg == ".")
        || dir.contains('\0')
        || dir.contains("//")
    {
        c.fail(
            "scaler.target_directory",
            format!("{dir:?} is not a clean absolute path"),
            "a path inside the file system such as / or /data/uploads, without . or .. segments",
        );
    }
    c.range(
        "scaler.memory_mb",
        s.memory_mb.into(),
        128,
        10240,
        "Lambda memory in MB",
    );
    c.range(
        "scaler.timeout_seconds",
        s.timeout_seconds.into(),
        30,
        900,
        "Lambda allows up to 900 s; the scaler needs time to wait for a new mount target",
    );
    if s.reserved_concurrency != 1 {
        c.fail(
            "scaler.reserved_concurrency",
            format!("{} is not allowed", s.reserved_concurrency),
            "must be 1: two runs at once could each create a mount target",
        );
    }
    let zones = config.availability_zones.len() as u64;
    let initial = config
        .efs
        .initial_mount_target_azs
        .as_ref()
        .map_or(2.min(zones), |v| v.len() as u64);
    if let Some(max) = s.max_mount_targets
        && (u64::from(max) < initial.max(1) || u64::from(max) > zones)
    {
        c.fail(
            "scaler.max_mount_targets",
            format!("{max} is out of range"),
            format!("between the initial mount targets ({initial}) and the configured zones ({zones}); EFS allows one mount target per zone"),
        );
    }
}

fn check_service(c: &mut Checker<'_>, config: &EnvironmentConfig) {
    let s = &config.service;
    c.range(
        "service.desired_count",
        s.desired_count.into(),
        1,
        100,
        "the router needs at least one task",
    );
    check_task_size(c, config);
    check_exposure(c, config);
    let a = &s.autoscaling;
    if a.enabled {
        c.range(
            "service.autoscaling.min_tasks",
            a.min_tasks.into(),
            1,
            100,
            "the router needs at least one task",
        );
        c.range(
            "service.autoscaling.max_tasks",
            a.max_tasks.into(),
            a.min_tasks.max(1).into(),
            100,
            "at least min_tasks",
        );
        if s.desired_count < a.min_tasks || s.desired_count > a.max_tasks {
            c.fail(
                "service.desired_count",
                format!(
                    "{} is outside service.autoscaling's {} to {} tasks",
                    s.desired_count, a.min_tasks, a.max_tasks
                ),
                "the count at creation must be one auto scaling would keep: change desired_count or the bounds",
            );
        }
        c.range(
            "service.autoscaling.cpu_target_percent",
            a.cpu_target_percent.into(),
            10,
            90,
            "the average CPU utilisation target tracking keeps",
        );
        c.range(
            "service.autoscaling.scale_in_cooldown_seconds",
            a.scale_in_cooldown_seconds.into(),
            0,
            3600,
            "seconds",
        );
        c.range(
            "service.autoscaling.scale_out_cooldown_seconds",
            a.scale_out_cooldown_seconds.into(),
            0,
            3600,
            "seconds",
        );
    }
    if s.port < 1024 || s.port == 2049 {
        c.fail(
            "service.port",
            format!("{} is not allowed", s.port),
            "1024 to 65535 except 2049: the router runs as a non-root user and 2049 is NFS",
        );
    }
    if s.admin_port < 1024 || s.admin_port == 2049 || s.admin_port == s.port {
        c.fail(
            "service.admin_port",
            format!("{} is not allowed", s.admin_port),
            "1024 to 65535 except 2049 and service.port: the admin listener is a second port of the same container",
        );
    }
    c.range(
        "service.local_share_percent",
        s.local_share_percent.into(),
        1,
        99,
        "the same-zone target's share of paths with routing: weighted",
    );
    if let super::schema::ConnectionsPerTarget::Fixed(n) = s.connections_per_target {
        c.range(
            "service.connections_per_target",
            n.into(),
            1,
            16,
            "auto, or 1 to 16 TCP connections per mount target",
        );
    }
    c.range(
        "service.metrics_interval_seconds",
        s.metrics_interval_seconds.into(),
        10,
        3600,
        "seconds between the router's CloudWatch metric lines",
    );
    c.range(
        "service.health_check_grace_seconds",
        s.health_check_grace_seconds.into(),
        0,
        300,
        "the container health check's start period, which ECS limits to 300 s",
    );
}

fn check_operations(c: &mut Checker<'_>, config: &EnvironmentConfig) {
    c.range(
        "release.keep",
        config.release.keep.into(),
        2,
        100,
        "the current release and at least one to roll back to",
    );
    let r = &config.release;
    if r.scaler_rollout == Rollout::Canary {
        c.range(
            "release.canary_percent",
            r.canary_percent.into(),
            1,
            99,
            "the share of the scaler's runs the new version gets during the canary",
        );
        c.range(
            "release.canary_minutes",
            r.canary_minutes.into(),
            1,
            2880,
            "CodeDeploy's canary interval",
        );
        // A scheduled function runs once per period: a canary shorter than two periods
        // sees at most one run, likely on the old version, and proves nothing.
        let period = crate::config::schedule::rate_seconds(&config.scaler.schedule);
        if !config.scaler.enabled {
            c.fail(
                "release.scaler_rollout",
                "canary with the scaler's schedule disabled".to_string(),
                "a canary watches scheduled runs; with none it only waits: use all-at-once",
            );
        } else if let Some(p) = period
            && u64::from(r.canary_minutes) * 60 < 2 * p
        {
            c.fail(
                "release.canary_minutes",
                format!(
                    "{} minutes is shorter than two runs of {}",
                    r.canary_minutes, config.scaler.schedule
                ),
                format!(
                    "at least {} minutes (two runs); each run goes to the new version with a chance of {} %",
                    (2 * p).div_ceil(60),
                    r.canary_percent
                ),
            );
        }
    }
    let days = config.logs.retention_days;
    if !RETENTION_DAYS.contains(&days) {
        let nearest = RETENTION_DAYS
            .iter()
            .min_by_key(|d| d.abs_diff(days))
            .copied()
            .unwrap_or(30);
        c.fail(
            "logs.retention_days",
            format!("{days} is not a CloudWatch Logs retention value"),
            format!("allowed: {RETENTION_DAYS:?}; the nearest is {nearest}"),
        );
    }
    for (key, list) in [
        ("email_subscriptions", &config.alarms.email_subscriptions),
        (
            "warning_email_subscriptions",
            &config.alarms.warning_email_subscriptions,
        ),
    ] {
        for (i, email) in list.iter().enumerate() {
            let ok = email.split_once('@').is_some_and(|(user, domain)| {
                !user.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }) && !email.chars().any(char::is_whitespace);
            if !ok {
                c.fail(
                    &format!("alarms.{key}[{i}]"),
                    format!("{email:?} is not an e-mail address"),
                    "e.g. ops@example.com",
                );
            }
        }
    }
}

/// The memory sizes Fargate allows with `cpu`, said the way the docs table says them.
fn describe_memory_options(options: &[u32]) -> String {
    if options.len() > 8 {
        format!(
            "{} to {} in steps of {}",
            options[0],
            options[options.len() - 1],
            options[1] - options[0]
        )
    } else {
        options
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The smallest Fargate size that holds `cpu` and `memory`.
fn smallest_fargate_size(cpu: u32, memory: u32) -> Option<(u32, u32)> {
    [256, 512, 1024, 2048, 4096, 8192, 16384]
        .into_iter()
        .filter(|c| *c >= cpu)
        .find_map(|c| {
            fargate_memory_options(c)?
                .into_iter()
                .find(|m| *m >= memory)
                .map(|m| (c, m))
        })
}

/// The task's size is the sum of its containers': the router's (`service.cpu`,
/// `service.memory`) and every application's. The sum must be a size Fargate offers.
fn check_task_size(c: &mut Checker<'_>, config: &EnvironmentConfig) {
    let s = &config.service;
    let (cpu, memory) = config.task_size();
    if config.applications.is_empty() {
        // The router alone: the familiar per-key errors.
        match fargate_memory_options(cpu) {
            None => c.fail(
                "service.cpu",
                format!("{cpu} is not a Fargate CPU value"),
                "allowed: 256, 512, 1024, 2048, 4096, 8192, 16384",
            ),
            Some(options) if !options.contains(&memory) => c.fail(
                "service.memory",
                format!("{memory} MiB is not valid with cpu {cpu}"),
                format!(
                    "with cpu {cpu} Fargate allows memory {}",
                    describe_memory_options(&options)
                ),
            ),
            Some(_) => {}
        }
        return;
    }
    let fits = fargate_memory_options(cpu).is_some_and(|o| o.contains(&memory));
    if fits {
        return;
    }
    // `service.cpu 1024 + applications[0].cpu 256`: every term, named by its key.
    let terms = |field: &str, router: u32, share: fn(&super::schema::Application) -> u32| {
        std::iter::once(format!("service.{field} {router}"))
            .chain(
                config
                    .applications
                    .iter()
                    .enumerate()
                    .map(|(i, a)| format!("applications[{i}].{field} {}", share(a))),
            )
            .collect::<Vec<_>>()
            .join(" + ")
    };
    let cpu_terms = terms("cpu", s.cpu, |a| a.cpu);
    let memory_terms = terms("memory", s.memory, |a| a.memory);
    let help = match smallest_fargate_size(cpu, memory) {
        Some((fc, fm)) => format!(
            "the task's size is the sum of its containers'; the smallest Fargate size that holds them is cpu {fc} / memory {fm}: give the difference ({} CPU, {} MiB) to service.cpu and service.memory or to an application",
            fc - cpu,
            fm - memory
        ),
        None => "the largest Fargate task is cpu 16384 / memory 122880: give the containers less"
            .to_string(),
    };
    c.fail(
        "applications",
        format!(
            "the task's containers add up to cpu {cpu} ({cpu_terms}) and memory {memory} MiB ({memory_terms}), which is not a Fargate task size"
        ),
        help,
    );
}

/// `service.expose` and what goes with it.
fn check_exposure(c: &mut Checker<'_>, config: &EnvironmentConfig) {
    let s = &config.service;
    let vpc_only = [
        ("service.clients", !s.clients.is_empty()),
        ("service.namespace", s.namespace.is_some()),
        (
            "service.tls_certificate_secret_arn",
            s.tls_certificate_secret_arn.is_some(),
        ),
        ("service.allow_plaintext", s.allow_plaintext),
    ];
    if s.expose == Expose::Task {
        for (key, set) in vpc_only {
            if set {
                c.fail(
                    key,
                    "is only used with service.expose: vpc".to_string(),
                    "with expose: task the router listens on the task's loopback and nothing outside the task reaches it; remove the key or set service.expose: vpc",
                );
            }
        }
        return;
    }
    if s.clients.is_empty() {
        c.fail(
            "service.clients",
            "service.expose: vpc needs at least one client security group".to_string(),
            "list the security group ids (sg-…) of the services that use the router; ingress is never opened to a CIDR",
        );
    }
    for (i, sg) in s.clients.iter().enumerate() {
        let ok = sg.strip_prefix("sg-").is_some_and(|hex| {
            (hex.len() == 8 || hex.len() == 17)
                && hex
                    .chars()
                    .all(|ch| ch.is_ascii_hexdigit() && !ch.is_ascii_uppercase())
        });
        if !ok {
            c.fail(
                &format!("service.clients[{i}]"),
                format!("{sg:?} is not a security group id"),
                "sg- followed by 8 or 17 lowercase hex digits, e.g. sg-0123456789abcdef0",
            );
        }
    }
    if let Some(ns) = &s.namespace {
        let ok = ns.len() <= 253
            && ns.split('.').count() >= 2
            && ns.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .chars()
                        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
            });
        if !ok {
            c.fail(
                "service.namespace",
                format!("{ns:?} is not a DNS domain name"),
                "two or more lowercase labels of letters, digits and dashes, e.g. files.internal",
            );
        }
    }
    match (&s.tls_certificate_secret_arn, s.allow_plaintext) {
        (None, false) => c.fail(
            "service.tls_certificate_secret_arn",
            "service.expose: vpc needs TLS on the router's listener".to_string(),
            "name a Secrets Manager secret holding the certificate (JSON keys certificate and private_key, PEM), or set service.allow_plaintext: true to carry bodies in the clear inside the VPC (SigV4 still authenticates every request)",
        ),
        (Some(_), true) => c.fail(
            "service.allow_plaintext",
            "cannot be true with service.tls_certificate_secret_arn".to_string(),
            "the router serves TLS when it has a certificate; remove one of the two keys",
        ),
        (Some(arn), false) if !is_arn_of(arn, "secretsmanager", "secret:") => c.fail(
            "service.tls_certificate_secret_arn",
            format!("{arn:?} is not a Secrets Manager secret ARN"),
            "arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME",
        ),
        _ => {}
    }
}

/// Whether `arn` is an ARN of `service` whose resource starts with `resource`.
fn is_arn_of(arn: &str, service: &str, resource: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == service
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].chars().all(|ch| ch.is_ascii_digit())
        && parts[5].starts_with(resource)
}

/// Variables the task definition sets for every application.
pub const INJECTED_VARIABLES: &[&str] = &[
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "ROUTER_ACCESS_KEY_ID",
    "ROUTER_SECRET_ACCESS_KEY",
];

fn check_applications(c: &mut Checker<'_>, config: &EnvironmentConfig) {
    let mut names = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for (i, app) in config.applications.iter().enumerate() {
        let at = |field: &str| format!("applications[{i}].{field}");
        let n = &app.name;
        let ok = !n.is_empty()
            && n.len() <= 64
            && n.starts_with(|ch: char| ch.is_ascii_alphabetic())
            && n.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
        if !ok {
            c.fail(
                &at("name"),
                format!("{n:?} is not a valid container name"),
                "1 to 64 letters, digits, - and _, starting with a letter",
            );
        } else if n == "router" {
            c.fail(
                &at("name"),
                "\"router\" is the router's own container".to_string(),
                "choose another name",
            );
        } else if !names.insert(n.clone()) {
            c.fail(
                &at("name"),
                format!("{n:?} names two applications"),
                "container names are unique within the task",
            );
        } else if !keys.insert(super::logical_id(n)) {
            c.fail(
                &at("name"),
                format!("{n:?} differs from another application's name only in - and _ or case"),
                "its resources would share a name; choose a name that differs in a letter or digit",
            );
        }
        match super::ImageRef::parse(&app.image) {
            Err(why) => c.fail(
                &at("image"),
                format!("{:?} is not an image reference: {why}", app.image),
                "registry/repository:tag or registry/repository@sha256:<64 hex digits>",
            ),
            Ok(image) => {
                if config.network.egress == Egress::VpcEndpoints
                    && image.ecr_repository(&config.region).is_none()
                {
                    c.fail(
                        &at("image"),
                        format!(
                            "{:?} is outside this region's ECR, and the tasks have no internet egress (network.egress: vpc-endpoints)",
                            app.image
                        ),
                        format!(
                            "push or mirror the image to ECR in {} (a pull-through cache rule does it), or set network.egress: nat",
                            config.region
                        ),
                    );
                }
            }
        }
        if app.cpu == 0 || app.cpu > 16384 {
            c.fail(
                &at("cpu"),
                format!("{} is out of range", app.cpu),
                "1 to 16384 CPU units (1024 = 1 vCPU)",
            );
        }
        if app.memory < 6 {
            c.fail(
                &at("memory"),
                format!("{} MiB is too little", app.memory),
                "ECS needs at least 6 MiB for a container; give what the application needs",
            );
        }
        for name in app.environment.keys().chain(app.secrets.keys()) {
            let valid = name.starts_with(|ch: char| ch.is_ascii_alphabetic() || ch == '_')
                && name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
            let field = if app.environment.contains_key(name) {
                "environment"
            } else {
                "secrets"
            };
            if !valid {
                c.fail(
                    &format!("{}.{name}", at(field)),
                    format!("{name:?} is not an environment variable name"),
                    "letters, digits and _, not starting with a digit",
                );
            } else if INJECTED_VARIABLES.contains(&name.as_str()) {
                c.fail(
                    &format!("{}.{name}", at(field)),
                    format!("{name} is set by the deployer"),
                    "every application gets the router's endpoint, region and key pair; remove it",
                );
            }
        }
        for name in app
            .secrets
            .keys()
            .filter(|k| app.environment.contains_key(*k))
        {
            c.fail(
                &format!("{}.{name}", at("secrets")),
                format!("{name} is both a variable and a secret"),
                "keep one",
            );
        }
        for (name, arn) in &app.secrets {
            if !is_arn_of(arn, "secretsmanager", "secret:") && !is_arn_of(arn, "ssm", "parameter/")
            {
                c.fail(
                    &format!("{}.{name}", at("secrets")),
                    format!("{arn:?} is not a Secrets Manager secret or SSM parameter ARN"),
                    "arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME[:JSON_KEY::] or arn:aws:ssm:REGION:ACCOUNT:parameter/NAME",
                );
            }
        }
        let mut ports = BTreeSet::new();
        for (j, p) in app.port_mappings.iter().enumerate() {
            let port = p.container_port;
            let router = [config.service.port, config.service.admin_port];
            if port == 0 || router.contains(&port) || !ports.insert((port, p.protocol as u8)) {
                c.fail(
                    &format!("{}[{j}].container_port", at("port_mappings")),
                    format!("{port} cannot be used"),
                    "1 to 65535, once per application, and not the router's service.port or service.admin_port (the task's containers share one network namespace)",
                );
            }
        }
        if let Some(h) = &app.health_check {
            let kind = h.command.first().map(String::as_str);
            if !matches!(kind, Some("CMD" | "CMD-SHELL")) || h.command.len() < 2 {
                c.fail(
                    &at("health_check.command"),
                    "must start with CMD or CMD-SHELL and hold a command".to_string(),
                    "e.g. [CMD-SHELL, \"curl -f http://127.0.0.1:8000/ || exit 1\"]",
                );
            }
            c.range(
                &at("health_check.interval_seconds"),
                h.interval_seconds.into(),
                5,
                300,
                "ECS's range",
            );
            c.range(
                &at("health_check.timeout_seconds"),
                h.timeout_seconds.into(),
                2,
                60,
                "ECS's range",
            );
            c.range(
                &at("health_check.retries"),
                h.retries.into(),
                1,
                10,
                "ECS's range",
            );
            c.range(
                &at("health_check.start_period_seconds"),
                h.start_period_seconds.into(),
                0,
                300,
                "ECS's range",
            );
        }
    }
}

/// The account of an IAM role ARN (`arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`), or
/// `None` when it is not one.
fn role_account(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    let rest = rest.strip_prefix("iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let name = resource.strip_prefix("role/")?;
    let name_ok = !name.is_empty()
        && !name.ends_with('/')
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "+=,.@_-/".contains(ch));
    let ok = matches!(partition, "aws" | "aws-cn" | "aws-us-gov")
        && account.len() == 12
        && account.chars().all(|ch| ch.is_ascii_digit())
        && name_ok;
    ok.then_some(account)
}

#[cfg(test)]
mod role_tests {
    use super::role_account;

    #[test]
    fn role_arns_are_checked_and_give_their_account() {
        assert_eq!(
            role_account("arn:aws:iam::012345678901:role/deploy"),
            Some("012345678901")
        );
        assert_eq!(
            role_account("arn:aws-cn:iam::012345678901:role/path/to/deploy"),
            Some("012345678901")
        );
        for bad in [
            "arn:aws:iam::012345678901:user/deploy",
            "arn:aws:iam::12345:role/deploy",
            "arn:aws:iam::012345678901:role/",
            "arn:aws:sts::012345678901:assumed-role/deploy/session",
            "arn:aws:iam::012345678901:role/has space",
            "deploy",
        ] {
            assert_eq!(role_account(bad), None, "{bad}");
        }
    }
}
