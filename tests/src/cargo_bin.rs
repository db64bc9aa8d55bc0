//! Binaries of other workspace packages, built on demand. Cargo only provides
//! `CARGO_BIN_EXE_*` to a package's own tests; this asks cargo to build (or find up to
//! date) the binary and reads its path from cargo's JSON messages, so a test never runs
//! a stale binary.

use std::path::PathBuf;
use std::process::Command;

use crate::HarnessError;

/// Builds `bin` of workspace package `package` in the current profile and returns its
/// path.
pub fn cargo_bin(package: &str, bin: &str) -> Result<PathBuf, HarnessError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .current_dir(crate::repo_root())
        .args([
            "build",
            "--quiet",
            "--locked",
            "--message-format=json",
            "-p",
            package,
            "--bin",
            bin,
        ])
        .output()
        .map_err(|source| HarnessError::Io {
            what: format!("running cargo build -p {package} --bin {bin}"),
            source,
        })?;
    if !output.status.success() {
        return Err(HarnessError::Build {
            what: format!("cargo build -p {package} --bin {bin}"),
            log: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == bin)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| HarnessError::Build {
            what: format!("cargo build -p {package} --bin {bin}"),
            log: format!("no executable named {bin} in cargo's output"),
        })
}
