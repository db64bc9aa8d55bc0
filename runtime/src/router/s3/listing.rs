//! ListObjectsV2, ListObjects and ListObjectVersions over directories.
//!
//! S3 lists a bucket's keys in UTF-8 byte order; READDIR returns names in no order. A
//! depth-first walk that reads each directory whole, sorts it (a directory sorting as
//! `name/`, which is where its keys fall: `a-b` < `a/b` < `a0`), and descends in that
//! order yields exactly S3's order. Memory holds only the directories on the path being
//! walked, never the bucket.
//!
//! - Delimiter `/` (how tools browse): one directory is read, its subdirectories are
//!   common prefixes, nothing below is touched.
//! - No delimiter, or another one: the recursive walk; keys rolling up into one common
//!   prefix are counted once, and a directory whose every key rolls up into the same
//!   prefix is not entered.
//! - A page resumes after the last key or prefix it returned (the continuation token
//!   carries it), so any router task can serve the next page. Reading a directory of a
//!   million names for every page would be quadratic: a sorted directory is kept in a
//!   bounded cache while it is paged through, checked against the directory's id and
//!   modification time, so a changed directory is read again.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result};

use super::names::{self, ObjectPath};
use super::objects::{check_version, object_owner};
use super::{Store, backend_error, timestamp};
use crate::router::backend::{BackendError, EntryKind, Stat};
use crate::router::path::FilePath;

/// S3's default and largest page.
const MAX_KEYS: usize = 1000;

/// Directories smaller than this are read again for every page (a round trip or two);
/// larger ones are cached while paged through.
const CACHE_FROM: usize = 4096;

/// The entries all cached directories may hold together (about 80 bytes each with the
/// name: 2 M entries, some 160 MiB, is a directory of two million files).
const CACHE_ENTRIES: usize = 2_000_000;

/// How long one page may walk. A page that runs out of time ends early with what it
/// found (truncated, so the client asks for the next); one that found nothing in that
/// time (a tree of empty directories) is refused instead of walking on.
const PAGE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a listing waits for its turn (`Limits::listings` run at once).
const QUEUE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// How many sidecars a page reads at once (for its ETags).
const SIDECAR_READS: usize = 32;

/// One directory, sorted in S3 order. Names share one buffer: a million entries cost
/// their names plus 48 bytes each.
#[derive(Debug, Default)]
pub struct Sorted {
    names: String,
    entries: Vec<Packed>,
}

#[derive(Debug, Clone, Copy)]
struct Packed {
    at: u32,
    len: u16,
    dir: bool,
    size: u64,
    modified: (u64, u32),
    file_id: u64,
}

impl Sorted {
    fn name(&self, e: &Packed) -> &str {
        let at = e.at as usize;
        self.names.get(at..at + e.len as usize).unwrap_or("")
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn stat(e: &Packed) -> Stat {
        Stat {
            kind: if e.dir {
                EntryKind::Dir
            } else {
                EntryKind::File
            },
            size: e.size,
            modified: e.modified,
            file_id: e.file_id,
        }
    }

    /// Files and directories only: a symbolic link, device or FIFO is not an object.
    fn from_entries(entries: Vec<crate::router::backend::DirEntry>) -> Result<Self, BackendError> {
        let mut sorted = Sorted {
            names: String::with_capacity(entries.iter().map(|e| e.name.len()).sum()),
            entries: Vec::with_capacity(entries.len()),
        };
        for e in entries {
            let dir = match e.stat.kind {
                EntryKind::File => false,
                EntryKind::Dir => true,
                _ => continue,
            };
            let at = u32::try_from(sorted.names.len())
                .map_err(|_| BackendError::Failed("a directory too large to list".into()))?;
            let len = u16::try_from(e.name.len()).unwrap_or(u16::MAX);
            sorted.names.push_str(&e.name);
            sorted.entries.push(Packed {
                at,
                len,
                dir,
                size: e.stat.size,
                modified: e.stat.modified,
                file_id: e.stat.file_id,
            });
        }
        let names = std::mem::take(&mut sorted.names);
        sorted.entries.sort_unstable_by(|a, b| {
            let name = |e: &Packed| {
                names
                    .get(e.at as usize..e.at as usize + e.len as usize)
                    .unwrap_or("")
            };
            s3_order(name(a), a.dir, name(b), b.dir)
        });
        sorted.names = names;
        Ok(sorted)
    }

    /// The first entry whose keys can come after `rest` (a key relative to this
    /// directory): a directory whose prefix `rest` is inside is entered, not skipped.
    fn position_after(&self, rest: &str) -> usize {
        let i = self
            .entries
            .partition_point(|e| sort_key_cmp(self.name(e), e.dir, rest) != Ordering::Greater);
        if i > 0 {
            let prev = &self.entries[i - 1];
            if prev.dir {
                let name = self.name(prev);
                if rest.len() > name.len()
                    && rest.starts_with(name)
                    && rest.as_bytes()[name.len()] == b'/'
                {
                    return i - 1;
                }
            }
        }
        i
    }

    /// The first entry not before `prefix` (a name prefix).
    fn position_from(&self, prefix: &str) -> usize {
        self.entries
            .partition_point(|e| sort_key_cmp(self.name(e), e.dir, prefix) == Ordering::Less)
    }
}

/// S3 order of two names in one directory, a directory compared as `name/`.
fn s3_order(a: &str, a_dir: bool, b: &str, b_dir: bool) -> Ordering {
    let ka = a.bytes().chain(a_dir.then_some(b'/'));
    let kb = b.bytes().chain(b_dir.then_some(b'/'));
    ka.cmp(kb)
}

/// An entry's sort key (`name` or `name/`) against a plain string.
fn sort_key_cmp(name: &str, dir: bool, other: &str) -> Ordering {
    name.bytes().chain(dir.then_some(b'/')).cmp(other.bytes())
}

/// Sorted directories kept while they are paged through.
#[derive(Debug, Default)]
pub struct DirCache {
    inner: Mutex<HashMap<String, CachedDir>>,
}

#[derive(Debug)]
struct CachedDir {
    file_id: u64,
    modified: (u64, u32),
    sorted: Arc<Sorted>,
}

impl DirCache {
    fn get(&self, path: &FilePath, stat: &Stat) -> Option<Arc<Sorted>> {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.get(path.as_str())
            .filter(|c| c.file_id == stat.file_id && c.modified == stat.modified)
            .map(|c| c.sorted.clone())
    }

    fn put(&self, path: &FilePath, stat: &Stat, sorted: Arc<Sorted>) {
        if sorted.len() < CACHE_FROM || sorted.len() > CACHE_ENTRIES {
            return;
        }
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut total: usize = map.values().map(|c| c.sorted.len()).sum();
        // Evict until the new one fits: the cache is for the few directories being
        // paged now, so which one goes matters little.
        while total + sorted.len() > CACHE_ENTRIES {
            let Some(victim) = map.keys().next().cloned() else {
                break;
            };
            if let Some(c) = map.remove(&victim) {
                total -= c.sorted.len();
            }
        }
        map.insert(
            path.as_str().to_string(),
            CachedDir {
                file_id: stat.file_id,
                modified: stat.modified,
                sorted,
            },
        );
    }
}

/// Reads a directory whole and sorts it; `stat` is the directory's own, when known (to
/// use the cache).
async fn read_dir(
    store: &Store,
    dir: &FilePath,
    stat: Option<&Stat>,
) -> Result<Arc<Sorted>, BackendError> {
    if let Some(stat) = stat
        && let Some(sorted) = store.dirs.get(dir, stat)
    {
        return Ok(sorted);
    }
    let (_, _, entries) = store
        // All pages from one target: directory cookies are the server's.
        .read(dir, |target, client| async move {
            target.call(client.list_all(dir)).await
        })
        .await?;
    let sorted = Arc::new(Sorted::from_entries(entries)?);
    if let Some(stat) = stat {
        store.dirs.put(dir, stat, sorted.clone());
    }
    Ok(sorted)
}

/// One item of a listing page.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Object { key: String, stat: Stat },
    Prefix(String),
}

impl Item {
    fn key(&self) -> &str {
        match self {
            Item::Object { key, .. } | Item::Prefix(key) => key,
        }
    }
}

/// What to list.
#[derive(Debug, Clone)]
struct Query {
    bucket: String,
    prefix: String,
    delimiter: Option<String>,
    /// Resume after this key or common prefix.
    after: Option<String>,
    max: usize,
}

#[derive(Debug)]
struct Page {
    items: Vec<Item>,
    truncated: bool,
}

/// A directory being walked.
struct Frame {
    dir: FilePath,
    /// Its keys' common start, relative to the bucket: `""` or `a/b/`.
    key_prefix: String,
    sorted: Arc<Sorted>,
    next: usize,
    /// The start directory only: names must begin with this.
    filter: Option<String>,
}

async fn walk(store: &Store, q: &Query, deadline: tokio::time::Instant) -> S3Result<Page> {
    let bucket_dir = names::bucket_dir(&q.bucket)?;
    let bucket_stat = match store.stat(&bucket_dir).await {
        Ok(s) if s.kind == EntryKind::Dir => s,
        Ok(_) | Err(BackendError::NotFound | BackendError::NotADirectory) => {
            return Err(super::no_such_bucket(&q.bucket));
        }
        Err(e) => return Err(backend_error(&e, &q.bucket)),
    };
    let mut items: Vec<Item> = Vec::new();
    if q.max == 0 {
        return Ok(Page {
            items,
            truncated: false,
        });
    }
    // The start directory is the deepest one the prefix names whole.
    let (start_prefix, filter) = match q.prefix.rfind('/') {
        Some(i) => (&q.prefix[..=i], &q.prefix[i + 1..]),
        None => ("", q.prefix.as_str()),
    };
    let start_dir = if start_prefix.is_empty() {
        bucket_dir.clone()
    } else {
        // A prefix no key can have (`a//`, `../`) lists nothing.
        match names::object(&q.bucket, start_prefix) {
            Ok(o) => o.path,
            Err(_) => {
                return Ok(Page {
                    items,
                    truncated: false,
                });
            }
        }
    };
    let start_stat = if start_prefix.is_empty() {
        Some(bucket_stat)
    } else {
        match store.stat(&start_dir).await {
            Ok(s) if s.kind == EntryKind::Dir => Some(s),
            Ok(_) | Err(BackendError::NotFound | BackendError::NotADirectory) => {
                return Ok(Page {
                    items,
                    truncated: false,
                });
            }
            Err(e) => return Err(backend_error(&e, &q.prefix)),
        }
    };
    // After a common prefix, nothing it covers comes again.
    let skip_under = match (&q.delimiter, &q.after) {
        (Some(d), Some(a)) if a.ends_with(d.as_str()) && a.len() > q.prefix.len() => {
            Some(a.clone())
        }
        _ => None,
    };
    let want = q.max + 1;
    let emit = |item: Item, items: &mut Vec<Item>| -> bool {
        if let Some(s) = &skip_under
            && item.key().starts_with(s.as_str())
        {
            return items.len() >= want;
        }
        if q.after.as_deref().is_some_and(|a| item.key() <= a) {
            return items.len() >= want;
        }
        let item = match (&q.delimiter, item) {
            (Some(d), Item::Object { key, stat }) => match key[q.prefix.len()..].find(d.as_str()) {
                Some(i) => Item::Prefix(key[..q.prefix.len() + i + d.len()].to_string()),
                None => Item::Object { key, stat },
            },
            (_, item) => item,
        };
        if let (Item::Prefix(p), Some(Item::Prefix(last))) = (&item, items.last())
            && p == last
        {
            return items.len() >= want;
        }
        items.push(item);
        items.len() >= want
    };

    // The folder object the prefix names (`a/b/` with prefix `a/b/`).
    if !start_prefix.is_empty()
        && filter.is_empty()
        && let Some(stat) = &start_stat
        && is_folder(store, &start_dir, stat).await?
        && emit(
            Item::Object {
                key: start_prefix.to_string(),
                stat: stat.clone(),
            },
            &mut items,
        )
    {
        return Ok(finish(items, q.max));
    }

    let sorted = read_dir(store, &start_dir, start_stat.as_ref())
        .await
        .map_err(|e| backend_error(&e, &q.prefix))?;
    let mut stack = vec![Frame::new(
        start_dir,
        start_prefix.to_string(),
        sorted,
        q.after.as_deref(),
        Some(filter.to_string()),
    )];
    let slash_only = q.delimiter.as_deref() == Some("/");
    while let Some(frame) = stack.last_mut() {
        let Some(e) = frame.sorted.entries.get(frame.next).copied() else {
            stack.pop();
            continue;
        };
        frame.next += 1;
        let name = frame.sorted.name(&e).to_string();
        if let Some(f) = &frame.filter
            && !name.starts_with(f.as_str())
        {
            if sort_key_cmp(&name, e.dir, f) == Ordering::Greater {
                // Past every name with the prefix: the start directory is done.
                stack.pop();
            }
            continue;
        }
        let stat = Sorted::stat(&e);
        if !e.dir {
            let key = format!("{}{name}", frame.key_prefix);
            if emit(Item::Object { key, stat }, &mut items) {
                return Ok(finish(items, q.max));
            }
            continue;
        }
        let key_prefix = format!("{}{name}/", frame.key_prefix);
        let dir = frame.dir.join(&name);
        // Every key below rolls up into one common prefix: no need to go in.
        if let Some(d) = &q.delimiter
            && (slash_only || key_prefix[q.prefix.len()..].contains(d.as_str()))
        {
            let i = key_prefix[q.prefix.len()..].find(d.as_str()).unwrap_or(0);
            let common = key_prefix[..q.prefix.len() + i + d.len()].to_string();
            if emit(Item::Prefix(common), &mut items) {
                return Ok(finish(items, q.max));
            }
            continue;
        }
        if q.after
            .as_deref()
            .is_some_and(|a| key_prefix.as_str() <= a && !a.starts_with(key_prefix.as_str()))
        {
            continue;
        }
        if tokio::time::Instant::now() >= deadline {
            if items.is_empty() {
                return Err(S3Error::with_message(
                    S3ErrorCode::SlowDown,
                    format!(
                        "the listing walked directories for {} s without finding a key: list with a delimiter or a longer prefix",
                        PAGE_DEADLINE.as_secs()
                    ),
                ));
            }
            // Everything up to the last item is listed; the next page resumes there.
            return Ok(Page {
                items,
                truncated: true,
            });
        }
        if is_folder(store, &dir, &stat).await?
            && emit(
                Item::Object {
                    key: key_prefix.clone(),
                    stat: stat.clone(),
                },
                &mut items,
            )
        {
            return Ok(finish(items, q.max));
        }
        let sorted = read_dir(store, &dir, Some(&stat))
            .await
            .map_err(|e| backend_error(&e, &key_prefix))?;
        let child = Frame::new(dir, key_prefix, sorted, q.after.as_deref(), None);
        stack.push(child);
    }
    Ok(finish(items, q.max))
}

impl Frame {
    fn new(
        dir: FilePath,
        key_prefix: String,
        sorted: Arc<Sorted>,
        after: Option<&str>,
        filter: Option<String>,
    ) -> Self {
        let filter = filter.filter(|f| !f.is_empty());
        let mut next = 0;
        if let Some(a) = after
            && let Some(rest) = a.strip_prefix(key_prefix.as_str())
        {
            next = sorted.position_after(rest);
        }
        if let Some(f) = &filter {
            next = next.max(sorted.position_from(f));
        }
        Frame {
            dir,
            key_prefix,
            sorted,
            next,
            filter,
        }
    }
}

fn finish(mut items: Vec<Item>, max: usize) -> Page {
    let truncated = items.len() > max;
    items.truncate(max);
    Page { items, truncated }
}

/// Whether a directory is a folder object (made by a PUT of `key/`).
async fn is_folder(store: &Store, dir: &FilePath, stat: &Stat) -> S3Result<bool> {
    let result = store
        .read(dir, |target, client| async move {
            store.meta.load(&target, &client, stat, dir).await
        })
        .await;
    match result {
        Ok((_, _, meta)) => Ok(meta.etag == "d41d8cd98f00b204e9800998ecf8427e"),
        Err(e) => Err(backend_error(&e, dir.as_str())),
    }
}

/// The ETags of a page's objects, read from their sidecars several at a time.
async fn etags(store: &Store, bucket: &str, items: &[Item]) -> S3Result<Vec<Option<String>>> {
    // Owned inputs: the futures are polled together and must not borrow each other.
    let lookups = items
        .iter()
        .cloned()
        .map(|item| etag_of(store.clone(), bucket.to_string(), item));
    futures_util::StreamExt::collect::<Vec<_>>(futures_util::StreamExt::buffered(
        futures_util::stream::iter(lookups),
        SIDECAR_READS,
    ))
    .await
    .into_iter()
    .collect()
}

async fn etag_of(store: Store, bucket: String, item: Item) -> S3Result<Option<String>> {
    let Item::Object { key, stat } = item else {
        return Ok(None);
    };
    let o: ObjectPath = names::object(&bucket, &key)?;
    let (path, stat, store) = (&o.path, &stat, &store);
    let (_, _, meta) = store
        .read(path, |target, client| async move {
            store.meta.load(&target, &client, stat, path).await
        })
        .await
        .map_err(|e| backend_error(&e, &key))?;
    Ok(Some(meta.etag.clone()))
}

fn max_keys(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        None => Ok(MAX_KEYS),
        Some(n) if n < 0 => Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            "max-keys must be 0 or more",
        )),
        Some(n) => Ok(usize::try_from(n).unwrap_or(MAX_KEYS).min(MAX_KEYS)),
    }
}

fn check_delimiter(delimiter: Option<String>) -> Option<String> {
    delimiter.filter(|d| !d.is_empty())
}

/// Characters `encoding-type=url` leaves as they are.
const URL_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

struct Encoder(bool);

impl Encoder {
    fn new(encoding: Option<&EncodingType>) -> S3Result<Self> {
        match encoding.map(EncodingType::as_str) {
            None => Ok(Encoder(false)),
            Some(EncodingType::URL) => Ok(Encoder(true)),
            Some(other) => Err(S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                format!("Invalid Encoding Method specified in Request: {other:?}"),
            )),
        }
    }

    fn text(&self, s: &str) -> String {
        if self.0 {
            utf8_percent_encode(s, URL_KEEP).to_string()
        } else {
            s.to_string()
        }
    }

    fn opt(&self, s: Option<&str>) -> Option<String> {
        s.map(|s| self.text(s))
    }
}

fn token(last: &str) -> String {
    URL_SAFE_NO_PAD.encode(last.as_bytes())
}

fn untoken(token: &str) -> S3Result<String> {
    URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                "The continuation token provided is incorrect",
            )
        })
}

fn objects(
    items: &[Item],
    etags: &[Option<String>],
    enc: &Encoder,
    with_owner: bool,
) -> (Vec<Object>, Vec<CommonPrefix>) {
    let mut contents = Vec::new();
    let mut prefixes = Vec::new();
    for (item, etag) in items.iter().zip(etags) {
        match item {
            Item::Object { key, stat } => contents.push(Object {
                key: Some(enc.text(key)),
                size: i64::try_from(if stat.kind == EntryKind::Dir {
                    0
                } else {
                    stat.size
                })
                .ok(),
                last_modified: Some(timestamp(stat.modified)),
                e_tag: etag.clone().map(ETag::Strong),
                storage_class: Some(ObjectStorageClass::from_static(
                    ObjectStorageClass::STANDARD,
                )),
                owner: with_owner.then(object_owner),
                ..Object::default()
            }),
            Item::Prefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(enc.text(p)),
            }),
        }
    }
    (contents, prefixes)
}

/// One page as every listing operation answers it: what was asked, how it is encoded,
/// and the page's objects and common prefixes.
struct Listed {
    enc: Encoder,
    /// The prefix and delimiter as asked, encoded for the answer.
    prefix: String,
    delimiter: Option<String>,
    max: usize,
    truncated: bool,
    /// The last key or common prefix of the page (not encoded).
    last: Option<String>,
    count: usize,
    contents: Vec<Object>,
    prefixes: Vec<CommonPrefix>,
}

impl Listed {
    /// What the next page resumes after, when there is one.
    fn next(&self) -> Option<&str> {
        if self.truncated {
            self.last.as_deref()
        } else {
            None
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn list_page(
    store: &Store,
    bucket: &str,
    encoding: Option<&EncodingType>,
    max_keys_asked: Option<i32>,
    prefix: Option<&str>,
    delimiter: Option<&str>,
    after: Option<String>,
    with_owner: bool,
) -> S3Result<Listed> {
    let enc = Encoder::new(encoding)?;
    let max = max_keys(max_keys_asked)?;
    let q = Query {
        bucket: bucket.to_string(),
        prefix: prefix.unwrap_or_default().to_string(),
        delimiter: check_delimiter(delimiter.map(str::to_string)),
        after: after.filter(|a| !a.is_empty()),
        max,
    };
    // Each walk holds sorted directories in memory: only so many at once.
    let Ok(Ok(_turn)) =
        tokio::time::timeout(QUEUE_DEADLINE, store.listings.clone().acquire_owned()).await
    else {
        return Err(S3Error::with_message(
            S3ErrorCode::SlowDown,
            "too many listings are running on this router; retry after a pause",
        ));
    };
    let page = walk(store, &q, tokio::time::Instant::now() + PAGE_DEADLINE).await?;
    let etags = etags(store, &q.bucket, &page.items).await?;
    let (contents, prefixes) = objects(&page.items, &etags, &enc, with_owner);
    Ok(Listed {
        prefix: enc.text(&q.prefix),
        delimiter: enc.opt(q.delimiter.as_deref()),
        enc,
        max,
        truncated: page.truncated,
        last: page.items.last().map(|i| i.key().to_string()),
        count: page.items.len(),
        contents,
        prefixes,
    })
}

pub async fn list_v2(store: &Store, input: ListObjectsV2Input) -> S3Result<ListObjectsV2Output> {
    let after = match (&input.continuation_token, &input.start_after) {
        (Some(t), _) => Some(untoken(t)?),
        (None, s) => s.clone(),
    };
    let l = list_page(
        store,
        &input.bucket,
        input.encoding_type.as_ref(),
        input.max_keys,
        input.prefix.as_deref(),
        input.delimiter.as_deref(),
        after,
        input.fetch_owner.unwrap_or(false),
    )
    .await?;
    Ok(ListObjectsV2Output {
        name: Some(input.bucket),
        max_keys: i32::try_from(l.max).ok(),
        key_count: i32::try_from(l.count).ok(),
        is_truncated: Some(l.truncated),
        continuation_token: input.continuation_token,
        next_continuation_token: l.next().map(token),
        start_after: l.enc.opt(input.start_after.as_deref()),
        encoding_type: input.encoding_type,
        prefix: Some(l.prefix),
        delimiter: l.delimiter,
        contents: Some(l.contents),
        common_prefixes: Some(l.prefixes),
        ..ListObjectsV2Output::default()
    })
}

pub async fn list_v1(store: &Store, input: ListObjectsInput) -> S3Result<ListObjectsOutput> {
    let l = list_page(
        store,
        &input.bucket,
        input.encoding_type.as_ref(),
        input.max_keys,
        input.prefix.as_deref(),
        input.delimiter.as_deref(),
        input.marker.clone(),
        true,
    )
    .await?;
    Ok(ListObjectsOutput {
        name: Some(input.bucket),
        marker: Some(l.enc.text(input.marker.as_deref().unwrap_or(""))),
        max_keys: i32::try_from(l.max).ok(),
        is_truncated: Some(l.truncated),
        next_marker: l.next().map(|k| l.enc.text(k)),
        encoding_type: input.encoding_type,
        prefix: Some(l.prefix),
        delimiter: l.delimiter,
        contents: Some(l.contents),
        common_prefixes: Some(l.prefixes),
        ..ListObjectsOutput::default()
    })
}

/// Versioning is not kept: every object is listed once, as version `null`, so that
/// versioning-aware tools and clean-up scripts work.
pub async fn list_versions(
    store: &Store,
    input: ListObjectVersionsInput,
) -> S3Result<ListObjectVersionsOutput> {
    check_version(input.version_id_marker.as_deref().filter(|v| !v.is_empty()))?;
    let l = list_page(
        store,
        &input.bucket,
        input.encoding_type.as_ref(),
        input.max_keys,
        input.prefix.as_deref(),
        input.delimiter.as_deref(),
        input.key_marker.clone(),
        true,
    )
    .await?;
    let next = l.next().map(|k| l.enc.text(k));
    let versions = l
        .contents
        .into_iter()
        .map(|o| ObjectVersion {
            e_tag: o.e_tag,
            is_latest: Some(true),
            key: o.key,
            last_modified: o.last_modified,
            owner: o.owner,
            size: o.size,
            storage_class: Some(ObjectVersionStorageClass::from_static(
                ObjectVersionStorageClass::STANDARD,
            )),
            version_id: Some("null".into()),
            ..ObjectVersion::default()
        })
        .collect();
    Ok(ListObjectVersionsOutput {
        name: Some(input.bucket),
        key_marker: Some(l.enc.text(input.key_marker.as_deref().unwrap_or(""))),
        version_id_marker: input.version_id_marker,
        max_keys: i32::try_from(l.max).ok(),
        is_truncated: Some(l.truncated),
        next_version_id_marker: next.as_ref().map(|_| "null".to_string()),
        next_key_marker: next,
        encoding_type: input.encoding_type,
        prefix: Some(l.prefix),
        delimiter: l.delimiter,
        versions: Some(versions),
        common_prefixes: Some(l.prefixes),
        ..ListObjectVersionsOutput::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::backend::DirEntry;

    fn entry(name: &str, dir: bool) -> DirEntry {
        DirEntry {
            name: name.into(),
            stat: Stat {
                kind: if dir { EntryKind::Dir } else { EntryKind::File },
                size: 1,
                modified: (0, 0),
                file_id: 1,
            },
        }
    }

    fn names(s: &Sorted) -> Vec<String> {
        s.entries
            .iter()
            .map(|e| format!("{}{}", s.name(e), if e.dir { "/" } else { "" }))
            .collect()
    }

    #[test]
    fn a_directory_sorts_where_its_keys_fall() {
        let s = Sorted::from_entries(vec![
            entry("a0", false),
            entry("a", true),
            entry("a-b", false),
            entry("b", false),
            entry("A", false),
            entry("é", false),
        ])
        .unwrap();
        // `a-b` < `a/…` < `a0`: '-' (0x2d) < '/' (0x2f) < '0' (0x30); bytes, not chars.
        assert_eq!(names(&s), ["A", "a-b", "a/", "a0", "b", "é"]);
    }

    #[test]
    fn positions_resume_inside_a_directory_that_holds_the_marker() {
        let s = Sorted::from_entries(vec![
            entry("a", true),
            entry("a-b", false),
            entry("a0", false),
            entry("b", false),
        ])
        .unwrap();
        // After `a/x`, the directory `a` is entered again (keys after a/x may be in it).
        assert_eq!(s.position_after("a/x"), 1);
        // After `a-b`, the next is the directory `a`.
        assert_eq!(s.position_after("a-b"), 1);
        assert_eq!(s.position_after("a0"), 3);
        assert_eq!(s.position_after("z"), 4);
        assert_eq!(s.position_from("a0"), 2);
        assert_eq!(s.position_from("a/"), 1);
    }

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        for key in ["", "a/b", "測試/ü", "x y+z"] {
            assert_eq!(untoken(&token(key)).unwrap(), key);
        }
        assert!(untoken("***").is_err());
    }

    #[test]
    fn url_encoding_keeps_slashes_and_unreserved() {
        let e = Encoder(true);
        assert_eq!(e.text("a b/c+d~é"), "a%20b/c%2Bd~%C3%A9");
        assert_eq!(Encoder(false).text("a b"), "a b");
    }
}
