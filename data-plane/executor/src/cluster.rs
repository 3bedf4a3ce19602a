//! Cluster membership as the driver sees it: which workers are live, where they listen, and which
//! incarnation (process start) of each it last heard from.
//!
//! [`Membership`] is pure: it reads no clock and does no I/O. The caller passes `now` to every
//! call, so the rules are unit-tested with made-up instants. A worker is live while the time since
//! its last registration or heartbeat is below the membership's timeout; [`Membership::workers`]
//! never lists a worker past it, even before [`Membership::expire`] has removed it.
//!
//! A registration with a new incarnation for a known id replaces the old one at once (the worker
//! restarted): the last writer wins, and the driver logs the change.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use uuid::Uuid;

/// A worker's id, chosen by whoever provisions it; unique within a cluster and never 0.
pub type WorkerId = NonZeroU32;

/// What [`Membership::register`] made of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// The id was not live: the worker joined.
    Joined,
    /// The same incarnation heartbeated again.
    Renewed,
    /// The id was live with another incarnation: the worker restarted and replaced it.
    Restarted,
}

/// One live worker, as listed by [`Membership::workers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worker {
    /// The worker's id.
    pub id: WorkerId,
    /// Where the worker listens, `host:port`, as it reported.
    pub address: String,
    /// The worker's process incarnation, chosen at its start.
    pub incarnation: Uuid,
    /// Time since the worker was last heard from.
    pub since_seen: Duration,
}

#[derive(Debug, Clone)]
struct Entry {
    address: String,
    incarnation: Uuid,
    last_seen: Instant,
}

/// The set of live workers of one driver.
#[derive(Debug, Clone)]
pub struct Membership {
    timeout: Duration,
    workers: BTreeMap<WorkerId, Entry>,
}

impl Membership {
    /// An empty membership whose workers expire `timeout` after they were last heard from.
    #[must_use]
    pub fn new(timeout: Duration) -> Membership {
        Membership {
            timeout,
            workers: BTreeMap::new(),
        }
    }

    /// The expiry timeout.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Records a registration or heartbeat of worker `id` at `now`.
    pub fn register(
        &mut self,
        id: WorkerId,
        address: &str,
        incarnation: Uuid,
        now: Instant,
    ) -> Registration {
        let outcome = match self.workers.get(&id) {
            Some(entry) if self.is_live(entry, now) => {
                if entry.incarnation == incarnation {
                    Registration::Renewed
                } else {
                    Registration::Restarted
                }
            }
            // Unknown, or expired but not yet removed: either way it joins anew.
            _ => Registration::Joined,
        };
        self.workers.insert(
            id,
            Entry {
                address: address.to_owned(),
                incarnation,
                last_seen: now,
            },
        );
        outcome
    }

    /// Removes every worker not heard from within the timeout at `now`; returns them in id order.
    pub fn expire(&mut self, now: Instant) -> Vec<Worker> {
        let expired: Vec<Worker> = self
            .workers
            .iter()
            .filter(|(_, entry)| !self.is_live(entry, now))
            .map(|(id, entry)| view(*id, entry, now))
            .collect();
        for worker in &expired {
            self.workers.remove(&worker.id);
        }
        expired
    }

    /// The live workers at `now`, in id order.
    #[must_use]
    pub fn workers(&self, now: Instant) -> Vec<Worker> {
        self.workers
            .iter()
            .filter(|(_, entry)| self.is_live(entry, now))
            .map(|(id, entry)| view(*id, entry, now))
            .collect()
    }

    fn is_live(&self, entry: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(entry.last_seen) < self.timeout
    }
}

fn view(id: WorkerId, entry: &Entry, now: Instant) -> Worker {
    Worker {
        id,
        address: entry.address.clone(),
        incarnation: entry.incarnation,
        since_seen: now.saturating_duration_since(entry.last_seen),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn id(n: u32) -> WorkerId {
        WorkerId::new(n).unwrap()
    }

    fn ids(workers: &[Worker]) -> Vec<u32> {
        workers.iter().map(|w| w.id.get()).collect()
    }

    #[test]
    fn registration_joins_renews_and_restarts() {
        let t0 = Instant::now();
        let mut members = Membership::new(TIMEOUT);
        let first = Uuid::new_v4();
        let second = Uuid::new_v4();
        assert_eq!(
            members.register(id(1), "127.0.0.1:1000", first, t0),
            Registration::Joined
        );
        assert_eq!(
            members.register(id(1), "127.0.0.1:1000", first, t0 + Duration::from_secs(1)),
            Registration::Renewed
        );
        assert_eq!(
            members.register(id(1), "127.0.0.1:2000", second, t0 + Duration::from_secs(2)),
            Registration::Restarted
        );
        let workers = members.workers(t0 + Duration::from_millis(2_500));
        assert_eq!(
            workers,
            vec![Worker {
                id: id(1),
                address: "127.0.0.1:2000".into(),
                incarnation: second,
                since_seen: Duration::from_millis(500),
            }]
        );
    }

    #[test]
    fn workers_are_listed_in_id_order() {
        let t0 = Instant::now();
        let mut members = Membership::new(TIMEOUT);
        for n in [3, 1, 2] {
            members.register(id(n), "h:1", Uuid::new_v4(), t0);
        }
        assert_eq!(ids(&members.workers(t0)), vec![1, 2, 3]);
    }

    #[test]
    fn a_silent_worker_expires_at_the_timeout_and_not_before() {
        let t0 = Instant::now();
        let mut members = Membership::new(TIMEOUT);
        members.register(id(1), "h:1", Uuid::new_v4(), t0);
        members.register(id(2), "h:2", Uuid::new_v4(), t0);
        // Worker 1 keeps heartbeating; worker 2 goes silent.
        members.register(id(1), "h:1", Uuid::new_v4(), t0 + Duration::from_secs(3));

        let just_before = t0 + TIMEOUT - Duration::from_millis(1);
        assert!(members.expire(just_before).is_empty());
        assert_eq!(ids(&members.workers(just_before)), vec![1, 2]);

        // Not listed once past the timeout, even before `expire` removes it.
        assert_eq!(ids(&members.workers(t0 + TIMEOUT)), vec![1]);
        let expired = members.expire(t0 + TIMEOUT);
        assert_eq!(ids(&expired), vec![2]);
        assert_eq!(expired[0].since_seen, TIMEOUT);
        assert_eq!(ids(&members.workers(t0 + TIMEOUT)), vec![1]);
        assert!(members.expire(t0 + TIMEOUT).is_empty());
    }

    #[test]
    fn an_expired_worker_that_comes_back_joins_again() {
        let t0 = Instant::now();
        let mut members = Membership::new(TIMEOUT);
        let incarnation = Uuid::new_v4();
        members.register(id(7), "h:7", incarnation, t0);
        let later = t0 + TIMEOUT + Duration::from_secs(1);
        // Not yet removed by `expire`, but no longer live: a join, not a renewal.
        assert_eq!(
            members.register(id(7), "h:7", incarnation, later),
            Registration::Joined
        );
        assert_eq!(ids(&members.workers(later)), vec![7]);
    }

    #[test]
    fn an_instant_before_the_last_heartbeat_counts_as_just_seen() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut members = Membership::new(TIMEOUT);
        members.register(id(1), "h:1", Uuid::new_v4(), t0);
        let earlier = t0 - Duration::from_secs(1);
        assert_eq!(members.workers(earlier)[0].since_seen, Duration::ZERO);
        assert!(members.expire(earlier).is_empty());
    }
}
