//! AWS Systems Manager Parameter Store: the published mount-target list.

use std::time::SystemTime;

use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::ParameterType;

use super::AwsError;

const SERVICE: &str = "SSM";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    pub value: String,
    pub version: i64,
    pub last_modified: Option<SystemTime>,
}

#[derive(Debug, Clone)]
pub struct Ssm {
    client: Client,
}

impl Ssm {
    pub fn new(client: Client) -> Self {
        Ssm { client }
    }

    /// The parameter, or `None` when it does not exist (yet).
    pub async fn get(&self, name: &str) -> Result<Option<Parameter>, AwsError> {
        const OP: &str = "GetParameter";
        match self.client.get_parameter().name(name).send().await {
            Ok(out) => {
                let Some(p) = out.parameter() else {
                    return Err(AwsError::response(
                        SERVICE,
                        OP,
                        format!("no parameter in the answer for {name}"),
                    ));
                };
                Ok(Some(Parameter {
                    value: p.value().unwrap_or_default().to_string(),
                    version: p.version(),
                    last_modified: p
                        .last_modified_date()
                        .and_then(|d| SystemTime::try_from(*d).ok()),
                }))
            }
            Err(e) => {
                let err = AwsError::from_sdk(SERVICE, OP, e);
                if err.is_code("ParameterNotFound") {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Writes a plain String parameter (the list holds ids and private IPs, no secrets)
    /// and returns its new version.
    pub async fn put(&self, name: &str, value: &str) -> Result<i64, AwsError> {
        const OP: &str = "PutParameter";
        let out = self
            .client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, OP, e))?;
        Ok(out.version())
    }
}
