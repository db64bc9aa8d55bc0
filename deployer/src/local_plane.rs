//! The local data plane that `scripts/local-up` runs beside an environment deployed to
//! a local AWS endpoint (scripts/local-dataplane): the router, the NFS servers standing
//! in for the mount targets, and the scaler's last run. `status` shows it; in AWS
//! none of it exists on this machine and this module is not asked.
//!
//! Its supervisor keeps what runs in `STATE/dataplane.json`; the router's own view
//! (health, targets) is read live from its admin listener on loopback.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

/// The local environment's state directory, as the scripts choose it: `LOCAL_STATE_DIR`,
/// else `local/` under `EFSA_HOME`, else under `~/.cache/efs-autoscaler`.
pub fn state_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("LOCAL_STATE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let home = match std::env::var_os("EFSA_HOME") {
        Some(home) => PathBuf::from(home),
        None => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
            cache.join("efs-autoscaler")
        }
    };
    Some(home.join("local"))
}

/// What runs locally for `stack`, or `None` when no data plane was started for it.
pub async fn read(stack: &str) -> Option<Value> {
    let file = state_dir()?.join("dataplane.json");
    let text = std::fs::read_to_string(&file).ok()?;
    let mut state: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return Some(json!({ "error": format!("{}: {e}", file.display()) })),
    };
    if state["stack"] != stack {
        return None;
    }
    let running = state["pid"]
        .as_u64()
        .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
    state["running"] = json!(running);
    if running && let Some(admin) = state["admin_url"].as_str().map(str::to_string) {
        state["router"] = router(&admin).await;
    }
    Some(state)
}

/// The router's `/health` and `/targets`, or why they could not be read.
async fn router(admin: &str) -> Value {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
    {
        Ok(c) => c,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    let health = match client.get(format!("{admin}/health")).send().await {
        Ok(r) => {
            json!({ "status": r.status().as_u16(), "body": r.text().await.unwrap_or_default().trim() })
        }
        Err(e) => return json!({ "error": format!("{admin}/health: {e}") }),
    };
    let targets = match client.get(format!("{admin}/targets")).send().await {
        Ok(r) => r.json::<Value>().await.unwrap_or(Value::Null),
        Err(e) => json!({ "error": format!("{admin}/targets: {e}") }),
    };
    json!({ "health": health, "targets": targets["targets"] })
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

/// The text view, one line per part.
pub fn text(local: &Value, out: &mut String) {
    use std::fmt::Write;
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
