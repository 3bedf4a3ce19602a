//! `hdi-node-agent` as a library: the agent's main loop ([`agent`]), its flags ([`config`]) and
//! the workload [`supervisor`], so that tests can drive the supervisor directly. The binary
//! (`main.rs`) only parses flags, sets up logging and runs [`agent::run`].

pub mod agent;
pub mod config;
mod identity;
mod inventory;
pub mod metrics;
pub mod supervisor;
