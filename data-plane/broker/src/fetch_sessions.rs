//! Fetch sessions (KIP-227): the broker's bounded cache of incremental fetch sessions.
//!
//! A fetcher whose full fetch carries session epoch 0 gets a session id in the answer. From then
//! on it sends only the partitions whose fetch position changed, and the ones it stops fetching
//! (`forgotten`), with the session's next epoch; the session remembers the others, and the answer
//! carries only the partitions with something new: records, a changed high watermark, last
//! stable offset or log start offset, or an error. Kafka's rules (`FetchSession.scala`,
//! `FetchSessionCache`) as kept here:
//!
//! - epoch 0 (`INITIAL_EPOCH`): a full fetch; it closes the session it names, if any, and a new
//!   session of the partitions answered is created when the answer goes, if the cache has a free
//!   slot or can evict one ([`FetchSessionCache::create`]; otherwise the answer says session 0);
//! - epoch -1 (`FINAL_EPOCH`): closes the session it names, and fetches without one;
//! - any other epoch: incremental. The session must exist ([`SessionError::NotFound`], Kafka's
//!   FETCH_SESSION_ID_NOT_FOUND) and the epoch must be the session's
//!   ([`SessionError::InvalidEpoch`], INVALID_FETCH_SESSION_EPOCH); then it advances (after
//!   `i32::MAX` comes 1). A session left with no partitions is closed and the fetch goes on
//!   without one.
//! - The cache holds at most `slots` sessions (`max.incremental.fetch.session.cache.slots`). To
//!   make room, a new session evicts the least recently used session if it has been idle longer
//!   than `eviction` (`min.incremental.fetch.session.eviction.ms`); else the least valuable
//!   evictable session, valued by (privileged, partitions), if the newcomer is worth more. A
//!   session becomes evictable at its first use after being `eviction` old; a privileged
//!   newcomer (a follower) may also evict any unprivileged session. Evictions are counted.
//! - Partitions that return records move to the end of their session's order, so that the next
//!   answer's byte budget goes to the others first.
//!
//! Beyond Kafka, which caches only the high watermark and log start offset: the last stable
//! offset is cached too, so a `read_committed` fetcher hears of an LSO that moves alone. And a
//! session belongs to the fetcher that made it ([`CONSUMER`] for Kafka consumers, a follower's
//! broker id for replication): another fetcher naming its id finds no session, so a consumer
//! cannot feed a leader a follower's positions or the reverse.
//!
//! Followers (`replication.rs`, with `follower_fetch_session.rs` on their side) use the same
//! cache with privileged sessions: the leader keeps each follower's last fetch position per
//! partition here, and applies it to the follower's state (ISR, high watermark) at every fetch
//! of the session, whether the request listed the partition or not, as Kafka does.
//!
//! Plain types only; the Fetch handler converts from and to the wire. Below the broker context,
//! which holds one cache.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;

/// The session id of no session.
pub const INVALID_SESSION_ID: i32 = 0;
/// The epoch of a full fetch that asks for a new session.
pub const INITIAL_EPOCH: i32 = 0;
/// The epoch of a full fetch without a session.
pub const FINAL_EPOCH: i32 = -1;
/// The owner of a Kafka consumer's session (followers own theirs by broker id, which is >= 0).
pub const CONSUMER: i32 = -1;

/// A partition of a topic, by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
}

/// What a fetcher asks of one partition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FetchPosition {
    /// The offset to read from.
    pub fetch_offset: i64,
    /// The fetcher's own log start offset (followers; -1 for consumers).
    pub log_start_offset: i64,
    /// Bytes of this partition at most.
    pub max_bytes: i32,
    /// The leader epoch the fetcher believes in (-1: none).
    pub current_leader_epoch: i32,
    /// The epoch of the last batch the fetcher has (-1: none).
    pub last_fetched_epoch: i32,
}

/// What an answer said of one partition: what decides whether an incremental answer sends it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionAnswer {
    /// High watermark.
    pub high_watermark: i64,
    /// Last stable offset.
    pub last_stable_offset: i64,
    /// The leader's log start offset.
    pub log_start_offset: i64,
    /// Kafka error code (0: none).
    pub error: i16,
    /// Bytes of records.
    pub records: usize,
    /// Sent whatever the cache says (a preferred read replica, a diverging epoch).
    pub always: bool,
}

/// Why an incremental fetch has no session to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No session has the id (never made, closed or evicted): FETCH_SESSION_ID_NOT_FOUND.
    #[error("no fetch session has this id")]
    NotFound,
    /// The session is at another epoch: INVALID_FETCH_SESSION_EPOCH.
    #[error("the fetch session is at another epoch")]
    InvalidEpoch,
}

/// What to read for a fetch, once its session is looked up ([`FetchSessionCache::plan`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchPlan {
    /// Without a session: read the partitions the request lists; the answer says session 0.
    Sessionless,
    /// Full: read the partitions the request lists; then [`FetchSessionCache::create`].
    Full,
    /// Incremental: read these partitions (all of the session's, in its order); then
    /// [`FetchSessionCache::select`] what the answer sends.
    Incremental {
        /// The session.
        session_id: i32,
        /// Its partitions and their positions.
        partitions: Vec<(TopicPartition, FetchPosition)>,
    },
}

/// The session's next epoch after `epoch` (Kafka's `FetchMetadata.nextEpoch`).
pub fn next_epoch(epoch: i32) -> i32 {
    if epoch < 0 {
        FINAL_EPOCH
    } else if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// What a session knows of one partition.
#[derive(Clone, Debug)]
struct Cached {
    position: FetchPosition,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    /// Its place in the session's order.
    order: u64,
}

impl Cached {
    /// Whether an incremental answer must send `answer`; remembers what it says.
    fn must_send(&mut self, answer: &PartitionAnswer) -> bool {
        let mut send = answer.records > 0 || answer.always;
        if self.high_watermark != answer.high_watermark {
            send = true;
            self.high_watermark = answer.high_watermark;
        }
        if self.last_stable_offset != answer.last_stable_offset {
            send = true;
            self.last_stable_offset = answer.last_stable_offset;
        }
        if self.log_start_offset != answer.log_start_offset {
            send = true;
            self.log_start_offset = answer.log_start_offset;
        }
        if answer.error != 0 {
            // Sent again once the error is gone.
            send = true;
            self.high_watermark = -1;
        }
        send
    }
}

/// One session.
#[derive(Debug)]
struct Session {
    /// Who made it ([`CONSUMER`] or a follower's broker id): only it may use it.
    owner: i32,
    privileged: bool,
    created_ms: u64,
    last_used_ms: u64,
    epoch: i32,
    partitions: HashMap<TopicPartition, Cached>,
    order: BTreeMap<u64, TopicPartition>,
    next_order: u64,
    /// The size the cache's indexes hold it under.
    cached_size: usize,
}

impl Session {
    fn add(
        &mut self,
        key: TopicPartition,
        position: FetchPosition,
        answer: Option<&PartitionAnswer>,
    ) {
        let order = self.next_order;
        self.next_order += 1;
        let (hw, lso, start) = match answer {
            Some(a) if a.error == 0 => (a.high_watermark, a.last_stable_offset, a.log_start_offset),
            Some(a) => (-1, a.last_stable_offset, a.log_start_offset),
            None => (-1, -1, -1),
        };
        if let Some(old) = self.partitions.insert(
            key.clone(),
            Cached {
                position,
                high_watermark: hw,
                last_stable_offset: lso,
                log_start_offset: start,
                order,
            },
        ) {
            self.order.remove(&old.order);
        }
        self.order.insert(order, key);
    }

    /// Kafka's `FetchSession.update`: new positions of `changed` (added if new), then
    /// `forgotten` removed.
    fn update(
        &mut self,
        changed: Vec<(TopicPartition, FetchPosition)>,
        forgotten: &[TopicPartition],
    ) {
        for (key, position) in changed {
            match self.partitions.get_mut(&key) {
                Some(cached) => cached.position = position,
                None => self.add(key, position, None),
            }
        }
        for key in forgotten {
            if let Some(old) = self.partitions.remove(key) {
                self.order.remove(&old.order);
            }
        }
    }

    fn evictable_key(&self, id: i32) -> (bool, usize, i32) {
        (self.privileged, self.cached_size, id)
    }
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<i32, Session>,
    /// (last used, id), oldest first.
    last_used: BTreeSet<(u64, i32)>,
    /// (privileged, size, id) of the sessions a privileged newcomer may evict, least valuable
    /// first.
    evictable_by_privileged: BTreeSet<(bool, usize, i32)>,
    /// The same, of the sessions any newcomer may evict.
    evictable_by_all: BTreeSet<(bool, usize, i32)>,
    /// Partitions cached over all sessions.
    partitions: usize,
}

impl Inner {
    fn remove(&mut self, id: i32) -> bool {
        let Some(session) = self.sessions.remove(&id) else {
            return false;
        };
        self.last_used.remove(&(session.last_used_ms, id));
        let key = session.evictable_key(id);
        self.evictable_by_privileged.remove(&key);
        self.evictable_by_all.remove(&key);
        self.partitions -= session.cached_size;
        true
    }

    /// Kafka's `FetchSessionCache.touch`: the session was used at `now`; its size and age
    /// re-index it.
    fn touch(&mut self, id: i32, now: u64, eviction_ms: u64) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        self.last_used.remove(&(session.last_used_ms, id));
        session.last_used_ms = now;
        self.last_used.insert((now, id));
        let old = session.evictable_key(id);
        self.evictable_by_privileged.remove(&old);
        self.evictable_by_all.remove(&old);
        self.partitions -= session.cached_size;
        session.cached_size = session.partitions.len();
        self.partitions += session.cached_size;
        let key = session.evictable_key(id);
        let old_enough = now.saturating_sub(session.created_ms) > eviction_ms;
        if !session.privileged || old_enough {
            self.evictable_by_privileged.insert(key);
        }
        if old_enough {
            self.evictable_by_all.insert(key);
        }
    }

    /// Kafka's `FetchSessionCache.tryEvict`: makes room for a session worth `(privileged,
    /// size)`, if it can.
    fn try_evict(&mut self, privileged: bool, size: usize, now: u64, eviction_ms: u64) -> bool {
        let Some(&(last_used, id)) = self.last_used.first() else {
            return false;
        };
        if now.saturating_sub(last_used) > eviction_ms {
            return self.remove(id);
        }
        let evictable = if privileged {
            &self.evictable_by_privileged
        } else {
            &self.evictable_by_all
        };
        let Some(&(their_privilege, their_size, id)) = evictable.first() else {
            return false;
        };
        // Kafka compares (privileged, size, id) with the newcomer's id 0: equal worth never
        // evicts.
        if (privileged, size) <= (their_privilege, their_size) {
            return false;
        }
        self.remove(id)
    }
}

/// The broker's fetch sessions. All methods lock one mutex for a time proportional to the
/// partitions they are given.
#[derive(Debug)]
pub struct FetchSessionCache {
    slots: usize,
    eviction_ms: u64,
    origin: Instant,
    inner: Mutex<Inner>,
    evictions: Counter,
}

impl FetchSessionCache {
    /// A cache of at most `slots` sessions, which may evict sessions idle longer than
    /// `eviction`; each eviction adds one to `evictions`.
    pub fn new(slots: usize, eviction: Duration, evictions: Counter) -> FetchSessionCache {
        FetchSessionCache {
            slots,
            eviction_ms: u64::try_from(eviction.as_millis()).unwrap_or(u64::MAX),
            origin: Instant::now(),
            inner: Mutex::default(),
            evictions,
        }
    }

    fn ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sessions cached (`NumIncrementalFetchSessions`).
    pub fn sessions(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Partitions cached over all sessions (`NumIncrementalFetchPartitionsCached`).
    pub fn partitions(&self) -> usize {
        self.lock().partitions
    }

    /// What a fetch with `session_id` and `epoch` reads: `changed` are the partitions the
    /// request lists, `forgotten` the ones it drops (only incremental fetches drop any). An
    /// incremental fetch updates its session and advances its epoch here.
    ///
    /// # Errors
    /// [`SessionError`] for an incremental fetch without a usable session.
    pub fn plan(
        &self,
        session_id: i32,
        epoch: i32,
        changed: Vec<(TopicPartition, FetchPosition)>,
        forgotten: &[TopicPartition],
        now: Instant,
    ) -> Result<FetchPlan, SessionError> {
        self.plan_as(CONSUMER, session_id, epoch, changed, forgotten, now)
    }

    /// [`FetchSessionCache::plan`] for `owner` ([`CONSUMER`] or a follower's broker id): a
    /// session another fetcher made is not found, and a full fetch closes only its own.
    ///
    /// # Errors
    /// [`SessionError`] for an incremental fetch without a usable session.
    pub fn plan_as(
        &self,
        owner: i32,
        session_id: i32,
        epoch: i32,
        changed: Vec<(TopicPartition, FetchPosition)>,
        forgotten: &[TopicPartition],
        now: Instant,
    ) -> Result<FetchPlan, SessionError> {
        let mut inner = self.lock();
        let owned = inner
            .sessions
            .get(&session_id)
            .is_some_and(|s| s.owner == owner);
        if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
            if session_id != INVALID_SESSION_ID && owned {
                inner.remove(session_id);
            }
            return Ok(if epoch == FINAL_EPOCH {
                FetchPlan::Sessionless
            } else {
                FetchPlan::Full
            });
        }
        let session = inner
            .sessions
            .get_mut(&session_id)
            .filter(|_| owned)
            .ok_or(SessionError::NotFound)?;
        if session.epoch != epoch {
            return Err(SessionError::InvalidEpoch);
        }
        session.update(changed, forgotten);
        if session.partitions.is_empty() {
            inner.remove(session_id);
            return Ok(FetchPlan::Sessionless);
        }
        session.epoch = next_epoch(session.epoch);
        let partitions = session
            .order
            .values()
            .filter_map(|key| Some((key.clone(), session.partitions.get(key)?.position)))
            .collect();
        let now = self.ms(now);
        inner.touch(session_id, now, self.eviction_ms);
        Ok(FetchPlan::Incremental {
            session_id,
            partitions,
        })
    }

    /// After a full fetch's answer: a new session of the `answered` partitions (as asked, and
    /// as answered), if a slot is free or can be freed. Returns its id, or
    /// [`INVALID_SESSION_ID`] when there is no room.
    pub fn create(
        &self,
        privileged: bool,
        answered: Vec<(TopicPartition, FetchPosition, PartitionAnswer)>,
        now: Instant,
    ) -> i32 {
        self.create_as(CONSUMER, privileged, answered, now)
    }

    /// [`FetchSessionCache::create`] of a session only `owner` may use.
    pub fn create_as(
        &self,
        owner: i32,
        privileged: bool,
        answered: Vec<(TopicPartition, FetchPosition, PartitionAnswer)>,
        now: Instant,
    ) -> i32 {
        let now = self.ms(now);
        let mut inner = self.lock();
        if inner.sessions.len() >= self.slots {
            if !inner.try_evict(privileged, answered.len(), now, self.eviction_ms) {
                return INVALID_SESSION_ID;
            }
            self.evictions.inc();
        }
        let id = loop {
            let random = (uuid::Uuid::new_v4().as_u128() as u32 & 0x7fff_ffff) as i32;
            if random != INVALID_SESSION_ID && !inner.sessions.contains_key(&random) {
                break random;
            }
        };
        let mut session = Session {
            owner,
            privileged,
            created_ms: now,
            last_used_ms: now,
            epoch: next_epoch(INITIAL_EPOCH),
            partitions: HashMap::with_capacity(answered.len()),
            order: BTreeMap::new(),
            next_order: 0,
            cached_size: 0,
        };
        for (key, position, answer) in answered {
            session.add(key, position, Some(&answer));
        }
        inner.sessions.insert(id, session);
        inner.last_used.insert((now, id));
        inner.touch(id, now, self.eviction_ms);
        id
    }

    /// After an incremental fetch's answer: which of `answers` (of the partitions the plan
    /// listed) the answer must send. Remembers what they say, and moves the ones with records to
    /// the end of the session's order. A session gone in between (evicted) sends everything.
    pub fn select(
        &self,
        session_id: i32,
        answers: &[(&TopicPartition, PartitionAnswer)],
    ) -> Vec<bool> {
        let mut inner = self.lock();
        let Some(session) = inner.sessions.get_mut(&session_id) else {
            return vec![true; answers.len()];
        };
        let mut send = Vec::with_capacity(answers.len());
        for (key, answer) in answers {
            let Some(cached) = session.partitions.get_mut(*key) else {
                send.push(true);
                continue;
            };
            send.push(cached.must_send(answer));
            if answer.records > 0 {
                let order = session.next_order;
                session.next_order += 1;
                session.order.remove(&cached.order);
                cached.order = order;
                session.order.insert(order, (*key).clone());
            }
        }
        send
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.to_owned(),
            partition,
        }
    }

    fn at(offset: i64) -> FetchPosition {
        FetchPosition {
            fetch_offset: offset,
            log_start_offset: -1,
            max_bytes: 1 << 20,
            current_leader_epoch: -1,
            last_fetched_epoch: -1,
        }
    }

    fn answer(hw: i64, records: usize) -> PartitionAnswer {
        PartitionAnswer {
            high_watermark: hw,
            last_stable_offset: hw,
            log_start_offset: 0,
            error: 0,
            records,
            always: false,
        }
    }

    /// A cache of `slots` with a 1 s eviction time, its origin and its eviction counter.
    fn cache(slots: usize) -> (FetchSessionCache, Instant, Counter) {
        let evictions = Counter::default();
        let cache = FetchSessionCache::new(slots, Duration::from_secs(1), evictions.clone());
        let t0 = cache.origin;
        (cache, t0, evictions)
    }

    /// A session of `n` partitions of topic `t`, all at offset 0 with high watermark 5.
    fn session_of(cache: &FetchSessionCache, privileged: bool, n: i32, now: Instant) -> i32 {
        let answered = (0..n).map(|p| (tp("t", p), at(0), answer(5, 0))).collect();
        cache.create(privileged, answered, now)
    }

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn epochs_follow_kafkas_rules() {
        let (cache, t0, _) = cache(10);
        assert_eq!(
            cache.plan(0, FINAL_EPOCH, vec![], &[], t0),
            Ok(FetchPlan::Sessionless)
        );
        assert_eq!(
            cache.plan(0, INITIAL_EPOCH, vec![], &[], t0),
            Ok(FetchPlan::Full)
        );
        assert_eq!(
            cache.plan(0, 1, vec![], &[], t0),
            Err(SessionError::NotFound)
        );
        let id = session_of(&cache, false, 3, t0);
        assert_ne!(id, INVALID_SESSION_ID);
        assert!(id > 0);
        // The first incremental fetch is at epoch 1; a repeat of it, or a skip, is refused.
        assert_eq!(
            cache.plan(id, 2, vec![], &[], t0),
            Err(SessionError::InvalidEpoch)
        );
        assert!(matches!(
            cache.plan(id, 1, vec![], &[], t0),
            Ok(FetchPlan::Incremental { session_id, ref partitions }) if session_id == id && partitions.len() == 3
        ));
        assert_eq!(
            cache.plan(id, 1, vec![], &[], t0),
            Err(SessionError::InvalidEpoch)
        );
        assert!(cache.plan(id, 2, vec![], &[], t0).is_ok());
        // A full fetch naming the session closes it.
        assert_eq!(
            cache.plan(id, FINAL_EPOCH, vec![], &[], t0),
            Ok(FetchPlan::Sessionless)
        );
        assert_eq!(
            cache.plan(id, 3, vec![], &[], t0),
            Err(SessionError::NotFound)
        );
        let id = session_of(&cache, false, 3, t0);
        assert_eq!(
            cache.plan(id, INITIAL_EPOCH, vec![], &[], t0),
            Ok(FetchPlan::Full)
        );
        assert_eq!(cache.sessions(), 0);
        assert_eq!(
            (next_epoch(i32::MAX), next_epoch(-1), next_epoch(0)),
            (1, -1, 1)
        );
    }

    #[test]
    fn incremental_fetches_update_add_and_forget_partitions() {
        let (cache, t0, _) = cache(10);
        let id = session_of(&cache, false, 3, t0);
        assert_eq!(cache.partitions(), 3);
        let plan = cache
            .plan(
                id,
                1,
                vec![(tp("t", 1), at(7)), (tp("u", 0), at(2))],
                &[tp("t", 0)],
                t0,
            )
            .unwrap();
        let FetchPlan::Incremental { partitions, .. } = plan else {
            panic!("{plan:?}")
        };
        assert_eq!(
            partitions,
            vec![
                (tp("t", 1), at(7)),
                (tp("t", 2), at(0)),
                (tp("u", 0), at(2))
            ]
        );
        assert_eq!(cache.partitions(), 3);
        // Forgetting everything closes the session; the fetch goes on without one.
        let forget = [tp("t", 1), tp("t", 2), tp("u", 0)];
        assert_eq!(
            cache.plan(id, 2, vec![], &forget, t0),
            Ok(FetchPlan::Sessionless)
        );
        assert_eq!((cache.sessions(), cache.partitions()), (0, 0));
    }

    #[test]
    fn incremental_answers_send_only_what_changed() {
        let (cache, t0, _) = cache(10);
        let id = session_of(&cache, false, 4, t0);
        let keys: Vec<TopicPartition> = (0..4).map(|p| tp("t", p)).collect();
        let mut lso_moved = answer(5, 0);
        lso_moved.last_stable_offset = 3;
        let mut start_moved = answer(5, 0);
        start_moved.log_start_offset = 2;
        let answers = [
            (&keys[0], answer(5, 0)),  // nothing new
            (&keys[1], answer(6, 80)), // records and a new high watermark
            (&keys[2], lso_moved),
            (&keys[3], start_moved),
        ];
        assert_eq!(cache.select(id, &answers), [false, true, true, true]);
        // Remembered: the same answer again sends only the partition with records.
        assert_eq!(cache.select(id, &answers), [false, true, false, false]);
        // An error is sent, and the partition again once the error is gone.
        let mut failed = answer(5, 0);
        failed.error = 6;
        assert_eq!(cache.select(id, &[(&keys[0], failed)]), [true]);
        assert_eq!(cache.select(id, &[(&keys[0], answer(5, 0))]), [true]);
        assert_eq!(cache.select(id, &[(&keys[0], answer(5, 0))]), [false]);
        // Partitions that returned records went to the end of the order.
        let Ok(FetchPlan::Incremental { partitions, .. }) = cache.plan(id, 1, vec![], &[], t0)
        else {
            panic!()
        };
        let order: Vec<i32> = partitions.iter().map(|(k, _)| k.partition).collect();
        assert_eq!(order, [0, 2, 3, 1]);
        // A session gone sends everything.
        assert_eq!(cache.select(12345, &answers), [true; 4]);
    }

    #[test]
    fn a_full_cache_evicts_an_idle_session_first() {
        let (cache, t0, evictions) = cache(2);
        let a = session_of(&cache, false, 10, ms(t0, 0));
        let b = session_of(&cache, true, 10, ms(t0, 100));
        // Nothing idle for over a second, nothing old enough to be evictable: no room.
        assert_eq!(
            session_of(&cache, false, 1000, ms(t0, 500)),
            INVALID_SESSION_ID
        );
        assert_eq!(evictions.get(), 0);
        // `a` used at 600, `b` not since 100: at 1,200 `b` is the idle one, though privileged.
        assert!(cache.plan(a, 1, vec![], &[], ms(t0, 600)).is_ok());
        let c = session_of(&cache, false, 1, ms(t0, 1200));
        assert_ne!(c, INVALID_SESSION_ID);
        assert_eq!(evictions.get(), 1);
        assert_eq!(
            cache.plan(b, 1, vec![], &[], ms(t0, 1200)),
            Err(SessionError::NotFound)
        );
        assert!(cache.plan(a, 2, vec![], &[], ms(t0, 1200)).is_ok());
        assert_eq!(cache.sessions(), 2);
        assert_eq!(cache.partitions(), 11);
    }

    #[test]
    fn without_idle_sessions_the_least_valuable_old_session_goes_to_a_bigger_one() {
        let (cache, t0, evictions) = cache(3);
        let small = session_of(&cache, false, 2, ms(t0, 0));
        let big = session_of(&cache, false, 50, ms(t0, 0));
        let follower = session_of(&cache, true, 1, ms(t0, 0));
        // Each used after 1 s of age (so evictable) and kept busy (so never idle).
        for id in [small, big, follower] {
            assert!(cache.plan(id, 1, vec![], &[], ms(t0, 1100)).is_ok());
        }
        // A newcomer of 2 partitions is worth no more than `small`: no room.
        assert_eq!(
            session_of(&cache, false, 2, ms(t0, 1200)),
            INVALID_SESSION_ID
        );
        // One of 3 evicts the smallest unprivileged session.
        let three = session_of(&cache, false, 3, ms(t0, 1200));
        assert_ne!(three, INVALID_SESSION_ID);
        assert_eq!(
            cache.plan(small, 2, vec![], &[], ms(t0, 1200)),
            Err(SessionError::NotFound)
        );
        // The follower's session is privileged: no unprivileged newcomer evicts it, whatever its
        // size; `big` goes to a bigger one only once `three`, still young, is not evictable.
        let huge = session_of(&cache, false, 100, ms(t0, 1300));
        assert_ne!(huge, INVALID_SESSION_ID);
        assert_eq!(
            cache.plan(big, 2, vec![], &[], ms(t0, 1300)),
            Err(SessionError::NotFound)
        );
        assert!(cache.plan(follower, 2, vec![], &[], ms(t0, 1300)).is_ok());
        assert_eq!(evictions.get(), 2);
    }

    #[test]
    fn a_privileged_newcomer_evicts_young_unprivileged_sessions() {
        let (cache, t0, evictions) = cache(1);
        let consumer = session_of(&cache, false, 500, ms(t0, 0));
        // Young and busy: a consumer cannot evict it, a follower can, even a smaller one.
        assert_eq!(
            session_of(&cache, false, 1000, ms(t0, 10)),
            INVALID_SESSION_ID
        );
        let follower = session_of(&cache, true, 1, ms(t0, 20));
        assert_ne!(follower, INVALID_SESSION_ID);
        assert_eq!(
            cache.plan(consumer, 1, vec![], &[], ms(t0, 20)),
            Err(SessionError::NotFound)
        );
        // And a young follower session is safe from another follower.
        assert_eq!(
            session_of(&cache, true, 1000, ms(t0, 30)),
            INVALID_SESSION_ID
        );
        assert_eq!(evictions.get(), 1);
    }

    #[test]
    fn a_session_is_usable_and_closable_only_by_its_owner() {
        let (cache, t0, _) = cache(10);
        let answered = vec![(tp("t", 0), at(0), answer(5, 0))];
        let follower = cache.create_as(2, true, answered, t0);
        // A consumer, or another follower, naming it finds no session and cannot close it.
        assert_eq!(
            cache.plan(follower, 1, vec![], &[], t0),
            Err(SessionError::NotFound)
        );
        assert_eq!(
            cache.plan_as(3, follower, 1, vec![], &[], t0),
            Err(SessionError::NotFound)
        );
        assert_eq!(
            cache.plan_as(3, follower, INITIAL_EPOCH, vec![], &[], t0),
            Ok(FetchPlan::Full)
        );
        assert_eq!(cache.sessions(), 1);
        // Its follower uses it: the cached position of the partition it did not list.
        assert_eq!(
            cache.plan_as(2, follower, 1, vec![], &[], t0),
            Ok(FetchPlan::Incremental {
                session_id: follower,
                partitions: vec![(tp("t", 0), at(0))]
            })
        );
        assert_eq!(
            cache.plan_as(2, follower, FINAL_EPOCH, vec![], &[], t0),
            Ok(FetchPlan::Sessionless)
        );
        assert_eq!(cache.sessions(), 0);
    }

    #[test]
    fn the_cache_never_holds_more_than_its_slots() {
        let (cache, t0, evictions) = cache(5);
        let mut made = 0;
        for i in 0..200u64 {
            // Every 10th newcomer arrives after the others have been idle over a second.
            let now = ms(t0, i / 10 * 2000 + i % 10);
            if session_of(&cache, i % 3 == 0, (i % 7) as i32 + 1, now) != INVALID_SESSION_ID {
                made += 1;
            }
            assert!(cache.sessions() <= 5, "{} sessions", cache.sessions());
        }
        assert!(made > 20, "{made}");
        assert_eq!(evictions.get(), made - 5);
        let zero = FetchSessionCache::new(0, Duration::ZERO, Counter::default());
        assert_eq!(
            session_of(&zero, false, 1, Instant::now()),
            INVALID_SESSION_ID
        );
    }
}
