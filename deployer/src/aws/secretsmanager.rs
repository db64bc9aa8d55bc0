//! AWS Secrets Manager: the router's S3 key pair, read and replaced by
//! `deployer rotate-credentials`. Secret values pass through and are never logged.

use super::{AwsError, Error};

const SERVICE: &str = "Secrets Manager";

/// The secret's current string; `None` when there is no such secret.
pub async fn get(
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
) -> Result<Option<String>, Error> {
    match client.get_secret_value().secret_id(id).send().await {
        Ok(out) => Ok(out.secret_string().map(str::to_string)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error(AwsError::from_sdk(SERVICE, "GetSecretValue", e))),
    }
}

/// A new version of the secret, current from now on.
pub async fn put(
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
    value: &str,
) -> Result<(), Error> {
    client
        .put_secret_value()
        .secret_id(id)
        .secret_string(value)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| Error(AwsError::from_sdk(SERVICE, "PutSecretValue", e)))
}

/// Letters and digits from Secrets Manager's generator, as the stack's own secret is
/// made (no punctuation: the value goes into environment variables and URLs).
pub async fn random_password(
    client: &aws_sdk_secretsmanager::Client,
    length: i64,
) -> Result<String, Error> {
    let out = client
        .get_random_password()
        .password_length(length)
        .exclude_punctuation(true)
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk(SERVICE, "GetRandomPassword", e)))?;
    out.random_password()
        .filter(|p| p.len() as i64 == length)
        .map(str::to_string)
        .ok_or_else(|| {
            Error(AwsError::response(
                SERVICE,
                "GetRandomPassword",
                "no password of the requested length in the answer".into(),
            ))
        })
}
