//! `deployer diff --env NAME [--format text|markdown|json] [--exit-code] [--against REF]`
//!
//! Online (the default): a change set is created against the deployed stack, read and
//! deleted, never executed, so AWS itself says what changes and what is replaced.
//! `--against REF` is offline: it renders the environment from the templates and
//! environments of another git revision and compares, for pull requests without
//! credentials. Both print the same structural diff.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use miette::{IntoDiagnostic, WrapErr, miette};
use serde_json::{Map, Value, json};

use crate::aws::cloudformation;
use crate::cli::{AwsArgs, DiffArgs, DiffFormat};
use crate::commands::{bootstrap, plan};
use crate::config::{self, Environment};
use crate::diff::{self, Diff, format, replacement, template};
use crate::render::Renderer;
use crate::render::context::resolved_config;

/// `--exit-code`: differences found.
const DIFFERENT: u8 = 2;

pub fn run(
    environments_dir: &Path,
    aws_args: &AwsArgs,
    args: &DiffArgs,
) -> miette::Result<ExitCode> {
    let diff = match &args.against {
        Some(rev) => offline(environments_dir, &args.env, rev)?,
        None => online(environments_dir, aws_args, &args.env)?,
    };
    let text = match args.format {
        DiffFormat::Text => format::text(&diff),
        DiffFormat::Markdown => format::markdown(&diff),
        DiffFormat::Json => format::json(&diff),
    };
    print!("{text}");
    Ok(if args.exit_code && !diff.is_empty() {
        ExitCode::from(DIFFERENT)
    } else {
        ExitCode::SUCCESS
    })
}

/// The working tree's render of `env` against the render of revision `rev`.
fn offline(environments_dir: &Path, name: &str, rev: &str) -> miette::Result<Diff> {
    let root = git_root(environments_dir)?;
    let envs = environments_dir
        .canonicalize()
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot read {}", environments_dir.display()))?;
    let envs_rel = envs.strip_prefix(&root).map_err(|_| {
        miette!(
            "{} is outside the git repository {}; --against compares revisions of that repository",
            envs.display(),
            root.display()
        )
    })?;
    let new_env = config::load(environments_dir, name)?;
    // The source tree renders each revision with that revision's templates; a project of
    // a self-contained deployer (no templates/) renders both with the deployer's own.
    let own_templates = root.join("templates").is_dir();
    let new = if own_templates {
        Renderer::from_dir(&root.join("templates"))?
    } else {
        Renderer::new()?
    }
    .render(&new_env)?;

    let old_tree = tempfile::tempdir().into_diagnostic()?;
    let envs_path = envs_rel.to_string_lossy();
    let paths: Vec<&str> = if own_templates {
        vec!["templates", &envs_path]
    } else {
        vec![&envs_path]
    };
    extract(&root, rev, &paths, old_tree.path())?;
    let old_envs = old_tree.path().join(envs_rel);
    let mut notes = vec![format!(
        "offline: replacement predicted from the CloudFormation resource schemas of {}; artifact parameters are set by `deployer package` and not compared",
        replacement::schema_date()
    )];
    let mut old_config = Map::new();
    let before = if old_envs.join(format!("{name}.yaml")).is_file() {
        let old_env = config::load(&old_envs, name)
            .map_err(|e| miette!("environment {name} at {rev} does not load: {e}"))?;
        let old = if own_templates {
            Renderer::from_dir(&old_tree.path().join("templates"))
        } else {
            Renderer::new()
        }
        .and_then(|r| r.render(&old_env))
        .map_err(|e| {
            miette!("environment {name} at {rev} does not render with this deployer: {e}")
        })?;
        old_config = diff::flatten(&resolved_config(&old_env));
        template::parse(&old.main, &format!("the template of {name} at {rev}"))?
    } else {
        notes.push(format!("environment {name} does not exist at {rev}"));
        json!({})
    };
    let after = template::parse(&new.main, "the rendered template")?;
    let mut diff = Diff {
        environment: name.to_string(),
        stack: new_env.stack_name(),
        against: format!("git {rev}"),
        resources: diff::resources(&before, &after),
        parameters: Vec::new(),
        outputs: diff::values(&diff::outputs(&before), &diff::outputs(&after)),
        // From the loaded environments, so revisions from before the configuration was
        // kept in the template's metadata compare too.
        config: diff::values(&old_config, &diff::flatten(&resolved_config(&new_env))),
        notes,
        ..Diff::default()
    };
    diff::security::annotate(&mut diff, &before, &after);
    Ok(diff)
}

fn git(root: &Path, args: &[&str]) -> miette::Result<Vec<u8>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .map_err(|e| miette!("cannot run git ({e}); --against needs git on PATH"))?;
    if !out.status.success() {
        return Err(miette!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

fn git_root(dir: &Path) -> miette::Result<PathBuf> {
    let dir = if dir.is_dir() {
        dir.to_path_buf()
    } else {
        PathBuf::from(".")
    };
    let out = git(&dir, &["rev-parse", "--show-toplevel"])
        .wrap_err("--against compares git revisions, and this is not inside a git repository")?;
    Ok(PathBuf::from(String::from_utf8_lossy(&out).trim()))
}

/// Writes `paths` as they are at `rev` under `into` (`git archive`, no checkout).
fn extract(root: &Path, rev: &str, paths: &[&str], into: &Path) -> miette::Result<()> {
    // A revision must name a commit: an option-like value must not reach git as one.
    if rev.starts_with('-') {
        return Err(miette!("--against {rev:?} is not a git revision"));
    }
    let commit = format!("{rev}^{{commit}}");
    git(root, &["rev-parse", "--verify", "--quiet", &commit])
        .map_err(|_| miette!("--against {rev:?}: git knows no such revision"))?;
    let mut args = vec!["archive", "--format=tar", rev, "--"];
    args.extend_from_slice(paths);
    let tar = git(root, &args)?;
    tar::Archive::new(tar.as_slice())
        .unpack(into)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot unpack {rev}'s files"))
}

/// The deployed stack against a change set of this render, created and deleted.
fn online(environments_dir: &Path, aws_args: &AwsArgs, name: &str) -> miette::Result<Diff> {
    let env = config::load(environments_dir, name)?;
    let rendered = Renderer::new()?.render(&env)?;
    super::block_on(async {
        let sdk = super::connect(&env, aws_args).await?;
        let cfn = aws_sdk_cloudformation::Client::new(&sdk);
        let boot = bootstrap::outputs(&cfn, &env).await?;
        let existing = plan::usable_stack(&cfn, &env).await?;
        let (parameters, note) = parameters(&env, existing.as_ref())?;
        let submission =
            plan::submission(&sdk, &env, &rendered.main, &boot.bucket, parameters).await?;
        let plan = plan::plan(&cfn, &env, existing.as_ref(), &rendered.main, &submission).await?;
        // Never executed: gone before anything is printed.
        plan.discard(&cfn).await?;
        if plan.change_set.status == "FAILED" && !plan.change_set.is_empty() {
            return Err(miette!(
                "CloudFormation could not create a change set for {}: {}",
                plan.stack,
                plan.change_set.reason.unwrap_or_default()
            ));
        }
        let mut diff = plan.diff;
        diff.notes.push(note);
        Ok(diff)
    })?
}

/// The artifact parameters to diff with: those `deployer package` last uploaded
/// (`.deployer/ENV/artifacts.json`), else the deployed ones (the diff then shows only
/// template and configuration changes).
fn parameters(
    env: &Environment,
    existing: Option<&cloudformation::Stack>,
) -> miette::Result<(Vec<(String, String)>, String)> {
    // Where `package` wrote it: the source tree's root, or the project directory of a
    // self-contained deployer.
    let path = std::env::current_dir().ok().map(|cwd| {
        crate::package::build::Workspace::locate(&cwd)
            .map_or(cwd, |w| w.root)
            .join(".deployer")
            .join(&env.name)
            .join("artifacts.json")
    });
    let packaged: Option<Map<String, Value>> = path
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|v| v.get("parameters").and_then(Value::as_object).cloned())
        .filter(|p| p.values().all(Value::is_string));
    if let (Some(p), Some(path)) = (packaged, path) {
        let list = p
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_str()?.to_string())))
            .collect();
        return Ok((
            list,
            format!(
                "artifacts from {} (the last `deployer package`)",
                path.display()
            ),
        ));
    }
    match existing.filter(|s| !s.parameters.is_empty()) {
        Some(stack) => Ok((
            stack.parameters.clone(),
            "artifacts as deployed: run `deployer package` first to include new builds".into(),
        )),
        None => Err(miette!(
            help = format!("run `deployer package --env {}` first", env.name),
            "the stack {} does not exist yet and no uploaded artifacts were found",
            env.stack_name()
        )),
    }
}
