//! The scaler: counts files on EFS and, past the threshold, adds a mount target in a
//! free zone, publishes the list and redeploys the router. Runs as a Lambda function on
//! a schedule, or once from the command line (`efs-scaler run-once`).

pub mod config;
pub mod count;
pub mod deadline;
pub mod lambda;
pub mod metrics;
pub mod pass;
pub mod policy;
pub mod result;

#[cfg(test)]
mod tests;

pub use config::ScalerConfig;
pub use pass::{Clients, RunOptions, run};
pub use result::RunResult;
