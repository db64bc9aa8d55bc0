//! `efs-router serve` as a child process: started with the given flags and environment,
//! waited for until it serves (or exits), stopped with SIGTERM or killed on drop. It
//! listens on free loopback ports (S3 and admin) and accepts the key pair
//! [`S3_ACCESS_KEY_ID`] / [`S3_SECRET_ACCESS_KEY`] unless the test's environment sets
//! another.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{HarnessError, cargo_bin, free_port, io, wait_ready};

/// The key pair test routers accept.
pub const S3_ACCESS_KEY_ID: &str = "AKIDEFSROUTERTEST";
pub const S3_SECRET_ACCESS_KEY: &str = "router-test-secret-not-for-production";

#[derive(Debug)]
pub struct RouterProcess {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// How a router run that was expected to fail ended.
#[derive(Debug)]
pub struct Exited {
    pub status: ExitStatus,
    pub log: String,
    pub elapsed: Duration,
}

/// A prepared command, its S3 and admin addresses, its log file and the directory
/// holding the log.
type Spawn = (Command, SocketAddr, SocketAddr, PathBuf, tempfile::TempDir);

impl RouterProcess {
    /// A `serve` command on a free port with `args`, a clean environment plus `env`.
    fn command(args: &[String], env: &[(String, String)]) -> Result<Spawn, HarnessError> {
        Self::command_for(
            &cargo_bin("efs-autoscaler-runtime", "efs-router")?,
            args,
            env,
        )
    }

    fn command_for(
        bin: &std::path::Path,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<Spawn, HarnessError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let dir = tempfile::tempdir().map_err(io("creating a directory for the router log"))?;
        let log = dir.path().join("router.log");
        let out = std::fs::File::create(&log).map_err(io("creating the router log"))?;
        let err = out.try_clone().map_err(io("opening the router log"))?;
        let mut cmd = Command::new(bin);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("ROUTER_ACCESS_KEY_ID", S3_ACCESS_KEY_ID)
            .env("ROUTER_SECRET_ACCESS_KEY", S3_SECRET_ACCESS_KEY)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--admin-listen")
            .arg(admin.to_string())
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        Ok((cmd, addr, admin, log, dir))
    }

    /// Starts the workspace's router (built on demand) and waits until it serves.
    pub fn start(args: &[String], env: &[(String, String)]) -> Result<Self, HarnessError> {
        Self::spawn(Self::command(args, env)?)
    }

    /// Starts a given router binary (a benchmark's optimised build).
    pub fn start_binary(
        bin: &std::path::Path,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<Self, HarnessError> {
        Self::spawn(Self::command_for(bin, args, env)?)
    }

    fn spawn((mut cmd, addr, admin, log, dir): Spawn) -> Result<Self, HarnessError> {
        let child = cmd.spawn().map_err(io("starting efs-router"))?;
        let mut router = RouterProcess {
            child,
            addr,
            admin,
            log,
            _dir: dir,
        };
        wait_ready("efs-router", &mut router.child, &router.log, || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
        })?;
        Ok(router)
    }

    /// Runs a router that is expected to exit on its own; returns how it ended.
    pub fn run_to_exit(args: &[String], env: &[(String, String)]) -> Result<Exited, HarnessError> {
        let (mut cmd, _, _, log, _dir) = Self::command(args, env)?;
        let started = Instant::now();
        let status = cmd.status().map_err(io("running efs-router"))?;
        Ok(Exited {
            status,
            log: std::fs::read_to_string(&log).unwrap_or_default(),
            elapsed: started.elapsed(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A URL on the S3 listener (`/bucket/key`, path style).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A URL on the admin listener (`/health`, `/targets`, `/metrics`).
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// The S3 endpoint, for SDKs and tools.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM (ECS stopping the task).
    pub fn send_term(&self) -> Result<(), HarnessError> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map_err(io("sending SIGTERM to efs-router"))?;
        if status.success() {
            Ok(())
        } else {
            Err(HarnessError::Requirement(format!(
                "kill -TERM {pid} failed: {status}"
            )))
        }
    }

    /// Waits for the process to exit; returns how, and its whole log.
    pub fn wait(mut self) -> Result<(ExitStatus, String), HarnessError> {
        let status = self.child.wait().map_err(io("waiting for efs-router"))?;
        Ok((status, self.log()))
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(self) -> Result<(ExitStatus, String), HarnessError> {
        self.send_term()?;
        self.wait()
    }
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An AWS SDK S3 client for a router at `endpoint`, signing with the test key pair:
/// path-style addressing, as SDKs use for an IP address.
pub fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    s3_client_with(endpoint, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY)
}

/// As [`s3_client`], signing with another key pair.
pub fn s3_client_with(endpoint: &str, id: &str, secret: &str) -> aws_sdk_s3::Client {
    let credentials =
        aws_sdk_s3::config::Credentials::new(id, secret, None, None, "efs-router-test");
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(credentials)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}
