//! `deployer package`: builds the runtime binaries and turns them into the two
//! artifacts the stack deploys, both reproducible and named by their content:
//!
//! - `lambda_zip`: the scaler's Lambda zip, stored under its SHA-256;
//! - `image`: the router's OCI image, deployed by digest;
//! - `build`: the static musl builds, `elf`: the check that they are static and for the
//!   right architecture.

pub mod build;
pub mod bundle;
pub mod cache;
pub mod elf;
pub mod image;
pub mod lambda_zip;
pub mod push;

use std::path::Path;

use crate::config::{Architecture, Environment};
use crate::progress::Progress;
use build::{BuildError, Toolchain, Workspace};
use image::{Image, ImageMeta};
use lambda_zip::LambdaZip;

pub const SCALER_BIN: &str = "efs-scaler";
pub const ROUTER_BIN: &str = "efs-router";

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PackageError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("{path} {source}")]
    Binary { path: String, source: elf::ElfError },
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("cannot zip the scaler: {0}")]
    Zip(#[from] zip::result::ZipError),
}

/// The built artifacts of one environment.
#[derive(Debug, Clone)]
pub struct Artifacts {
    pub zip: LambdaZip,
    pub scaler_architecture: Architecture,
    pub image: Image,
    pub router_architecture: Architecture,
    pub revision: String,
}

impl Artifacts {
    /// The tag the image is pushed with. Stacks pin the digest; the tag is for people
    /// reading the repository, and names the architecture and digest so it never moves
    /// (the repository's tags are immutable).
    pub fn image_tag(&self) -> String {
        format!(
            "{}-{}",
            oci_architecture(self.router_architecture),
            &self.image.manifest.hex()[..16]
        )
    }

    /// Writes the zip under its object key, the image as an OCI layout in
    /// `router-image/`, each through a temporary name so an interrupted write leaves no
    /// partial artifact under a final name.
    pub fn write_to(&self, dir: &Path) -> Result<(), PackageError> {
        let io = |what, path: &Path| {
            let path = path.display().to_string();
            move |source| PackageError::Io { what, path, source }
        };
        let zip_path = dir.join(self.zip.key());
        crate::files::write_atomic(&zip_path, &self.zip.bytes).map_err(io("write", &zip_path))?;
        let layout = dir.join("router-image");
        let tmp = dir.join(".router-image.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        self.image
            .write_layout(&tmp, &self.image_tag())
            .map_err(io("write", &tmp))?;
        let _ = std::fs::remove_dir_all(&layout);
        std::fs::rename(&tmp, &layout).map_err(io("write", &layout))?;
        Ok(())
    }
}

/// Lower-case hex, as digests are written.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

pub fn oci_architecture(arch: Architecture) -> &'static str {
    match arch {
        Architecture::X86_64 => "amd64",
        Architecture::Arm64 => "arm64",
    }
}

/// Checks the toolchains for both architectures before building anything, so a
/// missing piece is reported before minutes of compiling.
pub fn toolchains(env: &Environment) -> Result<Vec<(Architecture, Toolchain)>, PackageError> {
    let mut wanted = vec![env.config.scaler.architecture];
    if env.config.service.architecture != wanted[0] {
        wanted.push(env.config.service.architecture);
    }
    wanted
        .into_iter()
        .map(|arch| Ok((arch, build::toolchain(arch)?)))
        .collect()
}

/// Builds the binaries of `env` (already-built ones are up to date in seconds) and the
/// artifacts from them. The compiler shows its own progress when `progress` is visible.
pub fn package(
    env: &Environment,
    workspace: &Workspace,
    toolchains: &[(Architecture, Toolchain)],
    progress: &Progress,
) -> Result<Artifacts, PackageError> {
    package_for(
        env.config.scaler.architecture,
        env.config.service.architecture,
        workspace,
        toolchains,
        progress,
    )
}

/// Builds the scaler for `scaler_arch` and the router for `router_arch`, and their
/// artifacts.
pub fn package_for(
    scaler_arch: Architecture,
    router_arch: Architecture,
    workspace: &Workspace,
    toolchains: &[(Architecture, Toolchain)],
    progress: &Progress,
) -> Result<Artifacts, PackageError> {
    for (arch, toolchain) in toolchains {
        let bins: Vec<&str> = [
            (scaler_arch == *arch).then_some(SCALER_BIN),
            (router_arch == *arch).then_some(ROUTER_BIN),
        ]
        .into_iter()
        .flatten()
        .collect();
        progress.step(&format!(
            "building {} for {}",
            bins.join(", "),
            build::rust_target(*arch)
        ));
        build::build(workspace, *arch, toolchain, &bins, !progress.visible())?;
    }
    let spinner = progress.spinner("making the Lambda zip and the router image");
    let scaler = read_binary(workspace, scaler_arch, SCALER_BIN)?;
    let router = read_binary(workspace, router_arch, ROUTER_BIN)?;
    let revision = workspace.revision();
    let cache = cache::Cache::new(&workspace.target_dir);
    let zip = LambdaZip::build(&scaler, &cache)?;
    let meta = ImageMeta {
        architecture: oci_architecture(router_arch),
        revision: &revision,
        source: env!("CARGO_PKG_REPOSITORY"),
        version: env!("CARGO_PKG_VERSION"),
    };
    let image = Image::build(&router, &meta, &cache).map_err(|source| PackageError::Io {
        what: "build the image of",
        path: workspace
            .binary(router_arch, ROUTER_BIN)
            .display()
            .to_string(),
        source,
    })?;
    spinner.finish_and_clear();
    Ok(Artifacts {
        zip,
        scaler_architecture: scaler_arch,
        image,
        router_architecture: router_arch,
        revision,
    })
}

fn read_binary(
    workspace: &Workspace,
    arch: Architecture,
    bin: &str,
) -> Result<Vec<u8>, PackageError> {
    let path = workspace.binary(arch, bin);
    let bytes = std::fs::read(&path).map_err(|source| PackageError::Io {
        what: "read",
        path: path.display().to_string(),
        source,
    })?;
    elf::check_static(&bytes, arch).map_err(|source| PackageError::Binary {
        path: path.display().to_string(),
        source,
    })?;
    Ok(bytes)
}
