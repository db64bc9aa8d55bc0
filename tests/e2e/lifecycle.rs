//! The whole lifecycle of the `local` environment against a moto server and a real
//! registry, through the deployer binary as a user runs it: bootstrap, up, diff, a
//! configuration change diffed and applied, the scaler adding a mount target, status,
//! and down.

use std::path::Path;
use std::process::Output;

use harness::{MotoServer, Registry};
use serde_json::Value;

use crate::cli::{as_refs, environments_copy, run, text};

struct Env<'a> {
    envs: &'a Path,
    vars: Vec<(&'static str, String)>,
}

impl Env<'_> {
    fn run(&self, args: &[&str]) -> Output {
        let mut all = vec!["--environments-dir", self.envs.to_str().unwrap()];
        all.extend_from_slice(args);
        run(&all, &as_refs(&self.vars))
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        out
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The stack's resources of one type (physical ids), as CloudFormation lists them.
async fn physical_ids(sdk: &aws_config::SdkConfig, stack: &str, kind: &str) -> Vec<String> {
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let out = cfn
        .list_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .unwrap();
    out.stack_resource_summaries()
        .iter()
        .filter(|r| r.resource_type() == Some(kind))
        .filter_map(|r| r.physical_resource_id().map(str::to_string))
        .collect()
}

#[test]
fn bootstrap_up_diff_change_scale_status_down() {
    let moto = MotoServer::start().unwrap_or_else(|e| panic!("{e}"));
    let registry = Registry::start().unwrap_or_else(|e| panic!("{e}"));
    let envs = environments_copy();
    // Deployed through a CloudFormation service role (moto records it; only real AWS
    // checks the caller's iam:PassRole and acts with the role's rights).
    let role = "arn:aws:iam::123456789012:role/cloudformation-deploy";
    let local = envs.path().join("local.yaml");
    let mut yaml = std::fs::read_to_string(&local).unwrap();
    yaml.push_str(&format!("\ncloudformation_role_arn: {role}\n"));
    // Two releases kept, so a few deploys show pruning.
    yaml.push_str("release:\n  keep: 2\n");
    std::fs::write(&local, yaml).unwrap();
    let env = Env {
        envs: envs.path(),
        vars: vec![
            ("AWS_ENDPOINT_URL", moto.endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("DEPLOYER_REGISTRY_URL", registry.url()),
        ],
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = deployer::config::load(envs.path(), "local").unwrap();
    let stack = config.stack_name();
    let sdk = rt.block_on(moto.sdk_config(&config.config.region));

    env.ok(&["bootstrap", "--env", "local"]);

    // A new stack grants everything it has: off a terminal, --yes alone does not deploy
    // it; the review shows who may do what, and nothing is created.
    let unapproved = env.run(&["up", "--env", "local", "--yes"]);
    assert_eq!(unapproved.status.code(), Some(1), "{}", text(&unapproved));
    let log = stderr(&unapproved);
    assert!(log.contains("IAM (who may do what):"), "{log}");
    assert!(
        log.contains("+  ScalerRole") && log.contains("lambda.amazonaws.com"),
        "{log}"
    );
    assert!(log.contains("Security groups:"), "{log}");
    assert!(
        log.contains("this change needs approval: broadens IAM")
            && log.contains("--approve-risky")
            && log.contains("nothing was changed"),
        "{log}"
    );
    let described = rt.block_on(
        aws_sdk_cloudformation::Client::new(&sdk)
            .describe_stacks()
            .stack_name(&stack)
            .send(),
    );
    assert!(described.is_err(), "a stack was left: {described:?}");

    // Create: the change set is shown, executed and followed; the list is published.
    let up = env.ok(&["up", "--env", "local", "--yes", "--approve-risky"]);
    let log = stderr(&up);
    assert!(
        log.contains("+ FileSystem") && log.contains("AWS::EFS::FileSystem"),
        "{log}"
    );
    assert!(log.contains("CREATE_COMPLETE"), "{log}");
    assert!(log.contains("2 mount target(s), published"), "{log}");
    let described = rt
        .block_on(
            aws_sdk_cloudformation::Client::new(&sdk)
                .describe_stacks()
                .stack_name(&stack)
                .send(),
        )
        .unwrap();
    assert_eq!(described.stacks()[0].role_arn(), Some(role));
    // The deployed image carries the environment's tag, which the repository's
    // lifecycle never expires: it is the digest the stack pins.
    let artifacts: Value = serde_json::from_slice(
        &std::fs::read(harness::repo_root().join(".deployer/local/artifacts.json")).unwrap(),
    )
    .unwrap();
    let digest = artifacts["router"]["digest"].as_str().unwrap().to_string();
    assert!(log.contains("tagged deployed-local"), "{log}");
    let skopeo = harness::find_tool("skopeo").unwrap_or_else(|e| panic!("{e}"));
    let inspected = std::process::Command::new(&skopeo)
        .args([
            "inspect",
            "--tls-verify=false",
            &format!(
                "docker://{}/efs-autoscaler/router:deployed-local",
                registry.host()
            ),
        ])
        .output()
        .unwrap();
    assert!(inspected.status.success(), "{}", text(&inspected));
    let inspected: Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(
        inspected["Digest"],
        digest.as_str(),
        "deployed-local names another image"
    );

    // Nothing changed: diff says so and exits 0 with --exit-code; up changes nothing.
    let diff = env.ok(&["diff", "--env", "local", "--exit-code"]);
    assert!(stdout(&diff).contains("no changes"), "{}", text(&diff));
    let again = env.ok(&["up", "--env", "local", "--yes", "--output", "json"]);
    assert!(
        stderr(&again).contains(&format!("{stack}: no changes")),
        "{}",
        text(&again)
    );
    let result: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(result["result"], "no changes", "{result}");
    assert_eq!(result["mount_target_list"]["mount_targets"], 2, "{result}");
    assert_eq!(result["mount_target_list"]["published"], false, "{result}");
    assert_eq!(result["release"]["recorded"], false, "{result}");
    assert_eq!(result["release"]["kept"], 1, "{result}");

    // A threshold change: the function's variable, exit 2, then applied.
    let local = envs.path().join("local.yaml");
    let yaml = std::fs::read_to_string(&local).unwrap();
    assert!(yaml.contains("file_count_threshold: 100\n"), "{yaml}");
    std::fs::write(
        &local,
        yaml.replace("file_count_threshold: 100\n", "file_count_threshold: 50\n"),
    )
    .unwrap();
    let diff = env.run(&["diff", "--env", "local", "--exit-code"]);
    assert_eq!(diff.status.code(), Some(2), "{}", text(&diff));
    let shown = stdout(&diff);
    assert!(shown.contains("> ScalerFunction"), "{shown}");
    assert!(
        shown.contains("Properties.Environment.Variables.FILE_COUNT_THRESHOLD: \"100\" -> \"50\""),
        "{shown}"
    );
    assert!(
        shown.contains("scaler.file_count_threshold: 100 -> 50"),
        "{shown}"
    );
    let markdown = env.run(&["diff", "--env", "local", "--format", "markdown"]);
    assert!(
        stdout(&markdown).contains("| `>` | `ScalerFunction` |"),
        "{}",
        text(&markdown)
    );
    // A new configuration is a new release: version 2 published, the alias moved.
    assert!(
        shown
            .lines()
            .any(|l| l.contains("> ScalerVersion") && l.contains("REPLACED")),
        "{shown}"
    );
    let live = |rt: &tokio::runtime::Runtime| {
        rt.block_on(
            aws_sdk_lambda::Client::new(&sdk)
                .get_alias()
                .function_name(format!("{stack}-scaler"))
                .name("live")
                .send(),
        )
        .unwrap()
        .function_version()
        .unwrap()
        .to_string()
    };
    assert_eq!(live(&rt), "1");
    let released = env.ok(&["up", "--env", "local", "--yes"]);
    assert!(
        stderr(&released).contains("release 2 recorded: scaler version 2"),
        "{}",
        text(&released)
    );
    assert_eq!(live(&rt), "2");
    rollback_and_prune(&env, &rt, &sdk, &stack, &live);
    let diff = env.ok(&["diff", "--env", "local", "--exit-code"]);
    assert!(stdout(&diff).contains("no changes"), "{}", text(&diff));

    // The stack's policy guards the file system and the stack's mount targets.
    let policy = rt.block_on(async {
        aws_sdk_cloudformation::Client::new(&sdk)
            .get_stack_policy()
            .stack_name(&stack)
            .send()
            .await
            .unwrap()
            .stack_policy_body()
            .unwrap_or_default()
            .to_string()
    });
    for guarded in [
        "LogicalResourceId/FileSystem",
        "LogicalResourceId/MountTargetA",
    ] {
        assert!(policy.contains(guarded), "{guarded} not guarded: {policy}");
    }
    // A change that replaces the file system: shown as data at risk, and refused
    // before anything runs unless the command names it.
    let with_threshold = std::fs::read_to_string(&local).unwrap();
    std::fs::write(
        &local,
        with_threshold.replacen(
            "\nefs:\n",
            "\nefs:\n  performance_mode: maxIO\n  throughput_mode: bursting\n",
            1,
        ),
    )
    .unwrap();
    let diff = env.run(&["diff", "--env", "local"]);
    assert!(
        stdout(&diff).contains("!! DATA: FileSystem would be replaced"),
        "{}",
        text(&diff)
    );
    let refused = env.run(&["up", "--env", "local", "--yes"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        stderr(&refused).contains("would replace or remove FileSystem")
            && stderr(&refused).contains("--allow-replacement FileSystem")
            && stderr(&refused).contains("nothing was changed"),
        "{}",
        text(&refused)
    );
    std::fs::write(&local, with_threshold).unwrap();
    let diff = env.ok(&["diff", "--env", "local", "--exit-code"]);
    assert!(
        stdout(&diff).contains("no changes"),
        "refused up changed something: {}",
        text(&diff)
    );

    // The deployed function has the new threshold; the scaler, run once with its
    // environment and a tiny threshold, adds the third mount target.
    let (function, file_system) = rt.block_on(async {
        (
            physical_ids(&sdk, &stack, "AWS::Lambda::Function").await[0].clone(),
            physical_ids(&sdk, &stack, "AWS::EFS::FileSystem").await[0].clone(),
        )
    });
    let vars = rt.block_on(async {
        aws_sdk_lambda::Client::new(&sdk)
            .get_function_configuration()
            .function_name(&function)
            .send()
            .await
            .unwrap()
            .environment()
            .and_then(|e| e.variables())
            .cloned()
            .unwrap()
    });
    assert_eq!(vars["FILE_COUNT_THRESHOLD"], "60");
    let files = tempfile::tempdir().unwrap();
    for i in 0..10 {
        std::fs::write(files.path().join(format!("f{i}")), b"").unwrap();
    }
    let scaler = harness::cargo_bin("efs-autoscaler-runtime", "efs-scaler")
        .unwrap_or_else(|e| panic!("{e}"));
    let scaled = std::process::Command::new(scaler)
        .env_clear()
        .envs(&vars)
        .env("TARGET_DIRECTORY", files.path())
        .env("FILE_COUNT_THRESHOLD", "1")
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_REGION", &config.config.region)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .arg("run-once")
        .output()
        .unwrap();
    assert_eq!(scaled.status.code(), Some(0), "{}", text(&scaled));
    let result: Value = serde_json::from_slice(&scaled.stdout).unwrap();
    assert_eq!(result["new_mount_target_created"], true, "{result}");
    assert_eq!(result["parameter_updated"], true, "{result}");
    assert_eq!(result["deployment_triggered"], true, "{result}");

    // Status: three targets, one the scaler's, the list matching, the service redeployed.
    let status = env.ok(&["status", "--env", "local", "--output", "json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let targets = status["mount_targets"].as_array().unwrap();
    assert_eq!(targets.len(), 3, "{status}");
    assert_eq!(
        targets.iter().filter(|t| t["added_by"] == "scaler").count(),
        1,
        "{status}"
    );
    assert_eq!(
        status["published_list"]["matches_mount_targets"], true,
        "{status}"
    );
    assert_eq!(
        status["published_list"]["zones"].as_array().unwrap().len(),
        3
    );
    assert!(
        !status["service"]["deployments"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{status}"
    );
    assert_eq!(status["schedule"]["state"], "ENABLED", "{status}");
    assert_eq!(status["scaler"]["alias"]["version"], "3", "{status}");
    let status_text = env.ok(&["status", "--env", "local"]);
    assert!(
        stdout(&status_text).contains("3 mount target(s)"),
        "{}",
        text(&status_text)
    );
    assert!(
        stdout(&status_text).contains("  alias live: version 3\n"),
        "{}",
        text(&status_text)
    );

    // Invoke finds the function in the stack and runs it (moto answers without running
    // code; what the function prints is tested with a scripted answer in `replayed`).
    let invoked = env.ok(&["invoke", "--env", "local"]);
    assert!(
        stderr(&invoked).contains(&format!("invoking {function}")),
        "{}",
        text(&invoked)
    );

    rotate_credentials(&env, &rt, &sdk, &config);
    logs_of_both_programs(&env, &rt, &sdk, &config);
    let rule = rt.block_on(physical_ids(&sdk, &stack, "AWS::Events::Rule"))[0].clone();
    interrupted_down_is_undone_by_up(&env, &rt, &sdk, &function, &rule);
    a_held_lock_stops_a_second_deployer(&env, &rt, &sdk, &config);

    // Down: no stack, no scaler-made target, no parameter; the bootstrap stack stays.
    let refused = env.run(&["down", "--env", "local"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(stderr(&refused).contains("--yes"), "{}", text(&refused));
    let down = env.ok(&["down", "--env", "local", "--yes", "--output", "json"]);
    let log = stderr(&down);
    assert!(log.contains("added by the scaler"), "{}", text(&down));
    // The same, for a pipeline: what went and what stays.
    let gone: serde_json::Value =
        serde_json::from_slice(&down.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&down)));
    assert_eq!(gone["stack"], stack.as_str(), "{gone}");
    assert_eq!(gone["stack_deleted"], true, "{gone}");
    assert_eq!(
        gone["scaler_mount_targets_deleted"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "{gone}"
    );
    assert_eq!(gone["parameter_deleted"], true, "{gone}");
    assert_eq!(gone["file_system_kept"], serde_json::Value::Null, "{gone}");
    assert_eq!(
        gone["bootstrap_stack_kept"],
        config.bootstrap_stack_name().as_str()
    );
    // The scaler is stopped before its targets go, so it cannot add one mid-teardown.
    let stopped = log
        .find("stopped (reserved concurrency 0)")
        .expect("scaler stopped");
    assert!(log.contains("-scaler-schedule: disabled"), "{log}");
    assert!(stopped < log.find("added by the scaler").unwrap(), "{log}");
    rt.block_on(async {
        let cfn = aws_sdk_cloudformation::Client::new(&sdk);
        let stacks = cfn.describe_stacks().stack_name(&stack).send().await;
        assert!(stacks.is_err(), "stack {stack} still exists: {stacks:?}");
        let bootstrap = cfn
            .describe_stacks()
            .stack_name(config.bootstrap_stack_name())
            .send()
            .await;
        assert!(bootstrap.is_ok(), "the bootstrap stack must stay");
        let efs = aws_sdk_efs::Client::new(&sdk);
        let left = efs
            .describe_mount_targets()
            .file_system_id(&file_system)
            .send()
            .await
            .map(|o| o.mount_targets().len())
            .unwrap_or(0);
        assert_eq!(left, 0, "mount targets left on {file_system}");
        let parameter = aws_sdk_ssm::Client::new(&sdk)
            .get_parameter()
            .name(config.ssm_parameter_name())
            .send()
            .await;
        assert!(parameter.is_err(), "the parameter is left: {parameter:?}");
    });
}

/// `rotate-credentials` on the deployed stack: a new current pair with the old one kept
/// as previous, the service restarted, a second start refused while one is under way,
/// and `--finish` retiring the old pair. moto's CloudFormation skips Secrets Manager
/// resources, so the secret is created here as the template makes it (name and JSON).
fn rotate_credentials(
    env: &Env<'_>,
    rt: &tokio::runtime::Runtime,
    sdk: &aws_config::SdkConfig,
    config: &deployer::config::Environment,
) {
    let secrets = aws_sdk_secretsmanager::Client::new(sdk);
    let id = config.router_credentials_secret();
    let stack = config.stack_name();
    let read = || -> Value {
        let out = rt
            .block_on(secrets.get_secret_value().secret_id(&id).send())
            .unwrap();
        serde_json::from_str(out.secret_string().unwrap()).unwrap()
    };
    let missing = env.run(&["rotate-credentials", "--env", "local"]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    assert!(
        stderr(&missing).contains(&format!("the secret {id} does not exist")),
        "{}",
        text(&missing)
    );
    let first = "0123456789abcdefghij0123456789ABCDEFGHIJ";
    rt.block_on(
        secrets
            .create_secret()
            .name(&id)
            .secret_string(
                serde_json::json!({
                    "access_key_id": stack,
                    "secret_access_key": first,
                    "previous_access_key_id": "",
                    "previous_secret_access_key": "",
                })
                .to_string(),
            )
            .send(),
    )
    .unwrap();
    let ecs = aws_sdk_ecs::Client::new(sdk);
    let deployments = || {
        let out = rt
            .block_on(
                ecs.describe_services()
                    .cluster(config.cluster_name())
                    .services(config.router_service_name())
                    .send(),
            )
            .unwrap();
        out.services()[0]
            .deployments()
            .iter()
            .filter_map(|d| d.id().map(str::to_string))
            .collect::<Vec<_>>()
    };
    let before = deployments();

    let rotated = env.ok(&["rotate-credentials", "--env", "local"]);
    let pairs = read();
    let new_id = pairs["access_key_id"].as_str().unwrap().to_string();
    let new_secret = pairs["secret_access_key"].as_str().unwrap().to_string();
    assert!(
        new_id.starts_with(&format!("{stack}-")) && new_id != stack,
        "{pairs}"
    );
    assert_eq!(new_secret.len(), 40);
    assert!(new_secret.chars().all(|c| c.is_ascii_alphanumeric()) && new_secret != first);
    assert_eq!(pairs["previous_access_key_id"], stack.as_str(), "{pairs}");
    assert_eq!(pairs["previous_secret_access_key"], first);
    let shown = text(&rotated);
    assert!(
        shown.contains(&new_id) && shown.contains("--finish"),
        "{shown}"
    );
    assert!(
        !shown.contains(&new_secret) && !shown.contains(first),
        "a secret was printed"
    );
    assert_ne!(deployments(), before, "the service was not redeployed");

    // Under way: a second start changes nothing.
    let again = env.run(&["rotate-credentials", "--env", "local"]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(stderr(&again).contains("a rotation of"), "{}", text(&again));
    assert_eq!(read()["access_key_id"], new_id.as_str());

    let finished = env.ok(&[
        "rotate-credentials",
        "--env",
        "local",
        "--finish",
        "--output",
        "json",
    ]);
    let pairs = read();
    assert_eq!(pairs["access_key_id"], new_id.as_str());
    assert_eq!(pairs["secret_access_key"], new_secret.as_str());
    assert_eq!(pairs["previous_access_key_id"], "");
    assert_eq!(pairs["previous_secret_access_key"], "");
    // As JSON: key ids and the deployment, never a secret.
    let report: Value = serde_json::from_slice(&finished.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&finished)));
    assert_eq!(report["access_key_id"], new_id.as_str(), "{report}");
    assert_eq!(report["previous_access_key_id"], Value::Null, "{report}");
    assert_eq!(report["secret"], id.as_str(), "{report}");
    assert!(report["deployment"].is_string(), "{report}");
    assert!(
        report["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("{stack} is no longer accepted"))),
        "{report}"
    );
    assert!(
        !text(&finished).contains(&new_secret),
        "a secret was printed"
    );
}

/// A `down` stopped after its first step leaves the scaler's schedule disabled and its
/// reserved concurrency at 0, outside CloudFormation: `status` says so, and the next
/// `up` (with nothing to change in the stack) puts both back.
fn interrupted_down_is_undone_by_up(
    env: &Env<'_>,
    rt: &tokio::runtime::Runtime,
    sdk: &aws_config::SdkConfig,
    function: &str,
    rule: &str,
) {
    let lambda = aws_sdk_lambda::Client::new(sdk);
    let events = aws_sdk_eventbridge::Client::new(sdk);
    // What `down` does first.
    rt.block_on(
        lambda
            .put_function_concurrency()
            .function_name(function)
            .reserved_concurrent_executions(0)
            .send(),
    )
    .unwrap();
    rt.block_on(events.disable_rule().name(rule).send())
        .unwrap();

    let status = env.ok(&["status", "--env", "local"]);
    assert!(stdout(&status).contains("STOPPED"), "{}", text(&status));
    let up = env.ok(&["up", "--env", "local", "--yes"]);
    let log = stderr(&up);
    assert!(log.contains("enabled again"), "{log}");
    assert!(log.contains("reserved concurrency was 0, now 1"), "{log}");
    let state = rt
        .block_on(events.describe_rule().name(rule).send())
        .unwrap();
    assert_eq!(state.state().map(|s| s.as_str()), Some("ENABLED"));
    let reserved = rt
        .block_on(
            lambda
                .get_function_concurrency()
                .function_name(function)
                .send(),
        )
        .unwrap();
    assert_eq!(reserved.reserved_concurrent_executions(), Some(1));
    let status = env.ok(&["status", "--env", "local"]);
    assert!(!stdout(&status).contains("STOPPED"), "{}", text(&status));
}

/// Another deployer holds the stack's lock: `up` is refused, saying who holds it and the
/// lock's id, and changes nothing; `unlock` removes only the lock with that id. A lock
/// whose lease ran out is taken over; every command gives its lock back when done.
fn a_held_lock_stops_a_second_deployer(
    env: &Env<'_>,
    rt: &tokio::runtime::Runtime,
    sdk: &aws_config::SdkConfig,
    config: &deployer::config::Environment,
) {
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let boot = rt
        .block_on(
            cfn.describe_stacks()
                .stack_name(config.bootstrap_stack_name())
                .send(),
        )
        .unwrap();
    let bucket = boot.stacks()[0]
        .outputs()
        .iter()
        .find(|o| o.output_key() == Some("ArtifactBucketName"))
        .and_then(|o| o.output_value())
        .unwrap()
        .to_string();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    );
    let key = format!("locks/{}.json", config.stack_name());
    let exists = |s3: &aws_sdk_s3::Client| {
        rt.block_on(s3.head_object().bucket(&bucket).key(&key).send())
            .is_ok()
    };
    assert!(!exists(&s3), "a finished command left its lock behind");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let put_lock = |expires: u64| {
        let body = serde_json::json!({
            "id": "0123456789abcdef",
            "command": "up",
            "who": "alice@laptop",
            "pid": 4242,
            "acquired": now - 60,
            "expires": expires,
        });
        rt.block_on(
            s3.put_object()
                .bucket(&bucket)
                .key(&key)
                .body(serde_json::to_vec(&body).unwrap().into())
                .send(),
        )
        .unwrap();
    };

    put_lock(now + 600);
    let refused = env.run(&["up", "--env", "local", "--yes"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let said = text(&refused);
    assert!(said.contains("locked by another deployer"), "{said}");
    assert!(
        said.contains("alice@laptop") && said.contains("0123456789abcdef"),
        "{said}"
    );
    assert!(
        !said.contains("CREATE_COMPLETE") && !said.contains("UPDATE_COMPLETE"),
        "{said}"
    );
    let wrong = env.run(&["unlock", "--env", "local", "--id", "ffffffffffffffff"]);
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    assert!(exists(&s3), "unlock with another id removed the lock");
    let unlocked = env.ok(&[
        "unlock",
        "--env",
        "local",
        "--id",
        "0123456789abcdef",
        "--output",
        "json",
    ]);
    assert!(!exists(&s3));
    let removed: serde_json::Value = serde_json::from_slice(&unlocked.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&unlocked)));
    assert_eq!(removed["stack"], "efs-autoscaler-local", "{removed}");
    assert_eq!(removed["removed"]["id"], "0123456789abcdef", "{removed}");
    assert_eq!(removed["removed"]["who"], "alice@laptop", "{removed}");

    // A lock whose lease ran out (its deployer died) is taken over, then given back.
    put_lock(now - 1);
    let up = env.ok(&["up", "--env", "local", "--yes"]);
    assert!(text(&up).contains("no changes"), "{}", text(&up));
    assert!(!exists(&s3), "up did not give the lock back");
}

/// `logs`: both log groups as one stream in time order, readable and as JSON lines, one
/// program only, a filter pattern, and a bad `--since`. The events are written here as
/// Lambda and the awslogs driver write them (moto runs neither program).
fn logs_of_both_programs(
    env: &Env<'_>,
    rt: &tokio::runtime::Runtime,
    sdk: &aws_config::SdkConfig,
    config: &deployer::config::Environment,
) {
    let logs = aws_sdk_cloudwatchlogs::Client::new(sdk);
    let stack = config.stack_name();
    let scaler_group = format!("/aws/lambda/{stack}-scaler");
    let router_group = format!("/ecs/{stack}-router");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let put = |group: &str, stream: &str, events: &[(i64, &str)]| {
        rt.block_on(async {
            logs.create_log_stream()
                .log_group_name(group)
                .log_stream_name(stream)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{group}: {e:?}"));
            let mut request = logs
                .put_log_events()
                .log_group_name(group)
                .log_stream_name(stream);
            for (at, message) in events {
                request = request.log_events(
                    aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                        .timestamp(now - at)
                        .message(*message)
                        .build()
                        .unwrap(),
                );
            }
            request.send().await.unwrap();
        });
    };
    put(
        &scaler_group,
        "2026/12/07/[$LATEST]run",
        &[
            (
                5_000,
                r#"{"timestamp":"t","level":"INFO","message":"run started","target":"runtime::scaler","run_id":"r-1"}"#,
            ),
            (
                3_000,
                r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"EfsAutoscaler","Dimensions":[["FileSystemId"]],"Metrics":[{"Name":"FileCount","Unit":"Count"}]}]},"FileSystemId":"fs-1","FileCount":1200}"#,
            ),
            (
                1_000,
                r#"{"level":"ERROR","message":"EFS CreateMountTarget failed","run_id":"r-1"}"#,
            ),
        ],
    );
    put(
        &router_group,
        "router/router/task-1",
        &[(
            4_000,
            r#"{"level":"WARN","message":"target 10.0.1.5 failed","target":"runtime::router"}"#,
        )],
    );
    // Long ago: outside the default window of ten minutes.
    put(
        &router_group,
        "router/router/task-0",
        &[(3_600_000, "old line")],
    );

    let shown = stdout(&env.ok(&["logs", "--env", "local"]));
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 4, "{shown}");
    assert!(
        lines[0].ends_with("scaler INFO  run started run_id=r-1"),
        "{shown}"
    );
    assert!(
        lines[1].ends_with("router WARN  target 10.0.1.5 failed"),
        "{shown}"
    );
    assert!(
        lines[2].ends_with("scaler metrics FileCount=1200 Count FileSystemId=fs-1"),
        "{shown}"
    );
    assert!(
        lines[3].ends_with("scaler ERROR EFS CreateMountTarget failed run_id=r-1"),
        "{shown}"
    );

    let older = stdout(&env.ok(&["logs", "--env", "local", "router", "--since", "2h"]));
    assert_eq!(older.lines().count(), 2, "{older}");
    assert!(
        older.lines().next().unwrap().ends_with("router old line"),
        "{older}"
    );

    let json = stdout(&env.ok(&["logs", "--env", "local", "scaler", "--output", "json"]));
    let events: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 3, "{json}");
    assert_eq!(events[0]["source"], "scaler");
    assert_eq!(events[0]["log_group"], scaler_group.as_str());
    assert!(
        events[2]["message"]
            .as_str()
            .unwrap()
            .starts_with(r#"{"level":"ERROR""#),
        "{json}"
    );

    let errors = stdout(&env.ok(&["logs", "--env", "local", "--filter", "ERROR"]));
    assert_eq!(errors.lines().count(), 1, "{errors}");
    assert!(errors.contains("CreateMountTarget failed"), "{errors}");

    // Following: what is there, then a new event as it arrives, once each.
    let mut follow = std::process::Command::new(crate::cli::deployer())
        .current_dir(harness::repo_root())
        .args(["--environments-dir", env.envs.to_str().unwrap()])
        .args(["logs", "--env", "local", "router", "--follow"])
        .envs(env.vars.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    let reader = std::io::BufReader::new(follow.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(reader).map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || {
        lines_rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap()
    };
    assert!(next().ends_with("router WARN  target 10.0.1.5 failed"));
    put(&router_group, "router/router/task-2", &[(0, "a new line")]);
    assert!(next().ends_with("router a new line"));
    // Polls after it repeat nothing.
    assert!(
        lines_rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .is_err(),
        "a line printed twice"
    );
    follow.kill().unwrap();
    follow.wait().unwrap();

    let bad = env.run(&["logs", "--env", "local", "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(
        stderr(&bad).contains("--since \"yesterday\" is neither a duration nor a time"),
        "{}",
        text(&bad)
    );
}

/// `rollback`: the alias back to the previous release's version, then nothing further
/// to go back to; a new release (threshold 60, left so) pruning the version the two kept
/// releases no longer name. One publish after a deletion only: moto numbers a new
/// version by counting the existing ones, so after a deletion it repeats a number (Lambda
/// never does).
fn rollback_and_prune(
    env: &Env<'_>,
    rt: &tokio::runtime::Runtime,
    sdk: &aws_config::SdkConfig,
    stack: &str,
    live: &dyn Fn(&tokio::runtime::Runtime) -> String,
) {
    let back = env.ok(&["rollback", "--env", "local", "--yes"]);
    assert!(
        stderr(&back).contains("scaler: alias live from version 2 to 1"),
        "{}",
        text(&back)
    );
    assert_eq!(live(rt), "1");
    let none = env.run(&["rollback", "--env", "local", "--yes"]);
    assert_eq!(none.status.code(), Some(1), "{}", text(&none));
    assert!(
        stderr(&none).contains("nothing to roll back to: 1 release(s) recorded"),
        "{}",
        text(&none)
    );
    let versions = || -> Vec<String> {
        let out = rt
            .block_on(
                aws_sdk_lambda::Client::new(sdk)
                    .list_versions_by_function()
                    .function_name(format!("{stack}-scaler"))
                    .send(),
            )
            .unwrap();
        out.versions()
            .iter()
            .filter_map(|v| v.version())
            .filter(|v| *v != "$LATEST")
            .map(str::to_string)
            .collect()
    };
    let local = env.envs.join("local.yaml");
    let yaml = std::fs::read_to_string(&local).unwrap();
    std::fs::write(
        &local,
        yaml.replace("file_count_threshold: 50\n", "file_count_threshold: 60\n"),
    )
    .unwrap();
    let up = env.ok(&["up", "--env", "local", "--yes"]);
    let log = stderr(&up);
    assert!(
        log.contains("release 2 recorded: scaler version 3"),
        "{log}"
    );
    assert!(log.contains("deleted version(s) 2 "), "{log}");
    assert_eq!(live(rt), "3");
    assert_eq!(versions(), ["1", "3"]);
}
