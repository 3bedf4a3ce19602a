-- Clusters on Kubernetes (`--provisioner kubernetes`). Their pods run node agents that belong to
-- one cluster: an agent enrols with its cluster's enrolment token (only the SHA-256 digest is
-- kept; the token itself lives in a Secret of the cluster's namespace), its credential and its
-- node record carry the cluster, and placement puts a cluster's workloads only on its own nodes
-- (and never a cluster's workloads on another's nodes, nor the local fleet's on them).
-- The custom resource that made the cluster ({api_version, kind, name, uid}), if one did: it
-- owns the cluster's Kubernetes objects, and REST refuses to change or delete the cluster.
ALTER TABLE clusters ADD COLUMN k8s_owner JSONB;

CREATE TABLE cluster_enrolment_tokens (
    cluster_id UUID PRIMARY KEY REFERENCES clusters (id) ON DELETE CASCADE,
    digest     BYTEA NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

ALTER TABLE node_credentials ADD COLUMN cluster_id UUID REFERENCES clusters (id) ON DELETE CASCADE;
ALTER TABLE nodes ADD COLUMN cluster_id UUID REFERENCES clusters (id) ON DELETE CASCADE;
CREATE INDEX nodes_cluster ON nodes (cluster_id) WHERE cluster_id IS NOT NULL;
