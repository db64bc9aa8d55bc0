//! Opt-in, off by default: the lifecycle against a real AWS account, which is the only
//! proof of what the local endpoint cannot show (docs/operations.md). Run with
//! credentials for a sandbox account whose environment file names it:
//!
//! ```text
//! EFSA_REAL_AWS_ENV=dev cargo test -p efs-autoscaler-tests --test e2e -- --ignored real_aws
//! ```
//!
//! It creates real resources (and costs), then deletes them.

use crate::cli::{run, text};

#[test]
#[ignore = "needs a real AWS account: EFSA_REAL_AWS_ENV=<env> cargo test -- --ignored real_aws"]
fn real_aws_bootstrap_up_status_invoke_down() {
    let env = std::env::var("EFSA_REAL_AWS_ENV").unwrap_or_else(|_| {
        panic!("set EFSA_REAL_AWS_ENV to the environment of a sandbox account (e.g. dev)")
    });
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_none(),
        "AWS_ENDPOINT_URL is set: this test is for real AWS"
    );
    let step = |args: &[&str]| {
        let out = run(args, &[]);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        out
    };
    step(&["bootstrap", "--env", &env]);
    // A sandbox account, deployed by the test that then tears it down.
    step(&["up", "--env", &env, "--yes", "--approve-risky"]);
    let diff = step(&["diff", "--env", &env, "--exit-code"]);
    assert!(String::from_utf8_lossy(&diff.stdout).contains("no changes"));
    let status = step(&["status", "--env", &env, "--output", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        status["published_list"]["matches_mount_targets"], true,
        "{status}"
    );
    step(&["invoke", "--env", &env]);
    step(&["down", "--env", &env, "--yes", "--force", "--confirm", &env]);
}
