//! Which availability zone the router runs in: `--az`, else the ECS task metadata
//! endpoint v4 (`$ECS_CONTAINER_METADATA_URI_V4/task`, field `AvailabilityZone`, given
//! by Fargate platform 1.4.0 and later). Unknown is allowed: routing then spreads over
//! every target and nothing is counted as crossing zones.

use std::time::Duration;

use super::health_check;

/// The variable ECS sets in every container of a task.
pub const METADATA_ENV: &str = "ECS_CONTAINER_METADATA_URI_V4";

/// Where the zone came from, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Learned {
    Flag(String),
    TaskMetadata(String),
    /// Not on ECS (no metadata variable) and no `--az`.
    Unknown,
    /// The endpoint was there but did not say; the reason.
    Failed(String),
}

impl Learned {
    pub fn zone(&self) -> Option<&str> {
        match self {
            Learned::Flag(z) | Learned::TaskMetadata(z) => Some(z),
            Learned::Unknown | Learned::Failed(_) => None,
        }
    }
}

pub async fn learn(flag: Option<&str>, metadata_uri: Option<&str>) -> Learned {
    if let Some(zone) = flag {
        return Learned::Flag(zone.to_string());
    }
    let Some(base) = metadata_uri else {
        return Learned::Unknown;
    };
    let url = format!("{}/task", base.trim_end_matches('/'));
    match health_check::get(&url, Duration::from_secs(2)).await {
        Ok((200, body)) => match zone_of(&body) {
            Some(zone) => Learned::TaskMetadata(zone),
            None => Learned::Failed(format!("{url}: no AvailabilityZone in the task metadata")),
        },
        Ok((status, _)) => Learned::Failed(format!("{url}: HTTP {status}")),
        Err(e) => Learned::Failed(e),
    }
}

fn zone_of(body: &[u8]) -> Option<String> {
    let task: serde_json::Value = serde_json::from_slice(body).ok()?;
    task.get("AvailabilityZone")?
        .as_str()
        .filter(|z| !z.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves one canned answer to every request on a free port.
    async fn serve(status: u16, body: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 2048];
                let n = s.read(&mut buf).await.unwrap_or(0);
                assert!(String::from_utf8_lossy(&buf[..n]).starts_with("GET /v4/abc/task "));
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        format!("http://{addr}/v4/abc")
    }

    #[tokio::test]
    async fn the_zone_comes_from_the_task_metadata() {
        // Trimmed from the documented v4 /task response.
        let uri = serve(200, r#"{"Cluster":"c","TaskARN":"arn:t","AvailabilityZone":"eu-west-1b","LaunchType":"FARGATE"}"#).await;
        assert_eq!(
            learn(None, Some(&uri)).await,
            Learned::TaskMetadata("eu-west-1b".into())
        );
        assert_eq!(
            learn(Some("eu-west-1a"), Some(&uri)).await,
            Learned::Flag("eu-west-1a".into())
        );
    }

    #[tokio::test]
    async fn an_endpoint_that_does_not_say_is_reported() {
        let uri = serve(200, r#"{"Cluster":"c"}"#).await;
        assert!(
            matches!(learn(None, Some(&uri)).await, Learned::Failed(e) if e.contains("no AvailabilityZone"))
        );
        let uri = serve(500, "").await;
        assert!(
            matches!(learn(None, Some(&uri)).await, Learned::Failed(e) if e.contains("HTTP 500"))
        );
        assert_eq!(learn(None, None).await, Learned::Unknown);
    }
}
