-- Nodes: one row per registered node agent. The agent owns its identity (`id`, kept in its data
-- directory); the control plane records what the agent reports. Readiness is derived from
-- `last_heartbeat_at` against the database clock, so it needs no writer of its own.
CREATE TABLE nodes (
    id                UUID PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    fault_domain      INTEGER NOT NULL CHECK (fault_domain >= 0),
    address           TEXT NOT NULL,
    agent_version     TEXT NOT NULL,
    cpu_millis        BIGINT NOT NULL CHECK (cpu_millis >= 0),
    memory_bytes      BIGINT NOT NULL CHECK (memory_bytes >= 0),
    disk_bytes        BIGINT NOT NULL CHECK (disk_bytes >= 0),
    registered_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Bumped on every registration: counts agent (re)starts.
    incarnation       BIGINT NOT NULL DEFAULT 1
);
