//! The client side of SCRAM-SHA-256/512 (RFC 5802/7677), as a Kafka client authenticates:
//! client-first with a fresh nonce, client-final with the proof for the server's salt and
//! iterations, and the check of the server's signature (a server that does not know the
//! password cannot forge it). Usernames are escaped (`,` → `=2C`, `=` → `=3D`); passwords are
//! used as UTF-8 without SASLprep, as Kafka does.

use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::rand::SecureRandom as _;
use ring::{digest, hmac, pbkdf2};

/// A SCRAM hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl Hash {
    fn parts(
        self,
    ) -> (
        hmac::Algorithm,
        &'static digest::Algorithm,
        pbkdf2::Algorithm,
    ) {
        match self {
            Hash::Sha256 => (
                hmac::HMAC_SHA256,
                &digest::SHA256,
                pbkdf2::PBKDF2_HMAC_SHA256,
            ),
            Hash::Sha512 => (
                hmac::HMAC_SHA512,
                &digest::SHA512,
                pbkdf2::PBKDF2_HMAC_SHA512,
            ),
        }
    }

    fn mac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.parts().0, key), data)
            .as_ref()
            .to_vec()
    }
}

impl Hash {
    /// Kafka's name: `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub fn name(self) -> &'static str {
        match self {
            Hash::Sha256 => "SCRAM-SHA-256",
            Hash::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Kafka's `ScramMechanism` type in `AlterUserScramCredentials` (1 = SHA-256, 2 = SHA-512).
    pub fn kafka_type(self) -> i8 {
        match self {
            Hash::Sha256 => 1,
            Hash::Sha512 => 2,
        }
    }
}

/// A SCRAM credential as a server keeps it, made from a password with a fresh salt: what an
/// administrator sends in `AlterUserScramCredentials` (`salt`, `salted_password`) and what a
/// broker's static users file holds ([`Credential::users_file_line`]). The password itself is
/// not kept.
#[derive(Clone)]
pub struct Credential {
    /// The mechanism.
    pub hash: Hash,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// The random salt.
    pub salt: Vec<u8>,
    /// `Hi(password, salt, iterations)`.
    pub salted_password: Vec<u8>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("hash", &self.hash)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// Salts and stretches `password` (4096 to 16384 iterations, as Kafka accepts).
    ///
    /// # Errors
    /// Iterations out of bounds, or no randomness for the salt.
    pub fn new(hash: Hash, password: &str, iterations: u32) -> Result<Credential, String> {
        let mut salt = vec![0u8; 24];
        ring::rand::SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| "no randomness for a SCRAM salt".to_owned())?;
        Credential::with_salt(hash, password, salt, iterations)
    }

    /// As [`Credential::new`] with a given salt (unique per credential; a caller that must
    /// make the same credential again derives it).
    ///
    /// # Errors
    /// Iterations out of bounds or an empty salt.
    pub fn with_salt(
        hash: Hash,
        password: &str,
        salt: Vec<u8>,
        iterations: u32,
    ) -> Result<Credential, String> {
        let rounds = NonZeroU32::new(iterations)
            .filter(|_| (4096..=16384).contains(&iterations))
            .ok_or_else(|| format!("iterations {iterations} out of 4096..=16384"))?;
        if salt.is_empty() {
            return Err("a SCRAM salt must not be empty".into());
        }
        let (_, digest_algorithm, pbkdf2_algorithm) = hash.parts();
        let mut salted_password = vec![0u8; digest_algorithm.output_len()];
        pbkdf2::derive(
            pbkdf2_algorithm,
            rounds,
            &salt,
            password.as_bytes(),
            &mut salted_password,
        );
        Ok(Credential {
            hash,
            iterations,
            salt,
            salted_password,
        })
    }

    /// One line of a broker's `--sasl-users-file` for `user`:
    /// `NAME MECHANISM ITERATIONS SALT STORED_KEY SERVER_KEY` (the last three base64).
    pub fn users_file_line(&self, user: &str) -> String {
        let (_, digest_algorithm, _) = self.hash.parts();
        let client_key = self.hash.mac(&self.salted_password, b"Client Key");
        let stored_key = digest::digest(digest_algorithm, &client_key);
        let server_key = self.hash.mac(&self.salted_password, b"Server Key");
        format!(
            "{user} {} {} {} {} {}",
            self.hash.name(),
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(stored_key.as_ref()),
            B64.encode(server_key)
        )
    }
}

/// An exchange in progress: what client-final and the server's signature need.
#[derive(Debug)]
pub struct Exchange {
    hash: Hash,
    nonce: String,
    first_bare: String,
    server_key: Option<Vec<u8>>,
    auth_message: Option<String>,
}

impl Exchange {
    /// Starts an exchange for `user`: returns it and client-first.
    ///
    /// # Errors
    /// When there is no randomness for a nonce.
    pub fn start(hash: Hash, user: &str) -> Result<(Exchange, String), String> {
        let mut bytes = [0u8; 24];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| "no randomness for a SCRAM nonce".to_owned())?;
        let nonce: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let first_bare = format!(
            "n={},r={nonce}",
            user.replace('=', "=3D").replace(',', "=2C")
        );
        let first = format!("n,,{first_bare}");
        Ok((
            Exchange {
                hash,
                nonce,
                first_bare,
                server_key: None,
                auth_message: None,
            },
            first,
        ))
    }

    /// client-final for the server's first message.
    ///
    /// # Errors
    /// A server-first that does not parse, does not extend our nonce, or asks for fewer than
    /// 4096 iterations.
    pub fn respond(&mut self, password: &str, server_first: &[u8]) -> Result<String, String> {
        let text = std::str::from_utf8(server_first).map_err(|_| "server-first is not UTF-8")?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for field in text.split(',') {
            if let Some(v) = field.strip_prefix("r=") {
                nonce = Some(v);
            } else if let Some(v) = field.strip_prefix("s=") {
                salt = B64.decode(v).ok();
            } else if let Some(v) = field.strip_prefix("i=") {
                iterations = v.parse::<u32>().ok();
            }
        }
        let nonce = nonce
            .filter(|n| n.starts_with(&self.nonce) && n.len() > self.nonce.len())
            .ok_or("the server's nonce does not extend ours")?;
        let salt = salt.ok_or("server-first has no valid salt")?;
        let iterations = iterations
            .filter(|i| (4096..=1_000_000).contains(i))
            .and_then(NonZeroU32::new)
            .ok_or("server-first has no acceptable iteration count")?;
        let (_, digest_algorithm, pbkdf2_algorithm) = self.hash.parts();
        let mut salted = vec![0u8; digest_algorithm.output_len()];
        pbkdf2::derive(
            pbkdf2_algorithm,
            iterations,
            &salt,
            password.as_bytes(),
            &mut salted,
        );
        let client_key = self.hash.mac(&salted, b"Client Key");
        let stored_key = digest::digest(digest_algorithm, &client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.first_bare);
        let signature = self.hash.mac(stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        self.server_key = Some(self.hash.mac(&salted, b"Server Key"));
        self.auth_message = Some(auth_message);
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Checks server-final (`v=` the server's signature).
    ///
    /// # Errors
    /// An error from the server, or a signature that is not the one the password gives.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(server_final).map_err(|_| "server-final is not UTF-8")?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(format!("the server refused: {error}"));
        }
        let (Some(server_key), Some(auth_message)) = (&self.server_key, &self.auth_message) else {
            return Err("server-final before client-final".into());
        };
        let expected = self.hash.mac(server_key, auth_message.as_bytes());
        let given = text
            .strip_prefix("v=")
            .and_then(|v| B64.decode(v).ok())
            .ok_or("server-final has no signature")?;
        if given.len() == expected.len()
            && given
                .iter()
                .zip(&expected)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
        {
            Ok(())
        } else {
            Err("the server's signature is wrong: it does not know this password".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A credential's users-file line lets a server check a client's proof for that password
    /// (and only that one) and sign back what the client verifies.
    #[test]
    fn credential_line_checks_the_password_it_was_made_from() {
        let credential = Credential::new(Hash::Sha512, "s3cret", 4096).expect("credential");
        let line = credential.users_file_line("app");
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields[..3], ["app", "SCRAM-SHA-512", "4096"]);
        let stored_key = B64.decode(fields[4]).expect("stored key");
        let server_key = B64.decode(fields[5]).expect("server key");
        let proves = |password: &str| {
            let (mut exchange, first) = Exchange::start(Hash::Sha512, "app").expect("start");
            let client_nonce = first.rsplit("r=").next().expect("nonce").to_owned();
            let server_first = format!("r={client_nonce}srv,s={},i=4096", fields[3]);
            let last = exchange
                .respond(password, server_first.as_bytes())
                .expect("respond");
            let (without_proof, proof) = last.rsplit_once(",p=").expect("proof");
            let auth = format!("{},{server_first},{without_proof}", &first[3..]);
            let signature = Hash::Sha512.mac(&stored_key, auth.as_bytes());
            let client_key: Vec<u8> = B64
                .decode(proof)
                .expect("base64")
                .iter()
                .zip(&signature)
                .map(|(p, s)| p ^ s)
                .collect();
            let ok = digest::digest(&digest::SHA512, &client_key).as_ref() == stored_key;
            let server_final = format!(
                "v={}",
                B64.encode(Hash::Sha512.mac(&server_key, auth.as_bytes()))
            );
            (ok, exchange.verify(server_final.as_bytes()).is_ok())
        };
        assert_eq!(proves("s3cret"), (true, true));
        assert!(!proves("S3cret").0);
        assert!(Credential::new(Hash::Sha256, "x", 100).is_err());
    }

    /// RFC 7677's exchange, with its client nonce.
    #[test]
    fn rfc_7677_vector() {
        let mut exchange = Exchange {
            hash: Hash::Sha256,
            nonce: "rOprNGfwEbeRWgbNEkqO".into(),
            first_bare: "n=user,r=rOprNGfwEbeRWgbNEkqO".into(),
            server_key: None,
            auth_message: None,
        };
        let last = exchange
            .respond(
                "pencil",
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            )
            .expect("respond");
        assert_eq!(
            last,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert!(
            exchange
                .verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
                .is_ok()
        );
        assert!(
            exchange
                .verify(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
                .is_err()
        );
        assert!(exchange.verify(b"e=invalid-proof").is_err());
    }

    #[test]
    fn bad_server_firsts_are_refused() {
        let (mut exchange, first) = Exchange::start(Hash::Sha512, "a,b=c").expect("start");
        assert!(first.starts_with("n,,n=a=2Cb=3Dc,r="));
        for bad in [
            &b"r=other,s=c2FsdA==,i=4096"[..],
            b"s=c2FsdA==,i=4096",
            b"\xff",
        ] {
            assert!(exchange.respond("pw", bad).is_err());
        }
        let ours = exchange.nonce.clone();
        assert!(
            exchange
                .respond("pw", format!("r={ours}x,s=c2FsdA==,i=10").as_bytes())
                .is_err()
        );
        assert!(
            exchange
                .respond("pw", format!("r={ours}x,s=c2FsdA==,i=4096").as_bytes())
                .is_ok()
        );
    }
}
