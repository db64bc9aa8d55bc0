//! `deployer unlock --env NAME --id ID`: removes the stack's lock (`crate::lock`) when
//! its id is ID, for a deployer that died holding it. Only that lock: one taken since
//! by another deployer has another id and stays.

use std::process::ExitCode;

use crate::cli::{AwsArgs, OutputFormat, UnlockArgs};
use crate::config;

pub fn run(
    environments_dir: &std::path::Path,
    aws_args: &AwsArgs,
    output: OutputFormat,
    args: &UnlockArgs,
) -> miette::Result<ExitCode> {
    let env = config::load(environments_dir, &args.env)?;
    super::block_on(async {
        let sdk = super::connect(&env, aws_args).await?;
        let cfn = aws_sdk_cloudformation::Client::new(&sdk);
        let boot = super::bootstrap::outputs(&cfn, &env).await?;
        let place = super::lock_place(&sdk, &env, &boot);
        let holder = place.force_unlock(&args.id).await?;
        eprintln!(
            "removed the lock on {} that {} took for `{}` (pid {})",
            place.stack, holder.who, holder.command, holder.pid
        );
        if output == OutputFormat::Json {
            println!(
                "{}",
                serde_json::json!({ "stack": place.stack, "removed": holder })
            );
        }
        Ok(ExitCode::SUCCESS)
    })?
}
