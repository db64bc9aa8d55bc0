//! Command-line interface. Parsing only; the work is in `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "deployer", version, about = "Render, validate and deploy the EFS mount-target autoscaler", long_about = None)]
pub struct Cli {
    /// Directory holding defaults.yaml and one <env>.yaml per environment.
    #[arg(
        long,
        global = true,
        env = "DEPLOYER_ENVIRONMENTS_DIR",
        default_value = "environments"
    )]
    pub environments_dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render the CloudFormation templates and the resolved configuration of an environment.
    Render(RenderArgs),
    /// Check environment configuration, then lint the rendered templates with cfn-lint and checkov.
    Validate(ValidateArgs),
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Environment name (a file environments/<NAME>.yaml).
    #[arg(long)]
    pub env: String,
    /// Write main.yaml, bootstrap.yaml and resolved-config.json here instead of printing
    /// the main template to stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false, id = "which")]
pub struct Which {
    /// Environment to validate.
    #[arg(long, group = "which")]
    pub env: Option<String>,
    /// Validate every environment in the environments directory.
    #[arg(long, group = "which")]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub which: Which,
    /// Check configuration and rendering only; do not run cfn-lint and checkov.
    #[arg(long)]
    pub config_only: bool,
}
