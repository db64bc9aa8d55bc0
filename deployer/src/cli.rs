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

    #[command(flatten)]
    pub aws: AwsArgs,

    /// Result format on stdout; progress and reports go to stderr either way.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// More detail on stderr: -v the AWS calls made, -vv the SDK's own debug log.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render the CloudFormation templates and the resolved configuration of an environment.
    Render(RenderArgs),
    /// Check environment configuration, then lint the rendered templates with cfn-lint and checkov.
    Validate(ValidateArgs),
    /// Create or update the account's bootstrap stack (artifact bucket, image repository).
    Bootstrap(EnvArgs),
    /// Build the scaler and router, then upload the Lambda zip and image the account lacks.
    Package(PackageArgs),
    /// Package, then deploy the environment's stack through a change set you review.
    Up(UpArgs),
    /// Show what `up` would change: resources, properties, replacements, parameters and
    /// configuration.
    Diff(DiffArgs),
    /// Delete the environment: the scaler's mount targets, the stack and the published
    /// list (the file system stays where the environment says retain).
    Down(DownArgs),
    /// Show the stack, mount targets, published list, router service, schedule and alarms.
    Status(EnvArgs),
    /// Run the scaler once now and print its result.
    Invoke(EnvArgs),
    /// Go back to the previous release: the scaler's alias to its version, the router
    /// service to its task definition.
    Rollback(RollbackArgs),
    /// Find what differs from what was deployed: the stack's resources (CloudFormation
    /// drift detection), the published list, the router's task definition. Exit code 2
    /// on drift.
    Drift(EnvArgs),
    /// Show the scaler's and the router's logs in time order, readable or as JSON lines.
    Logs(LogsArgs),
    /// Replace the router's S3 key pair without downtime: a new pair with the old one
    /// still accepted, then `--finish` once every client has the new one.
    RotateCredentials(RotateArgs),
    /// Make a self-contained deployer: build the runtime for x86_64 and arm64 from this
    /// source tree and append it to a deployer executable.
    Bundle(BundleArgs),
    /// Start a project: commented environments (defaults, dev, staging, prod, local), their
    /// JSON Schema and a CI workflow; never overwrites.
    Init(InitArgs),
    /// Print the JSON Schema of an environment file, for editors (docs/configuration.md).
    Schema,
    /// Print the shell completion script for SHELL (e.g. `deployer completions bash >
    /// ~/.local/share/bash-completion/completions/deployer`).
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page, or write one page per command into DIR.
    Manpage {
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Remove a stack's lock left by a deployer that died (`up`, `down` and
    /// `rotate-credentials` hold it while they run).
    Unlock(UnlockArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogSource {
    /// The scaler function's log group.
    Scaler,
    /// The router service's log group.
    Router,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Environment name (a file environments/<NAME>.yaml).
    #[arg(long)]
    pub env: String,
    /// Only this program's log (both, interleaved by time, without it).
    #[arg(value_enum)]
    pub source: Option<LogSource>,
    /// Keep printing new events as they arrive, until Ctrl-C.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Start this far back (30s, 15m, 2h, 1d, 1w) or at this time (RFC 3339).
    #[arg(long, default_value = "10m")]
    pub since: String,
    /// Only events matching this CloudWatch Logs filter pattern: a word such as ERROR,
    /// a quoted phrase, or a JSON pattern such as '{ $.level = "WARN" }'.
    #[arg(long, value_name = "PATTERN")]
    pub filter: Option<String>,
}

#[derive(Debug, Args)]
pub struct BundleArgs {
    /// The self-contained deployer to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The deployer executable to carry the artifacts (default: this one), e.g. a static
    /// release build.
    #[arg(long, value_name = "PATH")]
    pub deployer: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to start the project (default: here): DIR/environments/ and
    /// DIR/.github/workflows/deployer.yml.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Environment name (a file environments/<NAME>.yaml).
    #[arg(long)]
    pub env: String,
    /// Roll back without asking. Off a terminal nothing is asked anyway, except that a
    /// protected environment (termination_protection: true) then needs --yes.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Environment name (a file environments/<NAME>.yaml).
    #[arg(long)]
    pub env: String,
    /// The lock's id, as the refused deployer printed it: only that lock is removed.
    #[arg(long)]
    pub id: String,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Environment name (a file environments/<NAME>.yaml).
    #[arg(long)]
    pub env: String,
    /// End the rotation under way: the previous pair stops being accepted.
    #[arg(long)]
    pub finish: bool,
    /// Write the secret only; the router's tasks take it when they next start.
    #[arg(long)]
    pub no_restart: bool,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Environment name (a file environments/<NAME>.yaml).
    #[arg(long)]
    pub env: String,
    /// Delete without asking (an unprotected environment).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Delete an environment with termination protection; its name must be typed, or
    /// given with --confirm.
    #[arg(long)]
    pub force: bool,
    /// The environment's name, to confirm --force without a terminal.
    #[arg(long, value_name = "NAME", requires = "force")]
    pub confirm: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    Text,
    /// Ready to post as a pull-request comment.
    Markdown,
    Json,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Environment name (a file environments/<NAME>.yaml).
    #[arg(long)]
    pub env: String,
    #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
    pub format: DiffFormat,
    /// Exit with 2 when there are differences (0 when none).
    #[arg(long)]
    pub exit_code: bool,
    /// Compare offline with the render of this git revision (a branch, tag or commit)
    /// instead of the deployed stack; needs no credentials.
    #[arg(long, value_name = "GIT_REF")]
    pub against: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Environment name (a file environments/<NAME>.yaml).
    #[arg(long)]
    pub env: String,
    /// Deploy without asking. Off a terminal nothing is asked anyway, except that a
    /// protected environment (termination_protection: true) then needs --yes.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Create the change set and show it, but do not execute it.
    #[arg(long, conflicts_with = "yes")]
    pub no_exec: bool,
    /// Let this deploy replace or remove the named resource (the file system or a mount
    /// target: its data, or its clients' connection); repeat for several. Without it
    /// such a change is refused before anything runs.
    #[arg(long, value_name = "LOGICAL_ID")]
    pub allow_replacement: Vec<String>,
    /// Approve the changes the diff marks `!!` (broader IAM, an opened security group, a
    /// changed file system policy, a secret or key replaced or removed, encryption
    /// turned off). Without it `up` asks for them even with --yes, and off a terminal
    /// refuses.
    #[arg(long)]
    pub approve_risky: bool,
}

/// Where AWS calls go. Credentials come from the standard chain (environment, profiles,
/// SSO, credential_process, instance roles).
#[derive(Debug, Args)]
pub struct AwsArgs {
    /// Named profile from ~/.aws/config (default: AWS_PROFILE, then `default`).
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Region, instead of the environment's `region`.
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    /// Environment name (a file environments/<NAME>.yaml).
    #[arg(long)]
    pub env: String,
}

#[derive(Debug, Args)]
pub struct PackageArgs {
    /// Environment name (a file environments/<NAME>.yaml).
    #[arg(long)]
    pub env: String,
    /// Also write the zip, the image (an OCI layout) and artifacts.json here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Build only; make no AWS call.
    #[arg(long)]
    pub no_upload: bool,
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
