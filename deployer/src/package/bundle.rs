//! The runtime artifacts a self-contained deployer carries: the scaler's Lambda zip and
//! the router's image for x86_64 and arm64, built from one revision, appended to the
//! deployer's own executable (as `deno compile` does). The executable stays a valid ELF
//! file (the loader ignores what follows it); a trailer at the very end (the payload's
//! length and a magic string) tells a carrying binary from a plain one.
//!
//! The payload is a tar of `bundle.json` and the artifacts, written with fixed times,
//! owners and order, so the same artifacts make the same bytes.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Artifacts;
use super::image::{Blob, CONFIG_MEDIA_TYPE, Image, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use super::lambda_zip::LambdaZip;
use crate::config::{Architecture, Environment};

const MAGIC: &[u8; 16] = b"EFSA-ARTIFACTS-1";
const TRAILER: usize = 8 + MAGIC.len();
const ARCHITECTURES: [Architecture; 2] = [Architecture::X86_64, Architecture::Arm64];

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BundleError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the artifacts this deployer carries are damaged: {0}")]
    #[diagnostic(help("download the deployer again and compare its checksum with the release's"))]
    Damaged(String),
}

/// What `bundle.json` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The deployer version and source revision the artifacts were built from.
    pub version: String,
    pub revision: String,
}

/// Artifacts for both architectures.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub manifest: Manifest,
    pub scalers: BTreeMap<&'static str, LambdaZip>,
    pub routers: BTreeMap<&'static str, Image>,
}

fn entries(bundle: &Bundle) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![(
        "bundle.json".to_string(),
        serde_json::to_vec_pretty(&bundle.manifest).unwrap_or_default(),
    )];
    for (arch, zip) in &bundle.scalers {
        out.push((format!("scaler-{arch}.zip"), zip.bytes.clone()));
    }
    for (arch, image) in &bundle.routers {
        out.push((
            format!("router-{arch}/manifest.json"),
            image.manifest.bytes.clone(),
        ));
        out.push((
            format!("router-{arch}/config.json"),
            image.config.bytes.clone(),
        ));
        out.push((
            format!("router-{arch}/layer.tar.gz"),
            image.layer.bytes.clone(),
        ));
    }
    out
}

impl Bundle {
    /// From the artifacts of each architecture, built from `revision`.
    pub fn new(revision: &str, built: Vec<Artifacts>) -> Bundle {
        let mut bundle = Bundle {
            manifest: Manifest {
                format: 1,
                version: env!("CARGO_PKG_VERSION").to_string(),
                revision: revision.to_string(),
            },
            scalers: BTreeMap::new(),
            routers: BTreeMap::new(),
        };
        for a in built {
            bundle.scalers.insert(a.scaler_architecture.name(), a.zip);
            bundle.routers.insert(a.router_architecture.name(), a.image);
        }
        bundle
    }

    /// The payload: a tar with fixed metadata, entries in a fixed order.
    pub fn payload(&self) -> std::io::Result<Vec<u8>> {
        let mut tar = tar::Builder::new(Vec::new());
        tar.mode(tar::HeaderMode::Deterministic);
        for (name, bytes) in entries(self) {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            header.set_cksum();
            tar.append_data(&mut header, &name, bytes.as_slice())?;
        }
        tar.into_inner()
    }

    pub fn from_payload(payload: &[u8]) -> Result<Bundle, BundleError> {
        let damaged = |what: String| BundleError::Damaged(what);
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut archive = tar::Archive::new(payload);
        for entry in archive.entries().map_err(|e| damaged(e.to_string()))? {
            let mut entry = entry.map_err(|e| damaged(e.to_string()))?;
            let name = entry
                .path()
                .map_err(|e| damaged(e.to_string()))?
                .to_string_lossy()
                .into_owned();
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| damaged(e.to_string()))?;
            files.insert(name, bytes);
        }
        let take = |files: &mut BTreeMap<String, Vec<u8>>, name: &str| {
            files
                .remove(name)
                .ok_or_else(|| damaged(format!("{name} is missing")))
        };
        let manifest: Manifest = serde_json::from_slice(&take(&mut files, "bundle.json")?)
            .map_err(|e| damaged(format!("bundle.json: {e}")))?;
        if manifest.format != 1 {
            return Err(damaged(format!(
                "format {} is not known to this deployer",
                manifest.format
            )));
        }
        let mut bundle = Bundle {
            manifest,
            scalers: BTreeMap::new(),
            routers: BTreeMap::new(),
        };
        for arch in ARCHITECTURES.map(Architecture::name) {
            let zip = take(&mut files, &format!("scaler-{arch}.zip"))?;
            bundle.scalers.insert(arch, LambdaZip::from_bytes(zip));
            let image = Image {
                manifest: Blob::new(
                    MANIFEST_MEDIA_TYPE,
                    take(&mut files, &format!("router-{arch}/manifest.json"))?,
                ),
                config: Blob::new(
                    CONFIG_MEDIA_TYPE,
                    take(&mut files, &format!("router-{arch}/config.json"))?,
                ),
                layer: Blob::new(
                    LAYER_MEDIA_TYPE,
                    take(&mut files, &format!("router-{arch}/layer.tar.gz"))?,
                ),
            };
            // The manifest names its config and layer by digest: they must be those.
            let named = String::from_utf8_lossy(&image.manifest.bytes).into_owned();
            if !named.contains(&image.config.digest) || !named.contains(&image.layer.digest) {
                return Err(damaged(format!(
                    "the {arch} router image's blobs are not those its manifest names"
                )));
            }
            bundle.routers.insert(arch, image);
        }
        Ok(bundle)
    }

    /// `executable` with this bundle appended: a self-contained deployer.
    pub fn attach(&self, executable: &[u8]) -> std::io::Result<Vec<u8>> {
        let payload = self.payload()?;
        let plain = strip(executable);
        let mut out = Vec::with_capacity(plain.len() + payload.len() + TRAILER);
        out.extend_from_slice(plain);
        out.extend_from_slice(&payload);
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(MAGIC);
        Ok(out)
    }

    /// The artifacts for `env`'s architectures.
    pub fn artifacts(&self, env: &Environment) -> Option<Artifacts> {
        let scaler_architecture = env.config.scaler.architecture;
        let router_architecture = env.config.service.architecture;
        Some(Artifacts {
            zip: self.scalers.get(scaler_architecture.name())?.clone(),
            scaler_architecture,
            image: self.routers.get(router_architecture.name())?.clone(),
            router_architecture,
            revision: self.manifest.revision.clone(),
        })
    }

    /// One line per artifact: what it is and its digest (`deployer --version`).
    pub fn digests(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .scalers
            .iter()
            .map(|(arch, zip)| format!("scaler {arch} zip sha256:{}", zip.sha256()))
            .collect();
        out.extend(
            self.routers
                .iter()
                .map(|(arch, image)| format!("router {arch} image {}", image.manifest.digest)),
        );
        out
    }
}

/// The executable without a bundle it may carry already.
fn strip(executable: &[u8]) -> &[u8] {
    match payload_range(
        executable.len() as u64,
        &executable[executable.len().saturating_sub(TRAILER)..],
    ) {
        Some((start, _)) => &executable[..start as usize],
        None => executable,
    }
}

/// Where the payload sits in a file of `len` bytes whose last bytes are `tail`.
fn payload_range(len: u64, tail: &[u8]) -> Option<(u64, u64)> {
    if tail.len() != TRAILER || &tail[8..] != MAGIC {
        return None;
    }
    let size = u64::from_le_bytes(tail[..8].try_into().ok()?);
    let start = len.checked_sub(TRAILER as u64)?.checked_sub(size)?;
    Some((start, size))
}

/// The bundle the file at `path` carries, if it carries one.
pub fn carried_by(path: &Path) -> Result<Option<Bundle>, BundleError> {
    let io = |source| BundleError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len < TRAILER as u64 {
        return Ok(None);
    }
    let mut tail = [0u8; TRAILER];
    file.seek(SeekFrom::End(-(TRAILER as i64))).map_err(io)?;
    file.read_exact(&mut tail).map_err(io)?;
    let Some((start, size)) = payload_range(len, &tail) else {
        return Ok(None);
    };
    let mut payload =
        vec![0u8; usize::try_from(size).map_err(|_| BundleError::Damaged("too large".into()))?];
    file.seek(SeekFrom::Start(start)).map_err(io)?;
    file.read_exact(&mut payload).map_err(io)?;
    Bundle::from_payload(&payload).map(Some)
}

/// The bundle this deployer carries, if any.
pub fn carried() -> Result<Option<Bundle>, BundleError> {
    let exe = std::env::current_exe().map_err(|source| BundleError::Io {
        path: "the running deployer".into(),
        source,
    })?;
    carried_by(&exe)
}

/// `deployer --version`: the version, and the revision and digests of the artifacts this
/// binary carries (or where its artifacts come from when it carries none).
pub fn version_text() -> String {
    let version = env!("CARGO_PKG_VERSION");
    match carried() {
        Ok(Some(bundle)) => format!(
            "{version} (revision {})\ncarries:\n  {}",
            bundle.manifest.revision,
            bundle.digests().join("\n  ")
        ),
        Ok(None) => format!(
            "{version}\ncarries no runtime artifacts: `package` and `up` build them from the source tree"
        ),
        Err(e) => format!("{version}\n{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bundle {
        let image = |arch: &str| {
            let layer = Blob::new(LAYER_MEDIA_TYPE, format!("layer {arch}").into_bytes());
            let config = Blob::new(CONFIG_MEDIA_TYPE, format!("config {arch}").into_bytes());
            let manifest = Blob::new(
                MANIFEST_MEDIA_TYPE,
                format!(
                    "{{\"config\":\"{}\",\"layers\":[\"{}\"]}}",
                    config.digest, layer.digest
                )
                .into_bytes(),
            );
            Image {
                layer,
                config,
                manifest,
            }
        };
        Bundle {
            manifest: Manifest {
                format: 1,
                version: "0.1.0".into(),
                revision: "abc".into(),
            },
            scalers: ARCHITECTURES
                .map(|a| {
                    (
                        a.name(),
                        LambdaZip::from_bytes(format!("zip {}", a.name()).into_bytes()),
                    )
                })
                .into_iter()
                .collect(),
            routers: ARCHITECTURES
                .map(|a| (a.name(), image(a.name())))
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn a_bundle_travels_on_an_executable_and_comes_back_the_same() {
        let exe = b"\x7fELF pretend executable".to_vec();
        let bundle = sample();
        let carrying = bundle.attach(&exe).unwrap();
        assert!(carrying.starts_with(&exe));
        assert_eq!(bundle.attach(&exe).unwrap(), carrying, "deterministic");
        // Attaching again replaces the bundle rather than stacking a second.
        assert_eq!(bundle.attach(&carrying).unwrap(), carrying);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deployer");
        std::fs::write(&path, &carrying).unwrap();
        let back = carried_by(&path).unwrap().unwrap();
        assert_eq!(back.manifest, bundle.manifest);
        assert_eq!(back.digests(), bundle.digests());
        assert_eq!(back.routers["arm64"].layer.bytes, b"layer arm64");
        std::fs::write(&path, &exe).unwrap();
        assert!(
            carried_by(&path).unwrap().is_none(),
            "a plain executable carries nothing"
        );
    }

    #[test]
    fn a_damaged_bundle_is_an_error_not_other_artifacts() {
        let mut bundle = sample();
        let other = Blob::new(LAYER_MEDIA_TYPE, b"another layer".to_vec());
        bundle.routers.get_mut("x86_64").unwrap().layer = other;
        let payload = bundle.payload().unwrap();
        let error = Bundle::from_payload(&payload).unwrap_err().to_string();
        assert!(error.contains("not those its manifest names"), "{error}");
        let error = Bundle::from_payload(b"not a tar").unwrap_err().to_string();
        assert!(error.contains("damaged"), "{error}");
    }
}
