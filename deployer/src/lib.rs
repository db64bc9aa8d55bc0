//! The deployer of the EFS mount-target autoscaler: environment configuration, offline
//! rendering of CloudFormation, linting, packaging of the runtime, and operating the
//! stacks (bootstrap, diff, up, status, down), one deployer at a time per stack (`lock`),
//! and the releases `up` records for `rollback` (`release`).

// Configuration errors carry their source snippet for the report; they are built once, on
// the way out, so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod aws;
pub mod changeset;
pub mod cli;
pub mod commands;
pub mod config;
pub mod diff;
pub mod files;
pub mod lint;
pub mod local_plane;
pub mod lock;
pub mod package;
pub mod progress;
pub mod release;
pub mod render;
