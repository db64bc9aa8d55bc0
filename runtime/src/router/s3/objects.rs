//! Objects: PUT, GET, HEAD, DELETE, DeleteObjects, CopyObject.
//!
//! A PUT writes the body to a temporary file under `.efs-router/tmp/` on the key's
//! target, checks every digest the client sent, writes the sidecar (keyed by the new
//! file's id), then renames the file over the key: readers see the old object or the
//! new one, whole, on every client of the file system. `If-None-Match: *` publishes
//! with a hard link instead, which NFS refuses when the name exists, so it holds across
//! every router task; `If-Match` is checked just before the rename, so it holds within
//! one process (another task can replace the object between the check and the rename).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::conditions::{self, Conditions};
use super::digest::{Digests, Expected, Hashing, Sums};
use super::meta::{Checksums, ObjectMeta};
use super::names::{self, ObjectPath, RESERVED};
use super::{Store, backend_error, conflict, no_such_key, owner, timestamp};
use crate::router::backend::{BackendError, Client, EntryKind, Stat};
use crate::router::path::FilePath;
use crate::router::pool::Target;
use crate::router::transfer::{self, Source, WriteError};

/// The ETag of empty content (a folder object's).
const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

/// How a body over its limit is said, inside the stream's error (see [`body_error`]).
const TOO_LARGE: &str = "the body is larger than the limit of";

/// Bodies up to this size are hashed on the request's task; larger ones on a thread
/// beside the writes.
const INLINE_DIGEST_MAX: u64 = 256 * 1024;

/// S3's limit on user metadata (`x-amz-meta-*` names and values together).
const MAX_USER_METADATA: usize = 2048;

/// How a new object may replace what is at its key.
#[derive(Debug, Clone, Default)]
pub struct Replace {
    /// `If-None-Match: *`: only where nothing is.
    pub only_new: bool,
    /// `If-Match`: only over this ETag.
    pub if_match: Option<ETagCondition>,
}

impl Replace {
    pub fn from_conditions(
        if_match: Option<ETagCondition>,
        if_none_match: Option<ETagCondition>,
    ) -> S3Result<Self> {
        let only_new = match if_none_match {
            None => false,
            Some(ETagCondition::Any) => true,
            Some(_) => {
                return Err(S3Error::with_message(
                    S3ErrorCode::NotImplemented,
                    "If-None-Match on a write takes only `*`",
                ));
            }
        };
        Ok(Replace { only_new, if_match })
    }
}

/// A temporary name for an upload in flight.
pub fn temp_path() -> FilePath {
    FilePath::trusted(format!("{RESERVED}/tmp/{:016x}", rand::random::<u64>()))
}

/// The metadata a request gives an object (before its size and digests are known).
#[allow(clippy::too_many_arguments)]
pub fn requested_meta(
    o: &ObjectPath,
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    content_disposition: Option<String>,
    cache_control: Option<String>,
    expires: Option<Timestamp>,
    website_redirect_location: Option<String>,
    metadata: Option<Metadata>,
) -> S3Result<ObjectMeta> {
    let user: std::collections::BTreeMap<String, String> = metadata
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let size: usize = user.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_USER_METADATA {
        return Err(S3Error::with_message(
            S3ErrorCode::MetadataTooLarge,
            format!("user metadata is {size} bytes; at most {MAX_USER_METADATA} are allowed"),
        ));
    }
    let expires = match expires {
        Some(t) => {
            let mut buf = Vec::new();
            t.format(TimestampFormat::DateTime, &mut buf).map_err(|e| {
                S3Error::with_message(S3ErrorCode::InvalidArgument, format!("Expires: {e}"))
            })?;
            Some(String::from_utf8_lossy(&buf).into_owned())
        }
        None => None,
    };
    Ok(ObjectMeta {
        path: o.path.as_str().to_string(),
        content_type: content_type.filter(|c| !c.is_empty()),
        content_encoding,
        content_language,
        content_disposition,
        cache_control,
        expires,
        website_redirect_location,
        user,
        ..ObjectMeta::default()
    })
}

/// What a write needs from its request.
#[derive(Debug)]
pub struct Upload<'a, S> {
    pub o: &'a ObjectPath,
    pub body: S,
    pub content_length: Option<u64>,
    pub expected: Expected,
    pub trailers: Option<s3s::TrailingHeaders>,
    pub meta: ObjectMeta,
    pub replace: Replace,
    /// The ETag when it is not the content's MD5 (a multipart object's); no MD5 is
    /// computed then.
    pub etag: Option<String>,
}

/// A body staged under a temporary name and checked against every digest sent.
#[derive(Debug)]
pub struct Received {
    pub staged: transfer::Staged,
    pub sums: Sums,
    /// The staged file as the file system describes it (its id names the sidecar).
    pub stat: Stat,
}

/// Stages a body on `target` and checks it: its length against Content-Length, its
/// digests against what the client sent. Nothing is left behind on failure.
#[allow(clippy::too_many_arguments)]
pub async fn receive<S, E>(
    store: &Store,
    target: &Arc<Target>,
    client: &Arc<Client>,
    temp: FilePath,
    body: S,
    content_length: Option<u64>,
    expected: &Expected,
    trailers: Option<&s3s::TrailingHeaders>,
    md5: bool,
    max_size: u64,
    what: &str,
) -> S3Result<Received>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    // A body without a length (chunked, or aws-chunked without a decoded length) is
    // counted as it arrives: past the limit the upload stops, and nothing is kept.
    let mut seen = 0u64;
    let body = futures_util::StreamExt::map(body, move |item| {
        let data = item.map_err(|e| e.to_string())?;
        seen += data.len() as u64;
        if seen > max_size {
            return Err(format!("{TOO_LARGE} {max_size} bytes"));
        }
        Ok(data)
    });
    let mut hashing = Hashing::start(
        Digests::new(expected, md5),
        content_length.is_none_or(|n| n > INLINE_DIGEST_MAX),
    );
    let staged = transfer::stage(
        &store.budget,
        target,
        client,
        &temp,
        content_length,
        body,
        &mut |data| hashing.feed(data),
        true,
    )
    .await;
    let digests = hashing.finish().await;
    let staged = match staged {
        Ok(s) => s,
        Err(WriteError::Backend(e)) => {
            store.failed(target, client, &e);
            return Err(backend_error(&e, what));
        }
        Err(WriteError::Body(message)) => return Err(body_error(&message)),
    };
    let checked = async {
        if let Some(len) = content_length
            && staged.size != len
        {
            return Err(S3Error::with_message(
                S3ErrorCode::IncompleteBody,
                format!(
                    "the body has {} bytes; Content-Length said {len}",
                    staged.size
                ),
            ));
        }
        let trailers = trailers.and_then(s3s::TrailingHeaders::take);
        let sums = digests?.verify(expected, trailers.as_ref())?;
        let stat = staged.stat.clone().ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::InternalError,
                format!("{what}: the staged file was not described"),
            )
        })?;
        Ok((sums, stat))
    }
    .await;
    match checked {
        Ok((sums, stat)) => Ok(Received { staged, sums, stat }),
        Err(e) => {
            transfer::discard(target, client, &staged.temp).await;
            Err(e)
        }
    }
}

/// Writes a new object: staged, checked, its sidecar written, published. Returns its
/// metadata as stored.
pub async fn write<S, E>(store: &Store, up: Upload<'_, S>) -> S3Result<Arc<ObjectMeta>>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let o = up.o;
    let (target, client) = store.writer(&o.path)?;
    // The object being replaced, looked up while the body arrives: its sidecar is
    // removed once the new one is in place, and `If-Match` is checked against it.
    let old = async {
        match target.call(client.stat(&o.path)).await {
            Ok(s) => Ok(Some(s)),
            Err(BackendError::NotFound | BackendError::NotADirectory) => Ok(None),
            Err(e) => Err(e),
        }
    };
    // A multipart object's parts were checked one by one; anything else is one PUT.
    let max_size = if up.etag.is_some() {
        super::multipart::MAX_MULTIPART_OBJECT
    } else {
        store.limits.max_object
    };
    let receiving = receive(
        store,
        &target,
        &client,
        temp_path(),
        up.body,
        up.content_length,
        &up.expected,
        up.trailers.as_ref(),
        up.etag.is_none(),
        max_size,
        &o.key,
    );
    let (received, old) = tokio::join!(receiving, old);
    let Received { staged, sums, stat } = received?;
    let published = async {
        let old = old.map_err(|e| backend_error(&e, &o.key))?;
        if let Some(condition) = &up.replace.if_match {
            check_if_match(store, &target, &client, o, old.as_ref(), condition).await?;
        }
        let mut meta = up.meta;
        meta.size = stat.size;
        meta.mtime = stat.modified;
        meta.etag = up.etag.clone().unwrap_or_else(|| sums.etag());
        if meta.checksums.is_empty() {
            meta.checksums = sums.checksums;
        }
        let meta = store
            .meta
            .store(&store.budget, &target, &client, stat.file_id, meta)
            .await
            .map_err(|e| backend_error(&e, &o.key))?;
        publish(
            store,
            &target,
            &client,
            &staged.handle,
            o,
            up.replace.only_new,
        )
        .await?;
        if up.replace.only_new {
            transfer::discard(&target, &client, &staged.temp).await;
        }
        if let Some(old) = old
            && old.file_id != stat.file_id
            && old.kind == EntryKind::File
        {
            store.meta.remove(&target, &client, old.file_id).await;
        }
        Ok(meta)
    }
    .await;
    if published.is_err() {
        transfer::discard(&target, &client, &staged.temp).await;
        store.meta.remove(&target, &client, stat.file_id).await;
    }
    published
}

async fn check_if_match(
    store: &Store,
    target: &Target,
    client: &Client,
    o: &ObjectPath,
    old: Option<&Stat>,
    condition: &ETagCondition,
) -> S3Result<()> {
    let Some(old) = old.filter(|s| s.kind == EntryKind::File) else {
        return Err(no_such_key(&o.key));
    };
    let meta = store
        .meta
        .load(target, client, old, &o.path)
        .await
        .map_err(|e| backend_error(&e, &o.key))?;
    let ok = match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(t) => t.value() == meta.etag,
    };
    if ok {
        Ok(())
    } else {
        Err(conditions::precondition_failed())
    }
}

/// Moves a staged file to its key: its directories made as needed (never the bucket's),
/// and conflicts between files and directories reported as such.
async fn publish(
    store: &Store,
    target: &Arc<Target>,
    client: &Arc<Client>,
    handle: &crate::router::backend::Handle,
    o: &ObjectPath,
    only_new: bool,
) -> S3Result<()> {
    // A directory emptied by a concurrent DELETE can vanish between making it and the
    // rename; the rename then finds no directory, and the directories are made again.
    for _ in 0..3 {
        let result = if only_new {
            target.call(client.link(handle, &o.path)).await
        } else {
            target.call(client.publish(handle, &o.path)).await
        };
        match result {
            Ok(()) => return Ok(()),
            Err(BackendError::NotFound) => {
                if !store.bucket_exists(&o.bucket).await? {
                    return Err(super::no_such_bucket(&o.bucket));
                }
                make_dirs(target, client, o, &o.path.parent()).await?;
            }
            Err(BackendError::Exists) if only_new => {
                return match target.call(client.stat(&o.path)).await {
                    Ok(s) if s.kind == EntryKind::Dir => Err(is_a_prefix(&o.key)),
                    _ => Err(conditions::precondition_failed()),
                };
            }
            Err(BackendError::IsADirectory | BackendError::Exists | BackendError::NotEmpty) => {
                return Err(is_a_prefix(&o.key));
            }
            Err(BackendError::NotADirectory) => return Err(parent_is_object(&o.key)),
            Err(e) => {
                store.failed(target, client, &e);
                return Err(backend_error(&e, &o.key));
            }
        }
    }
    Err(S3Error::with_message(
        S3ErrorCode::InternalError,
        format!(
            "{}: its directory kept disappearing while being published; retry",
            o.key
        ),
    ))
}

fn is_a_prefix(key: &str) -> S3Error {
    conflict(
        key,
        "other objects have keys beginning with it and `/`, so the name is a directory",
    )
}

fn parent_is_object(key: &str) -> S3Error {
    conflict(
        key,
        "an object's key equals one of its prefixes up to a `/`, and a file cannot hold other files",
    )
}

/// Makes the directories from below the bucket down to `dir`.
async fn make_dirs(
    target: &Target,
    client: &Client,
    o: &ObjectPath,
    dir: &FilePath,
) -> S3Result<()> {
    let bucket_depth = 1;
    let wanted: Vec<FilePath> = dir
        .ancestors()
        .skip(bucket_depth)
        .chain(std::iter::once(dir.clone()))
        .filter(|d| d.as_str() != o.bucket)
        .collect();
    for d in wanted {
        match target.call(client.mkdir(&d)).await {
            Ok(()) | Err(BackendError::Exists) => {}
            Err(BackendError::NotADirectory) => return Err(parent_is_object(&o.key)),
            Err(e) => return Err(backend_error(&e, &o.key)),
        }
    }
    Ok(())
}

/// A failure of the request body, by what `s3s` (signature, payload hash, length) or
/// the connection said.
pub fn body_error(message: &str) -> S3Error {
    let (code, status) = if message.contains("Sha256Mismatch") {
        (
            S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
            http::StatusCode::BAD_REQUEST,
        )
    } else if message.contains("SignatureMismatch") {
        (
            S3ErrorCode::SignatureDoesNotMatch,
            http::StatusCode::FORBIDDEN,
        )
    } else if message.starts_with("no data for") {
        (S3ErrorCode::RequestTimeout, http::StatusCode::BAD_REQUEST)
    } else if message.contains(TOO_LARGE) {
        (S3ErrorCode::EntityTooLarge, http::StatusCode::BAD_REQUEST)
    } else {
        (S3ErrorCode::IncompleteBody, http::StatusCode::BAD_REQUEST)
    };
    let mut e = S3Error::with_message(code, format!("the request body: {message}"));
    e.set_status_code(status);
    e
}

pub async fn put(store: &Store, req: S3Request<PutObjectInput>) -> S3Result<PutObjectOutput> {
    let S3Request {
        input,
        headers,
        trailing_headers,
        ..
    } = req;
    let o = names::object(&input.bucket, &input.key)?;
    let content_length = input.content_length.and_then(|l| u64::try_from(l).ok());
    if content_length.is_some_and(|l| l > store.limits.max_object) {
        return Err(S3Error::with_message(
            S3ErrorCode::EntityTooLarge,
            format!(
                "Your proposed upload exceeds the maximum allowed object size ({} bytes); use a multipart upload",
                store.limits.max_object
            ),
        ));
    }
    let sent = sent_checksums!(input);
    let expected = Expected::from_request(
        input.content_md5.as_deref(),
        input.checksum_algorithm.as_ref(),
        &sent,
        &headers,
    )?;
    let meta = requested_meta!(&o, input)?;
    let replace = Replace::from_conditions(input.if_match, input.if_none_match)?;
    if o.folder {
        if content_length.unwrap_or(0) != 0 {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                format!(
                    "{:?} ends in `/`, which names a directory here: a folder object holds no data",
                    o.key
                ),
            ));
        }
        let meta = put_folder(store, &o, meta).await?;
        return Ok(PutObjectOutput {
            e_tag: Some(meta.e_tag()),
            ..PutObjectOutput::default()
        });
    }
    let body = input.body.unwrap_or_else(|| {
        StreamingBlob::wrap(futures_util::stream::empty::<Result<Bytes, std::io::Error>>())
    });
    let meta = write(
        store,
        Upload {
            o: &o,
            body,
            content_length,
            expected,
            trailers: trailing_headers,
            meta,
            replace,
            etag: None,
        },
    )
    .await?;
    Ok(PutObjectOutput {
        e_tag: Some(meta.e_tag()),
        checksum_crc32: meta.checksums.crc32.clone(),
        checksum_crc32c: meta.checksums.crc32c.clone(),
        checksum_crc64nvme: meta.checksums.crc64nvme.clone(),
        checksum_sha1: meta.checksums.sha1.clone(),
        checksum_sha256: meta.checksums.sha256.clone(),
        checksum_type: meta.checksums.kind.clone().map(ChecksumType::from),
        size: i64::try_from(meta.size).ok(),
        ..PutObjectOutput::default()
    })
}

/// A folder object (`a/b/`): the directory itself, marked as an object by a sidecar.
async fn put_folder(
    store: &Store,
    o: &ObjectPath,
    mut meta: ObjectMeta,
) -> S3Result<Arc<ObjectMeta>> {
    let (target, client) = store.writer(&o.path)?;
    if !store.bucket_exists(&o.bucket).await? {
        return Err(super::no_such_bucket(&o.bucket));
    }
    make_dirs(&target, &client, o, &o.path).await?;
    let stat = target
        .call(client.stat(&o.path))
        .await
        .map_err(|e| backend_error(&e, &o.key))?;
    if stat.kind != EntryKind::Dir {
        return Err(parent_is_object(&o.key));
    }
    meta.etag = EMPTY_MD5.to_string();
    meta.size = 0;
    store
        .meta
        .store(&store.budget, &target, &client, stat.file_id, meta)
        .await
        .map_err(|e| backend_error(&e, &o.key))
}

/// What a GET or HEAD found.
struct Found {
    stat: Stat,
    meta: Arc<ObjectMeta>,
    /// Open for reading (GET of a file with data).
    source: Option<Source>,
}

/// Looks an object up (and opens it for a GET), on the ranked targets in turn.
async fn find(store: &Store, o: &ObjectPath, open: bool) -> S3Result<Found> {
    let found = store
        .read(&o.path, |target, client| async move {
            let (stat, handle) = if open && !o.folder {
                let (h, s) = target.call(client.open_read(&o.path)).await?;
                (s, Some(h))
            } else {
                (target.call(client.stat(&o.path)).await?, None)
            };
            let meta = store.meta.load(&target, &client, &stat, &o.path).await;
            match meta {
                Ok(meta) => Ok((stat, meta, handle)),
                Err(e) => {
                    if let Some(h) = &handle {
                        client.close(h).await;
                    }
                    Err(e)
                }
            }
        })
        .await;
    let (target, client, (stat, meta, handle)) = match found {
        Ok(v) => v,
        Err(BackendError::NotFound | BackendError::NotADirectory) => {
            return Err(store.missing(&o.bucket, no_such_key(&o.key)).await);
        }
        Err(BackendError::IsADirectory | BackendError::NotAFile) => {
            return Err(no_such_key(&o.key));
        }
        Err(e) => return Err(backend_error(&e, &o.key)),
    };
    let is_object = match (o.folder, stat.kind) {
        (false, EntryKind::File) => true,
        // A directory is an object only when made as one (it has its sidecar).
        (true, EntryKind::Dir) => meta.etag == EMPTY_MD5,
        _ => false,
    };
    if !is_object {
        if let Some(h) = &handle {
            client.close(h).await;
        }
        return Err(no_such_key(&o.key));
    }
    Ok(Found {
        stat,
        meta,
        source: handle.map(|handle| Source {
            target,
            client,
            handle: Arc::new(handle),
        }),
    })
}

/// The part of a multipart object a `partNumber` names, as a byte range.
fn part_range(meta: &ObjectMeta, part: i32, size: u64) -> S3Result<Option<(u64, u64)>> {
    let invalid = || {
        let mut e = S3Error::with_message(
            S3ErrorCode::Custom("InvalidPartNumber".into()),
            "The requested partnumber is not satisfiable",
        );
        e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
        e
    };
    let n = usize::try_from(part)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(invalid)?;
    if meta.parts.is_empty() {
        return if n == 1 {
            Ok(Some((0, size)))
        } else {
            Err(invalid())
        };
    }
    let sizes = meta.parts.get(..n).ok_or_else(invalid)?;
    let end: u64 = sizes.iter().sum();
    Ok(Some((end - sizes[n - 1], end)))
}

/// The headers GET and HEAD share, set on either output type: the stored metadata,
/// with the request's `response-*` overrides.
macro_rules! object_headers {
    ($output:ident, $input:ident, $meta:expr, $found:expr, $range:expr, $checksums:expr, { $($body:tt)* }) => {{
        let meta: &ObjectMeta = $meta;
        let size = $found.stat.size;
        let (start, end) = $range.unwrap_or((0, size));
        let with = |c: &Option<String>| if $checksums { c.clone() } else { None };
        $output {
            $($body)*
            accept_ranges: Some("bytes".into()),
            content_length: i64::try_from(end - start).ok(),
            content_range: $range.map(|(s, e)| format!("bytes {s}-{}/{size}", e.saturating_sub(1))),
            content_type: Some($input.response_content_type.unwrap_or_else(|| meta.content_type())),
            content_encoding: $input.response_content_encoding.or_else(|| meta.content_encoding.clone()),
            content_language: $input.response_content_language.or_else(|| meta.content_language.clone()),
            content_disposition: $input
                .response_content_disposition
                .or_else(|| meta.content_disposition.clone()),
            cache_control: $input.response_cache_control.or_else(|| meta.cache_control.clone()),
            expires: $input.response_expires.or_else(|| meta.expires()),
            website_redirect_location: meta.website_redirect_location.clone(),
            e_tag: Some(meta.e_tag()),
            last_modified: Some(timestamp($found.stat.modified)),
            metadata: meta.user_metadata(),
            parts_count: parts_count(meta, $input.part_number),
            checksum_crc32: with(&meta.checksums.crc32),
            checksum_crc32c: with(&meta.checksums.crc32c),
            checksum_crc64nvme: with(&meta.checksums.crc64nvme),
            checksum_sha1: with(&meta.checksums.sha1),
            checksum_sha256: with(&meta.checksums.sha256),
            ..$output::default()
        }
    }};
}

/// Finds an object for a GET (`open`) or HEAD, and checks the request's conditions and
/// its range or part against it: the range to send (`None`: all of it). A handle opened
/// for a request that then fails is closed.
async fn locate(
    store: &Store,
    o: &ObjectPath,
    conditions: Conditions,
    range: Option<&Range>,
    part_number: Option<i32>,
    open: bool,
) -> S3Result<(Found, Option<(u64, u64)>)> {
    let found = find(store, o, open).await?;
    let size = found.stat.size;
    let range = match (range, part_number) {
        (Some(_), Some(_)) => Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter",
        )),
        (Some(r), None) => r.check(size).map(|r| Some((r.start, r.end))).map_err(|_| {
            S3Error::with_message(
                S3ErrorCode::InvalidRange,
                format!("The requested range is not satisfiable: the object has {size} bytes"),
            )
        }),
        (None, Some(n)) => part_range(&found.meta, n, size),
        (None, None) => Ok(None),
    };
    match conditions
        .check(&found.meta.etag, &timestamp(found.stat.modified))
        .and(range)
    {
        Ok(range) => Ok((found, range)),
        Err(e) => {
            if let Some(s) = &found.source {
                s.client.close(&s.handle).await;
            }
            Err(e)
        }
    }
}

pub async fn get(store: &Store, input: GetObjectInput) -> S3Result<S3Response<GetObjectOutput>> {
    check_version(input.version_id.as_deref())?;
    let o = names::object(&input.bucket, &input.key)?;
    let conditions = conditions!(input);
    let (found, range) = locate(
        store,
        &o,
        conditions,
        input.range.as_ref(),
        input.part_number,
        true,
    )
    .await?;
    let (start, end) = range.unwrap_or((0, found.stat.size));
    let body = source_body(
        store,
        &o.path,
        &found.stat,
        found.source.clone(),
        start,
        end,
    )
    .await;
    // Checksums describe the whole object: sent only with all of it.
    let output = object_headers!(GetObjectOutput, input, &found.meta, found, range, range.is_none(), {
        body: Some(body),
    });
    let mut response = S3Response::new(output);
    if range.is_some() {
        response.status = Some(http::StatusCode::PARTIAL_CONTENT);
    }
    Ok(response)
}

fn parts_count(meta: &ObjectMeta, part_number: Option<i32>) -> Option<i32> {
    if meta.parts.is_empty() || part_number.is_none() {
        None
    } else {
        i32::try_from(meta.parts.len()).ok()
    }
}

fn empty_body() -> StreamingBlob {
    StreamingBlob::wrap(futures_util::stream::empty::<Result<Bytes, std::io::Error>>())
}

/// Versioning is not kept: the only version is `null`.
pub fn check_version(version: Option<&str>) -> S3Result<()> {
    match version {
        None | Some("null") => Ok(()),
        Some(v) => Err(S3Error::with_message(
            S3ErrorCode::NoSuchVersion,
            format!(
                "version {v:?} does not exist: this endpoint keeps one version of each object, `null`"
            ),
        )),
    }
}

pub async fn head(store: &Store, input: HeadObjectInput) -> S3Result<S3Response<HeadObjectOutput>> {
    check_version(input.version_id.as_deref())?;
    let o = names::object(&input.bucket, &input.key)?;
    let conditions = conditions!(input);
    let (found, range) = locate(
        store,
        &o,
        conditions,
        input.range.as_ref(),
        input.part_number,
        false,
    )
    .await?;
    let output = object_headers!(HeadObjectOutput, input, &found.meta, found, range, true, {});
    let mut response = S3Response::new(output);
    if range.is_some() {
        response.status = Some(http::StatusCode::PARTIAL_CONTENT);
    }
    Ok(response)
}

pub async fn delete(store: &Store, input: DeleteObjectInput) -> S3Result<DeleteObjectOutput> {
    check_version(input.version_id.as_deref())?;
    let o = names::object(&input.bucket, &input.key)?;
    remove(store, &o, input.if_match.as_ref()).await?;
    Ok(DeleteObjectOutput::default())
}

/// Deletes one object; a missing one is success, as in S3. Directories that only held
/// it are removed (S3 has no directories), up to but not including the bucket.
async fn remove(store: &Store, o: &ObjectPath, if_match: Option<&ETagCondition>) -> S3Result<()> {
    let (target, client) = store.writer(&o.path)?;
    let stat = match target.call(client.stat(&o.path)).await {
        Ok(s) => s,
        Err(BackendError::NotFound | BackendError::NotADirectory) => {
            if !store.bucket_exists(&o.bucket).await? {
                return Err(super::no_such_bucket(&o.bucket));
            }
            return match if_match {
                Some(_) => Err(no_such_key(&o.key)),
                None => Ok(()),
            };
        }
        Err(e) => {
            store.failed(&target, &client, &e);
            return Err(backend_error(&e, &o.key));
        }
    };
    if let Some(condition) = if_match {
        check_if_match(store, &target, &client, o, Some(&stat), condition).await?;
    }
    match (o.folder, stat.kind) {
        (false, EntryKind::File) => match target.call(client.remove(&o.path)).await {
            Ok(()) | Err(BackendError::NotFound) => {
                store.meta.remove(&target, &client, stat.file_id).await;
            }
            Err(e) => {
                store.failed(&target, &client, &e);
                return Err(backend_error(&e, &o.key));
            }
        },
        // The folder object goes; the directory stays while it holds other objects.
        (true, EntryKind::Dir) => {
            store.meta.remove(&target, &client, stat.file_id).await;
            prune(store, &target, &client, o, o.path.clone()).await;
            return Ok(());
        }
        // `a` when only `a/b` exists, or `a/` naming a file: no such object.
        _ => return Ok(()),
    }
    prune(store, &target, &client, o, o.path.parent()).await;
    Ok(())
}

/// Removes `dir` and the directories above it while they are empty and not folder
/// objects, stopping below the bucket. Best effort: a directory another request fills
/// meanwhile stays (its removal fails as not empty).
async fn prune(store: &Store, target: &Target, client: &Client, o: &ObjectPath, mut dir: FilePath) {
    while dir.as_str() != o.bucket && !dir.is_root() {
        match target.call(client.list(&dir, None, 1)).await {
            Ok(page) if page.entries.is_empty() => {}
            _ => return,
        }
        let Ok(stat) = target.call(client.stat(&dir)).await else {
            return;
        };
        match store.meta.load(target, client, &stat, &dir).await {
            Ok(meta) if meta.etag == EMPTY_MD5 => return,
            Ok(_) => {}
            Err(_) => return,
        }
        if target.call(client.remove(&dir)).await.is_err() {
            return;
        }
        dir = dir.parent();
    }
}

pub async fn delete_many(
    store: &Store,
    input: DeleteObjectsInput,
) -> S3Result<DeleteObjectsOutput> {
    if input.delete.objects.len() > 1000 {
        return Err(S3Error::with_message(
            S3ErrorCode::MalformedXML,
            "at most 1000 keys can be deleted in one request",
        ));
    }
    if !store.bucket_exists(&input.bucket).await? {
        return Err(super::no_such_bucket(&input.bucket));
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let bucket = input.bucket;
    // Several at once: each is a few round trips to the file system.
    let results: Vec<(ObjectIdentifier, S3Result<()>)> =
        futures_util::StreamExt::collect(futures_util::StreamExt::buffered(
            futures_util::stream::iter(input.delete.objects.into_iter().map(|id| {
                let bucket = bucket.clone();
                async move {
                    let result = async {
                        check_version(id.version_id.as_deref())?;
                        let o = names::object(&bucket, &id.key)?;
                        remove(
                            store,
                            &o,
                            id.e_tag
                                .as_ref()
                                .map(|t| ETagCondition::ETag(t.clone()))
                                .as_ref(),
                        )
                        .await
                    }
                    .await;
                    (id, result)
                }
            })),
            16,
        ))
        .await;
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for (id, result) in results {
        match result {
            Ok(()) if !quiet => deleted.push(DeletedObject {
                key: Some(id.key),
                version_id: id.version_id,
                ..DeletedObject::default()
            }),
            Ok(()) => {}
            Err(e) => errors.push(Error {
                code: Some(e.code().as_str().to_string()),
                key: Some(id.key),
                message: e.message().map(str::to_string),
                version_id: id.version_id,
            }),
        }
    }
    Ok(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: if errors.is_empty() {
            None
        } else {
            Some(errors)
        },
        ..DeleteObjectsOutput::default()
    })
}

/// The source of a copy: its place, and conditions on it.
#[derive(Debug)]
pub struct CopyFrom {
    pub o: ObjectPath,
    pub conditions: Conditions,
}

impl CopyFrom {
    pub fn parse(
        source: &CopySource,
        if_match: Option<ETagCondition>,
        if_none_match: Option<ETagCondition>,
        if_modified_since: Option<Timestamp>,
        if_unmodified_since: Option<Timestamp>,
    ) -> S3Result<Self> {
        let CopySource::Bucket {
            bucket,
            key,
            version_id,
        } = source
        else {
            return Err(S3Error::with_message(
                S3ErrorCode::NotImplemented,
                "copy sources are `bucket/key`; access points and outposts do not exist here",
            ));
        };
        check_version(version_id.as_deref())?;
        Ok(CopyFrom {
            o: names::object(bucket, key)?,
            conditions: Conditions {
                if_match,
                if_none_match,
                if_modified_since,
                if_unmodified_since,
            },
        })
    }

    /// Opens the source for reading, checking its conditions.
    pub async fn open(&self, store: &Store) -> S3Result<(Stat, Arc<ObjectMeta>, Option<Source>)> {
        if self.o.folder {
            let found = find(store, &self.o, false).await?;
            self.conditions
                .check_source(&found.meta.etag, &timestamp(found.stat.modified))?;
            return Ok((found.stat, found.meta, None));
        }
        let found = find(store, &self.o, true).await?;
        if let Err(e) = self
            .conditions
            .check_source(&found.meta.etag, &timestamp(found.stat.modified))
        {
            if let Some(s) = &found.source {
                s.client.close(&s.handle).await;
            }
            return Err(e);
        }
        Ok((found.stat, found.meta, found.source))
    }
}

/// The bytes `[start, end)` of an opened source, as a body (empty when nothing to read,
/// closing the source).
pub async fn source_body(
    store: &Store,
    path: &FilePath,
    stat: &Stat,
    source: Option<Source>,
    start: u64,
    end: u64,
) -> StreamingBlob {
    match source {
        Some(source) if start < end => StreamingBlob::wrap(transfer::read_stream(
            store.pool.clone(),
            store.budget.clone(),
            path.clone(),
            stat.clone(),
            source,
            start,
            end,
        )),
        Some(source) => {
            source.client.close(&source.handle).await;
            empty_body()
        }
        None => empty_body(),
    }
}

pub async fn copy(store: &Store, input: CopyObjectInput) -> S3Result<CopyObjectOutput> {
    let from = CopyFrom::parse(
        &input.copy_source,
        input.copy_source_if_match,
        input.copy_source_if_none_match,
        input.copy_source_if_modified_since,
        input.copy_source_if_unmodified_since,
    )?;
    let to = names::object(&input.bucket, &input.key)?;
    let replace_meta = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    if from.o == to && !replace_meta && input.website_redirect_location.is_none() {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    if to.folder != from.o.folder {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            "a folder object (key ending in `/`) copies only to another folder object",
        ));
    }
    let (stat, source_meta, source) = from.open(store).await?;
    if stat.size > store.limits.max_object {
        if let Some(s) = &source {
            s.client.close(&s.handle).await;
        }
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            format!(
                "The specified copy source is larger than the maximum allowable size for a copy source: {}",
                store.limits.max_object
            ),
        ));
    }
    let mut meta = if replace_meta {
        requested_meta!(&to, input)?
    } else {
        ObjectMeta {
            path: to.path.as_str().to_string(),
            website_redirect_location: input
                .website_redirect_location
                .or_else(|| source_meta.website_redirect_location.clone()),
            checksums: Checksums::default(),
            parts: Vec::new(),
            ..(*source_meta).clone()
        }
    };
    meta.checksums = Checksums::default();
    let written = if to.folder {
        put_folder(store, &to, meta).await?
    } else {
        let algorithm = input.checksum_algorithm;
        let expected = Expected::computed(algorithm.as_ref())?;
        let body = source_body(store, &from.o.path, &stat, source, 0, stat.size).await;
        write(
            store,
            Upload {
                o: &to,
                body,
                content_length: Some(stat.size),
                expected,
                trailers: None,
                meta,
                replace: Replace::default(),
                etag: None,
            },
        )
        .await?
    };
    Ok(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(written.e_tag()),
            last_modified: Some(timestamp(written.mtime)),
            checksum_crc32: written.checksums.crc32.clone(),
            checksum_crc32c: written.checksums.crc32c.clone(),
            checksum_crc64nvme: written.checksums.crc64nvme.clone(),
            checksum_sha1: written.checksums.sha1.clone(),
            checksum_sha256: written.checksums.sha256.clone(),
            ..CopyObjectResult::default()
        }),
        ..CopyObjectOutput::default()
    })
}

/// The owner reported with objects (`fetch-owner`).
pub fn object_owner() -> Owner {
    owner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_failures_keep_their_s3_codes() {
        // The messages s3s's streams give (pinned version): see Cargo.toml.
        assert_eq!(
            body_error("UploadStreamError: Sha256Mismatch").code(),
            &S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into())
        );
        assert_eq!(
            body_error("AwsChunkedStreamError: SignatureMismatch").code(),
            &S3ErrorCode::SignatureDoesNotMatch
        );
        assert_eq!(
            body_error("UploadStreamError: Incomplete").code(),
            &S3ErrorCode::IncompleteBody
        );
        assert_eq!(
            body_error("no data for 30 s").code(),
            &S3ErrorCode::RequestTimeout
        );
        assert_eq!(
            body_error(&format!("{TOO_LARGE} 1048576 bytes")).code(),
            &S3ErrorCode::EntityTooLarge
        );
    }

    #[test]
    fn part_numbers_name_byte_ranges() {
        let meta = ObjectMeta {
            parts: vec![5, 5, 2],
            ..ObjectMeta::default()
        };
        assert_eq!(part_range(&meta, 1, 12).unwrap(), Some((0, 5)));
        assert_eq!(part_range(&meta, 3, 12).unwrap(), Some((10, 12)));
        assert!(part_range(&meta, 4, 12).is_err());
        assert!(part_range(&meta, 0, 12).is_err());
        let plain = ObjectMeta::default();
        assert_eq!(part_range(&plain, 1, 7).unwrap(), Some((0, 7)));
        assert!(part_range(&plain, 2, 7).is_err());
    }

    #[test]
    fn user_metadata_is_limited_to_2_kib() {
        let o = names::object("bkt", "k").unwrap();
        let big: Metadata = [("a".to_string(), "v".repeat(2048))].into_iter().collect();
        let e =
            requested_meta(&o, None, None, None, None, None, None, None, Some(big)).unwrap_err();
        assert_eq!(e.code(), &S3ErrorCode::MetadataTooLarge);
    }
}
