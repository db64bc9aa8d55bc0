//! The README's first command, `scripts/local-up`, as a user runs it (on other ports and
//! another state directory than a developer's own local environment): it starts moto and
//! a registry, bootstraps, deploys and prints status; a second run changes nothing;
//! `scripts/local-down` takes it all away.

use std::process::{Command, Output};

use harness::{free_port, repo_root};

use crate::cli::text;

fn script(name: &str, vars: &[(&str, String)]) -> Output {
    Command::new(repo_root().join("scripts").join(name))
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap()
}

#[test]
fn local_up_brings_the_environment_up_and_local_down_takes_it_away() {
    let state = tempfile::tempdir().unwrap();
    let vars = [
        ("LOCAL_MOTO_PORT", free_port().unwrap().to_string()),
        ("LOCAL_REGISTRY_PORT", free_port().unwrap().to_string()),
        ("LOCAL_STATE_DIR", state.path().display().to_string()),
    ];
    let up = script("local-up", &vars);
    let report = text(&up);
    assert_eq!(up.status.code(), Some(0), "{report}");
    let stdout = String::from_utf8_lossy(&up.stdout);
    assert!(
        stdout.contains("stack efs-autoscaler-local: CREATE_COMPLETE"),
        "{report}"
    );
    assert!(stdout.contains("matches the mount targets"), "{report}");

    let again = script("local-up", &vars);
    let report = text(&again);
    assert_eq!(again.status.code(), Some(0), "{report}");
    assert!(
        report.contains("efs-autoscaler-local: no changes"),
        "{report}"
    );

    let down = script("local-down", &vars);
    let report = text(&down);
    assert_eq!(down.status.code(), Some(0), "{report}");
    assert!(report.contains("efs-autoscaler-local: deleted"), "{report}");
    assert!(
        report.contains("stopped moto") && report.contains("stopped registry"),
        "{report}"
    );
    assert!(!state.path().join("moto.pid").exists());
}
