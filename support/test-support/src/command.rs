//! Running a helper command to completion and reading what it printed.

use std::process::Command;

use anyhow::{Context, bail};

/// Runs `command`; its stdout, or an error naming `what` with its stderr.
///
/// # Errors
/// When the command cannot start or exits unsuccessfully.
pub fn output(what: &str, command: &mut Command) -> anyhow::Result<String> {
    let out = command
        .output()
        .with_context(|| format!("cannot start {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
