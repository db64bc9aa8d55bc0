//! `deployer bootstrap` and `deployer package` end to end: the real static builds, a real
//! OCI registry (docker-registry, read back with skopeo) and a moto server.

use std::path::Path;
use std::process::Command;

use deployer::config::Architecture;
use deployer::package::elf;
use harness::{MotoServer, Registry, find_tool, repo_root};

use crate::cli::{as_refs, deployer, environments_copy, run, text};

fn artifacts(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("artifacts.json")).unwrap()).unwrap()
}

/// `deployer package --env local --no-upload --out OUT` run in `checkout` (with its own
/// target directory when given); what it wrote to `artifacts.json`.
pub fn package_local(checkout: &Path, target_dir: Option<&Path>, out: &Path) -> serde_json::Value {
    let mut command = Command::new(deployer());
    command.current_dir(checkout).args([
        "package",
        "--env",
        "local",
        "--no-upload",
        "--out",
        out.to_str().unwrap(),
    ]);
    if let Some(dir) = target_dir {
        command.env("CARGO_TARGET_DIR", dir);
    }
    let packaged = command.output().unwrap();
    assert!(packaged.status.success(), "{}", text(&packaged));
    artifacts(out)
}

fn moto_env(moto: &MotoServer) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

/// Two packages of the same source give byte-identical zips and the same image digest;
/// the zip holds a static x86_64 `bootstrap`; skopeo reads the image layout and finds the
/// entrypoint, user and architecture.
#[test]
fn package_is_reproducible_static_and_readable_by_skopeo() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut printed = Vec::new();
    for dir in &dirs {
        let out = run(
            &[
                "package",
                "--env",
                "local",
                "--no-upload",
                "--out",
                dir.path().to_str().unwrap(),
                "--output",
                "json",
            ],
            &[],
        );
        assert!(out.status.success(), "{}", text(&out));
        printed.push(
            serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .unwrap_or_else(|e| panic!("{e}: {}", text(&out))),
        );
    }
    let (a, b) = (artifacts(dirs[0].path()), artifacts(dirs[1].path()));
    // --output json prints what artifacts.json holds, for a pipeline to read.
    assert_eq!(printed, [a.clone(), b.clone()]);
    assert_eq!(a["scaler"]["sha256"], b["scaler"]["sha256"]);
    assert_eq!(a["router"]["digest"], b["router"]["digest"]);
    let key = a["scaler"]["key"].as_str().unwrap();
    let zip_a = std::fs::read(dirs[0].path().join(key)).unwrap();
    assert_eq!(zip_a, std::fs::read(dirs[1].path().join(key)).unwrap());
    assert!(
        a["parameters"]["RouterImage"].is_null(),
        "nothing was pushed: {a}"
    );

    let bootstrap = bootstrap_of(&zip_a);
    elf::check_static(&bootstrap, Architecture::X86_64).unwrap();
    // Nothing of this machine or this day is in the binaries: another machine (another
    // home directory) or another day builds the same bytes.
    let router = router_of(dirs[0].path());
    for (name, binary) in [("bootstrap", &bootstrap), ("efs-router", &router)] {
        for leak in machine_and_day() {
            assert!(
                !contains(binary, leak.as_bytes()),
                "{name} holds {leak:?}: a build on another machine or day would differ"
            );
        }
    }
    let config = image_config(dirs[0].path(), &a);
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/efs-router"])
    );
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.revision"],
        a["revision"]
    );
}

/// The `bootstrap` executable in a Lambda zip.
fn bootstrap_of(zip: &[u8]) -> Vec<u8> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut bootstrap = Vec::new();
    std::io::Read::read_to_end(&mut archive.by_name("bootstrap").unwrap(), &mut bootstrap).unwrap();
    bootstrap
}

/// `/usr/local/bin/efs-router` from the one layer of the OCI layout `package --out DIR`
/// wrote, unpacked with tar.
fn router_of(dir: &Path) -> Vec<u8> {
    let layout = dir.join("router-image");
    let blob = |digest: &serde_json::Value| {
        let hex = digest.as_str().unwrap().strip_prefix("sha256:").unwrap();
        layout.join("blobs/sha256").join(hex)
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&index["manifests"][0]["digest"])).unwrap())
            .unwrap();
    let out = Command::new("tar")
        .arg("-xzOf")
        .arg(blob(&manifest["layers"][0]["digest"]))
        .arg("usr/local/bin/efs-router")
        .output()
        .unwrap();
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "{}",
        text(&out)
    );
    out.stdout
}

/// What a build would take from this machine, this checkout or this day: the cargo home
/// the registry sources are unpacked in, where the checkout and the target directory
/// are, and today's date as C's `__DATE__` writes it.
fn machine_and_day() -> Vec<String> {
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| repo_root().join("target").display().to_string());
    let home = std::env::var("CARGO_HOME")
        .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap()));
    let date = Command::new("date")
        .env("LC_ALL", "C")
        .args(["+%b %e %Y"])
        .output()
        .unwrap();
    vec![
        format!("{home}/registry"),
        repo_root().canonicalize().unwrap().display().to_string(),
        target,
        String::from_utf8(date.stdout)
            .unwrap()
            .trim_end()
            .to_string(),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The image config of the OCI layout `package --out DIR` wrote, as skopeo reads it.
fn image_config(dir: &Path, artifacts: &serde_json::Value) -> serde_json::Value {
    let skopeo = find_tool("skopeo").unwrap_or_else(|e| panic!("{e}"));
    let layout = format!(
        "oci:{}:{}",
        dir.join("router-image").display(),
        artifacts["router"]["tag"].as_str().unwrap()
    );
    let config = Command::new(&skopeo)
        .args(["inspect", "--config", &layout])
        .output()
        .unwrap();
    assert!(config.status.success(), "{}", text(&config));
    serde_json::from_slice(&config.stdout).unwrap()
}

/// Cross-built for arm64 (cargo-zigbuild on this x86_64 machine): the zip's `bootstrap`
/// is a static aarch64 executable and the image says arm64.
#[test]
fn package_cross_builds_arm64() {
    let envs = environments_copy();
    let local = envs.path().join("local.yaml");
    let yaml = std::fs::read_to_string(&local).unwrap();
    std::fs::write(
        &local,
        yaml.replacen("service:\n", "service:\n  architecture: arm64\n", 1)
            .replacen("scaler:\n", "scaler:\n  architecture: arm64\n", 1),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "--environments-dir",
            envs.path().to_str().unwrap(),
            "package",
            "--env",
            "local",
            "--no-upload",
            "--out",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let a = artifacts(dir.path());
    assert_eq!(a["scaler"]["architecture"], "arm64");
    let zip = std::fs::read(dir.path().join(a["scaler"]["key"].as_str().unwrap())).unwrap();
    elf::check_static(&bootstrap_of(&zip), Architecture::Arm64).unwrap();
    let config = image_config(dir.path(), &a);
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["os"], "linux");
    assert!(
        a["router"]["tag"].as_str().unwrap().starts_with("arm64-"),
        "{a}"
    );
}

/// Bootstrap in moto (twice: the second run changes nothing), then package: the zip
/// goes to the artifact bucket and the image to a real registry, pulled back by digest
/// with skopeo. A second package uploads no blob and puts no object.
#[test]
fn bootstrap_then_package_uploads_once() {
    let moto = MotoServer::start().unwrap_or_else(|e| panic!("{e}"));
    let registry = Registry::start().unwrap_or_else(|e| panic!("{e}"));
    let env = moto_env(&moto);
    let mut env = as_refs(&env);

    // Package before bootstrap: a clear error, before any build.
    let out = run(&["package", "--env", "local"], &env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bootstrap stack") && stderr.contains("deployer bootstrap --env local"),
        "{stderr}"
    );

    let out = run(&["bootstrap", "--env", "local"], &env);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ArtifactBucketName"),
        "{}",
        text(&out)
    );
    let before = requests(&moto);
    let out = run(&["bootstrap", "--env", "local", "--output", "json"], &env);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("up to date"),
        "{}",
        text(&out)
    );
    // DescribeStacks and GetTemplate, nothing else: no write call.
    assert_eq!(requests(&moto) - before, 2, "{}", moto_log(&moto));
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(json["stack"], "efs-autoscaler-bootstrap", "{json}");
    assert!(
        json["outputs"]["ArtifactBucketName"]
            .as_str()
            .is_some_and(|b| b.starts_with("efs-autoscaler-artifacts-")),
        "{json}"
    );

    let registry_url = registry.url();
    env.push(("DEPLOYER_REGISTRY_URL", registry_url.as_str()));
    let out_dir = tempfile::tempdir().unwrap();
    let out_arg = out_dir.path().to_str().unwrap();
    let out = run(&["package", "--env", "local", "--out", out_arg], &env);
    assert!(out.status.success(), "{}", text(&out));
    let a = artifacts(out_dir.path());
    let digest = a["router"]["digest"].as_str().unwrap();
    assert_eq!(
        registry.blob_uploads(),
        2,
        "layer and config: {}",
        registry.log()
    );
    assert!(
        a["parameters"]["RouterImage"]
            .as_str()
            .unwrap()
            .ends_with(&format!("@{digest}"))
    );
    assert!(a["parameters"]["ScalerCodeBucket"].as_str().is_some());

    // Pulled back by digest: the registry holds exactly what was built.
    let skopeo = find_tool("skopeo").unwrap_or_else(|e| panic!("{e}"));
    let repository = "efs-autoscaler/router";
    let inspected = Command::new(&skopeo)
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}/{repository}@{digest}", registry.host()),
        ])
        .output()
        .unwrap();
    assert!(inspected.status.success(), "{}", text(&inspected));
    let inspected: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(inspected["Digest"], digest);
    assert_eq!(inspected["Architecture"], "amd64");

    let puts_before = object_puts(&moto);
    assert_eq!(puts_before, 1, "the zip was put once:\n{}", moto_log(&moto));
    let out = run(&["package", "--env", "local"], &env);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(registry.blob_uploads(), 2, "a second push uploaded a blob");
    assert_eq!(object_puts(&moto), 1, "a second package put the zip again");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("already uploaded"),
        "{}",
        text(&out)
    );

    // Something else at the zip's key (damaged, or put by another hand): not trusted for
    // its name, the zip goes up again and the bucket holds what was built.
    let bucket = a["scaler"]["bucket"].as_str().unwrap().to_string();
    let key = a["scaler"]["key"].as_str().unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = rt.block_on(async {
        let sdk = moto.sdk_config("ap-northeast-1").await;
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        )
    });
    rt.block_on(
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(b"not the zip".to_vec().into())
            .send(),
    )
    .unwrap();
    let out = run(&["package", "--env", "local"], &env);
    assert!(out.status.success(), "{}", text(&out));
    let stored = rt
        .block_on(async {
            s3.get_object()
                .bucket(&bucket)
                .key(&key)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
        })
        .unwrap()
        .into_bytes();
    assert_eq!(
        stored.len() as u64,
        a["scaler"]["size"].as_u64().unwrap(),
        "the damaged object was trusted"
    );
}

/// A registry that refuses the credentials: exit 1 naming the registry and what to
/// check, and no artifacts.json pointing at an image that is not there.
#[test]
fn a_registry_refusing_credentials_is_a_clear_error() {
    let moto = MotoServer::start().unwrap_or_else(|e| panic!("{e}"));
    let registry = Registry::start_with_login("someone", "not-the-ecr-token")
        .unwrap_or_else(|e| panic!("{e}"));
    let env = moto_env(&moto);
    let mut env = as_refs(&env);
    let out = run(&["bootstrap", "--env", "local"], &env);
    assert!(out.status.success(), "{}", text(&out));
    let registry_url = registry.url();
    env.push(("DEPLOYER_REGISTRY_URL", registry_url.as_str()));
    let out_dir = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "package",
            "--env",
            "local",
            "--out",
            out_dir.path().to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refused the credentials") && stderr.contains(&registry.host()),
        "{stderr}"
    );
    assert!(!out_dir.path().join("artifacts.json").exists());
    assert_eq!(registry.blob_uploads(), 0);
}

/// Cross-building without cargo-zigbuild and zig names both and how to install them,
/// before compiling anything.
#[test]
fn a_missing_cross_toolchain_is_named_with_its_install_command() {
    let envs = environments_copy();
    let local = envs.path().join("local.yaml");
    let mut yaml = std::fs::read_to_string(&local).unwrap();
    yaml = yaml.replacen("service:\n", "service:\n  architecture: arm64\n", 1);
    std::fs::write(&local, yaml).unwrap();
    // Only cargo and rustc: the directory of the cargo running this test, and an empty
    // project home (scripts/setup's cargo-zigbuild and zig are found there otherwise).
    let home = tempfile::tempdir().unwrap();
    let cargo = std::env::var("CARGO").unwrap();
    let cargo_dir = Path::new(&cargo)
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let mut command = Command::new(deployer());
    let out = command
        .current_dir(repo_root())
        .args(["--environments-dir", envs.path().to_str().unwrap()])
        .args(["package", "--env", "local", "--no-upload"])
        .env("PATH", format!("{cargo_dir}:/usr/bin:/bin"))
        .env("EFSA_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    if Path::new("/usr/bin/zig").exists() {
        return; // a system zig: only cargo-zigbuild can be missing
    }
    assert!(
        stderr.contains("aarch64-unknown-linux-musl")
            && stderr.contains("cargo install --locked cargo-zigbuild")
            && stderr.contains("ziglang"),
        "{stderr}"
    );
}

fn moto_log(moto: &MotoServer) -> String {
    std::fs::read_to_string(moto.log_path()).unwrap_or_default()
}

/// S3 object PUTs seen by moto (its access log).
fn object_puts(moto: &MotoServer) -> usize {
    moto_log(moto)
        .lines()
        .filter(|l| l.contains("\"PUT /") && l.contains(".zip"))
        .count()
}

/// Requests moto has answered: every CloudFormation call is one POST to `/`.
fn requests(moto: &MotoServer) -> usize {
    moto_log(moto)
        .lines()
        .filter(|l| l.contains("\"POST / ") || l.contains("\"PUT /") || l.contains("\"DELETE /"))
        .count()
}

/// An architecture neither Lambda nor Fargate runs: a configuration error naming the
/// file, the key and the allowed values, before any build or AWS call.
#[test]
fn an_unknown_architecture_is_a_configuration_error() {
    let envs = environments_copy();
    let local = envs.path().join("local.yaml");
    let yaml = std::fs::read_to_string(&local).unwrap();
    std::fs::write(
        &local,
        yaml.replacen("service:\n", "service:\n  architecture: sparc\n", 1),
    )
    .unwrap();
    let out = run(
        &[
            "--environments-dir",
            envs.path().to_str().unwrap(),
            "package",
            "--env",
            "local",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("local.yaml")
            && stderr.contains("service.architecture")
            && stderr.contains("x86_64")
            && stderr.contains("arm64"),
        "{stderr}"
    );
}

/// Two checkouts of one revision at other paths, each with its own target directory,
/// build the same scaler zip and the same router binary (the image differs only if the
/// revisions do: its label names the commit). Off by default: the second checkout builds
/// every dependency again (about 6 minutes on 2 cores). Run with
/// `cargo test -p efs-autoscaler-tests --test e2e -- --ignored two_checkouts`.
#[test]
#[ignore = "builds the runtime from nothing in a second checkout (minutes); run by hand"]
fn two_checkouts_build_the_same_bytes() {
    let root = repo_root();
    let here = tempfile::tempdir().unwrap();
    let a = package_local(&root, None, here.path());

    let other = tempfile::tempdir().unwrap();
    let checkout = other.path().join("elsewhere/efs-autoscaler");
    let cloned = Command::new("git")
        .args([
            "clone",
            "-q",
            root.to_str().unwrap(),
            checkout.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(cloned.status.success(), "{}", text(&cloned));
    let packaged = other.path().join("out");
    let b = package_local(&checkout, Some(&other.path().join("target")), &packaged);

    assert_eq!(a["scaler"]["sha256"], b["scaler"]["sha256"]);
    assert_eq!(
        router_of(here.path()),
        router_of(&packaged),
        "the router binaries differ"
    );
}
