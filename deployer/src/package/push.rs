//! Pushing the router image to a registry (ECR, or any OCI registry) with `oci-client`:
//! each blob is checked first and only missing ones are uploaded; the manifest goes last,
//! byte for byte as built, so the digest the stack pins is the digest the registry holds.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::image::Image;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PushError {
    #[error(
        "the registry {registry} refused the credentials ({0}); for ECR, check that the caller may call ecr:GetAuthorizationToken and push to the repository",
        registry = .1
    )]
    Auth(String, String),
    #[error("pushing to {registry}/{repository} failed: {message}")]
    Failed {
        registry: String,
        repository: String,
        message: String,
    },
}

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pushed {
    pub blobs_uploaded: usize,
    pub bytes_uploaded: usize,
    pub blobs_present: usize,
}

/// Where to push: `registry` is `HOST[:PORT]`; `insecure` allows plain HTTP (a loopback
/// registry for tests).
#[derive(Debug, Clone)]
pub struct Destination {
    pub registry: String,
    pub repository: String,
    pub username: String,
    pub password: String,
    pub insecure: bool,
}

pub async fn push(image: &Image, tag: &str, to: &Destination) -> Result<Pushed, PushError> {
    let protocol = if to.insecure {
        ClientProtocol::HttpsExcept(vec![to.registry.clone()])
    } else {
        ClientProtocol::Https
    };
    let client = Client::new(ClientConfig {
        protocol,
        ..Default::default()
    });
    let auth = RegistryAuth::Basic(to.username.clone(), to.password.clone());
    let failed = |e: oci_client::errors::OciDistributionError| {
        let message = e.to_string();
        if message.contains("401") || message.to_lowercase().contains("unauthorized") {
            PushError::Auth(message, to.registry.clone())
        } else {
            PushError::Failed {
                registry: to.registry.clone(),
                repository: to.repository.clone(),
                message,
            }
        }
    };
    let by_digest = Reference::with_digest(
        to.registry.clone(),
        to.repository.clone(),
        image.manifest.digest.clone(),
    );
    client.store_auth_if_needed(&to.registry, &auth).await;
    let mut pushed = Pushed::default();
    // The config before the layer is as good as any order: the manifest, pushed last,
    // is what makes the image exist.
    for blob in [&image.layer, &image.config] {
        if client
            .blob_exists(&by_digest, &blob.digest)
            .await
            .map_err(failed)?
        {
            pushed.blobs_present += 1;
            continue;
        }
        client
            .push_blob(&by_digest, blob.bytes.clone(), &blob.digest)
            .await
            .map_err(failed)?;
        pushed.blobs_uploaded += 1;
        pushed.bytes_uploaded += blob.bytes.len();
    }
    let by_tag = Reference::with_tag(to.registry.clone(), to.repository.clone(), tag.to_string());
    client
        .push_manifest_raw(
            &by_tag,
            image.manifest.bytes.clone(),
            image
                .manifest
                .media_type
                .parse()
                .map_err(|e| PushError::Failed {
                    registry: to.registry.clone(),
                    repository: to.repository.clone(),
                    message: format!("bad media type: {e}"),
                })?,
        )
        .await
        .map_err(failed)?;
    Ok(pushed)
}
