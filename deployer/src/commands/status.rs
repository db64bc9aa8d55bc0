//! `deployer status --env NAME`: the stack, the file system's mount targets, the
//! published list and whether it matches them, the router service, the scaler's
//! schedule and the alarms, read live (no write call); for a local environment, also
//! the data plane scripts/local-up runs (`crate::local_plane`).

use std::process::ExitCode;

use miette::miette;
use serde_json::{Value, json};

use crate::aws::{self, cloudformation, cloudwatch, eventbridge};
use crate::cli::{AwsArgs, EnvArgs, OutputFormat};
use crate::config::{self, Environment};

pub fn run(
    environments_dir: &std::path::Path,
    aws_args: &AwsArgs,
    output: OutputFormat,
    args: &EnvArgs,
) -> miette::Result<ExitCode> {
    let env = config::load(environments_dir, &args.env)?;
    let status = super::block_on(async {
        let sdk = super::connect(&env, aws_args).await?;
        read(&sdk, &env).await
    })??;
    super::print_report(output, &status, text);
    Ok(ExitCode::SUCCESS)
}

/// The file system's mount targets; none when the file system is already gone (a
/// stack being deleted, or one whose creation failed).
pub async fn mount_targets(
    efs: &runtime::aws::efs::Efs,
    file_system: &str,
) -> miette::Result<Vec<runtime::aws::efs::MountTargetInfo>> {
    match efs.mount_targets(file_system).await {
        Ok(targets) => Ok(targets),
        Err(e) if e.is_code("FileSystemNotFound") => Ok(Vec::new()),
        Err(e) => Err(aws::Error(e).into()),
    }
}

/// The published list beside the file system's mount targets.
#[derive(Debug)]
pub struct ListCheck {
    pub parameter: String,
    pub targets: Vec<runtime::aws::efs::MountTargetInfo>,
    pub published: Option<runtime::aws::ssm::Parameter>,
    /// The published value parsed, when there is one.
    pub list: Option<Result<runtime::model::MountTargetList, runtime::model::ModelError>>,
}

impl ListCheck {
    /// The list the mount targets make (every available one), as the scaler would
    /// publish it.
    pub fn expected(
        &self,
    ) -> Result<runtime::model::MountTargetList, runtime::reconcile::ReconcileError> {
        runtime::reconcile::verified_list(&self.targets)
    }

    /// Whether the published list is the one the mount targets make.
    pub fn matches(&self) -> bool {
        matches!(
            (self.expected(), &self.list),
            (Ok(expected), Some(Ok(list))) if expected == *list
        )
    }
}

pub async fn check_list(
    sdk: &aws_config::SdkConfig,
    env: &Environment,
    file_system: &str,
) -> miette::Result<ListCheck> {
    let efs = runtime::aws::efs::Efs::new(aws_sdk_efs::Client::new(sdk));
    let targets = mount_targets(&efs, file_system).await?;
    let ssm = runtime::aws::ssm::Ssm::new(aws_sdk_ssm::Client::new(sdk));
    let parameter = env.ssm_parameter_name();
    let published = ssm.get(&parameter).await.map_err(aws::Error)?;
    let list = published
        .as_ref()
        .map(|p| runtime::model::MountTargetList::parse(&p.value));
    Ok(ListCheck {
        parameter,
        targets,
        published,
        list,
    })
}

/// The stack's resources of one type, as physical ids.
pub fn of_type<'a>(resources: &'a [(String, String, String)], kind: &str) -> Vec<&'a str> {
    resources
        .iter()
        .filter(|(_, t, _)| t == kind)
        .map(|(_, _, id)| id.as_str())
        .collect()
}

/// Everything `status` shows, as one JSON value (the text view is made from it).
pub async fn read(sdk: &aws_config::SdkConfig, env: &Environment) -> miette::Result<Value> {
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let name = env.stack_name();
    let Some(stack) = cloudformation::describe(&cfn, &name).await? else {
        return Ok(json!({ "environment": env.name, "stack": { "name": name, "status": null } }));
    };
    let resources = cloudformation::resources(&cfn, &name).await?;
    let stack_targets = of_type(&resources, "AWS::EFS::MountTarget");
    let mut status = json!({
        "environment": env.name,
        "stack": {
            "name": name,
            "status": stack.status,
            "reason": stack.reason,
            "termination_protection": stack.termination_protection,
        },
    });

    if let Some(fs) = of_type(&resources, "AWS::EFS::FileSystem").first() {
        let check = check_list(sdk, env, fs).await?;
        status["file_system"] = json!(fs);
        status["mount_targets"] = check
            .targets
            .iter()
            .map(|t| {
                json!({
                    "id": t.mount_target_id,
                    "zone": t.availability_zone,
                    "ip": t.ip_address.map(|ip| ip.to_string()),
                    "state": t.state.as_str(),
                    "added_by": if stack_targets.contains(&t.mount_target_id.as_str()) { "stack" } else { "scaler" },
                })
            })
            .collect();
        let published = check.published.as_ref();
        let list = check.list.as_ref();
        status["published_list"] = json!({
            "parameter": check.parameter,
            "exists": published.is_some(),
            "version": published.map(|p| p.version),
            "zones": list.and_then(|l| l.as_ref().ok()).map(|l| l.zones().collect::<Vec<_>>()),
            "error": list.and_then(|l| l.as_ref().err()).map(|e| e.to_string()),
            "matches_mount_targets": check.matches(),
        });
    }

    let clusters = of_type(&resources, "AWS::ECS::Cluster");
    if let (Some(cluster), Some(service)) = (
        clusters.first(),
        of_type(&resources, "AWS::ECS::Service").first(),
    ) {
        let ecs = runtime::aws::ecs::Ecs::new(aws_sdk_ecs::Client::new(sdk));
        status["service"] = match ecs.service(cluster, service).await {
            Ok(s) => json!({
                "status": s.status,
                "desired": s.desired_count,
                "running": s.running_count,
                "deployments": s.deployments.iter().map(|d| json!({
                    "id": d.id, "status": d.status, "running": d.running_count,
                })).collect::<Vec<_>>(),
            }),
            Err(e) => json!({ "error": e.to_string() }),
        };
    }

    if let Some(rule) = of_type(&resources, "AWS::Events::Rule").first() {
        let events = aws_sdk_eventbridge::Client::new(sdk);
        status["schedule"] = match eventbridge::rule(&events, rule).await {
            Ok(r) => json!({ "rule": r.name, "state": r.state, "expression": r.schedule }),
            Err(e) => json!({ "rule": rule, "error": e.to_string() }),
        };
    }

    if let Some(function) = of_type(&resources, "AWS::Lambda::Function").first() {
        let functions = aws_sdk_lambda::Client::new(sdk);
        status["scaler"] = match crate::aws::lambda::reserved_concurrency(&functions, function)
            .await
        {
            // 0 is what `down` sets first: a teardown that did not finish. `up` restores it.
            Ok(n) => {
                json!({ "function": function, "reserved_concurrency": n, "stopped": n == Some(0) })
            }
            Err(e) => json!({ "function": function, "error": e.to_string() }),
        };
        // The release that runs: the alias's version, and another one during a canary.
        if let Ok(Some(alias)) =
            crate::aws::lambda::alias(&functions, function, crate::config::SCALER_ALIAS).await
        {
            status["scaler"]["alias"] = json!({
                "name": crate::config::SCALER_ALIAS,
                "version": alias.version,
                "weights": alias.weights.iter().map(|(v, w)| json!({"version": v, "weight": w})).collect::<Vec<_>>(),
            });
        }
    }

    let alarm_names: Vec<String> = of_type(&resources, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(str::to_string)
        .collect();
    if !alarm_names.is_empty() {
        let cw = aws_sdk_cloudwatch::Client::new(sdk);
        let alarms = cloudwatch::alarms(&cw, &alarm_names).await?;
        status["alarms"] = alarms
            .iter()
            .map(|a| json!({ "name": a.name, "state": a.state, "reason": a.reason }))
            .collect();
    } else {
        status["alarms"] = json!([]);
    }
    // A local environment: what scripts/local-up runs for it on this machine.
    if env.config.endpoint_url.is_some()
        && let Some(local) = crate::local_plane::read(&name).await
    {
        status["local"] = local;
    }
    Ok(status)
}

/// A JSON value as text for a report line: strings bare, null as `-`.
pub(crate) fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

/// The text view: one section per part, one line per item.
pub fn text(status: &Value) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let stack = &status["stack"];
    if stack["status"].is_null() {
        let _ = writeln!(
            out,
            "stack {}: does not exist (run `deployer up --env {}`)",
            s(&stack["name"]),
            s(&status["environment"])
        );
        return out;
    }
    let _ = writeln!(
        out,
        "stack {}: {}{}{}",
        s(&stack["name"]),
        s(&stack["status"]),
        stack["reason"]
            .as_str()
            .map_or(String::new(), |r| format!(" ({r})")),
        if stack["termination_protection"] == json!(true) {
            ", termination protection on"
        } else {
            ""
        }
    );
    if let Some(targets) = status["mount_targets"].as_array() {
        let _ = writeln!(
            out,
            "file system {}: {} mount target(s)",
            s(&status["file_system"]),
            targets.len()
        );
        for t in targets {
            let _ = writeln!(
                out,
                "  {:<18} {:<16} {:<10} {:<24} added by {}",
                s(&t["zone"]),
                s(&t["ip"]),
                s(&t["state"]),
                s(&t["id"]),
                s(&t["added_by"])
            );
        }
    }
    let list = &status["published_list"];
    if list.is_object() {
        let state = if list["exists"] != json!(true) {
            "missing".to_string()
        } else if let Some(e) = list["error"].as_str() {
            format!("unreadable: {e}")
        } else {
            format!(
                "version {}, zones {}, {}",
                s(&list["version"]),
                list["zones"]
                    .as_array()
                    .map(|z| z.iter().map(s).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default(),
                if list["matches_mount_targets"] == json!(true) {
                    "matches the mount targets"
                } else {
                    "DIFFERS from the mount targets (the scaler's next run or `deployer up` fixes it)"
                }
            )
        };
        let _ = writeln!(out, "published list {}: {state}", s(&list["parameter"]));
    }
    let service = &status["service"];
    if service.is_object() {
        if let Some(e) = service["error"].as_str() {
            let _ = writeln!(out, "router service: {e}");
        } else {
            let _ = writeln!(
                out,
                "router service: {}, {} of {} task(s) running",
                s(&service["status"]),
                s(&service["running"]),
                s(&service["desired"])
            );
            for d in service["deployments"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    out,
                    "  deployment {} {} ({} running)",
                    s(&d["id"]),
                    s(&d["status"]),
                    s(&d["running"])
                );
            }
        }
    }
    let schedule = &status["schedule"];
    if schedule.is_object() {
        let _ = writeln!(
            out,
            "scaler schedule {}: {} {}",
            s(&schedule["rule"]),
            s(&schedule["state"]),
            schedule["error"]
                .as_str()
                .map_or_else(|| s(&schedule["expression"]), str::to_string)
        );
    }
    let scaler = &status["scaler"];
    if scaler.is_object() {
        let _ = writeln!(
            out,
            "scaler {}: {}",
            s(&scaler["function"]),
            if scaler["stopped"] == true {
                "STOPPED (reserved concurrency 0, as an unfinished `down` leaves it); `deployer up` starts it again".to_string()
            } else if let Some(e) = scaler["error"].as_str() {
                e.to_string()
            } else {
                format!(
                    "reserved concurrency {}",
                    s(&scaler["reserved_concurrency"])
                )
            }
        );
        let alias = &scaler["alias"];
        if alias.is_object() {
            let canary: Vec<String> = alias["weights"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|w| {
                    format!(
                        ", version {} takes {:.0} % of the runs (a canary under way)",
                        s(&w["version"]),
                        w["weight"].as_f64().unwrap_or_default() * 100.0
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "  alias {}: version {}{}",
                s(&alias["name"]),
                s(&alias["version"]),
                canary.concat()
            );
        }
    }
    let alarms = status["alarms"].as_array().cloned().unwrap_or_default();
    if alarms.is_empty() {
        let _ = writeln!(out, "alarms: none found");
    } else {
        let _ = writeln!(out, "alarms:");
        for a in alarms {
            let _ = writeln!(out, "  {:<18} {}", s(&a["state"]), s(&a["name"]));
        }
    }
    if status["local"].is_object() {
        local_text(&status["local"], &mut out);
    }
    out
}

/// The stack's resources, or an error saying the environment is not deployed.
pub async fn deployed_resources(
    cfn: &aws_sdk_cloudformation::Client,
    env: &Environment,
) -> miette::Result<Vec<(String, String, String)>> {
    let name = env.stack_name();
    if cloudformation::describe(cfn, &name).await?.is_none() {
        return Err(miette!(
            help = format!("deploy it with `deployer up --env {}`", env.name),
            "the stack {name} does not exist"
        ));
    }
    Ok(cloudformation::resources(cfn, &name).await?)
}

/// The text view of the local data plane (`crate::local_plane`), one line per part.
fn local_text(local: &Value, out: &mut String) {
    use std::fmt::Write as _;
    if let Some(e) = local["error"].as_str() {
        let _ = writeln!(out, "local data plane: unreadable state ({e})");
        return;
    }
    if local["running"] != json!(true) {
        let _ = writeln!(
            out,
            "local data plane: NOT running (scripts/local-up starts it; its log is dataplane.log in the state directory)"
        );
        return;
    }
    let _ = writeln!(
        out,
        "local data plane ({} backend): S3 on {}, admin on {}",
        s(&local["backend"]),
        s(&local["s3_endpoint"]),
        s(&local["admin_url"])
    );
    let router = &local["router"];
    if let Some(e) = router["error"].as_str() {
        let _ = writeln!(out, "  router: not answering ({e})");
    } else {
        let health = &router["health"];
        let _ = writeln!(
            out,
            "  router: {} ({})",
            if health["status"] == 200 {
                "healthy"
            } else {
                "UNHEALTHY"
            },
            s(&health["body"])
        );
        for t in router["targets"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "    {:<18} {:<16} {:<8} {:<24} {} operation(s), {} error(s)",
                s(&t["availability_zone"]),
                s(&t["address"]),
                s(&t["state"]),
                s(&t["mount_target_id"]),
                s(&t["operations"]),
                s(&t["errors"])
            );
        }
    }
    for n in local["nfs_servers"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  NFS server for {:<24} {:<20} {}",
            s(&n["mount_target_id"]),
            s(&n["address"]),
            if n["pid"].is_null() {
                "STOPPED".to_string()
            } else {
                format!("running (pid {})", s(&n["pid"]))
            }
        );
    }
    let scaler = &local["scaler"];
    let result = &scaler["result"];
    let line = if let Some(why) = scaler["skipped"].as_str() {
        format!("not run: {why}")
    } else if scaler["last_run"].is_null() {
        "not run yet".to_string()
    } else if !result["error"].is_null() {
        format!(
            "last run {}: FAILED ({})",
            s(&scaler["last_run"]),
            s(&result["error"])
        )
    } else {
        format!(
            "last run {}: {} file(s), threshold {}{}",
            s(&scaler["last_run"]),
            s(&result["file_count"]),
            s(&result["threshold"]),
            match result["new_mount_target_id"].as_str() {
                Some(id) => format!(", created {id}"),
                None if result["threshold_exceeded"] == true => ", exceeded".to_string(),
                None => String::new(),
            }
        )
    };
    let _ = writeln!(
        out,
        "  scaler (every {} s): {line}",
        s(&scaler["period_seconds"])
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alias_line_shows_a_canary_under_way() {
        let status = json!({
            "environment": "prod",
            "stack": {"name": "s", "status": "UPDATE_IN_PROGRESS", "termination_protection": true},
            "scaler": {"function": "s-scaler", "reserved_concurrency": 1, "stopped": false,
                "alias": {"name": "live", "version": "7", "weights": [{"version": "8", "weight": 0.5}]}},
        });
        let shown = text(&status);
        assert!(
            shown.contains(
                "  alias live: version 7, version 8 takes 50 % of the runs (a canary under way)\n"
            ),
            "{shown}"
        );
    }
}
