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
