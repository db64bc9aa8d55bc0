//! One module per command. Each returns the process exit code or a report for stderr.

pub mod bootstrap;
mod bundle;
mod completions;
mod diff;
mod down;
mod drift;
mod init;
mod invoke;
mod logs;
pub mod package;
mod plan;
mod render;
mod rollback;
mod rotate;
mod schema;
pub mod status;
mod unlock;
mod up;
mod validate;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> miette::Result<ExitCode> {
    match cli.command {
        Command::Render(args) => render::run(&cli.environments_dir, &args),
        Command::Validate(args) => validate::run(&cli.environments_dir, cli.output, &args),
        Command::Bootstrap(args) => {
            bootstrap::run(&cli.environments_dir, &cli.aws, cli.output, &args)
        }
        Command::Package(args) => package::run(&cli.environments_dir, &cli.aws, cli.output, &args),
        Command::Up(args) => up::run(&cli.environments_dir, &cli.aws, cli.output, &args),
        Command::Diff(args) => diff::run(&cli.environments_dir, &cli.aws, &args),
        Command::Down(args) => down::run(&cli.environments_dir, &cli.aws, cli.output, &args),
        Command::Status(args) => status::run(&cli.environments_dir, &cli.aws, cli.output, &args),
        Command::Invoke(args) => invoke::run(&cli.environments_dir, &cli.aws, cli.output, &args),
        Command::Rollback(args) => {
            rollback::run(&cli.environments_dir, &cli.aws, cli.output, &args)
        }
        Command::Drift(args) => drift::run(&cli.environments_dir, &cli.aws, cli.output, &args),
        Command::Logs(args) => logs::run(&cli.environments_dir, &cli.aws, cli.output, &args),
        Command::RotateCredentials(args) => {
            rotate::run(&cli.environments_dir, &cli.aws, cli.output, &args)
        }
        Command::Bundle(args) => bundle::run(cli.output, &args),
        Command::Init(args) => init::run(cli.output, &args),
        Command::Schema => schema::run(),
        Command::Completions { shell } => completions::completions(shell),
        Command::Manpage { out } => completions::manpage(out.as_deref()),
        Command::Unlock(args) => unlock::run(&cli.environments_dir, &cli.aws, cli.output, &args),
    }
}

/// Runs the async part of a command (the AWS calls) to completion.
fn block_on<F: std::future::Future>(future: F) -> miette::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| miette::miette!("cannot start the async runtime: {e}"))?;
    Ok(runtime.block_on(future))
}

/// Where `env`'s stack lock lives: the artifact bucket of its bootstrap stack.
fn lock_place(
    sdk: &aws_config::SdkConfig,
    env: &crate::config::Environment,
    boot: &bootstrap::Bootstrap,
) -> crate::lock::Place {
    crate::lock::Place {
        client: crate::aws::s3::client(sdk),
        bucket: boot.bucket.clone(),
        owner: env.config.account_id.clone(),
        stack: env.stack_name(),
    }
}

/// Runs `body` holding the stack's lock (`crate::lock`), given back on every way out of
/// it, errors and Ctrl-C included. No place (no bootstrap stack, so no artifact bucket):
/// unlocked, with a note.
async fn locked<T>(
    place: Option<crate::lock::Place>,
    command: &str,
    body: impl std::future::Future<Output = miette::Result<T>>,
) -> miette::Result<T> {
    let Some(place) = place else {
        eprintln!(
            "note: no bootstrap stack, so no artifact bucket to hold the stack's lock: running unlocked"
        );
        return body.await;
    };
    let lock = place.acquire(command).await?;
    tracing::debug!(id = lock.id(), "holding the stack lock");
    let result = body.await;
    lock.release().await;
    result
}

/// A command's result on stdout: pretty JSON with `--output json`, else its text view.
fn print_report(
    output: crate::cli::OutputFormat,
    report: &serde_json::Value,
    text: fn(&serde_json::Value) -> String,
) {
    match output {
        crate::cli::OutputFormat::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(report).unwrap_or_default()
            );
        }
        crate::cli::OutputFormat::Text => print!("{}", text(report)),
    }
}

/// Asks a question on the terminal and returns the trimmed answer.
fn ask(prompt: &str) -> miette::Result<String> {
    use std::io::{BufRead, Write};
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| miette::miette!("cannot read the answer: {e}"))?;
    Ok(answer.trim().to_string())
}

/// The SDK configuration for `env` (its region, endpoint and the caller's credentials),
/// after the guard against another account or region: every command that calls AWS
/// goes through it, so none can act on the wrong account.
async fn connect(
    env: &crate::config::Environment,
    aws_args: &crate::cli::AwsArgs,
) -> miette::Result<aws_config::SdkConfig> {
    let sdk =
        crate::aws::sdk_config(env, aws_args.profile.as_deref(), aws_args.region.as_deref()).await;
    crate::aws::guard(&sdk, env, aws_args.profile.as_deref()).await?;
    Ok(sdk)
}
