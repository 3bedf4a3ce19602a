-- Per-node agent credentials: an agent exchanges the shared bootstrap token once for a secret
-- bound to its node id (only its SHA-256 digest is kept); every other agent call presents that
-- secret and may act only for its own node. A platform admin revokes one by deleting its row
-- (the agent then enrols again with the bootstrap token). No foreign key: an agent enrols
-- before it registers its node.
CREATE TABLE node_credentials (
    node_id    UUID PRIMARY KEY,
    digest     BYTEA NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
