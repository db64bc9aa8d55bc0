//! `efs-router`: the router container's entrypoint.
//!
//! `serve` connects to the mount targets and serves the HTTP API (docs/router.md);
//! `health` is the container health check (the image has no curl).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// mimalloc with freed memory returned at once (the task definition sets
/// MIMALLOC_ARENA_EAGER_COMMIT=0 and MIMALLOC_PURGE_DELAY=0), behind a bounded cache of
/// transfer-sized blocks so the 1 MiB buffers every transfer cycles through stay warm
/// (runtime::router::alloc, docs/benchmarks.md#router). The limit is set from the
/// transfer budget once the arguments are known.
#[global_allocator]
static ALLOCATOR: Recycling<mimalloc::MiMalloc> = Recycling::new(mimalloc::MiMalloc, 0);

use runtime::cli;
use runtime::router::alloc::Recycling;
use runtime::router::{self, config::ServeArgs};

#[derive(Debug, Parser)]
#[command(
    name = "efs-router",
    version,
    about = "Serves an EFS file system over HTTP, spreading paths over every mount target"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Connect to the mount targets and serve the HTTP API until SIGTERM.
    Serve(Box<ServeArgs>),
    /// Exit 0 when URL answers 200 (the container health check).
    Health {
        #[arg(long, default_value = "http://127.0.0.1:9090/health")]
        url: String,
        #[arg(long, default_value_t = 3, value_name = "SECONDS")]
        timeout: u64,
    },
}

fn main() -> ExitCode {
    let cli: Cli = match cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match cli.command {
        Command::Serve(args) => {
            ALLOCATOR.set_limit(args.recycling_limit());
            // JSON lines on stdout for the awslogs driver; LOG_FORMAT=text for a terminal.
            runtime::logging::init(std::env::var("LOG_FORMAT").as_deref() != Ok("text"));
            cli::block_on("efs-router", async move {
                match router::serve(*args).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        tracing::error!(error = %e, "efs-router cannot serve");
                        eprintln!("efs-router: {e}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
        Command::Health { url, timeout } => cli::block_on("efs-router", async move {
            match router::health_check::check(&url, Duration::from_secs(timeout)).await {
                Ok(200) => ExitCode::SUCCESS,
                Ok(status) => {
                    eprintln!("efs-router: {url} answered {status}");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("efs-router: {e}");
                    ExitCode::FAILURE
                }
            }
        }),
    }
}
