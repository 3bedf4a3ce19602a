//! `Broker`: a single-node `hdi-broker` process.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{Proc, bin};

/// A running `hdi-broker`.
pub struct Broker {
    /// The process.
    pub proc: Proc,
    /// `host:port` of its Kafka listener.
    pub bootstrap: String,
}

impl Broker {
    /// Starts a single-node broker on a loopback port of its own (or `listen`) over `data_dir`, and waits
    /// for its ready line.
    pub fn start(data_dir: &Path, listen: Option<&str>, extra: &[&str]) -> Broker {
        // Not port 0: tests restart a killed broker on its address, which must still be free then.
        let listen = listen.map_or_else(hdi_test_support::ports::loopback, str::to_owned);
        let mut proc = Proc::spawn(
            "hdi-broker",
            Command::new(bin("hdi-broker"))
                .args(["--node-id", "1", "--listen", &listen])
                .arg("--data-dir")
                .arg(data_dir)
                .args(["--group-initial-rebalance-delay", "500ms"])
                .args(extra)
                .env("RUST_LOG", "info"),
        );
        let bootstrap = proc
            .wait_for_word_after("hdi-broker ready on ", Duration::from_secs(60))
            .unwrap();
        Broker { proc, bootstrap }
    }
}
