//! `deployer up --env NAME [--yes] [--no-exec]`: package, render, compute a change set,
//! show it, ask, execute and follow it, then bring the published mount-target list and
//! the stack's termination protection in line with the environment.
//!
//! Everything that can refuse is checked before anything changes: the account and
//! region, the bootstrap stack, the stack's state, and whether a confirmation is
//! possible at all.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use miette::miette;
use serde_json::json;

use crate::aws::{self, cloudformation};
use crate::changeset::follow;
use crate::cli::{AwsArgs, OutputFormat, UpArgs};
use crate::commands::{bootstrap, package, plan};
use crate::config::{self, Environment};
use crate::diff::format;
use crate::progress::Progress;
use crate::render::{self, Renderer};

/// How often a running stack operation is polled.
const POLL: Duration = Duration::from_secs(2);

/// Exit code after Ctrl-C (128 + SIGINT), as shells report it.
const INTERRUPTED: u8 = 130;

pub fn run(
    environments_dir: &std::path::Path,
    aws_args: &AwsArgs,
    output: OutputFormat,
    args: &UpArgs,
) -> miette::Result<ExitCode> {
    let env = config::load(environments_dir, &args.env)?;
    let rendered = Renderer::new()?.render(&env)?;
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    // Decided before any AWS call: a protected environment is never deployed without a
    // person saying so, and off a terminal nobody can be asked.
    if !args.yes && !args.no_exec && !interactive && env.config.termination_protection {
        return Err(miette!(
            help = "run it on a terminal to confirm, or pass --yes where the pipeline itself is the approval",
            "environment {} is protected (termination_protection: true) and there is no terminal to confirm on",
            env.name
        ));
    }
    let progress = Progress::stderr();
    super::block_on(async {
        let sdk = super::connect(&env, aws_args).await?;
        let cfn = aws_sdk_cloudformation::Client::new(&sdk);
        let boot = bootstrap::outputs(&cfn, &env).await?;
        let place = super::lock_place(&sdk, &env, &boot);
        let releases = place.clone();
        super::locked(Some(place), "up", async {
        let existing = plan::usable_stack(&cfn, &env).await?;
        let packaged =
            package::build_and_upload(&env, Some((&sdk, &boot)), None, &progress).await?;
        for line in packaged.summary() {
            eprintln!("{line}");
        }
        let parameters = packaged
            .parameters()
            .ok_or_else(|| miette!("the artifacts were not uploaded"))?;
        let submission =
            plan::submission(&sdk, &env, &rendered.main, &boot.bucket, parameters).await?;
        let plan = plan::plan(&cfn, &env, existing.as_ref(), &rendered.main, &submission).await?;
        let stack = plan.stack.clone();
        let change_set = plan.change_set.id.clone();

        if plan.change_set.is_empty() {
            plan.discard(&cfn).await?;
            eprintln!("{stack}: no changes");
            if args.no_exec {
                // --no-exec changes nothing, not even the list or the protection.
                return Ok(ExitCode::SUCCESS);
            }
            let settled = existing.ok_or_else(|| miette!("{stack} vanished"))?;
            // A stack deployed before the guard existed gets it now.
            ensure_stack_policy(&cfn, &stack, &render::stack_policy(&rendered.main, &[])).await?;
            package::mark_deployed(&sdk, &env, &packaged).await?;
            let after = after_deploy(&sdk, &cfn, &env, &releases, &settled).await?;
            report(output, &plan.diff, &settled, &after, "no changes");
            return Ok(ExitCode::SUCCESS);
        }
        if plan.change_set.status == "FAILED" {
            let reason = plan.change_set.reason.clone().unwrap_or_default();
            // Best effort: the command fails either way, and a leftover change set
            // changes nothing.
            let _ = plan.discard(&cfn).await;
            return Err(miette!(
                help = "fix the cause in templates/ or environments/, then run again; nothing was changed",
                "CloudFormation could not create a change set for {stack}: {reason}"
            ));
        }
        eprint!("{}", format::text(&plan.diff));
        let release = &env.config.release;
        if release.scaler_rollout == config::Rollout::Canary
            && plan.diff.resources.iter().any(|r| r.logical_id == "ScalerVersion")
        {
            eprintln!(
                "the scaler's new version takes over through a canary: {} % of its runs for {} minutes, watched by its error alarm; the deploy waits for it, and an alarm moves the alias back and rolls the stack update back",
                release.canary_percent, release.canary_minutes
            );
        }
        // Before anything runs: a change that replaces or removes the file system or a
        // mount target happens only when the command names it.
        let refused: Vec<&str> = plan
            .diff
            .endangered()
            .into_iter()
            .map(|r| r.logical_id.as_str())
            .filter(|id| !args.allow_replacement.iter().any(|a| a == id))
            .collect();
        if !refused.is_empty() && !args.no_exec {
            let _ = plan.discard(&cfn).await;
            let flags: Vec<String> = refused
                .iter()
                .map(|id| format!("--allow-replacement {id}"))
                .collect();
            return Err(miette!(
                help = format!(
                    "if that is intended (the data is backed up, or this environment's data may go), run again with {}",
                    flags.join(" ")
                ),
                "this change would replace or remove {}, which holds the environment's data or its clients' connections; nothing was changed",
                refused.join(", ")
            ));
        }
        // Changes that broaden access or lose state need a person, whatever --yes says.
        // The data resources named with --allow-replacement are approved already.
        let risks: Vec<&crate::diff::security::Risk> = plan
            .diff
            .risks
            .iter()
            .filter(|r| !(r.kind == "stateful" && args.allow_replacement.contains(&r.resource)))
            .collect();
        let needs_approval = !risks.is_empty() && !args.approve_risky && !args.no_exec;
        if needs_approval {
            if !interactive {
                let _ = plan.discard(&cfn).await;
                return Err(miette!(
                    help = "review the lines marked !! above; if they are intended, run again with --approve-risky",
                    "this change needs approval: {}; nothing was changed",
                    risks.iter().map(|r| r.what.as_str()).collect::<Vec<_>>().join("; ")
                ));
            }
            let answer = super::ask(&format!(
                "{} change(s) above are marked !! (broader access, or state that does not come back). Type `approve` to deploy them: ",
                risks.len()
            ))?;
            if answer != "approve" {
                plan.discard(&cfn).await?;
                eprintln!("not approved; nothing was changed");
                return Ok(ExitCode::from(1));
            }
        }
        if args.no_exec {
            eprintln!(
                "change set {change_set} is ready for review and was not executed; run `deployer up --env {}` to deploy, or `aws cloudformation execute-change-set --change-set-name {change_set}`",
                env.name
            );
            report(
                output,
                &plan.diff,
                existing
                    .as_ref()
                    .unwrap_or(&cloudformation::Stack::named(&stack, "REVIEW_IN_PROGRESS")),
                &json!(null),
                "review",
            );
            return Ok(ExitCode::SUCCESS);
        }
        // A typed approval of the risky changes is the confirmation too.
        if !args.yes && !needs_approval && interactive && !confirm(&format!("Deploy these changes to {stack}?"))? {
            plan.discard(&cfn).await?;
            eprintln!("cancelled; nothing was changed");
            return Ok(ExitCode::from(1));
        }

        let marker = follow::marker(&cfn, &stack).await?;
        let guarded = render::stack_policy(&rendered.main, &[]);
        if existing.is_some() && !args.allow_replacement.is_empty() {
            // The stack's own guard, for this update: lifted for what was allowed only.
            let during = render::stack_policy(&rendered.main, &args.allow_replacement);
            cloudformation::set_stack_policy(&cfn, &stack, &during).await?;
        }
        cloudformation::execute_change_set(&cfn, &stack, &change_set).await?;
        let settled = tokio::select! {
            settled = follow::follow(&cfn, &stack, marker, POLL, &progress) => settled?,
            _ = tokio::signal::ctrl_c() => {
                if !args.allow_replacement.is_empty() {
                    // Best effort: the guard lifted for this update goes back on.
                    let _ = cloudformation::set_stack_policy(&cfn, &stack, &guarded).await;
                }
                eprintln!(
                    "\ninterrupted: CloudFormation keeps deploying {stack} on its own. Follow it with `deployer status --env {}`, or `aws cloudformation describe-stack-events --stack-name {stack}`",
                    env.name
                );
                return Ok(ExitCode::from(INTERRUPTED));
            }
        };
        // Whatever happened, the guard is whole again (a failed update rolled back to
        // resources it still protects).
        let guarded_again = ensure_stack_policy(&cfn, &stack, &guarded).await;
        if settled.status != "CREATE_COMPLETE" && settled.status != "UPDATE_COMPLETE" {
            return Err(failure_report(&cfn, &env, &settled).await);
        }
        guarded_again?;
        package::mark_deployed(&sdk, &env, &packaged).await?;
        let after = after_deploy(&sdk, &cfn, &env, &releases, &settled).await?;
        report(output, &plan.diff, &settled, &after, "deployed");
        Ok(ExitCode::SUCCESS)
        })
        .await
    })?
}

/// Asks on the terminal; anything but y/yes is no.
fn confirm(question: &str) -> miette::Result<bool> {
    let answer = super::ask(&format!("{question} [y/N] "))?;
    Ok(matches!(answer.to_lowercase().as_str(), "y" | "yes"))
}

/// The failed resources with CloudFormation's reasons, the state the stack is left in,
/// and what to do about it.
async fn failure_report(
    cfn: &aws_sdk_cloudformation::Client,
    env: &Environment,
    stack: &cloudformation::Stack,
) -> miette::Report {
    let name = &stack.name;
    let report = cloudformation::failure_report(cfn, stack).await;
    // CodeDeploy stopped a canary release of the scaler: say what that means.
    if report.contains("ScalerAlias") && report.contains("CodeDeploy") {
        return miette!(
            help = format!(
                "the new scaler version failed during its canary and the alias is back on the previous one; find why with `deployer logs --env {} scaler --since 1h --filter ERROR`, fix it, and run `deployer up` again",
                env.name
            ),
            "{report}"
        );
    }
    let help = match stack.status.as_str() {
        "UPDATE_ROLLBACK_COMPLETE" => format!(
            "the stack is back at its previous version and keeps serving; fix the cause above and run `deployer up --env {}` again",
            env.name
        ),
        "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "DELETE_COMPLETE" => format!(
            "the first creation failed; fix the cause above, remove the record with `deployer down --env {}`, and run `deployer up` again",
            env.name
        ),
        "UPDATE_ROLLBACK_FAILED" => format!(
            "the rollback failed too; fix the resources above, then `aws cloudformation continue-update-rollback --stack-name {name}`"
        ),
        _ => format!("see `deployer status --env {}`", env.name),
    };
    miette!(help = help, "{report}")
}

/// After a deploy (or none needed): the SSM list rebuilt from the file system's mount
/// targets with the scaler's own code, termination protection as configured, and what
/// runs recorded as a release (older releases' versions pruned). Each writes only when
/// something differs.
async fn after_deploy(
    sdk: &aws_config::SdkConfig,
    cfn: &aws_sdk_cloudformation::Client,
    env: &Environment,
    releases: &crate::lock::Place,
    stack: &cloudformation::Stack,
) -> miette::Result<serde_json::Value> {
    // From the stack's resources rather than its outputs: the physical id is what
    // CloudFormation created, whatever the outputs say.
    let resources = cloudformation::resources(cfn, &stack.name).await?;
    restore_scaler(sdk, env, &resources).await?;
    let file_system = resources
        .iter()
        .find(|(_, kind, _)| kind == "AWS::EFS::FileSystem")
        .map(|(_, _, id)| id.clone())
        .ok_or_else(|| miette!("the stack {} has no AWS::EFS::FileSystem", stack.name))?;
    let file_system = file_system.as_str();
    let efs = runtime::aws::efs::Efs::new(aws_sdk_efs::Client::new(sdk));
    let ssm = runtime::aws::ssm::Ssm::new(aws_sdk_ssm::Client::new(sdk));
    let name = env.ssm_parameter_name();
    // The scaler publishes the same list: when its write lands between this one's read
    // and write, the mount targets are described again and the list published again,
    // so the last write rests on the newest view.
    let mut attempts = 0;
    let (list, published) = loop {
        attempts += 1;
        let targets = efs.mount_targets(file_system).await.map_err(aws::Error)?;
        let list = runtime::reconcile::verified_list(&targets)
            .map_err(|e| miette!("cannot publish the mount-target list {name}: {e}"))?;
        let published = runtime::reconcile::publish(&ssm, &name, &list, false)
            .await
            .map_err(|e| miette!("cannot publish the mount-target list {name}: {e}"))?;
        if !published.raced || attempts == 3 {
            break (list, published);
        }
        eprintln!("{name}: written by another writer at the same moment; publishing again");
    };
    eprintln!(
        "{name}: {} mount target(s), {}",
        list.len(),
        if published.written {
            "published"
        } else {
            "up to date"
        }
    );
    let wanted = env.config.termination_protection;
    if stack.termination_protection != wanted {
        cloudformation::set_termination_protection(cfn, &stack.name, wanted).await?;
        eprintln!(
            "{}: termination protection {}",
            stack.name,
            if wanted { "on" } else { "off" }
        );
    }
    let release = crate::release::after_up(sdk, env, releases, &resources).await?;
    Ok(json!({
        "mount_target_list": {
            "parameter": name,
            "mount_targets": list.len(),
            "published": published.written,
        },
        "release": release,
    }))
}

/// Undoes what a `down` that did not finish left behind: it disables the scaler's
/// schedule and sets its reserved concurrency to 0 outside CloudFormation, so a stack
/// update that changes neither would leave autoscaling off. Both go back to what the
/// environment says.
/// Makes the stack's policy `policy`, writing only when it differs (compared as JSON).
async fn ensure_stack_policy(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
    policy: &str,
) -> miette::Result<()> {
    let current = cloudformation::get_stack_policy(cfn, stack).await?;
    let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).ok();
    if current.as_deref().and_then(parse) != parse(policy) {
        cloudformation::set_stack_policy(cfn, stack, policy).await?;
    }
    Ok(())
}

async fn restore_scaler(
    sdk: &aws_config::SdkConfig,
    env: &Environment,
    resources: &[(String, String, String)],
) -> miette::Result<()> {
    use crate::aws::{eventbridge, lambda};
    use crate::commands::status::of_type;
    let scaler = &env.config.scaler;
    if scaler.enabled {
        let events = aws_sdk_eventbridge::Client::new(sdk);
        for rule in of_type(resources, "AWS::Events::Rule") {
            if eventbridge::rule(&events, rule).await?.state == "DISABLED" {
                eventbridge::enable_rule(&events, rule).await?;
                eprintln!("{rule}: enabled again (an unfinished `down` had disabled it)");
            }
        }
    }
    let wanted = i32::try_from(scaler.reserved_concurrency).unwrap_or(1);
    let functions = aws_sdk_lambda::Client::new(sdk);
    for function in of_type(resources, "AWS::Lambda::Function") {
        let now = lambda::reserved_concurrency(&functions, function).await?;
        if now != Some(wanted) {
            lambda::reserve(&functions, function, wanted).await?;
            let was = now.map_or_else(|| "none".to_string(), |n| n.to_string());
            eprintln!(
                "{function}: reserved concurrency was {was}, now {wanted} (an unfinished `down` leaves it at 0)"
            );
        }
    }
    Ok(())
}

/// The result on stdout: the stack's outputs as `key: value` lines, or one JSON object.
fn report(
    output: OutputFormat,
    diff: &crate::diff::Diff,
    stack: &cloudformation::Stack,
    after: &serde_json::Value,
    result: &str,
) {
    match output {
        OutputFormat::Text => {
            for (key, value) in &stack.outputs {
                println!("{key}: {value}");
            }
        }
        OutputFormat::Json => {
            let value = json!({
                "result": result,
                "stack": diff.stack,
                "status": stack.status,
                "changes": diff,
                "outputs": stack.outputs_json(),
                "mount_target_list": after["mount_target_list"],
                "release": after["release"],
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
        }
    }
}
