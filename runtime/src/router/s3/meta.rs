//! Object metadata in sidecar files.
//!
//! EFS has no extended attributes, so what S3 keeps beside an object's bytes (its ETag,
//! checksums, Content-Type and the other stored headers, `x-amz-meta-*`, its part sizes)
//! lives in a small JSON file under `.efs-router/meta/`, named after the object file's
//! identity (its NFS file id), not its key:
//!
//! - publishing an object is one rename: the new file brings its sidecar with it, so a
//!   reader never pairs new bytes with old metadata, even with several router tasks
//!   writing the same key;
//! - the sidecar records the file's size and modification time when it was written. A
//!   file changed since by another client (an EC2 mount, the scaler's Lambda) no longer
//!   matches, and is served as a file without a sidecar: no stale MD5 is ever claimed;
//! - a file written by another client has no sidecar and still lists and reads, with a
//!   derived ETag that cannot be mistaken for an MD5 (it ends in `-1`).
//!
//! Sidecars of files that are gone are removed with the object (delete, overwrite) and,
//! for what a crash or another client leaves, by the janitor.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hasher;
use std::sync::{Arc, Mutex};

use s3s::dto::{self, ETag, Timestamp, TimestampFormat};
use serde::{Deserialize, Serialize};

use super::names::RESERVED;
use crate::router::backend::{BackendError, Client, EntryKind, Stat};
use crate::router::path::FilePath;
use crate::router::pool::Target;
use crate::router::transfer::{self, Budget};

/// A sidecar is written by the router and small; anything larger is not one of ours.
const MAX_SIDECAR: usize = 64 << 10;

/// Sidecars kept in memory (a GET or HEAD of a cached object reads no sidecar).
const CACHE_ENTRIES: usize = 65_536;

/// What S3 stores beside an object's bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// The file this describes, as it was when written.
    pub size: u64,
    pub mtime: (u64, u32),
    /// `bucket/key`, for the janitor (is this file still that object?).
    pub path: String,
    /// The ETag's value without quotes: an MD5 in hex, with `-N` for N parts.
    pub etag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website_redirect_location: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Checksums::is_empty")]
    pub checksums: Checksums,
    /// Sizes of the parts of a multipart object, in order (GET `partNumber`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<u64>,
}

/// Checksums in S3's form (base64 of the big-endian digest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64nvme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// `FULL_OBJECT` or `COMPOSITE` (multipart checksums of checksums).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl Checksums {
    pub fn is_empty(&self) -> bool {
        self.crc32.is_none()
            && self.crc32c.is_none()
            && self.crc64nvme.is_none()
            && self.sha1.is_none()
            && self.sha256.is_none()
    }
}

impl ObjectMeta {
    /// What a file without a (matching) sidecar is served with.
    pub fn derived(stat: &Stat, path: &FilePath) -> Self {
        ObjectMeta {
            size: stat.size,
            mtime: stat.modified,
            path: path.as_str().to_string(),
            etag: derived_etag(stat),
            ..ObjectMeta::default()
        }
    }

    pub fn e_tag(&self) -> ETag {
        ETag::Strong(self.etag.clone())
    }

    /// The content type, S3's default when none was given.
    pub fn content_type(&self) -> String {
        self.content_type
            .clone()
            .unwrap_or_else(|| "binary/octet-stream".to_string())
    }

    pub fn expires(&self) -> Option<Timestamp> {
        self.expires
            .as_deref()
            .and_then(|s| Timestamp::parse(TimestampFormat::DateTime, s).ok())
    }

    pub fn user_metadata(&self) -> Option<dto::Metadata> {
        if self.user.is_empty() {
            None
        } else {
            Some(
                self.user
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
        }
    }

    /// A file's sidecar must match its size and modification time; a directory's (a
    /// folder object) only its id, as its time changes with every entry added.
    fn describes(&self, stat: &Stat) -> bool {
        stat.kind == EntryKind::Dir || (self.size == stat.size && self.mtime == stat.modified)
    }
}

/// A stable ETag for a file the router did not write: not an MD5 (it ends in `-1`, as
/// multipart ETags do, so tools that compare ETags with MD5s skip it), and it changes
/// whenever the file does.
pub fn derived_etag(stat: &Stat) -> String {
    let mut a = siphasher::sip::SipHasher13::new_with_keys(0x6566_732d_726f_7574, 1);
    let mut b = siphasher::sip::SipHasher13::new_with_keys(0x6566_732d_726f_7574, 2);
    for h in [&mut a, &mut b] {
        h.write_u64(stat.file_id);
        h.write_u64(stat.size);
        h.write_u64(stat.modified.0);
        h.write_u32(stat.modified.1);
    }
    format!("{:016x}{:016x}-1", a.finish(), b.finish())
}

/// The sidecar of the file with this id.
pub fn sidecar_path(file_id: u64) -> FilePath {
    // 256 directories: EFS and ganesha handle large directories, but a listing of one
    // (the janitor's) should not be a million entries long.
    FilePath::trusted(format!(
        "{RESERVED}/meta/{:02x}/{file_id:016x}",
        file_id & 0xff
    ))
}

/// Reads and writes sidecars, with a cache of the ones read.
#[derive(Debug, Default)]
pub struct MetaStore {
    cache: Mutex<HashMap<u64, Cached>>,
}

/// What the cache knows of a file id: its sidecar, or that the file as it was (size,
/// time) has none. The second is a few bytes: a listing of a bucket written by other
/// clients fills the cache with them.
#[derive(Debug, Clone)]
enum Cached {
    Sidecar(Arc<ObjectMeta>),
    None { size: u64, mtime: (u64, u32) },
}

impl MetaStore {
    /// The metadata of the file `stat` describes: its sidecar when it matches the file,
    /// derived otherwise.
    pub async fn load(
        &self,
        target: &Target,
        client: &Client,
        stat: &Stat,
        path: &FilePath,
    ) -> Result<Arc<ObjectMeta>, BackendError> {
        match self.cached(stat) {
            Some(Cached::Sidecar(meta)) => return Ok(meta),
            Some(Cached::None { .. }) => return Ok(Arc::new(ObjectMeta::derived(stat, path))),
            None => {}
        }
        let sidecar = sidecar_path(stat.file_id);
        match target.call(client.read_whole(&sidecar, MAX_SIDECAR)).await {
            Ok(data) => match serde_json::from_slice::<ObjectMeta>(&data) {
                Ok(meta) if meta.describes(stat) => {
                    let meta = Arc::new(meta);
                    self.remember(stat.file_id, meta.clone());
                    Ok(meta)
                }
                Ok(_) => Ok(Arc::new(ObjectMeta::derived(stat, path))),
                Err(e) => {
                    tracing::debug!(%sidecar, error = %e, "an unreadable sidecar is ignored");
                    Ok(Arc::new(ObjectMeta::derived(stat, path)))
                }
            },
            Err(BackendError::NotFound | BackendError::NotADirectory) => {
                // A file never gains a sidecar (a new object is a new file), so "none"
                // holds for as long as the file is unchanged; a directory can become a
                // folder object, so its answer is not kept.
                if stat.kind == EntryKind::File {
                    self.insert(
                        stat.file_id,
                        Cached::None {
                            size: stat.size,
                            mtime: stat.modified,
                        },
                    );
                }
                Ok(Arc::new(ObjectMeta::derived(stat, path)))
            }
            Err(e) => Err(e),
        }
    }

    fn cached(&self, stat: &Stat) -> Option<Cached> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(&stat.file_id)
            .filter(|c| match c {
                Cached::Sidecar(m) => m.describes(stat),
                Cached::None { size, mtime } => *size == stat.size && *mtime == stat.modified,
            })
            .cloned()
    }

    fn remember(&self, file_id: u64, meta: Arc<ObjectMeta>) {
        self.insert(file_id, Cached::Sidecar(meta));
    }

    fn insert(&self, file_id: u64, entry: Cached) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_ENTRIES {
            // Drop an arbitrary eighth: no per-entry bookkeeping on the hot path, and a
            // sidecar dropped by mistake costs one read.
            let drop: Vec<u64> = cache.keys().take(CACHE_ENTRIES / 8).copied().collect();
            for k in drop {
                cache.remove(&k);
            }
        }
        cache.insert(file_id, entry);
    }

    /// Writes the sidecar of a file not yet visible under its key (so no reader can look
    /// for it yet), durably, and caches it.
    pub async fn store(
        &self,
        budget: &Budget,
        target: &Arc<Target>,
        client: &Arc<Client>,
        file_id: u64,
        meta: ObjectMeta,
    ) -> Result<Arc<ObjectMeta>, BackendError> {
        let data = serde_json::to_vec(&meta)
            .map_err(|e| BackendError::Failed(format!("encoding a sidecar: {e}")))?;
        let sidecar = sidecar_path(file_id);
        let len = data.len() as u64;
        let body = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(
            bytes::Bytes::from(data),
        )]);
        let staged = transfer::stage(
            budget,
            target,
            client,
            &sidecar,
            Some(len),
            body,
            &mut |_| {},
            false,
        )
        .await
        .map_err(|e| match e {
            transfer::WriteError::Backend(e) => e,
            other => BackendError::Failed(other.to_string()),
        })?;
        drop(staged);
        let meta = Arc::new(meta);
        self.remember(file_id, meta.clone());
        Ok(meta)
    }

    /// Removes the sidecar of a file that is gone; a missing one is fine.
    pub async fn remove(&self, target: &Target, client: &Client, file_id: u64) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&file_id);
        transfer::discard(target, client, &sidecar_path(file_id)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(file_id: u64, size: u64, modified: (u64, u32)) -> Stat {
        Stat {
            kind: EntryKind::File,
            size,
            modified,
            file_id,
        }
    }

    #[test]
    fn derived_etags_change_with_the_file_and_are_not_md5s() {
        let a = derived_etag(&stat(7, 10, (1, 2)));
        assert!(a.ends_with("-1") && a.len() == 34, "{a}");
        assert_eq!(a, derived_etag(&stat(7, 10, (1, 2))));
        for other in [
            stat(8, 10, (1, 2)),
            stat(7, 11, (1, 2)),
            stat(7, 10, (1, 3)),
            stat(7, 10, (2, 2)),
        ] {
            assert_ne!(a, derived_etag(&other), "{other:?}");
        }
    }

    #[test]
    fn a_sidecar_describes_only_the_file_it_was_written_for() {
        let meta = ObjectMeta {
            size: 10,
            mtime: (5, 6),
            ..ObjectMeta::default()
        };
        assert!(meta.describes(&stat(1, 10, (5, 6))));
        assert!(
            !meta.describes(&stat(1, 11, (5, 6))),
            "grown by another client"
        );
        assert!(!meta.describes(&stat(1, 10, (5, 7))), "rewritten in place");
    }

    #[test]
    fn sidecars_spread_over_256_directories() {
        assert_eq!(
            sidecar_path(0x1234).as_str(),
            ".efs-router/meta/34/0000000000001234"
        );
    }

    #[test]
    fn the_cache_never_serves_a_changed_file() {
        let store = MetaStore::default();
        let meta = Arc::new(ObjectMeta {
            size: 3,
            mtime: (1, 1),
            etag: "x".into(),
            ..ObjectMeta::default()
        });
        store.remember(9, meta);
        assert!(matches!(
            store.cached(&stat(9, 3, (1, 1))),
            Some(Cached::Sidecar(_))
        ));
        assert!(store.cached(&stat(9, 4, (1, 1))).is_none());
        store.insert(
            10,
            Cached::None {
                size: 5,
                mtime: (2, 2),
            },
        );
        assert!(matches!(
            store.cached(&stat(10, 5, (2, 2))),
            Some(Cached::None { .. })
        ));
        assert!(
            store.cached(&stat(10, 5, (2, 3))).is_none(),
            "changed since"
        );
    }
}
