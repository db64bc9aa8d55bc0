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
    /// The stack's ARN: it still names the stack after deletion, when the name no
    /// longer does.
    pub id: String,
    pub status: String,
    pub reason: Option<String>,
    /// Output key and value, in the order CloudFormation gives them.
    pub outputs: Vec<(String, String)>,
    /// Parameter key and value as deployed.
    pub parameters: Vec<(String, String)>,
    pub termination_protection: bool,
}

impl Stack {
    /// A stack known only by name and status (one just deleted, or not created yet).
    pub fn named(name: &str, status: &str) -> Stack {
        Stack {
            name: name.to_string(),
            id: name.to_string(),
            status: status.to_string(),
            reason: None,
            outputs: Vec::new(),
            parameters: Vec::new(),
            termination_protection: false,
        }
    }

    pub fn output(&self, key: &str) -> Option<&str> {
        self.outputs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The outputs as one JSON object, key to value, for `--output json`.
    pub fn outputs_json(&self) -> serde_json::Value {
        self.outputs
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    /// Still changing: create, update, delete or rollback under way.
    pub fn in_progress(&self) -> bool {
        self.status.ends_with("_IN_PROGRESS")
    }
}

/// The stack named `name`, or None when there is none.
pub async fn describe(client: &Client, name: &str) -> Result<Option<Stack>, Error> {
    match client.describe_stacks().stack_name(name).send().await {
        Ok(out) => Ok(out.stacks().first().map(|s| Stack {
            name: s.stack_name().unwrap_or(name).to_string(),
            id: s.stack_id().unwrap_or(name).to_string(),
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
            parameters: s
                .parameters()
                .iter()
                .filter_map(|p| {
                    Some((
                        p.parameter_key()?.to_string(),
                        p.parameter_value().unwrap_or_default().to_string(),
                    ))
                })
                .collect(),
            termination_protection: s.enable_termination_protection().unwrap_or(false),
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

/// "STACK ended in STATUS (reason)", then one line per resource that failed in the
/// latest operation with CloudFormation's reason. The stack is looked up by its id,
/// which still finds a deleted stack.
pub async fn failure_report(client: &Client, stack: &Stack) -> String {
    let mut report = format!("{} ended in {}", stack.name, stack.status);
    if let Some(reason) = &stack.reason {
        report.push_str(&format!(" ({reason})"));
    }
    match failures(client, &stack.id).await {
        Ok(failed) => {
            for f in failed {
                report.push_str(&format!(
                    "\n  {} ({}): {}: {}",
                    f.logical_id,
                    f.resource_type,
                    f.status,
                    f.reason.as_deref().unwrap_or_default()
                ));
            }
        }
        Err(e) => report.push_str(&format!(
            "\n  (the failed resources could not be read: {e})"
        )),
    }
    report
}

/// The resources that failed in the stack's latest operation, oldest first. Reads
/// back (newest first, page after page) to where the operation began: the root cause
/// is the oldest failure, often pages behind the rollback's events.
pub async fn failures(client: &Client, stack: &str) -> Result<Vec<Event>, Error> {
    let mut failed = Vec::new();
    walk_events(client, stack, |e| {
        // The stack's own "…_IN_PROGRESS" with a user-initiated reason marks where its
        // latest operation began.
        if e.is_stack()
            && e.status.ends_with("_IN_PROGRESS")
            && e.reason
                .as_deref()
                .is_some_and(|r| r.contains("User Initiated"))
        {
            return false;
        }
        if e.status.ends_with("_FAILED") && !e.is_stack() {
            failed.push(e);
        }
        true
    })
    .await?;
    failed.reverse();
    Ok(failed)
}

/// How a change set would deploy the stack: its template (inline, or an S3 URL when
/// over CloudFormation's 51,200-byte inline limit), parameters and tags.
#[derive(Debug, Clone)]
pub struct Submission {
    pub template_body: Option<String>,
    pub template_url: Option<String>,
    pub parameters: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    /// The service role CloudFormation acts as (`RoleARN`); none: the caller's rights.
    pub role_arn: Option<String>,
}

/// A resource change as a change set lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetChange {
    pub logical_id: String,
    pub resource_type: String,
    /// `Add`, `Modify`, `Remove`, `Import` or `Dynamic`.
    pub action: String,
    /// `True`, `False` or `Conditional`; None when AWS gives none.
    pub replacement: Option<String>,
    /// What changes, as `Properties.NAME` / `Tags` / …, with whether it recreates.
    pub targets: Vec<(String, bool)>,
}

/// A change set once CloudFormation has finished computing it.
#[derive(Debug, Clone)]
pub struct ChangeSet {
    pub id: String,
    /// `CREATE_COMPLETE` or `FAILED`.
    pub status: String,
    pub reason: Option<String>,
    pub changes: Vec<SetChange>,
}

impl ChangeSet {
    /// Stands for a change set CloudFormation refused to create because nothing
    /// would change; there is nothing to delete.
    pub fn none() -> ChangeSet {
        ChangeSet {
            id: String::new(),
            status: "FAILED".to_string(),
            reason: Some("No updates are to be performed.".to_string()),
            changes: Vec::new(),
        }
    }

    /// CloudFormation fails a change set that would change nothing, with this reason.
    pub fn is_empty(&self) -> bool {
        self.status == "FAILED"
            && self.reason.as_deref().is_some_and(|r| {
                r.contains("didn't contain changes") || r.contains("No updates are to be performed")
            })
    }
}

/// Starts computing a change set; `create` when the stack does not exist yet. None when
/// CloudFormation refuses at once because nothing would change (it usually says so by
/// failing the change set instead; both mean the same).
pub async fn create_change_set(
    client: &Client,
    stack: &str,
    name: &str,
    submission: &Submission,
    create: bool,
) -> Result<Option<String>, Error> {
    use aws_sdk_cloudformation::types::{Capability, ChangeSetType, Parameter};
    let parameters = submission
        .parameters
        .iter()
        .map(|(k, v)| {
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build()
        })
        .collect();
    let result = client
        .create_change_set()
        .stack_name(stack)
        .change_set_name(name)
        .change_set_type(if create {
            ChangeSetType::Create
        } else {
            ChangeSetType::Update
        })
        .set_template_body(submission.template_body.clone())
        .set_template_url(submission.template_url.clone())
        .set_parameters(Some(parameters))
        .set_tags(Some(tags(&submission.tags)))
        .set_role_arn(submission.role_arn.clone())
        // The stack creates IAM roles with fixed names.
        .capabilities(Capability::CapabilityIam)
        .capabilities(Capability::CapabilityNamedIam)
        .description("deployer")
        .send()
        .await;
    match result {
        Ok(out) => Ok(Some(out.id().unwrap_or(name).to_string())),
        Err(e) if says(&e, "No updates are to be performed") => Ok(None),
        Err(e) => Err(Error(AwsError::from_sdk(SERVICE, "CreateChangeSet", e))),
    }
}

/// Polls until the change set is computed, then returns it with every change (all
/// pages).
pub async fn wait_change_set(
    client: &Client,
    stack: &str,
    id: &str,
    every: Duration,
) -> Result<ChangeSet, Error> {
    loop {
        let mut changes = Vec::new();
        let (mut status, mut reason) = (String::new(), None);
        let mut pages = client
            .describe_change_set()
            .stack_name(stack)
            .change_set_name(id)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| Error(AwsError::from_sdk(SERVICE, "DescribeChangeSet", e)))?;
            changes.extend(
                page.changes()
                    .iter()
                    .filter_map(|c| c.resource_change())
                    .map(set_change),
            );
            status = page
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default();
            reason = page.status_reason().map(str::to_string);
        }
        if status == "CREATE_COMPLETE" || status == "FAILED" {
            return Ok(ChangeSet {
                id: id.to_string(),
                status,
                reason,
                changes,
            });
        }
        tokio::time::sleep(every).await;
    }
}

fn set_change(rc: &aws_sdk_cloudformation::types::ResourceChange) -> SetChange {
    SetChange {
        logical_id: rc.logical_resource_id().unwrap_or_default().to_string(),
        resource_type: rc.resource_type().unwrap_or_default().to_string(),
        action: rc
            .action()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default(),
        replacement: rc.replacement().map(|r| r.as_str().to_string()),
        targets: rc
            .details()
            .iter()
            .filter_map(|d| {
                let t = d.target()?;
                let attribute = t.attribute().map(|a| a.as_str()).unwrap_or_default();
                // Tags are a property in the template (`Properties.Tags`).
                let name = match (attribute, t.name()) {
                    ("Tags", _) => "Properties.Tags".to_string(),
                    (_, Some(n)) => format!("{attribute}.{n}"),
                    (_, None) => attribute.to_string(),
                };
                let recreates = t
                    .requires_recreation()
                    .is_some_and(|r| r.as_str() != "Never");
                Some((name, recreates))
            })
            .collect(),
    }
}

pub async fn delete_change_set(client: &Client, stack: &str, id: &str) -> Result<(), Error> {
    client
        .delete_change_set()
        .stack_name(stack)
        .change_set_name(id)
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk(SERVICE, "DeleteChangeSet", e)))?;
    Ok(())
}

pub async fn execute_change_set(client: &Client, stack: &str, id: &str) -> Result<(), Error> {
    client
        .execute_change_set()
        .stack_name(stack)
        .change_set_name(id)
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk(SERVICE, "ExecuteChangeSet", e)))?;
    Ok(())
}

/// One stack event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub timestamp: Option<std::time::SystemTime>,
    pub stack_name: String,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
}

impl Event {
    /// An event of the stack itself (its logical id is its name), not of a resource.
    pub fn is_stack(&self) -> bool {
        self.resource_type == "AWS::CloudFormation::Stack" && self.logical_id == self.stack_name
    }
}

/// Hands the stack's events to `visit`, newest first, page after page, until it
/// returns false or the events run out. A stack that no longer exists under `stack`
/// (deleted, and named by name rather than id) has no more events.
async fn walk_events(
    client: &Client,
    stack: &str,
    mut visit: impl FnMut(Event) -> bool,
) -> Result<(), Error> {
    let mut pages = client
        .describe_stack_events()
        .stack_name(stack)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(e) if says(&e, "does not exist") => return Ok(()),
            Err(e) => return Err(Error(AwsError::from_sdk(SERVICE, "DescribeStackEvents", e))),
        };
        for e in page.stack_events() {
            let event = Event {
                id: e.event_id().unwrap_or_default().to_string(),
                timestamp: e
                    .timestamp()
                    .and_then(|t| std::time::SystemTime::try_from(*t).ok()),
                stack_name: e.stack_name().unwrap_or_default().to_string(),
                logical_id: e.logical_resource_id().unwrap_or_default().to_string(),
                resource_type: e.resource_type().unwrap_or_default().to_string(),
                status: e
                    .resource_status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                reason: e.resource_status_reason().map(str::to_string),
            };
            if !visit(event) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The stack's events newer than `after` (an event id), oldest first. With `after` None,
/// only the newest event (to start following from it).
pub async fn events_after(
    client: &Client,
    stack: &str,
    after: Option<&str>,
) -> Result<Vec<Event>, Error> {
    let mut events = Vec::new();
    walk_events(client, stack, |e| {
        if Some(e.id.as_str()) == after {
            return false;
        }
        events.push(e);
        after.is_some()
    })
    .await?;
    events.reverse();
    Ok(events)
}

pub async fn set_termination_protection(
    client: &Client,
    stack: &str,
    enabled: bool,
) -> Result<(), Error> {
    client
        .update_termination_protection()
        .stack_name(stack)
        .enable_termination_protection(enabled)
        .send()
        .await
        .map_err(|e| {
            Error(AwsError::from_sdk(
                SERVICE,
                "UpdateTerminationProtection",
                e,
            ))
        })?;
    Ok(())
}

/// Deletes the stack, as `role_arn` when given (the service role the stack was deployed
/// with: its resources are deleted with that role's rights).
pub async fn delete_stack(
    client: &Client,
    stack: &str,
    role_arn: Option<&str>,
) -> Result<(), Error> {
    client
        .delete_stack()
        .stack_name(stack)
        .set_role_arn(role_arn.map(str::to_string))
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk(SERVICE, "DeleteStack", e)))?;
    Ok(())
}

/// The stack's resources that exist, as (logical id, type, physical id), all pages.
pub async fn resources(
    client: &Client,
    stack: &str,
) -> Result<Vec<(String, String, String)>, Error> {
    let mut out = Vec::new();
    let mut pages = client
        .list_stack_resources()
        .stack_name(stack)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error(AwsError::from_sdk(SERVICE, "ListStackResources", e)))?;
        for r in page.stack_resource_summaries() {
            // Only what exists: a failed or half-deleted stack still lists resources
            // that were deleted or never got an id.
            let gone = r
                .resource_status()
                .is_some_and(|s| s.as_str() == "DELETE_COMPLETE");
            let physical = r.physical_resource_id().unwrap_or_default();
            if gone || physical.is_empty() {
                continue;
            }
            out.push((
                r.logical_resource_id().unwrap_or_default().to_string(),
                r.resource_type().unwrap_or_default().to_string(),
                physical.to_string(),
            ));
        }
    }
    Ok(out)
}

/// Sets the stack's policy (what updates may do to which resources).
pub async fn set_stack_policy(client: &Client, stack: &str, policy: &str) -> Result<(), Error> {
    client
        .set_stack_policy()
        .stack_name(stack)
        .stack_policy_body(policy)
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk(SERVICE, "SetStackPolicy", e)))?;
    Ok(())
}

/// The stack's policy, when it has one.
pub async fn get_stack_policy(client: &Client, stack: &str) -> Result<Option<String>, Error> {
    let out = client
        .get_stack_policy()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk(SERVICE, "GetStackPolicy", e)))?;
    Ok(out
        .stack_policy_body()
        .map(str::to_string)
        .filter(|b| !b.is_empty()))
}

/// Where a drift detection run stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftDetection {
    /// `DETECTION_IN_PROGRESS`, `DETECTION_COMPLETE` or `DETECTION_FAILED` (some
    /// resources could not be checked; the others' results stand).
    pub status: String,
    /// `DRIFTED`, `IN_SYNC`, `NOT_CHECKED` or `UNKNOWN`.
    pub stack_status: Option<String>,
    pub reason: Option<String>,
}

/// One resource that differs from its template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceDrift {
    pub logical_id: String,
    pub resource_type: String,
    pub physical_id: String,
    /// `MODIFIED` or `DELETED`.
    pub status: String,
    pub differences: Vec<PropertyDifference>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyDifference {
    /// A JSON pointer into the resource's properties, e.g. `/Environment/Variables/X`.
    pub path: String,
    pub expected: String,
    pub actual: String,
    /// `ADD`, `REMOVE` or `NOT_EQUAL`.
    pub kind: String,
}

/// Starts drift detection of the whole stack; returns the run's id.
pub async fn detect_drift(client: &Client, stack: &str) -> Result<String, Error> {
    let out = client
        .detect_stack_drift()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk(SERVICE, "DetectStackDrift", e)))?;
    out.stack_drift_detection_id()
        .map(str::to_string)
        .ok_or_else(|| {
            Error(AwsError::response(
                SERVICE,
                "DetectStackDrift",
                "no StackDriftDetectionId in the answer".to_string(),
            ))
        })
}

pub async fn drift_detection(client: &Client, id: &str) -> Result<DriftDetection, Error> {
    let out = client
        .describe_stack_drift_detection_status()
        .stack_drift_detection_id(id)
        .send()
        .await
        .map_err(|e| {
            Error(AwsError::from_sdk(
                SERVICE,
                "DescribeStackDriftDetectionStatus",
                e,
            ))
        })?;
    Ok(DriftDetection {
        status: out
            .detection_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        stack_status: out.stack_drift_status().map(|s| s.as_str().to_string()),
        reason: out.detection_status_reason().map(str::to_string),
    })
}

/// The stack's resources that the last detection found modified or deleted, all pages.
pub async fn resource_drifts(client: &Client, stack: &str) -> Result<Vec<ResourceDrift>, Error> {
    use aws_sdk_cloudformation::types::StackResourceDriftStatus as S;
    let mut out = Vec::new();
    let mut pages = client
        .describe_stack_resource_drifts()
        .stack_name(stack)
        .stack_resource_drift_status_filters(S::Modified)
        .stack_resource_drift_status_filters(S::Deleted)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            Error(AwsError::from_sdk(
                SERVICE,
                "DescribeStackResourceDrifts",
                e,
            ))
        })?;
        for d in page.stack_resource_drifts() {
            out.push(ResourceDrift {
                logical_id: d.logical_resource_id().unwrap_or_default().to_string(),
                resource_type: d.resource_type().unwrap_or_default().to_string(),
                physical_id: d.physical_resource_id().unwrap_or_default().to_string(),
                status: d
                    .stack_resource_drift_status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                differences: d
                    .property_differences()
                    .iter()
                    .map(|p| PropertyDifference {
                        path: p.property_path().unwrap_or_default().to_string(),
                        expected: p.expected_value().unwrap_or_default().to_string(),
                        actual: p.actual_value().unwrap_or_default().to_string(),
                        kind: p
                            .difference_type()
                            .map(|k| k.as_str().to_string())
                            .unwrap_or_default(),
                    })
                    .collect(),
            });
        }
    }
    out.sort_by(|a, b| a.logical_id.cmp(&b.logical_id));
    Ok(out)
}
