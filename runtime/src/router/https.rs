//! TLS on the S3 listener, for a router its VPC's clients reach (`service.expose: vpc`).
//! The certificate chain and key arrive as PEM text in `LISTEN_TLS_CERTIFICATE` and
//! `LISTEN_TLS_PRIVATE_KEY` (ECS injects them from a Secrets Manager secret); they are
//! never logged. Inside a task the listener stays plain HTTP on loopback: nothing
//! crosses a network there.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub const CERTIFICATE_VARIABLE: &str = "LISTEN_TLS_CERTIFICATE";
pub const KEY_VARIABLE: &str = "LISTEN_TLS_PRIVATE_KEY";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpsError {
    #[error("--listen-tls needs {0}: the PEM text of the listener's {1}")]
    Missing(&'static str, &'static str),
    #[error("{0} is not a PEM {1}: {2}")]
    Pem(&'static str, &'static str, String),
    #[error(
        "the certificate in {CERTIFICATE_VARIABLE} and the key in {KEY_VARIABLE} do not go together: {0}"
    )]
    Mismatch(String),
}

/// The acceptor for the S3 listener, from the PEM text given (typically the
/// environment's).
pub fn acceptor(
    certificate: Option<String>,
    key: Option<String>,
) -> Result<tokio_rustls::TlsAcceptor, HttpsError> {
    let certificate = certificate
        .filter(|s| !s.trim().is_empty())
        .ok_or(HttpsError::Missing(
            CERTIFICATE_VARIABLE,
            "certificate chain",
        ))?;
    let key = key
        .filter(|s| !s.trim().is_empty())
        .ok_or(HttpsError::Missing(KEY_VARIABLE, "private key"))?;
    let chain = CertificateDer::pem_slice_iter(certificate.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| HttpsError::Pem(CERTIFICATE_VARIABLE, "certificate chain", e.to_string()))?;
    if chain.is_empty() {
        return Err(HttpsError::Pem(
            CERTIFICATE_VARIABLE,
            "certificate chain",
            "no CERTIFICATE block".into(),
        ));
    }
    // The key's text is never part of an error: only what kind of problem it has.
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| {
        HttpsError::Pem(
            KEY_VARIABLE,
            "private key",
            match e {
                rustls::pki_types::pem::Error::NoItemsFound => "no PRIVATE KEY block".into(),
                _ => "the block cannot be read".into(),
            },
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpsError::Mismatch(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| HttpsError::Mismatch(e.to_string()))?;
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(r: Result<tokio_rustls::TlsAcceptor, HttpsError>) -> HttpsError {
        match r {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        }
    }

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_certificate_and_its_key_make_an_acceptor() {
        let (cert, key) = pair("router.files.internal");
        assert!(acceptor(Some(cert), Some(key)).is_ok());
    }

    #[test]
    fn missing_or_mismatched_material_is_named_without_the_key() {
        let (cert, key) = pair("a");
        let (_, other_key) = pair("b");
        assert_eq!(
            error(acceptor(None, Some(key.clone()))),
            HttpsError::Missing(CERTIFICATE_VARIABLE, "certificate chain")
        );
        assert_eq!(
            error(acceptor(Some(cert.clone()), Some(" ".into()))),
            HttpsError::Missing(KEY_VARIABLE, "private key")
        );
        let e = error(acceptor(Some(cert.clone()), Some("not pem".into())));
        assert!(e.to_string().contains(KEY_VARIABLE), "{e}");
        let e = error(acceptor(Some(cert), Some(other_key.clone())));
        assert!(matches!(e, HttpsError::Mismatch(_)), "{e}");
        assert!(!e.to_string().contains(&other_key[40..80]), "{e}");
    }
}
