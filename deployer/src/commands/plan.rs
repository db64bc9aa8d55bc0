//! What `up` and the online `diff` share: the stack's state checked, the template
//! submitted (inline, or through the artifact bucket when too large), a change set
//! computed, and the diff of it against what is deployed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use miette::miette;
use serde_json::{Map, Value};

use crate::aws::cloudformation::{self, ChangeSet, Stack, Submission};
use crate::aws::s3;
use crate::changeset;
use crate::config::Environment;
use crate::diff::{self, Diff, template};

/// CloudFormation's limit for an inline template body.
pub const INLINE_TEMPLATE_LIMIT: usize = 51_200;

/// A computed change set of the environment's stack and what it would change.
#[derive(Debug)]
pub struct Plan {
    pub stack: String,
    pub change_set: ChangeSet,
    /// This plan's change set created the stack's record (REVIEW_IN_PROGRESS); it is
    /// removed with the change set. A record that was there before (a change set left
    /// for review) is not this plan's to delete.
    pub new_record: bool,
    pub diff: Diff,
}

/// The stack if it can take a change set now; a clear error if it is busy or broken.
pub async fn usable_stack(
    cfn: &aws_sdk_cloudformation::Client,
    env: &Environment,
) -> miette::Result<Option<Stack>> {
    let name = env.stack_name();
    let stack = cloudformation::describe(cfn, &name).await?;
    match &stack {
        Some(s) if s.status == "REVIEW_IN_PROGRESS" => Ok(stack),
        Some(s) if s.in_progress() => Err(miette!(
            help = format!(
                "wait for it to finish (`deployer status --env {}` shows it), then run again",
                env.name
            ),
            "the stack {name} is busy ({})",
            s.status
        )),
        Some(s) if s.status == "ROLLBACK_COMPLETE" || s.status == "ROLLBACK_FAILED" => {
            Err(miette!(
                help = format!(
                    "its first creation failed and nothing of it remains but the record: delete it with `deployer down --env {}` (or `aws cloudformation delete-stack --stack-name {name}`), then run again",
                    env.name
                ),
                "the stack {name} is in {} and cannot be updated",
                s.status
            ))
        }
        Some(s) if s.status == "UPDATE_ROLLBACK_FAILED" => Err(miette!(
            help = format!(
                "fix what the last failure names, then `aws cloudformation continue-update-rollback --stack-name {name}`"
            ),
            "the stack {name} is in UPDATE_ROLLBACK_FAILED and cannot be updated"
        )),
        Some(s) if s.status == "DELETE_FAILED" => Err(miette!(
            help = format!(
                "run `deployer down --env {}` again to finish deleting it",
                env.name
            ),
            "the stack {name} is in DELETE_FAILED"
        )),
        _ => Ok(stack),
    }
}

/// How the template reaches CloudFormation: inline, or uploaded to the artifact bucket
/// under its SHA-256 when over the inline limit.
pub async fn submission(
    sdk: &aws_config::SdkConfig,
    env: &Environment,
    main: &str,
    bucket: &str,
    parameters: Vec<(String, String)>,
) -> miette::Result<Submission> {
    let mut tags: Vec<(String, String)> = env
        .config
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    tags.push(("efs-autoscaler:environment".into(), env.name.clone()));
    // Comments are for people reading the rendered file; CloudFormation gets the same
    // template without them when that keeps it inline (no upload, no bucket read).
    let compact = template::without_comments(main);
    let main = compact.as_deref().unwrap_or(main);
    let (template_body, template_url) = if main.len() <= INLINE_TEMPLATE_LIMIT {
        (Some(main.to_string()), None)
    } else {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(main.as_bytes());
        let key = format!(
            "templates/{}/{}.yaml",
            env.name,
            crate::package::hex(&digest)
        );
        use base64::Engine;
        let client = s3::client(sdk);
        let sha256 = base64::engine::general_purpose::STANDARD.encode(digest);
        let artifacts = s3::Bucket {
            name: bucket,
            owner: env.config.account_id.as_deref(),
        };
        if !s3::holds(&client, &artifacts, &key, &sha256).await? {
            s3::put(
                &client,
                &artifacts,
                &key,
                main.as_bytes().to_vec(),
                &sha256,
                "application/yaml",
            )
            .await?;
        }
        (None, Some(s3::object_url(sdk, bucket, &key)))
    };
    Ok(Submission {
        template_body,
        template_url,
        parameters,
        tags,
        role_arn: env.config.cloudformation_role_arn.clone(),
    })
}

/// Creates a change set and waits for it; the caller executes or deletes it.
pub async fn plan(
    cfn: &aws_sdk_cloudformation::Client,
    env: &Environment,
    existing: Option<&Stack>,
    main: &str,
    submission: &Submission,
) -> miette::Result<Plan> {
    let stack = env.stack_name();
    let create = existing.is_none_or(|s| s.status == "REVIEW_IN_PROGRESS");
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let name = format!("deployer-{stamp}");
    let change_set = match cloudformation::create_change_set(cfn, &stack, &name, submission, create)
        .await?
    {
        Some(id) => {
            cloudformation::wait_change_set(cfn, &stack, &id, Duration::from_millis(1000)).await?
        }
        None => ChangeSet::none(),
    };
    let before = match existing {
        Some(_) if !create => {
            let text = cloudformation::template(cfn, &stack).await?;
            template::parse(&text, &format!("the deployed template of {stack}"))?
        }
        _ => serde_json::json!({}),
    };
    let after = template::parse(main, "the rendered template")?;
    let as_map = |pairs: &[(String, String)]| -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect()
    };
    let deployed_parameters = existing
        .filter(|_| !create)
        .map(|s| as_map(&s.parameters))
        .unwrap_or_default();
    let new_parameters = as_map(&submission.parameters);
    let nothing = change_set.is_empty();
    let resources = if nothing {
        Vec::new()
    } else {
        changeset::merge(&change_set.changes, diff::resources(&before, &after))
    };
    let mut diff = Diff {
        environment: env.name.clone(),
        stack: stack.clone(),
        against: if create {
            "nothing (a new stack)".to_string()
        } else {
            "the deployed stack".to_string()
        },
        resources,
        parameters: diff::values(&deployed_parameters, &new_parameters),
        // For a new stack every output and setting is new: the resources say it all.
        outputs: if create {
            Vec::new()
        } else {
            diff::values(&diff::outputs(&before), &diff::outputs(&after))
        },
        config: if create {
            Vec::new()
        } else {
            diff::values(&config_of(&before), &config_of(&after))
        },
        iam: Vec::new(),
        security_groups: Vec::new(),
        risks: Vec::new(),
        notes: Vec::new(),
    };
    // What CloudFormation will not deploy needs no approval.
    if !nothing {
        diff::security::annotate(&mut diff, &before, &after);
    }
    // With no resource change CloudFormation deploys nothing, not even the template's
    // metadata, so configuration that reaches no resource (account_id,
    // termination_protection) would show here forever: said in a note instead.
    if nothing && !diff.config.is_empty() {
        diff.config.clear();
        diff.notes.push(
            "configuration changes that reach no resource are not deployed by CloudFormation (it does not update template metadata alone); `up` applies termination_protection itself".to_string(),
        );
    }
    Ok(Plan {
        stack,
        change_set,
        new_record: existing.is_none(),
        diff,
    })
}

/// The resolved configuration a template was rendered from (kept in its metadata),
/// flattened to dotted keys.
pub fn config_of(template: &Value) -> Map<String, Value> {
    template
        .pointer("/Metadata/efs-autoscaler/config")
        .map(diff::flatten)
        .unwrap_or_default()
}

impl Plan {
    /// Removes the change set (never executed) and, for a new stack, the empty stack
    /// record its creation left (REVIEW_IN_PROGRESS), which would also remove any other
    /// change set on it: only when this plan made that record.
    pub async fn discard(&self, cfn: &aws_sdk_cloudformation::Client) -> miette::Result<()> {
        // A change set refused at once has no id and nothing to delete.
        if !self.change_set.id.is_empty() {
            cloudformation::delete_change_set(cfn, &self.stack, &self.change_set.id).await?;
        }
        if self.new_record
            && let Some(s) = cloudformation::describe(cfn, &self.stack).await?
            && s.status == "REVIEW_IN_PROGRESS"
        {
            // A record with no resources: nothing for a service role to delete.
            cloudformation::delete_stack(cfn, &self.stack, None).await?;
        }
        Ok(())
    }
}
