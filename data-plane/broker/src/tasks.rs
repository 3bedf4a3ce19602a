//! The broker's own tasks, started by [`Broker::start_tasks`]: membership (registration and
//! heartbeats), the controller duties, replication, ISR maintenance, the log cleaner, and
//! housekeeping (the group
//! coordinator's ticker, flushes and retention), and the transaction coordinator's markers and
//! timeouts.

use std::sync::Arc;
use std::time::Duration;

use crate::broker::Broker;
use crate::cluster::controller::Controller;
use crate::replication;

impl Broker {
    /// Starts the broker's own tasks: membership (registration and heartbeats), the controller
    /// duties, replication, ISR maintenance, and housekeeping. They stop when the returned set is
    /// dropped.
    pub fn start_tasks(self: &Arc<Self>) -> tokio::task::JoinSet<()> {
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(Arc::clone(&self.cluster).run_membership());
        tasks.spawn(Controller::run(Arc::clone(&self.cluster)));
        tasks.spawn(replication::run_replication(Arc::clone(self)));
        tasks.spawn(replication::run_isr_maintenance(Arc::clone(self)));
        tasks.spawn(crate::mirror::run_discovery(Arc::clone(self)));
        tasks.spawn(crate::mirror::run_mirroring(Arc::clone(self)));
        tasks.spawn(crate::txn_coordinator::run(Arc::clone(self)));
        tasks.spawn(crate::log_cleaner::run(Arc::clone(self)));
        tasks.spawn(Arc::clone(self).background());
        tasks
    }

    /// Background work: the group coordinator's ticker, retention and the expiry of idle
    /// producers' state (`producer.id.expiration.ms`). Runs until dropped.
    pub async fn background(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut retention_due = tokio::time::Instant::now();
        loop {
            tick.tick().await;
            let broker = Arc::clone(&self);
            let _ = tokio::task::spawn_blocking(move || {
                broker.groups.tick();
                for replica in broker.replicas.all() {
                    replica.flush_if_due();
                }
            })
            .await;
            if tokio::time::Instant::now() >= retention_due {
                retention_due += Duration::from_secs(30);
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0);
                let broker = Arc::clone(&self);
                let expiration = i64::try_from(self.config.producer_id_expiration.as_millis())
                    .unwrap_or(i64::MAX);
                let _ = tokio::task::spawn_blocking(move || {
                    for replica in broker.replicas.all() {
                        replica.apply_retention(now_ms);
                        replica.expire_producers(now_ms, expiration);
                    }
                })
                .await;
            }
        }
    }
}
