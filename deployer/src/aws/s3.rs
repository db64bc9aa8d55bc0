//! Amazon S3: the artifact bucket.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

use super::{AwsError, Error};

const SERVICE: &str = "S3";

/// The S3 client. A custom endpoint (an S3-compatible server, the local moto) is
/// addressed path-style: its bucket names do not resolve as host names.
pub fn client(sdk: &aws_config::SdkConfig) -> Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    Client::from_conf(config)
}

/// A bucket the deployer writes to, and the account that must own it: every call names
/// it (`ExpectedBucketOwner`), so a bucket of the same name in another account (after
/// ours was deleted, say) is never read from or written to.
#[derive(Debug, Clone)]
pub struct Bucket<'a> {
    pub name: &'a str,
    /// `None` only for a local endpoint, which has no accounts.
    pub owner: Option<&'a str>,
}

/// Whether `key` holds exactly the bytes whose SHA-256 is `sha256_base64` (HEAD with the
/// stored checksum; nothing is downloaded). An object there with another digest, or
/// none recorded, does not count: it is uploaded again.
pub async fn holds(
    client: &Client,
    bucket: &Bucket<'_>,
    key: &str,
    sha256_base64: &str,
) -> Result<bool, Error> {
    let head = client
        .head_object()
        .bucket(bucket.name)
        .set_expected_bucket_owner(bucket.owner.map(str::to_string))
        .key(key)
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await;
    match head {
        Ok(out) => Ok(out.checksum_sha256() == Some(sha256_base64)),
        Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
        Err(e) => Err(Error(AwsError::from_sdk(SERVICE, "HeadObject", e))),
    }
}

/// Uploads `bytes` to `key`. S3 checks the SHA-256 (base64 of the raw digest) and
/// refuses a body that arrived damaged; nothing is stored under the key then.
pub async fn put(
    client: &Client,
    bucket: &Bucket<'_>,
    key: &str,
    bytes: Vec<u8>,
    sha256_base64: &str,
    content_type: &str,
) -> Result<(), Error> {
    client
        .put_object()
        .bucket(bucket.name)
        .set_expected_bucket_owner(bucket.owner.map(str::to_string))
        .key(key)
        .body(ByteStream::from(bytes))
        // The algorithm named with its value: S3 keeps the checksum with the object, and
        // `holds` compares it on the next run.
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
        .checksum_sha256(sha256_base64)
        .content_type(content_type)
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk(SERVICE, "PutObject", e)))?;
    Ok(())
}

/// The HTTPS URL CloudFormation reads `key` from (`TemplateURL`). CloudFormation fetches
/// it itself, from S3, so it is S3's own address whatever endpoint this process's
/// clients use (a VPC or FIPS endpoint means nothing to the service; a local endpoint
/// reads the bucket from the host name as S3 does).
pub fn object_url(sdk: &aws_config::SdkConfig, bucket: &str, key: &str) -> String {
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://{bucket}.s3.{region}.{domain}/{key}")
}

/// How a conditional write or delete came out.
#[derive(Debug, PartialEq, Eq)]
pub enum Conditional {
    /// Done; the object's new ETag (none after a delete).
    Done(Option<String>),
    /// The condition did not hold: the object is there (`If-None-Match`), gone, or
    /// changed (`If-Match`).
    Refused,
}

/// S3 answers a condition that did not hold with 412, and a race between two
/// conditional writes of one key with 409; a missing key for `If-Match` is 404.
fn refused<E>(e: &aws_sdk_s3::error::SdkError<E>) -> bool {
    e.raw_response()
        .is_some_and(|r| matches!(r.status().as_u16(), 404 | 409 | 412))
}

/// Writes `body` to `key` only when the key holds nothing (`If-None-Match: *`), or only
/// when it still holds the object whose ETag is `etag` (`If-Match`).
pub async fn put_conditional(
    client: &Client,
    bucket: &Bucket<'_>,
    key: &str,
    body: Vec<u8>,
    etag: Option<&str>,
) -> Result<Conditional, Error> {
    let request = client
        .put_object()
        .bucket(bucket.name)
        .set_expected_bucket_owner(bucket.owner.map(str::to_string))
        .key(key)
        .body(ByteStream::from(body))
        .content_type("application/json");
    let request = match etag {
        Some(etag) => request.if_match(etag),
        None => request.if_none_match("*"),
    };
    match request.send().await {
        Ok(out) => Ok(Conditional::Done(out.e_tag().map(str::to_string))),
        Err(e) if refused(&e) => Ok(Conditional::Refused),
        Err(e) => Err(Error(AwsError::from_sdk(SERVICE, "PutObject", e))),
    }
}

/// The object at `key` and its ETag; `None` when there is none.
pub async fn get(
    client: &Client,
    bucket: &Bucket<'_>,
    key: &str,
) -> Result<Option<(Vec<u8>, String)>, Error> {
    let got = client
        .get_object()
        .bucket(bucket.name)
        .set_expected_bucket_owner(bucket.owner.map(str::to_string))
        .key(key)
        .send()
        .await;
    let out = match got {
        Ok(out) => out,
        Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
        Err(e) => return Err(Error(AwsError::from_sdk(SERVICE, "GetObject", e))),
    };
    let etag = out.e_tag().unwrap_or_default().to_string();
    let body = out.body.collect().await.map_err(|e| {
        Error(AwsError {
            service: SERVICE,
            operation: "GetObject",
            kind: runtime::aws::ErrorKind::Network,
            code: None,
            message: format!("reading s3://{}/{key}: {e}", bucket.name),
        })
    })?;
    Ok(Some((body.into_bytes().to_vec(), etag)))
}

/// Deletes `key` only while it holds the object whose ETag is `etag`.
pub async fn delete_if_match(
    client: &Client,
    bucket: &Bucket<'_>,
    key: &str,
    etag: &str,
) -> Result<Conditional, Error> {
    let deleted = client
        .delete_object()
        .bucket(bucket.name)
        .set_expected_bucket_owner(bucket.owner.map(str::to_string))
        .key(key)
        .if_match(etag)
        .send()
        .await;
    match deleted {
        Ok(_) => Ok(Conditional::Done(None)),
        Err(e) if refused(&e) => Ok(Conditional::Refused),
        Err(e) => Err(Error(AwsError::from_sdk(SERVICE, "DeleteObject", e))),
    }
}
