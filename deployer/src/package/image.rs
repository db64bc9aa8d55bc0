//! The router's container image, built without a container engine: one layer holding
//! the static binary, CA certificates and a non-root user, an OCI image config and an
//! OCI manifest.
//!
//! Reproducible: the same binary and revision give the same digest. Every tar header is
//! written explicitly (mtime 0, owner and mode fixed, entries in path order), gzip gets
//! no timestamp or name, and the config's dates are the Unix epoch (as `ko` does).

use std::path::Path;

use flate2::{Compression, GzBuilder};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::cache::Cache;
use super::hex;

/// The image contract with the task definition (templates/partials/service.yaml.hbs).
pub const BINARY_PATH: &str = "usr/local/bin/efs-router";
/// The distroless convention: a fixed uid that exists in the image's /etc/passwd.
pub const USER_ID: u64 = 65532;

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const EPOCH: &str = "1970-01-01T00:00:00Z";

/// Content-addressed bytes: a layer, a config or a manifest.
#[derive(Debug, Clone)]
pub struct Blob {
    pub media_type: &'static str,
    /// `sha256:` and 64 hex digits.
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &'static str, bytes: Vec<u8>) -> Self {
        Blob {
            media_type,
            digest: format!("sha256:{}", hex(&Sha256::digest(&bytes))),
            bytes,
        }
    }

    fn descriptor(&self) -> serde_json::Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len() })
    }

    /// The hex part of the digest.
    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }
}

/// What goes into the image besides the binary.
#[derive(Debug, Clone)]
pub struct ImageMeta<'a> {
    /// OCI architecture name: `amd64` or `arm64`.
    pub architecture: &'a str,
    /// Source revision (a git commit), recorded as a label.
    pub revision: &'a str,
    /// Where the source lives, recorded as a label.
    pub source: &'a str,
    pub version: &'a str,
}

/// A built image: its single layer, config and manifest.
#[derive(Debug, Clone)]
pub struct Image {
    pub layer: Blob,
    pub config: Blob,
    pub manifest: Blob,
}

impl Image {
    pub fn build(binary: &[u8], meta: &ImageMeta<'_>, cache: &Cache) -> std::io::Result<Image> {
        // The layer (binary, CA bundle, users) depends on the binary and this file's code
        // only; the cached value is the tar's digest (the diff id) and the gzip.
        let certificates = ca_bundle();
        let cached = cache.get_or_make(
            "layer",
            &[binary, certificates.as_bytes(), include_bytes!("image.rs")],
            || {
                let tar = layer_tar(binary, &certificates)?;
                let mut gz = GzBuilder::new()
                    .mtime(0)
                    .operating_system(255)
                    .write(Sha256::digest(&tar).to_vec(), Compression::best());
                std::io::Write::write_all(&mut gz, &tar)?;
                gz.finish()
            },
        )?;
        if cached.len() < 32 {
            return Err(std::io::Error::other("a damaged layer cache entry"));
        }
        let (tar_digest, gz) = cached.split_at(32);
        let diff_id = format!("sha256:{}", hex(tar_digest));
        let layer = Blob::new(LAYER_MEDIA_TYPE, gz.to_vec());

        let config = json!({
            "created": EPOCH,
            "architecture": meta.architecture,
            "os": "linux",
            "config": {
                "User": format!("{USER_ID}:{USER_ID}"),
                "Entrypoint": [format!("/{BINARY_PATH}")],
                "Cmd": ["serve"],
                "Env": [
                    "PATH=/usr/local/bin",
                    "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
                ],
                "WorkingDir": "/",
                "Labels": {
                    "org.opencontainers.image.title": "efs-router",
                    "org.opencontainers.image.description": "EFS mount-target router: serves an EFS file system over HTTP, spreading paths over every mount target",
                    "org.opencontainers.image.revision": meta.revision,
                    "org.opencontainers.image.source": meta.source,
                    "org.opencontainers.image.version": meta.version,
                    "org.opencontainers.image.licenses": "Apache-2.0",
                },
            },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [{ "created": EPOCH, "created_by": "deployer package" }],
        });
        let config = Blob::new(CONFIG_MEDIA_TYPE, to_json(&config));
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
        });
        let manifest = Blob::new(MANIFEST_MEDIA_TYPE, to_json(&manifest));
        Ok(Image {
            layer,
            config,
            manifest,
        })
    }

    /// The blobs the manifest names.
    pub fn blobs(&self) -> [&Blob; 2] {
        [&self.layer, &self.config]
    }

    /// Bytes a registry stores for the image (what `docker pull` downloads).
    pub fn size(&self) -> usize {
        self.layer.bytes.len() + self.config.bytes.len() + self.manifest.bytes.len()
    }

    /// Writes an OCI image layout (what `skopeo copy oci:DIR` and `umoci` read), with
    /// the manifest named `tag`.
    pub fn write_layout(&self, dir: &Path, tag: &str) -> std::io::Result<()> {
        let blobs = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs)?;
        for blob in [&self.layer, &self.config, &self.manifest] {
            std::fs::write(blobs.join(blob.hex()), &blob.bytes)?;
        }
        std::fs::write(
            dir.join("oci-layout"),
            to_json(&json!({ "imageLayoutVersion": "1.0.0" })),
        )?;
        let mut descriptor = self.manifest.descriptor();
        descriptor["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [descriptor],
        });
        std::fs::write(dir.join("index.json"), to_json(&index))
    }
}

fn to_json(value: &serde_json::Value) -> Vec<u8> {
    // A `Value` of strings, numbers, arrays and objects always serialises.
    serde_json::to_vec(value).unwrap_or_else(|e| unreachable!("JSON value serialises: {e}"))
}

/// The layer's file system, as an uncompressed tar.
fn layer_tar(binary: &[u8], certificates: &str) -> std::io::Result<Vec<u8>> {
    let passwd = format!(
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{USER_ID}:{USER_ID}:nonroot:/home/nonroot:/sbin/nologin\n"
    );
    let group = format!("root:x:0:\nnonroot:x:{USER_ID}:\n");
    // (path, contents or None for a directory, mode, owner)
    let mut entries: Vec<(&str, Option<&[u8]>, u32, u64)> = vec![
        ("etc/", None, 0o755, 0),
        ("etc/group", Some(group.as_bytes()), 0o644, 0),
        ("etc/passwd", Some(passwd.as_bytes()), 0o644, 0),
        ("etc/ssl/", None, 0o755, 0),
        ("etc/ssl/certs/", None, 0o755, 0),
        (
            "etc/ssl/certs/ca-certificates.crt",
            Some(certificates.as_bytes()),
            0o644,
            0,
        ),
        ("home/", None, 0o755, 0),
        ("home/nonroot/", None, 0o700, USER_ID),
        ("tmp/", None, 0o1777, 0),
        ("usr/", None, 0o755, 0),
        ("usr/local/", None, 0o755, 0),
        ("usr/local/bin/", None, 0o755, 0),
        (BINARY_PATH, Some(binary), 0o755, 0),
    ];
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let mut tar = tar::Builder::new(Vec::new());
    for (path, contents, mode, owner) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mode(mode);
        header.set_uid(owner);
        header.set_gid(owner);
        header.set_mtime(0);
        match contents {
            Some(data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(data.len() as u64);
                tar.append_data(&mut header, path, data)?;
            }
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                tar.append_data(&mut header, path, std::io::empty())?;
            }
        }
    }
    tar.into_inner()
}

/// Mozilla's root certificates (through `webpki-root-certs`, pinned by Cargo.lock) as a
/// PEM bundle: the static binary's TLS stack reads `SSL_CERT_FILE`, and the image has
/// no distribution to supply one. Taking them from the build machine would make the
/// image differ between machines.
fn ca_bundle() -> String {
    use base64::Engine;
    let mut pem = String::new();
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        let encoded = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in encoded.as_bytes().chunks(64) {
            // Base64 output is ASCII.
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// A cache in a new temporary directory, so each build makes its artifact anew.
    fn fresh_cache() -> (Cache, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (Cache::new(dir.path()), dir)
    }

    #[test]
    fn a_cached_layer_gives_the_same_image() {
        let (cache, dir) = fresh_cache();
        let made = Image::build(b"the router", &meta(), &cache).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("deployer-cache"))
                .unwrap()
                .count(),
            1
        );
        let cached = Image::build(b"the router", &meta(), &cache).unwrap();
        assert_eq!(made.manifest.digest, cached.manifest.digest);
        assert_eq!(made.layer.bytes, cached.layer.bytes);
        assert_eq!(made.config.bytes, cached.config.bytes);
    }

    fn meta() -> ImageMeta<'static> {
        ImageMeta {
            architecture: "arm64",
            revision: "0123456789abcdef0123456789abcdef01234567",
            source: "https://github.com/efs-autoscaler/efs-autoscaler",
            version: "0.1.0",
        }
    }

    #[test]
    fn the_same_binary_gives_the_same_digest() {
        let a = Image::build(b"binary one", &meta(), &fresh_cache().0).unwrap();
        let b = Image::build(b"binary one", &meta(), &fresh_cache().0).unwrap();
        assert_eq!(a.manifest.digest, b.manifest.digest);
        assert_eq!(a.layer.bytes, b.layer.bytes);
        let c = Image::build(b"binary two", &meta(), &fresh_cache().0).unwrap();
        assert_ne!(a.manifest.digest, c.manifest.digest);
        assert_ne!(a.layer.digest, c.layer.digest);
    }

    #[test]
    fn config_names_entrypoint_user_architecture_and_revision() {
        let image = Image::build(b"x", &meta(), &fresh_cache().0).unwrap();
        let config: serde_json::Value = serde_json::from_slice(&image.config.bytes).unwrap();
        assert_eq!(config["architecture"], "arm64");
        assert_eq!(config["os"], "linux");
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(
            config["config"]["Entrypoint"],
            json!(["/usr/local/bin/efs-router"])
        );
        assert_eq!(
            config["config"]["Labels"]["org.opencontainers.image.revision"],
            meta().revision
        );
        // The config's diff id is the hash of the uncompressed layer.
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&image.layer.bytes[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            format!("sha256:{}", hex(&Sha256::digest(&tar)))
        );
        let manifest: serde_json::Value = serde_json::from_slice(&image.manifest.bytes).unwrap();
        assert_eq!(manifest["config"]["digest"], image.config.digest);
        assert_eq!(manifest["layers"][0]["digest"], image.layer.digest);
        assert_eq!(manifest["layers"][0]["size"], image.layer.bytes.len());
    }

    #[test]
    fn layer_holds_the_binary_certificates_and_user() {
        let image = Image::build(b"the router", &meta(), &fresh_cache().0).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&image.layer.bytes[..]));
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let header = entry.header();
            assert_eq!(header.mtime().unwrap(), 0, "{path}");
            let mode = header.mode().unwrap();
            let uid = header.uid().unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            match path.as_str() {
                "usr/local/bin/efs-router" => {
                    assert_eq!(data, b"the router");
                    assert_eq!(mode, 0o755);
                    assert_eq!(uid, 0, "the binary must not be writable by the user");
                }
                "etc/passwd" => {
                    assert!(
                        String::from_utf8(data)
                            .unwrap()
                            .contains("nonroot:x:65532:65532:")
                    )
                }
                "etc/ssl/certs/ca-certificates.crt" => {
                    let pem = String::from_utf8(data).unwrap();
                    assert!(pem.matches("-----BEGIN CERTIFICATE-----").count() > 100);
                }
                _ => {}
            }
            seen.push(path);
        }
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted, "entries must be in path order");
        assert!(seen.contains(&"tmp/".to_string()));
    }

    #[test]
    fn layout_is_readable_as_an_oci_layout() {
        let dir = tempfile::tempdir().unwrap();
        let image = Image::build(b"x", &meta(), &fresh_cache().0).unwrap();
        image.write_layout(dir.path(), "test").unwrap();
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"][0]["digest"], image.manifest.digest);
        for blob in [&image.layer, &image.config, &image.manifest] {
            let stored = std::fs::read(dir.path().join("blobs/sha256").join(blob.hex())).unwrap();
            assert_eq!(stored, blob.bytes);
        }
    }
}
