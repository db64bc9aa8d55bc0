//! The scaler's Lambda artifact: a zip holding one executable, `bootstrap`, for the
//! `provided.al2023` runtime.
//!
//! The same binary must always give the same bytes, so the upload can be skipped by
//! content hash and the stack only changes when the code does: one entry, a fixed time
//! (1980-01-01, the zip epoch), fixed permissions, a fixed compression level.

use std::io::{Cursor, Write};

use base64::Engine;
use sha2::{Digest, Sha256};

use super::cache::Cache;
use super::hex;

/// A built Lambda zip and its content hash.
#[derive(Debug, Clone)]
pub struct LambdaZip {
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`.
    pub digest: [u8; 32],
}

impl LambdaZip {
    /// Zips `binary` as `bootstrap` (mode 0755: Lambda executes it as is).
    pub fn build(binary: &[u8], cache: &Cache) -> Result<Self, zip::result::ZipError> {
        let bytes = cache.get_or_make("zip", &[binary, include_bytes!("lambda_zip.rs")], || {
            Self::zip(binary)
        })?;
        let digest = Sha256::digest(&bytes).into();
        Ok(LambdaZip { bytes, digest })
    }

    /// A zip built elsewhere (the artifacts a self-contained deployer carries).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        let digest = Sha256::digest(&bytes).into();
        LambdaZip { bytes, digest }
    }

    fn zip(binary: &[u8]) -> Result<Vec<u8>, zip::result::ZipError> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(9))
            .unix_permissions(0o755)
            .last_modified_time(zip::DateTime::default());
        zip.start_file("bootstrap", options)?;
        zip.write_all(binary)?;
        Ok(zip.finish()?.into_inner())
    }

    /// The digest in lower-case hex.
    pub fn sha256(&self) -> String {
        hex(&self.digest)
    }

    /// The digest in base64, as S3 checks it (`x-amz-checksum-sha256`).
    pub fn sha256_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.digest)
    }

    /// The object key under which the zip is stored: its hash, so a key never changes
    /// meaning and an existing key means the upload is already done.
    pub fn key(&self) -> String {
        format!("scaler/{}.zip", self.sha256())
    }
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
    fn the_same_binary_gives_the_same_bytes() {
        let binary = b"\x7fELF not really, but any bytes will do".repeat(1000);
        let a = LambdaZip::build(&binary, &fresh_cache().0).unwrap();
        let b = LambdaZip::build(&binary, &fresh_cache().0).unwrap();
        assert_eq!(a.bytes, b.bytes);
        assert_eq!(a.digest, b.digest);
        assert_eq!(a.key(), format!("scaler/{}.zip", a.sha256()));
        assert_eq!(a.sha256(), hex(&Sha256::digest(&a.bytes)));
        let other = LambdaZip::build(b"another binary", &fresh_cache().0).unwrap();
        assert_ne!(other.digest, a.digest);
    }

    #[test]
    fn it_holds_one_executable_bootstrap() {
        let binary = b"#!/bin/true\n".repeat(100);
        let zip = LambdaZip::build(&binary, &fresh_cache().0).unwrap();
        let mut archive = zip::ZipArchive::new(Cursor::new(zip.bytes)).unwrap();
        assert_eq!(archive.len(), 1);
        let mut entry = archive.by_index(0).unwrap();
        assert_eq!(entry.name().unwrap(), "bootstrap");
        assert_eq!(entry.unix_mode().map(|m| m & 0o777), Some(0o755));
        assert_eq!(entry.compression(), zip::CompressionMethod::Deflated);
        let mut contents = Vec::new();
        entry.read_to_end(&mut contents).unwrap();
        assert_eq!(contents, binary);
    }
}
