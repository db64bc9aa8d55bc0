//! One module per command. Each returns the process exit code or a report for stderr.

mod render;
mod validate;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> miette::Result<ExitCode> {
    match cli.command {
        Command::Render(args) => render::run(&cli.environments_dir, &args),
        Command::Validate(args) => validate::run(&cli.environments_dir, &args),
    }
}
