-- Workspaces, clusters, operations, workloads and the audit log.
--
-- Desired state (written by the service layer): workspaces, clusters.spec/generation/deleting,
-- operations created by mutations. Observed state (written by reconcilers): clusters.state,
-- observed_generation, status; operation steps and outcomes; workload placements. What agents
-- report about their processes lands in workloads.observed_*.

CREATE TABLE workspaces (
    id         UUID PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE clusters (
    id                  UUID PRIMARY KEY,
    workspace_id        UUID NOT NULL REFERENCES workspaces (id),
    name                TEXT NOT NULL,
    kind                TEXT NOT NULL CHECK (kind IN ('kafka', 'spark')),
    -- The desired spec (version, node pools, config, deletion protection) as JSON.
    spec                JSONB NOT NULL,
    -- Bumped by every change of the spec.
    generation          BIGINT NOT NULL DEFAULT 1,
    -- Set by DELETE; the reconciler removes the workloads, then the row.
    deleting            BOOLEAN NOT NULL DEFAULT false,
    -- Observed state, written by reconcilers only.
    state               TEXT NOT NULL DEFAULT 'Creating',
    observed_generation BIGINT NOT NULL DEFAULT 0,
    status              JSONB NOT NULL DEFAULT '{}',
    -- Size of the metadata quorum's voter set (Kafka), fixed when the first brokers are placed.
    voters              INTEGER NOT NULL DEFAULT 0,
    -- Reconciler lease: one control-plane process works on a cluster at a time.
    lease_owner         UUID,
    lease_until         TIMESTAMPTZ,
    reconciled_at       TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, name)
);

-- Operations outlive their cluster (a finished delete is still shown), so no foreign key.
CREATE TABLE operations (
    id                UUID PRIMARY KEY,
    workspace_id      UUID NOT NULL,
    cluster_id        UUID NOT NULL,
    cluster_name      TEXT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('create', 'update', 'resize', 'delete')),
    state             TEXT NOT NULL DEFAULT 'Running' CHECK (state IN ('Running', 'Succeeded', 'Failed')),
    target_generation BIGINT NOT NULL,
    steps             JSONB NOT NULL DEFAULT '[]',
    error_code        TEXT,
    error_detail      TEXT,
    created_by        TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at       TIMESTAMPTZ
);
-- One mutating operation per cluster at a time.
CREATE UNIQUE INDEX operations_one_running ON operations (cluster_id) WHERE state = 'Running';
CREATE INDEX operations_by_workspace ON operations (workspace_id, created_at);

-- What node agents must run. A row is created by placement and deleted only once its agent has
-- stopped the process and removed its data (so nothing is orphaned).
CREATE TABLE workloads (
    id                 UUID PRIMARY KEY,
    cluster_id         UUID NOT NULL REFERENCES clusters (id),
    node_id            UUID NOT NULL REFERENCES nodes (id),
    name               TEXT NOT NULL UNIQUE,
    role               TEXT NOT NULL CHECK (role IN ('broker', 'driver', 'worker')),
    ordinal            INTEGER NOT NULL CHECK (ordinal >= 0),
    spec               JSONB NOT NULL,
    cpu_millis         BIGINT NOT NULL,
    memory_bytes       BIGINT NOT NULL,
    -- Set when the workload is to be stopped; `removed_generation` is the node's assignment
    -- generation from which it is absent.
    removing           BOOLEAN NOT NULL DEFAULT false,
    removed_generation BIGINT,
    observed_state     TEXT,
    observed_pid       BIGINT,
    observed_restarts  BIGINT NOT NULL DEFAULT 0,
    observed_last_exit TEXT,
    observed_at        TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (cluster_id, role, ordinal)
);
CREATE INDEX workloads_by_node ON workloads (node_id);

-- Ports taken on each address, so that workloads on one host never collide.
CREATE TABLE ports (
    address     TEXT NOT NULL,
    port        INTEGER NOT NULL,
    workload_id UUID NOT NULL REFERENCES workloads (id) ON DELETE CASCADE,
    PRIMARY KEY (address, port)
);

ALTER TABLE nodes
    -- Bumped whenever the node's set of workloads changes.
    ADD COLUMN workload_generation BIGINT NOT NULL DEFAULT 0,
    -- The generation the agent last reported as applied.
    ADD COLUMN applied_generation  BIGINT NOT NULL DEFAULT 0;

CREATE TABLE audit_events (
    id        BIGSERIAL PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    resource  TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    detail    TEXT
);
CREATE INDEX audit_events_by_time ON audit_events (at);
