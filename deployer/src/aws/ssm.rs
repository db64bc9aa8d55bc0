//! AWS Systems Manager Parameter Store calls only the deployer makes: removing the
//! published list when an environment is torn down. Reads and writes go through
//! `runtime::aws::ssm`, the scaler's own wrapper.

use super::{AwsError, Error};

/// Deletes the parameter; true if it existed.
pub async fn delete_parameter(client: &aws_sdk_ssm::Client, name: &str) -> Result<bool, Error> {
    match client.delete_parameter().name(name).send().await {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_parameter_not_found()) =>
        {
            Ok(false)
        }
        Err(e) => Err(Error(AwsError::from_sdk("SSM", "DeleteParameter", e))),
    }
}
