//! The test harness: starts real local components for the end-to-end tests.
//!
//! A moto server (the local AWS endpoint) on a free loopback port, a stand-in for the
//! Lambda Runtime API, nfs-ganesha NFS servers on loopback addresses, the router as a
//! child process, a container registry, workspace binaries built on demand, and an AWS
//! endpoint answering with scripted responses for what moto cannot show. A component
//! that is missing is an error naming
//! the command that installs it; tests never skip silently.

pub mod aws_replay;
mod cargo_bin;
mod ganesha;
mod lambda_api;
pub mod measure;
mod registry;
mod router;
pub mod s3_clients;
mod tls_front;

pub use aws_replay::{AwsReplay, Reply};
pub use cargo_bin::cargo_bin;
pub use ganesha::Ganesha;
pub use lambda_api::{FakeRuntimeApi, Posted};
pub use registry::Registry;
pub use router::{
    Exited, RouterProcess, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, s3_client, s3_client_with,
};
pub use s3_clients::S3Clients;
pub use tls_front::{ServerCert, TestCa, TlsFront};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a component may take to become ready before the harness gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(
        "`{tool}` not found on PATH or in {venv}; run scripts/setup (the README's test command does)"
    )]
    Missing { tool: &'static str, venv: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what} did not become ready within {secs} s; its log:\n{log}")]
    NotReady {
        what: String,
        secs: u64,
        log: String,
    },
    #[error("{what} exited early ({status}); its log:\n{log}")]
    Exited {
        what: String,
        status: String,
        log: String,
    },
    #[error("{what} failed:\n{log}")]
    Build { what: String, log: String },
    #[error("{0}")]
    Requirement(String),
    #[error("moto answered {status} to {path}")]
    Http { path: String, status: String },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let what = what.into();
    move |source| HarnessError::Io { what, source }
}

/// The project's own venv first (its pinned version), then PATH.
pub fn find_tool(tool: &'static str) -> Result<PathBuf, HarnessError> {
    let venv = deployer::lint::project_venv();
    let candidates = std::iter::once(venv.join("bin").join(tool)).chain(
        std::env::var_os("PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join(tool))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    );
    for candidate in candidates {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(HarnessError::Missing {
        tool,
        venv: venv.display().to_string(),
    })
}

/// A free port on 127.0.0.1. The listener is dropped before the server binds it; with the
/// kernel's ephemeral allocation a collision in that window is very unlikely, and a server
/// that fails to bind shows up as "exited early" with its log.
pub fn free_port() -> Result<u16, HarnessError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("binding a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(io("reading the free port"))?
        .port())
}

/// A moto server on a free loopback port, stopped when dropped.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl MotoServer {
    pub fn start() -> Result<Self, HarnessError> {
        // The pinned moto, through scripts/moto-server (moto plus the Lambda alias and
        // version resources its CloudFormation lacks), run by the python moto is
        // installed for.
        let moto = find_tool("moto_server")?;
        let exe = moto.with_file_name("python3");
        let launcher = repo_root().join("scripts/moto-server");
        let dir = tempfile::tempdir().map_err(io("creating a directory for the moto log"))?;
        let log = dir.path().join("moto.log");
        let port = free_port()?;
        let log_file = std::fs::File::create(&log).map_err(io("creating the moto log"))?;
        let log_err = log_file.try_clone().map_err(io("opening the moto log"))?;
        let child = Command::new(&exe)
            .arg(&launcher)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(io(format!("starting {}", exe.display())))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut server = MotoServer {
            child,
            addr,
            log,
            _dir: dir,
        };
        server.wait_ready()?;
        // Lambda invocations run in-process instead of in Docker, which is not available here.
        server.post("/moto-api/config", r#"{"lambda":{"use_docker":false}}"#)?;
        Ok(server)
    }

    /// Ready when moto's own API answers 200.
    fn wait_ready(&mut self) -> Result<(), HarnessError> {
        let addr = self.addr;
        wait_ready("moto_server", &mut self.child, &self.log, || {
            control_request(addr, "GET", "/moto-api/data.json", "")
                .is_ok_and(|(status, _)| status.contains(" 200"))
        })
    }

    fn post(&self, path: &str, body: &str) -> Result<String, HarnessError> {
        let (status, body) = control_request(self.addr, "POST", path, body)?;
        if !(status.contains(" 200") || status.contains(" 201")) {
            return Err(HarnessError::Http {
                path: path.to_string(),
                status,
            });
        }
        Ok(body)
    }

    /// Clears every resource, for tests that share one server.
    pub fn reset(&self) -> Result<(), HarnessError> {
        self.post("/moto-api/reset", "").map(|_| ())
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SDK configuration pointing at this server with throwaway credentials.
    pub async fn sdk_config(&self, region: &str) -> aws_config::SdkConfig {
        let credentials =
            aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "moto-harness");
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(aws_config::Region::new(region.to_string()))
            .credentials_provider(credentials)
            .load()
            .await
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 request to moto's own control API (not an AWS API).
fn control_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(String, String), HarnessError> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(io("connecting to moto"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io("configuring the moto connection"))?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        addr,
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(io("writing to moto"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(io("reading from moto"))?;
    let (head, rest) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default().to_string();
    Ok((status, rest.to_string()))
}

/// Waits until `ready` holds, failing with the component's log when its process exits
/// first or READY_TIMEOUT passes.
pub(crate) fn wait_ready(
    what: &str,
    child: &mut Child,
    log: &Path,
    mut ready: impl FnMut() -> bool,
) -> Result<(), HarnessError> {
    let started = Instant::now();
    loop {
        if ready() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(HarnessError::Exited {
                what: what.to_string(),
                status: status.to_string(),
                log: read_log(log),
            });
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(HarnessError::NotReady {
                what: what.to_string(),
                secs: READY_TIMEOUT.as_secs(),
                log: read_log(log),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("(no log at {}: {e})", path.display()))
}

/// The repository root (for environments/ and templates/).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_names_the_install_command() {
        let e = find_tool("no-such-tool-efs-autoscaler").unwrap_err();
        let message = e.to_string();
        assert!(
            message.contains("no-such-tool-efs-autoscaler") && message.contains("scripts/setup"),
            "{message}"
        );
    }

    #[test]
    fn free_ports_are_bindable() {
        let port = free_port().unwrap();
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
    }
}
