//! What moto cannot show, with CloudFormation's answers written by hand (harness
//! `AwsReplay`): failed resources and their reasons, rollbacks, a busy stack, throttling.
//! The deployer binary runs unchanged against them; each test checks the report, the
//! exit code and which calls were made (no write call where none may happen).

use harness::aws_replay::cloudformation::{self as cfn, Event, Stack};
use harness::{AwsReplay, repo_root};

use crate::cli::{as_refs, run, text};

fn bootstrap_stack() -> String {
    deployer::config::load(&repo_root().join("environments"), "local")
        .unwrap()
        .bootstrap_stack_name()
}

fn bootstrap_template() -> String {
    let env = deployer::config::load(&repo_root().join("environments"), "local").unwrap();
    deployer::render::Renderer::new()
        .unwrap()
        .render(&env)
        .unwrap()
        .bootstrap
}

/// The stack policy `up` keeps on the local stack (guarding its file system and mount
/// targets), as a stack that already has it answers GetStackPolicy.
fn guarded_stack_policy() -> harness::Reply {
    let env = deployer::config::load(&repo_root().join("environments"), "local").unwrap();
    let main = deployer::render::Renderer::new()
        .unwrap()
        .render(&env)
        .unwrap()
        .main;
    cfn::get_stack_policy(&deployer::render::stack_policy(&main, &[]))
}

fn bootstrap(replay: &AwsReplay) -> std::process::Output {
    let env = replay.env();
    run(&["bootstrap", "--env", "local"], &as_refs(&env))
}

const WRITES: [&str; 4] = [
    "CreateStack",
    "UpdateStack",
    "DeleteStack",
    "ExecuteChangeSet",
];

fn writes(replay: &AwsReplay) -> Vec<String> {
    replay
        .actions()
        .into_iter()
        .filter(|a| WRITES.contains(&a.as_str()))
        .collect()
}

/// A create that fails: the report names each failed resource with CloudFormation's
/// reason (only from this operation, not older events), the final state and what to do.
#[test]
fn a_failed_create_reports_resources_reasons_and_the_fix() {
    let name = bootstrap_stack();
    let repository_reason = "Resource handler returned message: \"Repository with name 'efs-autoscaler-local' already exists in the registry with id '123456789012'\" (RequestToken: 0c1d, HandlerErrorCode: AlreadyExists)";
    let replay = AwsReplay::start([
        cfn::no_stack(&name),
        cfn::describe_stacks(&Stack::new(&name, "CREATE_IN_PROGRESS")),
        cfn::describe_stacks(&Stack::new(&name, "ROLLBACK_COMPLETE").reason(
            "The following resource(s) failed to create: [Repository]. Rollback requested by user.",
        )),
        cfn::create_stack(&name),
        cfn::stack_events(
            &name,
            &[
                Event::new(&name, "AWS::CloudFormation::Stack", "ROLLBACK_COMPLETE", 40),
                Event::new("ArtifactBucket", "AWS::S3::Bucket", "DELETE_COMPLETE", 38),
                Event::new("ArtifactBucket", "AWS::S3::Bucket", "CREATE_FAILED", 30)
                    .reason("Resource creation cancelled"),
                Event::new("Repository", "AWS::ECR::Repository", "CREATE_FAILED", 29)
                    .reason(repository_reason),
                Event::new("ArtifactBucket", "AWS::S3::Bucket", "CREATE_IN_PROGRESS", 2),
                Event::new(&name, "AWS::CloudFormation::Stack", "CREATE_IN_PROGRESS", 1)
                    .reason("User Initiated"),
                // An older operation's failure: not this run's business.
                Event::new("OldThing", "AWS::S3::Bucket", "CREATE_FAILED", 0)
                    .reason("an older failure"),
            ],
        ),
    ])
    .unwrap();
    let out = bootstrap(&replay);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ROLLBACK_COMPLETE"), "{report}");
    assert!(
        stderr.contains("Repository (AWS::ECR::Repository): CREATE_FAILED")
            && stderr.contains("already exists in the registry"),
        "{report}"
    );
    assert!(
        stderr.contains("ArtifactBucket (AWS::S3::Bucket): CREATE_FAILED")
            && stderr.contains("Resource creation cancelled"),
        "{report}"
    );
    // The root cause comes first, in the order it happened.
    let repository = stderr.find("Repository (AWS::ECR::Repository)").unwrap();
    let bucket = stderr.find("ArtifactBucket (AWS::S3::Bucket)").unwrap();
    assert!(repository < bucket, "{report}");
    assert!(!stderr.contains("OldThing"), "{report}");
    assert!(
        stderr.contains(&format!(
            "aws cloudformation delete-stack --stack-name {name}"
        )) && stderr.contains("deployer bootstrap --env local"),
        "{report}"
    );
    assert_eq!(writes(&replay), ["CreateStack"]);
}

/// An update that fails and rolls back: the stack still works at its previous version,
/// and the report says so.
#[test]
fn a_failed_update_reports_the_rollback() {
    let name = bootstrap_stack();
    let replay = AwsReplay::start([
        cfn::describe_stacks(&Stack::new(&name, "CREATE_COMPLETE")),
        cfn::describe_stacks(&Stack::new(&name, "UPDATE_IN_PROGRESS")),
        cfn::describe_stacks(&Stack::new(&name, "UPDATE_ROLLBACK_COMPLETE")),
        cfn::get_template("Resources: {}\n"),
        cfn::update_stack(&name),
        cfn::stack_events(
            &name,
            &[
                Event::new(
                    &name,
                    "AWS::CloudFormation::Stack",
                    "UPDATE_ROLLBACK_COMPLETE",
                    50,
                ),
                Event::new(&name, "AWS::CloudFormation::Stack", "UPDATE_ROLLBACK_IN_PROGRESS", 31)
                    .reason("The following resource(s) failed to update: [ArtifactBucket]."),
                Event::new("ArtifactBucket", "AWS::S3::Bucket", "UPDATE_FAILED", 30).reason(
                    "Resource handler returned message: \"Access Denied (Service: S3, Status Code: 403, Request ID: 5W2P)\" (HandlerErrorCode: AccessDenied)",
                ),
                Event::new(&name, "AWS::CloudFormation::Stack", "UPDATE_IN_PROGRESS", 1)
                    .reason("User Initiated"),
            ],
        ),
    ])
    .unwrap();
    let out = bootstrap(&replay);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("UPDATE_ROLLBACK_COMPLETE"), "{report}");
    assert!(
        stderr.contains("ArtifactBucket (AWS::S3::Bucket): UPDATE_FAILED")
            && stderr.contains("Access Denied"),
        "{report}"
    );
    assert!(stderr.contains("previous version"), "{report}");
    assert_eq!(writes(&replay), ["UpdateStack"]);
}

/// A stack left in ROLLBACK_COMPLETE cannot be updated: say how to get out, change nothing.
#[test]
fn a_stack_in_rollback_complete_is_refused_with_the_way_out() {
    let name = bootstrap_stack();
    let replay = AwsReplay::start([cfn::describe_stacks(&Stack::new(
        &name,
        "ROLLBACK_COMPLETE",
    ))])
    .unwrap();
    let out = bootstrap(&replay);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains(&format!(
            "aws cloudformation delete-stack --stack-name {name}"
        )),
        "{report}"
    );
    assert_eq!(replay.actions(), ["DescribeStacks"]);
}

/// A stack that is still changing: wait for it, change nothing now.
#[test]
fn a_busy_stack_is_refused() {
    let name = bootstrap_stack();
    let replay = AwsReplay::start([cfn::describe_stacks(&Stack::new(
        &name,
        "UPDATE_IN_PROGRESS",
    ))])
    .unwrap();
    let out = bootstrap(&replay);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("busy (UPDATE_IN_PROGRESS)") && report.contains("wait for it"),
        "{report}"
    );
    assert_eq!(replay.actions(), ["DescribeStacks"]);
}

/// Throttling is retried by the SDK; the command succeeds and makes no write call
/// when the deployed template is current.
#[test]
fn throttling_is_retried() {
    let name = bootstrap_stack();
    let replay = AwsReplay::start([
        cfn::throttled("DescribeStacks"),
        cfn::describe_stacks(&Stack::new(&name, "UPDATE_COMPLETE")),
        cfn::get_template(&bootstrap_template()),
    ])
    .unwrap();
    let out = bootstrap(&replay);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(report.contains("up to date"), "{report}");
    assert_eq!(
        replay.actions(),
        ["DescribeStacks", "DescribeStacks", "GetTemplate"]
    );
}

/// Throttling that outlasts the retries is an error naming the call and the cause.
#[test]
fn lasting_throttling_is_a_clear_error() {
    let replay = AwsReplay::start([cfn::throttled("DescribeStacks")]).unwrap();
    let out = bootstrap(&replay);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("DescribeStacks") && report.contains("Rate exceeded"),
        "{report}"
    );
    assert_eq!(replay.actions().len(), 3, "AWS_MAX_ATTEMPTS=3: {report}");
    assert!(writes(&replay).is_empty());
}

// ---- deployer up ----------------------------------------------------------------------

fn main_stack() -> String {
    deployer::config::load(&repo_root().join("environments"), "local")
        .unwrap()
        .stack_name()
}

const CHANGE_SET: &str =
    "arn:aws:cloudformation:ap-northeast-1:123456789012:changeSet/deployer-1/abc";

/// The SHA-256 (base64) of the scaler zip this tree builds: what S3 reports for an
/// object `up` uploaded before. Built once, without AWS (`package --no-upload`).
fn built_zip_sha256() -> &'static str {
    static SHA: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SHA.get_or_init(|| {
        use base64::Engine as _;
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().to_str().unwrap();
        let built = run(
            &["package", "--env", "local", "--no-upload", "--out", dir],
            &[],
        );
        assert!(built.status.success(), "{}", text(&built));
        let artifacts: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.path().join("artifacts.json")).unwrap())
                .unwrap();
        let hex = artifacts["scaler"]["sha256"].as_str().unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    })
}

/// The calls every `up` makes before its change set: the bootstrap stack's outputs, the
/// stack's state, and the artifacts found already uploaded (S3 HEAD, ECR DescribeImages).
fn before_change_set(status: &str) -> Vec<harness::Reply> {
    let boot = bootstrap_stack();
    let mut bootstrap = Stack::new(&boot, "CREATE_COMPLETE");
    bootstrap.outputs = vec![
        (
            "ArtifactBucketName".into(),
            "efs-autoscaler-artifacts-123456789012-ap-northeast-1".into(),
        ),
        ("RepositoryName".into(), "efs-autoscaler/router".into()),
        (
            "RepositoryUri".into(),
            "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/efs-autoscaler/router".into(),
        ),
    ];
    let mut replies = vec![
        cfn::describe(&bootstrap),
        cfn::describe(&Stack::new(&main_stack(), status)),
        guarded_stack_policy(),
        // The zip is there, with the checksum S3 keeps for it.
        harness::Reply::rest("HEAD", 200).header("x-amz-checksum-sha256", built_zip_sha256()),
        harness::Reply::json(
            "DescribeImages",
            200,
            serde_json::json!({"imageDetails": [{
                "registryId": "123456789012",
                "repositoryName": "efs-autoscaler/router",
                "imageDigest": format!("sha256:{}", "0".repeat(64)),
                // Deployed before: `up` has no tag to add.
                "imageTags": ["deployed-local"],
            }]}),
        ),
    ];
    replies.extend(free_lock());
    replies
}

/// The stack's lock in the artifact bucket: nobody holds it (GetObject 404 NoSuchKey,
/// as S3 answers), the conditional PUT that takes it succeeds, and its release deletes
/// it. Listed before any other GET so the lock's read is the first one answered.
fn free_lock() -> Vec<harness::Reply> {
    let mut missing = harness::Reply::rest("GET", 404);
    missing.body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>locks/efs-autoscaler-local.json</Key><RequestId>4442587FB7D0A2F9</RequestId></Error>".into();
    vec![
        missing,
        harness::Reply::rest("PUT", 200).header("ETag", "\"6805f2cfc46c0f04559748bb039d69ae\""),
        harness::Reply::rest("DELETE", 204),
    ]
}

/// A change set created and computed with one change, and the deployed template.
fn computed_change_set(name: &str, change: cfn::Change) -> Vec<harness::Reply> {
    vec![
        cfn::create_change_set(name, CHANGE_SET),
        cfn::describe_change_set(name, CHANGE_SET, "CREATE_COMPLETE", None, &[change]),
        cfn::get_template(&bootstrap_template()),
    ]
}

/// A change set CloudFormation fails with `reason`, the deployed template, and the
/// change set's deletion.
fn failed_change_set(name: &str, reason: &str) -> Vec<harness::Reply> {
    vec![
        cfn::create_change_set(name, CHANGE_SET),
        cfn::describe_change_set(name, CHANGE_SET, "FAILED", Some(reason), &[]),
        cfn::get_template(&bootstrap_template()),
        cfn::empty("DeleteChangeSet"),
    ]
}

fn up(replay: &AwsReplay, extra: &[&str]) -> std::process::Output {
    let env = replay.env();
    let mut args = vec!["up", "--env", "local"];
    args.extend_from_slice(extra);
    run(&args, &as_refs(&env))
}

/// An update whose change set replaces the task definition, executed and followed: each
/// stack event is one line as it arrives; the resource fails and the stack rolls back;
/// the report names the resource, the reason and the rollback state; exit 1.
#[test]
fn up_shows_progress_and_reports_a_failed_update_with_its_rollback() {
    let name = main_stack();
    let mut replies = before_change_set("UPDATE_COMPLETE");
    let user = Event::new(
        &name,
        "AWS::CloudFormation::Stack",
        "UPDATE_IN_PROGRESS",
        100,
    )
    .reason("User Initiated");
    let old = Event::new(&name, "AWS::CloudFormation::Stack", "UPDATE_COMPLETE", 10);
    let task_failed = "Resource handler returned message: \"Invalid request provided: Create TaskDefinition: Fargate requires task definition to have execution role ARN to support ECR images.\" (HandlerErrorCode: InvalidRequest)";
    replies.extend(computed_change_set(
        &name,
        cfn::Change {
            logical_id: "TaskDefinition".into(),
            resource_type: "AWS::ECS::TaskDefinition".into(),
            action: "Modify".into(),
            replacement: Some("True".into()),
            properties: vec![("ContainerDefinitions".into(), true)],
        },
    ));
    replies.extend([
        cfn::stack_events(&name, std::slice::from_ref(&old)),
        cfn::stack_events(
            &name,
            &[
                Event::new(
                    &name,
                    "AWS::CloudFormation::Stack",
                    "UPDATE_ROLLBACK_COMPLETE",
                    140,
                ),
                Event::new(
                    "TaskDefinition",
                    "AWS::ECS::TaskDefinition",
                    "UPDATE_FAILED",
                    120,
                )
                .reason(task_failed),
                Event::new(
                    "TaskDefinition",
                    "AWS::ECS::TaskDefinition",
                    "UPDATE_IN_PROGRESS",
                    110,
                ),
                user.clone(),
                old.clone(),
            ],
        ),
        cfn::empty("ExecuteChangeSet"),
        cfn::describe(&Stack::new(&name, "UPDATE_IN_PROGRESS")),
        cfn::describe(
            &Stack::new(&name, "UPDATE_ROLLBACK_COMPLETE")
                .reason("The following resource(s) failed to update: [TaskDefinition]."),
        ),
    ]);
    let replay = AwsReplay::start(replies).unwrap();
    let out = up(&replay, &["--yes"]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The change set, with AWS's replacement flag.
    assert!(
        stderr.contains("> TaskDefinition") && stderr.contains("REPLACED"),
        "{report}"
    );
    // Progress: one line per event, in order, with the reason.
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("10:01:") || l.starts_with("10:02:"))
        .collect();
    assert_eq!(lines.len(), 4, "{report}");
    assert!(lines[0].contains("UPDATE_IN_PROGRESS") && lines[0].contains("User Initiated"));
    assert!(lines[1].contains("UPDATE_IN_PROGRESS") && lines[1].contains("TaskDefinition"));
    assert!(lines[2].contains("UPDATE_FAILED") && lines[2].contains("execution role ARN"));
    assert!(lines[3].contains("UPDATE_ROLLBACK_COMPLETE"));
    // The report: the failed resource, the state, the way on.
    assert!(
        stderr.contains("TaskDefinition (AWS::ECS::TaskDefinition): UPDATE_FAILED"),
        "{report}"
    );
    assert!(
        stderr.contains("ended in UPDATE_ROLLBACK_COMPLETE"),
        "{report}"
    );
    assert!(stderr.contains("previous version"), "{report}");
    assert_eq!(writes(&replay), ["ExecuteChangeSet"]);
}

/// A canary release of the scaler that CodeDeploy stops on the error alarm (its answer as
/// CloudFormation relays it on the alias, written by hand): `up` says beforehand how the
/// new version takes over, then reports the alias's failure with what it means.
#[test]
fn a_canary_stopped_by_the_alarm_is_reported_as_such() {
    let name = main_stack();
    let envs = crate::cli::environments_copy();
    let local = envs.path().join("local.yaml");
    let mut yaml = std::fs::read_to_string(&local).unwrap();
    yaml.push_str(
        "\nrelease:\n  scaler_rollout: canary\n  canary_percent: 50\n  canary_minutes: 10\n",
    );
    std::fs::write(&local, yaml).unwrap();
    let mut replies = before_change_set("UPDATE_COMPLETE");
    let old = Event::new(&name, "AWS::CloudFormation::Stack", "UPDATE_COMPLETE", 10);
    let stopped = "Resource handler returned message: \"CodeDeploy deployment d-7XQ2Y0EXAMPLE failed: Deployment d-7XQ2Y0EXAMPLE has been stopped because the alarm efs-autoscaler-local-ScalerErrorsAlarm-1A2B3C4D5E6F is in ALARM state.\" (HandlerErrorCode: GeneralServiceException)";
    replies.extend(computed_change_set(
        &name,
        cfn::Change {
            logical_id: "ScalerVersion".into(),
            resource_type: "AWS::Lambda::Version".into(),
            action: "Modify".into(),
            replacement: Some("True".into()),
            properties: vec![("Description".into(), true)],
        },
    ));
    replies.extend([
        cfn::stack_events(&name, std::slice::from_ref(&old)),
        cfn::stack_events(
            &name,
            &[
                Event::new(
                    &name,
                    "AWS::CloudFormation::Stack",
                    "UPDATE_ROLLBACK_COMPLETE",
                    140,
                ),
                Event::new("ScalerAlias", "AWS::Lambda::Alias", "UPDATE_FAILED", 130)
                    .reason(stopped),
                Event::new(
                    "ScalerAlias",
                    "AWS::Lambda::Alias",
                    "UPDATE_IN_PROGRESS",
                    120,
                ),
                Event::new(
                    "ScalerVersion",
                    "AWS::Lambda::Version",
                    "UPDATE_COMPLETE",
                    110,
                ),
                old.clone(),
            ],
        ),
        cfn::empty("ExecuteChangeSet"),
        cfn::describe(&Stack::new(&name, "UPDATE_IN_PROGRESS")),
        cfn::describe(
            &Stack::new(&name, "UPDATE_ROLLBACK_COMPLETE")
                .reason("The following resource(s) failed to update: [ScalerAlias]."),
        ),
    ]);
    let replay = AwsReplay::start(replies).unwrap();
    let env = replay.env();
    let out = run(
        &[
            "--environments-dir",
            envs.path().to_str().unwrap(),
            "up",
            "--env",
            "local",
            "--yes",
        ],
        &as_refs(&env),
    );
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("takes over through a canary: 50 % of its runs for 10 minutes"),
        "{report}"
    );
    assert!(
        stderr.contains("ScalerAlias (AWS::Lambda::Alias): UPDATE_FAILED")
            && stderr.contains("is in ALARM state"),
        "{report}"
    );
    assert!(
        stderr.contains("failed during its canary and the alias is back on the previous one")
            && stderr.contains("deployer logs --env local scaler --since 1h --filter ERROR"),
        "{report}"
    );
}

/// A change set that gives the scaler's role an action it did not have (the deployed
/// template is the rendered one without it): the diff marks it, `up --yes` off a terminal
/// refuses and deletes the change set, `--approve-risky` deploys it.
#[test]
fn broader_iam_needs_approval_beyond_yes() {
    let name = main_stack();
    let rendered = deployer::render::Renderer::new()
        .unwrap()
        .render(&deployer::config::load(&repo_root().join("environments"), "local").unwrap())
        .unwrap()
        .main;
    let granted = "ssm:PutParameter";
    assert!(
        rendered.contains(granted),
        "the scaler's role no longer has {granted}"
    );
    // The deployed role lacked the action: the same template with it taken out of the
    // action lists it is in.
    let deployed = rendered
        .replace(&format!("{granted}, "), "")
        .replace(&format!(", {granted}"), "");
    assert_ne!(deployed, rendered);
    let change = || cfn::Change {
        logical_id: "ScalerRole".into(),
        resource_type: "AWS::IAM::Role".into(),
        action: "Modify".into(),
        replacement: Some("False".into()),
        properties: vec![("Policies".into(), false)],
    };
    let script = |extra: Vec<harness::Reply>| {
        let mut replies = before_change_set("UPDATE_COMPLETE");
        replies.extend([
            cfn::create_change_set(&name, CHANGE_SET),
            cfn::describe_change_set(&name, CHANGE_SET, "CREATE_COMPLETE", None, &[change()]),
            cfn::get_template(&deployed),
        ]);
        replies.extend(extra);
        replies
    };
    let replay = AwsReplay::start(script(vec![cfn::empty("DeleteChangeSet")])).unwrap();
    let out = up(&replay, &["--yes"]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let row = stderr
        .lines()
        .find(|l| l.contains(granted) && l.trim_start().starts_with('+'))
        .unwrap_or_else(|| panic!("no added row for {granted}: {report}"));
    assert!(row.contains("ScalerRole") && row.contains("Allow"), "{row}");
    assert!(
        stderr.contains(&format!("!! broadens IAM: ScalerRole may {granted} on ")),
        "{report}"
    );
    assert!(
        stderr.contains("--approve-risky") && stderr.contains("nothing was changed"),
        "{report}"
    );
    assert!(replay.actions().contains(&"DeleteChangeSet".to_string()));
    assert!(writes(&replay).is_empty(), "{:?}", replay.actions());

    // Approved: executed.
    let old = Event::new(&name, "AWS::CloudFormation::Stack", "UPDATE_COMPLETE", 10);
    let replay = AwsReplay::start(script(vec![
        cfn::stack_events(&name, std::slice::from_ref(&old)),
        cfn::empty("ExecuteChangeSet"),
        cfn::describe(&Stack::new(&name, "UPDATE_IN_PROGRESS")),
    ]))
    .unwrap();
    let child = std::process::Command::new(crate::cli::deployer())
        .current_dir(repo_root())
        .args(["up", "--env", "local", "--yes", "--approve-risky"])
        .envs(replay.env())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !replay.actions().contains(&"ExecuteChangeSet".to_string()) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "approved, never executed: {:?}",
            replay.actions()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The rest (following the deploy) is the other tests' business.
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait_with_output();
}

/// A change set CloudFormation cannot create: its reason, exit 1, the change set
/// deleted, nothing executed.
#[test]
fn up_reports_a_change_set_that_fails_to_create() {
    let name = main_stack();
    let mut replies = before_change_set("UPDATE_COMPLETE");
    replies.extend(failed_change_set(
        &name,
        "Template error: instance of Fn::GetAtt references undefined resource Missing",
    ));
    let replay = AwsReplay::start(replies).unwrap();
    let out = up(&replay, &["--yes"]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("could not create a change set")
            && report.contains("undefined resource Missing"),
        "{report}"
    );
    assert!(
        replay.actions().contains(&"DeleteChangeSet".to_string()),
        "{:?}",
        replay.actions()
    );
    assert!(writes(&replay).is_empty(), "{:?}", replay.actions());
    // The stack's lock was given back although `up` failed.
    assert!(
        replay.actions().contains(&"DELETE".to_string()),
        "{:?}",
        replay.actions()
    );
}

/// Nothing to change: "no changes", the empty change set deleted, exit 0, and no write
/// call but that deletion (the list and protection are already as configured).
#[test]
fn up_with_nothing_to_change_deletes_the_empty_change_set() {
    let name = main_stack();
    let mut replies = before_change_set("UPDATE_COMPLETE");
    replies.extend(failed_change_set(
        &name,
        "The submitted information didn't contain changes. Submit different information to create a change set.",
    ));
    // The list as published already matches the file system's one mount target.
    replies.extend(published_and_actual());
    let replay = AwsReplay::start(replies).unwrap();
    let out = up(&replay, &["--yes"]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(report.contains(&format!("{name}: no changes")), "{report}");
    assert!(report.contains("1 mount target(s), up to date"), "{report}");
    let actions = replay.actions();
    assert_eq!(
        actions.iter().filter(|a| *a == "DeleteChangeSet").count(),
        1,
        "{actions:?}"
    );
    assert!(writes(&replay).is_empty(), "{actions:?}");
    assert!(!actions.iter().any(|a| a == "PutParameter"), "{actions:?}");
}

/// The stack's file system with one available mount target, and the SSM list equal to
/// it.
fn published_and_actual() -> Vec<harness::Reply> {
    let list = runtime::model::MountTargetList::new(vec![runtime::model::MountTarget {
        mount_target_id: "fsmt-0000000a".into(),
        ip_address: "10.0.1.4".parse().unwrap(),
        availability_zone: "ap-northeast-1a".into(),
        subnet_id: "subnet-0000000a".into(),
    }])
    .unwrap();
    let parameter = harness::Reply::json(
        "GetParameter",
        200,
        serde_json::json!({"Parameter": {
            "Name": "/efs-autoscaler/local/mount-targets",
            "Type": "String",
            "Value": list.to_canonical_json().unwrap(),
            "Version": 3,
        }}),
    );
    vec![
        cfn::list_stack_resources(&[("FileSystem", "AWS::EFS::FileSystem", "fs-0000000a")]),
        harness::Reply::rest_json(
            "GET",
            200,
            serde_json::json!({"MountTargets": [{
                "OwnerId": "123456789012",
                "MountTargetId": "fsmt-0000000a",
                "FileSystemId": "fs-0000000a",
                "SubnetId": "subnet-0000000a",
                "LifeCycleState": "available",
                "IpAddress": "10.0.1.4",
                "AvailabilityZoneName": "ap-northeast-1a",
                "VpcId": "vpc-0000000a",
            }]}),
        ),
        parameter,
    ]
}

/// Ctrl-C while the stack deploys: the deployer stops following, says the stack keeps
/// going and how to follow it, exits 130, and cancels nothing.
#[test]
fn ctrl_c_during_execution_leaves_the_stack_deploying() {
    let name = main_stack();
    let mut replies = before_change_set("UPDATE_COMPLETE");
    let old = Event::new(&name, "AWS::CloudFormation::Stack", "UPDATE_COMPLETE", 10);
    replies.extend(computed_change_set(
        &name,
        cfn::Change {
            logical_id: "ScalerFunction".into(),
            resource_type: "AWS::Lambda::Function".into(),
            action: "Modify".into(),
            replacement: Some("False".into()),
            properties: vec![("Environment".into(), false)],
        },
    ));
    replies.extend([
        cfn::stack_events(&name, std::slice::from_ref(&old)),
        cfn::empty("ExecuteChangeSet"),
        cfn::describe(&Stack::new(&name, "UPDATE_IN_PROGRESS")),
    ]);
    let replay = AwsReplay::start(replies).unwrap();
    let env = replay.env();
    let mut command = std::process::Command::new(crate::cli::deployer());
    command
        .current_dir(repo_root())
        .args(["up", "--env", "local", "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in &env {
        command.env(k, v);
    }
    let child = command.spawn().unwrap();
    let started = std::time::Instant::now();
    while !replay.actions().contains(&"ExecuteChangeSet".to_string()) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "never executed: {:?}",
            replay.actions()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let report = text(&out);
    assert_eq!(out.status.code(), Some(130), "{report}");
    assert!(
        report.contains("keeps deploying") && report.contains("deployer status --env local"),
        "{report}"
    );
    assert_eq!(writes(&replay), ["ExecuteChangeSet"], "nothing cancelled");
    assert!(!replay.actions().iter().any(|a| a == "CancelUpdateStack"));
}

/// A stack whose creation failed cannot take a change set: say how to get out.
#[test]
fn up_on_a_stack_in_rollback_complete_says_what_to_do() {
    let replay = AwsReplay::start(before_change_set("ROLLBACK_COMPLETE")).unwrap();
    let out = up(&replay, &["--yes"]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("ROLLBACK_COMPLETE") && report.contains("deployer down --env local"),
        "{report}"
    );
    assert!(writes(&replay).is_empty());
    assert!(!replay.actions().contains(&"CreateChangeSet".to_string()));
}

/// The credentials' account is not the environment's: stop before any change, naming
/// both accounts.
#[test]
fn up_refuses_another_account() {
    let envs = crate::cli::environments_copy();
    let local = envs.path().join("local.yaml");
    let yaml = std::fs::read_to_string(&local).unwrap();
    std::fs::write(&local, format!("account_id: \"111122223333\"\n{yaml}")).unwrap();
    let replay = AwsReplay::start([harness::Reply::xml(
        "GetCallerIdentity",
        200,
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <GetCallerIdentityResult><Arn>arn:aws:iam::999988887777:user/dev</Arn>\
         <UserId>AIDAEXAMPLE</UserId><Account>999988887777</Account></GetCallerIdentityResult>\
         <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
            .to_string(),
    )])
    .unwrap();
    let env = replay.env();
    let out = run(
        &[
            "--environments-dir",
            envs.path().to_str().unwrap(),
            "up",
            "--env",
            "local",
            "--yes",
        ],
        &as_refs(&env),
    );
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("111122223333") && report.contains("999988887777"),
        "{report}"
    );
    assert_eq!(replay.actions(), ["GetCallerIdentity"]);
}

/// Another region than the environment's: refused before any AWS call.
#[test]
fn up_refuses_another_region() {
    let replay = AwsReplay::start([]).unwrap();
    let out = up(&replay, &["--yes", "--region", "us-east-1"]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("us-east-1") && report.contains("ap-northeast-1"),
        "{report}"
    );
    assert!(replay.actions().is_empty(), "{:?}", replay.actions());
}

/// A protected environment off a terminal without --yes: an error before any AWS call.
#[test]
fn up_on_prod_off_a_terminal_needs_yes() {
    let replay = AwsReplay::start([]).unwrap();
    let env = replay.env();
    let out = run(&["up", "--env", "prod"], &as_refs(&env));
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("--yes") && report.contains("terminal"),
        "{report}"
    );
    assert!(replay.actions().is_empty(), "{:?}", replay.actions());
}

/// An environment that does not exist: named with the ones that do, no AWS call.
#[test]
fn up_with_an_unknown_environment_names_the_known_ones() {
    let replay = AwsReplay::start([]).unwrap();
    let env = replay.env();
    let out = run(&["up", "--env", "prdo", "--yes"], &as_refs(&env));
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("prdo") && report.contains("prod"),
        "{report}"
    );
    assert!(replay.actions().is_empty());
}

// ---- deployer invoke ------------------------------------------------------------------

/// The scaler fails: its error object on stdout, its log tail on stderr, exit 1.
#[test]
fn invoke_reports_the_scalers_error_and_log() {
    let name = main_stack();
    // "START …\nERROR deadline …\nEND" as Lambda returns it: base64 in a header.
    let log = "U1RBUlQgUmVxdWVzdElkOiAxCkVSUk9SIGRlYWRsaW5lIHJlYWNoZWQgd2hpbGUgY291bnRpbmcKRU5EIFJlcXVlc3RJZDogMQo=";
    let replay = AwsReplay::start([
        cfn::describe(&Stack::new(&name, "UPDATE_COMPLETE")),
        cfn::list_stack_resources(&[(
            "ScalerFunction",
            "AWS::Lambda::Function",
            "efs-autoscaler-local-scaler",
        )]),
        harness::Reply::rest_json(
            "POST",
            200,
            serde_json::json!({"errorType": "deadline", "errorMessage": "counting did not finish before the deadline"}),
        )
        .header("x-amz-function-error", "Unhandled")
        .header("x-amz-log-result", log),
    ])
    .unwrap();
    let env = replay.env();
    let out = run(&["invoke", "--env", "local"], &as_refs(&env));
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("counting did not finish"), "{report}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ERROR deadline reached while counting"),
        "{report}"
    );
    assert!(stderr.contains("Unhandled"), "{report}");
    let invoked = replay
        .received()
        .into_iter()
        .find(|r| r.action == "POST")
        .unwrap();
    assert_eq!(invoked.body, "{}", "the payload a scheduled run gets");
}

/// `down` on a protected stack whose deletion CloudFormation refuses: the protection it
/// turned off goes back on before the error, so the stack that survives is protected.
#[test]
fn a_refused_deletion_leaves_the_stack_protected() {
    let name = main_stack();
    let protected = Stack::new(&name, "UPDATE_COMPLETE").protected();
    let replay = AwsReplay::start([
        cfn::describe(&protected),
        cfn::list_stack_resources(&[]),
        cfn::empty("UpdateTerminationProtection"),
        cfn::stack_events(&name, &[]),
        harness::Reply::xml(
            "DeleteStack",
            403,
            cfn::error(
                "AccessDenied",
                "User is not authorized to perform cloudformation:DeleteStack",
            ),
        ),
    ])
    .unwrap();
    let env = replay.env();
    let out = run(
        &["down", "--env", "local", "--force", "--confirm", "local"],
        &as_refs(&env),
    );
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("not authorized"), "{report}");
    assert!(
        report.contains("termination protection on again"),
        "{report}"
    );
    let protections = replay
        .actions()
        .iter()
        .filter(|a| *a == "UpdateTerminationProtection")
        .count();
    assert_eq!(protections, 2, "off, then on again: {:?}", replay.actions());
}

// ---- deployer drift -------------------------------------------------------------------

const TASK_DEFINITION: &str =
    "arn:aws:ecs:ap-northeast-1:123456789012:task-definition/efs-autoscaler-local-router";

/// What `drift` reads besides CloudFormation's detection: the stack's resources, the
/// file system's mount targets (available in `zones`), the published list (the first
/// `published` of them) and the router service running revision `running`.
fn drift_world(zones: &[&str], published: usize, running: u32) -> Vec<harness::Reply> {
    let targets: Vec<runtime::model::MountTarget> = zones
        .iter()
        .enumerate()
        .map(|(i, zone)| runtime::model::MountTarget {
            mount_target_id: format!("fsmt-{i:08}"),
            ip_address: format!("10.0.{i}.4").parse().unwrap(),
            availability_zone: format!("ap-northeast-1{zone}"),
            subnet_id: format!("subnet-{i:08}"),
        })
        .collect();
    let list = runtime::model::MountTargetList::new(targets[..published].to_vec()).unwrap();
    vec![
        cfn::describe(&Stack::new(&main_stack(), "UPDATE_COMPLETE")),
        cfn::list_stack_resources(&[
            ("FileSystem", "AWS::EFS::FileSystem", "fs-0000000a"),
            ("Cluster", "AWS::ECS::Cluster", "efs-autoscaler-local"),
            (
                "RouterService",
                "AWS::ECS::Service",
                "arn:aws:ecs:ap-northeast-1:123456789012:service/efs-autoscaler-local/router",
            ),
            (
                "RouterTaskDefinition",
                "AWS::ECS::TaskDefinition",
                &format!("{TASK_DEFINITION}:4"),
            ),
        ]),
        harness::Reply::rest_json(
            "GET",
            200,
            serde_json::json!({"MountTargets": targets.iter().map(|t| serde_json::json!({
                "OwnerId": "123456789012",
                "MountTargetId": t.mount_target_id,
                "FileSystemId": "fs-0000000a",
                "SubnetId": t.subnet_id,
                "LifeCycleState": "available",
                "IpAddress": t.ip_address.to_string(),
                "AvailabilityZoneName": t.availability_zone,
                "VpcId": "vpc-0000000a",
            })).collect::<Vec<_>>()}),
        ),
        harness::Reply::json(
            "GetParameter",
            200,
            serde_json::json!({"Parameter": {
                "Name": "/efs-autoscaler/local/mount-targets",
                "Type": "String",
                "Value": list.to_canonical_json().unwrap(),
                "Version": 3,
            }}),
        ),
        harness::Reply::json(
            "DescribeServices",
            200,
            serde_json::json!({"services": [{
                "serviceName": "router",
                "status": "ACTIVE",
                "desiredCount": 2,
                "runningCount": 2,
                "taskDefinition": format!("{TASK_DEFINITION}:{running}"),
                "deployments": [{
                    "id": "ecs-svc/1",
                    "status": "PRIMARY",
                    "taskDefinition": format!("{TASK_DEFINITION}:{running}"),
                    "runningCount": 2,
                }],
            }], "failures": []}),
        ),
    ]
}

/// Drift in all three places: a function changed by hand and a security-group rule
/// deleted (CloudFormation's detection, which ran for a while), a mount target missing
/// from the published list, the service moved to another task definition. Exit 2, each
/// difference named with what to do; the same in JSON.
#[test]
fn drift_names_every_difference_and_exits_2() {
    let name = main_stack();
    let mut replies = vec![
        cfn::detect_stack_drift("d-1"),
        cfn::drift_detection_status(&name, "d-1", "DETECTION_IN_PROGRESS", None, None),
        cfn::drift_detection_status(
            &name,
            "d-1",
            "DETECTION_COMPLETE",
            Some(("DRIFTED", 2)),
            None,
        ),
        cfn::stack_resource_drifts(
            &name,
            &[
                cfn::ResourceDrift {
                    logical_id: "ScalerFunction".into(),
                    resource_type: "AWS::Lambda::Function".into(),
                    physical_id: "efs-autoscaler-local-scaler".into(),
                    status: "MODIFIED".into(),
                    differences: vec![
                        (
                            "/MemorySize".into(),
                            "256".into(),
                            "1024".into(),
                            "NOT_EQUAL".into(),
                        ),
                        (
                            "/Environment/Variables/RUST_LOG".into(),
                            "null".into(),
                            "debug".into(),
                            "ADD".into(),
                        ),
                    ],
                },
                cfn::ResourceDrift {
                    logical_id: "RouterIngressFromApps".into(),
                    resource_type: "AWS::EC2::SecurityGroupIngress".into(),
                    physical_id: "sgr-0000000a".into(),
                    status: "DELETED".into(),
                    differences: vec![],
                },
            ],
        ),
    ];
    replies.extend(drift_world(&["a", "c", "d"], 2, 5));
    let replay = AwsReplay::start(replies.clone()).unwrap();
    let env = replay.env();
    let out = run(&["drift", "--env", "local"], &as_refs(&env));
    let report = text(&out);
    assert_eq!(out.status.code(), Some(2), "{report}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        format!("stack {name}: 2 resource(s) differ from the template"),
        "  ~ ScalerFunction (AWS::Lambda::Function, efs-autoscaler-local-scaler): MODIFIED".into(),
        "      /MemorySize: 256 -> 1024".into(),
        "      /Environment/Variables/RUST_LOG: added debug".into(),
        "  - RouterIngressFromApps (AWS::EC2::SecurityGroupIngress, sgr-0000000a): DELETED".into(),
        "  published:     ap-northeast-1a fsmt-00000000, ap-northeast-1c fsmt-00000001".into(),
        "  mount targets: ap-northeast-1a fsmt-00000000, ap-northeast-1c fsmt-00000001, ap-northeast-1d fsmt-00000002".into(),
        format!("router service: runs {TASK_DEFINITION}:5"),
        "drift found".into(),
    ] {
        assert!(stdout.lines().any(|l| l == line), "no line {line:?}: {report}");
    }
    assert!(
        stdout.contains(&format!("--task-definition {TASK_DEFINITION}:4")),
        "{report}"
    );
    // Only what differs is asked for.
    let asked = replay
        .received()
        .into_iter()
        .find(|r| r.action == "DescribeStackResourceDrifts")
        .unwrap();
    assert!(
        asked.body.contains("=MODIFIED") && asked.body.contains("=DELETED"),
        "{}",
        asked.body
    );
    assert!(writes(&replay).is_empty());

    let replay = AwsReplay::start(replies).unwrap();
    let env = replay.env();
    let out = run(
        &["drift", "--env", "local", "--output", "json"],
        &as_refs(&env),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["drifted"], true);
    // In logical-id order.
    assert_eq!(
        json["stack"]["resources"][1]["differences"][0]["actual"],
        "1024"
    );
    assert_eq!(json["mount_target_list"]["drifted"], true);
    assert_eq!(
        json["mount_target_list"]["mount_targets"]["ap-northeast-1d"],
        "fsmt-00000002"
    );
    assert_eq!(
        json["router"]["deployed_task_definition"],
        format!("{TASK_DEFINITION}:4")
    );
}

/// Nothing differs: exit 0 and one line per place. A detection that could not check
/// every resource says so, with CloudFormation's reason.
#[test]
fn drift_in_sync_exits_0() {
    let name = main_stack();
    let reason = "Failed to detect drift on resource [RouterService]: Internal Failure";
    let mut replies = vec![
        cfn::detect_stack_drift("d-2"),
        cfn::drift_detection_status(
            &name,
            "d-2",
            "DETECTION_FAILED",
            Some(("IN_SYNC", 0)),
            Some(reason),
        ),
        cfn::stack_resource_drifts(&name, &[]),
    ];
    replies.extend(drift_world(&["a", "c"], 2, 4));
    let replay = AwsReplay::start(replies).unwrap();
    let env = replay.env();
    let out = run(&["drift", "--env", "local"], &as_refs(&env));
    let report = text(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("stack {name}: in sync with its template")),
        "{report}"
    );
    assert!(
        stdout.contains(&format!("some resources could not be checked: {reason}")),
        "{report}"
    );
    assert!(
        stdout.contains("published list /efs-autoscaler/local/mount-targets: matches"),
        "{report}"
    );
    assert!(
        stdout.contains(&format!(
            "runs the released task definition {TASK_DEFINITION}:4"
        )),
        "{report}"
    );
    assert!(stdout.ends_with("no drift\n"), "{report}");
}

// ---- deployer rollback ----------------------------------------------------------------

const FUNCTION: &str = "efs-autoscaler-local-scaler";

/// The bootstrap stack with its bucket, the main stack with a scaler and a router, the
/// lock free, the release history `releases` (scaler version, task revision), the alias
/// at `alias` and the service running revision `running`. Then the replies to the moves
/// themselves (UpdateAlias, UpdateService) and the history's write.
fn release_world(releases: &[(&str, u32)], alias: &str, running: u32) -> Vec<harness::Reply> {
    let mut bootstrap = Stack::new(&bootstrap_stack(), "CREATE_COMPLETE");
    bootstrap.outputs = vec![
        (
            "ArtifactBucketName".into(),
            "efs-autoscaler-artifacts-123456789012-ap-northeast-1".into(),
        ),
        ("RepositoryName".into(), "efs-autoscaler/router".into()),
        (
            "RepositoryUri".into(),
            "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/efs-autoscaler/router".into(),
        ),
    ];
    let history = serde_json::json!({"releases": releases.iter().map(|(v, r)| serde_json::json!({
        "time": "2026-12-01T10:00:00Z",
        "scaler_version": v,
        "task_definition": format!("{TASK_DEFINITION}:{r}"),
    })).collect::<Vec<_>>()});
    let mut replies = vec![
        cfn::describe(&Stack::new(&main_stack(), "UPDATE_COMPLETE"))
            .when(&format!("StackName={}", main_stack())),
        cfn::describe(&bootstrap).when(&format!("StackName={}", bootstrap_stack())),
        cfn::list_stack_resources(&[
            ("ScalerFunction", "AWS::Lambda::Function", FUNCTION),
            ("Cluster", "AWS::ECS::Cluster", "efs-autoscaler-local"),
            (
                "RouterService",
                "AWS::ECS::Service",
                "arn:aws:ecs:ap-northeast-1:123456789012:service/efs-autoscaler-local/router",
            ),
            (
                "TaskDefinition",
                "AWS::ECS::TaskDefinition",
                &format!("{TASK_DEFINITION}:{running}"),
            ),
        ]),
    ];
    // GETs in the order they come: the lock (free), the history, the alias.
    replies.extend(free_lock().into_iter().take(1));
    replies.push(harness::Reply::rest_json("GET", 200, history).header("ETag", "\"history-1\""));
    replies.push(harness::Reply::rest_json(
        "GET",
        200,
        serde_json::json!({
            "AliasArn": format!("arn:aws:lambda:ap-northeast-1:123456789012:function:{FUNCTION}:live"),
            "Name": "live",
            "FunctionVersion": alias,
            "Description": "",
            "RevisionId": "r1",
        }),
    ));
    replies.push(harness::Reply::json(
        "DescribeServices",
        200,
        serde_json::json!({"services": [{
            "serviceName": "router",
            "status": "ACTIVE",
            "desiredCount": 2,
            "runningCount": 2,
            "taskDefinition": format!("{TASK_DEFINITION}:{running}"),
            "deployments": [{
                "id": "ecs-svc/1",
                "status": "PRIMARY",
                "taskDefinition": format!("{TASK_DEFINITION}:{running}"),
                "runningCount": 2,
            }],
        }], "failures": []}),
    ));
    // PUTs in order: the lock, the alias's move, the history.
    replies.push(
        harness::Reply::rest("PUT", 200).header("ETag", "\"6805f2cfc46c0f04559748bb039d69ae\""),
    );
    replies.push(harness::Reply::rest_json(
        "PUT",
        200,
        serde_json::json!({"Name": "live", "FunctionVersion": "0", "RevisionId": "r2"}),
    ));
    replies.push(harness::Reply::rest("PUT", 200).header("ETag", "\"history-2\""));
    replies.push(harness::Reply::json(
        "UpdateService",
        200,
        serde_json::json!({"service": {"serviceName": "router", "deployments": [{
            "id": "ecs-svc/2", "status": "PRIMARY",
        }]}}),
    ));
    replies.push(harness::Reply::rest("DELETE", 204));
    replies
}

/// Both parts back one release: the alias to the previous version, the service to the
/// previous task definition; the history loses the release rolled back from, written
/// over the version read; the lock is given back.
#[test]
fn rollback_moves_the_alias_and_the_service_back() {
    let replay = AwsReplay::start(release_world(&[("3", 6), ("4", 7)], "4", 7)).unwrap();
    let env = replay.env();
    let out = run(
        &["rollback", "--env", "local", "--yes", "--output", "json"],
        &as_refs(&env),
    );
    let report = text(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("scaler: alias live from version 4 to 3"),
        "{report}"
    );
    assert!(
        stderr.contains(&format!(
            "router: service from {TASK_DEFINITION}:7 to {TASK_DEFINITION}:6"
        )),
        "{report}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["scaler_version"], "3");
    assert_eq!(json["deployment"], "ecs-svc/2");
    assert_eq!(json["releases_left"], 1);
    let received = replay.received();
    let body_of = |action: &str| -> Vec<String> {
        received
            .iter()
            .filter(|r| r.action == action)
            .map(|r| r.body.clone())
            .collect()
    };
    let puts = body_of("PUT");
    assert_eq!(puts.len(), 3, "{puts:?}");
    assert!(puts[1].contains("\"FunctionVersion\":\"3\""), "{}", puts[1]);
    let written: serde_json::Value = serde_json::from_str(&puts[2]).unwrap();
    assert_eq!(
        written["releases"].as_array().unwrap().len(),
        1,
        "{written}"
    );
    assert_eq!(written["releases"][0]["scaler_version"], "3");
    let update = &body_of("UpdateService")[0];
    assert!(update.contains(&format!("{TASK_DEFINITION}:6")), "{update}");
    assert_eq!(body_of("DELETE").len(), 1, "the lock is given back");
}

/// One release recorded: nothing to go back to, nothing moved, the lock given back.
#[test]
fn rollback_without_a_previous_release_is_refused() {
    let replay = AwsReplay::start(release_world(&[("4", 7)], "4", 7)).unwrap();
    let env = replay.env();
    let out = run(&["rollback", "--env", "local", "--yes"], &as_refs(&env));
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("nothing to roll back to: 1 release(s) recorded for efs-autoscaler-local"),
        "{report}"
    );
    let actions = replay.actions();
    assert_eq!(
        actions.iter().filter(|a| *a == "PUT").count(),
        1,
        "only the lock: {actions:?}"
    );
    assert!(!actions.iter().any(|a| a == "UpdateService"), "{actions:?}");
    assert!(
        actions.iter().any(|a| a == "DELETE"),
        "the lock is given back: {actions:?}"
    );
}

/// Drift against the last release: the alias moved by hand to another version, while the
/// service runs the released task definition.
#[test]
fn drift_compares_the_alias_with_the_last_release() {
    let name = main_stack();
    let mut replies = vec![
        cfn::detect_stack_drift("d-3"),
        cfn::drift_detection_status(
            &name,
            "d-3",
            "DETECTION_COMPLETE",
            Some(("IN_SYNC", 0)),
            None,
        ),
        cfn::stack_resource_drifts(&name, &[]),
    ];
    // drift takes no lock: the first GET is the history's.
    replies.extend(
        release_world(&[("3", 6), ("4", 7)], "5", 7)
            .into_iter()
            .filter(|r| !(r.action == "GET" && r.status == 404)),
    );
    let replay = AwsReplay::start(replies).unwrap();
    let env = replay.env();
    let out = run(&["drift", "--env", "local"], &as_refs(&env));
    let report = text(&out);
    assert_eq!(out.status.code(), Some(2), "{report}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("scaler alias live: version 5, the last release runs 4"),
        "{report}"
    );
    assert!(
        stdout.contains(&format!(
            "--function-name {FUNCTION} --name live --function-version 4"
        )),
        "{report}"
    );
    assert!(
        stdout.contains(&format!(
            "router service: runs the released task definition {TASK_DEFINITION}:7"
        )),
        "{report}"
    );
}
