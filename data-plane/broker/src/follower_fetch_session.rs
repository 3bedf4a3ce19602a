//! A follower's side of its fetch session with one leader (KIP-227; Kafka's
//! `FetchSessionHandler`): which partitions the next replica fetch must list, and what the
//! leader's answer does to the session.
//!
//! The follower gives [`FollowerFetchSession::build`] the position of every partition it wants
//! from the leader now. Without a session the request is full (every partition, epoch
//! [`INITIAL_EPOCH`], asking for one); within a session it is incremental: only the partitions
//! whose position (fetch offset, log start offset, leader epoch) differs from what the leader
//! holds, and the ones the follower stopped fetching as `forgotten` (a partition that moved to
//! another leader, or that must truncate first). The leader keeps the others' positions and
//! answers only partitions with something new (`replication.rs`).
//!
//! Any failure falls back to a full fetch: FETCH_SESSION_ID_NOT_FOUND (the leader restarted or
//! evicted the session), INVALID_FETCH_SESSION_EPOCH, an answer without a session, or a call that
//! failed (its answer, and what the leader applied of it, unknown: the next full fetch names the
//! old session so the leader closes it). With sessions turned off every fetch is full and
//! sessionless ([`FINAL_EPOCH`]), as before sessions.
//!
//! Pure state: no I/O, no broker types.

use std::collections::HashMap;

use crate::fetch_sessions::{
    FINAL_EPOCH, FetchPosition, INITIAL_EPOCH, INVALID_SESSION_ID, TopicPartition, next_epoch,
};

/// Kafka's FETCH_SESSION_ID_NOT_FOUND.
pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
/// Kafka's INVALID_FETCH_SESSION_EPOCH.
pub const INVALID_FETCH_SESSION_EPOCH: i16 = 71;

/// The session fields and partitions of one replica fetch, from [`FollowerFetchSession::build`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRequest {
    /// The session named (0: none).
    pub session_id: i32,
    /// Its epoch: [`INITIAL_EPOCH`] for a full fetch asking for a session, [`FINAL_EPOCH`] for
    /// one without, else incremental.
    pub epoch: i32,
    /// The partitions to list, with their positions.
    pub partitions: Vec<(TopicPartition, FetchPosition)>,
    /// The partitions the session drops (incremental fetches only).
    pub forgotten: Vec<TopicPartition>,
}

impl SessionRequest {
    /// Whether the request lists every wanted partition.
    pub fn is_full(&self) -> bool {
        self.epoch == INITIAL_EPOCH || self.epoch == FINAL_EPOCH
    }
}

/// A follower's session with one leader.
#[derive(Debug)]
pub struct FollowerFetchSession {
    enabled: bool,
    session_id: i32,
    /// The next request's epoch.
    epoch: i32,
    /// The positions the leader's session holds.
    sent: HashMap<TopicPartition, FetchPosition>,
}

impl FollowerFetchSession {
    /// No session yet; `enabled` false keeps every fetch full and sessionless.
    pub fn new(enabled: bool) -> FollowerFetchSession {
        FollowerFetchSession {
            enabled,
            session_id: INVALID_SESSION_ID,
            epoch: if enabled { INITIAL_EPOCH } else { FINAL_EPOCH },
            sent: HashMap::new(),
        }
    }

    /// The session id held (0: none).
    pub fn session_id(&self) -> i32 {
        self.session_id
    }

    /// The next request for `wanted`, the position of every partition the follower fetches from
    /// the leader now.
    pub fn build(&self, wanted: &[(TopicPartition, FetchPosition)]) -> SessionRequest {
        if self.epoch == INITIAL_EPOCH || self.epoch == FINAL_EPOCH {
            return SessionRequest {
                session_id: self.session_id,
                epoch: self.epoch,
                partitions: wanted.to_vec(),
                forgotten: Vec::new(),
            };
        }
        let partitions = wanted
            .iter()
            .filter(|(key, position)| self.sent.get(key) != Some(position))
            .cloned()
            .collect();
        let listed: std::collections::HashSet<&TopicPartition> =
            wanted.iter().map(|(key, _)| key).collect();
        let mut forgotten: Vec<TopicPartition> = self
            .sent
            .keys()
            .filter(|key| !listed.contains(key))
            .cloned()
            .collect();
        forgotten.sort();
        SessionRequest {
            session_id: self.session_id,
            epoch: self.epoch,
            partitions,
            forgotten,
        }
    }

    /// The leader answered `request` with session `session_id` (0: none) and top-level `error`
    /// (0: none; a session error: nothing was read).
    pub fn answered(&mut self, request: SessionRequest, session_id: i32, error: i16) {
        if !self.enabled {
            return;
        }
        match error {
            FETCH_SESSION_ID_NOT_FOUND => return self.reset(INVALID_SESSION_ID),
            INVALID_FETCH_SESSION_EPOCH => return self.reset(self.session_id),
            _ => {}
        }
        if session_id == INVALID_SESSION_ID {
            // No room at the leader, a leader without sessions, or a session that lost its
            // last partition: full fetches until one is made.
            return self.reset(INVALID_SESSION_ID);
        }
        let full = request.is_full();
        let epoch = request.epoch;
        if full {
            self.session_id = session_id;
            self.sent = request.partitions.into_iter().collect();
        } else {
            if session_id != self.session_id {
                // Not the session asked for: the leader's and our views may differ.
                return self.reset(session_id);
            }
            for key in &request.forgotten {
                self.sent.remove(key);
            }
            self.sent.extend(request.partitions);
        }
        self.epoch = next_epoch(if full { INITIAL_EPOCH } else { epoch });
    }

    /// The call failed (no answer, or one that could not be read): the next fetch is full and
    /// closes the session.
    pub fn failed(&mut self) {
        if self.enabled {
            self.reset(self.session_id);
        }
    }

    /// Full fetch next, naming `close` (the leader closes it; 0: none).
    fn reset(&mut self, close: i32) {
        self.session_id = close;
        self.epoch = INITIAL_EPOCH;
        self.sent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(partition: i32) -> TopicPartition {
        TopicPartition {
            topic: "t".into(),
            partition,
        }
    }

    fn at(offset: i64, epoch: i32) -> FetchPosition {
        FetchPosition {
            fetch_offset: offset,
            log_start_offset: 0,
            max_bytes: 1 << 20,
            current_leader_epoch: epoch,
            last_fetched_epoch: -1,
        }
    }

    fn wanted(offsets: &[(i32, i64)]) -> Vec<(TopicPartition, FetchPosition)> {
        offsets.iter().map(|&(p, o)| (tp(p), at(o, 1))).collect()
    }

    /// A session opened over partitions 0..3 at offset 10, id 42.
    fn opened() -> FollowerFetchSession {
        let mut session = FollowerFetchSession::new(true);
        let request = session.build(&wanted(&[(0, 10), (1, 10), (2, 10)]));
        assert_eq!((request.session_id, request.epoch), (0, INITIAL_EPOCH));
        assert_eq!(request.partitions.len(), 3);
        session.answered(request, 42, 0);
        session
    }

    #[test]
    fn an_open_session_lists_only_changed_partitions_and_forgets_the_dropped() {
        let mut session = opened();
        // Idle: nothing listed, at epoch 1.
        let idle = session.build(&wanted(&[(0, 10), (1, 10), (2, 10)]));
        assert_eq!((idle.session_id, idle.epoch), (42, 1));
        assert!(idle.partitions.is_empty() && idle.forgotten.is_empty());
        session.answered(idle, 42, 0);
        // Partition 1 moved on, 2 left (another leader), 3 joined; a new leader epoch of 0.
        let mut now = wanted(&[(1, 15), (3, 0)]);
        now.insert(0, (tp(0), at(10, 2)));
        let request = session.build(&now);
        assert_eq!(request.epoch, 2);
        assert_eq!(
            request.partitions,
            vec![(tp(0), at(10, 2)), (tp(1), at(15, 1)), (tp(3), at(0, 1))]
        );
        assert_eq!(request.forgotten, vec![tp(2)]);
        session.answered(request, 42, 0);
        // What was sent is what the leader holds now.
        let again = session.build(&now);
        assert_eq!(again.epoch, 3);
        assert!(again.partitions.is_empty() && again.forgotten.is_empty());
    }

    #[test]
    fn session_errors_and_failed_calls_fall_back_to_a_full_fetch() {
        let all = wanted(&[(0, 10), (1, 10), (2, 10)]);
        // The leader lost the session (restart, eviction): full, naming none.
        let mut session = opened();
        let request = session.build(&all);
        session.answered(request, 0, FETCH_SESSION_ID_NOT_FOUND);
        let full = session.build(&all);
        assert_eq!((full.session_id, full.epoch), (0, INITIAL_EPOCH));
        assert_eq!(full.partitions.len(), 3);
        // Out of step: full, closing the old one.
        let mut session = opened();
        let request = session.build(&all);
        session.answered(request, 0, INVALID_FETCH_SESSION_EPOCH);
        let full = session.build(&all);
        assert_eq!((full.session_id, full.epoch), (42, INITIAL_EPOCH));
        assert_eq!(full.partitions.len(), 3);
        // The call failed: whatever the leader applied is unknown.
        let mut session = opened();
        session.failed();
        let full = session.build(&all);
        assert_eq!((full.session_id, full.epoch), (42, INITIAL_EPOCH));
        // The full fetch opens a new session.
        session.answered(full, 7, 0);
        let idle = session.build(&all);
        assert_eq!((idle.session_id, idle.epoch), (7, 1));
        assert!(idle.partitions.is_empty());
        // No room at the leader (session 0): full fetches again.
        let mut session = opened();
        let request = session.build(&all);
        session.answered(request, 0, 0);
        assert_eq!(session.build(&all).epoch, INITIAL_EPOCH);
        assert_eq!(session.session_id(), 0);
    }

    #[test]
    fn without_sessions_every_fetch_is_full_and_sessionless() {
        let mut session = FollowerFetchSession::new(false);
        let all = wanted(&[(0, 10), (1, 10)]);
        for _ in 0..3 {
            let request = session.build(&all);
            assert_eq!((request.session_id, request.epoch), (0, FINAL_EPOCH));
            assert_eq!(request.partitions, all);
            session.answered(request, 0, 0);
        }
    }
}
