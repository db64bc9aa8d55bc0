//! Encryption in transit to the mount targets, as amazon-efs-utils' efs-proxy does it:
//! TLS (1.2 or 1.3, rustls) started at once on `IP:2049`, the server certificate checked
//! against Amazon's root CAs and the name `FS_ID.efs.REGION.amazonaws.com`, never
//! skipped. With `--iam`, a client certificate carries the task role's signature
//! (`iam`).
//!
//! `nfs-rs` speaks plain TCP, so each NFS connection goes through a loopback forwarder
//! (`forwarder`) that this process owns: nfs-rs connects to `127.0.0.1:<port>`, the
//! forwarder relays over TLS. The first TLS connection is made before the forwarder
//! exists, so a certificate problem is reported at connect time, naming the target and
//! the cause, and the target is never used in clear text.

pub mod forwarder;
pub mod iam;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::backend::BackendError;

/// What the router checks the servers against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The name every target's certificate must carry.
    pub server_name: String,
    /// PEM roots replacing Amazon's (tests, other servers).
    pub ca_file: Option<std::path::PathBuf>,
}

/// Why TLS cannot be set up at all (before any target is tried).
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("--tls-ca {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("--tls-server-name {0:?} is not a valid DNS name")]
    ServerName(String),
    #[error("TLS: {0}")]
    Rustls(String),
}

/// Connects to targets over TLS with one fixed configuration; the client certificate
/// (IAM) is looked up per handshake, so a renewed one is used by new connections
/// while established ones carry on, as efs-proxy does.
#[derive(Clone)]
pub struct Tls {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    name: String,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("server_name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The default server name: what efs-utils checks (`checkHost`), whatever address the
/// connection goes to.
pub fn efs_server_name(file_system_id: &str, region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("{file_system_id}.efs.{region}.{suffix}")
}

/// Amazon Root CA 1 to 4, the roots efs-utils ships (`efs-utils.crt`), taken from the
/// Mozilla root store pinned by Cargo.lock rather than copied by hand.
pub fn amazon_roots() -> Vec<CertificateDer<'static>> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter(|der| is_amazon_root(der.as_ref()))
        .cloned()
        .collect()
}

/// `O=Amazon, CN=Amazon Root CA N`: roots are self-signed, so the name appears in the
/// certificate only as its subject and issuer (the DER holds the strings as they are).
fn is_amazon_root(der: &[u8]) -> bool {
    der.windows(14).any(|w| w == b"Amazon Root CA")
}

impl Tls {
    pub fn new(
        settings: &TlsSettings,
        client_cert: Option<Arc<dyn rustls::client::ResolvesClientCert>>,
    ) -> Result<Self, TlsSetupError> {
        let roots = match &settings.ca_file {
            Some(path) => read_roots(path)?,
            None => amazon_roots(),
        };
        let mut store = rustls::RootCertStore::empty();
        let (added, _ignored) = store.add_parsable_certificates(roots);
        if added == 0 {
            return Err(TlsSetupError::Ca {
                path: settings
                    .ca_file
                    .as_deref()
                    .map_or_else(|| "(built in)".into(), |p| p.display().to_string()),
                reason: "no usable CA certificate in it".into(),
            });
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        // TLS 1.2 sends the client certificate in clear, and the IAM certificate carries
        // the access key id, session token and signature: with one, TLS 1.3 only (EFS
        // speaks it). Without one, 1.2 stays allowed for older servers.
        let versions: &[&rustls::SupportedProtocolVersion] = if client_cert.is_some() {
            &[&rustls::version::TLS13]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| TlsSetupError::Rustls(e.to_string()))?
            .with_root_certificates(store);
        let config = match client_cert {
            Some(resolver) => builder.with_client_cert_resolver(resolver),
            None => builder.with_no_client_auth(),
        };
        let server_name = ServerName::try_from(settings.server_name.clone())
            .map_err(|_| TlsSetupError::ServerName(settings.server_name.clone()))?;
        Ok(Tls {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
            name: settings.server_name.clone(),
        })
    }

    pub fn server_name(&self) -> &str {
        &self.name
    }

    /// A TLS connection to `address:port` within `timeout` (TCP and handshake
    /// together), or why not in words an operator can act on.
    pub async fn connect(
        &self,
        address: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<TlsStream<TcpStream>, BackendError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let tcp = tokio::time::timeout_at(deadline, TcpStream::connect((address, port)))
            .await
            .map_err(|_| BackendError::Timeout(timeout))?
            .map_err(|e| {
                BackendError::Unavailable(format!("cannot connect to port {port}: {e}"))
            })?;
        // NFS requests are small and latency-bound; Nagle would hold them back.
        let _ = tcp.set_nodelay(true);
        match tokio::time::timeout_at(
            deadline,
            self.connector.connect(self.server_name.clone(), tcp),
        )
        .await
        {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(BackendError::Unavailable(format!(
                "TLS: {}",
                self.explain(&e)
            ))),
            Err(_) => Err(BackendError::Unavailable(format!(
                "TLS: no handshake answer within {timeout:?}; a plain NFS server waits \
                 silently for more data: if this target does not speak TLS, run with --tls=false"
            ))),
        }
    }

    /// rustls' error, said as what to fix.
    fn explain(&self, e: &io::Error) -> String {
        use rustls::{CertificateError as C, Error as R};
        let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<R>()) else {
            return match e.kind() {
                io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe => format!(
                    "the target closed the connection during the handshake ({e}); a plain \
                     NFS server drops a TLS hello: if it does not speak TLS, run with --tls=false"
                ),
                _ => format!("handshake failed: {e}"),
            };
        };
        match inner {
            R::InvalidCertificate(cert) => match cert {
                C::UnknownIssuer | C::BadSignature => format!(
                    "the server certificate is not signed by a trusted CA ({cert:?}); \
                     trusted: {}",
                    "Amazon Root CA 1-4, or the --tls-ca file"
                ),
                C::NotValidForName | C::NotValidForNameContext { .. } => format!(
                    "the server certificate is not valid for {} ({cert:?}); check the file \
                     system id and region (EFS_FILE_SYSTEM_ID, AWS_REGION) or --tls-server-name",
                    self.name
                ),
                C::Expired | C::ExpiredContext { .. } => {
                    format!("the server certificate has expired ({cert:?})")
                }
                C::NotValidYet | C::NotValidYetContext { .. } => format!(
                    "the server certificate is not valid yet ({cert:?}); is this host's clock right?"
                ),
                C::Revoked => "the server certificate is revoked".into(),
                other => format!("the server certificate was refused: {other:?}"),
            },
            R::InvalidMessage(_) | R::InappropriateMessage { .. } => format!(
                "the target did not answer with TLS ({inner}); a plain NFS server? run \
                 with --tls=false for servers without TLS"
            ),
            R::AlertReceived(alert) => format!(
                "the server refused the handshake (alert {alert:?}); with --iam, check the \
                 task role, the access point and the file system policy"
            ),
            other => format!("handshake failed: {other}"),
        }
    }
}

/// Whether `address:port` answers a TLS hello with TLS (a handshake or an alert
/// record). Used only to explain a failed clear-text mount; sends nothing but the hello.
pub async fn speaks_tls(address: &str, port: u16, timeout: Duration) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let wait = timeout.min(Duration::from_secs(2));
    let probe = async {
        let mut tcp = TcpStream::connect((address, port)).await.ok()?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(amazon_roots());
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = ServerName::try_from("probe.invalid").ok()?;
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).ok()?;
        let mut hello = Vec::new();
        conn.write_tls(&mut hello).ok()?;
        tcp.write_all(&hello).await.ok()?;
        let mut head = [0u8; 2];
        tcp.read_exact(&mut head).await.ok()?;
        Some(matches!(head, [0x15 | 0x16, 0x03]))
    };
    matches!(tokio::time::timeout(wait, probe).await, Ok(Some(true)))
}

fn read_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    use rustls::pki_types::pem::PemObject;
    let fail = |reason: String| TlsSetupError::Ca {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("not a PEM certificate bundle: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_roots_are_amazons_four() {
        let roots = amazon_roots();
        assert_eq!(roots.len(), 4, "Amazon Root CA 1-4");
        for der in &roots {
            let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
            let cn = cert.subject().to_string();
            assert!(
                cn.contains("O=Amazon") && cn.contains("CN=Amazon Root CA "),
                "{cn}"
            );
        }
    }

    #[derive(Debug)]
    struct NoCert;
    impl rustls::client::ResolvesClientCert for NoCert {
        fn resolve(
            &self,
            _: &[&[u8]],
            _: &[rustls::SignatureScheme],
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            None
        }
        fn has_certs(&self) -> bool {
            true
        }
    }

    /// A server that speaks TLS 1.2 only, with a certificate for `name` from a fresh CA
    /// written to `dir/ca.pem`; it answers every handshake, then drops the connection.
    async fn tls12_server(name: &str, dir: &Path) -> std::net::SocketAddr {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = acceptor.accept(tcp).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_client_certificate_is_only_sent_over_tls_1_3() {
        let dir = tempfile::tempdir().unwrap();
        let name = "fs-1.efs.us-east-1.amazonaws.com";
        let addr = tls12_server(name, dir.path()).await;
        let settings = TlsSettings {
            server_name: name.into(),
            ca_file: Some(dir.path().join("ca.pem")),
        };
        let timeout = Duration::from_secs(5);
        let ip = addr.ip().to_string();
        // Without a client certificate, TLS 1.2 is still spoken.
        let plain = Tls::new(&settings, None).unwrap();
        assert!(plain.connect(&ip, addr.port(), timeout).await.is_ok());
        // With one (IAM), a 1.2-only server is refused before anything is sent.
        let with_iam = Tls::new(&settings, Some(Arc::new(NoCert))).unwrap();
        let refused = with_iam.connect(&ip, addr.port(), timeout).await;
        assert!(
            refused.is_err(),
            "a TLS 1.2 handshake was made with a client certificate"
        );
    }

    #[test]
    fn server_name_follows_efs_utils() {
        assert_eq!(
            efs_server_name("fs-12345678", "eu-west-1"),
            "fs-12345678.efs.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            efs_server_name("fs-1", "cn-north-1"),
            "fs-1.efs.cn-north-1.amazonaws.com.cn"
        );
    }

    #[test]
    fn a_bad_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let settings = TlsSettings {
            server_name: "fs-1.efs.us-east-1.amazonaws.com".into(),
            ca_file: Some(path.clone()),
        };
        let err = Tls::new(&settings, None).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        let missing = TlsSettings {
            ca_file: Some(dir.path().join("missing.pem")),
            ..settings
        };
        let err = Tls::new(&missing, None).unwrap_err().to_string();
        assert!(err.contains("missing.pem"), "{err}");
    }
}
