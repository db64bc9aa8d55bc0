//! `deployer invoke --env NAME`: runs the scaler once now, as its schedule would (through
//! its alias, so the released version runs), and prints its result (stdout) and the end
//! of its log (stderr).

use std::process::ExitCode;

use miette::miette;

use crate::aws::lambda;
use crate::cli::{AwsArgs, EnvArgs, OutputFormat};
use crate::commands::status::{deployed_resources, of_type};
use crate::config;

pub fn run(
    environments_dir: &std::path::Path,
    aws_args: &AwsArgs,
    output: OutputFormat,
    args: &EnvArgs,
) -> miette::Result<ExitCode> {
    let env = config::load(environments_dir, &args.env)?;
    super::block_on(async {
        let sdk = super::connect(&env, aws_args).await?;
        let cfn = aws_sdk_cloudformation::Client::new(&sdk);
        let resources = deployed_resources(&cfn, &env).await?;
        let function = of_type(&resources, "AWS::Lambda::Function")
            .first()
            .map(|f| f.to_string())
            .ok_or_else(|| miette!("the stack {} has no scaler function", env.stack_name()))?;
        let alias = config::SCALER_ALIAS;
        eprintln!("invoking {function}:{alias}");
        // The payload a scheduled run gets: the scaler reads nothing from it.
        let client = lambda::invoke_client(
            &sdk,
            std::time::Duration::from_secs(u64::from(env.config.scaler.timeout_seconds)),
        );
        let invoked = lambda::invoke(&client, &function, alias, b"{}").await?;
        if let Some(version) = &invoked.executed_version {
            eprintln!("version {version} ran");
        }
        if !invoked.log_tail.is_empty() {
            eprintln!("--- log tail ---\n{}", invoked.log_tail.trim_end());
        }
        let payload = String::from_utf8_lossy(&invoked.payload).into_owned();
        let shown = match (output, serde_json::from_str::<serde_json::Value>(&payload)) {
            (OutputFormat::Text, Ok(v)) => serde_json::to_string_pretty(&v).unwrap_or(payload),
            _ => payload,
        };
        println!("{shown}");
        match invoked.function_error {
            Some(kind) => Err(miette!(
                "the scaler failed ({kind} error); its error is printed above"
            )),
            None => Ok(ExitCode::SUCCESS),
        }
    })?
}
