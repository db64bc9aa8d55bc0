//! The published list against the file system's real mount targets: used by the scaler
//! on every run and by `deployer up` after a deploy.
//!
//! Level-triggered: the list is always rebuilt from `DescribeMountTargets` (only
//! `available` targets, the ones a client can use), never patched from what a previous
//! step believes it did, and written only when it differs from what is published. A
//! list is only ever replaced by a verified one (property 7).

use crate::aws::AwsError;
use crate::aws::efs::{MountTargetInfo, State};
use crate::aws::ssm::{Parameter, Ssm};
use crate::model::{ModelError, MountTarget, MountTargetList};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("reading the published list: {0}")]
    Read(AwsError),
    #[error("writing the published list: {0}")]
    Write(AwsError),
    #[error("the file system's available mount targets do not form a valid list: {0}")]
    Model(#[from] ModelError),
    #[error("the file system has no available mount target; the published list is left as it is")]
    NoneAvailable,
}

/// The list clients should use: every `available` mount target with an address.
pub fn verified_list(targets: &[MountTargetInfo]) -> Result<MountTargetList, ReconcileError> {
    let available: Vec<MountTarget> = targets
        .iter()
        .filter(|t| t.state == State::Available)
        .filter_map(|t| {
            Some(MountTarget {
                mount_target_id: t.mount_target_id.clone(),
                ip_address: t.ip_address?,
                availability_zone: t.availability_zone.clone(),
                subnet_id: t.subnet_id.clone(),
            })
        })
        .collect();
    if available.is_empty() {
        return Err(ReconcileError::NoneAvailable);
    }
    Ok(MountTargetList::new(available)?)
}

/// What [`publish`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The parameter before this call (`None`: it did not exist).
    pub previous: Option<Parameter>,
    /// The published list differed from the verified one.
    pub changed: bool,
    /// It was written (false when unchanged or in a dry run).
    pub written: bool,
    /// The previous value could not be read as a list (it is replaced).
    pub previous_unreadable: Option<ModelError>,
    /// Another writer published between this call's read and its write (the version
    /// moved by more than this write): the value now may rest on an older view of the
    /// mount targets than the other writer's. Describe them again and publish again.
    pub raced: bool,
}

/// Makes the parameter `name` hold `list`, writing only when it differs. A value that
/// is not a valid list counts as different. With `dry_run`, reads and compares only.
pub async fn publish(
    ssm: &Ssm,
    name: &str,
    list: &MountTargetList,
    dry_run: bool,
) -> Result<Published, ReconcileError> {
    let value = list.to_canonical_json()?;
    let previous = ssm.get(name).await.map_err(ReconcileError::Read)?;
    let (changed, previous_unreadable) = match &previous {
        None => (true, None),
        Some(p) => match MountTargetList::parse(&p.value) {
            // Compared as lists, not strings: an equal list written by hand in another
            // layout must not cause a write and a redeploy.
            Ok(current) => (current != *list, None),
            Err(e) => (true, Some(e)),
        },
    };
    let written = changed && !dry_run;
    // SSM has no conditional write; the version a write returns says whether anyone
    // wrote between the read and this write.
    let expected = previous.as_ref().map_or(1, |p| p.version + 1);
    let raced = if written {
        ssm.put(name, &value).await.map_err(ReconcileError::Write)? != expected
    } else {
        false
    };
    Ok(Published {
        previous,
        changed,
        written,
        previous_unreadable,
        raced,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// An SSM whose parameter is at version `read` when read, and whose next write
    /// lands at version `written` (read + 1 when nobody else wrote in between).
    fn ssm(read: i64, written: i64) -> Ssm {
        use aws_smithy_mocks::{mock, mock_client};
        let get = mock!(aws_sdk_ssm::Client::get_parameter).then_output(move || {
            aws_sdk_ssm::operation::get_parameter::GetParameterOutput::builder()
                .parameter(
                    aws_sdk_ssm::types::Parameter::builder()
                        .name("/p")
                        .value("not a list")
                        .version(read)
                        .build(),
                )
                .build()
        });
        let put = mock!(aws_sdk_ssm::Client::put_parameter).then_output(move || {
            aws_sdk_ssm::operation::put_parameter::PutParameterOutput::builder()
                .version(written)
                .build()
        });
        Ssm::new(mock_client!(aws_sdk_ssm, [&get, &put]))
    }

    fn one_target() -> MountTargetList {
        verified_list(&[info(
            "fsmt-0000000a",
            "ap-northeast-1a",
            Some("10.0.1.4"),
            State::Available,
        )])
        .unwrap()
    }

    #[tokio::test]
    async fn a_write_that_lands_past_the_next_version_is_a_race() {
        let alone = publish(&ssm(3, 4), "/p", &one_target(), false)
            .await
            .unwrap();
        assert!(alone.written && !alone.raced);
        let raced = publish(&ssm(3, 5), "/p", &one_target(), false)
            .await
            .unwrap();
        assert!(raced.written && raced.raced);
    }

    fn info(id: &str, az: &str, ip: Option<&str>, state: State) -> MountTargetInfo {
        MountTargetInfo {
            mount_target_id: id.into(),
            availability_zone: az.into(),
            subnet_id: format!("subnet-{}", &id[5..]),
            vpc_id: Some("vpc-00000001".into()),
            ip_address: ip.map(|s| s.parse().unwrap()),
            state,
        }
    }

    #[test]
    fn only_available_targets_with_an_address_are_published() {
        let targets = [
            info(
                "fsmt-0000000c",
                "ap-northeast-1c",
                Some("10.0.2.5"),
                State::Available,
            ),
            info(
                "fsmt-0000000a",
                "ap-northeast-1a",
                Some("10.0.1.5"),
                State::Available,
            ),
            info(
                "fsmt-0000000d",
                "ap-northeast-1d",
                Some("10.0.3.5"),
                State::Creating,
            ),
            info("fsmt-0000000e", "ap-northeast-1e", None, State::Available),
            info(
                "fsmt-0000000f",
                "ap-northeast-1f",
                Some("10.0.4.5"),
                State::Deleting,
            ),
        ];
        let list = verified_list(&targets).unwrap();
        let ids: Vec<_> = list
            .targets()
            .iter()
            .map(|t| t.mount_target_id.as_str())
            .collect();
        assert_eq!(ids, ["fsmt-0000000a", "fsmt-0000000c"]);
    }

    #[test]
    fn nothing_available_is_an_error_not_an_empty_list() {
        let targets = [info(
            "fsmt-0000000d",
            "ap-northeast-1d",
            None,
            State::Creating,
        )];
        assert!(matches!(
            verified_list(&targets),
            Err(ReconcileError::NoneAvailable)
        ));
        assert!(matches!(
            verified_list(&[]),
            Err(ReconcileError::NoneAvailable)
        ));
    }
}
