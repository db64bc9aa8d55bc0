//! `efs-scaler` against the `local` stack in a moto server: the real binary, configured
//! by the environment variables the template gave its Lambda function, acting on moto's
//! EFS, SSM and ECS. Then the same binary in Lambda mode, driven through a local
//! stand-in for the Lambda Runtime API.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::{FakeRuntimeApi, MotoServer, cargo_bin};
use runtime::model::MountTargetList;
use serde_json::Value;

use crate::local_stack::{LocalStack, deploy_local, mount_target_zones};

/// The function's environment as the template set it, with the counted directory and
/// the threshold replaced for the test.
async fn function_env(local: &LocalStack, dir: &Path, threshold: u64) -> BTreeMap<String, String> {
    let lambda = aws_sdk_lambda::Client::new(&local.sdk);
    let function = lambda
        .get_function_configuration()
        .function_name(local.output("ScalerFunctionName"))
        .send()
        .await
        .expect("get function configuration");
    let mut vars: BTreeMap<String, String> = function
        .environment()
        .and_then(|e| e.variables())
        .expect("environment variables")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.insert("TARGET_DIRECTORY".into(), dir.display().to_string());
    vars.insert("FILE_COUNT_THRESHOLD".into(), threshold.to_string());
    vars
}

fn scaler_command(
    moto: &MotoServer,
    local: &LocalStack,
    vars: &BTreeMap<String, String>,
) -> Command {
    let bin = cargo_bin("efs-autoscaler-runtime", "efs-scaler").unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .envs(vars)
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_REGION", &local.env.config.region)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("RUST_LOG", "warn");
    cmd
}

/// Runs `efs-scaler run-once`; returns the exit code and the result JSON.
fn run_once(
    moto: &MotoServer,
    local: &LocalStack,
    vars: &BTreeMap<String, String>,
    args: &[&str],
) -> (i32, Value) {
    let out = scaler_command(moto, local, vars)
        .arg("run-once")
        .args(args)
        .output()
        .expect("run efs-scaler");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON result ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), result)
}

fn files(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..n {
        std::fs::write(dir.path().join(format!("f{i}")), b"").unwrap();
    }
    dir
}

struct Observed {
    zones: Vec<String>,
    parameter: Option<(String, i64)>,
    deployments: Vec<String>,
}

async fn observe(local: &LocalStack) -> Observed {
    let efs = aws_sdk_efs::Client::new(&local.sdk);
    let zones = mount_target_zones(&efs, &local.output("FileSystemId")).await;
    let ssm = aws_sdk_ssm::Client::new(&local.sdk);
    let parameter = match ssm
        .get_parameter()
        .name(local.output("MountTargetParameterName"))
        .send()
        .await
    {
        Ok(out) => out
            .parameter()
            .map(|p| (p.value().unwrap_or_default().to_string(), p.version())),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_parameter_not_found()) =>
        {
            None
        }
        Err(e) => panic!("get parameter: {e:?}"),
    };
    let ecs = aws_sdk_ecs::Client::new(&local.sdk);
    let services = ecs
        .describe_services()
        .cluster(local.output("ClusterName"))
        .services(local.output("ServiceName"))
        .send()
        .await
        .expect("describe services");
    let deployments = services.services()[0]
        .deployments()
        .iter()
        .filter_map(|d| d.id().map(str::to_string))
        .collect();
    Observed {
        zones,
        parameter,
        deployments,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaler_scales_out_once_then_holds() {
    let moto = MotoServer::start().unwrap_or_else(|e| panic!("{e}"));
    let local = deploy_local(&moto).await;
    let all_zones: Vec<String> = local
        .env
        .config
        .availability_zones
        .iter()
        .map(|z| z.name.clone())
        .collect();
    let initial = local.env.initial_mount_target_azs();
    assert_eq!(initial.len(), 2);
    assert_eq!(all_zones.len(), 3);

    let dir = files(30);
    let vars = function_env(&local, dir.path(), 10).await;
    let start = observe(&local).await;
    assert_eq!(start.zones, initial);
    assert_eq!(
        start.parameter, None,
        "the stack does not own the parameter"
    );

    // A dry run decides and changes nothing.
    let (code, r) = run_once(&moto, &local, &vars, &["--dry-run"]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["threshold_exceeded"], true);
    assert_eq!(r["new_mount_target_created"], false);
    let after_dry = observe(&local).await;
    assert_eq!(after_dry.zones, initial);
    assert_eq!(after_dry.parameter, None);
    assert_eq!(after_dry.deployments, start.deployments);

    // Over the threshold: one mount target in the free zone, the list, a redeploy.
    let (code, r) = run_once(&moto, &local, &vars, &[]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["error"], Value::Null, "{r}");
    assert_eq!(r["threshold_exceeded"], true);
    assert_eq!(r["new_mount_target_created"], true, "{r}");
    assert_eq!(r["parameter_updated"], true);
    assert_eq!(r["deployment_triggered"], true);
    let scaled = observe(&local).await;
    assert_eq!(scaled.zones, all_zones);
    let (value, version) = scaled.parameter.clone().expect("list published");
    let list = MountTargetList::parse(&value).expect("a valid list");
    assert_eq!(list.zones().collect::<Vec<_>>(), all_zones);
    assert!(
        list.targets()
            .iter()
            .any(|t| Some(t.mount_target_id.as_str()) == r["new_mount_target_id"].as_str())
    );
    assert_ne!(scaled.deployments, start.deployments, "a new deployment");

    // The next pass changes nothing; with every zone used it warns and succeeds.
    let (code, r) = run_once(&moto, &local, &vars, &[]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["new_mount_target_created"], false, "{r}");
    assert_eq!(r["parameter_updated"], false);
    assert_eq!(r["deployment_triggered"], false);
    assert!(
        r["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("maximum")),
        "{r}"
    );
    let held = observe(&local).await;
    assert_eq!(held.zones, all_zones);
    assert_eq!(held.parameter, Some((value, version)));
    assert_eq!(held.deployments, scaled.deployments);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaler_lambda_mode_serves_an_event_and_reports_bad_configuration() {
    let moto = MotoServer::start().unwrap_or_else(|e| panic!("{e}"));
    let local = deploy_local(&moto).await;
    let dir = files(3);
    let vars = function_env(&local, dir.path(), 10).await;
    let lambda_vars = |api: &FakeRuntimeApi, cmd: &mut Command| {
        cmd.env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env(
                "AWS_LAMBDA_FUNCTION_NAME",
                local.output("ScalerFunctionName"),
            )
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            // Lambda's application log level, as the function's logging configuration sets it.
            .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
    };

    // One scheduled event in, the result posted back.
    let api = FakeRuntimeApi::start().await.unwrap();
    let mut cmd = scaler_command(&moto, &local, &vars);
    lambda_vars(&api, &mut cmd);
    let mut child = cmd.spawn().expect("start efs-scaler");
    api.push_event(
        "req-1",
        &serde_json::json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}),
    );
    let posted = api.wait_post(Duration::from_secs(60)).await;
    child.kill().ok();
    let output = child.wait_with_output().expect("efs-scaler output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let posted = posted.unwrap_or_else(|| {
        panic!(
            "nothing posted; stdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert_eq!(posted.kind, "response", "{posted:?}");
    assert_eq!(posted.request_id.as_deref(), Some("req-1"));
    let result: Value = serde_json::from_str(&posted.body).unwrap();
    assert_eq!(result["file_count"], 3);
    assert_eq!(result["threshold_exceeded"], false);
    assert_eq!(result["error"], Value::Null);
    // The published list (the parameter was missing) and the redeploy that follows it.
    assert_eq!(result["parameter_updated"], true);
    // The log: one structured result line and one embedded-metric line, as JSON.
    let lines: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "scaler run finished" && l["result"]["file_count"] == 3),
        "{stdout}"
    );
    // Every line of the run carries Lambda's request id, the run's id in its result too.
    assert_eq!(result["run_id"], "req-1");
    let run_lines: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("runtime::scaler"))
        })
        .collect();
    assert!(
        run_lines.len() >= 4 && run_lines.iter().all(|l| l["run_id"] == "req-1"),
        "{stdout}"
    );
    assert!(
        lines.iter().any(
            |l| l["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "EfsAutoscaler"
                && l["FileCount"] == 3
        ),
        "{stdout}"
    );

    // A failed run is a failed invocation (Lambda's Errors metric, and so the alarm, see
    // it): the file system's directory is gone.
    let api = FakeRuntimeApi::start().await.unwrap();
    let mut gone = vars.clone();
    gone.insert(
        "TARGET_DIRECTORY".into(),
        dir.path().join("gone").display().to_string(),
    );
    let mut cmd = scaler_command(&moto, &local, &gone);
    lambda_vars(&api, &mut cmd);
    let mut child = cmd.spawn().expect("start efs-scaler");
    api.push_event(
        "req-2",
        &serde_json::json!({"source": "aws.events", "detail": {}}),
    );
    let posted = api.wait_post(Duration::from_secs(60)).await;
    child.kill().ok();
    let output = child.wait_with_output().expect("efs-scaler output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let posted = posted.unwrap_or_else(|| panic!("nothing posted; stdout: {stdout}"));
    assert_eq!(posted.kind, "error", "{posted:?}");
    assert_eq!(posted.request_id.as_deref(), Some("req-2"));
    let error: Value = serde_json::from_str(&posted.body).unwrap();
    assert_eq!(error["errorType"], "Scaler.efs_access", "{posted:?}");
    let failed: Value = serde_json::from_str(error["errorMessage"].as_str().unwrap()).unwrap();
    assert_eq!(failed["run_id"], "req-2");
    assert!(
        failed["error"].as_str().unwrap().contains("gone"),
        "{failed}"
    );
    assert!(
        stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|l| {
                l["level"] == "ERROR" && l["run_id"] == "req-2" && l["kind"] == "efs_access"
            }),
        "{stdout}"
    );

    // A bad variable: reported to /init/error, by name, and the process exits 1.
    let api = FakeRuntimeApi::start().await.unwrap();
    let mut bad = vars.clone();
    bad.insert("FILE_COUNT_THRESHOLD".into(), "many".into());
    let mut cmd = scaler_command(&moto, &local, &bad);
    lambda_vars(&api, &mut cmd);
    let child = cmd.spawn().expect("start efs-scaler");
    let posted = api
        .wait_post(Duration::from_secs(30))
        .await
        .expect("an init error");
    assert_eq!(posted.kind, "init-error");
    assert_eq!(posted.error_type.as_deref(), Some("Scaler.Configuration"));
    assert!(
        posted.body.contains("FILE_COUNT_THRESHOLD"),
        "{}",
        posted.body
    );
    let output = child.wait_with_output().expect("efs-scaler exits");
    assert_eq!(output.status.code(), Some(1));
}
