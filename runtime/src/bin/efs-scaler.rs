//! `efs-scaler`: the scaler Lambda's `bootstrap`, and the same pass from a shell.
//!
//! Started by Lambda (`AWS_LAMBDA_RUNTIME_API` set) it serves invocations; otherwise it
//! is a command line tool: `count DIR [--limit N]` and `run-once [--dry-run]`.

// The Lambda runtime, the SDK clients and the pass nest deep async types.
#![recursion_limit = "256"]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use runtime::cli;
use runtime::scaler::count::{self, CountOptions};
use runtime::scaler::deadline::Deadline;
use runtime::scaler::{Clients, RunOptions, ScalerConfig, lambda};

#[derive(Debug, Parser)]
#[command(
    name = "efs-scaler",
    version,
    about = "Counts files on EFS and adds a mount target past the threshold",
    long_about = "Counts files on EFS and adds a mount target past the threshold.\n\n\
        Run by AWS Lambda (AWS_LAMBDA_RUNTIME_API set) it serves scheduled invocations; \
        from a shell it counts a directory or runs one scaling pass with the Lambda's \
        environment variables."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the number of regular files under DIR (symlinks are not followed).
    Count {
        dir: PathBuf,
        /// Stop once N files are seen and print `N+`.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// Directories listed in parallel (default: one per core; more for NFS/EFS).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
        threads: Option<u16>,
        /// A directory not to enter (repeat for several), as the scheduled count leaves
        /// out the router's `.efs-router`.
        #[arg(long, value_name = "DIR")]
        exclude: Vec<PathBuf>,
    },
    /// Run one scaling pass with the Lambda's environment variables and print the
    /// result as JSON.
    RunOnce {
        /// Read, count and decide, but create, write and redeploy nothing.
        #[arg(long)]
        dry_run: bool,
        /// Give up (with a reported error) after this many seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 270)]
        timeout: u64,
    },
}

fn main() -> ExitCode {
    if lambda::is_lambda() {
        runtime::logging::init(true);
        return block_on(async {
            match lambda::serve().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    tracing::error!(%message, "scaler stopped");
                    ExitCode::FAILURE
                }
            }
        });
    }
    let cli: Cli = match cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    runtime::logging::init(false);
    match cli.command {
        Command::Count {
            dir,
            limit,
            threads,
            exclude,
        } => count_command(&dir, limit, threads, exclude),
        Command::RunOnce { dry_run, timeout } => run_once(dry_run, timeout),
    }
}

fn block_on(fut: impl Future<Output = ExitCode>) -> ExitCode {
    cli::block_on("efs-scaler", fut)
}

fn count_command(
    dir: &std::path::Path,
    limit: Option<u64>,
    threads: Option<u16>,
    exclude: Vec<PathBuf>,
) -> ExitCode {
    let options = CountOptions {
        limit,
        threads: threads.map_or_else(count::default_threads, usize::from),
        deadline: None,
        exclude,
        ..CountOptions::default()
    };
    match count::count_files(dir, &options) {
        Ok(c) if c.complete => {
            println!("{}", c.files);
            ExitCode::SUCCESS
        }
        Ok(_) => {
            // Stopped at the limit: at least that many.
            println!("{}+", limit.unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("efs-scaler: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_once(dry_run: bool, timeout: u64) -> ExitCode {
    // Validated before any AWS call: a bad variable costs nothing.
    let config = match ScalerConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("efs-scaler: {e}");
            return ExitCode::FAILURE;
        }
    };
    block_on(async move {
        let deadline = Deadline::after(Duration::from_secs(timeout));
        let clients = Clients::new(&runtime::aws::sdk_config().await);
        let result =
            runtime::scaler::run(&config, &clients, RunOptions::new(dry_run, deadline)).await;
        println!("{}", result.to_json());
        for warning in &result.warnings {
            tracing::warn!("{warning}");
        }
        match &result.error {
            None => ExitCode::SUCCESS,
            Some(e) => {
                tracing::error!("{e}");
                ExitCode::FAILURE
            }
        }
    })
}
