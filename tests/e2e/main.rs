//! End-to-end tests against real local components (one test binary: each binary links the
//! whole AWS SDK, so modules, not files, separate the suites).

// Tests fail by panicking; unwrap/expect here are assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod hostile;
mod lifecycle;
mod local_script;
mod local_stack;
mod package;
mod real_aws;
mod real_efs;
mod replayed;
mod router;
mod router_tls;
mod s3;
mod s3_conformance;
mod scaler;
mod self_contained;
