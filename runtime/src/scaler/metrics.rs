//! CloudWatch metrics as embedded-metric-format log lines: Lambda's log stream turns them
//! into metrics without a PutMetricData call (no extra permission, no extra latency).

use std::time::SystemTime;

use serde_json::json;

use super::result::RunResult;
use crate::emf;

/// One EMF line for the run, dimensioned by file system.
pub fn emf_line(result: &RunResult, file_system_id: &str, now: SystemTime) -> String {
    let available = result
        .mount_targets_after
        .iter()
        .filter(|t| t.state == "available")
        .count();
    let fields = json!({
        "FileSystemId": file_system_id,
        "FileCount": result.file_count,
        // The design's threshold-exceeded count: its Sum is the runs that found too many
        // files, whether or not a zone was left to add.
        "ThresholdExceeded": u8::from(result.threshold_exceeded),
        "MountTargets": available,
        "ScaleOuts": u8::from(result.new_mount_target_created),
        "Redeploys": u8::from(result.deployment_triggered),
        "Errors": u8::from(!result.is_success()),
        "RunDuration": result.duration_ms,
    });
    emf::line(
        now,
        &["FileSystemId"],
        &[
            ("FileCount", "Count"),
            ("ThresholdExceeded", "Count"),
            ("MountTargets", "Count"),
            ("ScaleOuts", "Count"),
            ("Redeploys", "Count"),
            ("Errors", "Count"),
            ("RunDuration", "Milliseconds"),
        ],
        fields,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::scaler::policy::Policy;
    use crate::scaler::result::TargetSummary;
    use std::time::UNIX_EPOCH;

    #[test]
    fn every_declared_metric_has_a_value() {
        let mut r = RunResult::new("run-1", UNIX_EPOCH, 10, Policy::PerTarget, false);
        r.file_count = 42;
        r.threshold_exceeded = true;
        r.new_mount_target_created = true;
        r.mount_targets_after = vec![TargetSummary {
            mount_target_id: "fsmt-00000001".into(),
            availability_zone: "ap-northeast-1a".into(),
            ip_address: Some("10.0.1.5".into()),
            state: "available".into(),
        }];
        let line: serde_json::Value =
            serde_json::from_str(&emf_line(&r, "fs-00000001", UNIX_EPOCH)).unwrap();
        let declared = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap();
        for m in declared {
            let name = m["Name"].as_str().unwrap();
            assert!(line[name].is_number(), "{name} has no value: {line}");
        }
        assert_eq!(line["FileCount"], 42);
        assert_eq!(line["MountTargets"], 1);
        assert_eq!(line["ScaleOuts"], 1);
        assert_eq!(line["ThresholdExceeded"], 1);
        assert_eq!(line["Errors"], 0);
        assert_eq!(line["FileSystemId"], "fs-00000001");
    }
}
