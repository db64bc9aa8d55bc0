//! `efs-router` against real NFS servers: three nfs-ganesha instances on 127.0.0.2-4
//! exporting one directory, as three mount targets of one file system. Objects go in and
//! out through the router's S3 API (plain HTTP requests, unsigned: these routers run
//! with --anonymous on loopback, so each byte on the wire is the test's); one server is
//! killed mid-run and restarted. Then start-up against a moto server: targets from SSM,
//! the default list when the parameter is missing, a clear failure when no target
//! answers, and the watch following the list.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use harness::{Ganesha, MotoServer, RouterProcess};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::Value;

pub(crate) fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The bucket the router tests use.
pub(crate) const BUCKET: &str = "bkt";

/// What every NFS router test passes: short timeouts and probes, ganesha's port, the
/// targets, and unsigned requests allowed (the router listens on loopback).
pub(crate) fn base_args(cluster: &Ganesha, targets: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--anonymous",
        "--backend",
        "nfs",
        "--export",
        "/export",
        "--connect-timeout",
        "2",
        "--operation-timeout",
        "3",
        "--probe-interval",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["--nfs-port".into(), cluster.port().to_string()]);
    for t in targets {
        args.extend(["--target".into(), t.clone()]);
    }
    args
}

/// A router on the `dir` backend serving `root`, signed requests only.
pub(crate) fn dir_args(root: &std::path::Path) -> Vec<String> {
    vec![
        "--backend".into(),
        "dir".into(),
        "--target".into(),
        root.display().to_string(),
    ]
}

fn nfs_args(cluster: &Ganesha, targets: &[String]) -> Vec<String> {
    let mut args = base_args(cluster, targets);
    // ganesha speaks clear text; TLS is tested through stunnel in router_tls.
    args.push("--tls=false".into());
    args
}

/// Deterministic contents of a given size.
pub(crate) fn contents(seed: usize, size: usize) -> Vec<u8> {
    let mut x = (seed as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The URL of an object of [`BUCKET`].
pub(crate) fn object(router: &RouterProcess, key: &str) -> String {
    router.url(&format!("/{BUCKET}/{key}"))
}

/// Creates [`BUCKET`] (or finds it, made by an earlier run on a real file system).
pub(crate) fn make_bucket(router: &RouterProcess) {
    let response = http()
        .put(router.url(&format!("/{BUCKET}")))
        .send()
        .unwrap();
    let status = response.status();
    let text = response.text().unwrap_or_default();
    assert!(
        status == StatusCode::OK || text.contains("<Code>BucketAlreadyOwnedByYou</Code>"),
        "{status} {text}\n{}",
        router.log()
    );
}

/// PUTs an object and checks it was stored.
pub(crate) fn put(router: &RouterProcess, key: &str, data: &[u8]) {
    let response = http()
        .put(object(router, key))
        .body(data.to_vec())
        .send()
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "PUT {key}: {:?}\n{}",
        response.text(),
        router.log()
    );
}

/// The Prometheus text of `/metrics`.
fn metrics(router: &RouterProcess) -> String {
    http()
        .get(router.admin_url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap()
}

/// The whole `/targets` answer: the router's zone, routing and cross-zone totals, and
/// the targets.
fn summary(router: &RouterProcess) -> Value {
    http()
        .get(router.admin_url("/targets"))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

pub(crate) fn targets(router: &RouterProcess) -> BTreeMap<String, Value> {
    summary(router)["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["address"].as_str().unwrap().to_string(), t.clone()))
        .collect()
}

pub(crate) fn wait_for(
    router: &RouterProcess,
    what: &str,
    check: impl Fn(&BTreeMap<String, Value>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = targets(router);
        if check(&t) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {t:#?}\n{}",
            router.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get_all(router: &RouterProcess, files: &[(String, Vec<u8>)]) {
    let client = http();
    for (path, data) in files {
        let response = client.get(object(router, path)).send().unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "GET {path}\n{}",
            router.log()
        );
        assert_eq!(
            response.bytes().unwrap().as_ref(),
            data.as_slice(),
            "GET {path} contents"
        );
    }
}

#[test]
fn router_spreads_files_over_three_nfs_servers_and_survives_one_failing() {
    let mut cluster = Ganesha::start(3).unwrap_or_else(|e| panic!("{e}"));
    let router = RouterProcess::start(&nfs_args(&cluster, &cluster.addresses()), &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let client = http();
    make_bucket(&router);
    let bucket_dir = cluster.export_dir().join(BUCKET);

    // Writes: small and multi-chunk objects, under prefixes whose directories do not
    // exist yet.
    let files: Vec<(String, Vec<u8>)> = (0..48)
        .map(|i| {
            let size = match i % 6 {
                0 => 0,
                1 => 1,
                2 => 4096,
                3 => 100_000,
                4 => 1_500_000,
                _ => 3_200_001,
            };
            (format!("d{}/sub/f{i}.bin", i % 4), contents(i, size))
        })
        .collect();
    for (path, data) in &files {
        put(&router, path, data);
    }
    get_all(&router, &files);
    // Each object is an ordinary file of the exported directory, and no temporary file is
    // left behind.
    for (path, data) in &files {
        assert_eq!(
            &std::fs::read(bucket_dir.join(path)).unwrap(),
            data,
            "{path} on disk"
        );
    }
    let temporary = cluster.export_dir().join(".efs-router/tmp");
    let leftovers = || -> Vec<String> {
        std::fs::read_dir(&temporary)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(leftovers(), Vec::<String>::new(), "temporary files left");
    // Every target carries load.
    let t = targets(&router);
    assert_eq!(t.len(), 3);
    for (address, target) in &t {
        assert_eq!(target["state"], "up", "{address}");
        assert!(
            target["operations"].as_u64().unwrap() > 0,
            "{address} carried no load: {target}"
        );
        assert!(
            target["bytes_written"].as_u64().unwrap() > 0,
            "{address} stored nothing: {target}"
        );
    }

    // A replaced object is replaced whole.
    let path = files[5].0.clone();
    let new = contents(999, 2_000_000);
    put(&router, &path, &new);
    assert_eq!(
        client
            .get(object(&router, &path))
            .send()
            .unwrap()
            .bytes()
            .unwrap()
            .as_ref(),
        new.as_slice()
    );

    // Ranges, conditionals, HEAD, listing pages, deletes, hostile keys.
    let big = &path;
    let response = client
        .get(object(&router, big))
        .header("Range", "bytes=1048570-1048589")
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        response.headers()["content-range"],
        "bytes 1048570-1048589/2000000"
    );
    assert_eq!(
        response.bytes().unwrap().as_ref(),
        &new[1_048_570..1_048_590]
    );
    // The ETag is the content's MD5, as S3 makes it.
    let etag = response_etag(&client, &object(&router, big));
    assert_eq!(etag.len(), 34, "{etag}");
    for (header, value, status) in [
        ("If-None-Match", etag.as_str(), StatusCode::NOT_MODIFIED),
        ("If-None-Match", "\"stale\"", StatusCode::OK),
        ("If-Match", etag.as_str(), StatusCode::OK),
        ("If-Match", "\"stale\"", StatusCode::PRECONDITION_FAILED),
        (
            "If-Modified-Since",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            StatusCode::NOT_MODIFIED,
        ),
        (
            "If-Unmodified-Since",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            StatusCode::PRECONDITION_FAILED,
        ),
    ] {
        let response = client
            .get(object(&router, big))
            .header(header, value)
            .send()
            .unwrap();
        assert_eq!(response.status(), status, "{header}: {value}");
    }
    let response = client
        .get(object(&router, big))
        .header("Range", "bytes=2000000-")
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert!(
        response
            .text()
            .unwrap()
            .contains("<Code>InvalidRange</Code>")
    );
    let response = client
        .head(object(&router, "d1/sub/f1.bin"))
        .send()
        .unwrap();
    assert_eq!(
        (
            response.status(),
            response.headers()["content-length"].to_str().unwrap()
        ),
        (StatusCode::OK, "1")
    );
    let response = client.get(object(&router, "d1/sub/nope")).send().unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.text().unwrap().contains("<Code>NoSuchKey</Code>"));
    // A directory is not an object.
    assert_eq!(
        client
            .get(object(&router, "d1/sub"))
            .send()
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    let response = client.get(router.url("/nobucket/x")).send().unwrap();
    assert!(
        response
            .text()
            .unwrap()
            .contains("<Code>NoSuchBucket</Code>")
    );

    // ListObjectsV2 page by page, through the SDK (signed with the router's key pair).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = harness::s3_client(&router.endpoint());
    let mut listed = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = rt
            .block_on(
                s3.list_objects_v2()
                    .bucket(BUCKET)
                    .prefix("d0/sub/")
                    .max_keys(5)
                    .set_continuation_token(token.clone())
                    .send(),
            )
            .unwrap();
        assert!(page.key_count().unwrap_or(0) <= 5);
        listed.extend(page.contents().iter().map(|o| o.key().unwrap().to_string()));
        match page.next_continuation_token() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    let mut expected: Vec<String> = (0..48)
        .filter(|i| i % 4 == 0)
        .map(|i| format!("d0/sub/f{i}.bin"))
        .collect();
    expected.sort();
    assert_eq!(listed, expected, "keys in S3 order across pages");

    assert_eq!(
        client
            .delete(object(&router, "d0/sub/f0.bin"))
            .send()
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert!(!bucket_dir.join("d0/sub/f0.bin").exists());
    // Deleting what is not there succeeds, as in S3.
    assert_eq!(
        client
            .delete(object(&router, "d0/sub/f0.bin"))
            .send()
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    let files: Vec<_> = files
        .into_iter()
        .filter(|(p, _)| p != "d0/sub/f0.bin" && *p != path)
        .collect();

    // Sent byte for byte: an HTTP client library would resolve `%2e%2e` itself.
    for hostile in [
        "/bkt/..%2f..%2fetc%2fpasswd",
        "/bkt/a/%2e%2e/%2e%2e/x",
        "/bkt/a/../../x",
        "/bkt/a%00b",
        "/bkt/%ff",
        "/bkt/%c0%ae%c0%ae/x",
        "/bkt//etc/passwd",
        "/..%2f/x",
        "/.efs-router/meta",
    ] {
        for method in ["PUT", "GET", "DELETE"] {
            assert_eq!(
                raw_status(&router, method, hostile),
                400,
                "{method} {hostile}"
            );
        }
    }
    // A backslash is an ordinary character of a file name: stored inside the bucket.
    assert_eq!(raw_status(&router, "PUT", "/bkt/a%5c..%5cb"), 200);
    assert!(bucket_dir.join("a\\..\\b").is_file());
    let mut on_disk: Vec<String> = std::fs::read_dir(cluster.export_dir().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    assert_eq!(
        on_disk
            .iter()
            .filter(|n| !n.starts_with("instance-"))
            .collect::<Vec<_>>(),
        ["export"]
    );

    // A client that disconnects mid-upload leaves nothing behind.
    {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(router.addr()).unwrap();
        write!(
            stream,
            "PUT /bkt/d1/sub/cut.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n"
        )
        .unwrap();
        stream.write_all(&contents(5, 3_000_000)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = leftovers();
        if left.is_empty() && !bucket_dir.join("d1/sub/cut.bin").exists() {
            break;
        }
        assert!(Instant::now() < deadline, "a cut upload left {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // One server dies: reads keep succeeding (retried on the next-ranked target), and
    // the target is marked down.
    let victim = cluster.address(1);
    cluster.kill(1);
    get_all(&router, &files);
    wait_for(&router, "the killed target to be marked down", |t| {
        t[&victim]["state"] == "down"
    });
    assert_eq!(
        http()
            .get(router.admin_url("/health"))
            .send()
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // It comes back and carries load again, without a router restart.
    cluster.restart(1).unwrap_or_else(|e| panic!("{e}"));
    wait_for(&router, "the restarted target to be back", |t| {
        t[&victim]["state"] == "up"
    });
    let before = targets(&router)[&victim]["operations"].as_u64().unwrap();
    get_all(&router, &files);
    let after = targets(&router)[&victim]["operations"].as_u64().unwrap();
    assert!(
        after > before,
        "the restarted target carries no load ({before} -> {after})"
    );

    let metrics = metrics(&router);
    assert!(
        metrics.contains(&format!(
            "efs_router_target_up{{target=\"{victim}\",availability_zone=\"\",cross_az=\"unknown\"}} 1"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("efs_router_http_requests_total{method=\"PUT\",status=\"200\"}"),
        "{metrics}"
    );

    // SIGTERM: new connections are refused, a download in flight finishes, exit 0.
    let large = contents(7, 48 << 20);
    put(&router, "large.bin", &large);
    let response = client.get(object(&router, "large.bin")).send().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    router.send_term().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(router.addr()).is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting connections after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let body = response.bytes().unwrap();
    assert!(
        body.as_ref() == large.as_slice(),
        "the download in flight was cut: {} of {} bytes",
        body.len(),
        large.len()
    );
    let (status, log) = router.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status}\n{log}");
    // Logs are JSON lines on stdout, for the awslogs driver.
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let parsed: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            parsed.get("level").is_some() && parsed.get("message").is_some(),
            "{line}"
        );
    }
}

fn response_etag(client: &Client, url: &str) -> String {
    let response = client.head(url).send().unwrap();
    response.headers()["etag"].to_str().unwrap().to_string()
}

/// The status of a request written byte for byte on a plain TCP connection.
fn raw_status(router: &RouterProcess, method: &str, path: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(router.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn aws_env(moto: &MotoServer, parameter: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("AWS_REGION", "ap-northeast-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("SSM_PARAMETER_NAME", parameter.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn list_json(addresses: &[&str]) -> String {
    let zones = ["a", "c", "d", "b"];
    let targets: Vec<Value> = addresses
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            serde_json::json!({
                "mount_target_id": format!("fsmt-{:08x}", 0x1000 + i),
                "ip_address": ip,
                "availability_zone": format!("ap-northeast-1{}", zones[i]),
                "subnet_id": format!("subnet-{:08x}", 0x2000 + i),
            })
        })
        .collect();
    serde_json::json!({ "mount_targets": targets }).to_string()
}

fn put_parameter(rt: &tokio::runtime::Runtime, moto: &MotoServer, name: &str, value: &str) {
    rt.block_on(async {
        let ssm = aws_sdk_ssm::Client::new(&moto.sdk_config("ap-northeast-1").await);
        ssm.put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .unwrap();
    });
}

#[test]
fn router_start_up_follows_the_published_list() {
    let cluster = Ganesha::start(3).unwrap_or_else(|e| panic!("{e}"));
    let moto = MotoServer::start().unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let name = "/efs-autoscaler/test/mount-targets";
    let mut args = nfs_args(&cluster, &[]);
    args.extend(["--refresh".into(), "1".into()]);

    // Targets from SSM, with their ids and zones.
    put_parameter(&rt, &moto, name, &list_json(&["127.0.0.2", "127.0.0.3"]));
    let router =
        RouterProcess::start(&args, &aws_env(&moto, name)).unwrap_or_else(|e| panic!("{e}"));
    let t = targets(&router);
    assert_eq!(t.keys().collect::<Vec<_>>(), ["127.0.0.2", "127.0.0.3"]);
    assert_eq!(t["127.0.0.3"]["availability_zone"], "ap-northeast-1c");
    assert_eq!(t["127.0.0.3"]["mount_target_id"], "fsmt-00001001");
    assert!(t.values().all(|t| t["state"] == "up"));

    // The list grows: the router follows it without a restart.
    put_parameter(
        &rt,
        &moto,
        name,
        &list_json(&["127.0.0.2", "127.0.0.3", "127.0.0.4"]),
    );
    wait_for(&router, "the third target to join", |t| {
        t.get("127.0.0.4").is_some_and(|t| t["state"] == "up")
    });
    drop(router);

    // Parameter missing: the task definition's default list.
    let mut env = aws_env(&moto, "/efs-autoscaler/test/missing");
    env.push(("DEFAULT_MOUNT_TARGETS".into(), "127.0.0.4".into()));
    let router = RouterProcess::start(&args, &env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(targets(&router).keys().collect::<Vec<_>>(), ["127.0.0.4"]);
    assert!(
        router.log().contains("starting with the default list"),
        "{}",
        router.log()
    );
    drop(router);

    // No target answers: one refuses, one accepts and never speaks (black hole). The
    // router exits non-zero, naming both, after about the connect timeout.
    let black_hole = TcpListener::bind(("127.0.0.5", cluster.port())).unwrap();
    put_parameter(&rt, &moto, name, &list_json(&["127.0.0.9", "127.0.0.5"]));
    let exited =
        RouterProcess::run_to_exit(&args, &aws_env(&moto, name)).unwrap_or_else(|e| panic!("{e}"));
    drop(black_hole);
    assert_eq!(exited.status.code(), Some(1), "{}", exited.log);
    assert!(
        exited.log.contains("no mount target could be reached"),
        "{}",
        exited.log
    );
    assert!(
        exited.log.contains("127.0.0.9") && exited.log.contains("127.0.0.5"),
        "{}",
        exited.log
    );
    // Connect timeout 2 s: the black hole must not hold start-up for its ~20 s.
    assert!(
        exited.elapsed < Duration::from_secs(12),
        "start-up took {:?}",
        exited.elapsed
    );
}

#[test]
fn router_keeps_to_its_zone_and_counts_what_crosses() {
    let mut cluster = Ganesha::start(2).unwrap_or_else(|e| panic!("{e}"));
    let moto = MotoServer::start().unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let name = "/efs-autoscaler/test/zones";
    // 127.0.0.2 in ap-northeast-1a (this task's zone), 127.0.0.3 in ap-northeast-1c.
    put_parameter(&rt, &moto, name, &list_json(&["127.0.0.2", "127.0.0.3"]));
    let mut args = nfs_args(&cluster, &[]);
    args.extend(
        [
            "--az",
            "ap-northeast-1a",
            "--routing",
            "local-first",
            "--metrics-interval",
            "1",
        ]
        .map(String::from),
    );
    let mut env = aws_env(&moto, name);
    env.push(("EFS_FILE_SYSTEM_ID".into(), "fs-0123456789abcdef0".into()));
    let router = RouterProcess::start(&args, &env).unwrap_or_else(|e| panic!("{e}"));
    make_bucket(&router);
    let written = |router: &RouterProcess| {
        let t = targets(router);
        (
            t["127.0.0.2"]["bytes_written"].as_u64().unwrap(),
            t["127.0.0.3"]["bytes_written"].as_u64().unwrap(),
        )
    };
    let (local_before, _) = written(&router);
    let put = |i: usize| put(&router, &format!("zones/f{i}.bin"), &contents(i, 10_000));
    for i in 0..20 {
        put(i);
    }
    let answer = summary(&router);
    assert_eq!(answer["zone"], "ap-northeast-1a");
    assert_eq!(answer["routing"], "local-first");
    // Every byte stayed in the zone; the other target only answered health probes.
    assert_eq!(answer["cross_az"]["bytes"], 0, "{answer}");
    let t = targets(&router);
    assert_eq!(t["127.0.0.2"]["cross_az"], false);
    assert_eq!(t["127.0.0.3"]["cross_az"], true);
    // The objects' bytes, and their sidecars, all on the local target.
    let (local, remote) = written(&router);
    assert!(local - local_before >= 200_000, "{t:#?}");
    assert_eq!(remote, 0, "{t:#?}");

    // The local target fails: traffic crosses to the other zone, and is counted.
    cluster.kill(0);
    wait_for(&router, "the local target to be marked down", |t| {
        t["127.0.0.2"]["state"] == "down"
    });
    for i in 20..25 {
        put(i);
    }
    // Five objects of 10,000 bytes crossed, with their sidecars (a few hundred bytes).
    let answer = summary(&router);
    let crossed = answer["cross_az"]["bytes"].as_u64().unwrap();
    assert!((50_000..60_000).contains(&crossed), "{answer}");
    let metrics = metrics(&router);
    assert!(
        metrics.contains(&format!("efs_router_cross_az_bytes {crossed}")),
        "{metrics}"
    );

    // The CloudWatch metric lines are on stdout (the router's log here), once a second.
    std::thread::sleep(Duration::from_millis(2500));
    let log = router.log();
    let emf: Vec<Value> = log
        .lines()
        .filter(|l| l.contains("\"CloudWatchMetrics\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        emf.iter()
            .any(|l| l["FileSystemId"] == "fs-0123456789abcdef0" && l["HealthyTargets"] == 1),
        "{log}"
    );
    assert!(
        emf.iter().any(|l| l["MountTarget"] == "fsmt-00001001"),
        "{log}"
    );
}

/// The router's established TCP connections to `target:port`, by local port, from `ss`.
fn connections_to(router: &RouterProcess, target: &str, port: u16) -> Vec<u16> {
    let out = std::process::Command::new("ss")
        .args(["-Htnp", "state", "established", "dst"])
        .arg(format!("{target}:{port}"))
        .output()
        .unwrap_or_else(|e| panic!("ss (iproute2; scripts/setup installs it): {e}"));
    let pid = format!("pid={},", router.pid());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&pid))
        .filter_map(|l| {
            l.split_whitespace()
                .nth(2)?
                .rsplit(':')
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

#[test]
fn router_replaces_a_lost_connection_without_failing_reads() {
    let cluster = Ganesha::start(1).unwrap_or_else(|e| panic!("{e}"));
    let target = cluster.addresses()[0].clone();
    let mut args = nfs_args(&cluster, std::slice::from_ref(&target));
    args.extend(["--connections-per-target", "2"].map(String::from));
    let router = RouterProcess::start(&args, &[]).unwrap_or_else(|e| panic!("{e}"));
    make_bucket(&router);
    let files: Vec<(String, Vec<u8>)> = (0..16)
        .map(|i| (format!("cut/f{i}.bin"), contents(i, 300_000)))
        .collect();
    for (path, data) in &files {
        put(&router, path, data);
    }
    wait_for(&router, "two connections", |t| {
        t[&target]["connections"] == 2
    });
    let before = connections_to(&router, &target, cluster.port());
    assert_eq!(before.len(), 2, "{before:?}");

    // Cut one connection under the router (the kernel aborts it, the server gets a
    // reset), then read everything at once from several clients: reads are idempotent,
    // so none may fail, whichever connection they were on.
    let cut = before[0];
    let killed = std::process::Command::new("ss")
        .args(["-K", "dst"])
        .arg(format!("{target}:{}", cluster.port()))
        .args(["sport", "=", &format!(":{cut}")])
        .output()
        .unwrap_or_else(|e| panic!("ss -K: {e}"));
    assert!(killed.status.success(), "ss -K: {killed:?}");
    std::thread::scope(|s| {
        for chunk in files.chunks(4) {
            let router = &router;
            s.spawn(move || get_all(router, chunk));
        }
    });

    // The lost connection is replaced, and the target never left service.
    wait_for(&router, "the connection to be replaced", |t| {
        let open = connections_to(&router, &target, cluster.port());
        t[&target]["connections"] == 2 && open.len() == 2 && !open.contains(&cut)
    });
    // (nfs-rs reconnects a cut connection itself and its session carries on; the
    // router replaces a connection only when that fails.)
    assert_eq!(targets(&router)[&target]["state"], "up");
    let log = router.log();
    assert!(
        !log.contains("marked down"),
        "the target left service:\n{log}"
    );
}

/// The router keeps the handles of its own directories (temporary files, sidecars) so a
/// PUT skips their lookups. Another router task's janitor, or an operator, may remove
/// them: the next PUT finds the kept handle stale, looks the directory up (making it
/// again), and stores the object with its sidecar as before.
#[test]
fn router_recovers_when_its_own_directories_are_removed_under_it() {
    let cluster = Ganesha::start(1).unwrap_or_else(|e| panic!("{e}"));
    let router = RouterProcess::start(&nfs_args(&cluster, &cluster.addresses()), &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let client = http();
    make_bucket(&router);
    let private = cluster.export_dir().join(".efs-router");
    for round in 0..3 {
        let data = contents(round, 10_000 + round);
        put(&router, "kept.bin", &data);
        let etag = response_etag(&client, &object(&router, "kept.bin"));
        assert_eq!(
            etag,
            format!("\"{}\"", crate::s3::md5_hex(&data)),
            "round {round}: the ETag is the MD5 (the sidecar was written)\n{}",
            router.log()
        );
        assert!(private.join("meta").is_dir(), "round {round}");
        // As another task's janitor would: everything private goes while this router runs.
        std::fs::remove_dir_all(&private).unwrap();
    }
    let got = client.get(object(&router, "kept.bin")).send().unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(
        got.bytes().unwrap().as_ref(),
        contents(2, 10_002).as_slice()
    );
}
