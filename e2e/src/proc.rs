//! `Proc`: a process a test started, its output collected line by line (and printed when the test
//! fails), SIGKILLed when dropped; and finding the processes that run under a directory.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running process whose stdout and stderr are collected line by line.
pub struct Proc {
    name: String,
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `command`, collecting its output.
    pub fn spawn(name: &str, command: &mut Command) -> Proc {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let output = Arc::new(Mutex::new(Vec::new()));
        let streams: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for stream in streams {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap().push(line);
                }
            });
        }
        Proc {
            name: name.to_owned(),
            child,
            output,
        }
    }

    /// The name it was started under (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every line printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// Waits until a printed line contains `needle`; returns that line.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| l.contains(needle)) {
                return Ok(line);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before printing {needle:?}:\n{}",
                    self.name,
                    self.lines().join("\n")
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not print {needle:?} within {timeout:?}:\n{}",
                    self.name,
                    self.lines().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until a printed line contains `needle`; returns the word that follows `needle` in
    /// it (up to white space), e.g. the address of a ready line.
    pub fn wait_for_word_after(
        &mut self,
        needle: &str,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let line = self.wait_for_line(needle, timeout)?;
        line.split(needle)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .with_context(|| format!("{}: nothing follows {needle:?} in {line:?}", self.name))
    }

    /// Waits until the process exits on its own; returns its status and the lines it printed
    /// that are not blank.
    pub fn wait_exit_lines(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<(ExitStatus, Vec<String>)> {
        let status = self.wait_exit(timeout)?;
        let lines = self
            .lines()
            .into_iter()
            .filter(|l| !l.trim().is_empty())
            .collect();
        Ok((status, lines))
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} still runs after {timeout:?}:\n{}",
                    self.name,
                    self.lines().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let pid = i32::try_from(self.child.id()).context("pid")?;
        #[allow(unsafe_code, reason = "kill(2) on our own child")]
        // SAFETY: kill has no memory preconditions.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        self.wait_exit(timeout)
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "----- output of {} -----\n{}",
                self.name,
                self.lines().join("\n")
            );
        }
    }
}

/// Live processes whose command line mentions `dir`.
pub fn processes_under(dir: &Path) -> Vec<(u32, String)> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for (pid, proc_dir) in hdi_test_support::procfs::processes() {
        let Ok(raw) = std::fs::read(proc_dir.join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(&needle) {
            // A zombie has an empty cmdline, so whatever matched is alive.
            found.push((pid, cmdline));
        }
    }
    found
}
