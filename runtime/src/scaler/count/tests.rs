#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use proptest::prelude::*;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixListener;
use std::time::Duration;

#[derive(Debug, Clone)]
enum Kind {
    File,
    EmptyDir,
    SymlinkToFile,
    SymlinkToDir,
    SymlinkToParent,
    Dangling,
    Socket,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => Just(Kind::File),
        1 => Just(Kind::EmptyDir),
        1 => Just(Kind::SymlinkToFile),
        1 => Just(Kind::SymlinkToDir),
        1 => Just(Kind::SymlinkToParent),
        1 => Just(Kind::Dangling),
        1 => Just(Kind::Socket),
    ]
}

/// Builds the tree and returns how many regular files it holds.
fn build(root: &Path, entries: &[(Vec<u8>, Kind)]) -> u64 {
    // One real file outside the tree for symlinks to point at: following a link would
    // count it.
    let outside = root.parent().unwrap().join("outside-file");
    fs::write(&outside, b"x").unwrap();
    let mut files = 0;
    // Sockets stay bound while the tree is counted.
    let mut sockets = Vec::new();
    for (i, (dirs, kind)) in entries.iter().enumerate() {
        let mut dir = root.to_path_buf();
        for d in dirs {
            dir.push(format!("d{d}"));
        }
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("e{i}"));
        match kind {
            Kind::File => {
                fs::write(&path, b"").unwrap();
                files += 1;
            }
            Kind::EmptyDir => fs::create_dir(&path).unwrap(),
            Kind::SymlinkToFile => symlink(&outside, &path).unwrap(),
            Kind::SymlinkToDir => symlink(root, &path).unwrap(),
            Kind::SymlinkToParent => symlink("..", &path).unwrap(),
            Kind::Dangling => symlink("does-not-exist", &path).unwrap(),
            Kind::Socket => sockets.push(UnixListener::bind(&path).unwrap()),
        }
    }
    std::mem::forget(sockets);
    files
}

fn opts(threads: usize) -> CountOptions {
    CountOptions {
        threads,
        ..CountOptions::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Property 1: the count equals the number of regular files, whatever else the tree
    /// holds, for any number of threads.
    #[test]
    fn counts_exactly_the_regular_files(
        entries in prop::collection::vec((prop::collection::vec(0u8..3, 0..8), kind()), 0..60),
        threads in 1usize..9,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir(&root).unwrap();
        let expected = build(&root, &entries);
        let count = count_files(&root, &opts(threads)).unwrap();
        prop_assert_eq!(count, Count { files: expected, complete: true });
    }

    /// With a limit the walk says "at least the limit" exactly when there are that many
    /// files, and is exact otherwise.
    #[test]
    fn limit_is_a_true_lower_bound(
        entries in prop::collection::vec((prop::collection::vec(0u8..3, 0..4), Just(Kind::File)), 0..40),
        limit in 1u64..50,
        threads in 1usize..5,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir(&root).unwrap();
        let expected = build(&root, &entries);
        let count = count_files(&root, &CountOptions { limit: Some(limit), ..opts(threads) }).unwrap();
        if expected >= limit {
            prop_assert!(!count.complete);
            prop_assert!(count.files >= limit && count.files <= expected);
        } else {
            prop_assert_eq!(count, Count { files: expected, complete: true });
        }
    }
}

#[test]
fn stops_early_on_a_large_tree() {
    let tmp = tempfile::tempdir().unwrap();
    for d in 0..20 {
        let dir = tmp.path().join(format!("d{d}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..500 {
            fs::write(dir.join(format!("f{f}")), b"").unwrap();
        }
    }
    let full = count_files(tmp.path(), &opts(2)).unwrap();
    assert_eq!(full.files, 10_000);
    let limited = count_files(
        tmp.path(),
        &CountOptions {
            limit: Some(1000),
            ..opts(2)
        },
    )
    .unwrap();
    assert!(!limited.complete);
    // Workers publish every few thousand entries or per directory, so the overshoot
    // is bounded by what the threads had in hand, far below the whole tree.
    assert!(
        limited.files >= 1000 && limited.files <= 2000,
        "{limited:?}"
    );
}

#[test]
fn a_passed_deadline_is_an_error_not_a_count() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("a"), b"").unwrap();
    let err = count_files(
        tmp.path(),
        &CountOptions {
            deadline: Some(Instant::now() - Duration::from_millis(1)),
            ..opts(1)
        },
    )
    .unwrap_err();
    assert!(matches!(err, CountError::Deadline { .. }), "{err}");
    assert!(err.to_string().contains("deadline"), "{err}");
}

#[test]
fn root_must_be_a_readable_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let err = count_files(&missing, &opts(1)).unwrap_err();
    assert!(matches!(err, CountError::Read { .. }), "{err}");
    assert!(err.to_string().contains("missing"), "{err}");

    let file = tmp.path().join("file");
    fs::write(&file, b"").unwrap();
    let err = count_files(&file, &opts(1)).unwrap_err();
    assert!(matches!(err, CountError::NotADirectory { .. }), "{err}");
}

#[test]
fn a_symlinked_root_is_followed_but_nothing_below_it() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    fs::create_dir(&real).unwrap();
    fs::write(real.join("a"), b"").unwrap();
    symlink(&real, real.join("loop")).unwrap();
    let link = tmp.path().join("link");
    symlink(&real, &link).unwrap();
    assert_eq!(count_files(&link, &opts(2)).unwrap().files, 1);
}

#[test]
fn limit_zero_needs_no_walk() {
    let tmp = tempfile::tempdir().unwrap();
    let count = count_files(
        tmp.path(),
        &CountOptions {
            limit: Some(0),
            ..opts(1)
        },
    )
    .unwrap();
    assert_eq!(
        count,
        Count {
            files: 0,
            complete: false
        }
    );
}

/// The router's private directory is not counted; a directory of the same name
/// elsewhere (an application's) is.
#[test]
fn excluded_directories_are_not_entered() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("efs");
    let state = root.join("data/.efs-router");
    for dir in [
        "data/bkt/a",
        "data/.efs-router/meta/01",
        "data/bkt/.efs-router",
    ] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    for file in [
        "data/bkt/a/one",
        "data/bkt/two",
        "data/.efs-router/meta/01/0000000000000001",
        "data/.efs-router/meta/01/0000000000000101",
        "data/bkt/.efs-router/three",
    ] {
        fs::write(root.join(file), b"x").unwrap();
    }
    let all = count_files(&root, &CountOptions::default()).unwrap();
    assert_eq!(all.files, 5);
    let options = CountOptions {
        exclude: vec![state],
        ..CountOptions::default()
    };
    let counted = count_files(&root, &options).unwrap();
    assert_eq!(
        counted,
        Count {
            files: 3,
            complete: true
        }
    );
}

/// A tree of directories alone: the deadline and the pending limit bound it as they
/// bound files (a million sibling directories held the function's memory before).
#[test]
fn a_tree_of_directories_is_bounded_too() {
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..300 {
        fs::create_dir(tmp.path().join(format!("d{i}"))).unwrap();
    }
    let err = count_files(
        tmp.path(),
        &CountOptions {
            max_pending_dirs: 100,
            ..opts(1)
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, CountError::TooWide { pending: 100, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("too wide"), "{err}");
    // Within the limit the same tree counts (no files).
    let counted = count_files(tmp.path(), &opts(2)).unwrap();
    assert_eq!((counted.files, counted.complete), (0, true));
}
