//! End-to-end tests against real local components (one test binary: each binary links the
//! whole AWS SDK, so modules, not files, separate the suites).

mod local_stack;
