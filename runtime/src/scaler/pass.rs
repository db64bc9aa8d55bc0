//! One scaling pass: describe, count, decide, maybe create one mount target, publish
//! the verified list, redeploy when it changed (or when an earlier redeploy failed).
//!
//! Each step that fails ends the pass before any later step writes anything, so a
//! failure never publishes an unverified list or redeploys for one (property 7), and
//! the next scheduled run starts again from what AWS says.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use aws_config::SdkConfig;

use crate::aws::AwsError;
use crate::aws::ecs::Ecs;
use crate::aws::efs::{Created, Efs, MountTargetInfo, State};
use crate::aws::ssm::Ssm;
use crate::reconcile::{self, ReconcileError};

use super::config::{Candidate, ScalerConfig};
use super::count::{self, CountError, CountOptions};
use super::deadline::Deadline;
use super::policy::Bounds;
use super::result::{FailureKind, RunResult, TargetSummary};

/// Time kept after waiting for a new mount target, for publishing and redeploying.
const PUBLISH_RESERVE: Duration = Duration::from_secs(10);

/// The AWS clients a pass uses, built once per process and passed in.
#[derive(Debug, Clone)]
pub struct Clients {
    pub efs: Efs,
    pub ssm: Ssm,
    pub ecs: Ecs,
}

impl Clients {
    pub fn new(config: &SdkConfig) -> Self {
        Clients {
            efs: Efs::new(aws_sdk_efs::Client::new(config)),
            ssm: Ssm::new(aws_sdk_ssm::Client::new(config)),
            ecs: Ecs::new(aws_sdk_ecs::Client::new(config)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Names every log line of the run and its result: Lambda's request id in Lambda
    /// (the same id as Lambda's own START, END and REPORT lines), a random one elsewhere.
    pub run_id: String,
    /// Read, count and decide, but create, write and redeploy nothing.
    pub dry_run: bool,
    pub deadline: Deadline,
    /// First wait between polls of a new mount target; doubles up to 5 s.
    pub poll_interval: Duration,
    /// How often the wait for a new mount target says it is still waiting.
    pub progress_every: Duration,
}

impl RunOptions {
    pub fn new(dry_run: bool, deadline: Deadline) -> Self {
        RunOptions {
            run_id: format!("run-{:016x}", rand::random::<u64>()),
            dry_run,
            deadline,
            // EFS takes a minute or two to make a mount target available.
            poll_interval: Duration::from_secs(1),
            progress_every: Duration::from_secs(15),
        }
    }

    pub fn with_run_id(self, run_id: impl Into<String>) -> Self {
        RunOptions {
            run_id: run_id.into(),
            ..self
        }
    }
}

#[derive(Debug)]
struct Failure {
    kind: FailureKind,
    message: String,
}

impl Failure {
    fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }

    fn aws(kind: FailureKind, err: AwsError) -> Self {
        Failure::new(kind, err.to_string())
    }
}

/// Runs one pass. Never panics on AWS or file-system errors: they end up in
/// `RunResult::error`.
pub async fn run(config: &ScalerConfig, clients: &Clients, options: RunOptions) -> RunResult {
    let started = Instant::now();
    let mut result = RunResult::new(
        &options.run_id,
        SystemTime::now(),
        config.threshold,
        config.policy,
        options.dry_run,
    );
    tracing::info!(
        run_id = %options.run_id,
        file_system_id = %config.file_system_id,
        threshold = config.threshold,
        policy = ?config.policy,
        dry_run = options.dry_run,
        seconds_left = options.deadline.remaining().as_secs(),
        "scaler run started"
    );
    let pass = Pass {
        config,
        clients,
        options,
    };
    if let Err(f) = pass.run(&mut result).await {
        tracing::error!(
            run_id = %pass.options.run_id,
            kind = f.kind.as_str(),
            error = %f.message,
            "scaler run stopped at an error; nothing after it was written"
        );
        result.error = Some(f.message);
        result.error_kind = Some(f.kind);
    }
    result.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    result
}

struct Pass<'a> {
    config: &'a ScalerConfig,
    clients: &'a Clients,
    options: RunOptions,
}

fn summaries(targets: &[MountTargetInfo]) -> Vec<TargetSummary> {
    targets.iter().map(TargetSummary::from).collect()
}

fn occupied_zones(targets: &[MountTargetInfo]) -> BTreeSet<&str> {
    targets
        .iter()
        .filter(|t| t.state.occupies_zone())
        .map(|t| t.availability_zone.as_str())
        .collect()
}

impl Pass<'_> {
    /// An AWS call bounded by the run's deadline.
    async fn call<T>(
        &self,
        kind: FailureKind,
        what: &str,
        fut: impl Future<Output = Result<T, AwsError>>,
    ) -> Result<T, Failure> {
        match self.options.deadline.bound(fut).await {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(Failure::aws(kind, e)),
            None => Err(Failure::new(
                FailureKind::Deadline,
                format!("the deadline passed while {what}"),
            )),
        }
    }

    async fn describe(&self) -> Result<Vec<MountTargetInfo>, Failure> {
        let fs = &self.config.file_system_id;
        self.call(
            FailureKind::EfsAccess,
            "describing the mount targets",
            self.clients.efs.mount_targets(fs),
        )
        .await
    }

    async fn run(&self, result: &mut RunResult) -> Result<(), Failure> {
        let cfg = self.config;
        let before = self.describe().await?;
        result.mount_targets_before = summaries(&before);
        result.mount_targets_after = summaries(&before);
        self.check_vpc(&before)?;

        let occupied = occupied_zones(&before);
        let existing = occupied.len();
        tracing::info!(
            run_id = %self.options.run_id,
            mount_targets = before.len(),
            zones = ?occupied,
            "mount targets described"
        );
        let free: Vec<&Candidate> = cfg
            .candidates
            .iter()
            .filter(|c| !occupied.contains(c.availability_zone.as_str()))
            .collect();
        // Bounded by the configuration and by the zones still free.
        let max = cfg.max_mount_targets.min(existing + free.len());
        let bounds = Bounds {
            threshold: cfg.threshold,
            min: cfg.min_mount_targets.min(max),
            max,
        };

        let limit = cfg.policy.count_limit(bounds, existing);
        let counting = Instant::now();
        let counted = self.count(limit).await?;
        result.file_count = counted.files;
        result.file_count_complete = counted.complete;
        result.threshold_exceeded = counted.files > cfg.threshold;
        tracing::info!(
            run_id = %self.options.run_id,
            file_count = counted.files,
            complete = counted.complete,
            limit,
            threshold = cfg.threshold,
            threshold_exceeded = result.threshold_exceeded,
            seconds = counting.elapsed().as_secs_f64(),
            "files counted"
        );
        let desired = cfg.policy.desired(bounds, counted.files, existing);
        result.desired_mount_targets = Some(desired);
        let action = match (desired > existing, free.first()) {
            (true, Some(_)) if self.options.dry_run => "none: dry run",
            (true, Some(_)) => "create a mount target",
            _ if result.threshold_exceeded && existing >= max => "none: no zone left to add",
            _ => "none",
        };
        tracing::info!(
            run_id = %self.options.run_id,
            existing,
            desired,
            max,
            zone = free.first().filter(|_| desired > existing).map(|c| c.availability_zone.as_str()),
            action,
            "scaling decision"
        );

        let mut after = None;
        // `desired > existing` implies a free zone (desired <= max <= existing + free).
        if let (true, Some(c)) = (desired > existing, free.first()) {
            if self.options.dry_run {
                result.warnings.push(format!(
                    "dry run: would create a mount target in {} (subnet {})",
                    c.availability_zone, c.subnet_id
                ));
            } else {
                after = Some(self.create(c, result).await?);
            }
        } else if result.threshold_exceeded && existing >= max {
            result.warnings.push(if existing >= cfg.max_mount_targets {
                format!(
                    "{} files exceed the threshold of {}, but the file system already has the maximum of {} mount targets",
                    counted.files, cfg.threshold, cfg.max_mount_targets
                )
            } else {
                format!(
                    "{} files exceed the threshold of {}, but every candidate zone already has a mount target; nothing to add",
                    counted.files, cfg.threshold
                )
            });
        }
        let after = after.unwrap_or(before);
        result.mount_targets_after = summaries(&after);
        self.publish_and_redeploy(&after, result).await
    }

    /// Publishes the verified list when it differs, and redeploys when it was written or
    /// an earlier redeploy failed.
    async fn publish_and_redeploy(
        &self,
        after: &[MountTargetInfo],
        result: &mut RunResult,
    ) -> Result<(), Failure> {
        let cfg = self.config;
        let list = reconcile::verified_list(after).map_err(|e| match e {
            ReconcileError::NoneAvailable => {
                Failure::new(FailureKind::NoAvailableMountTarget, e.to_string())
            }
            other => Failure::new(FailureKind::EfsAccess, other.to_string()),
        })?;
        let published = self
            .options
            .deadline
            .bound(reconcile::publish(
                &self.clients.ssm,
                &cfg.ssm_parameter_name,
                &list,
                self.options.dry_run,
            ))
            .await
            .ok_or_else(|| {
                Failure::new(
                    FailureKind::Deadline,
                    "the deadline passed while publishing the list",
                )
            })?
            .map_err(|e| Failure::new(FailureKind::Ssm, e.to_string()))?;
        result.parameter_updated = published.written;
        tracing::info!(
            run_id = %self.options.run_id,
            parameter = %cfg.ssm_parameter_name,
            mount_targets = list.len(),
            written = published.written,
            "{}",
            if published.written {
                "mount-target list published"
            } else if published.changed {
                "mount-target list not written (dry run)"
            } else {
                "mount-target list unchanged"
            }
        );
        if published.raced {
            // Both lists came from the mount targets as each writer saw them; the next
            // run, five minutes on, publishes them as they are then.
            result.warnings.push(
                "another writer published the mount-target list between this run's read and its write; the next run reconciles it".to_string(),
            );
        }
        if let Some(e) = &published.previous_unreadable {
            result.warnings.push(format!(
                "the published list was not readable and was replaced: {e}"
            ));
        }

        if self.options.dry_run {
            if published.changed {
                result
                    .warnings
                    .push("dry run: would write the list and redeploy the service".to_string());
            }
            return Ok(());
        }
        let redeploy = if published.written {
            true
        } else {
            let published_at = published.previous.as_ref().and_then(|p| p.last_modified);
            self.earlier_redeploy_failed(published_at).await?
        };
        if redeploy {
            let id = self
                .call(
                    FailureKind::Ecs,
                    "redeploying the service",
                    self.clients
                        .ecs
                        .force_new_deployment(&cfg.cluster, &cfg.service),
                )
                .await?;
            tracing::info!(
                run_id = %self.options.run_id,
                cluster = %cfg.cluster,
                service = %cfg.service,
                deployment_id = %id,
                reason = if published.written { "the list changed" } else { "the list is newer than the service's deployment: an earlier redeploy failed" },
                "router service redeployed"
            );
            result.deployment_triggered = true;
            result.deployment_id = Some(id).filter(|id| !id.is_empty());
        }
        Ok(())
    }

    /// A mount target in another VPC means the configuration names the wrong VPC or
    /// file system; creating one here would fail, so stop before trying.
    fn check_vpc(&self, targets: &[MountTargetInfo]) -> Result<(), Failure> {
        let vpc = &self.config.vpc_id;
        match targets
            .iter()
            .find(|t| t.vpc_id.as_ref().is_some_and(|v| v != vpc))
        {
            Some(t) => Err(Failure::new(
                FailureKind::Configuration,
                format!(
                    "mount target {} of {} is in {}, but VPC_ID is {vpc}; a file system's mount targets all live in one VPC",
                    t.mount_target_id,
                    self.config.file_system_id,
                    t.vpc_id.as_deref().unwrap_or_default()
                ),
            )),
            None => Ok(()),
        }
    }

    async fn count(&self, limit: u64) -> Result<count::Count, Failure> {
        let root: PathBuf = self.config.target_directory.clone();
        let options = CountOptions {
            limit: Some(limit),
            threads: self.config.count_threads,
            deadline: Some(self.options.deadline.instant()),
            exclude: self.config.exclude.clone(),
            ..CountOptions::default()
        };
        let joined = tokio::task::spawn_blocking(move || count::count_files(&root, &options)).await;
        match joined {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e @ CountError::Deadline { .. })) => {
                Err(Failure::new(FailureKind::Deadline, e.to_string()))
            }
            Ok(Err(e)) => Err(Failure::new(FailureKind::EfsAccess, e.to_string())),
            Err(e) => Err(Failure::new(
                FailureKind::EfsAccess,
                format!("the counting task failed: {e}"),
            )),
        }
    }

    /// Creates one mount target in `c`'s zone and waits for it; returns the targets as
    /// EFS describes them afterwards. A conflict is success when the zone turns out to
    /// have a target (another run or a person made it): at most one per zone, always.
    async fn create(
        &self,
        c: &Candidate,
        result: &mut RunResult,
    ) -> Result<Vec<MountTargetInfo>, Failure> {
        let cfg = self.config;
        tracing::info!(
            run_id = %self.options.run_id,
            zone = %c.availability_zone,
            subnet = %c.subnet_id,
            "creating a mount target"
        );
        let created = self
            .call(
                FailureKind::MountTargetCreation,
                "creating the mount target",
                self.clients.efs.create_mount_target(
                    &cfg.file_system_id,
                    &c.subnet_id,
                    &cfg.security_group_id,
                ),
            )
            .await?;
        let id = match created {
            Created::New(mt) => {
                tracing::info!(
                    run_id = %self.options.run_id,
                    mount_target_id = %mt.mount_target_id,
                    zone = %c.availability_zone,
                    "mount target creation started; waiting for it to become available"
                );
                result.new_mount_target_created = true;
                result.new_mount_target_id = Some(mt.mount_target_id.clone());
                mt.mount_target_id
            }
            Created::Conflict(message) => {
                let now = self.describe().await?;
                let Some(existing) = now.iter().find(|t| {
                    t.availability_zone == c.availability_zone && t.state.occupies_zone()
                }) else {
                    return Err(Failure::new(
                        FailureKind::MountTargetCreation,
                        format!(
                            "EFS refused a mount target in {} (MountTargetConflict: {message}) and none exists there",
                            c.availability_zone
                        ),
                    ));
                };
                result.warnings.push(format!(
                    "{} already has mount target {} (created by another run or by hand); not creating another",
                    c.availability_zone, existing.mount_target_id
                ));
                existing.mount_target_id.clone()
            }
        };
        self.wait_available(&id, result).await?;
        self.describe().await
    }

    /// Polls until the target is available, with backoff, leaving time to publish. Still
    /// creating at that point is a warning: the list only holds available targets, and
    /// the next run publishes it.
    async fn wait_available(&self, id: &str, result: &mut RunResult) -> Result<(), Failure> {
        let until = self.options.deadline.less(PUBLISH_RESERVE);
        let mut delay = self.options.poll_interval;
        let waiting = Instant::now();
        let mut said = Instant::now();
        loop {
            let polled = until.bound(self.clients.efs.mount_target(id)).await;
            match polled {
                Some(Ok(Some(mt))) => match mt.state {
                    State::Available => {
                        tracing::info!(
                            run_id = %self.options.run_id,
                            mount_target_id = id,
                            ip_address = ?mt.ip_address,
                            waited_seconds = waiting.elapsed().as_secs(),
                            "mount target available"
                        );
                        return Ok(());
                    }
                    State::Creating | State::Updating => {
                        // A creation takes minutes: a line now and then shows the run
                        // is alive and how long it has waited.
                        if said.elapsed() >= self.options.progress_every {
                            said = Instant::now();
                            tracing::info!(
                                run_id = %self.options.run_id,
                                mount_target_id = id,
                                state = mt.state.as_str(),
                                waited_seconds = waiting.elapsed().as_secs(),
                                seconds_left = until.remaining().as_secs(),
                                "waiting for the mount target"
                            );
                        }
                    }
                    other => {
                        return Err(Failure::new(
                            FailureKind::MountTargetCreation,
                            format!(
                                "mount target {id} went to state {} instead of available",
                                other.as_str()
                            ),
                        ));
                    }
                },
                Some(Ok(None)) => {
                    return Err(Failure::new(
                        FailureKind::MountTargetCreation,
                        format!("mount target {id} disappeared while being created"),
                    ));
                }
                Some(Err(e)) => return Err(Failure::aws(FailureKind::MountTargetCreation, e)),
                None => break,
            }
            if until.remaining() <= delay {
                break;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        let warning = format!("mount target {id} is not available yet; the next run publishes it");
        tracing::warn!(run_id = %self.options.run_id, mount_target_id = id, "{warning}");
        result.warnings.push(warning);
        Ok(())
    }

    /// The list was published after the service's newest deployment started: the
    /// redeploy that should have followed failed, so it is retried now.
    async fn earlier_redeploy_failed(
        &self,
        published_at: Option<SystemTime>,
    ) -> Result<bool, Failure> {
        let cfg = self.config;
        let service = self
            .call(
                FailureKind::Ecs,
                "describing the service",
                self.clients.ecs.service(&cfg.cluster, &cfg.service),
            )
            .await?;
        if service.status != "ACTIVE" {
            return Err(Failure::new(
                FailureKind::Ecs,
                format!(
                    "service {} in cluster {} is {}, not ACTIVE",
                    cfg.service, cfg.cluster, service.status
                ),
            ));
        }
        Ok(match (published_at, service.primary_created_at()) {
            (Some(published), Some(deployed)) => published > deployed,
            _ => false,
        })
    }
}
