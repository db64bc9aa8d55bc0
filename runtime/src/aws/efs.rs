//! Amazon EFS: the file system's mount targets.

use std::net::Ipv4Addr;

use aws_sdk_efs::Client;
use aws_sdk_efs::types::{LifeCycleState, MountTargetDescription};

use super::AwsError;

const SERVICE: &str = "EFS";

/// A mount target as EFS describes it, in any lifecycle state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountTargetInfo {
    pub mount_target_id: String,
    pub availability_zone: String,
    pub subnet_id: String,
    pub vpc_id: Option<String>,
    /// Set once the network interface exists; a target being created may have none yet.
    pub ip_address: Option<Ipv4Addr>,
    pub state: State,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Creating,
    Available,
    Updating,
    Deleting,
    Deleted,
    Error,
    Other(String),
}

impl State {
    pub fn as_str(&self) -> &str {
        match self {
            State::Creating => "creating",
            State::Available => "available",
            State::Updating => "updating",
            State::Deleting => "deleting",
            State::Deleted => "deleted",
            State::Error => "error",
            State::Other(s) => s,
        }
    }

    /// The target occupies its zone: another one there would conflict.
    pub fn occupies_zone(&self) -> bool {
        !matches!(self, State::Deleted)
    }
}

impl From<&LifeCycleState> for State {
    fn from(s: &LifeCycleState) -> Self {
        match s {
            LifeCycleState::Creating => State::Creating,
            LifeCycleState::Available => State::Available,
            LifeCycleState::Updating => State::Updating,
            LifeCycleState::Deleting => State::Deleting,
            LifeCycleState::Deleted => State::Deleted,
            LifeCycleState::Error => State::Error,
            other => State::Other(other.as_str().to_string()),
        }
    }
}

/// The outcome of a create call that EFS answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    New(MountTargetInfo),
    /// `MountTargetConflict`: the zone (or the file system's VPC) already has one. The
    /// caller re-reads to find out which.
    Conflict(String),
}

#[derive(Debug, Clone)]
pub struct Efs {
    client: Client,
}

impl Efs {
    pub fn new(client: Client) -> Self {
        Efs { client }
    }

    /// Every mount target of the file system, all pages.
    pub async fn mount_targets(
        &self,
        file_system_id: &str,
    ) -> Result<Vec<MountTargetInfo>, AwsError> {
        const OP: &str = "DescribeMountTargets";
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .client
                .describe_mount_targets()
                .file_system_id(file_system_id)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, OP, e))?;
            for mt in page.mount_targets() {
                out.push(convert(mt, OP)?);
            }
            match page.next_marker() {
                Some(next) if !next.is_empty() => marker = Some(next.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// One mount target by id; `None` once it no longer exists.
    pub async fn mount_target(
        &self,
        mount_target_id: &str,
    ) -> Result<Option<MountTargetInfo>, AwsError> {
        const OP: &str = "DescribeMountTargets";
        let result = self
            .client
            .describe_mount_targets()
            .mount_target_id(mount_target_id)
            .send()
            .await;
        match result {
            Ok(page) => page
                .mount_targets()
                .first()
                .map(|mt| convert(mt, OP))
                .transpose(),
            Err(e) => {
                let err = AwsError::from_sdk(SERVICE, OP, e);
                if err.is_code("MountTargetNotFound") {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    pub async fn create_mount_target(
        &self,
        file_system_id: &str,
        subnet_id: &str,
        security_group_id: &str,
    ) -> Result<Created, AwsError> {
        const OP: &str = "CreateMountTarget";
        let result = self
            .client
            .create_mount_target()
            .file_system_id(file_system_id)
            .subnet_id(subnet_id)
            .security_groups(security_group_id)
            .send()
            .await;
        match result {
            Ok(out) => {
                let ip_address = parse_ip(out.ip_address(), OP)?;
                Ok(Created::New(MountTargetInfo {
                    mount_target_id: out.mount_target_id().to_string(),
                    availability_zone: out.availability_zone_name().unwrap_or_default().to_string(),
                    subnet_id: out.subnet_id().to_string(),
                    vpc_id: out.vpc_id().map(str::to_string),
                    ip_address,
                    state: State::from(out.life_cycle_state()),
                }))
            }
            Err(e) => {
                let err = AwsError::from_sdk(SERVICE, OP, e);
                if err.is_code("MountTargetConflict") {
                    Ok(Created::Conflict(err.message))
                } else {
                    Err(err)
                }
            }
        }
    }
}

fn parse_ip(ip: Option<&str>, op: &'static str) -> Result<Option<Ipv4Addr>, AwsError> {
    ip.filter(|s| !s.is_empty())
        .map(|s| {
            s.parse().map_err(|_| {
                AwsError::response(
                    SERVICE,
                    op,
                    format!("mount target IP address {s:?} is not an IPv4 address"),
                )
            })
        })
        .transpose()
}

fn convert(mt: &MountTargetDescription, op: &'static str) -> Result<MountTargetInfo, AwsError> {
    Ok(MountTargetInfo {
        mount_target_id: mt.mount_target_id().to_string(),
        availability_zone: mt.availability_zone_name().unwrap_or_default().to_string(),
        subnet_id: mt.subnet_id().to_string(),
        vpc_id: mt.vpc_id().map(str::to_string),
        ip_address: parse_ip(mt.ip_address(), op)?,
        state: State::from(mt.life_cycle_state()),
    })
}
