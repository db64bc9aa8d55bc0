//! An OCI registry for the packaging tests: Debian's `docker-registry` (the CNCF
//! distribution server) on a free loopback port, plain HTTP, storage in a temporary
//! directory; optionally behind htpasswd, to test refused credentials. Stopped when
//! dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{HarnessError, find_tool, free_port, io, read_log, wait_ready};

#[derive(Debug)]
pub struct Registry {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl Registry {
    /// A registry that accepts anyone.
    pub fn start() -> Result<Self, HarnessError> {
        Self::launch(None)
    }

    /// A registry that accepts only `user` with `password` (bcrypt htpasswd, the only
    /// kind it supports).
    pub fn start_with_login(user: &str, password: &str) -> Result<Self, HarnessError> {
        Self::launch(Some((user, password)))
    }

    fn launch(login: Option<(&str, &str)>) -> Result<Self, HarnessError> {
        let binary = find_tool("docker-registry")?;
        let dir = tempfile::Builder::new()
            .prefix("efsa-registry-")
            .tempdir()
            .map_err(io("creating the registry directory"))?;
        let port = free_port()?;
        let mut auth = String::new();
        if let Some((user, password)) = login {
            let htpasswd = find_tool("htpasswd")?;
            let file = dir.path().join("htpasswd");
            let status = Command::new(htpasswd)
                .arg("-Bbc")
                .arg(&file)
                .args([user, password])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(io("running htpasswd"))?;
            if !status.success() {
                return Err(HarnessError::Requirement(format!(
                    "htpasswd failed ({status})"
                )));
            }
            auth = format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                file.display()
            );
        }
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
                dir.path().join("data").display()
            ),
        )
        .map_err(io("writing the registry configuration"))?;
        let log = dir.path().join("registry.log");
        let out = std::fs::File::create(&log).map_err(io("creating the registry log"))?;
        let err = out.try_clone().map_err(io("creating the registry log"))?;
        let mut child = Command::new(binary)
            .arg("serve")
            .arg(&config)
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io("starting docker-registry"))?;
        wait_ready("docker-registry", &mut child, &log, || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        })?;
        Ok(Registry { dir, child, port })
    }

    /// `127.0.0.1:PORT`, as image references name a registry.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    pub fn log(&self) -> String {
        read_log(&self.log_path())
    }

    /// Blob uploads the registry completed so far (the final PUT of each upload
    /// session, from its access log). A push that finds every blob present adds none.
    pub fn blob_uploads(&self) -> usize {
        count_blob_uploads(&self.log())
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}

fn count_blob_uploads(log: &str) -> usize {
    log.lines()
        .filter(|l| {
            l.contains("\"PUT /v2/") && l.contains("/blobs/uploads/") && l.contains("\" 201 ")
        })
        .count()
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::count_blob_uploads;

    #[test]
    fn counts_completed_blob_uploads_only() {
        let log = r#"127.0.0.1 - - [23/Nov/2026:10:00:00 +0000] "HEAD /v2/p/router/blobs/sha256:aa HTTP/1.1" 404 157 "" "oci"
127.0.0.1 - - [23/Nov/2026:10:00:00 +0000] "POST /v2/p/router/blobs/uploads/ HTTP/1.1" 202 0 "" "oci"
127.0.0.1 - - [23/Nov/2026:10:00:00 +0000] "PUT /v2/p/router/blobs/uploads/0b1?digest=sha256%3Aaa HTTP/1.1" 201 0 "" "oci"
127.0.0.1 - - [23/Nov/2026:10:00:00 +0000] "PUT /v2/p/router/manifests/amd64-1 HTTP/1.1" 201 0 "" "oci""#;
        assert_eq!(count_blob_uploads(log), 1);
    }
}
