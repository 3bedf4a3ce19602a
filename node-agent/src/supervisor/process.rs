//! The operating-system side of supervision: spawning a workload process (its own process group,
//! output appended to its log file, no parent-death signal), signalling process groups, liveness of
//! processes that are not our children, recognising a workload's process by its `/proc` command
//! line, and watching a log file for the ready line.
//!
//! A workload's stdout and stderr are the log file itself, not a pipe to the agent: a process whose
//! agent died keeps logging (a pipe would break), and a restarted agent finds its output there.

use std::ffi::{OsStr, OsString};
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use super::spec::{BROKER_BINARY, CommandLine, EXECUTOR_BINARY};

/// How often a log file is read while waiting for the ready line.
const READY_POLL: Duration = Duration::from_millis(100);
/// A partial line longer than this is dropped while looking for the ready line.
const MAX_LINE: usize = 64 * 1024;

/// Spawns `command` in `wdir`, in its own process group, with stdin from `/dev/null`, stdout and
/// stderr appended to `log`, and an environment of its own (nothing of the agent's but `PATH`).
/// With `run_as`, the process runs as that cluster's user and group with the workspace's group
/// as its only supplementary group, under umask 007. Returns the child and the log's length
/// before the process started (where to look for its ready line).
///
/// # Errors
/// When the log cannot be opened or the process cannot be spawned (or switch identity).
pub fn spawn(
    command: &CommandLine,
    wdir: &Path,
    log: &Path,
    run_as: Option<hdi_api::RunAs>,
) -> std::io::Result<(tokio::process::Child, u64)> {
    let mut out = OpenOptions::new().create(true).append(true).open(log)?;
    let args: Vec<String> = command
        .args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    writeln!(
        out,
        "--- {} hdi-node-agent: starting {} {}",
        humantime::format_rfc3339_seconds(SystemTime::now()),
        command.program.display(),
        args.join(" ")
    )?;
    let offset = out.metadata()?.len();
    let err = out.try_clone()?;
    // No PR_SET_PDEATHSIG and no kill-on-drop: workloads outlive the agent. Their own process
    // group keeps a terminal's Ctrl-C (sent to the agent's group) away from them.
    // The workload's log filter is its own, not the agent's: its ready line is an info line.
    let filter = std::env::var("HDI_WORKLOAD_LOG").unwrap_or_else(|_| "info".to_owned());
    let mut process = tokio::process::Command::new(&command.program);
    process
        .args(&command.args)
        .current_dir(wdir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", filter)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0)
        .kill_on_drop(false);
    if let Some(run_as) = run_as {
        let (uid, gid, groups) = (run_as.uid, run_as.uid, [run_as.workspace_gid]);
        #[allow(
            unsafe_code,
            reason = "the identity must change between fork and exec, and only pre_exec runs there"
        )]
        // SAFETY: the closure calls only async-signal-safe functions (setgroups, setgid, setuid,
        // umask) on values copied in before the fork, and allocates nothing.
        let _ = unsafe { process.pre_exec(move || switch_identity(uid, gid, &groups)) };
    }
    let child = process.spawn()?;
    Ok((child, offset))
}

/// In the child, between fork and exec: the supplementary groups, then the group, then the user
/// (after which none of them can change back), and umask 007.
#[allow(
    unsafe_code,
    reason = "setgroups(2), setgid(2), setuid(2) and umask(2) take plain integers and a slice"
)]
fn switch_identity(uid: u32, gid: u32, groups: &[libc::gid_t]) -> std::io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: `groups` is a live slice of `groups.len()` ids; the rest takes integers.
    unsafe {
        check(libc::setgroups(groups.len(), groups.as_ptr()))?;
        check(libc::setgid(gid))?;
        check(libc::setuid(uid))?;
        libc::umask(0o007);
    }
    Ok(())
}

/// A pid we may signal: positive and not `init` (a pid of 0 or -1 would signal whole groups).
fn signallable(pid: u32) -> Option<libc::pid_t> {
    libc::pid_t::try_from(pid).ok().filter(|pid| *pid > 1)
}

fn kill(pid: libc::pid_t, signal: libc::c_int) -> std::io::Result<()> {
    #[allow(
        unsafe_code,
        reason = "kill(2) takes plain integers and touches no memory"
    )]
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sends `signal` to the process group led by `pid` (every workload leads its own group), or to
/// `pid` alone when it leads no group.
///
/// # Errors
/// When the process is gone (`ESRCH`) or may not be signalled.
pub fn signal_group(pid: u32, signal: libc::c_int) -> std::io::Result<()> {
    let Some(pid) = signallable(pid) else {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    };
    match kill(-pid, signal) {
        Err(error) if error.raw_os_error() == Some(libc::ESRCH) => kill(pid, signal),
        other => other,
    }
}

/// Whether `pid` names a live process (a zombie is not live). Works for processes that are not
/// our children, which `waitpid` cannot watch.
pub fn is_alive(pid: u32) -> bool {
    let Some(pid_t) = signallable(pid) else {
        return false;
    };
    match kill(pid_t, 0) {
        Ok(()) => {}
        Err(error) if error.raw_os_error() == Some(libc::EPERM) => {}
        Err(_) => return false,
    }
    !matches!(
        stat_fields(pid).and_then(|f| f.first().cloned()).as_deref(),
        Some("Z" | "X")
    )
}

/// The fields of `/proc/<pid>/stat` after the command name: state first, then ppid, ...
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// When `pid` started, in clock ticks since boot (`/proc/<pid>/stat` field 22): with the pid it
/// identifies a process even after its pid is reused.
pub fn start_ticks(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// The command line of `pid`, from `/proc/<pid>/cmdline`.
pub fn cmdline(pid: u32) -> Option<Vec<OsString>> {
    let bytes = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if bytes.is_empty() {
        return None;
    }
    Some(
        bytes
            .split(|b| *b == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| OsStr::from_bytes(arg).to_owned())
            .collect(),
    )
}

/// Whether a command line runs the executable `binary` (any directory) with `--data-dir data_dir`.
pub fn cmdline_matches(cmdline: &[OsString], binary: &str, data_dir: &Path) -> bool {
    let runs_binary = cmdline
        .first()
        .and_then(|arg0| Path::new(arg0).file_name())
        .is_some_and(|name| name == binary);
    runs_binary
        && cmdline
            .windows(2)
            .any(|pair| pair[0] == "--data-dir" && Path::new(&pair[1]) == data_dir)
}

/// Whether `pid` is alive and runs `binary` on `data_dir`.
pub fn runs(pid: u32, binary: &str, data_dir: &Path) -> bool {
    is_alive(pid) && cmdline(pid).is_some_and(|c| cmdline_matches(&c, binary, data_dir))
}

/// Searches `/proc` for a live workload process (any workload binary) on `data_dir`: finds a
/// process whose pid file was never written (the agent died right after spawning it).
pub fn find_by_data_dir(data_dir: &Path) -> Option<u32> {
    let own = std::process::id();
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != own)
        .find(|pid| {
            [BROKER_BINARY, EXECUTOR_BINARY]
                .iter()
                .any(|binary| runs(*pid, binary, data_dir))
        })
}

/// Reads `log` from `offset` every 100 ms until a complete line satisfies `is_ready`. Runs until
/// then (the caller aborts it when the process exits first).
pub async fn wait_for_ready_line(log: PathBuf, offset: u64, is_ready: impl Fn(&str) -> bool) {
    let mut file = None;
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = Vec::new();
    loop {
        if file.is_none() {
            file = OpenOptions::new()
                .read(true)
                .open(&log)
                .and_then(|mut f| f.seek(SeekFrom::Start(offset)).map(|_| f))
                .ok();
        }
        if let Some(f) = file.as_mut() {
            chunk.clear();
            if f.read_to_end(&mut chunk).is_ok() {
                pending.extend_from_slice(&chunk);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    if is_ready(&String::from_utf8_lossy(&line)) {
                        return;
                    }
                }
                if pending.len() > MAX_LINE {
                    pending.clear();
                }
            }
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn matches_binary_and_data_dir() {
        let data = Path::new("/d/workloads/b/data");
        let line = args(&[
            "/opt/bin/hdi-broker",
            "--node-id",
            "1",
            "--data-dir",
            "/d/workloads/b/data",
        ]);
        assert!(cmdline_matches(&line, "hdi-broker", data));
        assert!(!cmdline_matches(&line, "hdi-executor", data));
        assert!(!cmdline_matches(
            &line,
            "hdi-broker",
            Path::new("/d/workloads/c/data")
        ));
        let other = args(&["/usr/bin/sleep", "--data-dir", "/d/workloads/b/data"]);
        assert!(!cmdline_matches(&other, "hdi-broker", data));
        assert!(!cmdline_matches(&[], "hdi-broker", data));
    }

    #[test]
    fn liveness_of_real_processes() {
        let own = std::process::id();
        assert!(is_alive(own));
        assert!(start_ticks(own).is_some());
        assert!(cmdline(own).is_some());
        assert!(!is_alive(0));
        assert!(!is_alive(1u32 << 30));
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(is_alive(pid));
        child.kill().unwrap();
        // Killed but not reaped: a zombie is not alive.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while is_alive(pid) {
            assert!(std::time::Instant::now() < deadline, "{pid} still alive");
            std::thread::sleep(Duration::from_millis(10));
        }
        child.wait().unwrap();
    }
}
