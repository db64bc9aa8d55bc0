//! CloudWatch embedded metric format (EMF): a JSON log line that CloudWatch Logs turns
//! into metrics, so neither the scaler (Lambda's log stream) nor the router (the task's
//! `awslogs` driver) needs PutMetricData, an agent or the permission.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

/// One namespace for the environment's metrics, the scaler's and the router's.
pub const NAMESPACE: &str = "EfsAutoscaler";

/// One EMF line at `now`: `fields` (a JSON object of dimension and metric values, and any
/// other properties) under a directive naming `dimensions` and each of `metrics` (name,
/// unit).
/// A metric whose value is null is left out of both, since a zero would drag
/// percentiles and averages down.
pub fn line(
    now: SystemTime,
    dimensions: &[&str],
    metrics: &[(&str, &str)],
    fields: Value,
) -> String {
    let Value::Object(mut fields) = fields else {
        unreachable!("EMF fields are always a json!({{...}}) object");
    };
    let timestamp = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let mut declared = Vec::with_capacity(metrics.len());
    for (name, unit) in metrics {
        if fields.get(*name).is_some_and(|v| !v.is_null()) {
            declared.push(json!({ "Name": name, "Unit": unit }));
        } else {
            fields.remove(*name);
        }
    }
    let mut out = Map::with_capacity(fields.len() + 1);
    out.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions],
                "Metrics": declared,
            }],
        }),
    );
    out.extend(fields);
    Value::Object(out).to_string()
}
