//! AWS STS: who the caller is, for the guard against deploying to the wrong account.

use super::{AwsError, Error};

/// The account id of the credentials in use.
pub async fn account(sdk: &aws_config::SdkConfig) -> Result<String, Error> {
    let out = aws_sdk_sts::Client::new(sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| Error(AwsError::from_sdk("STS", "GetCallerIdentity", e)))?;
    out.account().map(str::to_string).ok_or_else(|| {
        Error(AwsError::response(
            "STS",
            "GetCallerIdentity",
            "the answer names no account".to_string(),
        ))
    })
}
