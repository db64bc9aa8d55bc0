//! The client certificate the router presents to EFS, built as amazon-efs-utils builds
//! it (efs-utils 3.2.0, `efs_utils_common/certificate_utils.py` and `metadata.py`) so
//! EFS applies the access point and, with `--iam`, authorizes the task role.
//!
//! - One RSA-3072 key per process; the certificate is self-signed, `CN=<hostname>`,
//!   valid from 15 minutes before to 3 hours after its creation, renewed every hour
//!   with fresh credentials (efs-utils' watchdog does the same). New TLS connections
//!   use the new certificate; established ones keep theirs.
//! - Extensions, all non-critical: subject key identifier (SHA-1 of the public key),
//!   `1.3.6.1.4.1.4843.7.1` access point id, `.7.2` the IAM authorization (access key id,
//!   the signature as hex text, its UTCTime, the session token under `[0]`), `.7.3` the
//!   file system id, `.7.4` client information (source, version).
//! - The signature is SigV4 of a `Connect` request to `elasticfilesystem`, with
//!   efs-utils' own departures from textbook SigV4 that EFS expects: the host header is
//!   the bare file system id, no blank line after the canonical headers, and the public
//!   key's hash in the query so a signature is bound to this key.
//!
//! Only real EFS can prove the certificate is accepted (the opt-in test in
//! tests/e2e/real_efs.rs); the tests here check every field against efs-utils' format
//! and the signature against a vector produced by efs-utils' own code.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_lc_rs::{digest, hmac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, DnType, DnValue, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;

/// efs-utils' private enterprise arc for its certificate extensions.
const OID_ACCESS_POINT: &[u64] = &[1, 3, 6, 1, 4, 1, 4843, 7, 1];
const OID_CLIENT_AUTH: &[u64] = &[1, 3, 6, 1, 4, 1, 4843, 7, 2];
const OID_FILE_SYSTEM: &[u64] = &[1, 3, 6, 1, 4, 1, 4843, 7, 3];
const OID_CLIENT_INFO: &[u64] = &[1, 3, 6, 1, 4, 1, 4843, 7, 4];
const OID_SUBJECT_KEY_ID: &[u64] = &[2, 5, 29, 14];

const SERVICE: &str = "elasticfilesystem";
const NOT_BEFORE: Duration = Duration::from_secs(15 * 60);
const NOT_AFTER: Duration = Duration::from_secs(3 * 3600);
/// Renewal, well inside the 3 h validity (efs-utils' default is 60 min too).
pub const RENEW_EVERY: Duration = Duration::from_secs(60 * 60);

/// What `client_info` says of us: `source` as efs-utils' `[client-info] source` (ECS on
/// Fargate), and our own name and version where efs-utils puts its version.
const CLIENT_SOURCE: &str = "ecs.fargate";
const CLIENT_VERSION: &str = concat!("efs-router-", env!("CARGO_PKG_VERSION"));

/// `quote_plus` keeps only these unencoded: letters, digits and `_.-~`.
const QUOTE_PLUS: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');

#[derive(Debug, thiserror::Error)]
pub enum IamError {
    #[error(
        "--iam: no AWS credentials ({0}); on ECS the task role provides them \
         (TaskRoleArn), elsewhere the standard chain (environment, profile)"
    )]
    Credentials(String),
    #[error("cannot build the client certificate: {0}")]
    Certificate(String),
}

/// Who the router says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySettings {
    pub file_system_id: String,
    pub region: String,
    pub access_point_id: Option<String>,
    /// The certificate's common name (efs-utils: the host name, first 64 characters).
    pub common_name: String,
}

/// The SigV4 `Connect` signature's inputs.
#[derive(Debug, Clone)]
pub struct SigningInput<'a> {
    pub public_key_hash: &'a str,
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
    pub region: &'a str,
    pub file_system_id: &'a str,
    pub at: OffsetDateTime,
}

fn amz_date(t: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn date_only(t: OffsetDateTime) -> String {
    amz_date(t)[..8].to_string()
}

fn quote_plus(s: &str) -> String {
    utf8_percent_encode(s, QUOTE_PLUS).to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn credential_scope(input: &SigningInput<'_>) -> String {
    format!(
        "{}/{}/{SERVICE}/aws4_request",
        date_only(input.at),
        input.region
    )
}

/// efs-utils' `create_canonical_request`, byte for byte.
pub fn canonical_request(input: &SigningInput<'_>) -> String {
    let credential = quote_plus(&format!(
        "{}/{}",
        input.access_key_id,
        credential_scope(input)
    ));
    let mut params = vec![
        ("Action", "Connect".to_string()),
        ("PublicKeyHash", quote_plus(input.public_key_hash)),
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_string()),
        ("X-Amz-Credential", credential),
        ("X-Amz-Date", quote_plus(&amz_date(input.at))),
        ("X-Amz-Expires", "86400".to_string()),
        ("X-Amz-SignedHeaders", "host".to_string()),
    ];
    if let Some(token) = input.session_token {
        params.push(("X-Amz-Security-Token", quote_plus(token)));
    }
    params.sort_by(|a, b| a.0.cmp(b.0));
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "GET\n/\n{}\nhost:{}\nhost\n{}",
        query.join("&"),
        input.file_system_id,
        sha256_hex(b"")
    )
}

pub fn string_to_sign(input: &SigningInput<'_>) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{}\n{}\n{}",
        amz_date(input.at),
        credential_scope(input),
        sha256_hex(canonical_request(input).as_bytes())
    )
}

/// The hex signature efs-utils' `calculate_signature` gives.
pub fn signature(input: &SigningInput<'_>) -> String {
    let sign = |key: &[u8], msg: &str| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg.as_bytes())
            .as_ref()
            .to_vec()
    };
    let k_date = sign(
        format!("AWS4{}", input.secret_access_key).as_bytes(),
        &date_only(input.at),
    );
    let k_region = sign(&k_date, input.region);
    let k_service = sign(&k_region, SERVICE);
    let k_signing = sign(&k_service, "aws4_request");
    hex(&sign(&k_signing, &string_to_sign(input)))
}

/// SHA-1 of the subjectPublicKey bits: efs-utils' `PublicKeyHash` and the subject key
/// identifier.
pub fn public_key_sha1(key: &KeyPair) -> Vec<u8> {
    digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, key.public_key_raw())
        .as_ref()
        .to_vec()
}

fn der_utf8(s: &str) -> Vec<u8> {
    yasna::construct_der(|w| w.write_utf8_string(s))
}

/// `.7.2`: SEQUENCE { accessKeyId UTF8String, signature OCTET STRING (hex text),
/// sigv4DateTime UTCTime, sessionToken [0] EXPLICIT UTF8String OPTIONAL }.
fn der_client_auth(
    access_key_id: &str,
    signature: &str,
    at: OffsetDateTime,
    token: Option<&str>,
) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_utf8_string(access_key_id);
            w.next().write_bytes(signature.as_bytes());
            w.next()
                .write_utctime(&yasna::models::UTCTime::from_datetime(at));
            if let Some(token) = token {
                w.next()
                    .write_tagged(yasna::Tag::context(0), |w| w.write_utf8_string(token));
            }
        })
    })
}

fn der_client_info() -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_utf8_string(CLIENT_SOURCE);
            w.next().write_utf8_string(CLIENT_VERSION);
        })
    })
}

/// One certificate for `key` at `at`; `credentials` adds the IAM authorization.
pub fn certificate(
    key: &KeyPair,
    settings: &IdentitySettings,
    credentials: Option<&Credentials>,
    at: OffsetDateTime,
    serial: u64,
) -> Result<CertificateDer<'static>, IamError> {
    // Whole seconds: X.509 and SigV4 times have none finer (and yasna refuses them).
    let at = at.replace_nanosecond(0).unwrap_or(at);
    let key_hash = public_key_sha1(key);
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    let cn: String = settings.common_name.chars().take(64).collect();
    name.push(DnType::CommonName, DnValue::Utf8String(cn));
    params.distinguished_name = name;
    params.serial_number = Some(serial.into());
    params.not_before = at - NOT_BEFORE;
    params.not_after = at + NOT_AFTER;
    let mut extensions = vec![CustomExtension::from_oid_content(
        OID_SUBJECT_KEY_ID,
        yasna::construct_der(|w| w.write_bytes(&key_hash)),
    )];
    if let Some(ap) = &settings.access_point_id {
        extensions.push(CustomExtension::from_oid_content(
            OID_ACCESS_POINT,
            der_utf8(ap),
        ));
    }
    if let Some(c) = credentials {
        let input = SigningInput {
            public_key_hash: &hex(&key_hash),
            access_key_id: c.access_key_id(),
            secret_access_key: c.secret_access_key(),
            session_token: c.session_token(),
            region: &settings.region,
            file_system_id: &settings.file_system_id,
            at,
        };
        let sig = signature(&input);
        extensions.push(CustomExtension::from_oid_content(
            OID_CLIENT_AUTH,
            der_client_auth(c.access_key_id(), &sig, at, c.session_token()),
        ));
    }
    extensions.push(CustomExtension::from_oid_content(
        OID_FILE_SYSTEM,
        der_utf8(&settings.file_system_id),
    ));
    extensions.push(CustomExtension::from_oid_content(
        OID_CLIENT_INFO,
        der_client_info(),
    ));
    params.custom_extensions = extensions;
    params
        .self_signed(key)
        .map(|c| c.der().clone())
        .map_err(|e| IamError::Certificate(e.to_string()))
}

/// The identity rustls presents, renewed in place.
#[derive(Debug)]
pub struct ClientIdentity {
    key: KeyPair,
    settings: IdentitySettings,
    credentials: Option<SharedCredentialsProvider>,
    current: RwLock<Current>,
    serial: std::sync::atomic::AtomicU64,
}

/// The certificate in use, and when the credentials it was signed with expire.
#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    expires: Option<std::time::SystemTime>,
}

impl ClientIdentity {
    /// Makes the key and the first certificate; with `credentials` (IAM) fails when
    /// none can be had, so a router without them says so before connecting anything.
    pub async fn new(
        settings: IdentitySettings,
        credentials: Option<SharedCredentialsProvider>,
    ) -> Result<Arc<Self>, IamError> {
        let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_3072)
            .map_err(|e| IamError::Certificate(format!("RSA key: {e}")))?;
        // Serials are positive (RFC 5280).
        let first = build(&key, &settings, credentials.as_ref(), 1).await?;
        Ok(Arc::new(ClientIdentity {
            key,
            settings,
            credentials,
            current: RwLock::new(first),
            serial: std::sync::atomic::AtomicU64::new(2),
        }))
    }

    /// Builds a fresh certificate now (fresh credentials, same key).
    pub async fn renew(&self) -> Result<(), IamError> {
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let next = build(&self.key, &self.settings, self.credentials.as_ref(), serial).await?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    /// When to renew: every [`RENEW_EVERY`], or 5 minutes before the credentials the
    /// certificate was signed with expire, whichever comes first.
    fn next_renewal(&self) -> Duration {
        let expires = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .expires;
        let until_expiry = expires
            .and_then(|e| e.duration_since(std::time::SystemTime::now()).ok())
            .map(|d| d.saturating_sub(Duration::from_secs(300)));
        until_expiry.map_or(RENEW_EVERY, |d| {
            d.min(RENEW_EVERY).max(Duration::from_secs(10))
        })
    }

    /// Renews on schedule; a failed renewal is logged and retried every minute (new TLS
    /// connections keep the current certificate, which EFS refuses once it or its
    /// credentials expire: the log says why before that happens).
    pub fn spawn_renewal(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut wait = me.next_renewal();
            loop {
                tokio::time::sleep(wait).await;
                match me.renew().await {
                    Ok(()) => {
                        tracing::info!("client certificate renewed");
                        wait = me.next_renewal();
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot renew the client certificate; new TLS connections use the current one, which stops working when it or its credentials expire");
                        wait = Duration::from_secs(60);
                    }
                }
            }
        })
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .key
            .clone()
    }
}

impl rustls::client::ResolvesClientCert for ClientIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

async fn build(
    key: &KeyPair,
    settings: &IdentitySettings,
    provider: Option<&SharedCredentialsProvider>,
    serial: u64,
) -> Result<Current, IamError> {
    let credentials = match provider {
        Some(p) => Some(
            p.provide_credentials()
                .await
                .map_err(|e| IamError::Credentials(describe(&e)))?,
        ),
        None => None,
    };
    let cert = certificate(
        key,
        settings,
        credentials.as_ref(),
        OffsetDateTime::now_utc(),
        serial,
    )?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = rustls::crypto::aws_lc_rs::default_provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| IamError::Certificate(e.to_string()))?;
    Ok(Current {
        key: Arc::new(CertifiedKey::new(vec![cert], signing)),
        expires: credentials.as_ref().and_then(Credentials::expiry),
    })
}

/// The whole source chain of a credentials error (the SDK's Display is one line).
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests;
