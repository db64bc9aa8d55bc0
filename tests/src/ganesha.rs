//! Real NFSv4.1 servers for the router's tests: one nfs-ganesha process per loopback
//! address (127.0.0.2, .3, ...), all exporting one directory as `/export`, the way
//! several EFS mount targets are entry points to one file system.
//!
//! Each cluster picks its own free port, so tests run in parallel. Instances can be
//! killed and restarted to act out a mount target failing and coming back. The settings
//! keep several instances over one directory coherent: no
//! attribute or directory caching, no delegations, no grace period.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{HarnessError, find_tool, free_port, io, wait_ready};

#[derive(Debug)]
pub struct Ganesha {
    dir: tempfile::TempDir,
    port: u16,
    binary: PathBuf,
    instances: Vec<Instance>,
}

#[derive(Debug)]
struct Instance {
    address: Ipv4Addr,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Ganesha {
    /// Starts `n` instances on 127.0.0.2 upwards, exporting one fresh directory.
    pub fn start(n: u8) -> Result<Self, HarnessError> {
        Self::start_in(n, &std::env::temp_dir())
    }

    /// As [`Ganesha::start`], with the exported directory created under `base` (the
    /// benchmarks use a tmpfs, so the local disk's writeback does not blur them).
    pub fn start_in(n: u8, base: &Path) -> Result<Self, HarnessError> {
        let binary = find_tool("ganesha.nfsd")?;
        if !nix_is_root() {
            return Err(HarnessError::Requirement(
                "nfs-ganesha must run as root to serve NFS; run the tests as root (CI does)".into(),
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("efsa-ganesha-")
            .tempdir_in(base)
            .map_err(io("creating the NFS export directory"))?;
        let export = dir.path().join("export");
        std::fs::create_dir(&export).map_err(io("creating the NFS export directory"))?;
        let port = free_port()?;
        let mut cluster = Ganesha {
            dir,
            port,
            binary,
            instances: Vec::new(),
        };
        for i in 0..n {
            let address = Ipv4Addr::new(127, 0, 0, 2 + i);
            let home = cluster.dir.path().join(format!("instance-{i}"));
            let recovery = home.join("recovery");
            std::fs::create_dir_all(&recovery)
                .map_err(io("creating a ganesha instance directory"))?;
            let conf = home.join("ganesha.conf");
            std::fs::write(&conf, config(address, port, &recovery, &export))
                .map_err(io("writing a ganesha configuration"))?;
            cluster.instances.push(Instance {
                address,
                conf,
                log: home.join("ganesha.log"),
                child: None,
            });
        }
        for i in 0..cluster.instances.len() {
            cluster.restart(i)?;
        }
        Ok(cluster)
    }

    /// The directory every instance exports.
    pub fn export_dir(&self) -> PathBuf {
        self.dir.path().join("export")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn address(&self, i: usize) -> String {
        self.instances[i].address.to_string()
    }

    pub fn addresses(&self) -> Vec<String> {
        (0..self.instances.len()).map(|i| self.address(i)).collect()
    }

    /// Kills instance `i` without warning (SIGKILL), as a failed mount target.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.instances[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts instance `i` again (or for the first time) and waits until it accepts
    /// connections.
    pub fn restart(&mut self, i: usize) -> Result<(), HarnessError> {
        self.kill(i);
        let instance = &mut self.instances[i];
        let what = format!("nfs-ganesha on {}:{}", instance.address, self.port);
        let mut child = Command::new(&self.binary)
            .arg("-F")
            .arg("-f")
            .arg(&instance.conf)
            .arg("-L")
            .arg(&instance.log)
            .arg("-N")
            .arg("NIV_EVENT")
            .arg("-p")
            .arg(instance.conf.with_extension("pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io(format!("starting {what}")))?;
        // It listens on an IPv6 socket; only a connect tells it is ready.
        let addr = SocketAddr::from((instance.address, self.port));
        if let Err(e) = wait_ready(&what, &mut child, &instance.log, || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        }) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        instance.child = Some(child);
        Ok(())
    }
}

impl Drop for Ganesha {
    fn drop(&mut self) {
        for i in 0..self.instances.len() {
            self.kill(i);
        }
    }
}

fn nix_is_root() -> bool {
    // /proc/self/status: "Uid:\treal\teffective\t..."
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

fn config(address: Ipv4Addr, port: u16, recovery: &Path, export: &Path) -> String {
    format!(
        r#"NFS_CORE_PARAM {{
  Bind_addr = {address}; NFS_Port = {port}; Protocols = 4;
  Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false; Clustered = false;
}}
NFSV4 {{
  Graceless = true; RecoveryBackend = fs; RecoveryRoot = {recovery};
  Delegations = false; pnfs_mds = false; pnfs_ds = false; Only_Numeric_Owners = true;
}}
MDCACHE {{ Dir_Chunk = 0; }}
EXPORT_DEFAULTS {{ Attr_Expiration_Time = 0; Delegations = None; }}
EXPORT {{
  Export_Id = 1; Path = {export}; Pseudo = /export; Protocols = 4;
  Transports = TCP; Access_Type = RW; Squash = No_Root_Squash; SecType = sys;
  Attr_Expiration_Time = 0; Delegations = None;
  FSAL {{ Name = VFS; }}
}}
LOG {{ Default_Log_Level = EVENT; Components {{ EXPORT = INFO; }} }}
NFS_KRB5 {{ Active_krb5 = false; }}
"#,
        recovery = recovery.display(),
        export = export.display(),
    )
}
