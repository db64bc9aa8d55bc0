//! `deployer bootstrap --env NAME`: creates or updates the account's bootstrap stack (the
//! artifact bucket and the router's image repository). Compares the deployed template
//! with the rendered one first, so a second run makes no write call.

use std::process::ExitCode;
use std::time::Duration;

use miette::miette;

use crate::aws::cloudformation;
use crate::cli::{AwsArgs, EnvArgs, OutputFormat};
use crate::config::{self, Environment};
use crate::render::Renderer;

pub fn run(
    environments_dir: &std::path::Path,
    aws_args: &AwsArgs,
    output: OutputFormat,
    args: &EnvArgs,
) -> miette::Result<ExitCode> {
    let env = config::load(environments_dir, &args.env)?;
    let template = Renderer::new()?.render(&env)?.bootstrap;
    super::block_on(async {
        let sdk = super::connect(&env, aws_args).await?;
        let client = aws_sdk_cloudformation::Client::new(&sdk);
        let stack = deploy(&client, &env, &template).await?;
        match output {
            OutputFormat::Text => {
                for (key, value) in &stack.outputs {
                    println!("{key}: {value}");
                }
            }
            OutputFormat::Json => println!(
                "{}",
                serde_json::json!({
                    "stack": stack.name,
                    "status": stack.status,
                    "outputs": stack.outputs_json(),
                })
            ),
        }
        Ok(ExitCode::SUCCESS)
    })?
}

/// Brings the bootstrap stack to `template` and returns it.
pub async fn deploy(
    client: &aws_sdk_cloudformation::Client,
    env: &Environment,
    template: &str,
) -> miette::Result<cloudformation::Stack> {
    let name = env.bootstrap_stack_name();
    let tags = vec![(
        "efs-autoscaler:project".to_string(),
        env.config.project.clone(),
    )];
    match cloudformation::describe(client, &name).await? {
        None => {
            eprintln!("{name}: creating");
            cloudformation::create(client, &name, template, &tags).await?;
        }
        Some(stack) if stack.in_progress() => {
            return Err(miette!(
                "the bootstrap stack {name} is busy ({}); wait for it to finish and run `deployer bootstrap --env {}` again",
                stack.status,
                env.name
            ));
        }
        Some(stack) if stack.status == "ROLLBACK_COMPLETE" || stack.status == "DELETE_FAILED" => {
            return Err(miette!(
                "the bootstrap stack {name} is in {} and cannot be updated. Delete it (`aws cloudformation delete-stack --stack-name {name}`; its bucket and repository are kept) and run `deployer bootstrap --env {}` again",
                stack.status,
                env.name
            ));
        }
        Some(stack) => {
            if cloudformation::template(client, &name).await? == template {
                eprintln!("{name}: up to date");
                return Ok(stack);
            }
            eprintln!("{name}: updating");
            if !cloudformation::update(client, &name, template, &tags).await? {
                eprintln!("{name}: up to date");
                return Ok(stack);
            }
        }
    }
    let stack = cloudformation::wait(client, &name, Duration::from_secs(2)).await?;
    if stack.status == "CREATE_COMPLETE" || stack.status == "UPDATE_COMPLETE" {
        eprintln!("{name}: {}", stack.status);
        return Ok(stack);
    }
    let mut report = cloudformation::failure_report(client, &stack).await;
    report.push('\n');
    report.push_str(&after_failure(&name, &stack.status, &env.name));
    Err(miette!("{report}"))
}

/// What to do after a failed create or update, by the state CloudFormation left.
fn after_failure(stack: &str, status: &str, env: &str) -> String {
    let again = format!("run `deployer bootstrap --env {env}` again");
    match status {
        "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" => format!(
            "Nothing was kept. Fix the cause above, delete the stack (`aws cloudformation delete-stack --stack-name {stack}`) and {again}."
        ),
        "UPDATE_ROLLBACK_COMPLETE" => format!(
            "The stack is back at its previous version and still usable. Fix the cause above and {again}."
        ),
        "UPDATE_ROLLBACK_FAILED" => format!(
            "The rollback itself failed. Fix the resources named above, then `aws cloudformation continue-update-rollback --stack-name {stack}`, and {again}."
        ),
        _ => format!("Fix the cause above and {again}."),
    }
}

/// The bootstrap stack's bucket and repository, for commands that upload; a clear error
/// naming the command to run when it is missing or not usable.
pub async fn outputs(
    client: &aws_sdk_cloudformation::Client,
    env: &Environment,
) -> miette::Result<Bootstrap> {
    let name = env.bootstrap_stack_name();
    let fix = format!("run `deployer bootstrap --env {}`", env.name);
    let stack = cloudformation::describe(client, &name)
        .await?
        .ok_or_else(|| {
            miette!(
                "the bootstrap stack {name} does not exist in {}: {fix}",
                env.config.region
            )
        })?;
    if !matches!(
        stack.status.as_str(),
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "UPDATE_ROLLBACK_COMPLETE"
    ) {
        return Err(miette!(
            "the bootstrap stack {name} is in {}: {fix}",
            stack.status
        ));
    }
    let get = |key: &str| {
        stack
            .output(key)
            .map(str::to_string)
            .ok_or_else(|| miette!("the bootstrap stack {name} has no output {key}: {fix}"))
    };
    Ok(Bootstrap {
        bucket: get("ArtifactBucketName")?,
        repository: get("RepositoryName")?,
        repository_uri: get("RepositoryUri")?,
    })
}

#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub bucket: String,
    pub repository: String,
    /// `ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY`
    pub repository_uri: String,
}
