//! `deployer down --env NAME [--yes] [--force [--confirm NAME]]`: tears an environment
//! down. The mount targets the scaler added (CloudFormation does not know them) go
//! first, since the stack cannot delete its subnets and file system around them; then
//! the stack; then the published list. The file system survives where the environment
//! says `retain`, and the bootstrap stack (shared by the account) always stays.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use miette::miette;

use crate::aws::{cloudformation, efs, eventbridge, lambda, ssm};
use crate::changeset::follow;
use crate::cli::{AwsArgs, DownArgs, OutputFormat};
use crate::commands::status::of_type;
use crate::config::{self, Environment, schema::DeletionPolicy};
use crate::progress::Progress;

const POLL: Duration = Duration::from_secs(2);

pub fn run(
    environments_dir: &std::path::Path,
    aws_args: &AwsArgs,
    output: OutputFormat,
    args: &DownArgs,
) -> miette::Result<ExitCode> {
    let env = config::load(environments_dir, &args.env)?;
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let progress = Progress::stderr();
    super::block_on(async {
        let sdk = super::connect(&env, aws_args).await?;
        let cfn = aws_sdk_cloudformation::Client::new(&sdk);
        let name = env.stack_name();
        let stack = cloudformation::describe(&cfn, &name).await?;
        let protected = env.config.termination_protection
            || stack.as_ref().is_some_and(|s| s.termination_protection);
        confirm(&env, protected, args, interactive)?;
        // The lock lives in the bootstrap stack's bucket; an environment can be taken
        // down after that stack is gone (nothing can deploy it then either).
        let place = match super::bootstrap::outputs(&cfn, &env).await {
            Ok(boot) => Some(super::lock_place(&sdk, &env, &boot)),
            Err(_) => None,
        };
        let releases = place.clone();
        super::locked(place, "down", async {
        // What was taken away and what is kept, for `--output json`.
        let mut removed_targets = Vec::new();
        let mut kept_file_system = None;

        if let Some(stack) = &stack {
            if stack.in_progress() && stack.status != "REVIEW_IN_PROGRESS" {
                return Err(miette!(
                    help = format!(
                        "wait for it (`deployer status --env {}`), then run again",
                        env.name
                    ),
                    "the stack {name} is busy ({})",
                    stack.status
                ));
            }
            let resources = cloudformation::resources(&cfn, &name).await?;
            let file_system = of_type(&resources, "AWS::EFS::FileSystem")
                .first()
                .map(|s| s.to_string());
            // The scaler first: a run during the teardown could add a mount target the
            // stack cannot delete around. A run already going may still finish one; a
            // DELETE_FAILED then names it, and `down` again removes it.
            stop_scaler(&sdk, &resources).await?;
            if let Some(fs) = &file_system {
                removed_targets =
                    delete_scaler_targets(&sdk, fs, &of_type(&resources, "AWS::EFS::MountTarget"))
                        .await?;
            }
            if stack.termination_protection {
                cloudformation::set_termination_protection(&cfn, &name, false).await?;
                eprintln!("{name}: termination protection off");
            }
            // From here to DELETE_COMPLETE, every way out (an error, a failed deletion,
            // Ctrl-C) puts the protection back: a stack that survives stays protected.
            let deleting = async {
                // Followed by id: once deleted, the name no longer finds the stack.
                let marker = follow::marker(&cfn, &stack.id).await?;
                if let Err(e) = cloudformation::delete_stack(
                    &cfn,
                    &name,
                    env.config.cloudformation_role_arn.as_deref(),
                )
                .await {
                    // What `down` needs is the stack gone; an error with the stack gone
                    // anyway is reported and the teardown goes on.
                    if cloudformation::describe(&cfn, &name).await?.is_some() {
                        return Err(miette::Report::from(e));
                    }
                    eprintln!("{name}: {e}; the stack is gone regardless");
                }
                eprintln!("{name}: deleting");
                follow::follow(&cfn, &stack.id, marker, POLL, &progress)
                    .await
                    .map_err(miette::Report::from)
            };
            let settled = tokio::select! {
                settled = deleting => settled,
                _ = tokio::signal::ctrl_c() => Err(miette!(
                    help = format!("follow it with `deployer status --env {}`; run `deployer down` again if it stops", env.name),
                    "interrupted: CloudFormation keeps deleting {name} on its own"
                )),
            };
            match settled {
                Ok(s) if s.status == "DELETE_COMPLETE" => {}
                other => {
                    if stack.termination_protection {
                        // Still there, or maybe: protected again, as it was.
                        let restored =
                            cloudformation::set_termination_protection(&cfn, &name, true).await;
                        if restored.is_ok() {
                            eprintln!("{name}: termination protection on again");
                        }
                    }
                    let settled = other?;
                    let report = cloudformation::failure_report(&cfn, &settled).await;
                    return Err(miette!(
                        help = format!(
                            "remove what blocks the resources above, then run `deployer down --env {}` again",
                            env.name
                        ),
                        "{report}"
                    ));
                }
            }
            eprintln!("{name}: deleted");
            forget_releases(&sdk, &env, releases.as_ref(), &resources).await?;
            if let (Some(fs), DeletionPolicy::Retain) =
                (&file_system, env.config.efs.deletion_policy)
            {
                eprintln!(
                    "file system {fs} is kept (efs.deletion_policy: retain) with its data; when it is no longer needed: `aws efs delete-file-system --file-system-id {fs}`"
                );
                kept_file_system = Some(fs.clone());
            }
        } else {
            eprintln!("{name}: does not exist");
        }
        let parameter = env.ssm_parameter_name();
        let existed = ssm::delete_parameter(&aws_sdk_ssm::Client::new(&sdk), &parameter).await?;
        eprintln!(
            "{parameter}: {}",
            if existed { "deleted" } else { "did not exist" }
        );
        eprintln!(
            "{}: kept (the account's bootstrap stack, shared by its environments)",
            env.bootstrap_stack_name()
        );
        if output == OutputFormat::Json {
            println!(
                "{}",
                serde_json::json!({
                    "stack": name,
                    "stack_deleted": stack.is_some(),
                    "scaler_mount_targets_deleted": removed_targets,
                    "file_system_kept": kept_file_system,
                    "parameter": parameter,
                    "parameter_deleted": existed,
                    "bootstrap_stack_kept": env.bootstrap_stack_name(),
                })
            );
        }
        Ok(ExitCode::SUCCESS)
        })
        .await
    })?
}

/// After the stack: the router's task definitions CloudFormation kept for rollback
/// (deregistered; the scaler's versions went with its function) and the release history.
async fn forget_releases(
    sdk: &aws_config::SdkConfig,
    env: &Environment,
    place: Option<&crate::lock::Place>,
    resources: &[(String, String, String)],
) -> miette::Result<()> {
    let deployed = crate::release::Deployed::of(resources, env);
    if let Some(family) = &deployed.family {
        let ecs = aws_sdk_ecs::Client::new(sdk);
        let kept = crate::aws::ecs::task_definitions(&ecs, family).await?;
        for arn in &kept {
            crate::aws::ecs::deregister(&ecs, arn).await?;
        }
        if !kept.is_empty() {
            eprintln!(
                "{family}: deregistered {} task definition revision(s) kept for rollback",
                kept.len()
            );
        }
    }
    if let (Some(place), true) = (
        place,
        deployed.function.is_some() || deployed.service.is_some(),
    ) {
        crate::release::Store::new(place).delete().await?;
    }
    Ok(())
}

/// A protected environment needs --force and its name typed (or given with
/// --confirm); any other needs a yes (asked on a terminal, --yes otherwise).
fn confirm(
    env: &Environment,
    protected: bool,
    args: &DownArgs,
    interactive: bool,
) -> miette::Result<()> {
    if protected {
        if !args.force {
            return Err(miette!(
                help = format!("if you mean it: `deployer down --env {} --force`", env.name),
                "environment {} is protected (termination protection); nothing was deleted",
                env.name
            ));
        }
        if args.confirm.as_deref() == Some(env.name.as_str()) {
            return Ok(());
        }
        if !interactive {
            return Err(miette!(
                help = format!("off a terminal, add `--confirm {}`", env.name),
                "deleting protected environment {} needs its name typed; nothing was deleted",
                env.name
            ));
        }
        let typed = super::ask(&format!(
            "Environment {} is protected. Type its name to delete it: ",
            env.name
        ))?;
        if typed != env.name {
            return Err(miette!("the name did not match; nothing was deleted"));
        }
        return Ok(());
    }
    if args.yes {
        return Ok(());
    }
    if !interactive {
        return Err(miette!(
            help = format!(
                "off a terminal, add --yes: `deployer down --env {} --yes`",
                env.name
            ),
            "deleting environment {} needs a confirmation; nothing was deleted",
            env.name
        ));
    }
    let answer = super::ask(&format!(
        "Delete environment {} (stack {})? [y/N] ",
        env.name,
        env.stack_name()
    ))?;
    if matches!(answer.to_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(miette!("cancelled; nothing was deleted"))
    }
}

/// Disables the scaler's schedule and refuses new invocations of its function.
async fn stop_scaler(
    sdk: &aws_config::SdkConfig,
    resources: &[(String, String, String)],
) -> miette::Result<()> {
    let events = aws_sdk_eventbridge::Client::new(sdk);
    for rule in of_type(resources, "AWS::Events::Rule") {
        eventbridge::disable_rule(&events, rule).await?;
        eprintln!("{rule}: disabled");
    }
    let functions = aws_sdk_lambda::Client::new(sdk);
    for function in of_type(resources, "AWS::Lambda::Function") {
        lambda::reserve(&functions, function, 0).await?;
        eprintln!("{function}: stopped (reserved concurrency 0)");
    }
    Ok(())
}

/// Deletes the file system's mount targets that are not the stack's own, waits until
/// they are gone, and returns their ids.
async fn delete_scaler_targets(
    sdk: &aws_config::SdkConfig,
    file_system: &str,
    stack_targets: &[&str],
) -> miette::Result<Vec<String>> {
    let client = aws_sdk_efs::Client::new(sdk);
    let reader = runtime::aws::efs::Efs::new(client.clone());
    let targets = super::status::mount_targets(&reader, file_system).await?;
    let extra: Vec<String> = targets
        .iter()
        .map(|t| t.mount_target_id.clone())
        .filter(|id| !stack_targets.contains(&id.as_str()))
        .collect();
    for id in &extra {
        efs::delete_mount_target(&client, id).await?;
        eprintln!("{id}: deleting (added by the scaler)");
    }
    efs::wait_deleted(&reader, &extra, POLL).await?;
    Ok(extra)
}
