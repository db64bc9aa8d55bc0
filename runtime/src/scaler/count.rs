//! Counting regular files under a directory: exactly, in parallel, without following
//! symlinks, stopping early once the decision has what it needs, and never past a
//! deadline.
//!
//! On EFS every directory read is a network round trip, so the walk is latency-bound:
//! several threads each list one directory at a time from a shared stack. The file type
//! comes from the directory entry itself (`d_type`, which the Linux NFS client fills in
//! from READDIRPLUS), so a file costs no `stat` call and no path allocation; only
//! directories are turned into paths.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// How many entries a worker counts locally before publishing to the shared total and
/// checking the limit and the deadline: often enough to stop within a few milliseconds,
/// rarely enough that the shared counter is not contended.
const PUBLISH_EVERY: u64 = 4096;

#[derive(Debug, Clone)]
pub struct CountOptions {
    /// Stop once at least this many files have been seen.
    pub limit: Option<u64>,
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Give up with [`CountError::Deadline`] once this instant passes.
    pub deadline: Option<Instant>,
    /// Directories not entered, by path (the router's private state: its sidecars and
    /// uploads in flight are not the application's files).
    pub exclude: Vec<PathBuf>,
    /// Directories found but not yet listed, at most: a tree that is mostly directories
    /// (a million siblings) would otherwise hold all their paths at once and exhaust the
    /// function's memory before the deadline is checked.
    pub max_pending_dirs: usize,
}

/// About 100 bytes a pending path: 100 MB at the default.
pub const MAX_PENDING_DIRS: usize = 1_000_000;

impl Default for CountOptions {
    fn default() -> Self {
        CountOptions {
            limit: None,
            threads: default_threads(),
            deadline: None,
            exclude: Vec::new(),
            max_pending_dirs: MAX_PENDING_DIRS,
        }
    }
}

/// Threads for a local disk: one per core. Network file systems want more
/// (see `COUNT_THREADS` in the scaler's configuration).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// Regular files seen. Exact when `complete`; otherwise a lower bound of at least
    /// the limit.
    pub files: u64,
    /// The walk finished (false: stopped at the limit).
    pub complete: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CountError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error(
        "counting stopped at the deadline after {counted} files ({elapsed_ms} ms); raise the function timeout or point TARGET_DIRECTORY at a smaller tree"
    )]
    Deadline { counted: u64, elapsed_ms: u128 },
    #[error("a counting thread could not be started: {0}")]
    Thread(io::Error),
    #[error(
        "{} holds more than {pending} directories waiting to be counted; the tree is too wide to count in this memory: point TARGET_DIRECTORY at a smaller tree or raise the function's memory",
        path.display()
    )]
    TooWide { path: PathBuf, pending: usize },
}

/// Counts regular files under `root` (recursively; directories, symlinks, sockets,
/// FIFOs and devices are not counted, and symlinks are never followed). `root` itself
/// may be a symlink to a directory.
pub fn count_files(root: &Path, options: &CountOptions) -> Result<Count, CountError> {
    let started = Instant::now();
    match fs::metadata(root) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(CountError::NotADirectory {
                path: root.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(CountError::Read {
                path: root.to_path_buf(),
                source,
            });
        }
    }
    if options.limit == Some(0) {
        return Ok(Count {
            files: 0,
            complete: false,
        });
    }

    let walk = Walk {
        queue: Mutex::new(Queue {
            dirs: vec![root.to_path_buf()],
            busy: 0,
        }),
        wake: Condvar::new(),
        total: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        outcome: Mutex::new(None),
        limit: options.limit,
        deadline: options.deadline,
        root: root.to_path_buf(),
        exclude: options.exclude.clone(),
        max_pending: options.max_pending_dirs.max(1),
    };
    let threads = options.threads.max(1);
    std::thread::scope(|scope| {
        let mut spawned = 0;
        for i in 0..threads {
            let builder = std::thread::Builder::new().name(format!("count-{i}"));
            match builder.spawn_scoped(scope, || walk.work()) {
                Ok(_) => spawned += 1,
                Err(e) => {
                    walk.finish(Stop::Failed(CountError::Thread(e)));
                    break;
                }
            }
        }
        // Without a single worker nobody would ever drain the queue.
        if spawned == 0 {
            walk.finish(Stop::Failed(CountError::Thread(io::Error::other(
                "no thread started",
            ))));
        }
    });

    let files = walk.total.load(Ordering::Relaxed);
    match lock(&walk.outcome).take() {
        None => Ok(Count {
            files,
            complete: true,
        }),
        Some(Stop::Limit) => Ok(Count {
            files,
            complete: false,
        }),
        Some(Stop::Deadline) => Err(CountError::Deadline {
            counted: files,
            elapsed_ms: started.elapsed().as_millis(),
        }),
        Some(Stop::Failed(e)) => Err(e),
    }
}

enum Stop {
    Limit,
    Deadline,
    Failed(CountError),
}

struct Queue {
    /// Directories not yet listed. A stack, so the walk goes depth-first and the queue
    /// stays about as long as the tree is deep times its fan-out, not as wide as it is.
    dirs: Vec<PathBuf>,
    /// Workers currently listing a directory (and so possibly about to push more).
    busy: usize,
}

struct Walk {
    queue: Mutex<Queue>,
    wake: Condvar,
    total: AtomicU64,
    stop: AtomicBool,
    outcome: Mutex<Option<Stop>>,
    limit: Option<u64>,
    deadline: Option<Instant>,
    root: PathBuf,
    exclude: Vec<PathBuf>,
    max_pending: usize,
}

/// A worker that panicked cannot leave the queue or the outcome half-updated in a way
/// that matters (each update is a single assignment), so poisoning is ignored.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Walk {
    fn work(&self) {
        let mut subdirs = Vec::new();
        while let Some(dir) = self.next_dir() {
            let result = self.list(&dir, &mut subdirs);
            let mut queue = lock(&self.queue);
            queue.busy -= 1;
            let result = result.and_then(|()| {
                let pending = queue.dirs.len() + subdirs.len();
                if pending > self.max_pending {
                    Err(Stop::Failed(CountError::TooWide {
                        path: dir.clone(),
                        pending: self.max_pending,
                    }))
                } else {
                    Ok(())
                }
            });
            match result {
                Ok(()) => queue.dirs.append(&mut subdirs),
                Err(stop) => {
                    subdirs.clear();
                    drop(queue);
                    self.finish(stop);
                    continue;
                }
            }
            // Wake idle workers for the new directories, or everyone when the walk is
            // over (nothing queued, nobody listing).
            if !queue.dirs.is_empty() || queue.busy == 0 {
                self.wake.notify_all();
            }
        }
    }

    /// The next directory to list, or `None` when the walk is over or stopped.
    fn next_dir(&self) -> Option<PathBuf> {
        let mut queue = lock(&self.queue);
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            if let Some(dir) = queue.dirs.pop() {
                queue.busy += 1;
                return Some(dir);
            }
            if queue.busy == 0 {
                return None;
            }
            queue = self
                .wake
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn finish(&self, stop: Stop) {
        let mut outcome = lock(&self.outcome);
        // The first reason to stop wins; a later one (another thread hitting the limit a
        // moment after a read error) must not hide it.
        if outcome.is_none() {
            *outcome = Some(stop);
        }
        drop(outcome);
        self.stop.store(true, Ordering::Relaxed);
        let _queue = lock(&self.queue);
        self.wake.notify_all();
    }

    fn list(&self, dir: &Path, subdirs: &mut Vec<PathBuf>) -> Result<(), Stop> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            // Deleted between being listed in its parent and being opened: its files are
            // gone, so there is nothing to count. The root itself vanishing is an error.
            Err(e) if e.kind() == io::ErrorKind::NotFound && dir != self.root => return Ok(()),
            Err(source) => {
                return Err(Stop::Failed(CountError::Read {
                    path: dir.to_path_buf(),
                    source,
                }));
            }
        };
        let mut local = 0u64;
        // Entries of any kind since the last check: a directory of directories must be
        // bounded by the deadline and the pending limit as one of files is.
        let mut seen = 0u64;
        for entry in entries {
            seen += 1;
            if seen == PUBLISH_EVERY {
                self.publish(local)?;
                local = 0;
                seen = 0;
                if subdirs.len() > self.max_pending {
                    return Err(Stop::Failed(CountError::TooWide {
                        path: dir.to_path_buf(),
                        pending: self.max_pending,
                    }));
                }
            }
            let entry = match entry {
                Ok(entry) => entry,
                Err(source) => {
                    return Err(Stop::Failed(CountError::Read {
                        path: dir.to_path_buf(),
                        source,
                    }));
                }
            };
            // `file_type` comes from d_type; std falls back to lstat only when the file
            // system does not fill it in. It never follows a symlink.
            let kind = match entry.file_type() {
                Ok(kind) => kind,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(Stop::Failed(CountError::Read {
                        path: entry.path(),
                        source,
                    }));
                }
            };
            if kind.is_file() {
                local += 1;
            } else if kind.is_dir() {
                let path = entry.path();
                if !self.exclude.contains(&path) {
                    subdirs.push(path);
                }
            }
        }
        self.publish(local)
    }

    fn publish(&self, files: u64) -> Result<(), Stop> {
        let total = self.total.fetch_add(files, Ordering::Relaxed) + files;
        if self.stop.load(Ordering::Relaxed) {
            // Someone else already stopped the walk and recorded why; `finish` keeps
            // the first reason, so this one is only a way out.
            return Err(Stop::Limit);
        }
        if self.limit.is_some_and(|limit| total >= limit) {
            return Err(Stop::Limit);
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Stop::Deadline);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
