//! `deployer validate --env NAME | --all [--config-only]`

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use miette::{Context as _, IntoDiagnostic};

use crate::cli::{OutputFormat, ValidateArgs};
use crate::config;
use crate::lint;
use crate::render::{BOOTSTRAP_FILE, MAIN_FILE, Renderer};

/// One line of the report: what was checked, for which environment or tool, and why it
/// failed.
#[derive(Debug, serde::Serialize)]
struct Check {
    /// An environment name, or the linter's name.
    subject: String,
    check: String,
    ok: bool,
    /// The problems, one per entry: `file:line:col: key: message` for configuration
    /// errors, the linter's report otherwise.
    problems: Vec<String>,
}

impl Check {
    fn text(&self) -> String {
        match (self.ok, self.check.as_str()) {
            (true, check) => format!("ok    {}: {check}", self.subject),
            // The configuration errors themselves go to stderr, with their source lines.
            (false, "configuration") => format!("FAIL  {}: configuration", self.subject),
            (false, "linter") => format!("FAIL  {}:\n{}", self.subject, self.problems.join("\n")),
            (false, _) => format!("FAIL  {}: {}", self.subject, self.problems.join("; ")),
        }
    }
}

pub fn run(
    environments_dir: &Path,
    output: OutputFormat,
    args: &ValidateArgs,
) -> miette::Result<ExitCode> {
    let envs = match (&args.which.env, args.which.all) {
        (Some(env), _) => vec![env.clone()],
        (None, _) => config::list_environments(environments_dir)?,
    };
    if envs.is_empty() {
        miette::bail!("no environment files in {}", environments_dir.display());
    }
    let json = output == OutputFormat::Json;
    // Text goes out as each check ends; JSON once, at the end.
    let mut checks: Vec<Check> = Vec::new();
    let mut report = |check: Check| {
        if !json {
            println!("{}", check.text());
        }
        checks.push(check);
    };

    let renderer = Renderer::new()?;
    let scratch = tempfile::tempdir()
        .into_diagnostic()
        .wrap_err("cannot create a temporary directory")?;
    let mut templates: Vec<PathBuf> = Vec::new();
    let mut regions = BTreeSet::new();

    for name in &envs {
        let env = match config::load(environments_dir, name) {
            Ok(env) => env,
            Err(errors) => {
                let problems = errors.errors.iter().map(ToString::to_string).collect();
                if !json {
                    eprintln!("{:?}", miette::Report::new(errors));
                }
                report(Check {
                    subject: name.clone(),
                    check: "configuration".into(),
                    ok: false,
                    problems,
                });
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
                report(Check {
                    subject: name.clone(),
                    check: "skip reasons".into(),
                    ok: false,
                    problems: vec![format!(
                        "{file} skips {} without a reason (add `comment:` under each)",
                        missing.join(", ")
                    )],
                });
            }
            templates.push(Path::new(name).join(file));
        }
        regions.insert(env.config.region.clone());
        report(Check {
            subject: name.clone(),
            check: "configuration and rendering".into(),
            ok: true,
            problems: Vec::new(),
        });
    }

    if !args.config_only && !templates.is_empty() {
        let regions: Vec<String> = regions.into_iter().collect();
        let root = scratch.path();
        for linted in [
            lint::cfn_lint(root, &templates, &regions)?,
            lint::checkov(root, &templates)?,
        ] {
            let output = linted.output.trim_end().to_string();
            if linted.passed {
                // cfn-lint's warnings and notes, which do not fail the run.
                if !json && !output.trim().is_empty() && linted.tool == "cfn-lint" {
                    eprintln!("{output}");
                }
                report(Check {
                    subject: linted.tool.to_string(),
                    check: format!("{} templates", templates.len()),
                    ok: true,
                    problems: Vec::new(),
                });
            } else {
                report(Check {
                    subject: linted.tool.to_string(),
                    check: "linter".into(),
                    ok: false,
                    problems: vec![output],
                });
            }
        }
    }
    let failed = checks.iter().any(|c| !c.ok);
    if json {
        println!(
            "{}",
            serde_json::json!({ "ok": !failed, "templates": templates.len(), "checks": checks })
        );
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
