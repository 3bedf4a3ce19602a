//! Client quotas (KIP-13, KIP-55, KIP-124): byte rates and request time per user and client id,
//! stored in the metadata quorum, enforced by each broker on its own traffic as Kafka does.
//!
//! - Entities are Kafka's: a user (the principal's name), a client id, or both, each either
//!   named or `<default>`. A request takes the most specific quota that exists, in Kafka's order:
//!   user+client, user+default client, user, default user+client, default user+default client,
//!   default user, client, default client.
//! - Keys: `producer_byte_rate` (Produce request bytes) and `consumer_byte_rate` (Fetch response
//!   bytes), and `request_percentage` (KIP-124): the share of one CPU the broker may spend
//!   handling the client's requests, in percent (200 = two cores' worth), counted as the thread
//!   CPU time of polling each request's handler ([`cpu_timed`]: time waiting for replication or
//!   for a fetch to fill is not counted, as Kafka counts request-handler thread time). Here a
//!   percentage is a whole number. Other keys are refused, so nothing is accepted that is not
//!   enforced.
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
/// The request-time key: percent of one CPU.
pub const REQUEST_PERCENTAGE: &str = "request_percentage";

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
    key == PRODUCER_BYTE_RATE || key == CONSUMER_BYTE_RATE || key == REQUEST_PERCENTAGE
}

/// The stored value of an `AlterClientQuotas` value for `key`, or why it is refused.
///
/// # Errors
/// A message naming the key and the values it takes.
pub fn stored_value(key: &str, value: f64) -> Result<u64, String> {
    if key == REQUEST_PERCENTAGE {
        if (1.0..=1e6).contains(&value) && value.fract() == 0.0 {
            return Ok(value as u64);
        }
        return Err(format!(
            "quota {key} must be a whole number of percent of one CPU from 1, not {value}"
        ));
    }
    if (1.0..1e15).contains(&value) {
        Ok(value as u64)
    } else {
        Err(format!(
            "quota {key} must be at least 1 byte per second, not {value}"
        ))
    }
}

/// The rate a meter of `key` runs at for the stored `value`: bytes per second, or for
/// [`REQUEST_PERCENTAGE`] nanoseconds of CPU per second.
pub fn meter_rate(key: &str, value: u64) -> u64 {
    if key == REQUEST_PERCENTAGE {
        value.saturating_mul(10_000_000)
    } else {
        value
    }
}

/// The CPU time of the calling thread.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    #[allow(
        unsafe_code,
        reason = "clock_gettime(2) writes one timespec we own; no safe wrapper in std"
    )]
    // SAFETY: `now` is a valid, exclusively borrowed timespec for the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut now) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

/// A future that adds up the CPU time its threads spend polling `inner`.
struct CpuTimed<F> {
    inner: std::pin::Pin<Box<F>>,
    spent: Duration,
}

impl<F: std::future::Future> std::future::Future for CpuTimed<F> {
    type Output = (F::Output, Duration);

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let start = thread_cpu_time();
        let polled = self.inner.as_mut().poll(cx);
        let spent = thread_cpu_time().saturating_sub(start);
        self.spent += spent;
        let total = self.spent;
        polled.map(|output| (output, total))
    }
}

/// Runs `future`, returning its output and the CPU time spent polling it (on whichever threads
/// polled it; waiting is not counted).
pub async fn cpu_timed<F: std::future::Future>(future: F) -> (F::Output, Duration) {
    CpuTimed {
        inner: Box::pin(future),
        spent: Duration::ZERO,
    }
    .await
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
    fn values_are_checked_per_key() {
        assert_eq!(stored_value(PRODUCER_BYTE_RATE, 1024.0), Ok(1024));
        assert!(stored_value(PRODUCER_BYTE_RATE, 0.5).is_err());
        assert!(stored_value(CONSUMER_BYTE_RATE, f64::NAN).is_err());
        assert_eq!(stored_value(REQUEST_PERCENTAGE, 200.0), Ok(200));
        for bad in [0.0, 12.5, -1.0, f64::INFINITY, 2e6] {
            let refused = stored_value(REQUEST_PERCENTAGE, bad).unwrap_err();
            assert!(refused.contains("request_percentage"), "{refused}");
        }
        // 10 % of a CPU: 100 ms of CPU per second.
        assert_eq!(meter_rate(REQUEST_PERCENTAGE, 10), 100_000_000);
        assert_eq!(meter_rate(CONSUMER_BYTE_RATE, 10), 10);
    }

    #[test]
    fn request_time_is_metered_as_cpu() {
        // 10 %: 100 ms of CPU per second; a client that used 300 ms waits 2 s for the rest.
        let mut throttle = Throttle::default();
        let e = entity(Some("alice"), None);
        let alice = Caller {
            user: "alice",
            client_id: "c",
        };
        let rate = meter_rate(REQUEST_PERCENTAGE, 10);
        let t0 = Instant::now();
        let ms300 = 300_000_000;
        assert_eq!(
            throttle.record(&e, REQUEST_PERCENTAGE, alice, rate, ms300, t0),
            Duration::ZERO
        );
        assert_eq!(
            throttle.record(
                &e,
                REQUEST_PERCENTAGE,
                alice,
                rate,
                1,
                t0 + Duration::from_secs(1)
            ),
            Duration::from_secs(2)
        );
    }

    #[tokio::test]
    async fn cpu_time_counts_work_not_waiting() {
        let ((), idle) = cpu_timed(tokio::time::sleep(Duration::from_millis(200))).await;
        assert!(idle < Duration::from_millis(50), "{idle:?}");
        // A fixed amount of work, not a wall-clock spin: on a loaded machine the spin's thread
        // gets a fraction of the wall time, while this work costs what it costs.
        let (sum, busy) = cpu_timed(async {
            let mut x = 0u64;
            for _ in 0..50_000_000u64 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            x
        })
        .await;
        assert_eq!(sum, 50_000_000);
        assert!(busy >= Duration::from_millis(10), "{busy:?}");
        assert!(busy > idle * 4, "{busy:?} vs {idle:?}");
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
