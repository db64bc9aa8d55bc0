//! Pushing the router image to a registry (ECR, or any OCI registry) with `oci-client`:
//! each blob is checked first and only missing ones are uploaded; the manifest goes last,
//! byte for byte as built, so the digest the stack pins is the digest the registry holds.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::image::{Blob, Image};

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

/// Where to push: `registry` is `HOST[:PORT]`; `insecure` allows plain HTTP (a loopback
/// registry for tests).
#[derive(Clone)]
pub struct Destination {
    pub registry: String,
    pub repository: String,
    pub username: String,
    pub password: String,
    pub insecure: bool,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("registry", &self.registry)
            .field("repository", &self.repository)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// A logged-in registry client for one repository. A push is planned first
/// ([`Registry::missing`]), so progress knows how many bytes will go, then done blob by
/// blob; the manifest goes last, so a failed push leaves no image that names a blob the
/// registry lacks.
pub struct Registry {
    client: Client,
    to: Destination,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

impl Registry {
    pub async fn connect(to: Destination) -> Registry {
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
        client.store_auth_if_needed(&to.registry, &auth).await;
        Registry { client, to }
    }

    /// The image's blobs the repository does not hold yet.
    pub async fn missing<'a>(&self, image: &'a Image) -> Result<Vec<&'a Blob>, PushError> {
        let reference = self.by_digest(image);
        let mut missing = Vec::new();
        for blob in image.blobs() {
            let present = self
                .client
                .blob_exists(&reference, &blob.digest)
                .await
                .map_err(|e| self.failed(e))?;
            if !present {
                missing.push(blob);
            }
        }
        Ok(missing)
    }

    pub async fn upload(&self, image: &Image, blob: &Blob) -> Result<(), PushError> {
        self.client
            .push_blob(&self.by_digest(image), blob.bytes.clone(), &blob.digest)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(())
    }

    /// Pushes the manifest, byte for byte as built, under `tag`: the image exists from
    /// here on.
    pub async fn tag(&self, image: &Image, tag: &str) -> Result<(), PushError> {
        let reference = Reference::with_tag(
            self.to.registry.clone(),
            self.to.repository.clone(),
            tag.to_string(),
        );
        let media_type = image
            .manifest
            .media_type
            .parse()
            .map_err(|e| PushError::Failed {
                registry: self.to.registry.clone(),
                repository: self.to.repository.clone(),
                message: format!("bad media type: {e}"),
            })?;
        self.client
            .push_manifest_raw(&reference, image.manifest.bytes.clone(), media_type)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(())
    }

    fn by_digest(&self, image: &Image) -> Reference {
        Reference::with_digest(
            self.to.registry.clone(),
            self.to.repository.clone(),
            image.manifest.digest.clone(),
        )
    }

    fn failed(&self, e: oci_client::errors::OciDistributionError) -> PushError {
        let message = e.to_string();
        if message.contains("401") || message.to_lowercase().contains("unauthorized") {
            PushError::Auth(message, self.to.registry.clone())
        } else {
            PushError::Failed {
                registry: self.to.registry.clone(),
                repository: self.to.repository.clone(),
                message,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let to = Destination {
            registry: "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com".into(),
            repository: "efs-autoscaler".into(),
            username: "AWS".into(),
            password: "s3cr3t-token".into(),
            insecure: false,
        };
        let shown = format!("{to:?}");
        assert!(!shown.contains("s3cr3t-token"), "{shown}");
        assert!(shown.contains("efs-autoscaler"), "{shown}");
    }
}
