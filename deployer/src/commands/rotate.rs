//! `deployer rotate-credentials --env NAME [--finish]`: replaces the router's S3 key pair
//! without downtime, in two steps.
//!
//! 1. A new pair becomes current and the old one is kept as `previous`; the router
//!    service restarts its tasks, which accept both. Containers beside the router get
//!    the new pair with the restart; clients in the VPC re-read the secret at their pace.
//! 2. `--finish`, once every client has the new pair: `previous` is emptied and the tasks
//!    restart again, accepting the new pair only.
//!
//! No secret is printed: only access key ids.

use std::process::ExitCode;

use miette::miette;
use serde::{Deserialize, Serialize};

use crate::aws::secretsmanager;
use crate::cli::{AwsArgs, OutputFormat, RotateArgs};
use crate::config;

/// The secret's JSON, as the stack's template creates it.
#[derive(Deserialize, Serialize)]
struct Pairs {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    previous_access_key_id: String,
    #[serde(default)]
    previous_secret_access_key: String,
}

/// The length of a generated secret access key (as the template's).
const SECRET_LENGTH: i64 = 40;

pub fn run(
    environments_dir: &std::path::Path,
    aws_args: &AwsArgs,
    output: OutputFormat,
    args: &RotateArgs,
) -> miette::Result<ExitCode> {
    let env = config::load(environments_dir, &args.env)?;
    super::block_on(async {
        let sdk = super::connect(&env, aws_args).await?;
        let cfn = aws_sdk_cloudformation::Client::new(&sdk);
        let boot = super::bootstrap::outputs(&cfn, &env).await?;
        let place = super::lock_place(&sdk, &env, &boot);
        super::locked(Some(place), "rotate-credentials", async {
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        let id = env.router_credentials_secret();
        let text = secretsmanager::get(&secrets, &id).await?.ok_or_else(|| {
            miette!(
                help = format!(
                    "deploy the environment first (`deployer up --env {}`)",
                    env.name
                ),
                "the secret {id} does not exist"
            )
        })?;
        // The secret's text is never part of an error.
        let mut pairs: Pairs = serde_json::from_str(&text).map_err(|_| {
            miette!(
                help = "it must hold access_key_id and secret_access_key (and previous_access_key_id, previous_secret_access_key); restore a version the stack made, or recreate the stack's secret",
                "the secret {id} is not the router's key pair"
            )
        })?;
        let rotating = !pairs.previous_access_key_id.is_empty();
        let message = match (args.finish, rotating) {
            (false, true) => {
                return Err(miette!(
                    help = "once every client uses the current pair, end the rotation with `--finish`; then start a new one",
                    "a rotation of {id} is under way: {} is current and {} still accepted; nothing was changed",
                    pairs.access_key_id,
                    pairs.previous_access_key_id
                ));
            }
            (true, false) => {
                eprintln!(
                    "no rotation of {id} is under way: only {} is accepted; nothing to finish",
                    pairs.access_key_id
                );
                return Ok(ExitCode::SUCCESS);
            }
            (false, false) => {
                let new_id = format!("{}-{}", env.stack_name(), timestamp());
                let new_secret = secretsmanager::random_password(&secrets, SECRET_LENGTH).await?;
                let old_id = std::mem::replace(&mut pairs.access_key_id, new_id);
                pairs.previous_access_key_id = old_id;
                pairs.previous_secret_access_key =
                    std::mem::replace(&mut pairs.secret_access_key, new_secret);
                format!(
                    "{} is current; {} is still accepted. Move the clients in the VPC to the new pair (they re-read {id}), then run `deployer rotate-credentials --env {} --finish`",
                    pairs.access_key_id, pairs.previous_access_key_id, env.name
                )
            }
            (true, true) => {
                let retired = std::mem::take(&mut pairs.previous_access_key_id);
                pairs.previous_secret_access_key.clear();
                format!(
                    "{retired} is no longer accepted; {} is the only pair",
                    pairs.access_key_id
                )
            }
        };
        let text = serde_json::to_string(&pairs)
            .map_err(|e| miette!("cannot encode the key pair: {e}"))?;
        secretsmanager::put(&secrets, &id, &text).await?;
        eprintln!("updated {id}");
        // Key ids only, never a secret.
        let report = |deployment: Option<&str>| {
            if output == OutputFormat::Json {
                println!(
                    "{}",
                    serde_json::json!({
                        "secret": id,
                        "access_key_id": pairs.access_key_id,
                        "previous_access_key_id": Some(&pairs.previous_access_key_id).filter(|p| !p.is_empty()),
                        "deployment": deployment,
                        "message": message,
                    })
                );
            }
        };
        if args.no_restart {
            report(None);
            eprintln!(
                "{message}\nthe router's tasks were not restarted (--no-restart): they take the pairs at their next start"
            );
            return Ok(ExitCode::SUCCESS);
        }
        // Tasks read their secrets when they start: a new deployment hands every task
        // (and the containers beside it) the pairs just written.
        let ecs = runtime::aws::ecs::Ecs::new(aws_sdk_ecs::Client::new(&sdk));
        let deployment = ecs
            .force_new_deployment(&env.cluster_name(), &env.router_service_name())
            .await
            .map_err(crate::aws::Error)?;
        eprintln!(
            "restarting the router's tasks (deployment {deployment} of {}); follow it with `deployer status --env {}`",
            env.router_service_name(),
            env.name
        );
        match output {
            OutputFormat::Text => println!("{message}"),
            OutputFormat::Json => report(Some(&deployment)),
        }
        Ok(ExitCode::SUCCESS)
        })
        .await
    })?
}

/// Seconds since the Unix epoch: new access key ids sort in rotation order.
fn timestamp() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
