//! `deployer validate --env NAME | --all [--config-only]`

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use miette::{Context as _, IntoDiagnostic};

use crate::cli::ValidateArgs;
use crate::config;
use crate::lint;
use crate::render::{BOOTSTRAP_FILE, MAIN_FILE, Renderer};

pub fn run(environments_dir: &Path, args: &ValidateArgs) -> miette::Result<ExitCode> {
    let envs = match (&args.which.env, args.which.all) {
        (Some(env), _) => vec![env.clone()],
        (None, _) => config::list_environments(environments_dir)?,
    };
    if envs.is_empty() {
        miette::bail!("no environment files in {}", environments_dir.display());
    }

    let renderer = Renderer::new()?;
    let scratch = tempfile::tempdir()
        .into_diagnostic()
        .wrap_err("cannot create a temporary directory")?;
    let mut failed = false;
    let mut templates: Vec<PathBuf> = Vec::new();
    let mut regions = BTreeSet::new();

    for name in &envs {
        let env = match config::load(environments_dir, name) {
            Ok(env) => env,
            Err(errors) => {
                failed = true;
                eprintln!("{:?}", miette::Report::new(errors));
                println!("FAIL  {name}: configuration");
                continue;
            }
        };
        let rendered = renderer.render(&env)?;
        let dir = scratch.path().join(name);
        super::render::write_all(&dir, &rendered)?;
        for (file, text) in [
            (MAIN_FILE, &rendered.main),
            (BOOTSTRAP_FILE, &rendered.bootstrap),
        ] {
            let missing = lint::skips_without_reason(text);
            if !missing.is_empty() {
                failed = true;
                println!(
                    "FAIL  {name}: {file} skips {} without a reason (add `comment:` under each)",
                    missing.join(", ")
                );
            }
            templates.push(Path::new(name).join(file));
        }
        regions.insert(env.config.region.clone());
        println!("ok    {name}: configuration and rendering");
    }

    if !args.config_only && !templates.is_empty() {
        let regions: Vec<String> = regions.into_iter().collect();
        let root = scratch.path();
        for report in [
            lint::cfn_lint(root, &templates, &regions)?,
            lint::checkov(root, &templates)?,
        ] {
            let output = report.output;
            if report.passed {
                println!("ok    {}: {} templates", report.tool, templates.len());
                if !output.trim().is_empty() && report.tool == "cfn-lint" {
                    eprintln!("{}", output.trim_end());
                }
            } else {
                failed = true;
                println!("FAIL  {}:", report.tool);
                println!("{}", output.trim_end());
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
