//! The deployer of the EFS mount-target autoscaler: environment configuration, offline
//! rendering of CloudFormation, linting, and (later) packaging and deployment.

pub mod cli;
pub mod commands;
pub mod config;
pub mod lint;
pub mod render;
