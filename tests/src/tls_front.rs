//! TLS in front of the ganesha instances, as EFS speaks TLS on its mount targets'
//! port 2049: a test CA (rcgen) and one `stunnel4` server per front, each on its own
//! loopback address and the cluster's port, relaying to one ganesha instance.
//!
//! A front can carry a certificate for the wrong name, an expired one, or one from
//! another CA, and can be killed and restarted like a mount target.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::{HarnessError, find_tool, io, wait_ready};

/// A certificate authority for tests, its root written as PEM.
#[derive(Debug)]
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: PathBuf,
    _dir: tempfile::TempDir,
}

/// What a front's certificate says.
#[derive(Debug, Clone)]
pub struct ServerCert {
    pub name: String,
    pub expired: bool,
}

impl TestCa {
    pub fn new(name: &str) -> Result<Self, HarnessError> {
        let key = KeyPair::generate().map_err(cert_error)?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).map_err(cert_error)?;
        let dir = tempfile::tempdir().map_err(io("creating a directory for the test CA"))?;
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, cert.pem()).map_err(io("writing the test CA"))?;
        Ok(TestCa {
            issuer: Issuer::new(params, key),
            pem,
            _dir: dir,
        })
    }

    /// The CA certificate, for `--tls-ca`.
    pub fn pem_path(&self) -> &Path {
        &self.pem
    }

    /// A server certificate and key (PEM) for `spec`, signed by this CA.
    pub fn issue(&self, spec: &ServerCert) -> Result<(String, String), HarnessError> {
        let key = KeyPair::generate().map_err(cert_error)?;
        let mut params = CertificateParams::new(vec![spec.name.clone()]).map_err(cert_error)?;
        params
            .distinguished_name
            .push(DnType::CommonName, spec.name.clone());
        if spec.expired {
            let now = time::OffsetDateTime::now_utc();
            params.not_before = now - time::Duration::days(30);
            params.not_after = now - time::Duration::days(1);
        }
        let cert = params.signed_by(&key, &self.issuer).map_err(cert_error)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn cert_error(e: rcgen::Error) -> HarnessError {
    HarnessError::Requirement(format!("making a test certificate: {e}"))
}

/// One stunnel4 server: TLS on `address:port`, clear text to `upstream`.
#[derive(Debug)]
pub struct TlsFront {
    binary: PathBuf,
    conf: PathBuf,
    log: PathBuf,
    address: SocketAddr,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl TlsFront {
    /// Starts a front on `address` (same port as `upstream`) with a certificate from `ca`.
    pub fn start(
        ca: &TestCa,
        cert: &ServerCert,
        address: std::net::Ipv4Addr,
        upstream: SocketAddr,
    ) -> Result<Self, HarnessError> {
        let binary = find_tool("stunnel4")?;
        let dir = tempfile::tempdir().map_err(io("creating a directory for stunnel"))?;
        let (cert_pem, key_pem) = ca.issue(cert)?;
        let cert_path = dir.path().join("server.pem");
        let key_path = dir.path().join("server.key");
        std::fs::write(&cert_path, cert_pem).map_err(io("writing the server certificate"))?;
        std::fs::write(&key_path, key_pem).map_err(io("writing the server key"))?;
        let log = dir.path().join("stunnel.log");
        let conf = dir.path().join("stunnel.conf");
        let listen = SocketAddr::from((address, upstream.port()));
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\noutput = {log}\ndebug = notice\n\
                 [nfs]\naccept = {listen}\nconnect = {upstream}\ncert = {cert}\nkey = {key}\n\
                 sslVersionMin = TLSv1.2\n",
                log = log.display(),
                cert = cert_path.display(),
                key = key_path.display(),
            ),
        )
        .map_err(io("writing the stunnel configuration"))?;
        let mut front = TlsFront {
            binary,
            conf,
            log,
            address: listen,
            child: None,
            _dir: dir,
        };
        front.restart()?;
        Ok(front)
    }

    pub fn address(&self) -> String {
        self.address.ip().to_string()
    }

    /// Stops the front without warning, as a TLS endpoint failing.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the front again and waits until it accepts connections.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.kill();
        let what = format!("stunnel4 on {}", self.address);
        let mut child = Command::new(&self.binary)
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io(format!("starting {what}")))?;
        let addr = self.address;
        if let Err(e) = wait_ready(&what, &mut child, &self.log, || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        }) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.kill();
    }
}
