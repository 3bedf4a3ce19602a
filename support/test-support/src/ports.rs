//! TCP ports for the processes tests start, never handed out twice, even to tests running at the
//! same time in other processes.
//!
//! **The race.** "Bind port 0, read the port, close the socket, pass the port to a process" lets
//! another test (or the kernel, for any outgoing connection) take the port between the close and
//! the process's own bind; a full run once failed a broker cluster test on exactly that ("Address
//! already in use" on a `--quorum-listen` port). A process that binds port 0 itself and prints
//! its address in a ready line has no such race, but brokers must know their quorum peers'
//! addresses before any of them starts, and a process restarted on "its" address needs that
//! address to still be free.
//!
//! **The design.** Ports come from a fixed range, [`FIRST`]..=[`LAST`], below the kernel's
//! ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`, 32768–60999 by default) and apart
//! from the control plane's default `--workload-ports` (20000–29999, used by `cargo xtask up`):
//! the kernel never picks these ports for a port-0 bind or an outgoing connection. Every test
//! takes its ports from here, and a counter in a file shared by all processes
//! (`$TMPDIR/hdi-test-ports`), read and advanced under an exclusive lock on that file
//! ([`std::fs::File::lock`]), hands each port out once per turn of the range; a port that does not
//! bind on 127.0.0.1 when its turn comes (still used by a long test, or by something else on the
//! machine) is skipped, and so is any port inside the ephemeral range if a machine's range is
//! configured to overlap ours. Two tests therefore never hold the same port unless 10,000 ports
//! were handed out in between, and nothing outside the tests takes them by chance.
//!
//! Tests outside Rust take their ports from the Rust side: `e2e/tests/broker_cluster.rs` gives
//! `fault_suite.py` a pool of ports in `HDI_TEST_PORTS`.

use std::fs::OpenOptions;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::ops::RangeInclusive;
use std::path::PathBuf;

/// The first port of the range tests take ports from.
pub const FIRST: u16 = 10_000;
/// The last port of that range.
pub const LAST: u16 = 19_999;

/// The file holding the next port to try, shared by every test process on the machine.
pub fn lock_file() -> PathBuf {
    std::env::temp_dir().join("hdi-test-ports")
}

/// `count` ports, each free when handed out and never handed to another caller in this turn of
/// the range.
///
/// # Errors
/// When the counter file cannot be used, or the range has no `count` free ports.
pub fn take(count: usize) -> std::io::Result<Vec<u16>> {
    allocate(count, false)
}

/// `count` consecutive ports (for a `--workload-ports FIRST-LAST` flag), as [`take`].
///
/// # Errors
/// As [`take`].
pub fn take_range(count: usize) -> std::io::Result<RangeInclusive<u16>> {
    let ports = allocate(count.max(1), true)?;
    match (ports.first(), ports.last()) {
        (Some(&first), Some(&last)) => Ok(first..=last),
        _ => Err(std::io::Error::other("no ports allocated")),
    }
}

/// One port, as [`take`].
///
/// # Errors
/// As [`take`].
pub fn take_one() -> std::io::Result<u16> {
    allocate(1, false)?
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("no port allocated"))
}

/// One port; panics when none can be had (for tests).
pub fn port() -> u16 {
    take_one().unwrap_or_else(|error| panic!("cannot allocate a test port: {error}"))
}

/// `127.0.0.1:<port>` with a port from [`port`]; panics when none can be had (for tests).
pub fn loopback() -> String {
    format!("127.0.0.1:{}", port())
}

/// [`take_range`]; panics when it fails (for tests).
pub fn range(count: usize) -> RangeInclusive<u16> {
    take_range(count).unwrap_or_else(|error| panic!("cannot allocate {count} test ports: {error}"))
}

fn allocate(count: usize, contiguous: bool) -> std::io::Result<Vec<u16>> {
    let ephemeral = ephemeral_range();
    let path = lock_file();
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    // Released when `file` is closed, at the end of this function.
    file.lock()?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let mut next = text
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|port| (FIRST..=LAST).contains(port))
        .unwrap_or(FIRST);
    let mut taken: Vec<u16> = Vec::with_capacity(count);
    let mut tried = 0_u32;
    while taken.len() < count {
        if tried > u32::from(LAST - FIRST) {
            return Err(std::io::Error::other(format!(
                "no {count} free test ports in {FIRST}-{LAST}"
            )));
        }
        tried += 1;
        let port = next;
        next = if port == LAST { FIRST } else { port + 1 };
        if contiguous && taken.last().is_some_and(|&last| last + 1 != port) {
            taken.clear();
        }
        if !ephemeral.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.push(port);
        } else if contiguous {
            taken.clear();
        }
    }
    file.seek(SeekFrom::Start(0))?;
    file.set_len(0)?;
    file.write_all(next.to_string().as_bytes())?;
    Ok(taken)
}

/// The kernel's ephemeral port range (the default when it cannot be read).
fn ephemeral_range() -> RangeInclusive<u16> {
    let read = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut bounds = text.split_whitespace().map(|n| n.parse::<u16>().ok());
            Some(bounds.next()??..=bounds.next()??)
        });
    read.unwrap_or(32_768..=60_999)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_never_handed_out_twice_to_threads_at_once() {
        let threads: Vec<_> = (0..8)
            .map(|_| std::thread::spawn(|| take(20).unwrap()))
            .collect();
        let mut all: Vec<u16> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a port was handed out twice");
        assert!(all.iter().all(|p| (FIRST..=LAST).contains(p)));
    }

    #[test]
    fn a_range_is_consecutive_and_free() {
        let range = range(60);
        assert_eq!(range.clone().count(), 60);
        for port in range {
            std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        }
    }
}
