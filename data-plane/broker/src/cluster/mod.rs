//! Cluster membership and the metadata quorum.
//!
//! - [`metadata`]: the replicated model and its deterministic `apply`.
//! - [`raft`]: `openraft` storage and state machine; metadata is read from a `watch` channel.
//! - [`rpc`]: the broker-to-broker protocol on the quorum listener.
//! - [`controller`]: what the Raft leader does besides replicating: broker liveness (fencing and
//!   unfencing, which move partition leadership) and preferred-leader balancing.
//!
//! [`Cluster`] ties them together for the rest of the broker: it proposes commands (to the local
//! Raft if this broker leads the quorum, else to the leader over [`rpc`]), heartbeats to the
//! controller, and hands out metadata views. A broker started without `--quorum` runs the same
//! code as a one-member quorum.

pub mod controller;
pub mod metadata;
pub mod raft;
pub mod rpc;
pub mod topics;
pub mod transport;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::BasicNode;
use tokio::sync::watch;
use uuid::Uuid;

use self::metadata::{BrokerId, BrokerRecord, Command, Outcome};
use self::raft::{LogStore, MetadataView, Raft, StateMachine};
use self::rpc::{Heartbeat, Peer, ProposeAnswer, Request};
use crate::config::BrokerConfig;
use crate::state::KafkaError;
use hdi_kafka_client::codes;

/// How long a proposal may take before the client gets REQUEST_TIMED_OUT.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a broker heartbeats to the controller.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(300);

/// This broker's view of and handle on the cluster.
pub struct Cluster {
    /// This broker.
    pub node_id: BrokerId,
    /// This process's incarnation.
    pub incarnation: Uuid,
    /// The Raft node.
    pub raft: Raft,
    /// The metadata as applied here.
    pub metadata: watch::Receiver<Arc<MetadataView>>,
    /// Quorum members (`id -> quorum address`) from `--quorum`.
    seeds: BTreeMap<u64, String>,
    /// Address overrides by node id (`--peer-route`).
    routes: rpc::Routes,
    /// This broker's registration record.
    record: BrokerRecord,
    /// The Raft index of this incarnation's registration, once committed.
    registered_at: Mutex<Option<u64>>,
    /// Set on SIGTERM: heartbeats ask the controller to move leadership away.
    pub shutting_down: std::sync::atomic::AtomicBool,
    /// Controller state (used while this broker leads the quorum).
    pub controller: controller::Controller,
}

fn raft_config() -> anyhow::Result<Arc<openraft::Config>> {
    let config = openraft::Config {
        cluster_name: "hdi".into(),
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(1000),
        max_in_snapshot_log_to_keep: 200,
        ..Default::default()
    };
    Ok(Arc::new(config.validate()?))
}

impl Cluster {
    /// Starts the Raft node (initializing the quorum on first start) and returns the handle.
    ///
    /// # Errors
    /// When the quorum files cannot be opened or Raft cannot start.
    pub async fn start(
        config: &BrokerConfig,
        quorum_addr: String,
        offsets: crate::groups::SharedOffsets,
        txns: crate::txn::SharedTxns,
    ) -> anyhow::Result<Arc<Cluster>> {
        let dir = config.data_dir.join("quorum");
        let log = LogStore::open(&dir)?;
        let (machine, metadata) = StateMachine::open(&dir, offsets, txns)?;
        let node_id = u64::try_from(config.node_id)?;
        let routes: rpc::Routes = Arc::new(config.peer_routes.clone());
        let network = rpc::Network {
            routes: Arc::clone(&routes),
        };
        let raft = Raft::new(node_id, raft_config()?, network, log, machine).await?;
        let seeds: BTreeMap<u64, String> = if config.quorum.is_empty() {
            BTreeMap::from([(node_id, quorum_addr.clone())])
        } else {
            config.quorum.clone()
        };
        if seeds.contains_key(&node_id) && !raft.is_initialized().await? {
            let members: BTreeMap<u64, BasicNode> = seeds
                .iter()
                .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
                .collect();
            // Safe on every voter with the same members; refused (ignored) once initialized.
            if let Err(error) = raft.initialize(members).await {
                tracing::debug!(%error, "quorum already initialized");
            }
        }
        let record = BrokerRecord {
            id: config.node_id,
            incarnation: Uuid::new_v4(),
            host: config.listeners[0].advertised_host.clone(),
            port: config.listeners[0].advertised_port,
            rack: config.rack.clone(),
            quorum_addr,
            listeners: config
                .listeners
                .iter()
                .map(|l| {
                    (
                        l.protocol.name().to_owned(),
                        (l.advertised_host.clone(), l.advertised_port),
                    )
                })
                .collect(),
            fenced: true,
        };
        Ok(Arc::new(Cluster {
            node_id: config.node_id,
            incarnation: record.incarnation,
            raft,
            metadata,
            seeds,
            routes,
            record,
            registered_at: Mutex::new(None),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            controller: controller::Controller::new(config),
        }))
    }

    /// The current metadata.
    pub fn view(&self) -> Arc<MetadataView> {
        Arc::clone(&self.metadata.borrow())
    }

    /// Whether this broker has applied the metadata up to its own registration (before that its
    /// view may be stale, and it must not act on what the view lacks).
    pub fn caught_up(&self) -> bool {
        let registered = *crate::state::lock(&self.registered_at);
        registered.is_some_and(|index| self.view().applied_index >= index)
    }

    /// The quorum leader's broker id, if known.
    pub fn leader_id(&self) -> Option<BrokerId> {
        self.raft
            .metrics()
            .borrow()
            .current_leader
            .and_then(|id| i32::try_from(id).ok())
    }

    fn leader_addr(&self) -> Option<String> {
        let leader = self.raft.metrics().borrow().current_leader?;
        self.node_addr(leader)
    }

    /// Where to reach node `id`'s quorum listener (its route override applied).
    pub fn node_addr(&self, id: u64) -> Option<String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let known = metrics
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
            .or_else(|| self.seeds.get(&id).cloned())?;
        Some(rpc::route(&self.routes, id, &known))
    }

    /// Where to reach a broker's quorum listener given its registered address.
    pub fn broker_addr(&self, id: BrokerId, registered: &str) -> String {
        rpc::route(
            &self.routes,
            u64::try_from(id).unwrap_or(u64::MAX),
            registered,
        )
    }

    /// Whether this broker leads the quorum (and so is the controller).
    pub fn is_controller(&self) -> bool {
        self.raft.metrics().borrow().current_leader
            == Some(u64::try_from(self.node_id).unwrap_or(u64::MAX))
    }

    /// Commits `command` through the quorum leader and waits until it is applied here, so the
    /// caller reads its effect. Returns the state machine's outcome.
    ///
    /// # Errors
    /// REQUEST_TIMED_OUT when no leader takes it in time.
    pub async fn propose(&self, command: Command) -> Result<Outcome, KafkaError> {
        let deadline = tokio::time::Instant::now() + PROPOSE_TIMEOUT;
        let (index, outcome) = self.commit(Request::Propose(command), deadline).await?;
        self.wait_applied(index, deadline).await?;
        Ok(outcome)
    }

    /// Sends a proposal (or heartbeat) to whoever leads the quorum, following redirects.
    async fn commit(
        &self,
        request: Request,
        deadline: tokio::time::Instant,
    ) -> Result<(u64, Outcome), KafkaError> {
        let mut hint: Option<u64> = None;
        let mut seed_turn = 0usize;
        let mut last_error = String::from("no quorum leader");
        while tokio::time::Instant::now() < deadline {
            let answer = if self.is_controller() {
                Some(self.handle_locally(&request).await)
            } else {
                let addr = hint
                    .take()
                    .and_then(|id| self.node_addr(id))
                    .or_else(|| self.leader_addr())
                    .or_else(|| {
                        // No leader known (a joining broker, or an election): try the seeds in turn.
                        let seeds: Vec<String> = self
                            .seeds
                            .iter()
                            .map(|(id, addr)| rpc::route(&self.routes, *id, addr))
                            .collect();
                        seed_turn += 1;
                        seeds
                            .get(seed_turn % seeds.len().max(1))
                            .map(|s| (*s).clone())
                    });
                match addr {
                    Some(addr) if addr != self.record.quorum_addr => {
                        let mut peer = Peer::new(addr);
                        match peer
                            .call::<ProposeAnswer>(&request, Duration::from_secs(5))
                            .await
                        {
                            Ok((answer, _)) => Some(answer),
                            Err(error) => {
                                last_error = crate::state::chain(&error);
                                None
                            }
                        }
                    }
                    _ => None,
                }
            };
            match answer {
                Some(ProposeAnswer::Committed { index, outcome }) => return Ok((index, outcome)),
                Some(ProposeAnswer::NotLeader { leader }) => {
                    hint = leader;
                    if hint.is_none() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                Some(ProposeAnswer::Failed(message)) => {
                    last_error = message;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        Err(KafkaError::new(
            codes::REQUEST_TIMED_OUT,
            format!("the metadata quorum did not answer: {last_error}"),
        ))
    }

    /// Handles a proposal or heartbeat as the quorum leader (or says who leads).
    pub async fn handle_locally(&self, request: &Request) -> ProposeAnswer {
        let command = match request {
            Request::Propose(command) => command.clone(),
            Request::Heartbeat(heartbeat) => {
                if !self.is_controller() {
                    return ProposeAnswer::NotLeader {
                        leader: self.raft.metrics().borrow().current_leader,
                    };
                }
                return self.controller.heartbeat(self, heartbeat).await;
            }
            _ => return ProposeAnswer::Failed("not a proposal".into()),
        };
        self.client_write(command).await
    }

    /// Writes a command to the local Raft (which must lead).
    pub async fn client_write(&self, command: Command) -> ProposeAnswer {
        match self.raft.client_write(command).await {
            Ok(response) => ProposeAnswer::Committed {
                index: response.log_id.index,
                outcome: response.data,
            },
            Err(error) => match error.forward_to_leader::<BasicNode>() {
                Some(forward) => ProposeAnswer::NotLeader {
                    leader: forward.leader_id,
                },
                None => ProposeAnswer::Failed(error.to_string()),
            },
        }
    }

    async fn wait_applied(
        &self,
        index: u64,
        deadline: tokio::time::Instant,
    ) -> Result<(), KafkaError> {
        let mut watch = self.metadata.clone();
        let waited =
            tokio::time::timeout_at(deadline, watch.wait_for(|v| v.applied_index >= index)).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            _ => Err(KafkaError::new(
                codes::REQUEST_TIMED_OUT,
                format!("metadata index {index} was committed but not yet applied here"),
            )),
        }
    }

    /// Registers this incarnation, then heartbeats until the process ends. Cancel safe (drop it
    /// to stop heartbeating).
    pub async fn run_membership(self: Arc<Self>) {
        loop {
            let deadline = tokio::time::Instant::now() + PROPOSE_TIMEOUT;
            match self
                .commit(
                    Request::Propose(Command::RegisterBroker(self.record.clone())),
                    deadline,
                )
                .await
            {
                Ok((index, _)) => {
                    *crate::state::lock(&self.registered_at) = Some(index);
                    tracing::info!(index, incarnation = %self.incarnation, "registered with the cluster");
                    break;
                }
                Err(error) => tracing::warn!(%error.message, "registration failed; retrying"),
            }
        }
        let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
        loop {
            tick.tick().await;
            let caught_up = self.caught_up();
            let heartbeat = Heartbeat {
                id: self.node_id,
                incarnation: self.incarnation,
                caught_up,
                shutting_down: self.shutting_down.load(std::sync::atomic::Ordering::SeqCst),
                quorum_addr: self.record.quorum_addr.clone(),
            };
            let deadline = tokio::time::Instant::now() + HEARTBEAT_INTERVAL * 3;
            if let Err(error) = self.commit(Request::Heartbeat(heartbeat), deadline).await {
                tracing::debug!(%error.message, "heartbeat not delivered");
            }
        }
    }
}
