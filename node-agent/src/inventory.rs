//! What this node offers: CPU, memory and disk for its data directory, read from the machine.

use std::path::Path;

use hdi_api::NodeCapacity;

/// Reads the node's capacity; `cpu_millis` and `memory_bytes` override detection when given.
pub fn capacity(
    data_dir: &Path,
    cpu_millis: Option<u64>,
    memory_bytes: Option<u64>,
) -> NodeCapacity {
    NodeCapacity {
        cpu_millis: cpu_millis.unwrap_or_else(detect_cpu_millis),
        memory_bytes: memory_bytes.unwrap_or_else(detect_memory_bytes),
        disk_bytes: available_disk_bytes(data_dir).unwrap_or(0),
    }
}

fn detect_cpu_millis() -> u64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u64 * 1000)
        .unwrap_or(1000)
}

fn detect_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .as_deref()
        .and_then(parse_mem_total)
        .unwrap_or(0)
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let mut fields = line.split_whitespace().skip(1);
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// Bytes available to unprivileged writers on the file system holding `path`.
fn available_disk_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    #[allow(unsafe_code, reason = "statvfs(3) fills a zeroed struct we own")]
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` a writable, properly aligned struct.
    let stat = unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c_path.as_ptr(), &mut stat) != 0 {
            return None;
        }
        stat
    };
    #[allow(
        clippy::unnecessary_cast,
        reason = "the field types differ between targets"
    )]
    Some((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mem_total() {
        assert_eq!(
            parse_mem_total("MemTotal:       24576000 kB\nMemFree: 1 kB\n"),
            Some(24_576_000 * 1024)
        );
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_mem_total("MemTotal: lots kB\n"), None);
    }

    #[test]
    fn reads_this_machine() {
        let capacity = capacity(&std::env::temp_dir(), None, Some(42));
        assert!(capacity.cpu_millis >= 1000);
        assert_eq!(capacity.memory_bytes, 42);
        assert!(capacity.disk_bytes > 0);
        assert!(detect_memory_bytes() > 0);
    }
}
