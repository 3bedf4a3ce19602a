//! Runs the node's assigned workloads (`hdi-broker`, `hdi-executor` processes) and keeps them
//! running.
//!
//! The [`Supervisor`] owns all workload state and is driven by one caller (the agent's main loop,
//! or a test): [`Supervisor::apply`] with each assignment the control plane offers, and
//! [`Supervisor::handle`] with each [`Event`] that [`Supervisor::next_event`] yields. Background
//! tasks (a waiter per child, a liveness poller per adopted process, ready-line watchers, timers)
//! only send events; they never touch the state.
//!
//! - An assignment is applied only if its generation is not older than the applied one; it is
//!   persisted atomically to `<data-dir>/assignment.json` first and loaded at start-up, so a
//!   restarted agent runs its workloads while the control plane is down.
//! - Each workload lives in `<data-dir>/workloads/<name>/`: `data/` (the process's data dir),
//!   `process.log` (its stdout and stderr) and `pid` (pid, start time and the spec it runs).
//! - A process that exits is restarted after a backoff (1 s doubling to 30 s, reset after 60 s of
//!   running). A changed spec stops the process and starts the new one on the same data.
//! - A workload no longer assigned is stopped (SIGTERM to its process group, SIGKILL after the
//!   stop timeout) and its directory removed; so is any directory of no assigned workload.
//! - Workloads outlive the agent. A starting supervisor adopts a live process named by the pid
//!   file (checked against `/proc/<pid>/cmdline` and start time) or found in `/proc` by its data
//!   directory, instead of starting a second one.

mod isolation;
mod process;
pub mod spec;

pub use self::isolation::{Isolation, is_root};

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use hdi_api::{Workload, WorkloadAssignment, WorkloadSpec, WorkloadState, WorkloadStatus};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::spec::Offer;

/// How long a stopped process has between SIGTERM and SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an adopted process (not our child, so not waitable) is checked for liveness.
const ADOPTED_POLL: Duration = Duration::from_millis(500);
/// What `last_exit` says of an adopted process, whose exit status only its real parent sees.
const ADOPTED_EXIT: &str = "exited (adopted process: status unknown)";

/// Where and how the supervisor runs workloads.
#[derive(Clone, Debug)]
pub struct SupervisorConfig {
    /// The agent's data directory: holds `assignment.json` and `workloads/`.
    pub data_dir: PathBuf,
    /// Where `hdi-broker` and `hdi-executor` are.
    pub bin_dir: PathBuf,
    /// The node's storage directory: workspaces' storage roots (jobs' files) are under it.
    pub storage_dir: PathBuf,
    /// Time between SIGTERM and SIGKILL when stopping a workload ([`STOP_TIMEOUT`]).
    pub stop_timeout: Duration,
    /// Who workloads run as.
    pub isolation: Isolation,
    /// The agent's metrics token: brokers' metrics listeners require it too (written to each
    /// broker's `metrics-token` file). Without one they listen on loopback only.
    pub metrics_token: Option<hdi_stdx::secret::Secret>,
}

/// Something that happened to a workload process, for [`Supervisor::handle`].
#[derive(Debug)]
pub enum Event {
    /// A process ended; `how` is `exit status N`/`signal N`, `None` for an adopted process.
    ProcessExited {
        /// The workload.
        name: String,
        /// Which process of the workload.
        run: u64,
        /// How it ended, when known.
        how: Option<String>,
    },
    /// A process printed its ready line.
    Ready {
        /// The workload.
        name: String,
        /// Which process of the workload.
        run: u64,
    },
    /// A backoff elapsed: time to restart.
    RestartDue {
        /// The workload.
        name: String,
        /// Which backoff.
        token: u64,
    },
    /// A stopped process ignored SIGTERM for the stop timeout.
    KillDue {
        /// The workload.
        name: String,
        /// Which process of the workload.
        run: u64,
    },
    /// The directory of a removed workload is deleted (or could not be).
    Removed {
        /// The workload.
        name: String,
        /// The deletion's error, if any.
        error: Option<String>,
    },
}

/// What [`Supervisor::apply`] did with an assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// It is now the applied assignment.
    Applied,
    /// It equals the applied assignment.
    Unchanged,
    /// Its generation is older than the applied one.
    Refused,
}

/// `<wdir>/pid`: which process runs the workload, and with which spec.
#[derive(Debug, Serialize, Deserialize)]
struct PidFile {
    pid: u32,
    /// Start time in clock ticks since boot, to tell a reused pid from ours.
    start_ticks: Option<u64>,
    program: PathBuf,
    workload: Workload,
}

/// One process of a workload.
struct Proc {
    pid: u32,
    /// Unique per process, so late events of an earlier process are ignored.
    run: u64,
    /// The workload it was started with; `None` when adopted without a pid file.
    workload: Option<Workload>,
    started: Instant,
    ready: bool,
    /// SIGTERM was sent.
    stopping: bool,
    /// Its waiter or poller, ready watcher and kill timer: aborted when it ends.
    tasks: Vec<JoinHandle<()>>,
}

/// A workload the supervisor knows: assigned, or still being stopped and removed.
#[derive(Default)]
struct Slot {
    /// The assigned workload; `None` once it is no longer assigned.
    desired: Option<Workload>,
    proc: Option<Proc>,
    /// A pending backoff restart: its token and timer.
    restart: Option<(u64, JoinHandle<()>)>,
    /// The directory is being deleted.
    removing: bool,
    /// Found on disk but never in an assignment this agent applied: its process is stopped and
    /// its directory moved aside to `<data-dir>/orphaned/`, never deleted (a lost assignment
    /// file or a control plane restored from a backup must not wipe brokers' data).
    orphan: bool,
    /// Consecutive quick exits, for the backoff.
    failures: u32,
    restarts: u32,
    last_exit: Option<String>,
}

impl Slot {
    fn state(&self) -> WorkloadState {
        match &self.proc {
            Some(p) if p.stopping => WorkloadState::Stopping,
            Some(p) if p.ready => WorkloadState::Running,
            Some(_) => WorkloadState::Starting,
            None if self.removing || self.desired.is_none() => WorkloadState::Stopping,
            None => WorkloadState::Backoff,
        }
    }

    fn abort_tasks(&mut self) {
        if let Some(p) = &self.proc {
            p.tasks.iter().for_each(JoinHandle::abort);
        }
        if let Some((_, timer)) = self.restart.take() {
            timer.abort();
        }
    }
}

/// The node's workloads. See the module documentation.
pub struct Supervisor {
    config: SupervisorConfig,
    workloads_dir: PathBuf,
    applied: Option<WorkloadAssignment>,
    /// The last refused generation, so a stale answer repeated every poll is logged once.
    last_refused: Option<u64>,
    slots: BTreeMap<String, Slot>,
    /// Whether `workloads/` was scanned for directories of no assigned workload.
    scanned: bool,
    next_id: u64,
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
}

impl Drop for Supervisor {
    /// Stops watching, never the processes: workloads outlive the agent.
    fn drop(&mut self) {
        self.slots.values_mut().for_each(Slot::abort_tasks);
    }
}

impl Supervisor {
    /// Creates `<data-dir>/workloads/`, loads the persisted assignment if any and brings its
    /// workloads up (adopting live processes). Must be called inside a Tokio runtime.
    ///
    /// # Errors
    /// When the data directory cannot be created or resolved.
    pub fn start(config: SupervisorConfig) -> anyhow::Result<Supervisor> {
        let workloads_dir = config.data_dir.join("workloads");
        std::fs::create_dir_all(&workloads_dir)
            .with_context(|| format!("cannot create {}", workloads_dir.display()))?;
        // Absolute paths: they are matched against the command lines of running processes.
        let workloads_dir = workloads_dir
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", workloads_dir.display()))?;
        if config.isolation == Isolation::ClusterUsers {
            check_reachable(&config, &workloads_dir)?;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let mut supervisor = Supervisor {
            config,
            workloads_dir,
            applied: None,
            last_refused: None,
            slots: BTreeMap::new(),
            scanned: false,
            next_id: 1,
            tx,
            rx,
        };
        if let Some(assignment) = supervisor.load_assignment() {
            tracing::info!(
                generation = assignment.generation,
                workloads = assignment.workloads.len(),
                "running the persisted workload assignment"
            );
            supervisor.applied = Some(assignment);
            supervisor.reconcile();
        }
        Ok(supervisor)
    }

    /// The generation of the applied assignment (0: none yet).
    pub fn applied_generation(&self) -> u64 {
        self.applied.as_ref().map_or(0, |a| a.generation)
    }

    /// The directory of workload `name`.
    pub fn workload_dir(&self, name: &str) -> PathBuf {
        self.workloads_dir.join(name)
    }

    /// Every workload the supervisor runs or is still stopping, by name.
    pub fn statuses(&self) -> Vec<WorkloadStatus> {
        self.slots
            .iter()
            .map(|(name, slot)| WorkloadStatus {
                name: name.clone(),
                state: slot.state(),
                pid: slot.proc.as_ref().map(|p| p.pid),
                restarts: slot.restarts,
                last_exit: slot.last_exit.clone(),
            })
            .collect()
    }

    /// The status of workload `name`, if the supervisor knows it.
    pub fn status(&self, name: &str) -> Option<WorkloadStatus> {
        self.statuses().into_iter().find(|s| s.name == name)
    }

    /// Applies `offered` unless its generation is older than the applied one: persists it, then
    /// starts, restarts and stops workloads to match it.
    pub fn apply(&mut self, offered: WorkloadAssignment) -> Applied {
        match spec::judge(self.applied.as_ref(), &offered) {
            Offer::Same => return Applied::Unchanged,
            Offer::Stale => {
                if self.last_refused != Some(offered.generation) {
                    self.last_refused = Some(offered.generation);
                    tracing::warn!(
                        offered = offered.generation,
                        applied = self.applied_generation(),
                        "refusing a workload assignment older than the applied one"
                    );
                }
                return Applied::Refused;
            }
            Offer::Apply => {}
        }
        let path = self.assignment_path();
        if let Err(error) = write_json_atomically(&path, &offered) {
            // Still apply it: running the desired workloads matters more than remembering them.
            tracing::error!(
                "cannot persist the workload assignment to {}: {error}",
                path.display()
            );
        }
        tracing::info!(
            generation = offered.generation,
            workloads = offered.workloads.len(),
            "applying workload assignment"
        );
        self.applied = Some(offered);
        self.reconcile();
        Applied::Applied
    }

    /// The next event of a workload process. Cancel-safe.
    pub async fn next_event(&mut self) -> Event {
        match self.rx.recv().await {
            Some(event) => event,
            // Unreachable: `self.tx` keeps the channel open.
            None => std::future::pending().await,
        }
    }

    /// Waits for the next event and handles it.
    pub async fn step(&mut self) {
        let event = self.next_event().await;
        self.handle(event);
    }

    /// Handles one event.
    pub fn handle(&mut self, event: Event) {
        match event {
            Event::ProcessExited { name, run, how } => self.on_exit(&name, run, how),
            Event::Ready { name, run } => {
                if let Some(p) = self.proc_mut(&name, run) {
                    p.ready = true;
                    tracing::info!(workload = name, pid = p.pid, "workload ready");
                }
            }
            Event::RestartDue { name, token } => {
                let Some(slot) = self.slots.get_mut(&name) else {
                    return;
                };
                if slot.restart.as_ref().is_none_or(|(t, _)| *t != token) {
                    return;
                }
                slot.restart = None;
                if slot.desired.is_some() {
                    slot.restarts = slot.restarts.saturating_add(1);
                }
                self.drive(&name);
            }
            Event::KillDue { name, run } => {
                if let Some(p) = self.proc_mut(&name, run).filter(|p| p.stopping) {
                    tracing::warn!(
                        workload = name,
                        pid = p.pid,
                        "workload ignored SIGTERM; sending SIGKILL"
                    );
                    if let Err(error) = process::signal_group(p.pid, libc::SIGKILL) {
                        tracing::warn!(workload = name, pid = p.pid, "cannot SIGKILL: {error}");
                    }
                }
            }
            Event::Removed { name, error } => {
                let Some(slot) = self.slots.get_mut(&name) else {
                    return;
                };
                slot.removing = false;
                match error {
                    None => tracing::info!(workload = name, "workload removed"),
                    Some(error) => tracing::error!(
                        workload = name,
                        "cannot delete the workload directory (retried at the next start): {error}"
                    ),
                }
                if slot.desired.is_none() {
                    self.slots.remove(&name);
                } else {
                    // Assigned again while it was being removed: start it afresh.
                    self.drive(&name);
                }
            }
        }
    }

    fn proc_mut(&mut self, name: &str, run: u64) -> Option<&mut Proc> {
        self.slots
            .get_mut(name)?
            .proc
            .as_mut()
            .filter(|p| p.run == run)
    }

    fn assignment_path(&self) -> PathBuf {
        self.config.data_dir.join("assignment.json")
    }

    fn load_assignment(&self) -> Option<WorkloadAssignment> {
        let path = self.assignment_path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => {
                tracing::error!(
                    "cannot read {}: {error}; waiting for the control plane",
                    path.display()
                );
                return None;
            }
        };
        match serde_json::from_slice(&bytes) {
            Ok(assignment) => Some(assignment),
            Err(error) => {
                tracing::error!(
                    "{} is corrupt ({error}); waiting for the control plane",
                    path.display()
                );
                None
            }
        }
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Matches the slots to the applied assignment, then drives every slot.
    fn reconcile(&mut self) {
        let mut desired: BTreeMap<String, Workload> = BTreeMap::new();
        for workload in self.applied.iter().flat_map(|a| &a.workloads) {
            if let Some(why) = spec::refusal(workload) {
                tracing::error!(workload = workload.name, "refusing workload: {why}");
            } else if desired.contains_key(&workload.name) {
                tracing::error!(
                    workload = workload.name,
                    "refusing a second workload of the same name"
                );
            } else {
                desired.insert(workload.name.clone(), workload.clone());
            }
        }
        for (name, slot) in &mut self.slots {
            slot.desired = desired.remove(name);
        }
        for (name, workload) in desired {
            self.slots.insert(
                name,
                Slot {
                    desired: Some(workload),
                    ..Slot::default()
                },
            );
        }
        if !self.scanned {
            self.scanned = true;
            self.scan_workloads_dir();
        }
        let names: Vec<String> = self.slots.keys().cloned().collect();
        for name in names {
            self.drive(&name);
        }
    }

    /// Adds a slot (to be stopped and removed) for every directory of no known workload.
    fn scan_workloads_dir(&mut self) {
        let entries = match std::fs::read_dir(&self.workloads_dir) {
            Ok(entries) => entries,
            Err(error) => {
                tracing::error!("cannot list {}: {error}", self.workloads_dir.display());
                return;
            }
        };
        let known: BTreeSet<String> = self.slots.keys().cloned().collect();
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if known.contains(&name) {
                continue;
            }
            if !spec::valid_name(&name) {
                tracing::warn!(
                    "leaving {} alone: not a workload name",
                    entry.path().display()
                );
                continue;
            }
            tracing::info!(
                workload = name,
                "found the directory of an unassigned workload"
            );
            self.slots.insert(
                name,
                Slot {
                    orphan: true,
                    ..Slot::default()
                },
            );
        }
    }

    /// Takes the next step for slot `name` towards its desired state.
    fn drive(&mut self, name: &str) {
        let Some(slot) = self.slots.get_mut(name) else {
            return;
        };
        if slot.removing {
            return;
        }
        match (&slot.desired, &slot.proc) {
            (_, Some(p)) if p.stopping => {}
            (Some(desired), Some(p)) => {
                if p.workload.is_none() {
                    tracing::info!(
                        workload = name,
                        pid = p.pid,
                        "adopted a process of unknown spec; restarting it"
                    );
                    self.stop(name);
                } else if p.workload.as_ref() != Some(desired) {
                    let reload = p.ready
                        && p.workload
                            .as_ref()
                            .is_some_and(|running| spec::reloadable(running, desired));
                    if reload {
                        let desired = desired.clone();
                        self.reload(name, desired);
                    } else {
                        tracing::info!(
                            workload = name,
                            pid = p.pid,
                            "workload spec changed; restarting it"
                        );
                        self.stop(name);
                    }
                }
            }
            (None, Some(p)) => {
                tracing::info!(
                    workload = name,
                    pid = p.pid,
                    "workload no longer assigned; stopping it"
                );
                self.stop(name);
            }
            (Some(_), None) if slot.restart.is_some() => {}
            (desired, None) => {
                let desired = desired.clone();
                // A process we do not watch may run it (started before the agent restarted).
                if self.adopt(name) {
                    self.drive(name);
                } else if let Some(workload) = desired {
                    self.start_process(name, &workload);
                } else {
                    self.remove(name);
                }
            }
        }
    }

    /// Gives the running process of `name` the renewed files of `desired` (certificates, keys,
    /// users, JWKS: [`spec::reloadable`]) and a SIGHUP, so that it reloads them in place; a
    /// failure to write them restarts it instead.
    fn reload(&mut self, name: &str, desired: Workload) {
        let wdir = self.workload_dir(name);
        let written = self.prepare_secrets(&wdir, &desired);
        let Some(p) = self.slots.get_mut(name).and_then(|s| s.proc.as_mut()) else {
            return;
        };
        if let Err(error) = written {
            tracing::warn!(
                workload = name,
                pid = p.pid,
                "cannot write the renewed files ({error}); restarting it"
            );
            self.stop(name);
            return;
        }
        if let Err(error) = process::signal_group(p.pid, libc::SIGHUP) {
            // Gone already: its waiter or poller reports the exit, and it restarts with the files.
            tracing::debug!(workload = name, pid = p.pid, "cannot SIGHUP: {error}");
        }
        tracing::info!(
            workload = name,
            pid = p.pid,
            "renewed certificates or keys written; the process reloads them (SIGHUP)"
        );
        let pid_file = PidFile {
            pid: p.pid,
            start_ticks: process::start_ticks(p.pid),
            program: spec::command_line(
                &self.config.bin_dir,
                &self.config.storage_dir,
                &wdir,
                &desired.spec,
                self.config.metrics_token.is_some(),
            )
            .program,
            workload: desired.clone(),
        };
        p.workload = Some(desired);
        if let Err(error) = write_json_atomically(&wdir.join("pid"), &pid_file) {
            tracing::warn!(workload = name, "cannot write the pid file: {error}");
        }
    }

    /// Adopts a live process of workload `name` that we do not watch, if there is one.
    fn adopt(&mut self, name: &str) -> bool {
        let wdir = self.workload_dir(name);
        let data_dir = spec::process_data_dir(&wdir);
        let pid_file: Option<PidFile> = std::fs::read(wdir.join("pid"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let found = match pid_file {
            Some(f)
                if process::runs(f.pid, spec::binary_name(&f.workload.spec), &data_dir)
                    && f.start_ticks
                        .is_none_or(|t| process::start_ticks(f.pid) == Some(t)) =>
            {
                Some((f.pid, Some(f.workload)))
            }
            // No usable pid file (the agent died right after spawning): look in /proc. The
            // process runs the desired spec if its arguments are those of that spec.
            _ => process::find_by_data_dir(&data_dir).map(|pid| {
                let desired = self.slots.get(name).and_then(|s| s.desired.clone());
                let workload = desired.filter(|w| {
                    let expected = spec::command_line(
                        &self.config.bin_dir,
                        &self.config.storage_dir,
                        &wdir,
                        &w.spec,
                        self.config.metrics_token.is_some(),
                    );
                    process::cmdline(pid).is_some_and(|c| c.get(1..) == Some(&expected.args[..]))
                });
                if let Some(workload) = &workload {
                    let pid_file = PidFile {
                        pid,
                        start_ticks: process::start_ticks(pid),
                        program: spec::command_line(
                            &self.config.bin_dir,
                            &self.config.storage_dir,
                            &wdir,
                            &workload.spec,
                            self.config.metrics_token.is_some(),
                        )
                        .program,
                        workload: workload.clone(),
                    };
                    if let Err(error) = write_json_atomically(&wdir.join("pid"), &pid_file) {
                        tracing::warn!(workload = name, "cannot write the pid file: {error}");
                    }
                }
                (pid, workload)
            }),
        };
        let Some((pid, workload)) = found else {
            return false;
        };
        tracing::info!(workload = name, pid, "adopted a running workload process");
        let run = self.id();
        let tx = self.tx.clone();
        let owned = name.to_owned();
        let poller = tokio::spawn(async move {
            while process::is_alive(pid) {
                tokio::time::sleep(ADOPTED_POLL).await;
            }
            let _ = tx.send(Event::ProcessExited {
                name: owned,
                run,
                how: None,
            });
        });
        if let Some(slot) = self.slots.get_mut(name) {
            slot.proc = Some(Proc {
                pid,
                run,
                workload,
                started: Instant::now(),
                ready: true,
                stopping: false,
                tasks: vec![poller],
            });
        }
        true
    }

    /// Writes what a workload reads besides its flags: a broker's quorum and Kafka listener
    /// TLS files, static SASL users and metrics token, and an
    /// executor's cluster credential (0600 files, never arguments or the environment), and an
    /// executor's workspace storage root.
    fn prepare_secrets(&self, wdir: &Path, workload: &Workload) -> std::io::Result<()> {
        let run_as = self.run_as(workload);
        let owner = run_as.map(isolation::owner);
        let secret_dir = |dir: &Path| -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            match run_as {
                Some(run_as) => isolation::secret_dir(dir, run_as),
                None => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)),
            }
        };
        let write =
            |path: &Path, value: &str| hdi_stdx::secret::write_secret_file_as(path, value, owner);
        let executor = match &workload.spec {
            WorkloadSpec::Broker(broker) => {
                if let Some(tls) = &broker.quorum_tls {
                    let dir = spec::quorum_tls_dir(wdir);
                    secret_dir(&dir)?;
                    for (name, pem) in [
                        ("ca.pem", &tls.ca_pem),
                        ("cert.pem", &tls.cert_pem),
                        ("key.pem", &tls.key_pem),
                    ] {
                        write(&dir.join(name), pem)?;
                    }
                }
                if let Some(security) = &broker.kafka_security {
                    let dir = spec::kafka_tls_dir(wdir);
                    secret_dir(&dir)?;
                    if let Some(tls) = &security.tls {
                        for (name, pem) in [
                            ("ca.pem", &tls.ca_pem),
                            ("cert.pem", &tls.cert_pem),
                            ("key.pem", &tls.key_pem),
                        ] {
                            write(&dir.join(name), pem)?;
                        }
                    }
                    if let Some(users) = &security.sasl_users {
                        write(&dir.join("sasl-users"), users)?;
                    }
                    if let Some(jwks) = &security.oauth_jwks {
                        write(&dir.join("jwks.json"), jwks)?;
                    }
                }
                if let (Some(_), Some(token)) = (broker.metrics_port, &self.config.metrics_token) {
                    write(&spec::metrics_token_file(wdir), token.expose())?;
                }
                return Ok(());
            }
            WorkloadSpec::Executor(executor) => executor,
        };
        write(&spec::credential_file(wdir), &executor.credential)?;
        if let Some(root) = spec::files_root_dir(&self.config.storage_dir, &executor.files_root) {
            std::fs::create_dir_all(&root)?;
            if let Some(run_as) = run_as {
                isolation::storage_root(&root, run_as)?;
            }
        }
        Ok(())
    }

    /// The identity `workload` runs as, when workloads run as their clusters' users.
    fn run_as(&self, workload: &Workload) -> Option<hdi_api::RunAs> {
        (self.config.isolation == Isolation::ClusterUsers).then_some(workload.run_as)
    }

    /// Creates the workload directory and its data directory with the owners and modes of
    /// [`isolation`] (only the agent's user otherwise).
    fn prepare_dirs(&self, wdir: &Path, workload: &Workload) -> std::io::Result<()> {
        let data = spec::process_data_dir(wdir);
        std::fs::create_dir_all(&data)?;
        if let Some(run_as) = self.run_as(workload) {
            isolation::workload_dir(wdir, run_as)?;
            isolation::data_dir(&data, run_as)?;
        }
        Ok(())
    }

    fn start_process(&mut self, name: &str, workload: &Workload) {
        let wdir = self.workload_dir(name);
        let command = spec::command_line(
            &self.config.bin_dir,
            &self.config.storage_dir,
            &wdir,
            &workload.spec,
            self.config.metrics_token.is_some(),
        );
        let log = wdir.join("process.log");
        let spawned = self
            .prepare_dirs(&wdir, workload)
            .and_then(|()| self.prepare_secrets(&wdir, workload))
            .and_then(|()| process::spawn(&command, &wdir, &log, self.run_as(workload)));
        let (mut child, offset) = match spawned {
            Ok(spawned) => spawned,
            Err(error) => {
                let how = format!("cannot start {}: {error}", command.program.display());
                self.exited(name, Duration::ZERO, how);
                return;
            }
        };
        let Some(pid) = child.id() else {
            // Already reaped: cannot happen before the first wait.
            self.exited(name, Duration::ZERO, "exited (status unknown)".to_owned());
            return;
        };
        let pid_file = PidFile {
            pid,
            start_ticks: process::start_ticks(pid),
            program: command.program.clone(),
            workload: workload.clone(),
        };
        if let Err(error) = write_json_atomically(&wdir.join("pid"), &pid_file) {
            tracing::warn!(workload = name, "cannot write the pid file: {error}");
        }
        tracing::info!(workload = name, pid, program = %command.program.display(), "workload started");
        let run = self.id();
        let (tx, owned) = (self.tx.clone(), name.to_owned());
        let waiter = tokio::spawn(async move {
            let how = match child.wait().await {
                Ok(status) => {
                    use std::os::unix::process::ExitStatusExt;
                    spec::describe_exit(status.code(), status.signal())
                }
                Err(error) => format!("cannot wait for the process: {error}"),
            };
            let _ = tx.send(Event::ProcessExited {
                name: owned,
                run,
                how: Some(how),
            });
        });
        let (tx, owned, spec) = (self.tx.clone(), name.to_owned(), workload.spec.clone());
        let watcher = tokio::spawn(async move {
            process::wait_for_ready_line(log, offset, |line| spec::is_ready_line(&spec, line))
                .await;
            let _ = tx.send(Event::Ready { name: owned, run });
        });
        if let Some(slot) = self.slots.get_mut(name) {
            slot.proc = Some(Proc {
                pid,
                run,
                workload: Some(workload.clone()),
                started: Instant::now(),
                ready: false,
                stopping: false,
                tasks: vec![waiter, watcher],
            });
        }
    }

    /// SIGTERM to the process group of `name`'s process, SIGKILL after the stop timeout.
    fn stop(&mut self, name: &str) {
        let stop_timeout = self.config.stop_timeout;
        let tx = self.tx.clone();
        let Some(p) = self.slots.get_mut(name).and_then(|s| s.proc.as_mut()) else {
            return;
        };
        p.stopping = true;
        if let Err(error) = process::signal_group(p.pid, libc::SIGTERM) {
            // Gone already: its waiter or poller reports the exit.
            tracing::debug!(workload = name, pid = p.pid, "cannot SIGTERM: {error}");
        }
        let (owned, run) = (name.to_owned(), p.run);
        p.tasks.push(tokio::spawn(async move {
            tokio::time::sleep(stop_timeout).await;
            let _ = tx.send(Event::KillDue { name: owned, run });
        }));
    }

    /// Deletes `name`'s directory off the event loop; [`Event::Removed`] follows.
    fn remove(&mut self, name: &str) {
        let Some(slot) = self.slots.get_mut(name) else {
            return;
        };
        slot.removing = true;
        if let Some((_, timer)) = slot.restart.take() {
            timer.abort();
        }
        let wdir = self.workloads_dir.join(name);
        let orphaned = slot.orphan.then(|| {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            self.config
                .data_dir
                .join("orphaned")
                .join(format!("{name}-{stamp}"))
        });
        let (tx, owned) = (self.tx.clone(), name.to_owned());
        tokio::task::spawn_blocking(move || {
            let result = match &orphaned {
                Some(target) => target
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| std::fs::rename(&wdir, target)),
                None => std::fs::remove_dir_all(&wdir),
            };
            let error = match result {
                Ok(()) => {
                    if let Some(target) = &orphaned {
                        tracing::warn!(
                            workload = owned,
                            "moved the directory of a workload no applied assignment names to {}",
                            target.display()
                        );
                    }
                    None
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
                Err(error) => Some(format!("{}: {error}", wdir.display())),
            };
            let _ = tx.send(Event::Removed { name: owned, error });
        });
    }

    fn on_exit(&mut self, name: &str, run: u64, how: Option<String>) {
        let Some(slot) = self.slots.get_mut(name) else {
            return;
        };
        if slot.proc.as_ref().is_none_or(|p| p.run != run) {
            return;
        }
        slot.abort_tasks();
        let Some(p) = slot.proc.take() else {
            return;
        };
        let how = how.unwrap_or_else(|| ADOPTED_EXIT.to_owned());
        if p.stopping {
            tracing::info!(workload = name, pid = p.pid, how, "workload stopped");
            slot.last_exit = Some(how);
            self.drive(name);
        } else {
            self.exited(name, p.started.elapsed(), how);
        }
    }

    /// A process ended unexpectedly (or could not start): back off, then restart it.
    fn exited(&mut self, name: &str, ran_for: Duration, how: String) {
        let token = self.id();
        let tx = self.tx.clone();
        let Some(slot) = self.slots.get_mut(name) else {
            return;
        };
        slot.proc = None;
        if slot.desired.is_none() {
            slot.last_exit = Some(how);
            self.drive(name);
            return;
        }
        slot.failures = spec::failures_after_run(slot.failures, ran_for);
        let delay = spec::backoff_delay(slot.failures);
        slot.failures = slot.failures.saturating_add(1);
        tracing::warn!(
            workload = name,
            how,
            "workload process ended; restarting in {}",
            humantime::format_duration(delay)
        );
        slot.last_exit = Some(how);
        let owned = name.to_owned();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(Event::RestartDue { name: owned, token });
        });
        if let Some((_, old)) = slot.restart.replace((token, timer)) {
            old.abort();
        }
    }
}

/// Writes `value` as JSON to `path` atomically, readable by its owner only: a temporary file,
/// fsync, rename, fsync of the directory. A crash leaves the old file or the new one, never a
/// torn one.
/// With workloads running as their clusters' users: the binaries, the workloads' directories
/// and the storage directory must be reachable by users other than root.
fn check_reachable(config: &SupervisorConfig, workloads_dir: &Path) -> anyhow::Result<()> {
    for binary in [spec::BROKER_BINARY, spec::EXECUTOR_BINARY] {
        let program = config.bin_dir.join(binary);
        if program.exists() && !isolation::runnable_by_others(&program) {
            anyhow::bail!(
                "workloads run as their clusters' users, who cannot run {} (give others execute \
                 permission)",
                program.display()
            );
        }
    }
    std::fs::create_dir_all(&config.storage_dir)
        .with_context(|| format!("cannot create {}", config.storage_dir.display()))?;
    for dir in [&config.bin_dir, workloads_dir, &config.storage_dir] {
        if let Some(closed) = hdi_stdx::closed_ancestor(dir) {
            anyhow::bail!(
                "workloads run as their clusters' users, who cannot reach {} through {} (give \
                 others search permission there, e.g. chmod o+x)",
                dir.display(),
                closed.display()
            );
        }
    }
    Ok(())
}

fn write_json_atomically<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    // Owner only: assignments and pid files hold the workloads' credentials.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}
