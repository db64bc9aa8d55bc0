//! Amazon ECS, for what only the deployer does: the router's task definitions kept for
//! rollback and pruned past them, and moving the service between them. Reading the
//! service's state is the runtime's wrapper (`runtime::aws::ecs`), shared with the scaler.

use super::{AwsError, Error};

/// The family's active task definitions (ARNs), all pages. ECS matches the family as a
/// prefix; only the family itself is kept.
pub async fn task_definitions(
    client: &aws_sdk_ecs::Client,
    family: &str,
) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let mut pages = client
        .list_task_definitions()
        .family_prefix(family)
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error(AwsError::from_sdk("ECS", "ListTaskDefinitions", e)))?;
        out.extend(
            page.task_definition_arns()
                .iter()
                .filter(|arn| family_of(arn) == Some(family))
                .cloned(),
        );
    }
    Ok(out)
}

/// `arn:…:task-definition/FAMILY:REVISION` → FAMILY.
pub fn family_of(arn: &str) -> Option<&str> {
    let (_, tail) = arn.rsplit_once("task-definition/")?;
    Some(tail.rsplit_once(':')?.0)
}

/// `arn:…:task-definition/FAMILY:REVISION` → REVISION.
pub fn revision_of(arn: &str) -> Option<u64> {
    arn.rsplit_once(':')?.1.parse().ok()
}

/// Marks a task definition inactive: no new task or service can use it.
pub async fn deregister(client: &aws_sdk_ecs::Client, arn: &str) -> Result<(), Error> {
    client
        .deregister_task_definition()
        .task_definition(arn)
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk("ECS", "DeregisterTaskDefinition", e)))?;
    Ok(())
}

/// Starts a deployment of the service onto `task_definition`; returns the deployment's id.
pub async fn deploy(
    client: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    task_definition: &str,
) -> Result<Option<String>, Error> {
    let out = client
        .update_service()
        .cluster(cluster)
        .service(service)
        .task_definition(task_definition)
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk("ECS", "UpdateService", e)))?;
    Ok(out
        .service()
        .and_then(|s| {
            s.deployments()
                .iter()
                .find(|d| d.status() == Some("PRIMARY"))
        })
        .and_then(|d| d.id())
        .map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_and_revision_come_from_the_arn() {
        let arn =
            "arn:aws:ecs:ap-northeast-1:123456789012:task-definition/efs-autoscaler-prod-router:12";
        assert_eq!(family_of(arn), Some("efs-autoscaler-prod-router"));
        assert_eq!(revision_of(arn), Some(12));
        assert_eq!(family_of("arn:aws:ecs:r:1:service/x"), None);
        assert_eq!(revision_of("arn:aws:ecs:r:1:task-definition/f:x"), None);
    }
}
