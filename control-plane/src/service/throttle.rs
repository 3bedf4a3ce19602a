//! Password logins under load and under attack: a bound on concurrent password hashes (each
//! argon2 verification takes 19 MiB and a core for tens of milliseconds) and a per-username
//! back-off after repeated failures. Both answer `429 rate_limited` with `Retry-After`, before
//! any hashing, so 300 concurrent wrong passwords cost 300 cheap refusals, not 5.7 GiB.
//!
//! The back-off: after [`FREE_FAILURES`] failures of one username within [`FAILURE_WINDOW`],
//! each further attempt waits 2^(n - FREE_FAILURES) seconds after the last failure, at most
//! [`MAX_LOCKOUT`]; a success forgets the failures. The table of usernames is bounded
//! ([`MAX_TRACKED`]): when full, entries whose window has passed go first, then the oldest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Failures of one username allowed without delay within [`FAILURE_WINDOW`].
pub const FREE_FAILURES: u32 = 5;
/// How long failures are remembered.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The longest lockout.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Usernames tracked at most.
pub const MAX_TRACKED: usize = 10_000;
/// How long a login waits for a hashing slot before it is refused.
pub const HASH_WAIT: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first: Instant,
    last: Instant,
}

/// The login throttle of one control-plane process.
#[derive(Debug)]
pub struct LoginThrottle {
    hashing: std::sync::Arc<Semaphore>,
    failures: Mutex<HashMap<String, Failures>>,
}

/// A refused login: retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// When to retry.
    pub retry_after: Duration,
    /// Whether the username is backing off (else all hashing slots are busy).
    pub locked_out: bool,
}

impl LoginThrottle {
    /// A throttle allowing `concurrent_hashes` password hashes at once (at least 1).
    pub fn new(concurrent_hashes: usize) -> LoginThrottle {
        LoginThrottle {
            hashing: std::sync::Arc::new(Semaphore::new(concurrent_hashes.max(1))),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Two hashes per core the process may use.
    pub fn for_this_machine() -> LoginThrottle {
        LoginThrottle::new(std::thread::available_parallelism().map_or(2, |n| n.get()) * 2)
    }

    /// Whether `username` is backing off at `now`.
    ///
    /// # Errors
    /// [`Throttled`] with the remaining wait.
    pub fn check(&self, username: &str, now: Instant) -> Result<(), Throttled> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = failures.get(username) else {
            return Ok(());
        };
        let until = entry.last + lockout(entry.count);
        if now < until && now.duration_since(entry.first) < FAILURE_WINDOW {
            return Err(Throttled {
                retry_after: until - now,
                locked_out: true,
            });
        }
        Ok(())
    }

    /// A hashing slot, waiting at most [`HASH_WAIT`].
    ///
    /// # Errors
    /// [`Throttled`] when every slot stays busy.
    pub async fn hashing_slot(&self) -> Result<OwnedSemaphorePermit, Throttled> {
        let busy = Throttled {
            retry_after: Duration::from_secs(1),
            locked_out: false,
        };
        match tokio::time::timeout(
            HASH_WAIT,
            std::sync::Arc::clone(&self.hashing).acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(busy),
        }
    }

    /// Records a failed login of `username` at `now`.
    pub fn failed(&self, username: &str, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if !failures.contains_key(username) && failures.len() >= MAX_TRACKED {
            failures.retain(|_, f| now.duration_since(f.first) < FAILURE_WINDOW);
            if failures.len() >= MAX_TRACKED
                && let Some(oldest) = failures
                    .iter()
                    .min_by_key(|(_, f)| f.last)
                    .map(|(name, _)| name.clone())
            {
                failures.remove(&oldest);
            }
        }
        let entry = failures.entry(username.to_owned()).or_insert(Failures {
            count: 0,
            first: now,
            last: now,
        });
        if now.duration_since(entry.first) >= FAILURE_WINDOW {
            *entry = Failures {
                count: 0,
                first: now,
                last: now,
            };
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
    }

    /// Forgets the failures of `username` (after a successful login).
    pub fn succeeded(&self, username: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(username);
    }
}

/// The wait after the `count`-th failure.
fn lockout(count: u32) -> Duration {
    if count < FREE_FAILURES {
        return Duration::ZERO;
    }
    let exponent = (count - FREE_FAILURES).min(20);
    Duration::from_secs(1u64 << exponent).min(MAX_LOCKOUT)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn failures_back_off_exponentially_and_success_forgets_them() {
        let throttle = LoginThrottle::new(1);
        let t0 = Instant::now();
        for n in 0..FREE_FAILURES {
            assert!(throttle.check("eve", t0).is_ok(), "failure {n}");
            throttle.failed("eve", t0);
        }
        let refused = throttle.check("eve", t0).unwrap_err();
        assert!(refused.locked_out);
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        assert!(throttle.check("eve", t0 + Duration::from_secs(1)).is_ok());
        throttle.failed("eve", t0 + Duration::from_secs(1));
        assert_eq!(
            throttle
                .check("eve", t0 + Duration::from_secs(1))
                .unwrap_err()
                .retry_after,
            Duration::from_secs(2)
        );
        // Other users are not affected; a success forgets.
        assert!(throttle.check("bob", t0).is_ok());
        throttle.succeeded("eve");
        assert!(throttle.check("eve", t0 + Duration::from_secs(1)).is_ok());
        assert_eq!(lockout(100), MAX_LOCKOUT);
    }

    #[test]
    fn the_table_is_bounded() {
        let throttle = LoginThrottle::new(1);
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED + 50 {
            throttle.failed(&format!("u{i}"), t0 + Duration::from_millis(i as u64));
        }
        assert!(throttle.failures.lock().unwrap().len() <= MAX_TRACKED);
    }

    #[tokio::test]
    async fn busy_hashing_slots_refuse_after_a_short_wait() {
        let throttle = LoginThrottle::new(1);
        let held = throttle.hashing_slot().await.unwrap();
        let refused = throttle.hashing_slot().await.unwrap_err();
        assert!(!refused.locked_out);
        drop(held);
        assert!(throttle.hashing_slot().await.is_ok());
    }
}
