//! Password hashing with argon2id (the `argon2` crate's defaults: 19 MiB, 2 passes, 1 lane).
//!
//! Hashes are PHC strings (`$argon2id$v=19$...`) with a random 16-byte salt. [`verify`] of a user
//! without a hash (or of an unknown user) still runs one verification against a dummy hash, so the
//! answer takes about as long as for a real user with a wrong password. These calls are CPU-bound:
//! run them off the async workers.

use std::sync::OnceLock;

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher as _, PasswordVerifier as _};

/// The shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;
/// The longest password accepted (hashing cost grows with it).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The operating system's random source failed.
    #[error("cannot get random bytes for a salt")]
    Random(#[source] getrandom::Error),
    /// The hasher failed.
    #[error("cannot hash the password")]
    Hash(#[source] argon2::password_hash::Error),
}

/// An argon2id PHC string of `password` with a fresh salt.
///
/// # Errors
/// [`HashError`].
pub fn hash(password: &str) -> Result<String, HashError> {
    let mut salt = [0_u8; 16];
    getrandom::fill(&mut salt).map_err(HashError::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(HashError::Hash)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(HashError::Hash)
}

/// Whether `password` matches the stored hash; `None` (no such user, or no password) is always
/// false after the same amount of work.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    let dummy = dummy_hash();
    let (phc, real) = match stored {
        Some(phc) => (phc, true),
        None => (dummy, false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        // A corrupt stored hash: do the work anyway and refuse.
        let _ = PasswordHash::new(dummy)
            .map(|d| Argon2::default().verify_password(password.as_bytes(), &d));
        return false;
    };
    let matches = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    real && matches
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        // A fixed, well-formed hash of an unguessable value: nobody's password.
        hash("dummy password for timing only, never a real one").unwrap_or_else(|_| {
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0000000000000000000000000000000000000000000"
                .to_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn hashes_verify_only_their_password() {
        let phc = hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(verify("correct horse battery", Some(&phc)));
        assert!(!verify("correct horse batterY", Some(&phc)));
        assert!(!verify("correct horse battery", None));
        assert!(!verify("correct horse battery", Some("not a hash")));
        assert_ne!(phc, hash("correct horse battery").unwrap(), "salted");
    }
}
