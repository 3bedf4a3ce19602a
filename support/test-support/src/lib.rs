//! `hdi-test-support`: what the tests of several crates and `cargo xtask` share.
//!
//! - [`command`]: run a helper command and read its stdout.
//! - [`layers`]: module layering checked as a test.
//! - [`ports`]: TCP ports for test processes, handed out race-free across every test process
//!   running at once (see its doc for the design).
//! - [`postgres`]: a private PostgreSQL server (the scratch server of `cargo xtask test`, the one
//!   of `cargo xtask up`, and the ones e2e tests stop, restart and SIGKILL).
//! - [`procfs`]: the processes listed under `/proc`.
//!
//! A dev-dependency of test code, a dependency of xtask; never a dependency of a shipped binary.

pub mod command;
pub mod layers;
pub mod ports;
pub mod postgres;
pub mod procfs;
