//! The few system calls xtask needs that std does not offer, each wrapped safely.
#![allow(
    unsafe_code,
    reason = "thin wrappers over libc calls with no pointers shared"
)]

use std::os::unix::process::CommandExt;
use std::process::Command;

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Sends `signal` to process `pid`; `false` if it does not exist (any more).
pub fn signal(pid: u32, signal: i32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// Makes the child receive SIGTERM when this process dies, so that a killed `xtask up` leaves no
/// orphans behind.
pub fn die_with_parent(command: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// What a child used, read when it was reaped (`wait4`).
pub struct ChildUsage {
    /// Its exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Its peak resident set size in KiB (`ru_maxrss`).
    pub max_rss_kib: u64,
    /// CPU seconds, user and system, of all its threads.
    pub cpu_seconds: f64,
}

/// Waits for child `pid` to exit: its exit code (`None` if killed by a signal) and its peak
/// resident set size in KiB (`ru_maxrss` from `wait4`).
pub fn wait_with_max_rss(pid: u32) -> std::io::Result<(Option<i32>, u64)> {
    let usage = wait_with_usage(pid)?;
    Ok((usage.code, usage.max_rss_kib))
}

/// Waits for child `pid` to exit and says what it used.
pub fn wait_with_usage(pid: u32) -> std::io::Result<ChildUsage> {
    let pid = i32::try_from(pid).map_err(|_| std::io::Error::other("pid out of range"))?;
    let mut status = 0i32;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers refer to live locals of the right types for the call's duration.
        let rc = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
        if rc == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(ChildUsage {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        cpu_seconds: seconds(usage.ru_utime) + seconds(usage.ru_stime),
    })
}
