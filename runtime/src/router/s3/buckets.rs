//! Buckets: the top-level directories of the export.
//!
//! CreateBucket makes the directory; DeleteBucket removes it only when empty (the
//! router never deletes a tree); ListBuckets lists the directories whose names are valid
//! bucket names (so the router's own `.efs-router` and anything else at the root stay
//! out of sight). A bucket's creation date is its directory's modification time, the
//! closest a file system keeps.

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result};

use super::names;
use super::{Store, backend_error, no_such_bucket, owner, timestamp};
use crate::router::backend::{BackendError, EntryKind};
use crate::router::path::FilePath;

pub async fn create(store: &Store, input: CreateBucketInput) -> S3Result<CreateBucketOutput> {
    let dir = names::bucket_dir(&input.bucket)?;
    if let Some(constraint) = input
        .create_bucket_configuration
        .as_ref()
        .and_then(|c| c.location_constraint.as_ref())
        && constraint.as_str() != store.region
        && !(constraint.as_str().is_empty() && store.region == "us-east-1")
    {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidLocationConstraint,
            format!(
                "this endpoint serves region {:?}; the location constraint {:?} cannot be met",
                store.region,
                constraint.as_str()
            ),
        ));
    }
    let (target, client) = store.writer(&dir)?;
    match target.call(client.mkdir(&dir)).await {
        Ok(()) => Ok(CreateBucketOutput {
            location: Some(format!("/{}", input.bucket)),
        }),
        // One identity owns every bucket. S3 answers success for a bucket you own in
        // us-east-1 (its legacy behaviour), BucketAlreadyOwnedByYou elsewhere.
        Err(BackendError::Exists) if store.region == "us-east-1" => Ok(CreateBucketOutput {
            location: Some(format!("/{}", input.bucket)),
        }),
        Err(BackendError::Exists) => Err(S3Error::with_message(
            S3ErrorCode::BucketAlreadyOwnedByYou,
            format!("bucket {} already exists", input.bucket),
        )),
        Err(e) => {
            store.failed(&target, &client, &e);
            Err(backend_error(&e, &input.bucket))
        }
    }
}

pub async fn head(store: &Store, input: HeadBucketInput) -> S3Result<HeadBucketOutput> {
    if store.bucket_exists(&input.bucket).await? {
        Ok(HeadBucketOutput {
            bucket_region: Some(store.region.clone()),
            ..HeadBucketOutput::default()
        })
    } else {
        Err(no_such_bucket(&input.bucket))
    }
}

pub async fn location(
    store: &Store,
    input: GetBucketLocationInput,
) -> S3Result<GetBucketLocationOutput> {
    if !store.bucket_exists(&input.bucket).await? {
        return Err(no_such_bucket(&input.bucket));
    }
    // us-east-1 is reported as no constraint, as S3 does.
    let location =
        (store.region != "us-east-1").then(|| BucketLocationConstraint::from(store.region.clone()));
    Ok(GetBucketLocationOutput {
        location_constraint: location,
    })
}

pub async fn delete(store: &Store, input: DeleteBucketInput) -> S3Result<DeleteBucketOutput> {
    let dir = names::bucket_dir(&input.bucket)?;
    let (target, client) = store.writer(&dir)?;
    match target.call(client.remove(&dir)).await {
        Ok(()) => Ok(DeleteBucketOutput {}),
        Err(BackendError::NotFound) => Err(no_such_bucket(&input.bucket)),
        Err(BackendError::NotEmpty | BackendError::Exists) => Err(S3Error::with_message(
            S3ErrorCode::BucketNotEmpty,
            format!(
                "bucket {} is not empty: delete its objects (and any other files in its directory) first",
                input.bucket
            ),
        )),
        Err(e) => {
            store.failed(&target, &client, &e);
            Err(backend_error(&e, &input.bucket))
        }
    }
}

pub async fn list(store: &Store, input: ListBucketsInput) -> S3Result<ListBucketsOutput> {
    let root = &FilePath::default();
    let (_, _, entries) = store
        .read(root, |target, client| async move {
            target.call(client.list_all(root)).await
        })
        .await
        .map_err(|e| backend_error(&e, "the bucket list"))?;
    let mut buckets: Vec<Bucket> = entries
        .into_iter()
        .filter(|e| e.stat.kind == EntryKind::Dir && names::valid_bucket(&e.name))
        .filter(|e| {
            input
                .prefix
                .as_deref()
                .is_none_or(|p| e.name.starts_with(p))
        })
        .map(|e| Bucket {
            name: Some(e.name),
            creation_date: Some(timestamp(e.stat.modified)),
            bucket_region: Some(store.region.clone()),
        })
        .collect();
    buckets.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(after) = &input.continuation_token {
        buckets.retain(|b| b.name.as_deref().is_some_and(|n| n > after.as_str()));
    }
    let max = input
        .max_buckets
        .and_then(|m| usize::try_from(m).ok())
        .unwrap_or(10_000)
        .clamp(1, 10_000);
    let next = (buckets.len() > max)
        .then(|| buckets.get(max - 1).and_then(|b| b.name.clone()))
        .flatten();
    buckets.truncate(max);
    Ok(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(owner()),
        prefix: input.prefix,
        continuation_token: next,
    })
}
