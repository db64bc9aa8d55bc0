//! The self-contained deployer (`deployer bundle`): copied into an empty directory with no
//! cargo, zig or rustup on PATH, it starts a project (`init`), deploys the `local`
//! environment to a moto server and a real registry with the artifacts it carries, and
//! `diff` then finds nothing to change. What it carries is byte for byte what `package`
//! makes from the same revision.

use std::path::Path;
use std::process::{Command, Output};

use harness::{MotoServer, Registry, repo_root};
use serde_json::Value;

use crate::cli::text;

fn run_in(dir: &Path, exe: &Path, args: &[&str], vars: &[(&str, String)]) -> Output {
    Command::new(exe)
        .current_dir(dir)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", dir)
        .env("NO_COLOR", "1")
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap()
}

#[test]
fn a_bundled_deployer_deploys_from_an_empty_directory_without_a_toolchain() {
    let moto = MotoServer::start().unwrap_or_else(|e| panic!("{e}"));
    let registry = Registry::start().unwrap_or_else(|e| panic!("{e}"));
    let work = tempfile::tempdir().unwrap();
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let exe = bin.join("deployer");
    // Made in the source tree (which has the toolchains), from this revision.
    let bundled = Command::new(crate::cli::deployer())
        .current_dir(repo_root())
        .args(["bundle", "--out", exe.to_str().unwrap(), "--output", "json"])
        .output()
        .unwrap();
    assert!(bundled.status.success(), "{}", text(&bundled));
    let carried: Value = serde_json::from_slice(&bundled.stdout).unwrap();

    let project = work.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    // Nothing that could build: the PATH the deployer gets has no cargo, zig or rustup.
    for tool in ["cargo", "zig", "rustup", "cargo-zigbuild"] {
        let found = run_in(
            &project,
            Path::new("/bin/sh"),
            &["-c", &format!("command -v {tool}")],
            &[],
        );
        assert!(
            !found.status.success(),
            "{tool} is on the test's PATH: {}",
            text(&found)
        );
    }
    let version = run_in(&project, &exe, &["--version"], &[]);
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    for line in carried["artifacts"].as_array().unwrap() {
        assert!(version.contains(line.as_str().unwrap()), "{version}");
    }

    let init = run_in(&project, &exe, &["init"], &[]);
    assert!(init.status.success(), "{}", text(&init));
    let vars = vec![
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ("DEPLOYER_REGISTRY_URL", registry.url()),
    ];
    let ok = |args: &[&str]| {
        let out = run_in(&project, &exe, args, &vars);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        out
    };
    ok(&["bootstrap", "--env", "local"]);
    let up = ok(&["up", "--env", "local", "--yes", "--approve-risky"]);
    let log = String::from_utf8_lossy(&up.stderr);
    assert!(log.contains("artifacts: carried by this deployer"), "{log}");
    assert!(log.contains("CREATE_COMPLETE"), "{log}");
    let diff = ok(&["diff", "--env", "local", "--exit-code"]);
    assert!(
        String::from_utf8_lossy(&diff.stdout).contains("no changes"),
        "{}",
        text(&diff)
    );

    // What it deployed is what `package` builds from this revision.
    let deployed: Value = serde_json::from_slice(
        &std::fs::read(project.join(".deployer/local/artifacts.json")).unwrap(),
    )
    .unwrap();
    let packaged = crate::package::package_local(&repo_root(), None, &work.path().join("packaged"));
    assert_eq!(
        deployed["scaler"]["sha256"], packaged["scaler"]["sha256"],
        "{deployed}\n{packaged}"
    );
    assert_eq!(
        deployed["router"]["digest"], packaged["router"]["digest"],
        "{deployed}\n{packaged}"
    );
}
