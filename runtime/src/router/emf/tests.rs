use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

use super::*;
use crate::router::pool::TargetSpec;
use crate::router::pool::tests::{dir_connector, fast};
use crate::router::routing::{Routing, RoutingMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_are_valid_emf_with_the_interval_values() {
    let base = tempfile::tempdir().unwrap();
    let mut specs = Vec::new();
    for (i, zone) in ["eu-west-1a", "eu-west-1b"].iter().enumerate() {
        let dir = base.path().join(format!("t{i}"));
        std::fs::create_dir(&dir).unwrap();
        specs.push(TargetSpec {
            key: format!("fsmt-{i}"),
            address: dir.to_string_lossy().into_owned(),
            availability_zone: Some(zone.to_string()),
            mount_target_id: Some(format!("fsmt-{i}")),
        });
    }
    let routing = Routing {
        mode: RoutingMode::LocalFirst,
        zone: Some("eu-west-1a".into()),
        local_share: 0.5,
    };
    let pool = Pool::start(specs, dir_connector(), fast(), routing)
        .await
        .unwrap();
    let targets = pool.targets();
    let mut emitter = Emitter::default();
    let first = emitter.lines(&pool, "fs-1", SystemTime::now());
    assert_eq!(first.len(), 3);

    // In the interval: 3 calls (one failed) and 1000 bytes on the remote target.
    let remote = targets.iter().find(|t| t.cross_az == Some(true)).unwrap();
    remote.stats.record(Duration::from_micros(400), false);
    remote.stats.record(Duration::from_millis(20), false);
    remote.stats.record(Duration::from_millis(30), true);
    remote.stats.add_read(600);
    remote.stats.add_written(400);
    let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let lines = emitter.lines(&pool, "fs-1", at);
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    for line in &parsed {
        // Every metric the directive declares is a root member with a number, and
        // every dimension is a root string member: what CloudWatch requires.
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(line["_aws"]["Timestamp"], 1_800_000_000_000u64);
        assert_eq!(directive["Namespace"], "EfsAutoscaler");
        for m in directive["Metrics"].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap();
            assert!(line[name].is_number(), "{name} in {line}");
        }
        for d in directive["Dimensions"][0].as_array().unwrap() {
            assert!(line[d.as_str().unwrap()].is_string(), "{d} in {line}");
        }
    }
    let router = &parsed[0];
    assert_eq!(router["HealthyTargets"], 2);
    assert_eq!(router["RouterOperations"], 3);
    assert_eq!(router["RouterErrors"], 1);
    assert_eq!(router["CrossAzBytes"], 1000);
    let remote_line = parsed
        .iter()
        .find(|l| l["MountTarget"] == remote.spec.key.as_str())
        .unwrap();
    assert_eq!(remote_line["TargetOperations"], 3);
    assert_eq!(remote_line["TargetBytes"], 1000);
    assert_eq!(remote_line["TargetLatencyP99"], 50.0);
    assert_eq!(remote_line["CrossAz"], true);
    // The idle local target has no latency to report: not declared, not zero.
    let local_line = parsed.iter().find(|l| l["CrossAz"] == false).unwrap();
    assert_eq!(local_line["TargetOperations"], 0);
    assert!(local_line.get("TargetLatencyP99").is_none());
    let names: Vec<&str> = local_line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"TargetLatencyP99"));

    // The next interval reports only what happened in it.
    let again: Vec<Value> = emitter
        .lines(&pool, "fs-1", at)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(again[0]["RouterOperations"], 0);
    assert_eq!(again[0]["CrossAzBytes"], 0);
    pool.close().await;
}
