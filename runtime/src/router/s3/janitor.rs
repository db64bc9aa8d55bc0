//! Removes what uploads leave behind when a task stops, a target fails or a client
//! walks away: temporary files, multipart uploads past their age, and sidecars whose
//! file is gone. Every router task runs it; removals are idempotent, so tasks sharing a
//! file system do not get in each other's way, and nothing young is touched (an upload
//! in flight writes its temporary file at least every 30 s, its idle limit).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Store;
use super::meta::{ObjectMeta, sidecar_path};
use super::multipart;
use super::names::RESERVED;
use crate::router::backend::{BackendError, Client, DirEntry, EntryKind};
use crate::router::path::FilePath;
use crate::router::pool::Target;
use crate::router::transfer;

/// A temporary file or sidecar younger than this is someone's work in progress.
const GRACE: Duration = Duration::from_secs(3600);

/// What one pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub temporary: usize,
    pub uploads: usize,
    pub sidecars: usize,
}

fn age(modified: (u64, u32), now: u64) -> Duration {
    Duration::from_secs(now.saturating_sub(modified.0))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A directory's entries; none when it does not exist (nothing was ever put there).
async fn list_all(
    target: &Target,
    client: &Client,
    dir: &FilePath,
) -> Result<Vec<DirEntry>, BackendError> {
    match target.call(client.list_all(dir)).await {
        Err(BackendError::NotFound) => Ok(Vec::new()),
        other => other,
    }
}

/// One pass. `shard` picks which 1/256 of the sidecars is checked, so a pass costs a
/// bounded number of calls however many objects there are.
pub async fn sweep(store: &Store, shard: u8) -> Result<Swept, BackendError> {
    let root = FilePath::trusted(RESERVED.to_string());
    let Some((target, client)) = store.pool.ranked(root.as_str()).into_iter().next() else {
        return Err(BackendError::Unavailable(
            "no mount target is available".into(),
        ));
    };
    let now = now();
    let mut swept = Swept::default();

    let tmp = root.join("tmp");
    for e in list_all(&target, &client, &tmp).await? {
        if e.stat.kind == EntryKind::File && age(e.stat.modified, now) > GRACE {
            transfer::discard(&target, &client, &tmp.join(&e.name)).await;
            swept.temporary += 1;
        }
    }

    let uploads = root.join("uploads");
    for bucket in list_all(&target, &client, &uploads).await? {
        if bucket.stat.kind != EntryKind::Dir {
            continue;
        }
        let Ok(list) = multipart::uploads(store, &target, &client, &bucket.name).await else {
            continue;
        };
        for (id, manifest) in list {
            if Duration::from_secs(now.saturating_sub(manifest.initiated))
                > store.limits.upload_max_age
            {
                let dir = multipart::uploads_dir(&bucket.name).join(&id);
                if multipart::remove_dir(store, &target, &client, &dir)
                    .await
                    .is_ok()
                {
                    tracing::info!(bucket = %bucket.name, key = %manifest.key, upload = %id, "removed a multipart upload past its age");
                    swept.uploads += 1;
                }
            }
        }
    }

    let shard_dir = root.join("meta").join(&format!("{shard:02x}"));
    for e in list_all(&target, &client, &shard_dir).await? {
        if e.stat.kind != EntryKind::File || age(e.stat.modified, now) <= GRACE {
            continue;
        }
        let Ok(file_id) = u64::from_str_radix(&e.name, 16) else {
            continue;
        };
        if orphaned(&target, &client, file_id).await {
            store.meta.remove(&target, &client, file_id).await;
            swept.sidecars += 1;
        }
    }
    Ok(swept)
}

/// Whether a sidecar's file is gone (or is another file now). Unsure means no.
async fn orphaned(target: &Target, client: &Client, file_id: u64) -> bool {
    let Ok(data) = target
        .call(client.read_whole(&sidecar_path(file_id), 64 << 10))
        .await
    else {
        return false;
    };
    let Ok(meta) = serde_json::from_slice::<ObjectMeta>(&data) else {
        return false;
    };
    let Ok(path) = FilePath::parse(&meta.path) else {
        return false;
    };
    match target.call(client.stat(&path)).await {
        Ok(s) => s.file_id != file_id,
        Err(BackendError::NotFound | BackendError::NotADirectory) => true,
        Err(_) => false,
    }
}

/// Runs a pass every `every`, the first shortly after start.
pub fn spawn(store: Store, every: Duration) {
    tokio::spawn(async move {
        let mut shard = rand::random::<u8>();
        tokio::time::sleep(Duration::from_secs(30).min(every)).await;
        loop {
            match sweep(&store, shard).await {
                Ok(s) if s != Swept::default() => tracing::info!(
                    temporary = s.temporary,
                    uploads = s.uploads,
                    sidecars = s.sidecars,
                    "removed what interrupted uploads left"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "the clean-up pass failed; next pass later"),
            }
            shard = shard.wrapping_add(1);
            tokio::time::sleep(every).await;
        }
    });
}
