//! The README's first command, `scripts/local-up`, as a user runs it (on other ports and
//! another state directory than a developer's own local environment), and the whole
//! system joined on this machine: the `local` stack on the local AWS endpoint, an NFS
//! server per published mount target, the router serving S3 over them, and the scaler
//! on its schedule. Objects written through the router push the file count past the
//! threshold; the scaler adds the third mount target and publishes it; a server starts
//! for it; the router follows the list and serves through it. One server is then killed
//! under reads and writes. A second `local-up` changes nothing; `scripts/local-down`
//! takes it all away and leaves nothing listening.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use harness::{free_port, repo_root};
use serde_json::Value;

use crate::cli::text;
use crate::router::contents;

fn script(name: &str, vars: &[(&str, String)]) -> Output {
    Command::new(repo_root().join("scripts").join(name))
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap()
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `deployer status --env local --output json`, against the local endpoint.
fn status(vars: &[(&str, String)], moto_port: u16) -> Value {
    let out = Command::new(crate::cli::deployer())
        .current_dir(repo_root())
        .args(["status", "--env", "local", "--output", "json"])
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{moto_port}"))
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The key pair local-up generated for the router.
fn key_pair(file: &str) -> (String, String) {
    let text = std::fs::read_to_string(file).unwrap();
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim_start_matches([' ', '=']).trim().to_string())
            .unwrap_or_else(|| panic!("{key} missing from {file}"))
    };
    (value("aws_access_key_id"), value("aws_secret_access_key"))
}

/// An S3 client as an application configures one, without retries: every failure the
/// router answers is seen here, not hidden by the SDK.
fn s3_client(endpoint: &str, (key, secret): (String, String)) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("ap-northeast-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            key, secret, None, None, "local-up",
        ))
        .force_path_style(true)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

async fn put(s3: &aws_sdk_s3::Client, key: &str, body: Vec<u8>) -> Result<(), Option<u16>> {
    s3.put_object()
        .bucket("demo")
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| e.raw_response().map(|r| r.status().as_u16()))
}

async fn get(s3: &aws_sdk_s3::Client, key: &str) -> Result<Vec<u8>, String> {
    let out = s3
        .get_object()
        .bucket("demo")
        .key(key)
        .send()
        .await
        .map_err(|e| format!("{key}: {e:?}"))?;
    let body = out
        .body
        .collect()
        .await
        .map_err(|e| format!("{key}: {e}"))?;
    Ok(body.into_bytes().to_vec())
}

fn object(seed: usize) -> Vec<u8> {
    contents(seed, 1024 + seed % 4096)
}

/// Runs `scripts/local-down` if the test ends before its own call (a failed assertion
/// must not leave moto, ganesha and the router running on the machine).
struct TearDown<'a> {
    vars: &'a [(&'a str, String)],
    done: bool,
}

impl Drop for TearDown<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = script("local-down", self.vars);
        }
    }
}

fn listening(port: u16, address: &str) -> bool {
    std::net::TcpStream::connect_timeout(
        &format!("{address}:{port}").parse().unwrap(),
        Duration::from_millis(300),
    )
    .is_ok()
}

#[test]
fn local_up_runs_the_whole_system_and_local_down_takes_it_away() {
    let state = tempfile::tempdir().unwrap();
    let moto_port = free_port().unwrap();
    let s3_port = free_port().unwrap();
    let admin_port = free_port().unwrap();
    let nfs_port = free_port().unwrap();
    let vars = [
        ("LOCAL_MOTO_PORT", moto_port.to_string()),
        ("LOCAL_REGISTRY_PORT", free_port().unwrap().to_string()),
        ("LOCAL_S3_PORT", s3_port.to_string()),
        ("LOCAL_ADMIN_PORT", admin_port.to_string()),
        ("LOCAL_NFS_PORT", nfs_port.to_string()),
        ("LOCAL_STATE_DIR", state.path().display().to_string()),
    ];
    let mut teardown = TearDown {
        vars: &vars,
        done: false,
    };
    let up = script("local-up", &vars);
    let report = text(&up);
    assert_eq!(up.status.code(), Some(0), "{report}");
    let stdout = String::from_utf8_lossy(&up.stdout);
    assert!(
        stdout.contains("stack efs-autoscaler-local: CREATE_COMPLETE"),
        "{report}"
    );
    assert!(stdout.contains("matches the mount targets"), "{report}");
    // What to paste, and the example.
    assert!(
        stdout.contains(&format!(
            "AWS_ENDPOINT_URL_S3=http://127.0.0.1:{s3_port} AWS_REGION=ap-northeast-1"
        )) && stdout.contains("aws s3 cp --recursive"),
        "{report}"
    );
    // The data plane as status shows it: two NFS servers (one per published mount
    // target), the router healthy over both, on the nfs backend (the tests run as root).
    let plane = state.path().join("dataplane.json");
    let local = read_json(&plane);
    assert_eq!(local["backend"], "nfs", "{local}");
    assert!(
        stdout.contains("local data plane (nfs backend)") && stdout.contains("router: healthy"),
        "{report}"
    );
    let pair = key_pair(local["credentials_file"].as_str().unwrap());
    // The key pair is what was printed, and only its file holds it otherwise.
    assert!(
        stdout.contains(&pair.0) && stdout.contains(&pair.1),
        "{report}"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = s3_client(&format!("http://127.0.0.1:{s3_port}"), pair);
    let mut written: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    rt.block_on(async {
        s3.create_bucket().bucket("demo").send().await.unwrap();
        // Past the threshold for a third target: 100 per target, two targets.
        for i in 0..250usize {
            let key = format!("before/{i}.txt");
            put(&s3, &key, object(i)).await.unwrap();
            written.insert(key, object(i));
        }
    });

    // The scaler runs every minute: within two runs it has added the third mount target,
    // published it, and the router serves through its new server.
    let started = Instant::now();
    let scaled = loop {
        let now = status(&vars, moto_port);
        let targets = now["local"]["router"]["targets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if targets.len() == 3 && targets.iter().all(|t| t["state"] == "up") {
            break now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(200),
            "no scale-out in 200 s: {now:#}\n{}",
            std::fs::read_to_string(state.path().join("dataplane.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    let mount_targets = scaled["mount_targets"].as_array().unwrap();
    assert_eq!(mount_targets.len(), 3, "{scaled:#}");
    let added: Vec<&Value> = mount_targets
        .iter()
        .filter(|t| t["added_by"] == "scaler")
        .collect();
    assert_eq!(added.len(), 1, "{scaled:#}");
    let new_id = added[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        scaled["published_list"]["matches_mount_targets"], true,
        "{scaled:#}"
    );
    assert_eq!(scaled["local"]["nfs_servers"].as_array().unwrap().len(), 3);
    assert_eq!(
        scaled["local"]["scaler"]["result"]["new_mount_target_id"], new_id,
        "{scaled:#}"
    );

    // Written after: the new target carries its share.
    let operations = |s: &Value| {
        s["local"]["router"]["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["mount_target_id"] == new_id.as_str())
            .map(|t| t["operations"].as_u64().unwrap())
            .unwrap()
    };
    let before = operations(&scaled);
    rt.block_on(async {
        for i in 250..350usize {
            let key = format!("after/{i}.txt");
            put(&s3, &key, object(i)).await.unwrap();
            written.insert(key, object(i));
        }
    });
    let after = status(&vars, moto_port);
    assert!(operations(&after) > before, "{after:#}");

    // One NFS server killed while an application reads and writes: reads never fail,
    // writes fail only with a status SDKs retry (500, 503), and the supervisor starts the
    // server again, as a mount target comes back.
    let victim = read_json(&plane)["nfs_servers"][0]["pid"].as_u64().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (read_failures, write_results) = rt.block_on(async {
        let keys: Vec<String> = written.keys().cloned().collect();
        let reader = {
            let (s3, stop, written) = (s3.clone(), stop.clone(), written.clone());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    for key in &keys {
                        match get(&s3, key).await {
                            Ok(body) if body == written[key] => {}
                            Ok(_) => failures.push(format!("{key}: wrong contents")),
                            Err(e) => failures.push(e),
                        }
                    }
                }
                failures
            })
        };
        let writer = {
            let (s3, stop) = (s3.clone(), stop.clone());
            tokio::spawn(async move {
                let mut results = Vec::new();
                let mut i = 1000usize;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("during/{i}.txt");
                    results.push((key.clone(), i, put(&s3, &key, object(i)).await));
                    i += 1;
                }
                results
            })
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        let killed = Command::new("kill")
            .args(["-KILL", &victim.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        tokio::time::sleep(Duration::from_secs(12)).await;
        stop.store(true, Ordering::Relaxed);
        (reader.await.unwrap(), writer.await.unwrap())
    });
    assert!(read_failures.is_empty(), "reads failed: {read_failures:?}");
    let refused: Vec<_> = write_results
        .iter()
        .filter_map(|(key, _, r)| r.as_ref().err().map(|status| (key, *status)))
        .collect();
    assert!(
        refused
            .iter()
            .all(|(_, status)| matches!(status, Some(500 | 503))),
        "a write failed with a status that is not retried: {refused:?}"
    );
    for (key, seed, result) in &write_results {
        if result.is_ok() {
            written.insert(key.clone(), object(*seed));
        }
    }
    assert!(
        write_results.iter().filter(|(_, _, r)| r.is_ok()).count() > 10,
        "hardly any write went through: {refused:?}"
    );
    let restarted = read_json(&plane)["nfs_servers"][0].clone();
    assert!(
        restarted["starts"].as_u64().unwrap() >= 2 && restarted["pid"] != victim,
        "the killed server was not started again: {restarted}"
    );
    // Nothing written is lost: every object written before, after and during reads back
    // identical.
    rt.block_on(async {
        for (key, body) in &written {
            assert!(get(&s3, key).await.unwrap() == *body, "{key} changed");
        }
    });

    let again = script("local-up", &vars);
    let report = text(&again);
    assert_eq!(again.status.code(), Some(0), "{report}");
    assert!(
        report.contains("efs-autoscaler-local: no changes")
            && report.contains("data plane already running"),
        "{report}"
    );

    let down = script("local-down", &vars);
    teardown.done = true;
    let report = text(&down);
    assert_eq!(down.status.code(), Some(0), "{report}");
    assert!(report.contains("stopped the data plane"), "{report}");
    assert!(report.contains("efs-autoscaler-local: deleted"), "{report}");
    assert!(
        report.contains("stopped moto") && report.contains("stopped registry"),
        "{report}"
    );
    assert!(!state.path().join("moto.pid").exists());
    // Nothing it started still listens.
    for (port, address) in [
        (moto_port, "127.0.0.1"),
        (s3_port, "127.0.0.1"),
        (admin_port, "127.0.0.1"),
        (nfs_port, "127.0.0.2"),
        (nfs_port, "127.0.0.3"),
        (nfs_port, "127.0.0.4"),
    ] {
        assert!(
            !listening(port, address),
            "{address}:{port} still listens after local-down"
        );
    }
}
