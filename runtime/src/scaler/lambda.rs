//! Lambda mode: the scaler as a `provided.al2023` function behind the Runtime API.
//!
//! Configuration is validated before the runtime loop starts; a bad variable is posted
//! to `/runtime/init/error` (Lambda shows it as the init failure, and every invocation
//! fails fast with it) rather than surfacing as a panic or a half-run pass.

use std::io::Write;
use std::time::SystemTime;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use lambda_runtime_api_client::body::Body;
use serde_json::json;

use super::config::ScalerConfig;
use super::deadline::Deadline;
use super::metrics;
use super::pass::{Clients, RunOptions, run};
use super::result::{FailureKind, RunResult, rfc3339};

/// Variables the Lambda service sets; without them this is not a Lambda environment.
const LAMBDA_VARS: [&str; 4] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

/// Lambda mode is chosen by the Runtime API address, which only Lambda (or its
/// emulator) sets.
pub fn is_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// Whether the invocation event asks for a dry run: EventBridge's scheduled event (no
/// `dry_run`, a real pass) or a manual `{"dry_run": true}`. Anything else under
/// `dry_run` (`"true"`, `1`) is refused: read as false, a request for a dry run would
/// have run a real pass that creates a mount target.
fn dry_run(event: &serde_json::Value) -> Result<bool, Diagnostic> {
    match event.get("dry_run") {
        None | Some(serde_json::Value::Null) => Ok(false),
        Some(serde_json::Value::Bool(b)) => Ok(*b),
        Some(other) => Err(Diagnostic {
            error_type: "Scaler.BadEvent".to_string(),
            error_message: format!(
                "the event's dry_run is {other}; it must be true or false (JSON booleans, not strings); nothing was done"
            ),
        }),
    }
}

/// A failed pass: the invocation fails (so Lambda's `Errors` metric and the alarm see
/// it) and its message is the full result.
#[derive(Debug)]
struct Failed(RunResult);

impl From<Failed> for Diagnostic {
    fn from(f: Failed) -> Self {
        let kind = f.0.error_kind.map_or("unknown", FailureKind::as_str);
        Diagnostic {
            error_type: format!("Scaler.{kind}"),
            error_message: f.0.to_json(),
        }
    }
}

/// Writes one line to stdout, which Lambda sends to CloudWatch Logs. A closed stdout
/// must not fail the run.
pub fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The structured log line of a finished run.
pub fn result_log_line(result: &RunResult) -> String {
    json!({
        "timestamp": rfc3339(SystemTime::now()),
        "level": if result.is_success() { "INFO" } else { "ERROR" },
        "message": if result.is_success() { "scaler run finished" } else { "scaler run failed" },
        "result": result,
    })
    .to_string()
}

/// Runs the Lambda loop until the runtime stops it. Returns an error message for the
/// process to print and exit 1 with.
pub async fn serve() -> Result<(), String> {
    let missing: Vec<&str> = LAMBDA_VARS
        .iter()
        .copied()
        .filter(|v| std::env::var_os(v).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "AWS_LAMBDA_RUNTIME_API is set but {} is not: not a Lambda environment. Unset AWS_LAMBDA_RUNTIME_API to use the command line.",
            missing.join(", ")
        ));
    }
    let config = match ScalerConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            let message = e.to_string();
            post_init_error("Scaler.Configuration", &message).await;
            return Err(message);
        }
    };
    let clients = Clients::new(&crate::aws::sdk_config().await);
    let config = &config;
    let clients = &clients;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let dry_run = dry_run(&event.payload)?;
            let options = RunOptions::new(dry_run, Deadline::from_lambda(event.context.deadline))
                .with_run_id(event.context.request_id.clone());
            let result = run(config, clients, options).await;
            emit(&result_log_line(&result));
            emit(&metrics::emf_line(
                &result,
                &config.file_system_id,
                SystemTime::now(),
            ));
            if result.is_success() {
                Ok(result)
            } else {
                Err(Diagnostic::from(Failed(result)))
            }
        },
    ))
    .await
    .map_err(|e| format!("the Lambda runtime stopped: {e}"))
}

/// Tells Lambda that initialisation failed, and why.
async fn post_init_error(error_type: &str, message: &str) {
    let Some(api) = std::env::var("AWS_LAMBDA_RUNTIME_API").ok() else {
        return;
    };
    let posted = async {
        let base: http::Uri = format!("http://{api}").parse()?;
        let client = lambda_runtime_api_client::Client::builder()
            .with_endpoint(base)
            .build()?;
        let body = json!({ "errorType": error_type, "errorMessage": message }).to_string();
        let request = lambda_runtime_api_client::build_request()
            .method(http::Method::POST)
            .uri("/2018-06-01/runtime/init/error")
            .header("lambda-runtime-function-error-type", error_type)
            .body(Body::from(body))?;
        let response = client.call(request).await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(response.status())
    };
    match posted.await {
        Ok(status) if status.is_success() => {}
        Ok(status) => eprintln!("the Runtime API answered {status} to the init error"),
        Err(e) => eprintln!("could not report the init error to the Runtime API: {e}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_a_json_boolean_asks_for_a_dry_run() {
        assert!(!dry_run(&json!({"source": "aws.events", "detail": {}})).unwrap());
        assert!(!dry_run(&serde_json::Value::Null).unwrap());
        assert!(dry_run(&json!({"dry_run": true})).unwrap());
        assert!(!dry_run(&json!({"dry_run": false})).unwrap());
        for bad in [
            json!({"dry_run": "true"}),
            json!({"dry_run": 1}),
            json!({"dry_run": "false"}),
        ] {
            let e = dry_run(&bad).unwrap_err();
            assert_eq!(e.error_type, "Scaler.BadEvent");
            assert!(
                e.error_message.contains("nothing was done"),
                "{}",
                e.error_message
            );
        }
    }
}
