use std::time::Duration;

use super::*;
use x509_parser::der_parser::ber::BerObjectContent;
use x509_parser::der_parser::der::parse_der;
use x509_parser::prelude::*;

/// efs-utils 3.2.0's own code (certificate_utils.py), run on these inputs, gave these
/// strings and this signature.
fn vector() -> SigningInput<'static> {
    SigningInput {
        public_key_hash: "2cedc2f475c19837273a859ec444f3468c0bbbd6",
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        session_token: Some("tok/en+=="),
        region: "us-east-1",
        file_system_id: "fs-12345678",
        at: ::time::macros::datetime!(2026-01-02 03:04:05 UTC),
    }
}

#[test]
fn canonical_request_matches_efs_utils() {
    assert_eq!(
        canonical_request(&vector()),
        "GET\n/\nAction=Connect&PublicKeyHash=2cedc2f475c19837273a859ec444f3468c0bbbd6\
         &X-Amz-Algorithm=AWS4-HMAC-SHA256\
         &X-Amz-Credential=AKIDEXAMPLE%2F20260102%2Fus-east-1%2Felasticfilesystem%2Faws4_request\
         &X-Amz-Date=20260102T030405Z&X-Amz-Expires=86400\
         &X-Amz-Security-Token=tok%2Fen%2B%3D%3D&X-Amz-SignedHeaders=host\
         \nhost:fs-12345678\nhost\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn string_to_sign_and_signature_match_efs_utils() {
    assert_eq!(
        string_to_sign(&vector()),
        "AWS4-HMAC-SHA256\n20260102T030405Z\n20260102/us-east-1/elasticfilesystem/aws4_request\n\
         0adb23fafdc7430b63eda394812ef83a6c448d6bcef7b3d836b21278269a875a"
    );
    assert_eq!(
        signature(&vector()),
        "c8caa9d0fed5e4c64d044ad3878373e98d9bfcd7d06f17d9eaccd1590ced4147"
    );
}

#[test]
fn without_a_session_token_the_parameter_is_absent() {
    let input = SigningInput {
        session_token: None,
        ..vector()
    };
    let request = canonical_request(&input);
    assert!(!request.contains("X-Amz-Security-Token"), "{request}");
    assert_ne!(signature(&input), signature(&vector()));
}

fn settings(access_point: Option<&str>) -> IdentitySettings {
    IdentitySettings {
        file_system_id: "fs-12345678".into(),
        region: "us-east-1".into(),
        access_point_id: access_point.map(str::to_string),
        common_name: "ip-10-0-1-23.ec2.internal".into(),
    }
}

fn utf8(der: &[u8]) -> String {
    let (rest, obj) = parse_der(der).unwrap();
    assert!(rest.is_empty());
    match obj.content {
        BerObjectContent::UTF8String(s) => s.to_string(),
        other => panic!("expected a UTF8String, got {other:?}"),
    }
}

fn extension<'a>(cert: &'a X509Certificate<'a>, oid: &str) -> Option<&'a X509Extension<'a>> {
    cert.extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == oid)
}

#[test]
fn the_certificate_carries_every_field_efs_utils_writes() {
    let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_3072).unwrap();
    let creds = Credentials::new(
        "AKIDEXAMPLE",
        "secret/key+",
        Some("token/+=".into()),
        None,
        "test",
    );
    let at = ::time::macros::datetime!(2026-11-23 15:22:11 UTC);
    let der = certificate(
        &key,
        &settings(Some("fsap-0123456789abcdef0")),
        Some(&creds),
        at,
        7,
    )
    .unwrap();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();

    // RSA-3072, self-signed with SHA-256, CN only, as a UTF8String.
    assert_eq!(cert.version(), X509Version::V3);
    assert_eq!(cert.public_key().parsed().unwrap().key_size(), 3072);
    assert_eq!(
        cert.signature_algorithm.algorithm.to_id_string(),
        "1.2.840.113549.1.1.11"
    );
    assert_eq!(cert.subject().to_string(), "CN=ip-10-0-1-23.ec2.internal");
    assert_eq!(cert.issuer(), cert.subject());
    let cn = cert.subject().iter_common_name().next().unwrap();
    assert_eq!(
        cn.attr_value().tag(),
        x509_parser::der_parser::asn1_rs::Tag::Utf8String
    );
    assert_eq!(cert.raw_serial(), &[7]);

    // 15 minutes before to 3 hours after.
    assert_eq!(
        cert.validity().not_before.timestamp(),
        (at - NOT_BEFORE).unix_timestamp()
    );
    assert_eq!(
        cert.validity().not_after.timestamp(),
        (at + NOT_AFTER).unix_timestamp()
    );

    // Exactly these extensions, in this order, none critical.
    let oids = extension_oids(&cert);
    assert_eq!(
        oids,
        [
            "2.5.29.14",
            "1.3.6.1.4.1.4843.7.1",
            "1.3.6.1.4.1.4843.7.2",
            "1.3.6.1.4.1.4843.7.3",
            "1.3.6.1.4.1.4843.7.4"
        ]
    );
    assert!(cert.extensions().iter().all(|e| !e.critical));

    let key_hash = public_key_sha1(&key);
    match extension(&cert, "2.5.29.14").unwrap().parsed_extension() {
        ParsedExtension::SubjectKeyIdentifier(id) => assert_eq!(id.0, key_hash.as_slice()),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        utf8(extension(&cert, "1.3.6.1.4.1.4843.7.1").unwrap().value),
        "fsap-0123456789abcdef0"
    );
    assert_eq!(
        utf8(extension(&cert, "1.3.6.1.4.1.4843.7.3").unwrap().value),
        "fs-12345678"
    );

    // .7.2: key id, the hex signature as text, the signing time, the token under [0].
    let (_, auth) = parse_der(extension(&cert, "1.3.6.1.4.1.4843.7.2").unwrap().value).unwrap();
    let fields = auth.as_sequence().unwrap();
    assert_eq!(fields.len(), 4);
    assert_eq!(fields[0].as_str().unwrap(), "AKIDEXAMPLE");
    let expected = signature(&SigningInput {
        public_key_hash: &hex(&key_hash),
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: "secret/key+",
        session_token: Some("token/+="),
        region: "us-east-1",
        file_system_id: "fs-12345678",
        at,
    });
    assert_eq!(fields[1].as_slice().unwrap(), expected.as_bytes());
    assert_eq!(fields[1].as_slice().unwrap().len(), 64);
    assert!(matches!(fields[2].content, BerObjectContent::UTCTime(_)));
    let raw = extension(&cert, "1.3.6.1.4.1.4843.7.2").unwrap().value;
    assert!(
        raw.windows(15).any(|w| w == b"\x17\x0d261123152211Z"),
        "UTCTime YYMMDDHHMMSSZ"
    );
    assert_eq!(
        fields[3].header.class(),
        x509_parser::der_parser::asn1_rs::Class::ContextSpecific
    );
    assert_eq!(fields[3].header.tag().0, 0);
    assert_eq!(utf8(fields[3].as_slice().unwrap()), "token/+=");

    // .7.4: source and version, values only.
    let (_, info) = parse_der(extension(&cert, "1.3.6.1.4.1.4843.7.4").unwrap().value).unwrap();
    let info: Vec<&str> = info
        .as_sequence()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    assert_eq!(info, ["ecs.fargate", CLIENT_VERSION]);
}

#[test]
fn without_iam_or_access_point_only_the_file_system_is_named() {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let der = certificate(&key, &settings(None), None, OffsetDateTime::now_utc(), 0).unwrap();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let oids = extension_oids(&cert);
    assert_eq!(
        oids,
        ["2.5.29.14", "1.3.6.1.4.1.4843.7.3", "1.3.6.1.4.1.4843.7.4"]
    );
}

#[test]
fn a_long_host_name_is_cut_to_64_characters() {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut s = settings(None);
    s.common_name = "h".repeat(100);
    let der = certificate(&key, &s, None, OffsetDateTime::now_utc(), 0).unwrap();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(cert.subject().to_string(), format!("CN={}", "h".repeat(64)));
}

#[derive(Debug)]
struct NoCredentials;

impl ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::ready(Err(
            aws_credential_types::provider::error::CredentialsError::not_loaded(
                "no providers in chain",
            ),
        ))
    }
}

#[tokio::test]
async fn missing_credentials_are_reported_before_any_connection() {
    let provider = SharedCredentialsProvider::new(NoCredentials);
    let err = ClientIdentity::new(settings(None), Some(provider))
        .await
        .unwrap_err();
    assert!(matches!(err, IamError::Credentials(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("--iam")
            && text.contains("no providers in chain")
            && text.contains("task role"),
        "{text}"
    );
}

#[tokio::test]
async fn renewal_comes_before_the_credentials_expire() {
    let soon = std::time::SystemTime::now() + Duration::from_secs(20 * 60);
    let creds = Credentials::new("AKID", "secret", Some("t".into()), Some(soon), "test");
    let identity = ClientIdentity::new(settings(None), Some(SharedCredentialsProvider::new(creds)))
        .await
        .unwrap();
    let next = identity.next_renewal();
    assert!(
        next <= Duration::from_secs(15 * 60) && next > Duration::from_secs(14 * 60),
        "{next:?}"
    );
    let lasting = Credentials::new("AKID", "secret", None, None, "test");
    let identity = ClientIdentity::new(
        settings(None),
        Some(SharedCredentialsProvider::new(lasting)),
    )
    .await
    .unwrap();
    assert_eq!(identity.next_renewal(), RENEW_EVERY);
}

#[tokio::test]
async fn renewal_replaces_the_certificate_for_new_connections() {
    let creds = Credentials::new("AKID", "secret", None, None, "test");
    let identity = ClientIdentity::new(settings(None), Some(SharedCredentialsProvider::new(creds)))
        .await
        .unwrap();
    let before = identity.current();
    identity.renew().await.unwrap();
    let after = identity.current();
    assert_ne!(before.cert[0], after.cert[0]);
    let (_, a) = X509Certificate::from_der(&before.cert[0]).unwrap();
    let (_, b) = X509Certificate::from_der(&after.cert[0]).unwrap();
    assert_eq!(a.public_key().raw, b.public_key().raw, "same key");
    assert_eq!((a.raw_serial(), b.raw_serial()), (&[1u8][..], &[2u8][..]));
}

/// The certificate's extensions by OID, in order.
fn extension_oids(cert: &X509Certificate) -> Vec<String> {
    cert.extensions()
        .iter()
        .map(|e| e.oid.to_id_string())
        .collect()
}
