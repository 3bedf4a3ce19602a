#!/usr/bin/env python3
"""Kafka security against a real hdi-broker with confluent-kafka (librdkafka 2.16).

Phases (each prints one JSON line; `ok` true on success):
  users    as the super user over SASL_SSL/SCRAM-SHA-512: create SCRAM users with
           AlterUserScramCredentials, describe them, create topics and ACLs
  auth     every mechanism authenticates (SCRAM-SHA-512 and -256 over SASL_SSL, PLAIN over
           SASL_PLAINTEXT, a client certificate over SSL); a wrong password and an unknown user
           get SASL authentication failures; a client without a certificate gets nothing
  matrix   the ACL matrix: READ-only alice cannot produce, reads `a`, cannot see `b`, cannot join
           another group, cannot create or delete topics; prefixed WRITE for bob, a DENY that
           beats it; DescribeAcls / DeleteAcls take effect at once
"""
import argparse
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient, NewTopic,
    ResourcePatternType, ResourceType, ScramCredentialInfo, ScramMechanism,
    UserScramCredentialUpsertion,
)

ADMIN = "admin"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def conf(args, user=None, password=None, mechanism="SCRAM-SHA-512", protocol="SASL_SSL", cert=None):
    c = {"bootstrap.servers": args.listeners[protocol], "security.protocol": protocol,
         "socket.timeout.ms": 10000, "metadata.max.age.ms": 1000}
    if protocol in ("SASL_SSL", "SSL"):
        c["ssl.ca.location"] = f"{args.tls_dir}/ca.pem"
    if protocol.startswith("SASL"):
        c.update({"sasl.mechanisms": mechanism, "sasl.username": user, "sasl.password": password})
    if cert:
        c.update({"ssl.certificate.location": f"{args.tls_dir}/{cert}.pem",
                  "ssl.key.location": f"{args.tls_dir}/{cert}-key.pem"})
    return c


def admin_conf(args):
    return conf(args, ADMIN, args.admin_password)


def wait(futures):
    return {k: f.result(timeout=30) for k, f in futures.items()}


def error_code(exc):
    return exc.args[0].code() if exc.args and isinstance(exc.args[0], KafkaError) else None


def produce(c, topic, n=10):
    """Produces n records; returns the delivery error codes (None for success)."""
    p = Producer({**c, "message.timeout.ms": 10000})
    results = []
    for i in range(n):
        p.produce(topic, key=f"k{i}", value=f"v{i}", callback=lambda e, m: results.append(e.code() if e else None))
    p.flush(30)
    return results


def consume(c, topic, group, want, timeout=30):
    """Reads up to `want` records from the beginning (commits nothing); returns (values, first
    error code)."""
    cons = Consumer({**c, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    cons.subscribe([topic])
    values, error, deadline = [], None, time.time() + timeout
    while len(values) < want and time.time() < deadline:
        m = cons.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() != KafkaError._PARTITION_EOF:
                error = m.error().code()
                break
            continue
        values.append(m.value())
    cons.close()
    return values, error


def users(args):
    a = AdminClient(admin_conf(args))
    upserts = [
        UserScramCredentialUpsertion("alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"alice-pw"),
        UserScramCredentialUpsertion("alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), b"alice-pw"),
        UserScramCredentialUpsertion("bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"bob-pw"),
    ]
    wait(a.alter_user_scram_credentials(upserts))
    described = wait(a.describe_user_scram_credentials(["alice", "bob"]))
    alice = sorted((i.mechanism.name, i.iterations) for i in described["alice"].scram_credential_infos)
    assert alice == [("SCRAM_SHA_256", 8192), ("SCRAM_SHA_512", 4096)], alice
    # Out-of-bounds iterations are refused (UNACCEPTABLE_CREDENTIAL), the rest unchanged.
    try:
        wait(a.alter_user_scram_credentials([UserScramCredentialUpsertion(
            "eve", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 100), b"x")]))
        raise AssertionError("100 iterations accepted")
    except KafkaException as e:
        assert "iterations" in str(e) or error_code(e) == 93, e
    wait(a.create_topics([NewTopic(t, 2, 1) for t in ("a", "b", "pay-in", "pay-secret")]))
    acl = lambda rt, name, pt, who, op, perm: AclBinding(rt, name, pt, f"User:{who}", "*", op, perm)
    T, G = ResourceType.TOPIC, ResourceType.GROUP
    LIT, PRE = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
    ALLOW, DENY = AclPermissionType.ALLOW, AclPermissionType.DENY
    bindings = [
        acl(T, "a", LIT, "alice", AclOperation.READ, ALLOW),
        acl(G, "g-alice", LIT, "alice", AclOperation.READ, ALLOW),
        acl(T, "pay-", PRE, "bob", AclOperation.WRITE, ALLOW),
        acl(T, "pay-secret", LIT, "bob", AclOperation.ALL, DENY),
        acl(T, "a", LIT, "carol", AclOperation.ALL, ALLOW),
        acl(G, "g-", PRE, "carol", AclOperation.READ, ALLOW),
    ]
    wait(a.create_acls(bindings))
    listed = a.describe_acls(AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                              AclOperation.ANY, AclPermissionType.ANY)).result(timeout=30)
    assert len(listed) == len(bindings), listed
    # Seed topic `a` as the super user.
    assert produce(admin_conf(args), "a", 20) == [None] * 20
    return {"users": 2, "acls": len(listed)}


def auth(args):
    out = {}
    for mech, proto, user, pw in [("SCRAM-SHA-512", "SASL_SSL", "alice", "alice-pw"),
                                  ("SCRAM-SHA-256", "SASL_SSL", "alice", "alice-pw"),
                                  ("PLAIN", "SASL_PLAINTEXT", "alice", "alice-pw"),
                                  ("SCRAM-SHA-256", "SASL_PLAINTEXT", "alice", "alice-pw")]:
        values, error = consume(conf(args, user, pw, mech, proto), "a", f"g-alice", 20)
        assert error is None and len(values) == 20, (mech, proto, error, len(values))
        out[f"{proto}/{mech}"] = len(values)
    # mTLS: carol's certificate over the SSL listener.
    carol = conf(args, protocol="SSL", cert="carol")
    assert produce(carol, "a", 5) == [None] * 5
    values, error = consume(carol, "a", "g-carol", 25)
    assert error is None and len(values) == 25, (error, len(values))
    out["SSL/certificate"] = len(values)
    # Failures: wrong password, unknown user (same answer), no certificate on SSL (anonymous: no ACL).
    for user, pw in [("alice", "wrong"), ("mallory", "x")]:
        errors = []
        p = Producer({**conf(args, user, pw), "error_cb": lambda e: errors.append(e)})
        deadline = time.time() + 15
        while not any(e.code() == KafkaError._AUTHENTICATION for e in errors) and time.time() < deadline:
            p.poll(0.2)
        found = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
        assert found, (user, errors)
        out[f"refused {user}"] = found[0].str()
    anonymous = conf(args, protocol="SSL")
    assert set(produce(anonymous, "a", 1)) == {KafkaError.TOPIC_AUTHORIZATION_FAILED}
    return out


def matrix(args):
    alice = conf(args, "alice", "alice-pw")
    bob = conf(args, "bob", "bob-pw")
    out = {}
    # Read-only: produce refused with 29.
    out["alice produce a"] = produce(alice, "a", 1)
    assert out["alice produce a"] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], out
    # Metadata shows `a` only.
    topics = set(AdminClient(alice).list_topics(timeout=10).topics)
    assert topics == {"a"}, topics
    out["alice sees"] = sorted(topics)
    # Reads `a` in her group; another group is refused with 30.
    values, error = consume(alice, "a", "g-alice", 25)
    assert error is None and len(values) == 25, (error, len(values))
    values, error = consume(alice, "a", "g-other", 1, timeout=15)
    assert error == KafkaError.GROUP_AUTHORIZATION_FAILED, error
    out["alice other group"] = error
    # Admin: create and delete refused.
    a = AdminClient(alice)
    for name, call in [("create", lambda: a.create_topics([NewTopic("c", 1, 1)])["c"]),
                       ("delete", lambda: a.delete_topics(["a"])["a"])]:
        try:
            call().result(timeout=30)
            raise AssertionError(f"alice could {name} a topic")
        except KafkaException as e:
            assert error_code(e) == KafkaError.TOPIC_AUTHORIZATION_FAILED, e
            out[f"alice {name} topic"] = error_code(e)
    # The broker answers CLUSTER_AUTHORIZATION_FAILED (tests/authorization.rs checks the code);
    # librdkafka 2.16 hands some such answers back as an empty list: either way nothing leaks.
    try:
        listed = a.describe_acls(AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                                  AclOperation.ANY, AclPermissionType.ANY)).result(timeout=30)
        assert listed == [], listed
        out["alice lists acls"] = "empty"
    except KafkaException as e:
        assert error_code(e) == KafkaError.CLUSTER_AUTHORIZATION_FAILED, e
        out["alice lists acls"] = error_code(e)
    # Prefixed WRITE for bob; the DENY on pay-secret beats it; nothing else.
    out["bob pay-in"] = produce(bob, "pay-in", 3)
    assert out["bob pay-in"] == [None] * 3, out
    out["bob pay-secret"] = produce(bob, "pay-secret", 1)
    assert out["bob pay-secret"] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], out
    out["bob a"] = produce(bob, "a", 1)
    assert out["bob a"] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], out
    # The super user deletes alice's ACLs: her read is refused at once.
    root = AdminClient(admin_conf(args))
    deleted = root.delete_acls([AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY,
                                                 "User:alice", None, AclOperation.ANY,
                                                 AclPermissionType.ANY)])
    gone = list(deleted.values())[0].result(timeout=30)
    assert len(gone) == 2, gone
    values, error = consume(alice, "a", "g-alice", 1, timeout=15)
    assert error in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED), error
    out["alice after delete"] = error
    return out


def kafka_python_roundtrip(common, topic, prefix, n, timeout_ms, **consumer):
    """kafka-python with the connection settings `common`: produces `n` records `{prefix}{i}`
    (key kp, acks=all) to `topic`, then reads it from the beginning (no commits; `consumer`:
    more consumer settings) until `timeout_ms` pass without a record; returns how many records
    read start with `prefix`."""
    from kafka import KafkaConsumer, KafkaProducer
    p = KafkaProducer(acks="all", **common)
    for i in range(n):
        p.send(topic, key=b"kp", value=f"{prefix}{i}".encode())
    p.flush(30)
    p.close()
    c = KafkaConsumer(topic, auto_offset_reset="earliest", enable_auto_commit=False,
                      consumer_timeout_ms=timeout_ms, **consumer, **common)
    seen = sum(1 for m in c if m.value.startswith(prefix.encode()))
    c.close()
    return seen


def kafka_python_mtls(args):
    """kafka-python over SSL with carol's client certificate (principal User:carol): produce to
    `a`, read it back in a `g-` group."""
    common = dict(bootstrap_servers=args.listeners["SSL"], security_protocol="SSL",
                  ssl_cafile=f"{args.tls_dir}/ca.pem", ssl_certfile=f"{args.tls_dir}/carol.pem",
                  ssl_keyfile=f"{args.tls_dir}/carol-key.pem")
    seen = kafka_python_roundtrip(common, "a", "kp-mtls-", 100, 8000, group_id="g-kp-mtls")
    assert seen == 100, seen
    return {"kafka-python over mTLS read": seen}


def kafka_python(args):
    """kafka-python over SASL_SSL with SCRAM-SHA-512 as the super user: produce, consume back; a
    wrong password is refused."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError as KPError
    common = dict(bootstrap_servers=args.listeners["SASL_SSL"], security_protocol="SASL_SSL",
                  sasl_mechanism="SCRAM-SHA-512", sasl_plain_username=ADMIN,
                  sasl_plain_password=args.admin_password, ssl_cafile=f"{args.tls_dir}/ca.pem")
    seen = kafka_python_roundtrip(common, "pay-in", "kp-", 300, 10000)
    assert seen == 300, seen
    try:
        bad = KafkaProducer(**{**common, "sasl_plain_password": "nope"}, max_block_ms=8000)
        bad.send("pay-in", b"x").get(timeout=8)
        raise AssertionError("a wrong password produced")
    except KPError as e:
        refused = type(e).__name__
    return {"kafka-python produced and read": seen, "wrong password cannot produce": refused}


def oauth(args):
    """OAUTHBEARER with the control plane's access tokens: alice (a super user of this broker)
    creates a topic, produces and consumes; bob's valid token authenticates but has no ACL; a
    forged and an expired token are refused."""
    tokens = json.loads(args.tokens)

    def bearer(token):
        c = {"bootstrap.servers": args.listeners["SASL_SSL"], "security.protocol": "SASL_SSL",
             "ssl.ca.location": f"{args.tls_dir}/ca.pem", "sasl.mechanisms": "OAUTHBEARER",
             "socket.timeout.ms": 10000}
        c["oauth_cb"] = lambda _config: (token, time.time() + 600)
        return c

    def refused(token):
        errors = []
        p = Producer({**bearer(token), "error_cb": lambda e: errors.append(e)})
        deadline = time.time() + 15
        while not any(e.code() == KafkaError._AUTHENTICATION for e in errors) and time.time() < deadline:
            p.poll(0.2)
        found = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
        assert found, errors
        return found[0].str()

    out = {}
    alice = bearer(tokens["alice"])
    a = AdminClient(alice)
    a.poll(1)  # serves oauth_cb: the token is fetched on poll
    wait(a.create_topics([NewTopic("oauth-t", 1, 1)]))
    assert produce(alice, "oauth-t", 50) == [None] * 50
    values, error = consume(alice, "oauth-t", "g-oauth", 50)
    assert error is None and len(values) == 50, (error, len(values))
    out["alice read"] = len(values)
    out["bob produce"] = produce(bearer(tokens["bob"]), "oauth-t", 1)
    assert out["bob produce"] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], out
    head, _, signature = tokens["alice"].rpartition(".")
    forged = head + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    out["forged"] = refused(forged)
    out["expired"] = refused(tokens["expired"])
    return out


def oauth_clients(args):
    """OAUTHBEARER with tokens from the control plane's OAuth 2.0 token endpoint (client
    credentials: alice and one of her API tokens): librdkafka's own OIDC login
    (`sasl.oauthbearer.method=oidc`, through confluent-kafka) and kafka-python with a token
    provider calling the endpoint each produce and consume back; a wrong secret gets the
    endpoint's 401 `invalid_client`."""
    import base64
    import urllib.error
    import urllib.request
    from kafka.net.sasl.oauth import AbstractTokenProvider  # kafka-python 3.x

    def fetch(secret):
        basic = base64.b64encode(f"{args.client_id}:{secret}".encode()).decode()
        request = urllib.request.Request(
            args.token_url, data=b"grant_type=client_credentials", method="POST",
            headers={"Authorization": f"Basic {basic}",
                     "Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.load(answer)

    out = {}
    try:
        fetch("not-a-token")
        raise AssertionError("a wrong client secret got a token")
    except urllib.error.HTTPError as e:
        out["wrong secret"] = [e.code, json.load(e)["error"]]
    assert out["wrong secret"] == [401, "invalid_client"], out

    oidc = {"bootstrap.servers": args.listeners["SASL_SSL"], "security.protocol": "SASL_SSL",
            "ssl.ca.location": f"{args.tls_dir}/ca.pem", "sasl.mechanisms": "OAUTHBEARER",
            "sasl.oauthbearer.method": "oidc", "sasl.oauthbearer.client.id": args.client_id,
            "sasl.oauthbearer.client.secret": args.client_secret,
            "sasl.oauthbearer.token.endpoint.url": args.token_url, "socket.timeout.ms": 10000}
    a = AdminClient(oidc)
    wait(a.create_topics([NewTopic("oauth-oidc", 1, 1)]))
    assert produce(oidc, "oauth-oidc", 40) == [None] * 40
    values, error = consume(oidc, "oauth-oidc", "g-oidc", 40)
    assert error is None and len(values) == 40, (error, len(values))
    out["librdkafka oidc read"] = len(values)

    class Provider(AbstractTokenProvider):
        def token(self):
            return fetch(args.client_secret)["access_token"]

    common = dict(bootstrap_servers=args.listeners["SASL_SSL"], security_protocol="SASL_SSL",
                  sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=Provider(),
                  ssl_cafile=f"{args.tls_dir}/ca.pem")
    seen = kafka_python_roundtrip(common, "oauth-oidc", "kp-oauth-", 60, 10000)
    assert seen == 60, seen
    out["kafka-python read"] = seen
    return out


def quota(args):
    """A client id with producer_byte_rate set (by the test, over AlterClientQuotas) is held to
    it; another client id is not."""
    rate = float(args.rate)
    total = 20_000_000
    out = {}
    for client_id in ("slow", "fast"):
        p = Producer({"bootstrap.servers": args.listeners["PLAINTEXT"], "client.id": client_id,
                      "linger.ms": 5, "acks": 1})
        value = b"q" * 1000
        started = time.time()
        for _ in range(total // len(value)):
            while True:
                try:
                    p.produce(f"quota-{client_id}", value)
                    break
                except BufferError:
                    p.poll(0.05)
            p.poll(0)
        assert p.flush(120) == 0
        elapsed = time.time() - started
        out[f"{client_id} bytes/s"] = round(total / elapsed)
    measured = out["slow bytes/s"]
    out["slow / quota"] = round(measured / rate, 3)
    assert abs(measured / rate - 1) <= 0.10, out
    assert out["fast bytes/s"] > 3 * rate, out
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True, help="JSON map of listener name to host:port")
    p.add_argument("--tls-dir", default="")
    p.add_argument("--admin-password", default="")
    p.add_argument("--tokens", default="{}", help="JSON map of user to access token (oauth)")
    p.add_argument("--token-url", help="the OAuth 2.0 token endpoint (oauth-clients)")
    p.add_argument("--client-id", help="the OAuth client id, a username (oauth-clients)")
    p.add_argument("--client-secret", help="an API token of that user (oauth-clients)")
    p.add_argument("--rate", default="0", help="the quota under test, bytes/s (quota)")
    p.add_argument("phase", choices=["users", "auth", "matrix", "kafka-python", "kafka-python-mtls", "oauth", "oauth-clients", "quota"])
    args = p.parse_args()
    args.listeners = json.loads(args.bootstrap)
    try:
        phases = {"users": users, "auth": auth, "matrix": matrix, "kafka-python": kafka_python,
                  "oauth": oauth, "oauth-clients": oauth_clients, "quota": quota, "kafka-python-mtls": kafka_python_mtls}
        result = phases[args.phase](args)
        print(json.dumps({"ok": True, "phase": args.phase, **result}, default=str))
    except Exception as e:  # noqa: BLE001 - the test prints why
        log(f"{args.phase} failed: {e!r}")
        import traceback
        traceback.print_exc()
        print(json.dumps({"ok": False, "phase": args.phase, "error": repr(e)}))
        sys.exit(1)


if __name__ == "__main__":
    main()
