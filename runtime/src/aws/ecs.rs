//! Amazon ECS: the router service and its deployments.

use std::time::SystemTime;

use aws_sdk_ecs::Client;

use super::AwsError;

const SERVICE: &str = "ECS";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceState {
    /// `ACTIVE`, `DRAINING` or `INACTIVE`.
    pub status: String,
    pub desired_count: i32,
    pub running_count: i32,
    /// The task definition (ARN) the service is set to run.
    pub task_definition: String,
    pub deployments: Vec<Deployment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub id: String,
    /// `PRIMARY` for the newest, `ACTIVE` for ones being replaced.
    pub status: String,
    pub created_at: Option<SystemTime>,
    pub running_count: i32,
    /// The task definition (ARN) this deployment's tasks run.
    pub task_definition: String,
}

impl ServiceState {
    /// When the newest deployment started.
    pub fn primary_created_at(&self) -> Option<SystemTime> {
        self.deployments
            .iter()
            .find(|d| d.status == "PRIMARY")
            .and_then(|d| d.created_at)
    }
}

#[derive(Debug, Clone)]
pub struct Ecs {
    client: Client,
}

impl Ecs {
    pub fn new(client: Client) -> Self {
        Ecs { client }
    }

    /// The service's state; an error naming the reason when ECS does not know it.
    pub async fn service(&self, cluster: &str, service: &str) -> Result<ServiceState, AwsError> {
        const OP: &str = "DescribeServices";
        let out = self
            .client
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, OP, e))?;
        let Some(s) = out.services().first() else {
            let reason = out
                .failures()
                .first()
                .and_then(|f| f.reason())
                .unwrap_or("not returned");
            return Err(AwsError {
                service: SERVICE,
                operation: OP,
                kind: super::ErrorKind::Service,
                code: Some(reason.to_string()),
                message: format!("service {service} in cluster {cluster}: {reason}"),
            });
        };
        Ok(ServiceState {
            status: s.status().unwrap_or_default().to_string(),
            desired_count: s.desired_count(),
            running_count: s.running_count(),
            task_definition: s.task_definition().unwrap_or_default().to_string(),
            deployments: s
                .deployments()
                .iter()
                .map(|d| Deployment {
                    id: d.id().unwrap_or_default().to_string(),
                    status: d.status().unwrap_or_default().to_string(),
                    created_at: d.created_at().and_then(|t| SystemTime::try_from(*t).ok()),
                    running_count: d.running_count(),
                    task_definition: d.task_definition().unwrap_or_default().to_string(),
                })
                .collect(),
        })
    }

    /// Starts a new deployment of the same task definition, so every task restarts and
    /// reads the current list. Returns the new deployment's id.
    pub async fn force_new_deployment(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<String, AwsError> {
        const OP: &str = "UpdateService";
        let out = self
            .client
            .update_service()
            .cluster(cluster)
            .service(service)
            .force_new_deployment(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, OP, e))?;
        let primary = out
            .service()
            .and_then(|s| {
                s.deployments()
                    .iter()
                    .find(|d| d.status() == Some("PRIMARY"))
            })
            .and_then(|d| d.id())
            .unwrap_or_default();
        Ok(primary.to_string())
    }
}
