//! `deployer rollback --env NAME [--yes]`: back to the release before the last one that
//! `up` recorded: the scaler's `live` alias to its version, the router service to its
//! task definition. The stack is not updated: both moves are what a release consists of,
//! and `deployer drift` then shows them against the template until the next `up` ships
//! a release of its own.

use std::io::IsTerminal;
use std::process::ExitCode;

use miette::miette;
use serde_json::json;

use crate::aws;
use crate::cli::{AwsArgs, OutputFormat, RollbackArgs};
use crate::commands::{bootstrap, status::deployed_resources};
use crate::config::{self, SCALER_ALIAS};
use crate::release::{self, Deployed, Store};

pub fn run(
    environments_dir: &std::path::Path,
    aws_args: &AwsArgs,
    output: OutputFormat,
    args: &RollbackArgs,
) -> miette::Result<ExitCode> {
    let env = config::load(environments_dir, &args.env)?;
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    // As `up`: a protected environment is never changed without a person saying so.
    if !args.yes && !interactive && env.config.termination_protection {
        return Err(miette!(
            help = "run it on a terminal to confirm, or pass --yes where the pipeline itself is the approval",
            "environment {} is protected (termination_protection: true) and there is no terminal to confirm on",
            env.name
        ));
    }
    super::block_on(async {
        let sdk = super::connect(&env, aws_args).await?;
        let cfn = aws_sdk_cloudformation::Client::new(&sdk);
        let resources = deployed_resources(&cfn, &env).await?;
        let boot = bootstrap::outputs(&cfn, &env).await?;
        let place = super::lock_place(&sdk, &env, &boot);
        let store_place = place.clone();
        super::locked(Some(place), "rollback", async {
            let store = Store::new(&store_place);
            let (mut history, etag) = store.read().await?;
            let (Some(last), Some(previous)) = (history.last().cloned(), history.previous().cloned())
            else {
                return Err(miette!(
                    help = "`deployer up` records a release each time it changes what runs (the scaler's version or the router's task definition); a rollback needs two",
                    "nothing to roll back to: {} release(s) recorded for {}",
                    history.releases.len(),
                    env.stack_name()
                ));
            };
            let deployed = Deployed::of(&resources, &env);
            let running = release::running(&sdk, &deployed).await?;
            if running.now.scaler_version != last.scaler_version
                || running.now.task_definition != last.task_definition
            {
                eprintln!(
                    "note: what runs ({}) is not the last release ({}): changed outside the deployer, or a deploy under way",
                    running.now.describe(),
                    last.describe()
                );
            }
            let scaler = (running.now.scaler_version != previous.scaler_version)
                .then_some(previous.scaler_version.as_ref())
                .flatten();
            let router = (running.now.task_definition != previous.task_definition)
                .then_some(previous.task_definition.as_ref())
                .flatten();
            if scaler.is_none() && router.is_none() {
                return Err(miette!(
                    "the previous release ({}) is what runs already; nothing was changed",
                    previous.describe()
                ));
            }
            eprintln!("roll {} back to the previous release:", env.stack_name());
            if let Some(version) = scaler {
                eprintln!(
                    "  scaler: alias {SCALER_ALIAS} from version {} to {version}",
                    running.now.scaler_version.as_deref().unwrap_or("-")
                );
            }
            if let Some(task) = router {
                eprintln!(
                    "  router: service from {} to {task}",
                    running.now.task_definition.as_deref().unwrap_or("-")
                );
            }
            if !args.yes && interactive {
                let answer = super::ask("Roll back? [y/N] ")?;
                if !matches!(answer.to_lowercase().as_str(), "y" | "yes") {
                    eprintln!("cancelled; nothing was changed");
                    return Ok(ExitCode::from(1));
                }
            }
            if let (Some(version), Some(function)) = (scaler, &deployed.function) {
                let lambda = aws_sdk_lambda::Client::new(&sdk);
                aws::lambda::point_alias(&lambda, function, SCALER_ALIAS, version)
                    .await
                    .map_err(|e| {
                        miette!(
                            help = "the version may have been deleted by hand; `aws lambda list-versions-by-function` shows what exists",
                            "cannot move {function}:{SCALER_ALIAS} to version {version}: {e}"
                        )
                    })?;
                eprintln!("{function}:{SCALER_ALIAS}: now version {version}");
            }
            let mut deployment = None;
            if let (Some(task), Some(cluster), Some(service)) =
                (router, &deployed.cluster, &deployed.service)
            {
                let ecs = aws_sdk_ecs::Client::new(&sdk);
                deployment = aws::ecs::deploy(&ecs, cluster, service, task)
                    .await
                    .map_err(|e| {
                        miette!(
                            help = "a deregistered task definition cannot be deployed again; `aws ecs list-task-definitions` shows what is active",
                            "cannot move the router service to {task}: {e}"
                        )
                    })?;
                eprintln!(
                    "router service: deploying {task}{}; `deployer status --env {}` follows it",
                    deployment.as_deref().map_or_else(String::new, |d| format!(" ({d})")),
                    env.name
                );
            }
            // The release rolled back from is dropped: a second rollback goes one further.
            history.releases.pop();
            store.write(&history, etag.as_deref()).await?;
            if output == OutputFormat::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "stack": env.stack_name(),
                        "from": last,
                        "to": previous,
                        "scaler_version": scaler,
                        "task_definition": router,
                        "deployment": deployment,
                        "releases_left": history.releases.len(),
                    }))
                    .unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        })
        .await
    })?
}
