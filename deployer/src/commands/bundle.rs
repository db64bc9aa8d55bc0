//! `deployer bundle --out FILE [--deployer PATH]`: a self-contained deployer. Builds the
//! scaler and the router for x86_64 and arm64 from this source tree (one revision) and
//! writes FILE: the deployer executable (this one, or PATH: a static release build)
//! with those artifacts appended. Run anywhere, FILE deploys them without cargo, zig or
//! the source (`package::bundle`). `scripts/release` uses it.

use std::process::ExitCode;

use miette::{IntoDiagnostic, WrapErr, miette};

use crate::cli::{BundleArgs, OutputFormat};
use crate::config::Architecture;
use crate::package::{self, build, bundle::Bundle};
use crate::progress::Progress;

pub fn run(output: OutputFormat, args: &BundleArgs) -> miette::Result<ExitCode> {
    let cwd = std::env::current_dir().into_diagnostic()?;
    let workspace = build::Workspace::locate(&cwd)?;
    let progress = Progress::stderr();
    let mut built = Vec::new();
    for arch in [Architecture::X86_64, Architecture::Arm64] {
        let toolchains = vec![(arch, build::toolchain(arch)?)];
        built.push(package::package_for(
            arch,
            arch,
            &workspace,
            &toolchains,
            &progress,
        )?);
    }
    let revision = workspace.revision();
    let bundle = Bundle::new(&revision, built);
    let executable = match &args.deployer {
        Some(path) => path.clone(),
        None => std::env::current_exe().into_diagnostic()?,
    };
    let bytes = std::fs::read(&executable)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot read the deployer {}", executable.display()))?;
    let carrying = bundle
        .attach(&bytes)
        .map_err(|e| miette!("cannot make the bundle: {e}"))?;
    crate::files::write_atomic(&args.out, &carrying)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot write {}", args.out.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&args.out, std::fs::Permissions::from_mode(0o755))
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot make {} executable", args.out.display()))?;
    }
    eprintln!(
        "{}: {} MiB, the deployer and the artifacts of revision {revision}:",
        args.out.display(),
        carrying.len() / (1024 * 1024)
    );
    for line in bundle.digests() {
        eprintln!("  {line}");
    }
    if output == OutputFormat::Json {
        println!(
            "{}",
            serde_json::json!({
                "file": args.out.display().to_string(),
                "bytes": carrying.len(),
                "revision": revision,
                "artifacts": bundle.digests(),
            })
        );
    }
    Ok(ExitCode::SUCCESS)
}
