"""Unit checks of the package's pure logic (no network, no Kafka): record decoding, start
offsets, flattening progress documents, Kafka access from a cluster's status, problem errors,
the generated operations the client uses, and the live chart's PNG. Standard library
``unittest``: ``python -m unittest discover -s python/tests`` (``e2e/tests/notebook.rs`` runs it).
"""

import base64
import datetime as dt
import inspect
import json
import re
import unittest

import hdi
from hdi import client as client_module
from hdi import kafka, models
from hdi.client import KafkaAccess, ProblemError, flatten, kafka_access_of, progress_frame


def jwt(claims):
    part = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJub25lIn0.{part}.c2ln"


def cluster(protocol, mechanisms=(), ca="-----BEGIN CERTIFICATE-----", kind="kafka", servers="127.0.0.1:9092"):
    return {
        "name": "pay",
        "spec": {"kind": kind},
        "status": {
            "state": "Running",
            "endpoints": {
                "bootstrap_servers": servers,
                "security_protocol": protocol,
                "sasl_mechanisms": list(mechanisms),
                "ca_certificate": ca,
            },
        },
    }


class Records(unittest.TestCase):
    def test_json_objects_become_columns(self):
        record = kafka.decode(2, 41, 1_700_000_000_000, b"acct-007",
                              b'{"account": "acct-007", "amount": 12.5, "offset": "x"}')
        self.assertEqual(record, {
            "partition": 2, "offset": 41, "timestamp": 1_700_000_000_000, "key": "acct-007",
            "account": "acct-007", "amount": 12.5, "value.offset": "x",
        })

    def test_other_values_are_kept(self):
        self.assertEqual(kafka.decode(0, 1, None, None, b"[1, 2]")["value"], [1, 2])
        self.assertEqual(kafka.decode(0, 1, None, None, b"not json")["value"], "not json")
        self.assertIsNone(kafka.decode(0, 1, None, None, None)["value"])

    def test_frame_has_utc_timestamps(self):
        df = kafka.frame([kafka.decode(0, 0, 1_700_000_000_000, None, b'{"a": 1}')])
        self.assertEqual(str(df["timestamp"].dt.tz), "UTC")
        self.assertEqual(list(df.columns), ["partition", "offset", "timestamp", "key", "a"])


class StartOffsets(unittest.TestCase):
    def test_named_and_numbered(self):
        self.assertEqual(kafka.start_offsets("earliest", [0, 1]), {0: "earliest", 1: "earliest"})
        self.assertEqual(kafka.start_offsets(5, [0, 1]), {0: 5, 1: 5})
        self.assertEqual(kafka.start_offsets({1: 7}, [0, 1]), {1: 7})

    def test_times(self):
        self.assertEqual(kafka.start_offsets(dt.timedelta(seconds=30), [0], now_ms=100_000), {0: ("time", 70_000)})
        when = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
        self.assertEqual(kafka.start_offsets(when, [3]), {3: ("time", int(when.timestamp() * 1000))})

    def test_refusals(self):
        for bad in ("newest", True, 1.5):
            with self.assertRaises(ValueError):
                kafka.start_offsets(bad, [0])
        with self.assertRaises(ValueError):
            kafka.start_offsets({9: 0}, [0, 1])

    def test_read_needs_an_end(self):
        with self.assertRaises(ValueError):
            kafka.read("127.0.0.1:1", "t")


class Flatten(unittest.TestCase):
    def test_nested_documents(self):
        self.assertEqual(
            flatten({"a": {"b": 1, "c": {"d": 2}}, "l": [{"x": 1}], "m": [{"x": 1}, {"x": 2}], "s": [1, 2]}),
            {"a.b": 1, "a.c.d": 2, "l.x": 1, "m.0.x": 1, "m.1.x": 2, "s": [1, 2]},
        )

    def test_progress_frame(self):
        doc = {
            "batch_id": 3, "timestamp": "2026-01-01T00:00:01Z", "num_input_rows": 200,
            "input_rows_per_second": 199.5, "processed_rows_per_second": 4000.0,
            "duration_ms": {"trigger_execution": 50},
            "event_time": {"watermark": "2026-01-01T00:00:00Z", "min": None},
            "state_operators": [{"num_rows_total": 12, "partition_owners": {"w1": [0, 1]}}],
            "sources": [{"description": "kafka[transactions]", "start_offset": {"0": 1}, "num_input_rows": 200}],
            "sink": {"num_output_rows": 2},
        }
        df = progress_frame([doc, {**doc, "batch_id": 4}])
        self.assertEqual(list(df["batch_id"]), [3, 4])
        for column in ("duration_ms.trigger_execution", "state_operators.num_rows_total",
                       "sources.num_input_rows", "sink.num_output_rows", "event_time.watermark"):
            self.assertIn(column, df.columns)
        self.assertFalse(any("partition_owners" in c or "start_offset" in c for c in df.columns), list(df.columns))
        self.assertEqual(str(df["timestamp"].dt.tz), "UTC")
        self.assertTrue(progress_frame([]).empty)


class Access(unittest.TestCase):
    def test_plaintext(self):
        access = kafka_access_of(cluster("PLAINTEXT"))
        self.assertEqual(access.config, {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "PLAINTEXT"})
        self.assertIsNone(access.oauth_cb)

    def test_scram_user(self):
        access = kafka_access_of(cluster("SASL_SSL", ["SCRAM-SHA-512", "OAUTHBEARER"]), user="demo", password="pw")
        self.assertEqual(access.config["sasl.mechanisms"], "SCRAM-SHA-512")
        self.assertEqual(access.config["sasl.username"], "demo")
        self.assertTrue(access.config["ssl.ca.pem"].startswith("-----BEGIN"))
        self.assertNotIn("pw", repr(access))

    def test_oauthbearer_presents_the_access_token(self):
        token = jwt({"name": "alice", "exp": 2_000_000_000})
        access = kafka_access_of(cluster("SASL_SSL", ["SCRAM-SHA-512", "OAUTHBEARER"]), token=lambda: token)
        self.assertEqual(access.config["sasl.mechanisms"], "OAUTHBEARER")
        config = access.client_config(group_id="g")
        self.assertEqual(config["group.id"], "g")
        self.assertEqual(config["oauth_cb"]("")[:3], (token, 2_000_000_000.0, "alice"))

    def test_refusals(self):
        with self.assertRaisesRegex(ValueError, "not a Kafka cluster"):
            kafka_access_of(cluster("PLAINTEXT", kind="spark"))
        with self.assertRaisesRegex(ValueError, "no bootstrap servers"):
            kafka_access_of(cluster("PLAINTEXT", servers=None))
        with self.assertRaisesRegex(ValueError, "name a Kafka user"):
            kafka_access_of(cluster("SASL_SSL", ["SCRAM-SHA-512"]))
        with self.assertRaisesRegex(ValueError, "no CA certificate"):
            kafka_access_of(cluster("SSL", ca=None))

    def test_bootstrap_string(self):
        self.assertEqual(kafka._config("h:1")["bootstrap.servers"], "h:1")
        self.assertEqual(KafkaAccess({"bootstrap.servers": "h:2"}).bootstrap_servers, "h:2")


class Problems(unittest.TestCase):
    def test_message_carries_title_detail_code(self):
        error = ProblemError(409, {"title": "Conflict", "code": "job_exists", "detail": "job x exists",
                                   "status": 409}, "POST", "/v1/x")
        self.assertEqual((error.status, error.code, error.title, error.detail), (409, "job_exists", "Conflict", "job x exists"))
        self.assertEqual(str(error), "Conflict (job_exists, HTTP 409): job x exists [POST /v1/x]")

    def test_codes_are_the_documents(self):
        codes = models.ErrorCode.__args__
        self.assertIn("invalid_credentials", codes)
        self.assertIn("not_found", codes)


class GeneratedModels(unittest.TestCase):
    def test_every_operation_the_client_calls_exists(self):
        source = inspect.getsource(client_module)
        used = set(re.findall(r'_(?:request|pages)\(\s*"([a-z_]+)"', source))
        self.assertGreater(len(used), 8)
        self.assertEqual(used - set(models.OPERATIONS), set())

    def test_models_are_typed_dicts(self):
        self.assertIn("status", models.Cluster.__annotations__)
        self.assertIn("access_token", models.TokenResponse.__required_keys__)
        self.assertIn("grant_type", models.TokenRequestPassword.__annotations__)


class Jwt(unittest.TestCase):
    def test_claims(self):
        self.assertEqual(client_module._jwt_expiry_and_name(jwt({"exp": 5, "name": "bob"})), (5.0, "bob"))
        with self.assertRaises(ValueError):
            client_module._jwt_expiry_and_name("opaque-api-token")

    def test_client_needs_a_login(self):
        with self.assertRaises(ValueError):
            hdi.Client("http://127.0.0.1:1")


class Live(unittest.TestCase):
    def test_update_renders_png(self):
        chart = hdi.LiveChart(ncols=2, figsize=(4, 2))
        chart.update(lambda fig, axes: axes[0].plot([1, 2, 3]))
        chart.update(lambda fig, axes: axes[1].bar(["a"], [1]))
        self.assertEqual(chart.updates, 2)
        self.assertTrue(chart.png.startswith(b"\x89PNG"))


if __name__ == "__main__":
    unittest.main()
