//! AWS CloudFormation: stacks, their templates, outputs and events.

use std::time::Duration;

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::{Tag, TemplateStage};

use super::{AwsError, Error};

const SERVICE: &str = "CloudFormation";

/// What the deployer needs to know about a stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    pub name: String,
    pub status: String,
    pub reason: Option<String>,
    /// Output key and value, in the order CloudFormation gives them.
    pub outputs: Vec<(String, String)>,
}

impl Stack {
    pub fn output(&self, key: &str) -> Option<&str> {
        self.outputs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Still changing: create, update, delete or rollback under way.
    pub fn in_progress(&self) -> bool {
        self.status.ends_with("_IN_PROGRESS")
    }
}

/// A resource that failed, from the stack's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: String,
}

/// The stack named `name`, or None when there is none.
pub async fn describe(client: &Client, name: &str) -> Result<Option<Stack>, Error> {
    match client.describe_stacks().stack_name(name).send().await {
        Ok(out) => Ok(out.stacks().first().map(|s| Stack {
            name: s.stack_name().unwrap_or(name).to_string(),
            status: s
                .stack_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            reason: s.stack_status_reason().map(str::to_string),
            outputs: s
                .outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
                .collect(),
        })),
        // CloudFormation says "Stack with id NAME does not exist" as a ValidationError.
        Err(e) if says(&e, "does not exist") => Ok(None),
        Err(e) => Err(Error(AwsError::from_sdk(SERVICE, "DescribeStacks", e))),
    }
}

/// The template the stack was last deployed with, as it was submitted.
pub async fn template(client: &Client, name: &str) -> Result<String, Error> {
    let out = client
        .get_template()
        .stack_name(name)
        .template_stage(TemplateStage::Original)
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk(SERVICE, "GetTemplate", e)))?;
    Ok(out.template_body().unwrap_or_default().to_string())
}

/// Whether CloudFormation's error message contains `text`: it reports a missing stack and
/// an empty update only as a ValidationError with a message.
fn says<E, R>(e: &aws_sdk_cloudformation::error::SdkError<E, R>, text: &str) -> bool
where
    E: aws_sdk_cloudformation::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|e| e.message())
        .is_some_and(|m| m.contains(text))
}

fn tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Starts creating a stack. On a failure CloudFormation rolls it back and keeps it
/// (ROLLBACK_COMPLETE), so the failure reasons can be read.
pub async fn create(
    client: &Client,
    name: &str,
    body: &str,
    stack_tags: &[(String, String)],
) -> Result<(), Error> {
    client
        .create_stack()
        .stack_name(name)
        .template_body(body)
        .set_tags(Some(tags(stack_tags)))
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk(SERVICE, "CreateStack", e)))?;
    Ok(())
}

/// Starts updating a stack. False when CloudFormation finds nothing to change.
pub async fn update(
    client: &Client,
    name: &str,
    body: &str,
    stack_tags: &[(String, String)],
) -> Result<bool, Error> {
    match client
        .update_stack()
        .stack_name(name)
        .template_body(body)
        .set_tags(Some(tags(stack_tags)))
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if says(&e, "No updates are to be performed") => Ok(false),
        Err(e) => Err(Error(AwsError::from_sdk(SERVICE, "UpdateStack", e))),
    }
}

/// Polls until the stack is no longer in progress and returns it.
pub async fn wait(client: &Client, name: &str, every: Duration) -> Result<Stack, Error> {
    loop {
        match describe(client, name).await? {
            Some(stack) if stack.in_progress() => tokio::time::sleep(every).await,
            Some(stack) => return Ok(stack),
            None => {
                return Err(AwsError::response(
                    SERVICE,
                    "DescribeStacks",
                    format!("stack {name} disappeared while being deployed"),
                )
                .into());
            }
        }
    }
}

/// The resources that failed in the stack's latest operation, oldest first.
pub async fn failures(client: &Client, name: &str) -> Result<Vec<Failure>, Error> {
    let out = client
        .describe_stack_events()
        .stack_name(name)
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk(SERVICE, "DescribeStackEvents", e)))?;
    let mut failed = Vec::new();
    // Newest first; the stack's own "…_IN_PROGRESS" event with a user-initiated reason
    // marks where its latest operation began.
    for event in out.stack_events() {
        let status = event
            .resource_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        let is_stack = event.logical_resource_id() == Some(name);
        if is_stack
            && status.ends_with("_IN_PROGRESS")
            && event
                .resource_status_reason()
                .is_some_and(|r| r.contains("User Initiated"))
        {
            break;
        }
        if status.ends_with("_FAILED") && !is_stack {
            failed.push(Failure {
                logical_id: event.logical_resource_id().unwrap_or_default().to_string(),
                resource_type: event.resource_type().unwrap_or_default().to_string(),
                status,
                reason: event
                    .resource_status_reason()
                    .unwrap_or_default()
                    .to_string(),
            });
        }
    }
    failed.reverse();
    Ok(failed)
}
