"""A small REST client of the hdi control plane, built from the operations of ``openapi/hdi.json``.

It logs in (a username and password, or an API token, exchanged at ``POST /v1/auth/token`` for a
short-lived access token that it renews), lists workspaces, clusters, topics and jobs, reads a
job's progress (flattened into a DataFrame) and preview, and tells a Kafka client how to reach a
cluster (``kafka_access``: bootstrap servers, TLS and SASL from the cluster's status). Every
error answer becomes a :class:`ProblemError` carrying the problem document's title, detail and
code. No Kafka I/O here: :mod:`hdi.kafka` reads topics.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import requests

from . import models

__all__ = ["Client", "KafkaAccess", "ProblemError", "flatten", "progress_frame"]


class ProblemError(Exception):
    """An error answer of the API (``application/problem+json``): ``status``, ``code`` (a
    stable :data:`hdi.models.ErrorCode`), ``title``, ``detail`` and ``field``, and the whole
    document in ``problem``."""

    def __init__(self, status: int, problem: dict[str, Any], method: str = "", path: str = ""):
        self.status = status
        self.problem = problem
        self.code: str = str(problem.get("code") or "unknown")
        self.title: str = str(problem.get("title") or f"HTTP {status}")
        self.detail: str | None = problem.get("detail")
        self.field: str | None = problem.get("field")
        self.request = f"{method} {path}".strip()
        message = f"{self.title} ({self.code}, HTTP {status})"
        if self.detail:
            message += f": {self.detail}"
        if self.field:
            message += f" [field {self.field}]"
        if self.request:
            message += f" [{self.request}]"
        super().__init__(message)

    @classmethod
    def from_response(cls, response: requests.Response) -> "ProblemError":
        """The problem an error response carries (a made-up one when its body is not a
        problem document, e.g. a proxy's HTML page)."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "title" not in body:
            text = response.text.strip()
            body = {
                "title": response.reason or f"HTTP {response.status_code}",
                "status": response.status_code,
                "code": "unknown",
                "detail": text[:500] or None,
            }
        request = response.request
        path = requests.utils.urlparse(request.url).path if request is not None and request.url else ""
        return cls(response.status_code, body, request.method if request is not None else "", path)


@dataclass
class KafkaAccess:
    """How a Kafka client reaches a cluster: librdkafka properties (``bootstrap.servers``,
    ``security.protocol``, SASL and ``ssl.ca.pem`` as the cluster's status says) and, for
    OAUTHBEARER, a callback presenting the hdi access token (confluent-kafka's ``oauth_cb``)."""

    config: dict[str, str]
    oauth_cb: Callable[[str], tuple[str, float, str, dict[str, str]]] | None = None
    cluster: str = ""

    @property
    def bootstrap_servers(self) -> str:
        return self.config["bootstrap.servers"]

    def client_config(self, **extra: Any) -> dict[str, Any]:
        """confluent-kafka configuration: these properties, the OAUTHBEARER callback, ``extra``
        (underscores in keys become dots: ``group_id="x"`` sets ``group.id``)."""
        config: dict[str, Any] = dict(self.config)
        if self.oauth_cb is not None:
            config["oauth_cb"] = self.oauth_cb
        config.update({key.replace("_", "."): value for key, value in extra.items()})
        return config

    def __repr__(self) -> str:
        shown = {k: ("***" if "password" in k else v) for k, v in self.config.items() if k != "ssl.ca.pem"}
        if "ssl.ca.pem" in self.config:
            shown["ssl.ca.pem"] = "<PEM>"
        oauth = ", OAUTHBEARER" if self.oauth_cb else ""
        return f"KafkaAccess({self.cluster!r}, {shown}{oauth})"


@dataclass
class _Token:
    value: str
    expires_at: float
    principal: str = ""


@dataclass
class Client:
    """A client of the control plane at ``url`` (e.g. ``http://127.0.0.1:7420``).

    Log in with ``username`` and ``password``, or with an API ``token`` (or ``token_file``,
    e.g. the ``.hdi/secrets/admin-token`` of ``cargo xtask up``). An API token is sent as the
    bearer itself; a password is exchanged for an access token, renewed before it expires.
    """

    url: str
    token: str | None = None
    username: str | None = None
    password: str | None = None
    token_file: str | Path | None = None
    timeout: float = 30.0
    session: requests.Session = field(default_factory=requests.Session, repr=False)
    _access: _Token | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        if self.token is None and self.token_file is not None:
            self.token = Path(self.token_file).expanduser().read_text(encoding="utf-8").strip()
        if not self.token and not (self.username and self.password):
            raise ValueError("log in with username and password, token, or token_file")
        if self.token and self.token.count(".") == 2:
            # Already an access token (a JWT): used as it is until it expires.
            self._access = _Token(self.token, *_jwt_expiry_and_name(self.token))

    # -- authentication ---------------------------------------------------------------------

    def access_token(self) -> str:
        """A valid access token (a JWT), fetched or renewed at ``POST /v1/auth/token`` when it
        expires within a minute: what OAUTHBEARER presents to Kafka."""
        if self._access is None or self._access.expires_at - time.time() < 60:
            if self.username and self.password:
                grant: models.TokenRequest = {
                    "grant_type": "password",
                    "username": self.username,
                    "password": self.password,
                }
            elif self.token and self.token.count(".") != 2:
                grant = {"grant_type": "api_token", "token": self.token}
            else:
                raise ProblemError(401, {"title": "Unauthorized", "code": "unauthorized",
                                         "detail": "the access token expired; log in again"})
            answer: models.TokenResponse = self._request("token", body=grant, auth=False)
            jwt = answer["access_token"]
            _, name = _jwt_expiry_and_name(jwt)
            self._access = _Token(jwt, time.time() + float(answer["expires_in"]), name)
        return self._access.value

    def _bearer(self) -> str:
        if self.username and self.password or self._access is not None:
            return self.access_token()
        return str(self.token)

    # -- requests ---------------------------------------------------------------------------

    def _request(self, operation: str, *, body: Any = None, query: dict[str, Any] | None = None,
                 auth: bool = True, **path: str) -> Any:
        method, template = models.OPERATIONS[operation]
        url = self.url + template.format(**{k: requests.utils.quote(str(v), safe="") for k, v in path.items()})
        headers = {"Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self._bearer()}"
        params = {k: v for k, v in (query or {}).items() if v is not None}
        response = self.session.request(method, url, json=body, params=params, headers=headers,
                                        timeout=self.timeout)
        if response.status_code >= 400:
            raise ProblemError.from_response(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def _pages(self, operation: str, **path: str) -> Iterator[Any]:
        token = None
        while True:
            page = self._request(operation, query={"page_size": 100, "page_token": token}, **path)
            yield from page.get("items", [])
            token = page.get("next_page_token")
            if not token:
                return

    # -- resources --------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        """Who the caller is: username, platform admin or not, role per workspace
        (``GET /v1/me``)."""
        return self._request("me")

    def workspaces(self) -> list[models.Workspace]:
        """Every workspace the caller can see."""
        return list(self._pages("workspaces_list"))

    def clusters(self, workspace: str) -> list[models.Cluster]:
        """The workspace's clusters."""
        return list(self._pages("clusters_list", ws=workspace))

    def cluster(self, workspace: str, name: str) -> models.Cluster:
        """One cluster, with its status (state, endpoints, workloads)."""
        return self._request("cluster_get", ws=workspace, name=name)

    def topics(self, workspace: str, cluster: str) -> list[models.Topic]:
        """The Kafka cluster's topics (without configs)."""
        return list(self._pages("topics_list", ws=workspace, cluster=cluster))

    def topic(self, workspace: str, cluster: str, topic: str) -> models.Topic:
        """One topic: partitions, replicas, configs."""
        return self._request("topic_get", ws=workspace, cluster=cluster, topic=topic)

    def jobs(self, workspace: str, cluster: str) -> list[models.Job]:
        """The Spark cluster's jobs, with their live status."""
        return list(self._pages("jobs_list", ws=workspace, cluster=cluster))

    def job(self, workspace: str, cluster: str, job: str) -> models.Job:
        """One job (by name or id)."""
        return self._request("job_get", ws=workspace, cluster=cluster, job=job)

    def job_progress(self, workspace: str, cluster: str, job: str, limit: int = 100) -> list[models.JobProgress]:
        """The job's latest micro-batch progress documents, oldest first."""
        answer: models.JobProgressList = self._request(
            "job_progress", query={"limit": limit}, ws=workspace, cluster=cluster, job=job)
        return list(answer["progress"])

    def job_progress_frame(self, workspace: str, cluster: str, job: str, limit: int = 100):
        """:meth:`job_progress` as a DataFrame, one row per batch (see :func:`progress_frame`)."""
        return progress_frame(self.job_progress(workspace, cluster, job, limit))

    def job_preview(self, workspace: str, cluster: str, job: str, limit: int = 100) -> models.JobPreview:
        """The latest rows the job wrote (columns in order, rows keyed by column)."""
        return self._request("job_preview", query={"limit": limit}, ws=workspace, cluster=cluster, job=job)

    def job_preview_frame(self, workspace: str, cluster: str, job: str, limit: int = 100):
        """:meth:`job_preview` as a DataFrame with the preview's columns."""
        import pandas as pd

        preview = self.job_preview(workspace, cluster, job, limit)
        return pd.DataFrame(preview["rows"], columns=preview["columns"] or None)

    def frame(self, items: list[Any]):
        """A list of API objects as a flat DataFrame (nested members as dotted columns)."""
        import pandas as pd

        return pd.DataFrame([flatten(item) for item in items])

    # -- Kafka ------------------------------------------------------------------------------

    def bootstrap_servers(self, workspace: str, cluster: str) -> str:
        """The Kafka cluster's bootstrap servers, from its status."""
        return self.kafka_access(workspace, cluster).bootstrap_servers

    def kafka_access(self, workspace: str, cluster: str, *, user: str | None = None,
                     password: str | None = None) -> KafkaAccess:
        """How to reach Kafka cluster ``cluster``, from its status's endpoints: PLAINTEXT as it
        is; TLS trusting the cluster's CA (``ssl.ca.pem``); SASL as Kafka user ``user`` (SCRAM),
        else as yourself over OAUTHBEARER with your hdi access token (as ``hdictl topic
        consume`` does)."""
        return kafka_access_of(self.cluster(workspace, cluster), user=user, password=password,
                               token=self.access_token)


def kafka_access_of(cluster: models.Cluster, *, user: str | None = None, password: str | None = None,
                    token: Callable[[], str] | None = None) -> KafkaAccess:
    """:meth:`Client.kafka_access` for a cluster document already read (pure but for ``token``,
    called only when OAUTHBEARER presents it)."""
    name = cluster["name"]
    if cluster["spec"]["kind"] != "kafka":
        raise ValueError(f"cluster {name!r} is a {cluster['spec']['kind']} cluster, not a Kafka cluster")
    endpoints = cluster["status"].get("endpoints", {})
    servers = endpoints.get("bootstrap_servers")
    if not servers:
        raise ValueError(f"cluster {name!r} has no bootstrap servers yet (it is {cluster['status']['state']})")
    protocol = endpoints.get("security_protocol") or "PLAINTEXT"
    config = {"bootstrap.servers": servers, "security.protocol": protocol}
    oauth_cb = None
    if protocol.startswith("SASL_"):
        mechanisms = endpoints.get("sasl_mechanisms") or []
        if user is not None:
            if not password:
                raise ValueError(f"Kafka user {user!r} needs a password")
            scram = next((m for m in mechanisms if m.startswith("SCRAM-")), "SCRAM-SHA-512")
            config.update({"sasl.mechanisms": scram, "sasl.username": user, "sasl.password": password})
        elif "OAUTHBEARER" in mechanisms and token is not None:
            config["sasl.mechanisms"] = "OAUTHBEARER"
            oauth_cb = _oauth_callback(token)
        else:
            raise ValueError(
                f"cluster {name!r} authenticates clients ({protocol}, {', '.join(mechanisms) or 'no mechanism'}): "
                "name a Kafka user and its password")
    if protocol.endswith("SSL"):
        ca = endpoints.get("ca_certificate")
        if not ca:
            raise ValueError(f"cluster {name!r} has no CA certificate yet (it is {cluster['status']['state']})")
        config["ssl.ca.pem"] = ca
    return KafkaAccess(config, oauth_cb, name)


def _oauth_callback(token: Callable[[], str]) -> Callable[[str], tuple[str, float, str, dict[str, str]]]:
    def oauth_cb(_config: str) -> tuple[str, float, str, dict[str, str]]:
        jwt = token()
        expires_at, principal = _jwt_expiry_and_name(jwt)
        return jwt, expires_at, principal, {}

    return oauth_cb


def _jwt_expiry_and_name(jwt: str) -> tuple[float, str]:
    """The ``exp`` (seconds since the epoch) and ``name`` claims of a JWT (unverified: the
    server checks the signature)."""
    try:
        payload = jwt.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"]), str(claims.get("name") or claims.get("sub") or "")
    except (IndexError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"the access token is not a JWT with an exp claim: {error}") from None


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested JSON object as one flat dict: objects by dotted keys (``duration_ms.execution``),
    lists of objects by index (``sources.0.description``; a one-element list drops the index:
    ``sources.description``), other lists kept whole."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}."))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        if len(value) == 1:
            out.update(flatten(value[0], prefix))
        else:
            for i, item in enumerate(value):
                out.update(flatten(item, f"{prefix}{i}."))
    elif prefix:
        out[prefix[:-1]] = value
    return out


PROGRESS_TIMES = ("timestamp", "event_time.min", "event_time.max", "event_time.watermark")


def progress_frame(progress: list[dict[str, Any]]):
    """Progress documents as a DataFrame, one row per batch, nested figures as dotted columns
    (``duration_ms.trigger_execution``, ``event_time.watermark``, ``state_operators.num_rows_total``,
    ``sink.num_output_rows``); per-partition maps (offsets, state partition owners) are left out;
    times are pandas timestamps (UTC)."""
    import pandas as pd

    rows = []
    for doc in progress:
        row = flatten(doc)
        rows.append({k: v for k, v in row.items()
                     if not any(part in k for part in ("start_offset.", "end_offset.", "partition_owners."))})
    frame = pd.DataFrame(rows)
    for column in PROGRESS_TIMES:
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True, errors="coerce", format="ISO8601")
    return frame
