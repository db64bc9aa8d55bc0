//! The S3 clients applications use, run against a router: the AWS CLI and boto3 (pinned,
//! in `$EFSA_HOME/s3-venv`, see scripts/s3-client-versions.txt) and rclone (Debian). Each
//! is configured only through its usual settings (endpoint, key pair, region), as an
//! application would be.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{HarnessError, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY};

#[derive(Debug, Clone)]
pub struct S3Clients {
    venv_bin: PathBuf,
    rclone: PathBuf,
}

impl S3Clients {
    /// Finds the clients scripts/setup installs; a missing one is an error naming the fix.
    pub fn find() -> Result<Self, HarnessError> {
        let venv = deployer::lint::project_home().join("s3-venv");
        let venv_bin = venv.join("bin");
        for tool in ["aws", "python"] {
            if !venv_bin.join(tool).is_file() {
                return Err(HarnessError::Missing {
                    tool: if tool == "aws" {
                        "aws"
                    } else {
                        "python (with boto3)"
                    },
                    venv: venv.display().to_string(),
                });
            }
        }
        let rclone = crate::find_tool("rclone")?;
        Ok(S3Clients { venv_bin, rclone })
    }

    /// The environment every client reads: the endpoint, the key pair, the region, and
    /// nothing from the machine's own AWS configuration.
    fn configure(&self, command: &mut Command, endpoint: &str) {
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::temp_dir())
            .env("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET_ACCESS_KEY)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL_S3", endpoint)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    }

    /// `aws ARGS` (the endpoint from `AWS_ENDPOINT_URL_S3`, as applications set it).
    pub fn aws(&self, endpoint: &str, args: &[&str]) -> Output {
        let mut command = Command::new(self.venv_bin.join("aws"));
        self.configure(&mut command, endpoint);
        command
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running aws: {e}"))
    }

    /// `python SCRIPT ARGS` with boto3, the endpoint in `AWS_ENDPOINT_URL_S3`.
    pub fn python(&self, endpoint: &str, script: &Path, args: &[&str]) -> Output {
        let mut command = Command::new(self.venv_bin.join("python"));
        self.configure(&mut command, endpoint);
        command
            .arg(script)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()))
    }

    /// `rclone ARGS` with the remote `r:` an S3 remote at `endpoint` (path style), set
    /// up through rclone's environment variables.
    pub fn rclone(&self, endpoint: &str, args: &[&str]) -> Output {
        let mut command = Command::new(&self.rclone);
        self.configure(&mut command, endpoint);
        command
            .env("RCLONE_CONFIG", "/dev/null")
            .env("RCLONE_CONFIG_R_TYPE", "s3")
            .env("RCLONE_CONFIG_R_PROVIDER", "Other")
            .env("RCLONE_CONFIG_R_ENDPOINT", endpoint)
            .env("RCLONE_CONFIG_R_ACCESS_KEY_ID", S3_ACCESS_KEY_ID)
            .env("RCLONE_CONFIG_R_SECRET_ACCESS_KEY", S3_SECRET_ACCESS_KEY)
            .env("RCLONE_CONFIG_R_REGION", "us-east-1")
            .env("RCLONE_CONFIG_R_FORCE_PATH_STYLE", "true")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running rclone: {e}"))
    }
}

/// A client's output for an assertion message.
pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
