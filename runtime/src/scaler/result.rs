//! What a run reports: the original design's `LambdaExecutionResult`, plus what an
//! operator needs to understand the run without reading its log.

use std::time::SystemTime;

use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use serde::Serialize;

use crate::aws::efs::MountTargetInfo;

use super::policy::Policy;

/// Why a run failed, in the terms of the original design's error table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The file system or its directory could not be read or described.
    EfsAccess,
    /// The run ran out of time before finishing.
    Deadline,
    /// The mount targets do not match the configuration (e.g. another VPC).
    Configuration,
    /// Creating the mount target failed.
    MountTargetCreation,
    /// No mount target is available, so there is no list to publish.
    NoAvailableMountTarget,
    /// Reading or writing the SSM parameter failed.
    Ssm,
    /// Describing or redeploying the ECS service failed.
    Ecs,
}

impl FailureKind {
    /// As the result's `error_kind` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::EfsAccess => "efs_access",
            FailureKind::Deadline => "deadline",
            FailureKind::Configuration => "configuration",
            FailureKind::MountTargetCreation => "mount_target_creation",
            FailureKind::NoAvailableMountTarget => "no_available_mount_target",
            FailureKind::Ssm => "ssm",
            FailureKind::Ecs => "ecs",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetSummary {
    pub mount_target_id: String,
    pub availability_zone: String,
    pub ip_address: Option<String>,
    pub state: String,
}

impl From<&MountTargetInfo> for TargetSummary {
    fn from(t: &MountTargetInfo) -> Self {
        TargetSummary {
            mount_target_id: t.mount_target_id.clone(),
            availability_zone: t.availability_zone.clone(),
            ip_address: t.ip_address.map(|ip| ip.to_string()),
            state: t.state.as_str().to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunResult {
    /// The run's id, on each of its log lines too (Lambda's request id in Lambda).
    pub run_id: String,
    /// When the run started, RFC 3339 UTC.
    pub timestamp: String,
    pub file_count: u64,
    /// False when counting stopped early at the point where more files could not change
    /// the decision; `file_count` is then a lower bound.
    pub file_count_complete: bool,
    pub threshold: u64,
    pub threshold_exceeded: bool,
    pub new_mount_target_created: bool,
    pub new_mount_target_id: Option<String>,
    pub deployment_triggered: bool,
    pub error: Option<String>,
    pub error_kind: Option<FailureKind>,
    pub policy: Policy,
    pub desired_mount_targets: Option<usize>,
    pub mount_targets_before: Vec<TargetSummary>,
    pub mount_targets_after: Vec<TargetSummary>,
    pub parameter_updated: bool,
    pub deployment_id: Option<String>,
    pub warnings: Vec<String>,
    pub dry_run: bool,
    pub duration_ms: u64,
}

impl RunResult {
    pub fn new(
        run_id: &str,
        started: SystemTime,
        threshold: u64,
        policy: Policy,
        dry_run: bool,
    ) -> Self {
        RunResult {
            run_id: run_id.to_string(),
            timestamp: rfc3339(started),
            file_count: 0,
            file_count_complete: false,
            threshold,
            threshold_exceeded: false,
            new_mount_target_created: false,
            new_mount_target_id: None,
            deployment_triggered: false,
            error: None,
            error_kind: None,
            policy,
            desired_mount_targets: None,
            mount_targets_before: Vec::new(),
            mount_targets_after: Vec::new(),
            parameter_updated: false,
            deployment_id: None,
            warnings: Vec::new(),
            dry_run,
            duration_ms: 0,
        }
    }

    pub fn is_success(&self) -> bool {
        self.error.is_none()
    }

    /// The result as one JSON line.
    pub fn to_json(&self) -> String {
        // Serialising plain strings, numbers and enums cannot fail; the fallback keeps
        // the contract of always printing JSON.
        serde_json::to_string(self).unwrap_or_else(|e| {
            serde_json::json!({ "error": format!("result not serialisable: {e}") }).to_string()
        })
    }
}

pub fn rfc3339(t: SystemTime) -> String {
    DateTime::from(t)
        .fmt(Format::DateTime)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::FailureKind;

    /// Log lines and Lambda's error type name a kind as the result's JSON does.
    #[test]
    fn a_kind_is_named_as_its_json() {
        for kind in [
            FailureKind::EfsAccess,
            FailureKind::Deadline,
            FailureKind::Configuration,
            FailureKind::MountTargetCreation,
            FailureKind::NoAvailableMountTarget,
            FailureKind::Ssm,
            FailureKind::Ecs,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }
}
