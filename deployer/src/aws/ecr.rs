//! Amazon ECR: the router's image repository (the control plane; images travel over the
//! registry API, in `package::push`).

use aws_sdk_ecr::Client;
use aws_sdk_ecr::types::ImageIdentifier;
use base64::Engine;

use super::{AwsError, Error};

const SERVICE: &str = "ECR";

/// Credentials for the registry API, valid 12 hours.
#[derive(Clone)]
pub struct RegistryLogin {
    pub username: String,
    pub password: String,
    /// `https://ACCOUNT.dkr.ecr.REGION.amazonaws.com`
    pub endpoint: String,
}

// The password is a bearer credential: never printed, not even in debug output.
impl std::fmt::Debug for RegistryLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryLogin")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

pub async fn login(client: &Client) -> Result<RegistryLogin, Error> {
    const OP: &str = "GetAuthorizationToken";
    let out = client
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(SERVICE, OP, e))?;
    let data = out
        .authorization_data()
        .first()
        .ok_or_else(|| AwsError::response(SERVICE, OP, "no authorization data".into()))?;
    let token = data
        .authorization_token()
        .ok_or_else(|| AwsError::response(SERVICE, OP, "no token".into()))?;
    // The token is base64 of "USER:PASSWORD".
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()
        .and_then(|d| String::from_utf8(d).ok())
        .ok_or_else(|| AwsError::response(SERVICE, OP, "the token is not base64 text".into()))?;
    let (username, password) = decoded.split_once(':').ok_or_else(|| {
        AwsError::response(SERVICE, OP, "the token has no USER:PASSWORD form".into())
    })?;
    Ok(RegistryLogin {
        username: username.to_string(),
        password: password.to_string(),
        endpoint: data.proxy_endpoint().unwrap_or_default().to_string(),
    })
}

/// Whether the repository already holds the image with this manifest digest.
pub async fn image_exists(client: &Client, repository: &str, digest: &str) -> Result<bool, Error> {
    Ok(image_tags(client, repository, digest).await?.is_some())
}

/// The tags of the image `digest`; `None` when the repository does not hold it.
pub async fn image_tags(
    client: &Client,
    repository: &str,
    digest: &str,
) -> Result<Option<Vec<String>>, Error> {
    let request = client
        .describe_images()
        .repository_name(repository)
        .image_ids(ImageIdentifier::builder().image_digest(digest).build());
    match request.send().await {
        Ok(out) => Ok(out.image_details().first().map(|d| d.image_tags().to_vec())),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_image_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error(AwsError::from_sdk(SERVICE, "DescribeImages", e))),
    }
}
