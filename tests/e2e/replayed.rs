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
