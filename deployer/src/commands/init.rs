//! `deployer init [DIR]`: starts a project: a commented `environments/` (defaults, dev,
//! staging, prod and the local sandbox), their JSON Schema for editors, and a CI workflow
//! for pull-request diffs and deploys. It never overwrites: if any of the files exists,
//! it writes none and names them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use miette::miette;

use crate::cli::{InitArgs, OutputFormat};

/// The environment files this deployer ships, as they are in its repository (tested
/// there: they load, render and pass cfn-lint and checkov).
const ENVIRONMENTS: &[(&str, &str)] = &[
    (
        "defaults.yaml",
        include_str!("../../../environments/defaults.yaml"),
    ),
    ("dev.yaml", include_str!("../../../environments/dev.yaml")),
    (
        "staging.yaml",
        include_str!("../../../environments/staging.yaml"),
    ),
    ("prod.yaml", include_str!("../../../environments/prod.yaml")),
    (
        "local.yaml",
        include_str!("../../../environments/local.yaml"),
    ),
];

const WORKFLOW: &str = include_str!("../../assets/ci-workflow.yml");

/// Editors that read yaml-language-server modelines find the schema from each file.
const MODELINE: &str = "# yaml-language-server: $schema=./schema.json\n";

/// Every file `init` writes under `dir`, with its contents.
fn files(dir: &Path) -> miette::Result<Vec<(PathBuf, String)>> {
    let envs = dir.join("environments");
    let mut out: Vec<(PathBuf, String)> = ENVIRONMENTS
        .iter()
        .map(|(name, text)| (envs.join(name), format!("{MODELINE}{text}")))
        .collect();
    let schema = serde_json::to_string_pretty(&super::schema::schema())
        .map_err(|e| miette!("cannot write the schema: {e}"))?;
    out.push((envs.join("schema.json"), schema + "\n"));
    out.push((
        dir.join(".github/workflows/deployer.yml"),
        WORKFLOW.to_string(),
    ));
    Ok(out)
}

pub fn run(output: OutputFormat, args: &InitArgs) -> miette::Result<ExitCode> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let files = files(&dir)?;
    let existing: Vec<String> = files
        .iter()
        .filter(|(p, _)| p.exists())
        .map(|(p, _)| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        return Err(miette!(
            help = "init only starts a project; move them away (or edit them instead) and run it again",
            "{} already exist(s): {}; nothing was written",
            existing.len(),
            existing.join(", ")
        ));
    }
    for (path, text) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| miette!("cannot create {}: {e}", parent.display()))?;
        }
        crate::files::write_atomic(path, text.as_bytes())
            .map_err(|e| miette!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if output == OutputFormat::Json {
        println!(
            "{}",
            serde_json::json!({ "written": files.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>() })
        );
    }
    eprintln!(
        "next: set account_id and region in environments/dev.yaml, staging.yaml and prod.yaml, then `deployer validate --all`; `deployer up --env local` deploys to a local endpoint (docs: configuration, operations)"
    );
    Ok(ExitCode::SUCCESS)
}
