//! Opt-in, off by default: the router against a real Amazon EFS file system with TLS
//! and IAM, the only proof that EFS accepts the router's certificate and signature
//! (docs/router.md#what-only-real-efs-shows). Run it on a host inside the file system's
//! VPC (an EC2 instance, or a task) whose role may mount through the access point:
//!
//! ```text
//! EFSA_REAL_EFS_TARGETS=10.0.1.23,10.0.2.41 EFSA_REAL_EFS_FS_ID=fs-0123456789abcdef0 \
//! EFSA_REAL_EFS_ACCESS_POINT=fsap-0123456789abcdef0 AWS_REGION=ap-northeast-1 \
//! cargo test -p efs-autoscaler-tests --test e2e -- --ignored real_efs
//! ```
//!
//! It writes, reads and deletes one file under the access point's root.

use harness::RouterProcess;
use reqwest::StatusCode;

use crate::router::{contents, http, make_bucket, object, targets};

fn var(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("set {name} (see the top of tests/e2e/real_efs.rs)"))
}

#[test]
#[ignore = "needs a real EFS file system: see tests/e2e/real_efs.rs"]
fn real_efs_tls_and_iam_through_the_access_point() {
    let addresses = var("EFSA_REAL_EFS_TARGETS");
    let mut args: Vec<String> = [
        "--anonymous",
        "--backend",
        "nfs",
        "--tls",
        "--iam",
        "--connections-per-target",
        "2",
        "--file-system-id",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(var("EFSA_REAL_EFS_FS_ID"));
    args.extend(["--access-point".into(), var("EFSA_REAL_EFS_ACCESS_POINT")]);
    args.extend(["--region".into(), var("AWS_REGION")]);
    for a in addresses.split(',') {
        args.extend(["--target".into(), a.trim().to_string()]);
    }
    // The credentials chain needs what the host gives it: keep the AWS variables and
    // the instance or container credential endpoints.
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_") || k.starts_with("ECS_"))
        .collect();
    let router = RouterProcess::start(&args, &env).unwrap_or_else(|e| panic!("{e}"));
    for (address, t) in targets(&router) {
        assert_eq!(t["state"], "up", "{address}: {t}\n{}", router.log());
    }
    let client = http();
    make_bucket(&router);
    let path = format!("efs-autoscaler-real-efs-test/{}.bin", std::process::id());
    let data = contents(7, 3_000_001);
    let url = object(&router, &path);
    assert_eq!(
        client.put(&url).body(data.clone()).send().unwrap().status(),
        StatusCode::OK
    );
    let got = client.get(&url).send().unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.bytes().unwrap().as_ref(), data.as_slice());
    assert_eq!(
        client.delete(&url).send().unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let (status, log) = router.terminate().unwrap();
    assert!(status.success(), "{log}");
}
