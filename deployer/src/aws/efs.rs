//! Amazon EFS calls only the deployer makes: deleting the mount targets the scaler
//! added, when an environment is torn down. The runtime never deletes (its wrapper is
//! `runtime::aws::efs`, which `up`, `status` and `down` use for reading).

use std::time::Duration;

use runtime::aws::efs::Efs;

use super::{AwsError, Error};

/// Deletes a mount target; one that is already gone counts as deleted.
pub async fn delete_mount_target(client: &aws_sdk_efs::Client, id: &str) -> Result<(), Error> {
    match client
        .delete_mount_target()
        .mount_target_id(id)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            let err = AwsError::from_sdk("EFS", "DeleteMountTarget", e);
            if err.is_code("MountTargetNotFound") {
                Ok(())
            } else {
                Err(Error(err))
            }
        }
    }
}

/// Polls until every mount target in `ids` is gone.
pub async fn wait_deleted(efs: &Efs, ids: &[String], every: Duration) -> Result<(), Error> {
    for id in ids {
        while efs.mount_target(id).await.map_err(Error)?.is_some() {
            tokio::time::sleep(every).await;
        }
    }
    Ok(())
}
