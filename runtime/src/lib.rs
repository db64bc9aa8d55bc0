//! The runtime side of the EFS mount-target autoscaler: the scaler Lambda (`scaler`), the
//! Fargate router (`router`), and what they share: the published list's `model` and the
//! `reconcile` step that rebuilds it from the file system's mount targets. The scaler
//! and the router never use each other.

pub mod aws;
pub mod cli;
pub mod emf;
pub mod logging;
pub mod model;
pub mod reconcile;
pub mod router;
pub mod scaler;
