//! Running the deployer binary as users do, for the suites that test commands.

use std::path::PathBuf;
use std::process::{Command, Output};

use harness::{cargo_bin, repo_root};

pub fn deployer() -> PathBuf {
    cargo_bin("deployer", "deployer").unwrap_or_else(|e| panic!("{e}"))
}

/// Runs the deployer from the repository root (it builds the workspace it is run in).
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(deployer());
    command.current_dir(repo_root()).args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

pub fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn as_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A copy of the repository's environments to edit.
pub fn environments_copy() -> tempfile::TempDir {
    let envs = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo_root().join("environments")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), envs.path().join(entry.file_name())).unwrap();
    }
    envs
}

/// The scaler's count leaves out the router's private directory: the rendered
/// `EXCLUDE_DIRECTORIES` is the Lambda's mount path, the router access point's root and
/// the directory the router writes ([`runtime::router::s3::names::RESERVED`]), which the
/// deployer (that does not depend on the runtime) writes on its own.
#[test]
fn the_scaler_leaves_out_the_routers_private_directory() {
    let rendered = run(&["render", "--env", "local"], &[]);
    assert!(rendered.status.success(), "{}", text(&rendered));
    let template = String::from_utf8_lossy(&rendered.stdout);
    let value = |key: &str| -> String {
        let line = template
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in the rendered template"));
        line[key.len()..].trim().trim_matches('"').to_string()
    };
    let mount = value("LocalMountPath:");
    let root = template
        .split("RouterAccessPoint:")
        .nth(1)
        .and_then(|rest| rest.lines().map(str::trim).find(|l| l.starts_with("Path:")))
        .map(|l| l["Path:".len()..].trim().to_string())
        .unwrap();
    assert_eq!(
        value("EXCLUDE_DIRECTORIES:"),
        format!("{mount}{root}/{}", runtime::router::s3::names::RESERVED)
    );
}
