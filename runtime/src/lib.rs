//! The runtime side of the EFS mount-target autoscaler: the scaler Lambda and the Fargate
//! router (later issues), and the model they share.

pub mod model;
