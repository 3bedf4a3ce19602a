//! Client quotas (KIP-13, KIP-55): byte rates per user and client id, stored in the metadata
//! quorum, enforced by each broker on its own traffic as Kafka does.
//!
//! - Entities are Kafka's: a user (the principal's name), a client id, or both, each either
//!   named or `<default>`. A request takes the most specific quota that exists, in Kafka's order:
//!   user+client, user+default client, user, default user+client, default user+default client,
//!   default user, client, default client.
//! - Keys: `producer_byte_rate` (Produce request bytes) and `consumer_byte_rate` (Fetch response
//!   bytes). Other keys are refused, so nothing is accepted that is not enforced.
//! - [`Throttle`]: a virtual-time meter per (quota entity, key): each request moves the entity's
//!   next free instant forward by `bytes / rate`; how far it stood in the future before a request
//!   is that request's `throttle_time_ms`. The broker answers at once with it and then reads
//!   nothing more from that connection for that long (KIP-219), so a client holding to its
//!   quota is never delayed and one that exceeds it is held to its rate.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The Produce bytes-per-second key.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
/// The Fetch bytes-per-second key.
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";

/// One side of a quota entity.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Name {
    /// `<default>`: every name without its own quota.
    Default,
    /// This name.
    Named(String),
}

/// A quota entity: a user, a client id, or both.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Entity {
    /// The user (principal name without `User:`).
    pub user: Option<Name>,
    /// The client id.
    pub client_id: Option<Name>,
}

/// The quotas in force: entity → (key → bytes per second), sorted by entity.
pub type Quotas = Vec<(Entity, Vec<(String, u64)>)>;

/// Changes to one entity's quotas: `(key, bytes per second)`, `None` removing the key.
pub type Changes = Vec<(String, Option<u64>)>;

/// Who a metered request comes from.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    /// The principal's name (without `User:`).
    pub user: &'a str,
    /// The client id.
    pub client_id: &'a str,
}

/// Whether `key` is a quota hdi enforces.
pub fn known_key(key: &str) -> bool {
    key == PRODUCER_BYTE_RATE || key == CONSUMER_BYTE_RATE
}

/// The entity whose `key` quota applies to `user`/`client_id`, and the rate, if any.
pub fn resolve<'q>(
    quotas: &'q Quotas,
    user: &str,
    client_id: &str,
    key: &str,
) -> Option<(&'q Entity, u64)> {
    let named = |n: &str| Some(Name::Named(n.to_owned()));
    let order = [
        (named(user), named(client_id)),
        (named(user), Some(Name::Default)),
        (named(user), None),
        (Some(Name::Default), named(client_id)),
        (Some(Name::Default), Some(Name::Default)),
        (Some(Name::Default), None),
        (None, named(client_id)),
        (None, Some(Name::Default)),
    ];
    order.into_iter().find_map(|(user, client_id)| {
        let wanted = Entity { user, client_id };
        quotas
            .iter()
            .find(|(entity, _)| *entity == wanted)
            .and_then(|(entity, values)| {
                values
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, rate)| (entity, *rate))
            })
    })
}

/// Applies changes (`None` removes a key) to `quotas`, keeping it sorted and without empty
/// entities.
pub fn apply(quotas: &mut Quotas, entity: &Entity, changes: &[(String, Option<u64>)]) {
    let at = match quotas.binary_search_by(|(e, _)| e.cmp(entity)) {
        Ok(at) => at,
        Err(at) => {
            quotas.insert(at, (entity.clone(), Vec::new()));
            at
        }
    };
    let values = &mut quotas[at].1;
    for (key, value) in changes {
        values.retain(|(k, _)| k != key);
        if let Some(value) = value {
            values.push((key.clone(), *value));
        }
    }
    values.sort();
    if values.is_empty() {
        quotas.remove(at);
    }
}

/// Per-broker rate meters (see the module docs).
#[derive(Debug, Default)]
pub struct Throttle {
    next_free: HashMap<(Entity, String, String, String), Instant>,
}

impl Throttle {
    /// Records `bytes` against the meter of (`entity`, `key`) for `caller` at
    /// `rate` bytes per second, at `now`; returns how long the client must wait.
    ///
    /// A `<default>` entity meters each user and client id on its own, as Kafka does.
    pub fn record(
        &mut self,
        entity: &Entity,
        key: &str,
        caller: Caller<'_>,
        rate: u64,
        bytes: u64,
        now: Instant,
    ) -> Duration {
        let who = |side: &Option<Name>, name: &str| match side {
            Some(Name::Default) => name.to_owned(),
            _ => String::new(),
        };
        let slot = (
            entity.clone(),
            key.to_owned(),
            who(&entity.user, caller.user),
            who(&entity.client_id, caller.client_id),
        );
        if self.next_free.len() > 100_000 {
            // Idle meters are worth nothing: forget those already in the past.
            self.next_free.retain(|_, at| *at > now);
        }
        let next = self.next_free.entry(slot).or_insert(now);
        // The bytes before this request are paid for at `start`: until then the client is over
        // its rate and waits; this request's own bytes are paid by the next one's wait.
        let start = (*next).max(now);
        *next = start + Duration::from_secs_f64(bytes as f64 / rate.max(1) as f64);
        start.saturating_duration_since(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(user: Option<&str>, client: Option<&str>) -> Entity {
        let name = |n: &str| {
            if n == "<default>" {
                Name::Default
            } else {
                Name::Named(n.to_owned())
            }
        };
        Entity {
            user: user.map(name),
            client_id: client.map(name),
        }
    }

    #[test]
    fn the_most_specific_quota_applies_in_kafkas_order() {
        let mut quotas = Quotas::new();
        let set = |q: &mut Quotas, e: Entity, rate: u64| {
            apply(q, &e, &[(PRODUCER_BYTE_RATE.to_owned(), Some(rate))]);
        };
        set(&mut quotas, entity(None, Some("<default>")), 1);
        set(&mut quotas, entity(None, Some("etl")), 2);
        set(&mut quotas, entity(Some("<default>"), None), 3);
        set(&mut quotas, entity(Some("alice"), None), 4);
        set(&mut quotas, entity(Some("alice"), Some("etl")), 5);
        let rate =
            |q: &Quotas, user, client| resolve(q, user, client, PRODUCER_BYTE_RATE).map(|(_, r)| r);
        assert_eq!(rate(&quotas, "alice", "etl"), Some(5));
        assert_eq!(rate(&quotas, "alice", "other"), Some(4));
        assert_eq!(rate(&quotas, "bob", "etl"), Some(3));
        assert_eq!(resolve(&quotas, "bob", "etl", CONSUMER_BYTE_RATE), None);
        apply(
            &mut quotas,
            &entity(Some("<default>"), None),
            &[(PRODUCER_BYTE_RATE.to_owned(), None)],
        );
        assert_eq!(rate(&quotas, "bob", "etl"), Some(2));
        assert_eq!(rate(&quotas, "bob", "x"), Some(1));
        assert_eq!(quotas.len(), 4, "an emptied entity is dropped");
    }

    #[test]
    fn a_client_over_its_rate_waits_for_its_bytes() {
        let mut throttle = Throttle::default();
        let e = entity(Some("alice"), None);
        let alice = Caller {
            user: "alice",
            client_id: "c",
        };
        let t0 = Instant::now();
        // 1,000 B/s: the first 500 B pass; the next 1,000 B wait until 0.5 s of credit is used.
        assert_eq!(
            throttle.record(&e, PRODUCER_BYTE_RATE, alice, 1000, 500, t0),
            Duration::ZERO
        );
        let wait = throttle.record(&e, PRODUCER_BYTE_RATE, alice, 1000, 1000, t0);
        assert_eq!(wait, Duration::from_millis(500));
        // Over 10 s a steady client is held to its rate: 10,000 B of waits in all.
        let mut now = t0 + Duration::from_millis(1500);
        let mut sent = 0u64;
        while now < t0 + Duration::from_secs(11) {
            let wait = throttle.record(&e, PRODUCER_BYTE_RATE, alice, 1000, 250, now);
            sent += 250;
            now += wait.max(Duration::from_millis(1));
        }
        let rate = sent as f64 / (now - t0 - Duration::from_millis(1500)).as_secs_f64();
        assert!((900.0..1100.0).contains(&rate), "{rate}");
        // A default entity meters users apart.
        let d = entity(Some("<default>"), None);
        assert_eq!(
            throttle.record(
                &d,
                PRODUCER_BYTE_RATE,
                Caller {
                    user: "x",
                    client_id: "c"
                },
                1000,
                1000,
                t0
            ),
            Duration::ZERO
        );
        assert_eq!(
            throttle.record(
                &d,
                PRODUCER_BYTE_RATE,
                Caller {
                    user: "y",
                    client_id: "c"
                },
                1000,
                1000,
                t0
            ),
            Duration::ZERO
        );
    }
}
