//! The S3 API over the router's backends (docs/s3-compatibility.md).
//!
//! `s3s` does the protocol: routing each request to an operation, SigV4 (headers,
//! presigned URLs, aws-chunked streaming payloads and their trailers), the XML, typed
//! inputs and outputs. This module is the storage behaviour behind it, over the same
//! pool, routing and transfer machinery as before:
//!
//! - `names`: buckets and keys as paths, and the keys a file system cannot hold;
//! - `meta`: sidecar metadata (EFS has no extended attributes); `digest`: ETags and
//!   checksums; `conditions`: `If-*` headers;
//! - `objects`, `listing`, `multipart`, `buckets`: the operations;
//! - `auth`: the key pairs requests are signed with.
//!
//! Routing is as for any path: an object routes by its path, a listing by its
//! directory, a multipart upload by its final key. Reads retry on the next-ranked target
//! and a GET continues on another target from the first unsent byte; writes go to the
//! best target only (a retry elsewhere could apply them twice).

/// The `x-amz-checksum-*` values a request sent (PutObject and UploadPart carry the same
/// five fields), for [`digest::Expected::from_request`].
macro_rules! sent_checksums {
    ($input:expr) => {
        s3s::dto::Checksum {
            checksum_crc32: $input.checksum_crc32,
            checksum_crc32c: $input.checksum_crc32c,
            checksum_crc64nvme: $input.checksum_crc64nvme,
            checksum_sha1: $input.checksum_sha1,
            checksum_sha256: $input.checksum_sha256,
            checksum_type: None,
        }
    };
}

/// The metadata a request gives a new object (PutObject, CreateMultipartUpload and
/// CopyObject with `REPLACE` carry the same fields), through
/// [`objects::requested_meta`].
macro_rules! requested_meta {
    ($o:expr, $input:expr) => {
        $crate::router::s3::objects::requested_meta(
            $o,
            $input.content_type,
            $input.content_encoding,
            $input.content_language,
            $input.content_disposition,
            $input.cache_control,
            $input.expires,
            $input.website_redirect_location,
            $input.metadata,
        )
    };
}

/// The four `If-*` conditions of a GET or HEAD.
macro_rules! conditions {
    ($input:expr) => {
        $crate::router::s3::conditions::Conditions {
            if_match: $input.if_match,
            if_none_match: $input.if_none_match,
            if_modified_since: $input.if_modified_since,
            if_unmodified_since: $input.if_unmodified_since,
        }
    };
}

pub mod auth;
pub mod buckets;
pub mod conditions;
pub mod digest;
pub mod janitor;
pub mod listing;
pub mod meta;
pub mod multipart;
pub mod names;
pub mod objects;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::backend::{BackendError, Client, Stat};
use super::path::FilePath;
use super::pool::{Pool, Target};
use super::transfer::Budget;

/// Sizes and ages S3 imposes, and the router's own.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest single PUT (S3: 5 GiB).
    pub max_object: u64,
    /// The largest part (S3: 5 GiB) and the smallest part but the last (S3: 5 MiB).
    pub max_part: u64,
    pub min_part: u64,
    /// Multipart uploads idle longer than this are removed by the janitor.
    pub upload_max_age: Duration,
    /// Listings walked at once.
    pub listings: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_object: 5 << 30,
            max_part: 5 << 30,
            min_part: 5 << 20,
            upload_max_age: Duration::from_secs(7 * 24 * 3600),
            listings: 16,
        }
    }
}

/// The S3 storage behaviour: one per router process, shared by every request (clones
/// share it too).
#[derive(Debug, Clone)]
pub struct Store {
    pool: Arc<Pool>,
    budget: Budget,
    meta: Arc<meta::MetaStore>,
    dirs: Arc<listing::DirCache>,
    listings: Arc<tokio::sync::Semaphore>,
    limits: Limits,
    /// The region reported by GetBucketLocation and HeadBucket.
    region: String,
}

impl Store {
    pub fn new(pool: Arc<Pool>, budget: Budget, limits: Limits, region: String) -> Self {
        Store {
            pool,
            budget,
            meta: Arc::new(meta::MetaStore::default()),
            dirs: Arc::new(listing::DirCache::default()),
            listings: Arc::new(tokio::sync::Semaphore::new(limits.listings.max(1))),
            limits,
            region,
        }
    }

    /// The target a write of `path` goes to (the best one; never retried elsewhere).
    fn writer(&self, path: &FilePath) -> S3Result<(Arc<Target>, Arc<Client>)> {
        self.pool
            .ranked(path.as_str())
            .into_iter()
            .next()
            .ok_or_else(no_target)
    }

    /// Runs an idempotent operation on the best target for `path`, then the next ones
    /// while targets fail.
    async fn read<T, F, Fut>(
        &self,
        path: &FilePath,
        op: F,
    ) -> Result<(Arc<Target>, Arc<Client>, T), BackendError>
    where
        F: Fn(Arc<Target>, Arc<Client>) -> Fut,
        Fut: Future<Output = Result<T, BackendError>>,
    {
        let mut last = None;
        for (target, client) in self.pool.ranked(path.as_str()) {
            match op(target.clone(), client.clone()).await {
                Ok(value) => return Ok((target, client, value)),
                Err(e) if e.is_target_failure() => {
                    self.pool.report(&target, &client, &e);
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last
            .unwrap_or_else(|| BackendError::Unavailable("no mount target is available".into())))
    }

    /// Reports a write's failure to the pool (a target failure takes it out of service).
    fn failed(&self, target: &Arc<Target>, client: &Arc<Client>, e: &BackendError) {
        self.pool.report(target, client, e);
    }

    /// `stat` through the ranked targets.
    async fn stat(&self, path: &FilePath) -> Result<Stat, BackendError> {
        self.read(path, |target, client| async move {
            target.call(client.stat(path)).await
        })
        .await
        .map(|(_, _, s)| s)
    }

    /// Whether the bucket's directory exists: asked only once an operation failed with
    /// not-found, to tell NoSuchBucket from NoSuchKey at no cost to the common case.
    async fn bucket_exists(&self, bucket: &str) -> S3Result<bool> {
        let dir = names::bucket_dir(bucket)?;
        match self.stat(&dir).await {
            Ok(s) => Ok(s.kind == super::backend::EntryKind::Dir),
            Err(BackendError::NotFound | BackendError::NotADirectory) => Ok(false),
            Err(e) => Err(backend_error(&e, bucket)),
        }
    }

    /// NoSuchBucket when the bucket is missing, `otherwise` when it exists.
    async fn missing(&self, bucket: &str, otherwise: S3Error) -> S3Error {
        match self.bucket_exists(bucket).await {
            Ok(false) => no_such_bucket(bucket),
            Ok(true) => otherwise,
            Err(e) => e,
        }
    }
}

pub fn no_such_bucket(bucket: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NoSuchBucket,
        format!("The specified bucket does not exist: {bucket}"),
    )
}

pub fn no_such_key(key: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NoSuchKey,
        format!("The specified key does not exist: {key}"),
    )
}

fn no_target() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::ServiceUnavailable,
        "no mount target is available; retry shortly",
    );
    e.set_status_code(http::StatusCode::SERVICE_UNAVAILABLE);
    e
}

/// A backend failure as S3 says it; `what` names the bucket, key or upload.
pub fn backend_error(e: &BackendError, what: &str) -> S3Error {
    let (code, status) = match e {
        BackendError::NotFound => (S3ErrorCode::NoSuchKey, None),
        BackendError::PermissionDenied => (S3ErrorCode::AccessDenied, None),
        BackendError::NoSpace => (
            S3ErrorCode::Custom("InsufficientStorage".into()),
            Some(http::StatusCode::INSUFFICIENT_STORAGE),
        ),
        BackendError::Timeout(_) | BackendError::Unavailable(_) => (
            S3ErrorCode::ServiceUnavailable,
            Some(http::StatusCode::SERVICE_UNAVAILABLE),
        ),
        BackendError::Exists
        | BackendError::IsADirectory
        | BackendError::NotAFile
        | BackendError::NotADirectory
        | BackendError::NotEmpty => (
            S3ErrorCode::Custom("PathConflict".into()),
            Some(http::StatusCode::CONFLICT),
        ),
        BackendError::StaleCursor | BackendError::Failed(_) => (S3ErrorCode::InternalError, None),
    };
    let mut err = S3Error::with_message(code, format!("{what}: {e}"));
    if let Some(status) = status {
        err.set_status_code(status);
    }
    err
}

/// The error for a key whose place on the file system is taken by the other kind of
/// entry: S3 has no directories, a file system cannot have `a` both as a file and as
/// the directory holding `a/b`.
pub fn conflict(key: &str, why: &str) -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("PathConflict".into()),
        format!("object key {key:?} cannot be stored: {why}"),
    );
    e.set_status_code(http::StatusCode::CONFLICT);
    e
}

/// Gives a response its request id (`x-amz-request-id`), and an error body the same id
/// as `<RequestId>`, as S3 does: what support asks for, and what ties a client's error
/// to the router's log.
pub fn stamp_request_id(response: &mut s3s::HttpResponse, id: &str) {
    let Ok(value) = http::HeaderValue::from_str(id) else {
        return;
    };
    response.headers_mut().insert("x-amz-request-id", value);
    if !response.status().is_client_error() && !response.status().is_server_error() {
        return;
    }
    let Some(body) = response.body().bytes() else {
        return;
    };
    let text = String::from_utf8_lossy(&body);
    if text.contains("<RequestId>") || !text.contains("</Error>") {
        return;
    }
    let stamped = text.replacen(
        "</Error>",
        &format!("<RequestId>{id}</RequestId></Error>"),
        1,
    );
    let len = stamped.len();
    *response.body_mut() = s3s::Body::from(stamped);
    response
        .headers_mut()
        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
}

fn timestamp(modified: (u64, u32)) -> Timestamp {
    let secs = i64::try_from(modified.0).unwrap_or(i64::MAX);
    let t = time::OffsetDateTime::from_unix_timestamp(secs)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        + time::Duration::nanoseconds(i64::from(modified.1.min(999_999_999)));
    Timestamp::from(t)
}

/// The owner every object and bucket reports (one identity: the router's key pairs).
fn owner() -> Owner {
    Owner {
        display_name: Some("efs-router".into()),
        id: Some("efs-router".into()),
    }
}

#[async_trait::async_trait]
impl S3 for Store {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        buckets::create(self, req.input).await.map(S3Response::new)
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        buckets::head(self, req.input).await.map(S3Response::new)
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        buckets::delete(self, req.input).await.map(S3Response::new)
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        buckets::list(self, req.input).await.map(S3Response::new)
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        buckets::location(self, req.input)
            .await
            .map(S3Response::new)
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        objects::put(self, req).await.map(S3Response::new)
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        objects::get(self, req.input).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        objects::head(self, req.input).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        objects::delete(self, req.input).await.map(S3Response::new)
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        objects::delete_many(self, req.input)
            .await
            .map(S3Response::new)
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        objects::copy(self, req.input).await.map(S3Response::new)
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        listing::list_v1(self, req.input).await.map(S3Response::new)
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        listing::list_v2(self, req.input).await.map(S3Response::new)
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        listing::list_versions(self, req.input)
            .await
            .map(S3Response::new)
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create(self, req.input)
            .await
            .map(S3Response::new)
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(self, req).await.map(S3Response::new)
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        multipart::upload_part_copy(self, req.input)
            .await
            .map(S3Response::new)
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete(self, req.input)
            .await
            .map(S3Response::new)
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort(self, req.input).await.map(S3Response::new)
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(self, req.input)
            .await
            .map(S3Response::new)
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_uploads(self, req.input)
            .await
            .map(S3Response::new)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn errors_carry_the_request_id_of_their_header() {
        let mut response = http::Response::builder()
            .status(404)
            .body(s3s::Body::from(
                "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code></Error>".to_string(),
            ))
            .unwrap();
        stamp_request_id(&mut response, "ABC123");
        assert_eq!(response.headers()["x-amz-request-id"], "ABC123");
        let body = String::from_utf8(response.body().bytes().unwrap().to_vec()).unwrap();
        assert!(
            body.ends_with("<RequestId>ABC123</RequestId></Error>"),
            "{body}"
        );
        assert_eq!(
            response.headers()["content-length"],
            body.len().to_string().as_str()
        );
        let mut ok = http::Response::builder()
            .status(200)
            .body(s3s::Body::from("data".to_string()))
            .unwrap();
        stamp_request_id(&mut ok, "DEF");
        assert_eq!(ok.headers()["x-amz-request-id"], "DEF");
        assert_eq!(ok.body().bytes().unwrap().as_ref(), b"data");
    }
}
