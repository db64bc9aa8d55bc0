//! A cache of the expensive artifact parts (the deflated zip, the gzipped image layer)
//! under the cargo target directory, keyed by a hash of everything they are made from:
//! the binary, the code that makes them, and the files they add. Making them is most of
//! a `package` when nothing changed (level-9 compression of ~25 MB); with the cache a
//! no-op package is the cargo check and the hashing.
//!
//! Entries are written through a temporary name, so a reader sees whole entries or
//! none; only the newest few per kind are kept.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::hex;

/// Entries kept per kind (one per recent build is enough to switch branches back and
/// forth without rebuilding).
const KEEP: usize = 4;

#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(target_dir: &std::path::Path) -> Cache {
        Cache {
            dir: target_dir.join("deployer-cache"),
        }
    }

    /// The bytes for `kind` and the inputs `parts`, made by `make` when not cached.
    /// A cache that cannot be read or written is only slower, never an error.
    pub fn get_or_make<E>(
        &self,
        kind: &str,
        parts: &[&[u8]],
        make: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Vec<u8>, E> {
        let mut hasher = Sha256::new();
        for part in parts {
            // Length-prefixed, so parts cannot run into each other.
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        let path = self.dir.join(format!("{kind}-{}", hex(&hasher.finalize())));
        if let Ok(bytes) = std::fs::read(&path) {
            return Ok(bytes);
        }
        let bytes = make()?;
        if crate::files::write_atomic(&path, &bytes).is_ok() {
            self.prune(kind);
        }
        Ok(bytes)
    }

    /// Removes all but the newest [`KEEP`] entries of `kind`.
    fn prune(&self, kind: &str) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let prefix = format!("{kind}-");
        let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        found.sort();
        let excess = found.len().saturating_sub(KEEP);
        for (_, path) in found.into_iter().take(excess) {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn made_once_per_input_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let mut made = 0;
        for _ in 0..2 {
            let bytes = cache
                .get_or_make::<std::io::Error>("zip", &[b"binary", b"v1"], || {
                    made += 1;
                    Ok(b"zipped".to_vec())
                })
                .unwrap();
            assert_eq!(bytes, b"zipped");
        }
        assert_eq!(made, 1, "the second call reads the cache");
        // Parts are length-prefixed: ("ab", "c") is not ("a", "bc").
        let other = cache
            .get_or_make::<std::io::Error>("zip", &[b"binar", b"yv1"], || Ok(b"other".to_vec()))
            .unwrap();
        assert_eq!(other, b"other");
        for i in 0..10u8 {
            cache
                .get_or_make::<std::io::Error>("zip", &[&[i]], || Ok(vec![i]))
                .unwrap();
        }
        let left = std::fs::read_dir(dir.path().join("deployer-cache"))
            .unwrap()
            .count();
        assert_eq!(left, KEEP);
    }
}
