//! The controller: what the quorum leader does besides replicating metadata.
//!
//! - **Liveness.** Every broker heartbeats to the controller every
//!   [`super::HEARTBEAT_INTERVAL`]. A broker unheard for the session timeout
//!   (`--broker-session-timeout`) is fenced (its leaderships move to other ISR members); a fenced
//!   broker that heartbeats with its metadata caught up is unfenced. A new controller has no
//!   heartbeat history, so it gives every broker one full session timeout from its election.
//! - **Controlled shutdown.** A heartbeat marked `shutting_down` fences the broker at once (while
//!   it is still alive), which moves its leaderships before it stops.
//! - **Learners.** A broker that heartbeats but is not a quorum member is added as a Raft learner,
//!   so that it receives the metadata log (how a broker joins a running cluster).
//! - **Reassignments.** A partition whose added replicas are all in sync has its reassignment
//!   completed (the removed replicas dropped, leadership moved into the target if needed).
//! - **Preferred leaders.** Every few seconds, partitions whose preferred replica is in sync and
//!   alive but not leading are moved back to it.
//!
//! Only the decisions need the leader's clock; their effects are metadata commands, applied the
//! same way on every broker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::BasicNode;
use tokio::time::Instant;

use super::Cluster;
use super::metadata::{BrokerId, Command};
use super::rpc::{Heartbeat, ProposeAnswer};
use crate::config::BrokerConfig;
use crate::state::lock;

/// How often partitions are checked for preferred-leader imbalance.
const PREFERRED_LEADER_CHECK: Duration = Duration::from_secs(5);

/// The controller's in-memory state.
pub struct Controller {
    session_timeout: Duration,
    last_seen: Mutex<HashMap<BrokerId, Instant>>,
    leader_since: Mutex<Option<Instant>>,
}

impl Controller {
    /// A controller with the broker's settings.
    pub fn new(config: &BrokerConfig) -> Controller {
        Controller {
            session_timeout: config.broker_session_timeout,
            last_seen: Mutex::new(HashMap::new()),
            leader_since: Mutex::new(None),
        }
    }

    /// Handles a broker's heartbeat (this broker leads the quorum).
    pub async fn heartbeat(&self, cluster: &Cluster, heartbeat: &Heartbeat) -> ProposeAnswer {
        // Liveness only for the registered incarnation (or a broker not registered yet): a
        // heartbeat of an old process, or a forged one, cannot keep a dead broker alive.
        let current = cluster
            .view()
            .meta
            .brokers
            .get(&heartbeat.id)
            .is_none_or(|record| record.incarnation == heartbeat.incarnation);
        if current {
            lock(&self.last_seen).insert(heartbeat.id, Instant::now());
        }
        let node = u64::try_from(heartbeat.id).unwrap_or(u64::MAX);
        let known = cluster
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&node)
            .is_some();
        if !known {
            tracing::info!(broker = heartbeat.id, addr = %heartbeat.quorum_addr, "adding broker as a quorum learner");
            let node_info = BasicNode {
                addr: heartbeat.quorum_addr.clone(),
            };
            if let Err(error) = cluster.raft.add_learner(node, node_info, false).await {
                return ProposeAnswer::Failed(error.to_string());
            }
        }
        let view = cluster.view();
        let Some(record) = view.meta.brokers.get(&heartbeat.id) else {
            return ProposeAnswer::Committed {
                index: 0,
                outcome: super::metadata::Outcome::Ok,
            };
        };
        if record.incarnation != heartbeat.incarnation {
            // An old process (or not yet registered): nothing to do.
        } else if record.fenced && heartbeat.caught_up && !heartbeat.shutting_down {
            tracing::info!(broker = heartbeat.id, "unfencing broker");
            return cluster
                .client_write(Command::UnfenceBroker { id: heartbeat.id })
                .await;
        } else if !record.fenced && heartbeat.shutting_down {
            tracing::info!(broker = heartbeat.id, "controlled shutdown: fencing broker");
            return cluster
                .client_write(Command::FenceBroker { id: heartbeat.id })
                .await;
        }
        ProposeAnswer::Committed {
            index: 0,
            outcome: super::metadata::Outcome::Ok,
        }
    }

    /// Runs the controller's periodic duties while this broker leads the quorum. Cancel safe.
    pub async fn run(cluster: Arc<Cluster>) {
        let controller = &cluster.controller;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut last_balance = Instant::now();
        loop {
            tick.tick().await;
            if !cluster.is_controller() {
                *lock(&controller.leader_since) = None;
                continue;
            }
            let now = Instant::now();
            let since = *lock(&controller.leader_since).get_or_insert_with(|| {
                tracing::info!("this broker is now the controller");
                now
            });
            let view = cluster.view();
            let expired: Vec<BrokerId> = {
                let seen = lock(&controller.last_seen);
                view.meta
                    .live_brokers()
                    .filter(|b| {
                        let last = seen.get(&b.id).copied().unwrap_or(since).max(since);
                        now.duration_since(last) > controller.session_timeout
                    })
                    .map(|b| b.id)
                    .collect()
            };
            for id in expired {
                tracing::warn!(broker = id, timeout = ?controller.session_timeout, "no heartbeat: fencing broker");
                if let ProposeAnswer::Failed(error) =
                    cluster.client_write(Command::FenceBroker { id }).await
                {
                    tracing::warn!(broker = id, %error, "cannot fence broker");
                }
            }
            for (topic, partition) in cluster.view().meta.completable_reassignments() {
                tracing::info!(%topic, partition, "reassignment caught up: completing it");
                let _ = cluster
                    .client_write(Command::CompleteReassignment { topic, partition })
                    .await;
            }
            if now.duration_since(last_balance) >= PREFERRED_LEADER_CHECK {
                last_balance = now;
                if cluster.view().meta.imbalanced() > 0 {
                    tracing::info!("moving leadership back to preferred replicas");
                    let _ = cluster
                        .client_write(Command::ElectPreferredLeaders { partitions: None })
                        .await;
                }
            }
        }
    }
}
