//! The external template checkers: `cfn-lint` (CloudFormation correctness) and `checkov`
//! (security misconfiguration). Both are Python tools; we find them on PATH or in the
//! virtualenv `scripts/setup` creates, and say how to install them when they are missing.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The versions the project is tested with (scripts/tool-versions.txt).
pub const CFN_LINT_PIN: &str = "cfn-lint==1.58.0";
pub const CHECKOV_PIN: &str = "checkov==3.3.30";

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Error {
    #[error("`{tool}` is not installed (looked on PATH and in {venv})")]
    #[diagnostic(
        code(deployer::lint::missing),
        help(
            "install it with `pip install '{pin}'`, or run scripts/setup, which installs it into {venv}"
        )
    )]
    Missing {
        tool: &'static str,
        pin: &'static str,
        venv: String,
    },
    #[error("could not run `{tool}`: {reason}")]
    #[diagnostic(code(deployer::lint::run))]
    Run { tool: &'static str, reason: String },
}

/// The outcome of one linter over a set of files.
#[derive(Debug)]
pub struct Report {
    pub tool: &'static str,
    pub passed: bool,
    /// What the tool printed, for the user.
    pub output: String,
}

/// The virtualenv `scripts/setup` creates.
pub fn project_venv() -> PathBuf {
    project_home().join("venv")
}

/// Where scripts/setup installs the project's tools: `$EFSA_HOME`, by default
/// `~/.cache/efs-autoscaler`.
pub fn project_home() -> PathBuf {
    if let Some(home) = std::env::var_os("EFSA_HOME") {
        return PathBuf::from(home);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("efs-autoscaler")
}

/// The directory of the executables scripts/setup installs (cargo-zigbuild, zig).
pub fn project_tools() -> PathBuf {
    project_home().join("tools").join("bin")
}

/// The first executable named `tool` on PATH.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| is_executable(p))
}

/// Finds an executable on PATH, then in the project virtualenv.
pub fn find(tool: &'static str, pin: &'static str) -> Result<PathBuf, Error> {
    let venv = project_venv();
    which(tool)
        .or_else(|| Some(venv.join("bin").join(tool)).filter(|p| is_executable(p)))
        .ok_or_else(|| Error::Missing {
            tool,
            pin,
            venv: venv.display().to_string(),
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn run(tool: &'static str, mut cmd: Command) -> Result<(i32, String), Error> {
    let out = cmd.output().map_err(|e| Error::Run {
        tool,
        reason: e.to_string(),
    })?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    // A signal leaves no code: treat it as a failure to run, never as a pass.
    let code = out.status.code().ok_or_else(|| Error::Run {
        tool,
        reason: format!("terminated by {}", out.status),
    })?;
    Ok((code, text))
}

/// `cfn-lint` over `files` (relative to `root`) for `regions`. Passes with zero errors;
/// warnings are shown.
pub fn cfn_lint(root: &Path, files: &[PathBuf], regions: &[String]) -> Result<Report, Error> {
    let exe = find("cfn-lint", CFN_LINT_PIN)?;
    let mut cmd = Command::new(exe);
    cmd.current_dir(root);
    cmd.arg("--format").arg("parseable");
    if !regions.is_empty() {
        cmd.arg("--regions").args(regions);
    }
    cmd.arg("--").args(files);
    let (code, output) = run("cfn-lint", cmd)?;
    // Exit code bits: 2 errors, 4 warnings, 8 informational; 1 is a cfn-lint failure.
    if code & 1 != 0 {
        return Err(Error::Run {
            tool: "cfn-lint",
            reason: output,
        });
    }
    Ok(Report {
        tool: "cfn-lint",
        passed: code & 2 == 0,
        output,
    })
}

/// `checkov` over `files` (relative to `root`). Passes with zero failed checks.
pub fn checkov(root: &Path, files: &[PathBuf]) -> Result<Report, Error> {
    let exe = find("checkov", CHECKOV_PIN)?;
    let mut cmd = Command::new(exe);
    cmd.current_dir(root);
    for f in files {
        cmd.arg("-f").arg(f);
    }
    // --skip-download: never reach a vendor API from a validation run.
    cmd.args([
        "--framework",
        "cloudformation",
        "--compact",
        "--quiet",
        "--skip-download",
        "--output",
        "cli",
    ]);
    let (code, output) = run("checkov", cmd)?;
    match code {
        0 => Ok(Report {
            tool: "checkov",
            passed: true,
            output,
        }),
        1 => Ok(Report {
            tool: "checkov",
            passed: false,
            output,
        }),
        _ => Err(Error::Run {
            tool: "checkov",
            reason: output,
        }),
    }
}

/// Every checkov skip in a rendered template must say why (`comment:` right after the id).
/// Returns the ids that do not.
pub fn skips_without_reason(template: &str) -> Vec<String> {
    let lines: Vec<&str> = template.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            let id = line.trim().strip_prefix("- id: ")?;
            if !id.starts_with("CKV") {
                return None;
            }
            let commented = lines
                .get(i + 1)
                .and_then(|next| next.trim().strip_prefix("comment:"))
                .is_some_and(|c| c.trim().len() > 10);
            (!commented).then(|| id.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_uncommented_skips() {
        let t = "skip:\n  - id: CKV_AWS_1\n    comment: a real reason here\n  - id: CKV_AWS_2\n  - id: CKV_AWS_3\n    comment: x\n";
        assert_eq!(
            skips_without_reason(t),
            vec!["CKV_AWS_2".to_string(), "CKV_AWS_3".to_string()]
        );
    }
}
