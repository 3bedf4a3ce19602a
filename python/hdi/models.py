"""Typed models of the hdi REST API, generated from ``openapi/hdi.json`` by ``python/gen_models.py``.

Do not edit: run ``cargo xtask codegen`` (a test fails when this file is stale). Each component
schema is a ``TypedDict`` describing the JSON the API sends and takes; ``OPERATIONS`` maps each
operation id to its HTTP method and path template.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict, Union

__all__ = [
    "API_VERSION",
    "ApiToken",
    "ApiTokenCreate",
    "ApiTokenCreated",
    "ApiTokenList",
    "AuditEvent",
    "AuditEventList",
    "AuthorityRotation",
    "AuthorityRotationPhase",
    "AuthorityRotationRequest",
    "BrokerSecurity",
    "BrokerWorkload",
    "Capabilities",
    "CertificateRotation",
    "ClientCredentialsRequest",
    "Cluster",
    "ClusterKind",
    "ClusterList",
    "ClusterMetrics",
    "ClusterPatch",
    "ClusterSpec",
    "ClusterState",
    "ClusterStatus",
    "Condition",
    "ConsumerGroup",
    "ConsumerGroupList",
    "ConsumerGroupMember",
    "ConsumerGroupOffset",
    "ConsumerGroupOffsetsReset",
    "ConsumerGroupResetOffsets",
    "ConsumerGroupState",
    "ConsumerGroupSummary",
    "Endpoints",
    "ErrorCode",
    "ExecutorRole",
    "ExecutorWorkload",
    "GroupSeries",
    "Health",
    "Job",
    "JobBatchDurations",
    "JobCreate",
    "JobError",
    "JobEventTime",
    "JobList",
    "JobPreview",
    "JobProgress",
    "JobProgressList",
    "JobSinkProgress",
    "JobSourceProgress",
    "JobState",
    "JobStateOperator",
    "JobStatus",
    "Jwk",
    "Jwks",
    "KafkaAcl",
    "KafkaMechanism",
    "KafkaOperation",
    "KafkaPatternType",
    "KafkaPermission",
    "KafkaQuotas",
    "KafkaResourceType",
    "KafkaSecurity",
    "KafkaUser",
    "KafkaUserCreate",
    "KafkaUserCredential",
    "KafkaUserList",
    "KafkaUserPatch",
    "KafkaUserState",
    "KindCapabilities",
    "LinkOperationResult",
    "Me",
    "MirrorPartitionStatus",
    "MirrorTopicStatus",
    "Node",
    "NodeCapacity",
    "NodeCredential",
    "NodeHeartbeat",
    "NodeList",
    "NodePool",
    "NodePoolPatch",
    "NodeRegistration",
    "NodeStatus",
    "OAuthError",
    "OAuthErrorCode",
    "OPERATIONS",
    "Operation",
    "OperationError",
    "OperationKind",
    "OperationList",
    "OperationState",
    "OperationStep",
    "PartitionOffsetReset",
    "PartitionState",
    "PartitionStop",
    "PlacedWorkload",
    "PoolRole",
    "PoolStatus",
    "Problem",
    "QuorumTls",
    "QuorumVoter",
    "Readiness",
    "RecordHeader",
    "RecordProduce",
    "RecordProduced",
    "ReplicationLink",
    "ReplicationLinkList",
    "ReplicationLinkSpec",
    "ReplicationLinkState",
    "ReplicationLinkStatus",
    "ResetTo",
    "Role",
    "RoleBinding",
    "RoleBindingList",
    "RoleBindingPut",
    "RunAs",
    "SessionCreate",
    "SessionCreate0",
    "SessionCreate1",
    "Size",
    "TailRecord",
    "TokenRequest",
    "TokenRequestApiToken",
    "TokenRequestPassword",
    "TokenResponse",
    "Topic",
    "TopicCreate",
    "TopicList",
    "TopicPartitions",
    "TopicPatch",
    "TopicSeries",
    "User",
    "UserCreate",
    "UserList",
    "Workload",
    "WorkloadAssignment",
    "WorkloadSpec",
    "WorkloadState",
    "WorkloadStatus",
    "Workspace",
    "WorkspaceCreate",
    "WorkspaceList",
    "WorkspaceRole",
]

API_VERSION = "0.1.0"
"""The ``info.version`` of the document these models were generated from."""


class ApiToken(TypedDict):
    """An API token as listed: never its secret."""
    created_at: str
    """Created."""
    expires_at: NotRequired[str | None]
    """When it stops working; absent: never (tokens made before expiry was required)."""
    id: str
    """Identity."""
    last_used_at: NotRequired[str | None]
    """When it last authenticated a request; absent: never."""
    name: str
    """Its name (unique per user)."""


class ApiTokenCreate(TypedDict):
    """`POST /v1/users/{username}/api-tokens`."""
    expires_in_days: NotRequired[int | None]
    """Lifetime in days (1-3650); absent: 90. Every API token expires."""
    name: str
    """Unique per user: 1-64 letters, digits, `.`, `_`, `-`."""


class ApiTokenCreated(TypedDict):
    """A created API token. The secret is shown only in this answer."""
    created_at: str
    """Created."""
    expires_at: NotRequired[str | None]
    """When it stops working; absent: never."""
    id: str
    """Identity."""
    name: str
    """Its name."""
    token: str
    """The secret: exchange it at `POST /v1/auth/token` or send it as a bearer token."""
    username: str
    """Its user."""


class ApiTokenList(TypedDict):
    """A user's API tokens, by name."""
    items: list[ApiToken]
    """The tokens."""


class AuditEvent(TypedDict):
    """One audited mutation."""
    action: str
    """What, e.g. `cluster.create`."""
    actor: str
    """Who."""
    at: str
    """When."""
    detail: NotRequired[str | None]
    """Extra detail."""
    id: int
    """Sequence number."""
    outcome: str
    """`accepted`, or the refusal's problem code."""
    resource: str
    """On what, e.g. `workspaces/ws/clusters/c1`."""


class AuditEventList(TypedDict):
    """A page of audit events, newest first."""
    items: list[AuditEvent]
    """This page."""
    next_page_token: NotRequired[str | None]
    """Pass as `page_token` for the next page; absent on the last page."""


class AuthorityRotation(TypedDict):
    """A rotation of a Kafka cluster's authorities (its Kafka CA, which clients trust, and its
    quorum CA, which the brokers trust among themselves) in progress.
    """
    at: str
    """`trusting`: when the new authorities start signing (clients must trust the cluster's
    `ca_certificate` by then); `issuing` and `settling`: when the phase began.
    """
    ca_certificate: NotRequired[str | None]
    """What clients must trust from now on: the current and the new Kafka CA certificates
    (PEM; only in the answer to the request that starts the rotation, and only for clusters
    with TLS).
    """
    phase: AuthorityRotationPhase
    """The phase."""


class AuthorityRotationRequest(TypedDict):
    """`POST /v1/workspaces/{ws}/clusters/{cluster}/rotate-authorities`: how long clients get to
    trust the new authority before it starts signing.
    """
    trust_period_seconds: NotRequired[int | None]
    """Seconds during which both the current and the new authority are trusted while the
    current one still signs (1 to 31,536,000; default 604,800, a week; longer while a
    broker's node has not applied the new trust). Clients must load the cluster's
    `ca_certificate` (which holds both during the rotation) within it: once it passes, the
    brokers serve certificates of the new authority only.
    """


class BrokerSecurity(TypedDict):
    """How a broker secures its Kafka listener: `hdi-broker --listener PROTOCOL://HOST:PORT
    [--tls-dir DIR] [--sasl-mechanisms ... --sasl-users-file FILE] [--authorizer --super-users
    ...] --auto-create-topics false`, the files written 0600 by the agent.
    """
    authorizer: bool
    """Enforce ACLs."""
    oauth_jwks: NotRequired[str | None]
    """The control plane's JSON Web Key Set (OAUTHBEARER), written to `jwks.json`."""
    protocol: str
    """`SASL_SSL`, `SSL`, `SASL_PLAINTEXT` or `PLAINTEXT`."""
    sasl_mechanisms: NotRequired[list[str]]
    """SASL mechanisms offered."""
    sasl_users: NotRequired[str | None]
    """The static users file (the platform's administrator; Kafka users live in the quorum)."""
    super_users: NotRequired[list[str]]
    """Principals allowed everything (`User:NAME`)."""
    tls: NotRequired[QuorumTls | None]


class BrokerWorkload(TypedDict):
    """`hdi-broker --node-id N --listen HOST:KAFKA_PORT --quorum-listen HOST:QUORUM_PORT --quorum ...`."""
    broker_id: int
    """The broker id in its cluster."""
    host: str
    """Host the broker listens on and advertises (the node's address)."""
    kafka_port: int
    """Kafka listener port."""
    kafka_security: NotRequired[BrokerSecurity | None]
    metrics_port: NotRequired[int | None]
    """Port of the broker's Prometheus metrics listener (`GET /metrics`); absent: none."""
    quorum_port: int
    """Broker-to-broker (metadata quorum and replication) port."""
    quorum_tls: NotRequired[QuorumTls | None]
    rack: str
    """Rack (the node's fault domain) for replica placement."""
    voters: list[QuorumVoter]
    """The metadata quorum's voters; a broker not among them joins as a learner."""


class Capabilities(TypedDict):
    """`GET /v1/capabilities`."""
    kinds: list[KindCapabilities]
    """Per kind."""
    max_storage_gib: int
    """Largest `storage_gib`."""
    sizes: list[Size]
    """Sizes."""


class CertificateRotation(TypedDict):
    """`POST /v1/workspaces/{ws}/clusters/{cluster}/rotate-certificates`: what was rotated."""
    brokers: int
    """Brokers whose certificates are renewed (each when its node next fetches its assignment,
    within a poll interval; the brokers reload them without a restart).
    """


class ClientCredentialsRequest(TypedDict):
    """`POST /v1/auth/oauth2/token`: an OAuth 2.0 client-credentials request (RFC 6749 §4.4), sent
    as `application/x-www-form-urlencoded`, as the Java client's `OAuthBearerLoginCallbackHandler`
    and librdkafka's `sasl.oauthbearer.method=oidc` send it. The client is an hdi user: its id is
    the username and its secret one of that user's API tokens, in HTTP Basic authentication
    (RFC 6749 §2.3.1) or in the body, not both.
    """
    client_id: NotRequired[str | None]
    """The username, when it is not in the `Authorization: Basic` header."""
    client_secret: NotRequired[str | None]
    """An API token of that user, when it is not in the `Authorization: Basic` header."""
    grant_type: str
    """`client_credentials`."""
    scope: NotRequired[str | None]
    """Not supported (an access token carries its user's roles): absent or empty."""


class Cluster(TypedDict):
    """A cluster: spec plus status."""
    created_at: str
    """Created."""
    generation: int
    """Bumped by every spec change."""
    id: str
    """Identity."""
    name: str
    """Cluster name, unique in its workspace."""
    spec: ClusterSpec
    """The desired spec."""
    status: ClusterStatus
    """Observed state."""
    updated_at: str
    """Last spec change."""
    workspace: str
    """Workspace name."""


class ClusterList(TypedDict):
    """A page of clusters, ordered by name."""
    items: list[Cluster]
    """This page."""
    next_page_token: NotRequired[str | None]
    """Pass as `page_token` for the next page; absent on the last page."""


class ClusterMetrics(TypedDict):
    """A Kafka cluster's recent time series."""
    groups: list[GroupSeries]
    """Per consumer group, by group id."""
    interval_ms: int
    """Milliseconds between samples (the control plane's `--metrics-interval`)."""
    records_consumed_per_sec: list[float | None]
    """Records consumed per second by all groups (the advance of their committed offsets)."""
    records_in_per_sec: list[float | None]
    """Records written to the cluster per second (all topics), over the interval ending at each
    sample.
    """
    retention_ms: int
    """How far back samples are kept, in milliseconds."""
    timestamps_ms: list[int]
    """When each sample was taken, in milliseconds since the Unix epoch, ascending."""
    topics: list[TopicSeries]
    """Per topic (internal topics left out), by name."""


class ClusterPatch(TypedDict):
    """`PATCH /v1/workspaces/{ws}/clusters/{name}`: resize a pool or toggle deletion protection."""
    deletion_protection: NotRequired[bool | None]
    """New deletion protection."""
    drain: NotRequired[bool]
    """When removing brokers that hold partitions: move the partitions away first instead of
    refusing the resize.
    """
    node_pools: NotRequired[list[NodePoolPatch] | None]
    """Pools to resize."""


class ClusterSpec(TypedDict):
    """`PUT /v1/workspaces/{ws}/clusters/{name}`: the desired cluster."""
    config: NotRequired[dict[str, str]]
    """Cluster-wide settings (reserved; must be empty today)."""
    deletion_protection: NotRequired[bool]
    """While on, `DELETE` is refused."""
    kind: ClusterKind
    """`kafka` or `spark`; cannot change after creation."""
    node_pools: list[NodePool]
    """The node pools: exactly one, of role `broker` (Kafka) or `executor` (Spark)."""
    security: NotRequired[KafkaSecurity | None]
    version: NotRequired[str | None]
    """A version from `GET /v1/capabilities` (default: the kind's default)."""


class ClusterStatus(TypedDict):
    """Observed state of a cluster."""
    authority_rotation: NotRequired[AuthorityRotation | None]
    conditions: list[Condition]
    """Detailed observations."""
    endpoints: Endpoints
    """Client endpoints."""
    last_operation: NotRequired[str | None]
    """The most recent operation on the cluster."""
    observed_generation: int
    """The spec generation the status describes as reached."""
    pools: list[PoolStatus]
    """Per pool."""
    state: ClusterState
    """For people."""
    workloads: list[PlacedWorkload]
    """Workloads and where they run."""


class Condition(TypedDict):
    """One observed aspect of a cluster, Kubernetes style."""
    last_transition_time: str
    """When `status` last changed."""
    message: str
    """For people."""
    reason: str
    """A CamelCase reason."""
    status: str
    """`True`, `False` or `Unknown`."""
    type: str
    """E.g. `Ready`, `Placed`, `Balanced`."""


class ConsumerGroup(TypedDict):
    """A consumer group described: members with their assignments, and per partition the committed
    offset, the end offset and the lag.
    """
    assignor: NotRequired[str | None]
    """The partition assignor in use; absent without members."""
    coordinator: NotRequired[int | None]
    """Broker id of the group's coordinator."""
    group_id: str
    """Group id."""
    members: list[ConsumerGroupMember]
    """Members, by member id."""
    offsets: list[ConsumerGroupOffset]
    """Partitions with a committed offset or assigned to a member, by topic and partition."""
    protocol_type: str
    """Protocol type (`consumer`), empty for a group that only has committed offsets."""
    state: ConsumerGroupState
    """State."""
    total_lag: int
    """Sum of `lag` over `offsets`."""


class ConsumerGroupList(TypedDict):
    """A page of a cluster's consumer groups, ordered by group id."""
    items: list[ConsumerGroupSummary]
    """This page."""
    next_page_token: NotRequired[str | None]
    """Pass as `page_token` for the next page; absent on the last page."""


class ConsumerGroupMember(TypedDict):
    """A member of a consumer group."""
    assignment: list[TopicPartitions]
    """The partitions assigned to it, by topic (empty for groups that are not Kafka
    consumers).
    """
    client_host: str
    """The client's address as the coordinator saw it (`/127.0.0.1`)."""
    client_id: str
    """The client's `client.id`."""
    group_instance_id: NotRequired[str | None]
    """Static membership id (`group.instance.id`), if the member has one."""
    member_id: str
    """Member id given by the coordinator."""


class ConsumerGroupOffset(TypedDict):
    """One partition of a consumer group: what it committed, where the partition ends, the lag."""
    committed_offset: NotRequired[int | None]
    """The committed offset (the next record the group reads); absent for an assigned
    partition without one.
    """
    end_offset: NotRequired[int | None]
    """The partition's end offset (high watermark); absent when it could not be read."""
    lag: NotRequired[int | None]
    """`end_offset - committed_offset` (at least 0), when both are known."""
    member_id: NotRequired[str | None]
    """The member the partition is assigned to, if any."""
    metadata: NotRequired[str | None]
    """The metadata committed with the offset, if any."""
    partition: int
    """Partition."""
    topic: str
    """Topic."""


class ConsumerGroupOffsetsReset(TypedDict):
    """The answer to a reset: the new offsets (committed unless `dry_run`)."""
    dry_run: bool
    """Whether this was a dry run (nothing committed)."""
    group_id: str
    """Group id."""
    offsets: list[PartitionOffsetReset]
    """Every partition reset, by topic and partition."""


class ConsumerGroupResetOffsets(TypedDict):
    """`POST /v1/workspaces/{ws}/clusters/{cluster}/consumer-groups/{group}/reset-offsets`."""
    dry_run: NotRequired[bool]
    """Compute and answer the new offsets without committing them."""
    offset: NotRequired[int | None]
    """With `to: offset`: the offset (at least 0)."""
    timestamp_ms: NotRequired[int | None]
    """With `to: timestamp`: milliseconds since the Unix epoch."""
    to: ResetTo
    """Where to move the offsets."""
    topics: NotRequired[list[str] | None]
    """Reset every partition of these topics; absent: the partitions the group has committed
    offsets for.
    """


class ConsumerGroupSummary(TypedDict):
    """A consumer group in a list."""
    assignor: NotRequired[str | None]
    """The partition assignor the members agreed on (`range`, `roundrobin`,
    `cooperative-sticky`...); absent without members.
    """
    group_id: str
    """Group id."""
    members: int
    """Number of members."""
    protocol_type: str
    """Protocol type: `consumer` for Kafka consumers; empty for a group that only has
    committed offsets.
    """
    state: ConsumerGroupState
    """State."""
    total_lag: int
    """Sum over the partitions with a committed offset of `end_offset - committed_offset`
    (partitions whose end offset could not be read count 0).
    """


class Endpoints(TypedDict):
    """Where clients reach the cluster."""
    bootstrap_servers: NotRequired[str | None]
    """Kafka bootstrap servers, `host:port,...`."""
    ca_certificate: NotRequired[str | None]
    """The PEM certificate of the authority that signs the brokers' certificates (TLS only):
    what clients trust (`ssl.ca.location`). While the authorities rotate, both the current
    and the other authority's certificates.
    """
    job_api: NotRequired[str | None]
    """The executor driver's job API, `http://host:port`."""
    sasl_mechanisms: NotRequired[list[str]]
    """SASL mechanisms the brokers accept."""
    security_protocol: NotRequired[str | None]
    """Kafka's `security.protocol` for the bootstrap servers (`SASL_SSL`, `SSL`,
    `SASL_PLAINTEXT`, `PLAINTEXT`).
    """


class ExecutorWorkload(TypedDict):
    """`hdi-executor driver --listen HOST:PORT ...` or `hdi-executor worker --id N --listen HOST:PORT --driver HOST:PORT ...`,
    each with `--credential-file FILE --files-root DIR`.
    """
    credential: str
    """The cluster's credential: the agent writes it to a 0600 file the process reads
    (`--credential-file`); every caller of the driver and the workers must present it.
    """
    driver: str
    """The driver's `host:port` (workers register there; the driver's own address for the driver)."""
    files_root: str
    """The storage root jobs' file connectors resolve paths in, relative to the node's storage
    directory (`workspaces/<workspace id>`): one per workspace, shared by its clusters.
    """
    host: str
    """Host the process listens on (the node's address)."""
    port: int
    """Its HTTP port (the driver's is the job API)."""
    role: ExecutorRole
    """Driver or worker."""
    worker_id: int
    """The worker's id in its cluster (0 for the driver)."""


class GroupSeries(TypedDict):
    """The series of one consumer group."""
    group_id: str
    """Group id."""
    records_consumed_per_sec: list[float | None]
    """Records consumed per second (the advance of its committed offsets)."""
    total_lag: list[int | None]
    """Its total lag at each sample (sum over its committed partitions of end minus committed)."""


class Health(TypedDict):
    """Liveness of the control-plane process."""
    status: str
    """Always `ok` when the process answers."""
    version: str
    """The control plane's version."""


class Job(TypedDict):
    """A streaming SQL job."""
    cluster: str
    """The Spark cluster it runs on."""
    created_at: str
    """When it was submitted."""
    created_by: str
    """Who submitted it."""
    id: str
    """Identity."""
    kafka_cluster: NotRequired[str | None]
    """The Kafka cluster it reads and writes, if one was named (and still exists)."""
    name: str
    """Name, unique in the cluster."""
    sql: str
    """Its SQL."""
    status: JobStatus
    """Live status from the driver."""


class JobBatchDurations(TypedDict):
    """Durations of a micro-batch's phases, in milliseconds (Spark's `durationMs`)."""
    add_batch: NotRequired[int]
    """Writing the sink."""
    commit: NotRequired[int]
    """State snapshot and commit."""
    execution: NotRequired[int]
    """Running the tasks (reading, decoding, task queries), wall clock."""
    get_batch: NotRequired[int]
    """Of which reading the source (summed over tasks)."""
    latest_offset: NotRequired[int]
    """Finding the sources' latest offsets."""
    query_planning: NotRequired[int]
    """The final query."""
    state_merge: NotRequired[int]
    """Merging partial aggregates into state and emitting."""
    trigger_execution: NotRequired[int]
    """The whole batch."""
    wal_commit: NotRequired[int]
    """Writing the offset log."""


class JobCreate(TypedDict):
    """`POST /v1/workspaces/{ws}/clusters/{cluster}/jobs`."""
    kafka_cluster: NotRequired[str | None]
    """A Kafka cluster of the same workspace whose bootstrap servers the job's Kafka sources and
    sinks use.
    """
    name: str
    """Job name, unique in the cluster: 1-63 lowercase letters, digits or `-` (not a UUID)."""
    sql: str
    """The job's SQL (at most 256 KiB)."""


class JobError(TypedDict):
    """Why a job failed."""
    code: str
    """Stable code from the executor."""
    detail: str
    """For people."""


class JobEventTime(TypedDict):
    """Event-time figures of a micro-batch (RFC 3339 instants)."""
    max: NotRequired[str | None]
    """Largest event time in the batch."""
    min: NotRequired[str | None]
    """Smallest event time in the batch."""
    watermark: NotRequired[str | None]
    """The watermark after the batch."""


class JobList(TypedDict):
    """A page of a cluster's jobs, ordered by name."""
    items: list[Job]
    """This page."""
    next_page_token: NotRequired[str | None]
    """Pass as `page_token` for the next page; absent on the last page."""


class JobPreview(TypedDict):
    """The latest rows a job wrote."""
    columns: list[str]
    """Column names in order."""
    rows: list[dict[str, Any]]
    """Rows, as objects keyed by column name (values as the job's SQL types render in JSON:
    numbers, strings, booleans, `null`).
    """


class JobProgress(TypedDict):
    """One micro-batch's progress, as the executor reports it: the figures of Spark's
    `StreamingQueryProgress` (and its UI's Structured Streaming charts). A member the executor
    did not report reads as its default.
    """
    batch_id: NotRequired[int]
    """The micro-batch, from 0."""
    duration_ms: NotRequired[JobBatchDurations]
    event_time: NotRequired[JobEventTime]
    input_rows_per_second: NotRequired[float]
    """Records read per second of wall clock since the previous batch started."""
    num_input_rows: NotRequired[int]
    """Records read."""
    processed_rows_per_second: NotRequired[float]
    """Records processed per second of this batch's duration."""
    sink: NotRequired[JobSinkProgress]
    sources: NotRequired[list[JobSourceProgress]]
    """The sources (one today)."""
    state_operators: NotRequired[list[JobStateOperator]]
    """The stateful operators (one today)."""
    timestamp: NotRequired[str]
    """When the batch started (RFC 3339)."""


class JobProgressList(TypedDict):
    """The latest micro-batch progress documents of a job, oldest first."""
    progress: list[JobProgress]
    """One document per micro-batch, oldest first."""


class JobSinkProgress(TypedDict):
    """The sink's figures for a micro-batch."""
    description: NotRequired[str]
    """`kafka[topic]`, `files[dir]`, `memory`, `blackhole`."""
    num_output_rows: NotRequired[int]
    """Rows written."""


class JobSourceProgress(TypedDict):
    """A source's figures for a micro-batch."""
    description: NotRequired[str]
    """`kafka[topic]` or `files[dir]`."""
    end_offset: NotRequired[dict[str, int]]
    """Where it ended."""
    malformed_rows: NotRequired[int]
    """Records that did not decode."""
    num_input_rows: NotRequired[int]
    """Records read."""
    start_offset: NotRequired[dict[str, int]]
    """Where the batch started (per partition, or files taken)."""


class JobStateOperator(TypedDict):
    """A stateful operator's figures after a micro-batch."""
    memory_used_bytes: NotRequired[int]
    """Approximate bytes held."""
    num_rows_dropped_by_watermark: NotRequired[int]
    """Late rows dropped."""
    num_rows_total: NotRequired[int]
    """Rows (groups, windows, seen keys) held."""
    num_rows_updated: NotRequired[int]
    """Rows the batch created or changed."""
    num_state_partitions: NotRequired[int]
    """State partitions."""
    partition_owners: NotRequired[dict[str, list[int]]]
    """Which worker owns which state partitions in this batch."""


class JobStatus(TypedDict):
    """A job's status, as its driver reports it now."""
    batches_committed: NotRequired[int]
    """Micro-batches committed so far."""
    error: NotRequired[JobError | None]
    last_progress: NotRequired[JobProgress | None]
    state: JobState
    """State."""


class Jwk(TypedDict):
    """One public key of the JWKS (RFC 7517; Ed25519 keys are `OKP`, RFC 8037)."""
    alg: str
    """Algorithm: `EdDSA`."""
    crv: str
    """Curve: `Ed25519`."""
    kid: str
    """Key id, as in the tokens' `kid` header."""
    kty: str
    """Key type: `OKP`."""
    use: str
    """Use: `sig`."""
    x: str
    """The public key, unpadded base64url."""


class Jwks(TypedDict):
    """`GET /.well-known/jwks.json`: the keys access tokens are signed with."""
    keys: list[Jwk]
    """The keys."""


class KafkaAcl(TypedDict):
    """One grant (or denial) to a Kafka user, as Kafka's ACL bindings say it."""
    operations: list[KafkaOperation]
    """The operations."""
    pattern: NotRequired[KafkaPatternType]
    """`literal` (default) or `prefixed`."""
    permission: NotRequired[KafkaPermission]
    """`allow` (default) or `deny`; a deny beats any allow."""
    resource_name: str
    """The resource's name (a prefix with `pattern: prefixed`; `*` is every resource of the
    type; the cluster is `kafka-cluster`).
    """
    resource_type: KafkaResourceType
    """What kind of resource."""


class KafkaQuotas(TypedDict):
    """A Kafka user's client quotas, Kafka's per-principal quotas (`user=<name>` entity): the
    brokers throttle a client past one with `throttle_time_ms`, as Kafka does. Absent: no limit.
    """
    consumer_byte_rate: NotRequired[int | None]
    """Bytes per second the user may fetch, per broker (`consumer_byte_rate`; 1 to 10^12)."""
    producer_byte_rate: NotRequired[int | None]
    """Bytes per second the user may produce, per broker (`producer_byte_rate`; 1 to 10^12)."""
    request_percentage: NotRequired[int | None]
    """Percent of one broker thread's time the user's requests may take
    (`request_percentage`; 1 to 10,000).
    """


class KafkaSecurity(TypedDict):
    """A Kafka cluster's client security: its brokers' listener is `SASL_SSL` (TLS and a SASL
    mechanism), `SASL_PLAINTEXT`, `SSL` or `PLAINTEXT`, as `tls` and `authentication` say.
    """
    authentication: NotRequired[list[KafkaMechanism]]
    """SASL mechanisms clients may use (default `[SCRAM-SHA-512, OAUTHBEARER]`); empty: no
    authentication.
    """
    authorization: NotRequired[bool]
    """Enforce ACLs (Kafka users' `acls`); needs authentication. Default on."""
    tls: NotRequired[bool]
    """Encrypt client connections with TLS; the cluster's CA certificate is in its status
    (`endpoints.ca_certificate`). Default on.
    """


class KafkaUser(TypedDict):
    """A Kafka user (never with its password)."""
    acls: list[KafkaAcl]
    """Its ACLs."""
    cluster: str
    """The Kafka cluster."""
    created_at: str
    """When."""
    created_by: str
    """Who created it."""
    mechanism: str
    """The SASL mechanism its password is for."""
    name: str
    """Name (principal `User:<name>`)."""
    password_set_at: str
    """When its password was last set."""
    quotas: NotRequired[KafkaQuotas]
    """Its client quotas (none from control planes before quotas)."""
    state: KafkaUserState
    """Applied or pending."""


class KafkaUserCreate(TypedDict):
    """`POST /v1/workspaces/{ws}/clusters/{cluster}/kafka-users`."""
    acls: NotRequired[list[KafkaAcl]]
    """What the user may do (with authorization on, nothing else)."""
    name: str
    """The user's name, its principal `User:<name>`: 1-64 letters, digits, `.`, `_` or `-`;
    names starting with `hdi-` are the platform's.
    """
    quotas: NotRequired[KafkaQuotas]
    """How fast the user may go (none by default)."""


class KafkaUserCredential(TypedDict):
    """What create and rotate answer: the user and its new password, shown this once."""
    password: str
    """The password: the cluster keeps only a salted SCRAM credential of it, hdi nothing."""
    user: KafkaUser
    """The user."""


class KafkaUserList(TypedDict):
    """A page of Kafka users by name."""
    items: list[KafkaUser]
    """The users."""


class KafkaUserPatch(TypedDict):
    """`PATCH /v1/workspaces/{ws}/clusters/{cluster}/kafka-users/{name}`: replaces the ACLs, the
    quotas, or both (what is absent stays).
    """
    acls: NotRequired[list[KafkaAcl] | None]
    """The user's new ACLs."""
    quotas: NotRequired[KafkaQuotas | None]


class KindCapabilities(TypedDict):
    """What can be created of one kind."""
    default_version: str
    """The version used when the spec names none."""
    kind: ClusterKind
    """The kind."""
    max_replicas: int
    """Most workloads in the pool."""
    min_replicas: int
    """Fewest workloads in the pool."""
    role: PoolRole
    """The pool role the kind takes."""
    versions: list[str]
    """Versions offered, newest first."""


class LinkOperationResult(TypedDict):
    """What a link operation measured (`Operation.result`): per partition, where mirroring stopped
    and what a failover lost; what a reverse quarantined.
    """
    loss_ms: int
    """Milliseconds of the source's records the target does not have, the largest
    partition's.
    """
    loss_records: int
    """Records of the source the target does not have (failover), summed."""
    partitions: list[PartitionStop]
    """Per partition (empty when the brokers report no per-partition status)."""
    quarantined_records: int
    """Records the old source moved to quarantine topics (reverse), summed."""


class Me(TypedDict):
    """`GET /v1/me`: who the caller is and what it may do, the one source a client shows its
    controls from (the server still checks every call).
    """
    platform_admin: bool
    """A platform admin may do everything in every workspace, with or without a role there."""
    username: str
    """The username."""
    workspaces: list[WorkspaceRole]
    """The caller's role in each workspace where it has one, by workspace name."""


class MirrorPartitionStatus(TypedDict):
    """One mirror partition."""
    lag_bytes: NotRequired[int | None]
    """Bytes behind (estimate)."""
    lag_records: NotRequired[int | None]
    """Records behind."""
    lag_seconds: NotRequired[float | None]
    """Seconds behind."""
    log_end: NotRequired[int | None]
    """The mirror's log end offset."""
    loss_records: NotRequired[int | None]
    """Records of the source beyond the stop (failover's loss bound)."""
    loss_seconds: NotRequired[float | None]
    """Seconds of the source's records beyond the stop."""
    partition: int
    """Partition."""
    quarantined: NotRequired[int | None]
    """Records moved to `<topic>.quarantine` by a reverse."""
    reason: NotRequired[str | None]
    """Why (`failed`, `source_unavailable`)."""
    source_end: NotRequired[int | None]
    """The source's log end offset last seen."""
    state: str
    """`active`, `paused`, `stopping`, `stopped`, `source_unavailable` or `failed`."""
    stop_offset: NotRequired[int | None]
    """Where mirroring stopped (promote, failover)."""


class MirrorTopicStatus(TypedDict):
    """One mirror topic: its state is its worst partition's."""
    lag_bytes: int
    """Bytes behind (estimate), summed."""
    lag_records: int
    """Records behind, summed."""
    lag_seconds: float
    """Seconds behind, the largest of its partitions'."""
    partitions: list[MirrorPartitionStatus]
    """Per partition."""
    state: str
    """`active`, `paused`, `stopping`, `stopped`, `source_unavailable` or `failed`."""
    topic: str
    """Topic."""


class Node(TypedDict):
    """A registered node."""
    address: str
    """Host or IP address of the node."""
    agent_version: str
    """The agent's version."""
    capacity: NodeCapacity
    """Resources the node offers."""
    fault_domain: int
    """The node's failure domain."""
    heartbeat_age_seconds: float
    """Seconds since the last heartbeat, by the control plane's database clock."""
    id: str
    """The node's identity, chosen by its agent on first start and kept in its data directory."""
    incarnation: int
    """How many times the agent has registered (one per agent start)."""
    last_heartbeat_at: str
    """When the last heartbeat (or registration) arrived."""
    name: str
    """Unique node name."""
    registered_at: str
    """When the node first registered."""
    status: NodeStatus
    """`Ready` while heartbeats arrive within the node timeout."""


class NodeCapacity(TypedDict):
    """Resources a node offers to workloads."""
    cpu_millis: int
    """CPU in thousandths of a core."""
    disk_bytes: int
    """Disk available to the node's data directory, in bytes."""
    memory_bytes: int
    """Memory in bytes."""


class NodeCredential(TypedDict):
    """A node agent's own credential (`POST /v1/agent/nodes/{id}/credential`), shown once."""
    credential: str
    """The bearer token of the node's agent calls."""


class NodeHeartbeat(TypedDict):
    """What a node agent sends periodically: `POST /v1/agent/nodes/{id}/heartbeat`."""
    applied_generation: NotRequired[int]
    """The generation of the last workload assignment the agent applied (0: none yet)."""
    capacity: NodeCapacity
    """Resources the node offers now (disk shrinks as data grows)."""
    workloads: NotRequired[list[WorkloadStatus]]
    """Every workload the agent runs or is still stopping."""


class NodeList(TypedDict):
    """A page of nodes, ordered by name."""
    items: list[Node]
    """The nodes on this page."""
    next_page_token: NotRequired[str | None]
    """Pass as `page_token` to get the next page; absent on the last page."""


class NodePool(TypedDict):
    """A group of identical workloads of a cluster."""
    name: str
    """Pool name, a DNS label (e.g. `brokers`)."""
    replicas: int
    """How many workloads."""
    role: PoolRole
    """What the pool's workloads do; must match the cluster kind."""
    size: NotRequired[str]
    """A size from `GET /v1/capabilities` (default `small`)."""
    storage_gib: NotRequired[int]
    """Disk per workload in GiB (default 10)."""


class NodePoolPatch(TypedDict):
    """A change to one node pool in `PATCH`."""
    name: str
    """The pool to change."""
    replicas: int
    """Its new size."""


class NodeRegistration(TypedDict):
    """What a node agent sends when it (re)starts: `PUT /v1/agent/nodes/{id}`."""
    address: str
    """Host or IP address at which the node's workloads are reachable."""
    agent_version: str
    """The agent's version."""
    capacity: NodeCapacity
    """Resources the node offers."""
    fault_domain: int
    """The failure domain (rack, zone or host group) the node is in; replicas are spread across them."""
    name: str
    """Unique node name, a DNS label (lowercase letters, digits, `-`; at most 63 characters)."""


class OAuthError(TypedDict):
    """An OAuth 2.0 error answer (RFC 6749 §5.2), what OAuth clients parse (not a problem document)."""
    error: OAuthErrorCode
    """The error code."""
    error_description: str
    """What was wrong, for a person."""


class Operation(TypedDict):
    """A long-running mutation: `GET /v1/operations/{id}`."""
    cluster: str
    """The cluster's name."""
    cluster_id: str
    """The cluster's id."""
    created_at: str
    """When it started."""
    created_by: str
    """Who asked."""
    error: NotRequired[OperationError | None]
    finished_at: NotRequired[str | None]
    """When it ended."""
    id: str
    """Identity."""
    kind: OperationKind
    """What it does."""
    link: NotRequired[str | None]
    """The replication link of a link operation (`cluster` is the link's target)."""
    result: NotRequired[LinkOperationResult | None]
    state: OperationState
    """Where it is."""
    steps: list[OperationStep]
    """Steps so far."""
    target_generation: int
    """The spec generation it converges on."""
    updated_at: str
    """When it last changed."""
    workspace: str
    """Workspace name."""


class OperationError(TypedDict):
    """Why an operation failed."""
    code: ErrorCode
    """A stable code: `insufficient_capacity`, `timed_out`, `superseded`, `below_quorum`,
    `brokers_hold_partitions`, or for link operations `kafka_error` (the brokers refused).
    """
    detail: str
    """For people."""


class OperationList(TypedDict):
    """A page of operations, newest first."""
    items: list[Operation]
    """This page."""
    next_page_token: NotRequired[str | None]
    """Pass as `page_token` for the next page; absent on the last page."""


class OperationStep(TypedDict):
    """One step an operation went through."""
    detail: NotRequired[str | None]
    """Detail, e.g. which nodes were chosen."""
    name: str
    """What the step does, e.g. `place brokers` or `wait for the brokers to form one cluster`."""
    started_at: str
    """When the step started."""
    state: str
    """`Running`, `Done` or `Failed`."""


class PartitionOffsetReset(TypedDict):
    """One partition's offset before and after a reset."""
    new_offset: int
    """The new committed offset."""
    partition: int
    """Partition."""
    previous_offset: NotRequired[int | None]
    """The committed offset before the reset; absent when there was none."""
    topic: str
    """Topic."""


class PartitionState(TypedDict):
    """One partition of a topic."""
    end_offset: NotRequired[int | None]
    """The offset the next record will get: the high watermark (single-topic reads only)."""
    isr: list[int]
    """Broker ids of the in-sync replicas."""
    leader: NotRequired[int | None]
    """Broker id of the leader; absent while the partition has none."""
    offline: NotRequired[list[int]]
    """Broker ids of replicas on brokers that are offline."""
    partition: int
    """Partition index."""
    replicas: list[int]
    """Broker ids of the replicas, preferred leader first."""
    start_offset: NotRequired[int | None]
    """The first offset still in the log (single-topic reads only; absent when the leader did
    not answer).
    """


class PartitionStop(TypedDict):
    """One partition's stop."""
    loss_ms: NotRequired[int | None]
    """Milliseconds of the source's records beyond it."""
    loss_records: NotRequired[int | None]
    """Records of the source beyond it."""
    partition: int
    """Partition."""
    quarantined: NotRequired[int | None]
    """Records quarantined."""
    stop_offset: NotRequired[int | None]
    """Where mirroring stopped."""
    topic: str
    """Topic."""


class PlacedWorkload(TypedDict):
    """One workload of a cluster and the node it is placed on."""
    address: str
    """`host:port` of the process."""
    fault_domain: int
    """The node's fault domain."""
    metrics_address: NotRequired[str | None]
    """`host:port` serving its Prometheus metrics (`GET /metrics`): a broker's metrics listener
    (on the node's address behind the node agent's metrics token when the agent has one, else
    on the node's loopback), an executor's own API (behind the cluster credential). Absent for
    brokers placed before brokers served metrics.
    """
    name: str
    """Workload name."""
    node: str
    """The node's name."""
    ordinal: int
    """Broker id or worker id (0 for the driver)."""
    removing: bool
    """True while it is being removed."""
    restarts: int
    """Restarts after crashes."""
    role: str
    """`broker`, `driver` or `worker`."""
    state: str
    """What its agent last reported (`Starting`, `Running`, `Backoff`, `Stopping`), or `Pending`."""


class PoolStatus(TypedDict):
    """Desired and ready counts of a pool."""
    desired: int
    """Workloads wanted."""
    name: str
    """Pool name (`driver` for a Spark cluster's driver)."""
    ready: int
    """Workloads running."""


class Problem(TypedDict):
    """An error, as `application/problem+json` (RFC 9457) with a stable machine-readable `code`."""
    code: ErrorCode
    """A stable machine-readable code, e.g. `invalid_field`, `not_found`, `unauthorized`."""
    column: NotRequired[int | None]
    """For `invalid_sql`: the 1-based column of the SQL at fault, when known."""
    detail: NotRequired[str | None]
    """What went wrong in this occurrence, for a person."""
    field: NotRequired[str | None]
    """The request field at fault, as a JSON-pointer-like path (`capacity.cpu_millis`), if any."""
    line: NotRequired[int | None]
    """For `invalid_sql`: the 1-based line of the SQL at fault, when known."""
    sql_code: NotRequired[str | None]
    """For `invalid_sql`: the executor's own code (`sql_error`, `unknown_topic`,
    `unknown_column`, `unsupported`, `invalid_option`).
    """
    status: int
    """The HTTP status code."""
    title: str
    """A short human-readable summary of the problem type."""
    type: NotRequired[str]
    """A URI reference naming the problem type; `about:blank` when `code` says it all."""


class QuorumTls(TypedDict):
    """A certificate, its key and the authority that signed it, as PEM (a broker's quorum
    identity, or its Kafka listener's).
    """
    ca_pem: str
    """The cluster's CA certificate."""
    cert_pem: str
    """The broker's certificate (names `quorum.hdi` and `broker-<id>.quorum.hdi`)."""
    key_pem: str
    """The broker's private key."""


class QuorumVoter(TypedDict):
    """One voter of a broker cluster's metadata quorum."""
    broker_id: int
    """Broker id."""
    host: str
    """Host of its quorum listener."""
    port: int
    """Port of its quorum listener."""


class Readiness(TypedDict):
    """Readiness of the control plane: whether it can serve requests that need the database."""
    database: str
    """`ok`, or why the database check failed."""
    status: str
    """`ready` or `not_ready`."""


class RecordHeader(TypedDict):
    """A record header."""
    key: str
    """The header's key."""
    value: NotRequired[str | None]
    """Its value as UTF-8 text (invalid bytes replaced); `null` when absent."""


class RecordProduce(TypedDict):
    """`POST /v1/workspaces/{ws}/clusters/{cluster}/topics/{topic}/records`: one record to write
    (a diagnostic write through the control plane; applications write to the brokers).
    """
    headers: NotRequired[dict[str, str]]
    """Headers."""
    key: NotRequired[str | None]
    """The key (UTF-8 text); none when absent."""
    partition: NotRequired[int | None]
    """The partition; by default Kafka's partitioner picks it from the key (murmur2, as the
    Java client does), or a random one for a record without a key.
    """
    value: NotRequired[str | None]
    """The value (UTF-8 text); `null` or absent writes a tombstone."""


class RecordProduced(TypedDict):
    """Where a produced record landed."""
    offset: int
    """Its offset."""
    partition: int
    """The partition."""


class ReplicationLink(TypedDict):
    """A link."""
    applied: bool
    """Whether the target's brokers hold the latest definition (`false` until the link
    reconciler has applied it).
    """
    created_at: str
    """When."""
    created_by: str
    """Who created it."""
    groups: NotRequired[list[str]]
    """Groups whose offsets are copied."""
    groups_exclude: NotRequired[list[str]]
    """Groups never copied."""
    name: str
    """Name (letters, digits, `-`, `_`): also the link's name on the target's brokers
    (`hdi.link.<name>.*`).
    """
    operation: NotRequired[str | None]
    """The operation running on the link, if any."""
    source_cluster: str
    """The cluster copied from."""
    source_user: NotRequired[str | None]
    """The Kafka user the link reads a secured source as (`hdi-link-<name>`, Describe and Read
    on the link's topics and groups only; its password is kept only by the target's brokers).
    """
    state: ReplicationLinkState
    """Where the pair stands."""
    status: NotRequired[ReplicationLinkStatus | None]
    sync_configs: bool
    """Always true."""
    target_cluster: str
    """The cluster holding the mirror topics."""
    topics: list[str]
    """Topics mirrored."""
    topics_exclude: NotRequired[list[str]]
    """Topics never mirrored."""
    updated_at: str
    """Last change."""
    workspace: str
    """Workspace."""


class ReplicationLinkList(TypedDict):
    """A page of links by name."""
    items: list[ReplicationLink]
    """This page."""
    next_page_token: NotRequired[str | None]
    """Pass as `page_token` for the next page; absent on the last page."""


class ReplicationLinkSpec(TypedDict):
    """`PUT /v1/workspaces/{ws}/replication-links/{name}`: creates the link, or replaces its
    filters (its clusters cannot change).
    """
    groups: NotRequired[list[str]]
    """Consumer groups whose committed offsets are copied every second (same syntax)."""
    groups_exclude: NotRequired[list[str]]
    """Groups never copied."""
    source_cluster: str
    """The Kafka cluster copied from (the primary)."""
    sync_configs: NotRequired[bool]
    """Mirror topics follow their source's configs: always true (`false` is refused)."""
    target_cluster: str
    """The Kafka cluster that holds the link and the read-only mirror topics (the secondary);
    its brokers must be in other fault domains than the source's.
    """
    topics: list[str]
    """Topics mirrored: literal names or `prefix*` patterns (at least one)."""
    topics_exclude: NotRequired[list[str]]
    """Topics never mirrored (same syntax; exclusions win)."""


class ReplicationLinkStatus(TypedDict):
    """A link's status as its target's brokers report it, read when asked
    (`GET .../replication-links/{name}` and `.../lag`).
    """
    data_plane_state: NotRequired[str | None]
    """The link's state on the brokers (`mirroring`, `paused`, `promote`, `failover`)."""
    data_plane_status: NotRequired[str | None]
    """The brokers' status text: `ok` or the problem the link meets."""
    defined: bool
    """Whether the target's brokers hold the link."""
    error: NotRequired[str | None]
    """Why it did not, or what could not be read."""
    lag_bytes: NotRequired[int | None]
    """Bytes behind (an estimate: records × the mean record size seen), summed."""
    lag_records: NotRequired[int | None]
    """Records behind, summed over the partitions."""
    observed: bool
    """Whether the target answered."""
    partitions_reported: bool
    """Whether the brokers report per-partition status (older brokers do not: then the lag
    figures below are absent).
    """
    rpo_seconds: NotRequired[float | None]
    """The recovery point objective now: the largest partition lag in seconds (what a
    failover now would lose at most, in time).
    """
    topics: NotRequired[list[MirrorTopicStatus]]
    """Per mirror topic."""
    warnings: NotRequired[list[str]]
    """What the control plane sees wrong with the pair, e.g. its clusters sharing a fault
    domain since a resize (checked when the link was created, not enforced after).
    """


class RoleBinding(TypedDict):
    """A user's role in a workspace."""
    created_at: str
    """Granted (or last changed)."""
    role: Role
    """The role."""
    username: str
    """The user."""
    workspace: str
    """The workspace."""


class RoleBindingList(TypedDict):
    """A workspace's role bindings."""
    items: list[RoleBinding]
    """Bindings by username."""


class RoleBindingPut(TypedDict):
    """`PUT /v1/workspaces/{ws}/role-bindings/{username}`."""
    role: Role
    """The role to grant."""


class RunAs(TypedDict):
    """The operating-system identity of a workload: its cluster's own user, so that workloads of
    different clusters on one node cannot read each other's files, and its workspace's group,
    which owns the workspace's storage root.
    """
    uid: int
    """The cluster's user id, also the id of the cluster's own group (its primary group)."""
    workspace_gid: int
    """The workspace's group id (a supplementary group)."""


class SessionCreate0(TypedDict):
    """A username and password."""
    password: str
    """The password."""
    username: str
    """The username."""


class SessionCreate1(TypedDict):
    """An API token (e.g. the admin token `cargo xtask up` prints)."""
    api_token: str
    """The token's secret."""


class Size(TypedDict):
    """A workload size."""
    cpu_millis: int
    """CPU reserved per workload, thousandths of a core."""
    memory_bytes: int
    """Memory reserved per workload, bytes."""
    name: str
    """Name used in `node_pools[].size`."""


class TailRecord(TypedDict):
    """A `record` event of a topic tail (`GET …/topics/{topic}/records`)."""
    headers: list[RecordHeader]
    """Headers in order."""
    key: NotRequired[str | None]
    """The key as UTF-8 text (invalid bytes replaced); `null` when absent."""
    offset: int
    """The offset."""
    partition: int
    """The partition."""
    timestamp_ms: int
    """The record's timestamp, ms since the epoch."""
    truncated: bool
    """The key or value was longer than 16,384 characters and is cut there."""
    value: NotRequired[str | None]
    """The value as UTF-8 text; `null` for a tombstone."""


class TokenRequestPassword(TypedDict):
    """A username and password."""
    grant_type: Literal["password"]
    password: str
    """The password."""
    username: str
    """The username."""


class TokenRequestApiToken(TypedDict):
    """An API token (from `POST /v1/users/{username}/api-tokens`, or the admin token file)."""
    grant_type: Literal["api_token"]
    token: str
    """The API token's secret."""


class TokenResponse(TypedDict):
    """A short-lived access token (a JWT) to send as `Authorization: Bearer <access_token>`."""
    access_token: str
    """The JWT."""
    expires_in: int
    """Seconds until it expires."""
    token_type: str
    """Always `Bearer`."""


class Topic(TypedDict):
    """A topic as the Kafka cluster describes it."""
    configs: NotRequired[dict[str, str] | None]
    """The configs set on the topic itself (non-default values only). Absent in lists."""
    default_configs: NotRequired[dict[str, str] | None]
    """The other configs in force, with their default values. Absent in lists."""
    name: str
    """Name."""
    partitions: list[PartitionState]
    """Partitions by index."""
    replication_factor: int
    """Replicas per partition (of partition 0; all partitions have as many unless a
    reassignment is in progress).
    """
    topic_id: NotRequired[str | None]
    """Kafka's topic id."""


class TopicCreate(TypedDict):
    """`POST /v1/workspaces/{ws}/clusters/{cluster}/topics`."""
    configs: NotRequired[dict[str, str]]
    """Topic configs set on the topic (e.g. `retention.ms`); the others take their defaults."""
    name: str
    """Topic name as Kafka allows: 1-249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`."""
    partitions: int
    """Number of partitions, 1-10000."""
    replication_factor: int
    """Replicas per partition, at least 1 and at most the number of brokers."""


class TopicList(TypedDict):
    """A page of a cluster's topics, ordered by name (internal topics are not listed)."""
    items: list[Topic]
    """This page (without configs)."""
    next_page_token: NotRequired[str | None]
    """Pass as `page_token` for the next page; absent on the last page."""


class TopicPartitions(TypedDict):
    """Partitions of one topic."""
    partitions: list[int]
    """Partition indexes, ascending."""
    topic: str
    """Topic."""


class TopicPatch(TypedDict):
    """`PATCH /v1/workspaces/{ws}/clusters/{cluster}/topics/{topic}`."""
    configs: NotRequired[dict[str, str | None] | None]
    """Configs to set on the topic; a `null` value removes the key (back to its default). Keys
    not named are left as they are.
    """
    partitions: NotRequired[int | None]
    """New partition count; partitions can only be added, never removed."""


class TopicSeries(TypedDict):
    """The series of one topic."""
    records_in_per_sec: list[float | None]
    """Records written per second (the advance of the partitions' end offsets)."""
    topic: str
    """Topic."""


class User(TypedDict):
    """A user."""
    created_at: str
    """Created."""
    id: str
    """Identity (the `sub` of its access tokens)."""
    platform_admin: bool
    """May do everything in every workspace."""
    username: str
    """Unique name."""


class UserCreate(TypedDict):
    """`POST /v1/users`."""
    password: str
    """At least 12 characters."""
    username: str
    """1-64 lowercase letters, digits, `.`, `_`, `-`."""


class UserList(TypedDict):
    """A page of users."""
    items: list[User]
    """Users by name."""
    next_page_token: NotRequired[str | None]
    """Pass as `page_token` for the next page; absent on the last page."""


class Workload(TypedDict):
    """One data-plane process to run."""
    cluster_id: str
    """The cluster the workload belongs to."""
    name: str
    """Unique on the node and stable for the workload's life; names its data directory
    (`<data-dir>/workloads/<name>`). Lowercase letters, digits and `-`.
    """
    run_as: RunAs
    """The operating-system identity it runs as (a node agent running as root switches to it)."""
    spec: WorkloadSpec
    """What to run."""


class WorkloadAssignment(TypedDict):
    """`GET /v1/agent/nodes/{id}/workloads`: everything the node must run."""
    generation: int
    """Grows whenever the set changes."""
    workloads: list[Workload]
    """The workloads; any other workload on the node is stopped and its data removed."""


class WorkloadStatus(TypedDict):
    """One workload, as its agent sees it."""
    last_exit: NotRequired[str | None]
    """How the last process ended, e.g. `exit status 1` or `signal 9`."""
    name: str
    """The workload's name."""
    pid: NotRequired[int | None]
    """The process id while one runs."""
    restarts: int
    """How many times it was restarted after exiting."""
    state: WorkloadState
    """Its state."""


class Workspace(TypedDict):
    """A workspace: the tenant boundary that clusters live in."""
    created_at: str
    """When it was created."""
    id: str
    """Identity."""
    name: str
    """Unique name."""


class WorkspaceCreate(TypedDict):
    """`POST /v1/workspaces`."""
    name: str
    """A DNS label: lowercase letters, digits and `-`, at most 63 characters."""


class WorkspaceList(TypedDict):
    """A page of workspaces, ordered by name."""
    items: list[Workspace]
    """This page."""
    next_page_token: NotRequired[str | None]
    """Pass as `page_token` for the next page; absent on the last page."""


class WorkspaceRole(TypedDict):
    """The caller's role in one workspace."""
    role: Role
    """The role."""
    workspace: str
    """The workspace."""


AuthorityRotationPhase = Literal["trusting", "issuing", "settling"]
"""Where a rotation of a Kafka cluster's authorities stands."""


ClusterKind = Literal["kafka", "spark"]
"""What a cluster is."""


ClusterState = Literal["Creating", "Running", "Resizing", "Deleting", "Failed"]
"""The state of a cluster, for people."""


ConsumerGroupState = Literal["Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead", "Unknown"]
"""The state of a consumer group, as its coordinator reports it."""


ErrorCode = Literal["invalid_field", "invalid_body", "invalid_path", "invalid_query", "unsupported_media_type", "body_too_large", "method_not_allowed", "not_found", "precondition_failed", "idempotency_key_in_use", "idempotency_key_reused", "unauthorized", "invalid_credentials", "forbidden", "csrf_failed", "workspace_exists", "user_exists", "user_builtin", "api_token_exists", "node_name_taken", "node_credential_exists", "cluster_deleting", "managed_by_kubernetes", "not_managed_by_kubernetes", "concurrent_change", "operation_in_progress", "rotation_in_progress", "cluster_not_ready", "topic_exists", "job_exists", "kafka_user_exists", "cluster_has_links", "link_has_mirrors", "link_fault_domains_overlap", "link_stopped", "link_paused", "link_not_paused", "link_not_stopped", "group_not_empty", "deletion_protected", "below_quorum", "brokers_hold_partitions", "insufficient_capacity", "timed_out", "superseded", "not_a_kafka_cluster", "not_a_spark_cluster", "kafka_users_unsupported", "policy_violation", "link_source_unsupported", "invalid_sql", "cluster_unreachable", "kafka_error", "driver_unavailable", "driver_error", "rate_limited", "unavailable", "internal", "unknown"]
"""The stable machine-readable `code` of a problem: what clients branch on.

A client reads a code it does not know (one added by a newer control plane) as
`unknown`; the control plane never sends `unknown` itself. The HTTP status and `detail`
of such a problem still say what happened.
"""


ExecutorRole = Literal["driver", "worker"]
"""Which half of a Spark cluster an executor process is."""


JobState = Literal["Pending", "Running", "Stopped", "Failed", "Completed", "Unknown"]
"""Where a job is."""


KafkaMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "OAUTHBEARER"]
"""A SASL mechanism of a Kafka cluster."""


KafkaOperation = Literal["all", "read", "write", "create", "delete", "alter", "describe", "describe_configs", "alter_configs", "idempotent_write"]
"""Kafka's ACL operations."""


KafkaPatternType = Literal["literal", "prefixed"]
"""How an ACL's resource name matches."""


KafkaPermission = Literal["allow", "deny"]
"""Allow or deny."""


KafkaResourceType = Literal["topic", "group", "cluster", "transactional_id"]
"""Kafka's ACL resource types."""


KafkaUserState = Literal["pending", "applied"]
"""Whether a Kafka user's credential, ACLs and quotas are on the cluster."""


NodeStatus = Literal["Ready", "NotReady"]
"""Whether a node is heartbeating."""


OAuthErrorCode = Literal["invalid_request", "invalid_client", "unsupported_grant_type", "invalid_scope"]
"""The error codes of an OAuth 2.0 token endpoint (RFC 6749 §5.2)."""


OperationKind = Literal["create", "update", "resize", "delete", "link_pause", "link_resume", "link_promote", "link_failover", "link_reverse"]
"""What a mutation does."""


OperationState = Literal["Running", "Succeeded", "Failed"]
"""Where an operation is."""


PoolRole = Literal["broker", "executor"]
"""What the nodes of a pool do."""


ReplicationLinkState = Literal["mirroring", "paused", "promoting", "promoted", "failing_over", "failed_over", "reversing"]
"""Where a link stands."""


ResetTo = Literal["earliest", "latest", "timestamp", "offset"]
"""Where [`ConsumerGroupResetOffsets`] moves the offsets."""


Role = Literal["viewer", "operator", "admin"]
"""A role in a workspace; each includes the ones before it."""


SessionCreate = Union[SessionCreate0, SessionCreate1]
"""`POST /v1/auth/session`: the portal's login, with a username and password or with an API
token (how the built-in platform admin, which has no password, signs in).
"""


TokenRequest = Union[TokenRequestPassword, TokenRequestApiToken]
"""`POST /v1/auth/token`: what is exchanged for an access token."""


WorkloadSpec = Any
"""The process and its configuration."""


WorkloadState = Literal["Starting", "Running", "Backoff", "Stopping"]
"""What an agent knows of one of its workloads."""


OPERATIONS: dict[str, tuple[str, str]] = {
    "agent_node_enrol": ("POST", "/v1/agent/nodes/{id}/credential"),
    "agent_node_heartbeat": ("POST", "/v1/agent/nodes/{id}/heartbeat"),
    "agent_node_register": ("PUT", "/v1/agent/nodes/{id}"),
    "agent_node_workloads": ("GET", "/v1/agent/nodes/{id}/workloads"),
    "api_token_create": ("POST", "/v1/users/{username}/api-tokens"),
    "api_token_revoke": ("DELETE", "/v1/users/{username}/api-tokens/{name}"),
    "api_tokens_list": ("GET", "/v1/users/{username}/api-tokens"),
    "audit_list": ("GET", "/v1/audit-events"),
    "capabilities": ("GET", "/v1/capabilities"),
    "cluster_authorities_rotate": ("POST", "/v1/workspaces/{ws}/clusters/{cluster}/rotate-authorities"),
    "cluster_certificates_rotate": ("POST", "/v1/workspaces/{ws}/clusters/{cluster}/rotate-certificates"),
    "cluster_delete": ("DELETE", "/v1/workspaces/{ws}/clusters/{name}"),
    "cluster_get": ("GET", "/v1/workspaces/{ws}/clusters/{name}"),
    "cluster_metrics": ("GET", "/v1/workspaces/{ws}/clusters/{cluster}/metrics"),
    "cluster_patch": ("PATCH", "/v1/workspaces/{ws}/clusters/{name}"),
    "cluster_put": ("PUT", "/v1/workspaces/{ws}/clusters/{name}"),
    "clusters_list": ("GET", "/v1/workspaces/{ws}/clusters"),
    "consumer_group_delete": ("DELETE", "/v1/workspaces/{ws}/clusters/{cluster}/consumer-groups/{group}"),
    "consumer_group_get": ("GET", "/v1/workspaces/{ws}/clusters/{cluster}/consumer-groups/{group}"),
    "consumer_group_reset_offsets": ("POST", "/v1/workspaces/{ws}/clusters/{cluster}/consumer-groups/{group}/reset-offsets"),
    "consumer_groups_list": ("GET", "/v1/workspaces/{ws}/clusters/{cluster}/consumer-groups"),
    "healthz": ("GET", "/healthz"),
    "job_create": ("POST", "/v1/workspaces/{ws}/clusters/{cluster}/jobs"),
    "job_delete": ("DELETE", "/v1/workspaces/{ws}/clusters/{cluster}/jobs/{job}"),
    "job_get": ("GET", "/v1/workspaces/{ws}/clusters/{cluster}/jobs/{job}"),
    "job_preview": ("GET", "/v1/workspaces/{ws}/clusters/{cluster}/jobs/{job}/preview"),
    "job_progress": ("GET", "/v1/workspaces/{ws}/clusters/{cluster}/jobs/{job}/progress"),
    "jobs_list": ("GET", "/v1/workspaces/{ws}/clusters/{cluster}/jobs"),
    "jwks": ("GET", "/.well-known/jwks.json"),
    "kafka_user_create": ("POST", "/v1/workspaces/{ws}/clusters/{cluster}/kafka-users"),
    "kafka_user_delete": ("DELETE", "/v1/workspaces/{ws}/clusters/{cluster}/kafka-users/{name}"),
    "kafka_user_get": ("GET", "/v1/workspaces/{ws}/clusters/{cluster}/kafka-users/{name}"),
    "kafka_user_patch": ("PATCH", "/v1/workspaces/{ws}/clusters/{cluster}/kafka-users/{name}"),
    "kafka_user_rotate": ("POST", "/v1/workspaces/{ws}/clusters/{cluster}/kafka-users/{name}/rotate"),
    "kafka_users_list": ("GET", "/v1/workspaces/{ws}/clusters/{cluster}/kafka-users"),
    "link_delete": ("DELETE", "/v1/workspaces/{ws}/replication-links/{name}"),
    "link_failover": ("POST", "/v1/workspaces/{ws}/replication-links/{name}/failover"),
    "link_get": ("GET", "/v1/workspaces/{ws}/replication-links/{name}"),
    "link_lag": ("GET", "/v1/workspaces/{ws}/replication-links/{name}/lag"),
    "link_pause": ("POST", "/v1/workspaces/{ws}/replication-links/{name}/pause"),
    "link_promote": ("POST", "/v1/workspaces/{ws}/replication-links/{name}/promote"),
    "link_put": ("PUT", "/v1/workspaces/{ws}/replication-links/{name}"),
    "link_resume": ("POST", "/v1/workspaces/{ws}/replication-links/{name}/resume"),
    "link_reverse": ("POST", "/v1/workspaces/{ws}/replication-links/{name}/reverse"),
    "links_list": ("GET", "/v1/workspaces/{ws}/replication-links"),
    "me": ("GET", "/v1/me"),
    "node_credential_revoke": ("DELETE", "/v1/nodes/{id}/credential"),
    "node_get": ("GET", "/v1/nodes/{id}"),
    "nodes_list": ("GET", "/v1/nodes"),
    "oauth2_token": ("POST", "/v1/auth/oauth2/token"),
    "operation_get": ("GET", "/v1/operations/{id}"),
    "operations_list": ("GET", "/v1/workspaces/{ws}/operations"),
    "readyz": ("GET", "/readyz"),
    "record_produce": ("POST", "/v1/workspaces/{ws}/clusters/{cluster}/topics/{topic}/records"),
    "records_tail": ("GET", "/v1/workspaces/{ws}/clusters/{cluster}/topics/{topic}/records"),
    "role_binding_delete": ("DELETE", "/v1/workspaces/{ws}/role-bindings/{username}"),
    "role_binding_put": ("PUT", "/v1/workspaces/{ws}/role-bindings/{username}"),
    "role_bindings_list": ("GET", "/v1/workspaces/{ws}/role-bindings"),
    "session_create": ("POST", "/v1/auth/session"),
    "session_delete": ("DELETE", "/v1/auth/session"),
    "token": ("POST", "/v1/auth/token"),
    "topic_create": ("POST", "/v1/workspaces/{ws}/clusters/{cluster}/topics"),
    "topic_delete": ("DELETE", "/v1/workspaces/{ws}/clusters/{cluster}/topics/{topic}"),
    "topic_get": ("GET", "/v1/workspaces/{ws}/clusters/{cluster}/topics/{topic}"),
    "topic_patch": ("PATCH", "/v1/workspaces/{ws}/clusters/{cluster}/topics/{topic}"),
    "topics_list": ("GET", "/v1/workspaces/{ws}/clusters/{cluster}/topics"),
    "user_create": ("POST", "/v1/users"),
    "user_delete": ("DELETE", "/v1/users/{username}"),
    "users_list": ("GET", "/v1/users"),
    "workspace_create": ("POST", "/v1/workspaces"),
    "workspace_get": ("GET", "/v1/workspaces/{ws}"),
    "workspaces_list": ("GET", "/v1/workspaces"),
}
"""Operation id -> (HTTP method, path template), for every operation of the API."""
