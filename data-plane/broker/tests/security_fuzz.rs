//! Deterministic fuzzing of the security decoders (as `bad_input.rs` does for every request):
//! SCRAM's client-first and client-final parsers and the whole server exchange, SASL tokens
//! (PLAIN and SCRAM, raw and wrapped), ACL bindings and filters from arbitrary codes, and
//! mutated `SaslHandshake`, `SaslAuthenticate`, `CreateAcls`, `DescribeAcls`, `DeleteAcls`,
//! `DescribeUserScramCredentials` and `AlterUserScramCredentials` frames through the server on
//! SASL and authenticated sessions. Nothing may panic, and no mutated proof may authenticate.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Rng, frame, peer, s};
use hdi_broker::security::SecurityProtocol;
use hdi_broker::security::acl::{AclBinding, AclFilter};
use hdi_broker::security::sasl::{Auth, Token};
use hdi_broker::security::scram::{
    ScramCredential, ScramMechanism, ScramServer, Step, client, parse_client_final,
    parse_client_first,
};
use hdi_broker::security::{SaslMechanism, parse_users};
use hdi_broker::server::{Session, handle_session_frame};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::*;

/// A mutation of `seed`: a truncation, bit flips, an insertion or random bytes.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    match rng.below(5) {
        0 => bytes.truncate(rng.below(bytes.len() + 1)),
        1 if !bytes.is_empty() => {
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            }
        }
        2 => {
            let at = rng.below(bytes.len() + 1);
            let extra: Vec<u8> = (0..1 + rng.below(16))
                .map(|_| rng.next_u64() as u8)
                .collect();
            bytes.splice(at..at, extra);
        }
        3 if !bytes.is_empty() => {
            let at = rng.below(bytes.len());
            bytes[at] = b",=\0"[rng.below(3)];
        }
        _ => bytes = (0..rng.below(96)).map(|_| rng.next_u64() as u8).collect(),
    }
    bytes
}

#[test]
fn scram_parsers_and_exchanges_never_panic_and_no_mutated_proof_passes() {
    let mechanism = ScramMechanism::Sha256;
    let stored = ScramCredential::from_password(mechanism, "pw", 4096).unwrap();
    let first = client::first("alice", "clientnonce");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let _ = parse_client_first(&mutate(first.as_bytes(), &mut rng));
    }
    let mut authenticated = 0;
    for round in 0..400 {
        let mut server = ScramServer::Start;
        let Step::Continue(reply) =
            server.step(mechanism, first.as_bytes(), |_| Some(stored.clone()))
        else {
            panic!("no server-first")
        };
        let server_first = String::from_utf8(reply).unwrap();
        let last = client::last(mechanism, "pw", &first, &server_first).unwrap();
        let _ = parse_client_final(&mutate(last.as_bytes(), &mut rng));
        let sent = if round % 10 == 0 {
            last.into_bytes()
        } else {
            let mutated = mutate(last.as_bytes(), &mut rng);
            if mutated == last.as_bytes() {
                continue;
            }
            mutated
        };
        match server.step(mechanism, &sent, |_| Some(stored.clone())) {
            Step::Done { .. } => {
                assert_eq!(
                    round % 10,
                    0,
                    "a mutated client-final authenticated: {sent:?}"
                );
                authenticated += 1;
            }
            Step::Failed(_) => {}
            Step::Continue(_) => panic!("a third SCRAM round"),
        }
        // Nothing is accepted after the end.
        assert!(matches!(
            server.step(mechanism, b"c=biws,r=x,p=AA==", |_| None),
            Step::Failed(_)
        ));
    }
    assert_eq!(authenticated, 40);
}

#[test]
fn sasl_tokens_never_panic() {
    let stored = ScramCredential::from_password(ScramMechanism::Sha512, "pw", 4096).unwrap();
    let lookup = |user: &str, m: ScramMechanism| {
        (user == "alice" && m == ScramMechanism::Sha512).then(|| stored.clone())
    };
    let offered = [
        SaslMechanism::Plain,
        SaslMechanism::Scram(ScramMechanism::Sha512),
    ];
    let mut rng = Rng(42);
    for round in 0..600 {
        let (name, seed): (&str, Vec<u8>) = if round % 2 == 0 {
            ("PLAIN", b"\0alice\0pw".to_vec())
        } else {
            ("SCRAM-SHA-512", client::first("alice", "n").into_bytes())
        };
        let mut auth = Auth::new(true, None);
        auth.handshake(name, 1, &offered).unwrap();
        let token = mutate(&seed, &mut rng);
        if let Token::Done { principal, .. } = auth.token(&token, lookup, None, 0) {
            // Only an intact PLAIN token (mutations that kept it whole) may pass.
            assert_eq!(principal, "User:alice");
            assert!(token.ends_with(b"\0pw"), "{token:?}");
        }
    }
}

#[test]
fn acl_codes_and_users_files_never_panic() {
    let mut rng = Rng(7);
    for _ in 0..5000 {
        let code = |rng: &mut Rng| (rng.next_u64() % 16) as i8 - 2;
        let name = ["", "*", "a", "kafka-cluster", "pay-", "\u{7}"][rng.below(6)];
        let who = ["User:a", "User:*", "", "a", "Group:x", "User:"][rng.below(6)];
        let (t, p, o, perm) = (
            code(&mut rng),
            code(&mut rng),
            code(&mut rng),
            code(&mut rng),
        );
        if let Ok(binding) = AclBinding::from_codes(t, name, p, who, "*", o, perm) {
            assert!(binding.principal.starts_with("User:"));
        }
        let _ = AclFilter::from_codes(t, Some(name), p, Some(who), None, o, perm);
    }
    let line = ScramCredential::from_password(ScramMechanism::Sha256, "pw", 4096)
        .unwrap()
        .to_line("admin", ScramMechanism::Sha256);
    for _ in 0..2000 {
        let text = mutate(line.as_bytes(), &mut rng);
        let _ = parse_users(&String::from_utf8_lossy(&text));
    }
}

fn seeds() -> Vec<(ApiKey, i16, RequestKind)> {
    vec![
        (
            ApiKey::SaslHandshake,
            1,
            RequestKind::SaslHandshake(SaslHandshakeRequest::default().with_mechanism(s("PLAIN"))),
        ),
        (
            ApiKey::SaslAuthenticate,
            2,
            RequestKind::SaslAuthenticate(
                SaslAuthenticateRequest::default()
                    .with_auth_bytes(Bytes::from_static(b"\0admin\0pw")),
            ),
        ),
        (
            ApiKey::CreateAcls,
            3,
            RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(vec![
                AclCreation::default()
                    .with_resource_type(2)
                    .with_resource_name(s("t"))
                    .with_resource_pattern_type(3)
                    .with_principal(s("User:a"))
                    .with_host(s("*"))
                    .with_operation(3)
                    .with_permission_type(3),
            ])),
        ),
        (
            ApiKey::DescribeAcls,
            3,
            RequestKind::DescribeAcls(
                DescribeAclsRequest::default()
                    .with_resource_type_filter(2)
                    .with_resource_name_filter(Some(s("t")))
                    .with_pattern_type_filter(2)
                    .with_principal_filter(None)
                    .with_host_filter(None)
                    .with_operation(1)
                    .with_permission_type(1),
            ),
        ),
        (
            ApiKey::DeleteAcls,
            3,
            RequestKind::DeleteAcls(DeleteAclsRequest::default().with_filters(vec![
                DeleteAclsFilter::default()
                    .with_resource_type_filter(1)
                    .with_pattern_type_filter(1)
                    .with_resource_name_filter(Some(s("t")))
                    .with_operation(1)
                    .with_permission_type(1),
            ])),
        ),
        (
            ApiKey::DescribeUserScramCredentials,
            0,
            RequestKind::DescribeUserScramCredentials(
                DescribeUserScramCredentialsRequest::default()
                    .with_users(Some(vec![UserName::default().with_name(s("a"))])),
            ),
        ),
        (
            ApiKey::AlterUserScramCredentials,
            0,
            RequestKind::AlterUserScramCredentials(
                AlterUserScramCredentialsRequest::default()
                    .with_upsertions(vec![
                        ScramCredentialUpsertion::default()
                            .with_name(s("a"))
                            .with_mechanism(1)
                            .with_iterations(4096)
                            .with_salt(Bytes::from_static(b"salt"))
                            .with_salted_password(Bytes::from(vec![7u8; 32])),
                    ])
                    .with_deletions(vec![
                        ScramCredentialDeletion::default()
                            .with_name(s("b"))
                            .with_mechanism(2),
                    ]),
            ),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn security_frames_never_panic() {
    let dir = common::temp_dir("secfuzz");
    let broker =
        common::open_with(dir.path(), &["--authorizer", "--super-users", "User:admin"]).await;
    let seeds: Vec<Vec<u8>> = seeds()
        .iter()
        .map(|(key, version, request)| frame(*key, *version, 3, request).to_vec())
        .collect();
    let mut rng = Rng(0xdead_beef);
    let mut answered = 0;
    for round in 0..3000 {
        let bytes = mutate(&seeds[round % seeds.len()], &mut rng);
        // A SASL connection before its handshake, one after it (raw tokens), and a super user.
        let mut session = match round % 3 {
            0 => Session::new(SecurityProtocol::SaslSsl, None),
            1 => {
                let mut session = Session::new(SecurityProtocol::SaslPlaintext, None);
                let handshake = frame(
                    ApiKey::SaslHandshake,
                    0,
                    1,
                    &RequestKind::SaslHandshake(
                        SaslHandshakeRequest::default().with_mechanism(s("SCRAM-SHA-512")),
                    ),
                );
                handle_session_frame(&broker, &mut session, handshake, peer())
                    .await
                    .unwrap();
                session
            }
            _ => Session::authenticated(SecurityProtocol::SaslSsl, "User:admin"),
        };
        let response = tokio::time::timeout(
            Duration::from_secs(5),
            handle_session_frame(&broker, &mut session, Bytes::from(bytes), peer()),
        )
        .await
        .expect("a security frame hung");
        if let Ok(Some(_)) = response {
            answered += 1;
        }
    }
    assert!(
        answered > 300,
        "only {answered} fuzzed frames were answered"
    );
    broker.stop().await;
}
