-- Secured Kafka listeners: each Kafka cluster's Kafka CA (distinct from its quorum CA) and the
-- password of the SCRAM user the control plane administers it as (`hdi-admin`, a super user
-- in the brokers' static users file), made when the first broker is assigned; each broker
-- workload's server certificate and key. Never shown by the API.
ALTER TABLE clusters
    ADD COLUMN kafka_ca_cert        TEXT,
    ADD COLUMN kafka_ca_key         TEXT,
    ADD COLUMN kafka_admin_password TEXT;
ALTER TABLE workloads
    ADD COLUMN kafka_cert TEXT,
    ADD COLUMN kafka_key  TEXT;

-- Kafka users of secured clusters: their ACLs (desired state, applied by the reconciler). The
-- password is shown once and never stored; the cluster keeps a salted SCRAM credential.
CREATE TABLE kafka_users (
    id                 UUID PRIMARY KEY,
    cluster_id         UUID NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    mechanism          TEXT NOT NULL,
    acls               JSONB NOT NULL DEFAULT '[]',
    generation         BIGINT NOT NULL DEFAULT 1,
    applied_generation BIGINT NOT NULL DEFAULT 0,
    created_by         TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    password_set_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (cluster_id, name)
);
