//! `deployer drift --env NAME`: what differs from what was deployed, in four places:
//! the stack's resources against their template (CloudFormation drift detection), the
//! published mount-target list against the file system's mount targets, and the
//! scaler's alias and the router's task definition against the last release `up` or
//! `rollback` recorded (the stack's task definition when none is). Exit code 2 on any
//! drift, for CI; 0 when everything matches.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use miette::miette;
use serde_json::{Value, json};

use crate::aws::cloudformation::{self, ResourceDrift};
use crate::cli::{AwsArgs, EnvArgs, OutputFormat};
use crate::commands::bootstrap;
use crate::commands::status::{check_list, deployed_resources, of_type, s};
use crate::config::{self, SCALER_ALIAS};
use crate::release::{self, Deployed, Store};

const POLL: Duration = Duration::from_secs(3);
/// CloudFormation checks every resource's live configuration; a stack of this size
/// takes under a minute. Past this the detection keeps running and the error says how
/// to read its result.
const DETECTION_LIMIT: Duration = Duration::from_secs(600);

pub fn run(
    environments_dir: &std::path::Path,
    aws_args: &AwsArgs,
    output: OutputFormat,
    args: &EnvArgs,
) -> miette::Result<ExitCode> {
    let env = config::load(environments_dir, &args.env)?;
    let report = super::block_on(async {
        let sdk = super::connect(&env, aws_args).await?;
        read(&sdk, &env).await
    })??;
    super::print_report(output, &report, text);
    Ok(if report["drifted"] == true {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

async fn read(sdk: &aws_config::SdkConfig, env: &config::Environment) -> miette::Result<Value> {
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let stack = env.stack_name();
    let resources = deployed_resources(&cfn, env).await?;

    let id = cloudformation::detect_drift(&cfn, &stack).await?;
    eprintln!("detecting drift of {stack} (CloudFormation reads every resource's configuration)");
    let started = Instant::now();
    let detection = loop {
        let detection = cloudformation::drift_detection(&cfn, &id).await?;
        if detection.status != "DETECTION_IN_PROGRESS" {
            break detection;
        }
        if started.elapsed() > DETECTION_LIMIT {
            return Err(miette!(
                help = format!(
                    "read its result later: aws cloudformation describe-stack-drift-detection-status --stack-drift-detection-id {id}"
                ),
                "drift detection of {stack} is still running after {} minutes",
                DETECTION_LIMIT.as_secs() / 60
            ));
        }
        tokio::time::sleep(POLL).await;
    };
    // A failed detection still has results for the resources it could check; the reason
    // names the others.
    let drifts = cloudformation::resource_drifts(&cfn, &stack).await?;
    let stack_drifted = !drifts.is_empty();
    let mut report = json!({
        "environment": env.name,
        "stack": {
            "name": stack,
            "detection": detection.status,
            "detection_reason": detection.reason,
            "drift_status": detection.stack_status,
            "drifted": stack_drifted,
            "resources": drifts.iter().map(resource_json).collect::<Vec<_>>(),
        },
    });
    let mut drifted = stack_drifted;

    if let Some(fs) = of_type(&resources, "AWS::EFS::FileSystem").first() {
        let check = check_list(sdk, env, fs).await?;
        let expected = check.expected().ok();
        let matches = check.matches();
        drifted |= !matches;
        report["mount_target_list"] = json!({
            "parameter": check.parameter,
            "published": check.list.as_ref().and_then(|l| l.as_ref().ok()).map(ids_by_zone),
            "published_error": match (&check.published, &check.list) {
                (None, _) => Some("the parameter does not exist".to_string()),
                (_, Some(Err(e))) => Some(e.to_string()),
                _ => None,
            },
            "mount_targets": expected.as_ref().map(ids_by_zone),
            "drifted": !matches,
        });
    }

    // What was deployed last: the release history, when the bootstrap stack (its bucket)
    // is there to hold one.
    let last = match bootstrap::outputs(&cfn, env).await {
        Ok(boot) => {
            let place = super::lock_place(sdk, env, &boot);
            Store::new(&place).read().await?.0.last().cloned()
        }
        Err(_) => None,
    };
    let deployed = Deployed::of(&resources, env);
    let running = release::running(sdk, &deployed).await?;
    if let (Some(function), Some(last)) = (&deployed.function, &last)
        && last.scaler_version.is_some()
    {
        let differs = running.now.scaler_version != last.scaler_version;
        drifted |= differs;
        report["scaler"] = json!({
            "function": function,
            "alias": SCALER_ALIAS,
            "version": running.now.scaler_version,
            "released_version": last.scaler_version,
            "drifted": differs,
        });
    }
    if let Some(service) = &deployed.service {
        let stack_task = of_type(&resources, "AWS::ECS::TaskDefinition")
            .first()
            .map(|t| t.to_string());
        let released = last
            .as_ref()
            .and_then(|l| l.task_definition.clone())
            .or(stack_task);
        let differs = running.now.task_definition != released;
        drifted |= differs;
        report["router"] = json!({
            "service": service,
            "task_definition": running.now.task_definition,
            "deployed_task_definition": released,
            "drifted": differs,
        });
    }
    report["drifted"] = json!(drifted);
    Ok(report)
}

fn ids_by_zone(list: &runtime::model::MountTargetList) -> Value {
    list.targets()
        .iter()
        .map(|t| (t.availability_zone.clone(), json!(t.mount_target_id)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn resource_json(d: &ResourceDrift) -> Value {
    json!({
        "logical_id": d.logical_id,
        "type": d.resource_type,
        "physical_id": d.physical_id,
        "status": d.status,
        "differences": d.differences.iter().map(|p| json!({
            "path": p.path,
            "expected": p.expected,
            "actual": p.actual,
            "difference": p.kind,
        })).collect::<Vec<_>>(),
    })
}

/// The text view: one section per place, each difference on its own line with what to do.
fn text(report: &Value) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let stack = &report["stack"];
    let resources = stack["resources"].as_array().cloned().unwrap_or_default();
    if resources.is_empty() {
        let _ = writeln!(
            out,
            "stack {}: in sync with its template",
            s(&stack["name"])
        );
    } else {
        let _ = writeln!(
            out,
            "stack {}: {} resource(s) differ from the template",
            s(&stack["name"]),
            resources.len()
        );
        for r in &resources {
            let mark = if r["status"] == "DELETED" { "-" } else { "~" };
            let _ = writeln!(
                out,
                "  {mark} {} ({}, {}): {}",
                s(&r["logical_id"]),
                s(&r["type"]),
                s(&r["physical_id"]),
                s(&r["status"])
            );
            for p in r["differences"].as_array().into_iter().flatten() {
                let path = s(&p["path"]);
                let _ = match p["difference"].as_str() {
                    Some("ADD") => writeln!(out, "      {path}: added {}", s(&p["actual"])),
                    Some("REMOVE") => {
                        writeln!(out, "      {path}: removed (was {})", s(&p["expected"]))
                    }
                    _ => writeln!(
                        out,
                        "      {path}: {} -> {}",
                        s(&p["expected"]),
                        s(&p["actual"])
                    ),
                };
            }
        }
        let _ = writeln!(
            out,
            "  CloudFormation does not undo changes made outside it: set them back to the template's values (left of ->), or make them in the environment and `deployer up`"
        );
    }
    if stack["detection"] == "DETECTION_FAILED" {
        let _ = writeln!(
            out,
            "  some resources could not be checked: {}",
            s(&stack["detection_reason"])
        );
    }

    let list = &report["mount_target_list"];
    if list.is_object() {
        let zones = |v: &Value| -> String {
            v.as_object().map_or_else(
                || "-".to_string(),
                |m| {
                    m.iter()
                        .map(|(zone, id)| format!("{zone} {}", s(id)))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            )
        };
        if list["drifted"] == true {
            let _ = writeln!(
                out,
                "published list {}: differs from the mount targets",
                s(&list["parameter"])
            );
            match list["published_error"].as_str() {
                Some(e) => {
                    let _ = writeln!(out, "  published: {e}");
                }
                None => {
                    let _ = writeln!(out, "  published:     {}", zones(&list["published"]));
                }
            }
            let _ = writeln!(out, "  mount targets: {}", zones(&list["mount_targets"]));
            let _ = writeln!(
                out,
                "  the scaler's next run publishes the mount targets' list (or now: `deployer invoke`)"
            );
        } else {
            let _ = writeln!(
                out,
                "published list {}: matches the mount targets ({})",
                s(&list["parameter"]),
                zones(&list["mount_targets"])
            );
        }
    }

    let scaler = &report["scaler"];
    if scaler.is_object() {
        if scaler["drifted"] == true {
            let _ = writeln!(
                out,
                "scaler alias {}: version {}, the last release runs {}",
                s(&scaler["alias"]),
                s(&scaler["version"]),
                s(&scaler["released_version"])
            );
            let _ = writeln!(
                out,
                "  moved outside the deployer; back: aws lambda update-alias --function-name {} --name {} --function-version {}",
                s(&scaler["function"]),
                s(&scaler["alias"]),
                s(&scaler["released_version"])
            );
        } else {
            let _ = writeln!(
                out,
                "scaler alias {}: version {}, as released",
                s(&scaler["alias"]),
                s(&scaler["version"])
            );
        }
    }

    let router = &report["router"];
    if router.is_object() {
        if router["drifted"] == true {
            let _ = writeln!(
                out,
                "router service: runs {}",
                s(&router["task_definition"])
            );
            let _ = writeln!(
                out,
                "  the last release runs {}; `deployer up` does not move the service back unless the task definition changes: \
                 aws ecs update-service --cluster … --service {} --task-definition {}",
                s(&router["deployed_task_definition"]),
                s(&router["service"]),
                s(&router["deployed_task_definition"])
            );
        } else {
            let _ = writeln!(
                out,
                "router service: runs the released task definition {}",
                s(&router["task_definition"])
            );
        }
    }
    let _ = writeln!(
        out,
        "{}",
        if report["drifted"] == true {
            "drift found"
        } else {
            "no drift"
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_drift_reads_as_what_differs_and_what_to_do() {
        let report = json!({
            "drifted": true,
            "stack": {
                "name": "efs-autoscaler-prod",
                "detection": "DETECTION_COMPLETE",
                "resources": [
                    {"logical_id": "ScalerFunction", "type": "AWS::Lambda::Function", "physical_id": "prod-scaler", "status": "MODIFIED",
                     "differences": [
                        {"path": "/MemorySize", "expected": "256", "actual": "512", "difference": "NOT_EQUAL"},
                        {"path": "/Environment/Variables/DEBUG", "expected": "null", "actual": "1", "difference": "ADD"}]},
                    {"logical_id": "RouterIngress", "type": "AWS::EC2::SecurityGroupIngress", "physical_id": "sgr-1", "status": "DELETED", "differences": []}
                ]
            },
            "mount_target_list": {"parameter": "/p", "drifted": true, "published": {"a": "fsmt-1"}, "mount_targets": {"a": "fsmt-1", "d": "fsmt-2"}},
            "scaler": {"function": "f", "alias": "live", "version": "8", "released_version": "7", "drifted": true},
            "router": {"service": "arn:svc", "task_definition": "arn:td:5", "deployed_task_definition": "arn:td:4", "drifted": true}
        });
        let shown = text(&report);
        for line in [
            "stack efs-autoscaler-prod: 2 resource(s) differ from the template",
            "  ~ ScalerFunction (AWS::Lambda::Function, prod-scaler): MODIFIED",
            "      /MemorySize: 256 -> 512",
            "      /Environment/Variables/DEBUG: added 1",
            "  - RouterIngress (AWS::EC2::SecurityGroupIngress, sgr-1): DELETED",
            "published list /p: differs from the mount targets",
            "  published:     a fsmt-1",
            "  mount targets: a fsmt-1, d fsmt-2",
            "scaler alias live: version 8, the last release runs 7",
            "router service: runs arn:td:5",
            "drift found",
        ] {
            assert!(
                shown.lines().any(|l| l == line),
                "no line {line:?} in\n{shown}"
            );
        }
        assert!(shown.contains("--task-definition arn:td:4"), "{shown}");
        assert!(
            shown.contains("--function-name f --name live --function-version 7"),
            "{shown}"
        );
    }

    #[test]
    fn nothing_drifted_says_so_per_place() {
        let report = json!({
            "drifted": false,
            "stack": {"name": "s", "detection": "DETECTION_COMPLETE", "resources": []},
            "mount_target_list": {"parameter": "/p", "drifted": false, "published": {"a": "fsmt-1"}, "mount_targets": {"a": "fsmt-1"}},
            "scaler": {"function": "f", "alias": "live", "version": "7", "released_version": "7", "drifted": false},
            "router": {"service": "arn:svc", "task_definition": "arn:td:4", "deployed_task_definition": "arn:td:4", "drifted": false}
        });
        assert_eq!(
            text(&report),
            "stack s: in sync with its template\n\
             published list /p: matches the mount targets (a fsmt-1)\n\
             scaler alias live: version 7, as released\n\
             router service: runs the released task definition arn:td:4\n\
             no drift\n"
        );
    }
}
