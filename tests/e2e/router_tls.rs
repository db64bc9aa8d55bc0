//! `efs-router` with encryption in transit: two ganesha instances, each behind a
//! `stunnel4` TLS front with a certificate from a test CA, as two EFS mount targets
//! speaking TLS on their NFS port. One front carries a certificate for the wrong name:
//! the router serves through the good one and reports the other. Killing and restarting
//! the good front takes the target out and brings it back. Then each way TLS can be
//! misconfigured, one run each, must stop the router with a message naming the target
//! and the cause.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use harness::{Ganesha, RouterProcess, ServerCert, TestCa, TlsFront};
use reqwest::StatusCode;

use crate::router::{base_args, contents, http, make_bucket, object, put, targets, wait_for};

const FS: &str = "fs-12345678";
const REGION: &str = "us-east-1";

fn good_name() -> String {
    format!("{FS}.efs.{REGION}.amazonaws.com")
}

/// Fronts on 127.0.0.(20 + i), each relaying to ganesha instance i.
fn front(ca: &TestCa, cluster: &Ganesha, i: usize, name: &str, expired: bool) -> TlsFront {
    let upstream: SocketAddr = format!("{}:{}", cluster.address(i), cluster.port())
        .parse()
        .unwrap();
    let cert = ServerCert {
        name: name.to_string(),
        expired,
    };
    TlsFront::start(ca, &cert, Ipv4Addr::new(127, 0, 0, 20 + i as u8), upstream)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn tls_args(cluster: &Ganesha, ca: &TestCa, targets: &[String]) -> Vec<String> {
    let mut args = base_args(cluster, targets);
    args.extend(
        [
            "--file-system-id",
            FS,
            "--region",
            REGION,
            "--connections-per-target",
            "2",
        ]
        .map(String::from),
    );
    args.extend(["--tls-ca".into(), ca.pem_path().display().to_string()]);
    args
}

fn put_get(router: &RouterProcess, path: &str, data: &[u8]) {
    put(router, path, data);
    let got = http().get(object(router, path)).send().unwrap();
    assert_eq!(got.status(), StatusCode::OK, "GET {path}\n{}", router.log());
    assert_eq!(got.bytes().unwrap().as_ref(), data, "GET {path} contents");
}

#[test]
fn router_serves_through_tls_and_reports_a_target_with_the_wrong_name() {
    let cluster = Ganesha::start(2).unwrap_or_else(|e| panic!("{e}"));
    let ca = TestCa::new("efs-autoscaler test CA").unwrap_or_else(|e| panic!("{e}"));
    let mut good = front(&ca, &cluster, 0, &good_name(), false);
    let wrong = front(
        &ca,
        &cluster,
        1,
        "fs-99999999.efs.us-east-1.amazonaws.com",
        false,
    );
    let router = RouterProcess::start(
        &tls_args(&cluster, &ca, &[good.address(), wrong.address()]),
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let t = targets(&router);
    assert_eq!(t[&good.address()]["state"], "up", "{t:?}");
    // --connections-per-target 2: two TLS connections, each its own NFS session.
    assert_eq!(t[&good.address()]["connections"], 2, "{t:?}");
    assert_eq!(t[&wrong.address()]["state"], "down", "{t:?}");
    let reason = t[&wrong.address()]["last_error"].as_str().unwrap();
    assert!(
        reason.contains("TLS") && reason.contains("not valid for") && reason.contains(&good_name()),
        "{reason}"
    );
    assert!(router.log().contains("encrypted (TLS)"), "{}", router.log());
    make_bucket(&router);

    // Files go through the good front (several sizes, several chunks), and land in the
    // exported directory: the data path works end to end through TLS.
    for (i, size) in [0usize, 1, 4096, 1_500_000, 3_200_001]
        .into_iter()
        .enumerate()
    {
        let data = contents(i, size);
        put_get(&router, &format!("tls/f{i}.bin"), &data);
        let on_disk =
            std::fs::read(cluster.export_dir().join(format!("bkt/tls/f{i}.bin"))).unwrap();
        assert_eq!(on_disk, data);
    }

    // The TLS front dies: the target goes down; it comes back by itself when the front
    // does, and serves again.
    good.kill();
    wait_for(&router, "the killed front to be marked down", |t| {
        t[&good.address()]["state"] == "down"
    });
    good.restart().unwrap_or_else(|e| panic!("{e}"));
    wait_for(&router, "the restarted front to come back", |t| {
        t[&good.address()]["state"] == "up"
    });
    put_get(&router, "tls/after-restart.bin", &contents(99, 200_000));
    wait_for(&router, "both connections to be back", |t| {
        t[&good.address()]["connections"] == 2
    });

    // The wrong-name target never served anything, not even in clear text.
    let t = targets(&router);
    assert_eq!(t[&wrong.address()]["state"], "down");
    assert_eq!(t[&wrong.address()]["operations"], 0, "{t:?}");
    let (status, log) = router.terminate().unwrap();
    assert!(status.success(), "{log}");
}

/// Runs a router that must fail to start; returns its log.
fn fails(args: &[String], env: &[(String, String)]) -> String {
    let exited = RouterProcess::run_to_exit(args, env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(exited.status.code(), Some(1), "{}", exited.log);
    assert!(
        exited.elapsed < Duration::from_secs(20),
        "{:?}",
        exited.elapsed
    );
    exited.log
}

#[test]
fn each_tls_misconfiguration_is_named() {
    let cluster = Ganesha::start(2).unwrap_or_else(|e| panic!("{e}"));
    let ca = TestCa::new("efs-autoscaler test CA").unwrap_or_else(|e| panic!("{e}"));
    let other_ca = TestCa::new("some other CA").unwrap_or_else(|e| panic!("{e}"));
    let good = front(&ca, &cluster, 0, &good_name(), false);
    let expired = front(&ca, &cluster, 1, &good_name(), true);

    // A CA that did not sign the server's certificate.
    let log = fails(&tls_args(&cluster, &other_ca, &[good.address()]), &[]);
    assert!(
        log.contains(&good.address()) && log.contains("not signed by a trusted CA"),
        "{log}"
    );

    // The wrong server name, given explicitly.
    let mut args = tls_args(&cluster, &ca, &[good.address()]);
    args.extend([
        "--tls-server-name".into(),
        "fs-0000.efs.eu-west-1.amazonaws.com".into(),
    ]);
    let log = fails(&args, &[]);
    assert!(
        log.contains(&good.address()) && log.contains("not valid for fs-0000.efs.eu-west-1"),
        "{log}"
    );

    // An expired certificate.
    let log = fails(&tls_args(&cluster, &ca, &[expired.address()]), &[]);
    assert!(
        log.contains(&expired.address()) && log.contains("expired"),
        "{log}"
    );

    // A plain-text NFS server where TLS was asked: only a TLS hello is ever sent.
    let plain = cluster.address(0);
    let log = fails(&tls_args(&cluster, &ca, std::slice::from_ref(&plain)), &[]);
    assert!(log.contains(&plain) && log.contains("--tls=false"), "{log}");

    // A TLS server where clear text was asked.
    let mut args = tls_args(&cluster, &ca, &[good.address()]);
    args.push("--tls=false".into());
    let log = fails(&args, &[]);
    assert!(
        log.contains(&good.address()) && log.contains("answers with TLS: run with --tls"),
        "{log}"
    );

    // --iam with no credentials anywhere in the chain: refused before connecting.
    let mut args = tls_args(&cluster, &ca, &[good.address()]);
    args.push("--iam".into());
    let log = fails(
        &args,
        &[("AWS_EC2_METADATA_DISABLED".into(), "true".into())],
    );
    assert!(log.contains("--iam: no AWS credentials"), "{log}");

    // --tls without a name to check: refused before connecting.
    let args: Vec<String> = ["--backend", "nfs", "--target", "127.0.0.9"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let log = fails(&args, &[]);
    assert!(
        log.contains("EFS_FILE_SYSTEM_ID") && log.contains("--tls-server-name"),
        "{log}"
    );
}
