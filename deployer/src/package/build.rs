//! Builds the runtime binaries (`efs-scaler`, `efs-router`) as static musl executables
//! for an environment's architecture, with cargo or, to cross-compile, cargo-zigbuild.
//!
//! Both binaries compile C (aws-lc for TLS, mimalloc for the router), so a musl target
//! needs a C compiler for it as well as Rust's standard library. Each missing piece is
//! named with the command that installs it, before anything runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::schema::Architecture;
use crate::lint::{project_tools, which};

/// The package holding the runtime binaries.
pub const RUNTIME_PACKAGE: &str = "efs-autoscaler-runtime";
/// Size over speed, fat LTO, no unwinding (see the workspace Cargo.toml).
pub const PROFILE: &str = "dist";

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BuildError {
    #[error("{0}")]
    Missing(String),
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Workspace(String),
    #[error("building for {target} failed (exit {code}){output}")]
    Failed {
        target: String,
        code: String,
        output: String,
    },
}

pub fn rust_target(arch: Architecture) -> &'static str {
    match arch {
        Architecture::X86_64 => "x86_64-unknown-linux-musl",
        Architecture::Arm64 => "aarch64-unknown-linux-musl",
    }
}

/// How the binaries get built on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Toolchain {
    /// `cargo build`, with Debian's `musl-gcc` as the C compiler (native x86_64).
    Cargo,
    /// `cargo zigbuild`: zig compiles the C and links for any target.
    Zigbuild,
}

/// The source tree to build: the cargo workspace holding the runtime package.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub target_dir: PathBuf,
}

impl Workspace {
    /// Finds the workspace around `dir` with `cargo metadata`.
    pub fn locate(dir: &Path) -> Result<Workspace, BuildError> {
        let output = Command::new(cargo())
            .args(["metadata", "--format-version", "1", "--no-deps", "--locked"])
            .current_dir(dir)
            .stderr(Stdio::piped())
            .output()
            .map_err(|source| BuildError::Spawn {
                program: "cargo metadata".into(),
                source,
            })?;
        if !output.status.success() {
            return Err(BuildError::Workspace(format!(
                "`cargo metadata` in {} failed: {}. Run the deployer from the efs-autoscaler source tree.",
                dir.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
            .map_err(|e| BuildError::Workspace(format!("cargo metadata printed no JSON: {e}")))?;
        let has_runtime = metadata["packages"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["name"] == RUNTIME_PACKAGE));
        let (Some(root), Some(target_dir)) = (
            metadata["workspace_root"].as_str(),
            metadata["target_directory"].as_str(),
        ) else {
            return Err(BuildError::Workspace(
                "cargo metadata gave no workspace_root or target_directory".into(),
            ));
        };
        if !has_runtime {
            return Err(BuildError::Workspace(format!(
                "the cargo workspace at {root} has no {RUNTIME_PACKAGE} package; run the deployer from the efs-autoscaler source tree"
            )));
        }
        Ok(Workspace {
            root: PathBuf::from(root),
            target_dir: PathBuf::from(target_dir),
        })
    }

    /// Where `bin` lands after a build for `arch`.
    pub fn binary(&self, arch: Architecture, bin: &str) -> PathBuf {
        self.target_dir
            .join(rust_target(arch))
            .join(PROFILE)
            .join(bin)
    }

    /// The commit the source is at, with `-dirty` when files differ from it, or
    /// `unknown` outside git.
    pub fn revision(&self) -> String {
        let git = |args: &[&str]| {
            Command::new("git")
                .args(args)
                .current_dir(&self.root)
                .stderr(Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        match git(&["rev-parse", "HEAD"]) {
            Some(commit) if !commit.is_empty() => {
                let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                    .is_some_and(|s| !s.is_empty());
                if dirty {
                    format!("{commit}-dirty")
                } else {
                    commit
                }
            }
            _ => "unknown".to_string(),
        }
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// Picks the toolchain for `arch` on this machine, or says exactly what is missing and
/// how to install it.
pub fn toolchain(arch: Architecture) -> Result<Toolchain, BuildError> {
    let target = rust_target(arch);
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .map_err(|source| BuildError::Spawn {
            program: "rustc".into(),
            source,
        })?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if !sysroot.join("lib/rustlib").join(target).is_dir() {
        return Err(BuildError::Missing(format!(
            "Rust's standard library for {target} is not installed. Install it with `rustup target add {target}` (scripts/setup does)."
        )));
    }
    let native = match arch {
        Architecture::X86_64 => cfg!(target_arch = "x86_64"),
        Architecture::Arm64 => cfg!(target_arch = "aarch64"),
    };
    if native && which("musl-gcc").is_some() {
        return Ok(Toolchain::Cargo);
    }
    // On PATH, or where scripts/setup puts them.
    let found = |tool: &str| which(tool).is_some() || project_tools().join(tool).is_file();
    let (zigbuild, zig) = (found("cargo-zigbuild"), found("zig"));
    if zigbuild && zig {
        return Ok(Toolchain::Zigbuild);
    }
    let missing: Vec<&str> = [
        (!zigbuild).then_some("cargo-zigbuild (`cargo install --locked cargo-zigbuild`)"),
        (!zig).then_some("zig (`pip install ziglang`, then put its bin directory on PATH)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    Err(BuildError::Missing(if native {
        format!(
            "building for {target} needs a C compiler for musl: install Debian's musl-tools (`apt-get install musl-tools`), or {} (scripts/setup installs them)",
            missing.join(" and ")
        )
    } else {
        format!(
            "cross-building for {target} on this {} machine needs {} (scripts/setup installs them)",
            std::env::consts::ARCH,
            missing.join(" and ")
        )
    }))
}

/// `--config` for `target`'s rustflags that keep where the registry sources were unpacked
/// (`$CARGO_HOME/registry/src/...`, in panic and log locations) out of the binaries, so
/// two machines with another home directory build the same bytes. Workspace paths are
/// relative already and the standard library's are remapped by rustup. A flag on the
/// command line adds to the user's own configured rustflags (a `RUSTFLAGS` variable
/// replaces both, as always with cargo).
fn reproducible_rustflags(target: &str) -> Option<String> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let flag = format!("--remap-path-prefix={}=/cargo", home.to_str()?);
    // A JSON string is a TOML basic string.
    let flag = serde_json::to_string(&flag).ok()?;
    Some(format!("target.{target}.rustflags=[{flag}]"))
}

/// Builds `bins` for `arch`. `quiet` hides cargo's progress (not on a terminal) and
/// shows its output only when the build fails.
pub fn build(
    workspace: &Workspace,
    arch: Architecture,
    toolchain: &Toolchain,
    bins: &[&str],
    quiet: bool,
) -> Result<(), BuildError> {
    let target = rust_target(arch);
    let mut command = Command::new(cargo());
    command.arg(match toolchain {
        Toolchain::Cargo => "build",
        Toolchain::Zigbuild => "zigbuild",
    });
    command
        .args(["--locked", "--profile", PROFILE, "--target", target])
        .args(["-p", RUNTIME_PACKAGE])
        .current_dir(&workspace.root)
        // Same source, same bytes, on any machine at any time. C compilers write the
        // build's date into `__DATE__`/`__TIME__` (mimalloc prints its own), unless
        // SOURCE_DATE_EPOCH fixes it: the epoch, as the image's dates. cc reruns the C
        // builds when it changes.
        .env("SOURCE_DATE_EPOCH", "0");
    if let Some(flags) = reproducible_rustflags(target) {
        command.args(["--config", &flags]);
    }
    for bin in bins {
        command.args(["--bin", bin]);
    }
    if *toolchain == Toolchain::Zigbuild {
        // `cargo zigbuild` is found by cargo, and zig by cargo-zigbuild, on PATH: add
        // where scripts/setup installs them, after the user's own PATH.
        let path = std::env::var_os("PATH").unwrap_or_default();
        let dirs = std::env::split_paths(&path).chain(std::iter::once(project_tools()));
        if let Ok(joined) = std::env::join_paths(dirs) {
            command.env("PATH", joined);
        }
    }
    if quiet {
        command.arg("--quiet");
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let output = command.output().map_err(|source| BuildError::Spawn {
        program: format!("cargo ({toolchain:?})"),
        source,
    })?;
    if output.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&output.stderr);
    Err(BuildError::Failed {
        target: target.to_string(),
        code: output
            .status
            .code()
            .map_or("by a signal".to_string(), |c| c.to_string()),
        output: if text.trim().is_empty() {
            String::new()
        } else {
            format!(":\n{}", text.trim_end())
        },
    })
}
