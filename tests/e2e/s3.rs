//! The router's S3 API through the clients applications use: the AWS CLI, boto3 and
//! rclone, each configured only with the endpoint and the key pair, against three
//! nfs-ganesha targets and against the `dir` backend. Every object they write is an
//! ordinary file on the export. Then what a GET does when its target dies halfway, and
//! what bad requests get: S3's error code, and nothing published, changed or left behind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::{Ganesha, RouterProcess, S3Clients, repo_root, s3_clients::describe};
use reqwest::StatusCode;

use crate::router::{base_args, contents, dir_args, http, targets};

fn clients() -> S3Clients {
    S3Clients::find().unwrap_or_else(|e| panic!("{e}"))
}

fn ok(what: &str, output: &std::process::Output) -> String {
    assert!(output.status.success(), "{what}\n{}", describe(output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The router's log when a client step fails (the panic message has the client's side).
struct LogOnPanic<'a>(&'a RouterProcess);

impl Drop for LogOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("router log:\n{}", self.0.log());
        }
    }
}

pub(crate) fn md5_hex(data: &[u8]) -> String {
    let digest = std::process::Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(data)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&digest.stdout)[..32].to_string()
}

/// A file's permission bits.
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Files under `dir` (relative paths), for comparing trees.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// What every client does against one router whose export is `export`.
fn clients_against(router: &RouterProcess, export: &Path) {
    let _log = LogOnPanic(router);
    let c = clients();
    let endpoint = router.endpoint();
    let work = tempfile::tempdir().unwrap();
    let local = |name: &str| work.path().join(name).display().to_string();

    // The AWS CLI: mb, cp both ways, ls.
    ok(
        "aws s3 mb",
        &c.aws(&endpoint, &["s3", "mb", "s3://clients"]),
    );
    std::fs::write(local("hello.txt"), b"hello\n").unwrap();
    ok(
        "aws s3 cp up",
        &c.aws(
            &endpoint,
            &[
                "s3",
                "cp",
                "--no-progress",
                &local("hello.txt"),
                "s3://clients/docs/hello.txt",
            ],
        ),
    );
    let listed = ok(
        "aws s3 ls",
        &c.aws(&endpoint, &["s3", "ls", "--recursive", "s3://clients"]),
    );
    assert!(listed.contains("docs/hello.txt"), "{listed}");
    let got = ok(
        "aws s3 cp down",
        &c.aws(&endpoint, &["s3", "cp", "s3://clients/docs/hello.txt", "-"]),
    );
    assert_eq!(got, "hello\n");
    assert_eq!(
        std::fs::read(export.join("clients/docs/hello.txt")).unwrap(),
        b"hello\n"
    );
    // Readable by every other client of the file system (over NFS the mode is set
    // beside the commit, after the file was written).
    assert_eq!(mode_of(&export.join("clients/docs/hello.txt")), 0o644);

    // 100 MiB: a multipart upload (8 MiB parts) and a ranged, parallel download.
    let big = contents(42, 100 << 20);
    std::fs::write(local("big.bin"), &big).unwrap();
    ok(
        "aws s3 cp 100 MiB up",
        &c.aws(
            &endpoint,
            &[
                "s3",
                "cp",
                "--no-progress",
                &local("big.bin"),
                "s3://clients/big/big.bin",
            ],
        ),
    );
    let head = ok(
        "head-object",
        &c.aws(
            &endpoint,
            &[
                "s3api",
                "head-object",
                "--bucket",
                "clients",
                "--key",
                "big/big.bin",
            ],
        ),
    );
    let head: serde_json::Value = serde_json::from_str(&head).unwrap();
    assert_eq!(head["ContentLength"], 100 << 20);
    assert!(
        head["ETag"].as_str().unwrap().ends_with("-13\""),
        "13 parts of 8 MiB: {head}"
    );
    ok(
        "aws s3 cp 100 MiB down",
        &c.aws(
            &endpoint,
            &[
                "s3",
                "cp",
                "--no-progress",
                "s3://clients/big/big.bin",
                &local("big.back"),
            ],
        ),
    );
    assert!(
        std::fs::read(local("big.back")).unwrap() == big,
        "the download differs"
    );
    assert!(std::fs::read(export.join("clients/big/big.bin")).unwrap() == big);
    assert_eq!(mode_of(&export.join("clients/big/big.bin")), 0o644);

    // sync: a tree up, one change, then --delete after a local removal.
    let tree = work.path().join("tree");
    for (i, name) in ["a.txt", "sub/b.txt", "sub/deeper/c.bin", "sub/d e+f.txt"]
        .iter()
        .enumerate()
    {
        let path = tree.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents(i, 1000 + i * 77_777)).unwrap();
    }
    let tree_s = tree.display().to_string();
    ok(
        "aws s3 sync",
        &c.aws(
            &endpoint,
            &["s3", "sync", "--no-progress", &tree_s, "s3://clients/tree/"],
        ),
    );
    assert_eq!(
        files_under(&export.join("clients/tree")),
        files_under(&tree)
    );
    std::fs::write(tree.join("a.txt"), b"changed").unwrap();
    std::fs::remove_file(tree.join("sub/deeper/c.bin")).unwrap();
    let second = ok(
        "aws s3 sync --delete",
        &c.aws(
            &endpoint,
            &[
                "s3",
                "sync",
                "--no-progress",
                "--delete",
                &tree_s,
                "s3://clients/tree/",
            ],
        ),
    );
    assert!(
        second.contains("upload: ") && second.contains("a.txt"),
        "{second}"
    );
    assert!(
        second.contains("delete: s3://clients/tree/sub/deeper/c.bin"),
        "{second}"
    );
    assert!(
        !second.contains("b.txt"),
        "unchanged files are not sent again: {second}"
    );
    assert_eq!(
        std::fs::read(export.join("clients/tree/a.txt")).unwrap(),
        b"changed"
    );
    // The directory that only held the deleted object is gone: S3 has no directories.
    assert!(!export.join("clients/tree/sub/deeper").exists());

    // presign: a plain HTTP GET with the signature in the URL.
    let url = ok(
        "aws s3 presign",
        &c.aws(
            &endpoint,
            &[
                "s3",
                "presign",
                "s3://clients/docs/hello.txt",
                "--expires-in",
                "300",
            ],
        ),
    );
    let response = http().get(url.trim()).send().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().unwrap(), "hello\n");

    // s3api: a copy that replaces the metadata, done inside the file system.
    ok(
        "copy-object",
        &c.aws(
            &endpoint,
            &[
                "s3api",
                "copy-object",
                "--bucket",
                "clients",
                "--key",
                "docs/copy.txt",
                "--copy-source",
                "clients/docs/hello.txt",
                "--metadata-directive",
                "REPLACE",
                "--content-type",
                "text/x-copied",
                "--metadata",
                "origin=cli",
            ],
        ),
    );
    let head = ok(
        "head-object of the copy",
        &c.aws(
            &endpoint,
            &[
                "s3api",
                "head-object",
                "--bucket",
                "clients",
                "--key",
                "docs/copy.txt",
            ],
        ),
    );
    let head: serde_json::Value = serde_json::from_str(&head).unwrap();
    assert_eq!(head["ContentType"], "text/x-copied");
    assert_eq!(head["Metadata"]["origin"], "cli");
    assert_eq!(head["ETag"], format!("\"{}\"", md5_hex(b"hello\n")));

    // Conditionals: a create-only PUT over an existing key, a GET with the wrong ETag
    // and one with the current ETag.
    let refused = c.aws(
        &endpoint,
        &[
            "s3api",
            "put-object",
            "--bucket",
            "clients",
            "--key",
            "docs/hello.txt",
            "--body",
            &local("big.bin"),
            "--if-none-match",
            "*",
        ],
    );
    assert!(
        !refused.status.success() && describe(&refused).contains("PreconditionFailed"),
        "{}",
        describe(&refused)
    );
    assert_eq!(
        std::fs::read(export.join("clients/docs/hello.txt")).unwrap(),
        b"hello\n"
    );
    let created = c.aws(
        &endpoint,
        &[
            "s3api",
            "put-object",
            "--bucket",
            "clients",
            "--key",
            "docs/new.txt",
            "--body",
            &local("hello.txt"),
            "--if-none-match",
            "*",
        ],
    );
    ok("create-only PUT of a new key", &created);
    let mismatch = c.aws(
        &endpoint,
        &[
            "s3api",
            "get-object",
            "--bucket",
            "clients",
            "--key",
            "docs/hello.txt",
            "--if-match",
            "\"0123\"",
            &local("out"),
        ],
    );
    assert!(
        describe(&mismatch).contains("412") || describe(&mismatch).contains("PreconditionFailed"),
        "{}",
        describe(&mismatch)
    );
    let etag = format!("\"{}\"", md5_hex(b"hello\n"));
    let current = c.aws(
        &endpoint,
        &[
            "s3api",
            "get-object",
            "--bucket",
            "clients",
            "--key",
            "docs/hello.txt",
            "--if-none-match",
            &etag,
            &local("out"),
        ],
    );
    assert!(
        describe(&current).contains("304") || describe(&current).contains("Not Modified"),
        "{}",
        describe(&current)
    );

    // boto3: presigned URLs, 5,000 keys paged, DeleteObjects.
    let script = repo_root().join("tests/clients/boto3_check.py");
    let out = c.python(&endpoint, &script, &["clients"]);
    ok("boto3_check.py", &out);

    // rclone as an S3 remote: copy, sync, check --download (MD5s against ETags), lsjson.
    let r = |args: &[&str]| c.rclone(&endpoint, args);
    ok("rclone copy", &r(&["copy", &tree_s, "r:clients/rclone"]));
    std::fs::write(tree.join("sub/new.txt"), b"new file").unwrap();
    ok("rclone sync", &r(&["sync", &tree_s, "r:clients/rclone"]));
    ok(
        "rclone check --download",
        &r(&["check", "--download", &tree_s, "r:clients/rclone"]),
    );
    ok(
        "rclone check (hashes)",
        &r(&["check", &tree_s, "r:clients/rclone"]),
    );
    let listing = ok(
        "rclone lsjson",
        &r(&["lsjson", "--recursive", "--files-only", "r:clients/rclone"]),
    );
    let listing: Vec<serde_json::Value> = serde_json::from_str(&listing).unwrap();
    let mut remote: Vec<(String, u64)> = listing
        .iter()
        .map(|e| {
            (
                e["Path"].as_str().unwrap().to_string(),
                e["Size"].as_u64().unwrap(),
            )
        })
        .collect();
    remote.sort();
    let mut wanted: Vec<(String, u64)> = files_under(&tree)
        .into_iter()
        .map(|p| {
            let size = std::fs::metadata(tree.join(&p)).unwrap().len();
            (p, size)
        })
        .collect();
    wanted.sort();
    assert_eq!(remote, wanted);

    // rm: everything goes, and with it every directory; the bucket stays until rb.
    ok(
        "aws s3 rm --recursive",
        &c.aws(&endpoint, &["s3", "rm", "--recursive", "s3://clients"]),
    );
    assert_eq!(files_under(&export.join("clients")), Vec::<String>::new());
    ok(
        "aws s3 rb",
        &c.aws(&endpoint, &["s3", "rb", "s3://clients"]),
    );
    assert!(!export.join("clients").exists());
    // Nothing of the router's is left but its (empty) temporary directory and sidecars'
    // directories.
    assert_eq!(
        files_under(&export.join(".efs-router/tmp")),
        Vec::<String>::new()
    );
    assert_eq!(
        files_under(&export.join(".efs-router/meta")),
        Vec::<String>::new(),
        "sidecars left"
    );
}

#[test]
fn s3_clients_through_three_nfs_targets() {
    let cluster = Ganesha::start(3).unwrap_or_else(|e| panic!("{e}"));
    let mut args = base_args(&cluster, &cluster.addresses());
    args.extend(["--tls=false".into(), "--routing".into(), "spread".into()]);
    let router = RouterProcess::start(&args, &[]).unwrap_or_else(|e| panic!("{e}"));
    clients_against(&router, &cluster.export_dir());
    // Every target carried part of it.
    for (address, t) in targets(&router) {
        assert!(t["bytes_written"].as_u64().unwrap() > 0, "{address}: {t}");
    }
}

#[test]
fn s3_clients_on_the_dir_backend() {
    let root = tempfile::tempdir().unwrap();
    let args = dir_args(root.path());
    let router = RouterProcess::start(&args, &[]).unwrap_or_else(|e| panic!("{e}"));
    clients_against(&router, root.path());
}

/// A GET whose target dies halfway continues on another target from the first byte it
/// had not sent: the client sees every byte, once, and no error.
#[test]
fn a_get_survives_its_target_dying_halfway() {
    let mut cluster = Ganesha::start(2).unwrap_or_else(|e| panic!("{e}"));
    let mut args = base_args(&cluster, &cluster.addresses());
    args.extend(["--tls=false".into(), "--routing".into(), "spread".into()]);
    let router = RouterProcess::start(&args, &[]).unwrap_or_else(|e| panic!("{e}"));
    crate::router::make_bucket(&router);
    let data = contents(3, 64 << 20);
    crate::router::put(&router, "failover/big.bin", &data);
    let before = targets(&router);

    let mut response = http()
        .get(crate::router::object(&router, "failover/big.bin"))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut got = vec![0u8; 4 << 20];
    std::io::Read::read_exact(&mut response, &mut got).unwrap();
    // The target serving it is the one whose reads grew.
    let now = targets(&router);
    let serving = now
        .iter()
        .max_by_key(|(a, t)| {
            t["bytes_read"].as_u64().unwrap() - before[*a]["bytes_read"].as_u64().unwrap()
        })
        .map(|(a, _)| a.clone())
        .unwrap();
    let index = cluster
        .addresses()
        .iter()
        .position(|a| *a == serving)
        .unwrap();
    cluster.kill(index);
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut response, &mut rest).unwrap();
    got.extend_from_slice(&rest);
    assert_eq!(got.len(), data.len(), "bytes received");
    assert!(got == data, "the bytes differ after the failover");
    let log = router.log();
    assert!(log.contains("read continues on another target"), "{log}");
}

/// Bad requests get S3's error codes, and nothing is published, changed or left behind.
#[test]
fn bad_requests_get_s3_errors_and_change_nothing() {
    let root = tempfile::tempdir().unwrap();
    let export = root.path();
    let args = dir_args(export);
    // Signed requests only: no --anonymous.
    let router = RouterProcess::start(&args, &[]).unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = harness::s3_client(&router.endpoint());
    rt.block_on(s3.create_bucket().bucket("errors").send())
        .unwrap();
    rt.block_on(
        s3.put_object()
            .bucket("errors")
            .key("kept.txt")
            .body(b"kept".to_vec().into())
            .send(),
    )
    .unwrap();
    let snapshot = || -> Vec<String> {
        let mut all = files_under(export);
        all.retain(|p| !p.starts_with(".efs-router/meta/"));
        all
    };
    let before = snapshot();
    assert_eq!(before, ["errors/kept.txt"]);
    let code = |e: &dyn std::fmt::Debug| format!("{e:?}");

    // Unsigned: AccessDenied, before any file-system call.
    let response = http().get(router.url("/errors/kept.txt")).send().unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        response
            .text()
            .unwrap()
            .contains("<Code>AccessDenied</Code>")
    );
    let response = http()
        .put(router.url("/errors/unsigned.txt"))
        .body("x")
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // The wrong secret: SignatureDoesNotMatch.
    let wrong = harness::s3_client_with(
        &router.endpoint(),
        harness::S3_ACCESS_KEY_ID,
        "not-the-secret",
    );
    let e = rt
        .block_on(
            wrong
                .put_object()
                .bucket("errors")
                .key("w.txt")
                .body(b"x".to_vec().into())
                .send(),
        )
        .unwrap_err();
    assert!(code(&e).contains("SignatureDoesNotMatch"), "{e:?}");

    // A clock 20 minutes off: RequestTimeTooSkewed.
    // (Retries off: the SDK corrects its clock from the answer's Date and tries again.)
    let skewed = aws_sdk_s3::Client::from_conf(
        s3.config()
            .to_builder()
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .time_source(aws_smithy_async::time::StaticTimeSource::new(
                std::time::SystemTime::now() - Duration::from_secs(20 * 60),
            ))
            .build(),
    );
    let e = rt
        .block_on(skewed.get_object().bucket("errors").key("kept.txt").send())
        .unwrap_err();
    assert!(code(&e).contains("RequestTimeTooSkewed"), "{e:?}");

    // An expired presigned URL: AccessDenied.
    let presigned = rt
        .block_on(s3.get_object().bucket("errors").key("kept.txt").presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(1)).unwrap(),
        ))
        .unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    let response = http().get(presigned.uri()).send().unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let text = response.text().unwrap();
    assert!(
        text.contains("<Code>AccessDenied</Code>") && text.contains("expired"),
        "{text}"
    );

    // A wrong Content-MD5 or checksum: BadDigest, nothing published.
    let e = rt
        .block_on(
            s3.put_object()
                .bucket("errors")
                .key("bad-md5.txt")
                .content_md5("1B2M2Y8AsgTpgAmY7PhCfg==")
                .body(b"not empty".to_vec().into())
                .send(),
        )
        .unwrap_err();
    assert!(code(&e).contains("BadDigest"), "{e:?}");
    let e = rt
        .block_on(
            s3.put_object()
                .bucket("errors")
                .key("bad-crc.txt")
                .checksum_crc32("AAAAAA==")
                .body(b"some bytes".to_vec().into())
                .send(),
        )
        .unwrap_err();
    assert!(code(&e).contains("BadDigest"), "{e:?}");

    // A body shorter than its Content-Length: the upload fails, nothing is published.
    {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(router.addr()).unwrap();
        let signed = rt
            .block_on(
                s3.put_object()
                    .bucket("errors")
                    .key("short.txt")
                    .content_length(100)
                    .presigned(
                        aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(
                            60,
                        ))
                        .unwrap(),
                    ),
            )
            .unwrap();
        let uri: reqwest::Url = signed.uri().parse().unwrap();
        write!(
            stream,
            "PUT {}?{} HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\n\r\n",
            uri.path(),
            uri.query().unwrap_or(""),
            router.addr()
        )
        .unwrap();
        stream.write_all(&[b'x'; 50]).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        if let Some(status) = answer.split(' ').nth(1) {
            assert_eq!(status, "400", "{answer}");
            assert!(answer.contains("IncompleteBody"), "{answer}");
        }
    }

    // Keys a file system cannot hold, a bucket S3 would refuse, the router's directory.
    let long_key = "k".repeat(1025);
    let long_segment = format!("a/{}", "s".repeat(256));
    for (key, want) in [
        ("a/../../escape.txt", "InvalidArgument"),
        ("../escape.txt", "InvalidArgument"),
        ("a//b.txt", "InvalidArgument"),
        ("nul\0byte", "InvalidArgument"),
        ("control\u{1}char", "InvalidArgument"),
        (long_key.as_str(), "KeyTooLong"),
        (long_segment.as_str(), "KeyTooLong"),
    ] {
        let e = rt
            .block_on(
                s3.put_object()
                    .bucket("errors")
                    .key(key)
                    .body(b"x".to_vec().into())
                    .send(),
            )
            .unwrap_err();
        assert!(code(&e).contains(want), "{key:?}: {e:?}");
    }
    for bucket in ["Bad_Bucket", "ab", ".efs-router"] {
        let response = http()
            .put(router.url(&format!("/{bucket}/x")))
            .body("x")
            .send()
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bucket}");
        let e = rt
            .block_on(s3.create_bucket().bucket(bucket).send())
            .unwrap_err();
        assert!(code(&e).contains("InvalidBucketName"), "{bucket}: {e:?}");
    }

    // Multipart: parts out of order, a part too small, completing an aborted upload.
    let upload = rt
        .block_on(
            s3.create_multipart_upload()
                .bucket("errors")
                .key("multi.bin")
                .send(),
        )
        .unwrap();
    let id = upload.upload_id().unwrap().to_string();
    let mut parts = Vec::new();
    for (n, size) in [(1, 5 << 20), (2, 1 << 20), (3, 1 << 20)] {
        let part = rt
            .block_on(
                s3.upload_part()
                    .bucket("errors")
                    .key("multi.bin")
                    .upload_id(&id)
                    .part_number(n)
                    .body(contents(n as usize, size).into())
                    .send(),
            )
            .unwrap();
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .e_tag(part.e_tag().unwrap())
                .build(),
        );
    }
    // The error's code, as the SDK reports it.
    let complete = |list: Vec<aws_sdk_s3::types::CompletedPart>| -> String {
        let result = rt.block_on(
            s3.complete_multipart_upload()
                .bucket("errors")
                .key("multi.bin")
                .upload_id(&id)
                .multipart_upload(
                    aws_sdk_s3::types::CompletedMultipartUpload::builder()
                        .set_parts(Some(list))
                        .build(),
                )
                .send(),
        );
        match result {
            Ok(_) => "completed".to_string(),
            Err(e) => format!("{e:?}"),
        }
    };
    let e = complete(vec![parts[1].clone(), parts[0].clone()]);
    assert!(e.contains("InvalidPartOrder"), "{e}");
    let e = complete(parts.clone());
    assert!(e.contains("EntityTooSmall"), "{e}");
    let wrong_etag = aws_sdk_s3::types::CompletedPart::builder()
        .part_number(1)
        .e_tag("\"0123456789abcdef0123456789abcdef\"")
        .build();
    let e = complete(vec![wrong_etag]);
    assert!(e.contains("InvalidPart"), "{e}");
    rt.block_on(
        s3.abort_multipart_upload()
            .bucket("errors")
            .key("multi.bin")
            .upload_id(&id)
            .send(),
    )
    .unwrap();
    let e = complete(vec![parts[0].clone()]);
    assert!(e.contains("NoSuchUpload"), "{e}");

    // Nothing published or changed, nothing left behind.
    assert_eq!(snapshot(), before);
    let got = rt
        .block_on(s3.get_object().bucket("errors").key("kept.txt").send())
        .unwrap();
    let body = rt.block_on(got.body.collect()).unwrap().into_bytes();
    assert_eq!(body.as_ref(), b"kept");
    let log = router.log();
    assert!(
        !log.contains("not-the-secret") && !log.contains(harness::S3_SECRET_ACCESS_KEY),
        "a secret in the log:\n{log}"
    );
}

/// The router refuses to serve S3 without credentials, and refuses unsigned access on a
/// non-loopback address.
#[test]
fn the_router_will_not_serve_unauthenticated_by_accident() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().display().to_string();
    let args = |extra: &[&str]| -> Vec<String> {
        ["--backend", "dir", "--target", &dir]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    // No key pair (the harness's is overridden with empty values).
    let none = [
        ("ROUTER_ACCESS_KEY_ID".to_string(), String::new()),
        ("ROUTER_SECRET_ACCESS_KEY".to_string(), String::new()),
    ];
    let exited = RouterProcess::run_to_exit(&args(&[]), &none).unwrap();
    assert_eq!(exited.status.code(), Some(1), "{}", exited.log);
    assert!(exited.log.contains("no S3 credentials"), "{}", exited.log);
    // Half a pair.
    let half = [("ROUTER_SECRET_ACCESS_KEY".to_string(), String::new())];
    let exited = RouterProcess::run_to_exit(&args(&[]), &half).unwrap();
    assert_eq!(exited.status.code(), Some(1), "{}", exited.log);
    assert!(
        exited.log.contains("must be set together"),
        "{}",
        exited.log
    );
    // (--anonymous on a non-loopback address is refused: router::config's unit tests.)
    // A credentials file with a mistake names the file and the line.
    let creds = root.path().join("credentials");
    std::fs::write(&creds, "[router]\naws_access_key_id = AKID\n").unwrap();
    let exited = RouterProcess::run_to_exit(
        &args(&["--credentials-file", &creds.display().to_string()]),
        &none,
    )
    .unwrap();
    assert_eq!(exited.status.code(), Some(1), "{}", exited.log);
    assert!(
        exited.log.contains(&format!("{}:1", creds.display())),
        "{}",
        exited.log
    );
}

/// Keys rotate with an overlap: the credentials file is read again when it changes, and
/// both pairs work while it holds both.
#[test]
fn key_pairs_rotate_through_the_credentials_file() {
    let root = tempfile::tempdir().unwrap();
    let creds: PathBuf = root.path().join("credentials");
    std::fs::write(
        &creds,
        "[old]\naws_access_key_id = AKOLD\naws_secret_access_key = old-secret\n",
    )
    .unwrap();
    let storage = root.path().join("export");
    std::fs::create_dir(&storage).unwrap();
    let args: Vec<String> = [
        "--backend",
        "dir",
        "--target",
        &storage.display().to_string(),
        "--credentials-file",
        &creds.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let none = [
        ("ROUTER_ACCESS_KEY_ID".to_string(), String::new()),
        ("ROUTER_SECRET_ACCESS_KEY".to_string(), String::new()),
    ];
    let router = RouterProcess::start(&args, &none).unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = |id: &str, secret: &str| harness::s3_client_with(&router.endpoint(), id, secret);
    let old = client("AKOLD", "old-secret");
    let new = client("AKNEW", "new-secret");
    let works = |c: &aws_sdk_s3::Client| rt.block_on(c.list_buckets().send()).is_ok();
    assert!(works(&old) && !works(&new));
    let wait_until = |what: &str, cond: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !cond() {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}\n{}",
                router.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    std::fs::write(
        &creds,
        "[old]\naws_access_key_id = AKOLD\naws_secret_access_key = old-secret\n[new]\naws_access_key_id = AKNEW\naws_secret_access_key = new-secret\n",
    )
    .unwrap();
    wait_until("the new pair to be accepted", &|| works(&new));
    assert!(works(&old), "both pairs work during the rotation");
    std::fs::write(
        &creds,
        "[new]\naws_access_key_id = AKNEW\naws_secret_access_key = new-secret\n",
    )
    .unwrap();
    wait_until("the old pair to be refused", &|| !works(&old));
    assert!(works(&new));
    let log = router.log();
    assert!(
        !log.contains("old-secret") && !log.contains("new-secret"),
        "{log}"
    );
}

/// A shared router's listener (`service.expose: vpc`): TLS with the certificate and key
/// ECS injects from the configured secret, as PEM in the environment. The AWS CLI trusts
/// the issuer through `--ca-bundle` (AWS_CA_BUNDLE in a task); without it, or in clear
/// text, nothing is served. The key never reaches the log.
#[test]
fn the_listener_serves_tls_with_the_certificate_from_the_environment() {
    let clients = S3Clients::find().unwrap_or_else(|e| panic!("{e}"));
    let ca = harness::TestCa::new("efs-router test CA").unwrap();
    let (cert, key) = ca
        .issue(&harness::ServerCert {
            name: "127.0.0.1".into(),
            expired: false,
        })
        .unwrap();
    let storage = tempfile::tempdir().unwrap();
    let mut args = dir_args(storage.path());
    args.push("--listen-tls".into());
    let env = [
        ("LISTEN_TLS_CERTIFICATE".to_string(), cert),
        ("LISTEN_TLS_PRIVATE_KEY".to_string(), key.clone()),
    ];
    let router = RouterProcess::start(&args, &env).unwrap_or_else(|e| panic!("{e}"));
    let https = format!("https://{}", router.addr());
    let bundle = ca.pem_path().to_str().unwrap();
    let local = tempfile::tempdir().unwrap();
    let upload = local.path().join("upload.txt");
    std::fs::write(&upload, b"over TLS").unwrap();
    for step in [
        vec!["s3", "mb", "s3://tls", "--ca-bundle", bundle],
        vec![
            "s3",
            "cp",
            upload.to_str().unwrap(),
            "s3://tls/a.txt",
            "--ca-bundle",
            bundle,
        ],
    ] {
        let out = clients.aws(&https, &step);
        assert!(out.status.success(), "{step:?}: {}", describe(&out));
    }
    let read = clients.aws(
        &https,
        &["s3", "cp", "s3://tls/a.txt", "-", "--ca-bundle", bundle],
    );
    assert!(read.status.success(), "{}", describe(&read));
    assert_eq!(read.stdout, b"over TLS");
    assert_eq!(
        std::fs::read(storage.path().join("tls/a.txt")).unwrap(),
        b"over TLS"
    );
    // Not trusted without the issuer; no answer in clear text.
    let untrusted = clients.aws(&https, &["s3", "ls", "s3://tls"]);
    assert!(!untrusted.status.success(), "{}", describe(&untrusted));
    assert!(
        describe(&untrusted).contains("SSL"),
        "{}",
        describe(&untrusted)
    );
    let clear = clients.aws(&router.endpoint(), &["s3", "ls", "s3://tls"]);
    assert!(!clear.status.success(), "{}", describe(&clear));
    let log = router.log();
    assert!(log.contains("\"tls\":true"), "{log}");
    assert!(
        !log.contains(key.lines().nth(1).unwrap()),
        "the key reached the log"
    );

    // Without the key, the router says which variable is missing and exits 1.
    let mut args = dir_args(storage.path());
    args.push("--listen-tls".into());
    let exited = RouterProcess::run_to_exit(&args, &[]).unwrap();
    assert_eq!(exited.status.code(), Some(1), "{}", exited.log);
    assert!(
        exited
            .log
            .contains("--listen-tls needs LISTEN_TLS_CERTIFICATE"),
        "{}",
        exited.log
    );
}

/// During a rotation the task gets the new pair as current and the old one as previous
/// (`deployer rotate-credentials`): both are accepted, any other refused.
#[test]
fn the_previous_pair_is_accepted_during_a_rotation() {
    let storage = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A router with the current pair AKNEW and `previous` as the retired one; which of
    // `pairs` it accepts.
    let accepted = |previous: (&str, &str), pairs: &[(&str, &str)]| -> Vec<bool> {
        let env: Vec<(String, String)> = [
            ("ROUTER_ACCESS_KEY_ID", "AKNEW"),
            ("ROUTER_SECRET_ACCESS_KEY", "new-secret"),
            ("ROUTER_PREVIOUS_ACCESS_KEY_ID", previous.0),
            ("ROUTER_PREVIOUS_SECRET_ACCESS_KEY", previous.1),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let router =
            RouterProcess::start(&dir_args(storage.path()), &env).unwrap_or_else(|e| panic!("{e}"));
        pairs
            .iter()
            .map(|(id, secret)| {
                let client = harness::s3_client_with(&router.endpoint(), id, secret);
                rt.block_on(client.list_buckets().send()).is_ok()
            })
            .collect()
    };
    let pairs = [
        ("AKNEW", "new-secret"),
        ("AKOLD", "old-secret"),
        ("AKOLD", "new-secret"),
        ("AKOTHER", "old-secret"),
    ];
    assert_eq!(
        accepted(("AKOLD", "old-secret"), &pairs),
        [true, true, false, false]
    );
    // Outside a rotation the previous pair is empty, and only the current one works.
    assert_eq!(accepted(("", ""), &pairs), [true, false, false, false]);
}

/// The largest single PUT (`--max-object-mib`, S3's 5 GiB by default) bounds a body
/// without a length too: it is counted as it arrives and stopped past the limit, with
/// S3's `EntityTooLarge`, and nothing is stored.
#[test]
fn a_body_past_the_object_limit_is_refused_even_without_a_length() {
    let storage = tempfile::tempdir().unwrap();
    let mut args = dir_args(storage.path());
    args.extend(["--anonymous".into(), "--max-object-mib".into(), "1".into()]);
    let router = RouterProcess::start(&args, &[]).unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    rt.block_on(async {
        let made = client.put(router.url("/limits")).send().await.unwrap();
        assert!(made.status().is_success(), "{}", made.status());
        // Chunked: no Content-Length, 2 MiB in 64 KiB pieces.
        let pieces =
            (0..32).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![7u8; 64 << 10])));
        let body = reqwest::Body::wrap_stream(futures_util::stream::iter(pieces));
        let refused = client
            .put(router.url("/limits/big"))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = refused.status();
        let text = refused.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        assert!(text.contains("<Code>EntityTooLarge</Code>"), "{text}");
        let missing = client.get(router.url("/limits/big")).send().await.unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        // Under the limit, the same kind of body is stored.
        let pieces =
            (0..8).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![7u8; 64 << 10])));
        let body = reqwest::Body::wrap_stream(futures_util::stream::iter(pieces));
        let stored = client
            .put(router.url("/limits/small"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(stored.status().is_success(), "{}", stored.status());
    });
    assert!(!storage.path().join("limits/big").exists());
    assert_eq!(
        std::fs::metadata(storage.path().join("limits/small"))
            .unwrap()
            .len(),
        512 << 10
    );
}
