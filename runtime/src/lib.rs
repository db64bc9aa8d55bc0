//! The runtime side of the EFS mount-target autoscaler: the scaler Lambda, the Fargate
//! router (a later issue), and what they share: the published list's `model` and the
//! `reconcile` step that rebuilds it from the file system's mount targets.

pub mod aws;
pub mod model;
pub mod reconcile;
pub mod scaler;
