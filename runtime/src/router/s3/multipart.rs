//! Multipart uploads, staged under `.efs-router/uploads/BUCKET/UPLOAD_ID/`:
//!
//! - `upload`: the upload's manifest (its key, when it began, the metadata it was
//!   created with);
//! - `part-NNNNN`: each part's bytes, published by a rename like an object, with its
//!   ETag and checksums in a sidecar keyed by the part file's id (a part uploaded again
//!   replaces the old one whole).
//!
//! Complete checks the list (ascending, each part present with its ETag, every part but
//! the last at least 5 MiB), copies the parts in order into one new file on the same
//! file system (NFSv4.1 has no server-side copy; the bytes never reach the client), and
//! publishes it atomically like a PUT. The ETag is S3's: the MD5 of the parts' MD5s,
//! then `-N`. Uploads are routed by their final key, so every part lands on the target
//! that will publish it; the state is on the file system, so any router task can take
//! the next request. Uploads older than the configured age are removed by the janitor.

use std::sync::Arc;

use futures_util::StreamExt;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Result};
use serde::{Deserialize, Serialize};

use super::digest::{self, Expected};
use super::meta::ObjectMeta;
use super::names::{self, ObjectPath, RESERVED};
use super::objects::{self, CopyFrom, Replace, Upload};
use super::{Store, backend_error, no_such_bucket, owner, timestamp};
use crate::router::backend::{BackendError, Client, EntryKind, Stat};
use crate::router::path::FilePath;
use crate::router::pool::Target;
use crate::router::transfer;

/// S3's limits on part numbers and on parts listed per page.
const MAX_PART_NUMBER: i32 = 10_000;
const MAX_PARTS_PAGE: usize = 1000;
const MAX_UPLOADS_PAGE: usize = 1000;

/// The largest multipart object (S3: 5 TiB).
pub const MAX_MULTIPART_OBJECT: u64 = 5 << 40;

/// What CreateMultipartUpload records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub bucket: String,
    pub key: String,
    /// Seconds since the epoch.
    pub initiated: u64,
    pub meta: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<String>,
}

/// The directory of all uploads into a bucket.
pub fn uploads_dir(bucket: &str) -> FilePath {
    FilePath::trusted(format!("{RESERVED}/uploads/{bucket}"))
}

fn upload_dir(bucket: &str, id: &str) -> FilePath {
    uploads_dir(bucket).join(id)
}

fn part_path(dir: &FilePath, n: i32) -> FilePath {
    dir.join(&format!("part-{n:05}"))
}

fn part_number(name: &str) -> Option<i32> {
    name.strip_prefix("part-")?.parse().ok()
}

fn no_such_upload(id: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NoSuchUpload,
        format!(
            "The specified multipart upload does not exist: {id}. It may have been aborted or completed."
        ),
    )
}

/// Upload ids are ours: 32 hex digits. Anything else names no upload (and never a
/// path).
fn check_id(id: &str) -> S3Result<()> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(no_such_upload(id))
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn read_manifest(
    store: &Store,
    target: &Target,
    client: &Client,
    bucket: &str,
    id: &str,
) -> S3Result<Manifest> {
    check_id(id)?;
    let path = upload_dir(bucket, id).join("upload");
    match target.call(client.read_whole(&path, 64 << 10)).await {
        Ok(data) => serde_json::from_slice(&data).map_err(|e| {
            S3Error::with_message(
                S3ErrorCode::InternalError,
                format!("upload {id}: its manifest cannot be read: {e}"),
            )
        }),
        Err(BackendError::NotFound | BackendError::NotADirectory) => {
            Err(store.missing(bucket, no_such_upload(id)).await)
        }
        Err(e) => Err(backend_error(&e, id)),
    }
}

/// The upload `id` for `key`, with the target its parts go to.
async fn open(
    store: &Store,
    bucket: &str,
    key: &str,
    id: &str,
) -> S3Result<(ObjectPath, Manifest, Arc<Target>, Arc<Client>)> {
    let o = names::object(bucket, key)?;
    let (target, client) = store.writer(&o.path)?;
    let manifest = read_manifest(store, &target, &client, bucket, id).await?;
    if manifest.key != key {
        return Err(no_such_upload(id));
    }
    Ok((o, manifest, target, client))
}

pub async fn create(
    store: &Store,
    input: CreateMultipartUploadInput,
) -> S3Result<CreateMultipartUploadOutput> {
    let o = names::object(&input.bucket, &input.key)?;
    if o.folder {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            format!(
                "{:?} ends in `/`, which names a directory here: a folder object holds no data",
                o.key
            ),
        ));
    }
    if !store.bucket_exists(&input.bucket).await? {
        return Err(no_such_bucket(&input.bucket));
    }
    let algorithm = match &input.checksum_algorithm {
        Some(a) => Some(
            digest::Algorithm::parse(a.as_str())
                .map(|_| a.as_str().to_ascii_uppercase())
                .ok_or_else(|| {
                    S3Error::with_message(
                        S3ErrorCode::InvalidArgument,
                        format!("checksum algorithm {:?} is not supported", a.as_str()),
                    )
                })?,
        ),
        None => None,
    };
    let meta = requested_meta!(&o, input)?;
    let id = format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    );
    let manifest = Manifest {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        initiated: now_secs(),
        meta,
        checksum_algorithm: algorithm.clone(),
    };
    let data = serde_json::to_vec(&manifest).map_err(|e| {
        S3Error::with_message(
            S3ErrorCode::InternalError,
            format!("encoding the manifest: {e}"),
        )
    })?;
    let (target, client) = store.writer(&o.path)?;
    let len = data.len() as u64;
    let body =
        futures_util::stream::iter([Ok::<_, std::convert::Infallible>(bytes::Bytes::from(data))]);
    let path = upload_dir(&input.bucket, &id).join("upload");
    transfer::stage(
        &store.budget,
        &target,
        &client,
        &path,
        Some(len),
        body,
        &mut |_| {},
        false,
    )
    .await
    .map_err(|e| match e {
        transfer::WriteError::Backend(e) => {
            store.failed(&target, &client, &e);
            backend_error(&e, &input.key)
        }
        other => S3Error::with_message(S3ErrorCode::InternalError, other.to_string()),
    })?;
    Ok(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(id),
        checksum_algorithm: algorithm.map(ChecksumAlgorithm::from),
        ..CreateMultipartUploadOutput::default()
    })
}

fn check_part_number(n: i32) -> S3Result<()> {
    if (1..=MAX_PART_NUMBER).contains(&n) {
        Ok(())
    } else {
        Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            format!("Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive"),
        ))
    }
}

/// Stages a part's body, checks it, writes its sidecar and renames it into the upload.
#[allow(clippy::too_many_arguments)]
async fn store_part<S, E>(
    store: &Store,
    target: &Arc<Target>,
    client: &Arc<Client>,
    dir: &FilePath,
    n: i32,
    body: S,
    content_length: Option<u64>,
    expected: &Expected,
    trailers: Option<&s3s::TrailingHeaders>,
    what: &str,
) -> S3Result<Arc<ObjectMeta>>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let temp = dir.join(&format!("tmp-{:016x}", rand::random::<u64>()));
    let received = objects::receive(
        store,
        target,
        client,
        temp,
        body,
        content_length,
        expected,
        trailers,
        true,
        store.limits.max_part,
        what,
    )
    .await?;
    let part = part_path(dir, n);
    let meta = ObjectMeta {
        size: received.stat.size,
        mtime: received.stat.modified,
        path: part.as_str().to_string(),
        etag: received.sums.etag(),
        checksums: received.sums.checksums.clone(),
        ..ObjectMeta::default()
    };
    let stored = async {
        let meta = store
            .meta
            .store(&store.budget, target, client, received.stat.file_id, meta)
            .await?;
        let old = target.call(client.stat(&part)).await.ok();
        target
            .call(client.publish(&received.staged.handle, &part))
            .await?;
        if let Some(old) = old {
            store.meta.remove(target, client, old.file_id).await;
        }
        Ok::<_, BackendError>(meta)
    }
    .await;
    match stored {
        Ok(meta) => Ok(meta),
        Err(e) => {
            transfer::discard(target, client, &received.staged.temp).await;
            store
                .meta
                .remove(target, client, received.stat.file_id)
                .await;
            Err(match e {
                // The upload's directory is gone: aborted meanwhile.
                BackendError::NotFound => no_such_upload(what),
                e => backend_error(&e, what),
            })
        }
    }
}

/// A part's checksums, in the order the outputs' fields take them: CRC32, CRC32C,
/// CRC64NVME, SHA1, SHA256.
type PartChecksums = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn part_output_checksums(meta: &ObjectMeta) -> PartChecksums {
    let c = &meta.checksums;
    (
        c.crc32.clone(),
        c.crc32c.clone(),
        c.crc64nvme.clone(),
        c.sha1.clone(),
        c.sha256.clone(),
    )
}

pub async fn upload_part(
    store: &Store,
    req: S3Request<UploadPartInput>,
) -> S3Result<UploadPartOutput> {
    let S3Request {
        input,
        headers,
        trailing_headers,
        ..
    } = req;
    check_part_number(input.part_number)?;
    let content_length = input.content_length.and_then(|l| u64::try_from(l).ok());
    if content_length.is_some_and(|l| l > store.limits.max_part) {
        return Err(S3Error::with_message(
            S3ErrorCode::EntityTooLarge,
            format!("a part holds at most {} bytes", store.limits.max_part),
        ));
    }
    let (_, manifest, target, client) =
        open(store, &input.bucket, &input.key, &input.upload_id).await?;
    let sent = sent_checksums!(input);
    let algorithm = input.checksum_algorithm.or_else(|| {
        manifest
            .checksum_algorithm
            .clone()
            .map(ChecksumAlgorithm::from)
    });
    let expected = Expected::from_request(
        input.content_md5.as_deref(),
        algorithm.as_ref(),
        &sent,
        &headers,
    )?;
    let dir = upload_dir(&input.bucket, &input.upload_id);
    let body = input.body.unwrap_or_else(|| {
        StreamingBlob::wrap(futures_util::stream::empty::<
            Result<bytes::Bytes, std::io::Error>,
        >())
    });
    let meta = store_part(
        store,
        &target,
        &client,
        &dir,
        input.part_number,
        body,
        content_length,
        &expected,
        trailing_headers.as_ref(),
        &input.upload_id,
    )
    .await?;
    let (crc32, crc32c, crc64nvme, sha1, sha256) = part_output_checksums(&meta);
    Ok(UploadPartOutput {
        e_tag: Some(meta.e_tag()),
        checksum_crc32: crc32,
        checksum_crc32c: crc32c,
        checksum_crc64nvme: crc64nvme,
        checksum_sha1: sha1,
        checksum_sha256: sha256,
        ..UploadPartOutput::default()
    })
}

/// `bytes=first-last` of a copy source, as `[start, end)`.
fn copy_range(range: Option<&str>, size: u64) -> S3Result<(u64, u64)> {
    let Some(range) = range else {
        return Ok((0, size));
    };
    let invalid = || {
        S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            format!(
                "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy (got {range:?})"
            ),
        )
    };
    let spec = range.strip_prefix("bytes=").ok_or_else(invalid)?;
    let (first, last) = spec.split_once('-').ok_or_else(invalid)?;
    let first: u64 = first.parse().map_err(|_| invalid())?;
    let last: u64 = last.parse().map_err(|_| invalid())?;
    if first > last {
        return Err(invalid());
    }
    if last >= size {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRange,
            format!("the copy source has {size} bytes; the range {range:?} is outside it"),
        ));
    }
    Ok((first, last + 1))
}

pub async fn upload_part_copy(
    store: &Store,
    input: UploadPartCopyInput,
) -> S3Result<UploadPartCopyOutput> {
    check_part_number(input.part_number)?;
    let from = CopyFrom::parse(
        &input.copy_source,
        input.copy_source_if_match,
        input.copy_source_if_none_match,
        input.copy_source_if_modified_since,
        input.copy_source_if_unmodified_since,
    )?;
    let (_, manifest, target, client) =
        open(store, &input.bucket, &input.key, &input.upload_id).await?;
    let (stat, _, source) = from.open(store).await?;
    let (start, end) = match copy_range(input.copy_source_range.as_deref(), stat.size) {
        Ok(r) => r,
        Err(e) => {
            if let Some(s) = &source {
                s.client.close(&s.handle).await;
            }
            return Err(e);
        }
    };
    if end - start > store.limits.max_part {
        if let Some(s) = &source {
            s.client.close(&s.handle).await;
        }
        return Err(S3Error::with_message(
            S3ErrorCode::EntityTooLarge,
            format!("a part holds at most {} bytes", store.limits.max_part),
        ));
    }
    let algorithm = manifest
        .checksum_algorithm
        .clone()
        .map(ChecksumAlgorithm::from);
    let expected = Expected::computed(algorithm.as_ref())?;
    let body = objects::source_body(store, &from.o.path, &stat, source, start, end).await;
    let dir = upload_dir(&input.bucket, &input.upload_id);
    let meta = store_part(
        store,
        &target,
        &client,
        &dir,
        input.part_number,
        body,
        Some(end - start),
        &expected,
        None,
        &input.upload_id,
    )
    .await?;
    let (crc32, crc32c, crc64nvme, sha1, sha256) = part_output_checksums(&meta);
    Ok(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(meta.e_tag()),
            last_modified: Some(timestamp(meta.mtime)),
            checksum_crc32: crc32,
            checksum_crc32c: crc32c,
            checksum_crc64nvme: crc64nvme,
            checksum_sha1: sha1,
            checksum_sha256: sha256,
        }),
        ..UploadPartCopyOutput::default()
    })
}

/// The parts on the file system, by number, with their metadata.
async fn parts(
    store: &Store,
    target: &Target,
    client: &Client,
    dir: &FilePath,
) -> S3Result<Vec<(i32, Stat, Arc<ObjectMeta>)>> {
    let entries = target
        .call(client.list_all(dir))
        .await
        .map_err(|e| backend_error(&e, dir.as_str()))?;
    let mut found: Vec<(i32, Stat)> = entries
        .into_iter()
        .filter(|e| e.stat.kind == EntryKind::File)
        .filter_map(|e| Some((part_number(&e.name)?, e.stat)))
        .collect();
    found.sort_by_key(|(n, _)| *n);
    let loaded = futures_util::stream::iter(found.into_iter().map(|(n, stat)| async move {
        let path = part_path(dir, n);
        let meta = store.meta.load(target, client, &stat, &path).await?;
        Ok::<_, BackendError>((n, stat, meta))
    }))
    .buffered(16)
    .collect::<Vec<_>>()
    .await;
    loaded
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| backend_error(&e, dir.as_str()))
}

/// Removes an upload's parts, their sidecars, its manifest and its directory.
pub async fn remove_dir(
    store: &Store,
    target: &Target,
    client: &Client,
    dir: &FilePath,
) -> S3Result<()> {
    let names = match target.call(client.list_all(dir)).await {
        Ok(names) => names,
        Err(BackendError::NotFound) => return Ok(()),
        Err(e) => return Err(backend_error(&e, dir.as_str())),
    };
    for e in names {
        if e.stat.kind == EntryKind::File && part_number(&e.name).is_some() {
            store.meta.remove(target, client, e.stat.file_id).await;
        }
        transfer::discard(target, client, &dir.join(&e.name)).await;
    }
    match target.call(client.remove(dir)).await {
        Ok(()) | Err(BackendError::NotFound) => Ok(()),
        Err(e) => Err(backend_error(&e, dir.as_str())),
    }
}

pub async fn abort(
    store: &Store,
    input: AbortMultipartUploadInput,
) -> S3Result<AbortMultipartUploadOutput> {
    let (_, _, target, client) = open(store, &input.bucket, &input.key, &input.upload_id).await?;
    remove_dir(
        store,
        &target,
        &client,
        &upload_dir(&input.bucket, &input.upload_id),
    )
    .await?;
    Ok(AbortMultipartUploadOutput::default())
}

pub async fn complete(
    store: &Store,
    input: CompleteMultipartUploadInput,
) -> S3Result<CompleteMultipartUploadOutput> {
    let (o, manifest, target, client) =
        open(store, &input.bucket, &input.key, &input.upload_id).await?;
    let requested = input
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default();
    if requested.is_empty() {
        return Err(S3Error::with_message(
            S3ErrorCode::MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema: it lists no parts",
        ));
    }
    let numbers: Vec<i32> = requested
        .iter()
        .map(|p| p.part_number.unwrap_or(0))
        .collect();
    if numbers.windows(2).any(|w| w[0] >= w[1]) {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidPartOrder,
            "The list of parts was not in ascending order. Parts must be ordered by part number.",
        ));
    }
    let dir = upload_dir(&input.bucket, &input.upload_id);
    let stored = parts(store, &target, &client, &dir).await?;
    let mut chosen: Vec<(i32, Stat)> = Vec::with_capacity(requested.len());
    let mut md5s = Vec::with_capacity(requested.len());
    for (i, part) in requested.iter().enumerate() {
        let n = part.part_number.unwrap_or(0);
        let invalid = |why: &str| {
            S3Error::with_message(
                S3ErrorCode::InvalidPart,
                format!(
                    "One or more of the specified parts could not be found or the specified entity tag might not have matched the part's entity tag: part {n} {why}"
                ),
            )
        };
        let Some((_, stat, meta)) = stored.iter().find(|(m, _, _)| *m == n) else {
            return Err(invalid("was not uploaded"));
        };
        match &part.e_tag {
            Some(tag) if tag.value() == meta.etag => {}
            Some(_) => return Err(invalid("has another ETag")),
            None => return Err(invalid("has no ETag in the request")),
        }
        let last = i + 1 == requested.len();
        if !last && stat.size < store.limits.min_part {
            return Err(S3Error::with_message(
                S3ErrorCode::EntityTooSmall,
                format!(
                    "Your proposed upload is smaller than the minimum allowed object size: part {n} has {} bytes; every part but the last needs at least {}",
                    stat.size, store.limits.min_part
                ),
            ));
        }
        md5s.push(digest::md5_of_etag(&meta.etag).ok_or_else(|| invalid("has no MD5 ETag"))?);
        chosen.push((n, stat.clone()));
    }
    let total: u64 = chosen.iter().map(|(_, s)| s.size).sum();
    if total > MAX_MULTIPART_OBJECT {
        return Err(S3Error::with_message(
            S3ErrorCode::EntityTooLarge,
            "a multipart object holds at most 5 TiB",
        ));
    }
    let etag = digest::multipart_etag(&md5s);
    let mut meta = manifest.meta.clone();
    meta.parts = chosen.iter().map(|(_, s)| s.size).collect();
    let algorithm = manifest
        .checksum_algorithm
        .clone()
        .map(ChecksumAlgorithm::from);
    let expected = Expected::computed(algorithm.as_ref())?;
    // The parts, one after the other, read as any file is (pipelined, bounded).
    let body = futures_util::stream::iter(chosen)
        .then({
            let (dir, store) = (dir.clone(), store.clone());
            move |(n, stat)| part_stream(store.clone(), part_path(&dir, n), stat)
        })
        .flatten();
    let written = objects::write(
        store,
        Upload {
            o: &o,
            body: Box::pin(body),
            content_length: Some(total),
            expected,
            trailers: None,
            meta,
            replace: Replace::from_conditions(input.if_match, input.if_none_match)?,
            etag: Some(etag),
        },
    )
    .await?;
    if let Err(e) = remove_dir(store, &target, &client, &dir).await {
        tracing::warn!(upload = %input.upload_id, error = %e, "a completed upload's parts could not all be removed; the janitor will");
    }
    Ok(CompleteMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        e_tag: Some(written.e_tag()),
        location: Some(format!("/{}/{}", o.bucket, o.key)),
        checksum_crc32: written.checksums.crc32.clone(),
        checksum_crc32c: written.checksums.crc32c.clone(),
        checksum_crc64nvme: written.checksums.crc64nvme.clone(),
        checksum_sha1: written.checksums.sha1.clone(),
        checksum_sha256: written.checksums.sha256.clone(),
        checksum_type: written.checksums.kind.clone().map(ChecksumType::from),
        ..CompleteMultipartUploadOutput::default()
    })
}

/// One part's bytes as a stream (an error item when it cannot be opened).
async fn part_stream(
    store: Store,
    path: FilePath,
    stat: Stat,
) -> futures_util::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>> {
    if stat.size == 0 {
        return futures_util::stream::empty().boxed();
    }
    let opened = store
        .read(&path, |target, client| {
            let path = path.clone();
            async move { target.call(client.open_read(&path)).await }
        })
        .await;
    match opened {
        Ok((target, client, (handle, now)))
            if now.file_id == stat.file_id && now.size == stat.size =>
        {
            transfer::read_stream(
                store.pool.clone(),
                store.budget.clone(),
                path,
                now,
                transfer::Source {
                    target,
                    client,
                    handle: Arc::new(handle),
                },
                0,
                stat.size,
            )
            .boxed()
        }
        Ok((_, client, (handle, _))) => {
            client.close(&handle).await;
            futures_util::stream::once(async move {
                Err(std::io::Error::other(format!(
                    "{path} was replaced while the upload completed"
                )))
            })
            .boxed()
        }
        Err(e) => {
            futures_util::stream::once(
                async move { Err(std::io::Error::other(format!("{path}: {e}"))) },
            )
            .boxed()
        }
    }
}

pub async fn list_parts(store: &Store, input: ListPartsInput) -> S3Result<ListPartsOutput> {
    let (_, manifest, target, client) =
        open(store, &input.bucket, &input.key, &input.upload_id).await?;
    let dir = upload_dir(&input.bucket, &input.upload_id);
    let marker = input.part_number_marker.unwrap_or(0);
    let max = input
        .max_parts
        .and_then(|m| usize::try_from(m).ok())
        .unwrap_or(MAX_PARTS_PAGE)
        .min(MAX_PARTS_PAGE);
    let all = parts(store, &target, &client, &dir).await?;
    let mut after: Vec<_> = all.into_iter().filter(|(n, _, _)| *n > marker).collect();
    let truncated = after.len() > max;
    after.truncate(max);
    let next = truncated
        .then(|| after.last().map(|(n, _, _)| *n))
        .flatten();
    let parts = after
        .into_iter()
        .map(|(n, stat, meta)| {
            let (crc32, crc32c, crc64nvme, sha1, sha256) = part_output_checksums(&meta);
            Part {
                part_number: Some(n),
                size: i64::try_from(stat.size).ok(),
                e_tag: Some(meta.e_tag()),
                last_modified: Some(timestamp(stat.modified)),
                checksum_crc32: crc32,
                checksum_crc32c: crc32c,
                checksum_crc64nvme: crc64nvme,
                checksum_sha1: sha1,
                checksum_sha256: sha256,
            }
        })
        .collect();
    Ok(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: next,
        max_parts: i32::try_from(max).ok(),
        is_truncated: Some(truncated),
        parts: Some(parts),
        initiator: Some(Initiator {
            display_name: owner().display_name,
            id: owner().id,
        }),
        owner: Some(owner()),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        checksum_algorithm: manifest.checksum_algorithm.map(ChecksumAlgorithm::from),
        ..ListPartsOutput::default()
    })
}

/// Every upload in flight into a bucket, with its manifest.
pub async fn uploads(
    store: &Store,
    target: &Target,
    client: &Client,
    bucket: &str,
) -> S3Result<Vec<(String, Manifest)>> {
    let dir = uploads_dir(bucket);
    let entries = match target.call(client.list_all(&dir)).await {
        Ok(entries) => entries,
        Err(BackendError::NotFound) => Vec::new(),
        Err(e) => return Err(backend_error(&e, dir.as_str())),
    };
    let ids: Vec<String> = entries
        .into_iter()
        .filter(|e| e.stat.kind == EntryKind::Dir && check_id(&e.name).is_ok())
        .map(|e| e.name)
        .collect();
    let manifests = futures_util::stream::iter(ids.into_iter().map(|id| async move {
        let m = read_manifest(store, target, client, bucket, &id).await;
        (id, m)
    }))
    .buffered(16)
    .collect::<Vec<_>>()
    .await;
    // An upload completed or aborted meanwhile is simply not listed.
    Ok(manifests
        .into_iter()
        .filter_map(|(id, m)| m.ok().map(|m| (id, m)))
        .collect())
}

pub async fn list_uploads(
    store: &Store,
    input: ListMultipartUploadsInput,
) -> S3Result<ListMultipartUploadsOutput> {
    if !store.bucket_exists(&input.bucket).await? {
        return Err(no_such_bucket(&input.bucket));
    }
    let dir = uploads_dir(&input.bucket);
    let (target, client) = store.writer(&dir)?;
    let mut all = uploads(store, &target, &client, &input.bucket).await?;
    all.sort_by(|a, b| (&a.1.key, a.1.initiated, &a.0).cmp(&(&b.1.key, b.1.initiated, &b.0)));
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let id_marker = input.upload_id_marker.clone().unwrap_or_default();
    let max = input
        .max_uploads
        .and_then(|m| usize::try_from(m).ok())
        .unwrap_or(MAX_UPLOADS_PAGE)
        .min(MAX_UPLOADS_PAGE);
    let mut uploads_out = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut truncated = false;
    let mut last: Option<(String, String)> = None;
    for (id, m) in all {
        if !m.key.starts_with(&prefix) {
            continue;
        }
        let after_marker = m.key.as_str() > key_marker.as_str()
            || (m.key == key_marker && !id_marker.is_empty() && id.as_str() > id_marker.as_str());
        if !key_marker.is_empty() && !after_marker {
            continue;
        }
        if uploads_out.len() + prefixes.len() >= max {
            truncated = true;
            break;
        }
        if let Some(d) = &delimiter
            && let Some(i) = m.key[prefix.len()..].find(d.as_str())
        {
            let common = m.key[..prefix.len() + i + d.len()].to_string();
            if prefixes.last() != Some(&common) {
                prefixes.push(common);
            }
            continue;
        }
        last = Some((m.key.clone(), id.clone()));
        uploads_out.push(MultipartUpload {
            key: Some(m.key),
            upload_id: Some(id),
            initiated: Some(timestamp((m.initiated, 0))),
            initiator: Some(Initiator {
                display_name: owner().display_name,
                id: owner().id,
            }),
            owner: Some(owner()),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            checksum_algorithm: m.checksum_algorithm.map(ChecksumAlgorithm::from),
            ..MultipartUpload::default()
        });
    }
    Ok(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: input.prefix,
        delimiter: input.delimiter,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        max_uploads: i32::try_from(max).ok(),
        is_truncated: Some(truncated),
        next_key_marker: truncated
            .then(|| last.as_ref().map(|(k, _)| k.clone()))
            .flatten(),
        next_upload_id_marker: truncated.then(|| last.map(|(_, id)| id)).flatten(),
        uploads: Some(uploads_out),
        common_prefixes: Some(
            prefixes
                .into_iter()
                .map(|p| CommonPrefix { prefix: Some(p) })
                .collect(),
        ),
        ..ListMultipartUploadsOutput::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_are_ours_or_no_upload() {
        assert!(check_id("0123456789abcdef0123456789abcdef").is_ok());
        for bad in ["", "../../etc", "0123456789abcdef0123456789abcdeg", "abc"] {
            assert_eq!(
                check_id(bad).unwrap_err().code(),
                &S3ErrorCode::NoSuchUpload,
                "{bad}"
            );
        }
    }

    #[test]
    fn copy_ranges() {
        assert_eq!(copy_range(None, 10).unwrap(), (0, 10));
        assert_eq!(copy_range(Some("bytes=0-4"), 10).unwrap(), (0, 5));
        assert_eq!(copy_range(Some("bytes=9-9"), 10).unwrap(), (9, 10));
        assert_eq!(
            copy_range(Some("bytes=5-10"), 10).unwrap_err().code(),
            &S3ErrorCode::InvalidRange
        );
        for bad in ["0-4", "bytes=4-1", "bytes=-3", "bytes=a-b"] {
            assert_eq!(
                copy_range(Some(bad), 10).unwrap_err().code(),
                &S3ErrorCode::InvalidArgument,
                "{bad}"
            );
        }
    }

    #[test]
    fn parts_are_named_in_order() {
        let dir = upload_dir("bkt", "0123456789abcdef0123456789abcdef");
        assert_eq!(
            part_path(&dir, 7).as_str(),
            ".efs-router/uploads/bkt/0123456789abcdef0123456789abcdef/part-00007"
        );
        assert_eq!(part_number("part-00007"), Some(7));
        assert_eq!(part_number("tmp-00007"), None);
    }
}
